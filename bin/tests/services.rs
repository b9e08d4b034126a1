//! End-to-end tests of the services apps' labels make (marathon-consul's label scheme, README "Services from app
//! labels"): the real `consular` binary between the Marathon simulator and a real Consul 1.8.7 cluster, as in
//! `e2e.rs` (whose first test already shows the other side: with no labels and no flags the body is consular
//! 1.3.0's, one service on the lowest host port with the task id as its id and no `Meta`).
//!
//! Each shape is checked through the sync at start (the model's history is discarded before the bridge starts, so
//! only a sync can register what already runs) and through events: Marathon's stream with 1.10, callbacks with
//! 1.4. Every test asserts what the task host's agent holds (`/v1/agent/services`).
//!
//! ```sh
//! CONSUL_BIN=$(.ci/fetch-consul) cargo test -p consular --test services
//! ```

mod support;

use std::collections::BTreeSet;

use consular_sim::marathon::iso8601;
use consular_sim::{MarathonVersion, SimMarathon, SimNetwork, SimPort};
use serde_json::json;
use support::world::{
    run_task, tags, wait_until_or, Peers, World, AGENT_2, AGENT_3, DEADLINE, OUR_TAG,
};

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

/// The version the model gave app `app` (what `marathon-app-version` carries).
fn app_version(world: &World, app: &str) -> String {
    world
        .marathon
        .with(|m| iso8601(m.app(app).expect("the app exists").version))
}

/// `/web`, tagged `team`, with two ports: `http` (`consul: ""`, tagged `public`) and `admin` (`consul: web-admin`,
/// tagged `internal`).
fn two_port_web(m: &mut SimMarathon) {
    m.put_app("/web", &[("team", "tag"), ("owner", "ops")]);
    m.set_app_port_specs(
        "/web",
        vec![
            port("http", &[("consul", ""), ("public", "tag")], None),
            port(
                "admin",
                &[("consul", "web-admin"), ("internal", "tag")],
                None,
            ),
        ],
    );
}

