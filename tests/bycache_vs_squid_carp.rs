//! `lbmethod=bycache` against a real Squid CARP front end over the same
//! caches: a new object goes to the member a Squid CARP array names for
//! it, and the repeat is a HIT there.
//!
//! The harness's three Squid accelerators (127.0.196.2-4:3128, origins
//! behind them), a bycache portal over them with loadfactors 1:2:3, and a
//! Squid CARP front end (`support::carp_front`, on the portal's address,
//! port 3128) whose parents are the same three Squids with weights 1:2:3,
//! named by host as written — as the balancer members
//! `http://127.0.196.N:3128` are. For each of 1,050 distinct request
//! targets (ASCII, queries, %-escapes, raw UTF-8 in the path and in the
//! query, escapes mod_proxy rewrites):
//!
//! 1. through the portal first (nothing holds it yet): the route log says
//!    `carp`, to member M, the response is a MISS from M, and M logged the
//!    request under the URL `http://localhost` + the target as mod_proxy
//!    sent it — the key the module hashed;
//! 2. that target as sent (what a client of the front end would ask for
//!    the same object) through the front end: Squid's CARP forwards it to
//!    M too (`CarpFront::forwarded_to`; its own log says `CARP` and M),
//!    where it is a HIT: the object the portal stored;
//! 3. through the portal again: the route log says `hit`, to M, a HIT
//!    from M;
//! 4. afterwards M, and only M, answers ICP HIT for the key: no one stored
//!    it twice.
//!
//! Which form goes to the front end: mod_proxy canonicalises the path
//! before the module keys it (raw UTF-8 escaped, lower-case escapes
//! upper-cased, `%7E` `%3B` `%2C` decoded; the query passed as it is), and
//! the member stores the object under that form, while Squid keys a
//! request as the client wrote it. For the four kinds mod_proxy leaves
//! alone the two forms are the same target; for the other three a client
//! of the front end writing the raw form would ask for another object
//! (another key, so often another parent): the front end gets the form the
//! portal sent, the one that names the same object.
//!
//! The front end is asked after the portal, so that nothing is stored
//! before the portal's first request (a copy the front end's parent
//! fetched would make that request a HIT). Every disagreement is
//! collected and reported with both choices. The share per Squid follows
//! 1:2:3 (loosely).
//!
//! Network number 196. No sleeps: `poll_until` only waits for log lines.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::balancer::{member_url, BalancerConf, Member};
use support::carp_front::{escaped_for_log, key, CarpFront, Forward, Parent};
use support::httpd::{module_path, Httpd, HttpdOptions, Mpm};
use support::{http, poll_until, portal_ip, CacheOptions, Cluster, Opcode, Response, Squid};

const NET: u8 = 196;
const B: &str = "caches";
/// Loadfactors of the members (in host order) and weights of the parents.
const FACTORS: [u32; 3] = [1, 2, 3];
/// Distinct request targets (`targets`), a multiple of the kinds.
const N: usize = 1_050;
/// Clients per phase (targets are distinct: no two touch one object).
const THREADS: usize = 4;
/// Where the front end accelerates (its cache manager is on the next port).
const FRONT_PORT: u16 = 3128;
/// Only bounds waits for log lines on a loaded box.
const WAIT: Duration = Duration::from_secs(30);
/// The request header that ties a log line to a request.
const ID: &str = "X-Test-Id";
const ROUTE_LOG: &str = "route.log";
/// Every Squid also writes `ids.log`: result, URL as stored (query
/// included) and the request's `X-Test-Id` ("-" for the front end's).
const SQUID_LOG: &str = "logformat ids %Ss/%03>Hs %rm %ru %{X-Test-Id}>h\n\
                         access_log stdio:{dir}/ids.log ids\n\
                         strip_query_terms off\n";
/// How many disagreements a failure lists.
const SHOW: usize = 20;

// ---------------------------------------------------------------- set-up

