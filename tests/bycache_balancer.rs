//! `lbmethod=bycache` inside a real mod_proxy_balancer, checked the way an
//! operator checks a balancer: who answered (Squid's X-Cache), what the
//! portal's route log says (`ICPQUERY_ROUTE`, `BALANCER_WORKER_NAME`), the
//! Squids' own access logs, and the balancer-manager page. Every member
//! change goes through the manager's forms (a real POST with the page's
//! nonce). ICP decides among the members the balancer offers; it never
//! brings back a member the balancer has put aside (drained, disabled,
//! hcheck-failed, a later lbset, a hot standby), and a cache that has
//! died is neither asked again nor sent requests until it answers again.
//!
//! Network numbers 210-216.

mod support;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use mod_icpquery::engine::carp;
use support::balancer::{member_url, squid_name, BalancerConf, Flag, HealthCheck, Manager, Member};
use support::httpd::module_path;
use support::responder::Responder;
use support::{http, poll_until, Cluster, HttpdOptions, Mpm, Opcode, Response};

const B: &str = "caches";
/// Bounds a wait for something that happens within a second or so on an
/// idle machine (a log line written, a health check run, a cache revived).
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- the bed

/// One request as the portal's route log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    /// `ICPQUERY_ROUTE`: hit, carp, fallback, or "-" (not set).
    route: String,
    /// `BALANCER_WORKER_NAME`: the member the request went to.
    worker: String,
    path: String,
}

impl Route {
    /// The member's Squid ("squid3").
    fn squid(&self) -> String {
        let host = self.worker.strip_prefix("http://").and_then(|h| h.split(':').next()).unwrap_or("");
        host.parse::<Ipv4Addr>().map(squid_name).unwrap_or_else(|_| self.worker.clone())
    }
}

/// Origins, Squids and a portal that loads the module and runs the given
/// balancers (after `extra` directives), its balancer-manager, and the
/// three members' URLs and names.
struct Bed {
    c: Cluster,
    m: Manager,
    hosts: [Ipv4Addr; 3],
    /// Member URLs, "http://127.0.N.2:3128" ….
    urls: [String; 3],
    /// "squid2" ….
    names: [String; 3],
}

/// The portal configuration: the module first (it provides the method the
/// `<Proxy>` block names), its log at level `log_level`, a 2 s timeout
/// (these tests are about which cache: a busy box must not turn a late
/// reply into another route), the route log, then `extra` and the balancers.
fn portal_conf(log_level: u8, extra: &str, balancers: &[&BalancerConf]) -> String {
    let mut conf = format!(
        "LoadModule icpquery_module {}\nICPQueryLog logs/icpquery.log\nICPQueryLogLevel {log_level}\n\
         ICPQueryTimeout 2000000\n\
         CustomLog logs/route.log \"%{{ICPQUERY_ROUTE}}e %{{BALANCER_WORKER_NAME}}e %U\"\n{extra}\n",
        module_path().display()
    );
    for b in balancers {
        conf.push_str(&b.render());
    }
    conf
}

impl Bed {
    fn start(net: u8, log_level: u8, extra: &str, balancers: &[&BalancerConf]) -> Bed {
        let portal = portal_conf(log_level, extra, balancers);
        let mut c = Cluster::start_caches(net);
        c.start_portal(HttpdOptions::without_module(net, Mpm::Event, portal));
        let m = Manager::new(c.portal_addr());
        let hosts = c.hosts();
        Bed { m, hosts, urls: hosts.map(member_url), names: hosts.map(squid_name), c }
    }

    fn route_log_path(&self) -> PathBuf {
        self.c.httpd().log_dir().join("route.log")
    }

