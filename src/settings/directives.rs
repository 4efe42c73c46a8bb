//! The table of `ICPQuery*` directives: name, argument form and help text.
//! The module makes httpd's command table from it, the tool's configuration
//! reader recognises directives by it, so both know the same directives
//! and read their arguments the same way.

use std::ffi::CStr;

/// Which directive (what a handler applies a value to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id {
    Mapper,
    Timeout,
    DeadTime,
    ProbeInterval,
    Log,
    LogLevel,
    BindAddr,
    Peer,
    MCastAddr,
    MCastHops,
    Carp,
    BalancerPort,
    BalancerKey,
    Remember,
    Group,
    PacCaches,
    PacProxyPort,
    PacFallback,
}

/// Where a directive may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Server config, virtual hosts and `<ICPQueryGroup>` blocks (httpd's
    /// RSRC_CONF): what the caches are and how they are asked.
    Server,
    /// Also inside `<Location>`, `<Directory>` and `<Files>` (RSRC_CONF |
    /// ACCESS_CONF; not in .htaccess): how a handler there serves them. At
    /// server level it is the default of every section.
    Directory,
}

/// How httpd hands a directive its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Args {
    /// `On` or `Off` (httpd's FLAG).
    Flag,
    /// One word, unquoted by httpd (TAKE1).
    One,
    /// The rest of the line as written, quotes included (RAW_ARGS).
    Raw,
    /// A `<Section args>` block whose lines are directives (RAW_ARGS, the
    /// handler reads the block).
    Section,
}

pub struct Directive {
    pub id: Id,
    /// As registered: httpd matches it case-insensitively.
    pub name: &'static CStr,
    pub args: Args,
    /// What httpd shows for a directive used wrongly.
    pub help: &'static CStr,
    pub scope: Scope,
}

impl Directive {
    pub fn name(&self) -> &'static str {
        self.name.to_str().expect("directive names are ASCII")
    }

    /// The directive `name` (case-insensitive; sections as `<ICPQueryGroup`).
    pub fn named(name: &str) -> Option<&'static Directive> {
        DIRECTIVES.iter().find(|d| d.name().eq_ignore_ascii_case(name))
    }
}

const fn directive(id: Id, name: &'static CStr, args: Args, help: &'static CStr) -> Directive {
    Directive { id, name, args, help, scope: Scope::Server }
}

const fn per_dir(id: Id, name: &'static CStr, args: Args, help: &'static CStr) -> Directive {
    Directive { id, name, args, help, scope: Scope::Directory }
}

pub static DIRECTIVES: [Directive; 18] = [
    directive(
        Id::Mapper,
        c"ICPQueryMapper",
        Args::Flag,
        c"On or Off: answer the icpquerymap and icpqueryisrunning RewriteMaps",
    ),
    directive(
        Id::Timeout,
        c"ICPQueryTimeout",
        Args::Raw,
        c"microseconds to wait for ICP replies (default 100000), or auto [min max]",
    ),
    directive(
        Id::DeadTime,
        c"ICPQueryDeadTime",
        Args::One,
        c"seconds without a reply before a cache is dead (default 10)",
    ),
    directive(
        Id::ProbeInterval,
        c"ICPQueryProbeInterval",
        Args::One,
        c"seconds between probe queries to every cache; 0 is off (default 5)",
    ),
    directive(
        Id::Log,
        c"ICPQueryLog",
        Args::One,
        c"file the module logs to (relative to ServerRoot), or \"|program\" as for CustomLog",
    ),
    directive(
        Id::LogLevel,
        c"ICPQueryLogLevel",
        Args::One,
        c"0 problems, 1 results, 2 information, 3 debug (default 0)",
    ),
    directive(Id::BindAddr, c"ICPQueryBindAddr", Args::One, c"local address ICP queries are sent from"),
    directive(
        Id::Peer,
        c"ICPQueryPeer",
        Args::Raw,
        c"host[:port] [round=1|2] of a cache to query by unicast (port 3130 if omitted)",
    ),
    directive(
        Id::MCastAddr,
        c"ICPQueryMCastAddr",
        Args::One,
        c"group[:port] of a multicast group to query (port 3130 if omitted)",
    ),
    directive(Id::MCastHops, c"ICPQueryMCastHops", Args::One, c"multicast TTL, 1 to 255 (default 3)"),
    directive(Id::Carp, c"ICPQueryCARP", Args::One, c"squid or draft: how icpquerycarp hashes URLs (default squid)"),
    directive(
        Id::BalancerPort,
        c"ICPQueryBalancerPort",
        Args::One,
        c"ICP port lbmethod=bycache asks each balancer member's host on (default 3130)",
    ),
    directive(
        Id::BalancerKey,
        c"ICPQueryBalancerKey",
        Args::One,
        c"http://HOST the caches key objects by (default http://localhost), or host for the request's Host header",
    ),
    directive(
        Id::Remember,
        c"ICPQueryRemember",
        Args::Raw,
        c"seconds [entries]: keep answers in shared memory for this long (default 0, off; entries 16384)",
    ),
    directive(
        Id::Group,
        c"<ICPQueryGroup",
        Args::Section,
        c"<ICPQueryGroup name>: a cache group with its own ICPQuery* settings and maps",
    ),
    per_dir(
        Id::PacCaches,
        c"ICPQueryPACCaches",
        Args::Raw,
        c"server, group NAME or balancer NAME: whose caches SetHandler icpquery-pac routes to (default server)",
    ),
    per_dir(
        Id::PacProxyPort,
        c"ICPQueryPACProxyPort",
        Args::One,
        c"the caches' HTTP proxy port in the PAC file (default 3128; a balancer member's own port)",
    ),
    per_dir(
        Id::PacFallback,
        c"ICPQueryPACFallback",
        Args::One,
        c"what the PAC file returns after the caches: DIRECT (the default) or \"PROXY host:port\", several separated by ;",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directive_once_and_found_by_any_case() {
        for d in &DIRECTIVES {
            assert!(std::ptr::eq(Directive::named(&d.name().to_ascii_uppercase()).unwrap(), d));
            assert_eq!(DIRECTIVES.iter().filter(|o| o.id == d.id).count(), 1, "{}", d.name());
        }
        assert!(Directive::named("ICPQueryNothing").is_none());
    }
}
