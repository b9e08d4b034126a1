//! Sessions on the simulated Consul: `/v1/session/{create,renew,destroy,info,node,list}` with
//! 1.8.7's decoding, defaults, validation order and error texts; the simulated clock and TTL
//! expiry; invalidation (TTL, destroy, a check going critical or away) releasing or deleting the
//! keys a session holds and starting their lock delay; and go-memdb's UUID errors.
//!
//! Not here: taking and releasing keys (`super::kv` for `?acquire`/`?release`, `super::txn` for
//! `lock`/`unlock`/`check-session`), routing (`super::routes`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use serde_json::Value;

use super::registration::{decode_object, json_kind, type_error};
use super::routes::Ctx;
use super::{SimConsul, TEXT};
use crate::wire::{SimResponse, J};

/// `structs.SessionTTLMultiplier`: the leader's timer fires this many TTLs after the last renewal.
const TTL_MULTIPLIER: u32 = 2;
/// `structs.MaxLockDelay`: longer lock delays are cut to this when applied.
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
const TTL_MIN_NS: i64 = 10_000_000_000;
const TTL_MAX_NS: i64 = 86_400_000_000_000;
/// `lockDelayMinThreshold`: a lock delay below 1000 ns is read as seconds.
const LOCK_DELAY_MIN_THRESHOLD: i64 = 1000;
const SERF_HEALTH: &str = "serfHealth";

/// What invalidating a session does to the keys it holds (`Behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SessionBehavior {
    /// `release` (the default): the key stays, without `Session`.
    Release,
    /// `delete`: the key is deleted.
    Delete,
}

impl SessionBehavior {
    fn as_str(self) -> &'static str {
        match self {
            SessionBehavior::Release => "release",
            SessionBehavior::Delete => "delete",
        }
    }
}

/// A live session, as [`SimConsul::sessions`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSession {
    /// The session ID (deterministic: `{n:08x}-5e55-4000-8000-{n:012x}` for the n-th session).
    pub id: String,
    /// `Name`.
    pub name: String,
    /// The node the session belongs to.
    pub node: String,
    /// `Behavior`.
    pub behavior: SessionBehavior,
    /// The TTL, `None` when the session has none.
    pub ttl: Option<Duration>,
    /// The lock delay as an invalidation applies it: at most 60 s, zero when not positive.
    pub lock_delay: Duration,
    /// When the TTL invalidates it unless renewed first (last renewal + 2 × TTL).
    pub expires_at: Option<Duration>,
    /// Index of the write that created it.
    pub create_index: u64,
}

/// A session as the state store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    pub(super) id: String,
    name: String,
    pub(super) node: String,
    /// `LockDelay` in nanoseconds as decoded (may be negative or above the 60 s cap).
    lock_delay_ns: i64,
    behavior: SessionBehavior,
    /// `TTL` as sent.
    ttl: String,
    ttl_ns: i64,
    node_checks: Option<Vec<String>>,
    service_checks: Option<Vec<(String, String)>>,
    /// The deprecated `Checks` (shown only when non-empty).
    checks: Option<Vec<String>>,
    create_index: u64,
    deadline: Option<Duration>,
}

impl Session {
    /// `Session.CheckIDs()`: node checks, service checks, then the legacy list.
    fn check_ids(&self) -> impl Iterator<Item = &str> {
        let node = self.node_checks.iter().flatten().map(String::as_str);
        let service = self
            .service_checks
            .iter()
            .flatten()
            .map(|(id, _)| id.as_str());
        let legacy = self.checks.iter().flatten().map(String::as_str);
        node.chain(service).chain(legacy)
    }

    fn ttl(&self) -> Option<Duration> {
        u64::try_from(self.ttl_ns)
            .ok()
            .filter(|&n| n > 0)
            .map(Duration::from_nanos)
    }

    fn effective_lock_delay(&self) -> Duration {
        u64::try_from(self.lock_delay_ns)
            .map(Duration::from_nanos)
            .unwrap_or(Duration::ZERO)
            .min(MAX_LOCK_DELAY)
    }

