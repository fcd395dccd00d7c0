//! The settings and the table of every key: its name in `vigil.yml`, its kind and its doc.
//!
//! One key, one line in [`KEYS`], one arm in [`Settings::set`] and in [`Settings::get`]. The
//! environment variable of a key is derived from its name (see [`env_var`]), the annotated
//! default file is rendered from the table, so they cannot drift apart.

use std::collections::BTreeMap;
use std::time::Duration;

use membership::{Config, SplitBrainPolicy};

use super::{duration, Origin};

/// How a value is written; decides the quoting of the rendered default file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string (rendered quoted).
    Text,
    /// A number.
    Number,
    /// A duration (bare number = milliseconds, or with a unit).
    Duration,
    /// A list of strings (a YAML sequence or a comma-separated string).
    List,
    /// `true` or `false`.
    Bool,
}

/// The largest value a size, limit or duration key accepts, declared with the key so that
/// no layer (file, environment, flag) can ask for a terabyte body or a year-long timeout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Max {
    /// A number (count, bytes, rate, threshold).
    Number(f64),
    /// A duration.
    Duration(Duration),
}

impl std::fmt::Display for Max {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Max::Number(n) => write!(f, "{n}"),
            Max::Duration(d) => f.write_str(&duration::render(*d)),
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted name, as nested in `vigil.yml`.
    pub name: &'static str,
    /// How its value is written.
    pub kind: Kind,
    /// The largest value accepted; every [`Kind::Number`] and [`Kind::Duration`] key has one.
    pub max: Option<Max>,
    /// One line saying what it does.
    pub doc: &'static str,
}

const fn key(name: &'static str, kind: Kind, max: Option<Max>, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        max,
        doc,
    }
}

/// A numeric maximum.
const fn n(max: u64) -> Option<Max> {
    Some(Max::Number(max as f64))
}

/// A duration maximum, in seconds.
const fn d(secs: u64) -> Option<Max> {
    Some(Max::Duration(Duration::from_secs(secs)))
}

/// The key named `name`, if there is one (tags are not in the table).
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Checks `value` against the key's declared maximum. A value that does not parse passes
/// here: the key's own parser explains what it expects.
fn check_max(key: &Key, value: &str) -> Result<(), String> {
    let too_big = match key.max {
        Some(Max::Number(max)) => value.trim().parse::<f64>().is_ok_and(|v| v > max),
        Some(Max::Duration(max)) => duration::parse(value).is_ok_and(|v| v > max),
        None => false,
    };
    match key.max {
        Some(max) if too_big => Err(format!("must be at most {max}")),
        _ => Ok(()),
    }
}

/// Upper bound of `http.max-connections`: more than a process usually may open files.
pub const MAX_HTTP_CONNECTIONS: usize = 1_000_000;

/// Most commands `node.event-handlers` accepts.
pub const MAX_EVENT_HANDLERS: usize = 16;

/// Prefix of the free `node.tags.<name>` keys.
pub const TAG_PREFIX: &str = "node.tags.";

