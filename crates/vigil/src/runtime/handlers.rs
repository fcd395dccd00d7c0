//! Event handlers (`node.event-handlers`), as Serf runs them: each command runs once per
//! change, through `sh -c`, with the change in environment variables and its JSON (the
//! `data:` of `GET /cluster/events`) on stdin.
//!
//! | variable | value |
//! |---|---|
//! | `VIGIL_EVENT` | `member-joined`, `member-failed`, ... ([`crate::Event::name`]) |
//! | `VIGIL_EVENT_ID` | the change's number on this node |
//! | `VIGIL_MEMBER_ID` | the member concerned (the leader for `leader-changed`, this node for quorum) |
//! | `VIGIL_STATUS` | its status (`HEALTHY`, `FAILED`, ...; `QUORUM`, `NO_QUORUM`, `LEADER`, `NO_LEADER`) |
//! | `VIGIL_GENERATION` | its generation |
//! | `VIGIL_AT` | when, RFC 3339 |
//! | `VIGIL_SELF_ID`, `VIGIL_CLUSTER` | this node and its cluster |
//!
//! A handler never holds the node up: each one reads the event bus through its own bounded
//! queue (a broadcast receiver of [`super::bus::CAPACITY`] changes) in a task of its own and
//! runs one command at a time, killed after `node.event-handler-timeout`. A handler that
//! falls further behind loses the oldest changes: they are counted in
//! `cluster_event_handler_events_total{outcome="dropped"}` and logged.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Handle;
use crate::event::Change;

/// Starts one task per command; each stops when `stop` is cancelled or the runtime stops.
pub fn start(
    commands: &[String],
    timeout: Duration,
    handle: &Handle,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    commands
        .iter()
        .enumerate()
        .map(|(index, command)| {
            let handler = Handler {
                index,
                command: command.clone(),
                timeout,
                handle: handle.clone(),
            };
            tokio::spawn(handler.run(stop.clone()))
        })
        .collect()
}

struct Handler {
    index: usize,
    command: String,
    timeout: Duration,
    handle: Handle,
}

impl Handler {
    async fn run(self, stop: CancellationToken) {
        let bus = self.handle.bus.clone();
        let mut rx = bus.subscribe();
        let closed = bus.closed_token();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                _ = closed.cancelled() => return,
                next = rx.recv() => next,
            };
            match next {
                Ok(change) => {
                    let outcome = tokio::select! {
                        _ = stop.cancelled() => return,
                        outcome = self.deliver(&change) => outcome,
                    };
                    self.handle.metrics.handler_events(self.index, outcome, 1);
                }
                Err(RecvError::Lagged(missed)) => {
                    self.handle
                        .metrics
                        .handler_events(self.index, "dropped", missed);
                    warn!(
                        handler = self.index,
                        missed,
                        "an event handler fell behind; the oldest events were dropped for it"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Runs the command for one change; the outcome is a metric label.
    async fn deliver(&self, change: &Arc<Change>) -> &'static str {
        let info = &self.handle.info;
        let data = change.to_json(&info.id, info.generation);
        let text = |k: &str| match &data[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .env("VIGIL_EVENT", change.event.name())
            .env("VIGIL_EVENT_ID", change.id.to_string())
            .env("VIGIL_MEMBER_ID", text("nodeId"))
            .env("VIGIL_STATUS", text("status"))
            .env("VIGIL_GENERATION", text("generation"))
            .env("VIGIL_AT", text("at"))
            .env("VIGIL_SELF_ID", &info.id)
            .env("VIGIL_CLUSTER", &info.cluster)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                warn!(handler = self.index, error = %e, "cannot start an event handler");
                return "failed";
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let mut line = data.to_string();
            line.push('\n');
            // a handler that does not read its stdin is fine
            let _ = tokio::time::timeout(self.timeout, stdin.write_all(line.as_bytes())).await;
        }
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => {
                debug!(
                    handler = self.index,
                    event = change.event.name(),
                    "event handler ran"
                );
                "ok"
            }
            Ok(Ok(status)) => {
                warn!(handler = self.index, event = change.event.name(), %status, "event handler failed");
                "failed"
            }
            Ok(Err(e)) => {
                warn!(handler = self.index, error = %e, "event handler failed");
                "failed"
            }
            Err(_) => {
                let _ = child.kill().await;
                warn!(
                    handler = self.index,
                    event = change.event.name(),
                    timeout_ms = self.timeout.as_millis() as u64,
                    "event handler killed after node.event-handler-timeout"
                );
                "timeout"
            }
        }
    }
}