    fn json(&self) -> J {
        let strs = |list: &Option<Vec<String>>| {
            list.as_ref()
                .map_or(J::Null, |l| J::strs(l.iter().map(String::as_str)))
        };
        let service_checks = self.service_checks.as_ref().map_or(J::Null, |l| {
            J::Arr(
                l.iter()
                    .map(|(id, ns)| {
                        J::obj([("ID", J::s(id.as_str())), ("Namespace", J::s(ns.as_str()))])
                    })
                    .collect(),
            )
        });
        let mut o = J::obj([
            ("ID", J::s(self.id.as_str())),
            ("Name", J::s(self.name.as_str())),
            ("Node", J::s(self.node.as_str())),
            ("LockDelay", J::Int(self.lock_delay_ns)),
            ("Behavior", J::s(self.behavior.as_str())),
            ("TTL", J::s(self.ttl.as_str())),
            ("NodeChecks", strs(&self.node_checks)),
            ("ServiceChecks", service_checks),
        ]);
        if self.checks.as_ref().is_some_and(|c| !c.is_empty()) {
            o.put("Checks", strs(&self.checks));
        }
        o.put("CreateIndex", J::u(self.create_index));
        // Sessions are never modified in place.
        o.put("ModifyIndex", J::u(self.create_index));
        o
    }

    fn public(&self) -> SimSession {
        SimSession {
            id: self.id.clone(),
            name: self.name.clone(),
            node: self.node.clone(),
            behavior: self.behavior,
            ttl: self.ttl(),
            lock_delay: self.effective_lock_delay(),
            expires_at: self.deadline,
            create_index: self.create_index,
        }
    }
}

impl SimConsul {
    /// Sets the simulated clock (time since the start; it starts at zero) and applies every TTL
    /// expiry due by then, each at its own deadline. The clock never goes back: an earlier time
    /// is ignored. Like [`SimMarathon::set_time`](crate::SimMarathon::set_time), nothing else
    /// moves it; [`SimWorld`](crate::SimWorld) sets it to its own clock on every step.
    pub fn set_time(&mut self, now: Duration) {
        self.now = self.now.max(now);
        self.expire_due();
    }

    /// Moves the simulated clock forward by `by` (see [`SimConsul::set_time`]).
    pub fn advance(&mut self, by: Duration) {
        self.set_time(self.now.saturating_add(by));
    }

    /// The simulated clock.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Live sessions, by ID.
    pub fn sessions(&self) -> Vec<SimSession> {
        self.sessions.values().map(Session::public).collect()
    }

    /// One live session.
    pub fn session(&self, id: &str) -> Option<SimSession> {
        self.sessions.get(id).map(Session::public)
    }

    /// When the next TTL expiry is due (`None` when no session has a TTL, or while the server is
    /// down, as no leader runs the timers then). A world that parks blocking reads should wake
    /// at this time, since the invalidation may release keys.
    pub fn next_session_expiry(&self) -> Option<Duration> {
        if !self.server_up() {
            return None;
        }
        self.sessions.values().filter_map(|s| s.deadline).min()
    }

    /// Invalidates a session now, as a destroy or a failing check would: releases or deletes its
    /// keys and starts their lock delay. False if no such session lives.
    pub fn invalidate_session(&mut self, id: &str) -> bool {
        if !self.sessions.contains_key(id) {
            return false;
        }
        self.invalidate(id, self.now);
        true
    }

    /// Whether `key` is within a lock delay: no session may acquire it yet.
    pub fn in_lock_delay(&self, key: &str) -> bool {
        self.lock_delays
            .get(key)
            .is_some_and(|&until| until > self.now)
    }

    pub(super) fn server_up(&self) -> bool {
        self.agents.first().is_some_and(|a| a.up)
    }

    /// The state store's session lookup: go-memdb's UUID errors, then found or not.
    pub(super) fn session_lookup(&self, id: &str) -> Result<Option<&Session>, String> {
        if let Some(e) = uuid_error(id) {
            return Err(format!("failed session lookup: index error: {e}"));
        }
        Ok(self.sessions.get(id))
    }

