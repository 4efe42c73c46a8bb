//! The `RewriteMap int:` functions.
//!
//! `icpquerymap` runs a lookup and remembers, for this request only, which
//! caches answered; `icpqueryisrunning` and `icpquerycarp` answer from that
//! memory (or from the shared health table when no lookup ran). The memory
//! lives in the request's pool (httpd's per-request module config), so
//! concurrent requests in one process can never see each other's answers.
//! Each cache group has the same three maps under its own names, served by
//! functions of its own ([`GROUP_MAPS`]).

use std::ffi::c_char;
use std::net::IpAddr;
use std::ptr::null_mut;

use super::conf::{self, Settled};
use super::events::{ErrorLogAt, Events};
use super::ffi;
use super::safe::{self, guard, Level, Pool, Request};
use super::state::{MapState, RequestState};
use crate::engine::{self, Cluster, LookupError, Peer};
use crate::logfile::{level, Escaped};

#[derive(Clone, Copy)]
enum Map {
    Query,
    Running,
    Carp,
}

/// Runs map `map` of the server's own configuration (`group` None) or of
/// cache group `group`, for mod_rewrite's `r` and `key`.
fn dispatch(map: Map, group: Option<usize>, r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    guard(null_mut(), || {
        // SAFETY: mod_rewrite passes the live request it is rewriting and a
        // NUL-terminated key in its pool.
        let (Some(r), key_bytes) = (unsafe { Request::from_raw(r) }, unsafe { safe::c_bytes(key) }) else {
            return null_mut();
        };
        let settled = match group {
            None => conf::of(r.server()).settled.as_ref(),
            Some(k) => conf::group_settled(k),
        };
        let Some(settled) = settled else { return null_mut() };
        let events = Events { at: ErrorLogAt::Request(r), log: settled.log.as_ref() };
        let state = RequestState::of(r).map(group.map_or(0, |k| k + 1));
        let value = match map {
            Map::Query => query(&events, settled, state, key_bytes),
            Map::Running => running(&events, settled, state, key_bytes).then(|| key_bytes.to_vec()),
            Map::Carp => carp(&events, settled, state, key_bytes),
        };
        match value {
            Some(v) if v.as_slice() == key_bytes => key,
            Some(v) => r.pool().bytes(&v),
            None => null_mut(),
        }
    })
}

/// `${icpquery:URL}`: every cache that answered HIT as `ip;ip;`, or NULL.
pub extern "C" fn icpquerymap(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    dispatch(Map::Query, None, r, key)
}

/// `${cacheisrunning:ADDRESS}`: the key itself when that cache is running,
/// else NULL.
pub extern "C" fn icpqueryisrunning(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    dispatch(Map::Running, None, r, key)
}

/// `${icpquerycarp:URL}`: the running cache that owns the URL by CARP.
pub extern "C" fn icpquerycarp(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    dispatch(Map::Carp, None, r, key)
}

/// The three maps of each possible cache group: mod_rewrite calls a map
/// with the request and key only, so each group needs functions of its own.
macro_rules! group_maps {
    ($($k:literal)*) => {
        pub static GROUP_MAPS: [[ffi::rewrite_mapfunc_t; 3]; [$($k),*].len()] = [$({
            extern "C" fn query(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
                dispatch(Map::Query, Some($k), r, key)
            }
            extern "C" fn running(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
                dispatch(Map::Running, Some($k), r, key)
            }
            extern "C" fn carp(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
                dispatch(Map::Carp, Some($k), r, key)
            }
            [Some(query), Some(running), Some(carp)]
        }),*];
    };
}
group_maps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

/// The names the server's own maps are registered under.
pub const MAP_NAMES: [&str; 3] = ["icpquerymap", "icpqueryisrunning", "icpquerycarp"];

