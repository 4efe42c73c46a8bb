//! A network namespace of the test's own with two multicast-capable links
//! (veth pairs): `mc0` holds the querier's and three group members'
//! addresses, IPv4 and IPv6; `dc0`, a decoy, holds the routes multicast
//! takes by default. A query reaches the members only if it leaves by the
//! interface of the bound address, as `ICPQueryBindAddr` promises. A thread
//! enters the namespace with `enter` (setns changes only the calling thread;
//! threads and processes it starts afterwards are inside too).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

/// The addresses of one family on `mc0`.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    pub group: IpAddr,
    pub querier: IpAddr,
    pub members: [IpAddr; 3],
}

pub const V4: Net = Net {
    group: IpAddr::V4(Ipv4Addr::new(239, 255, 77, 1)),
    querier: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
    members: [
        IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 77, 0, 3)),
        IpAddr::V4(Ipv4Addr::new(10, 77, 0, 4)),
    ],
};

pub const V6: Net = Net {
    group: IpAddr::V6(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x77, 1)),
    querier: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1)),
    members: [
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 3)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 4)),
    ],
};

/// A network namespace made by this test and deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn create(label: &str) -> Netns {
        let ns = Netns(format!("icpq-{label}-{}", std::process::id()));
        ns.ip(&["netns", "add", &ns.0]);
        ns.inside(&["link", "set", "lo", "up"]);
        for (link, peer) in [("dc0", "dc1"), ("mc0", "mc1")] {
            ns.inside(&["link", "add", link, "type", "veth", "peer", "name", peer]);
            ns.inside(&["link", "set", peer, "up"]);
            ns.inside(&["link", "set", link, "up"]);
        }
        ns.inside(&["addr", "add", "10.78.0.1/24", "dev", "dc0"]);
        ns.inside(&["addr", "add", "fd00:78::1/64", "dev", "dc0", "nodad"]);
        for net in [V4, V6] {
            let prefix = if net.group.is_ipv4() { 24 } else { 64 };
            for addr in std::iter::once(net.querier).chain(net.members) {
                let addr = format!("{addr}/{prefix}");
                let mut args = vec!["addr", "add", &addr, "dev", "mc0"];
                if net.group.is_ipv6() {
                    args.push("nodad"); // usable at once
                }
                ns.inside(&args);
            }
        }
        // Unless told otherwise, multicast leaves by the decoy.
        ns.inside(&["route", "add", "224.0.0.0/4", "dev", "dc0"]);
        ns.inside(&["-6", "route", "add", "multicast", "ff15::/16", "dev", "dc0", "table", "local"]);
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

    /// `enter` for a handle made only to name the namespace (never deleted).
    pub fn enter_and_forget(self) {
        self.enter();
        std::mem::forget(self);
    }

    /// Runs `f` on a thread of its own inside the namespace.
    pub fn run_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.0.clone();
        std::thread::spawn(move || {
            Netns(name).enter_and_forget();
            f()
        })
        .join()
        .expect("the thread inside the namespace panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Starts the three members of `net` inside namespace `ns` (see `member`)
/// and returns once all have joined the group.
pub fn members(ns: &str, net: Net, holds: [fn(&[u8]) -> bool; 3], stop: &Arc<AtomicBool>) -> Vec<Member> {
    let joined = Arc::new(Barrier::new(net.members.len() + 1));
    let members = net
        .members
        .iter()
        .zip(holds)
        .map(|(a, h)| member(ns, net.group, *a, h, stop.clone(), joined.clone()))
        .collect();
    joined.wait();
    members
}

/// A member's thread; it returns, per query received, its source and the
/// IP TTL (IPv6 hop limit) it arrived with.
pub type Member = JoinHandle<Vec<(SocketAddr, u8)>>;

/// A group member: joins `group` on `mc0`, answers HIT for URLs `holds`
/// accepts (MISS otherwise) from its own address until `stop`.
fn member(
    ns: &str,
    group: IpAddr,
    addr: IpAddr,
    holds: fn(&[u8]) -> bool,
    stop: Arc<AtomicBool>,
    joined: Arc<Barrier>,
) -> Member {
    use mod_icpquery::icp::{Message, Opcode};
    use socket2::{Domain, Protocol, Socket, Type};
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        Netns(ns).enter_and_forget();
        let domain = if group.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
        let listener = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        listener.set_reuse_address(true).unwrap();
        listener.bind(&SocketAddr::new(group, 3130).into()).unwrap();
        match (group, addr) {
            (IpAddr::V4(g), IpAddr::V4(a)) => listener.join_multicast_v4(&g, &a).unwrap(),
            (IpAddr::V6(g), IpAddr::V6(_)) => listener.join_multicast_v6(&g, interface_index("mc0")).unwrap(),
            _ => unreachable!("group and member of one family"),
        }
        listener.set_read_timeout(Some(std::time::Duration::from_millis(20))).unwrap();
        let (level, option) = match group {
            IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_RECVTTL),
            IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT),
        };
        set_int_option(&listener, level, option);
        let reply = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        reply.set_reuse_address(true).unwrap();
        reply.bind(&SocketAddr::new(addr, 3130).into()).unwrap();
        let reply: std::net::UdpSocket = reply.into();
        joined.wait();
        let mut seen = Vec::new();
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some((datagram, from, ttl)) = recv_with_ttl(&listener) else { continue };
            let Ok(query) = Message::decode(&datagram) else { continue };
            seen.push((from, ttl));
            query.reply(if holds(query.url()) { Opcode::Hit } else { Opcode::Miss }).encode(&mut out).unwrap();
            reply.send_to(&out, from).unwrap();
        }
        seen
    })
}

fn interface_index(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {name:?}");
    index
}

fn set_int_option(socket: &socket2::Socket, level: libc::c_int, option: libc::c_int) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value.
    let rc = unsafe { libc::setsockopt(socket.as_raw_fd(), level, option, (&on as *const libc::c_int).cast(), 4) };
    assert_eq!(rc, 0, "setsockopt({level}, {option}): {}", std::io::Error::last_os_error());
}

/// One datagram with its sender and the TTL / hop limit it arrived with.
fn recv_with_ttl(socket: &socket2::Socket) -> Option<(Vec<u8>, SocketAddr, u8)> {
    let mut buf = [0u8; 4096];
    let mut control = [0u64; 16];
    let mut name = socket2::SockAddrStorage::zeroed();
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // SAFETY: the storage is large enough for any sockaddr.
    msg.msg_name = unsafe { name.view_as::<libc::sockaddr_storage>() } as *mut libc::sockaddr_storage as *mut _;
    msg.msg_namelen = name.size_of();
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
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            if (level, kind) == (libc::IPPROTO_IP, libc::IP_TTL)
                || (level, kind) == (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT)
            {
                ttl = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()) as u8);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // SAFETY: the kernel wrote a sockaddr of `msg_namelen` bytes into `name`.
    let from = unsafe { socket2::SockAddr::new(name, msg.msg_namelen) }.as_socket()?;
    Some((buf[..n as usize].to_vec(), from, ttl?))
}
