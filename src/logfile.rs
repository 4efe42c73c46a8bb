//! The module's own log (`ICPQueryLog`): one line per event.
//!
//! Lines carry untrusted bytes (URLs from request lines), so every byte
//! outside printable ASCII is escaped: a request can never start a line of
//! its own. Each line is written with one `write(2)` on a file opened with
//! `O_APPEND`, so the lines of many httpd processes never interleave.
//!
//! A piped log (`ICPQueryLog "|program"`) gets the same single `write(2)` per
//! line on the pipe, which POSIX makes atomic only up to `PIPE_BUF` bytes:
//! there a longer line is cut to [`PIPE_BUF`] bytes, ending in
//! [`TRUNCATED`], so it still never mixes with another process's line.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// `ICPQueryLogLevel` values.
pub mod level {
    pub const PROBLEM: u8 = 0;
    pub const RESULT: u8 = 1;
    pub const INFO: u8 = 2;
    pub const DEBUG: u8 = 3;
}

/// Lines written to a pipe never exceed this (Linux's and POSIX's minimum
/// `PIPE_BUF`): writes up to it are atomic.
pub const PIPE_BUF: usize = 4096;

/// How a line cut to fit [`PIPE_BUF`] ends.
pub const TRUNCATED: &str = " ...[truncated]\n";

/// Where lines go: an append-only file, or the write end of a pipe to a
/// logging program. Cheap to clone; clones share the descriptor.
#[derive(Clone)]
pub struct Sink {
    file: Arc<File>,
    /// `Some(PIPE_BUF)` for a pipe.
    max_line: Option<usize>,
}

impl Sink {
    /// A file opened for appending (see [`LogFile::open_file`]).
    pub fn file(file: File) -> Sink {
        Sink { file: Arc::new(file), max_line: None }
    }

    /// The write end of a pipe (this `File` owns its own descriptor; closing
    /// it leaves the pipe open for everyone else holding it).
    pub fn pipe(file: File) -> Sink {
        Sink { file: Arc::new(file), max_line: Some(PIPE_BUF) }
    }

    pub fn is_pipe(&self) -> bool {
        self.max_line.is_some()
    }
}

pub struct LogFile {
    /// Shared by every server (virtual host) that names the same path.
    sink: Sink,
    level: u8,
}

impl LogFile {
    pub fn open(path: &Path, level: u8) -> io::Result<LogFile> {
        Ok(LogFile::new(Sink::file(LogFile::open_file(path)?), level))
    }

    /// Opens `path` for appending, creating it if needed.
    pub fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).create(true).open(path)
    }

    pub fn new(sink: Sink, level: u8) -> LogFile {
        LogFile { sink, level }
    }

    pub fn is_pipe(&self) -> bool {
        self.sink.is_pipe()
    }

    /// Whether a message of `level` would be written; lets callers skip
    /// formatting on the hot path.
    pub fn enabled(&self, level: u8) -> bool {
        level <= self.level
    }

    /// Writes one line. A failed write is dropped: losing a log line must
    /// never fail a request.
    pub fn write(&self, level: u8, message: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        let mut line = format_line(SystemTime::now(), std::process::id(), level, message);
        if let Some(max) = self.sink.max_line {
            fit_line(&mut line, max);
        }
        // One write(2) (write_all only retries after EINTR, or after a short
        // write, which a pipe never does for ≤ PIPE_BUF bytes).
        let _ = (&*self.sink.file).write_all(line.as_bytes());
    }
}

/// Cuts `line` (which ends in `\n`) to at most `max` bytes, ending it with
/// [`TRUNCATED`], at a character boundary.
pub fn fit_line(line: &mut String, max: usize) {
    if line.len() <= max {
        return;
    }
    let mut cut = max.saturating_sub(TRUNCATED.len());
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    line.push_str(TRUNCATED);
}

/// `2026-11-23T01:17:37.123456Z [icpquery:2] [pid 4242] message\n`
pub fn format_line(now: SystemTime, pid: u32, level: u8, message: fmt::Arguments<'_>) -> String {
    let mut line = format!("{} [icpquery:{level}] [pid {pid}] ", Timestamp(now));
    let start = line.len();
    fmt::write(&mut line, message).expect("formatting into a String cannot fail");
    // The message is ours, but a caller could still pass text with a line
    // break in it: never let one through.
    if line[start..].contains(['\n', '\r']) {
        let cleaned = line[start..].replace('\n', "\\n").replace('\r', "\\r");
        line.truncate(start);
        line.push_str(&cleaned);
    }
    line.push('\n');
    line
}

