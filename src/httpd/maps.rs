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

use super::{c_bytes, errorlog, ffi, guard, module::icpquery_module, pool_own, pool_str, server};
use crate::engine::{self, Cluster, LookupError, Outcome, Responder};
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
struct Events<'a> {
    r: *mut ffi::request_rec,
    log: Option<&'a LogFile>,
}

impl Events<'_> {
    fn enabled(&self, level: u8) -> bool {
        self.log.is_some_and(|l| l.enabled(level))
    }

    fn log(&self, level: u8, message: fmt::Arguments<'_>) {
        if let Some(log) = self.log {
            log.write(level, message);
        }
    }

    /// A problem goes to both logs; httpd's at `httpd_level`, under the
    /// module's `LogLevel icpquery:...`.
    fn problem(&self, httpd_level: u32, message: fmt::Arguments<'_>) {
        self.log(level::PROBLEM, message);
        // SAFETY: `r` is the live request being mapped.
        unsafe {
            if errorlog::request_enabled(self.r, httpd_level) {
                errorlog::request(self.r, httpd_level, &message.to_string());
            }
        }
    }
}

/// `${icpquery:URL}`: every cache that answered HIT as `ip;ip;`, or NULL.
pub unsafe extern "C" fn icpquerymap(r: *mut ffi::request_rec, key: *mut c_char) -> *mut c_char {
    guard(null_mut(), || {
        // SAFETY: mod_rewrite passes the live request and a C string key.
        unsafe {
            let Some(settled) = server::settled((*r).server) else {
                return null_mut();
            };
            let url = c_bytes(key);
            let events = Events {
                r,
                log: settled.log.as_ref(),
            };
            if !settled.mapper {
                events.log(
                    level::DEBUG,
                    format_args!(
                        "icpquerymap \"{}\": ICPQueryMapper is Off for this server -> NULL",
                        Escaped(url)
                    ),
                );
                return null_mut();
            }
            let state = request_state(r);
            state.queried = true;
            let value = match engine::run(&settled.cluster, url) {
                Ok(outcome) => {
                    report(&events, &settled.cluster, url, &outcome);
                    state
                        .answered
                        .extend(outcome.answered_ips(&settled.cluster));
                    outcome.hit_list(&settled.cluster)
                }
                Err(e) => {
                    // What a client sent must not flood the error log; a
                    // socket failure is the server's own problem.
                    let httpd_level = match e {
                        LookupError::NotAUrl | LookupError::Unqueryable(_) => errorlog::INFO,
                        LookupError::Socket(_) | LookupError::Wait(_) => errorlog::ERR,
                    };
                    events.problem(
                        httpd_level,
                        format_args!("icpquerymap \"{}\": {e}", Escaped(url)),
                    );
                    None
                }
            };
            match &value {
                Some(v) => events.log(
                    level::RESULT,
                    format_args!("icpquerymap \"{}\" -> \"{v}\"", Escaped(url)),
                ),
                None => events.log(
                    level::RESULT,
                    format_args!("icpquerymap \"{}\" -> NULL (no cache has it)", Escaped(url)),
                ),
            }
            match value {
                Some(v) => pool_str((*r).pool, &v),
                None => null_mut(),
            }
        }
    })
}

/// `${cacheisrunning:ADDRESS}`: the key itself when that cache answered this
/// request's ICP query (any valid reply), else NULL.
pub unsafe extern "C" fn icpqueryisrunning(
    r: *mut ffi::request_rec,
    key: *mut c_char,
) -> *mut c_char {
    guard(null_mut(), || {
        // SAFETY: mod_rewrite passes the live request and a C string key.
        unsafe {
            let Some(settled) = server::settled((*r).server) else {
                return null_mut();
            };
            let events = Events {
                r,
                log: settled.log.as_ref(),
            };
            let key_bytes = c_bytes(key);
            let state = request_state(r);
            let running = state.queried && is_running(&settled.cluster, &state.answered, key_bytes);
            let why = if !state.queried {
                "no icpquerymap ran in this request"
            } else if running {
                "answered this request's query"
            } else {
                "did not answer this request's query"
            };
            events.log(
                level::RESULT,
                format_args!(
                    "icpqueryisrunning \"{}\" -> {} ({why})",
                    Escaped(key_bytes),
                    if running { "the key" } else { "NULL" }
                ),
            );
            if running {
                key
            } else {
                null_mut()
            }
        }
    })
}

/// Whether `key` (an address, bracketed or not, or a peer's configured host
/// name) names a cache that answered.
fn is_running(cluster: &Cluster, answered: &[IpAddr], key: &[u8]) -> bool {
    let Ok(key) = std::str::from_utf8(key) else {
        return false;
    };
    let key = key.trim();
    let bare = key
        .strip_prefix('[')
        .and_then(|k| k.strip_suffix(']'))
        .unwrap_or(key);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return answered.contains(&ip);
    }
    cluster
        .peers
        .iter()
        .any(|p| p.host.eq_ignore_ascii_case(key) && answered.contains(&p.addr.ip()))
}

/// Logs what a lookup saw: the query (debug), each reply (information), and
/// every problem (silence, unreachable peers, dropped datagrams).
fn report(events: &Events<'_>, cluster: &Cluster, url: &[u8], outcome: &Outcome) {
    let url = Escaped(url);
    if events.enabled(level::DEBUG) {
        events.log(
            level::DEBUG,
            format_args!(
                "query {:08x} for \"{url}\" to {} peer(s) and {} group(s), timeout {} us: {} repl(ies) in {} us{}",
                outcome.request_number,
                cluster.peers.len(),
                cluster.groups.len(),
                cluster.timeout.as_micros(),
                outcome.replies.len(),
                outcome.elapsed.as_micros(),
                if outcome.complete { ", all peers answered" } else { "" }
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
                format_args!(
                    "{} from {from} for \"{url}\" in {} us",
                    reply.opcode,
                    reply.rtt.as_micros()
                ),
            );
        }
    }
    for &i in &outcome.silent {
        events.problem(
            errorlog::INFO,
            format_args!(
                "no reply from {} within {} us for \"{url}\"",
                cluster.peers[i].addr,
                cluster.timeout.as_micros()
            ),
        );
    }
    for &(i, kind) in &outcome.unreachable {
        events.problem(
            errorlog::WARNING,
            format_args!(
                "cannot send an ICP query to {}: {kind}",
                cluster.peers[i].addr
            ),
        );
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Peer;

    fn cluster() -> Cluster {
        let peer = |host: &str, addr: &str| Peer {
            host: host.into(),
            addr: addr.parse().unwrap(),
        };
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
        let answered: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "::1".parse().unwrap()];
        let c = cluster();
        assert!(is_running(&c, &answered, b"192.0.2.1"));
        assert!(is_running(&c, &answered, b"cache-a"));
        assert!(is_running(&c, &answered, b"CACHE-A"));
        assert!(is_running(&c, &answered, b"[::1]"));
        assert!(is_running(&c, &answered, b"::1"));
        assert!(!is_running(&c, &answered, b"192.0.2.2"));
        assert!(!is_running(&c, &answered, b"unknown"));
        assert!(!is_running(&c, &answered, b""));
        assert!(!is_running(&c, &answered, b"\xff\xfe"));
    }
}
