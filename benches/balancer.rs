//! Portal configurations compared on the same three Squids and the same
//! placement of objects: requests/s, latency, Squid HIT ratio of the
//! responses, the share of lookups answered from memory and httpd CPU per
//! request, with wrk.
//!
//! Set up once (network 127.0.65.x) and shared by every configuration:
//! * the harness's origins and three Squid accelerators (127.0.65.2-4:3128);
//! * BENCH_BAL_URLS objects (default 10,000), `/wsgi/lb/obj00000` …, each
//!   stored at exactly one Squid, the one a CARP portal would pick:
//!   `engine::carp` (Squid's variant), members named by their host as
//!   written in the BalancerMember URL, weights = their loadfactors (1 when
//!   unset), key `http://localhost/wsgi/lb/objNNNNN`. Each object is fetched
//!   once straight from its owner (http://127.0.65.N:3128/wsgi/…) with the
//!   warming header `X-Bench-Warm`.
//! * Every Squid has `store_miss deny` for requests without that header:
//!   a MISS (byrequests sends two requests in three to a Squid that does not
//!   hold the object) is served from the origin but not stored. So the
//!   placement never changes: every configuration and every round sees
//!   exactly one copy of each object, at its CARP owner, as a portal that
//!   routes by cache keeps it (and as three full caches with no room for
//!   copies would). The placement is checked over ICP (every object at every
//!   Squid) before the first run and again after the last.
//!
//! The configurations (`portals()`), baseline first:
//!   byrequests        `<Proxy balancer://caches>` over the three Squids,
//!                     `ProxySet lbmethod=byrequests`, `ProxyPass /wsgi/
//!                     balancer://caches/wsgi/`; mod_icpquery not loaded
//!   bycache+remember  the same balancer with lbmethod=bycache and
//!                     `ICPQueryRemember BENCH_BAL_REMEMBER` (default 5)
//!   bycache           the same, a lookup per request
//!   seed+remember     the seed's rules (conf/httpd-portal.conf: `RewriteMap
//!                     int:icpquerymap`, `[P]` to http://<cache>:3128, the
//!                     rnd: fallback) with production logging and
//!                     ICPQueryRemember, plus a `<Proxy http://<Squid>:3128>`
//!                     worker per Squid so that `[P]` reuses connections
//!   seed              the same, a lookup per request
//! Each configuration gets one portal httpd (event MPM, the harness's
//! settings), started fresh for each of its runs. Each run: a
//! BENCH_BAL_WARMUP s wrk run (connections, threads, mod_proxy's backend
//! connections, the memory), then BENCH_BAL_SECONDS s measured;
//! BENCH_BAL_ROUNDS rounds, the order of the configurations reversed every
//! other round. wrk `-t2 -c<BENCH_BAL_CONNS>` with a Lua script whose URL
//! chooser is one function (BENCH_BAL_POPULARITY: `zipf[:S]` (default),
//! rank k drawn with weight 1/k^S, S default 1; `uniform`; `cycle`, each
//! thread from its own offset).
//!
//! Reported per configuration: requests/s (mean over rounds, and the
//! range), wrk's p50/p99 latency (mean over rounds), the share of responses
//! with `X-Cache: HIT` (httpd's access log, measured windows only) and who
//! answered, the share of lookups answered from memory (the module's status
//! page, `/icpquery-status?auto`, read before and after each measured
//! window), CPU per request of httpd (all its processes, /proc), of the
//! Squids, of the origins (this process) and of wrk, requests that reached
//! an origin; and the ratio of requests/s and of httpd CPU per request to
//! the first configuration (the baseline, byrequests). byrequests pays for
//! its misses here (two requests in three are fetched from an origin by a
//! Squid that does not hold the object), the others do not: the requests/s
//! ratio is what routing by cache gives on this placement, the httpd CPU
//! ratio what it costs the portal.
//!
//! A configuration whose lbmethod httpd does not know (`httpd -t` says
//! "unknown lbmethod") is skipped and reported as such;
//! BENCH_BAL_REQUIRE_ALL=1 makes that an error.
//! Target (BENCH_BAL_TARGET): by default bycache+remember ≥ 0.90 ×
//! byrequests' requests/s (aim 0.95, printed beside it); `1.5` sets a
//! minimum ratio for every configuration but the baseline,
//! `bycache=1.5,seed=1.2` per configuration, `` (empty) none.
//! BENCH_BAL_CONFIGS=byrequests,bycache picks configurations (the first one
//! picked is the baseline).
//!
//! `cargo bench --bench balancer` (after `cargo build --release`), or
//! `bench/run.sh balancer`.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{children_cpu, env_num, mark, note, production_logging, summary, tree_cpu, us, wrk, Row, WrkResult};
use mod_icpquery::engine::carp;
use support::balancer::{squid_name, BalancerConf};
use support::httpd::{log_dir_for, module_path, proxies_path_for, seed_portal_conf, Httpd, HttpdOptions};
use support::squid::icp_query_to;
use support::{portal_ip, CacheOptions, Cluster, Mpm, Opcode};

