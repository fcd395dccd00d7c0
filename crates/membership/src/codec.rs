//! The wire format: a small fixed envelope around a postcard-encoded [`Message`].
//!
//! ```text
//! byte 0      magic 0x56 ('V')
//! byte 1      wire version (6: a sender's table summary only where it is needed)
//! bytes 2..6  cluster id (u32, little endian; FNV-1a of the cluster name, truncated)
//! byte 6      flags: low nibble = length of the trailing authentication tag in 8-byte units
//!             (0 today; the authentication issue fills it in)
//! bytes 7..   postcard body, then the tag
//! ```
//! Decoding never panics: every failure is a [`DecodeError`] and the datagram is dropped.
//!
//! # Bounds
//! Every collection a message carries is bounded before the node acts on it:
//! - the whole datagram is at most `cluster.transport.max-datagram` bytes (checked before
//!   anything is parsed), so no `Vec` or `String` in a message can hold more elements or
//!   bytes than the datagram has;
//! - every member id (senders, records, accusers, accused) is a valid id ([`valid_id`]: 1 to
//!   [`MAX_ID_LEN`] bytes of [`ID_RULE`]) and a digest has at most [`MAX_SLICES`] slices
//!   (checked here, [`DecodeError::Bounds`]);
//! - a record's metadata (role, zone, rack, HTTP address, tags) is at most
//!   `cluster.limits.max-metadata-bytes` encoded (checked by the node, which drops and counts
//!   oversize records), and the member table at most `cluster.limits.max-members` records.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::member::{fnv1a, MemberRecord, Metadata, NodeId};

/// First byte of every Vigil datagram.
pub const MAGIC: u8 = 0x56;
/// Wire version this build speaks.
pub const WIRE_VERSION: u8 = 6;
/// Bytes before the body.
pub const HEADER_LEN: usize = 7;
/// Longest member id accepted, in bytes (ids are configured names, not payloads).
pub const MAX_ID_LEN: usize = 128;
/// Most slices an anti-entropy digest may have.
pub const MAX_SLICES: usize = 256;

/// Derives the 32-bit cluster id carried in every envelope from the cluster's name.
pub fn cluster_id(name: &str) -> u32 {
    fnv1a(name.as_bytes()) as u32
}

/// Who sent a message, at which life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The sender's id.
    pub id: NodeId,
    /// The sender's generation.
    pub generation: u64,
    /// The sender's incarnation.
    pub incarnation: u64,
    /// Fingerprint of the sender's whole member table, to spot divergence cheaply (see
    /// `node::sync`). Most messages carry it; a lease grant does not, nor a heartbeat while
    /// its sender knows a leader and has no news, since every member then hears the
    /// leader's summary in each renewal anyway (see `node::send`).
    pub summary: Option<Summary>,
}

/// The low 32 bits of a table's fingerprint, in 4 fixed bytes: a member sends about seven
/// messages a second in steady state, where the full 64 bits took 10 bytes as a varint. A
/// false match (one in 2^32) only puts off the next exchange until either table changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary(#[serde(with = "postcard::fixint::le")] pub u32);

