//! Byte-exact encoders shared by the Marathon and Consul request builders: URL percent-encoding
//! (the uritools rules consular 1.3.0 used), Python `json.dumps`-style ASCII JSON strings, and
//! base64 for Consul KV values. No request logic lives here.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Characters uritools leaves literal in a path, besides ASCII letters and digits.
const PATH_LITERAL: &[u8] = b"-._~/:@!$&'()*+,;=";

/// Percent-encodes `segment` for use in a URL path: `/` and `: @ ! $ & ' ( ) * + , ; = ~` stay
/// literal, everything else outside `[A-Za-z0-9-._~]` (space, `%`, `?`, `#`, non-ASCII…) becomes
/// `%XX`.
pub fn encode_path(segment: &str) -> String {
    encode(segment, |b| PATH_LITERAL.contains(&b))
}

/// Percent-encodes `segment` as exactly one path segment: everything outside `[A-Za-z0-9-._~]`
/// becomes `%XX`, `/` included, so an id can never add a segment, a query or a fragment. (A
/// segment of dots would still be a dot segment, encoded or not; ids are checked against that in
/// [`crate::marathon::ids`] before they get here.)
pub fn encode_segment(segment: &str) -> String {
    encode(segment, |b| matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Percent-encodes a query value the way consular 1.3.0 did: as [`encode_path`], and also `&`.
pub fn encode_query_value(value: &str) -> String {
    encode(value, |b| {
        b != b'&' && (PATH_LITERAL.contains(&b) || b == b'?')
    })
}

fn encode(text: &str, literal: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || literal(b) {
            out.push(b as char);
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is. `+` stays a `+`:
/// [`encode_query_value`] leaves it literal, and Marathon posts to the URL exactly as subscribed.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex(hi).zip(hex(lo)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// `text` (a URL, or a request's path and query) with the value of every `secret=` parameter
/// replaced by `***`, whether the parameter is the URL's own or inside an encoded callback URL
/// (`%26secret=`), so no log line carries the events secret.
pub fn redact_secret(text: &str) -> String {
    const PARAM: &str = "secret=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PARAM) {
        // In the URL itself a value ends at `&`; inside an encoded URL, at `%26` as well.
        let encoded = rest[..at].ends_with("%26");
        let starts_param = encoded || rest[..at].ends_with('&');
        let value_start = at + PARAM.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if starts_param {
            let encoded_end = rest.find("%26").filter(|_| encoded);
            let end = [rest.find('&'), encoded_end]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(rest.len());
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let differing = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    given.len() == expected.len() && differing == 0
}

/// The callback URL consular 1.3.0 registers at Marathon:
/// `<scheme>://<host>:<port>/events?registration=<id>`, host lower-cased, IPv6 in brackets; with
/// an events secret, `&secret=<secret>` follows.
pub fn callback_url(
    scheme: &str,
    host: &str,
    port: u16,
    registration_id: &str,
    secret: Option<&str>,
) -> String {
    let host = host.to_ascii_lowercase();
    let host = if host.contains(':') && !host.starts_with('[') {
        alloc::format!("[{host}]")
    } else {
        host
    };
    let mut url = alloc::format!(
        "{scheme}://{host}:{port}/events?registration={}",
        encode_query_value(registration_id)
    );
    if let Some(secret) = secret {
        url.push_str("&secret=");
        url.push_str(&encode_query_value(secret));
    }
    url
}

/// `s` as a JSON string literal with every non-ASCII character escaped as `\uXXXX` (surrogate
/// pairs above the BMP), exactly as Python's `json.dumps` with `ensure_ascii=True` writes it.
pub fn json_ascii_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Consul's KV API expects.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional). `None` if `text` is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = BASE64.iter().position(|&b| b == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_encoding_matches_uritools() {
        assert_eq!(
            encode_path("/v1/kv/consular/my app/k"),
            "/v1/kv/consular/my%20app/k"
        );
        assert_eq!(encode_path("a%b?c#d"), "a%25b%3Fc%23d");
        assert_eq!(encode_path("/:@!$&'()*+,;=~"), "/:@!$&'()*+,;=~");
        assert_eq!(encode_path("é"), "%C3%A9");
    }

    #[test]
    fn a_segment_stays_one_segment() {
        assert_eq!(encode_segment("../../leave"), "..%2F..%2Fleave");
        assert_eq!(encode_segment("a?b#c%d e"), "a%3Fb%23c%25d%20e");
        assert_eq!(encode_segment("web.1_a-b~"), "web.1_a-b~");
    }

    #[test]
    fn query_values_keep_the_callback_url_readable() {
        assert_eq!(
            encode_query_value("http://h:7000/events?registration=a&b"),
            "http://h:7000/events?registration=a%26b"
        );
    }

    #[test]
    fn callback_url_lower_cases_the_host() {
        assert_eq!(
            callback_url("http", "Consular.Example", 7000, "my id", None),
            "http://consular.example:7000/events?registration=my%20id"
        );
        assert_eq!(
            callback_url("http", "::1", 7000, "c", Some("s e&c+%")),
            "http://[::1]:7000/events?registration=c&secret=s%20e%26c+%25"
        );
    }

    #[test]
    fn secrets_survive_the_round_trip_through_a_query() {
        for secret in ["plain", "s e&c+%/?#", "caf\u{e9}"] {
            let url = callback_url("http", "h", 1, "r", Some(secret));
            let (_, value) = url.split_once("&secret=").unwrap();
            assert_eq!(percent_decode(value), secret.as_bytes(), "{url}");
        }
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn secrets_never_reach_a_log_line() {
        let url = callback_url("http", "h", 1, "r", Some("s3cr&t"));
        assert_eq!(
            redact_secret(&url),
            "http://h:1/events?registration=r&secret=***"
        );
        let path = alloc::format!(
            "/v2/eventSubscriptions?callbackUrl={}",
            encode_query_value(&url)
        );
        assert_eq!(
            redact_secret(&path),
            "/v2/eventSubscriptions?callbackUrl=http://h:1/events?registration=r%26secret=***"
        );
        assert_eq!(redact_secret("/a?nosecret=x"), "/a?nosecret=x");
    }

    #[test]
    fn json_strings_are_ascii_like_python() {
        assert_eq!(json_ascii_string("bar"), "\"bar\"");
        assert_eq!(json_ascii_string("caf\u{e9}"), "\"caf\\u00e9\"");
        assert_eq!(json_ascii_string("\u{1F600}"), "\"\\ud83d\\ude00\"");
        assert_eq!(
            json_ascii_string("a\"b\\\n\u{1}"),
            "\"a\\\"b\\\\\\n\\u0001\""
        );
    }

    #[test]
    fn base64_round_trips() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "\"bar\""] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).as_deref(), Some(text.as_bytes()));
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("not base64!"), None);
    }
}
