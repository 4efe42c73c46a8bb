//! Other modules' functions, found by name at run time (APR optional
//! functions): the module links against none of them, so it loads whatever
//! else is loaded, in any order.

use std::ffi::{c_char, c_void, CStr};

use super::super::ffi;
use super::Pool;

fn retrieve(name: &CStr) -> ffi::apr_opt_fn_t {
    // SAFETY: a lookup by name in APR's table of optional functions.
    unsafe { ffi::apr_dynamic_fn_retrieve(name.as_ptr()) }
}

/// Whether mod_rewrite is loaded (it registers its optional function when
/// loaded, and every LoadModule runs before the first ordinary directive).
pub fn rewrite_loaded() -> bool {
    retrieve(c"ap_register_rewrite_mapfunc").is_some()
}

/// Registers `function` as `RewriteMap int:name`. The pool must live as
/// long as the configuration (mod_rewrite keeps the name).
pub fn register_rewrite_map(pool: Pool<'_>, name: &str, function: ffi::rewrite_mapfunc_t) -> Result<(), &'static str> {
    let register = retrieve(c"ap_register_rewrite_mapfunc")
        .ok_or("mod_rewrite is not loaded; expected LoadModule rewrite_module")?;
    type Register = unsafe extern "C" fn(*mut c_char, ffi::rewrite_mapfunc_t);
    // SAFETY: mod_rewrite.h declares the optional function with exactly
    // this type: void ap_register_rewrite_mapfunc(char *, rewrite_mapfunc_t).
    unsafe { std::mem::transmute::<unsafe extern "C" fn(), Register>(register)(pool.str(name), function) };
    Ok(())
}

/// A mod_watchdog child-singleton watchdog: its callback runs on a thread
/// of exactly one child process at a time.
pub struct Watchdog(*mut ffi::ap_watchdog_t);

/// mod_watchdog's callback type: (state, data, pool) -> status.
pub type WatchdogCallback = unsafe extern "C" fn(i32, *mut c_void, *mut ffi::apr_pool_t) -> ffi::apr_status_t;

impl Watchdog {
    /// The watchdog `name` (kept in `pconf`), or why there is none.
    pub fn child_singleton(pconf: Pool<'static>, name: &CStr) -> Result<Watchdog, String> {
        // SAFETY: when present, mod_watchdog.h gives the function this type.
        let get = unsafe {
            std::mem::transmute::<ffi::apr_opt_fn_t, ffi::apr_OFN_ap_watchdog_get_instance_t>(retrieve(
                c"ap_watchdog_get_instance",
            ))
        }
        .ok_or("mod_watchdog is not loaded (LoadModule watchdog_module, unless built into httpd)")?;
        let mut watchdog: *mut ffi::ap_watchdog_t = std::ptr::null_mut();
        // SAFETY: mod_watchdog keeps the name for as long as pconf lives, so
        // it is copied there.
        let status = unsafe {
            let name = ffi::apr_pstrdup(pconf.raw(), name.as_ptr());
            get(&mut watchdog, name, 0, 1, pconf.raw())
        };
        if status != ffi::APR_SUCCESS as ffi::apr_status_t {
            return Err(format!("mod_watchdog gave no child singleton watchdog (APR status {status})"));
        }
        Ok(Watchdog(watchdog))
    }

    /// Calls `callback(state, data, pool)` every `interval_us`.
    ///
    /// # Safety
    /// `data` must stay valid for as long as the configuration lives, and
    /// be usable from the watchdog's thread.
    pub unsafe fn register(
        &self,
        interval_us: u64,
        data: *mut c_void,
        callback: WatchdogCallback,
    ) -> Result<(), String> {
        // SAFETY: when present, mod_watchdog.h gives the function this type.
        let register = unsafe {
            std::mem::transmute::<ffi::apr_opt_fn_t, ffi::apr_OFN_ap_watchdog_register_callback_t>(retrieve(
                c"ap_watchdog_register_callback",
            ))
        }
        .ok_or("mod_watchdog is not loaded")?;
        // SAFETY: the watchdog is live; data is the caller's promise.
        let status = unsafe { register(self.0, interval_us as ffi::apr_interval_time_t, data, Some(callback)) };
        if status != ffi::APR_SUCCESS as ffi::apr_status_t {
            return Err(format!("mod_watchdog refused the callback (APR status {status})"));
        }
        Ok(())
    }
}
