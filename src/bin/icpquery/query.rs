//! `icpquery query`: real lookups with the module's own engine, the replies
//! and round-trip times per cache, and a suggested `ICPQueryTimeout`.

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mod_icpquery::engine::{self, Cluster, LocalHealth, Outcome, Responder, Timeout};
use mod_icpquery::settings::values::MAX_TIMEOUT_US;

use crate::carp::shown;
use crate::Failure;

/// The smallest timeout suggested: below a millisecond, scheduling noise on
/// a busy portal is as large as the wait itself.
pub const MIN_SUGGESTED_US: u64 = 1_000;
/// Suggested timeout = this × the slowest reply seen.
pub const SLOWEST_FACTOR: u64 = 3;

/// What one peer did in one lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Result1 {
    Reply(String),
    Refused,
    IcmpError(ErrorKind),
    SendFailed(ErrorKind),
    NoReply,
    NotAsked,
}

impl Result1 {
    fn label(&self) -> String {
        match self {
            Result1::Reply(opcode) => opcode.clone(),
            Result1::Refused => "ICMP refused".to_string(),
            Result1::IcmpError(kind) => format!("ICMP error ({kind})"),
            Result1::SendFailed(kind) => format!("send failed ({kind})"),
            Result1::NoReply => "no reply".to_string(),
            Result1::NotAsked => "not asked (round 2: a round-1 cache answered HIT)".to_string(),
        }
    }
}

/// Everything a responder (peer or multicast answerer) did over the lookups.
#[derive(Default)]
struct Tally {
    results: Vec<Result1>,
    rtts_us: Vec<u64>,
}

impl Tally {
    /// `ICP_OP_HIT x4, no reply x1`: each kind of result, in order of first
    /// appearance, with its count when more than one lookup ran.
    fn summary(&self, lookups: u32) -> String {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for r in &self.results {
            let label = r.label();
            match kinds.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => kinds.push((label, 1)),
            }
        }
        kinds
            .into_iter()
            .map(|(label, n)| if lookups == 1 { label } else { format!("{label} x{n}") })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn rtt_text(&self) -> String {
        let mut r = self.rtts_us.clone();
        r.sort_unstable();
        match r.len() {
            0 => String::new(),
            1 => format!("  rtt {} us", r[0]),
            n => format!("  rtt min {} / median {} / max {} us", r[0], r[(n - 1) / 2], r[n - 1]),
        }
    }
}

/// Runs `count` lookups of `url` against `cluster` (whose timeout is the
/// wait of each), prints the per-peer results and the suggested timeout.
/// `configured` is the `ICPQueryTimeout` of the configuration read, if any.
pub fn run(
    out: &mut impl Write,
    cluster: &Cluster,
    url: &[u8],
    count: u32,
    configured: Option<Timeout>,
) -> Result<(), Failure> {
    let wait = match cluster.timeout {
        Timeout::Fixed(d) => d,
        Timeout::Auto { max, .. } => max,
    };
    let mut peers: Vec<Tally> = cluster.peers.iter().map(|_| Tally::default()).collect();
    let mut strangers: Vec<(SocketAddr, Tally)> = Vec::new();
    let mut dropped: Vec<(String, usize)> = Vec::new();
    for _ in 0..count {
        // Fresh health each time: a cache that failed once is still asked
        // and waited for in the next lookup.
        let health = LocalHealth::new(cluster.peers.len());
        let outcome = engine::run(cluster, engine::Shared::health(health.view()), url)
            .map_err(|e| Failure::Runtime(format!("{}: {e}", shown(url))))?;
        record(&outcome, &mut peers, &mut strangers, &mut dropped);
    }
    let io = |e: std::io::Error| Failure::Io(e);
    writeln!(
        out,
        "ICP_OP_QUERY {} to {} peer(s){}, {count} lookup(s), waiting up to {} us each",
        shown(url),
        cluster.peers.len(),
        if cluster.groups.is_empty() { String::new() } else { format!(" and {} group(s)", cluster.groups.len()) },
        wait.as_micros()
    )
    .map_err(io)?;
    let labels: Vec<String> = cluster
        .peers
        .iter()
        .map(|p| {
            let mut label = p.addr.to_string();
            if p.host != p.ip_text() && p.host != p.addr.ip().to_string() {
                label = format!("{} ({label})", p.host);
            }
            if p.round == 2 {
                label.push_str(" round 2");
            }
            label
        })
        .collect();
    let mut rows: Vec<(String, &Tally)> = labels.into_iter().zip(&peers).collect();
    for (addr, tally) in &strangers {
        rows.push((format!("{addr} (answered a multicast query)"), tally));
    }
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, tally) in &rows {
        writeln!(out, "{label:<width$}  {}{}", tally.summary(count), tally.rtt_text()).map_err(io)?;
    }
    for group in &cluster.groups {
        writeln!(out, "multicast group {group}: every lookup waited the full {} us", wait.as_micros()).map_err(io)?;
    }
    for (reason, n) in &dropped {
        writeln!(out, "dropped {n} datagram(s): {reason}").map_err(io)?;
    }

    let slowest = rows.iter().filter_map(|(label, t)| t.rtts_us.iter().max().map(|m| (*m, label))).max_by_key(|x| x.0);
    if let Some(timeout) = configured {
        writeln!(out, "configured ICPQueryTimeout: {timeout}").map_err(io)?;
    }
    match slowest {
        Some((us, label)) => {
            writeln!(out, "slowest reply: {us} us from {label}").map_err(io)?;
            writeln!(out, "suggested ICPQueryTimeout: {}", suggested_timeout_us(us)).map_err(io)?;
            Ok(())
        }
        None => {
            writeln!(out, "suggested ICPQueryTimeout: none (no cache answered)").map_err(io)?;
            out.flush().map_err(io)?;
            Err(Failure::Runtime("no cache answered".to_string()))
        }
    }
}

