//! A real Squid CARP front end (`support::carp_front`) over the harness's
//! three Squid accelerators (127.0.<net>.2-4:3128, with their origins behind
//! them), parents named by host as written: the array `lbmethod=bycache` is
//! to build from balancer members `http://127.0.<net>.N:3128`, weight = the
//! member's loadfactor.
//!
//! For 300 distinct URLs each test checks what a user of the front end
//! sees: the cache that answered (its `X-Cache`) is the one
//! `mod_icpquery::engine::carp` names as owner; the front end's own access
//! log says it chose that parent by CARP; and afterwards that cache, and
//! only it, answers ICP HIT for the URL's key `http://localhost` + path?query
//! — the key a portal asks the caches over ICP. So Squid's CARP, ours, and
//! where the object ends up stored all agree.
//!
//! * weights 1, 2, 3 (a front end `CarpFront::start` writes): network 180;
//! * `conf/squid-carp-frontend.conf` as shipped, on loopback: network 181.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mod_icpquery::engine::carp::{Array, Variant};
use support::carp_front::{escaped_for_log, key, members, shipped_conf, CarpFront, Parent};
use support::{poll_until, portal_ip, Cluster, Opcode};

const URLS: usize = 300;
/// Where the front end accelerates (the portal's address: these tests start
/// no portal httpd); its cache manager is on the next port.
const FRONT_PORT: u16 = 3128;
/// Bounds the wait for a log line or a stored object on a loaded box.
const WAIT: Duration = Duration::from_secs(10);

fn front_addr(net: u8) -> SocketAddr {
    SocketAddr::from((portal_ip(net), FRONT_PORT))
}

/// Request targets, every one distinct: half ASCII with a query, a
/// quarter with UTF-8 %-encoded as a browser sends it, a quarter with raw
/// UTF-8 bytes (Squid hashes, forwards and stores both as they are).
fn targets() -> Vec<String> {
    (0..URLS)
        .map(|n| match n % 4 {
            1 => format!("/wsgi/front/%C5%9D{n}?k=%C3%A9{n}"),
            3 => format!("/wsgi/front/\u{15d}{n}?k=\u{e9}{n}"),
            _ => format!("/wsgi/front/{n}?k={n}&w=123"),
        })
        .collect()
}

/// The cache parents of `cluster`'s Squids, in host order, with `weights`.
fn cache_parents(cluster: &Cluster, weights: [u32; 3]) -> Vec<Parent> {
    let parents: Vec<Parent> = cluster.squids().iter().zip(weights).map(|(s, w)| Parent::cache(s, w)).collect();
    let hosts = cluster.hosts().map(|h| h.to_string());
    assert_eq!(parents.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), hosts, "named by host as written");
    parents
}

/// Send every target through `front` and check it against `engine::carp`
/// (see the top of the file); the number of URLs each parent owned.
fn check_every_url(cluster: &Cluster, front: &CarpFront) -> Vec<usize> {
    let parents = front.parents();
    let array = Array::new(&members(parents), Variant::Squid);
    let targets = targets();

    // (1) The cache that answered each URL is the engine's owner.
    let mut owners = Vec::with_capacity(URLS);
    let mut mismatches = Vec::new();
    let mut share = vec![0usize; parents.len()];
    for t in &targets {
        let got = front.forwarded_to(t);
        let want = array.owner(key(t).as_bytes(), |_| true).expect("an owner");
        if *got != parents[want] {
            mismatches.push(format!("{t}: Squid forwarded to {}, engine::carp owner {}", got.name, parents[want].name));
        }
        share[want] += 1;
        owners.push(&parents[want]);
    }
    assert!(mismatches.is_empty(), "{} of {URLS} differ:\n{}", mismatches.len(), mismatches.join("\n"));

    // (2) The front end's log: each request went by CARP to that parent.
    let logged = poll_until(WAIT, || {
        let f: Vec<_> =
            front.logged_forwards().into_iter().filter(|f| f.url.starts_with("http://localhost/")).collect();
        (f.len() >= URLS).then_some(f)
    })
    .unwrap_or_else(|| panic!("the front end did not log {URLS} requests:\n{}", front.access_log()));
    assert_eq!(logged.len(), URLS, "one line per request");
    for ((t, owner), f) in targets.iter().zip(&owners).zip(&logged) {
        assert_eq!(
            (f.hierarchy.as_str(), f.parent.as_str(), f.status, f.url.as_str()),
            ("CARP", owner.name.as_str(), 200, escaped_for_log(&key(t)).as_str()),
            "front end log for {t}"
        );
    }

    // (3) The object is stored at the owner, under the key a portal asks
    // for over ICP: the owner answers HIT, the other caches MISS.
    for (t, owner) in targets.iter().zip(&owners) {
        let k = key(t);
        for s in cluster.squids() {
            if s.http_addr() == owner.addr() {
                let hit = poll_until(WAIT, || (s.icp_query(&k) == Some(Opcode::Hit)).then_some(()));
                let last = || s.icp_query(&k);
                assert!(hit.is_some(), "{} (the owner) never answered ICP HIT for {k}: {:?}", s.name(), last());
            } else {
                let got = s.icp_query(&k);
                assert_eq!(got, Some(Opcode::Miss), "ICP {} for {k} (the owner is {})", s.name(), owner.name);
            }
        }
    }
    share
}

#[test]
fn squid_carp_over_the_caches_forwards_each_url_to_the_engine_s_owner() {
    const NET: u8 = 180;
    let cluster = Cluster::start_caches(NET);
    let parents = cache_parents(&cluster, [1, 2, 3]);
    // Declared after the cluster: stopped before the caches.
    let front = CarpFront::start(&cluster.dir().join("carpfront"), front_addr(NET), &parents);

    let share = check_every_url(&cluster, &front);
    eprintln!("weights 1:2:3 → URLs {share:?}");
    assert!(share[0] > 0 && share[0] < share[1] && share[1] < share[2], "shares follow the weights: {share:?}");
}

#[test]
fn the_shipped_squid_carp_frontend_conf_routes_as_the_engine() {
    const NET: u8 = 181;
    let cluster = Cluster::start_caches(NET);
    // As the file's cache_peer lines: equal weights, named by host.
    let parents = cache_parents(&cluster, [1, 1, 1]);
    let conf = shipped_conf(NET, front_addr(NET));
    for p in &parents {
        let line =
            format!("cache_peer {} parent {} 0 carp no-query no-digest weight=1 name={}", p.host, p.http_port, p.name);
        assert!(conf.contains(&line), "conf/squid-carp-frontend.conf has no {line:?}:\n{conf}");
    }
    let front = CarpFront::start_with_conf(&cluster.dir().join("carpfront"), front_addr(NET), &parents, &conf);
    assert_eq!(front.name(), "carp-frontend");

    let share = check_every_url(&cluster, &front);
    eprintln!("the shipped file, equal weights → URLs {share:?}");
    assert!(share.iter().all(|&n| n > 0), "every cache owns some URLs: {share:?}");
}
