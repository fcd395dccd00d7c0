//! Command-line interface: flags, subcommands, and the edge where errors become exit codes.
//!
//! Every client command finds its cluster the same way ([`Target`]: `--addr` or `VIGIL_ADDR`,
//! plus `--cacert` for HTTPS), and every reading command prints `--output table` (default) or
//! `--output json`. Output goes through [`emit`], so a reader that goes away (`| head`) ends
//! the command quietly instead of a panic.

pub mod admin;
pub mod config_check;
pub mod docs;
pub mod events;
pub mod keys;
pub mod load;
pub mod members;
pub mod node;
pub mod status;
pub mod up;

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use vigil::config;

/// Vigil: cluster membership with phi-accrual failure detection, gossip and quorum.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
pub struct Cli {
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
    /// Ask the node at --addr to join the cluster of a gossip address (admin token).
    Join(admin::JoinArgs),
    /// Make the node at --addr leave the cluster gracefully; it exits afterwards (admin token).
    Leave(admin::LeaveArgs),
    /// Remove a member that will not come back (FAILED, or gone for good) (admin token).
    ForceLeave(admin::ForceLeaveArgs),
    /// Generate gossip keys and admin tokens; list and rotate the keyring of a running cluster.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Validate a config file or print the annotated defaults.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page (or write one page per command into a directory).
    Man(docs::ManArgs),
}

/// `vigil config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a vigil.yml (with the VIGIL_* environment applied); every error is listed; exit
    /// code 2 if invalid.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the annotated default vigil.yml.
    Defaults,
}

/// How a client command finds its cluster: one node's HTTP API.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// A node's HTTP API, e.g. http://10.0.0.5:8081 [default: http://127.0.0.1:8081, the
    /// coordinator of `vigil up`].
    #[arg(long, env = "VIGIL_ADDR", value_name = "URL")]
    pub addr: Option<String>,
    /// PEM CA bundle to trust when the node speaks HTTPS (private CA, self-signed).
    #[arg(long, env = "VIGIL_HTTP_TLS_CA", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

impl Target {
    /// The node's base URL (`--addr`, `VIGIL_ADDR`, or `default`); remembers `--cacert` for
    /// [`client`].
    pub fn url_or(&self, default: &str) -> String {
        CACERT.get_or_init(|| self.cacert.clone());
        let addr = self.addr.as_deref().unwrap_or(default);
        CHOSEN.get_or_init(|| self.addr.is_some());
        vigil::tls::base_url(addr)
    }

    /// [`Target::url_or`] with the coordinator of `vigil up` as the default.
    pub fn url(&self) -> String {
        self.url_or(DEFAULT_ADDR)
    }
}

/// How a reading command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns and sentences, for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
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
        Command::Join(args) => block_on(admin::join(args)),
        Command::Leave(args) => block_on(admin::leave(args)),
        Command::ForceLeave(args) => block_on(admin::force_leave(args)),
        Command::Keys(cmd) => block_on(keys::run(cmd)),
        Command::Config(ConfigCommand::Check { file }) => config_check::run(&file),
        Command::Config(ConfigCommand::Defaults) => emit(&config::render_defaults()),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    }
}

/// A small runtime for the client commands.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Standard output was closed by its reader (`vigil status --watch | head -3`): the command
/// stops, and `main` exits 0 without a message.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` to standard output and flushes it; a closed pipe becomes [`StdoutClosed`]
/// (where `print!` would panic).
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::anyhow!("cannot write to standard output: {e}")),
    }
}

/// [`emit`] with a newline.
pub fn emitln(text: &str) -> anyhow::Result<()> {
    emit(&format!("{text}\n"))
}

/// Prints `value` as pretty JSON.
pub fn emit_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    emitln(&serde_json::to_string_pretty(value)?)
}

/// `--cacert`, set once by [`Target::url_or`]: every client command talks to nodes through
/// [`client`].
static CACERT: OnceLock<Option<PathBuf>> = OnceLock::new();
/// Whether the address came from `--addr`/`VIGIL_ADDR` (else the default), for errors.
static CHOSEN: OnceLock<bool> = OnceLock::new();

/// An HTTP client for talking to nodes: trusts `--cacert` on top of the public roots.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::ClientBuilder> {
    let ca = CACERT.get().and_then(Option::as_deref);
    vigil::tls::client(ca, timeout).map_err(|e| anyhow::anyhow!("--cacert: {e}"))
}

/// The default node to ask: the coordinator of `vigil up`.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:8081";

/// The innermost cause of an error (for reqwest: "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Sends an admin request with the bearer token: the answer's JSON, or an error naming the
/// node's reason (`vigil join`, `leave`, `force-leave` and `keys` all go through it).
pub async fn send_admin(
    request: reqwest::RequestBuilder,
    base: &str,
    token: &str,
) -> anyhow::Result<serde_json::Value> {
    let response = match request.bearer_auth(token).send().await {
        Ok(r) => r,
        Err(e) => return Err(unreachable(base, &e)),
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "{status}: {}",
            body["error"].as_str().unwrap_or("no detail")
        );
    }
    Ok(body)
}

/// One sentence for a node that did not answer: what was tried, why it failed, and the two
/// ways to point the command elsewhere.
pub fn unreachable(base: &str, e: &reqwest::Error) -> anyhow::Error {
    let why = if e.is_timeout() {
        "no answer in time".to_string()
    } else {
        root_cause(e)
    };
    let whence = if CHOSEN.get().copied().unwrap_or(true) {
        "from --addr or VIGIL_ADDR"
    } else {
        "the default"
    };
    anyhow::anyhow!(
        "no Vigil node answers at {base} ({whence}): {why}. Point --addr URL (or the \
         VIGIL_ADDR environment variable) at a running node's HTTP API"
    )
}

/// Fetches JSON from a node, with an error that says which URL failed.
pub async fn get_json<T: serde::de::DeserializeOwned>(base: &str, path: &str) -> anyhow::Result<T> {
    let base = vigil::tls::base_url(base);
    let url = format!("{base}{path}");
    let client = client(Duration::from_secs(5))?.build()?;
    let response = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return Err(unreachable(&base, &e)),
    };
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("{url} answered {status}: {}", body.trim());
    }
    response
        .json()
        .await
        .map_err(|e| anyhow::anyhow!("{url} did not answer a Vigil node's JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cacert_is_offered_only_where_a_node_is_called() {
        let cli = Cli::command();
        let has = |name: &str| {
            cli.find_subcommand(name)
                .unwrap()
                .get_arguments()
                .any(|a| a.get_id() == "cacert")
        };
        assert!(has("status") && has("members") && has("load") && has("leave"));
        assert!(!has("node") && !has("up") && !has("completions") && !has("config"));
    }

    #[test]
    fn every_reading_command_takes_output_json() {
        for argv in [
            &["vigil", "members", "--output", "json"][..],
            &["vigil", "status", "-o", "json"],
            &["vigil", "load", "--output", "json"],
            &["vigil", "keys", "list", "--output", "json"],
        ] {
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
    }
}
