//! The module and the `icpquery` tool must see the same cluster for a
//! virtual host: a real httpd (event MPM) in front of three real Squids,
//! whose main server asks 127.0.160.2 and .3 and whose name-based virtual
//! host `vhost.test` adds .3 again (written exactly as the main server wrote
//! it) and .4 with weight=2. `icpquery carp --config <httpd.conf> --vhost
//! vhost.test` must list the members the module runs for that virtual host
//! (read from `/icpquery-status?auto`) and name, for 1,000 URLs, the CARP
//! owner the module's `int:icpquerycarp` names inside that virtual host.
//!
//! Network 160: portal 127.0.160.1:8080, caches 127.0.160.2-4.

mod support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::httpd::module_path;
use support::{http, poll_until, Cluster, Mpm};

const NET: u8 = 160;
const VHOST: &str = "vhost.test";
const URLS: usize = 1_000;
/// How long the health table may take to show every cache answering.
const SETTLE: Duration = Duration::from_secs(30);

/// The portal configuration. The virtual host's rule answers every
/// `GET /carp/...` with a redirect to its CARP owner's HTTP port; the key is
/// `http://localhost` followed by the request target exactly as the client
/// sent it (from THE_REQUEST: escapes, raw UTF-8 and query string kept), so
/// the tool can be given the very same bytes.
fn portal_conf(hosts: [Ipv4Addr; 3]) -> String {
    let [a, b, c] = hosts;
    let portal = support::portal_ip(NET);
    format!(
        r#"LoadModule icpquery_module {module}
ICPQueryPeer {a}:3130
ICPQueryPeer {b}:3130
<Location /icpquery-status>
    SetHandler icpquery-status
</Location>

# The first virtual host on the address answers every other Host.
<VirtualHost {portal}:8080>
    ServerName default.test
</VirtualHost>

<VirtualHost {portal}:8080>
    ServerName {VHOST}
    ICPQueryMapper On
    ICPQueryPeer {b}:3130
    ICPQueryPeer {c}:3130 weight=2
    RewriteEngine On
    RewriteMap carp int:icpquerycarp
    RewriteCond %{{THE_REQUEST}} ^GET\s(/carp/\S*)\sHTTP/1\.[01]$
    RewriteCond ${{carp:http://localhost%1|none}} ^(.+)$
    RewriteRule ^/carp/ http://%1:3128/ [R=302,L,QSD]
</VirtualHost>
"#,
        module = module_path().display(),
    )
}

/// 1,000 request targets: plain paths, %-escapes, raw UTF-8, escaped UTF-8,
/// and query strings (with escapes and UTF-8 in them too).
fn targets() -> Vec<String> {
    (0..URLS)
        .map(|n| match n % 6 {
            0 => format!("/carp/page{n}.html"),
            1 => format!("/carp/a%20b/%25{n:x}/c%3Fd"),
            2 => format!("/carp/caf\u{e9}/{n}"),
            3 => format!("/carp/%E6%97%A5%E6%9C%AC/{n}?page={n}"),
            4 => format!("/carp/search?q={n}&lang=fr&x=%C3%A9t\u{e9}"),
            _ => format!("/carp/\u{65e5}\u{672c}\u{8a9e}/item-{n}?a=1&b=%2F{n}"),
        })
        .collect()
}

/// `GET path` with `Host: host` through the portal.
fn get(c: &Cluster, host: &str, path: &str) -> support::Response {
    http::request(c.portal_addr(), "GET", path, &[("Host", host)])
        .unwrap_or_else(|e| panic!("GET http://{host}{path} via {}: {e}", c.portal_addr()))
}

/// One member as either side shows it: the host as configured (which is
/// also the CARP name hashed) and, where that side shows them, its ICP
/// address and its weight.
#[derive(Clone, Debug)]
struct Shown {
    host: String,
    detail: String,
}

/// The status page, read through the virtual host.
fn status(c: &Cluster) -> HashMap<String, String> {
    let r = get(c, VHOST, "/icpquery-status?auto");
    assert_eq!(r.status, 200, "{r:?}");
    support::parse_auto(&r.body_text())
}

/// The `Peer<n>` prefixes of the caches the module runs for `VHOST`: the
/// peers of the region its `Server<n>` line names on the status page.
fn vhost_peers(auto: &HashMap<String, String>) -> Vec<String> {
    let servers: usize = auto["Servers"].parse().unwrap();
    let label = format!("{VHOST}:8080");
    let server = (0..servers)
        .find(|n| auto[&format!("Server{n}Name")] == label)
        .unwrap_or_else(|| panic!("the status page has no server {label:?}: {auto:?}"));
    assert_eq!(auto[&format!("Server{server}Mapper")], "on", "{label}'s mapper");
    let region = &auto[&format!("Server{server}Region")];
    let peers: usize = auto["Peers"].parse().unwrap();
    (0..peers).map(|n| format!("Peer{n}")).filter(|p| &auto[&format!("{p}Region")] == region).collect()
}

/// The members the module runs for `VHOST`, with their ICP addresses (the
/// status page does not show weights).
fn module_members(auto: &HashMap<String, String>) -> Vec<Shown> {
    vhost_peers(auto)
        .iter()
        .map(|p| Shown { host: auto[&format!("{p}Host")].clone(), detail: auto[&format!("{p}Address")].clone() })
        .collect()
}

/// Address and state of every cache of `VHOST`, once each has answered at
/// least once (so "alive" is evidence, not the initial state).
fn answered_states(c: &Cluster) -> Option<Vec<(String, String)>> {
    let auto = status(c);
    let peers = vhost_peers(&auto);
    let answered = peers.iter().all(|p| auto[&format!("{p}LastReplyAgeSeconds")] != "never");
    answered.then(|| {
        peers.iter().map(|p| (auto[&format!("{p}Address")].clone(), auto[&format!("{p}State")].clone())).collect()
    })
}

/// What `icpquery carp` printed: its members (name and weight) and, per URL
/// in the order given, the owner's name and address.
struct ToolView {
    members: Vec<Shown>,
    owners: Vec<(String, String)>,
    stdout: String,
}

fn run_tool(conf: &Path, urls: &[String]) -> ToolView {
    let out = Command::new(env!("CARGO_BIN_EXE_icpquery"))
        .arg("carp")
        .arg("--config")
        .arg(conf)
        .arg("--vhost")
        .arg(VHOST)
        .args(urls)
        .output()
        .unwrap_or_else(|e| panic!("cannot run icpquery: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "icpquery carp --config {} --vhost {VHOST}: {}\n{stderr}",
        conf.display(),
        out.status
    );
    let mut lines = stdout.lines();
    let head = lines.next().unwrap_or_default();
    let count: usize = head
        .split(", ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no member count in {head:?}:\n{stdout}"));
    let members: Vec<Shown> = lines
        .by_ref()
        .take(count)
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(words.get(1), Some(&"weight"), "not a member line: {l:?}");
            Shown { host: words[0].to_string(), detail: format!("weight {}", words[2]) }
        })
        .collect();
    // Then, per URL: a blank line, the URL, "  owner: NAME (ADDR)", scores.
    let mut owners = Vec::new();
    let mut rest: Vec<&str> = lines.collect();
    rest.retain(|l| !l.starts_with("  left out"));
    let mut i = 0;
    while i < rest.len() {
        if rest[i].is_empty() {
            let url = rest[i + 1];
            assert_eq!(url, urls[owners.len()], "the tool's URLs come in the order given");
            let owner = rest[i + 2].strip_prefix("  owner: ").unwrap_or_else(|| panic!("no owner line for {url}"));
            let (name, addr) = owner.split_once(" (").unwrap_or_else(|| panic!("owner line {owner:?}"));
            owners.push((name.to_string(), addr.trim_end_matches(')').to_string()));
            i += 3;
        } else {
            i += 1;
        }
    }
    assert_eq!(owners.len(), urls.len(), "one owner per URL:\n{stdout}");
    ToolView { members, owners, stdout }
}

