//! mod_proxy's balancers and their members, read without linking against
//! mod_proxy.so: its module record is found by name, its structures are the
//! ones in the installed mod_proxy.h, and the one function used (the
//! balancer's walk over usable members) is an APR optional function. The
//! module thus loads with or without mod_proxy, in any `LoadModule` order.
//!
//! mod_proxy appended fields to these structures across 2.4.x, and httpd
//! checks only the major module magic number when loading a module: the
//! members' records are read only when the running httpd and mod_proxy are
//! at least the version the module was built for ([`Proxy::members`]). A
//! balancer's name and method are where they have been since 2.4.5.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};

use super::super::ffi;
use super::{Pool, Request, Server};

/// `mod_proxy.h`'s `proxy_is_best_callback_fn_t`, without the Option.
pub type IsBest = unsafe extern "C" fn(*mut ffi::proxy_worker, *mut ffi::proxy_worker, *mut c_void) -> c_int;

type BestWorker = unsafe extern "C" fn(
    *mut ffi::proxy_balancer,
    *mut ffi::request_rec,
    ffi::proxy_is_best_callback_fn_t,
    *mut c_void,
) -> *mut ffi::proxy_worker;

/// mod_proxy, as loaded in the running configuration.
#[derive(Clone)]
pub struct Proxy {
    module: NonNull<ffi::module>,
    /// What reading members needs, or why they cannot be read.
    members: Result<Members, String>,
}

/// Access to balancer members: their records can be read, and the
/// balancer's walk called.
#[derive(Clone, Copy)]
pub struct Members {
    best_worker: BestWorker,
    /// httpd 2.4.62 and later canonicalise a balancer URL only after the
    /// balancer picked a member (see `bycache/key.rs`).
    pub canon_after_pick: bool,
}

/// The module magic number the module was built for.
pub const BUILT_MMN: (i32, i32) = (ffi::MODULE_MAGIC_NUMBER_MAJOR as i32, ffi::MODULE_MAGIC_NUMBER_MINOR as i32);

fn linked(name: &CStr) -> Option<NonNull<ffi::module>> {
    // SAFETY: a lookup by name in httpd's list of loaded modules.
    NonNull::new(unsafe { ffi::ap_find_linked_module(name.as_ptr()) })
}

fn mmn(module: NonNull<ffi::module>) -> (i32, i32) {
    // SAFETY: a loaded module's record; version fields never change.
    let m = unsafe { module.as_ref() };
    (m.version, m.minor_version)
}

impl Proxy {
    /// mod_proxy as loaded, or `None` when it is not. Call from
    /// post_config (every module loaded, optional functions registered).
    pub fn find() -> Option<Proxy> {
        let module = linked(c"mod_proxy.c")?;
        Some(Proxy { module, members: Self::members_access(module) })
    }

    /// Access to members, or why they cannot be read: httpd or mod_proxy
    /// older than the headers the module was built with, or no balancer
    /// walk to call.
    pub fn members(&self) -> Result<Members, &str> {
        self.members.as_ref().copied().map_err(String::as_str)
    }

    fn members_access(module: NonNull<ffi::module>) -> Result<Members, String> {
        let core = linked(c"core.c").map_or(BUILT_MMN, mmn);
        let running = core.min(mmn(module));
        if running < BUILT_MMN {
            return Err(format!(
                "mod_icpquery was built for httpd's module magic number {}.{} and this httpd and mod_proxy are {}.{}, \
                 whose balancer member records it cannot read; rebuild it against this httpd (apxs/install.sh)",
                BUILT_MMN.0, BUILT_MMN.1, running.0, running.1
            ));
        }
        // SAFETY: a lookup by name; when present, mod_proxy registers it with
        // exactly this type (mod_proxy.h, ap_proxy_balancer_get_best_worker).
        let best_worker = unsafe { ffi::apr_dynamic_fn_retrieve(c"proxy_balancer_get_best_worker".as_ptr()) }
            .map(|f| unsafe { std::mem::transmute::<unsafe extern "C" fn(), BestWorker>(f) })
            .ok_or("mod_proxy offers no proxy_balancer_get_best_worker (httpd 2.4.35 and later do)")?;
        let mut version = ffi::ap_version_t { major: 0, minor: 0, patch: 0, add_string: std::ptr::null() };
        // SAFETY: fills the struct with the running httpd's version.
        unsafe { ffi::ap_get_server_revision(&mut version) };
        let canon_after_pick = (version.major, version.minor, version.patch) >= (2, 4, 62);
        Ok(Members { best_worker, canon_after_pick })
    }

