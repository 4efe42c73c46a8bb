//! Each server's configuration: what its `ICPQuery*` directives said (a
//! [`Settings`], merged for virtual hosts by the settings' one rule), its
//! cache groups, and what it settles into at startup for lookups to use.

use std::ffi::c_void;
use std::time::Duration;

use super::ffi;
use super::logs::LogOpener;
use super::safe::{self, guard, Pool, Proxy, Server};
use crate::engine::memory::Remember;
use crate::engine::{carp, carp_array, Cluster, Health, Shared, SocketPool};
use crate::logfile::LogFile;
use crate::settings::{KeyPrefix, Settings};

/// One server's (or virtual host's, or cache group's) configuration.
#[derive(Default)]
pub struct ServerConfig {
    pub settings: Settings,
    /// `<ICPQueryGroup name>` blocks (main server only), in the order read:
    /// the order fixes which `icpquerymap:NAME` function serves each.
    pub groups: Vec<CacheGroup>,
    /// Settled in post_config; read-only while requests run.
    pub settled: Option<Settled>,
    /// The caches of this server's mod_proxy balancers, for
    /// `lbmethod=bycache` (made in post_config, see bycache.rs).
    pub balancers: Vec<BalancerCaches>,
    /// mod_proxy as loaded (main server only; see bycache.rs).
    pub proxy: Option<Proxy>,
    /// When this configuration was read (main server only, µs since the
    /// epoch): the `Last-Modified` of what depends on it alone.
    pub read_at_us: u64,
}

/// A balancer's members as caches to ask over ICP.
pub struct BalancerCaches {
    /// `balancer://NAME`, as mod_proxy names it.
    pub name: String,
    /// Its members' ICP peers, and the server's settings for them.
    pub settled: Settled,
    /// For each member (by position), the peer that stands for it; members
    /// added later in balancer-manager have none.
    pub peer_of: Vec<Option<usize>>,
    pub key: KeyPrefix,
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
    /// The shared health records of this server's peers, and which health
    /// region (one per distinct list of peers) they are (see shared.rs).
    pub health: Option<(Health<'static>, usize)>,
    /// `ICPQueryRemember`: how long answers are kept (zero: not at all)
    /// and how many the region's table should hold.
    pub keep: (Duration, usize),
    /// The region's answer memory, when answers are kept (see shared.rs).
    pub remember: Option<Remember<'static>>,
    /// Sockets this process's lookups reuse (each child has its own: the
    /// pool is empty when httpd forks).
    pub sockets: SocketPool,
}

impl Settled {
    /// What lookups of `cluster` use with `settings`' log, probes, CARP
    /// hashing and memory; health and memory are attached later (shared.rs).
    pub fn new(settings: &Settings, mapper: bool, cluster: Cluster, logs: &mut LogOpener) -> std::io::Result<Settled> {
        let log = match &settings.log {
            Some(target) => Some(LogFile::new(logs.open(target)?, settings.log_level())),
            None => None,
        };
        Ok(Settled {
            mapper,
            carp: carp_array(&cluster.peers, settings.carp_variant()),
            cluster,
            log,
            probe_interval: settings.probe_interval(),
            health: None,
            keep: settings.remember(),
            remember: None,
            sockets: SocketPool::default(),
        })
    }

    pub fn health(&self) -> Option<Health<'static>> {
        self.health.map(|(health, _)| health)
    }

    /// What a lookup needs besides the cluster, once health is attached.
    pub fn shared(&self) -> Option<Shared<'_>> {
        Some(Shared { health: self.health()?, remember: self.remember, sockets: Some(&self.sockets) })
    }
}

impl ServerConfig {
    /// A cache group's, as its block starts (see [`Settings::group`]).
    pub fn group() -> ServerConfig {
        ServerConfig { settings: Settings::group(), ..ServerConfig::default() }
    }

