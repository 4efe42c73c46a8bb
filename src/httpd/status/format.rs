//! The status page's data (no httpd types) and its text for machines: the
//! `?auto` form and the section added to mod_status's page (the HTML page
//! is in `html.rs`, the metrics in `metrics.rs`).
//!
//! # The `?auto` format
//!
//! One `Key: value` line each, like mod_status's `?auto`; every key occurs
//! once, so a script can read the page into a dictionary. Regions (one
//! shared health table each, used by one or more servers) are numbered
//! from 0 in the order of httpd's server list, servers and peers from 0
//! region by region (the main server is always `Server0`):
//!
//! ```text
//! Servers: 1
//! Server0Name: main server             (a virtual host: name:port)
//! Server0Region: 0
//! Server0Mapper: on                    (or off)
//! Server0Timeout: 50000                (microseconds, or "auto <min> <max>")
//! Server0DeadTimeSeconds: 10
//! Regions: 1
//! Region0Peers: 3
//! Region0Lookups: 120
//! Region0Complete: 118
//! Region0MulticastReplies: 0
//! Region0UnknownSender: 0
//! Region0AnswersFromMemory: 0           (ICPQueryRemember: lookups answered
//! Region0AnswersStored: 0                from memory, answers stored,
//! Region0AnswersEvicted: 0               live answers replaced)
//! Peers: 3
//! Peer0Region: 0
//! Peer0Host: 127.0.0.2                 (as ICPQueryPeer wrote it)
//! Peer0Address: 127.0.0.2:3130
//! Peer0Round: 1
//! Peer0State: alive                    (or dead)
//! Peer0RttMicros: 412                  (smoothed; 0 until measured)
//! Peer0LastReplyAgeSeconds: 3          (or "never")
//! Peer0Queries: 120                    (then Hit, Miss, MissNoFetch, Denied,
//!                                       Err, Icmp, Timeouts, Deaths,
//!                                       Remembered: HITs at it from memory)
//! Peer0Rejected_too_short: 0           (then one per RejectReason, in order)
//! ```
//!
//! Text values (names) have bytes outside printable ASCII, `"` and `\`
//! written as `\xHH`, so a value never spans lines.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::engine::health::{Counter, Snapshot};
use crate::engine::memory::MemoryHeader;
use crate::engine::{Cluster, ClusterSlot, Health, Peer, RejectReason, Timeout};
use crate::logfile::Escaped;

/// One server (or virtual host) and the settings its lookups use.
pub struct ServerView {
    /// "main server", or a virtual host's "name:port".
    pub name: String,
    pub mapper: bool,
    pub timeout: Timeout,
    pub dead_time: Duration,
}

/// The counters of a region that belong to no single peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    pub lookups: u64,
    pub complete: u64,
    pub multicast_replies: u64,
    pub unknown_sender: u64,
    /// Whether the set keeps answers (`ICPQueryRemember`).
    pub remembers: bool,
    /// The answer memory's, all 0 without one.
    pub from_memory: u64,
    pub stored: u64,
    pub evicted: u64,
}

impl ClusterCounts {
    pub fn of(slot: &ClusterSlot, memory: Option<&MemoryHeader>) -> ClusterCounts {
        let remembers = memory.is_some();
        let memory = |counter: fn(&MemoryHeader) -> &AtomicU64| memory.map_or(0, |m| counter(m).load(Relaxed));
        ClusterCounts {
            lookups: slot.lookups.load(Relaxed),
            complete: slot.complete.load(Relaxed),
            multicast_replies: slot.multicast_replies.load(Relaxed),
            unknown_sender: slot.unknown_sender.load(Relaxed),
            remembers,
            from_memory: memory(|m| &m.recalled),
            stored: memory(|m| &m.stored),
            evicted: memory(|m| &m.evicted),
        }
    }
}

/// One health region: the servers that share it, its peers as configured
/// and a copy of their records.
pub struct RegionView<'a> {
    pub servers: Vec<ServerView>,
    pub peers: &'a [Peer],
    pub counts: ClusterCounts,
    /// One per peer, same order.
    pub snapshots: Vec<Snapshot>,
}

impl<'a> RegionView<'a> {
    pub fn new(
        server: ServerView,
        cluster: &'a Cluster,
        health: Health<'_>,
        memory: Option<&MemoryHeader>,
    ) -> RegionView<'a> {
        let n = cluster.peers.len().min(health.peers.len());
        RegionView {
            servers: vec![server],
            peers: &cluster.peers[..n],
            counts: ClusterCounts::of(health.cluster, memory),
            snapshots: health.peers[..n].iter().map(|slot| slot.snapshot()).collect(),
        }
    }

    pub(super) fn peers(&self) -> impl Iterator<Item = (&Peer, &Snapshot)> {
        self.peers.iter().zip(&self.snapshots)
    }
}

pub(super) fn state(snap: &Snapshot) -> &'static str {
    if snap.dead {
        "dead"
    } else {
        "alive"
    }
}

fn rtt_micros(snap: &Snapshot) -> u128 {
    snap.srtt.map_or(0, |d| d.as_micros())
}

