//! Command-line interface: flags, subcommands, and the edge where errors become exit codes.

pub mod events;
pub mod keys;
pub mod load;
pub mod members;
pub mod node;
pub mod status;
pub mod up;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config;

/// Vigil: cluster membership with phi-accrual failure detection, gossip and quorum.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
pub struct Cli {
    /// PEM CA bundle to trust when talking to nodes over HTTPS (private CA, self-signed).
    #[arg(long, global = true, env = "VIGIL_HTTP_TLS_CA", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Run one cluster member (gossip over UDP, HTTP API, metrics).
    Node(node::NodeArgs),
    /// Start a local 4-member cluster (gateway 8080, coordinator 8081, producer 8082,
    /// consumer 8083) and keep it running; Ctrl-C stops it.
    Up(up::UpArgs),
    /// Sustained ingest through the gateway, then latency, throughput, errors and member health.
    Load(load::LoadArgs),
    /// List the members a node sees.
    Members(members::MembersArgs),
    /// The cluster at a glance: quorum, leader, counts by status.
    Status(status::StatusArgs),
    /// Follow membership changes as they happen (a member's GET /cluster/events).
    Events(events::EventsArgs),
    /// Generate gossip keys and admin tokens; list and rotate the keyring of a running cluster.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Validate a config file or print the annotated defaults.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `vigil config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a vigil.yml (with the VIGIL_* environment applied); exit code 2 if invalid.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the annotated default vigil.yml.
    Defaults,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    CACERT.get_or_init(|| cli.cacert.clone());
    match cli.command {
        Command::Node(args) => node::run(args),
        Command::Up(args) => up::run(args),
        Command::Members(args) => block_on(members::run(args)),
        Command::Load(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(load::run(args)),
        Command::Status(args) => block_on(status::run(args)),
        Command::Events(args) => block_on(events::run(args)),
        Command::Keys(cmd) => block_on(keys::run(cmd)),
        Command::Config(ConfigCommand::Check { file }) => {
            let sources = config::Sources {
                file: Some(file.clone()),
                ..Default::default()
            }
            .with_process_env();
            let settings = config::load(&sources)?;
            println!(
                "{}: OK (heartbeat {:?}, failure timeout {:?}, fanout {}, phi threshold {})",
                file.display(),
                settings.protocol.heartbeat_interval,
                settings.protocol.failure_timeout,
                settings.protocol.gossip_fanout,
                settings.protocol.phi_threshold
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Defaults) => {
            print!("{}", config::render_defaults());
            Ok(())
        }
    }
}

/// A small runtime for the client commands.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// `--cacert`, set once by [`run`]: every client command talks to nodes through [`client`].
static CACERT: OnceLock<Option<PathBuf>> = OnceLock::new();

/// An HTTP client for talking to nodes: trusts `--cacert` on top of the public roots.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::ClientBuilder> {
    let ca = CACERT.get().and_then(Option::as_deref);
    crate::tls::client(ca, timeout).map_err(|e| anyhow::anyhow!("--cacert: {e}"))
}

/// The default node to ask: the coordinator of `vigil up`.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:8081";

/// Fetches JSON from a node, with an error that says which URL failed.
pub async fn get_json<T: serde::de::DeserializeOwned>(base: &str, path: &str) -> anyhow::Result<T> {
    use anyhow::Context;
    let url = format!("{}{path}", crate::tls::base_url(base));
    let client = client(Duration::from_secs(5))?.build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is a node running there?"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("{url} answered {status}: {}", body.trim());
    }
    response
        .json()
        .await
        .with_context(|| format!("{url} did not answer the expected JSON"))
}
