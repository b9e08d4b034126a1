//! Credentials: the Consul and Marathon tokens, the events secret and Marathon's password, given
//! as a value, as `@FILE`, or through a `…-file` setting. A file's content is the secret minus one
//! trailing newline (`\n` or `\r\n`); files are read up to [`MAX_SECRET_BYTES`]. Errors name the
//! setting and the file, never what is in it. Showing secrets (never) is `show.rs`'s business.

use std::io::Read;
use std::path::Path;

use consular_adapters::endpoints::check_token;

use super::CliError;

/// Largest secret file read: a DC/OS token is a few KiB.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// What kind of secret, as error messages call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// Goes into a header: visible ASCII only.
    Token,
    /// Goes into a URL and is compared with what callers send: visible ASCII only.
    CallbackSecret,
    /// Basic auth's password: any text without control characters.
    Password,
}

impl SecretKind {
    /// What messages call it.
    pub fn noun(self) -> &'static str {
        match self {
            SecretKind::Token => "token",
            SecretKind::CallbackSecret => "secret",
            SecretKind::Password => "password",
        }
    }

    /// Why `text` cannot be this secret, if it cannot.
    fn problem(self, text: &str) -> Option<String> {
        match self {
            SecretKind::Token | SecretKind::CallbackSecret => {
                check_token(text).err().map(|p| p.to_string())
            }
            SecretKind::Password if text.is_empty() => Some("is empty".to_owned()),
            SecretKind::Password => text
                .chars()
                .position(char::is_control)
                .map(|i| format!("has a control character at position {}", i + 1)),
        }
    }
}

/// The secret `given` under `label`: the value itself, or with `@FILE` what FILE holds.
pub fn value_or_at_file(label: &str, kind: SecretKind, given: String) -> Result<String, CliError> {
    let Some(path) = given.strip_prefix('@') else {
        return checked(label, kind, given, None);
    };
    if path.is_empty() {
        return Err(CliError::flag(label, "expected a file name after @"));
    }
    from_file(label, kind, Path::new(path))
}

/// The secret `given` under `label`, taken as it is.
pub fn literal(label: &str, kind: SecretKind, given: String) -> Result<String, CliError> {
    checked(label, kind, given, None)
}

/// The secret held in the file `path`, named under `label`.
pub fn from_file(label: &str, kind: SecretKind, path: &Path) -> Result<String, CliError> {
    let cannot_read =
        |e: std::io::Error| CliError::flag(label, format!("cannot read {path:?}: {e}"));
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        let why = format!("{path:?} is larger than {} KiB", MAX_SECRET_BYTES / 1024);
        return Err(CliError::flag(label, why));
    }
    let Ok(mut secret) = String::from_utf8(bytes) else {
        let why = format!("the {} in {path:?} is not UTF-8 text", kind.noun());
        return Err(CliError::flag(label, why));
    };
    let kept = secret
        .strip_suffix("\r\n")
        .or_else(|| secret.strip_suffix('\n'))
        .map_or(secret.len(), str::len);
    secret.truncate(kept);
    checked(label, kind, secret, Some(path))
}

fn checked(
    label: &str,
    kind: SecretKind,
    secret: String,
    file: Option<&Path>,
) -> Result<String, CliError> {
    match kind.problem(&secret) {
        None => Ok(secret),
        Some(problem) => {
            let noun = kind.noun();
            let what = match file {
                Some(path) => format!("the {noun} in {path:?}"),
                None => format!("the {noun}"),
            };
            Err(CliError::flag(label, format!("{what} {problem}")))
        }
    }
}
