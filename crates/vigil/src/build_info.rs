//! What this binary is: version, git commit, build profile and compiled features, for
//! `/actuator/info` and the `vigil_build_info` metric (set by `build.rs`).

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit built (12 hex digits), or `unknown` outside a git checkout.
pub const COMMIT: &str = env!("BUILD_INFO_GIT_COMMIT");
/// Cargo's profile: `debug` or `release`.
pub const PROFILE: &str = env!("BUILD_INFO_PROFILE");

/// Optional features compiled in.
pub fn features() -> Vec<&'static str> {
    let mut out = Vec::new();
    if cfg!(feature = "kafka") {
        out.push("kafka");
    }
    out
}
