//! `/metrics` carries the seed's names and passes `promtool check metrics`.

mod harness;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{metric_sample as sample, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_the_seeds_names_and_pass_promtool() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("metrics", "");
    for id in ["a", "b", "c"] {
        cluster.start(id);
    }
    cluster
        .wait_for("3 HEALTHY", Duration::from_secs(20), || async {
            cluster.sees_healthy("a", 3).await
        })
        .await;
    let url = cluster.node("a").url("/metrics");
    let text = cluster
        .client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "cluster_heartbeats_sent_total",
        "cluster_heartbeats_received_total",
        "cluster_failures_detected_total 0",
        "cluster_healthy_nodes 3",
        "cluster_has_quorum 1",
        "cluster_nodes{status=\"HEALTHY\"} 3",
        // only for the members `a` watches (see the test below): the family at least
        "# TYPE cluster_member_phi gauge",
        "cluster_member_health_score{member=\"c\"}",
        "cluster_gossip_sent_bytes_total",
        "cluster_gossip_messages_received_total",
        "cluster_failure_detection_seconds_bucket",
        "cluster_gossip_propagation_seconds_bucket",
    ] {
        assert!(text.contains(name), "missing {name}:\n{text}");
    }

    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut promtool = match promtool {
        Ok(p) => p,
        Err(_) if std::env::var_os("VIGIL_SKIP_PROMTOOL").is_some() => {
            eprintln!("promtool not found; skipped (VIGIL_SKIP_PROMTOOL is set)");
            return;
        }
        Err(e) => panic!(
            "promtool not found ({e}): apt-get install prometheus, or set VIGIL_SKIP_PROMTOOL=1"
        ),
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks `check` until it returns Ok or `timeout` passes; the last error otherwise.
async fn until_ok<F, Fut>(timeout: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let result = check().await;
        if result.is_ok() || std::time::Instant::now() >= deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The members `cluster_member_phi` has a sample for, in a Prometheus text body.
fn phi_members(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("cluster_member_phi{member=\""))
        .filter_map(|l| l.split_once('"'))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Issue 17: phi is this node's detector's, so it is exported only for the members this node
/// watches (`monitored` in its `/cluster/status`): not for itself, not for a FAILED member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phi_is_exported_only_for_members_this_node_watches() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("metrics-phi", "");
    for id in ["a", "b", "c", "d"] {
        cluster.start(id);
    }
    cluster
        .wait_for("4 HEALTHY", Duration::from_secs(20), || async {
            cluster.all_see_healthy(&["a", "b", "c", "d"], 4).await
        })
        .await;
    let metrics = |id: &str| {
        let url = cluster.node(id).url("/metrics");
        let client = cluster.client().clone();
        async move {
            let r = client.get(&url).send().await.ok()?;
            r.text().await.ok()
        }
    };
    let watched = |status: &serde_json::Value| -> std::collections::BTreeSet<String> {
        status["membership"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, m)| m["monitored"] == true)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Each member watches the members the rings give it (possibly none), and every member is
    // watched by someone. The watch sets settle a moment after everyone is HEALTHY, hence
    // the deadline; metrics and status are read one after the other.
    let agree = until_ok(Duration::from_secs(10), || async {
        let mut everyone_watched = std::collections::BTreeSet::new();
        for id in ["a", "b", "c", "d"] {
            let (Some(text), Some(status)) = (metrics(id).await, cluster.status(id).await) else {
                return Err(format!("{id} did not answer"));
            };
            let exported = phi_members(&text);
            if exported.contains(id) {
                return Err(format!("{id} exports phi for itself"));
            }
            if exported != watched(&status) {
                return Err(format!(
                    "{id} exports phi for {exported:?} but watches {:?}",
                    watched(&status)
                ));
            }
            everyone_watched.extend(exported);
        }
        if everyone_watched.len() != 4 {
            return Err(format!("watched by someone: only {everyone_watched:?}"));
        }
        Ok(())
    })
    .await;
    if let Err(e) = agree {
        panic!("phi exported vs watched, after 10 s: {e}");
    }

    cluster.node("d").signal(nix::sys::signal::Signal::SIGKILL);
    cluster
        .wait_for("a sees d FAILED", Duration::from_secs(30), || async {
            cluster.status_of("a", "d").await.as_deref() == Some("FAILED")
        })
        .await;
    cluster
        .wait_for(
            "no phi for the FAILED member d",
            Duration::from_secs(10),
            || async {
                let mut ok = true;
                for id in ["a", "b", "c"] {
                    ok &= metrics(id)
                        .await
                        .is_some_and(|t| !phi_members(&t).contains("d"));
                }
                ok
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actuator_routes_build_http_process_and_pipeline_metrics() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("actuator", "");
    // a producer alone: its own generated events (services.producer.rate) fill its queue
    cluster.start_role("p", "producer", &[]);
    cluster
        .wait_for("1 HEALTHY", Duration::from_secs(20), || async {
            cluster.sees_healthy("p", 1).await
        })
        .await;
    let node = cluster.node("p");
    let get = |path: &str| {
        let url = node.url(path);
        let client = cluster.client().clone();
        async move {
            let r = client.get(&url).send().await.unwrap();
            let code = r.status().as_u16();
            (code, r.text().await.unwrap())
        }
    };
    let (code, body) = get("/actuator").await;
    assert_eq!(code, 200);
    let links: serde_json::Value = serde_json::from_str(&body).unwrap();
    for name in ["self", "health", "info", "prometheus"] {
        assert!(
            links["_links"][name]["href"]
                .as_str()
                .is_some_and(|h| h.starts_with("http://")),
            "{body}"
        );
    }
    for path in ["/actuator/health/liveness", "/actuator/health/readiness"] {
        let (code, body) = get(path).await;
        assert_eq!(
            (code, body.as_str()),
            (200, "{\"status\":\"UP\"}"),
            "{path}"
        );
    }
    let (code, body) = get("/actuator/info").await;
    assert_eq!(code, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        info["build"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{info}"
    );
    assert!(
        info["build"]["profile"].is_string() && info["build"]["features"].is_array(),
        "{info}"
    );
    let commit = info["git"]["commit"]["id"].as_str().unwrap();
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{info}"
    );
    assert_eq!(info["member"]["id"], "p");
    let _ = get("/cluster/members/nobody").await;

    // the pipeline's counters follow the producer's, and the process is sampled
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = get("/actuator/prometheus").await.1;
        if sample(&text, "vigil_pipeline_events_accepted_total").is_some_and(|v| v >= 1.0) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the producer's queue never showed in the metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        sample(&text, "vigil_pipeline_queue_capacity").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        text.contains("vigil_pipeline_refused_total{status=\"429\",reason=\"queue_full\"}"),
        "{text}"
    );
    assert!(
        text.contains("vigil_pipeline_events_stored_total 0"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "vigil_build_info{{version=\"{}\",commit=\"{commit}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(
        text.contains("vigil_http_requests_total{method=\"GET\",route=\"/cluster/members/{id}\",status=\"404\"} 1"),
        "routes by template, not by path:\n{text}"
    );
    assert!(text.contains("vigil_http_request_duration_seconds_bucket{le=\"0.1\",method=\"GET\",route=\"/actuator/info\"}"), "{text}");
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            sample(&text, name).is_some_and(|v| v > 0.0),
            "{name}:\n{text}"
        );
    }
    assert!(
        sample(&text, "process_cpu_seconds_total").is_some(),
        "{text}"
    );
}