    /// Applies the TTL expiries due by now, earliest first, each at its deadline.
    fn expire_due(&mut self) {
        if !self.server_up() {
            return;
        }
        loop {
            let due = self
                .sessions
                .values()
                .filter_map(|s| s.deadline.map(|d| (d, s.id.clone())))
                .filter(|(d, _)| *d <= self.now)
                .min();
            let Some((at, id)) = due else {
                return;
            };
            self.invalidate(&id, at);
        }
    }

    /// The leader came back: it resets every session's TTL timer from now (`initializeSessionTimers`)
    /// and reconciles the members that failed meanwhile.
    pub(super) fn server_restarted(&mut self) {
        let now = self.now;
        for s in self.sessions.values_mut() {
            s.deadline = s.ttl().map(|ttl| now.saturating_add(ttl * TTL_MULTIPLIER));
        }
        self.sweep_session_checks();
    }

    /// Invalidates every session one of whose checks is missing or critical on its node, as the
    /// state store does when a check turns critical or is deleted (a failed agent's `serfHealth`,
    /// a deregistered service's checks). Only a running server does this.
    pub(super) fn sweep_session_checks(&mut self) {
        if !self.server_up() || self.sessions.is_empty() {
            return;
        }
        let failing: Vec<String> = self
            .sessions
            .values()
            .filter(|s| {
                s.check_ids().any(|c| {
                    self.check_status(&s.node, c)
                        .is_none_or(|st| st == "critical")
                })
            })
            .map(|s| s.id.clone())
            .collect();
        for id in failing {
            self.invalidate(&id, self.now);
        }
    }

    /// The status of check `check` on `node`: `serfHealth` follows the agent, service checks keep
    /// their registered status. `None` when the node or check does not exist.
    fn check_status(&self, node: &str, check: &str) -> Option<&str> {
        let agent = self.agents.iter().find(|a| a.node == node)?;
        if check == SERF_HEALTH {
            return Some(if agent.up { "passing" } else { "critical" });
        }
        agent
            .services
            .values()
            .flat_map(|e| &e.checks)
            .find(|c| c.id == check)
            .map(|c| c.status.as_str())
    }

