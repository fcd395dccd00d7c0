//! Protocol configuration: typed knobs, presets and validation.
//!
//! Every knob of the seed system is here under the seed's name (heartbeat interval 1000 ms,
//! failure timeout 15000 ms, gossip fanout 3, phi threshold 8.0); the rest are the knobs a
//! SWIM/phi-accrual hybrid needs. Layering (file, environment, flags) lives in the binary:
//! this module only knows the values and whether they make sense.

use std::time::Duration;

use crate::error::ConfigError;

/// Which side of a partition may keep deciding (names follow Akka's split-brain resolver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitBrainPolicy {
    /// A side holds quorum when it reaches a strict majority of the voters (default).
    KeepMajority,
    /// A side holds quorum when it reaches at least `quorum_size` voters, whatever their total.
    StaticQuorum {
        /// Minimum number of reachable voters (this node included).
        quorum_size: usize,
    },
}

/// All tuning knobs of the membership protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `cluster.heartbeat.interval`: how often a node sends a heartbeat to each of its observers.
    pub heartbeat_interval: Duration,
    /// `cluster.failure.timeout`: an observer that has heard nothing from a subject for this long
    /// accuses it whatever phi says.
    pub failure_timeout: Duration,
    /// `cluster.gossip.fanout`: peers contacted per gossip round.
    pub gossip_fanout: usize,
    /// `cluster.gossip.interval`: time between gossip rounds (a round is skipped when there is
    /// nothing to spread).
    pub gossip_interval: Duration,
    /// `cluster.gossip.retransmit-multiplier`: each update is sent `mult * ceil(log10(n + 1))`
    /// times before it is dropped from the broadcast queue.
    pub retransmit_multiplier: usize,
    /// `cluster.gossip.max-pending`: most updates waiting in the broadcast queue; beyond it
    /// the most-sent are dropped and anti-entropy carries the rest.
    pub max_pending_updates: usize,
    /// `cluster.phi.threshold`: phi above which an observer suspects its subject.
    pub phi_threshold: f64,
    /// `cluster.phi.min-std-deviation`: floor of the inter-arrival standard deviation.
    pub phi_min_std_deviation: Duration,
    /// `cluster.phi.acceptable-heartbeat-pause`: added to the mean inter-arrival time.
    pub acceptable_heartbeat_pause: Duration,
    /// `cluster.phi.window`: inter-arrival samples kept per monitored member.
    pub phi_window: usize,
    /// `cluster.monitoring.observers`: how many members watch each member directly (K).
    pub observers: usize,
    /// `cluster.monitoring.probe-timeout`: before accusing a silent subject, an observer
    /// probes it directly and waits this long for an answer (a lost heartbeat or an observer
    /// set that changed under us then costs one probe, not a suspicion).
    pub probe_timeout: Duration,
    /// `cluster.conviction.confirmations`: distinct accusers needed before a member is
    /// convicted (capped by the number of observers it actually has).
    pub confirmations: usize,
    /// `cluster.conviction.suspicion-timeout`: minimum time between the first accusation and
    /// conviction, so that a live member can refute.
    pub suspicion_timeout: Duration,
    /// `cluster.eviction.grace-period`: how long a FAILED member stays in the view before a
    /// side holding quorum evicts it.
    pub eviction_grace_period: Duration,
    /// `cluster.eviction.tombstone-ttl`: how long an evicted or departed member is remembered
    /// so that stale gossip cannot resurrect it.
    pub tombstone_ttl: Duration,
    /// `cluster.seeds.rejoin-interval`: how often a node re-contacts its seeds.
    pub seed_rejoin_interval: Duration,
    /// `cluster.anti-entropy.interval`: how often a node compares its table with a random peer.
    pub anti_entropy_interval: Duration,
    /// `cluster.health.degraded-threshold`: an alive member scoring below this is DEGRADED.
    pub degraded_threshold: u8,
    /// `cluster.quorum.policy`: the split-brain policy.
    pub split_brain_policy: SplitBrainPolicy,
    /// `cluster.quorum.lease`: how long a voter's grant to a leader lasts. A leader acts only
    /// while grants from a quorum of voters are unexpired, renews them every third of it,
    /// and a successor cannot collect grants until the old ones ran out (see `node::lease`).
    /// It bounds how long a side cut off from the majority may still report quorum.
    pub quorum_lease: Duration,
    /// `cluster.quorum.max-clock-drift`: the largest rate error of any member's monotonic
    /// clock, as a fraction (0.01 = 1 %). Leases are shortened by it on the leader's side.
    pub max_clock_drift: f64,
    /// `cluster.transport.max-datagram`: largest datagram ever sent, in bytes.
    pub max_datagram: usize,
    /// `cluster.local-pause-guard`: if this node itself was not scheduled for this long, it
    /// resets its detectors instead of accusing everyone (Cassandra's guard).
    pub local_pause_guard: Duration,
    /// Whether this node tracks how late its own timeouts run (local health, see
    /// `node::detect`). Not an operator setting: on by default and never read from a file;
    /// the simulator turns it off (`--no-local-health`) to show what it prevents.
    pub local_health: bool,
    /// `cluster.limits.max-members`: most records (members and tombstones, this node
    /// included) the table holds. Records of unknown members beyond it are refused and
    /// counted in [`crate::Stats::members_refused`]; known members keep working.
    pub max_members: usize,
    /// `cluster.limits.max-metadata-bytes`: largest encoded size of one member's metadata
    /// (role, zone, rack, HTTP address, signals, free tags). Larger records from the network
    /// are rejected and counted in [`crate::Stats::records_oversize`]; larger local metadata
    /// is refused when it is set.
    pub max_metadata_bytes: usize,
}

