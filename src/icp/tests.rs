use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::*;

const URL: &[u8] = b"http://localhost/wsgi/x?y";

const ALL_OPCODES: [Opcode; 10] = [
    Opcode::Invalid,
    Opcode::Query,
    Opcode::Hit,
    Opcode::Miss,
    Opcode::Err,
    Opcode::SEcho,
    Opcode::DEcho,
    Opcode::MissNoFetch,
    Opcode::Denied,
    Opcode::HitObj,
];

fn encoded(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out).expect("valid message encodes");
    assert_eq!(out.len(), m.encoded_len());
    out
}

fn assert_round_trip(m: &Message<'_>) {
    let bytes = encoded(m);
    assert_eq!(Message::decode(&bytes), Ok(*m));
}

/// A valid datagram with a URL payload, for corrupting in tests.
fn url_datagram(opcode: u8, url: &[u8]) -> Vec<u8> {
    let len = (HEADER_LEN + url.len() + 1) as u16;
    let mut d = vec![opcode, VERSION];
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&[0; 16]);
    d.extend_from_slice(url);
    d.push(0);
    d
}

fn fix_length(d: &mut [u8]) {
    let len = d.len() as u16;
    d[2..4].copy_from_slice(&len.to_be_bytes());
}

#[test]
fn opcode_from_u8_covers_exactly_the_assigned_values() {
    for v in 0..=u8::MAX {
        match Opcode::from_u8(v) {
            Some(op) => assert_eq!(op as u8, v),
            None => assert!(matches!(v, 5..=9 | 12..=20 | 24..)),
        }
    }
    for op in ALL_OPCODES {
        assert_eq!(Opcode::from_u8(op as u8), Some(op));
    }
}

#[test]
fn opcode_names_and_classes() {
    assert_eq!(Opcode::Hit.name(), "ICP_OP_HIT");
    assert_eq!(Opcode::MissNoFetch.to_string(), "ICP_OP_MISS_NOFETCH");
    assert_eq!(Opcode::HitObj.to_string(), "ICP_OP_HIT_OBJ");
    let names: HashSet<_> = ALL_OPCODES.iter().map(|op| op.name()).collect();
    assert_eq!(names.len(), ALL_OPCODES.len());

    let replies: Vec<_> = ALL_OPCODES.into_iter().filter(|op| op.is_reply()).collect();
    assert_eq!(replies, [Opcode::Hit, Opcode::Miss, Opcode::Err, Opcode::MissNoFetch, Opcode::Denied, Opcode::HitObj]);
    let hits: Vec<_> = ALL_OPCODES.into_iter().filter(|op| op.is_hit()).collect();
    assert_eq!(hits, [Opcode::Hit, Opcode::HitObj]);
}

#[test]
fn every_opcode_round_trips() {
    let query = Message {
        options: 0x8000_0000,
        option_data: 7,
        sender: Ipv4Addr::new(192, 0, 2, 1),
        ..Message::query(0xdead_beef, URL)
    };
    for op in ALL_OPCODES {
        let mut m = query.reply(op);
        assert_eq!(m.opcode, op);
        assert_eq!(m.request_number, 0xdead_beef);
        assert_eq!(m.url(), URL);
        m.options = 0x4000_0000;
        m.option_data = 0x0102_0304;
        m.sender = Ipv4Addr::new(10, 1, 2, 3);
        assert_round_trip(&m);
    }
}

#[test]
fn query_with_requester_round_trips() {
    let mut m = Message::query(1, URL);
    m.payload = Payload::Query { requester: Ipv4Addr::new(198, 51, 100, 7), url: URL };
    assert_round_trip(&m);
    assert_eq!(encoded(&m)[20..24], [198, 51, 100, 7]);
}

#[test]
fn hit_obj_with_object_round_trips() {
    let object = b"HTTP/1.1 200 OK\r\n\r\n\0binary\xff";
    let m = Message { payload: Payload::HitObj { url: URL, object }, ..Message::query(9, URL).reply(Opcode::HitObj) };
    assert_round_trip(&m);
    let empty = Message::query(9, URL).reply(Opcode::HitObj);
    assert_round_trip(&empty);
}

#[test]
fn high_bytes_and_empty_urls_round_trip() {
    let url: Vec<u8> = (1..=u8::MAX).collect();
    assert_round_trip(&Message::query(3, &url));
    assert_round_trip(&Message::query(3, &url).reply(Opcode::Miss));
    assert_round_trip(&Message::query(3, b""));
    assert_round_trip(&Message::query(3, b"").reply(Opcode::Hit));
}

#[test]
fn encode_query_matches_message_query_and_clears_buffer() {
    let mut out = vec![0xaa; 100];
    encode_query(42, URL, &mut out).unwrap();
    assert_eq!(out, encoded(&Message::query(42, URL)));
}

