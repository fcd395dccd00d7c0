//! Graceful leave (by the admin endpoint, or SIGTERM): LEFT everywhere, no failure counted,
//! exit code 0.

mod harness;

use std::time::Duration;

use harness::Cluster;
use nix::sys::signal::Signal;

async fn no_failures_counted(cluster: &Cluster, ids: &[&str]) {
    for id in ids {
        let text = cluster
            .client()
            .get(cluster.node(id).url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("cluster_failures_detected_total 0\n"),
            "{id} counted a failure:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_seen_everywhere_and_counts_no_failure() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("leave", "");
    let ids = ["l1", "l2", "l3", "l4", "l5"];
    for id in ids {
        cluster.start(id);
    }
    cluster
        .wait_for("5 HEALTHY everywhere", Duration::from_secs(20), || {
            cluster.all_see_healthy(&ids, 5)
        })
        .await;

    // By the admin endpoint: refused without the token.
    let url = cluster.node("l2").url("/cluster/leave");
    assert_eq!(
        cluster.client().post(&url).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        cluster
            .client()
            .post(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let accepted = cluster
        .client()
        .post(&url)
        .bearer_auth(harness::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let rest = ["l1", "l3", "l4", "l5"];
    let took = cluster
        .wait_for("l2 LEFT everywhere", Duration::from_secs(5), || async {
            cluster.all_see(&rest, "l2", "LEFT").await
        })
        .await;
    println!(
        "MEASURED: leave (HTTP) seen LEFT on 4 nodes in {} ms",
        took.as_millis()
    );
    let status = cluster
        .node_mut("l2")
        .wait_exit(Duration::from_secs(5))
        .expect("l2 exits after leaving");
    assert_eq!(status.code(), Some(0));

    // By SIGTERM.
    cluster.node("l5").signal(Signal::SIGTERM);
    let rest = ["l1", "l3", "l4"];
    let took = cluster
        .wait_for("l5 LEFT everywhere", Duration::from_secs(5), || async {
            cluster.all_see(&rest, "l5", "LEFT").await
        })
        .await;
    println!(
        "MEASURED: leave (SIGTERM) seen LEFT on 3 nodes in {} ms",
        took.as_millis()
    );
    let status = cluster
        .node_mut("l5")
        .wait_exit(Duration::from_secs(5))
        .expect("l5 exits after leaving");
    assert_eq!(status.code(), Some(0));

    // Nobody counted a failure, and the rest still hold quorum.
    tokio::time::sleep(Duration::from_secs(2)).await;
    no_failures_counted(&cluster, &rest).await;
    for id in rest {
        assert_eq!(cluster.status(id).await.unwrap()["hasQuorum"], true, "{id}");
    }
}
