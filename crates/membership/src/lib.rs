//! Vigil's membership protocol as a pure state machine (sans-IO).
//!
//! # Layout
//! - [`config`]: every tuning knob, presets, validation.
//! - [`member`]: identity, the replicated member record and its merge order.
//! - [`detector`]: the phi-accrual failure detector.
//! - [`health`]: the 0-100 health score.
//! - [`ring`]: who watches whom (K observers per member on pseudo-random rings, spread over zones).
//! - [`pool`]: one copy of each distinct record and metadata value, shareable by the nodes
//!   of one process (the simulator).
//! - [`gossip`]: the broadcast queue (each update retransmitted `mult * log10(n)` times).
//! - [`quorum`]: voters, quorum under a split-brain policy, the leader.
//! - [`codec`]: the versioned wire envelope and messages (postcard).
//! - [`node`]: [`Node`], which ties them together.
//! - [`effects`]: [`Effects`], the [`Output`] that collects a node's datagrams and events
//!   (for the simulator, tests and tools).
//!
//! # Data flow
//! The runtime owns the socket and the clock. It feeds the node datagrams
//! ([`Node::handle_datagram`]) and timeouts ([`Node::handle_timeout`], when
//! [`Node::poll_timeout`] says), always with the current time as a [`Duration`](core::time::Duration) since an
//! epoch of its choosing. The node answers through an [`Output`]: datagrams to send and
//! [`Event`]s to log or count. Nothing here reads a clock, opens a socket or draws an
//! unseeded random number, so the simulator can run thousands of nodes deterministically.
//!
//! The design note is `docs/design.md` at the repository root.

pub mod codec;
pub mod config;
pub mod detector;
pub mod effects;
pub mod error;
pub mod gossip;
pub mod health;
pub mod member;
pub mod node;
pub mod pool;
pub mod quorum;
pub mod ring;
mod slots;
mod view;

pub use config::{Config, SplitBrainPolicy};
pub use effects::Effects;
pub use error::{CommandError, ConfigError, DecodeError};
pub use member::{HealthSignals, Liveness, MemberRecord, Metadata, NodeId, Status};
pub use node::{Event, Identity, Node, Output, Stats};
pub use pool::RecordPool;
pub use view::{ClusterView, MemberView};
