//! `apachectl configtest` with real httpd: every wrong value stops httpd with
//! a message naming the directive, the value and what was expected; the
//! shipped configuration passes.

mod support;

use std::process::Command;

use support::httpd::{httpd_binary, main_conf, module_path, Httpd, HttpdOptions, Mpm};
use support::TestDir;

/// A portal configuration that loads the module, then `lines`.
fn options(lines: &str) -> HttpdOptions {
    let module = module_path();
    let portal_conf = format!("LoadModule icpquery_module {}\n{lines}\n", module.display());
    HttpdOptions { net: 250, mpm: Mpm::Event, portal_conf, module }
}

fn refused(lines: &str) -> String {
    let (ok, stderr) = Httpd::configtest(&options(lines));
    assert!(!ok, "configtest accepted {lines:?}:\n{stderr}");
    stderr
}

#[test]
fn the_seed_configuration_passes_configtest() {
    let dir = TestDir::new("configtest-seed");
    let (ok, stderr) = Httpd::configtest(&HttpdOptions::seed(dir.path(), 251, Mpm::Event));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("Syntax OK"), "{stderr}");
}

#[test]
fn every_directive_accepts_its_documented_forms() {
    let (ok, stderr) = Httpd::configtest(&options(
        "ICPQueryMapper On\nICPQueryMapper off\nICPQueryTimeout 1\nICPQueryTimeout 60000000\n\
         ICPQueryTimeout auto\nICPQueryTimeout auto 500 20000\nICPQueryDeadTime 10\nICPQueryProbeInterval 0\n\
         ICPQueryPeer 127.0.0.5:3130 round=2\n\
         ICPQueryLog logs/icpquery.log\nICPQueryLogLevel 0\nICPQueryLogLevel 3\n\
         ICPQueryBindAddr 127.0.0.1\nICPQueryBindAddr localhost\n\
         ICPQueryPeer 127.0.0.2\nICPQueryPeer 127.0.0.3:3131\nICPQueryPeer localhost:3130\nICPQueryPeer [::1]:3130\n\
         ICPQueryMCastAddr 239.255.255.253\nICPQueryMCastAddr [ff15::1234]:3130\nICPQueryMCastHops 1\nICPQueryMCastHops 255\n\
         <VirtualHost 127.0.250.1:8080>\n  ICPQueryMapper On\n  ICPQueryPeer 127.0.0.9\n  ICPQueryTimeout 20000\n</VirtualHost>\n\
         ICPQueryPeer 127.0.0.6 weight=3 name=cache-6\nICPQueryCARP draft\n\
         <ICPQueryGroup media-1>\n  ICPQueryPeer 127.0.0.7\n  ICPQueryTimeout auto\n  ICPQueryLog logs/media.log\n</ICPQueryGroup>\n\
         RewriteEngine On\nRewriteMap m int:icpquerymap:media-1\nRewriteMap r int:icpqueryisrunning:media-1\n\
         RewriteMap c int:icpquerycarp:media-1\nRewriteMap c0 int:icpquerycarp",
    ));
    assert!(ok, "{stderr}");
}

