//! An application outside the workspace depends on `vigil` by path and uses only the
//! documented API: three processes of it form a cluster on loopback, each prints the changes
//! it sees, and the test watches one of them see `member-joined` for the others, then
//! `member-failed` for one that is killed with SIGKILL.
//!
//! The application is a Cargo project written into a scratch directory, with the
//! workspace's `Cargo.lock` (same versions) and built `--offline` into the same target
//! directory as the tests, so the dependencies already built are reused.

mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MAIN: &str = r#"
use vigil::{Builder, Config, Update};

#[tokio::main]
async fn main() -> Result<(), vigil::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (id, gossip, key) = (&args[0], &args[1], &args[2]);
    let node = Builder::new(Config::default())
        .id(id)
        .gossip(gossip)
        .seeds(&args[3..])
        .gossip_key(key)
        .admin_token("outside-app-admin-token-0123456789")
        .without_http()
        .start()
        .await?;
    println!("started {} {}", node.id(), node.gossip_addr());
    let mut updates = node.subscribe();
    while let Some(update) = updates.recv().await {
        if let Update::Change(change) = update {
            if let Some(member) = change.event.member() {
                println!("{} {} {}", change.event.name(), member.id, member.status);
            }
        }
    }
    Ok(())
}
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Writes and builds the application; returns its binary.
fn build_app() -> PathBuf {
    let dir = harness::scratch("outside-app");
    // the library crate, beside this binary's crate
    let vigil = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vigil")
        .canonicalize()
        .unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "vigil-outside-app"
version = "0.0.0"
edition = "2021"
publish = false

# not part of any workspace above the scratch directory
[workspace]

[dependencies]
vigil = {{ path = "{}" }}
tokio = {{ version = "1", features = ["full"] }}

# the workspace's profiles, so that the dependencies it built are reused
[profile.dev]
opt-level = 1

[profile.dev.package."*"]
opt-level = 2
"#,
            vigil.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN).unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = target_dir();
    let started = Instant::now();
    let output = Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the outside application does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "MEASURED: outside application built in {} s",
        started.elapsed().as_secs()
    );
    target.join("debug/vigil-outside-app")
}

/// One process of the application; its stdout lines arrive on `lines`.
struct App {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl App {
    fn start(bin: &Path, id: &str, gossip: &str, key: &str, seeds: &[&str]) -> App {
        // the library keeps `.vigil/data/<id>.peers` where the app runs: not in the crate
        let mut child = Command::new(bin)
            .current_dir(bin.parent().unwrap())
            .args([id, gossip, key])
            .args(seeds)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        App {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`.
    fn expect(&mut self, prefix: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.seen.iter().any(|l| l.starts_with(prefix)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no `{prefix}` within {within:?}; printed {:?}", self.seen),
            }
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_outside_the_workspace_sees_joins_and_a_killed_member_fail() {
    let bin = build_app();
    let _guard = harness::exclusive().await;
    let key = harness::gossip_key();
    let addr = |_| format!("127.0.0.1:{}", harness::free_udp_port());
    let gossip: Vec<String> = (0..3).map(addr).collect();
    let mut a1 = App::start(&bin, "a1", &gossip[0], &key, &[]);
    a1.expect("started a1", Duration::from_secs(10));
    let mut a2 = App::start(&bin, "a2", &gossip[1], &key, &[&gossip[0]]);
    let mut a3 = App::start(&bin, "a3", &gossip[2], &key, &[&gossip[0]]);
    for (app, others) in [(&mut a1, ["a2", "a3"]), (&mut a2, ["a1", "a3"])] {
        for other in others {
            app.expect(&format!("member-joined {other} "), Duration::from_secs(30));
        }
    }
    a3.expect("member-joined a2 ", Duration::from_secs(30));
    let killed = Instant::now();
    a3.child.kill().unwrap(); // SIGKILL
    a3.child.wait().unwrap();
    a1.expect("member-failed a3 FAILED", Duration::from_secs(20));
    println!(
        "MEASURED: member-failed in the outside application {} ms after SIGKILL",
        killed.elapsed().as_millis()
    );
}
