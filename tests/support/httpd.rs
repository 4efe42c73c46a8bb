//! The portal: the system httpd (`apache2 -f <conf> -DFOREGROUND`) with a
//! generated main configuration and, appended to it, a portal configuration
//! (normally the seed's `conf/httpd-portal.conf`, see `seed_portal_conf`).
//!
//! Layout under the directory given to `Httpd::start` (the ServerRoot):
//!   httpd.conf, htdocs/index.html, logs/ (error.log, access.log,
//!   icpquery.log), run/ (pid, mutexes, shared memory), proxies.txt

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::http::{self, Response};
use super::{give_to, is_root, poll_until, portal_ip, read_conf_file, read_lossy, set_mode, tail, tcp_accepts};
use super::{host_ips, Proc, TestDir, PORTAL_PORT};

pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The account httpd's children run as when we are root.
pub const HTTPD_USER: &str = "www-data";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Event, Mpm::Worker, Mpm::Prefork];

    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }

    /// Threads serving requests in one child process (`ThreadsPerChild`).
    pub fn threads_per_child(self) -> i64 {
        match self {
            Mpm::Event | Mpm::Worker => 32,
            Mpm::Prefork => 1,
        }
    }

    /// Small, but at least 32 requests in flight at once.
    fn settings(self) -> &'static str {
        match self {
            Mpm::Event | Mpm::Worker => {
                "StartServers 2\nServerLimit 4\nThreadLimit 32\nThreadsPerChild 32\n\
                 MinSpareThreads 32\nMaxSpareThreads 128\nMaxRequestWorkers 128\nMaxConnectionsPerChild 0\n"
            }
            Mpm::Prefork => {
                "StartServers 40\nMinSpareServers 8\nMaxSpareServers 64\nServerLimit 64\n\
                 MaxRequestWorkers 64\nMaxConnectionsPerChild 0\n"
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpdOptions {
    pub net: u8,
    pub mpm: Mpm,
    /// Appended verbatim after the generated main configuration; loads the
    /// module itself (`LoadModule icpquery_module <module>`).
    pub portal_conf: String,
    /// The module under test (checked to exist before httpd starts). An
    /// empty path (`HttpdOptions::without_module`) means the portal
    /// configuration does not load the module: nothing is checked, and
    /// `module_path` (which wants a fresh release build) is never called.
    pub module: PathBuf,
}

impl HttpdOptions {
    /// The seed configuration for a portal whose ServerRoot is `dir`.
    pub fn seed(dir: &Path, net: u8, mpm: Mpm) -> HttpdOptions {
        let module = module_path();
        let portal_conf = seed_portal_conf(net, &module, &log_dir_for(dir), &proxies_path_for(dir));
        HttpdOptions { net, mpm, portal_conf, module }
    }

    /// A portal that does NOT load mod_icpquery (e.g. stock
    /// mod_proxy_balancer only, see `support::balancer`): `portal_conf` is
    /// appended as usual, `module` is left empty.
    pub fn without_module(net: u8, mpm: Mpm, portal_conf: String) -> HttpdOptions {
        HttpdOptions { net, mpm, portal_conf, module: PathBuf::new() }
    }

    /// Does this portal load the module under test (`module` not empty)?
    pub fn loads_module(&self) -> bool {
        !self.module.as_os_str().is_empty()
    }

    /// `LoadModule icpquery_module <module>`, for hand-written portal configs.
    pub fn load_module_line(&self) -> String {
        assert!(self.loads_module(), "these options were made without the module (HttpdOptions::without_module)");
        format!("LoadModule icpquery_module {}", self.module.display())
    }
}

pub fn log_dir_for(dir: &Path) -> PathBuf {
    dir.join("logs")
}

pub fn proxies_path_for(dir: &Path) -> PathBuf {
    dir.join("proxies.txt")
}

/// `conf/httpd-portal.conf` with ONLY these substitutions (and the same
/// address substitution in a copy of `conf/proxies.txt`, written to
/// `proxies_path`):
///   modules/mod_icpquery.so      -> `module_path`
///   192.168.0.1 / .2 / .3        -> 127.0.<net>.2 / .3 / .4
///   /var/log/httpd/              -> `log_dir`/
///   /etc/httpd/proxies.txt       -> `proxies_path`
pub fn seed_portal_conf(net: u8, module_path: &Path, log_dir: &Path, proxies_path: &Path) -> String {
    let conf = read_conf_file("httpd-portal.conf");
    for needle in ["modules/mod_icpquery.so", "192.168.0.1", "/var/log/httpd/", "/etc/httpd/proxies.txt"] {
        assert!(conf.contains(needle), "conf/httpd-portal.conf no longer contains {needle:?}");
    }
    let conf = substitute_hosts(&conf, net)
        .replace("modules/mod_icpquery.so", &module_path.display().to_string())
        .replace("/var/log/httpd/", &format!("{}/", log_dir.display()))
        .replace("/etc/httpd/proxies.txt", &proxies_path.display().to_string());
    let proxies = substitute_hosts(&read_conf_file("proxies.txt"), net);
    if let Some(parent) = proxies_path.parent() {
        std::fs::create_dir_all(parent).expect("create dir for proxies.txt");
    }
    std::fs::write(proxies_path, proxies).unwrap_or_else(|e| panic!("cannot write {}: {e}", proxies_path.display()));
    conf
}

/// The seed configuration with its 50 ms `ICPQueryTimeout` replaced by
/// `micros`. Tests of *which* cache a request reaches use a long timeout: a
/// lookup still ends as soon as every cache has answered, but a loaded
/// 2-core machine (several Squids and httpds per test binary) must never end
/// it before a live cache's reply, or the request is routed elsewhere for a
/// reason the test is not about.
pub fn with_timeout(seed_conf: &str, micros: u64) -> String {
    const SEED_TIMEOUT: &str = "ICPQueryTimeout                 50000";
    assert!(seed_conf.contains(SEED_TIMEOUT), "the seed's timeout line changed");
    seed_conf.replace(SEED_TIMEOUT, &format!("ICPQueryTimeout                 {micros}"))
}

/// 192.168.0.1/2/3 -> 127.0.<net>.2/3/4 (the result contains no "192.168.0.",
/// so the order of the replacements does not matter).
pub fn substitute_hosts(text: &str, net: u8) -> String {
    let hosts = host_ips(net);
    text.replace("192.168.0.1", &hosts[0].to_string())
        .replace("192.168.0.2", &hosts[1].to_string())
        .replace("192.168.0.3", &hosts[2].to_string())
}

fn apxs_query(var: &str) -> Option<String> {
    let out = Command::new("apxs").arg("-q").arg(var).output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// The httpd binary: `apxs -q SBINDIR`/`PROGNAME`, else /usr/sbin/apache2.
pub fn httpd_binary() -> PathBuf {
    match (apxs_query("SBINDIR"), apxs_query("PROGNAME")) {
        (Some(dir), Some(prog)) if Path::new(&dir).join(&prog).exists() => Path::new(&dir).join(prog),
        _ => PathBuf::from("/usr/sbin/apache2"),
    }
}

/// Where the system's modules are: `apxs -q LIBEXECDIR`, else Debian's path.
pub fn modules_dir() -> PathBuf {
    apxs_query("LIBEXECDIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/apache2/modules"))
}

/// The module under test: `$MOD_ICPQUERY_SO` if set, else the newest of
/// `target/<profile>/libmod_icpquery.so` next to the running test or example
/// (`target/<profile>/deps/…`, `target/<profile>/examples/…`) and
/// `target/release/libmod_icpquery.so` (`cargo test` builds only the rlib,
/// so a debug test run normally uses the release module).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MOD_ICPQUERY_SO") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "MOD_ICPQUERY_SO={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut candidates = Vec::new();
    if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
        candidates.push(profile_dir.join("libmod_icpquery.so"));
        if let Some(target) = profile_dir.parent() {
            candidates.push(target.join("release").join("libmod_icpquery.so"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libmod_icpquery.so"));
    let newest = candidates
        .iter()
        .filter_map(|c| Some((std::fs::metadata(c).ok()?.modified().ok()?, c)))
        .max_by_key(|(mtime, _)| *mtime);
    match newest {
        Some((built, c)) => {
            // `cargo test` rebuilds only the rlib: testing a stale module
            // would test old code.
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            if let Some(newer) = newest_file(&src).filter(|(changed, _)| *changed > built) {
                panic!("{} is older than {}: run cargo build --release", c.display(), newer.1.display());
            }
            c.canonicalize().unwrap_or_else(|_| c.clone())
        }
        None => panic!("build the module first: cargo build --release (looked for {candidates:?})"),
    }
}

/// The most recently modified file under `dir`.
fn newest_file(dir: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        // The command-line tool is not part of the module.
        if path.ends_with("bin") {
            continue;
        }
        let candidate = if path.is_dir() {
            newest_file(&path)
        } else {
            entry.metadata().ok().and_then(|m| m.modified().ok()).map(|t| (t, path))
        };
        if let Some(c) = candidate {
            if newest.as_ref().is_none_or(|n| c.0 > n.0) {
                newest = Some(c);
            }
        }
    }
    newest
}

/// The generated main configuration (everything but the portal part).
pub fn main_conf(dir: &Path, opts: &HttpdOptions) -> String {
    let d = dir.display();
    let m = modules_dir();
    let m = m.display();
    let ip = portal_ip(opts.net);
    let mpm = opts.mpm.name();
    let user = if is_root() { format!("User {HTTPD_USER}\nGroup {HTTPD_USER}\n") } else { String::new() };
    format!(
        r#"# generated by tests/support/httpd.rs
ServerRoot "{d}"
ServerName portal{net}.test:{PORTAL_PORT}
Listen {ip}:{PORTAL_PORT}
PidFile "{d}/run/httpd.pid"
DefaultRuntimeDir "{d}/run"
Mutex file:{d}/run default
ErrorLog "{d}/logs/error.log"
LogLevel warn
LogFormat "%h %t \"%r\" %>s %b %Dus X-Cache:\"%{{X-Cache}}o\" X-Origin:\"%{{X-Origin}}o\"" portal
CustomLog "{d}/logs/access.log" portal
{user}
LoadModule mpm_{mpm}_module {m}/mod_mpm_{mpm}.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule mime_module {m}/mod_mime.so
LoadModule dir_module {m}/mod_dir.so
LoadModule rewrite_module {m}/mod_rewrite.so
LoadModule slotmem_shm_module {m}/mod_slotmem_shm.so
LoadModule proxy_module {m}/mod_proxy.so
LoadModule proxy_http_module {m}/mod_proxy_http.so
LoadModule proxy_balancer_module {m}/mod_proxy_balancer.so
LoadModule lbmethod_byrequests_module {m}/mod_lbmethod_byrequests.so

{mpm_settings}
Timeout 30
KeepAlive On
TypesConfig /etc/mime.types
DocumentRoot "{d}/htdocs"
DirectoryIndex index.html
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{d}/htdocs">
    Require all granted
</Directory>

# ---- portal configuration ----
{portal}
"#,
        net = opts.net,
        mpm_settings = opts.mpm.settings(),
        portal = opts.portal_conf,
    )
}

/// Create the layout and write httpd.conf; returns its path.
fn prepare(dir: &Path, opts: &HttpdOptions) -> PathBuf {
    prepare_edited(dir, opts, |conf| conf)
}

/// Like `prepare`, with httpd.conf as `edit` makes it from the generated
/// one (`main_conf`).
fn prepare_edited(dir: &Path, opts: &HttpdOptions, edit: impl FnOnce(String) -> String) -> PathBuf {
    for sub in ["htdocs", "logs", "run"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        set_mode(&p, 0o755);
    }
    // The children (www-data) may open logs themselves (e.g. icpquery.log).
    give_to(&dir.join("logs"), HTTPD_USER);
    std::fs::write(dir.join("htdocs/index.html"), "<html><body>portal</body></html>\n").expect("write index.html");
    let conf = dir.join("httpd.conf");
    std::fs::write(&conf, edit(main_conf(dir, opts)))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
    conf
}

pub struct Httpd {
    dir: PathBuf,
    opts: HttpdOptions,
    conf: PathBuf,
    proc: Option<Proc>,
    starts: u32,
}

impl Httpd {
    /// Write the configuration into `dir` (the ServerRoot) and start httpd;
    /// returns once the portal accepts connections and the children run.
    pub fn start(dir: &Path, opts: HttpdOptions) -> Httpd {
        Httpd::start_edited(dir, opts, |conf| conf)
    }

    /// Like `start`, with httpd.conf as `edit` makes it from the generated
    /// one (`main_conf`): for tests of the main configuration itself, e.g.
    /// the module loaded before mod_proxy, or no mod_proxy at all. Restarts
    /// re-read the edited file.
    pub fn start_edited(dir: &Path, opts: HttpdOptions, edit: impl FnOnce(String) -> String) -> Httpd {
        assert!(
            !opts.loads_module() || opts.module.exists(),
            "build the module first: cargo build --release ({} missing)",
            opts.module.display()
        );
        let conf = prepare_edited(dir, &opts, edit);
        let mut h = Httpd { dir: dir.to_path_buf(), opts, conf, proc: None, starts: 0 };
        h.spawn_and_wait();
        h
    }

    /// `apache2 -t` on the configuration `opts` would get, in a scratch
    /// directory: (syntax ok, stderr).
    pub fn configtest(opts: &HttpdOptions) -> (bool, String) {
        Httpd::configtest_edited(opts, |conf| conf)
    }

    /// `configtest` on httpd.conf as `edit` makes it from the generated one
    /// (see `start_edited`).
    pub fn configtest_edited(opts: &HttpdOptions, edit: impl FnOnce(String) -> String) -> (bool, String) {
        let dir = TestDir::new("configtest");
        let conf = prepare_edited(dir.path(), opts, edit);
        let out = Command::new(httpd_binary())
            .arg("-t")
            .arg("-f")
            .arg(&conf)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", httpd_binary().display()));
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn spawn_and_wait(&mut self) {
        self.starts += 1;
        let mut cmd = Command::new(httpd_binary());
        cmd.arg("-f").arg(&self.conf).arg("-DFOREGROUND");
        let out = self.dir.join(format!("httpd-run{}", self.starts));
        let before = self.resumed_count();
        self.proc = Some(Proc::spawn("httpd", &mut cmd, &out));
        self.wait_ready(before, "start");
    }

    /// Ready: the listener accepts and the error log reports the children
    /// running ("resuming normal operations") one more time than `before`.
    fn wait_ready(&mut self, before: usize, what: &str) {
        let addr = self.addr();
        let t0 = Instant::now();
        let ready = poll_until(START_TIMEOUT, || {
            if !self.proc.as_ref().is_some_and(|p| p.is_running()) {
                return Some(false);
            }
            (self.resumed_count() > before && tcp_accepts(addr)).then_some(true)
        });
        let stderr = self.dir.join(format!("httpd-run{}.stderr", self.starts));
        match ready {
            Some(true) => eprintln!("httpd ({}) {what} ready in {:?}", self.opts.mpm.name(), t0.elapsed()),
            Some(false) => {
                let st = self.proc.take().and_then(|mut p| p.exit_status());
                panic!(
                    "httpd exited during {what} ({st:?}); read {} and {}:\n{}\n{}",
                    stderr.display(),
                    self.error_log_path().display(),
                    read_lossy(&stderr),
                    tail(&self.error_log_path(), 30)
                )
            }
            None => panic!(
                "httpd not ready after {START_TIMEOUT:?} ({what}; {addr} accepting: {}); read {}:\n{}",
                tcp_accepts(addr),
                self.error_log_path().display(),
                tail(&self.error_log_path(), 30)
            ),
        }
    }

    fn resumed_count(&self) -> usize {
        self.error_log().matches("resuming normal operations").count()
    }

    /// Graceful restart (SIGUSR1): mod_so unloads and reloads the module.
    /// Returns when the new generation reports ready.
    pub fn graceful_restart(&mut self) {
        self.signal_restart(libc::SIGUSR1, "graceful restart");
    }

    /// Restart (SIGHUP): children killed, configuration re-read.
    pub fn restart(&mut self) {
        self.signal_restart(libc::SIGHUP, "restart");
    }

    fn signal_restart(&mut self, sig: libc::c_int, what: &str) {
        let before = self.resumed_count();
        self.proc.as_ref().expect("httpd is not running").signal(sig);
        self.wait_ready(before, what);
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((portal_ip(self.opts.net), PORTAL_PORT))
    }

    pub fn options(&self) -> &HttpdOptions {
        &self.opts
    }

    /// GET from the portal.
    pub fn get(&self, path_and_query: &str) -> Response {
        http::get(self.addr(), path_and_query)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    pub fn log_dir(&self) -> PathBuf {
        log_dir_for(&self.dir)
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.log_dir().join("error.log")
    }

    pub fn access_log_path(&self) -> PathBuf {
        self.log_dir().join("access.log")
    }

    /// The module's own log (`ICPQueryLog` in the seed config).
    pub fn module_log_path(&self) -> PathBuf {
        self.log_dir().join("icpquery.log")
    }

    pub fn error_log(&self) -> String {
        read_lossy(&self.error_log_path())
    }

    pub fn access_log(&self) -> String {
        read_lossy(&self.access_log_path())
    }

    pub fn module_log(&self) -> String {
        read_lossy(&self.module_log_path())
    }

    pub fn pid(&self) -> Option<i32> {
        self.proc.as_ref().map(|p| p.pid())
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.is_running())
    }

    /// SIGTERM (the parent stops its children), wait, SIGKILL the group.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(STOP_TIMEOUT);
        }
    }

    /// Start again after `stop`, same configuration.
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "httpd is already running");
        self.spawn_and_wait();
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop();
    }
}
