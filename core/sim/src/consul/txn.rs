//! The simulated Consul's `/v1/txn`: parsing a transaction's KV operations (Go's decoding and
//! base64 error texts, size and count limits), the lock-delay pre-check, applying them all or
//! none to the KV table (with sessions for `lock`, `unlock` and `check-session`), and the
//! `Results`/`Errors` answer.
//!
//! Not here: the KV table and single-key endpoints (`super::kv`), routing (`super::routes`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use consular_core::encoding::base64_decode;
use serde_json::Value;

use super::kv::{kv_json, KvStore};
use super::registration::{go_syntax_error, json_kind, type_error};
use super::routes::Ctx;
use super::session::{uuid_error, Session};
use super::{SimConsul, SimKvEntry, JSON, MAX_TXN_OPS, MAX_VALUE, TEXT};
use crate::wire::{SimResponse, J};

impl SimConsul {
    pub(super) fn txn(&mut self, ctx: &Ctx, body: &[u8]) -> SimResponse {
        if body.len() > MAX_VALUE {
            return SimResponse::new(
                413,
                TEXT,
                format!("Request body too large, max size: {MAX_VALUE} bytes"),
            );
        }
        let parse_failed =
            |e: String| SimResponse::new(400, TEXT, format!("Failed to parse body: {e}"));
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return parse_failed(go_syntax_error(body, &e)),
        };
        let ops = match value {
            Value::Array(ops) => ops,
            Value::Null => Vec::new(),
            other => {
                return parse_failed(format!(
                    "json: cannot unmarshal {} into Go value of type api.TxnOps",
                    json_kind(&other)
                ))
            }
        };
        if ops.len() > MAX_TXN_OPS {
            return SimResponse::new(
                413,
                TEXT,
                format!(
                    "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                    ops.len()
                ),
            );
        }
        let mut parsed = Vec::with_capacity(ops.len());
        for op in &ops {
            match TxnOp::parse(op) {
                Ok(op) => parsed.push(op),
                Err(TxnParseError::Body(e)) => return parse_failed(e),
                Err(TxnParseError::TooLarge(key, len)) => {
                    return SimResponse::new(
                        413,
                        TEXT,
                        format!("Value for key {key:?} is too large ({len} > {MAX_VALUE} bytes)"),
                    )
                }
            }
        }
        let writes = parsed.iter().any(TxnOp::is_write);
        // The endpoint's preCheck: a lock on a key in its lock delay fails it before any apply.
        let delayed: Vec<J> = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, op)| {
                let kv = op.kv.as_ref().filter(|kv| kv.verb == "lock")?;
                self.in_lock_delay(&kv.key).then(|| {
                    let what = format!("failed to lock key {:?} due to lock delay", kv.key);
                    J::obj([("OpIndex", J::u(i as u64)), ("What", J::s(what))])
                })
            })
            .collect();
        if !delayed.is_empty() {
            let o = J::obj([("Results", J::Null), ("Errors", J::Arr(delayed))]);
            return ctx.json(409, &o);
        }
        let index = self.index + 1;
        let mut kv = self.kv.clone();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, op) in parsed.iter().enumerate() {
            match op.apply(&mut kv, index, &self.sessions) {
                Ok(r) => results.extend(r),
                Err(what) => {
                    errors.push(J::obj([("OpIndex", J::u(i as u64)), ("What", J::s(what))]))
                }
            }
        }
        let read_meta = |o: &mut J, kv_index: u64| {
            o.put("Index", J::u(kv_index));
            o.put("LastContact", J::Int(0));
            o.put("KnownLeader", J::Bool(true));
            o.put("ConsistencyLevel", J::s("leader"));
        };
        if !errors.is_empty() {
            let mut o = J::obj([("Results", J::Null), ("Errors", J::Arr(errors))]);
            if !writes {
                read_meta(&mut o, self.kv_index);
            }
            let body = if ctx.pretty {
                o.pretty_go()
            } else {
                o.compact(true)
            };
            return SimResponse::new(409, JSON, body);
        }
        let mut o = J::obj([("Results", J::Arr(results)), ("Errors", J::Null)]);
        if writes {
            if kv != self.kv {
                self.index = index;
                self.kv_index = index;
                self.kv = kv;
            }
        } else {
            read_meta(&mut o, self.kv_index);
        }
        ctx.json(200, &o)
    }
}

