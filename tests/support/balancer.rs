//! mod_proxy_balancer in front of the harness's Squids, and a client for the
//! real balancer-manager page.
//!
//! * `BalancerConf` (with `Member`, `HealthCheck`): the portal configuration
//!   for a `<Proxy balancer://NAME>` over the three Squid accelerators
//!   (`http://127.0.<net>.2-4:3128`), `ProxyPass /wsgi/ balancer://NAME/wsgi/`,
//!   the balancer-manager (loopback only), optional mod_proxy_hcheck, and
//!   the LoadModule lines all of that needs. `start` runs it on a `Cluster`
//!   with a portal httpd that does NOT load mod_icpquery.
//! * `Manager`: reads `GET /balancer-manager` into a `ManagerPage`, and
//!   changes things the way a person with a browser does: it follows the
//!   member's (or balancer's) link on the page, reads the edit form httpd
//!   serves there, changes some of its fields, submits the whole form
//!   (urlencoded POST to the form's action, with the page's nonce and the
//!   Referer a browser sends), then reads the page again and returns it.
//! * `tally`: which Squid (X-Cache) answered each of N requests.
//!
//! What httpd 2.4.71 serves (mod_proxy_balancer.c, balancer_display_page):
//! * per balancer, `<h3>LoadBalancer Status for <a href="/balancer-manager?b=NAME&amp;nonce=NONCE">balancer://NAME</a> [SNAME]</h3>`,
//!   then a table MaxMembers | StickySession | DisableFailover | Timeout |
//!   FailoverAttempts | Method | Path | Active, then a table of members:
//!   Worker URL (a link `?b=NAME&amp;w=URL&amp;nonce=NONCE`) | Route |
//!   RouteRedir | Factor | Set | Status | Elected | Busy | Load | To | From,
//!   and with mod_proxy_hcheck loaded also HC Method | HC Interval |
//!   Passes | Fails | HC uri | HC Expr ("1 (0)": the trigger, then the
//!   current count).
//! * Status is the set flags' labels, each followed by a space, in this
//!   order: `Init Ign Drn Gen Shut Dis Stop Err Stby Spar Free HcFl`, then
//!   `Ok` when the member is usable (e.g. "Init Ok ", "Init Drn Ok ",
//!   "Init Dis ", "Init Stby Ok ", "Init HcFl "); "??? " when none is set.
//! * The member's link shows a form (POST, urlencoded, action the absolute
//!   URL of /balancer-manager) with w_lf, w_ls, w_wr, w_rr (text),
//!   w_status_I/N/D/H/R[/C with hcheck]/S (radio 1/0), with hcheck w_hm and
//!   w_he (select) and w_hi, w_hp, w_hf, w_hu (text), and hidden w, b,
//!   nonce. The balancer's link shows b_lbm (select of the lbmethod
//!   providers loaded), b_tmo, b_max, b_sforce (radio), b_ss, b_nwrkr +
//!   b_wyes (only while the balancer has a free slot), hidden b and nonce.
//! * httpd ignores every parameter (even a GET's `?b=…&w=…`) unless the
//!   request has a Referer whose host is the server name the request
//!   reached (with UseCanonicalName Off, its Host header's host), and
//!   applies a change only when `nonce` is the balancer's. It reads at
//!   most 1024 bytes of a POST body, and unescapes values with
//!   ap_unescape_url (twice; a `+` is not turned into a space).
//! * Every request without such a Referer, even a plain GET with no
//!   parameters, logs AH10187 at level error; `Manager::page` therefore
//!   sends the page's own URL as Referer (a browser reloading it).
//! * A wrong nonce is ignored silently (no log line, still 200).
//! * Submitting a member form sends every field as shown, so it also
//!   re-sends the flags it did not mean to change (a health check that
//!   flipped HcFl between GET and POST is undone), and, with any
//!   `ProxyHCExpr` defined, the Expr select of a member without hcexpr has
//!   no selected option: a browser submits the first one, so the first
//!   submission sets that hcexpr on the member.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::http::{self, Response};
use super::httpd::{httpd_binary, modules_dir, HttpdOptions, Mpm};
use super::{host_ips, poll_until, Cluster, SQUID_HTTP_PORT};

pub const MANAGER_PATH: &str = "/balancer-manager";
/// The lbmethod providers shipped with httpd and loaded by default, so the
/// manager can switch between them.
pub const STOCK_LBMETHODS: [&str; 3] = ["byrequests", "bytraffic", "bybusyness"];
/// httpd's largest POST body the balancer-manager reads (one 1024-byte read).
pub const MAX_FORM_BODY: usize = 1024;

// ---------------------------------------------------------------- modules

/// The modules compiled into httpd (`httpd -l`), e.g. "mod_watchdog.c".
pub fn builtin_modules() -> &'static [String] {
    static BUILTIN: OnceLock<Vec<String>> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        let out = Command::new(httpd_binary())
            .arg("-l")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} -l: {e}", httpd_binary().display()));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.ends_with(".c"))
            .map(String::from)
            .collect()
    })
}

pub fn is_builtin(id: &str) -> bool {
    let source = format!("mod_{id}.c");
    builtin_modules().contains(&source)
}

/// The lines that load module `id` ("proxy_hcheck": `proxy_hcheck_module`
/// from `<modules_dir>/mod_proxy_hcheck.so`): "" when it is compiled in;
/// otherwise the LoadModule inside `<IfModule !id_module>`, so a module the
/// main configuration (`httpd::main_conf`) already loads is not loaded a
/// second time.
pub fn load_module(id: &str) -> String {
    if is_builtin(id) {
        return String::new();
    }
    let so = modules_dir().join(format!("mod_{id}.so"));
    assert!(so.exists(), "{} is missing (is Debian's apache2 installed?)", so.display());
    format!("<IfModule !{id}_module>\n    LoadModule {id}_module {}\n</IfModule>\n", so.display())
}

// ---------------------------------------------------------------- configuration

/// mod_proxy_hcheck parameters of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// hcmethod: NONE, TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11, GET11.
    pub method: String,
    /// hcuri, appended to the member's URL ("/wsgi/hc").
    pub uri: Option<String>,
    /// hcinterval as httpd parses it: seconds ("5") or with a unit ("500ms").
    pub interval: Option<String>,
    /// hcfails: failed checks before the member is marked HcFl.
    pub fails: Option<u32>,
    /// hcpasses: passed checks before HcFl is cleared.
    pub passes: Option<u32>,
    /// hcexpr: the name of a `ProxyHCExpr` (see `BalancerConf::hc_expr`).
    pub expr: Option<String>,
}

