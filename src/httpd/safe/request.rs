//! A request being served, as its handler, a map function or a hook sees it.

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::panic::Location;
use std::ptr::NonNull;

use super::super::ffi;
use super::log::{self, Level};
use super::text::c_bytes;
use super::{module, Pool, Server};

/// A live `request_rec` for `'r`, used by the one thread serving it.
#[derive(Clone, Copy)]
pub struct Request<'r> {
    raw: NonNull<ffi::request_rec>,
    _life: PhantomData<&'r mut ffi::request_rec>,
}

impl<'r> Request<'r> {
    /// # Safety
    /// `raw` is NULL or the request httpd is serving on this thread, live
    /// for `'r`.
    pub unsafe fn from_raw(raw: *mut ffi::request_rec) -> Option<Request<'r>> {
        NonNull::new(raw).map(|raw| Request { raw, _life: PhantomData })
    }

    pub fn raw(self) -> *mut ffi::request_rec {
        self.raw.as_ptr()
    }

    fn rec(&self) -> &'r ffi::request_rec {
        // SAFETY: live for 'r and served by this thread alone.
        unsafe { &*self.raw.as_ptr() }
    }

    pub fn pool(self) -> Pool<'r> {
        // SAFETY: a request's pool lives as long as the request.
        unsafe { Pool::from_raw(self.rec().pool) }.expect("a request has a pool")
    }

    pub fn server(self) -> Server<'r> {
        // SAFETY: the request's server lives as long as its configuration.
        unsafe { Server::from_raw(self.rec().server) }.expect("a request has a server")
    }

    /// `SetHandler`'s name for this request (empty when none).
    pub fn handler(self) -> &'r [u8] {
        // SAFETY: NULL or a string in the request's pool.
        unsafe { c_bytes(self.rec().handler) }
    }

    /// The query string: `None` without a `?`, empty after a bare `?`.
    pub fn query(self) -> Option<&'r [u8]> {
        let args = self.rec().args;
        // SAFETY: NULL or a string in the request's pool.
        (!args.is_null()).then(|| unsafe { c_bytes(args) })
    }

    /// `r->filename` (for a proxied request, `proxy:` and the URL).
    pub fn filename(self) -> &'r [u8] {
        // SAFETY: NULL or a string in the request's pool.
        unsafe { c_bytes(self.rec().filename) }
    }

    /// Whether this is the request itself, not a subrequest.
    pub fn is_main(self) -> bool {
        self.rec().main.is_null()
    }

    /// A request header, if present.
    pub fn header(self, name: &CStr) -> Option<&'r [u8]> {
        Self::table_get(self.rec().headers_in, name)
    }

    /// A note another module left on the request (`r->notes`).
    pub fn note(self, name: &CStr) -> Option<&'r [u8]> {
        Self::table_get(self.rec().notes, name)
    }

    fn table_get(table: *mut ffi::apr_table_t, name: &CStr) -> Option<&'r [u8]> {
        // SAFETY: a live table of the request; the value lives in its pool.
        let value = unsafe { ffi::apr_table_get(table, name.as_ptr()) };
        // SAFETY: as above.
        (!value.is_null()).then(|| unsafe { c_bytes(value) })
    }

    /// Sets an environment variable of the request (`%{NAME}e` in logs).
    pub fn set_env(self, name: &'static CStr, value: &'static CStr) {
        // SAFETY: a live table; static strings outlive the request, so they
        // need no copy (apr_table_setn).
        unsafe { ffi::apr_table_setn(self.rec().subprocess_env, name.as_ptr(), value.as_ptr()) }
    }

    /// GET, or HEAD (which is a GET to httpd).
    pub fn is_get(self) -> bool {
        self.rec().method_number == ffi::M_GET as c_int
    }

    /// A HEAD request: headers only.
    pub fn header_only(self) -> bool {
        self.rec().header_only != 0
    }

    /// Says GET (and so HEAD) is the method allowed, for the `Allow` header
    /// of a 405 (httpd 2.4 makes it from r->allowed_methods).
    pub fn allow_get(self) {
        // SAFETY: a live request; the method list ends with -1.
        unsafe {
            ffi::ap_allow_standard_methods(self.raw(), ffi::MERGE_ALLOW as c_int, ffi::M_GET as c_int, -1 as c_int)
        }
    }

    pub fn set_content_type(self, content_type: &'static CStr) {
        // SAFETY: a static string outlives the request, as httpd requires.
        unsafe { ffi::ap_set_content_type(self.raw(), content_type.as_ptr()) }
    }

    /// Sets a response header (replacing one of the same name); the value
    /// is copied into the request's pool.
    pub fn set_header(self, name: &'static CStr, value: &str) {
        let value = self.pool().str(value);
        // SAFETY: a live table; the name is static and the value lives in
        // the request's pool, so neither needs a copy.
        unsafe { ffi::apr_table_setn(self.rec().headers_out, name.as_ptr(), value) }
    }

    /// `Last-Modified` from a time in microseconds since the Unix epoch
    /// (httpd keeps it no later than the request's own time).
    pub fn set_last_modified(self, unix_us: u64) {
        // SAFETY: a live request; apr_time_t is microseconds since the epoch.
        unsafe {
            ffi::ap_update_mtime(self.raw(), unix_us.min(i64::MAX as u64) as ffi::apr_time_t);
            ffi::ap_set_last_modified(self.raw());
        }
    }

    /// httpd's evaluation of the request's conditional headers (If-Match,
    /// If-None-Match, If-Modified-Since, …) against the `ETag` and
    /// `Last-Modified` already set: `OK` to send the body, else the status
    /// to answer with (304, 412).
    pub fn meets_conditions(self) -> c_int {
        // SAFETY: a live request; httpd only reads it.
        unsafe { ffi::ap_meets_conditions(self.raw()) }
    }

    pub fn set_content_length(self, len: usize) {
        // SAFETY: a live request.
        unsafe { ffi::ap_set_content_length(self.raw(), len as ffi::apr_off_t) }
    }

    /// Sends `text` as (part of) the response body. A failure means the
    /// client left, which leaves nothing to do.
    pub fn write(self, text: &str) {
        // ap_rwrite takes an int length; a page is far smaller, but stay exact.
        for chunk in text.as_bytes().chunks(c_int::MAX as usize) {
            // SAFETY: `chunk` is valid for its length during the call.
            unsafe { ffi::ap_rwrite(chunk.as_ptr().cast(), chunk.len() as c_int, self.raw()) };
        }
    }

    /// This module's state for the request, created in the request's pool
    /// on first use (so it is dropped with the request, and no two requests
    /// ever share it).
    ///
    /// # Safety
    /// The module's request slot holds nothing but a `T`.
    pub unsafe fn module_state<T: Default + 'r>(self) -> &'r mut T {
        let vector = self.rec().request_config;
        // SAFETY: the request's own vector; the slot holds NULL or a T.
        match unsafe { module::get::<T>(vector) } {
            Some(state) => state,
            None => {
                let state = self.pool().own(T::default());
                // SAFETY: the state lives in the request's pool, as long as the vector.
                unsafe { module::set(vector, std::ptr::from_mut(state).cast()) };
                state
            }
        }
    }

    /// The module's per-directory configuration for this request, as httpd
    /// merged it from the sections the request was mapped to.
    ///
    /// # Safety
    /// The module's per-directory slot holds NULL or a `T` living in a
    /// pool that outlives the request.
    pub unsafe fn dir_config<T: 'r>(self) -> Option<&'r T> {
        // SAFETY: the request's live vector; see above.
        unsafe { module::get::<T>(self.rec().per_dir_config) }.map(|t| &*t)
    }

    /// Whether a message at `level` for this request would be logged; lets
    /// callers skip building messages nobody reads.
    pub fn log_enabled(self, level: Level) -> bool {
        // SAFETY: a live request; httpd only reads it.
        level.always() || unsafe { ffi::ap_get_request_module_loglevel(self.raw(), module::index()) } >= level.raw()
    }

    /// Logs `message` for this request (httpd adds the client's address).
    #[track_caller]
    pub fn log(self, level: Level, message: &str) {
        // SAFETY: a live request.
        unsafe { log::write(std::ptr::null(), self.raw(), Location::caller(), level, 0, message) }
    }
}
