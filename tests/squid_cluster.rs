//! The Squid side of the seed's setup, without the module: origins and
//! Squid accelerators from conf/squid-accel.conf, checked over HTTP and ICP
//! the way a user would check them.
//!
//! Each test uses its own network number (127.0.<net>.x) so they can run in
//! parallel.

mod support;

use std::time::Instant;

use support::http;
use support::{Cluster, Opcode};

/// What the portal's seed rule asks for: "http://localhost" + path + "?" + query.
fn seed_key(path_and_query: &str) -> String {
    format!("http://localhost{path_and_query}")
}

#[test]
fn direct_get_is_a_miss_from_the_origin_then_a_hit() {
    let c = Cluster::start_caches(201);
    let [h2, _, _] = c.hosts();
    let squid2 = c.cache_for(h2);

    // The request carries "Host: 127.0.201.2:3128", as mod_proxy sends it;
    // no-vhost makes Squid ignore it.
    let first = http::get(squid2.http_addr(), "/wsgi/a?x=1");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.x_cache(), Some("MISS from squid2"));
    assert_eq!(first.x_origin(), Some(h2.to_string().as_str()));
    assert_eq!(first.body_text(), format!("origin {h2} /wsgi/a?x=1\n"));
    assert_eq!(c.origin_for(h2).requests("/wsgi/a?x=1"), 1);

    let again = http::get(squid2.http_addr(), "/wsgi/a?x=1");
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.x_cache(), Some("HIT from squid2"));
    assert_eq!(again.body, first.body);
    assert_eq!(c.origin_for(h2).requests("/wsgi/a?x=1"), 1, "the HIT must not reach the origin");

    // A different query string is a different object.
    let other = http::get(squid2.http_addr(), "/wsgi/a?x=2");
    assert_eq!(other.x_cache(), Some("MISS from squid2"));
    assert_eq!(c.origin_for(h2).requests("/wsgi/a"), 2);
    assert_eq!(c.origin_total(), 2, "no other origin was asked");
}

#[test]
fn icp_answers_hit_only_where_the_object_is_cached() {
    let c = Cluster::start_caches(202);
    let [h2, h3, h4] = c.hosts();
    let (squid2, squid3, squid4) = (c.cache_for(h2), c.cache_for(h3), c.cache_for(h4));

    assert_eq!(squid2.icp_query(&seed_key("/wsgi/a?x=1")), Some(Opcode::Miss), "nothing fetched yet");
    assert_eq!(http::get(squid2.http_addr(), "/wsgi/a?x=1").x_cache(), Some("MISS from squid2"));

    // The seed's key finds the object in squid2 and nowhere else.
    assert_eq!(squid2.icp_query(&seed_key("/wsgi/a?x=1")), Some(Opcode::Hit));
    assert_eq!(squid3.icp_query(&seed_key("/wsgi/a?x=1")), Some(Opcode::Miss));
    assert_eq!(squid4.icp_query(&seed_key("/wsgi/a?x=1")), Some(Opcode::Miss));
    // Never fetched anywhere.
    assert_eq!(squid2.icp_query(&seed_key("/wsgi/never?x=1")), Some(Opcode::Miss));
    assert_eq!(squid2.icp_query(&seed_key("/wsgi/a?x=2")), Some(Opcode::Miss));

    // Without a query string the key has none either (the seed appends
    // "?query" only when there is one).
    assert_eq!(http::get(squid3.http_addr(), "/wsgi/b").x_cache(), Some("MISS from squid3"));
    assert_eq!(squid3.icp_query(&seed_key("/wsgi/b")), Some(Opcode::Hit));
    assert_eq!(squid2.icp_query(&seed_key("/wsgi/b")), Some(Opcode::Miss));
}

/// Squid 5 looks an ICP query up by the exact URL string: the store key of
/// an accelerated object is "http://localhost/<path>?<query>" (defaultsite,
/// no port) and other spellings of the same URL do not find it.
#[test]
fn icp_key_is_the_exact_defaultsite_url() {
    let c = Cluster::start_caches(203);
    let [h2, _, _] = c.hosts();
    let squid2 = c.cache_for(h2);
    assert_eq!(http::get(squid2.http_addr(), "/wsgi/k?x=1").x_cache(), Some("MISS from squid2"));

    assert_eq!(squid2.icp_query("http://localhost/wsgi/k?x=1"), Some(Opcode::Hit));
    for other in [
        "http://localhost:80/wsgi/k?x=1",
        "http://localhost:3128/wsgi/k?x=1",
        &format!("http://{h2}:3128/wsgi/k?x=1"),
        "http://LOCALHOST/wsgi/k?x=1",
        "http://localhost/wsgi/k",
        "http://localhost/wsgi/k?x=1&",
    ] {
        assert_eq!(squid2.icp_query(other), Some(Opcode::Miss), "{other}");
    }
}

#[test]
fn a_stopped_squid_does_not_answer_icp_until_started_again() {
    let mut c = Cluster::start_caches(204);
    let [h2, h3, _] = c.hosts();
    assert_eq!(http::get(c.cache_for(h2).http_addr(), "/wsgi/s?x=1").x_cache(), Some("MISS from squid2"));
    assert_eq!(c.cache_for(h2).icp_query(&seed_key("/wsgi/s?x=1")), Some(Opcode::Hit));

    let t = Instant::now();
    c.cache_for_mut(h2).stop();
    eprintln!("squid2 stopped in {:?}", t.elapsed());
    let squid2 = c.cache_for(h2);
    assert!(!squid2.is_running());
    assert_eq!(squid2.icp_query(&seed_key("/wsgi/s?x=1")), None, "a stopped Squid must not answer");
    assert!(http::try_get(squid2.http_addr(), "/wsgi/s?x=1").is_err(), "HTTP port must be closed");
    // The others are unaffected.
    assert_eq!(c.cache_for(h3).icp_query(&seed_key("/wsgi/s?x=1")), Some(Opcode::Miss));

    let t = Instant::now();
    c.cache_for_mut(h2).start_again();
    eprintln!("squid2 started again in {:?}", t.elapsed());
    let squid2 = c.cache_for(h2);
    assert!(squid2.is_running());
    // Answers again; the memory-only cache starts empty.
    assert_eq!(squid2.icp_query(&seed_key("/wsgi/s?x=1")), Some(Opcode::Miss));
    assert_eq!(http::get(squid2.http_addr(), "/wsgi/s?x=1").x_cache(), Some("MISS from squid2"));
    assert_eq!(squid2.icp_query(&seed_key("/wsgi/s?x=1")), Some(Opcode::Hit));
}

#[test]
fn a_killed_squid_stops_answering_at_once() {
    let mut c = Cluster::start_caches(205);
    let [_, _, h4] = c.hosts();
    assert_eq!(c.cache_for(h4).icp_query(&seed_key("/wsgi/x")), Some(Opcode::Miss));
    c.cache_for_mut(h4).kill();
    assert!(!c.cache_for(h4).is_running());
    assert_eq!(c.cache_for(h4).icp_query(&seed_key("/wsgi/x")), None);
    c.cache_for_mut(h4).start_again();
    assert_eq!(c.cache_for(h4).icp_query(&seed_key("/wsgi/x")), Some(Opcode::Miss));
}
