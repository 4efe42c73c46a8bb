//! Directive values, parsed once at startup.
//!
//! A wrong value must stop httpd at `apachectl configtest` with the
//! directive, the value and what was expected, so every parser here returns a
//! [`ValueError`] that says all three. Plain Rust: the module and the tools
//! read configurations the same way. Host names are looked up only after the
//! value has been split into host and port, through the caller's
//! [`Resolve`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::resolve::{self, Resolve, Unresolved};
use crate::engine::{Peer, Timeout, DEFAULT_ICP_PORT};

/// Where `ICPQueryLog` writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogTarget {
    /// An absolute path (made ServerRoot-relative when read).
    File(PathBuf),
    /// The value after its first `|`, as httpd's `ap_open_piped_log` takes
    /// it: `prog args` or `|prog args` run the program directly, `$command`
    /// runs it through the shell.
    Pipe(String),
}

impl std::fmt::Display for LogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogTarget::File(path) => write!(f, "{}", path.display()),
            LogTarget::Pipe(program) => write!(f, "|{program}"),
        }
    }
}

/// A directive value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{directive} \"{value}\": {problem}; expected {expected}")]
pub struct ValueError {
    pub directive: &'static str,
    pub value: String,
    pub problem: String,
    pub expected: &'static str,
}

fn refuse(directive: &'static str, value: &str, problem: impl Into<String>, expected: &'static str) -> ValueError {
    ValueError { directive, value: value.escape_debug().to_string(), problem: problem.into(), expected }
}

/// Longest `ICPQueryTimeout`: a minute is already far beyond any sane wait
/// inside an HTTP request.
pub const MAX_TIMEOUT_US: u64 = 60_000_000;

/// `ICPQueryTimeout <µs>` or `ICPQueryTimeout auto [<min µs> <max µs>]`.
pub fn timeout(value: &str) -> Result<Timeout, ValueError> {
    const EXPECTED: &str = "microseconds as a whole number from 1 to 60000000 (100000 is 0.1 s), \
                            or \"auto\" optionally followed by the least and the longest wait in microseconds";
    let words: Vec<&str> = value.split_whitespace().collect();
    let micros = |word: &str| -> Result<Duration, ValueError> {
        let us: u64 = word.parse().map_err(|_| {
            let problem = if word.starts_with('-') { "negative" } else { "not a number" };
            refuse("ICPQueryTimeout", value, problem, EXPECTED)
        })?;
        if us == 0 || us > MAX_TIMEOUT_US {
            return Err(refuse("ICPQueryTimeout", value, "out of range", EXPECTED));
        }
        Ok(Duration::from_micros(us))
    };
    match words.as_slice() {
        [w] if w.eq_ignore_ascii_case("auto") => {
            Ok(Timeout::Auto { min: Timeout::DEFAULT_AUTO_MIN, max: Timeout::DEFAULT_AUTO_MAX })
        }
        [w, min, max] if w.eq_ignore_ascii_case("auto") => {
            let (min, max) = (micros(min)?, micros(max)?);
            if min > max {
                return Err(refuse("ICPQueryTimeout", value, "the least wait is longer than the longest", EXPECTED));
            }
            Ok(Timeout::Auto { min, max })
        }
        [w] => Ok(Timeout::Fixed(micros(w)?)),
        [] => Err(refuse("ICPQueryTimeout", value, "not a number", EXPECTED)),
        _ => Err(refuse("ICPQueryTimeout", value, "wrong number of words", EXPECTED)),
    }
}

/// `ICPQueryDeadTime <seconds>`.
pub fn dead_time(value: &str) -> Result<Duration, ValueError> {
    const EXPECTED: &str = "seconds as a whole number from 1 to 86400 (Squid's dead_peer_timeout is 10)";
    seconds("ICPQueryDeadTime", value, 1, EXPECTED)
}

/// `ICPQueryProbeInterval <seconds>`; 0 turns probing off.
pub fn probe_interval(value: &str) -> Result<Duration, ValueError> {
    const EXPECTED: &str = "seconds as a whole number from 0 (off) to 86400";
    seconds("ICPQueryProbeInterval", value, 0, EXPECTED)
}

