//! Periodic probes (`ICPQueryProbeInterval`): keep the shared health table
//! fresh without traffic.
//!
//! httpd's mod_watchdog calls [`tick`] from a thread of exactly one child
//! process (a child singleton watchdog, as mod_proxy_hcheck uses: the child
//! holding the watchdog's process mutex runs it; another takes over when that
//! child exits). Each tick sends one ordinary lookup for [`PROBE_URL`] to the
//! peers of every health region whose interval has elapsed. The lookup
//! updates the shared health records like any other, so a silent cache dies
//! after `ICPQueryDeadTime` and a dead one is asked once per dead time until
//! it answers; what it sees is logged exactly as a map's lookup is.
//!
//! [`PROBE_URL`] is `http://icpquery.probe/`: no cache can hold it (`.probe`
//! is no top-level domain), so caches answer `ICP_OP_MISS`; an ICP query
//! never makes a cache fetch or store anything.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use super::bycache;
use super::conf::{self, Configured, Kind};
use super::events::{ErrorLogAt, Events};
use super::ffi;
use super::safe::{guard, Level, Pool, Server, Watchdog};
use crate::engine::{self, Cluster, Health, Shared};
use crate::logfile::level;

/// The URL every probe asks for.
pub const PROBE_URL: &str = "http://icpquery.probe/";

/// mod_watchdog's timer resolution (`AP_WD_TM_SLICE`): a tick may come this
/// much before a region's interval has fully elapsed.
const TICK_SLACK: Duration = Duration::from_millis(100);

/// While a region has a dead cache it is probed this often, whatever its
/// interval: a cache that answers again is used again within about this.
const REVIVAL_PROBES: Duration = Duration::from_millis(500);

/// A region that keeps answers (`ICPQueryRemember`) is probed at least this
/// often, even with `ICPQueryProbeInterval 0`: lookups answered from memory
/// send nothing, so without probes a cache that died would go unnoticed,
/// and remembered answers would keep naming it.
const MEMORY_PROBES: Duration = Duration::from_millis(500);

/// One health region (configurations whose peers share their records) to
/// probe.
struct Region {
    /// The configurations using it, main server first: the first of them
    /// in use at a tick has its log and error log written.
    users: Vec<Configured<'static>>,
    /// Their peers, without multicast groups: they have no health record,
    /// and asking one would make every probe wait its full timeout.
    cluster: Cluster,
    health: Health<'static>,
    /// The shortest `ICPQueryProbeInterval` of the servers sharing it.
    interval: Duration,
    last: Cell<Option<Instant>>,
}

/// The callback's data, owned by pconf. Only one thread uses it at a time:
/// post_config's, then (in the child that runs the watchdog) the watchdog's.
struct Probes {
    regions: Vec<Region>,
}

/// Registers the probes with mod_watchdog; called by post_config (second
/// pass) once health is attached. Without mod_watchdog it warns and returns.
pub fn start(pconf: Pool<'static>, main: Server<'static>) {
    let regions = regions(main);
    let Some(every) = regions.iter().map(|r| r.interval).min() else { return };
    let warn = |why: &str| {
        main.log(Level::WARNING, 0, &format!("ICPQueryProbeInterval: no probe queries will be sent: {why}"))
    };
    let watchdog = match Watchdog::child_singleton(pconf, c"_icpquery_probe_") {
        Ok(watchdog) => watchdog,
        Err(why) => return warn(&why),
    };
    let data = pconf.own(Probes { regions });
    // SAFETY: the data lives in pconf, as long as the watchdog; only the
    // watchdog's thread uses it from now on.
    // The callback decides per region what is due; called often enough for
    // the revival and memory cadences whatever the probe intervals are.
    let tick_every = every.min(TICK_SLACK).as_micros() as u64;
    if let Err(why) = unsafe { watchdog.register(tick_every, std::ptr::from_mut(data).cast(), tick) } {
        warn(&why);
    }
}

