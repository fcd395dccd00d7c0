//! Issue 16 on real processes: the gateway's reads go through a balancer as its writes do.
//! A consumer frozen with SIGSTOP is ejected from the gateway's read routing while every read
//! keeps answering from the other consumer.
//!
//! Four `vigil node` processes (coordinator, gateway, consumer-a, consumer-b). Failure
//! detection is set slow (a 20 s acceptable heartbeat pause, and a 20 s probe timeout: an
//! observer that has not yet heard from a subject probes it after one heartbeat interval of
//! silence and accuses it when the probe goes unanswered, which shortly after start-up made
//! the frozen consumer SUSPECT within a second) so that the frozen consumer stays HEALTHY in
//! the view for the whole test: what takes it out of the reads is the gateway's own
//! measurements, not membership. Query caching is off so that every read is routed.
//!
//! `cargo test -p vigil-cli --test frozen_consumer -- --nocapture`

mod harness;

use std::time::{Duration, Instant};

use harness::Cluster;
use nix::sys::signal::Signal;

const CONFIG: &str = "\
cluster:
  phi:
    acceptable-heartbeat-pause: 20s
  failure:
    timeout: 60s
  monitoring:
    probe-timeout: 20s
services:
  cache:
    ttl: 0s
    status-ttl: 0s
";
/// The reader's pace (the workload's shape, not a wait for a result).
const RATE: Duration = Duration::from_millis(50);
/// Reads counted once consumer-b is ejected.
const WINDOW: usize = 60;

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Continues a frozen process when dropped, so a failed assertion leaves nothing stopped.
struct Frozen(nix::unistd::Pid);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, Signal::SIGCONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_from_the_other_consumer_while_a_frozen_one_is_ejected() {
    let _guard = harness::exclusive().await;
    let mut c = Cluster::new("frozen-consumer", CONFIG);
    c.start_role("coordinator", "coordinator", &[]);
    c.start_role("gateway", "gateway", &[]);
    for id in ["consumer-a", "consumer-b"] {
        let sqlite = c.dir.join(format!("{id}.sqlite")).display().to_string();
        c.start_role(
            id,
            "consumer",
            &env(&[("VIGIL_SERVICES_CONSUMER_SQLITE_PATH", sqlite)]),
        );
    }
    c.wait_for("4 HEALTHY with quorum", Duration::from_secs(30), || {
        c.sees_healthy("gateway", 4)
    })
    .await;

    let reads = c.node("gateway").url("/api/logs/stats");
    let status = c.node("gateway").url("/api/cluster/status");
    // The reader's own client: a read must not be cut short by the harness's 2 s timeout.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let read = || {
        let client = client.clone();
        let reads = reads.clone();
        async move {
            match client.get(&reads).send().await {
                Ok(r) => {
                    let to = r
                        .headers()
                        .get("x-routed-to")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    (r.status().as_u16(), to)
                }
                Err(e) => (0, e.to_string()),
            }
        }
    };
    let route = |s: &serde_json::Value, id: &str, field: &str| s["routing"][id][field].clone();

    // Both consumers take reads while both are well.
    let mut pace = tokio::time::interval(RATE);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        pace.tick().await;
        let (code, to) = read().await;
        assert_eq!(
            code,
            200,
            "read before the freeze: {to}\n{}",
            c.logs_tail(20)
        );
        let s = c.get_json(&status).await.unwrap_or_default();
        let both = ["consumer-a", "consumer-b"]
            .iter()
            .all(|id| route(&s, id, "requests").as_u64().is_some_and(|n| n > 0));
        if both {
            assert_eq!(route(&s, "consumer-b", "role"), "consumer", "{s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reads did not reach both consumers within 20 s: {}",
            s["routing"]
        );
    }

    let frozen = Frozen(c.node("consumer-b").pid());
    c.node("consumer-b").signal(Signal::SIGSTOP);
    let frozen_at = Instant::now();
    let mut before = Vec::new();
    loop {
        pace.tick().await;
        before.push(read().await);
        let s = c.get_json(&status).await.unwrap_or_default();
        if route(&s, "consumer-b", "ejections")
            .as_u64()
            .is_some_and(|n| n >= 1)
        {
            assert_eq!(
                c.status_of("gateway", "consumer-b").await.as_deref(),
                Some("HEALTHY"),
                "membership took consumer-b out first: the test no longer tests the balancer"
            );
            break;
        }
        assert!(
            frozen_at.elapsed() < Duration::from_secs(15),
            "frozen consumer-b not ejected from reads within 15 s ({} reads): {}",
            before.len(),
            s["routing"]
        );
    }
    let ejected_after = frozen_at.elapsed();
    let mut after = Vec::new();
    for _ in 0..WINDOW {
        pace.tick().await;
        after.push(read().await);
    }
    let metrics = c
        .client()
        .get(c.node("gateway").url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    drop(frozen);

    println!(
        "consumer-b ejected {:.2} s after the freeze ({} reads); then {WINDOW} reads: {:?}",
        ejected_after.as_secs_f64(),
        before.len(),
        after
            .iter()
            .fold(std::collections::BTreeMap::<_, usize>::new(), |mut m, r| {
                *m.entry(r.clone()).or_default() += 1;
                m
            })
    );
    let failed: Vec<_> = before.iter().chain(&after).filter(|r| r.0 != 200).collect();
    assert!(
        failed.is_empty(),
        "reads failed while consumer-b was frozen: {failed:?}"
    );
    assert!(
        after.iter().all(|r| r.1 == "consumer-a"),
        "a read was answered by someone other than consumer-a: {after:?}"
    );
    for sample in [
        "gateway_ejections_total{role=\"consumer\",member=\"consumer-b\"}",
        "gateway_routed_requests_total{role=\"consumer\",member=\"consumer-a\"}",
    ] {
        let value = harness::metric_sample(&metrics, sample);
        assert!(
            value.is_some_and(|v| v >= 1.0),
            "{sample} missing or 0:\n{metrics}"
        );
    }
}
