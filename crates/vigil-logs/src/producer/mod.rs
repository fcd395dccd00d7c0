//! The log producer: accepts events (`POST /logs`) and generates its own, and hands them on
//! until a durable write is acknowledged.
//!
//! `POST /logs` answers 202 only once every event of the request is durably handed on:
//! - embedded default: `POST /internal/logs` to a consumer chosen by [`routing::rank`]; the
//!   consumer answers 200 only after its transaction committed, so a 202 means stored;
//! - Kafka (`services.kafka.brokers`, feature `kafka`): a publish keyed by service, awaited
//!   until the broker acknowledged it with `acks=all`, so a 202 means in the topic.
//!
//! Why wait instead of answering once queued: an event that sits only in this process's
//! memory is lost if the process dies, and a client that got 202 would never send it again.
//! Waiting does not cost throughput: concurrent requests go into one queue, and the
//! delivery task takes up to `services.producer.batch-size` events from it per round, so
//! many requests share one consumer transaction or one publish round.
//!
//! Admission is all-or-nothing per request: a batch is refused whole with 429 when the queue
//! has no room for it (backpressure instead of unbounded memory), and with 503 when this
//! member is on a side of a partition without quorum (the minority is read-only). A request
//! not acknowledged within `services.producer.ack-timeout` gets 503: its events stay queued
//! and are still delivered, and a retry with the same ids (the gateway gives every event an
//! id before forwarding) cannot double a row.
//!
//! A failed delivery is retried with backoff (another consumer may be chosen) and never
//! dropped; redeliveries carry the same event ids, which the store deduplicates. Generated
//! events go through the same queue without anyone waiting for them.

#[cfg(feature = "kafka")]
pub mod kafka;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use vigil::config::keys::ServicesSettings;

use crate::answer::{error_body, refusal, Refusal};
use crate::event::{self, Generator, LogEvent, LogEventIn};
use crate::routing::{self, ViewWatch};

/// Shared state of the producer's handlers and tasks.
pub struct Producer {
    id: String,
    view: ViewWatch,
    queue_tx: mpsc::UnboundedSender<Vec<Queued>>,
    room: Arc<Semaphore>,
    capacity: usize,
    ack_timeout: Duration,
    sink: &'static str,
    accepted: AtomicU64,
    ack_timeouts: AtomicU64,
    delivered: AtomicU64,
    refused_full: AtomicU64,
    refused_quorum: AtomicU64,
    retries: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// One event in the queue, and the request waiting for it (none for generated events).
struct Queued {
    event: LogEvent,
    ack: Option<Arc<Ack>>,
}

/// The acknowledgement of one admitted request: fires once all its events are handed on.
struct Ack {
    left: AtomicUsize,
    done_tx: Mutex<Option<oneshot::Sender<()>>>,
}

impl Ack {
    /// Counts one more of the request's events as durably handed on.
    fn delivered_one(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(tx) = self
                .done_tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                let _ = tx.send(());
            }
        }
    }
}

/// What one delivery round achieved: which events of the batch are durably handed on (in
/// batch order), and why the others are not.
pub struct Outcome {
    /// `delivered[i]`: event `i` of the batch is acknowledged.
    pub delivered: Vec<bool>,
    /// Why some event is not, if one is not.
    pub error: Option<String>,
}

impl Outcome {
    /// All `n` events acknowledged.
    pub fn all(n: usize) -> Outcome {
        Outcome {
            delivered: vec![true; n],
            error: None,
        }
    }

    /// None of `n` acknowledged, because of `error`.
    pub fn none(n: usize, error: String) -> Outcome {
        Outcome {
            delivered: vec![false; n],
            error: Some(error),
        }
    }
}

impl Producer {
    /// Admits a whole batch or nothing. With `wait`, the returned receiver fires once every
    /// event of the batch is durably handed on (it is dropped unfired if the producer stops
    /// first).
    pub fn admit(
        &self,
        events: Vec<LogEvent>,
        wait: bool,
    ) -> Result<(usize, Option<oneshot::Receiver<()>>), Refusal> {
        let has_quorum = self
            .view
            .current()
            .is_some_and(|s| s.view.has_quorum && !s.leaving);
        if !has_quorum {
            self.refused_quorum.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::NoQuorum);
        }
        let n = events.len();
        let Ok(permits) = self.room.try_acquire_many(n as u32) else {
            self.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Full {
                queued: self.queued(),
            });
        };
        // Given back by the delivery task as the events are acknowledged.
        permits.forget();
        let (ack, done_rx) = if wait && n > 0 {
            let (done_tx, done_rx) = oneshot::channel();
            let ack = Arc::new(Ack {
                left: AtomicUsize::new(n),
                done_tx: Mutex::new(Some(done_tx)),
            });
            (Some(ack), Some(done_rx))
        } else {
            (None, None)
        };
        let queued = events
            .into_iter()
            .map(|event| Queued {
                event,
                ack: ack.clone(),
            })
            .collect();
        if self.queue_tx.send(queued).is_err() {
            self.room.add_permits(n);
            return Err(Refusal::NoQuorum);
        }
        self.accepted.fetch_add(n as u64, Ordering::Relaxed);
        Ok((n, done_rx))
    }

    fn queued(&self) -> usize {
        self.capacity.saturating_sub(self.room.available_permits())
    }

    /// For the health endpoint.
    pub fn health(&self) -> (bool, Value) {
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (
            true,
            json!({
                "status": "UP",
                "sink": self.sink,
                "queued": self.queued(),
                "capacity": self.capacity,
                "accepted": self.accepted.load(Ordering::Relaxed),
                "delivered": self.delivered.load(Ordering::Relaxed),
                "deliveryRetries": self.retries.load(Ordering::Relaxed),
                "ackTimeouts": self.ack_timeouts.load(Ordering::Relaxed),
                "refusedFull": self.refused_full.load(Ordering::Relaxed),
                "refusedNoQuorum": self.refused_quorum.load(Ordering::Relaxed),
                "lastDeliveryError": last_error,
            }),
        )
    }
}

