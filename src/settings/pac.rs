//! What the per-directory `ICPQueryPAC*` directives say: which caches the
//! `icpquery-pac` handler of a `<Location>` serves the PAC file of, on
//! which proxy port, and what follows them. Plain Rust, so the tool's
//! configuration reader checks the values exactly as configtest does.
//!
//! The values are named like the options of `icpquery pac`
//! (`--proxy-port`, `--fallback`), and the fallback is read by the same
//! parser ([`routes`]).

use super::directives::Id;
use super::values::{group_name, ValueError};
use super::Refusal;

/// `ICPQueryPACProxyPort` when not set, for a server's or group's peers
/// (a balancer's members are reached on the port of their own URL).
pub const DEFAULT_PROXY_PORT: u16 = 3128;

/// `ICPQueryPACFallback` when not set.
pub const DEFAULT_FALLBACK: &str = "DIRECT";

/// Whose caches: `ICPQueryPACCaches server|group NAME|balancer NAME`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PacCaches {
    /// The peers of the server (or virtual host) the request is served by.
    #[default]
    Server,
    /// The peers of `<ICPQueryGroup NAME>`.
    Group(String),
    /// The members of `balancer://NAME` (lowercased, as mod_proxy keeps it).
    Balancer(String),
}

/// What one directory section (or a server's defaults) says; `None` is
/// "not said here".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacSettings {
    pub caches: Option<PacCaches>,
    pub proxy_port: Option<u16>,
    pub fallback: Option<String>,
}

impl PacSettings {
    /// httpd's rule for directory sections: what the inner (later) section
    /// says replaces what the outer one says, value by value.
    pub fn merge(base: &PacSettings, add: &PacSettings) -> PacSettings {
        PacSettings {
            caches: add.caches.clone().or_else(|| base.caches.clone()),
            proxy_port: add.proxy_port.or(base.proxy_port),
            fallback: add.fallback.clone().or_else(|| base.fallback.clone()),
        }
    }

    /// Applies one `ICPQueryPAC*` directive's value (one word, unquoted by
    /// httpd, or for `ICPQueryPACCaches` the rest of the line).
    pub fn apply(&mut self, id: Id, value: &str) -> Result<(), Refusal> {
        match id {
            Id::PacCaches => self.caches = Some(caches(value)?),
            Id::PacProxyPort => self.proxy_port = Some(proxy_port("ICPQueryPACProxyPort", value)?),
            Id::PacFallback => self.fallback = Some(routes("ICPQueryPACFallback", value)?),
            other => unreachable!("{other:?} is no ICPQueryPAC* directive"),
        }
        Ok(())
    }

    pub fn caches(&self) -> PacCaches {
        self.caches.clone().unwrap_or_default()
    }

    pub fn fallback(&self) -> &str {
        self.fallback.as_deref().unwrap_or(DEFAULT_FALLBACK)
    }
}

/// `ICPQueryPACCaches server`, `group NAME` or `balancer NAME` (also
/// `balancer balancer://NAME`).
pub fn caches(value: &str) -> Result<PacCaches, ValueError> {
    const EXPECTED: &str = "server, group NAME (an <ICPQueryGroup NAME>) or balancer NAME (a balancer://NAME)";
    let bad = |problem: &str| ValueError {
        directive: "ICPQueryPACCaches",
        value: value.escape_debug().to_string(),
        problem: problem.into(),
        expected: EXPECTED,
    };
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        [w] if w.eq_ignore_ascii_case("server") => Ok(PacCaches::Server),
        [w, name] if w.eq_ignore_ascii_case("group") => {
            // The block's own rule for names (it reads "name>").
            group_name(&format!("{name}>")).map_err(|_| bad("not a group name"))?;
            Ok(PacCaches::Group(name.to_string()))
        }
        [w, name] if w.eq_ignore_ascii_case("balancer") => {
            let lower = name.to_ascii_lowercase();
            let bare = lower.strip_prefix("balancer://").unwrap_or(&lower);
            let fine = |b: u8| b.is_ascii_alphanumeric() || b"-_.~".contains(&b);
            if bare.is_empty() || !bare.bytes().all(fine) {
                return Err(bad("not a balancer name"));
            }
            Ok(PacCaches::Balancer(format!("balancer://{bare}")))
        }
        [] => Err(bad("empty")),
        [w, ..] if ["server", "group", "balancer"].iter().any(|k| w.eq_ignore_ascii_case(k)) => {
            Err(bad("wrong number of words"))
        }
        _ => Err(bad("unknown kind of caches")),
    }
}

