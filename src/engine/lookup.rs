//! One query round, as pure logic: which datagrams count as answers.
//!
//! The driver tells a [`Lookup`] what it sent and what arrived (with the time
//! since the first send); the lookup decides. Keeping this free of sockets and
//! clocks is what lets every acceptance rule be tested with plain bytes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::cluster::{ip_text, Cluster};
use super::health::RejectReason;
use super::plan::{Ask, Groups, Plan};
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
    /// What a peer's record counts this under; `None` for a datagram from
    /// an unknown sender, which has no record (the cluster counts those).
    pub fn reason(&self) -> Option<RejectReason> {
        Some(match self {
            Reject::UnknownSender => return None,
            Reject::Malformed(e) => RejectReason::of_decode(e),
            Reject::NotAReply(_) => RejectReason::NotAReply,
            Reject::WrongRequestNumber(_) => RejectReason::WrongRequestNumber,
            Reject::WrongUrl => RejectReason::WrongUrl,
            Reject::Duplicate => RejectReason::Duplicate,
        })
    }

    /// A stable label for logs.
    pub fn label(&self) -> &'static str {
        self.reason().map_or("unknown_sender", RejectReason::label)
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
    /// Peers (indices) waited for that neither answered nor failed in time.
    pub silent: Vec<usize>,
    /// Peers (indices) the query could not be sent to, with the OS error.
    pub unreachable: Vec<(usize, std::io::ErrorKind)>,
    /// Peers (indices) whose host answered with an ICMP error (no ICP there).
    pub refused: Vec<(usize, std::io::ErrorKind)>,
    /// Dead peers sent a query only so they can revive (not waited for).
    pub probed: Vec<usize>,
    /// Peers not asked at all: dead ones not due a revival query, and
    /// second-round ones when the first round found the object.
    pub not_asked: Vec<usize>,
    /// Round-2 peers were asked (no round-1 peer answered HIT).
    pub second_round: bool,
    /// How long this lookup was willing to wait.
    pub timeout: Duration,
    /// Time from the first datagram sent to the end of the lookup.
    pub elapsed: Duration,
    /// The lookup ended early because every peer waited for had answered
    /// or failed.
    pub complete: bool,
    /// Peers (indices) whose health changed because of this lookup.
    pub transitions: Vec<(usize, crate::engine::Transition)>,
    /// Answered from memory, with the answer's age: nothing was sent.
    pub from_memory: Option<Duration>,
    /// Replies to earlier lookups on the same sockets, dropped.
    pub late: u32,
    /// The peers (indices) those came from: alive, though too slow then.
    pub late_peers: Vec<usize>,
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

    /// Distinct hosts that answered a multicast query (each once: a second
    /// reply is a duplicate).
    pub fn multicast_responders(&self) -> u32 {
        self.replies.iter().filter(|r| matches!(r.responder, Responder::Multicast(_))).count() as u32
    }

    /// Every address that gave a valid reply of any kind.
    pub fn answered_ips(&self, cluster: &Cluster) -> Vec<IpAddr> {
        self.replies.iter().map(|r| self.responder_ip(cluster, r.responder)).collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PeerState {
    NotAsked,
    Waiting,
    /// Asked without waiting (a dead peer's revival query).
    Probing,
    Answered,
    Failed,
}

/// Clusters larger than this look a datagram's sender up by address.
const BY_ADDR_FROM: usize = 8;

/// One lookup against a cluster, following its [`Plan`].
pub struct Lookup<'a> {
    cluster: &'a Cluster,
    plan: &'a Plan,
    url: &'a [u8],
    /// Request numbers of earlier lookups on the same sockets: their late
    /// replies are dropped quietly, neither answers nor forgeries.
    retired: &'a [u32],
    /// Peers waited for that have neither answered nor failed.
    waiting: usize,
    /// Large clusters' peers by address, for the datagrams' sender
    /// (empty: few enough to search in order).
    by_addr: Vec<(SocketAddr, usize)>,
    outcome: Outcome,
    peers: Vec<PeerState>,
    groups_asked: bool,
}