/// Whole seconds from `least` to a day.
fn seconds(directive: &'static str, value: &str, least: u64, expected: &'static str) -> Result<Duration, ValueError> {
    match value.trim().parse::<u64>() {
        Ok(s) if (least..=86_400).contains(&s) => Ok(Duration::from_secs(s)),
        Ok(_) => Err(refuse(directive, value, "out of range", expected)),
        Err(_) => Err(refuse(directive, value, "not a number", expected)),
    }
}

/// `ICPQueryCARP squid|draft`.
pub fn carp_variant(value: &str) -> Result<crate::engine::carp::Variant, ValueError> {
    value.trim().parse().map_err(|_| {
        refuse(
            "ICPQueryCARP",
            value,
            "not a CARP variant",
            "squid (hash as Squid 3.3 and later do) or draft (as draft-vinod-carp-v1-03 and Squid 3.2)",
        )
    })
}

/// `ICPQueryLogLevel 0..3`.
pub fn log_level(value: &str) -> Result<u8, ValueError> {
    const EXPECTED: &str = "0 (problems), 1 (results), 2 (information) or 3 (debug)";
    match value.trim().parse::<u8>() {
        Ok(level @ 0..=3) => Ok(level),
        _ => Err(refuse("ICPQueryLogLevel", value, "not a log level", EXPECTED)),
    }
}

/// `ICPQueryMCastHops <1..255>`.
pub fn mcast_hops(value: &str) -> Result<u32, ValueError> {
    const EXPECTED: &str = "a multicast TTL from 1 to 255";
    match value.trim().parse::<u32>() {
        Ok(hops @ 1..=255) => Ok(hops),
        Ok(_) => Err(refuse("ICPQueryMCastHops", value, "out of range", EXPECTED)),
        Err(_) => Err(refuse("ICPQueryMCastHops", value, "not a number", EXPECTED)),
    }
}

/// `ICPQueryBindAddr <host>`: an address or a name that resolves to one.
pub fn bind_addr(value: &str, resolver: &dyn Resolve) -> Result<IpAddr, ValueError> {
    const EXPECTED: &str = "a local IP address or host name";
    let host = value.trim().trim_start_matches('[').trim_end_matches(']');
    address("ICPQueryBindAddr", value, resolver, HostPort { host, port: 0 }, EXPECTED).map(|a| a.ip())
}

/// Largest CARP `weight=`: Squid's own limit for a cache_peer weight.
pub const MAX_WEIGHT: u32 = 65_535;

/// `ICPQueryPeer <host>[:port] [round=1|2] [weight=N] [name=STR]`.
pub fn peer(value: &str, resolver: &dyn Resolve) -> Result<Peer, ValueError> {
    const EXPECTED: &str = "host[:port] with a port from 1 to 65535, e.g. 192.0.2.1:3130 or [2001:db8::1]:3130, \
                            then options as key=value: round=1|2, weight=0..65535, name=STR";
    let mut words = value.split_whitespace();
    let address = words.next().unwrap_or("");
    let host_port = host_port("ICPQueryPeer", value, address, EXPECTED)?;
    let addr = self::address("ICPQueryPeer", value, resolver, host_port, EXPECTED)?;
    if addr.ip().is_multicast() || addr.ip().is_unspecified() {
        return Err(refuse(
            "ICPQueryPeer",
            value,
            "not a unicast address",
            "a cache's unicast address; use ICPQueryMCastAddr for multicast groups",
        ));
    }
    let mut peer = Peer::new(host_port.host, addr);
    for option in words {
        let bad = |problem: String| refuse("ICPQueryPeer", value, problem, EXPECTED);
        match option.split_once('=') {
            Some(("round", "1")) => peer.round = 1,
            Some(("round", "2")) => peer.round = 2,
            Some(("round", other)) => return Err(bad(format!("round \"{}\" is not 1 or 2", other.escape_debug()))),
            Some(("weight", w)) => {
                peer.weight = w.parse().ok().filter(|w| *w <= MAX_WEIGHT).ok_or_else(|| {
                    bad(format!("weight \"{}\" is not a whole number from 0 to {MAX_WEIGHT}", w.escape_debug()))
                })?
            }
            Some(("name", n)) if !n.is_empty() => peer.carp_name = Some(n.to_owned()),
            Some(("name", _)) => return Err(bad("name is empty".into())),
            _ => return Err(bad(format!("unknown option \"{}\"", option.escape_debug()))),
        }
    }
    Ok(peer)
}

