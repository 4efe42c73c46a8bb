//! The status page (`SetHandler icpquery-status`, `?auto`) and the section
//! in mod_status's `server-status`, read as an operator would: with real
//! httpd, real Squids and real traffic through the seed's rules.

mod support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use support::httpd::{modules_dir, HttpdOptions};
use support::{http, poll_until, Cluster, Mpm};

/// How long a state change may take to show; polled, never slept.
const SETTLE: Duration = Duration::from_secs(30);

/// The seed's portal configuration with the status pages kept out of the
/// seed's rewriting, `extra` appended after it, and mod_status loaded when
/// asked. (The pages also work without the exclusion: the seed's last rule
/// maps them into DOCUMENT_ROOT, but `SetHandler` in `<Location>` still
/// applies; the rule keeps them independent of whatever rules follow.)
fn portal_conf(dir: &Path, net: u8, with_mod_status: bool, extra: &str) -> String {
    let seed = HttpdOptions::seed(dir, net, Mpm::Event).portal_conf;
    let load_status = match with_mod_status {
        true => format!("LoadModule status_module {}/mod_status.so", modules_dir().display()),
        false => String::new(),
    };
    format!(
        "{load_status}\n\
         RewriteRule ^/(icpquery-status|server-status)$ - [L]\n\
         <Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>\n\
         <Location /server-status>\n    SetHandler server-status\n</Location>\n\
         {seed}\n{extra}\n"
    )
}

/// `GET path`: 200 with `content_type`; the body as text.
fn page(c: &Cluster, path: &str, content_type: &str) -> String {
    let r = c.get(path);
    assert_eq!(r.status, 200, "{path}: {r:?}");
    assert_eq!(r.header("Content-Type"), Some(content_type), "{path}");
    r.body_text()
}

fn auto(c: &Cluster) -> HashMap<String, String> {
    support::parse_auto(&page(c, "/icpquery-status?auto", "text/plain; charset=utf-8"))
}

/// The `Peer<n>` prefix of the main server's record for the Squid on `host`.
fn peer(map: &HashMap<String, String>, host: Ipv4Addr) -> String {
    let region = &map["Server0Region"];
    assert_eq!(map["Server0Name"], "main server");
    let peers: usize = map["Peers"].parse().unwrap();
    (0..peers)
        .map(|n| format!("Peer{n}"))
        .find(|p| map[&format!("{p}Address")] == format!("{host}:3130") && &map[&format!("{p}Region")] == region)
        .unwrap_or_else(|| panic!("no peer {host}:3130 in the main server's region: {map:?}"))
}

fn value(map: &HashMap<String, String>, peer: &str, key: &str) -> String {
    map.get(&format!("{peer}{key}")).unwrap_or_else(|| panic!("no {peer}{key} in {map:?}")).clone()
}

fn count(map: &HashMap<String, String>, peer: &str, key: &str) -> u64 {
    value(map, peer, key).parse().unwrap_or_else(|_| panic!("{peer}{key} is not a number"))
}

/// Fetches `path` straight from the Squid on `host`, twice: it then holds it.
fn warm(c: &Cluster, host: Ipv4Addr, path: &str) {
    assert_eq!(http::get(c.cache_for(host).http_addr(), path).status, 200);
    assert!(http::get(c.cache_for(host).http_addr(), path).is_hit(), "{path} not cached at {host}");
}

