//! `ICPQueryRemember seconds [entries]`: the answer memory, with real httpd,
//! real Squids and real ICP. Checked the way an operator checks it: which
//! Squid served each response (`X-Cache`, or the origin named in the body:
//! each Squid fetches from the origin on its own host), what each Squid
//! holds (an ICP query straight to it), the module's log (level 3: every
//! query, every answer from memory, every death) and the status page's
//! `?auto` counters. Nothing is judged by how long it took; waits are
//! counted in the module log, and `poll_until` only bounds waiting for log
//! lines and state changes.
//!
//! Network numbers 240 to 247, one per test.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use mod_icpquery::engine::carp::{self, Array, Variant};
use support::balancer::{BalancerConf, Member};
use support::httpd::{module_path, with_timeout, HttpdOptions};
use support::load::Load;
use support::{host_ips, http, poll_until, Cluster, Mpm, Opcode, Response, Squid};

/// Bounds waits for log lines, deaths, revivals and load progress on a
/// loaded machine; nothing is judged by how long they took.
const WAIT: Duration = Duration::from_secs(30);
/// The ICP timeout of the seed tests: a lookup still ends as soon as every
/// cache has answered, but a loaded 2-core machine (several tests, Squids
/// and httpds at once) must never end one before a live Squid's reply, or
/// a request is routed elsewhere for a reason these tests are not about.
const TIMEOUT_US: u64 = 2_000_000;
/// The URL background probes ask for (`probe::PROBE_URL`).
const PROBE_URL: &str = "http://icpquery.probe/";

// ---------------------------------------------------------------- set-up

/// The seed configuration (`conf/httpd-portal.conf`) with a long timeout,
/// the status page kept out of the seed's rewriting, and `extra` (the
/// `ICPQueryRemember` line) after it.
fn seed_conf(dir: &Path, net: u8, mpm: Mpm, extra: &str) -> String {
    let seed = with_timeout(&HttpdOptions::seed(dir, net, mpm).portal_conf, TIMEOUT_US);
    format!(
        "RewriteRule ^/icpquery-status$ - [L]\n\
         <Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>\n\
         {seed}\n{extra}\n"
    )
}

fn seed_cluster(net: u8, mpm: Mpm, extra: &'static str) -> Cluster {
    Cluster::start_with(net, mpm, move |dir| seed_conf(dir, net, mpm, extra))
}

/// `http://localhost` and the path: the key the seed (and bycache) asks for.
fn key(target: &str) -> String {
    format!("http://localhost{target}")
}

/// Fetches `path` straight from `squid`, twice: it then holds it.
fn warm(squid: &Squid, path: &str) {
    let r = http::get(squid.http_addr(), path);
    assert_eq!(r.status, 200, "warming {path} at {}: {r:?}", squid.name());
    let again = http::get(squid.http_addr(), path);
    assert!(again.is_hit(), "{path} should now be cached at {}: {again:?}", squid.name());
}

/// The Squids that answer ICP_OP_HIT for `url` when asked directly.
fn holders(c: &Cluster, url: &str) -> Vec<String> {
    c.squids().iter().filter(|s| s.icp_query(url) == Some(Opcode::Hit)).map(|s| s.name()).collect()
}

/// `squid3` → the Squid's host.
fn host_of(c: &Cluster, name: &str) -> Ipv4Addr {
    c.cache_named(name).host()
}

// ---------------------------------------------------------------- the module log

/// The message of a module log line, after `<timestamp> [icpquery:N] [pid N] `.
fn message(line: &str) -> &str {
    line.find("] [pid ").and_then(|i| line[i + 7..].find("] ").map(|j| &line[i + 7 + j + 2..])).unwrap_or("")
}

/// A module log line's UTC timestamp (`2026-11-23T01:17:37.123456Z`) in
/// microseconds since the epoch.
fn timestamp_us(line: &str) -> i64 {
    let stamp = line.split(' ').next().unwrap_or("");
    let num = |r: std::ops::Range<usize>| -> i64 {
        stamp.get(r).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no timestamp in {line:?}"))
    };
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss, us) = (num(11..13), num(14..16), num(17..19), num(20..26));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000) + us
}

/// One `query …` line (level 3): a lookup that asked the caches.
#[derive(Clone, Debug)]
struct Query {
    line: usize,
    url: String,
    /// It ended with ", every cache waited for answered".
    complete: bool,
    dead_probed: u32,
    replies: u32,
    /// When it started: the line's time less the lookup's own elapsed time.
    started_us: i64,
    ended_us: i64,
}

fn field_before(text: &str, suffix: &str) -> u32 {
    let end = text.find(suffix).unwrap_or_else(|| panic!("no {suffix:?} in {text:?}"));
    let start = text[..end].rfind(' ').map_or(0, |i| i + 1);
    text[start..end].parse().unwrap_or_else(|_| panic!("no number before {suffix:?} in {text:?}"))
}

