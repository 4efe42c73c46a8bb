//! Soak and restarts: the seed setup (real httpd, three real Squids, their
//! origins, on loopback) under a real HTTP load — 128 keep-alive
//! connections from `support::load`, every request accounted — for each
//! MPM, while
//!   * one Squid is killed with SIGKILL and started again,
//!   * another is stopped (SIGTERM) and started again,
//!   * httpd is restarted gracefully (`apachectl -k graceful`, SIGUSR1),
//!   * httpd is restarted (`apachectl -k restart`, SIGHUP).
//!
//! Checked:
//!   * no failed request at all outside the SIGHUP window (graceful loses
//!     none); failures of requests overlapping the SIGHUP restart (the
//!     parent kills its children, requests in flight die with them), the
//!     SIGKILL of a Squid and its SIGTERM (requests already proxied to it die
//!     with it: the harness's Squids have `shutdown_lifetime 0`, they reset
//!     the connections they are serving; mod_proxy answers 502) are counted
//!     apart and reported, and are bounded by the number of connections. A
//!     window spans the event until the server is ready again; a failure
//!     belongs to it when the request's lifetime overlaps it;
//!   * the access log holds exactly the responses the clients received (a
//!     request served but lost on the way, e.g. behind the one keep-alive
//!     retry `support::load` does, would show);
//!   * every child process of the httpd parent that lived from the first
//!     sample (after warm-up) to the second (after the Squid kill / stop,
//!     before the httpd restarts, which replace every child): no growth of
//!     its open file descriptors other than TCP connections and UDP sockets
//!     (`FD_SLACK`), no more UDP sockets at quiescence than the lookups'
//!     socket pool may keep (one per thread, for the one set of caches)
//!     and a probe in flight, VmRSS
//!     growth at most `RSS_SLACK_KIB`. Both samples are taken quiescent:
//!     the load pauses, its connections close, and the children's client
//!     connections are gone. TCP connections to the backends are mod_proxy's
//!     connection pools (their size follows the load) and are reported and
//!     bounded, not compared;
//!   * after httpd stops: no process of its process group is left, none of
//!     the sockets its processes held (UDP or other) exists any more, no
//!     SysV shared memory segment created (creator pid) or attached by any
//!     of its processes is left, none of the /dev/shm entries its processes
//!     had mapped or open (recorded from /proc/<pid>/maps and /proc/<pid>/fd
//!     while it ran, each generation) exists any more, nothing is left in
//!     its run directory;
//!   * after the Squids stop: none of the /dev/shm entries their processes
//!     had mapped or open exists, and none named after their `squid -n`
//!     service (`<service>-…`; the harness removes what a killed one leaves);
//!   * only what the test started is judged: shared memory of other programs
//!     on the machine (another Squid's /dev/shm segments, anything else's)
//!     is never looked at;
//!   * no child crashed (error log) and the module never panicked.
//!
//! Suite variant: 30 s of load per MPM (plus warm-up), the three tests one
//! after the other (a lock in this file; load in parallel would overload two
//! cores). The soak variant:
//!
//! ```sh
//! cargo build --release
//! SOAK_SECONDS=600 cargo test --release --test soak -- --test-threads=1 --nocapture
//! ```
//!
//! Network numbers 140 (event), 141 (worker), 142 (prefork).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::httpd::HttpdOptions;
use support::load::{Failure, Load};
use support::{poll_until, Cluster, Mpm, PORTAL_PORT};

/// Concurrent keep-alive connections.
const CONNECTIONS: usize = 128;
/// Allowed growth of a child's non-TCP file descriptors between the samples
/// (httpd may open e.g. a log or a pipe lazily; none is expected).
const FD_SLACK: i64 = 2;
/// Allowed VmRSS growth of a child between the samples (allocator arenas
/// settling after warm-up).
const RSS_SLACK_KIB: i64 = 2048;
/// Tests run one after the other: three loads at once would overload the
/// machine and measure it instead of the module.
static SEQUENTIAL: Mutex<()> = Mutex::new(());

