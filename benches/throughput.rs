//! httpd throughput with the seed's ICP rules against plain proxying, same
//! httpd, same three Squids, same objects, measured with wrk over loopback.
//!
//! One portal httpd (event MPM, the harness's settings) on 127.0.63.1 serves
//! four ports, so the configurations can be measured in alternating rounds:
//!   8080  the seed configuration, verbatim (ICPQueryLogLevel 3, rewrite:trace5)
//!   8081  the same rules without the ICP conditions (plain proxying to a
//!         Squid chosen by the seed's `rnd:` map), same logging
//!   8082  the seed rules with production logging (ICPQueryLogLevel 0, LogLevel warn)
//!   8083  the plain rules with production logging
//! Every object is warmed in all three Squids, so every request is a Squid
//! memory HIT in both configurations and an ICP HIT in the seed's.
//!
//! Target: requests/s with ICP ≥ 0.85 × plain proxying.
//!
//! `cargo bench --bench throughput` (BENCH_THROUGHPUT_SECONDS per run,
//! default 5; BENCH_THROUGHPUT_ROUNDS, default 4; BENCH_PERF=<dir> records a
//! system-wide `perf` profile of each configuration's first run into
//! <dir>/perf-<port>.data).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::path::Path;
use std::time::Duration;

use common::{plain_rules, production_logging, rewrite_block, summary, tree_cpu, warm, write_wrk_script, wrk, Row};
use support::httpd::{log_dir_for, module_path, proxies_path_for, seed_portal_conf};
use support::{portal_ip, Mpm};

const NET: u8 = 63;
const OBJECTS: usize = 200;
const THREADS: u32 = 2;
const CONNS: u32 = 32;

struct Config {
    port: u16,
    name: &'static str,
    icp: bool,
    log: &'static str,
}

const CONFIGS: [Config; 4] = [
    Config { port: 8080, name: "seed rules (ICP)", icp: true, log: "seed logging" },
    Config { port: 8081, name: "plain proxy", icp: false, log: "seed logging" },
    Config { port: 8082, name: "seed rules (ICP)", icp: true, log: "production logging" },
    Config { port: 8083, name: "plain proxy", icp: false, log: "production logging" },
];

fn portal_conf(dir: &Path) -> String {
    let logs = log_dir_for(dir);
    let seed = seed_portal_conf(NET, &module_path(), &logs, &proxies_path_for(dir));
    let block = rewrite_block(&seed);
    let plain = plain_rules(&block);
    let ip = portal_ip(NET);
    let vhost = |port: u16, what: &str, extra: &str, rules: &str| {
        format!(
            "\n# ---- added by benches/throughput.rs: {what} ----\nListen {ip}:{port}\n<VirtualHost {ip}:{port}>\n\
             CustomLog \"{logs}/access-{port}.log\" portal\n{extra}{rules}</VirtualHost>\n",
            logs = logs.display()
        )
    };
    let mut conf = seed.clone();
    conf.push_str(&vhost(8081, "plain proxying, seed logging", "", &plain));
    conf.push_str(&vhost(8082, "seed rules, production logging", "ICPQueryLogLevel 0\n", &production_logging(&block)));
    conf.push_str(&vhost(8083, "plain proxying, production logging", "", &production_logging(&plain)));
    conf
}

/// (responses, Squid HITs) for the benchmark's objects in a port's access log.
fn hit_share(path: &Path) -> (usize, usize) {
    let log = support::read_lossy(path);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("/wsgi/tp")).collect();
    (lines.len(), lines.iter().filter(|l| l.contains("X-Cache:\"HIT from")).count())
}

