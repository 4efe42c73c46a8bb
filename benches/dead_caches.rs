//! Dead caches: request latency through the portal while caches fail, against
//! the same portal with every cache live, in one run.
//!
//! Seed configuration (ICPQueryTimeout 50000), ICPQueryDeadTime at its
//! default 10 s unless BENCH_DEAD_TIME=<seconds> sets it. One client sends
//! sequential requests (one connection each) for objects cached at the
//! first Squid, which stays live, so every request is an ICP HIT there.
//! Phases, cumulative:
//!   1. all three Squids live;
//!   2. the second Squid stopped: its ICP port answers with ICMP port
//!      unreachable, measured from the very first request after the stop;
//!   3. the third Squid hung: replaced by a UDP socket on its ICP address that
//!      takes datagrams and never answers, during the first dead time;
//!   4. the same, after the first dead time.
//!
//! Targets: phase 2 and phase 4 medians ≤ 1.5 × phase 1's median; phase 2's
//! very first request ≤ 1.5 × the first request after an equal pause with
//! every cache live (a pause alone slows the next request down). Phase 3 is reported only (each lookup waits for
//! the hung cache until it is declared dead).
//!
//! `cargo bench --bench dead_caches`

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fmt_dur, median, percentile, summary, warm, Row};
use support::httpd::{log_dir_for, module_path, proxies_path_for, seed_portal_conf};
use support::{http, Mpm};

const NET: u8 = 62;
const OBJECTS: usize = 50;
const PHASE_REQUESTS: usize = 300;
/// Stopping a Squid takes about this long; the controls pause as long.
const PAUSE: Duration = Duration::from_secs(3);

fn get_timed(portal: SocketAddr, path: &str) -> Duration {
    let start = Instant::now();
    let r = http::get(portal, path);
    let elapsed = start.elapsed();
    assert_eq!(r.status, 200, "{path}: {r:?}");
    elapsed
}