fn queries(log: &str) -> Vec<Query> {
    log.lines()
        .enumerate()
        .filter_map(|(n, l)| {
            let m = message(l);
            let rest = m.strip_prefix("query ")?;
            let rest = &rest[rest.find(" for \"")? + 6..];
            let url = rest[..rest.find('"')?].to_owned();
            let elapsed: i64 = {
                let tail = &m[m.rfind(" repl(ies) in ")? + 14..];
                tail[..tail.find(" us")?].parse().ok()?
            };
            let ended_us = timestamp_us(l);
            Some(Query {
                line: n,
                url,
                complete: m.ends_with("every cache waited for answered"),
                dead_probed: field_before(m, " dead peer(s) probed"),
                replies: field_before(m, " repl(ies) in "),
                started_us: ended_us - elapsed,
                ended_us,
            })
        })
        .collect()
}

/// One `"URL" answered from memory (kept N ms ago): HIT at a, b` line.
#[derive(Clone, Debug)]
struct Recall {
    line: usize,
    url: String,
    hits: Vec<String>,
}

fn recalls(log: &str) -> Vec<Recall> {
    log.lines()
        .enumerate()
        .filter_map(|(n, l)| {
            let m = message(l).strip_prefix('"')?;
            let (url, rest) = m.split_once("\" answered from memory (kept ")?;
            let (_, hits) = rest.split_once(" ms ago): HIT at ")?;
            Some(Recall { line: n, url: url.to_owned(), hits: hits.split(", ").map(str::to_owned).collect() })
        })
        .collect()
}

/// The index of the first line containing `needle`.
fn line_of(log: &str, needle: &str) -> Option<usize> {
    log.lines().position(|l| l.contains(needle))
}

// ---------------------------------------------------------------- ?auto

fn auto(c: &Cluster) -> HashMap<String, String> {
    let r = c.get("/icpquery-status?auto");
    assert_eq!(r.status, 200, "{r:?}");
    support::parse_auto(&r.body_text())
}

fn num(map: &HashMap<String, String>, key: &str) -> u64 {
    map.get(key)
        .unwrap_or_else(|| panic!("no {key} in ?auto: {map:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {map:?}"))
}

/// The answer memory's counters of server `server`'s region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemoryCounts {
    from_memory: u64,
    stored: u64,
    evicted: u64,
}

fn memory_counts(map: &HashMap<String, String>, server: &str) -> MemoryCounts {
    let region = &map[&format!("{server}Region")];
    MemoryCounts {
        from_memory: num(map, &format!("Region{region}AnswersFromMemory")),
        stored: num(map, &format!("Region{region}AnswersStored")),
        evicted: num(map, &format!("Region{region}AnswersEvicted")),
    }
}

/// `Peer<n>` of the Squid on `host` in server `server`'s region.
fn peer(map: &HashMap<String, String>, server: &str, host: Ipv4Addr) -> String {
    let region = &map[&format!("{server}Region")];
    let peers: usize = num(map, "Peers") as usize;
    (0..peers)
        .map(|n| format!("Peer{n}"))
        .find(|p| map[&format!("{p}Address")] == format!("{host}:3130") && &map[&format!("{p}Region")] == region)
        .unwrap_or_else(|| panic!("no peer {host}:3130 in region {region}: {map:?}"))
}

// ---------------------------------------------------------------- 1 and 6

/// What a client saw for one new object asked three times in a row.
#[derive(Debug)]
struct Asked {
    target: String,
    responses: [Response; 3],
}

fn ask_three_times(portal: SocketAddr, target: &str) -> Asked {
    let get = || http::get(portal, target);
    Asked { target: target.to_owned(), responses: [get(), get(), get()] }
}

