//! Typed membership events, as [`Vigil::subscribe`](crate::Vigil::subscribe), `GET
//! /cluster/events` and the event handlers (`node.event-handlers`) see them.
//!
//! The core ([`membership::Node`]) reports what changed in this node's view as
//! [`membership::Event`]s; the runtime task turns each into an [`Event`] (adding what the
//! record says about the member), numbers it and stamps it with the wall clock
//! ([`Change`]), and publishes it on a bounded bus. The bus never blocks the runtime: a
//! subscriber that falls behind is told so ([`Update::Lagged`]) and then handed a fresh
//! [`View`], so it never silently misses a change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use membership::{MemberRecord, MemberView};
use serde_json::{json, Value};

pub use membership::Status;

/// One member, as this node sees it.
///
/// ```
/// use vigil::{Member, Status};
///
/// let m = Member::new("n1", Status::Healthy, 7);
/// assert_eq!((m.id.as_str(), m.status, m.generation), ("n1", Status::Healthy, 7));
/// assert!(m.tags.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// The member's id, unique in the cluster.
    pub id: String,
    /// Its status in this node's view (for a removed member: the last one it had).
    pub status: Status,
    /// Its generation: larger at every start of the member's process.
    pub generation: u64,
    /// Its advertised gossip address, when known.
    pub addr: Option<SocketAddr>,
    /// The HTTP address it published, if any.
    pub http_addr: Option<String>,
    /// Its role label.
    pub role: String,
    /// Its zone label.
    pub zone: String,
    /// Its free key/values (`node.tags.*`, [`Vigil::set_tag`](crate::Vigil::set_tag)).
    pub tags: BTreeMap<String, String>,
    /// Its health score 0-100 as this node computes it (100 when not known, in events).
    pub health_score: u8,
}

impl Member {
    /// The member's fields in events and snapshots: `nodeId`, `status`, `generation`,
    /// `role`, `zone`, `httpAddress`, `tags`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "nodeId": self.id,
            "status": self.status.as_str(),
            "generation": self.generation,
            "role": self.role,
            "zone": self.zone,
            "httpAddress": self.http_addr,
            "tags": self.tags,
        })
    }

    /// A member known only by id, status and generation.
    pub fn new(id: impl Into<String>, status: Status, generation: u64) -> Self {
        Member {
            id: id.into(),
            status,
            generation,
            addr: None,
            http_addr: None,
            role: String::new(),
            zone: String::new(),
            tags: BTreeMap::new(),
            health_score: 100,
        }
    }

    /// From a member in a view.
    pub(crate) fn from_view(m: &MemberView) -> Self {
        Member {
            id: m.id.to_string(),
            status: m.status,
            generation: m.generation,
            addr: Some(m.addr),
            http_addr: m.http_addr.clone(),
            role: m.role.clone(),
            zone: m.zone.clone(),
            tags: m.tags.clone(),
            health_score: m.health_score,
        }
    }

    /// From a replicated record, with the status the event implies.
    pub(crate) fn from_record(r: &MemberRecord, status: Status) -> Self {
        Member {
            id: r.id.to_string(),
            status,
            generation: r.generation,
            addr: Some(r.addr),
            http_addr: r.meta.http_addr.clone(),
            role: r.meta.role.clone(),
            zone: r.meta.zone.clone(),
            tags: r.meta.tags.clone(),
            health_score: 100,
        }
    }

    /// Whether the two describe the same metadata (role, zone, addresses, tags).
    pub(crate) fn same_metadata(&self, other: &Member) -> bool {
        self.addr == other.addr
            && self.http_addr == other.http_addr
            && self.role == other.role
            && self.zone == other.zone
            && self.tags == other.tags
    }
}

