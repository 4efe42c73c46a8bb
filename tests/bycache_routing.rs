//! `ProxySet lbmethod=bycache` routing, checked the way an operator checks
//! it: which Squid answered (`X-Cache`), what each Squid logged, the route
//! log (`%{ICPQUERY_ROUTE}e`) and the module's own log. Real httpd, real
//! Squids, real ICP; no timing and no sleeps (support::poll_until only
//! waits for log lines to be written).
//!
//! Network numbers 191–195, one per test.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use mod_icpquery::engine::carp::{self, Array, Variant};
use support::balancer::{member_url, squid_name, BalancerConf, Member};
use support::httpd::{module_path, Httpd, HttpdOptions, Mpm};
use support::{host_ips, http, poll_until, CacheOptions, Cluster, Opcode, Response, Squid};

const B: &str = "caches";
/// Only bounds waits for log lines and cache entries on a loaded box.
const WAIT: Duration = Duration::from_secs(30);
/// The request header that ties a route-log line to a request (it is not
/// part of any cache key).
const ID: &str = "X-Test-Id";
const ROUTE_LOG: &str = "route.log";
/// The tag of the test's own requests straight to a Squid.
const DIRECT: &str = "direct";
/// Every Squid also writes `ids.log`: the request's `X-Test-Id` (which
/// mod_proxy passes on) after the URL it stored the object under, whole
/// (Squid logs URLs without their query unless told otherwise).
const SQUID_LOG: &str = "logformat ids %ts.%03tu %>a %Ss/%03>Hs %rm %ru %{X-Test-Id}>h\n\
                         access_log stdio:{dir}/ids.log ids\n\
                         strip_query_terms off\n";

// ---------------------------------------------------------------- set-up

/// The portal lines: the module first (ProxySet looks the method up while
/// reading), its log at level 3, a 2 s timeout (a lookup still ends when
/// every cache has answered), the route log, `directives`, then the
/// balancer.
fn portal_conf(conf: &BalancerConf, directives: &str) -> String {
    format!(
        "LoadModule icpquery_module {}\n\
         ICPQueryLog logs/icpquery.log\n\
         ICPQueryLogLevel 3\n\
         ICPQueryTimeout 2000000\n\
         LogFormat \"%{{ICPQUERY_ROUTE}}e %{{BALANCER_WORKER_NAME}}e %m %{{{ID}}}i %U%q\" route\n\
         CustomLog logs/{ROUTE_LOG} route\n\
         {directives}\n\
         {}",
        module_path().display(),
        conf.render()
    )
}

/// Origins, Squids (with `SQUID_LOG`) and the portal.
fn start(net: u8, conf: &BalancerConf, directives: &str) -> Cluster {
    let mut c = Cluster::start_caches_with(net, &squids(""));
    c.start_portal(HttpdOptions::without_module(net, Mpm::Event, portal_conf(conf, directives)));
    c
}

/// The Squids' configuration: `SQUID_LOG` and `more`.
fn squids(more: &str) -> CacheOptions {
    let lines = format!("{SQUID_LOG}{more}");
    CacheOptions { squid_extra_conf: [lines.clone(), lines.clone(), lines], ..Default::default() }
}

/// `http://localhost` and the path: the key for a plain path.
fn local_key(path: &str) -> String {
    format!("http://localhost{path}")
}

// ---------------------------------------------------------------- requests

/// GET through the portal, tagged with `id` (and `headers`).
fn get(c: &Cluster, path: &str, id: &str, headers: &[(&str, &str)]) -> Response {
    send(c.portal_addr(), "GET", path, id, headers, b"")
}

fn send(addr: SocketAddr, method: &str, path: &str, id: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut all = vec![(ID, id)];
    all.extend_from_slice(headers);
    let r = http::request_with_body(addr, method, path, &all, body)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path} ({id}): {e}"));
    assert_eq!(r.status, 200, "{method} http://{addr}{path} ({id}): {r:?}");
    r
}

/// Fetch `path` straight from `squid` (with `host` as Host) until it holds
/// `key`, as an ICP query to it says.
fn store_at(squid: &Squid, path: &str, host: &str, key: &str) {
    let r = send(squid.http_addr(), "GET", path, DIRECT, &[("Host", host)], b"");
    assert_eq!(r.cache_name(), Some(squid.name().as_str()), "{r:?}");
    let held = poll_until(WAIT, || (squid.icp_query(key) == Some(Opcode::Hit)).then_some(()));
    assert!(held.is_some(), "{} never answered ICP_OP_HIT for {key} after GET {path}", squid.name());
}

