//! The HTML status page as a person reads it, from a real httpd in front
//! of real Squids: every cache of every set in a row of its own with its
//! state in words (and a dead one's row marked so), column heads in words
//! rather than `?auto`'s keys, the same numbers as `?auto`; and, in
//! headless Chromium at 1280 px, no sideways scrolling and a dead row in
//! another colour than a live one.
//!
//! chromium is required (Debian's "chromium" package; see tests/deps.sh):
//! without it the test fails and says so.
//!
//! Network 233: portal 127.0.233.1:8080, caches 127.0.233.2-4, and
//! 127.0.233.5, where nothing listens.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::html::{self, Table};
use support::httpd::HttpdOptions;
use support::{poll_until, Cluster, Mpm, TestDir};

const NET: u8 = 233;
/// How long a state change may take to show; polled, never slept.
const SETTLE: Duration = Duration::from_secs(30);

fn portal_conf(dir: &std::path::Path) -> String {
    let seed = HttpdOptions::seed(dir, NET, Mpm::Event).portal_conf;
    format!(
        "RewriteRule ^/icpquery-status$ - [L]\n\
         <Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>\n\
         {seed}\nICPQueryDeadTime 1\n\
         <ICPQueryGroup spare>\n    ICPQueryPeer 127.0.{NET}.2:3130\n</ICPQueryGroup>\n\
         Listen 127.0.{NET}.1:8081\nListen 127.0.{NET}.1:8082\n\
         <VirtualHost 127.0.{NET}.1:8081>\n    ServerName extra.test\n    ICPQueryPeer 127.0.{NET}.5:3130\n</VirtualHost>\n\
         <VirtualHost 127.0.{NET}.1:8082>\n    ServerName same.test\n</VirtualHost>\n"
    )
}

/// The page's sets: heading (what follows "Caches of ") → its caches.
fn sets(page: &str) -> Vec<(String, Table)> {
    let heads: Vec<String> = html::elements(page, "h2").iter().map(|(_, h)| html::text(h)).collect();
    let tables = html::tables(page, "caches");
    assert_eq!(heads.len(), tables.len(), "one table of caches per set:\n{page}");
    heads.into_iter().map(|h| h.strip_prefix("Caches of ").expect("a set heading").to_string()).zip(tables).collect()
}

