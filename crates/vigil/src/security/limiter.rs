//! Rate limits on incoming datagrams: token buckets per source address, checked before a
//! datagram is opened or decoded ([`SourceLimiter`]), and per member, checked once its seal
//! opened ([`MemberLimiter`]).
//!
//! The per-source bucket is checked before a datagram is opened or decoded, so a flood from
//! one address costs a hash lookup per datagram and cannot crowd out the heartbeats of the
//! others. In a keyed cluster it is charged only for what is not a member's fresh traffic:
//! a datagram that opens under the key and passes the replay window gets its token back
//! ([`RateLimiter::refund`]), so garbage, unsealed datagrams and replays sent from other
//! ports never touch a member's bucket, and even those sent from the member's own address
//! and port leave its real datagrams through as long as the bucket holds tokens.
//! The per-member bucket, keyed by the sender in the seal's stamp, then bounds what one
//! member (whatever addresses it sends from) makes this node do. A member sends a
//! few datagrams per second to any one peer (heartbeats, gossip, probes) and a short burst
//! when it pages its table to a joiner, so the defaults (200/s, burst 400) leave room for
//! a 1000-member join while capping a flooder at a small fraction of a node's work.
//!
//! The source is the address and port, not the IP alone: several members may share one
//! host (`vigil up`, containers behind one NAT address), and a flood from one of its ports
//! must not throttle the others.
//!
//! The table of buckets is bounded: when full, buckets idle long enough to be full again
//! are dropped (they carry no state), and if none is, a new source is refused. A spoofing
//! flooder that varies its source address therefore fills the table and then loses, while
//! known peers keep their buckets.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Duration;

/// Most sources (or members) tracked at once.
pub const MAX_SOURCES: usize = 65_536;

/// Token buckets by source address (before authentication).
pub type SourceLimiter = RateLimiter<SocketAddr>;

/// Token buckets by the member a seal's stamp names (after authentication).
pub type MemberLimiter = RateLimiter<u64>;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Duration,
}

/// Token buckets by key: a source address, or a member.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, Bucket>,
    max_sources: usize,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// `rate` datagrams per second per source, bursts up to `burst`. A rate of 0 disables
    /// the limit.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self::with_capacity(rate, burst, MAX_SOURCES)
    }

    fn with_capacity(rate: u32, burst: u32, max_sources: usize) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
            max_sources,
        }
    }

    /// Gives back the token a datagram from `from` took (it turned out to be a member's
    /// fresh traffic, which the per-source bucket does not count).
    pub fn refund(&mut self, from: K) {
        let burst = self.burst;
        if let Some(b) = self.buckets.get_mut(&from) {
            b.tokens = (b.tokens + 1.0).min(burst);
        }
    }

    /// Whether a datagram from `from` arriving at `now` may be processed.
    pub fn allow(&mut self, from: K, now: Duration) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if !self.buckets.contains_key(&from) && self.buckets.len() >= self.max_sources {
            self.forget_idle(now);
            if self.buckets.len() >= self.max_sources {
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(from).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_sub(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn forget_idle(&mut self, now: Duration) {
        let refill = Duration::from_secs_f64(self.burst / self.rate);
        self.buckets
            .retain(|_, b| now.saturating_sub(b.last) < refill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut l = SourceLimiter::new(100, 10);
        let a = addr("10.0.0.1:7946");
        let passed = (0..50).filter(|_| l.allow(a, ms(0))).count();
        assert_eq!(passed, 10);
        // 100 ms later: 10 more tokens
        let passed = (0..50).filter(|_| l.allow(a, ms(100))).count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn one_flooding_source_does_not_touch_another_even_on_the_same_host() {
        let mut l = SourceLimiter::new(100, 10);
        for i in 0..10_000u64 {
            l.allow(addr("10.0.0.1:9999"), Duration::from_micros(i * 10));
        }
        assert!((0..10).all(|_| l.allow(addr("10.0.0.2:7946"), ms(100))));
        assert!((0..10).all(|_| l.allow(addr("10.0.0.1:7946"), ms(100))));
    }

    #[test]
    fn refunded_datagrams_do_not_count() {
        let mut l = SourceLimiter::new(100, 10);
        let a = addr("10.0.0.1:7946");
        for _ in 0..1000 {
            assert!(l.allow(a, ms(0)));
            l.refund(a);
        }
        let passed = (0..50).filter(|_| l.allow(a, ms(0))).count();
        assert_eq!(passed, 10, "refunds never raise a bucket above its burst");
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let mut l = SourceLimiter::new(0, 0);
        assert!((0..100_000).all(|_| l.allow(addr("10.0.0.1:1"), ms(0))));
    }

    #[test]
    fn the_table_is_bounded_and_idle_sources_make_room() {
        let mut l = SourceLimiter::with_capacity(100, 10, 2);
        assert!(l.allow(addr("10.0.0.1:1"), ms(0)));
        assert!(l.allow(addr("10.0.0.2:1"), ms(0)));
        let c = addr("10.0.0.3:1");
        assert!(!l.allow(c, ms(10)), "full, and nobody idle");
        assert!(l.allow(c, ms(1000)), "A and B refilled: forgotten");
        assert!(l.buckets.len() <= 2);
    }
}
