//! Transcript tests of external nodes: `--fallback-mode catalog` registers a task whose host is
//! not a member in the catalog, on a node named after the host; a stop deregisters it there;
//! `--agentless` does it for a member's task too; and a sync reads an external node through the
//! catalog, never at its address, and removes a node of ours left empty.

mod support;

use consular_core::{Config, FallbackMode, Method, Placement, Target};
use serde_json::json;
use support::transcript::{body_json, Transcript};

fn config(fallback_mode: FallbackMode, placement: Placement) -> Config {
    Config {
        registration_id: "test".into(),
        fallback: true,
        fallback_mode,
        placement,
        ..Config::default()
    }
}

fn running(task: &str, host: &str) -> String {
    json!({"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "taskId": task,
           "appId": "/web", "host": host, "ports": [31000], "version": "v1"})
    .to_string()
}

/// Answers the label phase of a first task of `/web`.
fn labels(t: &mut Transcript) {
    let app = t.expect(Method::Get, Target::Marathon, "/v2/apps/web");
    t.respond(&app, 200, r#"{"app":{"id":"/web","version":"v1"}}"#);
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/web/?recurse");
    t.respond(&kv, 404, "");
}

#[test]
fn a_strangers_task_goes_to_an_external_node_and_its_stop_takes_it_off() {
    let mut t = Transcript::new(config(FallbackMode::Catalog, Placement::OnAgents));
    let id = t.event(&running("web.1", "H9"));
    t.members(&["h1"]);
    let register = t.expect(Method::Put, Target::Consul, "/v1/catalog/register");
    let body = body_json(&register);
    assert_eq!(body["Node"], "h9");
    assert_eq!(body["Address"], "H9");
    assert_eq!(
        body["NodeMeta"],
        json!({"external-node": "true", "external-probe": "true", "consular-registration-id": "test"})
    );
    assert_eq!(body["Service"]["ID"], "web.1");
    assert_eq!(body["Service"]["Port"], 31000);
    t.respond(&register, 200, "true");
    labels(&mut t);
    assert_eq!(t.reply(id).0, 200);
    assert!(t.logged("registered web.1 (web) on external node h9"));

    let stop = json!({"eventType": "status_update_event", "taskStatus": "TASK_KILLED",
                      "taskId": "web.1", "host": "H9"});
    let id = t.event(&stop.to_string());
    let list = t.expect(Method::Get, Target::Consul, "/v1/catalog/node-services/h9");
    let ours = json!({"Node": {"Node": "h9", "Meta": {"external-node": "true"}},
        "Services": [
            {"ID": "web.1", "Service": "web", "Tags": ["consular-reg-id=test", "consular-app-id=/web"]},
            {"ID": "web.1:0", "Service": "other", "Tags": []}]});
    t.respond(&list, 200, &ours.to_string());
    let gone = t.expect(Method::Put, Target::Consul, "/v1/catalog/deregister");
    assert_eq!(
        body_json(&gone),
        json!({"Node": "h9", "ServiceID": "web.1"})
    );
    t.respond(&gone, 200, "true");
    assert_eq!(t.reply(id).0, 200);
    assert!(t.logged("not deregistering web.1:0"));
    t.expect_no_request();
}

#[test]
fn agentless_puts_a_members_task_on_an_external_node_too() {
    let mut t = Transcript::new(config(FallbackMode::Agent, Placement::Agentless));
    let id = t.event(&running("web.1", "h1"));
    t.members(&["h1"]);
    let register = t.expect(Method::Put, Target::Consul, "/v1/catalog/register");
    assert_eq!(body_json(&register)["Node"], "h1");
    t.respond(&register, 200, "true");
    labels(&mut t);
    assert_eq!(t.reply(id).0, 200);
}

#[test]
fn a_sync_reads_external_nodes_through_the_catalog_and_removes_ours_left_empty() {
    let mut t = Transcript::new(Config {
        sync_interval: std::time::Duration::from_secs(60),
        purge: true,
        ..config(FallbackMode::Catalog, Placement::OnAgents)
    });
    let apps = t.take(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    t.respond(&apps, 200, r#"{"apps":[{"id":"/web","tasks":[]}]}"#);
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.respond(&kv, 404, "");
    let nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    let listing = json!([
        {"Node": "h1", "Address": "h1"},
        {"Node": "h9", "Address": "10.9.9.9", "Meta": {"external-node": "true"}},
        {"Node": "esm-node", "Address": "10.9.9.8", "Meta": {"external-node": "true"}}]);
    t.respond(&nodes, 200, &listing.to_string());
    let health = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&health, 200, "[]");
    let agent = t.take(
        Method::Get,
        Target::Agent("h1".into()),
        "/v1/agent/services",
    );
    t.respond(&agent, 200, "{}");
    let h9 = t.take(Method::Get, Target::Consul, "/v1/catalog/node-services/h9");
    let dead = json!({"Node": {"Node": "h9", "Meta": {"external-node": "true", "consular-registration-id": "test"}},
        "Services": [{"ID": "web.7", "Service": "web", "Tags": ["consular-reg-id=test", "consular-app-id=/web"]}]});
    t.respond(&h9, 200, &dead.to_string());
    // Another tool's external node: read, never removed.
    let esm = t.take(
        Method::Get,
        Target::Consul,
        "/v1/catalog/node-services/esm-node",
    );
    let theirs =
        json!({"Node": {"Node": "esm-node", "Meta": {"external-node": "true"}}, "Services": []});
    t.respond(&esm, 200, &theirs.to_string());
    let mut bodies: Vec<serde_json::Value> = (0..2)
        .map(|_| {
            let r = t.take(Method::Put, Target::Consul, "/v1/catalog/deregister");
            let body = body_json(&r);
            t.respond(&r, 200, "true");
            body
        })
        .collect();
    bodies.sort_by_key(|b| b.to_string());
    assert_eq!(
        bodies,
        [
            json!({"Node": "h9", "ServiceID": "web.7"}),
            json!({"Node": "h9"})
        ]
    );
    t.expect_no_request();
}

#[test]
fn a_check_an_external_service_no_longer_has_goes_through_the_catalog() {
    let mut t = Transcript::new(Config {
        sync_interval: std::time::Duration::from_secs(60),
        health_checks: consular_core::HealthChecks::Agent,
        ..config(FallbackMode::Catalog, Placement::OnAgents)
    });
    // The app lost its health check; its task on external node h9 is as desired otherwise.
    let apps = t.take(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    let running = json!({"apps": [{"id": "/web", "tasks": [{"id": "web.1", "host": "h9",
        "ports": [31000], "state": "TASK_RUNNING"}]}]});
    t.respond(&apps, 200, &running.to_string());
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.respond(&kv, 404, "");
    let nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    let listing = json!([{"Node": "h9", "Address": "h9", "Meta": {"external-node": "true"}}]);
    t.respond(&nodes, 200, &listing.to_string());
    let health = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&health, 200, "[]");
    let services = t.take(Method::Get, Target::Consul, "/v1/catalog/node-services/h9");
    let ours = json!({"Node": {"Node": "h9", "Meta": {"external-node": "true", "consular-registration-id": "test"}},
        "Services": [{"ID": "web.1", "Service": "web", "Address": "h9", "Port": 31000,
                      "Tags": ["consular-reg-id=test", "consular-app-id=/web"]}]});
    t.respond(&services, 200, &ours.to_string());
    let checks = t.take(Method::Get, Target::Consul, "/v1/health/node/h9");
    let stale = json!([{"Node": "h9", "CheckID": "consular:web.1:1", "ServiceID": "web.1",
        "Name": "Marathon health check 1 (TCP)", "Notes": "x", "Status": "passing"}]);
    t.respond(&checks, 200, &stale.to_string());
    let removal = t.take(Method::Put, Target::Consul, "/v1/catalog/deregister");
    assert_eq!(
        body_json(&removal),
        json!({"Node": "h9", "CheckID": "consular:web.1:1"})
    );
    t.respond(&removal, 200, "true");
    t.expect_no_request();
}
