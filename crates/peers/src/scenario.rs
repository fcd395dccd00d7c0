//! The measurement runs, identical for every protocol.
//!
//! **Main run** (quiet LAN: 1 ms, no jitter, no loss): all N nodes start at t = 0 (node 0
//! founds the cluster, the others join through nodes 0-2); cold-join convergence is the
//! time until every node lists all N as members. Then 10 s of settling and a 10 s window
//! that measures bytes sent per node per second. Then 5 late joins and 5 graceful leaves,
//! one at a time (the spread of one change: from the change until every live member
//! reflects it). Then min(5, (N - 1) / 2) crashes, one at a time: from the crash until
//! every live member has declared the crashed node failed/down. The nodes that leave and
//! crash are drawn from the run seed, so every protocol loses the same nodes.
//!
//! **Noise run**: a fresh cluster on a network with 100 ms σ latency jitter and 5 % loss,
//! cold join, then a quiet run to the given duration: every conviction of a member that
//! was running at that generation is a false positive (the cold join included). Bandwidth
//! under noise is measured from 10 s after the cold join to the end.
//!
//! A cold join that has not converged after [`COLD_JOIN_DEADLINE`] is noted and the run
//! goes on.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use serde::Serialize;
use sim::network::NetworkConfig;
use sim::report::{percentile, round3};
use sim::sim::derive_seed;

use crate::harness::{Cluster, Peer, Predicate};

/// Every figure of one protocol at one size. Times in virtual seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// Protocol name.
    pub protocol: String,
    /// Nodes at the start.
    pub nodes: usize,
    /// Run seed.
    pub seed: u64,
    /// Cold join: start until every node lists every node.
    pub convergence_s: Option<f64>,
    /// One change (late join or graceful leave) reaching every live member, p99.
    pub spread_p99_s: Option<f64>,
    /// Same, median.
    pub spread_p50_s: Option<f64>,
    /// Changes measured.
    pub spread_samples: usize,
    /// Crash until every live member marks it failed, median.
    pub detect_p50_s: Option<f64>,
    /// Same, p99.
    pub detect_p99_s: Option<f64>,
    /// Crashes measured.
    pub detect_samples: usize,
    /// Every crash's detection time, in crash order.
    pub detect_all_s: Vec<f64>,
    /// Every change's spread time (joins, then leaves).
    pub spread_all_s: Vec<f64>,
    /// False convictions in the noise run (`None`: not run).
    pub false_positives: Option<u64>,
    /// Examples of them.
    pub false_positive_examples: Vec<String>,
    /// Virtual seconds the noise run lasted.
    pub noise_run_s: Option<f64>,
    /// Mean over nodes of bytes sent per second, steady window on the quiet network.
    pub bytes_per_node_s_mean: Option<f64>,
    /// Busiest node's bytes sent per second in that window.
    pub bytes_per_node_s_max: Option<f64>,
    /// Mean bytes per node per second in the noise run, from 10 s after the cold join to the end.
    pub noise_bytes_per_node_s_mean: Option<f64>,
    /// Largest datagram sent in either run.
    pub max_message_bytes: usize,
    /// Deadlines missed and other remarks.
    pub notes: Vec<String>,
    /// Wall-clock seconds for both runs.
    pub wall_s: f64,
}

/// How long a cold join may take before the run notes it and goes on.
pub const COLD_JOIN_DEADLINE: Duration = Duration::from_secs(300);

/// Runs the main and the noise run for protocol `P` at `nodes` nodes. `noise` is the
/// virtual length of the noise run (`None` skips it).
pub fn measure<P: Peer>(name: &str, nodes: usize, seed: u64, noise: Option<Duration>) -> Metrics {
    let wall = Instant::now();
    let mut m = Metrics {
        protocol: name.to_string(),
        nodes,
        seed,
        ..Metrics::default()
    };
    main_run::<P>(&mut m, nodes, seed);
    if let Some(d) = noise {
        noise_run::<P>(&mut m, nodes, seed, d);
    }
    m.wall_s = round3(wall.elapsed().as_secs_f64());
    m
}

fn cold_start<P: Peer>(c: &mut Cluster<P>, m: &mut Metrics, nodes: usize) -> Option<f64> {
    for _ in 0..nodes {
        c.add_node();
    }
    let t = c.track(Predicate::AllAlive { expected: nodes });
    let deadline = COLD_JOIN_DEADLINE;
    if c.wait_tracker(t, deadline) {
        c.tracker(t).all_s().map(round3)
    } else {
        m.notes.push(format!(
            "cold join did not converge within {:.0} s: {} of {nodes} nodes saw all {nodes}",
            deadline.as_secs_f64(),
            c.tracker(t).done()
        ));
        None
    }
}