#[test]
fn the_page_lists_every_peer_with_its_counters_and_auto_says_the_same() {
    let net = 40;
    let extra = format!(
        "Listen 127.0.{net}.1:8081\nListen 127.0.{net}.1:8082\n\
         <VirtualHost 127.0.{net}.1:8081>\n    ServerName extra.test\n    ICPQueryPeer 127.0.{net}.5:3130\n</VirtualHost>\n\
         <VirtualHost 127.0.{net}.1:8082>\n    ServerName same.test\n</VirtualHost>\n"
    );
    let c = Cluster::start_with(net, Mpm::Event, |dir| portal_conf(dir, net, false, &extra));
    let hosts = c.hosts();
    for (i, &host) in hosts.iter().enumerate() {
        warm(&c, host, &format!("/wsgi/held{i}"));
        let r = c.get(&format!("/wsgi/held{i}"));
        assert_eq!(r.x_cache(), Some(format!("HIT from {}", c.cache_for(host).name()).as_str()), "{r:?}");
        assert_eq!(c.get(&format!("/wsgi/new{i}")).status, 200);
    }

    // The counters move only with traffic (and a background probe, if
    // any): read until two ?auto reads around the HTML page agree.
    let (map, html) = poll_until(SETTLE, || {
        let before = auto(&c);
        let html = page(&c, "/icpquery-status", "text/html; charset=utf-8");
        let after = auto(&c);
        let stable = before.iter().all(|(k, v)| k.ends_with("LastReplyAgeSeconds") || after.get(k) == Some(v));
        stable.then_some((after, html))
    })
    .expect("the counters never stood still");

    // Two regions: the main server's, shared by the virtual host that only
    // inherits its peers, and the one with an extra peer.
    assert_eq!((map["Servers"].as_str(), map["Regions"].as_str(), map["Peers"].as_str()), ("3", "2", "7"), "{map:?}");
    assert_eq!((map["Server1Name"].as_str(), map["Server1Region"].as_str()), ("same.test:8082", "0"));
    assert_eq!((map["Server2Name"].as_str(), map["Server2Region"].as_str()), ("extra.test:8081", "1"));
    assert_eq!((map["Server0Mapper"].as_str(), map["Server0Timeout"].as_str()), ("on", "50000"));
    assert!(html.contains("<h2>Caches of main server, same.test:8082</h2>"), "{html}");
    assert!(html.contains("<h2>Caches of extra.test:8081</h2>"), "{html}");
    assert!(map["Region0Lookups"].parse::<u64>().unwrap() >= 6, "{map:?}");
    assert_eq!((map["Region0Peers"].as_str(), map["Region1Peers"].as_str()), ("3", "4"));

    let tables = support::html::tables(&html, "caches");
    let rows: Vec<_> = tables[0].rows.iter().filter(|r| r.class != "reasons").collect();
    assert_eq!(rows.len(), 3, "{html}");
    for host in hosts {
        let p = peer(&map, host);
        assert_eq!(value(&map, &p, "State"), "alive", "{host}");
        assert!(count(&map, &p, "Queries") >= 6, "{host}: {map:?}");
        assert!(count(&map, &p, "Hit") >= 1, "{host}: {map:?}");
        assert!(count(&map, &p, "Miss") >= 1, "{host}: {map:?}");
        assert!(count(&map, &p, "RttMicros") > 0, "{host}");
        assert_ne!(value(&map, &p, "LastReplyAgeSeconds"), "never", "{host}");
        let row = rows.iter().find(|r| r.get("Cache").ends_with(&format!(" {host}:3130"))).expect("a row per peer");
        assert_eq!(row.get("Cache"), format!("{} {host}:3130", value(&map, &p, "Host")));
        let heads = [
            ("Round", "Round"),
            ("State", "State"),
            ("Queries", "Queries"),
            ("HIT", "Hit"),
            ("MISS", "Miss"),
            ("ICMP errors", "Icmp"),
            ("Timeouts", "Timeouts"),
            ("Deaths", "Deaths"),
        ];
        for (head, key) in heads {
            assert_eq!(row.get(head), value(&map, &p, key), "{host} {head}: the page and ?auto disagree");
        }
        let rtt_ms: f64 = row.get("RTT (ms)").parse().unwrap();
        assert!((rtt_ms * 1000.0 - count(&map, &p, "RttMicros") as f64).abs() <= 5.0, "{host}: RTT {rtt_ms} ms");
        let rejected: u64 = map
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{p}Rejected_")))
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .sum();
        assert_eq!(row.get("Rejected datagrams"), rejected.to_string(), "{host}: one total");
    }
    // The virtual host's region: the three Squids and its own peer, where
    // nothing listens.
    let nobody = tables[1].rows.iter().find(|r| r.get("Cache").ends_with(&format!("127.0.{net}.5:3130")));
    assert_eq!(nobody.expect("extra peer").get("Last reply (s ago)"), "never");
}