struct TxnOp {
    kv: Option<KvOp>,
}

struct KvOp {
    verb: String,
    key: String,
    value: Vec<u8>,
    flags: u64,
    index: u64,
    session: String,
}

enum TxnParseError {
    Body(String),
    TooLarge(String, usize),
}

impl TxnOp {
    fn parse(op: &Value) -> Result<TxnOp, TxnParseError> {
        let field = |v: &Value, name: &str| -> Option<Value> {
            v.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body_err = |e: String| TxnParseError::Body(e);
        match op {
            Value::Object(_) => {}
            Value::Null => return Ok(TxnOp { kv: None }),
            other => {
                return Err(body_err(format!(
                    "json: cannot unmarshal {} into Go value of type api.TxnOp",
                    json_kind(other)
                )))
            }
        }
        let Some(kv) = field(op, "KV").filter(|v| !v.is_null()) else {
            return Ok(TxnOp { kv: None });
        };
        if !kv.is_object() {
            return Err(body_err(type_error(&kv, "KV", "api.KVTxnOp")));
        }
        let string = |name: &str| -> Result<String, TxnParseError> {
            match field(&kv, name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(body_err(type_error(
                    &other,
                    &format!("KV.{name}"),
                    "string",
                ))),
            }
        };
        let uint = |name: &str| -> Result<u64, TxnParseError> {
            match field(&kv, name) {
                None | Some(Value::Null) => Ok(0),
                Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                    body_err(format!(
                        "json: cannot unmarshal number {n} into Go struct field .KV.{name} of type uint64"
                    ))
                }),
                Some(other) => Err(body_err(type_error(&other, &format!("KV.{name}"), "uint64"))),
            }
        };
        let verb = string("Verb")?;
        let key = string("Key")?;
        let encoded = string("Value")?;
        let value = if encoded.is_empty() {
            Vec::new()
        } else {
            decode_go_base64(&encoded).map_err(body_err)?
        };
        if value.len() > MAX_VALUE {
            return Err(TxnParseError::TooLarge(key, value.len()));
        }
        Ok(TxnOp {
            kv: Some(KvOp {
                verb,
                key,
                value,
                flags: uint("Flags")?,
                index: uint("Index")?,
                session: string("Session")?,
            }),
        })
    }

    fn is_write(&self) -> bool {
        self.kv.as_ref().is_some_and(|kv| {
            matches!(
                kv.verb.as_str(),
                "set" | "cas" | "lock" | "unlock" | "delete" | "delete-tree" | "delete-cas"
            )
        })
    }

    /// Applies the op to the working copy; results to append, or the error's `What`.
    fn apply(
        &self,
        kv: &mut KvStore,
        index: u64,
        sessions: &BTreeMap<String, Session>,
    ) -> Result<Vec<J>, String> {
        let Some(op) = &self.kv else {
            return Err("simulator: only KV operations are modelled".into());
        };
        let key = op.key.as_str();
        let result = |kv: &KvStore, with_value: bool| -> Vec<J> {
            kv.get(key)
                .map(|e| vec![J::obj([("KV", kv_json(key, &e, with_value))])])
                .unwrap_or_default()
        };
        match op.verb.as_str() {
            "set" => {
                kv.set(key, op.value.clone(), op.flags, index);
                Ok(result(kv, false))
            }
            "cas" => {
                let ok = match kv.get(key) {
                    None => op.index == 0,
                    Some(e) => op.index != 0 && e.modify_index == op.index,
                };
                if !ok {
                    return Err(format!("failed to set key {key:?}, index is stale"));
                }
                kv.set(key, op.value.clone(), op.flags, index);
                Ok(result(kv, false))
            }
            "lock" => {
                let session = op.session.as_str();
                if session.is_empty() {
                    return Err("missing session".into());
                }
                if let Some(e) = uuid_error(session) {
                    return Err(format!("failed session lookup: index error: {e}"));
                }
                if !sessions.contains_key(session) {
                    return Err(format!("invalid session {session:?}"));
                }
                if !kv.lock(key, op.value.clone(), op.flags, session, index) {
                    return Err(format!("failed to lock key {key:?}, lock is already held"));
                }
                Ok(result(kv, false))
            }
            "unlock" => {
                if op.session.is_empty() {
                    return Err("missing session".into());
                }
                if !kv.unlock(key, op.value.clone(), op.flags, &op.session, index) {
                    return Err(format!(
                        "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                    ));
                }
                Ok(result(kv, false))
            }
            "get" => {
                if !kv.contains_key(key) {
                    return Err(format!("key {key:?} doesn't exist"));
                }
                Ok(result(kv, true))
            }
            "get-or-empty" => Ok(match kv.get(key) {
                Some(e) => vec![J::obj([("KV", kv_json(key, &e, true))])],
                None => vec![J::obj([(
                    "KV",
                    kv_json(
                        key,
                        &SimKvEntry {
                            value: Vec::new(),
                            flags: 0,
                            create_index: 0,
                            modify_index: 0,
                            lock_index: 0,
                            session: None,
                        },
                        true,
                    ),
                )])],
            }),
            "get-tree" => Ok(kv
                .prefixed(key)
                .iter()
                .map(|(k, e)| J::obj([("KV", kv_json(k, e, true))]))
                .collect()),
            "check-index" => match kv.get(key) {
                None => Err(format!("key {key:?} doesn't exist")),
                Some(e) if e.modify_index != op.index => Err(format!(
                    "failed index check for key {key:?}, current modify index {} != {}",
                    e.modify_index, op.index
                )),
                Some(_) => Ok(result(kv, false)),
            },
            "check-session" => {
                if !kv.contains_key(key) {
                    return Err(format!(
                        "failed to check session, key {key:?} doesn't exist"
                    ));
                }
                let current = kv.holder(key).unwrap_or("");
                if current != op.session {
                    return Err(format!(
                        "failed session check for key {key:?}, current session {current:?} != {:?}",
                        op.session
                    ));
                }
                Ok(result(kv, false))
            }
            "check-not-exists" => {
                if kv.contains_key(key) {
                    return Err(format!("key {key:?} exists"));
                }
                Ok(Vec::new())
            }
            "delete" => {
                kv.remove(key);
                Ok(Vec::new())
            }
            "delete-tree" => {
                kv.remove_prefix(key);
                Ok(Vec::new())
            }
            "delete-cas" => match kv.get(key) {
                Some(e) if e.modify_index != op.index => {
                    Err(format!("failed to delete key {key:?}, index is stale"))
                }
                _ => {
                    kv.remove(key);
                    Ok(Vec::new())
                }
            },
            verb => Err(format!("unknown KV verb {verb:?}")),
        }
    }
}

/// Go's `base64.StdEncoding` decoding (padding required) with its error text.
fn decode_go_base64(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let data_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
    if let Some(bad) = bytes[..data_len].iter().position(|&b| !alphabet(b)) {
        return Err(format!("illegal base64 data at input byte {bad}"));
    }
    if bytes.len() % 4 != 0 || bytes.len() - data_len > 2 {
        let at = bytes.len() - bytes.len() % 4;
        return Err(format!(
            "illegal base64 data at input byte {}",
            at.min(data_len)
        ));
    }
    base64_decode(text).ok_or_else(|| format!("illegal base64 data at input byte {data_len}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_base64() {
        assert_eq!(decode_go_base64("Zm9v"), Ok(b"foo".to_vec()));
        assert!(decode_go_base64("Zm9").is_err());
        assert!(decode_go_base64("Zm!v").is_err());
    }
}
