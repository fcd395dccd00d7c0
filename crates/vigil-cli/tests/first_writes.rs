//! Issue 16 (experiment 4's failed writes at start): once every member says it holds quorum
//! (`/cluster/status`), a write through the gateway is accepted at once.
//!
//! The gateway and the producers read quorum from a copy of the node's view refreshed every
//! 200 ms, while `/cluster/status` asks the node itself. Before the fix the first writes after
//! the lease came were refused "no quorum" by the view of up to 200 ms ago; now a copy that
//! says "no quorum" is checked against the node before refusing.
//!
//! Five `vigil node` processes as in experiment 4; every member's status polled as fast as it
//! answers, then writes posted back to back with no pause.
//!
//! `cargo test -p vigil-cli --test first_writes -- --nocapture`

mod harness;

use std::time::{Duration, Instant};

use harness::Cluster;
use serde_json::json;

const CONFIG: &str = "services:\n  producer:\n    rate: 0\n";
const MEMBERS: [(&str, &str); 5] = [
    ("coordinator", "coordinator"),
    ("gateway", "gateway"),
    ("producer-a", "producer"),
    ("producer-b", "producer"),
    ("consumer", "consumer"),
];
/// Writes posted back to back once everyone holds quorum: longer than the 200 ms refresh.
const WRITES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_accepted_as_soon_as_every_member_holds_quorum() {
    let _guard = harness::exclusive().await;
    let mut c = Cluster::new("first-writes", CONFIG);
    for (id, role) in MEMBERS {
        let env = if role == "consumer" {
            let sqlite = c.dir.join("consumer.sqlite").display().to_string();
            vec![("VIGIL_SERVICES_CONSUMER_SQLITE_PATH".to_string(), sqlite)]
        } else {
            Vec::new()
        };
        c.start_role(id, role, &env);
    }
    let ready = || async {
        let statuses =
            futures_util::future::join_all(MEMBERS.iter().map(|(id, _)| c.status(id))).await;
        statuses.iter().all(|s| {
            s.as_ref()
                .is_some_and(|s| s["hasQuorum"] == true && s["healthyNodes"] == MEMBERS.len())
        })
    };
    // Polled without a pause: the point is to write the moment the last member says so.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !ready().await {
        assert!(
            Instant::now() < deadline,
            "not every member held quorum with 5 HEALTHY within 40 s\n{}",
            c.logs_tail(20)
        );
    }
    let ready_at = Instant::now();

    let url = c.node("gateway").url("/api/logs");
    let mut answers = Vec::new();
    for k in 0..WRITES {
        let body = json!([{"service": "first", "level": "INFO", "message": format!("event {k}")}]);
        let answer = match c.client().post(&url).json(&body).send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                (code, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        };
        answers.push((ready_at.elapsed().as_millis(), answer));
    }
    let refused: Vec<_> = answers
        .iter()
        .filter(|(_, (code, _))| *code != 202)
        .collect();
    println!(
        "{} writes in {} ms after every member held quorum; refused: {refused:?}",
        answers.len(),
        ready_at.elapsed().as_millis()
    );
    assert!(
        refused.is_empty(),
        "writes refused once every member held quorum (ms after, answer): {refused:?}"
    );
}
