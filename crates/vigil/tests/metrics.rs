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
