//! Cluster hit ratio of the portal's routing rules with three real Squids
//! whose caches cannot hold the whole working set: against one Squid with
//! the three caches' size together (the ideal: nothing stored twice, no
//! routing), the same rules with and without an answer memory
//! (`ICPQueryRemember`), and, in a second part, while the caches' membership
//! changes.
//!
//! One deterministic trace (fixed seed): BENCH_HR_URLS distinct URLs
//! (default 3,000) with Zipf-distributed popularity (s = BENCH_HR_ZIPF_S_MILLI
//! / 1000, default 1.0), BENCH_HR_REQUESTS requests (default 20,000), sent
//! through the portal by BENCH_HR_CLIENTS concurrent clients (default 4), in
//! trace order, paced to BENCH_HR_RATE requests/s (default 600) so that every
//! configuration's caches see the same arrival rate. Every origin body is
//! BENCH_HR_BODY bytes (default 3,072: one 4 KiB block on disk with Squid's
//! headers and metadata).
//!
//! The caches (BENCH_HR_STORE):
//!   ufs (default)  each Squid a `ufs` cache_dir of BENCH_HR_CACHE_MB MB
//!                  (default 2: 512 blocks), LRU, trimmed once a second to
//!                  cache_swap_low BENCH_HR_SWAP_LOW % (default 70: 358
//!                  objects, about 15 % of the distinct URLs requested), no
//!                  memory cache; the ideal Squid 3x the MB. Between two
//!                  trims a store grows by what arrives in that second, in
//!                  proportion to its share of the traffic, so the ideal and
//!                  the three caches together hold the same; the pacing keeps
//!                  it the same in every configuration.
//!   memory         each Squid cache_mem BENCH_HR_CACHE_KIB KiB (default
//!                  1,800: 391 objects), the ideal 3x. Not the default: once
//!                  full, Squid 5's non-shared memory cache frees space at
//!                  most once a second (Store::Controller::freeMemorySpace)
//!                  and drops every other new object, so it admits about one
//!                  object per second and keeps what it stored first; the
//!                  result depends on the request rate and on the number of
//!                  Squids, not on routing (3 Squids admit 3 objects/s, the
//!                  ideal 1).
//!
//! Part 1, configurations, each on a fresh cluster (network 100 + its index
//! in `Kind::ALL`, 127.0.100.x-127.0.108.x):
//!   seed              conf/httpd-portal.conf: ICP HIT, else random running cache (rnd:)
//!   ICP + CARP        conf/httpd-portal-carp.conf: ICP HIT, else the CARP owner
//!   bycache           conf/httpd-portal-balancer.conf: lbmethod=bycache (ICP HIT, else the CARP owner)
//!   … + memory        each of those three with `ICPQueryRemember BENCH_HR_REMEMBER` (default 5 s)
//!   CARP only         the CARP configuration without the ICP rule
//!   random only       the seed without the ICP rule (rnd: + cacheisrunning)
//!   ideal             one Squid with 3x the cache size, the portal proxies everything to it
//! Every portal runs its configuration's file verbatim with production
//! logging (LogLevel warn, ICPQueryLogLevel 0) instead of the shipped
//! trace5/level 3, which only slows the run down.
//!
//! Measured: hit ratio (responses with `X-Cache: HIT…` / requests), requests
//! the origins answered, and duplication: at the end every Squid is asked over
//! ICP for every distinct URL of the trace; duplicated = URLs held by ≥ 2
//! Squids / URLs held by any.
//!
//! Targets: ICP + CARP within 2 percentage points of the ideal; each
//! configuration with the memory within 1 point of the same rules looking up
//! every request; duplication under 1 % for seed, ICP + CARP and bycache,
//! with and without the memory.
//!
//! Part 2, membership changes (BENCH_HR_CHURN=0 skips it): a second trace
//! of BENCH_HR_CHURN_REQUESTS requests (default 24,000; same URLs, other
//! seed) in four equal phases, each configuration on a fresh cluster
//! (127.0.114.x-127.0.118.x):
//!   1. the three caches;
//!   2. a fourth cache joins: a Squid like the others (and its origin) on
//!      127.0.N.5 is started, then added to the portal's configuration
//!      (`ICPQueryPeer` / `BalancerMember` line), `apachectl configtest`,
//!      graceful restart;
//!   3. one of the first three (127.0.N.3) leaves: removed from the
//!      configuration, configtest, graceful restart, then its Squid is
//!      stopped (maintenance);
//!   4. it comes back: its Squid is started again (its disk cache kept) and
//!      has rebuilt its store, then it is added back, configtest, graceful.
//!
//! The trace pauses while a change is made, so every configuration sees the
//! same requests in each phase. Configurations: CARP only, ICP + CARP,
//! ICP + CARP + memory, bycache, bycache + memory. Reported per phase: the
//! hit ratio during the change (the phase's first quarter) and after it
//! (the rest); what ICP earns over CARP only (the URLs CARP moves to another
//! cache are still found where they are); and whether the memory keeps that
//! (target: within 1 point of the same rules without it, over the whole run
//! and over the three change windows).
//!
//! `cargo bench --bench hit_ratio` (after `cargo build --release`), or
//! `bench/run.sh hit-ratio`; BENCH_HR_CONFIGS=seed,icp-carp,… picks part
//! 1's configurations (keys: seed, seed+remember, icp-carp,
//! icp-carp+remember, bycache, bycache+remember, carp, random, ideal; none:
//! BENCH_HR_CONFIGS=none), BENCH_HR_CHURN_CONFIGS part 2's (carp, icp-carp,
//! icp-carp+remember, bycache, bycache+remember).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{env_num, mark, note, summary, Row};
use support::httpd::{log_dir_for, main_conf, module_path, proxies_path_for, seed_portal_conf, substitute_hosts};
use support::squid::{icp_query_to, memory_conf, ufs_conf};
use support::{read_conf_file, CacheOptions, Cluster, Httpd, Mpm, Opcode, Origin, Squid, ORIGIN_PORT};

