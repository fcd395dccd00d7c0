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

/// The first node, started without seeds, is killed, evicted, and restarted with the same
/// command line. Nobody talks to an evicted member, so it founded a second cluster of one:
/// a second leader beside the one the other two elected. Now it remembers its peers
/// (`node.peers-file`) and rejoins them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_founder_restarted_without_seeds_rejoins_its_cluster() {
    let _guard = harness::exclusive().await;
    const THREE: [&str; 3] = ["f1", "f2", "f3"];
    let mut cluster = Cluster::new("refound", "cluster:\n  eviction:\n    grace-period: 2s\n");
    for id in THREE {
        cluster.start(id);
    }
    cluster
        .wait_for(
            "3 voters, 3 HEALTHY everywhere",
            Duration::from_secs(30),
            || async {
                let mut all = cluster.all_see_healthy(&THREE, 3).await;
                for id in THREE {
                    all &= cluster.status(id).await.is_some_and(|s| s["voters"] == 3);
                }
                all
            },
        )
        .await;
    let peers = cluster.dir.join(".vigil/data/f1.peers");
    cluster
        .wait_for(
            "f1 remembers its two peers",
            Duration::from_secs(10),
            || async { std::fs::read_to_string(&peers).is_ok_and(|t| t.lines().count() == 2) },
        )
        .await;
    let (gossip, http) = (cluster.node("f1").gossip, cluster.node("f1").http);
    cluster.node("f1").signal(Signal::SIGKILL);
    assert!(cluster
        .node_mut("f1")
        .wait_exit(Duration::from_secs(5))
        .is_some());
    cluster
        .wait_for(
            "f2 and f3 evict f1 and lead on",
            Duration::from_secs(30),
            || async {
                let mut all = true;
                for id in ["f2", "f3"] {
                    all &= cluster.status(id).await.is_some_and(|s| {
                        s["hasQuorum"] == true
                            && s["voters"] == 2
                            && s["membership"].get("f1").is_none()
                    });
                }
                all
            },
        )
        .await;
    // the first node is everyone's seed and gets none itself: restarted as it was started
    cluster.start_at("f1", gossip, http);

    // Until all three see each other again, f1 must never lead a cluster of its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = cluster.status("f1").await {
            assert!(
                !(s["hasQuorum"] == true && s["voters"] == 1),
                "the restarted founder founded a cluster of one: {s}\n{}",
                cluster.logs_tail(30)
            );
        }
        if cluster.all_see_healthy(&THREE, 3).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no quorum with all three within 30 s of the restart\n{}",
            cluster.logs_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
