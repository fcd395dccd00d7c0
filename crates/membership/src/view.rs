//! Read-only snapshots of a node's view, for APIs, metrics and the simulator.

use std::net::SocketAddr;
use std::time::Duration;

use crate::member::{HealthSignals, NodeId, Status};

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// The member's id.
    pub id: NodeId,
    /// Its advertised gossip address.
    pub addr: SocketAddr,
    /// Its generation (larger at every restart).
    pub generation: u64,
    /// Its incarnation within the generation.
    pub incarnation: u64,
    /// Operator-facing status.
    pub status: Status,
    /// Health score 0-100 (see [`crate::health`]).
    pub health_score: u8,
    /// Phi as this node's detector sees it; 0 for members this node does not watch directly
    /// unless they are suspected (then the threshold).
    pub phi: f64,
    /// When this node last heard from the member itself (a heartbeat, or a newer record the
    /// member issued: ALIVE or LEFT), on the runtime's clock. Accusations (SUSPECT, FAILED)
    /// do not move it, so a frozen member's value stays where it froze.
    pub last_heartbeat: Option<Duration>,
    /// Role label.
    pub role: String,
    /// Zone label.
    pub zone: String,
    /// Rack label (may be empty).
    pub rack: String,
    /// HTTP address the member published, if any.
    pub http_addr: Option<String>,
    /// Whether it holds a voter seat.
    pub voter: bool,
    /// Whether this node watches it directly.
    pub monitored: bool,
    /// Self-reported signals.
    pub signals: HealthSignals,
    /// Free key/values.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// The whole view of one node at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    /// This node's id.
    pub self_id: NodeId,
    /// Whether this node reaches a quorum of voters.
    pub has_quorum: bool,
    /// The leader, only when this node holds quorum.
    pub leader: Option<NodeId>,
    /// How much longer this node reports quorum unless a leader's request renews it (zero
    /// without quorum): the bound on how stale `has_quorum` can be.
    pub quorum_valid_for: Duration,
    /// Number of voters in this node's view.
    pub voters: usize,
    /// Every member still in the view (evicted tombstones excluded), sorted by id.
    pub members: Vec<MemberView>,
}

impl ClusterView {
    /// Members whose status is HEALTHY.
    pub fn healthy(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.status == Status::Healthy)
            .count()
    }

    /// Looks a member up by id.
    pub fn member(&self, id: &str) -> Option<&MemberView> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Counts members per status, in [`Status::ALL`] order.
    pub fn count_by_status(&self) -> [(Status, usize); 5] {
        Status::ALL.map(|s| (s, self.members.iter().filter(|m| m.status == s).count()))
    }

    /// Counts members per zone and status.
    pub fn count_by_zone(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<Status, usize>> {
        let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<Status, usize>> =
            Default::default();
        for m in &self.members {
            *out.entry(m.zone.clone())
                .or_default()
                .entry(m.status)
                .or_default() += 1;
        }
        out
    }
}
