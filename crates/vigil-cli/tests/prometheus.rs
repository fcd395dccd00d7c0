//! Debian's real Prometheus (package `prometheus`) scrapes a `vigil up` cluster and serves the
//! seed's four metrics back through its query API; it loads `deploy/prometheus/alerts.yml`
//! and evaluates every rule, and it parses every PromQL expression of the Grafana dashboards.
//!
//! Needs `/usr/bin/prometheus` (scripts/test.sh installs it); set VIGIL_SKIP_PROMETHEUS=1 to
//! skip where it cannot be installed. Every wait is a condition polled against a deadline.

mod harness;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct Owned {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Owned {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Owned {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Owned { name, child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits up to `patience` before SIGKILL; returns the exit code.
    fn stop(&mut self, patience: Duration) -> Option<i32> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return s.code();
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop within {patience:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// An HTTP offset and gossip base where all four members' ports are free now, picked at
/// random so that parallel runs on one machine do not collide.
fn free_layout() -> (u16, u16) {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let http_offset = 12_000 + (x % 40_000) as u16;
        let gossip_base = 20_000 + ((x >> 16) % 40_000) as u16;
        let http_free =
            (8080..8084).all(|p| TcpListener::bind(("127.0.0.1", p + http_offset)).is_ok());
        let gossip_free = (0..4).all(|i| UdpSocket::bind(("127.0.0.1", gossip_base + i)).is_ok());
        if http_free && gossip_free {
            return (http_offset, gossip_base);
        }
    }
    panic!("no free port layout");
}

/// Polls `check` every 200 ms until it returns `Some`, or fails the test after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, logs: &[&Owned], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            let tails: Vec<String> = logs
                .iter()
                .map(|o| {
                    let text = o.log_text();
                    let lines: Vec<&str> = text.lines().collect();
                    format!(
                        "---- {} ----\n{}",
                        o.name,
                        lines[lines.len().saturating_sub(20)..].join("\n")
                    )
                })
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// `GET /api/v1/query`: the result vector as (labels, value) pairs, or the error text.
async fn query(
    client: &reqwest::Client,
    base: &str,
    promql: &str,
) -> Result<Vec<(Value, f64)>, String> {
    let body: Value = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    let result = &body["data"]["result"];
    if body["data"]["resultType"] == "scalar" {
        let v = result[1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        return Ok(vec![(Value::Null, v)]);
    }
    Ok(result
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let v = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (s["metric"].clone(), v)
        })
        .collect())
}

/// A condition every series of a metric must satisfy.
type Holds = fn(f64) -> bool;

fn prometheus_binary() -> Option<PathBuf> {
    let candidates = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn dashboard_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(deploy_dir().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut panels: Vec<&Value> = Vec::new();
        for p in d["panels"].as_array().into_iter().flatten() {
            panels.push(p);
            panels.extend(p["panels"].as_array().into_iter().flatten());
        }
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    let name = path.file_name().unwrap().to_string_lossy();
                    out.push((format!("{name}: {}", p["title"]), e.to_string()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_vigil_up_and_serves_the_seeds_metrics() {
    let Some(prometheus) = prometheus_binary() else {
        if std::env::var_os("VIGIL_SKIP_PROMETHEUS").is_some() {
            eprintln!("prometheus not found; skipped (VIGIL_SKIP_PROMETHEUS is set)");
            return;
        }
        panic!("prometheus not found: apt-get install prometheus (or set VIGIL_SKIP_PROMETHEUS=1)");
    };
    let _guard = harness::exclusive().await;
    let dir = harness::scratch("prometheus");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();

    // The cluster.
    let (http_offset, gossip_base) = free_layout();
    let mut up = Owned::spawn(
        "vigil up",
        Command::new(harness::BIN)
            .args(["up", "--http-offset", &http_offset.to_string()])
            .args(["--gossip-base", &gossip_base.to_string()])
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .current_dir(&dir),
        dir.join("up.out"),
    );
    let coordinator = format!("http://127.0.0.1:{}/cluster/status", 8081 + http_offset);
    wait_for(
        "vigil up: the coordinator sees 4 members and quorum",
        Duration::from_secs(30),
        &[&up],
        || async {
            let s = get_json(&client, &coordinator).await?;
            (s["totalNodes"] == 4 && s["hasQuorum"] == true).then_some(())
        },
    )
    .await;

    // Prometheus, with the project's alert rules.
    std::fs::copy(
        deploy_dir().join("prometheus/alerts.yml"),
        dir.join("alerts.yml"),
    )
    .unwrap();
    // Targets come from one member's service discovery endpoint, as in
    // deploy/prometheus/prometheus-local.yml: the coordinator lists all four.
    let coordinator = services_list()
        .into_iter()
        .find(|(s, _)| *s == "coordinator")
        .unwrap()
        .1
        + http_offset;
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: [alerts.yml]\n\
         scrape_configs:\n  - job_name: vigil\n    http_sd_configs:\n\
         \x20     - url: http://127.0.0.1:{coordinator}/cluster/prometheus-targets\n\
         \x20       refresh_interval: 1s\n"
    );
    std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
    let prom_port = harness::free_tcp_port();
    let base = format!("http://127.0.0.1:{prom_port}");
    let started = Instant::now();
    let prom = Owned::spawn(
        "prometheus",
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .current_dir(&dir),
        dir.join("prometheus.log"),
    );
    let logs = [&up, &prom];

    wait_for(
        "prometheus ready",
        Duration::from_secs(30),
        &logs,
        || async {
            let r = client.get(format!("{base}/-/ready")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    // The target list stays empty for about 5 s (discovery updates are throttled).
    wait_for("4 targets up", Duration::from_secs(45), &logs, || async {
        let t = get_json(&client, &format!("{base}/api/v1/targets?state=active")).await?;
        let targets = t["data"]["activeTargets"].as_array()?;
        (targets.len() == 4 && targets.iter().all(|t| t["health"] == "up")).then_some(())
    })
    .await;
    let targets_up = started.elapsed();

    // The seed's four metrics, read back through the query API, one series per service.
    let seed_metrics: [(&str, Holds); 4] = [
        ("cluster_heartbeats_sent_total", |v| v > 0.0),
        ("cluster_heartbeats_received_total", |v| v > 0.0),
        ("cluster_failures_detected_total", |v| v >= 0.0),
        ("cluster_healthy_nodes", |v| v == 4.0),
    ];
    for (name, ok) in seed_metrics {
        let series = wait_for(
            &format!("{name}: 4 series that hold"),
            Duration::from_secs(20),
            &logs,
            || async {
                let s = query(&client, &base, name).await.ok()?;
                let good = s.len() == 4 && s.iter().all(|(_, v)| ok(*v));
                good.then_some(s)
            },
        )
        .await;
        let mut by_service: Vec<String> = series
            .iter()
            .map(|(m, v)| format!("{}={v}", m["service"].as_str().unwrap_or("?")))
            .collect();
        by_service.sort();
        let services: Vec<&str> = series
            .iter()
            .filter_map(|(m, _)| m["service"].as_str())
            .collect();
        for (s, _) in services_list() {
            assert!(services.contains(&s), "{name}: no series for {s}");
        }
        println!("prometheus: {name}: {}", by_service.join(" "));
    }
    let quorum = query(&client, &base, "sum(cluster_has_quorum)")
        .await
        .unwrap();
    assert_eq!(quorum.first().map(|q| q.1), Some(4.0), "{quorum:?}");

    // The alert rules are loaded and evaluate without error; none fires on a healthy cluster.
    let rules = wait_for(
        "every rule evaluated",
        Duration::from_secs(20),
        &logs,
        || async {
            let r = get_json(&client, &format!("{base}/api/v1/rules")).await?;
            let rules: Vec<Value> = r["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = !rules.is_empty()
                && rules.iter().all(|r| {
                    r["health"] == "ok"
                        && r["lastEvaluation"]
                            .as_str()
                            .is_some_and(|t| !t.starts_with("0001"))
                });
            evaluated.then_some(rules)
        },
    )
    .await;
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for alert in [
        "VigilMemberFailed",
        "VigilQuorumLost",
        "VigilHealthScoreLow",
        "VigilFailureDetectionSlow",
    ] {
        assert!(names.contains(&alert), "{alert} not loaded: {names:?}");
    }
    let firing: Vec<&Value> = rules.iter().filter(|r| r["state"] == "firing").collect();
    assert!(
        firing.is_empty(),
        "alerts firing on a healthy cluster: {firing:?}"
    );

    // Every dashboard expression parses and runs in this Prometheus.
    let mut bad = Vec::new();
    let exprs = dashboard_expressions();
    for (origin, expr) in &exprs {
        let promql = expr.replace("$__rate_interval", "1m");
        if let Err(e) = query(&client, &base, &promql).await {
            bad.push(format!("{origin}: {expr}\n    {e}"));
        }
    }
    assert!(
        bad.is_empty(),
        "dashboard queries rejected by Prometheus:\n{}",
        bad.join("\n")
    );

    println!(
        "MEASURED: prometheus start -> 4 vigil targets up: {:.1} s; {} rules evaluated, {} dashboard queries accepted",
        targets_up.as_secs_f64(),
        rules.len(),
        exprs.len()
    );

    drop(prom);
    assert_eq!(
        up.stop(Duration::from_secs(15)),
        Some(0),
        "{}",
        up.log_text()
    );
    for p in 8080..8084 {
        assert!(
            TcpListener::bind(("127.0.0.1", p + http_offset)).is_ok(),
            "port {} still bound after vigil up stopped",
            p + http_offset
        );
    }
}

fn services_list() -> [(&'static str, u16); 4] {
    [
        ("gateway", 8080),
        ("coordinator", 8081),
        ("producer", 8082),
        ("consumer", 8083),
    ]
}
