//! The gossip keyring: seal every outgoing datagram, open every incoming one.
//!
//! A sealed datagram keeps the core's 7-byte envelope in the clear (so a node without the
//! key still sees magic, version and cluster id, and drops it as malformed) and appends an
//! XChaCha20-Poly1305 seal:
//!
//! ```text
//! bytes 0..7     envelope; byte 6 (flags) = SEALED | ENCRYPTED? | tag length 2 (16 bytes)
//! bytes 7..31    random 24-byte nonce
//! bytes 31..55   stamp: sender (u64), boot (u64), counter (u64), little endian
//! bytes 55..     body; stamp and body encrypted when ENCRYPTED, then the 16-byte Poly1305 tag
//! ```
//!
//! A seal costs [`OVERHEAD`] = 64 bytes per datagram: nonce 24, stamp 24, tag 16.
//!
//! The associated data is the envelope plus the full cluster name, so a datagram of another
//! cluster, or one whose header was edited, never opens. Authentication-only mode
//! (`security.encrypt: false`) authenticates the body as associated data and encrypts
//! nothing, for operators who must read captures. Random 24-byte nonces never repeat in
//! practice, so one key can seal any number of datagrams.
//!
//! Keys rotate as in memberlist: several keys are accepted, the first (primary) seals.
//! Install a new key everywhere, make it primary everywhere, then remove the old one; no
//! member ever receives a datagram it cannot open.
//!
//! # Replays
//! The [`Stamp`] inside the seal (authenticated always, encrypted with the body) names the
//! sending member (a hash of its id), the start of its process (`boot`: its first
//! generation, wall-clock milliseconds) and a counter raised for every datagram it seals.
//! The runtime checks it against a [`super::replay::ReplayWindow`] before the core sees the
//! datagram, so a captured datagram delivered again, from any address, is dropped: only
//! the first copy of each (sender, boot, counter) is accepted, and a datagram of an earlier
//! boot of a sender is refused once a later one has been seen. Without a key nothing can
//! be stamped; with one, a member could stamp as another (key holders are trusted).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes a seal adds to a datagram (nonce + stamp + tag).
pub const OVERHEAD: usize = NONCE_LEN + STAMP_LEN + TAG_LEN;
/// Bytes of the [`Stamp`] inside the seal.
pub const STAMP_LEN: usize = 24;
/// Most keys a keyring holds: every failed open tries them all.
pub const MAX_KEYS: usize = 8;

const HEADER_LEN: usize = membership::codec::HEADER_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const FLAGS: usize = 6;
const SEALED: u8 = 0x10;
const ENCRYPTED: u8 = 0x20;
/// The core's tag-length nibble, in 8-byte units.
const TAG_UNITS: u8 = (TAG_LEN / 8) as u8;

/// Who sealed a datagram and when in its life: checked against the replay window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The sending member: [`Stamp::sender_of`] its id.
    pub sender: u64,
    /// The start of the sender's process (its first generation): larger at every start.
    pub boot: u64,
    /// 1 for the first datagram the process sealed, then one more for each.
    pub counter: u64,
}

impl Stamp {
    /// The sender key of member `id` (64-bit FNV-1a of the id).
    pub fn sender_of(id: &str) -> u64 {
        membership::member::fnv1a(id.as_bytes())
    }

    fn to_bytes(self) -> [u8; STAMP_LEN] {
        let mut b = [0u8; STAMP_LEN];
        b[..8].copy_from_slice(&self.sender.to_le_bytes());
        b[8..16].copy_from_slice(&self.boot.to_le_bytes());
        b[16..].copy_from_slice(&self.counter.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Stamp> {
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
        };
        Some(Stamp {
            sender: word(0)?,
            boot: word(8)?,
            counter: word(16)?,
        })
    }
}

/// What [`Keyring::open`] hands on: the datagram the core decodes, and the stamp of its
/// seal (`None`: it came unsealed, accepted because `verify_incoming` is off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Envelope with flags 0, then the body.
    pub datagram: Vec<u8>,
    /// The seal's stamp.
    pub stamp: Option<Stamp>,
}

