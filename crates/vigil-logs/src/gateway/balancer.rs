//! The gateway's request-level balancer: it learns from the answers it gets.
//!
//! [`routing::rank`](super::routing::rank) says who may take a request (HEALTHY, own zone
//! first) from the cluster's view; this module decides who does, from what the gateway
//! itself measured. No IO and no clock: every call takes `now` (time since the gateway
//! started) and the caller's seeded RNG, so the tests replay exactly.
//!
//! - **Peak-EWMA latency** (Finagle, Linkerd): a member's cost jumps to any slower answer at
//!   once and decays toward faster ones with time constant [`BalancerConfig::ewma_tau`]; while
//!   nobody asks it, it relaxes toward the typical cost of the others
//!   ([`BalancerConfig::idle_tau`]), so a member that was slow is tried again later. An
//!   attempt still unanswered counts as an answer at least as slow as it has waited.
//! - **Weight** = (health score / 100)² / (max(cost, floor) × (attempts in flight + 1)).
//! - **Power of two choices, soft**: two members of the best tier drawn at random, one of
//!   them taken with probability proportional to its weight. Two equal members split evenly;
//!   one with a tenth of the weight gets about a tenth of the other's share.
//! - **Outlier ejection** (Envoy): after [`BalancerConfig::consecutive_failures`] failures in
//!   a row, or when its cost is more than [`BalancerConfig::latency_factor`] times the
//!   median of the others' and above [`BalancerConfig::latency_min`], a member is ejected
//!   for `base_ejection × k` (capped at `max_ejection`), k growing with each ejection and
//!   shrinking by one per `base_ejection` spent in rotation. Never more than
//!   `max_ejected_share` of the known members are out at once.
//!   A member back from an ejection is on probation for `base_ejection`: one failure ejects
//!   it again (for longer), and requests to it are hedged after `probation_hedge_factor`
//!   times the fastest other member's cost.
//! - **Retry budget** (Finagle): every request deposits `retry_ratio` of a token, time
//!   deposits `retry_min_per_s` a second, up to `retry_cap`; a retry spends one, so retries
//!   add at most about `retry_ratio` to the load plus a small floor.
//! - **Hedging** ("The Tail at Scale"): a request not answered within
//!   [`Balancer::hedge_delay`] (`hedge_factor` times the fastest other member's expected
//!   answer time) also goes to the next member, paid from the same retry budget; the first
//!   acceptance answers the client, and the slow attempt still runs to its
//!   [`Balancer::attempt_timeout`] so its outcome is learned. Writes carry their event ids, so a write both members took is stored
//!   once.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;

/// The balancer's knobs; the defaults are the ones documented in `docs/design.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct BalancerConfig {
    /// Decay of the peak-EWMA toward faster answers.
    pub ewma_tau: Duration,
    /// Decay of an unused member's cost toward the others' typical cost.
    pub idle_tau: Duration,
    /// Costs below this count as equal.
    pub latency_floor: Duration,
    /// Failures in a row that eject.
    pub consecutive_failures: u32,
    /// Cost this many times the median of the others' ejects ...
    pub latency_factor: f64,
    /// ... when it is also above this.
    pub latency_min: Duration,
    /// First ejection time.
    pub base_ejection: Duration,
    /// Longest ejection time.
    pub max_ejection: Duration,
    /// Most of the known members ejected at once, 0-1.
    pub max_ejected_share: f64,
    /// Retry tokens deposited per request.
    pub retry_ratio: f64,
    /// Retry tokens deposited per second.
    pub retry_min_per_s: f64,
    /// Most retry tokens saved.
    pub retry_cap: f64,
    /// A non-final attempt is abandoned (and counted as a failure) after this many times the
    /// cost of the fastest other member in rotation ...
    pub attempt_timeout_factor: f64,
    /// ... but never before this.
    pub attempt_timeout_min: Duration,
    /// A second member is asked too (a hedge) when the first has not answered within this
    /// many times the cost of the fastest other member in rotation (twice a peak-EWMA,
    /// which follows the slower answers, is near the p95-p99 of answers on a quiet machine:
    /// "The Tail at Scale" hedges at the p95; at 3 times and 10 ms, the writes caught at a
    /// producer's first stall set experiment 4's write p99 under stress) ...
    pub hedge_factor: f64,
    /// ... but never before this.
    pub hedge_min: Duration,
    /// A member back from an ejection is on probation for `base_ejection`: one failure
    /// ejects it again, and a request to it is hedged after this many times the fastest
    /// other member's cost (no minimum).
    pub probation_hedge_factor: f64,
    /// A member neither offered as a candidate nor heard from for this long is left out of
    /// the comparisons (typical cost, attempt timeouts, hedge delays, the ejected share): a
    /// departed producer's last cost must not set the pace for the living.
    pub forget_after: Duration,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            ewma_tau: Duration::from_secs(5),
            idle_tau: Duration::from_secs(3),
            latency_floor: Duration::from_millis(20),
            consecutive_failures: 3,
            latency_factor: 4.0,
            latency_min: Duration::from_millis(200),
            base_ejection: Duration::from_secs(2),
            max_ejection: Duration::from_secs(6),
            max_ejected_share: 0.5,
            retry_ratio: 0.2,
            retry_min_per_s: 5.0,
            retry_cap: 20.0,
            attempt_timeout_factor: 8.0,
            attempt_timeout_min: Duration::from_millis(150),
            hedge_factor: 2.0,
            hedge_min: Duration::from_millis(5),
            probation_hedge_factor: 1.0,
            forget_after: Duration::from_secs(10),
        }
    }
}

