//! The keyring file (`security.keyring-file`): one base64 key per line, primary first.
//!
//! A node with a keyring file loads its keys from it at start (over `security.gossip-keys`)
//! and rewrites it after every rotation, so a member restarted after `vigil keys use` still
//! speaks the cluster's current key. Writes go to a temporary file renamed into place, with
//! mode 0600: the file is a secret.

use std::io::{self, Write};
use std::path::Path;

use super::keyring::{Key, KeyError};

/// A keyring file that cannot be read or does not hold valid keys.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A line is not a key.
    #[error("{path} line {line}: {source}")]
    BadKey {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Why.
        source: KeyError,
    },
    /// No key at all.
    #[error("{0}: holds no key")]
    Empty(String),
}

/// Reads the keys of `path`, primary first; `Ok(None)` if the file does not exist yet.
pub fn load(path: &Path) -> Result<Option<Vec<Key>>, StoreError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: shown,
                source,
            })
        }
    };
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = Key::parse(line).map_err(|source| StoreError::BadKey {
            path: shown.clone(),
            line: i + 1,
            source,
        })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(StoreError::Empty(shown));
    }
    Ok(Some(keys))
}

/// Replaces `path` with `keys` (primary first), atomically, readable by the owner only.
pub fn save(path: &Path, keys: &[Key]) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut text =
        String::from("# vigil gossip keyring: primary first (managed by `vigil keys`)\n");
    for k in keys {
        text.push_str(&k.encode());
        text.push('\n');
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(io_err)?;
    f.write_all(text.as_bytes()).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_save_and_load_in_order() {
        let dir = std::env::temp_dir().join(format!("vigil-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keyring");
        assert!(load(&path).unwrap().is_none());
        let keys = vec![Key::generate(), Key::generate()];
        save(&path, &keys).unwrap();
        assert_eq!(load(&path).unwrap().unwrap(), keys);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "# c\n\nnot-a-key\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        std::fs::write(&path, "# only a comment\n").unwrap();
        assert!(matches!(load(&path), Err(StoreError::Empty(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
