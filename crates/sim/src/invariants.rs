//! The invariants the simulator checks, and the violation each one reports.
//!
//! Safety invariants are checked after every step of virtual time from the first step of
//! every fault, with no grace period (and the event-driven ones as soon as the event
//! happens): two self-named leaders at once ([`Violation::TwoLeaders`]), two partition
//! groups holding quorum longer than `quorum_overlap_bound` after the cut
//! ([`Violation::SplitBrain`]), a minority convicting or evicting a member across the cut
//! ([`Violation::MinorityDecision`]), FAILED-then-HEALTHY at one generation, datagrams over
//! the MTU, datagrams a peer cannot decode. One liveness invariant is checked by the
//! simulator itself with a pending deadline ([`Violation::NotRecovered`]: quorum back after
//! a heal or a resume); the others need a scenario's deadline, so scenarios check them with
//! [`crate::Sim::wait_for`]: a silent member is eventually convicted by everyone, a healed
//! partition converges.

use std::collections::BTreeMap;
use std::time::Duration;

use membership::Liveness;

use crate::process::Process;

/// An invariant that did not hold. Every variant says when (virtual seconds) and who.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    /// Two groups of a partition both held quorum longer than `quorum_overlap_bound` after
    /// the cut.
    #[error("split brain at {at:.3}s ({since_cut:.3}s after the cut, bound {bound:.3}s): nodes {a} and {b}, in partition groups {group_a} and {group_b}, both hold quorum")]
    SplitBrain {
        /// Virtual time, seconds.
        at: f64,
        /// Seconds since the cut.
        since_cut: f64,
        /// The allowed overlap, seconds.
        bound: f64,
        /// A quorum holder on one side.
        a: String,
        /// Its partition group.
        group_a: u32,
        /// A quorum holder on another side.
        b: String,
        /// Its partition group.
        group_b: u32,
    },
    /// Two live nodes at once held quorum and named themselves leader.
    #[error("two leaders at {at:.3}s: {a} and {b} both hold quorum and name themselves leader")]
    TwoLeaders {
        /// Virtual time, seconds.
        at: f64,
        /// One self-named leader.
        a: String,
        /// Another.
        b: String,
    },
    /// A node on a side holding at most half of the voters convicted or evicted a member on
    /// another side of the partition, later than the lease bound after the cut.
    #[error("minority decision at {at:.3}s: {observer} (group {group_observer}, {voters_in_group} of {voters} voters at the cut) emitted {event} for {member} (group {group_member})")]
    MinorityDecision {
        /// Virtual time, seconds.
        at: f64,
        /// The deciding node.
        observer: String,
        /// Its partition group.
        group_observer: u32,
        /// Voters of its table in its group at the cut.
        voters_in_group: usize,
        /// Voters of its table at the cut.
        voters: usize,
        /// `member_failed` or `member_evicted`.
        event: &'static str,
        /// The member decided on.
        member: String,
        /// The member's partition group.
        group_member: u32,
    },
    /// A node connected to a majority of its voters did not hold quorum in time after a
    /// heal or a resume.
    #[error("not recovered at {at:.3}s: {node} reaches {reached} of its {voters} voters but has not held quorum since {after} (bound {bound:.3}s)")]
    NotRecovered {
        /// Virtual time, seconds.
        at: f64,
        /// The node without quorum.
        node: String,
        /// What started the clock ("the heal at 12.000s", "n00003's resume at ...").
        after: String,
        /// Seconds allowed.
        bound: f64,
        /// Voters of its table it is connected to (itself included).
        reached: usize,
        /// Voters of its table.
        voters: usize,
    },
    /// An observer saw `member` Alive again at a generation it had already seen FAILED.
    #[error("at {at:.3}s observer {observer} sees {member} ALIVE at generation {generation}, which it had seen FAILED")]
    FailedRevived {
        /// Virtual time, seconds.
        at: f64,
        /// The observer.
        observer: String,
        /// The member.
        member: String,
        /// The generation seen FAILED, then alive.
        generation: u64,
    },
    /// A node sent a datagram larger than the configured maximum.
    #[error("at {at:.3}s {from} sent a {bytes}-byte datagram (maximum {max})")]
    Oversize {
        /// Virtual time, seconds.
        at: f64,
        /// The sender.
        from: String,
        /// Its size.
        bytes: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A datagram between two honest nodes failed to decode.
    #[error("at {at:.3}s {to} could not decode a datagram from {from}: {error}")]
    Undecodable {
        /// Virtual time, seconds.
        at: f64,
        /// The sender.
        from: String,
        /// The receiver.
        to: String,
        /// The decoder's error.
        error: String,
    },
    /// A liveness property did not hold by its deadline.
    #[error("at {at:.3}s: {what}")]
    Deadline {
        /// Virtual time, seconds.
        at: f64,
        /// What did not happen in time.
        what: String,
    },
}

