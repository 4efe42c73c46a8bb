//! A real Squid as a CARP front end: an accelerator on a given address that
//! forwards every request to one of its `cache_peer … parent … carp`
//! parents, the one Squid's CARP names for the URL. Used to pin what
//! `mod_icpquery::engine::carp` (and a balancer built on it) must agree with.
//!
//! * `Parent`: one `cache_peer` line — host, HTTP port, CARP member name
//!   (`name=`), weight (`weight=`), and whether it is an origin server
//!   (`Parent::origin`, `originserver`) or a cache (`Parent::cache`, one of
//!   the harness's Squid accelerators, which name themselves in `X-Cache`).
//! * `CarpFront::start(dir, addr, parents)`: writes the squid.conf into
//!   `dir`, starts Squid 5 in the foreground and returns once it accepts
//!   requests on `addr` and calls every parent up. Stopped on Drop.
//!   `start_with_conf(dir, addr, parents, body)` runs a front end
//!   configuration of your own instead, e.g. `shipped_conf`:
//!   `conf/squid-carp-frontend.conf` on loopback.
//! * `CarpFront::forwarded_to(target)`: GET `target` (path?query) through
//!   the front end and say which parent it went to — from the response's
//!   `X-Cache … from NAME` when the parents are caches;
//!   `forwarded_to_origin(target, origins)` from the origins' request
//!   counts when the parents are origins.
//! * What Squid says about its choices: `carp_report` (cache manager),
//!   `logged_forwards` (its access log: `CARP` and the parent's name per
//!   request), `logged_scores` (its `debug_options 39,3` lines: key and
//!   score per member).
//!
//! How `start` sets the front end up, and why (Squid 5.7; `harness_conf`
//! adds the cache manager port, logs and the rest to any configuration):
//! * `http_port <addr> accel defaultsite=localhost no-vhost`: the key Squid
//!   hashes (`effectiveRequestUri()`) is `http://localhost` + path?query
//!   whatever the Host header says, as mod_icpquery's ICP keys are.
//! * A plain forward-proxy port at `addr`'s port + 1, first in the file:
//!   Squid answers cache manager requests
//!   (`http://<visible_hostname>:<first port>/squid-internal-mgr/…`) only
//!   on it.
//! * `cache deny all`: the front end stores nothing, so every request is
//!   forwarded and says who it went to; `never_direct allow all`: only to a
//!   parent.
//! * `no-query`: no ICP to the parents (the array is pure CARP, and no
//!   ICP-based dead-peer rule); `no-digest`: no cache digests, whose hits
//!   would win over CARP in Squid's peer selection.
//! * Squid uses a CARP parent only while `neighborUp()` says so: in 5.7 a
//!   parent starts down until its first TCP probe succeeds, and goes down
//!   after `connect-fail-limit` (10) failed connections. `start` therefore
//!   waits until the cache manager's `server_list` (which reports exactly
//!   `neighborUp()`) shows every parent Up.
//! * `server_persistent_connections off`: a fresh connection per request,
//!   so no idle-connection race makes Squid retry elsewhere.
//! * Its own `squid -n` service name, as every test Squid: Squid names its
//!   /dev/shm segments after it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use mod_icpquery::engine::carp::Member;

use super::http::{self, Response};
use super::httpd::substitute_hosts;
use super::squid::{instance_conf, Squid, SQUID_BIN, SQUID_USER, START_TIMEOUT, STOP_TIMEOUT};
use super::{give_to, poll_until, read_conf_file, read_lossy, set_mode, tail, tcp_accepts, Origin, Proc};

/// The `visible_hostname` of a front end `start` configures.
pub const FRONT_NAME: &str = "carpfront";

/// The front end's own log of every forward (`logged_forwards`).
const FORWARDS_LOG: &str = "forwards.log";

