//! chitchat (scuttlebutt gossip + phi-accrual detection) on the same virtual network.
//!
//! chitchat is not sans-IO: its state machine's message handlers are crate-private and its
//! server is a tokio task (`spawn_chitchat`) with a `tokio::time::interval` gossip timer and
//! `tokio::time::Instant` in its failure detector. So every node runs as its real server
//! task inside one current-thread tokio runtime with **paused time** (tokio's test clock,
//! which jumps to the next timer whenever every task is idle), talking through a
//! [`chitchat::transport::Transport`] of our own that serializes each envelope (its byte
//! count is what we measure), routes it through `sim`'s [`Network`] (same latency model,
//! loss and seed-derived draws as the other protocols) and delivers it after the drawn
//! latency. Differences from the other two, stated in `docs/benchmarks.md`:
//! - chitchat's server seeds its peer-selection RNG from the thread RNG, so its runs are
//!   not bit-for-bit reproducible (the network draws and the fault schedule are);
//! - tokio's clock has millisecond resolution, so latencies are rounded to 1 ms;
//! - chitchat has no graceful leave: where the others leave, its node is stopped (and no
//!   spread sample is taken for it).
//!
//! Configuration: chitchat's own defaults (the `Default` its sources define, which its
//! tests use: gossip every 1 s, `FailureDetectorConfig::default()`: phi 8, window 1000,
//! initial interval 5 s, max interval 10 s), with `ProtocolVersion::V1` (the latest wire
//! format, compressed digests).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chitchat::transport::{ChannelTransport, RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatEnvelope, ChitchatHandle, ChitchatId,
    FailureDetectorConfig, ProtocolVersion,
};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use sim::network::{Fate, Network, NetworkConfig};
use sim::process::{index_of, node_addr, node_id};
use sim::sim::derive_seed;
use tokio::sync::mpsc;

use crate::scenario::Metrics;
use sim::report::{percentile, round3};

/// Shared state of the virtual network.
struct Net {
    network: Network,
    inbox: HashMap<usize, mpsc::UnboundedSender<(usize, ChitchatEnvelope, usize)>>,
    running: Vec<bool>,
    bytes_sent: Vec<u64>,
    max_message: usize,
    t0: tokio::time::Instant,
}

impl Net {
    fn ensure(&mut self, i: usize) {
        if i >= self.running.len() {
            self.running.resize(i + 1, false);
            self.bytes_sent.resize(i + 1, 0);
        }
        self.network.ensure(i);
    }
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// chitchat's wire encoding is crate-private, so each envelope is measured by chitchat's
/// own in-memory transport: the node sends it to itself over a [`ChannelTransport`] (which
/// serializes it, checks the 65,507-byte UDP limit and deserializes it, as its tests do)
/// and reads back the decoded envelope and its byte count; that copy then travels the
/// virtual network.
#[derive(Clone)]
struct SimTransport {
    net: Shared<Net>,
    meter: ChannelTransport,
}

struct SimSocket {
    me: usize,
    addr: SocketAddr,
    net: Shared<Net>,
    meter: Box<dyn Socket>,
    meter_addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<(usize, ChitchatEnvelope, usize)>,
}

/// The largest UDP payload, chitchat's own datagram limit.
const MAX_UDP_PAYLOAD: usize = 65_507;

#[async_trait]
impl Transport for SimTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let me = index_of(listen_addr).ok_or_else(|| anyhow::anyhow!("not a sim address"))?;
        let meter = self
            .meter
            .open(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await?;
        let meter_addr = meter.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut net = lock(&self.net);
        net.ensure(me);
        net.inbox.insert(me, tx);
        Ok(Box::new(SimSocket {
            me,
            addr: listen_addr,
            net: self.net.clone(),
            meter,
            meter_addr,
            rx,
        }))
    }
}

#[async_trait]
impl Socket for SimSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.addr)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        self.meter.send(self.meter_addr, envelope).await?;
        let RecvOutcome {
            envelope,
            num_bytes_received: len,
            ..
        } = self.meter.recv().await?;
        let mut net = lock(&self.net);
        if !net.running.get(self.me).copied().unwrap_or(false) {
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        net.bytes_sent[self.me] += len as u64;
        net.max_message = net.max_message.max(len);
        let Some(j) = index_of(to) else {
            return Ok(SendOutcome {
                num_bytes_sent: len,
            });
        };
        net.ensure(j);
        if let Fate::Deliver(latency) = net.network.route(self.me, j) {
            let net2 = self.net.clone();
            let from = self.me;
            tokio::spawn(async move {
                tokio::time::sleep(latency).await;
                let net = lock(&net2);
                if net.running.get(j).copied().unwrap_or(false) {
                    if let Some(tx) = net.inbox.get(&j) {
                        let _ = tx.send((from, envelope, len));
                    }
                }
            });
        }
        Ok(SendOutcome {
            num_bytes_sent: len,
        })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        let Some((from, envelope, len)) = self.rx.recv().await else {
            // The harness dropped the inbox: this node is gone; park forever.
            return std::future::pending().await;
        };
        Ok(RecvOutcome {
            from_addr: node_addr(from),
            envelope,
            num_bytes_received: len,
        })
    }
}

