//! The consumer's SQLite file deleted while `vigil up` runs: no event is answered 202 and then
//! lost, the consumer says DOWN with the reason while it cannot store, and once it is restarted
//! every event acknowledged after the deletion is stored exactly once, the refused ones too
//! (the producer kept them queued). Those acknowledged before went with the deleted file.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::Up;
use serde_json::{json, Value};

const SERVICE: &str = "lost-store-test";

struct Posts {
    client: reqwest::Client,
    url: String,
    /// Event id -> HTTP status of its POST (0 = no answer).
    answers: BTreeMap<String, u16>,
}

impl Posts {
    /// Posts one event through the gateway, with its own id.
    async fn post(&mut self, id: &str) -> u16 {
        let body = json!([{ "id": id, "service": SERVICE, "level": "INFO", "message": id }]);
        let code = match self.client.post(&self.url).json(&body).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        self.answers.insert(id.to_string(), code);
        code
    }

    /// Posts several events at once.
    async fn post_all(&mut self, ids: &[String]) -> Vec<u16> {
        let sends = ids.iter().map(|id| {
            let body = json!([{ "id": id, "service": SERVICE, "level": "INFO", "message": id }]);
            let request = self.client.post(&self.url).json(&body).send();
            async move { request.await.map_or(0, |r| r.status().as_u16()) }
        });
        let mut handles = Vec::new();
        for send in sends {
            handles.push(tokio::spawn(send));
        }
        let mut codes = Vec::new();
        for (id, h) in ids.iter().zip(handles) {
            let code = h.await.unwrap();
            self.answers.insert(id.clone(), code);
            codes.push(code);
        }
        codes
    }
}

/// `/actuator/health` of the consumer whatever its status code.
async fn consumer_health(up: &Up) -> Value {
    let Ok(r) = up
        .client()
        .get(up.url("consumer", "/actuator/health"))
        .send()
        .await
    else {
        return Value::Null;
    };
    r.json().await.unwrap_or(Value::Null)
}

async fn wait_health(up: &Up, what: &str, timeout: Duration, check: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    loop {
        let h = consumer_health(up).await;
        if check(&h) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}\nlast health: {h}\n{}",
            up.logs_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn store(h: &Value) -> &Value {
    &h["components"]["consumer"]["store"]
}

fn is_up(h: &Value) -> bool {
    h["components"]["consumer"]["status"] == "UP"
}

/// The stored ids of this test's events, with how often each is there.
async fn stored(up: &Up) -> Option<BTreeMap<String, usize>> {
    let r = up
        .client()
        .get(up.url("consumer", &format!("/logs?service={SERVICE}&limit=1000")))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let rows: Vec<Value> = r.json().await.ok()?;
    let mut ids = BTreeMap::new();
    for row in rows {
        *ids.entry(row["id"].as_str()?.to_string()).or_insert(0) += 1;
    }
    Some(ids)
}

fn remove_store_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_store_acknowledges_nothing_it_lost_and_keeps_every_acknowledged_event() {
    let _guard = harness::exclusive().await;
    let up = Up::start("lost-store");
    up.wait_ready(Duration::from_secs(60)).await;
    let data = up.dir.canonicalize().unwrap().join(".vigil/data");
    assert!(
        up.output().contains(&format!("data in {}", data.display())),
        "vigil up names its data directory:\n{}",
        up.output()
    );
    let db = data.join("consumer.sqlite");
    let mut posts = Posts {
        // Longer than the producer's ack timeout (4 s): a refusal is a 503, not a timeout here.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        url: up.url("gateway", "/api/logs"),
        answers: BTreeMap::new(),
    };
    wait_health(
        &up,
        "the consumer's store open",
        Duration::from_secs(30),
        is_up,
    )
    .await;
    // Right after the cluster forms on a loaded machine a post may still be refused (503):
    // these events only fill the store before it is deleted, so retry them to a deadline.
    for i in 0..5 {
        let start = Instant::now();
        while posts.post(&format!("before-{i}")).await != 202 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "before-{i} refused for 30 s:\n{}",
                up.logs_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The case: every file of the store deleted, then events posted one by one.
    remove_store_files(&db);
    let after_ids: Vec<String> = (0..8).map(|i| format!("deleted-{i}")).collect();
    for id in &after_ids {
        posts.post(id).await;
    }
    wait_health(
        &up,
        "DOWN with lastError naming the file",
        Duration::from_secs(15),
        |h| {
            !is_up(h)
                && h["status"] == "DOWN"
                && store(h)["losses"] == 1
                && store(h)["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("consumer.sqlite"))
        },
    )
    .await;
    let stats = up
        .client()
        .get(up.url("consumer", "/logs/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 503, "/logs/stats without a store");
    assert!(!db.exists(), "nobody created an empty store in its place");
    // Still refused a while later: the consumer does not start a new file by itself.
    let codes = posts.post_all(&["later-0".to_string()]).await;
    assert_ne!(codes, [202], "acknowledged while the store was gone");

    // A restart (vigil up restarts a member that dies) opens a new store at the path; the
    // producer delivers what it kept queued.
    let consumer = up.member_pid("consumer").expect("the consumer runs");
    nix::sys::signal::kill(consumer, nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_health(
        &up,
        "UP again after a restart",
        Duration::from_secs(60),
        is_up,
    )
    .await;
    let refused_ids: Vec<String> = after_ids
        .iter()
        .chain(["later-0".to_string()].iter())
        .cloned()
        .collect();

    // Every acknowledged event is there once; the refused ones arrive too (kept queued).
    let start = Instant::now();
    let final_ids = loop {
        let ids = stored(&up).await;
        if let Some(ids) = &ids {
            if refused_ids.iter().all(|id| ids.contains_key(id)) {
                break ids.clone();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the events refused while the store was gone never arrived: {ids:?}\n{}",
            up.logs_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let acknowledged: Vec<&String> = posts
        .answers
        .iter()
        .filter(|(id, code)| **code == 202 && !id.starts_with("before-"))
        .map(|(id, _)| id)
        .collect();
    let missing: Vec<&&String> = acknowledged
        .iter()
        .filter(|id| !final_ids.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "answered 202 and lost: {missing:?}\nanswers: {:?}",
        posts.answers
    );
    assert!(
        final_ids.values().all(|n| *n == 1),
        "stored more than once: {final_ids:?}"
    );
    assert!(
        final_ids.keys().all(|id| posts.answers.contains_key(id)),
        "{final_ids:?}"
    );
}
