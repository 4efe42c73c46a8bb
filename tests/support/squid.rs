//! A Squid accelerator run from `conf/squid-accel.conf`, one per
//! application host: HTTP <host>:3128, ICP <host>:3130, memory-only cache,
//! `visible_hostname squid<last octet>`. `squid -N` runs in the foreground as
//! our child; when we are root Squid drops to its effective user (`proxy`),
//! so its directory is given to that user.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{give_to, poll_until, read_conf_file, read_lossy, set_mode, tail, tcp_accepts, Proc};
use super::{SQUID_HTTP_PORT, SQUID_ICP_PORT};

pub use mod_icpquery::icp::Opcode;
use mod_icpquery::icp::{encode_query, Message};

pub const SQUID_BIN: &str = "/usr/sbin/squid";
/// The user Squid switches to when started as root (Debian's build default).
pub const SQUID_USER: &str = "proxy";
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Squid takes about 2-3 s to exit even with `shutdown_lifetime 0`.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `icp_query` waits for a reply.
pub const ICP_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Squid {
    host: Ipv4Addr,
    origin_port: u16,
    dir: PathBuf,
    conf: PathBuf,
    proc: Option<Proc>,
    starts: u32,
    /// `squid -n`: Squid names its shared-memory segments after it
    /// (/dev/shm/<service>-cf__queues.shm, …) even without SMP workers, so
    /// instances sharing the default "squid" race on them and fail with
    /// "shm_open(/squid-cf__queues.shm): File exists".
    service: String,
}

impl Squid {
    /// Write the config into `dir` (created if missing) and start Squid;
    /// returns once it accepts HTTP and answers ICP.
    pub fn start(dir: &Path, host: Ipv4Addr, origin_port: u16) -> Squid {
        let mut s = Squid::spawn(dir, host, origin_port);
        s.wait_ready();
        s
    }

    /// Start without waiting; call `wait_ready` (lets several start at once).
    pub fn spawn(dir: &Path, host: Ipv4Addr, origin_port: u16) -> Squid {
        Squid::spawn_with(dir, host, origin_port, "")
    }

    /// Like `spawn`, with `extra_conf` appended to the generated squid.conf
    /// (a later line wins over the base file's, e.g. `cache_mem 2 MB`; see
    /// `memory_conf` and `ufs_conf`). `{dir}` in it stands for this
    /// instance's directory. When the configuration has a `cache_dir`, its
    /// swap directories are created first (`squid -z`).
    pub fn spawn_with(dir: &Path, host: Ipv4Addr, origin_port: u16, extra_conf: &str) -> Squid {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        set_mode(dir, 0o755);
        give_to(dir, SQUID_USER);
        let conf = dir.join("squid.conf");
        let mut text = squid_conf(dir, host, origin_port);
        if !extra_conf.is_empty() {
            text.push_str("\n# ---- extra lines for this instance (Squid::spawn_with) ----\n");
            text.push_str(&extra_conf.replace("{dir}", &dir.display().to_string()));
            text.push('\n');
        }
        let has_cache_dir = text.lines().any(|l| l.trim_start().starts_with("cache_dir "));
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let n = INSTANCE.fetch_add(1, Ordering::SeqCst);
        let service = format!("icpq{}i{n}", std::process::id());
        let mut s = Squid { host, origin_port, dir: dir.to_path_buf(), conf, proc: None, starts: 0, service };
        if has_cache_dir {
            s.create_swap_dirs();
        }
        s.spawn_process();
        s
    }

