//! [`Node`]: one member's protocol state machine.
//!
//! Inputs: datagrams ([`Node::handle_datagram`]), timeouts ([`Node::handle_timeout`]) and
//! operator commands ([`Node::leave`], [`Node::force_remove`], [`Node::set_signals`]), each
//! with the current time. Outputs: datagrams and [`Event`]s through an [`Output`].
//!
//! The submodules split the work: `table` keeps the member table and its indexes,
//! `detect` runs heartbeats, phi, accusations and conviction, `sync` does joins and
//! anti-entropy, `decide` takes the quorum-side decisions (admission, eviction, leader).
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

mod decide;
mod departed;
mod detect;
mod generation;
mod lease;
mod reach;
mod seats;
mod sync;
mod table;
mod witness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::codec::{self, Message, Sender, Update};
use crate::config::Config;
use crate::detector::PhiDetector;
use crate::error::{CommandError, ConfigError, DecodeError};
use crate::gossip::BroadcastQueue;
use crate::health;
use crate::member::{HealthSignals, Liveness, MemberRecord, Metadata, NodeId, Status};
use crate::view::{ClusterView, MemberView};

use detect::Suspicion;
pub use generation::MAX_GENERATION_AHEAD;
use table::{Change, Table};

/// Where a record came from: it decides whether the change is spread as news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Decided by this node.
    Local,
    /// Heard through gossip (rumor mongering: pass it on).
    Gossip,
    /// Received through anti-entropy or a join answer (repair: do not re-broadcast).
    Sync,
}

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
    /// bytes than it sent (see the module docs, "Answers").
    pub answers_withheld: u64,
}

