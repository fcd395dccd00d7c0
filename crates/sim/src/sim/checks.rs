//! The safety invariants [`Sim`] checks every step, and the bookkeeping they read.
//!
//! The loop in `mod.rs` calls `Sim::check` once per `step` of virtual time (and
//! `Sim::fail` for a violation raised while handling an event). Here are the checks
//! themselves: two self-named leaders, split brain across a cut, FAILED-then-HEALTHY (the
//! ledger sweep) and the recovery deadlines after a heal or a resume; the queries they and
//! the scenarios share (`holds_quorum`, `self_leaders`, `settled`); the note a cut and a heal
//! leave for them (`begin_cut`, `end_cut`, `push_recovery`); and completing trackers that
//! every live member satisfied. The decisions that need no simulator state (who counts as
//! two leaders, a minority at the cut, a recovery's deadline) live in
//! [`crate::invariants`]; this module gathers that state from the processes and the network
//! and turns a broken invariant into a [`Violation`].

use std::collections::BTreeMap;
use std::time::Duration;

use membership::Node;

use super::{Cut, Sim};
use crate::invariants::{self, Recovery, Violation};
use crate::process::Process;
use crate::tracker::completed_at;

impl Sim {
    /// The safety checks of one step.
    pub(super) fn check(&mut self) -> Result<(), Violation> {
        self.counters.checks += 1;
        // a violation raised by an event observed outside a dispatch stops the run here
        if let Some(v) = self.violation.take() {
            self.fail(v)?;
        }
        if let Err(v) = self.ledger.sweep(&self.procs, self.event_loop.now) {
            self.fail(v)?;
        }
        if let Err(v) = self.check_leaders() {
            self.fail(v)?;
        }
        if let Err(v) = self.check_split_brain() {
            self.fail(v)?;
        }
        if let Err(v) = self.check_recoveries() {
            self.fail(v)?;
        }
        self.complete_trackers();
        Ok(())
    }

    /// Stops the run with `v`, or with `keep_going` notes it and goes on.
    pub(super) fn fail(&mut self, v: Violation) -> Result<(), Violation> {
        if !self.config.keep_going {
            return Err(v);
        }
        self.noted.entry(v.kind()).or_insert((0, v)).0 += 1;
        Ok(())
    }

