//! How a run ends: the violation that stopped it (or with `keep_going`, the first one noted),
//! recorded in the report with the command that reproduces it.

use std::collections::BTreeMap;

use serde_json::json;

use super::run::{Run, Step};
use crate::invariants::Violation;
use crate::sim::Sim;

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

/// A missed liveness deadline, now.
pub(super) fn deadline_violation(sim: &Sim, what: String) -> Violation {
    Violation::Deadline {
        at: sim.now().as_secs_f64(),
        what,
    }
}

impl Run {
    /// Records the violation that stopped the run, or with `keep_going` the first noted
    /// one, with the command that reproduces it; lists noted violations by kind.
    pub(super) fn settle_violation(&mut self, result: Step) {
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
}
