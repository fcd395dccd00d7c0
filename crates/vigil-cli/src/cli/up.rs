//! `vigil up`: a local cluster of the seed's four services, supervised.
//!
//! The binary re-executes itself as `vigil node ...` once per role (its service from `vigil_logs`),
//! each child in its own process group (so a terminal Ctrl-C reaches only the supervisor,
//! which then asks each child to leave with SIGTERM), each with its log in `--log-dir`.
//! One supervisor task per child restarts it with exponential backoff when it dies; the
//! restarted process has a new generation, so peers see a rejoin, not a zombie.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use vigil::api::model::StatusDto;
use vigil_logs::{RoleSpec, LOCAL_CLUSTER};

/// Flags of `vigil up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Configuration file passed to every member.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Host every member binds and advertises.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// First gossip port (gateway +0, coordinator +1, producer +2, consumer +3).
    #[arg(long, default_value_t = 7946)]
    pub gossip_base: u16,
    /// Added to the seed's HTTP ports 8080-8083 (to run beside something on those ports).
    #[arg(long, default_value_t = 0)]
    pub http_offset: u16,
    /// Where each member's log goes.
    #[arg(long, default_value = ".vigil/logs")]
    pub log_dir: PathBuf,
    /// Log format of `up` itself and of every member: text or json.
    #[arg(long, value_enum, default_value_t = UpLogFormat::Text)]
    pub log_format: UpLogFormat,
}

/// `--log-format` of `vigil up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpLogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for a log shipper).
    Json,
}

/// `println!` that survives a closed standard output (`vigil up | head`): the cluster keeps
/// running, only its messages are lost.
macro_rules! say {
    ($($t:tt)*) => {
        let _ = crate::cli::emitln(&format!($($t)*));
    };
}

/// Backoff between restarts of a child that keeps dying.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A child that ran this long resets its backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a child may take to leave before it is killed.
const LEAVE_PATIENCE: Duration = Duration::from_secs(5);

struct Member {
    spec: RoleSpec,
    args: Vec<String>,
    log: PathBuf,
    http: String,
    gossip: String,
}

fn plan(args: &UpArgs) -> Vec<Member> {
    let gossip =
        |spec: &RoleSpec| format!("{}:{}", args.host, args.gossip_base + spec.gossip_offset);
    // Every member gets every gossip address as a seed, the bootstrap member's first: it
    // founds the cluster on a cold start, a restarted member (the bootstrap one included)
    // rejoins through whichever seeds are up.
    let mut seeds: Vec<String> = LOCAL_CLUSTER
        .iter()
        .filter(|r| r.bootstrap)
        .map(gossip)
        .collect();
    seeds.extend(LOCAL_CLUSTER.iter().filter(|r| !r.bootstrap).map(gossip));
    let seeds = seeds.join(",");
    LOCAL_CLUSTER
        .iter()
        .map(|spec| {
            let http = format!("{}:{}", args.host, spec.http_port + args.http_offset);
            let mut argv = vec![
                "node".to_string(),
                "--id".into(),
                spec.name.into(),
                "--role".into(),
                spec.name.into(),
                "--http".into(),
                http.clone(),
                "--gossip".into(),
                gossip(spec),
            ];
            argv.extend(["--seeds".to_string(), seeds.clone()]);
            if let Some(c) = &args.config {
                argv.extend(["--config".to_string(), c.display().to_string()]);
            }
            if args.log_format == UpLogFormat::Json {
                argv.extend(["--log-format".to_string(), "json".into()]);
            }
            Member {
                spec: *spec,
                args: argv,
                log: args.log_dir.join(format!("{}.log", spec.name)),
                http,
                gossip: gossip(spec),
            }
        })
        .collect()
}

/// Refuses to start when a port of the plan is taken (another `vigil up`, or anything else):
/// otherwise the members would die on their bind errors in a restart loop, and the readiness
/// poll would find whoever holds the ports.
fn check_ports(members: &[Member]) -> anyhow::Result<()> {
    let mut busy = Vec::new();
    for m in members {
        if let Err(e) = std::net::TcpListener::bind(m.http.as_str()) {
            busy.push(format!("{} HTTP {} (TCP): {e}", m.spec.name, m.http));
        }
        if let Err(e) = std::net::UdpSocket::bind(m.gossip.as_str()) {
            busy.push(format!("{} gossip {} (UDP): {e}", m.spec.name, m.gossip));
        }
    }
    if busy.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot start: {} of the cluster's ports are taken (another `vigil up`?):\n  {}\n\
         Stop what holds them, or move this cluster: --http-offset N (HTTP 8080+N..8083+N), \
         --gossip-base PORT (gossip PORT..PORT+3)",
        busy.len(),
        busy.join("\n  ")
    )
}