/// What the observers saw, fed by each node's live-nodes watcher.
#[derive(Default)]
struct Obs {
    /// Per node: the members its last live-nodes update listed.
    live: Vec<HashSet<usize>>,
    trackers: Vec<Track>,
    false_positives: u64,
    examples: Vec<String>,
    running: Vec<bool>,
}

#[derive(Clone)]
enum Pred {
    AllAlive(usize),
    Knows(usize),
    Gone(usize),
}

struct Track {
    pred: Pred,
    started: Duration,
    done_at: HashMap<usize, Duration>,
    all_at: Option<Duration>,
}

impl Pred {
    fn subject(&self) -> Option<usize> {
        match self {
            Pred::AllAlive(_) => None,
            Pred::Knows(j) | Pred::Gone(j) => Some(*j),
        }
    }
    fn holds(&self, live: &HashSet<usize>) -> bool {
        match self {
            Pred::AllAlive(n) => live.len() == *n,
            Pred::Knows(j) => live.contains(j),
            Pred::Gone(j) => !live.contains(j),
        }
    }
}

impl Obs {
    fn update(&mut self, i: usize, live: HashSet<usize>, now: Duration) {
        if i >= self.live.len() {
            self.live.resize(i + 1, HashSet::new());
        }
        if self.running.get(i).copied().unwrap_or(false) {
            for &j in self.live[i].difference(&live) {
                if self.running.get(j).copied().unwrap_or(false) {
                    self.false_positives += 1;
                    if self.examples.len() < 10 {
                        self.examples
                            .push(format!("{:.3}s n{i}: n{j}", now.as_secs_f64()));
                    }
                }
            }
            for t in &mut self.trackers {
                if t.all_at.is_none()
                    && t.pred.subject() != Some(i)
                    && !t.done_at.contains_key(&i)
                    && t.pred.holds(&live)
                {
                    t.done_at.insert(i, now);
                }
            }
        }
        self.live[i] = live;
    }

    fn complete(&mut self) {
        for t in &mut self.trackers {
            if t.all_at.is_some() {
                continue;
            }
            let mut last = t.started;
            let mut ok = true;
            for (i, &r) in self.running.iter().enumerate() {
                if !r || t.pred.subject() == Some(i) {
                    continue;
                }
                match t.done_at.get(&i) {
                    Some(&d) => last = last.max(d),
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                t.all_at = Some(last);
            }
        }
    }
}

struct Cluster {
    net: Shared<Net>,
    obs: Shared<Obs>,
    handles: Vec<Option<ChitchatHandle>>,
    meter: ChannelTransport,
    step: Duration,
}

fn config(i: usize, seeds: &[usize]) -> ChitchatConfig {
    let addr = node_addr(i);
    ChitchatConfig {
        chitchat_id: ChitchatId::new(node_id(i), 1, addr),
        cluster_id: "vigil-sim".into(),
        gossip_interval: Duration::from_secs(1),
        listen_addr: addr,
        seed_nodes: seeds.iter().map(|&s| node_addr(s).to_string()).collect(),
        failure_detector_config: FailureDetectorConfig::default(),
        marked_for_deletion_grace_period: Duration::from_secs(15 * 60),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: ProtocolVersion::V1,
    }
}

impl Cluster {
    fn new(nodes: usize, seed: u64, network: NetworkConfig) -> Self {
        Cluster {
            net: Arc::new(Mutex::new(Net {
                network: Network::new(network, nodes, derive_seed(seed, 2, 0)),
                inbox: HashMap::new(),
                running: Vec::new(),
                bytes_sent: Vec::new(),
                max_message: 0,
                t0: tokio::time::Instant::now(),
            })),
            obs: Arc::new(Mutex::new(Obs::default())),
            handles: Vec::new(),
            meter: ChannelTransport::with_mtu(MAX_UDP_PAYLOAD),
            step: if nodes <= 100 {
                Duration::from_millis(20)
            } else {
                Duration::from_millis(100)
            },
        }
    }

    fn now(&self) -> Duration {
        lock(&self.net).t0.elapsed()
    }