/// One `cache_peer` line of the front end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The `cache_peer` host, written as this address.
    pub host: IpAddr,
    /// Its HTTP port.
    pub http_port: u16,
    /// The CARP member name (`name=`): what Squid hashes with the URL.
    pub name: String,
    /// The CARP weight (`weight=`, at least 1).
    pub weight: u32,
    /// `originserver`: the parent is a web server and gets origin-form
    /// requests; otherwise it is a proxy (absolute-form requests).
    pub originserver: bool,
    /// The name the parent writes in `X-Cache: … from NAME` (a cache's
    /// visible_hostname), for `CarpFront::forwarded_to`.
    pub cache_name: Option<String>,
}

impl Parent {
    /// An origin server at `addr` as CARP member `name` with `weight`.
    pub fn origin(addr: SocketAddr, name: &str, weight: u32) -> Parent {
        Parent {
            host: addr.ip(),
            http_port: addr.port(),
            name: name.to_owned(),
            weight,
            originserver: true,
            cache_name: None,
        }
    }

    /// One of the harness's Squid accelerators (HTTP port 3128, `X-Cache …
    /// from squidN`) with `weight`, its CARP name its host as written
    /// ("127.0.180.2"), as a balancer member `http://127.0.180.2:3128` is
    /// named. `named` gives it another.
    pub fn cache(squid: &Squid, weight: u32) -> Parent {
        let addr = squid.http_addr();
        Parent {
            host: addr.ip(),
            http_port: addr.port(),
            name: addr.ip().to_string(),
            weight,
            originserver: false,
            cache_name: Some(squid.name()),
        }
    }

    /// The same parent under another CARP member name.
    pub fn named(mut self, name: &str) -> Parent {
        self.name = name.to_owned();
        self
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.http_port)
    }

    /// Its `cache_peer` line.
    pub fn cache_peer_line(&self) -> String {
        format!(
            "cache_peer {} parent {} 0 carp no-query no-digest{} name={} weight={}",
            self.host,
            self.http_port,
            if self.originserver { " originserver" } else { "" },
            self.name,
            self.weight
        )
    }
}

/// The CARP members for `engine::carp::Array::new`: every parent's name and
/// weight, in the same order.
pub fn members(parents: &[Parent]) -> Vec<Member<'_>> {
    parents.iter().map(|p| Member { name: &p.name, weight: p.weight }).collect()
}

/// The key the front end hashes for a request target: `http://localhost` +
/// path?query (from `defaultsite=localhost`, the default port left out).
pub fn key(target: &str) -> String {
    format!("http://localhost{target}")
}

