//! The module's per-directory configuration: what the `ICPQueryPAC*`
//! directives of a `<Location>` (or a server's defaults) say, merged by
//! httpd for each request as it merges every module's; and, in the one
//! vector an `<ICPQueryGroup>` block is read with, the group being read.
//!
//! Since the module has a per-directory configuration, httpd hands every
//! directive handler one as `mconfig`, server directives included: the
//! group pointer is how those find the group they belong to.

use std::ffi::{c_char, c_void};
use std::ptr::NonNull;

use super::conf::ServerConfig;
use super::ffi;
use super::safe::{guard, Pool, Request};
use crate::settings::pac::PacSettings;

#[derive(Default)]
pub struct DirConfig {
    pub pac: PacSettings,
    /// Set only while an `<ICPQueryGroup>` block is read: its group's
    /// configuration, which lives in the main server's (boxed, so it does
    /// not move) for as long as this vector does.
    pub group: Option<NonNull<ServerConfig>>,
}

impl DirConfig {
    /// The per-directory configuration of the section `r` was mapped to.
    pub fn of(r: Request<'_>) -> Option<&DirConfig> {
        // SAFETY: the module's per-directory slot only ever holds what
        // create_dir_config, merge_dir_config and `<ICPQueryGroup>` made: a
        // DirConfig in a pool that outlives the request.
        unsafe { r.dir_config::<DirConfig>() }
    }
}

pub extern "C" fn create_dir_config(pool: *mut ffi::apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: httpd passes a live pool that outlives the configuration.
        let pool = unsafe { Pool::from_raw(pool) }.expect("a configuration pool");
        std::ptr::from_mut(pool.own(DirConfig::default())).cast()
    })
}

pub extern "C" fn merge_dir_config(pool: *mut ffi::apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: httpd passes a live pool (the request's, when merging for
        // one) and two configurations made by create_dir_config or merged.
        let (pool, base, add) =
            unsafe { (Pool::from_raw(pool).expect("a pool"), &*base.cast::<DirConfig>(), &*add.cast::<DirConfig>()) };
        let merged = DirConfig { pac: PacSettings::merge(&base.pac, &add.pac), group: None };
        std::ptr::from_mut(pool.own(merged)).cast()
    })
}
