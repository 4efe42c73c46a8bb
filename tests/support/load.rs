//! A real HTTP load generator for the soak tests: a pool of client threads,
//! each holding one HTTP/1.1 keep-alive connection (std `TcpStream`), sending
//! GETs back to back. Every request is accounted exactly: a 2xx with the
//! expected body is a success; anything else (non-2xx, a body that is not
//! the one asked for, a connection error, a timeout) is a `Failure` with the
//! time the request started and ended, so a test can tell which failures
//! fall into a window it expects some in (e.g. `apachectl -k restart`).
//!
//! The one retry: when a *reused* keep-alive connection is found closed
//! before a single byte of the response arrived (EOF, reset or broken pipe
//! on the write or first read), the request is sent again once on a new
//! connection — the server closed an idle connection as ours crossed it,
//! which RFC 9112 §9.3.1 lets a client retry for idempotent requests, and
//! which every real client (browsers, wrk, curl) does. Those are counted in
//! `retried`, never hidden; a fresh connection failing is a failure.
//!
//! `pause` lets every client finish its request in flight, close its
//! connection and wait (condition variable, no sleeping), so the server can
//! be measured quiescent; `resume` restarts them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest wait for connect, for a write, and for each read of a response.
/// Generous: under prefork, a connection may sit in the listen backlog
/// until a child finishes another client's keep-alive run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// What a client asks for: the `n`-th request of connection `conn`.
/// Returns the request target and the text the 2xx body must end with
/// (None: any body).
pub type Target = dyn Fn(usize, u64) -> (String, Option<String>) + Send + Sync;

#[derive(Debug, Clone)]
pub struct Failure {
    pub started: Instant,
    pub ended: Instant,
    pub conn: usize,
    pub target: String,
    /// The HTTP status when a response arrived (non-2xx or a wrong body).
    pub status: Option<u16>,
    pub what: String,
}

impl Failure {
    /// Did this request overlap the interval [from, to]?
    pub fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.started <= to && self.ended >= from
    }
}

#[derive(Default)]
struct PauseState {
    paused: bool,
    parked: usize,
}

struct Shared {
    addr: SocketAddr,
    target: Box<Target>,
    stop: AtomicBool,
    paused_flag: AtomicBool,
    pause: Mutex<PauseState>,
    cv: Condvar,
    ok: AtomicU64,
    retried: AtomicU64,
    connects: AtomicU64,
    max_latency_us: AtomicU64,
    failures: Mutex<Vec<Failure>>,
    /// Attempts that got no complete response: (X-Soak-Id, started, ended).
    unanswered: Mutex<Vec<(String, Instant, Instant)>>,
}

pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

/// Counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub ok: u64,
    pub failed: u64,
    pub retried: u64,
    pub connects: u64,
    pub max_latency: Duration,
}

impl Load {
    /// Start `connections` clients against `addr`.
    pub fn start(addr: SocketAddr, connections: usize, target: Box<Target>) -> Load {
        let shared = Arc::new(Shared {
            addr,
            target,
            stop: AtomicBool::new(false),
            paused_flag: AtomicBool::new(false),
            pause: Mutex::new(PauseState::default()),
            cv: Condvar::new(),
            ok: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            max_latency_us: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
            unanswered: Mutex::new(Vec::new()),
        });
        let threads = (0..connections)
            .map(|conn| {
                let sh = shared.clone();
                std::thread::Builder::new()
                    .name(format!("load{conn}"))
                    .stack_size(128 * 1024)
                    .spawn(move || client(&sh, conn))
                    .expect("spawn load client")
            })
            .collect();
        Load { shared, threads, started: Instant::now() }
    }

