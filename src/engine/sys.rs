//! The two things std does not offer: waiting on several sockets with a
//! sub-millisecond deadline, and unpredictable request numbers. The engine's
//! only `unsafe`, kept to plain libc calls on values owned here.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Waits until one of `sockets` is readable or `timeout` passes; returns
/// which are readable (all false on timeout).
pub fn wait_readable<S: AsRawFd>(sockets: &[S], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is a live array of `fds.len()` pollfds and `ts` a valid
    // timespec; ppoll writes only `revents`.
    let n = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    if n >= 0 {
        return Ok(fds.iter().map(|p| p.revents != 0).collect());
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        // A signal (httpd uses them for graceful restarts) cut the wait
        // short; the caller recomputes the remaining time and waits again.
        return Ok(vec![false; fds.len()]);
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
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}
