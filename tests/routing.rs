//! The seed setup end to end: a portal httpd with the built module and the
//! original example's rules, three real Squid accelerators and their
//! origins on loopback (only the timeout is raised, see `seed_cluster`).
//! Which cache served each response is read from Squid's `X-Cache` header,
//! exactly as a user would check it.

mod support;

use std::thread;

use support::http;
use support::httpd::{with_timeout, HttpdOptions};
use support::{Cluster, Mpm};

/// The seed setup with a long `ICPQueryTimeout` (see `with_timeout`): these
/// tests are about which cache a request reaches, and the concurrent ones
/// load the machine while the others run.
fn seed_cluster(net: u8, mpm: Mpm) -> Cluster {
    Cluster::start_with(net, mpm, |dir| with_timeout(&HttpdOptions::seed(dir, net, mpm).portal_conf, 5_000_000))
}

/// Fetches `path` straight from the Squid on `host`, so that exactly that
/// cache holds the object.
fn warm(c: &Cluster, host: std::net::Ipv4Addr, path: &str) {
    let r = http::get(c.cache_for(host).http_addr(), path);
    assert_eq!(r.status, 200, "warming {path} at {host}: {r:?}");
    let again = http::get(c.cache_for(host).http_addr(), path);
    assert!(again.is_hit(), "{path} should now be cached at {host}: {again:?}");
}

#[test]
fn an_object_cached_at_one_squid_is_fetched_from_that_squid() {
    let c = seed_cluster(21, Mpm::Event);
    let hosts = c.hosts();
    for (i, host) in hosts.iter().enumerate() {
        warm(&c, *host, &format!("/wsgi/page{i}?lang=en"));
    }
    for (i, host) in hosts.iter().enumerate() {
        let r = c.get(&format!("/wsgi/page{i}?lang=en"));
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), Some(format!("HIT from {}", c.cache_for(*host).name()).as_str()), "page{i}: {r:?}");
    }
    let log = c.httpd().module_log();
    assert!(
        log.contains(&format!("ICP_OP_HIT from {}:3130 for \"http://localhost/wsgi/page1?lang=en\"", hosts[1])),
        "{log}"
    );
    assert!(
        log.contains(&format!("icpquerymap \"http://localhost/wsgi/page1?lang=en\" -> \"{};\"", hosts[1])),
        "{log}"
    );
    assert!(!log.contains("dropped a datagram"), "{log}");
}

#[test]
fn a_new_object_goes_to_a_running_cache_and_the_repeat_is_a_hit_there() {
    let c = seed_cluster(22, Mpm::Event);
    for n in 0..6 {
        let path = format!("/wsgi/new{n}");
        let first = c.get(&path);
        assert_eq!(first.status, 200, "{first:?}");
        let cache = first.cache_name().unwrap_or_else(|| panic!("{path} bypassed every cache: {first:?}")).to_owned();
        assert_eq!(first.x_cache(), Some(format!("MISS from {cache}").as_str()));
        let again = c.get(&path);
        assert_eq!(again.x_cache(), Some(format!("HIT from {cache}").as_str()), "{path}: {again:?}");
        assert_eq!(again.body, first.body);
    }
    // Each object was fetched from an origin exactly once.
    assert_eq!(c.origin_total(), 6);
    let log = c.httpd().module_log();
    assert!(log.contains("icpqueryisrunning"), "{log}");
    assert!(log.contains("-> the key (answered this request's query)"), "{log}");
}

