//! Dead and hung caches: request latency through the portal while caches
//! fail, against the same portal with every cache live, and how soon a hung
//! cache that recovers is used again; in one run, for the seed's rules and
//! for lbmethod=bycache.
//!
//! Two portals, each on a cluster of its own, one after the other:
//!   seed     conf/httpd-portal.conf verbatim (127.0.62.x);
//!   bycache  conf/httpd-portal-balancer.conf verbatim (127.0.66.x);
//! both with their shipped ICPQueryTimeout 50000, logging (ICPQueryLogLevel
//! 3) and ICPQueryDeadTime at its default 10 s unless BENCH_DEAD_TIME=<s>
//! sets it. One client sends sequential requests (one connection each) for
//! objects cached at the first Squid ("live"), which stays up, so every
//! request is an ICP HIT there. Phases, cumulative:
//!   1. all three Squids live;
//!   2. the second Squid stopped: its ICP port answers with ICMP port
//!      unreachable, measured from the very first request after the stop;
//!   3. the third Squid hung (SIGSTOP: its socket still takes datagrams, it
//!      answers none; the live Squid answers every lookup): the first 19
//!      requests reported (those that waited for it until it was declared
//!      dead: the module gives up on a cache after 3 lookups in a row that
//!      others answered), the median from the 20th request on measured;
//!   4. the hung Squid recovers (SIGCONT: the same process, its cache
//!      intact). From then on a request every 10 ms for an object only that
//!      Squid holds (each object once, so a request routed elsewhere copies
//!      nothing that is asked for again), until one is answered "HIT from" it.
//!
//! Measured from the responses (latency, X-Cache) and from the module's log
//! (`cache … is dead`, `cache … is alive again`, `dropped a datagram`, with
//! their microsecond timestamps against the moment of the SIGSTOP / SIGCONT).
//!
//! Targets: phases 2 and 3 (from the 20th request) medians ≤ 1.5 × phase 1's
//! median; phase 2's very first request ≤ 1.5 × the first request after an
//! equal pause with every cache live (a pause alone slows the next request
//! down); the recovered cache used again (first HIT from it) ≤ 1 s after it
//! recovered.
//!
//! `cargo bench --bench dead_caches`; BENCH_DEAD_CONFIGS=seed,bycache picks
//! the portals.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{fmt_dur, mark, median, percentile, summary, warm, Row};
use support::httpd::{log_dir_for, module_path, proxies_path_for, seed_portal_conf};
use support::{http, Mpm};

const OBJECTS: usize = 50;
const PHASE_REQUESTS: usize = 300;
/// Requests 1..HUNG_SKIP-1 after the hang are reported, not judged.
const HUNG_SKIP: usize = 20;
/// Objects only the hung Squid holds, one per request after it recovers.
const RECOVERY_OBJECTS: usize = 500;
const RECOVERY_EVERY: Duration = Duration::from_millis(10);
const RECOVERY_TARGET: Duration = Duration::from_secs(1);
/// Stopping a Squid takes about this long; the controls pause as long.
const PAUSE: Duration = Duration::from_secs(3);
const TIMEOUT_US: u64 = 50_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Portal {
    Seed,
    Bycache,
}

impl Portal {
    const ALL: [Portal; 2] = [Portal::Seed, Portal::Bycache];

    fn name(self) -> &'static str {
        match self {
            Portal::Seed => "seed",
            Portal::Bycache => "bycache",
        }
    }

    fn net(self) -> u8 {
        match self {
            Portal::Seed => 62,
            Portal::Bycache => 66,
        }
    }

    fn file(self) -> &'static str {
        match self {
            Portal::Seed => "conf/httpd-portal.conf",
            Portal::Bycache => "conf/httpd-portal-balancer.conf",
        }
    }

    fn conf(self, dir: &std::path::Path, dead_time: u64) -> String {
        let net = self.net();
        let mut conf = match self {
            Portal::Seed => seed_portal_conf(net, &module_path(), &log_dir_for(dir), &proxies_path_for(dir)),
            Portal::Bycache => common::balancer_portal_conf(net, &module_path(), &log_dir_for(dir)),
        };
        assert!(conf.contains(&format!("ICPQueryTimeout                 {TIMEOUT_US}")), "{}: timeout", self.file());
        if dead_time != 0 {
            conf.push_str(&format!("\n# added by benches/dead_caches.rs\nICPQueryDeadTime {dead_time}\n"));
        }
        conf
    }
}