/// Bytes of a datagram that are not metadata in the largest message carrying one record
/// (envelope, sender block, ids of at most [`crate::codec::MAX_ID_LEN`] bytes, addresses and
/// counters): `cluster.limits.max-metadata-bytes` may use at most the rest.
pub const RECORD_OVERHEAD: usize = 400;

impl Default for Config {
    fn default() -> Self {
        Self::lan()
    }
}

impl Config {
    /// Defaults for a LAN: the seed's values plus knobs tuned in the simulator.
    pub fn lan() -> Self {
        Config {
            heartbeat_interval: Duration::from_millis(1000),
            failure_timeout: Duration::from_millis(15_000),
            gossip_fanout: 3,
            gossip_interval: Duration::from_millis(200),
            retransmit_multiplier: 4,
            max_pending_updates: 256,
            phi_threshold: 8.0,
            phi_min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_millis(500),
            phi_window: 100,
            observers: 5,
            probe_timeout: Duration::from_millis(500),
            confirmations: 2,
            suspicion_timeout: Duration::from_millis(1500),
            eviction_grace_period: Duration::from_secs(30),
            tombstone_ttl: Duration::from_secs(3600),
            seed_rejoin_interval: Duration::from_secs(10),
            anti_entropy_interval: Duration::from_secs(1),
            degraded_threshold: 50,
            split_brain_policy: SplitBrainPolicy::KeepMajority,
            quorum_lease: Duration::from_secs(3),
            max_clock_drift: 0.01,
            max_datagram: 1400,
            local_pause_guard: Duration::from_secs(3),
            local_health: true,
            max_members: 10_000,
            max_metadata_bytes: 512,
        }
    }

    /// Defaults for a WAN or a noisy cloud network: slower heartbeats, more patience
    /// (the seed recommends 20 s failure timeouts for clouds).
    pub fn wan() -> Self {
        Config {
            heartbeat_interval: Duration::from_millis(2000),
            failure_timeout: Duration::from_millis(20_000),
            gossip_interval: Duration::from_millis(500),
            acceptable_heartbeat_pause: Duration::from_millis(3000),
            phi_min_std_deviation: Duration::from_millis(300),
            suspicion_timeout: Duration::from_secs(5),
            observers: 7,
            confirmations: 3,
            ..Self::lan()
        }
    }

    /// LAN defaults with the gossip fanout the seed recommends for a cluster of `n` members
    /// (2 below 10, 3 up to 50, 5 above).
    pub fn for_cluster_size(n: usize) -> Self {
        let gossip_fanout = match n {
            0..=9 => 2,
            10..=50 => 3,
            _ => 5,
        };
        Config {
            gossip_fanout,
            ..Self::lan()
        }
    }