/// Networks 100..=108, one per configuration of part 1.
const NET_BASE: u8 = 100;
/// Networks 114..=118, one per configuration of part 2.
const CHURN_NET_BASE: u8 = 114;
const SEED: u64 = 0x1c9_2186_5eed;
/// Part 2's trace: the same URLs, another sequence.
const CHURN_SEED: u64 = 0xc4a2_6e5e_ed00;
/// Largest object kept in memory (KiB): far above the bodies used here.
const MAX_OBJECT_KIB: u64 = 64;
/// Wait after the last request before asking the Squids what they hold, so
/// that the ufs stores' once-a-second trim has run.
const SETTLE: Duration = Duration::from_millis(2500);
/// The module's status page (conf/httpd-portal-balancer.conf has it there).
const STATUS_PATH: &str = "/icpquery-status";

/// The caches' storage and sizes.
#[derive(Clone, Copy, Debug)]
enum Store {
    /// A ufs cache_dir of `mb` MB per Squid (the ideal 3x), trimmed to `low` %.
    Ufs { mb: u64, low: u32 },
    /// cache_mem `kib` KiB per Squid (the ideal 3x).
    Memory { kib: u64 },
}

impl Store {
    /// squid.conf lines for one cache, `factor` times the size.
    fn conf(self, factor: u64) -> String {
        match self {
            Store::Ufs { mb, low } => ufs_conf(factor * mb, low),
            Store::Memory { kib } => memory_conf(factor * kib, MAX_OBJECT_KIB),
        }
    }

    fn describe(self) -> String {
        match self {
            Store::Ufs { mb, low } => format!(
                "ufs cache_dir {mb} MB per Squid, {} MB for the ideal's single Squid, LRU, trimmed once a second \
                 to cache_swap_low {low} %, cache_mem 0",
                3 * mb
            ),
            Store::Memory { kib } => format!(
                "memory cache only: cache_mem {kib} KiB per Squid, {} KiB for the ideal's single Squid \
                 (maximum_object_size_in_memory {MAX_OBJECT_KIB} KiB)",
                3 * kib
            ),
        }
    }
}
const TARGET_DELTA_PP: f64 = 2.0;
const TARGET_DUP_PCT: f64 = 1.0;
/// The memory may move the hit ratio at most this far from the same rules
/// looking up every request.
const TARGET_MEMORY_PP: f64 = 1.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Seed,
    SeedMem,
    IcpCarp,
    IcpCarpMem,
    Bycache,
    BycacheMem,
    CarpOnly,
    RandomOnly,
    Ideal,
}

impl Kind {
    /// Part 1's run order; the index is the network (NET_BASE + index).
    const ALL: [Kind; 9] = [
        Kind::Ideal,
        Kind::IcpCarp,
        Kind::Seed,
        Kind::CarpOnly,
        Kind::RandomOnly,
        Kind::SeedMem,
        Kind::IcpCarpMem,
        Kind::Bycache,
        Kind::BycacheMem,
    ];
    /// Part 2's, likewise (CHURN_NET_BASE + index).
    const CHURN: [Kind; 5] = [Kind::CarpOnly, Kind::IcpCarp, Kind::IcpCarpMem, Kind::Bycache, Kind::BycacheMem];

