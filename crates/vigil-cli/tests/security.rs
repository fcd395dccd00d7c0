//! Sealed gossip on real processes: strangers (another key, no key) never get in, the
//! keyring rotates on a running cluster without a false failure, and a flood from one
//! address is rate-limited without disturbing the heartbeats of the others.

mod harness;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use harness::{run_vigil, Cluster, TOKEN};

const IDS: [&str; 3] = ["s1", "s2", "s3"];

fn sealed_config(key: &str) -> String {
    format!("security:\n  gossip-keys: [\"{key}\"]\n")
}

fn new_key(cluster: &Cluster) -> String {
    let (code, out, err) = run_vigil(&["keys", "generate"], &[], &cluster.dir);
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

async fn start_three(cluster: &mut Cluster) {
    for id in IDS {
        cluster.start(id);
    }
    cluster
        .wait_for("3 HEALTHY everywhere", Duration::from_secs(20), || {
            cluster.all_see_healthy(&IDS, 3)
        })
        .await;
}

fn keys_cmd(cluster: &Cluster, op: &str, key: &str) -> String {
    let addr = cluster.node("s1").url("");
    let (code, out, err) = run_vigil(
        &["keys", op, key, "--addr", &addr, "--token", TOKEN],
        &[],
        &cluster.dir,
    );
    assert_eq!(code, 0, "vigil keys {op}: {out}{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" ok: ")).count(),
        3,
        "{out}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_stay_out_and_the_keyring_rotates_without_a_false_failure() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("sealed", "");
    let k1 = new_key(&cluster);
    std::fs::write(&cluster.config, sealed_config(&k1)).unwrap();
    start_three(&mut cluster).await;

    // A member with another key and one with no key knock at s1 (the seed).
    let k_other = new_key(&cluster);
    cluster.start_role(
        "wrong-key",
        "member",
        &[("VIGIL_SECURITY_GOSSIP_KEYS".into(), k_other)],
    );
    cluster.start_role(
        "no-key",
        "member",
        &[
            ("VIGIL_SECURITY_GOSSIP_KEYS".into(), String::new()),
            ("VIGIL_SECURITY_INSECURE".into(), "true".into()),
        ],
    );
    cluster
        .wait_for(
            "s1 refuses both strangers' datagrams",
            Duration::from_secs(15),
            || async {
                cluster
                    .metric("s1", "cluster_gossip_rejected_total{reason=\"bad_seal\"}")
                    .await
                    > 0.0
                    && cluster
                        .metric("s1", "cluster_gossip_rejected_total{reason=\"unsealed\"}")
                        .await
                        > 0.0
            },
        )
        .await;
    for id in IDS {
        let s = cluster.status(id).await.unwrap();
        assert_eq!(s["totalNodes"], 3, "{id} lists a stranger: {s}");
    }
    for stranger in ["wrong-key", "no-key"] {
        let s = cluster.status(stranger).await.unwrap();
        assert_eq!(s["totalNodes"], 1, "{stranger} got in: {s}");
        assert_eq!(s["hasQuorum"], false);
    }

    // Rotate k1 -> k2: install everywhere, use everywhere, remove k1 everywhere.
    let failures_before = cluster.failures_detected(&IDS).await;
    let k2 = new_key(&cluster);
    keys_cmd(&cluster, "install", &k2);
    keys_cmd(&cluster, "use", &k2);
    keys_cmd(&cluster, "remove", &k1);
    let (code, out, err) = run_vigil(
        &[
            "keys",
            "list",
            "--addr",
            &cluster.node("s2").url(""),
            "--token",
            TOKEN,
        ],
        &[],
        &cluster.dir,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches(&format!("primary {k2}  all [{k2}]")).count(),
        3,
        "{out}"
    );
    assert!(!out.contains(&k1), "{out}");

    // Still one healthy cluster, sealed with k2 only: a node with k1 alone stays out,
    // a node with k2 gets in.
    let heard = cluster
        .metric("s1", "cluster_heartbeats_received_total")
        .await;
    cluster
        .wait_for(
            "heartbeats keep flowing under k2",
            Duration::from_secs(10),
            || async {
                cluster
                    .metric("s1", "cluster_heartbeats_received_total")
                    .await
                    > heard + 2.0
            },
        )
        .await;
    let rejected_before = cluster
        .metric("s1", "cluster_gossip_rejected_total{reason=\"bad_seal\"}")
        .await;
    cluster.start_role("old-key", "member", &[]); // the config file still holds k1
    cluster.start_role(
        "new-key",
        "member",
        &[("VIGIL_SECURITY_GOSSIP_KEYS".into(), k2.clone())],
    );
    cluster
        .wait_for(
            "new-key joins, old-key is refused",
            Duration::from_secs(20),
            || async {
                cluster.sees_healthy("s1", 4).await
                    && cluster
                        .metric("s1", "cluster_gossip_rejected_total{reason=\"bad_seal\"}")
                        .await
                        > rejected_before
            },
        )
        .await;
    assert_eq!(
        cluster.status_of("s1", "old-key").await.as_deref(),
        Some("ABSENT")
    );
    cluster
        .wait_for(
            "every member sees new-key HEALTHY",
            Duration::from_secs(10),
            || cluster.all_see_healthy(&IDS, 4),
        )
        .await;
    assert_eq!(
        cluster.failures_detected(&IDS).await,
        failures_before,
        "a failure was detected during the rotation"
    );

    // Bad requests get clear answers.
    let url = cluster.node("s1").url("/cluster/keys/remove");
    let r = cluster
        .client()
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "key": k2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "removing the primary must be refused");
    let r = cluster
        .client()
        .get(cluster.node("s1").url("/cluster/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "listing keys needs the admin token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_limited_and_harms_no_one() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("flood", "");
    let key = new_key(&cluster);
    std::fs::write(&cluster.config, sealed_config(&key)).unwrap();
    start_three(&mut cluster).await;
    // Let the detectors learn the heartbeat rhythm first.
    let heard = cluster
        .metric("s1", "cluster_heartbeats_received_total")
        .await;
    cluster
        .wait_for("a few heartbeats", Duration::from_secs(10), || async {
            cluster
                .metric("s1", "cluster_heartbeats_received_total")
                .await
                > heard + 4.0
        })
        .await;
    let failures_before = cluster.failures_detected(&IDS).await;

    // 20,000 datagrams per second for 8 s from one socket at s1: a third look like Vigil
    // datagrams sealed with a wrong key, a third unsealed, a third noise.
    let target = cluster.node("s1").gossip;
    let flood = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sealed_looking = vec![0x56, 1, 0, 0, 0, 0, 0x12];
        sealed_looking.extend((0..200).map(|i| i as u8));
        let mut unsealed = vec![0x56, 1, 0, 0, 0, 0, 0];
        unsealed.extend((0..200).map(|i| (i * 7) as u8));
        let noise: Vec<u8> = (0..300).map(|i| (i * 13) as u8).collect();
        let kinds = [sealed_looking, unsealed, noise];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(8) {
            // pace to 20,000 per second
            let due = (start.elapsed().as_secs_f64() * 20_000.0) as u64;
            while sent < due {
                let _ = socket.send_to(&kinds[(sent % 3) as usize], target);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    });
    let mut worst = String::new();
    while !flood.is_finished() {
        for observer in IDS {
            if let Some(s) = cluster.status(observer).await {
                if s["healthyNodes"] != 3 || s["hasQuorum"] != true {
                    worst = format!("{observer}: {s}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sent = flood.join().unwrap();
    let limited = cluster
        .metric(
            "s1",
            "cluster_gossip_rejected_total{reason=\"rate_limited\"}",
        )
        .await;
    println!(
        "flood: {sent} datagrams in 8 s at s1; rate_limited {limited}; bad_seal {}; unsealed {}",
        cluster
            .metric("s1", "cluster_gossip_rejected_total{reason=\"bad_seal\"}")
            .await,
        cluster
            .metric("s1", "cluster_gossip_rejected_total{reason=\"unsealed\"}")
            .await,
    );
    assert!(
        worst.is_empty(),
        "a view was not 3 HEALTHY with quorum: {worst}"
    );
    assert_eq!(cluster.failures_detected(&IDS).await, failures_before);
    // The limit lets through the burst (400) plus 200/s, about 2,000 in 8 s; what the kernel
    // delivered beyond that was refused before any decoding. How much it delivered depends
    // on the machine's load (the rest overflows the socket buffer, uncounted), so check
    // that the limiter did the bulk of the refusing, not an exact share.
    assert!(limited > 10_000.0, "only {limited} of {sent} rate-limited");
    for id in IDS {
        assert!(cluster.sees_healthy(id, 3).await, "{id} after the flood");
    }
}
