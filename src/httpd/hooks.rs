//! The startup hooks: the maps are registered before the configuration is
//! read; once it is read, every server settles its configuration, gets its
//! shared health records, and the probes start.

use std::ffi::c_int;
use std::ptr::null;

use super::conf;
use super::ffi;
use super::logs::{self, LogOpener};
use super::safe::{self, guard, Level, Pool, Predecessors, Server};
use super::{bycache, maps, pac, probe, shared, status};

pub extern "C" fn register_hooks(pool: *mut ffi::apr_pool_t) {
    // mod_rewrite creates its table of map functions in its own pre_config,
    // so ours must run after it.
    static AFTER_REWRITE: Predecessors = Predecessors([c"mod_rewrite.c".as_ptr(), null()]);
    guard((), || {
        safe::register_pre_config(pre_config, &AFTER_REWRITE);
        safe::register_post_config(post_config);
        status::register_hooks();
        pac::register_hooks();
        // SAFETY: httpd passes its configuration pool (where providers live).
        if let Some(pool) = unsafe { Pool::from_raw(pool) } {
            bycache::register(pool);
        }
    })
}

/// Registers the map functions with mod_rewrite, before `RewriteMap` lines
/// are read (mod_rewrite checks `int:` names as it reads them).
extern "C" fn pre_config(pconf: *mut ffi::apr_pool_t, _: *mut ffi::apr_pool_t, _: *mut ffi::apr_pool_t) -> c_int {
    guard(ffi::OK as c_int, || {
        // SAFETY: httpd passes the configuration pool, where mod_rewrite's
        // table of maps lives too.
        if let Some(pconf) = unsafe { Pool::from_raw(pconf) } {
            // Without mod_rewrite there is nothing to register with: only
            // `ICPQueryMapper On` needs it, and it says so at configtest.
            let _ = maps::register(pconf, None);
        }
        ffi::OK as c_int
    })
}

/// A hook's way to stop httpd at startup.
const HTTP_INTERNAL_SERVER_ERROR: c_int = 500;

/// Settles every server's configuration: opens logs and fixes the clusters.
extern "C" fn post_config(
    pconf: *mut ffi::apr_pool_t,
    _: *mut ffi::apr_pool_t,
    _: *mut ffi::apr_pool_t,
    main: *mut ffi::server_rec,
) -> c_int {
    guard(ffi::DECLINED as c_int, || {
        // httpd reads its configuration twice at startup; the first pass only
        // checks it, so open nothing then.
        if safe::first_startup_pass() {
            return ffi::OK as c_int;
        }
        // SAFETY: httpd passes the configuration pool and the live server
        // list of the configuration it just read; 'static stands for "as
        // long as this configuration".
        let (Some(pconf), Some(main)) = (unsafe { Pool::from_raw(pconf) }, unsafe { Server::from_raw(main) }) else {
            return ffi::DECLINED as c_int;
        };
        match settle(pconf, main) {
            Ok(()) => ffi::OK as c_int,
            Err(()) => HTTP_INTERNAL_SERVER_ERROR, // httpd stops
        }
    })
}

fn settle(pconf: Pool<'static>, main: Server<'static>) -> Result<(), ()> {
    // Piped logs live in pconf: started again for every configuration,
    // stopped when it is cleared (restart, shutdown).
    let mut opener = LogOpener::new(pconf);
    for s in main.list() {
        // SAFETY: post_config, in the parent, before any child: this is the
        // only reference to the server's configuration.
        let conf = unsafe { conf::of_mut(s) };
        if let Err(e) = conf.settle(&mut opener) {
            s.log(Level::ERR, e.raw_os_error().unwrap_or(0), &logs::open_error(conf.settings.log.as_ref(), &e));
            return Err(());
        }
        for group in &mut conf.groups {
            if let Err(e) = group.config.settle(&mut opener) {
                let why = logs::open_error(group.config.settings.log.as_ref(), &e);
                s.log(Level::ERR, e.raw_os_error().unwrap_or(0), &format!("<ICPQueryGroup {}>: {why}", group.name));
                return Err(());
            }
        }
        let settled = conf.settled.as_ref().expect("just settled");
        if settled.mapper && settled.cluster.is_empty() {
            let whose = if s.is_virtual() { format!("virtual host {}", s.label()) } else { "the main server".into() };
            let message = format!(
                "ICPQueryMapper is On for {whose} but no ICPQueryPeer or ICPQueryMCastAddr is configured: \
                 icpquerymap will always return NULL"
            );
            s.log(Level::WARNING, 0, &message);
        }
    }
    if let Err(message) = bycache::settle(main, &mut opener) {
        main.log(Level::ERR, 0, &message);
        return Err(());
    }
    if let Err(message) = shared::attach_health(pconf, main) {
        main.log(Level::ERR, 0, &message);
        return Err(());
    }
    // SAFETY: as above, for the main server.
    unsafe { conf::of_mut(main) }.read_at_us = crate::engine::health::now_us();
    // Before mod_watchdog's own post_config (APR_HOOK_LAST), which starts
    // the watchdogs that have callbacks.
    probe::start(pconf, main);
    Ok(())
}
