//! The log consumer: persists events (idempotently, see [`super::store`]) and answers queries.
//!
//! Events arrive by `POST /internal/logs` from producers (embedded default; answered 200 only
//! after the commit) or from a Kafka consumer group (feature `kafka`; offsets committed only
//! after the commit). The store is opened in the background and retried every second, so a
//! consumer whose database is not up yet still joins the cluster and says why it cannot store
//! (503 with the reason) instead of exiting.
//!
//! # A store that cannot lie
//!
//! The consumer acknowledges a batch only once the store committed it into the file the store
//! opened ([`Store::insert`] checks the file's identity after the commit). When the SQLite file
//! is deleted or replaced while the consumer runs, the consumer:
//! - reports DOWN in `/actuator/health`, with the reason as `lastError`, and answers 503 to
//!   writes and queries, so producers keep the events queued and retry them;
//! - stays so until it is restarted: it does not create a new file by itself. The events
//!   refused meanwhile wait in the producer's queue (429 once it is full) and are delivered
//!   to the restarted consumer, which starts a new file at the path (or uses the one an
//!   operator put back there).
//!
//! Why not recreate the file at once: an empty file would make the stored history shrink with
//! nothing but a log line saying why, and dashboards and queries would go on as if it were
//! whole. Staying DOWN makes the loss visible where it is watched (health, alerts, 503s) and
//! leaves the choice to an operator: put a backup back, or restart to begin anew. Why not try
//! to copy the deleted file back while it is still open: SQLite refuses to read a WAL database
//! whose files were unlinked ("disk I/O error"), so that copy cannot be relied on. The loss is
//! logged as an error and counted (`store.losses`, `store.lastLoss`) in the health details.
//!
//! Routes: `GET /logs` (`service`, `level`, `from`, `to` as RFC 3339 or unix ms, `limit`),
//! `GET /logs/stats` (`total`, `byLevel`, `byService`), `GET /consumer/cluster` (this
//! consumer's view of every member's health, also in `/actuator/health`).

#[cfg(feature = "kafka")]
pub mod kafka;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use vigil::config::keys::ServicesSettings;

use crate::answer::error_body;
use crate::event::{self, Level, LogEvent, LogEventIn};
use crate::routing::ViewWatch;
use crate::store::{LogQuery, Store, StoreError, MAX_LIMIT};

/// How often the store's files are checked when nothing is written.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Shared state of the consumer's handlers and tasks.
pub struct Consumer {
    id: String,
    view: ViewWatch,
    state: Mutex<StoreState>,
    target: String,
    stored: AtomicU64,
    duplicates: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Times the store's file was lost, and the last reason.
    losses: AtomicU64,
    last_loss: Mutex<Option<String>>,
    /// `http.admin-token`: required on `POST /internal/logs` when set.
    token: Option<String>,
}

/// Where the consumer's store stands.
enum StoreState {
    /// Not open yet (the reason is in `last_error`).
    Opening,
    /// Open; `generation` counts opens, so a write that began on an older store cannot mark
    /// a newer one lost.
    Open { store: Store, generation: u64 },
    /// Its file was lost while open. Nothing is acknowledged until a restart.
    Lost,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the store lives, for logs and health (the password of a URL is not shown).
fn describe(settings: &ServicesSettings, sqlite_path: &str) -> String {
    match &settings.postgres_url {
        Some(url) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://…@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.clone(),
        },
        None => format!("sqlite:{sqlite_path}"),
    }
}

impl Consumer {
    /// The open store and its generation, or why there is none (for a 503).
    fn open_store(&self) -> Result<(Store, u64), String> {
        match &*lock(&self.state) {
            StoreState::Open { store, generation } => Ok((store.clone(), *generation)),
            StoreState::Opening => Err(format!("store not open yet ({})", self.target)),
            StoreState::Lost => Err(lock(&self.last_error)
                .clone()
                .unwrap_or_else(|| format!("store lost ({})", self.target))),
        }
    }

