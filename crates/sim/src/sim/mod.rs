//! [`Sim`]: N protocol cores on a virtual clock and a seeded virtual network.
//!
//! The loop pops the earliest item of the agenda (a datagram delivery, a node's timer, a
//! resume or stop), advances the clock to it and calls the node. What the node emits goes
//! straight back into the agenda through the [`Network`]. Every `step` of virtual time the
//! safety invariants are checked and trackers that every live member satisfied complete.
//! Nothing here reads the wall clock, and every random draw is seeded from the run seed.
//!
//! # Layout
//! - `mod.rs` (here): the configuration, the counters, the agenda's items, and the driving:
//!   construction, accessors, `run_until`/`wait_for`, dispatch, delivery, timers and
//!   `after_call`, which routes a node's effects (and checks each event as it happens).
//! - `checks`: the safety invariants checked every step (two leaders, split brain, the
//!   FAILED ledger, recovery deadlines), the cut and recovery bookkeeping they read, and
//!   tracker completion.
//! - `tests`: unit tests of those checks, and of skewed clocks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use membership::{Effects, Event, Identity, Metadata, Node, RecordPool};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::event_loop::{self, Drive, EventLoop};
use crate::invariants::{FailedLedger, Recovery, Violation};
use crate::network::{Fate, Network, NetworkConfig};
use crate::process::{index_of, node_addr, Process, State};
use crate::tracker::{Predicate, Tracker, TrackerId};

mod checks;

/// Everything a run depends on.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes started at the beginning (indices `0..nodes`).
    pub nodes: usize,
    /// The run seed: network draws, node RNGs and start offsets all derive from it.
    pub seed: u64,
    /// The protocol configuration every node runs.
    pub core: membership::Config,
    /// Latency, jitter and loss.
    pub network: NetworkConfig,
    /// Virtual time between invariant checks.
    pub step: Duration,
    /// Zones the nodes are spread over (node `i` is in zone `z{i % zones}`).
    pub zones: usize,
    /// Initial nodes start at uniform random offsets in `[0, start_spread)`.
    pub start_spread: Duration,
    /// How long a leaving node keeps running after `leave` before it stops.
    pub leave_linger: Duration,
    /// How long after a cut two partition groups may both hold quorum (counted from the
    /// `partition` call; past it, a quorum holder in two groups is a split brain).
    pub quorum_overlap_bound: Duration,
    /// After a heal, every live node connected to a majority of its voters must have held
    /// quorum within this.
    pub recovery_bound: Duration,
    /// After a resume, the same within this, counted from the first step at which a
    /// majority of the live nodes shows the resumed node ALIVE at its current generation.
    pub resume_recovery_bound: Duration,
    /// Maximum clock-rate error: node `i` runs its clock at a rate drawn from the seed in
    /// `[1 - clock_skew, 1 + clock_skew]` (0: every clock exact).
    pub clock_skew: f64,
    /// Note violations and keep running instead of stopping at the first one (to measure a
    /// core that is known to break an invariant); see [`Sim::noted`].
    pub keep_going: bool,
}

impl SimConfig {
    /// Defaults for `nodes` nodes: `Config::for_cluster_size`, a quiet 1 ms LAN, three zones,
    /// a check every 20 ms (100 ms above 100 nodes, to keep large runs fast).
    pub fn new(nodes: usize, seed: u64) -> Self {
        let core = membership::Config::for_cluster_size(nodes);
        SimConfig {
            nodes,
            seed,
            core,
            network: NetworkConfig::default(),
            step: if nodes <= 100 {
                Duration::from_millis(20)
            } else {
                Duration::from_millis(100)
            },
            zones: 3,
            start_spread: Duration::ZERO,
            leave_linger: Duration::from_millis(500),
            quorum_overlap_bound: Duration::from_secs(5),
            recovery_bound: Duration::from_secs(10),
            resume_recovery_bound: Duration::from_secs(2),
            clock_skew: 0.0,
            keep_going: false,
        }
    }