fn soak_seconds() -> u64 {
    std::env::var("SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).filter(|&s| s > 0).unwrap_or(30)
}

// ---------------------------------------------------------------- /proc

/// What a socket inode is, from /proc/net.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SockKind {
    /// TCP, with the local port and the state (0x0A = LISTEN).
    Tcp {
        local_port: u16,
        state: u8,
    },
    Udp,
    Unix,
}

fn net_tables() -> HashMap<u64, SockKind> {
    let mut map = HashMap::new();
    for (file, udp) in [("tcp", false), ("tcp6", false), ("udp", true), ("udp6", true)] {
        let text = std::fs::read_to_string(format!("/proc/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let Ok(inode) = f[9].parse::<u64>() else { continue };
            if inode == 0 {
                continue;
            }
            let kind = if udp {
                SockKind::Udp
            } else {
                let local_port = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()).unwrap_or(0);
                let state = u8::from_str_radix(f[3], 16).unwrap_or(0);
                SockKind::Tcp { local_port, state }
            };
            map.insert(inode, kind);
        }
    }
    let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for line in text.lines().skip(1) {
        if let Some(inode) = line.split_whitespace().nth(6).and_then(|i| i.parse::<u64>().ok()) {
            map.insert(inode, SockKind::Unix);
        }
    }
    map
}

/// (pid, ppid, process group, state) of every process.
fn processes() -> Vec<(i32, i32, i32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid pgrp ..."; comm may hold spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let state = f[0].chars().next().unwrap_or('?');
        if let (Ok(ppid), Ok(pgrp)) = (f[1].parse(), f[2].parse()) {
            out.push((pid, ppid, pgrp, state));
        }
    }
    out
}

fn children_of(parent: i32) -> Vec<i32> {
    processes().into_iter().filter(|p| p.1 == parent && p.3 != 'Z').map(|p| p.0).collect()
}

/// The socket inodes a process holds.
fn socket_inodes(pid: i32) -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(i) = inode.parse() {
                    out.push(i);
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fds {
    total: i64,
    /// TCP connections on the portal port (clients).
    client_tcp: i64,
    /// TCP connections to anything else (mod_proxy's backend pools).
    backend_tcp: i64,
    listen_tcp: i64,
    udp: i64,
    unix: i64,
    /// Files, pipes, epoll/eventfd, sockets of other families.
    other: i64,
}

impl Fds {
    /// Everything but TCP connections and UDP sockets (the lookups' socket
    /// pool, whose size follows the load and is bounded apart): must not
    /// grow.
    fn steady(&self) -> i64 {
        self.total - self.client_tcp - self.backend_tcp - self.udp
    }
}

fn fds_of(pid: i32, tables: &HashMap<u64, SockKind>) -> Option<Fds> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut f = Fds::default();
    for e in dir.flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else { continue };
        f.total += 1;
        let t = target.to_string_lossy();
        let inode = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')).and_then(|i| i.parse::<u64>().ok());
        match inode.and_then(|i| tables.get(&i)) {
            Some(SockKind::Tcp { state: 0x0A, .. }) => f.listen_tcp += 1,
            Some(SockKind::Tcp { local_port, .. }) if *local_port == PORTAL_PORT => f.client_tcp += 1,
            Some(SockKind::Tcp { .. }) => f.backend_tcp += 1,
            Some(SockKind::Udp) => f.udp += 1,
            Some(SockKind::Unix) => f.unix += 1,
            None => f.other += 1,
        }
    }
    Some(f)
}

fn rss_kib(pid: i32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[derive(Clone, Copy, Debug)]
struct ChildSample {
    fds: Fds,
    rss_kib: i64,
}

/// Every child of `parent`: its fds (the reading with the fewest, of five
/// taken 20 ms apart, so a probe's socket caught open does not count) and
/// its VmRSS.
fn sample_children(parent: i32) -> BTreeMap<i32, ChildSample> {
    let mut best: BTreeMap<i32, ChildSample> = BTreeMap::new();
    for round in 0..5 {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(20)); // pacing between readings
        }
        let tables = net_tables();
        for pid in children_of(parent) {
            let (Some(fds), Some(rss_kib)) = (fds_of(pid, &tables), rss_kib(pid)) else { continue };
            let s = ChildSample { fds, rss_kib };
            best.entry(pid)
                .and_modify(|b| {
                    if s.fds.total < b.fds.total {
                        *b = s
                    }
                })
                .or_insert(s);
        }
    }
    best
}