/// Every key, grouped by section (the order of the rendered default file).
pub const KEYS: &[Key] = &[
    key("node.id", Kind::Text, None, "unique member id; required to run a node (usually given with --id)"),
    key("node.cluster", Kind::Text, None, "cluster name; datagrams of other clusters are dropped"),
    key("node.role", Kind::Text, None, "role label (gateway, coordinator, producer, consumer, ...)"),
    key("node.zone", Kind::Text, None, "failure-domain zone label; observers are spread over zones"),
    key("node.rack", Kind::Text, None, "optional rack label inside the zone"),
    key("node.gossip", Kind::Text, None, "UDP address the gossip socket binds"),
    key("node.advertise", Kind::Text, None, "gossip address peers should use (needed when node.gossip binds 0.0.0.0, or behind NAT)"),
    key("node.http", Kind::Text, None, "address the HTTP API binds"),
    key("node.http-advertise", Kind::Text, None, "HTTP address published to peers (default: node.http, or the advertised host with node.http's port)"),
    key("node.seeds", Kind::List, None, "host:port gossip addresses to join through; none = bootstrap a new cluster"),
    key("node.leave-linger", Kind::Duration, d(60), "how long a leaving node keeps gossiping so that its departure spreads"),
    key("node.signals-interval", Kind::Duration, d(60), "how often the node measures its own CPU, pressure, lag, memory, latency and error signals"),
    key("node.event-handlers", Kind::List, None, "commands run (sh -c) once per membership event, with VIGIL_EVENT, VIGIL_MEMBER_ID, VIGIL_STATUS, ... in the environment and the event's JSON on stdin; at most 16, no comma inside a command (call a script)"),
    key("node.event-handler-timeout", Kind::Duration, d(3600), "an event handler still running after this long is killed (the next event waits for it meanwhile)"),
    key("http.admin-token", Kind::Text, None, "Bearer token for state-changing endpoints (POST /cluster/leave, ...), at least 24 characters (vigil keys token); required while http.admin-endpoints is on, unless security.insecure"),
    key("http.admin-endpoints", Kind::Bool, None, "true = POST /cluster/leave, member removal and the keyring endpoints are served (then http.admin-token is required); false = they answer 403"),
    key("http.max-body", Kind::Number, n(64 << 20), "largest HTTP request body accepted, bytes (413 above)"),
    key("http.request-timeout", Kind::Duration, d(600), "an HTTP request still unanswered after this long gets 408"),
    key("http.header-read-timeout", Kind::Duration, d(300), "a connection that has not sent a whole request head (or TLS handshake) within this long is closed (slow clients, idle keep-alive); 100ms-5m"),
    key("http.max-connections", Kind::Number, n(MAX_HTTP_CONNECTIONS as u64), "most HTTP connections open at once; one more is answered 503 and closed (kept below the open-file limit); 1-1000000"),
    key("http.tls-cert", Kind::Text, None, "PEM certificate chain (leaf first): with http.tls-key, the API serves HTTPS only and is advertised as https://"),
    key("http.tls-key", Kind::Text, None, "PEM private key of http.tls-cert"),
    key("http.tls-ca", Kind::Text, None, "PEM CA bundle trusted, besides the public roots, when this node calls peers over HTTPS"),
    key("security.gossip-keys", Kind::List, None, "base64 32-byte keys (vigil keys generate); the first seals, all open; required (or security.keyring-file) unless security.insecure"),
    key("security.encrypt", Kind::Bool, None, "with keys: true = encrypt and authenticate every datagram, false = authenticate only"),
    key("security.verify-incoming", Kind::Bool, None, "with keys: false also accepts unsealed datagrams (only while turning keys on in a running cluster)"),
    key("security.keyring-file", Kind::Text, None, "file that holds the keyring across restarts (rewritten by vigil keys); loaded over security.gossip-keys when it exists"),
    key("security.insecure", Kind::Bool, None, "true = run without gossip keys and without an admin token (anyone on the network can join, forge members and, with admin endpoints on, nothing guards them); logged as a warning and shown in /cluster/status"),
    key("security.source-rate", Kind::Number, n(1_000_000), "datagrams per second accepted from one source address; 0 = unlimited"),
    key("security.source-burst", Kind::Number, n(1_000_000), "datagrams one source may send in a burst above security.source-rate"),
    key("log.format", Kind::Text, None, "text or json"),
    key("log.level", Kind::Text, None, "tracing filter, e.g. info or vigil=debug,info"),
    key("cluster.preset", Kind::Text, None, "lan or wan: the base the other cluster keys override"),
    key("cluster.heartbeat.interval", Kind::Duration, d(60), "how often a node heartbeats each of its observers (seed: 1000)"),
    key("cluster.failure.timeout", Kind::Duration, d(3600), "an observer accuses a silent subject after this long whatever phi says (seed: 15000)"),
    key("cluster.gossip.fanout", Kind::Number, n(32), "peers contacted per gossip round (seed: 3)"),
    key("cluster.gossip.interval", Kind::Duration, d(60), "time between gossip rounds"),
    key("cluster.gossip.retransmit-multiplier", Kind::Number, n(32), "each update is sent multiplier * ceil(log10(n + 1)) times"),
    key("cluster.gossip.max-pending", Kind::Number, n(1_000_000), "most updates waiting to be gossiped; anti-entropy carries the rest"),
    key("cluster.phi.threshold", Kind::Number, n(50), "phi above which an observer suspects its subject (seed: 8.0)"),
    key("cluster.phi.min-std-deviation", Kind::Duration, d(60), "floor of the heartbeat inter-arrival standard deviation"),
    key("cluster.phi.acceptable-heartbeat-pause", Kind::Duration, d(600), "pause tolerated on top of the mean inter-arrival time"),
    key("cluster.phi.window", Kind::Number, n(10_000), "inter-arrival samples kept per watched member"),
    key("cluster.monitoring.observers", Kind::Number, n(16), "how many members watch each member directly"),
    key("cluster.monitoring.probe-timeout", Kind::Duration, d(60), "how long an observer waits for a direct probe answer before accusing"),
    key("cluster.conviction.confirmations", Kind::Number, n(16), "distinct accusers needed to convict a member"),
    key("cluster.conviction.suspicion-timeout", Kind::Duration, d(3600), "minimum time from first accusation to conviction, so a live member can refute"),
    key("cluster.eviction.grace-period", Kind::Duration, d(24 * 3600), "how long a FAILED member stays listed before it is evicted"),
    key("cluster.eviction.tombstone-ttl", Kind::Duration, d(7 * 24 * 3600), "how long an evicted or departed member is remembered"),
    key("cluster.seeds.rejoin-interval", Kind::Duration, d(3600), "how often a node re-contacts its seeds (heals partitions)"),
    key("cluster.anti-entropy.interval", Kind::Duration, d(3600), "how often a node compares its table with a random peer"),
    key("cluster.health.degraded-threshold", Kind::Number, n(100), "an alive member scoring below this (0-100) is DEGRADED"),
    key("cluster.quorum.policy", Kind::Text, None, "keep-majority or static-quorum"),
    key("cluster.quorum.size", Kind::Number, n(1_000_000), "voters needed under static-quorum (ignored by keep-majority)"),
    key("cluster.transport.max-datagram", Kind::Number, n(65_000), "largest datagram ever sent, bytes"),
    key("cluster.local-pause-guard", Kind::Duration, d(600), "if this node was itself not scheduled for this long, it accuses nobody"),
    key("cluster.limits.max-members", Kind::Number, n(1_000_000), "most members and tombstones a node holds; unknown members beyond it are refused (counted)"),
    key("cluster.limits.max-metadata-bytes", Kind::Number, n(65_000), "largest encoded metadata of one member (role, zone, addresses, tags); larger records are refused"),
    key("services.producer.rate", Kind::Number, n(1_000_000), "log events per second the producer generates by itself; 0 = only what is POSTed"),
    key("services.producer.queue-capacity", Kind::Number, n(10_000_000), "events the producer holds before answering 429 (backpressure instead of unbounded memory)"),
    key("services.producer.batch-size", Kind::Number, n(5000), "most events the producer delivers in one request or publish round"),
    key("services.producer.ack-timeout", Kind::Duration, d(600), "how long POST /logs waits for its events to be durably handed on (stored, or acknowledged by Kafka) before answering 503; they stay queued"),
    key("services.consumer.sqlite-path", Kind::Text, None, "SQLite file of the embedded store; empty = .vigil/data/<node id>.sqlite"),
    key("services.postgres.url", Kind::Text, None, "PostgreSQL URL for the consumer's store, e.g. postgres://vigil@127.0.0.1:5432/vigil; empty = embedded SQLite"),
    key("services.redis.url", Kind::Text, None, "Redis URL for the gateway's cache, e.g. redis://127.0.0.1:6379; empty = in-process cache"),
    key("services.kafka.brokers", Kind::Text, None, "Kafka bootstrap servers, e.g. 127.0.0.1:9092; empty = producers deliver straight to a healthy consumer over HTTP"),
    key("services.kafka.topic", Kind::Text, None, "topic the producer publishes to (keyed by service) and the consumer group reads"),
    key("services.kafka.group", Kind::Text, None, "consumer group id of the consumers"),
    key("services.kafka.partitions", Kind::Number, n(10_000), "partitions of the topic when the producer or consumer creates it"),
    key("services.kafka.static-membership", Kind::Bool, None, "true = a consumer joins its group as a static member named by its node id (group.instance.id, KIP-345), so a restarted consumer takes back its partitions at once; false = dynamic membership"),
    key("services.kafka.session-timeout", Kind::Duration, d(300), "how long the broker waits for a silent consumer before giving its partitions to the others (session.timeout.ms)"),
    key("services.cache.ttl", Kind::Duration, d(3600), "how long the gateway caches query results (GET /api/logs, /api/logs/stats)"),
    key("services.cache.status-ttl", Kind::Duration, d(3600), "how long the gateway caches GET /api/cluster/status"),
];

