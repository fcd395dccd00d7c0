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
//!
//! # Layout
//! One file per scenario (`join`, `crash`, `pause`, `partition`, `churn`, `jitter`,
//! `starved`, `trials`), each an `impl Run` block, on the shared run machinery:
//! - `params`: [`ScenarioParams`], the simulator configuration and the reproducing command;
//! - `run`: `Run`, one run in progress, from its start to the finished [`Report`];
//! - `phases`: cold join, steady bandwidth window, convergence by a deadline, fault target;
//! - `verdict`: the violation that stopped a run, recorded with its reproducing command;
//! - `timeline`: sampling for `--timeline`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::report::Report;
use crate::sim::SimError;
use run::Run;

mod churn;
mod crash;
mod jitter;
mod join;
mod params;
mod partition;
mod pause;
mod phases;
mod run;
pub mod starved;
mod timeline;
pub mod trials;
mod verdict;

pub use params::ScenarioParams;

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
