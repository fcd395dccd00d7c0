//! `kill -9` one of five: the others mark it FAILED, evict it after the grace period, and a
//! restart with the same id rejoins HEALTHY with a new generation.

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::Cluster;
use nix::sys::signal::Signal;

const IDS: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];
const OBSERVERS: [&str; 4] = ["n1", "n2", "n4", "n5"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_failed_evicted_and_rejoins_with_a_new_generation() {
    let _guard = harness::exclusive().await;
    // Default detection settings (what we report); a short grace so the test sees eviction.
    let mut cluster = Cluster::new("kill9", "cluster:\n  eviction:\n    grace-period: 3s\n");
    for id in IDS {
        cluster.start(id);
    }
    cluster
        .wait_for("5 HEALTHY everywhere", Duration::from_secs(20), || {
            cluster.all_see_healthy(&IDS, 5)
        })
        .await;
    // Let the detectors collect some heartbeat intervals first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old_generation = cluster.status("n1").await.unwrap()["membership"]["n3"]["generation"]
        .as_u64()
        .unwrap();
    let (gossip, http) = (cluster.node("n3").gossip, cluster.node("n3").http);

    let killed = Instant::now();
    cluster.node("n3").signal(Signal::SIGKILL);
    assert!(cluster
        .node_mut("n3")
        .wait_exit(Duration::from_secs(5))
        .is_some());

    let mut detected: BTreeMap<&str, Duration> = BTreeMap::new();
    let deadline = killed + Duration::from_secs(15); // the seed promises 15 s
    while detected.len() < OBSERVERS.len() {
        assert!(
            Instant::now() < deadline,
            "not FAILED everywhere within 15 s: {detected:?}\n{}",
            cluster.logs_tail(25)
        );
        for o in OBSERVERS {
            if !detected.contains_key(o)
                && cluster.status_of(o, "n3").await.as_deref() == Some("FAILED")
            {
                detected.insert(o, killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worst = detected.values().max().unwrap();
    println!(
        "MEASURED: kill -9 detection (FAILED on each of 4 observers): {detected:?}; slowest {} ms",
        worst.as_millis()
    );

    let evicted = cluster
        .wait_for("n3 evicted everywhere", Duration::from_secs(20), || async {
            cluster.all_see(&OBSERVERS, "n3", "ABSENT").await
        })
        .await;
    println!(
        "MEASURED: eviction {} ms after the kill (grace period 3 s)",
        (killed.elapsed()).as_millis()
    );
    let _ = evicted;
    for o in OBSERVERS {
        let m = cluster.get_json(&cluster.node(o).url("/metrics")).await;
        assert!(m.is_none(), "metrics are text, not JSON");
        let text = cluster
            .client()
            .get(cluster.node(o).url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains("cluster_failures_detected_total 0\n"),
            "{o} counted no failure:\n{text}"
        );
    }

    let restarted = Instant::now();
    cluster.start_at("n3", gossip, http);
    cluster
        .wait_for(
            "restarted n3 HEALTHY everywhere with a new generation",
            Duration::from_secs(20),
            || async {
                for o in IDS {
                    let Some(s) = cluster.status(o).await else {
                        return false;
                    };
                    let m = &s["membership"]["n3"];
                    if m["status"] != "HEALTHY"
                        || m["generation"].as_u64().unwrap_or(0) <= old_generation
                    {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    println!(
        "MEASURED: restart to HEALTHY everywhere: {} ms",
        restarted.elapsed().as_millis()
    );
}
