//! The `ICPQuery*` directives. Values are parsed by [`crate::config`]; this
//! file only moves them between httpd and [`ServerConfig`].

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{null, null_mut};

use super::server::{self, CacheGroup, ServerConfig};
use super::{c_bytes, ffi, guard, maps, module::icpquery_module, pool_str};
use crate::config::{self, ValueError};

/// httpd reads the table through a raw pointer in the module record; it is
/// never written.
pub struct Commands(pub [ffi::command_rec; 13]);
// SAFETY: the table holds pointers to 'static strings and functions only.
unsafe impl Sync for Commands {}

type Handler = unsafe extern "C" fn(*mut ffi::cmd_parms, *mut c_void, *const c_char) -> *const c_char;

/// A directive taking one word, or (`raw`) the rest of the line.
const fn directive(name: &'static CStr, f: Handler, raw: bool, help: &'static CStr) -> ffi::command_rec {
    ffi::command_rec {
        name: name.as_ptr(),
        func: if raw { ffi::cmd_func { raw_args: Some(f) } } else { ffi::cmd_func { take1: Some(f) } },
        cmd_data: null_mut(),
        req_override: ffi::RSRC_CONF as c_int,
        args_how: if raw { ffi::cmd_how_RAW_ARGS } else { ffi::cmd_how_TAKE1 },
        errmsg: help.as_ptr(),
    }
}

pub static COMMANDS: Commands = Commands([
    ffi::command_rec {
        name: c"ICPQueryMapper".as_ptr(),
        func: ffi::cmd_func { flag: Some(set_mapper) },
        cmd_data: null_mut(),
        req_override: ffi::RSRC_CONF as c_int,
        args_how: ffi::cmd_how_FLAG,
        errmsg: c"On or Off: answer the icpquerymap and icpqueryisrunning RewriteMaps".as_ptr(),
    },
    directive(
        c"ICPQueryTimeout",
        set_timeout,
        true,
        c"microseconds to wait for ICP replies (default 100000), or auto [min max]",
    ),
    directive(
        c"ICPQueryDeadTime",
        set_dead_time,
        false,
        c"seconds without a reply before a cache is dead (default 10)",
    ),
    directive(
        c"ICPQueryProbeInterval",
        set_probe_interval,
        false,
        c"seconds between probe queries to every cache; 0 is off (default 5)",
    ),
    directive(
        c"ICPQueryLog",
        set_log,
        false,
        c"file the module logs to (relative to ServerRoot), or \"|program\" as for CustomLog",
    ),
    directive(c"ICPQueryLogLevel", set_log_level, false, c"0 problems, 1 results, 2 information, 3 debug (default 0)"),
    directive(c"ICPQueryBindAddr", set_bind_addr, false, c"local address ICP queries are sent from"),
    directive(
        c"ICPQueryPeer",
        add_peer,
        true,
        c"host[:port] [round=1|2] of a cache to query by unicast (port 3130 if omitted)",
    ),
    directive(
        c"ICPQueryMCastAddr",
        add_mcast_group,
        false,
        c"group[:port] of a multicast group to query (port 3130 if omitted)",
    ),
    directive(c"ICPQueryMCastHops", set_mcast_hops, false, c"multicast TTL, 1 to 255 (default 3)"),
    directive(c"ICPQueryCARP", set_carp, false, c"squid or draft: how icpquerycarp hashes URLs (default squid)"),
    directive(
        c"<ICPQueryGroup",
        group_section,
        true,
        c"<ICPQueryGroup name>: a cache group with its own ICPQuery* settings and maps",
    ),
    ffi::command_rec {
        name: null(),
        func: ffi::cmd_func { no_args: None },
        cmd_data: null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: null(),
    },
]);

/// The configuration a directive applies to: the cache group whose block
/// is being read (httpd hands it over as `mconfig`, see [`group_section`]),
/// else the server being configured.
///
/// # Safety
/// `cmd` and `mconfig` as httpd passes them to a directive handler of this
/// module, which has no per-directory configuration of its own: `mconfig`
/// is NULL outside an `<ICPQueryGroup>` block.
unsafe fn target<'a>(cmd: *mut ffi::cmd_parms, mconfig: *mut c_void) -> &'a mut ServerConfig {
    // SAFETY: see above; both are pool-owned ServerConfigs.
    unsafe {
        match mconfig.is_null() {
            true => server::of_mut((*cmd).server),
            false => &mut *mconfig.cast::<ServerConfig>(),
        }
    }
}

