//! One query round, as pure logic: which datagrams count as answers.
//!
//! The driver tells a [`Lookup`] what it sent and what arrived (with the time
//! since the first send); the lookup decides. Keeping this free of sockets and
//! clocks is what lets every acceptance rule be tested with plain bytes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::engine::{ip_text, Cluster};
use crate::icp::{self, DecodeError, EncodeError, Message, Opcode};

/// Who a reply came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Responder {
    /// A configured unicast peer (index into [`Cluster::peers`]).
    Peer(usize),
    /// A host that answered a multicast query; not configured, so kept apart.
    Multicast(SocketAddr),
}

/// A reply that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub responder: Responder,
    pub opcode: Opcode,
    /// Time from the first datagram sent to this reply's arrival.
    pub rtt: Duration,
}

/// Why a datagram was dropped. Nothing dropped is ever trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not from a configured peer's address and ICP port (and no multicast
    /// group was queried, so strangers have no business answering).
    UnknownSender,
    Malformed(DecodeError),
    /// A valid ICP message, but not an answer to a query.
    NotAReply(Opcode),
    WrongRequestNumber(u32),
    WrongUrl,
    /// A second reply from a responder that already answered this query.
    Duplicate,
}

impl Reject {
    /// A stable label for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::UnknownSender => "unknown_sender",
            Reject::Malformed(e) => e.reason(),
            Reject::NotAReply(_) => "not_a_reply",
            Reject::WrongRequestNumber(_) => "wrong_request_number",
            Reject::WrongUrl => "wrong_url",
            Reject::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::UnknownSender => f.write_str("sender is not a configured peer"),
            Reject::Malformed(e) => write!(f, "{e}"),
            Reject::NotAReply(op) => write!(f, "{op} is not a reply opcode"),
            Reject::WrongRequestNumber(n) => write!(f, "request number {n} was not sent"),
            Reject::WrongUrl => f.write_str("reply is for another URL"),
            Reject::Duplicate => f.write_str("responder already answered"),
        }
    }
}

/// A dropped datagram and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub from: SocketAddr,
    pub reason: Reject,
}

/// What one lookup found out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub request_number: u32,
    /// Valid replies, in arrival order.
    pub replies: Vec<Reply>,
    pub rejected: Vec<Rejected>,
    /// Peers (indices) that neither answered nor failed before the deadline.
    pub silent: Vec<usize>,
    /// Peers (indices) the query could not be sent to, with the OS error.
    pub unreachable: Vec<(usize, std::io::ErrorKind)>,
    /// Time from the first datagram sent to the end of the lookup.
    pub elapsed: Duration,
    /// The lookup ended early because every peer had answered or failed.
    pub complete: bool,
}

impl Outcome {
    /// The address a responder answered from.
    pub fn responder_ip(&self, cluster: &Cluster, responder: Responder) -> IpAddr {
        match responder {
            Responder::Peer(i) => cluster.peers[i].addr.ip(),
            Responder::Multicast(addr) => addr.ip(),
        }
    }

    /// The `icpquerymap` value: every cache that answered HIT, as `ip;` in
    /// arrival order (`192.0.2.2;192.0.2.3;`), or `None` when none did.
    pub fn hit_list(&self, cluster: &Cluster) -> Option<String> {
        let mut seen: Vec<IpAddr> = Vec::new();
        let mut value = String::new();
        for reply in self.replies.iter().filter(|r| r.opcode.is_hit()) {
            let ip = self.responder_ip(cluster, reply.responder);
            if !seen.contains(&ip) {
                seen.push(ip);
                value.push_str(&ip_text(ip));
                value.push(';');
            }
        }
        (!value.is_empty()).then_some(value)
    }

    /// Every address that gave a valid reply of any kind.
    pub fn answered_ips(&self, cluster: &Cluster) -> Vec<IpAddr> {
        self.replies.iter().map(|r| self.responder_ip(cluster, r.responder)).collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PeerState {
    Waiting,
    Answered,
    Unreachable,
}

/// One query round against a cluster.
pub struct Lookup<'a> {
    cluster: &'a Cluster,
    url: &'a [u8],
    outcome: Outcome,
    peers: Vec<PeerState>,
}

impl<'a> Lookup<'a> {
    pub fn new(cluster: &'a Cluster, url: &'a [u8], request_number: u32) -> Self {
        Lookup {
            cluster,
            url,
            outcome: Outcome { request_number, ..Outcome::default() },
            peers: vec![PeerState::Waiting; cluster.peers.len()],
        }
    }

    /// The query datagram to send to every peer and group.
    pub fn query(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        icp::encode_query(self.outcome.request_number, self.url, out)
    }

    /// The query could not be sent to peer `index`: it cannot answer, so it is
    /// not waited for.
    pub fn on_send_error(&mut self, index: usize, kind: std::io::ErrorKind) {
        if self.peers[index] == PeerState::Waiting {
            self.peers[index] = PeerState::Unreachable;
            self.outcome.unreachable.push((index, kind));
        }
    }

    /// A datagram arrived `elapsed` after the first send.
    pub fn on_datagram(&mut self, from: SocketAddr, datagram: &[u8], elapsed: Duration) {
        if let Err(reason) = self.accept(from, datagram, elapsed) {
            self.outcome.rejected.push(Rejected { from, reason });
        }
    }

    fn accept(&mut self, from: SocketAddr, datagram: &[u8], elapsed: Duration) -> Result<(), Reject> {
        // The sender is checked first: bytes from strangers are not even parsed.
        let peer = self
            .cluster
            .peers
            .iter()
            .position(|p| p.addr.ip() == from.ip() && p.addr.port() == from.port());
        let responder = match peer {
            Some(i) => Responder::Peer(i),
            None if !self.cluster.groups.is_empty() => Responder::Multicast(from),
            None => return Err(Reject::UnknownSender),
        };
        let message = Message::decode(datagram).map_err(Reject::Malformed)?;
        if !message.opcode.is_reply() {
            return Err(Reject::NotAReply(message.opcode));
        }
        if message.request_number != self.outcome.request_number {
            return Err(Reject::WrongRequestNumber(message.request_number));
        }
        if message.url() != self.url {
            return Err(Reject::WrongUrl);
        }
        match responder {
            Responder::Peer(i) if self.peers[i] == PeerState::Answered => return Err(Reject::Duplicate),
            Responder::Peer(i) => self.peers[i] = PeerState::Answered,
            Responder::Multicast(_) => {
                if self.outcome.replies.iter().any(|r| r.responder == responder) {
                    return Err(Reject::Duplicate);
                }
            }
        }
        self.outcome.replies.push(Reply { responder, opcode: message.opcode, rtt: elapsed });
        Ok(())
    }

    /// Nothing more can change the outcome: every peer answered or failed,
    /// and no multicast group was asked (a group's size is unknown).
    pub fn is_complete(&self) -> bool {
        self.cluster.groups.is_empty() && self.peers.iter().all(|s| *s != PeerState::Waiting)
    }

    pub fn finish(mut self, elapsed: Duration) -> Outcome {
        self.outcome.complete = self.is_complete();
        self.outcome.silent =
            self.peers.iter().enumerate().filter(|(_, s)| **s == PeerState::Waiting).map(|(i, _)| i).collect();
        self.outcome.elapsed = elapsed;
        self.outcome
    }
}
