//! The HTTP answers the three services share: an error body, and the refusal of a write
//! (the producer's, which the gateway gives too when it has no quorum, so a client sees one
//! shape whichever member refused).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A JSON error body `{"error": "..."}`.
pub fn error_body(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Why a batch was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No quorum on this side, or no view yet.
    NoQuorum,
    /// The queue has no room for the batch.
    Full {
        /// Events queued now.
        queued: usize,
    },
}

/// The HTTP answer to a refused batch.
pub fn refusal(r: Refusal, capacity: usize) -> Response {
    match r {
        Refusal::NoQuorum => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": "no quorum: this member is on a side of a partition without a majority of voters; writes are refused until the partition heals (reads still work)",
                "hasQuorum": false,
            })),
        )
            .into_response(),
        Refusal::Full { queued } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            Json(json!({
                "error": "producer queue full: retry later",
                "queued": queued,
                "capacity": capacity,
            })),
        )
            .into_response(),
    }
}