    /// Marks the store of `generation` lost, if it is still the open one.
    fn lose(&self, generation: u64, reason: &str) {
        let mut state = lock(&self.state);
        let store = match &*state {
            StoreState::Open {
                store,
                generation: open,
            } if *open == generation => store.clone(),
            _ => return,
        };
        *state = StoreState::Lost;
        drop(state);
        let reason = format!("{reason}; restart the consumer to open a store at that path again");
        error!(store = %self.target, reason, "the store's file is gone: nothing is acknowledged until the consumer restarts");
        self.losses.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_loss) = Some(reason.clone());
        *lock(&self.last_error) = Some(reason);
        tokio::spawn(async move { store.close().await });
    }

    /// Stores a batch; Ok only once it is committed into the store's own file.
    pub async fn persist(&self, events: &[LogEvent]) -> Result<u64, String> {
        let (store, generation) = self.open_store()?;
        match store.insert(events).await {
            Ok(inserted) => {
                self.stored.fetch_add(inserted, Ordering::Relaxed);
                self.duplicates
                    .fetch_add(events.len() as u64 - inserted, Ordering::Relaxed);
                if lock(&self.last_error).take().is_some() {
                    info!(store = %self.target, "store writes succeed again");
                }
                Ok(inserted)
            }
            Err(e @ StoreError::FileLost { .. }) => {
                let msg = e.to_string();
                self.lose(generation, &msg);
                Err(msg)
            }
            Err(e) => {
                let msg = e.to_string();
                let mut last = lock(&self.last_error);
                if last.is_none() {
                    warn!(store = %self.target, error = %msg, "store write failed; the batch is not acknowledged");
                }
                *last = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// For the health endpoint: the store, and this consumer's view of every member.
    pub fn health(&self) -> (bool, Value) {
        let last_error = lock(&self.last_error).clone();
        let backend = match &*lock(&self.state) {
            StoreState::Open { store, .. } => Some(store.backend()),
            _ => None,
        };
        let store_up = backend.is_some() && last_error.is_none();
        (
            store_up,
            json!({
                "status": if store_up { "UP" } else { "DOWN" },
                "store": {
                    "backend": backend.unwrap_or("not open"),
                    "target": self.target,
                    "lastError": last_error,
                    "losses": self.losses.load(Ordering::Relaxed),
                    "lastLoss": lock(&self.last_loss).clone(),
                },
                "stored": self.stored.load(Ordering::Relaxed),
                "duplicatesIgnored": self.duplicates.load(Ordering::Relaxed),
                "cluster": self.cluster_health(),
            }),
        )
    }

    fn cluster_health(&self) -> Value {
        let Some(s) = self.view.current() else {
            return json!({ "known": false });
        };
        let members: serde_json::Map<String, Value> = s
            .view
            .members
            .iter()
            .map(|m| {
                (
                    m.id.to_string(),
                    json!({ "status": m.status.as_str(), "healthScore": m.health_score, "role": m.role }),
                )
            })
            .collect();
        let healthy = s.view.healthy();
        json!({
            "hasQuorum": s.view.has_quorum,
            "healthyNodes": healthy,
            "totalNodes": s.view.members.len(),
            "status": if s.view.has_quorum && healthy == s.view.members.len() { "HEALTHY" } else if s.view.has_quorum { "DEGRADED" } else { "NO_QUORUM" },
            "members": members,
        })
    }
}

/// The SQLite file of consumer `id`: `services.consumer.sqlite-path`, else
/// `.vigil/data/<id>.sqlite` (relative to the working directory).
pub fn sqlite_path(id: &str, settings: &ServicesSettings) -> String {
    settings
        .sqlite_path
        .clone()
        .unwrap_or_else(|| format!(".vigil/data/{id}.sqlite"))
}

/// Starts the consumer: the store opener, the Kafka loop if configured, and its routes.
pub fn start(
    id: &str,
    settings: &ServicesSettings,
    view: ViewWatch,
    stop: CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    token: Option<&str>,
) -> anyhow::Result<(Arc<Consumer>, Router)> {
    let sqlite_path = sqlite_path(id, settings);
    #[cfg(not(feature = "kafka"))]
    if settings.kafka_brokers.is_some() {
        anyhow::bail!(
            "services.kafka.brokers is set but this vigil was built without the `kafka` feature \
             (cargo build -p vigil-cli --features kafka)"
        );
    }
    let consumer = Arc::new(Consumer {
        id: id.to_string(),
        view,
        state: Mutex::new(StoreState::Opening),
        target: describe(settings, &sqlite_path),
        stored: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        last_error: Mutex::new(None),
        losses: AtomicU64::new(0),
        last_loss: Mutex::new(None),
        token: token.map(str::to_string),
    });
    tasks.push(tokio::spawn(keep_store(
        consumer.clone(),
        settings.postgres_url.clone(),
        sqlite_path,
        stop.clone(),
    )));
    #[cfg(feature = "kafka")]
    if let Some(brokers) = &settings.kafka_brokers {
        tasks.push(tokio::spawn(kafka::consume_loop(
            id.to_string(),
            consumer.clone(),
            brokers.clone(),
            settings.clone(),
            stop,
        )));
    }
    #[cfg(not(feature = "kafka"))]
    drop(stop);
    let router = Router::new()
        .route("/internal/logs", post(ingest))
        .route("/logs", get(query))
        .route("/logs/stats", get(stats))
        .route("/consumer/cluster", get(cluster))
        .with_state(consumer.clone());
    Ok((consumer, router))
}

/// Opens the store (retrying every second until it opens), then watches it: checks its files
/// every [`CHECK_EVERY`], so a loss shows even when nothing is written (see the module docs).
async fn keep_store(
    c: Arc<Consumer>,
    postgres_url: Option<String>,
    sqlite_path: String,
    stop: CancellationToken,
) {
    let mut warned = false;
    loop {
        let opened = match &postgres_url {
            Some(url) => Store::postgres(url).await,
            None => Store::sqlite(&sqlite_path).await,
        };
        match opened {
            Ok(store) => {
                info!(store = %c.target, "store open, migrations applied");
                *lock(&c.state) = StoreState::Open {
                    store,
                    generation: 1,
                };
                *lock(&c.last_error) = None;
                break;
            }
            Err(e) => {
                if !warned {
                    warn!(store = %c.target, error = %e, "cannot open the store yet; retrying every second");
                    warned = true;
                }
                *lock(&c.last_error) = Some(e.to_string());
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let (store, generation) = match &*lock(&c.state) {
            StoreState::Open { store, generation } => (store.clone(), *generation),
            StoreState::Opening => continue,
            StoreState::Lost => return,
        };
        if let Err(e) = store.verify() {
            c.lose(generation, &e.to_string());
        }
    }
}

async fn ingest(
    State(c): State<Arc<Consumer>>,
    headers: HeaderMap,
    body: Result<Json<Vec<LogEventIn>>, JsonRejection>,
) -> Response {
    // Producers write here without the quorum check of the public path, so with a token
    // configured only cluster members (which share it) may.
    if let Some(token) = &c.token {
        if !vigil::api::bearer_matches(&headers, token) {
            return error_body(
                StatusCode::UNAUTHORIZED,
                "POST /internal/logs is for producers of this cluster: \
                 Authorization: Bearer <http.admin-token>",
            );
        }
    }
    let Json(events) = match body {
        Ok(b) => b,
        Err(e) => return vigil::api::refuse_body(&e, ""),
    };
    let events = match event::validate_batch(events, &c.id) {
        Ok(e) => e,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match c.persist(&events).await {
        Ok(inserted) => Json(json!({
            "stored": inserted,
            "duplicates": events.len() as u64 - inserted,
        }))
        .into_response(),
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, format!("not stored: {e}")),
    }
}

fn time_param(name: &str, v: &str) -> Result<i64, String> {
    v.trim()
        .parse::<i64>()
        .ok()
        .or_else(|| event::parse_rfc3339_ms(v))
        .ok_or_else(|| format!("`{name}={v}` is neither RFC 3339 nor unix milliseconds"))
}

/// Parses the query string of `GET /logs`.
pub fn parse_query(params: &HashMap<String, String>) -> Result<LogQuery, String> {
    let mut q = LogQuery {
        limit: 100,
        ..LogQuery::default()
    };
    for (k, v) in params {
        match k.as_str() {
            "service" => q.service = Some(v.clone()),
            "level" => {
                q.level = Some(Level::parse(v).ok_or_else(|| format!("unknown level `{v}`"))?)
            }
            "from" | "since" => q.from_ms = Some(time_param(k, v)?),
            "to" | "until" => q.to_ms = Some(time_param(k, v)?),
            "limit" => {
                q.limit = v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| format!("`limit={v}`: expected 1-{MAX_LIMIT}"))?
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}` (service, level, from, to, limit)"
                ))
            }
        }
    }
    Ok(q)
}

async fn query(
    State(c): State<Arc<Consumer>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let q = match parse_query(&params) {
        Ok(q) => q,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e),
    };
    let store = match c.open_store() {
        Ok((store, _)) => store,
        Err(e) => return error_body(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    match store.query(&q).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn stats(State(c): State<Arc<Consumer>>) -> Response {
    let store = match c.open_store() {
        Ok((store, _)) => store,
        Err(e) => return error_body(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    match store.stats().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn cluster(State(c): State<Arc<Consumer>>) -> Response {
    Json(c.cluster_health()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_parameters_are_checked() {
        let q = parse_query(&params(&[
            ("service", "a"),
            ("level", "error"),
            ("from", "1000"),
            ("to", "1970-01-01T00:00:02Z"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(q.level, Some(Level::Error));
        assert_eq!((q.from_ms, q.to_ms, q.limit), (Some(1000), Some(2000), 5));
        assert!(parse_query(&params(&[("limit", "0")])).is_err());
        assert!(parse_query(&params(&[("level", "loud")])).is_err());
        assert!(parse_query(&params(&[("colour", "red")])).is_err());
    }

    #[test]
    fn a_postgres_password_is_not_shown() {
        let s = ServicesSettings {
            postgres_url: Some("postgres://u:secret@h:5432/db".into()),
            ..ServicesSettings::default()
        };
        assert_eq!(describe(&s, "x"), "postgres://…@h:5432/db");
    }
}
