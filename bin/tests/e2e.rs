//! End-to-end tests: the real `consular` binary (a subprocess, `tests/support/bridge.rs`) between the Marathon
//! simulator (`consular_adapters::simulator::MarathonServer` over `consular_sim::SimMarathon`) and a real
//! Consul 1.8.7 cluster on loopback (`tests/support/consul.rs`: a server on 127.0.0.1, client agents on
//! 127.0.0.2, 127.0.0.3 …, one HTTP port).
//!
//! Every test builds its own world (cluster, Marathon, bridge: `tests/support/world.rs`), drives Marathon's model,
//! and asserts what real Consul ends up holding: which agent has which service with which body, and which KV keys
//! exist. Waits poll with deadlines. Where a test must show that something does *not* happen, it first waits for a
//! later, observable effect that the bridge produces after the one that must not happen (a later event's
//! registration, or two more sync rounds), then checks, and keeps checking for a second against a write still in
//! flight. Where it can, it also posts the event to `/events`, whose reply comes only after the bridge's work for
//! it.
//!
//! Event sources: `--events callback` with Marathon 1.4 (1.10 has no callbacks), and the event stream,
//! `--events sse`, with Marathon 1.10.
//!
//! Needs the Consul binary: `.ci/fetch-consul` (which `.ci/test` runs) or `CONSUL_BIN`.
//!
//! ```sh
//! CONSUL_BIN=$(.ci/fetch-consul) cargo test -p consular --test e2e
//! ```

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use consular_sim::MarathonVersion;
use serde_json::{json, Value};
use support::consul::{self, wait_until};
use support::world::{
    assert_stays, register_directly, run_task, sse, status_update, Peers, World, AGENT_2, AGENT_3,
    DEADLINE, OUR_TAG, SERVER,
};

