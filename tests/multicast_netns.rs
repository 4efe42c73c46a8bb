//! Multicast on a network of the test's own: a network namespace holding a
//! multicast-capable interface with the querier's and three responders'
//! addresses. Threads enter the namespace (setns affects only the calling
//! thread), so nothing leaves it. Checks that the group is asked from the
//! bound interface, that every member's answer counts, and that once the
//! group's size is learnt a lookup ends as soon as all of them answered.

mod support;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use mod_icpquery::engine::{self, Cluster, LocalHealth, Timeout};
use support::netns::{member, Netns, GROUP, MEMBERS, QUERIER};

/// The second member holds every URL, the others none.
const HOLDS: [fn(&[u8]) -> bool; 3] = [|_| false, |_| true, |_| false];

#[test]
fn a_group_is_asked_from_the_bound_address_and_its_size_is_learnt() {
    let ns = Netns::create("mc");
    let stop = Arc::new(AtomicBool::new(false));
    let joined = Arc::new(Barrier::new(MEMBERS.len() + 1));
    let members: Vec<_> =
        MEMBERS.iter().enumerate().map(|(i, a)| member(&ns.0, *a, HOLDS[i], stop.clone(), joined.clone())).collect();
    joined.wait();

    let name = ns.0.clone();
    let outcomes = thread::spawn(move || {
        Netns(name).enter_and_forget();
        let cluster = Cluster {
            groups: vec![SocketAddr::V4(SocketAddrV4::new(GROUP, 3130))],
            bind: Some(QUERIER.into()),
            mcast_hops: 1,
            timeout: Timeout::Fixed(Duration::from_secs(1)),
            ..Cluster::default()
        };
        let health = LocalHealth::new(0);
        // The first lookup learns the group's size by waiting its timeout.
        let first = engine::run(&cluster, health.view(), b"http://localhost/clip").unwrap();
        let second = engine::run(&cluster, health.view(), b"http://localhost/clip").unwrap();
        (cluster, first, second)
    })
    .join()
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Vec<(SocketAddr, u8)>> = members.into_iter().map(|m| m.join().expect("a member failed")).collect();

    let (cluster, first, second) = outcomes;
    assert_eq!(first.replies.len(), 3, "{first:?}");
    assert!(!first.complete && first.elapsed >= first.timeout, "the learning lookup waits its whole timeout");
    assert_eq!(first.hit_list(&cluster).as_deref(), Some("10.77.0.3;"));
    assert_eq!(second.replies.len(), 3, "{second:?}");
    assert!(second.complete, "with the size known the lookup ends when all three answered: {second:?}");
    for queries in &seen {
        assert_eq!(queries.len(), 2, "every member got every query: {seen:?}");
        for (from, ttl) in queries {
            assert_eq!(from.ip(), std::net::IpAddr::V4(QUERIER), "asked from the bound address");
            assert_eq!(*ttl, 1, "ICPQueryMCastHops 1 on the wire");
        }
    }
}
