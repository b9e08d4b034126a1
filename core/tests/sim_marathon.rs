//! The Marathon simulator against Marathon's own example payloads: for each endpoint and version
//! the simulator's JSON must have the fixture's keys (recursively for apps, tasks and events),
//! plus its documented behaviours (404s, leader loss, callbacks, ids, events, determinism).
//!
//! Fixtures are read at test time from `../core/tests/fixtures/marathon/` relative to this crate.

mod support;

use support::fixtures::fixture_text;

use std::collections::BTreeSet;

use consular_core::marathon::parse_apps;
use consular_core::plan::{AppServices, ServiceRules, TaskFacts};
use consular_core::Method;
use consular_sim::marathon::{iso8601, DEFAULT_TIME_MS};
use consular_sim::{
    sse_frame, MarathonVersion, SimEvent, SimHealthCheck, SimMarathon, SimNetwork, SimPort,
    SimResponse,
};
use serde_json::{json, Value};

use MarathonVersion::{V0_15, V1_1, V1_10, V1_4};

const ALL: [MarathonVersion; 4] = [V0_15, V1_1, V1_4, V1_10];

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Top-level keys of an object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every key path, recursively: `a`, `a.b`, `list[].c`.
fn deep_keys(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.insert(path.clone());
                    walk(v, &path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// The top-level keys of a JSON object in document order (first occurrence of each `"key"`;
/// enough for these flat events, whose nested keys differ from the top-level ones).
fn key_order(json: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(json).expect("json");
    let text = std::str::from_utf8(json).expect("utf8");
    let mut found: Vec<(usize, String)> = keys(&v)
        .into_iter()
        .map(|k| {
            let at = text.find(&format!("\"{k}\"")).expect("key in text");
            (at, k)
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, k)| k).collect()
}

fn get(m: &mut SimMarathon, path: &str) -> SimResponse {
    m.handle(Method::Get, path, b"")
}

fn get_json(m: &mut SimMarathon, path: &str) -> Value {
    let r = get(m, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.content_type, "application/json");
    r.json().expect("json body")
}

fn events_of(events: &[SimEvent], event_type: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .map(SimEvent::value)
        .collect()
}

/// An app `/toggle` with service port 10000, one running healthy task, one staging task and one
/// failed task (for `lastTaskFailure`).
fn toggle(version: MarathonVersion) -> (SimMarathon, String, String) {
    let mut m = SimMarathon::new(version);
    m.put_app("/toggle", &[("consul", "true")]);
    m.set_app_ports("/toggle", &[10000]);
    m.advance(1_000);
    let running = m.start_task("/toggle", "10.141.141.10", &[31045]);
    m.advance(1_000);
    m.set_task_state(&running, "TASK_RUNNING");
    m.set_task_health(&running, true);
    let failed = m.start_task("/toggle", "10.141.141.10", &[31046]);
    m.set_task_state(&failed, "TASK_FAILED");
    let staging = m.start_task("/toggle", "10.141.141.11", &[31234]);
    (m, running, staging)
}

#[test]
fn v1_10_task_has_exactly_the_keys_of_the_1_10_writer_test() {
    let mut m = SimMarathon::new(V1_10);
    m.put_app("/foo/bar", &[]);
    let id = m.start_task("/foo/bar", "agent1.mesos", &[]);
    m.set_task_ip_addresses(&id, &["123.123.123.123", "123.123.123.124"]);
    let body = get_json(&mut m, "/v2/apps/foo/bar/tasks");
    let task = &body["tasks"][0];
    let expected = fixture("task_with_ip_addresses_v1.10_test.json");
    assert_eq!(deep_keys(task), deep_keys(&expected));
    assert_eq!(task["state"], "TASK_STAGING");
    assert_eq!(task["role"], "*");
    assert_eq!(task["appId"], "/foo/bar");
    assert_eq!(task["ipAddresses"], expected["ipAddresses"]);
    // 1.8+ task id: <safePath>.instance-<v1 uuid>._app.1
    let id = task["id"].as_str().unwrap();
    let uuid = id
        .strip_prefix("foo_bar.instance-")
        .and_then(|rest| rest.strip_suffix("._app.1"))
        .unwrap_or_else(|| panic!("bad 1.10 task id {id}"));
    let groups: Vec<&str> = uuid.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(groups[2].starts_with('1'), "time-based uuid: {uuid}");

    // Once running and health-checked: startedAt appears, health results are keyed instanceId.
    m.set_task_state(&format!("foo_bar.instance-{uuid}._app.1"), "TASK_RUNNING");
    m.set_task_health(&format!("foo_bar.instance-{uuid}._app.1"), true);
    let task = &get_json(&mut m, "/v2/apps/foo/bar/tasks")["tasks"][0];
    assert!(task["startedAt"].is_string());
    assert_eq!(
        keys(&task["healthCheckResults"][0]),
        set(&[
            "alive",
            "consecutiveFailures",
            "firstSuccess",
            "lastSuccess",
            "instanceId"
        ])
    );
}

#[test]
fn v1_1_app_with_tasks_matches_the_1_1_show_fixture() {
    let (mut m, _, _) = toggle(V1_1);
    let app = get_json(&mut m, "/v2/apps/toggle")["app"].clone();
    let expected = fixture("app_show_embed_tasks_v1.1.json")["app"].clone();
    // Every field of the doc sample is there; the extras are what the 1.1 writer adds on top of
    // that (older) sample.
    let extra: BTreeSet<String> = keys(&app).difference(&keys(&expected)).cloned().collect();
    assert!(keys(&expected).is_subset(&keys(&app)));
    assert_eq!(
        extra,
        set(&[
            "fetch",
            "portDefinitions",
            "readinessChecks",
            "labels",
            "acceptedResourceRoles",
            "ipAddress",
            "residency"
        ])
    );
    let tasks = app["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "the failed task is gone");
    let running = tasks.iter().find(|t| t["startedAt"].is_string()).unwrap();
    let sample = &expected["tasks"][0];
    assert!(keys(sample).is_subset(&keys(running)));
    assert_eq!(
        keys(running)
            .difference(&keys(sample))
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(&["ipAddresses", "slaveId", "servicePorts"])
    );
    assert!(running.get("state").is_none(), "1.1 tasks have no state");
    assert_eq!(
        keys(&running["healthCheckResults"][0]),
        keys(&sample["healthCheckResults"][0])
    );
    assert_eq!(running["healthCheckResults"][0]["taskId"], running["id"]);
    let staging = tasks.iter().find(|t| t["startedAt"].is_null()).unwrap();
    assert!(staging.get("healthCheckResults").is_none());
    assert_eq!(
        keys(&app["lastTaskFailure"]),
        keys(&expected["lastTaskFailure"])
            .union(&set(&["slaveId"]))
            .cloned()
            .collect()
    );
    assert_eq!(app["lastTaskFailure"]["state"], "TASK_FAILED");
    assert_eq!(app["ports"], json!([10000]));
    assert_eq!(app["tasksRunning"], 1);
    assert_eq!(app["tasksStaged"], 1);
    assert_eq!(app["tasksHealthy"], 1);
}

#[test]
fn v1_1_task_list_has_the_doc_sample_keys() {
    let (mut m, _, _) = toggle(V1_1);
    let body = get_json(&mut m, "/v2/apps/toggle/tasks");
    let sample = fixture("app_tasks_v1.1.json");
    assert_eq!(keys(&body), keys(&sample));
    for task in body["tasks"].as_array().unwrap() {
        assert!(keys(&sample["tasks"][0]).is_subset(&keys(task)));
        assert!(task.get("state").is_none());
    }
}

#[test]
fn v1_4_tasks_have_state_and_instance_keyed_health() {
    let (mut m, running, _) = toggle(V1_4);
    let body = get_json(&mut m, "/v2/apps/toggle/tasks");
    let task = body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == running.as_str())
        .unwrap()
        .clone();
    assert_eq!(task["state"], "TASK_RUNNING");
    assert!(task.get("ipAddresses").is_none(), "1.4: only when known");
    assert_eq!(
        keys(&task["healthCheckResults"][0]),
        set(&[
            "alive",
            "consecutiveFailures",
            "firstSuccess",
            "lastFailure",
            "lastSuccess",
            "lastFailureCause",
            "instanceId"
        ])
    );
    let instance = task["healthCheckResults"][0]["instanceId"]
        .as_str()
        .unwrap();
    // 1.4–1.7: legacy task id app.<uuid>, instance id app.marathon-<uuid>.
    let uuid = running.strip_prefix("toggle.").unwrap();
    assert_eq!(instance, format!("toggle.marathon-{uuid}"));
    // allegro/marathon-consul's instance → task id rewrite works for these.
    assert_eq!(instance.replacen(".marathon-", ".", 1), running);
}

#[test]
fn v0_15_lists_apps_without_tasks_and_404s_an_app_with_no_tasks() {
    let mut m = SimMarathon::new(V0_15);
    m.put_app("/x", &[]);
    let r = get(&mut m, "/v2/apps/x/tasks");
    assert_eq!(r.status, 404);
    let not_found = fixture("app_404_not_found.json");
    assert_eq!(keys(&r.json().unwrap()), keys(&not_found));
    assert_eq!(
        r.json().unwrap(),
        json!({"message": "App '/x' does not exist"})
    );

    let id = m.start_task("/x", "h1", &[31000]);
    assert!(id.starts_with("x.") && !id.contains("instance"), "{id}");
    let body = get_json(&mut m, "/v2/apps/x/tasks");
    let task = &body["tasks"][0];
    assert!(task["startedAt"].is_null(), "staging: startedAt null");
    assert!(task.get("state").is_none());

    // embed is ignored on 0.15 (simulator choice), honoured from 1.1.
    for query in ["embed=apps.tasks", "embed=app.tasks", "embed=apps.failures"] {
        let list = get_json(&mut m, &format!("/v2/apps?{query}"));
        assert!(list["apps"][0].get("tasks").is_none(), "{query}");
        assert_eq!(list["apps"][0]["tasksStaged"], 1, "counts always there");
    }
    let mut m11 = SimMarathon::new(V1_1);
    m11.start_task("/x", "h1", &[31000]);
    let list = get_json(&mut m11, "/v2/apps?embed=apps.tasks");
    assert_eq!(list["apps"][0]["tasks"].as_array().unwrap().len(), 1);
    // …and an empty task list is a 200 from 1.1 on.
    let mut m11 = SimMarathon::new(V1_1);
    m11.put_app("/y", &[]);
    assert_eq!(get_json(&mut m11, "/v2/apps/y/tasks"), json!({"tasks": []}));
}

#[test]
fn the_0_15_404_can_be_switched_off_and_on() {
    let mut m = SimMarathon::new(V1_10);
    m.put_app("/x", &[]);
    m.empty_tasks_404 = true;
    assert_eq!(get(&mut m, "/v2/apps/x/tasks").status, 404);
    let mut m = SimMarathon::new(V0_15);
    m.put_app("/x", &[]);
    m.empty_tasks_404 = false;
    assert_eq!(get(&mut m, "/v2/apps/x/tasks").status, 200);
    m.ignore_embed = false;
    m.start_task("/x", "h", &[]);
    let list = get_json(&mut m, "/v2/apps?embed=apps.tasks");
    assert!(list["apps"][0]["tasks"].is_array());
}

#[test]
fn app_lists_have_the_shapes_of_their_eras() {
    // ≤1.4 era (doc sample): every sample field present.
    for version in [V0_15, V1_1, V1_4] {
        let mut m = SimMarathon::new(version);
        m.put_app("/product/us-east/service/myapp", &[]);
        m.set_app_ports("/product/us-east/service/myapp", &[15092, 14566]);
        let list = get_json(&mut m, "/v2/apps");
        let sample = fixture("apps_list_v1.1.json");
        assert_eq!(keys(&list), keys(&sample));
        let app = &list["apps"][0];
        assert!(
            keys(&sample["apps"][0]).is_subset(&keys(app)),
            "{version:?}: missing {:?}",
            keys(&sample["apps"][0])
                .difference(&keys(app))
                .collect::<Vec<_>>()
        );
        assert_eq!(app["ports"], json!([15092, 14566]));
        assert!(app.get("tasks").is_none(), "no embed, no tasks");
        assert_eq!(app.get("portDefinitions").is_some(), version >= V1_1);
    }
    // 1.10: the RAML sample minus the 1.4 networking and empty defaults, plus 1.5+ fields.
    let mut m = SimMarathon::new(V1_10);
    m.put_app("/myapp", &[]);
    m.set_app_ports("/myapp", &[10013, 10015]);
    let list = get_json(&mut m, "/v2/apps");
    let sample = fixture("apps_list.json")["apps"][0].clone();
    let app = &list["apps"][0];
    let only_sim: BTreeSet<String> = keys(app).difference(&keys(&sample)).cloned().collect();
    let only_sample: BTreeSet<String> = keys(&sample).difference(&keys(app)).cloned().collect();
    assert_eq!(
        only_sim,
        set(&[
            "networks",
            "portDefinitions",
            "gpus",
            "killSelection",
            "unreachableStrategy",
            "role"
        ])
    );
    assert_eq!(
        only_sample,
        set(&[
            "args",
            "user",
            "env",
            "constraints",
            "uris",
            "ports",
            "container",
            "healthChecks",
            "dependencies",
            "acceptedResourceRoles"
        ])
    );
    assert_eq!(
        app["portDefinitions"],
        json!([{"port": 10013, "protocol": "tcp"}, {"port": 10015, "protocol": "tcp"}])
    );
    assert_eq!(keys(&app["versionInfo"]), keys(&sample["versionInfo"]));
    assert_eq!(app["deployments"], json!([]));
}

#[test]
fn app_show_always_embeds_tasks_and_unknown_apps_404() {
    for version in ALL {
        let mut m = SimMarathon::new(version);
        m.start_task("/grp/app", "h", &[1]);
        let app = &get_json(&mut m, "/v2/apps/grp/app")["app"];
        assert_eq!(app["tasks"].as_array().unwrap().len(), 1, "{version:?}");
        assert_eq!(app["id"], "/grp/app");
        // Slashes, leading/trailing and doubled, are normalised like PathId.
        assert_eq!(get(&mut m, "/v2/apps//grp//app/").status, 200);
        let r = get(&mut m, "/v2/apps/not_existent");
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json().unwrap(),
            json!({"message": "App '/not_existent' does not exist"})
        );
        assert_eq!(
            keys(&r.json().unwrap()),
            keys(&fixture("app_404_not_found.json"))
        );
    }
}

#[test]
fn status_update_events_match_the_fixtures_field_for_field() {
    // ≤1.3: the real stream capture (no ipAddresses when unknown), same key order.
    for version in [V0_15, V1_1] {
        let mut m = SimMarathon::new(version);
        let id = m.start_task("/test-app", "srv4", &[31182]);
        m.take_events();
        m.set_task_state(&id, "TASK_RUNNING");
        let events = m.take_events();
        assert_eq!(
            events.len(),
            1,
            "{version:?}: no instance events before 1.4"
        );
        let sample = fixture_text("status_update_event_task_running_stream_sample.json");
        assert_eq!(key_order(&events[0].json), key_order(sample.as_bytes()));
        let v = events[0].value();
        assert_eq!(v["taskStatus"], "TASK_RUNNING");
        assert_eq!(v["taskId"], id.as_str());
        assert_eq!(v["ports"], json!([31182]));
        assert!(v["slaveId"].as_str().unwrap().ends_with("-S0"));
        // Compact, one line, as on the wire.
        assert!(!events[0].json.contains(&b'\n') && !events[0].json.contains(&b' '));
    }
    // 1.4+: the constructed full field set, then instance_changed_event.
    for version in [V1_4, V1_10] {
        let mut m = SimMarathon::new(version);
        let id = m.start_task("/my-app", "slave-1234.acme.org", &[31372]);
        let first = m.take_events();
        let types: Vec<&str> = first.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "api_post_event",
                "group_change_success",
                "status_update_event",
                "instance_changed_event"
            ]
        );
        assert_eq!(first[2].value()["slaveId"], "", "no Mesos status yet");
        assert_eq!(first[2].value()["taskStatus"], "TASK_STAGING");
        m.set_task_ip_addresses(&id, &["10.0.2.15"]);
        m.set_task_state(&id, "TASK_RUNNING");
        let events = m.take_events();
        let text = fixture_text("status_update_event_with_ip_addresses.constructed.json");
        let sample: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(key_order(&events[0].json), key_order(text.as_bytes()));
        assert_eq!(deep_keys(&events[0].value()), deep_keys(&sample));
        assert_eq!(events[0].value()["ipAddresses"], sample["ipAddresses"]);
        let changed = &events[1];
        assert_eq!(changed.event_type, "instance_changed_event");
        assert_eq!(
            keys(&changed.value()),
            keys(&fixture("instance_changed_event.json"))
        );
        assert_eq!(changed.value()["condition"], "Running");
        // Same condition again: status update only.
        m.set_task_state(&id, "TASK_RUNNING");
        assert_eq!(m.take_events().len(), 1);
    }
}