#[test]
fn wrong_values_are_refused_with_directive_value_and_expectation() {
    let cases = [
        ("ICPQueryTimeout -5", "ICPQueryTimeout \"-5\": negative; expected microseconds as a whole number"),
        ("ICPQueryTimeout fast", "ICPQueryTimeout \"fast\": not a number; expected microseconds as a whole number"),
        (
            "ICPQueryTimeout 0",
            "ICPQueryTimeout \"0\": out of range; expected microseconds as a whole number from 1 to 60000000",
        ),
        (
            "ICPQueryLogLevel 4",
            "ICPQueryLogLevel \"4\": not a log level; expected 0 (problems), 1 (results), 2 (information) or 3 (debug)",
        ),
        ("ICPQueryLogLevel -1", "ICPQueryLogLevel \"-1\": not a log level"),
        ("ICPQueryMCastHops 0", "ICPQueryMCastHops \"0\": out of range; expected a multicast TTL from 1 to 255"),
        ("ICPQueryMCastHops 256", "ICPQueryMCastHops \"256\": out of range"),
        ("ICPQueryPeer 127.0.0.2:0", "ICPQueryPeer \"127.0.0.2:0\": port out of range; expected host[:port]"),
        ("ICPQueryPeer 127.0.0.2:70000", "ICPQueryPeer \"127.0.0.2:70000\": port out of range"),
        ("ICPQueryPeer 127.0.0.2:icp", "ICPQueryPeer \"127.0.0.2:icp\": port is not a number"),
        ("ICPQueryPeer 300.1.2.3.4:3130", "ICPQueryPeer \"300.1.2.3.4:3130\": cannot resolve host"),
        ("ICPQueryPeer 239.1.2.3", "ICPQueryPeer \"239.1.2.3\": not a unicast address"),
        (
            "ICPQueryMCastAddr 127.0.0.2:3130",
            "ICPQueryMCastAddr \"127.0.0.2:3130\": not a multicast address; expected a multicast group",
        ),
        ("ICPQueryMCastAddr 239.1.1.1:99999", "ICPQueryMCastAddr \"239.1.1.1:99999\": port out of range"),
        ("ICPQueryBindAddr no-such-host.invalid", "ICPQueryBindAddr \"no-such-host.invalid\": cannot resolve host"),
        ("ICPQueryMapper maybe", "ICPQueryMapper must be On or Off"),
        (
            "ICPQueryTimeout auto 5000 1000",
            "ICPQueryTimeout \"auto 5000 1000\": the least wait is longer than the longest",
        ),
        (
            "ICPQueryDeadTime 0",
            "ICPQueryDeadTime \"0\": out of range; expected seconds as a whole number from 1 to 86400",
        ),
        ("ICPQueryProbeInterval soon", "ICPQueryProbeInterval \"soon\": not a number; expected seconds"),
        ("ICPQueryPeer 127.0.0.2 round=3", "ICPQueryPeer \"127.0.0.2 round=3\": round \"3\" is not 1 or 2"),
        (
            "ICPQueryPeer 127.0.0.2 weight=x",
            "ICPQueryPeer \"127.0.0.2 weight=x\": weight \"x\" is not a whole number from 0 to 65535",
        ),
        ("ICPQueryPeer 127.0.0.2 colour=red", "ICPQueryPeer \"127.0.0.2 colour=red\": unknown option \"colour=red\""),
        ("ICPQueryCARP ketama", "ICPQueryCARP \"ketama\": not a CARP variant; expected squid"),
        (
            "<ICPQueryGroup a b>\n</ICPQueryGroup>",
            "<ICPQueryGroup a b>: not a group name; expected <ICPQueryGroup name>",
        ),
        (
            "<ICPQueryGroup a>\n<ICPQueryGroup b>\n</ICPQueryGroup>\n</ICPQueryGroup>",
            "<ICPQueryGroup b>: groups cannot be nested",
        ),
        (
            "<ICPQueryGroup a>\n</ICPQueryGroup>\n<ICPQueryGroup a>\n</ICPQueryGroup>",
            "<ICPQueryGroup a>: a group of that name is already declared",
        ),
        (
            "<VirtualHost 127.0.250.1:8080>\n<ICPQueryGroup a>\n</ICPQueryGroup>\n</VirtualHost>",
            "<ICPQueryGroup a>: belongs in the main server configuration",
        ),
        ("<ICPQueryGroup a>\nICPQueryTimeout -1\n</ICPQueryGroup>", "ICPQueryTimeout \"-1\": negative"),
    ];
    for (line, expected) in cases {
        let stderr = refused(line);
        assert!(stderr.contains(expected), "{line}: expected {expected:?} in:\n{stderr}");
        assert!(stderr.contains("Syntax error on line"), "{line}: httpd should point at the line:\n{stderr}");
    }
}

