//! [`Run`]: one scenario run in progress (the simulator, the scenario's own random draws,
//! the report being filled and the latency samples behind its percentiles), from its start
//! to the finished [`Report`].

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;

use super::ScenarioParams;
use crate::invariants::Violation;
use crate::report::{percentile, round3, ConfigEcho, Messages, Report};
use crate::sim::{derive_seed, Sim, SimError};

/// One scenario run in progress.
pub(super) struct Run {
    pub(super) p: ScenarioParams,
    pub(super) sim: Sim,
    pub(super) rng: SmallRng,
    pub(super) report: Report,
    pub(super) spread: Vec<f64>,
    pub(super) first_suspect: Vec<f64>,
    pub(super) all_failed: Vec<f64>,
}

/// What a scenario phase returns: the violation that stopped it, if any.
pub(super) type Step = Result<(), Violation>;

/// One second of virtual time.
pub(super) const ONE_S: Duration = Duration::from_secs(1);

impl Run {
    /// A run of `p`: the cluster built and started, the report's header filled.
    pub(super) fn new(p: &ScenarioParams) -> Result<Run, SimError> {
        let sim = Sim::new(p.sim_config())?;
        Ok(Run {
            rng: SmallRng::seed_from_u64(derive_seed(p.seed, 0xfa17, 0)),
            report: Report {
                scenario: p.scenario.name().into(),
                nodes: p.nodes,
                seed: p.seed,
                reproduce: p.command(),
                ..Report::default()
            },
            p: p.clone(),
            sim,
            spread: Vec::new(),
            first_suspect: Vec::new(),
            all_failed: Vec::new(),
        })
    }

    /// The protocol configuration every node runs.
    pub(super) fn core(&self) -> &membership::Config {
        &self.sim.config().core
    }

    /// Sets one scenario-specific outcome of the report.
    pub(super) fn outcome(&mut self, key: &'static str, value: serde_json::Value) {
        self.report.outcome.insert(key, value);
    }

    /// Time for one conviction to be certain: failure timeout plus suspicion plus slack.
    pub(super) fn detection_deadline(&self) -> Duration {
        self.core().failure_timeout + self.core().suspicion_timeout + Duration::from_secs(30)
    }

    /// A random live node with index `from_index` or above (drawn from the run's RNG).
    pub(super) fn random_live(&mut self, from_index: usize) -> Option<usize> {
        let live: Vec<usize> = self
            .sim
            .live_nodes()
            .into_iter()
            .filter(|&i| i >= from_index)
            .collect();
        live.choose(&mut self.rng).copied()
    }

    /// Records the spread of one change of kind `kind` (seconds to reach every live member).
    pub(super) fn sample(&mut self, kind: &'static str, s: f64) {
        self.spread.push(s);
        *self.report.spread_samples.entry(kind).or_default() += 1;
    }

    /// Runs to the scenario's duration, if it is not over yet.
    pub(super) fn run_to_end(&mut self) -> Step {
        let end = self.p.duration();
        if self.sim.now() < end {
            self.sim.run_until(end)?;
        }
        Ok(())
    }

    /// Time for the views to settle after faults: eviction grace plus one conviction.
    pub(super) fn settle_window(&self) -> Duration {
        self.core().eviction_grace_period + self.detection_deadline()
    }

    /// Fills the report's statistics, counters and configuration echo; the run is over.
    pub(super) fn finish(mut self, wall: Instant) -> Report {
        let gossip = self.core().gossip_interval.as_secs_f64();
        let c = self.sim.counters().clone();
        let cfg = self.sim.config().clone();
        let r = &mut self.report;
        r.spread_s_p99 = percentile(&self.spread, 99.0);
        r.spread_s_p50 = percentile(&self.spread, 50.0);
        r.spread_rounds_p99 = r.spread_s_p99.map(|s| round3(s / gossip));
        r.detection_s.first_suspect_p50 = percentile(&self.first_suspect, 50.0);
        r.detection_s.all_failed_p50 = percentile(&self.all_failed, 50.0);
        r.detection_s.all_failed_p99 = percentile(&self.all_failed, 99.0);
        r.detection_s.all_failed_max = percentile(&self.all_failed, 100.0);
        r.detection_s.samples = self.all_failed.len();
        r.false_positives = c.false_positives;
        r.false_positive_examples = c.false_positive_examples.clone();
        r.max_message_bytes = c.max_message_bytes;
        r.messages = Messages {
            sent: c.sent,
            delivered: c.delivered,
            lost: c.lost,
            cut: c.cut,
            to_dead: c.to_dead,
        };
        r.events = c.events.clone();
        r.invariant_checks = c.checks;
        r.simulated_s = round3(self.sim.now().as_secs_f64());
        r.wall_s = round3(wall.elapsed().as_secs_f64());
        let ms = |d: Duration| d.as_millis() as u64;
        r.config = ConfigEcho {
            fanout: cfg.core.gossip_fanout,
            phi: cfg.core.phi_threshold,
            heartbeat_ms: ms(cfg.core.heartbeat_interval),
            gossip_interval_ms: ms(cfg.core.gossip_interval),
            failure_timeout_ms: ms(cfg.core.failure_timeout),
            suspicion_timeout_ms: ms(cfg.core.suspicion_timeout),
            observers: cfg.core.observers,
            confirmations: cfg.core.confirmations,
            latency_ms: cfg.network.latency.as_secs_f64() * 1000.0,
            jitter_ms: cfg.network.jitter.as_secs_f64() * 1000.0,
            loss: cfg.network.loss,
            step_ms: ms(cfg.step),
        };
        self.report
    }
}