#[test]
fn health_events_use_task_ids_before_1_4_and_instance_ids_after() {
    for (version, fixture_name) in [
        (V0_15, "health_status_changed_event_v1.3.json"),
        (V1_1, "health_status_changed_event_v1.3.json"),
        (V1_4, "health_status_changed_event.json"),
        (V1_10, "health_status_changed_event.json"),
    ] {
        let mut m = SimMarathon::new(version);
        let id = m.start_task("/my-app", "h", &[1]);
        m.set_task_state(&id, "TASK_RUNNING");
        m.take_events();
        m.set_task_health(&id, true);
        let events = m.take_events();
        let health = events_of(&events, "health_status_changed_event");
        assert_eq!(health.len(), 1);
        assert_eq!(
            keys(&health[0]),
            keys(&fixture(fixture_name)),
            "{version:?}"
        );
        assert_eq!(health[0]["alive"], true);
        let instance_health = events_of(&events, "instance_health_changed_event");
        assert_eq!(instance_health.len(), usize::from(version >= V1_4));
        if let Some(ih) = instance_health.first() {
            assert_eq!(
                keys(ih),
                keys(&fixture("instance_health_changed_event.json"))
            );
        }
        // Unchanged result: no event; a flip: one more.
        m.set_task_health(&id, true);
        assert!(events_of(&m.take_events(), "health_status_changed_event").is_empty());
        m.set_task_health(&id, false);
        let flipped = events_of(&m.take_events(), "health_status_changed_event");
        assert_eq!(flipped[0]["alive"], false);
    }
}

