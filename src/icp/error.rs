use super::{Opcode, HEADER_LEN, MAX_MESSAGE_LEN, VERSION};

/// Why a datagram is not a well-formed ICP v2 message.
///
/// Variants carry only `Copy` data so the engine can count and log them on
/// the hot path without allocating; the engine's `RejectReason` names each
/// variant for its counters.
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
