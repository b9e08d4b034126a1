//! The grammar of what Marathon names: app ids, task ids, task hosts. Every id that reaches a
//! request path, a Consul service or a log line passes through here first, from events and from
//! Marathon's and Consul's answers alike, so nothing read can form a `.`/`..` segment, a new
//! query, a header or a control character anywhere.
//!
//! Only checks live here; encoding ids into URLs is [`crate::encoding`]'s, and what to do with a
//! bad id (a 400, a skipped app) is the caller's.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// Longest app or task id accepted. Marathon sets none, but Consul service names are DNS labels
/// in practice and ids far beyond this are only ever an attack on memory and logs.
pub const MAX_ID_LEN: usize = 512;
/// Longest DNS name (RFC 1035).
const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Longest piece of untrusted text a log line or an error reply shows.
const MAX_SHOWN_CHARS: usize = 96;

/// Why an identifier was refused; the message names the rule, not the (untrusted) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty.
    #[error("is empty")]
    Empty,
    /// Longer than the limit.
    #[error("is longer than {0} bytes")]
    TooLong(usize),
    /// An app id that does not follow Marathon's path grammar.
    #[error(
        "is not a Marathon app id (/segment/…: a-z, 0-9, '-' and '.', no '.' or '..' segment)"
    )]
    NotAnAppId,
    /// A task id with characters Marathon never puts in one.
    #[error("is not a Marathon task id (A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit)")]
    NotATaskId,
    /// A host that is neither a DNS name nor an IP address.
    #[error("is not a host name or IP address")]
    NotAHost,
}

/// Checks an absolute Marathon app id: `/` then segments of lower-case letters, digits, `-` and
/// `.`, each dot-separated piece starting and ending with a letter or digit (`PathId`'s rule;
/// the relative `.` and `..` it allows in definitions never appear in a stored id).
pub fn check_app_id(id: &str) -> Result<(), IdError> {
    check_len(id)?;
    let path = id.strip_prefix('/').ok_or(IdError::NotAnAppId)?;
    let valid = path.split('/').all(|segment| {
        segment
            .split('.')
            .all(|piece| is_label(piece, |b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    });
    if valid {
        Ok(())
    } else {
        Err(IdError::NotAnAppId)
    }
}

/// Checks a Marathon task id (`app.uuid`, `group_app.instance-uuid._app.1`, `app_0-1396…`): the
/// characters of every format Marathon has used, starting with a letter or digit, so it can never
/// be a dot segment, and no `/`, `%`, `?` or `#` can change a URL it is put in.
pub fn check_task_id(id: &str) -> Result<(), IdError> {
    check_len(id)?;
    let bytes = id.as_bytes();
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if bytes[0].is_ascii_alphanumeric() && bytes.iter().all(allowed) {
        Ok(())
    } else {
        Err(IdError::NotATaskId)
    }
}

/// Checks a task host: an IPv4 or IPv6 literal (IPv6 with or without brackets), or a DNS name of
/// letters, digits, `-` and `_` labels, with at most one trailing dot. No userinfo, port, path
/// or anything else that would change the URL of the agent it names.
pub fn check_host(host: &str) -> Result<(), IdError> {
    if host.is_empty() {
        return Err(IdError::Empty);
    }
    if host.len() > MAX_HOST_LEN + 1 {
        return Err(IdError::TooLong(MAX_HOST_LEN));
    }
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if unbracketed.parse::<Ipv6Addr>().is_ok() || host.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    // All-numeric dotted names are malformed IPv4 literals (`1.2.3.999`), which URL parsers read
    // differently from resolvers.
    let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !numeric && name.split('.').all(|label| is_label(label, label_byte)) {
        Ok(())
    } else {
        Err(IdError::NotAHost)
    }
}

fn check_len(id: &str) -> Result<(), IdError> {
    match id.len() {
        0 => Err(IdError::Empty),
        n if n > MAX_ID_LEN => Err(IdError::TooLong(MAX_ID_LEN)),
        _ => Ok(()),
    }
}

/// A DNS-label-like piece: 1–63 bytes of `edge` bytes and inner `-`, not starting or ending
/// with `-`.
fn is_label(piece: &str, edge: impl Fn(u8) -> bool) -> bool {
    let bytes = piece.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= MAX_LABEL_LEN
                && edge(first)
                && edge(last)
                && bytes.iter().all(|&b| edge(b) || b == b'-')
        }
        _ => false,
    }
}

