//! `/metrics` carries the seed's names and passes `promtool check metrics`.

mod harness;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::Cluster;

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
        "cluster_member_phi{member=\"b\"}",
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

/// One sample's value in a Prometheus text body, if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
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