    /// Checks every value; the error names the key and says why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(key: &'static str, d: Duration) -> Result<(), ConfigError> {
            if d.is_zero() {
                return Err(ConfigError::new(
                    key,
                    format!("{d:?}"),
                    "must be greater than zero",
                ));
            }
            Ok(())
        }
        positive("cluster.heartbeat.interval", self.heartbeat_interval)?;
        positive("cluster.gossip.interval", self.gossip_interval)?;
        positive(
            "cluster.conviction.suspicion-timeout",
            self.suspicion_timeout,
        )?;
        positive("cluster.seeds.rejoin-interval", self.seed_rejoin_interval)?;
        positive("cluster.anti-entropy.interval", self.anti_entropy_interval)?;
        positive("cluster.phi.min-std-deviation", self.phi_min_std_deviation)?;
        positive("cluster.local-pause-guard", self.local_pause_guard)?;
        positive("cluster.monitoring.probe-timeout", self.probe_timeout)?;
        if self.quorum_lease < self.heartbeat_interval
            || self.quorum_lease > Duration::from_secs(600)
        {
            return Err(ConfigError::new(
                "cluster.quorum.lease",
                format!("{:?}", self.quorum_lease),
                format!(
                    "must be between cluster.heartbeat.interval ({:?}) and 10 minutes",
                    self.heartbeat_interval
                ),
            ));
        }
        if !(0.0..0.2).contains(&self.max_clock_drift) {
            return Err(ConfigError::new(
                "cluster.quorum.max-clock-drift",
                self.max_clock_drift.to_string(),
                "must be a fraction at least 0 and below 0.2",
            ));
        }
        if self.probe_timeout >= self.failure_timeout {
            return Err(ConfigError::new(
                "cluster.monitoring.probe-timeout",
                format!("{:?}", self.probe_timeout),
                "must be shorter than cluster.failure.timeout",
            ));
        }
        if self.failure_timeout < self.heartbeat_interval * 2 {
            return Err(ConfigError::new(
                "cluster.failure.timeout",
                format!("{:?}", self.failure_timeout),
                format!(
                    "must be at least twice cluster.heartbeat.interval ({:?}); the seed recommends 3-5x",
                    self.heartbeat_interval
                ),
            ));
        }
        if self.gossip_fanout == 0 || self.gossip_fanout > 32 {
            return Err(ConfigError::new(
                "cluster.gossip.fanout",
                self.gossip_fanout.to_string(),
                "must be between 1 and 32",
            ));
        }
        if self.retransmit_multiplier == 0 || self.retransmit_multiplier > 32 {
            return Err(ConfigError::new(
                "cluster.gossip.retransmit-multiplier",
                self.retransmit_multiplier.to_string(),
                "must be between 1 and 32",
            ));
        }
        if self.max_pending_updates < 16 || self.max_pending_updates > 1_000_000 {
            return Err(ConfigError::new(
                "cluster.gossip.max-pending",
                self.max_pending_updates.to_string(),
                "must be between 16 and 1000000",
            ));
        }
        if !self.phi_threshold.is_finite() || self.phi_threshold <= 0.0 || self.phi_threshold > 50.0
        {
            return Err(ConfigError::new(
                "cluster.phi.threshold",
                self.phi_threshold.to_string(),
                "must be a number above 0 and at most 50",
            ));
        }
        if self.phi_window < 2 || self.phi_window > 10_000 {
            return Err(ConfigError::new(
                "cluster.phi.window",
                self.phi_window.to_string(),
                "must be between 2 and 10000",
            ));
        }
        if self.observers == 0 || self.observers > 16 {
            return Err(ConfigError::new(
                "cluster.monitoring.observers",
                self.observers.to_string(),
                "must be between 1 and 16",
            ));
        }
        if self.confirmations == 0 || self.confirmations > self.observers {
            return Err(ConfigError::new(
                "cluster.conviction.confirmations",
                self.confirmations.to_string(),
                format!(
                    "must be between 1 and cluster.monitoring.observers ({})",
                    self.observers
                ),
            ));
        }
        if self.degraded_threshold > 100 {
            return Err(ConfigError::new(
                "cluster.health.degraded-threshold",
                self.degraded_threshold.to_string(),
                "must be between 0 and 100",
            ));
        }
        if let SplitBrainPolicy::StaticQuorum { quorum_size } = self.split_brain_policy {
            if quorum_size == 0 {
                return Err(ConfigError::new(
                    "cluster.quorum.size",
                    quorum_size.to_string(),
                    "static-quorum needs a quorum size of at least 1",
                ));
            }
        }
        if self.max_datagram < 512 || self.max_datagram > 65_000 {
            return Err(ConfigError::new(
                "cluster.transport.max-datagram",
                self.max_datagram.to_string(),
                "must be between 512 and 65000 bytes",
            ));
        }
        if self.max_members < 2 || self.max_members > 1_000_000 {
            return Err(ConfigError::new(
                "cluster.limits.max-members",
                self.max_members.to_string(),
                "must be between 2 and 1000000",
            ));
        }
        let max_meta = self.max_datagram.saturating_sub(RECORD_OVERHEAD);
        if self.max_metadata_bytes < 64 || self.max_metadata_bytes > max_meta {
            return Err(ConfigError::new(
                "cluster.limits.max-metadata-bytes",
                self.max_metadata_bytes.to_string(),
                format!(
                    "must be between 64 and cluster.transport.max-datagram - {RECORD_OVERHEAD} ({max_meta}), so that a record always fits a datagram"
                ),
            ));
        }
        if self.tombstone_ttl < self.eviction_grace_period {
            return Err(ConfigError::new(
                "cluster.eviction.tombstone-ttl",
                format!("{:?}", self.tombstone_ttl),
                "must not be shorter than cluster.eviction.grace-period",
            ));
        }
        Ok(())
    }

    /// How many times an update is retransmitted in a cluster of `n` members.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n + 1) as f64).log10().ceil().max(1.0) as usize;
        (self.retransmit_multiplier * scale) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_values_and_valid() {
        let c = Config::default();
        assert_eq!(c.heartbeat_interval, Duration::from_millis(1000));
        assert_eq!(c.failure_timeout, Duration::from_millis(15_000));
        assert_eq!(c.gossip_fanout, 3);
        assert_eq!(c.phi_threshold, 8.0);
        c.validate().unwrap();
        Config::wan().validate().unwrap();
        Config::for_cluster_size(1000).validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = Config {
            gossip_fanout: 0,
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "cluster.gossip.fanout");
        assert!(e.to_string().contains("cluster.gossip.fanout"), "{e}");
        let c = Config {
            failure_timeout: Duration::from_millis(1500),
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "cluster.failure.timeout");
        let c = Config {
            phi_threshold: f64::NAN,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "cluster.phi.threshold");
        let c = Config {
            confirmations: 9,
            ..Config::default()
        };
        assert_eq!(
            c.validate().unwrap_err().key,
            "cluster.conviction.confirmations"
        );
    }

    #[test]
    fn limits_are_validated() {
        let c = Config::default();
        assert_eq!(c.max_members, 10_000);
        assert_eq!(c.max_metadata_bytes, 512);
        for max_members in [0, 1, 1_000_001] {
            let c = Config {
                max_members,
                ..Config::default()
            };
            assert_eq!(c.validate().unwrap_err().key, "cluster.limits.max-members");
        }
        for max_metadata_bytes in [0, 63, 1001] {
            let c = Config {
                max_metadata_bytes,
                ..Config::default()
            };
            assert_eq!(
                c.validate().unwrap_err().key,
                "cluster.limits.max-metadata-bytes"
            );
        }
        // the metadata bound follows the datagram size
        let c = Config {
            max_datagram: 512,
            ..Config::default()
        };
        assert_eq!(
            c.validate().unwrap_err().key,
            "cluster.limits.max-metadata-bytes"
        );
        Config {
            max_datagram: 512,
            max_metadata_bytes: 112,
            ..Config::default()
        }
        .validate()
        .unwrap();
        Config {
            max_datagram: 65_000,
            max_metadata_bytes: 64_600,
            max_members: 1_000_000,
            ..Config::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn retransmit_limit_grows_with_log_of_size() {
        let c = Config::default();
        assert_eq!(c.retransmit_limit(1), 4);
        assert_eq!(c.retransmit_limit(10), 8);
        assert_eq!(c.retransmit_limit(1000), 16);
    }
}