    /// Replaces the protocol configuration.
    pub fn with_core(mut self, core: membership::Config) -> Self {
        self.core = core;
        self
    }
}

/// The simulator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The protocol configuration was rejected (nothing ran).
    #[error("invalid protocol configuration: {0}")]
    Config(#[from] membership::ConfigError),
}

/// Counters over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams handed to a running node.
    pub delivered: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Datagrams dropped by a partition.
    pub cut: u64,
    /// Datagrams that arrived at a crashed or stopped process.
    pub to_dead: u64,
    /// Datagrams to an address no process has.
    pub unroutable: u64,
    /// Largest datagram sent.
    pub max_message_bytes: usize,
    /// `MemberFailed` events, all observers.
    pub failures_detected: u64,
    /// `MemberFailed` events about a member that was running at that generation and not
    /// excused by a fault (see [`Process::excused_until`]).
    pub false_positives: u64,
    /// The first few false positives, as "at observer: member@generation".
    pub false_positive_examples: Vec<String>,
    /// Events by kind, all observers.
    pub events: BTreeMap<&'static str, u64>,
    /// Invariant checks run.
    pub checks: u64,
    /// Most live nodes that at one step held quorum and named themselves leader.
    pub max_self_leaders: usize,
    /// Convictions and evictions a minority decided across a cut within the lease bound after
    /// it (allowed: its lease may still be current; see `check_minority_decision`).
    pub minority_decisions_within_bound: u64,
    /// Longest stretch (at step resolution) during which two partition groups both held a
    /// quorum holder.
    pub both_sides_quorum: Duration,
}

/// The two-way partition in force, as the invariants see it.
#[derive(Debug, Clone)]
pub(crate) struct Cut {
    /// When the `partition` call was made.
    pub(crate) at: Duration,
    /// Per node: `Some((voters in its group, voters))` of its table at the cut, when its
    /// group held at most half of them (a minority, which must decide nothing about the
    /// other groups).
    pub(crate) minority: Vec<Option<(usize, usize)>>,
    /// Since when two groups both hold a quorum holder, if they do.
    pub(crate) both_since: Option<Duration>,
}

/// What the agenda holds.
#[derive(Debug)]
enum Pending {
    Start {
        node: usize,
    },
    Deliver {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        life: u64,
    },
    Resume {
        node: usize,
        life: u64,
    },
    Stop {
        node: usize,
        life: u64,
    },
}

/// The simulator. See the module docs.
#[derive(Debug)]
pub struct Sim {
    pub(crate) config: SimConfig,
    /// The clock, the agenda and the network (shared with other harnesses).
    event_loop: EventLoop<Pending>,
    pub(crate) procs: Vec<Process>,
    /// One handler call's datagrams and events, routed by `after_call`.
    outbox: Effects,
    pub(crate) trackers: Vec<Tracker>,
    active: Vec<usize>,
    pub(crate) ledger: FailedLedger,
    pub(crate) cut: Option<Cut>,
    pub(crate) recoveries: Vec<Recovery>,
    violation: Option<Violation>,
    noted: BTreeMap<&'static str, (u64, Violation)>,
    index_by_id: HashMap<String, usize>,
    pub(crate) counters: Counters,
    /// Shared by every node: the N² records the nodes hold are nearly all equal, and each
    /// distinct one is held once (see `membership::pool`).
    records: RecordPool,
}

/// [`Sim`] as the [`EventLoop`]'s harness (a private view: the agenda's items are the
/// simulator's own business).
struct Driver<'a>(&'a mut Sim);

impl Drive for Driver<'_> {
    type Item = Pending;
    type Stop = Violation;

    fn event_loop(&mut self) -> &mut EventLoop<Pending> {
        &mut self.0.event_loop
    }

    fn step(&self) -> Duration {
        self.0.config.step
    }

    fn dispatch(&mut self, item: Pending) -> Result<(), Violation> {
        self.0.dispatch(item);
        match self.0.violation.take() {
            Some(v) => self.0.fail(v),
            None => Ok(()),
        }
    }

    /// The safety checks of one step.
    fn on_step(&mut self) -> Result<(), Violation> {
        self.0.check()
    }
}

