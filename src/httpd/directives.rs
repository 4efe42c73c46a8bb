//! The `ICPQuery*` directives as httpd's command table, made from the
//! settings' table ([`DIRECTIVES`]); their values are applied by
//! [`Settings::apply`], so this file only moves them between httpd and the
//! configuration being read.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::{null, null_mut, NonNull};

use super::conf::{self, CacheGroup, ServerConfig};
use super::dirconf::DirConfig;
use super::ffi;
use super::maps;
use super::safe::{self, guard, Cmd};
use crate::settings::directives::{Args, Directive, Id, Scope, DIRECTIVES};
use crate::settings::resolve::SystemResolver;
use crate::settings::{Context, Refusal};

/// httpd reads the table through a raw pointer in the module record; it is
/// never written.
pub struct Commands(pub [ffi::command_rec; DIRECTIVES.len() + 1]);
// SAFETY: the table holds pointers to 'static strings and functions only.
unsafe impl Sync for Commands {}

pub static COMMANDS: Commands = Commands(commands());

/// One command_rec per directive, then the terminator. `cmd_data` holds
/// the directive's index in [`DIRECTIVES`].
const fn commands() -> [ffi::command_rec; DIRECTIVES.len() + 1] {
    let end = ffi::command_rec {
        name: null(),
        func: ffi::cmd_func { no_args: None },
        cmd_data: null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: null(),
    };
    let mut table = [end; DIRECTIVES.len() + 1];
    let mut i = 0;
    while i < DIRECTIVES.len() {
        let d = &DIRECTIVES[i];
        let (func, args_how) = match d.args {
            Args::Flag => (ffi::cmd_func { flag: Some(set_flag) }, ffi::cmd_how_FLAG),
            Args::One => (ffi::cmd_func { take1: Some(set_value) }, ffi::cmd_how_TAKE1),
            Args::Raw => (ffi::cmd_func { raw_args: Some(set_value) }, ffi::cmd_how_RAW_ARGS),
            Args::Section => (ffi::cmd_func { raw_args: Some(group_section) }, ffi::cmd_how_RAW_ARGS),
        };
        table[i] = ffi::command_rec {
            name: d.name.as_ptr(),
            func,
            cmd_data: i as *mut c_void,
            req_override: match d.scope {
                Scope::Server => ffi::RSRC_CONF as c_int,
                Scope::Directory => (ffi::RSRC_CONF | ffi::ACCESS_CONF) as c_int,
            },
            args_how,
            errmsg: d.help.as_ptr(),
        };
        i += 1;
    }
    table
}

/// The per-directory configuration httpd hands a directive as `mconfig`:
/// the section's or the server's defaults (create_dir_config), or the one
/// an `<ICPQueryGroup>` block is read with (see [`group_section`]).
///
/// # Safety
/// `mconfig` as httpd passes it to this module's directive handlers;
/// nothing else refers to the configuration being read.
unsafe fn dir_config<'c>(mconfig: *mut c_void) -> Option<&'c mut DirConfig> {
    // SAFETY: the module's per-directory slot only holds DirConfigs.
    unsafe { mconfig.cast::<DirConfig>().as_mut() }
}

/// The configuration a server directive applies to: the cache group whose
/// block is being read, else the server being configured.
///
/// # Safety
/// As for [`dir_config`].
unsafe fn target<'c>(cmd: Cmd<'c>, mconfig: *mut c_void) -> &'c mut ServerConfig {
    // SAFETY: see above; a group's configuration is boxed in the main
    // server's and outlives the reading of its block.
    match unsafe { dir_config(mconfig) }.and_then(|d| d.group) {
        Some(group) => unsafe { &mut *group.as_ptr() },
        None => unsafe { conf::of_mut(cmd.server()) },
    }
}

