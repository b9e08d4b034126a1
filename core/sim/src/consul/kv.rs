//! The simulated Consul's KV store: the table with its flags, Raft indexes and lock holders
//! ([`KvStore`]), `GET`/`PUT`/`DELETE /v1/kv/{key}` with `?recurse`, `?keys`, `?separator`,
//! `?raw`, `?cas`, `?flags`, `?acquire` and `?release`, their Go error texts, and
//! [`SimConsul::kv_blocks`] for blocking reads.
//!
//! Not here: transactions over the same table (`super::txn`), sessions and lock delays
//! (`super::session`), routing and `?index`/`?wait` validation (`super::routes`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use consular_core::encoding::base64_encode;

use super::routes::{clean_path, parse_go_duration, Ctx};
use super::{SimConsul, SimKvEntry, MAX_VALUE, TEXT};
use crate::wire::{
    parse_query, percent_decode, query_get, query_has, split_path_query, SimResponse, J,
};

/// A blocking query's default wait (`defaultQueryTime`).
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// A blocking query's longest wait (`maxQueryTime`).
const MAX_WAIT: Duration = Duration::from_secs(600);

impl SimConsul {
    /// Whether `GET path_and_query` on the KV store would block now, and if so for how long at
    /// most: `Some(wait)` when it carries `?index=N` (N > 0), would succeed, and the
    /// `X-Consul-Index` it would answer is still ≤ N. A single existing key answers its own
    /// `ModifyIndex`, so its read blocks until that key is written, acquired, released or
    /// deleted; a missing key, `?recurse` and `?keys` answer the KV table's index, so they wake
    /// on any KV write (real Consul wakes them only for writes near the key in its radix tree,
    /// then answers the same way; an early return is allowed by the contract). `wait` is
    /// `?wait` (default 5 min, at most 10 min; a zero wait is the default); real Consul adds up
    /// to wait/16 of random jitter, which is the world's to add. `None`: answer at once.
    ///
    /// [`SimConsul::handle`] never blocks: it answers as the read would once it stops blocking.
    /// A world parks a `GET` for which this is `Some(wait)` and, after every change to the
    /// simulator (each handled write, [`SimConsul::set_time`], agents going down or up), asks
    /// again: once it is `None`, or `wait` has passed, it calls `handle` and delivers that
    /// answer (at the deadline the answer carries the unchanged index, as a timed-out query
    /// does). TTL expiries happen at [`SimConsul::next_session_expiry`], so a world should also
    /// wake then. If the receiving agent goes down while the read is parked, the client sees a
    /// dropped connection.
    pub fn kv_blocks(&self, path_and_query: &str) -> Option<Duration> {
        if !self.server_up() {
            return None;
        }
        let (raw_path, query) = split_path_query(path_and_query);
        let path = String::from_utf8_lossy(&percent_decode(raw_path, false)?).into_owned();
        if clean_path(&path) != path {
            return None;
        }
        let key = path.strip_prefix("/v1/kv/")?;
        let params = parse_query(query, true);
        if query_get(&params, "dc").is_some_and(|dc| !dc.is_empty() && dc != self.datacenter) {
            return None;
        }
        let min_index: u64 = query_get(&params, "index")?.parse().ok()?;
        let wait = match query_get(&params, "wait") {
            Some(w) => Duration::from_nanos(parse_go_duration(w)?),
            None => Duration::ZERO,
        };
        let wait = if wait.is_zero() {
            DEFAULT_WAIT
        } else {
            wait.min(MAX_WAIT)
        };
        let answer = self.kv_answer_index(key, &params)?.max(1);
        (min_index > 0 && answer <= min_index).then_some(wait)
    }

