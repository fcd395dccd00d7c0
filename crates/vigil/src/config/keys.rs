//! The table of every key: its name in `vigil.yml`, its kind, its maximum, its doc, and the
//! setting it fills.
//!
//! One key, one line in [`KEYS`]: [`Settings::set`] and [`Settings::get`] look the key up
//! there, its environment variable is derived from its name (see [`env_var`]), and the
//! annotated default file is rendered from the table, so they cannot drift apart. How a
//! value is parsed follows from the type of the setting (`value::Value`); what a key asks
//! beyond that (at least 1, non-empty, ...) is its `check`.

use std::ops::RangeInclusive;
use std::time::Duration;

use membership::SplitBrainPolicy;

use super::duration;
use super::value::Value;

pub use super::settings::{LogFormat, Preset, SecuritySettings, ServicesSettings, Settings};

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
    get: fn(&Settings) -> String,
    set: fn(&mut Settings, &str) -> Result<(), String>,
}

impl Key {
    /// The key's current value in `settings`, rendered as [`Key::set`] accepts it.
    pub fn get(&self, settings: &Settings) -> String {
        (self.get)(settings)
    }

    /// Checks `value` against the key's maximum and its own rules, then applies it; a
    /// refused value changes nothing. The error is the reason only.
    pub fn set(&self, settings: &mut Settings, value: &str) -> Result<(), String> {
        self.check_max(value)?;
        (self.set)(settings, value)
    }

    /// Checks `value` against the declared maximum. A value that does not parse passes
    /// here: the key's own parser explains what it expects.
    fn check_max(&self, value: &str) -> Result<(), String> {
        let too_big = match self.max {
            Some(Max::Number(max)) => value.trim().parse::<f64>().is_ok_and(|v| v > max),
            Some(Max::Duration(max)) => duration::parse(value).is_ok_and(|v| v > max),
            None => false,
        };
        match self.max {
            Some(max) if too_big => Err(format!("must be at most {max}")),
            _ => Ok(()),
        }
    }
}

/// How a key reads and writes its setting: made by [`field!`], or by hand for the three
/// keys that move another setting with them (the preset, the quorum policy and size).
struct Access {
    kind: Kind,
    get: fn(&Settings) -> String,
    set: fn(&mut Settings, &str) -> Result<(), String>,
}

const fn key(name: &'static str, access: Access, max: Option<Max>, doc: &'static str) -> Key {
    Key {
        name,
        kind: access.kind,
        max,
        doc,
        get: access.get,
        set: access.set,
    }
}

/// The [`Kind`] of a setting, from its type.
const fn kind_of<T: Value>(_: fn(&Settings) -> &T) -> Kind {
    T::KIND
}

/// The parsed `text`, of the type of `_field`.
fn parse_like<T: Value>(_field: &T, text: &str) -> Result<T, String> {
    T::parse(text)
}

/// The [`Access`] of a field of [`Settings`] (a path such as `protocol.gossip_fanout`),
/// parsed and rendered by its type's [`Value`]; `check RULE` refuses parsed values that
/// break the key's own rule, `else "REASON"` replaces the type's parse error.
macro_rules! field {
    ($($path:ident).+ $(, check $check:expr)? $(, else $reason:literal)?) => {
        Access {
            kind: kind_of(|s: &Settings| &s.$($path).+),
            get: |s| Value::render(&s.$($path).+),
            set: |s, text| {
                let parsed = parse_like(&s.$($path).+, text);
                $(let parsed = parsed.map_err(|_| String::from($reason));)?
                let value = parsed?;
                $(($check)(&value)?;)?
                s.$($path).+ = value;
                Ok(())
            },
        }
    };
}

/// `cluster.preset`: the base the other `cluster.*` keys override (the loader applies it
/// before them).
const PRESET: Access = Access {
    kind: Kind::Text,
    get: |s| s.preset.render(),
    set: |s, text| {
        s.preset = Preset::parse(text)?;
        s.protocol = s.preset.config();
        Ok(())
    },
};

/// `cluster.quorum.policy`: static-quorum takes `cluster.quorum.size`, set before or after.
const QUORUM_POLICY: Access = Access {
    kind: Kind::Text,
    get: |s| match s.protocol.split_brain_policy {
        SplitBrainPolicy::KeepMajority => "keep-majority".into(),
        SplitBrainPolicy::StaticQuorum { .. } => "static-quorum".into(),
    },
    set: |s, text| {
        s.protocol.split_brain_policy = match text.trim() {
            "keep-majority" => SplitBrainPolicy::KeepMajority,
            "static-quorum" => SplitBrainPolicy::StaticQuorum {
                quorum_size: s.quorum_size,
            },
            _ => return Err("expected keep-majority or static-quorum".into()),
        };
        Ok(())
    },
};

