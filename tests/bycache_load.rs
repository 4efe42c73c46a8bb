//! `ProxySet lbmethod=bycache` as users run it: real httpd (each MPM) with
//! stock mod_proxy_balancer in front of three real Squid accelerators,
//! under a real concurrent keep-alive load (`support::load`), through a
//! graceful restart, with the module loaded before mod_proxy (Debian's
//! a2enmod order) and without mod_proxy at all, and at configtest.
//!
//! Who served a request is read the way a user checks it: the body names
//! the origin that produced it (each Squid fetches from the origin on its
//! own host), and the portal's own log records, per request, the route
//! (`ICPQUERY_ROUTE`), the member mod_proxy_balancer sent it to
//! (`BALANCER_WORKER_NAME`) and Squid's `X-Cache` verdict.
//!
//! Objects are placed by fetching them straight from one chosen Squid, and
//! always from a Squid that is NOT the URL's CARP owner: a request that
//! went by CARP instead of its own ICP HIT, or by another request's
//! replies, lands on a cache without the object and is seen at once (a
//! MISS from the wrong Squid, a body from the wrong origin).
//!
//! Network numbers 220 to 226.

mod support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mod_icpquery::engine::carp::{Array, Member, Variant};
use support::balancer::{is_builtin, member_url, squid_name, BalancerConf};
use support::httpd::{httpd_binary, main_conf, module_path, modules_dir, HttpdOptions};
use support::load::{Failure, Load, Totals};
use support::{host_ips, http, poll_until, read_conf_file, read_lossy, Cluster, Mpm, Opcode, TestDir};

const BALANCER: &str = "caches";
/// Objects placed at exactly one Squid each.
const PLACED: usize = 60;
/// Concurrent keep-alive clients.
const CLIENTS: usize = 48;
/// Requests through the portal in each MPM test (125 per client).
const REQUESTS: u64 = 6000;
/// Only a bound on waiting for the load to make progress on a loaded box;
/// nothing is judged by how long it took.
const PROGRESS_BOUND: Duration = Duration::from_secs(300);
/// mod_log_config writes a request's line after the response is sent: the
/// bound on waiting for the last lines after the clients have their answers.
const LOG_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- configuration

/// The module's settings and the per-request route log. A 2 s timeout: a
/// lookup still ends as soon as every Squid has answered, but a loaded box
/// must never end it before a live Squid's reply.
fn settings() -> String {
    "ICPQueryLog logs/icpquery.log\nICPQueryLogLevel 1\nICPQueryTimeout 2000000\n\
     CustomLog logs/route.log \"%{ICPQUERY_ROUTE}e %{BALANCER_WORKER_NAME}e %U%q %>s %{X-Cache}o\"\n"
        .to_string()
}

fn balancer(net: u8) -> BalancerConf {
    BalancerConf::over_squids(net, BALANCER).lbmethod("bycache")
}

/// The portal configuration: the module, its settings, the balancer.
fn portal_conf(net: u8) -> String {
    format!("LoadModule icpquery_module {}\n{}{}", module_path().display(), settings(), balancer(net).render())
}

/// Origins and Squids of `net` and a portal running bycache under `mpm`.
fn start(net: u8, mpm: Mpm) -> Cluster {
    let mut c = Cluster::start_caches(net);
    c.start_portal(HttpdOptions::without_module(net, mpm, portal_conf(net)));
    c
}

// ---------------------------------------------------------------- where objects are

/// The URL the caches are asked about for a request target.
fn key(target: &str) -> String {
    format!("http://localhost{target}")
}

/// The CARP owner of `target` (an index into `host_ips`): the members are
/// named by their host, as written in `BalancerMember`, with their
/// loadfactor (1 each) as weight, as the module builds its array.
fn carp_owner(net: u8, target: &str) -> usize {
    let names = host_ips(net).map(|h| h.to_string());
    let members: Vec<Member<'_>> = names.iter().map(|name| Member { name, weight: 1 }).collect();
    Array::new(&members, Variant::Squid).owner(key(target).as_bytes(), |_| true).expect("a CARP owner")
}

/// The body the origin on `host` sends for `target`.
fn body_from(host: Ipv4Addr, target: &str) -> String {
    format!("origin {host} {target}\n")
}

/// What a request through the portal must show in the route log.
#[derive(Clone, Debug, PartialEq)]
struct Route {
    route: &'static str,
    worker: String,
    x_cache: String,
}

