//! What a node hands its runtime: datagrams to send and [`Event`]s, through an [`Output`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::member::NodeId;

/// Where a node's effects go. The runtime sends datagrams and logs or counts events.
pub trait Output {
    /// Send `datagram` to `to` (best effort, like UDP).
    fn send(&mut self, to: SocketAddr, datagram: Vec<u8>);
    /// Something an operator would want to know happened.
    fn event(&mut self, event: Event);
}

/// Notifications, one per change an operator cares about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A member appeared in this node's view.
    MemberJoined {
        /// The member.
        id: NodeId,
        /// Its generation.
        generation: u64,
    },
    /// A known member came back with a newer generation (restart).
    MemberRejoined {
        /// The member.
        id: NodeId,
        /// Its new generation.
        generation: u64,
    },
    /// A member became SUSPECT in this node's view.
    MemberSuspected {
        /// The member.
        id: NodeId,
        /// The first accuser this node heard of.
        by: NodeId,
    },
    /// A suspected member proved it is alive.
    MemberRefuted {
        /// The member.
        id: NodeId,
        /// Its new incarnation.
        incarnation: u64,
    },
    /// A member became FAILED in this node's view.
    MemberFailed {
        /// The member.
        id: NodeId,
        /// The generation that failed.
        generation: u64,
        /// How long this node had not heard from it, when it watched it directly.
        silent_for: Option<Duration>,
        /// Whether this node convicted it (on its own evidence and quorum) rather than
        /// learnt of the conviction from another member.
        decided_here: bool,
    },
    /// A failed member was evicted (kept as a tombstone).
    MemberEvicted {
        /// The member.
        id: NodeId,
        /// Whether this node (the leader) evicted it rather than learnt of the eviction.
        decided_here: bool,
    },
    /// A member left gracefully.
    MemberLeft {
        /// The member.
        id: NodeId,
    },
    /// This node gained or lost quorum.
    QuorumChanged {
        /// Whether it holds quorum now.
        has_quorum: bool,
        /// Voters it reaches (itself included).
        reachable: usize,
        /// Voters it knows.
        voters: usize,
    },
    /// The leader this node recognizes changed (None: no valid leader here).
    LeaderChanged {
        /// The new leader.
        leader: Option<NodeId>,
    },
    /// This node learnt it had been declared failed or removed and came back with a new
    /// generation.
    SelfRejoined {
        /// The new generation.
        generation: u64,
        /// Why.
        reason: &'static str,
    },
    /// Another process claims this node's id with a newer generation.
    IdConflict {
        /// The contested id.
        id: NodeId,
        /// The other process's generation.
        generation: u64,
    },
}

impl Event {
    /// A short snake_case name per event kind, for metrics labels, logs and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MemberJoined { .. } => "member_joined",
            Event::MemberRejoined { .. } => "member_rejoined",
            Event::MemberSuspected { .. } => "member_suspected",
            Event::MemberRefuted { .. } => "member_refuted",
            Event::MemberFailed { .. } => "member_failed",
            Event::MemberEvicted { .. } => "member_evicted",
            Event::MemberLeft { .. } => "member_left",
            Event::QuorumChanged { .. } => "quorum_changed",
            Event::LeaderChanged { .. } => "leader_changed",
            Event::SelfRejoined { .. } => "self_rejoined",
            Event::IdConflict { .. } => "id_conflict",
        }
    }
}
