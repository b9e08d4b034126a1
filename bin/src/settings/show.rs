//! What `consular config` prints: every setting of a run, one per line, with its effective value
//! and where it came from — `port  7001  (from flag)`. Secrets (tokens, the events secret, the
//! password) show as `(redacted, from …)` and a URL's userinfo as `***@`; their values never reach
//! this file. Resolving the values is `resolve.rs`.

use std::fmt;

use super::sources::Source;

/// How a setting's effective value is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// This text.
    Value(String),
    /// Nothing: the setting is off or absent.
    NotSet,
    /// A secret, never shown.
    Redacted,
    /// Given, but another spelling of the same setting from a higher-ranked source won (a token
    /// file below a token given on the command line).
    Outranked,
}

/// One setting as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The setting's name, its flag without `--`.
    pub name: &'static str,
    /// Its effective value.
    pub value: Shown,
    /// Where that came from.
    pub source: Source,
}

impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = &self.source;
        write!(f, "{:<24} ", self.name)?;
        match &self.value {
            Shown::Value(value) => write!(f, "{} (from {source})", shown_text(value)),
            Shown::NotSet => write!(f, "(not set, from {source})"),
            Shown::Redacted => write!(f, "(redacted, from {source})"),
            Shown::Outranked => write!(f, "(not used, from {source})"),
        }
    }
}

/// Every setting of a run, in `--help` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing(pub Vec<Effective>);

impl Listing {
    /// The setting called `name`, if listed.
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&Effective> {
        self.0.iter().find(|effective| effective.name == name)
    }
}

impl fmt::Display for Listing {
    /// One line per setting, each ending in a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0
            .iter()
            .try_for_each(|effective| writeln!(f, "{effective}"))
    }
}

/// `value` on one line: control characters escaped, so a value cannot forge a line of its own.
fn shown_text(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
