//! Multicast on a network of the test's own: a network namespace holding a
//! multicast-capable interface with the querier's and three responders'
//! addresses. Threads enter the namespace (setns affects only the calling
//! thread), so nothing leaves it. Checks that the group is asked from the
//! bound interface, that every member's answer counts, and that once the
//! group's size is learnt a lookup ends as soon as all of them answered.

mod support;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use mod_icpquery::engine::{self, Cluster, LocalHealth, Timeout};
use mod_icpquery::icp::{Message, Opcode};
use socket2::{Domain, Protocol, Socket, Type};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 1);
const QUERIER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const MEMBERS: [Ipv4Addr; 3] = [Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3), Ipv4Addr::new(10, 77, 0, 4)];

/// A network namespace made by this test and deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let ns = Netns(format!("icpq-mc-{}", std::process::id()));
        ns.ip(&["netns", "add", &ns.0]);
        // A veth pair of the namespace's own: mc0 carries the addresses,
        // multicast loops back to the members on the same host.
        ns.inside(&["link", "add", "mc0", "type", "veth", "peer", "name", "mc1"]);
        ns.inside(&["link", "set", "mc1", "up"]);
        ns.inside(&["link", "set", "mc0", "up"]);
        ns.inside(&["link", "set", "lo", "up"]);
        for addr in std::iter::once(QUERIER).chain(MEMBERS) {
            ns.inside(&["addr", "add", &format!("{addr}/24"), "dev", "mc0"]);
        }
        ns.inside(&["route", "add", "224.0.0.0/4", "dev", "mc0"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
        assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }

    fn inside(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        self.ip(&all);
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) {
        let f = File::open(format!("/var/run/netns/{}", self.0)).expect("namespace handle");
        // SAFETY: a valid namespace fd; setns changes only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A group member: receives on the group, answers from its own address.
fn member(
    ns: &Netns,
    addr: Ipv4Addr,
    holds: bool,
    stop: Arc<AtomicBool>,
    joined: Arc<Barrier>,
) -> thread::JoinHandle<usize> {
    let name = ns.0.clone();
    thread::spawn(move || {
        Netns(name.clone()).enter_and_forget();
        let group = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        group.set_reuse_address(true).unwrap();
        group.bind(&SocketAddr::from((GROUP, 3130)).into()).unwrap();
        group.join_multicast_v4(&GROUP, &addr).unwrap();
        group.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let group: std::net::UdpSocket = group.into();
        let reply = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        reply.set_reuse_address(true).unwrap();
        reply.bind(&SocketAddr::from((addr, 3130)).into()).unwrap();
        let reply: std::net::UdpSocket = reply.into();
        joined.wait();
        let (mut buf, mut out, mut queries) = ([0u8; 2048], Vec::new(), 0);
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = group.recv_from(&mut buf) else { continue };
            let Ok(query) = Message::decode(&buf[..n]) else { continue };
            queries += 1;
            assert_eq!(from.ip(), std::net::IpAddr::V4(QUERIER), "the query leaves from the bound address");
            query.reply(if holds { Opcode::Hit } else { Opcode::Miss }).encode(&mut out).unwrap();
            reply.send_to(&out, from).unwrap();
        }
        queries
    })
}

impl Netns {
    /// `enter` for a handle made only to name the namespace (never deleted).
    fn enter_and_forget(self) {
        self.enter();
        std::mem::forget(self);
    }
}

#[test]
fn a_group_is_asked_from_the_bound_address_and_its_size_is_learnt() {
    let ns = Netns::create();
    let stop = Arc::new(AtomicBool::new(false));
    let joined = Arc::new(Barrier::new(MEMBERS.len() + 1));
    let members: Vec<_> =
        MEMBERS.iter().enumerate().map(|(i, a)| member(&ns, *a, i == 1, stop.clone(), joined.clone())).collect();
    joined.wait();

    let name = ns.0.clone();
    let outcomes = thread::spawn(move || {
        Netns(name).enter_and_forget();
        let cluster = Cluster {
            groups: vec![SocketAddr::V4(SocketAddrV4::new(GROUP, 3130))],
            bind: Some(QUERIER.into()),
            mcast_hops: 1,
            timeout: Timeout::Fixed(Duration::from_secs(1)),
            ..Cluster::default()
        };
        let health = LocalHealth::new(0);
        // The first lookup learns the group's size by waiting its timeout.
        let first = engine::run(&cluster, health.view(), b"http://localhost/clip").unwrap();
        let second = engine::run(&cluster, health.view(), b"http://localhost/clip").unwrap();
        (cluster, first, second)
    })
    .join()
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let queries: Vec<usize> = members.into_iter().map(|m| m.join().expect("a member failed")).collect();

    let (cluster, first, second) = outcomes;
    assert_eq!(first.replies.len(), 3, "{first:?}");
    assert!(!first.complete && first.elapsed >= first.timeout, "the learning lookup waits its whole timeout");
    assert_eq!(first.hit_list(&cluster).as_deref(), Some("10.77.0.3;"));
    assert_eq!(second.replies.len(), 3, "{second:?}");
    assert!(second.complete, "with the size known the lookup ends when all three answered: {second:?}");
    assert!(queries.iter().all(|q| *q >= 2), "every member got every query: {queries:?}");
}