/// A TCP port from 1 to 65535.
pub fn proxy_port(directive: &'static str, value: &str) -> Result<u16, ValueError> {
    match value.trim().parse::<u16>() {
        Ok(port @ 1..) => Ok(port),
        result => Err(ValueError {
            directive,
            value: value.escape_debug().to_string(),
            problem: if result.is_ok() { "out of range" } else { "not a port" }.into(),
            expected: "a port from 1 to 65535",
        }),
    }
}

/// A PAC route list: `DIRECT`, or `PROXY host:port` (also `HTTPS`,
/// `SOCKS`, `SOCKS4`, `SOCKS5`, `HTTP`), several separated by `;`; written
/// back in one canonical form (`PROXY a:8080; DIRECT`). `directive` names
/// what is refused: the directive, or the tool's `--fallback`.
pub fn routes(directive: &'static str, value: &str) -> Result<String, ValueError> {
    let bad = |problem: &str| ValueError {
        directive,
        value: value.escape_debug().to_string(),
        problem: problem.into(),
        expected: "DIRECT or \"PROXY host:port\" (also HTTPS, SOCKS, SOCKS5), several separated by ';'",
    };
    let mut routes = Vec::new();
    for route in value.split(';').map(str::trim).filter(|r| !r.is_empty()) {
        let words: Vec<&str> = route.split_whitespace().collect();
        match words.as_slice() {
            [d] if d.eq_ignore_ascii_case("DIRECT") => routes.push("DIRECT".to_string()),
            [kind, target] => {
                let kind = kind.to_ascii_uppercase();
                if !["PROXY", "HTTP", "HTTPS", "SOCKS", "SOCKS4", "SOCKS5"].contains(&kind.as_str()) {
                    return Err(bad("unknown route type"));
                }
                let port_ok = target
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
                if !port_ok || target.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                    return Err(bad("not host:port"));
                }
                routes.push(format!("{kind} {target}"));
            }
            _ => return Err(bad("not a route")),
        }
    }
    if routes.is_empty() {
        return Err(bad("empty"));
    }
    Ok(routes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_name_a_server_group_or_balancer() {
        assert_eq!(caches("server"), Ok(PacCaches::Server));
        assert_eq!(caches("group media"), Ok(PacCaches::Group("media".into())));
        assert_eq!(caches("Balancer balancer://Caches"), Ok(PacCaches::Balancer("balancer://caches".into())));
        assert_eq!(caches("balancer caches"), Ok(PacCaches::Balancer("balancer://caches".into())));
        let e = caches("group a/b").unwrap_err().to_string();
        assert_eq!(
            e,
            "ICPQueryPACCaches \"group a/b\": not a group name; expected server, group NAME (an <ICPQueryGroup NAME>) \
             or balancer NAME (a balancer://NAME)"
        );
        assert!(caches("group").unwrap_err().to_string().contains("wrong number of words"));
        assert!(caches("vhost x").unwrap_err().to_string().contains("unknown kind of caches"));
        assert!(caches("balancer balancer://").is_err());
    }

    #[test]
    fn ports_and_routes() {
        assert_eq!(proxy_port("ICPQueryPACProxyPort", " 8000 "), Ok(8000));
        assert_eq!(
            proxy_port("ICPQueryPACProxyPort", "0").unwrap_err().to_string(),
            "ICPQueryPACProxyPort \"0\": out of range; expected a port from 1 to 65535"
        );
        assert!(proxy_port("ICPQueryPACProxyPort", "http").is_err());
        assert_eq!(routes("ICPQueryPACFallback", "proxy a:8080;direct"), Ok("PROXY a:8080; DIRECT".into()));
        assert_eq!(
            routes("--fallback", "PROXY nowhere").unwrap_err().to_string(),
            "--fallback \"PROXY nowhere\": not host:port; expected DIRECT or \"PROXY host:port\" (also HTTPS, \
             SOCKS, SOCKS5), several separated by ';'"
        );
        assert!(routes("ICPQueryPACFallback", " ; ").is_err());
        assert!(routes("ICPQueryPACFallback", "PROXY a\"b:80").is_err());
    }

    #[test]
    fn inner_sections_override_value_by_value() {
        let mut outer = PacSettings::default();
        outer.apply(Id::PacProxyPort, "8000").unwrap();
        outer.apply(Id::PacFallback, "DIRECT").unwrap();
        let mut inner = PacSettings::default();
        inner.apply(Id::PacCaches, "group media").unwrap();
        inner.apply(Id::PacFallback, "PROXY portal:8080").unwrap();
        let merged = PacSettings::merge(&outer, &inner);
        assert_eq!(merged.caches(), PacCaches::Group("media".into()));
        assert_eq!(merged.proxy_port, Some(8000));
        assert_eq!(merged.fallback(), "PROXY portal:8080");
        assert_eq!(PacSettings::default().caches(), PacCaches::Server);
        assert_eq!(PacSettings::default().fallback(), "DIRECT");
    }
}
