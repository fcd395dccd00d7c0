//! deploy/ read offline (no Docker engine, no Kubernetes cluster here): the compose file only
//! sets `VIGIL_*` variables a member accepts, the image builds the features the compose file
//! needs, stripped and as a non-root user, and the Kubernetes manifests wire what the issue
//! asks (probes, graceful leave, secrets, seeds by DNS). Schema validation of the manifests
//! is `kubernetes-validate` in deploy/check.sh.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil::config::keys;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &str) -> String {
    let p = deploy_dir().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml_docs(path: &str) -> Vec<Value> {
    read(path)
        .split("\n---")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| {
            let mut v: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(d).unwrap_or_else(|e| panic!("{path}: {e}"));
            // `<<: *vigil-env`: the compose file's shared environment
            v.apply_merge().unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::to_value(v).unwrap()
        })
        .collect()
}

/// Every `VIGIL_*` name in a text.
fn vigil_vars(text: &str) -> BTreeSet<String> {
    regex::Regex::new(r"\bVIGIL_[A-Z0-9_]+")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

#[test]
fn every_vigil_variable_the_deployment_sets_names_a_key() {
    let compose = yaml_docs("docker-compose.yml").remove(0);
    let mut set = BTreeSet::new();
    for (name, service) in compose["services"].as_object().unwrap() {
        for var in service["environment"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if var.starts_with("VIGIL_") {
                set.insert((format!("docker-compose.yml: {name}"), var.clone()));
            }
        }
    }
    for var in vigil_vars(&read("vigil-entrypoint.sh")) {
        set.insert(("vigil-entrypoint.sh".into(), var));
    }
    for var in vigil_vars(&read("kubernetes/statefulset.yaml")) {
        set.insert(("kubernetes/statefulset.yaml".into(), var));
    }
    assert!(
        set.iter()
            .any(|(o, v)| o.ends_with(": producer") && v == "VIGIL_SERVICES_KAFKA_BROKERS"),
        "the shared environment (<<: *vigil-env) was read: {set:?}"
    );
    let refused: Vec<String> = set
        .iter()
        .filter_map(|(origin, var)| {
            keys::unknown_env_reason(var).map(|why| format!("{origin}: {var}: {why}"))
        })
        .collect();
    assert!(
        refused.is_empty(),
        "a member would refuse:\n{}",
        refused.join("\n")
    );
}

#[test]
fn the_image_builds_what_the_compose_file_uses_stripped_and_not_as_root() {
    let compose = yaml_docs("docker-compose.yml").remove(0);
    let dockerfile = read("Dockerfile");
    let default_features: BTreeSet<String> = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG FEATURES="))
        .expect("Dockerfile: ARG FEATURES=...")
        .split([',', ' '])
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect();
    assert!(
        dockerfile.contains("--features \"$FEATURES\""),
        "the build must use FEATURES"
    );
    for (name, service) in compose["services"].as_object().unwrap() {
        let env = &service["environment"];
        let uses_kafka = env["VIGIL_SERVICES_KAFKA_BROKERS"]
            .as_str()
            .is_some_and(|v| !v.is_empty());
        if !uses_kafka || service["build"].is_null() {
            continue;
        }
        let features: BTreeSet<String> = match service["build"]["args"]["FEATURES"].as_str() {
            Some(f) => f
                .split([',', ' '])
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect(),
            None => default_features.clone(),
        };
        assert!(
            features.contains("kafka"),
            "{name} sets VIGIL_SERVICES_KAFKA_BROKERS but its image is built with {features:?}"
        );
    }
    assert!(default_features.contains("kafka"), "{default_features:?}");
    assert!(
        dockerfile.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"),
        "a stripped binary"
    );
    assert!(
        dockerfile.contains("CARGO_PROFILE_RELEASE_DEBUG=0"),
        "no debug info"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("Dockerfile: USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "a numeric non-root user (runAsNonRoot checks it): USER {user}"
    );
}

#[test]
fn the_kubernetes_manifests_wire_probes_leave_secrets_and_dns_seeds() {
    let mut by_kind = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(deploy_dir().join("kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = format!("kubernetes/{}", path.file_name().unwrap().to_string_lossy());
        for doc in yaml_docs(&name) {
            let kind = doc["kind"].as_str().unwrap().to_string();
            by_kind.entry(kind).or_insert_with(Vec::new).push(doc);
        }
    }
    let sts = &by_kind["StatefulSet"][0];
    let headless = by_kind["Service"]
        .iter()
        .find(|s| s["spec"]["clusterIP"] == "None")
        .expect("a headless Service");
    assert_eq!(sts["spec"]["serviceName"], headless["metadata"]["name"]);
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .unwrap();
    assert_eq!(pre_stop[..2], [Value::from("vigil"), Value::from("leave")]);
    let env: Vec<&Value> = c["env"].as_array().unwrap().iter().collect();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).copied();
    for secret in ["VIGIL_SECURITY_GOSSIP_KEYS", "VIGIL_HTTP_ADMIN_TOKEN"] {
        let e = var(secret).unwrap_or_else(|| panic!("{secret}"));
        assert_eq!(
            e["valueFrom"]["secretKeyRef"]["name"], "vigil-secrets",
            "{e}"
        );
    }
    let seeds = var("VIGIL_NODE_SEEDS").unwrap()["value"].as_str().unwrap();
    let headless_name = headless["metadata"]["name"].as_str().unwrap();
    assert!(
        seeds
            .split(',')
            .any(|s| s.starts_with(&format!("{headless_name}."))),
        "the headless Service's name is a seed: {seeds}"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let pdb = &by_kind["PodDisruptionBudget"][0];
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        sts["spec"]["selector"]["matchLabels"]
    );
}
