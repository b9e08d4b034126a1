//! Transcript tests of Marathon's health in Consul: `--health-checks mirror` (a TTL check whose
//! status follows Marathon's verdict, written only when it changes), `--health-checks agent` (the
//! agent runs Marathon's HTTP and TCP checks), and `--register-when-healthy`; and the hostile
//! side: health events for apps the bridge does not know, and ids that break the grammar.

mod support;

use consular_core::{Config, HealthChecks, Method, RegisterWhen, Target};
use serde_json::json;
use support::transcript::{agent, body_json, Transcript};

fn config(health_checks: HealthChecks, register_when: RegisterWhen) -> Config {
    Config {
        registration_id: "test".into(),
        health_checks,
        register_when,
        ..Config::default()
    }
}

/// `/web` v1, one HTTP health check on its first port.
const WEB_APP: &str = r#"{"app":{"id":"/web","version":"v1",
  "healthChecks":[{"protocol":"HTTP","path":"/health","portIndex":0,"intervalSeconds":10,"timeoutSeconds":5}]}}"#;

fn running(task: &str) -> String {
    json!({"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "taskId": task,
           "appId": "/web", "host": "h1", "ports": [31000], "version": "v1"})
    .to_string()
}

fn health_event(task: &str, alive: bool) -> String {
    json!({"eventType": "health_status_changed_event", "appId": "/web", "taskId": task,
           "version": "v1", "alive": alive})
    .to_string()
}

/// `GET /v2/apps/web/tasks`: task `task` on h1 with one health result.
fn tasks(task: &str, alive: bool) -> String {
    json!({"tasks": [{"id": task, "host": "h1", "ports": [31000], "state": "TASK_RUNNING",
        "version": "v1", "appId": "/web",
        "healthCheckResults": [{"alive": alive, "taskId": task,
            "lastFailureCause": if alive { serde_json::Value::Null } else { json!("503 Service Unavailable") }}]}]})
    .to_string()
}

/// Runs `web.1` through its first RUNNING: the default registration, the app read, the
/// corrected one (returned) and the label read.
fn first_running(t: &mut Transcript) -> serde_json::Value {
    let id = t.event(&running("web.1"));
    t.members(&["h1"]);
    let default = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    assert!(body_json(&default).get("Checks").is_none());
    t.respond(&default, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&app, 200, WEB_APP);
    let corrected = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    let body = body_json(&corrected);
    t.respond(&corrected, 200, "");
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    assert_eq!(t.reply(id).0, 200);
    t.expect_no_request();
    body
}

