//! `vigil members`: a table like `serf members` or `nodetool status`.

use clap::Args;

use super::{Output, Target};
use vigil::api::model::MemberDto;

/// Flags of `vigil members`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    pub target: Target,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Only members whose status matches this regular expression (e.g. 'FAILED|SUSPECT').
    #[arg(long, value_name = "REGEX")]
    pub status: Option<String>,
}

/// Runs `vigil members`.
pub async fn run(args: MembersArgs) -> anyhow::Result<()> {
    let filter = match &args.status {
        Some(re) => Some(
            regex::Regex::new(re)
                .map_err(|e| anyhow::anyhow!("--status: invalid regular expression: {e}"))?,
        ),
        None => None,
    };
    let mut members: Vec<MemberDto> =
        super::get_json(&args.target.url(), "/cluster/members").await?;
    if let Some(re) = &filter {
        members.retain(|m| re.is_match(&m.status));
    }
    match args.output {
        Output::Json => super::emit_json(&members),
        Output::Table => super::emit(&table(&members, time::OffsetDateTime::now_utc())),
    }
}

/// "1.2s ago" from an RFC 3339 time.
pub fn ago(rfc3339: Option<&str>, now: time::OffsetDateTime) -> String {
    let Some(t) = rfc3339.and_then(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return "-".into();
    };
    let secs = (now - t).as_seconds_f64().max(0.0);
    if secs < 120.0 {
        format!("{secs:.1}s ago")
    } else {
        format!("{:.0}m ago", secs / 60.0)
    }
}

/// Renders aligned columns.
pub fn table(members: &[MemberDto], now: time::OffsetDateTime) -> String {
    let header = [
        "NODE",
        "ADDRESS",
        "HTTP",
        "ROLE",
        "ZONE",
        "STATUS",
        "HEALTH",
        "PHI",
        "GENERATION",
        "LAST HEARD",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for m in members {
        rows.push(vec![
            m.node_id.clone(),
            m.gossip_address.clone(),
            m.http_address.clone().unwrap_or_else(|| "-".into()),
            m.role.clone(),
            m.zone.clone(),
            m.status.clone(),
            m.health_score.to_string(),
            match m.phi_score {
                None => "-".into(),
                Some(phi) if phi >= 1e6 => "inf".into(),
                Some(phi) => format!("{phi:.2}"),
            },
            m.generation.to_string(),
            ago(m.last_heartbeat_time.as_deref(), now),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::api::model::SignalsDto;

    #[test]
    fn the_table_has_one_aligned_row_per_member() {
        let m = MemberDto {
            node_id: "coordinator".into(),
            status: "HEALTHY".into(),
            health_score: 98,
            phi_score: Some(0.25),
            last_heartbeat_time: Some("2024-12-02T10:30:45Z".into()),
            generation: 7,
            incarnation: 0,
            role: "coordinator".into(),
            zone: "default".into(),
            rack: String::new(),
            gossip_address: "127.0.0.1:7947".into(),
            http_address: Some("127.0.0.1:8081".into()),
            voter: true,
            monitored: true,
            signals: SignalsDto {
                cpu_pct: 0,
                mem_pct: 0,
                error_pct: 0,
            },
            tags: Default::default(),
        };
        let now = time::OffsetDateTime::parse(
            "2024-12-02T10:30:46Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let t = table(&[m], now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("coordinator  127.0.0.1:7947"), "{t}");
        assert!(
            lines[1].contains("HEALTHY") && lines[1].contains("1.0s ago"),
            "{t}"
        );
        assert_eq!(lines[0].find("STATUS"), lines[1].find("HEALTHY"));
    }
}
