//! Peer health with real httpd and real Squids: a stopped cache is known
//! dead from the first request (ICMP) and a hung one after a few lookups
//! that the other caches answered; neither is waited for afterwards, and
//! both come back when they answer again. Waits are counted in the
//! module's own log.

mod support;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::httpd::{with_timeout, HttpdOptions};
use support::{poll_until, Cluster, Mpm};

/// The seed configuration with no background probes, so every query in the
/// log comes from a request, and a 1 s timeout: the tests count which
/// lookups waited for whom, and a live Squid on a loaded machine (these
/// tests run beside the load test) must not miss the seed's 50 ms.
fn seed_with(net: u8, extra: &'static str) -> Cluster {
    Cluster::start_with(net, Mpm::Event, move |dir| {
        let seed = with_timeout(&HttpdOptions::seed(dir, net, Mpm::Event).portal_conf, 1_000_000);
        format!("{seed}\nICPQueryProbeInterval 0\n{extra}\n")
    })
}

/// The module log's query lines ("query … timeout …: … in … us…").
fn query_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("] query ")).collect()
}

#[test]
fn a_stopped_cache_is_dead_from_the_first_request_and_revives_when_it_answers() {
    let mut c = seed_with(70, "ICPQueryDeadTime 1");
    let [_, h3, _] = c.hosts();
    let path = "/wsgi/kept-at-3";
    let warmed = support::http::get(c.cache_for(h3).http_addr(), path);
    assert_eq!(warmed.status, 200);
    c.cache_for_mut(h3).stop();

    for n in 0..10 {
        let r = c.get(&format!("/wsgi/while-down{n}"));
        assert_eq!(r.status, 200, "{r:?}");
    }
    let log = c.httpd().module_log();
    assert_eq!(log.matches(&format!("cache {h3}:3130 is dead: its host refused the query (ICMP)")).count(), 1, "{log}");
    let queries = query_lines(&log);
    assert_eq!(queries.len(), 10);
    for q in &queries {
        assert!(q.ends_with("every cache waited for answered"), "a lookup waited for the stopped cache: {q}");
    }
    assert!(queries[1..].iter().all(|q| q.contains("1 not asked") || q.contains("1 dead peer(s) probed")), "{log}");

    c.cache_for_mut(h3).start_again();
    // A dead cache is asked again once a second: requests bring that about,
    // and its answer revives it.
    let revived = poll_until(Duration::from_secs(15), || {
        c.get("/wsgi/after-restart");
        c.httpd().module_log().contains(&format!("cache {h3}:3130 is alive again")).then_some(())
    });
    assert!(revived.is_some(), "{}", c.httpd().module_log());
    assert!(c.httpd().error_log().contains(&format!("cache {h3}:3130 is alive again")), "notice in the error log");
}

#[test]
fn a_hung_cache_is_waited_for_only_a_few_lookups_and_used_again_when_it_answers() {
    // The default dead time (10 s): a hung cache must cost far fewer lookups.
    let mut c = seed_with(71, "");
    let [_, _, h4] = c.hosts();
    c.cache_for_mut(h4).stop();
    // Takes datagrams, never answers.
    let hung = UdpSocket::bind((h4, 3130)).expect("bind the hung peer's ICP port");
    hung.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let received = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if hung.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let hung_line =
            format!("cache {h4}:3130 is dead: it did not answer 3 lookups in a row that other caches answered");
        for n in 0..3 {
            assert_eq!(c.get(&format!("/wsgi/during-hang{n}")).status, 200);
        }
        let before = c.httpd().module_log();
        assert!(before.contains(&hung_line), "dead after three lookups, not after the dead time:\n{before}");
        let waited = query_lines(&before).iter().filter(|q| !q.ends_with("answered")).count();
        assert_eq!(waited, 3, "exactly the three lookups that found it hung waited for it:\n{before}");

        let at_death = received.load(Ordering::Relaxed);
        let window = Instant::now();
        for n in 0..20 {
            assert_eq!(c.get(&format!("/wsgi/after-death{n}")).status, 200);
        }
        let elapsed = window.elapsed();
        let log = c.httpd().module_log();
        let after = &query_lines(&log)[query_lines(&before).len()..];
        assert_eq!(after.len(), 20);
        for q in after {
            assert!(q.ends_with("every cache waited for answered"), "a lookup waited for the dead cache: {q}");
        }
        // Revival queries: at most one a second while dead.
        let probes = received.load(Ordering::Relaxed) - at_death;
        assert!(probes as u64 <= elapsed.as_secs() + 1, "{probes} queries in {elapsed:?}");
        stop.store(true, Ordering::Relaxed);
    });
    drop(hung);

    // It answers again: the next revival query (requests bring one a second)
    // hears it, and what it holds is served from it again.
    c.cache_for_mut(h4).start_again();
    let kept = "/wsgi/kept-at-4";
    assert_eq!(support::http::get(c.cache_for(h4).http_addr(), kept).status, 200);
    let alive = format!("cache {h4}:3130 is alive again");
    let revived = poll_until(Duration::from_secs(15), || {
        c.get("/wsgi/after-recovery");
        c.httpd().module_log().contains(&alive).then_some(())
    });
    assert!(revived.is_some(), "{}", c.httpd().module_log());
    let r = c.get(kept);
    assert_eq!((r.status, r.cache_name()), (200, Some("squid4")), "{r:?}");
}

#[test]
fn graceful_restarts_under_load_lose_no_request() {
    let mut c = seed_with(72, "");
    let portal = c.portal_addr();
    let stop = AtomicBool::new(false);
    let (done, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    thread::scope(|s| {
        for client in 0..8 {
            let (stop, done, failed) = (&stop, &done, &failed);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match support::http::try_get(portal, &format!("/wsgi/load{}?c={client}", n % 20)) {
                        Ok(r) if r.status == 200 => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    n += 1;
                }
            });
        }
        for _ in 0..3 {
            let before = done.load(Ordering::Relaxed);
            assert!(poll_until(Duration::from_secs(20), || (done.load(Ordering::Relaxed) > before + 50).then_some(()))
                .is_some());
            c.httpd_mut().graceful_restart();
        }
        let before = done.load(Ordering::Relaxed);
        assert!(poll_until(Duration::from_secs(20), || (done.load(Ordering::Relaxed) > before + 50).then_some(()))
            .is_some());
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} requests failed of {}",
        failed.load(Ordering::Relaxed),
        done.load(Ordering::Relaxed)
    );
    let log = c.httpd().module_log();
    // A loaded Squid may answer late (that costs the request the timeout,
    // not its success); a datagram meant for another lookup never arrives.
    assert!(!log.contains("dropped a datagram"), "{log}");
    assert!(c.httpd().error_log().matches("resuming normal operations").count() >= 4);
}