/// A piece of membership news, spread by gossip.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Update {
    /// A member's record (join, refutation, conviction, leave, eviction, new metadata).
    Record(MemberRecord),
    /// `by` accuses `subject` of being dead at (generation, incarnation).
    Accuse {
        /// The accused member.
        subject: NodeId,
        /// Its generation as the accuser knew it.
        generation: u64,
        /// Its incarnation as the accuser knew it.
        incarnation: u64,
        /// The accuser (one of the subject's observers).
        by: NodeId,
    },
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Sent every heartbeat interval to each of the sender's observers.
    Heartbeat {
        /// The sender.
        from: Sender,
        /// Heartbeat counter.
        seq: u64,
        /// Piggybacked news.
        updates: Vec<Update>,
    },
    /// A gossip round's message to a random peer.
    Gossip {
        /// The sender.
        from: Sender,
        /// News.
        updates: Vec<Update>,
    },
    /// A new or restarted node introduces itself to a seed.
    Join {
        /// The joiner's own record.
        record: MemberRecord,
        /// Zeros that make the join as large as one page of the table it asks for: a node
        /// answers a sender it cannot yet tell is a member with no more bytes than that
        /// sender sent (see `node`, "Answers"), so an unpadded join from a stranger would
        /// get nothing back. Senders pad up to `cluster.transport.max-datagram`
        /// ([`Message::padded_join`]); the content is ignored.
        padding: Vec<u8>,
    },
    /// Anti-entropy, step 1: the fingerprints of `ranges.len()` slices of the table.
    SyncDigest {
        /// The sender.
        from: Sender,
        /// XOR of record fingerprints per slice (slice = id hash modulo the count).
        ranges: Vec<u32>,
        /// Whether the receiver should answer with its own digest (push-pull).
        reply: bool,
    },
    /// Anti-entropy, step 2: full records of the slices that differed.
    SyncRecords {
        /// The sender.
        from: Sender,
        /// Records.
        records: Vec<MemberRecord>,
    },
    /// A cheap "are we in sync?" question (used to re-contact seeds). Answered to the
    /// address the datagram came from: a probe carries no reply address, so a replayed or
    /// forged probe cannot aim the answer at anyone but its own source.
    Probe {
        /// The sender.
        from: Sender,
        /// Random per probe; the answer must echo it, so a replayed old answer proves
        /// nothing.
        nonce: u64,
    },
    /// Answer to a probe.
    ProbeAck {
        /// The sender.
        from: Sender,
        /// The probe's nonce.
        nonce: u64,
    },
    /// A leader, or a voter standing for leader, asks for a lease grant (see `node::lease`).
    LeaseRequest {
        /// The leader or candidate.
        from: Sender,
        /// Its round, larger at every request this life.
        round: u64,
        /// How much longer its lease holds, in milliseconds (0: it holds none).
        valid_ms: u32,
        /// The newest of its rounds a quorum of voters granted (0: none yet).
        confirmed: u64,
        /// The voter configuration it counts its quorum over: number and digest of its
        /// seats (see `node::seats`). A voter refuses a candidate whose configuration is
        /// older than its own, or as old but different.
        epoch: u64,
        /// The configuration's digest: always from a candidate; from a leader only while
        /// some member has not yet reported adopting its configuration (8 bytes saved on
        /// every other renewal).
        digest: Option<Digest>,
    },
    /// A voter's answer to a lease request.
    LeaseGrant {
        /// The voter.
        from: Sender,
        /// The round answered.
        round: u64,
        /// Whether the voter granted it (false: it granted another leader that has not
        /// expired).
        granted: bool,
        /// The voter configuration it adopted: the leader's newest configuration is
        /// confirmed once quorums of it and of the one before have adopted it.
        epoch: u64,
        /// The configuration's digest, left out when it is the request's.
        digest: Option<Digest>,
    },
}

/// A voter configuration's digest (see `node::seats`): a hash, so sent as 8 fixed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest(#[serde(with = "postcard::fixint::le")] pub u64);

impl Message {
    /// A join for `record`, padded with zeros so that it encodes to `max_datagram` bytes
    /// (or as close below as the length prefix allows): as large as the one page of the
    /// table a seed may send back to a joiner it does not know yet.
    pub fn padded_join(cluster: u32, record: MemberRecord, max_datagram: usize) -> Message {
        let mut msg = Message::Join {
            record,
            padding: Vec::new(),
        };
        // `bare` counts a 1-byte length prefix for the empty padding; with `n` bytes of
        // padding the message takes `bare - 1 + prefix(n) + n` bytes.
        let bare = encode(cluster, &msg).len();
        let room = max_datagram.saturating_sub(bare) + 1;
        let mut n = room.saturating_sub(1);
        while n > 0 && n + postcard_varint_len(n) > room {
            n -= 1;
        }
        if let Message::Join { padding, .. } = &mut msg {
            padding.resize(n, 0);
        }
        msg
    }

    /// The sender block, if the message has one.
    pub fn sender(&self) -> Option<&Sender> {
        match self {
            Message::Heartbeat { from, .. }
            | Message::Gossip { from, .. }
            | Message::SyncDigest { from, .. }
            | Message::SyncRecords { from, .. }
            | Message::Probe { from, .. }
            | Message::ProbeAck { from, .. }
            | Message::LeaseRequest { from, .. }
            | Message::LeaseGrant { from, .. } => Some(from),
            Message::Join { .. } => None,
        }
    }

    /// A short name for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Heartbeat { .. } => "heartbeat",
            Message::Gossip { .. } => "gossip",
            Message::Join { .. } => "join",
            Message::SyncDigest { .. } => "sync_digest",
            Message::SyncRecords { .. } => "sync_records",
            Message::Probe { .. } => "probe",
            Message::ProbeAck { .. } => "probe_ack",
            Message::LeaseRequest { .. } => "lease_request",
            Message::LeaseGrant { .. } => "lease_grant",
        }
    }
}

