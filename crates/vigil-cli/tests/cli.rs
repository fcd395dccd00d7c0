//! The CLI as a user meets it (issue 17): one way to find a cluster, errors that say what to
//! do, join / leave / force-leave, pipes, `up` on busy ports, and the member fields the
//! tables show (last heard, phi).

mod harness;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{run_vigil, Cluster, BIN, TOKEN};
use serde_json::Value;

fn rfc3339(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn a_node_that_does_not_answer_is_named_with_both_ways_to_point_elsewhere() {
    let dir = harness::scratch("cli-unreachable");
    let closed = format!("http://127.0.0.1:{}", harness::free_tcp_port());
    for (args, env) in [
        (vec!["members", "--addr", closed.as_str()], vec![]),
        (vec!["status"], vec![("VIGIL_ADDR", closed.as_str())]),
        (
            vec!["keys", "list", "--token", TOKEN, "--addr", closed.as_str()],
            vec![],
        ),
    ] {
        let (code, _, err) = run_vigil(&args, &env, &dir);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains(&closed) && err.contains("--addr") && err.contains("VIGIL_ADDR"),
            "{args:?}: {err}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "one sentence, not a chain: {err}"
        );
    }
}

#[test]
fn load_with_nothing_accepted_fails_and_names_the_errors() {
    let dir = harness::scratch("cli-load");
    let closed = format!("http://127.0.0.1:{}", harness::free_tcp_port());
    let (code, out, err) = run_vigil(
        &[
            "load",
            "--duration",
            "1s",
            "--rate",
            "10",
            "--batch",
            "1",
            "-o",
            "json",
        ],
        &[("VIGIL_ADDR", closed.as_str())],
        &dir,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("no event was accepted") && err.contains("refused"),
        "{err}"
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["eventsAccepted"], 0);
    assert!(
        report["errorsByKind"]
            .as_object()
            .is_some_and(|k| !k.is_empty()),
        "{report}"
    );
}

#[test]
fn config_check_lists_every_error_and_accepts_host_names() {
    let dir = harness::scratch("cli-config");
    let file = dir.join("vigil.yml");
    std::fs::write(
        &file,
        "node:\n  http: localhost:8080\ncluster:\n  hearbeat:\n    interval: 1000\n  gossip:\n    fanout: many\n",
    )
    .unwrap();
    let (code, _, err) = run_vigil(&["config", "check", file.to_str().unwrap()], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2 errors"), "{err}");
    assert!(
        err.contains("cluster.hearbeat.interval") && err.contains("cluster.gossip.fanout"),
        "{err}"
    );
    assert!(
        !err.contains("node.http"),
        "a host name is a fine bind address: {err}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_same_definition() {
    let dir = harness::scratch("cli-docs");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run_vigil(&["completions", shell], &[], &dir);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("force-leave") && out.contains("output"),
            "{shell}"
        );
    }
    let (code, out, _) = run_vigil(&["man"], &[], &dir);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(".ie") || out.contains(".TH vigil 1"),
        "{out}"
    );
    let pages = dir.join("man");
    let (code, _, err) = run_vigil(&["man", "--out-dir", pages.to_str().unwrap()], &[], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(pages.join("vigil.1").exists() && pages.join("vigil-status.1").exists());
    // --cacert belongs to the commands that call a node, not to `node` or `completions`.
    let (_, help, _) = run_vigil(&["node", "--help"], &[], &dir);
    assert!(!help.contains("--cacert"), "{help}");
    let (_, help, _) = run_vigil(&["status", "--help"], &[], &dir);
    assert!(
        help.contains("--cacert") && help.contains("VIGIL_ADDR"),
        "{help}"
    );
}

// Holds `vigil up` ports: under the cluster lock, so that no other `up` in this file picks the
// same free layout meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_refuses_busy_ports_and_names_them() {
    let _guard = harness::exclusive().await;
    let dir = harness::scratch("cli-up-busy");
    let (http_offset, gossip_base) = harness::free_up_layout();
    let coordinator_port = 8081 + http_offset;
    let _held = TcpListener::bind(("127.0.0.1", coordinator_port)).unwrap();
    let _held_udp = UdpSocket::bind(("127.0.0.1", gossip_base + 2)).unwrap();
    let mut up = Command::new(BIN)
        .args(["up", "--http-offset", &http_offset.to_string()])
        .args(["--gossip-base", &gossip_base.to_string()])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = up.kill();
            panic!("vigil up did not refuse busy ports");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = up.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{coordinator_port}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("127.0.0.1:{}", gossip_base + 2)),
        "{err}"
    );
    assert!(err.contains("--http-offset"), "{err}");
    assert!(
        !dir.join(".vigil/logs/coordinator.log").exists(),
        "no member was started"
    );
}