#[test]
fn app_lifecycle_events_match_the_fixtures() {
    for version in ALL {
        let mut m = SimMarathon::new(version);
        m.put_app("/my-app", &[("a", "b")]);
        let events = m.take_events();
        let post = &events[0];
        assert_eq!(post.event_type, "api_post_event");
        let post = post.value();
        let sample = fixture("api_post_event.json");
        assert_eq!(keys(&post), keys(&sample));
        assert_eq!(post["uri"], "/v2/apps/my-app");
        assert_eq!(post["appDefinition"]["labels"], json!({"a": "b"}));
        if version != V1_10 {
            // The ≤1.4 definition has every field of the doc sample but `fetch` (1.1+).
            let missing: Vec<String> = keys(&sample["appDefinition"])
                .difference(&keys(&post["appDefinition"]))
                .cloned()
                .collect();
            let expect_missing: Vec<String> = if version == V0_15 {
                vec!["fetch".into()]
            } else {
                vec![]
            };
            assert_eq!(missing, expect_missing, "{version:?}");
        }
        assert_eq!(events[1].event_type, "group_change_success");
        assert_eq!(
            keys(&events[1].value()),
            keys(&fixture("group_change_success.json"))
        );

        let a = m.start_task("/my-app", "h1", &[1]);
        let b = m.start_task("/my-app", "h2", &[2]);
        m.set_task_state(&a, "TASK_RUNNING");
        m.take_events();
        m.remove_app("/my-app");
        let events = m.take_events();
        let types: Vec<&str> = events
            .iter()
            .map(|e| e.event_type.as_str())
            .filter(|t| *t != "instance_changed_event")
            .collect();
        assert_eq!(
            types,
            [
                "api_post_event",
                "group_change_success",
                "status_update_event",
                "status_update_event",
                "app_terminated_event"
            ]
        );
        let killed = events_of(&events, "status_update_event");
        assert!(killed.iter().all(|e| e["taskStatus"] == "TASK_KILLED"));
        assert_eq!(
            killed
                .iter()
                .map(|e| e["taskId"].as_str().unwrap())
                .collect::<Vec<_>>(),
            [a.as_str(), b.as_str()]
        );
        let terminated = events.last().unwrap().value();
        assert_eq!(
            keys(&terminated),
            keys(&fixture("app_terminated_event.json"))
        );
        assert!(m.app("/my-app").is_none());
        assert_eq!(get(&mut m, "/v2/apps/my-app").status, 404);
    }
}

#[test]
fn timestamps_and_versions_follow_the_simulated_clock() {
    let mut m = SimMarathon::new(V1_10);
    let t0 = iso8601(DEFAULT_TIME_MS);
    assert_eq!(t0, "2026-01-01T00:00:00.000Z");
    m.put_app("/a", &[]);
    assert_eq!(m.take_events()[0].value()["timestamp"], t0.as_str());
    m.set_time(DEFAULT_TIME_MS + 1_234);
    let id = m.start_task("/a", "h", &[]);
    let events = m.take_events();
    assert_eq!(events[0].value()["timestamp"], "2026-01-01T00:00:01.234Z");
    assert_eq!(
        events[0].value()["version"],
        t0.as_str(),
        "task runs the app's version"
    );
    m.advance(500);
    m.set_task_state(&id, "TASK_RUNNING");
    let task = &get_json(&mut m, "/v2/tasks")["tasks"][0];
    assert_eq!(task["startedAt"], "2026-01-01T00:00:01.734Z");
    assert_eq!(task["stagedAt"], "2026-01-01T00:00:01.234Z");
}

#[test]
fn terminal_states_remove_tasks_and_failures_are_remembered() {
    let terminal = [
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNKNOWN",
        "TASK_LOST",
    ];
    for state in terminal {
        let mut m = SimMarathon::new(V1_10);
        let id = m.start_task("/a", "h", &[]);
        m.set_task_state(&id, state);
        assert!(m.task(&id).is_none(), "{state}");
        assert_eq!(get_json(&mut m, "/v2/apps/a/tasks"), json!({"tasks": []}));
        let events = m.take_events();
        let update = events_of(&events, "status_update_event").pop().unwrap();
        assert_eq!(update["taskStatus"], state, "raw Mesos state in the event");
        let has_failure = get_json(&mut m, "/v2/apps/a")["app"]
            .get("lastTaskFailure")
            .is_some();
        assert_eq!(
            has_failure,
            matches!(state, "TASK_FAILED" | "TASK_ERROR" | "TASK_LOST"),
            "{state}"
        );
    }
    for state in [
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_KILLING",
        "TASK_UNREACHABLE",
    ] {
        let mut m = SimMarathon::new(V1_10);
        let id = m.start_task("/a", "h", &[]);
        m.set_task_state(&id, state);
        assert_eq!(get_json(&mut m, "/v2/tasks")["tasks"][0]["state"], state);
    }
    // running_tasks sees only TASK_RUNNING.
    let mut m = SimMarathon::new(V1_4);
    let a = m.start_task("/a", "h", &[]);
    m.start_task("/a", "h", &[]);
    m.set_task_state(&a, "TASK_RUNNING");
    let running = m.running_tasks();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].0, "/a");
    assert_eq!(running[0].1.id, a);
}

