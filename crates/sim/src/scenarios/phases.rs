//! The phases every scenario is built from: the cold join, the steady bandwidth window,
//! convergence by a deadline, and picking the member a single-member fault is aimed at.

use std::time::Duration;

use super::run::{Run, Step};
use super::verdict::deadline_violation;
use crate::invariants::Violation;
use crate::report::{round3, Bandwidth};
use crate::sim::Sim;
use crate::tracker::Predicate;

/// The member a single-member fault (`pause`, `starved`) is aimed at.
pub(super) struct Target {
    /// Its slot.
    pub(super) i: usize,
    /// Its id.
    pub(super) member: String,
    /// Its generation before the fault.
    pub(super) generation: u64,
}

impl Run {
    /// Cold join: every node starts at once; waits until each sees all of them alive.
    pub(super) fn cold_start(&mut self) -> Step {
        let expected = self.p.nodes;
        // Process the starts scheduled at time zero (and within the start spread) first.
        self.sim.run_until(self.sim.config().start_spread)?;
        let t = self.sim.track(Predicate::AllAlive { expected });
        let deadline = Duration::from_secs(60) + Duration::from_millis(20 * expected as u64);
        if !self.sim.wait_tracker(t, deadline)? {
            let done = self.sim.tracker(t).observers_done();
            return Err(deadline_violation(
                &self.sim,
                format!("cold join did not converge: {done} of {expected} nodes see all {expected} alive"),
            ));
        }
        self.report.convergence_s = self.sim.tracker(t).all_s().map(round3);
        Ok(())
    }

    /// Lets the join traffic die down (tables equal, then every broadcast retransmitted to
    /// its limit and one anti-entropy round), then measures bandwidth over a 10 s window.
    pub(super) fn steady_bandwidth(&mut self) -> Step {
        let start = self.sim.now();
        self.sim
            .wait_for(start + Duration::from_secs(60), Sim::views_agree)?;
        let core = self.core();
        let settle =
            core.gossip_interval * core.retransmit_limit(self.p.nodes) + core.anti_entropy_interval;
        self.sim.run_for(settle)?;
        self.measure_bandwidth(Duration::from_secs(10))
    }

    /// Runs for `window` and records bytes sent per node per second over it.
    pub(super) fn measure_bandwidth(&mut self, window: Duration) -> Step {
        let from = self.sim.now();
        let before = self.sim.bytes_sent();
        let by_kind = |sim: &Sim, i: usize| {
            sim.node(i)
                .map(|n| n.stats().sent_by_kind.clone())
                .unwrap_or_default()
        };
        let kinds_before: Vec<_> = (0..self.sim.len()).map(|i| by_kind(&self.sim, i)).collect();
        let lives: Vec<_> = (0..self.sim.len())
            .map(|i| (self.sim.process(i).is_live(), self.sim.process(i).life))
            .collect();
        self.sim.run_for(window)?;
        let to = self.sim.now();
        let secs = (to - from).as_secs_f64();
        let measured: Vec<usize> = (0..lives.len())
            .filter(|&i| {
                let p = self.sim.process(i);
                lives[i].0 && p.is_live() && p.life == lives[i].1
            })
            .collect();
        let rates: Vec<f64> = measured
            .iter()
            .map(|&i| (self.sim.process(i).bytes_sent - before[i]) as f64 / secs)
            .collect();
        let mut kinds = std::collections::BTreeMap::new();
        for &i in &measured {
            for (kind, (_, bytes)) in by_kind(&self.sim, i) {
                let earlier = kinds_before[i].get(kind).map_or(0, |c| c.1);
                *kinds.entry(kind).or_insert(0.0) += bytes.saturating_sub(earlier) as f64;
            }
        }
        if !rates.is_empty() && secs > 0.0 {
            kinds.retain(|_, v| *v > 0.0);
            for v in kinds.values_mut() {
                *v = round3(*v / secs / rates.len() as f64);
            }
            self.report.bytes_per_node_per_s = Bandwidth {
                mean: Some(round3(rates.iter().sum::<f64>() / rates.len() as f64)),
                max: Some(round3(rates.iter().copied().fold(0.0, f64::max))),
                window_s: Some([round3(from.as_secs_f64()), round3(to.as_secs_f64())]),
                nodes_measured: rates.len(),
                by_kind: kinds,
            };
        }
        Ok(())
    }

    /// Cold join and the steady window, then one random live member other than node 0, the
    /// target of a single-member fault (`None`: no such member).
    pub(super) fn steady_target(&mut self) -> Result<Option<Target>, Violation> {
        self.cold_start()?;
        self.steady_bandwidth()?;
        let Some(i) = self.random_live(1) else {
            return Ok(None);
        };
        let member = self.sim.process(i).id.clone();
        let generation = self.sim.node(i).map_or(0, |n| n.generation());
        Ok(Some(Target {
            i,
            member,
            generation,
        }))
    }

    /// Waits (up to `within`) for every live node to list every live node alive with equal
    /// tables; the liveness invariant after a heal or a churn.
    pub(super) fn expect_convergence(
        &mut self,
        within: Duration,
        what: &str,
    ) -> Result<f64, Violation> {
        let start = self.sim.now();
        match self.sim.wait_for(start + within, Sim::converged)? {
            Some(t) => Ok(round3((t - start).as_secs_f64())),
            None => Err(self.not_converged(within, what)),
        }
    }

    /// The violation of a convergence deadline, with the first table difference.
    pub(super) fn not_converged(&self, within: Duration, what: &str) -> Violation {
        deadline_violation(
            &self.sim,
            format!(
                "{what}: views did not converge within {:.1}s ({} distinct tables among {} live nodes, all-see-all-alive={}; e.g. {})",
                within.as_secs_f64(),
                self.sim.distinct_views(),
                self.sim.live_len(),
                self.sim.all_see_all_alive(),
                self.sim.first_divergence().unwrap_or_else(|| "no table difference".into())
            ),
        )
    }
}