impl HealthCheck {
    pub fn new(method: &str) -> HealthCheck {
        HealthCheck { method: method.to_owned(), uri: None, interval: None, fails: None, passes: None, expr: None }
    }

    /// `hcmethod=GET hcuri=<uri>` (uri starting with `/`).
    pub fn get(uri: &str) -> HealthCheck {
        HealthCheck::new("GET").uri(uri)
    }

    /// `hcmethod=HEAD hcuri=<uri>`.
    pub fn head(uri: &str) -> HealthCheck {
        HealthCheck::new("HEAD").uri(uri)
    }

    /// `hcmethod=TCP`: a connect is enough.
    pub fn tcp() -> HealthCheck {
        HealthCheck::new("TCP")
    }

    pub fn uri(mut self, uri: &str) -> HealthCheck {
        assert!(uri.starts_with('/'), "hcuri {uri:?}: httpd appends it to the member URL as is");
        self.uri = Some(uri.to_owned());
        self
    }

    /// hcinterval in milliseconds (httpd's minimum is 100 ms).
    pub fn interval_ms(mut self, ms: u64) -> HealthCheck {
        assert!(ms >= 100, "hcinterval must be at least 100 ms");
        self.interval = Some(format!("{ms}ms"));
        self
    }

    pub fn fails(mut self, n: u32) -> HealthCheck {
        self.fails = Some(n);
        self
    }

    pub fn passes(mut self, n: u32) -> HealthCheck {
        self.passes = Some(n);
        self
    }

    pub fn expr(mut self, name: &str) -> HealthCheck {
        self.expr = Some(name.to_owned());
        self
    }

    /// The BalancerMember parameters: "hcmethod=GET hcuri=/x …".
    pub fn params(&self) -> String {
        let mut p = format!("hcmethod={}", self.method);
        if let Some(u) = &self.uri {
            write!(p, " hcuri={u}").unwrap();
        }
        if let Some(i) = &self.interval {
            write!(p, " hcinterval={i}").unwrap();
        }
        if let Some(n) = self.fails {
            write!(p, " hcfails={n}").unwrap();
        }
        if let Some(n) = self.passes {
            write!(p, " hcpasses={n}").unwrap();
        }
        if let Some(e) = &self.expr {
            write!(p, " hcexpr={e}").unwrap();
        }
        p
    }
}

/// One `BalancerMember` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// "http://127.0.170.2:3128" (no path: `ProxyPass` adds /wsgi/).
    pub url: String,
    pub loadfactor: Option<u32>,
    pub lbset: Option<u32>,
    /// Status flags set at start, e.g. "+H" or "+D+N" (`status=` parameter).
    pub status: String,
    pub route: Option<String>,
    pub hcheck: Option<HealthCheck>,
    /// Any other `key=value` worker parameters (retry=0, timeout=5, …).
    pub params: Vec<(String, String)>,
}

impl Member {
    pub fn new(url: &str) -> Member {
        Member {
            url: url.to_owned(),
            loadfactor: None,
            lbset: None,
            status: String::new(),
            route: None,
            hcheck: None,
            params: Vec::new(),
        }
    }

    /// The member for the Squid on `host`, route "squid<last octet>" (its
    /// visible_hostname, as in X-Cache).
    pub fn squid(host: Ipv4Addr) -> Member {
        Member::new(&member_url(host)).route(&squid_name(host))
    }

    pub fn loadfactor(mut self, lf: u32) -> Member {
        assert!((1..=100).contains(&lf), "loadfactor must be 1..100");
        self.loadfactor = Some(lf);
        self
    }

    pub fn lbset(mut self, set: u32) -> Member {
        assert!(set <= 99, "lbset must be 0..99");
        self.lbset = Some(set);
        self
    }

    pub fn route(mut self, route: &str) -> Member {
        self.route = Some(route.to_owned());
        self
    }

    /// Set status flag `letter` at start: D disabled, S stopped, I ignore
    /// errors, H hot standby, E in error, N drain, R hot spare, C HC failed.
    pub fn flag(mut self, letter: char) -> Member {
        assert!("DSIHENRC".contains(letter), "no such member status flag {letter:?}");
        write!(self.status, "+{letter}").unwrap();
        self
    }

    pub fn hot_standby(self) -> Member {
        self.flag('H')
    }

    pub fn disabled(self) -> Member {
        self.flag('D')
    }

    pub fn drain(self) -> Member {
        self.flag('N')
    }

    pub fn stopped(self) -> Member {
        self.flag('S')
    }

    pub fn hot_spare(self) -> Member {
        self.flag('R')
    }

    pub fn hcheck(mut self, hc: HealthCheck) -> Member {
        self.hcheck = Some(hc);
        self
    }