    /// `deleteSessionTxn` at time `at`: one write that removes the session and releases (or
    /// deletes) each key it holds, starting their lock delay.
    fn invalidate(&mut self, id: &str, at: Duration) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        let index = self.bump();
        self.session_index = index;
        let keys = self.kv.held_by(id);
        if !keys.is_empty() {
            self.kv_index = index;
        }
        let delay = session.effective_lock_delay();
        for key in keys {
            match session.behavior {
                SessionBehavior::Release => self.kv.clear_session(&key, index),
                SessionBehavior::Delete => self.kv.remove(&key),
            }
            if delay > Duration::ZERO {
                self.lock_delays.insert(key, at.saturating_add(delay));
            }
        }
        let now = self.now;
        self.lock_delays.retain(|_, until| *until > now);
    }

    /// `PUT /v1/session/create` on agent `ai`.
    pub(super) fn http_session_create(&mut self, ai: usize, ctx: &Ctx, body: &[u8]) -> SimResponse {
        let node = self.agents[ai].node.clone();
        let request = match SessionRequest::decode(node, body) {
            Ok(r) => r,
            Err(e) => return SimResponse::new(400, TEXT, format!("Request decode failed: {e}")),
        };
        let fail = |e: String| SimResponse::new(500, TEXT, e);
        // Session.Apply's checks, in its order.
        if request.node.is_empty() {
            return fail("Must provide Node".into());
        }
        let behavior = match request.behavior.as_str() {
            "" | "release" => SessionBehavior::Release,
            "delete" => SessionBehavior::Delete,
            other => return fail(format!("Invalid Behavior setting '{other}'")),
        };
        let mut ttl_ns = 0;
        if !request.ttl.is_empty() {
            ttl_ns = match go_parse_duration(&request.ttl) {
                Ok(t) => t,
                Err(e) => return fail(format!("Session TTL '{}' invalid: {e}", request.ttl)),
            };
            if ttl_ns != 0 && !(TTL_MIN_NS..=TTL_MAX_NS).contains(&ttl_ns) {
                return fail(format!(
                    "Invalid Session TTL '{ttl_ns}', must be between [10s=24h0m0s]"
                ));
            }
        }
        // The state store's: the node, then each check, must exist and not be critical.
        if !self.agents.iter().any(|a| a.node == request.node) {
            return fail("Missing node registration".into());
        }
        let mut session = Session {
            id: String::new(),
            name: request.name,
            node: request.node,
            lock_delay_ns: request.lock_delay_ns,
            behavior,
            ttl: request.ttl,
            ttl_ns,
            node_checks: request.node_checks,
            service_checks: request.service_checks,
            checks: request.checks,
            create_index: 0,
            deadline: None,
        };
        for check in session.check_ids() {
            match self.check_status(&session.node, check) {
                None => return fail(format!("Missing check '{check}' registration")),
                Some("critical") => return fail(format!("Check '{check}' is in critical state")),
                Some(_) => {}
            }
        }
        self.session_counter += 1;
        let n = self.session_counter;
        session.id = format!("{n:08x}-5e55-4000-8000-{n:012x}");
        let index = self.bump();
        self.session_index = index;
        session.create_index = index;
        session.deadline = session
            .ttl()
            .map(|ttl| self.now.saturating_add(ttl * TTL_MULTIPLIER));
        let id = session.id.clone();
        self.sessions.insert(id.clone(), session);
        ctx.json(200, &J::obj([("ID", J::s(id))]))
    }

    /// `PUT /v1/session/renew/<id>`: restarts the TTL timer.
    pub(super) fn http_session_renew(&mut self, id: &str, ctx: &Ctx) -> SimResponse {
        if id.is_empty() {
            return SimResponse::new(400, TEXT, "Missing session");
        }
        let now = self.now;
        match self.session_lookup(id) {
            Err(e) => SimResponse::new(500, TEXT, e),
            Ok(None) => SimResponse::new(404, TEXT, format!("Session id '{id}' not found")),
            Ok(Some(_)) => {
                let session = self.sessions.get_mut(id).expect("looked up");
                session.deadline = session
                    .ttl()
                    .map(|ttl| now.saturating_add(ttl * TTL_MULTIPLIER));
                ctx.json(200, &J::Arr(Vec::from([session.json()])))
            }
        }
    }

    /// `PUT /v1/session/destroy/<id>`: `true`, also for an unknown session.
    pub(super) fn http_session_destroy(&mut self, id: &str, ctx: &Ctx) -> SimResponse {
        if id.is_empty() {
            return SimResponse::new(400, TEXT, "Missing session");
        }
        match self.session_lookup(id) {
            Err(e) => SimResponse::new(500, TEXT, e),
            Ok(found) => {
                if found.is_some() {
                    self.invalidate(id, self.now);
                }
                ctx.json(200, &J::Bool(true))
            }
        }
    }

    /// `GET /v1/session/info/<id>`: `[session]`, or `[]` when unknown.
    pub(super) fn http_session_info(&self, id: &str, ctx: &Ctx) -> SimResponse {
        if id.is_empty() {
            return SimResponse::new(400, TEXT, "Missing session");
        }
        match self.session_lookup(id) {
            Err(e) => SimResponse::new(500, TEXT, e),
            Ok(found) => {
                let list = J::Arr(found.map(Session::json).into_iter().collect());
                self.with_meta(ctx.json(200, &list), self.session_index)
            }
        }
    }

    /// `GET /v1/session/list` and `/v1/session/node/<node>`: sessions by ID.
    pub(super) fn http_session_list(&self, node: Option<&str>, ctx: &Ctx) -> SimResponse {
        if node == Some("") {
            return SimResponse::new(400, TEXT, "Missing node name");
        }
        let list = J::Arr(
            self.sessions
                .values()
                .filter(|s| node.is_none_or(|n| s.node == n))
                .map(Session::json)
                .collect(),
        );
        self.with_meta(ctx.json(200, &list), self.session_index)
    }
}

/// A `/v1/session/create` body over the HTTP handler's defaults, after `fixupEmptySessionChecks`.
struct SessionRequest {
    name: String,
    node: String,
    lock_delay_ns: i64,
    behavior: String,
    ttl: String,
    node_checks: Option<Vec<String>>,
    service_checks: Option<Vec<(String, String)>>,
    checks: Option<Vec<String>>,
}

