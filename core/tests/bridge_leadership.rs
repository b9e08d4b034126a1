//! Transcript tests of leader election (`--ha`): a standby writes nothing and answers callbacks
//! `standby`; it takes the free key and leads, starting with a sync whose KV writes carry a
//! session check; it renews its session, stands down before its lease can end when renewals fail,
//! and on shutdown releases the key before destroying its session.

mod support;

use std::time::Duration;

use consular_core::{Config, HaConfig, Method, Role, Target};
use serde_json::json;
use support::transcript::{body_json, Transcript};

const SESSION: &str = "e0af45e8-b49c-f4e2-ab18-7994a4d09754";
const STATUS_SESSION: &str = "5ab2c3d4-0000-4000-8000-000000000002";
const STATUS_PATH: &str = "/v1/kv/service/consular/test/instances/i1%3A7000";
const KEY_PATH: &str = "/v1/kv/service/consular/test/leader";

fn config() -> Config {
    Config {
        registration_id: "test".into(),
        ha: Some(HaConfig::new("test", "i1:7000")),
        ..Config::default()
    }
}

/// Answers the two session creations of a new instance: the lock's and the status key's; then
/// the first status write, whose body says `role`.
fn sessions(t: &mut Transcript, role: &str) {
    for _ in 0..2 {
        let create = t.take(Method::Put, Target::Consul, "/v1/session/create");
        let body = body_json(&create);
        assert_eq!(body["TTL"], "15s");
        let (id, behavior) = if body["Name"].as_str().unwrap().ends_with("leader") {
            (SESSION, "release")
        } else {
            (STATUS_SESSION, "delete")
        };
        assert_eq!(body["Behavior"], behavior);
        t.respond(&create, 200, &json!({"ID": id}).to_string());
    }
    let status = t.take(
        Method::Put,
        Target::Consul,
        &format!("{STATUS_PATH}?acquire={STATUS_SESSION}"),
    );
    let body = body_json(&status);
    assert_eq!(
        (body["instance"].as_str(), body["role"].as_str()),
        (Some("i1:7000"), Some(role))
    );
    t.respond(&status, 200, "true");
}

/// From start to holding the key; returns the transcript.
fn leader() -> Transcript {
    let mut t = Transcript::new(config());
    assert_eq!(t.bridge.role(), Role::Standby);
    sessions(&mut t, "standby");
    let read = t.take(
        Method::Get,
        Target::Consul,
        &format!("{KEY_PATH}?index=0&wait=30s"),
    );
    t.respond(&read, 404, "");
    let acquire = t.expect(
        Method::Put,
        Target::Consul,
        &format!("{KEY_PATH}?acquire={SESSION}"),
    );
    assert_eq!(body_json(&acquire), json!({"instance": "i1:7000"}));
    t.respond(&acquire, 200, "true");
    assert_eq!(t.bridge.role(), Role::Leader);
    assert!(t.logged("i1:7000 became the leader"));
    t
}

