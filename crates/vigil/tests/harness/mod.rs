//! Real `vigil node` processes on loopback, for the end-to-end tests.
//!
//! Ports are picked free by the OS; every wait is a condition polled against a deadline;
//! every process is killed when its handle drops, and a failed wait prints the tail of
//! every member's log.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigil");
/// Admin token every test node gets.
pub const TOKEN: &str = "test-admin-token";

static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Serializes tests that start clusters, so they do not starve each other of CPU
/// (a starved node looks like a failed one).
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

fn fresh(port: u16) -> bool {
    let mut ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    ports.get_or_insert_with(HashSet::new).insert(port)
}

/// A UDP port nobody uses now.
pub fn free_udp_port() -> u16 {
    loop {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if fresh(port) {
            return port;
        }
    }
}

/// A TCP port nobody uses now.
pub fn free_tcp_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if fresh(port) {
            return port;
        }
    }
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One member process.
pub struct Proc {
    pub id: String,
    pub http: SocketAddr,
    pub gossip: SocketAddr,
    pub log: PathBuf,
    /// Extra environment it was started with (to restart it the same way).
    pub env: Vec<(String, String)>,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Proc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.exited = Some(s);
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Members of one test cluster, sharing a config file.
pub struct Cluster {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub nodes: Vec<Proc>,
    pub seed: Option<SocketAddr>,
    client: reqwest::Client,
}

impl Cluster {
    /// An empty cluster with `config_yaml` as every member's vigil.yml.
    pub fn new(name: &str, config_yaml: &str) -> Cluster {
        let dir = scratch(name);
        let config = dir.join("vigil.yml");
        std::fs::write(&config, config_yaml).unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        Cluster {
            dir,
            config,
            nodes: Vec::new(),
            seed: None,
            client,
        }
    }

    /// Starts a member; the first one bootstraps and is everyone's seed.
    pub fn start(&mut self, id: &str) -> usize {
        let gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        self.start_at(id, gossip, http)
    }

    /// Starts a member on given addresses (a restart reuses the old ones).
    pub fn start_at(&mut self, id: &str, gossip: SocketAddr, http: SocketAddr) -> usize {
        self.start_role_at(id, "member", &[], gossip, http)
    }

    /// Starts a member with a role (its service runs) and extra environment.
    pub fn start_role(&mut self, id: &str, role: &str, env: &[(String, String)]) -> usize {
        let gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        self.start_role_at(id, role, env, gossip, http)
    }

    /// [`Cluster::start_role`] on given addresses (a restart reuses the old ones).
    pub fn start_role_at(
        &mut self,
        id: &str,
        role: &str,
        env: &[(String, String)],
        gossip: SocketAddr,
        http: SocketAddr,
    ) -> usize {
        let n = self.nodes.iter().filter(|p| p.id == id).count();
        let log = self.dir.join(format!("{id}.{n}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(["node", "--id", id, "--role", role])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["--http", &http.to_string(), "--gossip", &gossip.to_string()])
            .arg("--config")
            .arg(&self.config)
            .env("VIGIL_HTTP_ADMIN_TOKEN", TOKEN)
            // Relative paths (the consumer's default SQLite file) land in the scratch dir.
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdout(file.try_clone().unwrap()).stderr(file);
        if let Some(seed) = self.seed.filter(|s| *s != gossip) {
            cmd.args(["--seeds", &seed.to_string()]);
        }
        let child = cmd.spawn().unwrap();
        if self.seed.is_none() {
            self.seed = Some(gossip);
        }
        self.nodes.push(Proc {
            id: id.into(),
            http,
            gossip,
            log,
            env: env.to_vec(),
            child,
            exited: None,
        });
        self.nodes.len() - 1
    }

    /// The latest process started with `id`.
    pub fn node(&self, id: &str) -> &Proc {
        self.nodes.iter().rev().find(|p| p.id == id).unwrap()
    }

    pub fn node_mut(&mut self, id: &str) -> &mut Proc {
        self.nodes.iter_mut().rev().find(|p| p.id == id).unwrap()
    }

    /// `GET /cluster/status` of a member, if it answers.
    pub async fn status(&self, id: &str) -> Option<Value> {
        self.get_json(&self.node(id).url("/cluster/status")).await
    }

    pub async fn get_json(&self, url: &str) -> Option<Value> {
        let r = self.client.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The status of `member` as `observer` sees it ("ABSENT" when not listed).
    pub async fn status_of(&self, observer: &str, member: &str) -> Option<String> {
        let s = self.status(observer).await?;
        Some(
            s["membership"][member]["status"]
                .as_str()
                .unwrap_or("ABSENT")
                .to_string(),
        )
    }

    /// Polls `check` every 100 ms until it holds; returns how long it took.
    /// On timeout, fails the test with the tail of every log.
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if check().await {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\n{}",
                    self.logs_tail(25)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether every listed observer sees exactly `expected` statuses for the members named.
    pub async fn all_see(&self, observers: &[&str], member: &str, status: &str) -> bool {
        for o in observers {
            if self.status_of(o, member).await.as_deref() != Some(status) {
                return false;
            }
        }
        true
    }

    /// Whether `id` sees `n` HEALTHY members and quorum.
    pub async fn sees_healthy(&self, id: &str, n: u64) -> bool {
        match self.status(id).await {
            Some(s) => s["healthyNodes"] == n && s["hasQuorum"] == true,
            None => false,
        }
    }

    /// Whether every member in `ids` sees `n` HEALTHY members and quorum.
    pub async fn all_see_healthy(&self, ids: &[&str], n: u64) -> bool {
        for id in ids {
            if !self.sees_healthy(id, n).await {
                return false;
            }
        }
        true
    }

    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for p in &self.nodes {
            let text = p.log_text();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("---- {} ({}) ----\n", p.id, p.log.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// Runs the binary to completion with `args` and extra environment.
pub fn run_vigil(args: &[&str], env: &[(&str, &str)], dir: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
