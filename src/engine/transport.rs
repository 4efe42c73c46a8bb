//! Drives a [`Lookup`] with real UDP sockets and the clock: it only moves
//! datagrams and reads the time; what to send, whom to wait for and what
//! the answers mean are decided by [`Plan`], [`Lookup`] and [`record`].
//!
//! Every lookup has its sockets to itself while it runs (see
//! [`sockets`](super::sockets)), so concurrent lookups in threads or
//! processes can never read each other's replies. ICMP errors are read
//! from the socket's error queue, so a cache whose port is closed fails at
//! once instead of costing the timeout.

use std::io;
use std::net::UdpSocket;
use std::time::Instant;

use super::cluster::Cluster;
use super::health::{self, Health};
use super::lookup::{Lookup, Outcome};
use super::memory::Remember;
use super::plan::{Plan, Purpose};
use super::record::record;
use super::sockets::{SocketPool, Sockets};
use super::sys;
use crate::icp::EncodeError;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The URL cannot be put in an ICP query (too long, or contains NUL).
    #[error("URL cannot be queried: {0}")]
    Unqueryable(#[from] EncodeError),
    /// Squid cannot parse such a key and answers for an escaped URL, which
    /// no reply check can accept: querying would only cost the timeout.
    #[error(
        "not queried: a URL is never empty and contains no space or control character, so no cache can hold this one"
    )]
    NotAUrl,
    #[error("cannot open a UDP socket for ICP queries: {0}")]
    Socket(io::Error),
    #[error("waiting for ICP replies failed: {0}")]
    Wait(io::Error),
    #[error("internal error: {peers} peers but {slots} health records")]
    HealthMismatch { peers: usize, slots: usize },
}

/// What the lookups of one cluster share: its health records, its answer
/// memory when it keeps answers, and the sockets its lookups in this
/// process reuse (without a pool, each lookup opens its own).
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    pub health: Health<'a>,
    pub remember: Option<Remember<'a>>,
    pub sockets: Option<&'a SocketPool>,
}

impl<'a> Shared<'a> {
    /// Health records only: no memory, a socket set per lookup.
    pub fn health(health: Health<'a>) -> Shared<'a> {
        Shared { health, remember: None, sockets: None }
    }
}

/// Asks the peers and groups of `cluster` whether they hold `url`, for a
/// request: live peers of round 1 and every group first, round-2 peers only
/// if no HIT came back, within the same deadline; dead peers are not waited
/// for (see [`Plan`]). The lookup ends when everything waited for has
/// answered or failed, or at the deadline; then the shared health records
/// are updated with what was learnt ([`record`]).
///
/// With a memory, a young answer kept for `url` is the outcome and nothing
/// is sent; what a lookup finds is kept (see [`Remember`]).
pub fn run(cluster: &Cluster, shared: Shared<'_>, url: &[u8]) -> Result<Outcome, LookupError> {
    if let Some(remembered) = shared.remember.and_then(|r| r.recall(shared.health, url, health::now_us())) {
        return Ok(remembered);
    }
    let outcome = lookup(cluster, shared, url, Purpose::Request)?;
    if let Some(r) = shared.remember {
        r.store(url, &outcome, health::now_us());
    }
    Ok(outcome)
}

/// A background probe, which no request waits for: like [`run`], but a dead
/// peer is waited for too, and nothing is recalled or kept.
pub fn probe(cluster: &Cluster, shared: Shared<'_>, url: &[u8]) -> Result<Outcome, LookupError> {
    lookup(cluster, shared, url, Purpose::Background)
}

fn lookup(cluster: &Cluster, shared: Shared<'_>, url: &[u8], purpose: Purpose) -> Result<Outcome, LookupError> {
    let health = shared.health;
    if url.is_empty() || url.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(LookupError::NotAUrl);
    }
    if health.peers.len() != cluster.peers.len() {
        return Err(LookupError::HealthMismatch { peers: cluster.peers.len(), slots: health.peers.len() });
    }
    let plan = Plan::new(cluster, health, purpose, health::now_us());
    let mut query = Vec::with_capacity(64 + url.len());
    let request_number = sys::random_u32();
    let mut sockets = match shared.sockets {
        Some(pool) => pool.take(cluster),
        None => Sockets::open(cluster),
    }
    .map_err(LookupError::Socket)?;
    let mut lookup = Lookup::new(cluster, &plan, url, request_number).retired(&sockets.retired);
    lookup.query(&mut query)?;
    let mut buf = std::mem::take(&mut sockets.buf);

