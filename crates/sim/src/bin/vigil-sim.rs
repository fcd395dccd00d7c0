//! `vigil-sim`: runs one simulator scenario and prints one JSON report.
//!
//! Exit status 0 when every invariant held, 1 when one broke (the report's `violation`
//! says which, and stderr repeats the seed and the command that reproduces the run).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use sim::{Scenario, ScenarioParams};

/// The scenario to run.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    /// Cold join, then `--changes` late joins and as many graceful leaves, one at a time.
    Join,
    /// Crash `--crashes` nodes one after another; time suspicion and conviction.
    Crash,
    /// Freeze one node for `--pause-s`, resume it with its backlog, check recovery.
    Pause,
    /// Cut a minority off for `--partition-s`, check quorum on both sides, heal, converge.
    Partition,
    /// Random crashes, restarts, joins, leaves and short pauses every `--churn-interval-s`.
    Churn,
    /// A long run with latency jitter (default 100 ms) and loss (default 5 %).
    Jitter,
}

impl From<ScenarioArg> for Scenario {
    fn from(s: ScenarioArg) -> Self {
        match s {
            ScenarioArg::Join => Scenario::Join,
            ScenarioArg::Crash => Scenario::Crash,
            ScenarioArg::Pause => Scenario::Pause,
            ScenarioArg::Partition => Scenario::Partition,
            ScenarioArg::Churn => Scenario::Churn,
            ScenarioArg::Jitter => Scenario::Jitter,
        }
    }
}

/// Deterministic simulation of a Vigil cluster on a virtual clock and network.
///
/// The same arguments always print the same report (except `wall_s`).
#[derive(Debug, Parser)]
#[command(name = "vigil-sim", version)]
struct Args {
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "join")]
    scenario: ScenarioArg,
    /// Nodes started at the beginning (1 to 10,000 and more).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Run seed: every random draw derives from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual duration in seconds (default: 60 join/crash/pause, 90 partition, 120 churn, 3600 jitter).
    #[arg(long)]
    duration: Option<f64>,
    /// Gossip fanout (default: 2 below 10 nodes, 3 up to 50, 5 above).
    #[arg(long)]
    fanout: Option<usize>,
    /// Phi-accrual suspicion threshold (default 8).
    #[arg(long)]
    phi: Option<f64>,
    /// Hard failure timeout in milliseconds (default 15000).
    #[arg(long = "failure-timeout")]
    failure_timeout_ms: Option<f64>,
    /// Heartbeat interval in milliseconds (default 1000).
    #[arg(long)]
    heartbeat_ms: Option<f64>,
    /// Gossip interval in milliseconds (default 200).
    #[arg(long)]
    gossip_interval_ms: Option<f64>,
    /// Mean one-way link latency in milliseconds.
    #[arg(long, default_value_t = 1.0)]
    latency_ms: f64,
    /// Standard deviation of the latency in milliseconds (default 0; 100 for `jitter`).
    #[arg(long)]
    jitter_ms: Option<f64>,
    /// Probability that a datagram is lost, 0 to 1 (default 0; 0.05 for `jitter`).
    #[arg(long)]
    loss: Option<f64>,
    /// Pause length in seconds (`pause`).
    #[arg(long, default_value_t = 5.0)]
    pause_s: f64,
    /// Partition length in seconds (`partition`).
    #[arg(long, default_value_t = 30.0)]
    partition_s: f64,
    /// Nodes on the minority side (`partition`; default just under half).
    #[arg(long)]
    minority: Option<usize>,
    /// Nodes crashed one after another (`crash`; default min(5, (nodes-1)/2)).
    #[arg(long)]
    crashes: Option<usize>,
    /// Late joins, and as many leaves (`join`).
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// Seconds between churn actions (`churn`).
    #[arg(long, default_value_t = 2.0)]
    churn_interval_s: f64,
    /// Virtual milliseconds between invariant checks (default 20 up to 100 nodes, 100 above).
    #[arg(long)]
    step_ms: Option<f64>,
    /// Record a time series in `outcome.timeline` (`crash`: phi and status of the first
    /// crashed member, sampled every 100 ms from 2 s before the crash; `partition`: quorum
    /// holders on each side and the majority's verdict, every 100 ms until healed).
    #[arg(long)]
    timeline: bool,
    /// Pretty-print the JSON.
    #[arg(long)]
    pretty: bool,
}

fn secs(x: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(x)
        .with_context(|| format!("--{flag} must be a non-negative number, got {x}"))
}

fn params(a: &Args) -> anyhow::Result<ScenarioParams> {
    anyhow::ensure!(a.nodes >= 1, "--nodes must be at least 1");
    if let Some(l) = a.loss {
        anyhow::ensure!(
            (0.0..=1.0).contains(&l),
            "--loss must be between 0 and 1, got {l}"
        );
    }
    let ms = |x: f64, flag: &str| secs(x / 1000.0, flag);
    let mut p = ScenarioParams::new(a.scenario.into(), a.nodes, a.seed);
    p.duration = a.duration.map(|d| secs(d, "duration")).transpose()?;
    p.fanout = a.fanout;
    p.phi = a.phi;
    p.failure_timeout = a
        .failure_timeout_ms
        .map(|x| ms(x, "failure-timeout"))
        .transpose()?;
    p.heartbeat = a.heartbeat_ms.map(|x| ms(x, "heartbeat-ms")).transpose()?;
    p.gossip_interval = a
        .gossip_interval_ms
        .map(|x| ms(x, "gossip-interval-ms"))
        .transpose()?;
    p.latency = ms(a.latency_ms, "latency-ms")?;
    p.jitter = a.jitter_ms.map(|x| ms(x, "jitter-ms")).transpose()?;
    p.loss = a.loss;
    p.pause = secs(a.pause_s, "pause-s")?;
    p.partition = secs(a.partition_s, "partition-s")?;
    p.minority = a.minority;
    p.crashes = a.crashes;
    p.changes = a.changes;
    p.churn_interval = secs(a.churn_interval_s, "churn-interval-s")?;
    anyhow::ensure!(
        !p.churn_interval.is_zero(),
        "--churn-interval-s must be positive"
    );
    p.step = a.step_ms.map(|x| ms(x, "step-ms")).transpose()?;
    p.timeline = a.timeline;
    if let Some(s) = p.step {
        anyhow::ensure!(!s.is_zero(), "--step-ms must be positive");
    }
    Ok(p)
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let p = params(&args)?;
    let report = sim::run(&p)?;
    let json = if args.pretty {
        serde_json::to_string_pretty(&report)?
    } else {
        serde_json::to_string(&report)?
    };
    println!("{json}");
    if let Some(v) = &report.violation {
        eprintln!("invariant violated (seed {}): {v}", report.seed);
        eprintln!("reproduce with: {}", report.reproduce);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