/// One change in this node's view of the cluster.
///
/// ```
/// use vigil::{Event, Member, Status};
///
/// let e = Event::MemberFailed(Member::new("n3", Status::Failed, 2));
/// assert_eq!(e.name(), "member-failed");
/// assert_eq!(e.member().map(|m| m.id.as_str()), Some("n3"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A member appeared in this node's view.
    MemberJoined(Member),
    /// A member's metadata (tags, role, addresses) changed, or it moved between HEALTHY and
    /// DEGRADED, or it refuted a suspicion and is alive again.
    MemberUpdated(Member),
    /// A member is suspected by an observer, not yet convicted.
    MemberSuspect(Member),
    /// A member was convicted as failed (by this node or by the cluster).
    MemberFailed(Member),
    /// A member left gracefully.
    MemberLeft(Member),
    /// A failed or departed member was removed from the view (evicted, or removed by an
    /// operator).
    MemberRemoved(Member),
    /// A member came back with a newer generation (its process restarted).
    MemberRejoined(Member),
    /// This node reaches a quorum of voters again.
    QuorumGained {
        /// Voters reached, this node included.
        reachable: usize,
        /// Voters known.
        voters: usize,
    },
    /// This node no longer reaches a quorum of voters.
    QuorumLost {
        /// Voters reached, this node included.
        reachable: usize,
        /// Voters known.
        voters: usize,
    },
    /// The leader this node recognizes changed (`None`: no valid leader here).
    LeaderChanged {
        /// The new leader's id.
        leader: Option<String>,
    },
    /// This node learnt the cluster had declared it failed or removed, and came back with
    /// a new generation (it was convicted while alive: paused, partitioned, overloaded).
    Convicted {
        /// The new generation.
        generation: u64,
        /// Why it was convicted.
        reason: String,
    },
}

impl Event {
    /// The SSE event name (`GET /cluster/events`) and the handlers' `VIGIL_EVENT`:
    /// `member-joined`, `member-updated`, `member-suspect`, `member-failed`, `member-left`,
    /// `member-removed`, `member-rejoined`, `quorum-gained`, `quorum-lost`,
    /// `leader-changed`; a conviction of this node is `member-rejoined` about itself.
    pub fn name(&self) -> &'static str {
        match self {
            Event::MemberJoined(_) => "member-joined",
            Event::MemberUpdated(_) => "member-updated",
            Event::MemberSuspect(_) => "member-suspect",
            Event::MemberFailed(_) => "member-failed",
            Event::MemberLeft(_) => "member-left",
            Event::MemberRemoved(_) => "member-removed",
            Event::MemberRejoined(_) | Event::Convicted { .. } => "member-rejoined",
            Event::QuorumGained { .. } => "quorum-gained",
            Event::QuorumLost { .. } => "quorum-lost",
            Event::LeaderChanged { .. } => "leader-changed",
        }
    }

    /// The member the event is about, for the member events.
    pub fn member(&self) -> Option<&Member> {
        match self {
            Event::MemberJoined(m)
            | Event::MemberUpdated(m)
            | Event::MemberSuspect(m)
            | Event::MemberFailed(m)
            | Event::MemberLeft(m)
            | Event::MemberRemoved(m)
            | Event::MemberRejoined(m) => Some(m),
            _ => None,
        }
    }
}

/// An [`Event`] as published: numbered and dated.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use vigil::{Change, Event};
///
/// let c = Change {
///     id: 12,
///     at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
///     event: Event::LeaderChanged { leader: Some("n1".into()) },
/// };
/// assert_eq!(c.to_json("n2", 5)["at"], "2023-11-14T22:13:20Z");
/// assert_eq!(c.to_json("n2", 5)["nodeId"], "n1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its number on this node: 1, 2, 3, ... in the order of publication (restarting at 1
    /// with every start of the process, whose generation tells the starts apart).
    pub id: u64,
    /// When this node published it (wall clock).
    pub at: SystemTime,
    /// What changed.
    pub event: Event,
}

impl Change {
    /// The JSON object of `GET /cluster/events`' `data:` and of the handlers' stdin:
    /// `event`, `id`, `nodeId` (the member concerned: the member, the leader, this node for
    /// quorum and conviction), `status`, `generation`, `at` (RFC 3339), `observer` (this
    /// node), and per kind `role`, `zone`, `tags`, `reachable`, `voters`, `reason`.
    /// `self_id` and `self_generation` are this node's.
    pub fn to_json(&self, self_id: &str, self_generation: u64) -> Value {
        let mut v = match &self.event {
            Event::MemberJoined(m)
            | Event::MemberUpdated(m)
            | Event::MemberSuspect(m)
            | Event::MemberFailed(m)
            | Event::MemberLeft(m)
            | Event::MemberRemoved(m)
            | Event::MemberRejoined(m) => m.to_json(),
            Event::QuorumGained { reachable, voters } | Event::QuorumLost { reachable, voters } => {
                json!({
                    "nodeId": self_id,
                    "status": if matches!(self.event, Event::QuorumGained { .. }) { "QUORUM" } else { "NO_QUORUM" },
                    "generation": self_generation,
                    "reachable": reachable,
                    "voters": voters,
                })
            }
            Event::LeaderChanged { leader } => json!({
                "nodeId": leader,
                "status": if leader.is_some() { "LEADER" } else { "NO_LEADER" },
                "generation": self_generation,
            }),
            Event::Convicted { generation, reason } => json!({
                "nodeId": self_id,
                "status": "HEALTHY",
                "generation": generation,
                "reason": reason,
                "self": true,
            }),
        };
        v["event"] = json!(self.event.name());
        v["id"] = json!(self.id);
        v["at"] = json!(rfc3339(self.at));
        v["observer"] = json!(self_id);
        v
    }
}

