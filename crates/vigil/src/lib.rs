//! Vigil as a library: cluster membership, failure detection and quorum for a Rust service.
//!
//! A [`Builder`] from a [`Config`] (or a `vigil.yml`) starts a member in the service's own
//! tokio runtime; the [`Vigil`] handle it returns lists the members, streams every change as
//! a typed [`Event`], publishes tags, takes the application's own health into the member's
//! score, and leaves gracefully.
//!
//! ```no_run
//! # async fn example() -> Result<(), vigil::Error> {
//! use vigil::{Builder, Config, Update};
//!
//! let node = Builder::new(Config::default())
//!     .id("orders-1")
//!     .gossip("127.0.0.1:7946")
//!     .http("127.0.0.1:8080")
//!     .seeds(["127.0.0.1:7947"])
//!     .gossip_key("qJ4xnIH8mtS9D9H0XT0l0cQ6Pq0WOn1yZK5Xiny+2uQ=")
//!     .admin_token("a-long-admin-token-0123456789")
//!     .start()
//!     .await?;
//! let mut updates = node.subscribe();
//! while let Some(update) = updates.recv().await {
//!     if let Update::Change(change) = update {
//!         println!("{} {:?}", change.event.name(), change.event.member().map(|m| &m.id));
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! The workspace, arrows pointing down (each crate uses only the public API of the one below):
//! ```text
//! vigil-cli    the `vigil` binary: flags, config layering, signals; node, up, members, status,
//!     │        events, keys, config, load
//!     v
//! vigil-logs   the seed's log pipeline (gateway, producer, consumer), a vigil::service::Service
//!     │
//!     v
//! vigil        this crate: a member in a tokio runtime, its HTTP API, events and metrics
//!     │
//!     v
//! membership   the protocol, sans-IO: gossip, failure detection, quorum (no clock, no socket)
//! ```
//! This crate:
//! - The public API, at the root: [`Builder`], [`Vigil`], [`Subscription`], and the types of
//!   [`event`] ([`Event`], [`Change`], [`Update`], [`Member`], [`View`], [`AppHealth`]).
//! - [`config`]: `vigil.yml` + `VIGIL_*` environment + flags, layered and validated; a
//!   [`Config`] ([`config::Settings`]) is what a member is started from.
//! - [`runtime`]: the tokio task that owns a [`membership::Node`], its clock and socket, and
//!   the [`runtime::Handle`] everything else reaches it through; the event bus; the event
//!   handlers; [`runtime::daemon`] wires a member together (sockets, task, HTTP server).
//! - [`transport`]: UDP and its in-memory twin. [`security`]: keyring and seal, replay window,
//!   rate limits. [`tls`]: HTTPS for the API and its clients.
//! - [`api`]: the HTTP API as an axum `Router` (`GET /cluster/events` included) and the JSON
//!   bodies it answers ([`api::model`]), which the CLI reads back.
//! - [`service`]: the hook for a service served beside the API (the log pipeline is one).
//! - [`metrics`]: Prometheus; [`build_info`]: what this build is.
//!
//! The modules below the root are public so that `vigil-logs` and `vigil-cli` are built on
//! documented items alone; the root is the API meant for applications.
//!
//! # Data flow
//! ```text
//! datagrams, timers ──> runtime task ──> membership::Node ──> datagrams out
//!                           │  core events: logged, counted, typed as vigil::Event
//!                           v
//!                       event bus (numbered Changes; last 1024 kept)
//!                        ├─> Vigil::subscribe()        (Update stream per subscriber)
//!                        ├─> GET /cluster/events        (SSE, resumable with Last-Event-ID)
//!                        └─> node.event-handlers        (one command per change)
//! Vigil, HTTP handlers, ──> runtime::Handle ──> runtime task (snapshots, tags, health, leave)
//! a service's routes
//! ```
//! The runtime never waits for a reader: each reads the bus through a bounded queue and is
//! told when it fell behind ([`Update::Lagged`], then a fresh [`Update::Snapshot`]).
//!
//! The design note is `docs/design.md` at the repository root; `docs/library.md` shows the
//! API at work.
#![deny(missing_docs)]

