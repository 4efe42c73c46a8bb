//! Lookup latency: `engine::run` against the physical limit measured in the
//! same run.
//!
//! The limit is a minimal ICP sender: one UDP socket made once, the query
//! sent to every peer, then blocking reads until every reply is in. The
//! engine does the same round trip plus what a real lookup needs (sockets
//! to itself, taken from and given back to a pool as the module's are, a
//! random request number, the ICMP error queue, every reply check, the
//! health records). Both run against the same peers, in alternating
//! batches, so noise on this machine hits both alike.
//!
//! Peers: 1, 16 and 64 ICP responders on 127.0.60.x (one thread answering
//! MISS with the crate's codec), and the three real Squids of a harness
//! cluster on 127.0.61.x.
//!
//! Targets per peer count: engine p50 ≤ 1.1 × limit p50 + 10 µs, and (up to
//! 16 peers) the engine's CPU per lookup within 10 µs of the limit's. With
//! 64 peers the engine's per-peer work (a decode, every check and a health
//! update per reply) adds up past that; the row shows it per peer.
//!
//! `cargo bench --bench latency` (BENCH_LATENCY_SAMPLES overrides the
//! sample count per side for 1, 3 and 16 peers; 64 peers take a third).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{fmt_dur, percentile, summary, us, Row};
use mod_icpquery::engine::{self, Cluster, LocalHealth, Peer, Timeout};
use mod_icpquery::icp::{encode_query, Message, Opcode, MAX_MESSAGE_LEN};

const RESPONDER_NET: u8 = 60;
const SQUID_NET: u8 = 61;
const ICP_PORT: u16 = 3130;
const URL: &[u8] = b"http://localhost/wsgi/bench-latency?lang=en";
const BATCH: usize = 50;
/// Long enough that no lookup of a live peer ever ends by it.
const WAIT: Duration = Duration::from_secs(1);