/// Untrusted text as a log line or an error reply may show it: at most a few dozen characters,
/// control and non-ASCII characters escaped, so no input can forge a log line or flood one.
#[derive(Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_SHOWN_CHARS) {
            if c == ' ' || c.is_ascii_graphic() {
                fmt::Write::write_char(f, c)?;
            } else {
                write!(f, "{}", c.escape_unicode())?;
            }
        }
        if chars.next().is_some() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn app_ids_follow_marathons_path_grammar() {
        for ok in [
            "/a",
            "/my-app",
            "/group/app",
            "/product/us-east/my.app",
            "/0",
            "/a1-b2",
        ] {
            assert_eq!(check_app_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/",
            "//a",
            "/a/",
            "/A",
            "/a_b",
            "/-a",
            "/a-",
            "/a/../b",
            "/..",
            "/.",
            "/a..b",
            "/a/./b",
            "/a b",
            "/a%2e",
            "/a?b",
            "/a#b",
            "/é",
            "/a\n",
            "/a\u{200b}",
            "/ａ",
            "/../../../../admin/secret",
        ] {
            assert!(check_app_id(bad).is_err(), "{bad:?}");
        }
        let long = alloc::format!("/{}", "a".repeat(MAX_ID_LEN));
        assert_eq!(check_app_id(&long), Err(IdError::TooLong(MAX_ID_LEN)));
    }

    #[test]
    fn task_ids_take_every_marathon_format_and_nothing_else() {
        for ok in [
            "my-app_0-1396592784349",
            "toggle.802df2ae-3ad4-11e4-a400-56847afe9799",
            "myGroup_myApp.instance-b6ff5fa5-7714-11e7-a55c-5ecf1c4671f6._app.1",
            "t1",
        ] {
            assert_eq!(check_task_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../../leave",
            "../../../kv/x/y",
            "a/b",
            "a%2fb",
            "a?b",
            "a#b",
            "a b",
            "\u{0}",
            "web\r\n.1",
            ".a",
            "-a",
            "_a",
            "a:1",
            "a@b",
            "é",
            "a\u{200b}",
            "ａ",
        ] {
            assert!(check_task_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts_are_names_or_ip_literals() {
        for ok in [
            "h",
            "slave-1.acme.org",
            "Slave-1",
            "10.0.0.7",
            "127.0.0.2",
            "::1",
            "[fe80::1]",
            "fqdn.example.",
            "host_with_underscore",
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "evil@host",
            "host/path",
            "host:1234",
            "a b",
            "h#x",
            "h?x",
            "-h",
            "h-",
            "a..b",
            "1.2.3.999",
            "10.0.0.7.",
            "[::1",
            "::1]",
            "h\r\nX-Injected: 1",
            "h\u{0}",
            "é",
            "ｈ",
            "h\u{200b}",
            ".",
            "..",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        assert!(check_host(&"a.".repeat(200)).is_err());
    }

    #[test]
    fn shown_text_is_short_and_escaped() {
        assert_eq!(Shown("web.1").to_string(), "web.1");
        assert_eq!(Shown("a\r\nb\u{0}").to_string(), "a\\u{d}\\u{a}b\\u{0}");
        let long = "x".repeat(1 << 20);
        let shown = Shown(&long).to_string();
        assert!(shown.len() < 200, "{}", shown.len());
        assert!(shown.ends_with("… (1048576 bytes)"));
    }
}
