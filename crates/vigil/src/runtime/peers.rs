//! Remembered peers: the gossip addresses of the members this node last saw, kept in a
//! file (`node.peers-file`) and added to its seeds at the next start.
//!
//! Why: a node started without seeds founds a new cluster at once. Restarted with the
//! command line it was first started with (the first node of `vigil up`, of a compose file,
//! of a test), it used to found a second cluster of one beside the one it had founded:
//! two leaders while its old voters held quorum, and no quorum anywhere when it had been
//! the only voter. A node that remembers peers starts as the first of its own seed list
//! instead, which founds only if none of them answers within a second (`Node::new`), and
//! otherwise rejoins. Serf keeps a snapshot for the same reason.
//!
//! The file holds one `IP:PORT` per line, voters first. It is advice, not state: a missing,
//! unreadable or garbled file costs the memory, never the start (a warning names it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Handle;
use membership::Status;

/// Most addresses kept: enough to find a live member after most of a cluster moved.
const MAX_REMEMBERED: usize = 64;

/// The addresses in `path`; none when the file is missing. Lines that are not addresses
/// are skipped with a warning.
pub(crate) fn load(path: &Path) -> Vec<SocketAddr> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot read the remembered peers; starting without them");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.parse::<SocketAddr>() {
            Ok(a) if !out.contains(&a) => out.push(a),
            Ok(_) => {}
            Err(_) => {
                warn!(file = %path.display(), line = n + 1, text = line, "not an IP:PORT; skipped")
            }
        }
    }
    out.truncate(MAX_REMEMBERED);
    out
}

/// Writes `addrs` to `path` whole or not at all (a temporary file renamed over it), making
/// its directory if needed.
pub(crate) fn store(path: &Path, addrs: &[SocketAddr]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::new();
    for a in addrs {
        text.push_str(&a.to_string());
        text.push('\n');
    }
    let tmp = path.with_extension("peers.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The seeds a node starts with: the configured ones, then the remembered ones. A node with
/// no configured seed that remembers peers lists its own address first, so that it founds a
/// cluster only if none of them answers (see the module doc).
pub(crate) fn seeds_with(
    configured: &[SocketAddr],
    remembered: &[SocketAddr],
    me: SocketAddr,
) -> Vec<SocketAddr> {
    let mut out = configured.to_vec();
    if out.is_empty() && remembered.iter().any(|a| *a != me) {
        out.push(me);
    }
    for a in remembered {
        if *a != me && !out.contains(a) {
            out.push(*a);
        }
    }
    out
}

/// The addresses worth remembering in a view: every other member not gone, voters first.
fn worth_remembering(view: &membership::ClusterView) -> Vec<SocketAddr> {
    let mut members: Vec<_> = view
        .members
        .iter()
        .filter(|m| m.id != view.self_id && m.status != Status::Left)
        .collect();
    members.sort_by_key(|m| (!m.voter, m.id.clone()));
    let mut out: Vec<SocketAddr> = Vec::new();
    for m in members {
        if !out.contains(&m.addr) {
            out.push(m.addr);
        }
    }
    out.truncate(MAX_REMEMBERED);
    out
}

/// Keeps `path` up to date with the view every `every`, writing only when the addresses
/// changed. A view with no other member leaves the file as it is: a node that lost touch
/// with everyone must still remember where they were.
pub(crate) async fn keep(
    path: PathBuf,
    mut written: Vec<SocketAddr>,
    handle: Handle,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Ok(snapshot) = handle.snapshot().await else {
            return;
        };
        let addrs = worth_remembering(&snapshot.view);
        if addrs.is_empty() || addrs == written {
            continue;
        }
        match store(&path, &addrs) {
            Ok(()) => {
                written = addrs;
                failing = false;
            }
            Err(e) if !failing => {
                failing = true;
                warn!(file = %path.display(), error = %e, "cannot write the remembered peers (node.peers-file); a restart without seeds will found a new cluster");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_node_without_seeds_that_remembers_peers_lists_itself_first() {
        let me = addr(1);
        assert_eq!(seeds_with(&[], &[], me), Vec::<SocketAddr>::new());
        assert_eq!(seeds_with(&[], &[me], me), Vec::<SocketAddr>::new());
        assert_eq!(
            seeds_with(&[], &[addr(2), addr(3)], me),
            vec![me, addr(2), addr(3)]
        );
        assert_eq!(
            seeds_with(&[addr(9), addr(2)], &[addr(2), addr(3)], me),
            vec![addr(9), addr(2), addr(3)]
        );
    }

    #[test]
    fn stored_peers_load_back_and_a_garbled_file_costs_only_its_bad_lines() {
        let dir = std::env::temp_dir().join(format!("vigil-peers-{}", std::process::id()));
        let path = dir.join("deep/n1.peers");
        assert!(load(&path).is_empty());
        store(&path, &[addr(2), addr(3)]).unwrap();
        assert_eq!(load(&path), vec![addr(2), addr(3)]);
        std::fs::write(
            &path,
            "127.0.0.1:4\nnot an address\n\n127.0.0.1:4\n[::1]:5\n",
        )
        .unwrap();
        assert_eq!(load(&path), vec![addr(4), "[::1]:5".parse().unwrap()]);
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(load(&path).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