pub mod api;
pub mod build_info;
pub mod config;
pub mod event;
pub mod metrics;
pub mod runtime;
pub mod security;
pub mod service;
mod subscription;
pub mod tls;
pub mod transport;

use std::net::SocketAddr;
use std::path::Path;

use tokio_util::sync::CancellationToken;

/// The protocol crate: the runtime's [`runtime::Snapshot`] carries its
/// [`membership::ClusterView`], so a user of the snapshot reaches its types through here.
pub use membership;

pub use config::Settings as Config;
pub use event::{AppHealth, Change, Event, Member, Status, Update, View};
pub use subscription::Subscription;

use runtime::daemon::{self, Running};
use runtime::Handle;

/// Why the library could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong; the message names the key, the value and why.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The member could not start (a socket, a seed that does not resolve, ...).
    #[error("cannot start: {0}")]
    Start(String),
    /// The member has stopped (it left, or was shut down).
    #[error("the member has stopped")]
    Stopped,
    /// The node refused the change (a tag too large for `cluster.limits.max-metadata-bytes`).
    #[error(transparent)]
    Refused(#[from] membership::CommandError),
}

impl From<runtime::Stopped> for Error {
    fn from(_: runtime::Stopped) -> Self {
        Error::Stopped
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<config::Error>() {
            Ok(c) => Error::Config(c),
            Err(e) => Error::Start(format!("{e:#}")),
        }
    }
}

/// Configures a member, then starts it ([`Builder::start`]).
///
/// Each setter sets one key of [`Config`] (the names are those of `vigil.yml`, see `vigil
/// config defaults`); [`Builder::set`] sets any of them. Security is on by default: give a
/// gossip key and an admin token, or choose [`Builder::insecure`] on a trusted network.
///
/// ```
/// use vigil::{Builder, Config};
///
/// let builder = Builder::new(Config::default())
///     .id("n1")
///     .gossip("127.0.0.1:0")
///     .without_http()
///     .insecure()
///     .set("cluster.heartbeat.interval", "500ms")
///     .unwrap();
/// assert_eq!(builder.config().id, "n1");
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
    serve_http: bool,
    error: Option<config::Error>,
}

impl Builder {
    /// Starts from `config` (e.g. [`Config::default`]).
    pub fn new(config: Config) -> Self {
        Builder {
            config,
            serve_http: true,
            error: None,
        }
    }

