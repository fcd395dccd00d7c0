//! Phi-accrual failure detector (Hayashibara et al.), in the normal-distribution form.
//!
//! phi(t) = -log10(1 - F(t)), where F is the CDF of a normal distribution fitted to the
//! recent heartbeat inter-arrival times, with the mean raised by an acceptable pause and the
//! standard deviation floored. F is approximated by a logistic curve (as Akka does), which
//! keeps phi finite and monotone far into the tail.

use std::collections::VecDeque;
use std::time::Duration;

/// Inter-arrival statistics and phi for one monitored member.
#[derive(Debug, Clone)]
pub struct PhiDetector {
    samples: VecDeque<f64>,
    capacity: usize,
    sum: f64,
    sum_sq: f64,
    last_arrival: Duration,
    min_std_ms: f64,
    pause_ms: f64,
    /// Whether a heartbeat arrived since monitoring started (the prior is no evidence).
    heard: bool,
    /// Whether the subject's previous life was heard from (see [`PhiDetector::known`]).
    known_before: bool,
}

impl PhiDetector {
    /// Starts monitoring at `now` with a prior of two samples at the expected interval
    /// (mean = interval, std dev = interval / 4, as Akka does before real samples arrive).
    pub fn new(
        now: Duration,
        expected_interval: Duration,
        window: usize,
        min_std: Duration,
        pause: Duration,
    ) -> Self {
        let mean = expected_interval.as_secs_f64() * 1000.0;
        let std = mean / 4.0;
        let mut d = PhiDetector {
            samples: VecDeque::with_capacity(window.min(1024)),
            capacity: window.max(2),
            sum: 0.0,
            sum_sq: 0.0,
            last_arrival: now,
            min_std_ms: min_std.as_secs_f64() * 1000.0,
            pause_ms: pause.as_secs_f64() * 1000.0,
            heard: false,
            known_before: false,
        };
        d.push(mean - std);
        d.push(mean + std);
        d
    }

    fn push(&mut self, x: f64) {
        if self.samples.len() == self.capacity {
            if let Some(old) = self.samples.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.samples.push_back(x);
        self.sum += x;
        self.sum_sq += x * x;
    }

    /// Records a heartbeat arriving at `now`.
    pub fn heartbeat(&mut self, now: Duration) {
        if now > self.last_arrival {
            let interval = (now - self.last_arrival).as_secs_f64() * 1000.0;
            self.push(interval);
            self.last_arrival = now;
            self.heard = true;
        }
    }

    /// Whether a heartbeat arrived since monitoring started.
    pub fn heard(&self) -> bool {
        self.heard
    }

    /// Notes that the subject's previous life was heard from (see `Watch::heard_before` in
    /// `node::detect`). Only for [`PhiDetector::known`]: [`PhiDetector::heard`] still says
    /// whether this life was, so the credit is not handed on from life to life by lives
    /// never heard (a member crash-looping before its first heartbeat).
    pub fn mark_known_before(&mut self) {
        self.known_before = true;
    }

    /// Whether this life or the one before it was heard from: a subject that is not known
    /// is checked without waiting for phi.
    pub fn known(&self) -> bool {
        self.heard || self.known_before
    }

    /// Forgets the silence so far (used after this node itself was paused: the gap says
    /// nothing about the subject).
    pub fn reset_silence(&mut self, now: Duration) {
        self.last_arrival = now;
    }

    /// When the last heartbeat arrived.
    pub fn last_arrival(&self) -> Duration {
        self.last_arrival
    }

    /// Mean inter-arrival time in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.sum / self.samples.len() as f64
    }

    /// Standard deviation of inter-arrival times in milliseconds, before the floor.
    pub fn std_dev_ms(&self) -> f64 {
        let n = self.samples.len() as f64;
        let mean = self.sum / n;
        (self.sum_sq / n - mean * mean).max(0.0).sqrt()
    }

    /// Phi at `now`: how unlikely it is that a heartbeat is merely late.
    pub fn phi(&self, now: Duration) -> f64 {
        let elapsed = now.saturating_sub(self.last_arrival).as_secs_f64() * 1000.0;
        phi(
            elapsed,
            self.mean_ms() + self.pause_ms,
            self.std_dev_ms().max(self.min_std_ms),
        )
    }
}

/// Phi of `elapsed_ms` for a normal distribution of the given mean and std dev.
pub fn phi(elapsed_ms: f64, mean_ms: f64, std_ms: f64) -> f64 {
    let y = (elapsed_ms - mean_ms) / std_ms;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let p = if elapsed_ms > mean_ms {
        e / (1.0 + e)
    } else {
        1.0 - 1.0 / (1.0 + e)
    };
    if p <= 0.0 {
        // far in the tail the logistic underflows; phi is then simply "huge"
        return 1.0e3;
    }
    (-p.log10()).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn regular(n: u64) -> PhiDetector {
        let mut d = PhiDetector::new(MS(0), MS(1000), 100, MS(100), MS(500));
        for i in 1..=n {
            d.heartbeat(MS(i * 1000));
        }
        d
    }

    #[test]
    fn phi_is_low_right_after_a_heartbeat_and_grows_with_silence() {
        let d = regular(20);
        let t = MS(20_000);
        assert!(d.phi(t) < 0.1);
        let mut last = 0.0;
        for ms in (0..5000).step_by(100) {
            let p = d.phi(t + MS(ms));
            assert!(p >= last, "phi must not decrease with silence");
            last = p;
        }
        assert!(d.phi(t + MS(1200)) < 1.0, "{}", d.phi(t + MS(1200)));
        assert!(d.phi(t + MS(3000)) > 8.0, "{}", d.phi(t + MS(3000)));
    }

    #[test]
    fn irregular_heartbeats_make_phi_more_patient() {
        let regular = regular(30);
        let mut irregular = PhiDetector::new(MS(0), MS(1000), 100, MS(100), MS(500));
        let mut t = 0;
        for i in 0..30 {
            t += if i % 2 == 0 { 400 } else { 1600 };
            irregular.heartbeat(MS(t));
        }
        assert!(irregular.std_dev_ms() > 500.0);
        let gap = MS(2500);
        assert!(irregular.phi(MS(t) + gap) < regular.phi(MS(30_000) + gap));
    }

    #[test]
    fn window_forgets_old_samples() {
        let mut d = PhiDetector::new(MS(0), MS(1000), 4, MS(10), MS(0));
        for i in 1..=10 {
            d.heartbeat(MS(i * 100));
        }
        assert!((d.mean_ms() - 100.0).abs() < 1e-6);
    }

    #[test]
    fn phi_function_is_finite_and_non_negative() {
        for e in [0.0, 1.0, 1e3, 1e6, 1e12] {
            let p = phi(e, 1000.0, 100.0);
            assert!(p.is_finite() && p >= 0.0, "{e} -> {p}");
        }
    }
}
