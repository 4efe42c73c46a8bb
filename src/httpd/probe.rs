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

use super::maps::{report, Events};
use super::{errorlog, ffi, guard, pool_own, server};
use crate::engine::{self, Cluster, Health};
use crate::logfile::level;

/// The URL every probe asks for.
pub const PROBE_URL: &str = "http://icpquery.probe/";

/// mod_watchdog's timer resolution (`AP_WD_TM_SLICE`): a tick may come this
/// much before a region's interval has fully elapsed.
const TICK_SLACK: Duration = Duration::from_millis(100);

/// One health region (servers whose peers share their records) to probe.
struct Region {
    /// The first server probing it, main server first: its log and error
    /// log are written, its timeout and dead time apply.
    server: *const ffi::server_rec,
    /// The cache group (index) whose settings and log apply, if the region
    /// was first found in one.
    group: Option<usize>,
    /// That server's peers, without multicast groups: they have no health
    /// record, and asking one would make every probe wait its full timeout.
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
///
/// # Safety
/// `pconf` and `main` as post_config receives them, every server settled
/// with its health attached.
pub unsafe fn start(pconf: *mut ffi::apr_pool_t, main: *mut ffi::server_rec) {
    // SAFETY: guaranteed by the caller.
    let regions = unsafe { regions(main) };
    let Some(every) = regions.iter().map(|r| r.interval).min() else { return };
    // SAFETY: optional functions are looked up by name; when present these
    // have exactly the types mod_watchdog.h declares for them.
    let (get_instance, register) = unsafe {
        (
            std::mem::transmute::<ffi::apr_opt_fn_t, ffi::apr_OFN_ap_watchdog_get_instance_t>(
                ffi::apr_dynamic_fn_retrieve(c"ap_watchdog_get_instance".as_ptr()),
            ),
            std::mem::transmute::<ffi::apr_opt_fn_t, ffi::apr_OFN_ap_watchdog_register_callback_t>(
                ffi::apr_dynamic_fn_retrieve(c"ap_watchdog_register_callback".as_ptr()),
            ),
        )
    };
    let warn = |why: &str| {
        let message = format!("ICPQueryProbeInterval: no probe queries will be sent: {why}");
        // SAFETY: `main` is live.
        unsafe { errorlog::server(main, errorlog::WARNING, 0, &message) };
    };
    let (Some(get_instance), Some(register)) = (get_instance, register) else {
        return warn("mod_watchdog is not loaded (LoadModule watchdog_module, unless built into httpd)");
    };
    // SAFETY: mod_watchdog keeps the name and the data for as long as pconf
    // lives, so both are allocated there; the callback is ours.
    unsafe {
        let mut watchdog: *mut ffi::ap_watchdog_t = std::ptr::null_mut();
        let name = ffi::apr_pstrdup(pconf, c"_icpquery_probe_".as_ptr());
        let status = get_instance(&mut watchdog, name, 0, 1, pconf);
        if status != ffi::APR_SUCCESS as ffi::apr_status_t {
            return warn(&format!("mod_watchdog gave no child singleton watchdog (APR status {status})"));
        }
        let data = pool_own(pconf, Probes { regions });
        let status = register(watchdog, every.as_micros() as ffi::apr_interval_time_t, data.cast(), Some(tick));
        if status != ffi::APR_SUCCESS as ffi::apr_status_t {
            warn(&format!("mod_watchdog refused the callback (APR status {status})"));
        }
    }
}

/// The regions to probe: those of servers with `ICPQueryMapper On`, a
/// nonzero interval and at least one peer.
///
/// # Safety
/// As for [`start`].
unsafe fn regions(main: *mut ffi::server_rec) -> Vec<Region> {
    let mut regions: Vec<Region> = Vec::new();
    // SAFETY: the live, settled server list.
    for configured in unsafe { server::every_settled(main) } {
        let (s, settled) = (configured.server, configured.settled);
        let Some(health) = settled.health else { continue };
        if !settled.mapper || settled.probe_interval.is_zero() || settled.cluster.peers.is_empty() {
            continue;
        }
        let interval = settled.probe_interval;
        match regions.iter_mut().find(|r| std::ptr::eq(r.health.peers.as_ptr(), health.peers.as_ptr())) {
            Some(region) => region.interval = region.interval.min(interval),
            None => regions.push(Region {
                server: s,
                group: configured.group.map(|(_, k)| k),
                cluster: Cluster { groups: Vec::new(), ..settled.cluster.clone() },
                health,
                interval,
                last: Cell::new(None),
            }),
        }
    }
    regions
}

/// mod_watchdog's callback: probes every region that is due. Always
/// returns success, which keeps the callback registered.
unsafe extern "C" fn tick(state: c_int, data: *mut c_void, _pool: *mut ffi::apr_pool_t) -> ffi::apr_status_t {
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
                if region.last.get().map_or(true, |last| now + TICK_SLACK >= last + region.interval) {
                    region.last.set(Some(now));
                    probe(region);
                }
            }
        }
        SUCCESS
    })
}

/// One probe lookup, logged like a map's lookup (the query itself at level 3).
fn probe(region: &Region) {
    // SAFETY: server configurations live in pconf, which outlives the
    // watchdog thread.
    let settled = unsafe {
        match region.group {
            None => server::settled(region.server),
            Some(k) => server::group_settled(k),
        }
    };
    // SAFETY: as above.
    let events = unsafe { Events::for_server(region.server, settled.and_then(|s| s.log.as_ref())) };
    let url = PROBE_URL.as_bytes();
    events.log(
        level::DEBUG,
        format_args!(
            "probe: asking {} cache(s) for \"{PROBE_URL}\" (every {} s)",
            region.cluster.peers.len(),
            region.interval.as_secs()
        ),
    );
    match engine::probe(&region.cluster, region.health, url) {
        Ok(outcome) => report(&events, &region.cluster, url, &outcome),
        Err(e) => events.problem(errorlog::ERR, format_args!("probe for \"{PROBE_URL}\": {e}")),
    }
}