/// GET `path` as HTTP/1.0 without a Host header (which `support::http`
/// always sends); the response's X-Cache.
fn get_without_host(addr: SocketAddr, path: &str, id: &str) -> String {
    use std::io::{Read, Write};
    let mut t = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    t.set_read_timeout(Some(http::READ_TIMEOUT)).expect("set timeout");
    write!(t, "GET {path} HTTP/1.0\r\n{ID}: {id}\r\n\r\n").expect("send");
    let mut out = String::new();
    t.read_to_string(&mut out).unwrap_or_else(|e| panic!("GET {path} (HTTP/1.0): {e}"));
    let status = out.lines().next().unwrap_or("");
    assert!(status.ends_with(" 200 OK"), "GET {path} (HTTP/1.0): {out}");
    let x_cache = out.lines().find_map(|l| l.strip_prefix("X-Cache: "));
    x_cache.unwrap_or("no X-Cache").trim().to_owned()
}

/// The response's X-Cache ("HIT from squid3").
fn served(r: &Response) -> String {
    r.x_cache().unwrap_or("no X-Cache").to_owned()
}

// ---------------------------------------------------------------- logs

/// One line of the route log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    route: String,
    worker: String,
    method: String,
    id: String,
    target: String,
}

fn route_log(h: &Httpd) -> Vec<Route> {
    support::read_lossy(&h.log_dir().join(ROUTE_LOG))
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(5, ' ');
            let mut next = || f.next().map(str::to_owned);
            Some(Route { route: next()?, worker: next()?, method: next()?, id: next()?, target: next()? })
        })
        .collect()
}

/// The route-log lines of requests `ids`, once every one is written.
fn routes(h: &Httpd, ids: &[String]) -> HashMap<String, Route> {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let found = poll_until(WAIT, || {
        let lines: HashMap<String, Route> =
            route_log(h).into_iter().filter(|r| want.contains(r.id.as_str())).map(|r| (r.id.clone(), r)).collect();
        (lines.len() == want.len()).then_some(lines)
    });
    found.unwrap_or_else(|| {
        let have: HashSet<String> = route_log(h).into_iter().map(|r| r.id).collect();
        let missing: Vec<&&str> = want.iter().filter(|id| !have.contains(**id)).take(10).collect();
        panic!("route log: no line for {missing:?}; read {}", h.log_dir().join(ROUTE_LOG).display())
    })
}

fn route(h: &Httpd, id: &str) -> Route {
    routes(h, &[id.to_owned()]).remove(id).expect("waited for")
}

/// The keys of the module log's `query … for "KEY"` lines (level 3), in
/// order, with the log's `\xHH` escapes undone.
fn queried_keys(h: &Httpd) -> Vec<String> {
    h.module_log()
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("] query ")? + 8..];
            let rest = &rest[rest.find(" for \"")? + 6..];
            Some(unescape(&rest[..rest.find('"')?]))
        })
        .collect()
}

/// A value as the module log shows it (`logfile::Escaped`: bytes outside
/// printable ASCII, `"` and `\` as `\xHH`), as it was.
fn unescape(shown: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = shown.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail.strip_prefix(b"x").filter(|t| t.len() >= 2).map(|t| &t[..2]);
        match hex.and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()) {
            Some(v) if b == b'\\' => {
                bytes.push(v);
                rest = &tail[3..];
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The module log's choice lines: (key, member, route label).
fn choices(h: &Httpd) -> Vec<(String, String, String)> {
    let prefix = format!("] balancer://{B} \"");
    h.module_log()
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            let (key, rest) = rest.split_once("\" -> ")?;
            let (member, label) = rest.split_once(" (")?;
            Some((unescape(key), member.to_owned(), label.trim_end_matches(')').to_owned()))
        })
        .collect()
}

/// The choice line for `key`, once written (it is written before the
/// response, but poll all the same).
fn choice_for(h: &Httpd, key: &str) -> (String, String) {
    let found = poll_until(WAIT, || {
        choices(h).into_iter().rev().find(|(k, _, _)| k == key).map(|(_, member, label)| (member, label))
    });
    found.unwrap_or_else(|| panic!("module log: no choice line for \"{key}\":\n{}", h.module_log()))
}

/// One line of a Squid's `ids.log` (see [`SQUID_LOG`]).
#[derive(Clone, Debug)]
struct Access {
    code: String,
    method: String,
    url: String,
    id: String,
}

fn access_log(s: &Squid) -> Vec<Access> {
    support::read_lossy(&s.dir().join("ids.log"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 6).then(|| Access {
                code: f[2].to_owned(),
                method: f[3].to_owned(),
                url: f[4].to_owned(),
                id: f[5].to_owned(),
            })
        })
        .collect()
}

/// The HTTP requests (not ICP, not the test's own direct fetches) that
/// `squid` logged for URLs containing `marker`, once there are at least `n`.
fn squid_saw(squid: &Squid, marker: &str, n: usize) -> Vec<Access> {
    let found = poll_until(WAIT, || {
        let lines: Vec<Access> = access_log(squid)
            .into_iter()
            .filter(|a| a.method != "ICP_QUERY" && a.id != DIRECT && a.url.contains(marker))
            .collect();
        (lines.len() >= n).then_some(lines)
    });
    found.unwrap_or_else(|| {
        let log = support::read_lossy(&squid.dir().join("ids.log"));
        panic!("{}: fewer than {n} portal requests with {marker:?} logged:\n{log}", squid.name())
    })
}