    /// Fixes the values lookups use, opening the log through `logs` so
    /// servers that name the same file share one descriptor.
    pub fn settle(&mut self, logs: &mut LogOpener) -> std::io::Result<()> {
        let s = &self.settings;
        self.settled = Some(Settled::new(s, s.mapper(), s.cluster(), logs)?);
        Ok(())
    }
}

/// The configuration of server `s`, to change while the configuration is
/// read or settled (httpd does both on one thread, before any request).
///
/// # Safety
/// No other reference to `s`'s configuration may be alive.
pub unsafe fn of_mut<'s>(s: Server<'s>) -> &'s mut ServerConfig {
    // SAFETY: create/merge_server_config stored a pool-owned ServerConfig
    // for every server; exclusivity is the caller's promise.
    unsafe { safe::server_config::<ServerConfig>(s) }.expect("every server has a configuration")
}

/// The configuration of server `s`, shared read-only by every thread once
/// requests run.
pub fn of(s: Server<'_>) -> &ServerConfig {
    // SAFETY: every server's slot holds a ServerConfig (create/merge below);
    // nothing changes it after post_config.
    unsafe { safe::server_config::<ServerConfig>(s) }.expect("every server has a configuration")
}

/// The settled cache group `name` of the running configuration.
pub fn group_named(name: &str) -> Option<&'static Settled> {
    of(safe::main_server()?).groups.iter().find(|g| g.name == name)?.config.settled.as_ref()
}

/// Cache group `index` (in configuration order) of the running
/// configuration, settled.
pub fn group_settled(index: usize) -> Option<&'static Settled> {
    of(safe::main_server()?).groups.get(index)?.config.settled.as_ref()
}

/// One settled configuration: a server's own, one of its cache groups, or
/// the caches of one of its balancers.
pub struct Configured<'a> {
    pub server: Server<'a>,
    pub kind: Kind<'a>,
    pub settled: &'a Settled,
}

#[derive(Clone, Copy)]
pub enum Kind<'a> {
    Own,
    Group(&'a str),
    Balancer(&'a str),
}

impl Configured<'_> {
    /// "main server", a virtual host's "name:port", "cache group NAME", or
    /// "balancer://NAME" (with its virtual host's "name:port" after it).
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Own => self.server.label(),
            Kind::Group(name) => format!("cache group {name}"),
            Kind::Balancer(name) if !self.server.is_virtual() => name.to_string(),
            Kind::Balancer(name) => format!("{name} ({})", self.server.label()),
        }
    }
}

/// Every settled configuration: for each server its own, its cache groups
/// and its balancers' caches.
pub fn every_settled(main: Server<'_>) -> Vec<Configured<'_>> {
    let mut all = Vec::new();
    for server in main.list() {
        let conf = of(server);
        let groups = conf.groups.iter().filter_map(|g| Some((Kind::Group(&g.name), g.config.settled.as_ref()?)));
        let balancers = conf.balancers.iter().map(|b| (Kind::Balancer(&b.name), &b.settled));
        let own = conf.settled.as_ref().map(|s| (Kind::Own, s));
        for (kind, settled) in own.into_iter().chain(groups).chain(balancers) {
            all.push(Configured { server, kind, settled });
        }
    }
    all
}

pub extern "C" fn create_server_config(pool: *mut ffi::apr_pool_t, _s: *mut ffi::server_rec) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: httpd passes its live configuration pool.
        let pool = unsafe { Pool::from_raw(pool) }.expect("a configuration pool");
        std::ptr::from_mut(pool.own(ServerConfig::default())).cast()
    })
}

pub extern "C" fn merge_server_config(pool: *mut ffi::apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: httpd passes its live configuration pool and two
        // configurations made by create_server_config.
        let (pool, base, add) = unsafe {
            (
                Pool::from_raw(pool).expect("a configuration pool"),
                &*base.cast::<ServerConfig>(),
                &*add.cast::<ServerConfig>(),
            )
        };
        let merged =
            ServerConfig { settings: Settings::inherit(&base.settings, &add.settings), ..ServerConfig::default() };
        std::ptr::from_mut(pool.own(merged)).cast()
    })
}
