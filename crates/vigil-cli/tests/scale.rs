//! A larger cluster of real processes on one machine: convergence and kill -9 detection.
//! Not run by default (it loads the machine):
//! `cargo test -p vigil-cli --test scale -- --ignored --nocapture` (size: VIGIL_SCALE_N, default 50).

mod harness;

use std::time::{Duration, Instant};

use harness::Cluster;
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts 50 processes; run explicitly"]
async fn a_large_cluster_converges_and_detects_a_kill() {
    let _guard = harness::exclusive().await;
    let n: usize = std::env::var("VIGIL_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut cluster = Cluster::new("scale", "");
    let ids: Vec<String> = (1..=n).map(|i| format!("s{i:03}")).collect();
    let started = Instant::now();
    for id in &ids {
        cluster.start(id);
    }
    let spawned = started.elapsed();
    let converged = cluster
        .wait_for(
            "every node sees all HEALTHY with quorum",
            Duration::from_secs(120),
            || async {
                for id in &ids {
                    if !cluster.sees_healthy(id, n as u64).await {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    println!(
        "MEASURED: {n}-process convergence: {} ms after the last spawn ({} ms to spawn all)",
        converged.as_millis(),
        spawned.as_millis()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = ids[n / 2].clone();
    let observers: Vec<&str> = ids
        .iter()
        .filter(|i| **i != victim)
        .map(String::as_str)
        .collect();
    cluster.node(&victim).signal(Signal::SIGKILL);
    let detected = cluster
        .wait_for(
            "victim FAILED on every other node",
            Duration::from_secs(60),
            || async {
                for o in &observers {
                    let s = cluster.status_of(o, &victim).await;
                    if !matches!(s.as_deref(), Some("FAILED") | Some("ABSENT")) {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    println!(
        "MEASURED: {n}-process kill -9 detection (FAILED on all {} others): {} ms",
        n - 1,
        detected.as_millis()
    );
}
