//! The module's slots in httpd's configuration vectors.
//!
//! httpd keeps one pointer per module in each server's, directory's and
//! request's configuration vector, at the module's `module_index`. The
//! module record is defined in `record.rs`, which imports the hooks and
//! directives; it is reached here by its exported symbol, so that nothing
//! in the module imports the file that holds the record.

use std::ffi::{c_int, c_void};
use std::ptr::addr_of;

use super::super::ffi;
use super::{Pool, Server};

extern "C" {
    /// `record.rs`'s `#[no_mangle]` module record, the symbol httpd loads.
    #[link_name = "icpquery_module"]
    static MODULE: ffi::module;
}

fn record() -> *const ffi::module {
    addr_of!(MODULE)
}

/// The module's index in every configuration vector.
pub fn index() -> c_int {
    // SAFETY: httpd writes module_index once, while loading the module and
    // before any of its code runs; afterwards it is only read.
    unsafe { (*record()).module_index }
}

/// The module's slot of `s`'s server configuration vector.
///
/// # Safety
/// The slot must hold NULL or a `T` (what create/merge_server_config
/// made), live as long as `'s`.
pub unsafe fn server_config<'s, T>(s: Server<'s>) -> Option<&'s mut T> {
    // SAFETY: module_config is the server's live vector; see above.
    unsafe { ffi::ap_get_module_config(s.module_config(), record()).cast::<T>().as_mut() }
}

/// The module's slot of a request's configuration vector.
///
/// # Safety
/// `vector` is a live request configuration vector whose slot holds NULL
/// or a `T` living as long as `'r`.
pub(super) unsafe fn get<'r, T>(vector: *mut ffi::ap_conf_vector_t) -> Option<&'r mut T> {
    // SAFETY: guaranteed by the caller.
    unsafe { ffi::ap_get_module_config(vector, record()).cast::<T>().as_mut() }
}

/// # Safety
/// `vector` is a live configuration vector; `value` lives as long as it.
pub(super) unsafe fn set(vector: *mut ffi::ap_conf_vector_t, value: *mut c_void) {
    // SAFETY: guaranteed by the caller.
    unsafe { ffi::ap_set_module_config(vector, record(), value) }
}

/// A new per-directory vector in `pool` whose slot for this module is
/// `value` (how a block's directives find what they configure).
pub(super) fn per_dir_vector(pool: Pool<'_>, value: *mut c_void) -> *mut ffi::ap_conf_vector_t {
    // SAFETY: the pool is live; the vector is its own, the slot ours.
    unsafe {
        let vector = ffi::ap_create_per_dir_config(pool.raw());
        set(vector, value);
        vector
    }
}