    /// The balancers of server `s`, in configuration order.
    pub fn balancers<'s>(&self, s: Server<'s>) -> impl Iterator<Item = Balancer<'s>> {
        // SAFETY: mod_proxy's slot of every server holds its proxy_server_conf.
        let conf = unsafe {
            ffi::ap_get_module_config(s.module_config(), self.module.as_ptr()).cast::<ffi::proxy_server_conf>().as_ref()
        };
        // SAFETY: an APR array of proxy_balancer structs (not pointers),
        // stepped by its own element size, which grew across 2.4.x.
        let array = conf.and_then(|c| unsafe { c.balancers.as_ref() });
        let (elts, size, n) = array.map_or((std::ptr::null_mut(), 0, 0), |a| (a.elts, a.elt_size as usize, a.nelts));
        (0..n.max(0) as usize).filter_map(move |i| {
            // SAFETY: element i of the array, live with the configuration.
            unsafe { Balancer::from_raw(elts.add(i * size).cast::<ffi::proxy_balancer>()) }
        })
    }

    /// The balancer of `s` named `name` (`balancer://NAME`, any case).
    pub fn balancer<'s>(&self, s: Server<'s>, name: &[u8]) -> Option<Balancer<'s>> {
        self.balancers(s).find(|b| b.name().eq_ignore_ascii_case(name))
    }
}

impl Members {
    /// The balancer's own walk over its usable members (lbsets in order,
    /// drained members skipped, members in error retried when due, hot
    /// spares and standbys only as it allows), calling `is_best(current,
    /// best so far, baton)` for each candidate; the last one it accepted.
    ///
    /// # Safety
    /// `baton` must be what `is_best` expects; called from a balancer's
    /// finder, as mod_proxy's own methods call it.
    pub unsafe fn best_worker<'b>(
        self,
        balancer: Balancer<'b>,
        r: Request<'_>,
        is_best: IsBest,
        baton: *mut c_void,
    ) -> Option<Worker<'b>> {
        // SAFETY: the balancer and request are live; see above.
        unsafe { Worker::from_raw((self.best_worker)(balancer.raw.as_ptr(), r.raw(), Some(is_best), baton)) }
    }
}

/// A fixed-size C string field of a shared structure.
fn field(bytes: &[c_char]) -> &[u8] {
    // SAFETY: c_char and u8 have the same layout.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) };
    bytes.iter().position(|&b| b == 0).map_or(bytes, |end| &bytes[..end])
}

/// A balancer (`balancer://NAME`) of a server's configuration.
#[derive(Clone, Copy)]
pub struct Balancer<'a> {
    raw: NonNull<ffi::proxy_balancer>,
    _life: PhantomData<&'a ffi::proxy_balancer>,
}

impl<'a> Balancer<'a> {
    /// # Safety
    /// `raw` is NULL or a balancer of a configuration live for `'a` (or the
    /// one mod_proxy hands a finder).
    pub unsafe fn from_raw(raw: *mut ffi::proxy_balancer) -> Option<Balancer<'a>> {
        // SAFETY: see above; `s` is set when the balancer is defined.
        let raw = NonNull::new(raw).filter(|b| unsafe { !b.as_ref().s.is_null() })?;
        Some(Balancer { raw, _life: PhantomData })
    }

    fn shared(&self) -> &'a ffi::proxy_balancer_shared {
        // SAFETY: checked non-NULL in new; shared memory (or the pool copy
        // before post_config) that lives with the configuration.
        unsafe { &*self.raw.as_ref().s }
    }

    /// `balancer://NAME`, as mod_proxy keeps it (lowercased).
    pub fn name(self) -> &'a [u8] {
        field(&self.shared().name)
    }

    /// The name of the balancing method it uses now (`ProxySet lbmethod=`,
    /// or changed in balancer-manager).
    pub fn method(self) -> &'a [u8] {
        field(&self.shared().lbpname)
    }

    /// Its members, in configuration order (members added in
    /// balancer-manager at the end). Their records may be read only with
    /// [`Members`] in hand.
    pub fn workers(self, _access: Members) -> impl Iterator<Item = Worker<'a>> {
        // SAFETY: an APR array of proxy_worker pointers.
        let array = unsafe { self.raw.as_ref().workers.as_ref() };
        let (elts, n) = array.map_or((std::ptr::null_mut(), 0), |a| (a.elts.cast::<*mut ffi::proxy_worker>(), a.nelts));
        // SAFETY: element i of the array.
        (0..n.max(0) as usize).filter_map(move |i| unsafe { Worker::from_raw(*elts.add(i)) })
    }
}

