//! Configuration: `vigil.yml`, then environment variables, then flags (each layer overrides
//! the one before), then validation.
//!
//! ```text
//! defaults  <  --config FILE (vigil.yml)  <  VIGIL_* environment  <  flags (--id, --set KEY=VALUE, ...)
//! ```
//!
//! The file is nested YAML with the seed's keys (`cluster: heartbeat: interval: 1000`). It is
//! flattened to dotted keys (`cluster.heartbeat.interval`) so that all three layers speak the
//! same names; [`keys::KEYS`] lists them. Any mistake (unreadable file, unknown key, bad
//! value, a value the protocol rejects) becomes an [`Error`] naming the key, where it came
//! from and why; `main` turns it into exit code 2.

pub mod duration;
pub mod keys;
pub mod protection;
mod settings;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use keys::{LogFormat, Settings};
pub use protection::require_protection;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration that cannot be used. `main` exits with code 2 on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The file could not be read or is not valid YAML.
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key or value was rejected.
    Value {
        /// The dotted key.
        key: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A `VIGIL_*` environment variable that is no key's (a typo must not pass silently).
    UnknownEnv {
        /// The variable.
        var: String,
        /// Why, with a did-you-mean when one is near.
        reason: String,
    },
    /// A member would start unprotected without the operator's explicit consent
    /// (`security.insecure`).
    Unprotected {
        /// What is missing, and how to provide it; one item each.
        missing: Vec<String>,
    },
    /// More than one of the above, in the order found ([`load_all`]).
    Several(Vec<Error>),
}

