//! Health score: one number 0-100 per member, from four signals.
//!
//! ```text
//! score = 100 * (0.40 * regularity + 0.20 * (1 - cpu) + 0.20 * (1 - mem) + 0.20 * (1 - err))
//! regularity = 1 - min(phi / phi_threshold, 1)    (heartbeat regularity as this node sees it)
//! cpu, mem   = the member's own load and memory pressure, 0..1
//! err        = min(2 * error_ratio, 1)             (10 % failed requests cost 4 points... 50 % cost all 20)
//! ```
//!
//! Heartbeat regularity gets the largest weight because it is what this node observes
//! itself; the other three are self-reported by the member through gossip (quantized to
//! 5 % steps so that only noticeable changes travel). A member that is alive but scores
//! under `degraded_threshold` (50 by default) is DEGRADED: still a member and a voter, but
//! routing skips it.

use crate::member::HealthSignals;

/// Computes the 0-100 score.
pub fn score(phi: f64, phi_threshold: f64, signals: HealthSignals) -> u8 {
    let regularity = 1.0 - (phi / phi_threshold).clamp(0.0, 1.0);
    let cpu = f64::from(signals.cpu_pct.min(100)) / 100.0;
    let mem = f64::from(signals.mem_pct.min(100)) / 100.0;
    let err = (2.0 * f64::from(signals.error_pct.min(100)) / 100.0).min(1.0);
    let s =
        100.0 * (0.40 * regularity + 0.20 * (1.0 - cpu) + 0.20 * (1.0 - mem) + 0.20 * (1.0 - err));
    s.round().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_regular_member_scores_100() {
        assert_eq!(score(0.0, 8.0, HealthSignals::default()), 100);
    }

    #[test]
    fn each_signal_lowers_the_score() {
        let base = score(0.0, 8.0, HealthSignals::default());
        assert!(score(4.0, 8.0, HealthSignals::default()) < base);
        assert!(
            score(
                0.0,
                8.0,
                HealthSignals {
                    cpu_pct: 100,
                    ..Default::default()
                }
            ) < base
        );
        assert!(
            score(
                0.0,
                8.0,
                HealthSignals {
                    mem_pct: 90,
                    ..Default::default()
                }
            ) < base
        );
        assert!(
            score(
                0.0,
                8.0,
                HealthSignals {
                    error_pct: 10,
                    ..Default::default()
                }
            ) < base
        );
    }

    #[test]
    fn a_suspected_overloaded_member_is_under_the_degraded_threshold() {
        let s = score(
            8.0,
            8.0,
            HealthSignals {
                cpu_pct: 100,
                mem_pct: 60,
                error_pct: 5,
            },
        );
        assert!(s < 50, "{s}");
    }

    #[test]
    fn score_stays_in_range_for_any_input() {
        for phi in [-1.0, 0.0, 3.0, 1e9, f64::INFINITY] {
            let s = score(
                phi,
                8.0,
                HealthSignals {
                    cpu_pct: 255,
                    mem_pct: 255,
                    error_pct: 255,
                },
            );
            assert!(s <= 100);
        }
    }
}
