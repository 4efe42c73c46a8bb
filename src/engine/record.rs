//! What a lookup's outcome does to the shared health records, as pure
//! logic over them; the driver passes the time in.

use std::sync::atomic::Ordering::Relaxed;

use super::cluster::Cluster;
use super::health::{Counter, Health, Transition};
use super::lookup::{Outcome, Reject, Responder};
use super::plan::{Groups, Plan};

/// Writes what one lookup learnt into the shared health records, and fills
/// in `outcome.transitions`:
/// - a valid reply: the peer is alive (revived if it was dead), its RTT and
///   opcode counted; a reply to an earlier lookup that came after it ended
///   on the same socket: alive too;
/// - an ICMP error: nobody listens there; the peer is dead at once;
/// - silence while waited for: a timeout; the peer dies once it has been
///   silent for the dead time;
/// - every datagram dropped from a peer's address and port is counted for
///   that peer by reason, from anyone else for the cluster;
/// - a lookup that counted the multicast responders stores the count.
pub fn record(cluster: &Cluster, health: Health<'_>, plan: &Plan, outcome: &mut Outcome, now_us: u64) {
    health.cluster.lookups.fetch_add(1, Relaxed);
    if outcome.complete {
        health.cluster.complete.fetch_add(1, Relaxed);
    }
    let mut transitions: Vec<(usize, Option<Transition>)> = Vec::new();
    for reply in &outcome.replies {
        match reply.responder {
            Responder::Peer(i) => transitions.push((i, health.peers[i].record_reply(reply.opcode, reply.rtt, now_us))),
            Responder::Multicast(_) => {
                health.cluster.multicast_replies.fetch_add(1, Relaxed);
            }
        }
    }
    for &i in &outcome.late_peers {
        transitions.push((i, health.peers[i].record_late_reply(now_us)));
    }
    for &(i, _) in &outcome.refused {
        transitions.push((i, health.peers[i].record_refused(now_us, cluster.dead_time)));
    }
    for &i in &outcome.silent {
        let others_answered = outcome.replies.iter().any(|r| r.responder != Responder::Peer(i));
        transitions.push((i, health.peers[i].record_timeout(now_us, cluster.dead_time, others_answered)));
    }
    for (i, slot) in health.peers.iter().enumerate() {
        if !outcome.not_asked.contains(&i) {
            slot.count(Counter::Queries);
        }
    }
    for rejected in &outcome.rejected {
        let from = rejected.from;
        match (cluster.peers.iter().position(|p| p.addr == from), rejected.reason.reason()) {
            (Some(i), Some(reason)) => health.peers[i].count_reject(reason),
            (None, _) if rejected.reason == Reject::UnknownSender => {
                health.cluster.unknown_sender.fetch_add(1, Relaxed);
            }
            _ => {} // a multicast responder's bad datagram: no record of its own
        }
    }
    match plan.groups {
        Groups::Count => health.cluster.learn_multicast_responders(outcome.multicast_responders()),
        Groups::Expect(n) => health.cluster.multicast_seen(n, outcome.multicast_responders()),
        Groups::NotAsked => {}
    }
    outcome.transitions = transitions.into_iter().filter_map(|(i, t)| Some((i, t?))).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Death, LocalHealth, Lookup, Peer, Purpose, RejectReason, Reply, Timeout};
    use crate::icp::{Message, Opcode};
    use std::time::Duration;

    const URL: &[u8] = b"http://localhost/x";
    const S: u64 = 1_000_000;
    const NOW: u64 = 1_000 * S;
    const DEAD_TIME: Duration = Duration::from_secs(10);

    fn cluster(peers: usize) -> Cluster {
        let peers = (1..=peers).map(|i| Peer::new(format!("192.0.2.{i}"), from(i - 1)));
        let timeout = Timeout::Fixed(Duration::from_millis(50));
        Cluster { peers: peers.collect(), timeout, dead_time: DEAD_TIME, ..Cluster::default() }
    }

    fn reply(opcode: Opcode, reqnum: u32) -> Vec<u8> {
        let mut out = Vec::new();
        Message::query(reqnum, URL).reply(opcode).encode(&mut out).unwrap();
        out
    }

    fn from(i: usize) -> std::net::SocketAddr {
        format!("192.0.2.{}:3130", i + 1).parse().unwrap()
    }

    #[test]
    fn groups_are_counted_once_then_expected() {
        let mut c = cluster(0);
        c.groups = vec!["239.255.0.1:3130".parse().unwrap()];
        let health = LocalHealth::new(0);
        let mut counting = Plan::new(&c, health.view(), Purpose::Request, NOW);
        assert_eq!(counting.groups, Groups::Count);
        let mut outcome = Outcome::default();
        for host in ["198.51.100.1:3130", "198.51.100.2:3130"] {
            outcome.replies.push(Reply {
                responder: Responder::Multicast(host.parse().unwrap()),
                opcode: Opcode::Miss,
                rtt: Duration::from_micros(100),
            });
        }
        record(&c, health.view(), &counting, &mut outcome, NOW);
        counting.groups = Plan::new(&c, health.view(), Purpose::Request, NOW + S).groups;
        assert_eq!(counting.groups, Groups::Expect(2));
        assert_eq!(Plan::new(&cluster(0), health.view(), Purpose::Request, NOW).groups, Groups::NotAsked);
    }

    #[test]
    fn replies_icmp_errors_and_silence_change_health() {
        let c = cluster(3);
        let health = LocalHealth::new(3);
        let plan = Plan::new(&c, health.view(), Purpose::Request, NOW);
        let mut l = Lookup::new(&c, &plan, URL, 7);
        for i in l.to_ask(1) {
            l.on_sent(i);
        }
        l.on_datagram(from(0), &reply(Opcode::Hit, 7), Duration::from_micros(250));
        l.on_datagram(from(0), &reply(Opcode::Hit, 7), Duration::from_micros(260)); // a duplicate
        l.on_datagram("198.51.100.9:3130".parse().unwrap(), &reply(Opcode::Hit, 7), Duration::from_micros(1));
        l.on_icmp_error(from(1), std::io::ErrorKind::ConnectionRefused, None);
        let mut outcome = l.finish(Duration::from_millis(50));
        record(&c, health.view(), &plan, &mut outcome, NOW);
        assert_eq!(outcome.transitions, [(1, Transition::Died(Death::Refused))], "refused: dead at once");
        let snaps: Vec<_> = health.peers.iter().map(|p| p.snapshot()).collect();
        assert!(!snaps[0].dead && snaps[1].dead && !snaps[2].dead, "silence alone does not kill");
        assert_eq!(snaps[0].srtt, Some(Duration::from_micros(250)));
        assert_eq!(snaps[0].counters[Counter::Hit as usize], 1);
        assert_eq!(snaps[0].rejects[RejectReason::Duplicate.index()], 1);
        assert_eq!(snaps[1].counters[Counter::Icmp as usize], 1);
        assert_eq!(snaps[2].counters[Counter::Timeouts as usize], 1);
        assert!(snaps.iter().all(|s| s.counters[Counter::Queries as usize] == 1));
        assert_eq!(health.cluster.unknown_sender.load(Relaxed), 1);
        assert_eq!((health.cluster.lookups.load(Relaxed), health.cluster.complete.load(Relaxed)), (1, 0));

        // Silent for the dead time while asked: dead; a reply revives it.
        let later = Plan::new(&c, health.view(), Purpose::Request, NOW + 10 * S);
        let mut l = Lookup::new(&c, &later, URL, 8);
        l.on_sent(2);
        let mut outcome = l.finish(Duration::from_millis(50));
        record(&c, health.view(), &later, &mut outcome, NOW + 10 * S);
        assert_eq!(outcome.transitions, [(2, Transition::Died(Death::Silent))]);
        let mut l = Lookup::new(&c, &later, URL, 9);
        l.on_sent(2);
        l.on_datagram(from(2), &reply(Opcode::Miss, 9), Duration::from_micros(100));
        let mut outcome = l.finish(Duration::from_micros(100));
        record(&c, health.view(), &later, &mut outcome, NOW + 11 * S);
        assert_eq!(outcome.transitions, [(2, Transition::Revived)]);
    }

    #[test]
    fn a_late_reply_to_an_earlier_lookup_on_the_same_socket_revives_a_dead_peer() {
        let c = cluster(2);
        let health = LocalHealth::new(2);
        health.peers[1].record_refused(NOW, DEAD_TIME);
        let plan = Plan::new(&c, health.view(), Purpose::Request, NOW + S);
        let retired = [41, 42];
        let mut l = Lookup::new(&c, &plan, URL, 7).retired(&retired);
        l.on_sent(0);
        l.on_datagram(from(1), &reply(Opcode::Miss, 42), Duration::from_micros(100)); // for lookup 42
        l.on_datagram(from(0), &reply(Opcode::Miss, 43), Duration::from_micros(100)); // never sent
        l.on_datagram(from(0), &reply(Opcode::Hit, 7), Duration::from_micros(120));
        let mut outcome = l.finish(Duration::from_micros(120));
        assert_eq!((outcome.late, outcome.late_peers.as_slice()), (1, &[1][..]), "{outcome:?}");
        assert_eq!(outcome.rejected.len(), 1, "an unknown request number is still a forgery");
        record(&c, health.view(), &plan, &mut outcome, NOW + S);
        assert_eq!(outcome.transitions, [(1, Transition::Revived)]);
        assert_eq!(health.peers[1].srtt(), None, "a late reply says nothing about the round trip");
    }
}