    pub fn param(mut self, key: &str, value: &str) -> Member {
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The `BalancerMember …` line.
    pub fn line(&self) -> String {
        let mut l = format!("BalancerMember {}", self.url);
        if let Some(lf) = self.loadfactor {
            write!(l, " loadfactor={lf}").unwrap();
        }
        if let Some(s) = self.lbset {
            write!(l, " lbset={s}").unwrap();
        }
        if let Some(r) = &self.route {
            write!(l, " route={r}").unwrap();
        }
        if !self.status.is_empty() {
            write!(l, " status={}", self.status).unwrap();
        }
        if let Some(hc) = &self.hcheck {
            write!(l, " {}", hc.params()).unwrap();
        }
        for (k, v) in &self.params {
            write!(l, " {k}={v}").unwrap();
        }
        l
    }
}

/// A `<Proxy balancer://NAME>` block and what goes with it. `render` gives
/// the portal configuration (appended to `httpd::main_conf`).
#[derive(Clone, Debug)]
pub struct BalancerConf {
    /// NAME in balancer://NAME.
    pub name: String,
    /// `ProxySet lbmethod=…`.
    pub lbmethod: String,
    pub members: Vec<Member>,
    /// The path proxied to the balancer: `ProxyPass <path> balancer://NAME<path>`.
    pub path: String,
    /// Where the balancer-manager handler is (None: no manager).
    pub manager_path: Option<String>,
    /// `ProxyHCExpr name {expr}` lines.
    pub hc_exprs: Vec<(String, String)>,
    /// `BalancerGrowth n`: free member slots the manager can add members to.
    pub growth: Option<u32>,
    /// More `ProxySet` parameters (maxattempts, nofailover, timeout, …).
    pub proxy_set: Vec<(String, String)>,
    /// lbmethod providers to load (`lbmethod_<name>` modules) besides the
    /// configured one: by default the stock ones, so the manager can switch.
    pub load_lbmethods: Vec<String>,
    /// Lines appended verbatim after everything else (e.g. a LoadModule of
    /// the module under test when it provides the lbmethod).
    pub extra: String,
}

impl BalancerConf {
    /// A balancer with no members, lbmethod byrequests.
    pub fn new(name: &str) -> BalancerConf {
        BalancerConf {
            name: name.to_owned(),
            lbmethod: "byrequests".to_owned(),
            members: Vec::new(),
            path: "/wsgi/".to_owned(),
            manager_path: Some(MANAGER_PATH.to_owned()),
            hc_exprs: Vec::new(),
            growth: None,
            proxy_set: Vec::new(),
            load_lbmethods: STOCK_LBMETHODS.iter().map(|s| s.to_string()).collect(),
            extra: String::new(),
        }
    }

    /// The three Squids of network `net` as members (`Member::squid`), in
    /// the order of `host_ips`.
    pub fn over_squids(net: u8, name: &str) -> BalancerConf {
        let mut b = BalancerConf::new(name);
        b.members = host_ips(net).iter().map(|ip| Member::squid(*ip)).collect();
        b
    }

    pub fn lbmethod(mut self, m: &str) -> BalancerConf {
        self.lbmethod = m.to_owned();
        self
    }

    /// Change member `i` (0: 127.0.<net>.2).
    pub fn with_member(mut self, i: usize, change: impl FnOnce(Member) -> Member) -> BalancerConf {
        let m = self.members.remove(i);
        self.members.insert(i, change(m));
        self
    }

    /// The same health check on every member.
    pub fn hcheck_all(mut self, hc: &HealthCheck) -> BalancerConf {
        for m in self.members.iter_mut() {
            m.hcheck = Some(hc.clone());
        }
        self
    }

    /// A `ProxyHCExpr name {expr}` (e.g. `ok234`, `%{REQUEST_STATUS} =~ /^[234]/`).
    pub fn hc_expr(mut self, name: &str, expr: &str) -> BalancerConf {
        self.hc_exprs.push((name.to_owned(), expr.to_owned()));
        self
    }

    pub fn growth(mut self, n: u32) -> BalancerConf {
        self.growth = Some(n);
        self
    }

    pub fn proxy_set(mut self, key: &str, value: &str) -> BalancerConf {
        self.proxy_set.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn without_manager(mut self) -> BalancerConf {
        self.manager_path = None;
        self
    }

    pub fn extra(mut self, lines: &str) -> BalancerConf {
        self.extra.push_str(lines);
        self.extra.push('\n');
        self
    }

    /// Does any member have a health check (or is there a ProxyHCExpr)?
    pub fn uses_hcheck(&self) -> bool {
        !self.hc_exprs.is_empty() || self.members.iter().any(|m| m.hcheck.is_some())
    }

    /// The LoadModule lines (see `load_module`): slotmem_shm, proxy,
    /// proxy_http, proxy_balancer, the lbmethod providers (the configured
    /// one when it is a stock one, and `load_lbmethods`), authz_host (for
    /// `Require ip`) with the manager, watchdog and proxy_hcheck with
    /// health checks.
    pub fn load_module_lines(&self) -> String {
        let mut ids: Vec<String> = ["slotmem_shm", "proxy", "proxy_http", "proxy_balancer"].map(String::from).to_vec();
        let mut methods: Vec<&str> = self.load_lbmethods.iter().map(String::as_str).collect();
        if STOCK_LBMETHODS.contains(&self.lbmethod.as_str()) || self.lbmethod == "heartbeat" {
            methods.insert(0, &self.lbmethod);
        }
        for m in methods {
            let id = format!("lbmethod_{m}");
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if self.manager_path.is_some() {
            ids.push("authz_host".into());
        }
        if self.uses_hcheck() {
            ids.push("watchdog".into());
            ids.push("proxy_hcheck".into());
        }
        ids.iter().map(|id| load_module(id)).collect()
    }

    /// The whole portal configuration.
    pub fn render(&self) -> String {
        let mut c = String::from("# generated by tests/support/balancer.rs\n");
        c.push_str(&self.load_module_lines());
        c.push('\n');
        for (name, expr) in &self.hc_exprs {
            writeln!(c, "ProxyHCExpr {name} {{{expr}}}").unwrap();
        }
        if let Some(n) = self.growth {
            writeln!(c, "BalancerGrowth {n}").unwrap();
        }
        writeln!(c, "<Proxy balancer://{}>", self.name).unwrap();
        for m in &self.members {
            writeln!(c, "    {}", m.line()).unwrap();
        }
        let mut set = format!("lbmethod={}", self.lbmethod);
        for (k, v) in &self.proxy_set {
            write!(set, " {k}={v}").unwrap();
        }
        writeln!(c, "    ProxySet {set}\n</Proxy>").unwrap();
        writeln!(c, "ProxyPass {p} balancer://{n}{p}", p = self.path, n = self.name).unwrap();
        if let Some(mp) = &self.manager_path {
            writeln!(
                c,
                "<Location {mp}>\n    SetHandler balancer-manager\n    Require ip 127.0.0.0/8 ::1\n</Location>"
            )
            .unwrap();
        }
        c.push_str(&self.extra);
        c
    }
}

/// "http://127.0.<net>.N:3128": the member URL for the Squid on `host`.
pub fn member_url(host: Ipv4Addr) -> String {
    format!("http://{host}:{SQUID_HTTP_PORT}")
}

/// "squidN" for 127.0.<net>.N (the visible_hostname in X-Cache).
pub fn squid_name(host: Ipv4Addr) -> String {
    format!("squid{}", host.octets()[3])
}

/// Origins, the three Squids and a portal httpd running `conf` (stock
/// mod_proxy_balancer; mod_icpquery is not loaded unless `conf.extra`
/// loads it). Everything stops on Drop.
pub fn start(net: u8, mpm: Mpm, conf: &BalancerConf) -> Cluster {
    let mut c = Cluster::start_caches(net);
    c.start_portal(HttpdOptions::without_module(net, mpm, conf.render()));
    c
}

/// The balancer-manager of `c`'s portal.
pub fn manager(c: &Cluster) -> Manager {
    Manager::new(c.portal_addr())
}

// ---------------------------------------------------------------- who answered

/// Who answered each of a series of requests: the Squid named in X-Cache
/// ("squid3"), else `Response::served_by` ("origin 127.0.0.2", "-").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub by: BTreeMap<String, usize>,
    pub total: usize,
}

impl Tally {
    pub fn who(r: &Response) -> String {
        r.cache_name().map(str::to_owned).unwrap_or_else(|| r.served_by())
    }

