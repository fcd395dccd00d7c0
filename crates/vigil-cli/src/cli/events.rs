//! `vigil events`: follows a member's `GET /cluster/events`, one line per change, like
//! `serf monitor` or `consul watch`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;
use vigil::api::sse::{SseEvent, SseParser};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One aligned line per change.
    Text,
    /// One JSON object per line (the SSE `data:`, with `event` and `id`).
    Json,
}

/// Flags of `vigil events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Node to follow.
    #[arg(long, default_value = super::DEFAULT_ADDR, env = "VIGIL_ADDR")]
    pub addr: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// With the node's 15 s keep-alive comments, this much silence means the connection is dead.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The text line of one event.
pub fn render(e: &SseEvent) -> String {
    let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    let s = |k: &str| match &data[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        v => v.to_string(),
    };
    if e.event == "snapshot" {
        let members: Vec<String> = data["members"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        format!(
                            "{} {}",
                            m["nodeId"].as_str().unwrap_or("?"),
                            m["status"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        return format!(
            "{:<24}  {:<15}  {} members: {}",
            s("at"),
            "snapshot",
            members.len(),
            members.join(", ")
        );
    }
    let mut line = format!(
        "{:<24}  {:<15}  {:<16}  {:<9}  generation {}",
        s("at"),
        e.event,
        s("nodeId"),
        s("status"),
        s("generation")
    );
    if let (Some(r), Some(v)) = (data["reachable"].as_u64(), data["voters"].as_u64()) {
        line.push_str(&format!("  ({r}/{v} voters reached)"));
    }
    line
}

/// The JSON line of one event.
pub fn render_json(e: &SseEvent) -> String {
    let mut data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut data {
        map.entry("event")
            .or_insert_with(|| Value::String(e.event.clone()));
        map.insert("sseId".into(), Value::String(e.id.clone()));
    }
    data.to_string()
}

/// Runs `vigil events` until the node closes the stream or stdout is closed.
pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let url = format!("{}/cluster/events", vigil::tls::base_url(&args.addr));
    let client = super::client(Duration::from_secs(365 * 24 * 3600))?
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut response = client
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is a node running there?"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("{url} answered {status}: {}", body.trim());
    }
    let mut parser = SseParser::default();
    let stdout = std::io::stdout();
    loop {
        let chunk = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            c = tokio::time::timeout(IDLE_LIMIT, response.chunk()) => c,
        };
        let chunk = match chunk {
            Err(_) => anyhow::bail!("{url}: nothing received for {IDLE_LIMIT:?}"),
            Ok(Err(e)) => {
                return Err(anyhow::Error::from(e).context(format!("{url}: stream broken")))
            }
            Ok(Ok(None)) => anyhow::bail!("{url}: the node closed the stream"),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let mut out = stdout.lock();
        for event in parser.feed(&chunk) {
            let line = match args.output {
                Output::Text => render(&event),
                Output::Json => render_json(&event),
            };
            // A closed pipe (`vigil events | head`) ends the command quietly.
            match writeln!(out, "{line}").and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_chunks_and_comments_skipped() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nevent: member-fa").is_empty());
        let events = p.feed(b"iled\nid: 7-3\ndata: {\"nodeId\":\"n3\"}\n\r\n");
        assert_eq!(
            events,
            vec![SseEvent {
                event: "member-failed".into(),
                id: "7-3".into(),
                data: "{\"nodeId\":\"n3\"}".into()
            }]
        );
        let json: Value = serde_json::from_str(&render_json(&events[0])).unwrap();
        assert_eq!(
            (json["event"].as_str(), json["nodeId"].as_str()),
            (Some("member-failed"), Some("n3"))
        );
        assert!(render(&events[0]).contains("member-failed"));
    }
}
