//! Host names to addresses: the one place a directive value meets the
//! system resolver.
//!
//! Values are parsed to a host and a port first ([`super::values`]); only
//! then is a host that is not an IP address looked up, through a
//! [`Resolve`] the caller chooses: the module and the tool use the system's
//! ([`SystemResolver`]), unit tests and the fuzz targets one that answers
//! from a table or not at all, so parsing never touches the network there.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Looks host names up.
pub trait Resolve {
    /// Every address of `host` (a name, never an IP address) with `port`.
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// `getaddrinfo(3)`, through the standard library.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// A resolver that knows the names it was given and no other.
#[derive(Default)]
pub struct TableResolver {
    names: Vec<(String, IpAddr)>,
}

impl TableResolver {
    /// Knows no name at all.
    pub const fn empty() -> TableResolver {
        TableResolver { names: Vec::new() }
    }

    pub fn new(names: &[(&str, IpAddr)]) -> TableResolver {
        TableResolver { names: names.iter().map(|(n, ip)| (n.to_ascii_lowercase(), *ip)).collect() }
    }
}

impl Resolve for TableResolver {
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let host = host.to_ascii_lowercase();
        let found: Vec<SocketAddr> =
            self.names.iter().filter(|(n, _)| *n == host).map(|(_, ip)| SocketAddr::new(*ip, port)).collect();
        if found.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "Name or service not known"));
        }
        Ok(found)
    }
}

/// Why a host gave no address; the text goes into the directive's refusal.
#[derive(Debug)]
pub enum Unresolved {
    Failed(io::Error),
    NoAddress,
}

/// The address of `host`: itself when it is an IP address, else the first
/// address `resolver` gives, IPv4 preferred like the original module (which
/// only spoke IPv4).
pub fn address(resolver: &dyn Resolve, host: &str, port: u16) -> Result<SocketAddr, Unresolved> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = resolver.lookup(host, port).map_err(Unresolved::Failed)?;
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs.into_iter().next().ok_or(Unresolved::NoAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_no_lookup_and_names_prefer_ipv4() {
        let none = TableResolver::default();
        assert_eq!(address(&none, "192.0.2.1", 3130).unwrap(), "192.0.2.1:3130".parse().unwrap());
        assert_eq!(address(&none, "::1", 1).unwrap(), "[::1]:1".parse().unwrap());
        assert!(matches!(address(&none, "cache", 3130), Err(Unresolved::Failed(_))));
        let table =
            TableResolver::new(&[("Cache", "2001:db8::1".parse().unwrap()), ("cache", "192.0.2.9".parse().unwrap())]);
        assert_eq!(address(&table, "CACHE", 3130).unwrap(), "192.0.2.9:3130".parse().unwrap());
    }
}