/// `at` in RFC 3339, UTC, to the millisecond at most.
pub fn rfc3339(at: SystemTime) -> String {
    let t: time::OffsetDateTime = at.into();
    let t = t
        .replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// This node's whole view at one instant.
///
/// ```
/// use vigil::View;
///
/// let v = View::default();
/// assert!(v.members.is_empty() && !v.has_quorum && v.leader.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct View {
    /// This node's id.
    pub self_id: String,
    /// Whether this node reaches a quorum of voters.
    pub has_quorum: bool,
    /// The leader, only when this node holds quorum.
    pub leader: Option<String>,
    /// Every member in the view (removed ones excluded), sorted by id, this node included.
    pub members: Vec<Member>,
    /// The [`Change::id`] of the last change the view includes (0: none yet).
    pub last_change: u64,
}

impl View {
    /// The members that are alive: HEALTHY or DEGRADED.
    pub fn live(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| matches!(m.status, Status::Healthy | Status::Degraded))
    }
}

/// One item of a [`Subscription`](crate::Subscription).
///
/// ```
/// use vigil::Update;
///
/// let u = Update::Lagged { missed: 3 };
/// assert!(matches!(u, Update::Lagged { missed: 3 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update {
    /// The view when the subscription started, or after [`Update::Lagged`]: apply it as a
    /// whole (what it shows replaces what the subscriber knew). Changes that follow are
    /// newer than it.
    Snapshot(View),
    /// One change.
    Change(Change),
    /// The subscriber fell behind and `missed` changes were dropped for it; a
    /// [`Update::Snapshot`] follows.
    Lagged {
        /// How many changes it missed.
        missed: u64,
    },
}

/// What the application reports about its own health; it lowers this member's health score
/// (gossiped to every member) as failed requests would.
///
/// The error share counts as the score's error signal (10 % errors cost 4 points of 100, 50 %
/// or more all 20); a latency over its target counts as errors too: at twice the target like
/// 50 % errors. The worse of the two, and of the errors the runtime measures itself, is
/// published.
///
/// ```
/// use std::time::Duration;
/// use vigil::AppHealth;
///
/// let h = AppHealth::errors(0.02).with_latency(Duration::from_millis(300), Duration::from_millis(200));
/// assert_eq!(h.error_pct(), 25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppHealth {
    /// Share of failed requests over the application's recent window, 0.0-1.0.
    pub error_ratio: f64,
    /// Recent latency (e.g. p99) and the target it should stay under.
    pub latency: Option<(Duration, Duration)>,
}

impl AppHealth {
    /// Only an error share, 0.0-1.0.
    pub fn errors(error_ratio: f64) -> Self {
        AppHealth {
            error_ratio,
            latency: None,
        }
    }

    /// Adds a latency and its target.
    pub fn with_latency(mut self, latency: Duration, target: Duration) -> Self {
        self.latency = Some((latency, target));
        self
    }

    /// The error signal this amounts to, percent.
    pub fn error_pct(&self) -> u8 {
        let errors = if self.error_ratio.is_finite() {
            self.error_ratio.clamp(0.0, 1.0) * 100.0
        } else {
            0.0
        };
        let slow = match self.latency {
            Some((latency, target)) if !target.is_zero() => {
                ((latency.as_secs_f64() / target.as_secs_f64() - 1.0) * 50.0).clamp(0.0, 100.0)
            }
            _ => 0.0,
        };
        errors.max(slow).round() as u8
    }
}
