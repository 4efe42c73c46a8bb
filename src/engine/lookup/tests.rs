//! The acceptance rules and the per-peer states of one lookup, with plain
//! bytes for datagrams.

mod acceptance {
    use super::super::*;
    use crate::engine::Peer;

    const URL: &[u8] = b"http://localhost/wsgi/x?y";

    /// Every peer asked and waited for; groups asked, their size not known.
    fn plan_all(c: &Cluster) -> Plan {
        let groups = if c.groups.is_empty() { Groups::NotAsked } else { Groups::Count };
        Plan { asks: vec![Ask::Wait; c.peers.len()], timeout: ms(50), groups }
    }
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
    fn asked<'a>(c: &'a Cluster, plan: &'a Plan) -> Lookup<'a> {
        let mut l = Lookup::new(c, plan, URL, REQNUM);
        for i in l.to_ask(1) {
            l.on_sent(i);
        }
        if l.asks_groups() {
            l.on_sent_to_groups();
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
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
        l.on_datagram(from("192.0.2.4:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(2));
        assert!(!l.is_complete());
        l.on_datagram(from("192.0.2.3:3130"), &reply(Opcode::HitObj, REQNUM, URL), ms(3));
        assert!(l.is_complete(), "every peer answered");
        let o = l.finish(ms(3));
        assert_eq!(o.hit_list(&c).as_deref(), Some("192.0.2.4;192.0.2.3;"));
        assert_eq!(o.replies.iter().map(|r| r.rtt).collect::<Vec<_>>(), [ms(1), ms(2), ms(3)]);
        assert_eq!(o.answered_ips(&c).len(), 3);
        assert!(o.complete && o.silent.is_empty() && o.rejected.is_empty());
    }

    #[test]
    fn misses_denied_and_errors_mean_running_without_the_object() {
        let c = cluster(false);
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::MissNoFetch, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.3:3130"), &reply(Opcode::Denied, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.4:3130"), &reply(Opcode::Err, REQNUM, URL), ms(1));
        let o = l.finish(ms(1));
        assert_eq!(o.hit_list(&c), None);
        assert_eq!(o.answered_ips(&c).len(), 3);
    }

    #[test]
    fn every_rejection_is_counted_by_reason_and_changes_nothing() {
        let c = cluster(false);
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
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
        let o = l.finish(ms(3));
        let reasons: Vec<&str> = o.rejected.iter().map(|r| r.reason.label()).collect();
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
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
        for peer in ["192.0.2.2:3130", "192.0.2.3:3130", "192.0.2.4:3130"] {
            l.on_datagram(from(peer), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        }
        l.on_datagram(from("198.51.100.7:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(2));
        l.on_datagram(from("198.51.100.7:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(2));
        assert!(!l.is_complete(), "a group's size is unknown, so the deadline decides");
        let o = l.finish(ms(50));
        assert_eq!(o.hit_list(&c).as_deref(), Some("198.51.100.7;"));
        assert_eq!(o.replies[3].responder, Responder::Multicast(from("198.51.100.7:3130")));
        assert_eq!(o.rejected.len(), 1);
        assert_eq!(o.rejected[0].reason, Reject::Duplicate);
    }

    #[test]
    fn a_learnt_multicast_count_ends_the_wait_when_that_many_answered() {
        let c = cluster(true);
        let plan = Plan { groups: Groups::Expect(2), ..plan_all(&c) };
        let mut l = asked(&c, &plan);
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
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
        l.on_send_error(1, std::io::ErrorKind::NetworkUnreachable);
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.4:3130"), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        assert!(l.is_complete());
        let o = l.finish(ms(1));
        assert_eq!(o.unreachable, [(1, std::io::ErrorKind::NetworkUnreachable)]);
        assert!(o.silent.is_empty());
    }

    #[test]
    fn the_same_ip_hitting_twice_is_listed_once() {
        let mut c = cluster(false);
        c.peers[1].addr = from("192.0.2.2:3131");
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
        l.on_datagram(from("192.0.2.2:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        l.on_datagram(from("192.0.2.2:3131"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        assert_eq!(l.finish(ms(1)).hit_list(&c).as_deref(), Some("192.0.2.2;"));
    }

    #[test]
    fn ipv6_hits_are_bracketed_for_use_in_urls() {
        let c = Cluster { peers: vec![Peer::new("::1", from("[::1]:3130"))], ..Cluster::default() };
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
        l.on_datagram(from("[::1]:3130"), &reply(Opcode::Hit, REQNUM, URL), ms(1));
        assert_eq!(l.finish(ms(1)).hit_list(&c).as_deref(), Some("[::1];"));
    }

    #[test]
    fn a_large_cluster_finds_each_sender_by_address() {
        let addr = |i: usize| from(&format!("10.0.0.{}:{}", 40 - i, 3130 + i));
        let c = Cluster { peers: (0..40).map(|i| Peer::new(format!("p{i}"), addr(i))).collect(), ..Cluster::default() };
        let plan = plan_all(&c);
        let mut l = asked(&c, &plan);
        for i in (0..40).rev() {
            assert!(!l.is_complete());
            l.on_datagram(addr(i), &reply(Opcode::Miss, REQNUM, URL), ms(1));
        }
        l.on_datagram(from("10.0.0.40:3131"), &reply(Opcode::Miss, REQNUM, URL), ms(1)); // right host, wrong port
        l.on_datagram(addr(7), &reply(Opcode::Miss, REQNUM, URL), ms(1)); // a second answer
        assert!(l.is_complete());
        let o = l.finish(ms(1));
        assert_eq!(o.replies.len(), 40);
        let reasons: Vec<&str> = o.rejected.iter().map(|r| r.reason.label()).collect();
        assert_eq!(reasons, ["unknown_sender", "duplicate"]);
    }
}

mod health {
    use super::super::*;
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

    fn plan(asks: [Ask; 2]) -> Plan {
        Plan { asks: asks.to_vec(), timeout: Duration::from_millis(50), groups: Groups::NotAsked }
    }

    fn sent<'a>(c: &'a Cluster, plan: &'a Plan) -> Lookup<'a> {
        let mut l = Lookup::new(c, plan, URL, 7);
        for i in l.to_ask(1) {
            l.on_sent(i);
        }
        l
    }

    #[test]
    fn an_icmp_error_ends_the_wait_for_that_peer() {
        let c = two_peers();
        let plan = plan([Ask::Wait, Ask::Wait]);
        let mut l = sent(&c, &plan);
        l.on_datagram("192.0.2.2:3130".parse().unwrap(), &reply(Opcode::Miss, 7), Duration::from_micros(100));
        assert!(!l.is_complete());
        l.on_icmp_error("192.0.2.3:3130".parse().unwrap(), std::io::ErrorKind::ConnectionRefused, None);
        l.on_icmp_error("198.51.100.1:3130".parse().unwrap(), std::io::ErrorKind::ConnectionRefused, None);
        assert!(l.is_complete());
        let o = l.finish(Duration::from_micros(150));
        assert_eq!(o.refused, [(1, std::io::ErrorKind::ConnectionRefused)]);
        assert!(o.silent.is_empty() && o.complete);
    }

    #[test]
    fn dead_peers_are_probed_or_skipped_but_never_waited_for() {
        let c = two_peers();
        let plan = plan([Ask::Probe, Ask::Skip]);
        let mut l = sent(&c, &plan);
        assert!(l.is_complete(), "nothing is waited for");
        l.on_datagram("192.0.2.2:3130".parse().unwrap(), &reply(Opcode::Hit, 7), Duration::from_micros(100));
        l.on_datagram("192.0.2.3:3130".parse().unwrap(), &reply(Opcode::Hit, 7), Duration::from_micros(100));
        let o = l.finish(Duration::from_micros(100));
        assert_eq!(o.probed, [0]);
        assert_eq!(o.not_asked, [1]);
        assert_eq!(o.hit_list(&c).as_deref(), Some("192.0.2.2;"), "a probed peer's answer counts");
        assert_eq!(o.rejected.len(), 1, "a peer never asked cannot answer");
    }

    #[test]
    fn an_oversized_datagram_is_rejected_by_its_real_size_and_waits_on() {
        let c = two_peers();
        let plan = plan([Ask::Wait, Ask::Skip]);
        let mut l = sent(&c, &plan);
        l.on_oversized("192.0.2.2:3130".parse().unwrap(), 20_000);
        l.on_oversized("198.51.100.1:3130".parse().unwrap(), 70_000);
        assert!(!l.is_complete(), "the peer is still waited for");
        let o = l.finish(Duration::from_millis(50));
        let reasons: Vec<Reject> = o.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, [Reject::Malformed(DecodeError::TooLong { len: 20_000 }), Reject::UnknownSender]);
    }

    #[test]
    fn the_second_round_starts_only_without_a_first_round_hit() {
        let mut c = two_peers();
        c.peers[1].round = 2;
        let both = plan([Ask::Wait, Ask::Wait]);
        for (opcode, due) in [(Opcode::Miss, true), (Opcode::Hit, false)] {
            let mut l = Lookup::new(&c, &both, URL, 7);
            assert_eq!(l.to_ask(1), [0]);
            l.on_sent(0);
            l.on_datagram("192.0.2.2:3130".parse().unwrap(), &reply(opcode, 7), Duration::from_micros(100));
            assert_eq!(l.second_round_due(), due, "{opcode}");
            if due {
                assert_eq!(l.to_ask(2), [1]);
                l.on_second_round();
                assert!(!l.second_round_due(), "once");
            }
        }
        let skip = plan([Ask::Wait, Ask::Skip]);
        assert!(!Lookup::new(&c, &skip, URL, 7).second_round_due(), "no round-2 peer is asked");
    }
}
