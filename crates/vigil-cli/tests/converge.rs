//! Four real processes on loopback converge, and every API speaks the documented shape.

mod harness;

use std::time::Duration;

use harness::{run_vigil, Cluster};
use serde_json::Value;

const IDS: [&str; 4] = ["coordinator", "gateway", "producer", "consumer"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_converge_to_four_healthy_with_quorum() {
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("converge", "cluster:\n  heartbeat:\n    interval: 1000\n");
    for id in IDS {
        cluster.start(id);
    }
    let took = cluster
        .wait_for(
            "every node sees 4 HEALTHY with quorum",
            Duration::from_secs(20),
            || cluster.all_see_healthy(&IDS, 4),
        )
        .await;
    println!(
        "MEASURED: 4-node convergence (spawn to 4 HEALTHY + quorum on every node): {} ms",
        took.as_millis()
    );

    // The seed's shape, plus the operator fields.
    let s = cluster.status("gateway").await.unwrap();
    assert_eq!(s["totalNodes"], 4);
    assert_eq!(s["healthyNodes"], 4);
    assert_eq!(s["hasQuorum"], true);
    assert_eq!(s["self"], "gateway");
    assert!(s["leader"].is_string(), "{s}");
    let membership = s["membership"].as_object().unwrap();
    assert_eq!(membership.len(), 4);
    for id in IDS {
        let m = &membership[id];
        assert_eq!(m["nodeId"], id);
        assert_eq!(m["status"], "HEALTHY");
        assert!(m["healthScore"].as_u64().unwrap() <= 100);
        // Phi only where this node watches the member (null for itself and the others).
        assert_eq!(m["phiScore"].is_f64(), m["monitored"] == true, "{m}");
        let t = m["lastHeartbeatTime"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.contains('T'), "RFC 3339 UTC: {t}");
        assert!(
            m["generation"].as_u64().unwrap() > 1_600_000_000_000,
            "generation is unix ms: {m}"
        );
        assert_eq!(m["role"], "member");
        assert_eq!(m["gossipAddress"], cluster.node(id).gossip.to_string());
        assert_eq!(m["httpAddress"], cluster.node(id).http.to_string());
    }
    // Every node agrees on the leader.
    let leader = s["leader"].clone();
    for id in IDS {
        assert_eq!(cluster.status(id).await.unwrap()["leader"], leader);
    }

    let node = cluster.node("producer");
    let members = cluster
        .get_json(&node.url("/cluster/members"))
        .await
        .unwrap();
    assert_eq!(members.as_array().unwrap().len(), 4);
    let one = cluster
        .get_json(&node.url("/cluster/members/consumer"))
        .await
        .unwrap();
    assert_eq!(one["nodeId"], "consumer");
    let missing = cluster
        .client()
        .get(node.url("/cluster/members/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let health = cluster
        .client()
        .get(node.url("/actuator/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "UP");
    assert_eq!(health["components"]["quorum"]["status"], "UP");
    for path in ["/livez", "/readyz"] {
        assert_eq!(
            cluster
                .client()
                .get(node.url(path))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }

    // State-changing endpoints need the token.
    let no_token = cluster
        .client()
        .post(node.url("/cluster/members/gateway/remove"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let unknown = cluster
        .client()
        .post(node.url("/cluster/members/nobody/remove"))
        .bearer_auth(harness::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The CLI reads the same API.
    let addr = format!("http://{}", node.http);
    let (code, out, err) = run_vigil(&["members", "--addr", &addr], &[], &cluster.dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.lines().next().unwrap().starts_with("NODE"), "{out}");
    let (code, out, err) = run_vigil(
        &[
            "members", "--addr", &addr, "--output", "json", "--status", "FAILED",
        ],
        &[],
        &cluster.dir,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (code, out, err) = run_vigil(&["status", "--addr", &addr], &[], &cluster.dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("quorum:  yes") && out.contains("4 healthy"),
        "{out}"
    );
}