    async fn add_node(&mut self) -> usize {
        let i = self.handles.len();
        let seeds: Vec<usize> = if i == 0 {
            Vec::new()
        } else {
            (0..3.min(i + 1)).filter(|&s| s != i).collect()
        };
        {
            let mut net = lock(&self.net);
            net.ensure(i);
            net.running[i] = true;
            let mut obs = lock(&self.obs);
            if obs.running.len() <= i {
                obs.running.resize(i + 1, false);
            }
            obs.running[i] = true;
        }
        let transport = SimTransport {
            net: self.net.clone(),
            meter: self.meter.clone(),
        };
        let handle = spawn_chitchat(config(i, &seeds), Vec::new(), &transport)
            .await
            .expect("the simulated transport always opens");
        let mut rx = handle.chitchat().lock().await.live_nodes_watcher();
        let obs = self.obs.clone();
        let net = self.net.clone();
        tokio::spawn(async move {
            loop {
                let live: HashSet<usize> = rx
                    .borrow_and_update()
                    .keys()
                    .filter_map(|id| index_of(id.gossip_advertise_addr))
                    .collect();
                let now = lock(&net).t0.elapsed();
                lock(&obs).update(i, live, now);
                if rx.changed().await.is_err() {
                    break;
                }
            }
        });
        self.handles.push(Some(handle));
        i
    }

    fn stop(&mut self, i: usize) {
        if let Some(h) = self.handles[i].take() {
            h.abort();
        }
        let mut net = lock(&self.net);
        net.running[i] = false;
        net.inbox.remove(&i);
        lock(&self.obs).running[i] = false;
    }

    fn live_nodes(&self) -> Vec<usize> {
        let net = lock(&self.net);
        (0..net.running.len()).filter(|&i| net.running[i]).collect()
    }

    fn track(&mut self, pred: Pred) -> usize {
        let now = self.now();
        let mut obs = lock(&self.obs);
        let mut t = Track {
            pred,
            started: now,
            done_at: HashMap::new(),
            all_at: None,
        };
        for (i, live) in obs.live.iter().enumerate() {
            if obs.running.get(i).copied().unwrap_or(false)
                && t.pred.subject() != Some(i)
                && t.pred.holds(live)
            {
                t.done_at.insert(i, now);
            }
        }
        obs.trackers.push(t);
        obs.trackers.len() - 1
    }

    /// Waits until tracker `k` completes or `within` passes; the seconds it took.
    async fn wait(&mut self, k: usize, within: Duration) -> Result<f64, usize> {
        let deadline = self.now() + within;
        loop {
            {
                let now = self.now();
                let mut obs = lock(&self.obs);
                obs.complete();
                let t = &obs.trackers[k];
                if let Some(at) = t.all_at {
                    return Ok((at - t.started).as_secs_f64());
                }
                if now >= deadline {
                    return Err(t.done_at.len());
                }
            }
            tokio::time::sleep(self.step).await;
        }
    }

