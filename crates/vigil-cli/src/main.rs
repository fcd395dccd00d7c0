//! The `vigil` binary: the command line over the [`vigil`] library and the seed's log
//! pipeline ([`vigil_logs`]): `vigil node`, `up`, `members`, `status`, `events`, `keys`,
//! `config`, `load`, `completions`, `man`. Start-up is here: flags, the config's layers
//! (file, `VIGIL_*`, flags), logging and signals, then `vigil node` hands the member's role
//! to [`vigil_logs::start`] through [`vigil::runtime::daemon::run`].
//!
//! # Exit codes
//! 0 success (a node exits 0 after a graceful leave), 1 runtime failure, 2 bad flags or
//! configuration (the message names the key, where it came from, and why).

use std::process::ExitCode;

use clap::Parser;
use vigil::config;

mod cli;

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