/// `cluster.quorum.size`: kept apart, and copied into a static-quorum policy.
const QUORUM_SIZE: Access = Access {
    kind: Kind::Number,
    get: |s| s.quorum_size.render(),
    set: |s, text| {
        s.quorum_size = usize::parse(text)?;
        if let SplitBrainPolicy::StaticQuorum { quorum_size } = &mut s.protocol.split_brain_policy {
            *quorum_size = s.quorum_size;
        }
        Ok(())
    },
};

/// A numeric maximum.
const fn n(max: u64) -> Option<Max> {
    Some(Max::Number(max as f64))
}

/// A duration maximum, in seconds.
const fn d(secs: u64) -> Option<Max> {
    Some(Max::Duration(Duration::from_secs(secs)))
}

/// A `check`: at least `min`.
fn at_least<T: PartialOrd>(
    min: T,
    reason: impl Into<String>,
) -> impl FnOnce(&T) -> Result<(), String> {
    move |v| {
        if *v >= min {
            Ok(())
        } else {
            Err(reason.into())
        }
    }
}

/// A `check`: inside `range`.
fn within<T: PartialOrd>(
    range: RangeInclusive<T>,
    reason: impl Into<String>,
) -> impl FnOnce(&T) -> Result<(), String> {
    move |v| {
        if range.contains(v) {
            Ok(())
        } else {
            Err(reason.into())
        }
    }
}

/// A `check`: more than zero.
fn positive(d: &Duration) -> Result<(), String> {
    at_least(Duration::from_nanos(1), "must be more than 0")(d)
}