    /// The route log's lines for requests to the balancers (not the
    /// manager's pages).
    fn routes(&self) -> Vec<Route> {
        support::read_lossy(&self.route_log_path())
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ' ');
                let (route, worker, path) = (f.next()?, f.next()?, f.next()?);
                (path != support::balancer::MANAGER_PATH).then(|| Route {
                    route: route.to_owned(),
                    worker: worker.to_owned(),
                    path: path.to_owned(),
                })
            })
            .collect()
    }

    /// Waits until the route log has at least `n` balancer lines; all of them.
    fn routes_upto(&self, n: usize) -> Vec<Route> {
        poll_until(WAIT, || Some(self.routes()).filter(|r| r.len() >= n)).unwrap_or_else(|| {
            panic!("the route log has fewer than {n} lines:\n{}", support::read_lossy(&self.route_log_path()))
        })
    }

    /// GET `path` from the portal; it must answer 200. Returns the response
    /// and the request's route log line (httpd writes it after the
    /// response, so this waits for it).
    fn get(&self, path: &str) -> (Response, Route) {
        let before = self.routes().len();
        let r = http::get(self.c.portal_addr(), path);
        assert_eq!(r.status, 200, "GET {path}: {r:?}\n{}", self.diagnostics());
        let route = self.routes_upto(before + 1)[before].clone();
        assert_eq!(route.path, path, "route log out of step");
        (r, route)
    }

    /// GET each path; (path, X-Cache, route) for each.
    fn get_all(&self, paths: &[String]) -> Vec<(String, Response, Route)> {
        paths
            .iter()
            .map(|p| {
                let (r, route) = self.get(p);
                (p.clone(), r, route)
            })
            .collect()
    }

    /// Which member (index) is the Squid called `name`.
    fn index_of(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no member {name}"))
    }

    /// The members of a three-member balancer (loadfactor 1 each) in
    /// `key`'s CARP order, as Squid's `carp` would rank them: member name
    /// = host as configured.
    fn carp_order(&self, key: &str) -> Vec<usize> {
        let names = self.hosts.map(|h| h.to_string());
        let members: Vec<carp::Member<'_>> = names.iter().map(|n| carp::Member { name: n, weight: 1 }).collect();
        carp::Array::new(&members, carp::Variant::default()).preference(key.as_bytes())
    }

    /// `count` fresh paths `prefix-i` whose key member `owner` owns by CARP.
    fn owned_by(&self, owner: usize, prefix: &str, count: usize) -> Vec<String> {
        (0..).map(|i| format!("{prefix}-{i}")).filter(|p| self.carp_order(&key(p))[0] == owner).take(count).collect()
    }

    /// Puts `paths` into Squid `at` only (a GET straight to it), and checks
    /// over ICP that it, and no other Squid, now holds each.
    fn warm_only_at(&self, at: usize, paths: &[String]) {
        let squid = self.c.cache_for(self.hosts[at]);
        for p in paths {
            let r = http::get(squid.http_addr(), p);
            assert_eq!(r.status, 200, "warming {p} at {}: {r:?}", squid.name());
            assert!(!r.is_hit(), "{p} was already at {}: {r:?}", squid.name());
            let k = key(p);
            let stored = poll_until(WAIT, || (squid.icp_query(&k) == Some(Opcode::Hit)).then_some(()));
            assert!(stored.is_some(), "{} does not answer ICP_OP_HIT for {k} after serving it", squid.name());
            for other in self.c.squids().iter().filter(|s| s.host() != squid.host() && s.is_running()) {
                assert_eq!(other.icp_query(&k), Some(Opcode::Miss), "{} holds {k} too", other.name());
            }
        }
    }

    /// The HTTP requests in Squid `i`'s access log (it logs the ICP
    /// queries it answers too, as `ICP_QUERY` lines).
    fn http_requests(&self, i: usize) -> Vec<String> {
        let log = self.c.cache_for(self.hosts[i]).access_log();
        log.lines().filter(|l| !l.contains(" ICP_QUERY ")).map(str::to_owned).collect()
    }

    fn access_lines(&self, i: usize) -> usize {
        self.http_requests(i).len()
    }

    fn diagnostics(&self) -> String {
        let h = self.c.httpd();
        format!(
            "--- route log:\n{}\n--- module log:\n{}\n--- error log:\n{}",
            support::tail(&self.route_log_path(), 30),
            support::tail(&h.module_log_path(), 40),
            support::tail(&h.error_log_path(), 30)
        )
    }
}

/// The URL the module asks the caches about for a request path: the default
/// prefix, and the path as sent (these paths need no encoding).
fn key(path: &str) -> String {
    format!("http://localhost{path}")
}