/// What the balancer knows of one member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upstream {
    /// Peak-EWMA of answer times, milliseconds (None before the first answer).
    pub cost_ms: Option<f64>,
    /// When the last answer came.
    pub last_sample: Duration,
    /// When each attempt sent to it and not answered yet was sent.
    pub pending: Vec<Duration>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Ejected until then.
    pub ejected_until: Option<Duration>,
    /// Ejections so far.
    pub ejections: u64,
    /// The current ejection multiplier.
    pub multiplier: u32,
    /// When the last ejection ended.
    pub back_since: Duration,
    /// First attempts sent to it.
    pub chosen: u64,
    /// When it was last a candidate or answered (see [`BalancerConfig::forget_after`]).
    pub seen: Duration,
}

/// One member that may take a request: id, health score, tier (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<'a> {
    /// Member id.
    pub id: &'a str,
    /// Its health score, 0-100.
    pub score: u8,
    /// Its tier (own zone 0, others 1).
    pub tier: u8,
}

/// One member's routing state, for metrics and `/api/cluster/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteState {
    /// Member id.
    pub id: String,
    /// First attempts sent to it.
    pub chosen: u64,
    /// Weight among the last candidates, normalized to sum 1.
    pub weight: f64,
    /// Peak-EWMA, milliseconds (0 before any answer).
    pub cost_ms: f64,
    /// Out of rotation now.
    pub ejected: bool,
    /// Ejections so far.
    pub ejections: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

