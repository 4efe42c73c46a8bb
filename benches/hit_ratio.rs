//! Cluster hit ratio of the portal's routing rules with three real Squids
//! whose caches cannot hold the whole working set, against one Squid with
//! the three caches' size together (the ideal: nothing stored twice, no
//! routing).
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
//! Configurations, each on a fresh cluster (network 100 + its index):
//!   seed         conf/httpd-portal.conf: ICP HIT, else random running cache (rnd:)
//!   ICP + CARP   conf/httpd-portal-carp.conf: ICP HIT, else the CARP owner
//!   CARP only    the CARP configuration without the ICP rule
//!   random only  the seed without the ICP rule (rnd: + cacheisrunning)
//!   ideal        one Squid with 3x the cache size, the portal proxies everything to it
//! Every portal runs its configuration's rules verbatim with production
//! logging (LogLevel warn, ICPQueryLogLevel 0) instead of the shipped
//! trace5/level 3, which only slows the run down.
//!
//! Measured: hit ratio (responses with `X-Cache: HIT…` / requests), requests
//! the origins answered, and duplication: at the end every Squid is asked over
//! ICP for every distinct URL of the trace; duplicated = URLs held by ≥ 2
//! Squids / URLs held by any.
//!
//! Targets (ICP + CARP): hit ratio within 2 percentage points of the ideal,
//! duplication under 1 %.
//!
//! `cargo bench --bench hit_ratio` (after `cargo build --release`);
//! BENCH_HR_CONFIGS=seed,icp-carp,carp,random,ideal picks configurations.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{env_num, mark, note, summary, Row};
use support::httpd::{log_dir_for, module_path, proxies_path_for, seed_portal_conf, substitute_hosts};
use support::squid::{icp_query_to, memory_conf, ufs_conf};
use support::{read_conf_file, CacheOptions, Cluster, Mpm, Opcode};

/// Networks 100..=104, one per configuration.
const NET_BASE: u8 = 100;
const SEED: u64 = 0x1c9_2186_5eed;
/// Largest object kept in memory (KiB): far above the bodies used here.
const MAX_OBJECT_KIB: u64 = 64;
/// Wait after the last request before asking the Squids what they hold, so
/// that the ufs stores' once-a-second trim has run.
const SETTLE: Duration = Duration::from_millis(2500);

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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Seed,
    IcpCarp,
    CarpOnly,
    RandomOnly,
    Ideal,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Ideal, Kind::IcpCarp, Kind::Seed, Kind::CarpOnly, Kind::RandomOnly];

    fn name(self) -> &'static str {
        match self {
            Kind::Seed => "seed (ICP + random)",
            Kind::IcpCarp => "ICP + CARP",
            Kind::CarpOnly => "CARP only",
            Kind::RandomOnly => "random only",
            Kind::Ideal => "ideal (1 Squid, 3x size)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::Seed => "seed",
            Kind::IcpCarp => "icp-carp",
            Kind::CarpOnly => "carp",
            Kind::RandomOnly => "random",
            Kind::Ideal => "ideal",
        }
    }

    /// Where it sits in the printed table.
    fn order(self) -> usize {
        match self {
            Kind::Seed => 0,
            Kind::IcpCarp => 1,
            Kind::CarpOnly => 2,
            Kind::RandomOnly => 3,
            Kind::Ideal => 4,
        }
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

fn portal_conf(kind: Kind, net: u8, dir: &Path) -> String {
    let seed = || seed_portal_conf(net, &module_path(), &log_dir_for(dir), &proxies_path_for(dir));
    let conf = match kind {
        Kind::Seed => seed(),
        Kind::IcpCarp => carp_conf(net, dir),
        Kind::CarpOnly => without_icp_rule(&carp_conf(net, dir)),
        Kind::RandomOnly => without_icp_rule(&seed()),
        Kind::Ideal => format!(
            "# benches/hit_ratio.rs: the ideal, one Squid for everything\n\
             RewriteEngine On\n\
             RewriteRule ^(/wsgi/.+)$ http://{}:3128$1 [proxy,last]\n",
            support::host_ips(net)[0]
        ),
    };
    production_logging(&conf)
}

// ---------------------------------------------------------------- one run

#[derive(Default)]
struct Tally {
    hits: usize,
    misses: usize,
    /// 200 without X-Cache: the balancer sent it straight to an origin.
    direct: usize,
    errors: usize,
    first_error: Option<String>,
}

struct Outcome {
    kind: Kind,
    tally: Tally,
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
    seconds: f64,
}

impl Outcome {
    fn hit_pct(&self) -> f64 {
        100.0 * self.tally.hits as f64 / self.requests as f64
    }

    fn dup_pct(&self) -> f64 {
        if self.held_any == 0 {
            0.0
        } else {
            100.0 * self.held_twice as f64 / self.held_any as f64
        }
    }
}

/// Sends the trace through the portal with `clients` threads, each taking
/// the next request of the trace.
fn replay(portal: SocketAddr, trace: &Trace, clients: usize, rate: f64) -> Tally {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let total = Mutex::new(Tally::default());
    let n = trace.requests.len();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let mut t = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    // Request i is due at i / rate seconds.
                    let due = t0 + Duration::from_secs_f64(i as f64 / rate);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let path = &trace.paths[trace.requests[i]];
                    match support::http::try_get(portal, path) {
                        Ok(r) if r.status == 200 => match r.x_cache() {
                            Some(v) if v.starts_with("HIT") => t.hits += 1,
                            Some(_) => t.misses += 1,
                            None => t.direct += 1,
                        },
                        Ok(r) => {
                            t.errors += 1;
                            t.first_error.get_or_insert_with(|| format!("{path}: status {}", r.status));
                        }
                        Err(e) => {
                            t.errors += 1;
                            t.first_error.get_or_insert_with(|| format!("{path}: {e}"));
                        }
                    }
                    let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if d % (n / 4).max(1) == 0 && d < n {
                        println!("    {d:>6} / {n} requests, {:.0} s", t0.elapsed().as_secs_f64());
                    }
                }
                let mut all = total.lock().unwrap();
                all.hits += t.hits;
                all.misses += t.misses;
                all.direct += t.direct;
                all.errors += t.errors;
                if all.first_error.is_none() {
                    all.first_error = t.first_error;
                }
            });
        }
    });
    total.into_inner().unwrap()
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