/// Runs `vigil up` until Ctrl-C or SIGTERM.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let log_format = match args.log_format {
        UpLogFormat::Text => vigil::config::LogFormat::Text,
        UpLogFormat::Json => vigil::config::LogFormat::Json,
    };
    crate::cli::node::init_logging(log_format, "info");
    std::fs::create_dir_all(&args.log_dir)
        .with_context(|| format!("cannot create {}", args.log_dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the vigil binary to re-execute")?;
    let secrets = Secrets::for_run(&args)?;
    let token = secrets
        .token
        .clone()
        .unwrap_or_else(|| "<http.admin-token>".into());
    let members = plan(&args);
    check_ports(&members)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let coordinator = members.iter().find(|m| m.spec.bootstrap).map(|m| m.http.clone()).unwrap_or_default();
        let others: Vec<(String, String)> = members.iter().map(|m| (m.spec.name.to_string(), m.http.clone())).collect();
        let started_ms = vigil_logs::event::now_ms().max(0) as u64;
        say!("vigil up: starting {} members (logs in {})", members.len(), args.log_dir.display());
        say!("vigil up: data in {}", data_dir(&args));
        for m in &members {
            say!("  {:<12} http://{:<20} {}", m.spec.name, m.http, m.spec.summary);
        }
        say!(
            "\n  status:   vigil status --addr http://{coordinator}   (or curl http://{coordinator}/cluster/status)\n  \
             members:  vigil members --addr http://{coordinator}\n  \
             metrics:  http://{coordinator}/metrics\n  \
             admin:    curl -X POST -H 'Authorization: Bearer {token}' http://<member>/cluster/leave\n  \
             Ctrl-C stops everything (each member leaves gracefully).\n"
        );
        if secrets.gossip_key.is_some() {
            say!(
                "  gossip:   encrypted and authenticated with a key made for this run \
                 (vigil keys list --addr http://{coordinator} --token <admin token>)\n"
            );
        }
        let mut supervisors = Vec::new();
        for m in members {
            let stop = stop.clone();
            let exe = exe.clone();
            let secrets = secrets.clone();
            let bootstrap = m.spec.bootstrap;
            supervisors.push(tokio::spawn(supervise(exe, m, secrets, stop)));
            if bootstrap {
                // Let the bootstrap node bind before the others knock.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let watcher = tokio::spawn(report_convergence(others, started_ms, stop.clone()));
        wait_for_stop_signal().await;
        say!("\nvigil up: stopping (members leave gracefully)...");
        stop.cancel();
        for s in supervisors {
            if let Err(e) = s.await {
                tracing::error!(error = %e, "a supervisor panicked");
            }
        }
        watcher.abort();
        say!("vigil up: all members stopped");
        Ok(())
    })
}

/// Where the consumer keeps its events, as an absolute path (so that nobody deletes the wrong
/// `.vigil` by mistake, and one knows what to back up): the directory of its SQLite file, or
/// the PostgreSQL server when the configuration names one.
fn data_dir(args: &UpArgs) -> String {
    let sources = vigil::config::Sources {
        file: args.config.clone(),
        ..Default::default()
    }
    .with_process_env();
    let services = vigil::config::load(&sources)
        .map(|s| s.services)
        .unwrap_or_default();
    if services.postgres_url.is_some() {
        return "PostgreSQL (services.postgres.url)".into();
    }
    let file = PathBuf::from(vigil_logs::consumer::sqlite_path("consumer", &services));
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

async fn wait_for_stop_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What every member of `vigil up` shares and no one else should see.
#[derive(Clone)]
struct Secrets {
    /// `http.admin-token`, when `vigil up` made one.
    token: Option<String>,
    /// `security.gossip-keys`, when `vigil up` made one.
    gossip_key: Option<String>,
}

impl Secrets {
    /// Fresh secrets from the OS's random source for what the configuration (the file of
    /// `--config` and the `VIGIL_*` environment, as the members will read it) leaves out;
    /// the members refuse to start without them.
    fn for_run(args: &UpArgs) -> anyhow::Result<Secrets> {
        let settings = vigil::config::load(
            &vigil::config::Sources {
                file: args.config.clone(),
                ..Default::default()
            }
            .with_process_env(),
        )?;
        let sec = &settings.security;
        let gossip_key = match sec.gossip_keys.is_empty() && sec.keyring_file.is_none() {
            true => Some(vigil::security::secrets::gossip_key()?.encode()),
            false => None,
        };
        let token = match settings.admin_token {
            None => Some(vigil::security::secrets::admin_token()?),
            Some(_) => None,
        };
        Ok(Secrets { token, gossip_key })
    }
}

fn spawn_child(exe: &PathBuf, m: &Member, secrets: &Secrets) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&m.log)
        .with_context(|| format!("cannot open {}", m.log.display()))?;
    let mut command = Command::new(exe);
    if let Some(key) = &secrets.gossip_key {
        command.env("VIGIL_SECURITY_GOSSIP_KEYS", key);
    }
    if let Some(token) = &secrets.token {
        command.env("VIGIL_HTTP_ADMIN_TOKEN", token);
    }
    let child = command
        .args(&m.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", m.spec.name))?;
    Ok(child)
}

/// Keeps one member running until `stop`.
async fn supervise(exe: PathBuf, m: Member, secrets: Secrets, stop: CancellationToken) {
    let name = m.spec.name;
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut child = match spawn_child(&exe, &m, &secrets) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(member = name, error = %e, "cannot start member");
                return;
            }
        };
        let started = Instant::now();
        tracing::info!(member = name, pid = child.id(), "member started");
        tokio::select! {
            status = child.wait() => {
                let code = status.as_ref().ok().and_then(|s| s.code());
                match code {
                    Some(0) => {
                        tracing::info!(member = name, "member left the cluster and exited; not restarting");
                        return;
                    }
                    Some(2) => {
                        tracing::error!(member = name, log = %m.log.display(), "member rejected its configuration; not restarting");
                        return;
                    }
                    _ => {}
                }
                if started.elapsed() >= STABLE_AFTER {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(member = name, status = ?status, restart_in_ms = backoff.as_millis() as u64, "member died; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            _ = stop.cancelled() => {
                stop_child(name, &mut child).await;
                return;
            }
        }
    }
}

