//! `engine::carp` against a real Squid: one Squid as a CARP front end
//! (accelerator on 127.0.<net>.1:3128) over three `carp` parents, which are
//! the test's origins on 127.0.<net>.2/.3/.4:8001. Every request is forwarded
//! (`cache deny all`), so the origin that answers is the parent Squid chose.
//!
//! For each of at least 1,000 URLs the test checks that Squid chose the
//! member `Array::owner` names, that the key Squid hashed is exactly
//! `http://localhost` + path and query (Squid's `effectiveRequestUri()`: the
//! accelerated URL built from `defaultsite=localhost`, default port left
//! out, bytes ≥ 0x80 raw), and that Squid's per-member scores (its
//! `debug_options 39,3` lines) are ours. Then it restarts Squid without one
//! member and checks the same again, and which URLs moved.
//!
//! Squid only uses a CARP parent that `neighborUp()` calls up: in 5.7 a
//! parent starts down until its first TCP probe (sent once its address is
//! configured) succeeds, and goes down after `connect-fail-limit` (10)
//! failed connections; `no-query` keeps ICP out of it. So the test waits
//! until the cache manager's `server_list` (which reports exactly
//! `neighborUp()`) shows every parent Up, keeps the origins up throughout,
//! and checks afterwards that Squid never saw a failed connection.
//!
//! Network numbers 80 and 81; each test runs its phases one after another.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use mod_icpquery::engine::carp::{Array, Member, Variant};
use support::http;
use support::squid::{SQUID_BIN, SQUID_USER, START_TIMEOUT, STOP_TIMEOUT};
use support::{give_to, poll_until, read_lossy, set_mode, tail, tcp_accepts, Origin, Proc, TestDir, ORIGIN_PORT};

/// Distinct URLs sent in each phase.
const URLS: usize = 1200;
/// The accelerator port (the key's host comes from defaultsite, not this).
const ACCEL_PORT: u16 = 3128;
/// A forward-proxy port, first in the config: Squid answers cache manager
/// requests (`http://<visible_hostname>:<first port>/squid-internal-mgr/…`)
/// only on it.
const MGR_PORT: u16 = 3129;
const FRONT_NAME: &str = "carpfront";

/// One `cache_peer` line: the CARP member `name`/`weight` on origin `host`.
#[derive(Clone, Copy, Debug)]
struct Parent {
    name: &'static str,
    weight: u32,
    host: Ipv4Addr,
}

fn front_ip(net: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, 1)
}

/// Request targets: mostly ASCII, every fourth with UTF-8 (bytes ≥ 0x80)
/// in the path and the query, which Squid hashes raw.
fn targets() -> Vec<String> {
    (0..URLS)
        .map(|n| if n % 4 == 3 { format!("/carp/\u{15d}{n}?k=\u{e9}{n}") } else { format!("/carp/{n}?k={n}") })
        .collect()
}

