//! The node's own health signals: CPU and memory from `sysinfo`, errors from the share of
//! datagrams that failed (undecodable in, or refused out) over the last interval.

use membership::{HealthSignals, Stats};
use sysinfo::System;

/// Measures this host every interval.
pub struct SignalSampler {
    system: System,
    last: (u64, u64),
}

impl Default for SignalSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl SignalSampler {
    /// A sampler; the first CPU reading is 0 (sysinfo needs two refreshes).
    pub fn new() -> Self {
        SignalSampler {
            system: System::new(),
            last: (0, 0),
        }
    }

    /// Takes one sample. `send_errors` counts datagrams the transport refused.
    pub fn sample(&mut self, stats: &Stats, send_errors: u64) -> HealthSignals {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let cpu = self.system.global_cpu_usage();
        let total = self.system.total_memory().max(1);
        let mem = self.system.used_memory() as f64 / total as f64 * 100.0;
        let failed = stats.decode_errors + send_errors;
        let all = stats.messages_received + stats.decode_errors + stats.messages_sent + send_errors;
        let (failed_before, all_before) = std::mem::replace(&mut self.last, (failed, all));
        let error_pct = error_pct(
            failed.saturating_sub(failed_before),
            all.saturating_sub(all_before),
        );
        HealthSignals {
            cpu_pct: pct(f64::from(cpu)),
            mem_pct: pct(mem),
            error_pct,
        }
    }
}

fn pct(v: f64) -> u8 {
    if v.is_finite() {
        v.round().clamp(0.0, 100.0) as u8
    } else {
        0
    }
}

/// Percent of failed datagrams in an interval; 0 when nothing happened.
pub fn error_pct(failed: u64, all: u64) -> u8 {
    if all == 0 {
        0
    } else {
        pct(failed as f64 / all as f64 * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_share_is_a_percentage() {
        assert_eq!(error_pct(0, 0), 0);
        assert_eq!(error_pct(1, 4), 25);
        assert_eq!(error_pct(9, 3), 100);
    }

    #[test]
    fn a_sample_is_in_range() {
        let mut s = SignalSampler::new();
        let sig = s.sample(&Stats::default(), 0);
        assert!(sig.cpu_pct <= 100 && sig.mem_pct <= 100 && sig.error_pct == 0);
    }
}