/// Checks new objects each asked three times in a row under the seed rules
/// with `ICPQueryRemember 5`:
/// - the first is a MISS at some Squid (rule 2: a running cache at random),
///   the second and third are HITs at that Squid with the same body;
/// - that Squid, and only it, holds the object (ICP to each Squid);
/// - the first two asked the caches (nothing is remembered for "nobody has
///   it"), the third was answered from memory naming that Squid (unless,
///   by the log's own clock, more than 5 s passed between the second's
///   answer and the third's lookup; counted and printed);
/// - `?auto` counts exactly the answers from memory the log shows, one
///   stored answer per lookup that found a HIT, no eviction, and per peer
///   the HITs it was named in from memory.
fn check_three_asks(c: &Cluster, asked: &[Asked], what: &str) {
    let log = c.httpd().module_log();
    let queries = queries(&log);
    let recalls = recalls(&log);
    let mut queried: HashMap<String, Vec<&Query>> = HashMap::new();
    for q in &queries {
        queried.entry(q.url.clone()).or_default().push(q);
    }
    let mut recalled: HashMap<String, Vec<&Recall>> = HashMap::new();
    for r in &recalls {
        recalled.entry(r.url.clone()).or_default().push(r);
    }
    let mut excused = Vec::new();
    let mut named: HashMap<String, u64> = HashMap::new();
    for a in asked {
        let [first, second, third] = &a.responses;
        let t = &a.target;
        for r in &a.responses {
            assert_eq!(r.status, 200, "{what}: {t}: {r:?}");
        }
        let squid = first.cache_name().unwrap_or_else(|| panic!("{what}: {t} bypassed every cache: {first:?}"));
        assert_eq!(first.x_cache(), Some(format!("MISS from {squid}").as_str()), "{what}: {t} (1st)");
        for (n, r) in [(2, second), (3, third)] {
            assert_eq!(r.x_cache(), Some(format!("HIT from {squid}").as_str()), "{what}: {t} ({n}th): {r:?}");
            assert_eq!(r.body, first.body, "{what}: {t} ({n}th)");
        }
        let url = key(t);
        assert_eq!(
            holders(c, &url),
            vec![squid.to_owned()],
            "{what}: {url} is held by exactly the Squid that served it"
        );

        let addr = format!("{}:3130", host_of(c, squid));
        let q = queried.get(&url).map_or(&[][..], Vec::as_slice);
        let m = recalled.get(&url).map_or(&[][..], Vec::as_slice);
        match (q.len(), m.len()) {
            (2, 1) => {
                assert!(q[1].line < m[0].line, "{what}: {url}: answered from memory before it was ever a HIT:\n{log}");
                assert_eq!(m[0].hits, vec![addr.clone()], "{what}: {url}: memory named the wrong cache");
                *named.entry(addr).or_default() += 1;
            }
            (3, 0) if q[2].started_us - q[1].ended_us > 5_000_000 => excused.push(url.clone()),
            _ => panic!(
                "{what}: {url}: expected the 1st and 2nd requests to ask the caches and the 3rd to be answered \
                 from memory; {} query line(s) {q:?} and {} memory line(s) {m:?}; read {}",
                q.len(),
                m.len(),
                c.httpd().module_log_path().display()
            ),
        }
    }
    if !excused.is_empty() {
        eprintln!(
            "{what}: {} 3rd request(s) came more than 5 s after the 2nd (not remembered): {excused:?}",
            excused.len()
        );
    }
    assert!(excused.len() < asked.len() / 10, "{what}: too many answers outlived: {excused:?}");
    let map = auto(c);
    let counts = memory_counts(&map, "Server0");
    let from_memory = (asked.len() - excused.len()) as u64;
    assert_eq!(
        counts,
        MemoryCounts { from_memory, stored: asked.len() as u64 + excused.len() as u64, evicted: 0 },
        "{what}: ?auto: one answer from memory per memory line, one stored answer per lookup that found a HIT"
    );
    for host in c.hosts() {
        let p = peer(&map, "Server0", host);
        let want = named.get(&format!("{host}:3130")).copied().unwrap_or(0);
        assert_eq!(num(&map, &format!("{p}Remembered")), want, "{what}: {p}Remembered ({host})");
    }
    eprintln!("{what}: {} objects, {from_memory} answered from memory, ?auto {counts:?}", asked.len());
}

#[test]
fn repeats_of_new_objects_are_hits_where_the_first_stored_them_and_answered_from_memory() {
    let c = seed_cluster(240, Mpm::Event, "ICPQueryRemember 5");
    let asked: Vec<Asked> =
        (0..200).map(|i| ask_three_times(c.portal_addr(), &format!("/wsgi/remember/{i}?v={i}"))).collect();
    check_three_asks(&c, &asked, "seed, event");
    let log = c.httpd().module_log();
    assert!(!log.contains("dropped a datagram"), "{log}");
    // The seed keeps its default ICPQueryProbeInterval (5 s): a region with
    // an answer memory is still probed (twice a second).
    assert!(log.contains(&format!("for \"{PROBE_URL}\"")), "no probe ran:\n{log}");
}

