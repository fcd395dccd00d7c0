//! What stands between the open gossip port and the core: a per-source rate limit, then the
//! keyring's seal check, then the core's decoder (which bounds sizes and never panics).
//!
//! - [`keyring`]: authenticated (and by default encrypted) datagrams with a rotating
//!   keyring shared by the cluster.
//! - [`limiter`]: token buckets per source address.
//! - [`store`]: the keyring file that keeps rotations across restarts.
//! - [`secrets`]: fresh keys and admin tokens from the operating system's random source.

pub mod keyring;
pub mod limiter;
pub mod secrets;
pub mod store;

pub use keyring::{Key, KeyError, Keyring};
pub use limiter::SourceLimiter;
