//! `ProxySet lbmethod=bycache`: mod_proxy_balancer sends each request to
//! the cache that holds it.
//!
//! The lookup runs once per request in the fixups phase, after mod_proxy
//! has mapped the request to `proxy:balancer://NAME/…` and before the
//! balancer picks (its finder runs with the balancer's lock held, where no
//! network I/O belongs): every member's host is asked over ICP for the URL
//! the member is about to be sent ([`key`]), and the members are ranked
//! ([`crate::engine::choice`]) into the request's state. The finder then
//! lets the balancer walk its usable members (lbsets, hot standbys, drained
//! and failed members, as byrequests does) and keeps the best-ranked; on a
//! retry after a failed member it reuses the same ranks. Members' status
//! bits are only read: mod_proxy, mod_proxy_hcheck and balancer-manager own
//! them.

mod key;

use std::ffi::{c_int, c_void, CStr};
use std::ptr::null_mut;
use std::sync::atomic::Ordering::Relaxed;

use self::key::Target;
use super::conf::{self, BalancerCaches, Settled};
use super::events::{ErrorLogAt, Events};
use super::ffi;
use super::logs::LogOpener;
use super::safe::{
    self, guard, Balancer, LbMethod, Level, Members, Pool, Predecessors, Proxy, Request, Server, Worker,
};
use super::state::{Choice, RequestState};
use crate::engine::choice::{self, Rank};
use crate::engine::{self, carp, Cluster, Peer};
use crate::logfile::{level, Escaped};
use crate::settings::resolve::{self, SystemResolver};
use crate::settings::Settings;

/// The method's name in `ProxySet lbmethod=`.
const NAME: &CStr = c"bycache";

static METHOD: LbMethod = LbMethod(ffi::proxy_balancer_method {
    name: NAME.as_ptr(),
    finder: Some(find),
    context: null_mut(),
    reset: Some(reset),
    age: None,
    updatelbstatus: None,
});

/// The environment variable that says why a member was chosen.
const ROUTE_ENV: &CStr = c"ICPQUERY_ROUTE";

/// Registers the method (it exists from the `LoadModule` line on, with or
/// without mod_proxy) and the fixups hook that runs the lookups.
pub fn register(pool: Pool<'_>) {
    static AFTER_PROXY: Predecessors = Predecessors([c"mod_proxy.c".as_ptr(), std::ptr::null()]);
    safe::register_lbmethod(pool, NAME, &METHOD);
    safe::register_fixups(fixups, &AFTER_PROXY);
}

/// In post_config: every balancer of every server gets its members as ICP
/// peers (so a balancer switched to bycache in balancer-manager works at
/// once), with that server's `ICPQuery*` settings. Refuses to start when a
/// balancer uses bycache but mod_proxy's records cannot be read.
pub fn settle(main: Server<'static>, logs: &mut LogOpener) -> Result<(), String> {
    let Some(proxy) = Proxy::find() else { return Ok(()) };
    for s in main.list() {
        let members = proxy.members();
        for balancer in proxy.balancers(s) {
            if let Err(why) = members {
                if balancer.method() == NAME.to_bytes() {
                    return Err(format!("{}: lbmethod=bycache: {why}", String::from_utf8_lossy(balancer.name())));
                }
                continue;
            }
            let members = members.expect("checked");
            // SAFETY: post_config, in the parent: nothing else refers to the
            // server's configuration.
            let conf = unsafe { conf::of_mut(s) };
            let caches = caches(s, balancer, members, &conf.settings, logs).map_err(|e| e.to_string())?;
            conf.balancers.push(caches);
        }
    }
    // SAFETY: as above, for the main server.
    unsafe { conf::of_mut(main) }.proxy = Some(proxy);
    Ok(())
}