    async fn run_for(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn bytes_sent(&self) -> Vec<u64> {
        lock(&self.net).bytes_sent.clone()
    }
}

async fn cold_start(c: &mut Cluster, m: &mut Metrics, nodes: usize) -> Option<f64> {
    for _ in 0..nodes {
        c.add_node().await;
    }
    let k = c.track(Pred::AllAlive(nodes));
    let within = crate::scenario::COLD_JOIN_DEADLINE;
    match c.wait(k, within).await {
        Ok(s) => Some(round3(s)),
        Err(done) => {
            m.notes.push(format!(
                "cold join did not converge within {:.0} s: {done} of {nodes} nodes saw all {nodes}",
                within.as_secs_f64()
            ));
            None
        }
    }
}

/// The same two runs as [`crate::scenario::measure`], for chitchat, each in a fresh
/// current-thread tokio runtime with paused time.
pub fn measure(nodes: usize, seed: u64, noise: Option<Duration>) -> Metrics {
    let wall = Instant::now();
    let mut m = Metrics {
        protocol: "chitchat".into(),
        nodes,
        seed,
        ..Metrics::default()
    };
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
    };
    rt().block_on(main_run(&mut m, nodes, seed));
    if let Some(d) = noise {
        rt().block_on(noise_run(&mut m, nodes, seed, d));
    }
    m.wall_s = round3(wall.elapsed().as_secs_f64());
    m
}

async fn main_run(m: &mut Metrics, nodes: usize, seed: u64) {
    let mut c = Cluster::new(nodes, seed, NetworkConfig::default());
    let mut rng = SmallRng::seed_from_u64(derive_seed(seed, 0xfa17, 0));
    m.convergence_s = cold_start(&mut c, m, nodes).await;

    c.run_for(Duration::from_secs(10)).await;
    let window = Duration::from_secs(10);
    let before = c.bytes_sent();
    let live = c.live_nodes();
    c.run_for(window).await;
    let after = c.bytes_sent();
    let rates: Vec<f64> = live
        .iter()
        .map(|&i| (after[i] - before[i]) as f64 / window.as_secs_f64())
        .collect();
    if !rates.is_empty() {
        m.bytes_per_node_s_mean = Some(round3(rates.iter().sum::<f64>() / rates.len() as f64));
        m.bytes_per_node_s_max = Some(round3(rates.iter().copied().fold(0.0, f64::max)));
    }

    let mut spread = Vec::new();
    for _ in 0..5 {
        let i = c.add_node().await;
        let k = c.track(Pred::Knows(i));
        match c.wait(k, Duration::from_secs(30)).await {
            Ok(s) => spread.push(s),
            Err(_) => m
                .notes
                .push(format!("late joiner n{i} not known by all within 30 s")),
        }
        c.run_for(Duration::from_secs(1)).await;
    }
    // No graceful leave in chitchat: the nodes the others see leave are stopped instead
    // (same nodes, so the crash victims below are the same too), without a spread sample.
    for _ in 0..5 {
        let candidates: Vec<usize> = c.live_nodes().into_iter().filter(|&i| i >= 3).collect();
        if candidates.len() < 3 {
            break;
        }
        let Some(&i) = candidates.choose(&mut rng) else {
            break;
        };
        c.stop(i);
        c.run_for(Duration::from_millis(1500)).await;
    }
    m.spread_samples = spread.len();
    m.spread_all_s = spread.iter().copied().map(round3).collect();
    m.spread_p99_s = percentile(&spread, 99.0);
    m.spread_p50_s = percentile(&spread, 50.0);
    // Let the stopped nodes be convicted first, so they do not count as this run's news.
    c.run_for(Duration::from_secs(60)).await;

    let crashes = (nodes.saturating_sub(1) / 2).min(5);
    let mut detect = Vec::new();
    for _ in 0..crashes {
        let live = c.live_nodes();
        let Some(&i) = live.choose(&mut rng) else {
            break;
        };
        c.stop(i);
        let k = c.track(Pred::Gone(i));
        match c.wait(k, Duration::from_secs(60)).await {
            Ok(s) => detect.push(s),
            Err(done) => m.notes.push(format!(
                "crashed n{i} not marked down by all within 60 s ({done} did)"
            )),
        }
        c.run_for(Duration::from_secs(2)).await;
    }
    m.detect_samples = detect.len();
    m.detect_all_s = detect.iter().copied().map(round3).collect();
    m.detect_p50_s = percentile(&detect, 50.0);
    m.detect_p99_s = percentile(&detect, 99.0);
    m.max_message_bytes = m.max_message_bytes.max(lock(&c.net).max_message);
    let fp = lock(&c.obs).false_positives;
    if fp > 0 {
        m.notes.push(format!(
            "{fp} false convictions on the quiet network, e.g. {:?}",
            lock(&c.obs).examples.first()
        ));
    }
    for i in 0..c.handles.len() {
        c.stop(i);
    }
}

async fn noise_run(m: &mut Metrics, nodes: usize, seed: u64, duration: Duration) {
    let network = NetworkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(100),
        loss: 0.05,
    };
    let mut c = Cluster::new(nodes, seed, network);
    if cold_start(&mut c, m, nodes).await.is_none() {
        m.notes
            .push("(the note above is about the noise run)".into());
    }
    c.run_for(Duration::from_secs(10)).await;
    let from = c.now();
    let before = c.bytes_sent();
    let end = duration.max(from + Duration::from_secs(10));
    c.run_for(end - from).await;
    let secs = (c.now() - from).as_secs_f64();
    m.noise_run_s = Some(round3(c.now().as_secs_f64()));
    {
        let obs = lock(&c.obs);
        m.false_positives = Some(obs.false_positives);
        m.false_positive_examples = obs.examples.clone();
    }
    let live = c.live_nodes();
    let sent = c.bytes_sent();
    let total: u64 = live.iter().map(|&i| sent[i] - before[i]).sum();
    if !live.is_empty() && secs > 0.0 {
        m.noise_bytes_per_node_s_mean = Some(round3(total as f64 / secs / live.len() as f64));
    }
    m.max_message_bytes = m.max_message_bytes.max(lock(&c.net).max_message);
    for i in 0..c.handles.len() {
        c.stop(i);
    }
}
