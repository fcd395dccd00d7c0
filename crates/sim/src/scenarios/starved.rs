//! `starved`: one member that gets CPU only in bursts.
//!
//! After the cold start, one random member (not node 0) is frozen for `--pause-s` ([`STALL`]
//! by default) and then runs for `--run-ms` ([`RUN`] by default), over and over for
//! [`STARVE`] ([`crate::Sim::starve`]): at each resume its timers fire late and before the
//! datagrams that queued up meanwhile are read, so every peer looks silent for the whole
//! stall, which is how a process short of CPU can see the world. Without local health
//! awareness (`membership::node::detect`, "Local health") it would measure everyone else's
//! silence and accuse them. With the default detector it never gets that far (phi tolerates
//! stalls under ~3 s, and the pause guard forgives longer ones), local health or not. To see
//! local health at work, make the detector sensitive and the runs shorter than a probe's
//! round trip (`--phi 3 --pause-s 2.9 --run-ms 1`): the probes are still pending at the next
//! stall and time out at the resume. With `--no-local-health` the member then accuses; with
//! local health `starved_accusations_withheld` counts what it held back. The run then settles
//! and runs to the end. The report's outcomes:
//! - `starved`: the member; `starved_accusations`, `starved_accusations_withheld`: what it
//!   accused and what it held back;
//! - `others_accusations`: accusations by every other member (of anyone);
//! - `starved_failed_by`: members that convicted the starved member (its own conviction is
//!   excused: it really was silent; only convictions of the others count as false
//!   positives in the report).

use std::time::Duration;

use serde_json::json;

use super::phases::Target;
use super::run::{Run, Step};

/// How long each freeze lasts by default.
pub const STALL: Duration = Duration::from_millis(1700);
/// How long it runs between freezes.
pub const RUN: Duration = Duration::from_millis(300);
/// How long it is starved.
pub const STARVE: Duration = Duration::from_secs(40);

impl Run {
    /// The `starved` scenario.
    pub(super) fn starved(&mut self) -> Step {
        let Some(Target {
            i,
            member,
            generation,
        }) = self.steady_target()?
        else {
            return Ok(());
        };
        let accusations = |run: &Run| -> (u64, u64, u64) {
            let mut others = 0;
            let (mut mine, mut withheld) = (0, 0);
            for k in 0..run.sim.len() {
                if let Some(n) = run.sim.node(k) {
                    if k == i {
                        mine = n.stats().accusations;
                        withheld = n.stats().accusations_withheld;
                    } else {
                        others += n.stats().accusations;
                    }
                }
            }
            (mine, withheld, others)
        };
        let before = accusations(self);
        let end = self.sim.now() + STARVE;
        while self.sim.now() < end {
            self.sim.excuse(i, Duration::MAX);
            self.sim.starve(i, self.p.pause);
            self.sim.run_for(self.p.pause + self.p.run)?;
        }
        let until = self.sim.now() + self.sim.excuse_grace_period();
        self.sim.excuse(i, until);
        let after = accusations(self);
        let failed_by = (0..self.sim.len())
            .filter(|&k| k != i)
            .filter_map(|k| self.sim.node(k))
            .filter(|n| {
                n.record(&member).is_some_and(|r| {
                    r.generation == generation && r.liveness == membership::Liveness::Failed
                })
            })
            .count();
        let s = self.expect_convergence(self.settle_window(), "after the starvation")?;
        self.outcome("starved", json!(member));
        self.outcome("starved_accusations", json!(after.0 - before.0));
        self.outcome("starved_accusations_withheld", json!(after.1 - before.1));
        self.outcome("others_accusations", json!(after.2 - before.2));
        self.outcome("starved_failed_by", json!(failed_by));
        self.outcome("recovered_s_after_starvation", json!(s));
        self.run_to_end()
    }
}
