//! `partition`: cuts the cluster (a minority off, or `--groups`) for `--partition-s`,
//! checks quorum and leaders on every side every step, heals, and requires convergence.

use std::time::Duration;

use membership::Liveness;
use rand::seq::SliceRandom;
use serde_json::json;

use super::run::{Run, Step};
use super::timeline::sample_every;
use crate::report::round3;
use crate::sim::Sim;

impl Run {
    /// The `partition` scenario: the phases, then the leader statistics (also when a phase
    /// stopped on a violation).
    pub(super) fn partition(&mut self) -> Step {
        self.cold_start()?;
        self.steady_bandwidth()?;
        let mut st = PartitionStats::default();
        let result = self.partition_phases(&mut st);
        let since_cut = |t: Option<Duration>| t.map(|t| round3((t - st.cut_at).as_secs_f64()));
        self.outcome(
            "max_self_leaders_during_cut",
            json!(st.max_self_leaders_during_cut),
        );
        self.outcome(
            "max_self_leaders_after_heal",
            json!(st.max_self_leaders_after_heal),
        );
        self.outcome(
            "minority_decisions_within_bound",
            json!(self.sim.counters().minority_decisions_within_bound),
        );
        self.outcome(
            "both_sides_quorum_s",
            json!(round3(self.sim.both_sides_quorum_s())),
        );
        self.outcome(
            "distinct_leaders_after_heal_max",
            json!(st.distinct_leaders_after_heal_max),
        );
        self.outcome(
            "majority_leader_after_cut_s",
            json!(since_cut(st.majority_leader_at)),
        );
        result
    }

    /// Cut, hold, heal, converge; `st` collects the leader statistics every step.
    fn partition_phases(&mut self, st: &mut PartitionStats) -> Step {
        let n = self.p.nodes;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.rng);
        let groups: Vec<Vec<usize>> = match &self.p.groups {
            Some(sizes) => {
                let mut groups = Vec::new();
                let mut from = 0;
                for &size in sizes {
                    let to = (from + size).min(n);
                    let mut g = order[from..to].to_vec();
                    g.sort_unstable();
                    groups.push(g);
                    from = to;
                }
                if from < n {
                    let mut g = order[from..].to_vec();
                    g.sort_unstable();
                    groups.push(g);
                }
                groups
            }
            None => {
                let m = self
                    .p
                    .minority
                    .unwrap_or(n.saturating_sub(1) / 2)
                    .min(n / 2);
                let mut minority = order[..m].to_vec();
                let mut majority = order[m..].to_vec();
                minority.sort_unstable();
                majority.sort_unstable();
                vec![minority, majority]
            }
        };
        // The majority: the group with more than half of the nodes, if any; the minority:
        // every other node.
        let majority: Vec<usize> = groups
            .iter()
            .find(|g| 2 * g.len() > n)
            .cloned()
            .unwrap_or_default();
        let mut minority: Vec<usize> = (0..n).filter(|i| !majority.contains(i)).collect();
        minority.sort_unstable();
        let start = self.sim.now();
        st.cut_at = start;
        self.sim.partition(&groups);
        let end = start + self.p.partition;
        let timeline = self.p.timeline;
        let every = Duration::from_millis(100);
        let mut next = start;
        let mut samples = Vec::new();
        let (mut lost, mut convicted) = (None, None);
        let cut_result = self.sim.wait_for(end, |s| {
            if timeline {
                sample_every(s, &mut next, every, || {
                    samples.push(partition_sample(s, &minority, &majority, start, false));
                });
            }
            st.during_cut(s, &majority);
            if lost.is_none() && s.quorum_holders(&minority) == 0 {
                lost = Some(s.now());
            }
            if convicted.is_none() && sees_all_failed(s, &majority, &minority) {
                convicted = Some(s.now());
            }
            false
        });
        self.outcome("minority", json!(minority.len()));
        self.outcome("majority", json!(majority.len()));
        if self.p.groups.is_some() {
            self.outcome(
                "groups",
                json!(groups.iter().map(Vec::len).collect::<Vec<_>>()),
            );
        }
        self.outcome(
            "minority_lost_quorum_s",
            json!(lost.map(|t| round3((t - start).as_secs_f64()))),
        );
        self.outcome(
            "majority_failed_minority_s",
            json!(convicted.map(|t| round3((t - start).as_secs_f64()))),
        );
        cut_result?;
        self.sim.run_until(end)?;
        let minority_holders = self.sim.quorum_holders(&minority);
        let majority_holders = self.sim.quorum_holders(&majority);
        let mut majority_leaders: Vec<String> = majority
            .iter()
            .filter_map(|&i| self.sim.node(i).and_then(|n| n.leader()).map(str::to_owned))
            .collect();
        majority_leaders.sort();
        majority_leaders.dedup();
        // A side without quorum must take no decision: count the majority members that
        // some minority node convicted during the cut (each will have to rejoin on heal).
        let convicted_by_minority = majority
            .iter()
            .filter(|&&j| {
                let id = &self.sim.process(j).id;
                minority.iter().any(|&i| {
                    self.sim
                        .node(i)
                        .and_then(|n| n.record(id))
                        .is_some_and(|r| r.liveness.is_terminal())
                })
            })
            .count();
        self.outcome(
            "majority_members_convicted_by_minority",
            json!(convicted_by_minority),
        );
        self.outcome("majority_leaders_before_heal", json!(majority_leaders));
        self.outcome("minority_quorum_holders_at_heal", json!(minority_holders));
        self.outcome("majority_quorum_holders_at_heal", json!(majority_holders));
        self.sim.heal();
        let (mi, ma) = (minority.clone(), majority.clone());
        let within = self.settle_window();
        let heal_at = self.sim.now();
        let converged = self.sim.wait_for(heal_at + within, |s| {
            if timeline {
                sample_every(s, &mut next, every, || {
                    samples.push(partition_sample(s, &mi, &ma, start, true));
                });
            }
            st.after_heal(s);
            s.converged()
        });
        if timeline {
            self.outcome(
                "timeline",
                json!({
                    "partition_s": self.p.partition.as_secs_f64(),
                    "minority_members": mi.iter().map(|&i| self.sim.process(i).id.clone()).collect::<Vec<_>>(),
                    "note": "t: seconds since the cut; *_quorum: nodes of each side holding quorum; majority_sees_minority_failed: majority nodes that see every minority member FAILED; converged: one view of all members ALIVE",
                    "samples": samples,
                }),
            );
        }
        if converged?.is_none() {
            return Err(self.not_converged(within, "after the partition healed"));
        }
        self.outcome(
            "heal_convergence_s",
            json!(round3((self.sim.now() - heal_at).as_secs_f64())),
        );
        let leaders: Vec<String> = self
            .sim
            .live_nodes()
            .into_iter()
            .filter_map(|i| self.sim.node(i).and_then(|n| n.leader()).map(str::to_owned))
            .collect();
        let mut distinct = leaders.clone();
        distinct.sort();
        distinct.dedup();
        self.outcome("leaders_after_heal", json!(distinct));
        self.outcome("nodes_naming_a_leader", json!(leaders.len()));
        let end = self.p.duration().max(self.sim.now());
        self.sim.wait_for(end, |s| {
            st.after_heal(s);
            false
        })?;
        Ok(())
    }
}

