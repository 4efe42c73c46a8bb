//! Memory: RSS of the single httpd child after ~10,000 lookups and after
//! 1,000,000 lookups (or as many as fit in the time budget), through the
//! portal with wrk.
//!
//! Seed rules with production logging (ICPQueryLogLevel 0, LogLevel warn:
//! level 3 and rewrite:trace5 would write gigabytes), event MPM with one
//! child (StartServers 1, ServerLimit 1, 32 threads). Objects are cached at
//! one Squid each (ICP HIT there); every 16th request is a new URL no cache
//! holds (all MISS, then the `rnd:` and `icpqueryisrunning` rule).
//! Every request under /wsgi/ runs exactly one `icpquerymap` lookup.
//!
//! Target: VmRSS growth between the two points ≤ 1 MiB.
//!
//! `cargo bench --bench memory` (BENCH_MEMORY_SECONDS: time budget of the
//! long phase, default 600, ended early at the goal; BENCH_MEMORY_LOOKUPS: its goal, default 1000000).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::time::{Duration, Instant};

use common::{children_of, production_logging, status_kib, summary, warm, write_wrk_script, wrk, Row};
use support::httpd::{log_dir_for, module_path, proxies_path_for, seed_portal_conf};
use support::{portal_ip, Mpm};

const NET: u8 = 64;
const OBJECTS: usize = 300;
const THREADS: u32 = 2;
const CONNS: u32 = 32;
const FIRST_POINT: u64 = 10_000;

fn rss(pid: i32) -> (u64, u64) {
    (status_kib(pid, "VmRSS").unwrap_or(0), status_kib(pid, "RssAnon").unwrap_or(0))
}

fn main() {
    let budget = Duration::from_secs(common::env_num("BENCH_MEMORY_SECONDS", 600));
    let goal = common::env_num("BENCH_MEMORY_LOOKUPS", 1_000_000);
    println!(
        "== memory: one event-MPM child, seed rules with production logging; RSS after ~{FIRST_POINT} lookups and \
         after {goal} or {budget:?}, whichever comes first"
    );
    let cluster = support::Cluster::start_with(NET, Mpm::Event, |dir| {
        let seed = seed_portal_conf(NET, &module_path(), &log_dir_for(dir), &proxies_path_for(dir));
        production_logging(&seed)
            + "\n# added by benches/memory.rs: one child process to measure\n\
               StartServers 1\nServerLimit 1\nMaxRequestWorkers 32\nMinSpareThreads 1\nMaxSpareThreads 33\n"
    });
    let hosts = cluster.hosts();
    let paths: Vec<String> = (0..OBJECTS).map(|i| format!("/wsgi/mem{i}?v={i}")).collect();
    for (i, p) in paths.iter().enumerate() {
        warm(cluster.cache_for(hosts[i % 3]).http_addr(), p);
    }
    let script = cluster.dir().join("memory.lua");
    write_wrk_script(&script, &paths, None, 16, "mem-new");
    let url = format!("http://{}:8080/", portal_ip(NET));
    let parent = cluster.httpd().pid().expect("httpd runs");
    let child = || {
        let kids = children_of(parent);
        assert_eq!(kids.len(), 1, "expected one httpd child, found {kids:?}");
        kids[0]
    };
    let pid0 = child();
    let (start_rss, start_anon) = rss(pid0);
    println!("child {pid0} at start: VmRSS {start_rss} KiB, RssAnon {start_anon} KiB");

    let mut lookups = 0u64;
    let mut errors = 0u64;
    while lookups < FIRST_POINT {
        let r = wrk(THREADS, CONNS, 1, &script, &url, &[]);
        lookups += r.requests;
        errors += r.non_2xx;
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid_a = child();
    let (rss_a, anon_a) = rss(pid_a);
    let lookups_a = lookups;
    println!("after {lookups_a} lookups: child {pid_a} VmRSS {rss_a} KiB, RssAnon {anon_a} KiB");

    let started = Instant::now();
    while lookups < goal && started.elapsed() < budget {
        let left = budget.saturating_sub(started.elapsed()).as_secs().clamp(1, 30);
        let r = wrk(THREADS, CONNS, left, &script, &url, &[]);
        lookups += r.requests;
        errors += r.non_2xx;
        std::thread::sleep(Duration::from_millis(300));
        let (v, a) = rss(child());
        println!("after {lookups:>8} lookups ({:.0} req/s): VmRSS {v} KiB, RssAnon {a} KiB", r.rps);
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid_b = child();
    let (rss_b, anon_b) = rss(pid_b);
    let growth = rss_b as i64 - rss_a as i64;
    let ok = growth <= 1024 && pid_a == pid_b;
    println!(
        "after {lookups} lookups: child {pid_b} VmRSS {rss_b} KiB (RssAnon {anon_b} KiB); growth since {lookups_a}: \
         {growth} KiB VmRSS, {} KiB RssAnon; non-2xx responses: {errors} {}",
        anon_b as i64 - anon_a as i64,
        common::mark(ok)
    );
    if pid_a != pid_b {
        println!("the child was replaced ({pid_a} → {pid_b}): the comparison is void");
    }
    summary(Row {
        bench: "memory",
        case: &format!("httpd child RSS, {lookups_a} → {lookups} lookups"),
        measured: format!("{rss_b} KiB (anon {anon_b})"),
        baseline: format!("{rss_a} KiB (anon {anon_a})"),
        ratio: format!("{growth:+} KiB"),
        target: "growth ≤ 1024 KiB".into(),
        ok: Some(ok),
    });
    common::note(&format!(
        "memory: {lookups} lookups in all, {} of them in the {:.0} s after the first {lookups_a} (goal {goal}, \
         budget {budget:?}); 1 event child × 32 threads; every 16th request a new URL; VmRSS from /proc/<pid>/status",
        lookups - lookups_a,
        started.elapsed().as_secs_f64()
    ));
    drop(cluster);
}
