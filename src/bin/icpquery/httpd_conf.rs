//! Reads the `ICPQuery*` lines of an httpd configuration the way httpd does,
//! so the tool and the module see the same cluster.
//!
//! httpd's reading rules kept here: a `\` at the end of a line joins the next
//! one (an error names the last of the joined lines, as httpd does); lines
//! are trimmed; `#` starts a comment only at the start of a line; `${NAME}`
//! is replaced from `Define` lines, then the environment; directive names
//! are case-insensitive; one-word directives take httpd's quoting
//! (`"..."`, `'...'`, `\"`, `\\`), while `ICPQueryTimeout` and
//! `ICPQueryPeer` get the rest of the line as it stands, quotes included,
//! as the module does (RAW_ARGS). `Include` and `IncludeOptional` resolve
//! relative paths against `ServerRoot`, expand `*`, `?` and `[...]` in any
//! path component (a leading `.` only matches explicitly), take every file
//! of a directory recursively, in byte order, and fail or not on a missing
//! file as httpd does.
//!
//! Values are parsed with `mod_icpquery::config`, so a wrong one reads
//! exactly as `apachectl configtest` says it, prefixed with `file:line`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mod_icpquery::config::{self, ValueError};
use mod_icpquery::engine::carp::Variant;
use mod_icpquery::engine::{Peer, Timeout};

/// httpd's limit on nested `Include`s (AP_MAX_INCLUDE_DEPTH).
const MAX_INCLUDE_DEPTH: usize = 128;

/// What one server (the main one or a virtual host) sets.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub peers: Vec<Peer>,
    pub groups: Vec<SocketAddr>,
    pub timeout: Option<Timeout>,
    pub bind: Option<IpAddr>,
    pub mcast_hops: Option<u32>,
    pub dead_time: Option<Duration>,
    pub carp: Option<Variant>,
}

impl Settings {
    /// A virtual host's view: its peers and groups are added to the main
    /// server's, any other value it sets replaces the main server's.
    fn merged(&self, vhost: &Settings) -> Settings {
        Settings {
            peers: self.peers.iter().chain(&vhost.peers).cloned().collect(),
            groups: self.groups.iter().chain(&vhost.groups).copied().collect(),
            timeout: vhost.timeout.or(self.timeout),
            bind: vhost.bind.or(self.bind),
            mcast_hops: vhost.mcast_hops.or(self.mcast_hops),
            dead_time: vhost.dead_time.or(self.dead_time),
            carp: vhost.carp.or(self.carp),
        }
    }
}

/// A `<VirtualHost>` block.
#[derive(Clone, Debug)]
pub struct VirtualHost {
    /// Its addresses as written (`127.0.0.1:8080`, `*:80`).
    pub addrs: Vec<String>,
    /// `ServerName` (with and without its port) and `ServerAlias` names.
    pub names: Vec<String>,
    pub settings: Settings,
}

/// The `ICPQuery*` settings of a whole configuration.
#[derive(Clone, Debug, Default)]
pub struct HttpdConf {
    pub main: Settings,
    pub vhosts: Vec<VirtualHost>,
    /// `<ICPQueryGroup name>` blocks: independent of the servers' settings.
    pub groups: Vec<(String, Settings)>,
}

impl HttpdConf {
    /// The settings of the main server, or of the virtual host `name` (one
    /// of its addresses, its `ServerName` or a `ServerAlias`) merged with
    /// the main server's as httpd merges them.
    pub fn settings_for(&self, vhost: Option<&str>) -> Result<Settings, String> {
        let Some(name) = vhost else { return Ok(self.main.clone()) };
        if let Some(group) = name.strip_prefix("group:") {
            return match self.groups.iter().find(|(n, _)| n == group) {
                Some((_, settings)) => Ok(settings.clone()),
                None => Err(format!("no <ICPQueryGroup {group}> in the configuration")),
            };
        }
        let found = self.vhosts.iter().find(|v| {
            v.names.iter().any(|n| n.eq_ignore_ascii_case(name)) || v.addrs.iter().any(|a| a.eq_ignore_ascii_case(name))
        });
        match found {
            Some(v) => Ok(self.main.merged(&v.settings)),
            None => Err(format!("no <VirtualHost> has the address, ServerName or ServerAlias \"{name}\"")),
        }
    }
}

