//! The command line, parsed by hand, and the help texts.
//!
//! Options may come before or after the command, as `--name value` or
//! `--name=value`; `--` ends them. Option values that name a directive's
//! value are parsed by `mod_icpquery::config`, like the directive.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use mod_icpquery::engine::carp::Variant;
use mod_icpquery::engine::Timeout;
use mod_icpquery::settings::resolve::SystemResolver;
use mod_icpquery::settings::{self, values, Settings};

use crate::Failure;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Query,
    Carp,
    Pac,
}

impl Command {
    pub const ALL: [Command; 3] = [Command::Query, Command::Carp, Command::Pac];

    pub fn name(self) -> &'static str {
        match self {
            Command::Query => "query",
            Command::Carp => "carp",
            Command::Pac => "pac",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Command::Query => QUERY_HELP,
            Command::Carp => CARP_HELP,
            Command::Pac => PAC_HELP,
        }
    }
}

/// What to do.
pub enum Action {
    /// Print this help text and exit 0.
    Help(&'static str),
    Run(Box<Args>),
}

/// A command with its options.
#[derive(Debug)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
    pub server_root: Option<PathBuf>,
    pub vhost: Option<String>,
    /// What the options say about the cluster (`--peer`, `--mcast-addr`,
    /// `--mcast-hops`, `--bind`, `--variant`): laid over the configuration
    /// file's settings as a virtual host's are over the main server's.
    pub settings: Settings,
    pub timeout: Duration,
    pub count: u32,
    pub fallback: String,
    pub proxy_port: u16,
    /// URLs as given, byte for byte.
    pub urls: Vec<Vec<u8>>,
}

/// The default wait of `query`: long enough for any cache worth measuring.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_COUNT: u32 = 100_000;

const EVERY: &[Command] = &Command::ALL;

/// Every option: name and the commands it applies to.
const OPTIONS: [(&str, &[Command]); 12] = [
    ("--config", EVERY),
    ("--server-root", EVERY),
    ("--vhost", EVERY),
    ("--peer", EVERY),
    ("--mcast-addr", &[Command::Query]),
    ("--mcast-hops", &[Command::Query]),
    ("--bind", &[Command::Query]),
    ("--timeout", &[Command::Query]),
    ("--count", &[Command::Query]),
    ("--variant", &[Command::Carp, Command::Pac]),
    ("--fallback", &[Command::Pac]),
    ("--proxy-port", &[Command::Pac]),
];

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

