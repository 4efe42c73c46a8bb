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