    /// The `X-Consul-Index` a `GET /v1/kv/<key>` with `params` answers; `None` for an error.
    fn kv_answer_index(&self, key: &str, params: &[(String, String)]) -> Option<u64> {
        if query_has(params, "keys") || query_has(params, "recurse") {
            return Some(self.kv_index);
        }
        if key.is_empty() {
            return None;
        }
        Some(self.kv.get(key).map_or(self.kv_index, |e| e.modify_index))
    }

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
        // One key answers with its own ModifyIndex, a tree with the table's.
        let index = if recurse {
            self.kv_index
        } else {
            entries[0].1.modify_index
        };
        if !recurse && query_has(&ctx.params, "raw") {
            let value = entries[0].1.value.clone();
            let content_type = sniff(&value);
            return self.with_meta(SimResponse::new(200, content_type, value), index);
        }
        let body = J::Arr(entries.iter().map(|(k, e)| kv_json(k, e, true)).collect());
        self.with_meta(ctx.json(200, &body), index)
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
        if let Some(session) = query_get(&ctx.params, "acquire") {
            return self.kv_acquire(key, session, flags, body, ctx);
        }
        if let Some(session) = query_get(&ctx.params, "release") {
            if session.is_empty() {
                return SimResponse::new(500, TEXT, "missing session");
            }
            let index = self.index + 1;
            let ok = self.kv.unlock(key, body.to_vec(), flags, session, index);
            if ok {
                self.bump();
                self.kv_index = index;
            }
            return ctx.json(200, &J::Bool(ok));
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

    /// `?acquire=<session>`: the RPC's lock-delay check first (`false`), then the state store's
    /// `kvsLockTxn`.
    fn kv_acquire(
        &mut self,
        key: &str,
        session: &str,
        flags: u64,
        body: &[u8],
        ctx: &Ctx,
    ) -> SimResponse {
        if self.in_lock_delay(key) {
            return ctx.json(200, &J::Bool(false));
        }
        if session.is_empty() {
            return SimResponse::new(500, TEXT, "missing session");
        }
        match self.session_lookup(session) {
            Err(e) => return SimResponse::new(500, TEXT, e),
            Ok(None) => return SimResponse::new(500, TEXT, format!("invalid session {session:?}")),
            Ok(Some(_)) => {}
        }
        let index = self.index + 1;
        let ok = self.kv.lock(key, body.to_vec(), flags, session, index);
        if ok {
            self.bump();
            self.kv_index = index;
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

#[derive(Debug, Clone, PartialEq, Eq)]
struct KvMeta {
    flags: u64,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
    session: Option<String>,
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
            session: meta.session.clone(),
        })
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// A plain write (`kvsSetTxn` without a session update): keeps the holder, resets
    /// `LockIndex` to 0 as 1.8.7 does.
    pub(super) fn set(&mut self, key: &str, value: Vec<u8>, flags: u64, index: u64) {
        let meta = self.meta.entry(key.to_string()).or_insert(KvMeta {
            flags,
            create_index: index,
            modify_index: index,
            lock_index: 0,
            session: None,
        });
        meta.flags = flags;
        meta.modify_index = index;
        meta.lock_index = 0;
        self.values.insert(key.to_string(), value);
    }

    /// `kvsLockTxn` once the session is known to exist: false when another session holds the
    /// key. A free key's `LockIndex` goes up by one; the holder's own acquire keeps it.
    pub(super) fn lock(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        session: &str,
        index: u64,
    ) -> bool {
        let (create_index, lock_index) = match self.meta.get(key) {
            Some(m) if m.session.as_deref() == Some(session) => (m.create_index, m.lock_index),
            Some(m) if m.session.is_some() => return false,
            Some(m) => (m.create_index, m.lock_index + 1),
            None => (index, 1),
        };
        self.meta.insert(
            key.to_string(),
            KvMeta {
                flags,
                create_index,
                modify_index: index,
                lock_index,
                session: Some(session.to_string()),
            },
        );
        self.values.insert(key.to_string(), value);
        true
    }

    /// `kvsUnlockTxn`: false unless `session` holds the key; the value and flags become the
    /// request's, `LockIndex` stays.
    pub(super) fn unlock(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        session: &str,
        index: u64,
    ) -> bool {
        let Some(meta) = self.meta.get_mut(key) else {
            return false;
        };
        if meta.session.as_deref() != Some(session) {
            return false;
        }
        meta.session = None;
        meta.flags = flags;
        meta.modify_index = index;
        self.values.insert(key.to_string(), value);
        true
    }

    /// The session holding `key`, if any.
    pub(super) fn holder(&self, key: &str) -> Option<&str> {
        self.meta.get(key)?.session.as_deref()
    }

    /// Keys held by `session`, by key.
    pub(super) fn held_by(&self, session: &str) -> Vec<String> {
        self.meta
            .iter()
            .filter(|(_, m)| m.session.as_deref() == Some(session))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// An invalidation's release: only `Session` goes; value, flags and `LockIndex` stay.
    pub(super) fn clear_session(&mut self, key: &str, index: u64) {
        if let Some(meta) = self.meta.get_mut(key) {
            meta.session = None;
            meta.modify_index = index;
        }
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
    let mut o = J::obj([
        ("LockIndex", J::u(e.lock_index)),
        ("Key", J::s(key)),
        ("Flags", J::u(e.flags)),
        ("Value", value),
    ]);
    if let Some(session) = &e.session {
        o.put("Session", J::s(session.as_str()));
    }
    o.put("CreateIndex", J::u(e.create_index));
    o.put("ModifyIndex", J::u(e.modify_index));
    o
}

/// Go's `strconv.ParseUint(s, 10, 64)` with its error text.
pub(super) fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
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
