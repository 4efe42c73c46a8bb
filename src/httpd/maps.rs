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
use std::fmt;
use std::net::IpAddr;
use std::ptr::{addr_of, null_mut};

use super::server::{self, Settled};
use super::{c_bytes, errorlog, ffi, guard, module::icpquery_module, pool_own};
use crate::engine::{self, Cluster, LookupError, Outcome, Peer, Responder, Transition};
use crate::logfile::{level, Escaped, LogFile};

/// What this request's lookups found out: one entry for the server's own
/// maps (0) and one per cache group (k + 1).
#[derive(Default)]
struct RequestState {
    maps: Vec<MapState>,
}

#[derive(Default)]
struct MapState {
    /// Every address that gave a valid reply to this request's queries.
    answered: Vec<IpAddr>,
    /// Whether `icpquerymap` ran in this request at all.
    queried: bool,
}

/// The request's state for one set of maps, created on first use in the
/// request's pool.
///
/// # Safety
/// `r` must be a live request.
unsafe fn request_state<'a>(r: *mut ffi::request_rec, set: usize) -> &'a mut MapState {
    // SAFETY: request_config is the request's own module config vector; the
    // slot is ours and holds NULL or a RequestState owned by r->pool.
    let state = unsafe {
        let module = addr_of!(icpquery_module);
        let mut state = ffi::ap_get_module_config((*r).request_config, module).cast::<RequestState>();
        if state.is_null() {
            state = pool_own((*r).pool, RequestState::default());
            ffi::ap_set_module_config((*r).request_config, module, state.cast());
        }
        &mut *state
    };
    if state.maps.len() <= set {
        state.maps.resize_with(set + 1, MapState::default);
    }
    &mut state.maps[set]
}

/// The module's log for the request's server, and the httpd error log for
/// problems, written side by side.
pub(super) struct Events<'a> {
    at: ErrorLogAt,
    log: Option<&'a LogFile>,
}

/// Where httpd's error log lines go: a map's lookup logs under its request
/// (httpd adds the client), a probe (probe.rs) under its server.
#[derive(Clone, Copy)]
enum ErrorLogAt {
    Request(*mut ffi::request_rec),
    Server(*const ffi::server_rec),
}

impl<'a> Events<'a> {
    /// Events of a lookup that belongs to no request.
    ///
    /// # Safety
    /// `s` must be a live server_rec for as long as the value is used.
    pub(super) unsafe fn for_server(s: *const ffi::server_rec, log: Option<&'a LogFile>) -> Self {
        Events { at: ErrorLogAt::Server(s), log }
    }

    fn enabled(&self, level: u8) -> bool {
        self.log.is_some_and(|l| l.enabled(level))
    }

    pub(super) fn log(&self, level: u8, message: fmt::Arguments<'_>) {
        if let Some(log) = self.log {
            log.write(level, message);
        }
    }

    /// A problem goes to both logs; httpd's at `httpd_level`, under the
    /// module's `LogLevel icpquery:...`.
    pub(super) fn problem(&self, httpd_level: u32, message: fmt::Arguments<'_>) {
        self.log(level::PROBLEM, message);
        self.error_log(httpd_level, message);
    }

