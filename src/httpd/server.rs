//! Per-server configuration: what the directives said, merged for virtual
//! hosts, and settled once at startup into what lookups use.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::fmt;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use super::{ffi, guard, module::icpquery_module, pool_own};
use crate::engine::{carp, BindAddr, Cluster, Health, Peer, Timeout};
use crate::logfile::{LogFile, Sink};

/// `ICPQueryProbeInterval` when not set.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// One server's (or virtual host's) `ICPQuery*` directives. `None` means
/// "not set here": a virtual host then inherits the main server's value.
#[derive(Default)]
pub struct ServerConfig {
    pub mapper: Option<bool>,
    pub timeout: Option<Timeout>,
    pub dead_time: Option<Duration>,
    pub probe_interval: Option<Duration>,
    pub carp_variant: Option<carp::Variant>,
    pub log_target: Option<LogTarget>,
    pub log_level: Option<u8>,
    pub bind: Option<IpAddr>,
    pub mcast_hops: Option<u32>,
    /// A virtual host adds its peers to the main server's, as the original did.
    pub peers: Vec<Peer>,
    pub groups: Vec<SocketAddr>,
    /// `<ICPQueryGroup name>` blocks (main server only), in the order read:
    /// the order fixes which `icpquerymap:NAME` function serves each.
    pub cache_groups: Vec<CacheGroup>,
    /// Settled in post_config; read-only while requests run.
    pub settled: Option<Settled>,
}

/// Where `ICPQueryLog` writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogTarget {
    /// An absolute path (made ServerRoot-relative by the directive).
    File(PathBuf),
    /// The directive's value after its first `|`, as httpd's
    /// `ap_open_piped_log` takes it: `prog args` or `|prog args` run the
    /// program directly, `$command` runs it through the shell.
    Pipe(String),
}

impl fmt::Display for LogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogTarget::File(path) => write!(f, "{}", path.display()),
            LogTarget::Pipe(program) => write!(f, "|{program}"),
        }
    }
}

/// A named, independent set of caches with settings of its own, served by
/// its own maps (`int:icpquerymap:NAME` and the like).
pub struct CacheGroup {
    pub name: String,
    /// Boxed: httpd holds a pointer to it while the block is read.
    pub config: Box<ServerConfig>,
}

/// What a server's lookups use, fixed before any request arrives.
pub struct Settled {
    pub mapper: bool,
    pub cluster: Cluster,
    pub log: Option<LogFile>,
    pub probe_interval: Duration,
    /// The CARP array over the peers, for `icpquerycarp`.
    pub carp: carp::Array,
    /// The shared health records of this server's peers (see health.rs).
    pub health: Option<Health<'static>>,
}

impl ServerConfig {
    fn merged(base: &ServerConfig, add: &ServerConfig) -> ServerConfig {
        let mut peers = base.peers.clone();
        peers.extend(add.peers.iter().filter(|p| !base.peers.contains(p)).cloned());
        let mut groups = base.groups.clone();
        groups.extend(add.groups.iter().filter(|g| !base.groups.contains(g)));
        ServerConfig {
            mapper: add.mapper.or(base.mapper),
            timeout: add.timeout.or(base.timeout),
            dead_time: add.dead_time.or(base.dead_time),
            probe_interval: add.probe_interval.or(base.probe_interval),
            carp_variant: add.carp_variant.or(base.carp_variant),
            log_target: add.log_target.clone().or_else(|| base.log_target.clone()),
            log_level: add.log_level.or(base.log_level),
            bind: add.bind.or(base.bind),
            mcast_hops: add.mcast_hops.or(base.mcast_hops),
            peers,
            groups,
            cache_groups: Vec::new(),
            settled: None,
        }
    }

