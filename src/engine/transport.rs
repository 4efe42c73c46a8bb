//! Drives a [`Lookup`] with real UDP sockets, a deadline and the shared
//! peer health.
//!
//! Every lookup opens its own socket (one per address family in use), so
//! concurrent lookups in threads or processes can never read each other's
//! replies; the kernel picks a fresh ephemeral port for each. ICMP errors
//! are read from the socket's error queue, so a cache whose port is closed
//! fails at once instead of costing the timeout.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use super::health::{self, Counter, Health, PeerSlot};
use super::lookup::{Lookup, Outcome, Reject, Responder};
use super::{sys, Cluster};
use crate::icp::{EncodeError, MAX_MESSAGE_LEN};

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

/// Asks the peers and groups of `cluster` whether they hold `url`.
///
/// Live peers of round 1 and every group are asked first; round-2 peers
/// only if no HIT came back, within the same deadline. Dead peers are not
/// waited for: one lookup per dead time sends them a query so they can
/// revive. The lookup ends when every peer waited for has answered or
/// failed (and no group was asked), or at the deadline. Afterwards the
/// shared health records are updated with what was learnt.
pub fn run(cluster: &Cluster, health: Health<'_>, url: &[u8]) -> Result<Outcome, LookupError> {
    let now_us = health::now_us();
    lookup(cluster, health, url, |slot| match slot.is_dead() {
        false => Some(true),
        true if slot.claim_probe(now_us, cluster.dead_time) => Some(false),
        true => None,
    })
}

/// A background probe (no request waits for it): like [`run`], but a dead
/// peer due its revival query is also waited for, so a dead cache that
/// answers more slowly than the live ones is still heard and revived.
pub fn probe(cluster: &Cluster, health: Health<'_>, url: &[u8]) -> Result<Outcome, LookupError> {
    let now_us = health::now_us();
    lookup(cluster, health, url, |slot| {
        (!slot.is_dead() || slot.claim_probe(now_us, cluster.dead_time)).then_some(true)
    })
}

/// One lookup; `plan` says per peer whether it is asked (`Some`) and
/// waited for (`Some(true)`).
fn lookup(
    cluster: &Cluster,
    health: Health<'_>,
    url: &[u8],
    plan: impl Fn(&PeerSlot) -> Option<bool>,
) -> Result<Outcome, LookupError> {
    if url.is_empty() || url.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(LookupError::NotAUrl);
    }
    if health.peers.len() != cluster.peers.len() {
        return Err(LookupError::HealthMismatch { peers: cluster.peers.len(), slots: health.peers.len() });
    }
    let mut lookup = Lookup::new(cluster, url, sys::random_u32());
    let mut query = Vec::with_capacity(64 + url.len());
    lookup.query(&mut query)?;

    // Who is asked and waited for is decided before the clock starts.
    let plan: Vec<Option<bool>> = health.peers.iter().map(plan).collect();
    let timeout =
        cluster.timeout.for_rtts((0..plan.len()).filter(|&i| plan[i] == Some(true)).map(|i| health.peers[i].srtt()));

    let sockets = Sockets::open(cluster).map_err(LookupError::Socket)?;
    let start = Instant::now();
    let deadline = start + timeout;
    let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
    send_round(cluster, &sockets, &query, &plan, 1, &mut lookup);
    let learning = !cluster.groups.is_empty() && {
        let expected = health.cluster.multicast_responders_expected(health::now_us(), cluster.dead_time);
        lookup.on_sent_to_groups(expected);
        expected.is_none()
    };
    for group in &cluster.groups {
        // A group that cannot be reached only costs its replies: the
        // deadline still bounds the wait.
        let _ = sockets.for_addr(*group).send_to(&query, *group);
    }
    receive_until(&sockets, &mut lookup, start, deadline, &mut buf)?;
    let second_round = !lookup.has_hit() && cluster.peers.iter().any(|p| p.round == 2) && Instant::now() < deadline;
    if second_round {
        send_round(cluster, &sockets, &query, &plan, 2, &mut lookup);
        receive_until(&sockets, &mut lookup, start, deadline, &mut buf)?;
    }
    if learning {
        health.cluster.learn_multicast_responders(lookup.multicast_responders());
    }
    let mut outcome = lookup.finish(timeout, start.elapsed());
    outcome.second_round = second_round;
    record(cluster, health, &mut outcome);
    Ok(outcome)
}