/// The key Squid hashes for a target sent to the accelerator.
fn key(target: &str) -> String {
    format!("http://localhost{target}")
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A Squid CARP front end, stopped on Drop.
struct Front {
    net: u8,
    dir: PathBuf,
    service: String,
    proc: Option<Proc>,
}

impl Front {
    /// Write the config for `parents` into `dir`, start Squid and wait until
    /// it accepts requests and calls every parent up.
    fn start(dir: &Path, net: u8, parents: &[Parent]) -> Front {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        set_mode(dir, 0o755);
        give_to(dir, SQUID_USER);
        let conf = dir.join("squid.conf");
        std::fs::write(&conf, squid_conf(dir, net, parents)).expect("write squid.conf");
        // Own service name: Squid names its /dev/shm segments after it.
        let service = format!("carp{}i{}", std::process::id(), INSTANCE.fetch_add(1, Ordering::SeqCst));
        let mut cmd = Command::new(SQUID_BIN);
        cmd.arg("-N").arg("-n").arg(&service).arg("-f").arg(&conf);
        let proc = Proc::spawn(&format!("carp front {net}"), &mut cmd, &dir.join("squid-run"));
        let front = Front { net, dir: dir.to_path_buf(), service, proc: Some(proc) };
        front.wait_ready(parents);
        front
    }

    fn wait_ready(&self, parents: &[Parent]) {
        let ready = poll_until(START_TIMEOUT, || {
            if !self.proc.as_ref().is_some_and(|p| p.is_running()) {
                return Some(false);
            }
            let ports = tcp_accepts(self.accel_addr()) && tcp_accepts(self.mgr_addr());
            let up = ports && self.mgr("server_list").is_some_and(|list| all_up(&list, parents));
            up.then_some(true)
        });
        match ready {
            Some(true) => {}
            Some(false) => panic!(
                "Squid exited during start-up; {}:\n{}\n{}",
                self.cache_log_path().display(),
                tail(&self.cache_log_path(), 30),
                read_lossy(&self.dir.join("squid-run.stderr"))
            ),
            None => panic!(
                "Squid not ready with every parent up after {START_TIMEOUT:?}; server_list:\n{}\n{}:\n{}",
                self.mgr("server_list").unwrap_or_default(),
                self.cache_log_path().display(),
                tail(&self.cache_log_path(), 30)
            ),
        }
    }

    fn accel_addr(&self) -> SocketAddr {
        SocketAddr::from((front_ip(self.net), ACCEL_PORT))
    }

    fn mgr_addr(&self) -> SocketAddr {
        SocketAddr::from((front_ip(self.net), MGR_PORT))
    }

    /// A cache manager report, e.g. "carp" or "server_list".
    fn mgr(&self, action: &str) -> Option<String> {
        let host = format!("{FRONT_NAME}:{MGR_PORT}");
        let url = format!("http://{host}/squid-internal-mgr/{action}");
        let r = http::request(self.mgr_addr(), "GET", &url, &[("Host", &host)]).ok()?;
        (r.status == 200).then(|| r.body_text())
    }

    fn cache_log_path(&self) -> PathBuf {
        self.dir.join("cache.log")
    }

    fn cache_log(&self) -> String {
        read_lossy(&self.cache_log_path())
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(STOP_TIMEOUT);
            // A clean exit removes these itself; a killed Squid leaves them.
            let prefix = format!("{}-", self.service);
            for e in std::fs::read_dir("/dev/shm").into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".shm") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop();
    }
}

fn squid_conf(dir: &Path, net: u8, parents: &[Parent]) -> String {
    let ip = front_ip(net);
    let instance = support::squid::instance_conf(dir);
    let mut peers = String::new();
    for p in parents {
        // no-query: no ICP, so no ICP-based dead-peer rule; no-digest: no
        // digest fetches to the origins.
        peers.push_str(&format!(
            "cache_peer {} parent {ORIGIN_PORT} 0 carp no-query no-digest originserver name={} weight={}\n",
            p.host, p.name, p.weight
        ));
    }
    format!(
        "# CARP front end for tests/carp_squid.rs\n\
         http_port {ip}:{MGR_PORT}\n\
         http_port {ip}:{ACCEL_PORT} accel defaultsite=localhost no-vhost\n\
         visible_hostname {FRONT_NAME}\n\
         {peers}\
         never_direct allow all\n\
         # forward every request, so the origin that answers is the parent chosen\n\
         cache deny all\n\
         # a fresh connection per request: no idle-connection races to retry\n\
         server_persistent_connections off\n\
         acl tester src 127.0.0.0/8\n\
         acl accelerated dstdomain localhost\n\
         http_access allow tester manager\n\
         http_access allow tester accelerated\n\
         http_access deny all\n\
         {instance}\
         # 39,3: one line per member per request with the key, combined hash and score\n\
         debug_options ALL,1 39,3\n"
    )
}

/// Every parent reported "Status : Up" by `server_list`.
fn all_up(server_list: &str, parents: &[Parent]) -> bool {
    let mut up = Vec::new();
    let mut current = None;
    for line in server_list.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        match k.trim() {
            "Parent" => current = Some(v.trim().to_string()),
            "Status" if v.trim() == "Up" => up.extend(current.take()),
            _ => {}
        }
    }
    parents.iter().all(|p| up.iter().any(|n| n == p.name))
}