/// Parses the arguments after the program name.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Action, Failure> {
    let mut argv = argv.into_iter();
    let mut help = false;
    let mut words: Vec<OsString> = Vec::new();
    let mut options: Vec<(&'static str, OsString)> = Vec::new();
    while let Some(arg) = argv.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            words.extend(argv.by_ref());
            break;
        }
        if bytes == b"-h" || bytes == b"--help" {
            help = true;
            continue;
        }
        if bytes.starts_with(b"--") {
            let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
                Some(at) => (&bytes[..at], Some(OsString::from(std::ffi::OsStr::from_bytes(&bytes[at + 1..])))),
                None => (bytes, None),
            };
            let name_text = String::from_utf8_lossy(name);
            let Some(&(name, _)) = OPTIONS.iter().find(|(n, _)| n.as_bytes() == name) else {
                return Err(usage(format!("unknown option {}; see icpquery --help", name_text.escape_debug())));
            };
            let value = match inline.or_else(|| argv.next()) {
                Some(v) => v,
                None => return Err(usage(format!("{name} needs a value; see icpquery --help"))),
            };
            options.push((name, value));
            continue;
        }
        if bytes.len() > 1 && bytes[0] == b'-' {
            return Err(usage(format!("unknown option {}; see icpquery --help", arg.to_string_lossy().escape_debug())));
        }
        words.push(arg);
    }

    let mut words = words.into_iter();
    let command = match words.next() {
        None if help => return Ok(Action::Help(MAIN_HELP)),
        None => return Err(usage("no command given (query, carp or pac); see icpquery --help")),
        Some(w) if w == "help" => {
            return match words.next() {
                None => Ok(Action::Help(MAIN_HELP)),
                Some(c) => command_named(&c).map(|c| Action::Help(c.help())),
            }
        }
        Some(w) => command_named(&w)?,
    };
    if help {
        return Ok(Action::Help(command.help()));
    }
    let urls: Vec<Vec<u8>> = words.map(|w| w.as_bytes().to_vec()).collect();
    match (command, urls.len()) {
        (Command::Query, 0) => return Err(usage("query needs a URL; see icpquery query --help")),
        (Command::Query, n) if n > 1 => return Err(usage("query takes one URL; see icpquery query --help")),
        (Command::Carp, 0) => return Err(usage("carp needs at least one URL; see icpquery carp --help")),
        (Command::Pac, n) if n > 0 => {
            return Err(usage(format!(
                "pac takes no URL (got {}); see icpquery pac --help",
                String::from_utf8_lossy(&urls[0]).escape_debug()
            )))
        }
        _ => {}
    }

    let mut args = Args {
        command,
        config: None,
        server_root: None,
        vhost: None,
        settings: Settings::default(),
        timeout: DEFAULT_QUERY_TIMEOUT,
        count: 1,
        fallback: "DIRECT".to_string(),
        proxy_port: 3128,
        urls,
    };
    for (name, value) in options {
        let applies = OPTIONS.iter().any(|(n, commands)| *n == name && commands.contains(&command));
        if !applies {
            return Err(usage(format!(
                "{name} does not apply to {}; see icpquery {} --help",
                command.name(),
                command.name()
            )));
        }
        if name == "--config" || name == "--server-root" {
            let path = PathBuf::from(value);
            if name == "--config" {
                args.config = Some(path)
            } else {
                args.server_root = Some(path)
            }
            continue;
        }
        let Some(text) = value.to_str() else {
            return Err(usage(format!("{name}: the value is not UTF-8")));
        };
        let bad = |e: values::ValueError| usage(format!("{name}: {e}"));
        let s = &mut args.settings;
        match name {
            "--vhost" => args.vhost = Some(text.to_string()),
            "--peer" => s.peers.push(values::peer(text, &SystemResolver).map_err(bad)?),
            "--mcast-addr" => s.mcast_groups.push(values::mcast_group(text, &SystemResolver).map_err(bad)?),
            "--mcast-hops" => s.mcast_hops = Some(values::mcast_hops(text).map_err(bad)?),
            "--bind" => s.bind = Some(values::bind_addr(text, &SystemResolver).map_err(bad)?),
            "--timeout" => match values::timeout(text).map_err(bad)? {
                Timeout::Fixed(d) => args.timeout = d,
                Timeout::Auto { .. } => {
                    return Err(usage("--timeout takes microseconds: each lookup of icpquery query waits a fixed time"))
                }
            },
            "--count" => match text.trim().parse::<u32>() {
                Ok(n @ 1..=MAX_COUNT) => args.count = n,
                _ => {
                    return Err(usage(format!(
                        "--count \"{}\": expected a whole number from 1 to {MAX_COUNT}",
                        text.escape_debug()
                    )))
                }
            },
            "--variant" => {
                s.carp = Some(text.parse::<Variant>().map_err(|e| usage(format!("--variant: {e}")))?);
            }
            "--fallback" => args.fallback = fallback(text)?,
            "--proxy-port" => match text.trim().parse::<u16>() {
                Ok(p @ 1..) => args.proxy_port = p,
                _ => {
                    return Err(usage(format!(
                        "--proxy-port \"{}\": expected a port from 1 to 65535",
                        text.escape_debug()
                    )))
                }
            },
            _ => unreachable!("option {name} is in OPTIONS but not handled"),
        }
    }
    Ok(Action::Run(Box::new(args)))
}

fn command_named(word: &OsString) -> Result<Command, Failure> {
    Command::ALL.into_iter().find(|c| word == c.name()).ok_or_else(|| {
        usage(format!(
            "unknown command \"{}\" (expected query, carp or pac); see icpquery --help",
            word.to_string_lossy().escape_debug()
        ))
    })
}

/// A PAC route list, read as `ICPQueryPACFallback` reads it.
fn fallback(text: &str) -> Result<String, Failure> {
    settings::pac::routes("--fallback", text).map_err(|e| usage(e.to_string()))
}

pub const MAIN_HELP: &str = "\
icpquery - ask a cluster of caches over ICP, and route by CARP, as mod_icpquery does

Usage:
  icpquery query URL [cluster options] [--timeout US] [--count N]
  icpquery carp URL... [cluster options] [--variant squid|draft]
  icpquery pac [cluster options] [--variant squid|draft] [--fallback ROUTE] [--proxy-port PORT]
  icpquery help [COMMAND]            (or: icpquery COMMAND --help)

Commands:
  query   send real ICP queries for URL; print each cache's reply and round-trip
          time, and a suggested ICPQueryTimeout
  carp    which cache owns each URL under CARP, with every member's score
  pac     print a Proxy Auto-Config file that makes the same CARP choice in
          the browser, failing over to the next member, then to a fallback

Cluster options (every command; options may come before or after the command):
  --config FILE       read the ICPQuery* lines of an httpd configuration, following
                      Include and IncludeOptional, so the tool sees the module's
                      cluster; a bad value is refused as configtest refuses it,
                      with FILE:LINE
  --server-root DIR   where relative Include paths start (default: the file's
                      ServerRoot line, else the directory of FILE)
  --vhost NAME        use the <VirtualHost> with this address, ServerName or
                      ServerAlias: its ICPQuery* lines add to (peers, groups) or
                      replace (the rest) the main server's; without --vhost,
                      lines inside <VirtualHost> are checked but not used;
                      --vhost group:NAME uses <ICPQueryGroup NAME> instead
  --peer 'HOST[:PORT] [OPTIONS]'
                      one more cache, written as for ICPQueryPeer (port 3130 by
                      default); repeatable; added after the configuration's

