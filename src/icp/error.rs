use super::{Opcode, HEADER_LEN, MAX_MESSAGE_LEN, VERSION};

/// Why a datagram is not a well-formed ICP v2 message.
///
/// Variants carry only `Copy` data so the engine can count and log them on
/// the hot path without allocating.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ICP message of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("ICP message of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte maximum")]
    TooLong { len: usize },
    #[error("ICP message of {actual} bytes says its length is {field}")]
    LengthMismatch { field: u16, actual: usize },
    #[error("ICP message has version {0}, only version {VERSION} is supported")]
    BadVersion(u8),
    #[error("ICP message has unknown opcode {0}")]
    UnknownOpcode(u8),
    #[error("ICP message URL is not NUL-terminated")]
    UrlNotTerminated,
    #[error("ICP message has bytes after the NUL that ends its URL")]
    TrailingBytes,
    #[error("ICP_OP_HIT_OBJ object size does not match the bytes that follow the URL")]
    ObjectLengthMismatch,
}

impl DecodeError {
    /// A stable `snake_case` label: counters and log fields key on this, so
    /// it must not change when the English message is reworded.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooShort { .. } => "too_short",
            DecodeError::TooLong { .. } => "too_long",
            DecodeError::LengthMismatch { .. } => "length_mismatch",
            DecodeError::BadVersion(_) => "bad_version",
            DecodeError::UnknownOpcode(_) => "unknown_opcode",
            DecodeError::UrlNotTerminated => "url_not_terminated",
            DecodeError::TrailingBytes => "trailing_bytes",
            DecodeError::ObjectLengthMismatch => "object_length_mismatch",
        }
    }
}

/// Why a [`Message`](super::Message) cannot be put on the wire as is.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    #[error("URL contains a NUL byte, which would cut it short in an ICP message")]
    UrlContainsNul,
    #[error("ICP message would be {len} bytes, over the {MAX_MESSAGE_LEN}-byte maximum")]
    TooLong { len: usize },
    #[error("ICP_OP_HIT_OBJ object is longer than {} bytes", u16::MAX)]
    ObjectTooLong,
    /// The payload shape does not fit the opcode (e.g. `Hit` with a
    /// `Payload::Query`); encoding it would produce bytes that decode to a
    /// different message.
    #[error("{0} cannot carry this payload")]
    PayloadMismatch(Opcode),
}
