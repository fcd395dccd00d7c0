//! From settings to a running member (sockets, runtime task, HTTP server, event handlers):
//! [`start`], then [`Running::wait`]. `vigil node` runs it ([`run`]) with the service of the
//! member's role, which it brings as a [`Starter`] (the library knows no service of its
//! own); the library's [`crate::Builder`] without.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use membership::{Identity, Metadata, Node};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{peers, Handle, NodeInfo, NodeRuntime, Options};
use crate::api::{self, AppState};
use crate::config::{self, Settings};
use crate::security::{store, Key, Keyring};
use crate::service::{Started, Starter};
use crate::transport::udp::UdpTransport;

/// How long to keep trying to resolve seed names at start (DNS in containers comes late).
const SEED_RESOLVE_PATIENCE: Duration = Duration::from_secs(10);
/// How often the remembered peers are brought up to date (`node.peers-file`).
const PEERS_FILE_INTERVAL: Duration = Duration::from_secs(1);

/// A configuration error found at start, naming where `key`'s value came from.
fn config_error(settings: &Settings, key: &str, value: &str, reason: &str) -> anyhow::Error {
    config::Error::Value {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
        origin: settings.origin(key),
    }
    .into()
}

async fn resolve(host_port: &str) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host(host_port)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// Every address of one seed name, sorted: a DNS server may shuffle the addresses of a
/// headless Service at every answer, and every member must see the same first seed (the
/// one that founds the cluster on a cold start, see [`Node::new`]).
async fn resolve_all(host_port: &str) -> std::io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(host_port).await?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ));
    }
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

