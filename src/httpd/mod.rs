//! The httpd layer: the only code that sees raw httpd/APR types or uses
//! `unsafe`. It converts at the edge (C strings to bytes, `server_rec` to
//! [`server::ServerConfig`]) and hands plain Rust values to the engine.
//!
//! Every `extern "C"` function here runs its body inside [`guard`]: a panic
//! unwinding into httpd's C frames would abort the whole server.

mod directives;
mod errorlog;
mod ffi;
mod maps;
mod module;
mod probe;
mod server;
mod shared;
mod status;

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, turning a panic into `fallback` (NULL from a map, an error
/// string from a directive, DECLINED from a hook). The panic message itself
/// reaches the error log through std's hook, which writes to stderr.
fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Moves `value` into memory owned by `pool`: it is dropped when the pool is
/// cleared or destroyed (end of request, restart), never earlier.
///
/// # Safety
/// `pool` must be a live APR pool.
unsafe fn pool_own<T>(pool: *mut ffi::apr_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_boxed<T>(data: *mut c_void) -> ffi::apr_status_t {
        // SAFETY: `data` came from Box::into_raw below and is dropped once.
        guard((), || drop(unsafe { Box::from_raw(data.cast::<T>()) }));
        ffi::APR_SUCCESS as ffi::apr_status_t
    }
    let ptr = Box::into_raw(Box::new(value));
    // SAFETY: the pool is live; the cleanup frees `ptr` exactly once.
    unsafe {
        ffi::apr_pool_cleanup_register(pool, ptr.cast(), Some(drop_boxed::<T>), Some(ffi::apr_pool_cleanup_null))
    };
    ptr
}

/// Copies `s` into `pool` as a NUL-terminated C string. Interior NULs (which
/// the callers' values never contain) would only shorten the string.
///
/// # Safety
/// `pool` must be a live APR pool.
unsafe fn pool_str(pool: *mut ffi::apr_pool_t, s: &str) -> *mut c_char {
    // SAFETY: apr_pstrmemdup copies `len` bytes and adds the NUL.
    unsafe { ffi::apr_pstrmemdup(pool, s.as_ptr().cast(), s.len() as ffi::apr_size_t) }
}

/// Copies `bytes` into `pool` as a NUL-terminated C string.
///
/// # Safety
/// `pool` must be a live APR pool.
unsafe fn pool_bytes(pool: *mut ffi::apr_pool_t, bytes: &[u8]) -> *mut c_char {
    // SAFETY: apr_pstrmemdup copies `len` bytes and adds the NUL.
    unsafe { ffi::apr_pstrmemdup(pool, bytes.as_ptr().cast(), bytes.len() as ffi::apr_size_t) }
}

/// The bytes of a C string from httpd (NULL reads as empty).
///
/// # Safety
/// `s` must be NULL or a valid NUL-terminated string that outlives `'a`.
unsafe fn c_bytes<'a>(s: *const c_char) -> &'a [u8] {
    if s.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(s) }.to_bytes()
    }
}