    let start = Instant::now();
    let deadline = start + plan.timeout;
    send_round(cluster, &sockets, &query, 1, &mut lookup);
    if lookup.asks_groups() {
        lookup.on_sent_to_groups();
        for group in &cluster.groups {
            // A group that cannot be reached only costs its replies: the
            // deadline still bounds the wait.
            let _ = sockets.for_addr(*group).send_to(&query, *group);
        }
    }
    let mut received = receive_until(&sockets, &mut lookup, start, deadline, &mut buf);
    if received.is_ok() && lookup.second_round_due() && Instant::now() < deadline {
        lookup.on_second_round();
        send_round(cluster, &sockets, &query, 2, &mut lookup);
        received = receive_until(&sockets, &mut lookup, start, deadline, &mut buf);
    }
    let mut outcome = lookup.finish(start.elapsed());
    sockets.buf = buf;
    if let Some(pool) = shared.sockets {
        pool.give(sockets, request_number);
    }
    received?;
    record(cluster, health, &plan, &mut outcome, health::now_us());
    Ok(outcome)
}

fn send_round(cluster: &Cluster, sockets: &Sockets, query: &[u8], round: u8, lookup: &mut Lookup<'_>) {
    for i in lookup.to_ask(round) {
        let addr = cluster.peers[i].addr;
        let socket = sockets.for_addr(addr);
        let mut sent = socket.send_to(query, addr);
        if sent.as_ref().is_err_and(|e| e.raw_os_error().is_some_and(is_icmp_errno)) {
            // The error belongs to an earlier destination whose ICMP answer
            // is pending on the socket: file it, then send this one.
            take_icmp_errors(socket, lookup);
            sent = socket.send_to(query, addr);
        }
        match sent {
            Ok(_) => lookup.on_sent(i),
            Err(e) => lookup.on_send_error(i, e.kind()),
        }
    }
}

fn take_icmp_errors(socket: &UdpSocket, lookup: &mut Lookup<'_>) {
    while let Ok(Some(icmp)) = sys::take_icmp_error(socket) {
        lookup.on_icmp_error(icmp.dest, icmp.error.kind(), icmp.request_number);
    }
}

/// Feeds the lookup everything that arrives until it is complete or the
/// deadline passes.
fn receive_until(
    sockets: &Sockets,
    lookup: &mut Lookup<'_>,
    start: Instant,
    deadline: Instant,
    buf: &mut [u8],
) -> Result<(), LookupError> {
    while !lookup.is_complete() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let ready = sys::wait_readable(&sockets.all, deadline - now).map_err(LookupError::Wait)?;
        for (socket, ready) in sockets.all.iter().zip(ready) {
            if ready.error {
                take_icmp_errors(socket, lookup);
            }
            // Drain everything queued (a flood must not delay real replies),
            // until nothing more is waited for.
            while ready.data && !lookup.is_complete() {
                match sys::recv_from(socket, buf) {
                    Ok((n, from)) if n > buf.len() => lookup.on_oversized(from, n),
                    Ok((n, from)) => lookup.on_datagram(from, &buf[..n], start.elapsed()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The pending error of an ICMP message: take it from the
                    // error queue, then read on.
                    Err(e) if e.raw_os_error().is_some_and(is_icmp_errno) => take_icmp_errors(socket, lookup),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(LookupError::Wait(e)),
                }
            }
        }
    }
    Ok(())
}

fn is_icmp_errno(errno: i32) -> bool {
    matches!(errno, libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::EPROTO)
}
