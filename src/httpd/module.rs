//! The module record httpd finds by `LoadModule icpquery_module`, and the
//! startup hooks.

use std::ffi::{c_char, c_int, c_ulong};
use std::ptr::{null, null_mut};

use super::{directives::COMMANDS, errorlog, ffi, guard, maps, probe, server, shared};

/// The module record. httpd fills in `module_index`, `next` and
/// `dynamic_load_handle` while loading; nothing else writes it.
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
    create_dir_config: None,
    merge_dir_config: None,
    create_server_config: Some(server::create_server_config),
    merge_server_config: Some(server::merge_server_config),
    cmds: &COMMANDS.0 as *const ffi::command_rec,
    register_hooks: Some(register_hooks),
    flags: 0,
};

unsafe extern "C" fn register_hooks(_pool: *mut ffi::apr_pool_t) {
    // mod_rewrite creates its table of map functions in its own pre_config,
    // so ours must run after it.
    struct Predecessors([*const c_char; 2]);
    // SAFETY: constant pointers to 'static strings.
    unsafe impl Sync for Predecessors {}
    static AFTER_REWRITE: Predecessors = Predecessors([c"mod_rewrite.c".as_ptr(), null()]);
    guard((), || {
        // SAFETY: registering hooks is what this callback is for.
        unsafe {
            ffi::ap_hook_pre_config(Some(pre_config), AFTER_REWRITE.0.as_ptr(), null(), ffi::APR_HOOK_MIDDLE as c_int);
            ffi::ap_hook_post_config(Some(post_config), null(), null(), ffi::APR_HOOK_MIDDLE as c_int);
            super::status::register_hooks();
        }
    })
}

/// Registers the map functions with mod_rewrite, before `RewriteMap` lines
/// are read (mod_rewrite checks `int:` names as it reads them).
unsafe extern "C" fn pre_config(
    pconf: *mut ffi::apr_pool_t,
    _: *mut ffi::apr_pool_t,
    _: *mut ffi::apr_pool_t,
) -> c_int {
    guard(ffi::OK as c_int, || {
        // Without mod_rewrite there is nothing to register with: only
        // `ICPQueryMapper On` needs it, and it says so at configtest.
        // SAFETY: mod_rewrite's table of maps lives in pconf too.
        let _ = unsafe { maps::register(pconf, None) };
        ffi::OK as c_int
    })
}

/// Settles every server's configuration: opens logs and fixes the clusters.
unsafe extern "C" fn post_config(
    pconf: *mut ffi::apr_pool_t,
    _: *mut ffi::apr_pool_t,
    _: *mut ffi::apr_pool_t,
    main: *mut ffi::server_rec,
) -> c_int {
    // SAFETY: httpd passes the live server list; the configuration is only
    // touched by this thread until requests start.
    guard(ffi::DECLINED as c_int, || unsafe {
        // httpd reads its configuration twice at startup; the first pass only
        // checks it, so open nothing then.
        if ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int) == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as c_int {
            return ffi::OK as c_int;
        }
        // Piped logs live in pconf: started again for every configuration,
        // stopped when it is cleared (restart, shutdown).
        let mut logs = server::LogOpener::new(pconf);
        for s in shared::server_list(main) {
            let conf = server::of_mut(s);
            if let Err(e) = conf.settle(&mut logs) {
                let message = log_open_error(conf.log_target.as_ref(), &e);
                errorlog::server(s, errorlog::ERR, e.raw_os_error().unwrap_or(0), &message);
                return HTTP_INTERNAL_SERVER_ERROR; // httpd stops
            }
            for group in &mut conf.cache_groups {
                if let Err(e) = group.config.settle(&mut logs) {
                    let message = format!(
                        "<ICPQueryGroup {}>: {}",
                        group.name,
                        log_open_error(group.config.log_target.as_ref(), &e)
                    );
                    errorlog::server(s, errorlog::ERR, e.raw_os_error().unwrap_or(0), &message);
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
            }
            let settled = conf.settled.as_ref().expect("just settled");
            if settled.mapper && settled.cluster.is_empty() {
                let message = format!(
                    "ICPQueryMapper is On for {} but no ICPQueryPeer or ICPQueryMCastAddr is configured: \
                     icpquerymap will always return NULL",
                    server_name(s)
                );
                errorlog::server(s, errorlog::WARNING, 0, &message);
            }
        }
        if let Err(message) = shared::attach_health(pconf, main) {
            errorlog::server(main, errorlog::ERR, 0, &message);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        // Before mod_watchdog's own post_config (APR_HOOK_LAST), which starts
        // the watchdogs that have callbacks.
        probe::start(pconf, main);
        ffi::OK as c_int
    })
}

/// Why startup stops: the log named by `target` could not be opened.
fn log_open_error(target: Option<&server::LogTarget>, e: &std::io::Error) -> String {
    match target {
        Some(server::LogTarget::Pipe(program)) => format!("ICPQueryLog: cannot start piped log \"|{program}\": {e}"),
        Some(target) => format!("ICPQueryLog: cannot open \"{target}\" for appending: {e}"),
        None => format!("ICPQueryLog: {e}"),
    }
}

/// A hook's way to stop httpd at startup.
const HTTP_INTERNAL_SERVER_ERROR: c_int = 500;

/// "name:port" or "main server", for messages about a virtual host.
unsafe fn server_name(s: *const ffi::server_rec) -> String {
    // SAFETY: `s` is live; server_hostname is NULL or a C string.
    unsafe {
        if (*s).is_virtual == 0 {
            return "the main server".into();
        }
        let name = super::c_bytes((*s).server_hostname);
        format!("virtual host {}", crate::logfile::Escaped(name))
    }
}