/// The environment variable that overrides `key`: `VIGIL_` + the key in upper case with
/// `.` and `-` turned into `_` (`cluster.heartbeat.interval` -> `VIGIL_CLUSTER_HEARTBEAT_INTERVAL`).
pub fn env_var(key: &str) -> String {
    format!("VIGIL_{}", key.replace(['.', '-'], "_").to_uppercase())
}

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

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| "expected a whole number".to_string())
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

fn optional(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

impl Settings {
    /// Where the value of `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// Applies one value. The error is the reason only; the caller adds key and origin.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        if let Some(k) = find(key) {
            check_max(k, value)?;
        }
        let c = &mut self.protocol;
        let dur = duration::parse;
        match key {
            "node.id" => self.id = value.trim().to_string(),
            "node.cluster" => {
                if value.trim().is_empty() {
                    return Err("must not be empty".into());
                }
                self.cluster_name = value.trim().to_string()
            }
            "node.role" => self.role = value.trim().to_string(),
            "node.zone" => self.zone = value.trim().to_string(),
            "node.rack" => self.rack = value.trim().to_string(),
            "node.gossip" => self.gossip = value.trim().to_string(),
            "node.advertise" => self.advertise = optional(value),
            "node.http" => self.http = value.trim().to_string(),
            "node.http-advertise" => self.http_advertise = optional(value),
            "node.seeds" => self.seeds = list(value),
            "node.leave-linger" => self.leave_linger = dur(value)?,
            "node.signals-interval" => {
                self.signals_interval = dur(value)?;
                if self.signals_interval < Duration::from_millis(100) {
                    return Err("must be at least 100ms".into());
                }
            }
            "node.event-handlers" => {
                let handlers = list(value);
                if handlers.len() > MAX_EVENT_HANDLERS {
                    return Err(format!("at most {MAX_EVENT_HANDLERS} commands"));
                }
                self.event_handlers = handlers;
            }
            "node.event-handler-timeout" => {
                self.event_handler_timeout = dur(value)?;
                if self.event_handler_timeout.is_zero() {
                    return Err("must be more than 0".into());
                }
            }
            "http.admin-token" => self.admin_token = optional(value),
            "http.admin-endpoints" => self.admin_endpoints = boolean(value)?,
            "http.max-body" => {
                self.http_max_body = number(value)?;
                if self.http_max_body < 1024 {
                    return Err("must be at least 1024 bytes".into());
                }
            }
            "http.request-timeout" => {
                self.http_request_timeout = dur(value)?;
                if self.http_request_timeout.is_zero() {
                    return Err("must be more than 0".into());
                }
            }
            "http.header-read-timeout" => {
                let t = dur(value)?;
                if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&t) {
                    return Err("must be 100ms-5m".into());
                }
                self.http_header_read_timeout = t;
            }
            "http.max-connections" => {
                let n = number(value)?;
                if !(1..=MAX_HTTP_CONNECTIONS).contains(&n) {
                    return Err(format!("must be 1-{MAX_HTTP_CONNECTIONS}"));
                }
                self.http_max_connections = n;
            }
            "http.tls-cert" => self.http_tls_cert = optional(value),
            "http.tls-key" => self.http_tls_key = optional(value),
            "http.tls-ca" => self.http_tls_ca = optional(value),
            "security.gossip-keys" => {
                let keys = list(value);
                for (i, k) in keys.iter().enumerate() {
                    crate::security::Key::parse(k).map_err(|e| format!("key {}: {e}", i + 1))?;
                }
                if keys.len() > crate::security::keyring::MAX_KEYS {
                    return Err(format!(
                        "{} keys; at most {}",
                        keys.len(),
                        crate::security::keyring::MAX_KEYS
                    ));
                }
                self.security.gossip_keys = keys;
            }
            "security.encrypt" => self.security.encrypt = boolean(value)?,
            "security.verify-incoming" => self.security.verify_incoming = boolean(value)?,
            "security.keyring-file" => self.security.keyring_file = optional(value),
            "security.insecure" => self.security.insecure = boolean(value)?,
            "security.source-rate" => self.security.source_rate = number(value)?,
            "security.source-burst" => {
                self.security.source_burst = number(value)?;
                if self.security.source_burst == 0 {
                    return Err("must be at least 1".into());
                }
            }
            "log.format" => {
                self.log_format = match value.trim() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err("expected text or json".into()),
                }
            }
            "log.level" => self.log_level = value.trim().to_string(),
            "cluster.preset" => {
                self.preset = match value.trim() {
                    "lan" => Preset::Lan,
                    "wan" => Preset::Wan,
                    _ => return Err("expected lan or wan".into()),
                };
                // The loader applies the preset before any other cluster key.
                self.protocol = match self.preset {
                    Preset::Lan => Config::lan(),
                    Preset::Wan => Config::wan(),
                };
            }
            "cluster.heartbeat.interval" => c.heartbeat_interval = dur(value)?,
            "cluster.failure.timeout" => c.failure_timeout = dur(value)?,
            "cluster.gossip.fanout" => c.gossip_fanout = number(value)?,
            "cluster.gossip.interval" => c.gossip_interval = dur(value)?,
            "cluster.gossip.retransmit-multiplier" => c.retransmit_multiplier = number(value)?,
            "cluster.gossip.max-pending" => c.max_pending_updates = number(value)?,
            "cluster.phi.threshold" => {
                c.phi_threshold = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected a number such as 8.0".to_string())?
            }
            "cluster.phi.min-std-deviation" => c.phi_min_std_deviation = dur(value)?,
            "cluster.phi.acceptable-heartbeat-pause" => c.acceptable_heartbeat_pause = dur(value)?,
            "cluster.phi.window" => c.phi_window = number(value)?,
            "cluster.monitoring.observers" => c.observers = number(value)?,
            "cluster.monitoring.probe-timeout" => c.probe_timeout = dur(value)?,
            "cluster.conviction.confirmations" => c.confirmations = number(value)?,
            "cluster.conviction.suspicion-timeout" => c.suspicion_timeout = dur(value)?,
            "cluster.eviction.grace-period" => c.eviction_grace_period = dur(value)?,
            "cluster.eviction.tombstone-ttl" => c.tombstone_ttl = dur(value)?,
            "cluster.seeds.rejoin-interval" => c.seed_rejoin_interval = dur(value)?,
            "cluster.anti-entropy.interval" => c.anti_entropy_interval = dur(value)?,
            "cluster.health.degraded-threshold" => {
                c.degraded_threshold =
                    number(value).map_err(|_| "expected a whole number 0-100".to_string())?
            }
            "cluster.quorum.policy" => {
                c.split_brain_policy = match value.trim() {
                    "keep-majority" => SplitBrainPolicy::KeepMajority,
                    "static-quorum" => SplitBrainPolicy::StaticQuorum {
                        quorum_size: self.quorum_size,
                    },
                    _ => return Err("expected keep-majority or static-quorum".into()),
                }
            }
            "cluster.quorum.size" => {
                self.quorum_size = number(value)?;
                if let SplitBrainPolicy::StaticQuorum { quorum_size } = &mut c.split_brain_policy {
                    *quorum_size = self.quorum_size;
                }
            }
            "cluster.transport.max-datagram" => c.max_datagram = number(value)?,
            "cluster.local-pause-guard" => c.local_pause_guard = dur(value)?,
            "cluster.limits.max-members" => c.max_members = number(value)?,
            "cluster.limits.max-metadata-bytes" => c.max_metadata_bytes = number(value)?,
            "services.producer.rate" => self.services.producer_rate = number(value)?,
            "services.producer.queue-capacity" => {
                self.services.queue_capacity = number(value)?;
                if self.services.queue_capacity == 0 {
                    return Err("must be at least 1".into());
                }
            }
            "services.producer.batch-size" => {
                self.services.batch_size = number(value)?;
                if !(1..=5000).contains(&self.services.batch_size) {
                    return Err("must be 1-5000".into());
                }
            }
            "services.producer.ack-timeout" => {
                self.services.ack_timeout = dur(value)?;
                if self.services.ack_timeout.is_zero() {
                    return Err("must be more than 0".into());
                }
            }
            "services.consumer.sqlite-path" => self.services.sqlite_path = optional(value),
            "services.postgres.url" => self.services.postgres_url = optional(value),
            "services.redis.url" => self.services.redis_url = optional(value),
            "services.kafka.brokers" => self.services.kafka_brokers = optional(value),
            "services.kafka.topic" => {
                if value.trim().is_empty() {
                    return Err("must not be empty".into());
                }
                self.services.kafka_topic = value.trim().to_string()
            }
            "services.kafka.group" => {
                if value.trim().is_empty() {
                    return Err("must not be empty".into());
                }
                self.services.kafka_group = value.trim().to_string()
            }
            "services.kafka.partitions" => {
                self.services.kafka_partitions = number(value)?;
                if self.services.kafka_partitions == 0 {
                    return Err("must be at least 1".into());
                }
            }
            "services.kafka.static-membership" => {
                self.services.kafka_static_membership = boolean(value)?
            }
            "services.kafka.session-timeout" => {
                self.services.kafka_session_timeout = dur(value)?;
                // The range Kafka brokers accept by default (group.min/max.session.timeout.ms).
                if !(Duration::from_secs(6)..=Duration::from_secs(300))
                    .contains(&self.services.kafka_session_timeout)
                {
                    return Err("must be 6s-300s (the broker's default bounds)".into());
                }
            }
            "services.cache.ttl" => self.services.cache_ttl = dur(value)?,
            "services.cache.status-ttl" => self.services.status_ttl = dur(value)?,
            other => {
                if let Some(tag) = other.strip_prefix(TAG_PREFIX) {
                    if tag.is_empty() {
                        return Err("tag name is empty".into());
                    }
                    self.tags.insert(tag.to_string(), value.trim().to_string());
                } else {
                    return Err(unknown_key_reason(other));
                }
            }
        }
        Ok(())
    }

    /// The current value of `key`, rendered as [`Settings::set`] accepts it.
    pub fn get(&self, key: &str) -> Option<String> {
        let c = &self.protocol;
        let d = |d: Duration| duration::render(d);
        Some(match key {
            "node.id" => self.id.clone(),
            "node.cluster" => self.cluster_name.clone(),
            "node.role" => self.role.clone(),
            "node.zone" => self.zone.clone(),
            "node.rack" => self.rack.clone(),
            "node.gossip" => self.gossip.clone(),
            "node.advertise" => self.advertise.clone().unwrap_or_default(),
            "node.http" => self.http.clone(),
            "node.http-advertise" => self.http_advertise.clone().unwrap_or_default(),
            "node.seeds" => self.seeds.join(","),
            "node.leave-linger" => d(self.leave_linger),
            "node.signals-interval" => d(self.signals_interval),
            "node.event-handlers" => self.event_handlers.join(","),
            "node.event-handler-timeout" => d(self.event_handler_timeout),
            "http.admin-token" => self.admin_token.clone().unwrap_or_default(),
            "http.admin-endpoints" => self.admin_endpoints.to_string(),
            "http.max-body" => self.http_max_body.to_string(),
            "http.request-timeout" => d(self.http_request_timeout),
            "http.header-read-timeout" => d(self.http_header_read_timeout),
            "http.max-connections" => self.http_max_connections.to_string(),
            "http.tls-cert" => self.http_tls_cert.clone().unwrap_or_default(),
            "http.tls-key" => self.http_tls_key.clone().unwrap_or_default(),
            "http.tls-ca" => self.http_tls_ca.clone().unwrap_or_default(),
            "security.gossip-keys" => self.security.gossip_keys.join(","),
            "security.encrypt" => self.security.encrypt.to_string(),
            "security.verify-incoming" => self.security.verify_incoming.to_string(),
            "security.keyring-file" => self.security.keyring_file.clone().unwrap_or_default(),
            "security.insecure" => self.security.insecure.to_string(),
            "security.source-rate" => self.security.source_rate.to_string(),
            "security.source-burst" => self.security.source_burst.to_string(),
            "log.format" => match self.log_format {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            },
            "log.level" => self.log_level.clone(),
            "cluster.preset" => match self.preset {
                Preset::Lan => "lan".into(),
                Preset::Wan => "wan".into(),
            },
            "cluster.heartbeat.interval" => d(c.heartbeat_interval),
            "cluster.failure.timeout" => d(c.failure_timeout),
            "cluster.gossip.fanout" => c.gossip_fanout.to_string(),
            "cluster.gossip.interval" => d(c.gossip_interval),
            "cluster.gossip.retransmit-multiplier" => c.retransmit_multiplier.to_string(),
            "cluster.gossip.max-pending" => c.max_pending_updates.to_string(),
            "cluster.phi.threshold" => format!("{:?}", c.phi_threshold),
            "cluster.phi.min-std-deviation" => d(c.phi_min_std_deviation),
            "cluster.phi.acceptable-heartbeat-pause" => d(c.acceptable_heartbeat_pause),
            "cluster.phi.window" => c.phi_window.to_string(),
            "cluster.monitoring.observers" => c.observers.to_string(),
            "cluster.monitoring.probe-timeout" => d(c.probe_timeout),
            "cluster.conviction.confirmations" => c.confirmations.to_string(),
            "cluster.conviction.suspicion-timeout" => d(c.suspicion_timeout),
            "cluster.eviction.grace-period" => d(c.eviction_grace_period),
            "cluster.eviction.tombstone-ttl" => d(c.tombstone_ttl),
            "cluster.seeds.rejoin-interval" => d(c.seed_rejoin_interval),
            "cluster.anti-entropy.interval" => d(c.anti_entropy_interval),
            "cluster.health.degraded-threshold" => c.degraded_threshold.to_string(),
            "cluster.quorum.policy" => match c.split_brain_policy {
                SplitBrainPolicy::KeepMajority => "keep-majority".into(),
                SplitBrainPolicy::StaticQuorum { .. } => "static-quorum".into(),
            },
            "cluster.quorum.size" => self.quorum_size.to_string(),
            "cluster.transport.max-datagram" => c.max_datagram.to_string(),
            "cluster.local-pause-guard" => d(c.local_pause_guard),
            "cluster.limits.max-members" => c.max_members.to_string(),
            "cluster.limits.max-metadata-bytes" => c.max_metadata_bytes.to_string(),
            "services.producer.rate" => self.services.producer_rate.to_string(),
            "services.producer.queue-capacity" => self.services.queue_capacity.to_string(),
            "services.producer.batch-size" => self.services.batch_size.to_string(),
            "services.producer.ack-timeout" => d(self.services.ack_timeout),
            "services.consumer.sqlite-path" => {
                self.services.sqlite_path.clone().unwrap_or_default()
            }
            "services.postgres.url" => self.services.postgres_url.clone().unwrap_or_default(),
            "services.redis.url" => self.services.redis_url.clone().unwrap_or_default(),
            "services.kafka.brokers" => self.services.kafka_brokers.clone().unwrap_or_default(),
            "services.kafka.topic" => self.services.kafka_topic.clone(),
            "services.kafka.group" => self.services.kafka_group.clone(),
            "services.kafka.partitions" => self.services.kafka_partitions.to_string(),
            "services.kafka.static-membership" => self.services.kafka_static_membership.to_string(),
            "services.kafka.session-timeout" => d(self.services.kafka_session_timeout),
            "services.cache.ttl" => d(self.services.cache_ttl),
            "services.cache.status-ttl" => d(self.services.status_ttl),
            other => {
                return other
                    .strip_prefix(TAG_PREFIX)
                    .and_then(|t| self.tags.get(t).cloned())
            }
        })
    }
}

