//! ICP version 2 (RFC 2186) messages: bytes in, [`Message`] out, and back.
//!
//! This layer does no I/O and keeps no state, so the engine owns sockets and
//! deadlines while everything that touches untrusted bytes lives here, where
//! it can be tested exhaustively. Decoding is strict: a datagram that does
//! not match RFC 2186 exactly is rejected with a [`DecodeError`] rather than
//! guessed at, because a misread reply would route a request to the wrong
//! cache. Decoding borrows from the datagram and never allocates or panics.
//!
//! Wire layout (all fields big-endian):
//!
//! ```text
//!  0        1        2                 4
//!  +--------+--------+-----------------+
//!  | opcode |version | message length  |   length covers header + payload
//!  +--------+--------+-----------------+
//!  |          request number           |
//!  +-----------------------------------+
//!  |              options              |
//!  +-----------------------------------+
//!  |            option data            |
//!  +-----------------------------------+
//!  |    sender host address (IPv4)     |
//!  +-----------------------------------+   20 bytes
//!  | payload ...                       |
//! ```
//!
//! Payloads: `ICP_OP_QUERY` carries a 4-byte requester address then the
//! NUL-terminated URL; `ICP_OP_HIT_OBJ` carries the NUL-terminated URL, a u16
//! object size and the object; every other opcode carries only the
//! NUL-terminated URL.

mod error;
mod message;
mod opcode;

pub use error::{DecodeError, EncodeError};
pub use message::{encode_query, Message, Payload};
pub use opcode::Opcode;

/// Size of the fixed ICP header that precedes every payload.
pub const HEADER_LEN: usize = 20;

/// Largest ICP message RFC 2186 allows; anything bigger is not ICP.
pub const MAX_MESSAGE_LEN: usize = 16384;

/// The only ICP version Squid and this module speak.
pub const VERSION: u8 = 2;

#[cfg(test)]
mod tests;