fn get_timed(portal: SocketAddr, path: &str) -> (Duration, http::Response) {
    let start = Instant::now();
    let r = http::get(portal, path);
    let elapsed = start.elapsed();
    assert_eq!(r.status, 200, "{path}: {r:?}");
    (elapsed, r)
}

/// A Squid stopped with SIGSTOP: its sockets still take datagrams, nothing
/// answers. Continued on `thaw` or drop.
struct Frozen {
    pid: i32,
    frozen: bool,
}

impl Frozen {
    fn freeze(pid: i32) -> Frozen {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP {pid}");
        Frozen { pid, frozen: true }
    }

    fn thaw(&mut self) {
        if self.frozen {
            // SAFETY: as above.
            unsafe { libc::kill(self.pid, libc::SIGCONT) };
            self.frozen = false;
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.thaw();
    }
}

struct Phase {
    samples: Vec<Duration>,
    first: Duration,
}

impl Phase {
    /// An empty phase reads as one sample of 999 s, which fails its target
    /// visibly.
    fn new(mut samples: Vec<Duration>) -> Phase {
        if samples.is_empty() {
            samples.push(Duration::from_secs(999));
        }
        Phase { first: samples[0], samples }
    }
    fn p50(&mut self) -> Duration {
        median(&mut self.samples)
    }
    fn p90(&mut self) -> Duration {
        percentile(&mut self.samples, 90.0)
    }
    fn max(&self) -> Duration {
        self.samples.iter().copied().max().unwrap_or_default()
    }
}

/// "2026-12-02T05:46:01.123456Z", the module log's timestamp, as a time.
fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 27 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' || b[26] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_micros(us as u64))
}

/// The first line of the module's log containing `needle`, written at or
/// after `since`: its time after `since`.
fn logged_after(log: &str, needle: &str, since: SystemTime) -> Option<Duration> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| parse_timestamp(l.split_whitespace().next()?))
        .find_map(|t| t.duration_since(since).ok())
}

/// How many lines of the module's log containing `needle` were written at
/// or after `since`.
fn count_after(log: &str, needle: &str, since: SystemTime) -> usize {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| parse_timestamp(l.split_whitespace().next()?))
        .filter(|t| *t >= since)
        .count()
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or("never".into(), fmt_dur)
}