    /// `squid -z`: create the configuration's cache_dir swap directories
    /// (Squid refuses to start without them); returns when they exist.
    fn create_swap_dirs(&self) {
        let out = Command::new(SQUID_BIN)
            .arg("-z")
            .arg("-N")
            .arg("-n")
            .arg(&self.service)
            .arg("-f")
            .arg(&self.conf)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run {SQUID_BIN} -z: {e}", self.name()));
        assert!(
            out.status.success(),
            "{}: squid -z failed ({}); read {}:\n{}{}",
            self.name(),
            out.status,
            self.cache_log_path().display(),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.cache_log_path(), 30)
        );
    }

    fn spawn_process(&mut self) {
        assert!(self.proc.is_none(), "{} is already running", self.name());
        self.starts += 1;
        let mut cmd = Command::new(SQUID_BIN);
        cmd.arg("-N").arg("-n").arg(&self.service).arg("-f").arg(&self.conf);
        let out = self.dir.join(format!("squid-run{}", self.starts));
        self.proc = Some(Proc::spawn(&self.name(), &mut cmd, &out));
    }

    /// Wait until the HTTP port accepts and an ICP query gets a reply.
    pub fn wait_ready(&mut self) {
        let (http, icp) = (self.http_addr(), self.icp_addr());
        let t0 = Instant::now();
        let ready = poll_until(START_TIMEOUT, || {
            if !self.proc.as_ref().is_some_and(|p| p.is_running()) {
                return Some(false);
            }
            (tcp_accepts(http)
                && icp_query_to(icp, "http://localhost/harness-ready", Duration::from_millis(100)).is_some())
            .then_some(true)
        });
        match ready {
            Some(true) => eprintln!("{} ready in {:?}", self.name(), t0.elapsed()),
            Some(false) => {
                let st = self.proc.as_mut().and_then(|p| p.exit_status());
                panic!(
                    "{} exited during start-up ({st:?}); read {} and {}.stderr:\n{}\n{}",
                    self.name(),
                    self.cache_log_path().display(),
                    self.dir.join(format!("squid-run{}", self.starts)).display(),
                    tail(&self.cache_log_path(), 30),
                    read_lossy(&self.dir.join(format!("squid-run{}.stderr", self.starts))),
                )
            }
            None => panic!(
                "{} not ready after {START_TIMEOUT:?} (HTTP {http} accepting: {}, ICP {icp} answering: {}); read {}:\n{}",
                self.name(),
                tcp_accepts(http),
                icp_query_to(icp, "http://localhost/harness-ready", Duration::from_millis(100)).is_some(),
                self.cache_log_path().display(),
                tail(&self.cache_log_path(), 30),
            ),
        }
    }

    /// `squid2` for 127.0.x.2: the visible_hostname in `X-Cache`.
    pub fn name(&self) -> String {
        format!("squid{}", self.host.octets()[3])
    }

    pub fn host(&self) -> Ipv4Addr {
        self.host
    }

    pub fn origin_port(&self) -> u16 {
        self.origin_port
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((self.host, SQUID_HTTP_PORT))
    }

    pub fn icp_addr(&self) -> SocketAddr {
        SocketAddr::from((self.host, SQUID_ICP_PORT))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    pub fn cache_log_path(&self) -> PathBuf {
        self.dir.join("cache.log")
    }

    pub fn access_log_path(&self) -> PathBuf {
        self.dir.join("access.log")
    }

    pub fn cache_log(&self) -> String {
        read_lossy(&self.cache_log_path())
    }

    pub fn access_log(&self) -> String {
        read_lossy(&self.access_log_path())
    }

    pub fn pid(&self) -> Option<i32> {
        self.proc.as_ref().map(|p| p.pid())
    }

    /// The `squid -n` service name, unique to this instance of this test
    /// process: every /dev/shm segment this Squid makes is named
    /// `<service>-…`.
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.is_running())
    }

    /// SIGTERM and wait for the exit (SIGKILL after STOP_TIMEOUT). Squid
    /// closes its ports at once but takes ~2 s to exit.
    pub fn stop(&mut self) {
        self.begin_stop();
        self.finish_stop();
    }

    /// Send SIGTERM only (see `finish_stop`).
    pub fn begin_stop(&self) {
        if let Some(p) = self.proc.as_ref() {
            p.begin_stop();
        }
    }

    pub fn finish_stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.finish_stop(STOP_TIMEOUT);
            self.remove_shm();
        }
    }

    /// SIGKILL: a crash, immediately.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
            self.remove_shm();
        }
    }

    /// The segments a killed Squid leaves in /dev/shm (a clean exit removes
    /// them itself). Only names with this instance's service prefix.
    fn remove_shm(&self) {
        let prefix = format!("{}-", self.service);
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".shm") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Start the stopped Squid again with the same configuration (empty
    /// cache: it is memory-only) and wait until it is ready.
    pub fn start_again(&mut self) {
        if self.proc.as_ref().is_some_and(|p| p.has_exited()) {
            self.finish_stop();
        }
        self.spawn_process();
        self.wait_ready();
    }

    /// Ask this Squid over ICP whether it holds `url`; `None` if no reply
    /// came within ICP_TIMEOUT.
    pub fn icp_query(&self, url: &str) -> Option<Opcode> {
        icp_query_to(self.icp_addr(), url, ICP_TIMEOUT)
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The configuration for one instance: `conf/squid-accel.conf` with the
/// addresses substituted, plus the per-instance lines.
pub fn squid_conf(dir: &Path, host: Ipv4Addr, origin_port: u16) -> String {
    let base = read_conf_file("squid-accel.conf");
    let mut http_port = false;
    let mut peer = false;
    let mut icp_port = false;
    let mut out = String::new();
    for line in base.lines() {
        let mut line = line.to_string();
        if let Some(rest) = line.strip_prefix("http_port 3128") {
            line = format!("http_port {host}:{SQUID_HTTP_PORT}{rest}");
            http_port = true;
        } else if let Some(rest) = line.strip_prefix("cache_peer 127.0.0.1 parent 8001") {
            line = format!("cache_peer {host} parent {origin_port}{rest}");
            peer = true;
        } else if line.trim() == "icp_port 3130" {
            line = format!("icp_port {SQUID_ICP_PORT}\nudp_incoming_address {host}");
            icp_port = true;
        }
        out.push_str(&line);
        out.push('\n');
    }
    assert!(
        http_port && peer && icp_port,
        "conf/squid-accel.conf no longer has the lines the harness rewrites \
         (\"http_port 3128\", \"cache_peer 127.0.0.1 parent 8001\", \"icp_port 3130\")"
    );
    out.push_str(&format!(
        "\n# ---- added by tests/support/squid.rs for this instance ----\n\
         visible_hostname squid{last}\n{instance}\
         # memory-only cache: no cache_dir\n",
        last = host.octets()[3],
        instance = instance_conf(dir),
    ));
    out
}

/// The lines every test Squid needs to run in its own directory: pid file,
/// logs, no pinger or netdb, a fast shutdown, and no DNS.
pub fn instance_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "pid_filename {d}/squid.pid\n\
         access_log stdio:{d}/access.log\n\
         cache_log {d}/cache.log\n\
         cache_store_log none\n\
         coredump_dir {d}\n\
         netdb_filename none\n\
         pinger_enable off\n\
         shutdown_lifetime 0 seconds\n\
         # the sandbox has no DNS; fail lookups at once instead of timing out\n\
         dns_nameservers 127.0.0.1\n"
    )
}