fn main_run<P: Peer>(m: &mut Metrics, nodes: usize, seed: u64) {
    let mut c: Cluster<P> = Cluster::new(nodes, seed, NetworkConfig::default());
    let mut rng = SmallRng::seed_from_u64(derive_seed(seed, 0xfa17, 0));
    m.convergence_s = cold_start(&mut c, m, nodes);

    // Steady state: settle, then measure bandwidth over 10 s.
    c.run_for(Duration::from_secs(10));
    let window = Duration::from_secs(10);
    let before = c.bytes_sent();
    let live = c.live_nodes();
    c.run_for(window);
    let after = c.bytes_sent();
    let rates: Vec<f64> = live
        .iter()
        .map(|&i| (after[i] - before[i]) as f64 / window.as_secs_f64())
        .collect();
    if !rates.is_empty() {
        m.bytes_per_node_s_mean = Some(round3(rates.iter().sum::<f64>() / rates.len() as f64));
        m.bytes_per_node_s_max = Some(round3(rates.iter().copied().fold(0.0, f64::max)));
    }

    // One change at a time: 5 late joins, then 5 graceful leaves.
    let mut spread = Vec::new();
    for _ in 0..5 {
        let i = c.add_node();
        let t = c.track(Predicate::Knows {
            member: i,
            generation: 1,
        });
        if c.wait_tracker(t, c.now() + Duration::from_secs(30)) {
            spread.extend(c.tracker(t).all_s());
        } else {
            m.notes
                .push(format!("late joiner n{i} not known by all within 30 s"));
        }
        c.run_for(Duration::from_secs(1));
    }
    for _ in 0..5 {
        let candidates: Vec<usize> = c.live_nodes().into_iter().filter(|&i| i >= 3).collect();
        if candidates.len() < 3 {
            break;
        }
        let Some(&i) = candidates.choose(&mut rng) else {
            break;
        };
        let generation = c.slots[i].generation;
        c.leave(i);
        let t = c.track(Predicate::Gone {
            member: i,
            generation,
        });
        if c.wait_tracker(t, c.now() + Duration::from_secs(30)) {
            spread.extend(c.tracker(t).all_s());
        } else {
            m.notes
                .push(format!("n{i} leaving not seen by all within 30 s"));
        }
        c.run_for(Duration::from_secs(1));
    }
    m.spread_samples = spread.len();
    m.spread_all_s = spread.iter().copied().map(round3).collect();
    m.spread_p99_s = percentile(&spread, 99.0);
    m.spread_p50_s = percentile(&spread, 50.0);

    // Crashes, one at a time.
    let crashes = (nodes.saturating_sub(1) / 2).min(5);
    let mut detect = Vec::new();
    for _ in 0..crashes {
        let live = c.live_nodes();
        let Some(&i) = live.choose(&mut rng) else {
            break;
        };
        let generation = c.slots[i].generation;
        c.crash(i);
        let t = c.track(Predicate::Gone {
            member: i,
            generation,
        });
        if c.wait_tracker(t, c.now() + Duration::from_secs(60)) {
            detect.extend(c.tracker(t).all_s());
        } else {
            m.notes.push(format!(
                "crashed n{i} not marked down by all within 60 s ({} did)",
                c.tracker(t).done()
            ));
        }
        c.run_for(Duration::from_secs(2));
    }
    m.detect_samples = detect.len();
    m.detect_all_s = detect.iter().copied().map(round3).collect();
    m.detect_p50_s = percentile(&detect, 50.0);
    m.detect_p99_s = percentile(&detect, 99.0);
    m.max_message_bytes = m.max_message_bytes.max(c.counters.max_message_bytes);
    if c.counters.false_positives > 0 {
        m.notes.push(format!(
            "{} false convictions on the quiet network, e.g. {:?}",
            c.counters.false_positives,
            c.counters.false_positive_examples.first()
        ));
    }
}

fn noise_run<P: Peer>(m: &mut Metrics, nodes: usize, seed: u64, duration: Duration) {
    let network = NetworkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(100),
        loss: 0.05,
    };
    let mut c: Cluster<P> = Cluster::new(nodes, seed, network);
    if cold_start(&mut c, m, nodes).is_none() {
        m.notes
            .push("(the note above is about the noise run)".into());
    }
    // Bandwidth under noise: from 10 s after the cold join to the end.
    c.run_for(Duration::from_secs(10));
    let from = c.now();
    let before = c.bytes_sent();
    c.run_until(duration.max(c.now() + Duration::from_secs(10)));
    let secs = (c.now() - from).as_secs_f64();
    m.noise_run_s = Some(round3(c.now().as_secs_f64()));
    m.false_positives = Some(c.counters.false_positives);
    m.false_positive_examples = c.counters.false_positive_examples.clone();
    let live = c.live_nodes();
    let total: u64 = live
        .iter()
        .map(|&i| c.slots[i].bytes_sent - before[i])
        .sum();
    if !live.is_empty() && secs > 0.0 {
        m.noise_bytes_per_node_s_mean = Some(round3(total as f64 / secs / live.len() as f64));
    }
    m.max_message_bytes = m.max_message_bytes.max(c.counters.max_message_bytes);
}