    pub fn connections(&self) -> usize {
        self.threads.len()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn totals(&self) -> Totals {
        let s = &self.shared;
        Totals {
            ok: s.ok.load(Ordering::Relaxed),
            failed: s.failures.lock().unwrap().len() as u64,
            retried: s.retried.load(Ordering::Relaxed),
            connects: s.connects.load(Ordering::Relaxed),
            max_latency: Duration::from_micros(s.max_latency_us.load(Ordering::Relaxed)),
        }
    }

    /// Every attempt (first tries that were retried, and failures) that got
    /// no complete response, by its `X-Soak-Id` header: `c<conn>n<n>a<try>`.
    /// Each request sends that header, so a server log of it tells which
    /// requests the server answered.
    pub fn unanswered(&self) -> Vec<(String, Instant, Instant)> {
        self.shared.unanswered.lock().unwrap().clone()
    }

    pub fn failures(&self) -> Vec<Failure> {
        self.shared.failures.lock().unwrap().clone()
    }

    /// Every client finishes its request in flight, closes its connection
    /// and waits. Returns once all have parked (panics after `timeout`).
    pub fn pause(&self, timeout: Duration) {
        let s = &self.shared;
        let mut st = s.pause.lock().unwrap();
        st.paused = true;
        s.paused_flag.store(true, Ordering::SeqCst);
        let n = self.threads.len();
        let (st, res) = s.cv.wait_timeout_while(st, timeout, |st| st.parked < n).unwrap();
        assert!(!res.timed_out(), "load: only {} of {n} clients paused within {timeout:?}", st.parked);
    }

    pub fn resume(&self) {
        let s = &self.shared;
        let mut st = s.pause.lock().unwrap();
        st.paused = false;
        s.paused_flag.store(false, Ordering::SeqCst);
        s.cv.notify_all();
    }

    /// Stop every client (after its request in flight) and join them.
    pub fn finish(mut self) -> (Totals, Vec<Failure>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.resume();
        for t in self.threads.drain(..) {
            t.join().expect("load client panicked");
        }
        (self.totals(), self.failures())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.resume();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn client(s: &Shared, conn: usize) {
    let mut stream: Option<BufReader<TcpStream>> = None;
    let mut n: u64 = 0;
    while !s.stop.load(Ordering::Relaxed) {
        if s.paused_flag.load(Ordering::Relaxed) {
            stream = None; // close the connection while paused
            let mut st = s.pause.lock().unwrap();
            if st.paused && !s.stop.load(Ordering::Relaxed) {
                st.parked += 1;
                s.cv.notify_all();
                while st.paused && !s.stop.load(Ordering::Relaxed) {
                    st = s.cv.wait(st).unwrap();
                }
                st.parked -= 1;
            }
            continue;
        }
        let (target, expect) = (s.target)(conn, n);
        n += 1;
        let started = Instant::now();
        let reused = stream.is_some();
        let id = |a: u32| format!("c{conn}n{}a{a}", n - 1);
        let mut attempt = 1;
        let mut outcome = exchange(s, &mut stream, &target, &id(1));
        if reused && matches!(outcome, Err(Error::ClosedBeforeResponse(_))) {
            s.unanswered.lock().unwrap().push((id(1), started, Instant::now()));
            s.retried.fetch_add(1, Ordering::Relaxed);
            stream = None;
            attempt = 2;
            outcome = exchange(s, &mut stream, &target, &id(2));
        }
        if outcome.is_err() {
            s.unanswered.lock().unwrap().push((id(attempt), started, Instant::now()));
        }
        let ended = Instant::now();
        let status = outcome.as_ref().ok().map(|(st, _)| *st);
        let what = match outcome {
            Ok((status, body)) => {
                if !(200..300).contains(&status) {
                    Some(format!("HTTP {status}: {}", text_of(&body)))
                } else if expect.as_deref().is_some_and(|e| !body.ends_with(e.as_bytes())) {
                    Some(format!(
                        "wrong body for {target}: {:?}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ))
                } else {
                    None
                }
            }
            Err(e) => {
                stream = None;
                Some(e.to_string())
            }
        };
        match what {
            None => {
                s.ok.fetch_add(1, Ordering::Relaxed);
                let us = ended.duration_since(started).as_micros() as u64;
                s.max_latency_us.fetch_max(us, Ordering::Relaxed);
            }
            Some(what) => {
                s.failures.lock().unwrap().push(Failure { started, ended, conn, target, status, what });
            }
        }
    }
}

enum Error {
    /// The connection was found closed before any byte of the response.
    ClosedBeforeResponse(String),
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::ClosedBeforeResponse(m) => write!(f, "connection closed before the response: {m}"),
            Error::Other(m) => f.write_str(m),
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof)
}

/// One request on `stream` (connecting first when it is None). On success
/// the connection is kept unless the response said to close it.
fn exchange(
    s: &Shared,
    stream: &mut Option<BufReader<TcpStream>>,
    target: &str,
    id: &str,
) -> Result<(u16, Vec<u8>), Error> {
    if stream.is_none() {
        let tcp = TcpStream::connect_timeout(&s.addr, IO_TIMEOUT)
            .map_err(|e| Error::Other(format!("connect {}: {e}", s.addr)))?;
        s.connects.fetch_add(1, Ordering::Relaxed);
        tcp.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| Error::Other(e.to_string()))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| Error::Other(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        *stream = Some(BufReader::with_capacity(16384, tcp));
    }
    let r = stream.as_mut().unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mod_icpquery-soak\r\nX-Soak-Id: {id}\r\n\r\n",
        s.addr
    );
    if let Err(e) = r.get_mut().write_all(req.as_bytes()) {
        return Err(if is_closed(&e) {
            Error::ClosedBeforeResponse(format!("write: {e}"))
        } else {
            Error::Other(format!("write: {e}"))
        });
    }
    // Status line.
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return Err(Error::ClosedBeforeResponse("EOF".into())),
        Ok(_) => {}
        Err(e) if is_closed(&e) => return Err(Error::ClosedBeforeResponse(format!("read: {e}"))),
        Err(e) => return Err(Error::Other(format!("reading the status line: {e}"))),
    }
    let other = |m: String| Error::Other(m);
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| other(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut close) = (None::<usize>, false, false);
    loop {
        let mut h = String::new();
        let n = r.read_line(&mut h).map_err(|e| other(format!("reading headers: {e}")))?;
        if n == 0 {
            return Err(other("EOF in the response head".into()));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| other(format!("bad Content-Length {value:?}")))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.to_ascii_lowercase().contains("close");
            }
        }
    }
    let mut body = Vec::new();
    if status == 204 || status == 304 || (100..200).contains(&status) {
    } else if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).map_err(|e| other(format!("reading a chunk size: {e}")))?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| other(format!("bad chunk size {size:?}")))?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).map_err(|e| other(format!("reading a chunk: {e}")))?;
            if size == 0 {
                break; // (no trailers from our servers)
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = length {
        body.resize(len, 0);
        r.read_exact(&mut body).map_err(|e| other(format!("reading {len} body bytes: {e}")))?;
    } else {
        r.read_to_end(&mut body).map_err(|e| other(format!("reading the body to EOF: {e}")))?;
        close = true;
    }
    if close {
        *stream = None;
    }
    Ok((status, body))
}

/// A response body as one short line of text (HTML tags dropped).
fn text_of(body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(body);
    let (mut out, mut in_tag) = (String::new(), false);
    for ch in raw.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    let text = words.join(" ");
    let text = text.strip_prefix("502 Proxy Error ").unwrap_or(&text).to_string();
    text.chars().take(300).collect()
}
