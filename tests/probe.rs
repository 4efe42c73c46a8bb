//! Periodic probes (`ICPQueryProbeInterval`) with real httpd and Squid and no
//! portal traffic: mod_watchdog runs them from one child process, they keep
//! the health table fresh, a hung cache dies after three probes the other
//! caches answered and revives when it answers again.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mod_icpquery::icp::{Message, Opcode};
use support::{poll_until, Cluster, HttpdOptions, Mpm};

const PROBE_URL: &str = "http://icpquery.probe/";
/// Upper bound for anything the tests wait for; never reached when it works.
const DEADLINE: Duration = Duration::from_secs(30);

/// The seed configuration followed by `extra` lines.
fn seed_with(net: u8, mpm: Mpm, extra: String) -> Cluster {
    Cluster::start_with(net, mpm, move |dir| {
        let seed = HttpdOptions::seed(dir, net, mpm).portal_conf;
        format!("{seed}\n{extra}\n")
    })
}

/// The module log's "probe: asking …" lines.
fn probe_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("] probe: asking ")).collect()
}

/// Waits until the module log satisfies `done`; panics with the log if not.
fn wait_for_log(c: &Cluster, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
    poll_until(DEADLINE, || {
        let log = c.httpd().module_log();
        done(&log).then_some(log)
    })
    .unwrap_or_else(|| panic!("{what} not in the module log within {DEADLINE:?}:\n{}", c.httpd().module_log()))
}

/// A line's timestamp (`2026-11-23T01:17:37.123456Z …`) in seconds since
/// the epoch.
fn line_time(line: &str) -> f64 {
    let (date, time) = line[..27].split_once('T').unwrap_or_else(|| panic!("no timestamp: {line}"));
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("bad timestamp in {line}"));
    let d: Vec<i64> = date.split('-').map(num).collect();
    // Days from civil (Howard Hinnant), as the module's own log does it.
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let t: Vec<f64> = time.trim_end_matches('Z').split(':').map(|s| s.parse().unwrap()).collect();
    days as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

fn pid_of(line: &str) -> &str {
    line.split("[pid ").nth(1).and_then(|r| r.split(']').next()).unwrap_or_else(|| panic!("no pid: {line}"))
}

fn probes_reach_every_cache_from_one_process(net: u8, mpm: Mpm) {
    let c = seed_with(net, mpm, "ICPQueryProbeInterval 1".into());
    let hosts = c.hosts();
    let answered =
        |log: &str, h: &std::net::Ipv4Addr| log.contains(&format!("ICP_OP_MISS from {h}:3130 for \"{PROBE_URL}\""));
    // Three probes, each answered by all three caches.
    let log = wait_for_log(&c, "three probes answered by every cache", |log| {
        probe_lines(log).len() >= 3
            && hosts.iter().all(|h| log.matches(&format!("{h}:3130 for \"{PROBE_URL}\"")).count() >= 3)
    });
    assert!(hosts.iter().all(|h| answered(&log, h)), "{log}");
    assert!(log.contains("] query ") && log.contains(&format!("for \"{PROBE_URL}\" to 3 peer(s)")), "{log}");
    assert!(!log.contains("icpquerymap"), "no request was sent, yet a map ran:\n{log}");
    assert!(!log.contains("dropped a datagram"), "{log}");

    let probes = probe_lines(&log);
    let pids: Vec<&str> = probes.iter().map(|l| pid_of(l)).collect();
    assert!(pids.iter().all(|p| *p == pids[0]), "probes from more than one process: {probes:#?}");
    // Never more often than the interval (mod_watchdog ticks every 100 ms).
    for pair in probes.windows(2) {
        let gap = line_time(pair[1]) - line_time(pair[0]);
        assert!(gap >= 0.85, "probes {gap:.3} s apart:\n{}\n{}", pair[0], pair[1]);
    }
    let errors = c.httpd().error_log();
    assert!(!errors.contains("no probe queries"), "{errors}");
}

#[test]
fn probes_reach_every_cache_without_traffic() {
    probes_reach_every_cache_from_one_process(50, Mpm::Event);
}