/// The line `squid` logged for the request tagged `id`, if any (now).
fn squid_line(squid: &Squid, id: &str) -> Option<Access> {
    access_log(squid).into_iter().find(|a| a.id == id)
}

/// The line `squid` logged for the request tagged `id`, once written.
fn logged_by(squid: &Squid, id: &str) -> Access {
    poll_until(WAIT, || squid_line(squid, id)).unwrap_or_else(|| {
        let log = support::read_lossy(&squid.dir().join("ids.log"));
        panic!("{}: no line for request {id}:\n{log}", squid.name())
    })
}

// ---------------------------------------------------------------- CARP

/// The CARP owner of `key` among the three hosts of `net` with `weights`,
/// as Squid's `carp` parents would pick it (names: the hosts as written in
/// the BalancerMember URLs).
fn carp_owner(net: u8, weights: [u32; 3], key: &str) -> usize {
    let names = host_ips(net).map(|ip| ip.to_string());
    let members: Vec<carp::Member<'_>> =
        names.iter().zip(weights).map(|(name, weight)| carp::Member { name, weight }).collect();
    Array::new(&members, Variant::Squid).owner(key.as_bytes(), |_| true).expect("weights > 0")
}

// ---------------------------------------------------------------- 1 + 6

/// An object one Squid holds (fetched there directly, and whose CARP owner
/// is another Squid) is served by that Squid as a HIT, for each Squid; then
/// the status page lists the balancer's caches, and not the byrequests
/// balancer next to it.
#[test]
fn an_object_held_by_one_squid_is_served_by_it_and_the_status_page_lists_the_caches() {
    let net = 191;
    let hosts = host_ips(net);
    let plain: String = hosts.iter().map(|ip| format!("    BalancerMember {}\n", member_url(*ip))).collect();
    let conf = BalancerConf::over_squids(net, B).lbmethod("bycache").extra(&format!(
        "<Proxy balancer://plain>\n{plain}    ProxySet lbmethod=byrequests\n</Proxy>\n\
         ProxyPass /plain/ balancer://plain/wsgi/\n\
         <Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>"
    ));
    let c = start(net, &conf, "");
    let h = c.httpd();

    for (i, squid) in c.squids().iter().enumerate() {
        // A path this Squid does not own by CARP: only a HIT brings it here.
        let path = (0..)
            .map(|k| format!("/wsgi/held/{i}-{k}"))
            .find(|p| carp_owner(net, [1, 1, 1], &local_key(p)) != i)
            .expect("some path");
        let key = local_key(&path);
        store_at(squid, &path, "localhost", &key);
        let others: Vec<&Squid> = c.squids().iter().filter(|s| s.host() != squid.host()).collect();
        for other in &others {
            assert_eq!(other.icp_query(&key), Some(Opcode::Miss), "{} holds {key} too", other.name());
        }

        let id = format!("held{i}");
        let r = get(&c, &path, &id, &[]);
        assert_eq!(served(&r), format!("HIT from {}", squid.name()), "GET {path} through the portal");
        let line = route(h, &id);
        assert_eq!((line.route.as_str(), line.worker.as_str()), ("hit", member_url(squid.host()).as_str()), "{line:?}");
        assert_eq!(choice_for(h, &key), (member_url(squid.host()), "hit".to_owned()));
        assert!(queried_keys(h).contains(&key), "no ICP query logged for {key}:\n{}", h.module_log());
        // Only the holder saw the request, and served it from its cache.
        let seen = squid_saw(squid, &path, 1);
        assert_eq!((seen.len(), seen[0].id.as_str(), seen[0].url.as_str()), (1, id.as_str(), key.as_str()), "{seen:?}");
        assert!(seen[0].code.contains("HIT"), "{seen:?}");
        for other in &others {
            assert!(squid_line(other, &id).is_none(), "{} was asked for {path} too", other.name());
        }
    }

    // Held by the two Squids that do not own it: the first HIT to arrive
    // wins (the replies are logged in the order they came).
    for k in 0..3 {
        let path =
            (0..).map(|j| format!("/wsgi/twice/{k}-{j}")).find(|p| carp_owner(net, [1, 1, 1], &local_key(p)) == k);
        let path = path.expect("some path");
        let key = local_key(&path);
        let holders: Vec<&Squid> = c.squids().iter().enumerate().filter(|(i, _)| *i != k).map(|(_, s)| s).collect();
        for squid in &holders {
            store_at(squid, &path, "localhost", &key);
        }
        let id = format!("twice{k}");
        let r = get(&c, &path, &id, &[]);
        let line = route(h, &id);
        let log = h.module_log();
        let lines: Vec<&str> = log.lines().collect();
        let query = lines.iter().rposition(|l| l.contains("] query ") && l.contains(&format!("\"{key}\"")));
        let first_hit = lines[query.expect("queried")..].iter().find_map(|l| {
            let rest = &l[l.find("] ICP_OP_HIT from ")? + 18..];
            rest.contains(&format!(" for \"{key}\" in ")).then(|| rest.split(':').next().unwrap_or("").to_owned())
        });
        let first_hit = first_hit.unwrap_or_else(|| panic!("no HIT reply logged for {key}:\n{log}"));
        let first = c.cache_for(first_hit.parse().expect("an address"));
        assert_eq!(served(&r), format!("HIT from {}", first.name()), "GET {path}: the first HIT came from {first_hit}");
        assert_eq!((line.route.as_str(), line.worker.as_str()), ("hit", member_url(first.host()).as_str()));
    }

    // The byrequests balancer works and is none of the module's business.
    for k in 0..3 {
        let id = format!("plain{k}");
        let r = get(&c, &format!("/plain/byreq-{k}"), &id, &[]);
        assert!(r.cache_name().is_some(), "{r:?}");
        assert_eq!(route(h, &id).route, "-", "no ICPQUERY_ROUTE from byrequests");
    }
    assert!(
        queried_keys(h).iter().all(|k| !k.contains("byreq-")),
        "ICP queries for the byrequests balancer:\n{}",
        h.module_log()
    );

    // 6: the status page, ?auto.
    let page = c.get("/icpquery-status?auto");
    assert_eq!(page.status, 200, "{page:?}");
    let text = page.body_text();
    let map = support::parse_auto(&text);
    let servers: usize = map["Servers"].parse().unwrap();
    let names: Vec<&str> = (0..servers).map(|n| map[&format!("Server{n}Name")].as_str()).collect();
    let n = names.iter().position(|&s| s == format!("balancer://{B}")).unwrap_or_else(|| panic!("{text}"));
    assert!(!names.iter().any(|s| s.contains("plain")), "the byrequests balancer is listed:\n{text}");
    assert!(!text.contains("balancer://plain"), "{text}");
    let region = &map[&format!("Server{n}Region")];
    let peers: usize = map["Peers"].parse().unwrap();
    let mine: BTreeMap<String, String> = (0..peers)
        .filter(|p| &map[&format!("Peer{p}Region")] == region)
        .map(|p| (map[&format!("Peer{p}Address")].clone(), map[&format!("Peer{p}Hit")].clone()))
        .collect();
    let want: Vec<String> = hosts.iter().map(|ip| format!("{ip}:3130")).collect();
    assert_eq!(mine.keys().cloned().collect::<Vec<_>>(), want, "{text}");
    for (addr, hits) in &mine {
        assert!(hits.parse::<u64>().unwrap() >= 1, "{addr} answered a HIT above, the page says {hits}:\n{text}");
    }
}