impl Violation {
    /// A short name of the invariant.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::SplitBrain { .. } => "split_brain",
            Violation::TwoLeaders { .. } => "two_leaders",
            Violation::MinorityDecision { .. } => "minority_decision",
            Violation::NotRecovered { .. } => "not_recovered",
            Violation::FailedRevived { .. } => "failed_revived",
            Violation::Oversize { .. } => "oversize",
            Violation::Undecodable { .. } => "undecodable",
            Violation::Deadline { .. } => "deadline",
        }
    }
}

/// Per (observer, member) the highest generation the observer has seen FAILED.
///
/// Fed by `MemberFailed` events and swept every step: if the observer's record of the
/// member is Alive at a generation not above the recorded one, the invariant broke.
#[derive(Debug, Default)]
pub struct FailedLedger {
    seen: BTreeMap<(usize, usize), u64>,
}

impl FailedLedger {
    /// Notes that `observer` saw `member` FAILED at `generation`.
    pub fn record(&mut self, observer: usize, member: usize, generation: u64) {
        let g = self.seen.entry((observer, member)).or_insert(generation);
        *g = (*g).max(generation);
    }

    /// Forgets what `observer` saw (it restarted with an empty table).
    pub fn forget_observer(&mut self, observer: usize) {
        self.seen.retain(|&(o, _), _| o != observer);
    }

