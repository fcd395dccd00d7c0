//! The API gateway: the single entrance, routing by this node's view of the cluster.
//!
//! | route | goes to |
//! |---|---|
//! | `GET /api/cluster/status` | this node's view (cached `services.cache.status-ttl`) |
//! | `POST /api/logs` | a producer chosen by [`balancer`] among those [`routing::rank`] allows, another on failure or when the first is too slow (within the retry budget); 202 `{"accepted": n}` once durable |
//! | `GET /api/logs`, `GET /api/logs/stats` | a consumer chosen the same way by a second [`balancer`] (its own latencies, ejections and retry budget), another on failure or when the first is too slow (cached `services.cache.ttl`) |
//!
//! The gateway gives every event without an id one before forwarding, so that a retry on
//! another producer carries the same ids and cannot double rows. Writes are refused with 503
//! when this node has no quorum: a quorum its last copy of the view lacks is checked again
//! against the node itself first ([`ViewWatch::quorum`]), so a lease granted a moment ago
//! counts. Answers say where they came from (`X-Routed-To`) and whether the cache answered
//! (`X-Cache: HIT|MISS`). A gateway's `/api/cluster/status` adds its routing state per
//! producer and consumer (`routing`: role, share of that role's requests, weight, peak-EWMA
//! latency, ejections).

pub mod balancer;
mod race;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use tracing::debug;

use vigil::api::model::RouteDto;
use vigil::config::keys::ServicesSettings;
use vigil::metrics::Metrics;
use vigil::runtime::NodeInfo;

use crate::answer::{error_body, refusal, Refusal};
use crate::cache::Cache;
use crate::event::{self, LogEvent, LogEventIn};
use crate::routing::{self, ViewWatch};
use balancer::{Balancer, BalancerConfig, Choice};
use race::Race;

/// How many members a request tries before giving up.
const ATTEMPTS: usize = 3;

/// The role writes go to.
const WRITES: &str = "producer";
/// The role reads go to.
const READS: &str = "consumer";

/// Shared state of the gateway's handlers.
pub struct Gateway {
    info: Arc<NodeInfo>,
    view: ViewWatch,
    cache: Cache,
    client: reqwest::Client,
    rng: std::sync::Mutex<SmallRng>,
    /// Routes writes to producers.
    writes: std::sync::Mutex<Balancer>,
    /// Routes reads to consumers.
    reads: std::sync::Mutex<Balancer>,
    started: std::time::Instant,
    metrics: Arc<Metrics>,
    query_ttl: Duration,
    status_ttl: Duration,
}

impl Gateway {
    /// For the health endpoint.
    pub fn health(&self) -> (bool, Value) {
        let counts = self.view.current().map(|s| {
            let count = |role: &str| {
                s.view
                    .members
                    .iter()
                    .filter(|m| m.role == role && m.status == vigil::Status::Healthy)
                    .count()
            };
            json!({ "producer": count("producer"), "consumer": count("consumer") })
        });
        (
            true,
            json!({ "status": "UP", "cache": self.cache.health(), "healthyUpstreams": counts }),
        )
    }