fn paths(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every result went to a member other than `not` (a Squid name), as
/// (X-Cache, route log) agree.
fn none_to(results: &[(String, Response, Route)], not: &str, why: &str) {
    for (p, r, route) in results {
        assert_ne!(route.squid(), not, "{why}: {p} was sent to {not}: {route:?}");
        assert_ne!(r.cache_name(), Some(not), "{why}: {p} was answered by {not}: {r:?}");
        assert_eq!(r.cache_name(), Some(route.squid().as_str()), "X-Cache and the route log disagree for {p}");
    }
}

/// Every result is a HIT from `at`, routed as an ICP hit.
fn all_hits_at(results: &[(String, Response, Route)], at: &str) {
    for (p, r, route) in results {
        assert!(r.is_hit() && r.cache_name() == Some(at), "{p}: expected HIT from {at}: {r:?} {route:?}");
        assert_eq!((route.route.as_str(), route.squid().as_str()), ("hit", at), "{p}");
    }
}

fn summary(results: &[(String, Response, Route)]) -> String {
    results
        .iter()
        .map(|(p, r, route)| format!("{p}: {} [{} {}]\n", r.served_by(), route.route, route.squid()))
        .collect()
}

// ---------------------------------------------------------------- 1. failover

/// The CARP owner's Squid is SIGKILLed while requests run: every request
/// started after the kill succeeds (one already written to the Squid when
/// it died gets httpd's 502); the same object and one only the dead Squid
/// held are served by another member; no request goes to the dead member
/// while it is down. When its ICP port answers but its HTTP port refuses,
/// the balancer's failover picks the next member by the same lookup's
/// answers. Started again, it gets its objects again.
#[test]
fn a_killed_owner_is_failed_over_never_used_while_down_and_used_again_after_restart() {
    let net = 210;
    let conf = BalancerConf::over_squids(net, B).lbmethod("bycache");
    let conf = (0..3).fold(conf, |c, i| c.with_member(i, |m| m.param("retry", "1")));
    let extra = "ICPQueryDeadTime 1\nICPQueryProbeInterval 1";
    let mut bed = Bed::start(net, 2, extra, &[&conf]);

    // The owner of /wsgi/k1 by CARP gets it, then serves it as a HIT.
    let k1 = "/wsgi/k1".to_string();
    let order = bed.carp_order(&key(&k1));
    let (owner, next) = (order[0], order[1]);
    let (on, nn) = (bed.names[owner].clone(), bed.names[next].clone());
    let (r, route) = bed.get(&k1);
    assert_eq!((route.route.as_str(), route.squid()), ("carp", on.clone()), "{r:?}");
    let (r, route) = bed.get(&k1);
    assert!(r.is_hit() && r.cache_name() == Some(on.as_str()), "{r:?}");
    assert_eq!((route.route.as_str(), route.squid()), ("hit", on.clone()));
    // An object only the owner holds (no other Squid ever fetched it).
    let only = paths("/wsgi/only-owner", 2);
    bed.warm_only_at(owner, &only);

    // Mid-run: four clients loop over the owner's objects and fresh ones;
    // the owner's Squid is killed while they run. A request that was
    // already written to it when it died gets mod_proxy's 502 (httpd does
    // not resend a request once sent); every request started after the
    // kill must succeed.
    let portal = bed.c.portal_addr();
    let (stop, killed, done) = (AtomicBool::new(false), AtomicBool::new(false), AtomicUsize::new(0));
    let failures = Mutex::new(Vec::new());
    thread::scope(|s| {
        for client in 0..4 {
            let (stop, killed, done, failures, k1) = (&stop, &killed, &done, &failures, &k1);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let p = if n % 2 == 0 { k1.clone() } else { format!("/wsgi/run-{client}-{n}") };
                    let after_kill = killed.load(Ordering::SeqCst);
                    match http::try_get(portal, &p) {
                        Ok(r) if r.status == 200 => {}
                        other => failures.lock().unwrap().push((after_kill, format!("{p}: {other:?}"))),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            });
        }
        let progressed = |more: usize| {
            let from = done.load(Ordering::Relaxed);
            poll_until(WAIT, || (done.load(Ordering::Relaxed) >= from + more).then_some(())).is_some()
        };
        assert!(progressed(20), "the clients made no progress");
        bed.c.cache_for_mut(bed.hosts[owner]).kill();
        killed.store(true, Ordering::SeqCst);
        assert!(progressed(40), "the clients made no progress after the kill");
        stop.store(true, Ordering::Relaxed);
    });
    let failures = failures.into_inner().unwrap();
    let after: Vec<&String> = failures.iter().filter(|(after, _)| *after).map(|(_, f)| f).collect();
    assert!(after.is_empty(), "requests started after the kill failed: {after:#?}\n{}", bed.diagnostics());
    let in_flight = failures.len();
    let errors = bed.c.httpd().error_log();
    let cut = format!("error reading status line from remote server {}:3128", bed.hosts[owner]);
    assert!(in_flight <= 4 && errors.matches(&cut).count() >= in_flight, "{failures:#?}\n{errors}");
    for (_, f) in &failures {
        assert!(f.contains("status: 502"), "{f}");
    }
    let total = done.load(Ordering::Relaxed);
    assert_eq!(bed.routes_upto(2 + total).len(), 2 + total);

    // The module knows the owner is dead (its ICP port refuses).
    let dead = format!("cache {}:3130 is dead", bed.hosts[owner]);
    let log = bed.c.httpd().module_log();
    assert!(log.contains(&dead), "{}", bed.diagnostics());

    // While it is down: the same object, from the next member in CARP
    // order; the owner's own object, from origin via another Squid; fresh
    // objects the owner owns by CARP; none is sent to the owner.
    let error_log_before = bed.c.httpd().error_log().len();
    let routes_before = bed.routes().len();
    // (The clients asked for it after the kill: the next member holds it.)
    let (r, route) = bed.get(&k1);
    assert_eq!((route.route.as_str(), route.squid()), ("hit", nn.clone()), "{r:?}");
    assert!(r.is_hit() && r.cache_name() == Some(nn.as_str()), "{r:?}");
    let mut results = bed.get_all(&only);
    for (p, r, _) in &results {
        let via = r.cache_name().unwrap_or("-");
        let origin = bed.hosts[bed.index_of(via)].to_string();
        assert!(!r.is_hit() && r.x_origin() == Some(origin.as_str()), "{p} from origin via {via}: {r:?}");
    }
    results.extend(bed.get_all(&bed.owned_by(owner, "/wsgi/owned-while-down", 6)));
    results.extend(bed.get_all(&paths("/wsgi/any-while-down", 6)));
    none_to(&results, &on, "the owner is dead");
    assert!(bed.routes()[routes_before..].iter().all(|r| r.squid() != on));
    let since = bed.c.httpd().error_log()[error_log_before..].to_string();
    let connect = format!("attempt to connect to {}:3128", bed.hosts[owner]);
    assert!(!since.contains(&connect), "mod_proxy tried the dead member:\n{since}");

    // The owner's ICP port answers HIT again, but its HTTP port still
    // refuses (a half-dead cache): once the module has revived it, a
    // request is offered to it first, the connection is refused, and the
    // balancer's failover takes the next member by the same answers: one
    // lookup, two choices, 200 from the next member.
    let fake = Responder::start(&format!("{}:3130", bed.hosts[owner]), |_| Some(Opcode::Hit));
    let choice = |path: &str, name: &str, why: &str| {
        format!("balancer://{B} \"{}\" -> {} ({why})", key(path), member_url(bed.hosts[bed.index_of(name)]))
    };
    let mut i = 0;
    let failed_over = poll_until(WAIT, || {
        i += 1;
        let p = format!("/wsgi/half-dead-{i}");
        let (r, route) = bed.get(&p);
        let log = bed.c.httpd().module_log();
        log.contains(&choice(&p, &on, "hit")).then_some((p, r, route, log))
    });
    let failed_over = failed_over
        .unwrap_or_else(|| panic!("the owner never got a request by its (fake) ICP HIT:\n{}", bed.diagnostics()));
    let (p, r, route, log) = failed_over;
    drop(fake);
    let retry = route.squid();
    assert_ne!(retry, on, "{r:?}");
    assert_eq!(r.cache_name(), Some(retry.as_str()), "{r:?}");
    let k = key(&p);
    let hits: Vec<&str> =
        log.lines().filter(|l| l.contains("ICP_OP_HIT from") && l.contains(&format!("\"{k}\""))).collect();
    assert_eq!(hits.len(), 1, "one lookup for the request, not one per attempt:\n{}", bed.diagnostics());
    let picks: Vec<&str> = log.lines().filter(|l| l.contains(&format!("\"{k}\" -> "))).collect();
    assert_eq!(picks.len(), 2, "{picks:#?}");
    assert!(picks[1].ends_with(&format!("-> {} (carp)", route.worker)), "{picks:#?}");
    assert!(bed.c.httpd().error_log().contains(&connect), "{}", bed.diagnostics());

    // Started again (empty: memory-only cache): the owner gets its objects.
    bed.c.cache_for_mut(bed.hosts[owner]).start_again();
    let mut n = 0;
    let back = poll_until(WAIT, || {
        n += 1;
        let p = bed.owned_by(owner, &format!("/wsgi/after-restart-{n}"), 1).remove(0);
        let (r, route) = bed.get(&p);
        (route.squid() == on).then_some((r, route))
    });
    let (r, route) = back.unwrap_or_else(|| panic!("the restarted owner is never used:\n{}", bed.diagnostics()));
    assert_eq!((route.route.as_str(), r.cache_name()), ("carp", Some(on.as_str())), "{r:?}");
    let (r, route) = bed.get(&k1);
    assert!(r.is_hit() && route.squid() == nn, "k1 is a HIT at the member that fetched it: {r:?} {route:?}");
    let fresh = bed.owned_by(owner, "/wsgi/owned-after-restart", 4);
    let results = bed.get_all(&fresh);
    for (p, r, route) in &results {
        assert_eq!((route.route.as_str(), route.squid()), ("carp", on.clone()), "{p}: {r:?}");
    }
    // The owner's own access log (kept across the restart) never saw a
    // request made while it was down: only the two it was warmed with.
    let access = bed.http_requests(owner);
    let seen = |what: &str| access.iter().filter(|l| l.contains(what)).count();
    assert_eq!(seen("/wsgi/only-owner-"), only.len(), "{access:#?}");
    for down in ["/wsgi/owned-while-down", "/wsgi/any-while-down", "/wsgi/half-dead"] {
        assert_eq!(seen(down), 0, "{on} logged requests made while it was down:\n{access:#?}");
    }
}