struct Settings {
    clients: usize,
    rate: f64,
    store: Store,
    body: usize,
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
    let mut cluster = Cluster::start_with_options(net, Mpm::Event, &caches, |dir| portal_conf(kind, net, dir));
    // The ideal proxies to the first Squid only; the other two stay empty.
    let squids: Vec<SocketAddr> = if kind == Kind::Ideal {
        vec![cluster.squids()[0].icp_addr()]
    } else {
        cluster.squids().iter().map(|s| s.icp_addr()).collect()
    };
    let t_send = Instant::now();
    let tally = replay(cluster.portal_addr(), trace, set.clients, set.rate);
    let send_secs = t_send.elapsed().as_secs_f64();
    let origin_requests = cluster.origin_total();
    std::thread::sleep(SETTLE);
    let ids = trace.distinct();
    let (held_by, unanswered) = scan(&squids, trace, &ids);
    let held: Vec<usize> = held_by.iter().map(|h| h.iter().filter(|&&x| x).count()).collect();
    let copies = |i: usize| held_by.iter().filter(|h| h[i]).count();
    let held_any = (0..ids.len()).filter(|&i| copies(i) >= 1).count();
    let held_twice = (0..ids.len()).filter(|&i| copies(i) >= 2).count();
    let icp_problems = cluster.httpd().module_log().lines().count();
    cluster.shutdown();
    let out = Outcome {
        kind,
        tally,
        requests: trace.requests.len(),
        origin_requests,
        held,
        held_any,
        held_twice,
        unanswered,
        icp_problems,
        seconds: t0.elapsed().as_secs_f64(),
    };
    println!(
        "[{}] done in {:.0} s ({:.0} requests/s): hit ratio {:.2} %, {} origin requests, held {:?} (any {}, ≥ 2: {}), \
         {} direct, {} errors, {} ICP problems logged, {} scan queries unanswered",
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
    );
    if let Some(e) = &out.tally.first_error {
        println!("[{}] first error: {e}", kind.name());
    }
    out
}

// ---------------------------------------------------------------- main

