//! Piped `ICPQueryLog` with real httpd: the parent starts the logging
//! program once, starts it again when it dies, and a new one for each
//! configuration (graceful restart); lines keep arriving throughout.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::httpd::HttpdOptions;
use support::{poll_until, read_lossy, Cluster, Mpm};

const ROTATELOGS: &str = "/usr/bin/rotatelogs";
const WAIT: Duration = Duration::from_secs(20);

/// The seed configuration, its `ICPQueryLog` replaced by `log` (later lines
/// override earlier ones); `piped/` under the test directory is made for
/// the logging program's files.
fn seed_with_log(net: u8, mpm: Mpm, log: impl FnOnce(&Path) -> String) -> Cluster {
    Cluster::start_with(net, mpm, move |dir| {
        std::fs::create_dir_all(dir.join("piped")).expect("create piped/");
        let seed = HttpdOptions::seed(dir, net, mpm).portal_conf;
        format!("{seed}\nICPQueryProbeInterval 0\nICPQueryLog \"{}\"\n", log(&dir.join("piped")))
    })
}

/// Everything rotatelogs wrote (`icpq.YYYYMMDD`; a test may span midnight).
fn rotated(dir: &Path) -> String {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("icpq.")));
    files.sort();
    files.iter().map(|p| read_lossy(p)).collect()
}

/// Live (not zombie) children of `parent` whose command line contains
/// `needle`: the logging programs httpd started for this test.
fn children_running(parent: i32, needle: &str) -> Vec<i32> {
    children_where(parent, |_, cmdline| cmdline.contains(needle))
}

/// Live children of `parent` whose (comm, command line) pass `keep`.
fn children_where(parent: i32, keep: impl Fn(&str, &str) -> bool) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").filter_map(|e| e.ok()) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let (comm, rest) = (&stat[open + 1..close], &stat[close + 2..]);
        let mut fields = rest.split(' ');
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse::<i32>().ok()));
        if ppid != Some(parent) || state == Some("Z") {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if keep(comm, &String::from_utf8_lossy(&cmdline).replace('\0', " ")) {
            pids.push(pid);
        }
    }
    pids
}

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

/// Requests `path` through the portal until its query line shows up in
/// `read()` (the first request is enough unless the logger is being
/// replaced); panics after WAIT.
fn request_until_logged(c: &Cluster, path: &str, read: impl Fn() -> String) {
    let wanted = format!("for \"http://localhost{path}\"");
    let mut sent = 0;
    let seen = poll_until(WAIT, || {
        if sent < 50 {
            assert_eq!(c.get(path).status, 200, "GET {path}");
            sent += 1;
        }
        read().contains(&wanted).then_some(())
    });
    assert!(seen.is_some(), "no line for {path} after {sent} request(s); log:\n{}", read());
}

/// No line twice: a second writer (an old logger still running, or two
/// for one configuration) would show up as repeated or mixed lines.
fn assert_whole_unique_lines(log: &str) {
    let mut seen = std::collections::HashSet::new();
    for line in log.lines() {
        assert!(line.contains(" [icpquery:") && line.contains("] [pid "), "not a whole line: {line:?}");
        assert!(seen.insert(line), "line written twice: {line:?}");
    }
}