// ---------------------------------------------------------------- 2

/// With loadfactors 1:2:3, every new object goes to its CARP owner (Squid's
/// hash over the hosts with those weights) and the repeat is a HIT there;
/// the spread follows the weights, and no object is stored twice.
#[test]
fn new_objects_go_to_their_carp_owner_and_are_stored_once() {
    let net = 193;
    const N: usize = 1_000;
    const THREADS: usize = 4;
    let factors = [1u32, 2, 3];
    let mut conf = BalancerConf::over_squids(net, B).lbmethod("bycache");
    for (i, lf) in factors.iter().enumerate() {
        conf = conf.with_member(i, |m: Member| m.loadfactor(*lf));
    }
    let c = start(net, &conf, "");
    let h = c.httpd();
    let hosts = host_ips(net);
    let names = hosts.map(squid_name);

    let paths: Vec<String> = (0..N).map(|i| format!("/wsgi/carp/{i}")).collect();
    let owners: Vec<usize> = paths.iter().map(|p| carp_owner(net, factors.map(|f| f * 100), &local_key(p))).collect();
    // CARP is scale-invariant: httpd's lbfactor (loadfactor × 100) and the
    // loadfactor itself give the same owner, and owner() is preference()[0].
    let hosts_text = hosts.map(|ip| ip.to_string());
    let small: Vec<carp::Member<'_>> =
        hosts_text.iter().zip(factors).map(|(name, weight)| carp::Member { name, weight }).collect();
    let small = Array::new(&small, Variant::Squid);
    for (p, &owner) in paths.iter().zip(&owners) {
        let key = local_key(p);
        assert_eq!(small.owner(key.as_bytes(), |_| true), Some(owner), "{key}");
        assert_eq!(small.preference(key.as_bytes()).first(), Some(&owner), "{key}");
    }

    // Each URL twice (first, repeat), URLs spread over a few clients.
    let results: Vec<(usize, Response, Response)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (c, paths) = (&c, &paths);
                s.spawn(move || {
                    (t..N)
                        .step_by(THREADS)
                        .map(|i| {
                            let first = get(c, &paths[i], &format!("a{i}"), &[]);
                            let again = get(c, &paths[i], &format!("b{i}"), &[]);
                            (i, first, again)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("client thread")).collect()
    });
    let mut wrong = Vec::new();
    for (i, first, again) in &results {
        let owner = &names[owners[*i]];
        let (want_first, want_again) = (format!("MISS from {owner}"), format!("HIT from {owner}"));
        if served(first) != want_first || served(again) != want_again {
            wrong.push(format!("{}: {} then {}, owner {owner}", paths[*i], served(first), served(again)));
        }
    }
    assert!(wrong.is_empty(), "{} of {N} URLs not served by their CARP owner:\n{}", wrong.len(), wrong.join("\n"));

    // The route log says why.
    let ids: Vec<String> = (0..N).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
    let lines = routes(h, &ids);
    for i in 0..N {
        let owner = member_url(hosts[owners[i]]);
        let (a, b) = (&lines[&format!("a{i}")], &lines[&format!("b{i}")]);
        assert_eq!((a.route.as_str(), a.worker.as_str()), ("carp", owner.as_str()), "{}: {a:?}", paths[i]);
        assert_eq!((b.route.as_str(), b.worker.as_str()), ("hit", owner.as_str()), "{}: {b:?}", paths[i]);
    }

    // The spread follows the weights 1:2:3 (loosely).
    let mut served_by = [0usize; 3];
    for (_, first, _) in &results {
        let k = names.iter().position(|n| Some(n.as_str()) == first.cache_name()).expect("checked above");
        served_by[k] += 1;
    }
    let total: u32 = factors.iter().sum();
    for (k, &n) in served_by.iter().enumerate() {
        let expected = N as f64 * f64::from(factors[k]) / f64::from(total);
        assert!(
            (0.7 * expected..=1.3 * expected).contains(&(n as f64)),
            "{} got {n} of {N} objects, expected about {expected:.0}: {served_by:?}",
            names[k]
        );
    }

    // Stored once: each Squid saw exactly the objects it owns, each fetched
    // once (a{i}, a MISS) and served once from its cache (b{i}, a HIT),
    // under the URL the module asked about; no other Squid holds them.
    for (k, squid) in c.squids().iter().enumerate() {
        let logged = squid_saw(squid, "/wsgi/carp/", 2 * served_by[k]);
        assert_eq!(logged.len(), 2 * served_by[k], "{}: {logged:?}", squid.name());
        for a in &logged {
            let (kind, i) = a.id.split_at(1);
            let i: usize = i.parse().unwrap_or_else(|_| panic!("{a:?}"));
            assert_eq!(owners[i], k, "{} was asked for {}, owned by {}", squid.name(), a.url, names[owners[i]]);
            assert_eq!(a.url, local_key(&paths[i]), "{a:?}");
            let want = if kind == "a" { "MISS" } else { "HIT" };
            assert!(a.code.contains(want), "{}: {a:?}", squid.name());
        }
    }
    for i in (0..N).step_by(25) {
        let key = local_key(&paths[i]);
        for (k, squid) in c.squids().iter().enumerate() {
            let want = if k == owners[i] { Opcode::Hit } else { Opcode::Miss };
            assert_eq!(squid.icp_query(&key), Some(want), "{} for {key}", squid.name());
        }
    }
}

// ---------------------------------------------------------------- 3 + 4

/// The key the module asks about is the URL the Squid stores the object
/// under (its access log's URL), for paths with %-escapes, spaces, UTF-8,
/// queries, `;` and `,`; then other methods than GET and HEAD go to the
/// CARP owner without a lookup.
#[test]
fn keys_match_what_squid_stores_and_other_methods_skip_the_lookup() {
    let net = 192;
    let conf = BalancerConf::over_squids(net, B).lbmethod("bycache");
    let c = start(net, &conf, "");
    let h = c.httpd();

    // (request target, the path and query mod_proxy sends the member)
    let cases: &[(&str, &str)] = &[
        ("/wsgi/keys/k01-a%20b", "/wsgi/keys/k01-a%20b"),
        ("/wsgi/keys/k02-100%25", "/wsgi/keys/k02-100%25"),
        ("/wsgi/keys/k03-what%3Fno-query", "/wsgi/keys/k03-what%3Fno-query"),
        ("/wsgi/keys/k04-two%20%20spaces%20", "/wsgi/keys/k04-two%20%20spaces%20"),
        ("/wsgi/keys/k05-plus+sign", "/wsgi/keys/k05-plus+sign"),
        ("/wsgi/keys/k06-\u{fc}\u{20ac}", "/wsgi/keys/k06-%C3%BC%E2%82%AC"),
        ("/wsgi/keys/k07-%C3%BC", "/wsgi/keys/k07-%C3%BC"),
        ("/wsgi/keys/k08-%c3%a9", "/wsgi/keys/k08-%C3%A9"),
        ("/wsgi/keys/k09-q?x=1&y=two", "/wsgi/keys/k09-q?x=1&y=two"),
        ("/wsgi/keys/k10-bare?", "/wsgi/keys/k10-bare?"),
        ("/wsgi/keys/k11-esc?a=%20b", "/wsgi/keys/k11-esc?a=%20b"),
        ("/wsgi/keys/k12-a;b=1,c", "/wsgi/keys/k12-a;b=1,c"),
        ("/wsgi/keys/k13-%3B%2C;,", "/wsgi/keys/k13-;,;,"),
        ("/wsgi/keys/k14-a%20b?c=d%20e&f", "/wsgi/keys/k14-a%20b?c=d%20e&f"),
        ("/wsgi/keys/k15-%7E~'%27", "/wsgi/keys/k15-~~''"),
        ("/wsgi/keys/k16-%22%3C%3E%5B%5D%7C%5E%60%7B%7D", "/wsgi/keys/k16-%22%3C%3E%5B%5D%7C%5E%60%7B%7D"),
        ("/wsgi/keys/k17-a//b/./c/../d", "/wsgi/keys/k17-a/b/d"),
        ("/wsgi/keys/k18-%23frag%2A!$@:=&", "/wsgi/keys/k18-%23frag*!$@:=&"),
        ("/wsgi/keys/k19-q?\u{fc}=%C3%BC", "/wsgi/keys/k19-q?\u{fc}=%C3%BC"),
        ("/wsgi/keys/k20-q?a=b?c/d;e", "/wsgi/keys/k20-q?a=b?c/d;e"),
        ("/wsgi/keys/k21-q?a=%7E~'%27", "/wsgi/keys/k21-q?a=%7E~'%27"),
        ("/wsgi/keys/k22-q?[]|^{}`", "/wsgi/keys/k22-q?[]|^{}`"),
        ("/wsgi/keys/k23-tab%09x?y=%0D%0A", "/wsgi/keys/k23-tab%09x?y=%0D%0A"),
        ("/wsgi/keys/k24-\\x", "/wsgi/keys/k24-%5Cx"),
    ];
    let mut problems = Vec::new();
    for (n, (target, sent)) in cases.iter().enumerate() {
        let marker = &target[..target.find('-').unwrap() + 1];
        let expected_key = local_key(sent);
        let id = format!("key{n}a");
        let first = get(&c, target, &id, &[]);
        let Some(squid) = first.cache_name().map(|name| c.cache_named(name)) else {
            problems.push(format!("{target}: no X-Cache: {first:?}"));
            continue;
        };
        let asked: Vec<String> = queried_keys(h).into_iter().filter(|k| k.contains(marker)).collect();
        let stored_url = &logged_by(squid, &id).url;
        if asked.len() != 1 || &asked[0] != stored_url {
            problems.push(format!("{target}: the module asked {asked:?}, {} logged {stored_url:?}", squid.name()));
        }
        let (_, chosen) = choice_for(h, stored_url);
        if chosen != "carp" {
            problems.push(format!("{target}: a new object was routed by {chosen}"));
        }
        if stored_url != &expected_key {
            problems.push(format!("{target}: {} logged {stored_url:?}, expected {expected_key:?}", squid.name()));
        }
        let again = get(&c, target, &format!("key{n}b"), &[]);
        let route = route(h, &format!("key{n}b")).route;
        if served(&again) != format!("HIT from {}", squid.name()) || route != "hit" {
            problems.push(format!(
                "{target}: repeat was {} (route {route}) after {} stored it",
                served(&again),
                squid.name()
            ));
        }
    }
    assert!(problems.is_empty(), "{}\nmodule log:\n{}", problems.join("\n"), h.module_log());

    // 4: POST with a body goes to the CARP owner, no ICP query; even when
    // another Squid holds the URL (a GET would go there).
    let held = (0..)
        .map(|k| format!("/wsgi/post/held{k}"))
        .find(|p| carp_owner(net, [1, 1, 1], &local_key(p)) != 0)
        .expect("some path");
    store_at(&c.squids()[0], &held, "localhost", &local_key(&held));
    let paths: Vec<String> = (0..9).map(|i| format!("/wsgi/post/p{i}")).chain([held.clone()]).collect();
    let before = queried_keys(h).len();
    let mut owners_seen = HashSet::new();
    for (i, path) in paths.iter().enumerate() {
        let key = local_key(path);
        let owner = carp_owner(net, [1, 1, 1], &key);
        owners_seen.insert(owner);
        let id = format!("post{i}");
        let body = format!("field=value&n={i}");
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        let r = send(c.portal_addr(), "POST", path, &id, &headers, body.as_bytes());
        assert_eq!(served(&r), format!("MISS from {}", squid_name(host_ips(net)[owner])), "POST {path}");
        let line = route(h, &id);
        assert_eq!((line.route.as_str(), line.method.as_str()), ("carp", "POST"), "{line:?}");
        assert_eq!(line.worker, member_url(host_ips(net)[owner]), "{line:?}");
        assert_eq!(choice_for(h, &key), (member_url(host_ips(net)[owner]), "carp".to_owned()));
        let seen = logged_by(&c.squids()[owner], &id);
        assert_eq!((seen.method.as_str(), seen.url.as_str()), ("POST", key.as_str()), "{seen:?}");
    }
    assert_eq!(owners_seen.len(), 3, "the POSTs should reach every Squid");
    let after = queried_keys(h);
    let post_queries: Vec<&String> = after[before..].iter().filter(|k| k.contains("/wsgi/post/")).collect();
    assert!(post_queries.is_empty(), "ICP queries for POSTs: {post_queries:?}");

    // HEAD is looked up: the held object is a HIT at the Squid holding it.
    let r = send(c.portal_addr(), "HEAD", &held, "head", &[], b"");
    assert_eq!(served(&r), format!("HIT from {}", c.squids()[0].name()), "HEAD {held}");
    let line = route(h, "head");
    assert_eq!((line.route.as_str(), line.method.as_str()), ("hit", "HEAD"), "{line:?}");
    assert!(queried_keys(h)[before..].contains(&local_key(&held)), "no ICP query for HEAD {held}");
}

// ---------------------------------------------------------------- 5

/// `ICPQueryBalancerPort` at a closed port: every member's host refuses the
/// query by ICMP, the members are dead to ICP, and byrequests spreads the
/// requests; every request is still served.
#[test]
fn no_icp_at_the_balancer_port_falls_back_to_byrequests() {
    let net = 194;
    let conf = BalancerConf::over_squids(net, B).lbmethod("bycache");
    let c = start(net, &conf, "ICPQueryBalancerPort 3199");
    let h = c.httpd();
    let n = 30;
    let ids: Vec<String> = (0..n).map(|i| format!("dead{i}")).collect();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let r = get(&c, &format!("/wsgi/dead/{i}"), id, &[]);
        *tally.entry(r.cache_name().unwrap_or("-").to_owned()).or_default() += 1;
    }
    let lines = routes(h, &ids);
    let not_fallback: Vec<&Route> = ids.iter().map(|id| &lines[id]).filter(|l| l.route != "fallback").collect();
    assert!(not_fallback.is_empty(), "not routed by fallback: {not_fallback:?}\n{}", h.module_log());
    let names = host_ips(net).map(squid_name);
    for name in &names {
        let got = tally.get(name).copied().unwrap_or(0);
        assert!((n / 3 - 2..=n / 3 + 2).contains(&got), "byrequests' turns: {tally:?}");
    }
    let log = h.module_log();
    for ip in host_ips(net) {
        let refused = format!("{ip}:3199 refused the query by ICMP");
        assert!(log.contains(&refused), "no \"{refused}\":\n{log}");
        assert!(log.contains(&format!("cache {ip}:3199 is dead")), "{ip} never died:\n{log}");
    }
}

