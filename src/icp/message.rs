use std::net::Ipv4Addr;

use byteorder::{BigEndian, ByteOrder};

use super::{DecodeError, EncodeError, Opcode, HEADER_LEN, MAX_MESSAGE_LEN, VERSION};

// Header field offsets (RFC 2186 §1).
const OFF_OPCODE: usize = 0;
const OFF_VERSION: usize = 1;
const OFF_LENGTH: usize = 2;
const OFF_REQUEST_NUMBER: usize = 4;
const OFF_OPTIONS: usize = 8;
const OFF_OPTION_DATA: usize = 12;
const OFF_SENDER: usize = 16;

const REQUESTER_LEN: usize = 4;
const OBJECT_SIZE_LEN: usize = 2;

/// What follows the header; its shape is fixed by the opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// `ICP_OP_QUERY`. Squid ignores `requester`; `mod_icpquery` sends 0.0.0.0.
    Query { requester: Ipv4Addr, url: &'a [u8] },
    /// Every opcode other than `ICP_OP_QUERY` and `ICP_OP_HIT_OBJ`.
    Url { url: &'a [u8] },
    /// `ICP_OP_HIT_OBJ`: the cache sent the object itself.
    HitObj { url: &'a [u8], object: &'a [u8] },
}

/// One ICP message, borrowing its URL (and object) from the datagram.
///
/// URLs are bytes, not `str`: caches echo whatever was asked, and a reply is
/// matched to its query by comparing bytes, so nothing is gained by
/// validating UTF-8 here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub opcode: Opcode,
    pub request_number: u32,
    pub options: u32,
    pub option_data: u32,
    pub sender: Ipv4Addr,
    pub payload: Payload<'a>,
}

