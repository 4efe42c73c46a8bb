//! What a server asks and how: its caches ([`Peer`]), multicast groups and
//! timing ([`Cluster`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::carp;
use super::sys;

/// ICP's registered port, used when a peer or group is given without one.
pub const DEFAULT_ICP_PORT: u16 = 3130;

/// A cache asked by unicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The host exactly as the configuration wrote it (a name or an address),
    /// so `icpqueryisrunning` can be asked with either.
    pub host: String,
    /// Where queries go, and the only address and port a reply may come from.
    pub addr: SocketAddr,
    /// Polling round: round-2 caches (parents) are asked only when no
    /// round-1 cache answered HIT.
    pub round: u8,
    /// CARP load factor; 0 keeps the cache out of the array.
    pub weight: u32,
    /// The CARP member name that is hashed (`name=`); the host by default,
    /// as Squid hashes a cache_peer's name, which defaults to its host.
    pub carp_name: Option<String>,
}

impl Peer {
    /// A first-round peer of weight 1 named by its host.
    pub fn new(host: impl Into<String>, addr: SocketAddr) -> Peer {
        Peer { host: host.into(), addr, round: 1, weight: 1, carp_name: None }
    }

    /// The name CARP hashes for this member.
    pub fn carp_name(&self) -> &str {
        self.carp_name.as_deref().unwrap_or(&self.host)
    }

    /// This cache as a member of the CARP array: its `name=` (default: the
    /// host as written) and its `weight=`, as Squid's `cache_peer` has them.
    pub fn carp_member(&self) -> carp::Member<'_> {
        carp::Member { name: self.carp_name(), weight: self.weight }
    }

    /// The address as the maps return it: `192.0.2.1`, or `[2001:db8::1]` so
    /// that `http://%1:3128` stays a valid URL.
    pub fn ip_text(&self) -> String {
        ip_text(self.addr.ip())
    }
}

/// Text form of an address in map values and logs (IPv6 in brackets).
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Everything one server asks and how: its neighbourhood of caches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub peers: Vec<Peer>,
    /// Multicast groups; any host may answer a query sent to one.
    pub groups: Vec<SocketAddr>,
    /// Local address queries are sent from; `None` lets the kernel choose.
    pub bind: Option<BindAddr>,
    /// Multicast TTL (IPv4) or hop limit (IPv6).
    pub mcast_hops: u32,
    /// How long to wait for replies, counted from the first datagram sent.
    pub timeout: Timeout,
    /// A peer silent this long while asked (or refused by ICMP) is dead: no
    /// lookup waits for it, and it is asked once per dead time to revive.
    pub dead_time: Duration,
}

/// `ICPQueryBindAddr`: the address queries are sent from, and the interface
/// that held it when the configuration was read. Multicast leaves by that
/// interface: IPv4 names it by address, IPv6 only by index, which is looked
/// up once here rather than per lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindAddr {
    pub ip: IpAddr,
    /// `None`: no interface holds `ip` (the kernel chooses; sending from an
    /// address the host lacks fails, and that is logged per lookup).
    pub interface: Option<u32>,
}

impl BindAddr {
    pub fn new(ip: IpAddr) -> BindAddr {
        BindAddr { ip, interface: sys::interface_holding(ip) }
    }
}

/// `ICPQueryTimeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    Fixed(Duration),
    /// Twice the smoothed round-trip time of the slowest live peer waited
    /// for, within `[min, max]`; `max` while a peer has no measurement yet.
    Auto {
        min: Duration,
        max: Duration,
    },
}

impl Timeout {
    pub const DEFAULT_AUTO_MIN: Duration = Duration::from_micros(1_000);
    pub const DEFAULT_AUTO_MAX: Duration = Duration::from_micros(2_000_000);

    /// The wait for one lookup, given the RTTs of the peers it waits for.
    pub fn for_rtts(self, rtts: impl IntoIterator<Item = Option<Duration>>) -> Duration {
        match self {
            Timeout::Fixed(d) => d,
            Timeout::Auto { min, max } => {
                let mut slowest = Duration::ZERO;
                for rtt in rtts {
                    slowest = slowest.max(rtt.map_or(max, |r| r * 2));
                }
                slowest.clamp(min, max)
            }
        }
    }
}

/// `ICPQueryTimeout`'s own syntax: `50000` or `auto 1000 2000000` (µs).
impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeout::Fixed(d) => write!(f, "{}", d.as_micros()),
            Timeout::Auto { min, max } => write!(f, "auto {} {}", min.as_micros(), max.as_micros()),
        }
    }
}

impl Cluster {
    pub const DEFAULT_TIMEOUT: Timeout = Timeout::Fixed(Duration::from_micros(100_000));
    pub const DEFAULT_MCAST_HOPS: u32 = 3;
    pub const DEFAULT_DEAD_TIME: Duration = Duration::from_secs(10);

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.groups.is_empty()
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            peers: Vec::new(),
            groups: Vec::new(),
            bind: None,
            mcast_hops: Self::DEFAULT_MCAST_HOPS,
            timeout: Self::DEFAULT_TIMEOUT,
            dead_time: Self::DEFAULT_DEAD_TIME,
        }
    }
}

/// The CARP array of `peers`, each a member as [`Peer::carp_member`] says:
/// what the maps, `icpquery carp` and `icpquery pac` all hash.
pub fn carp_array(peers: &[Peer], variant: carp::Variant) -> carp::Array {
    let members: Vec<carp::Member<'_>> = peers.iter().map(Peer::carp_member).collect();
    carp::Array::new(&members, variant)
}