    pub fn record(&mut self, r: &Response) {
        *self.by.entry(Tally::who(r)).or_insert(0) += 1;
        self.total += 1;
    }

    /// Responses from `who` ("squid2").
    pub fn of(&self, who: &str) -> usize {
        self.by.get(who).copied().unwrap_or(0)
    }

    /// Everyone who answered at least once, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by.keys().map(String::as_str).collect()
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.by.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{} of {}", parts.join(" "), self.total)
    }
}

/// GET `path(i)` for i in 0..n from `addr`, one after the other; every
/// response must be a 200. Use a fresh path per request (`/wsgi/x{i}`) for
/// a MISS each time, or one path for HITs: X-Cache names the Squid either way.
pub fn tally(addr: SocketAddr, n: usize, mut path: impl FnMut(usize) -> String) -> Tally {
    tally_paths(addr, (0..n).map(&mut path))
}

pub fn tally_paths(addr: SocketAddr, paths: impl IntoIterator<Item = String>) -> Tally {
    let mut t = Tally::default();
    for p in paths {
        let r = http::get(addr, &p);
        assert_eq!(r.status, 200, "GET {p} (after {t}): {r:?}");
        t.record(&r);
    }
    t
}

// ---------------------------------------------------------------- the page

/// A member status flag as the page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Init,
    IgnoreErrors,
    Drain,
    Generic,
    InShutdown,
    Disabled,
    Stopped,
    InError,
    HotStandby,
    HotSpare,
    Free,
    HcFail,
    /// Not a flag but the page's word for "usable".
    Ok,
}

impl Flag {
    pub const ALL: [Flag; 13] = [
        Flag::Init,
        Flag::IgnoreErrors,
        Flag::Drain,
        Flag::Generic,
        Flag::InShutdown,
        Flag::Disabled,
        Flag::Stopped,
        Flag::InError,
        Flag::HotStandby,
        Flag::HotSpare,
        Flag::Free,
        Flag::HcFail,
        Flag::Ok,
    ];

    /// The word in the Status column.
    pub fn label(self) -> &'static str {
        match self {
            Flag::Init => "Init",
            Flag::IgnoreErrors => "Ign",
            Flag::Drain => "Drn",
            Flag::Generic => "Gen",
            Flag::InShutdown => "Shut",
            Flag::Disabled => "Dis",
            Flag::Stopped => "Stop",
            Flag::InError => "Err",
            Flag::HotStandby => "Stby",
            Flag::HotSpare => "Spar",
            Flag::Free => "Free",
            Flag::HcFail => "HcFl",
            Flag::Ok => "Ok",
        }
    }

    pub fn from_label(label: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.label() == label)
    }

    /// The letter of the manager's `w_status_<letter>` radio for this flag,
    /// for the ones the form can set.
    pub fn form_letter(self) -> Option<char> {
        match self {
            Flag::IgnoreErrors => Some('I'),
            Flag::Drain => Some('N'),
            Flag::Disabled => Some('D'),
            Flag::HotStandby => Some('H'),
            Flag::HotSpare => Some('R'),
            Flag::HcFail => Some('C'),
            Flag::Stopped => Some('S'),
            _ => None,
        }
    }
}

/// The health-check columns of a member (mod_proxy_hcheck loaded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HcState {
    pub method: String,
    pub interval_ms: u64,
    /// hcpasses, and the passes counted so far.
    pub passes: u32,
    pub pass_count: u32,
    /// hcfails, and the failures counted so far.
    pub fails: u32,
    pub fail_count: u32,
    pub uri: String,
    pub expr: String,
}

/// One row of a balancer's member table.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberState {
    /// "http://127.0.170.2:3128".
    pub url: String,
    /// The link to the member's edit form (`?b=…&w=…&nonce=…`, entities decoded).
    pub edit_href: String,
    pub route: String,
    pub route_redir: String,
    pub loadfactor: f64,
    pub lbset: u32,
    /// The Status column as shown, trimmed ("Init Drn Ok").
    pub status: String,
    /// Its words ("Init", "Drn", "Ok").
    pub flags: Vec<String>,
    pub elected: u64,
    pub busy: u64,
    /// The Load column (lbstatus).
    pub load: i64,
    /// Bytes sent to / read from the member, as shown ("1.2K").
    pub to: String,
    pub from: String,
    pub hc: Option<HcState>,
}

impl MemberState {
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.iter().any(|f| f == flag.label())
    }

    /// "Ok" shown: usable (initialised and not disabled, stopped, in
    /// error, HC failed or shutting down; drained and standby still are).
    pub fn is_usable(&self) -> bool {
        self.has(Flag::Ok)
    }

    /// The squid name ("squid3") when the URL is a harness Squid's.
    pub fn squid_name(&self) -> Option<String> {
        let host = self.url.strip_prefix("http://")?.split(':').next()?;
        host.parse::<Ipv4Addr>().ok().map(squid_name)
    }
}

/// One balancer's part of the page.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancerState {
    /// NAME of balancer://NAME.
    pub name: String,
    /// "balancer://NAME".
    pub url: String,
    /// The shared-memory name in brackets after it.
    pub sname: String,
    /// The balancer's nonce (from its link; the forms carry the same).
    pub nonce: String,
    /// The link to the balancer's edit form.
    pub edit_href: String,
    pub max_members: u32,
    pub used_members: u32,
    pub sticky_session: String,
    pub disable_failover: String,
    pub timeout: u64,
    pub failover_attempts: u32,
    /// The Method column: the lbmethod ("byrequests").
    pub lbmethod: String,
    pub path: String,
    pub active: bool,
    pub members: Vec<MemberState>,
}

