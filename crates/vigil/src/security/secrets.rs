//! Fresh secrets from the operating system's random source (`getrandom(2)`), never from a
//! seeded or time-derived generator: gossip keys (`vigil keys generate`, `vigil up`) and
//! admin tokens (`vigil keys token`, `vigil up`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore;

use super::keyring::{Key, KEY_LEN};

/// Bytes of entropy in an admin token (43 characters once encoded).
pub const TOKEN_BYTES: usize = 32;

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

fn os_random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomError(e.to_string()))?;
    Ok(bytes)
}

/// A new gossip key.
pub fn gossip_key() -> Result<Key, RandomError> {
    let bytes: [u8; KEY_LEN] = os_random()?;
    Key::parse(&STANDARD.encode(bytes)).map_err(|e| RandomError(e.to_string()))
}

/// A new admin token: 32 random bytes, base64url without padding (safe in headers and
/// environment files).
pub fn admin_token() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(os_random::<TOKEN_BYTES>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_enough_and_never_repeat() {
        let a = admin_token().unwrap();
        let b = admin_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.len() >= crate::config::MIN_ADMIN_TOKEN_LEN);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn keys_are_fresh_and_parse_back() {
        let a = gossip_key().unwrap();
        assert_ne!(a, gossip_key().unwrap());
        assert_eq!(Key::parse(&a.encode()).unwrap(), a);
    }
}
