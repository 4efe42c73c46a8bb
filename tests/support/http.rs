//! A minimal HTTP/1.1 client over std `TcpStream`: one request per
//! connection (`Connection: close`), bounded connect/read time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header called `name`, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Squid's verdict, e.g. `Some("HIT from squid3")`.
    pub fn x_cache(&self) -> Option<&str> {
        self.header("X-Cache")
    }

    /// The origin that produced the body, e.g. `Some("127.0.0.2")`.
    pub fn x_origin(&self) -> Option<&str> {
        self.header("X-Origin")
    }

    /// The cache named in X-Cache ("squid3"), if any.
    pub fn cache_name(&self) -> Option<&str> {
        self.x_cache().and_then(|v| v.split(" from ").nth(1)).map(str::trim)
    }

    pub fn is_hit(&self) -> bool {
        self.x_cache().is_some_and(|v| v.starts_with("HIT"))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// One short description of who answered: "HIT from squid3",
    /// "origin 127.0.0.2", or "-".
    pub fn served_by(&self) -> String {
        match (self.x_cache(), self.x_origin()) {
            (Some(c), _) => c.to_string(),
            (None, Some(o)) => format!("origin {o}"),
            (None, None) => "-".to_string(),
        }
    }
}

/// GET `path_and_query` from `addr`; panics with the reason on failure.
pub fn get(addr: SocketAddr, path_and_query: &str) -> Response {
    try_get(addr, path_and_query).unwrap_or_else(|e| panic!("GET http://{addr}{path_and_query} failed: {e}"))
}

pub fn try_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<Response> {
    request(addr, "GET", path_and_query, &[])
}

/// Send one request with extra headers (Host and Connection are added unless
/// given) and read the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    request_with_body(addr, method, path_and_query, headers, &[])
}

/// Like `request`, sending `body` after the head; `Content-Length` is added
/// (unless given) when the body is not empty or the method is POST/PUT.
pub fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let has = |n: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
    let mut req = format!("{method} {path_and_query} HTTP/1.1\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("connection") {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("User-Agent: mod_icpquery-tests\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !has("content-length") && (!body.is_empty() || method == "POST" || method == "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;

    // Read to EOF (we asked the server to close), bounded overall.
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if Instant::now() > deadline {
            return Err(err(format!("response not complete after {READ_TIMEOUT:?}")));
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A reset after a complete response still gives us the response.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    parse_response(&raw, method == "HEAD")
}

fn err(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| err(format!("no complete response head in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| err(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let body = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| err(format!("bad Content-Length {len:?}")))?;
        if rest.len() < len {
            return Err(err(format!("body truncated: {} of {len} bytes", rest.len())));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| err("truncated chunk size".into()))?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| err(format!("bad chunk size {size_text:?}")))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(err("truncated chunk".into()));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
