//! Integration-test harness: origins, Squid accelerators and a portal httpd
//! on loopback, every process a child owned by the test and stopped on Drop.
//!
//! Addressing for a network number `net` (tests in one binary pick different
//! numbers and run in parallel):
//!   portal httpd          127.0.<net>.1:8080
//!   application hosts     127.0.<net>.2, .3, .4
//!     origin              <host>:8001
//!     Squid accelerator   <host>:3128 (HTTP), <host>:3130 (ICP), visible_hostname squid<last octet>
//!
//! Use from a test file or example with `mod support;` /
//! `#[path = "../tests/support/mod.rs"] mod support;`.
#![allow(dead_code)]

pub mod balancer;
pub mod carp_front;
pub mod hostile;
pub mod html;
pub mod http;
pub mod httpd;
pub mod load;
pub mod netns;
pub mod node;
pub mod origin;
pub mod responder;
pub mod squid;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

// Re-exports for test files; a given test or example uses only some.
#[allow(unused_imports)]
pub use http::Response;
#[allow(unused_imports)]
pub use httpd::{Httpd, HttpdOptions, Mpm};
#[allow(unused_imports)]
pub use origin::Origin;
#[allow(unused_imports)]
pub use squid::{Opcode, Squid};

// ---------------------------------------------------------------- addresses

pub const PORTAL_PORT: u16 = 8080;
pub const ORIGIN_PORT: u16 = 8001;
pub const SQUID_HTTP_PORT: u16 = 3128;
pub const SQUID_ICP_PORT: u16 = 3130;

/// 127.0.<net>.1, where the portal httpd listens.
pub fn portal_ip(net: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, 1)
}

/// The three application hosts 127.0.<net>.2, .3, .4.
pub fn host_ips(net: u8) -> [Ipv4Addr; 3] {
    [2, 3, 4].map(|last| Ipv4Addr::new(127, 0, net, last))
}

/// A file in the crate's `conf/` directory.
pub fn conf_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf").join(name)
}

