//! `GET /cluster/events` on a three-member cluster of `vigil node` processes, read as
//! `curl -N` would: `member-joined` for each, `member-failed` within the detection time after
//! `kill -9` of one, `member-rejoined` when it starts again with the same id; a reconnect
//! with `Last-Event-ID` replays what it missed; `vigil events --output json` prints the same
//! changes and exits quietly when its stdout closes; `node.event-handlers` ran per change.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::Cluster;
use nix::sys::signal::Signal;
use serde_json::Value;
use vigil::api::sse::{SseEvent, SseParser};

/// An open `GET /cluster/events`, read chunk by chunk.
struct EventStream {
    response: reqwest::Response,
    parser: SseParser,
    seen: Vec<SseEvent>,
}

impl EventStream {
    async fn open(url: &str, last_event_id: Option<&str>) -> EventStream {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        EventStream {
            response,
            parser: SseParser::default(),
            seen: Vec::new(),
        }
    }

    /// Reads until an event matching `wanted` arrives, or fails at `deadline`.
    async fn until(
        &mut self,
        what: &str,
        deadline: Instant,
        wanted: impl Fn(&SseEvent, &Value) -> bool,
    ) -> (SseEvent, Value) {
        loop {
            for (i, e) in self.seen.iter().enumerate() {
                let data: Value = serde_json::from_str(&e.data).unwrap();
                if wanted(e, &data) {
                    let e = self.seen.remove(i);
                    return (e, data);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {what} in time; saw {:?}", self.seen))
                .unwrap()
                .expect("the stream ended");
            self.seen.extend(self.parser.feed(&chunk));
        }
    }
}

fn about(event: &'static str, id: &'static str) -> impl Fn(&SseEvent, &Value) -> bool {
    move |e, data| e.event == event && data["nodeId"] == id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_show_joins_a_kill_and_the_rejoin_and_resume_with_last_event_id() {
    let _guard = harness::exclusive().await;
    let dir = harness::scratch("events-handlers");
    let handler = format!(
        "echo \"$VIGIL_EVENT $VIGIL_MEMBER_ID $VIGIL_STATUS\" >> {d}/handler-$VIGIL_SELF_ID.log; \
         cat >> {d}/stdin-$VIGIL_SELF_ID.log",
        d = dir.display()
    );
    let yaml = format!("node:\n  event-handlers:\n    - '{handler}'\n");
    let mut cluster = Cluster::new("events", &yaml);
    cluster.start("n1");
    cluster
        .wait_for("n1 answers", Duration::from_secs(10), || async {
            cluster.status("n1").await.is_some()
        })
        .await;
    let url = cluster.node("n1").url("/cluster/events");
    let mut stream = EventStream::open(&url, None).await;

    // `vigil events --output json` beside it, its stdout a pipe this test reads
    let mut cli = Command::new(harness::BIN)
        .args([
            "events",
            "--output",
            "json",
            "--addr",
            &cluster.node("n1").http.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let cli_stdout = cli.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(cli_stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break; // the test hung up: the pipe closes when this thread ends
            }
        }
    });

    cluster.start("n2");
    cluster.start("n3");
    let joined = Instant::now() + Duration::from_secs(20);
    for id in ["n2", "n3"] {
        let (e, data) = stream
            .until("member-joined", joined, about("member-joined", id))
            .await;
        assert_eq!(data["status"], "HEALTHY");
        assert!(data["generation"].as_u64().unwrap() > 0);
        assert!(time_is_rfc3339(&data["at"]), "{data}");
        assert!(e.id.contains('-'), "id is <generation>-<number>: {}", e.id);
    }
    cluster
        .wait_for("3 HEALTHY everywhere", Duration::from_secs(20), || {
            cluster.all_see_healthy(&["n1", "n2", "n3"], 3)
        })
        .await;
    // the detectors collect a few heartbeat intervals first, as in kill_and_restart
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (gossip, http) = (cluster.node("n3").gossip, cluster.node("n3").http);
    let killed = Instant::now();
    cluster.node("n3").signal(Signal::SIGKILL);
    let (failed, data) = stream
        .until(
            "member-failed within the detection time (15 s)",
            killed + Duration::from_secs(15),
            about("member-failed", "n3"),
        )
        .await;
    assert_eq!(data["status"], "FAILED");
    println!(
        "MEASURED: member-failed on /cluster/events {} ms after kill -9",
        killed.elapsed().as_millis()
    );

    cluster.start_at("n3", gossip, http);
    let (rejoined, data) = stream
        .until(
            "member-rejoined after the restart",
            Instant::now() + Duration::from_secs(20),
            about("member-rejoined", "n3"),
        )
        .await;
    assert_eq!(data["status"], "HEALTHY");

    // A reconnect after the failure replays everything after it, the rejoin included.
    let mut resumed = EventStream::open(&url, Some(&failed.id)).await;
    let (again, _) = resumed
        .until(
            "the rejoin, replayed after Last-Event-ID",
            Instant::now() + Duration::from_secs(5),
            about("member-rejoined", "n3"),
        )
        .await;
    assert_eq!(again.id, rejoined.id);
    assert!(
        resumed.seen.iter().all(|e| e.id != failed.id),
        "nothing up to Last-Event-ID is sent again"
    );
    // An id of another start of the node gets a snapshot first.
    let mut stale = EventStream::open(&url, Some("1-5")).await;
    let (_, snapshot) = stale
        .until(
            "a snapshot",
            Instant::now() + Duration::from_secs(5),
            |e, _| e.event == "snapshot",
        )
        .await;
    assert_eq!(
        snapshot["members"].as_array().unwrap().len(),
        3,
        "{snapshot}"
    );

    // The CLI printed the same changes, one JSON object a line.
    let cli_deadline = Instant::now() + Duration::from_secs(10);
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|v: &Value| v["event"] == "member-rejoined" && v["nodeId"] == "n3")
    {
        let left = cli_deadline.saturating_duration_since(Instant::now());
        let line = line_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("vigil events printed no rejoin: {printed:?}"));
        printed.push(serde_json::from_str(&line).expect("one JSON object a line"));
    }
    assert!(printed
        .iter()
        .any(|v| v["event"] == "member-failed" && v["nodeId"] == "n3"));
    // Closing its stdout ends it quietly at the next line it writes: n3 leaves (a line the
    // reader thread fails to pass on, so it hangs up), then starts again (a line into the
    // closed pipe).
    drop(line_rx);
    cluster.node("n3").signal(Signal::SIGTERM);
    reader.join().unwrap();
    assert!(cluster
        .node_mut("n3")
        .wait_exit(Duration::from_secs(10))
        .is_some());
    cluster.start_at("n3", gossip, http);
    let exited = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = cli.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < exited,
            "vigil events did not exit after its stdout closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut cli.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The handler ran per change on n1, with the event in its environment and on stdin.
    let log = dir.join("handler-n1.log");
    cluster
        .wait_for(
            "the handler saw n3 fail and rejoin",
            Duration::from_secs(10),
            || async {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.contains("member-failed n3 FAILED")
                    && text.contains("member-rejoined n3 HEALTHY")
            },
        )
        .await;
    let stdin = std::fs::read_to_string(dir.join("stdin-n1.log")).unwrap();
    let first: Value = serde_json::from_str(stdin.lines().next().unwrap()).unwrap();
    assert!(
        first["event"].is_string() && first["at"].is_string(),
        "{first}"
    );
}

fn time_is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}