impl<'a> Message<'a> {
    /// Parses one datagram. The datagram must be exactly one message: the
    /// length field, the URL terminator and any object size must all agree
    /// with the bytes received, since a disagreement means truncation or a
    /// peer that is not speaking ICP v2.
    ///
    /// # Errors
    ///
    /// The first problem found, checked in this order: size, length field,
    /// version, opcode, payload; see [`DecodeError`].
    pub fn decode(datagram: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let len = datagram.len();
        let Some((header, body)) = datagram.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::TooShort { len });
        };
        if len > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLong { len });
        }
        let field = BigEndian::read_u16(&header[OFF_LENGTH..]);
        if usize::from(field) != len {
            return Err(DecodeError::LengthMismatch { field, actual: len });
        }
        let version = header[OFF_VERSION];
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let raw_opcode = header[OFF_OPCODE];
        let opcode = Opcode::from_u8(raw_opcode).ok_or(DecodeError::UnknownOpcode(raw_opcode))?;

        let payload = match opcode {
            Opcode::Query => {
                let (requester, rest) =
                    body.split_first_chunk::<REQUESTER_LEN>().ok_or(DecodeError::UrlNotTerminated)?;
                let (url, after) = split_url(rest)?;
                no_trailing(after)?;
                Payload::Query { requester: Ipv4Addr::from(*requester), url }
            }
            Opcode::HitObj => {
                let (url, after) = split_url(body)?;
                let (size, object) =
                    after.split_first_chunk::<OBJECT_SIZE_LEN>().ok_or(DecodeError::ObjectLengthMismatch)?;
                if usize::from(BigEndian::read_u16(size)) != object.len() {
                    return Err(DecodeError::ObjectLengthMismatch);
                }
                Payload::HitObj { url, object }
            }
            _ => {
                let (url, after) = split_url(body)?;
                no_trailing(after)?;
                Payload::Url { url }
            }
        };

        Ok(Message {
            opcode,
            request_number: BigEndian::read_u32(&header[OFF_REQUEST_NUMBER..]),
            options: BigEndian::read_u32(&header[OFF_OPTIONS..]),
            option_data: BigEndian::read_u32(&header[OFF_OPTION_DATA..]),
            sender: Ipv4Addr::from(BigEndian::read_u32(&header[OFF_SENDER..])),
            payload,
        })
    }

    /// The URL, without its NUL terminator.
    #[must_use]
    pub fn url(&self) -> &'a [u8] {
        match self.payload {
            Payload::Query { url, .. } | Payload::Url { url } | Payload::HitObj { url, .. } => url,
        }
    }

    /// Bytes [`encode`](Self::encode) would write. Saturates rather than
    /// overflowing so an absurd message reports `TooLong` instead of panicking.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let payload = match self.payload {
            Payload::Query { url, .. } => REQUESTER_LEN.saturating_add(url.len()).saturating_add(1),
            Payload::Url { url } => url.len().saturating_add(1),
            Payload::HitObj { url, object } => {
                url.len().saturating_add(1 + OBJECT_SIZE_LEN).saturating_add(object.len())
            }
        };
        HEADER_LEN.saturating_add(payload)
    }

    /// Writes the message into `out`, which is cleared first so a reused
    /// buffer never leaks a previous datagram; on error `out` is left empty.
    ///
    /// # Errors
    ///
    /// Whenever the bytes would not decode back to `self`; see [`EncodeError`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.clear();
        self.check()?;
        let len = self.encoded_len();
        // check() bounded len by MAX_MESSAGE_LEN, so it fits the u16 field.
        let len_field = u16::try_from(len).map_err(|_| EncodeError::TooLong { len })?;
        let object_size = match self.payload {
            // check() bounded the object by u16::MAX.
            Payload::HitObj { object, .. } => u16::try_from(object.len()).map_err(|_| EncodeError::ObjectTooLong)?,
            _ => 0,
        };

        let mut header = [0u8; HEADER_LEN];
        header[OFF_OPCODE] = self.opcode as u8;
        header[OFF_VERSION] = VERSION;
        BigEndian::write_u16(&mut header[OFF_LENGTH..], len_field);
        BigEndian::write_u32(&mut header[OFF_REQUEST_NUMBER..], self.request_number);
        BigEndian::write_u32(&mut header[OFF_OPTIONS..], self.options);
        BigEndian::write_u32(&mut header[OFF_OPTION_DATA..], self.option_data);
        BigEndian::write_u32(&mut header[OFF_SENDER..], u32::from(self.sender));

        out.reserve(len);
        out.extend_from_slice(&header);
        match self.payload {
            Payload::Query { requester, url } => {
                out.extend_from_slice(&requester.octets());
                out.extend_from_slice(url);
                out.push(0);
            }
            Payload::Url { url } => {
                out.extend_from_slice(url);
                out.push(0);
            }
            Payload::HitObj { url, object } => {
                out.extend_from_slice(url);
                out.push(0);
                let mut size = [0u8; OBJECT_SIZE_LEN];
                BigEndian::write_u16(&mut size, object_size);
                out.extend_from_slice(&size);
                out.extend_from_slice(object);
            }
        }
        Ok(())
    }

    /// Everything that would make the encoded bytes decode to something else.
    fn check(&self) -> Result<(), EncodeError> {
        let shape_ok = match self.payload {
            Payload::Query { .. } => self.opcode == Opcode::Query,
            Payload::HitObj { .. } => self.opcode == Opcode::HitObj,
            Payload::Url { .. } => !matches!(self.opcode, Opcode::Query | Opcode::HitObj),
        };
        if !shape_ok {
            return Err(EncodeError::PayloadMismatch(self.opcode));
        }
        if self.url().contains(&0) {
            return Err(EncodeError::UrlContainsNul);
        }
        // Checked before the total so the caller learns the specific cause.
        if let Payload::HitObj { object, .. } = self.payload {
            if object.len() > usize::from(u16::MAX) {
                return Err(EncodeError::ObjectTooLong);
            }
        }
        let len = self.encoded_len();
        if len > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong { len });
        }
        Ok(())
    }

    /// A query as `mod_icpquery` sends it: options 0, option data 0, sender
    /// 0.0.0.0, requester 0.0.0.0. Squid answers from the datagram's source
    /// address, so the address fields carry nothing it needs.
    #[must_use]
    pub fn query(request_number: u32, url: &'a [u8]) -> Message<'a> {
        Message {
            opcode: Opcode::Query,
            request_number,
            options: 0,
            option_data: 0,
            sender: Ipv4Addr::UNSPECIFIED,
            payload: Payload::Query { requester: Ipv4Addr::UNSPECIFIED, url },
        }
    }

    /// A reply to `self` (for tests and the project's own ICP responder):
    /// same request number and URL, options, option data and sender zeroed.
    /// The payload takes the shape `opcode` requires; for `HitObj` the object
    /// starts empty and for `Query` the requester is 0.0.0.0.
    #[must_use]
    pub fn reply(&self, opcode: Opcode) -> Message<'a> {
        let url = self.url();
        let payload = match opcode {
            Opcode::Query => Payload::Query { requester: Ipv4Addr::UNSPECIFIED, url },
            Opcode::HitObj => Payload::HitObj { url, object: &[] },
            _ => Payload::Url { url },
        };
        Message {
            opcode,
            request_number: self.request_number,
            options: 0,
            option_data: 0,
            sender: Ipv4Addr::UNSPECIFIED,
            payload,
        }
    }
}

/// Convenience for the hot path: encode a query into `out` (cleared first).
///
/// # Errors
///
/// As [`Message::encode`]: a NUL in `url`, or a message over the maximum.
pub fn encode_query(request_number: u32, url: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    Message::query(request_number, url).encode(out)
}

/// Splits at the URL's NUL terminator: (URL without NUL, bytes after NUL).
fn split_url(bytes: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let mut parts = bytes.splitn(2, |&b| b == 0);
    match (parts.next(), parts.next()) {
        (Some(url), Some(after)) => Ok((url, after)),
        _ => Err(DecodeError::UrlNotTerminated),
    }
}

fn no_trailing(after: &[u8]) -> Result<(), DecodeError> {
    if after.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::TrailingBytes)
    }
}
