//! What a node process is configured with, after layering: [`Settings`] and its sections.
//!
//! Each field is written by one key of [`KEYS`](super::keys::KEYS); [`Settings::set`] and
//! [`Settings::get`] go through that table, so a key is declared only there.

use std::collections::BTreeMap;
use std::time::Duration;

use membership::Config;

use super::keys::{self, TAG_PREFIX};
use super::Origin;

/// Text or JSON log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Base of the protocol knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// [`Config::lan`].
    Lan,
    /// [`Config::wan`].
    Wan,
}

impl Preset {
    /// The protocol knobs it stands for.
    pub fn config(self) -> Config {
        match self {
            Preset::Lan => Config::lan(),
            Preset::Wan => Config::wan(),
        }
    }
}

/// Everything a node process needs, after layering.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster_name: String,
    /// `node.role`.
    pub role: String,
    /// `node.zone`.
    pub zone: String,
    /// `node.rack`.
    pub rack: String,
    /// `node.gossip`.
    pub gossip: String,
    /// `node.advertise`.
    pub advertise: Option<String>,
    /// `node.http`.
    pub http: String,
    /// `node.http-advertise`.
    pub http_advertise: Option<String>,
    /// `node.seeds`.
    pub seeds: Vec<String>,
    /// `node.remember-peers`.
    pub remember_peers: bool,
    /// `node.peers-file` (empty: `.vigil/data/<node id>.peers`).
    pub peers_file: Option<String>,
    /// `node.tags.*`.
    pub tags: BTreeMap<String, String>,
    /// `node.leave-linger`.
    pub leave_linger: Duration,
    /// `node.signals-interval`.
    pub signals_interval: Duration,
    /// `node.event-handlers`.
    pub event_handlers: Vec<String>,
    /// `node.event-handler-timeout`.
    pub event_handler_timeout: Duration,
    /// `http.admin-token`.
    pub admin_token: Option<String>,
    /// `http.admin-endpoints`.
    pub admin_endpoints: bool,
    /// `log.format`.
    pub log_format: LogFormat,
    /// `log.level`.
    pub log_level: String,
    /// `cluster.preset`.
    pub preset: Preset,
    /// `cluster.quorum.size` (kept apart so the policy and the size can come in any order).
    pub quorum_size: usize,
    /// Every `cluster.*` knob.
    pub protocol: Config,
    /// Every `services.*` key.
    pub services: ServicesSettings,
    /// Every `security.*` key.
    pub security: SecuritySettings,
    /// `http.max-body`.
    pub http_max_body: usize,
    /// `http.request-timeout`.
    pub http_request_timeout: Duration,
    /// `http.header-read-timeout`.
    pub http_header_read_timeout: Duration,
    /// `http.max-connections`.
    pub http_max_connections: usize,
    /// `http.tls-cert`.
    pub http_tls_cert: Option<String>,
    /// `http.tls-key`.
    pub http_tls_key: Option<String>,
    /// `http.tls-ca`.
    pub http_tls_ca: Option<String>,
    /// Where each key set by a layer came from (keys absent here are defaults).
    pub origins: BTreeMap<String, Origin>,
}

/// The `security.*` keys: the gossip keyring and the per-source rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct SecuritySettings {
    /// `security.gossip-keys`, checked to be keys when set (primary first).
    pub gossip_keys: Vec<String>,
    /// `security.encrypt`.
    pub encrypt: bool,
    /// `security.verify-incoming`.
    pub verify_incoming: bool,
    /// `security.keyring-file`.
    pub keyring_file: Option<String>,
    /// `security.insecure`: the operator's explicit consent to run unprotected.
    pub insecure: bool,
    /// `security.source-rate`.
    pub source_rate: u32,
    /// `security.source-burst`.
    pub source_burst: u32,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            gossip_keys: Vec::new(),
            encrypt: true,
            verify_incoming: true,
            keyring_file: None,
            insecure: false,
            source_rate: 200,
            source_burst: 400,
        }
    }
}