    /// Starts from a `vigil.yml` (the environment is not read: the application decides).
    ///
    /// ```no_run
    /// let builder = vigil::Builder::from_file("vigil.yml")?.id("n1");
    /// # Ok::<(), vigil::Error>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let sources = config::Sources {
            file: Some(path.as_ref().to_path_buf()),
            ..Default::default()
        };
        Ok(Builder::new(config::load(&sources)?))
    }

    /// The configuration so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sets any key, as `--set KEY=VALUE` does; the error names the key and the reason.
    ///
    /// ```
    /// let err = vigil::Builder::new(vigil::Config::default())
    ///     .set("cluster.gossip.fanout", "many")
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("cluster.gossip.fanout"));
    /// ```
    pub fn set(mut self, key: &str, value: &str) -> Result<Self, Error> {
        self.config.set(key, value).map_err(|reason| {
            Error::Config(config::Error::Value {
                key: key.into(),
                value: value.into(),
                reason,
                origin: config::Origin::Flag("Builder::set".into()),
            })
        })?;
        Ok(self)
    }

    /// Sets a key whose value cannot be wrong in kind; a mistake is reported by
    /// [`Builder::start`].
    fn with(mut self, key: &str, value: &str) -> Self {
        if self.error.is_none() {
            if let Err(reason) = self.config.set(key, value) {
                self.error = Some(config::Error::Value {
                    key: key.into(),
                    value: value.into(),
                    reason,
                    origin: config::Origin::Flag("Builder".into()),
                });
            }
        }
        self
    }

    /// The member id, unique in the cluster (`node.id`; required).
    pub fn id(self, id: &str) -> Self {
        self.with("node.id", id)
    }

    /// The UDP address gossip binds (`node.gossip`); port 0 picks a free one
    /// ([`Vigil::gossip_addr`] tells which).
    pub fn gossip(self, addr: &str) -> Self {
        self.with("node.gossip", addr)
    }

    /// The address the HTTP API binds (`node.http`); port 0 picks a free one.
    pub fn http(mut self, addr: &str) -> Self {
        self.serve_http = true;
        self.with("node.http", addr)
    }

    /// Serves no HTTP API (mount [`Vigil::router`] in the application's server instead, or
    /// do without).
    pub fn without_http(mut self) -> Self {
        self.serve_http = false;
        self
    }

    /// Members to join through, `host:port` gossip addresses (`node.seeds`); none founds a
    /// new cluster.
    pub fn seeds<I, S>(self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list: Vec<String> = seeds.into_iter().map(|s| s.as_ref().to_string()).collect();
        self.with("node.seeds", &list.join(","))
    }

    /// A free key/value published with this member (`node.tags.<key>`).
    pub fn tag(self, key: &str, value: &str) -> Self {
        self.with(&format!("{}{key}", config::keys::TAG_PREFIX), value)
    }

    /// Seals gossip with this key (base64, 32 bytes: `vigil keys generate`); the first key
    /// given seals, all open (`security.gossip-keys`).
    pub fn gossip_key(mut self, key: &str) -> Self {
        let mut keys = self.config.security.gossip_keys.clone();
        keys.push(key.to_string());
        let joined = keys.join(",");
        self = self.with("security.gossip-keys", &joined);
        self
    }

    /// The Bearer token of the HTTP API's state-changing endpoints (`http.admin-token`).
    pub fn admin_token(self, token: &str) -> Self {
        self.with("http.admin-token", token)
    }

    /// Runs without gossip keys and admin token if none are given (`security.insecure`):
    /// anyone on the network can join. Only on a trusted network.
    pub fn insecure(self) -> Self {
        self.with("security.insecure", "true")
    }

    /// Binds the sockets, starts the member's task (and the HTTP API, and the
    /// `node.event-handlers`) on the current tokio runtime, and returns its handle. The
    /// member joins through its seeds in the background: watch [`Vigil::subscribe`].
    pub async fn start(self) -> Result<Vigil, Error> {
        if let Some(e) = self.error {
            return Err(Error::Config(e));
        }
        let shutdown = CancellationToken::new();
        let running =
            daemon::start_with(self.config.clone(), shutdown.clone(), None, self.serve_http)
                .await?;
        Ok(Vigil {
            handle: running.handle.clone(),
            gossip_bound: running.gossip_bound,
            http_bound: running.http_bound,
            admin_token: self.config.admin_token.clone(),
            running: Some(running),
            shutdown,
        })
    }
}

/// A running member; see the [crate docs](crate) for an example.
///
/// Dropping it stops the member at once without leaving (the others will find it failed);
/// [`Vigil::leave`] leaves gracefully first.
pub struct Vigil {
    handle: Handle,
    gossip_bound: SocketAddr,
    http_bound: Option<SocketAddr>,
    admin_token: Option<String>,
    running: Option<Running>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Vigil {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vigil")
            .field("id", &self.id())
            .field("generation", &self.generation())
            .field("gossip", &self.gossip_bound)
            .field("http", &self.http_bound)
            .finish_non_exhaustive()
    }
}

impl Vigil {
    /// A [`Builder`] from `config`.
    ///
    /// ```
    /// let builder = vigil::Vigil::builder(vigil::Config::default()).id("n1");
    /// assert_eq!(builder.config().id, "n1");
    /// ```
    pub fn builder(config: Config) -> Builder {
        Builder::new(config)
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.handle.info.id
    }

    /// This process's generation (larger at every start).
    pub fn generation(&self) -> u64 {
        self.handle.info.generation
    }

