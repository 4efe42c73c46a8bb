//! Spoofing: a hostile sender on loopback floods the portal's query sockets
//! during real lookups. One configured cache (127.0.<net>.4:3130, its Squid
//! stopped) is a test-owned socket that, on every query it receives, first
//! fires a catalogue of forged and malformed datagrams at the query's source
//! port (from itself, from its address on port 3131 and from the non-peer
//! 127.0.<net>.9) and then answers with a genuine ICP_OP_MISS. The two real
//! Squids decide every route; the module must count every datagram the test
//! sent, by reason, on the status page and in its log.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::thread;
use std::time::Duration;

use mod_icpquery::icp::Opcode;
use support::hostile::{HostilePeer, Sent};
use support::httpd::{self, proxies_path_for, HttpdOptions};
use support::{host_ips, http, poll_until, Cluster, Mpm, SQUID_ICP_PORT};

/// Every reason the status page counts (README, *Status page*).
const REASONS: [&str; 12] = [
    "too_short",
    "too_long",
    "length_mismatch",
    "bad_version",
    "unknown_opcode",
    "url_not_terminated",
    "trailing_bytes",
    "object_length_mismatch",
    "not_a_reply",
    "wrong_request_number",
    "wrong_url",
    "duplicate",
];

const SETTLE: Duration = Duration::from_secs(20);

/// The seed's portal with the status page, no probes, and a timeout long
/// enough that a loaded machine never ends a lookup before the hostile peer's
/// reply (the catalogue must all be read while the lookup waits). The random
/// pick is limited to the two real Squids: the hostile peer has no HTTP
/// port, so a request routed to it would fail with 502.
fn portal_conf(dir: &Path, net: u8, mpm: Mpm) -> String {
    let seed = HttpdOptions::seed(dir, net, mpm).portal_conf;
    let [h2, h3, _] = host_ips(net);
    std::fs::write(proxies_path_for(dir), format!("squids {h2}|{h3}\n")).expect("write proxies.txt");
    let seed = httpd::with_timeout(&seed, 2_000_000);
    format!(
        "RewriteRule ^/icpquery-status$ - [L]\n\
         <Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>\n\
         {seed}\nICPQueryProbeInterval 0\n"
    )
}

fn auto(c: &Cluster) -> HashMap<String, String> {
    let r = c.get("/icpquery-status?auto");
    assert_eq!(r.status, 200, "{r:?}");
    support::parse_auto(&r.body_text())
}

fn num(map: &HashMap<String, String>, key: &str) -> u64 {
    map.get(key).unwrap_or_else(|| panic!("no {key} in {map:?}")).parse().unwrap_or_else(|_| panic!("{key}"))
}

/// The `Peer<n>` prefix of the main server's record for `host:3130`.
fn peer(map: &HashMap<String, String>, host: Ipv4Addr) -> String {
    let region = &map["Server0Region"];
    (0..num(map, "Peers"))
        .map(|n| format!("Peer{n}"))
        .find(|p| map[&format!("{p}Address")] == format!("{host}:3130") && &map[&format!("{p}Region")] == region)
        .unwrap_or_else(|| panic!("no peer {host}:3130 in the main server's region: {map:?}"))
}

fn warm(c: &Cluster, host: Ipv4Addr, path: &str) {
    assert_eq!(http::get(c.cache_for(host).http_addr(), path).status, 200);
    assert!(http::get(c.cache_for(host).http_addr(), path).is_hit(), "{path} not cached at {host}");
}

/// Counts of `dropped a datagram from <from>: … (<reason>)` in the module log.
fn dropped_in_log(log: &str) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let Some(rest) = line.split("dropped a datagram from ").nth(1) else { continue };
        let (from, msg) = rest.split_once(": ").unwrap_or_else(|| panic!("{line}"));
        let reason = msg.rsplit_once(" (").and_then(|(_, r)| r.strip_suffix(')')).unwrap_or_else(|| panic!("{line}"));
        *counts.entry((from.to_owned(), reason.to_owned())).or_default() += 1;
    }
    counts
}