/// One 256-bit cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A fresh random key, for tests (`vigil keys generate` uses
    /// [`super::secrets::gossip_key`], straight from the OS's random source).
    #[cfg(test)]
    pub fn generate() -> Key {
        let mut k = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut k);
        Key(k)
    }

    /// Parses the base64 form (standard alphabet, with padding: 44 characters).
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| KeyError::NotBase64(e.to_string()))?;
        let array: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::WrongLength(b.len()))?;
        Ok(Key(array))
    }

    /// The base64 form.
    pub fn encode(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// A key that cannot be used, or a keyring change that would break the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("not base64: {0}")]
    NotBase64(String),
    /// Decodes, but not to 32 bytes.
    #[error("decodes to {0} bytes; a key is 32 bytes (generate one with `vigil keys generate`)")]
    WrongLength(usize),
    /// Removing or using a key the ring does not hold.
    #[error("the keyring does not hold this key")]
    Unknown,
    /// Removing the primary would leave nothing to seal with.
    #[error("this is the primary key: make another key primary first (`vigil keys use`)")]
    RemovePrimary,
    /// More than [`MAX_KEYS`].
    #[error("the keyring already holds {MAX_KEYS} keys: remove one first")]
    Full,
}

/// Why an incoming datagram was refused before the core saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not sealed, and unsealed datagrams are not accepted.
    #[error("not sealed (security.verify-incoming is on)")]
    Unsealed,
    /// Too short to hold an envelope and a seal.
    #[error("too short for a sealed datagram")]
    Truncated,
    /// No key of the ring opens it: wrong key, another cluster, or tampered with.
    #[error("no key opens it (wrong key, another cluster, or altered)")]
    BadTag,
}

impl OpenError {
    /// A metrics label.
    pub fn reason(self) -> &'static str {
        match self {
            OpenError::Unsealed => "unsealed",
            OpenError::Truncated | OpenError::BadTag => "bad_seal",
        }
    }
}

/// The keys of a node and how it uses them.
#[derive(Clone)]
pub struct Keyring {
    /// Primary first.
    keys: Vec<Key>,
    ciphers: Vec<XChaCha20Poly1305>,
    cluster: String,
    encrypt: bool,
    verify_incoming: bool,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .field("encrypt", &self.encrypt)
            .field("verify_incoming", &self.verify_incoming)
            .finish()
    }
}