impl BalancerState {
    pub fn member(&self, url: &str) -> Option<&MemberState> {
        let url = url.trim_end_matches('/');
        self.members.iter().find(|m| m.url.trim_end_matches('/') == url)
    }
}

/// The whole balancer-manager page.
#[derive(Clone, Debug)]
pub struct ManagerPage {
    pub html: String,
    /// "Apache/2.4.71 (Debian)".
    pub server_version: String,
    pub balancers: Vec<BalancerState>,
    /// The "Health check cond. expressions" table (name, expression).
    pub hc_exprs: Vec<(String, String)>,
}

impl ManagerPage {
    pub fn parse(html: &str) -> Result<ManagerPage, String> {
        let server_version = between(html, "<dt>Server Version: ", "</dt>")
            .ok_or("no \"Server Version\" on the page")?
            .trim()
            .to_owned();
        const H3: &str = "<h3>LoadBalancer Status for ";
        let mut balancers = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find(H3) {
            rest = &rest[at + H3.len()..];
            balancers.push(parse_balancer(rest)?);
        }
        let mut hc_exprs = Vec::new();
        if let Some(at) = html.find("Health check cond. expressions:") {
            let table = parse_table(&html[html[..at].rfind("<table").unwrap_or(at)..])
                .ok_or("no health check expression table")?;
            for row in &table.rows {
                if row.len() == 2 {
                    hc_exprs.push((row[0].text.clone(), row[1].text.clone()));
                }
            }
        }
        Ok(ManagerPage { html: html.to_owned(), server_version, balancers, hc_exprs })
    }

    /// The balancer called `name` ("squids" or "balancer://squids").
    pub fn balancer(&self, name: &str) -> &BalancerState {
        let name = name.strip_prefix("balancer://").unwrap_or(name);
        self.balancers
            .iter()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("no balancer {name} on the page:\n{}", self.summary()))
    }

    pub fn member(&self, balancer: &str, url: &str) -> &MemberState {
        self.balancer(balancer)
            .member(url)
            .unwrap_or_else(|| panic!("no member {url} in balancer {balancer}:\n{}", self.summary()))
    }

    /// One line per balancer and member, for failure messages.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for b in &self.balancers {
            writeln!(s, "{} [{}] lbmethod={} nonce={}", b.url, b.sname, b.lbmethod, b.nonce).unwrap();
            for m in &b.members {
                write!(
                    s,
                    "  {} route={:?} lf={:.2} set={} status={:?} elected={} busy={}",
                    m.url, m.route, m.loadfactor, m.lbset, m.status, m.elected, m.busy
                )
                .unwrap();
                if let Some(hc) = &m.hc {
                    write!(
                        s,
                        " hc={} {}ms passes={}({}) fails={}({}) uri={:?} expr={:?}",
                        hc.method, hc.interval_ms, hc.passes, hc.pass_count, hc.fails, hc.fail_count, hc.uri, hc.expr
                    )
                    .unwrap();
                }
                s.push('\n');
            }
        }
        s
    }
}

fn parse_balancer(rest: &str) -> Result<BalancerState, String> {
    // <a href="/balancer-manager?b=NAME&amp;nonce=N">balancer://NAME</a> [SNAME]</h3>
    let a = next_tag(rest, 0).filter(|t| t.name == "a").ok_or("no link after \"LoadBalancer Status for\"")?;
    let edit_href = a.attr("href").ok_or("balancer link without href")?.to_owned();
    let url = decode_entities(&rest[a.end..rest[a.end..].find("</a>").map(|i| a.end + i).ok_or("unclosed <a>")?]);
    let name = url.strip_prefix("balancer://").ok_or_else(|| format!("balancer link text {url:?}"))?.to_owned();
    let h3_end = rest.find("</h3>").ok_or("unclosed <h3>")?;
    let sname = between(&rest[..h3_end], "[", "]").unwrap_or("").to_owned();
    let nonce = query_param(&edit_href, "nonce").ok_or_else(|| format!("no nonce in {edit_href:?}"))?;

    let after_h3 = &rest[h3_end..];
    let bt = parse_table(after_h3).ok_or("no balancer table")?;
    let row = bt.rows.first().ok_or("empty balancer table")?;
    let col = |h: &str| bt.cell(row, h).map(|c| c.text.clone()).ok_or_else(|| format!("no {h:?} column"));
    let max = col("MaxMembers")?; // "3 [3 Used]"
    let (max_members, used_members) = {
        let n: Vec<u32> = max.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
        (n.first().copied().unwrap_or(0), n.get(1).copied().unwrap_or(0))
    };
    let wt_at = after_h3[bt.end..].find("<table").map(|i| bt.end + i).ok_or("no member table")?;
    let wt = parse_table(&after_h3[wt_at..]).ok_or("no member table")?;
    let mut members = Vec::new();
    for row in &wt.rows {
        let cell = |h: &str| wt.cell(row, h).ok_or_else(|| format!("no {h:?} column in the member table"));
        let text = |h: &str| cell(h).map(|c| c.text.clone());
        let num = |h: &str| -> Result<i64, String> {
            let t = text(h)?;
            t.parse().map_err(|_| format!("{h} {t:?} is not a number"))
        };
        let first = cell("Worker URL")?;
        let status = text("Status")?;
        let hc = if wt.headers.iter().any(|h| h == "HC Method") {
            let pair = |h: &str| -> Result<(u32, u32), String> {
                // "1 (0)"
                let t = text(h)?;
                let n: Vec<u32> = t.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
                match n[..] {
                    [a, b] => Ok((a, b)),
                    _ => Err(format!("{h} {t:?} is not \"N (M)\"")),
                }
            };
            let (passes, pass_count) = pair("Passes")?;
            let (fails, fail_count) = pair("Fails")?;
            let interval = text("HC Interval")?;
            Some(HcState {
                method: text("HC Method")?,
                interval_ms: interval
                    .trim_end_matches("ms")
                    .parse()
                    .map_err(|_| format!("HC Interval {interval:?}"))?,
                passes,
                pass_count,
                fails,
                fail_count,
                uri: text("HC uri")?,
                expr: text("HC Expr")?,
            })
        } else {
            None
        };
        members.push(MemberState {
            url: first.text.clone(),
            edit_href: first.href.clone().ok_or("member cell without a link")?,
            route: text("Route")?,
            route_redir: text("RouteRedir")?,
            loadfactor: text("Factor")?.parse().map_err(|_| "Factor is not a number".to_string())?,
            lbset: num("Set")? as u32,
            flags: status.split_whitespace().map(String::from).collect(),
            status,
            elected: num("Elected")? as u64,
            busy: num("Busy")? as u64,
            load: num("Load")?,
            to: text("To")?,
            from: text("From")?,
            hc,
        });
    }
    Ok(BalancerState {
        name,
        url,
        sname,
        nonce,
        edit_href,
        max_members,
        used_members,
        sticky_session: col("StickySession")?,
        disable_failover: col("DisableFailover")?,
        timeout: col("Timeout")?.parse().map_err(|_| "Timeout is not a number")?,
        failover_attempts: col("FailoverAttempts")?.parse().map_err(|_| "FailoverAttempts is not a number")?,
        lbmethod: col("Method")?,
        path: col("Path")?,
        active: col("Active")? == "Yes",
        members,
    })
}