/// A balancer's members as ICP peers: each http(s) member's host, asked on
/// `ICPQueryBalancerPort`; members on one host share a peer.
fn caches(
    s: Server<'_>,
    balancer: Balancer<'_>,
    members: Members,
    settings: &Settings,
    logs: &mut LogOpener,
) -> std::io::Result<BalancerCaches> {
    let name = String::from_utf8_lossy(balancer.name()).into_owned();
    let mut peers: Vec<Peer> = Vec::new();
    let mut peer_of = Vec::new();
    let mut paths: Vec<&[u8]> = Vec::new();
    for worker in balancer.workers(members) {
        let host = String::from_utf8_lossy(worker.host()).into_owned();
        if !matches!(worker.scheme(), b"http" | b"https") || host.is_empty() {
            peer_of.push(None);
            continue;
        }
        paths.push(key::member_path(worker.name()));
        let addr = match resolve::address(&SystemResolver, host.trim_matches(['[', ']']), settings.balancer_port()) {
            Ok(addr) => addr,
            Err(why) => {
                let why = format!("{name}: member {host} is not asked over ICP: cannot resolve it ({why:?})");
                s.log(Level::WARNING, 0, &why);
                peer_of.push(None);
                continue;
            }
        };
        let index = peers.iter().position(|p| p.addr == addr).unwrap_or_else(|| {
            let mut peer = Peer::new(host, addr);
            peer.weight = worker.lbfactor().max(0) as u32;
            peers.push(peer);
            peers.len() - 1
        });
        peer_of.push(Some(index));
    }
    if paths.windows(2).any(|w| w[0] != w[1]) {
        let why = format!("{name}: members have different paths; lbmethod=bycache asks about the first one's");
        s.log(Level::WARNING, 0, &why);
    }
    let cluster = Cluster { peers, groups: Vec::new(), ..settings.cluster() };
    // Probed like maps that are on (only while the balancer uses bycache).
    let settled = Settled::new(settings, true, cluster, logs)?;
    Ok(BalancerCaches { name, settled, peer_of, key: settings.balancer_key() })
}

/// Whether balancer `name` of server `s` uses bycache now (balancer-manager
/// may switch it at any time): only then do its caches get probes and a
/// place on the status page.
pub fn in_use(s: Server<'_>, name: &str) -> bool {
    let proxy = safe::main_server().and_then(|main| conf::of(main).proxy.as_ref());
    proxy.and_then(|p| p.balancer(s, name.as_bytes())).is_some_and(|b| b.method() == NAME.to_bytes())
}

/// mod_proxy and its members' records, if they can be read.
pub fn proxy() -> Option<(&'static Proxy, Members)> {
    let proxy = conf::of(safe::main_server()?).proxy.as_ref()?;
    Some((proxy, proxy.members().ok()?))
}

/// `balancer://NAME` and the rest of `r->filename`, for a request mod_proxy
/// sends to a balancer.
fn balancer_target(filename: &[u8]) -> Option<(&[u8], &[u8])> {
    const SCHEME: &[u8] = b"balancer://";
    let url = filename.strip_prefix(b"proxy:".as_slice())?;
    let host = url.strip_prefix(SCHEME)?;
    let end = SCHEME.len() + host.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(host.len());
    Some(url.split_at(end))
}

/// The fixups hook: for a request to a balancer that uses bycache now, the
/// lookup and the members' ranks. Always DECLINED: it only prepares.
extern "C" fn fixups(r: *mut ffi::request_rec) -> c_int {
    guard(ffi::DECLINED as c_int, || {
        // SAFETY: httpd passes the live request being served.
        let Some(r) = (unsafe { Request::from_raw(r) }) else { return ffi::DECLINED as c_int };
        // A subrequest that is only looked up never reaches the balancer; one
        // that is run gets CARP without a lookup from the finder.
        if r.is_main() {
            if let Some((name, _)) = balancer_target(r.filename()) {
                prepare(r, name);
            }
        }
        ffi::DECLINED as c_int
    })
}

/// Looks up and ranks the members of balancer `name` for `r`, once.
fn prepare(r: Request<'_>, name: &[u8]) {
    let Some((proxy, members)) = proxy() else { return };
    let Some(balancer) = proxy.balancer(r.server(), name) else { return };
    if balancer.method() != NAME.to_bytes() || RequestState::of(r).choice(balancer.name()).is_some() {
        return;
    }
    let Some(caches) = conf::of(r.server()).balancers.iter().find(|c| c.name.as_bytes() == balancer.name()) else {
        return;
    };
    // GET and HEAD only: an ICP query asks whether a cache can serve the
    // object, which says nothing for other methods.
    let choice = choose(r, balancer, members, caches, r.is_get());
    RequestState::of(r).choices.extend(choice);
}

/// The URL the caches are asked about for `r`, if `r->filename` still
/// names the balancer (it does until a member is picked).
fn key_for(r: Request<'_>, balancer: Balancer<'_>, members: Members, caches: &BalancerCaches) -> Option<Vec<u8>> {
    let (_, rest) = balancer_target(r.filename())?;
    let first_http = balancer.workers(members).find(|w| matches!(w.scheme(), b"http" | b"https"));
    let member_path = first_http.map_or(&[][..], |w| key::member_path(w.name()));
    let target = Target {
        rest,
        query: r.query(),
        nocanon: r.note(c"proxy-nocanon").is_some(),
        noencode: r.note(c"proxy-noencode").is_some(),
        canonicalised: !members.canon_after_pick,
    };
    let sent = key::sent(member_path, &target);
    // Without a Host header mod_proxy sends the server's name.
    let host = r.header(c"Host").unwrap_or_else(|| r.server().hostname());
    Some(key::key(&caches.key, host, &sent))
}

