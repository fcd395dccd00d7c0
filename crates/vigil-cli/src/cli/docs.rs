//! `vigil completions SHELL` and `vigil man`: generated from the same clap definition the
//! parser uses, so they cannot drift from the flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Flags of `vigil completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `vigil completions bash > /etc/bash_completion.d/vigil`.
    pub shell: Shell,
}

/// Flags of `vigil man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write vigil.1 and one page per subcommand (vigil-status.1, ...) into this directory
    /// instead of printing vigil.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the completion script.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "vigil", &mut buf);
    super::emit(&String::from_utf8_lossy(&buf))
}

/// Prints vigil.1, or writes every page into `--out-dir`.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            super::emitln(&format!("man pages written to {}", dir.display()))
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            super::emit(&String::from_utf8_lossy(&buf))
        }
    }
}
