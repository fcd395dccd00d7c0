//! `pause`: freezes one member for `--pause-s`, resumes it with its backlog, and checks how
//! the cluster and the member recover.

use serde_json::json;

use super::phases::Target;
use super::run::{Run, Step};
use crate::report::round3;
use crate::tracker::Predicate;

impl Run {
    /// The `pause` scenario.
    pub(super) fn pause(&mut self) -> Step {
        let Some(Target {
            i,
            member,
            generation,
        }) = self.steady_target()?
        else {
            return Ok(());
        };
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
}