#[test]
fn with_one_squid_stopped_no_request_goes_to_it_and_every_request_succeeds() {
    let mut c = seed_cluster(23, Mpm::Event);
    let [_, h3, h4] = c.hosts();
    warm(&c, h3, "/wsgi/was-at-3");
    warm(&c, h4, "/wsgi/at-4");
    let stopped = c.cache_for(h3).name();
    c.cache_for_mut(h3).stop();

    let mut via_balancer = 0;
    for n in 0..30 {
        let r = c.get(&format!("/wsgi/item{n}"));
        assert_eq!(r.status, 200, "item{n}: {r:?}");
        assert_ne!(r.cache_name(), Some(stopped.as_str()), "item{n} went to the stopped cache");
        if r.x_cache().is_none() {
            assert!(r.x_origin().is_some(), "{r:?}");
            via_balancer += 1;
        }
    }
    // The random pick lands on the stopped cache about a third of the time;
    // icpqueryisrunning then says no and the balancer takes the request.
    assert!(via_balancer > 0, "no request fell through to the balancer");

    let r = c.get("/wsgi/was-at-3");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.x_cache().is_none_or(|x| x.starts_with("MISS from")), "{r:?}");
    assert_eq!(c.get("/wsgi/at-4").x_cache(), Some(format!("HIT from {}", c.cache_for(h4).name()).as_str()));

    let log = c.httpd().module_log();
    // The stopped Squid's port is closed: ICMP says so at once, and the
    // cache is dead from the first request on.
    assert!(log.contains(&format!("{h3}:3130 refused the query by ICMP")), "{log}");
    assert!(log.contains(&format!("cache {h3}:3130 is dead: its host refused the query (ICMP)")), "{log}");
    assert!(!log.contains("cannot send"), "{log}");
    assert!(
        log.contains(&format!("icpqueryisrunning \"{h3}\" -> NULL (did not answer this request's query)")),
        "{log}"
    );
}

#[test]
fn with_all_squids_stopped_the_balancer_serves_from_the_origin() {
    let mut c = seed_cluster(24, Mpm::Event);
    c.stop_all_squids();
    for n in 0..9 {
        let r = c.get(&format!("/wsgi/direct{n}?q={n}"));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.x_cache(), None, "{r:?}");
        let origin = r.x_origin().expect("served by an origin");
        assert_eq!(r.body_text(), format!("origin {origin} /wsgi/direct{n}?q={n}\n"));
    }
    assert_eq!(c.origin_total(), 9);
    // Static content stays on the portal.
    let r = c.get("/index.html");
    assert_eq!((r.status, r.x_origin()), (200, None));
}

/// 32 clients at once, each object cached at exactly one Squid: a request
/// routed by another request's replies would land on the wrong cache.
fn concurrent_clients_are_routed_by_their_own_replies(net: u8, mpm: Mpm) {
    const OBJECTS: usize = 12;
    const CLIENTS: usize = 32;
    const REQUESTS: usize = 25;
    let c = seed_cluster(net, mpm);
    let hosts = c.hosts();
    let path = |i: usize| format!("/wsgi/shared{i}?v={i}");
    for i in 0..OBJECTS {
        warm(&c, hosts[i % 3], &path(i));
    }
    let expected: Vec<String> =
        (0..OBJECTS).map(|i| format!("HIT from {}", c.cache_for(hosts[i % 3]).name())).collect();
    let portal = c.portal_addr();
    thread::scope(|s| {
        for client in 0..CLIENTS {
            let (expected, path) = (&expected, &path);
            s.spawn(move || {
                for k in 0..REQUESTS {
                    let i = (client * 7 + k) % OBJECTS;
                    let r = http::get(portal, &path(i));
                    assert_eq!(r.status, 200, "{mpm:?} client {client}: {r:?}");
                    assert_eq!(r.x_cache(), Some(expected[i].as_str()), "{mpm:?} client {client} object {i}");
                }
            });
        }
    });
    let log = c.httpd().module_log();
    assert_eq!(
        log.matches("icpquerymap \"http://localhost/wsgi/shared").count(),
        CLIENTS * REQUESTS,
        "one lookup per request"
    );
    assert!(!log.contains("dropped a datagram"), "no lookup saw a reply meant for another:\n{log}");
}

#[test]
fn concurrent_clients_event_mpm() {
    concurrent_clients_are_routed_by_their_own_replies(25, Mpm::Event);
}

#[test]
fn concurrent_clients_worker_mpm() {
    concurrent_clients_are_routed_by_their_own_replies(26, Mpm::Worker);
}

#[test]
fn concurrent_clients_prefork_mpm() {
    concurrent_clients_are_routed_by_their_own_replies(27, Mpm::Prefork);
}
