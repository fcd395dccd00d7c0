//! Deterministic simulator for Vigil's membership core, and the `vigil-sim` report.
//!
//! # Layout
//! - [`agenda`]: the virtual clock's queue of future events, ordered by (time, sequence).
//! - [`network`]: the seeded virtual network: latency with jitter, loss, partitions.
//! - [`event_loop`]: the clock, the agenda and the network as one loop, shared by [`Sim`] and
//!   by `crates/peers` (other protocols on the same clock and network).
//! - [`process`]: one simulated process: its core, lifecycle state, counters, id and address.
//! - [`sim`]: [`Sim`], the event loop that drives N cores on the clock and the network.
//! - `faults`: crash, pause, restart, join, leave, partitions and loss, as plain calls.
//! - [`tracker`]: how long one membership change takes to reach every live member.
//! - [`invariants`]: the safety invariants checked every step, and [`Violation`].
//! - [`scenarios`]: the `vigil-sim` scenarios (join, crash, pause, partition, churn, jitter,
//!   and randomized `trials`).
//! - [`report`]: the JSON report and its statistics.
//!
//! # Data flow
//! [`Sim::run_until`] runs the [`event_loop`]: it pops the earliest agenda item, sets the
//! clock to its time and hands it to the node it concerns: a datagram to
//! `handle_datagram`, a due timer to `handle_timeout`. The node's output (collected in a
//! `membership::Effects`) goes back through the network into the agenda (after latency,
//! unless lost or cut); its events feed the invariant ledger and the counters; trackers look at its table. Every `step` the safety invariants run. A
//! violation stops the run with the virtual time and the members involved; the scenario
//! runner adds the command that reproduces it.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use sim::{Sim, SimConfig};
//!
//! let mut sim = Sim::new(SimConfig::new(10, 42)).unwrap();
//! sim.run_until(Duration::from_secs(5)).unwrap();
//! sim.crash(3);
//! sim.run_for(Duration::from_secs(20)).unwrap();
//! assert!(sim.converged());
//! ```

pub mod agenda;
pub mod event_loop;
mod faults;
pub mod invariants;
pub mod network;
pub mod process;
pub mod report;
pub mod scenarios;
pub mod sim;
pub mod tracker;

pub use invariants::Violation;
pub use network::{Fate, NetworkConfig};
pub use process::{Process, State};
pub use report::Report;
pub use scenarios::trials::{run_trials, TrialsReport};
pub use scenarios::{run, Scenario, ScenarioParams};
pub use sim::{Counters, Sim, SimConfig, SimError};
pub use tracker::{Predicate, Tracker, TrackerId};