/// The objects placed at one Squid each: target → index of the Squid that
/// holds it (never the CARP owner).
#[derive(Clone)]
struct Placement {
    net: u8,
    label: String,
    held: HashMap<String, usize>,
    order: Vec<String>,
}

impl Placement {
    /// `n` objects, half with a query, each fetched straight from one Squid
    /// (one of the two that do not own it by CARP, alternately), then
    /// checked over ICP: HIT at that Squid, MISS at the others.
    fn place(c: &Cluster, n: usize, label: &str) -> Placement {
        let hosts = c.hosts();
        let (mut held, mut order) = (HashMap::new(), Vec::new());
        for i in 0..n {
            let target =
                if i % 2 == 0 { format!("/wsgi/{label}/{i}?v={i}") } else { format!("/wsgi/{label}/{i}.html") };
            let holder = (carp_owner(c.net, &target) + 1 + i % 2) % 3;
            let r = http::get(c.cache_for(hosts[holder]).http_addr(), &target);
            assert_eq!(r.status, 200, "placing {target} at {}: {r:?}", hosts[holder]);
            assert_eq!(r.body_text(), body_from(hosts[holder], &target), "placing {target}");
            held.insert(target.clone(), holder);
            order.push(target);
        }
        for target in &order {
            for (s, host) in hosts.iter().enumerate() {
                let want = if s == held[target] { Opcode::Hit } else { Opcode::Miss };
                let got = c.cache_for(*host).icp_query(&key(target));
                assert_eq!(got, Some(want), "ICP at {host} for {target} (held at {})", hosts[held[target]]);
            }
        }
        for s in 0..3 {
            assert!(held.values().any(|&h| h == s), "every Squid holds some of the objects: {held:?}");
        }
        Placement { net: c.net, label: label.to_string(), held, order }
    }

    /// The route, member and verdict a request for `target` must get, and
    /// the host whose origin produced the body: a placed object is a HIT at
    /// the Squid holding it; a new one (`/wsgi/new/…`) goes to its CARP
    /// owner, which fetches it (`first`) and has it from then on.
    fn expect_nth(&self, target: &str, first: bool) -> Option<(Route, Ipv4Addr)> {
        let hosts = host_ips(self.net);
        let (route, s, verdict) = match self.held.get(target) {
            Some(&s) => ("hit", s, "HIT"),
            None if target.starts_with("/wsgi/new/") && first => ("carp", carp_owner(self.net, target), "MISS"),
            None if target.starts_with("/wsgi/new/") => ("hit", carp_owner(self.net, target), "HIT"),
            None => return None,
        };
        let route =
            Route { route, worker: member_url(hosts[s]), x_cache: format!("{verdict} from {}", squid_name(hosts[s])) };
        Some((route, hosts[s]))
    }

    /// `expect_nth` for the first request for `target`.
    fn expect(&self, target: &str) -> Option<(Route, Ipv4Addr)> {
        self.expect_nth(target, true)
    }

    /// The load's request `n` on connection `conn`: three in four a placed
    /// object, one in four a new one (every eighth with a query), with the
    /// body it must have.
    fn target(&self, conn: usize, n: u64) -> (String, Option<String>) {
        let target = if n % 4 == 3 {
            let query = if n % 8 == 7 { format!("?q={n}") } else { String::new() };
            format!("/wsgi/new/{}/{conn}-{n}{query}", self.label)
        } else {
            self.order[(conn * 7 + n as usize * 11) % self.order.len()].clone()
        };
        let (_, host) = self.expect(&target).expect("a target the placement knows");
        let body = body_from(host, &target);
        (target, Some(body))
    }
}

// ---------------------------------------------------------------- checking

/// One line of the route log: route, member, target (%U%q), status, X-Cache.
fn parse_route_line(line: &str) -> Option<(String, String, String, u16, String)> {
    let mut f = line.split(' ');
    let route = f.next()?.to_string();
    let worker = f.next()?.to_string();
    let target = f.next()?.to_string();
    let status = f.next()?.parse().ok()?;
    let x_cache = f.collect::<Vec<_>>().join(" ");
    Some((route, worker, target, status, x_cache))
}

fn route_log(c: &Cluster) -> String {
    read_lossy(&c.httpd().log_dir().join("route.log"))
}

