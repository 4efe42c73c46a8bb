//! Reads the tables of the module's HTML status page as a person sees
//! them: each body row's cells under their column heads (a two-row head
//! with `colspan` groups gives the lower row's heads), text without tags
//! and entities. Written for the module's own markup, which keeps every
//! element on the tags it opens with (no nested tables).

use std::collections::HashMap;

pub struct Table {
    /// The column heads, one per column.
    pub heads: Vec<String>,
    pub rows: Vec<Row>,
}

pub struct Row {
    /// The row's `class` ("alive", "dead", "reasons", or empty).
    pub class: String,
    /// Head → cell text; a row with fewer cells (one spanning them all)
    /// has them under the first heads.
    pub cells: HashMap<String, String>,
}

impl Row {
    pub fn get(&self, head: &str) -> &str {
        self.cells.get(head).unwrap_or_else(|| panic!("no column {head:?} in {:?}", self.cells))
    }
}

/// The text of an HTML fragment: tags dropped, the entities the module
/// writes decoded, white space collapsed.
pub fn text(fragment: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in fragment.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'");
    decoded.replace("&amp;", "&").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of attribute `name` in a tag's attribute text.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let start = attrs.find(&format!("{name}=\""))? + name.len() + 2;
    Some(attrs[start..].split('"').next()?.to_string())
}

/// Every element `tag` in `html`: (attribute text, inner HTML).
pub fn elements<'a>(html: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<th` must not match `<thead`.
        if !after.starts_with([' ', '>']) {
            rest = after;
            continue;
        }
        let end_attrs = after.find('>').expect("a tag ends");
        let body = &after[end_attrs + 1..];
        let end = body.find(&close).unwrap_or_else(|| panic!("<{tag}> not closed"));
        found.push((&after[..end_attrs], &body[..end]));
        rest = &body[end..];
    }
    found
}

/// Every `<table class="{class}">` of the page.
pub fn tables(html: &str, class: &str) -> Vec<Table> {
    elements(html, "table")
        .into_iter()
        .filter(|(attrs, _)| attr(attrs, "class").as_deref() == Some(class))
        .map(|(_, inner)| table(inner))
        .collect()
}

fn table(inner: &str) -> Table {
    let rows = elements(inner, "tr");
    let head_rows: Vec<Vec<(&str, &str)>> =
        rows.iter().map(|(_, r)| elements(r, "th")).take_while(|ths| !ths.is_empty()).collect();
    let mut heads = Vec::new();
    let mut lower = head_rows.get(1).map(|r| r.iter()).into_iter().flatten();
    for (attrs, th) in head_rows.first().expect("a head row") {
        match attr(attrs, "colspan").map(|n| n.parse::<usize>().unwrap()) {
            Some(n) => heads.extend(lower.by_ref().take(n).map(|(_, t)| text(t))),
            None => heads.push(text(th)),
        }
    }
    let rows = rows[head_rows.len()..]
        .iter()
        .map(|(attrs, r)| Row {
            class: attr(attrs, "class").unwrap_or_default(),
            cells: heads.iter().cloned().zip(elements(r, "td").into_iter().map(|(_, td)| text(td))).collect(),
        })
        .collect();
    Table { heads, rows }
}
