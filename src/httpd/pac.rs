//! `SetHandler icpquery-pac`: the Proxy Auto-Config file of a set of
//! caches, made from the running configuration by the same writer as
//! `icpquery pac` ([`crate::pac`]), so browsers route each URL to the
//! cache `int:icpquerycarp` (or bycache) names for it.
//!
//! Which caches, the proxy port and the fallback come from the
//! `ICPQueryPAC*` directives of the handler's `<Location>` (see
//! [`PacSettings`]). The file never depends on the caches' health: it is
//! cached for long, and every answer lists the next members, so a browser
//! passes a dead cache by itself; a member an operator took out of service
//! keeps its place in the array and passes its URLs on (see
//! `bycache::pac_members`).
//!
//! Validators: a strong `ETag` from the bytes, and for a server's or
//! group's peers (fixed at startup) `Last-Modified` at the time the
//! configuration was read; a balancer's members can change in
//! balancer-manager at any time, so its file has the ETag only.

use std::ffi::c_int;

use super::bycache;
use super::conf;
use super::dirconf::DirConfig;
use super::ffi;
use super::safe::{self, guard, Level, Request};
use crate::pac;
use crate::settings::pac::{PacCaches, PacSettings, DEFAULT_PROXY_PORT};

/// The `SetHandler` name.
const HANDLER: &[u8] = b"icpquery-pac";

/// How long a browser or proxy may use its copy before revalidating (a
/// 304 when nothing changed): short, because a restart can change the
/// members.
const CACHE_CONTROL: &str = "max-age=300";

pub fn register_hooks() {
    safe::register_handler(handler);
}

/// A PAC file and, when it depends on the configuration alone, when that
/// was read.
struct File {
    text: String,
    modified_us: Option<u64>,
}

extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard(ffi::DECLINED as c_int, || {
        // SAFETY: httpd passes the live request this handler may serve.
        let Some(r) = (unsafe { Request::from_raw(r) }) else { return ffi::DECLINED as c_int };
        if r.handler() != HANDLER {
            return ffi::DECLINED as c_int;
        }
        r.allow_get();
        if !r.is_get() {
            return ffi::HTTP_METHOD_NOT_ALLOWED as c_int;
        }
        let settings = DirConfig::of(r).map(|d| d.pac.clone()).unwrap_or_default();
        let file = match file(r, &settings) {
            Ok(file) => file,
            Err(why) => {
                r.log(Level::ERR, &format!("SetHandler icpquery-pac: {why}"));
                return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
            }
        };
        r.set_content_type(c"application/x-ns-proxy-autoconfig");
        r.set_header(c"ETag", &pac::etag(file.text.as_bytes()));
        r.set_header(c"Cache-Control", CACHE_CONTROL);
        if let Some(modified) = file.modified_us {
            r.set_last_modified(modified);
        }
        let status = r.meets_conditions();
        if status != ffi::OK as c_int {
            return status;
        }
        r.set_content_length(file.text.len());
        if !r.header_only() {
            r.write(&file.text);
        }
        ffi::OK as c_int
    })
}

/// The file `settings` ask for, for a request to server `r.server()`; why
/// not, when the caches it names do not exist.
fn file(r: Request<'_>, settings: &PacSettings) -> Result<File, String> {
    let read_at = safe::main_server().map(|main| conf::of(main).read_at_us);
    let fallback = settings.fallback();
    let peers_file = |settled: &conf::Settled| {
        let port = settings.proxy_port.unwrap_or(DEFAULT_PROXY_PORT);
        let members = pac::peer_members(&settled.cluster.peers, port);
        File { text: pac::render(&members, settled.carp.variant(), fallback), modified_us: read_at }
    };
    match settings.caches() {
        PacCaches::Server => {
            let settled = conf::of(r.server()).settled.as_ref().ok_or("the server's configuration is not settled")?;
            Ok(peers_file(settled))
        }
        PacCaches::Group(name) => {
            let settled = conf::group_named(&name).ok_or_else(|| format!("no <ICPQueryGroup {name}> is declared"))?;
            Ok(peers_file(settled))
        }
        PacCaches::Balancer(name) => {
            let (members, variant) = bycache::pac_members(r.server(), &name, settings.proxy_port)?;
            Ok(File { text: pac::render(&members, variant, fallback), modified_us: None })
        }
    }
}