/// Whether `key` is a known key (or a tag).
pub fn is_known(key: &str) -> bool {
    KEYS.iter().any(|k| k.name == key)
        || key.strip_prefix(TAG_PREFIX).is_some_and(|t| !t.is_empty())
}

fn unknown_key_reason(key: &str) -> String {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let mut similar: Vec<&str> = KEYS
        .iter()
        .map(|k| k.name)
        .filter(|k| k.ends_with(leaf) || k.starts_with(key))
        .take(3)
        .collect();
    if similar.is_empty() {
        similar.extend(closest(key, KEYS.iter().map(|k| k.name)));
    }
    if similar.is_empty() {
        "unknown key (see `vigil config defaults`)".into()
    } else {
        format!("unknown key; did you mean {}?", similar.join(" or "))
    }
}

/// `VIGIL_*` variables that are not configuration keys but are read by something that has a
/// right to them, each with its reader. Every other `VIGIL_*` variable must be a key's
/// ([`env_var`]): a misspelled one is an error, not silently ignored.
pub const NOT_KEYS: &[(&str, &str)] = &[
    ("VIGIL_CONFIG", "vigil node --config"),
    (
        "VIGIL_ADDR",
        "--addr of every client command (status, members, load, keys, join, leave, ...)",
    ),
    ("VIGIL_BIN", "scripts: the vigil binary to run"),
    (
        "VIGIL_SIM",
        "scripts/experiments: the vigil-sim binary to run",
    ),
    ("VIGIL_TANSU_ROOT", "scripts/tansu-broker.sh"),
    ("VIGIL_SCALE_N", "crates/vigil-cli/tests/scale.rs"),
    ("VIGIL_PAUSE_SEED", "crates/vigil-cli/tests/pause_resume.rs"),
    (
        "VIGIL_PAUSE_OBSERVE_SECS",
        "crates/vigil-cli/tests/pause_resume.rs",
    ),
    (
        "VIGIL_SKIP_PROMETHEUS",
        "crates/vigil-cli/tests/prometheus.rs",
    ),
    ("VIGIL_SKIP_PROMTOOL", "crates/vigil-cli/tests/metrics.rs"),
    (
        "VIGIL_GIT_COMMIT",
        "crates/vigil/build.rs: the commit to report when built without .git",
    ),
];