fn three_asks_under_concurrent_clients(net: u8, mpm: Mpm) {
    const CLIENTS: usize = 32;
    const OBJECTS: usize = 5;
    let c = seed_cluster(net, mpm, "ICPQueryRemember 5");
    let portal = c.portal_addr();
    let asked: Vec<Asked> = thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                s.spawn(move || {
                    (0..OBJECTS)
                        .map(|k| ask_three_times(portal, &format!("/wsgi/mpm/{client}-{k}?c={client}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients.into_iter().flat_map(|t| t.join().expect("client thread")).collect()
    });
    check_three_asks(&c, &asked, mpm.name());
    assert!(c.httpd().is_running());
    let errors = c.httpd().error_log();
    assert!(!errors.contains("exit signal") && !errors.contains("panicked"), "{errors}");
}

#[test]
fn three_asks_with_32_clients_event_mpm() {
    three_asks_under_concurrent_clients(245, Mpm::Event);
}

#[test]
fn three_asks_with_32_clients_worker_mpm() {
    three_asks_under_concurrent_clients(246, Mpm::Worker);
}

#[test]
fn three_asks_with_32_clients_prefork_mpm() {
    three_asks_under_concurrent_clients(247, Mpm::Prefork);
}

// ---------------------------------------------------------------- 2

/// Objects held at squid3 are remembered; squid3 is killed; with no
/// traffic at all (and `ICPQueryProbeInterval 0`) the memory's own probes
/// find it dead; from then on no answer names it: every request for those
/// objects asks the caches again and is served by another Squid or the
/// origin. (`ICPQueryRemember 60`: the answers are certainly still young
/// when they are asked for again.)
#[test]
fn a_killed_cache_is_found_dead_without_traffic_and_remembered_answers_stop_naming_it() {
    let net = 241;
    let mut c = seed_cluster(net, Mpm::Event, "ICPQueryRemember 60\nICPQueryProbeInterval 0");
    let [_, h3, _] = c.hosts();
    let squid3 = c.cache_for(h3).name();
    let at3 = format!("{h3}:3130");
    let targets: Vec<String> = (0..20).map(|i| format!("/wsgi/held-at-3/{i}")).collect();
    for t in &targets {
        warm(c.cache_for(h3), t);
    }
    for t in &targets {
        for n in 1..=2 {
            let r = c.get(t);
            assert_eq!(r.x_cache(), Some(format!("HIT from {squid3}").as_str()), "{t} ({n}): {r:?}");
        }
    }
    let before = c.httpd().module_log();
    for t in &targets {
        let url = key(t);
        let m: Vec<Recall> = recalls(&before).into_iter().filter(|r| r.url == url).collect();
        assert_eq!(m.len(), 1, "{url}: the 2nd request is answered from memory:\n{before}");
        assert_eq!(m[0].hits, vec![at3.clone()]);
    }
    let p3 = peer(&auto(&c), "Server0", h3);
    let remembered_at_3 = num(&auto(&c), &format!("{p3}Remembered"));
    assert_eq!(remembered_at_3, targets.len() as u64);

    c.cache_for_mut(h3).kill();
    let death = format!("cache {at3} is dead: its host refused the query (ICMP)");
    let log = poll_until(WAIT, || Some(c.httpd().module_log()).filter(|l| l.contains(&death)))
        .unwrap_or_else(|| panic!("no request, and the probes never found {squid3} dead:\n{}", c.httpd().module_log()));
    let died = line_of(&log, &death).expect("found");
    // Only probes ran since the kill.
    let since_kill: Vec<Query> = queries(&log).into_iter().filter(|q| q.line > before.lines().count()).collect();
    assert!(!since_kill.is_empty() && since_kill.iter().all(|q| q.url == PROBE_URL), "{since_kill:?}");
    assert!(queries(&log).iter().any(|q| q.line < died && q.url == PROBE_URL && q.line > before.lines().count()));
    let from_memory_at_death = memory_counts(&auto(&c), "Server0").from_memory;

    for round in 1..=3 {
        for t in &targets {
            let r = c.get(t);
            assert_eq!(r.status, 200, "{t} (round {round}): {r:?}");
            assert_ne!(r.cache_name(), Some(squid3.as_str()), "{t} (round {round}) went to the killed cache: {r:?}");
            assert!(r.cache_name().is_some() || r.x_origin().is_some(), "{r:?}");
        }
    }
    let log = c.httpd().module_log();
    let after: Vec<&str> = log.lines().skip(died + 1).collect();
    for l in &after {
        let m = message(l);
        assert!(
            !(m.contains("answered from memory") && m.contains(&at3)),
            "a remembered answer named the dead cache after its death: {l}"
        );
        assert!(
            !(m.starts_with("icpquerymap ") && m.contains(&format!("{h3};"))),
            "the map named the dead cache after its death: {l}"
        );
    }
    // The first request for each object after the death asked the caches:
    // every cache its remembered answer named had died.
    let after_queries: Vec<Query> = queries(&log).into_iter().filter(|q| q.line > died).collect();
    for t in &targets {
        assert!(after_queries.iter().any(|q| q.url == key(t)), "{t} was not asked again after the death:\n{log}");
    }
    let map = auto(&c);
    assert_eq!(map[&format!("{p3}State")], "dead");
    assert_eq!(num(&map, &format!("{p3}Remembered")), remembered_at_3, "HITs at the dead cache from memory");
    // `AnswersFromMemory` counts "lookups answered from memory": the log's
    // memory lines since the death, no more. (A recall whose every cache
    // has died asks the caches, so it is not one.)
    let lines_since = recalls(&log).iter().filter(|r| r.line > died).count() as u64;
    let counted = memory_counts(&map, "Server0").from_memory - from_memory_at_death;
    assert_eq!(
        counted, lines_since,
        "Region AnswersFromMemory grew by {counted} after the death, but only {lines_since} lookups were \
         answered from memory (the others asked the caches because the remembered cache had died)"
    );
}

// ---------------------------------------------------------------- 3

/// /proc/<pid>/status VmRSS, in KiB.
fn rss_kib(pid: i32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// httpd's children (not zombies) and their VmRSS.
fn children_rss(parent: i32) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 1 && f[0] != "Z" && f[1].parse::<i32>() == Ok(parent) {
            if let Some(rss) = rss_kib(pid) {
                out.insert(pid, rss);
            }
        }
    }
    out
}

/// Allowed VmRSS growth of a child between the samples (allocator arenas
/// settling; the same bound as the soak test's).
const RSS_SLACK_KIB: i64 = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Placed at one Squid before the flood: a HIT there, always.
    Placed(usize),
    /// New: any Squid (or the origin), 200.
    New,
    /// CR/LF in the key: not queried (NULL), so the balancer serves it.
    Crlf,
    /// %00: httpd refuses it before any rewriting.
    Nul,
}

/// A deterministic shuffle (xorshift), the same every run.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// The requests of one flood: 5,000 distinct URLs under `/wsgi/…<tag>`
/// (4,200 plain, a third of them asked twice; 300 sharing a 440-byte
/// prefix, whose keys the table can hold, and 200 sharing a 700-byte one,
/// whose keys it cannot, asked twice; 50 keys of 8,000 bytes, asked twice;
/// 150 with CR/LF and 100 with %00, once), and every placed object four
/// times, shuffled.
fn flood(tag: &str, placed: &[String]) -> Vec<(String, Kind)> {
    let (kept, long) = (format!("{tag}{}", "p".repeat(440)), format!("{tag}{}", "q".repeat(700)));
    let mut distinct: Vec<(String, Kind, usize)> = Vec::new();
    for i in 0..4_200 {
        distinct.push((format!("/wsgi/{tag}flood/{i}?k={i}"), Kind::New, if i % 3 == 0 { 2 } else { 1 }));
    }
    for i in 0..300 {
        distinct.push((format!("/wsgi/prefix/{kept}/{i}"), Kind::New, 2));
    }
    for i in 0..200 {
        distinct.push((format!("/wsgi/prefix/{long}/{i}"), Kind::New, 2));
    }
    // Squid refuses URLs of 8,192 bytes and more: 8,000-byte keys are the
    // longest that are still objects.
    for i in 0..50 {
        let head = format!("/wsgi/{tag}k8/{i:03}/");
        let t = format!("{head}{}", "e".repeat(8_000 - key(&head).len()));
        assert_eq!(key(&t).len(), 8_000);
        distinct.push((t, Kind::New, 2));
    }
    for i in 0..150 {
        distinct.push((format!("/wsgi/{tag}crlf/{i}%0d%0aX-Forged:%20{i}"), Kind::Crlf, 1));
    }
    for i in 0..100 {
        distinct.push((format!("/wsgi/{tag}nul/{i}%00tail"), Kind::Nul, 1));
    }
    assert_eq!(distinct.len(), 5_000);
    let mut requests: Vec<(String, Kind)> =
        distinct.iter().flat_map(|(t, k, n)| std::iter::repeat_n((t.clone(), *k), *n)).collect();
    for _ in 0..4 {
        requests.extend(placed.iter().enumerate().map(|(i, t)| (t.clone(), Kind::Placed(i))));
    }
    shuffle(&mut requests, 0x9e37_79b9_7f4a_7c15 ^ tag.len() as u64);
    requests
}

/// A tiny table (`ICPQueryRemember 5 64`) under a flood of 5,000 distinct
/// URLs through the portal, among them 8,000-byte keys (queried, never
/// kept), keys with CR/LF (not queried) and %00 (refused by httpd), keys
/// sharing 440- and 700-byte prefixes, many asked twice (so that their HIT
/// is stored and the table evicts), and objects placed at one Squid each
/// before the flood asked throughout: every response is right, the table
/// evicts, the children's memory does not grow, and the placed objects are
/// still served from their Squid afterwards.
#[test]
fn a_flood_of_distinct_and_hostile_keys_through_a_tiny_table() {
    let net = 242;
    let c = Cluster::start_with(net, Mpm::Event, move |dir| {
        let conf = seed_conf(dir, net, Mpm::Event, "ICPQueryRemember 5 64\nLogLevel warn rewrite:warn");
        format!("LimitRequestLine 20000\n{conf}")
    });
    let hosts = c.hosts();
    const PLACED: usize = 150;
    let placed: Vec<String> = (0..PLACED).map(|i| format!("/wsgi/placed/{i}?at={}", i % 3)).collect();
    for (i, t) in placed.iter().enumerate() {
        warm(c.cache_for(hosts[i % 3]), t);
    }
    // Asked once through the portal before the flood: remembered.
    for (i, t) in placed.iter().enumerate() {
        let r = c.get(t);
        assert_eq!(r.x_cache(), Some(format!("HIT from {}", c.cache_for(hosts[i % 3]).name()).as_str()), "{t}");
    }

    let warm_up = flood("warm-up/", &placed);
    let requests = flood("", &placed);
    let long_prefix = "q".repeat(700);
    eprintln!("flood: {} requests (and as many to warm up), {PLACED} placed objects", requests.len());

    let names: Vec<String> = hosts.iter().map(|h| c.cache_for(*h).name()).collect();
    let check = |t: &str, kind: Kind, r: &Response| -> Option<String> {
        let body = r.body_text();
        let ok = match kind {
            Kind::Placed(i) => {
                r.status == 200
                    && r.x_cache() == Some(format!("HIT from {}", names[i % 3]).as_str())
                    && body == format!("origin {} {t}\n", hosts[i % 3])
            }
            Kind::New => r.status == 200 && body.ends_with(&format!(" {t}\n")),
            Kind::Crlf => r.status == 200 && r.x_cache().is_none() && r.x_origin().is_some(),
            Kind::Nul => (400..500).contains(&r.status),
        };
        (!ok).then(|| {
            let shown: String = t.chars().take(120).collect();
            format!("{kind:?} {shown}: {} {:?} {:?}", r.status, r.x_cache(), body.chars().take(120).collect::<String>())
        })
    };
    let portal = c.portal_addr();
    let wrong = Mutex::new(Vec::<String>::new());
    let run = |batch: &[(String, Kind)]| {
        let next = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    while let Some((t, kind)) = batch.get(next.fetch_add(1, Ordering::Relaxed)) {
                        match http::try_get(portal, t) {
                            Ok(r) => wrong.lock().unwrap().extend(check(t, *kind, &r)),
                            Err(e) => wrong.lock().unwrap().push(format!("{kind:?} {}: {e}", &t[..t.len().min(120)])),
                        }
                    }
                });
            }
        });
    };
    // A warm-up pass of the same mix over other URLs (every thread of every
    // child has then served each kind of request), then the flood itself.
    let parent = c.httpd().pid().expect("httpd runs");
    run(&warm_up);
    let rss_warm = children_rss(parent);
    run(&requests);
    let rss_end = children_rss(parent);
    let wrong = wrong.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "{} wrong responses of {}, e.g.:\n{}",
        wrong.len(),
        requests.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );

    // The table evicted; every eviction is a store.
    let counts = memory_counts(&auto(&c), "Server0");
    eprintln!("flood: ?auto {counts:?}");
    assert!(counts.evicted > 0, "a 64-entry table never evicted: {counts:?}");
    assert!(counts.stored >= counts.evicted, "{counts:?}");
    assert!(counts.from_memory > 0, "{counts:?}");

    // Memory: the children that lived through the flood did not grow.
    let survivors: Vec<i32> = rss_warm.keys().filter(|p| rss_end.contains_key(p)).copied().collect();
    assert!(!survivors.is_empty(), "no child lived through the flood: {rss_warm:?} {rss_end:?}");
    for pid in &survivors {
        let growth = rss_end[pid] - rss_warm[pid];
        eprintln!("flood: child {pid}: VmRSS {} -> {} KiB", rss_warm[pid], rss_end[pid]);
        assert!(growth <= RSS_SLACK_KIB, "child {pid}: VmRSS grew by {growth} KiB during the flood");
    }

    // The keys that cannot be kept were never answered from memory; the
    // CR/LF keys were never sent.
    let log = c.httpd().module_log();
    for r in recalls(&log) {
        assert!(r.url.len() <= 480, "a key longer than the table holds was answered from memory: {}", r.url);
        assert!(!r.url.contains(&long_prefix), "{}", r.url);
    }
    assert_eq!(log.matches(": not queried: a URL is never empty").count(), 300, "one problem line per CR/LF key");
    assert!(!queries(&log).iter().any(|q| q.url.contains("/wsgi/crlf/")), "a CR/LF key was sent");
    let k8 = queries(&log).iter().filter(|q| q.url.len() == 8_000).count();
    assert_eq!(k8, 200, "every request for an 8,000-byte key asked the caches");
    assert!(!log.contains("dropped a datagram"), "{}", c.httpd().module_log_path().display());

    // After the flood, the placed objects are still served from their Squid.
    for (i, t) in placed.iter().enumerate() {
        let r = c.get(t);
        assert_eq!(check(t, Kind::Placed(i), &r), None, "after the flood");
    }
    assert!(c.httpd().is_running());
    let errors = c.httpd().error_log();
    assert!(!errors.contains("exit signal") && !errors.contains("panicked"), "{errors}");
}

