//! Spring Boot Actuator's conventions, for tools and people used to them:
//!
//! | route | what | same as |
//! |---|---|---|
//! | `GET /actuator` | links to the endpoints below (`_links`) | |
//! | `GET /actuator/health` | components and status (in `api`) | |
//! | `GET /actuator/health/liveness` | `{"status": "UP"}`, 503 `DOWN` when the runtime does not answer | `/livez` |
//! | `GET /actuator/health/readiness` | `{"status": "UP"}`, 503 `OUT_OF_SERVICE` with the reason | `/readyz` |
//! | `GET /actuator/prometheus` | Prometheus text format | `/metrics` |
//! | `GET /actuator/info` | version, git commit, build profile, features, the member | |

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

/// The actuator routes (besides `/actuator/health`, served by `api`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/actuator", get(links))
        .route("/actuator/health/liveness", get(liveness))
        .route("/actuator/health/readiness", get(readiness))
        .route("/actuator/prometheus", get(super::metrics))
        .route("/actuator/info", get(info))
}

/// The endpoints, as Spring lists them: `{"_links": {name: {"href", "templated"}}}`, with
/// absolute URLs built from the request's Host.
async fn links(headers: HeaderMap, State(state): State<AppState>) -> Json<Value> {
    let scheme = match &state.handle.info.http_addr {
        Some(a) if a.starts_with("https://") => "https",
        _ => "http",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let base = format!("{scheme}://{host}/actuator");
    let link = |path: &str| json!({ "href": format!("{base}{path}"), "templated": false });
    Json(json!({
        "_links": {
            "self": link(""),
            "health": link("/health"),
            "health-path": { "href": format!("{base}/health/{{*path}}"), "templated": true },
            "info": link("/info"),
            "prometheus": link("/prometheus"),
        }
    }))
}

fn status(code: StatusCode, status: &str, reason: Option<&str>) -> Response {
    let mut body = json!({ "status": status });
    if let Some(r) = reason {
        body["details"] = json!({ "reason": r });
    }
    (code, Json(body)).into_response()
}

async fn liveness(State(state): State<AppState>) -> Response {
    match super::snapshot(&state).await {
        Ok(_) => status(StatusCode::OK, "UP", None),
        Err(_) => status(
            StatusCode::SERVICE_UNAVAILABLE,
            "DOWN",
            Some("the node runtime does not answer"),
        ),
    }
}

async fn readiness(State(state): State<AppState>) -> Response {
    let s = match super::snapshot(&state).await {
        Ok(s) => s,
        Err(_) => {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "OUT_OF_SERVICE",
                Some("the node runtime does not answer"),
            )
        }
    };
    match super::not_ready(&s) {
        None => status(StatusCode::OK, "UP", None),
        Some(reason) => status(
            StatusCode::SERVICE_UNAVAILABLE,
            "OUT_OF_SERVICE",
            Some(reason),
        ),
    }
}

/// `/actuator/info`: Spring's `build` and `git` sections, and the member.
async fn info(State(state): State<AppState>) -> Json<Value> {
    let i = &state.handle.info;
    Json(json!({
        "build": {
            "name": "vigil",
            "version": crate::build_info::VERSION,
            "profile": crate::build_info::PROFILE,
            "features": crate::build_info::features(),
        },
        "git": { "commit": { "id": crate::build_info::COMMIT } },
        "member": {
            "id": i.id,
            "cluster": i.cluster,
            "generation": i.generation,
            "service": state.service.as_ref().map(|s| s.name()),
            "gossipAddress": i.gossip_addr.to_string(),
            "httpAddress": i.http_addr,
            "insecure": i.insecure,
        },
    }))
}
