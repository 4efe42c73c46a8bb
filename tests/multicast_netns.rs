//! Multicast on a network of the test's own: a network namespace with the
//! querier's and three responders' addresses on one link and the default
//! multicast routes on another (see `support::netns`). Threads enter the
//! namespace (setns affects only the calling thread), so nothing leaves it.
//! Checks, for IPv4 and IPv6, that the group is asked from the bound
//! address and by its interface, that every member's answer counts, and
//! that once the group's size is learnt a lookup ends as soon as all of
//! them answered.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mod_icpquery::engine::{self, ip_text, BindAddr, Cluster, LocalHealth, Timeout};
use support::netns::{members, Net, Netns, V4, V6};

/// The second member holds every URL, the others none.
const HOLDS: [fn(&[u8]) -> bool; 3] = [|_| false, |_| true, |_| false];

fn a_group_is_asked_from_the_bound_interface_and_its_size_is_learnt(net: Net, label: &str) {
    let ns = Netns::create(label);
    let stop = Arc::new(AtomicBool::new(false));
    let members = members(&ns.0, net, HOLDS, &stop);

    let outcomes = ns.run_inside(move || {
        let cluster = Cluster {
            groups: vec![SocketAddr::new(net.group, 3130)],
            bind: Some(BindAddr::new(net.querier)),
            mcast_hops: 1,
            timeout: Timeout::Fixed(Duration::from_secs(1)),
            ..Cluster::default()
        };
        assert!(cluster.bind.unwrap().interface.is_some(), "the bound address's interface is found");
        let health = LocalHealth::new(0);
        // The first lookup learns the group's size by waiting its timeout.
        let first = engine::run(&cluster, engine::Shared::health(health.view()), b"http://localhost/clip").unwrap();
        let second = engine::run(&cluster, engine::Shared::health(health.view()), b"http://localhost/clip").unwrap();
        (cluster, first, second)
    });
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Vec<(SocketAddr, u8)>> = members.into_iter().map(|m| m.join().expect("a member failed")).collect();

    let (cluster, first, second) = outcomes;
    assert_eq!(first.replies.len(), 3, "{first:?}");
    assert!(!first.complete && first.elapsed >= first.timeout, "the learning lookup waits its whole timeout");
    assert_eq!(first.hit_list(&cluster), Some(format!("{};", ip_text(net.members[1]))));
    assert_eq!(second.replies.len(), 3, "{second:?}");
    assert!(second.complete, "with the size known the lookup ends when all three answered: {second:?}");
    for queries in &seen {
        assert_eq!(queries.len(), 2, "every member got every query: {seen:?}");
        for (from, ttl) in queries {
            assert_eq!(from.ip(), net.querier, "asked from the bound address");
            assert_eq!(*ttl, 1, "ICPQueryMCastHops 1 on the wire");
        }
    }
}

#[test]
fn an_ipv4_group_is_asked_from_the_bound_interface_and_its_size_is_learnt() {
    a_group_is_asked_from_the_bound_interface_and_its_size_is_learnt(V4, "mc4");
}

#[test]
fn an_ipv6_group_is_asked_from_the_bound_interface_and_its_size_is_learnt() {
    a_group_is_asked_from_the_bound_interface_and_its_size_is_learnt(V6, "mc6");
}

/// Without the bound address the kernel sends by the default route, the
/// decoy link, where no member listens: proof that the tests above depend
/// on the interface choice and not on the namespace having one link.
#[test]
fn without_a_bind_address_the_query_leaves_by_the_default_route() {
    for (net, label) in [(V4, "mcd4"), (V6, "mcd6")] {
        let ns = Netns::create(label);
        let stop = Arc::new(AtomicBool::new(false));
        let members = members(&ns.0, net, HOLDS, &stop);
        let outcome = ns.run_inside(move || {
            let cluster = Cluster {
                groups: vec![SocketAddr::new(net.group, 3130)],
                timeout: Timeout::Fixed(Duration::from_millis(300)),
                ..Cluster::default()
            };
            engine::run(&cluster, engine::Shared::health(LocalHealth::new(0).view()), b"http://localhost/clip").unwrap()
        });
        stop.store(true, Ordering::Relaxed);
        let seen: usize = members.into_iter().map(|m| m.join().expect("a member failed").len()).sum();
        assert_eq!((outcome.replies.len(), seen), (0, 0), "{label}: {outcome:?}");
    }
}