// ---------------------------------------------------------------- 2. drain

/// A member drained in balancer-manager gets no request at all, not even
/// for the objects only it holds: they go to another member by CARP and
/// are fetched from origin there. Undrained, it gets its objects as HITs.
#[test]
fn a_drained_member_gets_nothing_even_its_own_objects_until_undrained() {
    let net = 211;
    let conf = BalancerConf::over_squids(net, B).lbmethod("bycache");
    let bed = Bed::start(net, 1, "", &[&conf]);
    let d = 1; // squid3
    let (dn, du) = (bed.names[d].clone(), bed.urls[d].clone());
    let held_while_drained = paths("/wsgi/only3-drained", 4);
    let held_after = paths("/wsgi/only3-after", 4);
    let baseline = paths("/wsgi/only3-before", 2);
    bed.warm_only_at(d, &[&held_while_drained[..], &held_after[..], &baseline[..]].concat());

    // Before: its objects are HITs there.
    all_hits_at(&bed.get_all(&baseline), &dn);

    let page = bed.m.drain(B, &du);
    assert_eq!(page.member(B, &du).status, "Init Drn Ok", "{}", page.summary());
    let log_before = bed.access_lines(d);
    let mut results = bed.get_all(&held_while_drained);
    for (p, r, route) in &results {
        assert!(!r.is_hit(), "{p} can only be a MISS away from {dn}: {r:?}");
        let order: Vec<usize> = bed.carp_order(&key(p)).into_iter().filter(|&m| m != d).collect();
        assert_eq!((route.route.as_str(), route.squid()), ("carp", bed.names[order[0]].clone()), "{p}");
    }
    results.extend(bed.get_all(&bed.owned_by(d, "/wsgi/owned3-drained", 4)));
    none_to(&results, &dn, "drained");
    assert_eq!(bed.access_lines(d), log_before, "{dn}'s access log grew while it was drained");
    let page = bed.m.page();
    let elected = page.member(B, &du).elected;
    assert_eq!(elected, baseline.len() as u64, "the page counts no election while drained:\n{}", page.summary());

    let page = bed.m.undrain(B, &du);
    assert_eq!(page.member(B, &du).status, "Init Ok", "{}", page.summary());
    all_hits_at(&bed.get_all(&held_after), &dn);
    let line = format!("balancer://{B} \"{}\" -> {du} (hit)", key(&held_after[0]));
    assert!(bed.c.httpd().module_log().contains(&line), "no {line:?} in the module log:\n{}", bed.diagnostics());
}

