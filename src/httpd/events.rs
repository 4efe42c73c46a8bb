//! What lookups tell operators: the module's own log (`ICPQueryLog`) and,
//! for problems, httpd's error log, written side by side.

use std::fmt;

use super::safe::{Level, Request, Server};
use crate::engine::health::{revival_period, HUNG_AFTER};
use crate::engine::{Cluster, Death, Outcome, Responder, Transition};
use crate::logfile::{level, Escaped, LogFile};

/// Where httpd's error-log lines go: a map's lookup logs under its request
/// (httpd adds the client), a probe under its server.
#[derive(Clone, Copy)]
pub enum ErrorLogAt<'a> {
    Request(Request<'a>),
    Server(Server<'a>),
}

/// The module's log of a server or group, and httpd's error log.
pub struct Events<'a> {
    pub at: ErrorLogAt<'a>,
    pub log: Option<&'a LogFile>,
}

impl Events<'_> {
    pub fn enabled(&self, level: u8) -> bool {
        self.log.is_some_and(|l| l.enabled(level))
    }

    pub fn log(&self, level: u8, message: fmt::Arguments<'_>) {
        if let Some(log) = self.log {
            log.write(level, message);
        }
    }

    /// A problem goes to both logs; httpd's at `httpd_level`, under the
    /// module's `LogLevel icpquery:...`.
    pub fn problem(&self, httpd_level: Level, message: fmt::Arguments<'_>) {
        self.log(level::PROBLEM, message);
        self.error_log(httpd_level, message);
    }

    pub fn error_log(&self, httpd_level: Level, message: fmt::Arguments<'_>) {
        match self.at {
            ErrorLogAt::Request(r) if r.log_enabled(httpd_level) => r.log(httpd_level, &message.to_string()),
            ErrorLogAt::Request(_) => {}
            // httpd filters by the server's module log level itself.
            ErrorLogAt::Server(s) => s.log(httpd_level, 0, &message.to_string()),
        }
    }

    /// Logs what a lookup saw: the query (debug), each reply (information),
    /// every problem (silence, ICMP errors, unreachable peers, dropped
    /// datagrams) and every change of a cache's health.
    pub fn report(&self, cluster: &Cluster, url: &[u8], outcome: &Outcome) {
        let url = Escaped(url);
        if let Some(age) = outcome.from_memory {
            if self.enabled(level::DEBUG) {
                let hits: Vec<String> = outcome
                    .replies
                    .iter()
                    .filter(|r| r.opcode.is_hit())
                    .filter_map(|r| match r.responder {
                        Responder::Peer(i) => Some(cluster.peers[i].addr.to_string()),
                        Responder::Multicast(_) => None,
                    })
                    .collect();
                let (age, hits) = (age.as_millis(), hits.join(", "));
                self.log(
                    level::DEBUG,
                    format_args!("\"{url}\" answered from memory (kept {age} ms ago): HIT at {hits}"),
                );
            }
            return;
        }
        if self.enabled(level::DEBUG) {
            let ended = if outcome.complete { ", every cache waited for answered" } else { "" };
            self.log(
                level::DEBUG,
                format_args!(
                    "query {:08x} for \"{url}\" to {} peer(s) and {} group(s), {} dead peer(s) probed, {} not \
                     asked{}, timeout {} us: {} repl(ies) in {} us{ended}",
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
        if self.enabled(level::INFO) {
            for reply in &outcome.replies {
                let from = match reply.responder {
                    Responder::Peer(i) => cluster.peers[i].addr.to_string(),
                    Responder::Multicast(addr) => format!("{addr} (multicast)"),
                };
                self.log(
                    level::INFO,
                    format_args!("{} from {from} for \"{url}\" in {} us", reply.opcode, reply.rtt.as_micros()),
                );
            }
        }
        for &i in &outcome.silent {
            let (addr, waited) = (cluster.peers[i].addr, outcome.timeout.as_micros());
            self.problem(Level::INFO, format_args!("no reply from {addr} within {waited} us for \"{url}\""));
        }
        for &(i, kind) in &outcome.refused {
            let addr = cluster.peers[i].addr;
            self.problem(Level::INFO, format_args!("{addr} refused the query by ICMP ({kind}): no ICP there"));
        }
        for &(i, kind) in &outcome.unreachable {
            let addr = cluster.peers[i].addr;
            self.problem(Level::WARNING, format_args!("cannot send an ICP query to {addr}: {kind}"));
        }
        for rejected in &outcome.rejected {
            let (from, reason) = (rejected.from, rejected.reason);
            self.problem(Level::WARNING, format_args!("dropped a datagram from {from}: {reason} ({})", reason.label()));
        }
        for &(i, transition) in &outcome.transitions {
            let addr = cluster.peers[i].addr;
            let again = format!("asking it again every {}", Seconds(revival_period(cluster.dead_time)));
            let message = match transition {
                Transition::Revived => format!("cache {addr} is alive again"),
                Transition::Died(Death::Refused) => {
                    format!("cache {addr} is dead: its host refused the query (ICMP); {again}")
                }
                Transition::Died(Death::Hung) => format!(
                    "cache {addr} is dead: it did not answer {HUNG_AFTER} lookups in a row that other caches \
                     answered; {again}"
                ),
                Transition::Died(Death::Silent) => {
                    format!("cache {addr} is dead: no valid reply for {}; {again}", Seconds(cluster.dead_time))
                }
            };
            self.log(level::RESULT, format_args!("{message}"));
            self.error_log(Level::NOTICE, format_args!("{message}"));
        }
    }
}

/// A duration as operators write it: `1 s`, `250 ms`.
struct Seconds(std::time::Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.subsec_millis() {
            0 => write!(f, "{} s", self.0.as_secs()),
            _ => write!(f, "{} ms", self.0.as_millis()),
        }
    }
}
