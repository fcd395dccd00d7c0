//! Error types of the membership core.

/// A configuration value was rejected. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for `{key}`: {reason}")]
pub struct ConfigError {
    /// The configuration key, as written in `vigil.yml` (e.g. `cluster.gossip.fanout`).
    pub key: &'static str,
    /// The offending value, rendered.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

impl ConfigError {
    /// Builds an error for `key` holding `value`.
    pub fn new(key: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// A datagram could not be decoded. The node's state is unchanged: the datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the envelope header.
    #[error("datagram too short ({0} bytes)")]
    TooShort(usize),
    /// The first byte is not Vigil's magic byte.
    #[error("not a Vigil datagram (magic byte {0:#04x})")]
    BadMagic(u8),
    /// A wire version this build does not speak.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// The datagram belongs to another cluster.
    #[error("datagram from another cluster (id {0:#010x})")]
    ForeignCluster(u32),
    /// The datagram is larger than the configured maximum.
    #[error("datagram of {0} bytes exceeds the maximum")]
    TooLarge(usize),
    /// The body is not a valid message.
    #[error("malformed message body: {0}")]
    Malformed(String),
    /// The message is well-formed but exceeds a bound (an empty or overlong id, too many
    /// digest slices).
    #[error("message out of bounds: {0}")]
    Bounds(&'static str),
}

/// An operator request that the node refused. State is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The named member is not in the table.
    #[error("unknown member `{0}`")]
    UnknownMember(String),
    /// The node cannot remove itself; use a graceful leave instead.
    #[error("a node cannot force-remove itself; leave instead")]
    IsSelf,
    /// The node has left the cluster and accepts no more commands.
    #[error("this node has left the cluster")]
    HasLeft,
    /// The new metadata would exceed `cluster.limits.max-metadata-bytes`; nothing was set.
    #[error("metadata of {size} bytes exceeds cluster.limits.max-metadata-bytes ({max})")]
    MetadataTooLarge {
        /// Encoded size the metadata would have had.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}
