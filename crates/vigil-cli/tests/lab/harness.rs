//! The multi-host fault lab from Rust: hosts are network namespaces set up by
//! `integration-tests/lab/netns-lab.sh`, each running one `vigil node` bound to its own
//! 10.x address.
//!
//! Data flow: [`Lab::new`] runs the script's `setup` under a unique name prefix (process id
//! and a counter) and subnet, so labs never collide; it skips (returns `None` and prints why)
//! when the machine cannot host a lab. [`Lab::start`] spawns `ip netns exec HOST vigil node`
//! (the child's PID is vigil's own: `ip netns exec` execs in place). [`Lab::statuses`] asks
//! every node for `/cluster/status` from inside its namespace: a short-lived thread enters
//! the namespace (`setns`) and opens the TCP connection there, because the root namespace
//! cannot reach the lab. Network faults go through the script (nftables rules in the
//! switch namespace); process faults are signals to the child. Every wait is a condition
//! polled against a deadline. Dropping the lab kills every node and tears the namespaces
//! down, also when the test panics (logs are then kept and their directory printed).
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigil");
/// The lab script (the same one users run by hand).
pub const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../integration-tests/lab/netns-lab.sh"
);
/// HTTP port of every node (each host has its own port space).
pub const HTTP_PORT: u16 = 8080;
/// Gossip port of every node.
pub const GOSSIP_PORT: u16 = 7946;
/// Admin token of every lab member (long enough to be accepted; not a secret).
pub const LAB_TOKEN: &str = "lab-admin-token-0123456789abcdef";

/// One lab at a time in this test binary: a lab is a few real clusters' worth of processes
/// on a 2-core machine, and a CPU-starved node looks like a failed one.
static SERIAL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);
const PREFIX: &str = "vlab";

/// What every node answered, indexed by host - 1 (`None`: no answer).
pub type Snapshot = Vec<Option<Value>>;

/// One `vigil node` process.
pub struct Node {
    /// Host index, 1-based.
    pub host: usize,
    child: Child,
    exited: bool,
}

impl Node {
    /// The process id (vigil's own).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

/// N hosts with their nodes; torn down on drop.
pub struct Lab {
    /// Name prefix of the namespaces (`{prefix}sw`, `{prefix}n1`, ...).
    pub prefix: String,
    /// The /24 inside the lab, e.g. `10.77.3`.
    pub subnet: String,
    /// Number of hosts.
    pub n: usize,
    state_dir: PathBuf,
    /// Where the nodes' logs go (kept when a test fails).
    pub log_dir: PathBuf,
    nodes: Vec<Option<Node>>,
    starts: Vec<usize>,
    /// The lab cluster's gossip key: its members seal gossip as a real cluster would.
    key: String,
    _serial: MutexGuard<'static, ()>,
}

/// Why this machine cannot run a lab, if it cannot.
fn unsupported() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("");
    if euid != "0" {
        return Some("not root (the lab creates network namespaces)".into());
    }
    for (tool, args) in [("ip", &["netns", "list"][..]), ("nft", &["--version"][..])] {
        let ok = Command::new(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!(
                "`{tool} {}` does not work (install iproute2 and nftables)",
                args.join(" ")
            ));
        }
    }
    // Root in a container may still lack CAP_SYS_ADMIN: try one namespace.
    let probe = format!("{PREFIX}probe{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    if !ok {
        return Some("`ip netns add` is not permitted here".into());
    }
    None
}

/// Tears down labs left by test processes that no longer exist (a killed `cargo test`).
fn remove_stale_labs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut stale: Vec<String> = Vec::new();
    for name in text.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, tail)) = rest.split_once('x') else {
            continue;
        };
        let Some((k, _)) = tail.split_once('-') else {
            continue;
        };
        if pid.parse::<u32>().is_err() || k.parse::<u32>().is_err() {
            continue;
        }
        let prefix = format!("{PREFIX}{pid}x{k}-");
        if !PathBuf::from(format!("/proc/{pid}")).exists() && !stale.contains(&prefix) {
            stale.push(prefix);
        }
    }
    for prefix in stale {
        eprintln!("lab: removing stale lab {prefix}");
        let _ = script_cmd(&prefix, "10.77.0", &std::env::temp_dir().join(&prefix))
            .arg("teardown")
            .status();
    }
}

fn script_cmd(prefix: &str, subnet: &str, state_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT)
        .env("LAB", prefix)
        .env("SUBNET", subnet)
        .env("STATE_DIR", state_dir)
        .env("VIGIL", BIN)
        .stdin(Stdio::null());
    cmd
}

