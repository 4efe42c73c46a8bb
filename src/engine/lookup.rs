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
    NotAsked,
    Waiting,
    /// Asked without waiting (a dead peer's revival query).
    Probing,
    Answered,
    Failed,
}

/// One query round against a cluster.
pub struct Lookup<'a> {
    cluster: &'a Cluster,
    url: &'a [u8],
    outcome: Outcome,
    peers: Vec<PeerState>,
    groups_asked: bool,
    /// How many multicast responders end the wait (`None`: only the deadline).
    multicast_expected: Option<u32>,
}

impl<'a> Lookup<'a> {
    pub fn new(cluster: &'a Cluster, url: &'a [u8], request_number: u32) -> Self {
        Lookup {
            cluster,
            url,
            outcome: Outcome { request_number, ..Outcome::default() },
            peers: vec![PeerState::NotAsked; cluster.peers.len()],
            groups_asked: false,
            multicast_expected: None,
        }
    }

    /// The query went to peer `index`; `wait` says whether the lookup waits
    /// for its answer (not for a dead peer's revival query).
    pub fn on_sent(&mut self, index: usize, wait: bool) {
        self.peers[index] = if wait { PeerState::Waiting } else { PeerState::Probing };
        if !wait {
            self.outcome.probed.push(index);
        }
    }

    /// The query went to the multicast groups. Their size is not known to
    /// the lookup: `expected` says how many responders a previous lookup
    /// counted, and the wait ends when that many have answered; with `None`
    /// only the deadline ends it.
    pub fn on_sent_to_groups(&mut self, expected: Option<u32>) {
        self.groups_asked = true;
        self.multicast_expected = expected;
    }

    /// Distinct hosts that answered a multicast query.
    pub fn multicast_responders(&self) -> u32 {
        self.outcome.replies.iter().filter(|r| matches!(r.responder, Responder::Multicast(_))).count() as u32
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
        self.peers[index] = PeerState::Failed;
        self.outcome.unreachable.push((index, kind));
    }

    /// An ICMP error says nothing listens where the query to `dest` went.
    pub fn on_icmp_error(&mut self, dest: SocketAddr, kind: std::io::ErrorKind) {
        let Some(i) = self.peer_at(dest) else { return };
        if matches!(self.peers[i], PeerState::Waiting | PeerState::Probing) {
            self.peers[i] = PeerState::Failed;
            self.outcome.refused.push((i, kind));
        }
    }