async fn stop_child(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    match tokio::time::timeout(LEAVE_PATIENCE, child.wait()).await {
        Ok(_) => tracing::info!(member = name, "member stopped"),
        Err(_) => {
            tracing::warn!(member = name, "member did not leave in time; killing it");
            let _ = child.kill().await;
        }
    }
}

/// Prints once when every member of this run is HEALTHY in the coordinator's view and every
/// member holds quorum (each follows the leader's lease: a member may list everyone a moment
/// before the leader's next request reaches it). Only this run's members count: each answer
/// must come from the member of that name started by this `up` (generation, the process's
/// start in unix ms, not older than this run), so another cluster on the same ports is never
/// reported as ours.
async fn report_convergence(all: Vec<(String, String)>, started_ms: u64, stop: CancellationToken) {
    let started = Instant::now();
    let expected = LOCAL_CLUSTER.len();
    let coordinator = LOCAL_CLUSTER
        .iter()
        .find(|r| r.bootstrap)
        .map(|r| r.name)
        .unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => return,
        }
        let mut everyone = true;
        let mut view = None;
        for (name, http) in &all {
            let ours = crate::cli::get_json::<StatusDto>(http, "/cluster/status")
                .await
                .ok()
                .filter(|s| &s.self_id == name && s.generation >= started_ms);
            everyone &= ours.as_ref().is_some_and(|s| s.has_quorum);
            if name == coordinator {
                view = ours;
            }
        }
        let Some(s) = view else { continue };
        let ours = |m: &vigil::api::model::MemberDto| {
            all.iter().any(|(name, _)| *name == m.node_id) && m.generation >= started_ms
        };
        let healthy = s
            .membership
            .values()
            .filter(|m| m.status == "HEALTHY" && ours(m))
            .count();
        if healthy == expected && s.has_quorum && everyone {
            say!(
                "vigil up: cluster ready: {healthy} HEALTHY, quorum, leader {} ({} ms after start)",
                s.leader.as_deref().unwrap_or("none"),
                started.elapsed().as_millis()
            );
            return;
        }
    }
}
