//! The open-file limit: raised to what the system allows at start, and the HTTP connection cap
//! fitted under it.
//!
//! Every HTTP connection holds a file descriptor. Many systems start processes with a soft
//! limit of 1024 and a hard limit far above it; a node that keeps 1024 lets a few hundred slow
//! clients exhaust it, and then `accept` fails with "Too many open files" for everyone. Raising
//! the soft limit to the hard one needs no privilege. The cap on connections then stays
//! [`RESERVED`] descriptors under the limit, for what the node itself opens (its UDP socket,
//! the store's files, its calls to peers, its log).

use tracing::{info, warn};

/// Descriptors kept for the node's own use, not for HTTP clients.
pub const RESERVED: u64 = 256;

/// The soft limit of open files before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// Soft limit at start.
    pub before: u64,
    /// Soft limit now.
    pub now: u64,
}

/// Raises the soft open-file limit to the hard limit where the system allows it (on macOS the
/// kernel may refuse an unlimited hard limit; then 65536 is tried). Never lowers it.
pub fn raise() -> Result<OpenFiles, nix::Error> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let mut now = soft;
    for target in [hard, hard.min(65_536)] {
        if target > now && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
            now = target;
            break;
        }
    }
    Ok(OpenFiles { before: soft, now })
}

/// `configured` (`http.max-connections`), lowered to fit [`RESERVED`] descriptors under a soft
/// limit of `limit`; never below 1.
pub fn fit_connections(configured: usize, limit: u64) -> usize {
    let room = usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

/// At start: raises the limit, logs what it did, and returns the connection cap to use.
pub fn prepare(configured: usize) -> usize {
    let limit = match raise() {
        Ok(files) => {
            if files.now > files.before {
                info!(
                    from = files.before,
                    to = files.now,
                    "raised the open-file limit"
                );
            }
            files.now
        }
        Err(e) => {
            warn!(error = %e, "cannot read the open-file limit; http.max-connections used as set");
            return configured;
        }
    };
    let cap = fit_connections(configured, limit);
    if cap < configured {
        warn!(
            configured,
            cap,
            open_file_limit = limit,
            "http.max-connections lowered to fit under the open-file limit"
        );
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_under_the_limit() {
        assert_eq!(fit_connections(4096, 1024), 768);
        assert_eq!(fit_connections(4096, 1 << 20), 4096);
        assert_eq!(fit_connections(4096, 100), 1);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let files = raise().unwrap();
        assert!(files.now >= files.before, "{files:?}");
    }
}