/// A gossip address nobody answers at.
fn silent_address() -> SocketAddr {
    format!("127.0.0.1:{}", harness::free_udp_port())
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_force_leave_and_what_the_tables_say_about_a_frozen_member() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new(
        "cli-admin",
        "node:\n  leave-linger: 2s\ncluster:\n  eviction:\n    grace-period: 60s\n",
    );
    cluster.start("a");
    cluster.start("b");
    // c is given a seed nobody answers at: alone until an operator joins it.
    let real_seed = cluster.seed;
    cluster.seed = Some(silent_address());
    cluster.start("c");
    cluster.seed = real_seed;
    cluster
        .wait_for("a and b see each other", Duration::from_secs(20), || {
            cluster.all_see_healthy(&["a", "b"], 2)
        })
        .await;
    let addr = |id: &str| format!("http://{}", cluster.node(id).http);
    let dir = cluster.dir.clone();

    // join: c is asked to join a's cluster through a's gossip address
    let a_gossip = cluster.node("a").gossip.to_string();
    let (code, out, err) = run_vigil(
        &["join", &a_gossip, "--addr", &addr("c"), "--token", TOKEN],
        &[],
        &dir,
    );
    assert_eq!(code, 0, "{out}\n{err}\n{}", cluster.logs_tail(20));
    assert!(out.contains("joined through"), "{out}");
    cluster
        .wait_for("everyone sees 3 HEALTHY", Duration::from_secs(20), || {
            cluster.all_see_healthy(&["a", "b", "c"], 3)
        })
        .await;

    // a closed pipe ends `status --watch` quietly, and a pipe gets no screen codes
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{BIN}' status --addr {} --watch | head -3",
            addr("a")
        ))
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr),
    );
    assert!(piped.status.success(), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        !out.contains('\x1b') && !err.contains("panicked"),
        "{out}\n{err}"
    );

    // phi only where the answering node watches the member
    let s = cluster.status("a").await.unwrap();
    for (id, m) in s["membership"].as_object().unwrap() {
        assert_eq!(
            m["phiScore"].is_number(),
            m["monitored"] == true,
            "{id}: {m}"
        );
    }

    // freeze c: once it is FAILED, "last heard" is still when it froze, and stays there
    let frozen_at = time::OffsetDateTime::now_utc();
    harness::freeze(cluster.node("c").pid());
    cluster
        .wait_for("a and b see c FAILED", Duration::from_secs(40), || {
            cluster.all_see(&["a", "b"], "c", "FAILED")
        })
        .await;
    let heard = |s: &Value| {
        s["membership"]["c"]["lastHeartbeatTime"]
            .as_str()
            .map(rfc3339)
    };
    let first = heard(&cluster.status("a").await.unwrap()).unwrap();
    assert!(
        first <= frozen_at + time::Duration::milliseconds(500),
        "c was last heard at {first}, after it froze at {frozen_at}"
    );
    let (_, table, _) = run_vigil(&["members", "--addr", &addr("a")], &[], &dir);
    let row = table
        .lines()
        .find(|l| l.starts_with("c "))
        .unwrap()
        .to_string();
    let failed = cluster.status("a").await.unwrap();
    assert_eq!(heard(&failed), Some(first), "last heard moved after FAILED");
    let c = &failed["membership"]["c"];
    // nobody watches a FAILED member: no phi (the seed showed the threshold, 8.00)
    assert!(c["phiScore"].is_null() && c["monitored"] == false, "{c}");
    assert!(
        row.contains("FAILED") && !row.contains(" 0.0s ago"),
        "{row}"
    );

    // force-leave the frozen member; an unknown one is a clear error
    let (code, out, err) = run_vigil(
        &["force-leave", "c", "--addr", &addr("a"), "--token", TOKEN],
        &[],
        &dir,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("c removed"), "{out}");
    let (code, _, err) = run_vigil(
        &[
            "force-leave",
            "nobody",
            "--addr",
            &addr("a"),
            "--token",
            TOKEN,
        ],
        &[],
        &dir,
    );
    assert_eq!(code, 1);
    assert!(err.contains("404") && err.contains("nobody"), "{err}");

    // no token: the message says how to give one
    let (code, _, err) = run_vigil(&["leave", "--addr", &addr("b")], &[], &dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("--token") && err.contains("VIGIL_HTTP_ADMIN_TOKEN"),
        "{err}"
    );

    // leave: b goes, gracefully, and exits 0
    let (code, out, err) = run_vigil(
        &["leave", "--addr", &addr("b"), "--token", TOKEN],
        &[],
        &dir,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("b is leaving"), "{out}");
    cluster
        .wait_for("a sees b LEFT", Duration::from_secs(20), || {
            cluster.all_see(&["a"], "b", "LEFT")
        })
        .await;
    let exit = cluster.node_mut("b").wait_exit(Duration::from_secs(20));
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_logs_json_for_itself_and_its_members_when_asked() {
    let _guard = harness::exclusive().await;
    let dir = harness::scratch("cli-up-json");
    let (http_offset, gossip_base) = harness::free_up_layout();
    let out = dir.join("up.out");
    let err = dir.join("up.err");
    let mut up = Command::new(BIN)
        .args(["up", "--log-format", "json"])
        .args(["--http-offset", &http_offset.to_string()])
        .args(["--gossip-base", &gossip_base.to_string()])
        .current_dir(&dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    while !read(&out).contains("cluster ready: 4 HEALTHY") {
        if Instant::now() > deadline {
            let _ = up.kill();
            panic!("not ready:\n{}\n{}", read(&out), read(&err));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = nix::unistd::Pid::from_raw(up.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while up.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "vigil up did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = [
        read(&err),
        read(&dir.join(".vigil/logs/coordinator.log")),
        read(&dir.join(".vigil/logs/consumer.log")),
    ];
    for log in &logs {
        assert!(!log.trim().is_empty());
        for line in log.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
        }
    }
}
