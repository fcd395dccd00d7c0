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
/// Admin token every test node gets (long enough to be accepted; not a secret).
pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A fresh gossip key, as `vigil keys generate` prints it.
pub fn gossip_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

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

/// Members of one test cluster, sharing a config file and, unless a test says otherwise,
/// a gossip key: nodes are secure by default, and so are the clusters the tests start.
pub struct Cluster {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The gossip key every member gets through `VIGIL_SECURITY_GOSSIP_KEYS`, unless the
    /// config file sets keys or the member's own environment does.
    pub key: String,
    pub nodes: Vec<Proc>,
    pub seed: Option<SocketAddr>,
    client: reqwest::Client,
}

impl Cluster {
    /// The value of one sample of member `id`'s `/metrics` (name with labels, as printed),
    /// 0 if absent or unreachable.
    pub async fn metric(&self, id: &str, sample: &str) -> f64 {
        let url = self.node(id).url("/metrics");
        let Ok(r) = self.client().get(&url).send().await else {
            return 0.0;
        };
        let text = r.text().await.unwrap_or_default();
        metric_sample(&text, sample).unwrap_or(0.0)
    }

    /// Failures detected, summed over the members `ids`.
    pub async fn failures_detected(&self, ids: &[&str]) -> f64 {
        let mut sum = 0.0;
        for id in ids {
            sum += self.metric(id, "cluster_failures_detected_total").await;
        }
        sum
    }

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
            key: gossip_key(),
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
        let file_keys = std::fs::read_to_string(&self.config)
            .is_ok_and(|c| c.contains("gossip-keys") || c.contains("keyring-file"));
        let own_keys = env
            .iter()
            .any(|(k, _)| k == "VIGIL_SECURITY_GOSSIP_KEYS" || k == "VIGIL_SECURITY_KEYRING_FILE");
        if !file_keys && !own_keys {
            cmd.env("VIGIL_SECURITY_GOSSIP_KEYS", &self.key);
        }
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

/// The members `vigil up` starts and their HTTP ports before `--http-offset`.
pub const UP_MEMBERS: [(&str, u16); 4] = [
    ("gateway", 8080),
    ("coordinator", 8081),
    ("producer", 8082),
    ("consumer", 8083),
];

/// An HTTP offset and gossip base where all four `vigil up` members' ports are free now.
pub fn free_up_layout() -> (u16, u16) {
    for attempt in 0..200u16 {
        let http_offset = 20_000 + attempt * 17;
        let gossip_base = 40_000 + attempt * 13;
        let http_free = UP_MEMBERS
            .iter()
            .all(|(_, p)| TcpListener::bind(("127.0.0.1", p + http_offset)).is_ok());
        let gossip_free = (0..4).all(|i| UdpSocket::bind(("127.0.0.1", gossip_base + i)).is_ok());
        if http_free && gossip_free {
            return (http_offset, gossip_base);
        }
    }
    panic!("no free port layout");
}

/// The parent pid and the argument vector of a process, from /proc.
fn proc_parent_and_args(pid: i32) -> Option<(i32, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some((ppid, args))
}

/// The live children of `parent` with their arguments.
pub fn children_of(parent: Pid) -> Vec<(Pid, Vec<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (ppid, args) = proc_parent_and_args(pid)?;
            (ppid == parent.as_raw()).then_some((Pid::from_raw(pid), args))
        })
        .collect()
}

/// Whether the kernel reports `pid` stopped (SIGSTOP).
pub fn is_stopped(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("State:\tT"))
}

