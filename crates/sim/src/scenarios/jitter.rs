//! `jitter`: a long quiet run on a noisy network (100 ms jitter and 5 % loss by default),
//! counting false positives.

use std::time::Duration;

use serde_json::json;

use super::run::{Run, Step};

impl Run {
    /// The `jitter` scenario.
    pub(super) fn jitter(&mut self) -> Step {
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
}
