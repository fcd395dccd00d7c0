//! What stands between the open gossip port and the core: a per-source rate limit, then the
//! keyring's seal check, the replay window and a per-member rate limit, then the core's
//! decoder (which bounds sizes and never panics).
//!
//! - [`keyring`]: authenticated (and by default encrypted) datagrams with a rotating
//!   keyring shared by the cluster; every seal carries a stamp (sender, boot, counter).
//! - [`replay`]: the window that accepts each stamp once.
//! - [`limiter`]: token buckets per source address and per member.
//! - [`store`]: the keyring file that keeps rotations across restarts.
//! - [`secrets`]: fresh keys and admin tokens from the operating system's random source.

pub mod keyring;
pub mod limiter;
pub mod replay;
pub mod secrets;
pub mod store;

pub use keyring::{Key, KeyError, Keyring, Stamp};
pub use limiter::{MemberLimiter, SourceLimiter};
pub use replay::ReplayWindow;