fn list(members: &[Shown]) -> String {
    members.iter().map(|m| format!("{} ({})", m.host, m.detail)).collect::<Vec<_>>().join(", ")
}

#[test]
fn the_tool_and_the_module_run_the_same_carp_array_for_a_virtual_host() {
    let c = Cluster::start_with(NET, Mpm::Event, |_| portal_conf(support::host_ips(NET)));
    let hosts = c.hosts();

    // Every cache is alive and has answered (the default 5 s probes).
    let states = poll_until(SETTLE, || answered_states(&c)).unwrap_or_else(|| {
        panic!("not every cache of {VHOST} answered a probe within {SETTLE:?}:\n{}", c.httpd().error_log())
    });
    assert!(states.iter().all(|(_, s)| s == "alive"), "every cache of {VHOST} is alive: {states:?}");

    // Name-based: only Host: vhost.test reaches the virtual host's rule.
    let other = get(&c, "default.test", "/carp/page0.html");
    assert_eq!(other.status, 404, "the default virtual host has no CARP rule: {other:?}");

    // The module's side: the members on the status page, and its owner of
    // each URL, from the redirect the rule sends.
    let module = module_members(&status(&c));
    let targets = targets();
    let module_owners: Vec<String> = targets
        .iter()
        .map(|t| {
            let r = get(&c, VHOST, t);
            assert_eq!(r.status, 302, "GET {t} with Host: {VHOST}: {r:?}");
            let location = r.header("Location").unwrap_or_else(|| panic!("{t}: no Location: {r:?}"));
            let owner = location.strip_prefix("http://").and_then(|l| l.strip_suffix(":3128/"));
            owner.unwrap_or_else(|| panic!("{t}: Location {location:?}")).to_string()
        })
        .collect();
    // Still all alive: every owner above was the pure CARP owner.
    let after = answered_states(&c).expect("the caches answered before");
    assert!(after.iter().all(|(_, s)| s == "alive"), "every cache of {VHOST} stayed alive: {after:?}");
    assert!(
        module_owners.iter().all(|o| hosts.iter().any(|h| h.to_string() == *o)),
        "icpquerycarp named one of the caches for every URL: {:?}",
        module_owners.iter().filter(|o| !hosts.iter().any(|h| h.to_string() == **o)).take(5).collect::<Vec<_>>()
    );

    // The tool's side, from the httpd.conf the portal runs.
    let urls: Vec<String> = targets.iter().map(|t| format!("http://localhost{t}")).collect();
    let tool = run_tool(c.httpd().conf_path(), &urls);

    // Both sides, then one report of every disagreement.
    let mut problems = Vec::new();
    let mut module_hosts: Vec<&str> = module.iter().map(|m| m.host.as_str()).collect();
    let mut tool_hosts: Vec<&str> = tool.members.iter().map(|m| m.host.as_str()).collect();
    module_hosts.sort();
    tool_hosts.sort();
    for m in &module {
        assert_eq!(m.detail, format!("{}:3130", m.host), "the module asks each cache at the address configured");
    }
    if module_hosts != tool_hosts {
        problems.push(format!(
            "`icpquery carp --config {} --vhost {VHOST}` lists {} members [{}], the module runs {} for {VHOST}:8080 [{}]",
            c.httpd().conf_path().display(),
            tool.members.len(),
            list(&tool.members),
            module.len(),
            list(&module),
        ));
    }
    let differ: Vec<String> = urls
        .iter()
        .zip(&module_owners)
        .zip(&tool.owners)
        .filter(|((_, owner), (_, addr))| addr.split(':').next() != Some(owner.as_str()))
        .map(|((url, owner), (_, addr))| format!("{url}: module {owner}, tool {addr}"))
        .collect();
    if !differ.is_empty() {
        problems.push(format!(
            "they name different CARP owners for {} of {URLS} URLs, e.g.\n  {}",
            differ.len(),
            differ.iter().take(5).cloned().collect::<Vec<_>>().join("\n  ")
        ));
    }
    assert!(
        problems.is_empty(),
        "the tool and the module disagree about {VHOST}:\n{}\n--- the tool's member list:\n{}",
        problems.join("\n"),
        tool.stdout.lines().take(tool.members.len() + 1).collect::<Vec<_>>().join("\n")
    );
    // Every member owns some of the URLs (the array is not degenerate).
    for h in &hosts {
        let n = module_owners.iter().filter(|o| **o == h.to_string()).count();
        assert!(n > 0, "{h} owns some of {URLS} URLs");
    }
}