// ---------------------------------------------------------------- forms

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Hidden,
    Radio,
    Checkbox,
    Select,
}

/// One named control of a form (a radio group is one field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub kind: FieldKind,
    /// What a browser submits for it (None: nothing, e.g. an unchecked
    /// checkbox). A select with no `selected` option submits its first
    /// option, as browsers do.
    pub value: Option<String>,
    /// The values a radio group, checkbox or select offers.
    pub choices: Vec<String>,
}

/// A form as the page serves it.
#[derive(Clone, Debug)]
pub struct Form {
    /// The `action` attribute (httpd writes an absolute URL).
    pub action: String,
    pub method: String,
    /// The URL of the page the form was on: the Referer a browser sends
    /// with the submission (None: send none).
    pub referer: Option<String>,
    pub fields: Vec<Field>,
}

impl Form {
    /// The form whose text starts at `html` (at or before `<form`).
    pub fn parse(html: &str, referer: Option<String>) -> Result<Form, String> {
        let start = html.find("<form").ok_or("no <form>")?;
        let end = html[start..].find("</form>").map(|i| start + i).ok_or("unclosed <form>")?;
        let open = next_tag(html, start).ok_or("bad <form> tag")?;
        let action = open.attr("action").ok_or("<form> without action")?.to_owned();
        let method = open.attr("method").unwrap_or("GET").to_ascii_uppercase();
        let mut form = Form { action, method, referer, fields: Vec::new() };
        let mut pos = open.end;
        // The select being read: index into fields, and whether an option was selected.
        let mut select: Option<(usize, bool)> = None;
        while let Some(tag) = next_tag(&html[..end], pos) {
            pos = tag.end;
            match tag.name.as_str() {
                "input" => {
                    let Some(name) = tag.attr("name") else { continue };
                    let value = tag.attr("value").unwrap_or("").to_owned();
                    let checked = tag.attr("checked").is_some();
                    let kind = match tag.attr("type").unwrap_or("text").to_ascii_lowercase().as_str() {
                        "hidden" => FieldKind::Hidden,
                        "radio" => FieldKind::Radio,
                        "checkbox" => FieldKind::Checkbox,
                        "submit" | "button" | "reset" | "image" => continue,
                        _ => FieldKind::Text,
                    };
                    match kind {
                        FieldKind::Radio | FieldKind::Checkbox => {
                            let i = form.field_index_or_insert(name, kind);
                            let f = &mut form.fields[i];
                            let value = if kind == FieldKind::Checkbox && tag.attr("value").is_none() {
                                "on".to_owned()
                            } else {
                                value
                            };
                            f.choices.push(value.clone());
                            if checked {
                                f.value = Some(value);
                            }
                        }
                        _ => {
                            let i = form.field_index_or_insert(name, kind);
                            form.fields[i].value = Some(value);
                        }
                    }
                }
                "select" => {
                    let name = tag.attr("name").ok_or("<select> without name")?;
                    select = Some((form.field_index_or_insert(name, FieldKind::Select), false));
                }
                "option" => {
                    let (i, any_selected) = select.ok_or("<option> outside <select>")?;
                    let text_end = html[tag.end..end].find('<').map_or(end, |j| tag.end + j);
                    let value = match tag.attr("value") {
                        Some(v) => v.to_owned(),
                        None => decode_entities(html[tag.end..text_end].trim()),
                    };
                    let f = &mut form.fields[i];
                    f.choices.push(value.clone());
                    if tag.attr("selected").is_some() {
                        f.value = Some(value);
                        select = Some((i, true));
                    } else if !any_selected && f.value.is_none() {
                        // No option selected (yet): a browser submits the first.
                        f.value = Some(value);
                    }
                }
                "/select" => select = None,
                _ => {}
            }
        }
        Ok(form)
    }

    fn field_index_or_insert(&mut self, name: &str, kind: FieldKind) -> usize {
        if let Some(i) = self.fields.iter().position(|f| f.name == name) {
            return i;
        }
        self.fields.push(Field { name: name.to_owned(), kind, value: None, choices: Vec::new() });
        self.fields.len() - 1
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// What the form would submit for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(|f| f.value.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// Fill in `name` as a person would: type into a text field, pick a
    /// radio button, option or checkbox (which must be one the page
    /// offers). Hidden fields can be overwritten too (to test the nonce
    /// check). Panics if the form has no such control.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Form {
        let names: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
        let f = self
            .fields
            .iter_mut()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("the form has no field {name:?} (it has {names:?})"));
        if matches!(f.kind, FieldKind::Radio | FieldKind::Checkbox | FieldKind::Select) {
            assert!(f.choices.iter().any(|c| c == value), "{name:?} offers {:?}, not {value:?}", f.choices);
        }
        f.value = Some(value.to_owned());
        self
    }

    /// Untick a checkbox.
    pub fn uncheck(&mut self, name: &str) -> &mut Form {
        let f = self.fields.iter_mut().find(|f| f.name == name).unwrap_or_else(|| panic!("no field {name:?}"));
        assert_eq!(f.kind, FieldKind::Checkbox, "{name:?} is not a checkbox");
        f.value = None;
        self
    }

    /// The `application/x-www-form-urlencoded` body a browser sends, the
    /// fields in document order.
    pub fn body(&self) -> String {
        let pairs: Vec<String> = self
            .fields
            .iter()
            .filter_map(|f| f.value.as_ref().map(|v| format!("{}={}", form_urlencode(&f.name), form_urlencode(v))))
            .collect();
        pairs.join("&")
    }
}

