//! The comparison table and the JSON with a Vigil/peer ratio for every metric.

use serde_json::{json, Map, Value};

use crate::scenario::Metrics;

/// One row of the table: label, JSON key and how to read a protocol's value.
struct Row {
    label: &'static str,
    key: &'static str,
    get: fn(&Metrics) -> Option<f64>,
}

const ROWS: &[Row] = &[
    Row {
        label: "cold-join convergence (s)",
        key: "convergence_s",
        get: |m| m.convergence_s,
    },
    Row {
        label: "one change reaches all, p99 (s)",
        key: "spread_p99_s",
        get: |m| m.spread_p99_s,
    },
    Row {
        label: "crash -> all mark failed, p50 (s)",
        key: "detect_p50_s",
        get: |m| m.detect_p50_s,
    },
    Row {
        label: "crash -> all mark failed, p99 (s)",
        key: "detect_p99_s",
        get: |m| m.detect_p99_s,
    },
    Row {
        label: "false positives (100 ms jitter, 5 % loss)",
        key: "false_positives",
        get: |m| m.false_positives.map(|x| x as f64),
    },
    Row {
        label: "bytes/node/s, mean (steady)",
        key: "bytes_per_node_s_mean",
        get: |m| m.bytes_per_node_s_mean,
    },
    Row {
        label: "bytes/node/s, max (steady)",
        key: "bytes_per_node_s_max",
        get: |m| m.bytes_per_node_s_max,
    },
    Row {
        label: "bytes/node/s, mean (noise run, after join)",
        key: "noise_bytes_per_node_s_mean",
        get: |m| m.noise_bytes_per_node_s_mean,
    },
    Row {
        label: "largest message (B)",
        key: "max_message_bytes",
        get: |m| Some(m.max_message_bytes as f64),
    },
];

fn show(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// Vigil's value over the peer's; `None` when either is missing or the peer's is 0 (and
/// Vigil's is not).
fn ratio(vigil: Option<f64>, peer: Option<f64>) -> Option<f64> {
    let (v, p) = (vigil?, peer?);
    if p == 0.0 {
        return (v == 0.0).then_some(1.0);
    }
    Some((v / p * 1000.0).round() / 1000.0)
}

/// A Markdown table: one column per protocol, then, when the first entry is Vigil, one
/// Vigil/peer ratio column per peer.
pub fn table(all: &[Metrics]) -> String {
    let peers = if all.first().is_some_and(|m| m.protocol == "vigil") {
        &all[1..]
    } else {
        &all[..0]
    };
    let mut s = String::from("| metric |");
    for m in all {
        s.push_str(&format!(" {} |", m.protocol));
    }
    for m in peers {
        s.push_str(&format!(" vigil/{} |", m.protocol));
    }
    s.push_str("\n|---|");
    for _ in 0..(all.len() + peers.len()) {
        s.push_str("---|");
    }
    s.push('\n');
    for row in ROWS {
        s.push_str(&format!("| {} |", row.label));
        for m in all {
            s.push_str(&format!(" {} |", show((row.get)(m))));
        }
        for m in all.iter().skip(1) {
            s.push_str(&format!(
                " {} |",
                show(ratio((row.get)(&all[0]), (row.get)(m)))
            ));
        }
        s.push('\n');
    }
    s
}

/// The JSON document: every protocol's metrics and, per peer, the ratio Vigil/peer of
/// every metric (below 1 means Vigil is lower: faster, fewer false positives, fewer bytes).
pub fn json(all: &[Metrics], command: &str) -> Value {
    let mut ratios = Map::new();
    if let Some(vigil) = all.first().filter(|m| m.protocol == "vigil") {
        for m in all.iter().skip(1) {
            let mut r = Map::new();
            for row in ROWS {
                r.insert(row.key.into(), json!(ratio((row.get)(vigil), (row.get)(m))));
            }
            ratios.insert(format!("vigil/{}", m.protocol), Value::Object(r));
        }
    }
    json!({
        "command": command,
        "nodes": all.first().map(|m| m.nodes),
        "seed": all.first().map(|m| m.seed),
        "protocols": all,
        "ratios": ratios,
    })
}
