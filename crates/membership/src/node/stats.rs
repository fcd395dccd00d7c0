//! [`Stats`]: the counters a node keeps about itself, for metrics and the simulator.

/// Counters, for metrics and the simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Heartbeat datagrams sent.
    pub heartbeats_sent: u64,
    /// Heartbeat datagrams received.
    pub heartbeats_received: u64,
    /// Members this node saw turn FAILED.
    pub failures_detected: u64,
    /// Datagrams sent (all kinds).
    pub messages_sent: u64,
    /// Datagrams received and decoded (all kinds).
    pub messages_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received (decoded or not).
    pub bytes_received: u64,
    /// Datagrams rejected by the decoder.
    pub decode_errors: u64,
    /// Heartbeats ignored because an equal or newer one had been taken (replays, reordering,
    /// an older life of the sender).
    pub stale_heartbeats: u64,
    /// Anti-entropy exchanges this node started.
    pub syncs_started: u64,
    /// Accusations this node made as an observer.
    pub accusations: u64,
    /// Accusations this node held back because its own timers ran late (see
    /// `node::detect`, "local health").
    pub accusations_withheld: u64,
    /// Times this node refuted a suspicion of itself.
    pub refutations: u64,
    /// Largest datagram sent.
    pub max_datagram_sent: u64,
    /// Datagrams and bytes sent, per message kind (`heartbeat`, `gossip`, `sync_records`, ...).
    pub sent_by_kind: std::collections::BTreeMap<&'static str, (u64, u64)>,
    /// Records of unknown members refused because the table held
    /// `cluster.limits.max-members` records.
    pub members_refused: u64,
    /// Records from the network dropped because their metadata exceeded
    /// `cluster.limits.max-metadata-bytes`.
    pub records_oversize: u64,
    /// Times this node raised its incarnation because no observer of its was vouched for
    /// on its side (see `node::reach`).
    pub announcements: u64,
    /// Probes this node sent to a suspect as a witness, standing in for observers it cannot
    /// hear from (see `node::witness`).
    pub witness_probes: u64,
    /// Accusations this node made as a witness (its probe went unanswered).
    pub witness_accusations: u64,
    /// Datagrams and records from the network refused because they claimed a generation
    /// more than an hour past this node's clock (see `node::generation`).
    pub future_generations: u64,
    /// Records refused because they describe a life of a member whose tombstone this node
    /// already collected (see `node::departed`).
    pub stale_lives: u64,
    /// Members convicted or evicted here that were told so because they still spoke from
    /// the life that ended (see `node::departed`).
    pub departed_told: u64,
    /// Datagrams not sent because they would have given a sender not known as a member more
    /// bytes than it sent (see the module docs of `node`, "Answers").
    pub answers_withheld: u64,
}