    fn candidates(&self, role: &str) -> Vec<routing::Candidate> {
        let Some(s) = self.view.current() else {
            return Vec::new();
        };
        let zone = routing::own_zone(&s.view);
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        routing::rank(&s.view, role, &zone, false, &mut *rng)
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The balancer of `role` (producers for writes, consumers for reads).
    fn balancer(&self, role: &'static str) -> std::sync::MutexGuard<'_, Balancer> {
        let b = if role == READS {
            &self.reads
        } else {
            &self.writes
        };
        b.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order to try members of `role` in (see [`balancer`](super::balancer)).
    fn order(&self, role: &'static str) -> Vec<routing::Candidate> {
        let candidates = self.candidates(role);
        let choices: Vec<Choice<'_>> = candidates
            .iter()
            .map(|c| Choice {
                id: &c.id,
                score: c.score,
                tier: c.tier,
            })
            .collect();
        let now = self.now();
        let order = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            let mut b = self.balancer(role);
            b.deposit(now);
            b.order(&choices, now, &mut *rng)
        };
        order
            .iter()
            .filter_map(|id| candidates.iter().find(|c| &c.id == id).cloned())
            .collect()
    }

    /// [`Gateway::order`], with a copy of the view that has no member to route to checked
    /// against the node first (see [`routing::ViewWatch::current_where`]).
    async fn routable_order(&self, role: &'static str) -> Vec<routing::Candidate> {
        let order = self.order(role);
        if !order.is_empty() {
            return order;
        }
        // the balancer's role names are the members' roles
        self.view
            .current_where(|s| routing::routable(&s.view, role))
            .await;
        self.order(role)
    }

    /// Whether the `k`-th attempt (from 0) of a request to `role` may go: the first always,
    /// later ones while the retry budget lasts.
    fn may_attempt(&self, role: &'static str, k: usize) -> bool {
        if k == 0 {
            return true;
        }
        let taken = self.balancer(role).try_retry();
        self.metrics.retry(role, taken);
        taken
    }

    /// Sends one attempt to `c`, a member of `role`. Every attempt but the `last` is
    /// abandoned once it takes far longer than the others usually do (the next member gets
    /// the same request: a write carries its event ids, a read changes nothing). Returns the
    /// answer or why there is none, and how long it took.
    async fn attempt(
        &self,
        role: &'static str,
        c: &routing::Candidate,
        last: bool,
        request: reqwest::RequestBuilder,
    ) -> (Result<reqwest::Response, String>, Duration) {
        let limit = (!last).then(|| self.balancer(role).attempt_timeout(&c.id, self.now()));
        self.metrics.routed(role, &c.id);
        self.balancer(role).started(&c.id, self.now());
        let sent = std::time::Instant::now();
        let request = request.send();
        let result = match limit {
            Some(limit) => match tokio::time::timeout(limit, request).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            },
            None => request.await.map_err(|e| e.to_string()),
        };
        (result, sent.elapsed())
    }

    /// Whether a hedge of a request to `role` may go: only while the retry budget keeps a
    /// token for a failover besides (a refused hedge just waits for the attempt it hedged).
    fn may_hedge(&self, role: &'static str) -> bool {
        let taken = self.balancer(role).try_hedge();
        if taken {
            self.metrics.retry(role, true);
        }
        taken
    }

    /// Notes an answer of a member of `role` and copies the balancer's state to the metrics.
    fn observe(&self, role: &'static str, id: &str, took: Duration, ok: bool) {
        let now = self.now();
        let states = {
            let mut b = self.balancer(role);
            if b.observe(id, now, took, ok) {
                debug!(role, member = %id, took_ms = took.as_millis() as u64, ok, "ejected");
            }
            b.states(now)
        };
        let rows: Vec<_> = states
            .into_iter()
            .map(|s| (s.id, s.ejections, s.ejected, s.weight))
            .collect();
        self.metrics.balancer(role, &rows);
    }

    /// The routing state for `/api/cluster/status`: producers and consumers by id, each
    /// share out of its role's requests.
    fn routes(&self) -> std::collections::BTreeMap<String, RouteDto> {
        let now = self.now();
        let mut routes = std::collections::BTreeMap::new();
        for role in [WRITES, READS] {
            let states = self.balancer(role).states(now);
            let total: u64 = states.iter().map(|s| s.chosen).sum();
            routes.extend(states.into_iter().map(|s| {
                let dto = RouteDto {
                    role: role.to_string(),
                    share: if total > 0 {
                        s.chosen as f64 / total as f64
                    } else {
                        0.0
                    },
                    requests: s.chosen,
                    weight: s.weight,
                    latency_ewma_ms: s.cost_ms,
                    ejected: s.ejected,
                    ejections: s.ejections,
                    consecutive_failures: s.consecutive_failures,
                };
                (s.id, dto)
            }));
        }
        routes
    }
}

/// Whether a producer's answer with this status says it works: a refusal for want of quorum
/// or room (503, 429) or a 4xx says nothing about its speed.
fn write_works(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::SERVICE_UNAVAILABLE || !status.is_server_error()
}

/// Whether a consumer's answer with this status says it works: a 4xx is the question's fault.
fn read_works(status: reqwest::StatusCode) -> bool {
    !status.is_server_error()
}

/// Builds the gateway and its routes.
pub fn start(
    info: Arc<NodeInfo>,
    metrics: Arc<Metrics>,
    settings: &ServicesSettings,
    view: ViewWatch,
    tls_ca: Option<&std::path::Path>,
) -> anyhow::Result<(Arc<Gateway>, Router)> {
    let cache = match &settings.redis_url {
        Some(url) => {
            Cache::redis(url).map_err(|e| anyhow::anyhow!("services.redis.url `{url}`: {e}"))?
        }
        None => Cache::local(),
    };
    let gateway = Arc::new(Gateway {
        info,
        view,
        cache,
        // A producer answers a write only once it is durable, or after its ack timeout:
        // wait that long and a little more before trying another producer.
        client: vigil::tls::client(
            tls_ca,
            Duration::from_secs(5).max(settings.ack_timeout + Duration::from_secs(1)),
        )
        .map_err(|e| anyhow::anyhow!("http.tls-ca: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .build()?,
        rng: std::sync::Mutex::new(SmallRng::seed_from_u64(event::now_ms() as u64)),
        writes: std::sync::Mutex::new(Balancer::new(BalancerConfig::default())),
        reads: std::sync::Mutex::new(Balancer::new(BalancerConfig::default())),
        started: std::time::Instant::now(),
        metrics,
        query_ttl: settings.cache_ttl,
        status_ttl: settings.status_ttl,
    });
    let router = Router::new()
        .route("/api/cluster/status", get(cluster_status))
        .route("/api/logs", post(post_logs).get(get_logs))
        .route("/api/logs/stats", get(get_stats))
        .with_state(gateway.clone());
    Ok((gateway, router))
}

fn json_response(status: StatusCode, body: String, routed_to: &str, cache: &str) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(routed_to) {
        h.insert("x-routed-to", v);
    }
    if let Ok(v) = HeaderValue::from_str(cache) {
        h.insert("x-cache", v);
    }
    r
}

async fn cluster_status(State(g): State<Arc<Gateway>>) -> Response {
    let key = format!("vigil:gateway:{}:status", g.info.id);
    if let Some(body) = g.cache.get(&key).await {
        return json_response(StatusCode::OK, body, &g.info.id, "HIT");
    }
    let Some(s) = g.view.current() else {
        return error_body(StatusCode::SERVICE_UNAVAILABLE, "no cluster view yet");
    };
    let mut status = vigil::api::model::status(&g.info, &s);
    status.routing = Some(g.routes());
    let body = match serde_json::to_string(&status) {
        Ok(b) => b,
        Err(e) => return error_body(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    g.cache.put(&key, &body, g.status_ttl).await;
    json_response(StatusCode::OK, body, &g.info.id, "MISS")
}

async fn post_logs(
    State(g): State<Arc<Gateway>>,
    body: Result<Json<Vec<LogEventIn>>, JsonRejection>,
) -> Response {
    let Json(events) = match body {
        Ok(b) => b,
        Err(e) => return vigil::api::refuse_body(&e, ""),
    };
    let events = match event::validate_batch(events, "unknown") {
        Ok(e) => e,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !g.view.quorum().await {
        return refusal(Refusal::NoQuorum, 0);
    }
    let n = events.len();
    let body: Vec<_> = events.iter().map(LogEvent::to_out).collect();
    let candidates = g.routable_order(WRITES).await;
    if candidates.is_empty() {
        return error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "no HEALTHY producer in the cluster view",
        );
    }
    let mut errors = Vec::new();
    let mut saw_full = false;
    // Producers that refused for want of quorum (their lease lapsed before ours): when all
    // did, the answer is the same "no quorum" refusal, which accepted nothing.
    let mut no_quorum = 0;
    let client = g.client.clone();
    let payload = Arc::new(body);
    let mut race = Race::new(
        g.clone(),
        WRITES,
        candidates,
        ATTEMPTS,
        write_works,
        move |c| {
            let url = format!("{}/logs", vigil::tls::base_url(&c.http));
            client.post(&url).json(&*payload)
        },
    );
    let mut bad_request = None;
    while let Some((c, result, took)) = race.next().await {
        match result {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                g.observe(WRITES, &c.id, took, true);
                let mut resp =
                    (StatusCode::ACCEPTED, Json(json!({ "accepted": n }))).into_response();
                if let Ok(v) = HeaderValue::from_str(&c.id) {
                    resp.headers_mut().insert("x-routed-to", v);
                }
                return resp;
            }
            Ok(r) => {
                let status = r.status();
                g.observe(WRITES, &c.id, took, write_works(status));
                saw_full |= status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                if status == reqwest::StatusCode::BAD_REQUEST {
                    // The producer validates like we do; a 400 would repeat everywhere. An
                    // attempt still in flight may yet accept the batch: wait for it first.
                    let text = r.text().await.unwrap_or_default();
                    bad_request.get_or_insert((text, c.id.clone()));
                    race.close();
                    continue;
                }
                if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                    && r.text().await.is_ok_and(|t| t.contains("no quorum"))
                {
                    no_quorum += 1;
                }
                errors.push(format!("{}: {status}", c.id));
            }
            Err(e) => {
                g.observe(WRITES, &c.id, took, false);
                errors.push(format!("{}: {e}", c.id));
            }
        }
        debug!(producer = %c.id, "producer did not accept; trying the next");
    }
    if let Some((text, id)) = bad_request {
        return json_response(StatusCode::BAD_REQUEST, text, &id, "MISS");
    }
    if race.budget_spent() {
        errors.push("retry budget spent".to_string());
    }
    if no_quorum > 0 && no_quorum == errors.len() {
        return refusal(Refusal::NoQuorum, 0);
    }
    if saw_full {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            Json(json!({ "error": "every producer tried is full: retry later", "tried": errors })),
        )
            .into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "no producer accepted the batch", "tried": errors })),
    )
        .into_response()
}