/// Pause the load and wait until no child holds a client connection.
fn quiesce(load: &Load, parent: i32) {
    load.pause(Duration::from_secs(90));
    let idle = poll_until(Duration::from_secs(20), || {
        let tables = net_tables();
        children_of(parent).iter().all(|&pid| fds_of(pid, &tables).is_none_or(|f| f.client_tcp == 0)).then_some(())
    });
    assert!(idle.is_some(), "children still hold client connections 20 s after the load closed them");
}

/// Live members of the process group `leader` leads (httpd's parent and
/// children and whatever they started; a Squid and its helpers).
fn group_of(leader: i32) -> Vec<i32> {
    processes().into_iter().filter(|p| p.2 == leader && p.3 != 'Z').map(|p| p.0).collect()
}

/// A line of /proc/<pid>/maps ("start-end perms offset dev inode   path"):
/// (inode, path without the " (deleted)" an unlinked file gets).
fn maps_inode_path(line: &str) -> Option<(&str, &str)> {
    let mut rest = line;
    let mut inode = "";
    for field in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        if field == 4 {
            inode = &rest[..end];
        }
        rest = &rest[end..];
    }
    let path = rest.trim();
    Some((inode, path.strip_suffix(" (deleted)").unwrap_or(path)))
}

/// The shared memory some processes of the test were seen to hold: every
/// /dev/shm entry one of them mapped or had open, every SysV segment one of
/// them attached. Gathered while they run, judged after they stop: only
/// what these processes held counts, never anything else in /dev/shm.
#[derive(Debug, Default)]
struct HeldShm {
    dev_shm: BTreeSet<PathBuf>,
    /// shmids (a SysV mapping shows as "/SYSV<key> (deleted)", its inode
    /// field being the shmid).
    sysv: BTreeSet<i64>,
}

impl HeldShm {
    fn record(&mut self, pids: &[i32]) {
        for &pid in pids {
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            for (inode, path) in maps.lines().filter_map(maps_inode_path) {
                if path.starts_with("/dev/shm/") {
                    self.dev_shm.insert(PathBuf::from(path));
                } else if path.starts_with("/SYSV") {
                    self.sysv.extend(inode.parse::<i64>().ok());
                }
            }
            for e in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
                let Ok(target) = std::fs::read_link(e.path()) else { continue };
                let t = target.to_string_lossy();
                let t = t.strip_suffix(" (deleted)").unwrap_or(&t);
                if t.starts_with("/dev/shm/") {
                    self.dev_shm.insert(PathBuf::from(t));
                }
            }
        }
    }

    /// The recorded /dev/shm entries that exist now.
    fn still_there(&self) -> Vec<PathBuf> {
        self.dev_shm.iter().filter(|p| std::fs::symlink_metadata(p).is_ok()).cloned().collect()
    }
}

/// Record what httpd's processes and the test's Squids hold now.
fn watch_shm(c: &Cluster, parent: i32, httpd: &mut HeldShm, squids: &mut HeldShm) {
    httpd.record(&group_of(parent));
    for pid in c.squids().iter().filter_map(|s| s.pid()) {
        squids.record(&group_of(pid));
    }
}

/// /dev/shm entries named after one of `services` (`<service>-…`): what
/// the test's own Squids make. Nothing else in /dev/shm is looked at.
fn named_after(services: &[String]) -> Vec<String> {
    let prefixes: Vec<String> = services.iter().map(|s| format!("{s}-")).collect();
    std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .collect()
}

/// SysV shared memory segments as (shmid, creator pid).
fn sysv_shm() -> Vec<(i64, i32)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(1)?.parse().ok()?, f.get(4)?.parse().ok()?))
        })
        .collect()
}