/// The balancer (see the module docs).
#[derive(Debug, Clone)]
pub struct Balancer {
    config: BalancerConfig,
    upstreams: BTreeMap<String, Upstream>,
    tokens: f64,
    tokens_at: Duration,
    last_weights: BTreeMap<String, f64>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl Balancer {
    /// A balancer with no history.
    pub fn new(config: BalancerConfig) -> Self {
        let tokens = config.retry_cap / 2.0;
        Balancer {
            config,
            upstreams: BTreeMap::new(),
            tokens,
            tokens_at: Duration::ZERO,
            last_weights: BTreeMap::new(),
        }
    }

    /// What it knows of `id`.
    #[cfg(test)]
    pub fn upstream(&self, id: &str) -> Option<&Upstream> {
        self.upstreams.get(id)
    }

    fn floor_ms(&self) -> f64 {
        self.config.latency_floor.as_secs_f64() * 1000.0
    }

    /// The members a candidate or heard from within `forget_after`.
    fn current(&self, now: Duration) -> impl Iterator<Item = (&String, &Upstream)> {
        let ttl = self.config.forget_after;
        self.upstreams
            .iter()
            .filter(move |(_, u)| now.saturating_sub(u.seen) <= ttl)
    }

    /// The median cost of the members answering normally, other than `except`.
    fn typical_ms(&self, except: Option<&str>, now: Duration) -> Option<f64> {
        median(
            self.current(now)
                .filter(|(id, u)| Some(id.as_str()) != except && !u.is_ejected(now))
                .filter_map(|(_, u)| u.cost_ms)
                .collect(),
        )
    }

    /// A member's peak-EWMA now, relaxed toward the others' typical cost while it went unasked.
    fn relaxed_ms(&self, id: &str, now: Duration) -> Option<f64> {
        let floor = self.floor_ms();
        let typical = self.typical_ms(Some(id), now).unwrap_or(floor).max(floor);
        let u = self.upstreams.get(id)?;
        let cost = u.cost_ms?;
        let idle = now.saturating_sub(u.last_sample).as_secs_f64();
        Some(if cost > typical {
            typical + (cost - typical) * (-idle / self.config.idle_tau.as_secs_f64()).exp()
        } else {
            cost
        })
    }

    /// How long the oldest attempt to `id` still unanswered has waited, milliseconds (0 when
    /// none is).
    fn waiting_ms(&self, id: &str, now: Duration) -> f64 {
        self.upstreams
            .get(id)
            .and_then(|u| u.pending.iter().min())
            .map_or(0.0, |&sent| now.saturating_sub(sent).as_secs_f64() * 1000.0)
    }

    /// What an answer from `id` is expected to take now: its relaxed peak-EWMA, or longer if
    /// an attempt to it has waited longer already. An answer not yet come is at least that
    /// slow: without this the balancer learned of a stall only when the stalled attempt was
    /// abandoned, and meanwhile the next few writes went to the stalled member too, each
    /// waiting for its hedge (they set experiment 4's write p99 as a stress began).
    fn expected_ms(&self, id: &str, now: Duration) -> Option<f64> {
        self.relaxed_ms(id, now)
            .map(|cost| cost.max(self.waiting_ms(id, now)))
    }

    /// A member's cost now: its expected answer time (the others' typical cost before its
    /// first answer), at least the floor, times its attempts in flight plus one.
    pub fn cost_ms(&self, id: &str, now: Duration) -> f64 {
        let floor = self.floor_ms();
        let pending = self.upstreams.get(id).map_or(0, |u| u.pending.len());
        let cost = self
            .relaxed_ms(id, now)
            .unwrap_or_else(|| self.typical_ms(Some(id), now).unwrap_or(floor))
            .max(self.waiting_ms(id, now));
        cost.max(floor) * (pending + 1) as f64
    }

    /// A member's weight now: (score / 100)² / cost.
    pub fn weight(&self, id: &str, score: u8, now: Duration) -> f64 {
        let h = f64::from(score.clamp(1, 100)) / 100.0;
        h * h / self.cost_ms(id, now)
    }

    /// The order to try members in: first the soft power-of-two choice among the best tier
    /// in rotation, then the rest of the members in rotation by tier and weight, then the
    /// ejected ones (a last resort). Counts the first choice.
    pub fn order(
        &mut self,
        candidates: &[Choice<'_>],
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<String> {
        for c in candidates {
            let u = self.upstreams.entry(c.id.to_string()).or_default();
            u.seen = now;
            if u.ejected_until.is_some_and(|t| t <= now) {
                u.ejected_until = None;
                u.back_since = now;
            }
        }
        let weights: Vec<f64> = candidates
            .iter()
            .map(|c| self.weight(c.id, c.score, now))
            .collect();
        let total: f64 = weights.iter().sum();
        self.last_weights = candidates
            .iter()
            .zip(&weights)
            .map(|(c, w)| (c.id.to_string(), if total > 0.0 { w / total } else { 0.0 }))
            .collect();
        let in_rotation: Vec<usize> = (0..candidates.len())
            .filter(|&i| !self.upstreams[candidates[i].id].is_ejected(now))
            .collect();
        let best_tier = in_rotation.iter().map(|&i| candidates[i].tier).min();
        let pool: Vec<usize> = in_rotation
            .iter()
            .copied()
            .filter(|&i| Some(candidates[i].tier) == best_tier)
            .collect();
        let first = match pool.len() {
            0 => None,
            1 => Some(pool[0]),
            n => {
                let a = pool[rng.random_range(0..n)];
                let mut b = pool[rng.random_range(0..n - 1)];
                if b == a {
                    b = pool[n - 1];
                }
                let (wa, wb) = (weights[a], weights[b]);
                let p = if wa + wb > 0.0 { wa / (wa + wb) } else { 0.5 };
                Some(if rng.random_bool(p.clamp(0.0, 1.0)) {
                    a
                } else {
                    b
                })
            }
        };
        let mut rest: Vec<usize> = (0..candidates.len())
            .filter(|&i| Some(i) != first)
            .collect();
        rest.sort_by(|&x, &y| {
            let ex = !in_rotation.contains(&x);
            let ey = !in_rotation.contains(&y);
            ex.cmp(&ey)
                .then(candidates[x].tier.cmp(&candidates[y].tier))
                .then(weights[y].total_cmp(&weights[x]))
                .then(candidates[x].id.cmp(candidates[y].id))
        });
        let mut out: Vec<String> = Vec::with_capacity(candidates.len());
        if let Some(f) = first {
            if let Some(u) = self.upstreams.get_mut(candidates[f].id) {
                u.chosen += 1;
            }
            out.push(candidates[f].id.to_string());
        }
        out.extend(rest.into_iter().map(|i| candidates[i].id.to_string()));
        out
    }

    /// The expected answer time of the fastest current member in rotation other than `id`:
    /// what attempt timeouts and hedge delays are multiples of.
    fn fastest_other_ms(&self, id: &str, now: Duration) -> Option<f64> {
        self.current(now)
            .filter(|(other, u)| other.as_str() != id && !u.is_ejected(now))
            .filter_map(|(other, _)| self.expected_ms(other, now))
            .min_by(f64::total_cmp)
    }

    /// How long a non-final attempt to `id` may take before it is abandoned for the next
    /// member: a multiple of the fastest other member's expected answer time in rotation
    /// (not of a median: with two producers, one of them slow, the median would be half the
    /// slow one).
    pub fn attempt_timeout(&self, id: &str, now: Duration) -> Duration {
        let floor = self.floor_ms();
        let best = self.fastest_other_ms(id, now).unwrap_or(floor).max(floor);
        Duration::from_secs_f64(best * self.config.attempt_timeout_factor / 1000.0)
            .max(self.config.attempt_timeout_min)
    }

    /// How long an attempt to `id` may go unanswered before the same request is also sent to
    /// the next member (a hedge; the first attempt keeps running until it answers or its
    /// [`Balancer::attempt_timeout`]): a multiple of the fastest other member's cost in
    /// rotation, unfloored, so that it follows what answers take on a quiet machine. A
    /// member on probation, or known slow, is hedged after one times that cost: its answer
    /// is not expected before the longer wait ends anyway, and the few requests the power of
    /// two choices still gives it (to learn whether it recovered) set the write p99 of
    /// experiment 4's `starved` mode. Known slow: an attempt to it has waited longer than
    /// both that multiple and the latency floor, or its last attempt failed and its cost is
    /// above them (one slow answer alone does not make it slow).
    /// None while no other member has answered (nothing to compare with).
    pub fn hedge_delay(&self, id: &str, now: Duration) -> Option<Duration> {
        let best = self.fastest_other_ms(id, now)?;
        let limit = (best * self.config.hedge_factor).max(self.floor_ms());
        let failing = self
            .upstreams
            .get(id)
            .is_some_and(|u| u.consecutive_failures > 0);
        let slow = self.waiting_ms(id, now) > limit
            || failing && self.relaxed_ms(id, now).is_some_and(|own| own > limit);
        let delay = if slow || self.on_probation(id, now) {
            Duration::from_secs_f64(best * self.config.probation_hedge_factor / 1000.0)
        } else {
            Duration::from_secs_f64(best * self.config.hedge_factor / 1000.0)
                .max(self.config.hedge_min)
        };
        Some(delay.min(self.attempt_timeout(id, now)))
    }

    /// Whether `id` came back from an ejection less than `base_ejection` ago: a member that
    /// was frozen when ejected is likely frozen again, so it gets one chance, not three, and
    /// its requests are hedged early (the requests that reached such a member as it came
    /// back set experiment 4's write p99 under stress).
    fn on_probation(&self, id: &str, now: Duration) -> bool {
        self.upstreams.get(id).is_some_and(|u| {
            u.ejections > 0
                && !u.is_ejected(now)
                && now.saturating_sub(u.back_since) < self.config.base_ejection
        })
    }

    /// Notes that an attempt to `id` was sent at `now`.
    pub fn started(&mut self, id: &str, now: Duration) {
        self.upstreams
            .entry(id.to_string())
            .or_default()
            .pending
            .push(now);
    }

    /// Notes an answer (or a failure: an error, a 5xx, an abandoned attempt) from `id`
    /// after `took`; may eject it. Returns whether this answer ejected it.
    pub fn observe(&mut self, id: &str, now: Duration, took: Duration, ok: bool) -> bool {
        let tau = self.config.ewma_tau.as_secs_f64();
        let rtt = took.as_secs_f64() * 1000.0;
        let relaxed = self.relaxed_ms(id, now);
        let probation = self.on_probation(id, now);
        let u = self.upstreams.entry(id.to_string()).or_default();
        // the attempt that answered: the one sent nearest `took` ago
        let sent = now.saturating_sub(took);
        if let Some(k) = (0..u.pending.len()).min_by_key(|&k| u.pending[k].abs_diff(sent)) {
            u.pending.swap_remove(k);
        }
        u.seen = now;
        // An attempt sent before the member came back from its last ejection (one to the
        // last member of a request has no time limit) says nothing of it now: counted, its
        // late failure would end the probation of a member that recovered.
        if u.ejections > 0 && now.saturating_sub(took) < u.back_since {
            return false;
        }
        u.cost_ms = Some(match relaxed {
            Some(c) if rtt <= c => {
                let w = (-now.saturating_sub(u.last_sample).as_secs_f64() / tau).exp();
                c * w + rtt * (1.0 - w)
            }
            _ => rtt,
        });
        u.last_sample = now;
        if ok {
            u.consecutive_failures = 0;
        } else {
            u.consecutive_failures += 1;
        }
        if u.is_ejected(now) {
            return false;
        }
        let failing = u.consecutive_failures
            >= if probation {
                1
            } else {
                self.config.consecutive_failures
            };
        let cost = u.cost_ms.unwrap_or(0.0);
        let slow = cost > self.config.latency_min.as_secs_f64() * 1000.0
            && self
                .typical_ms(Some(id), now)
                .is_some_and(|t| cost > self.config.latency_factor * t.max(self.floor_ms()));
        if !(failing || slow) || !self.may_eject(now) {
            return false;
        }
        let base = self.config.base_ejection;
        let max = self.config.max_ejection;
        let u = self.upstreams.get_mut(id).expect("entry made above");
        let healthy_periods = now.saturating_sub(u.back_since).as_secs_f64() / base.as_secs_f64();
        u.multiplier = u.multiplier.saturating_sub(healthy_periods as u32) + 1;
        u.ejected_until = Some(now + base.saturating_mul(u.multiplier).min(max));
        u.ejections += 1;
        u.consecutive_failures = 0;
        true
    }

    fn may_eject(&self, now: Duration) -> bool {
        let known = self.current(now).count();
        let out = self.current(now).filter(|(_, u)| u.is_ejected(now)).count();
        ((out + 1) as f64) <= (known as f64 * self.config.max_ejected_share).floor()
    }

    /// Deposits the request's share of retry tokens.
    pub fn deposit(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.tokens_at).as_secs_f64();
        self.tokens_at = now;
        self.tokens = (self.tokens + self.config.retry_ratio + dt * self.config.retry_min_per_s)
            .min(self.config.retry_cap);
    }

    /// Spends a retry token on a hedge if one more is left for a failover.
    pub fn try_hedge(&mut self) -> bool {
        self.spend_keeping(1.0)
    }

    /// Spends a retry token if there is one.
    pub fn try_retry(&mut self) -> bool {
        self.spend_keeping(0.0)
    }

    /// Spends a token if `reserve` more are left after it.
    fn spend_keeping(&mut self, reserve: f64) -> bool {
        let spend = self.tokens >= 1.0 + reserve;
        if spend {
            self.tokens -= 1.0;
        }
        spend
    }

    /// Every member's routing state.
    pub fn states(&self, now: Duration) -> Vec<RouteState> {
        self.upstreams
            .iter()
            .map(|(id, u)| RouteState {
                id: id.clone(),
                chosen: u.chosen,
                weight: self.last_weights.get(id).copied().unwrap_or(0.0),
                cost_ms: u.cost_ms.unwrap_or(0.0),
                ejected: u.is_ejected(now),
                ejections: u.ejections,
                consecutive_failures: u.consecutive_failures,
            })
            .collect()
    }
}

impl Upstream {
    /// Whether it is out of rotation at `now`.
    pub fn is_ejected(&self, now: Duration) -> bool {
        self.ejected_until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn two<'a>(score_a: u8, score_b: u8) -> [Choice<'a>; 2] {
        [
            Choice {
                id: "a",
                score: score_a,
                tier: 0,
            },
            Choice {
                id: "b",
                score: score_b,
                tier: 0,
            },
        ]
    }

    /// Sends `n` requests, one every 50 ms from `start`, each answered after `latency(id)`;
    /// returns how many went first to "b" and the time after the last.
    fn drive(
        bal: &mut Balancer,
        rng: &mut SmallRng,
        start: Duration,
        n: usize,
        scores: (u8, u8),
        latency: impl Fn(&str, Duration) -> (Duration, bool),
    ) -> (usize, Duration) {
        let mut to_b = 0;
        let mut now = start;
        for _ in 0..n {
            bal.deposit(now);
            let order = bal.order(&two(scores.0, scores.1), now, rng);
            let first = order[0].clone();
            if first == "b" {
                to_b += 1;
            }
            bal.started(&first, now);
            let (took, ok) = latency(&first, now);
            bal.observe(&first, now + took, took, ok);
            now += MS(50);
        }
        (to_b, now)
    }

    #[test]
    fn equal_members_split_the_traffic_evenly() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(1);
        let (to_b, _) = drive(&mut bal, &mut rng, MS(0), 2000, (100, 100), |id, _| {
            (if id == "a" { MS(5) } else { MS(9) }, true)
        });
        // both under the 20 ms floor: equal
        assert!((850..1150).contains(&to_b), "b took {to_b} of 2000");
    }

    #[test]
    fn a_slow_member_gets_little_and_is_ejected() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(2);
        let (_, t) = drive(&mut bal, &mut rng, MS(0), 200, (100, 100), |_, _| {
            (MS(8), true)
        });
        let (to_b, _) = drive(&mut bal, &mut rng, t, 400, (100, 100), |id, _| {
            (if id == "a" { MS(8) } else { MS(900) }, true)
        });
        assert!(to_b < 20, "b took {to_b} of 400 while 100 times slower");
        assert!(bal.upstream("b").unwrap().ejections >= 1);
    }

