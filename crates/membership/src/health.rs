//! Health score: one number 0-100 per member, from what this node sees of it (phi) and what
//! the member measures about itself (its [`HealthSignals`], gossiped).
//!
//! ```text
//! score = 100 * (0.30 * regularity + 0.45 * (1 - busy) + 0.10 * (1 - mem) + 0.15 * (1 - err))
//! regularity = 1 - min(phi / phi_threshold, 1)     heartbeat regularity as this node sees it
//! busy       = max(ramp(cpu, 50 %, 95 %),          its CPU time against the CPU it may use
//!                  ramp(pressure, 20 %, 70 %),     time spent waiting for a CPU (run queue,
//!                                                  cgroup throttling, cgroup PSI)
//!                  ramp(lag, 50 ms, 500 ms),       how late its own periodic tick ran
//!                  ramp(latency, 100 ms, 1 s))     its own service's mean answer time
//! mem        = resident memory against its limit, 0..1
//! err        = min(2 * error_ratio, 1)             10 % failed requests cost 3 points, 50 % all 15
//! ramp(x, lo, hi) = clamp((x - lo) / (hi - lo), 0, 1)
//! ```
//!
//! Why this shape: heartbeat regularity is the one thing this node observes itself, but phi
//! adapts to a member that is regularly slow (that is its job), so it cannot carry the
//! score alone. The four "busy" signals all say the same thing (this member cannot keep up)
//! from different angles, and any one of them is enough: they are combined by `max`, not
//! summed, so a member short of CPU in any way loses up to 45 points, while a member that
//! is merely using its CPU well (under half of its allowance) loses nothing. Every signal
//! belongs to the member itself, none to its host: two members on one busy host score
//! alike only if both are actually slowed down. A member that is alive but scores under
//! `degraded_threshold` (50 by default) is DEGRADED: still a member and a voter, but
//! routing skips it.

use crate::member::HealthSignals;

fn ramp(x: f64, lo: f64, hi: f64) -> f64 {
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// How short of CPU or slow the member says it is, 0 (not at all) to 1 (see the module docs).
pub fn busy(signals: HealthSignals) -> f64 {
    let cpu = ramp(f64::from(signals.cpu_pct), 50.0, 95.0);
    let pressure = ramp(f64::from(signals.pressure_pct), 20.0, 70.0);
    let lag = ramp(f64::from(signals.lag_ms), 50.0, 500.0);
    let latency = ramp(f64::from(signals.latency_ms), 100.0, 1000.0);
    cpu.max(pressure).max(lag).max(latency)
}

/// Computes the 0-100 score.
pub fn score(phi: f64, phi_threshold: f64, signals: HealthSignals) -> u8 {
    let regularity = if phi.is_nan() {
        0.0
    } else {
        1.0 - (phi / phi_threshold).clamp(0.0, 1.0)
    };
    let mem = f64::from(signals.mem_pct.min(100)) / 100.0;
    let err = (2.0 * f64::from(signals.error_pct.min(100)) / 100.0).min(1.0);
    let s = 100.0
        * (0.30 * regularity
            + 0.45 * (1.0 - busy(signals))
            + 0.10 * (1.0 - mem)
            + 0.15 * (1.0 - err));
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
                ..Default::default()
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
                    pressure_pct: 255,
                    lag_ms: u16::MAX,
                    latency_ms: u16::MAX,
                },
            );
            assert!(s <= 100);
        }
    }

    #[test]
    fn any_one_sign_of_starvation_costs_the_busy_share() {
        let base = score(0.0, 8.0, HealthSignals::default());
        for starved in [
            HealthSignals {
                pressure_pct: 80,
                ..Default::default()
            },
            HealthSignals {
                lag_ms: 1000,
                ..Default::default()
            },
            HealthSignals {
                latency_ms: 1500,
                ..Default::default()
            },
            HealthSignals {
                cpu_pct: 100,
                ..Default::default()
            },
        ] {
            assert_eq!(base - score(0.0, 8.0, starved), 45, "{starved:?}");
        }
        // together they cost no more than one of them
        let all = HealthSignals {
            cpu_pct: 100,
            pressure_pct: 100,
            lag_ms: 1000,
            latency_ms: 1500,
            ..Default::default()
        };
        assert_eq!(score(0.0, 8.0, all), 55);
    }

    #[test]
    fn a_member_using_a_little_cpu_on_a_loaded_host_loses_nothing() {
        let s = HealthSignals {
            cpu_pct: 40,
            pressure_pct: 15,
            lag_ms: 20,
            latency_ms: 50,
            ..Default::default()
        };
        assert_eq!(score(0.0, 8.0, s), 100);
    }
}