impl SessionRequest {
    /// Decodes as 1.8.7 does: `encoding/json` into `structs.Session` (keys case-insensitive,
    /// unknown keys ignored, the first type error wins) with its `UnmarshalJSON` reading
    /// `LockDelay` as a duration string or nanoseconds (below 1000: seconds).
    fn decode(node: String, body: &[u8]) -> Result<SessionRequest, String> {
        let serf = || Some(Vec::from([SERF_HEALTH.to_string()]));
        let mut r = SessionRequest {
            name: String::new(),
            node,
            lock_delay_ns: 15_000_000_000,
            behavior: "release".into(),
            ttl: String::new(),
            node_checks: serf(),
            service_checks: None,
            checks: serf(),
        };
        // The handler decodes only a body with a non-zero Content-Length.
        if !body.is_empty() {
            let fields = decode_object(body, "struct { LockDelay interface {}; *structs.Alias }")?;
            let mut type_err: Option<String> = None;
            let mut lock_delay: Option<&Value> = None;
            for (key, value) in &fields {
                if let Err(e) = r.set(key, value, &mut lock_delay) {
                    type_err.get_or_insert(e);
                }
            }
            if let Some(e) = type_err {
                return Err(e);
            }
            if let Some(v) = lock_delay {
                let ns = match v {
                    Value::String(s) => go_parse_duration(s)?,
                    // time.Duration(float64): truncated, saturating here where Go is undefined.
                    Value::Number(n) => n.as_f64().map_or(0, |f| f as i64),
                    _ => 0,
                };
                r.lock_delay_ns = if ns < LOCK_DELAY_MIN_THRESHOLD {
                    ns.wrapping_mul(1_000_000_000)
                } else {
                    ns
                };
            }
        }
        // fixupEmptySessionChecks.
        if r.checks.as_ref().is_none_or(Vec::is_empty) {
            r.node_checks = Some(Vec::new());
        } else if r.checks.as_deref() == Some(&[SERF_HEALTH.to_string()][..])
            || r.node_checks.as_ref().is_none_or(Vec::is_empty)
        {
            r.checks = None;
        }
        Ok(r)
    }

    fn set<'a>(
        &mut self,
        key: &str,
        value: &'a Value,
        lock_delay: &mut Option<&'a Value>,
    ) -> Result<(), String> {
        let is = |name: &str| key.eq_ignore_ascii_case(name);
        if is("LockDelay") {
            *lock_delay = (!value.is_null()).then_some(value);
            return Ok(());
        }
        let string = |field: &str| -> Result<Option<String>, String> {
            match value {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                other => Err(type_error(other, field, "string")),
            }
        };
        if is("ID") {
            string("ID")?;
        } else if is("Name") {
            if let Some(s) = string("Name")? {
                self.name = s;
            }
        } else if is("Node") {
            if let Some(s) = string("Node")? {
                self.node = s;
            }
        } else if is("Behavior") {
            if let Some(s) = string("Behavior")? {
                self.behavior = s;
            }
        } else if is("TTL") {
            if let Some(s) = string("TTL")? {
                self.ttl = s;
            }
        } else if is("Checks") {
            self.checks = string_list(value, "Checks", "types.CheckID")?;
        } else if is("NodeChecks") {
            self.node_checks = string_list(value, "NodeChecks", "string")?;
        } else if is("ServiceChecks") {
            self.service_checks = service_check_list(value)?;
        }
        Ok(())
    }
}

fn string_list(value: &Value, field: &str, element: &str) -> Result<Option<Vec<String>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut first_err = None;
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Null => out.push(String::new()),
                    other => {
                        first_err.get_or_insert_with(|| type_error(other, field, element));
                    }
                }
            }
            first_err.map_or(Ok(Some(out)), Err)
        }
        other => Err(type_error(other, field, &format!("[]{element}"))),
    }
}

