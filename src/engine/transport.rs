//! Drives a [`Lookup`] with real UDP sockets and a deadline.
//!
//! Every lookup opens its own socket (one per address family in use), so
//! concurrent lookups in threads or processes can never read each other's
//! replies; the kernel picks a fresh ephemeral port for each.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use super::lookup::{Lookup, Outcome};
use super::{sys, Cluster};
use crate::icp::{EncodeError, MAX_MESSAGE_LEN};

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The URL cannot be put in an ICP query (too long, or contains NUL).
    #[error("URL cannot be queried: {0}")]
    Unqueryable(#[from] EncodeError),
    /// Squid cannot parse such a key and answers for an escaped URL, which
    /// no reply check can accept: querying would only cost the timeout.
    #[error("not queried: a URL is never empty and contains no space or control character, so no cache can hold this one")]
    NotAUrl,
    #[error("cannot open a UDP socket for ICP queries: {0}")]
    Socket(io::Error),
    #[error("waiting for ICP replies failed: {0}")]
    Wait(io::Error),
}

/// Asks every peer and group of `cluster` whether it holds `url`, and waits
/// for the replies until the cluster's timeout (counted from the first send)
/// or until every peer has answered, whichever comes first.
pub fn run(cluster: &Cluster, url: &[u8]) -> Result<Outcome, LookupError> {
    if url.is_empty() || url.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(LookupError::NotAUrl);
    }
    let mut lookup = Lookup::new(cluster, url, sys::random_u32());
    let mut query = Vec::with_capacity(64 + url.len());
    lookup.query(&mut query)?;

    let sockets = Sockets::open(cluster).map_err(LookupError::Socket)?;
    let start = Instant::now();
    for (i, peer) in cluster.peers.iter().enumerate() {
        if let Err(e) = sockets.for_addr(peer.addr).send_to(&query, peer.addr) {
            lookup.on_send_error(i, e.kind());
        }
    }
    for group in &cluster.groups {
        // A group that cannot be reached only costs its replies: the deadline
        // still bounds the wait.
        let _ = sockets.for_addr(*group).send_to(&query, *group);
    }

    let deadline = start + cluster.timeout;
    // One byte more than ICP allows, so an oversized datagram is seen as such.
    let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
    while !lookup.is_complete() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let ready = sys::wait_readable(&sockets.all, deadline - now).map_err(LookupError::Wait)?;
        for (socket, _) in sockets.all.iter().zip(ready).filter(|(_, r)| *r) {
            // Drain everything queued: a flood must not delay real replies.
            loop {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) => lookup.on_datagram(from, &buf[..n], start.elapsed()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // ICMP errors reported on the socket (unreachable ports)
                    // carry no address here; keep waiting for the others.
                    Err(_) => break,
                }
            }
        }
    }
    Ok(lookup.finish(start.elapsed()))
}

/// The sockets one lookup sends from: at most one per address family.
struct Sockets {
    v4: Option<usize>,
    v6: Option<usize>,
    all: Vec<UdpSocket>,
}

impl Sockets {
    fn open(cluster: &Cluster) -> io::Result<Sockets> {
        let dests = || {
            cluster
                .peers
                .iter()
                .map(|p| p.addr)
                .chain(cluster.groups.iter().copied())
        };
        let mut sockets = Sockets {
            v4: None,
            v6: None,
            all: Vec::with_capacity(1),
        };
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
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    let bind_ip = match (cluster.bind, domain == Domain::IPV4) {
        (Some(ip @ IpAddr::V4(_)), true) | (Some(ip @ IpAddr::V6(_)), false) => Some(ip),
        _ => None,
    };
    let local = bind_ip.unwrap_or(if domain == Domain::IPV4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    if domain == Domain::IPV6 {
        socket.set_only_v6(true)?;
    }
    socket.bind(&SocketAddr::new(local, 0).into())?;
    if !cluster.groups.is_empty() {
        if domain == Domain::IPV4 {
            socket.set_multicast_ttl_v4(cluster.mcast_hops)?;
            if let Some(IpAddr::V4(v4)) = bind_ip {
                socket.set_multicast_if_v4(&v4)?;
            }
        } else {
            socket.set_multicast_hops_v6(cluster.mcast_hops)?;
        }
    }
    Ok(socket.into())
}
