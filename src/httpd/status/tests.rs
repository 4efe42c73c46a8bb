use std::collections::HashMap;
use std::time::Duration;

use super::format::{self, escape_html, RegionView, ServerView};
use super::html;
use crate::engine::health::Counter;
use crate::engine::{Cluster, LocalHealth, Peer, RejectReason, Timeout};
use crate::icp::Opcode;

const S: u64 = 1_000_000;
pub(super) const NOW: u64 = 1_000 * S;

pub(super) fn cluster(hosts: &[&str]) -> Cluster {
    let peers = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| Peer::new(*host, format!("192.0.2.{}:3130", i + 1).parse().unwrap()))
        .collect();
    Cluster { peers, ..Cluster::default() }
}

pub(super) fn server(name: &str) -> ServerView {
    ServerView {
        name: name.into(),
        mapper: true,
        timeout: Timeout::Fixed(Duration::from_micros(50_000)),
        dead_time: Duration::from_secs(10),
    }
}

/// Peer 0: alive, two replies, one rejected datagram; peer 1: refused, dead,
/// never answered.
pub(super) fn health() -> LocalHealth {
    let health = LocalHealth::new(2);
    health.peers[0].count(Counter::Queries);
    health.peers[0].count(Counter::Queries);
    health.peers[0].record_reply(Opcode::Hit, Duration::from_micros(412), NOW - 3 * S);
    health.peers[0].record_reply(Opcode::Miss, Duration::from_micros(412), NOW - 3 * S);
    health.peers[0].count_reject(RejectReason::WrongUrl);
    health.peers[1].count(Counter::Queries);
    health.peers[1].record_refused(NOW - S, Duration::from_secs(10));
    health.cluster.lookups.store(7, std::sync::atomic::Ordering::Relaxed);
    health
}

fn parse(auto: &str) -> HashMap<&str, &str> {
    let mut map = HashMap::new();
    for line in auto.lines() {
        let (key, value) = line.split_once(": ").unwrap_or_else(|| panic!("not Key: value: {line:?}"));
        assert!(map.insert(key, value).is_none(), "key {key} twice");
    }
    map
}