impl<'a> Lookup<'a> {
    pub fn new(cluster: &'a Cluster, plan: &'a Plan, url: &'a [u8], request_number: u32) -> Self {
        Lookup {
            cluster,
            plan,
            url,
            retired: &[],
            waiting: 0,
            by_addr: match cluster.peers.len() {
                0..=BY_ADDR_FROM => Vec::new(),
                _ => {
                    let mut by: Vec<(SocketAddr, usize)> =
                        cluster.peers.iter().enumerate().map(|(i, p)| (p.addr, i)).collect();
                    // Stable: among equal addresses the first configured stays first.
                    by.sort_by_key(|(a, _)| (a.ip(), a.port()));
                    by
                }
            },
            outcome: Outcome { request_number, ..Outcome::default() },
            peers: vec![PeerState::NotAsked; cluster.peers.len()],
            groups_asked: false,
        }
    }

    /// Earlier lookups on the same sockets used these request numbers.
    pub fn retired(self, retired: &'a [u32]) -> Self {
        Lookup { retired, ..self }
    }

    /// The peers of polling round `round` that the plan asks, in
    /// configuration order.
    pub fn to_ask(&self, round: u8) -> Vec<usize> {
        let asked = |&(i, p): &(usize, &super::Peer)| p.round == round && self.plan.asks[i] != Ask::Skip;
        self.cluster.peers.iter().enumerate().filter(asked).map(|(i, _)| i).collect()
    }

    /// The query went to peer `index`: waited for, or (a dead peer's
    /// revival query) only sent.
    pub fn on_sent(&mut self, index: usize) {
        if self.plan.asks[index] == Ask::Wait {
            self.set_state(index, PeerState::Waiting);
        } else {
            self.set_state(index, PeerState::Probing);
            self.outcome.probed.push(index);
        }
    }

    /// Whether the plan asks the multicast groups.
    pub fn asks_groups(&self) -> bool {
        self.plan.groups != Groups::NotAsked
    }

    /// The query went to the multicast groups. How many hosts answer them
    /// is not known to the lookup: the plan says how many a previous lookup
    /// counted, and the wait ends when that many have answered; a lookup
    /// that counts them waits for the deadline.
    pub fn on_sent_to_groups(&mut self) {
        self.groups_asked = true;
    }

    /// When the second round starts: the first found no HIT (it is over:
    /// complete, or the driver's deadline came first) and the plan asks a
    /// round-2 peer.
    pub fn second_round_due(&self) -> bool {
        !self.outcome.second_round && !self.has_hit() && !self.to_ask(2).is_empty()
    }

    /// The second round's queries are about to go out.
    pub fn on_second_round(&mut self) {
        self.outcome.second_round = true;
    }

    /// Distinct hosts that answered a multicast query.
    pub fn multicast_responders(&self) -> u32 {
        self.outcome.multicast_responders()
    }

    /// Whether any valid HIT has arrived (decides the second round).
    pub fn has_hit(&self) -> bool {
        self.outcome.replies.iter().any(|r| r.opcode.is_hit())
    }

    /// The query datagram to send to every peer and group.
    pub fn query(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        icp::encode_query(self.outcome.request_number, self.url, out)
    }

    /// The query could not be sent to peer `index`: it cannot answer, so it is
    /// not waited for.
    pub fn on_send_error(&mut self, index: usize, kind: std::io::ErrorKind) {
        self.set_state(index, PeerState::Failed);
        self.outcome.unreachable.push((index, kind));
    }

    /// An ICMP error says nothing listens where the query to `dest` (with
    /// `request_number`, when the kernel handed it back) went.
    pub fn on_icmp_error(&mut self, dest: SocketAddr, kind: std::io::ErrorKind, request_number: Option<u32>) {
        if request_number.is_some_and(|n| n != self.outcome.request_number) {
            return; // an earlier lookup's query on the same socket
        }
        let Some(i) = self.peer_at(dest) else { return };
        if matches!(self.peers[i], PeerState::Waiting | PeerState::Probing) {
            self.set_state(i, PeerState::Failed);
            self.outcome.refused.push((i, kind));
        }
    }

    fn set_state(&mut self, i: usize, state: PeerState) {
        let was = std::mem::replace(&mut self.peers[i], state);
        self.waiting = self.waiting + usize::from(state == PeerState::Waiting) - usize::from(was == PeerState::Waiting);
    }

