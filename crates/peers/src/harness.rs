//! N nodes of any sans-IO membership protocol on the simulator's own event loop
//! ([`sim::event_loop`]: the same virtual clock, agenda and network as `vigil-sim`, so the
//! same latency, jitter and loss draws, the same timer rules).
//!
//! A protocol plugs in through [`Peer`]: the harness hands it datagrams and due timers,
//! posts what it sends on the loop, and after every call asks it what it sees
//! ([`Peer::alive_count`], [`Peer::view`]) to time trackers exactly, as `sim`'s trackers do.

use std::convert::Infallible;
use std::time::Duration;

use sim::event_loop::{self, Drive, EventLoop};
use sim::network::{Fate, Network, NetworkConfig};
use sim::sim::derive_seed;
use sim::tracker::completed_at;

/// What one node believes about one member (one life of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Listed as alive (at this generation or a later one).
    Alive,
    /// Listed, but suspected (still a member).
    Suspect,
    /// Declared failed or down at this generation (or a later life is known instead).
    Down,
    /// Seen leaving gracefully.
    Left,
    /// Not listed at all.
    Unknown,
    /// A later life of the member is known (this life is over, the member is back).
    Superseded,
}

/// Everything a node needs to start one life.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Node index (address `sim::process::node_addr(index)`).
    pub index: usize,
    /// Life number of this slot, 1 for the first start.
    pub generation: u64,
    /// Indices of the seed nodes it joins through (empty: it founds the cluster).
    pub seeds: Vec<usize>,
    /// Cluster size the run is sized for (protocol presets that depend on N use it).
    pub cluster_size: usize,
    /// Seed for the node's own random generator.
    pub rng_seed: u64,
    /// Virtual time of the start.
    pub now: Duration,
}

/// Something a node reports that the harness accounts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// This node declared `subject` (life `generation`) failed or down.
    Convicted {
        /// Node index of the member.
        subject: usize,
        /// The life it declared down.
        generation: u64,
    },
    /// This node learnt it had been declared down and came back as a new life.
    Rejoined {
        /// Its new generation.
        generation: u64,
    },
}

/// What one handler call produced.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Datagrams: (destination node index, bytes).
    pub sends: Vec<(usize, Vec<u8>)>,
    /// Events for the accounting.
    pub events: Vec<PeerEvent>,
}

/// One node of a membership protocol, driven sans-IO.
pub trait Peer: Sized {
    /// Starts a node; initial datagrams (join requests) go to `out`.
    fn boot(boot: &Boot, out: &mut Outbox) -> Self;
    /// A datagram from node `from` arrived.
    fn on_datagram(&mut self, now: Duration, from: usize, bytes: &[u8], out: &mut Outbox);
    /// Called at (or after) [`Peer::next_timer`].
    fn on_timer(&mut self, now: Duration, out: &mut Outbox);
    /// When the node next wants [`Peer::on_timer`] (absolute virtual time), if ever.
    fn next_timer(&self) -> Option<Duration>;
    /// Leaves gracefully (the harness stops the node shortly after).
    fn leave(&mut self, now: Duration, out: &mut Outbox);
    /// Members this node lists as alive or suspect, itself included.
    fn alive_count(&self) -> usize;
    /// What this node believes about life `generation` of node `member`.
    fn view(&self, member: usize, generation: u64) -> View;
}

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Not started yet, or stopped after leaving.
    Stopped,
    /// Running normally.
    Running,
    /// Left gracefully; still running until it stops (its conviction is not a false positive).
    Leaving,
    /// Crashed: silent, datagrams to it are dropped.
    Crashed,
}

/// One process slot.
#[derive(Debug)]
pub struct Slot<P> {
    /// The protocol node of the current life.
    pub peer: Option<P>,
    /// Lifecycle.
    pub state: SlotState,
    /// Generation of the current life (bumped by restarts and by self-rejoins).
    pub generation: u64,
    life: u64,
    timer_at: Option<Duration>,
    /// Bytes sent over all lives.
    pub bytes_sent: u64,
}