/// Asserts that `task`'s two per-port services on `agent` have the names, ports, tags and meta of [`two_port_web`]
/// at version `version`, with host ports `ports` on `host`.
fn assert_two_port_services(
    world: &World,
    agent: usize,
    task: &str,
    host: &str,
    ports: [u16; 2],
    version: &str,
) {
    let expected = [
        (0, "web", "http", vec!["team", "public"]),
        (1, "web-admin", "admin", vec!["team", "internal"]),
    ];
    for (index, name, port_name, label_tags) in expected {
        let id = format!("{task}:{index}");
        let service = world
            .service(agent, &id)
            .unwrap_or_else(|| panic!("{id} on agent {agent}"));
        assert_eq!(service["ID"], id.as_str());
        assert_eq!(service["Service"], name, "{service}");
        assert_eq!(service["Address"], host, "{service}");
        assert_eq!(
            service["Port"], ports[index],
            "the task's host port at index {index}"
        );
        let mut want = vec![OUR_TAG.to_string(), "consular-app-id=/web".to_string()];
        want.extend(label_tags.iter().map(|t| t.to_string()));
        assert_eq!(tags(&service), want, "{service}");
        assert_eq!(
            service["Meta"],
            json!({
                "marathon-app-id": "/web",
                "marathon-task-id": task,
                "marathon-app-version": version,
                "marathon-port-index": index.to_string(),
                "marathon-port-name": port_name,
            }),
            "{service}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. One service per labelled port
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn stream_two_labelled_ports_register_two_services_at_start_and_on_events_and_a_kill_removes_both()
{
    let mut before = String::new();
    let world = World::start(
        2,
        MarathonVersion::V1_10,
        |m| {
            two_port_web(m);
            before = run_task(m, "/web", "127.0.0.2", &[31000, 31001]);
        },
        &["--events", "sse"],
    );
    let version = app_version(&world, "/web");
    // The sync after connecting: both ports, never the 1.3.0 service (id = task id).
    world.wait_our_services(AGENT_2, &[&format!("{before}:0"), &format!("{before}:1")]);
    assert_two_port_services(
        &world,
        AGENT_2,
        &before,
        "127.0.0.2",
        [31000, 31001],
        &version,
    );

    // A task started now arrives as a stream event; its host ports are not in order, which changes nothing: the
    // service of port i registers the port at index i.
    let streamed = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.3", &[31011, 31010]));
    world.wait_our_services(
        AGENT_3,
        &[&format!("{streamed}:0"), &format!("{streamed}:1")],
    );
    assert_two_port_services(
        &world,
        AGENT_3,
        &streamed,
        "127.0.0.3",
        [31011, 31010],
        &version,
    );

    // TASK_KILLED removes every service of the task.
    world
        .marathon
        .with(|m| m.set_task_state(&before, "TASK_KILLED"));
    world.wait_our_services(AGENT_2, &[]);
    world
        .marathon
        .with(|m| m.set_task_state(&streamed, "TASK_KILLED"));
    world.wait_our_services(AGENT_3, &[]);
}

#[test]
fn callback_first_task_of_an_unread_version_ends_with_its_per_port_services_and_a_kill_removes_both(
) {
    // Callbacks and no scheduled sync: the bridge first hears of the app through the task's TASK_RUNNING. It
    // registers the 1.3.0 service, reads the app and corrects: the two per-port services, then the replaced one
    // goes.
    let world = World::start(
        2,
        MarathonVersion::V1_4,
        two_port_web,
        &["--events", "callback"],
    );
    let version = app_version(&world, "/web");
    let task = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000, 31001]));
    world.wait_our_services(AGENT_2, &[&format!("{task}:0"), &format!("{task}:1")]);
    assert_two_port_services(
        &world,
        AGENT_2,
        &task,
        "127.0.0.2",
        [31000, 31001],
        &version,
    );

    // The kill as Marathon posts it; the reply comes once the bridge's work is done.
    let killed = world.marathon.with(|m| {
        m.take_events();
        m.set_task_state(&task, "TASK_KILLED");
        m.take_events()
    });
    let update = killed
        .iter()
        .find(|e| e.event_type == "status_update_event")
        .expect("a status update");
    let (status, text) = world.consular.post_event(&update.json);
    assert_eq!(status, 200, "{text}");
    assert!(world.service(AGENT_2, &format!("{task}:0")).is_none());
    assert!(world.service(AGENT_2, &format!("{task}:1")).is_none());
    world.wait_our_services(AGENT_2, &[]);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The app's `consul` label names its service, `tag` labels tag it
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn callback_and_sync_an_app_consul_label_names_the_service_and_tag_labels_tag_it() {
    let mut at_start = String::new();
    let mut default_named = String::new();
    let world = Peers::start(2, MarathonVersion::V1_4, |m| {
        m.put_app(
            "/grp/api",
            &[
                ("consul", "frontend"),
                ("public", "tag"),
                ("canary", "tag"),
                ("tier", "back"),
            ],
        );
        // `true` (like an empty value) keeps the default name.
        m.put_app("/grp/worker", &[("consul", "true")]);
        at_start = run_task(m, "/grp/api", "127.0.0.2", &[31001, 31000]);
        default_named = run_task(m, "/grp/worker", "127.0.0.2", &[31005]);
    })
    .launch(&["--events", "callback", "--sync-interval", "1"]);
    let version = app_version(&world, "/grp/api");
    let check = |agent: usize, task: &str, host: &str, port: u16| {
        let service = world.wait_registered(agent, task);
        assert_eq!(service["Service"], "frontend", "{service}");
        assert_eq!(service["Address"], host);
        assert_eq!(service["Port"], port, "the lowest host port");
        assert_eq!(
            tags(&service),
            [OUR_TAG, "consular-app-id=/grp/api", "canary", "public"],
            "`tier: back` is no tag"
        );
        assert_eq!(
            service["Meta"],
            json!({"marathon-app-id": "/grp/api", "marathon-task-id": task, "marathon-app-version": version})
        );
    };
    check(AGENT_2, &at_start, "127.0.0.2", 31000);
    let worker = world.wait_registered(AGENT_2, &default_named);
    assert_eq!(worker["Service"], "grp-worker");
    assert_eq!(tags(&worker), [OUR_TAG, "consular-app-id=/grp/worker"]);

    // A task started now arrives as a callback.
    let called_back = world
        .marathon
        .with(|m| run_task(m, "/grp/api", "127.0.0.3", &[31002]));
    check(AGENT_3, &called_back, "127.0.0.3", 31002);
    // The whole catalog agrees: two instances of `frontend`, none of `grp-api`.
    let frontend = world.cluster.catalog_service("frontend");
    assert_eq!(frontend.len(), 2, "{frontend:?}");
    assert!(world.cluster.catalog_service("grp-api").is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Service meta
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn stream_meta_labels_become_service_meta_and_labels_beyond_consuls_limits_are_left_out_with_a_log_line(
) {
    let big = "x".repeat(600);
    let mut at_start = String::new();
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| {
            m.put_app(
                "/pay",
                &[
                    ("consul-meta-team", "payments"),
                    ("consul-meta-bad key", "v"),
                    ("consul-meta-big", &big),
                    ("consul-meta-tier_2", "gold"),
                ],
            );
            at_start = run_task(m, "/pay", "127.0.0.2", &[31000]);
        },
        &["--events", "sse"],
    );
    let version = app_version(&world, "/pay");
    let want_meta = |task: &str| {
        json!({
            "team": "payments",
            "tier_2": "gold",
            "marathon-app-id": "/pay",
            "marathon-task-id": task,
            "marathon-app-version": version,
        })
    };
    // At start (sync): registered despite the two bad labels, which are left out.
    let service = world.wait_registered(AGENT_2, &at_start);
    assert_eq!(service["Service"], "pay");
    assert_eq!(service["Meta"], want_meta(&at_start), "{service}");
    // One log line for each label left out, naming it and why.
    for (label, why) in [
        ("consul-meta-bad key", "its key is not"),
        ("consul-meta-big", "its value is longer than 512 bytes"),
    ] {
        let line = format!("label {label} left out of the service meta: {why}");
        wait_until_or(
            &format!("the log line {line:?}"),
            DEADLINE,
            || world.consular.log_lines_with(&line) == 1,
            || world.consular.log_tail(20),
        );
    }

    // On an event (the app's version already read by the sync): the same.
    let streamed = world
        .marathon
        .with(|m| run_task(m, "/pay", "127.0.0.2", &[31001]));
    let service = world.wait_registered(AGENT_2, &streamed);
    assert_eq!(service["Meta"], want_meta(&streamed), "{service}");
    assert_eq!(service["Port"], 31001);
    assert_eq!(
        world.our_services(AGENT_2),
        BTreeSet::from([at_start, streamed])
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Container networks: the task's own address and the container port
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn stream_container_network_app_registers_the_task_ip_and_the_container_port() {
    let mut at_start = String::new();
    let mut cache = String::new();
    let setup = |m: &mut SimMarathon, at_start: &mut String, cache: &mut String| {
        m.put_app("/db", &[("owner", "data")]);
        m.set_app_network("/db", SimNetwork::Container("dcos".into()));
        m.set_app_port_specs("/db", vec![port("pg", &[("consul", "pg")], Some(5432))]);
        // No port labels: one service, the task id as its id, on the (lowest) container port.
        m.put_app("/cache", &[]);
        m.set_app_network("/cache", SimNetwork::Container("dcos".into()));
        m.set_app_port_specs(
            "/cache",
            vec![
                port("redis", &[], Some(6379)),
                port("sentinel", &[], Some(26379)),
            ],
        );
        // Marathon lists no host ports for these tasks, only their addresses.
        *at_start = m.start_task("/db", "127.0.0.2", &[31000]);
        m.set_task_ip_addresses(at_start, &["10.0.0.5"]);
        m.set_task_state(at_start, "TASK_RUNNING");
        *cache = m.start_task("/cache", "127.0.0.2", &[]);
        m.set_task_ip_addresses(cache, &["10.0.0.6"]);
        m.set_task_state(cache, "TASK_RUNNING");
    };
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| setup(m, &mut at_start, &mut cache),
        &["--events", "sse"],
    );
    let pg = world.wait_registered(AGENT_2, &format!("{at_start}:0"));
    assert_eq!(pg["Service"], "pg");
    assert_eq!(
        (pg["Address"].clone(), pg["Port"].clone()),
        (json!("10.0.0.5"), json!(5432)),
        "{pg}"
    );
    assert_eq!(pg["Meta"]["marathon-port-name"], "pg");
    let redis = world.wait_registered(AGENT_2, &cache);
    assert_eq!(redis["Service"], "cache");
    assert_eq!(
        (redis["Address"].clone(), redis["Port"].clone()),
        (json!("10.0.0.6"), json!(6379)),
        "{redis}"
    );

    // A task started now, as a stream event (its address in the event's ipAddresses).
    let streamed = world.marathon.with(|m| {
        let id = m.start_task("/db", "127.0.0.2", &[]);
        m.set_task_ip_addresses(&id, &["10.0.0.7"]);
        m.set_task_state(&id, "TASK_RUNNING");
        id
    });
    let pg = world.wait_registered(AGENT_2, &format!("{streamed}:0"));
    assert_eq!(
        (pg["Address"].clone(), pg["Port"].clone()),
        (json!("10.0.0.7"), json!(5432)),
        "{pg}"
    );
    world.wait_our_services(
        AGENT_2,
        &[&format!("{at_start}:0"), &cache, &format!("{streamed}:0")],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 5. --require-label
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn stream_require_label_registers_only_labelled_apps_and_the_next_sync_drops_an_app_that_lost_its_label(
) {
    let mut labelled = String::new();
    let mut plain = String::new();
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| {
            m.put_app("/labelled", &[("consul", "")]);
            m.put_app("/plain", &[("tier", "back")]);
            labelled = run_task(m, "/labelled", "127.0.0.2", &[31000]);
            plain = run_task(m, "/plain", "127.0.0.2", &[31001]);
        },
        &[
            "--events",
            "sse",
            "--require-label",
            "consul",
            "--sync-interval",
            "1",
        ],
    );
    let service = world.wait_registered(AGENT_2, &labelled);
    assert_eq!(service["Service"], "labelled");
    // Selected apps carry the Marathon identity, as with any label.
    assert_eq!(service["Meta"]["marathon-task-id"], labelled.as_str());
    // The unlabelled app's labels still go to KV; its task is never registered, by a sync or by an event.
    world.wait_kv("consular/plain/", &[("consular/plain/tier", r#""back""#)]);
    let plain_event = world
        .marathon
        .with(|m| run_task(m, "/plain", "127.0.0.2", &[31002]));
    let labelled_event = world
        .marathon
        .with(|m| run_task(m, "/labelled", "127.0.0.2", &[31003]));
    world.wait_registered(AGENT_2, &labelled_event);
    world.wait_two_more_syncs();
    assert_eq!(
        world.our_services(AGENT_2),
        BTreeSet::from([labelled.clone(), labelled_event.clone()]),
        "{plain} and {plain_event} of /plain must not be registered"
    );

    // The app loses its label (Marathon sends no status update for that): the next sync removes its services.
    world
        .marathon
        .with(|m| m.put_app("/labelled", &[("tier", "front")]));
    world.wait_our_services(AGENT_2, &[]);
    world.wait_kv(
        "consular/labelled/",
        &[("consular/labelled/tier", r#""front""#)],
    );
}
