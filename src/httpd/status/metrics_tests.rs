use std::collections::HashSet;

use super::format::RegionView;
use super::metrics::{escape_label, exposition};
use super::tests::{cluster, health, server, NOW};
use crate::engine::health::Counter;
use crate::engine::LocalHealth;

#[test]
fn label_values_are_escaped_as_the_format_says() {
    assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    assert_eq!(escape_label("192.0.2.1:3130"), "192.0.2.1:3130");
}

#[test]
fn the_records_numbers_are_exported() {
    let (c, h) = (cluster(&["cache-a", "192.0.2.2"]), health());
    let text = exposition(&[RegionView::new(server("main server"), &c, h.view(), None)]);
    let a = r#"set="main server",peer="192.0.2.1:3130""#;
    let b = r#"set="main server",peer="192.0.2.2:3130""#;
    for line in [
        format!("icpquery_peer_up{{{a}}} 1"),
        format!("icpquery_peer_up{{{b}}} 0"),
        format!("icpquery_peer_rtt_seconds{{{a}}} 0.000412"),
        format!("icpquery_peer_last_reply_timestamp_seconds{{{a}}} {}", (NOW - 3_000_000) / 1_000_000),
        format!("icpquery_peer_queries_total{{{a}}} 2"),
        format!("icpquery_peer_replies_total{{{a},opcode=\"hit\"}} 1"),
        format!("icpquery_peer_replies_total{{{a},opcode=\"miss\"}} 1"),
        format!("icpquery_peer_replies_total{{{b},opcode=\"miss_nofetch\"}} 0"),
        format!("icpquery_peer_icmp_errors_total{{{b}}} 1"),
        format!("icpquery_peer_deaths_total{{{b}}} 1"),
        format!("icpquery_peer_timeouts_total{{{b}}} 0"),
        format!("icpquery_peer_rejected_datagrams_total{{{a},reason=\"wrong_url\"}} 1"),
        format!("icpquery_peer_info{{{a},host=\"cache-a\",round=\"1\"}} 1"),
        "icpquery_set_lookups_total{set=\"main server\"} 7".to_string(),
        "icpquery_set_lookups_complete_total{set=\"main server\"} 0".to_string(),
        "icpquery_server_info{server=\"main server\",set=\"main server\",mapper=\"on\"} 1".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    // Not measured, never replied: no sample rather than a made-up value.
    assert!(!text.contains(&format!("icpquery_peer_rtt_seconds{{{b}}}")), "{text}");
    assert!(!text.contains(&format!("icpquery_peer_last_reply_timestamp_seconds{{{b}}}")), "{text}");
}

#[test]
fn families_follow_the_naming_rules_and_keep_their_samples_together() {
    let (c1, h1, c2, h2) = (cluster(&["a"]), LocalHealth::new(1), cluster(&["a", "b"]), health());
    let regions = vec![RegionView::new(server("main server"), &c1, h1.view(), None), {
        RegionView::new(server("x\"y\nz"), &c2, h2.view(), None)
    }];
    let text = exposition(&regions);
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(seen.insert(name.to_string()), "{name} typed twice");
            assert!(name.starts_with("icpquery_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}: counters and only they end in _total");
            typed.push((name.to_string(), kind.to_string()));
            current = name.to_string();
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(rest.len() > rest.split(' ').next().unwrap().len() + 10, "{line}");
        } else {
            let name = line.split('{').next().unwrap();
            assert_eq!(name, current, "a sample away from its family: {line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    // Label values never break a line: the hostile set name is escaped.
    assert!(text.contains(r#"icpquery_set_lookups_total{set="x\"y\nz"} 7"#), "{text}");
    // Every counter of the health record is exported, once.
    let per_peer: usize =
        text.lines().filter(|l| l.starts_with("icpquery_peer_") && l.contains("peer=\"192.0.2.1")).count();
    let expected = 1 + 1 + 1 + Counter::ALL.len() + crate::engine::RejectReason::ALL.len() + 1;
    assert_eq!(per_peer, 2 * expected - 2, "peer 192.0.2.1 twice (both sets), RTT and last reply only in the second");
}

#[test]
fn two_sets_named_alike_stay_apart() {
    let (c1, h1, c2, h2) = (cluster(&["a"]), LocalHealth::new(1), cluster(&["a", "b"]), LocalHealth::new(2));
    let regions = vec![
        RegionView::new(server("same.test:80"), &c1, h1.view(), None),
        RegionView::new(server("same.test:80"), &c2, h2.view(), None),
    ];
    let text = exposition(&regions);
    assert!(text.contains("icpquery_set_lookups_total{set=\"same.test:80\"} 0"), "{text}");
    assert!(text.contains("icpquery_set_lookups_total{set=\"same.test:80 (2)\"} 0"), "{text}");
}