fn main() {
    let urls = env_num("BENCH_HR_URLS", 3000) as usize;
    let requests = env_num("BENCH_HR_REQUESTS", 20_000) as usize;
    let clients = env_num("BENCH_HR_CLIENTS", 4).max(1) as usize;
    let rate = env_num("BENCH_HR_RATE", 600).max(1) as f64;
    let s = env_num("BENCH_HR_ZIPF_S_MILLI", 1000) as f64 / 1000.0;
    let body = env_num("BENCH_HR_BODY", 3072) as usize;
    let store = match std::env::var("BENCH_HR_STORE").as_deref().unwrap_or("ufs") {
        "ufs" => Store::Ufs { mb: env_num("BENCH_HR_CACHE_MB", 2), low: env_num("BENCH_HR_SWAP_LOW", 70) as u32 },
        "memory" => Store::Memory { kib: env_num("BENCH_HR_CACHE_KIB", 1800) },
        other => panic!("BENCH_HR_STORE={other:?}: ufs or memory"),
    };
    let set = Settings { clients, rate, store, body };
    let kinds: Vec<Kind> = match std::env::var("BENCH_HR_CONFIGS") {
        Ok(list) => {
            list.split(',')
                .map(|k| {
                    Kind::ALL.into_iter().find(|c| c.key() == k.trim()).unwrap_or_else(|| {
                        panic!("BENCH_HR_CONFIGS: unknown {k:?} (seed, icp-carp, carp, random, ideal)")
                    })
                })
                .collect()
        }
        Err(_) => Kind::ALL.to_vec(),
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
         seed {SEED:#x}; bodies {body} B; {}",
        100.0 * (requests - distinct) as f64 / requests as f64,
        store.describe(),
    );
    println!("hit ratio: {settings}");
    println!("configurations: {}", kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "));

    let started = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for &kind in &kinds {
        let index = Kind::ALL.iter().position(|&k| k == kind).unwrap();
        outcomes.push(run(kind, index, &trace, &set));
    }
    outcomes.sort_by_key(|o| o.kind.order());

    // What the Squids actually held, for the stated sizes.
    let per_small: Vec<usize> =
        outcomes.iter().filter(|o| o.kind != Kind::Ideal).flat_map(|o| o.held.iter().copied()).collect();
    let ideal = outcomes.iter().find(|o| o.kind == Kind::Ideal);
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

    println!();
    println!("==================== hit ratio ({:.0} s) ====================", started.elapsed().as_secs_f64());
    println!("{settings}");
    println!("{sizes}");
    println!();
    let header = ["configuration", "hit ratio", "Δ vs ideal", "origin requests", "duplicated", "targets"];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for o in &outcomes {
        let delta = ideal.filter(|_| o.kind != Kind::Ideal).map(|i| o.hit_pct() - i.hit_pct());
        let targets = if o.kind == Kind::IcpCarp {
            let d = delta.map_or("Δ ?".to_string(), |d| format!("Δ {}", mark(d >= -TARGET_DELTA_PP)));
            format!("{d}  dup {}", mark(o.dup_pct() < TARGET_DUP_PCT))
        } else {
            String::new()
        };
        rows.push([
            o.kind.name().to_string(),
            format!("{:.2} %", o.hit_pct()),
            delta.map_or("-".to_string(), |d| format!("{d:+.2} pp")),
            o.origin_requests.to_string(),
            format!("{:.2} % ({}/{})", o.dup_pct(), o.held_twice, o.held_any),
            targets,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap())
        .collect();
    let line = |cells: &[&str]| {
        cells.iter().enumerate().map(|(c, v)| format!("{v:<w$}", w = widths[c])).collect::<Vec<_>>().join(" | ")
    };
    println!("{}", line(&header));
    println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-|-"));
    for r in &rows {
        println!("{}", line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    println!();
    println!("targets: ICP + CARP within {TARGET_DELTA_PP} pp of the ideal; duplication under {TARGET_DUP_PCT} %");

    // Rows for bench/run.sh's summary.
    for o in &outcomes {
        let delta = ideal.filter(|_| o.kind != Kind::Ideal).map(|i| o.hit_pct() - i.hit_pct());
        let is_target = o.kind == Kind::IcpCarp;
        summary(Row {
            bench: "hit_ratio",
            case: &format!("{} hit ratio", o.kind.name()),
            measured: format!("{:.2} %", o.hit_pct()),
            baseline: ideal.map_or("-".into(), |i| format!("ideal {:.2} %", i.hit_pct())),
            ratio: delta.map_or("-".into(), |d| format!("{d:+.2} pp")),
            target: if is_target { format!("≥ −{TARGET_DELTA_PP} pp") } else { "-".into() },
            ok: if is_target { delta.map(|d| d >= -TARGET_DELTA_PP) } else { None },
        });
        if o.kind != Kind::Ideal {
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

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.tally.errors * 100 > o.requests).collect();
    if !failed.is_empty() {
        eprintln!(
            "more than 1 % of the requests failed in: {}",
            failed.iter().map(|o| o.kind.name()).collect::<Vec<_>>().join(", ")
        );
        std::process::exit(1);
    }
}
