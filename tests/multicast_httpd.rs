//! `ICPQueryMCastAddr`, `ICPQueryMCastHops` and `ICPQueryBindAddr` in real
//! httpd, run inside a network namespace of the test's own (the test thread
//! enters it, so httpd and its children start inside). Three group members
//! answer; the map's value comes back in a response header.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use support::httpd::{module_path, modules_dir, Httpd, HttpdOptions};
use support::netns::{member, Netns, MEMBERS, QUERIER};
use support::{Mpm, TestDir};

/// The second member holds every URL, the others none.
const HOLDS: [fn(&[u8]) -> bool; 3] = [|_| false, |_| true, |_| false];

#[test]
fn the_portal_asks_a_multicast_group_with_its_ttl_from_its_bind_address() {
    let ns = Netns::create("mch");
    ns.enter();
    let stop = Arc::new(AtomicBool::new(false));
    let joined = Arc::new(Barrier::new(MEMBERS.len() + 1));
    let members: Vec<_> =
        MEMBERS.iter().enumerate().map(|(i, a)| member(&ns.0, *a, HOLDS[i], stop.clone(), joined.clone())).collect();
    joined.wait();

    let portal_conf = format!(
        "LoadModule headers_module {modules}/mod_headers.so
LoadModule icpquery_module {module}
ICPQueryMapper On
ICPQueryMCastAddr 239.255.77.1:3130
ICPQueryMCastHops 2
ICPQueryBindAddr {QUERIER}
ICPQueryTimeout 1000000
ICPQueryProbeInterval 0
ICPQueryLog logs/icpquery.log
ICPQueryLogLevel 3
RewriteEngine On
RewriteMap icpquery int:icpquerymap
RewriteRule ^/map/(.*)$ - [E=HITS:${{icpquery:http://localhost/$1|none}}]
Header always set X-Hits \"%{{HITS}}e\"
",
        modules = modules_dir().display(),
        module = module_path().display(),
    );
    let dir = TestDir::new("mcast-httpd");
    let mut portal =
        Httpd::start(dir.path(), HttpdOptions { net: 150, mpm: Mpm::Event, portal_conf, module: module_path() });
    // The first lookup counts the group's members (waits its timeout), the
    // second ends when all three have answered.
    let first = portal.get("/map/clip");
    let second = portal.get("/map/clip");
    let log = portal.module_log();
    portal.stop();
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Vec<(SocketAddr, u8)>> = members.into_iter().map(|m| m.join().expect("a member failed")).collect();

    assert_eq!(first.header("X-Hits"), Some("10.77.0.3;"), "{first:?}");
    assert_eq!(second.header("X-Hits"), Some("10.77.0.3;"), "{second:?}");
    for queries in &seen {
        assert_eq!(queries.len(), 2, "every member got both queries: {seen:?}");
        for (from, ttl) in queries {
            assert_eq!(from.ip(), IpAddr::V4(QUERIER), "sent from ICPQueryBindAddr");
            assert_eq!(*ttl, 2, "ICPQueryMCastHops on the wire");
        }
    }
    assert!(log.contains("ICP_OP_HIT from 10.77.0.3:3130 (multicast)"), "{log}");
    let queries: Vec<&str> = log.lines().filter(|l| l.contains("] query ")).collect();
    assert_eq!(queries.len(), 2, "{log}");
    assert!(!queries[0].ends_with("answered"), "the first lookup learns by waiting: {}", queries[0]);
    assert!(queries[1].ends_with("every cache waited for answered"), "{}", queries[1]);
}