/// GET every target through the front end; the index (into `origins`) of
/// the origin that answered each, from the origins' own request counts.
fn route(front: &Front, origins: &[Origin], targets: &[String]) -> Vec<usize> {
    targets
        .iter()
        .map(|t| {
            let before: Vec<usize> = origins.iter().map(|o| o.requests(t)).collect();
            let r = http::get(front.accel_addr(), t);
            assert_eq!(r.status, 200, "GET {t}: {r:?}");
            let grew: Vec<usize> = (0..origins.len()).filter(|&i| origins[i].requests(t) != before[i]).collect();
            assert_eq!(grew.len(), 1, "GET {t}: exactly one origin must have been asked, got {grew:?}");
            let i = grew[0];
            assert_eq!(origins[i].requests(t), before[i] + 1, "GET {t}");
            assert_eq!(r.x_origin(), Some(origins[i].addr().ip().to_string().as_str()), "GET {t}");
            i
        })
        .collect()
}

/// The member list for `Array::new`: every parent of the test in the same
/// order, a removed one with weight 0 so that indices stay put.
fn members(all: &[Parent], present: &[Parent]) -> Vec<Member<'static>> {
    all.iter()
        .map(|p| Member { name: p.name, weight: if present.iter().any(|q| q.name == p.name) { p.weight } else { 0 } })
        .collect()
}

/// What Squid logged at 39,3: key → [(member name, score rounded)] in the
/// order it evaluated them. Squid 5.7 writes "key=<k> name=<n>
/// combined_hash=<h> score=<s>"; 6.x puts the name before " key=".
fn logged_scores(cache_log: &str) -> HashMap<String, Vec<(String, String)>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for line in cache_log.lines() {
        let (Some(k), Some(c), Some(s)) = (line.find(" key="), line.find(" combined_hash="), line.find(" score="))
        else {
            continue;
        };
        if !(k < c && c < s) {
            continue;
        }
        let middle = &line[k + 5..c];
        let (key, name) = match middle.split_once(" name=") {
            Some((key, name)) => (key, name),
            None => (middle, line[..k].rsplit(' ').next().unwrap_or("")),
        };
        out.entry(key.to_string()).or_default().push((name.to_string(), line[s + 7..].trim().to_string()));
    }
    out
}

/// One Squid run over `present` (a subset of `all`): start, send every
/// target, check Squid against `Array`, stop. Returns the owner (index into
/// `all`) of each target.
fn phase(
    dir: &Path,
    net: u8,
    origins: &[Origin],
    all: &[Parent],
    present: &[Parent],
    targets: &[String],
) -> Vec<usize> {
    let label = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut front = Front::start(dir, net, present);
    let array = Array::new(&members(all, present), Variant::Squid);

    // The cache manager's view of the array: hash and multiplier per name.
    let report = front.mgr("carp").expect("cache manager carp report");
    let table: BTreeMap<String, (String, String)> = report
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5).then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
        })
        .collect();
    let ours: BTreeMap<String, (String, String)> = array
        .entries()
        .iter()
        .map(|e| (all[e.index].name.to_string(), (format!("{:x}", e.hash), format!("{:.6}", e.multiplier))))
        .collect();
    assert_eq!(table, ours, "{label}: Squid's carp report:\n{report}");

    let origin_of = |host: Ipv4Addr| origins.iter().position(|o| o.addr().ip() == host).unwrap();
    let routed = route(&front, origins, targets);
    let mut owners = Vec::with_capacity(targets.len());
    let mut mismatches = Vec::new();
    for (t, &got) in targets.iter().zip(&routed) {
        let want = array.owner(key(t).as_bytes(), |_| true).expect("an owner");
        if origin_of(all[want].host) != got {
            mismatches.push(format!("{t}: Squid chose {}, Array::owner {}", origins[got].addr(), all[want].name));
        }
        owners.push(all.iter().position(|p| p.host == origins[got].addr().ip()).unwrap());
    }
    assert!(
        mismatches.is_empty(),
        "{label}: {} of {} differ:\n{}",
        mismatches.len(),
        targets.len(),
        mismatches.join("\n")
    );

    // The exact key, the evaluation order and every score, from Squid's log.
    let log = front.cache_log();
    let logged = logged_scores(&log);
    assert_eq!(
        logged.len(),
        targets.len(),
        "{label}: keys in Squid's log: {:?}",
        logged.keys().take(5).collect::<Vec<_>>()
    );
    for t in targets {
        let k = key(t);
        let theirs = logged.get(&k).unwrap_or_else(|| panic!("{label}: Squid never hashed the key {k:?}"));
        let ours: Vec<(String, String)> =
            array.scores(k.as_bytes()).into_iter().map(|(i, s)| (all[i].name.to_string(), format!("{s:.0}"))).collect();
        assert_eq!(theirs, &ours, "{label}: scores for {k}");
    }
    // No parent ever looked down to Squid.
    for bad in ["Detected DEAD", "TCP connection to", "ERROR"] {
        assert!(!log.contains(bad), "{label}: cache.log has {bad:?}:\n{}", tail(&front.cache_log_path(), 30));
    }
    front.stop();
    owners
}

