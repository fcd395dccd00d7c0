//! The scenarios behind `vigil-sim`: each one builds a cluster, injects its faults, checks
//! its liveness properties with deadlines, and fills a [`Report`].
//!
//! Every scenario starts with a cold join (all nodes at once; node 0 bootstraps, the others
//! join through nodes 0-2), a settle phase (tables equal, broadcasts drained) and a 10 s
//! steady window that measures bandwidth, then:
//! - `join`: late joiners and graceful leaves, one at a time (spread of one change);
//! - `crash`: crashes one node at a time and times suspicion and conviction;
//! - `pause`: freezes one node for `pause` and checks how the cluster and the node recover;
//! - `partition`: cuts a minority off for `partition`, checks quorum on both sides, heals;
//! - `churn`: random crashes, restarts, joins, leaves and short pauses, then settles;
//! - `jitter`: a long quiet run on a noisy network, counting false positives;
//! - `starved`: one member gets CPU only in bursts (frozen 1.7 s of every 2 s for 40 s), and
//!   must convict nobody on the strength of its own late timers (see [`starved`]);
//! - `trials`: randomized fault schedules on random cluster sizes (see [`trials`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::invariants::Violation;
use crate::network::NetworkConfig;
use crate::report::{percentile, round3, Bandwidth, ConfigEcho, Messages, Report};
use crate::sim::{derive_seed, Sim, SimConfig, SimError};
use crate::tracker::Predicate;
use membership::Liveness;

pub mod starved;
pub mod trials;

/// The scenarios `vigil-sim` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// Cold join, then late joins and graceful leaves.
    Join,
    /// Crashes, one after another; detection times.
    Crash,
    /// One node frozen, then resumed with a backlog.
    Pause,
    /// Majority/minority partition, then heal.
    Partition,
    /// Random crashes, restarts, joins, leaves and pauses.
    Churn,
    /// A long run with latency jitter and loss, counting false positives.
    Jitter,
    /// One member frozen in bursts; nobody is convicted because of its late timers.
    Starved,
    /// Randomized fault schedules on random cluster sizes (see [`trials`]).
    Trials,
}

impl Scenario {
    /// Every scenario, in documentation order.
    pub const ALL: [Scenario; 8] = [
        Scenario::Join,
        Scenario::Crash,
        Scenario::Pause,
        Scenario::Partition,
        Scenario::Churn,
        Scenario::Jitter,
        Scenario::Starved,
        Scenario::Trials,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Join => "join",
            Scenario::Crash => "crash",
            Scenario::Pause => "pause",
            Scenario::Partition => "partition",
            Scenario::Churn => "churn",
            Scenario::Jitter => "jitter",
            Scenario::Starved => "starved",
            Scenario::Trials => "trials",
        }
    }

    /// Virtual duration when none is given.
    pub fn default_duration(self) -> Duration {
        Duration::from_secs(match self {
            Scenario::Join | Scenario::Crash | Scenario::Pause | Scenario::Starved => 60,
            Scenario::Partition => 90,
            Scenario::Churn | Scenario::Trials => 120,
            Scenario::Jitter => 3600,
        })
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|x| x.name()).collect();
                format!("unknown scenario `{s}` (one of: {})", names.join(", "))
            })
    }
}

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
        c
    }
}

/// Runs one scenario. A violated invariant stops the run and is reported in
/// [`Report::violation`] (with [`Report::reproduce`]); only a bad configuration is an error.
pub fn run(params: &ScenarioParams) -> Result<Report, SimError> {
    if params.scenario == Scenario::Trials {
        return trials::run_one(params, params.first_trial);
    }
    let wall = Instant::now();
    let mut run = Run::new(params)?;
    let result = match params.scenario {
        Scenario::Join => run.join(),
        Scenario::Crash => run.crash(),
        Scenario::Pause => run.pause(),
        Scenario::Partition => run.partition(),
        Scenario::Churn => run.churn(),
        Scenario::Jitter => run.jitter(),
        Scenario::Starved => run.starved(),
        Scenario::Trials => unreachable!("handled above"),
    };
    run.settle_violation(result);
    Ok(run.finish(wall))
}

/// One scenario run in progress.
struct Run {
    p: ScenarioParams,
    sim: Sim,
    rng: SmallRng,
    report: Report,
    spread: Vec<f64>,
    first_suspect: Vec<f64>,
    all_failed: Vec<f64>,
}

type Step = Result<(), Violation>;

/// When a violation happened (virtual seconds).
fn violation_at(v: &Violation) -> f64 {
    match v {
        Violation::SplitBrain { at, .. }
        | Violation::TwoLeaders { at, .. }
        | Violation::MinorityDecision { at, .. }
        | Violation::NotRecovered { at, .. }
        | Violation::FailedRevived { at, .. }
        | Violation::Oversize { at, .. }
        | Violation::Undecodable { at, .. }
        | Violation::Deadline { at, .. } => *at,
    }
}