#[test]
fn a_stopped_squid_is_shown_dead_and_alive_again_once_it_is_back() {
    let net = 41;
    let mut c = Cluster::start_with(net, Mpm::Event, |dir| portal_conf(dir, net, false, "ICPQueryDeadTime 1"));
    let [_, h3, _] = c.hosts();
    assert_eq!(c.get("/wsgi/before").status, 200);
    let p = peer(&auto(&c), h3);
    assert_eq!(value(&auto(&c), &p, "State"), "alive");

    c.cache_for_mut(h3).stop();
    let mut n = 0;
    let map = poll_until(SETTLE, || {
        n += 1;
        let r = c.get(&format!("/wsgi/while-stopped{n}"));
        assert_eq!(r.status, 200, "{r:?}");
        let map = auto(&c);
        (value(&map, &p, "State") == "dead").then_some(map)
    })
    .expect("the stopped Squid never showed as dead");
    assert!(count(&map, &p, "Icmp") >= 1, "its closed port is refused by ICMP: {map:?}");
    assert!(count(&map, &p, "Deaths") >= 1);
    for host in c.hosts().into_iter().filter(|h| *h != h3) {
        assert_eq!(value(&map, &peer(&map, host), "State"), "alive", "{host}");
    }

    c.cache_for_mut(h3).start_again();
    let map = poll_until(SETTLE, || {
        n += 1;
        let r = c.get(&format!("/wsgi/after-restart{n}"));
        assert_eq!(r.status, 200, "{r:?}");
        let map = auto(&c);
        (value(&map, &p, "State") == "alive").then_some(map)
    })
    .expect("the restarted Squid never showed as alive again");
    assert_ne!(value(&map, &p, "LastReplyAgeSeconds"), "never");
    let log = c.httpd().module_log();
    assert!(log.contains(&format!("cache {h3}:3130 is alive again")), "{log}");
}

#[test]
fn mod_status_shows_the_module_section_and_methods_are_checked() {
    let net = 42;
    let c = Cluster::start_with(net, Mpm::Event, |dir| portal_conf(dir, net, true, ""));
    for i in 0..4 {
        assert_eq!(c.get(&format!("/wsgi/status{i}")).status, 200);
    }

    let html = page(&c, "/server-status", "text/html; charset=ISO-8859-1");
    assert!(html.contains("<h2>mod_icpquery</h2>"), "{html}");
    assert!(html.contains("<dt>Peers of main server: 3</dt>"), "{html}");
    for host in c.hosts() {
        assert!(html.contains(&format!("<dd>{host}:3130: alive, RTT ")), "{host}: {html}");
    }
    let text = page(&c, "/server-status?auto", "text/plain; charset=ISO-8859-1");
    let lines: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(": ")).collect();
    assert_eq!(lines.get("ICPQueryPeers"), Some(&"3"), "{text}");
    assert_eq!(lines.get("ICPQueryPeersDead"), Some(&"0"), "{text}");
    let lookups: u64 = lines["ICPQueryLookups"].parse().unwrap();
    assert!(lookups >= 4, "{text}");

    // GET and HEAD only; the page is not in the way of anything else.
    let head = http::request(c.portal_addr(), "HEAD", "/icpquery-status", &[]).unwrap();
    assert_eq!((head.status, head.header("Content-Type")), (200, Some("text/html; charset=utf-8")));
    let post = http::request(c.portal_addr(), "POST", "/icpquery-status", &[("Content-Length", "0")]).unwrap();
    assert_eq!(post.status, 405, "{post:?}");
    assert!(post.header("Allow").is_some_and(|a| a.contains("GET")), "{post:?}");
    assert_eq!(c.get("/index.html").status, 200);
    let other = page(&c, "/icpquery-status?format=auto", "text/html; charset=utf-8");
    assert!(other.contains("<h1>ICP query status for portal42.test</h1>"), "{other}");
}
