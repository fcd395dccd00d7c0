//! The invariants the simulator checks, and the violation each one reports.
//!
//! Safety invariants are checked after every step of virtual time (and the event-driven
//! ones as soon as the event happens): split brain, FAILED-then-HEALTHY at one generation,
//! datagrams over the MTU, datagrams a peer cannot decode. Liveness invariants need a
//! deadline, so scenarios check them with [`crate::Sim::wait_for`]: a silent member is
//! eventually convicted by everyone, a healed partition converges.

use std::collections::BTreeMap;
use std::time::Duration;

use membership::Liveness;

use crate::network::Network;
use crate::process::Process;

/// An invariant that did not hold. Every variant says when (virtual seconds) and who.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    /// Two sides of a two-way partition both held quorum at the same step, after the
    /// partition had lasted longer than the detection grace.
    #[error("split brain at {at:.3}s: nodes {a} and {b}, in partition groups {group_a} and {group_b}, both hold quorum")]
    SplitBrain {
        /// Virtual time, seconds.
        at: f64,
        /// A quorum holder on one side.
        a: String,
        /// Its partition group.
        group_a: u32,
        /// A quorum holder on another side.
        b: String,
        /// Its partition group.
        group_b: u32,
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

/// Two sides of a two-way partition never both hold quorum.
///
/// Only checked once the partition is older than `grace`: right after a cut, the minority
/// has not yet noticed that the majority is unreachable and still believes it holds quorum;
/// what must never happen is that both sides keep believing it once detection had time.
pub fn check_split_brain(
    procs: &[Process],
    network: &Network,
    now: Duration,
) -> Result<(), Violation> {
    if !network.is_partitioned() {
        return Ok(());
    }
    let mut holder_of_group: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, p) in procs.iter().enumerate() {
        if !p.is_live() {
            continue;
        }
        if p.node.as_ref().is_some_and(|n| n.has_quorum()) {
            holder_of_group.entry(network.group_of(i)).or_insert(i);
        }
    }
    let mut holders = holder_of_group.into_iter();
    if let (Some((ga, a)), Some((gb, b))) = (holders.next(), holders.next()) {
        return Err(Violation::SplitBrain {
            at: now.as_secs_f64(),
            a: procs[a].id.clone(),
            group_a: ga,
            b: procs[b].id.clone(),
            group_b: gb,
        });
    }
    Ok(())
}
