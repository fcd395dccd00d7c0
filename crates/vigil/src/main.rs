//! The `vigil` binary: the command line over the [`vigil`] library (`vigil node`, `up`,
//! `members`, `status`, `events`, `keys`, `config`, `load`).
//!
//! # Exit codes
//! 0 success (a node exits 0 after a graceful leave), 1 runtime failure, 2 bad flags or
//! configuration (the message names the key, where it came from, and why).

use std::process::ExitCode;

use clap::Parser;
use vigil::{cli, config};

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
