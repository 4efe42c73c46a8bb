//! The two `RewriteMap int:` functions.
//!
//! `icpquerymap` runs a lookup and remembers, for this request only, which
//! caches answered; `icpqueryisrunning` answers from that memory. The memory
//! lives in the request's pool (httpd's per-request module config), so
//! concurrent requests in one process can never see each other's answers.

use std::ffi::c_char;
use std::fmt;
use std::net::IpAddr;
use std::ptr::{addr_of, null_mut};

use super::server::{self, Settled};
use super::{c_bytes, errorlog, ffi, guard, module::icpquery_module, pool_own, pool_str};
use crate::engine::{self, Cluster, LookupError, Outcome, Peer, Responder, Transition};
use crate::logfile::{level, Escaped, LogFile};

/// What this request's lookups found out, for `icpqueryisrunning`.
#[derive(Default)]
struct RequestState {
    /// Every address that gave a valid reply to this request's queries.
    answered: Vec<IpAddr>,
    /// Whether `icpquerymap` ran in this request at all.
    queried: bool,
}

/// The request's state, created on first use in the request's pool.
///
/// # Safety
/// `r` must be a live request.
unsafe fn request_state<'a>(r: *mut ffi::request_rec) -> &'a mut RequestState {
    // SAFETY: request_config is the request's own module config vector; the
    // slot is ours and holds NULL or a RequestState owned by r->pool.
    unsafe {
        let module = addr_of!(icpquery_module);
        let state = ffi::ap_get_module_config((*r).request_config, module).cast::<RequestState>();
        if !state.is_null() {
            return &mut *state;
        }
        let state = pool_own((*r).pool, RequestState::default());
        ffi::ap_set_module_config((*r).request_config, module, state.cast());
        &mut *state
    }
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

/// `${icpquery:URL}`: every cache that answered HIT as `ip;ip;`, or NULL.
pub unsafe extern "C" fn icpquerymap(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    guard(null_mut(), || {
        // SAFETY: mod_rewrite passes the live request and a C string key.
        unsafe {
            let Some(settled) = server::settled((*r).server) else { return null_mut() };
            let url = c_bytes(key);
            let events = Events { at: ErrorLogAt::Request(r), log: settled.log.as_ref() };
            let (true, Some(health)) = (settled.mapper, settled.health) else {
                events
                    .log(level::DEBUG, format_args!("icpquerymap \"{}\": ICPQueryMapper is Off -> NULL", Escaped(url)));
                return null_mut();
            };
            let state = request_state(r);
            state.queried = true;
            let value = match engine::run(&settled.cluster, health, url) {
                Ok(outcome) => {
                    report(&events, &settled.cluster, url, &outcome);
                    state.answered.extend(outcome.answered_ips(&settled.cluster));
                    outcome.hit_list(&settled.cluster)
                }
                Err(e) => {
                    // What a client sent must not flood the error log; a
                    // socket failure is the server's own problem.
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
            value.map_or(null_mut(), |v| pool_str((*r).pool, &v))
        }
    })
}

/// `${cacheisrunning:ADDRESS}`: the key itself when that cache is running,
/// else NULL. After an `icpquerymap` in the same request, running means it
/// answered that query; otherwise it means the shared health table does not
/// count it dead.
pub unsafe extern "C" fn icpqueryisrunning(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    guard(null_mut(), || {
        // SAFETY: mod_rewrite passes the live request and a C string key.
        unsafe {
            let Some(settled) = server::settled((*r).server) else { return null_mut() };
            let events = Events { at: ErrorLogAt::Request(r), log: settled.log.as_ref() };
            let key_bytes = c_bytes(key);
            let state = request_state(r);
            let (running, why) = if !settled.mapper {
                (false, "ICPQueryMapper is Off")
            } else if state.queried {
                match answered(&settled.cluster, &state.answered, key_bytes) {
                    true => (true, "answered this request's query"),
                    false => (false, "did not answer this request's query"),
                }
            } else {
                match matching_peers(&settled.cluster, key_bytes).first() {
                    None => (false, "not a configured cache"),
                    Some(&i) if peer_running(settled, state, i) => (true, "alive in the shared health table"),
                    Some(_) => (false, "dead in the shared health table"),
                }
            };
            let shown = if running { "the key" } else { "NULL" };
            events.log(level::RESULT, format_args!("icpqueryisrunning \"{}\" -> {shown} ({why})", Escaped(key_bytes)));
            if running {
                key
            } else {
                null_mut()
            }
        }
    })
}

/// `${icpquerycarp:URL}`: the running cache that owns the URL by CARP (as
/// `icpquerymap` writes addresses), or NULL when no member is running.
/// Running means what `icpqueryisrunning` means.
pub unsafe extern "C" fn icpquerycarp(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    guard(null_mut(), || {
        // SAFETY: mod_rewrite passes the live request and a C string key.
        unsafe {
            let Some(settled) = server::settled((*r).server) else { return null_mut() };
            let events = Events { at: ErrorLogAt::Request(r), log: settled.log.as_ref() };
            let url = c_bytes(key);
            if !settled.mapper {
                events.log(
                    level::DEBUG,
                    format_args!("icpquerycarp \"{}\": ICPQueryMapper is Off -> NULL", Escaped(url)),
                );
                return null_mut();
            }
            let state = request_state(r);
            let owner = settled.carp.owner(url, |i| peer_running(settled, state, i));
            let value = owner.map(|i| settled.cluster.peers[i].ip_text());
            let rule = if state.queried { "answered this request's query" } else { "not dead" };
            match &value {
                Some(v) => events.log(
                    level::RESULT,
                    format_args!("icpquerycarp \"{}\" -> \"{v}\" (CARP owner among caches that {rule})", Escaped(url)),
                ),
                None => events.log(
                    level::RESULT,
                    format_args!("icpquerycarp \"{}\" -> NULL (no CARP member {rule})", Escaped(url)),
                ),
            }
            value.map_or(null_mut(), |v| pool_str((*r).pool, &v))
        }
    })
}

/// Whether peer `i` is running for this request: it answered this
/// request's query if one ran, else the shared table does not count it dead.
fn peer_running(settled: &Settled, state: &RequestState, i: usize) -> bool {
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