#[test]
fn event_subscriptions_follow_the_1_x_shapes() {
    for version in [V0_15, V1_1, V1_4] {
        let mut m = SimMarathon::new(version);
        let url = "http://localhost:9292/callback";
        for _ in 0..2 {
            let r = m.handle(
                Method::Post,
                &format!("/v2/eventSubscriptions?callbackUrl={url}"),
                b"",
            );
            assert_eq!(r.status, 200);
            let body = r.json().unwrap();
            assert!(
                keys(&fixture("event_subscriptions_subscribe_v1.1.json")).is_subset(&keys(&body))
            );
            assert_eq!(keys(&body), keys(&fixture("subscribe_event.json")));
            assert_eq!(body["callbackUrl"], url);
            assert_eq!(body["eventType"], "subscribe_event");
        }
        assert_eq!(m.subscriptions(), [url], "a duplicate POST keeps one entry");
        let list = get_json(&mut m, "/v2/eventSubscriptions");
        assert_eq!(
            keys(&list),
            keys(&fixture("event_subscriptions_list_v1.1.json"))
        );
        assert_eq!(list, json!({"callbackUrls": [url]}));
        let published = events_of(&m.take_events(), "subscribe_event");
        assert_eq!(published.len(), 2, "each POST publishes subscribe_event");

        // The bridge's callback URL survives its query string.
        let callback = "http://h:7000/events?registration=a%26b";
        let r = m.handle(
            Method::Post,
            &format!("/v2/eventSubscriptions?callbackUrl={callback}"),
            b"",
        );
        assert_eq!(
            r.json().unwrap()["callbackUrl"],
            "http://h:7000/events?registration=a&b"
        );

        let r = m.handle(
            Method::Delete,
            &format!("/v2/eventSubscriptions?callbackUrl={url}"),
            b"",
        );
        assert_eq!(r.status, 200);
        let body = r.json().unwrap();
        assert_eq!(keys(&body), keys(&fixture("unsubscribe_event.json")));
        assert!(keys(&fixture("event_subscriptions_unsubscribe_v1.1.json")).is_subset(&keys(&body)));
        assert_eq!(m.subscriptions(), ["http://h:7000/events?registration=a&b"]);

        m.callbacks_enabled = false;
        let r = get(&mut m, "/v2/eventSubscriptions");
        assert_eq!(r.status, 400);
        let message = r.json().unwrap()["message"].as_str().unwrap().to_string();
        assert!(message
            .starts_with("http event callback system is not running on this Marathon instance."));
        assert!(message.ends_with("\"--event_subscriber http_callback\"."));
        assert_eq!(
            m.handle(Method::Put, "/v2/eventSubscriptions", b"").status,
            405
        );
    }
    // 1.4 validates the URL like java.net.URL.
    let mut m = SimMarathon::new(V1_4);
    let r = m.handle(Method::Post, "/v2/eventSubscriptions?callbackUrl=foo", b"");
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json().unwrap(),
        json!({"message": "Object is not valid", "details": [{"path": "/", "errors": ["no protocol: foo"]}]})
    );
    assert!(m.subscriptions().is_empty());
    // Removed in 1.5.
    let mut m = SimMarathon::new(V1_10);
    assert!(!m.callbacks_enabled);
    for method in [Method::Get, Method::Post, Method::Delete] {
        let r = m.handle(method, "/v2/eventSubscriptions?callbackUrl=http://x/", b"");
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json().unwrap(),
            json!({"message": "URI not found: /v2/eventSubscriptions"})
        );
    }
}

#[test]
fn leader_and_leader_loss() {
    for version in ALL {
        let mut m = SimMarathon::new(version);
        let leader = get_json(&mut m, "/v2/leader");
        assert_eq!(keys(&leader), keys(&fixture("leader.json")));
        assert_eq!(leader["leader"], "127.0.0.1:8080");
        m.no_leader = true;
        let r = get(&mut m, "/v2/leader");
        assert_eq!(r.status, 404);
        assert_eq!(r.json().unwrap(), fixture("leader_404_no_leader.json"));
        let r = get(&mut m, "/v2/apps");
        assert_eq!(r.status, if version == V1_10 { 502 } else { 503 });
        assert!(r.content_type.starts_with("text/html"));
        assert!(r.text().contains("Could not determine the current leader"));
        assert_eq!(
            get(&mut m, "/ping").status,
            r.status,
            "/ping is proxied too"
        );
        m.no_leader = false;
        assert_eq!(get(&mut m, "/v2/apps").status, 200);
    }
}

#[test]
fn info_has_the_version_appropriate_shape() {
    let mut m = SimMarathon::new(V1_10);
    let info = get_json(&mut m, "/v2/info");
    assert_eq!(keys(&info), keys(&fixture("info.json")));
    assert_eq!(info["version"], "1.10.17");
    assert_eq!(
        keys(&info["http_config"]),
        keys(&fixture("info.json")["http_config"])
    );
    for version in [V1_1, V1_4] {
        let mut m = SimMarathon::new(version);
        let info = get_json(&mut m, "/v2/info");
        let legacy = keys(&fixture("info_legacy_doc.json"));
        assert!(legacy.is_subset(&keys(&info)), "{version:?}");
        assert_eq!(
            keys(&info)
                .difference(&legacy)
                .cloned()
                .collect::<BTreeSet<_>>(),
            set(&["buildref", "elected"])
        );
        assert_eq!(info["event_subscriber"]["type"], "http_callback");
        m.callbacks_enabled = false;
        assert!(get_json(&mut m, "/v2/info")
            .get("event_subscriber")
            .is_none());
    }
}

#[test]
fn ping_and_the_event_stream_path() {
    let mut m = SimMarathon::new(V1_10);
    let r = get(&mut m, "/ping");
    assert_eq!(
        (r.status, r.content_type, r.text().as_str()),
        (200, "text/plain", "pong")
    );
    let mut old = SimMarathon::new(V1_1);
    assert_eq!(get(&mut old, "/ping").text(), "pong\n");
    // Without the exact Accept header Jetty's EventSource servlet answers 405.
    let r = get(&mut m, "/v2/events");
    assert_eq!(r.status, 405);
    assert!(r
        .text()
        .contains("HTTP method GET is not supported by this URL"));
}

#[test]
fn sse_frames_and_stream_events() {
    let mut m = SimMarathon::new(V1_10);
    let attached = m.event_stream_attached("127.0.0.1");
    assert_eq!(attached.event_type, "event_stream_attached");
    assert_eq!(
        keys(&attached.value()),
        keys(&fixture("event_stream_attached.json"))
    );
    assert_eq!(
        key_order(&attached.json),
        key_order(fixture_text("event_stream_attached.json").as_bytes())
    );
    let frame = sse_frame(&attached);
    let expected = format!(
        "event: event_stream_attached\r\ndata: {}\r\n\r\n",
        std::str::from_utf8(&attached.json).unwrap()
    );
    assert_eq!(frame, expected.as_bytes());
    let detached = m.event_stream_detached("127.0.0.1");
    assert_eq!(
        keys(&detached.value()),
        keys(&fixture("event_stream_detached.constructed.json"))
    );
    m.publish(attached.clone());
    assert_eq!(m.take_events(), [attached]);
    assert!(m.take_events().is_empty(), "take_events drains");

    // The stream sample parses into the same frames the simulator writes.
    let sample = fixture_text("events_stream_sample.txt");
    let mut lines = sample.lines();
    let (event, data) = (lines.next().unwrap(), lines.next().unwrap());
    let sample_event = SimEvent {
        event_type: event.trim_start_matches("event: ").into(),
        json: data.trim_start_matches("data: ").as_bytes().to_vec(),
    };
    let rewritten = String::from_utf8(sse_frame(&sample_event)).unwrap();
    assert_eq!(
        rewritten.replace("\r\n", "\n"),
        format!("{event}\n{data}\n\n")
    );

    // event_type filtering exists from 1.3.7 on.
    let q = "/v2/events?event_type=status_update_event&event_type=health_status_changed_event";
    assert_eq!(
        m.event_type_filter(q),
        ["status_update_event", "health_status_changed_event"]
    );
    assert!(SimMarathon::new(V1_1).event_type_filter(q).is_empty());
}

#[test]
fn unknown_routes_wrong_methods_and_malformed_paths() {
    let mut m = SimMarathon::new(V1_10);
    let r = get(&mut m, "/v2/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json().unwrap(),
        json!({"message": "URI not found: /v2/nope"})
    );
    let r = m.handle(Method::Post, "/v2/leader", b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("DELETE,GET"));
    assert_eq!(r.json().unwrap(), json!({"message": "Method Not Allowed"}));
    for bad in ["/v2/apps/%zz", "/v2/apps/%", "", "v2/apps", "/.."] {
        let r = get(&mut m, bad);
        assert_eq!(r.status, 400, "{bad:?}");
    }
    // Dot segments are resolved like Jetty before routing.
    assert_eq!(get(&mut m, "/v2/apps/../info").status, 200);
}

