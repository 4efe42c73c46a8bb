//! The operator's view of peer health, as httpd users know it from
//! mod_status and balancer-manager:
//!
//! - `SetHandler icpquery-status`: every health region of the whole server
//!   with its servers, settings, counters and peers as an HTML page, or
//!   with `?auto` as `Key: value` lines (format in [`format`]);
//! - mod_status's `server-status` gets a short section through its
//!   optional `status_hook` (only called when mod_status is loaded).
//!
//! This file only reads httpd's structures and turns them into plain data;
//! the text is made by the safe functions in [`format`].

mod format;
#[cfg(test)]
mod tests;

use std::ffi::{c_int, CStr};
use std::ptr::null;

use self::format::{RegionView, ServerView};
use super::{c_bytes, ffi, guard, server};
use crate::engine::{health::now_us, ClusterSlot};

/// The `SetHandler` name of the page.
const HANDLER: &[u8] = b"icpquery-status";

/// Registers the page's handler and the mod_status hook. Called from the
/// module's `register_hooks`.
///
/// # Safety
/// Only while httpd registers hooks.
pub unsafe fn register_hooks() {
    // C: int status_hook(request_rec *r, int flags), registered the way
    // APR_OPTIONAL_HOOK(ap, status_hook, ...) does: as a generic function
    // pointer that mod_status casts back to this type before calling it.
    type StatusHook = unsafe extern "C" fn(*mut ffi::request_rec, c_int) -> c_int;
    // SAFETY: registering hooks is what the caller is doing; a function
    // pointer keeps its value through the cast and back.
    unsafe {
        ffi::ap_hook_handler(Some(handler), null(), null(), ffi::APR_HOOK_MIDDLE as c_int);
        let hook = std::mem::transmute::<StatusHook, unsafe extern "C" fn()>(status_hook);
        ffi::apr_optional_hook_add(c"status_hook".as_ptr(), Some(hook), null(), null(), ffi::APR_HOOK_MIDDLE as c_int);
    }
}

/// The page: GET or HEAD only; `?auto` (exactly) for the text form.
unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard(ffi::DECLINED as c_int, || {
        // SAFETY: httpd passes the live request; its strings are NULL or
        // valid C strings for the whole request.
        let (ours, is_get, auto, header_only) = unsafe {
            let ours = c_bytes((*r).handler) == HANDLER;
            (ours, (*r).method_number == ffi::M_GET as c_int, c_bytes((*r).args) == b"auto", (*r).header_only != 0)
        };
        if !ours {
            return ffi::DECLINED as c_int;
        }
        // SAFETY: `r` is live. httpd 2.4 makes the Allow header of the 405
        // below from r->allowed_methods (r->allowed no longer feeds it);
        // HEAD is a GET to httpd. The method list ends with -1.
        unsafe { ffi::ap_allow_standard_methods(r, ffi::MERGE_ALLOW as c_int, ffi::M_GET as c_int, -1 as c_int) };
        if !is_get {
            return ffi::HTTP_METHOD_NOT_ALLOWED as c_int;
        }
        let content_type: &'static CStr = if auto { c"text/plain; charset=utf-8" } else { c"text/html; charset=utf-8" };
        // SAFETY: a static string outlives the request, as httpd requires.
        unsafe { ffi::ap_set_content_type(r, content_type.as_ptr()) };
        if header_only {
            return ffi::OK as c_int;
        }
        // SAFETY: ap_server_conf is the live server list while requests run.
        let (host, regions) = unsafe {
            let main = ffi::ap_server_conf;
            (String::from_utf8_lossy(c_bytes((*main).server_hostname)).into_owned(), regions(main))
        };
        let body = if auto { format::auto(&regions, now_us()) } else { format::html(&host, &regions, now_us()) };
        // SAFETY: `r` is the live request this handler serves.
        unsafe { write(r, &body) };
        ffi::OK as c_int
    })
}

/// mod_status's hook: `ICPQuery...` lines for `?auto`, else a short HTML
/// section. A panic only leaves the section out.
unsafe extern "C" fn status_hook(r: *mut ffi::request_rec, flags: c_int) -> c_int {
    guard(ffi::OK as c_int, || {
        // SAFETY: ap_server_conf is the live server list while requests run.
        let regions = unsafe { regions(ffi::ap_server_conf) };
        // AP_STATUS_NOTABLE needs nothing different (the section has no
        // table), and AP_STATUS_EXTENDED adds nothing: the full page has it.
        let text = if flags & ffi::AP_STATUS_SHORT as c_int != 0 {
            format::status_short(&regions)
        } else {
            format::status_html(&regions)
        };
        // SAFETY: mod_status passes the live request it is answering.
        unsafe { write(r, &text) };
        ffi::OK as c_int
    })
}

/// Every distinct health region, in server list order. Servers share a
/// region when their health records are the same memory; compared by the
/// cluster slot, which every region has its own of (an empty region's
/// peer slice may start where the next region's does).
///
/// # Safety
/// `main` must be the live server list, settled.
unsafe fn regions<'a>(main: *mut ffi::server_rec) -> Vec<RegionView<'a>> {
    let mut regions: Vec<(*const ClusterSlot, RegionView<'a>)> = Vec::new();
    // SAFETY: the live, settled server list; settled configs are read-only
    // while requests run and live as long as the configuration.
    for configured in unsafe { server::every_settled(main) } {
        let settled = configured.settled;
        let Some(health) = settled.health else { continue };
        let view = ServerView {
            name: match configured.group {
                Some((group, _)) => format!("cache group {group}"),
                // SAFETY: the server is live.
                None => unsafe { server_label(configured.server) },
            },
            mapper: settled.mapper,
            timeout: settled.cluster.timeout,
            dead_time: settled.cluster.dead_time,
        };
        match regions.iter_mut().find(|(slot, _)| std::ptr::eq(*slot, health.cluster)) {
            Some((_, region)) => region.servers.push(view),
            None => regions.push((health.cluster, RegionView::new(view, &settled.cluster, health))),
        }
    }
    regions.into_iter().map(|(_, region)| region).collect()
}

/// "main server", or a virtual host's "name:port" (port as in its
/// ServerName, else its address; none when neither has one).
///
/// # Safety
/// `s` must be a live server_rec.
unsafe fn server_label(s: *const ffi::server_rec) -> String {
    // SAFETY: `s` is live; server_hostname is NULL or a C string, addrs
    // NULL or a live list.
    unsafe {
        if (*s).is_virtual == 0 {
            return "main server".into();
        }
        let name = String::from_utf8_lossy(c_bytes((*s).server_hostname));
        let port = match ((*s).port, (*s).addrs) {
            (0, addrs) if !addrs.is_null() => (*addrs).host_port,
            (port, _) => port,
        };
        if port == 0 {
            name.into_owned()
        } else {
            format!("{name}:{port}")
        }
    }
}

/// Sends `text` as (part of) the response body.
///
/// # Safety
/// `r` must be the live request being answered.
unsafe fn write(r: *mut ffi::request_rec, text: &str) {
    // ap_rwrite takes an int length; a page is far smaller, but stay exact.
    for chunk in text.as_bytes().chunks(c_int::MAX as usize) {
        // SAFETY: `chunk` is valid for its length during the call; a
        // failure means the client left, which leaves nothing to do.
        unsafe { ffi::ap_rwrite(chunk.as_ptr().cast(), chunk.len() as c_int, r) };
    }
}