/// Where a line is: `file:line`.
#[derive(Clone, Debug)]
struct Location {
    file: PathBuf,
    line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Reads `path` and every file it includes. `server_root` overrides the
/// configuration's `ServerRoot`; without either, relative paths are taken
/// from the directory of `path` (where Debian's ServerRoot, /etc/apache2,
/// holds apache2.conf). The error is one line: `file:line: message`.
pub fn read(path: &Path, server_root: Option<&Path>) -> Result<HttpdConf, String> {
    let file = absolute(path);
    let mut reader = Reader {
        server_root: server_root
            .map(absolute)
            .unwrap_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"))),
        root_fixed: server_root.is_some(),
        defines: HashMap::new(),
        conf: HttpdConf::default(),
    };
    reader.read_file(&file, Context::default(), 0).map_err(|e| e.to_string())?;
    Ok(reader.conf)
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// A configuration error, located.
struct ConfError {
    at: Option<Location>,
    message: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{at}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Where a directive sits.
#[derive(Clone, Default)]
struct Context {
    /// Inside this virtual host (index into `HttpdConf::vhosts`).
    vhost: Option<usize>,
    /// Inside this cache group (index into `HttpdConf::groups`).
    group: Option<usize>,
    /// Inside a per-directory section (`<Directory>`, `<Location>` …),
    /// where server directives are refused: its name.
    directory_section: Option<String>,
}

/// An open section in the file being read.
struct Open {
    /// As written after `<`, for matching the close (case-insensitive).
    name: String,
    outer: Context,
    /// A conditional section whose condition does not hold: its lines are
    /// skipped up to the matching close.
    skipped: bool,
    /// Where it was opened.
    line: usize,
}

struct Reader {
    server_root: PathBuf,
    /// `--server-root` was given: `ServerRoot` lines do not move it.
    root_fixed: bool,
    defines: HashMap<String, String>,
    conf: HttpdConf,
}

impl Reader {
    fn read_file(&mut self, path: &Path, context: Context, depth: usize) -> Result<(), ConfError> {
        let bytes = std::fs::read(path).map_err(|e| ConfError {
            at: None,
            message: format!("Could not open configuration file {}: {}", path.display(), io_text(&e)),
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let mut context = context;
        let mut open: Vec<Open> = Vec::new();
        let mut skip_depth = 0usize; // nested sections inside a skipped one
        for (line_no, line) in logical_lines(&text) {
            let at = Location { file: path.to_path_buf(), line: line_no };
            let err = |message: String| ConfError { at: Some(at.clone()), message };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = if line.contains("${") { self.substitute(&line) } else { line };
            let mut rest = line.as_str();
            let name = getword_conf(&mut rest);
            let lower = name.to_ascii_lowercase();

            if open.last().is_some_and(|o| o.skipped) {
                if lower.starts_with("</") {
                    if skip_depth == 0 {
                        let o = open.pop().expect("an open section");
                        context = o.outer;
                    } else {
                        skip_depth -= 1;
                    }
                } else if lower.starts_with('<') {
                    skip_depth += 1;
                }
                continue;
            }

            if let Some(closing) = lower.strip_prefix("</") {
                let closing = closing.trim_end_matches('>');
                let shown = name[2..].trim_end_matches('>');
                match open.pop() {
                    Some(o) if o.name.eq_ignore_ascii_case(closing) => context = o.outer,
                    Some(o) => return Err(err(format!("Expected </{}> but saw </{shown}>", o.name))),
                    None => return Err(err(format!("</{shown}> without matching <{shown}> section"))),
                }
                continue;
            }
            if let Some(section) = name.strip_prefix('<') {
                let args = rest.trim_end().strip_suffix('>').unwrap_or(rest).trim();
                let section = section.trim_end_matches('>').to_string();
                let outer = context.clone();
                let skipped = match section.to_ascii_lowercase().as_str() {
                    "virtualhost" => {
                        self.conf.vhosts.push(VirtualHost {
                            addrs: args.split_whitespace().map(str::to_string).collect(),
                            names: Vec::new(),
                            settings: Settings::default(),
                        });
                        context.vhost = Some(self.conf.vhosts.len() - 1);
                        false
                    }
                    "icpquerygroup" => {
                        self.conf.groups.push((args.to_string(), Settings::default()));
                        context.group = Some(self.conf.groups.len() - 1);
                        false
                    }
                    s @ ("ifmodule" | "ifdefine" | "ifversion" | "iffile" | "ifdirective" | "ifsection") => {
                        !self.condition(s, args)
                    }
                    // mod_macro's bodies only run where a Use line expands them.
                    "macro" => true,
                    _ => {
                        context.directory_section = Some(section.clone());
                        false
                    }
                };
                open.push(Open { name: section, outer, skipped, line: line_no });
                skip_depth = 0;
                continue;
            }

            match lower.as_str() {
                "serverroot" if !self.root_fixed => {
                    let dir = one_word("ServerRoot", rest).map_err(err)?;
                    self.server_root = absolute(Path::new(&dir));
                }
                "define" => {
                    let var = getword_conf(&mut rest);
                    let value = getword_conf(&mut rest);
                    self.defines.insert(var, value);
                }
                "undefine" => {
                    self.defines.remove(&getword_conf(&mut rest));
                }
                "servername" | "serveralias" => {
                    if let Some(v) = context.vhost {
                        let names = &mut self.conf.vhosts[v].names;
                        let mut words = rest;
                        loop {
                            let word = getword_conf(&mut words);
                            if word.is_empty() {
                                break;
                            }
                            // ServerName may carry a scheme and a port.
                            let bare = word.split_once("://").map_or(word.as_str(), |(_, h)| h).to_string();
                            if let Some((host, port)) = bare.rsplit_once(':') {
                                let v6_or_plain = !host.contains(':') || host.ends_with(']');
                                if v6_or_plain && port.bytes().all(|b| b.is_ascii_digit()) {
                                    names.push(host.to_string());
                                }
                            }
                            names.push(bare);
                        }
                    }
                }
                "include" | "includeoptional" => {
                    let pattern =
                        one_word(if lower == "include" { "Include" } else { "IncludeOptional" }, rest).map_err(err)?;
                    let optional = lower == "includeoptional";
                    let files = self.expand_include(&pattern, optional).map_err(err)?;
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        return Err(err(format!(
                            "Exceeded the maximum include directory nesting level of {MAX_INCLUDE_DEPTH}. \
                             You have probably a recursion somewhere."
                        )));
                    }
                    for file in files {
                        match self.read_file(&file, context.clone(), depth + 1) {
                            Ok(()) => {}
                            // The innermost location is the useful one.
                            Err(e) if e.at.is_some() => return Err(e),
                            Err(e) => return Err(err(e.message)),
                        }
                    }
                }
                d if d.starts_with("icpquery") => self.directive(&name, rest, &context).map_err(err)?,
                _ => {}
            }
        }
        if let Some(o) = open.last() {
            let at = Location { file: path.to_path_buf(), line: o.line };
            return Err(ConfError { at: Some(at), message: format!("<{}> was not closed.", o.name) });
        }
        Ok(())
    }

    /// Applies one `ICPQuery*` directive; others of the family are the
    /// module's business only and are not read.
    fn directive(&mut self, name: &str, raw: &str, context: &Context) -> Result<(), String> {
        let lower = name.to_ascii_lowercase();
        let canonical = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(&lower));
        let Some(&canonical) = canonical else { return Ok(()) };
        if let Some(section) = &context.directory_section {
            return Err(format!("{canonical} not allowed in <{section}> context"));
        }
        let settings = match (context.group, context.vhost) {
            (Some(g), _) => &mut self.conf.groups[g].1,
            (None, Some(v)) => &mut self.conf.vhosts[v].settings,
            (None, None) => &mut self.conf.main,
        };
        let e = |e: ValueError| e.to_string();
        match canonical {
            // RAW_ARGS in the module: the rest of the line, quotes and all.
            "ICPQueryTimeout" => settings.timeout = Some(config::timeout(raw).map_err(e)?),
            "ICPQueryPeer" => settings.peers.push(config::peer(raw).map_err(e)?),
            "ICPQueryMapper" => {
                let mut rest = raw;
                let w = getword_conf(&mut rest);
                if !w.eq_ignore_ascii_case("on") && !w.eq_ignore_ascii_case("off") {
                    return Err("ICPQueryMapper must be On or Off".to_string());
                }
            }
            _ => {
                let value = one_word(canonical, raw)?;
                match canonical {
                    "ICPQueryBindAddr" => settings.bind = Some(config::bind_addr(&value).map_err(e)?),
                    "ICPQueryMCastAddr" => settings.groups.push(config::mcast_group(&value).map_err(e)?),
                    "ICPQueryMCastHops" => settings.mcast_hops = Some(config::mcast_hops(&value).map_err(e)?),
                    "ICPQueryDeadTime" => settings.dead_time = Some(config::dead_time(&value).map_err(e)?),
                    "ICPQueryProbeInterval" => drop(config::probe_interval(&value).map_err(e)?),
                    "ICPQueryLogLevel" => drop(config::log_level(&value).map_err(e)?),
                    "ICPQueryCARP" => settings.carp = Some(config::carp_variant(&value).map_err(e)?),
                    _ => {} // ICPQueryLog: any path
                }
            }
        }
        Ok(())
    }

    /// Whether the condition of `<IfModule>`, `<IfDefine>`, `<IfFile>` …
    /// holds, as far as a reader without a running httpd can tell: `Define`d
    /// names and the file system are checked; modules, versions and
    /// directives are taken as present (so `!` conditions on them fail).
    fn condition(&self, section: &str, args: &str) -> bool {
        let mut rest = args;
        let word = getword_conf(&mut rest);
        let (negated, what) = match word.strip_prefix('!') {
            Some(w) => (true, w.to_string()),
            None => (false, word),
        };
        let holds = match section {
            "ifdefine" => self.defines.contains_key(&what),
            "iffile" => {
                let p = Path::new(&what);
                if p.is_absolute() {
                    p.exists()
                } else {
                    self.server_root.join(p).exists()
                }
            }
            _ => true,
        };
        holds != negated
    }

    /// `${NAME}` from `Define`, then the environment; unknown ones stay as
    /// written (httpd warns and does the same).
    fn substitute(&self, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let var = &after[..end];
                    match self.defines.get(var).cloned().or_else(|| std::env::var(var).ok()) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&rest[start..start + 2 + end + 1]),
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The files an `Include` names, in the order httpd reads them.
    fn expand_include(&self, pattern: &str, optional: bool) -> Result<Vec<PathBuf>, String> {
        let path =
            if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { self.server_root.join(pattern) };
        let mut files = Vec::new();
        if !has_wildcard(&path.to_string_lossy()) {
            if optional && !path.exists() {
                return Ok(files);
            }
            collect(&path, &mut files)?;
            return Ok(files);
        }
        // Walk the components: fixed ones are joined, wildcard ones matched
        // against the directory listing (directories only, but for the last).
        let components: Vec<String> = path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let mut bases = vec![PathBuf::new()];
        for (i, component) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            let mut next = Vec::new();
            for base in &bases {
                if !has_wildcard(component) {
                    next.push(base.join(component));
                    continue;
                }
                let entries = match std::fs::read_dir(base) {
                    Ok(entries) => entries,
                    Err(_) if optional => continue,
                    Err(e) => {
                        return Err(format!(
                            "Include/IncludeOptional: Could not open directory {}: {}",
                            base.display(),
                            io_text(&e)
                        ))
                    }
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| fnmatch(component.as_bytes(), n.as_bytes()))
                    .collect();
                names.sort();
                let before = next.len();
                next.extend(names.into_iter().map(|n| base.join(n)).filter(|p| last || p.is_dir()));
                if next.len() == before && !optional {
                    return Err(format!(
                        "Include/IncludeOptional: No matches for the wildcard '{component}' in '{}', failing",
                        base.display()
                    ));
                }
            }
            bases = next;
        }
        for p in bases {
            if optional && !p.exists() {
                continue;
            }
            collect(&p, &mut files)?;
        }
        Ok(files)
    }
}

/// Directives read here, with the case the module registers them in.
const KNOWN: [&str; 11] = [
    "ICPQueryMapper",
    "ICPQueryTimeout",
    "ICPQueryDeadTime",
    "ICPQueryProbeInterval",
    "ICPQueryLog",
    "ICPQueryLogLevel",
    "ICPQueryBindAddr",
    "ICPQueryPeer",
    "ICPQueryMCastAddr",
    "ICPQueryMCastHops",
    "ICPQueryCARP",
];

/// A file, or every file under a directory (recursively, in byte order).
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| {
                format!("Include/IncludeOptional: Could not open directory {}: {}", path.display(), io_text(&e))
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            collect(&entry, out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// An OS error without Rust's " (os error N)" tail, as httpd prints it.
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `fnmatch(3)` with FNM_PERIOD: `*`, `?`, `[...]` (`!` or `^` negates,
/// ranges), `\` escapes; a leading `.` must be matched by a literal `.`.
fn fnmatch(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    glob(pattern, name)
}

fn glob(p: &[u8], n: &[u8]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => (0..=n.len()).any(|skip| glob(&p[1..], &n[skip..])),
        Some(b'?') => !n.is_empty() && glob(&p[1..], &n[1..]),
        Some(b'[') => {
            let Some((&c, rest_n)) = n.split_first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(i), Some(b'!' | b'^'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                let lo = p[i];
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
                    matched |= lo <= c && c <= p[i + 2];
                    i += 3;
                } else {
                    matched |= lo == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal '['.
                return c == b'[' && glob(&p[1..], rest_n);
            }
            matched != negate && glob(&p[i + 1..], rest_n)
        }
        Some(b'\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && glob(&p[1..], &n[1..]),
    }
}

/// The file's lines as httpd reads them: `\` + newline joins the next line
/// (a `\\` at the end does not), each result trimmed; numbered by the last
/// physical line it spans.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for (i, physical) in text.split('\n').enumerate() {
        let physical = physical.strip_suffix('\r').unwrap_or(physical);
        let b = physical.as_bytes();
        let continued = b.len() >= 2 && b[b.len() - 1] == b'\\' && b[b.len() - 2] != b'\\';
        if continued {
            pending.push_str(&physical[..physical.len() - 1]);
            continue;
        }
        pending.push_str(physical);
        out.push((i + 1, pending.trim().to_string()));
        pending.clear();
    }
    if !pending.is_empty() {
        let n = text.split('\n').count();
        out.push((n, pending.trim().to_string()));
    }
    out
}

/// httpd's `ap_getword_conf`: the next word, unquoted (`"..."` or
/// `'...'`, inside which `\` escapes the quote and `\\` is one `\`), and
/// `line` moved past it and the blanks after it. `""` at the end.
pub fn getword_conf(line: &mut &str) -> String {
    let s = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        *line = s;
        return String::new();
    }
    let (word, end) = match bytes[0] {
        quote @ (b'"' | b'\'') => {
            let mut i = 1;
            while i < bytes.len() && bytes[i] != quote {
                if bytes[i] == b'\\' && i + 1 < bytes.len() && (bytes[i + 1] == quote || bytes[i + 1] == b'\\') {
                    i += 2;
                } else {
                    i += 1;
                }
            }
            let word = unescape(&s[1..i], Some(quote));
            (word, if i < bytes.len() { i + 1 } else { i })
        }
        _ => {
            let end = bytes.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(bytes.len());
            (unescape(&s[..end], None), end)
        }
    };
    *line = s[end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
    word
}

/// httpd's `substring_conf`: `\\` → `\`, and `\<quote>` → `<quote>` inside
/// quotes.
fn unescape(s: &str, quote: Option<u8>) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'\\' || Some(b[i + 1]) == quote) {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The single argument of a TAKE1 directive, or httpd's refusal.
fn one_word(directive: &str, raw: &str) -> Result<String, String> {
    let mut rest = raw;
    let word = getword_conf(&mut rest);
    if word.is_empty() || !rest.is_empty() {
        return Err(format!("{directive} takes one argument"));
    }
    Ok(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_unquote_like_httpd() {
        let mut line = r#" "a b" 'c\'d' e\\f "g\"h"  "#;
        assert_eq!(getword_conf(&mut line), "a b");
        assert_eq!(getword_conf(&mut line), "c'd");
        assert_eq!(getword_conf(&mut line), "e\\f");
        assert_eq!(getword_conf(&mut line), "g\"h");
        assert_eq!(getword_conf(&mut line), "");
    }

    #[test]
    fn continuation_lines_join_and_take_the_last_number() {
        let lines = logical_lines("a \\\n  b\nc\\\\\nd\n");
        assert_eq!(lines[0], (2, "a   b".to_string()));
        assert_eq!(lines[1], (3, "c\\\\".to_string()));
        assert_eq!(lines[2], (4, "d".to_string()));
    }

    #[test]
    fn fnmatch_forms() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b".a.conf"));
        assert!(fnmatch(b".*", b".a"));
        assert!(fnmatch(b"a?[0-9][!x]", b"ab3y"));
        assert!(!fnmatch(b"a?[0-9][!x]", b"ab3x"));
        assert!(fnmatch(b"[]]", b"]"));
    }
}
