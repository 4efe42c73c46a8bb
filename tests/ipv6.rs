//! IPv6 caches next to IPv4 ones, through real httpd: the maps answer with
//! bracketed IPv6 addresses (usable in `http://%1:3128`), a closed IPv6
//! port is refused by ICMPv6 at once, and `icpqueryisrunning` takes IPv6
//! keys with or without brackets. Map values are read back from response
//! headers set by mod_headers.

mod support;

use mod_icpquery::icp::Opcode;
use support::httpd::{module_path, modules_dir, Httpd, HttpdOptions};
use support::responder::Responder;
use support::{Mpm, TestDir};

#[test]
fn ipv6_and_ipv4_caches_answer_side_by_side() {
    let holds_a = |url: &[u8]| Some(if url.ends_with(b"/a") { Opcode::Hit } else { Opcode::Miss });
    let _v6_hit = Responder::start("[::1]:31301", holds_a);
    let _v6_miss = Responder::start("[::1]:31302", |_| Some(Opcode::Miss));
    let _v4_hit = Responder::start("127.0.120.2:3130", holds_a);
    let portal_conf = format!(
        "LoadModule headers_module {modules}/mod_headers.so
LoadModule icpquery_module {module}
ICPQueryMapper On
ICPQueryPeer [::1]:31301
ICPQueryPeer [::1]:31302
ICPQueryPeer [::1]:31303
ICPQueryPeer 127.0.120.2
ICPQueryTimeout 5000000
ICPQueryProbeInterval 0
ICPQueryLog logs/icpquery.log
ICPQueryLogLevel 3
RewriteEngine On
RewriteMap icpquery int:icpquerymap
RewriteMap up       int:icpqueryisrunning
RewriteRule ^/map/(.*)$ - [E=HITS:${{icpquery:http://localhost/$1|none}}]
RewriteRule ^/up/(.*)$  - [E=UP:${{up:$1|NULL}}]
Header always set X-Hits \"%{{HITS}}e\"
Header always set X-Up \"%{{UP}}e\"
",
        modules = modules_dir().display(),
        module = module_path().display(),
    );
    let dir = TestDir::new("ipv6");
    let portal =
        Httpd::start(dir.path(), HttpdOptions { net: 120, mpm: Mpm::Event, portal_conf, module: module_path() });

    let r = portal.get("/map/a");
    let mut hits: Vec<&str> = r.header("X-Hits").unwrap_or("").split_terminator(';').collect();
    hits.sort();
    assert_eq!(hits, ["127.0.120.2", "[::1]"], "{r:?}");
    assert_eq!(portal.get("/map/b").header("X-Hits"), Some("none"));

    let log = portal.module_log();
    assert!(log.contains("ICP_OP_HIT from [::1]:31301 for \"http://localhost/a\""), "{log}");
    // The closed IPv6 port: ICMPv6 refuses it, nobody waits 5 s for it.
    assert!(log.contains("[::1]:31303 refused the query by ICMP"), "{log}");
    assert!(log.contains("cache [::1]:31303 is dead"), "{log}");
    for line in log.lines().filter(|l| l.contains("] query ")) {
        assert!(line.ends_with("every cache waited for answered"), "{line}");
    }

    // Without a lookup in the request, the shared health table answers.
    assert_eq!(portal.get("/up/::1").header("X-Up"), Some("::1"));
    assert_eq!(portal.get("/up/%5B::1%5D").header("X-Up"), Some("[::1]"));
    assert_eq!(portal.get("/up/127.0.120.2").header("X-Up"), Some("127.0.120.2"));
    assert_eq!(portal.get("/up/2001:db8::1").header("X-Up"), Some("NULL"), "not a configured cache");
}