// ---------------------------------------------------------------- 4

/// The parent's shared mappings (a `s` in the permissions: httpd's and
/// the module's shared memory, APR's anonymous segments among them), in
/// KiB: what a restart must not let pile up.
fn shared_mappings_kib(pid: i32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            if perms.as_bytes().get(3) != Some(&b's') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((u64::from_str_radix(b, 16).ok()? - u64::from_str_radix(a, 16).ok()?) / 1024)
        })
        .sum()
}

/// A graceful restart that changes the table's size (64 → 100,000 entries)
/// under a concurrent keep-alive load over objects placed at one Squid
/// each: no request fails, every body comes from the placed Squid's origin,
/// the new table's counters start from zero, and nothing crashes.
#[test]
fn a_graceful_restart_to_another_table_size_under_load_loses_nothing() {
    let net = 243;
    let mut c = seed_cluster(net, Mpm::Event, "ICPQueryRemember 5 64\nLogLevel warn rewrite:warn");
    let hosts = c.hosts();
    const PLACED: usize = 120;
    let target = |i: usize| format!("/wsgi/restart/{i}?at={}", i % 3);
    for i in 0..PLACED {
        warm(c.cache_for(hosts[i % 3]), &target(i));
    }
    let load = Load::start(
        c.portal_addr(),
        8,
        Box::new(move |conn, n| {
            let i = (conn * 37 + n as usize) % PLACED;
            let t = target(i);
            let body = format!("origin {} {t}\n", hosts[i % 3]);
            (t, Some(body))
        }),
    );
    let progress = |load: &Load, more: u64| {
        let from = load.totals().ok;
        let moved = poll_until(Duration::from_secs(120), || (load.totals().ok >= from + more).then_some(()));
        assert!(moved.is_some(), "the load made no progress: {:?}", load.failures());
    };
    progress(&load, 600);
    let small = memory_counts(&auto(&c), "Server0");
    assert!(small.evicted > 0 && small.from_memory > 0, "64 entries over {PLACED} objects: {small:?}");

    let conf = std::fs::read_to_string(c.httpd().conf_path()).expect("read httpd.conf");
    assert_eq!(conf.matches("ICPQueryRemember 5 64\n").count(), 1);
    std::fs::write(c.httpd().conf_path(), conf.replace("ICPQueryRemember 5 64\n", "ICPQueryRemember 5 100000\n"))
        .expect("write httpd.conf");
    let parent = c.httpd().pid().expect("httpd runs");
    let shared_small = shared_mappings_kib(parent);
    c.httpd_mut().graceful_restart();
    let shared_large = shared_mappings_kib(parent);
    progress(&load, 600);
    let large = memory_counts(&auto(&c), "Server0");
    // The new table's own counters: it holds every object, so it never
    // evicted, while the old one's count was past zero.
    assert_eq!(large.evicted, 0, "the counters are not the new table's (before the restart: {small:?}): {large:?}");
    assert!(large.from_memory > 0 && large.stored > 0, "{large:?}");

    // Quiet, a graceful restart again: every counter starts from zero.
    load.pause(Duration::from_secs(60));
    c.httpd_mut().graceful_restart();
    let shared_again = shared_mappings_kib(parent);
    eprintln!(
        "graceful restart: the parent's shared mappings: {shared_small} KiB (64 entries), {shared_large} KiB, \
         then {shared_again} KiB (100,000)"
    );
    // The new table has room for 100,000 whole keys of up to 480 bytes, and
    // a restart frees the table it replaces.
    assert!(shared_large >= shared_small + 100_000 * 480 / 1024, "{shared_small} -> {shared_large} KiB");
    assert_eq!(shared_again, shared_large, "a graceful restart left the old table mapped in the parent");
    let fresh = memory_counts(&auto(&c), "Server0");
    assert_eq!(fresh, MemoryCounts { from_memory: 0, stored: 0, evicted: 0 }, "a new table's counters");
    load.resume();
    progress(&load, 300);
    let (totals, failures) = load.finish();
    eprintln!("graceful restart: {totals:?}; before {small:?}, after {large:?}");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        totals.ok,
        &failures[..failures.len().min(10)]
    );

    let errors = c.httpd().error_log();
    assert!(errors.matches("resuming normal operations").count() >= 3, "{errors}");
    assert!(!errors.contains("exit signal") && !errors.contains("panicked"), "{errors}");
    // The placed objects are still where they were put, and only there.
    for i in (0..PLACED).step_by(7) {
        let squid = c.cache_for(hosts[i % 3]).name();
        assert_eq!(holders(&c, &key(&target(i))), vec![squid], "{}", target(i));
    }
}

