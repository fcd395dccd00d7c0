//! The replay window: each sealed datagram is accepted once.
//!
//! Every seal carries a [`Stamp`]: the sender (a hash of its member id), the start of its
//! process (`boot`, its first generation in wall-clock milliseconds) and a counter the
//! process raises for every datagram it seals. Per sender this window keeps the boot it
//! last accepted, the highest counter of that boot, and which of the [`WINDOW`] counters
//! below it were seen (one bit each), in the manner of IPsec's and WireGuard's
//! anti-replay windows:
//!
//! - a counter above the highest is new: the window slides up;
//! - a counter within [`WINDOW`] below the highest is new if its bit is clear (a datagram
//!   overtaken by later ones), a duplicate if set;
//! - a counter [`WINDOW`] or more below the highest is refused as too old (it may have
//!   been accepted already; the window no longer says);
//! - a later boot (the sender restarted) starts a fresh window; an earlier boot than the
//!   one held is an older life of the sender, refused. This relies on a restarted member's
//!   clock reading later than at its previous start, as its generation already does.
//!
//! Memory is bounded: [`MAX_SENDERS`] senders of about 170 bytes each (2.8 MB). Only
//! datagrams that open under the cluster key reach the window, so only key holders create
//! entries. When it is full, the sender heard from least recently is forgotten; a replay
//! of that sender's datagrams is then accepted once (a fresh window starts at the first
//! one), as are the at most [`WINDOW`] datagrams before the first one a newly started
//! receiver hears from each sender. Those are old datagrams of a live life, which the
//! core's merge and heartbeat sequence guard take for what they are.

use std::collections::HashMap;

use super::keyring::Stamp;

/// Counters remembered below the highest one, per sender.
pub const WINDOW: u64 = 1024;
/// Most senders remembered at once.
pub const MAX_SENDERS: usize = 16_384;

const WORDS: usize = (WINDOW / 64) as usize;

/// Why a stamped datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Replay {
    /// This counter was accepted already.
    #[error("a duplicate of a datagram already accepted")]
    Duplicate,
    /// Too far below the newest counter to tell.
    #[error("older than the replay window")]
    TooOld,
    /// From an earlier process of a sender that has restarted since.
    #[error("from an earlier start of its sender")]
    OlderBoot,
}

#[derive(Debug, Clone)]
struct Window {
    boot: u64,
    highest: u64,
    /// Bit `i` (word `i / 64`, bit `i % 64`): counter `highest - i` was accepted.
    seen: [u64; WORDS],
    /// When this sender was last accepted, in checks (for eviction).
    used: u64,
}

impl Window {
    fn new(stamp: &Stamp, used: u64) -> Window {
        let mut seen = [0; WORDS];
        seen[0] = 1;
        Window {
            boot: stamp.boot,
            highest: stamp.counter,
            seen,
            used,
        }
    }

    /// Shifts the bits up by `by` positions (counters move away from the highest).
    fn slide(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        for i in (0..WORDS).rev() {
            let lo = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let below = i.checked_sub(words + 1).map_or(0, |j| self.seen[j]);
            self.seen[i] = if bits == 0 {
                lo
            } else {
                (lo << bits) | (below >> (64 - bits))
            };
        }
    }
}

/// Per-sender replay state; see the module docs.
#[derive(Debug)]
pub struct ReplayWindow {
    senders: HashMap<u64, Window>,
    max_senders: usize,
    checks: u64,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::with_capacity(MAX_SENDERS)
    }
}

impl ReplayWindow {
    /// An empty window for at most `max_senders` senders (at least 1).
    pub fn with_capacity(max_senders: usize) -> ReplayWindow {
        ReplayWindow {
            senders: HashMap::new(),
            max_senders: max_senders.max(1),
            checks: 0,
        }
    }