impl Keyring {
    /// A ring whose first key is primary. `keys` must not be empty.
    pub fn new(
        keys: Vec<Key>,
        cluster: &str,
        encrypt: bool,
        verify_incoming: bool,
    ) -> Result<Keyring, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Unknown);
        }
        if keys.len() > MAX_KEYS {
            return Err(KeyError::Full);
        }
        let mut ring = Keyring {
            keys: Vec::new(),
            ciphers: Vec::new(),
            cluster: cluster.to_string(),
            encrypt,
            verify_incoming,
        };
        for k in keys {
            if !ring.keys.contains(&k) {
                ring.push(k);
            }
        }
        Ok(ring)
    }

    fn push(&mut self, key: Key) {
        self.ciphers.push(XChaCha20Poly1305::new((&key.0).into()));
        self.keys.push(key);
    }

    /// The keys, primary first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Accepts `key` for opening (no-op if held). Sealing still uses the primary.
    pub fn install(&mut self, key: Key) -> Result<(), KeyError> {
        if self.keys.contains(&key) {
            return Ok(());
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyError::Full);
        }
        self.push(key);
        Ok(())
    }

    /// Makes an installed key the primary.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyError> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyError::Unknown)?;
        self.keys.swap(0, i);
        self.ciphers.swap(0, i);
        Ok(())
    }

    /// Stops accepting `key`; the primary cannot be removed.
    pub fn remove(&mut self, key: &Key) -> Result<(), KeyError> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyError::Unknown)?;
        if i == 0 {
            return Err(KeyError::RemovePrimary);
        }
        self.keys.remove(i);
        self.ciphers.remove(i);
        Ok(())
    }

    fn aad(&self, header: &[u8], body: Option<&[u8]>) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            header.len() + self.cluster.len() + body.map_or(0, |b| NONCE_LEN + b.len()),
        );
        aad.extend_from_slice(header);
        aad.extend_from_slice(self.cluster.as_bytes());
        if let Some(body) = body {
            aad.extend_from_slice(body);
        }
        aad
    }

    /// Seals one datagram of the core (envelope + body, no tag) with the primary key, and
    /// `stamp` inside. A datagram too short to hold an envelope is returned unchanged (the
    /// core never produces one).
    pub fn seal(&self, datagram: &[u8], stamp: Stamp) -> Vec<u8> {
        if datagram.len() < HEADER_LEN {
            return datagram.to_vec();
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&datagram[..HEADER_LEN]);
        header[FLAGS] = SEALED | TAG_UNITS | if self.encrypt { ENCRYPTED } else { 0 };
        let mut stamped = Vec::with_capacity(STAMP_LEN + datagram.len() - HEADER_LEN);
        stamped.extend_from_slice(&stamp.to_bytes());
        stamped.extend_from_slice(&datagram[HEADER_LEN..]);
        let body = &stamped[..];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);

        let mut out = Vec::with_capacity(datagram.len() + OVERHEAD);
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        let cipher = &self.ciphers[0];
        let nonce = XNonce::from_slice(&nonce);
        // Encrypting into a Vec only fails on buffers past 256 GiB; never with a datagram.
        if self.encrypt {
            let aad = self.aad(&header, None);
            let sealed = cipher
                .encrypt(
                    nonce,
                    Payload {
                        msg: body,
                        aad: &aad,
                    },
                )
                .unwrap_or_default();
            out.extend_from_slice(&sealed);
        } else {
            let mut authenticated = Vec::with_capacity(NONCE_LEN + body.len());
            authenticated.extend_from_slice(nonce);
            authenticated.extend_from_slice(body);
            let aad = self.aad(&header, Some(&authenticated));
            let tag = cipher
                .encrypt(
                    nonce,
                    Payload {
                        msg: &[],
                        aad: &aad,
                    },
                )
                .unwrap_or_default();
            out.extend_from_slice(body);
            out.extend_from_slice(&tag);
        }
        out
    }

    /// Opens a sealed datagram into what the core decodes (envelope with flags 0 + body)
    /// and the stamp it carried. An unsealed datagram passes unchanged, without a stamp,
    /// only when `verify_incoming` is off.
    pub fn open(&self, datagram: &[u8]) -> Result<Opened, OpenError> {
        if datagram.len() < HEADER_LEN {
            return Err(OpenError::Truncated);
        }
        let flags = datagram[FLAGS];
        if flags & SEALED == 0 {
            return if self.verify_incoming {
                Err(OpenError::Unsealed)
            } else {
                Ok(Opened {
                    datagram: datagram.to_vec(),
                    stamp: None,
                })
            };
        }
        if datagram.len() < HEADER_LEN + OVERHEAD || flags & 0x0f != TAG_UNITS {
            return Err(OpenError::Truncated);
        }
        let header = &datagram[..HEADER_LEN];
        let nonce = XNonce::from_slice(&datagram[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
        let rest = &datagram[HEADER_LEN + NONCE_LEN..];
        let mut plain = Vec::with_capacity(datagram.len());
        if flags & ENCRYPTED != 0 {
            let aad = self.aad(header, None);
            let body = self
                .ciphers
                .iter()
                .find_map(|c| {
                    c.decrypt(
                        nonce,
                        Payload {
                            msg: rest,
                            aad: &aad,
                        },
                    )
                    .ok()
                })
                .ok_or(OpenError::BadTag)?;
            plain = body;
        } else {
            let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
            let aad = self.aad(
                header,
                Some(&datagram[HEADER_LEN..datagram.len() - TAG_LEN]),
            );
            self.ciphers
                .iter()
                .find_map(|c| {
                    c.decrypt(
                        nonce,
                        Payload {
                            msg: tag,
                            aad: &aad,
                        },
                    )
                    .ok()
                })
                .ok_or(OpenError::BadTag)?;
            plain.extend_from_slice(body);
        }
        // `plain` is the stamp, then the core's body
        let stamp = Stamp::from_bytes(&plain).ok_or(OpenError::Truncated)?;
        let mut core = Vec::with_capacity(HEADER_LEN + plain.len() - STAMP_LEN);
        core.extend_from_slice(header);
        core[FLAGS] = 0;
        core.extend_from_slice(&plain[STAMP_LEN..]);
        Ok(Opened {
            datagram: core,
            stamp: Some(stamp),
        })
    }
}

#[cfg(test)]
mod tests;