// ---------------------------------------------------------------- 3. disabled, hcheck

/// `status=+D` in the configuration, and Disabled set in the manager: the
/// member gets nothing, not even its own objects; enabled in the manager,
/// it gets them as HITs.
#[test]
fn disabled_members_get_nothing_until_enabled_in_the_manager() {
    let net = 212;
    let conf = BalancerConf::over_squids(net, B).lbmethod("bycache").with_member(2, Member::disabled);
    let bed = Bed::start(net, 1, "", &[&conf]);
    let [n2, n3, n4] = bed.names.clone();
    let [_, u3, u4] = bed.urls.clone();
    let page = bed.m.page();
    assert_eq!(page.member(B, &u4).status, "Init Dis", "{}", page.summary());
    let at4 = paths("/wsgi/only4", 9);
    let at3 = paths("/wsgi/only3", 6);
    bed.warm_only_at(2, &at4);
    bed.warm_only_at(1, &at3);

    // squid4 disabled by the configuration.
    let log4 = bed.access_lines(2);
    let mut results = bed.get_all(&at4[..3]);
    results.extend(bed.get_all(&bed.owned_by(2, "/wsgi/owned4", 4)));
    none_to(&results, &n4, "disabled by status=+D");
    all_hits_at(&bed.get_all(&at3[..2]), &n3);

    // squid3 disabled in the manager too: squid2 serves everything.
    let page = bed.m.disable(B, &u3);
    assert_eq!(page.member(B, &u3).status, "Init Dis", "{}", page.summary());
    let log3 = bed.access_lines(1);
    let results = bed.get_all(&[&at3[2..4], &at4[3..6]].concat());
    for (p, r, route) in &results {
        assert_eq!(
            (r.cache_name(), route.route.as_str(), route.squid()),
            (Some(n2.as_str()), "carp", n2.clone()),
            "{p}"
        );
        assert!(!r.is_hit(), "{p}: {r:?}");
    }
    assert_eq!((bed.access_lines(1), bed.access_lines(2)), (log3, log4), "a disabled Squid's access log grew");

    // Both enabled in the manager: each gets its own objects again.
    bed.m.enable(B, &u3);
    let page = bed.m.enable(B, &u4);
    for w in &page.balancer(B).members {
        assert_eq!(w.status, "Init Ok", "{}", page.summary());
    }
    all_hits_at(&bed.get_all(&at3[4..]), &n3);
    all_hits_at(&bed.get_all(&at4[6..]), &n4);
}

