//! Development only: Vigil side by side with other membership libraries (issue 7), on the
//! simulator's virtual clock and network, with the same seeds, latency model, loss and
//! faults for every protocol.
//!
//! - [`harness`]: N nodes of any sans-IO protocol ([`Peer`]) on `sim`'s own event loop
//!   (`sim::event_loop`: its clock, agenda and network), with exact-time trackers and
//!   false-positive accounting.
//! - [`vigil`]: Vigil's core as a [`Peer`], configured as `vigil-sim` configures it.
//! - [`foca_peer`]: foca (SWIM) on `Config::new_lan(N)`.
//! - [`chitchat_peer`]: chitchat (scuttlebutt + phi) on its defaults, driven through its
//!   transport abstraction on the same network, on tokio's paused clock.
//! - [`scenario`]: the runs and the [`Metrics`] they fill.
//! - [`report`]: the table and the JSON with Vigil/peer ratios.
//!
//! The `vigil-compare` binary runs them all: see `docs/benchmarks.md`.

pub mod chitchat_peer;
pub mod foca_peer;
pub mod harness;
pub mod report;
pub mod scenario;
pub mod vigil;

pub use harness::{Cluster, Peer};
pub use scenario::{measure, Metrics};
