//! [`ScenarioParams`]: every knob of a scenario run, the simulator configuration they give,
//! and the one command that reproduces the run.

use std::fmt::Write as _;
use std::time::Duration;

use super::{starved, Scenario};
use crate::network::NetworkConfig;
use crate::sim::SimConfig;

/// Every knob of a scenario run. `None` means "the scenario's or the core's default".
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioParams {
    /// Which scenario.
    pub scenario: Scenario,
    /// Nodes at the start.
    pub nodes: usize,
    /// Run seed.
    pub seed: u64,
    /// Virtual duration.
    pub duration: Option<Duration>,
    /// Gossip fanout (default: `Config::for_cluster_size`).
    pub fanout: Option<usize>,
    /// Phi threshold.
    pub phi: Option<f64>,
    /// Hard failure timeout.
    pub failure_timeout: Option<Duration>,
    /// Heartbeat interval.
    pub heartbeat: Option<Duration>,
    /// Gossip interval.
    pub gossip_interval: Option<Duration>,
    /// Mean link latency.
    pub latency: Duration,
    /// Latency standard deviation (default 0; 100 ms for `jitter`).
    pub jitter: Option<Duration>,
    /// Loss probability (default 0; 5 % for `jitter`).
    pub loss: Option<f64>,
    /// Pause length for `pause`; each stall for `starved`.
    pub pause: Duration,
    /// How long the starved member runs between stalls (`starved`).
    pub run: Duration,
    /// Whether nodes track their own lateness (`membership::Config::local_health`).
    pub local_health: bool,
    /// Partition length for `partition`.
    pub partition: Duration,
    /// Minority size for `partition` (default: just under half).
    pub minority: Option<usize>,
    /// Crashes for `crash` (default: min(5, (nodes - 1) / 2)).
    pub crashes: Option<usize>,
    /// Late joins and leaves for `join` (each).
    pub changes: usize,
    /// Time between churn actions.
    pub churn_interval: Duration,
    /// Invariant check step (default 20 ms up to 100 nodes, 100 ms above).
    pub step: Option<Duration>,
    /// Record a time series (`crash`: the first crashed member's phi at its observers and
    /// its status everywhere; `partition`: quorum holders on each side). Adds 2 s of
    /// observation before the first crash, so later timings differ from a run without it.
    pub timeline: bool,
    /// Group sizes for `partition` (instead of `minority`): e.g. `[333, 333, 334]`.
    pub groups: Option<Vec<usize>>,
    /// Maximum clock-rate error of every node (see [`SimConfig::clock_skew`]).
    pub clock_skew: Option<f64>,
    /// Note violations and keep running (see [`SimConfig::keep_going`]).
    pub keep_going: bool,
    /// `trials`: how many trials.
    pub trials: usize,
    /// `trials`: the index of the first trial (trial `k` is seeded from `(seed, k)`).
    pub first_trial: usize,
    /// `trials`: largest cluster size drawn.
    pub nodes_max: usize,
    /// `trials`: start no new trial after this much wall time.
    pub time_budget: Option<Duration>,
}

impl ScenarioParams {
    /// Defaults for `scenario` at `nodes` nodes with `seed`.
    pub fn new(scenario: Scenario, nodes: usize, seed: u64) -> Self {
        ScenarioParams {
            scenario,
            nodes,
            seed,
            duration: None,
            fanout: None,
            phi: None,
            failure_timeout: None,
            heartbeat: None,
            gossip_interval: None,
            latency: Duration::from_millis(1),
            jitter: None,
            loss: None,
            pause: if scenario == Scenario::Starved {
                starved::STALL
            } else {
                Duration::from_secs(5)
            },
            run: starved::RUN,
            local_health: true,
            partition: Duration::from_secs(30),
            minority: None,
            crashes: None,
            changes: 5,
            churn_interval: Duration::from_secs(2),
            step: None,
            timeline: false,
            groups: None,
            clock_skew: None,
            keep_going: false,
            trials: 1,
            first_trial: 0,
            nodes_max: 200,
            time_budget: None,
        }
    }

