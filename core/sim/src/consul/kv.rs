//! The simulated Consul's KV store: the table with its flags and Raft indexes ([`KvStore`]),
//! `GET`/`PUT`/`DELETE /v1/kv/{key}` with `?recurse`, `?keys`, `?separator`, `?raw`, `?cas`,
//! `?flags` and the session flags (which fail, as no session exists), and their Go error texts.
//!
//! Not here: transactions over the same table (`super::txn`), routing (`super::routes`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use consular_core::encoding::base64_encode;

use super::routes::Ctx;
use super::{SimConsul, SimKvEntry, MAX_VALUE, TEXT};
use crate::wire::{query_get, query_has, SimResponse, J};

impl SimConsul {
    pub(super) fn kv_get(&self, key: &str, ctx: &Ctx) -> SimResponse {
        let recurse = query_has(&ctx.params, "recurse");
        let not_found = || self.with_meta(SimResponse::new(404, "", Vec::new()), self.kv_index);
        if query_has(&ctx.params, "keys") {
            let separator = query_get(&ctx.params, "separator").unwrap_or("");
            let mut keys: Vec<String> = Vec::new();
            for k in self.kv.values.keys().filter(|k| k.starts_with(key)) {
                let after = &k[key.len()..];
                let listed = match after.find(separator).filter(|_| !separator.is_empty()) {
                    Some(i) => k[..key.len() + i + separator.len()].to_string(),
                    None => k.clone(),
                };
                if keys.last() != Some(&listed) {
                    keys.push(listed);
                }
            }
            if keys.is_empty() {
                return not_found();
            }
            let body = J::strs(keys.iter().map(String::as_str));
            return self.with_meta(ctx.json(200, &body), self.kv_index);
        }
        if !recurse && key.is_empty() {
            return SimResponse::new(400, TEXT, "Missing key name");
        }
        let entries: Vec<(String, SimKvEntry)> = if recurse {
            self.kv.prefixed(key)
        } else {
            self.kv
                .get(key)
                .map(|e| (key.to_string(), e))
                .into_iter()
                .collect()
        };
        if entries.is_empty() {
            return not_found();
        }
        if !recurse && query_has(&ctx.params, "raw") {
            let value = entries[0].1.value.clone();
            let content_type = sniff(&value);
            return self.with_meta(SimResponse::new(200, content_type, value), self.kv_index);
        }
        let body = J::Arr(entries.iter().map(|(k, e)| kv_json(k, e, true)).collect());
        self.with_meta(ctx.json(200, &body), self.kv_index)
    }

    pub(super) fn kv_put(&mut self, key: &str, ctx: &Ctx, body: &[u8]) -> SimResponse {
        if key.is_empty() {
            return SimResponse::new(400, TEXT, "Missing key name");
        }
        if let Some(r) = conflicting_flags(&ctx.params, &["cas", "acquire", "release"]) {
            return r;
        }
        if body.len() > MAX_VALUE {
            return SimResponse::new(
                413,
                TEXT,
                format!(
                    "Request body({} bytes) too large, max size: {MAX_VALUE} bytes. See https://www.consul.io/docs/agent/options.html#kv_max_value_size.",
                    body.len()
                ),
            );
        }
        let flags = match query_get(&ctx.params, "flags").map(parse_uint) {
            Some(Err(e)) => return SimResponse::new(500, TEXT, e),
            Some(Ok(f)) => f,
            None => 0,
        };
        let cas = match query_get(&ctx.params, "cas").map(parse_uint) {
            Some(Err(e)) => return SimResponse::new(500, TEXT, e),
            Some(Ok(c)) => Some(c),
            None => None,
        };
        for flag in ["acquire", "release"] {
            if let Some(session) = query_get(&ctx.params, flag) {
                return SimResponse::new(500, TEXT, session_error(session));
            }
        }
        let ok = match (cas, self.kv.get(key)) {
            (None, _) => true,
            (Some(0), existing) => existing.is_none(),
            (Some(c), Some(e)) => e.modify_index == c,
            (Some(_), None) => false,
        };
        if ok {
            let index = self.bump();
            self.kv_index = index;
            self.kv.set(key, body.to_vec(), flags, index);
        }
        ctx.json(200, &J::Bool(ok))
    }