const NET: u8 = 65;
/// NAME in balancer://NAME.
const BALANCER: &str = "caches";
const THREADS: u32 = 2;
/// The header that lets a Squid store what it fetched (see `squid_pin_conf`).
const WARM_HEADER: &str = "X-Bench-Warm";
const PATH_PREFIX: &str = "/wsgi/lb/obj";

// ---------------------------------------------------------------- configurations

/// What a portal configuration is made from.
struct Ctx<'a> {
    /// The module under test (`LoadModule icpquery_module <module>`).
    module: &'a Path,
    /// The balancer over the three Squids, lbmethod still to be set.
    balancer: &'a BalancerConf,
    /// This configuration's portal directory (its ServerRoot; logs and the
    /// seed's proxies.txt go there).
    dir: &'a Path,
    /// `ICPQueryRemember` seconds for the configurations that keep answers.
    remember: u64,
}

/// One named portal configuration: the text appended to the harness's main
/// httpd configuration. Requests for `/wsgi/…` must reach the Squids.
#[derive(Clone)]
struct Portal {
    name: &'static str,
    about: &'static str,
    conf: fn(&Ctx) -> String,
}

/// The configuration whose ratio has a target by default, the target, and
/// the ratio aimed at beyond it.
const TARGETED: &str = "bycache+remember";
const DEFAULT_TARGET: f64 = 0.90;
const AIM: f64 = 0.95;

/// The configurations, baseline first.
fn portals() -> Vec<Portal> {
    vec![
        Portal {
            name: "byrequests",
            about: "stock mod_lbmethod_byrequests (weighted round robin), mod_icpquery not loaded",
            conf: |c| c.balancer.clone().lbmethod("byrequests").render(),
        },
        Portal {
            name: "bycache+remember",
            about: "lbmethod=bycache with ICPQueryRemember (a repeat within the memory's time needs no ICP)",
            conf: |c| bycache_conf(c, true),
        },
        Portal {
            name: "bycache",
            about: "lbmethod=bycache, a lookup per request (LoadModule icpquery_module and nothing else)",
            conf: |c| bycache_conf(c, false),
        },
        Portal {
            name: "seed+remember",
            about: "the seed's mod_rewrite rules (conf/httpd-portal.conf, production logging) with \
                    ICPQueryRemember, a <Proxy> worker per Squid",
            conf: |c| seed_conf(c, true),
        },
        Portal {
            name: "seed",
            about: "the seed's mod_rewrite rules (conf/httpd-portal.conf, production logging), a lookup per \
                    request, a <Proxy> worker per Squid",
            conf: |c| seed_conf(c, false),
        },
    ]
}

/// The module's status page, read before and after each measured run for
/// how many lookups were answered from memory. Only in the configurations
/// that load the module.
const STATUS_PATH: &str = "/icpquery-status";

fn status_location() -> String {
    common::status_location(STATUS_PATH)
}

fn remember_line(c: &Ctx, remember: bool) -> String {
    match remember {
        true => format!("ICPQueryRemember {}\n", c.remember),
        false => String::new(),
    }
}

/// lbmethod=bycache over the three Squids, with or without the memory.
fn bycache_conf(c: &Ctx, remember: bool) -> String {
    // Before the balancer: ProxySet looks the lbmethod provider up while
    // the configuration is read.
    format!(
        "LoadModule icpquery_module {}\n{}{}{}",
        c.module.display(),
        remember_line(c, remember),
        c.balancer.clone().lbmethod("bycache").render(),
        status_location()
    )
}