/// A `check`: not empty (after trimming, as [`Value`] for `String` trims).
fn non_empty(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

/// The check of `node.event-handlers`.
fn few_event_handlers(handlers: &[String]) -> Result<(), String> {
    if handlers.len() > MAX_EVENT_HANDLERS {
        return Err(format!("at most {MAX_EVENT_HANDLERS} commands"));
    }
    Ok(())
}

/// The check of `security.gossip-keys`: each one a key, and not more than a keyring holds.
fn gossip_keys(keys: &[String]) -> Result<(), String> {
    for (i, k) in keys.iter().enumerate() {
        crate::security::Key::parse(k).map_err(|e| format!("key {}: {e}", i + 1))?;
    }
    let most = crate::security::keyring::MAX_KEYS;
    if keys.len() > most {
        return Err(format!("{} keys; at most {most}", keys.len()));
    }
    Ok(())
}

/// The key named `name`, if there is one (tags are not in the table).
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Upper bound of `http.max-connections`: more than a process usually may open files.
pub const MAX_HTTP_CONNECTIONS: usize = 1_000_000;

/// Most commands `node.event-handlers` accepts.
pub const MAX_EVENT_HANDLERS: usize = 16;

/// Prefix of the free `node.tags.<name>` keys.
pub const TAG_PREFIX: &str = "node.tags.";

/// Every key, grouped by section (the order of the rendered default file).
pub const KEYS: &[Key] = &[
    key("node.id", field!(id), None, "unique member id; required to run a node (usually given with --id)"),
    key("node.cluster", field!(cluster_name, check non_empty), None, "cluster name; datagrams of other clusters are dropped"),
    key("node.role", field!(role), None, "role label (gateway, coordinator, producer, consumer, ...)"),
    key("node.zone", field!(zone), None, "failure-domain zone label; observers are spread over zones"),
    key("node.rack", field!(rack), None, "optional rack label inside the zone"),
    key("node.gossip", field!(gossip), None, "UDP address the gossip socket binds"),
    key("node.advertise", field!(advertise), None, "gossip address peers should use (needed when node.gossip binds 0.0.0.0, or behind NAT)"),
    key("node.http", field!(http), None, "address the HTTP API binds"),
    key("node.http-advertise", field!(http_advertise), None, "HTTP address published to peers (default: node.http, or the advertised host with node.http's port)"),
    key("node.seeds", field!(seeds), None, "host:port gossip addresses to join through; none = bootstrap a new cluster"),
    key("node.remember-peers", field!(remember_peers), None, "keep the addresses of the members last seen in node.peers-file and add them to the seeds at the next start, so that a node restarted without seeds rejoins its cluster instead of founding a second one; false = remember nothing"),
    key("node.peers-file", field!(peers_file), None, "file of node.remember-peers; empty = .vigil/data/<node id>.peers (relative to the working directory)"),
    key("node.leave-linger", field!(leave_linger), d(60), "how long a leaving node keeps gossiping so that its departure spreads"),
    key("node.signals-interval", field!(signals_interval, check at_least(Duration::from_millis(100), "must be at least 100ms")), d(60), "how often the node measures its own CPU, pressure, lag, memory, latency and error signals"),
    key("node.event-handlers", field!(event_handlers, check few_event_handlers), None, "commands run (sh -c) once per membership event, with VIGIL_EVENT, VIGIL_MEMBER_ID, VIGIL_STATUS, ... in the environment and the event's JSON on stdin; at most 16, no comma inside a command (call a script)"),
    key("node.event-handler-timeout", field!(event_handler_timeout, check positive), d(3600), "an event handler still running after this long is killed (the next event waits for it meanwhile)"),
    key("http.admin-token", field!(admin_token), None, "Bearer token for state-changing endpoints (POST /cluster/leave, ...), at least 24 characters (vigil keys token); required while http.admin-endpoints is on, unless security.insecure"),
    key("http.admin-endpoints", field!(admin_endpoints), None, "true = POST /cluster/leave, member removal and the keyring endpoints are served (then http.admin-token is required); false = they answer 403"),
    key("http.max-body", field!(http_max_body, check at_least(1024, "must be at least 1024 bytes")), n(64 << 20), "largest HTTP request body accepted, bytes (413 above)"),
    key("http.request-timeout", field!(http_request_timeout, check positive), d(600), "an HTTP request still unanswered after this long gets 408"),
    key("http.header-read-timeout", field!(http_header_read_timeout, check within(Duration::from_millis(100)..=Duration::from_secs(300), "must be 100ms-5m")), d(300), "a connection that has not sent a whole request head (or TLS handshake) within this long is closed (slow clients, idle keep-alive); 100ms-5m"),
    key("http.max-connections", field!(http_max_connections, check within(1..=MAX_HTTP_CONNECTIONS, format!("must be 1-{MAX_HTTP_CONNECTIONS}"))), n(MAX_HTTP_CONNECTIONS as u64), "most HTTP connections open at once; one more is answered 503 and closed (kept below the open-file limit); 1-1000000"),
    key("http.tls-cert", field!(http_tls_cert), None, "PEM certificate chain (leaf first): with http.tls-key, the API serves HTTPS only and is advertised as https://"),
    key("http.tls-key", field!(http_tls_key), None, "PEM private key of http.tls-cert"),
    key("http.tls-ca", field!(http_tls_ca), None, "PEM CA bundle trusted, besides the public roots, when this node calls peers over HTTPS"),
    key("security.gossip-keys", field!(security.gossip_keys, check gossip_keys), None, "base64 32-byte keys (vigil keys generate); the first seals, all open; required (or security.keyring-file) unless security.insecure"),
    key("security.encrypt", field!(security.encrypt), None, "with keys: true = encrypt and authenticate every datagram, false = authenticate only"),
    key("security.verify-incoming", field!(security.verify_incoming), None, "with keys: false also accepts unsealed datagrams (only while turning keys on in a running cluster)"),
    key("security.keyring-file", field!(security.keyring_file), None, "file that holds the keyring across restarts (rewritten by vigil keys); loaded over security.gossip-keys when it exists"),
    key("security.insecure", field!(security.insecure), None, "true = run without gossip keys and without an admin token (anyone on the network can join, forge members and, with admin endpoints on, nothing guards them); logged as a warning and shown in /cluster/status"),
    key("security.source-rate", field!(security.source_rate), n(1_000_000), "datagrams per second accepted from one source address; 0 = unlimited"),
    key("security.source-burst", field!(security.source_burst, check at_least(1, "must be at least 1")), n(1_000_000), "datagrams one source may send in a burst above security.source-rate"),
    key("log.format", field!(log_format), None, "text or json"),
    key("log.level", field!(log_level), None, "tracing filter, e.g. info or vigil=debug,info"),
    key("cluster.preset", PRESET, None, "lan or wan: the base the other cluster keys override"),
    key("cluster.heartbeat.interval", field!(protocol.heartbeat_interval), d(60), "how often a node heartbeats each of its observers (seed: 1000)"),
    key("cluster.failure.timeout", field!(protocol.failure_timeout), d(3600), "an observer accuses a silent subject after this long whatever phi says (seed: 15000)"),
    key("cluster.gossip.fanout", field!(protocol.gossip_fanout), n(32), "peers contacted per gossip round (seed: 3)"),
    key("cluster.gossip.interval", field!(protocol.gossip_interval), d(60), "time between gossip rounds"),
    key("cluster.gossip.retransmit-multiplier", field!(protocol.retransmit_multiplier), n(32), "each update is sent multiplier * ceil(log10(n + 1)) times"),
    key("cluster.gossip.max-pending", field!(protocol.max_pending_updates), n(1_000_000), "most updates waiting to be gossiped; anti-entropy carries the rest"),
    key("cluster.phi.threshold", field!(protocol.phi_threshold), n(50), "phi above which an observer suspects its subject (seed: 8.0)"),
    key("cluster.phi.min-std-deviation", field!(protocol.phi_min_std_deviation), d(60), "floor of the heartbeat inter-arrival standard deviation"),
    key("cluster.phi.acceptable-heartbeat-pause", field!(protocol.acceptable_heartbeat_pause), d(600), "pause tolerated on top of the mean inter-arrival time"),
    key("cluster.phi.window", field!(protocol.phi_window), n(10_000), "inter-arrival samples kept per watched member"),
    key("cluster.monitoring.observers", field!(protocol.observers), n(16), "how many members watch each member directly"),
    key("cluster.monitoring.probe-timeout", field!(protocol.probe_timeout), d(60), "how long an observer waits for a direct probe answer before accusing"),
    key("cluster.conviction.confirmations", field!(protocol.confirmations), n(16), "distinct accusers needed to convict a member"),
    key("cluster.conviction.suspicion-timeout", field!(protocol.suspicion_timeout), d(3600), "minimum time from first accusation to conviction, so a live member can refute"),
    key("cluster.eviction.grace-period", field!(protocol.eviction_grace_period), d(24 * 3600), "how long a FAILED member stays listed before it is evicted"),
    key("cluster.eviction.tombstone-ttl", field!(protocol.tombstone_ttl), d(7 * 24 * 3600), "how long an evicted or departed member is remembered"),
    key("cluster.seeds.rejoin-interval", field!(protocol.seed_rejoin_interval), d(3600), "how often a node re-contacts its seeds (heals partitions)"),
    key("cluster.anti-entropy.interval", field!(protocol.anti_entropy_interval), d(3600), "how often a node compares its table with a random peer"),
    key("cluster.health.degraded-threshold", field!(protocol.degraded_threshold, else "expected a whole number 0-100"), n(100), "an alive member scoring below this (0-100) is DEGRADED"),
    key("cluster.quorum.policy", QUORUM_POLICY, None, "keep-majority or static-quorum"),
    key("cluster.quorum.size", QUORUM_SIZE, n(1_000_000), "voters needed under static-quorum (ignored by keep-majority)"),
    key("cluster.transport.max-datagram", field!(protocol.max_datagram), n(65_000), "largest datagram ever sent, bytes"),
    key("cluster.local-pause-guard", field!(protocol.local_pause_guard), d(600), "if this node was itself not scheduled for this long, it accuses nobody"),
    key("cluster.limits.max-members", field!(protocol.max_members), n(1_000_000), "most members and tombstones a node holds; unknown members beyond it are refused (counted)"),
    key("cluster.limits.max-metadata-bytes", field!(protocol.max_metadata_bytes), n(65_000), "largest encoded metadata of one member (role, zone, addresses, tags); larger records are refused"),
    key("services.producer.rate", field!(services.producer_rate), n(1_000_000), "log events per second the producer generates by itself; 0 = only what is POSTed"),
    key("services.producer.queue-capacity", field!(services.queue_capacity, check at_least(1, "must be at least 1")), n(10_000_000), "events the producer holds before answering 429 (backpressure instead of unbounded memory)"),
    key("services.producer.batch-size", field!(services.batch_size, check within(1..=5000, "must be 1-5000")), n(5000), "most events the producer delivers in one request or publish round"),
    key("services.producer.ack-timeout", field!(services.ack_timeout, check positive), d(600), "how long POST /logs waits for its events to be durably handed on (stored, or acknowledged by Kafka) before answering 503; they stay queued"),
    key("services.consumer.sqlite-path", field!(services.sqlite_path), None, "SQLite file of the embedded store; empty = .vigil/data/<node id>.sqlite"),
    key("services.postgres.url", field!(services.postgres_url), None, "PostgreSQL URL for the consumer's store, e.g. postgres://vigil@127.0.0.1:5432/vigil; empty = embedded SQLite"),
    key("services.redis.url", field!(services.redis_url), None, "Redis URL for the gateway's cache, e.g. redis://127.0.0.1:6379; empty = in-process cache"),
    key("services.kafka.brokers", field!(services.kafka_brokers), None, "Kafka bootstrap servers, e.g. 127.0.0.1:9092; empty = producers deliver straight to a healthy consumer over HTTP"),
    key("services.kafka.topic", field!(services.kafka_topic, check non_empty), None, "topic the producer publishes to (keyed by service) and the consumer group reads"),
    key("services.kafka.group", field!(services.kafka_group, check non_empty), None, "consumer group id of the consumers"),
    key("services.kafka.partitions", field!(services.kafka_partitions, check at_least(1, "must be at least 1")), n(10_000), "partitions of the topic when the producer or consumer creates it"),
    key("services.kafka.static-membership", field!(services.kafka_static_membership), None, "true = a consumer joins its group as a static member named by its node id (group.instance.id, KIP-345), so a restarted consumer takes back its partitions at once; false = dynamic membership"),
    key("services.kafka.session-timeout", field!(services.kafka_session_timeout, check within(Duration::from_secs(6)..=Duration::from_secs(300), "must be 6s-300s (the broker's default bounds)")), d(300), "how long the broker waits for a silent consumer before giving its partitions to the others (session.timeout.ms)"),
    key("services.cache.ttl", field!(services.cache_ttl), d(3600), "how long the gateway caches query results (GET /api/logs, /api/logs/stats)"),
    key("services.cache.status-ttl", field!(services.status_ttl), d(3600), "how long the gateway caches GET /api/cluster/status"),
];

/// The environment variable that overrides `key`: `VIGIL_` + the key in upper case with
/// `.` and `-` turned into `_` (`cluster.heartbeat.interval` -> `VIGIL_CLUSTER_HEARTBEAT_INTERVAL`).
pub fn env_var(key: &str) -> String {
    format!("VIGIL_{}", key.replace(['.', '-'], "_").to_uppercase())
}

/// Whether `key` is a known key (or a tag).
pub fn is_known(key: &str) -> bool {
    KEYS.iter().any(|k| k.name == key)
        || key.strip_prefix(TAG_PREFIX).is_some_and(|t| !t.is_empty())
}

pub(super) fn unknown_key_reason(key: &str) -> String {
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
    use membership::Config;

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
    fn a_refused_value_leaves_the_setting_as_it_was() {
        let mut s = Settings::default();
        for (key, bad) in [
            ("http.max-body", "1000"),
            ("node.signals-interval", "10ms"),
            ("services.producer.batch-size", "0"),
            ("services.kafka.topic", " "),
            ("cluster.health.degraded-threshold", "-1"),
            ("cluster.gossip.fanout", "33"),
        ] {
            let before = s.get(key);
            assert!(s.set(key, bad).is_err(), "{key} = {bad}");
            assert_eq!(s.get(key), before, "{key}");
        }
        assert_eq!(
            s.set("cluster.health.degraded-threshold", "lots"),
            Err("expected a whole number 0-100".into())
        );
    }

    #[test]
    fn each_key_takes_its_kind_from_its_setting() {
        for (name, kind) in [
            ("node.id", Kind::Text),
            ("node.advertise", Kind::Text),
            ("node.seeds", Kind::List),
            ("node.leave-linger", Kind::Duration),
            ("http.admin-endpoints", Kind::Bool),
            ("http.max-body", Kind::Number),
            ("log.format", Kind::Text),
            ("cluster.preset", Kind::Text),
            ("cluster.phi.threshold", Kind::Number),
            ("cluster.quorum.size", Kind::Number),
        ] {
            assert_eq!(find(name).map(|k| k.kind), Some(kind), "{name}");
        }
    }

    #[test]
    fn tags_are_free_keys_outside_the_table() {
        let mut s = Settings::default();
        s.set("node.tags.team", " storage ").unwrap();
        assert_eq!(s.get("node.tags.team").as_deref(), Some("storage"));
        assert!(is_known("node.tags.team") && !is_known("node.tags."));
        assert_eq!(s.set("node.tags.", "x"), Err("tag name is empty".into()));
        assert_eq!(s.get("node.tags.other"), None);
    }

    #[test]
    fn a_typo_suggests_the_right_key() {
        let e = Settings::default()
            .set("cluster.gosip.fanout", "3")
            .unwrap_err();
        assert!(e.contains("cluster.gossip.fanout"), "{e}");
    }
}
