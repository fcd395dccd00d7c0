//! [`Node`]: one member's protocol state machine.
//!
//! Inputs: datagrams ([`Node::handle_datagram`]), timeouts ([`Node::handle_timeout`]) and
//! operator commands ([`Node::leave`], [`Node::force_remove`], [`Node::set_signals`]), each
//! with the current time. Outputs: datagrams and [`Event`]s through an [`Output`].
//!
//! This file holds the [`Node`] struct, its construction, the accessors and the top-level
//! dispatch of timeouts and datagrams. The rest lives in one file per concern:
//!
//! - `receive`: decoding a datagram, how far its sender is believed, whom the node
//!   answers as a member (see "Answers" below), and the dispatch of each message;
//! - `send`: the sender header, encoding, per-kind counters, the answer budget;
//! - `broadcast`: the gossip queue, picking random members, the gossip round;
//! - `merge`: admitting and merging records, what a change sets off (events, the end of
//!   stale suspicions), and news about this node itself;
//! - `commands`: the operator's commands (signals, tags, leave, force-remove);
//! - `view`: the [`ClusterView`](crate::view::ClusterView) snapshot;
//! - `events` and `stats`: the [`Output`] trait, [`Event`] and [`Stats`];
//! - `table` keeps the member table and its indexes, `seats` the voter configuration;
//! - `detect` runs heartbeats, phi, accusations and conviction, `witness` probes for
//!   observers this node cannot hear, `reach` counts the voters reachable for quorum;
//! - `sync` does joins and anti-entropy;
//! - `lease` runs leader leases, `decide` takes the quorum-side decisions (admission,
//!   eviction, tombstones);
//! - `generation` bounds others' generations and rate-limits this node's rejoins,
//!   `departed` remembers the lives of members whose tombstones were collected.
//!
//! # Answers
//! A node answers a datagram only to the address it came from, never to an address carried
//! inside it (a probe names none), so replayed or forged datagrams cannot aim its answers
//! at a third party. And a sender it cannot yet tell is a member never gets more bytes back
//! than it sent: while such a datagram is handled, every datagram it causes counts against
//! a budget of the received datagram's length, and one that does not fit is withheld
//! (counted in [`Stats::answers_withheld`]). A sender counts as a member when
//! - the runtime authenticated the datagram ([`Node::handle_authenticated_datagram`]: in
//!   a keyed cluster, it opened under the cluster key and was not a replay), or
//! - otherwise ([`Node::handle_datagram`]: insecure clusters), the datagram came from the
//!   gossip address this table holds for the member it names as its sender (a join: the
//!   joiner), and that member has not left or been evicted here. This is all the core can
//!   check without a key; it stops reflection and amplification towards addresses that
//!   are not members', not an attacker who spoofs a member's own address.
//!
//! Joins are padded to `cluster.transport.max-datagram`, so a seed can answer a joiner it
//! does not know yet with one page of its table; the joiner's anti-entropy request, sent
//! once the seed holds its record, fetches the rest.

mod broadcast;
mod commands;
mod decide;
mod departed;
mod detect;
mod events;
mod generation;
mod lease;
mod merge;
mod reach;
mod receive;
mod seats;
mod send;
mod stats;
mod sync;
mod table;
mod view;
mod witness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::codec;
use crate::config::Config;
use crate::error::{ConfigError, DecodeError};
use crate::gossip::BroadcastQueue;
use crate::member::{Liveness, MemberRecord, Metadata, NodeId};

use detect::Suspicion;
pub use events::{Event, Output};
pub use generation::MAX_GENERATION_AHEAD;
use merge::Source;
pub use stats::Stats;
use table::Table;

/// Who this node is at this process start.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Unique id (from config, never from the hostname).
    pub id: NodeId,
    /// The gossip address peers should use (the advertised one, not necessarily the bind).
    pub addr: SocketAddr,
    /// Larger at every process start: the runtime uses wall-clock milliseconds, and the node
    /// takes this plus the time since [`Node::new`] as the wall clock against which it bounds
    /// the generations others claim (see `node::generation`).
    pub generation: u64,
    /// Initial metadata (role, zone, HTTP address, ...).
    pub meta: Metadata,
    /// Cluster name: datagrams of other clusters are rejected.
    pub cluster: String,
}