/// The seed names' addresses, in the order of the names. At start every name gets
/// [`SEED_RESOLVE_PATIENCE`] (DNS in containers comes late); a name that still does not
/// resolve is an error only when no other name did (the refresher tries it again later).
async fn resolve_seeds(seeds: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    let deadline = Instant::now() + SEED_RESOLVE_PATIENCE;
    let mut out = Vec::new();
    let mut unresolved = Vec::new();
    for seed in seeds {
        let addrs = loop {
            match resolve_all(seed).await {
                Ok(a) => break a,
                Err(e) if Instant::now() >= deadline => {
                    unresolved.push(format!("`{seed}`: {e}"));
                    break Vec::new();
                }
                Err(e) => {
                    warn!(seed, error = %e, "cannot resolve seed yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        // Our own address stays in the list: being first in it is what makes this node the
        // one that founds the cluster (the core drops it before contacting seeds).
        for addr in addrs {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    if out.is_empty() && !unresolved.is_empty() {
        bail!(
            "cannot resolve any seed (node.seeds): {}",
            unresolved.join("; ")
        );
    }
    for u in &unresolved {
        warn!(seed = %u, "seed does not resolve; trying again at the next refresh");
    }
    Ok(out)
}

/// Re-resolves the seed names every `every` and hands changed addresses to the runtime, so
/// a seed name that stands for many members (a Kubernetes headless Service, a DNS round
/// robin) follows them as they come and go. Ends with `stop`.
async fn refresh_seeds(
    names: Vec<String>,
    remembered: Vec<SocketAddr>,
    me: SocketAddr,
    mut current: Vec<SocketAddr>,
    every: Duration,
    handle: crate::runtime::Handle,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let mut fresh = Vec::new();
        for name in &names {
            match resolve_all(name).await {
                Ok(addrs) => {
                    for a in addrs {
                        if !fresh.contains(&a) {
                            fresh.push(a);
                        }
                    }
                }
                Err(e) => debug!(seed = %name, error = %e, "seed does not resolve now"),
            }
        }
        // A name that resolves to nothing at the moment keeps the addresses it had.
        if fresh.is_empty() {
            continue;
        }
        let fresh = peers::seeds_with(&fresh, &remembered, me);
        if fresh == current {
            continue;
        }
        current = fresh;
        if handle.set_seeds(current.clone()).await.is_err() {
            return;
        }
    }
}

/// A bind address, `HOST:PORT` or `IP:PORT` (`localhost:8080` is fine): the first address
/// the name resolves to.
async fn bind_addr(settings: &Settings, key: &str, value: &str) -> anyhow::Result<SocketAddr> {
    match value.parse() {
        Ok(a) => Ok(a),
        Err(_) => resolve(value)
            .await
            .map_err(|e| config_error(settings, key, value, &format!("cannot resolve: {e}"))),
    }
}

fn rng_seed(id: &str, generation: u64) -> u64 {
    // FNV-1a of the id, mixed with the generation: distinct per node and per start, printed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ generation
}

/// The keyring of `security.*`: the keyring file's keys when it exists, else
/// `security.gossip-keys` (then saved to the file, if one is named); `None` without keys.
fn keyring(settings: &Settings) -> anyhow::Result<Option<Keyring>> {
    let sec = &settings.security;
    let file = sec.keyring_file.as_ref().map(PathBuf::from);
    let from_file = match &file {
        Some(path) => store::load(path).map_err(|e| {
            config_error(
                settings,
                "security.keyring-file",
                &path.display().to_string(),
                &e.to_string(),
            )
        })?,
        None => None,
    };
    let keys = match from_file {
        Some(keys) => keys,
        None => {
            let keys = sec
                .gossip_keys
                .iter()
                .map(|k| Key::parse(k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    config_error(settings, "security.gossip-keys", "(hidden)", &e.to_string())
                })?;
            if let (Some(path), false) = (&file, keys.is_empty()) {
                store::save(path, &keys).map_err(|e| {
                    config_error(
                        settings,
                        "security.keyring-file",
                        &path.display().to_string(),
                        &e.to_string(),
                    )
                })?;
            }
            keys
        }
    };
    if keys.is_empty() {
        return Ok(None);
    }
    let ring = Keyring::new(
        keys,
        &settings.cluster_name,
        sec.encrypt,
        sec.verify_incoming,
    )
    .map_err(|e| config_error(settings, "security.gossip-keys", "(hidden)", &e.to_string()))?;
    info!(
        keys = ring.keys().len(),
        encrypt = sec.encrypt,
        verify_incoming = sec.verify_incoming,
        "gossip sealed with the keyring"
    );
    Ok(Some(ring))
}

/// Runs a member with the service `service` starts until a graceful leave completes (after
/// `shutdown` or `POST /cluster/leave`).
pub async fn run(
    settings: Settings,
    shutdown: CancellationToken,
    service: Option<Starter>,
) -> anyhow::Result<()> {
    start(settings, shutdown, service).await?.wait().await
}

/// A started member: its tasks, each stopped by [`Running::wait`] or [`Running::abort`].
pub struct Running {
    /// Talks to the runtime task.
    pub handle: Handle,
    /// The bound gossip address.
    pub gossip_bound: SocketAddr,
    /// The bound HTTP address, when the API is served.
    pub http_bound: Option<SocketAddr>,
    runtime_task: JoinHandle<()>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    http_stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a member: binds its sockets, starts the runtime task, the event handlers, the
/// service `service` starts, if any, and the HTTP API. Cancelling `shutdown` starts a
/// graceful leave.
pub async fn start(
    settings: Settings,
    shutdown: CancellationToken,
    service: Option<Starter>,
) -> anyhow::Result<Running> {
    start_with(settings, shutdown, service, true).await
}

/// [`start`], optionally without the HTTP API (`serve_http: false`).
pub async fn start_with(
    settings: Settings,
    shutdown: CancellationToken,
    service: Option<Starter>,
    serve_http: bool,
) -> anyhow::Result<Running> {
    if settings.id.is_empty() {
        return Err(config_error(
            &settings,
            "node.id",
            "",
            "required: give --id (or node.id / VIGIL_NODE_ID)",
        ));
    }
    let bind = bind_addr(&settings, "node.gossip", &settings.gossip).await?;
    if bind.ip().is_unspecified() && settings.advertise.is_none() {
        return Err(config_error(
            &settings,
            "node.advertise",
            "",
            &format!(
                "required when node.gossip binds {bind} (from {}): peers cannot reach an \
                 unspecified address",
                settings.origin("node.gossip")
            ),
        ));
    }
    let keyring = keyring(&settings)?;
    let tls = match (&settings.http_tls_cert, &settings.http_tls_key) {
        (Some(cert), Some(key)) => Some(
            crate::tls::server_config(cert.as_ref(), key.as_ref())
                .map_err(|e| config_error(&settings, "http.tls-cert", cert, &e.to_string()))?,
        ),
        _ => None,
    };
    let weaknesses = config::require_protection(&settings, keyring.is_some())?;
    let insecure = !weaknesses.is_empty();
    for weakness in &weaknesses {
        warn!("INSECURE by the operator's choice (security.insecure): {weakness}");
    }
    let mut protocol = settings.protocol.clone();
    if keyring.is_some() {
        // The seal rides in the same datagram: the core packs that much less.
        protocol.max_datagram -= crate::security::keyring::OVERHEAD;
    }
    let transport = UdpTransport::bind(bind, settings.protocol.max_datagram)
        .await
        .with_context(|| format!("cannot bind the gossip socket on {bind} (node.gossip)"))?;
    let bound = crate::transport::Transport::local_addr(&transport);
    let advertise = match &settings.advertise {
        Some(a) => resolve(a)
            .await
            .with_context(|| format!("cannot resolve node.advertise `{a}`"))?,
        None => bound,
    };
    let (listener, http_addr) = if serve_http {
        let http_bind = bind_addr(&settings, "node.http", &settings.http).await?;
        let listener = TcpListener::bind(http_bind)
            .await
            .with_context(|| format!("cannot bind the HTTP listener on {http_bind} (node.http)"))?;
        let http_bound = listener.local_addr()?;
        let http_addr = match &settings.http_advertise {
            Some(a) => a.clone(),
            None if http_bound.ip().is_unspecified() => {
                SocketAddr::new(advertise.ip(), http_bound.port()).to_string()
            }
            None => http_bound.to_string(),
        };
        // Peers learn the scheme from the address itself (see `crate::tls`).
        let http_addr = match tls {
            Some(_) if !http_addr.contains("://") => format!("https://{http_addr}"),
            _ => http_addr,
        };
        (Some(listener), Some(http_addr))
    } else {
        (None, settings.http_advertise.clone())
    };
    let configured_seeds = resolve_seeds(&settings.seeds).await?;
    let peers_file = settings.remember_peers.then(|| {
        PathBuf::from(
            settings
                .peers_file
                .clone()
                .unwrap_or_else(|| format!(".vigil/data/{}.peers", settings.id)),
        )
    });
    let remembered = peers_file.as_deref().map(peers::load).unwrap_or_default();
    let seeds = peers::seeds_with(&configured_seeds, &remembered, advertise);
    if !remembered.is_empty() {
        info!(
            remembered = remembered.len(),
            file = %peers_file.as_deref().unwrap_or_else(|| std::path::Path::new("")).display(),
            "seeds include the members remembered from the last run"
        );
    }

    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1);
    let seed = rng_seed(&settings.id, generation);
    let identity = Identity {
        id: settings.id.clone(),
        addr: advertise,
        generation,
        meta: Metadata {
            role: settings.role.clone(),
            zone: settings.zone.clone(),
            rack: settings.rack.clone(),
            http_addr: http_addr.clone(),
            tags: settings.tags.clone(),
            ..Metadata::default()
        },
        cluster: settings.cluster_name.clone(),
    };
    let epoch = Instant::now();
    let node =
        Node::new(identity, protocol, seeds.clone(), epoch.elapsed(), seed).map_err(|e| {
            anyhow::Error::from(config::Error::Value {
                key: e.key.to_string(),
                value: e.value,
                reason: e.reason,
                origin: settings.origin(e.key),
            })
        })?;
    let http_bound = listener.as_ref().and_then(|l| l.local_addr().ok());
    info!(rng_seed = seed, http = ?http_bound, advertise_http = ?http_addr, role = %settings.role, "starting");
    let info = NodeInfo {
        id: settings.id.clone(),
        cluster: settings.cluster_name.clone(),
        generation,
        gossip_addr: advertise,
        http_addr,
        seeds: seeds.clone(),
        insecure,
    };
    let options = Options {
        leave_linger: settings.leave_linger,
        signals_interval: Some(settings.signals_interval),
        keyring,
        keyring_file: settings.security.keyring_file.as_ref().map(PathBuf::from),
        source_rate: settings.security.source_rate,
        source_burst: settings.security.source_burst,
    };
    let (runtime, handle) = NodeRuntime::new(node, transport, epoch, info, options, shutdown);
    let runtime_task = tokio::spawn(runtime.run());

    let http_stop = CancellationToken::new();
    let mut tasks = super::handlers::start(
        &settings.event_handlers,
        settings.event_handler_timeout,
        &handle,
        http_stop.clone(),
    );
    let services = match service {
        Some(start_service) => match start_service(&settings, &handle, http_stop.clone()) {
            Ok(services) => services,
            Err(e) => {
                runtime_task.abort();
                http_stop.cancel();
                return Err(e.context("cannot start the role's service"));
            }
        },
        None => Started::none(),
    };
    tasks.extend(services.tasks);
    let state = AppState {
        handle: handle.clone(),
        admin_token: settings
            .admin_token
            .clone()
            .filter(|_| settings.admin_endpoints),
        service: services.service.clone(),
        limits: api::Limits {
            max_body: settings.http_max_body,
            timeout: settings.http_request_timeout,
            connections: api::server::ConnectionLimits {
                header_read_timeout: settings.http_header_read_timeout,
                max_connections: super::open_files::prepare(settings.http_max_connections),
            },
        },
    };
    if let Some(path) = peers_file {
        tasks.push(tokio::spawn(peers::keep(
            path,
            remembered.clone(),
            state.handle.clone(),
            PEERS_FILE_INTERVAL,
            http_stop.clone(),
        )));
    }
    if !settings.seeds.is_empty() {
        // re-resolves seed names (a headless Service's) and hands new addresses to the node
        tasks.push(tokio::spawn(refresh_seeds(
            settings.seeds.clone(),
            remembered,
            advertise,
            seeds.clone(),
            settings.protocol.seed_rejoin_interval,
            state.handle.clone(),
            http_stop.clone(),
        )));
    }
    let server = listener.map(|listener| {
        tokio::spawn(api::serve(
            listener,
            tls,
            state,
            services.router,
            http_stop.clone(),
        ))
    });
    Ok(Running {
        handle,
        gossip_bound: bound,
        http_bound,
        runtime_task,
        server,
        http_stop,
        tasks,
    })
}

impl Running {
    /// Waits until the runtime stops (after a graceful leave) or the HTTP server fails, then
    /// stops every other task.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let server_failed = async {
            match &mut self.server {
                Some(server) => server.await,
                None => std::future::pending().await,
            }
        };
        let (outcome, server_ended) = tokio::select! {
            r = &mut self.runtime_task => (r.context("the node runtime panicked"), false),
            r = server_failed => {
                // The server only ends on its own when it fails.
                let e = match r {
                    Ok(Ok(())) => anyhow::anyhow!("the HTTP server stopped unexpectedly"),
                    Ok(Err(e)) => anyhow::Error::from(e).context("the HTTP server failed"),
                    Err(e) => anyhow::Error::from(e).context("the HTTP server panicked"),
                };
                (Err(e), true)
            }
        };
        if server_ended {
            self.server = None;
        }
        self.stop().await;
        outcome
    }

    /// Stops every task now; the runtime does not leave (peers will find it failed).
    pub async fn abort(mut self) {
        self.runtime_task.abort();
        self.stop().await;
    }

    async fn stop(&mut self) {
        let http_stop = self.http_stop.clone();
        http_stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            // Each task watches `http_stop`; one stuck in a call is aborted.
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_millis(500), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if !self.runtime_task.is_finished() {
            self.runtime_task.abort();
        }
        // Open keep-alive connections must not hold the exit for long.
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(Duration::from_secs(1), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }
}

impl Drop for Running {
    /// Nothing outlives its owner: dropped unwaited, every task is aborted.
    fn drop(&mut self) {
        self.http_stop.cancel();
        self.runtime_task.abort();
        for task in &self.tasks {
            task.abort();
        }
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}
