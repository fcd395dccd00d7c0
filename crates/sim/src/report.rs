//! The one JSON object `vigil-sim` prints, and the statistics that fill it.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Result of one scenario run. Times are virtual seconds unless the name says `wall`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Nodes started at the beginning.
    pub nodes: usize,
    /// The run seed.
    pub seed: u64,
    /// Cold join: from start until every live member lists every live member alive.
    pub convergence_s: Option<f64>,
    /// 99th percentile of the time one membership change took to reach every live member,
    /// in gossip rounds (seconds / gossip interval).
    pub spread_rounds_p99: Option<f64>,
    /// The same in seconds.
    pub spread_s_p99: Option<f64>,
    /// Median of the same, seconds.
    pub spread_s_p50: Option<f64>,
    /// Number of changes measured, and of which kinds.
    pub spread_samples: BTreeMap<&'static str, usize>,
    /// Crash (or long pause) until suspicion and until every live member marks it FAILED.
    pub detection_s: Detection,
    /// Members marked FAILED by someone while running at that generation and not faulty.
    pub false_positives: u64,
    /// The first few false positives ("time observer: member@generation").
    pub false_positive_examples: Vec<String>,
    /// Bytes sent per node per second over a steady window.
    pub bytes_per_node_per_s: Bandwidth,
    /// Largest datagram any node sent.
    pub max_message_bytes: usize,
    /// Datagram counters.
    pub messages: Messages,
    /// Protocol events by kind, summed over observers.
    pub events: BTreeMap<&'static str, u64>,
    /// Scenario-specific outcomes (quorum during a partition, pause results, churn actions).
    pub outcome: BTreeMap<&'static str, serde_json::Value>,
    /// The knobs in force.
    pub config: ConfigEcho,
    /// Invariant checks run (one per step).
    pub invariant_checks: u64,
    /// Virtual time simulated.
    pub simulated_s: f64,
    /// Wall-clock time the run took (the only non-deterministic field).
    pub wall_s: f64,
    /// The violated invariant, if any (the run stopped there).
    pub violation: Option<String>,
    /// Its kind (`two_leaders`, `not_recovered`, ...; see `Violation::kind`).
    pub violation_kind: Option<&'static str>,
    /// The command that reproduces this run.
    pub reproduce: String,
}

/// Detection latencies over all measured crashes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Detection {
    /// Median of crash -> first live member suspects it.
    pub first_suspect_p50: Option<f64>,
    /// Median of crash -> every live member marks it FAILED.
    pub all_failed_p50: Option<f64>,
    /// 99th percentile of the same.
    pub all_failed_p99: Option<f64>,
    /// Maximum of the same.
    pub all_failed_max: Option<f64>,
    /// Crashes measured.
    pub samples: usize,
}

/// Bandwidth per node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bandwidth {
    /// Mean over nodes of bytes sent per second.
    pub mean: Option<f64>,
    /// Busiest node's bytes sent per second.
    pub max: Option<f64>,
    /// The measured window, virtual seconds [from, to].
    pub window_s: Option<[f64; 2]>,
    /// Nodes live over the whole window (the ones measured).
    pub nodes_measured: usize,
    /// The mean split by message kind (`heartbeat`, `lease_request`, ...): where the bytes go.
    pub by_kind: std::collections::BTreeMap<&'static str, f64>,
}

/// Datagram counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Messages {
    /// Handed to the network.
    pub sent: u64,
    /// Handed to a running node.
    pub delivered: u64,
    /// Lost at random.
    pub lost: u64,
    /// Dropped by a partition.
    pub cut: u64,
    /// Arrived at a crashed or stopped process.
    pub to_dead: u64,
}

/// The knobs in force, echoed so a report stands on its own.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigEcho {
    /// Gossip fanout.
    pub fanout: usize,
    /// Phi threshold.
    pub phi: f64,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Gossip interval, ms.
    pub gossip_interval_ms: u64,
    /// Failure timeout, ms.
    pub failure_timeout_ms: u64,
    /// Suspicion timeout, ms.
    pub suspicion_timeout_ms: u64,
    /// Observers per member.
    pub observers: usize,
    /// Accusers needed to convict.
    pub confirmations: usize,
    /// Mean link latency, ms.
    pub latency_ms: f64,
    /// Latency standard deviation, ms.
    pub jitter_ms: f64,
    /// Loss probability.
    pub loss: f64,
    /// Invariant check step, ms.
    pub step_ms: u64,
}

/// Nearest-rank percentile (`p` in 0..=100) of `samples` at the reports' resolution, a
/// thousandth (as [`round3`]); `None` when empty.
///
/// The samples go into an HDR histogram of thousandths at five significant digits, which
/// holds every value below 262.144 exactly (and any larger one within 0.001 %). Rounding
/// first does not move the rank: rounding keeps the order.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut h = Histogram::<u32>::new(5).expect("five significant digits are allowed");
    for &x in samples {
        h.saturating_record((x * 1000.0).round() as u64);
    }
    Some(h.value_at_quantile(p / 100.0) as f64 / 1000.0)
}

/// Rounds to milliseconds (or three decimals) so reports stay readable.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), Some(50.0));
        assert_eq!(percentile(&s, 99.0), Some(99.0));
        assert_eq!(percentile(&s, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[0.0004, 2.0, 1.0], 0.0), Some(0.0));
        assert_eq!(percentile(&[4.2345, 1.0], 100.0), Some(round3(4.2345)));
        assert_eq!(percentile(&[61.0001, 1.0], 99.0), Some(61.0));
    }
}
