//! Transcript tests of what an attacker on the cluster network would try against `/events` and
//! what a hostile peer could answer: each attack gets a clear 4xx (or is contained) and causes no
//! request beyond what Marathon itself could have caused.

mod support;

use std::time::Duration;

use consular_core::{Config, EventSource, EventsEndpoint, Method, Target, TransportError};
use serde_json::json;
use support::transcript::{agent, status_event, Transcript};

fn config() -> Config {
    Config {
        registration_id: "test".into(),
        ..Config::default()
    }
}

fn event(state: &str, task: &str, app: &str, host: &str) -> String {
    json!({"eventType": "status_update_event", "taskStatus": state, "taskId": task,
           "appId": app, "host": host, "ports": [80]})
    .to_string()
}

fn error_of(reply: &str) -> String {
    let body: serde_json::Value = serde_json::from_str(reply).unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[test]
fn ids_that_would_reach_other_endpoints_are_refused_before_any_request() {
    let mut t = Transcript::new(config());
    let attacks = [
        ("TASK_KILLED", "../../leave", "/a", "h", "taskId"),
        ("TASK_KILLED", "../../../kv/x/y", "/a", "h", "taskId"),
        ("TASK_KILLED", "../../../acl/bootstrap", "/a", "h", "taskId"),
        (
            "TASK_RUNNING",
            "t",
            "/../../../../admin/secret",
            "h",
            "appId",
        ),
        ("TASK_RUNNING", "t", "/a?x=1", "h", "appId"),
        ("TASK_RUNNING", "web\r\n.1", "/a", "h", "taskId"),
        ("TASK_RUNNING", "\u{0}", "/a", "h", "taskId"),
        ("TASK_RUNNING", "t\u{200b}", "/a", "h", "taskId"),
        ("TASK_RUNNING", "ｔ", "/a", "h", "taskId"),
        ("TASK_RUNNING", "t", "/a", "user@h", "host"),
        ("TASK_RUNNING", "t", "/a", "h:8500", "host"),
        ("TASK_RUNNING", "t", "/a", "h/path", "host"),
        ("TASK_RUNNING", "t", "/a", "h#frag", "host"),
        ("TASK_RUNNING", "t", "/a", "h\r\nX-Injected: 1", "host"),
    ];
    for (state, task, app, host, field) in attacks {
        let id = t.event(&event(state, task, app, host));
        let (status, reply) = t.reply(id);
        assert_eq!(status, 400, "{task:?} {app:?} {host:?}");
        assert!(error_of(&reply).contains(field), "{reply}");
        t.expect_no_request();
    }
    let not_a_string = t.event(r#"{"eventType": ["status_update_event"]}"#);
    assert_eq!(t.reply(not_a_string).0, 400);
    t.expect_no_request();
}

#[test]
fn a_host_outside_the_consul_cluster_gets_no_request_and_no_token() {
    let mut t = Transcript::new(config());
    let id = t.event(&event("TASK_RUNNING", "t1", "/a", "attacker.example"));
    t.members(&["10.0.0.1", "10.0.0.2"]);
    let (status, reply) = t.reply(id);
    assert_eq!(status, 502);
    assert!(error_of(&reply).contains("not a member of the Consul cluster"));
    t.expect_no_request();
    // Within the refresh interval the catalog is not read again, however many events come.
    for i in 0..100 {
        let id = t.event(&event(
            "TASK_KILLED",
            &format!("t{i}"),
            "/a",
            "attacker.example",
        ));
        assert_eq!(t.reply(id).0, 502);
    }
    t.expect_no_request();
    // Later a stranger costs one catalog read, still nothing for the stranger.
    t.advance_to(Duration::from_secs(6));
    let id = t.event(&event("TASK_RUNNING", "fresh", "/a", "attacker.example"));
    t.members(&["10.0.0.1"]);
    assert_eq!(t.reply(id).0, 502);
    t.expect_no_request();
}

#[test]
fn with_fallback_a_strangers_task_registers_on_the_main_consul_only() {
    let mut t = Transcript::new(Config {
        fallback: true,
        ..config()
    });
    let id = t.event(&event("TASK_RUNNING", "t1", "/a", "elsewhere"));
    t.members(&["10.0.0.1"]);
    let register = t.expect(Method::Put, Target::Consul, "/v1/agent/service/register");
    t.respond(&register, 200, "");
    assert!(t.logged("elsewhere is not a member of the Consul cluster"));
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/a");
    t.respond(&app, 404, "");
    assert_eq!(t.reply(id).0, 200);
    t.expect_no_request();
}

#[test]
fn a_forged_stop_leaves_a_service_we_did_not_register() {
    let mut t = Transcript::new(config());
    let listing = r#"{"vault":{"ID":"vault","Service":"vault","Tags":["primary"],"Port":8200},
                      "half":{"ID":"half","Service":"x","Tags":["consular-reg-id=test"]}}"#;
    let id = t.event(&event("TASK_KILLED", "vault", "/a", "h"));
    t.members(&["h"]);
    let read = t.expect(Method::Get, agent("h"), "/v1/agent/services");
    t.respond(&read, 200, listing);
    assert_eq!(t.reply(id).0, 200);
    assert!(t.logged("not deregistering vault from h"));
    t.expect_no_request();
    // Our registration tag without an app tag was not made by consular either.
    let id = t.event(&event("TASK_KILLED", "half", "/a", "h"));
    let read = t.expect(Method::Get, agent("h"), "/v1/agent/services");
    t.respond(&read, 200, listing);
    assert_eq!(t.reply(id).0, 200);
    assert!(t.logged("not deregistering half from h"));
    t.expect_no_request();
    // A service the agent does not have needs no deregistration.
    let id = t.event(&event("TASK_KILLED", "gone", "/a", "h"));
    let read = t.expect(Method::Get, agent("h"), "/v1/agent/services");
    t.respond(&read, 200, listing);
    assert_eq!(t.reply(id).0, 200);
    t.expect_no_request();
}

#[test]
fn two_apps_of_one_service_name_cannot_both_register_through_events() {
    let mut t = Transcript::new(config());
    let first = t.event(&event("TASK_RUNNING", "ab.1", "/a/b", "h"));
    t.members(&["h"]);
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    t.respond(&register, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/a/b");
    t.respond(&app, 404, "");
    assert_eq!(t.reply(first).0, 200);
    let second = t.event(&event("TASK_RUNNING", "a-b.1", "/a-b", "h"));
    let (status, reply) = t.reply(second);
    assert_eq!(status, 409);
    assert!(error_of(&reply).contains("/a/b, /a-b"), "{reply}");
    t.expect_no_request();
}

#[test]
fn a_refusal_names_the_permission_of_what_was_sent_whatever_consul_claims() {
    let mut t = Transcript::new(config());
    let id = t.event(&event("TASK_RUNNING", "t1", "/grp/web", "h"));
    t.members(&["h"]);
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    // Consul's body names another rule; the log names the one the request needs, from the
    // request itself.
    t.respond(
        &register,
        403,
        "Permission denied: Missing service:write on other",
    );
    let (status, _) = t.reply(id);
    assert_eq!(status, 502);
    assert!(
        t.logged(r#"(the token lacks service:write on "grp-web")"#),
        "{:?}",
        t.logs
    );
    // Any other failure names no permission.
    let id = t.event(&event("TASK_RUNNING", "t2", "/grp/web", "h"));
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    t.respond(&register, 500, "Permission denied");
    assert_eq!(t.reply(id).0, 502);
    assert_eq!(
        t.logs
            .iter()
            .filter(|l| l.message.contains("the token lacks"))
            .count(),
        1
    );
}

#[test]
fn ends_of_unknown_apps_cost_nothing_and_huge_ids_are_refused() {
    let mut t = Transcript::new(config());
    for i in 0..200 {
        let body = json!({"eventType": "app_terminated_event", "appId": format!("/nope{i}")});
        let id = t.event(&body.to_string());
        assert_eq!(t.reply(id), (200, r#"{"status": "ignored"}"#.into()));
    }
    assert!(!t.bridge.is_syncing());
    t.expect_no_request();
    let huge =
        json!({"eventType": "app_terminated_event", "appId": format!("/{}", "a".repeat(1 << 20))});
    let id = t.event(&huge.to_string());
    let (status, reply) = t.reply(id);
    assert_eq!(status, 400);
    assert!(reply.len() < 300, "the reply does not echo the id");
    assert!(t.logs.iter().all(|l| l.message.len() < 1000));
}

#[test]
fn error_replies_never_echo_what_a_peer_answered() {
    let mut t = Transcript::new(config());
    let id = t.event(&event("TASK_RUNNING", "t1", "/a", "h"));
    t.members(&["h"]);
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    t.respond(&register, 500, "SECRET-CONSUL-BODY token=abc");
    let (status, reply) = t.reply(id);
    assert_eq!(status, 502);
    assert!(!reply.contains("SECRET"), "{reply}");
    assert!(reply.contains("HTTP 500"), "{reply}");

    let id = t.event(&event("TASK_RUNNING", "t2", "/a", "h"));
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    t.respond(&register, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/a");
    t.respond(&app, 200, r#"{"app": "SECRET-MARATHON-BODY"}"#);
    let (status, reply) = t.reply(id);
    assert_eq!(status, 502);
    assert!(!reply.contains("SECRET"), "{reply}");
    // The log keeps the detail for the operator, escaped and cut short.
    assert!(t.logged("SECRET-MARATHON-BODY"));
}

#[test]
fn events_are_served_only_while_callbacks_are_the_source() {
    let mut t = Transcript::new(Config {
        events: EventSource::Stream,
        ..config()
    });
    let id = t.event(&status_event("TASK_KILLED", "t1", "/a", "h", "[]"));
    let (status, reply) = t.reply(id);
    assert_eq!(status, 404);
    assert!(error_of(&reply).contains("--accept-callbacks"));
    t.expect_no_request();
    let root = t.inbound("/", "");
    assert_eq!(t.reply(root).0, 200, "/ keeps answering");

    let mut t = Transcript::new(Config {
        events: EventSource::Stream,
        events_endpoint: EventsEndpoint::Always,
        ..config()
    });
    let id = t.event(&status_event("TASK_STAGING", "t1", "/a", "h", "[]"));
    assert_eq!(t.reply(id).0, 200);
}

#[test]
fn a_secret_guards_events_and_is_compared_whole() {
    let mut t = Transcript::new(Config {
        events_secret: Some("s3cr&t".into()),
        ..config()
    });
    let staging = status_event("TASK_STAGING", "t1", "/a", "h", "[]");
    for path in [
        "/events",
        "/events?registration=test",
        "/events?secret=",
        "/events?secret=s3cr",
        "/events?secret=s3cr%26tt",
        "/events?registration=test&secret=s3cr&t",
    ] {
        let id = t.inbound(path, &staging);
        assert_eq!(t.reply(id).0, 403, "{path}");
    }
    let id = t.inbound("/events?registration=test&secret=s3cr%26t", &staging);
    assert_eq!(t.reply(id), (200, r#"{"status": "ok"}"#.into()));
    assert!(t.logs.iter().all(|l| !l.message.contains("s3cr")));
    t.expect_no_request();
}

#[test]
fn a_flood_of_updates_of_one_task_is_bounded() {
    let mut t = Transcript::new(config());
    let first = t.event(&event("TASK_KILLED", "t", "/a", "h"));
    t.members(&["h"]);
    let read = t.expect(Method::Get, agent("h"), "/v1/agent/services");
    let mut refused = 0;
    for _ in 0..2000 {
        let id = t.event(&event("TASK_STAGING", "t", "/a", "h"));
        if t.has_reply(id) {
            assert_eq!(t.reply(id).0, 503);
            refused += 1;
        }
    }
    assert_eq!(refused, 2000 - 1024);
    assert_eq!(t.bridge.metrics().dropped_events(), 976);
    t.fail(&read, TransportError::Timeout);
    assert_eq!(t.reply(first).0, 502);
}

#[test]
fn updates_waiting_for_agents_that_never_answer_are_bounded_per_host_and_in_total() {
    let mut t = Transcript::new(config());
    let hosts: Vec<String> = (0..5).map(|i| format!("h{i}")).collect();
    let first = t.event(&event("TASK_KILLED", "t0", "/a", &hosts[0]));
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    t.members(&names);
    let mut refused = [0u64; 5];
    for (h, host) in hosts.iter().enumerate() {
        for i in 1..=6_000 {
            let id = t.event(&event("TASK_KILLED", &format!("t{h}-{i}"), "/a", host));
            if t.has_reply(id) {
                let (status, reply) = t.reply(id);
                assert_eq!(status, 503, "{reply}");
                refused[h] += 1;
            }
        }
    }
    // 4,096 a host for the first four (the first host's first update included): then the
    // 16,384 in all are reached, and the fifth host gets none.
    assert_eq!(refused[0], 6_001 - 4_096);
    assert_eq!(refused[1..4], [6_000 - 4_096; 3]);
    assert_eq!(refused[4], 6_000);
    assert_eq!(
        t.bridge.metrics().dropped_events(),
        refused.iter().sum::<u64>()
    );
    assert!(!t.has_reply(first), "the first still waits for its agent");
}

/// Found by fuzz/bridge_ops: a task registered on the main Consul because its host is not a
/// member must not have its registrations corrected on that host once its app is read (nor may
/// an app read that names another app be taken for it).
#[test]
fn an_app_read_never_sends_a_strangers_task_to_its_host() {
    let mut t = Transcript::new(Config {
        fallback: true,
        ..config()
    });
    let id = t.event(&event("TASK_RUNNING", "t0", "/web", "stranger"));
    t.members(&["10.0.0.1"]);
    let register = t.expect(Method::Put, Target::Consul, "/v1/agent/service/register");
    t.respond(&register, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    let labelled = r#"{"app":{"id":"/web","labels":{"consul":"frontend"}}}"#;
    t.respond(&app, 200, labelled);
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    let txn = t.expect(Method::Put, Target::Consul, "/v1/txn");
    t.respond(&txn, 200, r#"{"Results":[],"Errors":null}"#);
    assert_eq!(t.reply(id).0, 200);
    t.expect_no_request();

    let mut t = Transcript::new(config());
    let id = t.event(&event("TASK_RUNNING", "t0", "/web", "h"));
    t.members(&["h"]);
    let register = t.expect(Method::Put, agent("h"), "/v1/agent/service/register");
    t.respond(&register, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(
        &app,
        200,
        r#"{"app":{"id":"/other","labels":{"consul":"x"}}}"#,
    );
    assert_eq!(t.reply(id).0, 502);
    assert!(t.logged("Marathon answered app /other for app /web"));
    t.expect_no_request();
}
