//! Consul KV as the bridge uses it: the `consular/<app-name>/<label>` layout, JSON-encoded label
//! values, parsing of recursive reads, and `/v1/txn` bodies for batched, index-checked writes.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use crate::encoding::{base64_decode, base64_encode, encode_segment, json_ascii_string};
use crate::error::ParseError;

/// Every key the bridge writes or deletes starts with this.
pub const KV_ROOT: &str = "consular/";
/// `PUT` applies a KV transaction.
pub const TXN_PATH: &str = "/v1/txn";
/// Consul 1.8 rejects transactions with more operations than this.
pub const TXN_MAX_OPS: usize = 64;
/// Consul 1.8 rejects a transaction body larger than this (`txn_max_req_len`, 512 KiB).
pub const TXN_MAX_BYTES: usize = 512 * 1024;

/// The mark our KV writes carry in Consul's `Flags`: FNV-1a of the registration id, never 0, so
/// two bridges with different registration ids sharing one Consul tell their keys apart. Keys
/// with no mark (0), as consular 1.3.0 and earlier versions wrote them, count as anyone's. Kept
/// to 52 bits, so any JSON reader (a browser's included) reads it back exactly.
pub fn kv_mark(registration_id: &str) -> u64 {
    let hash = registration_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (hash >> 12).max(1)
}

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
    /// Consul's `Flags`: the [`kv_mark`] of the bridge that wrote it, or 0.
    pub flags: u64,
}

impl KvEntry {
    /// True if a bridge with `mark` may change or delete this key: it wrote it, or nobody marked
    /// it.
    pub fn is_ours(&self, mark: u64) -> bool {
        self.flags == 0 || self.flags == mark
    }
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: Option<String>,
    #[serde(rename = "ModifyIndex", default)]
    modify_index: u64,
    #[serde(rename = "Flags", default)]
    flags: u64,
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
                flags: e.flags,
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
        /// Consul's `Flags` to store with it: our [`kv_mark`].
        flags: u64,
    },
    /// Delete the key if its ModifyIndex is still `index`.
    Delete {
        /// The key.
        key: String,
        /// Expected ModifyIndex.
        index: u64,
    },
    /// Fail the whole transaction unless `key` is held by `session`: a leader's guard
    /// (`--ha`), so a deposed leader's batch cannot land.
    CheckSession {
        /// The lock key.
        key: String,
        /// The session that must hold it.
        session: String,
    },
}

impl TxnOp {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Set { key, .. }
            | TxnOp::Delete { key, .. }
            | TxnOp::CheckSession { key, .. } => key,
        }
    }
}

/// The `PUT /v1/txn` body for `ops` (at most [`TXN_MAX_OPS`], at most [`TXN_MAX_BYTES`]).
pub fn txn_body(ops: &[TxnOp]) -> Vec<u8> {
    let ops: Vec<serde_json::Value> = ops.iter().map(txn_op_json).collect();
    serde_json::to_vec(&ops).unwrap_or_default()
}

fn txn_op_json(op: &TxnOp) -> serde_json::Value {
    match op {
        TxnOp::Set {
            key,
            value,
            index,
            flags,
        } => serde_json::json!({"KV": {
            "Verb": "cas", "Key": key, "Value": base64_encode(value), "Index": index, "Flags": flags,
        }}),
        TxnOp::Delete { key, index } => serde_json::json!({"KV": {
            "Verb": "delete-cas", "Key": key, "Index": index,
        }}),
        TxnOp::CheckSession { key, session } => serde_json::json!({"KV": {
            "Verb": "check-session", "Key": key, "Session": session,
        }}),
    }
}

/// One transaction of a batched write: its body and how many operations it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnBatch {
    /// The `PUT /v1/txn` body.
    pub body: Vec<u8>,
    /// Operations in it.
    pub ops: usize,
}

/// `ops` cut into transactions Consul accepts: at most [`TXN_MAX_OPS`] operations and
/// [`TXN_MAX_BYTES`] of body each, in order. An operation too large for any transaction on its
/// own (a label value near 512 KiB) cannot be written: its key is returned instead.
pub fn txn_batches(ops: &[TxnOp]) -> (Vec<TxnBatch>, Vec<String>) {
    guarded_txn_batches(ops, None)
}

