//! End-to-end tests of external nodes against a real Consul 1.8.7 cluster and the Marathon
//! simulator: `--fallback-mode catalog` puts a task whose host has no agent on a catalog node
//! named after the host, with the node meta and check definitions consul-esm expects; a stop
//! removes its service, and the purge the node; a warm sync writes nothing. `--agentless` does
//! it for every task, agent or not.

mod support;

use consular_sim::{MarathonVersion, SimHealthCheck};
use serde_json::Value;
use support::consul::{get, wait_until};
use support::world::{run_task, World, AGENT_2, DEADLINE};

/// `GET /v1/catalog/node-services/<node>`, or `None` when the node does not exist (Consul 1.8.7
/// answers `{"Node": null, "Services": null}`).
fn node_services(world: &World, node: &str) -> Option<Value> {
    let path = format!("/v1/catalog/node-services/{node}");
    let (status, body) = get(world.cluster.agent_addr(0), &path).expect("reading the catalog");
    assert_eq!(status, 200, "{path}: {body}");
    let value: Value = serde_json::from_str(&body).expect("JSON");
    (!value["Node"].is_null()).then_some(value)
}

fn node_checks(world: &World, node: &str) -> Value {
    support::consul::get_json(
        world.cluster.agent_addr(0),
        &format!("/v1/health/node/{node}"),
    )
}

fn tcp_check() -> SimHealthCheck {
    SimHealthCheck {
        protocol: "TCP".into(),
        path: None,
        port_index: Some(0),
        interval_seconds: 10,
        timeout_seconds: 3,
        ..SimHealthCheck::default()
    }
}

#[test]
fn catalog_fallback_puts_an_agentless_hosts_task_on_an_external_node_and_takes_it_off() {
    // 127.0.0.9 runs no agent.
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| {
            m.put_app("/web", &[]);
            m.set_app_health_checks("/web", vec![tcp_check()]);
        },
        &[
            "--events",
            "sse",
            "--fallback-mode",
            "catalog",
            "--health-checks",
            "agent",
            "--sync-interval",
            "1",
            "--purge",
        ],
    );
    let task = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.9", &[31000]));
    let mut listing = None;
    wait_until("the task on external node 127.0.0.9", DEADLINE, || {
        listing = node_services(&world, "127.0.0.9");
        listing.as_ref().is_some_and(|l| {
            l["Services"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["ID"] == task.as_str()))
        })
    });
    let listing = listing.expect("just seen");
    assert_eq!(listing["Node"]["Meta"]["external-node"], "true");
    assert_eq!(listing["Node"]["Meta"]["external-probe"], "true");
    assert_eq!(
        listing["Node"]["Meta"]["consular-registration-id"],
        "consular"
    );
    assert_eq!(listing["Node"]["Address"], "127.0.0.9");
    // The first registration of a task of an app not read yet is 1.3.0's, without checks; the
    // app read adds them.
    let mut check = None;
    wait_until("the task's check on its external node", DEADLINE, || {
        let checks = node_checks(&world, "127.0.0.9");
        check = checks
            .as_array()
            .and_then(|c| c.iter().find(|c| c["ServiceID"] == task.as_str()))
            .cloned();
        check.is_some()
    });
    let check = check.expect("just seen");
    assert_eq!(check["Definition"]["TCP"], "127.0.0.9:31000", "{check}");
    assert_eq!(check["Definition"]["Interval"], "10s");
    // No agent was contacted for it, and none holds it.
    assert!(world.service(0, &task).is_none());

    // Warm syncs write nothing. The task was registered once or twice by now: by the sync, with
    // its check, or first from its event in 1.3.0's shape and then corrected by the next sync (an
    // app read corrects only registrations on agents).
    let registered = world.consular.log_lines_with(&format!("registered {task}"));
    assert!((1..=2).contains(&registered), "{registered} registrations");
    world.wait_two_more_syncs();
    assert_eq!(
        world.consular.log_lines_with(&format!("registered {task}")),
        registered
    );

    // A stop takes the service off; the purge then finds the node empty and removes it.
    world
        .marathon
        .with(|m| m.set_task_state(&task, "TASK_KILLED"));
    wait_until("the external node removed", DEADLINE, || {
        node_services(&world, "127.0.0.9").is_none()
    });
    assert!(
        world
            .consular
            .log_lines_with(&format!("deregistered {task}"))
            >= 1
    );
}

#[test]
fn agentless_puts_every_task_on_an_external_node_even_where_an_agent_runs() {
    let world = World::start(
        2,
        MarathonVersion::V1_10,
        |m| m.put_app("/web", &[]),
        &[
            "--events",
            "sse",
            "--agentless",
            "--sync-interval",
            "1",
            "--purge",
        ],
    );
    let task = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000]));
    wait_until("the task on external node 127.0.0.2", DEADLINE, || {
        node_services(&world, "127.0.0.2").is_some_and(|l| {
            l["Services"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["ID"] == task.as_str()))
        })
    });
    assert!(
        world.service(AGENT_2, &task).is_none(),
        "not on the agent of its host"
    );
    world.wait_two_more_syncs();
    assert_eq!(
        world.consular.log_lines_with(&format!("registered {task}")),
        1
    );
    world
        .marathon
        .with(|m| m.set_task_state(&task, "TASK_FINISHED"));
    wait_until("the external node removed", DEADLINE, || {
        node_services(&world, "127.0.0.2").is_none()
    });
}