/// Origins, Squids (with `SQUID_LOG`) and the bycache portal with
/// loadfactors `FACTORS`: module log at level 3, `ICPQueryTimeout` 2 s (a
/// lookup still ends as soon as every cache has answered), the route log.
fn start() -> Cluster {
    let lines = SQUID_LOG.to_owned();
    let caches = CacheOptions { squid_extra_conf: [lines.clone(), lines.clone(), lines], ..Default::default() };
    let mut c = Cluster::start_caches_with(NET, &caches);
    let mut conf = BalancerConf::over_squids(NET, B).lbmethod("bycache");
    for (i, lf) in FACTORS.iter().enumerate() {
        conf = conf.with_member(i, |m: Member| m.loadfactor(*lf));
    }
    let portal = format!(
        "LoadModule icpquery_module {}\n\
         ICPQueryLog logs/icpquery.log\n\
         ICPQueryLogLevel 3\n\
         ICPQueryTimeout 2000000\n\
         LogFormat \"%{{ICPQUERY_ROUTE}}e %{{BALANCER_WORKER_NAME}}e %{{{ID}}}i %U%q\" route\n\
         CustomLog logs/{ROUTE_LOG} route\n\
         {}",
        module_path().display(),
        conf.render()
    );
    c.start_portal(HttpdOptions::without_module(NET, Mpm::Event, portal));
    c
}

/// The front end's parents: the cluster's Squids in host order, weights
/// `FACTORS`, each named by its host as written.
fn parents(c: &Cluster) -> Vec<Parent> {
    let parents: Vec<Parent> = c.squids().iter().zip(FACTORS).map(|(s, w)| Parent::cache(s, w)).collect();
    let hosts = c.hosts().map(|h| h.to_string());
    assert_eq!(parents.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), hosts, "named by host as written");
    parents
}

// ---------------------------------------------------------------- targets

/// One request target and the path?query mod_proxy sends the member for
/// it (what the Squid stores the object under, after `http://localhost`).
struct Target {
    client: String,
    sent: String,
}

/// `N` distinct targets, seven kinds in turn.
fn targets() -> Vec<Target> {
    (0..N)
        .map(|n| {
            let (client, sent) = match n % 7 {
                // Plain ASCII.
                0 => (format!("/wsgi/bcf/plain-{n}"), None),
                // ASCII with a query.
                1 => (format!("/wsgi/bcf/q-{n}?k={n}&w=123"), None),
                // %-escaped UTF-8 and a space, in the path and in the query.
                2 => (format!("/wsgi/bcf/esc-%C5%9D{n}-a%20b?k=%C3%A9{n}&s=%20"), None),
                // Raw UTF-8 in the path (mod_proxy escapes it) and the query
                // (passed as it is).
                3 => (
                    format!("/wsgi/bcf/raw-\u{15d}{n}?k=\u{e9}{n}"),
                    Some(format!("/wsgi/bcf/raw-%C5%9D{n}?k=\u{e9}{n}")),
                ),
                // Lower-case escapes: upper-cased in the path, not in the query.
                4 => (format!("/wsgi/bcf/low-%c3%a9{n}?x=%c3%a9"), Some(format!("/wsgi/bcf/low-%C3%A9{n}?x=%c3%a9"))),
                // Escapes of characters a path may hold as they are: decoded.
                5 => (
                    format!("/wsgi/bcf/dec-%7E{n}%3B%2C;p=1,2?a=b?c/d;e&f"),
                    Some(format!("/wsgi/bcf/dec-~{n};,;p=1,2?a=b?c/d;e&f")),
                ),
                // Raw UTF-8 only in the query.
                _ => (format!("/wsgi/bcf/rawq-{n}?q=\u{fc}\u{20ac}{n}&r=%E2%82%AC"), None),
            };
            Target { sent: sent.unwrap_or_else(|| client.clone()), client }
        })
        .collect()
}

