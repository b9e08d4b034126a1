//! Transcript tests of the scheduled sync: one read of each kind, writes only for differences,
//! purge only of our own dead services and dead apps' KV, only on the nodes that listed theirs,
//! and nothing when Marathon could not be read.

mod support;

use std::time::Duration;

use consular_core::consul::kv_mark;
use consular_core::{Config, Method, Request, Target, TransportError};
use serde_json::json;
use support::transcript::{agent, body_json, Transcript};

const APPS: &str = r#"{"apps":[
  {"id":"/web","labels":{"domain":"web.example"},"tasks":[
     {"id":"web.1","host":"10.0.0.1","ports":[31000],"state":"TASK_RUNNING"},
     {"id":"web.2","host":"10.0.0.2","ports":[31001],"state":"TASK_RUNNING"},
     {"id":"web.3","host":"10.0.0.2","ports":[31002],"state":"TASK_STAGING"}]}]}"#;

fn config(purge: bool) -> Config {
    Config {
        registration_id: "blue".into(),
        sync_interval: Duration::from_secs(30),
        purge,
        ..Config::default()
    }
}

/// One entry of an agent's service listing, as this bridge registers a task of an app without
/// service labels (consular 1.3.0's body).
fn service(id: &str, port: u16, reg: &str, app: &str) -> String {
    format!(
        r#""{id}":{{"ID":"{id}","Service":"{}","Tags":["consular-reg-id={reg}","consular-app-id={app}"],"Port":{port},"Address":"10.0.0.1"}}"#,
        app.trim_start_matches('/')
    )
}

/// The four reads a sync opens with, in order: Marathon's apps, the KV tree, the node list and
/// the nodes' health.
fn opening_reads(t: &mut Transcript) -> [Request; 4] {
    [
        t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks"),
        t.expect(Method::Get, Target::Consul, "/v1/kv/consular/?recurse"),
        t.expect(Method::Get, Target::Consul, "/v1/catalog/nodes"),
        t.expect(Method::Get, Target::Consul, "/v1/health/state/critical"),
    ]
}

/// Answers the opening reads and the agent listings; returns nothing left to read.
fn answer_reads(t: &mut Transcript, apps: &str, kv: &str, agents: &[(&str, String)]) {
    let [apps_req, kv_req, nodes, critical] = opening_reads(t);
    t.respond(&critical, 200, "[]");
    let node_list: Vec<_> = agents
        .iter()
        .map(|(a, _)| json!({"Node": a, "Address": a}))
        .collect();
    t.respond(&nodes, 200, &serde_json::to_string(&node_list).unwrap());
    for (address, services) in agents {
        let list = t.take(Method::Get, agent(address), "/v1/agent/services");
        t.respond(&list, 200, services);
    }
    t.respond(&kv_req, 200, kv);
    t.respond(&apps_req, 200, apps);
}