/// One member's protocol state machine. See the module docs.
pub struct Node {
    config: Config,
    cluster: u32,
    me: NodeId,
    /// The time of the input being handled (the node reads no clock of its own).
    clock: Duration,
    rng: SmallRng,
    stats: Stats,
    table: Table,
    queue: BroadcastQueue,
    /// What this node believes about the sender of the datagram being handled.
    inbound: receive::Inbound,
    /// When the heartbeats and the gossip round are next due.
    timers: Timers,
    /// Seeds, joins and anti-entropy (see `node::sync`).
    sync: sync::SyncState,
    /// The members this node watches, and the probes it has sent them (see `node::detect`).
    watch: detect::Watch,
    /// Whether this node's own timers run late (see `node::detect`, "local health").
    local_health: detect::LocalHealth,
    my_observers: Vec<Arc<str>>,
    observers_epoch: u64,
    hb_seq: u64,
    /// The table summary at the last heartbeat round, and how many more rounds carry it
    /// (see `Node::heartbeat_sender`).
    hb_news: (u64, u32),
    suspicions: HashMap<NodeId, Suspicion>,
    /// When a voter last turned SUSPECT here: convictions wait until suspicions settle.
    last_voter_suspected: Option<Duration>,
    /// Suspects this node stands witness for (see `node::witness`).
    witnesses: HashMap<Arc<str>, witness::Witness>,
    /// Watched voters whose phi passed half the threshold: not counted as reachable.
    doubted: std::collections::BTreeSet<Arc<str>>,
    /// Voters counted for quorum on evidence of contact (see `node::reach`).
    reach: reach::Reach,
    quorum: bool,
    /// Leader leases: who leads, and whether quorum is current (see `node::lease`).
    lease: lease::Lease,
    leader: Option<NodeId>,
    left: bool,
    started: bool,
    /// This process life: when it began, and its rejoins (see `node::generation`).
    life: generation::Life,
    /// Generations of departed members whose tombstones were collected.
    departed: departed::Departed,
}

