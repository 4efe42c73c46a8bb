//! Who a lookup asks and waits for, decided before its first datagram from
//! the shared health records ([`Plan`]). When its second round starts is
//! `Lookup::second_round_due`; what its outcome does to health is
//! `record.rs`. Nothing here touches a socket or reads the clock: the
//! driver passes the time in.

use std::time::Duration;

use super::cluster::Cluster;
use super::health::{Health, PeerSlot};

/// What a lookup does with one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Send the query and wait for the answer.
    Wait,
    /// Send the query without waiting for it: a dead peer's revival query.
    Probe,
    /// Send nothing: a dead peer whose revival query another lookup sends.
    Skip,
}

/// Who is waiting for a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A request: dead peers are never waited for.
    Request,
    /// A background probe, which nobody waits for: a dead peer due its
    /// revival query is waited for too, so that one answering more slowly
    /// than the live ones is still heard and revived.
    Background,
}

/// What a lookup does with the multicast groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Groups {
    /// None configured.
    NotAsked,
    /// Ask, and count the hosts that answer by waiting the whole timeout,
    /// as Squid does: at first, and once per dead time across the server.
    Count,
    /// Ask, and stop waiting for them once this many hosts have answered.
    Expect(u32),
}

/// Everything decided before a lookup's first datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// One per peer of the cluster, in order.
    pub asks: Vec<Ask>,
    /// The wait, counted from the first datagram sent.
    pub timeout: Duration,
    pub groups: Groups,
}

impl Ask {
    /// What a lookup for `purpose` does with the peer whose record is
    /// `slot`. A live peer is waited for. A dead one gets a revival query
    /// from one request lookup per revival period (the claim is shared by
    /// every process, so the whole server sends one), not waited for; a
    /// background probe, which nobody waits for, waits for it every time.
    pub fn for_peer(purpose: Purpose, slot: &PeerSlot, now_us: u64, dead_time: Duration) -> Ask {
        match (slot.is_dead(), purpose) {
            (false, _) => Ask::Wait,
            (true, Purpose::Background) => Ask::Wait,
            (true, Purpose::Request) if slot.claim_probe(now_us, dead_time) => Ask::Probe,
            (true, Purpose::Request) => Ask::Skip,
        }
    }
}

impl Plan {
    /// The plan of one lookup of `cluster` at `now_us`. Claims what it
    /// decides to send (revival queries, the multicast count) in `health`.
    pub fn new(cluster: &Cluster, health: Health<'_>, purpose: Purpose, now_us: u64) -> Plan {
        let asks: Vec<Ask> =
            health.peers.iter().map(|slot| Ask::for_peer(purpose, slot, now_us, cluster.dead_time)).collect();
        let waited = asks.iter().zip(health.peers).filter(|(ask, _)| **ask == Ask::Wait);
        let timeout = cluster.timeout.for_rtts(waited.map(|(_, slot)| slot.srtt()));
        let groups = match cluster.groups.is_empty() {
            true => Groups::NotAsked,
            false => match health.cluster.multicast_responders_expected(now_us, cluster.dead_time) {
                None => Groups::Count,
                Some(n) => Groups::Expect(n),
            },
        };
        Plan { asks, timeout, groups }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{LocalHealth, Peer, Timeout};
    use crate::icp::Opcode;

    const S: u64 = 1_000_000;
    const NOW: u64 = 1_000 * S;
    const DEAD_TIME: Duration = Duration::from_secs(10);

    fn cluster(peers: usize) -> Cluster {
        let peers =
            (1..=peers).map(|i| Peer::new(format!("192.0.2.{i}"), format!("192.0.2.{i}:3130").parse().unwrap()));
        Cluster { peers: peers.collect(), dead_time: DEAD_TIME, ..Cluster::default() }
    }

    #[test]
    fn live_peers_are_waited_for_and_a_dead_one_gets_one_revival_query_per_second() {
        let c = cluster(2);
        let health = LocalHealth::new(2);
        health.peers[1].record_refused(NOW, DEAD_TIME);
        let plan = |purpose, now| Plan::new(&c, health.view(), purpose, now).asks;
        assert_eq!(plan(Purpose::Request, NOW + S / 2), [Ask::Wait, Ask::Skip], "not due yet");
        assert_eq!(plan(Purpose::Request, NOW + S), [Ask::Wait, Ask::Probe], "due: asked, not waited for");
        assert_eq!(plan(Purpose::Request, NOW + S + S / 2), [Ask::Wait, Ask::Skip], "that second's query is sent");
        assert_eq!(plan(Purpose::Background, NOW + S + S / 2), [Ask::Wait, Ask::Wait], "a probe waits for it");
    }

    #[test]
    fn the_timeout_follows_the_peers_waited_for() {
        let mut c = cluster(2);
        c.timeout = Timeout::Auto { min: Duration::from_micros(100), max: Duration::from_secs(1) };
        let health = LocalHealth::new(2);
        health.peers[0].record_reply(Opcode::Miss, Duration::from_micros(300), NOW);
        assert_eq!(Plan::new(&c, health.view(), Purpose::Request, NOW).timeout, Duration::from_secs(1), "unmeasured");
        health.peers[1].record_reply(Opcode::Miss, Duration::from_micros(400), NOW);
        assert_eq!(Plan::new(&c, health.view(), Purpose::Request, NOW).timeout, Duration::from_micros(800));
        health.peers[1].record_refused(NOW, DEAD_TIME);
        assert_eq!(
            Plan::new(&c, health.view(), Purpose::Request, NOW + S).timeout,
            Duration::from_micros(600),
            "a dead peer is not waited for, so its RTT does not count"
        );
    }
}
