//! The URL `lbmethod=bycache` asks the caches about: the prefix the caches
//! key objects by, then exactly the path and query the member is about to
//! be sent, as mod_proxy will build them after the balancer picks it.
//!
//! mod_proxy (2.4.62 and later) leaves a balancer URL's path decoded and
//! without its query until a member is picked, then prepends the member's
//! own path, %-encodes the result (`ap_proxy_canonenc_ex`) and appends
//! `?` and the query as the client sent it, when there was a `?`.
//! `ProxyPass … nocanon` passes the client's path and query untouched;
//! `mapping=encoded` (the `proxy-noencode` note) the path untouched. Before
//! 2.4.62 the balancer URL was already encoded, query included.

use crate::settings::KeyPrefix;

/// What mod_proxy holds about the request's target before a member is
/// picked.
pub struct Target<'a> {
    /// `r->filename` after `proxy:balancer://NAME`.
    pub rest: &'a [u8],
    /// `r->args`: `None` without a `?`.
    pub query: Option<&'a [u8]>,
    pub nocanon: bool,
    pub noencode: bool,
    /// httpd before 2.4.62: `rest` is already the member's path and query.
    pub canonicalised: bool,
}

/// The path of a member's URL (`http://h:3128/pre` → `/pre`), which
/// mod_proxy puts before the request's path.
pub fn member_path(name: &[u8]) -> &[u8] {
    let after_scheme = find(name, b"://").map_or(name, |at| &name[at + 3..]);
    after_scheme.iter().position(|&b| b == b'/').map_or(&[][..], |at| &after_scheme[at..])
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The path and query the member with path `member_path` is sent.
pub fn sent(member_path: &[u8], t: &Target<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(member_path.len() + t.rest.len() + 16);
    if t.canonicalised || t.nocanon {
        out.extend_from_slice(member_path);
        out.extend_from_slice(t.rest);
        return out;
    }
    if t.noencode {
        out.extend_from_slice(member_path);
        out.extend_from_slice(t.rest);
    } else {
        canonenc(member_path, &mut out);
        canonenc(t.rest, &mut out);
    }
    if let Some(query) = t.query {
        out.push(b'?');
        out.extend_from_slice(query);
    }
    out
}

/// `ap_proxy_canonenc_ex` for a reverse-proxied path: `/`, letters, digits
/// and ``~$-_.+!*'(),;:@&=`` stay, every other byte (`%` included) becomes
/// `%XX` in upper case.
pub fn canonenc(path: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in path {
        if b.is_ascii_alphanumeric() || b"/~$-_.+!*'(),;:@&=".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// The whole key: `prefix`, or `http://` and `host` (the Host the member
/// is sent: the client's, or the server's name without one) as Squid
/// writes it in its store keys (lower case, no trailing dot, no `:80`),
/// then the path and query sent.
pub fn key(prefix: &KeyPrefix, host: &[u8], sent: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + sent.len());
    match prefix {
        KeyPrefix::Fixed(p) => key.extend_from_slice(p.as_bytes()),
        KeyPrefix::RequestHost => {
            key.extend_from_slice(b"http://");
            let host = host.strip_suffix(b":80").unwrap_or(host);
            let host = host.strip_suffix(b".").unwrap_or(host);
            key.extend(host.iter().map(u8::to_ascii_lowercase));
        }
    }
    key.extend_from_slice(sent);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(rest: &'static str, query: Option<&'static str>) -> Target<'static> {
        Target {
            rest: rest.as_bytes(),
            query: query.map(str::as_bytes),
            nocanon: false,
            noencode: false,
            canonicalised: false,
        }
    }

    fn sent_text(member: &str, t: &Target<'_>) -> String {
        String::from_utf8(sent(member_path(member.as_bytes()), t)).unwrap()
    }

    /// What a real httpd 2.4.71 sent members for these requests (see the
    /// module notes; `tests/bycache.rs` checks it against Squid's log).
    #[test]
    fn paths_are_encoded_as_mod_proxy_does_and_the_query_kept_as_sent() {
        let member = "http://127.0.0.1:3128";
        assert_eq!(sent_text(member, &target("/wsgi/a b/c", Some("x=1"))), "/wsgi/a%20b/c?x=1");
        assert_eq!(sent_text(member, &target("/wsgi/ü", Some(""))), "/wsgi/%C3%BC?", "a bare ? stays");
        assert_eq!(sent_text(member, &target("/wsgi/a;b=1,c~d", None)), "/wsgi/a;b=1,c~d");
        assert_eq!(sent_text(member, &target("/wsgi/100%", None)), "/wsgi/100%25");
        assert_eq!(sent_text(member, &target("/wsgi/\"<>#", Some("q=%20x"))), "/wsgi/%22%3C%3E%23?q=%20x");
        assert_eq!(sent_text("http://h:3128/pre", &target("/p/x", Some("q"))), "/pre/p/x?q", "the member's path first");
    }

    #[test]
    fn nocanon_noencode_and_older_httpd_pass_what_they_have() {
        let nocanon = Target { nocanon: true, ..target("/nc/a%20b?y", Some("y")) };
        assert_eq!(sent_text("http://h", &nocanon), "/nc/a%20b?y");
        let noencode = Target { noencode: true, ..target("/e/a%20b", Some("y")) };
        assert_eq!(sent_text("http://h", &noencode), "/e/a%20b?y");
        let old = Target { canonicalised: true, ..target("/wsgi/a%20b?x=1", Some("x=1")) };
        assert_eq!(sent_text("http://h/pre", &old), "/pre/wsgi/a%20b?x=1");
    }

    #[test]
    fn member_paths_and_prefixes() {
        assert_eq!(member_path(b"http://10.0.0.1:3128"), b"");
        assert_eq!(member_path(b"http://[::1]:3128/a/b"), b"/a/b");
        let fixed = KeyPrefix::Fixed("http://localhost".into());
        assert_eq!(key(&fixed, b"Example.ORG", b"/x?y"), b"http://localhost/x?y");
        let host = KeyPrefix::RequestHost;
        assert_eq!(key(&host, b"Example.ORG:8080", b"/x"), b"http://example.org:8080/x");
        assert_eq!(key(&host, b"www.example.org:80", b"/x"), b"http://www.example.org/x", "the default port");
        assert_eq!(key(&host, b"www.example.org.", b"/x"), b"http://www.example.org/x", "a trailing dot");
    }
}