#[test]
fn under_prefork_one_child_of_many_probes() {
    probes_reach_every_cache_from_one_process(53, Mpm::Prefork);
}

/// A UDP socket where an ICP cache would be, which swallows every query
/// until told to answer, and notes when each arrived.
struct HungPeer {
    addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    answer: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HungPeer {
    fn bind(addr: SocketAddr) -> HungPeer {
        let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (answer, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (arrivals, answer, stop) = (Arc::clone(&arrivals), Arc::clone(&answer), Arc::clone(&stop));
            thread::spawn(move || {
                let mut buf = [0u8; 16_384];
                let mut out = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                    arrivals.lock().unwrap().push(Instant::now());
                    if answer.load(Ordering::SeqCst) {
                        // Slower than the Squids on purpose: a probe must
                        // wait for a dead cache, not only hear a fast one.
                        thread::sleep(Duration::from_millis(5));
                        let query = Message::decode(&buf[..n]).expect("the module sends valid ICP");
                        out.clear();
                        query.reply(Opcode::Miss).encode(&mut out).unwrap();
                        socket.send_to(&out, from).unwrap();
                    }
                }
            })
        };
        HungPeer { addr, arrivals, answer, stop, thread: Some(thread) }
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Drop for HungPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_hung_cache_dies_after_three_probes_the_others_answered_is_probed_twice_a_second_and_revives() {
    let net = 51;
    // Bound before httpd starts, kept open for the whole test: the kernel
    // never answers with ICMP, the queries simply go unanswered.
    let hung = HungPeer::bind(SocketAddr::from(([127, 0, net, 9], 3130)));
    let addr = hung.addr;
    let c = seed_with(net, Mpm::Event, format!("ICPQueryPeer {addr}\nICPQueryDeadTime 60\nICPQueryProbeInterval 1"));

    let dead = format!("cache {addr} is dead: it did not answer 3 lookups in a row that other caches answered");
    let log = wait_for_log(&c, &dead, |log| log.contains(&dead));
    let died_at = Instant::now();
    assert_eq!(log.matches(&dead).count(), 1, "{log}");
    assert!(log.contains(&format!("no reply from {addr} within 50000 us for \"{PROBE_URL}\"")), "{log}");
    // The squids kept answering the same probes.
    for h in c.hosts() {
        assert!(log.contains(&format!("ICP_OP_MISS from {h}:3130 for \"{PROBE_URL}\"")), "{log}");
    }
    let errors = c.httpd().error_log();
    assert!(errors.contains(&dead), "the death is not in the error log:\n{errors}");

    // Dead (long before the 60 s dead time): probes come twice a second
    // while a cache is dead, each waiting for it, so that it is heard as
    // soon as it answers; never more often.
    let probes_then = probe_lines(&log).len();
    wait_for_log(&c, "six probes after the death", |log| probe_lines(log).len() >= probes_then + 6);
    let observed = died_at.elapsed();
    let arrivals = hung.arrivals();
    let before: Vec<&Instant> = arrivals.iter().filter(|t| **t <= died_at).collect();
    let after: Vec<&Instant> = arrivals.iter().filter(|t| **t > died_at).collect();
    assert_eq!(before.len(), 3, "asked {} times before dying: {before:?}", before.len());
    let most = (observed.as_secs_f64() * 2.0).floor() as usize + 1;
    assert!((5..=most).contains(&after.len()), "asked {} times in {observed:?} while dead: {after:?}", after.len());
    let mut last = **before.last().unwrap();
    for &&t in &after {
        let gap = t - last;
        assert!(gap >= Duration::from_millis(350), "a dead cache was asked again after only {gap:?}");
        last = t;
    }

    // It answers again: the next revival query brings it back.
    hung.answer.store(true, Ordering::SeqCst);
    let alive = format!("cache {addr} is alive again");
    let log = wait_for_log(&c, &alive, |log| log.contains(&alive));
    assert!(log.contains(&format!("ICP_OP_MISS from {addr} for \"{PROBE_URL}\"")), "{log}");
    assert!(!log.contains("dropped a datagram"), "{log}");
    let errors = c.httpd().error_log();
    assert!(errors.contains(&alive), "the revival is not in the error log:\n{errors}");
}

#[test]
fn probe_interval_0_sends_no_probes() {
    let net = 52;
    let c = seed_with(net, Mpm::Event, "ICPQueryProbeInterval 0".into());
    let r = c.get("/wsgi/marker");
    assert_eq!(r.status, 200, "{r:?}");
    let marker = "for \"http://localhost/wsgi/marker\"";
    wait_for_log(&c, "the marker request's query", |log| log.contains("icpquerymap \"http://localhost/wsgi/marker\""));
    // A negative needs time: probes on, the first would come at once and
    // then every second; watch two seconds for any.
    let probe = poll_until(Duration::from_secs(2), || {
        let log = c.httpd().module_log();
        log.contains(PROBE_URL).then_some(log)
    });
    assert_eq!(probe, None, "a probe was sent with ICPQueryProbeInterval 0");
    let log = c.httpd().module_log();
    let queries: Vec<&str> = log.lines().filter(|l| l.contains("] query ")).collect();
    assert_eq!(queries.len(), 1, "{log}");
    assert!(queries[0].contains(marker), "{log}");
}

#[test]
fn probes_go_on_after_a_graceful_restart() {
    let net = 54;
    let mut c = seed_with(net, Mpm::Event, "ICPQueryProbeInterval 1".into());
    let log = wait_for_log(&c, "two probes", |log| probe_lines(log).len() >= 2);
    let old_pids: Vec<String> = probe_lines(&log).iter().map(|l| pid_of(l).to_owned()).collect();
    // mod_so reloads the module; the new generation's children start their
    // own watchdog once the old generation's has let go of its mutex.
    c.httpd_mut().graceful_restart();
    wait_for_log(&c, "two probes from the new generation", |log| {
        probe_lines(log).iter().filter(|l| !old_pids.iter().any(|p| p == pid_of(l))).count() >= 2
    });
    let errors = c.httpd().error_log();
    assert!(!errors.contains("exit signal"), "a child crashed:\n{errors}");
}

/// However long `ICPQueryProbeInterval` is, a dead cache is probed twice a
/// second, without traffic, so it is used again as soon as it answers: with
/// a one-minute interval, probes for the hung cache keep coming after the
/// requests that found it hung stop, and its first answer revives it.
#[test]
fn a_dead_cache_is_probed_twice_a_second_whatever_the_interval() {
    let net = 55;
    let hung = HungPeer::bind(SocketAddr::from(([127, 0, net, 9], 3130)));
    let addr = hung.addr;
    let c = seed_with(net, Mpm::Event, format!("ICPQueryPeer {addr}\nICPQueryDeadTime 60\nICPQueryProbeInterval 60"));
    // The first probe (at start) and requests, whose lookups the Squids
    // answer, find it hung.
    let dead = format!("cache {addr} is dead: it did not answer 3 lookups in a row that other caches answered");
    let log = poll_until(DEADLINE, || {
        assert_eq!(c.get("/wsgi/finding-it-hung").status, 200);
        let log = c.httpd().module_log();
        log.contains(&dead).then_some(log)
    })
    .unwrap_or_else(|| panic!("{dead} not logged:\n{}", c.httpd().module_log()));
    let probes_then = probe_lines(&log).len();
    let arrivals_then = hung.arrivals().len();
    // No more requests. A probe a minute would bring none in the next
    // seconds; revival probes bring two a second.
    wait_for_log(&c, "three probes after the death, without traffic", |log| probe_lines(log).len() >= probes_then + 3);
    assert!(hung.arrivals().len() >= arrivals_then + 3, "the probes asked the dead cache");
    hung.answer.store(true, Ordering::SeqCst);
    let alive = format!("cache {addr} is alive again");
    wait_for_log(&c, &alive, |log| log.contains(&alive));
}
