//! HTTPS on real processes: three members (gateway, producer, consumer) serve their API over
//! TLS with certificates from a private CA, advertise `https://` addresses, route log events to
//! each other over TLS, refuse plain HTTP, and the CLI talks to them with `--cacert`.

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{run_vigil, Cluster};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};

const IDS: [&str; 3] = ["gw", "prod", "cons"];

/// Writes `ca.pem`, `cert.pem` (leaf for localhost and 127.0.0.1, signed by the CA) and
/// `key.pem` into `dir`.
fn private_ca(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
}

struct Tls {
    cluster: Cluster,
    client: reqwest::Client,
}

impl Tls {
    fn url(&self, id: &str, path: &str) -> String {
        format!("https://{}{path}", self.cluster.node(id).http)
    }

    async fn get(&self, id: &str, path: &str) -> Option<Value> {
        let r = self.client.get(self.url(id, path)).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn all_see_three_healthy(&self) -> bool {
        for id in IDS {
            match self.get(id, "/cluster/status").await {
                Some(s) if s["healthyNodes"] == 3 && s["hasQuorum"] == true => {}
                _ => return false,
            }
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_serve_and_call_each_other_over_https_and_refuse_plain_http() {
    let _guard = harness::exclusive().await;
    let dir = harness::scratch("tls-certs");
    private_ca(&dir);
    let config = format!(
        "http:\n  tls-cert: {0}/cert.pem\n  tls-key: {0}/key.pem\n  tls-ca: {0}/ca.pem\n",
        dir.display()
    );
    let mut cluster = Cluster::new("tls", &config);
    for (id, role) in IDS.iter().zip(["gateway", "producer", "consumer"]) {
        cluster.start_role(id, role, &[]);
    }
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let tls = Tls { cluster, client };
    tls.cluster
        .wait_for(
            "3 HEALTHY with quorum everywhere, asked over HTTPS",
            Duration::from_secs(30),
            || tls.all_see_three_healthy(),
        )
        .await;

    // Every member advertises the scheme its peers must use.
    let members = tls.get("gw", "/cluster/members").await.unwrap();
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    for m in members {
        let addr = m["httpAddress"].as_str().unwrap_or_default();
        assert!(addr.starts_with("https://127.0.0.1:"), "{m}");
    }

    // Plain HTTP on the same port gets no answer: the TLS handshake refuses it.
    let plain = tls
        .cluster
        .get_json(&tls.cluster.node("gw").url("/cluster/status"))
        .await;
    assert!(plain.is_none(), "plain HTTP answered: {plain:?}");

    // gateway -> producer -> consumer, every hop over TLS (the embedded delivery path).
    let events: Vec<Value> = (0..5)
        .map(|i| json!({ "service": "tls-test", "level": "INFO", "message": format!("m{i}") }))
        .collect();
    // A 503 for want of quorum accepted nothing and means "not now" (a member of this 3-node
    // cluster may drop quorum for a moment on a loaded machine): ask again. Anything else but
    // 202 is a failure (a 503 past the ack timeout keeps the events queued: no retry).
    tls.cluster
        .wait_for(
            "the batch accepted (202) through the gateway",
            Duration::from_secs(20),
            || async {
                let r = tls
                    .client
                    .post(tls.url("gw", "/api/logs"))
                    .json(&events)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                let no_quorum = status == 503 && body.contains("no quorum");
                assert!(status == 202 || no_quorum, "{status}: {body}");
                status == 202
            },
        )
        .await;
    tls.cluster
        .wait_for(
            "5 events stored, read through the gateway",
            Duration::from_secs(20),
            || async {
                let Some(stats) = tls.get("gw", "/api/logs/stats").await else {
                    return false;
                };
                stats["byService"]["tls-test"] == 5
            },
        )
        .await;

    // The CLI trusts the private CA with --cacert and refuses the node without it.
    let addr = tls.url("gw", "");
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let (code, out, err) = run_vigil(
        &["status", "--addr", &addr, "--cacert", ca],
        &[],
        &tls.cluster.dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_vigil(&["status", "--addr", &addr], &[], &tls.cluster.dir);
    assert_ne!(code, 0, "an unknown CA was trusted: {out}{err}");
}

#[test]
fn a_certificate_that_does_not_load_stops_the_node_and_names_the_key() {
    let dir = harness::scratch("tls-bad");
    std::fs::write(dir.join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.join("key.pem"), "not a key\n").unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let (code, out, err) = run_vigil(
        &[
            "node",
            "--id",
            "bad",
            "--http",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
        ],
        &[
            ("VIGIL_HTTP_TLS_CERT", cert.to_str().unwrap()),
            ("VIGIL_HTTP_TLS_KEY", key.to_str().unwrap()),
        ],
        &dir,
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("http.tls-cert"), "{err}");
}
