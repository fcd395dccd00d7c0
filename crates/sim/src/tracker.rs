//! Trackers: how long one membership change takes to reach every live member.
//!
//! A tracker holds a [`Predicate`] about one observer's table. The simulator evaluates it
//! on an observer right after each of that observer's handler calls (the only moments its
//! table can change), so the recorded times are exact, not rounded to a check step. A
//! tracker completes when every live observer (the subject excluded) has satisfied it.

use std::time::Duration;

use membership::{Liveness, Node};

/// A question about one observer's member table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// The observer sees exactly `expected` members Alive (itself included): cold-join
    /// convergence.
    AllAlive {
        /// Number of live members.
        expected: usize,
    },
    /// The observer lists `member` Alive at `generation` or later (a join or restart spread).
    Knows {
        /// The member's id.
        member: String,
        /// The generation that must be known.
        generation: u64,
    },
    /// The observer no longer sees `member` Alive at `generation` (suspected, failed,
    /// removed, forgotten, or a later generation).
    Suspects {
        /// The member's id.
        member: String,
        /// The generation that died.
        generation: u64,
    },
    /// The observer has convicted `member` at `generation` (FAILED, evicted or forgotten).
    Failed {
        /// The member's id.
        member: String,
        /// The generation that died.
        generation: u64,
    },
    /// The observer sees `member` LEFT (or evicted, or forgotten) at `generation`.
    Left {
        /// The member's id.
        member: String,
        /// The generation that left.
        generation: u64,
    },
}

impl Predicate {
    /// Evaluates the predicate on one observer.
    pub fn holds(&self, node: &Node) -> bool {
        match self {
            Predicate::AllAlive { expected } => node.live_count() == *expected,
            Predicate::Knows { member, generation } => node
                .record(member)
                .is_some_and(|r| r.generation >= *generation && r.liveness == Liveness::Alive),
            Predicate::Suspects { member, generation } => match node.record(member) {
                None => true,
                Some(r) => r.generation > *generation || r.liveness != Liveness::Alive,
            },
            Predicate::Failed { member, generation } => match node.record(member) {
                None => true,
                Some(r) => {
                    r.generation > *generation
                        || matches!(r.liveness, Liveness::Failed | Liveness::Removed)
                }
            },
            Predicate::Left { member, generation } => match node.record(member) {
                None => true,
                Some(r) => {
                    r.generation > *generation
                        || matches!(r.liveness, Liveness::Left | Liveness::Removed)
                }
            },
        }
    }

    /// The member the predicate is about, which does not observe itself.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Predicate::AllAlive { .. } => None,
            Predicate::Knows { member, .. }
            | Predicate::Suspects { member, .. }
            | Predicate::Failed { member, .. }
            | Predicate::Left { member, .. } => Some(member),
        }
    }
}

/// When the last of `observers` satisfied a change tracked since `started` (`done_at`: each
/// observer's time by node index), or `None` while one of them has not. Shared by
/// [`crate::Sim`]'s trackers and the peers harness's.
pub fn completed_at(
    started: Duration,
    done_at: &[Option<Duration>],
    observers: impl IntoIterator<Item = usize>,
) -> Option<Duration> {
    let mut last = started;
    for i in observers {
        last = last.max(done_at.get(i).copied().flatten()?);
    }
    Some(last)
}

/// Handle of a tracker inside a [`crate::Sim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackerId(pub(crate) usize);

/// Progress of one change through the cluster.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// What is tracked.
    pub predicate: Predicate,
    /// When tracking started (the change happened).
    pub started: Duration,
    /// When the first observer satisfied the predicate.
    pub first_at: Option<Duration>,
    /// When the last live observer satisfied it (set once complete).
    pub all_at: Option<Duration>,
    /// Per node index: when that observer first satisfied it.
    pub(crate) done_at: Vec<Option<Duration>>,
}

impl Tracker {
    pub(crate) fn new(predicate: Predicate, started: Duration, nodes: usize) -> Self {
        Tracker {
            predicate,
            started,
            first_at: None,
            all_at: None,
            done_at: vec![None; nodes],
        }
    }

    /// Whether every live observer has satisfied the predicate.
    pub fn is_complete(&self) -> bool {
        self.all_at.is_some()
    }

    /// Seconds from the change to the first observer, if any.
    pub fn first_s(&self) -> Option<f64> {
        self.first_at.map(|t| (t - self.started).as_secs_f64())
    }

    /// Seconds from the change to the last live observer, once complete.
    pub fn all_s(&self) -> Option<f64> {
        self.all_at.map(|t| (t - self.started).as_secs_f64())
    }

    /// Seconds from the first observer to the last (pure dissemination time), once complete.
    pub fn spread_s(&self) -> Option<f64> {
        Some((self.all_at? - self.first_at?).as_secs_f64())
    }

    /// How many observers have satisfied it so far.
    pub fn observers_done(&self) -> usize {
        self.done_at.iter().filter(|d| d.is_some()).count()
    }

    /// Records observer `i` if the predicate holds on `node`.
    pub(crate) fn observe(&mut self, i: usize, node: &Node, now: Duration) {
        if self.all_at.is_some() {
            return;
        }
        if i >= self.done_at.len() {
            self.done_at.resize(i + 1, None);
        }
        if self.done_at[i].is_none()
            && self.predicate.subject() != Some(node.id())
            && self.predicate.holds(node)
        {
            self.done_at[i] = Some(now);
            self.first_at = Some(self.first_at.map_or(now, |f| f.min(now)));
        }
    }
}
