//! The UDP transport: one tokio socket, a size limit, nothing else.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use super::{too_large, Transport};

/// A bound UDP socket that refuses datagrams over `max_datagram` bytes.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    local: SocketAddr,
    max_datagram: usize,
}

impl UdpTransport {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr, max_datagram: usize) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        let local = socket.local_addr()?;
        Ok(UdpTransport {
            socket,
            local,
            max_datagram,
        })
    }
}

impl Transport for UdpTransport {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn send_to(&self, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        if datagram.len() > self.max_datagram {
            return Err(too_large(datagram.len(), self.max_datagram));
        }
        self.socket.send_to(datagram, to).await.map(|_| ())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::conformance;

    async fn pair() -> (UdpTransport, UdpTransport) {
        let any = "127.0.0.1:0".parse().unwrap();
        (
            UdpTransport::bind(any, 1400).await.unwrap(),
            UdpTransport::bind(any, 1400).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn udp_delivers_datagrams_both_ways() {
        let (a, b) = pair().await;
        conformance::delivers_datagrams_both_ways(&a, &b, b"hello").await;
    }

    #[tokio::test]
    async fn udp_refuses_oversized_datagrams() {
        let (a, b) = pair().await;
        conformance::refuses_oversized_datagrams(&a, &b, 1400).await;
    }
}
