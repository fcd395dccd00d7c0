//! `churn`: random crashes, restarts, joins, leaves and short pauses every
//! `--churn-interval-s`, then every crashed member convicted and the views converged.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde_json::json;

use super::run::{Run, Step};
use super::verdict::deadline_violation;
use crate::report::{round3, Bandwidth};
use crate::tracker::Predicate;

impl Run {
    /// The `churn` scenario.
    pub(super) fn churn(&mut self) -> Step {
        self.cold_start()?;
        let churn_end = self
            .p
            .duration()
            .max(self.sim.now() + Duration::from_secs(10));
        let from = self.sim.now();
        let before = self.sim.bytes_sent();
        let mut actions: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut crashed: Vec<usize> = Vec::new();
        while self.sim.now() + self.p.churn_interval <= churn_end {
            self.sim.run_for(self.p.churn_interval)?;
            let live = self.sim.live_len();
            let can_lose = live > 3 && 4 * (crashed.len() + 1) <= live;
            let action = match self.rng.random_range(0..6u8) {
                0 if can_lose => "crash",
                1 if !crashed.is_empty() => "restart_crashed",
                2 => "join",
                3 if can_lose && live > self.p.nodes / 2 + 1 => "leave",
                4 => "pause_short",
                5 => "restart_live",
                _ => "none",
            };
            match action {
                "crash" => {
                    if let Some(i) = self.random_live(0) {
                        self.sim.crash(i);
                        crashed.push(i);
                    }
                }
                "restart_crashed" => {
                    let k = self.rng.random_range(0..crashed.len());
                    let i = crashed.swap_remove(k);
                    self.sim.restart(i);
                }
                "join" => {
                    self.sim.add_node();
                }
                "leave" => {
                    if let Some(i) = self.random_live(3) {
                        self.sim.leave(i);
                    }
                }
                "pause_short" => {
                    if let Some(i) = self.random_live(0) {
                        let d = self
                            .core()
                            .heartbeat_interval
                            .mul_f64(self.rng.random_range(0.2..1.0));
                        self.sim.pause(i, d);
                    }
                }
                "restart_live" => {
                    if let Some(i) = self.random_live(0) {
                        self.sim.restart(i);
                    }
                }
                _ => {}
            }
            *actions.entry(action).or_default() += 1;
        }
        let to = self.sim.now();
        let secs = (to - from).as_secs_f64();
        let sent: u64 = self
            .sim
            .bytes_sent()
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .sum::<u64>()
            + self.sim.bytes_sent().iter().skip(before.len()).sum::<u64>();
        if secs > 0.0 {
            let mean = sent as f64 / secs / self.sim.live_len().max(1) as f64;
            self.report.bytes_per_node_per_s = Bandwidth {
                mean: Some(round3(mean)),
                max: None,
                window_s: Some([round3(from.as_secs_f64()), round3(to.as_secs_f64())]),
                nodes_measured: self.sim.live_len(),
                // lives begin and end in the window: no per-node split to take
                by_kind: Default::default(),
            };
        }
        self.outcome("actions", json!(actions));
        self.outcome("crashed_at_end", json!(crashed.len()));
        for &i in &crashed {
            let member = self.sim.process(i).id.clone();
            let generation = self.sim.process(i).generation;
            let t = self.sim.track(Predicate::Failed {
                member: member.clone(),
                generation,
            });
            let deadline = self.sim.now() + self.detection_deadline();
            if !self.sim.wait_tracker(t, deadline)? {
                return Err(deadline_violation(
                    &self.sim,
                    format!("crashed {member}@{generation} not FAILED everywhere"),
                ));
            }
        }
        let s = self.expect_convergence(
            self.settle_window() + Duration::from_secs(30),
            "after churn",
        )?;
        self.outcome("settle_convergence_s", json!(s));
        self.outcome("live_at_end", json!(self.sim.live_len()));
        Ok(())
    }
}