#[test]
fn html_escaping() {
    assert_eq!(escape_html("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    assert_eq!(escape_html("cache-1.example"), "cache-1.example");
}

#[test]
fn auto_parses_back_into_the_records() {
    let (c, h) = (cluster(&["cache-a", "192.0.2.2"]), health());
    let regions = vec![RegionView::new(server("main server"), &c, h.view(), None)];
    let text = format::auto(&regions, NOW);
    let map = parse(&text);
    assert_eq!(map["Servers"], "1");
    assert_eq!(map["Server0Name"], "main server");
    assert_eq!(map["Server0Region"], "0");
    assert_eq!(map["Server0Mapper"], "on");
    assert_eq!(map["Server0Timeout"], "50000");
    assert_eq!(map["Server0DeadTimeSeconds"], "10");
    assert_eq!(map["Regions"], "1");
    assert_eq!(map["Region0Peers"], "2");
    assert_eq!(map["Region0Lookups"], "7");
    assert_eq!(map["Peers"], "2");
    assert_eq!(map["Peer0Host"], "cache-a");
    assert_eq!(map["Peer0Address"], "192.0.2.1:3130");
    assert_eq!(map["Peer0State"], "alive");
    assert_eq!(map["Peer0RttMicros"], "412");
    assert_eq!(map["Peer0LastReplyAgeSeconds"], "3");
    assert_eq!((map["Peer0Queries"], map["Peer0Hit"], map["Peer0Miss"]), ("2", "1", "1"));
    assert_eq!(map["Peer0Rejected_wrong_url"], "1");
    assert_eq!(map["Peer1State"], "dead");
    assert_eq!(map["Peer1RttMicros"], "0");
    assert_eq!(map["Peer1LastReplyAgeSeconds"], "never");
    assert_eq!((map["Peer1Icmp"], map["Peer1Deaths"]), ("1", "1"));
    let per_peer = 7 + Counter::ALL.len() + RejectReason::ALL.len();
    assert_eq!(map.len(), 1 + 5 + 1 + 8 + 1 + 2 * per_peer, "{text}");
    assert_eq!(map["Region0AnswersFromMemory"], "0", "no memory: zero");
}

#[test]
fn servers_and_regions_are_numbered_across_the_page() {
    let (c1, h1, c2, h2) = (cluster(&["a"]), LocalHealth::new(1), cluster(&["a", "b"]), LocalHealth::new(2));
    let mut first = RegionView::new(server("main server"), &c1, h1.view(), None);
    let auto = ServerView {
        timeout: Timeout::Auto { min: Duration::from_millis(1), max: Duration::from_secs(2) },
        ..server("b.test:8082")
    };
    first.servers.push(auto);
    let regions = vec![first, RegionView::new(server("c.test:8081"), &c2, h2.view(), None)];
    let text = format::auto(&regions, NOW);
    let map = parse(&text);
    assert_eq!((map["Servers"], map["Regions"], map["Peers"]), ("3", "2", "3"));
    assert_eq!((map["Server1Name"], map["Server1Region"]), ("b.test:8082", "0"));
    assert_eq!(map["Server1Timeout"], "auto 1000 2000000");
    assert_eq!((map["Server2Name"], map["Server2Region"]), ("c.test:8081", "1"));
    assert_eq!((map["Peer2Region"], map["Peer2Host"]), ("1", "b"));
}

#[test]
fn auto_values_stay_on_their_line() {
    let c = cluster(&["evil\nPeer0State: alive"]);
    let h = LocalHealth::new(1);
    let regions = vec![RegionView::new(server("x\r\ny"), &c, h.view(), None)];
    let text = format::auto(&regions, NOW);
    let map = parse(&text);
    assert_eq!(map["Peer0Host"], "evil\\x0aPeer0State: alive");
    assert_eq!(map["Server0Name"], "x\\x0d\\x0ay");
}

#[test]
fn html_escapes_every_configured_name() {
    let (c, h) = (cluster(&["<script>x</script>"]), LocalHealth::new(1));
    let regions = vec![RegionView::new(server("a&b.test:80"), &c, h.view(), None)];
    let page = html::html("portal<1>", &regions, NOW);
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("<b>&lt;script&gt;x&lt;/script&gt;</b>"), "{page}");
    assert!(page.contains("<h1>ICP query status for portal&lt;1&gt;</h1>"), "{page}");
    assert!(page.contains("<h2>Caches of a&amp;b.test:80</h2>"), "{page}");
    assert!(page.contains("<td class=\"name\">a&amp;b.test:80</td>"), "{page}");
    assert!(page.contains("<td class=\"n\">never</td>"), "{page}");
    let section = format::status_html(&regions);
    assert!(section.contains("Peers of a&amp;b.test:80: 1"), "{section}");
}

#[test]
fn html_rows_say_the_state_in_words_and_carry_the_counters() {
    let (c, h) = (cluster(&["cache-a", "192.0.2.2"]), health());
    let regions = vec![RegionView::new(server("main server"), &c, h.view(), None)];
    let page = html::html("portal", &regions, NOW);
    let alive =
        "<tr class=\"alive\"><td class=\"cache\"><b>cache-a</b> <span class=\"addr\">192.0.2.1:3130</span></td>\
                 <td class=\"n\">1</td><td class=\"st\"><span class=\"state alive\">alive</span></td>\
                 <td class=\"n\">0.41</td><td class=\"n\">3</td><td class=\"n\">2</td><td class=\"n\">50.0 %</td>\
                 <td class=\"n\">1</td><td class=\"n\">1</td>";
    assert!(page.contains(alive), "{page}");
    // One total of rejected datagrams, and the reasons only where some were.
    assert!(page.contains("<td class=\"n bad\">1</td></tr>\n<tr class=\"reasons\">"), "{page}");
    assert!(page.contains("Rejected from 192.0.2.1:3130: wrong URL 1</td>"), "{page}");
    assert_eq!(page.matches("class=\"reasons\"").count(), 1, "{page}");
    let dead = "<tr class=\"dead\"><td class=\"cache\"><b>192.0.2.2</b>";
    assert!(page.contains(dead), "{page}");
    assert!(
        page.contains("<span class=\"state dead\">dead</span></td><td class=\"n\">–</td><td class=\"n\">never</td>")
    );
    assert!(page.contains("<p class=\"summary\">2 caches in 1 set: <span class=\"bad\">1 dead</span>.</p>"), "{page}");
    assert!(page.contains("<td>50 ms</td><td>10 s</td>"), "{page}");
    // Heads are words with units, never ?auto's keys.
    for key in ["RttMicros", "LastReplyAgeSeconds", "MissNoFetch", "Rejected_", "Icmp<"] {
        assert!(!page.contains(key), "{key} in {page}");
    }
    for head in ["RTT<br>(ms)", "Last reply<br>(s ago)", "Hit ratio", "ICMP<br>errors", "Rejected<br>datagrams"] {
        assert!(page.contains(&format!(">{head}</th>")), "{head}: {page}");
    }
}

#[test]
fn durations_read_as_people_write_them() {
    let regions_with = |timeout: Timeout| {
        let (c, h) = (cluster(&["a"]), LocalHealth::new(1));
        let s = ServerView { timeout, ..server("main server") };
        html::html("p", &[RegionView::new(s, &c, h.view(), None)], NOW)
    };
    let auto = Timeout::Auto { min: Duration::from_micros(1_000), max: Duration::from_micros(2_500_000) };
    assert!(regions_with(auto).contains("<td>auto, 1 ms to 2.5 s</td>"));
    assert!(regions_with(Timeout::Fixed(Duration::from_micros(750))).contains("<td>750 µs</td>"));
    assert!(regions_with(Timeout::Fixed(Duration::from_micros(1_250))).contains("<td>1.25 ms</td>"));
}

#[test]
fn mod_status_lines() {
    let (c, h) = (cluster(&["cache-a", "192.0.2.2"]), health());
    let regions = vec![RegionView::new(server("main server"), &c, h.view(), None)];
    assert_eq!(format::status_short(&regions), "ICPQueryPeers: 2\nICPQueryPeersDead: 1\nICPQueryLookups: 7\n");
    let section = format::status_html(&regions);
    assert!(section.starts_with("<hr />\n<h2>mod_icpquery</h2>"), "{section}");
    assert!(section.contains("<dd>192.0.2.1:3130: alive, RTT 412 &micro;s</dd>"), "{section}");
    assert!(section.contains("<dd>192.0.2.2:3130: dead, RTT not measured</dd>"), "{section}");
}

/// `?auto` is read by scripts: its bytes are pinned, whatever the HTML
/// page becomes (keys are only ever added: the answer memory's came with
/// `ICPQueryRemember`).
#[test]
fn auto_is_pinned_byte_for_byte() {
    let (c, h) = (cluster(&["cache-a", "192.0.2.2"]), health());
    let regions = vec![RegionView::new(server("main server"), &c, h.view(), None)];
    let text = format::auto(&regions, NOW);
    assert_eq!(text, PINNED_AUTO, "{text}");
}

const PINNED_AUTO: &str = "\
Servers: 1\n\
Server0Name: main server\n\
Server0Region: 0\n\
Server0Mapper: on\n\
Server0Timeout: 50000\n\
Server0DeadTimeSeconds: 10\n\
Regions: 1\n\
Region0Peers: 2\n\
Region0Lookups: 7\n\
Region0Complete: 0\n\
Region0MulticastReplies: 0\n\
Region0UnknownSender: 0\n\
Region0AnswersFromMemory: 0\n\
Region0AnswersStored: 0\n\
Region0AnswersEvicted: 0\n\
Peers: 2\n\
Peer0Region: 0\n\
Peer0Host: cache-a\n\
Peer0Address: 192.0.2.1:3130\n\
Peer0Round: 1\n\
Peer0State: alive\n\
Peer0RttMicros: 412\n\
Peer0LastReplyAgeSeconds: 3\n\
Peer0Queries: 2\n\
Peer0Hit: 1\n\
Peer0Miss: 1\n\
Peer0MissNoFetch: 0\n\
Peer0Denied: 0\n\
Peer0Err: 0\n\
Peer0Icmp: 0\n\
Peer0Timeouts: 0\n\
Peer0Deaths: 0\n\
Peer0Remembered: 0\n\
Peer0Rejected_too_short: 0\n\
Peer0Rejected_too_long: 0\n\
Peer0Rejected_length_mismatch: 0\n\
Peer0Rejected_bad_version: 0\n\
Peer0Rejected_unknown_opcode: 0\n\
Peer0Rejected_url_not_terminated: 0\n\
Peer0Rejected_trailing_bytes: 0\n\
Peer0Rejected_object_length_mismatch: 0\n\
Peer0Rejected_not_a_reply: 0\n\
Peer0Rejected_wrong_request_number: 0\n\
Peer0Rejected_wrong_url: 1\n\
Peer0Rejected_duplicate: 0\n\
Peer1Region: 0\n\
Peer1Host: 192.0.2.2\n\
Peer1Address: 192.0.2.2:3130\n\
Peer1Round: 1\n\
Peer1State: dead\n\
Peer1RttMicros: 0\n\
Peer1LastReplyAgeSeconds: never\n\
Peer1Queries: 1\n\
Peer1Hit: 0\n\
Peer1Miss: 0\n\
Peer1MissNoFetch: 0\n\
Peer1Denied: 0\n\
Peer1Err: 0\n\
Peer1Icmp: 1\n\
Peer1Timeouts: 0\n\
Peer1Deaths: 1\n\
Peer1Remembered: 0\n\
Peer1Rejected_too_short: 0\n\
Peer1Rejected_too_long: 0\n\
Peer1Rejected_length_mismatch: 0\n\
Peer1Rejected_bad_version: 0\n\
Peer1Rejected_unknown_opcode: 0\n\
Peer1Rejected_url_not_terminated: 0\n\
Peer1Rejected_trailing_bytes: 0\n\
Peer1Rejected_object_length_mismatch: 0\n\
Peer1Rejected_not_a_reply: 0\n\
Peer1Rejected_wrong_request_number: 0\n\
Peer1Rejected_wrong_url: 0\n\
Peer1Rejected_duplicate: 0\n";