/// Where delivery goes.
enum Sink {
    /// Straight to a healthy consumer over HTTP.
    Http {
        client: reqwest::Client,
        view: ViewWatch,
        rng: SmallRng,
    },
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaSink),
}

impl Sink {
    /// Delivers `batch`; says which events are acknowledged.
    async fn deliver(&mut self, batch: &[LogEvent]) -> Outcome {
        match self {
            Sink::Http { client, view, rng } => {
                let n = batch.len();
                let Some(snapshot) = view.current() else {
                    return Outcome::none(n, "no cluster view yet".into());
                };
                let zone = routing::own_zone(&snapshot.view);
                let candidates = routing::rank(&snapshot.view, "consumer", &zone, true, rng);
                if candidates.is_empty() {
                    return Outcome::none(n, "no consumer in the cluster view".into());
                }
                let body: Vec<_> = batch.iter().map(LogEvent::to_out).collect();
                let mut errors = Vec::new();
                for c in candidates.iter().take(3) {
                    let url = format!("{}/internal/logs", vigil::tls::base_url(&c.http));
                    match client.post(&url).json(&body).send().await {
                        // The consumer answers 200 only after its transaction committed.
                        Ok(r) if r.status().is_success() => return Outcome::all(n),
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            errors.push(format!("{}: {status} {}", c.id, text.trim()));
                        }
                        Err(e) => errors.push(format!("{}: {e}", c.id)),
                    }
                }
                Outcome::none(n, errors.join("; "))
            }
            #[cfg(feature = "kafka")]
            Sink::Kafka(k) => k.publish(batch).await,
        }
    }
}

/// The header consumers require on `POST /internal/logs` when the cluster has a token.
fn internal_auth(token: Option<&str>) -> anyhow::Result<reqwest::header::HeaderMap> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| anyhow::anyhow!("http.admin-token: not usable in an HTTP header"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

/// Starts the producer: its delivery task, its generator, and its routes.
pub fn start(
    id: &str,
    settings: &ServicesSettings,
    view: ViewWatch,
    stop: CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
    tls_ca: Option<&std::path::Path>,
    token: Option<&str>,
) -> anyhow::Result<(Arc<Producer>, Router)> {
    let (queue_tx, queue_rx) = mpsc::unbounded_channel();
    let sink = match &settings.kafka_brokers {
        #[cfg(feature = "kafka")]
        Some(brokers) => Sink::Kafka(kafka::KafkaSink::new(brokers, settings)?),
        #[cfg(not(feature = "kafka"))]
        Some(_) => anyhow::bail!(
            "services.kafka.brokers is set but this vigil was built without the `kafka` feature \
             (cargo build -p vigil-cli --features kafka)"
        ),
        None => Sink::Http {
            client: vigil::tls::client(tls_ca, Duration::from_secs(10))
                .map_err(|e| anyhow::anyhow!("http.tls-ca: {e}"))?
                .connect_timeout(Duration::from_secs(1))
                .default_headers(internal_auth(token)?)
                .build()?,
            view: view.clone(),
            rng: SmallRng::seed_from_u64(event::now_ms() as u64),
        },
    };
    let sink_name = match &sink {
        Sink::Http { .. } => "http (embedded: straight to a healthy consumer)",
        #[cfg(feature = "kafka")]
        Sink::Kafka(_) => "kafka",
    };
    let capacity = settings.queue_capacity.min(Semaphore::MAX_PERMITS);
    let producer = Arc::new(Producer {
        id: id.to_string(),
        view,
        queue_tx,
        room: Arc::new(Semaphore::new(capacity)),
        capacity,
        ack_timeout: settings.ack_timeout,
        sink: sink_name,
        accepted: AtomicU64::new(0),
        ack_timeouts: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        refused_full: AtomicU64::new(0),
        refused_quorum: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        last_error: Mutex::new(None),
    });
    info!(sink = sink_name, capacity, "producer started");
    tasks.push(tokio::spawn(deliver_loop(
        producer.clone(),
        sink,
        queue_rx,
        settings.batch_size,
        stop.clone(),
    )));
    if settings.producer_rate > 0 {
        tasks.push(tokio::spawn(generate_loop(
            producer.clone(),
            settings.producer_rate,
            stop,
        )));
    }
    let router = Router::new()
        .route("/logs", post(post_logs))
        .route("/producer/stats", get(stats))
        .with_state(producer.clone());
    Ok((producer, router))
}

async fn post_logs(
    State(p): State<Arc<Producer>>,
    body: Result<Json<Vec<LogEventIn>>, JsonRejection>,
) -> Response {
    let Json(events) = match body {
        Ok(b) => b,
        Err(e) => return vigil::api::refuse_body(&e, ""),
    };
    let events = match event::validate_batch(events, &p.id) {
        Ok(e) => e,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.to_string()),
    };
    // A copy of the view without quorum is checked against the node first (a lease granted
    // since the last refresh), so that `admit` does not refuse by the view of the past.
    p.view.quorum().await;
    let (n, done_rx) = match p.admit(events, true) {
        Ok(admitted) => admitted,
        Err(r) => return refusal(r, p.capacity),
    };
    let acknowledged = match done_rx {
        Some(rx) => tokio::time::timeout(p.ack_timeout, rx).await,
        None => Ok(Ok(())),
    };
    match acknowledged {
        Ok(Ok(())) => (StatusCode::ACCEPTED, Json(json!({ "accepted": n }))).into_response(),
        Ok(Err(_)) => error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "producer stopping: the events were not durably handed on; retry with the same ids",
        ),
        Err(_) => {
            p.ack_timeouts.fetch_add(1, Ordering::Relaxed);
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not durably handed on within {} ms: the events stay queued and will still be delivered; a retry with the same ids is safe",
                    p.ack_timeout.as_millis()
                ),
            )
        }
    }
}