    /// The gossip address the socket is bound to (what other members' seeds name).
    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip_bound
    }

    /// The address the HTTP API is bound to, if it is served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_bound
    }

    /// The members this node sees now, sorted by id, itself included.
    ///
    /// ```no_run
    /// # async fn example(node: vigil::Vigil) -> Result<(), vigil::Error> {
    /// for m in node.members().await? {
    ///     println!("{} {} score {}", m.id, m.status, m.health_score);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        Ok(self.view().await?.members)
    }

    /// The whole view now: members, quorum, leader.
    ///
    /// ```no_run
    /// # async fn example(node: vigil::Vigil) -> Result<(), vigil::Error> {
    /// let view = node.view().await?;
    /// println!("quorum {} leader {:?}, {} live", view.has_quorum, view.leader, view.live().count());
    /// # Ok(()) }
    /// ```
    pub async fn view(&self) -> Result<View, Error> {
        let snapshot = self.handle.snapshot().await?;
        Ok(subscription::view_of(&snapshot))
    }

    /// Every change from now on, after a snapshot of the view; see [`Subscription`]. Any
    /// number of subscriptions may be open; each reads at its own pace.
    pub fn subscribe(&self) -> Subscription {
        Subscription::new(self.handle.clone(), subscription::Start::Snapshot)
    }

    /// Publishes a tag with this member (gossiped to every member, which see a
    /// [`Event::MemberUpdated`]). Refused, with nothing changed, when the metadata would
    /// grow over `cluster.limits.max-metadata-bytes`.
    ///
    /// ```no_run
    /// # async fn example(node: vigil::Vigil) -> Result<(), vigil::Error> {
    /// node.set_tag("shard-range", "0-511").await?;
    /// node.remove_tag("draining").await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_tag(&self, key: &str, value: &str) -> Result<(), Error> {
        Ok(self
            .handle
            .set_tag(key.to_string(), Some(value.to_string()))
            .await??)
    }

    /// Removes a tag of this member.
    pub async fn remove_tag(&self, key: &str) -> Result<(), Error> {
        Ok(self.handle.set_tag(key.to_string(), None).await??)
    }

    /// Reports the application's own health; it lowers this member's health score (see
    /// [`AppHealth`]) until the next report. A member that scores under the degraded
    /// threshold is DEGRADED for every member: still a member, but routed around.
    ///
    /// ```no_run
    /// # async fn example(node: vigil::Vigil) -> Result<(), vigil::Error> {
    /// use std::time::Duration;
    /// use vigil::AppHealth;
    ///
    /// let health = AppHealth::errors(0.05)
    ///     .with_latency(Duration::from_millis(180), Duration::from_millis(250));
    /// node.report_health(health).await?;
    /// # Ok(()) }
    /// ```
    pub async fn report_health(&self, health: AppHealth) -> Result<(), Error> {
        Ok(self.handle.app_health(health.error_pct()).await?)
    }

    /// The HTTP API as an axum `Router` to mount in the application's own server (start
    /// with [`Builder::without_http`] then): `/cluster/status`, `/cluster/members`,
    /// `/cluster/events`, `/metrics`, ... (the admin endpoints need the admin token).
    ///
    /// ```no_run
    /// # async fn example(node: vigil::Vigil) {
    /// let app = axum::Router::new().nest("/membership", node.router());
    /// # let _ = app; }
    /// ```
    pub fn router(&self) -> axum::Router {
        api::router(api::AppState {
            handle: self.handle.clone(),
            admin_token: self.admin_token.clone(),
            service: None,
            limits: api::Limits::default(),
        })
    }

    /// Leaves the cluster gracefully: every member sees [`Event::MemberLeft`], no failure
    /// is counted. Returns once the news has spread (`node.leave-linger`) and every task of
    /// the member stopped.
    ///
    /// ```no_run
    /// # async fn example(node: vigil::Vigil) -> Result<(), vigil::Error> {
    /// node.leave().await?;
    /// # Ok(()) }
    /// ```
    pub async fn leave(mut self) -> Result<(), Error> {
        self.shutdown.cancel();
        match self.running.take() {
            Some(running) => Ok(running.wait().await?),
            None => Ok(()),
        }
    }

    /// Stops the member now, without leaving: the others will find it failed, as if its
    /// process had died. For tests and for an application that must stop at once.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.abort().await;
        }
    }
}
