//! `ICPQueryMCastAddr`, `ICPQueryMCastHops` and `ICPQueryBindAddr` in real
//! httpd, IPv4 and IPv6, run inside a network namespace of the test's own
//! (the test thread enters it, so httpd and its children start inside).
//! Three group members answer on the bound address's link, while multicast
//! routes by default to a decoy link; the map's value comes back in a
//! response header. (Linux picks an IPv4 multicast interface from the bound
//! source address by itself; for IPv6 only IPV6_MULTICAST_IF does.)

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mod_icpquery::engine::ip_text;
use support::httpd::{module_path, modules_dir, Httpd, HttpdOptions};
use support::netns::{members, Net, Netns, V4, V6};
use support::{Mpm, TestDir};

/// The second member holds every URL, the others none.
const HOLDS: [fn(&[u8]) -> bool; 3] = [|_| false, |_| true, |_| false];

fn the_portal_asks_a_multicast_group_with_its_ttl_from_its_bind_address(net: Net, label: &str) {
    let ns = Netns::create(label);
    ns.enter();
    let stop = Arc::new(AtomicBool::new(false));
    let members = members(&ns.0, net, HOLDS, &stop);

    let portal_conf = format!(
        "LoadModule headers_module {modules}/mod_headers.so
LoadModule icpquery_module {module}
ICPQueryMapper On
ICPQueryMCastAddr {group}:3130
ICPQueryMCastHops 2
ICPQueryBindAddr {querier}
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
        group = ip_text(net.group),
        querier = net.querier,
    );
    let dir = TestDir::new(&format!("{label}-httpd"));
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

    let hit = ip_text(net.members[1]);
    assert_eq!(first.header("X-Hits"), Some(format!("{hit};").as_str()), "{first:?}");
    assert_eq!(second.header("X-Hits"), Some(format!("{hit};").as_str()), "{second:?}");
    for queries in &seen {
        assert_eq!(queries.len(), 2, "every member got both queries: {seen:?}");
        for (from, ttl) in queries {
            assert_eq!(from.ip(), net.querier, "sent from ICPQueryBindAddr, by its interface");
            assert_eq!(*ttl, 2, "ICPQueryMCastHops on the wire");
        }
    }
    assert!(log.contains(&format!("ICP_OP_HIT from {hit}:3130 (multicast)")), "{log}");
    let queries: Vec<&str> = log.lines().filter(|l| l.contains("] query ")).collect();
    assert_eq!(queries.len(), 2, "{log}");
    assert!(!queries[0].ends_with("answered"), "the first lookup learns by waiting: {}", queries[0]);
    assert!(queries[1].ends_with("every cache waited for answered"), "{}", queries[1]);
}

#[test]
fn the_portal_asks_an_ipv4_group() {
    the_portal_asks_a_multicast_group_with_its_ttl_from_its_bind_address(V4, "mch4");
}

#[test]
fn the_portal_asks_an_ipv6_group() {
    the_portal_asks_a_multicast_group_with_its_ttl_from_its_bind_address(V6, "mch6");
}
