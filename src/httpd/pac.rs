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
//! [`balancer_members`]).
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
use super::safe::{self, guard, Level, Request, Server, Worker};
use crate::engine::carp::Variant;
use crate::pac::{self, PacMember};
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

/// Why the caches a `<Location>` names have no PAC file.
#[derive(Debug, thiserror::Error)]
enum Unavailable {
    #[error("the server's configuration is not settled")]
    NotSettled,
    #[error("no <ICPQueryGroup {0}> is declared")]
    NoGroup(String),
    #[error("mod_proxy's balancers cannot be read (see the error log at startup)")]
    NoProxy,
    #[error("this server has no {0}")]
    NoBalancer(String),
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
fn file(r: Request<'_>, settings: &PacSettings) -> Result<File, Unavailable> {
    let read_at = safe::main_server().map(|main| conf::of(main).read_at_us);
    let fallback = settings.fallback();
    let peers_file = |settled: &conf::Settled| {
        let port = settings.proxy_port.unwrap_or(DEFAULT_PROXY_PORT);
        let members = pac::peer_members(&settled.cluster.peers, port);
        File { text: pac::render(&members, settled.carp.variant(), fallback), modified_us: read_at }
    };
    match settings.caches() {
        PacCaches::Server => {
            let settled = conf::of(r.server()).settled.as_ref().ok_or(Unavailable::NotSettled)?;
            Ok(peers_file(settled))
        }
        PacCaches::Group(name) => {
            let settled = conf::group_named(&name).ok_or(Unavailable::NoGroup(name))?;
            Ok(peers_file(settled))
        }
        PacCaches::Balancer(name) => {
            let (members, variant) = balancer_members(r.server(), &name, settings.proxy_port)?;
            Ok(File { text: pac::render(&members, variant, fallback), modified_us: None })
        }
    }
}

/// Balancer `name`'s members as a PAC file's, as they stand now: the CARP
/// array bycache ranks them by (every member's host and loadfactor, in
/// configuration order), each reached at its host on `proxy_port` or its
/// own URL's port; members an operator took out of service (disabled,
/// stopped, drained, hot standby or spare) or that are no HTTP member keep
/// their place but take no URL. With the balancer's CARP variant.
fn balancer_members(
    s: Server<'_>,
    name: &str,
    proxy_port: Option<u16>,
) -> Result<(Vec<PacMember>, Variant), Unavailable> {
    let (proxy, members) = bycache::proxy().ok_or(Unavailable::NoProxy)?;
    let balancer = proxy.balancer(s, name.as_bytes()).ok_or_else(|| Unavailable::NoBalancer(name.to_string()))?;
    let caches = conf::of(s).balancers.iter().find(|c| c.name.as_bytes() == balancer.name());
    let variant = caches.map_or(conf::of(s).settings.carp_variant(), |c| c.settled.carp.variant());
    let pac_member = |w: Worker<'_>| {
        let host = String::from_utf8_lossy(w.host()).into_owned();
        let route_host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let route = format!("PROXY {route_host}:{}", proxy_port.unwrap_or(w.port()));
        let out_of_service = match matches!(w.scheme(), b"http" | b"https") {
            false => Some(format!("{} member", String::from_utf8_lossy(w.scheme()))),
            true => out_of_service(w.status()).map(str::to_string),
        };
        PacMember { name: host, weight: w.lbfactor().max(0) as u32, route, out_of_service }
    };
    Ok((balancer.workers(members).map(pac_member).collect(), variant))
}

/// Why a member with these status bits takes no new requests by an
/// operator's (or its configuration's) choice; `None` when it does. A
/// member in error is not counted out: that is its health, which changes
/// far faster than a PAC file is fetched again.
fn out_of_service(status: u32) -> Option<&'static str> {
    [
        (ffi::PROXY_WORKER_DISABLED, "disabled"),
        (ffi::PROXY_WORKER_STOPPED, "stopped"),
        (ffi::PROXY_WORKER_DRAIN, "drained"),
        (ffi::PROXY_WORKER_HOT_STANDBY, "hot standby"),
        (ffi::PROXY_WORKER_HOT_SPARE, "hot spare"),
    ]
    .into_iter()
    .find(|(bit, _)| status & bit != 0)
    .map(|(_, why)| why)
}
