//! The JSON bodies of the HTTP API, shared with the CLI that reads them.
//!
//! `/cluster/status` keeps the seed's field names (`totalNodes`, `healthyNodes`, `hasQuorum`,
//! `membership` of `nodeId`, `status`, `healthScore`, `phiScore`, `lastHeartbeatTime`) and adds
//! what an operator needs.

use std::collections::BTreeMap;

use membership::MemberView;
use serde::{Deserialize, Serialize};

use crate::runtime::{NodeInfo, Snapshot};

/// Self-reported signals of a member, in percent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignalsDto {
    /// CPU load.
    pub cpu_pct: u8,
    /// Memory in use.
    pub mem_pct: u8,
    /// Failed requests or datagrams.
    pub error_pct: u8,
}

/// The signals of a member beyond `signals` (see `membership::HealthSignals`): how short of
/// CPU and how slow it says it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LoadDto {
    /// Time spent waiting for a CPU (run queue, cgroup throttling, cgroup PSI), percent.
    pub pressure_pct: u8,
    /// Event-loop lag, peak-held, milliseconds.
    pub lag_ms: u16,
    /// Its service's mean answer time, peak-held, milliseconds.
    pub latency_ms: u16,
}

/// How a gateway routes to one member (only in a gateway's `/api/cluster/status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteDto {
    /// Its role: `producer` (the gateway's writes go there) or `consumer` (reads).
    #[serde(default)]
    pub role: String,
    /// Share of the gateway's first attempts to its role sent to it since the gateway
    /// started, 0-1.
    pub share: f64,
    /// First attempts sent to it.
    pub requests: u64,
    /// Its routing weight now, normalized over the candidates, 0-1.
    pub weight: f64,
    /// Peak-EWMA of its answer times as the gateway measured them, milliseconds.
    pub latency_ewma_ms: f64,
    /// Whether outlier detection keeps it out of rotation now.
    pub ejected: bool,
    /// How many times it was ejected.
    pub ejections: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

/// One member as this node sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberDto {
    /// Member id.
    pub node_id: String,
    /// HEALTHY, DEGRADED, SUSPECT, FAILED or LEFT.
    pub status: String,
    /// 0-100.
    pub health_score: u8,
    /// Phi of this node's detector for the member, only while this node watches it
    /// (`monitored`); `null` otherwise (itself, members others watch, FAILED and LEFT ones).
    pub phi_score: Option<f64>,
    /// When this node last heard from the member itself (a heartbeat, or a record the member
    /// issued), RFC 3339 UTC; an accusation by others (SUSPECT, FAILED) does not move it.
    pub last_heartbeat_time: Option<String>,
    /// Process generation (unix milliseconds at its start).
    pub generation: u64,
    /// Incarnation within the generation.
    pub incarnation: u64,
    /// Role label.
    pub role: String,
    /// Zone label.
    pub zone: String,
    /// Rack label.
    pub rack: String,
    /// Advertised gossip address.
    pub gossip_address: String,
    /// Published HTTP address.
    pub http_address: Option<String>,
    /// Holds a voter seat.
    pub voter: bool,
    /// Watched directly by this node.
    pub monitored: bool,
    /// Self-reported signals.
    pub signals: SignalsDto,
    /// Free labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `GET /cluster/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusDto {
    /// Members in the view (any status).
    pub total_nodes: usize,
    /// Members HEALTHY.
    pub healthy_nodes: usize,
    /// Whether this node reaches a quorum of voters.
    pub has_quorum: bool,
    /// The leader this node recognizes (only with quorum).
    pub leader: Option<String>,
    /// How much longer, in milliseconds, `hasQuorum` holds unless the leader renews it: a
    /// node cut off from the majority stops reporting quorum within this.
    #[serde(default)]
    pub quorum_valid_for_ms: u64,
    /// The answering node's id.
    #[serde(rename = "self")]
    pub self_id: String,
    /// Cluster name.
    pub cluster: String,
    /// The answering node's generation.
    pub generation: u64,
    /// Voters in the view.
    pub voters: usize,
    /// Whether the answering node reached the cluster.
    pub joined: bool,
    /// Whether the answering node is leaving.
    pub leaving: bool,
    /// Whether the answering node runs without gossip keys or admin token, by the
    /// operator's choice (`security.insecure`): anyone on its network can take it over.
    #[serde(default)]
    pub insecure: bool,
    /// Member counts by status (every status, zeros included).
    pub nodes_by_status: BTreeMap<String, usize>,
    /// Every member by id.
    pub membership: BTreeMap<String, MemberDto>,
    /// Every member's CPU pressure, lag and service latency, by id.
    #[serde(default)]
    pub load: BTreeMap<String, LoadDto>,
    /// A gateway's routing state per producer and consumer, by id (other roles: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<BTreeMap<String, RouteDto>>,
}

/// RFC 3339 in UTC, to the millisecond (one implementation: the event stream's).
pub use crate::event::rfc3339;

/// Builds one member's body.
pub fn member(m: &MemberView, snapshot: &Snapshot) -> MemberDto {
    let heard = if m.id == snapshot.view.self_id {
        Some(snapshot.now)
    } else {
        m.last_heartbeat
    };
    MemberDto {
        node_id: m.id.clone(),
        status: m.status.as_str().to_string(),
        health_score: m.health_score,
        phi_score: m
            .monitored
            .then_some(if m.phi.is_finite() { m.phi } else { f64::MAX }),
        last_heartbeat_time: heard.map(|d| rfc3339(snapshot.wall(d))),
        generation: m.generation,
        incarnation: m.incarnation,
        role: m.role.clone(),
        zone: m.zone.clone(),
        rack: m.rack.clone(),
        gossip_address: m.addr.to_string(),
        http_address: m.http_addr.clone(),
        voter: m.voter,
        monitored: m.monitored,
        signals: SignalsDto {
            cpu_pct: m.signals.cpu_pct,
            mem_pct: m.signals.mem_pct,
            error_pct: m.signals.error_pct,
        },
        tags: m.tags.clone(),
    }
}

/// Builds the status body.
pub fn status(info: &NodeInfo, snapshot: &Snapshot) -> StatusDto {
    let view = &snapshot.view;
    StatusDto {
        total_nodes: view.members.len(),
        healthy_nodes: view.healthy(),
        has_quorum: view.has_quorum,
        leader: view.leader.clone(),
        quorum_valid_for_ms: view.quorum_valid_for.as_millis() as u64,
        self_id: view.self_id.clone(),
        cluster: info.cluster.clone(),
        generation: info.generation,
        voters: view.voters,
        joined: snapshot.joined,
        leaving: snapshot.leaving,
        insecure: info.insecure,
        nodes_by_status: view
            .count_by_status()
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), *n))
            .collect(),
        membership: view
            .members
            .iter()
            .map(|m| (m.id.clone(), member(m, snapshot)))
            .collect(),
        load: view
            .members
            .iter()
            .map(|m| {
                let s = m.signals;
                let dto = LoadDto {
                    pressure_pct: s.pressure_pct,
                    lag_ms: s.lag_ms,
                    latency_ms: s.latency_ms,
                };
                (m.id.clone(), dto)
            })
            .collect(),
        routing: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_millisecond() {
        let t = UNIX_EPOCH + Duration::from_millis(1_733_135_445_123) + Duration::from_nanos(456);
        assert_eq!(rfc3339(t), "2024-12-02T10:30:45.123Z");
    }
}
