//! A service a member runs beside membership, on the same HTTP server: its routes are served
//! with the API's (under the same body limit, timeout and connection bounds), its health is
//! a component of `/actuator/health`, and every answer it gives feeds this member's latency
//! and error signals (so a slow service lowers the member's health score).
//!
//! The library knows no service of its own: the seed's log pipeline (crate `vigil-logs`) is
//! one, and `vigil node` starts it by the member's `node.role`. A [`Starter`] is handed to
//! [`crate::runtime::daemon::start_with`], which calls it once the runtime task runs.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::Router;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::runtime::Handle;

/// What a service tells `/actuator/health` (and `/metrics`) about itself.
pub trait Service: Send + Sync {
    /// Its component name in `/actuator/health`, e.g. `producer`.
    fn name(&self) -> &'static str;

    /// Whether it can do its work (`false` makes the member DOWN), and details as JSON.
    fn health(&self) -> (bool, Value);
}

/// What a [`Starter`] started.
#[derive(Default)]
pub struct Started {
    /// Routes served beside the membership API (none for a member without a service).
    pub router: Router,
    /// The service, for the health endpoint; `None` when the member runs none.
    pub service: Option<Arc<dyn Service>>,
    /// Its background tasks: each watches the stop token it was given, and is aborted at
    /// shutdown if it does not end within half a second.
    pub tasks: Vec<JoinHandle<()>>,
}

impl Started {
    /// No service: the membership API alone.
    pub fn none() -> Started {
        Started::default()
    }
}

/// Starts a member's service from its settings and the runtime's [`Handle`], inside the tokio
/// runtime; the token is cancelled when the member stops.
pub type Starter =
    Box<dyn FnOnce(&Settings, &Handle, CancellationToken) -> anyhow::Result<Started> + Send>;

/// `router` with every answer recorded in this member's service load (latency, and failure
/// for a 5xx or a 429), which the member's health score reads.
pub fn measured(router: Router, handle: &Handle) -> Router {
    let load = handle.service_load.clone();
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let load = load.clone();
            async move {
                let started = Instant::now();
                let answer = next.run(req).await;
                let status = answer.status();
                let failed = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                load.record(started.elapsed(), failed);
                answer
            }
        },
    ))
}