#[test]
fn exact_maximum_size_encodes_and_decodes() {
    let url = vec![b'a'; MAX_MESSAGE_LEN - HEADER_LEN - 1];
    let m = Message::query(1, &url).reply(Opcode::Miss);
    assert_eq!(m.encoded_len(), MAX_MESSAGE_LEN);
    assert_round_trip(&m);

    let url = vec![b'a'; MAX_MESSAGE_LEN - HEADER_LEN - 4 - 1];
    let q = Message::query(1, &url);
    assert_eq!(encoded(&q).len(), MAX_MESSAGE_LEN);
    assert_round_trip(&q);
}

#[test]
fn one_byte_over_maximum_fails_both_ways() {
    let url = vec![b'a'; MAX_MESSAGE_LEN - HEADER_LEN];
    let m = Message::query(1, &url).reply(Opcode::Miss);
    let mut out = vec![1, 2, 3];
    assert_eq!(m.encode(&mut out), Err(EncodeError::TooLong { len: MAX_MESSAGE_LEN + 1 }));
    assert!(out.is_empty(), "a failed encode leaves no stale bytes");

    let mut d = url_datagram(Opcode::Miss as u8, &url);
    d[2..4].copy_from_slice(&(MAX_MESSAGE_LEN as u16 + 1).to_be_bytes());
    assert_eq!(Message::decode(&d), Err(DecodeError::TooLong { len: MAX_MESSAGE_LEN + 1 }));
}

#[test]
fn decode_errors_from_crafted_datagrams() {
    let good = url_datagram(Opcode::Hit as u8, URL);
    assert!(Message::decode(&good).is_ok());

    assert_eq!(Message::decode(&good[..19]), Err(DecodeError::TooShort { len: 19 }));
    assert_eq!(Message::decode(&[]), Err(DecodeError::TooShort { len: 0 }));

    let huge = vec![0u8; 70_000];
    assert_eq!(Message::decode(&huge), Err(DecodeError::TooLong { len: 70_000 }));

    let mut d = good.clone();
    d.push(0);
    assert_eq!(
        Message::decode(&d),
        Err(DecodeError::LengthMismatch { field: good.len() as u16, actual: good.len() + 1 })
    );

    let mut d = good.clone();
    d[1] = 3;
    assert_eq!(Message::decode(&d), Err(DecodeError::BadVersion(3)));

    for bad in [5u8, 9, 12, 20, 24, 255] {
        let mut d = good.clone();
        d[0] = bad;
        assert_eq!(Message::decode(&d), Err(DecodeError::UnknownOpcode(bad)));
    }

    let mut d = good.clone();
    *d.last_mut().unwrap() = b'z';
    assert_eq!(Message::decode(&d), Err(DecodeError::UrlNotTerminated));

    // A query whose payload cannot even hold the requester and a NUL.
    for body in [&b""[..], b"\0\0\0\0", b"\0\0\0"] {
        let mut d = url_datagram(Opcode::Query as u8, b"");
        d.truncate(HEADER_LEN);
        d.extend_from_slice(body);
        fix_length(&mut d);
        assert_eq!(Message::decode(&d), Err(DecodeError::UrlNotTerminated));
    }

    let mut d = good.clone();
    d.push(b'x');
    fix_length(&mut d);
    assert_eq!(Message::decode(&d), Err(DecodeError::TrailingBytes));

    let mut q = encoded(&Message::query(1, URL));
    q.push(0);
    fix_length(&mut q);
    assert_eq!(Message::decode(&q), Err(DecodeError::TrailingBytes));
}

#[test]
fn hit_obj_object_length_must_match() {
    let m = Message {
        payload: Payload::HitObj { url: URL, object: b"abc" },
        ..Message::query(1, URL).reply(Opcode::HitObj)
    };
    let good = encoded(&m);

    // No size field at all.
    let mut d = url_datagram(Opcode::HitObj as u8, URL);
    assert_eq!(Message::decode(&d), Err(DecodeError::ObjectLengthMismatch));
    // Half a size field.
    d.push(0);
    fix_length(&mut d);
    assert_eq!(Message::decode(&d), Err(DecodeError::ObjectLengthMismatch));
    // Object shorter than its size.
    let mut d = good.clone();
    d.pop();
    fix_length(&mut d);
    assert_eq!(Message::decode(&d), Err(DecodeError::ObjectLengthMismatch));
    // Object longer than its size.
    let mut d = good.clone();
    d.push(b'd');
    fix_length(&mut d);
    assert_eq!(Message::decode(&d), Err(DecodeError::ObjectLengthMismatch));
}

