//! The UDP sockets lookups send from and read on.
//!
//! A lookup has its sockets (one per address family in use) to itself for
//! as long as it runs, so no lookup can read another's replies. Opening
//! them costs more than a lookup's own round trip, so a [`SocketPool`]
//! keeps them for the next lookup of the same cluster in the same process:
//! before a set goes back, everything queued on it is read and dropped,
//! and it remembers the request numbers of its last lookups, so that a
//! reply arriving after its lookup ended is recognised as late by the next
//! one, not counted as a forgery, and an ICMP error is matched by the
//! request number inside it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Mutex;

use socket2::{Domain, Protocol, Socket, Type};

use super::cluster::Cluster;
use super::sys;
use crate::icp::MAX_MESSAGE_LEN;

/// Request numbers a socket set remembers from its earlier lookups.
pub const RETIRED: usize = 32;
/// Socket sets a pool keeps; more lookups at once open (and close) their own.
const POOL_MAX: usize = 64;

/// The sockets one lookup sends from: at most one per address family.
pub struct Sockets {
    v4: Option<usize>,
    v6: Option<usize>,
    pub all: Vec<UdpSocket>,
    /// The request numbers of the lookups that used these sockets before.
    pub retired: [u32; RETIRED],
    next_retired: usize,
    /// Where datagrams are read to: one byte more than any ICP message.
    pub buf: Vec<u8>,
}

impl Sockets {
    pub fn open(cluster: &Cluster) -> io::Result<Sockets> {
        let dests = || cluster.peers.iter().map(|p| p.addr).chain(cluster.groups.iter().copied());
        let mut sockets = Sockets {
            v4: None,
            v6: None,
            all: Vec::with_capacity(1),
            retired: [0; RETIRED],
            next_retired: 0,
            buf: vec![0u8; MAX_MESSAGE_LEN + 1],
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

    pub fn for_addr(&self, addr: SocketAddr) -> &UdpSocket {
        let index = if addr.is_ipv4() { self.v4 } else { self.v6 };
        &self.all[index.expect("a socket is opened for every family in use")]
    }

    /// Reads and drops everything queued (late replies, ICMP errors) and
    /// remembers `request_number` as retired.
    fn retire(&mut self, request_number: u32) {
        for socket in &self.all {
            while sys::recv_from(socket, &mut self.buf).is_ok() {}
            while matches!(sys::take_icmp_error(socket), Ok(Some(_))) {}
        }
        self.retired[self.next_retired] = request_number;
        self.next_retired = (self.next_retired + 1) % RETIRED;
    }
}

/// Socket sets for the lookups of one cluster in one process.
#[derive(Default)]
pub struct SocketPool {
    free: Mutex<Vec<Sockets>>,
}

impl SocketPool {
    /// A set for one lookup: a kept one, or new.
    pub fn take(&self, cluster: &Cluster) -> io::Result<Sockets> {
        let kept = self.free.lock().ok().and_then(|mut free| free.pop());
        kept.map_or_else(|| Sockets::open(cluster), Ok)
    }

    /// Gives a set back after a lookup with `request_number` ended.
    pub fn give(&self, mut sockets: Sockets, request_number: u32) {
        sockets.retire(request_number);
        if let Ok(mut free) = self.free.lock() {
            if free.len() < POOL_MAX {
                free.push(sockets);
            }
        }
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
