//! Keys built from what clients send: control characters and bytes that
//! are not UTF-8 reach the module through mod_rewrite's `$1` (already
//! %-decoded). None may crash httpd or forge a line of the module's log.

mod support;

use support::{Cluster, Mpm};

/// Every line has the module's own prefix: `<UTC timestamp> [icpquery:N] [pid N] `.
fn assert_every_line_is_genuine(log: &str) {
    for line in log.lines() {
        let (stamp, rest) = line.split_once(' ').unwrap_or(("", ""));
        let well_formed = stamp.len() == 27
            && stamp.as_bytes()[4] == b'-'
            && stamp.as_bytes()[10] == b'T'
            && stamp.ends_with('Z')
            && rest.starts_with("[icpquery:")
            && rest[10..].starts_with(|c: char| ('0'..='3').contains(&c))
            && rest[11..].starts_with("] [pid ");
        assert!(well_formed, "a line the module did not write: {line:?}");
        assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "unescaped byte in {line:?}");
    }
}

#[test]
fn hostile_urls_never_crash_or_forge_log_lines() {
    let c = Cluster::start(31, Mpm::Event);
    let forged = "/wsgi/a%0d%0a2026-01-01T00:00:00.000000Z%20[icpquery:0]%20[pid%201]%20forged";
    let r = c.get(forged);
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.get("/wsgi/%ff%fe%80?q=%0a");
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.get("/wsgi/tab%09and%1bescape%7f");
    assert_eq!(r.status, 200, "{r:?}");
    // httpd itself refuses an encoded NUL in the path before any rewriting.
    let r = c.get("/wsgi/nul%00byte");
    assert!((400..500).contains(&r.status), "{r:?}");
    // A long key (httpd's request line limit is 8190 bytes) is queried normally.
    let long = format!("/wsgi/{}", "x".repeat(7000));
    assert_eq!(c.get(&long).status, 200);

    assert!(c.httpd().is_running());
    let log = c.httpd().module_log();
    assert_every_line_is_genuine(&log);
    // Squid cannot parse such a key and answers for another URL, so it is
    // not even sent: no request waits out the timeout for it.
    assert!(log.contains("icpquerymap \"http://localhost/wsgi/a\\x0d\\x0a2026-01-01T00:00:00.000000Z [icpquery:0] [pid 1] forged\": not queried"), "{log}");
    assert!(log.contains("icpquerymap \"http://localhost/wsgi/\\xff\\xfe\\x80?q=%0a\""), "{log}");
    assert!(log.contains("wsgi/tab\\x09and\\x1bescape\\x7f"), "{log}");
    // No reply was dropped as being for another URL, whatever the bytes.
    assert!(!log.contains("dropped a datagram"), "{log}");
}

/// Keys of 8 KiB and 100 KiB through httpd (request lines allowed up to
/// 200,000 bytes here): the first fits an ICP message and is asked, the
/// second does not, so it is not queried, gives NULL, and is logged once per
/// request. (Squid itself refuses URLs over 8,192 bytes over HTTP with 400
/// ERR_INVALID_URL; that answer is Squid's, passed on by the portal.)
#[test]
fn keys_of_8_and_100_kib_are_asked_or_refused_once_per_request() {
    let c = Cluster::start_with(32, Mpm::Event, |dir| {
        // A long timeout: the 8 KiB key must be answered, even on a loaded machine.
        let seed = support::httpd::with_timeout(
            &support::httpd::HttpdOptions::seed(dir, 32, Mpm::Event).portal_conf,
            2_000_000,
        );
        format!("LimitRequestLine 200000\n{seed}\nICPQueryProbeInterval 0\n")
    });
    let (e8k, h100k) = ("e".repeat(8 * 1024), "h".repeat(100 * 1024));
    let r = c.get(&format!("/wsgi/{e8k}"));
    assert!(r.x_cache().is_some(), "routed to a cache that answered: {:?}", r.headers);
    for _ in 0..2 {
        let r = c.get(&format!("/wsgi/{h100k}"));
        assert!((200..600).contains(&r.status), "{}", r.status);
    }
    assert!(c.httpd().is_running());
    let log = c.httpd().module_log();
    assert_every_line_is_genuine(&log);
    let about = |key: &str| log.lines().filter(move |l| l.contains(key)).collect::<Vec<_>>();
    let asked = about(&e8k);
    assert!(
        asked.iter().any(|l| l.contains("] query ") && l.ends_with("every cache waited for answered")),
        "{asked:?}"
    );
    let refused = about(&h100k[..1000]);
    let problems: Vec<_> = refused.iter().filter(|l| l.contains("[icpquery:0]")).collect();
    assert_eq!(problems.len(), 2, "one problem line per request: {problems:?}");
    assert!(problems.iter().all(|l| l.contains("URL cannot be queried")), "{problems:?}");
    assert!(!refused.iter().any(|l| l.contains("] query ")), "the 100 KiB key was never sent");
    assert_eq!(refused.iter().filter(|l| l.contains("-> NULL (no cache has it)")).count(), 2);
}
