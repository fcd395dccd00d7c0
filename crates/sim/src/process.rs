//! One simulated process: its protocol core, lifecycle state and traffic counters.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use membership::Node;

/// Where a simulated process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running: it receives datagrams and its timers fire.
    Running,
    /// Frozen until `until`: inbound datagrams queue up, timers do not fire, nothing is sent.
    Paused {
        /// When it resumes.
        until: Duration,
    },
    /// Crashed: silent, datagrams to it are dropped. [`crate::Sim::restart`] brings it back.
    Crashed,
    /// Left gracefully and stopped.
    Stopped,
}

/// A simulated process slot. The slot keeps its id and address across restarts.
#[derive(Debug)]
pub struct Process {
    /// The node id (`n0000`, `n0001`, ...).
    pub id: String,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Generation of the current (or last) life.
    pub generation: u64,
    /// Bumped at every restart so that stale timers of an old life are ignored.
    pub life: u64,
    /// Lifecycle state.
    pub state: State,
    /// The protocol core of the current life (None once crashed or stopped).
    pub node: Option<Node>,
    /// Datagrams that arrived while paused, in arrival order.
    pub backlog: Vec<(SocketAddr, Vec<u8>)>,
    /// The time of the one timer entry that is current on the agenda.
    pub timer_at: Option<Duration>,
    /// Bytes this slot sent, over all its lives.
    pub bytes_sent: u64,
    /// Datagrams this slot sent, over all its lives.
    pub datagrams_sent: u64,
    /// Until when a conviction of this process is excused (it was faulty: paused long,
    /// partitioned, isolated). `Duration::MAX` while the fault lasts.
    pub excused_until: Duration,
    /// Rate of this process's clock against virtual time (1.0: exact).
    pub clock_rate: f64,
    /// Virtual time at which the current life's local clock equals virtual time.
    pub clock_anchor: Duration,
    /// At the next resume, fire the overdue timer before delivering the backlog (a starved
    /// process whose event loop happens to pick its timer first, see [`crate::Sim::starve`]).
    pub timers_first: bool,
}

impl Process {
    /// A fresh slot for node index `i` (not started yet).
    pub fn new(i: usize) -> Self {
        Process {
            id: node_id(i),
            addr: node_addr(i),
            generation: 0,
            life: 0,
            state: State::Stopped,
            node: None,
            backlog: Vec::new(),
            timer_at: None,
            bytes_sent: 0,
            datagrams_sent: 0,
            excused_until: Duration::ZERO,
            clock_rate: 1.0,
            clock_anchor: Duration::ZERO,
            timers_first: false,
        }
    }

    /// Running and not paused: it takes part in the cluster right now.
    pub fn is_live(&self) -> bool {
        self.state == State::Running
    }

    /// The local clock reading at virtual time `t`: `anchor + (t - anchor) * rate`
    /// (monotonic; exactly `t` when the rate is 1).
    pub fn local_time(&self, t: Duration) -> Duration {
        if self.clock_rate == 1.0 || t <= self.clock_anchor {
            return t;
        }
        let since = (t - self.clock_anchor).as_nanos() as f64 * self.clock_rate;
        self.clock_anchor + Duration::from_nanos(since as u64)
    }

    /// The first virtual time at which the local clock reads at least `local`
    /// (`Duration::MAX` stays so).
    pub fn global_time(&self, local: Duration) -> Duration {
        if self.clock_rate == 1.0 || local == Duration::MAX || local <= self.clock_anchor {
            return local;
        }
        let since = (local - self.clock_anchor).as_nanos() as f64 / self.clock_rate;
        let mut t = self.clock_anchor + Duration::from_nanos(since.ceil() as u64);
        while self.local_time(t) < local {
            t += Duration::from_nanos(1);
        }
        t
    }

    /// Running or paused: the process exists (a paused one will come back).
    pub fn exists(&self) -> bool {
        matches!(self.state, State::Running | State::Paused { .. })
    }
}

/// The id of node index `i`; zero-padded so that id order is index order.
pub fn node_id(i: usize) -> String {
    format!("n{i:05}")
}

/// The address of node index `i`: 10.a.b.c:7946 with i = a * 62,500 + b * 250 + (c - 1).
pub fn node_addr(i: usize) -> SocketAddr {
    let a = (i / 62_500) as u8;
    let b = (i % 62_500 / 250) as u8;
    let c = (i % 250 + 1) as u8;
    SocketAddr::from((Ipv4Addr::new(10, a, b, c), 7946))
}

/// The node index of an address built by [`node_addr`].
pub fn index_of(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(v4) if v4.port() == 7946 => {
            let [ten, a, b, c] = v4.ip().octets();
            if ten != 10 || c == 0 || c > 250 {
                return None;
            }
            Some(a as usize * 62_500 + b as usize * 250 + (c as usize - 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_and_invertible() {
        for i in [0, 1, 249, 250, 999, 10_000, 62_499] {
            assert_eq!(index_of(node_addr(i)), Some(i));
        }
        assert_eq!(node_id(7), "n00007");
    }

    #[test]
    fn a_skewed_clock_is_monotonic_and_converts_back() {
        let mut p = Process::new(0);
        assert_eq!(p.local_time(Duration::from_secs(3)), Duration::from_secs(3));
        p.clock_anchor = Duration::from_secs(2);
        p.clock_rate = 1.01;
        let l = p.local_time(Duration::from_secs(102));
        assert_eq!(l, Duration::from_secs(103));
        let mut last = Duration::ZERO;
        for ms in 0..5000u64 {
            let t = Duration::from_millis(ms * 37);
            let l = p.local_time(t);
            assert!(l >= last);
            last = l;
            let g = p.global_time(l + Duration::from_nanos(ms));
            assert!(p.local_time(g) >= l + Duration::from_nanos(ms));
            assert!(g <= t + Duration::from_micros(10), "{g:?} {t:?}");
        }
        p.clock_rate = 0.99;
        assert_eq!(
            p.local_time(Duration::from_secs(102)),
            Duration::from_secs(101)
        );
    }
}