// ---------------------------------------------------------------------------------------------------------------
// 1. Callbacks: TASK_RUNNING registers the 1.3.0 body on the task host's agent, labels go to KV
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn callback_task_running_registers_the_1_3_0_body_on_the_task_hosts_agent_and_labels_in_kv() {
    let world = World::start(
        2,
        MarathonVersion::V1_4,
        |m| {
            m.put_app(
                "/my-group/web",
                &[
                    ("domain", "web.example.org"),
                    ("owner", "team é"),
                    ("empty", ""),
                    ("nested/key", "n"),
                ],
            )
        },
        &["--events", "callback"],
    );
    // The subscription is 1.3.0's: our /events URL with the registration id.
    let subscriptions = world.marathon.with(|m| m.subscriptions().to_vec());
    assert_eq!(subscriptions, [world.consular.callback_url()]);

    // Two ports: 1.3.0 registers the lowest, not the first.
    let task = world
        .marathon
        .with(|m| run_task(m, "/my-group/web", "127.0.0.2", &[31002, 31001]));

    let service = world.wait_registered(AGENT_2, &task);
    assert_eq!(service["ID"], task.as_str());
    assert_eq!(service["Service"], "my-group-web");
    assert_eq!(service["Address"], "127.0.0.2");
    assert_eq!(service["Port"], 31001);
    assert_eq!(
        service["Tags"],
        json!([OUR_TAG, "consular-app-id=/my-group/web"])
    );
    // Nothing beyond 1.3.0's body: no metadata, no checks.
    assert_eq!(service["Meta"], json!({}), "{service}");
    assert_eq!(service["EnableTagOverride"], false, "{service}");
    let checks = consul::get_json(world.cluster.agent_addr(AGENT_2), "/v1/agent/checks");
    assert_eq!(checks, json!({}), "no health checks are registered");

    // Only on the task's host: not on the other client, not on the server.
    assert!(world.service(AGENT_3, &task).is_none());
    assert!(world.service(SERVER, &task).is_none());

    // Labels: JSON strings (ASCII-escaped, as Python's json.dumps wrote them) under consular/<app-name>/. A `/`
    // in a label key nests, as in 1.3.0; an empty value is `""` (1.3.0 stored an empty body, a documented fix).
    world.wait_kv(
        "consular/",
        &[
            ("consular/my-group-web/domain", r#""web.example.org""#),
            ("consular/my-group-web/empty", r#""""#),
            ("consular/my-group-web/nested/key", r#""n""#),
            ("consular/my-group-web/owner", r#""team \u00e9""#),
        ],
    );
}

#[test]
fn callback_subscription_is_retried_until_marathon_accepts_it() {
    // Marathon started without `--event_subscriber http_callback`: /v2/eventSubscriptions answers 400. 1.3.0 tried
    // once and never again; this bridge retries with backoff.
    let peers = Peers::start(1, MarathonVersion::V1_4, |m| {
        m.put_app("/web", &[]);
        m.callbacks_enabled = false;
    });
    let world = peers.launch_unconnected(&["--events", "callback"]);
    let attempts = || {
        world
            .marathon
            .requests()
            .iter()
            .filter(|(_, path)| path.starts_with("/v2/eventSubscriptions"))
            .count()
    };
    wait_until("a refused subscription attempt", DEADLINE, || {
        attempts() >= 1
    });
    assert!(world.marathon.with(|m| m.subscriptions().is_empty()));

    world.marathon.with(|m| m.callbacks_enabled = true);
    let url = world.consular.callback_url();
    wait_until("the subscription to be retried", DEADLINE, || {
        world.marathon.with(|m| m.subscriptions().contains(&url))
    });
    // And events arrive through it.
    let task = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000]));
    world.wait_registered(AGENT_2, &task);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Every stop state deregisters
// ---------------------------------------------------------------------------------------------------------------

/// Every Mesos state that means "not serving any more", including the non-terminal TASK_KILLING and
/// TASK_UNREACHABLE (1.3.0 answered 500 to all but the first four and left the service registered).
const STOP_STATES: [&str; 11] = [
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_KILLING",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNREACHABLE",
    "TASK_UNKNOWN",
];

#[test]
fn callback_every_stop_state_deregisters_its_task() {
    let world = World::start(
        2,
        MarathonVersion::V1_4,
        |m| m.put_app("/web", &[]),
        &["--events", "callback"],
    );
    // One task per stop state, spread over both clients, plus one that keeps running.
    let hosts = [(AGENT_2, "127.0.0.2"), (AGENT_3, "127.0.0.3")];
    let tasks: Vec<(&str, usize, String)> = STOP_STATES
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let (agent, host) = hosts[i % 2];
            let port = 31000 + i as u16;
            let id = world.marathon.with(|m| run_task(m, "/web", host, &[port]));
            (*state, agent, id)
        })
        .collect();
    let survivor = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31100]));
    for (_, agent, id) in &tasks {
        world.wait_registered(*agent, id);
    }
    world.wait_registered(AGENT_2, &survivor);

    world.marathon.with(|m| {
        for (state, _, id) in &tasks {
            m.set_task_state(id, state);
        }
    });
    for (state, agent, id) in &tasks {
        let what = format!("{state} to deregister {id}");
        wait_until(&what, DEADLINE, || world.service(*agent, id).is_none());
    }
    // Only the stopped tasks went: the running one is still registered.
    assert_eq!(world.our_services(AGENT_2), BTreeSet::from([survivor]));
    assert!(world.our_services(AGENT_3).is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Labels: new keys written, stale ones removed, a prefix sibling app's keys untouched
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn callback_label_change_rewrites_the_apps_kv_and_leaves_a_prefix_sibling_alone() {
    let world = World::start(
        2,
        MarathonVersion::V1_4,
        |m| {
            m.put_app("/my-app", &[("a", "1"), ("b", "2")]);
            // `my-app2` starts with `my-app`: 1.3.0 listed `consular/my-app?keys` (no slash) and deleted this
            // app's `b` and `c` as stale labels of my-app (behaviour doc §5.3, quirk 8).
            m.put_app("/my-app2", &[("b", "sibling-b"), ("c", "sibling-c")]);
        },
        &["--events", "callback"],
    );
    world.marathon.with(|m| {
        run_task(m, "/my-app", "127.0.0.2", &[31000]);
        run_task(m, "/my-app2", "127.0.0.3", &[31001]);
    });
    let sibling = [
        ("consular/my-app2/b", r#""sibling-b""#),
        ("consular/my-app2/c", r#""sibling-c""#),
    ];
    world.wait_kv(
        "consular/my-app/",
        &[
            ("consular/my-app/a", r#""1""#),
            ("consular/my-app/b", r#""2""#),
        ],
    );
    world.wait_kv("consular/my-app2/", &sibling);

    // New labels: `a` changes, `b` goes, `d` comes. Marathon sends no status event for that; the next RUNNING
    // task of the app brings the change.
    world.marathon.with(|m| {
        m.put_app("/my-app", &[("a", "10"), ("d", "4")]);
        run_task(m, "/my-app", "127.0.0.3", &[31002]);
    });
    world.wait_kv(
        "consular/my-app/",
        &[
            ("consular/my-app/a", r#""10""#),
            ("consular/my-app/d", r#""4""#),
        ],
    );
    // The label sync of my-app is one KV transaction, so once its result is visible a wrongful delete of the
    // sibling's keys would be too.
    assert_eq!(
        world.kv_under("consular/my-app2/"),
        sibling
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
        "my-app2's labels were touched by my-app's label sync"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. A sync registers everything that runs
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn sync_at_startup_registers_every_running_task_and_writes_every_apps_labels() {
    let mut tasks = Vec::new();
    let mut staging = String::new();
    let mut killing = String::new();
    let world = World::start(
        2,
        MarathonVersion::V1_4,
        |m| {
            m.put_app("/grp/api", &[("tier", "backend")]);
            m.put_app("/web", &[]);
            tasks.push((
                AGENT_2,
                run_task(m, "/grp/api", "127.0.0.2", &[31001, 31000]),
            ));
            tasks.push((AGENT_3, run_task(m, "/grp/api", "127.0.0.3", &[31005])));
            tasks.push((SERVER, run_task(m, "/web", "127.0.0.1", &[])));
            // Not serving: never registered by a sync.
            staging = m.start_task("/web", "127.0.0.2", &[31010]);
            killing = run_task(m, "/web", "127.0.0.3", &[31011]);
            m.set_task_state(&killing, "TASK_KILLING");
        },
        // No events reach the bridge (the model's history was discarded): only the sync can do this.
        &["--events", "callback", "--sync-interval", "1"],
    );

    for (agent, id) in &tasks {
        world.wait_registered(*agent, id);
    }
    let api = world.service(AGENT_2, &tasks[0].1).expect("registered");
    assert_eq!(api["Service"], "grp-api");
    assert_eq!(api["Address"], "127.0.0.2");
    assert_eq!(api["Port"], 31000, "the lowest port");
    assert_eq!(api["Tags"], json!([OUR_TAG, "consular-app-id=/grp/api"]));
    let web = world.service(SERVER, &tasks[2].1).expect("registered");
    assert_eq!(web["Service"], "web");
    assert_eq!(
        web["Port"], 0,
        "a task without ports is registered without one"
    );
    world.wait_kv("consular/", &[("consular/grp-api/tier", r#""backend""#)]);

    // After two more syncs, the tasks that are not running are still not registered.
    world.wait_two_more_syncs();
    assert_eq!(
        world.our_services(AGENT_2),
        BTreeSet::from([tasks[0].1.clone()]),
        "the staging task {staging} must not be registered"
    );
    assert_eq!(
        world.our_services(AGENT_3),
        BTreeSet::from([tasks[1].1.clone()]),
        "the killing task {killing} must not be registered"
    );
}

#[test]
fn sync_skips_only_the_apps_whose_consul_names_clash() {
    // `/a/b` and `/a-b` both become the Consul name `a-b`. 1.3.0 aborted the whole sync on that; this bridge skips
    // the two clashing apps (which one would own `consular/a-b/`?) and syncs every other app.
    let mut ok = String::new();
    let mut clashing = Vec::new();
    let world = World::start(
        1,
        MarathonVersion::V1_4,
        |m| {
            m.put_app("/a/b", &[("k", "from /a/b")]);
            m.put_app("/a-b", &[("k", "from /a-b")]);
            m.put_app("/ok", &[("k", "ok")]);
            clashing.push(run_task(m, "/a/b", "127.0.0.2", &[31000]));
            clashing.push(run_task(m, "/a-b", "127.0.0.2", &[31001]));
            ok = run_task(m, "/ok", "127.0.0.2", &[31002]);
        },
        &["--events", "callback", "--sync-interval", "1"],
    );
    world.wait_our_services(AGENT_2, &[&ok]);
    world.wait_kv("consular/", &[("consular/ok/k", r#""ok""#)]);
    world.wait_two_more_syncs();
    assert_eq!(
        world.our_services(AGENT_2),
        BTreeSet::from([ok]),
        "the clashing apps' tasks {clashing:?} must be left out"
    );
    assert_eq!(
        world.kv_under("consular/"),
        [("consular/ok/k".to_string(), r#""ok""#.to_string())]
    );
}

#[test]
fn sync_with_purge_removes_nothing_while_marathon_cannot_be_read() {
    let mut ids = Vec::new();
    let world = World::start(
        1,
        MarathonVersion::V1_4,
        |m| {
            m.put_app("/web", &[("k", "v")]);
            ids.push(run_task(m, "/web", "127.0.0.2", &[31000]));
            ids.push(run_task(m, "/web", "127.0.0.2", &[31001]));
        },
        &["--events", "callback", "--sync-interval", "1", "--purge"],
    );
    world.wait_our_services(AGENT_2, &[&ids[0], &ids[1]]);
    world.wait_kv("consular/", &[("consular/web/k", r#""v""#)]);

    // A task dies and the app's labels go without an event reaching the bridge (they are dropped), so only a sync
    // could act on them; and Marathon loses its leader, so every read answers 503.
    world.marathon.with(|m| {
        m.set_task_state(&ids[0], "TASK_KILLED");
        m.put_app("/web", &[]);
        m.take_events();
        m.no_leader = true;
    });
    // Each round still begins with `GET /v2/apps`; it is answered 503.
    world.wait_two_more_syncs();
    assert_eq!(
        world.our_services(AGENT_2),
        BTreeSet::from([ids[0].clone(), ids[1].clone()]),
        "a sync that could not read Marathon purged services"
    );
    assert_eq!(
        world.kv_under("consular/"),
        [("consular/web/k".to_string(), r#""v""#.to_string())],
        "a sync that could not read Marathon changed KV"
    );

    // The leader is back: the next sync does what the failed ones held back, which shows they could have.
    world.marathon.with(|m| m.no_leader = false);
    world.wait_our_services(AGENT_2, &[&ids[1]]);
    world.wait_kv("consular/", &[]);
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Purge touches only what is ours
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn sync_with_purge_removes_only_our_dead_services_and_dead_apps_kv() {
    let mut live_task = String::new();
    let peers = Peers::start(2, MarathonVersion::V1_4, |m| {
        // `/web2` lives, `/web` is gone. Its name is a prefix of the live one: a recursive delete of
        // `consular/web` without the trailing slash would take `consular/web2/…` too.
        m.put_app("/web2", &[("domain", "web2.example")]);
        live_task = run_task(m, "/web2", "127.0.0.3", &[31000]);
    });
    // Seeded before the bridge starts, because its first sync runs at once.
    let c = &peers.cluster;
    let ours = |id: &str, name: &str, app: &str, host: &str| {
        json!({"ID": id, "Name": name, "Address": host, "Port": 30000,
               "Tags": [OUR_TAG, format!("consular-app-id={app}")]})
    };
    // Ours and dead: the app is gone (on the server's own agent too), or the app lives but the task does not.
    register_directly(c, SERVER, ours("web.dead-0", "web", "/web", "127.0.0.1"));
    register_directly(c, AGENT_2, ours("web.dead-1", "web", "/web", "127.0.0.2"));
    register_directly(
        c,
        AGENT_3,
        ours("web2.dead-2", "web2", "/web2", "127.0.0.3"),
    );
    // Not ours: untagged; another bridge's registration id (sharing ours as a prefix); an app tag without any
    // registration id.
    let not_ours = [
        (AGENT_2, "foreign-untagged", json!([])),
        (
            AGENT_2,
            "web.other-bridge",
            json!(["consular-reg-id=consular-other", "consular-app-id=/web"]),
        ),
        (AGENT_3, "web2.no-reg-id", json!(["consular-app-id=/web2"])),
        (SERVER, "web.other-bridge-0", json!(["consular-reg-id=x"])),
    ];
    for (agent, id, tags) in &not_ours {
        register_directly(
            c,
            *agent,
            json!({"ID": id, "Name": "web", "Port": 8080, "Tags": tags}),
        );
    }
    c.kv_put("consular/web/domain", r#""web.example""#);
    c.kv_put("consular/web2/stale", r#""old""#);
    let outside = [
        ("consular-other/keep", "1"),
        ("other/consular/keep", "2"),
        ("consularweb", "3"),
    ];
    for (key, value) in outside {
        c.kv_put(key, value);
    }

    let world = peers.launch(&["--events", "callback", "--sync-interval", "1", "--purge"]);
    world.wait_our_services(SERVER, &[]);
    world.wait_our_services(AGENT_2, &[]);
    world.wait_our_services(AGENT_3, &[&live_task]);
    // The dead app's directory is gone; the live app has exactly its labels (the stale one removed).
    world.wait_kv(
        "consular/",
        &[("consular/web2/domain", r#""web2.example""#)],
    );

    // Two more syncs, so any purge write of the rounds seen so far has landed; then check what is not ours.
    world.wait_two_more_syncs();
    for (agent, id, tags) in &not_ours {
        let service = world
            .service(*agent, id)
            .unwrap_or_else(|| panic!("{id} is not ours but was deregistered"));
        assert_eq!(service["Tags"], *tags, "{id} was changed");
    }
    for (key, value) in outside {
        assert_eq!(
            world.kv(key).as_deref(),
            Some(value),
            "{key} is outside consular/"
        );
    }
    assert_eq!(
        world.kv_under("consular/"),
        [(
            "consular/web2/domain".to_string(),
            r#""web2.example""#.to_string()
        )]
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 6. --fallback: a host without an agent gets its registration on the main Consul
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn fallback_registers_on_the_main_consul_when_the_task_hosts_agent_is_unreachable() {
    let world = World::start(
        1,
        MarathonVersion::V1_4,
        |m| m.put_app("/web", &[]),
        &["--events", "callback", "--fallback"],
    );
    // Nothing listens on 127.0.0.9: the cluster has the server on .1 and one client on .2.
    let no_agent = format!("127.0.0.9:{}", world.cluster.http_port());
    assert!(
        consul::get(no_agent.parse().expect("address"), "/v1/agent/self").is_err(),
        "something answers on {no_agent}"
    );

    let (orphan, normal) = world.marathon.with(|m| {
        (
            run_task(m, "/web", "127.0.0.9", &[31000]),
            run_task(m, "/web", "127.0.0.2", &[31001]),
        )
    });
    // On the main Consul (the server's agent), with the body unchanged: Address is still the task's host.
    let service = world.wait_registered(SERVER, &orphan);
    assert_eq!(service["Service"], "web");
    assert_eq!(service["Address"], "127.0.0.9");
    assert_eq!(service["Port"], 31000);
    assert_eq!(service["Tags"], json!([OUR_TAG, "consular-app-id=/web"]));
    // A host whose agent answers keeps its own registration; the fallback is for failures only.
    world.wait_registered(AGENT_2, &normal);
    assert!(world.service(SERVER, &normal).is_none());
    assert!(world.service(AGENT_2, &orphan).is_none());
}

// ---------------------------------------------------------------------------------------------------------------
// 7. An agent down while its tasks change is repaired after it restarts
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn sync_with_purge_repairs_an_agent_that_was_down_while_its_tasks_changed() {
    let mut world = World::start(
        2,
        MarathonVersion::V1_4,
        |m| m.put_app("/web", &[]),
        &["--events", "callback", "--sync-interval", "1", "--purge"],
    );
    let (killed, kept, elsewhere) = world.marathon.with(|m| {
        (
            run_task(m, "/web", "127.0.0.2", &[31000]),
            run_task(m, "/web", "127.0.0.2", &[31001]),
            run_task(m, "/web", "127.0.0.3", &[31002]),
        )
    });
    world.wait_our_services(AGENT_2, &[&killed, &kept]);
    world.wait_our_services(AGENT_3, &[&elsewhere]);

    world.cluster.stop_agent(AGENT_2);
    // Both events reach the bridge, and both writes fail: nothing listens on 127.0.0.2 now.
    let started = world.marathon.with(|m| {
        m.set_task_state(&killed, "TASK_KILLED");
        run_task(m, "/web", "127.0.0.2", &[31003])
    });
    // Let syncs run into the dead agent, so the bridge has to cope with it rather than race it.
    world.wait_two_more_syncs();
    world.cluster.start_agent(AGENT_2);

    // The restarted agent reloads `killed` from its data dir (services registered over HTTP persist there), and
    // never saw `started`: the syncs must purge the one and register the other.
    world.wait_our_services(AGENT_2, &[&kept, &started]);
    world.wait_our_services(AGENT_3, &[&elsewhere]);
    world.consular.assert_running();
}

// ---------------------------------------------------------------------------------------------------------------
// 8.–10. The event stream (Marathon 1.10 has no callbacks)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn stream_cut_while_tasks_change_is_repaired_by_the_sync_after_reconnect() {
    let mut before_start = String::new();
    // No scheduled syncs: only the one after each (re)connect can repair anything. `--purge` because deregistering
    // a task whose stop event was lost is a purge.
    let world = World::start(
        2,
        MarathonVersion::V1_10,
        |m| {
            m.put_app("/web", &[("v", "1")]);
            before_start = run_task(m, "/web", "127.0.0.2", &[31000]);
        },
        &["--events", "sse", "--sync-interval", "0", "--purge"],
    );
    // The sync after the first connect brings in what ran before the bridge.
    world.wait_registered(AGENT_2, &before_start);
    world.wait_kv("consular/", &[("consular/web/v", r#""1""#)]);
    // Events flow over the stream.
    let streamed = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.3", &[31001]));
    world.wait_registered(AGENT_3, &streamed);

    // The cut: the open stream is dropped and new ones are refused (503) for a while.
    let attempts = world.stream_requests();
    world.marathon.set_streams_enabled(false);
    world.marathon.drop_streams();
    wait_until("the event stream to close", DEADLINE, || {
        world.marathon.open_streams() == 0
    });
    // Everything changes while no stream is open, so every one of these events is lost.
    let new_task = world.marathon.with(|m| {
        m.set_task_state(&before_start, "TASK_KILLED");
        m.set_task_state(&streamed, "TASK_FAILED");
        m.put_app("/web", &[("v", "2")]);
        run_task(m, "/web", "127.0.0.3", &[31002])
    });
    wait_until("a refused reconnect attempt", DEADLINE, || {
        world.stream_requests() > attempts
    });
    assert!(
        world.service(AGENT_2, &before_start).is_some(),
        "the kill of {before_start} reached the bridge although no stream was open"
    );
    world.marathon.set_streams_enabled(true);

    wait_until("the bridge to reconnect", DEADLINE, || {
        world.marathon.open_streams() == 1
    });
    world.wait_our_services(AGENT_2, &[]);
    world.wait_our_services(AGENT_3, &[&new_task]);
    world.wait_kv("consular/", &[("consular/web/v", r#""2""#)]);
}

#[test]
fn stream_late_running_after_killed_does_not_bring_the_task_back() {
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| m.put_app("/web", &[]),
        &["--events", "sse", "--sync-interval", "0"],
    );
    let task = world.start_and_kill_task(AGENT_2, "/web", &[31000]);

    // Mesos status updates can arrive out of order: a RUNNING sent before the kill lands after it.
    let late = status_update(&task, "TASK_RUNNING", "/web", "127.0.0.2", &[31000]);
    world.marathon.write_raw_to_streams(&sse(&late));
    // A later event on the same stream: once its task is registered, the late RUNNING (read first) was handled.
    let later = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31001]));
    world.wait_registered(AGENT_2, &later);
    assert_stays(
        &format!("{task} staying deregistered"),
        Duration::from_secs(1),
        || world.service(AGENT_2, &task).is_none(),
    );
    assert_eq!(world.our_services(AGENT_2), BTreeSet::from([later.clone()]));

    // The same late RUNNING posted to /events: with events from the stream, /events is not served (anyone on the
    // network could post there), and the bridge answers at once, so this check needs no barrier at all.
    let (status, text) = world.consular.post_event(late.to_string().as_bytes());
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("--accept-callbacks"), "{text}");
    assert!(
        world.service(AGENT_2, &task).is_none(),
        "a late RUNNING posted to /events brought {task} back"
    );
    assert_eq!(world.our_services(AGENT_2), BTreeSet::from([later]));
}

#[test]
fn stream_oversize_event_is_skipped_and_the_stream_goes_on() {
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| m.put_app("/web", &[]),
        &["--events", "sse", "--sync-interval", "0"],
    );
    let connects = world.stream_requests();
    // A valid RUNNING event padded to 2 MiB: past the core's default limit of 1 MiB per event (the binary has no
    // flag to change it). Were it read, it would register `web.oversize`.
    let mut huge = status_update(
        "web.oversize",
        "TASK_RUNNING",
        "/web",
        "127.0.0.2",
        &[31000],
    );
    huge["message"] = json!("x".repeat(2 << 20));
    world.marathon.write_raw_to_streams(&sse(&huge));

    let after = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31001]));
    world.wait_registered(AGENT_2, &after);
    assert_stays(
        "web.oversize staying unregistered",
        Duration::from_secs(1),
        || world.service(AGENT_2, "web.oversize").is_none(),
    );
    // The same connection carried on: no reconnect, still one stream.
    assert_eq!(world.stream_requests(), connects, "the stream was reopened");
    assert_eq!(world.marathon.open_streams(), 1);
    assert!(
        world
            .consular
            .log_text()
            .contains("skipped 1 stream events larger than 1048576 bytes"),
        "no log line about the skipped event\n{}",
        world.consular.log_tail(20)
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 11. Bad input on /events
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn events_endpoint_answers_bad_input_with_400_and_a_json_error_and_keeps_serving() {
    let mut world = World::start(
        1,
        MarathonVersion::V1_4,
        |m| m.put_app("/web", &[("k", "v")]),
        &["--events", "callback"],
    );
    let cases: &[(&str, &str)] = &[
        ("not JSON", "not json"),
        ("an empty body", ""),
        ("truncated JSON", r#"{"eventType": "status_update_event""#),
        ("a JSON array", "[1, 2]"),
        ("a JSON string", r#""status_update_event""#),
        ("no eventType", r#"{"taskStatus": "TASK_RUNNING"}"#),
        (
            "no taskStatus",
            r#"{"eventType": "status_update_event", "taskId": "web.bad-1", "appId": "/web",
                "host": "127.0.0.2", "ports": [31000]}"#,
        ),
        (
            "an unknown taskStatus",
            r#"{"eventType": "status_update_event", "taskStatus": "TASK_BOGUS", "taskId": "web.bad-2",
                "appId": "/web", "host": "127.0.0.2", "ports": [31000]}"#,
        ),
        (
            "no taskId",
            r#"{"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "appId": "/web",
                "host": "127.0.0.2", "ports": [31000]}"#,
        ),
        (
            "no host",
            r#"{"eventType": "status_update_event", "taskStatus": "TASK_KILLED", "taskId": "web.bad-3"}"#,
        ),
        (
            "RUNNING without appId",
            r#"{"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "taskId": "web.bad-4",
                "host": "127.0.0.2", "ports": [31000]}"#,
        ),
        (
            "ports that are not port numbers",
            r#"{"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "taskId": "web.bad-5",
                "appId": "/web", "host": "127.0.0.2", "ports": ["31000"]}"#,
        ),
        (
            "app_terminated_event without appId",
            r#"{"eventType": "app_terminated_event"}"#,
        ),
    ];
    // 1.3.0's exact reply for an event without a type, kept byte for byte.
    assert_eq!(
        world
            .consular
            .post_event(br#"{"taskStatus": "TASK_RUNNING"}"#),
        (
            400,
            r#"{"error": "Event type None not supported."}"#.to_string()
        )
    );
    for (what, body) in cases {
        let (status, text) = world.consular.post_event(body.as_bytes());
        assert_eq!(status, 400, "{what}: {text}");
        let error: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e}): {text}"));
        let fields = error.as_object().map(|o| o.len());
        let message = error["error"].as_str().unwrap_or_default();
        assert!(
            fields == Some(1) && !message.is_empty(),
            "{what}: expected {{\"error\": <message>}}, got {text}"
        );
    }

    // Still alive and serving: a valid event is handled as usual.
    world.consular.assert_running();
    let good = status_update("web.good-1", "TASK_RUNNING", "/web", "127.0.0.2", &[31000]);
    let (status, text) = world.consular.post_event(good.to_string().as_bytes());
    assert_eq!((status, text.as_str()), (200, r#"{"status": "ok"}"#));
    world.wait_registered(AGENT_2, "web.good-1");
    world.wait_kv("consular/", &[("consular/web/k", r#""v""#)]);
    // None of the rejected events did anything.
    assert_eq!(
        world.our_services(AGENT_2),
        BTreeSet::from(["web.good-1".to_string()])
    );
    assert!(world.our_services(SERVER).is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// Also: removing an app cleans up after it, without --purge
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn stream_app_removal_deregisters_its_tasks_and_deletes_its_kv_but_not_a_prefix_siblings() {
    // No --purge and no scheduled syncs: the app_terminated_event alone must clean the app's KV.
    let world = World::start(
        2,
        MarathonVersion::V1_10,
        |m| {
            m.put_app("/web", &[("domain", "web.example")]);
            m.put_app("/web2", &[("domain", "web2.example")]);
        },
        &["--events", "sse", "--sync-interval", "0"],
    );
    let (gone_1, gone_2, stays) = world.marathon.with(|m| {
        (
            run_task(m, "/web", "127.0.0.2", &[31000]),
            run_task(m, "/web", "127.0.0.3", &[31001]),
            run_task(m, "/web2", "127.0.0.2", &[31002]),
        )
    });
    world.wait_our_services(AGENT_2, &[&gone_1, &stays]);
    world.wait_our_services(AGENT_3, &[&gone_2]);
    world.wait_kv(
        "consular/",
        &[
            ("consular/web/domain", r#""web.example""#),
            ("consular/web2/domain", r#""web2.example""#),
        ],
    );

    // TASK_KILLED for each task, then app_terminated_event.
    world.marathon.with(|m| m.remove_app("/web"));
    world.wait_our_services(AGENT_2, &[&stays]);
    world.wait_our_services(AGENT_3, &[]);
    world.wait_kv(
        "consular/",
        &[("consular/web2/domain", r#""web2.example""#)],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Also: SIGTERM stops the bridge cleanly
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn sigterm_stops_the_bridge_with_status_0_and_leaves_consul_as_it_was() {
    let mut world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| m.put_app("/web", &[]),
        &["--events", "sse", "--sync-interval", "0"],
    );
    let task = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000]));
    world.wait_registered(AGENT_2, &task);

    let status = world.consular.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", world.consular.log_tail(20));
    // It let go of Marathon's stream and of its port, and deregistered nothing on the way out (1.3.0 did not
    // either: a restart must not blink the services).
    wait_until("the event stream to close", DEADLINE, || {
        world.marathon.open_streams() == 0
    });
    assert!(consul::get(world.consular.addr(), "/").is_err());
    assert_eq!(world.our_services(AGENT_2), BTreeSet::from([task]));
}