fn answer_all(t: &mut Transcript, requests: Vec<Request>) {
    for r in requests {
        t.respond(&r, 200, r#"{"Results":[],"Errors":null}"#);
    }
}

#[test]
fn a_cold_sync_registers_running_tasks_writes_labels_and_purges_only_ours() {
    let mut t = Transcript::new(config(true));
    assert!(t.bridge.is_syncing(), "the first sync starts at once");
    let foreign = format!("{{{}}}", service("other.1", 80, "green", "/gone"));
    let ours_dead = format!(
        "{{{},{}}}",
        service("gone.1", 81, "blue", "/gone"),
        service("web.1", 31000, "blue", "/web")
    );
    answer_reads(
        &mut t,
        APPS,
        r#"[{"Key":"consular/gone/x","Value":"Ingi","ModifyIndex":3},{"Key":"elsewhere","Value":null,"ModifyIndex":4}]"#,
        &[("10.0.0.1", ours_dead), ("10.0.0.2", foreign)],
    );
    let register = t.take(Method::Put, agent("10.0.0.2"), "/v1/agent/service/register");
    assert_eq!(body_json(&register)["ID"], "web.2");
    let dereg = t.take(
        Method::Put,
        agent("10.0.0.1"),
        "/v1/agent/service/deregister/gone.1",
    );
    let txn = t.take(Method::Put, Target::Consul, "/v1/txn");
    assert_eq!(
        body_json(&txn),
        json!([{"KV": {"Verb": "cas", "Key": "consular/web/domain", "Value": "IndlYi5leGFtcGxlIg==", "Index": 0, "Flags": kv_mark("blue")}},
               {"KV": {"Verb": "delete-cas", "Key": "consular/gone/x", "Index": 3}}])
    );
    t.expect_no_request();
    answer_all(&mut t, vec![register, dereg, txn]);
    assert!(!t.bridge.is_syncing());
    assert!(
        t.logged("sync done in 0 ms: 2 running tasks; 1 apps"),
        "{:#?}",
        t.logs
    );
    let metrics = t.bridge.metrics();
    assert_eq!(
        (
            metrics.registered(),
            metrics.deregistered(),
            metrics.kv_writes(),
            metrics.syncs_completed()
        ),
        (1, 1, 2, 1)
    );
    assert_eq!(
        t.wake_at,
        Some(Duration::from_secs(30)),
        "the next sync is one interval after the start"
    );
}

#[test]
fn a_warm_sync_writes_nothing() {
    let mut t = Transcript::new(config(true));
    let services = format!("{{{}}}", service("web.1", 31000, "blue", "/web"));
    let web2 = service("web.2", 31001, "blue", "/web")
        .replace(r#""Address":"10.0.0.1""#, r#""Address":"10.0.0.2""#);
    answer_reads(
        &mut t,
        APPS,
        r#"[{"Key":"consular/web/domain","Value":"IndlYi5leGFtcGxlIg==","ModifyIndex":3}]"#,
        &[("10.0.0.1", services), ("10.0.0.2", format!("{{{web2}}}"))],
    );
    t.expect_no_request();
    assert_eq!(t.bridge.metrics().syncs_completed(), 1);
    assert_eq!(
        t.bridge.metrics().kv_writes() + t.bridge.metrics().registered(),
        0
    );
}

#[test]
fn a_failed_marathon_read_writes_and_purges_nothing() {
    let mut t = Transcript::new(config(true));
    let apps = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    t.fail(&apps, TransportError::Connect("refused".into()));
    assert!(t.logged("sync failed, nothing written: cannot list Marathon apps"));
    // The Consul reads of the abandoned round may still answer; they change nothing.
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.respond(
        &kv,
        200,
        r#"[{"Key":"consular/dead/x","Value":null,"ModifyIndex":1}]"#,
    );
    let nodes = t.expect(Method::Get, Target::Consul, "/v1/catalog/nodes");
    t.respond(&nodes, 200, "[]");
    let critical = t.expect(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&critical, 200, "[]");
    t.expect_no_request();
    assert_eq!(t.bridge.metrics().syncs_failed(), 1);
    assert_eq!(t.wake_at, Some(Duration::from_secs(30)));
}

/// A node whose listing fails loses nothing; the nodes that listed are purged as usual (a big
/// cluster nearly always has a node that cannot be listed, and the purge must still run).
#[test]
fn an_unlisted_agent_loses_nothing_and_the_listed_ones_are_purged() {
    let mut t = Transcript::new(config(true));
    let [apps_req, kv, nodes, critical] = opening_reads(&mut t);
    t.respond(&kv, 404, "");
    t.respond(&critical, 200, "[]");
    t.respond(
        &nodes,
        200,
        r#"[{"Node":"a","Address":"10.0.0.1"},{"Node":"b","Address":"10.0.0.2"},{"Node":"c","Address":"10.0.0.9"}]"#,
    );
    let listed = t.take(Method::Get, agent("10.0.0.1"), "/v1/agent/services");
    t.respond(
        &listed,
        200,
        &format!("{{{}}}", service("dead.1", 1, "blue", "/dead")),
    );
    let empty = t.take(Method::Get, agent("10.0.0.2"), "/v1/agent/services");
    t.respond(&empty, 200, "{}");
    let unlisted = t.take(Method::Get, agent("10.0.0.9"), "/v1/agent/services");
    t.fail(&unlisted, TransportError::Timeout);
    t.respond(&apps_req, 200, APPS);
    let mut writes = vec![
        t.take(Method::Put, agent("10.0.0.1"), "/v1/agent/service/register"),
        t.take(Method::Put, agent("10.0.0.2"), "/v1/agent/service/register"),
        t.take(
            Method::Put,
            agent("10.0.0.1"),
            "/v1/agent/service/deregister/dead.1",
        ),
        t.take(Method::Put, Target::Consul, "/v1/txn"),
    ];
    t.expect_no_request();
    writes.reverse();
    answer_all(&mut t, writes);
    assert!(t.logged("services not fully listed"), "{:#?}", t.logs);
    assert_eq!(t.bridge.metrics().syncs_failed(), 1);
}

/// A node the catalog reports as failed is not contacted at all: no listing, no registration,
/// no timeout per sync.
#[test]
fn a_failed_node_is_not_contacted() {
    let mut t = Transcript::new(config(true));
    let [apps_req, kv, nodes, critical] = opening_reads(&mut t);
    t.respond(&kv, 404, "");
    t.respond(
        &nodes,
        200,
        r#"[{"Node":"a","Address":"10.0.0.1"},{"Node":"b","Address":"10.0.0.2"}]"#,
    );
    t.respond(
        &critical,
        200,
        r#"[{"Node":"b","CheckID":"serfHealth","Status":"critical"},{"Node":"a","CheckID":"service:x","Status":"critical"}]"#,
    );
    let listed = t.take(Method::Get, agent("10.0.0.1"), "/v1/agent/services");
    t.respond(&listed, 200, "{}");
    t.respond(&apps_req, 200, APPS);
    let writes = vec![
        t.take(Method::Put, agent("10.0.0.1"), "/v1/agent/service/register"),
        t.take(Method::Put, Target::Consul, "/v1/txn"),
    ];
    t.expect_no_request();
    answer_all(&mut t, writes);
    assert!(
        t.logged("1 failed nodes not contacted and not purged: b"),
        "{:#?}",
        t.logs
    );
    assert!(t.logged("1 tasks not registered: their host is a failed node"));
}

#[test]
fn an_old_marathon_without_embedded_tasks_is_asked_per_app() {
    let mut t = Transcript::new(config(false));
    let apps_req = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.respond(&kv, 404, "");
    let nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    t.respond(&nodes, 200, r#"[{"Node":"h","Address":"h"}]"#);
    let critical = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&critical, 200, "[]");
    let listing = t.take(Method::Get, agent("h"), "/v1/agent/services");
    t.respond(&listing, 200, "{}");
    t.respond(
        &apps_req,
        200,
        r#"{"apps":[{"id":"/a","labels":{}},{"id":"/g/b"}]}"#,
    );
    let a = t.expect(Method::Get, Target::Marathon, "/v2/apps/a/tasks");
    let b = t.expect(Method::Get, Target::Marathon, "/v2/apps/g/b/tasks");
    // Marathon 0.15 answers 404 for an app without tasks; tasks there carry no `state`.
    t.respond(&a, 404, r#"{"message":"App '/a' does not exist"}"#);
    t.respond(
        &b,
        200,
        r#"{"tasks":[{"id":"b.1","host":"h","ports":[5],"startedAt":"2015-01-01T00:00:00.000Z"},{"id":"b.2","host":"h","ports":[6],"startedAt":null}]}"#,
    );
    let register = t.take(Method::Put, agent("h"), "/v1/agent/service/register");
    assert_eq!(
        body_json(&register)["ID"],
        "b.1",
        "a started task without `state` runs; a staging one does not"
    );
    t.expect_no_request();
}

#[test]
fn clashing_apps_are_skipped_and_the_rest_synced() {
    let mut t = Transcript::new(config(true));
    let apps = r#"{"apps":[
      {"id":"/a/b","tasks":[{"id":"ab.1","host":"h","ports":[1],"state":"TASK_RUNNING"}]},
      {"id":"/a-b","tasks":[{"id":"a-b.1","host":"h","ports":[2],"state":"TASK_RUNNING"}]},
      {"id":"/c","tasks":[{"id":"c.1","host":"h","ports":[3],"state":"TASK_RUNNING"}]}]}"#;
    let ours = format!("{{{}}}", service("ab.1", 1, "blue", "/a/b"));
    answer_reads(&mut t, apps, "[]", &[("h", ours)]);
    let register = t.take(Method::Put, agent("h"), "/v1/agent/service/register");
    assert_eq!(body_json(&register)["ID"], "c.1");
    t.expect_no_request();
    assert!(t.logged("skipping apps whose Consul service name clashes: a-b => /a/b, /a-b"));
}

#[test]
fn an_event_during_a_sync_is_not_undone_by_its_older_snapshot() {
    let mut t = Transcript::new(config(true));
    let apps_req = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    // web.1 is killed after the sync asked Marathon, and Marathon's answer still lists it.
    let kill = t.event(&support::transcript::status_event(
        "TASK_KILLED",
        "web.1",
        "/web",
        "10.0.0.1",
        "[]",
    ));
    let nodes = r#"[{"Node":"a","Address":"10.0.0.1"},{"Node":"b","Address":"10.0.0.2"}]"#;
    // The sync's node listing, then the event's own membership read.
    let sync_nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    let event_nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    t.respond(&event_nodes, 200, nodes);
    t.ours("10.0.0.1", "web.1");
    let dereg = t.take(
        Method::Put,
        agent("10.0.0.1"),
        "/v1/agent/service/deregister/web.1",
    );
    t.respond(&dereg, 200, "");
    assert_eq!(t.reply(kill).0, 200);
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.respond(&kv, 200, "[]");
    t.respond(&sync_nodes, 200, nodes);
    let critical = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&critical, 200, "[]");
    for address in ["10.0.0.1", "10.0.0.2"] {
        let listing = t.take(Method::Get, agent(address), "/v1/agent/services");
        t.respond(&listing, 200, "{}");
    }
    t.respond(&apps_req, 200, APPS);
    let register = t.take(Method::Put, agent("10.0.0.2"), "/v1/agent/service/register");
    assert_eq!(body_json(&register)["ID"], "web.2");
    t.take(Method::Put, Target::Consul, "/v1/txn");
    t.expect_no_request();
}

#[test]
fn syncs_never_overlap_and_missed_ticks_are_skipped() {
    let mut t = Transcript::new(config(false));
    let apps = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    t.advance_to(Duration::from_secs(95));
    t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.expect_no_request();
    t.fail(&apps, TransportError::Io("reset".into()));
    assert_eq!(
        t.wake_at,
        Some(Duration::from_secs(120)),
        "ticks at 30, 60 and 90 s were missed"
    );
    t.advance_to(Duration::from_secs(120));
    t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
}

#[test]
fn no_sync_interval_means_no_sync() {
    let t = Transcript::new(Config::default());
    assert!(!t.bridge.is_syncing());
    assert_eq!(t.wake_at, None);
    assert_eq!(t.pending_requests(), 0);
}
