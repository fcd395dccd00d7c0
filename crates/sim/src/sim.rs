//! [`Sim`]: N protocol cores on a virtual clock and a seeded virtual network.
//!
//! The loop pops the earliest item of the agenda (a datagram delivery, a node's timer, a
//! resume or stop), advances the clock to it and calls the node. What the node emits goes
//! straight back into the agenda through the [`Network`]. Every `step` of virtual time the
//! safety invariants are checked and trackers that every live member satisfied complete.
//! Nothing here reads the wall clock, and every random draw is seeded from the run seed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use membership::{Effects, Event, Identity, Metadata, Node, RecordPool};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::event_loop::{self, Drive, EventLoop};
use crate::invariants::{self, FailedLedger, Recovery, Violation};
use crate::network::{Fate, Network, NetworkConfig};
use crate::process::{index_of, node_addr, Process, State};
use crate::tracker::{completed_at, Predicate, Tracker, TrackerId};

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

    /// The safety checks of one step.
    fn check(&mut self) -> Result<(), Violation> {
        self.counters.checks += 1;
        // a violation raised by an event observed outside a dispatch stops the run here
        if let Some(v) = self.violation.take() {
            self.fail(v)?;
        }
        if let Err(v) = self.ledger.sweep(&self.procs, self.event_loop.now) {
            self.fail(v)?;
        }
        if let Err(v) = self.check_leaders() {
            self.fail(v)?;
        }
        if let Err(v) = self.check_split_brain() {
            self.fail(v)?;
        }
        if let Err(v) = self.check_recoveries() {
            self.fail(v)?;
        }
        self.complete_trackers();
        Ok(())
    }

    /// Stops the run with `v`, or with `keep_going` notes it and goes on.
    fn fail(&mut self, v: Violation) -> Result<(), Violation> {
        if !self.config.keep_going {
            return Err(v);
        }
        self.noted.entry(v.kind()).or_insert((0, v)).0 += 1;
        Ok(())
    }

    /// With `keep_going`: per kind of violation, how many times it was seen (steps or
    /// events) and the first one.
    pub fn noted(&self) -> &BTreeMap<&'static str, (u64, Violation)> {
        &self.noted
    }

    /// Whether live node `i` holds quorum and names itself leader.
    pub fn is_self_leader(&self, i: usize) -> bool {
        let p = &self.procs[i];
        p.is_live()
            && p.node
                .as_ref()
                .is_some_and(|n| n.has_quorum() && n.leader() == Some(n.id()))
    }

    /// Live nodes that hold quorum and name themselves leader.
    pub fn self_leaders(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&i| self.is_self_leader(i))
            .collect()
    }

    /// Whether live node `i` holds quorum.
    /// Settled: converged, every live node holds quorum, and every live node sees every live
    /// node as a voter (admissions are the leader's and follow its rounds, so they trail
    /// convergence).
    pub fn settled(&self) -> bool {
        let live = self.live_nodes();
        self.converged()
            && live.iter().all(|&i| self.holds_quorum(i))
            && live.iter().all(|&i| {
                let node = self.procs[i].node.as_ref();
                live.iter().all(|&j| {
                    node.and_then(|n| n.record(&self.procs[j].id))
                        .is_some_and(|r| r.voter)
                })
            })
    }

    /// Whether node `i` is live and holds quorum.
    pub fn holds_quorum(&self, i: usize) -> bool {
        let p = &self.procs[i];
        p.is_live() && p.node.as_ref().is_some_and(Node::has_quorum)
    }

    /// Two leaders: at most one live node at once holds quorum and names itself leader.
    fn check_leaders(&mut self) -> Result<(), Violation> {
        let leaders = self.self_leaders();
        self.counters.max_self_leaders = self.counters.max_self_leaders.max(leaders.len());
        match invariants::two_leaders(leaders.iter().map(|&i| (i, true))) {
            Some((a, b)) => Err(Violation::TwoLeaders {
                at: self.event_loop.now.as_secs_f64(),
                a: self.procs[a].id.clone(),
                b: self.procs[b].id.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Split brain: two partition groups both hold a quorum holder for at most
    /// `quorum_overlap_bound` after the cut.
    fn check_split_brain(&mut self) -> Result<(), Violation> {
        if !self.event_loop.network.is_partitioned() {
            return Ok(());
        }
        let Some(at) = self.cut.as_ref().map(|c| c.at) else {
            return Ok(());
        };
        let states = (0..self.procs.len())
            .map(|i| (i, self.event_loop.network.group_of(i), self.holds_quorum(i)))
            .collect::<Vec<_>>();
        let both = invariants::two_groups_with_quorum(states);
        let now = self.event_loop.now;
        let cut = self.cut.as_mut().expect("checked above");
        let Some(((a, ga), (b, gb))) = both else {
            cut.both_since = None;
            return Ok(());
        };
        let since = *cut.both_since.get_or_insert(now);
        let stretch = now - since;
        self.counters.both_sides_quorum = self.counters.both_sides_quorum.max(stretch);
        let since_cut = now - at;
        if since_cut > self.config.quorum_overlap_bound {
            return Err(Violation::SplitBrain {
                at: now.as_secs_f64(),
                since_cut: since_cut.as_secs_f64(),
                bound: self.config.quorum_overlap_bound.as_secs_f64(),
                a: self.procs[a].id.clone(),
                group_a: ga,
                b: self.procs[b].id.clone(),
                group_b: gb,
            });
        }
        Ok(())
    }

    /// Longest stretch (seconds) during which two partition groups both held quorum.
    pub fn both_sides_quorum_s(&self) -> f64 {
        self.counters.both_sides_quorum.as_secs_f64()
    }

    /// Notes a new two-way cut: its time, and which nodes sit in a minority of their own
    /// table's voters (voters: records marked voter, not terminal, of existing processes).
    pub(crate) fn begin_cut(&mut self) {
        self.supersede_heals();
        let mut minority = vec![None; self.procs.len()];
        for (i, p) in self.procs.iter().enumerate() {
            let Some(node) = p.node.as_ref().filter(|_| p.exists()) else {
                continue;
            };
            let groups = node
                .records()
                .filter(|r| r.voter && !r.liveness.is_terminal())
                .filter_map(|r| self.index_by_id.get(&*r.id).copied())
                .filter(|&j| self.procs[j].exists())
                .map(|j| self.event_loop.network.group_of(j));
            let (is_minority, mine, all) =
                invariants::minority_at_cut(self.event_loop.network.group_of(i), groups);
            if is_minority {
                minority[i] = Some((mine, all));
            }
        }
        // A cut that starts with two groups holding quorum starts the overlap now.
        let both = invariants::two_groups_with_quorum(
            (0..self.procs.len())
                .map(|i| (i, self.event_loop.network.group_of(i), self.holds_quorum(i))),
        )
        .map(|_| self.event_loop.now);
        self.cut = Some(Cut {
            at: self.event_loop.now,
            minority,
            both_since: both,
        });
    }

    /// Drops the recovery deadlines of earlier heals: a heal's deadline holds while the
    /// network stays healed, and a new cut ends that wait (its own heal starts the next).
    /// Without this, a flapping cut healed for 1.1 s and 1.5 s was charged to the first heal
    /// 10 s later, 0.5 s after the last one (trials seed 1, trial 103).
    pub(crate) fn supersede_heals(&mut self) {
        self.recoveries.retain(|r| r.resumed.is_some());
    }

    /// Ends the cut (heal) and starts the recovery deadline.
    pub(crate) fn end_cut(&mut self) {
        self.cut = None;
        let after = format!("the heal at {:.3}s", self.event_loop.now.as_secs_f64());
        self.push_recovery(
            after,
            Some(self.event_loop.now),
            self.config.recovery_bound,
            None,
        );
    }

    pub(crate) fn push_recovery(
        &mut self,
        after: String,
        from: Option<Duration>,
        bound: Duration,
        resumed: Option<usize>,
    ) {
        let pending = self
            .procs
            .iter()
            .map(|p| p.exists().then_some(p.life))
            .collect();
        self.recoveries.push(Recovery {
            after,
            from,
            bound,
            resumed,
            triggered: self.event_loop.now,
            pending,
        });
    }

    /// Whether a majority of the live nodes (other than `i`) shows node `i` ALIVE at its
    /// current generation.
    fn alive_in_majority_view(&self, i: usize) -> bool {
        let p = &self.procs[i];
        let Some(generation) = p.node.as_ref().map(Node::generation) else {
            return false;
        };
        let (mut live, mut alive) = (0usize, 0usize);
        for (j, q) in self.procs.iter().enumerate() {
            if j == i || !q.is_live() {
                continue;
            }
            live += 1;
            if q.node
                .as_ref()
                .and_then(|n| n.record(&p.id))
                .is_some_and(|r| {
                    r.generation == generation && r.liveness == membership::Liveness::Alive
                })
            {
                alive += 1;
            }
        }
        live == 0 || 2 * alive > live
    }

    /// `Some((reached, voters))` when live node `i` (still in life `life`) lacks quorum
    /// although it is connected, both ways and without loss, to a strict majority of the
    /// voters its own table lists (voter records not terminal; live processes only count
    /// as reached).
    pub(crate) fn connected_without_quorum(&self, i: usize, life: u64) -> Option<(usize, usize)> {
        let p = &self.procs[i];
        if !p.is_live() || p.life != life || self.event_loop.network.has_loss(i) {
            return None;
        }
        let node = p.node.as_ref()?;
        if node.has_quorum() || node.has_left() {
            return None;
        }
        let (mut reached, mut voters) = (0, 0);
        for r in node
            .records()
            .filter(|r| r.voter && !r.liveness.is_terminal())
        {
            voters += 1;
            let Some(j) = self.index_by_id.get(&*r.id).copied() else {
                continue;
            };
            if j == i
                || (self.procs[j].is_live()
                    && !self.event_loop.network.has_loss(j)
                    && self.event_loop.network.connected(i, j)
                    && self.event_loop.network.connected(j, i))
            {
                reached += 1;
            }
        }
        (2 * reached > voters).then_some((reached, voters))
    }

    /// Pending recovery deadlines: start the clocks of resumes seen ALIVE, mark nodes that
    /// hold quorum, and at a deadline report the first eligible node that never did.
    fn check_recoveries(&mut self) -> Result<(), Violation> {
        if self.recoveries.is_empty() {
            return Ok(());
        }
        let now = self.event_loop.now;
        let mut recoveries = std::mem::take(&mut self.recoveries);
        let mut result = Ok(());
        recoveries.retain_mut(|r| {
            if result.is_err() {
                return true;
            }
            if r.from.is_none() {
                let Some(i) = r.resumed else { return false };
                let same_life = r.pending.get(i).copied().flatten() == Some(self.procs[i].life);
                if !same_life || !self.procs[i].exists() {
                    return false; // the resumed life ended: nothing to wait for
                }
                if !self.alive_in_majority_view(i) {
                    // never seen ALIVE again: the convergence checks cover that
                    return now < r.triggered + Duration::from_secs(300);
                }
                r.from = Some(now);
            }
            for i in 0..r.pending.len() {
                if r.pending[i].is_some() && self.holds_quorum(i) {
                    r.recovered(i);
                }
            }
            let Some(deadline) = r.deadline() else {
                return true;
            };
            if now < deadline {
                return true;
            }
            if let Some((i, reached, voters)) =
                r.first_unrecovered(|i, life| self.connected_without_quorum(i, life))
            {
                result = Err(Violation::NotRecovered {
                    at: now.as_secs_f64(),
                    node: self.procs[i].id.clone(),
                    after: r.after.clone(),
                    bound: (deadline - r.triggered).as_secs_f64(),
                    reached,
                    voters,
                });
            }
            false
        });
        self.recoveries = recoveries;
        result
    }

    /// Completes trackers that every live observer satisfied.
    fn complete_trackers(&mut self) {
        let procs = &self.procs;
        let trackers = &mut self.trackers;
        self.active.retain(|&k| {
            if !procs.iter().any(Process::is_live) {
                return true; // nobody to ask yet (e.g. before the first start)
            }
            let t = &mut trackers[k];
            let subject = t.predicate.subject();
            let observers = (0..procs.len())
                .filter(|&i| procs[i].is_live() && subject != Some(procs[i].id.as_str()));
            match completed_at(t.started, &t.done_at, observers) {
                Some(at) => {
                    t.all_at = Some(at);
                    false
                }
                None => true,
            }
        });
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
mod tests {
    use super::*;

    /// A small cluster with `config`, run until it converged.
    fn converged(mut config: SimConfig) -> Sim {
        config.step = Duration::from_millis(20);
        let mut sim = Sim::new(config).unwrap();
        let at = sim.wait_for(Duration::from_secs(60), Sim::settled).unwrap();
        assert!(at.is_some(), "did not converge with quorum everywhere");
        sim
    }

    #[test]
    fn a_minority_convicting_across_the_cut_is_a_violation_and_the_majority_is_not() {
        let mut sim = converged(SimConfig::new(5, 11));
        sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
        // Within the lease bound after the cut the minority's lease may still hold: counted,
        // not a violation.
        let member = sim.process(4).id.clone();
        sim.observe_event(
            1,
            Event::MemberEvicted {
                id: member,
                decided_here: true,
            },
        );
        assert!(sim.violation.is_none(), "{:?}", sim.violation);
        assert_eq!(sim.counters().minority_decisions_within_bound, 1);
        let bound = sim.config().quorum_overlap_bound;
        sim.run_for(bound).unwrap();
        // The majority evicting a minority member is its right.
        sim.observe_event(
            3,
            Event::MemberEvicted {
                id: sim.process(0).id.clone(),
                decided_here: true,
            },
        );
        assert!(sim.violation.is_none(), "{:?}", sim.violation);
        // An eviction learnt from another member is not this node's decision.
        sim.observe_event(
            1,
            Event::MemberEvicted {
                id: sim.process(4).id.clone(),
                decided_here: false,
            },
        );
        assert!(sim.violation.is_none(), "{:?}", sim.violation);
        // After it, the minority (2 of 5 voters) evicting a majority member is not.
        sim.observe_event(
            1,
            Event::MemberEvicted {
                id: sim.process(4).id.clone(),
                decided_here: true,
            },
        );
        match sim.violation.clone() {
            Some(Violation::MinorityDecision {
                observer,
                member,
                voters_in_group,
                voters,
                event,
                ..
            }) => {
                assert_eq!((observer.as_str(), member.as_str()), ("n00001", "n00004"));
                assert!(voters >= 3 && 2 * voters_in_group <= voters);
                assert_eq!(event, "member_evicted");
            }
            other => panic!("expected a minority decision, got {other:?}"),
        }
        // The run stops on it at once.
        let step = sim.config().step;
        let stopped = sim.run_for(step);
        assert!(matches!(stopped, Err(Violation::MinorityDecision { .. })));
    }

    /// A heal's recovery deadline that falls inside a later heal is not the later heal's:
    /// a node heard again for 0.1 s was reported as not recovered from the first heal.
    #[test]
    fn a_new_cut_ends_the_wait_of_the_heal_before_it() {
        let mut config = SimConfig::new(5, 12);
        config.recovery_bound = Duration::from_secs(5);
        let mut sim = converged(config);
        let ms = Duration::from_millis;
        sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
        sim.run_for(ms(6000)).unwrap();
        assert!(!sim.holds_quorum(0) && !sim.holds_quorum(1));
        sim.heal();
        sim.run_for(ms(40)).unwrap();
        sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
        sim.run_for(ms(4860)).unwrap();
        sim.heal();
        // The first heal's deadline passes 0.1 s into this one.
        sim.run_for(ms(15_000)).unwrap();
    }

    #[test]
    fn both_sides_holding_quorum_past_the_bound_is_split_brain_from_the_cut() {
        let mut config = SimConfig::new(5, 12);
        config.quorum_overlap_bound = Duration::ZERO;
        let mut sim = converged(config);
        let cut = sim.now();
        sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
        // 20 ms after the cut nobody can have noticed it: both sides still hold quorum,
        // and with no allowed overlap that is already split brain.
        match sim.run_for(Duration::from_millis(40)) {
            Err(Violation::SplitBrain { since_cut, .. }) => {
                assert!(since_cut <= 0.041, "{since_cut}");
            }
            other => panic!("expected split brain right after the cut, got {other:?}"),
        }
        assert!(sim.now() - cut <= Duration::from_millis(40));
    }

    #[test]
    fn keep_going_notes_violations_and_measures_the_overlap() {
        let mut config = SimConfig::new(5, 12);
        config.quorum_overlap_bound = Duration::ZERO;
        config.keep_going = true;
        let mut sim = converged(config);
        sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
        sim.run_for(Duration::from_millis(200)).unwrap();
        let (count, first) = &sim.noted()["split_brain"];
        assert!(*count >= 5, "{count}");
        assert!(matches!(first, Violation::SplitBrain { .. }));
        assert!(
            sim.both_sides_quorum_s() >= 0.18,
            "{}",
            sim.both_sides_quorum_s()
        );
    }

    #[test]
    fn a_node_reaching_a_majority_without_quorum_after_the_heal_is_not_recovered() {
        let mut config = SimConfig::new(5, 13);
        config.recovery_bound = Duration::ZERO;
        config.keep_going = true; // the cut itself may break other invariants
        let mut sim = converged(config);
        sim.partition(&[vec![0], vec![1, 2, 3, 4]]);
        let lost = sim
            .wait_for(sim.now() + Duration::from_secs(30), |s| !s.holds_quorum(0))
            .unwrap();
        assert!(lost.is_some(), "the lone node kept quorum for 30 s");
        let mut config = sim.config.clone();
        config.keep_going = false;
        sim.config = config;
        // With a zero bound the first check after the heal decides; with checks every
        // millisecond, node 0 cannot have heard back from a majority by then (one delivery
        // takes a millisecond, and a lease request must come and be answered).
        let mut config = sim.config.clone();
        config.step = Duration::from_millis(1);
        sim.config = config;
        sim.event_loop.next_step = sim.now();
        sim.heal();
        match sim.run_for(Duration::from_millis(1)) {
            Err(Violation::NotRecovered {
                node,
                reached,
                voters,
                ..
            }) => {
                assert_eq!(node, "n00000");
                assert!(2 * reached > voters, "{reached} of {voters}");
            }
            other => panic!("expected not recovered, got {other:?}"),
        }
    }

    #[test]
    fn skewed_clocks_are_drawn_per_node_and_the_cluster_still_works() {
        let plain = Sim::new(SimConfig::new(6, 14)).unwrap();
        assert!((0..6).all(|i| plain.process(i).clock_rate == 1.0));
        let mut config = SimConfig::new(6, 14);
        config.clock_skew = 0.01;
        let mut sim = converged(config);
        let rates: Vec<f64> = (0..6).map(|i| sim.process(i).clock_rate).collect();
        assert!(rates.iter().all(|r| (0.99..=1.01).contains(r)), "{rates:?}");
        assert!(rates.iter().any(|&r| r != 1.0));
        sim.run_for(Duration::from_secs(20)).unwrap();
        let fast = (0..6)
            .max_by(|&a, &b| rates[a].total_cmp(&rates[b]))
            .unwrap();
        assert!(sim.local_now(fast) > sim.now());
        sim.crash(5);
        let failed = sim.track(crate::Predicate::Failed {
            member: sim.process(5).id.clone(),
            generation: 1,
        });
        let deadline = sim.now() + Duration::from_secs(60);
        assert!(sim.wait_tracker(failed, deadline).unwrap());
    }
}
