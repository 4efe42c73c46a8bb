//! Shared by the benchmarks: percentiles, wrk, and the summary rows that
//! `bench/run.sh` collects into one table.
//!
//! Benchmarks print numbers and verdicts; they never fail on timing. A
//! benchmark exits non-zero only when it could not measure at all.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

// ---------------------------------------------------------------- statistics

/// The `p`-th percentile (0..=100) of `samples`, sorting them in place.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

pub fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 50.0)
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// "123 µs", "1.23 ms" or "1.23 s".
pub fn fmt_dur(d: Duration) -> String {
    let u = us(d);
    if u < 10_000.0 {
        format!("{u:.0} µs")
    } else if u < 10_000_000.0 {
        format!("{:.2} ms", u / 1000.0)
    } else {
        format!("{:.2} s", u / 1e6)
    }
}

pub fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

/// An environment override for a number (durations, counts).
pub fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------- summary rows

/// One line of the final table:
/// benchmark | case | measured | baseline (same run) | ratio | target | verdict.
pub struct Row<'a> {
    pub bench: &'a str,
    pub case: &'a str,
    pub measured: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    /// None: reported only, no target.
    pub ok: Option<bool>,
}

/// Prints the row and appends it (tab-separated) to `$BENCH_SUMMARY` when set.
pub fn summary(row: Row<'_>) {
    let verdict = row.ok.map_or("·", mark);
    let line = [row.bench, row.case, &row.measured, &row.baseline, &row.ratio, &row.target, verdict].join("\t");
    println!("SUMMARY\t{line}");
    if let Some(path) = std::env::var_os("BENCH_SUMMARY") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot append to {}: {e}", Path::new(&path).display()));
        writeln!(f, "{line}").expect("write summary row");
    }
}

/// A free-form note under the table (settings the numbers depend on).
pub fn note(text: &str) {
    println!("NOTE\t{text}");
    if let Some(path) = std::env::var_os("BENCH_SUMMARY") {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("open summary");
        writeln!(f, "#\t{text}").expect("write summary note");
    }
}

// ---------------------------------------------------------------- wrk

/// What one wrk run reported.
#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub non_2xx: u64,
    pub socket_errors: String,
    pub latency_avg: String,
    pub raw: String,
}

/// `wrk` must be installed (bench/run.sh installs it with apt-get).
pub fn wrk_path() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("wrk");
        if p.exists() {
            return p;
        }
    }
    panic!("wrk is not installed: run bench/run.sh (it installs it) or apt-get install -y wrk")
}

/// Runs `wrk -t<threads> -c<conns> -d<secs>s -s <script> <url> [-- args]`.
pub fn wrk(threads: u32, conns: u32, secs: u64, script: &Path, url: &str, args: &[String]) -> WrkResult {
    let mut cmd = Command::new(wrk_path());
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url);
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run wrk: {e}"));
    let raw = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wrk failed ({}):\n{raw}", out.status);
    parse_wrk(&raw)
}

fn parse_wrk(raw: &str) -> WrkResult {
    let mut r = WrkResult { raw: raw.to_string(), ..WrkResult::default() };
    for line in raw.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some((n, rest)) = t.split_once(" requests in ") {
            r.requests = n.trim().parse().unwrap_or(0);
            r.seconds = rest.split(',').next().unwrap_or("").trim().trim_end_matches('s').parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            r.socket_errors = v.trim().to_string();
        } else if let Some(v) = t.strip_prefix("Latency") {
            r.latency_avg = v.split_whitespace().next().unwrap_or("").to_string();
        }
    }
    assert!(r.requests > 0, "wrk completed no request:\n{raw}");
    r
}