#[test]
fn mirror_follows_marathons_verdict_both_ways_and_a_registration_never_sets_a_status() {
    let mut t = Transcript::new(config(HealthChecks::Mirror, RegisterWhen::Running));
    let body = first_running(&mut t);
    // Consul keeps the status of a check registered again without one (1.8.7), so a RUNNING
    // update of a healthy task, after a restart say, never flips it.
    assert_eq!(
        body["Checks"],
        json!([{"CheckID": "consular:web.1", "Name": "Marathon health",
                "Notes": "Mirrors the 1 Marathon health checks of task web.1", "TTL": "87600h"}])
    );

    for (alive, status, output) in [
        (
            false,
            "critical",
            "Marathon health check 1 of 1 fails: 503 Service Unavailable",
        ),
        (true, "passing", "all 1 Marathon health checks pass"),
    ] {
        let id = t.event(&health_event("web.1", alive));
        assert_eq!(t.reply(id), (200, r#"{"status": "ok"}"#.into()));
        let read = t.expect(Method::Get, Target::Marathon, "/v2/apps/web/tasks");
        t.respond(&read, 200, &tasks("web.1", alive));
        let register = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
        t.respond(&register, 200, "");
        let update = t.expect(
            Method::Put,
            agent("h1"),
            "/v1/agent/check/update/consular%3Aweb.1",
        );
        assert_eq!(
            body_json(&update),
            json!({"Status": status, "Output": output})
        );
        t.respond(&update, 200, "");
        t.expect_no_request();
    }
    assert_eq!(t.bridge.metrics().check_writes(), 2);
}

#[test]
fn agent_checks_are_marathons_http_and_tcp_checks_and_command_is_said_once() {
    let mut t = Transcript::new(config(HealthChecks::Agent, RegisterWhen::Running));
    let id = t.event(&running("web.1"));
    t.members(&["h1"]);
    let default = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    t.respond(&default, 200, "");
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    let definition = json!({"app": {"id": "/web", "version": "v1", "healthChecks": [
        {"protocol": "MESOS_HTTPS", "path": "/ready", "portIndex": 0, "intervalSeconds": 15, "timeoutSeconds": 3},
        {"protocol": "COMMAND", "command": {"value": "true"}},
        {"protocol": "TCP", "port": 8080},
        {"protocol": "HTTP", "path": "/x y"}]}});
    t.respond(&app, 200, &definition.to_string());
    let corrected = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    assert_eq!(
        body_json(&corrected)["Checks"],
        json!([
            {"CheckID": "consular:web.1:1", "Name": "Marathon health check 1 (MESOS_HTTPS)",
             "Notes": "GET https://h1:31000/ready every 15 s, timeout 3 s",
             "HTTP": "https://h1:31000/ready", "TLSSkipVerify": true, "Interval": "15s", "Timeout": "3s"},
            {"CheckID": "consular:web.1:3", "Name": "Marathon health check 3 (TCP)",
             "Notes": "connect to h1:8080 every 60 s, timeout 20 s",
             "TCP": "h1:8080", "Interval": "60s", "Timeout": "20s"},
        ])
    );
    t.respond(&corrected, 200, "");
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    assert_eq!(t.reply(id).0, 200);
    assert!(t.logged("health check 2 (COMMAND) cannot be run by a Consul agent"));
    assert!(t.logged("health check 4 has a path that is not a URL path"));
    // Agent-run checks have no status of ours to set: health events change nothing.
    let id = t.event(&health_event("web.1", false));
    assert_eq!(t.reply(id), (200, r#"{"status": "ignored"}"#.into()));
    t.expect_no_request();
}

#[test]
fn register_when_healthy_waits_for_the_verdict_and_withdraws_on_a_failure() {
    let mut t = Transcript::new(config(HealthChecks::None, RegisterWhen::Healthy));
    // An app not read yet: its health checks are read before anything registers.
    let id = t.event(&running("web.1"));
    t.members(&["h1"]);
    assert_eq!(t.reply(id).0, 200);
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&app, 200, WEB_APP);
    let read = t.expect(Method::Get, Target::Marathon, "/v2/apps/web/tasks");
    let no_result = json!({"tasks": [{"id": "web.1", "host": "h1", "ports": [31000],
        "state": "TASK_RUNNING", "version": "v1", "healthCheckResults": []}]});
    t.respond(&read, 200, &no_result.to_string());
    // No verdict yet: nothing registers; the labels still go to KV.
    let labels = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&labels, 200, WEB_APP);
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    t.expect_no_request();

    let id = t.event(&health_event("web.1", true));
    assert_eq!(t.reply(id).0, 200);
    let read = t.expect(Method::Get, Target::Marathon, "/v2/apps/web/tasks");
    t.respond(&read, 200, &tasks("web.1", true));
    let register = t.expect(Method::Put, agent("h1"), "/v1/agent/service/register");
    assert_eq!(body_json(&register)["ID"], "web.1");
    assert!(body_json(&register).get("Checks").is_none());
    t.respond(&register, 200, "");
    t.expect_no_request();

    let id = t.event(&health_event("web.1", false));
    assert_eq!(t.reply(id).0, 200);
    let read = t.expect(Method::Get, Target::Marathon, "/v2/apps/web/tasks");
    t.respond(&read, 200, &tasks("web.1", false));
    t.ours("h1", "web.1");
    let gone = t.expect(
        Method::Put,
        agent("h1"),
        "/v1/agent/service/deregister/web.1",
    );
    t.respond(&gone, 200, "");
    t.expect_no_request();
    // A RUNNING update of the unhealthy task does not bring it back.
    let id = t.event(&running("web.1"));
    assert_eq!(t.reply(id).0, 200);
    t.expect_no_request();
}

#[test]
fn health_events_of_unknown_apps_cost_nothing_and_bad_ids_are_refused() {
    let mut t = Transcript::new(config(HealthChecks::Mirror, RegisterWhen::Healthy));
    for i in 0..100 {
        let forged = json!({"eventType": "instance_health_changed_event",
            "runSpecId": format!("/forged-{i}"), "instanceId": "x.instance-1", "healthy": true});
        let id = t.event(&forged.to_string());
        assert_eq!(t.reply(id), (200, r#"{"status": "ignored"}"#.into()));
    }
    t.expect_no_request();
    for (field, value) in [
        ("appId", "/../v1/kv"),
        ("taskId", "a/../../b"),
        ("taskId", ""),
    ] {
        let mut event = json!({"eventType": "health_status_changed_event", "appId": "/web",
            "taskId": "web.1", "alive": true});
        event[field] = json!(value);
        let id = t.event(&event.to_string());
        let (status, body) = t.reply(id);
        assert_eq!(status, 400, "{field}={value}: {body}");
        assert!(body.contains(field), "{body}");
    }
    t.expect_no_request();
}

#[test]
fn a_task_of_an_older_app_version_without_a_verdict_is_read_once_not_forever() {
    let mut t = Transcript::new(config(HealthChecks::None, RegisterWhen::Healthy));
    let id = t.event(&running("web.1"));
    t.members(&["h1"]);
    assert_eq!(t.reply(id).0, 200);
    // Marathon has moved on to v2; the task still runs v1 and has no result yet.
    let v2 = WEB_APP.replace(r#""version":"v1""#, r#""version":"v2""#);
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&app, 200, &v2);
    let read = t.expect(Method::Get, Target::Marathon, "/v2/apps/web/tasks");
    let pending = json!({"tasks": [{"id": "web.1", "host": "h1", "ports": [31000],
        "state": "TASK_RUNNING", "version": "v1", "healthCheckResults": []}]});
    t.respond(&read, 200, &pending.to_string());
    // The update takes v2's shape: no verdict, so nothing registers and no second read starts.
    let labels = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&labels, 200, &v2);
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
    t.expect_no_request();
    assert_eq!(t.bridge.metrics().registered(), 0);
}