/// Waits until the route log has `n` lines, then checks every line
/// against `placement` (route, member, status 200, X-Cache; a new object's
/// later requests are HITs at its owner); returns the number of lines.
fn check_route_log(c: &Cluster, placement: &Placement, n: u64, what: &str) -> usize {
    let lines = |log: &str| log.lines().count() as u64;
    poll_until(LOG_BOUND, || (lines(&route_log(c)) >= n).then_some(()));
    let log = route_log(c);
    let (mut wrong, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for line in log.lines() {
        let Some((route, worker, target, status, x_cache)) = parse_route_line(line) else {
            wrong.push(format!("unreadable: {line:?}"));
            continue;
        };
        let first = seen.insert(target.clone());
        match placement.expect_nth(&target, first) {
            Some((want, _)) => {
                if (route.as_str(), &worker, status, &x_cache) != (want.route, &want.worker, 200, &want.x_cache) {
                    wrong.push(format!(
                        "{target}: {route} {worker} {status} {x_cache:?}, expected {} {} 200 {:?}",
                        want.route, want.worker, want.x_cache
                    ));
                }
            }
            None => wrong.push(format!("a request the test did not send: {line:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} of {} requests were not served by the Squid that holds (or owns) the object:\n{}",
        wrong.len(),
        lines(&log),
        wrong.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(lines(&log), n, "{what}: one route log line per request answered");
    n as usize
}

fn describe(failures: &[Failure]) -> String {
    failures
        .iter()
        .take(20)
        .map(|f| format!("  conn {} {}: {}", f.conn, f.target, f.what))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the load has answered `n` requests in all.
fn wait_for_load(load: &Load, n: u64, what: &str) -> Totals {
    let reached = poll_until(PROGRESS_BOUND, || {
        let t = load.totals();
        (t.ok + t.failed >= n).then_some(t)
    });
    reached.unwrap_or_else(|| panic!("{what}: the load never reached {n} requests: {:?}", load.totals()))
}

/// Lines of the error log that mod_icpquery wrote at warn or above, and
/// any crash of a child.
fn module_trouble(error_log: &str) -> Vec<&str> {
    error_log
        .lines()
        .filter(|l| {
            let from_module = l.contains("[icpquery:") || l.contains("mod_icpquery") || l.contains("icpquery_module");
            let serious = ["emerg]", "alert]", "crit]", "error]", "warn]"].iter().any(|lvl| l.contains(lvl));
            (from_module && serious) || l.contains("exit signal")
        })
        .collect()
}

/// Sequential requests through the portal: every placed object a HIT at
/// its Squid, `new` new objects a MISS at their CARP owner and then a HIT
/// there.
fn check_sequential(c: &Cluster, placement: &Placement, new: usize, label: &str) -> usize {
    let mut sent = 0;
    for target in &placement.order {
        let r = c.get(target);
        let (want, host) = placement.expect(target).expect("placed");
        assert_eq!(r.status, 200, "{label}: {target}: {r:?}");
        assert_eq!(r.x_cache(), Some(want.x_cache.as_str()), "{label}: {target}: {r:?}");
        assert_eq!(r.body_text(), body_from(host, target), "{label}: {target}");
        sent += 1;
    }
    let hosts = c.hosts();
    for i in 0..new {
        let target = format!("/wsgi/new/{label}-{i}?n={i}");
        let owner = squid_name(hosts[carp_owner(c.net, &target)]);
        let first = c.get(&target);
        assert_eq!(first.status, 200, "{label}: {target}: {first:?}");
        assert_eq!(first.x_cache(), Some(format!("MISS from {owner}").as_str()), "{label}: {target} goes to its owner");
        let again = c.get(&target);
        assert_eq!(again.x_cache(), Some(format!("HIT from {owner}").as_str()), "{label}: {target} again");
        sent += 2;
    }
    sent
}

// ---------------------------------------------------------------- 1. every MPM under load

fn routed_under_load(net: u8, mpm: Mpm) {
    let c = start(net, mpm);
    let placement = Placement::place(&c, PLACED, &format!("load{net}"));
    let p = placement.clone();
    let load = Load::start(c.portal_addr(), CLIENTS, Box::new(move |conn, n| p.target(conn, n)));
    wait_for_load(&load, REQUESTS, mpm.name());
    let (totals, failures) = load.finish();
    eprintln!("{mpm:?}: {totals:?}");
    assert!(
        failures.is_empty(),
        "{mpm:?}: {} of {} requests failed:\n{}",
        failures.len(),
        totals.ok,
        describe(&failures)
    );
    assert!(totals.ok >= REQUESTS, "{totals:?}");
    check_route_log(&c, &placement, totals.ok, mpm.name());
    let log = c.httpd().module_log();
    assert!(!log.contains("dropped a datagram"), "{mpm:?}: no lookup saw a reply meant for another");
    let trouble = module_trouble(&c.httpd().error_log()).join("\n");
    assert!(trouble.is_empty(), "{mpm:?}:\n{trouble}");
}

#[test]
fn under_load_every_request_reaches_the_squid_that_holds_it_event_mpm() {
    routed_under_load(220, Mpm::Event);
}

#[test]
fn under_load_every_request_reaches_the_squid_that_holds_it_worker_mpm() {
    routed_under_load(221, Mpm::Worker);
}

#[test]
fn under_load_every_request_reaches_the_squid_that_holds_it_prefork_mpm() {
    routed_under_load(222, Mpm::Prefork);
}

// ---------------------------------------------------------------- 2. graceful restart under load

#[test]
fn graceful_restarts_under_load_lose_no_request_and_routing_stays_right() {
    let net = 223;
    let mut c = start(net, Mpm::Event);
    let placement = Placement::place(&c, PLACED, "graceful");
    let p = placement.clone();
    let load = Load::start(c.portal_addr(), CLIENTS, Box::new(move |conn, n| p.target(conn, n)));
    // Two graceful restarts (the module is unloaded and loaded again each
    // time), each with requests in flight and more afterwards.
    for round in 1..=2 {
        let t = wait_for_load(&load, load.totals().ok + REQUESTS / 6, "before a graceful restart");
        c.httpd_mut().graceful_restart();
        eprintln!("graceful restart {round} after {t:?}");
    }
    wait_for_load(&load, load.totals().ok + REQUESTS / 6, "after the graceful restarts");
    let (totals, failures) = load.finish();
    eprintln!("graceful: {totals:?}");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across the graceful restarts:\n{}",
        failures.len(),
        totals.ok,
        describe(&failures)
    );
    assert!(totals.connects > CLIENTS as u64, "the clients reconnected to the new generation: {totals:?}");
    let logged = check_route_log(&c, &placement, totals.ok, "graceful restarts");

    // The new generation, request by request.
    let sent = check_sequential(&c, &placement, 6, "graceful-after");
    check_route_log(&c, &placement, (logged + sent) as u64, "after the graceful restarts");
    let error_log = c.httpd().error_log();
    assert_eq!(error_log.matches("resuming normal operations").count(), 3, "{error_log}");
    let trouble = module_trouble(&error_log).join("\n");
    assert!(trouble.is_empty(), "{trouble}");
    assert!(!c.httpd().module_log().contains("dropped a datagram"));
}

// ---------------------------------------------------------------- 3. loaded before mod_proxy

/// A module's Debian `.load` file: `/etc/apache2/mods-available/<id>.load`
/// when the system has it, else its LoadModule line.
fn debian_load_file(id: &str) -> String {
    let path = Path::new("/etc/apache2/mods-available").join(format!("{id}.load"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|_| format!("LoadModule {id}_module {}/mod_{id}.so\n", modules_dir().display()))
}

/// `conf/icpquery.load`, pointing at the module under test.
fn icpquery_load() -> String {
    const DEBIAN_PATH: &str = "/usr/lib/apache2/modules/mod_icpquery.so";
    let load = read_conf_file("icpquery.load");
    assert!(load.contains(DEBIAN_PATH), "conf/icpquery.load no longer loads {DEBIAN_PATH}:\n{load}");
    load.replace(DEBIAN_PATH, &module_path().display().to_string())
}

/// The generated main configuration with its LoadModule lines replaced by
/// what Debian's `IncludeOptional mods-enabled/*.load` reads after
/// `a2enmod mpm_X authz_core authz_host dir mime rewrite proxy proxy_http
/// proxy_balancer lbmethod_byrequests icpquery` (with the dependencies
/// a2enmod adds: alias, slotmem_shm): the `.load` files in name order, so
/// icpquery.load comes before proxy.load.
fn debian_order(conf: String, mpm: Mpm) -> String {
    let mut ids: Vec<String> = ["alias", "authz_core", "authz_host", "dir", "mime", "rewrite"]
        .into_iter()
        .chain(["slotmem_shm", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests"])
        .map(String::from)
        .collect();
    ids.push(format!("mpm_{}", mpm.name()));
    ids.push("icpquery".into());
    let mut files: Vec<(String, String)> = ids
        .iter()
        .filter(|id| !is_builtin(id))
        .map(|id| {
            let text = if id == "icpquery" { icpquery_load() } else { debian_load_file(id) };
            (format!("{id}.load"), text)
        })
        .collect();
    files.sort();
    let block: String = files.iter().map(|(name, text)| format!("# mods-enabled/{name}\n{text}\n")).collect();
    let mut out = String::new();
    let mut placed = false;
    for line in conf.lines() {
        if line.starts_with("LoadModule ") {
            if !placed {
                out.push_str(&block);
                placed = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(placed, "the generated configuration has no LoadModule lines");
    out
}

#[test]
fn loaded_before_mod_proxy_in_debian_order_it_passes_configtest_and_routes() {
    let net = 224;
    let mpm = Mpm::Event;
    // The module is loaded by the Debian block, not by the portal part.
    let portal = format!("{}{}", settings(), balancer(net).render());
    let opts = HttpdOptions::without_module(net, mpm, portal);
    let (ok, stderr) = support::Httpd::configtest_edited(&opts, |conf| debian_order(conf, mpm));
    assert!(ok && stderr.contains("Syntax OK"), "{stderr}");

    let mut c = Cluster::start_caches(net);
    c.start_portal_edited(opts, |conf| debian_order(conf, mpm));
    let written = std::fs::read_to_string(c.httpd().conf_path()).expect("httpd.conf");
    let at = |needle: &str| written.find(needle).unwrap_or_else(|| panic!("{needle} not in:\n{written}"));
    assert!(at("LoadModule icpquery_module") < at("LoadModule proxy_module"), "{written}");
    assert!(at("LoadModule proxy_module") < at("LoadModule proxy_balancer_module"));

    let placement = Placement::place(&c, 12, "debian");
    let sent = check_sequential(&c, &placement, 6, "debian");
    check_route_log(&c, &placement, sent as u64, "module loaded before mod_proxy");
    let trouble = module_trouble(&c.httpd().error_log()).join("\n");
    assert!(trouble.is_empty(), "{trouble}");
}

// ---------------------------------------------------------------- 4. without mod_proxy

/// The generated main configuration without any proxy module (nor
/// mod_proxy_balancer's slotmem and lbmethods).
fn without_proxy(conf: String) -> String {
    let proxy = |l: &str| {
        l.starts_with("LoadModule ") && ["proxy", "lbmethod", "slotmem"].iter().any(|m| l.contains(&format!("mod_{m}")))
    };
    conf.lines().filter(|l| !proxy(l)).map(|l| format!("{l}\n")).collect()
}

#[test]
fn without_mod_proxy_httpd_starts_and_the_rewrite_maps_answer() {
    let net = 225;
    let mut c = Cluster::start_caches(net);
    let hosts = c.hosts();
    let peers: String = hosts.iter().map(|h| format!("ICPQueryPeer {h}:3130\n")).collect();
    let portal = format!(
        "LoadModule icpquery_module {}\nICPQueryMapper On\nICPQueryTimeout 2000000\n{peers}\
         ICPQueryLog logs/icpquery.log\nICPQueryLogLevel 1\nLogLevel warn icpquery:info\n\
         RewriteEngine On\n\
         RewriteMap icpquery int:icpquerymap\n\
         RewriteMap cacheisrunning int:icpqueryisrunning\n\
         RewriteRule ^/probe/([^/]+)/(.+)$ \
         http://answer.invalid/hit=${{icpquery:http://localhost/wsgi/$2|none}}/running=${{cacheisrunning:$1|no}} \
         [R=302,L,NE]\n",
        module_path().display()
    );
    let opts = HttpdOptions::without_module(net, Mpm::Event, portal);
    c.start_portal_edited(opts, without_proxy);
    let conf = c.httpd().conf_path().to_path_buf();
    let modules = Command::new(httpd_binary()).args(["-t", "-D", "DUMP_MODULES", "-f"]).arg(&conf).output().unwrap();
    let modules = String::from_utf8_lossy(&modules.stdout).into_owned();
    assert!(modules.contains("icpquery_module") && modules.contains("rewrite_module"), "{modules}");
    assert!(!modules.contains("proxy"), "no proxy module may be loaded:\n{modules}");

    let (h3, h4) = (hosts[1], hosts[2]);
    let placed = http::get(c.cache_for(h3).http_addr(), "/wsgi/alone.html");
    assert_eq!(placed.status, 200, "{placed:?}");
    let answer = |c: &Cluster, path: &str| {
        let r = c.get(path);
        assert_eq!(r.status, 302, "{path}: {r:?}");
        r.header("Location").unwrap_or_default().to_string()
    };
    let cases = [
        (format!("/probe/{h3}/alone.html"), format!("http://answer.invalid/hit={h3};/running={h3}")),
        (format!("/probe/{h4}/nowhere.html"), format!("http://answer.invalid/hit=none/running={h4}")),
        (
            format!("/probe/{}/alone.html", Ipv4Addr::new(127, 0, net, 9)),
            format!("http://answer.invalid/hit={h3};/running=no"),
        ),
    ];
    for (path, want) in &cases {
        assert_eq!(&answer(&c, path), want, "{path}");
    }
    // And again in the next generation.
    c.httpd_mut().graceful_restart();
    for (path, want) in &cases {
        assert_eq!(&answer(&c, path), want, "{path} after a graceful restart");
    }
    let error_log = c.httpd().error_log();
    let trouble = module_trouble(&error_log).join("\n");
    assert!(trouble.is_empty(), "{trouble}\n(error log:\n{error_log})");
    assert!(!error_log.contains("bycache"), "nothing about lbmethod=bycache without mod_proxy:\n{error_log}");
}

// ---------------------------------------------------------------- 5. configtest

#[test]
fn without_the_module_configtest_refuses_lbmethod_bycache_with_httpds_message() {
    let net = 226;
    let conf = balancer(net);
    let opts = HttpdOptions::without_module(net, Mpm::Event, conf.render());
    let (ok, stderr) = support::Httpd::configtest(&opts);
    assert!(!ok, "httpd without mod_icpquery accepted lbmethod=bycache:\n{stderr}");
    // The line httpd names: ProxySet in the configuration it was given
    // (the ServerRoot path has no newline, so any directory numbers alike).
    let dir = TestDir::new("bycache-lines");
    let generated = main_conf(dir.path(), &opts);
    let line = generated.lines().position(|l| l.trim() == "ProxySet lbmethod=bycache").expect("the ProxySet line") + 1;
    let head = format!("AH00526: Syntax error on line {line} of ");
    let at = stderr.find(&head).unwrap_or_else(|| panic!("expected {head:?} in:\n{stderr}"));
    let rest = &stderr[at + head.len()..];
    let (file, message) = rest.split_once(":\n").unwrap_or_else(|| panic!("{stderr}"));
    assert!(file.ends_with("/httpd.conf"), "{file}");
    assert_eq!(
        message.lines().next(),
        Some(format!("ProxySet: unknown lbmethod lbmethod=bycache; balancer://{BALANCER}").as_str()),
        "{stderr}"
    );

    let with = HttpdOptions::without_module(net, Mpm::Event, portal_conf(net));
    let (ok, stderr) = support::Httpd::configtest(&with);
    assert!(ok && stderr.contains("Syntax OK"), "{stderr}");
}

// ---------------------------------------------------------------- 6. Debian packaging

/// `conf/icpquery.load` is what `a2enmod icpquery` enables. a2enmod also
/// enables the modules named on a `# Depends:` line; the file has none,
/// which the test reports rather than requires (bycache needs
/// proxy_balancer, but the maps need no mod_proxy at all).
#[test]
fn the_debian_load_file_loads_the_module() {
    let load = read_conf_file("icpquery.load");
    let lines: Vec<&str> = load.lines().filter(|l| l.starts_with("LoadModule")).collect();
    assert_eq!(lines, ["LoadModule icpquery_module /usr/lib/apache2/modules/mod_icpquery.so"], "{load}");
    let depends = load.lines().find_map(|l| l.strip_prefix("# Depends:")).map(str::trim);
    match depends {
        Some(d) => eprintln!("conf/icpquery.load: a2enmod icpquery also enables: {d}"),
        None => eprintln!(
            "conf/icpquery.load has no \"# Depends:\" line: a2enmod icpquery enables no other module \
             (lbmethod=bycache needs proxy_balancer, which Depends: proxy alias slotmem_shm)"
        ),
    }
}
