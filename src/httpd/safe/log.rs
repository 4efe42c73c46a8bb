//! httpd's error log, under the module's own log level, so that
//! `LogLevel icpquery:debug` works as for any module.

use std::ffi::{c_int, CString};
use std::panic::Location;

use super::super::ffi;
use super::module;

/// An error-log level (`APLOG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level(u32);

impl Level {
    pub const ERR: Level = Level(ffi::APLOG_ERR);
    pub const WARNING: Level = Level(ffi::APLOG_WARNING);
    pub const NOTICE: Level = Level(ffi::APLOG_NOTICE);
    pub const INFO: Level = Level(ffi::APLOG_INFO);

    pub(super) fn raw(self) -> c_int {
        self.0 as c_int
    }

    /// Levels up to `notice` are always logged (httpd's own rule).
    pub(super) fn always(self) -> bool {
        self.0 <= ffi::APLOG_NOTICE
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\x00")).expect("NULs were replaced")
}

/// Logs `message` for server `s` (NULL: the main log) or request `r`
/// (non-NULL: httpd adds the client), always as `"%s"` with one argument.
///
/// # Safety
/// `s` is NULL or a live server_rec; `r` NULL or a live request_rec.
pub(super) unsafe fn write(
    s: *const ffi::server_rec,
    r: *const ffi::request_rec,
    at: &Location<'_>,
    level: Level,
    status: i32,
    message: &str,
) {
    let (file, msg) = (c_string(at.file()), c_string(message));
    let (line, index) = (at.line() as c_int, module::index());
    // SAFETY: "%s" with one C string argument, all valid for the call.
    unsafe {
        if r.is_null() {
            ffi::ap_log_error_(file.as_ptr(), line, index, level.raw(), status, s, c"%s".as_ptr(), msg.as_ptr());
        } else {
            ffi::ap_log_rerror_(file.as_ptr(), line, index, level.raw(), status, r, c"%s".as_ptr(), msg.as_ptr());
        }
    }
}