#[test]
fn label_id_and_embed_query_parameters() {
    let mut m = SimMarathon::new(V1_4);
    m.put_app("/web", &[("consul", "web"), ("tier", "front")]);
    m.put_app("/db", &[("tier", "back")]);
    m.start_task("/web", "h", &[1]);
    let ids = |m: &mut SimMarathon, q: &str| -> Vec<String> {
        get_json(m, &format!("/v2/apps?{q}"))["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&mut m, "label=consul"), ["/web"]);
    assert_eq!(ids(&mut m, "label=tier==back"), ["/db"]);
    assert_eq!(
        ids(&mut m, "label=tier%20in%20(front,%20back)"),
        ["/db", "/web"]
    );
    assert_eq!(ids(&mut m, "id=WE"), ["/web"]);
    assert!(ids(&mut m, "label=a%20((").is_empty());
    let list = get_json(&mut m, "/v2/apps?embed=apps.tasks&label=consul");
    assert_eq!(list["apps"][0]["tasks"].as_array().unwrap().len(), 1);
    let list = get_json(&mut m, "/v2/apps?embed=apps.counts");
    assert!(list["apps"][0].get("tasks").is_none());
    // Group listings.
    m.start_task("/grp/a", "h", &[]);
    m.start_task("/grp/sub/b", "h", &[]);
    let group = get_json(&mut m, "/v2/apps/grp/*");
    assert_eq!(group["*"].as_array().unwrap().len(), 2);
    let tasks = get_json(&mut m, "/v2/apps/grp/*/tasks");
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 2);
    let r = get(&mut m, "/v2/apps/nogroup/*");
    assert_eq!(
        r.json().unwrap(),
        json!({"message": "Group '/nogroup' does not exist"})
    );
}

#[test]
fn apps_can_be_written_over_http() {
    let mut m = SimMarathon::new(V1_10);
    let r = m.handle(
        Method::Post,
        "/v2/apps",
        br#"{"id":"/web","labels":{"consul":"yes"},"portDefinitions":[{"port":10000}]}"#,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Location"), Some("/v2/apps/web"));
    assert_eq!(m.app("/web").unwrap().service_ports, [10000]);
    let events = m.take_events();
    assert_eq!(events[0].event_type, "api_post_event");
    let r = m.handle(Method::Post, "/v2/apps", br#"{"id":"/web"}"#);
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json().unwrap(),
        json!({"message": "An app with id [/web] already exists."})
    );
    let r = m.handle(
        Method::Put,
        "/v2/apps/web",
        br#"{"labels":{"consul":"no"}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        keys(&r.json().unwrap()),
        keys(&fixture("deployment_result.json"))
    );
    assert_eq!(m.app("/web").unwrap().labels["consul"], "no");
    assert_eq!(m.handle(Method::Put, "/v2/apps/new", b"{}").status, 201);
    let r = m.handle(Method::Put, "/v2/apps/Bad_Id", b"{}");
    assert_eq!(r.status, 422);
    assert_eq!(r.json().unwrap()["details"][0]["path"], "/id");
    let r = m.handle(Method::Put, "/v2/apps/web", br#"{"labels":{"k":1}}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["details"][0]["path"], "/labels/k");
    let r = m.handle(Method::Post, "/v2/apps", b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["message"], "Invalid JSON");
    let r = m.handle(Method::Post, "/v2/apps", b"{}");
    assert_eq!(
        r.json().unwrap()["details"][0]["errors"][0],
        "error.path.missing"
    );
    let id = m.start_task("/web", "h", &[1]);
    let r = m.handle(Method::Delete, "/v2/apps/web/tasks", b"");
    assert_eq!(r.json().unwrap()["tasks"][0]["id"], id.as_str());
    assert!(m.task(&id).is_none());
    assert_eq!(m.handle(Method::Delete, "/v2/apps/web", b"").status, 200);
    assert!(m.app("/web").is_none());
    assert_eq!(m.handle(Method::Delete, "/v2/apps/web", b"").status, 404);
}

/// Replays a fixed script and returns everything observable.
fn transcript(version: MarathonVersion) -> Vec<u8> {
    let mut m = SimMarathon::new(version);
    let mut out = Vec::new();
    let record = |r: SimResponse, out: &mut Vec<u8>| {
        out.extend_from_slice(format!("{} {}\n", r.status, r.content_type).as_bytes());
        out.extend_from_slice(&r.body);
    };
    m.put_app("/a/b", &[("x", "1")]);
    let t = m.start_task("/a/b", "h1", &[1, 2]);
    m.advance(10);
    m.set_task_state(&t, "TASK_RUNNING");
    m.set_task_health(&t, false);
    let paths = [
        "/v2/apps?embed=apps.tasks",
        "/v2/apps/a/b",
        "/v2/apps/a/b/tasks",
        "/v2/tasks",
        "/v2/info",
    ];
    for p in paths {
        let r = get(&mut m, p);
        record(r, &mut out);
    }
    for e in m.take_events() {
        out.extend_from_slice(&sse_frame(&e));
    }
    out
}

#[test]
fn the_simulator_is_deterministic() {
    for version in ALL {
        assert_eq!(transcript(version), transcript(version), "{version:?}");
    }
    assert_ne!(transcript(V1_1), transcript(V1_10));
}

#[test]
fn no_input_makes_it_panic() {
    let paths = [
        "/",
        "/v2",
        "/v2/apps/",
        "/v2/apps/*",
        "/v2/apps/*/tasks",
        "/v2/apps//tasks",
        "/v2/apps/a/tasks/",
        "/v2/apps/%00",
        "/v2/apps/%C3%28",
        "/v2/apps?embed",
        "/v2/apps?&&=&label==",
        "/v2/apps?label=,",
        "/v2/apps?label=a%20in%20",
        "/v2/tasks?status=",
        "/v2/eventSubscriptions?callbackUrl",
        "/v2/eventSubscriptions?callbackUrl=%",
        "/v2/leader#frag",
        "/ping?x",
        "/v2/apps/a/../../..",
        "/v2/apps/\u{e9}",
        "?",
        "#",
        "/v2/apps/a?embed=apps.failures",
    ];
    let bodies: [&[u8]; 7] = [
        b"",
        b"null",
        b"[]",
        b"{\"id\":5}",
        b"{\"id\":\"/ok\",\"instances\":-1}",
        b"{\"id\":\"/ok\",\"ports\":[70000]}",
        &[0xff, 0xfe, b'{'],
    ];
    for version in ALL {
        let mut m = SimMarathon::new(version);
        m.start_task("/a", "h", &[1]);
        for path in paths {
            for method in [Method::Get, Method::Put, Method::Post, Method::Delete] {
                for body in bodies {
                    let r = m.handle(method, path, body);
                    assert!((200..600).contains(&r.status));
                    if r.content_type == "application/json" {
                        assert!(r.json().is_some(), "{method} {path}: {}", r.text());
                    }
                }
            }
        }
        for state in ["", "TASK_RUNNING", "bogus", "TASK_LOST"] {
            m.set_task_state("no-such-task", state);
        }
        m.set_task_health("no-such-task", true);
        m.set_task_check_health("no-such-task", usize::MAX, false);
        m.remove_app("no-such-app");
        m.set_app_ports("no-such-app", &[1]);
        m.set_app_port_specs("no-such-app", vec![SimPort::default()]);
        m.set_app_network("no-such-app", SimNetwork::IpPerTask);
        m.set_app_health_checks("no-such-app", vec![SimHealthCheck::default()]);
        assert!(m.app("/no-such-app").is_none(), "setters create no app");
    }
}

// ---------------------------------------------------------------------------------------------
// Port specs, networking and health checks (marathon-api.md §3: ≤1.4 vs 1.5+ shapes)
// ---------------------------------------------------------------------------------------------

fn port(name: &str, labels: &[(&str, &str)], container_port: Option<u16>) -> SimPort {
    SimPort {
        name: Some(name.into()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        container_port,
    }
}

/// `/web` with service ports 10000 and 10001, `http` (labelled `consul`, tagged `public`) and
/// `admin` (labelled `consul: web-admin`), on `network`, with one task staged on `h1` with host
/// ports 31000 and 31001 and then running.
fn two_port_app(version: MarathonVersion, network: SimNetwork) -> (SimMarathon, String) {
    let mut m = SimMarathon::new(version);
    m.put_app("/web", &[("team", "tag")]);
    m.set_app_ports("/web", &[10000, 10001]);
    m.set_app_port_specs(
        "/web",
        vec![
            port("http", &[("consul", ""), ("public", "tag")], Some(8080)),
            port("admin", &[("consul", "web-admin")], Some(9090)),
        ],
    );
    m.set_app_network("/web", network);
    let id = m.start_task("/web", "h1", &[31000, 31001]);
    m.set_task_state(&id, "TASK_RUNNING");
    (m, id)
}

/// The one app of `GET /v2/apps?embed=apps.tasks`, as JSON and as the core parses it (with its
/// tasks on 0.15 too: [`SimMarathon::ignore_embed`] is a simulator choice, switched off here).
fn listed_app(m: &mut SimMarathon) -> (Value, consular_core::marathon::App) {
    m.ignore_embed = false;
    let r = get(m, "/v2/apps?embed=apps.tasks");
    assert_eq!(r.status, 200);
    let parsed = parse_apps(&r.body).expect("the core parses the simulator's apps");
    assert_eq!(parsed.len(), 1);
    (
        r.json().unwrap()["apps"][0].clone(),
        parsed.into_iter().next().unwrap(),
    )
}

/// (id, name, address, port) of each registration the core makes of the listed app's first task.
fn registrations(m: &mut SimMarathon) -> Vec<(String, String, String, Option<u16>)> {
    let (_, app) = listed_app(m);
    let rules = ServiceRules::for_registration_id("r");
    let services = AppServices::of(&app, &rules);
    let tasks = app.tasks.clone().unwrap_or_default();
    let task = tasks.first().expect("a task");
    let ports = task.ports.clone().expect("ports");
    let addresses: Vec<String> = task
        .ip_addresses
        .iter()
        .map(|a| a.ip_address.clone())
        .collect();
    services
        .registrations(
            &rules,
            TaskFacts {
                id: &task.id,
                host: &task.host,
                ports: &ports,
                addresses: &addresses,
                health: &consular_core::marathon::TaskHealth::Unreported,
            },
        )
        .into_iter()
        .map(|r| (r.id, r.name, r.address, r.port))
        .collect()
}

fn reg(id: &str, name: &str, address: &str, port: u16) -> (String, String, String, Option<u16>) {
    (id.into(), name.into(), address.into(), Some(port))
}

#[test]
fn port_specs_are_port_definitions_in_host_networking() {
    let sample = fixture("app_definition.json")["portDefinitions"][0].clone();
    for version in ALL {
        let (mut m, task) = two_port_app(version, SimNetwork::Host);
        let (app, _) = listed_app(&mut m);
        assert!(app["container"].is_null(), "null (≤1.4) or absent (1.10)");
        if version == V0_15 {
            // 0.15's writer has `ports` only (portDefinitions came with 1.0).
            assert!(app.get("portDefinitions").is_none());
            assert_eq!(app["ports"], json!([10000, 10001]));
            continue;
        }
        let defs = app["portDefinitions"].as_array().unwrap();
        assert_eq!(defs.len(), 2, "{version:?}");
        assert_eq!(keys(&defs[0]), keys(&sample), "{version:?}");
        assert_eq!(
            app["portDefinitions"],
            json!([
                {"port": 10000, "protocol": "tcp", "name": "http",
                 "labels": {"consul": "", "public": "tag"}},
                {"port": 10001, "protocol": "tcp", "name": "admin",
                 "labels": {"consul": "web-admin"}}
            ])
        );
        assert_eq!(app.get("ports").is_some(), version <= V1_4, "{version:?}");
        if version == V1_10 {
            assert_eq!(app["networks"], json!([{"mode": "host"}]));
            assert!(app.get("container").is_none());
        } else {
            assert_eq!(app["ports"], json!([10000, 10001]));
        }
        let task_json = &app["tasks"][0];
        assert_eq!(task_json["ports"], json!([31000, 31001]));
        assert_eq!(task_json["servicePorts"], json!([10000, 10001]));
        // What the bridge makes of it: one service per labelled port, on the host ports.
        assert_eq!(
            registrations(&mut m),
            [
                reg(&format!("{task}:0"), "web", "h1", 31000),
                reg(&format!("{task}:1"), "web-admin", "h1", 31001),
            ],
            "{version:?}"
        );
    }
    // 1.10 leaves empty labels and absent names out; ≤1.4 writes `labels: {}`.
    for (version, expected) in [
        (V1_4, json!([{"port": 0, "protocol": "tcp", "labels": {}}])),
        (V1_10, json!([{"port": 0, "protocol": "tcp"}])),
    ] {
        let mut m = SimMarathon::new(version);
        m.put_app("/a", &[]);
        m.set_app_port_specs("/a", vec![SimPort::default()]);
        assert_eq!(listed_app(&mut m).0["portDefinitions"], expected);
    }
}

#[test]
fn bridge_networking_is_docker_bridge_before_1_5_and_a_bridge_network_after() {
    let sample = fixture("app_definition.json");
    let sample_mapping = sample["container"]["docker"]["portMappings"][0].clone();
    for version in [V0_15, V1_1, V1_4] {
        let (mut m, task) = two_port_app(version, SimNetwork::Bridge);
        let (app, _) = listed_app(&mut m);
        let docker = &app["container"]["docker"];
        assert_eq!(app["container"]["type"], "DOCKER");
        assert_eq!(docker["network"], "BRIDGE", "{version:?}");
        assert_eq!(docker["network"], sample["container"]["docker"]["network"]);
        let mappings = docker["portMappings"].as_array().unwrap();
        assert_eq!(keys(&mappings[0]), keys(&sample_mapping), "{version:?}");
        assert_eq!(
            docker["portMappings"],
            json!([
                {"containerPort": 8080, "hostPort": 0, "servicePort": 10000, "protocol": "tcp",
                 "name": "http", "labels": {"consul": "", "public": "tag"}},
                {"containerPort": 9090, "hostPort": 0, "servicePort": 10001, "protocol": "tcp",
                 "name": "admin", "labels": {"consul": "web-admin"}}
            ])
        );
        assert!(app.get("networks").is_none() && app["ipAddress"].is_null());
        assert_eq!(app["ports"], json!([10000, 10001]), "service ports");
        if version >= V1_1 {
            assert_eq!(app["portDefinitions"], json!([]), "{version:?}");
        }
        // Bridged tasks have host ports (and Docker's bridge address once running).
        let t = &app["tasks"][0];
        assert_eq!(t["ports"], json!([31000, 31001]));
        assert!(t["ipAddresses"][0]["ipAddress"]
            .as_str()
            .unwrap()
            .starts_with("172.17."));
        assert_eq!(
            registrations(&mut m),
            [
                reg(&format!("{task}:0"), "web", "h1", 31000),
                reg(&format!("{task}:1"), "web-admin", "h1", 31001),
            ],
            "{version:?}: host and host ports"
        );
    }
    let (mut m, task) = two_port_app(V1_10, SimNetwork::Bridge);
    let (app, _) = listed_app(&mut m);
    assert_eq!(app["networks"], json!([{"mode": "container/bridge"}]));
    assert!(app.get("portDefinitions").is_none() && app.get("ports").is_none());
    assert!(app["container"]["docker"].get("portMappings").is_none());
    assert!(app["container"]["docker"].get("network").is_none());
    let mappings = app["container"]["portMappings"].as_array().unwrap();
    assert_eq!(keys(&mappings[0]), keys(&sample_mapping));
    assert_eq!(mappings[1]["hostPort"], 0);
    assert_eq!(mappings[1]["containerPort"], 9090);
    assert_eq!(app["tasks"][0]["ports"], json!([31000, 31001]));
    assert_eq!(
        registrations(&mut m),
        [
            reg(&format!("{task}:0"), "web", "h1", 31000),
            reg(&format!("{task}:1"), "web-admin", "h1", 31001),
        ]
    );
}

#[test]
fn container_networks_have_no_host_ports_and_carry_task_addresses() {
    let sample_task = fixture("task_with_ip_addresses_v1.10_test.json");
    for version in ALL {
        let (mut m, task) = two_port_app(version, SimNetwork::Container("dcos".into()));
        let (app, parsed) = listed_app(&mut m);
        assert!(parsed.has_task_addresses(), "{version:?}");
        let t = &app["tasks"][0];
        assert_eq!(t["ports"], json!([]), "{version:?}: host ports ignored");
        let address = t["ipAddresses"][0]["ipAddress"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(address.starts_with("9.0."), "{version:?}: {address}");
        if version == V1_10 {
            // The writer test's staging task, plus `startedAt` now that it runs.
            let mut want = deep_keys(&sample_task);
            want.insert("startedAt".into());
            assert_eq!(deep_keys(t), want);
            assert_eq!(
                app["networks"],
                json!([{"mode": "container", "name": "dcos"}])
            );
            let mappings = &app["container"]["portMappings"];
            assert_eq!(
                mappings[0],
                json!({"containerPort": 8080, "servicePort": 10000, "protocol": "tcp",
                       "name": "http", "labels": {"consul": "", "public": "tag"}}),
                "no hostPort on a container network"
            );
            assert!(app.get("portDefinitions").is_none() && app.get("ipAddress").is_none());
        } else {
            // Docker USER networking names its network in `ipAddress`; the top-level port
            // fields are left out next to it (1.1+).
            let docker = &app["container"]["docker"];
            assert_eq!(docker["network"], "USER", "{version:?}");
            assert!(docker["portMappings"][0].get("hostPort").is_none());
            assert_eq!(docker["portMappings"][1]["containerPort"], 9090);
            assert_eq!(app["ipAddress"]["networkName"], "dcos");
            assert!(app.get("networks").is_none());
            if version >= V1_1 {
                for field in ["ports", "portDefinitions", "requirePorts"] {
                    assert!(app.get(field).is_none(), "{version:?}: {field}");
                }
            }
        }
        assert_eq!(
            registrations(&mut m),
            [
                reg(&format!("{task}:0"), "web", &address, 8080),
                reg(&format!("{task}:1"), "web-admin", &address, 9090),
            ],
            "{version:?}: the task's address and the container ports"
        );
        // An address set by the test wins, and the status update carries it with no ports.
        let other = m.start_task("/web", "h2", &[31005]);
        m.set_task_ip_addresses(&other, &["10.0.0.5"]);
        m.take_events();
        m.set_task_state(&other, "TASK_RUNNING");
        let update = events_of(&m.take_events(), "status_update_event").remove(0);
        assert_eq!(update["ports"], json!([]), "{version:?}");
        assert_eq!(update["ipAddresses"][0]["ipAddress"], "10.0.0.5");
        assert_eq!(m.task(&other).unwrap().ip_addresses, ["10.0.0.5"]);
    }
}

#[test]
fn ip_per_task_is_ip_address_before_1_5_and_a_container_network_after() {
    let sample = fixture("app_definition.json")["ipAddress"].clone();
    for version in [V0_15, V1_1, V1_4] {
        let (mut m, _) = two_port_app(version, SimNetwork::IpPerTask);
        let (app, parsed) = listed_app(&mut m);
        assert!(parsed.has_task_addresses());
        let ip = &app["ipAddress"];
        assert!(keys(&sample).is_subset(&keys(ip)), "{version:?}");
        assert_eq!(
            keys(ip).difference(&keys(&sample)).collect::<Vec<_>>(),
            ["networkName"]
        );
        assert_eq!(
            keys(&ip["discovery"]["ports"][0]),
            keys(&sample["discovery"]["ports"][0])
        );
        assert_eq!(
            ip["discovery"]["ports"],
            json!([{"number": 8080, "name": "http", "protocol": "tcp"},
                   {"number": 9090, "name": "admin", "protocol": "tcp"}]),
            "discovery ports have no labels"
        );
        assert_eq!(ip["networkName"], Value::Null);
        assert!(app["container"].is_null());
        if version >= V1_1 {
            assert!(app.get("ports").is_none() && app.get("portDefinitions").is_none());
        } else {
            assert_eq!(app["ports"], json!([]), "0.15 writes ports regardless");
        }
        let t = &app["tasks"][0];
        assert_eq!(t["ports"], json!([]));
        assert!(t.get("servicePorts").is_none(), "none for IP-per-task");
        assert!(t["ipAddresses"][0]["ipAddress"].is_string());
    }
    let (mut m, task) = two_port_app(V1_10, SimNetwork::IpPerTask);
    let (app, _) = listed_app(&mut m);
    assert_eq!(app["networks"], json!([{"mode": "container"}]));
    assert_eq!(app["container"]["type"], "MESOS");
    assert_eq!(app["container"]["portMappings"][1]["containerPort"], 9090);
    assert!(app.get("ipAddress").is_none());
    let address = app["tasks"][0]["ipAddresses"][0]["ipAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        registrations(&mut m),
        [
            reg(&format!("{task}:0"), "web", &address, 8080),
            reg(&format!("{task}:1"), "web-admin", &address, 9090),
        ]
    );
}

fn three_checks() -> Vec<SimHealthCheck> {
    vec![
        SimHealthCheck {
            path: Some("/health".into()),
            port_index: Some(0),
            interval_seconds: 10,
            timeout_seconds: 10,
            grace_period_seconds: 5,
            ..SimHealthCheck::default()
        },
        SimHealthCheck {
            protocol: "TCP".into(),
            path: None,
            port: Some(3333),
            ..SimHealthCheck::default()
        },
        SimHealthCheck {
            protocol: "COMMAND".into(),
            path: None,
            command: Some("curl -f http://$HOST:$PORT0/".into()),
            ..SimHealthCheck::default()
        },
    ]
}

#[test]
fn health_checks_have_marathons_field_names() {
    let raml_sample = fixture("app_definition.json")["healthChecks"][0].clone();
    let old_sample = fixture("app_show_embed_tasks_v1.1.json")["app"]["healthChecks"].clone();
    for version in ALL {
        let mut m = SimMarathon::new(version);
        m.put_app("/toggle", &[]);
        m.set_app_health_checks("/toggle", three_checks());
        let (app, _) = listed_app(&mut m);
        let checks = app["healthChecks"].as_array().unwrap();
        assert_eq!(checks.len(), 3, "{version:?}");
        let (http, tcp, command) = (&checks[0], &checks[1], &checks[2]);
        if version <= V1_1 {
            // The doc sample's keys, but `command: null` (the writer leaves an absent command
            // out) and `overridePort` (the doc's old name of `port`).
            let mut want = keys(&old_sample[0]);
            want.remove("command");
            want.insert("ignoreHttp1xx".into());
            assert_eq!(keys(http), want, "{version:?}");
            assert_eq!(
                http,
                &json!({"path": "/health", "protocol": "HTTP", "portIndex": 0,
                "gracePeriodSeconds": 5, "intervalSeconds": 10, "timeoutSeconds": 10,
                "maxConsecutiveFailures": 3, "ignoreHttp1xx": false})
            );
        } else {
            assert_eq!(keys(http), keys(&raml_sample), "{version:?}");
            assert_eq!(http["ignoreHttp1xx"], false);
        }
        assert_eq!(http["path"], "/health");
        assert_eq!(http["portIndex"], 0);
        assert_eq!(tcp["port"], 3333);
        assert!(tcp.get("portIndex").is_none() && tcp.get("path").is_none());
        assert_eq!(tcp["protocol"], "TCP");
        assert_eq!(command["protocol"], "COMMAND");
        assert_eq!(
            command["command"],
            json!({"value": "curl -f http://$HOST:$PORT0/"})
        );
        assert!(command.get("portIndex").is_none());
        assert_eq!(command["intervalSeconds"], 60);
        assert_eq!(command["gracePeriodSeconds"], 300);
        assert_eq!(command["timeoutSeconds"], 20);
        assert_eq!(command["maxConsecutiveFailures"], 3);
        assert_eq!(command.get("delaySeconds").is_some(), version >= V1_4);
        // The 1.10 definition writes healthChecks only when there are some (the
        // no-checks shape is checked in app_lists_have_the_shapes_of_their_eras).
        m.set_app_health_checks("/toggle", Vec::new());
        let (app, _) = listed_app(&mut m);
        assert_eq!(app.get("healthChecks").is_some(), version < V1_10);
    }
}

#[test]
fn each_check_has_its_own_result_and_the_instance_is_healthy_when_all_are_alive() {
    let old_sample = fixture("app_show_embed_tasks_v1.1.json")["app"]["tasks"][0].clone();
    for version in ALL {
        let mut m = SimMarathon::new(version);
        m.put_app("/toggle", &[]);
        m.set_app_health_checks("/toggle", three_checks()[..2].to_vec());
        let id = m.start_task("/toggle", "h1", &[31045]);
        m.set_task_state(&id, "TASK_RUNNING");
        m.take_events();
        let instance_events =
            |events: &[SimEvent]| events_of(events, "instance_health_changed_event");
        let results = |m: &mut SimMarathon| {
            get_json(m, "/v2/apps/toggle/tasks")["tasks"][0]["healthCheckResults"].clone()
        };

        // Check 1 passes first: its result only; the instance is undecided.
        m.set_task_check_health(&id, 1, true);
        let events = m.take_events();
        assert_eq!(events_of(&events, "health_status_changed_event").len(), 1);
        assert!(
            instance_events(&events).is_empty(),
            "{version:?}: undecided"
        );
        assert_eq!(results(&mut m).as_array().unwrap().len(), 1);
        let app = &get_json(&mut m, "/v2/apps/toggle")["app"];
        assert_eq!(
            (app["tasksHealthy"].clone(), app["tasksUnhealthy"].clone()),
            (json!(0), json!(0))
        );

        // Check 0 (set_task_health) passes: both results, in check order; healthy.
        m.set_task_health(&id, true);
        let events = m.take_events();
        let changed = events_of(&events, "health_status_changed_event");
        assert_eq!(changed.len(), 1);
        let id_key = if version >= V1_4 {
            "instanceId"
        } else {
            "taskId"
        };
        assert!(changed[0].get(id_key).is_some(), "{version:?}");
        let healthy = instance_events(&events);
        assert_eq!(healthy.len(), usize::from(version >= V1_4), "{version:?}");
        if let Some(h) = healthy.first() {
            assert_eq!(
                keys(h),
                keys(&fixture("instance_health_changed_event.json"))
            );
            assert_eq!(h["healthy"], true);
        }
        let both = results(&mut m);
        assert_eq!(both.as_array().unwrap().len(), 2, "{version:?}");
        if version <= V1_1 {
            assert_eq!(
                both.as_array().unwrap().len(),
                old_sample["healthCheckResults"].as_array().unwrap().len(),
                "one result per check, as the two-check doc sample"
            );
            for r in both.as_array().unwrap() {
                assert_eq!(keys(r), keys(&old_sample["healthCheckResults"][0]));
            }
        }
        assert!(both
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r[id_key].is_string()));
        assert_eq!(
            get_json(&mut m, "/v2/apps/toggle")["app"]["tasksHealthy"],
            1
        );

        // Check 1 fails: its result says why; the instance turns unhealthy.
        m.advance(1_000);
        m.set_task_check_health(&id, 1, false);
        let events = m.take_events();
        let changed = events_of(&events, "health_status_changed_event");
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0]["alive"], false);
        if let Some(h) = instance_events(&events).first() {
            assert_eq!(h["healthy"], false);
        } else {
            assert!(version < V1_4);
        }
        let both = results(&mut m);
        assert_eq!(both[0]["alive"], true);
        assert_eq!(both[1]["alive"], false);
        assert_eq!(both[1]["consecutiveFailures"], 1);
        assert_eq!(both[1]["lastFailure"], "2026-01-01T00:00:01.000Z");
        assert_eq!(both[1].get("lastFailureCause").is_some(), version >= V1_4);
        if version >= V1_4 {
            assert!(both[1]["lastFailureCause"].is_string());
        }
        let app = &get_json(&mut m, "/v2/apps/toggle")["app"];
        assert_eq!(
            (app["tasksHealthy"].clone(), app["tasksUnhealthy"].clone()),
            (json!(0), json!(1))
        );

        // Repeats change nothing; check 0 alive again while 1 fails: still unhealthy, no event.
        m.set_task_check_health(&id, 1, false);
        m.set_task_check_health(&id, 0, true);
        assert!(m.take_events().is_empty(), "{version:?}");
        assert_eq!(results(&mut m)[1]["consecutiveFailures"], 2);
        // Check 1 recovers: healthy again.
        m.set_task_check_health(&id, 1, true);
        let events = m.take_events();
        assert_eq!(events_of(&events, "health_status_changed_event").len(), 1);
        assert_eq!(
            instance_events(&events)
                .iter()
                .map(|e| e["healthy"].clone())
                .collect::<Vec<_>>(),
            if version >= V1_4 {
                vec![json!(true)]
            } else {
                vec![]
            }
        );
        assert_eq!(m.task(&id).unwrap().healthy, Some(true));
    }
}

#[test]
fn every_definition_change_gives_the_app_a_new_version() {
    type Change = fn(&mut SimMarathon);
    let changes: [(&str, Change); 5] = [
        ("labels", |m| m.put_app("/web", &[("consul", "web")])),
        ("service ports", |m| m.set_app_ports("/web", &[10000])),
        ("port specs", |m| {
            m.set_app_port_specs("/web", vec![port("http", &[("consul", "")], None)])
        }),
        ("network", |m| m.set_app_network("/web", SimNetwork::Bridge)),
        ("health checks", |m| {
            m.set_app_health_checks("/web", vec![SimHealthCheck::default()])
        }),
    ];
    for version in ALL {
        let mut m = SimMarathon::new(version);
        m.put_app("/web", &[]);
        let old = m.start_task("/web", "h1", &[31000]);
        m.take_events();
        for (what, change) in changes {
            let before = m.app("/web").unwrap().version;
            m.advance(1_000);
            change(&mut m);
            let after = m.app("/web").unwrap().version;
            assert!(after > before, "{version:?} {what}");
            let events = m.take_events();
            let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
            assert_eq!(types, ["api_post_event", "group_change_success"], "{what}");
            let definition = &events[0].value()["appDefinition"];
            assert_eq!(definition["version"], iso8601(after).as_str(), "{what}");
            assert_eq!(events[1].value()["version"], iso8601(after).as_str());
            let shown = &get_json(&mut m, "/v2/apps/web")["app"];
            assert_eq!(shown["version"], iso8601(after).as_str());
        }
        // Tasks keep the version they were started with; new ones run the new one.
        let new = m.start_task("/web", "h1", &[31001]);
        let version_now = m.app("/web").unwrap().version;
        assert!(m.task(&old).unwrap().version < version_now);
        assert_eq!(m.task(&new).unwrap().version, version_now);
        let app = m.app("/web").unwrap();
        assert_eq!(app.network, SimNetwork::Bridge);
        assert_eq!(app.health_checks.len(), 1);
        assert_eq!(app.port_specs[0].name.as_deref(), Some("http"));
        assert_eq!(
            app.labels["consul"], "web",
            "put_app keeps the other settings"
        );
    }
}

#[test]
fn port_definitions_written_over_http_keep_their_names_and_labels() {
    let mut m = SimMarathon::new(V1_10);
    let r = m.handle(
        Method::Put,
        "/v2/apps/web",
        br#"{"portDefinitions":[{"port":10000,"name":"http","labels":{"consul":""}},{"port":10001}]}"#,
    );
    assert_eq!(r.status, 201);
    let app = m.app("/web").unwrap();
    assert_eq!(app.service_ports, [10000, 10001]);
    assert_eq!(app.port_specs[0], port("http", &[("consul", "")], None));
    assert_eq!(app.port_specs[1], SimPort::default());
    let bad = m.handle(
        Method::Put,
        "/v2/apps/web",
        br#"{"portDefinitions":[{"port":1,"labels":{"a":1}}]}"#,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json().unwrap()["details"][0]["path"],
        "/portDefinitions"
    );
}