/// A balancer member.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Worker<'a> {
    raw: NonNull<ffi::proxy_worker>,
    _life: PhantomData<&'a ffi::proxy_worker>,
}

impl<'a> Worker<'a> {
    /// # Safety
    /// `raw` is NULL or a member of a balancer live for `'a`, read with
    /// [`Members`] in hand.
    pub unsafe fn from_raw(raw: *mut ffi::proxy_worker) -> Option<Worker<'a>> {
        // SAFETY: see above.
        let raw = NonNull::new(raw).filter(|w| unsafe { !w.as_ref().s.is_null() })?;
        Some(Worker { raw, _life: PhantomData })
    }

    pub fn raw(self) -> *mut ffi::proxy_worker {
        self.raw.as_ptr()
    }

    fn shared(self) -> *mut ffi::proxy_worker_shared {
        // SAFETY: checked non-NULL in new.
        unsafe { self.raw.as_ref().s }
    }

    fn text(self, pick: impl FnOnce(&ffi::proxy_worker_shared) -> &[c_char]) -> &'a [u8] {
        // SAFETY: the shared record lives with the configuration; these
        // strings are written when the member is defined, before requests.
        field(pick(unsafe { &*self.shared() }))
    }

    /// `http`, `https`, `ajp`, …
    pub fn scheme(self) -> &'a [u8] {
        self.text(|s| &s.scheme)
    }

    /// The host of its URL, as httpd keeps it (lowercased).
    pub fn host(self) -> &'a [u8] {
        self.text(|s| &s.hostname_ex)
    }

    /// Its URL, normalised (`http://10.0.0.1:3128`, with a path if it has one).
    pub fn name(self) -> &'a [u8] {
        self.text(|s| &s.name_ex)
    }

    /// The port of its URL (the scheme's default when it names none).
    pub fn port(self) -> u16 {
        // SAFETY: written when the member is defined, before requests.
        unsafe { (*self.shared()).port }
    }

    /// Its status bits (`PROXY_WORKER_*`), which balancer-manager,
    /// mod_proxy and mod_proxy_hcheck change at any time.
    pub fn status(self) -> u32 {
        // SAFETY: an aligned unsigned int of the live shared record, updated
        // concurrently by httpd's processes: read as an atomic.
        unsafe { std::sync::atomic::AtomicU32::from_ptr(&raw mut (*self.shared()).status) }.load(Relaxed)
    }

    /// `loadfactor` × 100, as mod_proxy keeps it (balancer-manager may
    /// change it at any time).
    pub fn lbfactor(self) -> i32 {
        // SAFETY: a field of the live shared record.
        self.shared_int(unsafe { &raw mut (*self.shared()).lbfactor }).load(Relaxed)
    }

    /// byrequests' running score, shared by every process.
    pub fn lbstatus(self) -> &'a AtomicI32 {
        // SAFETY: a field of the live shared record.
        self.shared_int(unsafe { &raw mut (*self.shared()).lbstatus })
    }

    fn shared_int(self, field: *mut c_int) -> &'a AtomicI32 {
        // SAFETY: an aligned int of the shared record, in memory httpd's
        // processes update concurrently (as byrequests does): atomics say so.
        unsafe { AtomicI32::from_ptr(field) }
    }
}

/// Registers `method` as the balancing method `lbmethod=NAME` (its `name`).
pub fn register_lbmethod(pool: Pool<'_>, name: &'static CStr, method: &'static LbMethod) {
    // SAFETY: mod_proxy looks the provider up by these strings and keeps the
    // pointer; all three outlive every configuration.
    unsafe {
        ffi::ap_register_provider(
            pool.raw(),
            c"proxylbmethod".as_ptr(),
            name.as_ptr(),
            c"0".as_ptr(),
            std::ptr::from_ref(&method.0).cast(),
        )
    };
}

/// A `proxy_balancer_method`, for a `static`.
pub struct LbMethod(pub ffi::proxy_balancer_method);
// SAFETY: constant pointers to 'static strings and functions.
unsafe impl Sync for LbMethod {}