    /// The peer at `addr` (the first, should two be configured alike).
    fn peer_at(&self, addr: SocketAddr) -> Option<usize> {
        let same = |a: SocketAddr| a.ip() == addr.ip() && a.port() == addr.port();
        if self.by_addr.is_empty() {
            return self.cluster.peers.iter().position(|p| same(p.addr));
        }
        let key = (addr.ip(), addr.port());
        let at = self.by_addr.partition_point(|(a, _)| (a.ip(), a.port()) < key);
        self.by_addr.get(at).filter(|(a, _)| same(*a)).map(|&(_, i)| i)
    }

    /// A datagram arrived `elapsed` after the first send.
    pub fn on_datagram(&mut self, from: SocketAddr, datagram: &[u8], elapsed: Duration) {
        if let Err(reason) = self.accept(from, datagram, elapsed) {
            self.outcome.rejected.push(Rejected { from, reason });
        }
    }

    /// A datagram of `len` bytes arrived, longer than any ICP message; only
    /// its first bytes were read, so it is judged by sender and size alone.
    pub fn on_oversized(&mut self, from: SocketAddr, len: usize) {
        let reason = match self.responder_at(from) {
            Ok(_) => Reject::Malformed(DecodeError::TooLong { len }),
            Err(reject) => reject,
        };
        self.outcome.rejected.push(Rejected { from, reason });
    }

    fn responder_at(&self, from: SocketAddr) -> Result<Responder, Reject> {
        match self.peer_at(from) {
            Some(i) => Ok(Responder::Peer(i)),
            None if !self.cluster.groups.is_empty() => Ok(Responder::Multicast(from)),
            None => Err(Reject::UnknownSender),
        }
    }

    fn accept(&mut self, from: SocketAddr, datagram: &[u8], elapsed: Duration) -> Result<(), Reject> {
        // The sender is checked first: bytes from strangers are not even parsed.
        let responder = self.responder_at(from)?;
        let message = Message::decode(datagram).map_err(Reject::Malformed)?;
        if !message.opcode.is_reply() {
            return Err(Reject::NotAReply(message.opcode));
        }
        if message.request_number != self.outcome.request_number {
            if self.retired.contains(&message.request_number) {
                self.outcome.late += 1;
                if let Responder::Peer(i) = responder {
                    self.outcome.late_peers.push(i);
                }
                return Ok(()); // an earlier lookup's reply, arrived after it ended
            }
            return Err(Reject::WrongRequestNumber(message.request_number));
        }
        if message.url() != self.url {
            return Err(Reject::WrongUrl);
        }
        match responder {
            Responder::Peer(i) if self.peers[i] == PeerState::Answered => return Err(Reject::Duplicate),
            // A peer this lookup never asked cannot know its request number.
            Responder::Peer(i) if self.peers[i] == PeerState::NotAsked => {
                return Err(Reject::WrongRequestNumber(message.request_number))
            }
            Responder::Peer(i) => self.set_state(i, PeerState::Answered),
            Responder::Multicast(_) => {
                if self.outcome.replies.iter().any(|r| r.responder == responder) {
                    return Err(Reject::Duplicate);
                }
            }
        }
        self.outcome.replies.push(Reply { responder, opcode: message.opcode, rtt: elapsed });
        Ok(())
    }

    /// Nothing more is waited for: every peer asked and waited for has
    /// answered or failed, and every multicast responder expected has
    /// answered (when a group was asked).
    pub fn is_complete(&self) -> bool {
        let groups_done = match (self.groups_asked, self.plan.groups) {
            (false, _) | (true, Groups::NotAsked) => true,
            (true, Groups::Count) => false,
            (true, Groups::Expect(n)) => self.multicast_responders() >= n,
        };
        groups_done && self.waiting == 0
    }

    pub fn finish(mut self, elapsed: Duration) -> Outcome {
        self.outcome.complete = self.is_complete();
        let with = |state| self.peers.iter().enumerate().filter(move |(_, s)| **s == state).map(|(i, _)| i);
        self.outcome.silent = with(PeerState::Waiting).collect();
        self.outcome.not_asked = with(PeerState::NotAsked).collect();
        self.outcome.timeout = self.plan.timeout;
        self.outcome.elapsed = elapsed;
        self.outcome
    }
}

#[cfg(test)]
mod tests;