/// One member's protocol state machine. See the module docs.
pub struct Node {
    config: Config,
    cluster: u32,
    me: NodeId,
    table: Table,
    queue: BroadcastQueue,
    detectors: HashMap<Arc<str>, PhiDetector>,
    subjects_epoch: u64,
    subjects_at: Option<Duration>,
    my_observers: Vec<Arc<str>>,
    observers_epoch: u64,
    suspicions: HashMap<NodeId, Suspicion>,
    /// Whether the sender of the datagram being handled is ALIVE in this node's view: only
    /// then are the SUSPECT records it carries believed.
    sender_credible: bool,
    /// Whether the sender of the datagram being handled holds a seat (voter or joining) in
    /// this node's view, and its id (none for a join): a join, or a member without a seat
    /// gossiping about itself, cannot make itself a voter by saying so.
    sender_seated: bool,
    sender_id: Option<NodeId>,
    /// Direct probes awaiting an answer: when sent, and the nonce the answer must echo.
    probes: HashMap<Arc<str>, (Duration, u64)>,
    /// Suspects this node stands witness for (see `node::witness`).
    witnesses: HashMap<Arc<str>, witness::Witness>,
    /// Watched voters whose phi passed half the threshold: not counted as reachable.
    doubted: std::collections::BTreeSet<Arc<str>>,
    /// Voters counted for quorum on evidence of contact (see `node::reach`).
    reach: reach::Reach,
    seeds: Vec<SocketAddr>,
    /// When this node may found a cluster if it still knows no voter (see `decide`).
    bootstrap_at: Option<Duration>,
    /// Whether this node has received a table (a join answer or a sync) or founded the
    /// cluster: until then its view is partial and it claims no quorum.
    synced: bool,
    rng: SmallRng,
    next_heartbeat: Duration,
    next_tick: Duration,
    next_seed_contact: Duration,
    last_timeout: Option<Duration>,
    /// Local health (Lifeguard's "local health multiplier"): how many recent timeouts of
    /// this node ran late, 0 to 8; see `node::detect`.
    local_health: u32,
    /// When `local_health` last changed.
    local_health_at: Duration,
    last_sync: Option<Duration>,
    /// Where the next table transfer too large for one answer starts (see `sync`).
    sync_cursor: usize,
    hb_seq: u64,
    stats: Stats,
    quorum: bool,
    /// Leader leases: who leads, and whether quorum is current (see `node::lease`).
    lease: lease::Lease,
    /// The time of the input being handled (the node reads no clock of its own).
    clock: Duration,
    /// Bytes this node may still send while it handles a datagram from a sender not known
    /// as a member (`None`: no limit). See the module docs, "Answers".
    answer_budget: Option<usize>,
    /// When a voter last turned SUSPECT here: convictions wait until suspicions settle.
    last_voter_suspected: Option<Duration>,
    leader: Option<NodeId>,
    left: bool,
    started: bool,
    /// When this node (this process life) was created.
    born: Duration,
    /// Its generation then: with `born`, its idea of the wall clock (see `node::generation`).
    start_generation: u64,
    /// When it last came back with a new generation, and a rejoin waiting for the interval.
    last_rejoin: Option<Duration>,
    pending_rejoin: Option<generation::PendingRejoin>,
    /// Generations of departed members whose tombstones were collected.
    departed: departed::Departed,
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
        let meta_len = metadata_len_with_any_signals(&identity.meta);
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
            start_generation: identity.generation,
            last_rejoin: None,
            pending_rejoin: None,
            departed: Default::default(),
            cluster: codec::cluster_id(&identity.cluster),
            me: identity.id,
            table,
            queue: BroadcastQueue::new(),
            detectors: HashMap::new(),
            subjects_epoch: u64::MAX,
            subjects_at: None,
            my_observers: Vec::new(),
            observers_epoch: u64::MAX,
            suspicions: HashMap::new(),
            sender_credible: true,
            sender_seated: true,
            sender_id: None,
            probes: HashMap::new(),
            witnesses: HashMap::new(),
            doubted: Default::default(),
            reach: Default::default(),
            seeds,
            synced: bootstrap_at.is_some(),
            bootstrap_at,
            rng,
            next_heartbeat: first_beat,
            next_tick: first_tick,
            next_seed_contact: now,
            last_timeout: None,
            local_health: 0,
            local_health_at: Duration::ZERO,
            last_sync: None,
            sync_cursor: 0,
            hb_seq: 0,
            stats: Stats::default(),
            quorum: false,
            lease: Default::default(),
            clock: now,
            answer_budget: None,
            last_voter_suspected: None,
            leader: None,
            left: false,
            started: false,
            born: now,
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
        self.local_health
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
        self.detectors.keys().map(|id| &**id)
    }

    fn my_record(&self) -> &MemberRecord {
        // invariant: the table always holds this node's own record (never forgotten)
        &self
            .table
            .get(&self.me)
            .expect("own record is always present")
            .record
    }

    fn sender(&self) -> Sender {
        let me = self.my_record();
        Sender {
            id: me.id.to_string(),
            generation: me.generation,
            incarnation: me.incarnation,
            summary: self.table.summary() as u32,
        }
    }

    // ----------------------------------------------------------------- inputs

    /// When [`Node::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Duration {
        let next = self.next_heartbeat.min(self.next_tick);
        // wake exactly when a lease runs out, so quorum and leadership end on time
        self.lease
            .next_change(self.clock, self.lease_renew())
            .map_or(next, |t| t.min(next))
    }

    /// Runs whatever is due at `now`: heartbeats, a gossip round, detection, conviction,
    /// quorum decisions, seed contact, tombstone collection.
    pub fn handle_timeout(&mut self, now: Duration, out: &mut impl Output) {
        // how late this call is for the deadline this node asked for
        let due = self.next_heartbeat.min(self.next_tick);
        self.note_own_lateness(now, now.saturating_sub(due));
        self.clock = self.clock.max(now);
        if let Some(last) = self.last_timeout {
            if now.saturating_sub(last) > self.config.local_pause_guard {
                // This process was not scheduled for a while: the silence it measured says
                // nothing about its peers.
                self.forgive_own_pause(now);
            }
        }
        self.last_timeout = Some(now);
        self.rejoin_if_due(now, out);
        if !self.started {
            self.started = true;
            self.refresh_quorum(out);
        }
        if self.left {
            self.next_heartbeat = now + self.config.heartbeat_interval * 3600;
            self.next_tick = now + self.config.gossip_interval;
            self.gossip_round(now, out);
            return;
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            self.send_heartbeats(now, out);
        }
        self.lease_tick(now, out);
        self.refresh_quorum(out);
        if now >= self.next_tick {
            self.next_tick = now + self.config.gossip_interval;
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

    fn receive(
        &mut self,
        now: Duration,
        from: SocketAddr,
        datagram: &[u8],
        authenticated: bool,
        out: &mut impl Output,
    ) -> Result<(), DecodeError> {
        self.clock = self.clock.max(now);
        self.stats.bytes_received += datagram.len() as u64;
        let msg = match codec::decode(self.cluster, self.config.max_datagram, datagram) {
            Ok(m) => m,
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(e);
            }
        };
        self.stats.messages_received += 1;
        if self.left {
            return Ok(());
        }
        if msg
            .sender()
            .is_some_and(|s| s.generation > self.generation_limit())
        {
            self.stats.future_generations += 1;
            return Ok(()); // forged or from a host whose clock is far ahead: nothing to believe
        }
        let member = authenticated || self.sent_by_member(from, &msg);
        self.answer_budget = (!member).then_some(datagram.len());
        self.on_message(now, from, msg, out);
        self.answer_budget = None;
        Ok(())
    }

    /// Whether `from` is the gossip address this table holds for the sender `msg` names (a
    /// join: the joiner), a member that has not left or been evicted.
    fn sent_by_member(&self, from: SocketAddr, msg: &Message) -> bool {
        let id = match msg {
            Message::Join { record, .. } => &*record.id,
            _ => match msg.sender() {
                Some(s) => s.id.as_str(),
                None => return false,
            },
        };
        self.table.get(id).is_some_and(|e| {
            e.record.addr == from
                && !matches!(e.record.liveness, Liveness::Left | Liveness::Removed)
        })
    }

    fn on_message(&mut self, now: Duration, from: SocketAddr, msg: Message, out: &mut impl Output) {
        self.sender_credible = true;
        // Until this node knows a voter it takes the first table it is given (its seeds').
        self.sender_id = msg.sender().map(|s| s.id.clone());
        self.sender_seated = self.table.voters() == 0
            || msg.sender().is_some_and(|s| {
                self.table.get(&s.id).is_some_and(|e| {
                    e.record.generation == s.generation
                        && (e.record.voter || e.record.joining)
                        && e.record.is_live()
                })
            });
        if let Some(sender) = msg.sender() {
            if sender.id == self.me {
                return; // our own echo, or an impostor: nothing to learn
            }
            self.sender_credible = false;
            if let Some(e) = self.table.get(&sender.id) {
                self.sender_credible = e.record.liveness == Liveness::Alive;
                if e.record.generation == sender.generation {
                    let id = e.record.id.clone();
                    self.reach.note_heard(&id, now);
                }
            }
            self.note_sender(now, from, sender, out);
            self.tell_the_departed(now, from, sender, out);
        }
        match msg {
            Message::Heartbeat {
                from: sender,
                seq,
                updates,
            } => {
                self.stats.heartbeats_received += 1;
                self.on_heartbeat(now, &sender, seq);
                self.apply_updates(now, updates, out);
            }
            Message::Gossip { updates, .. } => self.apply_updates(now, updates, out),
            Message::Join { record, .. } => self.on_join(now, from, record, out),
            Message::SyncDigest { ranges, reply, .. } => {
                self.on_sync_digest(now, from, &ranges, reply, out)
            }
            Message::SyncRecords { records, .. } => {
                self.synced = true;
                for r in records {
                    self.apply_record(now, &r, Source::Sync, out);
                }
            }
            Message::Probe { nonce, .. } => {
                let ack = Message::ProbeAck {
                    from: self.sender(),
                    nonce,
                };
                // to the datagram's source, never to an address named in a message
                self.send(from, &ack, out);
            }
            Message::ProbeAck {
                from: sender,
                nonce,
            } => self.on_probe_ack(now, &sender, nonce),
            Message::LeaseRequest {
                from: sender,
                round,
                valid_ms,
                confirmed,
                epoch,
                digest,
            } => {
                let request = lease::Request {
                    round,
                    valid_ms,
                    confirmed,
                    epoch,
                    digest: digest.map(|d| d.0),
                };
                self.on_lease_request(now, from, &sender, request, out)
            }
            Message::LeaseGrant {
                from: sender,
                round,
                granted,
                epoch,
                digest,
            } => {
                let configuration = (epoch, digest.map(|d| d.0));
                self.on_lease_grant(now, &sender, round, granted, configuration, out)
            }
        }
    }

    /// Publishes new self-measured health signals (gossiped only when a signal moves by a
    /// 5 % step).
    pub fn set_signals(&mut self, signals: HealthSignals) {
        let q = signals.quantized();
        if self.my_record().meta.signals != q {
            self.update_own_meta(|m| m.signals = q);
        }
    }

    /// Sets (or with `None` removes) a free key/value in this node's metadata. Refused, with
    /// nothing changed, when the metadata would exceed `cluster.limits.max-metadata-bytes`.
    pub fn set_tag(&mut self, key: &str, value: Option<&str>) -> Result<(), CommandError> {
        let current = self.my_record().meta.tags.get(key).map(String::as_str);
        if current == value {
            return Ok(());
        }
        let mut meta = Metadata::clone(&self.my_record().meta);
        match value {
            Some(v) => {
                meta.tags.insert(key.to_string(), v.to_string());
            }
            None => {
                meta.tags.remove(key);
            }
        }
        let size = metadata_len_with_any_signals(&meta);
        if size > self.config.max_metadata_bytes {
            return Err(CommandError::MetadataTooLarge {
                size,
                max: self.config.max_metadata_bytes,
            });
        }
        self.update_own_meta(move |m| *m = meta);
        Ok(())
    }

    fn update_own_meta(&mut self, f: impl FnOnce(&mut Metadata)) {
        let mut rec = self.my_record().clone();
        f(Arc::make_mut(&mut rec.meta));
        rec.meta_version = rec.meta_version.saturating_add(1);
        // time does not matter for our own record: it is never failed or tombstoned locally
        let now = self.last_timeout.unwrap_or_default();
        if self.table.merge(now, &rec).is_some() {
            self.enqueue(Update::Record(rec));
        }
    }

    /// Leaves the cluster gracefully: every member marks this one LEFT, no failure counted.
    /// Keep calling [`Node::handle_timeout`] for a few gossip rounds before exiting so the
    /// news spreads.
    pub fn leave(&mut self, now: Duration, out: &mut impl Output) {
        self.clock = self.clock.max(now);
        if self.left {
            return;
        }
        let mut rec = self.my_record().clone();
        rec.liveness = Liveness::Left;
        rec.voter = false;
        rec.joining = false;
        self.apply_record(now, &rec, Source::Local, out);
        self.left = true;
        self.pending_rejoin = None;
        self.detectors.clear();
        self.suspicions.clear();
        self.probes.clear();
        // tell a good number of members directly, so the leave does not wait for gossip
        let targets = self.random_members(32);
        let update = Update::Record(rec);
        for to in targets {
            let msg = Message::Gossip {
                from: self.sender(),
                updates: vec![update.clone()],
            };
            self.send(to, &msg, out);
        }
        self.refresh_quorum(out);
    }

    /// Removes a member by operator decision, without quorum or evidence. Unsafe: removing
    /// a live member on one side of a partition can leave two sides each believing they hold
    /// quorum. Use only for members known to be gone for good.
    pub fn force_remove(
        &mut self,
        now: Duration,
        id: &str,
        out: &mut impl Output,
    ) -> Result<(), CommandError> {
        if self.left {
            return Err(CommandError::HasLeft);
        }
        if id == self.me {
            return Err(CommandError::IsSelf);
        }
        let mut rec = self
            .record(id)
            .cloned()
            .ok_or_else(|| CommandError::UnknownMember(id.to_string()))?;
        let seated = rec.voter || rec.joining;
        rec.liveness = Liveness::Removed;
        rec.voter = false;
        rec.joining = false;
        self.apply_record(now, &rec, Source::Local, out);
        // With a leader, the removal waits for it to take the change into its next
        // configuration. Without one, the configuration still counts the removed seat, and
        // members that lost a majority of their voters for good could never elect a leader
        // again, however many of the dead the operator removed. So the operator's word is
        // also a configuration here: the table's seats, stamped as the next number. The
        // others adopt it when this node stands (newer, and their tables hold the same
        // seats once the removal spread).
        if seated && !self.has_quorum() && self.table.seats.adopted().0 > 0 {
            self.table.seats.stamp_confirmed();
        }
        Ok(())
    }

    // ----------------------------------------------------------------- view

    /// A snapshot of this node's view (tombstones excluded).
    pub fn view(&self, now: Duration) -> ClusterView {
        let (has_quorum, leader) = self.quorum_at(now);
        let members = self
            .table
            .iter()
            .filter(|e| e.record.liveness != Liveness::Removed)
            .map(|e| self.member_view(now, e))
            .collect();
        ClusterView {
            self_id: self.me.clone(),
            // computed at `now`, not at the last input: a process that was frozen reports
            // the lease it holds now, not the one it held before the freeze
            has_quorum,
            leader,
            quorum_valid_for: if has_quorum {
                self.quorum_valid_for(now)
            } else {
                Duration::ZERO
            },
            voters: self.table.voters(),
            members,
        }
    }

    fn member_view(&self, now: Duration, e: &table::Entry) -> MemberView {
        let r = &e.record;
        let detector = self.detectors.get(&r.id);
        let is_me = *r.id == *self.me;
        let phi = match (detector, r.liveness) {
            _ if is_me => 0.0,
            (Some(d), _) => d.phi(now),
            (None, Liveness::Alive) => 0.0,
            (None, _) => self.config.phi_threshold,
        };
        let score = match r.liveness {
            Liveness::Alive | Liveness::Suspect => {
                health::score(phi, self.config.phi_threshold, r.meta.signals)
            }
            _ => 0,
        };
        let status = match r.liveness {
            Liveness::Alive if score < self.config.degraded_threshold => Status::Degraded,
            Liveness::Alive => Status::Healthy,
            Liveness::Suspect => Status::Suspect,
            Liveness::Failed | Liveness::Removed => Status::Failed,
            Liveness::Left => Status::Left,
        };
        let last_heartbeat = if is_me {
            Some(now)
        } else {
            detector.map(|d| d.last_arrival()).max(e.last_heard())
        };
        MemberView {
            id: r.id.to_string(),
            addr: r.addr,
            generation: r.generation,
            incarnation: r.incarnation,
            status,
            health_score: score,
            phi: (phi * 1000.0).round() / 1000.0,
            last_heartbeat,
            role: r.meta.role.clone(),
            zone: r.meta.zone.clone(),
            rack: r.meta.rack.clone(),
            http_addr: r.meta.http_addr.clone(),
            voter: r.voter,
            monitored: detector.is_some(),
            signals: r.meta.signals,
            tags: r.meta.tags.clone(),
        }
    }

    // ----------------------------------------------------------------- shared plumbing

    fn send(&mut self, to: SocketAddr, msg: &Message, out: &mut impl Output) {
        let bytes = codec::encode(self.cluster, msg);
        self.send_encoded(to, msg.kind(), bytes, out);
    }

    /// Whether a datagram of `len` bytes fits what this node may still send in answer to
    /// the datagram being handled (see the module docs, "Answers").
    fn may_answer(&self, len: usize) -> bool {
        self.answer_budget.is_none_or(|left| len <= left)
    }

    /// Sends an encoded datagram, unless it exceeds the answer budget (then it is withheld
    /// and counted). Returns whether it went out.
    fn send_encoded(
        &mut self,
        to: SocketAddr,
        kind: &'static str,
        bytes: Vec<u8>,
        out: &mut impl Output,
    ) -> bool {
        if !self.may_answer(bytes.len()) {
            self.stats.answers_withheld += 1;
            return false;
        }
        if let Some(left) = &mut self.answer_budget {
            *left -= bytes.len();
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.max_datagram_sent = self.stats.max_datagram_sent.max(bytes.len() as u64);
        let counts = self.stats.sent_by_kind.entry(kind).or_default();
        counts.0 += 1;
        counts.1 += bytes.len() as u64;
        out.send(to, bytes);
        true
    }

    /// A join for `record`, padded to `cluster.transport.max-datagram` (see the module
    /// docs, "Answers").
    fn join_message(&self, record: MemberRecord) -> Message {
        Message::padded_join(self.cluster, record, self.config.max_datagram)
    }

    /// Queues news for gossip, within the configured bound.
    fn enqueue(&mut self, update: Update) {
        self.queue
            .push_capped(update, self.config.max_pending_updates);
    }

    /// Bytes left for piggybacked updates in `msg` (which has no updates yet).
    fn piggyback_budget(&self, msg: &Message) -> usize {
        let base = codec::encode(self.cluster, msg).len() + codec::SEQ_PREFIX_MAX;
        self.config.max_datagram.saturating_sub(base)
    }

    fn take_updates(&mut self, budget: usize) -> Vec<Update> {
        let limit = self.config.retransmit_limit(self.table.alive());
        let table = &self.table;
        self.queue.take(budget, limit, |u| match u {
            Update::Record(r) => table
                .get(&r.id)
                .is_some_and(|e| e.record.generation == r.generation),
            Update::Accuse {
                subject,
                generation,
                incarnation,
                ..
            } => table.get(subject).is_some_and(|e| {
                e.record.generation == *generation
                    && e.record.incarnation == *incarnation
                    && !e.record.liveness.is_terminal()
            }),
        })
    }

    /// Addresses of up to `n` distinct random live members other than this one.
    fn random_members(&mut self, n: usize) -> Vec<SocketAddr> {
        let others = self.table.rings().len() - usize::from(self.table.rings().contains(&self.me));
        let want = n.min(others);
        let mut picked: Vec<&str> = Vec::with_capacity(want);
        if others <= 4 * want {
            // few members: shuffle them all (ring arcs are too uneven to sample from)
            let mut all: Vec<&str> = self
                .table
                .rings()
                .members()
                .filter(|id| *id != self.me)
                .collect();
            all.sort_unstable();
            all.shuffle(&mut self.rng);
            picked.extend(all.into_iter().take(want));
        } else {
            // While many members are suspected (a partition, seen from either side), most
            // gossip sent to them is lost and spends the retransmissions that news needs on
            // this side: pick a suspect only one time in four. Never none, or a member
            // suspected by mistake would not hear the accusation it has to refute.
            let shun_suspects = self.reach.is_active();
            let mut tries = 0;
            while picked.len() < want && tries < want * 8 {
                tries += 1;
                let Some(id) = self.table.rings().random(self.rng.random()) else {
                    break;
                };
                if id == self.me || picked.contains(&id) {
                    continue;
                }
                if shun_suspects
                    && self
                        .table
                        .get(id)
                        .is_some_and(|e| e.record.liveness != Liveness::Alive)
                    && self.rng.random_range(0..4) != 0
                {
                    continue;
                }
                picked.push(id);
            }
        }
        picked
            .iter()
            .filter_map(|id| self.table.get(id))
            .map(|e| e.record.addr)
            .collect()
    }

    fn gossip_round(&mut self, _now: Duration, out: &mut impl Output) {
        if self.queue.is_empty() {
            return;
        }
        for to in self.random_members(self.config.gossip_fanout) {
            let empty = Message::Gossip {
                from: self.sender(),
                updates: Vec::new(),
            };
            let budget = self.piggyback_budget(&empty);
            let updates = self.take_updates(budget);
            if updates.is_empty() {
                break;
            }
            let msg = Message::Gossip {
                from: self.sender(),
                updates,
            };
            self.send(to, &msg, out);
        }
    }

    fn apply_updates(&mut self, now: Duration, updates: Vec<Update>, out: &mut impl Output) {
        for u in updates {
            match u {
                Update::Record(r) => {
                    self.apply_record(now, &r, Source::Gossip, out);
                }
                Update::Accuse {
                    subject,
                    generation,
                    incarnation,
                    by,
                } => {
                    self.on_accusation(now, &subject, generation, incarnation, &by, out);
                }
            }
        }
    }

    /// Merges a record, reacts to news about this node, spreads what changed (unless it came
    /// from anti-entropy, which repairs rather than announces) and emits events.
    fn apply_record(
        &mut self,
        now: Duration,
        incoming: &MemberRecord,
        source: Source,
        out: &mut impl Output,
    ) {
        if source != Source::Local && !self.admissible(now, incoming, source) {
            return;
        }
        if *incoming.id == *self.me && source != Source::Local {
            self.on_news_about_me(now, incoming, out);
            return;
        }
        // A SUSPECT is taken only from a sender this node sees ALIVE. When a partition heals,
        // the side that was cut off (suspected or convicted here) would otherwise make its
        // suspicions of this side's members, out of date, everyone's until each refutes.
        let suspect_unbelieved = source != Source::Local
            && incoming.liveness == Liveness::Suspect
            && !self.sender_credible;
        // Seats come from the leader's decisions, which anyone may relay; a member's word
        // about its own seat counts only if this node already gives it one (a restart).
        let seat_unbelieved = source != Source::Local
            && !self.sender_seated
            && (incoming.voter || incoming.joining)
            && self.sender_id.as_ref().is_none_or(|s| *s == *incoming.id);
        let believed;
        let incoming = if suspect_unbelieved || seat_unbelieved {
            let mut r = incoming.clone();
            if suspect_unbelieved {
                r.liveness = Liveness::Alive;
            }
            if seat_unbelieved {
                r.voter = false;
                r.joining = false;
            }
            believed = r;
            &believed
        } else {
            incoming
        };
        let learn = self.learns_departures(now, source);
        let Some(change) = self.table.merge_keeping(now, incoming, learn) else {
            return;
        };
        if change.old.is_none() && !change.new.is_live() {
            // A departure older than this node's table: remembered (so that replayed or
            // stale gossip cannot resurrect the member here) but not news.
            self.refresh_quorum(out);
            return;
        }
        if source != Source::Sync {
            self.enqueue(Update::Record(change.new.clone()));
        }
        self.after_change(now, &change, source == Source::Local, out);
    }

    /// Whether a record from the network is within bounds: metadata no larger than
    /// `cluster.limits.max-metadata-bytes`, a generation not far past this node's clock
    /// (`node::generation`) nor of a life whose tombstone was collected (`node::departed`),
    /// and room in the table if the member is new. Refusals are counted.
    fn admissible(&mut self, now: Duration, incoming: &MemberRecord, source: Source) -> bool {
        if codec::metadata_len(&incoming.meta) > self.config.max_metadata_bytes {
            self.stats.records_oversize += 1;
            return false;
        }
        if self.refuses_generation(incoming.generation) {
            return false;
        }
        if self.departed.refuses(&incoming.id, incoming.generation) {
            self.stats.stale_lives += 1;
            return false;
        }
        if (incoming.is_live() || self.learns_departures(now, source))
            && self.table.len() >= self.config.max_members
            && self.table.get(&incoming.id).is_none()
        {
            self.stats.members_refused += 1;
            return false;
        }
        true
    }

    /// Whether a record of an unknown member that already ended is kept rather than
    /// ignored: only from a table transfer (join answer, anti-entropy) during this node's
    /// first `cluster.eviction.tombstone-ttl`. A fresh (or restarted) node thereby learns the
    /// departures the cluster still remembers, so a replayed old record of a departed member
    /// cannot make it join again here. Older nodes keep ignoring them, so tombstones that
    /// were collected do not bounce back and forth between nodes.
    fn learns_departures(&self, now: Duration, source: Source) -> bool {
        source == Source::Sync && now.saturating_sub(self.born) < self.config.tombstone_ttl
    }

    fn after_change(
        &mut self,
        now: Duration,
        change: &Change,
        decided_here: bool,
        out: &mut impl Output,
    ) {
        let new = &change.new;
        let id: NodeId = new.id.to_string();
        let same_life = change
            .old
            .as_ref()
            .is_some_and(|o| o.generation == new.generation);
        match &change.old {
            None => out.event(Event::MemberJoined {
                id: id.clone(),
                generation: new.generation,
            }),
            Some(old) if old.generation != new.generation => {
                self.note_restart(&new.id, now);
                out.event(Event::MemberRejoined {
                    id: id.clone(),
                    generation: new.generation,
                })
            }
            _ => {}
        }
        if !same_life
            || change.old.as_ref().map(|o| (o.incarnation, o.liveness))
                != Some((new.incarnation, new.liveness))
        {
            // a new life or a new incarnation ends any suspicion of the old one
            if let Some(s) = self.suspicions.get(id.as_str()) {
                if (s.generation, s.incarnation) != (new.generation, new.incarnation)
                    || new.liveness.is_terminal()
                {
                    self.suspicions.remove(&id);
                }
            }
        }
        if !same_life {
            self.detectors.remove(id.as_str());
            self.probes.remove(id.as_str());
        }
        let old_liveness = change
            .old
            .as_ref()
            .filter(|_| same_life)
            .map(|o| o.liveness);
        let own_news = change.old.as_ref().is_none_or(|o| {
            (o.generation, o.incarnation, o.meta_version)
                < (new.generation, new.incarnation, new.meta_version)
        });
        if own_news && new.liveness == Liveness::Alive {
            self.reach.note_heard(&new.id, now);
        }
        if old_liveness != Some(new.liveness) {
            self.reach.note_liveness_change();
            match new.liveness {
                Liveness::Alive if old_liveness == Some(Liveness::Suspect) => {
                    out.event(Event::MemberRefuted {
                        id: id.clone(),
                        incarnation: new.incarnation,
                    })
                }
                Liveness::Suspect => {
                    if new.voter {
                        self.last_voter_suspected = Some(now);
                    }
                    let by = self
                        .suspicions
                        .get(id.as_str())
                        .and_then(|s| s.accusers.iter().next().cloned())
                        .unwrap_or_default();
                    out.event(Event::MemberSuspected { id: id.clone(), by });
                }
                Liveness::Failed => {
                    self.stats.failures_detected += 1;
                    let silent_for = self
                        .detectors
                        .get(id.as_str())
                        .map(|d| now.saturating_sub(d.last_arrival()));
                    out.event(Event::MemberFailed {
                        id: id.clone(),
                        generation: new.generation,
                        silent_for,
                        decided_here,
                    });
                }
                Liveness::Left => out.event(Event::MemberLeft { id: id.clone() }),
                Liveness::Removed => out.event(Event::MemberEvicted {
                    id: id.clone(),
                    decided_here,
                }),
                Liveness::Alive => {}
            }
        }
        if new.liveness.is_terminal() {
            self.detectors.remove(id.as_str());
        }
        self.refresh_quorum(out);
    }

    /// Someone says something about this node: refute a suspicion, come back after a
    /// conviction, adopt a voter seat.
    fn on_news_about_me(&mut self, now: Duration, news: &MemberRecord, out: &mut impl Output) {
        let mine = self.my_record().clone();
        if news.generation > mine.generation {
            out.event(Event::IdConflict {
                id: self.me.clone(),
                generation: news.generation,
            });
            self.request_rejoin(
                now,
                news.generation.saturating_add(1),
                news.voter,
                "another process used this id with a newer generation",
                out,
            );
            return;
        }
        if news.generation < mine.generation {
            return;
        }
        match news.liveness {
            Liveness::Failed | Liveness::Removed | Liveness::Left => {
                let keep_voter = mine.voter && news.liveness == Liveness::Failed;
                let reason = match news.liveness {
                    Liveness::Failed => "declared failed",
                    Liveness::Removed => "evicted",
                    _ => "reported as left",
                };
                self.request_rejoin(
                    now,
                    mine.generation.saturating_add(1),
                    keep_voter,
                    reason,
                    out,
                );
            }
            Liveness::Alive | Liveness::Suspect => {
                let refute = news.incarnation > mine.incarnation
                    || (news.incarnation == mine.incarnation && news.liveness == Liveness::Suspect);
                let mut rec = mine.clone();
                rec.voter |= news.voter;
                rec.joining = (rec.joining || news.joining) && !rec.voter;
                if refute {
                    rec.incarnation = news.incarnation.saturating_add(1);
                    self.stats.refutations += 1;
                }
                if rec != mine {
                    self.apply_record(now, &rec, Source::Local, out);
                }
            }
        }
    }

    fn rejoin(
        &mut self,
        now: Duration,
        generation: u64,
        voter: bool,
        reason: &'static str,
        out: &mut impl Output,
    ) {
        // The suspicions this node raised or relayed in the life the cluster just ended
        // (typically on the far side of a partition that has healed) are void: once the new
        // life is ALIVE elsewhere they would be believed, and make members SUSPECT that the
        // cluster has been hearing from all along (the heal dip). A restarted process has
        // none either.
        self.suspicions.clear();
        self.witnesses.clear();
        self.probes.clear();
        self.queue.retain(|u| !matches!(u, Update::Accuse { .. }));
        self.forgive_own_pause(now);
        // Likewise the members it holds SUSPECT: its table transfers would spread them. Its
        // count of reachable voters is then unfounded until a table transfer arrives (the
        // answer to the joins sent below, one round trip away once connected), so it claims
        // no quorum until then: a node still cut off must not count the far side back in.
        if self.table.clear_suspects(now) > 0 {
            self.reach.note_liveness_change();
        }
        self.synced = false;
        let mut rec = self.my_record().clone();
        rec.generation = generation;
        rec.incarnation = 0;
        rec.liveness = Liveness::Alive;
        rec.voter = voter;
        rec.joining = false;
        self.apply_record(now, &rec, Source::Local, out);
        self.refresh_quorum(out);
        out.event(Event::SelfRejoined { generation, reason });
        // announce the new life to seeds and a few members at once
        self.next_seed_contact = now;
        let join = self.join_message(rec);
        for to in self.random_members(self.config.gossip_fanout) {
            self.send(to, &join, out);
        }
    }
}

/// The encoded size of `meta` with the largest signals it can carry: signals change without
/// a check (`Node::set_signals`), so the room for them is kept when the rest is set.
fn metadata_len_with_any_signals(meta: &Metadata) -> usize {
    let mut m = meta.clone();
    let s = &mut m.signals;
    (s.cpu_pct, s.mem_pct, s.error_pct, s.pressure_pct) = (u8::MAX, u8::MAX, u8::MAX, u8::MAX);
    (s.lag_ms, s.latency_ms) = (u16::MAX, u16::MAX);
    codec::metadata_len(&m)
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