    /// With `keep_going`: per kind of violation, how many times it was seen (steps or
    /// events) and the first one.
    pub fn noted(&self) -> &BTreeMap<&'static str, (u64, Violation)> {
        &self.noted
    }

    /// Whether live node `i` holds quorum and names itself leader.
    pub fn is_self_leader(&self, i: usize) -> bool {
        let p = &self.procs[i];
        p.is_live()
            && p.node
                .as_ref()
                .is_some_and(|n| n.has_quorum() && n.leader() == Some(n.id()))
    }

    /// Live nodes that hold quorum and name themselves leader.
    pub fn self_leaders(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&i| self.is_self_leader(i))
            .collect()
    }

    /// Whether live node `i` holds quorum.
    /// Settled: converged, every live node holds quorum, and every live node sees every live
    /// node as a voter (admissions are the leader's and follow its rounds, so they trail
    /// convergence).
    pub fn settled(&self) -> bool {
        let live = self.live_nodes();
        self.converged()
            && live.iter().all(|&i| self.holds_quorum(i))
            && live.iter().all(|&i| {
                let node = self.procs[i].node.as_ref();
                live.iter().all(|&j| {
                    node.and_then(|n| n.record(&self.procs[j].id))
                        .is_some_and(|r| r.voter)
                })
            })
    }

    /// Whether node `i` is live and holds quorum.
    pub fn holds_quorum(&self, i: usize) -> bool {
        let p = &self.procs[i];
        p.is_live() && p.node.as_ref().is_some_and(Node::has_quorum)
    }

    /// Two leaders: at most one live node at once holds quorum and names itself leader.
    fn check_leaders(&mut self) -> Result<(), Violation> {
        let leaders = self.self_leaders();
        self.counters.max_self_leaders = self.counters.max_self_leaders.max(leaders.len());
        match invariants::two_leaders(leaders.iter().map(|&i| (i, true))) {
            Some((a, b)) => Err(Violation::TwoLeaders {
                at: self.event_loop.now.as_secs_f64(),
                a: self.procs[a].id.clone(),
                b: self.procs[b].id.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Split brain: two partition groups both hold a quorum holder for at most
    /// `quorum_overlap_bound` after the cut.
    fn check_split_brain(&mut self) -> Result<(), Violation> {
        if !self.event_loop.network.is_partitioned() {
            return Ok(());
        }
        let Some(at) = self.cut.as_ref().map(|c| c.at) else {
            return Ok(());
        };
        let states = (0..self.procs.len())
            .map(|i| (i, self.event_loop.network.group_of(i), self.holds_quorum(i)))
            .collect::<Vec<_>>();
        let both = invariants::two_groups_with_quorum(states);
        let now = self.event_loop.now;
        let cut = self.cut.as_mut().expect("checked above");
        let Some(((a, ga), (b, gb))) = both else {
            cut.both_since = None;
            return Ok(());
        };
        let since = *cut.both_since.get_or_insert(now);
        let stretch = now - since;
        self.counters.both_sides_quorum = self.counters.both_sides_quorum.max(stretch);
        let since_cut = now - at;
        if since_cut > self.config.quorum_overlap_bound {
            return Err(Violation::SplitBrain {
                at: now.as_secs_f64(),
                since_cut: since_cut.as_secs_f64(),
                bound: self.config.quorum_overlap_bound.as_secs_f64(),
                a: self.procs[a].id.clone(),
                group_a: ga,
                b: self.procs[b].id.clone(),
                group_b: gb,
            });
        }
        Ok(())
    }

    /// Longest stretch (seconds) during which two partition groups both held quorum.
    pub fn both_sides_quorum_s(&self) -> f64 {
        self.counters.both_sides_quorum.as_secs_f64()
    }

    /// Notes a new two-way cut: its time, and which nodes sit in a minority of their own
    /// table's voters (voters: records marked voter, not terminal, of existing processes).
    pub(crate) fn begin_cut(&mut self) {
        self.supersede_heals();
        let mut minority = vec![None; self.procs.len()];
        for (i, p) in self.procs.iter().enumerate() {
            let Some(node) = p.node.as_ref().filter(|_| p.exists()) else {
                continue;
            };
            let groups = node
                .records()
                .filter(|r| r.voter && !r.liveness.is_terminal())
                .filter_map(|r| self.index_by_id.get(&*r.id).copied())
                .filter(|&j| self.procs[j].exists())
                .map(|j| self.event_loop.network.group_of(j));
            let (is_minority, mine, all) =
                invariants::minority_at_cut(self.event_loop.network.group_of(i), groups);
            if is_minority {
                minority[i] = Some((mine, all));
            }
        }
        // A cut that starts with two groups holding quorum starts the overlap now.
        let both = invariants::two_groups_with_quorum(
            (0..self.procs.len())
                .map(|i| (i, self.event_loop.network.group_of(i), self.holds_quorum(i))),
        )
        .map(|_| self.event_loop.now);
        self.cut = Some(Cut {
            at: self.event_loop.now,
            minority,
            both_since: both,
        });
    }

    /// Drops the recovery deadlines of earlier heals: a heal's deadline holds while the
    /// network stays healed, and a new cut ends that wait (its own heal starts the next).
    /// Without this, a flapping cut healed for 1.1 s and 1.5 s was charged to the first heal
    /// 10 s later, 0.5 s after the last one (trials seed 1, trial 103).
    pub(crate) fn supersede_heals(&mut self) {
        self.recoveries.retain(|r| r.resumed.is_some());
    }

    /// Ends the cut (heal) and starts the recovery deadline.
    pub(crate) fn end_cut(&mut self) {
        self.cut = None;
        let after = format!("the heal at {:.3}s", self.event_loop.now.as_secs_f64());
        self.push_recovery(
            after,
            Some(self.event_loop.now),
            self.config.recovery_bound,
            None,
        );
    }

    pub(crate) fn push_recovery(
        &mut self,
        after: String,
        from: Option<Duration>,
        bound: Duration,
        resumed: Option<usize>,
    ) {
        let pending = self
            .procs
            .iter()
            .map(|p| p.exists().then_some(p.life))
            .collect();
        self.recoveries.push(Recovery {
            after,
            from,
            bound,
            resumed,
            triggered: self.event_loop.now,
            pending,
        });
    }

    /// Whether a majority of the live nodes (other than `i`) shows node `i` ALIVE at its
    /// current generation.
    fn alive_in_majority_view(&self, i: usize) -> bool {
        let p = &self.procs[i];
        let Some(generation) = p.node.as_ref().map(Node::generation) else {
            return false;
        };
        let (mut live, mut alive) = (0usize, 0usize);
        for (j, q) in self.procs.iter().enumerate() {
            if j == i || !q.is_live() {
                continue;
            }
            live += 1;
            if q.node
                .as_ref()
                .and_then(|n| n.record(&p.id))
                .is_some_and(|r| {
                    r.generation == generation && r.liveness == membership::Liveness::Alive
                })
            {
                alive += 1;
            }
        }
        live == 0 || 2 * alive > live
    }

    /// `Some((reached, voters))` when live node `i` (still in life `life`) lacks quorum
    /// although it is connected, both ways and without loss, to a strict majority of the
    /// voters its own table lists (voter records not terminal; live processes only count
    /// as reached).
    pub(crate) fn connected_without_quorum(&self, i: usize, life: u64) -> Option<(usize, usize)> {
        let p = &self.procs[i];
        if !p.is_live() || p.life != life || self.event_loop.network.has_loss(i) {
            return None;
        }
        let node = p.node.as_ref()?;
        if node.has_quorum() || node.has_left() {
            return None;
        }
        let (mut reached, mut voters) = (0, 0);
        for r in node
            .records()
            .filter(|r| r.voter && !r.liveness.is_terminal())
        {
            voters += 1;
            let Some(j) = self.index_by_id.get(&*r.id).copied() else {
                continue;
            };
            if j == i
                || (self.procs[j].is_live()
                    && !self.event_loop.network.has_loss(j)
                    && self.event_loop.network.connected(i, j)
                    && self.event_loop.network.connected(j, i))
            {
                reached += 1;
            }
        }
        (2 * reached > voters).then_some((reached, voters))
    }

    /// Pending recovery deadlines: start the clocks of resumes seen ALIVE, mark nodes that
    /// hold quorum, and at a deadline report the first eligible node that never did.
    fn check_recoveries(&mut self) -> Result<(), Violation> {
        if self.recoveries.is_empty() {
            return Ok(());
        }
        let now = self.event_loop.now;
        let mut recoveries = std::mem::take(&mut self.recoveries);
        let mut result = Ok(());
        recoveries.retain_mut(|r| {
            if result.is_err() {
                return true;
            }
            if r.from.is_none() {
                let Some(i) = r.resumed else { return false };
                let same_life = r.pending.get(i).copied().flatten() == Some(self.procs[i].life);
                if !same_life || !self.procs[i].exists() {
                    return false; // the resumed life ended: nothing to wait for
                }
                if !self.alive_in_majority_view(i) {
                    // never seen ALIVE again: the convergence checks cover that
                    return now < r.triggered + Duration::from_secs(300);
                }
                r.from = Some(now);
            }
            for i in 0..r.pending.len() {
                if r.pending[i].is_some() && self.holds_quorum(i) {
                    r.recovered(i);
                }
            }
            let Some(deadline) = r.deadline() else {
                return true;
            };
            if now < deadline {
                return true;
            }
            if let Some((i, reached, voters)) =
                r.first_unrecovered(|i, life| self.connected_without_quorum(i, life))
            {
                result = Err(Violation::NotRecovered {
                    at: now.as_secs_f64(),
                    node: self.procs[i].id.clone(),
                    after: r.after.clone(),
                    bound: (deadline - r.triggered).as_secs_f64(),
                    reached,
                    voters,
                });
            }
            false
        });
        self.recoveries = recoveries;
        result
    }

    /// Completes trackers that every live observer satisfied.
    pub(super) fn complete_trackers(&mut self) {
        let procs = &self.procs;
        let trackers = &mut self.trackers;
        self.active.retain(|&k| {
            if !procs.iter().any(Process::is_live) {
                return true; // nobody to ask yet (e.g. before the first start)
            }
            let t = &mut trackers[k];
            let subject = t.predicate.subject();
            let observers = (0..procs.len())
                .filter(|&i| procs[i].is_live() && subject != Some(procs[i].id.as_str()));
            match completed_at(t.started, &t.done_at, observers) {
                Some(at) => {
                    t.all_at = Some(at);
                    false
                }
                None => true,
            }
        });
    }
}