/// application/x-www-form-urlencoded as browsers write it: ASCII letters,
/// digits and `*-._` as they are, space as `+`, every other byte `%XX`.
pub fn form_urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}

// ---------------------------------------------------------------- the client

/// The balancer-manager at `http://<addr><path>`.
#[derive(Clone, Debug)]
pub struct Manager {
    pub addr: SocketAddr,
    pub path: String,
}

impl Manager {
    pub fn new(addr: SocketAddr) -> Manager {
        Manager::at(addr, MANAGER_PATH)
    }

    pub fn at(addr: SocketAddr, path: &str) -> Manager {
        Manager { addr, path: path.to_owned() }
    }

    /// "http://127.0.170.1:8080" (the Host a browser would use).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// "http://127.0.170.1:8080/balancer-manager".
    pub fn url(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// GET `path_and_query` with these headers; panics on a transport error.
    pub fn get_raw(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Response {
        http::request(self.addr, "GET", path_and_query, headers)
            .unwrap_or_else(|e| panic!("GET {}{path_and_query}: {e}", self.origin()))
    }

    /// GET the page (no parameters) and parse it. Sent with the page itself
    /// as Referer, as a browser reloading it does: httpd 2.4.71 logs
    /// AH10187 "ignoring params in balancer-manager cross-site access" at
    /// level error for every request without a matching Referer, even one
    /// with no parameters at all, and tests should be able to expect a
    /// clean error log.
    pub fn page(&self) -> ManagerPage {
        let referer = self.url();
        let r = self.get_raw(&self.path, &[("Referer", &referer)]);
        assert_eq!(r.status, 200, "GET {}: {r:?}", self.url());
        ManagerPage::parse(&r.body_text()).unwrap_or_else(|e| panic!("{}: {e}\n{}", self.url(), r.body_text()))
    }

    /// Read the page until `pred` holds, at most `timeout`; the page that
    /// satisfied it. Panics with the last page on timeout.
    pub fn wait_for(&self, timeout: Duration, what: &str, pred: impl Fn(&ManagerPage) -> bool) -> ManagerPage {
        let mut last = None;
        let found = poll_until(timeout, || {
            let p = self.page();
            if pred(&p) {
                Some(p)
            } else {
                last = Some(p);
                None
            }
        });
        found.unwrap_or_else(|| {
            panic!(
                "balancer-manager: not {what} after {timeout:?}; last page:\n{}",
                last.map(|p| p.summary()).unwrap_or_default()
            )
        })
    }

    /// Follow `href` from the page (a browser sends the page as Referer)
    /// and read the form httpd shows there.
    fn form_at(&self, href: &str, heading: &str) -> Form {
        let referer = self.url();
        let r = self.get_raw(href, &[("Referer", &referer)]);
        assert_eq!(r.status, 200, "GET {href}: {r:?}");
        let html = r.body_text();
        let at = html.find(heading).unwrap_or_else(|| {
            panic!("GET {href} (Referer {referer}) shows no \"{heading}\" form; httpd ignored the link:\n{html}")
        });
        Form::parse(&html[at..], Some(format!("{}{href}", self.origin())))
            .unwrap_or_else(|e| panic!("the form at {href}: {e}\n{html}"))
    }

    /// The edit form of member `worker` of `balancer`, reached through its
    /// link on the page.
    pub fn member_form(&self, balancer: &str, worker: &str) -> Form {
        let page = self.page();
        let href = page.member(balancer, worker).edit_href.clone();
        self.form_at(&href, "<h3>Edit worker settings for ")
    }

    /// The edit form of `balancer`, reached through its link on the page.
    pub fn balancer_form(&self, balancer: &str) -> Form {
        let page = self.page();
        let href = page.balancer(balancer).edit_href.clone();
        self.form_at(&href, "<h3>Edit balancer settings for ")
    }

    /// Submit `form` as a browser does (POST to its action, urlencoded
    /// body, Referer and Origin), check httpd answered 200, then read the
    /// page again and return it.
    pub fn submit(&self, form: &Form) -> ManagerPage {
        assert_eq!(form.method, "POST", "the manager's forms are POST forms");
        let path = form
            .action
            .strip_prefix(&self.origin())
            .unwrap_or_else(|| panic!("form action {:?} is not on {}", form.action, self.origin()))
            .to_owned();
        let body = form.body();
        assert!(
            body.len() <= MAX_FORM_BODY,
            "form body of {} bytes: httpd reads only the first {MAX_FORM_BODY}: {body}",
            body.len()
        );
        let origin = self.origin();
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded"), ("Origin", origin.as_str())];
        if let Some(r) = &form.referer {
            headers.push(("Referer", r.as_str()));
        }
        let r = http::request_with_body(self.addr, "POST", &path, &headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {}: {e}", form.action));
        assert_eq!(r.status, 200, "POST {} {body}: {r:?}", form.action);
        self.page()
    }

    /// Open the member's form, set `changes` (field, value), submit.
    pub fn edit_member(&self, balancer: &str, worker: &str, changes: &[(&str, &str)]) -> ManagerPage {
        let mut form = self.member_form(balancer, worker);
        for (k, v) in changes {
            form.set(k, v);
        }
        self.submit(&form)
    }

    /// Open the balancer's form, set `changes`, submit.
    pub fn edit_balancer(&self, balancer: &str, changes: &[(&str, &str)]) -> ManagerPage {
        let mut form = self.balancer_form(balancer);
        for (k, v) in changes {
            form.set(k, v);
        }
        self.submit(&form)
    }

    /// Turn a settable flag (`Flag::form_letter`) on or off.
    pub fn set_flag(&self, balancer: &str, worker: &str, flag: Flag, on: bool) -> ManagerPage {
        let letter = flag.form_letter().unwrap_or_else(|| panic!("the manager cannot set {flag:?}"));
        let field = format!("w_status_{letter}");
        self.edit_member(balancer, worker, &[(&field, if on { "1" } else { "0" })])
    }

    pub fn drain(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::Drain, true)
    }

    pub fn undrain(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::Drain, false)
    }

    pub fn disable(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::Disabled, true)
    }