fn list_dir(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------- the load

/// Mostly 300 shared objects (cached at some Squid after warm-up: ICP HITs),
/// one in ten a new object (ICP MISS everywhere: a random running Squid or
/// the balancer), one in fifty a static page of the portal. Each 2xx body
/// must be the one asked for.
fn target(conn: usize, n: u64) -> (String, Option<String>) {
    if n % 50 == 7 {
        return ("/index.html".into(), Some("<html><body>portal</body></html>\n".into()));
    }
    let t = if n % 10 == 3 {
        format!("/wsgi/soak-new/{conn}-{n}")
    } else {
        let i = (conn as u64 * 31 + n * 7) % 300;
        format!("/wsgi/soak/{i}?v={i}")
    };
    let body_end = format!(" {t}\n");
    (t, Some(body_end))
}

fn pace_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now); // pacing the scenario, not synchronisation
    }
}

/// An event that may cost requests in flight: [from, to].
struct Window {
    name: &'static str,
    from: Instant,
    to: Instant,
}

fn describe(f: &Failure, t0: Instant) -> String {
    format!(
        "  conn {} {} [{:.3}s..{:.3}s]: {}",
        f.conn,
        f.target,
        f.started.duration_since(t0).as_secs_f64(),
        f.ended.duration_since(t0).as_secs_f64(),
        f.what
    )
}

// ---------------------------------------------------------------- the test