/// Applies one directive value to the configuration being read; an error
/// becomes httpd's "Syntax error on line N" message.
unsafe fn apply(
    cmd: *mut ffi::cmd_parms,
    mconfig: *mut c_void,
    arg: *const c_char,
    set: impl FnOnce(&mut ServerConfig, &str) -> Result<(), ValueError>,
) -> *const c_char {
    // SAFETY: httpd passes a live cmd_parms and argument string.
    let (pool, value) = unsafe { ((*cmd).pool, String::from_utf8_lossy(c_bytes(arg)).into_owned()) };
    let fallback = c"mod_icpquery: internal error while reading this directive (see the error log)".as_ptr();
    guard(fallback, || {
        // SAFETY: the configuration being read exists and is ours alone.
        match set(unsafe { target(cmd, mconfig) }, &value) {
            Ok(()) => null(),
            // SAFETY: cmd->pool lives as long as httpd needs the message.
            Err(e) => unsafe { pool_str(pool, &e.to_string()) },
        }
    })
}

/// Whether mod_rewrite is loaded (it registers its optional function when
/// loaded, and every LoadModule runs before the first ordinary directive).
fn rewrite_loaded() -> bool {
    // SAFETY: a lookup by name in APR's table of optional functions.
    unsafe { ffi::apr_dynamic_fn_retrieve(c"ap_register_rewrite_mapfunc".as_ptr()).is_some() }
}

unsafe extern "C" fn set_mapper(cmd: *mut ffi::cmd_parms, mconfig: *mut c_void, on: c_int) -> *const c_char {
    // SAFETY: as for every directive handler.
    unsafe {
        let pool = (*cmd).pool;
        guard(null(), || {
            if on != 0 && !rewrite_loaded() {
                return pool_str(
                    pool,
                    "ICPQueryMapper \"On\": mod_rewrite is not loaded; expected LoadModule rewrite_module \
                     before it, since the maps are used through RewriteMap int:icpquerymap and int:icpqueryisrunning",
                )
                .cast_const();
            }
            target(cmd, mconfig).mapper = Some(on != 0);
            null()
        })
    }
}

/// A directive handler that parses its one argument and stores the result.
macro_rules! value_directive {
    ($handler:ident, |$conf:ident, $value:ident| $store:expr) => {
        unsafe extern "C" fn $handler(
            cmd: *mut ffi::cmd_parms,
            mconfig: *mut c_void,
            arg: *const c_char,
        ) -> *const c_char {
            // SAFETY: httpd calls directive handlers with live arguments.
            unsafe {
                apply(cmd, mconfig, arg, |$conf: &mut ServerConfig, $value: &str| {
                    $store;
                    Ok(())
                })
            }
        }
    };
}

value_directive!(set_timeout, |c, v| c.timeout = Some(config::timeout(v)?));
value_directive!(set_dead_time, |c, v| c.dead_time = Some(config::dead_time(v)?));
value_directive!(set_probe_interval, |c, v| c.probe_interval = Some(config::probe_interval(v)?));
value_directive!(set_log_level, |c, v| c.log_level = Some(config::log_level(v)?));
value_directive!(set_bind_addr, |c, v| c.bind = Some(config::bind_addr(v)?));
value_directive!(add_peer, |c, v| c.peers.push(config::peer(v)?));
value_directive!(add_mcast_group, |c, v| c.groups.push(config::mcast_group(v)?));
value_directive!(set_carp, |c, v| c.carp_variant = Some(config::carp_variant(v)?));
value_directive!(set_mcast_hops, |c, v| c.mcast_hops = Some(config::mcast_hops(v)?));

