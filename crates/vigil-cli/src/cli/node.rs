//! `vigil node`: flags to settings, logging, signals, then [`vigil::runtime::daemon::run`].

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use vigil::config::{self, LogFormat, Settings};

/// Flags of `vigil node`. Each overrides the file and the environment (see `vigil config defaults`).
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Member id, unique in the cluster (node.id).
    #[arg(long)]
    pub id: Option<String>,
    /// HTTP API bind address, e.g. 127.0.0.1:8081 (node.http).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// Gossip (UDP) bind address, e.g. 0.0.0.0:7946 (node.gossip).
    #[arg(long, value_name = "ADDR:PORT")]
    pub gossip: Option<String>,
    /// Seeds to join through, comma-separated host:port; none = bootstrap (node.seeds).
    #[arg(long, value_name = "HOST:PORT,...")]
    pub seeds: Option<String>,
    /// Gossip address peers should use, when it differs from the bind (node.advertise).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Configuration file (vigil.yml).
    #[arg(long, value_name = "FILE", env = "VIGIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Role label (node.role).
    #[arg(long)]
    pub role: Option<String>,
    /// Zone label (node.zone).
    #[arg(long)]
    pub zone: Option<String>,
    /// Cluster name (node.cluster).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Log format: text or json (log.format).
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or debug (log.level).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Run without gossip keys or admin token if none are given: anyone on the network can
    /// then join and take the cluster over (security.insecure). Only on a trusted network.
    #[arg(long)]
    pub insecure: bool,
    /// Any key, e.g. --set cluster.gossip.fanout=5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl NodeArgs {
    /// The flags as (key, value, flag) overrides.
    pub fn overrides(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        let named = [
            ("node.id", "--id", &self.id),
            ("node.http", "--http", &self.http),
            ("node.gossip", "--gossip", &self.gossip),
            ("node.seeds", "--seeds", &self.seeds),
            ("node.advertise", "--advertise", &self.advertise),
            ("node.role", "--role", &self.role),
            ("node.zone", "--zone", &self.zone),
            ("node.cluster", "--cluster", &self.cluster),
            ("log.format", "--log-format", &self.log_format),
            ("log.level", "--log-level", &self.log_level),
        ];
        let mut out: Vec<(String, String, String)> = named
            .into_iter()
            .filter_map(|(key, flag, v)| {
                v.as_ref()
                    .map(|v| (key.to_string(), v.clone(), flag.to_string()))
            })
            .collect();
        if self.insecure {
            out.push((
                "security.insecure".into(),
                "true".into(),
                "--insecure".into(),
            ));
        }
        for pair in &self.set {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(config::Error::Value {
                    key: pair.clone(),
                    value: String::new(),
                    reason: "expected KEY=VALUE".into(),
                    origin: config::Origin::Flag("--set".into()),
                }
                .into());
            };
            let key = key.trim();
            if !config::keys::is_known(key) {
                let reason = Settings::default()
                    .set(key, value)
                    .err()
                    .unwrap_or_default();
                return Err(config::Error::Value {
                    key: key.into(),
                    value: value.into(),
                    reason,
                    origin: config::Origin::Flag("--set".into()),
                }
                .into());
            }
            out.push((key.to_string(), value.to_string(), format!("--set {key}")));
        }
        Ok(out)
    }
}

/// Installs the tracing subscriber on stderr.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Runs `vigil node`.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let sources = config::Sources {
        file: args.config.clone(),
        env: Vec::new(),
        flags: args.overrides()?,
    }
    .with_process_env();
    let settings = config::load(&sources)?;
    init_logging(settings.log_format, &settings.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(watch_signals(shutdown.clone()));
        let result =
            vigil::runtime::daemon::run(settings, shutdown, Some(Box::new(vigil_logs::start)))
                .await;
        signals.abort();
        result
    })
}

/// First SIGTERM or Ctrl-C: graceful leave. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        warn!("cannot listen for SIGTERM; only Ctrl-C will leave gracefully");
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    shutdown.cancel();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    warn!("second signal: exiting without finishing the leave");
    std::process::exit(130);
}
