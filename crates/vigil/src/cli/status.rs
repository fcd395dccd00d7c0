//! `vigil status`: the cluster at a glance, optionally refreshing in place.

use std::time::Duration;

use clap::Args;

use crate::api::model::StatusDto;

/// Flags of `vigil status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Node to ask.
    #[arg(long, default_value = super::DEFAULT_ADDR, env = "VIGIL_ADDR")]
    pub addr: String,
    /// Refresh every second until Ctrl-C.
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
    if !args.watch {
        let s: StatusDto = super::get_json(&args.addr, "/cluster/status").await?;
        print!("{}", render(&s));
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let text = match super::get_json::<StatusDto>(&args.addr, "/cluster/status").await {
            Ok(s) => render(&s),
            Err(e) => format!("{e:#}\n"),
        };
        // Home the cursor and clear the screen, then redraw.
        print!("\x1b[H\x1b[2J{text}\n(refreshing every second; Ctrl-C to stop)\n");
    }
}
