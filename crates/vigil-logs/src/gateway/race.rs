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

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
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
    /// Whether the retry budget refused an attempt.
    spent: bool,
    inflight: JoinSet<Outcome>,
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
            inflight: JoinSet::new(),
            hedge_at: None,
        }
    }

    /// Whether the retry budget stopped the race.
    pub fn budget_spent(&self) -> bool {
        self.spent
    }

    /// The next outcome, or None when every attempt allowed has answered.
    pub async fn next(&mut self) -> Option<Outcome> {
        loop {
            if self.inflight.is_empty() && !self.launch() {
                return None;
            }
            let hedge = self.hedge_at;
            tokio::select! {
                done = self.inflight.join_next() => match done {
                    Some(Ok(outcome)) => return Some(outcome),
                    // the attempt's task panicked: as if it failed without an answer
                    Some(Err(_)) | None => continue,
                },
                () = sleep_until(hedge) => {
                    self.hedge_at = None;
                    self.launch();
                }
            }
        }
    }

    /// Asks the next member, if any is left and the budget allows. Returns whether it did.
    fn launch(&mut self) -> bool {
        let k = self.launched;
        if k >= self.candidates.len() || self.spent {
            return false;
        }
        if !self.g.may_attempt(self.role, k) {
            self.spent = true;
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
        self.inflight.spawn(async move {
            let (result, took) = g.attempt(role, &c, last, request).await;
            (c, result, took)
        });
        true
    }
}

impl Drop for Race {
    fn drop(&mut self) {
        let mut rest = std::mem::take(&mut self.inflight);
        if rest.is_empty() {
            return;
        }
        // (no runtime: it is shutting down, and nobody reads the balancer any more)
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (g, role, works) = (self.g.clone(), self.role, self.works);
        runtime.spawn(async move {
            while let Some(done) = rest.join_next().await {
                if let Ok((c, result, took)) = done {
                    let ok = result.is_ok_and(|r| works(r.status()));
                    g.observe(role, &c.id, took, ok);
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