/// SIGSTOP, and waits until the kernel reports the process stopped.
pub fn freeze(pid: Pid) {
    kill(pid, Signal::SIGSTOP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_stopped(pid) {
        assert!(Instant::now() < deadline, "{pid} did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `vigil up` on private ports in a scratch directory. Dropping it resumes any stopped
/// member, asks `vigil up` to stop (its members leave), and kills whatever is left.
pub struct Up {
    pub dir: PathBuf,
    pub http_offset: u16,
    pub gossip_base: u16,
    out: PathBuf,
    child: Child,
    exited: bool,
    client: reqwest::Client,
}

/// Spawns `vigil up` in `dir` on the given port layout, its output (both streams) to `out`.
pub fn spawn_up(dir: &Path, out: &Path, http_offset: u16, gossip_base: u16) -> Child {
    let file = std::fs::File::create(out).unwrap();
    Command::new(BIN)
        .args([
            "up",
            "--http-offset",
            &http_offset.to_string(),
            "--gossip-base",
            &gossip_base.to_string(),
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap()
}

impl Up {
    /// Starts `vigil up` with a fresh port layout.
    pub fn start(name: &str) -> Up {
        let dir = scratch(name);
        let (http_offset, gossip_base) = free_up_layout();
        let out = dir.join("up.out");
        let child = spawn_up(&dir, &out, http_offset, gossip_base);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        Up {
            dir,
            http_offset,
            gossip_base,
            out,
            child,
            exited: false,
            client,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// What `vigil up` printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `http://127.0.0.1:PORT{path}` of a member.
    pub fn url(&self, member: &str, path: &str) -> String {
        let port = UP_MEMBERS
            .iter()
            .find(|(m, _)| *m == member)
            .unwrap_or_else(|| panic!("vigil up runs no {member}"))
            .1;
        format!("http://127.0.0.1:{}{path}", port + self.http_offset)
    }

    /// Waits until `vigil up` reports its cluster ready; returns how long it took.
    pub async fn wait_ready(&self, timeout: Duration) -> Duration {
        let start = Instant::now();
        while !self.output().contains("cluster ready: 4 HEALTHY") {
            assert!(
                start.elapsed() < timeout,
                "vigil up did not report a ready cluster within {timeout:?}:\n{}\n{}",
                self.output(),
                self.logs_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        start.elapsed()
    }

    /// The pid of the running `vigil node --id member`, child of `vigil up`.
    pub fn member_pid(&self, member: &str) -> Option<Pid> {
        children_of(self.pid())
            .into_iter()
            .find(|(_, args)| args.windows(2).any(|w| w[0] == "--id" && w[1] == member))
            .map(|(pid, _)| pid)
    }

    /// `GET /cluster/status` of a member, if it answers.
    pub async fn status(&self, member: &str) -> Option<Value> {
        let r = self
            .client
            .get(self.url(member, "/cluster/status"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// The HTTP status of `GET path` on a member, if it answers.
    pub async fn get_code(&self, member: &str, path: &str) -> Option<u16> {
        let r = self.client.get(self.url(member, path)).send().await.ok()?;
        Some(r.status().as_u16())
    }

    /// The HTTP status of `POST path` with a JSON body on a member, if it answers.
    pub async fn post_code(&self, member: &str, path: &str, body: &Value) -> Option<u16> {
        let r = self
            .client
            .post(self.url(member, path))
            .json(body)
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    /// The last `lines` lines of every member's log.
    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for (m, _) in UP_MEMBERS {
            let path = self.dir.join(format!(".vigil/logs/{m}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("---- {m} ({}) ----\n", path.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.exited {
            return;
        }
        let members = children_of(self.pid());
        for (pid, _) in &members {
            let _ = kill(*pid, Signal::SIGCONT);
        }
        let _ = kill(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Members still running (a supervisor that was killed cannot reap them).
        for (pid, args) in members {
            if proc_parent_and_args(pid.as_raw()).is_some_and(|(_, a)| a == args) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }
}

/// Busy-loop processes eating CPU (a loaded machine); killed on drop, also on a panic.
pub struct Hogs(Vec<Child>);

impl Hogs {
    /// Starts `n` shell busy loops.
    pub fn start(n: usize) -> Hogs {
        Hogs(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One sample's value in a Prometheus text body (`name{labels}` exactly as printed), if
/// present.
pub fn metric_sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
