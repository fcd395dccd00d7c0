//! The Grafana dashboards in `deploy/grafana/dashboards` are checked offline (no Grafana
//! server can run here): each is JSON with the fields Grafana's dashboard schema needs, every
//! panel queries the provisioned Prometheus datasource by its uid, and every metric that a
//! dashboard or an alert rule queries is exported by a running `vigil node`, with a series
//! for every `label="value"` matcher it uses (the gateway's routing panels included: the
//! cluster has a gateway that routed a write and a read).

mod harness;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::Cluster;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every dashboard file, parsed.
fn dashboards() -> Vec<(String, Value)> {
    let dir = deploy_dir().join("grafana/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            json,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// The uid of the provisioned Prometheus datasource.
fn provisioned_datasource_uid() -> String {
    let ds = yaml(&deploy_dir().join("grafana/provisioning/datasources/prometheus.yml"));
    let list = ds["datasources"].as_array().expect("datasources: a list");
    let prom: Vec<&Value> = list.iter().filter(|d| d["type"] == "prometheus").collect();
    assert_eq!(prom.len(), 1, "exactly one Prometheus datasource");
    let uid = prom[0]["uid"]
        .as_str()
        .expect("the datasource has a fixed uid");
    assert!(!uid.is_empty());
    uid.to_string()
}

/// Panels, with the panels nested in collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// Every PromQL expression of the dashboards and the alert rules, with where it comes from.
fn every_expression() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for p in all_panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("{file}: {}", p["title"]), e.to_string()));
                }
            }
        }
    }
    let alerts = yaml(&deploy_dir().join("prometheus/alerts.yml"));
    for g in alerts["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("?");
            out.push((
                format!("alerts.yml: {name}"),
                r["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The metric names a PromQL expression reads: identifiers left once strings, label
/// matchers, ranges and grouping clauses are removed, that are not function calls or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let strip = |s: &str, re: &str| {
        regex::Regex::new(re)
            .unwrap()
            .replace_all(s, " ")
            .into_owned()
    };
    let mut e = strip(expr, r#""(?:[^"\\]|\\.)*""#);
    e = strip(&e, r"\{[^}]*\}");
    e = strip(&e, r"\[[^\]]*\]");
    e = strip(
        &e,
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
    );
    let keywords = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ];
    let ident = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?").unwrap();
    ident
        .captures_iter(&e)
        .filter(|c| c.get(1).is_none())
        .map(|c| c[0].to_string())
        .filter(|name| !keywords.contains(&name.as_str()))
        // Numbers in exponent form (1e3) and durations (5m) never start with a letter; `inf`/`nan` might.
        .filter(|name| !matches!(name.to_ascii_lowercase().as_str(), "inf" | "nan"))
        .collect()
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le) (rate(cluster_failure_detection_seconds_bucket{job="vigil"}[$__rate_interval]))) / on (instance) group_left up > bool 1"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["cluster_failure_detection_seconds_bucket", "up"]
    );
}

#[test]
fn dashboards_have_the_fields_grafana_needs_and_use_the_provisioned_datasource() {
    let uid = provisioned_datasource_uid();
    let mut uids = HashSet::new();
    for (file, d) in dashboards() {
        let duid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !duid.is_empty() && duid.len() <= 40,
            "{file}: uid must be 1-40 characters"
        );
        assert!(uids.insert(duid.to_string()), "{file}: uid {duid} repeated");
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: schemaVersion (a number, 36 or later)"
        );
        assert!(
            d["id"].is_null(),
            "{file}: provisioned dashboards carry no id"
        );
        let panels = all_panels(&d);
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = HashSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or_default();
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: {title}: id"));
            assert!(ids.insert(id), "{file}: panel id {id} repeated");
            assert!(
                p["type"].as_str().is_some_and(|t| !t.is_empty()),
                "{file}: {title}: type"
            );
            assert!(!title.is_empty(), "{file}: panel {id} has no title");
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64(), g["w"].as_u64());
            assert!(
                g["h"].as_u64().is_some() && g["y"].as_u64().is_some(),
                "{file}: {title}: gridPos"
            );
            assert!(
                x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24),
                "{file}: {title}: gridPos x + w must fit 24 columns"
            );
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], uid,
                "{file}: {title}: panel datasource"
            );
            assert_eq!(p["datasource"]["type"], "prometheus", "{file}: {title}");
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: {title}: targets"));
            assert!(!targets.is_empty(), "{file}: {title}: no targets");
            let mut refs = HashSet::new();
            for t in targets {
                assert!(
                    t["refId"]
                        .as_str()
                        .is_some_and(|r| refs.insert(r.to_string())),
                    "{file}: {title}: refId missing or repeated"
                );
                assert_eq!(
                    t["datasource"]["uid"], uid,
                    "{file}: {title}: target datasource"
                );
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{file}: {title}: empty expr"
                );
            }
        }
    }
}

