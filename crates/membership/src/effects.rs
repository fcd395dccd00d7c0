//! [`Effects`]: the one [`Output`] that collects what a node produced, for whoever drives a
//! node by hand: the simulator and its peers harness, tests, benchmarks and tools.
//!
//! A runtime that owns a socket can use it too: collect one handler call's effects, then
//! send the datagrams and publish the events once the node is no longer borrowed.

use std::net::SocketAddr;

use crate::node::{Event, Output};

/// Datagrams and events collected from a node, in the order it produced them.
///
/// ```
/// use std::time::Duration;
/// use membership::{Config, Effects, Identity, Node};
///
/// let identity = Identity {
///     id: "a".into(),
///     addr: "127.0.0.1:7946".parse().unwrap(),
///     generation: 1,
///     meta: Default::default(),
///     cluster: "demo".into(),
/// };
/// let seed = "127.0.0.1:7947".parse().unwrap();
/// let mut node = Node::new(identity, Config::lan(), vec![seed], Duration::ZERO, 1).unwrap();
/// let mut out = Effects::default();
/// node.handle_timeout(node.poll_timeout(), &mut out);
/// for (to, datagram) in out.take_sends() {
///     assert_eq!(to, seed); // a joining node asks its seed first
///     assert!(!datagram.is_empty());
/// }
/// ```
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// Datagrams to send: (destination, bytes).
    pub sends: Vec<(SocketAddr, Vec<u8>)>,
    /// Events, for logging, counting or assertions.
    pub events: Vec<Event>,
}

impl Effects {
    /// Takes the datagrams collected so far, leaving none.
    pub fn take_sends(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.sends)
    }

    /// Takes the events collected so far, leaving none.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.events.is_empty()
    }
}

impl Output for Effects {
    fn send(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.sends.push((to, datagram));
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}
