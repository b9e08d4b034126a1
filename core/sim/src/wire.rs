//! The plumbing both simulators share: [`SimResponse`] (what a simulated server answers), the
//! order-keeping JSON builder `J` (with Go's escaping and `MarshalIndent` for Consul), and the
//! parsing of request targets (percent-decoding, `path?query` splitting, query pairs).
//!
//! Not here: anything one server decides (routes, statuses, bodies): `crate::marathon` and
//! `crate::consul`. Nothing here touches sockets or HTTP framing: a simulator answers a method,
//! a target and a body, and the HTTP servers in `consular-adapters` do the wire.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use serde_json::Value;

/// One HTTP response from a simulator: status, `Content-Type`, body and any other headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header; empty when the real server sends none (Consul's empty 200s).
    pub content_type: &'static str,
    /// The body, byte for byte.
    pub body: Vec<u8>,
    /// Other headers the real server sends that matter to clients (`Allow`, `Location`,
    /// `X-Consul-Index`, …), in order.
    pub headers: Vec<(&'static str, String)>,
}

impl SimResponse {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        SimResponse {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body as text (invalid UTF-8 replaced), for assertions and logs.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, or `None` if it is not JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A JSON value whose objects keep insertion order, so responses can follow the real servers'
/// field order (serde_json's map is sorted without `preserve_order`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub(crate) fn s(text: impl Into<String>) -> J {
        J::Str(text.into())
    }

    pub(crate) fn u(n: u64) -> J {
        J::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    pub(crate) fn obj<const N: usize>(fields: [(&str, J); N]) -> J {
        J::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub(crate) fn opt_s(text: Option<&str>) -> J {
        text.map_or(J::Null, J::s)
    }

    pub(crate) fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> J {
        J::Arr(items.into_iter().map(J::s).collect())
    }

    /// Appends a field (no-op on non-objects).
    pub(crate) fn put(&mut self, key: &str, value: J) {
        if let J::Obj(fields) = self {
            fields.push((key.to_string(), value));
        }
    }

    /// Compact JSON. `go` selects Go's `encoding/json` escaping (`<`, `>`, `&`, U+2028/9 as
    /// `\u` escapes; only `\n`, `\r`, `\t` as short escapes) instead of serde_json's.
    pub(crate) fn compact(&self, go: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, go, None, 0);
        out
    }

    /// Go's `json.MarshalIndent(v, "", "    ")` followed by a newline, as Consul's `?pretty`.
    pub(crate) fn pretty_go(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, true, Some("    "), 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, go: bool, indent: Option<&str>, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(unit) = indent {
                out.push('\n');
                for _ in 0..depth {
                    out.push_str(unit);
                }
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => {
                let _ = write!(out, "{n}");
            }
            J::Float(f) => {
                if f.is_finite() {
                    out.push_str(&serde_json::to_string(f).unwrap_or_else(|_| "null".into()));
                } else {
                    out.push_str("null");
                }
            }
            J::Str(s) => write_json_str(out, s, go),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, go, indent, depth + 1);
                }
                if !items.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    write_json_str(out, k, go);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    v.write(out, go, indent, depth + 1);
                }
                if !fields.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_str(out: &mut String, s: &str, go: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' if !go => out.push_str("\\b"),
            '\u{c}' if !go => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if go => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Percent-decodes `s` (`+` as space when `plus_as_space`). `None` on a malformed `%` escape.
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let pair = bytes.get(i + 1..i + 3)?;
                out.push(hex(pair[0])? << 4 | hex(pair[1])?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Splits `path?query` (a `#fragment` is dropped, as servers never see one).
pub(crate) fn split_path_query(path_and_query: &str) -> (&str, &str) {
    let without_fragment = path_and_query
        .split_once('#')
        .map_or(path_and_query, |(p, _)| p);
    without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""))
}

/// Parses a query string into decoded `(key, value)` pairs, in order. Pairs with a malformed
/// escape are dropped (Go's `url.ParseQuery` does this; Jersey would reject the request, a case
/// the simulator does not distinguish). `semicolons` also splits on `;` (Go before 1.17).
pub(crate) fn parse_query(query: &str, semicolons: bool) -> Vec<(String, String)> {
    query
        .split(|c| c == '&' || (semicolons && c == ';'))
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k, true)?;
            let v = percent_decode(v, true)?;
            let k = String::from_utf8_lossy(&k).into_owned();
            (!k.is_empty()).then(|| (k, String::from_utf8_lossy(&v).into_owned()))
        })
        .collect()
}

pub(crate) fn query_get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn query_has(params: &[(String, String)], key: &str) -> bool {
    params.iter().any(|(k, _)| k == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn go_escaping_differs_from_serde() {
        let v = J::s("<a&b>\u{8}");
        assert_eq!(v.compact(true), "\"\\u003ca\\u0026b\\u003e\\u0008\"");
        assert_eq!(v.compact(false), "\"<a&b>\\b\"");
    }

    #[test]
    fn pretty_matches_go_marshal_indent() {
        let v = J::obj([
            ("a", J::Arr(vec![J::Int(1)])),
            ("b", J::Obj(Vec::new())),
            ("c", J::Arr(Vec::new())),
        ]);
        assert_eq!(
            v.pretty_go(),
            "{\n    \"a\": [\n        1\n    ],\n    \"b\": {},\n    \"c\": []\n}\n"
        );
    }
}