// ---------------------------------------------------------------- requests

/// GET `target` through the portal, tagged `id`.
fn portal_get(c: &Cluster, target: &str, id: &str) -> Response {
    let r = http::request(c.portal_addr(), "GET", target, &[(ID, id)])
        .unwrap_or_else(|e| panic!("GET {target} ({id}) through the portal: {e}"));
    assert_eq!(r.status, 200, "GET {target} ({id}) through the portal: {r:?}");
    r
}

/// `each(i)` for every `i` in 0..N, spread over `THREADS` clients; the
/// results in order of `i`.
fn in_parallel<T: Send>(each: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut out: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let each = &each;
                s.spawn(move || (t..N).step_by(THREADS).map(|i| (i, each(i))).collect::<Vec<_>>())
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("client thread")).collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

/// The response's X-Cache ("MISS from squid3").
fn served(r: &Response) -> String {
    r.x_cache().unwrap_or("no X-Cache").to_owned()
}

// ---------------------------------------------------------------- logs

/// One line of the route log.
#[derive(Clone, Debug)]
struct Route {
    route: String,
    worker: String,
    id: String,
}

fn route_log(h: &Httpd) -> Vec<Route> {
    support::read_lossy(&h.log_dir().join(ROUTE_LOG))
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            let mut next = || f.next().map(str::to_owned);
            Some(Route { route: next()?, worker: next()?, id: next()? })
        })
        .collect()
}

/// The route-log line of each request `ids`, once every one is written.
fn routes(h: &Httpd, ids: &[String]) -> HashMap<String, Route> {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let found = poll_until(WAIT, || {
        let lines: HashMap<String, Route> =
            route_log(h).into_iter().filter(|r| want.contains(r.id.as_str())).map(|r| (r.id.clone(), r)).collect();
        (lines.len() == want.len()).then_some(lines)
    });
    found.unwrap_or_else(|| panic!("route log: not every request of {} logged", h.log_dir().join(ROUTE_LOG).display()))
}

/// One line of a Squid's `ids.log` (see [`SQUID_LOG`]).
#[derive(Clone, Debug)]
struct Access {
    code: String,
    url: String,
    id: String,
}

/// The HTTP requests for `/wsgi/bcf/` URLs `squid` logged (not the ICP
/// queries), once there are `n`.
fn squid_saw(squid: &Squid, n: usize) -> Vec<Access> {
    let read = || -> Vec<Access> {
        support::read_lossy(&squid.dir().join("ids.log"))
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() == 4 && f[1] != "ICP_QUERY" && f[2].contains("/wsgi/bcf/")).then(|| Access {
                    code: f[0].to_owned(),
                    url: f[2].to_owned(),
                    id: f[3].to_owned(),
                })
            })
            .collect()
    };
    poll_until(WAIT, || Some(read()).filter(|l| l.len() >= n))
        .unwrap_or_else(|| panic!("{}: fewer than {n} requests logged; got {}", squid.name(), read().len()))
}

/// The front end's log lines for `/wsgi/bcf/` URLs, once there are `n`.
fn front_forwards(front: &CarpFront, n: usize) -> Vec<Forward> {
    let read = || -> Vec<Forward> {
        front.logged_forwards().into_iter().filter(|f| f.url.starts_with("http://localhost/wsgi/bcf/")).collect()
    };
    poll_until(WAIT, || Some(read()).filter(|l| l.len() >= n))
        .unwrap_or_else(|| panic!("the front end logged fewer than {n} requests; got {}", read().len()))
}

/// Fail with the first `SHOW` of `problems`, if any.
fn assert_none(what: &str, problems: &[String]) {
    let shown: Vec<&str> = problems.iter().take(SHOW).map(String::as_str).collect();
    assert!(problems.is_empty(), "{what}: {} of {N} targets:\n{}", problems.len(), shown.join("\n"));
}

