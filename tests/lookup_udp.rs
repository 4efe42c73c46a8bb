//! The engine over real UDP on loopback: small ICP responders built on the
//! crate's codec answer like Squid does, and lookups run against them.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mod_icpquery::engine::{self, Cluster, LocalHealth, LookupError, Outcome, Peer, Timeout};
use mod_icpquery::icp::Opcode;
use support::responder::Responder;

/// A cache that answers HIT for the URLs `holds` accepts and MISS for the
/// rest, or (`silent`) never answers.
fn cache(addr: &str, silent: bool, holds: fn(&[u8]) -> bool) -> Responder {
    Responder::start(addr, move |url| (!silent).then_some(if holds(url) { Opcode::Hit } else { Opcode::Miss }))
}

fn cluster(responders: &[&Responder], timeout: Duration) -> Cluster {
    Cluster {
        peers: responders.iter().map(|r| Peer::new(r.addr.ip().to_string(), r.addr)).collect(),
        timeout: Timeout::Fixed(timeout),
        ..Cluster::default()
    }
}

/// One lookup with fresh (all alive) health records.
fn run(cl: &Cluster, url: &[u8]) -> Result<Outcome, LookupError> {
    engine::run(cl, LocalHealth::new(cl.peers.len()).view(), None, url)
}

/// URL ownership used by the concurrent test: the digit after "obj" says
/// which of three caches holds it.
fn owner(url: &[u8]) -> Option<u8> {
    let at = url.windows(3).position(|w| w == b"obj")?;
    url.get(at + 3).map(|d| (d - b'0') % 3)
}

#[test]
fn every_peer_answers_so_the_lookup_ends_without_waiting_for_the_deadline() {
    let a = cache("127.0.8.2:3130", false, |u| u.ends_with(b"/a"));
    let b = cache("127.0.8.3:3130", false, |u| u.ends_with(b"/a") || u.ends_with(b"/b"));
    let c = cache("127.0.8.4:3130", false, |_| false);
    // A deadline no test machine reaches: `complete` proves the early end.
    let cl = cluster(&[&a, &b, &c], Duration::from_secs(30));

    let o = run(&cl, b"http://localhost/wsgi/a").unwrap();
    assert!(o.complete, "{o:?}");
    let mut hits: Vec<String> = o.hit_list(&cl).unwrap().split_terminator(';').map(str::to_owned).collect();
    hits.sort();
    assert_eq!(hits, ["127.0.8.2", "127.0.8.3"]);
    assert_eq!(o.answered_ips(&cl).len(), 3);

    let o = run(&cl, b"http://localhost/wsgi/b").unwrap();
    assert_eq!(o.hit_list(&cl).as_deref(), Some("127.0.8.3;"));
    let o = run(&cl, b"http://localhost/wsgi/none").unwrap();
    assert_eq!(o.hit_list(&cl), None);
    assert!(o.complete && o.rejected.is_empty());
}

#[test]
fn a_silent_peer_is_waited_for_until_the_deadline_and_reported() {
    let a = cache("127.0.8.12:3130", false, |_| true);
    let hung = cache("127.0.8.13:3130", true, |_| true);
    let cl = cluster(&[&a, &hung], Duration::from_millis(30));
    let o = run(&cl, b"http://localhost/wsgi/x").unwrap();
    assert!(!o.complete);
    assert_eq!(o.silent, [1]);
    assert_eq!(o.hit_list(&cl).as_deref(), Some("127.0.8.12;"));
    assert!(o.elapsed >= o.timeout, "waited {:?}, less than the timeout", o.elapsed);
}

#[test]
fn concurrent_lookups_only_see_their_own_replies() {
    let caches = [
        cache("127.0.8.22:3130", false, |u| owner(u) == Some(0)),
        cache("127.0.8.23:3130", false, |u| owner(u) == Some(1)),
        cache("127.0.8.24:3130", false, |u| owner(u) == Some(2)),
    ];
    let cl = Arc::new(cluster(&caches.iter().collect::<Vec<_>>(), Duration::from_secs(5)));
    let workers: Vec<_> = (0..32)
        .map(|t| {
            let cl = cl.clone();
            thread::spawn(move || {
                for i in 0..50 {
                    let url = format!("http://localhost/wsgi/obj{}?client={t}&n={i}", (t + i) % 3);
                    let o = run(&cl, url.as_bytes()).unwrap();
                    let expected = format!("127.0.8.{};", 22 + (t + i) % 3);
                    assert_eq!(o.hit_list(&cl), Some(expected), "{url}");
                    assert!(o.rejected.is_empty(), "{url}: {:?}", o.rejected);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a lookup saw another lookup's reply");
    }
}

#[test]
fn a_url_too_long_for_icp_is_not_queried() {
    let a = cache("127.0.8.32:3130", false, |_| true);
    let cl = cluster(&[&a], Duration::from_secs(1));
    let url = format!("http://localhost/{}", "x".repeat(16_384));
    assert!(matches!(run(&cl, url.as_bytes()), Err(LookupError::Unqueryable(_))));
}

#[test]
fn keys_no_cache_can_hold_are_not_queried() {
    let a = cache("127.0.8.42:3130", false, |_| true);
    let cl = cluster(&[&a], Duration::from_secs(1));
    for key in [
        &b""[..],
        b"http://localhost/a b",
        b"http://localhost/a\r\nb",
        b"http://localhost/a\0b",
        b"http://localhost/\x7f",
    ] {
        assert!(matches!(run(&cl, key), Err(LookupError::NotAUrl)), "{key:?}");
    }
    // Bytes above 0x7f are not the module's to judge: caches answer them.
    assert_eq!(run(&cl, b"http://localhost/\xff").unwrap().hit_list(&cl).as_deref(), Some("127.0.8.42;"));
}

#[test]
fn a_closed_port_is_refused_by_icmp_at_once_and_the_others_still_answer() {
    let a = cache("127.0.8.52:3130", false, |_| true);
    let b = cache("127.0.8.54:3130", false, |_| false);
    let closed: SocketAddr = "127.0.8.53:3130".parse().unwrap();
    let mut cl = cluster(&[&a, &b], Duration::from_secs(30));
    cl.peers.insert(1, Peer::new("127.0.8.53", closed));
    for _ in 0..200 {
        let health = LocalHealth::new(3);
        let o = engine::run(&cl, health.view(), None, b"http://localhost/wsgi/x").unwrap();
        assert_eq!(o.refused.len(), 1, "{o:?}");
        assert!(o.unreachable.is_empty(), "{o:?}");
        assert_eq!(o.answered_ips(&cl).len(), 2, "{o:?}");
        assert!(o.complete, "nothing waits for the closed port: {o:?}");
    }
}