/// The `services.*` keys: what the producer, consumer and gateway roles need.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicesSettings {
    /// `services.producer.rate` (events per second; 0 = off).
    pub producer_rate: u32,
    /// `services.producer.queue-capacity`.
    pub queue_capacity: usize,
    /// `services.producer.batch-size`.
    pub batch_size: usize,
    /// `services.producer.ack-timeout`.
    pub ack_timeout: Duration,
    /// `services.consumer.sqlite-path` (`None` = derived from the node id).
    pub sqlite_path: Option<String>,
    /// `services.postgres.url`.
    pub postgres_url: Option<String>,
    /// `services.redis.url`.
    pub redis_url: Option<String>,
    /// `services.kafka.brokers`.
    pub kafka_brokers: Option<String>,
    /// `services.kafka.topic`.
    pub kafka_topic: String,
    /// `services.kafka.group`.
    pub kafka_group: String,
    /// `services.kafka.partitions`.
    pub kafka_partitions: u32,
    /// `services.kafka.static-membership`.
    pub kafka_static_membership: bool,
    /// `services.kafka.session-timeout`.
    pub kafka_session_timeout: Duration,
    /// `services.cache.ttl`.
    pub cache_ttl: Duration,
    /// `services.cache.status-ttl`.
    pub status_ttl: Duration,
}

impl Default for ServicesSettings {
    fn default() -> Self {
        ServicesSettings {
            producer_rate: 1,
            queue_capacity: 10_000,
            batch_size: 500,
            ack_timeout: Duration::from_secs(4),
            sqlite_path: None,
            postgres_url: None,
            redis_url: None,
            kafka_brokers: None,
            kafka_topic: "logs".into(),
            kafka_group: "vigil-consumers".into(),
            kafka_partitions: 3,
            kafka_static_membership: true,
            kafka_session_timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(2),
            status_ttl: Duration::from_secs(1),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            id: String::new(),
            cluster_name: "vigil".into(),
            role: "member".into(),
            zone: "default".into(),
            rack: String::new(),
            gossip: "127.0.0.1:7946".into(),
            advertise: None,
            http: "127.0.0.1:8080".into(),
            http_advertise: None,
            seeds: Vec::new(),
            remember_peers: true,
            peers_file: None,
            tags: BTreeMap::new(),
            leave_linger: Duration::from_secs(1),
            signals_interval: Duration::from_secs(1),
            event_handlers: Vec::new(),
            event_handler_timeout: Duration::from_secs(10),
            admin_token: None,
            admin_endpoints: true,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            preset: Preset::Lan,
            quorum_size: 0,
            protocol: Config::lan(),
            services: ServicesSettings::default(),
            security: SecuritySettings::default(),
            http_max_body: 4 << 20,
            http_request_timeout: Duration::from_secs(30),
            http_header_read_timeout: Duration::from_secs(10),
            http_max_connections: 4096,
            http_tls_cert: None,
            http_tls_key: None,
            http_tls_ca: None,
            origins: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Where the value of `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// Applies one value. The error is the reason only; the caller adds key and origin.
    /// A refused value leaves the setting as it was.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        if let Some(k) = keys::find(key) {
            return k.set(self, value);
        }
        match key.strip_prefix(TAG_PREFIX) {
            Some("") => Err("tag name is empty".into()),
            Some(tag) => {
                self.tags.insert(tag.to_string(), value.trim().to_string());
                Ok(())
            }
            None => Err(keys::unknown_key_reason(key)),
        }
    }

    /// The current value of `key`, rendered as [`Settings::set`] accepts it.
    pub fn get(&self, key: &str) -> Option<String> {
        match keys::find(key) {
            Some(k) => Some(k.get(self)),
            None => key
                .strip_prefix(TAG_PREFIX)
                .and_then(|t| self.tags.get(t).cloned()),
        }
    }
}