/// Untrusted bytes shown safely: printable ASCII as is, `\` and `"` and every
/// other byte as `\xHH` (as httpd's own access log does).
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
                f.write_str(std::str::from_utf8(&[b]).expect("ASCII"))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// UTC, microseconds, ISO 8601.
struct Timestamp(SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            since.subsec_micros()
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm, valid for every date a clock can show).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn escapes_everything_that_could_forge_or_garble_a_line() {
        let url = b"http://x/a b\r\n2026-01-01 [icpquery:0] forged\x00\xff\"\\";
        let shown = Escaped(url).to_string();
        assert_eq!(shown, "http://x/a b\\x0d\\x0a2026-01-01 [icpquery:0] forged\\x00\\xff\\x22\\x5c");
        assert!(shown.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn line_format() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_396_657_123_456);
        let line = format_line(t, 42, 2, format_args!("ICP_OP_HIT from {}", "127.0.0.2:3130"));
        assert_eq!(line, "2026-11-23T01:17:37.123456Z [icpquery:2] [pid 42] ICP_OP_HIT from 127.0.0.2:3130\n");
    }

    #[test]
    fn a_message_with_a_line_break_stays_one_line() {
        let line = format_line(UNIX_EPOCH, 1, 0, format_args!("a\nb\rc"));
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("a\\nb\\rc\n"), "{line}");
    }

    #[test]
    fn long_lines_are_cut_to_pipe_buf_and_short_ones_kept() {
        let mut short = format_line(UNIX_EPOCH, 1, 0, format_args!("short"));
        let kept = short.clone();
        fit_line(&mut short, PIPE_BUF);
        assert_eq!(short, kept);

        let key = "\u{e9}x".repeat(5000); // multi-byte characters across the cut
        for max in [PIPE_BUF, PIPE_BUF - 1, 100] {
            let mut line = format_line(UNIX_EPOCH, 1, 0, format_args!("key {key}"));
            fit_line(&mut line, max);
            assert!(line.len() <= max && line.len() > max - 4, "{}", line.len());
            assert!(line.ends_with(TRUNCATED));
            assert_eq!(line.matches('\n').count(), 1);
        }
        let mut exact = "a".repeat(PIPE_BUF - 1) + "\n";
        fit_line(&mut exact, PIPE_BUF);
        assert_eq!(exact.len(), PIPE_BUF);
        assert!(!exact.ends_with(TRUNCATED));
    }

    #[test]
    fn a_piped_sink_writes_whole_lines_of_at_most_pipe_buf() {
        use std::io::Read;
        use std::os::unix::net::UnixStream;
        // A socket pair stands in for the pipe: same one-write-per-line check.
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(ours));
        let log = LogFile::new(Sink::pipe(file), level::DEBUG);
        assert!(log.is_pipe());
        log.write(level::PROBLEM, format_args!("{}", "k".repeat(70_000)));
        log.write(level::PROBLEM, format_args!("after"));
        drop(log);
        let mut text = String::new();
        theirs.read_to_string(&mut text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len() + 1, PIPE_BUF);
        assert!(lines[0].ends_with(TRUNCATED.trim_end()));
        assert!(lines[1].ends_with("] after"));
    }

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(Timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)).to_string(), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn levels_filter_and_lines_append() {
        let dir = std::env::temp_dir().join(format!("icpquery-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("icpquery.log");
        let log = LogFile::open(&path, level::RESULT).unwrap();
        log.write(level::PROBLEM, format_args!("problem"));
        log.write(level::RESULT, format_args!("result"));
        log.write(level::INFO, format_args!("info"));
        drop(log);
        LogFile::open(&path, level::DEBUG).unwrap().write(level::DEBUG, format_args!("again"));
        let text = std::fs::read_to_string(&path).unwrap();
        let messages: Vec<&str> = text.lines().map(|l| l.rsplit("] ").next().unwrap()).collect();
        assert_eq!(messages, ["problem", "result", "again"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
