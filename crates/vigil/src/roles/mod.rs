//! The seed's service roles: every process is a cluster member, and its role decides which
//! service it also runs on the same HTTP server.
//!
//! # Layout
//! - [`event`]: the log event, its validation, the generator.
//! - [`routing`]: choosing a member by status, zone and health score; [`routing::ViewWatch`].
//! - [`producer`]: `POST /logs`, bounded queue, delivery until acknowledged.
//! - [`consumer`]: idempotent persistence ([`store`]: SQLite or PostgreSQL), `GET /logs`.
//! - [`gateway`]: `/api/...`, routing to producers and consumers, [`cache`] (Redis or local),
//!   [`balancer`] (what the gateway learns from its own requests).
//! - `kafka` (feature `kafka`): the producer's publisher and the consumer group loop.
//!
//! # Data flow
//! client -> gateway `POST /api/logs` -> producer queue -> (Kafka topic | HTTP) -> consumer
//! -> store; an acknowledgement flows back only after the store committed, and every retry
//! carries the same event ids, so rows are exactly-once.

pub mod balancer;
pub mod cache;
pub mod consumer;
pub mod event;
pub mod gateway;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod producer;
pub mod routing;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::runtime::Handle;

/// Background tasks of a role; the daemon aborts them at shutdown after cancelling the token.
pub type Tasks = Vec<tokio::task::JoinHandle<()>>;

/// A JSON error body `{"error": "..."}`.
pub fn error_body(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The service a member runs, for the health endpoint.
pub enum Service {
    /// `--role producer`.
    Producer(Arc<producer::Producer>),
    /// `--role consumer`.
    Consumer(Arc<consumer::Consumer>),
    /// `--role gateway`.
    Gateway(Arc<gateway::Gateway>),
}

impl Service {
    /// Component name in `/actuator/health`.
    pub fn name(&self) -> &'static str {
        match self {
            Service::Producer(_) => "producer",
            Service::Consumer(_) => "consumer",
            Service::Gateway(_) => "gateway",
        }
    }

    /// Whether the service can do its work, and details.
    pub fn health(&self) -> (bool, Value) {
        match self {
            Service::Producer(p) => p.health(),
            Service::Consumer(c) => c.health(),
            Service::Gateway(g) => g.health(),
        }
    }
}

/// What [`start`] started.
pub struct Started {
    /// Routes to serve beside the membership API (empty for other roles).
    pub router: Router,
    /// The service, if the role has one.
    pub service: Option<Arc<Service>>,
    /// Its background tasks.
    pub tasks: Tasks,
}

/// How often the roles refresh their copy of the cluster view.
const VIEW_REFRESH: Duration = Duration::from_millis(200);

/// Starts the service of `settings.role`, if it has one. Must run inside the tokio runtime.
pub fn start(
    settings: &Settings,
    handle: &Handle,
    stop: CancellationToken,
) -> anyhow::Result<Started> {
    let role = settings.role.as_str();
    if !matches!(role, "producer" | "consumer" | "gateway") {
        return Ok(Started {
            router: Router::new(),
            service: None,
            tasks: Vec::new(),
        });
    }
    let mut tasks = Vec::new();
    let (view, view_task) = routing::ViewWatch::start(handle.clone(), VIEW_REFRESH, stop.clone());
    tasks.push(view_task);
    let s = &settings.services;
    let ca = settings.http_tls_ca.as_deref().map(std::path::Path::new);
    let (service, router) = match role {
        "producer" => {
            let token = settings.admin_token.as_deref();
            let (p, r) = producer::start(&settings.id, s, view, stop, &mut tasks, ca, token)?;
            (Service::Producer(p), r)
        }
        "consumer" => {
            let token = settings.admin_token.as_deref();
            let (c, r) = consumer::start(&settings.id, s, view, stop, &mut tasks, token)?;
            (Service::Consumer(c), r)
        }
        _ => {
            let (g, r) = gateway::start(handle.info.clone(), handle.metrics.clone(), s, view, ca)?;
            (Service::Gateway(g), r)
        }
    };
    // Every answer of the service feeds this member's own latency and error signals.
    let load = handle.service_load.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let load = load.clone();
            async move {
                let started = std::time::Instant::now();
                let answer = next.run(req).await;
                let status = answer.status();
                let failed = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                load.record(started.elapsed(), failed);
                answer
            }
        },
    ));
    Ok(Started {
        router,
        service: Some(Arc::new(service)),
        tasks,
    })
}

/// One role of the local cluster started by `vigil up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSpec {
    /// Role name, also the member id in `vigil up`.
    pub name: &'static str,
    /// The seed's HTTP port for this service.
    pub http_port: u16,
    /// Offset of its gossip port from the gossip base port.
    pub gossip_offset: u16,
    /// Whether it bootstraps the cluster (the others join through it).
    pub bootstrap: bool,
    /// What the service does in the seed.
    pub summary: &'static str,
}

/// The seed's four services, in start order: the bootstrap node first.
pub const LOCAL_CLUSTER: [RoleSpec; 4] = [
    RoleSpec {
        name: "coordinator",
        http_port: 8081,
        gossip_offset: 1,
        bootstrap: true,
        summary: "failure detection, gossip, quorum",
    },
    RoleSpec {
        name: "gateway",
        http_port: 8080,
        gossip_offset: 0,
        bootstrap: false,
        summary: "the API: /api/cluster/status, /api/logs (routed by health)",
    },
    RoleSpec {
        name: "producer",
        http_port: 8082,
        gossip_offset: 2,
        bootstrap: false,
        summary: "log production: POST /logs, bounded queue, delivery until acknowledged",
    },
    RoleSpec {
        name: "consumer",
        http_port: 8083,
        gossip_offset: 3,
        bootstrap: false,
        summary: "log consumption: idempotent store, GET /logs, /logs/stats",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_role_bootstraps_and_ports_are_distinct() {
        assert_eq!(LOCAL_CLUSTER.iter().filter(|r| r.bootstrap).count(), 1);
        assert!(
            LOCAL_CLUSTER[0].bootstrap,
            "the bootstrap node starts first"
        );
        let mut http: Vec<u16> = LOCAL_CLUSTER.iter().map(|r| r.http_port).collect();
        let mut gossip: Vec<u16> = LOCAL_CLUSTER.iter().map(|r| r.gossip_offset).collect();
        http.sort();
        http.dedup();
        gossip.sort();
        gossip.dedup();
        assert_eq!((http.len(), gossip.len()), (4, 4));
    }
}
