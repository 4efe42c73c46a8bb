//! A real Squid CARP front end (`support::carp_front`) over the harness's
//! three Squid accelerators (127.0.180.2-4:3128, with their origins behind
//! them), parents named by host as written with weights 1, 2 and 3: the
//! array `lbmethod=bycache` is to build from balancer members
//! `http://127.0.180.N:3128` with loadfactors 1, 2, 3.
//!
//! For 300 distinct URLs the test checks what a user of the front end
//! sees: the cache that answered (its `X-Cache`) is the one
//! `mod_icpquery::engine::carp` names as owner; the front end's own access
//! log says it chose that parent by CARP; and afterwards that cache, and
//! only it, answers ICP HIT for the URL's key `http://localhost` + path?query
//! — the key a portal asks the caches over ICP. So Squid's CARP, ours, and
//! where the object ends up stored all agree.
//!
//! Network number 180.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mod_icpquery::engine::carp::{Array, Variant};
use support::carp_front::{escaped_for_log, key, members, CarpFront, Parent};
use support::{poll_until, portal_ip, Cluster, Opcode};

const NET: u8 = 180;
const URLS: usize = 300;
/// Where the front end accelerates (the portal's address: this test starts
/// no portal httpd); its cache manager is on the next port.
const FRONT_PORT: u16 = 3128;
/// Bounds the wait for a log line or a stored object on a loaded box.
const WAIT: Duration = Duration::from_secs(10);

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

#[test]
fn squid_carp_over_the_caches_forwards_each_url_to_the_engine_s_owner() {
    let cluster = Cluster::start_caches(NET);
    let parents: Vec<Parent> = cluster.squids().iter().zip([1, 2, 3]).map(|(s, w)| Parent::cache(s, w)).collect();
    let hosts = cluster.hosts().map(|h| h.to_string());
    assert_eq!(parents.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), hosts, "named by host as written");
    let front =
        CarpFront::start(&cluster.dir().join("carpfront"), SocketAddr::from((portal_ip(NET), FRONT_PORT)), &parents);
    let array = Array::new(&members(&parents), Variant::Squid);
    let targets = targets();

    // (1) The cache that answered each URL is the engine's owner.
    let mut owners = Vec::with_capacity(URLS);
    let mut mismatches = Vec::new();
    let mut share = [0usize; 3];
    for t in &targets {
        let got = front.forwarded_to(t);
        let want = &parents[array.owner(key(t).as_bytes(), |_| true).expect("an owner")];
        if got != want {
            mismatches.push(format!("{t}: Squid forwarded to {}, engine::carp owner {}", got.name, want.name));
        }
        share[parents.iter().position(|p| p == want).unwrap()] += 1;
        owners.push(want);
    }
    assert!(mismatches.is_empty(), "{} of {URLS} differ:\n{}", mismatches.len(), mismatches.join("\n"));
    eprintln!("weights 1:2:3 → URLs {share:?}");
    assert!(share[0] > 0 && share[0] < share[1] && share[1] < share[2], "shares follow the weights: {share:?}");

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
                assert!(
                    hit.is_some(),
                    "{} (the owner) never answered ICP HIT for {k}: {:?}",
                    s.name(),
                    s.icp_query(&k)
                );
            } else {
                assert_eq!(
                    s.icp_query(&k),
                    Some(Opcode::Miss),
                    "ICP {} for {k} (the owner is {})",
                    s.name(),
                    owner.name
                );
            }
        }
    }
}