fn record(
    outcome: &Outcome,
    peers: &mut [Tally],
    strangers: &mut Vec<(SocketAddr, Tally)>,
    dropped: &mut Vec<(String, usize)>,
) {
    let mut seen = vec![false; peers.len()];
    for reply in &outcome.replies {
        let tally = match reply.responder {
            Responder::Peer(i) => {
                seen[i] = true;
                &mut peers[i]
            }
            Responder::Multicast(addr) => match strangers.iter().position(|(a, _)| *a == addr) {
                Some(at) => &mut strangers[at].1,
                None => {
                    strangers.push((addr, Tally::default()));
                    &mut strangers.last_mut().expect("just pushed").1
                }
            },
        };
        tally.results.push(Result1::Reply(reply.opcode.name().to_string()));
        tally.rtts_us.push(micros(reply.rtt));
    }
    for &(i, kind) in &outcome.refused {
        seen[i] = true;
        peers[i].results.push(if kind == ErrorKind::ConnectionRefused {
            Result1::Refused
        } else {
            Result1::IcmpError(kind)
        });
    }
    for &(i, kind) in &outcome.unreachable {
        seen[i] = true;
        peers[i].results.push(Result1::SendFailed(kind));
    }
    for &i in &outcome.not_asked {
        if !seen[i] {
            seen[i] = true;
            peers[i].results.push(Result1::NotAsked);
        }
    }
    for (i, tally) in peers.iter_mut().enumerate() {
        if !seen[i] {
            tally.results.push(Result1::NoReply);
        }
    }
    for rejected in &outcome.rejected {
        let reason = format!("from {}: {}", rejected.from, rejected.reason);
        match dropped.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => dropped.push((reason, 1)),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `SLOWEST_FACTOR` × the slowest reply, rounded up to two significant
/// digits (1311 → 1400, 37035 → 38000), at least `MIN_SUGGESTED_US`, at
/// most what `ICPQueryTimeout` accepts.
pub fn suggested_timeout_us(slowest_us: u64) -> u64 {
    let x = slowest_us.saturating_mul(SLOWEST_FACTOR);
    let mut step = 1u64;
    while x / step >= 100 {
        step *= 10;
    }
    let rounded = x.div_ceil(step).saturating_mul(step);
    rounded.clamp(MIN_SUGGESTED_US, MAX_TIMEOUT_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_rounds_up_to_two_significant_digits() {
        assert_eq!(suggested_timeout_us(0), 1000);
        assert_eq!(suggested_timeout_us(100), 1000);
        assert_eq!(suggested_timeout_us(333), 1000);
        assert_eq!(suggested_timeout_us(334), 1100);
        assert_eq!(suggested_timeout_us(437), 1400);
        assert_eq!(suggested_timeout_us(12_345), 38_000);
        assert_eq!(suggested_timeout_us(30_000_000), 60_000_000);
    }
}
