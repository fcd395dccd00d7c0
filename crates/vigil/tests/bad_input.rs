//! Bad configuration, bad flags, an unreachable seed: a clear message, no panic.

mod harness;

use std::time::Duration;

use harness::{run_vigil, scratch, Cluster};

fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_value_in_the_file_exits_2_naming_the_key() {
    let dir = scratch("bad-value");
    std::fs::write(
        dir.join("vigil.yml"),
        "cluster:\n  gossip:\n    fanout: lots\n",
    )
    .unwrap();
    let (code, _, err) = run_vigil(&["node", "--id", "x", "--config", "vigil.yml"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cluster.gossip.fanout")
            && err.contains("vigil.yml")
            && err.contains("whole number"),
        "{err}"
    );
    assert_no_panic(&err);
}

#[test]
fn a_value_the_protocol_rejects_exits_2_with_the_reason() {
    let dir = scratch("rejected");
    std::fs::write(
        dir.join("vigil.yml"),
        "cluster:\n  heartbeat:\n    interval: 1000\n  failure:\n    timeout: 1500\n",
    )
    .unwrap();
    let (code, _, err) = run_vigil(&["config", "check", "vigil.yml"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cluster.failure.timeout") && err.contains("twice"),
        "{err}"
    );
    assert_no_panic(&err);
}

#[test]
fn an_unknown_key_and_broken_yaml_exit_2() {
    let dir = scratch("unknown-key");
    std::fs::write(
        dir.join("typo.yml"),
        "cluster:\n  hearbeat:\n    interval: 1000\n",
    )
    .unwrap();
    let (code, _, err) = run_vigil(&["config", "check", "typo.yml"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cluster.hearbeat.interval"), "{err}");
    std::fs::write(dir.join("broken.yml"), "cluster: [unclosed\n").unwrap();
    let (code, _, err) = run_vigil(&["config", "check", "broken.yml"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.yml"), "{err}");
    let (code, _, err) = run_vigil(&["config", "check", "missing.yml"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert_no_panic(&err);
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let dir = scratch("bad-env");
    let (code, _, err) = run_vigil(
        &["node", "--id", "x"],
        &[("VIGIL_CLUSTER_HEARTBEAT_INTERVAL", "soon")],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("VIGIL_CLUSTER_HEARTBEAT_INTERVAL")
            && err.contains("cluster.heartbeat.interval"),
        "{err}"
    );
}

#[test]
fn bad_flags_exit_2() {
    let dir = scratch("bad-flags");
    let (code, _, err) = run_vigil(
        &["node", "--id", "x", "--gossip", "not-an-address"],
        &[],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("node.gossip") && err.contains("--gossip"),
        "{err}"
    );
    let (code, _, err) = run_vigil(
        &["node", "--id", "x", "--set", "cluster.phi.threshold=-1"],
        &[],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cluster.phi.threshold"), "{err}");
    let (code, _, err) = run_vigil(&["node", "--no-such-flag"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_vigil(
        &["node", "--http", "127.0.0.1:0", "--gossip", "127.0.0.1:0"],
        &[],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("node.id"), "{err}");
    assert_no_panic(&err);
}

#[test]
fn the_default_file_is_valid_and_documents_every_override() {
    let dir = scratch("defaults");
    let (code, out, err) = run_vigil(&["config", "defaults"], &[], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("VIGIL_CLUSTER_HEARTBEAT_INTERVAL") && out.contains("heartbeat:"),
        "{out}"
    );
    std::fs::write(dir.join("defaults.yml"), &out).unwrap();
    let (code, out, err) = run_vigil(&["config", "check", "defaults.yml"], &[], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_seed_is_reported_and_the_node_stays_unready() {
    let mut cluster = Cluster::new("unreachable-seed", "");
    // Nobody listens at this seed.
    cluster.seed = Some(
        format!("127.0.0.1:{}", harness::free_udp_port())
            .parse()
            .unwrap(),
    );
    cluster.start("lonely");
    cluster
        .wait_for(
            "a warning about the seed",
            Duration::from_secs(15),
            || async {
                cluster
                    .node("lonely")
                    .log_text()
                    .contains("no answer from any seed")
            },
        )
        .await;
    let ready = cluster
        .client()
        .get(cluster.node("lonely").url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("not joined"));
    cluster
        .node("lonely")
        .signal(nix::sys::signal::Signal::SIGTERM);
    let status = cluster
        .node_mut("lonely")
        .wait_exit(Duration::from_secs(5))
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert_no_panic(&cluster.node("lonely").log_text());
}