    pub fn enable(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::Disabled, false)
    }

    pub fn set_hot_standby(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::HotStandby, true)
    }

    pub fn clear_hot_standby(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::HotStandby, false)
    }

    pub fn stop_member(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::Stopped, true)
    }

    pub fn unstop_member(&self, balancer: &str, worker: &str) -> ManagerPage {
        self.set_flag(balancer, worker, Flag::Stopped, false)
    }

    /// Load factor as the form takes it (1.00 .. 100.00; httpd ignores others).
    pub fn set_loadfactor(&self, balancer: &str, worker: &str, lf: f64) -> ManagerPage {
        self.edit_member(balancer, worker, &[("w_lf", &format!("{lf:.2}"))])
    }

    /// LB set (0..99; httpd ignores others).
    pub fn set_lbset(&self, balancer: &str, worker: &str, lbset: u32) -> ManagerPage {
        self.edit_member(balancer, worker, &[("w_ls", &lbset.to_string())])
    }

    pub fn set_route(&self, balancer: &str, worker: &str, route: &str) -> ManagerPage {
        self.edit_member(balancer, worker, &[("w_wr", route)])
    }

    /// Pick `lbmethod` in the balancer's LBmethod list (it must be offered:
    /// a loaded provider) and submit.
    pub fn set_lbmethod(&self, balancer: &str, lbmethod: &str) -> ManagerPage {
        self.edit_balancer(balancer, &[("b_lbm", lbmethod)])
    }
}

// ---------------------------------------------------------------- tiny HTML helpers

/// One tag: lowercase name ("/select" for an end tag), attributes with
/// entities decoded (a bare attribute has value ""), and where it ends.
struct Tag {
    name: String,
    /// Where `<` is.
    start: usize,
    attrs: Vec<(String, String)>,
    end: usize,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The first tag at or after `from` (comments and doctype skipped).
fn next_tag(html: &str, from: usize) -> Option<Tag> {
    let b = html.as_bytes();
    let mut i = from;
    loop {
        i += html.get(i..)?.find('<')?;
        if html[i..].starts_with("<!--") {
            i += html[i..].find("-->")? + 3;
            continue;
        }
        if html[i..].starts_with("<!") {
            i += html[i..].find('>')? + 1;
            continue;
        }
        break;
    }
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'/') {
        j += 1;
    }
    let name = html[i + 1..j].to_ascii_lowercase();
    if name.is_empty() {
        return next_tag(html, i + 1);
    }
    let mut attrs = Vec::new();
    loop {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() {
            return None;
        }
        if b[j] == b'>' {
            return Some(Tag { name, start: i, attrs, end: j + 1 });
        }
        if b[j] == b'/' {
            j += 1;
            continue;
        }
        let k = j;
        while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'=' && b[j] != b'>' {
            j += 1;
        }
        let key = html[k..j].to_ascii_lowercase();
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let mut value = String::new();
        if j < b.len() && b[j] == b'=' {
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < b.len() && (b[j] == b'\'' || b[j] == b'"') {
                let q = b[j] as char;
                let close = html[j + 1..].find(q)? + j + 1;
                value = decode_entities(&html[j + 1..close]);
                j = close + 1;
            } else {
                let k = j;
                while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' {
                    j += 1;
                }
                value = decode_entities(&html[k..j]);
            }
        }
        attrs.push((key, value));
    }
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';').filter(|&n| n <= 8) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of an HTML fragment: tags removed, entities decoded, trimmed.
fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        match rest[i..].find('>') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    decode_entities(&out).trim().to_owned()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

/// The value of `name` in the query of `href` (not URL-decoded: httpd's
/// links carry names as they are).
fn query_param(href: &str, name: &str) -> Option<String> {
    let query = href.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
}

struct Cell {
    text: String,
    href: Option<String>,
}

/// A table without nested tables: header row (`<th>`) and data rows.
struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
    /// Where `</table>` ends, relative to the text parsed.
    end: usize,
}

impl Table {
    fn cell<'a>(&self, row: &'a [Cell], header: &str) -> Option<&'a Cell> {
        let i = self.headers.iter().position(|h| h == header)?;
        row.get(i)
    }
}

/// The first `<table>` in `html`.
fn parse_table(html: &str) -> Option<Table> {
    let start = html.find("<table")?;
    let end = html[start..].find("</table>")? + start;
    let body = &html[start..end];
    let mut headers = Vec::new();
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut pos = 0;
    // The open cell: (is header, where its content starts).
    let mut open: Option<(bool, usize)> = None;
    while let Some(tag) = next_tag(body, pos) {
        pos = tag.end;
        match tag.name.as_str() {
            "tr" => {
                close_cell(body, &mut open, tag.start, &mut headers, &mut rows);
                rows.push(Vec::new());
            }
            "td" | "th" => {
                close_cell(body, &mut open, tag.start, &mut headers, &mut rows);
                open = Some((tag.name == "th", tag.end));
            }
            "/td" | "/th" | "/tr" => close_cell(body, &mut open, tag.start, &mut headers, &mut rows),
            _ => {}
        }
    }
    close_cell(body, &mut open, body.len(), &mut headers, &mut rows);
    rows.retain(|r| !r.is_empty());
    Some(Table { headers, rows, end: end + "</table>".len() })
}

/// End the open cell at `upto`: its text goes to `headers` (`<th>`) or to
/// the last row (`<td>`, with the href of a link at its start).
fn close_cell(
    body: &str,
    open: &mut Option<(bool, usize)>,
    upto: usize,
    headers: &mut Vec<String>,
    rows: &mut Vec<Vec<Cell>>,
) {
    let Some((is_th, from)) = open.take() else { return };
    let inner = &body[from..upto];
    if is_th {
        headers.push(strip_tags(inner));
        return;
    }
    let href = next_tag(inner, 0).filter(|t| t.name == "a").and_then(|t| t.attr("href").map(str::to_owned));
    if rows.is_empty() {
        rows.push(Vec::new());
    }
    rows.last_mut().expect("a row").push(Cell { text: strip_tags(inner), href });
}
