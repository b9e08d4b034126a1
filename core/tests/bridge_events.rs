//! Transcript tests of `/`, `/events` and the task workflow: the exact requests consular 1.3.0
//! made, and the fixes (400s for bad input, every Mesos state handled, 404 on deregister is
//! success, stale updates ignored, per-task ordering).

mod support;

use std::time::Duration;

use consular_core::consul::kv_mark;
use consular_core::{Config, Method, Target, TransportError};
use serde_json::json;
use support::transcript::{agent, body_json, status_event, Transcript};

fn config() -> Config {
    Config {
        registration_id: "test".into(),
        ..Config::default()
    }
}

#[test]
fn root_answers_an_empty_list_and_unknown_paths_404() {
    let mut t = Transcript::new(config());
    let root = t.inbound("/", "");
    assert_eq!(t.reply(root), (200, "[]".into()));
    let other = t.inbound("/events/", "{}");
    assert_eq!(t.reply(other).0, 404);
    t.expect_no_request();
}

#[test]
fn task_running_registers_then_syncs_labels_like_consular_1_3() {
    let mut t = Transcript::new(config());
    let id = t.event(&status_event(
        "TASK_RUNNING",
        "my-app.t1",
        "/my-group/my-app",
        "Slave-1.Acme.org",
        "[4567, 1234]",
    ));
    t.members(&["slave-1.acme.org"]);

    let register = t.expect(
        Method::Put,
        agent("slave-1.acme.org"),
        "/v1/agent/service/register",
    );
    assert_eq!(
        body_json(&register),
        json!({"Name": "my-group-my-app", "ID": "my-app.t1", "Address": "Slave-1.Acme.org",
               "Tags": ["consular-reg-id=test", "consular-app-id=/my-group/my-app"], "Port": 1234})
    );
    assert_eq!(register.timeout, Duration::from_secs(5));
    t.respond(&register, 200, "");
    assert!(t.logged("registered my-app.t1 (my-group-my-app) on slave-1.acme.org"));

    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/my-group/my-app");
    t.respond(
        &app,
        200,
        r#"{"app":{"id":"/my-group/my-app","labels":{"domain":"café.example","keep":"same"}}}"#,
    );

    let kv = t.expect(
        Method::Get,
        Target::Consul,
        "/v1/kv/consular/my-group-my-app/?recurse",
    );
    assert!(
        !t.has_reply(id),
        "the reply waits for the labels, as in 1.3.0"
    );
    t.respond(
        &kv,
        200,
        r#"[{"Key":"consular/my-group-my-app/keep","Value":"InNhbWUi","ModifyIndex":5},
            {"Key":"consular/my-group-my-app/stale","Value":"Ingi","ModifyIndex":6}]"#,
    );
    let txn = t.expect(Method::Put, Target::Consul, "/v1/txn");
    assert_eq!(
        body_json(&txn),
        json!([
            {"KV": {"Verb": "cas", "Key": "consular/my-group-my-app/domain", "Value": "ImNhZlx1MDBlOS5leGFtcGxlIg==", "Index": 0, "Flags": kv_mark("test")}},
            {"KV": {"Verb": "delete-cas", "Key": "consular/my-group-my-app/stale", "Index": 6}}
        ])
    );
    t.respond(&txn, 200, r#"{"Results":[{"KV":{}}],"Errors":null}"#);
    assert_eq!(t.reply(id), (200, r#"{"status": "ok"}"#.into()));
    assert_eq!(t.bridge.metrics().kv_writes(), 2);
    t.expect_no_request();
}

#[test]
fn running_for_a_deleted_app_keeps_the_service_and_answers_ok() {
    let mut t = Transcript::new(config());
    let id = t.event(&status_event("TASK_RUNNING", "t1", "/gone", "h", "null"));
    t.members(&["h"]);
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    assert!(
        body_json(&register).get("Port").is_none(),
        "no ports, no Port"
    );
    t.respond(&register, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/gone");
    t.respond(&app, 404, r#"{"message":"App '/gone' does not exist"}"#);
    assert_eq!(t.reply(id).0, 200);
    t.expect_no_request();
}

#[test]
fn every_stop_state_deregisters_and_already_gone_is_success() {
    let stops = [
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_KILLING",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNREACHABLE",
        "TASK_UNKNOWN",
    ];
    let answers = [
        (200, ""),
        (404, "Unknown service ID \"t\""),
        (500, "Unknown service {\"t\" {}}"),
    ];
    for (i, state) in stops.iter().enumerate() {
        let (status, body) = answers[i % answers.len()];
        let mut t = Transcript::new(config());
        let id = t.event(&status_event(state, "my-app.t-1", "/my-app", "H1", "[1]"));
        t.members(&["h1"]);
        t.ours("h1", "my-app.t-1");
        let dereg = t.expect(
            Method::Put,
            agent("h1"),
            "/v1/agent/service/deregister/my-app.t-1",
        );
        t.respond(&dereg, status, body);
        assert_eq!(
            t.reply(id),
            (200, r#"{"status": "ok"}"#.into()),
            "{state} answered {status}"
        );
        assert_eq!(t.bridge.metrics().deregistered(), 1);
        t.expect_no_request();
    }
}

#[test]
fn staging_and_starting_need_nothing() {
    let mut t = Transcript::new(config());
    for state in ["TASK_STAGING", "TASK_STARTING"] {
        let id = t.event(
            &format!(r#"{{"eventType":"status_update_event","taskStatus":"{state}"}}"#)
                .replace("}", r#","taskId":"t","host":"h"}"#),
        );
        assert_eq!(t.reply(id), (200, r#"{"status": "ok"}"#.into()));
    }
    t.expect_no_request();
}

#[test]
fn a_failed_deregistration_is_a_502_with_the_reason() {
    let mut t = Transcript::new(config());
    let id = t.event(&status_event("TASK_KILLED", "t1", "/a", "h", "[]"));
    t.members(&["h"]);
    t.ours("h", "t1");
    let dereg = t.expect(Method::Put, agent("h"), "/v1/agent/service/deregister/t1");
    t.fail(&dereg, TransportError::Connect("connection refused".into()));
    let (status, body) = t.reply(id);
    assert_eq!(status, 502);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{body}"
    );
}

#[test]
fn bad_event_bodies_get_400_json_and_no_requests() {
    let mut t = Transcript::new(config());
    let cases = [
        ("not json", "body is not valid JSON"),
        ("", "body is not valid JSON"),
        ("[1,2]", "body is not a JSON object"),
        ("\"str\"", "body is not a JSON object"),
        ("{}", "Event type None not supported."),
        (
            r#"{"eventType":"status_update_event"}"#,
            "field 'taskStatus' is missing",
        ),
        (
            r#"{"eventType":"status_update_event","taskStatus":"TASK_NOPE","taskId":"t","host":"h"}"#,
            "unknown taskStatus 'TASK_NOPE'",
        ),
        (
            r#"{"eventType":"status_update_event","taskStatus":"TASK_RUNNING","taskId":"t","host":"h"}"#,
            "'appId' is required",
        ),
        (
            r#"{"eventType":"status_update_event","taskStatus":"TASK_KILLED","host":"h"}"#,
            "'taskId' is missing",
        ),
    ];
    for (body, message) in cases {
        let id = t.event(body);
        let (status, reply) = t.reply(id);
        assert_eq!(status, 400, "{body:?}");
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert!(
            reply["error"].as_str().unwrap().contains(message),
            "{body:?} → {reply}"
        );
    }
    t.expect_no_request();
}

#[test]
fn other_event_types_are_acknowledged() {
    let mut t = Transcript::new(config());
    let id = t.event(r#"{"eventType":"deployment_info","plan":{}}"#);
    assert_eq!(t.reply(id), (200, r#"{"status": "ignored"}"#.into()));
    t.expect_no_request();
}

#[test]
fn fallback_registers_on_the_main_consul_with_its_own_timeout() {
    let mut t = Transcript::new(Config {
        fallback: true,
        fallback_timeout: Duration::from_secs(7),
        ..config()
    });
    let id = t.event(&status_event("TASK_RUNNING", "t1", "/a", "h", "[80]"));
    t.members(&["h"]);
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    t.respond(&register, 503, "agent unavailable");
    let fallback = t.expect(Method::Put, Target::Consul, "/v1/agent/service/register");
    assert_eq!(
        fallback.timeout,
        Duration::from_secs(7),
        "--fallback-timeout is honoured"
    );
    assert_eq!(fallback.body, register.body);
    t.respond(&fallback, 200, "");
    assert!(t.logged("on the main Consul (fallback)"));
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/a");
    t.respond(&app, 200, r#"{"app":{"id":"/a"}}"#);
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/a/?recurse");
    t.respond(&kv, 404, "");
    assert_eq!(t.reply(id).0, 200);
}

#[test]
fn without_fallback_a_dead_agent_is_a_502() {
    let mut t = Transcript::new(config());
    let id = t.event(&status_event("TASK_RUNNING", "t1", "/a", "h", "[80]"));
    t.members(&["h"]);
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    t.fail(&register, TransportError::Timeout);
    assert_eq!(t.reply(id).0, 502);
    t.expect_no_request();
}

#[test]
fn the_core_gives_up_on_a_request_the_driver_never_answers() {
    let mut t = Transcript::new(config());
    let id = t.event(&status_event("TASK_KILLED", "t1", "/a", "h", "[]"));
    t.members(&["h"]);
    t.ours("h", "t1");
    let dereg = t.expect(Method::Put, agent("h"), "/v1/agent/service/deregister/t1");
    assert_eq!(t.wake_at, Some(Duration::from_secs(6)));
    t.advance_to(Duration::from_secs(6));
    assert_eq!(t.reply(id).0, 502);
    t.respond(&dereg, 200, "");
    assert_eq!(t.bridge.metrics().late_responses(), 1);
    assert_eq!(t.bridge.in_flight(), 0);
}

#[test]
fn updates_of_one_task_run_in_order_and_a_late_running_is_ignored() {
    let mut t = Transcript::new(config());
    let killed = t.event(&status_event("TASK_KILLED", "t1", "/a", "h", "[]"));
    let late_running = t.event(&status_event("TASK_RUNNING", "t1", "/a", "h", "[80]"));
    t.members(&["h"]);
    t.ours("h", "t1");
    let dereg = t.expect(Method::Put, agent("h"), "/v1/agent/service/deregister/t1");
    t.expect_no_request();
    t.respond(&dereg, 200, "");
    assert_eq!(t.reply(killed).0, 200);
    assert_eq!(t.reply(late_running), (200, r#"{"status": "ok"}"#.into()));
    assert!(t.logged("ignoring TASK_RUNNING of t1: the task already ended"));
    t.expect_no_request();
}

#[test]
fn other_tasks_are_not_held_up_by_a_busy_one() {
    let mut t = Transcript::new(config());
    t.event(&status_event("TASK_KILLED", "t1", "/a", "h1", "[]"));
    t.event(&status_event("TASK_KILLED", "t2", "/a", "h2", "[]"));
    t.members(&["h1", "h2"]);
    t.take(Method::Get, agent("h1"), "/v1/agent/services");
    t.take(Method::Get, agent("h2"), "/v1/agent/services");
}

#[test]
fn an_inbound_id_still_waiting_for_its_reply_cannot_be_reused() {
    let mut t = Transcript::new(config());
    let id = consular_core::InboundId(7);
    let kill = status_event("TASK_KILLED", "t", "/a", "h", "[]");
    t.bridge
        .handle_inbound(t.now, id, "/events", kill.as_bytes())
        .unwrap();
    assert_eq!(
        t.bridge.handle_inbound(t.now, id, "/", b""),
        Err(consular_core::Error::DuplicateInbound(7))
    );
}

#[test]
fn the_callback_is_subscribed_once_and_retried_with_backoff() {
    let url = "http://consular.example:7000/events?registration=test";
    let mut t = Transcript::new(Config {
        callback_url: Some(url.into()),
        ..config()
    });
    let list = t.expect(Method::Get, Target::Marathon, "/v2/eventSubscriptions");
    t.fail(&list, TransportError::Connect("refused".into()));
    assert!(t.logged("retrying in 1s"));
    assert_eq!(t.wake_at, Some(Duration::from_secs(1)));
    t.advance_to(Duration::from_secs(1));
    let list = t.expect(Method::Get, Target::Marathon, "/v2/eventSubscriptions");
    t.respond(&list, 200, r#"{"callbackUrls":["http://other/events"]}"#);
    let post = t.expect(
        Method::Post,
        Target::Marathon,
        "/v2/eventSubscriptions?callbackUrl=http://consular.example:7000/events?registration=test",
    );
    assert_eq!(post.body, None);
    t.respond(&post, 200, r#"{"eventType":"subscribe_event"}"#);
    assert!(t.logged("registered callback"));
    assert_eq!(t.wake_at, None);

    let mut t = Transcript::new(Config {
        callback_url: Some(url.into()),
        ..config()
    });
    let list = t.expect(Method::Get, Target::Marathon, "/v2/eventSubscriptions");
    t.respond(&list, 200, &format!(r#"{{"callbackUrls":["{url}"]}}"#));
    assert!(t.logged("already registered"));
    t.expect_no_request();
}

#[test]
fn two_tasks_of_one_app_sync_its_labels_once_then_once_more_not_concurrently() {
    let mut t = Transcript::new(config());
    let first = t.event(&status_event("TASK_RUNNING", "web.1", "/web", "h1", "[1]"));
    let second = t.event(&status_event("TASK_RUNNING", "web.2", "/web", "h2", "[2]"));
    t.members(&["h1", "h2"]);
    let r1 = t.take(Method::Put, agent("h1"), "/v1/agent/service/register");
    let r2 = t.take(Method::Put, agent("h2"), "/v1/agent/service/register");
    t.respond(&r1, 200, "");
    t.respond(&r2, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.expect_no_request();
    assert!(!t.has_reply(second), "the second waits for the app's shape");
    t.respond(&app, 200, r#"{"app":{"id":"/web","labels":{"a":"1"}}}"#);
    assert_eq!(
        t.reply(second).0,
        200,
        "the second, as registered, leaves the labels to the sync in progress"
    );
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    let txn = t.expect(Method::Put, Target::Consul, "/v1/txn");
    t.respond(&txn, 200, r#"{"Results":[{"KV":{}}],"Errors":null}"#);
    // It was asked again while working, so it reads the app once more; now nothing differs.
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&app, 200, r#"{"app":{"id":"/web","labels":{"a":"1"}}}"#);
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(
        &kv,
        200,
        r#"[{"Key":"consular/web/a","Value":"IjEi","ModifyIndex":9}]"#,
    );
    t.expect_no_request();
    assert_eq!(t.reply(first), (200, r#"{"status": "ok"}"#.into()));
}

#[test]
fn tasks_of_an_app_version_whose_labels_match_skip_the_label_sync() {
    let mut t = Transcript::new(config());
    let running = |task: &str, version: &str| {
        status_event("TASK_RUNNING", task, "/web", "h1", "[1]").replace(
            r#""slaveId""#,
            &format!(r#""version":"{version}","slaveId""#),
        )
    };
    let register = |t: &mut Transcript, task: &str, version: &str| {
        let event = t.event(&running(task, version));
        t.members_if_asked(&["h1"]);
        let r = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
        t.respond(&r, 200, "");
        event
    };
    // Answers the app read with `app` and the label read with `a` = "1" in KV.
    let read_labels = |t: &mut Transcript, app: &str| {
        let read = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
        t.respond(&read, 200, app);
        let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
        t.respond(
            &kv,
            200,
            r#"[{"Key":"consular/web/a","Value":"IjEi","ModifyIndex":9}]"#,
        );
    };
    let v1 = r#"{"app":{"id":"/web","labels":{"a":"1"},"version":"v1","tasks":[]}}"#;
    let v2 = r#"{"app":{"id":"/web","labels":{"a":"2"},"version":"v2","tasks":[]}}"#;

    // The first task of version v1 reads the app and finds its labels in place.
    let first = register(&mut t, "web.1", "v1");
    read_labels(&mut t, v1);
    assert_eq!(t.reply(first).0, 200);

    // More tasks of v1 only register.
    let again = register(&mut t, "web.1b", "v1");
    assert_eq!(t.reply(again).0, 200);
    t.expect_no_request();

    // A new version (the labels changed) reads the app again; a failed write is not remembered.
    let third = register(&mut t, "web.2", "v2");
    read_labels(&mut t, v2);
    let txn = t.expect(Method::Put, Target::Consul, "/v1/txn");
    t.respond(&txn, 500, "rpc error");
    assert_eq!(t.reply(third).0, 502);

    let fourth = register(&mut t, "web.3", "v2");
    read_labels(&mut t, v2);
    let txn = t.expect(Method::Put, Target::Consul, "/v1/txn");
    t.respond(&txn, 200, r#"{"Results":[{"KV":{}}],"Errors":null}"#);
    assert_eq!(t.reply(fourth).0, 200);
    let fifth = register(&mut t, "web.4", "v2");
    assert_eq!(t.reply(fifth).0, 200);
    t.expect_no_request();
}