/// `apache2 -t` on `lines` in a server that does not load mod_rewrite.
fn configtest_without_rewrite(lines: &str) -> (bool, String) {
    let dir = TestDir::new("configtest-norewrite");
    for sub in ["logs", "run", "htdocs"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf =
        main_conf(dir.path(), &options(lines)).replace("LoadModule rewrite_module", "#LoadModule rewrite_module");
    std::fs::write(dir.join("httpd.conf"), conf).unwrap();
    let out = Command::new(httpd_binary()).arg("-t").arg("-f").arg(dir.join("httpd.conf")).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_mapper_without_mod_rewrite_is_refused() {
    let (ok, stderr) = configtest_without_rewrite("ICPQueryMapper On\nICPQueryPeer 127.0.0.2");
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("ICPQueryMapper \"On\": mod_rewrite is not loaded; expected LoadModule rewrite_module"),
        "{stderr}"
    );
    // Off needs nothing.
    let (ok, stderr) = configtest_without_rewrite("ICPQueryMapper Off\nICPQueryPeer 127.0.0.2");
    assert!(ok, "{stderr}");
}

#[test]
fn the_debian_a2enmod_files_pass_configtest() {
    let module = module_path();
    let load = support::read_conf_file("icpquery.load");
    assert!(load.contains("/usr/lib/apache2/modules/mod_icpquery.so"), "{load}");
    let load = load.replace("/usr/lib/apache2/modules/mod_icpquery.so", &module.display().to_string());
    let portal_conf = format!("{load}\n{}", support::read_conf_file("icpquery.conf"));
    let (ok, stderr) = Httpd::configtest(&HttpdOptions { net: 252, mpm: Mpm::Event, portal_conf, module });
    assert!(ok, "{stderr}");
}

#[test]
fn pac_directives_belong_to_locations_and_are_checked_like_the_others() {
    let (ok, stderr) = Httpd::configtest(&options(
        "ICPQueryPACProxyPort 8000\n\
         <ICPQueryGroup media>\n  ICPQueryPeer 127.0.0.7\n</ICPQueryGroup>\n\
         <Location /proxy.pac>\n  SetHandler icpquery-pac\n  ICPQueryPACCaches group media\n  \
         ICPQueryPACFallback \"PROXY portal.test:8080; DIRECT\"\n</Location>\n\
         <Location /b.pac>\n  SetHandler icpquery-pac\n  ICPQueryPACCaches balancer balancer://caches\n</Location>\n\
         <VirtualHost 127.0.250.1:8080>\n  <Location /v.pac>\n    ICPQueryPACCaches server\n  </Location>\n</VirtualHost>",
    ));
    assert!(ok, "{stderr}");
    let cases = [
        (
            "<Location /x>\n ICPQueryPACCaches vhost x\n</Location>",
            "ICPQueryPACCaches \"vhost x\": unknown kind of caches; expected server, group NAME",
        ),
        (
            "<Location /x>\n ICPQueryPACProxyPort 0\n</Location>",
            "ICPQueryPACProxyPort \"0\": out of range; expected a port from 1 to 65535",
        ),
        (
            "ICPQueryPACFallback \"PROXY nowhere\"",
            "ICPQueryPACFallback \"PROXY nowhere\": not host:port; expected DIRECT",
        ),
        (
            "<ICPQueryGroup g>\n ICPQueryPACProxyPort 8000\n</ICPQueryGroup>",
            "ICPQueryPACProxyPort is not allowed inside <ICPQueryGroup>",
        ),
        ("<Location /x>\n ICPQueryPeer 127.0.0.2\n</Location>", "ICPQueryPeer not allowed in <Location> context"),
    ];
    for (lines, message) in cases {
        let stderr = refused(lines);
        assert!(stderr.contains(message), "{lines:?}: {stderr}");
    }
}