// ---------------------------------------------------------------- the test

#[test]
fn new_objects_go_where_a_squid_carp_front_end_sends_them_and_repeat_as_hits_there() {
    let began = Instant::now();
    let c = start();
    let parents = parents(&c);
    // Declared after the cluster: stopped before the caches.
    let front = CarpFront::start(&c.dir().join("carpfront"), SocketAddr::from((portal_ip(NET), FRONT_PORT)), &parents);
    let h = c.httpd();
    let squids = c.squids();
    let names: Vec<String> = squids.iter().map(Squid::name).collect();
    let members: Vec<String> = c.hosts().iter().map(|ip| member_url(*ip)).collect();
    let targets = targets();
    let distinct: HashSet<&str> = targets.iter().map(|t| t.sent.as_str()).collect();
    assert_eq!(distinct.len(), N, "the targets must be distinct objects");
    let ready = began.elapsed();

    // 1. Through the portal first: by CARP, a MISS at the member chosen.
    let t1 = Instant::now();
    let first = in_parallel(|i| served(&portal_get(&c, &targets[i].client, &format!("a{i}"))));
    let first_ids: Vec<String> = (0..N).map(|i| format!("a{i}")).collect();
    let first_routes = routes(h, &first_ids);
    let mut chosen = vec![usize::MAX; N];
    let mut problems = Vec::new();
    for i in 0..N {
        let line = &first_routes[&first_ids[i]];
        let Some(m) = members.iter().position(|w| *w == line.worker) else {
            problems.push(format!("{}: routed to {:?} by {}", targets[i].client, line.worker, line.route));
            continue;
        };
        chosen[i] = m;
        if line.route != "carp" || first[i] != format!("MISS from {}", names[m]) {
            problems
                .push(format!("{}: route {} to {}, served {}", targets[i].client, line.route, line.worker, first[i]));
        }
    }
    assert_none("the portal's first request not a CARP MISS", &problems);
    let portal_first = t1.elapsed();

    // …and the member stored it under http://localhost + the target as sent.
    let mut share = [0usize; 3];
    for &m in &chosen {
        share[m] += 1;
    }
    let logged: Vec<Vec<Access>> = squids.iter().zip(share).map(|(s, n)| squid_saw(s, n)).collect();
    for (k, lines) in logged.iter().enumerate() {
        let mut problems = Vec::new();
        for a in lines {
            let Some(i) = a.id.strip_prefix('a').and_then(|i| i.parse::<usize>().ok()) else {
                problems.push(format!("{}: unexpected request {a:?}", names[k]));
                continue;
            };
            // Squid's log may write bytes >= 0x80 as %XX.
            let want = key(&targets[i].sent);
            if chosen[i] != k || !a.code.contains("MISS") || (a.url != want && a.url != escaped_for_log(&want)) {
                problems.push(format!("{}: {a:?} for {} (routed to {})", names[k], want, names[chosen[i]]));
            }
        }
        assert_none("what the Squids logged for the first requests", &problems);
    }

    // 2. The same objects through the Squid CARP front end: the parent it
    // forwards each to must be the member the portal chose.
    let t2 = Instant::now();
    let front_choice: Vec<usize> = in_parallel(|i| {
        let p = front.forwarded_to(&targets[i].sent);
        parents.iter().position(|q| q == p).expect("one of its parents")
    });
    let front_time = t2.elapsed();
    let disagree: Vec<String> = (0..N)
        .filter(|&i| front_choice[i] != chosen[i])
        .map(|i| {
            format!(
                "{} (key {}): bycache {} ({}), Squid CARP {} ({})",
                targets[i].client,
                key(&targets[i].sent),
                members[chosen[i]],
                names[chosen[i]],
                parents[front_choice[i]].name,
                names[front_choice[i]]
            )
        })
        .collect();
    eprintln!("bycache and Squid's CARP front end agree on {} of {N} targets", N - disagree.len());
    assert_none("bycache and Squid's CARP front end disagree", &disagree);

    // The front end chose by CARP, and its parent served the portal's copy.
    let forwards: BTreeMap<String, Forward> =
        front_forwards(&front, N).into_iter().map(|f| (f.url.clone(), f)).collect();
    let mut problems = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let url = escaped_for_log(&key(&t.sent));
        match forwards.get(&url).or_else(|| forwards.get(&key(&t.sent))) {
            Some(f) if f.hierarchy == "CARP" && f.parent == parents[chosen[i]].name && f.status == 200 => {}
            other => problems.push(format!("{}: front end logged {other:?}", t.client)),
        }
    }
    assert_none("the front end's log", &problems);
    for (k, squid) in squids.iter().enumerate() {
        let lines = squid_saw(squid, 2 * share[k]);
        let firsts: HashSet<&str> = lines.iter().filter(|a| a.id.starts_with('a')).map(|a| a.url.as_str()).collect();
        let from_front: Vec<&Access> = lines.iter().filter(|a| a.id == "-").collect();
        let bad: Vec<String> = from_front
            .iter()
            .filter(|a| !a.code.contains("HIT") || !firsts.contains(a.url.as_str()))
            .map(|a| format!("{}: {a:?}", names[k]))
            .collect();
        assert_none("the front end's requests not HITs of the portal's copies", &bad);
        assert_eq!(from_front.len(), share[k], "{}: requests from the front end", names[k]);
    }

    // 3. Through the portal again: a HIT at the same member.
    let t3 = Instant::now();
    let again = in_parallel(|i| served(&portal_get(&c, &targets[i].client, &format!("b{i}"))));
    let again_ids: Vec<String> = (0..N).map(|i| format!("b{i}")).collect();
    let again_routes = routes(h, &again_ids);
    let problems: Vec<String> = (0..N)
        .filter_map(|i| {
            let line = &again_routes[&again_ids[i]];
            let m = chosen[i];
            (line.route != "hit" || line.worker != members[m] || again[i] != format!("HIT from {}", names[m])).then(
                || {
                    format!(
                        "{}: repeat routed {} to {}, served {}; first to {}",
                        targets[i].client, line.route, line.worker, again[i], members[m]
                    )
                },
            )
        })
        .collect();
    assert_none("the repeat not a HIT at the same member", &problems);
    let portal_again = t3.elapsed();

    // 4. Stored once: the member answers ICP HIT for the key, the others MISS.
    let mut problems = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let k = key(&t.sent);
        let answers: Vec<Option<Opcode>> = squids.iter().map(|s| s.icp_query(&k)).collect();
        let want: Vec<Option<Opcode>> =
            (0..3).map(|s| Some(if s == chosen[i] { Opcode::Hit } else { Opcode::Miss })).collect();
        if answers != want {
            problems.push(format!("{k}: ICP {answers:?} from {names:?}, stored by {}", names[chosen[i]]));
        }
    }
    assert_none("not held by exactly the member chosen", &problems);

    // The share per Squid follows the weights 1:2:3, loosely.
    let total: u32 = FACTORS.iter().sum();
    eprintln!(
        "objects per Squid (weights {FACTORS:?}): {}",
        names.iter().zip(share).map(|(n, s)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
    );
    for (k, &n) in share.iter().enumerate() {
        let expected = N as f64 * f64::from(FACTORS[k]) / f64::from(total);
        assert!(
            (0.7 * expected..=1.3 * expected).contains(&(n as f64)),
            "{} got {n} of {N} objects, expected about {expected:.0}: {share:?}",
            names[k]
        );
    }
    eprintln!(
        "timings: start {ready:.1?}, portal first {portal_first:.1?}, front end {front_time:.1?}, \
         portal repeat {portal_again:.1?}, total {:.1?}",
        began.elapsed()
    );
}