/// A question asked of every live observer after each of its handler calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// The observer lists exactly `expected` members alive or suspect, itself included.
    AllAlive {
        /// Number of live members.
        expected: usize,
    },
    /// The observer lists `member` at `generation` (or later) as alive or suspect.
    Knows {
        /// Node index.
        member: usize,
        /// Life.
        generation: u64,
    },
    /// The observer no longer lists life `generation` of `member` as a member
    /// (down, left, forgotten, or replaced by a later life).
    Gone {
        /// Node index.
        member: usize,
        /// Life.
        generation: u64,
    },
}

impl Predicate {
    fn subject(&self) -> Option<usize> {
        match self {
            Predicate::AllAlive { .. } => None,
            Predicate::Knows { member, .. } | Predicate::Gone { member, .. } => Some(*member),
        }
    }

    fn holds<P: Peer>(&self, p: &P) -> bool {
        match *self {
            Predicate::AllAlive { expected } => p.alive_count() == expected,
            Predicate::Knows { member, generation } => {
                matches!(
                    p.view(member, generation),
                    View::Alive | View::Suspect | View::Superseded
                )
            }
            Predicate::Gone { member, generation } => {
                !matches!(p.view(member, generation), View::Alive | View::Suspect)
            }
        }
    }
}

/// Progress of one tracked change.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// What is tracked.
    pub predicate: Predicate,
    /// When the change happened.
    pub started: Duration,
    /// Per node index, when that observer first satisfied the predicate.
    done_at: Vec<Option<Duration>>,
    /// When the last live observer satisfied it (set once complete).
    pub all_at: Option<Duration>,
}

impl Tracker {
    /// Seconds from the change to the last live observer, once complete.
    pub fn all_s(&self) -> Option<f64> {
        self.all_at.map(|t| (t - self.started).as_secs_f64())
    }

    /// Observers that satisfied it so far.
    pub fn done(&self) -> usize {
        self.done_at.iter().filter(|d| d.is_some()).count()
    }
}

#[derive(Debug)]
enum Item {
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        life: u64,
    },
    Stop {
        node: usize,
        life: u64,
    },
}

/// Run-wide counters.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Largest datagram sent.
    pub max_message_bytes: usize,
    /// Convictions reported, all observers.
    pub convictions: u64,
    /// Convictions of a member that was running, not leaving, at that generation.
    pub false_positives: u64,
    /// The first few false positives, "time observer: member@generation".
    pub false_positive_examples: Vec<String>,
}

/// N nodes of protocol `P` on one virtual network.
pub struct Cluster<P: Peer> {
    seed: u64,
    cluster_size: usize,
    event_loop: EventLoop<Item>,
    /// Process slots, by node index.
    pub slots: Vec<Slot<P>>,
    out: Outbox,
    trackers: Vec<Tracker>,
    active: Vec<usize>,
    /// Counters.
    pub counters: Counters,
    /// Virtual time between checks of tracker completion.
    pub step: Duration,
    /// How long a leaving node keeps running after `leave` (as `vigil-sim`: 500 ms).
    pub leave_linger: Duration,
}

impl<P: Peer> Cluster<P> {
    /// A cluster sized for `cluster_size` nodes on `network`, seeded by `seed`: the network
    /// draws from the same derived seed as `sim::Sim`, so every protocol sees the same
    /// latency model, loss rate and fault schedule. No node is started yet.
    pub fn new(cluster_size: usize, seed: u64, network: NetworkConfig) -> Self {
        let step = if cluster_size <= 100 {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(100)
        };
        let network = Network::new(network, cluster_size, derive_seed(seed, 2, 0));
        Cluster {
            seed,
            cluster_size,
            event_loop: EventLoop::new(network, step),
            slots: Vec::with_capacity(cluster_size + 8),
            out: Outbox::default(),
            trackers: Vec::new(),
            active: Vec::new(),
            counters: Counters::default(),
            step,
            leave_linger: Duration::from_millis(500),
        }
    }