#[test]
fn provisioning_matches_the_compose_mounts() {
    let provider = yaml(&deploy_dir().join("grafana/provisioning/dashboards/vigil.yml"));
    let providers = provider["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["type"], "file");
    let path = providers[0]["options"]["path"].as_str().unwrap();

    let compose = yaml(&deploy_dir().join("docker-compose.yml"));
    let grafana_volumes: Vec<&str> = compose["services"]["grafana"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        grafana_volumes.contains(&format!("./grafana/dashboards:{path}:ro").as_str()),
        "grafana must mount ./grafana/dashboards at the provider path {path}: {grafana_volumes:?}"
    );
    assert!(grafana_volumes.contains(&"./grafana/provisioning:/etc/grafana/provisioning:ro"));

    let ds = yaml(&deploy_dir().join("grafana/provisioning/datasources/prometheus.yml"));
    let url = ds["datasources"][0]["url"].as_str().unwrap();
    assert_eq!(url, "http://prometheus:9090");
    assert!(compose["services"]["prometheus"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_a_dashboard_or_alert_queries_is_exported_by_a_node() {
    let _guard = harness::exclusive().await;
    // A gateway, a producer and a consumer beside the plain members: the gateway's routing
    // series exist only once it has routed something.
    let mut cluster = Cluster::new("dashboards", "services:\n  producer:\n    rate: 0\n");
    for id in ["a", "b", "c"] {
        cluster.start(id);
    }
    let sqlite = cluster.dir.join("consumer.sqlite").display().to_string();
    cluster.start_role("gateway", "gateway", &[]);
    cluster.start_role("producer", "producer", &[]);
    cluster.start_role(
        "consumer",
        "consumer",
        &[("VIGIL_SERVICES_CONSUMER_SQLITE_PATH".to_string(), sqlite)],
    );
    let members = ["a", "b", "c", "gateway", "producer", "consumer"];
    // cluster_member_phi exists only for the members a node watches: wait until the gateway
    // watches one (a CI run scraped while no node did yet).
    cluster
        .wait_for(
            "6 HEALTHY, some watched",
            Duration::from_secs(30),
            || async {
                cluster.sees_healthy("gateway", 6).await
                    && cluster.status("gateway").await.is_some_and(|s| {
                        s["membership"]
                            .as_object()
                            .is_some_and(|m| m.values().any(|v| v["monitored"] == true))
                    })
            },
        )
        .await;
    let logs = cluster.node("gateway").url("/api/logs");
    cluster
        .wait_for(
            "a write and a read through the gateway",
            Duration::from_secs(20),
            || async {
                let body =
                    serde_json::json!([{"service": "dash", "level": "INFO", "message": "m"}]);
                let client = cluster.client();
                let wrote = client.post(&logs).json(&body).send().await;
                let read = client.get(&logs).send().await;
                wrote.is_ok_and(|r| r.status() == 202) && read.is_ok_and(|r| r.status() == 200)
            },
        )
        .await;
    // Every series of every member, as `name{labels}` lines.
    let mut series = Vec::new();
    for id in members {
        let text = cluster
            .client()
            .get(cluster.node(id).url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        series.extend(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string()),
        );
    }
    let exported: HashSet<String> = series
        .iter()
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    // Series Prometheus itself adds to every scrape.
    let synthetic = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];
    let mut missing = Vec::new();
    let mut queried = BTreeSet::new();
    for (origin, expr) in every_expression() {
        for name in metric_names(&expr) {
            if !exported.contains(&name) && !synthetic.contains(&name.as_str()) {
                missing.push(format!("{origin}: {name}"));
            }
            queried.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "queried but not exported by vigil:\n{}\nexported: {exported:?}",
        missing.join("\n")
    );
    // `name{label="value", ...}`: some series of `name` has each such pair (labels that
    // Prometheus adds, job and instance, apart).
    let selector = regex::Regex::new(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}").unwrap();
    let equality = regex::Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)""#).unwrap();
    let mut unmatched = Vec::new();
    for (origin, expr) in every_expression() {
        for sel in selector.captures_iter(&expr) {
            let name = &sel[1];
            for m in equality.captures_iter(&sel[2]) {
                if matches!(&m[1], "job" | "instance") {
                    continue;
                }
                let pair = format!("{}=\"{}\"", &m[1], &m[2]);
                let found = series.iter().any(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('{') && rest.contains(&pair))
                });
                if !found {
                    unmatched.push(format!("{origin}: {name}{{{pair}}}"));
                }
            }
        }
    }
    assert!(
        unmatched.is_empty(),
        "matchers no exported series has:\n{}",
        unmatched.join("\n")
    );
    for seed in [
        "cluster_heartbeats_sent_total",
        "cluster_heartbeats_received_total",
        "cluster_failures_detected_total",
        "cluster_healthy_nodes",
    ] {
        assert!(
            queried.contains(seed),
            "no dashboard shows the seed's {seed}"
        );
    }
    println!(
        "MEASURED: dashboards and alerts query {} metric names, all exported",
        queried.len()
    );
}