/// `?auto`'s keys without their numbers (`RttMicros`, `Rejected_too_short`…).
fn auto_key_names(auto: &HashMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = auto
        .keys()
        .map(|k| k.trim_start_matches(char::is_alphabetic).trim_start_matches(char::is_numeric).to_string())
        .collect();
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

/// What Chromium makes of the page at 1280 px: the document's width and
/// the background colours of a dead and a live cache's cells.
fn chromium_view(dir: &TestDir, page: &str) -> HashMap<String, String> {
    const PROBE: &str = "<script>\
        var d = document.documentElement, dead = document.querySelector('tr.dead td'), \
        alive = document.querySelector('tr.alive td');\
        document.body.setAttribute('data-width', d.scrollWidth);\
        document.body.setAttribute('data-dead', dead ? getComputedStyle(dead).backgroundColor : 'none');\
        document.body.setAttribute('data-alive', alive ? getComputedStyle(alive).backgroundColor : 'none');\
        </script></body>";
    let file = dir.join("status.html");
    std::fs::write(&file, page.replace("</body>", PROBE)).unwrap();
    let profile = dir.join("chromium-profile");
    let out = support::headless_chromium(&profile, 1280, 900)
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}): install Debian's \"chromium\" package (apt-get install chromium; \
                 tests/deps.sh lists it) and run the tests again"
            )
        });
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let body = dom.split("<body").nth(1).and_then(|b| b.split('>').next()).unwrap_or_else(|| panic!("no body: {dom}"));
    ["width", "dead", "alive"]
        .iter()
        .map(|k| {
            let at = body.find(&format!("data-{k}=\"")).unwrap_or_else(|| panic!("no data-{k} in {body}"));
            let v = body[at + k.len() + 7..].split('"').next().unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn every_cache_shows_its_state_in_words_under_readable_heads_and_fits_1280_px() {
    let mut c = Cluster::start_with(NET, Mpm::Event, portal_conf);
    let [_, h3, _] = c.hosts();
    for i in 0..4 {
        assert_eq!(c.get(&format!("/wsgi/page{i}")).status, 200);
    }
    c.cache_for_mut(h3).stop();
    let mut n = 0;
    // The page and ?auto, read one after the other with no state changing
    // in between (probes go on meanwhile), once the stopped Squid is dead.
    let (page, auto) = poll_until(SETTLE, || {
        n += 1;
        assert_eq!(c.get(&format!("/wsgi/while-stopped{n}")).status, 200);
        let page = c.get("/icpquery-status").body_text();
        let auto = support::parse_auto(&c.get("/icpquery-status?auto").body_text());
        let again = c.get("/icpquery-status").body_text();
        let states = |page: &str| -> Vec<String> {
            sets(page)
                .iter()
                .flat_map(|(_, t)| t.rows.iter().map(|r| format!("{} {}", r.get("Cache"), r.class)))
                .collect()
        };
        let dead =
            sets(&page)[0].1.rows.iter().any(|r| r.get("Cache").ends_with(&format!("{h3}:3130")) && r.class == "dead");
        (dead && states(&page) == states(&again)).then_some((page, auto))
    })
    .expect("the stopped Squid never showed as dead");

    // The sets, each once: the main server's (shared by same.test), the
    // virtual host's with its extra cache, the group's.
    let sets = sets(&page);
    let names: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["main server, same.test:8082", "cache group spare", "extra.test:8081"], "{page}");

    // Heads are words (with units), never ?auto's compound keys
    // (RttMicros, LastReplyAgeSeconds, Rejected_too_short…); a key that is
    // one plain word (Round, Queries, Timeouts) may head its column.
    let compound = |k: &str| k.contains('_') || k.chars().filter(|c| c.is_ascii_uppercase()).count() > 1;
    let keys: Vec<String> = auto_key_names(&auto).into_iter().filter(|k| compound(k)).collect();
    assert!(keys.iter().any(|k| k == "RttMicros"), "{keys:?}");
    let all_heads: Vec<String> = html::elements(&page, "th").iter().map(|(_, t)| html::text(t)).collect();
    for head in &all_heads {
        assert!(!keys.contains(head), "the head {head:?} is a key of ?auto");
        let camel = head.as_bytes().windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
        assert!(!camel && (!head.contains('_') || head == "MISS_NOFETCH"), "{head:?} is no word");
        assert!(!["Icmp", "Hit", "Miss", "Err"].contains(&head.as_str()), "{head:?} is a key of ?auto");
    }
    for head in ["RTT (ms)", "Last reply (s ago)", "Hit ratio", "HIT", "MISS", "ICMP errors", "Rejected datagrams"] {
        assert!(sets[0].1.heads.iter().any(|h| h == head), "no {head:?} in {:?}", sets[0].1.heads);
    }

    // Every cache of every set, with its state in words, as ?auto has it.
    let peers: usize = auto["Peers"].parse().unwrap();
    let mut rows = 0;
    for (region, (_, table)) in sets.iter().enumerate() {
        let caches: Vec<_> = table.rows.iter().filter(|r| r.class != "reasons").collect();
        for p in (0..peers).filter(|p| auto[&format!("Peer{p}Region")] == region.to_string()) {
            let key = |k: &str| auto[&format!("Peer{p}{k}")].clone();
            let row = caches
                .iter()
                .find(|r| r.get("Cache") == format!("{} {}", key("Host"), key("Address")))
                .unwrap_or_else(|| panic!("no row for {} in set {region}", key("Address")));
            assert_eq!(row.get("State"), key("State"));
            assert_eq!(row.class, key("State"), "the row is marked with its state");
            assert_eq!(row.get("Queries"), key("Queries"));
            assert_eq!(row.get("HIT"), key("Hit"));
            assert_eq!(row.get("ICMP errors"), key("Icmp"));
            let rejected: u64 = auto
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("Peer{p}Rejected_")))
                .map(|(_, v)| v.parse::<u64>().unwrap())
                .sum();
            assert_eq!(row.get("Rejected datagrams"), rejected.to_string());
            rows += 1;
        }
        let in_set = (0..peers).filter(|p| auto[&format!("Peer{p}Region")] == region.to_string()).count();
        assert_eq!(caches.len(), in_set, "set {region}: one row per cache");
    }
    assert_eq!(rows, peers, "one row per cache of ?auto");
    let dead: Vec<&str> =
        sets.iter().flat_map(|(_, t)| &t.rows).filter(|r| r.class == "dead").map(|r| r.get("Cache")).collect();
    assert!(dead.iter().any(|c| c.ends_with(&format!("{h3}:3130"))), "{dead:?}");
    assert!(dead.iter().any(|c| c.ends_with(&format!("127.0.{NET}.5:3130"))), "nothing listens there: {dead:?}");
    // As many dead as ?auto says: the stopped Squid in the sets that have
    // asked it since (probes may have reached the virtual host's set too)
    // and the address where nothing listens.
    let dead_in_auto = (0..peers).filter(|p| auto[&format!("Peer{p}State")] == "dead").count();
    assert!(dead_in_auto >= 2, "{auto:?}");
    let summary = format!("caches in 3 sets: {dead_in_auto} dead");
    assert!(html::text(&page).contains(&summary), "the summary counts the dead: {summary}");

    // In a real browser: no sideways scrolling at 1280 px, and a dead
    // cache's row stands out.
    let dir = TestDir::new("status-html");
    let view = chromium_view(&dir, &page);
    let width: u32 = view["width"].parse().unwrap();
    assert!(width <= 1280, "the page is {width} px wide at a 1280 px window");
    assert_ne!(view["dead"], view["alive"], "a dead cache's row has the colour of a live one: {view:?}");
    assert_ne!(view["dead"], "none");
}