/// The seed's rules verbatim (`RewriteMap int:icpquerymap`, `[P]` to
/// `http://<cache>:3128`, the `rnd:` fallback) with production logging
/// (LogLevel warn, ICPQueryLogLevel 0), and a `<Proxy http://<Squid>:3128>`
/// worker per Squid: without one, mod_proxy sends `[P]` requests through
/// its default worker, which opens a new connection to the Squid for every
/// request; with one, connections are pooled and reused as a balancer
/// member's are. (`ProxySet retry=60` only creates the worker: 60 s is the
/// default.)
fn seed_conf(c: &Ctx, remember: bool) -> String {
    let logs = log_dir_for(c.dir);
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("cannot create {}: {e}", logs.display()));
    let mut conf = production_logging(&seed_portal_conf(NET, c.module, &logs, &proxies_path_for(c.dir)));
    conf.push_str("\n# ---- added by benches/balancer.rs ----\n");
    conf.push_str(&remember_line(c, remember));
    for m in &c.balancer.members {
        conf.push_str(&format!("<Proxy {}>\n    ProxySet retry=60\n</Proxy>\n", m.url));
    }
    conf.push_str(&status_location());
    conf
}

/// The balancer every configuration uses: the three Squids, equal weights.
fn squids_balancer() -> BalancerConf {
    BalancerConf::over_squids(NET, BALANCER).without_manager()
}

/// Squid lines that keep the placement fixed: only warming requests may
/// store what they fetched; everything else is still served from the cache
/// when it is there (`store_miss` does not affect hits).
fn squid_pin_conf() -> String {
    format!(
        "# ---- added by benches/balancer.rs: only warming requests store ----\n\
         acl bench_warm req_header {WARM_HEADER} .\n\
         store_miss deny !bench_warm\n"
    )
}

// ---------------------------------------------------------------- knobs

#[derive(Clone, Copy, Debug, PartialEq)]
enum Popularity {
    /// Every URL in turn, each wrk thread from its own offset.
    Cycle,
    /// Uniformly random.
    Uniform,
    /// Rank k (URL k) with weight 1/k^s.
    Zipf(f64),
}

impl Popularity {
    fn parse(s: &str) -> Popularity {
        let s = s.trim();
        match s {
            "cycle" => Popularity::Cycle,
            "uniform" => Popularity::Uniform,
            "zipf" => Popularity::Zipf(1.0),
            _ => match s.strip_prefix("zipf:").map(|v| v.parse::<f64>()) {
                Some(Ok(x)) if x > 0.0 && x.is_finite() => Popularity::Zipf(x),
                _ => panic!("BENCH_BAL_POPULARITY={s:?}: expected cycle, uniform, zipf or zipf:<s> (s > 0)"),
            },
        }
    }

    fn describe(self) -> String {
        match self {
            Popularity::Cycle => "cycling over the URLs".into(),
            Popularity::Uniform => "URLs picked uniformly at random".into(),
            Popularity::Zipf(s) => format!("Zipf-like popularity (s = {s})"),
        }
    }

    /// Lua defining `chooser_init()` (once per wrk thread, after `tid` is
    /// set) and `choose()`, which returns the next URL's index, 1..n.
    fn lua(self) -> String {
        match self {
            Popularity::Cycle => "local i = 0\n\
                 local function chooser_init() i = ((tid or 1) * 7919) % n end\n\
                 local function choose()\n  i = i + 1\n  if i > n then i = 1 end\n  return i\nend\n"
                .into(),
            Popularity::Uniform => "local function chooser_init() math.randomseed((tid or 1) * 7919) end\n\
                 local function choose() return math.random(n) end\n"
                .into(),
            Popularity::Zipf(s) => format!(
                "local cdf = {{}}\n\
                 local function chooser_init()\n  math.randomseed((tid or 1) * 7919)\n  local total = 0\n  \
                 for k = 1, n do total = total + 1 / (k ^ {s}); cdf[k] = total end\n  \
                 for k = 1, n do cdf[k] = cdf[k] / total end\nend\n\
                 local function choose()\n  local u = math.random()\n  local lo, hi = 1, n\n  \
                 while lo < hi do\n    local mid = math.floor((lo + hi) / 2)\n    \
                 if cdf[mid] < u then lo = mid + 1 else hi = mid end\n  end\n  return lo\nend\n"
            ),
        }
    }
}