/// `url` as Squid writes it in an access log (`%ru`): bytes ≥ 0x80, control
/// characters and spaces as `%XX` (upper-case hex), everything else as it is.
pub fn escaped_for_log(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for &b in url.as_bytes() {
        if b <= b' ' || b >= 0x7f {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// One request as the front end's access log has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Squid's hierarchy code: `CARP` when the array chose the parent.
    pub hierarchy: String,
    /// The parent's CARP name (`-` when none was used).
    pub parent: String,
    /// The status sent to the client.
    pub status: u16,
    /// The URL as the client asked for it, query included, escaped for
    /// the log (`escaped_for_log`).
    pub url: String,
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A Squid CARP front end, stopped on Drop.
pub struct CarpFront {
    addr: SocketAddr,
    /// Its visible_hostname.
    name: String,
    dir: PathBuf,
    conf: PathBuf,
    service: String,
    parents: Vec<Parent>,
    proc: Option<Proc>,
}

impl CarpFront {
    /// Write the configuration for `parents` into `dir` (created if
    /// missing), start Squid accelerating on `addr` (cache manager on
    /// `addr`'s port + 1) and wait until it accepts requests and calls
    /// every parent up; panics with its log if it does not.
    pub fn start(dir: &Path, addr: SocketAddr, parents: &[Parent]) -> CarpFront {
        CarpFront::start_with(dir, addr, parents, "")
    }

    /// Like `start`, with `extra_conf` appended to the front end's lines.
    pub fn start_with(dir: &Path, addr: SocketAddr, parents: &[Parent], extra_conf: &str) -> CarpFront {
        let mut body = front_conf(addr, parents);
        if !extra_conf.is_empty() {
            body.push_str("# ---- extra lines (CarpFront::start_with) ----\n");
            body.push_str(extra_conf);
            body.push('\n');
        }
        CarpFront::start_with_conf(dir, addr, parents, &body)
    }

    /// Run the front end configuration `body` (e.g. `shipped_conf`), which
    /// accelerates on `addr` and names `parents` in its `cache_peer` lines,
    /// with the harness's lines around it (`harness_conf`); wait as `start`
    /// does.
    pub fn start_with_conf(dir: &Path, addr: SocketAddr, parents: &[Parent], body: &str) -> CarpFront {
        assert!(!parents.is_empty(), "a CARP front end needs at least one parent");
        let name = body
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("visible_hostname "))
            .unwrap_or_else(|| panic!("the front end configuration has no visible_hostname:\n{body}"))
            .trim()
            .to_owned();
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        set_mode(dir, 0o755);
        give_to(dir, SQUID_USER);
        let conf = dir.join("squid.conf");
        std::fs::write(&conf, harness_conf(dir, addr, body))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        // Own service name: Squid names its /dev/shm segments after it.
        let service = format!("carp{}i{}", std::process::id(), INSTANCE.fetch_add(1, Ordering::SeqCst));
        let mut cmd = Command::new(SQUID_BIN);
        cmd.arg("-N").arg("-n").arg(&service).arg("-f").arg(&conf);
        let proc = Proc::spawn(&format!("carp front {addr}"), &mut cmd, &dir.join("squid-run"));
        let front = CarpFront {
            addr,
            name,
            dir: dir.to_path_buf(),
            conf,
            service,
            parents: parents.to_vec(),
            proc: Some(proc),
        };
        front.wait_ready();
        front
    }

    fn wait_ready(&self) {
        let ready = poll_until(START_TIMEOUT, || {
            if !self.is_running() {
                return Some(false);
            }
            let ports = tcp_accepts(self.addr) && tcp_accepts(self.mgr_addr());
            let up = ports && self.parents_up().is_some_and(|up| self.parents.iter().all(|p| up.contains(&p.name)));
            up.then_some(true)
        });
        match ready {
            Some(true) => {}
            Some(false) => panic!(
                "CARP front end {} exited during start-up; {}:\n{}\n{}",
                self.addr,
                self.cache_log_path().display(),
                tail(&self.cache_log_path(), 30),
                read_lossy(&self.dir.join("squid-run.stderr"))
            ),
            None => panic!(
                "CARP front end {} not ready with every parent up after {START_TIMEOUT:?}; server_list:\n{}\n{}:\n{}",
                self.addr,
                self.mgr("server_list").unwrap_or_default(),
                self.cache_log_path().display(),
                tail(&self.cache_log_path(), 30)
            ),
        }
    }

    /// The accelerator's address, where requests go.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The forward-proxy port that serves the cache manager.
    pub fn mgr_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr.ip(), self.addr.port() + 1)
    }

    /// Its `visible_hostname`: the name in its own `X-Cache` and in cache
    /// manager URLs.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn parents(&self) -> &[Parent] {
        &self.parents
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.is_running())
    }

    /// A cache manager report, e.g. "carp" or "server_list"; `None` unless
    /// Squid answers it with 200.
    pub fn mgr(&self, action: &str) -> Option<String> {
        let host = format!("{}:{}", self.name, self.mgr_addr().port());
        let url = format!("http://{host}/squid-internal-mgr/{action}");
        let r = http::request(self.mgr_addr(), "GET", &url, &[("Host", &host)]).ok()?;
        (r.status == 200).then(|| r.body_text())
    }

    /// The names of the parents `server_list` reports "Status : Up".
    pub fn parents_up(&self) -> Option<Vec<String>> {
        self.mgr("server_list").map(|list| up_in_server_list(&list))
    }

    /// The cache manager's `carp` report: member name → (hash in hex,
    /// load multiplier with 6 decimals), as Squid computed them.
    pub fn carp_report(&self) -> BTreeMap<String, (String, String)> {
        let report = self.mgr("carp").expect("cache manager carp report");
        report
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 5).then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
            })
            .collect()
    }

    /// GET `target` (path?query) from the front end.
    pub fn get(&self, target: &str) -> Response {
        http::get(self.addr, target)
    }

    /// GET `target` through the front end and return the parent it went
    /// to, read from the response: the parents are caches that add `X-Cache:
    /// … from NAME` (`Parent::cache_name`), and the front end adds its own
    /// after theirs. Panics unless the response is a 200 with exactly one
    /// parent's X-Cache.
    pub fn forwarded_to(&self, target: &str) -> &Parent {
        let r = self.get(target);
        assert_eq!(r.status, 200, "GET {target} through the CARP front end: {r:?}");
        let front = format!(" from {}", self.name);
        let theirs: Vec<&str> = r.headers_named("X-Cache").filter(|v| !v.ends_with(&front)).collect();
        assert_eq!(theirs.len(), 1, "GET {target}: exactly one parent's X-Cache expected: {r:?}");
        let name = theirs[0].rsplit(" from ").next().unwrap_or("").trim();
        self.parents
            .iter()
            .find(|p| p.cache_name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("GET {target}: X-Cache names {name:?}, no parent of this front end: {r:?}"))
    }

    /// GET `target` through the front end and return the parent it went
    /// to, when the parents are `origins` (`Parent::origin`): the one
    /// origin whose count of requests for `target` grew, by one, and whose
    /// `X-Origin` the response carries. Requests must not run concurrently
    /// with this one for the same target.
    pub fn forwarded_to_origin(&self, target: &str, origins: &[Origin]) -> &Parent {
        let before: Vec<usize> = origins.iter().map(|o| o.requests(target)).collect();
        let r = self.get(target);
        assert_eq!(r.status, 200, "GET {target} through the CARP front end: {r:?}");
        let grew: Vec<usize> = (0..origins.len()).filter(|&i| origins[i].requests(target) != before[i]).collect();
        assert_eq!(grew.len(), 1, "GET {target}: exactly one origin must have been asked, got {grew:?}");
        let origin = &origins[grew[0]];
        assert_eq!(origin.requests(target), before[grew[0]] + 1, "GET {target}: asked more than once");
        assert_eq!(r.x_origin(), Some(origin.addr().ip().to_string().as_str()), "GET {target}");
        self.parents
            .iter()
            .find(|p| p.originserver && p.addr() == origin.addr())
            .unwrap_or_else(|| panic!("GET {target}: origin {} answered, no parent of this front end", origin.addr()))
    }

    /// Every request of the front end's access log so far, in order (Squid
    /// writes a line when a transaction ends: wait for it with
    /// `poll_until`).
    pub fn logged_forwards(&self) -> Vec<Forward> {
        read_lossy(&self.dir.join(FORWARDS_LOG))
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(4, ' ');
                let (h, p, s, u) = (f.next()?, f.next()?, f.next()?, f.next()?);
                Some(Forward { hierarchy: h.into(), parent: p.into(), status: s.parse().ok()?, url: u.into() })
            })
            .collect()
    }

    /// What Squid logged at `debug_options 39,3`: key → [(member name,
    /// score rounded)] in the order it evaluated the members. Squid 5.7
    /// writes "key=<k> name=<n> combined_hash=<h> score=<s>"; 6.x puts the
    /// name before " key=".
    pub fn logged_scores(&self) -> HashMap<String, Vec<(String, String)>> {
        parse_scores(&self.cache_log())
    }

    pub fn cache_log_path(&self) -> PathBuf {
        self.dir.join("cache.log")
    }

    pub fn cache_log(&self) -> String {
        read_lossy(&self.cache_log_path())
    }

    pub fn access_log_path(&self) -> PathBuf {
        self.dir.join("access.log")
    }

    pub fn access_log(&self) -> String {
        read_lossy(&self.access_log_path())
    }

    /// SIGTERM, wait (SIGKILL after STOP_TIMEOUT), and remove what a killed
    /// Squid leaves in /dev/shm. Also done on Drop.
    pub fn stop(&mut self) {
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

impl Drop for CarpFront {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The front end's own lines for `start`: accelerator on `addr`, CARP over
/// `parents`, forward everything, store nothing (for `harness_conf`, whose
/// `tester` acl it uses).
pub fn front_conf(addr: SocketAddr, parents: &[Parent]) -> String {
    let peers: String = parents.iter().map(|p| p.cache_peer_line() + "\n").collect();
    format!(
        "# CARP front end written by tests/support/carp_front.rs\n\
         http_port {ip}:{port} accel defaultsite=localhost no-vhost\n\
         visible_hostname {FRONT_NAME}\n\
         {peers}\
         never_direct allow all\n\
         # forward every request, so each one shows the parent chosen\n\
         cache deny all\n\
         acl accelerated dstdomain localhost\n\
         http_access allow tester accelerated\n\
         http_access deny all\n",
        ip = addr.ip(),
        port = addr.port(),
    )
}

/// `conf/squid-carp-frontend.conf` on loopback, for `start_with_conf`: its
/// caches 192.168.0.1-3 become the harness's 127.0.<net>.2-4
/// (`httpd::substitute_hosts`, also in their names), and `http_port 80`
/// becomes `addr`. Nothing else changes.
pub fn shipped_conf(net: u8, addr: SocketAddr) -> String {
    let text = substitute_hosts(&read_conf_file("squid-carp-frontend.conf"), net);
    let port = "\nhttp_port 80 ";
    assert!(text.contains(port), "conf/squid-carp-frontend.conf no longer has {port:?}");
    text.replace(port, &format!("\nhttp_port {addr} "))
}

/// The squid.conf the harness runs: `body` (a front end's own lines, see
/// `front_conf` and `shipped_conf`) with, before it, the cache manager's
/// port (the first port: Squid answers cache manager requests only on it)
/// and access to it for local clients, and after it the instance's files
/// and what the harness reads (forwards log, 39,3 scores).
pub fn harness_conf(dir: &Path, addr: SocketAddr, body: &str) -> String {
    format!(
        "# ---- added by tests/support/carp_front.rs: cache manager ----\n\
         http_port {ip}:{mgr_port}\n\
         acl tester src 127.0.0.0/8 ::1\n\
         http_access allow tester manager\n\
         # ---- the front end ----\n\
         {body}\n\
         # ---- added by tests/support/carp_front.rs: this instance ----\n\
         {instance}\
         # a fresh connection per request: no idle-connection races to retry elsewhere\n\
         server_persistent_connections off\n\
         # per request: hierarchy code, parent name, status, URL with its query\n\
         strip_query_terms off\n\
         logformat carpfront %Sh %<A %>Hs %ru\n\
         access_log stdio:{d}/{FORWARDS_LOG} carpfront\n\
         # 39,3: one line per member per request with the key, combined hash and score\n\
         debug_options ALL,1 39,3\n",
        ip = addr.ip(),
        mgr_port = addr.port() + 1,
        instance = instance_conf(dir),
        d = dir.display(),
    )
}

/// The names `server_list` reports with "Status : Up".
fn up_in_server_list(server_list: &str) -> Vec<String> {
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
    up
}

fn parse_scores(cache_log: &str) -> HashMap<String, Vec<(String, String)>> {
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