#[test]
fn rotatelogs_is_started_respawned_and_replaced_on_graceful_restart() {
    assert!(Path::new(ROTATELOGS).exists(), "{ROTATELOGS} missing (apt-get install apache2-utils)");
    let mut c = seed_with_log(130, Mpm::Event, |dir| format!("|{ROTATELOGS} {}/icpq.%Y%m%d 86400", dir.display()));
    let dir = c.dir().join("piped");
    let needle = format!("{}/icpq.", dir.display());
    let parent = c.httpd().pid().expect("httpd runs");
    let read = || rotated(&dir);

    // One logger, started by the parent; requests reach it.
    // (Polled: between fork and exec the child still shows httpd's command line.)
    let first = poll_until(WAIT, || Some(children_running(parent, &needle)).filter(|now| now.len() == 1))
        .unwrap_or_else(|| {
            panic!("not one rotatelogs child of httpd {parent}: {:?}", children_running(parent, &needle))
        });
    request_until_logged(&c, "/wsgi/piped-1", read);
    assert!(!c.httpd().module_log().contains("piped-1"), "the seed's file log is overridden");

    // Killed: the parent starts it again on the same pipe, lines keep coming.
    let killed = first[0];
    assert_eq!(unsafe { libc::kill(killed, libc::SIGKILL) }, 0);
    let respawned = poll_until(WAIT, || {
        let now = children_running(parent, &needle);
        (now.len() == 1 && now[0] != killed).then(|| now[0])
    })
    .unwrap_or_else(|| panic!("rotatelogs not started again: {:?}", children_running(parent, &needle)));
    request_until_logged(&c, "/wsgi/piped-after-kill", read);
    assert!(
        c.httpd().error_log().contains("failed unexpectedly"),
        "httpd reports the respawn (AH00106):\n{}",
        c.httpd().error_log()
    );

    // Graceful restart: the old configuration's logger is stopped, the new
    // one gets a logger of its own, and only that one runs.
    c.httpd_mut().graceful_restart();
    let replaced = poll_until(WAIT, || {
        let now = children_running(parent, &needle);
        (now.len() == 1 && now[0] != respawned && !is_alive(respawned)).then(|| now[0])
    })
    .unwrap_or_else(|| panic!("after graceful restart: {:?} (was {respawned})", children_running(parent, &needle)));
    for n in 0..5 {
        request_until_logged(&c, &format!("/wsgi/piped-after-graceful-{n}"), read);
    }
    assert_eq!(children_running(parent, &needle), [replaced], "no duplicate writers");
    assert_whole_unique_lines(&read());
}

#[test]
fn shell_form_appends_through_cat_and_long_lines_are_cut_to_pipe_buf() {
    // `|$command` runs through /bin/sh (httpd 2.4's syntax; plain `|` execs
    // the program directly), so the redirection works.
    let mut c = seed_with_log(131, Mpm::Prefork, |dir| format!("|$cat >> {}/cat.log", dir.display()));
    let log = c.dir().join("piped/cat.log");
    let read = || read_lossy(&log);
    let parent = c.httpd().pid().expect("httpd runs");
    // /bin/sh -c "cat >> …", or cat itself when the shell execs it.
    let loggers = || children_where(parent, |comm, _| comm == "sh" || comm == "cat");
    let one = poll_until(WAIT, || (loggers().len() == 1).then_some(()));
    assert!(one.is_some(), "not one logger started by httpd's parent: {:?}", loggers());

    request_until_logged(&c, "/wsgi/shell-1", read);

    // A query line longer than PIPE_BUF arrives cut, whole, on a line of its own.
    let long = format!("/wsgi/{}", "x".repeat(6000));
    assert_eq!(c.get(&long).status, 200);
    let cut = poll_until(WAIT, || {
        read().lines().find(|l| l.contains("/wsgi/xxxx") && l.contains("] query ")).map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no query line for the long URL:\n{}", read()));
    assert!(cut.len() < 4096, "{} bytes", cut.len());
    assert!(cut.ends_with(" ...[truncated]"), "{cut}");

    c.httpd_mut().graceful_restart();
    request_until_logged(&c, "/wsgi/shell-after-graceful", read);
    let one = poll_until(WAIT, || (loggers().len() == 1).then_some(()));
    assert!(one.is_some(), "the old configuration's logger is gone: {:?}", loggers());
    assert_whole_unique_lines(&read());
}

#[test]
fn an_empty_piped_command_is_refused_and_a_shell_one_accepted_at_configtest() {
    let opts = |log: &str| HttpdOptions {
        net: 132,
        mpm: Mpm::Event,
        portal_conf: format!(
            "LoadModule icpquery_module {}\nICPQueryLog \"{log}\"\n",
            support::httpd::module_path().display()
        ),
        module: support::httpd::module_path(),
    };
    for empty in ["|", "| ", "||", "|$"] {
        let (ok, stderr) = support::Httpd::configtest(&opts(empty));
        assert!(!ok, "{empty:?} is refused");
        assert!(stderr.contains("no program after the |"), "{empty:?}: {stderr}");
    }
    // Only read, not started, at configtest.
    let (ok, stderr) = support::Httpd::configtest(&opts("|$exec cat >/dev/null"));
    assert!(ok, "{stderr}");
}
