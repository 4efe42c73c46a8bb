//! The peer health table in shared memory.
//!
//! Created by the parent in post_config (anonymous shared memory, so every
//! child forked afterwards maps the same pages), sized for exactly this
//! configuration's peers: after a restart the table is rebuilt from zero
//! for the new configuration, so it can never be read out of bounds. Old
//! children finishing their requests during a graceful restart keep their
//! own mapping of the previous table.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::conf::{self, Settled};
use super::safe::{Pool, Server, Zeroable};
use crate::engine::memory::{slots_for, AnswerSlot, Memory, MemoryHeader, Remember};
use crate::engine::{ClusterSlot, Health, PeerSlot};

// SAFETY: both are #[repr(C)] structs of atomics only: all-zero is a valid
// (fresh) record, and atomics are what several processes may share.
unsafe impl Zeroable for ClusterSlot {}
// SAFETY: as above.
unsafe impl Zeroable for PeerSlot {}
// SAFETY: as above.
unsafe impl Zeroable for MemoryHeader {}
// SAFETY: as above.
unsafe impl Zeroable for AnswerSlot {}

/// Gives every settled configuration (servers' own, cache groups and
/// balancers) its [`Health`] view and region index, and its answer memory
/// when it keeps answers; configurations with the same peers (virtual
/// hosts that only inherit them) share one region and one memory.
pub fn attach_health(pconf: Pool<'static>, main: Server<'_>) -> Result<(), String> {
    let mut settled: Vec<&mut Settled> = Vec::new();
    for s in main.list() {
        // SAFETY: post_config, in the parent: nothing else refers to the
        // configurations, and each server is visited once.
        let conf = unsafe { conf::of_mut(s) };
        settled.extend(conf.settled.as_mut());
        settled.extend(conf.groups.iter_mut().filter_map(|g| g.config.settled.as_mut()));
        settled.extend(conf.balancers.iter_mut().map(|b| &mut b.settled));
    }
    let mut regions: HashMap<Vec<SocketAddr>, usize> = HashMap::new();
    let mut region_of = Vec::with_capacity(settled.len());
    let mut region_peers: Vec<usize> = Vec::new();
    for conf in &settled {
        let key: Vec<SocketAddr> = conf.cluster.peers.iter().map(|p| p.addr).collect();
        let next = regions.len();
        let region = *regions.entry(key).or_insert(next);
        if region == next {
            region_peers.push(conf.cluster.peers.len());
        }
        region_of.push(region);
    }
    let shared = |e: String| format!("peer health: {e}");
    let clusters: &'static [ClusterSlot] = pconf.shared_zeroed(region_peers.len()).map_err(shared)?;
    let mut peers: &'static [PeerSlot] = pconf.shared_zeroed(region_peers.iter().sum()).map_err(shared)?;
    let mut views = Vec::with_capacity(region_peers.len());
    for (cluster, &n) in clusters.iter().zip(&region_peers) {
        let (these, rest) = peers.split_at(n);
        views.push(Health { cluster, peers: these });
        peers = rest;
    }
    // An answer memory per region whose configurations keep answers, as
    // large as the largest of them asks.
    let mut entries = vec![0usize; region_peers.len()];
    for (conf, &region) in settled.iter().zip(&region_of) {
        if !conf.keep.0.is_zero() {
            entries[region] = entries[region].max(conf.keep.1);
        }
    }
    let memory = |e: String| format!("answer memory: {e}");
    let mut memories = Vec::with_capacity(entries.len());
    for &n in &entries {
        memories.push(match n {
            0 => None,
            n => {
                let header: &'static [MemoryHeader] = pconf.shared_zeroed(1).map_err(memory)?;
                let slots: &'static [AnswerSlot] = pconf.shared_zeroed(slots_for(n)).map_err(memory)?;
                let table = Memory { header: &header[0], slots };
                table.init_random();
                Some(table)
            }
        });
    }
    for (conf, region) in settled.into_iter().zip(region_of) {
        conf.health = Some((views[region], region));
        conf.remember =
            memories[region].filter(|_| !conf.keep.0.is_zero()).map(|memory| Remember { memory, keep: conf.keep.0 });
    }
    Ok(())
}