/// Applies `value` for the directive being read; a refusal becomes httpd's
/// "Syntax error on line N" message.
fn apply(cmd: *mut ffi::cmd_parms, mconfig: *mut c_void, value: &str) -> *const c_char {
    let fallback = c"mod_icpquery: internal error while reading this directive (see the error log)".as_ptr();
    guard(fallback, || {
        // SAFETY: httpd passes the live cmd_parms of this handler call.
        let Some(cmd) = (unsafe { Cmd::from_raw(cmd) }) else { return fallback };
        let directive: &Directive = &DIRECTIVES[cmd.data()];
        if directive.id == Id::Mapper && value == "On" && !safe::rewrite_loaded() {
            return cmd.pool().str(
                "ICPQueryMapper \"On\": mod_rewrite is not loaded; expected LoadModule rewrite_module \
                 before it, since the maps are used through RewriteMap int:icpquerymap and int:icpqueryisrunning",
            );
        }
        if directive.scope == Scope::Directory {
            // SAFETY: httpd calls handlers with `mconfig` as `dir_config` expects.
            let Some(dir) = (unsafe { dir_config(mconfig) }) else { return fallback };
            if dir.group.is_some() {
                return cmd.pool().str(&format!(
                    "{} is not allowed inside <ICPQueryGroup>; expected it in the <Location> of SetHandler \
                     icpquery-pac (ICPQueryPACCaches group NAME serves a group's caches)",
                    directive.name()
                ));
            }
            return match dir.pac.apply(directive.id, value) {
                Ok(()) => null(),
                Err(Refusal(message)) => cmd.pool().str(&message),
            };
        }
        let cx = Context { resolver: &SystemResolver, server_relative: &|path| cmd.server_root_relative(path) };
        // SAFETY: httpd calls handlers with `mconfig` as `target` expects.
        let settings = &mut unsafe { target(cmd, mconfig) }.settings;
        match settings.apply(directive.id, value, &cx) {
            Ok(()) => null(),
            Err(Refusal(message)) => cmd.pool().str(&message),
        }
    })
}

/// TAKE1 and RAW_ARGS directives.
extern "C" fn set_value(cmd: *mut ffi::cmd_parms, mconfig: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: httpd passes the argument as a C string in its pool.
    let value = String::from_utf8_lossy(unsafe { safe::c_bytes(arg) }).into_owned();
    apply(cmd, mconfig, &value)
}

/// FLAG directives: httpd has checked the `On`/`Off` itself.
extern "C" fn set_flag(cmd: *mut ffi::cmd_parms, mconfig: *mut c_void, on: c_int) -> *const c_char {
    apply(cmd, mconfig, if on != 0 { "On" } else { "Off" })
}

/// Most cache groups one configuration may declare: each needs its own
/// map functions, and C function pointers cannot be made at run time.
pub const MAX_CACHE_GROUPS: usize = maps::GROUP_MAPS.len();

/// `<ICPQueryGroup name>`: reads the block's ICPQuery* directives into a
/// cache group of its own and registers its maps with mod_rewrite as
/// `icpquerymap:name`, `icpqueryisrunning:name` and `icpquerycarp:name`.
extern "C" fn group_section(cmd: *mut ffi::cmd_parms, mconfig: *mut c_void, arg: *const c_char) -> *const c_char {
    let fallback = c"mod_icpquery: internal error while reading <ICPQueryGroup>".as_ptr();
    guard(fallback, || {
        // SAFETY: httpd passes the live cmd_parms of this block and its
        // arguments as a C string.
        let (Some(cmd), raw) = (unsafe { Cmd::from_raw(cmd) }, unsafe { safe::c_bytes(arg) }) else {
            return fallback;
        };
        let refuse = |message: String| cmd.pool().str(&message).cast_const();
        let raw = String::from_utf8_lossy(raw);
        let name = match crate::settings::values::group_name(&raw) {
            Ok(name) => name,
            Err(message) => return refuse(message),
        };
        // SAFETY: httpd passes this module's per-directory configuration.
        if unsafe { dir_config(mconfig) }.is_some_and(|d| d.group.is_some()) {
            return refuse(format!("<ICPQueryGroup {name}>: groups cannot be nested"));
        }
        if cmd.server().is_virtual() {
            return refuse(format!(
                "<ICPQueryGroup {name}>: belongs in the main server configuration, not in a virtual host \
                 (its maps are used by every server)"
            ));
        }
        if !safe::rewrite_loaded() {
            return refuse(format!(
                "<ICPQueryGroup {name}>: mod_rewrite is not loaded; expected LoadModule rewrite_module before it"
            ));
        }
        // SAFETY: the main server's configuration, read by this thread only.
        let main = unsafe { conf::of_mut(cmd.server()) };
        if main.groups.iter().any(|g| g.name == name) {
            return refuse(format!("<ICPQueryGroup {name}>: a group of that name is already declared"));
        }
        let index = main.groups.len();
        if index == MAX_CACHE_GROUPS {
            return refuse(format!("<ICPQueryGroup {name}>: at most {MAX_CACHE_GROUPS} groups can be declared"));
        }
        main.groups.push(CacheGroup { name: name.to_owned(), config: Box::new(ServerConfig::group()) });
        let group = NonNull::from(&mut *main.groups[index].config);
        if let Err(message) = maps::register(cmd.pool(), Some((name, index))) {
            return refuse(format!("<ICPQueryGroup {name}>: {message}"));
        }
        let block = cmd.pool().own(DirConfig { group: Some(group), ..DirConfig::default() });
        match cmd.walk_block(std::ptr::from_mut(block).cast()) {
            Ok(()) => null(),
            Err(message) => message,
        }
    })
}