async fn stats(State(p): State<Arc<Producer>>) -> Response {
    Json(p.health().1).into_response()
}

/// Takes events off the queue (those of all requests waiting, up to `batch_size`) and
/// delivers them until acknowledged, firing each request's acknowledgement once all its
/// events are. On shutdown it stops; the requests still waiting get 503.
async fn deliver_loop(
    p: Arc<Producer>,
    mut sink: Sink,
    mut queue_rx: mpsc::UnboundedReceiver<Vec<Queued>>,
    batch_size: usize,
    stop: CancellationToken,
) {
    let mut pending: VecDeque<Queued> = VecDeque::new();
    let mut backoff = Duration::from_millis(50);
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        if pending.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = queue_rx.recv() => match got {
                    Some(b) => pending.extend(b),
                    None => return,
                },
            }
        }
        while pending.len() < batch_size {
            match queue_rx.try_recv() {
                Ok(b) => pending.extend(b),
                Err(_) => break,
            }
        }
        let take = pending.len().min(batch_size);
        let (events, acks): (Vec<LogEvent>, Vec<Option<Arc<Ack>>>) =
            pending.drain(..take).map(|q| (q.event, q.ack)).unzip();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            o = sink.deliver(&events) => o,
        };
        let mut retry = Vec::new();
        for ((event, ack), delivered) in events.into_iter().zip(acks).zip(&outcome.delivered) {
            if *delivered {
                if let Some(ack) = &ack {
                    ack.delivered_one();
                }
            } else {
                retry.push(Queued { event, ack });
            }
        }
        let done = take - retry.len();
        p.delivered.fetch_add(done as u64, Ordering::Relaxed);
        p.room.add_permits(done);
        match outcome.error {
            None if retry.is_empty() => {
                backoff = Duration::from_millis(50);
                if let Some(since) = failing_since.take() {
                    info!(
                        after_ms = since.elapsed().as_millis() as u64,
                        "delivery recovered"
                    );
                    *p.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
            }
            error => {
                let e = error.unwrap_or_else(|| "some events were not acknowledged".into());
                p.retries.fetch_add(1, Ordering::Relaxed);
                if failing_since.is_none() {
                    warn!(error = %e, left = retry.len(), "delivery failed; retrying until acknowledged");
                    failing_since = Some(tokio::time::Instant::now());
                }
                *p.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                // Put the rest back in front, in order.
                for q in retry.into_iter().rev() {
                    pending.push_front(q);
                }
                tokio::select! {
                    _ = stop.cancelled() => {
                        warn!(undelivered = p.queued(), "stopping with undelivered events");
                        return;
                    }
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Generates `rate` events per second, admitted like posted ones (skipped without quorum or
/// room: generated traffic must never push out posted traffic).
async fn generate_loop(p: Arc<Producer>, rate: u32, stop: CancellationToken) {
    let seed = event::now_ms() as u64;
    info!(rate, seed, "generating log events");
    let mut generator = Generator::new(seed, &p.id);
    let tick_every = Duration::from_millis(100);
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let per_tick = f64::from(rate) / 10.0;
    let mut carry = 0.0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        carry += per_tick;
        let n = carry.floor() as usize;
        carry -= n as f64;
        if n == 0 {
            continue;
        }
        let events = (0..n).map(|_| generator.next_event()).collect();
        // Nobody waits for generated events: they are queued and delivered like the rest.
        let _ = p.admit(events, false);
    }
}