    #[test]
    fn a_low_health_score_lowers_the_share() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(3);
        let (to_b, _) = drive(&mut bal, &mut rng, MS(0), 2000, (100, 50), |_, _| {
            (MS(8), true)
        });
        // weight 0.25 against 1: about 20 %
        assert!((300..500).contains(&to_b), "b took {to_b} of 2000");
    }

    #[test]
    fn consecutive_failures_eject_for_a_time_that_grows() {
        let mut bal = Balancer::new(BalancerConfig::default());
        for id in ["a", "b"] {
            bal.observe(id, MS(0), MS(5), true);
        }
        assert!(!bal.observe("b", MS(10), MS(5), false));
        assert!(!bal.observe("b", MS(20), MS(5), false));
        assert!(bal.observe("b", MS(30), MS(5), false));
        assert_eq!(bal.upstream("b").unwrap().ejected_until, Some(MS(2030)));
        // back, and failing again at once: on probation one failure ejects, twice as long
        let mut rng = SmallRng::seed_from_u64(4);
        bal.order(&two(100, 100), MS(2100), &mut rng);
        assert!(bal.observe("b", MS(2110), MS(5), false));
        assert_eq!(bal.upstream("b").unwrap().ejected_until, Some(MS(6110)));
        assert_eq!(bal.upstream("b").unwrap().ejections, 2);
    }

    #[test]
    fn never_more_than_the_allowed_share_is_ejected() {
        let mut bal = Balancer::new(BalancerConfig::default());
        for id in ["a", "b"] {
            bal.observe(id, MS(0), MS(5), true);
        }
        for k in 0..3 {
            bal.observe("a", MS(10 + k), MS(5), false);
        }
        assert!(bal.upstream("a").unwrap().is_ejected(MS(20)));
        for k in 0..10 {
            assert!(!bal.observe("b", MS(30 + k), MS(5), false));
        }
        assert!(!bal.upstream("b").unwrap().is_ejected(MS(50)));
    }

    #[test]
    fn ejected_members_come_last_and_return_when_their_time_is_up() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(5);
        for id in ["a", "b"] {
            bal.observe(id, MS(0), MS(5), true);
        }
        for k in 0..3 {
            bal.observe("b", MS(10 + k), MS(5), false);
        }
        for _ in 0..50 {
            assert_eq!(bal.order(&two(100, 100), MS(100), &mut rng), ["a", "b"]);
        }
        let later: usize = (0..400)
            .filter(|_| bal.order(&two(100, 100), MS(2100), &mut rng)[0] == "b")
            .count();
        assert!(later > 100, "b first {later} of 400 after its ejection");
    }

    #[test]
    fn a_slow_member_that_recovers_wins_back_its_share() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(6);
        let (_, t) = drive(&mut bal, &mut rng, MS(0), 200, (100, 100), |id, _| {
            (if id == "a" { MS(8) } else { MS(1500) }, true)
        });
        let (_, t) = drive(&mut bal, &mut rng, t, 100, (100, 100), |_, _| (MS(8), true));
        let (to_b, _) = drive(&mut bal, &mut rng, t, 500, (100, 100), |_, _| (MS(8), true));
        assert!(
            to_b > 175,
            "b took {to_b} of 500 in the 25 s after recovering"
        );
    }

    #[test]
    fn the_retry_budget_limits_retries_to_a_share_of_requests() {
        let mut bal = Balancer::new(BalancerConfig {
            retry_min_per_s: 0.0,
            ..BalancerConfig::default()
        });
        let mut retries = 0;
        for k in 0..1000 {
            bal.deposit(MS(k));
            while bal.try_retry() {
                retries += 1;
            }
        }
        // the initial half-full bucket (10) plus 20 % of 1000 requests
        assert!((209..=210).contains(&retries), "{retries}");
    }

    #[test]
    fn the_attempt_timeout_follows_the_fastest_other_member() {
        let mut bal = Balancer::new(BalancerConfig::default());
        assert_eq!(bal.attempt_timeout("a", MS(0)), MS(160));
        bal.observe("a", MS(0), MS(100), true);
        bal.observe("b", MS(0), MS(100), true);
        assert_eq!(bal.attempt_timeout("a", MS(0)), MS(800));
        // b turns slow: an attempt to b is given 8 x a's time, not 8 x the median
        bal.observe("b", MS(10), MS(1500), true);
        bal.observe("a", MS(10), MS(10), true);
        assert!(bal.attempt_timeout("b", MS(10)) < MS(800));
    }

    #[test]
    fn the_hedge_delay_follows_the_fastest_other_member_unfloored() {
        let mut bal = Balancer::new(BalancerConfig::default());
        // nobody to compare with yet
        assert_eq!(bal.hedge_delay("a", MS(0)), None);
        bal.observe("a", MS(0), MS(4), true);
        assert_eq!(bal.hedge_delay("a", MS(0)), None);
        // b is hedged after 2 x a's 4 ms; a after 2 x b's, at least 5 ms
        bal.observe("b", MS(0), MS(2), true);
        assert_eq!(bal.hedge_delay("b", MS(0)), Some(MS(8)));
        assert_eq!(bal.hedge_delay("a", MS(0)), Some(MS(5)));
        // a slower answer from a: b's hedge waits for 2 x a's peak-EWMA; one slow answer
        // does not make a known slow
        bal.observe("a", MS(1), MS(30), true);
        assert_eq!(bal.hedge_delay("b", MS(1)), Some(MS(60)));
        assert_eq!(bal.hedge_delay("a", MS(1)), Some(MS(5)));
        // an ejected member is nobody to compare with
        for k in 0..3 {
            bal.observe("a", MS(2 + k), MS(5), false);
        }
        assert!(bal.upstream("a").unwrap().ejected_until.is_some());
        assert_eq!(bal.hedge_delay("b", MS(10)), None);
    }

    #[test]
    fn a_member_known_slow_is_hedged_after_the_fastest_others_time() {
        let mut bal = Balancer::new(BalancerConfig::default());
        bal.observe("a", MS(0), MS(4), true);
        // an attempt to b abandoned after 150 ms: known slow
        bal.observe("b", MS(0), MS(150), false);
        assert_eq!(bal.hedge_delay("b", MS(0)), Some(MS(4)));
        // its next answer, fast: an ordinary wait again
        bal.observe("b", MS(100), MS(4), true);
        assert_eq!(bal.hedge_delay("b", MS(100)), Some(MS(8)));
        // failing but under the 20 ms floor: an ordinary wait
        let mut bal = Balancer::new(BalancerConfig::default());
        bal.observe("a", MS(0), MS(2), true);
        bal.observe("b", MS(0), MS(15), false);
        assert_eq!(bal.hedge_delay("b", MS(0)), Some(MS(5)));
    }

    #[test]
    fn a_member_whose_attempt_waits_is_known_slow_before_the_attempt_ends() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(7);
        bal.observe("a", MS(0), MS(3), true);
        bal.observe("b", MS(0), MS(3), true);
        // b stalls with an attempt sent at 1 s; 50 ms later the next request is due
        bal.started("b", MS(1000));
        let now = MS(1050);
        assert_eq!(bal.hedge_delay("b", now), Some(MS(3)));
        assert!(bal.weight("b", 100, now) * 4.0 < bal.weight("a", 100, now));
        // and a is not hedged to b, whose answer is 50 ms late already
        assert_eq!(bal.hedge_delay("a", now), Some(MS(100)));
        let to_b = (0..1000)
            .filter(|_| bal.order(&two(100, 100), now, &mut rng)[0] == "b")
            .count();
        assert!(to_b < 200, "b first {to_b} of 1000 while stalled");
        // its answer comes after 150 ms: nothing waits any more, and the 150 ms is learned
        bal.observe("b", MS(1150), MS(150), true);
        assert!(bal.upstream("b").unwrap().pending.is_empty());
        assert_eq!(bal.upstream("b").unwrap().cost_ms, Some(150.0));
        // an attempt that waits less than the hedge delay proves nothing
        let mut bal = Balancer::new(BalancerConfig::default());
        bal.observe("a", MS(0), MS(3), true);
        bal.observe("b", MS(0), MS(3), true);
        bal.started("b", MS(1000));
        assert_eq!(bal.hedge_delay("b", MS(1004)), Some(MS(6)));
        // a member that never answered yet stalls on its first attempt: the same
        let mut bal = Balancer::new(BalancerConfig::default());
        bal.observe("a", MS(0), MS(3), true);
        bal.started("b", MS(1000));
        assert!(bal.weight("b", 100, MS(1100)) * 4.0 < bal.weight("a", 100, MS(1100)));
    }

    #[test]
    fn a_member_gone_for_good_sets_no_pace_for_the_others() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(3);
        // c answered in 1 ms, then left the cluster: no longer a candidate
        bal.observe("c", MS(0), MS(1), true);
        bal.observe("a", MS(0), MS(4), true);
        bal.observe("b", MS(0), MS(4), true);
        assert_eq!(bal.hedge_delay("b", MS(0)), Some(MS(5)));
        let later = MS(0) + BalancerConfig::default().forget_after + MS(1);
        bal.order(&two(100, 100), later, &mut rng);
        // b is compared with a alone: 2 x 4 ms
        assert_eq!(bal.hedge_delay("b", later), Some(MS(8)));
    }

    #[test]
    fn a_member_back_from_an_ejection_is_on_probation() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(5);
        bal.observe("a", MS(0), MS(4), true);
        bal.observe("b", MS(0), MS(4), true);
        for k in 0..3 {
            bal.observe("b", MS(10 + k), MS(5), false);
        }
        assert_eq!(bal.upstream("b").unwrap().ejected_until, Some(MS(2012)));
        // back at 2.1 s: hedged after a's 4 ms, not 2 x that
        bal.order(&two(100, 100), MS(2100), &mut rng);
        assert_eq!(bal.hedge_delay("b", MS(2100)), Some(MS(4)));
        // one failure ejects it again, for longer
        assert!(bal.observe("b", MS(2200), MS(90), false));
        assert_eq!(bal.upstream("b").unwrap().ejected_until, Some(MS(6200)));
        // back, and well for a whole base ejection time: off probation, three failures again
        bal.order(&two(100, 100), MS(6300), &mut rng);
        assert!(!bal.observe("b", MS(6400), MS(4), true));
        let off = MS(6300) + BalancerConfig::default().base_ejection;
        assert_eq!(bal.hedge_delay("b", off), Some(MS(8)));
        assert!(!bal.observe("b", off, MS(5), false));
        assert!(!bal.observe("b", off + MS(1), MS(5), false));
        assert!(bal.observe("b", off + MS(2), MS(5), false));
    }

    #[test]
    fn hedges_leave_a_token_for_a_failover() {
        let mut bal = Balancer::new(BalancerConfig::default());
        // the initial bucket is half full: 10 tokens
        let hedges = (0..20).take_while(|_| bal.try_hedge()).count();
        assert_eq!(hedges, 9);
        assert!(bal.try_retry());
        assert!(!bal.try_retry());
    }

    #[test]
    fn an_attempt_sent_before_a_member_came_back_does_not_end_its_probation() {
        let mut bal = Balancer::new(BalancerConfig::default());
        let mut rng = SmallRng::seed_from_u64(6);
        bal.observe("a", MS(0), MS(4), true);
        for k in 0..3 {
            bal.observe("b", MS(10 + k), MS(5), false);
        }
        bal.order(&two(100, 100), MS(2100), &mut rng);
        // sent at 1 s (to b as the last member of a request: no time limit), failed at 2.2 s
        assert!(!bal.observe("b", MS(2200), MS(1200), false));
        assert!(!bal.upstream("b").unwrap().is_ejected(MS(2200)));
        // a failure of an attempt sent after it came back does
        assert!(bal.observe("b", MS(2300), MS(100), false));
    }
}
