//! `vigil config check FILE`: every mistake in the file and the `VIGIL_*` environment at
//! once (not one per run), each with its key, value, origin and reason.

use std::path::Path;

use vigil::config;

/// Runs `vigil config check`.
pub fn run(file: &Path) -> anyhow::Result<()> {
    let sources = config::Sources {
        file: Some(file.to_path_buf()),
        ..Default::default()
    }
    .with_process_env();
    let settings = config::load_all(&sources).map_err(config::Error::from_list)?;
    super::emitln(&format!(
        "{}: OK (heartbeat {:?}, failure timeout {:?}, fanout {}, phi threshold {})",
        file.display(),
        settings.protocol.heartbeat_interval,
        settings.protocol.failure_timeout,
        settings.protocol.gossip_fanout,
        settings.protocol.phi_threshold
    ))
}