    fn name(self) -> &'static str {
        match self {
            Kind::Seed => "seed (ICP + random)",
            Kind::SeedMem => "seed + memory",
            Kind::IcpCarp => "ICP + CARP",
            Kind::IcpCarpMem => "ICP + CARP + memory",
            Kind::Bycache => "bycache",
            Kind::BycacheMem => "bycache + memory",
            Kind::CarpOnly => "CARP only",
            Kind::RandomOnly => "random only",
            Kind::Ideal => "ideal (1 Squid, 3x size)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::Seed => "seed",
            Kind::SeedMem => "seed+remember",
            Kind::IcpCarp => "icp-carp",
            Kind::IcpCarpMem => "icp-carp+remember",
            Kind::Bycache => "bycache",
            Kind::BycacheMem => "bycache+remember",
            Kind::CarpOnly => "carp",
            Kind::RandomOnly => "random",
            Kind::Ideal => "ideal",
        }
    }

    /// Where it sits in the printed tables.
    fn order(self) -> usize {
        match self {
            Kind::Seed => 0,
            Kind::SeedMem => 1,
            Kind::IcpCarp => 2,
            Kind::IcpCarpMem => 3,
            Kind::Bycache => 4,
            Kind::BycacheMem => 5,
            Kind::CarpOnly => 6,
            Kind::RandomOnly => 7,
            Kind::Ideal => 8,
        }
    }

    /// Whether it keeps answers (`ICPQueryRemember`).
    fn remembers(self) -> bool {
        matches!(self, Kind::SeedMem | Kind::IcpCarpMem | Kind::BycacheMem)
    }

    /// The same rules looking up every request: the memory's baseline.
    fn per_request(self) -> Option<Kind> {
        match self {
            Kind::SeedMem => Some(Kind::Seed),
            Kind::IcpCarpMem => Some(Kind::IcpCarp),
            Kind::BycacheMem => Some(Kind::Bycache),
            _ => None,
        }
    }

    /// Whether the duplication target applies (the rules that ask over ICP).
    fn dup_target(self) -> bool {
        matches!(self, Kind::Seed | Kind::SeedMem | Kind::IcpCarp | Kind::IcpCarpMem | Kind::Bycache | Kind::BycacheMem)
    }

    /// A comma-separated list of keys (`none`: no configuration).
    fn parse_list(list: &str, known: &[Kind], var: &str) -> Vec<Kind> {
        if list.trim() == "none" {
            return Vec::new();
        }
        list.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                known.iter().copied().find(|c| c.key() == k).unwrap_or_else(|| {
                    let keys: Vec<&str> = known.iter().map(|c| c.key()).collect();
                    panic!("{var}: unknown {k:?} ({})", keys.join(", "))
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------- the trace

/// splitmix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

struct Trace {
    /// The distinct URLs' paths; index = object id.
    paths: Vec<String>,
    /// The requests, as object ids.
    requests: Vec<usize>,
}

impl Trace {
    /// `requests` draws from a Zipf(s) distribution over `urls` objects.
    /// Popularity ranks are assigned to object names by a random
    /// permutation, so a name says nothing about its popularity.
    fn zipf(urls: usize, requests: usize, s: f64, seed: u64) -> Trace {
        let mut rng = Rng(seed);
        let mut cdf = Vec::with_capacity(urls);
        let mut total = 0.0;
        for rank in 1..=urls {
            total += 1.0 / (rank as f64).powf(s);
            cdf.push(total);
        }
        let mut id_of_rank: Vec<usize> = (0..urls).collect();
        for i in (1..urls).rev() {
            id_of_rank.swap(i, rng.below(i + 1));
        }
        let requests = (0..requests)
            .map(|_| {
                let u = rng.unit() * total;
                let rank = cdf.partition_point(|&c| c <= u).min(urls - 1);
                id_of_rank[rank]
            })
            .collect();
        let paths = (0..urls).map(|id| format!("/wsgi/hr/obj{id:05}")).collect();
        Trace { paths, requests }
    }

    fn key(&self, id: usize) -> String {
        format!("http://localhost{}", self.paths[id])
    }

    /// The objects requested at least once, in id order.
    fn distinct(&self) -> Vec<usize> {
        let mut seen = vec![false; self.paths.len()];
        for &id in &self.requests {
            seen[id] = true;
        }
        (0..seen.len()).filter(|&i| seen[i]).collect()
    }

    /// Hit ratio (%) of one LRU cache of `capacity` objects replaying the
    /// trace sequentially: what a perfect single cache of that size gets.
    fn lru_hit_pct(&self, capacity: usize) -> f64 {
        let mut last_use = vec![None::<usize>; self.paths.len()];
        let mut by_time = std::collections::BTreeMap::new();
        let mut hits = 0usize;
        for (t, &id) in self.requests.iter().enumerate() {
            if let Some(prev) = last_use[id].take() {
                by_time.remove(&prev);
                hits += 1;
            } else if by_time.len() >= capacity {
                if let Some((_, old)) = by_time.pop_first() {
                    last_use[old] = None;
                }
            }
            by_time.insert(t, id);
            last_use[id] = Some(t);
        }
        100.0 * hits as f64 / self.requests.len() as f64
    }
}

// ---------------------------------------------------------------- portal configurations

/// The module's and mod_rewrite's logging turned down to production levels.
fn production_logging(conf: &str) -> String {
    common::production_logging(conf)
}

/// `conf` without the `${icpquery:…}` condition and the rule it guards.
fn without_icp_rule(conf: &str) -> String {
    let mut out = String::new();
    let (mut conds, mut rules) = (0, 0);
    let mut drop_next_rule = false;
    for line in conf.lines() {
        let t = line.trim_start();
        if t.starts_with("RewriteCond") && t.contains("${icpquery:") {
            conds += 1;
            drop_next_rule = true;
            out.push_str(&format!("# (removed by benches/hit_ratio.rs) {t}\n"));
            continue;
        }
        if t.starts_with("RewriteRule") && drop_next_rule {
            rules += 1;
            drop_next_rule = false;
            out.push_str(&format!("# (removed by benches/hit_ratio.rs) {t}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(conds == 1 && rules == 1, "the configuration's ICP rule changed shape; cannot remove it from:\n{conf}");
    out
}

fn carp_conf(net: u8, dir: &Path) -> String {
    substitute_hosts(&read_conf_file("httpd-portal-carp.conf"), net)
        .replace("modules/mod_icpquery.so", &module_path().display().to_string())
        .replace("/var/log/httpd/", &format!("{}/", log_dir_for(dir).display()))
}

fn portal_conf(kind: Kind, net: u8, dir: &Path, remember: u64) -> String {
    let seed = || seed_portal_conf(net, &module_path(), &log_dir_for(dir), &proxies_path_for(dir));
    let conf = match kind {
        Kind::Seed | Kind::SeedMem => seed(),
        Kind::IcpCarp | Kind::IcpCarpMem => carp_conf(net, dir),
        Kind::Bycache | Kind::BycacheMem => common::balancer_portal_conf(net, &module_path(), &log_dir_for(dir)),
        Kind::CarpOnly => without_icp_rule(&carp_conf(net, dir)),
        Kind::RandomOnly => without_icp_rule(&seed()),
        Kind::Ideal => format!(
            "# benches/hit_ratio.rs: the ideal, one Squid for everything\n\
             RewriteEngine On\n\
             RewriteRule ^(/wsgi/.+)$ http://{}:3128$1 [proxy,last]\n",
            support::host_ips(net)[0]
        ),
    };
    let mut conf = production_logging(&conf);
    // The status page says how many lookups the memory answered.
    if kind != Kind::Ideal && !conf.contains("SetHandler icpquery-status") {
        conf.push_str(&format!("\n# added by benches/hit_ratio.rs\n{}", common::status_location(STATUS_PATH)));
    }
    if kind.remembers() {
        conf.push_str(&format!("\n# added by benches/hit_ratio.rs: the answer memory\nICPQueryRemember {remember}\n"));
    }
    conf
}

/// `conf` with its caches replaced by `hosts`, as an operator edits it: the
/// lines naming a cache (`ICPQueryPeer <host>:3130`, or `BalancerMember
/// http://<host>:3128 …`) become one such line per host, in that order, in
/// the place of the first, which names `first` and is the pattern.
fn with_caches(conf: &str, first: Ipv4Addr, hosts: &[Ipv4Addr]) -> String {
    let is_cache = |l: &str| {
        let t = l.trim_start();
        t.starts_with("ICPQueryPeer ") || t.starts_with("BalancerMember ")
    };
    let pattern = conf.lines().find(|l| is_cache(l)).expect("the configuration names its caches");
    let named = format!("{first}:");
    assert!(pattern.contains(&named), "the first cache line does not name {first}: {pattern:?}");
    let mut out = String::new();
    let mut placed = false;
    for line in conf.lines() {
        if is_cache(line) {
            if !placed {
                for h in hosts {
                    out.push_str(&pattern.replace(&named, &format!("{h}:")));
                    out.push('\n');
                }
                placed = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Reconfigure the running portal as an operator does: write the new
/// configuration, `apachectl configtest`, graceful restart.
fn reconfigure(httpd: &mut Httpd, portal_conf: String) {
    let mut opts = httpd.options().clone();
    opts.portal_conf = portal_conf;
    let (ok, stderr) = Httpd::configtest(&opts);
    assert!(ok, "the changed configuration does not pass configtest:\n{stderr}\n{}", opts.portal_conf);
    std::fs::write(httpd.conf_path(), main_conf(httpd.dir(), &opts))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", httpd.conf_path().display()));
    httpd.graceful_restart();
}

/// How many times a Squid has rebuilt its store from disk (its cache.log
/// says so once per start).
fn rebuilds(squid: &Squid) -> usize {
    squid.cache_log().matches("Finished rebuilding storage from disk").count()
}

/// Wait until a restarted Squid has rebuilt its store: more rebuilds than
/// `before`.
fn wait_rebuilt(squid: &Squid, before: usize) {
    let done = support::poll_until(Duration::from_secs(60), || (rebuilds(squid) > before).then_some(()));
    assert!(done.is_some(), "{} did not finish rebuilding its store:\n{}", squid.name(), squid.cache_log());
}

// ---------------------------------------------------------------- sending the trace

/// What one request of the trace got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Hit,
    Miss,
    /// 200 without X-Cache: the portal sent it straight to an origin.
    Direct,
    Error,
}

#[derive(Default)]
struct Tally {
    hits: usize,
    misses: usize,
    direct: usize,
    errors: usize,
}

impl Tally {
    fn of(got: &[Got]) -> Tally {
        let mut t = Tally::default();
        for g in got {
            match g {
                Got::Hit => t.hits += 1,
                Got::Miss => t.misses += 1,
                Got::Direct => t.direct += 1,
                Got::Error => t.errors += 1,
            }
        }
        t
    }
}

/// Hit ratio (%) of a stretch of results.
fn hit_pct(got: &[Got]) -> f64 {
    100.0 * got.iter().filter(|g| **g == Got::Hit).count() as f64 / got.len().max(1) as f64
}

/// Sends requests `range` of the trace through the portal with `clients`
/// threads, each taking the next request, paced to `rate` from the first;
/// what each got, in trace order, and the first error.
fn replay(
    portal: SocketAddr,
    trace: &Trace,
    range: Range<usize>,
    clients: usize,
    rate: f64,
) -> (Vec<Got>, Option<String>) {
    let next = AtomicUsize::new(range.start);
    let done = AtomicUsize::new(0);
    let got = Mutex::new(vec![Got::Error; range.len()]);
    let first_error = Mutex::new(None::<String>);
    let n = range.len();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= range.end {
                    break;
                }
                // Request i is due (i - start) / rate seconds after the first.
                let due = t0 + Duration::from_secs_f64((i - range.start) as f64 / rate);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let path = &trace.paths[trace.requests[i]];
                let (g, error) = match support::http::try_get(portal, path) {
                    Ok(r) if r.status == 200 => match r.x_cache() {
                        Some(v) if v.starts_with("HIT") => (Got::Hit, None),
                        Some(_) => (Got::Miss, None),
                        None => (Got::Direct, None),
                    },
                    Ok(r) => (Got::Error, Some(format!("{path}: status {}", r.status))),
                    Err(e) => (Got::Error, Some(format!("{path}: {e}"))),
                };
                got.lock().unwrap()[i - range.start] = g;
                if let Some(e) = error {
                    first_error.lock().unwrap().get_or_insert(e);
                }
                let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                if d % (n / 4).max(1) == 0 && d < n {
                    println!("    {d:>6} / {n} requests, {:.0} s", t0.elapsed().as_secs_f64());
                }
            });
        }
    });
    (got.into_inner().unwrap(), first_error.into_inner().unwrap())
}

/// For every Squid, which of `ids` it holds (ICP HIT or HIT_OBJ), asking
/// the Squids in parallel; also the number of queries without a reply.
fn scan(squids: &[SocketAddr], trace: &Trace, ids: &[usize]) -> (Vec<Vec<bool>>, usize) {
    let unanswered = AtomicUsize::new(0);
    let held = std::thread::scope(|s| {
        let handles: Vec<_> = squids
            .iter()
            .map(|&icp| {
                let unanswered = &unanswered;
                s.spawn(move || {
                    ids.iter()
                        .map(|&id| {
                            let key = trace.key(id);
                            // One retry: a lost datagram must not read as "not held".
                            let reply = icp_query_to(icp, &key, Duration::from_millis(500))
                                .or_else(|| icp_query_to(icp, &key, Duration::from_millis(500)));
                            if reply.is_none() {
                                unanswered.fetch_add(1, Ordering::SeqCst);
                            }
                            matches!(reply, Some(Opcode::Hit) | Some(Opcode::HitObj))
                        })
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("scan thread")).collect()
    });
    (held, unanswered.into_inner())
}

/// Of `held_by` (per Squid, per object), how many objects some Squid
/// holds and how many two or more hold.
fn copies(held_by: &[Vec<bool>], objects: usize) -> (Vec<usize>, usize, usize) {
    let held: Vec<usize> = held_by.iter().map(|h| h.iter().filter(|&&x| x).count()).collect();
    let count = |i: usize| held_by.iter().filter(|h| h[i]).count();
    let any = (0..objects).filter(|&i| count(i) >= 1).count();
    let twice = (0..objects).filter(|&i| count(i) >= 2).count();
    (held, any, twice)
}

struct Settings {
    clients: usize,
    rate: f64,
    store: Store,
    body: usize,
    remember: u64,
}

// ---------------------------------------------------------------- part 1

struct Outcome {
    kind: Kind,
    tally: Tally,
    first_error: Option<String>,
    requests: usize,
    origin_requests: usize,
    /// Objects each Squid holds at the end (ICP HIT).
    held: Vec<usize>,
    held_any: usize,
    held_twice: usize,
    /// ICP scan queries that got no reply.
    unanswered: usize,
    /// Lines in the module's log (at level 0: only problems, e.g. a cache
    /// that did not answer in time).
    icp_problems: usize,
    /// (ICP lookups, answers from memory), from the status page.
    memory: Option<(u64, u64)>,
    seconds: f64,
}

/// The share of lookups the memory answered, "-" without the module.
fn memory_share(m: Option<(u64, u64)>) -> String {
    match m {
        Some((l, r)) if l + r > 0 => format!("{:.1} %", 100.0 * r as f64 / (l + r) as f64),
        _ => "-".into(),
    }
}

impl Outcome {
    fn hit_pct(&self) -> f64 {
        100.0 * self.tally.hits as f64 / self.requests as f64
    }

    fn dup_pct(&self) -> f64 {
        dup_pct(self.held_twice, self.held_any)
    }
}

fn dup_pct(twice: usize, any: usize) -> f64 {
    if any == 0 {
        0.0
    } else {
        100.0 * twice as f64 / any as f64
    }
}

fn run(kind: Kind, index: usize, trace: &Trace, set: &Settings) -> Outcome {
    let net = NET_BASE + index as u8;
    let t0 = Instant::now();
    let (small, big) = (set.store.conf(1), set.store.conf(3));
    let caches = CacheOptions {
        squid_extra_conf: if kind == Kind::Ideal {
            [big, small.clone(), small]
        } else {
            [small.clone(), small.clone(), small]
        },
        origin_body_len: set.body,
    };
    println!("[{}] starting on 127.0.{net}.x …", kind.name());
    let mut cluster =
        Cluster::start_with_options(net, Mpm::Event, &caches, |dir| portal_conf(kind, net, dir, set.remember));
    // The ideal proxies to the first Squid only; the other two stay empty.
    let squids: Vec<SocketAddr> = if kind == Kind::Ideal {
        vec![cluster.squids()[0].icp_addr()]
    } else {
        cluster.squids().iter().map(|s| s.icp_addr()).collect()
    };
    let t_send = Instant::now();
    let (got, first_error) = replay(cluster.portal_addr(), trace, 0..trace.requests.len(), set.clients, set.rate);
    let send_secs = t_send.elapsed().as_secs_f64();
    let origin_requests = cluster.origin_total();
    std::thread::sleep(SETTLE);
    let ids = trace.distinct();
    let (held_by, unanswered) = scan(&squids, trace, &ids);
    let (held, held_any, held_twice) = copies(&held_by, ids.len());
    let icp_problems = cluster.httpd().module_log().lines().count();
    let memory = common::memory_counters(cluster.portal_addr(), STATUS_PATH);
    cluster.shutdown();
    let out = Outcome {
        kind,
        tally: Tally::of(&got),
        first_error,
        requests: trace.requests.len(),
        origin_requests,
        held,
        held_any,
        held_twice,
        unanswered,
        icp_problems,
        memory,
        seconds: t0.elapsed().as_secs_f64(),
    };
    println!(
        "[{}] done in {:.0} s ({:.0} requests/s): hit ratio {:.2} %, {} origin requests, held {:?} (any {}, ≥ 2: {}), \
         {} direct, {} errors, {} ICP problems logged, {} scan queries unanswered, {} of the lookups from memory",
        kind.name(),
        out.seconds,
        out.requests as f64 / send_secs,
        out.hit_pct(),
        out.origin_requests,
        out.held,
        out.held_any,
        out.held_twice,
        out.tally.direct,
        out.tally.errors,
        out.icp_problems,
        out.unanswered,
        memory_share(out.memory),
    );
    if let Some(e) = &out.first_error {
        println!("[{}] first error: {e}", kind.name());
    }
    out
}

// ---------------------------------------------------------------- part 2: membership changes

/// The four phases, by name.
const PHASES: [&str; 4] = ["3 caches", "4th joins", "one leaves", "it returns"];

struct ChurnOutcome {
    kind: Kind,
    /// What each request got, in trace order.
    got: Vec<Got>,
    /// Where each phase starts (and the end).
    bounds: [usize; 5],
    origin_requests: usize,
    held: Vec<usize>,
    held_any: usize,
    held_twice: usize,
    unanswered: usize,
    first_error: Option<String>,
    /// (ICP lookups, answers from memory) in the last phase.
    memory: Option<(u64, u64)>,
    /// How long each change took (the trace paused meanwhile).
    changes: Vec<f64>,
    seconds: f64,
}

impl ChurnOutcome {
    /// Phase `p`'s requests: during the change (its first quarter) and after.
    fn during(&self, p: usize) -> &[Got] {
        let (a, b) = (self.bounds[p], self.bounds[p + 1]);
        &self.got[a..a + (b - a) / 4]
    }

    fn after(&self, p: usize) -> &[Got] {
        let (a, b) = (self.bounds[p], self.bounds[p + 1]);
        &self.got[a + (b - a) / 4..b]
    }

    fn phase(&self, p: usize) -> &[Got] {
        &self.got[self.bounds[p]..self.bounds[p + 1]]
    }

    /// Hit ratio over the three change windows together.
    fn changes_pct(&self) -> f64 {
        let during: Vec<Got> = (1..4).flat_map(|p| self.during(p).iter().copied()).collect();
        hit_pct(&during)
    }

    fn whole_pct(&self) -> f64 {
        hit_pct(&self.got)
    }
}

fn run_churn(kind: Kind, index: usize, trace: &Trace, set: &Settings) -> ChurnOutcome {
    let net = CHURN_NET_BASE + index as u8;
    let t0 = Instant::now();
    let small = set.store.conf(1);
    let caches =
        CacheOptions { squid_extra_conf: [small.clone(), small.clone(), small.clone()], origin_body_len: set.body };
    println!("[membership, {}] starting on 127.0.{net}.x …", kind.name());
    let mut cluster =
        Cluster::start_with_options(net, Mpm::Event, &caches, |dir| portal_conf(kind, net, dir, set.remember));
    let [a, b, c] = cluster.hosts();
    let d = Ipv4Addr::new(127, 0, net, 5);
    let conf = cluster.httpd().options().portal_conf.clone();
    let portal = cluster.portal_addr();
    let n = trace.requests.len();
    let bounds = [0, n / 4, n / 2, 3 * n / 4, n];
    let mut got = Vec::with_capacity(n);
    let mut first_error = None;
    let mut changes = Vec::new();
    let mut phase = |p: usize, got: &mut Vec<Got>| {
        let (g, e) = replay(portal, trace, bounds[p]..bounds[p + 1], set.clients, set.rate);
        println!("[membership, {}] {}: hit ratio {:.2} %", kind.name(), PHASES[p], hit_pct(&g));
        got.extend(g);
        if first_error.is_none() {
            first_error = e;
        }
    };

    phase(0, &mut got);
    // A fourth cache joins: its host (origin and Squid) comes up, then the
    // portal is told.
    let t = Instant::now();
    let origin_d = Origin::start_with_body_len(SocketAddr::from((d, ORIGIN_PORT)), set.body);
    let mut squid_d = Squid::spawn_with(&cluster.dir().join("squid5"), d, ORIGIN_PORT, &small);
    squid_d.wait_ready();
    reconfigure(cluster.httpd_mut(), with_caches(&conf, a, &[a, b, c, d]));
    changes.push(t.elapsed().as_secs_f64());
    phase(1, &mut got);
    // One leaves: out of the configuration first, then its Squid stops.
    let t = Instant::now();
    reconfigure(cluster.httpd_mut(), with_caches(&conf, a, &[a, c, d]));
    cluster.cache_for_mut(b).stop();
    changes.push(t.elapsed().as_secs_f64());
    phase(2, &mut got);
    // It comes back: its Squid starts with the disk cache it had, then the
    // portal is told.
    let t = Instant::now();
    let before = rebuilds(cluster.cache_for(b));
    cluster.cache_for_mut(b).start_again();
    wait_rebuilt(cluster.cache_for(b), before);
    reconfigure(cluster.httpd_mut(), with_caches(&conf, a, &[a, b, c, d]));
    changes.push(t.elapsed().as_secs_f64());
    phase(3, &mut got);

    let origin_requests = cluster.origin_total() + origin_d.total();
    // Since the last graceful restart (the status page starts again with
    // each generation): phase 4.
    let memory = common::memory_counters(portal, STATUS_PATH);
    std::thread::sleep(SETTLE);
    let ids = trace.distinct();
    let icp: Vec<SocketAddr> =
        [a, b, c].iter().map(|h| cluster.cache_for(*h).icp_addr()).chain([squid_d.icp_addr()]).collect();
    let (held_by, unanswered) = scan(&icp, trace, &ids);
    let (held, held_any, held_twice) = copies(&held_by, ids.len());
    drop(squid_d);
    cluster.shutdown();
    drop(origin_d);
    let out = ChurnOutcome {
        kind,
        got,
        bounds,
        origin_requests,
        held,
        held_any,
        held_twice,
        unanswered,
        first_error,
        memory,
        changes,
        seconds: t0.elapsed().as_secs_f64(),
    };
    println!(
        "[membership, {}] done in {:.0} s: hit ratio {:.2} % ({:.2} % during the changes), {} origin requests, held \
         {:?} (any {}, ≥ 2: {}), {} errors, {} scan queries unanswered; changes took {}; {} of the lookups from \
         memory in the last phase",
        kind.name(),
        out.seconds,
        out.whole_pct(),
        out.changes_pct(),
        out.origin_requests,
        out.held,
        out.held_any,
        out.held_twice,
        Tally::of(&out.got).errors,
        out.unanswered,
        out.changes.iter().map(|s| format!("{s:.1} s")).collect::<Vec<_>>().join(", "),
        memory_share(out.memory),
    );
    if let Some(e) = &out.first_error {
        println!("[membership, {}] first error: {e}", kind.name());
    }
    out
}

// ---------------------------------------------------------------- tables

/// A plain text table: columns as wide as their widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap())
        .collect();
    let line = |cells: &[&str]| {
        cells.iter().enumerate().map(|(c, v)| format!("{v:<w$}", w = widths[c])).collect::<Vec<_>>().join(" | ")
    };
    println!("{}", line(header));
    println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-|-"));
    for r in rows {
        println!("{}", line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
}

fn pp(d: f64) -> String {
    format!("{d:+.2} pp")
}

fn report_steady(outcomes: &[Outcome], trace: &Trace, settings: &str) {
    let distinct = trace.distinct().len();
    // What the Squids actually held, for the stated sizes.
    let per_small: Vec<usize> =
        outcomes.iter().filter(|o| o.kind != Kind::Ideal).flat_map(|o| o.held.iter().copied()).collect();
    let ideal = outcomes.iter().find(|o| o.kind == Kind::Ideal);
    let find = |k: Kind| outcomes.iter().find(|o| o.kind == k);
    let sizes = format!(
        "each small Squid held {}–{} objects at the end ({:.0}–{:.0} % of the {distinct} requested){}",
        per_small.iter().min().copied().unwrap_or(0),
        per_small.iter().max().copied().unwrap_or(0),
        100.0 * per_small.iter().min().copied().unwrap_or(0) as f64 / distinct as f64,
        100.0 * per_small.iter().max().copied().unwrap_or(0) as f64 / distinct as f64,
        ideal.map_or(String::new(), |o| format!(
            ", the ideal's Squid {} ({:.0} %); one LRU of that size replaying the trace alone: {:.2} %",
            o.held_any,
            100.0 * o.held_any as f64 / distinct as f64,
            trace.lru_hit_pct(o.held_any)
        )),
    );
    println!("{settings}");
    println!("{sizes}");
    println!();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for o in outcomes {
        let delta = ideal.filter(|_| o.kind != Kind::Ideal).map(|i| o.hit_pct() - i.hit_pct());
        let vs_per_request = o.kind.per_request().and_then(find).map(|b| o.hit_pct() - b.hit_pct());
        let mut targets = Vec::new();
        if o.kind == Kind::IcpCarp {
            targets.push(delta.map_or("Δ ideal ?".to_string(), |d| format!("Δ ideal {}", mark(d >= -TARGET_DELTA_PP))));
        }
        if let Some(d) = vs_per_request {
            targets.push(format!("Δ per-request {}", mark(d.abs() <= TARGET_MEMORY_PP)));
        }
        if o.kind.dup_target() {
            targets.push(format!("dup {}", mark(o.dup_pct() < TARGET_DUP_PCT)));
        }
        rows.push(vec![
            o.kind.name().to_string(),
            format!("{:.2} %", o.hit_pct()),
            delta.map_or("-".to_string(), pp),
            vs_per_request.map_or("-".to_string(), pp),
            o.origin_requests.to_string(),
            format!("{:.2} % ({}/{})", o.dup_pct(), o.held_twice, o.held_any),
            memory_share(o.memory),
            targets.join("  "),
        ]);
    }
    print_table(
        &[
            "configuration",
            "hit ratio",
            "Δ vs ideal",
            "Δ vs per-request",
            "origin requests",
            "duplicated",
            "from memory",
            "targets",
        ],
        &rows,
    );
    println!();
    println!(
        "targets: ICP + CARP within {TARGET_DELTA_PP} pp of the ideal; with the memory within {TARGET_MEMORY_PP} pp \
         of the same rules looking up every request; duplication under {TARGET_DUP_PCT} % (seed, ICP + CARP, \
         bycache, ± memory)"
    );

    // Rows for bench/run.sh's summary.
    for o in outcomes {
        let per_request = o.kind.per_request().and_then(find);
        let (baseline, ratio, target, ok) = match (o.kind.per_request(), per_request) {
            (Some(_), Some(b)) => {
                let d = o.hit_pct() - b.hit_pct();
                (
                    format!("{} {:.2} %", b.kind.name(), b.hit_pct()),
                    pp(d),
                    format!("within ±{TARGET_MEMORY_PP} pp"),
                    Some(d.abs() <= TARGET_MEMORY_PP),
                )
            }
            (Some(k), None) => (format!("{} not run", k.name()), "-".into(), "-".into(), None),
            (None, _) => {
                let delta = ideal.filter(|_| o.kind != Kind::Ideal).map(|i| o.hit_pct() - i.hit_pct());
                let is_target = o.kind == Kind::IcpCarp;
                (
                    ideal.map_or("-".into(), |i| format!("ideal {:.2} %", i.hit_pct())),
                    delta.map_or("-".into(), pp),
                    if is_target { format!("≥ −{TARGET_DELTA_PP} pp") } else { "-".into() },
                    if is_target { delta.map(|d| d >= -TARGET_DELTA_PP) } else { None },
                )
            }
        };
        summary(Row {
            bench: "hit_ratio",
            case: &format!("{} hit ratio", o.kind.name()),
            measured: format!("{:.2} %", o.hit_pct()),
            baseline,
            ratio,
            target,
            ok,
        });
        if o.kind != Kind::Ideal {
            let is_target = o.kind.dup_target();
            summary(Row {
                bench: "hit_ratio",
                case: &format!("{} duplicated", o.kind.name()),
                measured: format!("{:.2} % ({}/{})", o.dup_pct(), o.held_twice, o.held_any),
                baseline: "-".into(),
                ratio: "-".into(),
                target: if is_target { format!("< {TARGET_DUP_PCT} %") } else { "-".into() },
                ok: is_target.then(|| o.dup_pct() < TARGET_DUP_PCT),
            });
        }
    }
    note(&format!("hit_ratio: {settings}; {sizes}"));
}

fn report_churn(outcomes: &[ChurnOutcome], settings: &str) {
    let find = |k: Kind| outcomes.iter().find(|o| o.kind == k);
    let phase_len = outcomes.first().map_or(0, |o| o.bounds[1] - o.bounds[0]);
    println!("{settings}");
    println!(
        "phases of {phase_len} requests; \"during\": a phase's first {} requests (right after the change), \
         \"after\": the rest",
        phase_len / 4
    );
    println!();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for o in outcomes {
        let mut row = vec![o.kind.name().to_string(), format!("{:.2} %", hit_pct(o.phase(0)))];
        for p in 1..4 {
            row.push(format!("{:.2} / {:.2} %", hit_pct(o.during(p)), hit_pct(o.after(p))));
        }
        row.push(format!("{:.2} %", o.changes_pct()));
        row.push(format!("{:.2} %", o.whole_pct()));
        row.push(o.origin_requests.to_string());
        row.push(format!("{:.2} % ({}/{})", dup_pct(o.held_twice, o.held_any), o.held_twice, o.held_any));
        row.push(memory_share(o.memory));
        rows.push(row);
    }
    print_table(
        &[
            "configuration",
            PHASES[0],
            "4th joins: during / after",
            "one leaves: during / after",
            "it returns: during / after",
            "the 3 changes",
            "whole run",
            "origin requests",
            "duplicated at the end",
            "from memory (phase 4)",
        ],
        &rows,
    );

    // What ICP earns over CARP alone, and what the memory keeps of it.
    let Some(carp) = find(Kind::CarpOnly) else {
        println!("(CARP only not run: no gains to show)");
        return;
    };
    println!();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for o in outcomes.iter().filter(|o| o.kind != Kind::CarpOnly) {
        let mut row = vec![format!("{} − CARP only", o.kind.name())];
        for p in 1..4 {
            row.push(format!(
                "{} / {}",
                pp(hit_pct(o.during(p)) - hit_pct(carp.during(p))),
                pp(hit_pct(o.after(p)) - hit_pct(carp.after(p)))
            ));
        }
        row.push(pp(o.changes_pct() - carp.changes_pct()));
        row.push(pp(o.whole_pct() - carp.whole_pct()));
        rows.push(row);
    }
    print_table(
        &[
            "what ICP earns",
            "4th joins: during / after",
            "one leaves: during / after",
            "it returns: during / after",
            "the 3 changes",
            "whole run",
        ],
        &rows,
    );
    for o in outcomes.iter().filter(|o| o.kind != Kind::CarpOnly) {
        let gain = (o.changes_pct() - carp.changes_pct(), o.whole_pct() - carp.whole_pct());
        let memory = o.kind.per_request().and_then(find);
        match memory {
            None => summary(Row {
                bench: "hit_ratio",
                case: &format!("membership: {} − CARP only", o.kind.name()),
                measured: format!("{} during the changes, {} whole run", pp(gain.0), pp(gain.1)),
                baseline: format!("CARP only {:.2} % / {:.2} %", carp.changes_pct(), carp.whole_pct()),
                ratio: pp(gain.0),
                target: "(reported)".into(),
                ok: None,
            }),
            Some(b) => {
                let d = (o.changes_pct() - b.changes_pct(), o.whole_pct() - b.whole_pct());
                let ok = d.0.abs() <= TARGET_MEMORY_PP && d.1.abs() <= TARGET_MEMORY_PP;
                println!(
                    "{}: earns {} during the changes ({} without the memory), {} over the whole run ({}): the memory \
                     keeps it within {TARGET_MEMORY_PP} pp {}",
                    o.kind.name(),
                    pp(gain.0),
                    pp(b.changes_pct() - carp.changes_pct()),
                    pp(gain.1),
                    pp(b.whole_pct() - carp.whole_pct()),
                    mark(ok)
                );
                summary(Row {
                    bench: "hit_ratio",
                    case: &format!("membership: {} vs {}", o.kind.name(), b.kind.name()),
                    measured: format!("{:.2} % during the changes, {:.2} % whole run", o.changes_pct(), o.whole_pct()),
                    baseline: format!("{} {:.2} % / {:.2} %", b.kind.name(), b.changes_pct(), b.whole_pct()),
                    ratio: format!("{} / {}", pp(d.0), pp(d.1)),
                    target: format!("within ±{TARGET_MEMORY_PP} pp (both)"),
                    ok: Some(ok),
                });
            }
        }
    }
    note(&format!("hit_ratio (membership): {settings}"));
}

// ---------------------------------------------------------------- main

fn main() {
    let urls = env_num("BENCH_HR_URLS", 3000) as usize;
    let requests = env_num("BENCH_HR_REQUESTS", 20_000) as usize;
    let clients = env_num("BENCH_HR_CLIENTS", 4).max(1) as usize;
    let rate = env_num("BENCH_HR_RATE", 600).max(1) as f64;
    let s = env_num("BENCH_HR_ZIPF_S_MILLI", 1000) as f64 / 1000.0;
    let body = env_num("BENCH_HR_BODY", 3072) as usize;
    let remember = env_num("BENCH_HR_REMEMBER", 5);
    let churn = env_num("BENCH_HR_CHURN", 1) != 0;
    let churn_requests = env_num("BENCH_HR_CHURN_REQUESTS", 24_000) as usize;
    let store = match std::env::var("BENCH_HR_STORE").as_deref().unwrap_or("ufs") {
        "ufs" => Store::Ufs { mb: env_num("BENCH_HR_CACHE_MB", 2), low: env_num("BENCH_HR_SWAP_LOW", 70) as u32 },
        "memory" => Store::Memory { kib: env_num("BENCH_HR_CACHE_KIB", 1800) },
        other => panic!("BENCH_HR_STORE={other:?}: ufs or memory"),
    };
    assert!(remember > 0, "BENCH_HR_REMEMBER: seconds, at least 1");
    assert!(churn_requests >= 16, "BENCH_HR_CHURN_REQUESTS: at least 16");
    let set = Settings { clients, rate, store, body, remember };
    let kinds: Vec<Kind> = match std::env::var("BENCH_HR_CONFIGS") {
        Ok(list) => Kind::parse_list(&list, &Kind::ALL, "BENCH_HR_CONFIGS"),
        Err(_) => Kind::ALL.to_vec(),
    };
    let churn_kinds: Vec<Kind> = match std::env::var("BENCH_HR_CHURN_CONFIGS") {
        Ok(list) if churn => Kind::parse_list(&list, &Kind::CHURN, "BENCH_HR_CHURN_CONFIGS"),
        _ if churn => Kind::CHURN.to_vec(),
        _ => Vec::new(),
    };

    let trace = Trace::zipf(urls, requests, s, SEED);
    let distinct = trace.distinct().len();
    let top = {
        let mut counts = vec![0usize; urls];
        for &id in &trace.requests {
            counts[id] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        100.0 * counts[..urls / 100].iter().sum::<usize>() as f64 / requests as f64
    };
    let settings = format!(
        "{urls} URLs, Zipf s = {s}, {requests} requests ({distinct} distinct URLs requested: at most {:.1} % can hit; \
         top 1 % of URLs = {top:.1} % of requests), {clients} concurrent clients paced to {rate} requests/s, \
         seed {SEED:#x}; bodies {body} B; {}; the memory: ICPQueryRemember {remember}",
        100.0 * (requests - distinct) as f64 / requests as f64,
        store.describe(),
    );
    println!("hit ratio: {settings}");
    println!("configurations: {}", kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "));
    if churn {
        println!(
            "membership changes: {churn_requests} requests; {}",
            churn_kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
        );
    }

    let started = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for &kind in &kinds {
        let index = Kind::ALL.iter().position(|&k| k == kind).unwrap();
        outcomes.push(run(kind, index, &trace, &set));
    }
    outcomes.sort_by_key(|o| o.kind.order());
    let steady_secs = started.elapsed().as_secs_f64();

    let churn_trace = Trace::zipf(urls, churn_requests, s, CHURN_SEED);
    let mut churned: Vec<ChurnOutcome> = Vec::new();
    for &kind in &churn_kinds {
        let index = Kind::CHURN.iter().position(|&k| k == kind).unwrap();
        churned.push(run_churn(kind, index, &churn_trace, &set));
    }
    churned.sort_by_key(|o| Kind::CHURN.iter().position(|&k| k == o.kind));

    if !outcomes.is_empty() {
        println!();
        println!("==================== hit ratio ({steady_secs:.0} s) ====================");
        report_steady(&outcomes, &trace, &settings);
    }
    if !churned.is_empty() {
        println!();
        println!(
            "==================== hit ratio while the membership changes ({:.0} s) ====================",
            started.elapsed().as_secs_f64() - steady_secs
        );
        let churn_settings = format!(
            "{urls} URLs, Zipf s = {s}, {churn_requests} requests (seed {CHURN_SEED:#x}) in 4 phases: 3 caches; a \
             4th (127.0.N.5) joins; 127.0.N.3 leaves (configuration, graceful restart, then its Squid stops); it \
             comes back (Squid started with its disk cache, then configuration, graceful restart); {clients} clients \
             paced to {rate} requests/s, paused during each change; {}; ICPQueryRemember {remember}",
            store.describe()
        );
        report_churn(&churned, &churn_settings);
    }

    let mut failed: Vec<&str> =
        outcomes.iter().filter(|o| o.tally.errors * 100 > o.requests).map(|o| o.kind.name()).collect();
    failed.extend(churned.iter().filter(|o| Tally::of(&o.got).errors * 100 > o.got.len()).map(|o| o.kind.name()));
    if !failed.is_empty() {
        eprintln!("more than 1 % of the requests failed in: {}", failed.join(", "));
        std::process::exit(1);
    }
}