fn deadline_violation(sim: &Sim, what: String) -> Violation {
    Violation::Deadline {
        at: sim.now().as_secs_f64(),
        what,
    }
}

impl Run {
    fn new(p: &ScenarioParams) -> Result<Run, SimError> {
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

    /// Records the violation that stopped the run, or with `keep_going` the first noted
    /// one, with the command that reproduces it; lists noted violations by kind.
    fn settle_violation(&mut self, result: Step) {
        let noted = self.sim.noted();
        if !noted.is_empty() {
            let by_kind: BTreeMap<&str, serde_json::Value> = noted
                .iter()
                .map(|(k, (n, v))| (*k, json!({"count": n, "first": v.to_string()})))
                .collect();
            self.outcome("violations_noted", json!(by_kind));
        }
        let first = result.err().or_else(|| {
            self.sim
                .noted()
                .values()
                .min_by(|a, b| violation_at(&a.1).total_cmp(&violation_at(&b.1)))
                .map(|(_, v)| v.clone())
        });
        if let Some(v) = first {
            self.report.violation = Some(format!("{v} (reproduce: {})", self.report.reproduce));
            self.report.violation_kind = Some(v.kind());
        }
    }

    fn core(&self) -> &membership::Config {
        &self.sim.config().core
    }

    fn outcome(&mut self, key: &'static str, value: serde_json::Value) {
        self.report.outcome.insert(key, value);
    }

    /// Time for one conviction to be certain: failure timeout plus suspicion plus slack.
    fn detection_deadline(&self) -> Duration {
        self.core().failure_timeout + self.core().suspicion_timeout + Duration::from_secs(30)
    }

    /// Cold join: every node starts at once; waits until each sees all of them alive.
    fn cold_start(&mut self) -> Step {
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
    fn steady_bandwidth(&mut self) -> Step {
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
    fn measure_bandwidth(&mut self, window: Duration) -> Step {
        let from = self.sim.now();
        let before = self.sim.bytes_sent();
        let lives: Vec<_> = (0..self.sim.len())
            .map(|i| (self.sim.process(i).is_live(), self.sim.process(i).life))
            .collect();
        self.sim.run_for(window)?;
        let to = self.sim.now();
        let secs = (to - from).as_secs_f64();
        let rates: Vec<f64> = (0..lives.len())
            .filter(|&i| {
                let p = self.sim.process(i);
                lives[i].0 && p.is_live() && p.life == lives[i].1
            })
            .map(|i| (self.sim.process(i).bytes_sent - before[i]) as f64 / secs)
            .collect();
        if !rates.is_empty() && secs > 0.0 {
            self.report.bytes_per_node_per_s = Bandwidth {
                mean: Some(round3(rates.iter().sum::<f64>() / rates.len() as f64)),
                max: Some(round3(rates.iter().copied().fold(0.0, f64::max))),
                window_s: Some([round3(from.as_secs_f64()), round3(to.as_secs_f64())]),
                nodes_measured: rates.len(),
            };
        }
        Ok(())
    }

    fn random_live(&mut self, from_index: usize) -> Option<usize> {
        let live: Vec<usize> = self
            .sim
            .live_nodes()
            .into_iter()
            .filter(|&i| i >= from_index)
            .collect();
        live.choose(&mut self.rng).copied()
    }

    fn sample(&mut self, kind: &'static str, s: f64) {
        self.spread.push(s);
        *self.report.spread_samples.entry(kind).or_default() += 1;
    }

    /// Crashes node `i` and waits until every live member convicts it (liveness invariant:
    /// a silent member is eventually suspected and failed by everyone).
    fn crash_and_detect(&mut self, i: usize, timeline: bool) -> Step {
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

    /// Waits (up to `within`) for every live node to list every live node alive with equal
    /// tables; the liveness invariant after a heal or a churn.
    fn expect_convergence(&mut self, within: Duration, what: &str) -> Result<f64, Violation> {
        let start = self.sim.now();
        match self.sim.wait_for(start + within, Sim::converged)? {
            Some(t) => Ok(round3((t - start).as_secs_f64())),
            None => Err(self.not_converged(within, what)),
        }
    }

    /// The violation of a convergence deadline, with the first table difference.
    fn not_converged(&self, within: Duration, what: &str) -> Violation {
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

    fn run_to_end(&mut self) -> Step {
        let end = self.p.duration();
        if self.sim.now() < end {
            self.sim.run_until(end)?;
        }
        Ok(())
    }

    fn settle_window(&self) -> Duration {
        self.core().eviction_grace_period + self.detection_deadline()
    }

    fn join(&mut self) -> Step {
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
            let max = percentile(&rounds, 100.0).unwrap_or(0.0);
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
                    "p50": percentile(&rounds, 50.0).map(round3),
                    "p90": percentile(&rounds, 90.0).map(round3),
                    "p99": percentile(&rounds, 99.0).map(round3),
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

    fn crash(&mut self) -> Step {
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
        self.run_to_end()?;
        let s = self.expect_convergence(self.settle_window(), "after crashes")?;
        self.outcome("final_convergence_s", json!(s));
        Ok(())
    }

    fn pause(&mut self) -> Step {
        self.cold_start()?;
        self.steady_bandwidth()?;
        let Some(i) = self.random_live(1) else {
            return Ok(());
        };
        let member = self.sim.process(i).id.clone();
        let generation = self.sim.node(i).map_or(0, |n| n.generation());
        self.sim.pause(i, self.p.pause);
        let suspects = self.sim.track(Predicate::Suspects {
            member: member.clone(),
            generation,
        });
        let failed = self.sim.track(Predicate::Failed {
            member: member.clone(),
            generation,
        });
        self.sim.run_for(self.p.pause)?;
        let resumed_at = self.sim.now();
        let s = self.expect_convergence(self.settle_window(), "after the pause")?;
        let f = self.sim.tracker(failed).clone();
        if let Some(x) = self.sim.tracker(suspects).first_s() {
            self.first_suspect.push(x);
        }
        if let Some(x) = f.all_s() {
            self.all_failed.push(x);
        }
        let new_generation = self.sim.node(i).map(|n| n.generation());
        self.outcome("paused", json!(member));
        self.outcome("pause_s", json!(self.p.pause.as_secs_f64()));
        self.outcome(
            "suspected",
            json!(self.sim.tracker(suspects).first_at.is_some()),
        );
        self.outcome("marked_failed_by", json!(f.observers_done()));
        self.outcome("generation_before", json!(generation));
        self.outcome("generation_after", json!(new_generation));
        self.outcome("recovered_s_after_resume", json!(s));
        self.outcome("resumed_at_s", json!(round3(resumed_at.as_secs_f64())));
        self.run_to_end()
    }

    fn partition(&mut self) -> Step {
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

    fn churn(&mut self) -> Step {
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

    fn jitter(&mut self) -> Step {
        self.cold_start()?;
        let window = self
            .p
            .duration()
            .saturating_sub(self.sim.now())
            .max(Duration::from_secs(1));
        self.measure_bandwidth(window)?;
        self.outcome("views_agree_at_end", json!(self.sim.views_agree()));
        self.outcome(
            "all_see_all_alive_at_end",
            json!(self.sim.all_see_all_alive()),
        );
        Ok(())
    }

    fn finish(mut self, wall: Instant) -> Report {
        let gossip = self.core().gossip_interval.as_secs_f64();
        let c = self.sim.counters().clone();
        let cfg = self.sim.config().clone();
        let r = &mut self.report;
        r.spread_s_p99 = percentile(&self.spread, 99.0).map(round3);
        r.spread_s_p50 = percentile(&self.spread, 50.0).map(round3);
        r.spread_rounds_p99 = r.spread_s_p99.map(|s| round3(s / gossip));
        r.detection_s.first_suspect_p50 = percentile(&self.first_suspect, 50.0).map(round3);
        r.detection_s.all_failed_p50 = percentile(&self.all_failed, 50.0).map(round3);
        r.detection_s.all_failed_p99 = percentile(&self.all_failed, 99.0).map(round3);
        r.detection_s.all_failed_max = percentile(&self.all_failed, 100.0).map(round3);
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

const ONE_S: Duration = Duration::from_secs(1);

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

/// Calls `f` when `next` is due and moves `next` on by `every`.
fn sample_every(s: &Sim, next: &mut Duration, every: Duration, f: impl FnOnce()) {
    if s.now() >= *next {
        f();
        while *next <= s.now() {
            *next += every;
        }
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

/// Seconds from a tracked change to each observer that satisfied it.
fn reach_times(t: &crate::tracker::Tracker) -> Vec<f64> {
    t.done_at
        .iter()
        .flatten()
        .map(|d| d.saturating_sub(t.started).as_secs_f64())
        .collect()
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
    use super::*;

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

    #[test]
    fn partition_reports_conviction_time_and_join_reports_reach() {
        let mut p = ScenarioParams::new(Scenario::Partition, 5, 1);
        p.duration = Some(Duration::ZERO);
        p.partition = Duration::from_secs(15);
        p.timeline = true;
        let r = run_ok(&p);
        let fenced = r.outcome["minority_lost_quorum_s"].as_f64().unwrap();
        let convicted = r.outcome["majority_failed_minority_s"].as_f64().unwrap();
        assert!(fenced > 0.0 && convicted > 0.0 && convicted < 15.0);
        assert!(r.outcome["timeline"]["samples"].as_array().unwrap().len() > 100);

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
