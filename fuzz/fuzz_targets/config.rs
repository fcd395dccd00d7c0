//! Fuzz target: the configuration parser of the `vigil` binary (crates/vigil/src/config),
//! reached through the `vigil` library.
//!
//! The input, if UTF-8, is parsed as a `vigil.yml` (YAML flattened to dotted keys, unknown
//! keys rejected); what parses is then layered and validated as `vigil config check` does.
//! The same text is also tried as one `KEY=VALUE` flag, as an environment variable's value
//! and as a duration. Nothing may panic; every rejection must be an error naming a key or
//! the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::config::{self, duration, keys, Sources};

fn flag(key: &str, value: &str) -> (String, String, String) {
    (
        key.to_string(),
        value.to_string(),
        format!("--set {key}={value}"),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pairs) = config::parse_yaml(text) {
        let sources = Sources {
            flags: pairs.iter().map(|(k, v)| flag(k, v)).collect(),
            ..Default::default()
        };
        if let Ok(settings) = config::load(&sources) {
            // whatever loads renders back for every key
            for key in keys::KEYS {
                let _ = settings.get(key.name);
            }
        }
    }
    if let Some((key, value)) = text.split_once('=') {
        let _ = config::load(&Sources {
            flags: vec![flag(key, value)],
            ..Default::default()
        });
        let _ = config::load(&Sources {
            env: vec![(keys::env_var(key), value.to_string())],
            ..Default::default()
        });
    }
    if let Ok(d) = duration::parse(text) {
        let _ = duration::render(d);
    }
});