fn main() {
    let secs = common::env_num("BENCH_THROUGHPUT_SECONDS", 5);
    let rounds = common::env_num("BENCH_THROUGHPUT_ROUNDS", 4) as usize;
    println!(
        "== httpd throughput: wrk -t{THREADS} -c{CONNS} -d{secs}s, {rounds} alternating rounds, {OBJECTS} objects \
         warmed in all three Squids"
    );
    let cluster = support::Cluster::start_with(NET, Mpm::Event, portal_conf);
    let paths: Vec<String> = (0..OBJECTS).map(|i| format!("/wsgi/tp{i}?v={i}")).collect();
    for squid in cluster.squids() {
        for p in &paths {
            warm(squid.http_addr(), p);
        }
        let again = support::http::get(squid.http_addr(), &paths[0]);
        assert!(again.is_hit(), "{} does not hold {} after warming: {again:?}", squid.name(), paths[0]);
    }
    let script = cluster.dir().join("throughput.lua");
    write_wrk_script(&script, &paths, None, 0, "");
    let url = |port: u16| format!("http://{}:{port}/", portal_ip(NET));

    // Warm-up: connections, the children's threads, mod_proxy's workers.
    for c in &CONFIGS {
        wrk(THREADS, CONNS, 2, &script, &url(c.port), &[]);
    }
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); CONFIGS.len()];
    // CPU time spent per configuration: httpd, Squids, wrk; and requests.
    let mut cpu: Vec<([Duration; 3], u64)> = vec![([Duration::ZERO; 3], 0); CONFIGS.len()];
    let httpd_pid = cluster.httpd().pid().expect("httpd runs");
    let squid_pids: Vec<i32> = cluster.squids().iter().filter_map(|s| s.pid()).collect();
    let sample_cpu =
        || [tree_cpu(httpd_pid), squid_pids.iter().map(|p| tree_cpu(*p)).sum::<Duration>(), common::children_cpu()];
    let mut errors: Vec<String> = Vec::new();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..CONFIGS.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = &CONFIGS[i];
            // BENCH_PERF=<dir>: a system-wide perf profile of each first-round run.
            let perf = std::env::var_os("BENCH_PERF").filter(|_| round == 0).map(|dir| {
                std::process::Command::new("perf")
                    .args(["record", "-a", "-g", "-F", "499", "-o"])
                    .arg(std::path::Path::new(&dir).join(format!("perf-{}.data", c.port)))
                    .args(["--", "sleep", &(secs.saturating_sub(1).max(1)).to_string()])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("run perf record")
            });
            let before = sample_cpu();
            let r = wrk(THREADS, CONNS, secs, &script, &url(c.port), &[]);
            let after = sample_cpu();
            for k in 0..3 {
                cpu[i].0[k] += after[k].saturating_sub(before[k]);
            }
            cpu[i].1 += r.requests;
            if let Some(mut p) = perf {
                let _ = p.wait();
            }
            println!(
                "round {} :{} {:<17} {:<18} {:>8.0} req/s ({} requests, latency avg {}){}{}",
                round + 1,
                c.port,
                c.name,
                c.log,
                r.rps,
                r.requests,
                r.latency_avg,
                if r.non_2xx > 0 { format!(", {} non-2xx", r.non_2xx) } else { String::new() },
                if r.socket_errors.is_empty() {
                    String::new()
                } else {
                    format!(", socket errors: {}", r.socket_errors)
                },
            );
            if r.non_2xx > 0 || !r.socket_errors.is_empty() {
                errors.push(format!(":{} non-2xx {} socket errors {:?}", c.port, r.non_2xx, r.socket_errors));
            }
            rps[i].push(r.rps);
        }
    }
    let logs = log_dir_for(cluster.dir());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for pair in [(0usize, 1usize), (2, 3)] {
        let (icp, plain) = (&CONFIGS[pair.0], &CONFIGS[pair.1]);
        let (a, b) = (mean(&rps[pair.0]), mean(&rps[pair.1]));
        let log_name = |port: u16| if port == 8080 { "access.log".to_string() } else { format!("access-{port}.log") };
        let (n_icp, hits_icp) = hit_share(&logs.join(log_name(icp.port)));
        let (n_plain, hits_plain) = hit_share(&logs.join(log_name(plain.port)));
        let ratio = a / b;
        let per_round: Vec<String> =
            rps[pair.0].iter().zip(&rps[pair.1]).map(|(x, y)| format!("{:.3}", x / y)).collect();
        println!("{}: ICP/plain per round (each pair run back to back): {}", icp.log, per_round.join(", "));
        let per_request = |i: usize| {
            let (t, n) = &cpu[i];
            let each: Vec<f64> = t.iter().map(|d| common::us(*d) / (*n).max(1) as f64).collect();
            (each[0], each[1], each[2])
        };
        let (ih, is, iw) = per_request(pair.0);
        let (ph, ps, pw) = per_request(pair.1);
        println!(
            "{}: CPU per request: ICP httpd {ih:.0} µs + Squids {is:.0} µs + wrk {iw:.0} µs = {:.0} µs; plain httpd \
             {ph:.0} µs + Squids {ps:.0} µs + wrk {pw:.0} µs = {:.0} µs; ICP adds httpd {:+.0} µs, Squids {:+.0} µs",
            icp.log,
            ih + is + iw,
            ph + ps + pw,
            ih - ph,
            is - ps
        );
        common::note(&format!(
            "throughput ({}): CPU per request, ICP vs plain: httpd {ih:.0} vs {ph:.0} µs, 3 Squids {is:.0} vs \
             {ps:.0} µs, wrk {iw:.0} vs {pw:.0} µs",
            icp.log
        ));
        let spread = |v: &[f64]| {
            let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            format!("{lo:.0}–{hi:.0}")
        };
        println!(
            "{}: ICP {:.0} req/s (rounds {}; Squid HITs {:.1}% of {}) vs plain {:.0} req/s (rounds {}; Squid HITs \
             {:.1}% of {}): ratio {ratio:.3} {}",
            icp.log,
            a,
            spread(&rps[pair.0]),
            100.0 * hits_icp as f64 / n_icp.max(1) as f64,
            n_icp,
            b,
            spread(&rps[pair.1]),
            100.0 * hits_plain as f64 / n_plain.max(1) as f64,
            n_plain,
            common::mark(ratio >= 0.85)
        );
        assert!(icp.icp && !plain.icp);
        summary(Row {
            bench: "throughput",
            case: &format!("{} ({})", if icp.port == 8080 { "seed conf as shipped" } else { "seed rules" }, icp.log),
            measured: format!("ICP {a:.0} req/s ({:.0}% HIT)", 100.0 * hits_icp as f64 / n_icp.max(1) as f64),
            baseline: format!("plain proxy {b:.0} req/s"),
            ratio: format!("{ratio:.3}"),
            target: "≥ 0.85".into(),
            ok: Some(ratio >= 0.85),
        });
    }
    if !errors.is_empty() {
        common::note(&format!("throughput: errors during runs: {}", errors.join("; ")));
    }
    common::note(&format!(
        "throughput: wrk -t{THREADS} -c{CONNS}, {rounds}×{secs}s per configuration, alternating; event MPM \
         (2 children × 32 threads); wrk, httpd and 3 Squids share {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
}
