//! `crash`: crashes members one after another and times suspicion and conviction; with
//! `--timeline`, the first crashed member's phi and status as the others see it.

use std::time::Duration;

use membership::Liveness;
use serde_json::json;

use super::run::{Run, Step, ONE_S};
use super::timeline::sample_every;
use super::verdict::deadline_violation;
use crate::report::round3;
use crate::sim::Sim;
use crate::tracker::Predicate;

impl Run {
    /// The `crash` scenario.
    pub(super) fn crash(&mut self) -> Step {
        self.cold_start()?;
        self.steady_bandwidth()?;
        let crashes = self
            .p
            .crashes
            .unwrap_or_else(|| ((self.p.nodes.saturating_sub(1)) / 2).min(5));
        let mut crashed = Vec::new();
        for _ in 0..crashes {
            let Some(i) = self.random_live(0) else { break };
            crashed.push(self.sim.process(i).id.clone());
            let timeline = self.p.timeline && crashed.len() == 1;
            self.crash_and_detect(i, timeline)?;
            self.sim.run_for(Duration::from_secs(2))?;
        }
        self.outcome("crashed", json!(crashed));
        // every sample, in crash order: p99 over a few crashes is their maximum, so runs are
        // compared over many seeds by pooling these
        let rounded = |v: &[f64]| v.iter().map(|x| round3(*x)).collect::<Vec<_>>();
        self.outcome("first_suspect_s", json!(rounded(&self.first_suspect)));
        self.outcome("all_failed_s", json!(rounded(&self.all_failed)));
        self.run_to_end()?;
        let s = self.expect_convergence(self.settle_window(), "after crashes")?;
        self.outcome("final_convergence_s", json!(s));
        Ok(())
    }

    /// Crashes node `i` and waits until every live member convicts it (liveness invariant:
    /// a silent member is eventually suspected and failed by everyone).
    pub(super) fn crash_and_detect(&mut self, i: usize, timeline: bool) -> Step {
        let member = self.sim.process(i).id.clone();
        let generation = self
            .sim
            .node(i)
            .map_or(self.sim.process(i).generation, |n| n.generation());
        let every = Duration::from_millis(100);
        let mut samples = Vec::new();
        let crash_at = self.sim.now() + if timeline { 2 * ONE_S } else { Duration::ZERO };
        if timeline {
            let mut next = self.sim.now();
            self.sim.wait_for(crash_at, |s| {
                sample_every(s, &mut next, every, || {
                    samples.push(crash_sample(s, &member, generation, crash_at));
                });
                false
            })?;
        }
        self.sim.crash(i);
        let suspects = self.sim.track(Predicate::Suspects {
            member: member.clone(),
            generation,
        });
        let failed = self.sim.track(Predicate::Failed {
            member: member.clone(),
            generation,
        });
        let deadline = self.sim.now() + self.detection_deadline();
        let mut next = self.sim.now();
        let done = self.sim.wait_for(deadline, |s| {
            if timeline {
                sample_every(s, &mut next, every, || {
                    samples.push(crash_sample(s, &member, generation, crash_at));
                });
            }
            s.tracker(failed).is_complete()
        })?;
        if timeline {
            // One more second: the FAILED record settles everywhere.
            let until = self.sim.now() + ONE_S;
            self.sim.wait_for(until, |s| {
                sample_every(s, &mut next, every, || {
                    samples.push(crash_sample(s, &member, generation, crash_at));
                });
                false
            })?;
            let phi = self.core().phi_threshold;
            self.outcome(
                "timeline",
                json!({
                    "member": member,
                    "phi_threshold": phi,
                    "note": "t: seconds since the crash; phi: at each live observer that watches the member; alive/suspect/failed: live nodes' view of it",
                    "samples": samples,
                }),
            );
        }
        if done.is_none() {
            let t = self.sim.tracker(failed);
            return Err(deadline_violation(
                &self.sim,
                format!(
                    "crashed member {member}@{generation} not marked FAILED by every live member within {:.1}s ({} of {} did)",
                    self.detection_deadline().as_secs_f64(),
                    t.observers_done(),
                    self.sim.live_len()
                ),
            ));
        }
        let s = self.sim.tracker(suspects).clone();
        let f = self.sim.tracker(failed).clone();
        if let Some(x) = s.first_s() {
            self.first_suspect.push(x);
        }
        if let Some(x) = f.all_s() {
            self.all_failed.push(x);
        }
        if let Some(x) = f.spread_s() {
            self.sample("conviction", x);
        }
        Ok(())
    }
}

/// One sample of a crashed (or about to crash) member as the live nodes see it.
fn crash_sample(s: &Sim, member: &str, generation: u64, crash_at: Duration) -> serde_json::Value {
    let now = s.now();
    let (mut alive, mut suspect, mut failed) = (0u64, 0u64, 0u64);
    let mut phi = Vec::new();
    for i in s.live_nodes() {
        let Some(node) = s.node(i) else { continue };
        if node.id() == member {
            continue;
        }
        match node.record(member) {
            Some(r) if r.generation == generation => match r.liveness {
                Liveness::Alive => alive += 1,
                Liveness::Suspect => suspect += 1,
                _ => failed += 1,
            },
            Some(r) if r.generation > generation => alive += 1,
            _ => failed += 1,
        }
        if node.monitored().any(|m| m == member) {
            if let Some(m) = node.view(now).member(member) {
                phi.push(round3(m.phi));
            }
        }
    }
    let t = now.as_secs_f64() - crash_at.as_secs_f64();
    json!({ "t": round3(t), "phi": phi, "alive": alive, "suspect": suspect, "failed": failed })
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
    fn crash_timeline_shows_phi_rising_and_the_member_failed_everywhere() {
        let mut p = ScenarioParams::new(Scenario::Crash, 10, 1);
        p.crashes = Some(1);
        p.duration = Some(Duration::from_secs(30));
        p.timeline = true;
        assert!(p.command().ends_with(" --timeline"));
        let r = run_ok(&p);
        let tl = &r.outcome["timeline"];
        let samples = tl["samples"].as_array().unwrap();
        let first = &samples[0];
        let last = samples.last().unwrap();
        assert!(first["t"].as_f64().unwrap() <= -1.9, "{first}");
        assert_eq!(first["alive"].as_u64(), Some(9));
        assert_eq!(last["failed"].as_u64(), Some(9), "{last}");
        let threshold = tl["phi_threshold"].as_f64().unwrap();
        let crossed = samples.iter().any(|s| {
            s["phi"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x.as_f64().unwrap() > threshold)
        });
        assert!(crossed, "no observer's phi crossed {threshold}");
    }
}
