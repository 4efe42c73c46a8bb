//! The properties the fuzz targets check, shared word for word with
//! `tests/fuzz_regressions.rs` (which includes this file with `#[path]`), so
//! every seed and every crash input is re-checked by plain `cargo test`,
//! without libFuzzer or a special toolchain.
//!
//! Host names: the parsers that take one (`values::peer`, `bind_addr`,
//! `mcast_group`) look it up through the resolver they are given, after the
//! value is split into host and port. Here it is a table with no names, so
//! a fuzzer's random names fail at once, without I/O, and still reach the
//! parser's "cannot resolve host" path, while everything before resolution
//! and everything after it for IP hosts runs for real.

#![allow(dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use mod_icpquery::engine::Timeout;
use mod_icpquery::icp::{Message, Payload, MAX_MESSAGE_LEN};
use mod_icpquery::settings::pac::{self, PacCaches};
use mod_icpquery::settings::resolve::TableResolver;
use mod_icpquery::settings::values;

/// The resolver described above: no name resolves.
pub const NO_NAMES: TableResolver = TableResolver::empty();

/// `icp_decode`: any bytes. Decoding never panics; whatever it accepts must
/// encode, the encoding must be byte for byte the datagram (decoding is
/// strict, so an accepted datagram is the one canonical form of its
/// message), and decoding the encoding must give the same message.
pub fn icp_decode(data: &[u8]) {
    let Ok(first) = Message::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_MESSAGE_LEN);
    assert_eq!(first.encoded_len(), data.len(), "encoded_len disagrees with the datagram: {first:?}");
    assert!(!first.url().contains(&0), "decoded URL contains NUL: {first:?}");
    if let Payload::HitObj { object, .. } = first.payload {
        assert!(object.len() <= usize::from(u16::MAX));
    }
    let mut out = Vec::new();
    first.encode(&mut out).unwrap_or_else(|e| panic!("decoded message does not encode ({e}): {first:?}"));
    assert_eq!(out, data, "encoding differs from the accepted datagram: {first:?}");
    let second = Message::decode(&out).unwrap_or_else(|e| panic!("encoding does not decode ({e}): {first:?}"));
    assert_eq!(first, second, "decode -> encode -> decode changed the message");
}

/// `directive_values`: any UTF-8 (other bytes are not a directive value
/// httpd would hand over). Every parser in `config` must return, never
/// panic; what it accepts must be in its documented range, and what it
/// refuses must print as one line (the value is shown escaped).
pub fn directive_values(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };

    match values::timeout(value) {
        Ok(Timeout::Fixed(d)) => assert!(in_timeout_range(d), "{value:?} -> {d:?}"),
        Ok(Timeout::Auto { min, max }) => {
            assert!(in_timeout_range(min) && in_timeout_range(max) && min <= max, "{value:?} -> {min:?}..{max:?}")
        }
        Err(e) => one_line(&e),
    }
    match values::log_level(value) {
        Ok(level) => assert!(level <= 3, "{value:?} -> {level}"),
        Err(e) => one_line(&e),
    }
    match values::mcast_hops(value) {
        Ok(hops) => assert!((1..=255).contains(&hops), "{value:?} -> {hops}"),
        Err(e) => one_line(&e),
    }
    match values::dead_time(value) {
        Ok(d) => assert!((1..=86_400).contains(&d.as_secs()) && d.subsec_nanos() == 0, "{value:?} -> {d:?}"),
        Err(e) => one_line(&e),
    }
    match values::probe_interval(value) {
        Ok(d) => assert!(d.as_secs() <= 86_400 && d.subsec_nanos() == 0, "{value:?} -> {d:?}"),
        Err(e) => one_line(&e),
    }
    match values::peer(value, &NO_NAMES) {
        Ok(p) => {
            let ip = p.addr.ip();
            assert!(!ip.is_multicast() && !ip.is_unspecified(), "{value:?} -> {p:?}");
            assert_ne!(p.addr.port(), 0, "{value:?} -> {p:?}");
            assert!(matches!(p.round, 1 | 2), "{value:?} -> {p:?}");
            assert!(p.weight <= values::MAX_WEIGHT, "{value:?} -> {p:?}");
            assert!(!p.host.is_empty() && !p.carp_name().is_empty(), "{value:?} -> {p:?}");
            let _ = p.ip_text();
        }
        Err(e) => one_line(&e),
    }
    match values::mcast_group(value, &NO_NAMES) {
        Ok(addr) => assert!(addr.ip().is_multicast() && addr.port() != 0, "{value:?} -> {addr}"),
        Err(e) => one_line(&e),
    }
    match values::bind_addr(value, &NO_NAMES) {
        Ok(ip) => {
            let _: IpAddr = ip;
        }
        Err(e) => one_line(&e),
    }
    match values::carp_variant(value) {
        Ok(v) => {
            let _ = format!("{v:?}");
        }
        Err(e) => one_line(&e),
    }
    match values::log_target(value, &|path| Some(std::path::Path::new("/srv").join(path))) {
        Ok(target) => assert!(!target.to_string().is_empty(), "{value:?}"),
        Err(e) => one_line(&e),
    }
    if let Err(e) = values::group_name(value) {
        assert!(!e.chars().any(char::is_control), "refusal message is not one clean line: {e:?}");
    }
    match pac::caches(value) {
        Ok(PacCaches::Balancer(name)) => assert!(name.len() > "balancer://".len(), "{value:?} -> {name}"),
        Ok(_) => {}
        Err(e) => one_line(&e),
    }
    match pac::proxy_port("ICPQueryPACProxyPort", value) {
        Ok(port) => assert_ne!(port, 0, "{value:?}"),
        Err(e) => one_line(&e),
    }
    match pac::routes("ICPQueryPACFallback", value) {
        // What the PAC file writes into a JavaScript string and returns.
        Ok(routes) => assert!(!routes.is_empty() && !routes.chars().any(|c| c.is_control() || c == '"' || c == '\\')),
        Err(e) => one_line(&e),
    }
}

fn in_timeout_range(d: Duration) -> bool {
    d >= Duration::from_micros(1) && d <= Duration::from_micros(values::MAX_TIMEOUT_US)
}

/// A refusal is printed into httpd's error log as one line: no control
/// characters may come through from the value.
fn one_line(e: &values::ValueError) {
    let text = e.to_string();
    assert!(!text.chars().any(char::is_control), "refusal message is not one clean line: {text:?}");
}
