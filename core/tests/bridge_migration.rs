//! Transcript tests of `--migrate-marathon-consul`: syncs remove the services marathon-consul
//! registered (its `marathon` and `marathon-task:` tags) from the agents that list them, until one
//! sync has listed every agent, and never anything else. Which services count is unit-tested in
//! `plan/migration.rs`; this is about when, and on which agent.

mod support;

use std::time::Duration;

use consular_core::{Config, MarathonConsulLeftovers, Method, Request, Target, TransportError};
use serde_json::json;
use support::transcript::{agent, Transcript};

const APPS: &str = r#"{"apps":[{"id":"/web","tasks":[
     {"id":"web.1","host":"10.0.0.1","ports":[31000],"state":"TASK_RUNNING"},
     {"id":"web.2","host":"10.0.0.2","ports":[31001],"state":"TASK_RUNNING"}]}]}"#;

fn config(leftovers: MarathonConsulLeftovers) -> Config {
    Config {
        registration_id: "blue".into(),
        sync_interval: Duration::from_secs(30),
        marathon_consul: leftovers,
        ..Config::default()
    }
}

/// `(id, service)` of our registration of `task` on `host` (warm: the sync leaves it alone).
fn ours(task: &str, host: &str, port: u16) -> (String, serde_json::Value) {
    let service = json!({"ID": task, "Service": "web", "Address": host, "Port": port,
                         "Tags": ["consular-reg-id=blue", "consular-app-id=/web"]});
    (task.into(), service)
}

/// `(id, service)` as marathon-consul registers task `task` of app `/web` on port `port`.
fn marathon_consuls(task: &str, port: u16) -> (String, serde_json::Value) {
    let id = format!("{task}_web_{port}");
    let tags = json!(["marathon", "public", format!("marathon-task:{task}")]);
    let service =
        json!({"ID": id, "Service": "web", "Address": "10.0.0.1", "Port": port, "Tags": tags});
    (id, service)
}

/// `(id, service)` of a service someone else registered with `tags`.
fn foreign(id: &str, tags: &[&str]) -> (String, serde_json::Value) {
    (
        id.into(),
        json!({"ID": id, "Service": id, "Port": 6379, "Tags": tags}),
    )
}

fn listing(services: &[(String, serde_json::Value)]) -> String {
    let map: serde_json::Map<_, _> = services.iter().cloned().collect();
    serde_json::Value::Object(map).to_string()
}

/// Answers a sync's reads: Marathon's apps, an empty KV tree, the node list of `agents`, no
/// failed nodes, and each agent's listing (`None`: it times out).
fn answer_reads(t: &mut Transcript, agents: &[(&str, Option<String>)]) {
    let apps = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    let nodes = t.expect(Method::Get, Target::Consul, "/v1/catalog/nodes");
    let critical = t.expect(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&critical, 200, "[]");
    let node_list: Vec<_> = agents
        .iter()
        .map(|(a, _)| json!({"Node": a, "Address": a}))
        .collect();
    t.respond(&nodes, 200, &json!(node_list).to_string());
    for (address, services) in agents {
        let list = t.take(Method::Get, agent(address), "/v1/agent/services");
        match services {
            Some(services) => t.respond(&list, 200, services),
            None => t.fail(&list, TransportError::Timeout),
        }
    }
    t.respond(&kv, 404, "");
    t.respond(&apps, 200, APPS);
}

fn deregistration(t: &mut Transcript, host: &str, id: &str) -> Request {
    let path = format!("/v1/agent/service/deregister/{id}");
    t.take(Method::Put, agent(host), &path)
}

