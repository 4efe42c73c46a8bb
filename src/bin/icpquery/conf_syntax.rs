//! httpd's rules for the text of configuration files, as the tool needs
//! them: logical lines, words and quoting, and `Include` wildcards.

pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `fnmatch(3)` with FNM_PERIOD: `*`, `?`, `[...]` (`!` or `^` negates,
/// ranges), `\` escapes; a leading `.` must be matched by a literal `.`.
pub fn fnmatch(pattern: &[u8], name: &[u8]) -> bool {
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
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
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

/// The single argument of one of httpd's own TAKE1 directives, or a refusal.
pub fn take1(directive: &str, raw: &str) -> Result<String, String> {
    one_word(raw).ok_or_else(|| format!("{directive} takes one argument"))
}

/// The single argument of a TAKE1 or FLAG directive, if there is exactly one.
pub fn one_word(raw: &str) -> Option<String> {
    let mut rest = raw;
    let word = getword_conf(&mut rest);
    (!word.is_empty() && rest.is_empty()).then_some(word)
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
