//! `vigil`: the cluster membership daemon, its CLI and the local cluster launcher.
//!
//! # Layout
//! - [`config`]: `vigil.yml` + `VIGIL_*` environment + flags, layered and validated.
//! - [`transport`]: the UDP transport and its in-memory twin, behind one trait.
//! - [`runtime`]: the tokio task that owns a [`membership::Node`], its clock and socket;
//!   [`runtime::daemon`] wires a node process together.
//! - [`api`]: the HTTP API (axum): status, members, health, metrics, admin.
//! - [`metrics`]: Prometheus metrics: membership, pipeline, HTTP requests, the process.
//! - [`build_info`]: version, git commit, profile and features of this binary.
//! - [`cli`]: subcommands (`node`, `up`, `load`, `members`, `status`, `join`, `leave`,
//!   `force-leave`, `keys`, `config`, `completions`, `man`).
//! - [`roles`]: the seed's service roles.
//! - [`security`]: gossip keyring (authentication, encryption) and per-source rate limits.
//! - [`tls`]: optional HTTPS for the API, and clients that trust the cluster's CA.
//!
//! # Data flow
//! datagrams and timers -> runtime task -> `Node` -> datagrams out, events (logs, metrics);
//! HTTP handlers -> `runtime::Handle` -> runtime task (snapshots, leave, force-remove).
//!
//! # Exit codes
//! 0 success (a node exits 0 after a graceful leave), 1 runtime failure, 2 bad flags or
//! configuration (the message names the key, where it came from, and why).

mod api;
mod build_info;
mod cli;
mod config;
mod metrics;
mod roles;
mod runtime;
mod security;
mod tls;
mod transport;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `| head` went away: nothing to say, and nobody to say it to.
        Err(e) if e.downcast_ref::<cli::StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<config::Error>().is_some() => {
            eprintln!("vigil: configuration error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