/// A wrk script cycling over `paths` (each thread from its own offset);
/// with `quota` per thread, the thread stops after that many responses.
/// When `unique_every` is n > 0, every n-th request is for a new URL
/// (`/wsgi/<unique_prefix>-<thread>-<i>`), which no cache holds.
pub fn write_wrk_script(path: &Path, paths: &[String], quota: Option<u64>, unique_every: u64, unique_prefix: &str) {
    let mut s = String::from("-- generated by benches/common/mod.rs\nlocal paths = {\n");
    for p in paths {
        s.push_str(&format!("  {p:?},\n"));
    }
    s.push_str("}\nlocal n = #paths\nlocal counter = 0\nlocal i = 0\nlocal done = 0\nlocal next_tid = 1\n");
    s.push_str("function setup(thread)\n  thread:set(\"tid\", next_tid)\n  next_tid = next_tid + 1\nend\n");
    s.push_str("function init(args)\n  i = ((tid or 1) * 7919) % n\nend\n");
    s.push_str("function request()\n  counter = counter + 1\n");
    if unique_every > 0 {
        s.push_str(&format!(
            "  if counter % {unique_every} == 0 then\n    return wrk.format(\"GET\", \"/wsgi/{unique_prefix}-\" .. (tid or 1) .. \"-\" .. counter)\n  end\n"
        ));
    }
    s.push_str("  i = i + 1\n  if i > n then i = 1 end\n  return wrk.format(\"GET\", paths[i])\nend\n");
    if let Some(q) = quota {
        s.push_str(&format!(
            "function response(status, headers, body)\n  done = done + 1\n  if done >= {q} then wrk.thread:stop() end\nend\n"
        ));
    }
    std::fs::write(path, s).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

// ---------------------------------------------------------------- processes

/// The pids whose parent is `ppid` (httpd's children).
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may contain spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// A `kB` field of /proc/<pid>/status (VmRSS, RssAnon, …), in KiB.
pub fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------- portal configurations

/// The seed configuration's rewrite part: from `RewriteEngine` to the end.
pub fn rewrite_block(seed: &str) -> String {
    let at = seed.find("\nRewriteEngine").expect("the seed configuration has a RewriteEngine line");
    seed[at + 1..].to_string()
}

/// The seed's rules with the ICP conditions removed: plain proxying to a
/// Squid chosen by the `rnd:` map. The `${icpquery:…}` condition goes with
/// the rule it guards (without it that rule would proxy to `http://:3128`),
/// and the `${cacheisrunning:…}` condition goes, keeping the `rnd:` rule.
pub fn plain_rules(block: &str) -> String {
    let mut out = String::new();
    let mut drop_next_rule = false;
    for line in block.lines() {
        let t = line.trim_start();
        if t.starts_with("RewriteCond") && t.contains("${icpquery:") {
            drop_next_rule = true;
            out.push_str(&format!("# (removed for the plain-proxy baseline) {t}\n"));
            continue;
        }
        if t.starts_with("RewriteRule") && drop_next_rule {
            drop_next_rule = false;
            out.push_str(&format!("# (removed for the plain-proxy baseline) {t}\n"));
            continue;
        }
        if t.starts_with("RewriteCond") && t.contains("${cacheisrunning:") {
            out.push_str(&format!("# (removed for the plain-proxy baseline) {t}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        out.matches("(removed for the plain-proxy baseline)").count() == 3,
        "the seed's rules changed shape; cannot derive the plain-proxy baseline from:\n{block}"
    );
    out
}

/// Production logging: no mod_rewrite trace, the module's log at level 0.
pub fn production_logging(conf: &str) -> String {
    let mut out = String::new();
    for line in conf.lines() {
        let t = line.trim_start();
        if t.starts_with("LogLevel") && t.contains("rewrite:trace") {
            out.push_str("LogLevel warn\n");
        } else if t.starts_with("ICPQueryLogLevel") {
            out.push_str("ICPQueryLogLevel 0\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `conf/httpd-portal-balancer.conf` (lbmethod=bycache over the three
/// Squids) with only these substitutions, as `seed_portal_conf` makes the
/// seed's: 192.168.0.1/2/3 -> 127.0.<net>.2/3/4, the module's path, and
/// /var/log/httpd/ -> `log_dir`; plus mod_authz_host, which its
/// `Require local` needs and the harness's main configuration does not load.
pub fn balancer_portal_conf(net: u8, module: &Path, log_dir: &Path) -> String {
    let conf = crate::support::read_conf_file("httpd-portal-balancer.conf");
    for needle in ["modules/mod_icpquery.so", "192.168.0.1", "/var/log/httpd/", "lbmethod=bycache"] {
        assert!(conf.contains(needle), "conf/httpd-portal-balancer.conf no longer contains {needle:?}");
    }
    let conf = crate::support::httpd::substitute_hosts(&conf, net)
        .replace("modules/mod_icpquery.so", &module.display().to_string())
        .replace("/var/log/httpd/", &format!("{}/", log_dir.display()));
    format!("{}{conf}", crate::support::balancer::load_module("authz_host"))
}

/// The module's status page (`SetHandler icpquery-status`) at `path` of the
/// portal, for the configurations that add it.
pub fn status_location(path: &str) -> String {
    format!("<Location {path}>\n    SetHandler icpquery-status\n</Location>\n")
}

/// (ICP lookups, lookups answered from memory) summed over the regions of
/// the module's status page at `path` (`?auto`); None when it is not there.
pub fn memory_counters(portal: std::net::SocketAddr, path: &str) -> Option<(u64, u64)> {
    let r = crate::support::http::try_get(portal, &format!("{path}?auto")).ok().filter(|r| r.status == 200)?;
    let map = crate::support::parse_auto(&r.body_text());
    let regions: u64 = map.get("Regions")?.parse().ok()?;
    let num = |k: String| map.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some((0..regions).fold((0, 0), |(l, m), i| {
        (l + num(format!("Region{i}Lookups")), m + num(format!("Region{i}AnswersFromMemory")))
    }))
}

/// Fetches `path` straight from a Squid so that it holds the object.
pub fn warm(squid: std::net::SocketAddr, path: &str) {
    let r = crate::support::http::get(squid, path);
    assert_eq!(r.status, 200, "warming {path} at {squid}: {r:?}");
}

/// CPU time (user + system, its reaped children's included) of `root` and
/// every process below it.
pub fn tree_cpu(root: i32) -> Duration {
    let mut parent_of = Vec::new();
    let mut ticks_of = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After "(comm)": state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based from state.
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        parent_of.push((pid, num(1) as i32));
        ticks_of.insert(pid, num(11) + num(12) + num(13) + num(14));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = tree.iter().filter_map(|p| ticks_of.get(p)).sum();
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// CPU time of this process's reaped children (wrk, once it has exited).
pub fn children_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid and getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