#[test]
fn check_order_reports_the_earliest_problem() {
    // Wrong length field and bad version: length is checked first.
    let mut d = url_datagram(99, URL);
    d[1] = 1;
    d.push(b'x');
    assert!(matches!(Message::decode(&d), Err(DecodeError::LengthMismatch { .. })));
    fix_length(&mut d);
    assert_eq!(Message::decode(&d), Err(DecodeError::BadVersion(1)));
    d[1] = VERSION;
    assert_eq!(Message::decode(&d), Err(DecodeError::UnknownOpcode(99)));
}

#[test]
fn encode_errors() {
    let mut out = Vec::new();
    assert_eq!(Message::query(1, b"http://a/\0b").encode(&mut out), Err(EncodeError::UrlContainsNul));
    assert_eq!(encode_query(1, b"\0", &mut out), Err(EncodeError::UrlContainsNul));

    let big = vec![0u8; usize::from(u16::MAX) + 1];
    let m =
        Message { payload: Payload::HitObj { url: URL, object: &big }, ..Message::query(1, URL).reply(Opcode::HitObj) };
    assert_eq!(m.encode(&mut out), Err(EncodeError::ObjectTooLong));

    let fits_u16_not_icp = vec![0u8; usize::from(u16::MAX)];
    let m = Message { payload: Payload::HitObj { url: URL, object: &fits_u16_not_icp }, ..m };
    assert_eq!(
        m.encode(&mut out),
        Err(EncodeError::TooLong { len: HEADER_LEN + URL.len() + 1 + 2 + usize::from(u16::MAX) })
    );

    let mut m = Message::query(1, URL).reply(Opcode::Hit);
    m.payload = Payload::Query { requester: Ipv4Addr::UNSPECIFIED, url: URL };
    assert_eq!(m.encode(&mut out), Err(EncodeError::PayloadMismatch(Opcode::Hit)));
    let mut q = Message::query(1, URL);
    q.payload = Payload::Url { url: URL };
    assert_eq!(q.encode(&mut out), Err(EncodeError::PayloadMismatch(Opcode::Query)));
    q.opcode = Opcode::HitObj;
    assert_eq!(q.encode(&mut out), Err(EncodeError::PayloadMismatch(Opcode::HitObj)));
}

#[test]
fn messages_are_readable() {
    let all = [
        DecodeError::TooShort { len: 3 },
        DecodeError::TooLong { len: 20000 },
        DecodeError::LengthMismatch { field: 30, actual: 25 },
        DecodeError::BadVersion(3),
        DecodeError::UnknownOpcode(7),
        DecodeError::UrlNotTerminated,
        DecodeError::TrailingBytes,
        DecodeError::ObjectLengthMismatch,
    ];
    let messages: HashSet<String> = all.iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), all.len());

    assert_eq!(all[2].to_string(), "ICP message of 25 bytes says its length is 30");
    assert_eq!(all[0].to_string(), "ICP message of 3 bytes is shorter than the 20-byte header");
    assert_eq!(all[1].to_string(), "ICP message of 20000 bytes exceeds the 16384-byte maximum");
    assert_eq!(
        EncodeError::TooLong { len: 16385 }.to_string(),
        "ICP message would be 16385 bytes, over the 16384-byte maximum"
    );
    assert_eq!(EncodeError::ObjectTooLong.to_string(), "ICP_OP_HIT_OBJ object is longer than 65535 bytes");
    assert_eq!(EncodeError::PayloadMismatch(Opcode::Hit).to_string(), "ICP_OP_HIT cannot carry this payload");
}

/// Every truncation and every single-byte corruption of valid messages must
/// decode to a result (usually an error), never a panic.
#[test]
fn mutations_never_panic() {
    let object = b"obj";
    let samples = [
        encoded(&Message::query(0x0102_0304, URL)),
        encoded(&Message::query(5, URL).reply(Opcode::Miss)),
        encoded(&Message {
            payload: Payload::HitObj { url: URL, object },
            ..Message::query(5, URL).reply(Opcode::HitObj)
        }),
    ];
    for sample in &samples {
        for cut in 0..=sample.len() {
            let _ = Message::decode(&sample[..cut]);
        }
        for i in 0..sample.len() {
            for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                let mut d = sample.clone();
                d[i] = v;
                if let Ok(m) = Message::decode(&d) {
                    // Whatever decodes must re-encode to the same bytes.
                    assert_eq!(encoded(&m), d);
                }
            }
        }
    }
    // Pseudo-random datagrams with a consistent length field and version,
    // so the payload parsers are reached.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = HEADER_LEN + (state % 40) as usize;
        let mut d: Vec<u8> = (0..len).map(|i| (state >> ((i % 8) * 8)) as u8 % 4).collect();
        d[0] = [1, 2, 3, 23][(state >> 60) as usize % 4];
        d[1] = VERSION;
        fix_length(&mut d);
        if let Ok(m) = Message::decode(&d) {
            assert_eq!(encoded(&m), d);
        }
    }
}
