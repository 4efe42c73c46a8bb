//! One model of the `ICPQuery*` settings, in plain Rust, for the module and
//! the `icpquery` tool alike: what each directive set ([`Settings`]), the one
//! rule by which a virtual host inherits and adds ([`Settings::inherit`]),
//! the table of directives ([`directives`]) and their value parsers
//! ([`values`]). The tool reading `httpd.conf` therefore sees exactly the
//! caches the module asks.

pub mod directives;
pub mod pac;
pub mod resolve;
pub mod values;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use self::directives::Id;
use self::resolve::Resolve;
pub use self::values::{KeyPrefix, LogTarget, ValueError};
use crate::engine::{carp, BindAddr, Cluster, Peer, Timeout, DEFAULT_ICP_PORT};

/// `ICPQueryProbeInterval` when not set.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What one server, virtual host or `<ICPQueryGroup>` block says. `None`
/// means "not said here": the value is inherited, or the default applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub mapper: Option<bool>,
    pub timeout: Option<Timeout>,
    pub dead_time: Option<Duration>,
    pub probe_interval: Option<Duration>,
    pub carp: Option<carp::Variant>,
    pub log: Option<LogTarget>,
    pub log_level: Option<u8>,
    pub bind: Option<IpAddr>,
    pub mcast_hops: Option<u32>,
    /// `ICPQueryPeer` lines, in order.
    pub peers: Vec<Peer>,
    /// `ICPQueryMCastAddr` lines, in order.
    pub mcast_groups: Vec<SocketAddr>,
    /// `ICPQueryBalancerPort`: the ICP port of bycache balancers' members.
    pub balancer_port: Option<u16>,
    /// `ICPQueryBalancerKey`: how bycache writes the URL it asks about.
    pub balancer_key: Option<KeyPrefix>,
    /// `ICPQueryRemember`: how long answers are kept, and how many.
    pub remember: Option<(Duration, Option<usize>)>,
}

/// What reading a value needs from its surroundings.
pub struct Context<'a> {
    /// Looks up host names (the system's, or a table in tests and fuzzing).
    pub resolver: &'a dyn Resolve,
    /// Makes a relative path absolute under `ServerRoot`; `None` when it
    /// cannot be.
    pub server_relative: &'a dyn Fn(&str) -> Option<PathBuf>,
}

/// A directive value that cannot be used: the text httpd shows, word for
/// word, after "Syntax error on line N of FILE:".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ValueError> for Refusal {
    fn from(e: ValueError) -> Refusal {
        Refusal(e.to_string())
    }
}

impl Settings {
    /// Where an `<ICPQueryGroup>` block starts: nothing inherited from the
    /// server, and the maps answer (they are what a group is for) unless the
    /// block says `ICPQueryMapper Off`.
    pub fn group() -> Settings {
        Settings { mapper: Some(true), ..Settings::default() }
    }

    /// The one inheritance rule: what `add` (a virtual host) says replaces
    /// what `base` (the main server) says; its `ICPQueryPeer` and
    /// `ICPQueryMCastAddr` lines are added after the base's, except those
    /// the base already has, as the original module did.
    pub fn inherit(base: &Settings, add: &Settings) -> Settings {
        let mut peers = base.peers.clone();
        peers.extend(add.peers.iter().filter(|p| !base.peers.contains(p)).cloned());
        let mut mcast_groups = base.mcast_groups.clone();
        mcast_groups.extend(add.mcast_groups.iter().filter(|g| !base.mcast_groups.contains(g)));
        Settings {
            mapper: add.mapper.or(base.mapper),
            timeout: add.timeout.or(base.timeout),
            dead_time: add.dead_time.or(base.dead_time),
            probe_interval: add.probe_interval.or(base.probe_interval),
            carp: add.carp.or(base.carp),
            log: add.log.clone().or_else(|| base.log.clone()),
            log_level: add.log_level.or(base.log_level),
            bind: add.bind.or(base.bind),
            mcast_hops: add.mcast_hops.or(base.mcast_hops),
            peers,
            mcast_groups,
            balancer_port: add.balancer_port.or(base.balancer_port),
            balancer_key: add.balancer_key.clone().or_else(|| base.balancer_key.clone()),
            remember: add.remember.or(base.remember),
        }
    }