/// mod_proxy_hcheck fails a member whose Squid is up and answers ICP: its
/// check's expression wants a 5xx (the origin answers 200). The member
/// answers ICP_OP_HIT for its objects, yet they go elsewhere while the page
/// shows HcFl; once the check passes again, it gets them as HITs.
#[test]
fn an_hcheck_failed_member_gets_nothing_even_when_it_answers_icp_hits() {
    let net = 213;
    let hc = HealthCheck::get("/wsgi/hc").interval_ms(200).fails(1).passes(1).expr("want5xx");
    // ok234 first: the manager's form offers the expressions in this order.
    let conf = BalancerConf::over_squids(net, B)
        .lbmethod("bycache")
        .hc_expr("ok234", "%{REQUEST_STATUS} =~ /^[234]/")
        .hc_expr("want5xx", "%{REQUEST_STATUS} =~ /^5/")
        .with_member(1, |m| m.hcheck(hc));
    let bed = Bed::start(net, 2, "", &[&conf]);
    let (n3, u3) = (bed.names[1].clone(), bed.urls[1].clone());
    let at3 = paths("/wsgi/only3", 8);
    bed.warm_only_at(1, &at3);

    let page = bed.m.wait_for(WAIT, "squid3 HcFl", |p| p.member(B, &u3).has(Flag::HcFail));
    assert_eq!(page.member(B, &u3).status, "Init HcFl", "{}", page.summary());
    let squid3 = bed.c.cache_for(bed.hosts[1]);
    assert!(squid3.is_running(), "its Squid is up");
    let log3 = bed.access_lines(1);
    let mut results = bed.get_all(&at3[..4]);
    results.extend(bed.get_all(&bed.owned_by(1, "/wsgi/owned3", 4)));
    none_to(&results, &n3, "HcFl");
    let log = bed.c.httpd().module_log();
    for p in &at3[..4] {
        let hit = format!("ICP_OP_HIT from {}:3130 for \"{}\"", bed.hosts[1], key(p));
        assert!(log.contains(&hit), "squid3 answered HIT for {p} and still got nothing:\n{}", bed.diagnostics());
    }
    // Its access log: the ICP HITs it answered, and no request but the
    // health checks.
    let access = bed.c.cache_for(bed.hosts[1]).access_log();
    for p in &at3[..4] {
        let icp_hit = format!("ICP_QUERY {} ", key(p));
        assert!(access.lines().any(|l| l.contains(" UDP_HIT/") && l.contains(&icp_hit)), "{p}:\n{access}");
    }
    let requests: Vec<String> =
        bed.http_requests(1).into_iter().skip(log3).filter(|l| !l.contains("/wsgi/hc")).collect();
    assert!(requests.is_empty(), "{requests:#?}");

    // The check's expression set to ok234 in the manager: the next check
    // passes, HcFl clears, and squid3 gets its objects again.
    let page = bed.m.edit_member(B, &u3, &[("w_he", "ok234")]);
    assert_eq!(page.member(B, &u3).hc.as_ref().unwrap().expr, "ok234", "{}", page.summary());
    let page = bed.m.wait_for(WAIT, "squid3 usable", |p| p.member(B, &u3).is_usable());
    assert_eq!(page.member(B, &u3).status, "Init Ok", "{}", page.summary());
    all_hits_at(&bed.get_all(&at3[4..]), &n3);
}

// ---------------------------------------------------------------- 4. lbsets, hot standby

/// Two balancers over the same Squids. `caches` (/wsgi/): squid4 in lbset 1
/// gets nothing, not even its own objects, while lbset 0 has a usable
/// member, and serves everything once both lbset-0 members are disabled.
/// `standby` (/hot/): squid4 is a hot standby (`+H`), idle while another
/// member is usable, serving once the others are disabled.
#[test]
fn a_later_lbset_and_a_hot_standby_serve_only_when_nothing_else_can() {
    let net = 214;
    let caches = BalancerConf::over_squids(net, B).lbmethod("bycache").with_member(2, |m| m.lbset(1));
    let mut standby = BalancerConf::over_squids(net, "standby").lbmethod("bycache").with_member(2, Member::hot_standby);
    standby.path = "/hot/".into();
    let standby = standby.without_manager();
    let bed = Bed::start(net, 1, "", &[&caches, &standby]);
    let [n2, n3, n4] = bed.names.clone();
    let [u2, u3, u4] = bed.urls.clone();
    let page = bed.m.page();
    assert_eq!(page.member(B, &u4).lbset, 1, "{}", page.summary());
    assert_eq!(page.member("standby", &u4).status, "Init Stby Ok", "{}", page.summary());

    // lbset 1.
    let at4 = paths("/wsgi/only4", 8);
    bed.warm_only_at(2, &at4);
    let mut results = bed.get_all(&at4[..3]);
    results.extend(bed.get_all(&bed.owned_by(2, "/wsgi/owned4", 4)));
    none_to(&results, &n4, "lbset 1 while lbset 0 is usable");
    bed.m.disable(B, &u2);
    let results = bed.get_all(&at4[3..5]);
    none_to(&results, &n4, "lbset 1 while lbset 0 still has squid3");
    let page = bed.m.disable(B, &u3);
    assert!(!page.member(B, &u2).is_usable() && !page.member(B, &u3).is_usable(), "{}", page.summary());
    all_hits_at(&bed.get_all(&at4[5..]), &n4);
    let at2 = paths("/wsgi/only2", 2);
    bed.warm_only_at(0, &at2);
    for (p, r, route) in bed.get_all(&at2) {
        assert_eq!((r.cache_name(), route.squid()), (Some(n4.as_str()), n4.clone()), "{p}: lbset 1 serves");
    }
    bed.m.enable(B, &u2);
    bed.m.enable(B, &u3);

    // Hot standby.
    let hot4 = paths("/hot/only4", 6);
    bed.warm_only_at(2, &hot4);
    let mut results = bed.get_all(&hot4[..3]);
    results.extend(bed.get_all(&bed.owned_by(2, "/hot/owned4", 4)));
    none_to(&results, &n4, "hot standby while others are usable");
    for (_, r, _) in &results {
        assert!([n2.as_str(), n3.as_str()].contains(&r.cache_name().unwrap_or("-")), "{r:?}");
    }
    bed.m.disable("standby", &u2);
    let page = bed.m.disable("standby", &u3);
    assert_eq!(page.member("standby", &u4).status, "Init Stby Ok", "{}", page.summary());
    all_hits_at(&bed.get_all(&hot4[3..]), &n4);
    for (p, r, route) in bed.get_all(&paths("/hot/fresh", 3)) {
        assert_eq!((r.cache_name(), route.squid()), (Some(n4.as_str()), n4.clone()), "{p}: the standby serves");
    }
}