pub fn read_conf_file(name: &str) -> String {
    let path = conf_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---------------------------------------------------------------- temp dirs

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, unique by pid + counter.
/// Removed on Drop unless `KEEP_TEST_DIRS=1` is set or the thread is
/// panicking (so the logs named in a failure message are still there).
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(label: &str) -> TestDir {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("mod_icpquery-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        set_mode(&path, 0o755);
        eprintln!("test dir: {}", path.display());
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var("KEEP_TEST_DIRS").is_ok_and(|v| v == "1") || std::thread::panicking() {
            eprintln!("keeping test dir {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------- small fs helpers

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// uid/gid of a system user, e.g. "proxy" or "www-data".
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let cname = std::ffi::CString::new(name).ok()?;
    // getpwnam is not thread-safe; copy the two fields out at once.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

/// When running as root, give `path` to `user` (the account a server drops
/// to), so it can write its logs there. A no-op otherwise.
pub fn give_to(path: &Path, user: &str) {
    if !is_root() {
        return;
    }
    let (uid, gid) = user_ids(user).unwrap_or_else(|| panic!("system user {user} not found"));
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {user} {}: {e}", path.display()));
}

/// The file's contents, or "" when it does not exist (yet).
pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = read_lossy(path);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------- waiting

/// Poll `probe` until it yields `Some`, at most `timeout`. Returns `None` on
/// timeout. The pause between polls grows from 2 ms to 50 ms.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// True when a TCP connection to `addr` succeeds now.
/// Debian's Chromium, headless, with a profile of its own in `profile` and
/// nothing that would reach out to the network (this machine's is closed),
/// at `width`×`height`; the caller adds what to do (`--dump-dom`,
/// `--screenshot=…`) and the URL.
pub fn headless_chromium(profile: &Path, width: u32, height: u32) -> Command {
    let mut chromium = Command::new("chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"));
    chromium
}

pub fn tcp_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

// ---------------------------------------------------------------- child processes

/// Process groups of the servers this process started, for the signal
/// handler below: on SIGINT/SIGTERM/SIGHUP (Ctrl-C during a test or the demo)
/// they get SIGTERM before this process dies, instead of lingering.
const MAX_CHILDREN: usize = 256;
static CHILD_GROUPS: [AtomicI32; MAX_CHILDREN] = [const { AtomicI32::new(0) }; MAX_CHILDREN];
static INSTALL_HANDLER: Once = Once::new();

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    // Only async-signal-safe calls: kill, signal, raise.
    for slot in CHILD_GROUPS.iter() {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
        }
    }
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn install_signal_handler() {
    INSTALL_HANDLER.call_once(|| unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, on_fatal_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    });
}

fn register_group(pgid: i32) {
    for slot in CHILD_GROUPS.iter() {
        if slot.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return;
        }
    }
}

fn unregister_group(pgid: i32) {
    for slot in CHILD_GROUPS.iter() {
        let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// A server process started by the harness, leader of its own process group
/// (so its helpers/children can be swept with it). Stopped on Drop.
pub struct Proc {
    name: String,
    child: Child,
    exit: Option<ExitStatus>,
}

impl Proc {
    /// Spawn `cmd` in a new process group, stdin from /dev/null, stdout and
    /// stderr to `<out_prefix>.stdout` / `.stderr`.
    pub fn spawn(name: &str, cmd: &mut Command, out_prefix: &Path) -> Proc {
        use std::os::unix::process::CommandExt;
        install_signal_handler();
        let out = std::fs::File::create(out_prefix.with_extension("stdout")).expect("create stdout file");
        let err = std::fs::File::create(out_prefix.with_extension("stderr")).expect("create stderr file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        register_group(child.id() as i32);
        Proc { name: name.to_string(), child, exit: None }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Has the process exited? Does not reap it (waitid WNOWAIT), so its
    /// process group stays valid for a final sweep; works through `&self`.
    pub fn has_exited(&self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // rc == 0 and si_pid == 0: still running.
        rc != 0 || unsafe { info.si_pid() } != 0
    }

    pub fn is_running(&self) -> bool {
        !self.has_exited()
    }

    /// Send `sig` to the leader only.
    pub fn signal(&self, sig: libc::c_int) {
        if !self.has_exited() {
            unsafe { libc::kill(self.pid(), sig) };
        }
    }

    /// Wait until the leader exits, at most `timeout`. True if it did.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        poll_until(timeout, || self.has_exited().then_some(())).is_some()
    }

    /// Reap the leader, first killing whatever is left in its process group
    /// (the leader's zombie keeps the group id from being reused meanwhile).
    fn reap(&mut self) -> ExitStatus {
        if let Some(st) = self.exit {
            return st;
        }
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let st = self.child.wait().expect("wait for child");
        unregister_group(self.pid());
        self.exit = Some(st);
        st
    }

    /// Send SIGTERM without waiting; finish with `finish_stop`.
    pub fn begin_stop(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Wait for the exit at most `timeout`, then SIGKILL the group; reap.
    pub fn finish_stop(&mut self, timeout: Duration) -> ExitStatus {
        if self.exit.is_none() && !self.wait_exit(timeout) {
            eprintln!("{}: no exit {:?} after SIGTERM, sending SIGKILL", self.name, timeout);
        }
        self.reap()
    }

    /// SIGTERM, wait at most `timeout`, then SIGKILL.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.begin_stop();
        self.finish_stop(timeout)
    }

    /// SIGKILL the whole group at once (a crash, as far as peers can tell).
    pub fn kill(&mut self) -> ExitStatus {
        self.reap()
    }

    /// The exit status if the process has exited (reaping it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.has_exited() {
            Some(self.reap())
        } else {
            None
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.stop(Duration::from_secs(10));
        }
    }
}

// ---------------------------------------------------------------- the cluster

/// How `Cluster::start_caches_with` / `start_with_options` set up the caches
/// and origins. The default is what `start_caches` / `start_with` do.
#[derive(Clone, Debug, Default)]
pub struct CacheOptions {
    /// Lines appended to each Squid's squid.conf, in the order of `host_ips`
    /// (e.g. `squid::memory_conf(2048, 64)`); "" adds nothing.
    pub squid_extra_conf: [String; 3],
    /// Pad every origin body to at least this many bytes (0: the usual
    /// one-line body).
    pub origin_body_len: usize,
}

/// The seed's topology on loopback: three origins, three Squid accelerators
/// and (unless started with `start_caches`) the portal httpd with the seed
/// configuration. Everything is stopped on Drop: httpd first, then the
/// Squids (in parallel), then the origins; the temp dir goes last.
pub struct Cluster {
    pub net: u8,
    httpd: Option<Httpd>,
    squids: Vec<Squid>,
    origins: Vec<Origin>,
    dir: TestDir,
}

impl Cluster {
    /// Origins, Squids and the portal httpd (module loaded, seed config).
    pub fn start(net: u8, mpm: Mpm) -> Cluster {
        let mut cluster = Cluster::start_caches(net);
        let opts = HttpdOptions::seed(cluster.dir.path(), net, mpm);
        cluster.httpd = Some(Httpd::start(cluster.dir.path(), opts));
        cluster
    }

    /// Like `start` with a portal configuration of your own (e.g. a variant
    /// of `httpd::seed_portal_conf`).
    pub fn start_with(net: u8, mpm: Mpm, portal_conf: impl FnOnce(&Path) -> String) -> Cluster {
        let mut cluster = Cluster::start_caches(net);
        let opts =
            HttpdOptions { net, mpm, portal_conf: portal_conf(cluster.dir.path()), module: httpd::module_path() };
        cluster.httpd = Some(Httpd::start(cluster.dir.path(), opts));
        cluster
    }

    /// Like `start_with`, with the caches and origins set up by `caches`
    /// (see `CacheOptions`).
    pub fn start_with_options(
        net: u8,
        mpm: Mpm,
        caches: &CacheOptions,
        portal_conf: impl FnOnce(&Path) -> String,
    ) -> Cluster {
        let mut cluster = Cluster::start_caches_with(net, caches);
        let opts =
            HttpdOptions { net, mpm, portal_conf: portal_conf(cluster.dir.path()), module: httpd::module_path() };
        cluster.httpd = Some(Httpd::start(cluster.dir.path(), opts));
        cluster
    }

    /// Start the portal httpd on a cluster started with `start_caches`
    /// (e.g. with `HttpdOptions::without_module`, see `balancer::start`).
    pub fn start_portal(&mut self, opts: HttpdOptions) -> &Httpd {
        assert!(self.httpd.is_none(), "this cluster's portal httpd is already started");
        assert_eq!(opts.net, self.net, "the portal's network number must be the cluster's");
        self.httpd.insert(Httpd::start(self.dir.path(), opts))
    }

    /// Like `start_portal`, with httpd.conf as `edit` makes it from the
    /// generated one (see `Httpd::start_edited`).
    pub fn start_portal_edited(&mut self, opts: HttpdOptions, edit: impl FnOnce(String) -> String) -> &Httpd {
        assert!(self.httpd.is_none(), "this cluster's portal httpd is already started");
        assert_eq!(opts.net, self.net, "the portal's network number must be the cluster's");
        self.httpd.insert(Httpd::start_edited(self.dir.path(), opts, edit))
    }

    /// Origins and Squids only, no portal (needs no module).
    pub fn start_caches(net: u8) -> Cluster {
        Cluster::start_caches_with(net, &CacheOptions::default())
    }

    /// Like `start_caches`, with the caches and origins set up by `caches`.
    pub fn start_caches_with(net: u8, caches: &CacheOptions) -> Cluster {
        let dir = TestDir::new(&format!("net{net}"));
        let origins: Vec<Origin> = host_ips(net)
            .iter()
            .map(|ip| Origin::start_with_body_len(SocketAddr::from((*ip, ORIGIN_PORT)), caches.origin_body_len))
            .collect();
        // Spawn all three, then wait for each: start-up overlaps.
        let mut squids: Vec<Squid> = host_ips(net)
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let dir = dir.join(format!("squid{}", ip.octets()[3]));
                Squid::spawn_with(&dir, *ip, ORIGIN_PORT, &caches.squid_extra_conf[i])
            })
            .collect();
        for s in squids.iter_mut() {
            s.wait_ready();
        }
        Cluster { net, httpd: None, squids, origins, dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn portal_addr(&self) -> SocketAddr {
        SocketAddr::from((portal_ip(self.net), PORTAL_PORT))
    }

    pub fn hosts(&self) -> [Ipv4Addr; 3] {
        host_ips(self.net)
    }

    pub fn httpd(&self) -> &Httpd {
        self.httpd.as_ref().expect("this cluster was started without the portal httpd")
    }

    pub fn httpd_mut(&mut self) -> &mut Httpd {
        self.httpd.as_mut().expect("this cluster was started without the portal httpd")
    }

    pub fn squids(&self) -> &[Squid] {
        &self.squids
    }

    pub fn squids_mut(&mut self) -> &mut [Squid] {
        &mut self.squids
    }

    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// The Squid on application host `ip` (127.0.<net>.2/3/4).
    pub fn cache_for(&self, ip: Ipv4Addr) -> &Squid {
        self.squids.iter().find(|s| s.host() == ip).unwrap_or_else(|| panic!("no Squid on {ip}"))
    }

    pub fn cache_for_mut(&mut self, ip: Ipv4Addr) -> &mut Squid {
        self.squids.iter_mut().find(|s| s.host() == ip).unwrap_or_else(|| panic!("no Squid on {ip}"))
    }

    /// The Squid whose visible_hostname is `name` ("squid3").
    pub fn cache_named(&self, name: &str) -> &Squid {
        self.squids.iter().find(|s| s.name() == name).unwrap_or_else(|| panic!("no Squid named {name}"))
    }

    pub fn origin_for(&self, ip: Ipv4Addr) -> &Origin {
        self.origins
            .iter()
            .find(|o| o.addr().ip() == std::net::IpAddr::V4(ip))
            .unwrap_or_else(|| panic!("no origin on {ip}"))
    }

    /// GET `path_and_query` from the portal.
    pub fn get(&self, path_and_query: &str) -> Response {
        http::get(self.portal_addr(), path_and_query)
    }

    /// Requests all origins together have answered.
    pub fn origin_total(&self) -> usize {
        self.origins.iter().map(|o| o.total()).sum()
    }

    /// Stop every Squid at once (SIGTERM to all, then wait for each).
    pub fn stop_all_squids(&mut self) {
        for s in self.squids.iter() {
            s.begin_stop();
        }
        for s in self.squids.iter_mut() {
            s.finish_stop();
        }
    }

    /// Stop everything now (also done on Drop).
    pub fn shutdown(&mut self) {
        if let Some(h) = self.httpd.as_mut() {
            h.stop();
        }
        self.stop_all_squids();
        self.origins.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Status-page `?auto` text (`Key: value` lines) into a map; every key once.
pub fn parse_auto(text: &str) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    for line in text.lines() {
        let (key, value) = line.split_once(": ").unwrap_or_else(|| panic!("not a Key: value line: {line:?}\n{text}"));
        assert!(map.insert(key.to_owned(), value.to_owned()).is_none(), "{key} twice:\n{text}");
    }
    map
}
