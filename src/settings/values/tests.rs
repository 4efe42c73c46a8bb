//! Every parser's accepted forms and refusals, word for word.

use super::*;
use crate::settings::resolve::TableResolver;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Names resolve from a table: "cache-host" only.
fn peer(value: &str) -> Result<Peer, ValueError> {
    super::peer(value, &TableResolver::new(&[("cache-host", IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77)))]))
}

fn mcast_group(value: &str) -> Result<SocketAddr, ValueError> {
    super::mcast_group(value, &TableResolver::default())
}

fn bind_addr(value: &str) -> Result<IpAddr, ValueError> {
    super::bind_addr(value, &TableResolver::new(&[("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST))]))
}

#[test]
fn timeout_takes_microseconds() {
    assert_eq!(timeout("50000"), Ok(Timeout::Fixed(Duration::from_micros(50_000))));
    assert_eq!(timeout(" 1 "), Ok(Timeout::Fixed(Duration::from_micros(1))));
    assert_eq!(timeout("60000000"), Ok(Timeout::Fixed(Duration::from_secs(60))));
    assert_eq!(timeout("auto"), Ok(Timeout::Auto { min: Duration::from_millis(1), max: Duration::from_secs(2) }));
    assert_eq!(
        timeout("Auto 500 20000"),
        Ok(Timeout::Auto { min: Duration::from_micros(500), max: Duration::from_micros(20_000) })
    );
}

#[test]
fn timeout_refuses_negative_zero_huge_and_words() {
    for (v, problem) in [
        ("-5", "negative"),
        ("abc", "not a number"),
        ("", "not a number"),
        ("0", "out of range"),
        ("60000001", "out of range"),
        ("1.5", "not a number"),
    ] {
        let e = timeout(v).unwrap_err();
        assert_eq!(e.problem, problem, "{v}");
        let text = e.to_string();
        assert!(text.starts_with(&format!("ICPQueryTimeout \"{v}\"")), "{text}");
        assert!(text.contains("microseconds"), "{text}");
    }
}

#[test]
fn auto_timeout_refusals() {
    assert_eq!(timeout("auto 5000 1000").unwrap_err().problem, "the least wait is longer than the longest");
    assert_eq!(timeout("auto 1").unwrap_err().problem, "wrong number of words");
    assert_eq!(timeout("auto 0 100").unwrap_err().problem, "out of range");
    assert!(timeout("auto x 100").unwrap_err().to_string().contains("\"auto\" optionally followed by"));
}

#[test]
fn dead_time_and_probe_interval() {
    assert_eq!(dead_time("10"), Ok(Duration::from_secs(10)));
    assert_eq!(dead_time("0").unwrap_err().problem, "out of range");
    assert!(dead_time("ten").unwrap_err().to_string().starts_with("ICPQueryDeadTime \"ten\": not a number"));
    assert_eq!(probe_interval("0"), Ok(Duration::ZERO));
    assert_eq!(probe_interval("5"), Ok(Duration::from_secs(5)));
    assert_eq!(probe_interval("-1").unwrap_err().problem, "not a number");
}

#[test]
fn peer_options() {
    assert_eq!(peer("192.0.2.1:3130").unwrap().round, 1);
    assert_eq!(peer("192.0.2.1:3130 round=2").unwrap().round, 2);
    assert_eq!(peer("192.0.2.1  round=1").unwrap().round, 1);
    let e = peer("192.0.2.1 round=3").unwrap_err();
    assert_eq!(e.problem, "round \"3\" is not 1 or 2");
    assert!(e.to_string().starts_with("ICPQueryPeer \"192.0.2.1 round=3\""), "{e}");
    assert_eq!(peer("192.0.2.1 colour=blue").unwrap_err().problem, "unknown option \"colour=blue\"");
    assert_eq!(peer("192.0.2.1 round").unwrap_err().problem, "unknown option \"round\"");
    let p = peer("192.0.2.1 weight=3 name=cache-a").unwrap();
    assert_eq!((p.weight, p.carp_name()), (3, "cache-a"));
    assert_eq!(peer("192.0.2.1 weight=0").unwrap().weight, 0);
    assert_eq!(peer("192.0.2.1").unwrap().carp_name(), "192.0.2.1");
    assert_eq!(peer("192.0.2.1 weight=-1").unwrap_err().problem, "weight \"-1\" is not a whole number from 0 to 65535");
    assert_eq!(
        peer("192.0.2.1 weight=65536").unwrap_err().problem,
        "weight \"65536\" is not a whole number from 0 to 65535"
    );
    assert_eq!(peer("192.0.2.1 name=").unwrap_err().problem, "name is empty");
}

#[test]
fn carp_variants() {
    use crate::engine::carp::Variant;
    assert_eq!(carp_variant("squid"), Ok(Variant::Squid));
    assert_eq!(carp_variant("Draft"), Ok(Variant::Draft));
    assert!(carp_variant("ketama").unwrap_err().to_string().starts_with("ICPQueryCARP \"ketama\": not a CARP variant"));
}

#[test]
fn log_level_is_0_to_3() {
    for v in 0..=3u8 {
        assert_eq!(log_level(&v.to_string()), Ok(v));
    }
    for v in ["4", "-1", "debug", "256"] {
        let e = log_level(v).unwrap_err().to_string();
        assert!(e.starts_with(&format!("ICPQueryLogLevel \"{v}\"")) && e.contains("0 (problems)"), "{e}");
    }
}

#[test]
fn hops_is_1_to_255() {
    assert_eq!(mcast_hops("1"), Ok(1));
    assert_eq!(mcast_hops("255"), Ok(255));
    for v in ["0", "256", "x", "-3"] {
        assert!(mcast_hops(v).unwrap_err().to_string().contains("1 to 255"), "{v}");
    }
}

#[test]
fn peer_forms() {
    let p = peer("192.0.2.1:3131").unwrap();
    assert_eq!((p.host.as_str(), p.addr), ("192.0.2.1", "192.0.2.1:3131".parse().unwrap()));
    assert_eq!(peer("192.0.2.1").unwrap().addr.port(), 3130);
    assert_eq!(peer("[::1]:4000").unwrap().addr, SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 4000));
    assert_eq!(peer("[::1]").unwrap().addr.port(), 3130);
    assert_eq!(peer("::1").unwrap().addr, SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 3130));
    let named = peer("cache-host:3131 weight=2").unwrap();
    assert_eq!(named.host, "cache-host");
    assert_eq!(named.addr, "192.0.2.77:3131".parse().unwrap());
}

#[test]
fn peer_refusals_name_directive_value_and_expectation() {
    for (v, problem) in [
        ("192.0.2.1:0", "port out of range"),
        ("192.0.2.1:65536", "port out of range"),
        ("192.0.2.1:http", "port is not a number"),
        (":3130", "no host"),
        ("[::1", "unclosed '['"),
        ("[::1]x", "junk after ']'"),
        ("239.1.1.1:3130", "not a unicast address"),
    ] {
        let e = peer(v).unwrap_err();
        assert_eq!(e.problem, problem, "{v}");
        assert!(e.to_string().starts_with(&format!("ICPQueryPeer \"{v}\"")), "{e}");
    }
    let e = peer("no-such-host.invalid").unwrap_err();
    assert_eq!(e.problem, "cannot resolve host \"no-such-host.invalid\" (Name or service not known)");
}

#[test]
fn mcast_group_must_be_multicast() {
    assert_eq!(mcast_group("238.255.255.253").unwrap(), "238.255.255.253:3130".parse().unwrap());
    assert_eq!(mcast_group("[ff15::1234]:3131").unwrap(), "[ff15::1234]:3131".parse().unwrap());
    let e = mcast_group("192.0.2.1:3130").unwrap_err();
    assert_eq!(e.problem, "not a multicast address");
    assert!(e.to_string().contains("ICPQueryMCastAddr \"192.0.2.1:3130\""));
}

#[test]
fn control_characters_in_values_are_shown_escaped() {
    let e = timeout("1\n2").unwrap_err().to_string();
    assert!(!e.contains('\n') && e.contains("1\\n2"), "{e}");
}

#[test]
fn bind_addr_forms() {
    assert_eq!(bind_addr("127.0.0.1"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(bind_addr("[::1]"), Ok(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(bind_addr("localhost"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(bind_addr("no-such-host.invalid").is_err());
}

#[test]
fn remember_takes_seconds_and_entries() {
    assert_eq!(remember("5"), Ok((Duration::from_secs(5), None)));
    assert_eq!(remember("0"), Ok((Duration::ZERO, None)));
    assert_eq!(remember(" 10 100000 "), Ok((Duration::from_secs(10), Some(100_000))));
    for (v, problem) in [
        ("", "not a number"),
        ("-1", "not a number"),
        ("3601", "out of range"),
        ("5 8", "entries out of range"),
        ("5 many", "entries is not a number"),
        ("5 10 20", "wrong number of words"),
    ] {
        let e = remember(v).unwrap_err();
        assert_eq!(e.problem, problem, "{v}");
        assert!(e.to_string().starts_with(&format!("ICPQueryRemember \"{v}\"")), "{e}");
    }
}

#[test]
fn balancer_port_and_key() {
    assert_eq!(balancer_port("3131"), Ok(3131));
    assert_eq!(balancer_port("0").unwrap_err().problem, "out of range");
    assert_eq!(balancer_port("icp").unwrap_err().problem, "not a number");
    assert_eq!(balancer_key("Host"), Ok(KeyPrefix::RequestHost));
    assert_eq!(balancer_key("HTTP://www.example.org:8080"), Ok(KeyPrefix::Fixed("http://www.example.org:8080".into())));
    for v in ["localhost", "http://", "http://a/b", "://a", "http://a b"] {
        let e = balancer_key(v).unwrap_err().to_string();
        assert!(e.starts_with(&format!("ICPQueryBalancerKey \"{v}\"")) && e.contains("http://localhost"), "{e}");
    }
}

#[test]
fn mapper_is_on_or_off() {
    assert_eq!(mapper("On"), Ok(true));
    assert_eq!(mapper("off"), Ok(false));
    assert_eq!(mapper("yes"), Err("ICPQueryMapper must be On or Off".to_string()));
}

#[test]
fn log_targets() {
    let under_root = |p: &str| Some(std::path::Path::new("/srv/httpd").join(p));
    assert_eq!(log_target("logs/icp.log", &under_root), Ok(LogTarget::File("/srv/httpd/logs/icp.log".into())));
    assert_eq!(log_target("|rotatelogs x 86400", &under_root), Ok(LogTarget::Pipe("rotatelogs x 86400".into())));
    assert_eq!(log_target("|$cat", &under_root), Ok(LogTarget::Pipe("$cat".into())));
    assert_eq!(log_target("||", &under_root).unwrap_err().problem, "no program after the |");
    assert_eq!(log_target("x", &|_| None).unwrap_err().problem, "not a usable file path");
}

#[test]
fn group_names() {
    assert_eq!(group_name(" media-1_b>"), Ok("media-1_b"));
    assert_eq!(
        group_name("a b>").unwrap_err(),
        "<ICPQueryGroup a b>: not a group name; expected <ICPQueryGroup name> with a name of letters, digits, \
         '-' and '_'"
    );
    assert!(group_name(">").is_err());
}
