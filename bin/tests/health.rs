//! End-to-end tests of Marathon's health in Consul, against a real Consul 1.8.7 cluster and the
//! Marathon simulator over HTTP: `--health-checks mirror` follows health events both ways and
//! `?passing` shows only the healthy tasks; `--health-checks agent` puts Marathon's HTTP and TCP
//! checks on the task's agent, where they pass against a real listener; `--register-when-healthy`
//! registers a task only while Marathon finds it healthy.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use consular_sim::{MarathonVersion, SimHealthCheck, SimMarathon};
use serde_json::Value;
use support::consul::{self, wait_until};
use support::world::{run_task, World, AGENT_2, AGENT_3, DEADLINE};

fn http_check(path: &str, interval_seconds: u32) -> SimHealthCheck {
    SimHealthCheck {
        protocol: "HTTP".into(),
        path: Some(path.into()),
        port_index: Some(0),
        port: None,
        interval_seconds,
        timeout_seconds: 1,
        grace_period_seconds: 0,
        max_consecutive_failures: 3,
        command: None,
    }
}

fn web_app(m: &mut SimMarathon, checks: Vec<SimHealthCheck>) {
    m.put_app("/web", &[]);
    m.set_app_health_checks("/web", checks);
}

/// Agent `agent`'s checks (`/v1/agent/checks`), keyed by check id.
fn checks(world: &World, agent: usize) -> Value {
    consul::get_json(world.cluster.agent_addr(agent), "/v1/agent/checks")
}

fn check_status(world: &World, agent: usize, id: &str) -> Option<String> {
    checks(world, agent)[id]["Status"]
        .as_str()
        .map(String::from)
}

fn wait_status(world: &World, agent: usize, id: &str, status: &str) {
    let what = format!("check {id} {status}");
    wait_until(&what, DEADLINE, || {
        check_status(world, agent, id).as_deref() == Some(status)
    });
}

/// The service ids `/v1/health/service/web?passing` answers.
fn passing(world: &World) -> Vec<String> {
    let entries = consul::get_json(
        world.cluster.agent_addr(0),
        "/v1/health/service/web?passing",
    );
    let mut ids: Vec<String> = entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn mirror_follows_health_events_both_ways_and_passing_shows_only_healthy_tasks() {
    let world = World::start(
        2,
        MarathonVersion::V1_10,
        |m| web_app(m, vec![http_check("/health", 10)]),
        &[
            "--events",
            "sse",
            "--health-checks",
            "mirror",
            "--sync-interval",
            "0",
        ],
    );
    let (a, b) = world.marathon.with(|m| {
        (
            run_task(m, "/web", "127.0.0.2", &[31000]),
            run_task(m, "/web", "127.0.0.3", &[31001]),
        )
    });
    world.wait_registered(AGENT_2, &a);
    world.wait_registered(AGENT_3, &b);
    let (check_a, check_b) = (format!("consular:{a}"), format!("consular:{b}"));
    // No verdict yet: a new TTL check starts critical, so no task is passing.
    wait_status(&world, AGENT_2, &check_a, "critical");
    wait_status(&world, AGENT_3, &check_b, "critical");
    let check = &checks(&world, AGENT_2)[&check_a];
    assert_eq!(check["Type"], "ttl", "{check}");
    assert_eq!(check["ServiceID"], a.as_str());
    assert!(passing(&world).is_empty());

    world
        .marathon
        .with(|m| m.set_task_check_health(&a, 0, true));
    wait_status(&world, AGENT_2, &check_a, "passing");
    assert_eq!(passing(&world), std::slice::from_ref(&a));
    world
        .marathon
        .with(|m| m.set_task_check_health(&b, 0, true));
    wait_status(&world, AGENT_3, &check_b, "passing");
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(passing(&world), both);

    world
        .marathon
        .with(|m| m.set_task_check_health(&a, 0, false));
    wait_status(&world, AGENT_2, &check_a, "critical");
    let output = checks(&world, AGENT_2)[&check_a]["Output"].clone();
    assert!(
        output
            .as_str()
            .unwrap_or_default()
            .contains("health check 1 of 1 fails"),
        "{output}"
    );
    assert_eq!(passing(&world), std::slice::from_ref(&b));
    // The service itself stayed registered throughout: only its check changed.
    assert!(world.service(AGENT_2, &a).is_some());
}

/// Answers `200 ok` to every HTTP request on `127.0.0.2`, forever; returns the port.
fn healthy_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.2:0").expect("binding on 127.0.0.2");
    let port = listener.local_addr().expect("local address").port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

#[test]
fn agent_runs_marathons_http_and_tcp_checks_and_they_pass_against_a_real_listener() {
    let port = healthy_listener();
    let tcp = SimHealthCheck {
        protocol: "TCP".into(),
        path: None,
        ..http_check("/", 1)
    };
    let command = SimHealthCheck {
        protocol: "COMMAND".into(),
        path: None,
        port_index: None,
        command: Some("true".into()),
        ..http_check("/", 1)
    };
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| web_app(m, vec![http_check("/health", 1), command, tcp]),
        &["--events", "sse", "--health-checks", "agent"],
    );
    let task = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[port]));
    world.wait_registered(AGENT_2, &task);
    let (http_id, tcp_id) = (format!("consular:{task}:1"), format!("consular:{task}:3"));
    wait_until("both agent checks", DEADLINE, || {
        let listed = checks(&world, AGENT_2);
        listed.get(&http_id).is_some() && listed.get(&tcp_id).is_some()
    });
    let listed = checks(&world, AGENT_2);
    assert_eq!(listed[&http_id]["Type"], "http", "{listed}");
    assert_eq!(
        listed[&http_id]["Notes"],
        format!("GET http://127.0.0.2:{port}/health every 1 s, timeout 1 s")
    );
    assert_eq!(listed[&tcp_id]["Type"], "tcp", "{listed}");
    assert!(
        listed.get(format!("consular:{task}:2")).is_none(),
        "COMMAND is not run by the agent"
    );
    wait_status(&world, AGENT_2, &http_id, "passing");
    wait_status(&world, AGENT_2, &tcp_id, "passing");
    assert!(
        world
            .consular
            .log_lines_with("(COMMAND) cannot be run by a Consul agent")
            >= 1
    );
}

#[test]
fn register_when_healthy_registers_only_while_marathon_finds_the_task_healthy() {
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| {
            web_app(m, vec![http_check("/health", 10)]);
            m.put_app("/plain", &[]);
        },
        &["--events", "sse", "--register-when-healthy"],
    );
    let (task, plain) = world.marathon.with(|m| {
        (
            run_task(m, "/web", "127.0.0.2", &[31000]),
            run_task(m, "/plain", "127.0.0.2", &[31001]),
        )
    });
    // An app without health checks registers on TASK_RUNNING (marathon-consul never would).
    world.wait_registered(AGENT_2, &plain);
    support::world::assert_stays(
        "an unhealthy task unregistered",
        std::time::Duration::from_secs(2),
        || world.service(AGENT_2, &task).is_none(),
    );
    world
        .marathon
        .with(|m| m.set_task_check_health(&task, 0, true));
    world.wait_registered(AGENT_2, &task);
    world
        .marathon
        .with(|m| m.set_task_check_health(&task, 0, false));
    world.wait_deregistered(AGENT_2, &task);
    world
        .marathon
        .with(|m| m.set_task_check_health(&task, 0, true));
    world.wait_registered(AGENT_2, &task);
    assert!(world.service(AGENT_2, &plain).is_some());
}
