//! The status page for people: per set of caches, the servers using it,
//! its lookups, and one row per cache with its state in words and colour
//! (a dead cache's row stands out), round-trip time, last reply, hit
//! ratio, replies, failures and rejected datagrams (one total; the reasons
//! in a line under the row, only where something was rejected). Column
//! heads are words with their units; the page fits 1280 px without
//! scrolling sideways. Machines read `?auto` or the metrics instead.

use std::fmt::Write;
use std::time::Duration;

use super::format::{age_seconds, escape_html, on_off, state, RegionView};
use crate::engine::health::{Counter, Snapshot};
use crate::engine::{RejectReason, Timeout};

const STYLE: &str = "\
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1d2329; margin: 1em 1.5em; }
h1 { font-size: 1.5em; margin: 0 0 0.2em; }
h2 { font-size: 1.15em; margin: 1.4em 0 0.5em; padding-bottom: 0.2em; border-bottom: 2px solid #d8dde3; }
p.summary { margin: 0 0 1em; color: #4a5561; }
table { border-collapse: collapse; margin: 0 0 0.8em; }
th, td { padding: 0.3em 0.45em; border-bottom: 1px solid #e3e7eb; vertical-align: middle; }
th { background: #f1f3f6; font-weight: 600; text-align: left; vertical-align: bottom; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.n { white-space: nowrap; }
th.group { text-align: center; border-bottom: 1px solid #c9d0d8; }
table.caches th { white-space: nowrap; }
td.cache .addr { display: block; color: #5f6b77; font-size: 0.9em; }
.state { display: inline-block; min-width: 3.6em; text-align: center; padding: 0.05em 0.5em; border-radius: 0.8em; font-weight: 600; }
.state.alive { background: #e3f4e6; color: #1e6b30; }
.state.dead { background: #c62828; color: #fff; }
tr.dead td { background: #fdecea; }
tr.dead td.cache { box-shadow: inset 4px 0 #c62828; }
tr.reasons td { color: #8a2a1f; font-size: 0.9em; padding-top: 0; }
.bad { color: #c62828; font-weight: 600; }
.muted { color: #5f6b77; }
footer { margin-top: 2em; color: #5f6b77; font-size: 0.9em; }
";

/// The reply counters' column heads (the ICP opcodes' names, as the log
/// writes them without their `ICP_OP_`), then the failures'.
const REPLIES: [(Counter, &str); 5] = [
    (Counter::Hit, "HIT"),
    (Counter::Miss, "MISS"),
    (Counter::MissNoFetch, "MISS_NOFETCH"),
    (Counter::Denied, "DENIED"),
    (Counter::Err, "ERR"),
];
const FAILURES: [(Counter, &str); 3] =
    [(Counter::Icmp, "ICMP<br>errors"), (Counter::Timeouts, "Timeouts"), (Counter::Deaths, "Deaths")];

/// A duration as people write it: `412 µs`, `50 ms`, `1.5 s`.
fn human(d: Duration) -> String {
    let us = d.as_micros();
    let trimmed = |x: f64| format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string();
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{} ms", trimmed(us as f64 / 1e3)),
        _ => format!("{} s", trimmed(us as f64 / 1e6)),
    }
}

fn timeout_text(t: Timeout) -> String {
    match t {
        Timeout::Fixed(d) => human(d),
        Timeout::Auto { min, max } => format!("auto, {} to {}", human(min), human(max)),
    }
}

/// What a reject reason's label says, in words.
fn reason_words(reason: RejectReason) -> String {
    reason.label().replace('_', " ").replace("url", "URL")
}

fn counter(snap: &Snapshot, c: Counter) -> u64 {
    snap.counters[c as usize]
}

/// HIT per query, as a percentage with one decimal; a dash before any.
fn hit_ratio(snap: &Snapshot) -> String {
    match counter(snap, Counter::Queries) {
        0 => "–".into(),
        q => format!("{:.1} %", counter(snap, Counter::Hit) as f64 * 100.0 / q as f64),
    }
}

fn th(out: &mut String, attrs: &str, text: &str) {
    let _ = write!(out, "<th{attrs}>{text}</th>");
}

fn td(out: &mut String, class: &str, text: &str) {
    match class {
        "" => write!(out, "<td>{text}</td>"),
        class => write!(out, "<td class=\"{class}\">{text}</td>"),
    }
    .unwrap_or(())
}

/// The full page.
pub fn html(host: &str, regions: &[RegionView<'_>], now_us: u64) -> String {
    let host = escape_html(host);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ICP query status for {host}</title>\n<style>\n{STYLE}</style>\n\
         </head><body>\n<h1>ICP query status for {host}</h1>\n"
    );
    let caches: usize = regions.iter().map(|r| r.snapshots.len()).sum();
    let dead = regions.iter().flat_map(|r| &r.snapshots).filter(|s| s.dead).count();
    let health = match dead {
        0 => "all alive".to_string(),
        n => format!("<span class=\"bad\">{n} dead</span>"),
    };
    let sets = if regions.len() == 1 { "set" } else { "sets" };
    let _ = writeln!(out, "<p class=\"summary\">{caches} caches in {} {sets}: {health}.</p>", regions.len());
    for region in regions {
        set(&mut out, region, now_us);
    }
    out.push_str(
        "<footer>Counted since httpd last started or restarted. The same numbers for scripts: \
         <a href=\"?auto\">?auto</a>.</footer>\n</body></html>\n",
    );
    out
}

/// One set of caches: its servers, its lookups, its caches.
fn set(out: &mut String, region: &RegionView<'_>, now_us: u64) {
    let names: Vec<String> = region.servers.iter().map(|s| escape_html(&s.name)).collect();
    let _ = writeln!(out, "<section>\n<h2>Caches of {}</h2>", names.join(", "));
    out.push_str("<table class=\"servers\">\n<tr>");
    for head in ["Used by", "Maps", "Timeout", "Dead after silence of"] {
        th(out, "", head);
    }
    out.push_str("</tr>\n");
    for s in &region.servers {
        out.push_str("<tr>");
        td(out, "name", &escape_html(&s.name));
        td(out, "", on_off(s.mapper));
        td(out, "", &timeout_text(s.timeout));
        td(out, "", &human(s.dead_time));
        out.push_str("</tr>\n");
    }
    let c = region.counts;
    out.push_str("</table>\n<table class=\"lookups\">\n<tr>");
    let mut heads = vec!["Lookups", "Ended before the timeout", "Multicast replies", "Datagrams from unknown senders"];
    let mut counts = vec![c.lookups, c.complete, c.multicast_replies, c.unknown_sender];
    if c.remembers {
        heads.extend(["Answered from memory", "Answers stored", "Answers evicted"]);
        counts.extend([c.from_memory, c.stored, c.evicted]);
    }
    for head in heads {
        th(out, " class=\"n\"", head);
    }
    out.push_str("</tr>\n<tr>");
    for n in counts {
        td(out, "n", &n.to_string());
    }
    out.push_str("</tr>\n</table>\n");
    caches(out, region, now_us);
    out.push_str("</section>\n");
}

/// The table of caches, one row each (and a line of reasons under a cache
/// that had datagrams rejected).
fn caches(out: &mut String, region: &RegionView<'_>, now_us: u64) {
    let columns = 8 + REPLIES.len() + FAILURES.len();
    out.push_str("<table class=\"caches\">\n<thead>\n<tr>");
    th(out, " rowspan=\"2\"", "Cache");
    th(out, " rowspan=\"2\" class=\"n\"", "Round");
    th(out, " rowspan=\"2\"", "State");
    th(out, " rowspan=\"2\" class=\"n\"", "RTT<br>(ms)");
    th(out, " rowspan=\"2\" class=\"n\"", "Last reply<br>(s ago)");
    th(out, " rowspan=\"2\" class=\"n\"", "Queries");
    th(out, " rowspan=\"2\" class=\"n\" title=\"HIT replies per query sent\"", "Hit ratio");
    th(out, &format!(" colspan=\"{}\" class=\"group\"", REPLIES.len()), "Replies");
    th(out, &format!(" colspan=\"{}\" class=\"group\"", FAILURES.len()), "Failures");
    th(out, " rowspan=\"2\" class=\"n\"", "Rejected<br>datagrams");
    out.push_str("</tr>\n<tr>");
    for (_, head) in REPLIES.iter().chain(&FAILURES) {
        th(out, " class=\"n\"", head);
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for (peer, snap) in region.peers.iter().zip(&region.snapshots) {
        let state = state(snap);
        let _ = write!(out, "<tr class=\"{state}\">");
        let addr = escape_html(&peer.addr.to_string());
        let cache = format!("<b>{}</b> <span class=\"addr\">{addr}</span>", escape_html(&peer.host));
        td(out, "cache", &cache);
        td(out, "n", &peer.round.to_string());
        td(out, "st", &format!("<span class=\"state {state}\">{state}</span>"));
        let rtt = snap.srtt.map_or("–".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
        td(out, "n", &rtt);
        td(out, "n", &age_seconds(snap, now_us).map_or("never".into(), |a| a.to_string()));
        td(out, "n", &counter(snap, Counter::Queries).to_string());
        td(out, "n", &hit_ratio(snap));
        for (c, _) in REPLIES.iter().chain(&FAILURES) {
            td(out, "n", &counter(snap, *c).to_string());
        }
        let rejected: u64 = snap.rejects.iter().sum();
        td(out, if rejected > 0 { "n bad" } else { "n" }, &rejected.to_string());
        out.push_str("</tr>\n");
        if rejected > 0 {
            let why: Vec<String> = RejectReason::ALL
                .iter()
                .zip(snap.rejects)
                .filter(|(_, n)| *n > 0)
                .map(|(reason, n)| format!("{} {n}", reason_words(*reason)))
                .collect();
            let _ = writeln!(
                out,
                "<tr class=\"reasons\"><td colspan=\"{columns}\">Rejected from {addr}: {}</td></tr>",
                why.join(", ")
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
}
