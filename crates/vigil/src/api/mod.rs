//! The HTTP API (axum), served by every node.
//!
//! | route | what |
//! |---|---|
//! | `GET /cluster/status` | the seed's status body plus leader, self, generations, roles, addresses |
//! | `GET /cluster/members`, `GET /cluster/members/{id}` | member bodies (404 for an unknown id) |
//! | `GET /cluster/prometheus-targets` | Prometheus HTTP service discovery: every member with an HTTP address |
//! | `GET /cluster/events` | every change, as Server-Sent Events, resumable with `Last-Event-ID` ([`events`]) |
//! | `GET /actuator/health` | Spring's shape; 503 when DOWN (no quorum, or leaving) |
//! | `GET /actuator`, `/actuator/health/{liveness,readiness}`, `/actuator/prometheus`, `/actuator/info` | Spring Boot's conventions ([`actuator`]) |
//! | `GET /livez`, `GET /readyz` | alive = the runtime answers; ready = joined, quorum, not leaving |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /cluster/leave` | graceful leave, then the process exits (admin token) |
//! | `POST /cluster/join` | `{"addresses": ["host:port"]}`: contact those members and merge views (admin token) |
//! | `POST /cluster/members/{id}/remove` | operator removal of a member (admin token) |
//! | `GET /cluster/keys` | the gossip keyring, primary first (admin token) |
//! | `POST /cluster/keys/{install,use,remove}` | `{"key": "<base64>"}`: rotate the keyring (admin token) |
//!
//! Every request body is capped at `http.max-body` (413 above) and every request at
//! `http.request-timeout` (408), the role's routes included. Connections are bounded by
//! [`server`]: a header read timeout and a cap on open connections.
//!
//! Handlers never touch the node: they ask the runtime task through a [`Handle`].

pub mod actuator;
mod console;
pub mod events;
pub mod model;
pub mod server;
pub mod sse;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use membership::CommandError;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runtime::{Handle, KeyOp, KeysError, Snapshot};
use crate::security::Key;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The runtime.
    pub handle: Handle,
    /// `http.admin-token`; `None` disables the state-changing endpoints.
    pub admin_token: Option<String>,
    /// The member's service, if it runs one, reported in `/actuator/health`.
    pub service: Option<std::sync::Arc<dyn crate::service::Service>>,
    /// `http.max-body`, `http.request-timeout` and the connection bounds.
    pub limits: Limits,
}

/// Bounds on every HTTP request and connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body, bytes.
    pub max_body: usize,
    /// Longest time to answer.
    pub timeout: Duration,
    /// Header read timeout and connection cap.
    pub connections: server::ConnectionLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 4 << 20,
            timeout: Duration::from_secs(30),
            connections: server::ConnectionLimits {
                header_read_timeout: Duration::from_secs(10),
                max_connections: 4096,
            },
        }
    }
}

/// The router, without a listener (tests can drive it directly).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/cluster/status", get(cluster_status))
        .route("/cluster/members", get(members))
        .route("/cluster/prometheus-targets", get(prometheus_targets))
        .route("/cluster/events", get(events::events))
        .route("/cluster/members/{id}", get(member))
        .route("/cluster/members/{id}/remove", post(remove_member))
        .route("/cluster/leave", post(leave))
        .route("/cluster/join", post(join))
        .route("/cluster/keys", get(list_keys))
        .route("/cluster/keys/{op}", post(change_keys))
        .route("/actuator/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(console::routes())
        .merge(actuator::routes())
        .with_state(state)
}

/// Serves the API plus `extra` (the role's routes) until `stop` is cancelled, over TLS when
/// `tls` is given (then plain HTTP on that port is refused by the handshake).
pub async fn serve(
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    state: AppState,
    extra: Router,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let limits = state.limits;
    let metrics = state.handle.metrics.clone();
    let app = router(state)
        .merge(extra)
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| time_limit(limits.timeout, req, next),
        ))
        // outermost: counts every answer, the 408s and 413s above included
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                crate::metrics::extra::HttpMetrics::track(metrics.clone(), req, next)
            },
        ));
    server::serve(listener, tls, app, limits.connections, stop).await
}