fn soak(net: u8, mpm: Mpm) {
    let _one_at_a_time = SEQUENTIAL.lock().unwrap_or_else(|e| e.into_inner());
    let secs = soak_seconds();
    let warm_up = Duration::from_secs((secs / 10).clamp(5, 30));
    let phase_a = Duration::from_secs(secs * 2 / 3);
    let phase_b = Duration::from_secs(secs) - phase_a;

    // SysV segments that exist already are not the test's, whatever pid
    // made them (a stale one's dead creator may share a pid with one of
    // httpd's processes).
    let sysv_before: HashSet<i64> = sysv_shm().into_iter().map(|(id, _)| id).collect();
    let mut c = Cluster::start_with(net, mpm, move |dir| {
        let seed = HttpdOptions::seed(dir, net, mpm).portal_conf;
        // The seed logs every lookup (level 3) and mod_rewrite at trace5:
        // far too much for a soak. Problems only.
        format!(
            "{seed}\n# soak: problems only\nICPQueryLogLevel 0\nLogLevel warn rewrite:warn\n\
             CustomLog \"{}/logs/soak.log\" \"%{{X-Soak-Id}}i %>s %B\"\n",
            dir.display()
        )
    });
    let parent = c.httpd().pid().expect("httpd runs");
    let run_dir = c.dir().join("run");
    let run_at_start = list_dir(&run_dir);
    let [h2, h3, _] = c.hosts();
    let mut seen_pids: HashSet<i32> = HashSet::from([parent]);
    // Shared memory held by httpd's processes and by the Squids, recorded
    // at every stage (each httpd generation, each Squid start).
    let services: Vec<String> = c.squids().iter().map(|s| s.service().to_owned()).collect();
    let (mut httpd_shm, mut squid_shm) = (HeldShm::default(), HeldShm::default());
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);

    let t0 = Instant::now();
    let load = Load::start(c.portal_addr(), CONNECTIONS, Box::new(target));
    pace_until(t0 + warm_up);
    let warm = load.totals();
    assert!(warm.ok > 0, "{mpm:?}: no request succeeded during warm-up: {:?}", load.failures());
    let probe = c.get("/wsgi/soak/1?v=1");
    assert!(probe.x_cache().is_some(), "{mpm:?}: a shared object is not served by a Squid after warm-up: {probe:?}");

    // ---- sample 1, then phase A: Squid SIGKILL + restart, SIGTERM + restart
    quiesce(&load, parent);
    let s0 = sample_children(parent);
    seen_pids.extend(s0.keys());
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);
    load.resume();
    let a0 = Instant::now();
    let before_a = load.totals();
    let mut windows: Vec<Window> = Vec::new();

    pace_until(a0 + phase_a / 4);
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);
    let from = Instant::now();
    c.cache_for_mut(h2).kill();
    c.cache_for_mut(h2).start_again();
    windows.push(Window { name: "Squid SIGKILL + start", from, to: Instant::now() });
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);

    pace_until(a0 + phase_a * 3 / 5);
    let from = Instant::now();
    c.cache_for_mut(h3).stop();
    c.cache_for_mut(h3).start_again();
    windows.push(Window { name: "Squid SIGTERM + start", from, to: Instant::now() });
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);

    pace_until(a0 + phase_a);
    let after_a = load.totals();
    quiesce(&load, parent);
    let s1 = sample_children(parent);
    seen_pids.extend(s1.keys());
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);
    load.resume();

    // ---- phase B: graceful restart, then restart
    let b0 = Instant::now();
    pace_until(b0 + phase_b * 3 / 10);
    let from = Instant::now();
    c.httpd_mut().graceful_restart();
    let graceful = Window { name: "graceful restart", from, to: Instant::now() };
    seen_pids.extend(children_of(parent));
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);

    pace_until(b0 + phase_b * 7 / 10);
    let from = Instant::now();
    c.httpd_mut().restart();
    windows.push(Window { name: "restart (SIGHUP)", from, to: Instant::now() });
    seen_pids.extend(children_of(parent));
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);

    pace_until(b0 + phase_b);
    let load_unanswered = load.unanswered();
    let (totals, failures) = load.finish();
    let loaded_for = Instant::now().duration_since(t0);

    // ---- accounting
    let in_window = |f: &Failure, w: &Window| f.overlaps(w.from, w.to);
    let outside: Vec<&Failure> = failures.iter().filter(|f| !windows.iter().any(|w| in_window(f, w))).collect();
    eprintln!(
        "soak {mpm:?}: {} s of load ({} connections): {} ok, {} failed, {} retried on a closed keep-alive \
         connection, {} connects, max latency {:?}; phase A {} ok",
        loaded_for.as_secs(),
        CONNECTIONS,
        totals.ok,
        totals.failed,
        totals.retried,
        totals.connects,
        totals.max_latency,
        after_a.ok - before_a.ok,
    );
    for w in windows.iter().chain([&graceful]) {
        let n = failures.iter().filter(|f| in_window(f, w)).count();
        eprintln!(
            "  {} at {:.1}s, {:.1}s long: {n} failed request(s) overlapping it",
            w.name,
            w.from.duration_since(t0).as_secs_f64(),
            w.to.duration_since(w.from).as_secs_f64()
        );
    }
    for f in failures.iter().take(30) {
        eprintln!("{}", describe(f, t0));
    }

    // ---- fds and RSS of the children that lived through phase A
    let survivors: Vec<i32> = s0.keys().filter(|p| s1.contains_key(p)).copied().collect();
    let mut problems = Vec::new();
    let (mut max_fd_growth, mut max_rss_growth, mut max_backend) = (i64::MIN, i64::MIN, 0);
    for pid in &survivors {
        let (a, b) = (s0[pid], s1[pid]);
        eprintln!(
            "  child {pid}: fds {} -> {} (steady {} -> {}, udp {} -> {}, backend tcp {} -> {}), VmRSS {} -> {} KiB",
            a.fds.total,
            b.fds.total,
            a.fds.steady(),
            b.fds.steady(),
            a.fds.udp,
            b.fds.udp,
            a.fds.backend_tcp,
            b.fds.backend_tcp,
            a.rss_kib,
            b.rss_kib
        );
        let fd_growth = b.fds.steady() - a.fds.steady();
        let rss_growth = b.rss_kib - a.rss_kib;
        max_fd_growth = max_fd_growth.max(fd_growth);
        max_rss_growth = max_rss_growth.max(rss_growth);
        max_backend = max_backend.max(b.fds.backend_tcp);
        if fd_growth > FD_SLACK {
            problems.push(format!("child {pid}: non-TCP fds grew by {fd_growth}: {:?} -> {:?}", a.fds, b.fds));
        }
        // The lookups' socket pool keeps at most a socket per thread that
        // looked up at once (one set of caches, IPv4 only); a probe may be
        // in flight.
        if b.fds.udp > mpm.threads_per_child() + 1 {
            problems.push(format!("child {pid}: {} UDP sockets open with no request in flight", b.fds.udp));
        }
        if rss_growth > RSS_SLACK_KIB {
            problems.push(format!("child {pid}: VmRSS grew by {rss_growth} KiB ({} -> {})", a.rss_kib, b.rss_kib));
        }
    }
    // mod_proxy pools at most one connection per thread per backend (six
    // backends: three Squids, three origins).
    let threads = if mpm == Mpm::Prefork { 1 } else { 32 };
    if max_backend > threads * 6 {
        problems.push(format!("a child holds {max_backend} backend connections (pools allow {})", threads * 6));
    }
    eprintln!(
        "soak {mpm:?}: {} of {} children lived through phase A; max non-TCP fd growth {max_fd_growth}, \
         max VmRSS growth {max_rss_growth} KiB, max backend connections {max_backend}",
        survivors.len(),
        s0.len()
    );

    // ---- every response httpd logged reached its client, outside the
    // windows: each attempt carries X-Soak-Id, logged by httpd after the
    // response (logs/soak.log). An attempt httpd logged but the client got
    // nothing for is a lost response: httpd closing a keep-alive connection
    // *without* processing the request (and the client retrying) is fine,
    // processing it and losing the answer is not — except in the windows,
    // e.g. mod_proxy's deliberate close "to trigger a retry by the client"
    // when the backend (a killed Squid) fails (AH01104), or SIGHUP.
    let soak_log = support::read_lossy(&c.dir().join("logs/soak.log"));
    let logged: HashSet<&str> = soak_log.lines().filter_map(|l| l.split(' ').next()).filter(|i| *i != "-").collect();
    let unanswered = load_unanswered;
    let lost: Vec<&(String, Instant, Instant)> = unanswered.iter().filter(|u| logged.contains(u.0.as_str())).collect();
    let lost_outside: Vec<_> = lost.iter().filter(|u| !windows.iter().any(|w| u.1 <= w.to && u.2 >= w.from)).collect();
    let received = totals.ok + failures.iter().filter(|f| f.status.is_some()).count() as u64;
    let unlogged = (received + lost.len() as u64) as i64 - logged.len() as i64;
    eprintln!(
        "soak {mpm:?}: httpd logged {} load requests: {received} answered to the client, {} lost in the windows, \
         {} lost outside; {} attempts were closed unprocessed; {} responses not logged (restart)",
        logged.len(),
        lost.len() - lost_outside.len(),
        lost_outside.len(),
        unanswered.len() - lost.len(),
        unlogged
    );
    if !lost_outside.is_empty() {
        problems.push(format!(
            "{} responses httpd logged never reached the client, outside every window: {:?}",
            lost_outside.len(),
            lost_outside
                .iter()
                .take(20)
                .map(|u| (&u.0, u.1.duration_since(t0), u.2.duration_since(t0)))
                .collect::<Vec<_>>()
        ));
    }
    // Every logged request was answered or lost. The converse has one
    // exception: `-k restart` kills children, and one killed between sending
    // a response and writing its log line leaves a response the log lacks —
    // at most one per connection in flight.
    if !(0..=CONNECTIONS as i64).contains(&unlogged) {
        problems.push(format!(
            "httpd logged {} load requests; the clients got {received} responses and {} were lost",
            logged.len(),
            lost.len()
        ));
    }

    // ---- logs
    let error_log = c.httpd().error_log();
    let module_log = c.httpd().module_log();
    for needle in ["exit signal", "panic", "AH00051", "AH00052"] {
        if error_log.contains(needle) {
            problems.push(format!("error log has {needle:?}:\n{}", support::tail(&c.httpd().error_log_path(), 40)));
        }
    }
    if module_log.contains("panic") {
        problems.push(format!("module log has a panic:\n{}", support::tail(&c.httpd().module_log_path(), 40)));
    }
    eprintln!(
        "soak {mpm:?}: module log {} lines; last:\n{}",
        module_log.lines().count(),
        support::tail(&c.httpd().module_log_path(), 8)
    );

    // ---- stop httpd ourselves (SIGTERM to the parent), see everything go
    let group = group_of(parent);
    seen_pids.extend(&group);
    watch_shm(&c, parent, &mut httpd_shm, &mut squid_shm);
    let sockets: HashSet<u64> = group.iter().flat_map(|&p| socket_inodes(p)).collect();
    let run_before_stop = list_dir(&run_dir);
    unsafe { libc::kill(parent, libc::SIGTERM) };
    let gone = poll_until(Duration::from_secs(20), || {
        processes().iter().all(|p| p.2 != parent || (p.0 == parent && p.3 == 'Z')).then_some(())
    });
    if gone.is_none() {
        let left: Vec<_> = processes().into_iter().filter(|p| p.2 == parent).collect();
        problems.push(format!("httpd's processes still there 20 s after SIGTERM: {left:?}"));
    }
    c.httpd_mut().stop(); // reaps the parent
    let tables = net_tables();
    let stale: Vec<(u64, SockKind)> = sockets.iter().filter_map(|i| tables.get(i).map(|k| (*i, *k))).collect();
    if !stale.is_empty() {
        problems.push(format!("sockets of the stopped httpd still exist: {stale:?}"));
    }
    let shm_segments: Vec<(i64, i32)> = sysv_shm()
        .into_iter()
        .filter(|(id, cpid)| !sysv_before.contains(id) && (seen_pids.contains(cpid) || httpd_shm.sysv.contains(id)))
        .collect();
    if !shm_segments.is_empty() {
        problems.push(format!("SysV shared memory created or attached by httpd's processes left: {shm_segments:?}"));
    }
    eprintln!(
        "soak {mpm:?}: httpd's processes held in /dev/shm {:?}, SysV segments {:?}",
        httpd_shm.dev_shm, httpd_shm.sysv
    );
    // The seed's balancer keeps its state in mod_slotmem_shm segments
    // (/dev/shm/ShM.… from APR): none seen means the recording is broken
    // and the check below would pass whatever httpd left.
    if httpd_shm.dev_shm.is_empty() {
        problems.push("no /dev/shm entry seen in httpd's processes: nothing for the leftover check to judge".into());
    }
    let httpd_left = httpd_shm.still_there();
    if !httpd_left.is_empty() {
        problems.push(format!("/dev/shm entries httpd's processes had mapped or open are left: {httpd_left:?}"));
    }
    let run_after = list_dir(&run_dir);
    eprintln!(
        "soak {mpm:?}: run dir at start {run_at_start:?}, before stop {run_before_stop:?}, after stop {run_after:?}"
    );
    if !run_after.is_empty() {
        problems.push(format!("left in {}: {run_after:?}", run_dir.display()));
    }

    // ---- stop the Squids: nothing of theirs is left in /dev/shm
    c.stop_all_squids();
    eprintln!("soak {mpm:?}: the Squids ({services:?}) held in /dev/shm {:?}", squid_shm.dev_shm);
    if squid_shm.dev_shm.is_empty() {
        problems
            .push("no /dev/shm entry seen in the Squids' processes: nothing for the leftover check to judge".into());
    }
    let squid_left: BTreeSet<String> = squid_shm
        .still_there()
        .iter()
        .map(|p| p.display().to_string())
        .chain(named_after(&services).into_iter().map(|n| format!("/dev/shm/{n}")))
        .collect();
    if !squid_left.is_empty() {
        problems.push(format!("/dev/shm entries of the test's Squids are left after they stopped: {squid_left:?}"));
    }

    // ---- verdict
    assert!(totals.ok > 0);
    if !outside.is_empty() {
        problems.push(format!(
            "{} request(s) failed outside the windows of the Squid SIGKILL, the Squid SIGTERM and the httpd \
             restart (SIGHUP) (the graceful restart included):\n{}",
            outside.len(),
            outside.iter().take(30).map(|f| describe(f, t0)).collect::<Vec<_>>().join("\n")
        ));
    }
    for w in &windows {
        let n = failures.iter().filter(|f| in_window(f, w)).count();
        if n > CONNECTIONS {
            problems.push(format!("{n} failures overlap the {}: more than the requests in flight", w.name));
        }
    }
    if survivors.is_empty() {
        problems.push("no child lived through phase A: nothing to compare".into());
    }
    assert!(problems.is_empty(), "soak {mpm:?}:\n{}", problems.join("\n"));
}

#[test]
fn soak_event_mpm() {
    soak(140, Mpm::Event);
}

#[test]
fn soak_worker_mpm() {
    soak(141, Mpm::Worker);
}

#[test]
fn soak_prefork_mpm() {
    soak(142, Mpm::Prefork);
}
