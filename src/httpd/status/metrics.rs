//! The status page's numbers as Prometheus text exposition (format 0.0.4),
//! for `SetHandler icpquery-metrics`. Made from the same [`RegionView`]s
//! as the HTML page and `?auto`, so the three can never disagree.
//!
//! Every cache is labelled with its set (`set`: the name of the first
//! server or group using the set, as the page heads it) and its ICP
//! address (`peer="host:port"`); a set's own counters carry `set` alone,
//! and `icpquery_server_info` says which servers use which set.
//!
//! Names follow Prometheus' rules: `icpquery_` first, base units
//! (seconds), counters ending in `_total`. A per-peer counter of the health
//! record ([`Counter`]) is exported by its line in [`export`]: adding one
//! to the record is adding that line, and the build fails until it is.

use std::fmt::Write;

use super::format::RegionView;
use crate::engine::health::Counter;
use crate::engine::RejectReason;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &std::ffi::CStr = c"text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family: what `# HELP` and `# TYPE` say.
#[derive(Clone, Copy)]
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Counter, help }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Gauge, help }
}

/// Valid replies, one series per opcode.
const REPLIES: Family = counter(
    "icpquery_peer_replies_total",
    "Valid ICP replies from the cache by opcode (hit counts ICP_OP_HIT and ICP_OP_HIT_OBJ).",
);

/// Where a per-peer counter of the health record goes: a family of its
/// own, or one value of a label in a family it shares.
enum Export {
    Own(Family),
    Labelled(Family, &'static str, &'static str),
}

/// Each per-peer counter's place in the exposition: one line per counter.
const fn export(counter: Counter) -> Export {
    use Export::{Labelled, Own};
    match counter {
        Counter::Queries => Own(self::counter("icpquery_peer_queries_total", "ICP queries sent to the cache.")),
        Counter::Hit => Labelled(REPLIES, "opcode", "hit"),
        Counter::Miss => Labelled(REPLIES, "opcode", "miss"),
        Counter::MissNoFetch => Labelled(REPLIES, "opcode", "miss_nofetch"),
        Counter::Denied => Labelled(REPLIES, "opcode", "denied"),
        Counter::Err => Labelled(REPLIES, "opcode", "err"),
        Counter::Icmp => Own(self::counter(
            "icpquery_peer_icmp_errors_total",
            "ICMP errors (port or host unreachable) in answer to a query to the cache.",
        )),
        Counter::Timeouts => Own(self::counter(
            "icpquery_peer_timeouts_total",
            "Queries the cache did not answer in time while it was waited for.",
        )),
        Counter::Deaths => Own(self::counter("icpquery_peer_deaths_total", "Times the cache was declared dead.")),
        Counter::Remembered => Own(self::counter(
            "icpquery_peer_answers_from_memory_total",
            "Lookups answered from the answer memory (ICPQueryRemember) with a HIT at the cache.",
        )),
    }
}

const UP: Family = gauge("icpquery_peer_up", "Whether the cache is alive (1) or dead (0) by its ICP replies.");
const RTT: Family = gauge(
    "icpquery_peer_rtt_seconds",
    "Smoothed round-trip time of the cache's valid replies (absent until one is measured).",
);
const LAST_REPLY: Family = gauge(
    "icpquery_peer_last_reply_timestamp_seconds",
    "When the cache last gave a valid reply, in seconds since the Unix epoch (absent until it has).",
);
const REJECTED: Family = counter(
    "icpquery_peer_rejected_datagrams_total",
    "Datagrams from the cache's address and port that were dropped, by reason.",
);
const PEER_INFO: Family =
    gauge("icpquery_peer_info", "A configured cache: its host as written in ICPQueryPeer and its polling round.");
const LOOKUPS: Family = counter("icpquery_set_lookups_total", "Lookups run on the set of caches.");
const COMPLETE: Family = counter(
    "icpquery_set_lookups_complete_total",
    "Lookups that ended before their timeout because every cache waited for had answered.",
);
const MULTICAST: Family =
    counter("icpquery_set_multicast_replies_total", "Valid replies to the set's multicast queries.");
const UNKNOWN: Family = counter(
    "icpquery_set_unknown_sender_datagrams_total",
    "Datagrams to the set's lookups from an address and port that is no cache of the set.",
);
const FROM_MEMORY: Family = counter(
    "icpquery_set_answers_from_memory_total",
    "Lookups of the set answered from its answer memory (ICPQueryRemember), sending nothing.",
);
const STORED: Family = counter("icpquery_set_answers_stored_total", "Answers stored in the set's answer memory.");
const EVICTED: Family = counter(
    "icpquery_set_answers_evicted_total",
    "Live answers the set's answer memory replaced with newer ones because their bucket was full.",
);
const SERVER_INFO: Family = gauge(
    "icpquery_server_info",
    "A server, virtual host, cache group or balancer, the set of caches it uses and its ICPQueryMapper switch.",
);

/// A label a counter adds in a shared family: (name, value).
type Label = (&'static str, &'static str);