/// Prefix reserved for the test suite's own knobs (`VIGIL_TEST_POSTGRES_URL`, ...).
pub const TEST_ENV_PREFIX: &str = "VIGIL_TEST_";

/// Why `var` (a `VIGIL_*` name) is refused, or `None` when it names a key or is allowed.
pub fn unknown_env_reason(var: &str) -> Option<String> {
    if KEYS.iter().any(|k| env_var(k.name) == var)
        || NOT_KEYS.iter().any(|(name, _)| *name == var)
        || var.starts_with(TEST_ENV_PREFIX)
    {
        return None;
    }
    if var.starts_with(&env_var(TAG_PREFIX)) {
        return Some(
            "tags cannot be set from the environment; use node.tags in the file or \
             --set node.tags.NAME=VALUE"
                .into(),
        );
    }
    let names = KEYS
        .iter()
        .map(|k| env_var(k.name))
        .chain(NOT_KEYS.iter().map(|(n, _)| n.to_string()))
        .collect::<Vec<_>>();
    let hint = match closest(var, names.iter().map(String::as_str)).as_slice() {
        [] => "see `vigil config defaults` for every key's variable".to_string(),
        found => format!("did you mean {}?", found.join(" or ")),
    };
    Some(format!("not a configuration key's variable; {hint}"))
}

