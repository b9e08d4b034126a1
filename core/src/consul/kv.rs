//! Consul KV as the bridge uses it: the `consular/<app-name>/<label>` layout, JSON-encoded label
//! values, parsing of recursive reads, and `/v1/txn` bodies for batched, index-checked writes.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use super::ParseError;
use crate::encoding::{base64_decode, base64_encode, encode_segment, json_ascii_string};

/// Every key the bridge writes or deletes starts with this.
pub const KV_ROOT: &str = "consular/";
/// `PUT` applies a KV transaction.
pub const TXN_PATH: &str = "/v1/txn";
/// Consul 1.8 rejects transactions with more operations than this.
pub const TXN_MAX_OPS: usize = 64;

/// `consular/<app-name>/<label>`.
pub fn label_key(app_name: &str, label: &str) -> String {
    alloc::format!("{KV_ROOT}{app_name}/{label}")
}

/// A label value as stored: a JSON string with non-ASCII escaped, as consular 1.3.0 wrote it
/// (templates read it with `parseJSON`).
pub fn label_value(value: &str) -> Vec<u8> {
    json_ascii_string(value).into_bytes()
}

/// `GET` every key under `prefix` (which must end in `/`, so `app` never matches `app2`).
pub fn kv_tree_path(prefix: &str) -> String {
    let segments: Vec<String> = prefix.split('/').map(encode_segment).collect();
    alloc::format!("/v1/kv/{}?recurse", segments.join("/"))
}

/// A KV key under [`KV_ROOT`], split into the app name and the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvKey<'a> {
    /// The app name: the first segment after `consular/`.
    pub app_name: &'a str,
    /// The rest after `<app-name>/`; `None` for a key directly under `consular/`.
    pub label: Option<&'a str>,
}

impl<'a> KvKey<'a> {
    /// Splits `key`; `None` if it is not under [`KV_ROOT`] or has an empty app name.
    pub fn parse(key: &'a str) -> Option<Self> {
        let rest = key.strip_prefix(KV_ROOT)?;
        let (app_name, label) = match rest.split_once('/') {
            Some((name, label)) => (name, Some(label)),
            None => (rest, None),
        };
        (!app_name.is_empty()).then_some(KvKey { app_name, label })
    }
}

/// One key as Consul returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The full key.
    pub key: String,
    /// The raw value (empty when Consul says `null`).
    pub value: Vec<u8>,
    /// The index of the last write, used to check a planned write against concurrent changes.
    pub modify_index: u64,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: Option<String>,
    #[serde(rename = "ModifyIndex", default)]
    modify_index: u64,
}

/// Parses `GET /v1/kv/<prefix>?recurse`.
pub fn parse_kv_entries(body: &[u8]) -> Result<Vec<KvEntry>, ParseError> {
    let raw: Vec<RawEntry> = serde_json::from_slice(body)?;
    raw.into_iter()
        .map(|e| {
            let value = match e.value {
                Some(v) => base64_decode(&v).ok_or_else(|| {
                    ParseError(alloc::format!("value of {} is not base64", e.key))
                })?,
                None => Vec::new(),
            };
            Ok(KvEntry {
                key: e.key,
                value,
                modify_index: e.modify_index,
            })
        })
        .collect()
}

/// One KV write, checked against the index it was planned from so a concurrent change makes the
/// whole transaction fail instead of being overwritten.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnOp {
    /// Write `value` if the key's ModifyIndex is still `index` (0: only if the key is absent).
    Set {
        /// The key.
        key: String,
        /// The raw value.
        value: Vec<u8>,
        /// Expected ModifyIndex; 0 means "must not exist".
        index: u64,
    },
    /// Delete the key if its ModifyIndex is still `index`.
    Delete {
        /// The key.
        key: String,
        /// Expected ModifyIndex.
        index: u64,
    },
}

impl TxnOp {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Set { key, .. } | TxnOp::Delete { key, .. } => key,
        }
    }
}

/// The `PUT /v1/txn` body for `ops` (at most [`TXN_MAX_OPS`]).
pub fn txn_body(ops: &[TxnOp]) -> Vec<u8> {
    let ops: Vec<serde_json::Value> = ops
        .iter()
        .map(|op| match op {
            TxnOp::Set { key, value, index } => serde_json::json!({"KV": {
                "Verb": "cas", "Key": key, "Value": base64_encode(value), "Index": index,
            }}),
            TxnOp::Delete { key, index } => serde_json::json!({"KV": {
                "Verb": "delete-cas", "Key": key, "Index": index,
            }}),
        })
        .collect();
    serde_json::to_vec(&ops).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_app_and_label() {
        assert_eq!(
            KvKey::parse("consular/my-app/a/b"),
            Some(KvKey {
                app_name: "my-app",
                label: Some("a/b")
            })
        );
        assert_eq!(
            KvKey::parse("consular/leaf"),
            Some(KvKey {
                app_name: "leaf",
                label: None
            })
        );
        assert_eq!(KvKey::parse("consular/"), None);
        assert_eq!(KvKey::parse("other/x"), None);
    }

    #[test]
    fn label_values_are_json_strings() {
        assert_eq!(label_value("bar"), b"\"bar\"");
        assert_eq!(label_value(""), b"\"\"");
    }

    #[test]
    fn entries_decode_base64_and_null() {
        let entries = parse_kv_entries(
            br#"[{"Key":"consular/a/x","Value":"ImJhciI=","ModifyIndex":7},{"Key":"consular/a/y","Value":null,"ModifyIndex":8}]"#,
        )
        .unwrap();
        assert_eq!(entries[0].value, b"\"bar\"");
        assert_eq!(entries[0].modify_index, 7);
        assert!(entries[1].value.is_empty());
    }

    #[test]
    fn txn_uses_index_checked_verbs() {
        let body = txn_body(&[
            TxnOp::Set {
                key: "consular/a/x".into(),
                value: b"\"v\"".to_vec(),
                index: 0,
            },
            TxnOp::Delete {
                key: "consular/a/y".into(),
                index: 9,
            },
        ]);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed[0]["KV"]["Verb"], "cas");
        assert_eq!(parsed[0]["KV"]["Value"], "InYi");
        assert_eq!(parsed[1]["KV"]["Verb"], "delete-cas");
        assert_eq!(parsed[1]["KV"]["Index"], 9);
    }
}