/// Ranks the members for `r`: after a lookup when `lookup` (and the key
/// can be queried), else by CARP and health alone.
fn choose(
    r: Request<'_>,
    balancer: Balancer<'_>,
    members: Members,
    caches: &BalancerCaches,
    lookup: bool,
) -> Option<Choice> {
    let key = key_for(r, balancer, members, caches)?;
    let settled = &caches.settled;
    let events = Events { at: ErrorLogAt::Request(r), log: settled.log.as_ref() };
    let shared = settled.shared()?;
    let health = shared.health;
    let outcome = match lookup && !settled.cluster.peers.is_empty() {
        true => match engine::run(&settled.cluster, shared, &key) {
            Ok(outcome) => {
                events.report(&settled.cluster, &key, &outcome);
                Some(outcome)
            }
            Err(e) => {
                events.problem(Level::INFO, format_args!("{}: \"{}\": {e}", caches.name, Escaped(&key)));
                None
            }
        },
        false => None,
    };
    let workers: Vec<Worker<'_>> = balancer.workers(members).collect();
    let hosts: Vec<String> = workers.iter().map(|w| String::from_utf8_lossy(w.host()).into_owned()).collect();
    let carp_members: Vec<carp::Member<'_>> = workers
        .iter()
        .zip(&hosts)
        .map(|(w, host)| carp::Member { name: host, weight: w.lbfactor().max(0) as u32 })
        .collect();
    let carp_order = carp::Array::new(&carp_members, settled.carp.variant()).preference(&key);
    let dead = |p: usize| health.peers.get(p).is_some_and(|slot| slot.is_dead());
    let ranks = choice::rank(workers.len(), &caches.peer_of, outcome.as_ref(), dead, &carp_order);
    Some(Choice { balancer: balancer.name().to_vec(), key, ranks })
}

/// What the finder's walk carries: each member's rank, and the members the
/// walk offered (for byrequests' arithmetic, when it decides).
struct Baton {
    ranks: Vec<(*mut ffi::proxy_worker, Rank)>,
    offered: Vec<*mut ffi::proxy_worker>,
}

impl Baton {
    fn rank(&self, worker: Worker<'_>) -> Rank {
        self.ranks.iter().find(|(w, _)| *w == worker.raw()).map_or(Rank::Fallback, |(_, rank)| *rank)
    }
}

/// The balancer's finder, called by mod_proxy_balancer with the balancer's
/// lock held (again after a failed member): no I/O, only the ranks the
/// fixups hook made. NULL when no member is usable (httpd answers 503).
extern "C" fn find(balancer: *mut ffi::proxy_balancer, r: *mut ffi::request_rec) -> *mut ffi::proxy_worker {
    guard(null_mut(), || {
        // SAFETY: mod_proxy_balancer passes the balancer it is choosing for
        // and the live request.
        let (Some(balancer), Some(r)) = (unsafe { Balancer::from_raw(balancer) }, unsafe { Request::from_raw(r) })
        else {
            return null_mut();
        };
        let Some((_, members)) = proxy() else {
            let why = conf::of(safe::main_server().unwrap_or(r.server())).proxy.as_ref().map(|p| p.members());
            let why = match why {
                Some(Err(why)) => why.to_string(),
                _ => "mod_proxy was not loaded at startup".to_string(),
            };
            r.log(Level::ERR, &format!("lbmethod=bycache cannot choose: {why}"));
            return null_mut();
        };
        let caches = conf::of(r.server()).balancers.iter().find(|c| c.name.as_bytes() == balancer.name());
        let state = RequestState::of(r);
        if state.choice(balancer.name()).is_none() {
            // No lookup ran (the request reached the balancer another way,
            // or bycache was chosen meanwhile): CARP and health alone.
            let choice = caches.and_then(|caches| choose(r, balancer, members, caches, false));
            state.choices.extend(choice);
        }
        let choice = state.choice(balancer.name());
        let ranks = choice.map_or(&[][..], |c| &c.ranks);
        let ranks = balancer.workers(members).map(|w| w.raw()).zip(ranks.iter().copied()).collect();
        let mut baton = Baton { ranks, offered: Vec::new() };
        // SAFETY: the baton is the Baton is_best expects.
        let best = unsafe { members.best_worker(balancer, r, is_best, std::ptr::from_mut(&mut baton).cast()) };
        let Some(best) = best else { return null_mut() };
        let route = baton.rank(best).route();
        if route == choice::Route::Fallback {
            byrequests_pick(&baton, best);
        }
        r.set_env(ROUTE_ENV, route_value(route));
        if let (Some(caches), Some(choice)) = (caches, choice) {
            log_choice(&caches.settled, &caches.name, &choice.key, best, route);
            remember_holder(caches, choice, balancer, members, best, route, r);
        }
        best.raw()
    })
}