/// SplitMix64: derives independent seeds from the run seed (public so that other harnesses
/// on the same network model, such as `crates/peers`, draw the same seeds).
pub fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sim {
    /// Builds the cluster and starts nodes `0..config.nodes` (now, or at their offset within
    /// `start_spread`).
    pub fn new(config: SimConfig) -> Result<Sim, SimError> {
        config.core.validate()?;
        let mut start_rng = SmallRng::seed_from_u64(derive_seed(config.seed, 1, 0));
        let network = Network::new(config.network, config.nodes, derive_seed(config.seed, 2, 0));
        let mut sim = Sim {
            event_loop: EventLoop::new(network, config.step),
            procs: Vec::with_capacity(config.nodes),
            outbox: Effects::default(),
            trackers: Vec::new(),
            active: Vec::new(),
            ledger: FailedLedger::default(),
            cut: None,
            recoveries: Vec::new(),
            violation: None,
            noted: BTreeMap::new(),
            index_by_id: HashMap::new(),
            counters: Counters::default(),
            records: RecordPool::default(),
            config,
        };
        for i in 0..sim.config.nodes {
            sim.add_slot();
            let offset = if sim.config.start_spread.is_zero() {
                Duration::ZERO
            } else {
                sim.config.start_spread.mul_f64(start_rng.random::<f64>())
            };
            if offset.is_zero() {
                sim.start(i);
            } else {
                sim.event_loop.schedule(offset, Pending::Start { node: i });
            }
        }
        Ok(sim)
    }

    /// Adds an empty process slot and returns its index.
    pub(crate) fn add_slot(&mut self) -> usize {
        let i = self.procs.len();
        let mut p = Process::new(i);
        if self.config.clock_skew > 0.0 {
            let mut rng = SmallRng::seed_from_u64(derive_seed(self.config.seed, 0xc10c, i as u64));
            let skew = self.config.clock_skew.min(0.5);
            p.clock_rate = 1.0 + skew * (2.0 * rng.random::<f64>() - 1.0);
        }
        self.index_by_id.insert(p.id.clone(), i);
        self.procs.push(p);
        self.event_loop.network.ensure(i);
        i
    }

    /// The configuration of this run.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Current virtual time.
    pub fn now(&self) -> Duration {
        self.event_loop.now
    }

    /// Number of process slots (started or not, alive or not).
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether there are no process slots.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Process slot `i`.
    pub fn process(&self, i: usize) -> &Process {
        &self.procs[i]
    }

    /// The protocol core of node `i`, if it is running or paused.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.procs.get(i).and_then(|p| p.node.as_ref())
    }

    /// The node index of id `id`.
    pub fn index_of_id(&self, id: &str) -> Option<usize> {
        self.index_by_id.get(id).copied()
    }

    /// Indices of the live (running, not paused) nodes.
    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&i| self.procs[i].is_live())
            .collect()
    }

    /// Node `i`'s local clock reading now (what its core sees).
    pub fn local_now(&self, i: usize) -> Duration {
        self.procs[i].local_time(self.event_loop.now)
    }

    /// Number of live nodes.
    pub fn live_len(&self) -> usize {
        self.procs.iter().filter(|p| p.is_live()).count()
    }

    /// Run counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The network (for inspection).
    pub fn network(&self) -> &Network {
        &self.event_loop.network
    }

    /// The network, for the faults.
    pub(crate) fn network_mut(&mut self) -> &mut Network {
        &mut self.event_loop.network
    }

    /// Bytes sent so far by each slot.
    pub fn bytes_sent(&self) -> Vec<u64> {
        self.procs.iter().map(|p| p.bytes_sent).collect()
    }

    /// Every live node sees exactly the live nodes Alive.
    pub fn all_see_all_alive(&self) -> bool {
        let live = self.live_len();
        self.procs
            .iter()
            .filter(|p| p.is_live())
            .all(|p| p.node.as_ref().is_some_and(|n| n.live_count() == live))
    }

    /// Every live node has the same table summary.
    pub fn views_agree(&self) -> bool {
        let mut summaries = self
            .procs
            .iter()
            .filter(|p| p.is_live())
            .filter_map(|p| p.node.as_ref())
            .map(Node::summary);
        match summaries.next() {
            None => true,
            Some(first) => summaries.all(|s| s == first),
        }
    }

    /// Number of distinct table summaries among live nodes.
    pub fn distinct_views(&self) -> usize {
        let mut s: Vec<u64> = self
            .procs
            .iter()
            .filter(|p| p.is_live())
            .filter_map(|p| p.node.as_ref())
            .map(Node::summary)
            .collect();
        s.sort_unstable();
        s.dedup();
        s.len()
    }

    /// Describes the first difference between two live nodes' tables, for violation
    /// messages: "nA has m@gen/inc Liveness voter=.., nB has ...". `None` when all agree.
    pub fn first_divergence(&self) -> Option<String> {
        type Row = (u64, u64, String, bool);
        fn table(n: &Node) -> BTreeMap<String, Row> {
            n.records()
                .map(|r| {
                    (
                        r.id.to_string(),
                        (
                            r.generation,
                            r.incarnation,
                            format!("{:?}", r.liveness),
                            r.voter,
                        ),
                    )
                })
                .collect()
        }
        let live: Vec<&Process> = self
            .procs
            .iter()
            .filter(|p| p.is_live() && p.node.is_some())
            .collect();
        let a = live.first()?;
        let an = a.node.as_ref()?;
        let b = live
            .iter()
            .find(|p| p.node.as_ref().is_some_and(|n| n.summary() != an.summary()))?;
        let (ta, tb) = (table(an), table(b.node.as_ref()?));
        let show = |r: Option<&Row>| match r {
            None => "no record".to_string(),
            Some((g, i, l, v)) => format!("gen {g} inc {i} {l} voter={v}"),
        };
        let id = ta
            .keys()
            .chain(tb.keys())
            .find(|k| ta.get(*k) != tb.get(*k))?;
        Some(format!(
            "{} has {id}: {}; {} has {id}: {}",
            a.id,
            show(ta.get(id)),
            b.id,
            show(tb.get(id))
        ))
    }

    /// Converged: every live node lists every live node Alive and all tables are equal.
    pub fn converged(&self) -> bool {
        self.live_len() > 0 && self.all_see_all_alive() && self.views_agree()
    }

    /// How many of `nodes` are live and hold quorum.
    pub fn quorum_holders(&self, nodes: &[usize]) -> usize {
        nodes
            .iter()
            .filter(|&&i| {
                self.procs[i].is_live() && self.procs[i].node.as_ref().is_some_and(Node::has_quorum)
            })
            .count()
    }

    /// Starts tracking a change; observers already satisfying it are recorded now.
    pub fn track(&mut self, predicate: Predicate) -> TrackerId {
        let mut t = Tracker::new(predicate, self.event_loop.now, self.procs.len());
        for (i, p) in self.procs.iter().enumerate() {
            if let (true, Some(n)) = (p.is_live(), p.node.as_ref()) {
                t.observe(i, n, self.event_loop.now);
            }
        }
        let id = self.trackers.len();
        self.trackers.push(t);
        self.active.push(id);
        self.complete_trackers();
        TrackerId(id)
    }

    /// A tracker's progress.
    pub fn tracker(&self, id: TrackerId) -> &Tracker {
        &self.trackers[id.0]
    }

    /// Runs the simulation until virtual time `until`, checking invariants every step.
    pub fn run_until(&mut self, until: Duration) -> Result<(), Violation> {
        event_loop::run_until(&mut Driver(self), until)
    }

    /// Runs for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Violation> {
        self.run_until(self.event_loop.now + d)
    }

    /// Runs until `cond` holds (checked every step) or until the absolute `deadline`.
    /// Returns the time it first held, or `None` at the deadline.
    pub fn wait_for(
        &mut self,
        deadline: Duration,
        mut cond: impl FnMut(&Sim) -> bool,
    ) -> Result<Option<Duration>, Violation> {
        event_loop::wait_for(&mut Driver(self), deadline, |d| cond(d.0))
    }

    /// Runs until tracker `id` completes or the absolute `deadline` passes.
    pub fn wait_tracker(&mut self, id: TrackerId, deadline: Duration) -> Result<bool, Violation> {
        Ok(self
            .wait_for(deadline, |s| s.tracker(id).is_complete())?
            .is_some())
    }

    fn dispatch(&mut self, item: Pending) {
        match item {
            Pending::Start { node } => self.start(node),
            Pending::Deliver { to, from, bytes } => match self.procs[to].state {
                State::Running => {
                    self.counters.delivered += 1;
                    self.deliver(to, from, &bytes);
                    self.after_call(to, false);
                }
                State::Paused { .. } => self.procs[to].backlog.push((from, bytes)),
                State::Crashed | State::Stopped => self.counters.to_dead += 1,
            },
            Pending::Timer { node, life } => {
                let p = &mut self.procs[node];
                if p.life != life
                    || p.state != State::Running
                    || !self.event_loop.timer_is_current(&mut p.timer_at)
                {
                    return;
                }
                self.fire_timer(node);
            }
            Pending::Resume { node, life } => {
                let p = &self.procs[node];
                if p.life == life
                    && matches!(p.state, State::Paused { until } if until <= self.event_loop.now)
                {
                    self.resume(node);
                }
            }
            Pending::Stop { node, life } => {
                let p = &mut self.procs[node];
                if p.life == life && p.exists() {
                    p.state = State::Stopped;
                    p.node = None;
                    p.timer_at = None;
                    p.backlog.clear();
                }
            }
        }
    }

    /// Starts a new life of slot `i` now: generation + 1, fresh core, same id and address.
    pub(crate) fn start(&mut self, i: usize) {
        let seeds: Vec<SocketAddr> = if i == 0 && self.procs[i].generation == 0 {
            Vec::new() // the very first node bootstraps the cluster
        } else {
            (0..3.min(self.procs.len()))
                .filter(|&s| s != i)
                .map(node_addr)
                .collect()
        };
        let zones = self.config.zones.max(1);
        let now = self.event_loop.now;
        let p = &mut self.procs[i];
        p.generation += 1;
        p.life += 1;
        p.clock_anchor = now;
        let identity = Identity {
            id: p.id.clone(),
            addr: p.addr,
            generation: p.generation,
            meta: Metadata {
                role: "sim".into(),
                zone: format!("z{}", i % zones),
                ..Metadata::default()
            },
            cluster: "vigil-sim".into(),
        };
        let rng_seed = derive_seed(self.config.seed, 3 + i as u64, p.generation);
        // The configuration was validated in `Sim::new`, so this cannot fail.
        p.node = Node::new(identity, self.config.core.clone(), seeds, now, rng_seed).ok();
        if let Some(node) = p.node.as_mut() {
            node.share_records(self.records.clone());
        }
        p.state = State::Running;
        p.timer_at = None;
        p.backlog.clear();
        self.ledger.forget_observer(i);
        for &k in &self.active {
            if let Some(d) = self.trackers[k].done_at.get_mut(i) {
                *d = None;
            }
        }
        self.after_call(i, false);
    }

    fn deliver(&mut self, to: usize, from: SocketAddr, bytes: &[u8]) {
        let now = self.event_loop.now;
        let p = &mut self.procs[to];
        let local = p.local_time(now);
        let Some(node) = p.node.as_mut() else { return };
        if let Err(e) = node.handle_datagram(local, from, bytes, &mut self.outbox) {
            let from_id = index_of(from)
                .map(crate::process::node_id)
                .unwrap_or_else(|| from.to_string());
            self.violation.get_or_insert(Violation::Undecodable {
                at: now.as_secs_f64(),
                from: from_id,
                to: p.id.clone(),
                error: e.to_string(),
            });
        }
    }

    fn fire_timer(&mut self, i: usize) {
        let p = &mut self.procs[i];
        let local = p.local_time(self.event_loop.now);
        if let Some(node) = p.node.as_mut() {
            if local >= node.poll_timeout() {
                node.handle_timeout(local, &mut self.outbox);
            }
        }
        self.after_call(i, true);
    }

    /// Resumes a paused node: backlog first, in arrival order, then its overdue timers (the
    /// timers first too when it was paused by [`Sim::starve`]).
    pub(crate) fn resume(&mut self, i: usize) {
        let grace_end = self.event_loop.now + self.excuse_grace();
        let p = &mut self.procs[i];
        p.state = State::Running;
        p.timer_at = None;
        if p.excused_until == Duration::MAX {
            p.excused_until = grace_end;
        }
        if std::mem::take(&mut p.timers_first) {
            self.fire_timer(i);
        }
        let p = &mut self.procs[i];
        let backlog = std::mem::take(&mut p.backlog);
        for (from, bytes) in backlog {
            if self.procs[i].state != State::Running {
                break;
            }
            self.counters.delivered += 1;
            self.deliver(i, from, &bytes);
            self.after_call(i, false);
        }
        self.fire_timer(i);
        if self.procs[i].exists() {
            let after = format!(
                "{}'s resume at {:.3}s (clock from when a majority saw it ALIVE)",
                self.procs[i].id,
                self.event_loop.now.as_secs_f64()
            );
            self.push_recovery(after, None, self.config.resume_recovery_bound, Some(i));
        }
    }

    /// How long convictions stay excused after a fault ends (stale accusations still travel).
    pub(crate) fn excuse_grace(&self) -> Duration {
        self.config.core.failure_timeout + self.config.core.suspicion_timeout
    }

    /// Routes a node's effects: datagrams into the network, events into the checks,
    /// then trackers and the node's timer.
    fn after_call(&mut self, i: usize, fired: bool) {
        let now = self.event_loop.now;
        let max = self.config.core.max_datagram;
        let from_addr = self.procs[i].addr;
        for (to, bytes) in self.outbox.take_sends() {
            let len = bytes.len();
            let p = &mut self.procs[i];
            p.bytes_sent += len as u64;
            p.datagrams_sent += 1;
            self.counters.sent += 1;
            self.counters.max_message_bytes = self.counters.max_message_bytes.max(len);
            if len > max {
                self.violation.get_or_insert(Violation::Oversize {
                    at: now.as_secs_f64(),
                    from: p.id.clone(),
                    bytes: len,
                    max,
                });
            }
            let Some(j) = index_of(to).filter(|&j| j < self.procs.len()) else {
                self.counters.unroutable += 1;
                continue;
            };
            let delivery = || Pending::Deliver {
                to: j,
                from: from_addr,
                bytes,
            };
            match self.event_loop.post(i, j, delivery) {
                Fate::Deliver(_) => {}
                Fate::Lost => self.counters.lost += 1,
                Fate::Cut => self.counters.cut += 1,
            }
        }
        for event in self.outbox.take_events() {
            self.observe_event(i, event);
        }
        let p = &mut self.procs[i];
        let Some(node) = p.node.as_ref() else { return };
        if p.is_live() {
            for &k in &self.active {
                self.trackers[k].observe(i, node, now);
            }
        }
        if p.state != State::Running {
            return;
        }
        let wanted = node.poll_timeout();
        if wanted == Duration::MAX {
            return;
        }
        let (life, wanted) = (p.life, p.global_time(wanted));
        self.event_loop
            .arm_timer(&mut p.timer_at, Some(wanted), fired, || Pending::Timer {
                node: i,
                life,
            });
    }

    pub(crate) fn observe_event(&mut self, observer: usize, event: Event) {
        let kind = event.kind();
        *self.counters.events.entry(kind).or_default() += 1;
        if let Event::SelfRejoined { generation, .. } = event {
            // The core bumped its own generation; keep the slot's in step for restarts and
            // false-positive accounting.
            let p = &mut self.procs[observer];
            p.generation = p.generation.max(generation);
            return;
        }
        match &event {
            // Only decisions this node took: a conviction it merely learnt spread from
            // whoever took it, and that one is checked where it was taken.
            Event::MemberFailed {
                id,
                decided_here: true,
                ..
            } => self.check_minority_decision(observer, id, "member_failed"),
            Event::MemberEvicted {
                id,
                decided_here: true,
            } => self.check_minority_decision(observer, id, "member_evicted"),
            _ => {}
        }
        if let Event::MemberFailed { id, generation, .. } = event {
            self.counters.failures_detected += 1;
            let Some(m) = self.index_of_id(&id) else {
                return;
            };
            self.ledger.record(observer, m, generation);
            let p = &self.procs[m];
            if p.generation == generation && p.exists() && self.event_loop.now > p.excused_until {
                self.counters.false_positives += 1;
                if self.counters.false_positive_examples.len() < 10 {
                    let example = format!(
                        "{:.3}s {}: {}@{}",
                        self.event_loop.now.as_secs_f64(),
                        self.procs[observer].id,
                        id,
                        generation
                    );
                    self.counters.false_positive_examples.push(example);
                }
            }
        }
    }

    /// Minority decision: during a cut, a node whose group held at most half of its voters
    /// must not convict or evict a member of another group.
    pub(crate) fn check_minority_decision(
        &mut self,
        observer: usize,
        member: &str,
        event: &'static str,
    ) {
        if !self.event_loop.network.is_partitioned() {
            return;
        }
        let Some(cut) = self.cut.as_ref() else { return };
        let cut_at = cut.at;
        let Some((mine, all)) = cut.minority.get(observer).copied().flatten() else {
            return;
        };
        let Some(m) = self.index_of_id(member) else {
            return;
        };
        let (go, gm) = (
            self.event_loop.network.group_of(observer),
            self.event_loop.network.group_of(m),
        );
        if go == gm {
            return;
        }
        // Within the lease bound after a cut, the minority's lease may still be current and
        // it may decide on evidence from before the cut (a flapping partition: accusations
        // from the previous cut, quorum proven while healed). After it, no decision there.
        if self.event_loop.now < cut_at + self.config.quorum_overlap_bound {
            self.counters.minority_decisions_within_bound += 1;
            return;
        }
        self.violation.get_or_insert(Violation::MinorityDecision {
            at: self.event_loop.now.as_secs_f64(),
            observer: self.procs[observer].id.clone(),
            group_observer: go,
            voters_in_group: mine,
            voters: all,
            event,
            member: member.to_owned(),
            group_member: gm,
        });
    }

    /// Schedules a resume of slot `i` (current life) at `at`.
    pub(crate) fn schedule_resume(&mut self, i: usize, at: Duration) {
        let life = self.procs[i].life;
        self.event_loop
            .schedule(at, Pending::Resume { node: i, life });
    }

    /// Schedules a stop of slot `i` (current life) at `at`.
    pub(crate) fn schedule_stop(&mut self, i: usize, at: Duration) {
        let life = self.procs[i].life;
        self.event_loop
            .schedule(at, Pending::Stop { node: i, life });
    }

    /// Calls `leave` on node `i`'s core now and routes its effects.
    pub(crate) fn call_leave(&mut self, i: usize) {
        let p = &mut self.procs[i];
        let local = p.local_time(self.event_loop.now);
        if let Some(node) = p.node.as_mut() {
            node.leave(local, &mut self.outbox);
        }
        self.after_call(i, false);
    }
}

#[cfg(test)]
mod tests;