    /// Current virtual time.
    pub fn now(&self) -> Duration {
        self.event_loop.now()
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Indices of running (not leaving, not crashed) nodes.
    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].state == SlotState::Running)
            .collect()
    }

    /// Adds a slot and starts it now, joining through nodes 0-2 as `vigil-sim` does
    /// (the very first node founds the cluster). Returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.slots.len();
        self.slots.push(Slot {
            peer: None,
            state: SlotState::Stopped,
            generation: 0,
            life: 0,
            timer_at: None,
            bytes_sent: 0,
        });
        self.event_loop.network_mut().ensure(i);
        for t in &mut self.trackers {
            t.done_at.resize(self.slots.len(), None);
        }
        let seeds: Vec<usize> = if i == 0 {
            Vec::new()
        } else {
            (0..3.min(i + 1)).filter(|&s| s != i).collect()
        };
        let s = &mut self.slots[i];
        s.generation += 1;
        s.life += 1;
        let boot = Boot {
            index: i,
            generation: s.generation,
            seeds,
            cluster_size: self.cluster_size,
            rng_seed: derive_seed(self.seed, 3 + i as u64, s.generation),
            now: self.event_loop.now(),
        };
        s.peer = Some(P::boot(&boot, &mut self.out));
        s.state = SlotState::Running;
        self.after_call(i, false);
        i
    }

    /// Crashes node `i` now.
    pub fn crash(&mut self, i: usize) {
        let s = &mut self.slots[i];
        s.state = SlotState::Crashed;
        s.peer = None;
        s.timer_at = None;
    }

    /// Node `i` leaves gracefully now and stops after `leave_linger`.
    pub fn leave(&mut self, i: usize) {
        let now = self.event_loop.now();
        let s = &mut self.slots[i];
        if s.state != SlotState::Running {
            return;
        }
        s.state = SlotState::Leaving;
        if let Some(p) = s.peer.as_mut() {
            p.leave(now, &mut self.out);
        }
        let life = s.life;
        self.event_loop
            .schedule(now + self.leave_linger, Item::Stop { node: i, life });
        self.after_call(i, false);
    }

    /// Starts tracking `predicate` now.
    pub fn track(&mut self, predicate: Predicate) -> usize {
        let mut t = Tracker {
            predicate,
            started: self.event_loop.now(),
            done_at: vec![None; self.slots.len()],
            all_at: None,
        };
        for (i, s) in self.slots.iter().enumerate() {
            if let (SlotState::Running, Some(p)) = (s.state, s.peer.as_ref()) {
                if t.predicate.subject() != Some(i) && t.predicate.holds(p) {
                    t.done_at[i] = Some(self.event_loop.now());
                }
            }
        }
        self.trackers.push(t);
        let id = self.trackers.len() - 1;
        self.active.push(id);
        self.complete_trackers();
        id
    }

    /// Tracker `id`.
    pub fn tracker(&self, id: usize) -> &Tracker {
        &self.trackers[id]
    }

    /// Runs until tracker `id` completes or the absolute `deadline`; whether it completed.
    pub fn wait_tracker(&mut self, id: usize, deadline: Duration) -> bool {
        let done = event_loop::wait_for(&mut Driver(self), deadline, |d| {
            d.0.complete_trackers();
            d.0.trackers[id].all_at.is_some()
        });
        matches!(done, Ok(Some(_)))
    }

    /// Runs for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.event_loop.now() + d);
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Duration) {
        let Ok(()) = event_loop::run_until(&mut Driver(self), until);
    }

    /// Bytes sent so far by each slot.
    pub fn bytes_sent(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.bytes_sent).collect()
    }

    fn dispatch(&mut self, item: Item) {
        let now = self.event_loop.now();
        match item {
            Item::Deliver { to, from, bytes } => {
                let s = &mut self.slots[to];
                if !matches!(s.state, SlotState::Running | SlotState::Leaving) {
                    return;
                }
                if let Some(p) = s.peer.as_mut() {
                    p.on_datagram(now, from, &bytes, &mut self.out);
                }
                self.after_call(to, false);
            }
            Item::Timer { node, life } => {
                let s = &mut self.slots[node];
                if s.life != life || !self.event_loop.timer_is_current(&mut s.timer_at) {
                    return;
                }
                if let Some(p) = s.peer.as_mut() {
                    p.on_timer(now, &mut self.out);
                }
                self.after_call(node, true);
            }
            Item::Stop { node, life } => {
                let s = &mut self.slots[node];
                if s.life == life && s.state == SlotState::Leaving {
                    s.state = SlotState::Stopped;
                    s.peer = None;
                    s.timer_at = None;
                }
            }
        }
    }

    fn after_call(&mut self, i: usize, fired: bool) {
        let now = self.event_loop.now();
        for (to, bytes) in std::mem::take(&mut self.out.sends) {
            let len = bytes.len();
            self.slots[i].bytes_sent += len as u64;
            self.counters.sent += 1;
            self.counters.max_message_bytes = self.counters.max_message_bytes.max(len);
            if to >= self.slots.len() {
                continue;
            }
            let delivery = || Item::Deliver { to, from: i, bytes };
            match self.event_loop.post(i, to, delivery) {
                Fate::Deliver(_) => {}
                Fate::Lost | Fate::Cut => self.counters.lost += 1,
            }
        }
        for event in std::mem::take(&mut self.out.events) {
            match event {
                PeerEvent::Rejoined { generation } => {
                    let s = &mut self.slots[i];
                    s.generation = s.generation.max(generation);
                }
                PeerEvent::Convicted {
                    subject,
                    generation,
                } => {
                    self.counters.convictions += 1;
                    let Some(s) = self.slots.get(subject) else {
                        continue;
                    };
                    if s.state == SlotState::Running && s.generation == generation {
                        self.counters.false_positives += 1;
                        if self.counters.false_positive_examples.len() < 10 {
                            self.counters.false_positive_examples.push(format!(
                                "{:.3}s n{i}: n{subject}@{generation}",
                                now.as_secs_f64()
                            ));
                        }
                    }
                }
            }
        }
        let s = &mut self.slots[i];
        let Some(p) = s.peer.as_ref() else { return };
        if s.state == SlotState::Running {
            for &k in &self.active {
                let t = &mut self.trackers[k];
                if t.done_at[i].is_none()
                    && t.predicate.subject() != Some(i)
                    && t.predicate.holds(p)
                {
                    t.done_at[i] = Some(now);
                }
            }
        }
        let life = s.life;
        self.event_loop
            .arm_timer(&mut s.timer_at, p.next_timer(), fired, || Item::Timer {
                node: i,
                life,
            });
    }

    fn complete_trackers(&mut self) {
        let slots = &self.slots;
        let trackers = &mut self.trackers;
        self.active.retain(|&k| {
            let t = &mut trackers[k];
            let subject = t.predicate.subject();
            let observers: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].state == SlotState::Running && subject != Some(i))
                .collect();
            if observers.is_empty() {
                return true;
            }
            match completed_at(t.started, &t.done_at, observers) {
                Some(at) => {
                    t.all_at = Some(at);
                    false
                }
                None => true,
            }
        });
    }
}

/// A [`Cluster`] as the [`EventLoop`]'s harness: due items go to the peers; no checks per step
/// (trackers complete when a caller waits on them).
struct Driver<'a, P: Peer>(&'a mut Cluster<P>);

impl<P: Peer> Drive for Driver<'_, P> {
    type Item = Item;
    type Stop = Infallible;

    fn event_loop(&mut self) -> &mut EventLoop<Item> {
        &mut self.0.event_loop
    }

    fn step(&self) -> Duration {
        self.0.step
    }

    fn dispatch(&mut self, item: Item) -> Result<(), Infallible> {
        self.0.dispatch(item);
        Ok(())
    }

    fn on_step(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
