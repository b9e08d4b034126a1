//! End-to-end test of `--migrate-marathon-consul` against a real Consul 1.8.7 (see `e2e.rs` for the world and
//! how waits are done): the services allegro/marathon-consul left on the agents go, exactly those, and a later
//! sync does not look for them again.
//!
//! Needs the Consul binary: `.ci/fetch-consul` (which `.ci/test` runs) or `CONSUL_BIN`.
//!
//! ```sh
//! CONSUL_BIN=$(.ci/fetch-consul) cargo test -p consular --test migration
//! ```

mod support;

use std::time::Duration;

use consular_sim::MarathonVersion;
use serde_json::{json, Value};
use support::world::{
    assert_stays, register_directly, run_task, Peers, AGENT_2, AGENT_3, OUR_TAG, SERVER,
};

/// A service as marathon-consul 1.x registers task `task` of app `/web` (its `consul/consul.go`): id
/// `<task id>_<name>_<port>`, its `--consul-tag` (default `marathon`), the app's `tag` labels, then
/// `marathon-task:<task id>`, on the agent of the task's host.
fn marathon_consuls(task: &str, name: &str, host: &str, port: u16) -> (String, Value) {
    let id = format!("{task}_{name}_{port}");
    let body = json!({"ID": id, "Name": name, "Address": host, "Port": port,
                      "Tags": ["marathon", "public", format!("marathon-task:{task}")]});
    (id, body)
}

#[test]
fn migrate_marathon_consul_removes_its_services_once_and_nothing_else() {
    let mut live_task = String::new();
    let peers = Peers::start(2, MarathonVersion::V1_4, |m| {
        m.put_app("/web", &[]);
        live_task = run_task(m, "/web", "127.0.0.2", &[31000]);
    });
    // Seeded before the bridge starts, because its first sync runs at once.
    let c = &peers.cluster;
    // marathon-consul's registrations: the live task's (two ports, one named), and a task that ended while it was
    // stopped, on the other agent.
    let leftovers = [
        (
            AGENT_2,
            marathon_consuls(&live_task, "web", "127.0.0.2", 31000),
        ),
        (
            AGENT_2,
            marathon_consuls(&live_task, "web-admin", "127.0.0.2", 31001),
        ),
        (
            AGENT_3,
            marathon_consuls(
                "web.6a95bb03-6ad3-11e6-beaf-080027a7aca0",
                "web",
                "127.0.0.3",
                31002,
            ),
        ),
    ];
    for (agent, (_, body)) in &leftovers {
        register_directly(c, *agent, body.clone());
    }
    // Not marathon-consul's: tagged `marathon` alone, a task tag alone, someone else's, and ours for the running task
    // (as this bridge registers it, so its sync has nothing to change).
    let others = [
        (
            AGENT_3,
            json!({"ID": "legacy", "Name": "legacy", "Port": 8080, "Tags": ["marathon"]}),
        ),
        (
            SERVER,
            json!({"ID": "tasked", "Name": "tasked", "Port": 8081, "Tags": ["marathon-task:web.1"]}),
        ),
        (
            AGENT_2,
            json!({"ID": "redis", "Name": "redis", "Port": 6379, "Tags": ["primary"]}),
        ),
        (
            AGENT_2,
            json!({"ID": live_task, "Name": "web", "Address": "127.0.0.2", "Port": 31000,
                   "Tags": [OUR_TAG, "consular-app-id=/web"]}),
        ),
    ];
    for (agent, body) in &others {
        register_directly(c, *agent, body.clone());
    }

    let world = peers.launch(&[
        "--events",
        "callback",
        "--sync-interval",
        "1",
        "--migrate-marathon-consul",
    ]);
    for (agent, (id, _)) in &leftovers {
        world.wait_deregistered(*agent, id);
    }
    let summary =
        "marathon-consul migration: removing 3 services from 2 agents; every agent was listed";
    assert_eq!(
        world.consular.log_lines_with(summary),
        1,
        "{}",
        world.consular.log_tail(40)
    );
    for agent in ["127.0.0.2", "127.0.0.3"] {
        let line = format!("of its services from {agent}");
        assert_eq!(world.consular.log_lines_with(&line), 1, "{line}");
    }
    let unchanged = |world: &support::world::World| {
        others.iter().all(|(agent, body)| {
            let id = body["ID"].as_str().expect("an id");
            world
                .service(*agent, id)
                .is_some_and(|s| s["Tags"] == body["Tags"] && s["Port"] == body["Port"])
        })
    };
    assert!(
        unchanged(&world),
        "{:#?}",
        [world.services(AGENT_2), world.services(AGENT_3)]
    );

    // Registered after the migration, with marathon-consul's tags: a later sync leaves it, and the migration is
    // never logged again.
    let (late, body) = marathon_consuls("web.late", "web", "127.0.0.3", 31003);
    register_directly(&world.cluster, AGENT_3, body);
    world.wait_two_more_syncs();
    world.wait_two_more_syncs();
    assert_stays(
        "the services that are not leftovers",
        Duration::from_secs(1),
        || unchanged(&world) && world.service(AGENT_3, &late).is_some(),
    );
    assert_eq!(
        world.consular.log_lines_with("marathon-consul migration"),
        3
    );
}
