//! A network namespace of the test's own, with a multicast-capable link
//! (a veth pair) holding a querier's and three group members' addresses.
//! A thread enters it with `enter` (setns changes only the calling thread;
//! threads and processes it starts afterwards are inside too).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 1);
pub const QUERIER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const MEMBERS: [Ipv4Addr; 3] =
    [Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3), Ipv4Addr::new(10, 77, 0, 4)];

/// A network namespace made by this test and deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn create(label: &str) -> Netns {
        let ns = Netns(format!("icpq-{label}-{}", std::process::id()));
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
    pub fn enter(&self) {
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

impl Netns {
    /// `enter` for a handle made only to name the namespace (never deleted).
    pub fn enter_and_forget(self) {
        self.enter();
        std::mem::forget(self);
    }
}

/// A group member inside namespace `ns`: receives queries on the group,
/// answers HIT for URLs `holds` accepts (MISS otherwise) from its own
/// address, and returns, per query received, its source and IP TTL.
pub fn member(
    ns: &str,
    addr: Ipv4Addr,
    holds: fn(&[u8]) -> bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    joined: std::sync::Arc<std::sync::Barrier>,
) -> std::thread::JoinHandle<Vec<(std::net::SocketAddr, u8)>> {
    use mod_icpquery::icp::{Message, Opcode};
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::SocketAddr;
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        Netns(ns).enter_and_forget();
        let group = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        group.set_reuse_address(true).unwrap();
        group.bind(&SocketAddr::from((GROUP, 3130)).into()).unwrap();
        group.join_multicast_v4(&GROUP, &addr).unwrap();
        group.set_read_timeout(Some(std::time::Duration::from_millis(20))).unwrap();
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                group.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_RECVTTL,
                (&on as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(rc, 0, "IP_RECVTTL");
        let reply = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        reply.set_reuse_address(true).unwrap();
        reply.bind(&SocketAddr::from((addr, 3130)).into()).unwrap();
        let reply: std::net::UdpSocket = reply.into();
        joined.wait();
        let mut seen = Vec::new();
        let mut out = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Some((datagram, from, ttl)) = recv_with_ttl(&group) else { continue };
            let Ok(query) = Message::decode(&datagram) else { continue };
            seen.push((from, ttl));
            query.reply(if holds(query.url()) { Opcode::Hit } else { Opcode::Miss }).encode(&mut out).unwrap();
            reply.send_to(&out, from).unwrap();
        }
        seen
    })
}

/// One datagram with its sender and the TTL it arrived with.
fn recv_with_ttl(socket: &socket2::Socket) -> Option<(Vec<u8>, std::net::SocketAddr, u8)> {
    let mut buf = [0u8; 4096];
    let mut control = [0u64; 16];
    // SAFETY: all-zero is a valid sockaddr_in and msghdr.
    let mut name: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated size.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    let mut ttl = None;
    // SAFETY: the kernel filled `control` with well-formed cmsgs.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TTL {
                ttl = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()) as u8);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let from =
        std::net::SocketAddr::from((Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)), u16::from_be(name.sin_port)));
    Some((buf[..n as usize].to_vec(), from, ttl?))
}
