//! The module record httpd finds by `LoadModule icpquery_module`.
//!
//! This file names the module's entry points; nothing in the module
//! imports it (the configuration slots reach the record by its exported
//! symbol, see `safe/module.rs`), so dependencies run one way.

use std::ffi::{c_int, c_ulong};
use std::ptr::null_mut;

use super::{conf, dirconf, directives, ffi, hooks};

/// httpd fills in `module_index`, `next` and `dynamic_load_handle` while
/// loading; nothing else writes it.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut icpquery_module: ffi::module = ffi::module {
    version: ffi::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    // The name httpd shows and matches `LogLevel icpquery:...` against.
    name: c"mod_icpquery.c".as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: ffi::MODULE_MAGIC_COOKIE as c_ulong,
    rewrite_args: None,
    create_dir_config: Some(dirconf::create_dir_config),
    merge_dir_config: Some(dirconf::merge_dir_config),
    create_server_config: Some(conf::create_server_config),
    merge_server_config: Some(conf::merge_server_config),
    cmds: &directives::COMMANDS.0 as *const ffi::command_rec,
    register_hooks: Some(hooks::register_hooks),
    // Every virtual host gets a configuration of its own, merged from the
    // main server's, even without ICPQuery* lines: otherwise httpd hands
    // it the main server's very record, and the main server's cache groups
    // and balancers would be listed again under it (status page, metrics).
    flags: ffi::AP_MODULE_FLAG_ALWAYS_MERGE as c_int,
};
