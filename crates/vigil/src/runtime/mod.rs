//! The tokio glue around the sans-IO [`membership::Node`].
//!
//! One task ([`NodeRuntime::run`]) owns the node, the transport and the clock. It waits for
//! whichever comes first: a datagram, the node's next timeout, a command from the HTTP API
//! (through a [`Handle`]), a signal-sampling tick, or shutdown. After each step it sends the
//! datagrams the node produced and logs and counts its events. Time is a [`Duration`] since
//! `epoch` (a tokio [`Instant`] taken at start, so tests can pause the clock).
//!
//! Every datagram passes the per-source rate limit and, with a keyring, the seal check, the
//! replay window and the per-member rate limit before the core sees it; every datagram the
//! core sends is sealed with a stamp (see [`crate::security`]).
//!
//! Every event the core reports is logged and counted, and published as a typed
//! [`crate::Change`] on the [`bus::EventBus`] (subscribers, `GET /cluster/events`, the event
//! handlers). While anyone listens, the view is compared once a second with the one before,
//! for the changes the core has no event for (metadata, HEALTHY <-> DEGRADED).
//!
//! Shutdown: cancelling the token (SIGTERM, Ctrl-C) or a leave command starts a graceful
//! leave; the loop keeps gossiping for `leave_linger` so the news spreads, then returns.

pub mod bus;
pub mod daemon;
pub mod events;
pub mod handlers;
pub mod open_files;
mod peers;
pub mod signals;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use membership::{ClusterView, CommandError, Event, Liveness, Node, Output, Stats, Status};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::event::{self as public, Member};
use crate::metrics::Metrics;
use crate::security::keyring::Opened;
use crate::security::{
    store, Key, KeyError, Keyring, MemberLimiter, ReplayWindow, SourceLimiter, Stamp,
};
use crate::transport::Transport;
use signals::SignalSampler;

/// What does not change while the process lives.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Member id.
    pub id: String,
    /// Cluster name.
    pub cluster: String,
    /// Generation of this process.
    pub generation: u64,
    /// Advertised gossip address.
    pub gossip_addr: SocketAddr,
    /// Advertised HTTP address, if any.
    pub http_addr: Option<String>,
    /// Seeds, as resolved at start.
    pub seeds: Vec<SocketAddr>,
    /// Started without gossip keys or admin token by the operator's choice
    /// (`security.insecure`); shown in `/cluster/status`.
    pub insecure: bool,
}

/// Knobs of the glue (the protocol's are in [`membership::Config`]).
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to keep gossiping after a graceful leave.
    pub leave_linger: Duration,
    /// How often to measure this process's signals (`runtime::signals`); `None` = never
    /// (tests).
    pub signals_interval: Option<Duration>,
    /// Seals and opens every datagram; `None` = plain gossip.
    pub keyring: Option<Keyring>,
    /// Where keyring changes are saved.
    pub keyring_file: Option<PathBuf>,
    /// Datagrams per second accepted from one source address (0 = unlimited), and, in a
    /// keyed cluster, from one member once its seal opened.
    pub source_rate: u32,
    /// Burst above `source_rate`.
    pub source_burst: u32,
}

impl Default for Options {
    /// Plain gossip, no rate limit, no signal sampling (what tests want).
    fn default() -> Self {
        Options {
            leave_linger: Duration::from_secs(1),
            signals_interval: None,
            keyring: None,
            keyring_file: None,
            source_rate: 0,
            source_burst: 1,
        }
    }
}

/// A change to the gossip keyring (`vigil keys`).
#[derive(Debug, Clone)]
pub enum KeyOp {
    /// Only report the keys.
    List,
    /// Accept a key for opening.
    Install(Key),
    /// Seal with an installed key.
    Use(Key),
    /// Stop accepting a key.
    Remove(Key),
}

/// Why a keyring change was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// This node gossips without keys.
    #[error("gossip keys are off on this node: start it with security.gossip-keys")]
    Disabled,
    /// The change itself is wrong.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Applied in memory but not saved to the keyring file.
    #[error("applied, but not saved: {0}")]
    NotSaved(String),
}