impl Error {
    /// One error for a list of them: the only one, or [`Error::Several`].
    pub fn from_list(mut errors: Vec<Error>) -> Error {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            Error::Several(errors)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::File { path, reason } => {
                write!(f, "cannot use config file {}: {reason}", path.display())
            }
            Error::Value {
                key,
                value,
                reason,
                origin,
            } => {
                write!(
                    f,
                    "invalid value {value:?} for `{key}` (from {origin}): {reason}"
                )
            }
            Error::UnknownEnv { var, reason } => {
                write!(f, "unknown environment variable {var}: {reason}")
            }
            Error::Unprotected { missing } => {
                f.write_str(
                    "refusing to start a member that anyone on the network could take over:",
                )?;
                for m in missing {
                    write!(f, "\n  - {m}")?;
                }
                write!(
                    f,
                    "\n  To run unprotected anyway (a test on a trusted machine), say so: --insecure \
                     (or security.insecure: true, or {}=true).",
                    keys::env_var("security.insecure")
                )
            }
            Error::Several(errors) => {
                write!(f, "{} errors:", errors.len())?;
                for (i, e) in errors.iter().enumerate() {
                    let text = e.to_string().replace('\n', "\n     ");
                    write!(f, "\n  {}. {text}", i + 1)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

/// The layers to merge.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--config FILE`.
    pub file: Option<PathBuf>,
    /// Environment variables (name, value): every `VIGIL_*` name must be a key's, or in
    /// [`keys::NOT_KEYS`], or start with [`keys::TEST_ENV_PREFIX`].
    pub env: Vec<(String, String)>,
    /// Flag overrides: (dotted key, value, flag as typed).
    pub flags: Vec<(String, String, String)>,
}

impl Sources {
    /// The process environment.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars()
            .filter(|(k, _)| k.starts_with("VIGIL_"))
            .collect();
        self
    }
}

/// Merges defaults, file, environment and flags, then validates; the first error found.
pub fn load(sources: &Sources) -> Result<Settings, Error> {
    load_all(sources).map_err(|mut errors| errors.remove(0))
}

/// [`load`] that goes on past the first mistake and reports every one it finds, in the
/// order `load` would meet them (`vigil config check` lists them all). Never an empty `Err`.
pub fn load_all(sources: &Sources) -> Result<Settings, Vec<Error>> {
    let mut errors = unknown_environment(&sources.env);
    let mut layered: Vec<(String, String, Origin)> = Vec::new();
    if let Some(path) = &sources.file {
        let (pairs, file_errors) = read_file_all(path);
        errors.extend(file_errors);
        for (k, v) in pairs {
            layered.push((k, v, Origin::File(path.clone())));
        }
    }
    let env: BTreeMap<&str, &str> = sources
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for key in keys::KEYS {
        let var = keys::env_var(key.name);
        if let Some(v) = env.get(var.as_str()) {
            layered.push((key.name.to_string(), v.to_string(), Origin::Env(var)));
        }
    }
    for (k, v, flag) in &sources.flags {
        layered.push((k.clone(), v.clone(), Origin::Flag(flag.clone())));
    }
    // The preset is the base of every other cluster key, so it goes first.
    layered.sort_by_key(|(k, _, _)| k != "cluster.preset");

    let mut settings = Settings::default();
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
    for (key, value, origin) in layered {
        if let Err(reason) = settings.set(&key, &value) {
            // a mistyped secret must not land in logs
            let value = if key == "security.gossip-keys" || key == "http.admin-token" {
                "(hidden)".into()
            } else {
                value
            };
            errors.push(Error::Value {
                key,
                value,
                reason,
                origin,
            });
            continue;
        }
        origins.insert(key, origin);
    }
    settings.origins = origins;
    errors.extend(validate(&settings));
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

/// Every `VIGIL_*` variable that names no key, by name.
fn unknown_environment(env: &[(String, String)]) -> Vec<Error> {
    let mut names: Vec<&str> = env
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("VIGIL_"))
        .collect();
    names.sort_unstable();
    names
        .into_iter()
        .filter_map(|var| {
            keys::unknown_env_reason(var).map(|reason| Error::UnknownEnv {
                var: var.to_string(),
                reason,
            })
        })
        .collect()
}

/// Shortest admin token accepted (unless `security.insecure`): `vigil keys token` makes 43.
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;

/// The core's verdict on the protocol knobs, blamed on the key the operator actually set.
///
/// The core checks relations (`probe-timeout` shorter than `failure.timeout`) and names one
/// side of each; when that side is a default and the other side, named in the reason, was
/// set by a layer, the set one is at fault.
fn protocol_error(s: &Settings, e: membership::ConfigError) -> Error {
    let blamed = e.key;
    if s.origin(blamed) == Origin::Default {
        let culprit = keys::KEYS
            .iter()
            .map(|k| k.name)
            .filter(|k| *k != blamed && s.origin(k) != Origin::Default)
            .find(|k| mentions(&e.reason, k));
        if let Some(culprit) = culprit {
            return Error::Value {
                key: culprit.to_string(),
                value: s.get(culprit).unwrap_or_default(),
                reason: format!(
                    "{blamed} (default {}) {}",
                    s.get(blamed).unwrap_or(e.value),
                    e.reason
                ),
                origin: s.origin(culprit),
            };
        }
    }
    Error::Value {
        key: blamed.to_string(),
        value: e.value,
        reason: e.reason,
        origin: s.origin(blamed),
    }
}

/// Whether `text` names `key` as a whole name (`node.http` is not named by
/// `node.http-advertise`).
fn mentions(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        !text[i + key.len()..]
            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

fn validate(s: &Settings) -> Vec<Error> {
    let origin = |key: &str| s.origin(key);
    let mut errors = Vec::new();
    if let Err(e) = s.protocol.validate() {
        errors.push(protocol_error(s, e));
    }
    if let Some(token) = &s.admin_token {
        let chars = token.chars().count();
        if chars < MIN_ADMIN_TOKEN_LEN && !s.security.insecure {
            errors.push(Error::Value {
                key: "http.admin-token".into(),
                value: "(hidden)".into(),
                reason: format!(
                    "too short to be a secret ({chars} characters; at least \
                     {MIN_ADMIN_TOKEN_LEN}): make one with `vigil keys token`, or accept a weak \
                     one with --insecure"
                ),
                origin: origin("http.admin-token"),
            });
        }
    }
    for key in ["node.gossip", "node.http"] {
        let value = s.get(key).unwrap_or_default();
        if value.parse::<std::net::SocketAddr>().is_err() && !looks_like_host_port(&value) {
            errors.push(Error::Value {
                key: key.into(),
                value,
                reason: "expected HOST:PORT to bind, e.g. 0.0.0.0:7946 or localhost:8080".into(),
                origin: origin(key),
            });
        }
    }
    for key in ["node.advertise", "node.http-advertise"] {
        let value = s.get(key).unwrap_or_default();
        if !value.is_empty() && !looks_like_host_port(&value) {
            errors.push(Error::Value {
                key: key.into(),
                value,
                reason: "expected HOST:PORT".into(),
                origin: origin(key),
            });
        }
    }
    for seed in &s.seeds {
        if !looks_like_host_port(seed) {
            errors.push(Error::Value {
                key: "node.seeds".into(),
                value: seed.clone(),
                reason: "expected HOST:PORT (a comma-separated list)".into(),
                origin: origin("node.seeds"),
            });
        }
    }
    if s.http_tls_cert.is_some() != s.http_tls_key.is_some() {
        let (key, other) = if s.http_tls_cert.is_some() {
            ("http.tls-key", "http.tls-cert")
        } else {
            ("http.tls-cert", "http.tls-key")
        };
        errors.push(Error::Value {
            key: key.into(),
            value: String::new(),
            reason: format!("required when {other} is set (HTTPS needs both)"),
            origin: origin(other),
        });
    }
    if s.log_level
        .parse::<tracing_subscriber::EnvFilter>()
        .is_err()
    {
        errors.push(Error::Value {
            key: "log.level".into(),
            value: s.log_level.clone(),
            reason: "not a tracing filter (e.g. info, debug, vigil=debug,info)".into(),
            origin: origin("log.level"),
        });
    }
    errors
}

fn looks_like_host_port(v: &str) -> bool {
    match v.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

/// Reads a file into dotted keys, the known ones, and every error (unknown keys, bad values).
fn read_file_all(path: &Path) -> (Vec<(String, String)>, Vec<Error>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let error = Error::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
            return (Vec::new(), vec![error]);
        }
    };
    let (pairs, errors) = parse_yaml_all(&text);
    let errors = errors
        .into_iter()
        .map(|e| match e {
            Error::Value {
                key, value, reason, ..
            } => Error::Value {
                key,
                value,
                reason,
                origin: Origin::File(path.to_path_buf()),
            },
            Error::File { reason, .. } => Error::File {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
        .collect();
    (pairs, errors)
}

/// Parses YAML text into dotted keys; unknown keys are errors (typos must not pass silently).
#[allow(dead_code)] // the fuzz target's entry point (fuzz/fuzz_targets/config.rs) and tests
pub fn parse_yaml(text: &str) -> Result<Vec<(String, String)>, Error> {
    match parse_yaml_all(text) {
        (pairs, errors) if errors.is_empty() => Ok(pairs),
        (_, mut errors) => Err(errors.remove(0)),
    }
}

/// Parses YAML text into the dotted keys that are known, and an error for each that is not.
fn parse_yaml_all(text: &str) -> (Vec<(String, String)>, Vec<Error>) {
    let file_err = |reason: String| Error::File {
        path: PathBuf::new(),
        reason,
    };
    let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => return (Vec::new(), vec![file_err(e.to_string())]),
    };
    let mut out = Vec::new();
    match value {
        serde_yaml_ng::Value::Null => {}
        serde_yaml_ng::Value::Mapping(_) => {
            if let Err(e) = flatten("", &value, &mut out) {
                return (Vec::new(), vec![e]);
            }
        }
        _ => {
            let e =
                file_err("expected a mapping of sections (node:, http:, log:, cluster:)".into());
            return (Vec::new(), vec![e]);
        }
    }
    let mut errors = Vec::new();
    out.retain(|(k, v)| {
        if keys::is_known(k) {
            return true;
        }
        let mut probe = Settings::default();
        let reason = probe
            .set(k, v)
            .err()
            .unwrap_or_else(|| "unknown key".into());
        errors.push(Error::Value {
            key: k.clone(),
            value: v.clone(),
            reason,
            origin: Origin::Default,
        });
        false
    });
    (out, errors)
}

fn flatten(
    prefix: &str,
    value: &serde_yaml_ng::Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), Error> {
    use serde_yaml_ng::Value;
    let bad = |reason: &str| Error::Value {
        key: prefix.to_string(),
        value: format!("{value:?}"),
        reason: reason.to_string(),
        origin: Origin::Default,
    };
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let name = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(bad("keys must be plain names")),
                };
                let key = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}.{name}")
                };
                flatten(&key, v, out)?;
            }
        }
        Value::Sequence(items) => {
            let mut parts = Vec::new();
            for item in items {
                parts.push(scalar(item).ok_or_else(|| bad("list items must be plain values"))?);
            }
            out.push((prefix.to_string(), parts.join(",")));
        }
        Value::Tagged(t) => flatten(prefix, &t.value, out)?,
        // `key:` with nothing after it leaves the default in place.
        Value::Null => {}
        other => out.push((
            prefix.to_string(),
            scalar(other).ok_or_else(|| bad("unsupported value"))?,
        )),
    }
    Ok(())
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    use serde_yaml_ng::Value;
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The annotated default file (`vigil config defaults`), rendered from [`keys::KEYS`].
pub fn render_defaults() -> String {
    let defaults = Settings::default();
    let mut out = String::from(
        "# vigil.yml: every key with its default.\n\
         # Precedence: this file < environment (VIGIL_<KEY>, e.g. VIGIL_CLUSTER_HEARTBEAT_INTERVAL)\n\
         #             < flags (--id, --http, ..., --set cluster.gossip.fanout=5).\n\
         # Durations: a bare number is milliseconds (as in the seed); or 500ms, 1.5s, 2m, 1h.\n\n",
    );
    let readers: Vec<&str> = keys::NOT_KEYS.iter().map(|(name, _)| *name).collect();
    out.push_str(&format!(
        "# Any other VIGIL_* variable is refused, except {} and {}*, which are not keys.\n",
        readers.join(", "),
        keys::TEST_ENV_PREFIX
    ));
    let mut open: Vec<&str> = Vec::new();
    for key in keys::KEYS {
        let parts: Vec<&str> = key.name.split('.').collect();
        let (parents, leaf) = parts.split_at(parts.len() - 1);
        let common = open.iter().zip(parents).take_while(|(a, b)| a == b).count();
        open.truncate(common);
        for (depth, parent) in parents.iter().enumerate().skip(common) {
            if depth == 0 {
                out.push('\n');
            }
            out.push_str(&format!("{}{parent}:\n", "  ".repeat(depth)));
            open.push(parent);
        }
        let indent = "  ".repeat(parents.len());
        let value = defaults.get(key.name).unwrap_or_default();
        let rendered = match key.kind {
            keys::Kind::Text => serde_json::to_string(&value).unwrap_or_default(),
            keys::Kind::Number | keys::Kind::Duration | keys::Kind::Bool => value,
            keys::Kind::List => {
                let items: Vec<String> = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| serde_json::to_string(s).unwrap_or_default())
                    .collect();
                format!("[{}]", items.join(", "))
            }
        };
        let max = key
            .max
            .map(|m| format!("; at most {m}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{indent}# {} (env {}{max})\n",
            key.doc,
            keys::env_var(key.name)
        ));
        out.push_str(&format!("{indent}{}: {rendered}\n", leaf[0]));
    }
    out.push_str("\n# Free labels published with the member: node: tags: { team: storage }\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn flags(pairs: &[(&str, &str)]) -> Vec<(String, String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string(), format!("--set {k}")))
            .collect()
    }

    #[test]
    fn the_seeds_nested_keys_are_read() {
        let kv = parse_yaml("cluster:\n  heartbeat:\n    interval: 1500\n  failure:\n    timeout: 10000\n  gossip:\n    fanout: 5\n  phi:\n    threshold: 10.0\n").unwrap();
        let mut s = Settings::default();
        for (k, v) in kv {
            s.set(&k, &v).unwrap();
        }
        assert_eq!(s.protocol.heartbeat_interval, Duration::from_millis(1500));
        assert_eq!(s.protocol.failure_timeout, Duration::from_secs(10));
        assert_eq!(s.protocol.gossip_fanout, 5);
        assert_eq!(s.protocol.phi_threshold, 10.0);
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let dir = std::env::temp_dir().join(format!("vigil-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vigil.yml");
        std::fs::write(
            &file,
            "cluster:\n  gossip:\n    fanout: 2\n    interval: 300\n",
        )
        .unwrap();
        let sources = Sources {
            file: Some(file.clone()),
            env: vec![
                ("VIGIL_CLUSTER_GOSSIP_FANOUT".into(), "4".into()),
                ("VIGIL_CLUSTER_GOSSIP_INTERVAL".into(), "250ms".into()),
            ],
            flags: flags(&[("cluster.gossip.fanout", "6")]),
        };
        let s = load(&sources).unwrap();
        assert_eq!(s.protocol.gossip_fanout, 6);
        assert_eq!(s.protocol.gossip_interval, Duration::from_millis(250));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_bad_value_names_key_origin_and_reason() {
        let sources = Sources {
            env: vec![("VIGIL_CLUSTER_GOSSIP_FANOUT".into(), "many".into())],
            ..Default::default()
        };
        let e = load(&sources).unwrap_err().to_string();
        assert!(
            e.contains("cluster.gossip.fanout")
                && e.contains("VIGIL_CLUSTER_GOSSIP_FANOUT")
                && e.contains("whole number"),
            "{e}"
        );
    }

    #[test]
    fn a_value_the_protocol_rejects_names_the_key() {
        let sources = Sources {
            flags: flags(&[("cluster.gossip.fanout", "0")]),
            ..Default::default()
        };
        let e = load(&sources).unwrap_err();
        assert!(
            matches!(&e, Error::Value { key, .. } if key == "cluster.gossip.fanout"),
            "{e}"
        );
    }

    #[test]
    fn a_tls_certificate_without_its_key_names_the_missing_key() {
        let sources = Sources {
            env: vec![("VIGIL_HTTP_TLS_CERT".into(), "/etc/vigil/cert.pem".into())],
            ..Default::default()
        };
        let e = load(&sources).unwrap_err();
        assert!(
            matches!(&e, Error::Value { key, .. } if key == "http.tls-key"),
            "{e}"
        );
        assert!(e.to_string().contains("http.tls-cert"), "{e}");
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let dir = std::env::temp_dir().join(format!("vigil-config-all-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vigil.yml");
        std::fs::write(
            &file,
            "cluster:\n  hearbeat:\n    interval: 1000\n  gossip:\n    fanout: lots\nnode:\n  http: nowhere\n",
        )
        .unwrap();
        let sources = Sources {
            file: Some(file.clone()),
            env: env(&[("VIGIL_CLUSTR_PRESET", "lan")]),
            flags: flags(&[("log.level", "[[")]),
        };
        let errors = load_all(&sources).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        let text = Error::from_list(errors.clone()).to_string();
        assert_eq!(errors.len(), 5, "{text}");
        for needle in [
            "VIGIL_CLUSTR_PRESET",
            "cluster.hearbeat.interval",
            "cluster.gossip.fanout",
            "node.http",
            "log.level",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(text.starts_with("5 errors:\n  1. "), "{text}");
        // `load` still stops at the first, the same one
        assert_eq!(load(&sources).unwrap_err(), errors[0]);
    }

    #[test]
    fn bind_addresses_may_name_a_host() {
        let sources = Sources {
            flags: flags(&[
                ("node.http", "localhost:8080"),
                ("node.gossip", "127.0.0.1:7946"),
            ]),
            ..Default::default()
        };
        assert_eq!(load(&sources).unwrap().http, "localhost:8080");
        let sources = Sources {
            flags: flags(&[("node.http", "localhost")]),
            ..Default::default()
        };
        assert!(load(&sources).is_err());
    }

    #[test]
    fn unknown_keys_in_a_file_are_rejected() {
        let e = parse_yaml("cluster:\n  hearbeat:\n    interval: 1000\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster.hearbeat.interval"), "{e}");
    }

    #[test]
    fn the_preset_is_applied_before_other_keys_whatever_the_layer() {
        let sources = Sources {
            env: vec![("VIGIL_CLUSTER_PRESET".into(), "wan".into())],
            flags: flags(&[("cluster.gossip.fanout", "4")]),
            ..Default::default()
        };
        let s = load(&sources).unwrap();
        assert_eq!(
            s.protocol.heartbeat_interval,
            membership::Config::wan().heartbeat_interval
        );
        assert_eq!(s.protocol.gossip_fanout, 4);
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_misspelled_environment_variable_is_refused_with_a_did_you_mean() {
        let sources = Sources {
            env: env(&[("VIGIL_CLUSTER_PHI_TRESHOLD", "0")]),
            ..Default::default()
        };
        let e = load(&sources).unwrap_err();
        assert!(
            matches!(&e, Error::UnknownEnv { var, .. } if var == "VIGIL_CLUSTER_PHI_TRESHOLD"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("did you mean VIGIL_CLUSTER_PHI_THRESHOLD?"),
            "{e}"
        );
        let far = Sources {
            env: env(&[("VIGIL_SOMETHING_ELSE_ENTIRELY", "1")]),
            ..Default::default()
        };
        assert!(matches!(load(&far), Err(Error::UnknownEnv { .. })));
    }

    #[test]
    fn variables_that_are_not_keys_but_have_a_reader_are_allowed() {
        let sources = Sources {
            env: env(&[
                ("VIGIL_BIN", "/usr/bin/vigil"),
                ("VIGIL_CONFIG", "vigil.yml"),
                ("VIGIL_ADDR", "http://127.0.0.1:8081"),
                ("VIGIL_TEST_POSTGRES_URL", "postgres://x"),
                ("VIGIL_CLUSTER_PHI_THRESHOLD", "9"),
                ("NOT_VIGIL_AT_ALL", "x"),
            ]),
            ..Default::default()
        };
        assert_eq!(load(&sources).unwrap().protocol.phi_threshold, 9.0);
    }

    #[test]
    fn every_layer_reports_its_own_origin() {
        let sources = Sources {
            env: env(&[("VIGIL_CLUSTER_GOSSIP_FANOUT", "4")]),
            flags: vec![(
                "node.gossip".into(),
                "0.0.0.0:7946".into(),
                "--gossip".into(),
            )],
            ..Default::default()
        };
        let s = load(&sources).unwrap();
        assert_eq!(s.origin("node.gossip"), Origin::Flag("--gossip".into()));
        assert_eq!(
            s.origin("cluster.gossip.fanout"),
            Origin::Env("VIGIL_CLUSTER_GOSSIP_FANOUT".into())
        );
        assert_eq!(s.origin("node.http"), Origin::Default);
    }

    #[test]
    fn a_value_from_the_file_reports_the_file_and_a_later_layer_takes_over() {
        let dir = std::env::temp_dir().join(format!("vigil-config-origin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vigil.yml");
        std::fs::write(
            &file,
            "node:\n  role: gateway\n  zone: eu\n  tags:\n    team: storage\n",
        )
        .unwrap();
        let sources = Sources {
            file: Some(file.clone()),
            env: env(&[("VIGIL_NODE_ZONE", "us")]),
            ..Default::default()
        };
        let s = load(&sources).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(s.role, "gateway");
        assert_eq!(s.origin("node.role"), Origin::File(file.clone()));
        assert_eq!(s.origin("node.tags.team"), Origin::File(file));
        assert_eq!(s.zone, "us");
        assert_eq!(s.origin("node.zone"), Origin::Env("VIGIL_NODE_ZONE".into()));
    }

    #[test]
    fn a_relation_is_blamed_on_the_key_the_operator_set() {
        // The core names probe-timeout (a default here) for "shorter than failure.timeout".
        let sources = Sources {
            flags: flags(&[("cluster.failure.timeout", "0.0001s")]),
            ..Default::default()
        };
        let e = load(&sources).unwrap_err();
        assert!(
            matches!(&e, Error::Value { key, origin, .. }
                if key == "cluster.failure.timeout"
                    && *origin == Origin::Flag("--set cluster.failure.timeout".into())),
            "{e}"
        );
        assert!(
            e.to_string().contains("cluster.monitoring.probe-timeout"),
            "{e}"
        );
        // Set the other side, and it is the one at fault.
        let sources = Sources {
            flags: flags(&[("cluster.monitoring.probe-timeout", "20s")]),
            ..Default::default()
        };
        let e = load(&sources).unwrap_err();
        assert!(
            matches!(&e, Error::Value { key, .. } if key == "cluster.monitoring.probe-timeout"),
            "{e}"
        );
    }

    #[test]
    fn sizes_and_limits_have_an_upper_bound() {
        let sources = Sources {
            env: env(&[("VIGIL_HTTP_MAX_BODY", "1000000000000")]),
            ..Default::default()
        };
        let e = load(&sources).unwrap_err();
        assert!(
            matches!(&e, Error::Value { key, reason, .. }
                if key == "http.max-body" && reason.contains("at most")),
            "{e}"
        );
        for (key, huge) in [
            // each accepted before maxima were declared
            ("http.request-timeout", "100h"),
            ("services.producer.queue-capacity", "1000000000000"),
            ("security.source-burst", "4000000000"),
            ("node.leave-linger", "2h"),
            ("services.cache.ttl", "300h"),
        ] {
            let sources = Sources {
                flags: flags(&[(key, huge)]),
                ..Default::default()
            };
            assert!(load(&sources).is_err(), "{key} = {huge} was accepted");
        }
    }

    #[test]
    fn every_size_limit_and_duration_key_declares_a_maximum_its_defaults_respect() {
        for preset in ["lan", "wan"] {
            let mut s = Settings::default();
            s.set("cluster.preset", preset).unwrap();
            for key in keys::KEYS {
                if matches!(key.kind, keys::Kind::Number | keys::Kind::Duration) {
                    assert!(key.max.is_some(), "{} has no maximum", key.name);
                    let v = s.get(key.name).unwrap();
                    let mut again = s.clone();
                    again
                        .set(key.name, &v)
                        .unwrap_or_else(|e| panic!("{preset}: default {} = {v}: {e}", key.name));
                }
            }
        }
    }

    #[test]
    fn a_short_admin_token_is_refused_unless_insecure() {
        let sources = Sources {
            env: env(&[("VIGIL_HTTP_ADMIN_TOKEN", "hunter2")]),
            ..Default::default()
        };
        let e = load(&sources).unwrap_err();
        assert!(
            matches!(&e, Error::Value { key, value, .. }
                if key == "http.admin-token" && value == "(hidden)"),
            "{e}"
        );
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let sources = Sources {
            env: env(&[
                ("VIGIL_HTTP_ADMIN_TOKEN", "hunter2"),
                ("VIGIL_SECURITY_INSECURE", "true"),
            ]),
            ..Default::default()
        };
        assert!(load(&sources).is_ok());
    }

    #[test]
    fn the_rendered_defaults_parse_back_to_the_defaults() {
        let text = render_defaults();
        let mut s = Settings::default();
        for (k, v) in parse_yaml(&text).unwrap() {
            s.set(&k, &v).unwrap();
        }
        assert_eq!(s.protocol, membership::Config::default());
        for key in keys::KEYS {
            assert!(text.contains(&keys::env_var(key.name)), "{}", key.name);
            assert_eq!(
                s.get(key.name),
                Settings::default().get(key.name),
                "{}",
                key.name
            );
        }
    }
}
