//! Pins the ICP v2 wire format (RFC 2186 §1) with hand-written bytes, so a
//! codec change that still round-trips with itself cannot drift from what
//! Squid puts on the wire.

use std::net::Ipv4Addr;

use mod_icpquery::icp::{encode_query, DecodeError, Message, Opcode, Payload};

const URL: &[u8] = b"http://localhost/wsgi/x?y"; // 25 bytes

#[rustfmt::skip]
const QUERY: [u8; 50] = [
    0x01,                   // opcode: ICP_OP_QUERY
    0x02,                   // version: 2
    0x00, 0x32,             // message length: 20 + 4 + 25 + 1 = 50
    0x01, 0x02, 0x03, 0x04, // request number: 0x01020304
    0x00, 0x00, 0x00, 0x00, // options: none
    0x00, 0x00, 0x00, 0x00, // option data: 0
    0x00, 0x00, 0x00, 0x00, // sender host address: 0.0.0.0
    0x00, 0x00, 0x00, 0x00, // requester host address: 0.0.0.0
    b'h', b't', b't', b'p', b':', b'/', b'/', b'l', b'o', b'c', b'a', b'l', b'h',
    b'o', b's', b't', b'/', b'w', b's', b'g', b'i', b'/', b'x', b'?', b'y',
    0x00,                   // URL terminator
];

#[test]
fn query_encodes_to_exact_bytes() {
    let mut out = Vec::new();
    encode_query(0x0102_0304, URL, &mut out).unwrap();
    assert_eq!(out, QUERY);

    let mut via_message = vec![0xff; 8]; // stale contents must be discarded
    Message::query(0x0102_0304, URL).encode(&mut via_message).unwrap();
    assert_eq!(via_message, QUERY);
    assert_eq!(Message::query(0x0102_0304, URL).encoded_len(), 50);
}

#[test]
fn query_bytes_decode() {
    let m = Message::decode(&QUERY).unwrap();
    assert_eq!(m.opcode, Opcode::Query);
    assert_eq!(m.request_number, 0x0102_0304);
    assert_eq!(m.url(), URL);
    assert_eq!(m.payload, Payload::Query { requester: Ipv4Addr::UNSPECIFIED, url: URL });
}

#[rustfmt::skip]
const SQUID_HIT: [u8; 46] = [
    0x02,                   // opcode: ICP_OP_HIT
    0x02,                   // version: 2
    0x00, 0x2e,             // message length: 20 + 25 + 1 = 46
    0x01, 0x02, 0x03, 0x04, // request number: echoed from the query
    0x00, 0x00, 0x00, 0x00, // options: none
    0x00, 0x00, 0x00, 0x00, // option data: 0
    0xc0, 0x00, 0x02, 0x0a, // sender host address: 192.0.2.10
    b'h', b't', b't', b'p', b':', b'/', b'/', b'l', b'o', b'c', b'a', b'l', b'h',
    b'o', b's', b't', b'/', b'w', b's', b'g', b'i', b'/', b'x', b'?', b'y',
    0x00,                   // URL terminator; Squid sends nothing after it
];

#[test]
fn squid_hit_reply_decodes() {
    let m = Message::decode(&SQUID_HIT).unwrap();
    assert_eq!(m.opcode, Opcode::Hit);
    assert!(m.opcode.is_reply() && m.opcode.is_hit());
    assert_eq!(m.request_number, 0x0102_0304);
    assert_eq!(m.options, 0);
    assert_eq!(m.option_data, 0);
    assert_eq!(m.sender, Ipv4Addr::new(192, 0, 2, 10));
    assert_eq!(m.payload, Payload::Url { url: URL });

    let mut out = Vec::new();
    m.encode(&mut out).unwrap();
    assert_eq!(out, SQUID_HIT);
}

#[rustfmt::skip]
const SQUID_MISS: [u8; 32] = [
    0x03,                   // opcode: ICP_OP_MISS
    0x02,                   // version: 2
    0x00, 0x20,             // message length: 20 + 11 + 1 = 32
    0xfe, 0xdc, 0xba, 0x98, // request number: 0xfedcba98
    0x40, 0x00, 0x00, 0x00, // options: ICP_FLAG_SRC_RTT
    0x00, 0x00, 0x00, 0x2a, // option data: source RTT of 42 ms
    0x0a, 0x00, 0x00, 0x07, // sender host address: 10.0.0.7
    b'h', b't', b't', b'p', b':', b'/', b'/', b'a', b'/', b'b', 0xe9, // URL with a raw Latin-1 byte
    0x00,                   // URL terminator
];

#[test]
fn squid_miss_reply_decodes() {
    let m = Message::decode(&SQUID_MISS).unwrap();
    assert_eq!(m.opcode, Opcode::Miss);
    assert!(m.opcode.is_reply() && !m.opcode.is_hit());
    assert_eq!(m.request_number, 0xfedc_ba98);
    assert_eq!(m.options, 0x4000_0000);
    assert_eq!(m.option_data, 42);
    assert_eq!(m.sender, Ipv4Addr::new(10, 0, 0, 7));
    assert_eq!(m.url(), b"http://a/b\xe9");
    assert_eq!(m.opcode.to_string(), "ICP_OP_MISS");
}

#[rustfmt::skip]
const SQUID_HIT_OBJ: [u8; 34] = [
    0x17,                   // opcode: 23, ICP_OP_HIT_OBJ
    0x02,                   // version: 2
    0x00, 0x22,             // message length: 20 + 7 + 2 + 5 = 34
    0x00, 0x00, 0x00, 0x09, // request number: 9
    0x80, 0x00, 0x00, 0x00, // options: ICP_FLAG_HIT_OBJ
    0x00, 0x00, 0x00, 0x00, // option data: 0
    0x7f, 0x00, 0x00, 0x01, // sender host address: 127.0.0.1
    b'h', b't', b't', b'p', b':', b'/', // URL "http:/"
    0x00,                   // URL terminator
    0x00, 0x05,             // object size: 5
    b'h', b'e', 0x00, b'l', 0xff, // object bytes (binary, may contain NUL)
];

#[test]
fn hit_obj_decodes_with_object() {
    let m = Message::decode(&SQUID_HIT_OBJ).unwrap();
    assert_eq!(m.opcode, Opcode::HitObj);
    assert!(m.opcode.is_hit());
    assert_eq!(m.request_number, 9);
    assert_eq!(m.options, 0x8000_0000);
    assert_eq!(m.sender, Ipv4Addr::LOCALHOST);
    assert_eq!(m.payload, Payload::HitObj { url: b"http:/", object: b"he\0l\xff" });

    let mut out = Vec::new();
    m.encode(&mut out).unwrap();
    assert_eq!(out, SQUID_HIT_OBJ);
}

#[test]
fn truncated_reply_is_rejected_with_its_lengths() {
    let err = Message::decode(&SQUID_HIT[..40]).unwrap_err();
    assert_eq!(err, DecodeError::LengthMismatch { field: 46, actual: 40 });
    assert_eq!(err.to_string(), "ICP message of 40 bytes says its length is 46");
}