/// The two agents as a migration finds them: each with our service of its running task,
/// marathon-consul's registration of the same task, and services that are not marathon-consul's.
fn both_agents() -> [(&'static str, Option<String>); 2] {
    let first = listing(&[
        ours("web.1", "10.0.0.1", 31000),
        marathon_consuls("web.1", 31000),
        foreign("legacy", &["marathon"]),
        foreign("redis", &["primary"]),
    ]);
    let second = listing(&[
        ours("web.2", "10.0.0.2", 31001),
        marathon_consuls("web.2", 31001),
        marathon_consuls("web.0", 31005),
        foreign("..", &["marathon", "marathon-task:web.0"]),
    ]);
    [("10.0.0.1", Some(first)), ("10.0.0.2", Some(second))]
}

#[test]
fn the_first_sync_removes_marathon_consuls_services_and_a_later_one_does_not() {
    let mut t = Transcript::new(config(MarathonConsulLeftovers::RemoveOnce));
    answer_reads(&mut t, &both_agents());
    let writes = [
        deregistration(&mut t, "10.0.0.1", "web.1_web_31000"),
        deregistration(&mut t, "10.0.0.2", "web.2_web_31001"),
        deregistration(&mut t, "10.0.0.2", "web.0_web_31005"),
    ];
    t.expect_no_request();
    for w in &writes {
        t.respond(w, 200, "");
    }
    assert!(!t.bridge.is_syncing());
    for line in [
        "marathon-consul migration: removing 1 of its services from 10.0.0.1",
        "marathon-consul migration: removing 2 of its services from 10.0.0.2",
        "marathon-consul migration: removing 3 services from 2 agents; 1 with its tags but an id \
         it never makes left alone; every agent was listed, later syncs leave its tags alone",
        "deregistered web.0_web_31005 from 10.0.0.2",
    ] {
        assert!(t.logged(line), "{line}: {:#?}", t.logs);
    }
    let metrics = t.bridge.metrics();
    assert_eq!((metrics.deregistered(), metrics.syncs_completed()), (3, 1));

    // marathon-consul's services registered after the migration are someone's choice: the next
    // sync leaves them, and says nothing about the migration.
    t.advance_to(Duration::from_secs(30));
    let lines = t.logs.len();
    answer_reads(&mut t, &both_agents());
    t.expect_no_request();
    assert!(!t.bridge.is_syncing());
    assert_eq!(t.bridge.metrics().deregistered(), 3);
    assert!(
        !t.logs[lines..]
            .iter()
            .any(|l| l.message.contains("marathon-consul")),
        "{:#?}",
        &t.logs[lines..]
    );
}

#[test]
fn an_agent_not_listed_is_swept_by_the_next_sync_that_lists_it() {
    let mut t = Transcript::new(config(MarathonConsulLeftovers::RemoveOnce));
    let [first, second] = both_agents();
    answer_reads(&mut t, &[first.clone(), ("10.0.0.2", None)]);
    let removed = deregistration(&mut t, "10.0.0.1", "web.1_web_31000");
    // What was not listed is registered as usual.
    let register = t.take(Method::Put, agent("10.0.0.2"), "/v1/agent/service/register");
    t.expect_no_request();
    t.respond(&removed, 200, "");
    t.respond(&register, 200, "");
    assert!(
        t.logged("removing 1 services from 1 agents; not every agent was listed, the next sync looks again"),
        "{:#?}",
        t.logs
    );

    // A sync that cannot read Marathon writes nothing, leftovers included, and ends nothing.
    t.advance_to(Duration::from_secs(30));
    let apps = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    t.fail(&apps, TransportError::Connect("refused".into()));
    for path in [
        "/v1/kv/consular/?recurse",
        "/v1/catalog/nodes",
        "/v1/health/state/critical",
    ] {
        let read = t.expect(Method::Get, Target::Consul, path);
        t.respond(&read, 200, "[]");
    }
    t.expect_no_request();

    // The first agent was swept already, but the sweep is one process-wide pass: until a sync
    // has listed every agent, each looks at every agent it lists.
    t.advance_to(Duration::from_secs(60));
    answer_reads(&mut t, &[first.clone(), second.clone()]);
    let writes = [
        deregistration(&mut t, "10.0.0.1", "web.1_web_31000"),
        deregistration(&mut t, "10.0.0.2", "web.2_web_31001"),
        deregistration(&mut t, "10.0.0.2", "web.0_web_31005"),
    ];
    t.expect_no_request();
    for w in &writes {
        t.respond(w, 404, "");
    }
    assert_eq!(t.bridge.metrics().deregistered(), 4, "404 is already gone");

    t.advance_to(Duration::from_secs(90));
    answer_reads(&mut t, &[first, second]);
    t.expect_no_request();
}

#[test]
fn without_the_flag_marathon_consuls_services_stay_with_or_without_purge() {
    for purge in [false, true] {
        let mut t = Transcript::new(Config {
            purge,
            ..config(MarathonConsulLeftovers::Keep)
        });
        answer_reads(&mut t, &both_agents());
        t.expect_no_request();
        assert_eq!(t.bridge.metrics().syncs_completed(), 1);
        assert!(!t.logged("marathon-consul"), "{:#?}", t.logs);
    }
}

#[test]
fn the_migration_runs_with_purge_beside_it() {
    let mut t = Transcript::new(Config {
        purge: true,
        ..config(MarathonConsulLeftovers::RemoveOnce)
    });
    let [(first, Some(services)), second] = both_agents() else {
        unreachable!()
    };
    // Our service of a task that no longer runs goes by the purge, marathon-consul's by the
    // migration; the foreign ones stay.
    let dead = ours("web.9", "10.0.0.1", 31009);
    let mut with_dead: serde_json::Value = serde_json::from_str(&services).unwrap();
    with_dead[&dead.0] = dead.1;
    answer_reads(&mut t, &[(first, Some(with_dead.to_string())), second]);
    let writes = [
        deregistration(&mut t, "10.0.0.1", "web.9"),
        deregistration(&mut t, "10.0.0.1", "web.1_web_31000"),
        deregistration(&mut t, "10.0.0.2", "web.2_web_31001"),
        deregistration(&mut t, "10.0.0.2", "web.0_web_31005"),
    ];
    t.expect_no_request();
    for w in &writes {
        t.respond(w, 200, "");
    }
    assert_eq!(t.bridge.metrics().deregistered(), 4);
}
