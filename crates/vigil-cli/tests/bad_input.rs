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

#[test]
fn a_member_without_keys_or_token_refuses_to_start_and_says_how_to_fix_it() {
    let dir = scratch("unprotected");
    let (code, _, err) = run_vigil(
        &[
            "node",
            "--id",
            "x",
            "--http",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
        ],
        &[],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    for needle in [
        "VIGIL_SECURITY_GOSSIP_KEYS",
        "vigil keys generate",
        "VIGIL_HTTP_ADMIN_TOKEN",
        "vigil keys token",
        "--insecure",
    ] {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
    // A key alone is not enough while the admin endpoints are on.
    let key = harness::gossip_key();
    let (code, _, err) = run_vigil(
        &["node", "--id", "x", "--http", "127.0.0.1:0"],
        &[("VIGIL_SECURITY_GOSSIP_KEYS", &key)],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("admin token") && !err.contains("no gossip keys"),
        "{err}"
    );
    // A weak token is refused too.
    let (code, _, err) = run_vigil(
        &["node", "--id", "x"],
        &[
            ("VIGIL_SECURITY_GOSSIP_KEYS", &key),
            ("VIGIL_HTTP_ADMIN_TOKEN", "secret"),
        ],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("http.admin-token") && err.contains("too short") && !err.contains("secret\""),
        "{err}"
    );
    assert_no_panic(&err);
}

#[test]
fn a_misspelled_variable_stops_the_member_and_names_the_right_one() {
    let dir = scratch("misspelled-env");
    std::fs::write(dir.join("vigil.yml"), "").unwrap();
    let (code, _, err) = run_vigil(
        &["config", "check", "vigil.yml"],
        &[("VIGIL_CLUSTER_PHI_TRESHOLD", "0")],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("VIGIL_CLUSTER_PHI_TRESHOLD")
            && err.contains("did you mean VIGIL_CLUSTER_PHI_THRESHOLD?"),
        "{err}"
    );
    let (code, _, err) = run_vigil(
        &["node", "--id", "x", "--insecure"],
        &[("VIGIL_CLUSTER_PHI_TRESHOLD", "0")],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("VIGIL_CLUSTER_PHI_THRESHOLD"), "{err}");
}

#[test]
fn the_key_at_fault_and_its_origin_are_named() {
    let dir = scratch("at-fault");
    std::fs::write(
        dir.join("vigil.yml"),
        "cluster:\n  failure:\n    timeout: 0.0001s\n",
    )
    .unwrap();
    let (code, _, err) = run_vigil(&["config", "check", "vigil.yml"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("for `cluster.failure.timeout` (from file vigil.yml)"),
        "{err}"
    );
    // A value a flag gave is reported as the flag's, also for what is checked at start.
    let (code, _, err) = run_vigil(
        &[
            "node",
            "--id",
            "x",
            "--insecure",
            "--http",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
            "--set",
            "http.tls-cert=missing-cert.pem",
            "--set",
            "http.tls-key=missing-key.pem",
        ],
        &[],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("(from flag --set http.tls-cert)"), "{err}");
    let (code, _, err) = run_vigil(
        &["node", "--id", "x", "--insecure", "--gossip", "0.0.0.0:0"],
        &[],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("node.advertise") && err.contains("from flag --gossip"),
        "{err}"
    );
}

#[test]
fn sizes_beyond_their_maximum_are_refused() {
    let dir = scratch("too-big");
    std::fs::write(dir.join("vigil.yml"), "").unwrap();
    let (code, _, err) = run_vigil(
        &["config", "check", "vigil.yml"],
        &[("VIGIL_HTTP_MAX_BODY", "1000000000000")],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("http.max-body") && err.contains("at most"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_member_says_so_in_its_log_and_its_status() {
    let mut cluster = Cluster::new("insecure", "");
    cluster.start_role(
        "open",
        "member",
        &[
            ("VIGIL_SECURITY_GOSSIP_KEYS".into(), String::new()),
            ("VIGIL_SECURITY_INSECURE".into(), "true".into()),
        ],
    );
    cluster.seed = None;
    cluster.start("sealed");
    let status = |id: &'static str| {
        let cluster = &cluster;
        async move { cluster.status(id).await }
    };
    cluster
        .wait_for("both answer", Duration::from_secs(15), || async {
            status("open").await.is_some() && status("sealed").await.is_some()
        })
        .await;
    assert_eq!(status("open").await.unwrap()["insecure"], true);
    assert_eq!(status("sealed").await.unwrap()["insecure"], false);
    let log = cluster.node("open").log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("INSECURE"))
        .unwrap_or_else(|| panic!("no INSECURE line in:\n{log}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        !cluster.node("sealed").log_text().contains("INSECURE"),
        "{}",
        cluster.node("sealed").log_text()
    );
}