    fn peer_at(&self, addr: SocketAddr) -> Option<usize> {
        self.cluster.peers.iter().position(|p| p.addr.ip() == addr.ip() && p.addr.port() == addr.port())
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

    /// Nothing more is waited for: every peer asked and waited for has
    /// answered or failed, and every multicast responder expected has
    /// answered (when a group was asked).
    pub fn is_complete(&self) -> bool {
        let groups_done = match (self.groups_asked, self.multicast_expected) {
            (false, _) => true,
            (true, None) => false,
            (true, Some(n)) => self.multicast_responders() >= n,
        };
        groups_done && self.peers.iter().all(|s| *s != PeerState::Waiting)
    }

    pub fn finish(mut self, timeout: Duration, elapsed: Duration) -> Outcome {
        self.outcome.complete = self.is_complete();
        let with = |state| self.peers.iter().enumerate().filter(move |(_, s)| **s == state).map(|(i, _)| i);
        self.outcome.silent = with(PeerState::Waiting).collect();
        self.outcome.not_asked = with(PeerState::NotAsked).collect();
        self.outcome.timeout = timeout;
        self.outcome.elapsed = elapsed;
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Peer;

    const URL: &[u8] = b"http://localhost/wsgi/x?y";
    const REQNUM: u32 = 0xC0FFEE;

    fn cluster(groups: bool) -> Cluster {
        let peer = |a: &str| Peer::new(a.split(':').next().unwrap(), a.parse().unwrap());
        Cluster {
            peers: vec![peer("192.0.2.2:3130"), peer("192.0.2.3:3130"), peer("192.0.2.4:3130")],
            groups: if groups { vec!["239.255.255.253:3130".parse().unwrap()] } else { vec![] },
            ..Cluster::default()
        }
    }

    fn reply(opcode: Opcode, reqnum: u32, url: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Message::query(reqnum, url).reply(opcode).encode(&mut out).unwrap();
        out
    }

    /// A lookup whose query went to every peer (and group) and waits for all.
    fn asked(c: &Cluster) -> Lookup<'_> {
        let mut l = Lookup::new(c, URL, REQNUM);
        for i in 0..c.peers.len() {
            l.on_sent(i, true);
        }
        if !c.groups.is_empty() {
            l.on_sent_to_groups(None);
        }
        l
    }

    fn from(a: &str) -> SocketAddr {
        a.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn hits_are_listed_in_arrival_order_and_every_answer_counts_as_running() {
        let c = cluster(false);
        let mut l = asked(&c);
        l.on_datagram(from("192.0.2.4:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(2));
        assert!(!l.is_complete());
        l.on_datagram(from("192.0.2.3:3130"), &reply(Opcode::HitObj, REQNUM, URL), ms(3));
        assert!(l.is_complete(), "every peer answered");
        let o = l.finish(ms(50), ms(3));
        assert_eq!(o.hit_list(&c).as_deref(), Some("192.0.2.4;192.0.2.3;"));
        assert_eq!(o.replies.iter().map(|r| r.rtt).collect::<Vec<_>>(), [ms(1), ms(2), ms(3)]);
        assert_eq!(o.answered_ips(&c).len(), 3);
        assert!(o.complete && o.silent.is_empty() && o.rejected.is_empty());
    }

    #[test]
    fn misses_denied_and_errors_mean_running_without_the_object() {
        let c = cluster(false);
        let mut l = asked(&c);
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::MissNoFetch, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.3:3130"), &reply(Opcode::Denied, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.4:3130"), &reply(Opcode::Err, REQNUM, URL), ms(1));
        let o = l.finish(ms(50), ms(1));
        assert_eq!(o.hit_list(&c), None);
        assert_eq!(o.answered_ips(&c).len(), 3);
    }

    #[test]
    fn every_rejection_is_counted_by_reason_and_changes_nothing() {
        let c = cluster(false);
        let mut l = asked(&c);
        let hit = reply(Opcode::Hit, REQNUM, URL);
        let mut query = Vec::new();
        crate::icp::encode_query(REQNUM, URL, &mut query).unwrap();
        l.on_datagram(from("198.51.100.9:3130"), &hit, ms(1)); // stranger
        l.on_datagram(from("192.0.2.2:3131"), &hit, ms(1)); // peer's host, wrong port
        l.on_datagram(from("192.0.2.2:3130"), &hit[..19], ms(1));
        l.on_datagram(from("192.0.2.2:3130"), &query, ms(1));
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Hit, REQNUM + 1, URL), ms(1));
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Hit, REQNUM, b"http://localhost/other"), ms(1));
        assert_eq!(l.outcome.replies.len(), 0, "nothing forged got through");
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(2));
        l.on_datagram(from("192.0.2.2:3130"), &hit, ms(3)); // second answer
        let o = l.finish(ms(50), ms(3));
        let reasons: Vec<&str> = o.rejected.iter().map(|r| r.reason.reason()).collect();
        assert_eq!(
            reasons,
            [
                "unknown_sender",
                "unknown_sender",
                "too_short",
                "not_a_reply",
                "wrong_request_number",
                "wrong_url",
                "duplicate"
            ]
        );
        assert_eq!(o.hit_list(&c), None, "the peer said MISS first; its later HIT is a duplicate");
        assert_eq!(o.silent, [1, 2]);
        assert!(!o.complete);
    }

    #[test]
    fn multicast_answers_come_from_anyone_once_and_never_end_the_wait() {
        let c = cluster(true);
        let mut l = asked(&c);
        for peer in ["192.0.2.2:3130", "192.0.2.3:3130", "192.0.2.4:3130"] {
            l.on_datagram(from(peer), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        }
        l.on_datagram(from("198.51.100.7:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(2));
        l.on_datagram(from("198.51.100.7:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(2));
        assert!(!l.is_complete(), "a group's size is unknown, so the deadline decides");
        let o = l.finish(ms(50), ms(50));
        assert_eq!(o.hit_list(&c).as_deref(), Some("198.51.100.7;"));
        assert_eq!(o.replies[3].responder, Responder::Multicast(from("198.51.100.7:3130")));
        assert_eq!(o.rejected.len(), 1);
        assert_eq!(o.rejected[0].reason, Reject::Duplicate);
    }

    #[test]
    fn a_learnt_multicast_count_ends_the_wait_when_that_many_answered() {
        let c = cluster(true);
        let mut l = Lookup::new(&c, URL, REQNUM);
        for i in 0..3 {
            l.on_sent(i, true);
        }
        l.on_sent_to_groups(Some(2));
        for peer in ["192.0.2.2:3130", "192.0.2.3:3130", "192.0.2.4:3130"] {
            l.on_datagram(from(peer), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        }
        l.on_datagram(from("198.51.100.7:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(2));
        assert!(!l.is_complete(), "one of two multicast responders so far");
        l.on_datagram(from("198.51.100.8:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(3));
        assert!(l.is_complete());
        assert_eq!(l.multicast_responders(), 2);
    }

    #[test]
    fn a_peer_that_cannot_be_sent_to_is_not_waited_for() {
        let c = cluster(false);
        let mut l = asked(&c);
        l.on_send_error(1, std::io::ErrorKind::NetworkUnreachable);
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.4:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        assert!(l.is_complete());
        let o = l.finish(ms(50), ms(1));
        assert_eq!(o.unreachable, [(1, std::io::ErrorKind::NetworkUnreachable)]);
        assert!(o.silent.is_empty());
    }

    #[test]
    fn the_same_ip_hitting_twice_is_listed_once() {
        let mut c = cluster(false);
        c.peers[1].addr = from("192.0.2.2:3131");
        let mut l = asked(&c);
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.2:3131"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        assert_eq!(l.finish(ms(50), ms(1)).hit_list(&c).as_deref(), Some("192.0.2.2;"));
    }

    #[test]
    fn ipv6_hits_are_bracketed_for_use_in_urls() {
        let c = Cluster { peers: vec![Peer::new("::1", from("[::1]:3130"))], ..Cluster::default() };
        let mut l = asked(&c);
        l.on_datagram(from("[::1]:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        assert_eq!(l.finish(ms(50), ms(1)).hit_list(&c).as_deref(), Some("[::1];"));
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;
    use crate::engine::Peer;

    const URL: &[u8] = b"http://localhost/x";

    fn reply(opcode: Opcode, reqnum: u32) -> Vec<u8> {
        let mut out = Vec::new();
        Message::query(reqnum, URL).reply(opcode).encode(&mut out).unwrap();
        out
    }

    fn two_peers() -> Cluster {
        let peer = |a: &str| Peer::new(a, format!("{a}:3130").parse().unwrap());
        Cluster { peers: vec![peer("192.0.2.2"), peer("192.0.2.3")], ..Cluster::default() }
    }

    #[test]
    fn an_icmp_error_ends_the_wait_for_that_peer() {
        let c = two_peers();
        let mut l = Lookup::new(&c, URL, 7);
        l.on_sent(0, true);
        l.on_sent(1, true);
        l.on_datagram("192.0.2.2:3130".parse().unwrap(), &reply(Opcode::Miss, 7), Duration::from_micros(100));
        assert!(!l.is_complete());
        l.on_icmp_error("192.0.2.3:3130".parse().unwrap(), std::io::ErrorKind::ConnectionRefused);
        l.on_icmp_error("198.51.100.1:3130".parse().unwrap(), std::io::ErrorKind::ConnectionRefused);
        assert!(l.is_complete());
        let o = l.finish(Duration::from_millis(50), Duration::from_micros(150));
        assert_eq!(o.refused, [(1, std::io::ErrorKind::ConnectionRefused)]);
        assert!(o.silent.is_empty() && o.complete);
    }

    #[test]
    fn dead_peers_are_probed_or_skipped_but_never_waited_for() {
        let c = two_peers();
        let mut l = Lookup::new(&c, URL, 7);
        l.on_sent(0, false);
        assert!(l.is_complete(), "nothing is waited for");
        l.on_datagram("192.0.2.2:3130".parse().unwrap(), &reply(Opcode::Hit, 7), Duration::from_micros(100));
        l.on_datagram("192.0.2.3:3130".parse().unwrap(), &reply(Opcode::Hit, 7), Duration::from_micros(100));
        let o = l.finish(Duration::from_millis(50), Duration::from_micros(100));
        assert_eq!(o.probed, [0]);
        assert_eq!(o.not_asked, [1]);
        assert_eq!(o.hit_list(&c).as_deref(), Some("192.0.2.2;"), "a probed peer's answer counts");
        assert_eq!(o.rejected.len(), 1, "a peer never asked cannot answer");
    }

    #[test]
    fn an_oversized_datagram_is_rejected_by_its_real_size_and_waits_on() {
        let c = two_peers();
        let mut l = Lookup::new(&c, URL, 7);
        l.on_sent(0, true);
        l.on_oversized("192.0.2.2:3130".parse().unwrap(), 20_000);
        l.on_oversized("198.51.100.1:3130".parse().unwrap(), 70_000);
        assert!(!l.is_complete(), "the peer is still waited for");
        let o = l.finish(Duration::from_millis(50), Duration::from_millis(50));
        let reasons: Vec<Reject> = o.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, [Reject::Malformed(DecodeError::TooLong { len: 20_000 }), Reject::UnknownSender]);
    }
}