// ---------------------------------------------------------------- 5

const B: &str = "caches";

/// The CARP owner (0, 1, 2: the hosts of `net`) of `key` among the three
/// Squids with equal weights, as bycache computes it.
fn carp_owner(net: u8, key: &str) -> usize {
    let names = host_ips(net).map(|ip| ip.to_string());
    let members: Vec<carp::Member<'_>> = names.iter().map(|name| carp::Member { name, weight: 1 }).collect();
    Array::new(&members, Variant::Squid).owner(key.as_bytes(), |_| true).expect("weights > 0")
}

/// The first of `/wsgi/<tag>/<k>` whose CARP owner is accepted by `owner`.
fn path_owned(net: u8, tag: &str, owner: impl Fn(usize) -> bool) -> String {
    (0..).map(|k| format!("/wsgi/{tag}/{k}")).find(|p| owner(carp_owner(net, &key(p)))).expect("some path")
}

/// bycache over the three Squids with `ICPQueryRemember 5`, while squid4's
/// ICP port is a socket that takes datagrams and never answers (bound
/// before the portal starts, so the cache starts as running, as every
/// cache does). It is waited for by at most three lookups that other
/// caches answered (requests and background probes alike: a region with
/// a memory is probed twice a second), then it is dead ("did not answer 3
/// lookups in a row"). A request lookup still waiting for it then (one at
/// most: requests here are sequential) ends as it must; no request lookup
/// started afterwards waits for it (a revival query, once a second, is
/// only sent). Background probes, which nobody waits for, keep waiting for
/// it by design. Started again, it is found alive by the probes with no
/// traffic and used again: an object it holds is a HIT there, and a new
/// object it owns by CARP goes to it and is then remembered as held there.
#[test]
fn a_hung_cache_under_bycache_with_memory_is_waited_for_three_lookups_and_used_again() {
    let net = 244;
    let hosts = host_ips(net);
    let h4 = hosts[2];
    let mut conf = BalancerConf::over_squids(net, B).lbmethod("bycache");
    for i in 0..3 {
        // A member mod_proxy found in error is retried at once: only the
        // module decides here.
        conf = conf.with_member(i, |m: Member| m.param("retry", "0"));
    }
    let portal = format!(
        "LoadModule icpquery_module {}\n\
         ICPQueryLog logs/icpquery.log\nICPQueryLogLevel 3\nICPQueryTimeout 1000000\nICPQueryRemember 5\n{}",
        module_path().display(),
        conf.render()
    );
    let mut c = Cluster::start_caches(net);
    c.cache_for_mut(h4).stop();
    let hung = UdpSocket::bind((h4, 3130)).expect("bind the hung cache's ICP port");
    hung.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let received = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let at4 = format!("{h4}:3130");
    let death = format!("cache {at4} is dead: it did not answer 3 lookups in a row that other caches answered");
    c.start_portal(HttpdOptions::without_module(net, Mpm::Event, portal));

    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if hung.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Requests, one after the other, for objects squid4 does not own
        // (its HTTP port is closed too), until it is dead; then ten more.
        let mut n = 0;
        let mut get = |c: &Cluster| {
            let path = path_owned(net, &format!("hang{n}"), |o| o != 2);
            n += 1;
            let r = c.get(&path);
            assert_eq!(r.status, 200, "{path}: {r:?}");
            assert!(r.cache_name().is_some_and(|s| s != "squid4"), "{path}: {r:?}");
        };
        let dead = poll_until(WAIT, || {
            get(&c);
            c.httpd().module_log().contains(&death).then_some(())
        });
        assert!(dead.is_some(), "squid4 never died of its silence:\n{}", c.httpd().module_log());
        for _ in 0..10 {
            get(&c);
        }
        // Until a probe has asked the dead cache again (probes run twice a
        // second while a cache is dead, and wait for it: nobody waits for them).
        let asked_again = poll_until(WAIT, || {
            let log = c.httpd().module_log();
            let died = line_of(&log, &death)?;
            queries(&log).iter().any(|q| q.line > died && q.url == PROBE_URL && !q.complete).then_some(())
        });
        assert!(asked_again.is_some(), "no probe asked the dead cache again:\n{}", c.httpd().module_log());
        stop.store(true, Ordering::Relaxed);
    });
    drop(hung);
    assert!(received.load(Ordering::Relaxed) > 0);

    let log = c.httpd().module_log();
    assert_eq!(log.matches(&death).count(), 1, "{log}");
    let died = line_of(&log, &death).expect("found");
    let died_us = timestamp_us(log.lines().nth(died).expect("line"));
    let all = queries(&log);
    // Before the death every lookup that did not end complete waited for
    // squid4 (the only cache that can be silent), requests and probes
    // alike, and the other caches answered it.
    let before: Vec<&Query> = all.iter().filter(|q| q.line < died && !q.complete).collect();
    assert!(before.iter().all(|q| q.replies >= 1), "the other caches answered those lookups: {before:?}");
    assert!(
        !before.is_empty() && before.len() <= 3,
        "{} lookups waited for the hung cache before it was dead (at most 3): {before:?}",
        before.len()
    );
    // After it: a request lookup still in flight at the death may end
    // waiting (requests are sequential here: one at most); every request
    // lookup that started later does not wait (a revival query, once a
    // second, is only sent), and still asks the two live caches.
    let requests: Vec<&Query> = all.iter().filter(|q| q.line > died && q.url != PROBE_URL).collect();
    let in_flight: Vec<&&Query> = requests.iter().filter(|q| !q.complete).collect();
    assert!(in_flight.len() <= 1, "request lookups waited for the dead cache: {in_flight:?}");
    for q in &in_flight {
        assert!(q.started_us <= died_us, "a request lookup started after the death waited for the dead cache: {q:?}");
    }
    assert!(requests.len() >= 10, "{requests:?}");
    for q in requests.iter().skip(in_flight.len()) {
        assert!(q.complete && q.replies >= 2, "a request lookup after the death: {q:?}");
    }
    eprintln!(
        "hung: {} lookup(s) waited for it before its death, {} request lookup(s) in flight at it; \
         {} request lookups after it waited for nobody ({} sent it a revival query); {} datagrams reached \
         the hung socket",
        before.len(),
        in_flight.len(),
        requests.len() - in_flight.len(),
        requests.iter().filter(|q| q.dead_probed == 1).count(),
        received.load(Ordering::Relaxed)
    );

    // It answers again: the probes (twice a second while a cache is dead,
    // a revival query once a second) find it alive, with no traffic.
    c.cache_for_mut(h4).start_again();
    let alive = format!("cache {at4} is alive again");
    let revived = poll_until(WAIT, || c.httpd().module_log().contains(&alive).then_some(()));
    assert!(revived.is_some(), "squid4 answers again but is not alive:\n{}", c.httpd().module_log());

    // An object only squid4 holds, owned by another Squid: a HIT at squid4.
    let held = path_owned(net, "held-at-4", |o| o != 2);
    warm(c.cache_for(h4), &held);
    let r = c.get(&held);
    assert_eq!(r.x_cache(), Some("HIT from squid4"), "{held}: {r:?}");
    // A new object squid4 owns by CARP goes to it, and is then remembered
    // as held there: the repeat is answered from memory, a HIT at squid4.
    let owned = path_owned(net, "owned-by-4", |o| o == 2);
    let first = c.get(&owned);
    assert_eq!(first.x_cache(), Some("MISS from squid4"), "{owned}: {first:?}");
    let again = c.get(&owned);
    assert_eq!(again.x_cache(), Some("HIT from squid4"), "{owned}: {again:?}");
    let log = c.httpd().module_log();
    let m: Vec<Recall> = recalls(&log).into_iter().filter(|r| r.url == key(&owned)).collect();
    assert_eq!(m.len(), 1, "{owned}: the repeat is answered from memory:\n{log}");
    assert_eq!(m[0].hits, vec![at4.clone()]);
    let q: Vec<Query> = all_after(&log, &alive).into_iter().filter(|q| q.url == key(&held)).collect();
    assert!(q.iter().all(|q| q.complete && q.replies == 3), "squid4 is waited for and answers again: {q:?}");
}

/// The query lines after the first line containing `marker`.
fn all_after(log: &str, marker: &str) -> Vec<Query> {
    let from = line_of(log, marker).unwrap_or(usize::MAX);
    queries(log).into_iter().filter(|q| q.line > from).collect()
}