/// Answers 408 to a request not answered within `limit` (a stuck backend, a slow body).
async fn time_limit(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!("no answer within http.request-timeout ({limit:?})"),
        ),
    }
}

/// The answer to a JSON body that could not be read: 413 when it is over `http.max-body` (axum
/// reports that as a rejection of the body, which used to be answered 400 like bad JSON), else
/// 400 with `expected` and axum's reason.
pub fn refuse_body(e: &axum::extract::rejection::JsonRejection, expected: &str) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than http.max-body: {}", e.body_text()),
        );
    }
    error(
        StatusCode::BAD_REQUEST,
        format!("{expected}{}", e.body_text()),
    )
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn stopped() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node runtime has stopped",
    )
}

pub(crate) async fn snapshot(state: &AppState) -> Result<Snapshot, Response> {
    match tokio::time::timeout(Duration::from_secs(2), state.handle.snapshot()).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(_)) => Err(stopped()),
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node runtime did not answer within 2 s",
        )),
    }
}

async fn cluster_status(State(state): State<AppState>) -> Response {
    match snapshot(&state).await {
        Ok(s) => Json(model::status(&state.handle.info, &s)).into_response(),
        Err(r) => r,
    }
}

async fn members(State(state): State<AppState>) -> Response {
    match snapshot(&state).await {
        Ok(s) => Json(
            s.view
                .members
                .iter()
                .map(|m| model::member(m, &s))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

/// Prometheus HTTP service discovery (`http_sd_configs`): one target group per member that
/// publishes an HTTP address and is not gone (LEFT members and tombstones are left out), with
/// the seed's `service` label (the role) and the member's id and zone. So one member's
/// address finds every member, whatever ports `vigil up --http-offset` or a deployment chose.
async fn prometheus_targets(State(state): State<AppState>) -> Response {
    match snapshot(&state).await {
        Ok(s) => Json(
            s.view
                .members
                .iter()
                .filter(|m| m.status != membership::Status::Left)
                .filter_map(|m| {
                    let addr = m.http_addr.as_deref()?;
                    let (scheme, host) = match addr.split_once("://") {
                        Some((scheme, host)) => (scheme, host),
                        None => ("http", addr),
                    };
                    Some(serde_json::json!({
                        "targets": [host],
                        "labels": {
                            "__scheme__": scheme,
                            "service": m.role,
                            "node_id": m.id,
                            "zone": m.zone,
                        },
                    }))
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

async fn member(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match snapshot(&state).await {
        Ok(s) => match s.view.member(&id) {
            Some(m) => Json(model::member(m, &s)).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("unknown member `{id}`")),
        },
        Err(r) => r,
    }
}

/// Checks `Authorization: Bearer <token>` against the configured token; `Some` is the
/// rejection to send.
fn refuse_unless_admin(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &state.admin_token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "admin endpoints are disabled (http.admin-endpoints: false, or no http.admin-token)",
        ));
    };
    if bearer_matches(headers, expected) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token (Authorization: Bearer <http.admin-token>)",
        ))
    }
}

/// Whether `headers` carry `Authorization: Bearer <expected>` (compared in constant time).
pub fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn leave(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_unless_admin(&state, &headers) {
        return r;
    }
    match state.handle.leave().await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "status": "LEAVING", "nodeId": state.handle.info.id })),
        )
            .into_response(),
        Err(_) => stopped(),
    }
}

/// Body of `POST /cluster/join`.
#[derive(serde::Deserialize)]
struct JoinBody {
    addresses: Vec<String>,
}

async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<JoinBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(r) = refuse_unless_admin(&state, &headers) {
        return r;
    }
    let names = match body {
        Ok(Json(b)) if !b.addresses.is_empty() => b.addresses,
        Ok(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "addresses: give at least one gossip HOST:PORT",
            )
        }
        Err(e) => return refuse_body(&e, "expected {\"addresses\": [\"host:port\", ...]}: "),
    };
    let mut addrs = Vec::new();
    for name in names.iter().take(64) {
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host(name.as_str()),
        )
        .await
        {
            Ok(Ok(found)) => addrs.extend(found),
            Ok(Err(e)) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("cannot resolve `{name}` (expected a gossip HOST:PORT): {e}"),
                )
            }
            Err(_) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("cannot resolve `{name}` within 5 s"),
                )
            }
        }
    }
    match state.handle.join(addrs).await {
        Ok(Ok(contacted)) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "contacted": contacted.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(_) => stopped(),
    }
}

