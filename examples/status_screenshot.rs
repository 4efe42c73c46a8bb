//! The status page as `docs/status.png` shows it: the seed's setup with a
//! virtual host sharing the main server's caches, a cache group with a
//! hostile fourth cache (every kind of malformed or forged reply before
//! each genuine one, so its rejected datagrams show their reasons), some
//! traffic, and one Squid stopped so that it shows as dead. Headless
//! Chromium then photographs `/icpquery-status` at 1280 px wide.
//!
//!     examples/status-screenshot.sh [OUTPUT.png]     (default docs/status.png)
//!
//! Everything it started is stopped at the end (and on Ctrl-C).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mod_icpquery::icp::Opcode;
use support::hostile::HostilePeer;
use support::httpd::HttpdOptions;
use support::{http, poll_until, Cluster, Mpm, TestDir};

const NET: u8 = 239;

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs/status.png".into()));
    let addr = |last: u8, port: u16| SocketAddr::from(([127, 0, NET, last], port));
    let hostile = HostilePeer::start(addr(5, 3130), addr(5, 3131), addr(6, 3130), |_| Opcode::Miss);
    let mut c = Cluster::start_with(NET, Mpm::Event, |dir| {
        let seed = HttpdOptions::seed(dir, NET, Mpm::Event).portal_conf;
        let [h2, h3, _] = support::host_ips(NET);
        format!(
            "RewriteRule ^/icpquery-status$ - [L]\n\
             <Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>\n\
             {seed}\nICPQueryDeadTime 2\nICPQueryProbeInterval 1\n\
             <ICPQueryGroup media>\n    ICPQueryPeer {h2}:3130 weight=2\n    ICPQueryPeer {h3}:3130\n    \
             ICPQueryPeer 127.0.{NET}.5:3130\n    ICPQueryTimeout 20000\n</ICPQueryGroup>\n\
             RewriteMap media int:icpquerymap:media\n\
             RewriteRule ^/media/(.*)$ ${{media:http://localhost/media/$1|none}} [L]\n\
             Listen 127.0.{NET}.1:8081\n\
             <VirtualHost 127.0.{NET}.1:8081>\n    ServerName www.example.test\n</VirtualHost>\n"
        )
    });
    let [h2, _, h4] = c.hosts();
    println!("portal http://{}/icpquery-status", c.portal_addr());

    // Traffic: objects fetched twice (a MISS, then a HIT at the cache that
    // holds it), and lookups of the group.
    for i in 0..24 {
        let path = format!("/wsgi/object{}", i % 12);
        assert_eq!(c.get(&path).status, 200, "{path}");
        let _ = c.get(&format!("/media/clip{i}"));
    }
    // Stop one Squid; lookups find its port closed, and it shows as dead.
    c.cache_for_mut(h4).stop();
    let dead = poll_until(Duration::from_secs(30), || {
        let _ = c.get("/wsgi/after-stop");
        let auto = support::parse_auto(&c.get("/icpquery-status?auto").body_text());
        let peers: usize = auto["Peers"].parse().unwrap();
        (0..peers)
            .any(|n| {
                auto[&format!("Peer{n}Address")] == format!("{h4}:3130") && auto[&format!("Peer{n}State")] == "dead"
            })
            .then_some(())
    });
    dead.expect("the stopped Squid never showed as dead");
    assert!(http::get(c.cache_for(h2).http_addr(), "/wsgi/object0").status == 200);
    println!("the hostile cache sent {} queries' worth of bad datagrams", hostile.sent().queries);

    let profile = TestDir::new("chromium-profile");
    let url = format!("http://{}/icpquery-status", c.portal_addr());
    let status = support::headless_chromium(profile.path(), 1280, 1080)
        .arg(format!("--screenshot={}", std::path::absolute(&out).unwrap().display()))
        .arg(&url)
        .status()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}): apt-get install chromium"));
    assert!(status.success(), "chromium: {status}");
    println!("wrote {}", out.display());
    c.shutdown();
}