/// `ICPQueryBalancerKey host` with `ProxyPreserveHost On`, Squids in vhost
/// mode: the key is `http://` and the lower-cased Host, an object a Squid
/// holds for that Host is found there, and another Host's is not.
#[test]
fn host_keys_find_objects_in_vhost_squids() {
    let net = 195;
    // The sites these Squids accelerate (the ServerName too: mod_proxy sends
    // it as Host when the client sent none).
    let hosts_acl = format!("acl accelerated_site dstdomain www.example.org www.example.net portal{net}.test\n");
    let conf = BalancerConf::over_squids(net, B).lbmethod("bycache");
    let mut c = Cluster::start_caches_with(net, &squids(&hosts_acl));
    // support::squid writes `http_port … accel defaultsite=localhost
    // no-vhost`; these Squids key objects by the Host header instead.
    c.stop_all_squids();
    for squid in c.squids_mut() {
        let text = std::fs::read_to_string(squid.conf_path()).unwrap();
        let line = text.lines().find(|l| l.starts_with("http_port ")).unwrap().to_owned();
        assert!(line.ends_with(" no-vhost"), "{line}");
        let vhost = line.replace(" no-vhost", " vhost");
        std::fs::write(squid.conf_path(), text.replace(&line, &vhost)).unwrap();
        squid.start_again();
    }
    let opts = HttpdOptions::without_module(
        net,
        Mpm::Event,
        portal_conf(&conf, "ICPQueryBalancerKey host\nProxyPreserveHost On"),
    );
    c.start_portal(opts);
    let h = c.httpd();

    // Held by a Squid that does not own it, under its Host.
    let holder = &c.squids()[1];
    let path = (0..)
        .map(|k| format!("/wsgi/vh/{k}"))
        .find(|p| {
            carp_owner(net, [1, 1, 1], &format!("http://www.example.org{p}")) != 1
                && carp_owner(net, [1, 1, 1], &format!("http://www.example.net{p}")) != 1
        })
        .expect("some path");
    let key = format!("http://www.example.org{path}");
    store_at(holder, &path, "www.example.org", &key);
    assert_eq!(holder.icp_query(&local_key(&path)), Some(Opcode::Miss), "stored under its Host, not localhost");

    let r = get(&c, &path, "vh-hit", &[("Host", "WWW.Example.ORG")]);
    assert_eq!(served(&r), format!("HIT from {}", holder.name()), "GET {path} Host: WWW.Example.ORG");
    let line = route(h, "vh-hit");
    assert_eq!((line.route.as_str(), line.worker.as_str()), ("hit", member_url(holder.host()).as_str()), "{line:?}");
    assert!(queried_keys(h).contains(&key), "no query for {key}:\n{}", h.module_log());
    let seen = logged_by(holder, "vh-hit");
    assert!(seen.code.contains("HIT") && seen.url == key, "{seen:?}");

    // The same path under another Host is another object: its CARP owner
    // fetches and stores it, and the repeat is a HIT there.
    let other_key = format!("http://www.example.net{path}");
    let owner = &c.squids()[carp_owner(net, [1, 1, 1], &other_key)];
    let r = get(&c, &path, "vh-other", &[("Host", "www.example.net")]);
    assert_eq!(served(&r), format!("MISS from {}", owner.name()), "GET {path} Host: www.example.net");
    assert_eq!(route(h, "vh-other").route, "carp");
    let r = get(&c, &path, "vh-other-again", &[("Host", "www.example.net")]);
    assert_eq!(served(&r), format!("HIT from {}", owner.name()));
    assert_eq!(route(h, "vh-other-again").route, "hit");
    assert!(queried_keys(h).contains(&other_key), "no query for {other_key}:\n{}", h.module_log());
    for id in ["vh-other", "vh-other-again"] {
        assert_eq!(logged_by(owner, id).url, other_key);
    }

    // The same site named another way, or not named: mod_proxy sends the
    // client's Host (or, with none, the ServerName), Squid stores the object
    // under http://www.example.org/… (the default port and a trailing dot
    // dropped) or http://portal195.test/…, and the portal should find the
    // copy a Squid already holds instead of storing a second one elsewhere.
    // (Fails at 568ad4b: the module asks about http://www.example.org:80/…,
    // http://www.example.org./… and http://localhost/…, which no Squid
    // holds, and CARP on those keys picks another Squid.)
    let mut problems = Vec::new();
    let site = format!("portal{net}.test");
    let cases = [("www.example.org:80", "www.example.org"), ("www.example.org.", "www.example.org"), ("", &site)];
    for (n, (spelled, stored_as)) in cases.into_iter().enumerate() {
        let path = (0..)
            .map(|k| format!("/wsgi/vh/same{n}-{k}"))
            .find(|p| {
                let key_as_sent = format!("http://{}{p}", if spelled.is_empty() { "localhost" } else { spelled });
                carp_owner(net, [1, 1, 1], &format!("http://{stored_as}{p}"))
                    != carp_owner(net, [1, 1, 1], &key_as_sent)
            })
            .expect("some path");
        let key = format!("http://{stored_as}{path}");
        let stored = get(&c, &path, &format!("same{n}a"), &[("Host", stored_as)]);
        let holder = c.cache_named(stored.cache_name().expect("X-Cache"));
        assert_eq!(holder.icp_query(&key), Some(Opcode::Hit), "{} holds {key}", holder.name());
        let id = format!("same{n}b");
        let x_cache = match spelled {
            "" => get_without_host(c.portal_addr(), &path, &id),
            _ => served(&get(&c, &path, &id, &[("Host", spelled)])),
        };
        let line = route(h, &id);
        if x_cache != format!("HIT from {}", holder.name()) || line.route != "hit" {
            let asked = queried_keys(h).into_iter().rfind(|k| k.contains(&path));
            let holders: Vec<String> =
                c.squids().iter().filter(|s| s.icp_query(&key) == Some(Opcode::Hit)).map(Squid::name).collect();
            let host = if spelled.is_empty() { "no Host (HTTP/1.0)".to_owned() } else { format!("Host: {spelled}") };
            problems.push(format!(
                "GET {path} with {host}: {x_cache} (route {}), expected HIT from {} (it holds {key}); the module \
                 asked {asked:?}; now {key} is held by {holders:?}",
                line.route,
                holder.name(),
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
