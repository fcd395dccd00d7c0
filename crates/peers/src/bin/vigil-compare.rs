//! `vigil-compare`: Vigil, foca (and chitchat) on the same simulated network, one table.
//!
//! ```text
//! cargo run --release -p peers --bin vigil-compare -- --nodes 100 --seed 1
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use peers::foca_peer::FocaPeer;
use peers::report;
use peers::scenario::{measure, Metrics};
use peers::vigil::VigilPeer;

/// Runs every protocol through the same runs and prints the comparison.
#[derive(Debug, Parser)]
#[command(name = "vigil-compare")]
struct Args {
    /// Nodes at the start.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Run seed (network draws, node RNGs, which nodes leave and crash).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual seconds of the noise run (100 ms jitter, 5 % loss); 0 skips it.
    /// Default: 3600, or 120 above 100 nodes.
    #[arg(long)]
    noise_s: Option<f64>,
    /// Protocols to run, comma-separated (Vigil first when listed: the ratios need it).
    #[arg(long, default_value = "vigil,foca,chitchat")]
    peers: String,
    /// Virtual seconds of chitchat's noise run (default: the same as --noise-s). chitchat
    /// runs as real tokio tasks and is the slowest to simulate.
    #[arg(long)]
    chitchat_noise_s: Option<f64>,
    /// Where to write the JSON (default: `target/vigil-compare/n<N>-seed<X>.json`).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let noise_s = args
        .noise_s
        .unwrap_or(if args.nodes > 100 { 120.0 } else { 3600.0 });
    let noise = (noise_s > 0.0).then(|| Duration::from_secs_f64(noise_s));
    let mut command = format!(
        "cargo run --release -p peers --bin vigil-compare -- --nodes {} --seed {}",
        args.nodes, args.seed
    );
    if args.noise_s.is_some() {
        command.push_str(&format!(" --noise-s {noise_s}"));
    }
    if args.peers != "vigil,foca,chitchat" {
        command.push_str(&format!(" --peers {}", args.peers));
    }
    if let Some(x) = args.chitchat_noise_s {
        command.push_str(&format!(" --chitchat-noise-s {x}"));
    }
    let chitchat_noise = match args.chitchat_noise_s {
        Some(x) => (x > 0.0).then(|| Duration::from_secs_f64(x)),
        None => noise,
    };
    let listed: Vec<&str> = args.peers.split(',').map(str::trim).collect();
    let mut names: Vec<&str> = Vec::new();
    if listed.contains(&"vigil") {
        names.push("vigil");
    }
    names.extend(listed.iter().copied().filter(|p| *p != "vigil"));
    let mut all: Vec<Metrics> = Vec::new();
    for name in names {
        eprintln!(
            "running {name} at {} nodes, seed {} ...",
            args.nodes, args.seed
        );
        let m = match name {
            "vigil" => measure::<VigilPeer>("vigil", args.nodes, args.seed, noise),
            "foca" => measure::<FocaPeer>("foca", args.nodes, args.seed, noise),
            "chitchat" => peers::chitchat_peer::measure(args.nodes, args.seed, chitchat_noise),
            other => anyhow::bail!("unknown protocol `{other}` (vigil, foca, chitchat)"),
        };
        eprintln!("  done in {:.1} s wall", m.wall_s);
        for n in &m.notes {
            eprintln!("  note: {n}");
        }
        all.push(m);
    }
    println!("{} nodes, seed {}\n", args.nodes, args.seed);
    println!("{}", report::table(&all));
    println!("command: {command}");
    let path = args.json.unwrap_or_else(|| {
        PathBuf::from(format!(
            "target/vigil-compare/n{}-seed{}.json",
            args.nodes, args.seed
        ))
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let doc = report::json(&all, &command);
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("json: {}", path.display());
    Ok(())
}
