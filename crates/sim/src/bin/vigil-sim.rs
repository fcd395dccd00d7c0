//! `vigil-sim`: runs one simulator scenario and prints one JSON report.
//!
//! Exit status 0 when every invariant held, 1 when one broke (the report's `violation`
//! says which and names the command that reproduces the run; stderr repeats both). With
//! `--scenario trials` the report is one line per trial plus `failures`, each with the
//! command that reproduces exactly that trial.

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
    /// One member frozen 1.7 s of every 2 s for 40 s: nobody convicted through its late timers.
    Starved,
    /// `--trials` randomized fault schedules on random cluster sizes (3 to `--nodes-max`).
    Trials,
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
            ScenarioArg::Starved => Scenario::Starved,
            ScenarioArg::Trials => Scenario::Trials,
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
    /// Pause length in seconds (`pause`: default 5; `starved`: each stall, default 1.7).
    #[arg(long)]
    pause_s: Option<f64>,
    /// `starved`: how long the member runs between stalls, in milliseconds (default 300).
    #[arg(long)]
    run_ms: Option<f64>,
    /// Nodes do not track how late their own timeouts run (local health off), to show what
    /// it prevents (`starved`).
    #[arg(long)]
    no_local_health: bool,
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
    /// Partition group sizes, comma-separated (`partition`; instead of `--minority`),
    /// e.g. `333,333,334`.
    #[arg(long, value_delimiter = ',')]
    groups: Option<Vec<usize>>,
    /// Maximum clock-rate error of every node, e.g. 0.01 for ±1 % (default 0).
    #[arg(long)]
    clock_skew: Option<f64>,
    /// Note every violated invariant and keep running instead of stopping at the first
    /// (the report lists them by kind in `outcome.violations_noted`; exit status still 1).
    #[arg(long)]
    keep_going: bool,
    /// Trials to run (`trials`).
    #[arg(long, default_value_t = 1)]
    trials: usize,
    /// Index of the first trial (`trials`; trial k is seeded from the seed and k alone).
    #[arg(long, default_value_t = 0)]
    first_trial: usize,
    /// Largest cluster size a trial draws (`trials`).
    #[arg(long, default_value_t = 200)]
    nodes_max: usize,
    /// Start no new trial after this much wall time, e.g. `180s`, `3m`, `180` (`trials`).
    #[arg(long)]
    time_budget: Option<String>,
    /// Which violations fail the run (any scenario): `all`, or `safety` (liveness bounds that
    /// were missed, recovery or convergence by a deadline, are reported but pass).
    #[arg(long, default_value = "all", value_parser = ["all", "safety"])]
    gate: String,
    /// Pretty-print the JSON.
    #[arg(long)]
    pretty: bool,
}

fn secs(x: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(x)
        .with_context(|| format!("--{flag} must be a non-negative number, got {x}"))
}

/// `180s`, `3m`, `1h` or plain seconds.
fn budget(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1.0),
        Some((i, 'm')) => (&s[..i], 60.0),
        Some((i, 'h')) => (&s[..i], 3600.0),
        _ => (s, 1.0),
    };
    let x: f64 = num
        .parse()
        .with_context(|| format!("--time-budget: expected e.g. 180s, got `{s}`"))?;
    secs(x * unit, "time-budget")
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
    if let Some(x) = a.pause_s {
        p.pause = secs(x, "pause-s")?;
    }
    if let Some(x) = a.run_ms {
        p.run = ms(x, "run-ms")?;
    }
    p.local_health = !a.no_local_health;
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
    if let Some(g) = &a.groups {
        anyhow::ensure!(
            g.iter().sum::<usize>() == a.nodes && g.iter().all(|&x| x > 0),
            "--groups must be positive sizes adding up to --nodes ({})",
            a.nodes
        );
    }
    p.groups = a.groups.clone();
    if let Some(k) = a.clock_skew {
        anyhow::ensure!(
            (0.0..0.5).contains(&k),
            "--clock-skew must be in [0, 0.5), got {k}"
        );
    }
    p.clock_skew = a.clock_skew;
    p.keep_going = a.keep_going;
    p.trials = a.trials;
    p.first_trial = a.first_trial;
    anyhow::ensure!(a.nodes_max >= 3, "--nodes-max must be at least 3");
    p.nodes_max = a.nodes_max;
    p.time_budget = a.time_budget.as_deref().map(budget).transpose()?;
    if let Some(s) = p.step {
        anyhow::ensure!(!s.is_zero(), "--step-ms must be positive");
    }
    Ok(p)
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let p = params(&args)?;
    if p.scenario == Scenario::Trials {
        let report = sim::run_trials(&p)?;
        let json = if args.pretty {
            serde_json::to_string_pretty(&report)?
        } else {
            serde_json::to_string(&report)?
        };
        println!("{json}");
        for f in &report.failures {
            let what = if f.safety { "safety" } else { "liveness" };
            eprintln!(
                "trial {} ({} nodes, {what}): {}",
                f.trial, f.nodes, f.violation
            );
            eprintln!("reproduce with: {}", f.command);
        }
        let failing = match args.gate.as_str() {
            "safety" => report.safety_violations,
            _ => report.violations,
        };
        eprintln!(
            "{} trials, {} violations ({} of safety), gate {}",
            report.trials, report.violations, report.safety_violations, args.gate
        );
        return Ok(if failing > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
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
        let liveness = matches!(report.violation_kind, Some("not_recovered" | "deadline"));
        if args.gate == "safety" && liveness {
            eprintln!("a liveness bound, not safety: passes with --gate safety");
            return Ok(ExitCode::SUCCESS);
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