/// A family of record counters: which counters (by index), each with its
/// label if the family is shared.
type CounterFamily = (Family, Vec<(usize, Option<Label>)>);

/// A set's own counter: its family and how to read it.
type SetCount = (&'static Family, fn(&RegionView<'_>) -> u64);

/// `value` as a label value: `\`, `"` and line feeds escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `# HELP` and `# TYPE` for `family`.
fn head(out: &mut String, family: &Family) {
    let kind = match family.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help.replace('\\', "\\\\").replace('\n', "\\n"));
    let _ = writeln!(out, "# TYPE {} {kind}", family.name);
}

/// One sample: `name{labels} value`, labels as (name, unescaped value).
fn sample(out: &mut String, family: &Family, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
    let _ = writeln!(out, "{}{{{}}} {value}", family.name, labels.join(","));
}

/// Each region's set name: its first user's, made unique (two virtual
/// hosts may share a name:port) so that no two series are the same.
fn set_names(regions: &[RegionView<'_>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(regions.len());
    for region in regions {
        let first = region.servers.first().map_or("unnamed", |s| s.name.as_str());
        let mut name = first.to_string();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{first} ({n})");
            n += 1;
        }
        names.push(name);
    }
    names
}

/// The whole exposition: families in a fixed order, each with its samples
/// for every set and cache, as the format requires.
pub fn exposition(regions: &[RegionView<'_>]) -> String {
    let mut out = String::new();
    let sets = set_names(regions);
    // Every (set, peer) pair with its record.
    let peers = || {
        regions.iter().zip(&sets).flat_map(|(region, set)| {
            region.peers.iter().zip(&region.snapshots).map(move |(peer, snap)| (set, peer.addr.to_string(), peer, snap))
        })
    };

    head(&mut out, &UP);
    for (set, addr, _, snap) in peers() {
        sample(&mut out, &UP, &[("set", set), ("peer", &addr)], u8::from(!snap.dead));
    }
    head(&mut out, &RTT);
    for (set, addr, _, snap) in peers() {
        if let Some(rtt) = snap.srtt {
            sample(&mut out, &RTT, &[("set", set), ("peer", &addr)], rtt.as_secs_f64());
        }
    }
    head(&mut out, &LAST_REPLY);
    for (set, addr, _, snap) in peers() {
        if let Some(us) = snap.last_reply_us {
            sample(&mut out, &LAST_REPLY, &[("set", set), ("peer", &addr)], us as f64 / 1e6);
        }
    }
    // The record's counters, grouped by family in the order they first
    // appear in Counter::ALL.
    let mut families: Vec<CounterFamily> = Vec::new();
    for (i, counter) in Counter::ALL.into_iter().enumerate() {
        let (family, label) = match export(counter) {
            Export::Own(family) => (family, None),
            Export::Labelled(family, key, value) => (family, Some((key, value))),
        };
        match families.iter_mut().find(|(f, _)| f.name == family.name) {
            Some((_, members)) => members.push((i, label)),
            None => families.push((family, vec![(i, label)])),
        }
    }
    for (family, members) in &families {
        head(&mut out, family);
        for (set, addr, _, snap) in peers() {
            for &(i, label) in members {
                let mut labels = vec![("set", set.as_str()), ("peer", addr.as_str())];
                labels.extend(label);
                sample(&mut out, family, &labels, snap.counters[i]);
            }
        }
    }
    head(&mut out, &REJECTED);
    for (set, addr, _, snap) in peers() {
        for (reason, value) in RejectReason::ALL.iter().zip(snap.rejects) {
            sample(&mut out, &REJECTED, &[("set", set), ("peer", &addr), ("reason", reason.label())], value);
        }
    }
    head(&mut out, &PEER_INFO);
    for (set, addr, peer, _) in peers() {
        let round = peer.round.to_string();
        sample(&mut out, &PEER_INFO, &[("set", set), ("peer", &addr), ("host", &peer.host), ("round", &round)], 1);
    }
    let set_counts: [SetCount; 7] = [
        (&LOOKUPS, |r| r.counts.lookups),
        (&COMPLETE, |r| r.counts.complete),
        (&MULTICAST, |r| r.counts.multicast_replies),
        (&UNKNOWN, |r| r.counts.unknown_sender),
        (&FROM_MEMORY, |r| r.counts.from_memory),
        (&STORED, |r| r.counts.stored),
        (&EVICTED, |r| r.counts.evicted),
    ];
    for (family, value) in set_counts {
        head(&mut out, family);
        for (region, set) in regions.iter().zip(&sets) {
            sample(&mut out, family, &[("set", set)], value(region));
        }
    }
    head(&mut out, &SERVER_INFO);
    for (region, set) in regions.iter().zip(&sets) {
        for server in &region.servers {
            let mapper = if server.mapper { "on" } else { "off" };
            sample(&mut out, &SERVER_INFO, &[("server", &server.name), ("set", set), ("mapper", mapper)], 1);
        }
    }
    out
}