/// ICP responders on one thread: every socket answers each query with MISS.
struct Responders {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Responders {
    fn start(count: usize) -> Responders {
        let addrs: Vec<SocketAddr> = (0..count)
            .map(|i| SocketAddr::from((Ipv4Addr::new(127, 0, RESPONDER_NET, 2 + i as u8), ICP_PORT)))
            .collect();
        let sockets: Vec<UdpSocket> = addrs
            .iter()
            .map(|a| {
                let s = UdpSocket::bind(a).unwrap_or_else(|e| panic!("responder: cannot bind {a}: {e}"));
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::Builder::new()
            .name("icp-responders".into())
            .spawn(move || serve(&sockets, &stopping))
            .expect("spawn responder thread");
        Responders { addrs, stop, thread: Some(thread) }
    }
}

fn serve(sockets: &[UdpSocket], stop: &AtomicBool) {
    let mut fds: Vec<libc::pollfd> =
        sockets.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
    let mut out = Vec::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: a live array of pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n <= 0 {
            continue;
        }
        for (socket, fd) in sockets.iter().zip(fds.iter_mut()) {
            if fd.revents == 0 {
                continue;
            }
            fd.revents = 0;
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                let Ok(query) = Message::decode(&buf[..len]) else { continue };
                if query.opcode != Opcode::Query {
                    continue;
                }
                if query.reply(Opcode::Miss).encode(&mut out).is_ok() {
                    let _ = socket.send_to(&out, from);
                }
            }
        }
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The minimal sender: the physical limit of one query round.
struct Limit {
    socket: UdpSocket,
    peers: Vec<SocketAddr>,
    query: Vec<u8>,
    buf: Vec<u8>,
    reqnum: u32,
}

impl Limit {
    fn new(peers: &[SocketAddr]) -> Limit {
        let socket = UdpSocket::bind("0.0.0.0:0").expect("bind limit socket");
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Limit {
            socket,
            peers: peers.to_vec(),
            query: Vec::with_capacity(128),
            buf: vec![0; MAX_MESSAGE_LEN + 1],
            reqnum: 1,
        }
    }

    /// One round: Some(time) when every peer answered.
    fn once(&mut self) -> Option<Duration> {
        self.reqnum = self.reqnum.wrapping_add(1);
        let start = Instant::now();
        encode_query(self.reqnum, URL, &mut self.query).unwrap();
        for p in &self.peers {
            self.socket.send_to(&self.query, p).ok()?;
        }
        let mut got = 0;
        while got < self.peers.len() {
            let (n, _) = self.socket.recv_from(&mut self.buf).ok()?;
            if Message::decode(&self.buf[..n]).is_ok_and(|m| m.request_number == self.reqnum && m.opcode.is_reply()) {
                got += 1;
            }
        }
        Some(start.elapsed())
    }
}

/// One `engine::run`: Some(time) when every peer answered.
fn engine_once(cluster: &Cluster, health: &LocalHealth, pool: &engine::SocketPool) -> Option<Duration> {
    let start = Instant::now();
    let shared = engine::Shared { health: health.view(), remember: None, sockets: Some(pool) };
    let outcome = engine::run(cluster, shared, URL).ok()?;
    let elapsed = start.elapsed();
    (outcome.replies.len() == cluster.peers.len()).then_some(elapsed)
}

struct Measured {
    limit: Vec<Duration>,
    engine: Vec<Duration>,
    limit_failed: usize,
    engine_failed: usize,
    /// CPU time of this thread (user + system, including the loopback
    /// delivery the kernel does in the sender's context) per side.
    limit_cpu: Duration,
    engine_cpu: Duration,
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn measure(peers: &[SocketAddr], samples: usize) -> Measured {
    let cluster = Cluster {
        peers: peers.iter().map(|a| Peer::new(a.ip().to_string(), *a)).collect(),
        timeout: Timeout::Fixed(WAIT),
        ..Cluster::default()
    };
    let health = LocalHealth::new(peers.len());
    let pool = engine::SocketPool::default();
    let mut limit = Limit::new(peers);
    // Warm-up: caches, branch predictors, the peers' first replies.
    for _ in 0..(samples / 20).max(50) {
        limit.once();
        engine_once(&cluster, &health, &pool);
    }
    let mut m = Measured {
        limit: Vec::with_capacity(samples),
        engine: Vec::with_capacity(samples),
        limit_failed: 0,
        engine_failed: 0,
        limit_cpu: Duration::ZERO,
        engine_cpu: Duration::ZERO,
    };
    let mut batch = 0usize;
    while m.limit.len() + m.limit_failed < samples || m.engine.len() + m.engine_failed < samples {
        // Alternate which side goes first in each pair of batches.
        for side in if batch % 2 == 0 { [0, 1] } else { [1, 0] } {
            let cpu_before = thread_cpu();
            for _ in 0..BATCH {
                if side == 0 {
                    match limit.once() {
                        Some(d) => m.limit.push(d),
                        None => m.limit_failed += 1,
                    }
                } else {
                    match engine_once(&cluster, &health, &pool) {
                        Some(d) => m.engine.push(d),
                        None => m.engine_failed += 1,
                    }
                }
            }
            let cpu = thread_cpu().saturating_sub(cpu_before);
            if side == 0 {
                m.limit_cpu += cpu;
            } else {
                m.engine_cpu += cpu;
            }
        }
        batch += 1;
    }
    m
}

fn report(label: &str, peers: usize, mut m: Measured) {
    let (l50, l99) = (percentile(&mut m.limit, 50.0), percentile(&mut m.limit, 99.0));
    let (e50, e99) = (percentile(&mut m.engine, 50.0), percentile(&mut m.engine, 99.0));
    let bound = l50.mul_f64(1.1) + Duration::from_micros(10);
    let lcpu = us(m.limit_cpu) / (m.limit.len() + m.limit_failed).max(1) as f64;
    let ecpu = us(m.engine_cpu) / (m.engine.len() + m.engine_failed).max(1) as f64;
    let cpu_target = peers <= 16;
    let ok = e50 <= bound && (!cpu_target || ecpu - lcpu <= 10.0);
    println!(
        "{label}, {peers} peer(s): CPU per lookup in the calling thread: limit {lcpu:.1} µs, engine::run {ecpu:.1} µs \
         ({:+.1} µs)",
        ecpu - lcpu
    );
    println!(
        "{label}: {} + {} samples; limit p50 {} p99 {}; engine::run p50 {} p99 {}; p50 ratio {:.2}; \
         p99 ratio {:.2}; bound 1.1×limit+10µs = {} {}{}",
        m.limit.len(),
        m.engine.len(),
        fmt_dur(l50),
        fmt_dur(l99),
        fmt_dur(e50),
        fmt_dur(e99),
        us(e50) / us(l50),
        us(e99) / us(l99),
        fmt_dur(bound),
        common::mark(ok),
        if m.limit_failed + m.engine_failed > 0 {
            format!(" (incomplete rounds: limit {}, engine {})", m.limit_failed, m.engine_failed)
        } else {
            String::new()
        },
    );
    summary(Row {
        bench: "latency",
        case: &format!("{peers} peer{} ({label})", if peers == 1 { "" } else { "s" }),
        measured: format!("run p50 {:.0} / p99 {:.0} µs, CPU {ecpu:.0} µs", us(e50), us(e99)),
        baseline: format!("limit p50 {:.0} / p99 {:.0} µs, CPU {lcpu:.0} µs", us(l50), us(l99)),
        ratio: format!("{:.2} (p99 {:.2})", us(e50) / us(l50), us(e99) / us(l99)),
        target: match cpu_target {
            true => format!("p50 ≤ 1.1×limit+10µs = {:.0} µs, CPU ≤ limit+10 µs", us(bound)),
            false => format!(
                "p50 ≤ 1.1×limit+10µs = {:.0} µs (CPU {:+.2} µs per peer)",
                us(bound),
                (ecpu - lcpu) / peers as f64
            ),
        },
        ok: Some(ok),
    });
}

fn main() {
    let samples = common::env_num("BENCH_LATENCY_SAMPLES", 8000) as usize;
    println!("== lookup latency: engine::run vs a minimal ICP sender, {samples} samples per side (64 peers: a third)");

    // The three real Squids of a harness cluster (no portal needed).
    let squids = support::Cluster::start_caches(SQUID_NET);
    for count in [1usize, 3, 16, 64] {
        if count == 3 {
            let peers: Vec<SocketAddr> = squids.squids().iter().map(|s| s.icp_addr()).collect();
            report("Squid 5", peers.len(), measure(&peers, samples));
            continue;
        }
        let responders = Responders::start(count);
        let n = if count >= 64 { samples / 3 } else { samples };
        report("local responders", count, measure(&responders.addrs, n));
        drop(responders);
    }
    drop(squids);
}
