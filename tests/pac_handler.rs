//! `SetHandler icpquery-pac`: the PAC file the running module serves, run
//! under node, must send every URL first to the cache the module's own
//! `int:icpquerycarp` names for it (three real Squids, weights 1:2:3), be
//! byte for byte what `icpquery pac` writes for the same configuration,
//! and revalidate with a 304. A cache group's file and a bycache
//! balancer's (with a drained member, which keeps its place in the array
//! and passes its URLs on, exactly as the balancer does) are checked too.
//!
//! Networks 230 and 231: portal 127.0.N.1:8080, caches 127.0.N.2-4.

mod support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::balancer::BalancerConf;
use support::httpd::module_path;
use support::node::run_pac;
use support::{http, poll_until, Cluster, Mpm, Response, TestDir};

const URLS: usize = 1_000;
/// How long the caches may take to answer a first probe.
const SETTLE: Duration = Duration::from_secs(30);
const PAC_TYPE: &str = "application/x-ns-proxy-autoconfig";

/// The status page, for knowing when every cache has answered.
const STATUS: &str = "<Location /icpquery-status>\n    SetHandler icpquery-status\n</Location>\n";

fn get(c: &Cluster, path: &str, headers: &[(&str, &str)]) -> Response {
    http::request(c.portal_addr(), "GET", path, headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Waits until every cache of the status page has answered (so each is
/// alive on evidence, and `icpquerycarp` names the pure CARP owner).
fn wait_answered(c: &Cluster) {
    let answered = poll_until(SETTLE, || {
        let auto = support::parse_auto(&c.get("/icpquery-status?auto").body_text());
        let peers: usize = auto["Peers"].parse().unwrap();
        (0..peers)
            .all(|n| {
                auto[&format!("Peer{n}LastReplyAgeSeconds")] != "never" && auto[&format!("Peer{n}State")] == "alive"
            })
            .then_some(())
    });
    answered.unwrap_or_else(|| panic!("not every cache answered within {SETTLE:?}:\n{}", c.httpd().error_log()));
}

/// `icpquery pac --config <the portal's httpd.conf>` with `args`.
fn tool_pac(conf: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_icpquery"))
        .args(["pac", "--config"])
        .arg(conf)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run icpquery: {e}"));
    assert!(out.status.success(), "icpquery pac: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Request targets: plain paths, %-escapes, raw and escaped UTF-8 and
/// query strings.
fn targets(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 5 {
            0 => format!("{prefix}page{i}.html"),
            1 => format!("{prefix}a%20b/{i:x}/c%3Fd"),
            2 => format!("{prefix}caf\u{e9}/{i}"),
            3 => format!("{prefix}%E6%97%A5/{i}?page={i}&x=%C3%A9"),
            _ => format!("{prefix}\u{65e5}\u{672c}/item-{i}?q={i}"),
        })
        .collect()
}

/// The first route of each answer, and the whole answers.
fn first_routes(answers: &[(String, String)]) -> Vec<String> {
    answers
        .iter()
        .map(|(native, polyfilled)| {
            assert_eq!(native, polyfilled, "with and without Math.imul");
            native.split("; ").next().unwrap().to_string()
        })
        .collect()
}

fn server_conf(hosts: [Ipv4Addr; 3]) -> String {
    let [a, b, c] = hosts;
    format!(
        r#"LoadModule icpquery_module {module}
ICPQueryMapper On
ICPQueryPeer {a}:3130 weight=1
ICPQueryPeer {b}:3130 weight=2
ICPQueryPeer {c}:3130 weight=3
ICPQueryProbeInterval 1
RewriteEngine On
RewriteMap carp int:icpquerycarp
RewriteCond %{{THE_REQUEST}} ^GET\s(/carp/\S*)\sHTTP/1\.[01]$
RewriteCond ${{carp:http://localhost%1|none}} ^(.+)$
RewriteRule ^/carp/ http://%1:3128/ [R=302,L,QSD]
{STATUS}
<Location /proxy.pac>
    SetHandler icpquery-pac
    ICPQueryPACFallback "PROXY portal.test:8080; DIRECT"
</Location>
"#,
        module = module_path().display(),
    )
}

#[test]
fn the_servers_pac_file_routes_every_url_to_the_owner_icpquerycarp_names_and_revalidates() {
    let net = 230;
    let c = Cluster::start_with(net, Mpm::Event, |_| server_conf(support::host_ips(net)));
    let hosts = c.hosts();
    wait_answered(&c);

    let r = get(&c, "/proxy.pac", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some(PAC_TYPE));
    assert_eq!(r.header("Cache-Control"), Some("max-age=300"));
    let etag = r.header("ETag").expect("an ETag").to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "a strong ETag: {etag}");
    let modified = r.header("Last-Modified").expect("a Last-Modified").to_string();
    let text = r.body_text();
    assert_eq!(r.header("Content-Length"), Some(text.len().to_string().as_str()));
    // The very file the tool writes for this configuration.
    let tool = tool_pac(c.httpd().conf_path(), &["--fallback", "PROXY portal.test:8080; DIRECT"]);
    assert_eq!(text, tool, "the module's and the tool's PAC files differ");

    // Revalidation: 304 without a body, by either validator; a changed
    // ETag gets the file again.
    for (name, value) in [("If-None-Match", etag.as_str()), ("If-Modified-Since", modified.as_str())] {
        let again = get(&c, "/proxy.pac", &[(name, value)]);
        assert_eq!(again.status, 304, "{name}: {again:?}");
        assert!(again.body.is_empty(), "{again:?}");
        assert_eq!(again.header("ETag"), Some(etag.as_str()), "{name}");
    }
    let other = get(&c, "/proxy.pac", &[("If-None-Match", "\"something-else\"")]);
    assert_eq!((other.status, other.body_text()), (200, text.clone()));
    let head = http::request(c.portal_addr(), "HEAD", "/proxy.pac", &[]).unwrap();
    assert_eq!((head.status, head.header("ETag")), (200, Some(etag.as_str())), "{head:?}");
    let post = http::request(c.portal_addr(), "POST", "/proxy.pac", &[("Content-Length", "0")]).unwrap();
    assert_eq!(post.status, 405, "{post:?}");

    // The module's owner of each URL, from the redirect its rule sends.
    let targets = targets("/carp/", URLS);
    let owners: Vec<String> = targets
        .iter()
        .map(|t| {
            let r = get(&c, t, &[]);
            assert_eq!(r.status, 302, "GET {t}: {r:?}");
            let location = r.header("Location").unwrap_or_else(|| panic!("{t}: no Location"));
            location.strip_prefix("http://").and_then(|l| l.strip_suffix('/')).unwrap().to_string()
        })
        .collect();
    let dir = TestDir::new("pac-handler");
    let urls: Vec<String> = targets.iter().map(|t| format!("http://localhost{t}")).collect();
    let answers = run_pac(dir.path(), &text, &urls);
    let firsts = first_routes(&answers);
    let differ: Vec<String> = urls
        .iter()
        .zip(firsts.iter().zip(&owners))
        .filter(|(_, (first, owner))| **first != format!("PROXY {owner}"))
        .map(|(url, (first, owner))| format!("{url}: PAC {first}, icpquerycarp {owner}"))
        .take(5)
        .collect();
    assert!(differ.is_empty(), "the PAC file and icpquerycarp disagree:\n{}", differ.join("\n"));
    // Every answer fails over through every cache, then the fallback.
    for (native, _) in &answers {
        assert_eq!(native.split("; ").count(), 5, "{native}");
        assert!(native.ends_with("; PROXY portal.test:8080; DIRECT"), "{native}");
    }
    // Weights 1:2:3: the heavier a cache, the more URLs it owns.
    let count = |h: Ipv4Addr| owners.iter().filter(|o| **o == format!("{h}:3128")).count();
    let [a, b, c3] = hosts.map(count);
    assert_eq!(a + b + c3, URLS);
    assert!(a > 50 && b > a && c3 > b, "weights 1:2:3 own {a}, {b}, {c3} of {URLS}");
}

#[test]
fn a_groups_and_a_balancers_pac_files_and_a_drained_member() {
    let net = 231;
    let [h2, h3, h4] = support::host_ips(net);
    let balancer = BalancerConf::over_squids(net, "caches")
        .lbmethod("bycache")
        .without_manager()
        .with_member(0, |m| m.loadfactor(1))
        .with_member(1, |m| m.loadfactor(2).drain())
        .with_member(2, |m| m.loadfactor(3))
        .extra(&format!(
            "<Location /group.pac>\n    SetHandler icpquery-pac\n    ICPQueryPACCaches group media\n    \
             ICPQueryPACProxyPort 8000\n</Location>\n\
             <Location /balancer.pac>\n    SetHandler icpquery-pac\n    ICPQueryPACCaches balancer caches\n</Location>\n\
             <Location /nogroup.pac>\n    SetHandler icpquery-pac\n    ICPQueryPACCaches group nope\n</Location>\n\
             {STATUS}"
        ));
    let conf = format!(
        "LoadModule icpquery_module {}\nICPQueryProbeInterval 1\n\
         <ICPQueryGroup media>\n    ICPQueryPeer {h4}:3130 weight=2\n    ICPQueryPeer {h2}:3130\n</ICPQueryGroup>\n{}",
        module_path().display(),
        balancer.render()
    );
    let c = Cluster::start_with(net, Mpm::Event, |_| conf);
    wait_answered(&c);

    // The group's file is the tool's for `--vhost group:media`.
    let group = get(&c, "/group.pac", &[]);
    assert_eq!((group.status, group.header("Content-Type")), (200, Some(PAC_TYPE)), "{group:?}");
    let tool = tool_pac(c.httpd().conf_path(), &["--vhost", "group:media", "--proxy-port", "8000"]);
    assert_eq!(group.body_text(), tool);
    assert!(group.header("Last-Modified").is_some());

    // A group that does not exist: a server error, and why in the error log.
    let missing = get(&c, "/nogroup.pac", &[]);
    assert_eq!(missing.status, 500, "{missing:?}");
    let log = c.httpd().error_log();
    assert!(log.contains("SetHandler icpquery-pac: no <ICPQueryGroup nope> is declared"), "{log}");

    // The balancer's file: members at their own port, the drained one
    // kept in the array but never returned; an ETag, no Last-Modified
    // (balancer-manager may change the members at any time).
    let bal = get(&c, "/balancer.pac", &[]);
    assert_eq!(bal.status, 200, "{bal:?}");
    assert!(bal.header("Last-Modified").is_none(), "{bal:?}");
    let etag = bal.header("ETag").expect("an ETag").to_string();
    assert_eq!(get(&c, "/balancer.pac", &[("If-None-Match", &etag)]).status, 304);
    let text = bal.body_text();
    assert!(text.contains(&format!("-> none, drained (PROXY {h3}:3128)")), "{text}");

    // Each URL the PAC file sends first where bycache sends it: fresh
    // objects (no cache holds them), so the balancer picks the CARP owner
    // among the members in service, and the Squid that served says which.
    // (Plain ASCII: mod_proxy escapes what it sends, and bycache asks the
    // caches about the escaped URL.)
    let paths: Vec<String> = (0..120).map(|i| format!("/wsgi/pac-{i}.html?q={}", i % 7)).collect();
    let urls: Vec<String> = paths.iter().map(|p| format!("http://localhost{p}")).collect();
    let dir = TestDir::new("pac-handler-balancer");
    let answers = run_pac(dir.path(), &text, &urls);
    let route_of: HashMap<String, Ipv4Addr> =
        [h2, h3, h4].into_iter().map(|h| (format!("squid{}", h.octets()[3]), h)).collect();
    for ((path, first), (native, _)) in paths.iter().zip(first_routes(&answers)).zip(&answers) {
        assert!(!native.contains(&h3.to_string()), "the drained member is never returned: {native}");
        let r = get(&c, path, &[]);
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        let served = r.cache_name().and_then(|n| route_of.get(n)).unwrap_or_else(|| panic!("{path}: {r:?}"));
        assert_eq!(first, format!("PROXY {served}:3128"), "{path}: bycache chose {served}");
    }
}