    fn error_log(&self, httpd_level: u32, message: fmt::Arguments<'_>) {
        // SAFETY: the request being mapped, or the server for_server was
        // given, is live while `self` is.
        unsafe {
            match self.at {
                ErrorLogAt::Request(r) if errorlog::request_enabled(r, httpd_level) => {
                    errorlog::request(r, httpd_level, &message.to_string())
                }
                ErrorLogAt::Request(_) => {}
                // httpd filters by the server's module log level itself.
                ErrorLogAt::Server(s) => errorlog::server(s, httpd_level, 0, &message.to_string()),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Map {
    Query,
    Running,
    Carp,
}

/// Runs map `map` of the server's own configuration (`group` None) or of
/// cache group `group`.
///
/// # Safety
/// `r` and `key` as mod_rewrite passes them to a map function.
unsafe fn dispatch(map: Map, group: Option<usize>, r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    guard(null_mut(), || {
        // SAFETY: mod_rewrite passes the live request and a C string key.
        unsafe {
            let settled = match group {
                None => server::settled((*r).server),
                Some(k) => server::group_settled(k),
            };
            let Some(settled) = settled else { return null_mut() };
            let events = Events { at: ErrorLogAt::Request(r), log: settled.log.as_ref() };
            let state = request_state(r, group.map_or(0, |k| k + 1));
            let key_bytes = c_bytes(key);
            let value = match map {
                Map::Query => query(&events, settled, state, key_bytes),
                Map::Running => running(&events, settled, state, key_bytes).then(|| key_bytes.to_vec()),
                Map::Carp => carp(&events, settled, state, key_bytes),
            };
            match value {
                Some(v) if v.as_slice() == key_bytes => key,
                Some(v) => super::pool_bytes((*r).pool, &v),
                None => null_mut(),
            }
        }
    })
}

/// `${icpquery:URL}`: every cache that answered HIT as `ip;ip;`, or NULL.
pub unsafe extern "C" fn icpquerymap(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    // SAFETY: called by mod_rewrite as a map function.
    unsafe { dispatch(Map::Query, None, r, key) }
}

/// `${cacheisrunning:ADDRESS}`: the key itself when that cache is running,
/// else NULL.
pub unsafe extern "C" fn icpqueryisrunning(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    // SAFETY: called by mod_rewrite as a map function.
    unsafe { dispatch(Map::Running, None, r, key) }
}

/// `${icpquerycarp:URL}`: the running cache that owns the URL by CARP.
pub unsafe extern "C" fn icpquerycarp(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    // SAFETY: called by mod_rewrite as a map function.
    unsafe { dispatch(Map::Carp, None, r, key) }
}

/// The three maps of each possible cache group: mod_rewrite calls a map
/// with the request and key only, so each group needs functions of its own.
macro_rules! group_maps {
    ($($k:literal)*) => {
        pub static GROUP_MAPS: [[ffi::rewrite_mapfunc_t; 3]; [$($k),*].len()] = [$({
            unsafe extern "C" fn query(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
                // SAFETY: called by mod_rewrite as a map function.
                unsafe { dispatch(Map::Query, Some($k), r, key) }
            }
            unsafe extern "C" fn running(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
                // SAFETY: called by mod_rewrite as a map function.
                unsafe { dispatch(Map::Running, Some($k), r, key) }
            }
            unsafe extern "C" fn carp(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
                // SAFETY: called by mod_rewrite as a map function.
                unsafe { dispatch(Map::Carp, Some($k), r, key) }
            }
            [Some(query), Some(running), Some(carp)]
        }),*];
    };
}
group_maps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

/// The names the server's own maps are registered under.
pub const MAP_NAMES: [&str; 3] = ["icpquerymap", "icpqueryisrunning", "icpquerycarp"];

/// Registers `map_names` (`NAME` or `NAME:group`) with mod_rewrite.
///
/// # Safety
/// `pool` must live as long as the configuration (mod_rewrite keeps the
/// name pointers).
pub unsafe fn register(pool: *mut ffi::apr_pool_t, group: Option<(&str, usize)>) -> Result<(), &'static str> {
    // SAFETY: the optional function, when present, has exactly this type:
    // void ap_register_rewrite_mapfunc(char *name, rewrite_mapfunc_t *func).
    unsafe {
        let register = ffi::apr_dynamic_fn_retrieve(c"ap_register_rewrite_mapfunc".as_ptr())
            .ok_or("mod_rewrite is not loaded; expected LoadModule rewrite_module")?;
        type Register = unsafe extern "C" fn(*mut c_char, ffi::rewrite_mapfunc_t);
        let register = std::mem::transmute::<unsafe extern "C" fn(), Register>(register);
        let functions = match group {
            None => [Some(icpquerymap as _), Some(icpqueryisrunning as _), Some(icpquerycarp as _)],
            Some((_, k)) => GROUP_MAPS[k],
        };
        for (name, function) in MAP_NAMES.iter().zip(functions) {
            let name = match group {
                None => (*name).to_owned(),
                Some((group, _)) => format!("{name}:{group}"),
            };
            register(super::pool_str(pool, &name), function);
        }
    }
    Ok(())
}

/// `icpquerymap`: a lookup; every cache that answered HIT as `ip;ip;`.
fn query(events: &Events<'_>, settled: &Settled, state: &mut MapState, url: &[u8]) -> Option<Vec<u8>> {
    let (true, Some(health)) = (settled.mapper, settled.health) else {
        events.log(level::DEBUG, format_args!("icpquerymap \"{}\": ICPQueryMapper is Off -> NULL", Escaped(url)));
        return None;
    };
    state.queried = true;
    let value = match engine::run(&settled.cluster, health, url) {
        Ok(outcome) => {
            report(events, &settled.cluster, url, &outcome);
            state.answered.extend(outcome.answered_ips(&settled.cluster));
            outcome.hit_list(&settled.cluster)
        }
        Err(e) => {
            // What a client sent must not flood the error log; a socket
            // failure is the server's own problem.
            let httpd_level = match e {
                LookupError::NotAUrl | LookupError::Unqueryable(_) => errorlog::INFO,
                _ => errorlog::ERR,
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
        settled.health.and_then(|h| h.peers.get(i)).is_some_and(|slot| !slot.is_dead())
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

/// Logs what a lookup saw: the query (debug), each reply (information),
/// every problem (silence, ICMP errors, unreachable peers, dropped
/// datagrams) and every change of a cache's health.
pub(super) fn report(events: &Events<'_>, cluster: &Cluster, url: &[u8], outcome: &Outcome) {
    let url = Escaped(url);
    if events.enabled(level::DEBUG) {
        let ended = if outcome.complete { ", every cache waited for answered" } else { "" };
        events.log(
            level::DEBUG,
            format_args!(
                "query {:08x} for \"{url}\" to {} peer(s) and {} group(s), {} dead peer(s) probed, {} not asked{}, \
                 timeout {} us: {} repl(ies) in {} us{ended}",
                outcome.request_number,
                cluster.peers.len() - outcome.not_asked.len(),
                cluster.groups.len(),
                outcome.probed.len(),
                outcome.not_asked.len(),
                if outcome.second_round { ", second round asked" } else { "" },
                outcome.timeout.as_micros(),
                outcome.replies.len(),
                outcome.elapsed.as_micros(),
            ),
        );
    }
    if events.enabled(level::INFO) {
        for reply in &outcome.replies {
            let from = match reply.responder {
                Responder::Peer(i) => cluster.peers[i].addr.to_string(),
                Responder::Multicast(addr) => format!("{addr} (multicast)"),
            };
            events.log(
                level::INFO,
                format_args!("{} from {from} for \"{url}\" in {} us", reply.opcode, reply.rtt.as_micros()),
            );
        }
    }
    for &i in &outcome.silent {
        let (addr, waited) = (cluster.peers[i].addr, outcome.timeout.as_micros());
        events.problem(errorlog::INFO, format_args!("no reply from {addr} within {waited} us for \"{url}\""));
    }
    for &(i, kind) in &outcome.refused {
        events.problem(
            errorlog::INFO,
            format_args!("{} refused the query by ICMP ({kind}): no ICP there", cluster.peers[i].addr),
        );
    }
    for &(i, kind) in &outcome.unreachable {
        events
            .problem(errorlog::WARNING, format_args!("cannot send an ICP query to {}: {kind}", cluster.peers[i].addr));
    }
    for rejected in &outcome.rejected {
        events.problem(
            errorlog::WARNING,
            format_args!(
                "dropped a datagram from {}: {} ({})",
                rejected.from,
                rejected.reason,
                rejected.reason.reason()
            ),
        );
    }
    for &(i, transition) in &outcome.transitions {
        let addr = cluster.peers[i].addr;
        let message = match transition {
            Transition::Revived => format!("cache {addr} is alive again"),
            Transition::Died if outcome.refused.iter().any(|(r, _)| *r == i) => {
                format!(
                    "cache {addr} is dead: its host refused the query (ICMP); asking it again once per {} s",
                    cluster.dead_time.as_secs()
                )
            }
            Transition::Died => format!(
                "cache {addr} is dead: no valid reply for {} s; asking it again once per {} s",
                cluster.dead_time.as_secs(),
                cluster.dead_time.as_secs()
            ),
        };
        events.log(level::RESULT, format_args!("{message}"));
        events.error_log(errorlog::NOTICE, format_args!("{message}"));
    }
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
