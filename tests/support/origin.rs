//! The "application server": a small HTTP/1.1 origin on threads inside the
//! test process. Every GET gets 200 with `Cache-Control: public,
//! max-age=3600`, `X-Origin: <ip>` and the body `origin <ip> <path?query>\n`
//! (padded with filler lines to a fixed length when started with
//! `start_with_body_len`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    /// Requests answered, by request target (path?query).
    counts: Mutex<HashMap<String, usize>>,
    /// Open connections, to shut them down on Drop.
    conns: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stopping: AtomicBool,
    /// Pad every 200 body to at least this many bytes (0: no padding).
    body_len: usize,
}

pub struct Origin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Origin {
    /// Bind `addr` (e.g. 127.0.<net>.2:8001) and serve until dropped.
    pub fn start(addr: SocketAddr) -> Origin {
        Origin::start_with_body_len(addr, 0)
    }

    /// Like `start`, but every 200 body is padded to at least `body_len`
    /// bytes: the usual first line, then filler lines of `.` (0: no padding).
    pub fn start_with_body_len(addr: SocketAddr, body_len: usize) -> Origin {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("origin: cannot listen on {addr}: {e}"));
        let shared = Arc::new(Shared { body_len, ..Shared::default() });
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("origin {addr}"))
            .spawn(move || accept_loop(listener, addr, sh))
            .expect("spawn origin thread");
        Origin { addr, shared, acceptor: Some(acceptor) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered for `path`: with a `?`, those for exactly that
    /// target; without, those for that path with any (or no) query string.
    pub fn requests(&self, path: &str) -> usize {
        let counts = self.shared.counts.lock().unwrap();
        if path.contains('?') {
            counts.get(path).copied().unwrap_or(0)
        } else {
            counts.iter().filter(|(t, _)| t.split('?').next() == Some(path)).map(|(_, n)| n).sum()
        }
    }

    /// All requests answered so far.
    pub fn total(&self) -> usize {
        self.shared.counts.lock().unwrap().values().sum()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); it sees `stopping` and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        // No new connections now; end the open ones (e.g. Squid's idle
        // persistent connections) and wait for their threads.
        for (_, c) in self.shared.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = self.shared.workers.lock().unwrap().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let ip = addr.ip().to_string();
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        shared.conns.lock().unwrap().insert(id, clone);
        let sh = shared.clone();
        let ip = ip.clone();
        let handle = std::thread::spawn(move || {
            let _ = serve_connection(stream, &ip, &sh);
            sh.conns.lock().unwrap().remove(&id);
        });
        let mut workers = shared.workers.lock().unwrap();
        workers.retain(|w| !w.is_finished());
        workers.push(handle);
    }
}

/// Serve requests on one connection until the client closes, asks to close,
/// or sends something we do not handle.
fn serve_connection(stream: TcpStream, ip: &str, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        // Request line; EOF between requests is a normal close.
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            continue; // tolerated CRLF between requests
        }
        let mut parts = line.split(' ');
        let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v)) if v.starts_with("HTTP/1.") => (m.to_string(), t.to_string(), v.to_string()),
            _ => return respond(&mut writer, 400, "Bad Request", ip, b"bad request line\n", false, false),
        };
        // Headers.
        let mut content_length = 0usize;
        let mut chunked = false;
        let mut conn_header = String::new();
        let mut head_bytes = 0usize;
        loop {
            let mut h = String::new();
            let n = reader.read_line(&mut h)?;
            head_bytes += n;
            if n == 0 || head_bytes > 64 * 1024 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = value.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = !value.eq_ignore_ascii_case("identity"),
                    "connection" => conn_header = value.to_ascii_lowercase(),
                    _ => {}
                }
            }
        }
        if chunked {
            return respond(&mut writer, 411, "Length Required", ip, b"chunked bodies not supported\n", false, false);
        }
        // Discard a request body.
        std::io::copy(&mut (&mut reader).take(content_length as u64), &mut std::io::sink())?;

        let keep_alive =
            if version == "HTTP/1.0" { conn_header.contains("keep-alive") } else { !conn_header.contains("close") };
        *shared.counts.lock().unwrap().entry(target.clone()).or_insert(0) += 1;
        let body = pad_body(format!("origin {ip} {target}\n"), shared.body_len);
        respond(&mut writer, 200, "OK", ip, body.as_bytes(), method == "HEAD", keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// `body` followed by lines of `.` (64 bytes each, the last one shorter)
/// up to `len` bytes; unchanged when it is already that long.
fn pad_body(mut body: String, len: usize) -> String {
    while body.len() < len {
        let line = (len - body.len()).min(64);
        body.push_str(&".".repeat(line - 1));
        body.push('\n');
    }
    body
}

fn respond(
    w: &mut TcpStream,
    status: u16,
    reason: &str,
    ip: &str,
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nDate: {}\r\nServer: test-origin\r\n",
        http_date(std::time::SystemTime::now())
    );
    if status == 200 {
        out.push_str("Cache-Control: public, max-age=3600\r\n");
    }
    out.push_str(&format!(
        "X-Origin: {ip}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    w.write_all(&bytes)?;
    w.flush()
}

/// RFC 9110 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
pub fn http_date(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        day,
        MON[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