#[test]
fn a_standby_writes_nothing_and_answers_callbacks_standby() {
    let mut t = Transcript::new(config());
    sessions(&mut t, "standby");
    let read = t.take(
        Method::Get,
        Target::Consul,
        &format!("{KEY_PATH}?index=0&wait=30s"),
    );
    // Held by another instance: block on its index, and never subscribe, sync or write.
    let held =
        json!([{"Key": "service/consular/test/leader", "Session": "other", "ModifyIndex": 77}]);
    t.respond(&read, 200, &held.to_string());
    let watch = t.expect(
        Method::Get,
        Target::Consul,
        &format!("{KEY_PATH}?index=77&wait=30s"),
    );
    let event = json!({"eventType": "status_update_event", "taskStatus": "TASK_RUNNING",
        "taskId": "web.1", "appId": "/web", "host": "h1", "ports": [1]});
    let id = t.event(&event.to_string());
    assert_eq!(t.reply(id), (200, r#"{"status": "standby"}"#.into()));
    // Five seconds on: both sessions are renewed; the status did not change, so it is not
    // written again.
    t.advance_to(Duration::from_secs(5));
    for renew in [SESSION, STATUS_SESSION] {
        let r = t.take(
            Method::Put,
            Target::Consul,
            &format!("/v1/session/renew/{renew}"),
        );
        t.respond(&r, 200, "[]");
    }
    t.expect_no_request();
    // The leader goes: the key is free, this one takes it and syncs first.
    let free = json!([{"Key": "service/consular/test/leader", "ModifyIndex": 80}]);
    t.respond(&watch, 200, &free.to_string());
    let acquire = t.expect(
        Method::Put,
        Target::Consul,
        &format!("{KEY_PATH}?acquire={SESSION}"),
    );
    t.respond(&acquire, 200, "true");
    assert_eq!(t.bridge.role(), Role::Leader);
    assert!(t.bridge.is_syncing());
}

#[test]
fn a_leaders_kv_writes_carry_a_session_check() {
    let mut t = leader();
    let apps = t.take(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    t.respond(
        &apps,
        200,
        r#"{"apps":[{"id":"/web","labels":{"a":"1"},"tasks":[]}]}"#,
    );
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.respond(&kv, 404, "");
    let nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    t.respond(&nodes, 200, "[]");
    let health = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&health, 200, "[]");
    let txn = t.take(Method::Put, Target::Consul, "/v1/txn");
    let ops = body_json(&txn);
    assert_eq!(
        ops[0],
        json!({"KV": {"Verb": "check-session", "Key": "service/consular/test/leader", "Session": SESSION}})
    );
    assert_eq!(ops[1]["KV"]["Key"], "consular/web/a");
    t.respond(&txn, 200, r#"{"Results":[],"Errors":null}"#);
    // The status, five seconds after the last write, says who leads and how the sync went.
    t.advance_to(Duration::from_secs(5));
    let status = t.take(
        Method::Put,
        Target::Consul,
        &format!("{STATUS_PATH}?acquire={STATUS_SESSION}"),
    );
    let body = body_json(&status);
    assert_eq!(body["role"], "leader");
    assert_eq!(body["last_sync"]["result"], "complete");
    assert_eq!(body["last_sync"]["writes"], 1);
}

#[test]
fn renewals_keep_the_lead_and_failing_ones_end_it_before_the_session_can_expire() {
    let mut t = leader();
    // A third of the TTL after the session was made: renew.
    t.advance_to(Duration::from_secs(5));
    let renew = t.take(
        Method::Put,
        Target::Consul,
        &format!("/v1/session/renew/{SESSION}"),
    );
    t.respond(&renew, 200, "[]");
    assert_eq!(t.bridge.role(), Role::Leader);
    // The next renewal gets no answer: the lease (sent at 5 s + 15 s TTL − 5 s timeout − 1 s)
    // ends at 14 s, before Consul could end the session (20 s at the earliest).
    t.advance_to(Duration::from_secs(10));
    let _unanswered = t.take(
        Method::Put,
        Target::Consul,
        &format!("/v1/session/renew/{SESSION}"),
    );
    t.advance_to(Duration::from_millis(13_900));
    assert_eq!(t.bridge.role(), Role::Leader);
    t.advance_to(Duration::from_secs(14));
    assert_eq!(t.bridge.role(), Role::Standby);
    assert!(t.logged("standing down as leader"));
    let event = json!({"eventType": "status_update_event", "taskStatus": "TASK_KILLED",
        "taskId": "web.1", "host": "h1"});
    let id = t.event(&event.to_string());
    assert_eq!(t.reply(id), (200, r#"{"status": "standby"}"#.into()));
}

#[test]
fn shutdown_releases_the_key_then_destroys_the_session() {
    let mut t = leader();
    t.bridge.handle_shutdown(Duration::from_secs(1));
    let release = loop {
        match t.bridge.poll_output() {
            consular_core::Output::Request(r) if r.path_and_query.contains("release") => break r,
            consular_core::Output::Timeout(_) => panic!("no release"),
            _ => {}
        }
    };
    assert_eq!(
        release.path_and_query,
        format!("{KEY_PATH}?release={SESSION}")
    );
    assert_eq!(t.bridge.role(), Role::Standby);
    t.respond(&release, 200, "true");
    let destroy = t.take(
        Method::Put,
        Target::Consul,
        &format!("/v1/session/destroy/{SESSION}"),
    );
    t.respond(&destroy, 200, "true");
    // The status session goes too, and Consul deletes the status key with it.
    let _status = t.take(
        Method::Put,
        Target::Consul,
        &format!("/v1/session/destroy/{STATUS_SESSION}"),
    );
}