    /// Senders remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.senders.len()
    }

    /// Accepts `stamp` (and remembers it) if it was not seen; refuses it otherwise.
    pub fn check(&mut self, stamp: &Stamp) -> Result<(), Replay> {
        self.checks += 1;
        let used = self.checks;
        let Some(w) = self.senders.get_mut(&stamp.sender) else {
            if self.senders.len() >= self.max_senders {
                self.forget_least_recent();
            }
            self.senders.insert(stamp.sender, Window::new(stamp, used));
            return Ok(());
        };
        if stamp.boot < w.boot {
            return Err(Replay::OlderBoot);
        }
        if stamp.boot > w.boot {
            *w = Window::new(stamp, used);
            return Ok(());
        }
        if stamp.counter > w.highest {
            w.slide(stamp.counter - w.highest);
            w.highest = stamp.counter;
            w.seen[0] |= 1;
            w.used = used;
            return Ok(());
        }
        let back = w.highest - stamp.counter;
        if back >= WINDOW {
            return Err(Replay::TooOld);
        }
        let (word, bit) = ((back / 64) as usize, back % 64);
        if w.seen[word] & (1 << bit) != 0 {
            return Err(Replay::Duplicate);
        }
        w.seen[word] |= 1 << bit;
        w.used = used;
        Ok(())
    }

    fn forget_least_recent(&mut self) {
        if let Some(oldest) = self
            .senders
            .iter()
            .min_by_key(|(_, w)| w.used)
            .map(|(k, _)| *k)
        {
            self.senders.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sender: u64, boot: u64, counter: u64) -> Stamp {
        Stamp {
            sender,
            boot,
            counter,
        }
    }

    #[test]
    fn each_counter_is_accepted_once_in_any_order_within_the_window() {
        let mut w = ReplayWindow::default();
        // mostly increasing, with some overtaken datagrams arriving late
        for c in [5, 3, 4, 10, 1, 2, 9, 600, 8, 6, 7] {
            assert_eq!(w.check(&stamp(1, 100, c)), Ok(()), "first copy of {c}");
        }
        for c in [5, 3, 4, 10, 1, 2, 9, 600, 8, 6, 7] {
            assert_eq!(
                w.check(&stamp(1, 100, c)),
                Err(Replay::Duplicate),
                "second copy of {c}"
            );
        }
        // another sender with the same counters is its own business
        assert_eq!(w.check(&stamp(2, 100, 5)), Ok(()));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn duplicates_are_caught_across_every_bit_of_the_window() {
        let mut w = ReplayWindow::default();
        for c in 1..=5000u64 {
            assert_eq!(w.check(&stamp(1, 1, c)), Ok(()));
        }
        for back in 0..WINDOW {
            assert_eq!(
                w.check(&stamp(1, 1, 5000 - back)),
                Err(Replay::Duplicate),
                "{back} below the highest"
            );
        }
        // a gap left open is still accepted late, once
        let mut w = ReplayWindow::default();
        for c in (1..=3000u64).filter(|c| c % 100 != 0) {
            assert_eq!(w.check(&stamp(1, 1, c)), Ok(()));
        }
        for c in (2000..=3000u64).step_by(100) {
            assert_eq!(w.check(&stamp(1, 1, c)), Ok(()), "late {c}");
            assert_eq!(w.check(&stamp(1, 1, c)), Err(Replay::Duplicate));
        }
    }

    #[test]
    fn counters_older_than_the_window_are_refused() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(&stamp(1, 1, 10_000)), Ok(()));
        assert_eq!(w.check(&stamp(1, 1, 10_000 - WINDOW + 1)), Ok(()));
        assert_eq!(w.check(&stamp(1, 1, 10_000 - WINDOW)), Err(Replay::TooOld));
        assert_eq!(w.check(&stamp(1, 1, 1)), Err(Replay::TooOld));
        // a jump further than the window forgets everything below it
        assert_eq!(w.check(&stamp(1, 1, 50_000)), Ok(()));
        assert_eq!(w.check(&stamp(1, 1, 10_000)), Err(Replay::TooOld));
    }

    #[test]
    fn a_restarted_sender_starts_a_fresh_window_and_its_old_life_is_refused() {
        let mut w = ReplayWindow::default();
        for c in 1..=500 {
            assert_eq!(w.check(&stamp(1, 1_000, c)), Ok(()));
        }
        // the new process counts from 1 again, under a later boot
        for c in 1..=10 {
            assert_eq!(w.check(&stamp(1, 2_000, c)), Ok(()), "restarted, {c}");
        }
        assert_eq!(w.check(&stamp(1, 2_000, 3)), Err(Replay::Duplicate));
        // captures of the earlier life, even counters it never used, are refused
        for c in [1, 499, 500, 501, 100_000] {
            assert_eq!(w.check(&stamp(1, 1_000, c)), Err(Replay::OlderBoot));
        }
    }

    #[test]
    fn memory_is_bounded_and_the_least_recent_sender_goes_first() {
        let mut w = ReplayWindow::with_capacity(3);
        for s in 1..=3 {
            assert_eq!(w.check(&stamp(s, 1, 1)), Ok(()));
        }
        assert_eq!(w.check(&stamp(1, 1, 2)), Ok(())); // 1 is recent again
        assert_eq!(w.check(&stamp(4, 1, 1)), Ok(())); // 2 is forgotten
        assert_eq!(w.len(), 3);
        assert_eq!(w.check(&stamp(1, 1, 2)), Err(Replay::Duplicate));
        assert_eq!(w.check(&stamp(3, 1, 1)), Err(Replay::Duplicate));
        // refused checks do not count as use: 3 is still the least recent
        assert_eq!(w.check(&stamp(5, 1, 1)), Ok(()));
        assert_eq!(w.check(&stamp(3, 1, 1)), Ok(()), "3 was forgotten");
    }

    #[test]
    fn sliding_by_every_distance_keeps_the_right_bits() {
        for by in 1..=(WINDOW + 1) {
            let mut w = ReplayWindow::default();
            for c in 1..=WINDOW {
                let _ = w.check(&stamp(1, 1, c));
            }
            assert_eq!(w.check(&stamp(1, 1, WINDOW + by)), Ok(()));
            for c in 1..=WINDOW {
                let expect = if WINDOW + by - c >= WINDOW {
                    Err(Replay::TooOld)
                } else {
                    Err(Replay::Duplicate)
                };
                assert_eq!(w.check(&stamp(1, 1, c)), expect, "slid {by}, counter {c}");
            }
            for c in (WINDOW + 1)..(WINDOW + by) {
                let expect = if WINDOW + by - c >= WINDOW {
                    Err(Replay::TooOld)
                } else {
                    Ok(())
                };
                assert_eq!(w.check(&stamp(1, 1, c)), expect, "slid {by}, gap {c}");
            }
        }
    }
}