async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = refuse_unless_admin(&state, &headers) {
        return r;
    }
    match state.handle.force_remove(id.clone()).await {
        Ok(Ok(())) => Json(json!({ "removed": id })).into_response(),
        Ok(Err(e @ CommandError::UnknownMember(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(_) => stopped(),
    }
}

fn keys_body(keys: &[Key]) -> Response {
    Json(json!({
        "primary": keys.first().map(Key::encode),
        "keys": keys.iter().map(Key::encode).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn apply_keys(state: &AppState, op: KeyOp) -> Response {
    match state.handle.keys(op).await {
        Ok(Ok(keys)) => keys_body(&keys),
        Ok(Err(e @ KeysError::Disabled)) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e @ KeysError::NotSaved(_))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(_) => stopped(),
    }
}

async fn list_keys(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_unless_admin(&state, &headers) {
        return r;
    }
    apply_keys(&state, KeyOp::List).await
}

/// Body of `POST /cluster/keys/{op}`.
#[derive(serde::Deserialize)]
struct KeyBody {
    key: String,
}

async fn change_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(op): Path<String>,
    body: Result<Json<KeyBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(r) = refuse_unless_admin(&state, &headers) {
        return r;
    }
    let key = match body {
        Ok(Json(b)) => match Key::parse(&b.key) {
            Ok(k) => k,
            Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("key: {e}")),
        },
        Err(e) => return refuse_body(&e, "expected {\"key\": \"<base64>\"}: "),
    };
    let op = match op.as_str() {
        "install" => KeyOp::Install(key),
        "use" => KeyOp::Use(key),
        "remove" => KeyOp::Remove(key),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown keyring operation `{other}`: install, use or remove"),
            )
        }
    };
    apply_keys(&state, op).await
}

async fn health(State(state): State<AppState>) -> Response {
    let s = match snapshot(&state).await {
        Ok(s) => s,
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "DOWN" })),
            )
                .into_response();
        }
    };
    let up = |b: bool| if b { "UP" } else { "DOWN" };
    let membership_up = !s.leaving;
    let quorum_up = s.view.has_quorum;
    let service = state.service.as_ref().map(|svc| (svc.name(), svc.health()));
    let service_up = service.as_ref().is_none_or(|(_, (up, _))| *up);
    let all_up = membership_up && quorum_up && service_up;
    let mut body = json!({
        "status": up(all_up),
        "components": {
            "membership": {
                "status": up(membership_up),
                "details": {
                    "nodeId": s.view.self_id,
                    "generation": state.handle.info.generation,
                    "gossipAddress": state.handle.info.gossip_addr.to_string(),
                    "httpAddress": state.handle.info.http_addr,
                    "joined": s.joined,
                    "leaving": s.leaving,
                    "totalNodes": s.view.members.len(),
                    "healthyNodes": s.view.healthy(),
                }
            },
            "quorum": {
                "status": up(quorum_up),
                "details": { "hasQuorum": s.view.has_quorum, "voters": s.view.voters, "leader": s.view.leader }
            },
            "ping": { "status": "UP" }
        }
    });
    if let Some((name, (_, details))) = service {
        body["components"][name] = details;
    }
    let code = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

pub(crate) async fn livez(State(state): State<AppState>) -> Response {
    match snapshot(&state).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(r) => r,
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let s = match snapshot(&state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match not_ready(&s) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(r) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {r}\n")).into_response(),
    }
}

/// Why this node should get no traffic yet (`/readyz`, `/actuator/health/readiness`).
pub(crate) fn not_ready(s: &Snapshot) -> Option<&'static str> {
    if s.leaving {
        Some("leaving")
    } else if !s.joined {
        Some("not joined yet: no answer from the seeds")
    } else if !s.view.has_quorum {
        Some("no quorum")
    } else {
        None
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let s = match snapshot(&state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let metrics = &state.handle.metrics;
    metrics.observe(&s.view, &s.stats);
    if let Some(service) = &state.service {
        metrics.observe_pipeline(&service.health().1);
    }
    metrics.observe_process();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}