fn send_round(
    cluster: &Cluster,
    sockets: &Sockets,
    query: &[u8],
    plan: &[Option<bool>],
    round: u8,
    lookup: &mut Lookup<'_>,
) {
    for (i, peer) in cluster.peers.iter().enumerate().filter(|(_, p)| p.round == round) {
        let Some(wait) = plan[i] else { continue };
        let socket = sockets.for_addr(peer.addr);
        let mut sent = socket.send_to(query, peer.addr);
        if sent.as_ref().is_err_and(|e| e.raw_os_error().is_some_and(is_icmp_errno)) {
            // The error belongs to an earlier destination whose ICMP answer
            // is pending on the socket: file it, then send this one.
            take_icmp_errors(socket, lookup);
            sent = socket.send_to(query, peer.addr);
        }
        match sent {
            Ok(_) => lookup.on_sent(i, wait),
            Err(e) => lookup.on_send_error(i, e.kind()),
        }
    }
}

fn take_icmp_errors(socket: &UdpSocket, lookup: &mut Lookup<'_>) {
    while let Ok(Some((dest, err))) = sys::take_icmp_error(socket) {
        lookup.on_icmp_error(dest, err.kind());
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

/// Writes what the lookup learnt into the shared health records.
fn record(cluster: &Cluster, health: Health<'_>, outcome: &mut Outcome) {
    let now_us = health::now_us();
    health.cluster.lookups.fetch_add(1, Relaxed);
    if outcome.complete {
        health.cluster.complete.fetch_add(1, Relaxed);
    }
    let mut transitions = Vec::new();
    for reply in &outcome.replies {
        match reply.responder {
            Responder::Peer(i) => transitions.push((i, health.peers[i].record_reply(reply.opcode, reply.rtt, now_us))),
            Responder::Multicast(_) => {
                health.cluster.multicast_replies.fetch_add(1, Relaxed);
            }
        }
    }
    for &(i, _) in &outcome.refused {
        transitions.push((i, health.peers[i].record_refused(now_us, cluster.dead_time)));
    }
    for &i in &outcome.silent {
        transitions.push((i, health.peers[i].record_timeout(now_us, cluster.dead_time)));
    }
    for (i, slot) in health.peers.iter().enumerate() {
        if !outcome.not_asked.contains(&i) {
            slot.count(Counter::Queries);
        }
    }
    for rejected in &outcome.rejected {
        match cluster
            .peers
            .iter()
            .position(|p| p.addr.ip() == rejected.from.ip() && p.addr.port() == rejected.from.port())
        {
            Some(i) => health.peers[i].count_reject(rejected.reason.reason()),
            None if rejected.reason == Reject::UnknownSender => {
                health.cluster.unknown_sender.fetch_add(1, Relaxed);
            }
            None => {} // a multicast responder's bad datagram: no record of its own
        }
    }
    outcome.transitions = transitions.into_iter().filter_map(|(i, t)| Some((i, t?))).collect();
}

/// The sockets one lookup sends from: at most one per address family.
struct Sockets {
    v4: Option<usize>,
    v6: Option<usize>,
    all: Vec<UdpSocket>,
}

impl Sockets {
    fn open(cluster: &Cluster) -> io::Result<Sockets> {
        let dests = || cluster.peers.iter().map(|p| p.addr).chain(cluster.groups.iter().copied());
        let mut sockets = Sockets { v4: None, v6: None, all: Vec::with_capacity(1) };
        if dests().any(|a| a.is_ipv4()) {
            sockets.v4 = Some(sockets.all.len());
            sockets.all.push(open_socket(cluster, Domain::IPV4)?);
        }
        if dests().any(|a| a.is_ipv6()) {
            sockets.v6 = Some(sockets.all.len());
            sockets.all.push(open_socket(cluster, Domain::IPV6)?);
        }
        Ok(sockets)
    }

    fn for_addr(&self, addr: SocketAddr) -> &UdpSocket {
        let index = if addr.is_ipv4() { self.v4 } else { self.v6 };
        &self.all[index.expect("a socket is opened for every family in use")]
    }
}

fn open_socket(cluster: &Cluster, domain: Domain) -> io::Result<UdpSocket> {
    let ipv6 = domain == Domain::IPV6;
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    let bind = cluster.bind.filter(|b| b.ip.is_ipv6() == ipv6);
    let bind_ip = bind.map(|b| b.ip);
    let unspecified = if ipv6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
    if ipv6 {
        socket.set_only_v6(true)?;
    }
    socket.bind(&SocketAddr::new(bind_ip.unwrap_or(unspecified), 0).into())?;
    sys::enable_icmp_errors(&socket, ipv6)?;
    if !cluster.groups.is_empty() {
        if ipv6 {
            socket.set_multicast_hops_v6(cluster.mcast_hops)?;
            if let Some(index) = bind.and_then(|b| b.interface) {
                socket.set_multicast_if_v6(index)?;
            }
        } else {
            socket.set_multicast_ttl_v4(cluster.mcast_hops)?;
            if let Some(IpAddr::V4(v4)) = bind_ip {
                socket.set_multicast_if_v4(&v4)?;
            }
        }
    }
    Ok(socket.into())
}