/// The candidates nearest to `wrong` by edit distance, if any is near enough to be a typo
/// (at most 3 edits, and at most a third of the name).
fn closest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let limit = 3.min(wrong.len() / 3).max(1);
    let scored: Vec<(usize, &str)> = candidates
        .map(|c| (strsim::levenshtein(wrong, c), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    let Some(best) = scored.iter().map(|(d, _)| *d).min() else {
        return Vec::new();
    };
    scored
        .into_iter()
        .filter(|(d, _)| *d == best)
        .map(|(_, c)| c)
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_can_be_read_and_written_back() {
        let mut s = Settings::default();
        for k in KEYS {
            let v = s
                .get(k.name)
                .unwrap_or_else(|| panic!("no getter for {}", k.name));
            s.set(k.name, &v)
                .unwrap_or_else(|e| panic!("{} = {v:?}: {e}", k.name));
            assert_eq!(s.get(k.name).unwrap(), v, "{}", k.name);
        }
        assert_eq!(s.protocol, Config::default());
    }

    #[test]
    fn env_names_follow_the_key() {
        assert_eq!(
            env_var("cluster.heartbeat.interval"),
            "VIGIL_CLUSTER_HEARTBEAT_INTERVAL"
        );
        assert_eq!(env_var("http.admin-token"), "VIGIL_HTTP_ADMIN_TOKEN");
    }

    #[test]
    fn static_quorum_takes_its_size_in_any_order() {
        let mut s = Settings::default();
        s.set("cluster.quorum.size", "3").unwrap();
        s.set("cluster.quorum.policy", "static-quorum").unwrap();
        assert_eq!(
            s.protocol.split_brain_policy,
            SplitBrainPolicy::StaticQuorum { quorum_size: 3 }
        );
        let mut s = Settings::default();
        s.set("cluster.quorum.policy", "static-quorum").unwrap();
        s.set("cluster.quorum.size", "2").unwrap();
        assert_eq!(
            s.protocol.split_brain_policy,
            SplitBrainPolicy::StaticQuorum { quorum_size: 2 }
        );
    }

    #[test]
    fn http_connection_bounds_are_checked() {
        let mut s = Settings::default();
        s.set("http.header-read-timeout", "2s").unwrap();
        s.set("http.max-connections", "64").unwrap();
        assert_eq!(s.http_header_read_timeout, Duration::from_secs(2));
        assert_eq!(s.http_max_connections, 64);
        for (key, bad) in [
            ("http.header-read-timeout", "0"),
            ("http.header-read-timeout", "1h"),
            ("http.max-connections", "0"),
            ("http.max-connections", "1000001"),
        ] {
            assert!(s.set(key, bad).is_err(), "{key} = {bad}");
        }
    }

    #[test]
    fn a_typo_suggests_the_right_key() {
        let e = Settings::default()
            .set("cluster.gosip.fanout", "3")
            .unwrap_err();
        assert!(e.contains("cluster.gossip.fanout"), "{e}");
    }
}
