//! `SetHandler icpquery-metrics`: the Prometheus exposition of a real
//! httpd in front of real Squids must pass `promtool check metrics`, say
//! what `?auto` says, and show a killed Squid's `icpquery_peer_up` go
//! from 1 to 0, and back to 1 once it runs again.
//!
//! promtool is required (Debian's "prometheus" package ships it; see
//! tests/deps.sh): without it the test fails and says so.
//!
//! Network 232: portal 127.0.232.1:8080, caches 127.0.232.2-4.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::httpd::HttpdOptions;
use support::{poll_until, Cluster, Mpm};

const NET: u8 = 232;
/// How long a state change may take to show; polled, never slept.
const SETTLE: Duration = Duration::from_secs(30);

fn portal_conf(dir: &std::path::Path) -> String {
    let seed = HttpdOptions::seed(dir, NET, Mpm::Event).portal_conf;
    format!(
        "RewriteRule ^/(icpquery-status|metrics)$ - [L]\n\
         <Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>\n\
         <Location /metrics>\n    SetHandler icpquery-metrics\n</Location>\n\
         {seed}\nICPQueryDeadTime 1\n"
    )
}

/// `promtool check metrics` on `text`: its complaints, empty when none.
fn promtool(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's \"prometheus\" package (apt-get install prometheus; \
                 tests/deps.sh lists it) and run the tests again"
            )
        });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.success() {
        true => said.trim().to_string(),
        false => format!("promtool failed ({}): {said}", out.status),
    }
}

/// The samples of the page: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l:?}"));
            (series.to_string(), value.parse().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        })
        .collect()
}

fn metrics(c: &Cluster) -> (String, HashMap<String, f64>) {
    let r = c.get("/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = r.body_text();
    let map = samples(&text);
    (text, map)
}

fn labels(host: Ipv4Addr) -> String {
    format!("set=\"main server\",peer=\"{host}:3130\"")
}

fn up(map: &HashMap<String, f64>, host: Ipv4Addr) -> f64 {
    let key = format!("icpquery_peer_up{{{}}}", labels(host));
    *map.get(&key).unwrap_or_else(|| panic!("no {key} in {map:?}"))
}

#[test]
fn promtool_accepts_the_page_it_agrees_with_auto_and_a_killed_squid_goes_down_and_up() {
    let mut c = Cluster::start_with(NET, Mpm::Event, portal_conf);
    let [_, h3, _] = c.hosts();
    for i in 0..6 {
        assert_eq!(c.get(&format!("/wsgi/metrics{i}")).status, 200);
    }

    // Read until two ?auto reads around the metrics agree (a probe may
    // count in between).
    let (text, map, auto) = poll_until(SETTLE, || {
        let before = support::parse_auto(&c.get("/icpquery-status?auto").body_text());
        let (text, map) = metrics(&c);
        let after = support::parse_auto(&c.get("/icpquery-status?auto").body_text());
        let stable = before.iter().all(|(k, v)| k.ends_with("LastReplyAgeSeconds") || after.get(k) == Some(v));
        stable.then_some((text, map, after))
    })
    .expect("the counters never stood still");
    assert_eq!(promtool(&text), "", "promtool check metrics:\n{text}");

    assert_eq!(map["icpquery_set_lookups_total{set=\"main server\"}"], auto["Region0Lookups"].parse::<f64>().unwrap());
    assert_eq!(
        map["icpquery_set_lookups_complete_total{set=\"main server\"}"],
        auto["Region0Complete"].parse::<f64>().unwrap()
    );
    assert_eq!(map["icpquery_server_info{server=\"main server\",set=\"main server\",mapper=\"on\"}"], 1.0);
    let peers: usize = auto["Peers"].parse().unwrap();
    assert_eq!(peers, 3);
    for n in 0..peers {
        let key = |k: &str| auto[&format!("Peer{n}{k}")].clone();
        let l = format!("set=\"main server\",peer=\"{}\"", key("Address"));
        let number = |k: &str| key(k).parse::<f64>().unwrap();
        assert_eq!(map[&format!("icpquery_peer_up{{{l}}}")], 1.0);
        assert_eq!(map[&format!("icpquery_peer_queries_total{{{l}}}")], number("Queries"));
        assert_eq!(map[&format!("icpquery_peer_replies_total{{{l},opcode=\"hit\"}}")], number("Hit"));
        assert_eq!(map[&format!("icpquery_peer_replies_total{{{l},opcode=\"miss\"}}")], number("Miss"));
        assert_eq!(map[&format!("icpquery_peer_timeouts_total{{{l}}}")], number("Timeouts"));
        assert_eq!(map[&format!("icpquery_peer_rejected_datagrams_total{{{l},reason=\"wrong_url\"}}")], 0.0);
        // Microseconds on the page, seconds here.
        let rtt = map[&format!("icpquery_peer_rtt_seconds{{{l}}}")];
        assert!((rtt * 1e6 - number("RttMicros")).abs() < 0.5, "{rtt} s vs {} µs", key("RttMicros"));
    }

    // Killed (SIGKILL, its port closed): 0 once a lookup has found out.
    c.cache_for_mut(h3).kill();
    let mut n = 0;
    let (text, _) = poll_until(SETTLE, || {
        n += 1;
        assert_eq!(c.get(&format!("/wsgi/while-killed{n}")).status, 200);
        let (text, map) = metrics(&c);
        (up(&map, h3) == 0.0).then_some((text, map))
    })
    .expect("the killed Squid never showed as down");
    assert_eq!(promtool(&text), "", "promtool check metrics:\n{text}");
    let map = samples(&text);
    assert!(map[&format!("icpquery_peer_deaths_total{{{}}}", labels(h3))] >= 1.0);
    assert!(map[&format!("icpquery_peer_icmp_errors_total{{{}}}", labels(h3))] >= 1.0);
    for host in c.hosts().into_iter().filter(|h| *h != h3) {
        assert_eq!(up(&map, host), 1.0, "{host}");
    }

    // Started again: 1 once it answers.
    c.cache_for_mut(h3).start_again();
    poll_until(SETTLE, || {
        n += 1;
        assert_eq!(c.get(&format!("/wsgi/after-restart{n}")).status, 200);
        (up(&metrics(&c).1, h3) == 1.0).then_some(())
    })
    .expect("the restarted Squid never showed as up again");
}