unsafe extern "C" fn set_log(cmd: *mut ffi::cmd_parms, mconfig: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: as for every directive handler; ap_server_root_relative
    // returns NULL for a path it cannot make absolute.
    unsafe {
        // "|program": a piped log, as httpd's own; the command is never a
        // ServerRoot-relative path (the program runs in ServerRoot).
        if c_bytes(arg).first() == Some(&b'|') {
            return apply(cmd, mconfig, arg, |c, v| {
                let program = &v[1..];
                let bare = program.strip_prefix(['|', '$']).unwrap_or(program);
                if bare.trim().is_empty() {
                    return Err(ValueError {
                        directive: "ICPQueryLog",
                        value: v.escape_debug().to_string(),
                        problem: "no program after the |".into(),
                        expected: "\"|program args\" or \"|$shell command\"",
                    });
                }
                c.log_target = Some(server::LogTarget::Pipe(program.to_owned()));
                Ok(())
            });
        }
        let path = ffi::ap_server_root_relative((*cmd).pool, arg);
        let path = (!path.is_null()).then(|| String::from_utf8_lossy(c_bytes(path)).into_owned());
        apply(cmd, mconfig, arg, move |c, v| match path {
            Some(p) if !v.trim().is_empty() => {
                c.log_target = Some(server::LogTarget::File(p.into()));
                Ok(())
            }
            _ => Err(ValueError {
                directive: "ICPQueryLog",
                value: v.escape_debug().to_string(),
                problem: "not a usable file path".into(),
                expected: "a file path, absolute or relative to ServerRoot, or \"|program\"",
            }),
        })
    }
}

/// Most cache groups one configuration may declare: each needs its own
/// map functions, and C function pointers cannot be made at run time.
pub const MAX_CACHE_GROUPS: usize = maps::GROUP_MAPS.len();

/// `<ICPQueryGroup name>`: reads the block's ICPQuery* directives into a
/// cache group of its own and registers its maps with mod_rewrite as
/// `icpquerymap:name`, `icpqueryisrunning:name` and `icpquerycarp:name`.
unsafe extern "C" fn group_section(
    cmd: *mut ffi::cmd_parms,
    mconfig: *mut c_void,
    arg: *const c_char,
) -> *const c_char {
    // SAFETY: httpd passes a live cmd_parms whose directive is this block.
    unsafe {
        let pool = (*cmd).pool;
        let refuse = |message: String| pool_str(pool, &message).cast_const();
        guard(c"mod_icpquery: internal error while reading <ICPQueryGroup>".as_ptr(), || {
            let raw = String::from_utf8_lossy(c_bytes(arg)).into_owned();
            let name = raw.trim().strip_suffix('>').unwrap_or("").trim();
            let expected = "expected <ICPQueryGroup name> with a name of letters, digits, '-' and '_'";
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return refuse(format!("<ICPQueryGroup {}: not a group name; {expected}", raw.escape_debug()));
            }
            if !mconfig.is_null() {
                return refuse(format!("<ICPQueryGroup {name}>: groups cannot be nested"));
            }
            if (*(*cmd).server).is_virtual != 0 {
                return refuse(format!(
                    "<ICPQueryGroup {name}>: belongs in the main server configuration, not in a virtual host \
                     (its maps are used by every server)"
                ));
            }
            if !rewrite_loaded() {
                return refuse(format!(
                    "<ICPQueryGroup {name}>: mod_rewrite is not loaded; expected LoadModule rewrite_module before it"
                ));
            }
            let main = server::of_mut((*cmd).server);
            if main.cache_groups.iter().any(|g| g.name == name) {
                return refuse(format!("<ICPQueryGroup {name}>: a group of that name is already declared"));
            }
            let index = main.cache_groups.len();
            if index == MAX_CACHE_GROUPS {
                return refuse(format!("<ICPQueryGroup {name}>: at most {MAX_CACHE_GROUPS} groups can be declared"));
            }
            // A group's maps are what it is for: they answer unless the block
            // says ICPQueryMapper Off.
            let config = Box::new(ServerConfig { mapper: Some(true), ..ServerConfig::default() });
            main.cache_groups.push(CacheGroup { name: name.to_owned(), config });
            let group: *mut ServerConfig = &mut *main.cache_groups[index].config;
            if let Err(message) = maps::register(pool, Some((name, index))) {
                return refuse(format!("<ICPQueryGroup {name}>: {message}"));
            }
            // Read the block with the group as the directives' `mconfig`.
            let vector = ffi::ap_create_per_dir_config(pool);
            ffi::ap_set_module_config(vector, std::ptr::addr_of!(icpquery_module), group.cast());
            ffi::ap_walk_config((*(*cmd).directive).first_child, cmd, vector)
        })
    }
}
