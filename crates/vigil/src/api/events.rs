//! `GET /cluster/events`: every change this node sees, as Server-Sent Events.
//!
//! One SSE event per change: `event:` is its name ([`crate::Event::name`]: `member-joined`,
//! `member-updated`, `member-suspect`, `member-failed`, `member-left`, `member-removed`,
//! `member-rejoined`, `quorum-gained`, `quorum-lost`, `leader-changed`), `data:` its JSON
//! ([`crate::Change::to_json`]: `nodeId`, `status`, `generation`, `at` in RFC 3339, ...),
//! and `id:` `<generation>-<number>` (this node's generation, the change's number).
//!
//! A client that reconnects with `Last-Event-ID` gets the changes it missed, if they are
//! among the last [`crate::runtime::bus::RECENT`] (1024) this process published. Otherwise
//! (older, or an id of an earlier start of the node) it first gets one `snapshot` event, whose
//! `data:` is the whole view (`members`, `hasQuorum`, `leader`) and whose `id:` is that of
//! the last change the view includes, then the changes after it. A client that reads too
//! slowly (1024 changes behind) gets a `: lagged` comment and a `snapshot` the same way. A
//! comment every 15 s keeps idle connections open through proxies.
//!
//! A read endpoint like `/cluster/members`: no token needed.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;

use super::AppState;
use crate::event::{rfc3339, Update, View};
use crate::subscription::{Start, Subscription};

/// `<generation>-<number>` of an SSE `id:`.
pub fn event_id(generation: u64, number: u64) -> String {
    format!("{generation}-{number}")
}

/// Where a client with this `Last-Event-ID` resumes, on a node of `generation`.
pub(crate) fn resume_from(last_event_id: Option<&str>, generation: u64) -> Start {
    let Some(id) = last_event_id else {
        return Start::Now;
    };
    match id.trim().split_once('-') {
        Some((g, n)) if g.parse::<u64>().ok() == Some(generation) => match n.parse::<u64>() {
            Ok(n) => Start::After(n),
            Err(_) => Start::Snapshot,
        },
        _ => Start::Snapshot,
    }
}

/// The `data:` of a `snapshot` event.
pub fn snapshot_json(view: &View, generation: u64) -> serde_json::Value {
    let members: Vec<_> = view
        .members
        .iter()
        .map(|m| {
            let mut v = m.to_json();
            v["healthScore"] = json!(m.health_score);
            v
        })
        .collect();
    json!({
        "event": "snapshot",
        "observer": view.self_id,
        "generation": generation,
        "hasQuorum": view.has_quorum,
        "leader": view.leader,
        "lastEventId": view.last_change,
        "at": rfc3339(SystemTime::now()),
        "members": members,
    })
}

/// The handler.
pub async fn events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let info = state.handle.info.clone();
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let start = resume_from(last, info.generation);
    let stream = Subscription::new(state.handle.clone(), start).map(move |update| {
        let event = match update {
            Update::Change(c) => SseEvent::default()
                .event(c.event.name())
                .id(event_id(info.generation, c.id))
                .data(c.to_json(&info.id, info.generation).to_string()),
            Update::Snapshot(view) => SseEvent::default()
                .event("snapshot")
                .id(event_id(info.generation, view.last_change))
                .data(snapshot_json(&view, info.generation).to_string()),
            Update::Lagged { missed } => SseEvent::default().comment(format!(
                "lagged: {missed} changes missed; a snapshot follows"
            )),
        };
        Ok::<_, Infallible>(event)
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_of_this_start_resumes_and_any_other_gets_a_snapshot() {
        assert_eq!(resume_from(None, 7), Start::Now);
        assert_eq!(resume_from(Some("7-42"), 7), Start::After(42));
        assert_eq!(resume_from(Some("6-42"), 7), Start::Snapshot);
        assert_eq!(resume_from(Some("garbage"), 7), Start::Snapshot);
        assert_eq!(resume_from(Some("7-x"), 7), Start::Snapshot);
        assert_eq!(event_id(7, 42), "7-42");
    }
}
