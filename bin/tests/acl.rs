//! End-to-end with Consul ACLs: the real binary against a real Consul 1.8.7 cluster (a server on 127.0.0.1, a
//! client agent on 127.0.0.2) with `acl { enabled = true, default_policy = "deny" }`, and a token made from the
//! policies in `bin/dist/` (the ones the README quotes).
//!
//! With `consular-policy.hcl` the bridge does everything: registration on the task's agent, deregistration, KV
//! labels, a mirrored health check's status, and a sync with `--purge` removing a dead service and a deleted app's
//! keys; under `--ha`, with
//! `consular-ha-policy.hcl` too, it also takes the lock and registers its `consular` service. Then each rule of
//! each policy is shown to be needed: with a token whose policy lacks that one line, the bridge fails where the
//! rule is needed, its log says so (naming the permission where Consul refuses a request; a listing Consul
//! filters instead names the effect), and the process keeps running and answers `/health`.
//!
//! Needs the Consul binary: `.ci/fetch-consul` (which `.ci/test` runs) or `CONSUL_BIN`.

mod support;

use std::time::Duration;

use consular_sim::{MarathonVersion, SimHealthCheck};
use serde_json::json;
use support::bridge::Consular;
use support::consul::{self, wait_until, ClusterConfig};
use support::world::{register_directly, run_task, Peers, AGENT_2, DEADLINE, OUR_TAG, SERVER};

const POLICY: &str = include_str!("../dist/consular-policy.hcl");
const HA_POLICY: &str = include_str!("../dist/consular-ha-policy.hcl");
const MASTER: &str = "8a0d1b2c-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

/// A cluster with ACLs (default deny) and one client agent, and a Marathon 1.10 with `/web` (label `v=1`) running
/// a task on 127.0.0.2; returns them and the task's id.
fn peers() -> (Peers, String) {
    let config = ClusterConfig {
        tls: None,
        acl_master: Some(MASTER.to_string()),
    };
    let mut task = String::new();
    let peers = Peers::start_with(1, &config, MarathonVersion::V1_10, |m| {
        m.put_app("/web", &[("v", "1")]);
        task = run_task(m, "/web", "127.0.0.2", &[31000]);
    });
    (peers, task)
}

/// The rule lines of a policy file: everything but comments and blank lines.
fn rules(policy: &str) -> Vec<&str> {
    policy
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .collect()
}

/// `policy` without rule line `dropped`.
fn without(policy: &str, dropped: &str) -> String {
    let kept: Vec<&str> = policy.lines().filter(|line| *line != dropped).collect();
    kept.join("\n")
}

/// A Marathon HTTP health check on the task's first port.
fn http_check() -> SimHealthCheck {
    SimHealthCheck {
        protocol: "HTTP".into(),
        path: Some("/health".into()),
        port_index: Some(0),
        port: None,
        interval_seconds: 10,
        timeout_seconds: 1,
        grace_period_seconds: 0,
        max_consecutive_failures: 3,
        command: None,
    }
}

/// Checks `bridge` runs and answers `GET /health` with 200.
fn assert_alive(bridge: &mut Consular) {
    bridge.assert_running();
    let (status, _) = consul::get(bridge.addr(), "/health").expect("GET /health");
    assert_eq!(status, 200, "{}", bridge.log_tail(20));
}

