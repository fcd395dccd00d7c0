//! The seed's log pipeline on Vigil: every process is a cluster member, and its role
//! (`node.role`) decides which service it also runs on the member's HTTP server. Built on
//! `vigil`'s public API alone: the cluster view through a [`vigil::runtime::Handle`], each
//! service a [`vigil::service::Service`], started by [`start`] as the `vigil` binary's
//! [`vigil::service::Starter`].
//!
//! # Layout
//! - [`gateway`]: `/api/...`, routing to producers and consumers by health; its
//!   [`gateway::balancer`] (what the gateway learns from its own requests).
//! - [`producer`]: `POST /logs`, bounded queue, delivery until acknowledged.
//! - [`consumer`]: idempotent persistence, `GET /logs`.
//! - Shared by them: [`event`] (the log event, its validation, the generator), [`routing`]
//!   (choosing a member by status, zone and health score; [`routing::ViewWatch`]),
//!   [`answer`] (error bodies, a refused write), [`store`] (SQLite or PostgreSQL), [`cache`]
//!   (Redis or local), and `kafka` (feature `kafka`: the topic; the producer's publisher and
//!   the consumer's group loop live in `producer::kafka` and `consumer::kafka`).
//!
//! # Data flow
//! client -> gateway `POST /api/logs` -> producer queue -> (Kafka topic | HTTP) -> consumer
//! -> store; an acknowledgement flows back only after the store committed, and every retry
//! carries the same event ids, so rows are exactly-once.

pub mod answer;
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

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vigil::config::Settings;
use vigil::runtime::Handle;
use vigil::service::{self, Service, Started};

impl Service for producer::Producer {
    fn name(&self) -> &'static str {
        "producer"
    }

    fn health(&self) -> (bool, Value) {
        producer::Producer::health(self)
    }
}

impl Service for consumer::Consumer {
    fn name(&self) -> &'static str {
        "consumer"
    }

    fn health(&self) -> (bool, Value) {
        consumer::Consumer::health(self)
    }
}

impl Service for gateway::Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn health(&self) -> (bool, Value) {
        gateway::Gateway::health(self)
    }
}

/// How often the roles refresh their copy of the cluster view.
const VIEW_REFRESH: Duration = Duration::from_millis(200);

/// Starts the service of `settings.role`, if it has one (a [`vigil::service::Starter`]).
/// Must run inside the tokio runtime.
pub fn start(
    settings: &Settings,
    handle: &Handle,
    stop: CancellationToken,
) -> anyhow::Result<Started> {
    let role = settings.role.as_str();
    if !matches!(role, "producer" | "consumer" | "gateway") {
        return Ok(Started::none());
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
            (p as Arc<dyn Service>, r)
        }
        "consumer" => {
            let token = settings.admin_token.as_deref();
            let (c, r) = consumer::start(&settings.id, s, view, stop, &mut tasks, token)?;
            (c as Arc<dyn Service>, r)
        }
        _ => {
            let (g, r) = gateway::start(handle.info.clone(), handle.metrics.clone(), s, view, ca)?;
            (g as Arc<dyn Service>, r)
        }
    };
    // Every answer of the service feeds this member's own latency and error signals.
    let router = service::measured(router, handle);
    Ok(Started {
        router,
        service: Some(service),
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