/// [`txn_batches`] with `guard` (a [`TxnOp::CheckSession`]) first in every transaction, within
/// the same limits; [`TxnBatch::ops`] counts the other operations.
pub fn guarded_txn_batches(ops: &[TxnOp], guard: Option<&TxnOp>) -> (Vec<TxnBatch>, Vec<String>) {
    let guard = guard.map(txn_op_json);
    let guard_bytes = guard.as_ref().map_or(0, |g| {
        serde_json::to_vec(g).map_or(usize::MAX, |b| b.len() + 1)
    });
    let start = || -> Vec<serde_json::Value> { guard.iter().cloned().collect() };
    let guards = usize::from(guard.is_some());
    let mut batches = Vec::new();
    let mut too_large = Vec::new();
    let mut current = start();
    // `[`, `]` and a comma between operations.
    let empty_bytes = 2 + guard_bytes;
    let mut current_bytes = empty_bytes;
    let mut flush = |current: &mut Vec<serde_json::Value>, bytes: &mut usize| {
        if current.len() > guards {
            let ops = current.len() - guards;
            let body =
                serde_json::to_vec(&core::mem::replace(current, start())).unwrap_or_default();
            batches.push(TxnBatch { body, ops });
        }
        *bytes = empty_bytes;
    };
    for op in ops {
        let json = txn_op_json(op);
        let bytes = serde_json::to_vec(&json).map_or(usize::MAX, |b| b.len());
        if bytes.saturating_add(empty_bytes) > TXN_MAX_BYTES {
            too_large.push(String::from(op.key()));
            continue;
        }
        if current.len() == TXN_MAX_OPS || current_bytes + bytes + 1 > TXN_MAX_BYTES {
            flush(&mut current, &mut current_bytes);
        }
        current_bytes += bytes + usize::from(!current.is_empty());
        current.push(json);
    }
    flush(&mut current, &mut current_bytes);
    (batches, too_large)
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
                flags: kv_mark("r"),
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
        assert_eq!(parsed[0]["KV"]["Flags"], kv_mark("r"));
    }

    #[test]
    fn marks_differ_by_registration_id_and_are_never_zero() {
        assert_ne!(kv_mark("blue"), kv_mark("green"));
        assert_eq!(kv_mark("blue"), kv_mark("blue"));
        assert_ne!(kv_mark(""), 0);
        assert!(kv_mark("blue") < 1 << 53, "exact as a JSON number anywhere");
    }

    #[test]
    fn batches_hold_at_most_64_ops_and_512_kib() {
        let set = |i: usize, len: usize| TxnOp::Set {
            key: alloc::format!("consular/a/k{i}"),
            value: alloc::vec![b'x'; len],
            index: 0,
            flags: 1,
        };
        let small: Vec<TxnOp> = (0..130).map(|i| set(i, 10)).collect();
        let (batches, too_large) = txn_batches(&small);
        let counts: Vec<usize> = batches.iter().map(|b| b.ops).collect();
        assert_eq!(counts, [64, 64, 2]);
        assert!(too_large.is_empty());
        // Five values of 150 KiB (200 KiB in base64): two fit a transaction.
        let big: Vec<TxnOp> = (0..5).map(|i| set(i, 150 * 1024)).collect();
        let (batches, _) = txn_batches(&big);
        let counts: Vec<usize> = batches.iter().map(|b| b.ops).collect();
        assert_eq!(counts, [2, 2, 1]);
        for batch in &batches {
            assert!(batch.body.len() <= TXN_MAX_BYTES, "{}", batch.body.len());
            let parsed: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
            assert_eq!(parsed.as_array().unwrap().len(), batch.ops);
        }
        let (batches, too_large) = txn_batches(&[set(0, 10), set(1, 400 * 1024), set(2, 10)]);
        assert_eq!(too_large, ["consular/a/k1"]);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].ops, 2);
    }
}