    /// The simulator configuration these parameters give.
    pub fn sim_config(&self) -> SimConfig {
        let mut core = membership::Config::for_cluster_size(self.nodes);
        if let Some(f) = self.fanout {
            core.gossip_fanout = f;
        }
        if let Some(p) = self.phi {
            core.phi_threshold = p;
        }
        if let Some(t) = self.failure_timeout {
            core.failure_timeout = t;
        }
        if let Some(h) = self.heartbeat {
            core.heartbeat_interval = h;
        }
        if let Some(g) = self.gossip_interval {
            core.gossip_interval = g;
        }
        core.local_health = self.local_health;
        let noisy = self.scenario == Scenario::Jitter;
        let network = NetworkConfig {
            latency: self.latency,
            jitter: self.jitter.unwrap_or(if noisy {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            }),
            loss: self.loss.unwrap_or(if noisy { 0.05 } else { 0.0 }),
        };
        let mut config = SimConfig::new(self.nodes, self.seed).with_core(core);
        config.network = network;
        if let Some(s) = self.step {
            config.step = s;
        }
        if let Some(k) = self.clock_skew {
            config.clock_skew = k;
        }
        config.keep_going = self.keep_going;
        config
    }

    /// The virtual duration in force.
    pub fn duration(&self) -> Duration {
        self.duration.unwrap_or(self.scenario.default_duration())
    }

    /// The one command that reproduces this run.
    pub fn command(&self) -> String {
        if self.scenario == Scenario::Trials {
            return self.trials_command(self.first_trial, self.trials);
        }
        let d = ScenarioParams::new(self.scenario, self.nodes, self.seed);
        let mut c = format!(
            "cargo run --release -p sim --bin vigil-sim -- --scenario {} --nodes {} --seed {}",
            self.scenario.name(),
            self.nodes,
            self.seed
        );
        let ms = |x: Duration| x.as_secs_f64() * 1000.0;
        let mut add = |flag: &str, value: String| {
            let _ = write!(c, " --{flag} {value}");
        };
        if let Some(x) = self.duration {
            add("duration", x.as_secs_f64().to_string());
        }
        if let Some(x) = self.fanout {
            add("fanout", x.to_string());
        }
        if let Some(x) = self.phi {
            add("phi", x.to_string());
        }
        if let Some(x) = self.failure_timeout {
            add("failure-timeout", ms(x).to_string());
        }
        if let Some(x) = self.heartbeat {
            add("heartbeat-ms", ms(x).to_string());
        }
        if let Some(x) = self.gossip_interval {
            add("gossip-interval-ms", ms(x).to_string());
        }
        if self.latency != d.latency {
            add("latency-ms", ms(self.latency).to_string());
        }
        if let Some(x) = self.jitter {
            add("jitter-ms", ms(x).to_string());
        }
        if let Some(x) = self.loss {
            add("loss", x.to_string());
        }
        if self.pause != d.pause {
            add("pause-s", self.pause.as_secs_f64().to_string());
        }
        if self.run != d.run {
            add("run-ms", ms(self.run).to_string());
        }
        if self.partition != d.partition {
            add("partition-s", self.partition.as_secs_f64().to_string());
        }
        if let Some(x) = self.minority {
            add("minority", x.to_string());
        }
        if let Some(x) = self.crashes {
            add("crashes", x.to_string());
        }
        if self.changes != d.changes {
            add("changes", self.changes.to_string());
        }
        if self.churn_interval != d.churn_interval {
            add(
                "churn-interval-s",
                self.churn_interval.as_secs_f64().to_string(),
            );
        }
        if let Some(x) = self.step {
            add("step-ms", ms(x).to_string());
        }
        if self.timeline {
            c.push_str(" --timeline");
        }
        if let Some(g) = &self.groups {
            let g: Vec<String> = g.iter().map(usize::to_string).collect();
            let _ = write!(c, " --groups {}", g.join(","));
        }
        if let Some(k) = self.clock_skew {
            let _ = write!(c, " --clock-skew {k}");
        }
        if self.keep_going {
            c.push_str(" --keep-going");
        }
        if !self.local_health {
            c.push_str(" --no-local-health");
        }
        c
    }

    /// The command that runs `count` trials from trial `first` (`count` 1: reproduces
    /// exactly that trial).
    pub fn trials_command(&self, first: usize, count: usize) -> String {
        let mut c = format!(
            "cargo run --release -p sim --bin vigil-sim -- --scenario trials --trials {count} --seed {} --first-trial {first}",
            self.seed
        );
        if self.nodes_max != 200 {
            let _ = write!(c, " --nodes-max {}", self.nodes_max);
        }
        if self.keep_going {
            c.push_str(" --keep-going");
        }
        if !self.local_health {
            c.push_str(" --no-local-health");
        }
        c
    }
}
