//! The in-memory twin of the UDP transport, for runtime tests without sockets.
//!
//! Same size limit as UDP; every datagram is decoded and re-encoded with the membership
//! codec (a datagram that does not round-trip is refused and counted); fault knobs drop a
//! share of datagrams (seeded) or cut links one way or both.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::{too_large, Transport};

type Datagram = (SocketAddr, Vec<u8>);

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to a receiver.
    pub delivered: u64,
    /// Datagrams dropped by the loss knob or a cut link.
    pub dropped: u64,
    /// Bytes handed to receivers.
    pub bytes: u64,
    /// Datagrams that did not survive the codec round trip.
    pub codec_failures: u64,
}

struct NetState {
    endpoints: HashMap<SocketAddr, mpsc::UnboundedSender<Datagram>>,
    max_datagram: usize,
    cluster_id: Option<u32>,
    drop_rate: f64,
    rng: SmallRng,
    cut: HashSet<(SocketAddr, SocketAddr)>,
    stats: NetStats,
}

/// A simulated network; clone it freely (all clones are the same network).
#[derive(Clone)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetState>>,
}

impl MemoryNetwork {
    /// A lossless network with a `max_datagram` limit; `seed` drives the loss knob.
    pub fn new(max_datagram: usize, seed: u64) -> Self {
        let state = NetState {
            endpoints: HashMap::new(),
            max_datagram,
            cluster_id: None,
            drop_rate: 0.0,
            rng: SmallRng::seed_from_u64(seed),
            cut: HashSet::new(),
            stats: NetStats::default(),
        };
        MemoryNetwork {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Round-trips every datagram through the membership codec of cluster `name`.
    pub fn check_codec(&self, cluster_name: &str) {
        self.lock().cluster_id = Some(membership::codec::cluster_id(cluster_name));
    }

    /// Drops each datagram with probability `rate` (0..=1).
    pub fn set_drop_rate(&self, rate: f64) {
        self.lock().drop_rate = rate.clamp(0.0, 1.0);
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn cut(&self, from: SocketAddr, to: SocketAddr) {
        self.lock().cut.insert((from, to));
    }

    /// Cuts `node` off from everyone, both ways.
    pub fn isolate(&self, node: SocketAddr) {
        let mut s = self.lock();
        let others: Vec<SocketAddr> = s.endpoints.keys().copied().filter(|a| *a != node).collect();
        for other in others {
            s.cut.insert((node, other));
            s.cut.insert((other, node));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    /// Attaches an endpoint at `addr`.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<MemoryTransport> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = self.lock();
        if s.endpoints.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is in use"),
            ));
        }
        s.endpoints.insert(addr, tx);
        Ok(MemoryTransport {
            addr,
            net: self.clone(),
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    fn deliver(&self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        if datagram.len() > s.max_datagram {
            return Err(too_large(datagram.len(), s.max_datagram));
        }
        if let Some(cluster) = s.cluster_id {
            let max = s.max_datagram;
            let same = membership::codec::decode(cluster, max, datagram)
                .map(|msg| membership::codec::encode(cluster, &msg) == datagram)
                .unwrap_or(false);
            if !same {
                s.stats.codec_failures += 1;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "datagram does not round-trip through the codec",
                ));
            }
        }
        let rate = s.drop_rate;
        if s.cut.contains(&(from, to)) || (rate > 0.0 && s.rng.random_bool(rate)) {
            s.stats.dropped += 1;
            return Ok(());
        }
        // Like UDP, sending to nobody is not an error.
        if let Some(tx) = s.endpoints.get(&to) {
            if tx.send((from, datagram.to_vec())).is_ok() {
                s.stats.delivered += 1;
                s.stats.bytes += datagram.len() as u64;
            }
        }
        Ok(())
    }
}

/// One endpoint of a [`MemoryNetwork`].
pub struct MemoryTransport {
    addr: SocketAddr,
    net: MemoryNetwork,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Datagram>>,
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.net.lock().endpoints.remove(&self.addr);
    }
}

impl Transport for MemoryTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn send_to(&self, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        self.net.deliver(self.addr, to, datagram)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut rx = self.rx.lock().await;
        let (from, bytes) = rx
            .recv()
            .await
            .ok_or_else(|| io::Error::other("network is gone"))?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok((n, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::conformance;
    use std::time::Duration;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn memory_delivers_datagrams_both_ways() {
        let net = MemoryNetwork::new(1400, 1);
        let (a, b) = (net.bind(addr(1)).unwrap(), net.bind(addr(2)).unwrap());
        conformance::delivers_datagrams_both_ways(&a, &b, b"hello").await;
    }

    #[tokio::test]
    async fn memory_refuses_oversized_datagrams() {
        let net = MemoryNetwork::new(1400, 1);
        let (a, b) = (net.bind(addr(1)).unwrap(), net.bind(addr(2)).unwrap());
        conformance::refuses_oversized_datagrams(&a, &b, 1400).await;
    }

    #[tokio::test]
    async fn a_cut_link_drops_one_way_only() {
        let net = MemoryNetwork::new(1400, 1);
        let (a, b) = (net.bind(addr(1)).unwrap(), net.bind(addr(2)).unwrap());
        net.cut(a.local_addr(), b.local_addr());
        a.send_to(b.local_addr(), b"lost").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.recv_from(&mut buf))
                .await
                .is_err()
        );
        b.send_to(a.local_addr(), b"back").await.unwrap();
        assert_eq!(a.recv_from(&mut buf).await.unwrap().0, 4);
        assert_eq!(net.stats().dropped, 1);
        net.heal();
        a.send_to(b.local_addr(), b"found").await.unwrap();
        assert_eq!(b.recv_from(&mut buf).await.unwrap().0, 5);
    }

    #[tokio::test]
    async fn garbage_fails_the_codec_round_trip() {
        let net = MemoryNetwork::new(1400, 1);
        net.check_codec("vigil");
        let (a, b) = (net.bind(addr(1)).unwrap(), net.bind(addr(2)).unwrap());
        let e = a
            .send_to(b.local_addr(), b"not a vigil datagram")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(net.stats().codec_failures, 1);
    }

    #[tokio::test]
    async fn loss_is_seeded_and_proportional() {
        let net = MemoryNetwork::new(1400, 7);
        net.set_drop_rate(0.5);
        let (a, b) = (net.bind(addr(1)).unwrap(), net.bind(addr(2)).unwrap());
        for _ in 0..1000 {
            a.send_to(b.local_addr(), b"x").await.unwrap();
        }
        let dropped = net.stats().dropped;
        assert!((400..600).contains(&dropped), "{dropped}");
    }
}