/// The wrk script: requests for `paths`, the next one chosen by
/// `popularity`; prints wrk's p50/p99 latency on a line of its own.
fn wrk_script(paths: &[String], popularity: Popularity) -> String {
    let mut s = String::from("-- generated by benches/balancer.rs\nlocal paths = {\n");
    for p in paths {
        s.push_str(&format!("  {p:?},\n"));
    }
    s.push_str(
        "}\nlocal n = #paths\nlocal reqs = {}\nlocal next_tid = 1\n\
         function setup(thread)\n  thread:set(\"tid\", next_tid)\n  next_tid = next_tid + 1\nend\n",
    );
    s.push_str(&popularity.lua());
    s.push_str(
        "function init(args)\n  for k = 1, n do reqs[k] = wrk.format(\"GET\", paths[k]) end\n  chooser_init()\nend\n\
         function request()\n  return reqs[choose()]\nend\n\
         function done(summary, latency, requests)\n  \
         io.write(string.format(\"BENCH_LATENCY p50_us=%d p99_us=%d\\n\", latency:percentile(50), latency:percentile(99)))\nend\n",
    );
    s
}

/// (p50, p99) in µs from the script's `done` line.
fn latency_of(r: &WrkResult) -> (f64, f64) {
    let line = r.raw.lines().find_map(|l| l.trim().strip_prefix("BENCH_LATENCY ")).unwrap_or_else(|| {
        panic!("wrk printed no BENCH_LATENCY line:\n{}", r.raw);
    });
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    (field("p50_us"), field("p99_us"))
}

/// BENCH_BAL_TARGET: "" (none), "1.5" (every configuration but the
/// baseline), "bycache=1.5,x=1.2".
fn target_for(spec: &str, name: &str) -> Option<f64> {
    let mut all = None;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |v: &str| -> f64 {
            v.trim().parse().unwrap_or_else(|_| panic!("BENCH_BAL_TARGET: {v:?} is not a number (in {spec:?})"))
        };
        match part.split_once('=') {
            Some((k, v)) if k.trim() == name => return Some(parse(v)),
            Some(_) => {}
            None => all = Some(parse(part)),
        }
    }
    all
}

// ---------------------------------------------------------------- placement

fn key(path: &str) -> String {
    format!("http://localhost{path}")
}

/// The host of a member URL, as written ("http://127.0.65.2:3128" -> "127.0.65.2").
fn member_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// For every path, the index of its CARP owner among `conf.members`.
fn carp_owners(conf: &BalancerConf, paths: &[String]) -> Vec<usize> {
    let members: Vec<carp::Member> = conf
        .members
        .iter()
        .map(|m| carp::Member { name: member_host(&m.url), weight: m.loadfactor.unwrap_or(1) })
        .collect();
    let array = carp::Array::new(&members, carp::Variant::Squid);
    paths
        .iter()
        .map(|p| array.owner(key(p).as_bytes(), |_| true).unwrap_or_else(|| panic!("CARP: no owner for {p}")))
        .collect()
}

/// Fetch each object once from its owner (`owners[i]` indexes `squids`),
/// with the warming header, the Squids in parallel.
fn warm(squids: &[SocketAddr], paths: &[String], owners: &[usize]) {
    std::thread::scope(|s| {
        for (k, &addr) in squids.iter().enumerate() {
            s.spawn(move || {
                for (p, _) in paths.iter().zip(owners).filter(|(_, &o)| o == k) {
                    let r = support::http::request(addr, "GET", p, &[(WARM_HEADER, "1")])
                        .unwrap_or_else(|e| panic!("warming {p} at {addr}: {e}"));
                    assert_eq!(r.status, 200, "warming {p} at {addr}: {r:?}");
                }
            });
        }
    });
}

/// What the Squids hold, asked over ICP.
struct Placement {
    /// Objects held by their owner and nobody else.
    exact: usize,
    /// Objects their owner does not hold.
    missing: Vec<String>,
    /// Copies held by a Squid that is not the owner.
    extra: Vec<String>,
    unanswered: usize,
}

impl Placement {
    fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }

    fn describe(&self) -> String {
        let few = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        format!(
            "{} objects exactly at their owner; {} missing at the owner{}; {} extra copies{}; {} ICP queries \
             unanswered",
            self.exact,
            self.missing.len(),
            if self.missing.is_empty() { String::new() } else { format!(" ({}, …)", few(&self.missing)) },
            self.extra.len(),
            if self.extra.is_empty() { String::new() } else { format!(" ({}, …)", few(&self.extra)) },
            self.unanswered
        )
    }
}

