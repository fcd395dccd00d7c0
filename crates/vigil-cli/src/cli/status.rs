//! `vigil status`: the cluster at a glance, optionally refreshing in place.

use std::time::Duration;

use clap::Args;

use super::{Output, Target};
use vigil::api::model::StatusDto;

/// Flags of `vigil status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Output format (with --watch and json: one JSON object per line and refresh).
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Refresh every second until Ctrl-C (redrawn in place on a terminal, appended otherwise).
    #[arg(long)]
    pub watch: bool,
}

/// Renders the summary.
pub fn render(s: &StatusDto) -> String {
    let mut out = format!(
        "cluster {:?} as seen by {} (generation {})\n\
         quorum:  {} ({} voters)\n\
         leader:  {}\n\
         members: {} total, {} healthy\n",
        s.cluster,
        s.self_id,
        s.generation,
        if s.has_quorum { "yes" } else { "NO" },
        s.voters,
        s.leader.as_deref().unwrap_or("none"),
        s.total_nodes,
        s.healthy_nodes,
    );
    let counts: Vec<String> = s
        .nodes_by_status
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out.push_str(&format!("by status: {}\n", counts.join(", ")));
    let members: Vec<_> = s.membership.values().cloned().collect();
    out.push('\n');
    out.push_str(&super::members::table(
        &members,
        time::OffsetDateTime::now_utc(),
    ));
    out
}

/// Runs `vigil status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let base = args.target.url();
    if !args.watch {
        let s: StatusDto = super::get_json(&base, "/cluster/status").await?;
        return match args.output {
            Output::Json => super::emit_json(&s),
            Output::Table => super::emit(&render(&s)),
        };
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let fetched = super::get_json::<StatusDto>(&base, "/cluster/status").await;
        let text = match (&fetched, args.output) {
            (Ok(s), Output::Json) => format!("{}\n", serde_json::to_string(s)?),
            (Ok(s), Output::Table) => render(s),
            (Err(e), Output::Json) => {
                format!("{}\n", serde_json::json!({ "error": format!("{e:#}") }))
            }
            (Err(e), Output::Table) => format!("{e:#}\n"),
        };
        let frame = match (terminal, args.output) {
            // Home the cursor and clear the screen, then redraw.
            (true, Output::Table) => {
                format!("\x1b[H\x1b[2J{text}\n(refreshing every second; Ctrl-C to stop)\n")
            }
            // A file or a pipe gets no screen codes: one block per refresh, separated.
            (false, Output::Table) => format!(
                "--- {}\n{text}\n",
                vigil::api::model::rfc3339(std::time::SystemTime::now())
            ),
            (_, Output::Json) => text,
        };
        super::emit(&frame)?;
    }
}