    pub(super) fn kv_delete(&mut self, key: &str, ctx: &Ctx) -> SimResponse {
        if let Some(r) = conflicting_flags(&ctx.params, &["recurse", "cas"]) {
            return r;
        }
        let recurse = query_has(&ctx.params, "recurse");
        if !recurse && key.is_empty() {
            return SimResponse::new(400, TEXT, "Missing key name");
        }
        let cas = match query_get(&ctx.params, "cas").map(parse_uint) {
            Some(Err(e)) => return SimResponse::new(500, TEXT, e),
            Some(Ok(c)) => Some(c),
            None => None,
        };
        let doomed: Vec<String> = if recurse {
            self.kv
                .values
                .keys()
                .filter(|k| k.starts_with(key))
                .cloned()
                .collect()
        } else {
            match (cas, self.kv.get(key)) {
                (Some(c), Some(e)) if e.modify_index != c => return ctx.json(200, &J::Bool(false)),
                (_, Some(_)) => vec![key.to_string()],
                (_, None) => Vec::new(),
            }
        };
        if !doomed.is_empty() {
            let index = self.bump();
            self.kv_index = index;
            for k in &doomed {
                self.kv.remove(k);
            }
        }
        ctx.json(200, &J::Bool(true))
    }
}

/// The KV table: raw values (what [`SimConsul::kv`] lends out) and, under the same keys, flags
/// and indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KvStore {
    pub(super) values: BTreeMap<String, Vec<u8>>,
    meta: BTreeMap<String, KvMeta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KvMeta {
    flags: u64,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
}

impl KvStore {
    pub(super) fn get(&self, key: &str) -> Option<SimKvEntry> {
        let value = self.values.get(key)?;
        let meta = self.meta.get(key)?;
        Some(SimKvEntry {
            value: value.clone(),
            flags: meta.flags,
            create_index: meta.create_index,
            modify_index: meta.modify_index,
            lock_index: meta.lock_index,
        })
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub(super) fn set(&mut self, key: &str, value: Vec<u8>, flags: u64, index: u64) {
        let meta = self.meta.entry(key.to_string()).or_insert(KvMeta {
            flags,
            create_index: index,
            modify_index: index,
            lock_index: 0,
        });
        meta.flags = flags;
        meta.modify_index = index;
        self.values.insert(key.to_string(), value);
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.values.remove(key);
        self.meta.remove(key);
    }

    pub(super) fn remove_prefix(&mut self, prefix: &str) {
        self.values.retain(|k, _| !k.starts_with(prefix));
        self.meta.retain(|k, _| !k.starts_with(prefix));
    }

    /// Entries whose key starts with `prefix` (a plain string prefix), by key.
    pub(super) fn prefixed(&self, prefix: &str) -> Vec<(String, SimKvEntry)> {
        self.values
            .keys()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| self.get(k).map(|e| (k.clone(), e)))
            .collect()
    }
}

pub(super) fn kv_json(key: &str, e: &SimKvEntry, with_value: bool) -> J {
    let value = if with_value && !e.value.is_empty() {
        J::s(base64_encode(&e.value))
    } else {
        J::Null
    };
    J::obj([
        ("LockIndex", J::u(e.lock_index)),
        ("Key", J::s(key)),
        ("Flags", J::u(e.flags)),
        ("Value", value),
        ("CreateIndex", J::u(e.create_index)),
        ("ModifyIndex", J::u(e.modify_index)),
    ])
}

/// Go's `strconv.ParseUint(s, 10, 64)` with its error text.
pub(super) fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

pub(super) fn session_error(session: &str) -> String {
    if session.len() == 36 {
        format!("invalid session {session:?}")
    } else {
        "failed session lookup: index error: UUID must be 36 characters".into()
    }
}

/// `400 Conflicting flags: <query re-encoded>` when more than one of `flags` is present.
fn conflicting_flags(params: &[(String, String)], flags: &[&str]) -> Option<SimResponse> {
    if flags.iter().filter(|f| query_has(params, f)).count() < 2 {
        return None;
    }
    // Go's url.Values.Encode: keys sorted, values in order, QueryEscape'd.
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let encoded: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    Some(SimResponse::new(
        400,
        TEXT,
        format!("Conflicting flags: {}", encoded.join("&")),
    ))
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// 1.8.7's sniffed `?raw` content type (before the 1.8.10 `text/plain` fix), simplified.
fn sniff(value: &[u8]) -> &'static str {
    let start = value
        .iter()
        .position(|b| !b" \t\n\x0c\r".contains(b))
        .unwrap_or(value.len());
    let head = &value[start..];
    let lower: Vec<u8> = head.iter().take(14).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return "text/html; charset=utf-8";
    }
    let binary = value.iter().any(|&b| {
        b <= 0x08 || b == 0x0b || (0x0e..=0x1a).contains(&b) || (0x1c..=0x1f).contains(&b)
    });
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_numbers() {
        assert_eq!(parse_uint("12"), Ok(12));
        assert_eq!(
            parse_uint("abc"),
            Err("strconv.ParseUint: parsing \"abc\": invalid syntax".into())
        );
        assert!(parse_uint("99999999999999999999").is_err());
    }
}
