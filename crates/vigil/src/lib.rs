//! Vigil as a library: cluster membership, failure detection and quorum for a Rust service.
#![deny(missing_docs)]

pub mod config;

#[doc(hidden)]
pub mod api;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod metrics;
#[doc(hidden)]
pub mod roles;
#[doc(hidden)]
pub mod runtime;
#[doc(hidden)]
pub mod security;
#[doc(hidden)]
pub mod tls;
#[doc(hidden)]
pub mod transport;
