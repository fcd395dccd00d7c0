//! `join`: a cold join, then late joiners and graceful leaves, one at a time; how far each
//! change spreads per gossip round (`outcome.reach_rounds`) and what the changes cost.

use std::time::Duration;

use serde_json::json;

use super::run::{Run, Step};
use super::verdict::deadline_violation;
use crate::report::{percentile, round3};
use crate::tracker::Predicate;

impl Run {
    /// The `join` scenario.
    pub(super) fn join(&mut self) -> Step {
        self.cold_start()?;
        let cold: u64 = self.sim.bytes_sent().iter().sum();
        let per_node = cold as f64 / self.p.nodes.max(1) as f64;
        self.outcome("cold_start_bytes_per_node", json!(round3(per_node)));
        if let Some(c) = self.report.convergence_s.filter(|&c| c > 0.0) {
            self.outcome(
                "cold_start_bytes_per_node_per_s",
                json!(round3(per_node / c)),
            );
        }
        self.steady_bandwidth()?;
        let changes_from = self.sim.now();
        let changes_before: u64 = self.sim.bytes_sent().iter().sum();
        let mut reach: Vec<f64> = Vec::new();
        for _ in 0..self.p.changes {
            let i = self.sim.add_node();
            let member = self.sim.process(i).id.clone();
            let t = self.sim.track(Predicate::Knows {
                member: member.clone(),
                generation: 1,
            });
            if !self
                .sim
                .wait_tracker(t, self.sim.now() + Duration::from_secs(30))?
            {
                return Err(deadline_violation(
                    &self.sim,
                    format!("late joiner {member} not known alive by all within 30s"),
                ));
            }
            if let Some(s) = self.sim.tracker(t).all_s() {
                self.sample("join", s);
            }
            reach.extend(reach_times(self.sim.tracker(t)));
            self.sim.run_for(Duration::from_secs(1))?;
        }
        for _ in 0..self.p.changes {
            let Some(i) = self.random_live(3) else { break };
            if self.sim.live_len() <= 3 {
                break;
            }
            let member = self.sim.process(i).id.clone();
            let generation = self.sim.process(i).generation;
            self.sim.leave(i);
            let t = self.sim.track(Predicate::Left {
                member: member.clone(),
                generation,
            });
            if !self
                .sim
                .wait_tracker(t, self.sim.now() + Duration::from_secs(30))?
            {
                return Err(deadline_violation(
                    &self.sim,
                    format!("departed {member} not seen LEFT by all within 30s"),
                ));
            }
            if let Some(s) = self.sim.tracker(t).all_s() {
                self.sample("leave", s);
            }
            reach.extend(reach_times(self.sim.tracker(t)));
            self.sim.run_for(Duration::from_secs(1))?;
        }
        let secs = (self.sim.now() - changes_from).as_secs_f64();
        let sent: u64 = self.sim.bytes_sent().iter().sum::<u64>() - changes_before;
        if secs > 0.0 && self.p.changes > 0 {
            let per_node_s = sent as f64 / secs / self.sim.live_len().max(1) as f64;
            self.outcome("changes_bytes_per_node_per_s", json!(round3(per_node_s)));
        }
        let round = self.core().gossip_interval.as_secs_f64();
        let rounds: Vec<f64> = reach.iter().map(|x| x / round).collect();
        if !rounds.is_empty() {
            let max = rounds.iter().copied().fold(0.0, f64::max);
            let curve: Vec<f64> = (0..=max.ceil() as usize)
                .map(|k| {
                    let n = rounds.iter().filter(|&&r| r <= k as f64).count();
                    round3(n as f64 / rounds.len() as f64)
                })
                .collect();
            self.outcome(
                "reach_rounds",
                json!({
                    "note": "per observer: gossip rounds from a join or leave until it knew; curve[k]: share of observers that knew within k rounds",
                    "samples": rounds.len(),
                    "p50": percentile(&rounds, 50.0),
                    "p90": percentile(&rounds, 90.0),
                    "p99": percentile(&rounds, 99.0),
                    "max": round3(max),
                    "curve": curve,
                }),
            );
        }
        self.run_to_end()?;
        let s = self.expect_convergence(Duration::from_secs(60), "after joins and leaves")?;
        self.outcome("final_convergence_s", json!(s));
        Ok(())
    }
}

/// Seconds from a tracked change to each observer that satisfied it.
fn reach_times(t: &crate::tracker::Tracker) -> Vec<f64> {
    t.done_at
        .iter()
        .flatten()
        .map(|d| d.saturating_sub(t.started).as_secs_f64())
        .collect()
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
    fn join_reports_reach() {
        let mut p = ScenarioParams::new(Scenario::Join, 10, 1);
        p.duration = Some(Duration::from_secs(30));
        let r = run_ok(&p);
        let reach = &r.outcome["reach_rounds"];
        assert!(reach["samples"].as_u64().unwrap() > 0);
        let curve = reach["curve"].as_array().unwrap();
        assert_eq!(curve.last().and_then(|x| x.as_f64()), Some(1.0));
        assert!(r.outcome["cold_start_bytes_per_node"].as_f64().unwrap() > 0.0);
    }
}