/// How many targets changed owner, split by whether `gone` owned them.
fn moved(before: &[usize], after: &[usize], gone: usize) -> (usize, usize) {
    let owned = before.iter().filter(|&&b| b == gone).count();
    assert!(after.iter().all(|&a| a != gone));
    let others = before.iter().zip(after).filter(|(&b, &a)| b != gone && a != b).count();
    (owned, others)
}

fn start_origins(parents: &[Parent]) -> Vec<Origin> {
    parents.iter().map(|p| Origin::start(SocketAddr::from((p.host, ORIGIN_PORT)))).collect()
}

#[test]
fn squid_picks_the_array_owner_for_every_url_and_after_removing_a_member() {
    const NET: u8 = 80;
    let host = |last| Ipv4Addr::new(127, 0, NET, last);
    // Configuration order is not weight order: Squid sorts by weight.
    let all = [
        Parent { name: "carp-b", weight: 3, host: host(2) },
        Parent { name: "carp-a", weight: 1, host: host(3) },
        Parent { name: "carp-c", weight: 2, host: host(4) },
    ];
    let dir = TestDir::new("carp80");
    let origins = start_origins(&all);
    let targets = targets();

    let before = phase(&dir.join("all"), NET, &origins, &all, &all, &targets);
    let mut share = [0usize; 3];
    before.iter().for_each(|&i| share[i] += 1);
    eprintln!("weights 3:1:2 → URLs {share:?}");
    assert!(share.iter().all(|&n| n > 0));

    // Without carp-c, the middle member in evaluation order (a, c, b).
    let gone = 2;
    let present = [all[0], all[1]];
    let after = phase(&dir.join("without-carp-c"), NET, &origins, &all, &present, &targets);
    let (owned, others) = moved(&before, &after, gone);
    eprintln!("without carp-c: its {owned} URLs moved, and {others} of the other members' URLs");
    // Squid agrees with Array before and after (checked in `phase`), and
    // Array predicts this: with unequal weights the remaining multipliers
    // change, and the member after the removed one absorbs the key one
    // time fewer, so URLs move between the remaining members too.
    assert!(owned > 0);
    assert!(others > 0, "CARP with unequal weights is not minimally disruptive");
}

#[test]
fn with_equal_weights_removing_the_last_member_moves_only_its_urls() {
    const NET: u8 = 81;
    let host = |last| Ipv4Addr::new(127, 0, NET, last);
    // Equal weights keep configuration order: cache-1, cache-2, cache-3.
    let all = [
        Parent { name: "cache-1", weight: 1, host: host(2) },
        Parent { name: "cache-2", weight: 1, host: host(3) },
        Parent { name: "cache-3", weight: 1, host: host(4) },
    ];
    let dir = TestDir::new("carp81");
    let origins = start_origins(&all);
    let targets = targets();

    let before = phase(&dir.join("all"), NET, &origins, &all, &all, &targets);

    // The last member in evaluation order: the others keep their URL
    // hashes and (equal weights) multipliers of 1, so only its URLs move.
    let after = phase(&dir.join("without-cache-3"), NET, &origins, &all, &all[..2], &targets);
    let (owned, others) = moved(&before, &after, 2);
    eprintln!("without cache-3: its {owned} URLs moved, and {others} others");
    assert!(owned > 0);
    assert_eq!(others, 0, "only the URLs cache-3 owned may move");

    // The first member: every later member's URL hash now absorbs the key
    // one time fewer (Squid's accumulation), so other URLs move as well.
    let after = phase(&dir.join("without-cache-1"), NET, &origins, &all, &all[1..], &targets);
    let (owned, others) = moved(&before, &after, 0);
    eprintln!("without cache-1: its {owned} URLs moved, and {others} others");
    assert!(owned > 0);
    assert!(others > 0, "Squid's accumulating URL hash reshuffles the members after the removed one");
}