impl Lab {
    /// Sets up `n` hosts, or returns `None` (printing why) when this machine cannot.
    pub fn new(test: &str, n: usize) -> Option<Lab> {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = unsupported() {
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
        remove_stale_labs();
        let k = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{PREFIX}{}x{k}-", std::process::id());
        let subnet = format!("10.77.{}", k % 256);
        let tmp = std::env::temp_dir();
        let state_dir = tmp.join(format!("{prefix}state"));
        let log_dir = tmp.join(format!("vigil-lab-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir).unwrap();
        let lab = Lab {
            prefix,
            subnet,
            n,
            state_dir,
            log_dir,
            nodes: (0..n).map(|_| None).collect(),
            starts: vec![0; n],
            key: {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
            },
            _serial: serial,
        };
        let t = Instant::now();
        lab.script(&["setup", &n.to_string()]);
        eprintln!(
            "lab {}: {n} hosts on {}.0/24 set up in {:.2} s",
            lab.prefix,
            lab.subnet,
            t.elapsed().as_secs_f64()
        );
        Some(lab)
    }

    /// Runs one script command; panics when it fails.
    pub fn script(&self, args: &[&str]) {
        let out = script_cmd(&self.prefix, &self.subnet, &self.state_dir)
            .args(args)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "netns-lab.sh {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The namespace of host `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    /// Member id of host `i`.
    pub fn id(i: usize) -> String {
        format!("n{i}")
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    /// Starts `vigil node` nI on host `i` with `extra` arguments. Host 1 bootstraps on its
    /// first start; every other start joins through hosts 1 and 2.
    pub fn start(&mut self, i: usize, extra: &[&str]) {
        assert!(self.nodes[i - 1].is_none(), "n{i} is already running");
        let seeds: Vec<String> = [1, 2]
            .into_iter()
            .filter(|&s| s != i && s <= self.n)
            .map(|s| format!("{}:{GOSSIP_PORT}", self.ip(s)))
            .collect();
        let first_boot = i == 1 && self.starts[0] == 0;
        let log = self
            .log_dir
            .join(format!("n{i}.{}.log", self.starts[i - 1]));
        let file = File::create(&log).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns(i),
            BIN,
            "node",
            "--id",
            &Lab::id(i),
        ])
        .args(["--http", &format!("{}:{HTTP_PORT}", self.ip(i))])
        .args(["--gossip", &format!("{}:{GOSSIP_PORT}", self.ip(i))]);
        if !first_boot && !seeds.is_empty() {
            cmd.args(["--seeds", &seeds.join(",")]);
        }
        // Members keep files (`.vigil/data/<id>.peers`) relative to where they run: the lab's
        // own directory, not the crate's.
        cmd.args(extra)
            .current_dir(&self.log_dir)
            .env("VIGIL_SECURITY_GOSSIP_KEYS", &self.key)
            .env("VIGIL_HTTP_ADMIN_TOKEN", LAB_TOKEN)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = cmd.spawn().expect("ip netns exec vigil node");
        self.starts[i - 1] += 1;
        self.nodes[i - 1] = Some(Node {
            host: i,
            child,
            exited: false,
        });
    }

    /// Starts every host's node (host 1 first, once it answers) and waits until every
    /// node sees all N HEALTHY with quorum; returns the time from the last start.
    pub fn start_all(&mut self, extra: &[&str], timeout: Duration) -> Duration {
        self.start_all_with(|_| extra.iter().map(|a| a.to_string()).collect(), timeout)
    }

    /// [`Lab::start_all`] with `extra_for(i)` as host `i`'s extra arguments.
    pub fn start_all_with(
        &mut self,
        extra_for: impl Fn(usize) -> Vec<String>,
        timeout: Duration,
    ) -> Duration {
        let first = extra_for(1);
        self.start(1, &first.iter().map(String::as_str).collect::<Vec<_>>());
        self.wait_until("n1 answers", Duration::from_secs(10), |s| s[0].is_some());
        for i in 2..=self.n {
            let extra = extra_for(i);
            self.start(i, &extra.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let n = self.n;
        self.wait_until(
            &format!("all {n} see {n} HEALTHY with quorum"),
            timeout,
            |s| all_converged(s, n),
        )
    }

    /// The running node on host `i`.
    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i - 1].as_ref().expect("node is running")
    }

    /// Sends `signal` to host `i`'s node.
    pub fn signal(&self, i: usize, signal: Signal) {
        kill(self.node(i).pid(), signal).unwrap();
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i - 1].take() {
            let _ = node.child.kill();
            let _ = node.child.wait();
            node.exited = true;
        }
    }

    /// SIGTERM (a graceful leave) and waits for the exit.
    pub fn stop(&mut self, i: usize, timeout: Duration) {
        self.signal(i, Signal::SIGTERM);
        let mut node = self.nodes[i - 1].take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if node.child.try_wait().unwrap().is_some() {
                node.exited = true;
                return;
            }
            if Instant::now() > deadline {
                let _ = node.child.kill();
                let _ = node.child.wait();
                panic!("n{i} did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP; returns once the kernel reports the process stopped.
    pub fn freeze(&self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
        let path = format!("/proc/{}/status", self.node(i).pid());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().any(|l| l.starts_with("State:\tT")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("n{i} did not stop");
    }

    /// SIGCONT.
    pub fn thaw(&self, i: usize) {
        self.signal(i, Signal::SIGCONT);
    }

    fn groups(groups: &[&[usize]]) -> Vec<String> {
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// Two-way partition: no group reaches another.
    pub fn partition(&self, groups: &[&[usize]]) {
        let g = Lab::groups(groups);
        let mut args = vec!["partition"];
        args.extend(g.iter().map(String::as_str));
        self.script(&args);
    }

    /// IPv4 from `from` to `to` is dropped; the other direction still works.
    pub fn oneway(&self, from: &[usize], to: &[usize]) {
        let g = Lab::groups(&[from, to]);
        self.script(&["oneway", &g[0], &g[1]]);
    }

    /// Host `i` reaches nobody and nobody reaches it.
    pub fn isolate(&self, i: usize) {
        self.script(&["isolate", &i.to_string()]);
    }

    /// Pulls host `i`'s cable.
    pub fn unplug(&self, i: usize) {
        self.script(&["unplug", &i.to_string()]);
    }

    /// Removes every partition and replugs every cable.
    pub fn heal(&self) {
        self.script(&["heal"]);
    }

    /// Drops `pct` % of host `i`'s outgoing frames.
    pub fn loss(&self, i: usize, pct: u32) {
        self.script(&["loss", &i.to_string(), &pct.to_string()]);
    }

    /// Delays host `i`'s outgoing IPv4 packets by `delay_ms` (± `jitter_ms`).
    pub fn delay(&self, i: usize, delay_ms: u32, jitter_ms: u32) {
        let (i, d, j) = (i.to_string(), delay_ms.to_string(), jitter_ms.to_string());
        self.script(&["netem", &i, &d, "0", &j]);
    }

    /// Removes host `i`'s loss or delay.
    pub fn clear_netem(&self, i: usize) {
        self.script(&["clear_netem", &i.to_string()]);
    }

    /// `/cluster/status` of host `i`'s node, asked from inside its namespace.
    pub fn status(&self, i: usize) -> Option<Value> {
        let ns = self.ns(i);
        let addr: SocketAddr = format!("{}:{HTTP_PORT}", self.ip(i)).parse().unwrap();
        std::thread::spawn(move || get_in_netns(&ns, addr, "/cluster/status"))
            .join()
            .ok()
            .flatten()
    }

    /// A port on 127.0.0.1, in the test's own namespace, that leads to host `i`'s HTTP port:
    /// each connection is made from inside the host's namespace by a thread that enters it,
    /// then bytes are copied both ways. So a browser outside the lab can open a node's
    /// console. Serves until the test process ends.
    pub fn forward_http(&self, i: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a forwarding port");
        let port = listener.local_addr().unwrap().port();
        let ns = self.ns(i);
        let addr: SocketAddr = format!("{}:{HTTP_PORT}", self.ip(i)).parse().unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let ns = ns.clone();
                std::thread::spawn(move || {
                    let Some(upstream) = connect_in_netns(&ns, addr) else {
                        return;
                    };
                    let _ = upstream.set_read_timeout(None);
                    let (Ok(mut from_client), Ok(mut to_node)) =
                        (client.try_clone(), upstream.try_clone())
                    else {
                        return;
                    };
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from_client, &mut to_node);
                        let _ = to_node.shutdown(Shutdown::Write);
                    });
                    let (mut from_node, mut to_client) = (upstream, client);
                    let _ = std::io::copy(&mut from_node, &mut to_client);
                    let _ = to_client.shutdown(Shutdown::Write);
                    let _ = up.join();
                });
            }
        });
        port
    }

    /// `POST path` with a JSON body to host `i`'s node, from inside its namespace: the
    /// HTTP status, or `None` if no answer came.
    pub fn post(&self, i: usize, path: &str, body: &str) -> Option<u16> {
        let ns = self.ns(i);
        let addr: SocketAddr = format!("{}:{HTTP_PORT}", self.ip(i)).parse().unwrap();
        let (path, body) = (path.to_string(), body.to_string());
        std::thread::spawn(move || post_in_netns(&ns, addr, &path, &body))
            .join()
            .ok()
            .flatten()
    }

    /// Every node's status, asked in parallel.
    pub fn statuses(&self) -> Snapshot {
        let handles: Vec<_> = (1..=self.n)
            .map(|i| {
                let ns = self.ns(i);
                let addr: SocketAddr = format!("{}:{HTTP_PORT}", self.ip(i)).parse().unwrap();
                let running = self.nodes[i - 1].is_some();
                std::thread::spawn(move || {
                    running
                        .then(|| get_in_netns(&ns, addr, "/cluster/status"))
                        .flatten()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    }

    /// Polls every node until `check` holds; returns how long it took. On timeout, fails
    /// the test with every node's view and the tail of every log.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Snapshot) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let snap = self.statuses();
            if check(&snap) {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\n{}\n{}",
                    views(&snap),
                    self.logs_tail(15)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Samples every node for `duration`, calling `each` with the time since the start
    /// and the snapshot; returns the number of samples.
    pub fn watch(&self, duration: Duration, mut each: impl FnMut(Duration, &Snapshot)) -> usize {
        let start = Instant::now();
        let mut samples = 0;
        while start.elapsed() < duration {
            let snap = self.statuses();
            each(start.elapsed(), &snap);
            samples += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        samples
    }

    /// The last `lines` lines of every node's latest log.
    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for i in 1..=self.n {
            let start = self.starts[i - 1].saturating_sub(1);
            let path = self.log_dir.join(format!("n{i}.{start}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("---- n{i} ({}) ----\n", path.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 1..=self.n {
            self.kill(i);
        }
        let t = Instant::now();
        let _ = script_cmd(&self.prefix, &self.subnet, &self.state_dir)
            .arg("teardown")
            .status();
        eprintln!(
            "lab {}: torn down in {:.2} s",
            self.prefix,
            t.elapsed().as_secs_f64()
        );
        if std::thread::panicking() {
            eprintln!("lab logs kept in {}", self.log_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// A TCP connection to `addr` made from inside namespace `ns` (this thread enters it;
/// sockets keep the namespace they were created in), with 2 s read and write timeouts.
fn connect_in_netns(ns: &str, addr: SocketAddr) -> Option<TcpStream> {
    let f = File::open(format!("/run/netns/{ns}")).ok()?;
    setns(f, CloneFlags::CLONE_NEWNET).ok()?;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(s)
}

/// One HTTP GET from inside namespace `ns` (this thread enters it; sockets keep the
/// namespace they were created in). `None` on any failure.
fn get_in_netns(ns: &str, addr: SocketAddr, path: &str) -> Option<Value> {
    let mut s = connect_in_netns(ns, addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// One `POST path` of a JSON body from inside namespace `ns`; the HTTP status code, or
/// `None` on any failure to get an answer.
fn post_in_netns(ns: &str, addr: SocketAddr, path: &str, body: &str) -> Option<u16> {
    let mut s = connect_in_netns(ns, addr)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.split(' ').nth(1)?.parse().ok()
}

/// The status of `member` in a node's view ("ABSENT" when not listed).
pub fn status_of<'a>(view: &'a Value, member: &str) -> &'a str {
    view["membership"][member]["status"]
        .as_str()
        .unwrap_or("ABSENT")
}

/// Whether the node holds quorum.
pub fn has_quorum(view: &Value) -> bool {
    view["hasQuorum"] == true
}

/// The leader a node names, if any.
pub fn leader(view: &Value) -> Option<&str> {
    view["leader"].as_str()
}

/// Whether this node sees `n` HEALTHY members and holds quorum.
pub fn sees_healthy(view: &Value, n: usize) -> bool {
    view["healthyNodes"] == n as u64 && has_quorum(view)
}

/// Whether every node answers, sees all `n` HEALTHY, holds quorum and names one leader.
pub fn all_converged(snap: &Snapshot, n: usize) -> bool {
    let mut leaders = std::collections::BTreeSet::new();
    for v in snap {
        match v {
            Some(v) if sees_healthy(v, n) => {
                leaders.insert(leader(v).map(str::to_string));
            }
            _ => return false,
        }
    }
    leaders.len() == 1
}

/// One line per node: quorum, leader and the status it gives each member.
pub fn views(snap: &Snapshot) -> String {
    let mut out = String::new();
    for (k, v) in snap.iter().enumerate() {
        match v {
            None => out.push_str(&format!("n{}: no answer\n", k + 1)),
            Some(v) => {
                let members: Vec<String> = v["membership"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(id, r)| {
                                let seat = if r["voter"] == true { "" } else { "(no seat)" };
                                format!("{id}={}{seat}", r["status"].as_str().unwrap_or("?"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push_str(&format!(
                    "n{}: quorum={} leader={} voters={} [{}]\n",
                    k + 1,
                    v["hasQuorum"],
                    v["leader"],
                    v["voters"],
                    members.join(" ")
                ));
            }
        }
    }
    out
}
