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
use std::path::{Path, PathBuf};

use mod_icpquery::settings::directives::{Args, Directive, Id, Scope as Allowed};
use mod_icpquery::settings::pac::PacSettings;
use mod_icpquery::settings::resolve::SystemResolver;
use mod_icpquery::settings::{self, values, Settings};

use crate::conf_syntax::{fnmatch, getword_conf, has_wildcard, logical_lines, one_word, take1};

/// httpd's limit on nested `Include`s (AP_MAX_INCLUDE_DEPTH).
const MAX_INCLUDE_DEPTH: usize = 128;

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
    /// the main server's by the module's own rule ([`Settings::inherit`]).
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
            Some(v) => Ok(Settings::inherit(&self.main, &v.settings)),
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
    reader.read_file(&file, Scope::default(), 0).map_err(|e| e.to_string())?;
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
struct Scope {
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
    outer: Scope,
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
    fn read_file(&mut self, path: &Path, context: Scope, depth: usize) -> Result<(), ConfError> {
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
                        let name = values::group_name(rest).map_err(err)?;
                        self.conf.groups.push((name.to_string(), Settings::group()));
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
                    let dir = take1("ServerRoot", rest).map_err(err)?;
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
                        take1(if lower == "include" { "Include" } else { "IncludeOptional" }, rest).map_err(err)?;
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

    /// Applies one `ICPQuery*` directive, reading its arguments as httpd
    /// does for its form (see [`Args`]); unknown names of the family are
    /// left to httpd to refuse.
    fn directive(&mut self, name: &str, raw: &str, context: &Scope) -> Result<(), String> {
        let Some(directive) = Directive::named(name).filter(|d| d.args != Args::Section) else { return Ok(()) };
        if directive.scope == Allowed::Directory {
            // How a handler serves the caches, not which they are: checked
            // as configtest checks it, then left out of the settings.
            let value = match directive.args {
                Args::One => one_word(raw).ok_or_else(|| {
                    format!("{} takes one argument, {}", directive.name(), directive.help.to_string_lossy())
                })?,
                _ => raw.to_string(),
            };
            return PacSettings::default().apply(directive.id, &value).map_err(|e| e.to_string());
        }
        if let Some(section) = &context.directory_section {
            return Err(format!("{} not allowed in <{section}> context", directive.name()));
        }
        let value = match directive.args {
            // The rest of the line, quotes and all.
            Args::Raw | Args::Section => raw.to_string(),
            Args::Flag => match one_word(raw) {
                Some(w) if w.eq_ignore_ascii_case("on") || w.eq_ignore_ascii_case("off") => w,
                _ => return Err(format!("{} must be On or Off", directive.name())),
            },
            Args::One => one_word(raw).ok_or_else(|| {
                format!("{} takes one argument, {}", directive.name(), directive.help.to_string_lossy())
            })?,
        };
        let settings = match (context.group, context.vhost) {
            (Some(g), _) => &mut self.conf.groups[g].1,
            (None, Some(v)) => &mut self.conf.vhosts[v].settings,
            (None, None) => &mut self.conf.main,
        };
        let root = &self.server_root;
        let cx = settings::Context {
            resolver: &SystemResolver,
            server_relative: &|path| Some(if Path::new(path).is_absolute() { path.into() } else { root.join(path) }),
        };
        debug_assert!(directive.id != Id::Group);
        settings.apply(directive.id, &value, &cx).map_err(|e| e.to_string())
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
