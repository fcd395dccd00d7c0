//! One request's attempts over the members the balancer ordered, hedged.
//!
//! The first member is asked at once. The next one is asked when every attempt in flight
//! has failed, or, as a hedge, when the newest one has not answered within its
//! [`Balancer::hedge_delay`](super::balancer::Balancer::hedge_delay); either way only while
//! the retry budget lasts. The caller takes answers in the order they arrive and decides
//! which one answers the client. Attempts still in flight when the race is dropped (a hedge
//! won) run on in the background until they answer or are abandoned, and the balancer
//! learns their outcome: a producer that is frozen must still count as slow.
//!
//! Why hedge rather than only abandon a slow attempt: writes to a producer that gets CPU
//! in rare bursts waited for the abandonment (150 ms or more) before another producer was
//! asked, and those few writes set the write p99 of experiment 4's throttled modes at 168 ms
//! against 10-13 ms in the baseline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use super::Gateway;
use crate::routing::Candidate;

/// An attempt's outcome: the member, its answer or why there is none, how long it took.
pub(super) type Outcome = (Candidate, Result<reqwest::Response, String>, Duration);

/// Builds the request for one member.
type Build = Box<dyn Fn(&Candidate) -> reqwest::RequestBuilder + Send + Sync>;

/// See the module docs.
pub(super) struct Race {
    g: Arc<Gateway>,
    role: &'static str,
    candidates: Vec<Candidate>,
    build: Build,
    /// Whether an answer with this status says the member works (for attempts that finish
    /// after the race is over).
    works: fn(reqwest::StatusCode) -> bool,
    launched: usize,
    /// Whether the retry budget refused a failover (a refused hedge only waits).
    spent: bool,
    /// Whether the caller wants no more attempts (the ones in flight still answer).
    closed: bool,
    inflight: JoinSet<Outcome>,
    /// Who each attempt in flight asks: a task that panicked still counts as that member's
    /// failure, or its count of requests in flight would never come down.
    asked: HashMap<Id, Candidate>,
    /// When the newest attempt is hedged.
    hedge_at: Option<Instant>,
}

impl Race {
    /// A race over the first `attempts` of `candidates`.
    pub fn new(
        g: Arc<Gateway>,
        role: &'static str,
        mut candidates: Vec<Candidate>,
        attempts: usize,
        works: fn(reqwest::StatusCode) -> bool,
        build: impl Fn(&Candidate) -> reqwest::RequestBuilder + Send + Sync + 'static,
    ) -> Race {
        candidates.truncate(attempts);
        Race {
            g,
            role,
            candidates,
            build: Box::new(build),
            works,
            launched: 0,
            spent: false,
            closed: false,
            inflight: JoinSet::new(),
            asked: HashMap::new(),
            hedge_at: None,
        }
    }

    /// Whether the retry budget stopped the race.
    pub fn budget_spent(&self) -> bool {
        self.spent
    }

    /// Asks for no more attempts: [`Race::next`] returns what is in flight, then None.
    pub fn close(&mut self) {
        self.closed = true;
        self.hedge_at = None;
    }

    /// The next outcome, or None when every attempt allowed has answered.
    pub async fn next(&mut self) -> Option<Outcome> {
        loop {
            if self.inflight.is_empty() && !self.launch(false) {
                return None;
            }
            let hedge = self.hedge_at;
            tokio::select! {
                // an answer already there goes first, before a hedge that is also due
                biased;
                done = self.inflight.join_next_with_id() => match done {
                    Some(Ok((id, outcome))) => {
                        self.asked.remove(&id);
                        return Some(outcome);
                    }
                    Some(Err(e)) => {
                        // the attempt's task panicked: a failure without an answer
                        if let Some(c) = self.asked.remove(&e.id()) {
                            return Some((c, Err("the attempt failed".into()), Duration::ZERO));
                        }
                    }
                    None => {}
                },
                () = sleep_until(hedge) => {
                    self.hedge_at = None;
                    self.launch(true);
                }
            }
        }
    }

    /// Asks the next member, if any is left and the budget allows: as a `hedge` (the
    /// attempt before it still runs) or a failover. Returns whether it did.
    fn launch(&mut self, hedge: bool) -> bool {
        let k = self.launched;
        if k >= self.candidates.len() || self.spent || self.closed {
            return false;
        }
        let allowed = if hedge {
            self.g.may_hedge(self.role)
        } else {
            self.g.may_attempt(self.role, k)
        };
        if !allowed {
            self.spent |= !hedge;
            return false;
        }
        self.launched += 1;
        let c = self.candidates[k].clone();
        let last = k + 1 == self.candidates.len();
        self.hedge_at = if last {
            None
        } else {
            let now = self.g.now();
            self.g
                .balancer(self.role)
                .hedge_delay(&c.id, now)
                .map(|d| Instant::now() + d)
        };
        let request = (self.build)(&c);
        let (g, role) = (self.g.clone(), self.role);
        let asked = c.clone();
        let task = self.inflight.spawn(async move {
            let (result, took) = g.attempt(role, &c, last, request).await;
            (c, result, took)
        });
        self.asked.insert(task.id(), asked);
        true
    }
}

impl Drop for Race {
    fn drop(&mut self) {
        let mut rest = std::mem::take(&mut self.inflight);
        let mut asked = std::mem::take(&mut self.asked);
        if rest.is_empty() {
            return;
        }
        // (no runtime: it is shutting down, and nobody reads the balancer any more)
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (g, role, works) = (self.g.clone(), self.role, self.works);
        runtime.spawn(async move {
            while let Some(done) = rest.join_next_with_id().await {
                match done {
                    Ok((_, (c, result, took))) => {
                        let ok = result.is_ok_and(|r| works(r.status()));
                        g.observe(role, &c.id, took, ok);
                    }
                    Err(e) => {
                        if let Some(c) = asked.remove(&e.id()) {
                            g.observe(role, &c.id, Duration::ZERO, false);
                        }
                    }
                }
            }
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
