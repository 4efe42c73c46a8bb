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
    engine::run(cl, engine::Shared::health(LocalHealth::new(cl.peers.len()).view()), url)
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
    // Half the threads open sockets per lookup, half share a pool, as a
    // module's threads do: neither may see another lookup's replies.
    let pool = Arc::new(engine::SocketPool::default());
    let workers: Vec<_> = (0..32)
        .map(|t| {
            let (cl, pool) = (cl.clone(), pool.clone());
            thread::spawn(move || {
                for i in 0..50 {
                    let url = format!("http://localhost/wsgi/obj{}?client={t}&n={i}", (t + i) % 3);
                    let health = LocalHealth::new(cl.peers.len());
                    let sockets = (t % 2 == 0).then_some(&*pool);
                    let shared = engine::Shared { health: health.view(), remember: None, sockets };
                    let o = engine::run(&cl, shared, url.as_bytes()).unwrap();
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
        let o = engine::run(&cl, engine::Shared::health(health.view()), b"http://localhost/wsgi/x").unwrap();
        assert_eq!(o.refused.len(), 1, "{o:?}");
        assert!(o.unreachable.is_empty(), "{o:?}");
        assert_eq!(o.answered_ips(&cl).len(), 2, "{o:?}");
        assert!(o.complete, "nothing waits for the closed port: {o:?}");
    }
}

/// Lookups that share a socket pool, as a module's do: a reply that comes
/// after its lookup ended reaches the next lookup on the same socket, which
/// neither takes it as an answer nor counts it as a forgery; an ICMP error
/// for an earlier query is not filed against the next lookup.
#[test]
fn pooled_sockets_never_hand_one_lookup_another_s_late_reply_or_icmp_error() {
    use std::net::UdpSocket;
    use std::sync::mpsc;
    let cache = UdpSocket::bind("127.0.8.62:3130").unwrap();
    let addr = cache.local_addr().unwrap();
    let (late_sent, late_was_sent) = mpsc::channel();
    let slow = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        // The first query is answered HIT only after its lookup gave up.
        let (n, from) = cache.recv_from(&mut buf).unwrap();
        let query = mod_icpquery::icp::Message::decode(&buf[..n]).unwrap();
        let (mut late, mut ontime) = (Vec::new(), Vec::new());
        query.reply(Opcode::Hit).encode(&mut late).unwrap();
        let (n, from2) = {
            // Wait for the second lookup's query before answering the first.
            cache.recv_from(&mut buf).unwrap()
        };
        cache.send_to(&late, from).unwrap();
        late_sent.send(()).unwrap();
        let second = mod_icpquery::icp::Message::decode(&buf[..n]).unwrap();
        second.reply(Opcode::Miss).encode(&mut ontime).unwrap();
        cache.send_to(&ontime, from2).unwrap();
    });
    let cl = Cluster {
        peers: vec![Peer::new("127.0.8.62", addr)],
        timeout: Timeout::Fixed(Duration::from_millis(50)),
        ..Cluster::default()
    };
    let pool = engine::SocketPool::default();
    let health = LocalHealth::new(1);
    let shared = engine::Shared { health: health.view(), remember: None, sockets: Some(&pool) };
    let first = engine::run(&cl, shared, b"http://localhost/wsgi/first").unwrap();
    assert_eq!((first.silent.as_slice(), first.replies.len()), (&[0][..], 0), "{first:?}");
    // The second lookup reuses the socket; the late HIT arrives on it first.
    let second = thread::scope(|s| {
        let lookup = s.spawn(|| {
            let cl = Cluster { timeout: Timeout::Fixed(Duration::from_secs(30)), ..cl.clone() };
            engine::run(&cl, shared, b"http://localhost/wsgi/second").unwrap()
        });
        late_was_sent.recv().unwrap();
        lookup.join().unwrap()
    });
    slow.join().unwrap();
    assert_eq!(second.replies.len(), 1, "{second:?}");
    assert_eq!(second.replies[0].opcode, Opcode::Miss, "the late HIT is not this lookup's answer: {second:?}");
    assert!(second.rejected.is_empty(), "a late reply is no forgery: {second:?}");
    assert_eq!(second.late, 1, "{second:?}");

    // ICMP: the first query goes to a closed port; its refusal may come
    // after the lookup ended, and must not be filed against the next one,
    // whose peer is open.
    let closed: SocketAddr = "127.0.8.63:3130".parse().unwrap();
    let open = cache_at("127.0.8.64:3130");
    let refused = Cluster { peers: vec![Peer::new("127.0.8.63", closed)], ..cl.clone() };
    let pool = engine::SocketPool::default();
    let health = LocalHealth::new(1);
    let shared = engine::Shared { health: health.view(), remember: None, sockets: Some(&pool) };
    let o = engine::run(&refused, shared, b"http://localhost/wsgi/x").unwrap();
    assert_eq!(o.refused.len(), 1, "{o:?}");
    let answering = Cluster { peers: vec![Peer::new("127.0.8.64", open.addr)], ..cl.clone() };
    let alive = LocalHealth::new(1);
    let shared = engine::Shared { health: alive.view(), ..shared };
    for _ in 0..50 {
        let o = engine::run(&answering, shared, b"http://localhost/wsgi/x").unwrap();
        assert!(o.refused.is_empty() && o.replies.len() == 1, "{o:?}");
    }
}

fn cache_at(addr: &str) -> Responder {
    cache(addr, false, |_| true)
}
