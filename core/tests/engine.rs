//! The Consul engine on its own ([`consular_core::ConsulEngine`]): given services and labels
//! converge into a simulated Consul, a warm sync writes nothing, what leaves the desired state is
//! removed, and nothing foreign is touched.

use std::time::Duration;

use consular_core::consul::{kv_mark, Registration};
use consular_core::plan::{DesiredService, DesiredState};
use consular_core::{Config, ConsulEngine, Method, Output, Response, Target};
use consular_sim::{SimConsul, SimService};

const SERVER: &str = "127.0.0.1";
const AGENT: &str = "127.0.0.2";

fn consul() -> SimConsul {
    let mut consul = SimConsul::new();
    consul.add_agent("server", SERVER);
    consul.add_agent("agent-b", AGENT);
    consul
}

/// Drives the engine against `consul` until it is idle; returns how many writes it sent.
fn run(engine: &mut ConsulEngine, consul: &mut SimConsul) -> usize {
    let mut writes = 0;
    for _ in 0..1000 {
        let mut requests = Vec::new();
        loop {
            match engine.poll_output() {
                Output::Request(request) => requests.push(request),
                Output::Timeout(_) => break,
                Output::Log(_) => {}
                other => panic!("the engine asked for {other:?}"),
            }
        }
        if requests.is_empty() {
            return writes;
        }
        for request in requests {
            let agent = match &request.target {
                Target::Agent(host) => host.clone(),
                Target::Consul => SERVER.to_owned(),
                Target::Marathon => panic!("the engine never asks Marathon"),
            };
            if request.method != Method::Get {
                writes += 1;
            }
            let body = request.body.as_deref().unwrap_or_default();
            let answer = consul.handle(&agent, request.method, &request.path_and_query, body);
            let response = Response {
                status: answer.status,
                body: answer.body,
            };
            engine.handle_response(Duration::ZERO, request.id, Ok(response));
        }
    }
    panic!("the engine never went idle");
}

fn desired(services: &[(&str, &str, u16)], labels: &[(&str, &str, &str)]) -> DesiredState {
    let mut state = DesiredState::default();
    for &(id, name, port) in services {
        let registration = Registration::for_task("files", &format!("/{name}"), id, AGENT, &[port]);
        state.insert_service(DesiredService {
            agent: AGENT.to_owned(),
            registration,
        });
    }
    for &(name, label, value) in labels {
        state.insert_label(name, label, value);
    }
    state
}

#[test]
fn given_services_converge_and_leave_when_they_leave_the_state() {
    let mut consul = consul();
    let foreign = SimService {
        id: "redis".into(),
        name: "redis".into(),
        address: AGENT.into(),
        port: Some(6379),
        tags: Vec::new(),
    };
    consul.register(AGENT, foreign);
    consul.put_kv("elsewhere/k", b"x");
    // Another bridge's label, marked with its registration id in Flags.
    let marked = format!("/v1/kv/consular/other/k?flags={}", kv_mark("marathon"));
    let put = consul.handle(SERVER, Method::Put, &marked, b"\"foreign\"");
    assert_eq!(put.status, 200);
    let config = Config {
        registration_id: "files".into(),
        purge: true,
        ..Config::default()
    };
    let mut engine = ConsulEngine::new(config, Duration::ZERO);
    assert!(matches!(engine.poll_output(), Output::Timeout(None)));

    let first = desired(
        &[("web-1", "web", 8080), ("web-2", "web", 8081)],
        &[("web", "owner", "team-a")],
    );
    engine.sync(Duration::ZERO, first.clone());
    assert_eq!(
        run(&mut engine, &mut consul),
        3,
        "two registrations, one txn"
    );
    let ids: Vec<String> = consul.services(AGENT).map(|s| s.id.clone()).collect();
    assert_eq!(ids, ["redis", "web-1", "web-2"]);
    assert_eq!(consul.kv()["consular/web/owner"], b"\"team-a\"");

    engine.sync(Duration::ZERO, first);
    assert_eq!(
        run(&mut engine, &mut consul),
        0,
        "a warm sync writes nothing"
    );

    let second = desired(&[("web-1", "web", 9090)], &[("web", "owner", "team-b")]);
    engine.sync(Duration::ZERO, second);
    assert_eq!(
        run(&mut engine, &mut consul),
        3,
        "one change, one removal, one txn"
    );
    let services: Vec<(String, Option<u16>)> = consul
        .services(AGENT)
        .map(|s| (s.id.clone(), s.port))
        .collect();
    assert_eq!(
        services,
        [("redis".into(), Some(6379)), ("web-1".into(), Some(9090))]
    );
    assert_eq!(consul.kv()["consular/web/owner"], b"\"team-b\"");
    assert_eq!(consul.kv()["consular/other/k"], b"\"foreign\"");
    assert_eq!(consul.kv()["elsewhere/k"], b"x");
    assert_eq!(engine.metrics().syncs_completed(), 3);
}