#[test]
fn the_documented_policy_lets_the_bridge_register_deregister_write_kv_and_checks_and_purge() {
    let (peers, task) = peers();
    let c = &peers.cluster;
    // Ours and dead (its app is gone), and a deleted app's label: the first sync's purge removes both.
    register_directly(
        c,
        AGENT_2,
        json!({"ID": "gone.dead-1", "Name": "gone", "Port": 30000,
               "Tags": [OUR_TAG, "consular-app-id=/gone"]}),
    );
    c.kv_put("consular/gone/v", r#""old""#);
    let token = c.acl_token(&[("consular", POLICY)]);
    let world = peers.launch(&[
        "--events",
        "sse",
        "--sync-interval",
        "1",
        "--purge",
        "--health-checks",
        "mirror",
        "--consul-token",
        &token,
    ]);
    world.wait_registered(AGENT_2, &task);
    world.wait_kv("consular/", &[("consular/web/v", r#""1""#)]);
    world.wait_deregistered(AGENT_2, "gone.dead-1");
    world.start_and_kill_task(AGENT_2, "/web", &[31001]);
    // A mirrored health check: registered with its service, its status written by the bridge.
    let checked = world.marathon.with(|m| {
        m.put_app("/api", &[]);
        m.set_app_health_checks("/api", vec![http_check()]);
        run_task(m, "/api", "127.0.0.2", &[31002])
    });
    world.wait_registered(AGENT_2, &checked);
    world
        .marathon
        .with(|m| m.set_task_check_health(&checked, 0, true));
    let check = format!("consular:{checked}");
    wait_until(&format!("{check} passing"), DEADLINE, || {
        let checks = consul::get_json(world.cluster.agent_addr(AGENT_2), "/v1/agent/checks");
        checks[&check]["Status"] == "passing"
    });
    world.wait_two_more_syncs();
    assert_eq!(world.consular.log_lines_with("the token lacks"), 0);
    assert_eq!(world.consular.log_lines_with("HTTP 403"), 0);
}

/// What one log line says when the policy lacks `rule`: the permission Consul refused, or for a listing Consul
/// only filters, what became of the task.
fn expected_failure(rule: &str) -> &'static [&'static str] {
    // The log is JSON lines: quotes are escaped.
    match rule.split_whitespace().next() {
        Some("service_prefix") => &[r#"the token lacks service:write on \"web\""#],
        Some("key_prefix") if rule.contains("\"consular/\"") => &[
            "PUT consul /v1/txn",
            r#"the token lacks key_prefix:write on \"consular/\""#,
        ],
        // Without node:read the catalog lists no node, so no host is a member.
        Some("node_prefix") => {
            &["their host is a failed node or not a member of the Consul cluster"]
        }
        Some("session_prefix") => &[
            "PUT consul /v1/session/create",
            "the token lacks session:write",
        ],
        // The lock key or a status key, whichever the bridge tries first.
        Some("key_prefix") if rule.contains("\"service/consular/\"") => &[
            r#"the token lacks key:"#,
            r#"on \"service/consular/consular/"#,
        ],
        _ => panic!("no test shows that rule {rule:?} is needed: add its expected failure here"),
    }
}

/// Waits until one line of `bridge`'s log has all of `needles`, and prints it.
fn wait_logged(bridge: &Consular, needles: &[&str], what: &str) {
    let found = || {
        let text = bridge.log_text();
        text.lines()
            .find(|line| needles.iter().all(|n| line.contains(n)))
            .map(String::from)
    };
    wait_until(
        &format!("a log line with {needles:?} {what}"),
        DEADLINE,
        || found().is_some(),
    );
    eprintln!("{what}: {}", found().expect("just seen"));
}

/// Starts a bridge with `flags` and `token`, whose policy lacks `rule`; returns it once it has logged the failure
/// that lack causes and is still alive.
fn start_lacking(peers: &Peers, flags: &[&str], token: &str, rule: &str) -> Consular {
    let mut flags = flags.to_vec();
    flags.extend(["--consul-token", token]);
    let mut bridge = Consular::start(&peers.marathon.url(), &peers.cluster.server_url(), &flags);
    wait_logged(
        &bridge,
        expected_failure(rule),
        &format!("without {rule:?}"),
    );
    assert_alive(&mut bridge);
    bridge
}

#[test]
fn a_token_lacking_any_one_rule_gets_a_log_line_saying_what_failed_and_the_bridge_keeps_running() {
    let (peers, task) = peers();
    let flags = ["--events", "sse", "--sync-interval", "1", "--purge"];
    for (i, rule) in rules(POLICY).into_iter().enumerate() {
        let token = peers
            .cluster
            .acl_token(&[(&format!("lacking-{i}"), &without(POLICY, rule))]);
        // Still running while the agent is checked: by now it would have registered the task.
        let _bridge = start_lacking(&peers, &flags, &token, rule);
        if !rule.starts_with("key_prefix") {
            assert!(
                consul::agent_services(peers.cluster.agent_addr(AGENT_2))
                    .get(&task)
                    .is_none(),
                "{task} registered without {rule:?}"
            );
        }
    }
}

#[test]
fn under_ha_both_policies_are_enough_and_each_ha_rule_is_needed() {
    let (peers, task) = peers();
    let flags = ["--events", "sse", "--sync-interval", "1", "--ha"];
    let both = peers
        .cluster
        .acl_token(&[("consular", POLICY), ("consular-ha", HA_POLICY)]);
    let mut ha_flags = flags.to_vec();
    ha_flags.extend(["--consul-token", &both]);
    let mut leader = Consular::start(
        &peers.marathon.url(),
        &peers.cluster.server_url(),
        &ha_flags,
    );
    wait_until("the bridge to lead", DEADLINE, || {
        leader.log_lines_with("became the leader") > 0
    });
    wait_until("the task on its agent", DEADLINE, || {
        consul::agent_services(peers.cluster.agent_addr(AGENT_2))
            .get(&task)
            .is_some()
    });
    wait_until("its consular service and status key", DEADLINE, || {
        let services = consul::agent_services(peers.cluster.agent_addr(SERVER));
        let registered = services
            .as_object()
            .is_some_and(|all| all.values().any(|s| s["Service"] == "consular"));
        registered
            && !peers
                .cluster
                .kv_keys("service/consular/consular/instances/")
                .is_empty()
    });
    assert_eq!(leader.log_lines_with("the token lacks"), 0);
    assert_alive(&mut leader);
    // A clean stop releases the lock and ends the sessions, so the next bridges find no holder.
    assert!(leader.terminate(Duration::from_secs(10)).success());

    for (i, rule) in rules(HA_POLICY).into_iter().enumerate() {
        let token = peers.cluster.acl_token(&[
            (&format!("base-{i}"), POLICY),
            (&format!("ha-lacking-{i}"), &without(HA_POLICY, rule)),
        ]);
        let bridge = start_lacking(&peers, &flags, &token, rule);
        assert_eq!(bridge.log_lines_with("became the leader"), 0);
    }
}