/// Whole seconds since the last valid reply, if there was one.
pub(super) fn age_seconds(snap: &Snapshot, now_us: u64) -> Option<u64> {
    snap.last_reply_us.map(|t| now_us.saturating_sub(t) / 1_000_000)
}

pub(super) fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// `s` safe inside HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `?auto` form (see the module documentation for the keys).
pub fn auto(regions: &[RegionView<'_>], now_us: u64) -> String {
    let mut out = String::new();
    let servers: usize = regions.iter().map(|r| r.servers.len()).sum();
    let _ = writeln!(out, "Servers: {servers}");
    let all_servers = regions.iter().enumerate().flat_map(|(i, r)| r.servers.iter().map(move |s| (i, s)));
    for (n, (region, s)) in all_servers.enumerate() {
        let _ = writeln!(out, "Server{n}Name: {}", Escaped(s.name.as_bytes()));
        let _ = writeln!(out, "Server{n}Region: {region}");
        let _ = writeln!(out, "Server{n}Mapper: {}", on_off(s.mapper));
        let _ = writeln!(out, "Server{n}Timeout: {}", s.timeout);
        let _ = writeln!(out, "Server{n}DeadTimeSeconds: {}", s.dead_time.as_secs());
    }
    let _ = writeln!(out, "Regions: {}", regions.len());
    for (i, r) in regions.iter().enumerate() {
        let c = r.counts;
        let _ = writeln!(out, "Region{i}Peers: {}", r.peers.len());
        let _ = writeln!(out, "Region{i}Lookups: {}", c.lookups);
        let _ = writeln!(out, "Region{i}Complete: {}", c.complete);
        let _ = writeln!(out, "Region{i}MulticastReplies: {}", c.multicast_replies);
        let _ = writeln!(out, "Region{i}UnknownSender: {}", c.unknown_sender);
        let _ = writeln!(out, "Region{i}AnswersFromMemory: {}", c.from_memory);
        let _ = writeln!(out, "Region{i}AnswersStored: {}", c.stored);
        let _ = writeln!(out, "Region{i}AnswersEvicted: {}", c.evicted);
    }
    let _ = writeln!(out, "Peers: {}", regions.iter().map(|r| r.peers.len()).sum::<usize>());
    let all_peers = regions.iter().enumerate().flat_map(|(i, r)| r.peers().map(move |p| (i, p)));
    for (n, (region, (peer, snap))) in all_peers.enumerate() {
        let _ = writeln!(out, "Peer{n}Region: {region}");
        let _ = writeln!(out, "Peer{n}Host: {}", Escaped(peer.host.as_bytes()));
        let _ = writeln!(out, "Peer{n}Address: {}", peer.addr);
        let _ = writeln!(out, "Peer{n}Round: {}", peer.round);
        let _ = writeln!(out, "Peer{n}State: {}", state(snap));
        let _ = writeln!(out, "Peer{n}RttMicros: {}", rtt_micros(snap));
        let age = age_seconds(snap, now_us).map_or("never".into(), |a| a.to_string());
        let _ = writeln!(out, "Peer{n}LastReplyAgeSeconds: {age}");
        for (counter, value) in Counter::ALL.iter().zip(snap.counters) {
            let _ = writeln!(out, "Peer{n}{}: {value}", counter.name());
        }
        for (reason, value) in RejectReason::ALL.iter().zip(snap.rejects) {
            let _ = writeln!(out, "Peer{n}Rejected_{}: {value}", reason.label());
        }
    }
    out
}

/// mod_status's `?auto` lines: `ICPQueryPeers`, `ICPQueryPeersDead` and
/// `ICPQueryLookups`, summed over every region.
pub fn status_short(regions: &[RegionView<'_>]) -> String {
    let peers: usize = regions.iter().map(|r| r.snapshots.len()).sum();
    let dead = regions.iter().flat_map(|r| &r.snapshots).filter(|s| s.dead).count();
    let lookups: u64 = regions.iter().map(|r| r.counts.lookups).sum();
    format!("ICPQueryPeers: {peers}\nICPQueryPeersDead: {dead}\nICPQueryLookups: {lookups}\n")
}

/// mod_status's HTML page: one line per peer, grouped by region.
pub fn status_html(regions: &[RegionView<'_>]) -> String {
    let mut out = String::from("<hr />\n<h2>mod_icpquery</h2>\n<dl>\n");
    for region in regions {
        let names: Vec<String> = region.servers.iter().map(|s| escape_html(&s.name)).collect();
        let _ = writeln!(out, "<dt>Peers of {}: {}</dt>", names.join(", "), region.peers.len());
        for (peer, snap) in region.peers() {
            // mod_status declares ISO-8859-1: the section stays ASCII.
            let rtt = snap.srtt.map_or("not measured".into(), |d| format!("{} &micro;s", d.as_micros()));
            let addr = escape_html(&peer.addr.to_string());
            let _ = writeln!(out, "<dd>{addr}: {}, RTT {rtt}</dd>", state(snap));
        }
    }
    out.push_str(
        "</dl>\n<p>Counters per peer: the page of <code>SetHandler icpquery-status</code> \
         (<code>?auto</code> for scripts).</p>\n",
    );
    out
}
