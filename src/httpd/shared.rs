//! The peer health table in shared memory.
//!
//! Created by the parent in post_config (anonymous `apr_shm`, so every
//! child forked afterwards maps the same pages), sized for exactly this
//! configuration's peers: after a restart the table is rebuilt from zero
//! for the new configuration, so it can never be read out of bounds. Old
//! children finishing their requests during a graceful restart keep their
//! own mapping of the previous table.

use std::collections::HashMap;
use std::mem::{align_of, size_of};
use std::net::SocketAddr;

use super::{ffi, server};
use crate::engine::{ClusterSlot, Health, PeerSlot};

/// Gives every settled server a [`Health`] view; servers with the same
/// peers (virtual hosts that only inherit them) share one region.
///
/// # Safety
/// `main` must be the live server list, settled; `pconf` the pool the
/// configuration lives in.
pub unsafe fn attach_health(pconf: *mut ffi::apr_pool_t, main: *mut ffi::server_rec) -> Result<(), String> {
    // Every settled configuration: servers' own and the cache groups.
    let mut settled: Vec<&mut server::Settled> = Vec::new();
    // SAFETY: walking httpd's server list; nothing else borrows the configs.
    for s in unsafe { server_list(main) } {
        let conf = unsafe { server::of_mut(s) };
        settled.extend(conf.settled.as_mut());
        settled.extend(conf.cache_groups.iter_mut().filter_map(|g| g.config.settled.as_mut()));
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
    const _: () = assert!(align_of::<ClusterSlot>() <= 8 && align_of::<PeerSlot>() <= 8);
    let total_peers: usize = region_peers.iter().sum();
    let size = region_peers.len() * size_of::<ClusterSlot>() + total_peers * size_of::<PeerSlot>();
    let mut shm: *mut ffi::apr_shm_t = std::ptr::null_mut();
    // SAFETY: anonymous shared memory owned by pconf (destroyed with it).
    let status = unsafe { ffi::apr_shm_create(&mut shm, size.max(1) as ffi::apr_size_t, std::ptr::null(), pconf) };
    if status != 0 {
        return Err(format!("cannot create {size} bytes of shared memory for peer health (APR status {status})"));
    }
    // SAFETY: the segment is `size` bytes, page-aligned, and lives until
    // pconf is cleared, after every request of this configuration.
    let base = unsafe { ffi::apr_shm_baseaddr_get(shm) }.cast::<u8>();
    unsafe { std::ptr::write_bytes(base, 0, size) };
    let clusters = base.cast::<ClusterSlot>();
    // SAFETY: all-zero is a valid ClusterSlot/PeerSlot (atomics only), and
    // the regions below tile the segment without overlap.
    let mut peer_base = unsafe { base.add(region_peers.len() * size_of::<ClusterSlot>()) }.cast::<PeerSlot>();
    let mut views = Vec::with_capacity(region_peers.len());
    for (region, &n) in region_peers.iter().enumerate() {
        // SAFETY: see above; 'static stands for "as long as this configuration".
        let view: Health<'static> =
            unsafe { Health { cluster: &*clusters.add(region), peers: std::slice::from_raw_parts(peer_base, n) } };
        views.push(view);
        peer_base = unsafe { peer_base.add(n) };
    }
    for (conf, region) in settled.iter_mut().zip(region_of) {
        conf.health = Some(views[region]);
    }
    Ok(())
}

/// Every server_rec, main server first.
///
/// # Safety
/// `main` must be the live server list.
pub unsafe fn server_list(main: *mut ffi::server_rec) -> Vec<*mut ffi::server_rec> {
    let mut all = Vec::new();
    let mut s = main;
    while !s.is_null() {
        all.push(s);
        // SAFETY: a live list, NULL-terminated.
        s = unsafe { (*s).next };
    }
    all
}