/// Leader statistics of a partition run, sampled every step.
#[derive(Debug, Default)]
struct PartitionStats {
    cut_at: Duration,
    max_self_leaders_during_cut: usize,
    max_self_leaders_after_heal: usize,
    distinct_leaders_after_heal_max: usize,
    majority_leader_at: Option<Duration>,
}

impl PartitionStats {
    fn during_cut(&mut self, s: &Sim, majority: &[usize]) {
        let leaders = s.self_leaders();
        self.max_self_leaders_during_cut = self.max_self_leaders_during_cut.max(leaders.len());
        if self.majority_leader_at.is_none() {
            let mut in_majority = leaders.iter().filter(|i| majority.contains(i));
            if let Some(&l) = in_majority.next() {
                let id = s.process(l).id.as_str();
                let all_name_it = majority
                    .iter()
                    .filter(|&&i| s.holds_quorum(i))
                    .all(|&i| s.node(i).and_then(|n| n.leader()) == Some(id));
                if all_name_it {
                    self.majority_leader_at = Some(s.now());
                }
            }
        }
    }

    fn after_heal(&mut self, s: &Sim) {
        self.max_self_leaders_after_heal =
            self.max_self_leaders_after_heal.max(s.self_leaders().len());
        self.distinct_leaders_after_heal_max = self
            .distinct_leaders_after_heal_max
            .max(distinct_leaders(s));
    }
}

/// Distinct leaders named by live quorum holders.
fn distinct_leaders(s: &Sim) -> usize {
    let mut names: Vec<&str> = (0..s.len())
        .filter(|&i| s.holds_quorum(i))
        .filter_map(|i| s.node(i).and_then(|n| n.leader()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

/// Whether every live node of `observers` sees every member of `subjects` convicted.
fn sees_all_failed(s: &Sim, observers: &[usize], subjects: &[usize]) -> bool {
    observers
        .iter()
        .filter(|&&i| s.process(i).is_live())
        .all(|&i| sees_failed(s, i, subjects))
}

fn sees_failed(s: &Sim, i: usize, subjects: &[usize]) -> bool {
    let Some(node) = s.node(i) else { return false };
    subjects.iter().all(|&j| {
        let p = s.process(j);
        node.record(&p.id).is_none_or(|r| {
            r.generation == p.generation
                && matches!(r.liveness, Liveness::Failed | Liveness::Removed)
        })
    })
}

/// One sample of a partition: quorum on each side and the majority's verdict.
fn partition_sample(
    s: &Sim,
    minority: &[usize],
    majority: &[usize],
    start: Duration,
    healed: bool,
) -> serde_json::Value {
    let t = s.now().as_secs_f64() - start.as_secs_f64();
    let seeing = majority
        .iter()
        .filter(|&&i| s.process(i).is_live() && sees_failed(s, i, minority))
        .count();
    json!({
        "t": round3(t),
        "healed": healed,
        "minority_quorum": s.quorum_holders(minority),
        "majority_quorum": s.quorum_holders(majority),
        "majority_sees_minority_failed": seeing,
        "converged": s.converged(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::report::Report;
    use crate::scenarios::{run, Scenario, ScenarioParams};

    fn run_ok(p: &ScenarioParams) -> Report {
        let r = run(p).expect("valid configuration");
        assert!(r.violation.is_none(), "{:?}", r.violation);
        r
    }

    #[test]
    fn partition_reports_conviction_time() {
        let mut p = ScenarioParams::new(Scenario::Partition, 5, 1);
        p.duration = Some(Duration::ZERO);
        p.partition = Duration::from_secs(15);
        p.timeline = true;
        let r = run_ok(&p);
        let fenced = r.outcome["minority_lost_quorum_s"].as_f64().unwrap();
        let convicted = r.outcome["majority_failed_minority_s"].as_f64().unwrap();
        assert!(fenced > 0.0 && convicted > 0.0 && convicted < 15.0);
        assert!(r.outcome["timeline"]["samples"].as_array().unwrap().len() > 100);
    }
}