/// A point-in-time copy of the node's state, for the API and metrics.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The view.
    pub view: ClusterView,
    /// The core's counters.
    pub stats: Stats,
    /// The runtime clock when the view was taken.
    pub now: Duration,
    /// The wall clock at `now == 0`, to date `last_heartbeat`.
    pub wall_epoch: SystemTime,
    /// Whether this node reached the cluster (bootstrapped, or heard from a member).
    pub joined: bool,
    /// Whether a graceful leave started.
    pub leaving: bool,
    /// The id of the last change published on the bus when the view was taken.
    pub last_change: u64,
}

impl Snapshot {
    /// The wall-clock time of a runtime instant.
    pub fn wall(&self, at: Duration) -> SystemTime {
        self.wall_epoch + at
    }
}

enum Command {
    Snapshot(oneshot::Sender<Snapshot>),
    Leave(oneshot::Sender<()>),
    ForceRemove(String, oneshot::Sender<Result<(), CommandError>>),
    Keys(KeyOp, oneshot::Sender<Result<Vec<Key>, KeysError>>),
    SetTag(
        String,
        Option<String>,
        oneshot::Sender<Result<(), CommandError>>,
    ),
    AppHealth(u8, oneshot::Sender<()>),
    Join(
        Vec<SocketAddr>,
        oneshot::Sender<Result<Vec<SocketAddr>, CommandError>>,
    ),
    SetSeeds(Vec<SocketAddr>),
}

/// The runtime task stopped; nothing more can be asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the node runtime has stopped")
    }
}

impl std::error::Error for Stopped {}

/// Talks to a running [`NodeRuntime`]; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    cmd_tx: mpsc::Sender<Command>,
    /// Static facts about the node.
    pub info: Arc<NodeInfo>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Where it publishes changes.
    pub bus: Arc<bus::EventBus>,
    /// Answers of this member's own service, read into its health signals.
    pub service_load: Arc<signals::ServiceLoad>,
}

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx.send(make(tx)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// The current view and counters.
    pub async fn snapshot(&self) -> Result<Snapshot, Stopped> {
        self.ask(Command::Snapshot).await
    }

    /// Starts a graceful leave; the runtime stops `leave_linger` later.
    pub async fn leave(&self) -> Result<(), Stopped> {
        self.ask(Command::Leave).await
    }

    /// Applies a keyring change; answers with the keys after it, primary first.
    pub async fn keys(&self, op: KeyOp) -> Result<Result<Vec<Key>, KeysError>, Stopped> {
        self.ask(|tx| Command::Keys(op, tx)).await
    }

    /// Sets (or with `None` removes) a tag of this node's metadata.
    pub async fn set_tag(
        &self,
        key: String,
        value: Option<String>,
    ) -> Result<Result<(), CommandError>, Stopped> {
        self.ask(|tx| Command::SetTag(key, value, tx)).await
    }

    /// Publishes the application's own error signal (percent), folded into the next sample.
    pub async fn app_health(&self, error_pct: u8) -> Result<(), Stopped> {
        self.ask(|tx| Command::AppHealth(error_pct, tx)).await
    }

    /// Operator join: contacts `addrs` now and keeps them as seeds; answers with the
    /// addresses contacted.
    pub async fn join(
        &self,
        addrs: Vec<SocketAddr>,
    ) -> Result<Result<Vec<SocketAddr>, CommandError>, Stopped> {
        self.ask(|tx| Command::Join(addrs, tx)).await
    }

    /// Replaces the seed addresses (seed names re-resolved; see `daemon`).
    pub async fn set_seeds(&self, seeds: Vec<SocketAddr>) -> Result<(), Stopped> {
        self.cmd_tx
            .send(Command::SetSeeds(seeds))
            .await
            .map_err(|_| Stopped)
    }

    /// Removes a member by operator decision.
    pub async fn force_remove(&self, id: String) -> Result<Result<(), CommandError>, Stopped> {
        self.ask(|tx| Command::ForceRemove(id, tx)).await
    }
}

/// Collects what one step of the node produced.
#[derive(Default)]
struct Effects {
    sends: Vec<(SocketAddr, Vec<u8>)>,
    events: Vec<Event>,
}