async fn get_logs(State(g): State<Arc<Gateway>>, RawQuery(q): RawQuery) -> Response {
    read_through(&g, "/logs", q).await
}

async fn get_stats(State(g): State<Arc<Gateway>>, RawQuery(q): RawQuery) -> Response {
    read_through(&g, "/logs/stats", q).await
}

/// A read routed by the read balancer to a consumer, through the cache.
async fn read_through(g: &Arc<Gateway>, path: &str, query: Option<String>) -> Response {
    let query = query.unwrap_or_default();
    let key = format!("vigil:gateway:q:{path}?{query}");
    if let Some(body) = g.cache.get(&key).await {
        return json_response(StatusCode::OK, body, "cache", "HIT");
    }
    let candidates = g.routable_order(READS).await;
    if candidates.is_empty() {
        return error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "no HEALTHY consumer in the cluster view",
        );
    }
    let mut errors = Vec::new();
    let client = g.client.clone();
    let (path, q) = (path.to_string(), query.clone());
    let mut race = Race::new(
        g.clone(),
        READS,
        candidates,
        ATTEMPTS,
        read_works,
        move |c| {
            let base = vigil::tls::base_url(&c.http);
            if q.is_empty() {
                client.get(format!("{base}{path}"))
            } else {
                client.get(format!("{base}{path}?{q}"))
            }
        },
    );
    while let Some((c, result, took)) = race.next().await {
        match result {
            Ok(r) => {
                let status = r.status();
                g.observe(READS, &c.id, took, read_works(status));
                let body: Bytes = r.bytes().await.unwrap_or_default();
                let text = String::from_utf8_lossy(&body).into_owned();
                if status.is_success() {
                    g.cache.put(&key, &text, g.query_ttl).await;
                    return json_response(StatusCode::OK, text, &c.id, "MISS");
                }
                if status == reqwest::StatusCode::BAD_REQUEST {
                    return json_response(StatusCode::BAD_REQUEST, text, &c.id, "MISS");
                }
                errors.push(format!("{}: {status}", c.id));
            }
            Err(e) => {
                g.observe(READS, &c.id, took, false);
                errors.push(format!("{}: {e}", c.id));
            }
        }
        debug!(consumer = %c.id, "consumer did not answer; trying the next");
    }
    if race.budget_spent() {
        errors.push("retry budget spent".to_string());
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "no consumer answered", "tried": errors })),
    )
        .into_response()
}
