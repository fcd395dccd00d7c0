//! The seeded virtual network: per-link latency with jitter, loss, partitions.
//!
//! Every random draw comes from one `SmallRng` seeded by the run, so the same seed gives
//! the same deliveries in the same order. Latency is `base + jitter * z` with `z` a standard
//! normal draw, clamped at zero; with jitter, two datagrams on one link may arrive out of
//! order, as UDP allows. Partitions are checked when a datagram is sent (datagrams already
//! in flight still arrive, as on a real network).

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Network knobs that apply to every link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkConfig {
    /// Mean one-way latency of a link.
    pub latency: Duration,
    /// Standard deviation of the latency (normal jitter; the result is never negative).
    pub jitter: Duration,
    /// Probability that any datagram is lost, 0..1.
    pub loss: f64,
}

impl Default for NetworkConfig {
    /// A quiet LAN: 1 ms, no jitter, no loss.
    fn default() -> Self {
        NetworkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Arrives after this latency.
    Deliver(Duration),
    /// Lost at random.
    Lost,
    /// Dropped by a partition.
    Cut,
}

/// A one-way cut: datagrams from any node in `from` to any node in `to` are dropped.
#[derive(Debug, Clone)]
struct OneWayCut {
    from: Vec<bool>,
    to: Vec<bool>,
}

/// The network state: configuration, per-node loss, partitions and the RNG.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    rng: SmallRng,
    node_loss: Vec<f64>,
    /// Two-way partition group of each node (0 = the group of every node not listed).
    group: Vec<u32>,
    partitioned: bool,
    one_way: Vec<OneWayCut>,
}

impl Network {
    /// A network for `nodes` nodes (it grows as nodes are added), seeded by `seed`.
    pub fn new(config: NetworkConfig, nodes: usize, seed: u64) -> Self {
        Network {
            config,
            rng: SmallRng::seed_from_u64(seed),
            node_loss: vec![0.0; nodes],
            group: vec![0; nodes],
            partitioned: false,
            one_way: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> NetworkConfig {
        self.config
    }

    /// Makes room for node index `i`.
    pub fn ensure(&mut self, i: usize) {
        if i >= self.node_loss.len() {
            self.node_loss.resize(i + 1, 0.0);
            self.group.resize(i + 1, 0);
        }
    }

    /// Sets the global loss probability.
    pub fn set_loss(&mut self, loss: f64) {
        self.config.loss = loss.clamp(0.0, 1.0);
    }

    /// Sets the global latency and jitter.
    pub fn set_latency(&mut self, latency: Duration, jitter: Duration) {
        self.config.latency = latency;
        self.config.jitter = jitter;
    }

    /// Sets the loss probability of every datagram sent by or to node `i`.
    pub fn set_node_loss(&mut self, i: usize, loss: f64) {
        self.ensure(i);
        self.node_loss[i] = loss.clamp(0.0, 1.0);
    }

    /// Splits the network into two-way isolated groups. Nodes not listed form one more
    /// group together. Replaces any previous partition (one-way cuts stay).
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.group.iter_mut().for_each(|g| *g = 0);
        for (k, members) in groups.iter().enumerate() {
            for &i in members {
                self.ensure(i);
                self.group[i] = k as u32 + 1;
            }
        }
        self.partitioned = true;
    }

    /// Drops every datagram from a node in `from` to a node in `to` (not the reverse).
    pub fn cut_one_way(&mut self, from: &[usize], to: &[usize]) {
        let n = self
            .group
            .len()
            .max(from.iter().chain(to).map(|&i| i + 1).max().unwrap_or(0));
        let mut cut = OneWayCut {
            from: vec![false; n],
            to: vec![false; n],
        };
        from.iter().for_each(|&i| cut.from[i] = true);
        to.iter().for_each(|&i| cut.to[i] = true);
        self.one_way.push(cut);
    }

    /// Removes every partition and one-way cut.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.partitioned = false;
        self.one_way.clear();
    }

    /// Whether a two-way partition is in force.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Whether any one-way cut is in force.
    pub fn has_one_way_cuts(&self) -> bool {
        !self.one_way.is_empty()
    }

    /// Whether datagrams sent by or to node `i` may be lost at random (global or per-node
    /// loss above zero).
    pub fn has_loss(&self, i: usize) -> bool {
        self.config.loss > 0.0 || self.node_loss.get(i).copied().unwrap_or(0.0) > 0.0
    }

    /// The two-way partition group of node `i` (all 0 when not partitioned).
    pub fn group_of(&self, i: usize) -> u32 {
        self.group.get(i).copied().unwrap_or(0)
    }

    /// Whether `from` can currently send to `to` (partitions only, no loss).
    pub fn connected(&self, from: usize, to: usize) -> bool {
        if self.group_of(from) != self.group_of(to) {
            return false;
        }
        !self.one_way.iter().any(|c| {
            c.from.get(from).copied().unwrap_or(false) && c.to.get(to).copied().unwrap_or(false)
        })
    }

    /// Decides the fate of one datagram from `from` to `to`.
    pub fn route(&mut self, from: usize, to: usize) -> Fate {
        if !self.connected(from, to) {
            return Fate::Cut;
        }
        let keep = (1.0 - self.config.loss)
            * (1.0 - self.node_loss.get(from).copied().unwrap_or(0.0))
            * (1.0 - self.node_loss.get(to).copied().unwrap_or(0.0));
        if keep < 1.0 && self.rng.random::<f64>() >= keep {
            return Fate::Lost;
        }
        Fate::Deliver(self.latency())
    }

    /// One latency draw: base plus normal jitter, never negative.
    fn latency(&mut self) -> Duration {
        let base = self.config.latency.as_secs_f64();
        let sigma = self.config.jitter.as_secs_f64();
        if sigma == 0.0 {
            return self.config.latency;
        }
        Duration::from_secs_f64((base + sigma * self.standard_normal()).max(0.0))
    }

    /// Box-Muller: a standard normal draw from two uniform ones (no `rand_distr` needed).
    fn standard_normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]: ln is finite
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_cuts_both_ways_and_heal_restores() {
        let mut n = Network::new(NetworkConfig::default(), 4, 1);
        n.partition(&[vec![0, 1]]);
        assert_eq!(n.route(0, 2), Fate::Cut);
        assert_eq!(n.route(2, 0), Fate::Cut);
        assert!(matches!(n.route(0, 1), Fate::Deliver(_)));
        assert!(matches!(n.route(2, 3), Fate::Deliver(_)));
        n.heal();
        assert!(matches!(n.route(0, 2), Fate::Deliver(_)));
    }

    #[test]
    fn one_way_cut_drops_one_direction_only() {
        let mut n = Network::new(NetworkConfig::default(), 3, 1);
        n.cut_one_way(&[0], &[1, 2]);
        assert_eq!(n.route(0, 1), Fate::Cut);
        assert!(matches!(n.route(1, 0), Fate::Deliver(_)));
    }

    #[test]
    fn jittered_latency_is_never_negative_and_loss_is_near_its_rate() {
        let config = NetworkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(100),
            loss: 0.05,
        };
        let mut n = Network::new(config, 2, 7);
        let mut lost = 0;
        for _ in 0..10_000 {
            match n.route(0, 1) {
                Fate::Lost => lost += 1,
                Fate::Deliver(d) => assert!(d <= Duration::from_secs(1)),
                Fate::Cut => unreachable!(),
            }
        }
        assert!((350..650).contains(&lost), "{lost}");
    }
}
