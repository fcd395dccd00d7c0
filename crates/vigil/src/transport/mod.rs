//! Datagram transports: the real one ([`udp::UdpTransport`]) and its in-memory twin
//! (`memory::MemoryNetwork`), behind one small trait so the runtime does not care which.
//!
//! Both enforce the same maximum datagram size; the twin also round-trips every datagram
//! through the membership codec and can drop datagrams or cut links, so runtime tests see
//! the faults a real network has. `conformance` holds the checks both must pass.

#[cfg(test)]
pub mod memory;
pub mod udp;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// A best-effort datagram socket.
pub trait Transport: Send + Sync + 'static {
    /// The bound address.
    fn local_addr(&self) -> SocketAddr;

    /// Sends one datagram; an error means it surely did not leave (too large, no route...).
    fn send_to(
        &self,
        to: SocketAddr,
        datagram: &[u8],
    ) -> impl Future<Output = io::Result<()>> + Send;

    /// Waits for the next datagram; returns its length and sender.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
}

/// The error both transports return for a datagram over the size limit.
pub fn too_large(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("datagram of {len} bytes exceeds the {max}-byte limit"),
    )
}

#[cfg(test)]
pub mod conformance {
    //! Behaviour every transport must have; run against both implementations.
    use super::*;
    use std::time::Duration;

    /// Two sockets exchange a datagram both ways.
    pub async fn delivers_datagrams_both_ways(
        a: &impl Transport,
        b: &impl Transport,
        payload: &[u8],
    ) {
        a.send_to(b.local_addr(), payload).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), b.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], payload);
        assert_eq!(from, a.local_addr());
        b.send_to(a.local_addr(), payload).await.unwrap();
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), a.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], payload);
        assert_eq!(from, b.local_addr());
    }

    /// A datagram over the limit is refused at the sender.
    pub async fn refuses_oversized_datagrams(a: &impl Transport, b: &impl Transport, max: usize) {
        let e = a
            .send_to(b.local_addr(), &vec![0u8; max + 1])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