/// squid.conf lines for a memory cache of `cache_mem_kib` KiB that keeps
/// objects up to `max_object_kib` KiB in memory (for `Squid::spawn_with`).
pub fn memory_conf(cache_mem_kib: u64, max_object_kib: u64) -> String {
    format!("cache_mem {cache_mem_kib} KB\nmaximum_object_size_in_memory {max_object_kib} KB\n")
}

/// squid.conf lines for a disk cache instead of the memory cache: a `ufs`
/// cache_dir of `mbytes` MB in the instance's directory (LRU replacement;
/// once a second Squid trims it to `cache_swap_low`, here `low_pct` percent,
/// with `cache_swap_high` one point above) and no memory cache
/// (`cache_mem 0`). For `Squid::spawn_with`, which runs `squid -z` for it.
pub fn ufs_conf(mbytes: u64, low_pct: u32) -> String {
    format!(
        "cache_mem 0 MB\n\
         cache_dir ufs {{dir}}/cache {mbytes} 1 16\n\
         cache_replacement_policy lru\n\
         cache_swap_low {low_pct}\n\
         cache_swap_high {}\n",
        low_pct + 1
    )
}

static REQNUM: AtomicU32 = AtomicU32::new(1);
static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// Send one ICP_OP_QUERY for `url` to `to` and wait for the reply with the
/// same request number, at most `timeout`. `None` when nothing answers (or
/// the port is closed: the ICMP error ends the wait at once).
pub fn icp_query_to(to: SocketAddr, url: &str, timeout: Duration) -> Option<Opcode> {
    let reqnum = REQNUM.fetch_add(1, Ordering::SeqCst) ^ (std::process::id() << 16);
    let mut packet = Vec::new();
    encode_query(reqnum, url.as_bytes(), &mut packet).expect("encode ICP query");
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind UDP socket");
    // Connected: only replies from `to`, and ICMP port-unreachable shows up
    // as ECONNREFUSED.
    sock.connect(to).expect("connect UDP socket");
    if sock.send(&packet).is_err() {
        return None;
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(_) => return None, // timeout, or refused
        };
        if let Ok(msg) = Message::decode(&buf[..n]) {
            if msg.request_number == reqnum {
                return Some(msg.opcode);
            }
        }
    }
}