/// `ICPQueryMCastAddr <group>[:port]`.
pub fn mcast_group(value: &str, resolver: &dyn Resolve) -> Result<SocketAddr, ValueError> {
    const EXPECTED: &str = "a multicast group[:port], e.g. 239.255.255.253:3130 or [ff15::1234]:3130";
    let host_port = host_port("ICPQueryMCastAddr", value, value, EXPECTED)?;
    let addr = address("ICPQueryMCastAddr", value, resolver, host_port, EXPECTED)?;
    if !addr.ip().is_multicast() {
        return Err(refuse("ICPQueryMCastAddr", value, "not a multicast address", EXPECTED));
    }
    Ok(addr)
}

/// A host as written (a name or an address) and a port, before any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPort<'a> {
    pub host: &'a str,
    pub port: u16,
}

/// Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn host_port<'a>(
    directive: &'static str,
    value: &str,
    address: &'a str,
    expected: &'static str,
) -> Result<HostPort<'a>, ValueError> {
    let value_t = address.trim();
    let bad = |problem: &str| refuse(directive, value, problem, expected);
    let (host, port) = if let Some(rest) = value_t.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?)),
        }
    } else if value_t.matches(':').count() > 1 {
        (value_t, None) // a bare IPv6 address: it cannot carry a port
    } else {
        match value_t.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value_t, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => DEFAULT_ICP_PORT,
        Some(p) => match p.parse::<u32>() {
            Ok(n @ 1..=65535) => n as u16,
            Ok(_) => return Err(bad("port out of range")),
            Err(_) => return Err(bad("port is not a number")),
        },
    };
    Ok(HostPort { host, port })
}

/// `host_port` as an address, or the directive's refusal.
fn address(
    directive: &'static str,
    value: &str,
    resolver: &dyn Resolve,
    HostPort { host, port }: HostPort<'_>,
    expected: &'static str,
) -> Result<SocketAddr, ValueError> {
    resolve::address(resolver, host, port).map_err(|why| {
        let host = host.escape_debug();
        let problem = match why {
            Unresolved::Failed(e) => format!("cannot resolve host \"{host}\" ({e})"),
            Unresolved::NoAddress => format!("host \"{host}\" has no address"),
        };
        refuse(directive, value, problem, expected)
    })
}

/// `ICPQueryRemember <seconds> [<entries>]`: how long answers are kept and
/// how many (`None`: the default); 0 seconds keeps none.
pub fn remember(value: &str) -> Result<(Duration, Option<usize>), ValueError> {
    const EXPECTED: &str = "seconds to keep answers, a whole number from 0 (off) to 3600, optionally followed by \
                            how many to keep, from 16 to 16777216 (default 16384)";
    let bad = |problem: &str| refuse("ICPQueryRemember", value, problem, EXPECTED);
    let words: Vec<&str> = value.split_whitespace().collect();
    let (seconds, entries) = match words.as_slice() {
        [s] => (s, None),
        [s, e] => (s, Some(e)),
        [] => return Err(bad("not a number")),
        _ => return Err(bad("wrong number of words")),
    };
    let seconds = match seconds.parse::<u64>() {
        Ok(s @ 0..=3600) => Duration::from_secs(s),
        Ok(_) => return Err(bad("out of range")),
        Err(_) => return Err(bad("not a number")),
    };
    let entries = match entries.map(|e| e.parse::<usize>()) {
        None => None,
        Some(Ok(n @ 16..=16_777_216)) => Some(n),
        Some(Ok(_)) => return Err(bad("entries out of range")),
        Some(Err(_)) => return Err(bad("entries is not a number")),
    };
    Ok((seconds, entries))
}

