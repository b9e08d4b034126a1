//! Consul sessions and the lock key of leader election (`--ha`): the requests to create, renew and
//! destroy a session, to acquire, release and watch the key, and the parsing of their answers.
//! When to send them is decided in `crate::bridge` (its leadership module).
//!
//! As Consul 1.8.7 answers (checked on the real binary): `create` gives `{"ID": "<uuid>"}`,
//! `renew` of an unknown session is 404, `acquire` and `release` answer `true` or `false`, and a
//! blocking read of one existing key returns that key's `ModifyIndex` as its index, so the index
//! to wait on is in the body.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;
use serde::Deserialize;

use crate::encoding::encode_segment;
use crate::error::ParseError;

/// `PUT` creates a session.
pub const SESSION_CREATE_PATH: &str = "/v1/session/create";

/// `PUT` renews session `id`.
pub fn session_renew_path(id: &str) -> String {
    alloc::format!("/v1/session/renew/{}", encode_segment(id))
}

/// `PUT` destroys session `id`, releasing what it holds.
pub fn session_destroy_path(id: &str) -> String {
    alloc::format!("/v1/session/destroy/{}", encode_segment(id))
}

/// The path of KV key `key`, each segment percent-encoded.
pub fn kv_key_path(key: &str) -> String {
    let segments: Vec<String> = key.split('/').map(encode_segment).collect();
    alloc::format!("/v1/kv/{}", segments.join("/"))
}

/// What a lock request does with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockVerb {
    /// Take it for the session (the body becomes its value).
    Acquire,
    /// Let it go.
    Release,
}

/// `PUT` acquires or releases `key` for `session`.
pub fn kv_lock_path(key: &str, verb: LockVerb, session: &str) -> String {
    let verb = match verb {
        LockVerb::Acquire => "acquire",
        LockVerb::Release => "release",
    };
    alloc::format!("{}?{verb}={}", kv_key_path(key), encode_segment(session))
}

/// `GET` `key`, blocking until its `ModifyIndex` passes `index` or `wait` is over.
pub fn kv_watch_path(key: &str, index: u64, wait: Duration) -> String {
    alloc::format!(
        "{}?index={index}&wait={}s",
        kv_key_path(key),
        wait.as_secs().max(1)
    )
}

/// What happens to the keys a session holds when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionBehavior {
    /// They are released (the leader key).
    Release,
    /// They are deleted (an instance's status key).
    Delete,
}

/// The `PUT /v1/session/create` body: a TTL session (no node checks: the instance need not run
/// on a Consul node, and renewing is its liveness).
pub fn session_create_body(
    name: &str,
    ttl: Duration,
    lock_delay: Duration,
    behavior: SessionBehavior,
) -> Vec<u8> {
    let behavior = match behavior {
        SessionBehavior::Release => "release",
        SessionBehavior::Delete => "delete",
    };
    let body = serde_json::json!({
        "Name": name,
        "TTL": alloc::format!("{}s", ttl.as_secs()),
        "LockDelay": alloc::format!("{}ms", lock_delay.as_millis()),
        "Behavior": behavior,
        "Checks": [],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

/// Parses `PUT /v1/session/create`'s answer into the session id, which must look like Consul's
/// (a UUID): it goes into paths and transactions.
pub fn parse_session_created(body: &[u8]) -> Result<String, ParseError> {
    let created: Created = serde_json::from_slice(body)?;
    let uuid_like = created.id.len() == 36
        && created
            .id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-');
    if uuid_like {
        Ok(created.id)
    } else {
        Err(ParseError("the session id is not a UUID".into()))
    }
}

/// Parses an `acquire` or `release` answer.
pub fn parse_lock_answer(body: &[u8]) -> Result<bool, ParseError> {
    Ok(serde_json::from_slice(body)?)
}

/// The lock key as a read shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The session holding it, if any.
    pub session: Option<String>,
    /// The index to wait on for its next change.
    pub modify_index: u64,
}

#[derive(Deserialize)]
struct LockEntry {
    #[serde(rename = "Session", default)]
    session: Option<String>,
    #[serde(rename = "ModifyIndex", default)]
    modify_index: u64,
}

/// Parses `GET /v1/kv/<key>` (a list of one entry).
pub fn parse_lock_holder(body: &[u8]) -> Result<LockHolder, ParseError> {
    let entries: Vec<LockEntry> = serde_json::from_slice(body)?;
    let entry = entries
        .into_iter()
        .next()
        .ok_or_else(|| ParseError("the key read is empty".into()))?;
    Ok(LockHolder {
        session: entry.session.filter(|s| !s.is_empty()),
        modify_index: entry.modify_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_segment() {
        assert_eq!(
            kv_lock_path("service/consular/a b/leader", LockVerb::Acquire, "s&x"),
            "/v1/kv/service/consular/a%20b/leader?acquire=s%26x"
        );
        assert_eq!(
            kv_watch_path("k", 42, Duration::from_millis(300)),
            "/v1/kv/k?index=42&wait=1s"
        );
        assert_eq!(session_renew_path("a/../b"), "/v1/session/renew/a%2F..%2Fb");
    }

    #[test]
    fn answers_are_parsed_as_consul_1_8_7_gives_them() {
        let id = parse_session_created(br#"{ "ID": "e0af45e8-b49c-f4e2-ab18-7994a4d09754" }"#);
        assert_eq!(id.unwrap(), "e0af45e8-b49c-f4e2-ab18-7994a4d09754");
        assert!(
            parse_session_created(br#"{"ID":"../../v1/kv/x?recurse&a=bbbbbbbbbbbb"}"#).is_err()
        );
        assert!(parse_lock_answer(b"true\n").unwrap());
        let held = parse_lock_holder(
            br#"[{"LockIndex":1,"Key":"k","Session":"e0af45e8-b49c-f4e2-ab18-7994a4d09754","ModifyIndex":178}]"#,
        )
        .unwrap();
        assert_eq!(held.modify_index, 178);
        assert!(held.session.is_some());
        let free = parse_lock_holder(br#"[{"Key":"k","ModifyIndex":179}]"#).unwrap();
        assert_eq!(free.session, None);
        let body = session_create_body(
            "consular h:7000",
            Duration::from_secs(15),
            Duration::from_secs(1),
            SessionBehavior::Release,
        );
        assert_eq!(
            core::str::from_utf8(&body).unwrap(),
            r#"{"Behavior":"release","Checks":[],"LockDelay":"1000ms","Name":"consular h:7000","TTL":"15s"}"#
        );
    }
}
