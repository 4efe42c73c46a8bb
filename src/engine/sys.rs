//! What std does not offer: waiting on several sockets with a
//! sub-millisecond deadline, unpredictable request numbers, the ICMP error
//! queue and the interface that holds an address. The engine's only
//! `unsafe`, kept to plain libc calls on values owned here.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What a socket has waiting.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ready {
    /// Datagrams to read.
    pub data: bool,
    /// An ICMP error on the error queue.
    pub error: bool,
}

/// Waits until one of `sockets` has something or `timeout` passes; says
/// what each has (nothing on timeout).
pub fn wait_readable<S: AsRawFd>(sockets: &[S], timeout: Duration) -> io::Result<Vec<Ready>> {
    let mut fds: Vec<libc::pollfd> =
        sockets.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is a live array of `fds.len()` pollfds and `ts` a valid
    // timespec; ppoll writes only `revents`.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
    if n >= 0 {
        let ready =
            |p: &libc::pollfd| Ready { data: p.revents & libc::POLLIN != 0, error: p.revents & libc::POLLERR != 0 };
        return Ok(fds.iter().map(ready).collect());
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        // A signal (httpd uses them for graceful restarts) cut the wait
        // short; the caller recomputes the remaining time and waits again.
        return Ok(vec![Ready::default(); fds.len()]);
    }
    Err(err)
}

/// A request number an off-path sender cannot guess: replies are matched on
/// it, so a predictable one would let anyone forge a HIT.
pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // SAFETY: `bytes` is a valid, writable 4-byte buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n == bytes.len() as isize {
        return u32::from_ne_bytes(bytes);
    }
    // getrandom cannot fail on Linux ≥ 3.17 once the pool is seeded; if it
    // ever does, std's randomly keyed SipHash over a clock reading still
    // gives an unguessable number.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}

/// Asks the kernel to queue ICMP errors (port or host unreachable) for
/// this socket, so a peer whose port is closed fails at once instead of
/// costing the whole timeout.
pub fn enable_icmp_errors(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let (level, name) =
        if ipv6 { (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) } else { (libc::IPPROTO_IP, libc::IP_RECVERR) };
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a pointer to a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An ICMP error taken off a socket's error queue.
pub struct IcmpError {
    /// Where the datagram it answers went.
    pub dest: std::net::SocketAddr,
    pub error: io::Error,
    /// The request number of that datagram (its ICP header, which the
    /// kernel hands back), so that an error for an earlier lookup's query
    /// on a reused socket is told apart.
    pub request_number: Option<u32>,
}

/// Takes one ICMP error off the socket's error queue; `None` when the queue
/// is empty.
pub fn take_icmp_error(socket: &impl AsRawFd) -> io::Result<Option<IcmpError>> {
    loop {
        // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 64];
        let mut payload = [0u8; 8];
        let mut iov = libc::iovec { iov_base: payload.as_mut_ptr().cast(), iov_len: payload.len() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: `msg` points at buffers that live across the call, with
        // their sizes; the payload buffer takes the offending datagram's
        // first bytes (the rest is cut off).
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(err) };
        }
        let mut errno = None;
        // SAFETY: the kernel filled `control` with `msg_controllen` bytes of
        // well-formed cmsgs; the CMSG macros walk exactly those.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
                if (level == libc::IPPROTO_IP && kind == libc::IP_RECVERR)
                    || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_RECVERR)
                {
                    let ee = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::sock_extended_err>());
                    if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP || ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6 {
                        errno = Some(ee.ee_errno as i32);
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        if let (Some(e), Some(dest)) = (errno, sockaddr_to_std(&name)) {
            let request_number = (n >= 8).then(|| u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]));
            return Ok(Some(IcmpError { dest, error: io::Error::from_raw_os_error(e), request_number }));
        }
        // Not an ICMP error (a local one): consumed, nothing to report; next.
    }
}

/// `recv_from` that also tells a datagram's full length when it was longer
/// than `buf` (MSG_TRUNC), so an oversized one is reported by its real size.
pub fn recv_from(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, std::net::SocketAddr)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut name_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` and `name` are live buffers of the sizes passed.
    let n = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
            (&mut name as *mut libc::sockaddr_storage).cast(),
            &mut name_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = sockaddr_to_std(&name).ok_or_else(|| io::Error::other("datagram from an address of no IP family"))?;
    Ok((n as usize, from))
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The index of the interface that holds `ip`, if one does now. IPv6
/// multicast leaves by interface (IPV6_MULTICAST_IF takes an index, and the
/// kernel does not choose it from the bound source address).
pub fn interface_holding(ip: std::net::IpAddr) -> Option<u32> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() && found.is_none() {
        // SAFETY: a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says which
        // struct it is; we read only that struct.
        let addr = unsafe {
            match (*ifa.ifa_addr).sa_family as libc::c_int {
                libc::AF_INET => {
                    let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    IpAddr::V6(Ipv6Addr::from((*ifa.ifa_addr.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        if addr == ip {
            // SAFETY: ifa_name is the interface's NUL-terminated name.
            let index = unsafe { libc::if_nametoindex(ifa.ifa_name) };
            found = (index != 0).then_some(index);
        }
    }
    // SAFETY: the list from getifaddrs above, freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}