fn measure(portal_kind: Portal, dead_time: u64) {
    let name = portal_kind.name();
    let net = portal_kind.net();
    let dead_time_note = if dead_time == 0 {
        "ICPQueryDeadTime default (10 s)".to_string()
    } else {
        format!("ICPQueryDeadTime {dead_time}")
    };
    println!(
        "== dead caches, {name}: {} verbatim on 127.0.{net}.x, ICPQueryTimeout {TIMEOUT_US}, {dead_time_note}; \
         sequential requests, one connection each",
        portal_kind.file()
    );

    let mut cluster = support::Cluster::start_with(net, Mpm::Event, |dir| portal_kind.conf(dir, dead_time));
    let [live, stopped, hung] = cluster.hosts();
    let portal = cluster.portal_addr();
    let paths: Vec<String> = (0..OBJECTS).map(|i| format!("/wsgi/dead{i}?v={i}")).collect();
    for p in &paths {
        warm(cluster.cache_for(live).http_addr(), p);
    }
    let back: Vec<String> = (0..RECOVERY_OBJECTS).map(|i| format!("/wsgi/back{i}?v={i}")).collect();
    for p in &back {
        warm(cluster.cache_for(hung).http_addr(), p);
    }
    let live_name = cluster.cache_for(live).name();
    let hung_name = cluster.cache_for(hung).name();
    let check = http::get(portal, &paths[0]);
    assert_eq!(check.x_cache(), Some(format!("HIT from {live_name}").as_str()), "routing is not by ICP HIT: {check:?}");
    let mut k = 0usize;
    let mut next = || {
        k += 1;
        paths[k % paths.len()].clone()
    };
    let timed = |path: String| get_timed(portal, &path).0;
    for _ in 0..50 {
        timed(next());
    }

    // 1. all live
    let mut all_live = Phase::new((0..PHASE_REQUESTS).map(|_| timed(next())).collect());

    // The first request after a pause is slower on its own (idle CPUs, cold
    // caches): its control is the first request after a pause as long as
    // stopping a Squid takes, with every cache live.
    let mut idle_firsts: Vec<Duration> = (0..3)
        .map(|_| {
            std::thread::sleep(PAUSE);
            timed(next())
        })
        .collect();
    let idle_first = median(&mut idle_firsts);

    // 2. one stopped: from the very first request after it exited (at least
    // PAUSE after the last request, like the controls).
    let stop_started = Instant::now();
    cluster.cache_for_mut(stopped).stop();
    std::thread::sleep(PAUSE.saturating_sub(stop_started.elapsed()));
    let mut one_stopped = Phase::new((0..PHASE_REQUESTS).map(|_| timed(next())).collect());

    // 3. one hung: SIGSTOP; the live Squid answers every lookup.
    let hung_pid = cluster.cache_for(hung).pid().expect("the Squid to hang runs");
    let hung_at = SystemTime::now();
    let mut frozen = Frozen::freeze(hung_pid);
    let first_ones: Vec<Duration> = (1..HUNG_SKIP).map(|_| timed(next())).collect();
    let waited = first_ones.iter().filter(|d| d.as_micros() as u64 >= TIMEOUT_US * 9 / 10).count();
    let mut hung_early = Phase::new(first_ones);
    let mut hung_from_20th = Phase::new((0..PHASE_REQUESTS).map(|_| timed(next())).collect());

    // 4. it recovers: SIGCONT, then an object only it holds every 10 ms.
    let recovered_at = SystemTime::now();
    let t_rec = Instant::now();
    frozen.thaw();
    let mut used_again: Option<(Duration, usize)> = None;
    let mut elsewhere = 0usize;
    for (i, p) in back.iter().enumerate() {
        let due = t_rec + RECOVERY_EVERY * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let (_, r) = get_timed(portal, p);
        if r.x_cache() == Some(format!("HIT from {hung_name}").as_str()) {
            used_again = Some((t_rec.elapsed(), i + 1));
            break;
        }
        elsewhere += 1;
    }
    // Let the log catch up.
    std::thread::sleep(Duration::from_millis(200));
    let log = cluster.httpd().module_log();
    let hung_addr = cluster.cache_for(hung).icp_addr();
    let dead_after = logged_after(&log, &format!("cache {hung_addr} is dead"), hung_at);
    let alive_after = logged_after(&log, &format!("cache {hung_addr} is alive again"), recovered_at);
    let late_dropped = count_after(&log, &format!("dropped a datagram from {hung_addr}"), recovered_at);
    let stopped_addr = cluster.cache_for(stopped).icp_addr();
    let stopped_dead = log.contains(&format!("cache {stopped_addr} is dead"));

    // BENCH_DEAD_LOG=<dir>: keep the module's log, for what declared the
    // hung cache dead and what revived it.
    if let Some(dir) = std::env::var_os("BENCH_DEAD_LOG") {
        let to = std::path::Path::new(&dir).join(format!("dead_caches-{name}-icpquery.log"));
        std::fs::write(&to, &log).unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
        let at = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        println!(
            "{name}: module log kept in {} (SIGSTOP at {:.6}, SIGCONT at {:.6} s since the epoch)",
            to.display(),
            at(hung_at),
            at(recovered_at)
        );
    }

    let base = all_live.p50();
    let ratio = |d: Duration| d.as_secs_f64() / base.as_secs_f64();
    let line = |label: &str, p: &mut Phase| {
        println!(
            "{name}: {label:<34} n={:<4} p50 {:>9}  p90 {:>9}  max {:>9}  first {:>9}  p50/all-live {:.2}",
            p.samples.len(),
            fmt_dur(p.p50()),
            fmt_dur(p.p90()),
            fmt_dur(p.max()),
            fmt_dur(p.first),
            ratio(p.p50())
        )
    };
    line("all live", &mut all_live);
    line("one stopped (ICMP)", &mut one_stopped);
    line(&format!("+ one hung, requests 1–{}", HUNG_SKIP - 1), &mut hung_early);
    line(&format!("+ one hung, from the {HUNG_SKIP}th request"), &mut hung_from_20th);
    println!(
        "{name}: first request after a {PAUSE:?} pause, all live (control): {} (3 pauses: {})",
        fmt_dur(idle_first),
        idle_firsts.iter().map(|d| fmt_dur(*d)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "{name}: hung cache: {waited} of the first {} requests waited the {} ms timeout; module log: dead {} after \
         it hung; stopped cache declared dead: {}",
        HUNG_SKIP - 1,
        TIMEOUT_US / 1000,
        fmt_opt(dead_after),
        if stopped_dead { "yes" } else { "NO" }
    );
    println!(
        "{name}: after it recovered: module log \"alive again\" {}; first HIT from {hung_name} {} ({} requests \
         before it went elsewhere, one every {} ms); {late_dropped} late replies to the queries it had taken while \
         hung dropped",
        fmt_opt(alive_after),
        used_again.map_or("never".into(), |(d, _)| fmt_dur(d)),
        elsewhere,
        RECOVERY_EVERY.as_millis()
    );

    let bound = base.mul_f64(1.5);
    summary(Row {
        bench: "dead_caches",
        case: &format!("{name}: all live"),
        measured: format!("p50 {}", fmt_dur(base)),
        baseline: "—".into(),
        ratio: "1.00".into(),
        target: "(baseline)".into(),
        ok: None,
    });
    let first_bound = idle_first.mul_f64(1.5);
    let stopped_ok = one_stopped.p50() <= bound && one_stopped.first <= first_bound;
    summary(Row {
        bench: "dead_caches",
        case: &format!("{name}: 1 stopped (ICMP), from 1st request"),
        measured: format!("p50 {}, 1st {}", fmt_dur(one_stopped.p50()), fmt_dur(one_stopped.first)),
        baseline: format!("all-live p50 {}, 1st-after-pause {}", fmt_dur(base), fmt_dur(idle_first)),
        ratio: format!(
            "{:.2} (1st {:.2})",
            ratio(one_stopped.p50()),
            one_stopped.first.as_secs_f64() / idle_first.as_secs_f64()
        ),
        target: "≤ 1.5 (p50 and 1st)".into(),
        ok: Some(stopped_ok),
    });
    summary(Row {
        bench: "dead_caches",
        case: &format!("{name}: +1 hung, requests 1–{}", HUNG_SKIP - 1),
        measured: format!(
            "p50 {}, {waited} waited the timeout, dead {} after",
            fmt_dur(hung_early.p50()),
            fmt_opt(dead_after)
        ),
        baseline: format!("all-live p50 {}", fmt_dur(base)),
        ratio: format!("{:.2}", ratio(hung_early.p50())),
        target: "(reported)".into(),
        ok: None,
    });
    summary(Row {
        bench: "dead_caches",
        case: &format!("{name}: +1 hung, from the {HUNG_SKIP}th request"),
        measured: format!("p50 {}", fmt_dur(hung_from_20th.p50())),
        baseline: format!("all-live p50 {}", fmt_dur(base)),
        ratio: format!("{:.2}", ratio(hung_from_20th.p50())),
        target: "≤ 1.5".into(),
        ok: Some(hung_from_20th.p50() <= bound),
    });
    let used = used_again.map(|(d, _)| d);
    summary(Row {
        bench: "dead_caches",
        case: &format!("{name}: hung cache recovers, used again"),
        measured: format!("1st HIT from it {}, log \"alive again\" {}", fmt_opt(used), fmt_opt(alive_after)),
        baseline: "the SIGCONT".into(),
        ratio: "-".into(),
        target: format!("≤ {} (both)", fmt_dur(RECOVERY_TARGET)),
        ok: Some(used.is_some_and(|d| d <= RECOVERY_TARGET) && alive_after.is_some_and(|d| d <= RECOVERY_TARGET)),
    });
    println!(
        "{name}: hung from the {HUNG_SKIP}th request {:.2} × all-live {}; used again after {} {}",
        ratio(hung_from_20th.p50()),
        mark(hung_from_20th.p50() <= bound),
        fmt_opt(used),
        mark(used.is_some_and(|d| d <= RECOVERY_TARGET))
    );
    drop(frozen);
    drop(cluster);
}

fn main() {
    let dead_time = common::env_num("BENCH_DEAD_TIME", 0);
    let portals: Vec<Portal> = match std::env::var("BENCH_DEAD_CONFIGS") {
        Err(_) => Portal::ALL.to_vec(),
        Ok(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|n| {
                Portal::ALL
                    .into_iter()
                    .find(|p| p.name() == n)
                    .unwrap_or_else(|| panic!("BENCH_DEAD_CONFIGS: unknown {n:?} (seed, bycache)"))
            })
            .collect(),
    };
    for p in &portals {
        measure(*p, dead_time);
    }
    common::note(&format!(
        "dead_caches: {}; ICPQueryTimeout {TIMEOUT_US}, ICPQueryDeadTime {}; {PHASE_REQUESTS} sequential requests \
         per phase (Connection: close), objects cached at the live Squid; phases cumulative (stopped stays stopped); \
         hung = SIGSTOP, recovered = SIGCONT; after it recovers one request every {} ms for an object only it holds",
        portals.iter().map(|p| format!("{} ({})", p.name(), p.file())).collect::<Vec<_>>().join(", "),
        if dead_time == 0 { "default (10 s)".to_string() } else { dead_time.to_string() },
        RECOVERY_EVERY.as_millis()
    ));
}