    /// Fixes the values lookups use, opening the log through `open_logs`
    /// so servers that name the same file share one descriptor.
    pub fn settle(&mut self, open_logs: &mut LogOpener) -> std::io::Result<()> {
        let cluster = Cluster {
            peers: self.peers.clone(),
            groups: self.groups.clone(),
            bind: self.bind.map(BindAddr::new),
            mcast_hops: self.mcast_hops.unwrap_or(Cluster::DEFAULT_MCAST_HOPS),
            timeout: self.timeout.unwrap_or(Cluster::DEFAULT_TIMEOUT),
            dead_time: self.dead_time.unwrap_or(Cluster::DEFAULT_DEAD_TIME),
        };
        let log = match &self.log_target {
            Some(target) => Some(LogFile::new(open_logs.open(target)?, self.log_level.unwrap_or(0))),
            None => None,
        };
        self.settled = Some(Settled {
            mapper: self.mapper.unwrap_or(false),
            cluster,
            log,
            probe_interval: self.probe_interval.unwrap_or(DEFAULT_PROBE_INTERVAL),
            carp: carp_array(&self.peers, self.carp_variant.unwrap_or_default()),
            health: None,
        });
        Ok(())
    }
}

/// The CARP array of `peers`, members in configuration order.
fn carp_array(peers: &[Peer], variant: carp::Variant) -> carp::Array {
    let members: Vec<carp::Member<'_>> =
        peers.iter().map(|p| carp::Member { name: p.carp_name(), weight: p.weight }).collect();
    carp::Array::new(&members, variant)
}

/// Opens each log once per configuration (startup and every restart):
/// servers that name the same file, or the same piped command, share it.
pub struct LogOpener {
    pconf: *mut ffi::apr_pool_t,
    opened: HashMap<LogTarget, Sink>,
}

impl LogOpener {
    /// # Safety
    /// `pconf` must be the live configuration pool, and the opener used
    /// from post_config (in the parent, before any child exists).
    pub unsafe fn new(pconf: *mut ffi::apr_pool_t) -> LogOpener {
        LogOpener { pconf, opened: HashMap::new() }
    }

    fn open(&mut self, target: &LogTarget) -> std::io::Result<Sink> {
        if let Some(sink) = self.opened.get(target) {
            return Ok(sink.clone());
        }
        let sink = match target {
            LogTarget::File(path) => Sink::file(LogFile::open_file(path)?),
            // SAFETY: guaranteed by `new`'s caller.
            LogTarget::Pipe(program) => Sink::pipe(unsafe { open_piped(self.pconf, program) }?),
        };
        self.opened.insert(target.clone(), sink.clone());
        Ok(sink)
    }
}

/// Starts `program` as httpd's own piped logs do (mod_log_config's
/// `CustomLog "|..."`): `ap_open_piped_log` makes a pipe in `pconf`, starts
/// the program on its read end, and registers it with the parent, which
/// starts it again whenever it dies (on the same pipe: the parent keeps both
/// ends open for the life of the configuration). The pool's cleanup stops the
/// program and closes the pipe at restart and shutdown.
///
/// Returns a duplicate of the write end (close-on-exec, so no logging
/// program inherits it): it stays valid across respawns, since the pipe
/// itself never changes, and closing it is ours to do.
///
/// # Safety
/// As for [`LogOpener::new`].
unsafe fn open_piped(pconf: *mut ffi::apr_pool_t, program: &str) -> std::io::Result<File> {
    let c_program = CString::new(program)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the command contains a NUL byte"))?;
    // SAFETY: pconf is live; httpd copies the string into the pool.
    let piped = unsafe { ffi::ap_open_piped_log(pconf, c_program.as_ptr()) };
    if piped.is_null() {
        // httpd has logged why (AH00104 and the like).
        return Err(std::io::Error::other("httpd could not start the program"));
    }
    let mut fd: ffi::apr_os_file_t = -1;
    // SAFETY: `piped` is live; its write end is an open apr_file_t.
    let status = unsafe { ffi::apr_os_file_get(&mut fd, ffi::ap_piped_log_write_fd(piped)) };
    if status != ffi::APR_SUCCESS as ffi::apr_status_t || fd < 0 {
        return Err(std::io::Error::other("no descriptor for the pipe"));
    }
    // SAFETY: the piped_log keeps `fd` open until pconf is cleared, which
    // cannot happen during this call.
    let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
    Ok(File::from(owned))
}