/// Ask every Squid (ICP, in parallel) about every object.
fn check_placement(icp: &[SocketAddr], names: &[String], paths: &[String], owners: &[usize]) -> Placement {
    let held: Vec<(Vec<bool>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = icp
            .iter()
            .map(|&addr| {
                s.spawn(move || {
                    let mut unanswered = 0;
                    let held = paths
                        .iter()
                        .map(|p| {
                            let k = key(p);
                            // One retry: a lost datagram must not read as "not held".
                            let reply = icp_query_to(addr, &k, Duration::from_millis(500))
                                .or_else(|| icp_query_to(addr, &k, Duration::from_millis(500)));
                            unanswered += usize::from(reply.is_none());
                            matches!(reply, Some(Opcode::Hit) | Some(Opcode::HitObj))
                        })
                        .collect();
                    (held, unanswered)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("ICP scan thread")).collect()
    });
    let mut p =
        Placement { exact: 0, missing: Vec::new(), extra: Vec::new(), unanswered: held.iter().map(|(_, u)| u).sum() };
    for (i, path) in paths.iter().enumerate() {
        let owner_has = held[owners[i]].0[i];
        let others: Vec<&String> =
            (0..held.len()).filter(|&k| k != owners[i] && held[k].0[i]).map(|k| &names[k]).collect();
        if !owner_has {
            p.missing.push(format!("{path} at {}", names[owners[i]]));
        }
        for o in &others {
            p.extra.push(format!("{path} at {o}"));
        }
        if owner_has && others.is_empty() {
            p.exact += 1;
        }
    }
    p
}

// ---------------------------------------------------------------- measuring

/// CPU time of this process (the origins' threads; the main thread mostly
/// waits for wrk).
fn self_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid and getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What the measured runs of one configuration added up to.
#[derive(Default)]
struct Tally {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    requests: u64,
    /// Responses for the benchmark's objects in httpd's access log, and how
    /// many of them were Squid HITs.
    responses: usize,
    hits: usize,
    /// Who answered (the Squid named in X-Cache), by name.
    by: BTreeMap<String, usize>,
    /// CPU: httpd, Squids, origins (this process), wrk.
    cpu: [Duration; 4],
    origin_requests: usize,
    /// From the module's status page (measured windows only): ICP lookups,
    /// and lookups answered from memory.
    lookups: u64,
    recalled: u64,
    /// Whether the status page was read at all (the module is loaded).
    has_status: bool,
    errors: Vec<String>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

impl Tally {
    fn rps(&self) -> f64 {
        mean(&self.rps)
    }

    fn hit_pct(&self) -> f64 {
        100.0 * self.hits as f64 / self.responses.max(1) as f64
    }

    /// CPU per request (µs) of httpd, Squids, origins, wrk.
    fn per_request(&self) -> [f64; 4] {
        self.cpu.map(|d| us(d) / self.requests.max(1) as f64)
    }

    /// The share of lookups answered from memory, "-" without the module.
    fn memory_pct(&self) -> String {
        match self.has_status {
            true => format!("{:.1}", 100.0 * self.recalled as f64 / (self.lookups + self.recalled).max(1) as f64),
            false => "-".into(),
        }
    }

    fn range(&self) -> String {
        let (lo, hi) = self.rps.iter().fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.0}–{hi:.0}")
    }

    fn shares(&self) -> String {
        let total: usize = self.by.values().sum();
        self.by
            .iter()
            .map(|(k, v)| format!("{k} {:.0}%", 100.0 * *v as f64 / total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Count the benchmark's responses in a piece of httpd's access log
    /// (format `portal`: … X-Cache:"HIT from squid3" …).
    fn count_log(&mut self, log: &str) {
        for line in log.lines().filter(|l| l.contains(PATH_PREFIX)) {
            self.responses += 1;
            let x_cache = line.split("X-Cache:\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
            if x_cache.starts_with("HIT") {
                self.hits += 1;
            }
            let who = x_cache.split(" from ").nth(1).map(str::trim).filter(|w| !w.is_empty()).unwrap_or("-");
            *self.by.entry(who.to_string()).or_insert(0) += 1;
        }
    }
}

/// The 1-minute load average (other work on the machine shows here).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or("?".into())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The part of `path` after byte `from`.
fn read_from(path: &Path, from: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes[(from as usize).min(bytes.len())..]).into_owned()
}

/// Where configuration `name`'s portal httpd lives.
fn portal_dir(cluster_dir: &Path, name: &str) -> std::path::PathBuf {
    cluster_dir.join(format!("portal-{name}"))
}

struct Run<'a> {
    cluster: &'a Cluster,
    script: &'a Path,
    module: &'a Path,
    conns: u32,
    warmup: u64,
    secs: u64,
}

impl Run<'_> {
    /// Start the portal with `conf`, warm it up, measure once, stop it.
    fn once(&self, name: &str, conf: &str, round: usize, t: &mut Tally) {
        let dir = portal_dir(self.cluster.dir(), name);
        let opts =
            HttpdOptions { net: NET, mpm: Mpm::Event, portal_conf: conf.to_string(), module: self.module.into() };
        let httpd = Httpd::start(&dir, opts);
        let url = format!("http://{}:{}/", portal_ip(NET), support::PORTAL_PORT);
        if self.warmup > 0 {
            wrk(THREADS, self.conns, self.warmup, self.script, &url, &[]);
        }
        let pid = httpd.pid().expect("httpd runs");
        let squid_pids: Vec<i32> = self.cluster.squids().iter().filter_map(|s| s.pid()).collect();
        let sample =
            || [tree_cpu(pid), squid_pids.iter().map(|p| tree_cpu(*p)).sum::<Duration>(), self_cpu(), children_cpu()];
        let log = httpd.access_log_path();
        let log_at = file_len(&log);
        let origin_before = self.cluster.origin_total();
        let memory_before = common::memory_counters(httpd.addr(), STATUS_PATH);
        let before = sample();
        let r = wrk(THREADS, self.conns, self.secs, self.script, &url, &[]);
        let after = sample();
        let origin_after = self.cluster.origin_total();
        if let (Some(b), Some(a)) = (memory_before, common::memory_counters(httpd.addr(), STATUS_PATH)) {
            t.has_status = true;
            t.lookups += a.0.saturating_sub(b.0);
            t.recalled += a.1.saturating_sub(b.1);
        }
        // Let httpd log the last responses (logged after they are sent).
        std::thread::sleep(Duration::from_millis(200));
        t.count_log(&read_from(&log, log_at));
        drop(httpd);
        for k in 0..4 {
            t.cpu[k] += after[k].saturating_sub(before[k]);
        }
        let (p50, p99) = latency_of(&r);
        t.rps.push(r.rps);
        t.p50.push(p50);
        t.p99.push(p99);
        t.requests += r.requests;
        t.origin_requests += origin_after.saturating_sub(origin_before);
        let mut trouble = String::new();
        if r.non_2xx > 0 {
            trouble.push_str(&format!(", {} non-2xx", r.non_2xx));
        }
        if !r.socket_errors.is_empty() {
            trouble.push_str(&format!(", socket errors: {}", r.socket_errors));
        }
        if !trouble.is_empty() {
            t.errors.push(format!("round {}{trouble}", round + 1));
        }
        println!(
            "round {} {name:<16} {:>8.0} req/s ({} requests, p50 {p50:.0} µs, p99 {p99:.0} µs){trouble}",
            round + 1,
            r.rps,
            r.requests,
        );
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let urls = env_num("BENCH_BAL_URLS", 10_000) as usize;
    let secs = env_num("BENCH_BAL_SECONDS", 5);
    let rounds = env_num("BENCH_BAL_ROUNDS", 4) as usize;
    let warmup = env_num("BENCH_BAL_WARMUP", 2);
    let conns = env_num("BENCH_BAL_CONNS", 32) as u32;
    let popularity = Popularity::parse(&std::env::var("BENCH_BAL_POPULARITY").unwrap_or_else(|_| "zipf".into()));
    let target_spec = std::env::var("BENCH_BAL_TARGET").unwrap_or_else(|_| format!("{TARGETED}={DEFAULT_TARGET:.2}"));
    let remember = env_num("BENCH_BAL_REMEMBER", 5);
    let require_all = std::env::var("BENCH_BAL_REQUIRE_ALL").is_ok_and(|v| v == "1");
    assert!(urls > 0 && secs > 0 && rounds > 0 && conns >= THREADS, "BENCH_BAL_*: counts must be positive");

    let all = portals();
    let configs: Vec<Portal> = match std::env::var("BENCH_BAL_CONFIGS") {
        Err(_) => all,
        Ok(pick) => pick
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|n| {
                all.iter().find(|p| p.name == n).cloned().unwrap_or_else(|| {
                    let known: Vec<&str> = all.iter().map(|p| p.name).collect();
                    panic!("BENCH_BAL_CONFIGS: unknown {n:?} (known: {})", known.join(", "))
                })
            })
            .collect(),
    };
    assert!(!configs.is_empty(), "BENCH_BAL_CONFIGS picks no configuration");

    let module = module_path();
    let balancer = squids_balancer();
    println!(
        "== balancer: {} over the same 3 Squids; {urls} objects, each at its CARP owner only; wrk -t{THREADS} \
         -c{conns} -d{secs}s ({warmup} s warm-up per run), {rounds} alternating rounds, {}",
        configs.iter().map(|p| p.name).collect::<Vec<_>>().join(" vs "),
        popularity.describe()
    );

    // The Squids (their directory holds the portals' too).
    let t0 = Instant::now();
    let pin = squid_pin_conf();
    let caches = CacheOptions { squid_extra_conf: [pin.clone(), pin.clone(), pin], origin_body_len: 0 };
    let cluster = Cluster::start_caches_with(NET, &caches);

    // Which configurations this httpd and module can run at all.
    let mut runnable: Vec<(&Portal, String)> = Vec::new();
    let mut skipped: Vec<(&Portal, String)> = Vec::new();
    for p in &configs {
        let dir = portal_dir(cluster.dir(), p.name);
        let text = (p.conf)(&Ctx { module: &module, balancer: &balancer, dir: &dir, remember });
        let opts = HttpdOptions { net: NET, mpm: Mpm::Event, portal_conf: text.clone(), module: module.clone() };
        let (ok, stderr) = Httpd::configtest(&opts);
        if ok {
            runnable.push((p, text));
        } else if stderr.contains("unknown lbmethod") {
            let why = stderr.lines().find(|l| l.contains("unknown lbmethod")).unwrap_or("").trim().to_string();
            println!("{}: SKIPPED — httpd does not know its lbmethod (httpd -t: {why})", p.name);
            skipped.push((p, why));
        } else {
            panic!("configuration {} does not pass httpd -t:\n{stderr}\n--- configuration ---\n{text}", p.name);
        }
    }
    if require_all && !skipped.is_empty() {
        panic!(
            "BENCH_BAL_REQUIRE_ALL=1 and skipped: {}",
            skipped.iter().map(|(p, _)| p.name).collect::<Vec<_>>().join(", ")
        );
    }
    assert!(!runnable.is_empty(), "no configuration can run");

    // The placement, once for all configurations.
    let paths: Vec<String> = (0..urls).map(|i| format!("{PATH_PREFIX}{i:05}")).collect();
    let owners = carp_owners(&balancer, &paths);
    // Member k is the Squid on the k-th member's host.
    let member_squids: Vec<&support::Squid> = balancer
        .members
        .iter()
        .map(|m| cluster.cache_for(member_host(&m.url).parse::<Ipv4Addr>().expect("member host is an IPv4 address")))
        .collect();
    let http: Vec<SocketAddr> = member_squids.iter().map(|s| s.http_addr()).collect();
    let icp: Vec<SocketAddr> = member_squids.iter().map(|s| s.icp_addr()).collect();
    let names: Vec<String> = member_squids.iter().map(|s| squid_name(s.host())).collect();
    warm(&http, &paths, &owners);
    let placed = check_placement(&icp, &names, &paths, &owners);
    let per_owner: Vec<String> =
        names.iter().enumerate().map(|(k, n)| format!("{n} {}", owners.iter().filter(|&&o| o == k).count())).collect();
    println!(
        "placement (CARP over {}): {}; ICP check: {} ({:.1} s)",
        balancer.members.iter().map(|m| member_host(&m.url)).collect::<Vec<_>>().join(", "),
        per_owner.join(", "),
        placed.describe(),
        t0.elapsed().as_secs_f64()
    );
    assert!(placed.is_exact(), "the objects are not placed at exactly their CARP owner: {}", placed.describe());

    let script = cluster.dir().join("balancer.lua");
    std::fs::write(&script, wrk_script(&paths, popularity)).expect("write the wrk script");
    let load_before = loadavg();
    let run = Run { cluster: &cluster, script: &script, module: &module, conns, warmup, secs };
    let mut tallies: Vec<Tally> = runnable.iter().map(|_| Tally::default()).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..runnable.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            run.once(runnable[i].0.name, &runnable[i].1, round, &mut tallies[i]);
        }
    }
    let after = check_placement(&icp, &names, &paths, &owners);
    println!("placement after the runs: {}", after.describe());

    // The table.
    let base = &tallies[0];
    let base_name = runnable[0].0.name;
    let base_cpu = base.per_request()[0];
    println!();
    println!(
        "{:<16} {:>9} {:>11} {:>7} {:>8} {:>8} {:>7} {:>6} {:>10} {:>8} {:>8} {:>8} {:>6} {:>8}  answered by",
        "config",
        "req/s",
        "range",
        "ratio",
        "p50 µs",
        "p99 µs",
        "HIT %",
        "mem %",
        "httpd µs/r",
        "cpu ×",
        "squid µs",
        "origin µs",
        "wrk µs",
        "origin/r"
    );
    for ((p, _), t) in runnable.iter().zip(&tallies) {
        let c = t.per_request();
        println!(
            "{:<16} {:>9.0} {:>11} {:>7.3} {:>8.0} {:>8.0} {:>7.1} {:>6} {:>10.0} {:>8.3} {:>8.0} {:>9.0} {:>6.0} {:>8.3}  {}",
            p.name,
            t.rps(),
            t.range(),
            t.rps() / base.rps(),
            mean(&t.p50),
            mean(&t.p99),
            t.hit_pct(),
            t.memory_pct(),
            c[0],
            c[0] / base_cpu,
            c[1],
            c[2],
            c[3],
            t.origin_requests as f64 / t.requests.max(1) as f64,
            t.shares()
        );
    }
    for (p, why) in &skipped {
        println!("{:<16} skipped: {why}", p.name);
    }
    for ((p, _), t) in runnable.iter().zip(&tallies).skip(1) {
        let per_round: Vec<String> = t.rps.iter().zip(&base.rps).map(|(x, y)| format!("{:.3}", x / y)).collect();
        println!("{} / {base_name} per round: {}", p.name, per_round.join(", "));
    }
    println!(
        "(ratio: req/s against {base_name}; cpu ×: httpd CPU per request against {base_name}; µs/r: CPU per \
         request; origin/r: requests that reached an origin per request; mem %: lookups answered from memory, from the \
         module's status page)"
    );

    for ((p, _), t) in runnable.iter().zip(&tallies) {
        let ratio = t.rps() / base.rps();
        let is_base = p.name == base_name;
        let target = if is_base { None } else { target_for(&target_spec, p.name) };
        let aim = (p.name == TARGETED).then_some(AIM);
        let aim_text = aim.map_or(String::new(), |a| format!(" (aim {a:.2} {})", mark(ratio >= a)));
        println!(
            "{}: {}{}",
            p.name,
            p.about,
            if is_base {
                " — the baseline".to_string()
            } else {
                format!(
                    " — {ratio:.3} × {base_name}'s requests/s{}",
                    target.map_or(" (no target)".to_string(), |x| format!(
                        ", target ≥ {x:.2} {}{aim_text}",
                        mark(ratio >= x)
                    ))
                )
            }
        );
        summary(Row {
            bench: "balancer",
            case: p.name,
            measured: format!(
                "{:.0} req/s, {:.1}% HIT, {}httpd {:.0} µs/req",
                t.rps(),
                t.hit_pct(),
                if t.has_status { format!("{}% from memory, ", t.memory_pct()) } else { String::new() },
                t.per_request()[0]
            ),
            baseline: if is_base { "-".into() } else { format!("{base_name} {:.0} req/s", base.rps()) },
            ratio: if is_base { "1.000".into() } else { format!("{ratio:.3}") },
            target: target.map_or("none".into(), |x| {
                format!("≥ {x:.2}{}", aim.map_or(String::new(), |a| format!(" (aim {a:.2})")))
            }),
            ok: target.map(|x| ratio >= x),
        });
        if !t.errors.is_empty() {
            note(&format!("balancer ({}): errors during runs: {}", p.name, t.errors.join("; ")));
        }
    }
    for (p, why) in &skipped {
        println!("{}: {} — SKIPPED ({why})", p.name, p.about);
        summary(Row {
            bench: "balancer",
            case: p.name,
            measured: "skipped: httpd has no such lbmethod".into(),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
            ok: None,
        });
    }
    if !after.is_exact() {
        note(&format!("balancer: the placement changed during the runs: {}", after.describe()));
    }
    note(&format!("balancer: load average (1 min) {load_before} before the runs, {} after", loadavg()));
    note(&format!(
        "balancer: {urls} objects at their CARP owner only (Squids store_miss deny except warming), {}; wrk -t{THREADS} \
         -c{conns}, {rounds}×{secs}s per configuration, alternating, a fresh event-MPM httpd per run; \
         ICPQueryRemember {remember}; wrk, httpd, 3 Squids and the origins share {} cores",
        popularity.describe(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
}