// ---------------------------------------------------------------- 5. switching

/// byrequests → bycache → byrequests in the manager, each taking effect on
/// the very next request: under byrequests no route is set and objects only
/// squid3 holds are spread; under bycache they all go to squid3.
#[test]
fn switching_the_lbmethod_in_the_manager_takes_effect_on_the_next_request() {
    let net = 215;
    let conf = BalancerConf::over_squids(net, B);
    let bed = Bed::start(net, 1, "", &[&conf]);
    let n3 = bed.names[1].clone();
    let phases = ["byrequests", "bycache", "byrequests"];
    let held: Vec<Vec<String>> = (0..3).map(|i| paths(&format!("/wsgi/only3-phase{i}"), 6)).collect();
    bed.warm_only_at(1, &held.concat());
    let offered = bed.m.balancer_form(B).field("b_lbm").expect("LBmethod select").choices.clone();
    assert!(offered.iter().any(|o| o == "bycache"), "the manager does not offer bycache: {offered:?}");

    for (i, method) in phases.iter().enumerate() {
        if i > 0 {
            let page = bed.m.set_lbmethod(B, method);
            assert_eq!(page.balancer(B).lbmethod, *method, "{}", page.summary());
        }
        let results = bed.get_all(&held[i]);
        let fresh = bed.get_all(&paths(&format!("/wsgi/fresh-phase{i}"), 3));
        let to3 = results.iter().filter(|(_, _, route)| route.squid() == n3).count();
        if *method == "bycache" {
            all_hits_at(&results, &n3);
            for (p, r, route) in &fresh {
                let owner = bed.names[bed.carp_order(&key(p))[0]].clone();
                assert_eq!((route.route.as_str(), route.squid()), ("carp", owner), "{p}: {r:?}");
            }
        } else {
            for (p, r, route) in results.iter().chain(&fresh) {
                assert_eq!(route.route, "-", "{p}: no ICPQUERY_ROUTE under byrequests");
                assert_eq!(r.cache_name(), Some(route.squid().as_str()), "{p}");
            }
            // byrequests takes turns, whoever holds the object.
            assert_eq!(to3, 2, "{method}:\n{}", summary(&results));
        }
    }
}

// ---------------------------------------------------------------- 6. fallback

/// Moves Squid `i`'s ICP port to `port` (squid.conf rewritten, SIGHUP:
/// Squid reconfigures and reopens its ports) and waits until it answers
/// there.
fn move_icp_port(bed: &Bed, i: usize, port: u16) {
    let squid = bed.c.cache_for(bed.hosts[i]);
    let conf = std::fs::read_to_string(squid.conf_path()).expect("read squid.conf");
    let line = conf.lines().find(|l| l.starts_with("icp_port ")).expect("an icp_port line").to_owned();
    std::fs::write(squid.conf_path(), conf.replace(&line, &format!("icp_port {port}"))).expect("write squid.conf");
    let pid = squid.pid().expect("Squid runs");
    // SAFETY: kill(2) on our own child's pid; SIGHUP makes Squid reconfigure.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0, "SIGHUP {}", squid.name());
    let at = std::net::SocketAddr::from((bed.hosts[i], port));
    let answers =
        poll_until(WAIT, || support::squid::icp_query_to(at, "http://localhost/", Duration::from_millis(100)));
    assert!(
        answers.is_some(),
        "{} does not answer ICP on {at} after reconfiguring:\n{}",
        squid.name(),
        squid.cache_log()
    );
}