    /// Applies one directive's value (as httpd hands it over: one word
    /// unquoted, or the raw rest of the line; `On`/`Off` for a flag).
    /// `<ICPQueryGroup>` is a block, not a value: its reader handles it.
    pub fn apply(&mut self, id: Id, value: &str, cx: &Context<'_>) -> Result<(), Refusal> {
        match id {
            Id::Mapper => self.mapper = Some(values::mapper(value).map_err(Refusal)?),
            Id::Timeout => self.timeout = Some(values::timeout(value)?),
            Id::DeadTime => self.dead_time = Some(values::dead_time(value)?),
            Id::ProbeInterval => self.probe_interval = Some(values::probe_interval(value)?),
            Id::Log => self.log = Some(values::log_target(value, cx.server_relative)?),
            Id::LogLevel => self.log_level = Some(values::log_level(value)?),
            Id::BindAddr => self.bind = Some(values::bind_addr(value, cx.resolver)?),
            Id::Peer => self.peers.push(values::peer(value, cx.resolver)?),
            Id::MCastAddr => self.mcast_groups.push(values::mcast_group(value, cx.resolver)?),
            Id::MCastHops => self.mcast_hops = Some(values::mcast_hops(value)?),
            Id::Carp => self.carp = Some(values::carp_variant(value)?),
            Id::BalancerPort => self.balancer_port = Some(values::balancer_port(value)?),
            Id::BalancerKey => self.balancer_key = Some(values::balancer_key(value)?),
            Id::Remember => self.remember = Some(values::remember(value)?),
            Id::Group => unreachable!("<ICPQueryGroup> is read as a block"),
            Id::PacCaches | Id::PacProxyPort | Id::PacFallback => {
                unreachable!("per-directory directives are applied to a PacSettings")
            }
        }
        Ok(())
    }

    pub fn mapper(&self) -> bool {
        self.mapper.unwrap_or(false)
    }

    pub fn log_level(&self) -> u8 {
        self.log_level.unwrap_or(0)
    }

    pub fn probe_interval(&self) -> Duration {
        self.probe_interval.unwrap_or(DEFAULT_PROBE_INTERVAL)
    }

    pub fn carp_variant(&self) -> carp::Variant {
        self.carp.unwrap_or_default()
    }

    /// How long answers are kept (zero: not at all) and how many.
    pub fn remember(&self) -> (Duration, usize) {
        let (keep, entries) = self.remember.unwrap_or((Duration::ZERO, None));
        (keep, entries.unwrap_or(crate::engine::memory::DEFAULT_ENTRIES))
    }

    pub fn balancer_port(&self) -> u16 {
        self.balancer_port.unwrap_or(DEFAULT_ICP_PORT)
    }

    pub fn balancer_key(&self) -> KeyPrefix {
        self.balancer_key.clone().unwrap_or_else(|| KeyPrefix::Fixed(KeyPrefix::DEFAULT.into()))
    }

    /// The caches asked, and how, with the defaults for what is not set.
    /// Looks up the interface that holds `ICPQueryBindAddr`, if set.
    pub fn cluster(&self) -> Cluster {
        Cluster {
            peers: self.peers.clone(),
            groups: self.mcast_groups.clone(),
            bind: self.bind.map(BindAddr::new),
            mcast_hops: self.mcast_hops.unwrap_or(Cluster::DEFAULT_MCAST_HOPS),
            timeout: self.timeout.unwrap_or(Cluster::DEFAULT_TIMEOUT),
            dead_time: self.dead_time.unwrap_or(Cluster::DEFAULT_DEAD_TIME),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resolve::TableResolver;
    use super::*;

    fn read(lines: &[(Id, &str)]) -> Settings {
        let cx = Context { resolver: &TableResolver::default(), server_relative: &|p| Some(PathBuf::from(p)) };
        let mut s = Settings::default();
        for (id, value) in lines {
            s.apply(*id, value, &cx).unwrap();
        }
        s
    }

    #[test]
    fn a_virtual_host_adds_the_peers_the_main_server_lacks_and_overrides_the_rest() {
        let main = read(&[(Id::Peer, "127.0.0.2"), (Id::Peer, "127.0.0.3"), (Id::Timeout, "50000")]);
        let vhost = read(&[(Id::Peer, "127.0.0.3"), (Id::Peer, "127.0.0.4 weight=2"), (Id::DeadTime, "3")]);
        let merged = Settings::inherit(&main, &vhost);
        let members: Vec<(String, u32)> = merged.peers.iter().map(|p| (p.addr.to_string(), p.weight)).collect();
        assert_eq!(
            members,
            [("127.0.0.2:3130".into(), 1), ("127.0.0.3:3130".into(), 1), ("127.0.0.4:3130".into(), 2)],
            "the repeated 127.0.0.3 is not added twice"
        );
        assert_eq!(merged.timeout, main.timeout);
        assert_eq!(merged.dead_time, Some(Duration::from_secs(3)));
        assert_eq!(merged.cluster().dead_time, Duration::from_secs(3));
    }

    #[test]
    fn a_group_starts_with_its_maps_on_and_nothing_inherited() {
        assert!(Settings::group().mapper());
        assert!(!Settings::default().mapper());
        assert_eq!(Settings::default().cluster(), Cluster::default());
    }

    #[test]
    fn refusals_are_the_parsers_messages() {
        let cx = Context { resolver: &TableResolver::default(), server_relative: &|_| None };
        let mut s = Settings::default();
        let e = s.apply(Id::Timeout, "-5", &cx).unwrap_err();
        assert!(e.0.starts_with("ICPQueryTimeout \"-5\": negative; expected microseconds"), "{e}");
        assert_eq!(s.apply(Id::Mapper, "maybe", &cx).unwrap_err().0, "ICPQueryMapper must be On or Off");
        assert_eq!(s, Settings::default(), "a refused value changes nothing");
    }
}
