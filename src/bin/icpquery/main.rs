//! `icpquery`: the command-line side of mod_icpquery, built from the same
//! crate and sharing its core (ICP codec, lookup engine, directive parsers,
//! CARP). See `icpquery --help`.

mod args;
mod carp;
mod conf_syntax;
mod httpd_conf;
mod query;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use mod_icpquery::engine::{Cluster, Timeout};
use mod_icpquery::pac;
use mod_icpquery::settings::Settings;

use args::{Action, Args, Command};

/// Why the tool stops.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The work failed: exit 1.
    Runtime(String),
    /// Writing the output failed.
    Io(io::Error),
}

fn main() -> ExitCode {
    let failure = match args::parse(std::env::args_os().skip(1)) {
        Ok(Action::Help(text)) => match io::stdout().write_all(text.as_bytes()) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) => Failure::Io(e),
        },
        Ok(Action::Run(args)) => match run(&args) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(f) => f,
        },
        Err(f) => f,
    };
    let (message, code) = match failure {
        Failure::Usage(m) => (m, 2),
        Failure::Runtime(m) => (m, 1),
        // A reader that went away (icpquery pac | head) is not an error.
        Failure::Io(e) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Failure::Io(e) => (format!("cannot write the output: {e}"), 1),
    };
    // One line, whatever the message holds.
    eprintln!("icpquery: {}", message.replace('\n', "\\n").replace('\r', "\\r"));
    ExitCode::from(code)
}

/// The cluster and CARP variant from the configuration file (if any) and
/// the options, which add peers and groups and override the rest.
struct Setup {
    settings: Settings,
    cluster: Cluster,
}

fn setup(args: &Args) -> Result<Setup, Failure> {
    let configured = match &args.config {
        Some(path) => {
            let conf = httpd_conf::read(path, args.server_root.as_deref()).map_err(Failure::Runtime)?;
            conf.settings_for(args.vhost.as_deref())
                .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?
        }
        None if args.vhost.is_some() || args.server_root.is_some() => {
            return Err(Failure::Usage("--vhost and --server-root need --config".to_string()))
        }
        None => Settings::default(),
    };
    let settings = Settings::inherit(&configured, &args.settings);
    // The tool waits long on purpose: it measures.
    let cluster = Cluster { timeout: Timeout::Fixed(args.timeout), ..settings.cluster() };

    let needs_peers = args.command != Command::Query;
    if cluster.peers.is_empty() && (needs_peers || cluster.groups.is_empty()) {
        let what = if needs_peers { "peers" } else { "peers or multicast groups" };
        let message = match &args.config {
            Some(path) => format!(
                "no {what}: {} has no ICPQueryPeer line for this server, and no --peer was given",
                path.display()
            ),
            None => format!("no {what}: give --peer HOST[:PORT] or --config FILE"),
        };
        return Err(Failure::Usage(message));
    }
    Ok(Setup { settings, cluster })
}

fn run(args: &Args) -> Result<(), Failure> {
    let setup = setup(args)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.command {
        Command::Query => {
            let result = query::run(&mut out, &setup.cluster, &args.urls[0], args.count, setup.settings.timeout);
            out.flush().map_err(Failure::Io)?;
            result?;
        }
        Command::Carp => {
            carp::print(&mut out, &setup.cluster.peers, setup.settings.carp_variant(), &args.urls)
                .map_err(Failure::Io)?;
        }
        Command::Pac => {
            let members = pac::peer_members(&setup.cluster.peers, args.proxy_port);
            let pac = pac::render(&members, setup.settings.carp_variant(), &args.fallback);
            out.write_all(pac.as_bytes()).map_err(Failure::Io)?;
        }
    }
    out.flush().map_err(Failure::Io)
}
