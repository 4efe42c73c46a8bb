//! The `icpquery` binary, run as a user runs it: against small ICP
//! responders on loopback (127.0.90.x, 127.0.91.x), against three real
//! Squids (127.0.92.x), with generated httpd configurations (checked against
//! real httpd's configtest), and for its help and usage errors.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mod_icpquery::engine::carp::{Array, Member, Variant};
use mod_icpquery::icp::Opcode;
use support::responder::Responder;

use support::httpd::{httpd_binary, main_conf, module_path, HttpdOptions, Mpm};
use support::{http, Cluster, TestDir};

// ------------------------------------------------------------------ helpers

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn icpquery(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_icpquery"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run icpquery: {e}"));
    Run {
        code: out.status.code().expect("icpquery killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    /// The one stderr line of a failed run.
    fn error_line(&self) -> &str {
        assert_eq!(self.stderr.lines().count(), 1, "errors are one line: {:?}", self.stderr);
        assert!(self.stderr.starts_with("icpquery: "), "{:?}", self.stderr);
        self.stderr.trim_end()
    }

    /// The output line that starts with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{}", self.stdout))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn suggested(run: &Run) -> u64 {
    let line = run.line("suggested ICPQueryTimeout: ");
    line["suggested ICPQueryTimeout: ".len()..].parse().unwrap_or_else(|_| panic!("{run:?}"))
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ------------------------------------------------------------------ query

#[test]
fn query_prints_each_peer_reply_and_rtt_and_a_suggested_timeout() {
    let _hit = Responder::start("127.0.90.2:3130", |_| Some(Opcode::Hit));
    let _miss = Responder::start("127.0.90.3:3130", |_| Some(Opcode::Miss));
    let _slow = Responder::start_after("127.0.90.4:3130", Duration::from_millis(5), |_| Some(Opcode::Miss));
    let _silent = Responder::start("127.0.90.5:3130", |_| None);
    // 127.0.90.6:3130: nothing listens, loopback answers ICMP port unreachable.
    let run = icpquery(&[
        "query",
        "http://localhost/cli/a?b=1",
        "--peer",
        "127.0.90.2",
        "--peer=127.0.90.3:3130",
        "--peer",
        "127.0.90.4:3130",
        "--peer",
        "127.0.90.5:3130",
        "--peer",
        "127.0.90.6:3130",
        "--timeout",
        "300000",
        "--count",
        "3",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
    assert!(
        run.line("ICP_OP_QUERY ")
            .contains("http://localhost/cli/a?b=1 to 5 peer(s), 3 lookup(s), waiting up to 300000 us"),
        "{run:?}"
    );
    let hit = run.line("127.0.90.2:3130 ");
    assert!(hit.contains("ICP_OP_HIT x3") && hit.contains("rtt min ") && hit.contains(" / median "), "{run:?}");
    assert!(run.line("127.0.90.3:3130 ").contains("ICP_OP_MISS x3  rtt min "), "{run:?}");
    assert!(run.line("127.0.90.4:3130 ").contains("ICP_OP_MISS x3  rtt min "), "{run:?}");
    assert!(run.line("127.0.90.5:3130 ").ends_with("no reply x3"), "{run:?}");
    assert!(run.line("127.0.90.6:3130 ").ends_with("ICMP refused x3"), "{run:?}");

    // The slow cache answers after >= 5 ms: 3 x that, rounded up.
    let slowest = run.line("slowest reply: ");
    assert!(slowest.ends_with("from 127.0.90.4:3130"), "{run:?}");
    let slowest_us: u64 = slowest["slowest reply: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(slowest_us >= 5_000, "{run:?}");
    let s = suggested(&run);
    assert!(s >= 3 * slowest_us && s < 3 * slowest_us + 3 * slowest_us / 10 + 1000, "{s} for {slowest_us}: {run:?}");
    // Two significant digits.
    let digits = s.to_string();
    assert!(digits[2..].bytes().all(|b| b == b'0'), "{s}");
    // The RTTs of one peer read min <= median <= max.
    let numbers: Vec<u64> = run
        .line("127.0.90.3:3130 ")
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    let n = numbers.len();
    let (min, median, max) = (numbers[n - 3], numbers[n - 2], numbers[n - 1]);
    assert!(min <= median && median <= max, "{run:?}");
}

#[test]
fn fast_caches_get_the_least_suggested_timeout_and_one_lookup_prints_one_rtt() {
    let _a = Responder::start("127.0.90.7:3130", |_| Some(Opcode::Miss));
    let run = icpquery(&["query", "--peer", "127.0.90.7", "http://localhost/one"]);
    assert_eq!(run.code, 0, "{run:?}");
    let line = run.line("127.0.90.7:3130 ");
    assert!(line.contains("  ICP_OP_MISS  rtt ") && line.ends_with(" us"), "{run:?}");
    assert!(!line.contains("min"), "{run:?}");
    let rtt: u64 = line.rsplit(' ').nth(1).unwrap().parse().unwrap();
    // 3 x rtt rounded up to two significant digits, at least 1000 (loopback
    // usually answers in under 333 us, unless the machine is busy).
    let three = 3 * rtt;
    let step = (0..).map(|e| 10u64.pow(e)).find(|s| three / s < 100).unwrap();
    assert_eq!(suggested(&run), (three.div_ceil(step) * step).max(1000), "{run:?}");
}

#[test]
fn query_exits_1_when_no_cache_answers() {
    let _silent = Responder::start("127.0.90.8:3130", |_| None);
    let run = icpquery(&[
        "query",
        "http://localhost/nobody",
        "--peer",
        "127.0.90.9:3130",
        "--peer",
        "127.0.90.8:3130",
        "--timeout",
        "50000",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.error_line(), "icpquery: no cache answered");
    assert!(run.line("127.0.90.9:3130 ").ends_with("ICMP refused"), "{run:?}");
    assert!(run.line("127.0.90.8:3130 ").ends_with("no reply"), "{run:?}");
    assert_eq!(run.line("suggested ICPQueryTimeout: "), "suggested ICPQueryTimeout: none (no cache answered)");
}

#[test]
fn a_url_no_cache_can_hold_is_a_runtime_error() {
    let run = icpquery(&["query", "--peer", "127.0.90.9", "http://localhost/a b"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error_line().contains("not queried"), "{run:?}");
}

#[test]
fn real_squids_answer_hit_for_what_they_hold_and_miss_for_the_rest() {
    let c = Cluster::start_caches(92);
    let [a, b, cc] = c.hosts();
    let path = "/wsgi/cli-squid?lang=en";
    // Only the Squid on b holds the object.
    let first = http::get(c.cache_for(b).http_addr(), path);
    assert_eq!(first.status, 200, "{first:?}");
    assert!(http::get(c.cache_for(b).http_addr(), path).is_hit());
    let url = format!("http://localhost{path}");
    let peers: Vec<String> = [a, b, cc].iter().map(|h| format!("--peer={h}:3130")).collect();
    let mut args = vec!["query", url.as_str(), "--count", "4"];
    args.extend(peers.iter().map(String::as_str));
    args.extend(["--peer", "127.0.92.5:3130"]); // no Squid there
    let run = icpquery(&args);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.line(&format!("{a}:3130 ")).contains("ICP_OP_MISS x4  rtt min "), "{run:?}");
    assert!(run.line(&format!("{b}:3130 ")).contains("ICP_OP_HIT x4  rtt min "), "{run:?}");
    assert!(run.line(&format!("{cc}:3130 ")).contains("ICP_OP_MISS x4  rtt min "), "{run:?}");
    assert!(run.line("127.0.92.5:3130 ").ends_with("ICMP refused x4"), "{run:?}");
    assert!(suggested(&run) >= 1000, "{run:?}");
}

// ------------------------------------------------------------------ --config

/// A ServerRoot with httpd.conf including conf.d/*.conf, where the peers
/// are; returns the path of httpd.conf.
fn config_tree(dir: &Path, peers_conf: &str) -> std::path::PathBuf {
    let conf = dir.join("httpd.conf");
    write(
        &conf,
        &format!(
            "# main configuration\n\
             ServerRoot \"{}\"\n\
             Define CACHES conf.d\n\
             ICPQueryTimeout 20000\n\
             <IfModule !mod_icpquery.c>\n    ICPQueryPeer 127.0.91.250\n</IfModule>\n\
             Include ${{CACHES}}/*.conf\n\
             <VirtualHost 127.0.91.1:8080>\n\
             \x20   ServerName portal.test:8080\n\
             \x20   ICPQueryPeer 127.0.91.5:3130\n\
             \x20   ICPQueryCARP draft\n\
             </VirtualHost>\n",
            dir.display()
        ),
    );
    write(&dir.join("conf.d/00-other.conf"), "# nothing about caches\nListen 8080\n");
    write(&dir.join("conf.d/peers.conf"), peers_conf);
    write(&dir.join("conf.d/ignored.txt"), "ICPQueryPeer 127.0.91.251\n");
    conf
}

#[test]
fn config_peers_come_from_an_included_file_and_peer_flags_add_to_them() {
    let dir = TestDir::new("cli-config");
    let conf = config_tree(
        dir.path(),
        "<IfModule mod_icpquery.c>\n\
         ICPQueryPeer 127.0.91.2:3130\n\
         icpquerypeer \\\n   127.0.91.3:3130\n\
         </IfModule>\n",
    );
    let conf = conf.to_str().unwrap();
    let _a = Responder::start("127.0.91.2:3130", |_| Some(Opcode::Hit));
    let _b = Responder::start("127.0.91.3:3130", |_| Some(Opcode::Miss));
    let _c = Responder::start("127.0.91.4:3130", |_| Some(Opcode::Miss));
    // --config before the command, --peer after it.
    let run = icpquery(&["--config", conf, "query", "http://localhost/cfg", "--peer", "127.0.91.4"]);
    assert_eq!(run.code, 0, "{run:?}");
    let names: Vec<&str> =
        run.stdout.lines().filter(|l| l.starts_with("127.")).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["127.0.91.2:3130", "127.0.91.3:3130", "127.0.91.4:3130"], "{run:?}");
    assert!(run.line("127.0.91.2:3130 ").contains("ICP_OP_HIT"), "{run:?}");
    assert_eq!(run.line("configured ICPQueryTimeout: "), "configured ICPQueryTimeout: 20000");

    // The virtual host adds its peer and its CARP variant.
    let main = icpquery(&["carp", "http://localhost/x", "--config", conf]);
    assert_eq!(main.code, 0, "{main:?}");
    assert!(main.stdout.starts_with("CARP variant squid, 2 member(s)"), "{main:?}");
    for vhost in ["portal.test", "portal.test:8080", "127.0.91.1:8080"] {
        let v = icpquery(&["carp", "http://localhost/x", "--config", conf, "--vhost", vhost]);
        assert_eq!(v.code, 0, "{v:?}");
        assert!(v.stdout.starts_with("CARP variant draft, 3 member(s)"), "{vhost}: {v:?}");
        assert!(v.stdout.contains("\n  127.0.91.5 "), "{v:?}");
    }
    let none = icpquery(&["carp", "http://localhost/x", "--config", conf, "--vhost", "other.test"]);
    assert_eq!(none.code, 1, "{none:?}");
    assert!(none.error_line().contains("no <VirtualHost> has the address, ServerName or ServerAlias \"other.test\""));
}

#[test]
fn config_errors_name_the_file_and_line_as_configtest_does() {
    let dir = TestDir::new("cli-config-bad");
    let conf = config_tree(dir.path(), "ICPQueryPeer 127.0.91.2\n\nICPQueryTimeout -5\n");
    let run = icpquery(&["query", "http://localhost/x", "--config", conf.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let peers = dir.path().join("conf.d/peers.conf");
    assert_eq!(
        run.error_line(),
        format!(
            "icpquery: {}:3: ICPQueryTimeout \"-5\": negative; expected microseconds as a whole number from 1 to \
             60000000 (100000 is 0.1 s), or \"auto\" optionally followed by the least and the longest wait in \
             microseconds",
            peers.display()
        )
    );
    // Other refusals, each with its place.
    for (text, line, message) in [
        ("ICPQueryPeer 127.0.91.2 colour=blue\n", 1, "ICPQueryPeer \"127.0.91.2 colour=blue\": unknown option"),
        ("\nICPQueryMCastHops 300\n", 2, "ICPQueryMCastHops \"300\": out of range"),
        ("ICPQueryCARP v1\n", 1, "ICPQueryCARP \"v1\": not a CARP variant; expected squid"),
        ("ICPQueryMapper maybe\n", 1, "ICPQueryMapper must be On or Off"),
        ("ICPQueryBindAddr 127.0.0.1 127.0.0.2\n", 1, "ICPQueryBindAddr takes one argument"),
        ("<Location />\nICPQueryPeer 127.0.91.2\n</Location>\n", 2, "ICPQueryPeer not allowed in <Location> context"),
        ("Include missing.conf\n", 1, "Could not open configuration file "),
        ("<VirtualHost *:80>\n", 1, "<VirtualHost> was not closed."),
    ] {
        write(&peers, text);
        let run = icpquery(&["carp", "http://localhost/x", "--config", conf.to_str().unwrap()]);
        assert_eq!(run.code, 1, "{text:?}: {run:?}");
        let want = format!("icpquery: {}:{line}: {message}", peers.display());
        assert!(run.error_line().starts_with(&want), "{text:?}: {run:?}\nwant {want}");
    }
    let missing = icpquery(&["pac", "--config", "/nonexistent/httpd.conf"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.error_line(),
        "icpquery: Could not open configuration file /nonexistent/httpd.conf: No such file or directory"
    );
}

#[test]
fn config_errors_match_real_httpd_configtest_word_for_word() {
    let module = module_path();
    assert!(module.exists(), "build the module first: cargo build --release ({} missing)", module.display());
    for (bad, line_in_include) in [
        ("ICPQueryTimeout -5", 2),
        ("ICPQueryPeer 127.0.91.2:70000", 2),
        ("ICPQueryMCastAddr 127.0.91.2", 2),
        ("ICPQueryTimeout \\\n  auto 5000 1000", 3),
        ("ICPQueryMCastHops \"3\" 4", 2),
    ] {
        let dir = TestDir::new("cli-configtest");
        let included = dir.join("caches/icp.conf");
        write(&included, &format!("ICPQueryPeer 127.0.91.2:3130\n{bad}\n"));
        let opts = HttpdOptions {
            net: 91,
            mpm: Mpm::Event,
            portal_conf: format!("LoadModule icpquery_module {}\nInclude caches/*.conf\n", module.display()),
            module: module.clone(),
        };
        for sub in ["htdocs", "logs", "run"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let conf = dir.join("httpd.conf");
        write(&conf, &main_conf(dir.path(), &opts));
        let out = Command::new(httpd_binary()).arg("-t").arg("-f").arg(&conf).output().expect("run httpd -t");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: configtest passed: {stderr}");
        // "AH00526: Syntax error on line N of FILE:\nMESSAGE"
        let (head, message) = stderr.split_once(":\n").unwrap_or_else(|| panic!("{stderr}"));
        let (_, place) = head.split_once("Syntax error on line ").unwrap_or_else(|| panic!("{stderr}"));
        let (line, file) = place.split_once(" of ").unwrap();
        assert_eq!((file, line.parse::<usize>().unwrap()), (included.to_str().unwrap(), line_in_include), "{stderr}");
        let run = icpquery(&["carp", "http://localhost/", "--config", conf.to_str().unwrap()]);
        assert_eq!(run.code, 1, "{bad}: {run:?}");
        let ours = run.error_line();
        let want = format!("icpquery: {file}:{line}: {}", message.trim_end());
        if bad.starts_with("ICPQueryMCastHops") {
            // httpd appends the directive's help text; icpquery stops at "argument".
            assert!(want.starts_with(ours), "{bad}:\nhttpd:    {want}\nicpquery: {ours}");
        } else {
            assert_eq!(ours, want, "{bad}");
        }
    }
}

// ------------------------------------------------------------------ carp

#[test]
fn carp_prints_the_owner_and_every_score_as_the_library_computes_them() {
    let hosts = ["127.0.90.20", "127.0.90.21", "127.0.90.22", "127.0.90.23"];
    let urls = ["http://localhost/carp/1?k=1", "http://localhost/caf\u{e9}", "http://localhost/x/%C3%A9"];
    for variant in [Variant::Squid, Variant::Draft] {
        let mut args = vec!["carp", "--variant", variant.name()];
        for h in &hosts {
            args.extend(["--peer", h]);
        }
        args.extend(urls);
        let run = icpquery(&args);
        assert_eq!(run.code, 0, "{run:?}");
        let members: Vec<Member> = hosts.iter().map(|h| Member { name: h, weight: 1 }).collect();
        let array = Array::new(&members, variant);
        let blocks: Vec<&str> = run.stdout.split("\n\n").skip(1).collect();
        assert_eq!(blocks.len(), urls.len(), "{run:?}");
        for (url, block) in urls.iter().zip(blocks) {
            let lines: Vec<&str> = block.lines().collect();
            assert_eq!(lines[0], *url);
            let owner = array.owner(url.as_bytes(), |_| true).unwrap();
            assert_eq!(lines[1], format!("  owner: {} ({}:3130)", hosts[owner], hosts[owner]), "{block}");
            for (i, score) in array.scores(url.as_bytes()) {
                let row = lines[3..].iter().find(|l| l.split_whitespace().nth(1) == Some(hosts[i])).unwrap();
                assert_eq!(row.split_whitespace().nth(3), Some(score.to_string().as_str()), "{block}");
            }
            let first_rank = lines[3].split_whitespace().collect::<Vec<_>>();
            assert_eq!((first_rank[0], first_rank[1]), ("1", hosts[owner]), "{block}");
        }
    }
}

#[test]
fn carp_hashes_url_bytes_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    // Not UTF-8: hashed byte for byte, shown escaped.
    let url = std::ffi::OsStr::from_bytes(b"http://localhost/\xff\x80?q=\xe9");
    let out = Command::new(env!("CARGO_BIN_EXE_icpquery"))
        .args(["carp", "--peer", "127.0.90.30", "--peer", "127.0.90.31"])
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("\nhttp://localhost/\\xff\\x80?q=\\xe9\n"), "{stdout}");
    let members = [Member { name: "127.0.90.30", weight: 1 }, Member { name: "127.0.90.31", weight: 1 }];
    let owner = Array::new(&members, Variant::Squid).owner(url.as_bytes(), |_| true).unwrap();
    assert!(stdout.contains(&format!("  owner: {} ", members[owner].name)), "{stdout}");
}

// ------------------------------------------------------------------ usage

#[test]
fn help_for_the_tool_and_every_command() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let run = icpquery(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(run.stdout.starts_with("icpquery - "), "{run:?}");
        for cmd in ["icpquery query URL", "icpquery carp URL...", "icpquery pac", "--config FILE", "Exit status"] {
            assert!(run.stdout.contains(cmd), "{args:?} lacks {cmd:?}");
        }
        assert!(run.stderr.is_empty());
    }
    for (cmd, must) in [
        (
            "query",
            &["suggested ICPQueryTimeout", "3 x the slowest reply", "--count N", "--timeout US", "ICMP refused"][..],
        ),
        ("carp", &["--variant squid|draft", "owner", "score"]),
        ("pac", &["FindProxyForURL", "--fallback ROUTE", "--proxy-port PORT", "DIRECT"]),
    ] {
        for args in [vec![cmd, "--help"], vec!["help", cmd], vec!["--peer", "127.0.0.1", cmd, "-h"]] {
            let run = icpquery(&args);
            assert_eq!(run.code, 0, "{args:?}: {run:?}");
            assert!(run.stdout.starts_with(&format!("icpquery {cmd} - ")), "{args:?}: {run:?}");
            for m in must {
                assert!(run.stdout.contains(m), "{args:?} lacks {m:?}: {run:?}");
            }
        }
    }
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    for (args, message) in [
        (&[][..], "no command given"),
        (&["frobnicate"], "unknown command \"frobnicate\""),
        (&["help", "frobnicate"], "unknown command \"frobnicate\""),
        (&["query", "--frob", "http://x/"], "unknown option --frob"),
        (&["query", "-x", "http://x/"], "unknown option -x"),
        (&["query", "http://x/", "--peer"], "--peer needs a value"),
        (&["query", "--peer", "127.0.0.1"], "query needs a URL"),
        (&["query", "--peer", "127.0.0.1", "http://x/", "http://y/"], "query takes one URL"),
        (&["query", "http://x/"], "no peers or multicast groups: give --peer"),
        (&["carp", "--peer", "127.0.0.1"], "carp needs at least one URL"),
        (&["pac", "--peer", "127.0.0.1", "http://x/"], "pac takes no URL"),
        (&["carp", "--count", "2", "--peer", "127.0.0.1", "http://x/"], "--count does not apply to carp"),
        (&["pac", "--timeout", "2", "--peer", "127.0.0.1"], "--timeout does not apply to pac"),
        (
            &["query", "--timeout", "-5", "--peer", "127.0.0.1", "http://x/"],
            "--timeout: ICPQueryTimeout \"-5\": negative",
        ),
        (&["query", "--timeout", "auto", "--peer", "127.0.0.1", "http://x/"], "--timeout takes microseconds"),
        (&["query", "--count", "0", "--peer", "127.0.0.1", "http://x/"], "--count \"0\": expected a whole number"),
        (&["query", "--peer", "127.0.0.1:0", "http://x/"], "--peer: ICPQueryPeer \"127.0.0.1:0\": port out of range"),
        (&["carp", "--variant", "v1", "--peer", "127.0.0.1", "u"], "--variant: unknown CARP variant"),
        (&["pac", "--fallback", "PROXY nowhere", "--peer", "127.0.0.1"], "--fallback \"PROXY nowhere\": not host:port"),
        (&["pac", "--proxy-port", "0", "--peer", "127.0.0.1"], "--proxy-port \"0\": expected a port"),
        (&["pac", "--vhost", "x", "--peer", "127.0.0.1"], "--vhost and --server-root need --config"),
    ] {
        let run = icpquery(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        let line = run.error_line();
        assert!(line.starts_with(&format!("icpquery: {message}")), "{args:?}: {line}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
    }
}

#[test]
fn a_cache_group_of_the_configuration_is_chosen_with_vhost_group() {
    let dir = TestDir::new("cli-group");
    let conf = dir.join("httpd.conf");
    write(
        &conf,
        "ICPQueryPeer 127.0.90.40\n<ICPQueryGroup media>\n  ICPQueryPeer 127.0.90.41 weight=2 name=big\n  \
         ICPQueryPeer 127.0.90.42\n</ICPQueryGroup>\n",
    );
    let conf = conf.display().to_string();
    let url = "http://localhost/clip";
    let group = icpquery(&["carp", "--config", &conf, "--vhost", "group:media", url]);
    assert_eq!(group.code, 0, "{group:?}");
    let members = [Member { name: "big", weight: 2 }, Member { name: "127.0.90.42", weight: 1 }];
    let owner = Array::new(&members, Variant::Squid).owner(url.as_bytes(), |_| true).unwrap();
    let addr = ["127.0.90.41", "127.0.90.42"][owner];
    assert!(group.stdout.contains(&format!("owner: {} ({addr}:3130)", members[owner].name)), "{group:?}");
    assert!(!group.stdout.contains("127.0.90.40"), "the main server's cache is not in the group: {group:?}");

    let main = icpquery(&["carp", "--config", &conf, url]);
    assert!(main.stdout.contains("owner: 127.0.90.40"), "{main:?}");
    let missing = icpquery(&["carp", "--config", &conf, "--vhost", "group:none", url]);
    assert_eq!(missing.code, 1);
    assert!(missing.error_line().ends_with("no <ICPQueryGroup none> in the configuration"), "{missing:?}");
}
