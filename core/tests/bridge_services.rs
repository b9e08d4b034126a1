//! Transcript tests of services as app labels shape them (marathon-consul's scheme): a `consul`
//! label names, `tag` labels tag, labelled ports become services of their own, meta carries the
//! Marathon identity; events and syncs agree, and a stop removes all of a task's services.

mod support;

use consular_core::{Config, Method, Target};
use serde_json::{json, Value};
use support::transcript::{agent, body_json, Transcript};

fn config() -> Config {
    Config {
        registration_id: "test".into(),
        ..Config::default()
    }
}

/// `/web` v1: two labelled ports (the first named by the app's `consul` label), one unlabelled.
const WEB_APP: &str = r#"{"app":{"id":"/web","version":"v1",
  "labels":{"consul":"frontend","team-a":"tag"},
  "portDefinitions":[{"port":0,"name":"http","labels":{"consul":"","public":"tag"}},
                     {"port":0,"name":"metrics"},
                     {"port":0,"name":"admin","labels":{"consul":"web-admin"}}]}}"#;

fn running(task: &str) -> String {
    json!({"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "taskId": task,
           "appId": "/web", "host": "h1", "ports": [31000, 31001, 31002], "version": "v1"})
    .to_string()
}

fn summary(body: &Value) -> (String, String, u64, Vec<String>) {
    let tags = body["Tags"].as_array().unwrap();
    (
        body["ID"].as_str().unwrap().into(),
        body["Name"].as_str().unwrap().into(),
        body["Port"].as_u64().unwrap(),
        tags.iter().map(|t| t.as_str().unwrap().into()).collect(),
    )
}

#[test]
fn the_first_task_of_an_unknown_app_is_corrected_once_its_ports_are_read() {
    let mut t = Transcript::new(config());
    let id = t.event(&running("web.1"));
    t.members(&["h1"]);
    // The app is not known yet: consular 1.3.0's one service first, as an agent would list it.
    let default = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    assert_eq!(body_json(&default)["ID"], "web.1");
    t.respond(&default, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&app, 200, WEB_APP);
    // The ports' services appear before the replaced one goes.
    let http = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    let ours = ["consular-reg-id=test", "consular-app-id=/web", "team-a"].map(String::from);
    assert_eq!(
        summary(&body_json(&http)),
        (
            "web.1:0".into(),
            "frontend".into(),
            31000,
            [&ours[..], &["public".into()]].concat()
        )
    );
    assert_eq!(body_json(&http)["Meta"]["marathon-port-name"], "http");
    assert_eq!(body_json(&http)["Meta"]["marathon-app-version"], "v1");
    t.respond(&http, 200, "");
    let admin = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    assert_eq!(
        summary(&body_json(&admin)),
        ("web.1:2".into(), "web-admin".into(), 31002, ours.to_vec())
    );
    t.respond(&admin, 200, "");
    let replaced = t.expect(
        Method::Put,
        agent("h1"),
        "/v1/agent/service/deregister/web.1",
    );
    t.respond(&replaced, 200, "");
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    let txn = t.expect(Method::Put, Target::Consul, "/v1/txn");
    t.respond(&txn, 200, r#"{"Results":[],"Errors":null}"#);
    assert_eq!(t.reply(id).0, 200);

    // Further tasks of v1 register their ports' services at once, and need no app read.
    let id = t.event(&running("web.2"));
    let first = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    assert_eq!(body_json(&first)["ID"], "web.2:0");
    t.respond(&first, 200, "");
    let second = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    assert_eq!(body_json(&second)["ID"], "web.2:2");
    t.respond(&second, 200, "");
    assert_eq!(t.reply(id).0, 200);
    t.expect_no_request();

    // A stop removes every service of the task that is ours, and nothing else.
    let id = t.event(
        &json!({"eventType": "status_update_event", "taskStatus": "TASK_KILLED",
                "taskId": "web.2", "host": "h1"})
        .to_string(),
    );
    let list = t.expect(Method::Get, agent("h1"), "/v1/agent/services");
    let tags = json!(["consular-reg-id=test", "consular-app-id=/web"]);
    let listing = json!({
        "web.2:0": {"ID": "web.2:0", "Service": "frontend", "Tags": tags},
        "web.2:2": {"ID": "web.2:2", "Service": "web-admin", "Tags": tags},
        "web.20:0": {"ID": "web.20:0", "Service": "frontend", "Tags": tags},
        "web.2:9": {"ID": "web.2:9", "Service": "other", "Tags": ["elsewhere"]},
    });
    t.respond(&list, 200, &listing.to_string());
    for port in ["0", "2"] {
        let path = format!("/v1/agent/service/deregister/web.2%3A{port}");
        let dereg = t.expect(Method::Put, agent("h1"), &path);
        t.respond(&dereg, 200, "");
    }
    assert_eq!(t.reply(id).0, 200);
    assert!(t.logged("not deregistering web.2:9 from h1"));
    t.expect_no_request();
}

#[test]
fn a_second_task_registered_while_the_first_reads_the_app_is_corrected_too() {
    let mut t = Transcript::new(config());
    let first = t.event(&running("web.1"));
    t.members(&["h1"]);
    let second = t.event(&running("web.2"));
    // Both register 1.3.0's service: the app's shape is not known yet.
    for task in ["web.1", "web.2"] {
        let default = t.take(Method::Put, agent("h1"), "/v1/agent/service/register");
        assert_eq!(body_json(&default)["ID"], task);
        t.respond(&default, 200, "");
    }
    // The first reads the app; the second waits for that read, which corrects both.
    let app = t.take(Method::Get, Target::Marathon, "/v2/apps/web");
    assert!(!t.has_reply(second));
    t.respond(&app, 200, WEB_APP);
    let mut registered = Vec::new();
    for _ in 0..4 {
        let r = t.take(Method::Put, agent("h1"), "/v1/agent/service/register");
        registered.push(body_json(&r)["ID"].as_str().unwrap().to_string());
        t.respond(&r, 200, "");
    }
    registered.sort();
    assert_eq!(registered, ["web.1:0", "web.1:2", "web.2:0", "web.2:2"]);
    for task in ["web.1", "web.2"] {
        let path = format!("/v1/agent/service/deregister/{task}");
        let replaced = t.take(Method::Put, agent("h1"), &path);
        t.respond(&replaced, 200, "");
    }
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    let txn = t.take(Method::Put, Target::Consul, "/v1/txn");
    t.respond(&txn, 200, r#"{"Results":[],"Errors":null}"#);
    assert_eq!(t.reply(first).0, 200);
    assert_eq!(t.reply(second).0, 200);
    t.expect_no_request();
}