fn service_check_list(value: &Value) -> Result<Option<Vec<(String, String)>>, String> {
    let items = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        other => return Err(type_error(other, "ServiceChecks", "[]structs.ServiceCheck")),
    };
    let mut out = Vec::new();
    for item in items {
        let mut check = (String::new(), String::new());
        match item {
            Value::Null => {}
            Value::Object(fields) => {
                for (k, v) in fields {
                    let (slot, name) = if k.eq_ignore_ascii_case("ID") {
                        (&mut check.0, "ID")
                    } else if k.eq_ignore_ascii_case("Namespace") {
                        (&mut check.1, "Namespace")
                    } else {
                        continue;
                    };
                    match v {
                        Value::Null => {}
                        Value::String(s) => *slot = s.clone(),
                        other => {
                            return Err(format!(
                                "json: cannot unmarshal {} into Go struct field ServiceCheck.ServiceChecks.{name} of type string",
                                json_kind(other)
                            ))
                        }
                    }
                }
            }
            other => return Err(type_error(other, "ServiceChecks", "structs.ServiceCheck")),
        }
        out.push(check);
    }
    Ok(Some(out))
}

/// go-memdb's `UUIDFieldIndex` check of a session ID (length enforced), with its texts.
pub(super) fn uuid_error(s: &str) -> Option<String> {
    if s.len() != 36 {
        return Some("UUID must be 36 characters".into());
    }
    let hyphens = s.bytes().filter(|&b| b == b'-').count();
    if hyphens > 4 {
        return Some(format!(
            "UUID should have maximum of 4 \"-\"; got {hyphens}"
        ));
    }
    let sanitized: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if sanitized.len() % 2 != 0 {
        return Some("Input (without hyphens) must be even length".into());
    }
    let bad = *sanitized.iter().find(|b| !b.is_ascii_hexdigit())?;
    // Go's %#U of the byte as a rune: the character too when strconv.IsPrint.
    let printable = (0x20..=0x7e).contains(&bad) || (bad >= 0xa1 && bad != 0xad);
    let shown = if printable {
        format!("U+{bad:04X} '{}'", char::from(bad))
    } else {
        format!("U+{bad:04X}")
    };
    Some(format!("Invalid UUID: encoding/hex: invalid byte: {shown}"))
}

/// Go's `time.ParseDuration` (nanoseconds, signed) with its error texts.
pub(super) fn go_parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: i64 = 0;
        for &c in &b[..int_len] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(c - b'0')))
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        let (mut f, mut scale, mut frac_len) = (0i64, 1f64, 0usize);
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for c in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match f
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(i64::from(c - b'0')))
                {
                    Some(x) => {
                        f = x;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|c| !(*c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let (u, rest) = s.split_at(unit_len);
        s = rest;
        let unit: i64 = match u {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        v = v.checked_mul(unit).ok_or_else(invalid)?;
        if f > 0 {
            v = v
                .checked_add((f as f64 * (unit as f64 / scale)) as i64)
                .ok_or_else(invalid)?;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
    }
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_parse_duration("15s"), Ok(15_000_000_000));
        assert_eq!(go_parse_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(go_parse_duration("1.5m"), Ok(90_000_000_000));
        assert_eq!(go_parse_duration("0"), Ok(0));
        assert_eq!(
            go_parse_duration("abc"),
            Err("time: invalid duration \"abc\"".into())
        );
        assert_eq!(
            go_parse_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            go_parse_duration("10x"),
            Err("time: unknown unit \"x\" in duration \"10x\"".into())
        );
        assert!(go_parse_duration("9999999999h").is_err());
    }

    #[test]
    fn memdb_uuids() {
        assert_eq!(uuid_error("00000000-5e55-4000-8000-000000000001"), None);
        assert_eq!(
            uuid_error("abc").as_deref(),
            Some("UUID must be 36 characters")
        );
        assert_eq!(
            uuid_error("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz").as_deref(),
            Some("Invalid UUID: encoding/hex: invalid byte: U+007A 'z'")
        );
        assert_eq!(
            uuid_error("0000000--5e55-4000-8000-000000000001").as_deref(),
            Some("UUID should have maximum of 4 \"-\"; got 5")
        );
    }
}