/// A hung ICP cache: takes every datagram, answers none.
struct Hung {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Hung {
    fn bind(addr: SocketAddr) -> Hung {
        let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("cannot bind the hung cache at {addr}: {e}"));
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            let mut taken = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                if socket.recv_from(&mut buf).is_ok() {
                    taken += 1;
                }
            }
            taken
        });
        Hung { stop, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

struct Phase {
    samples: Vec<Duration>,
    first: Duration,
}

impl Phase {
    /// An empty phase (the hung cache was never declared dead) reads as
    /// one sample of 999 s, which fails its target visibly.
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

fn main() {
    let dead_time = common::env_num("BENCH_DEAD_TIME", 0);
    let dead_time_note = if dead_time == 0 {
        "ICPQueryDeadTime default (10 s)".to_string()
    } else {
        format!("ICPQueryDeadTime {dead_time}")
    };
    let dead = Duration::from_secs(if dead_time == 0 { 10 } else { dead_time });
    println!(
        "== dead caches: seed conf, ICPQueryTimeout 50000, {dead_time_note}; sequential requests, one connection each"
    );

    let mut cluster = support::Cluster::start_with(NET, Mpm::Event, |dir| {
        let mut conf = seed_portal_conf(NET, &module_path(), &log_dir_for(dir), &proxies_path_for(dir));
        if dead_time != 0 {
            conf.push_str(&format!("\n# added by benches/dead_caches.rs\nICPQueryDeadTime {dead_time}\n"));
        }
        conf
    });
    let [live, stopped, hung] = cluster.hosts();
    let portal = cluster.portal_addr();
    let paths: Vec<String> = (0..OBJECTS).map(|i| format!("/wsgi/dead{i}?v={i}")).collect();
    for p in &paths {
        warm(cluster.cache_for(live).http_addr(), p);
    }
    let check = http::get(portal, &paths[0]);
    let live_name = cluster.cache_for(live).name();
    assert_eq!(check.x_cache(), Some(format!("HIT from {live_name}").as_str()), "routing is not by ICP HIT: {check:?}");
    let mut k = 0usize;
    let mut next = || {
        k += 1;
        paths[k % paths.len()].clone()
    };
    for _ in 0..50 {
        get_timed(portal, &next());
    }

    // 1. all live
    let mut all_live = Phase::new((0..PHASE_REQUESTS).map(|_| get_timed(portal, &next())).collect());

    // The first request after a pause is slower on its own (idle CPUs, cold
    // caches): its control is the first request after a pause as long as
    // stopping a Squid takes, with every cache live.
    let mut idle_firsts: Vec<Duration> = (0..3)
        .map(|_| {
            std::thread::sleep(PAUSE);
            get_timed(portal, &next())
        })
        .collect();
    let idle_first = median(&mut idle_firsts);

    // 2. one stopped: from the very first request after it exited (at least
    // PAUSE after the last request, like the controls).
    let stop_started = Instant::now();
    cluster.cache_for_mut(stopped).stop();
    std::thread::sleep(PAUSE.saturating_sub(stop_started.elapsed()));
    let mut one_stopped = Phase::new((0..PHASE_REQUESTS).map(|_| get_timed(portal, &next())).collect());

    // 3./4. one hung: the Squid goes, a silent socket takes its ICP address.
    let hung_addr = cluster.cache_for(hung).icp_addr();
    cluster.cache_for_mut(hung).stop();
    let silent = Hung::bind(hung_addr);
    let t0 = Instant::now();
    let mut during = Vec::new();
    let mut after = Vec::new();
    let mut first_fast: Option<Duration> = None;
    let fast_bound = all_live.p50().mul_f64(1.5);
    let margin = Duration::from_millis(200);
    while after.len() < PHASE_REQUESTS {
        let started = t0.elapsed();
        let d = get_timed(portal, &next());
        if first_fast.is_none() && d <= fast_bound && started >= Duration::from_millis(100) {
            first_fast = Some(started);
        }
        if started < dead {
            during.push(d);
        } else if started >= dead + margin {
            after.push(d);
        }
        if t0.elapsed() > dead * 3 + Duration::from_secs(30) {
            break; // never declared dead: report what was measured
        }
    }
    let taken = silent.finish();
    let mut hung_during = Phase::new(during);
    let mut hung_after = Phase::new(after);

    let base = all_live.p50();
    let ratio = |d: Duration| d.as_secs_f64() / base.as_secs_f64();
    let line = |name: &str, p: &mut Phase| {
        println!(
            "{name:<34} n={:<4} p50 {:>9}  p90 {:>9}  max {:>9}  first {:>9}  p50/all-live {:.2}",
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
    line("+ one hung, first dead time", &mut hung_during);
    line("+ one hung, after the dead time", &mut hung_after);
    println!(
        "first request after a {PAUSE:?} pause, all live (control): {} (3 pauses: {})",
        fmt_dur(idle_first),
        idle_firsts.iter().map(|d| fmt_dur(*d)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "hung cache took {taken} queries; requests fast again {} after it hung",
        first_fast.map_or("never".into(), fmt_dur)
    );
    let log = cluster.httpd().module_log();
    for needle in [format!("cache {stopped}:3130 is dead"), format!("cache {hung}:3130 is dead")] {
        println!("module log: {:?} {}", needle, if log.contains(&needle) { "found" } else { "NOT found" });
    }

    let bound = base.mul_f64(1.5);
    summary(Row {
        bench: "dead_caches",
        case: "all live",
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
        case: "1 stopped (ICMP), from 1st request",
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
        case: &format!("+1 hung, first {}s", dead.as_secs()),
        measured: format!("p50 {}", fmt_dur(hung_during.p50())),
        baseline: format!("all-live p50 {}", fmt_dur(base)),
        ratio: format!("{:.2}", ratio(hung_during.p50())),
        target: "(reported; waits ICPQueryTimeout)".into(),
        ok: None,
    });
    summary(Row {
        bench: "dead_caches",
        case: &format!("+1 hung, after {}s", dead.as_secs()),
        measured: format!("p50 {}", fmt_dur(hung_after.p50())),
        baseline: format!("all-live p50 {}", fmt_dur(base)),
        ratio: format!("{:.2}", ratio(hung_after.p50())),
        target: "≤ 1.5".into(),
        ok: Some(hung_after.p50() <= bound),
    });
    common::note(&format!(
        "dead_caches: ICPQueryTimeout 50000, {dead_time_note}; {PHASE_REQUESTS} sequential requests per phase \
         (Connection: close), objects cached at the live Squid; phases cumulative (stopped stays stopped)"
    ));
    drop(cluster);
}