Exit status: 0 success; 1 failure (a bad configuration file, no cache answered,
a lookup failed); 2 wrong usage (unknown option or command, bad option value,
no cache given). Errors are one line on stderr.
";

pub const QUERY_HELP: &str = "\
icpquery query - send real ICP queries and time the answers

Usage: icpquery query URL [--config FILE] [--peer HOST[:PORT]]... [options]

Runs the module's own lookup (one ICP_OP_QUERY to every peer and multicast
group, replies checked as the module checks them) N times (--count), one after the
other, each with every cache counted alive. Prints for each cache the replies it
gave (ICP_OP_HIT, ICP_OP_MISS, ICP_OP_MISS_NOFETCH, ICP_OP_DENIED, ICP_OP_ERR,
ICP_OP_HIT_OBJ, \"no reply\", or \"ICMP refused\" when its host has no ICP
listener) and its round-trip times in microseconds (min / median / max), then:

  suggested ICPQueryTimeout: US

US is 3 x the slowest reply seen, rounded up to two significant digits (1311
gives 1400), at least 1000 and at most 60000000. Caches that did not answer are
not counted: a lookup never needs to wait for them once the module knows they
are dead. Use --count to catch the occasional slow reply.

Options:
  --timeout US        how long each lookup waits for replies (default 1000000,
                      one second); keep it well above the slowest cache
  --count N           lookups to run (default 1)
  --mcast-addr GROUP[:PORT]
                      also query a multicast group, as ICPQueryMCastAddr
                      (repeatable); such a lookup always waits the whole timeout
  --mcast-hops N      multicast TTL, as ICPQueryMCastHops
  --bind ADDR         send from this local address, as ICPQueryBindAddr
  --config FILE, --server-root DIR, --vhost NAME, --peer HOST[:PORT]
                      where the caches come from (see icpquery --help)

Exit status: 0 if at least one cache gave a valid reply (of any kind); 1 if none
did or the lookup failed; 2 wrong usage.
";

pub const CARP_HELP: &str = "\
icpquery carp - which cache owns each URL under CARP, with every member's score

Usage: icpquery carp URL... [--config FILE] [--peer HOST[:PORT]]... [--variant squid|draft]

The members are the peers (ICPQueryPeer lines, then --peer), in that order; a
member's CARP name is its host as written and its weight is 1. The computation
is the module's own (engine::carp), checked bit for bit against Squid 5.7.

Prints the array (evaluation order, load factors, multipliers), then for each
URL its owner and every member with its rank, weight and score. The rank is the
order a client fails over in: the owner, then the owner once the first is gone,
and so on; a member scoring 0 or NaN can never be chosen and has rank \"-\".
URLs are hashed byte for byte as given: no decoding of %-escapes.

Options:
  --variant squid|draft
                      squid (the default, or ICPQueryCARP from --config): the
                      URL hash of Squid 3.3 and later; draft: the hash of
                      draft-vinod-carp-v1-03, as in Squid up to 3.2
  --config FILE, --server-root DIR, --vhost NAME, --peer HOST[:PORT]
                      where the members come from (see icpquery --help)

Exit status: 0 success; 1 a bad configuration file; 2 wrong usage.
";

pub const PAC_HELP: &str = "\
icpquery pac - print a Proxy Auto-Config file that routes browsers by CARP

Usage: icpquery pac [--config FILE] [--peer HOST[:PORT]]... [--variant squid|draft]
                    [--fallback ROUTE] [--proxy-port PORT]

The file's FindProxyForURL(url, host) computes in JavaScript the choice that
icpquery carp prints (same hashes, same multipliers, same tie-break; the URL
hashed as its UTF-8 bytes) and returns every member that can own the URL, best
first, then the fallback:

  PROXY 192.0.2.3:3128; PROXY 192.0.2.2:3128; PROXY 192.0.2.4:3128; DIRECT

so a browser that cannot reach the owner tries the next cache, and the fallback
when no cache answers. Members are the peers, as for icpquery carp; each is
reached at its address and the proxy port.

Options:
  --proxy-port PORT   the caches' HTTP proxy port (default 3128)
  --fallback ROUTE    what follows the members: DIRECT (the default), or e.g.
                      \"PROXY portal.example:8080\"; several separated by ';'
  --variant squid|draft
                      as for icpquery carp
  --config FILE, --server-root DIR, --vhost NAME, --peer HOST[:PORT]
                      where the members come from (see icpquery --help)

Exit status: 0 success; 1 a bad configuration file; 2 wrong usage.
";
