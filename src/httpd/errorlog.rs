//! httpd's error log, under the module's own log level, so that
//! `LogLevel icpquery:debug` works as for any module.

use std::ffi::{c_int, CString};
use std::panic::Location;
use std::ptr::addr_of;

use super::ffi;
use super::module::icpquery_module;

pub use ffi::{APLOG_ERR as ERR, APLOG_INFO as INFO, APLOG_NOTICE as NOTICE, APLOG_WARNING as WARNING};

fn module_index() -> c_int {
    // SAFETY: httpd writes module_index once, while loading the module and
    // before any hook runs; afterwards it is only read.
    unsafe { (*addr_of!(icpquery_module)).module_index }
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\x00")).expect("NULs were replaced")
}

/// Whether a message at `level` for request `r` would be logged; lets callers
/// skip building messages nobody reads.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn request_enabled(r: *const ffi::request_rec, level: u32) -> bool {
    // SAFETY: `r` is live; httpd only reads it.
    level <= ffi::APLOG_NOTICE || unsafe { ffi::ap_get_request_module_loglevel(r, module_index()) } >= level as c_int
}

/// Logs `message` for request `r` (the client's address is added by httpd).
///
/// # Safety
/// `r` must be a live request.
#[track_caller]
pub unsafe fn request(r: *const ffi::request_rec, level: u32, message: &str) {
    let at = Location::caller();
    let (file, msg) = (c_string(at.file()), c_string(message));
    // SAFETY: "%s" with one C string argument, all valid for the call.
    unsafe {
        ffi::ap_log_rerror_(
            file.as_ptr(),
            at.line() as c_int,
            module_index(),
            level as c_int,
            0,
            r,
            c"%s".as_ptr(),
            msg.as_ptr(),
        )
    };
}

/// Logs `message` for server `s`, with an APR/OS status when there is one.
///
/// # Safety
/// `s` must be a live server_rec (or NULL for the main log).
#[track_caller]
pub unsafe fn server(s: *const ffi::server_rec, level: u32, status: i32, message: &str) {
    let at = Location::caller();
    let (file, msg) = (c_string(at.file()), c_string(message));
    // SAFETY: "%s" with one C string argument, all valid for the call.
    unsafe {
        ffi::ap_log_error_(
            file.as_ptr(),
            at.line() as c_int,
            module_index(),
            level as c_int,
            status,
            s,
            c"%s".as_ptr(),
            msg.as_ptr(),
        )
    };
}
