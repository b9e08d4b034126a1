//! `--config FILE`: one JSON object whose keys are the long flag names without `--`
//! (`"sync-interval": 30`, `"purge": true`, `"consul": "http://…"`). Integers are JSON numbers,
//! switches booleans, everything else strings; a switch pair (`--purge`/`--no-purge`) is one
//! boolean key. This file reads and type-checks it; whether a value is good (a port in range, a
//! URL) is checked in `resolve.rs`, the same way as a flag's, once it is the value in use.
//!
//! The file is read up to [`MAX_CONFIG_BYTES`]. A key given twice is refused rather than letting
//! the last one silently win (serde_json's map would keep the last, so the entries are collected
//! in order and compared). Every error is one line starting with the file's name.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::Value;

use super::catalog::{self, Kind};
use super::sources::Raw;
use super::CliError;

/// Largest config file read: far above any real one, small enough to hold in memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Longest key echoed in an error; longer ones are cut.
const SHOWN_KEY_CHARS: usize = 64;

/// A config file's settings, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file, as given.
    pub path: PathBuf,
    /// Its values, type-checked against the settings' kinds.
    pub values: BTreeMap<&'static str, Raw>,
}

/// Reads the config file `path`, named by `label` (`--config`, `CONSULAR_CONFIG`) in an error
/// about opening it.
pub fn read(label: &str, path: &Path) -> Result<ConfigFile, CliError> {
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::flag(label, format!("cannot read {path:?}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::flag(label, format!("cannot read {path:?}: {e}")))?;
    parse(path, &bytes)
}

/// The settings in `bytes`, the contents of `path`.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<ConfigFile, CliError> {
    let in_file = |why: String| CliError::new(format!("{}: {why}", path.display()));
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(in_file(format!(
            "is larger than {} KiB",
            MAX_CONFIG_BYTES / 1024
        )));
    }
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let entries = json
        .deserialize_map(EntriesVisitor)
        .and_then(|entries| json.end().map(|()| entries))
        .map_err(|e| in_file(format!("not a JSON object of settings: {e}")))?;
    let mut values = BTreeMap::new();
    for (key, value) in entries {
        let shown: String = key.chars().take(SHOWN_KEY_CHARS).collect();
        let setting = match catalog::by_name(&key) {
            Some(setting) if setting.name() == catalog::CONFIG => {
                return Err(in_file(format!(
                    "{shown}: cannot be set in the config file itself"
                )))
            }
            Some(setting) => setting,
            None => return Err(in_file(unknown_key(&key, &shown))),
        };
        let raw = typed(setting.kind, value)
            .map_err(|why| in_file(format!("{}: {why}", setting.name())))?;
        if values.insert(setting.name(), raw).is_some() {
            return Err(in_file(format!("{shown}: given more than once")));
        }
    }
    Ok(ConfigFile {
        path: path.to_owned(),
        values,
    })
}

/// Why `key` is not a key, with a hint where one helps.
fn unknown_key(key: &str, shown: &str) -> String {
    let switch = key
        .strip_prefix("no-")
        .and_then(catalog::by_name)
        .filter(|setting| setting.negation.is_some());
    match switch {
        Some(setting) => format!("unknown key {shown:?} (use \"{}\": false)", setting.name()),
        None if key.starts_with("--") => {
            format!("unknown key {shown:?} (keys are the flag names without --)")
        }
        None => format!("unknown key {shown:?} (see --help for the settings)"),
    }
}

/// `value` as a setting of `kind` takes it: numbers become their text and are range-checked with
/// the flags' rules; a JSON value of the wrong type is refused without echoing it.
fn typed(kind: Kind, value: Value) -> Result<Raw, String> {
    match (kind, value) {
        (Kind::Text, Value::String(text)) => Ok(Raw::Text(text)),
        (Kind::Integer, Value::Number(number)) => Ok(Raw::Text(number.to_string())),
        (Kind::Switch, Value::Bool(on)) => Ok(Raw::Switch(on)),
        (kind, other) => {
            let expected = match kind {
                Kind::Text => "a string",
                Kind::Integer => "a number",
                Kind::Switch => "true or false",
            };
            Err(format!("expected {expected}, got {}", json_type(&other)))
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The top-level object's entries in file order, duplicates kept so they can be refused.
struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(entries)
    }
}
