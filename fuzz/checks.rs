//! The properties the fuzz targets check, shared word for word with
//! `tests/fuzz_regressions.rs` (which includes this file with `#[path]`), so
//! every seed and every crash input is re-checked by plain `cargo test`,
//! without libFuzzer or a special toolchain.
//!
//! Host names and DNS: `config::peer`, `bind_addr` and `mcast_group` call
//! `getaddrinfo` for any host that does not parse as an IP address. A fuzzer
//! would send thousands of random names a second to the system resolver
//! (slow, non-deterministic, and noise on the network). So this file defines
//! the C symbol `getaddrinfo` itself: in an executable, a definition of the
//! symbol takes precedence over libc's (and over the weak interceptor of a
//! sanitizer runtime), so every lookup the standard library makes in the
//! binary that includes this file fails at once with `EAI_NONAME`, without
//! I/O. Names thus still reach the parser's "cannot resolve host" path, while
//! everything before resolution (splitting host and port, brackets, ports)
//! and everything after it for IP hosts (options, unicast/multicast checks)
//! runs for real. Nothing else in these binaries resolves names.

#![allow(dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use mod_icpquery::config;
use mod_icpquery::engine::Timeout;
use mod_icpquery::icp::{Message, Payload, MAX_MESSAGE_LEN};

/// The resolver-less environment described above: no name resolves.
#[no_mangle]
pub extern "C" fn getaddrinfo(
    _node: *const std::ffi::c_char,
    _service: *const std::ffi::c_char,
    _hints: *const std::ffi::c_void,
    res: *mut *mut std::ffi::c_void,
) -> std::ffi::c_int {
    if !res.is_null() {
        // SAFETY: getaddrinfo's contract: `res` points to writable storage.
        unsafe { *res = std::ptr::null_mut() };
    }
    const EAI_NONAME: std::ffi::c_int = -2; // glibc and musl
    EAI_NONAME
}

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

    match config::timeout(value) {
        Ok(Timeout::Fixed(d)) => assert!(in_timeout_range(d), "{value:?} -> {d:?}"),
        Ok(Timeout::Auto { min, max }) => {
            assert!(in_timeout_range(min) && in_timeout_range(max) && min <= max, "{value:?} -> {min:?}..{max:?}")
        }
        Err(e) => one_line(&e),
    }
    match config::log_level(value) {
        Ok(level) => assert!(level <= 3, "{value:?} -> {level}"),
        Err(e) => one_line(&e),
    }
    match config::mcast_hops(value) {
        Ok(hops) => assert!((1..=255).contains(&hops), "{value:?} -> {hops}"),
        Err(e) => one_line(&e),
    }
    match config::dead_time(value) {
        Ok(d) => assert!((1..=86_400).contains(&d.as_secs()) && d.subsec_nanos() == 0, "{value:?} -> {d:?}"),
        Err(e) => one_line(&e),
    }
    match config::probe_interval(value) {
        Ok(d) => assert!(d.as_secs() <= 86_400 && d.subsec_nanos() == 0, "{value:?} -> {d:?}"),
        Err(e) => one_line(&e),
    }
    match config::peer(value) {
        Ok(p) => {
            let ip = p.addr.ip();
            assert!(!ip.is_multicast() && !ip.is_unspecified(), "{value:?} -> {p:?}");
            assert_ne!(p.addr.port(), 0, "{value:?} -> {p:?}");
            assert!(matches!(p.round, 1 | 2), "{value:?} -> {p:?}");
            assert!(p.weight <= config::MAX_WEIGHT, "{value:?} -> {p:?}");
            assert!(!p.host.is_empty() && !p.carp_name().is_empty(), "{value:?} -> {p:?}");
            let _ = p.ip_text();
        }
        Err(e) => one_line(&e),
    }
    match config::mcast_group(value) {
        Ok(addr) => assert!(addr.ip().is_multicast() && addr.port() != 0, "{value:?} -> {addr}"),
        Err(e) => one_line(&e),
    }
    match config::bind_addr(value) {
        Ok(ip) => {
            let _: IpAddr = ip;
        }
        Err(e) => one_line(&e),
    }
    match config::carp_variant(value) {
        Ok(v) => {
            let _ = format!("{v:?}");
        }
        Err(e) => one_line(&e),
    }
}

fn in_timeout_range(d: Duration) -> bool {
    d >= Duration::from_micros(1) && d <= Duration::from_micros(config::MAX_TIMEOUT_US)
}

/// A refusal is printed into httpd's error log as one line: no control
/// characters may come through from the value.
fn one_line(e: &config::ValueError) {
    let text = e.to_string();
    assert!(!text.chars().any(char::is_control), "refusal message is not one clean line: {text:?}");
}
