//! `vigil_config`: the configuration parser of the `vigil` binary as a library, so that the
//! fuzz target `fuzz/fuzz_targets/config.rs` can reach it. The binary does not use this
//! library (it declares the same modules itself); nothing else is exported.

pub mod config;
/// The keyring's key parser, which `config` uses to check `security.gossip-keys`.
#[allow(dead_code, unused_imports)]
mod security;
