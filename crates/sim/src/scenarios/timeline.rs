//! Time series in `outcome.timeline` (`--timeline`): sampling at a fixed virtual period.

use std::time::Duration;

use crate::sim::Sim;

/// Calls `f` when `next` is due and moves `next` on by `every`.
pub(super) fn sample_every(s: &Sim, next: &mut Duration, every: Duration, f: impl FnOnce()) {
    if s.now() >= *next {
        f();
        while *next <= s.now() {
            *next += every;
        }
    }
}
