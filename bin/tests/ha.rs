//! End-to-end tests of `--ha` against a real Consul 1.8.7 cluster and the Marathon simulator:
//! three instances, exactly one leader (the holder of the lock key, the only one with Marathon's
//! event stream open, the only one that registers); standbys answer callbacks `standby`; SIGTERM
//! of the leader hands over within 2 s, SIGKILL within twice the TTL plus the lock delay plus
//! 2 s, and a change made in Marathon while nobody leads is in Consul once someone does.

mod support;

use std::time::{Duration, Instant};

use consular_sim::MarathonVersion;
use serde_json::Value;
use support::bridge::Consular;
use support::consul::wait_until;
use support::world::{run_task, Peers, AGENT_2, DEADLINE};

const KEY: &str = "service/consular/consular/leader";
const TTL_SECONDS: u64 = 10;

/// The `--instance-id` in the lock key's value, if a session holds it.
fn holder(peers: &Peers) -> Option<String> {
    let path = format!("/v1/kv/{KEY}");
    let (status, body) = support::consul::get(peers.cluster.agent_addr(0), &path).ok()?;
    if status != 200 {
        return None;
    }
    let entries: Value = serde_json::from_str(&body).ok()?;
    entries.get(0)?.get("Session").and_then(Value::as_str)?;
    let value: Value = serde_json::from_slice(&peers.cluster.kv_get_raw(KEY)?).ok()?;
    value["instance"].as_str().map(String::from)
}

/// The instance ids whose status key exists, with the role each says.
fn statuses(peers: &Peers) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = peers
        .cluster
        .kv_keys("service/consular/consular/instances/")
        .iter()
        .filter_map(|key| {
            let value: Value = serde_json::from_slice(&peers.cluster.kv_get_raw(key)?).ok()?;
            Some((
                value["instance"].as_str()?.to_string(),
                value["role"].as_str()?.to_string(),
            ))
        })
        .collect();
    found.sort();
    found
}

fn instance_id(c: &Consular) -> String {
    format!("127.0.0.1:{}", c.addr().port())
}

/// Waits until exactly one of `instances` holds the key; returns its index.
fn wait_leader(peers: &Peers, instances: &[Option<Consular>], within: Duration) -> usize {
    let mut found = None;
    wait_until("one leader", within, || {
        let held = holder(peers);
        found = instances
            .iter()
            .position(|c| held.is_some() && c.as_ref().map(instance_id) == held);
        found.is_some()
    });
    found.expect("just seen")
}

#[test]
fn three_instances_one_leader_and_handovers_on_sigterm_and_sigkill() {
    let peers = Peers::start(1, MarathonVersion::V1_10, |m| {
        m.put_app("/web", &[("a", "1")])
    });
    let ttl = TTL_SECONDS.to_string();
    let flags = [
        "--events",
        "sse",
        "--accept-callbacks",
        "--ha",
        "--ha-ttl",
        &ttl,
    ];
    let (marathon, consul) = (peers.marathon.url(), peers.cluster.server_url());
    let mut instances: Vec<Option<Consular>> = (0..3)
        .map(|_| Some(Consular::start(&marathon, &consul, &flags)))
        .collect();
    let leader = wait_leader(&peers, &instances, DEADLINE);
    // Only the leader reads Marathon's events.
    wait_until("the leader's stream", DEADLINE, || {
        peers.marathon.open_streams() == 1
    });
    let task = peers
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000]));
    wait_until("the task registered", DEADLINE, || {
        support::consul::agent_services(peers.cluster.agent_addr(AGENT_2))
            .get(&task)
            .is_some()
    });
    let registered_by: Vec<usize> = instances
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.as_ref()
                .is_some_and(|c| c.log_lines_with(&format!("registered {task}")) > 0)
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        registered_by,
        [leader],
        "the event was handled once, by the leader"
    );
    let standby = (leader + 1) % 3;
    let posted = instances[standby]
        .as_ref()
        .expect("running")
        .post_event(br#"{"eventType":"status_update_event","taskStatus":"TASK_KILLED","taskId":"x.1","host":"h"}"#);
    assert_eq!(posted, (200, r#"{"status": "standby"}"#.to_string()));
    // Every instance says who it is in a status key, and registers itself as service `consular`
    // with a check on its `/` that passes.
    let mut expected: Vec<(String, String)> = instances
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let role = if i == leader { "leader" } else { "standby" };
            (instance_id(c.as_ref().expect("running")), role.to_string())
        })
        .collect();
    expected.sort();
    wait_until("three status keys", DEADLINE, || {
        statuses(&peers) == expected
    });
    wait_until("three passing consular services", DEADLINE, || {
        let passing = support::consul::get_json(
            peers.cluster.agent_addr(0),
            "/v1/health/service/consular?passing",
        );
        passing.as_array().is_some_and(|a| a.len() == 3)
    });

    // SIGTERM: the leader releases the key and a standby takes it at once.
    let mut old = instances[leader].take().expect("running");
    let sigterm = Instant::now();
    old.terminate(DEADLINE);
    let next = wait_leader(&peers, &instances, DEADLINE);
    let sigterm_handover = sigterm.elapsed();
    assert_ne!(next, leader);
    assert!(old.log_lines_with("standing down as leader: shutting down") > 0);
    assert!(
        sigterm_handover < Duration::from_secs(2),
        "SIGTERM handover took {sigterm_handover:?}"
    );
    eprintln!("SIGTERM handover: {sigterm_handover:?}");

    // SIGKILL: nobody releases anything; Consul ends the session within twice its TTL, then the
    // lock delay passes. Meanwhile Marathon changes, and the next leader's first sync sees it.
    let mut killed = instances[next].take().expect("running");
    let sigkill = Instant::now();
    killed.kill();
    let late = peers
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31001]));
    let bound = Duration::from_secs(2 * TTL_SECONDS + 1 + 2);
    let last = wait_leader(&peers, &instances, bound + Duration::from_secs(5));
    let sigkill_handover = sigkill.elapsed();
    assert!(
        sigkill_handover < bound,
        "SIGKILL handover took {sigkill_handover:?}"
    );
    eprintln!("SIGKILL handover: {sigkill_handover:?}");
    assert!(![leader, next].contains(&last));
    // The dead instances' status keys went with their sessions; the last one's says it leads.
    let last_id = instance_id(instances[last].as_ref().expect("running"));
    wait_until("one status key, the leader's", DEADLINE, || {
        statuses(&peers) == [(last_id.clone(), "leader".to_string())]
    });
    wait_until("the task started during the handover", DEADLINE, || {
        support::consul::agent_services(peers.cluster.agent_addr(AGENT_2))
            .get(&late)
            .is_some()
    });
}