/// The configuration of server `s`, to change while the configuration is
/// read or settled (httpd does both on one thread, before any request).
///
/// # Safety
/// `s` must be a live server_rec whose config vector this module filled,
/// and no other reference to its configuration may be alive.
pub unsafe fn of_mut<'a>(s: *const ffi::server_rec) -> &'a mut ServerConfig {
    // SAFETY: create/merge_server_config stored a pool-owned ServerConfig
    // for every server; it lives as long as the configuration.
    unsafe {
        &mut *ffi::ap_get_module_config((*s).module_config, std::ptr::addr_of!(icpquery_module)).cast::<ServerConfig>()
    }
}

/// What requests of server `s` use: shared, read-only, by every thread.
///
/// # Safety
/// `s` must be a live server_rec whose config vector this module filled.
pub unsafe fn settled<'a>(s: *const ffi::server_rec) -> Option<&'a Settled> {
    // SAFETY: as in of_mut; while requests run nothing writes the config.
    unsafe {
        let conf =
            ffi::ap_get_module_config((*s).module_config, std::ptr::addr_of!(icpquery_module)).cast::<ServerConfig>();
        (*conf).settled.as_ref()
    }
}

/// Cache group `index` (in configuration order) of the running
/// configuration, settled.
///
/// # Safety
/// Only while a configuration is live (from post_config on).
pub unsafe fn group_settled<'a>(index: usize) -> Option<&'a Settled> {
    // SAFETY: ap_server_conf is the live main server; groups live in its
    // pool-owned configuration, read-only while requests run.
    unsafe {
        let main = ffi::ap_server_conf;
        if main.is_null() {
            return None;
        }
        let conf: &ServerConfig =
            &*ffi::ap_get_module_config((*main).module_config, std::ptr::addr_of!(icpquery_module)).cast();
        conf.cache_groups.get(index)?.config.settled.as_ref()
    }
}

/// One settled configuration: a server's own, or one of its cache groups.
pub struct Configured<'a> {
    pub server: *mut ffi::server_rec,
    /// The cache group's name and index, or `None` for the server's own.
    pub group: Option<(&'a str, usize)>,
    pub settled: &'a Settled,
}

/// Every settled configuration: each server's own, then the main server's
/// cache groups.
///
/// # Safety
/// `main` must be the live, settled server list.
pub unsafe fn every_settled<'a>(main: *mut ffi::server_rec) -> Vec<Configured<'a>> {
    let mut all = Vec::new();
    // SAFETY: walking the live list; configurations are read-only now.
    for s in unsafe { super::shared::server_list(main) } {
        let conf = unsafe {
            &*ffi::ap_get_module_config((*s).module_config, std::ptr::addr_of!(icpquery_module)).cast::<ServerConfig>()
        };
        if let Some(settled) = conf.settled.as_ref() {
            all.push(Configured { server: s, group: None, settled });
        }
        for (index, group) in conf.cache_groups.iter().enumerate() {
            if let Some(settled) = group.config.settled.as_ref() {
                all.push(Configured { server: s, group: Some((&group.name, index)), settled });
            }
        }
    }
    all
}

pub unsafe extern "C" fn create_server_config(pool: *mut ffi::apr_pool_t, _s: *mut ffi::server_rec) -> *mut c_void {
    // SAFETY: httpd passes its configuration pool.
    guard(std::ptr::null_mut(), || unsafe { pool_own(pool, ServerConfig::default()) }.cast())
}

pub unsafe extern "C" fn merge_server_config(
    pool: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: both were made by create_server_config and are live.
        let (base, add) = unsafe { (&*base.cast::<ServerConfig>(), &*add.cast::<ServerConfig>()) };
        // SAFETY: httpd passes its configuration pool.
        unsafe { pool_own(pool, ServerConfig::merged(base, add)) }.cast()
    })
}