/// Registers the server's own maps (`group` None) or cache group `group`'s
/// (`NAME:group`) with mod_rewrite. `pool` must live as long as the
/// configuration (mod_rewrite keeps the names).
pub fn register(pool: Pool<'_>, group: Option<(&str, usize)>) -> Result<(), &'static str> {
    let functions: [ffi::rewrite_mapfunc_t; 3] = match group {
        None => [Some(icpquerymap), Some(icpqueryisrunning), Some(icpquerycarp)],
        Some((_, k)) => GROUP_MAPS[k],
    };
    for (name, function) in MAP_NAMES.iter().zip(functions) {
        let name = match group {
            None => (*name).to_owned(),
            Some((group, _)) => format!("{name}:{group}"),
        };
        safe::register_rewrite_map(pool, &name, function)?;
    }
    Ok(())
}

/// `icpquerymap`: a lookup; every cache that answered HIT as `ip;ip;`.
fn query(events: &Events<'_>, settled: &Settled, state: &mut MapState, url: &[u8]) -> Option<Vec<u8>> {
    let (true, Some(shared)) = (settled.mapper, settled.shared()) else {
        events.log(level::DEBUG, format_args!("icpquerymap \"{}\": ICPQueryMapper is Off -> NULL", Escaped(url)));
        return None;
    };
    state.queried = true;
    let value = match engine::run(&settled.cluster, shared, url) {
        Ok(outcome) => {
            events.report(&settled.cluster, url, &outcome);
            state.answered.extend(outcome.answered_ips(&settled.cluster));
            outcome.hit_list(&settled.cluster)
        }
        Err(e) => {
            // What a client sent must not flood the error log; a socket
            // failure is the server's own problem.
            let httpd_level = match e {
                LookupError::NotAUrl | LookupError::Unqueryable(_) => Level::INFO,
                _ => Level::ERR,
            };
            events.problem(httpd_level, format_args!("icpquerymap \"{}\": {e}", Escaped(url)));
            None
        }
    };
    let shown = value.as_deref().map_or("NULL (no cache has it)".into(), |v| format!("\"{v}\""));
    events.log(level::RESULT, format_args!("icpquerymap \"{}\" -> {shown}", Escaped(url)));
    value.map(String::into_bytes)
}

/// `icpqueryisrunning`: after an `icpquerymap` in the same request, running
/// means the cache answered that query; otherwise that the shared health
/// table does not count it dead.
fn running(events: &Events<'_>, settled: &Settled, state: &MapState, key: &[u8]) -> bool {
    let (running, why) = if !settled.mapper {
        (false, "ICPQueryMapper is Off")
    } else if state.queried {
        match answered(&settled.cluster, &state.answered, key) {
            true => (true, "answered this request's query"),
            false => (false, "did not answer this request's query"),
        }
    } else {
        match matching_peers(&settled.cluster, key).first() {
            None => (false, "not a configured cache"),
            Some(&i) if peer_running(settled, state, i) => (true, "alive in the shared health table"),
            Some(_) => (false, "dead in the shared health table"),
        }
    };
    let shown = if running { "the key" } else { "NULL" };
    events.log(level::RESULT, format_args!("icpqueryisrunning \"{}\" -> {shown} ({why})", Escaped(key)));
    running
}

/// `icpquerycarp`: the running cache that owns the URL by CARP, running
/// meaning what `icpqueryisrunning` means.
fn carp(events: &Events<'_>, settled: &Settled, state: &MapState, url: &[u8]) -> Option<Vec<u8>> {
    if !settled.mapper {
        events.log(level::DEBUG, format_args!("icpquerycarp \"{}\": ICPQueryMapper is Off -> NULL", Escaped(url)));
        return None;
    }
    let owner = settled.carp.owner(url, |i| peer_running(settled, state, i));
    let value = owner.map(|i| settled.cluster.peers[i].ip_text());
    let rule = if state.queried { "answered this request's query" } else { "are not dead" };
    match &value {
        Some(v) => events.log(
            level::RESULT,
            format_args!("icpquerycarp \"{}\" -> \"{v}\" (CARP owner among caches that {rule})", Escaped(url)),
        ),
        None => {
            events.log(level::RESULT, format_args!("icpquerycarp \"{}\" -> NULL (no CARP member {rule})", Escaped(url)))
        }
    }
    value.map(String::into_bytes)
}

/// Whether peer `i` is running for this request: it answered this
/// request's query if one ran, else the shared table does not count it dead.
fn peer_running(settled: &Settled, state: &MapState, i: usize) -> bool {
    if state.queried {
        state.answered.contains(&settled.cluster.peers[i].addr.ip())
    } else {
        settled.health().and_then(|h| h.peers.get(i)).is_some_and(|slot| !slot.is_dead())
    }
}

/// The peers `key` names: by address (bracketed or not) or by the host
/// name the configuration gave.
fn matching_peers(cluster: &Cluster, key: &[u8]) -> Vec<usize> {
    let Some(key) = key_text(key) else { return Vec::new() };
    let ip = key_ip(key);
    let named = |p: &Peer| ip.map_or(p.host.eq_ignore_ascii_case(key), |ip| p.addr.ip() == ip);
    cluster.peers.iter().enumerate().filter(|(_, p)| named(p)).map(|(i, _)| i).collect()
}

/// Whether `key` names a cache among the addresses that answered.
fn answered(cluster: &Cluster, answered: &[IpAddr], key: &[u8]) -> bool {
    match key_text(key).and_then(key_ip) {
        Some(ip) => answered.contains(&ip),
        None => matching_peers(cluster, key).iter().any(|&i| answered.contains(&cluster.peers[i].addr.ip())),
    }
}

fn key_text(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key).ok().map(str::trim)
}

fn key_ip(key: &str) -> Option<IpAddr> {
    key.strip_prefix('[').and_then(|k| k.strip_suffix(']')).unwrap_or(key).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let peer = |host: &str, addr: &str| Peer::new(host, addr.parse().unwrap());
        Cluster {
            peers: vec![
                peer("cache-a", "192.0.2.1:3130"),
                peer("192.0.2.2", "192.0.2.2:3130"),
                peer("::1", "[::1]:3130"),
            ],
            ..Cluster::default()
        }
    }

    #[test]
    fn running_by_address_or_configured_name() {
        let ips: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "::1".parse().unwrap()];
        let c = cluster();
        assert!(answered(&c, &ips, b"192.0.2.1"));
        assert!(answered(&c, &ips, b"cache-a"));
        assert!(answered(&c, &ips, b"CACHE-A"));
        assert!(answered(&c, &ips, b"[::1]"));
        assert!(answered(&c, &ips, b"::1"));
        assert!(!answered(&c, &ips, b"192.0.2.2"));
        assert!(!answered(&c, &ips, b"unknown"));
        assert!(!answered(&c, &ips, b""));
        assert!(!answered(&c, &ips, b"\xff\xfe"));
    }
}