/// Who got each of `results`, by member index, all routed `route`.
fn spread(bed: &Bed, results: &[(String, Response, Route)], route: &str) -> [usize; 3] {
    let mut count = [0usize; 3];
    for (p, r, rt) in results {
        assert_eq!(rt.route, route, "{p}: {r:?}");
        assert_eq!(r.cache_name(), Some(rt.squid().as_str()), "{p}");
        count[bed.index_of(&rt.squid())] += 1;
    }
    count
}

/// The two fallback tests share network 216, one after the other.
static NET_216: Mutex<()> = Mutex::new(());

/// A portal whose module asks every member on 3199, where nothing listens
/// at first: every member is dead by ICP from the first request.
fn start_dead_by_icp() -> (std::sync::MutexGuard<'static, ()>, Bed) {
    let serial = NET_216.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let conf = BalancerConf::over_squids(216, B).lbmethod("bycache");
    let extra = "ICPQueryBalancerPort 3199\nICPQueryDeadTime 1\nICPQueryProbeInterval 1";
    (serial, Bed::start(216, 1, extra, &[&conf]))
}

/// Every member dead by ICP (asked on a port nothing listens on): each
/// request falls back to byrequests' arithmetic, spread evenly over the
/// three members (load factors 1:1:1), and all succeed.
#[test]
fn with_every_member_dead_by_icp_requests_fall_back_to_byrequests() {
    let (_serial, bed) = start_dead_by_icp();
    let results = bed.get_all(&paths("/wsgi/fallback", 30));
    assert_eq!(spread(&bed, &results, "fallback"), [10, 10, 10], "byrequests takes turns:\n{}", summary(&results));
    let (last, route) = (&results[29].0, &results[29].2);
    let line = format!("balancer://{B} \"{}\" -> {} (fallback)", key(last), route.worker);
    assert!(bed.c.httpd().module_log().contains(&line), "no {line:?} in the module log:\n{}", bed.diagnostics());
    let errors = bed.c.httpd().error_log();
    for h in bed.hosts {
        assert!(errors.contains(&format!("cache {h}:3199 is dead: its host refused the query (ICMP)")), "{errors}");
    }
    let page = bed.m.page();
    for w in &page.balancer(B).members {
        assert_eq!((w.status.as_str(), w.elected), ("Init Ok", 10), "{}", page.summary());
    }
}

/// The same fallback after a spell of ICP routing: the Squids answer ICP
/// on 3199 for a while (30 HITs, all at squid3), then stop again. The
/// fallback requests should still be spread as byrequests spreads them,
/// whatever ICP decided meanwhile.
///
/// Fails with mod_icpquery as of this test: `is_best` gives every
/// candidate byrequests' `lbstatus += lbfactor` and the chosen member
/// `-= total` on every request, also when a HIT or the CARP order chose
/// it. A member ICP keeps choosing sinks without bound (balancer-manager's
/// Load column: 3000 / -6000 / 3000 after 30 HITs), and when ICP is gone
/// byrequests' arithmetic starves it for as long as it was favoured
/// (here 15 / 0 / 15).
#[test]
fn the_fallback_is_spread_like_byrequests_after_a_spell_of_icp_routing() {
    let (_serial, bed) = start_dead_by_icp();
    let held = paths("/wsgi/only3", 30);
    bed.warm_only_at(1, &held);
    let results = bed.get_all(&paths("/wsgi/fallback", 3));
    assert_eq!(spread(&bed, &results, "fallback"), [1, 1, 1], "{}", summary(&results));

    // The Squids answer ICP on 3199: once the module has revived them,
    // squid3's objects are HITs there.
    for i in 0..3 {
        move_icp_port(&bed, i, 3199);
    }
    let revived = poll_until(WAIT, || {
        let log = bed.c.httpd().module_log();
        bed.hosts.iter().all(|h| log.contains(&format!("cache {h}:3199 is alive again"))).then_some(())
    });
    assert!(revived.is_some(), "{}", bed.diagnostics());
    all_hits_at(&bed.get_all(&held), &bed.names[1]);
    let loads: Vec<i64> = bed.m.page().balancer(B).members.iter().map(|w| w.load).collect();

    // ICP gone again: the fallback is spread as byrequests spreads it.
    for i in 0..3 {
        move_icp_port(&bed, i, 3130);
    }
    let dead = poll_until(WAIT, || {
        let log = bed.c.httpd().module_log();
        bed.hosts.iter().all(|h| log.matches(&format!("cache {h}:3199 is dead")).count() >= 2).then_some(())
    });
    assert!(dead.is_some(), "{}", bed.diagnostics());
    let results = bed.get_all(&paths("/wsgi/fallback-again", 30));
    let count = spread(&bed, &results, "fallback");
    assert!(
        count.iter().all(|n| (8..=12).contains(n)),
        "after 30 HITs at squid3 (balancer-manager Load column then {loads:?}), 30 fallback requests went \
         {count:?} to squid2/3/4; byrequests would spread them 10/10/10:\n{}",
        summary(&results)
    );
}