impl Output for Effects {
    fn send(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.sends.push((to, datagram));
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

enum Step {
    Shutdown,
    Datagram(usize, SocketAddr),
    RecvError(std::io::Error),
    Timeout,
    Command(Command),
    Sample,
    Compare,
    LagProbe(Instant),
}

/// Owns a node and its transport; see the module docs.
pub struct NodeRuntime<T: Transport> {
    node: Node,
    transport: T,
    epoch: Instant,
    wall_epoch: SystemTime,
    info: Arc<NodeInfo>,
    metrics: Arc<Metrics>,
    options: Options,
    cmd_rx: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
    joined: bool,
    leaving_until: Option<Duration>,
    send_errors: u64,
    sampler: Option<SignalSampler>,
    service_load: Arc<signals::ServiceLoad>,
    limiter: SourceLimiter,
    event_log: events::EventLog,
    /// Per-member buckets, after the seal (keyed clusters only).
    members: MemberLimiter,
    /// Stamps of the sealed datagrams accepted (keyed clusters only).
    replays: ReplayWindow,
    /// The stamp of the last datagram sealed: this member, this process, its counter.
    stamp: Stamp,
    /// Where changes are published.
    bus: Arc<bus::EventBus>,
    /// The view as last compared, while anyone listens (see the module docs).
    compared: HashMap<String, Member>,
    /// The application's own error signal, percent ([`Handle::app_health`]).
    app_error_pct: u8,
    /// The last signals measured by the sampler.
    measured: membership::HealthSignals,
}

impl<T: Transport> NodeRuntime<T> {
    /// Wraps `node`, whose clock started at `epoch` (the same instant passed to
    /// [`Node::new`] as time zero). Cancelling `shutdown` starts a graceful leave.
    pub fn new(
        node: Node,
        transport: T,
        epoch: Instant,
        info: NodeInfo,
        options: Options,
        shutdown: CancellationToken,
    ) -> (Self, Handle) {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let info = Arc::new(info);
        let metrics = Arc::new(Metrics::new());
        let bus = Arc::new(bus::EventBus::default());
        let wall_epoch = SystemTime::now() - epoch.elapsed();
        let service_load = Arc::new(signals::ServiceLoad::default());
        let handle = Handle {
            cmd_tx,
            info: info.clone(),
            metrics: metrics.clone(),
            bus: bus.clone(),
            service_load: service_load.clone(),
        };
        let joined = info.seeds.is_empty();
        let sampler = options.signals_interval.map(|_| SignalSampler::new());
        let limiter = SourceLimiter::new(options.source_rate, options.source_burst);
        let members = MemberLimiter::new(options.source_rate, options.source_burst);
        let stamp = Stamp {
            sender: Stamp::sender_of(&info.id),
            boot: info.generation,
            counter: 0,
        };
        let runtime = NodeRuntime {
            node,
            transport,
            epoch,
            wall_epoch,
            info,
            metrics,
            options,
            cmd_rx,
            shutdown,
            joined,
            leaving_until: None,
            send_errors: 0,
            sampler,
            service_load,
            limiter,
            event_log: events::EventLog::default(),
            members,
            replays: ReplayWindow::default(),
            stamp,
            bus,
            compared: HashMap::new(),
            app_error_pct: 0,
            measured: membership::HealthSignals::default(),
        };
        (runtime, handle)
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Runs until a graceful leave has lingered long enough.
    pub async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        let mut effects = Effects::default();
        let sample_every = self
            .options
            .signals_interval
            .unwrap_or(Duration::from_secs(3600));
        let mut sample_tick = tokio::time::interval(sample_every);
        sample_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut compare_tick = tokio::time::interval(Duration::from_secs(1));
        compare_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The lag probe: how late this tick runs is how late everything on this event loop
        // runs (a starved or frozen process, a saturated runtime).
        let mut lag_tick = tokio::time::interval(signals::LAG_TICK);
        lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_seed_warning = self.now() + Duration::from_secs(5);
        info!(
            id = %self.info.id,
            generation = self.info.generation,
            gossip = %self.info.gossip_addr,
            seeds = ?self.info.seeds,
            "node started"
        );
        loop {
            let now = self.now();
            if self.leaving_until.is_some_and(|until| now >= until) {
                break;
            }
            let mut wake = self.node.poll_timeout();
            if let Some(until) = self.leaving_until {
                wake = wake.min(until);
            }
            let wake_at = self
                .epoch
                .checked_add(wake)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let leaving = self.leaving_until.is_some();
            let step = tokio::select! {
                _ = self.shutdown.cancelled(), if !leaving => Step::Shutdown,
                received = self.transport.recv_from(&mut buf) => match received {
                    Ok((n, from)) => Step::Datagram(n, from),
                    Err(e) => Step::RecvError(e),
                },
                _ = tokio::time::sleep_until(wake_at) => Step::Timeout,
                Some(cmd) = self.cmd_rx.recv() => Step::Command(cmd),
                _ = sample_tick.tick(), if self.sampler.is_some() => Step::Sample,
                _ = compare_tick.tick() => Step::Compare,
                due = lag_tick.tick(), if self.sampler.is_some() => Step::LagProbe(due),
            };
            let now = self.now();
            match step {
                Step::Shutdown => self.start_leave(now, &mut effects),
                Step::Datagram(n, from) => self.receive(now, from, &buf[..n], &mut effects),
                Step::RecvError(e) => debug!(error = %e, "receive failed"),
                Step::Timeout => self.node.handle_timeout(now, &mut effects),
                Step::Command(cmd) => self.command(now, cmd, &mut effects),
                Step::Sample => self.sample_signals(),
                Step::LagProbe(due) => {
                    if let Some(sampler) = &mut self.sampler {
                        sampler.note_lag(Instant::now().saturating_duration_since(due));
                    }
                }
                Step::Compare => self.compare(now),
            }
            self.flush(&mut effects).await;
            // A node whose only seed is itself (the first pod behind a headless Service, on a
            // cold start) founds the cluster: no member joins to tell it so, but it holds
            // quorum, and must become ready for the next pod to start.
            if !self.joined && self.node.has_quorum() {
                self.joined = true;
            }
            if !self.joined && now >= next_seed_warning {
                warn!(seeds = ?self.info.seeds, "no answer from any seed yet; still trying");
                next_seed_warning = now + Duration::from_secs(5);
            }
        }
        self.bus.close();
        info!(id = %self.info.id, "node stopped");
    }

    /// Measures this process and publishes the signals (see `publish_signals`).
    fn sample_signals(&mut self) {
        let Some(sampler) = &mut self.sampler else {
            return;
        };
        self.measured = sampler.sample(&self.service_load, self.node.stats(), self.send_errors);
        self.publish_signals();
    }

    /// Publishes the measured signals, the application's error share folded in, when they
    /// moved noticeably (at most one metadata change per `node.signals-interval`), counting
    /// what that costs.
    fn publish_signals(&mut self) {
        let mut signals = self.measured;
        signals.error_pct = signals.error_pct.max(self.app_error_pct);
        let id = self.info.id.as_str();
        let before = self.node.record(id).map(|r| r.meta.signals);
        self.node.set_signals(signals);
        if let Some(r) = self.node.record(id) {
            if Some(r.meta.signals) != before {
                let bytes = membership::codec::metadata_len(&r.meta) as u64;
                self.metrics.signals_published(bytes);
            }
        }
    }

    /// While anyone listens: the changes the core has no event for, from the view compared
    /// with the one a second ago (metadata within a generation, HEALTHY <-> DEGRADED).
    fn compare(&mut self, now: Duration) {
        if !self.bus.has_subscribers() {
            self.compared.clear();
            return;
        }
        let view = self.node.view(now);
        let mut next = HashMap::with_capacity(view.members.len());
        for m in &view.members {
            let member = Member::from_view(m);
            if let Some(before) = self.compared.get(&member.id) {
                let alive = |s: Status| matches!(s, Status::Healthy | Status::Degraded);
                let changed = before.generation == member.generation
                    && ((alive(before.status)
                        && alive(member.status)
                        && before.status != member.status)
                        || !before.same_metadata(&member));
                if changed {
                    self.bus.publish(
                        public::Event::MemberUpdated(member.clone()),
                        SystemTime::now(),
                    );
                }
            }
            next.insert(member.id.clone(), member);
        }
        self.compared = next;
    }

    /// The typed event of a core event, with what the record says about the member.
    fn public_event(&self, event: &Event) -> Option<public::Event> {
        let member = |id: &str, status: Status, generation: Option<u64>| {
            let mut m = match self.node.record(id) {
                Some(r) => Member::from_record(r, status),
                None => Member::new(id, status, 0),
            };
            if let Some(g) = generation {
                m.generation = g;
            }
            m
        };
        Some(match event {
            Event::MemberJoined { id, generation } => {
                public::Event::MemberJoined(member(id, Status::Healthy, Some(*generation)))
            }
            Event::MemberRejoined { id, generation } => {
                public::Event::MemberRejoined(member(id, Status::Healthy, Some(*generation)))
            }
            Event::MemberSuspected { id, .. } => {
                public::Event::MemberSuspect(member(id, Status::Suspect, None))
            }
            Event::MemberRefuted { id, .. } => {
                public::Event::MemberUpdated(member(id, Status::Healthy, None))
            }
            Event::MemberFailed { id, generation, .. } => {
                public::Event::MemberFailed(member(id, Status::Failed, Some(*generation)))
            }
            Event::MemberEvicted { id, .. } => {
                let left = self
                    .node
                    .record(id)
                    .is_some_and(|r| r.liveness == Liveness::Left);
                let status = if left { Status::Left } else { Status::Failed };
                public::Event::MemberRemoved(member(id, status, None))
            }
            Event::MemberLeft { id } => public::Event::MemberLeft(member(id, Status::Left, None)),
            Event::QuorumChanged {
                has_quorum: true,
                reachable,
                voters,
            } => public::Event::QuorumGained {
                reachable: *reachable,
                voters: *voters,
            },
            Event::QuorumChanged {
                has_quorum: false,
                reachable,
                voters,
            } => public::Event::QuorumLost {
                reachable: *reachable,
                voters: *voters,
            },
            Event::LeaderChanged { leader } => public::Event::LeaderChanged {
                leader: leader.as_ref().map(ToString::to_string),
            },
            Event::SelfRejoined { generation, reason } => public::Event::Convicted {
                generation: *generation,
                reason: reason.to_string(),
            },
            Event::IdConflict { .. } => return None,
        })
    }

    /// Per-source rate limit, seal check, replay window, per-member rate limit, then the
    /// core.
    fn receive(&mut self, now: Duration, from: SocketAddr, datagram: &[u8], out: &mut Effects) {
        if !self.limiter.allow(from, now) {
            self.metrics.rejected("rate_limited");
            return;
        }
        let Some(ring) = &self.options.keyring else {
            if let Err(e) = self.node.handle_datagram(now, from, datagram, out) {
                debug!(%from, error = %e, "dropped a datagram");
            }
            return;
        };
        let result = match ring.open(datagram) {
            Err(e) => {
                self.metrics.rejected(e.reason());
                debug!(%from, error = %e, "dropped a datagram");
                return;
            }
            // unsealed, accepted while security.verify-incoming is off: nothing vouches
            // for it, and it keeps counting against its source's bucket
            Ok(Opened {
                datagram,
                stamp: None,
            }) => self.node.handle_datagram(now, from, &datagram, out),
            Ok(Opened {
                datagram,
                stamp: Some(stamp),
            }) => {
                if let Err(e) = self.replays.check(&stamp) {
                    self.metrics.rejected("replayed");
                    debug!(%from, error = %e, "dropped a replayed datagram");
                    return;
                }
                // A member's fresh datagram: its token goes back, so that what others send
                // from this address (replays, garbage) is all the source bucket counts.
                self.limiter.refund(from);
                if !self.members.allow(stamp.sender, now) {
                    self.metrics.rejected("member_rate_limited");
                    return;
                }
                self.node
                    .handle_authenticated_datagram(now, from, &datagram, out)
            }
        };
        if let Err(e) = result {
            debug!(%from, error = %e, "dropped a datagram");
        }
    }

    fn change_keys(&mut self, op: KeyOp) -> Result<Vec<Key>, KeysError> {
        let ring = self.options.keyring.as_mut().ok_or(KeysError::Disabled)?;
        let changed = match op {
            KeyOp::List => false,
            KeyOp::Install(k) => {
                let had = ring.keys().contains(&k);
                ring.install(k)?;
                !had
            }
            KeyOp::Use(k) => {
                let was = ring.keys()[0] == k;
                ring.use_key(&k)?;
                !was
            }
            KeyOp::Remove(k) => {
                ring.remove(&k)?;
                true
            }
        };
        let keys = ring.keys().to_vec();
        if changed {
            info!(keys = keys.len(), "gossip keyring changed");
            if let Some(path) = &self.options.keyring_file {
                store::save(path, &keys).map_err(|e| KeysError::NotSaved(e.to_string()))?;
            }
        }
        Ok(keys)
    }

    fn start_leave(&mut self, now: Duration, effects: &mut Effects) {
        if self.leaving_until.is_some() {
            return;
        }
        info!(
            linger_ms = self.options.leave_linger.as_millis() as u64,
            "leaving the cluster"
        );
        self.node.leave(now, effects);
        self.leaving_until = Some(now + self.options.leave_linger);
    }

    fn command(&mut self, now: Duration, cmd: Command, effects: &mut Effects) {
        match cmd {
            Command::Snapshot(reply) => {
                let snapshot = Snapshot {
                    view: self.node.view(now),
                    stats: self.node.stats().clone(),
                    now,
                    wall_epoch: self.wall_epoch,
                    joined: self.joined,
                    leaving: self.leaving_until.is_some(),
                    last_change: self.bus.last_id(),
                };
                let _ = reply.send(snapshot);
            }
            Command::Leave(reply) => {
                self.start_leave(now, effects);
                let _ = reply.send(());
            }
            Command::ForceRemove(id, reply) => {
                let result = self.node.force_remove(now, &id, effects);
                match &result {
                    Ok(()) => warn!(member = %id, "member force-removed by an operator"),
                    Err(e) => info!(member = %id, error = %e, "force-remove refused"),
                }
                let _ = reply.send(result);
            }
            Command::Keys(op, reply) => {
                let _ = reply.send(self.change_keys(op));
            }
            Command::SetTag(key, value, reply) => {
                let _ = reply.send(self.node.set_tag(&key, value.as_deref()));
            }
            Command::AppHealth(error_pct, reply) => {
                self.app_error_pct = error_pct.min(100);
                self.publish_signals();
                let _ = reply.send(());
            }
            Command::Join(addrs, reply) => {
                let result = self.node.join(now, &addrs, effects);
                match &result {
                    Ok(contacted) => info!(?contacted, "joining through an operator's addresses"),
                    Err(e) => info!(error = %e, "join refused"),
                }
                let _ = reply.send(result);
            }
            Command::SetSeeds(seeds) => {
                if self.node.set_seeds(now, seeds.clone()) {
                    info!(?seeds, "seed addresses changed (re-resolved)");
                }
            }
        }
    }

    async fn flush(&mut self, effects: &mut Effects) {
        for (to, datagram) in effects.sends.drain(..) {
            let datagram = match &self.options.keyring {
                Some(ring) => {
                    self.stamp.counter += 1;
                    ring.seal(&datagram, self.stamp)
                }
                None => datagram,
            };
            if let Err(e) = self.transport.send_to(to, &datagram).await {
                self.send_errors += 1;
                debug!(%to, error = %e, "send failed");
            }
        }
        let now = self.now();
        self.event_log.sweep(now);
        if effects.events.is_empty() {
            return;
        }
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let at = SystemTime::now();
        for event in std::mem::take(&mut effects.events) {
            if let Some(typed) = self.public_event(&event) {
                self.bus.publish(typed, at);
            }
            self.event_log.log(now, &event);
            self.metrics.on_event(&event, self.info.generation, wall_ms);
            if matches!(
                event,
                Event::MemberJoined { .. } | Event::MemberRejoined { .. }
            ) {
                self.joined = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
