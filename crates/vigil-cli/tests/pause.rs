//! SIGSTOP: a pause under the acceptable pause is tolerated; a long one gets the node
//! FAILED, and after SIGCONT it comes back.

mod harness;

use std::time::{Duration, Instant};

use harness::Cluster;
use nix::sys::signal::Signal;

const IDS: [&str; 4] = ["p1", "p2", "p3", "p4"];
const OBSERVERS: [&str; 3] = ["p1", "p3", "p4"];
const CONFIG: &str =
    "cluster:\n  phi:\n    acceptable-heartbeat-pause: 2s\n  eviction:\n    grace-period: 60s\n";

async fn started(name: &str) -> Cluster {
    let mut cluster = Cluster::new(name, CONFIG);
    for id in IDS {
        cluster.start(id);
    }
    cluster
        .wait_for("4 HEALTHY everywhere", Duration::from_secs(20), || {
            cluster.all_see_healthy(&IDS, 4)
        })
        .await;
    // Let the detectors learn the heartbeat rhythm.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_shorter_than_the_acceptable_pause_is_never_failed() {
    let _guard = harness::exclusive().await;
    let cluster = started("short-pause").await;
    cluster.node("p2").signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    // Watch through the pause (1 s, under the 2 s acceptable pause) and 3 s after it.
    let mut resumed = false;
    while stopped.elapsed() < Duration::from_secs(4) {
        if !resumed && stopped.elapsed() >= Duration::from_secs(1) {
            cluster.node("p2").signal(Signal::SIGCONT);
            resumed = true;
        }
        for o in OBSERVERS {
            let s = cluster.status_of(o, "p2").await;
            assert_ne!(
                s.as_deref(),
                Some("FAILED"),
                "{o} failed p2 after a 1 s pause\n{}",
                cluster.logs_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster
        .wait_for(
            "p2 HEALTHY everywhere after the pause",
            Duration::from_secs(10),
            || async { cluster.all_see(&OBSERVERS, "p2", "HEALTHY").await },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pause_is_failed_then_the_node_comes_back() {
    let _guard = harness::exclusive().await;
    let cluster = started("long-pause").await;
    let old = cluster.status("p1").await.unwrap()["membership"]["p2"].clone();
    cluster.node("p2").signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let detected = cluster
        .wait_for(
            "p2 FAILED everywhere while stopped",
            Duration::from_secs(20),
            || async { cluster.all_see(&OBSERVERS, "p2", "FAILED").await },
        )
        .await;
    println!(
        "MEASURED: SIGSTOP detection (FAILED on all 3 observers): {} ms",
        detected.as_millis()
    );
    cluster.node("p2").signal(Signal::SIGCONT);
    let resumed = Instant::now();
    cluster
        .wait_for(
            "p2 HEALTHY again everywhere, newer than before",
            Duration::from_secs(20),
            || async {
                for o in OBSERVERS {
                    let Some(s) = cluster.status(o).await else {
                        return false;
                    };
                    let m = &s["membership"]["p2"];
                    let newer = m["generation"].as_u64() > old["generation"].as_u64()
                        || m["incarnation"].as_u64() > old["incarnation"].as_u64();
                    if m["status"] != "HEALTHY" || !newer {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    println!(
        "MEASURED: after SIGCONT, p2 HEALTHY again everywhere in {} ms (stopped {} ms)",
        resumed.elapsed().as_millis(),
        (resumed - stopped).as_millis()
    );
}
