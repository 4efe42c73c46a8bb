//! The operator's view of peer health, as httpd users know it from
//! mod_status and balancer-manager:
//!
//! - `SetHandler icpquery-status`: every health region of the whole server
//!   with its servers, settings, counters and peers as an HTML page, or
//!   with `?auto` as `Key: value` lines (format in [`format`]);
//! - `SetHandler icpquery-metrics`: the same numbers for Prometheus
//!   ([`metrics`]);
//! - mod_status's `server-status` gets a short section through its
//!   optional `status_hook` (only called when mod_status is loaded).
//!
//! This file only reads httpd's structures and turns them into plain data;
//! the text is made by the safe functions in [`format`], [`html`] and
//! [`metrics`], all from the same snapshot.

mod format;
mod html;
mod metrics;
#[cfg(test)]
mod metrics_tests;
#[cfg(test)]
mod tests;

use std::ffi::{c_int, CStr};

use self::format::{RegionView, ServerView};
use super::bycache;
use super::conf::{self, Kind};
use super::ffi;
use super::safe::{self, guard, Request, Server};
use crate::engine::health::now_us;

/// The `SetHandler` names of the page and of the metrics.
const HANDLER: &[u8] = b"icpquery-status";
const METRICS_HANDLER: &[u8] = b"icpquery-metrics";

/// Registers the page's handler and the mod_status hook. Called from the
/// module's `register_hooks`.
pub fn register_hooks() {
    safe::register_handler(handler);
    safe::register_status_hook(status_hook);
}

/// The page: GET or HEAD only; `?auto` (exactly) for the text form.
extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard(ffi::DECLINED as c_int, || {
        // SAFETY: httpd passes the live request this handler may serve.
        let Some(r) = (unsafe { Request::from_raw(r) }) else { return ffi::DECLINED as c_int };
        let metrics = match r.handler() {
            HANDLER => false,
            METRICS_HANDLER => true,
            _ => return ffi::DECLINED as c_int,
        };
        r.allow_get();
        if !r.is_get() {
            return ffi::HTTP_METHOD_NOT_ALLOWED as c_int;
        }
        let auto = !metrics && r.query() == Some(b"auto");
        let content_type: &'static CStr = match (metrics, auto) {
            (true, _) => metrics::CONTENT_TYPE,
            (false, true) => c"text/plain; charset=utf-8",
            (false, false) => c"text/html; charset=utf-8",
        };
        r.set_content_type(content_type);
        if r.header_only() {
            return ffi::OK as c_int;
        }
        let Some(main) = safe::main_server() else { return ffi::DECLINED as c_int };
        let regions = regions(main);
        let body = match (metrics, auto) {
            (true, _) => metrics::exposition(&regions),
            (false, true) => format::auto(&regions, now_us()),
            (false, false) => html::html(&String::from_utf8_lossy(main.hostname()), &regions, now_us()),
        };
        r.write(&body);
        ffi::OK as c_int
    })
}

/// mod_status's hook: `ICPQuery...` lines for `?auto`, else a short HTML
/// section. A panic only leaves the section out.
extern "C" fn status_hook(r: *mut ffi::request_rec, flags: c_int) -> c_int {
    guard(ffi::OK as c_int, || {
        // SAFETY: mod_status passes the live request it is answering.
        let (Some(r), Some(main)) = (unsafe { Request::from_raw(r) }, safe::main_server()) else {
            return ffi::OK as c_int;
        };
        let regions = regions(main);
        // AP_STATUS_NOTABLE needs nothing different (the section has no
        // table), and AP_STATUS_EXTENDED adds nothing: the full page has it.
        let text = match flags & ffi::AP_STATUS_SHORT as c_int != 0 {
            true => format::status_short(&regions),
            false => format::status_html(&regions),
        };
        r.write(&text);
        ffi::OK as c_int
    })
}

/// Every distinct health region, in server list order, with the servers
/// and cache groups that share it.
fn regions(main: Server<'_>) -> Vec<RegionView<'_>> {
    let mut regions: Vec<(usize, RegionView<'_>)> = Vec::new();
    for configured in conf::every_settled(main) {
        if let Kind::Balancer(name) = configured.kind {
            if !bycache::in_use(configured.server, name) {
                continue;
            }
        }
        let settled = configured.settled;
        let Some((health, index)) = settled.health else { continue };
        let view = ServerView {
            name: configured.label(),
            mapper: settled.mapper,
            timeout: settled.cluster.timeout,
            dead_time: settled.cluster.dead_time,
        };
        match regions.iter_mut().find(|(i, _)| *i == index) {
            Some((_, region)) => region.servers.push(view),
            None => {
                let memory = settled.remember.map(|r| r.memory.header);
                regions.push((index, RegionView::new(view, &settled.cluster, health, memory)));
            }
        }
    }
    regions.into_iter().map(|(_, region)| region).collect()
}