/// The node's own periodic work: when it is next due, and when the last timeout ran.
struct Timers {
    next_heartbeat: Duration,
    next_tick: Duration,
    /// The last [`Node::handle_timeout`]: a much longer gap than the configured guard means
    /// this process was paused (see `node::detect`).
    last_timeout: Option<Duration>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.me)
            .field("generation", &self.generation())
            .field("members", &self.table.len())
            .field("has_quorum", &self.quorum)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Creates a node that will join through `seeds`. With no seeds it founds a new cluster
    /// and admits itself as the first voter; with its own address first in the list it does
    /// so only if no other seed answers within a second (Akka's first-seed rule).
    pub fn new(
        identity: Identity,
        config: Config,
        seeds: Vec<SocketAddr>,
        now: Duration,
        rng_seed: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if !codec::valid_id(&identity.id) {
            return Err(ConfigError::new(
                "node.id",
                identity.id,
                format!("must be {}", codec::ID_RULE),
            ));
        }
        let meta_len = commands::metadata_len_with_any_signals(&identity.meta);
        if meta_len > config.max_metadata_bytes {
            return Err(ConfigError::new(
                "cluster.limits.max-metadata-bytes",
                config.max_metadata_bytes.to_string(),
                format!(
                    "this node's own metadata (role, zone, rack, HTTP address, tags) takes {meta_len} bytes"
                ),
            ));
        }
        // No seeds: found a cluster at once. First in its own seed list: found one only if
        // the other seeds have not answered within a second (a restarted first seed must
        // rejoin its cluster, not found a second one).
        let bootstrap_at = match seeds.first() {
            None => Some(now),
            Some(first) if *first == identity.addr && seeds.len() == 1 => Some(now),
            Some(first) if *first == identity.addr => Some(now + Duration::from_secs(1)),
            Some(_) => None,
        };
        let seeds: Vec<SocketAddr> = seeds.into_iter().filter(|s| *s != identity.addr).collect();
        let mut rng = SmallRng::seed_from_u64(rng_seed);
        let mut table = Table::new(config.observers);
        let me = MemberRecord {
            id: identity.id.as_str().into(),
            addr: identity.addr,
            generation: identity.generation,
            incarnation: 0,
            liveness: Liveness::Alive,
            meta_version: 1,
            meta: Arc::new(Metadata {
                signals: identity.meta.signals.quantized(),
                ..identity.meta
            }),
            voter: false,
            joining: false,
        };
        table.merge(now, &me);
        let first_beat = now + config.heartbeat_interval.mul_f64(rng.random::<f64>());
        let first_tick = now + config.gossip_interval.mul_f64(rng.random::<f64>());
        Ok(Node {
            cluster: codec::cluster_id(&identity.cluster),
            me: identity.id,
            clock: now,
            rng,
            stats: Stats::default(),
            table,
            queue: BroadcastQueue::new(),
            inbound: Default::default(),
            timers: Timers {
                next_heartbeat: first_beat,
                next_tick: first_tick,
                last_timeout: None,
            },
            sync: sync::SyncState {
                seeds,
                synced: bootstrap_at.is_some(),
                bootstrap_at,
                next_seed_contact: now,
                last_sync: None,
                cursor: 0,
            },
            watch: Default::default(),
            local_health: Default::default(),
            my_observers: Vec::new(),
            observers_epoch: u64::MAX,
            hb_seq: 0,
            hb_news: (0, 0),
            suspicions: HashMap::new(),
            last_voter_suspected: None,
            witnesses: HashMap::new(),
            doubted: Default::default(),
            reach: Default::default(),
            quorum: false,
            lease: Default::default(),
            leader: None,
            left: false,
            started: false,
            life: generation::Life {
                born: now,
                start_generation: identity.generation,
                last_rejoin: None,
                pending_rejoin: None,
            },
            departed: Default::default(),
            config,
        })
    }

    /// Keeps this node's member records in `pool` from now on. Nodes of one process that
    /// share a pool (the simulator's) hold each distinct record once between them instead
    /// of once each: a cluster of N nodes holds N² records, nearly all of them equal. Call
    /// it right after [`Node::new`]; it changes no behaviour, only where records live.
    pub fn share_records(&mut self, pool: crate::pool::RecordPool) {
        self.table.share_pool(pool);
    }

    // ----------------------------------------------------------------- accessors

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.me
    }

    /// This node's current generation (raised when it rejoins after being convicted).
    pub fn generation(&self) -> u64 {
        self.my_record().generation
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether this node reaches a quorum of voters: it holds the leader's lease, or follows
    /// a leader whose lease held within the last third of `cluster.quorum.lease` (see
    /// `node::lease`). A side cut off from the majority stops saying so within
    /// `cluster.quorum.lease` plus a third of it, plus one delivery.
    pub fn has_quorum(&self) -> bool {
        self.quorum
    }

    /// How much longer, from `now`, this node reports quorum unless a leader's request renews
    /// it (zero without quorum).
    pub fn quorum_valid_for(&self, now: Duration) -> Duration {
        if self.left {
            return Duration::ZERO;
        }
        self.lease
            .reported_until(self.lease_renew())
            .map_or(Duration::ZERO, |u| u.saturating_sub(now))
    }

    /// The leader this node recognizes (only while it holds quorum).
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// This node's local health: 0 when its timers run on time, up to
    /// 8 while they run late (see `node::detect`, "local health").
    pub fn local_health(&self) -> u32 {
        self.local_health.level
    }

    /// Whether this node has left the cluster.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// This node's copy of a member's record.
    pub fn record(&self, id: &str) -> Option<&MemberRecord> {
        self.table.get(id).map(|e| &*e.record)
    }

    /// Every record this node holds (tombstones included), sorted by id.
    pub fn records(&self) -> impl Iterator<Item = &MemberRecord> {
        self.table.records()
    }

    /// Members this node sees alive (itself included).
    pub fn live_count(&self) -> usize {
        self.table.alive()
    }

    /// Fingerprint of the whole table: two nodes with equal summaries hold the same view.
    pub fn summary(&self) -> u64 {
        self.table.summary()
    }

    /// Members this node watches directly.
    pub fn monitored(&self) -> impl Iterator<Item = &str> {
        self.watch.detectors.keys().map(|id| &**id)
    }

    fn my_record(&self) -> &MemberRecord {
        // invariant: the table always holds this node's own record (never forgotten)
        &self
            .table
            .get(&self.me)
            .expect("own record is always present")
            .record
    }

    // ----------------------------------------------------------------- inputs

    /// When [`Node::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Duration {
        let next = self.timers.next_heartbeat.min(self.timers.next_tick);
        // wake exactly when a lease runs out, so quorum and leadership end on time
        self.lease
            .next_change(self.clock, self.lease_renew())
            .map_or(next, |t| t.min(next))
    }

    /// Runs whatever is due at `now`: heartbeats, a gossip round, detection, conviction,
    /// quorum decisions, seed contact, tombstone collection.
    pub fn handle_timeout(&mut self, now: Duration, out: &mut impl Output) {
        // how late this call is for the deadline this node asked for
        let due = self.timers.next_heartbeat.min(self.timers.next_tick);
        self.note_own_lateness(now, now.saturating_sub(due));
        self.clock = self.clock.max(now);
        if let Some(last) = self.timers.last_timeout {
            if now.saturating_sub(last) > self.config.local_pause_guard {
                // This process was not scheduled for a while: the silence it measured says
                // nothing about its peers.
                self.forgive_own_pause(now);
            }
        }
        self.timers.last_timeout = Some(now);
        self.rejoin_if_due(now, out);
        if !self.started {
            self.started = true;
            self.refresh_quorum(out);
        }
        if self.left {
            self.timers.next_heartbeat = now + self.config.heartbeat_interval * 3600;
            self.timers.next_tick = now + self.config.gossip_interval;
            self.gossip_round(now, out);
            return;
        }
        if now >= self.timers.next_heartbeat {
            self.timers.next_heartbeat = now + self.config.heartbeat_interval;
            self.send_heartbeats(now, out);
        }
        self.lease_tick(now, out);
        self.refresh_quorum(out);
        if now >= self.timers.next_tick {
            self.timers.next_tick = now + self.config.gossip_interval;
            self.check_subjects(now, out);
            self.refresh_reach(now, out);
            self.witness(now, out);
            self.convict(now, out);
            self.decide(now, out);
            self.contact_seeds(now, out);
            self.collect_tombstones(now);
            self.gossip_round(now, out);
        }
    }

    /// Handles one datagram from `from` that nothing vouches for (an insecure cluster): its
    /// sender counts as a member only if `from` is the address this table holds for it,
    /// otherwise this node's answers to it are bounded by its size (see the module docs,
    /// "Answers"). A datagram that does not decode is dropped and counted; the node's state
    /// is unchanged.
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut impl Output,
    ) -> Result<(), DecodeError> {
        self.receive(now, from, datagram, false, out)
    }

    /// Handles one datagram the runtime authenticated as a member's: opened under the
    /// cluster key and not a replay. Its sender counts as a member whatever address it came
    /// from; otherwise as [`Node::handle_datagram`].
    pub fn handle_authenticated_datagram(
        &mut self,
        now: Duration,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut impl Output,
    ) -> Result<(), DecodeError> {
        self.receive(now, from, datagram, true, out)
    }
}

#[cfg(test)]
mod departed_tests;
#[cfg(test)]
mod generation_tests;
#[cfg(test)]
mod id_tests;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod seats_tests;
#[cfg(test)]
mod tests;