/// `ICPQueryBalancerPort <port>`: where `lbmethod=bycache` asks each
/// balancer member's host.
pub fn balancer_port(value: &str) -> Result<u16, ValueError> {
    const EXPECTED: &str = "the members' ICP port, a whole number from 1 to 65535 (ICP's own is 3130)";
    match value.trim().parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        Ok(_) => Err(refuse("ICPQueryBalancerPort", value, "out of range", EXPECTED)),
        Err(_) => Err(refuse("ICPQueryBalancerPort", value, "not a number", EXPECTED)),
    }
}

/// How `lbmethod=bycache` writes the URL it asks the caches about: this
/// prefix, then the path and query the member is about to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `scheme://authority`, e.g. `http://localhost`: what a Squid
    /// accelerator with `defaultsite=localhost no-vhost` keys objects by.
    Fixed(String),
    /// `http://` and the request's Host header: what a Squid accelerator
    /// keys by with `vhost` when the portal has `ProxyPreserveHost On`.
    RequestHost,
}

impl KeyPrefix {
    pub const DEFAULT: &'static str = "http://localhost";
}

/// `ICPQueryBalancerKey http://HOST[:PORT]|host`.
pub fn balancer_key(value: &str) -> Result<KeyPrefix, ValueError> {
    const EXPECTED: &str = "a scheme and host such as http://localhost (a Squid accelerator with \
                            defaultsite=localhost no-vhost), or \"host\" for http:// and the request's Host header \
                            (Squid with vhost, and ProxyPreserveHost On)";
    let v = value.trim();
    if v.eq_ignore_ascii_case("host") {
        return Ok(KeyPrefix::RequestHost);
    }
    let Some((scheme, authority)) = v.split_once("://") else {
        return Err(refuse("ICPQueryBalancerKey", value, "not a URL prefix", EXPECTED));
    };
    let scheme_ok = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority_ok =
        !authority.is_empty() && authority.bytes().all(|b| b.is_ascii_graphic() && !b"/?#\"".contains(&b));
    if !scheme_ok || !authority_ok {
        return Err(refuse("ICPQueryBalancerKey", value, "not a scheme and host without a path", EXPECTED));
    }
    Ok(KeyPrefix::Fixed(format!("{}://{authority}", scheme.to_ascii_lowercase())))
}

/// `ICPQueryMapper On|Off`, as httpd's own FLAG directives take it.
pub fn mapper(value: &str) -> Result<bool, String> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("on") => Ok(true),
        v if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err("ICPQueryMapper must be On or Off".to_string()),
    }
}

/// `ICPQueryLog file|"|program"`. A file is made absolute by
/// `server_relative` (httpd's `ap_server_root_relative`, or the tool's
/// equivalent), which says `None` when it cannot; a program is never a path.
pub fn log_target(value: &str, server_relative: &dyn Fn(&str) -> Option<PathBuf>) -> Result<LogTarget, ValueError> {
    if let Some(program) = value.strip_prefix('|') {
        let bare = program.strip_prefix(['|', '$']).unwrap_or(program);
        if bare.trim().is_empty() {
            return Err(refuse(
                "ICPQueryLog",
                value,
                "no program after the |",
                "\"|program args\" or \"|$shell command\"",
            ));
        }
        return Ok(LogTarget::Pipe(program.to_owned()));
    }
    match server_relative(value) {
        Some(path) if !value.trim().is_empty() => Ok(LogTarget::File(path)),
        _ => Err(refuse(
            "ICPQueryLog",
            value,
            "not a usable file path",
            "a file path, absolute or relative to ServerRoot, or \"|program\"",
        )),
    }
}

/// The name of an `<ICPQueryGroup name>` block, from the rest of its line
/// (`name>`), or the refusal.
pub fn group_name(rest: &str) -> Result<&str, String> {
    let name = rest.trim().strip_suffix('>').unwrap_or("").trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!(
            "<ICPQueryGroup {}: not a group name; expected <ICPQueryGroup name> with a name of letters, digits, \
             '-' and '_'",
            rest.escape_debug()
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests;