/// Encodes `msg` into a datagram for cluster `cluster`.
pub fn encode(cluster: u32, msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(MAGIC);
    out.push(WIRE_VERSION);
    out.extend_from_slice(&cluster.to_le_bytes());
    out.push(0);
    // Serializing into a Vec cannot fail for these types (no maps with non-string keys,
    // no unsized sequences); fall back to an empty body rather than panic.
    postcard::to_extend(msg, out).unwrap_or_default()
}

/// Decodes a datagram, checking magic, version, cluster id and size.
pub fn decode(cluster: u32, max_len: usize, bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(DecodeError::BadMagic(bytes[0]));
    }
    if bytes[1] != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion(bytes[1]));
    }
    let id = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    if id != cluster {
        return Err(DecodeError::ForeignCluster(id));
    }
    let tag_len = usize::from(bytes[6] & 0x0f) * 8;
    let body_end = bytes
        .len()
        .checked_sub(tag_len)
        .filter(|&e| e >= HEADER_LEN)
        .ok_or(DecodeError::TooShort(bytes.len()))?;
    let (msg, rest) = postcard::take_from_bytes::<Message>(&bytes[HEADER_LEN..body_end])
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    check_bounds(&msg)?;
    Ok(msg)
}

/// What a member id may be, for error messages and docs (see [`valid_id`]).
pub const ID_RULE: &str =
    "1 to 128 ASCII letters, digits, '-', '_', '.' or ':', starting with a letter or digit";

/// Whether `id` is an acceptable member id ([`ID_RULE`]): the one rule for ids, applied by
/// the decoder to every id a datagram carries and by [`crate::Node::new`] to the node's own.
///
/// Ids are configured names (`n1`, `n00001`, `coordinator`, `<role>-<hostname>`, a DNS name),
/// and they end up in logs, metrics labels, file names (the consumer's
/// `.vigil/data/<id>.sqlite`) and Kafka's `group.instance.id` (`[A-Za-z0-9._-]`): no
/// control characters, spaces, slashes or non-ASCII look-alikes, and no id made only of
/// punctuation (`.`, `..`, `-x` that reads as a flag).
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (1..=MAX_ID_LEN).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// Checks the bounds a decoder can check without configuration (see the module docs).
pub fn check_bounds(msg: &Message) -> Result<(), DecodeError> {
    let id = |id: &str, what: &'static str| {
        if valid_id(id) {
            Ok(())
        } else {
            Err(DecodeError::Bounds(what))
        }
    };
    if let Some(from) = msg.sender() {
        id(&from.id, "invalid sender id")?;
    }
    let updates = match msg {
        Message::Heartbeat { updates, .. } | Message::Gossip { updates, .. } => updates.as_slice(),
        _ => &[],
    };
    for u in updates {
        match u {
            Update::Record(r) => id(&r.id, "invalid record id")?,
            Update::Accuse { subject, by, .. } => {
                id(subject, "invalid accused id")?;
                id(by, "invalid accuser id")?;
            }
        }
    }
    match msg {
        Message::Join { record, .. } => id(&record.id, "invalid joiner id")?,
        Message::SyncRecords { records, .. } => {
            for r in records {
                id(&r.id, "invalid record id")?;
            }
        }
        Message::SyncDigest { ranges, .. } if ranges.len() > MAX_SLICES => {
            return Err(DecodeError::Bounds("digest with too many slices"));
        }
        _ => {}
    }
    Ok(())
}

/// Encoded size of a member's metadata, the quantity `cluster.limits.max-metadata-bytes`
/// bounds.
pub fn metadata_len(m: &Metadata) -> usize {
    encoded_len(m)
}

/// Encoded size of one update, used to pack messages under the datagram limit.
pub fn update_len(u: &Update) -> usize {
    encoded_len(u)
}

/// Encoded size of one record.
pub fn record_len(r: &MemberRecord) -> usize {
    encoded_len(r)
}

fn encoded_len<T: Serialize>(v: &T) -> usize {
    postcard::serialize_with_flavor(v, postcard::ser_flavors::Size::default())
        .unwrap_or(usize::MAX / 4)
}

/// Bytes postcard's varint takes for a length `n`.
fn postcard_varint_len(n: usize) -> usize {
    let mut len = 1;
    let mut n = n >> 7;
    while n > 0 {
        len += 1;
        n >>= 7;
    }
    len
}

/// Worst-case bytes a sequence length prefix takes (varint of a count below 2^21).
pub const SEQ_PREFIX_MAX: usize = 3;

#[cfg(test)]
mod tests;