/// With `ICPQueryRemember`, a GET or HEAD routed to its CARP owner is kept
/// as held there: the owner stores the object as the request passes, so
/// that is what the next lookup would find. (A shared-memory write: no
/// I/O under the balancer's lock.)
fn remember_holder(
    caches: &BalancerCaches,
    choice: &Choice,
    balancer: Balancer<'_>,
    members: Members,
    best: Worker<'_>,
    route: choice::Route,
    r: Request<'_>,
) {
    let Some(remember) = caches.settled.remember else { return };
    if route != choice::Route::Carp || !r.is_get() {
        return;
    }
    let position = balancer.workers(members).position(|w| w == best);
    if let Some(peer) = position.and_then(|m| caches.peer_of.get(m).copied().flatten()) {
        remember.store_holder(&choice.key, peer, crate::engine::health::now_us());
    }
}

fn route_value(route: choice::Route) -> &'static CStr {
    match route {
        choice::Route::Hit => c"hit",
        choice::Route::Carp => c"carp",
        choice::Route::Fallback => c"fallback",
    }
}

fn log_choice(settled: &Settled, name: &str, key: &[u8], best: Worker<'_>, route: choice::Route) {
    if let Some(log) = settled.log.as_ref().filter(|l| l.enabled(level::RESULT)) {
        let member = Escaped(best.name());
        log.write(level::RESULT, format_args!("{name} \"{}\" -> {member} ({})", Escaped(key), route.label()));
    }
}

/// The walk's callback: whether `current` beats `best` (NULL: the first
/// candidate). Between two members ICP cannot speak for, byrequests'
/// comparison: the higher running score once each has its load factor
/// added.
extern "C" fn is_best(current: *mut ffi::proxy_worker, best: *mut ffi::proxy_worker, baton: *mut c_void) -> c_int {
    guard(0, || {
        // SAFETY: the balancer's walk passes members of the balancer being
        // chosen for, and the Baton `find` gave it.
        let (current, best, baton) =
            unsafe { (Worker::from_raw(current), Worker::from_raw(best), &mut *baton.cast::<Baton>()) };
        let Some(current) = current else { return 0 };
        baton.offered.push(current.raw());
        let Some(best) = best else { return 1 };
        let score = |w: Worker<'_>| i64::from(w.lbstatus().load(Relaxed)) + i64::from(w.lbfactor());
        let wins = baton.rank(current).beats(baton.rank(best));
        c_int::from(wins.unwrap_or_else(|| score(current) > score(best)))
    })
}

/// byrequests' arithmetic for a pick it made: every member offered gains
/// its load factor, the one picked loses their sum. Only for its own picks,
/// so that members ICP routes to are not owed or charged for them later.
fn byrequests_pick(baton: &Baton, best: Worker<'_>) {
    let mut total = 0i32;
    for &raw in &baton.offered {
        // SAFETY: members the walk offered, of the balancer being chosen for.
        if let Some(w) = unsafe { Worker::from_raw(raw) } {
            w.lbstatus().fetch_add(w.lbfactor(), Relaxed);
            total = total.saturating_add(w.lbfactor());
        }
    }
    best.lbstatus().fetch_sub(total, Relaxed);
}

/// Called once when the balancer switches to this method (and as
/// byrequests' reset does): the running scores start again from zero.
extern "C" fn reset(balancer: *mut ffi::proxy_balancer, _s: *mut ffi::server_rec) -> ffi::apr_status_t {
    guard(ffi::APR_SUCCESS as ffi::apr_status_t, || {
        // SAFETY: mod_proxy passes a live balancer.
        if let (Some(balancer), Some((_, members))) = (unsafe { Balancer::from_raw(balancer) }, proxy()) {
            for worker in balancer.workers(members) {
                worker.lbstatus().store(0, Relaxed);
            }
        }
        ffi::APR_SUCCESS as ffi::apr_status_t
    })
}

#[cfg(test)]
mod tests {
    use super::balancer_target;

    #[test]
    fn balancer_urls_split_into_name_and_rest() {
        assert_eq!(
            balancer_target(b"proxy:balancer://caches/wsgi/a b"),
            Some((&b"balancer://caches"[..], &b"/wsgi/a b"[..]))
        );
        assert_eq!(balancer_target(b"proxy:balancer://caches"), Some((&b"balancer://caches"[..], &b""[..])));
        assert_eq!(balancer_target(b"proxy:balancer://c?x"), Some((&b"balancer://c"[..], &b"?x"[..])));
        assert_eq!(balancer_target(b"proxy:http://127.0.0.1/x"), None);
        assert_eq!(balancer_target(b"/var/www/x"), None);
    }
}
