//! Registering the module's hooks with httpd (from register_hooks only).

use std::ffi::{c_char, c_int};
use std::ptr::null;

use super::super::ffi;

/// pre_config / post_config: `(pconf, plog, ptemp[, main server]) -> status`.
pub type PreConfig = unsafe extern "C" fn(*mut ffi::apr_pool_t, *mut ffi::apr_pool_t, *mut ffi::apr_pool_t) -> c_int;
pub type PostConfig = unsafe extern "C" fn(
    *mut ffi::apr_pool_t,
    *mut ffi::apr_pool_t,
    *mut ffi::apr_pool_t,
    *mut ffi::server_rec,
) -> c_int;
pub type Handler = unsafe extern "C" fn(*mut ffi::request_rec) -> c_int;
/// mod_status's `int status_hook(request_rec *r, int flags)`.
pub type StatusHook = unsafe extern "C" fn(*mut ffi::request_rec, c_int) -> c_int;

/// A NULL-terminated list of module names a hook must run after.
pub struct Predecessors(pub [*const c_char; 2]);
// SAFETY: constant pointers to 'static strings.
unsafe impl Sync for Predecessors {}

/// Runs `f` in pre_config, after the modules in `after`.
pub fn register_pre_config(f: PreConfig, after: &'static Predecessors) {
    // SAFETY: called from register_hooks, as httpd requires.
    unsafe { ffi::ap_hook_pre_config(Some(f), after.0.as_ptr(), null(), ffi::APR_HOOK_MIDDLE as c_int) }
}

pub fn register_post_config(f: PostConfig) {
    // SAFETY: called from register_hooks.
    unsafe { ffi::ap_hook_post_config(Some(f), null(), null(), ffi::APR_HOOK_MIDDLE as c_int) }
}

/// Runs `f` in the fixups phase, after the modules in `after`.
pub fn register_fixups(f: Handler, after: &'static Predecessors) {
    // SAFETY: called from register_hooks.
    unsafe { ffi::ap_hook_fixups(Some(f), after.0.as_ptr(), null(), ffi::APR_HOOK_MIDDLE as c_int) }
}

pub fn register_handler(f: Handler) {
    // SAFETY: called from register_hooks.
    unsafe { ffi::ap_hook_handler(Some(f), null(), null(), ffi::APR_HOOK_MIDDLE as c_int) }
}

/// mod_status's optional hook, registered as APR_OPTIONAL_HOOK does: a
/// generic function pointer that mod_status casts back to its type. Only
/// called when mod_status is loaded.
pub fn register_status_hook(f: StatusHook) {
    // SAFETY: called from register_hooks; a function pointer keeps its
    // value through the cast and back.
    unsafe {
        let hook = std::mem::transmute::<StatusHook, unsafe extern "C" fn()>(f);
        ffi::apr_optional_hook_add(c"status_hook".as_ptr(), Some(hook), null(), null(), ffi::APR_HOOK_MIDDLE as c_int);
    }
}

/// Whether httpd is in the first of its two configuration passes at
/// startup, which only checks the configuration: nothing should be opened.
pub fn first_startup_pass() -> bool {
    // SAFETY: a plain query of httpd's state.
    unsafe { ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int) == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as c_int }
}