fn spoofed_lookups_route_as_the_real_caches_say(net: u8, mpm: Mpm) {
    let mut c = Cluster::start_with(net, mpm, |dir| portal_conf(dir, net, mpm));
    let [h2, h3, h4] = c.hosts();
    // The third cache becomes the hostile one: same address and ICP port.
    c.cache_for_mut(h4).stop();
    let hostile_addr = SocketAddr::from((h4, SQUID_ICP_PORT));
    let hostile = HostilePeer::start(
        hostile_addr,
        SocketAddr::from((h4, SQUID_ICP_PORT + 1)),
        SocketAddr::from((Ipv4Addr::new(127, 0, net, 9), SQUID_ICP_PORT)),
        |_| Opcode::Miss,
    );

    // Objects each held by exactly one real Squid.
    let held: Vec<(String, Ipv4Addr)> = (0..6)
        .map(|i| {
            let host = if i % 2 == 0 { h2 } else { h3 };
            (format!("/wsgi/held{i}?spoof={i}"), host)
        })
        .collect();
    for (path, host) in &held {
        warm(&c, *host, path);
    }

    let mut lookups = 0u64;
    let mut expected_map: Vec<(String, String)> = Vec::new();
    let url = |path: &str| format!("http://localhost{path}");
    // Sequential: every held object twice, then fresh objects no cache holds.
    for round in 0..2 {
        for (path, host) in &held {
            let r = c.get(path);
            lookups += 1;
            let want = format!("HIT from {}", c.cache_for(*host).name());
            assert_eq!((r.status, r.x_cache()), (200, Some(want.as_str())), "{mpm:?} round {round} {path}: {r:?}");
            expected_map.push((url(path), format!("\"{host};\"")));
        }
    }
    let real_names = [c.cache_for(h2).name(), c.cache_for(h3).name()];
    let mut fresh = 0;
    let check_fresh = |c: &Cluster, path: &str, r: &http::Response| {
        // No cache holds it: the map says NULL, the random pick among the
        // real Squids takes it (a forged HIT accepted would send it to the
        // hostile peer's host, where nothing serves HTTP: 502).
        assert_eq!(r.status, 200, "{mpm:?} {path}: {r:?}");
        let name = r.cache_name().unwrap_or_else(|| panic!("{path} bypassed the caches: {r:?}"));
        assert!(real_names.iter().any(|n| n == name), "{path} served by {name}: {r:?}");
        assert_eq!(r.x_cache(), Some(format!("MISS from {name}").as_str()), "{path}: {r:?}");
        let _ = c;
    };
    for k in 0..8 {
        let path = format!("/wsgi/fresh{k}?spoof={k}");
        let r = c.get(&path);
        lookups += 1;
        fresh += 1;
        check_fresh(&c, &path, &r);
        expected_map.push((url(&path), "NULL (no cache has it)".to_owned()));
    }

    // Concurrent: several lookups flooded at once, each on its own socket.
    let portal = c.portal_addr();
    let held_ref = &held;
    let names: Vec<String> = held.iter().map(|(_, h)| format!("HIT from {}", c.cache_for(*h).name())).collect();
    let names_ref = &names;
    thread::scope(|s| {
        for client in 0..8 {
            s.spawn(move || {
                for k in 0..4 {
                    let i = (client + k) % held_ref.len();
                    let r = http::get(portal, &held_ref[i].0);
                    assert_eq!(r.status, 200, "{mpm:?} client {client}: {r:?}");
                    assert_eq!(r.x_cache(), Some(names_ref[i].as_str()), "{mpm:?} client {client} {}", held_ref[i].0);
                }
            });
        }
    });
    lookups += 32;
    for client in 0..8 {
        for k in 0..4 {
            let (path, host) = &held[(client + k) % held.len()];
            expected_map.push((url(path), format!("\"{host};\"")));
        }
    }
    assert_eq!(fresh, 8);

    // What the hostile peer sent: one catalogue and one MISS per lookup.
    let sent: Sent = hostile.sent();
    assert_eq!(sent.queries, lookups, "the hostile peer was asked once per lookup: {sent:?}");
    assert_eq!(sent.genuine.get("ICP_OP_MISS"), Some(&lookups));
    eprintln!("hostile peer sent, per reason: {:?}; from strangers: {:?}", sent.from_peer, sent.from_strangers);

    // The status page: exact counts per reason.
    let map = poll_until(SETTLE, || {
        let map = auto(&c);
        (num(&map, "Region0Lookups") == lookups).then_some(map)
    })
    .unwrap_or_else(|| panic!("Region0Lookups never reached {lookups}: {:?}", auto(&c)));
    let region = &map["Server0Region"];
    assert_eq!(num(&map, &format!("Region{region}Complete")), lookups, "every lookup ended on its replies: {map:?}");
    assert_eq!(
        num(&map, &format!("Region{region}UnknownSender")),
        sent.strangers_total(),
        "forged datagrams from non-peers: {map:?}"
    );
    let p4 = peer(&map, h4);
    for reason in REASONS {
        let want = sent.from_peer.get(reason).copied().unwrap_or(0);
        assert_eq!(num(&map, &format!("{p4}Rejected_{reason}")), want, "{p4} ({h4}) Rejected_{reason}: {map:?}");
    }
    assert_eq!(num(&map, &format!("{p4}Queries")), lookups);
    assert_eq!(num(&map, &format!("{p4}Miss")), lookups, "its genuine MISS counted once per lookup");
    for key in ["Hit", "MissNoFetch", "Denied", "Err", "Icmp", "Timeouts", "Deaths"] {
        assert_eq!(num(&map, &format!("{p4}{key}")), 0, "{p4}{key}: {map:?}");
    }
    assert_eq!(map[&format!("{p4}State")], "alive");
    for host in [h2, h3] {
        let p = peer(&map, host);
        for reason in REASONS {
            assert_eq!(num(&map, &format!("{p}Rejected_{reason}")), 0, "{host} {reason}");
        }
        assert_eq!(num(&map, &format!("{p}Queries")), lookups, "{host}");
        assert_eq!(num(&map, &format!("{p}Timeouts")), 0, "{host}");
        assert_eq!(map[&format!("{p}State")], "alive", "{host}");
    }
    let held_at = |h: Ipv4Addr| expected_map.iter().filter(|(_, v)| *v == format!("\"{h};\"")).count() as u64;
    assert_eq!(num(&map, &format!("{}Hit", peer(&map, h2))), held_at(h2));
    assert_eq!(num(&map, &format!("{}Hit", peer(&map, h3))), held_at(h3));

    // The module log: one line per dropped datagram, with sender and reason,
    // and every map decision exactly as the real Squids answered.
    let mut want_log: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (reason, n) in &sent.from_peer {
        want_log.insert((hostile_addr.to_string(), reason.to_string()), *n);
    }
    for (from, n) in &sent.from_strangers {
        want_log.insert((from.to_string(), "unknown_sender".to_owned()), *n);
    }
    let httpd = c.httpd();
    let log = poll_until(SETTLE, || {
        let log = httpd.module_log();
        (dropped_in_log(&log) == want_log).then_some(log)
    })
    .unwrap_or_else(|| {
        panic!(
            "the module log's dropped datagrams differ from what was sent:\nlogged {:?}\nsent   {want_log:?}\nlog: {}",
            dropped_in_log(&httpd.module_log()),
            httpd.module_log_path().display()
        )
    });
    let mut want_decisions: BTreeMap<String, u64> = BTreeMap::new();
    for (u, v) in &expected_map {
        *want_decisions.entry(format!("icpquerymap \"{u}\" -> {v}")).or_default() += 1;
    }
    let mut decisions: BTreeMap<String, u64> = BTreeMap::new();
    for line in log.lines() {
        if let Some(i) = line.find("icpquerymap \"") {
            *decisions.entry(line[i..].to_owned()).or_default() += 1;
        }
    }
    assert_eq!(decisions, want_decisions, "map decisions");
    assert!(!log.contains(&format!("ICP_OP_HIT from {h4}")), "a forged HIT was accepted:\n{log}");
    assert!(!log.contains("ICP_OP_HIT_OBJ from"), "a forged HIT_OBJ was accepted:\n{log}");
    assert!(!log.contains("no reply from"), "{log}");
    assert!(log.contains("ICP message of 20000 bytes exceeds"), "an oversized datagram is logged by its real size");
}

#[test]
fn spoofed_replies_are_dropped_and_counted_event_mpm() {
    spoofed_lookups_route_as_the_real_caches_say(110, Mpm::Event);
}

#[test]
fn spoofed_replies_are_dropped_and_counted_prefork_mpm() {
    spoofed_lookups_route_as_the_real_caches_say(111, Mpm::Prefork);
}

#[test]
fn spoofed_replies_are_dropped_and_counted_worker_mpm() {
    spoofed_lookups_route_as_the_real_caches_say(112, Mpm::Worker);
}