/// The regions to probe: those of configurations that may be in use (maps
/// with `ICPQueryMapper On`, balancers, which can be switched to bycache at
/// any time) with at least one peer, and a nonzero interval or an answer
/// memory.
fn regions(main: Server<'static>) -> Vec<Region> {
    let mut regions: Vec<(usize, Region)> = Vec::new();
    for configured in conf::every_settled(main) {
        let settled = configured.settled;
        let Some((health, index)) = settled.health else { continue };
        let interval = match settled.remember {
            Some(_) if settled.probe_interval.is_zero() => MEMORY_PROBES,
            Some(_) => settled.probe_interval.min(MEMORY_PROBES),
            None if settled.probe_interval.is_zero() => continue,
            None => settled.probe_interval,
        };
        if !settled.mapper || settled.cluster.peers.is_empty() {
            continue;
        }
        match regions.iter_mut().find(|(i, _)| *i == index) {
            Some((_, region)) => {
                region.interval = region.interval.min(interval);
                region.users.push(configured);
            }
            None => regions.push((
                index,
                Region {
                    cluster: Cluster { groups: Vec::new(), ..settled.cluster.clone() },
                    users: vec![configured],
                    health,
                    interval,
                    last: Cell::new(None),
                },
            )),
        }
    }
    regions.into_iter().map(|(_, region)| region).collect()
}

/// Whether a configuration uses its caches now: maps always (they were
/// kept only with `ICPQueryMapper On`), a balancer while it uses bycache.
fn in_use(configured: &Configured<'_>) -> bool {
    match configured.kind {
        Kind::Balancer(name) => bycache::in_use(configured.server, name),
        Kind::Own | Kind::Group(_) => true,
    }
}

/// mod_watchdog's callback: probes every region that is due. Always
/// returns success, which keeps the callback registered.
extern "C" fn tick(state: c_int, data: *mut c_void, _pool: *mut ffi::apr_pool_t) -> ffi::apr_status_t {
    const SUCCESS: ffi::apr_status_t = ffi::APR_SUCCESS as ffi::apr_status_t;
    guard(SUCCESS, || {
        // STARTING comes once when this child takes over the watchdog: probe
        // at once. STOPPING may come while pools are being destroyed: ignore.
        if state == ffi::AP_WATCHDOG_STATE_STARTING as c_int || state == ffi::AP_WATCHDOG_STATE_RUNNING as c_int {
            // SAFETY: `data` is the pconf-owned Probes registered with this
            // callback, used by this thread only.
            let probes = unsafe { &*data.cast::<Probes>() };
            for region in &probes.regions {
                let now = Instant::now();
                let every = match region.health.peers.iter().any(|p| p.is_dead()) {
                    true => region.interval.min(REVIVAL_PROBES),
                    false => region.interval,
                };
                if region.last.get().is_none_or(|last| now + TICK_SLACK >= last + every) {
                    if let Some(user) = region.users.iter().find(|u| in_use(u)) {
                        region.last.set(Some(now));
                        probe(region, user);
                    }
                }
            }
        }
        SUCCESS
    })
}

/// One probe lookup for `user`, logged like a map's lookup (the query
/// itself at level 3).
fn probe(region: &Region, user: &Configured<'_>) {
    let events = Events { at: ErrorLogAt::Server(user.server), log: user.settled.log.as_ref() };
    let url = PROBE_URL.as_bytes();
    events.log(
        level::DEBUG,
        format_args!(
            "probe: asking {} cache(s) for \"{PROBE_URL}\" (every {} ms)",
            region.cluster.peers.len(),
            region.interval.as_millis()
        ),
    );
    match engine::probe(&region.cluster, Shared::health(region.health), url) {
        Ok(outcome) => events.report(&region.cluster, url, &outcome),
        Err(e) => events.problem(Level::ERR, format_args!("probe for \"{PROBE_URL}\": {e}")),
    }
}