    /// Number of (observer, member) pairs tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Checks one observer's view of one member.
    pub fn check_pair(
        &self,
        procs: &[Process],
        observer: usize,
        member: usize,
        now: Duration,
    ) -> Result<(), Violation> {
        let Some(&g) = self.seen.get(&(observer, member)) else {
            return Ok(());
        };
        let Some(node) = procs[observer].node.as_ref() else {
            return Ok(());
        };
        match node.record(&procs[member].id) {
            Some(r) if r.liveness == Liveness::Alive && r.generation <= g => {
                Err(Violation::FailedRevived {
                    at: now.as_secs_f64(),
                    observer: procs[observer].id.clone(),
                    member: procs[member].id.clone(),
                    generation: r.generation,
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks every tracked pair, dropping pairs that can no longer break (the member
    /// moved on to a newer generation in the observer's table).
    pub fn sweep(&mut self, procs: &[Process], now: Duration) -> Result<(), Violation> {
        let mut stale = Vec::new();
        for (&(o, m), &g) in &self.seen {
            // one lookup per pair: this runs every step over every conviction seen
            let Some(r) = procs[o].node.as_ref().and_then(|n| n.record(&procs[m].id)) else {
                continue;
            };
            if r.liveness == Liveness::Alive && r.generation <= g {
                return Err(Violation::FailedRevived {
                    at: now.as_secs_f64(),
                    observer: procs[o].id.clone(),
                    member: procs[m].id.clone(),
                    generation: r.generation,
                });
            }
            if r.generation > g {
                stale.push((o, m));
            }
        }
        for k in stale {
            self.seen.remove(&k);
        }
        Ok(())
    }
}

/// The first two entries of `states` that are self-named leaders: `(index, holds quorum
/// and names itself leader)`.
pub fn two_leaders(states: impl IntoIterator<Item = (usize, bool)>) -> Option<(usize, usize)> {
    let mut first = None;
    for (i, leads) in states {
        if !leads {
            continue;
        }
        match first {
            None => first = Some(i),
            Some(a) => return Some((a, i)),
        }
    }
    None
}

/// The first quorum holders of two different groups: `states` yields `(index, group, holds
/// quorum)`. Returns `((a, group_a), (b, group_b))`.
pub fn two_groups_with_quorum(
    states: impl IntoIterator<Item = (usize, u32, bool)>,
) -> Option<((usize, u32), (usize, u32))> {
    let mut first: Option<(usize, u32)> = None;
    for (i, g, q) in states {
        if !q {
            continue;
        }
        match first {
            None => first = Some((i, g)),
            Some((a, ga)) if ga != g => return Some(((a, ga), (i, g))),
            Some(_) => {}
        }
    }
    None
}

/// Whether a node whose table, at the cut, listed voters in `voter_groups` (one partition
/// group per voter) sits in a minority: its own group `group` holds at most half of them.
/// Returns `(minority, voters in its group, voters)`.
pub fn minority_at_cut(
    group: u32,
    voter_groups: impl IntoIterator<Item = u32>,
) -> (bool, usize, usize) {
    let (mut mine, mut all) = (0, 0);
    for g in voter_groups {
        all += 1;
        if g == group {
            mine += 1;
        }
    }
    (2 * mine <= all, mine, all)
}

/// A deadline by which every eligible node must have held quorum at least once (the
/// liveness check after a heal or a resume).
#[derive(Debug, Clone)]
pub struct Recovery {
    /// What started the clock, for the message.
    pub after: String,
    /// When the clock started; `None` while it waits for a resumed node to be seen ALIVE.
    pub from: Option<Duration>,
    /// How long after `from` every eligible node must have held quorum.
    pub bound: Duration,
    /// The resumed node whose ALIVE-ness starts the clock (resume only).
    pub resumed: Option<usize>,
    /// When the trigger happened.
    pub triggered: Duration,
    /// Per node: the life it had at the trigger, or `None` once it held quorum (or did not
    /// exist).
    pub pending: Vec<Option<u64>>,
}

impl Recovery {
    /// The deadline, once the clock started.
    pub fn deadline(&self) -> Option<Duration> {
        self.from.map(|f| f + self.bound)
    }

    /// Marks node `i` recovered.
    pub fn recovered(&mut self, i: usize) {
        if let Some(p) = self.pending.get_mut(i) {
            *p = None;
        }
    }

    /// At the deadline: the first still-pending node that `eligible` says should have quorum
    /// (`eligible(i, life)` returns `Some((reached, voters))` when node `i`, still in life
    /// `life`, is connected to a majority of its voters and lacks quorum).
    pub fn first_unrecovered(
        &self,
        mut eligible: impl FnMut(usize, u64) -> Option<(usize, usize)>,
    ) -> Option<(usize, usize, usize)> {
        self.pending
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.map(|l| (i, l)))
            .find_map(|(i, l)| eligible(i, l).map(|(r, v)| (i, r, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_self_named_leaders_are_found() {
        assert_eq!(two_leaders([(0, false), (1, true), (2, false)]), None);
        assert_eq!(
            two_leaders([(0, true), (1, false), (2, true)]),
            Some((0, 2))
        );
    }

    #[test]
    fn quorum_in_two_groups_is_found_and_one_group_is_not() {
        assert_eq!(
            two_groups_with_quorum([(0, 1, true), (1, 1, true), (2, 2, false)]),
            None
        );
        assert_eq!(
            two_groups_with_quorum([(0, 1, true), (1, 1, true), (2, 2, true)]),
            Some(((0, 1), (2, 2)))
        );
    }

    #[test]
    fn minority_is_at_most_half_of_the_voters() {
        assert_eq!(minority_at_cut(1, [1, 1, 2, 2]), (true, 2, 4));
        assert_eq!(minority_at_cut(1, [1, 1, 2]), (false, 2, 3));
        assert_eq!(minority_at_cut(3, [1, 1, 2]), (true, 0, 3));
    }

    #[test]
    fn a_recovery_names_the_first_eligible_node_still_pending() {
        let mut r = Recovery {
            after: "the heal at 1.000s".into(),
            from: Some(Duration::from_secs(1)),
            bound: Duration::from_secs(6),
            resumed: None,
            triggered: Duration::from_secs(1),
            pending: vec![Some(1), Some(1), Some(2)],
        };
        assert_eq!(r.deadline(), Some(Duration::from_secs(7)));
        r.recovered(0);
        // node 1 is not connected to a majority; node 2 is, and never held quorum
        let found = r.first_unrecovered(|i, _| (i == 2).then_some((3, 5)));
        assert_eq!(found, Some((2, 3, 5)));
        r.recovered(2);
        assert_eq!(r.first_unrecovered(|i, _| (i == 2).then_some((3, 5))), None);
    }
}
