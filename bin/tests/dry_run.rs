//! End-to-end `--dry-run` against a real Consul 1.8.7 and the Marathon simulator (1.4, which has
//! callback subscriptions): it logs every write a sync would make, one line each, and a summary,
//! exits 0, and leaves Consul and Marathon's subscriptions byte-identical.

mod support;

use std::time::Duration;

use consular_sim::MarathonVersion;
use serde_json::json;
use support::bridge::run_to_exit;
use support::world::{register_directly, run_task, Peers, AGENT_2, OUR_TAG};

#[test]
fn a_dry_run_logs_every_write_it_would_make_and_makes_none() {
    let mut running = String::new();
    let peers = Peers::start(1, MarathonVersion::V1_4, |m| {
        m.put_app("/web", &[("team", "payments")]);
        running = run_task(m, "/web", "127.0.0.2", &[31000]);
    });
    // A dead service of ours and a stale label: a purge would remove both.
    register_directly(
        &peers.cluster,
        AGENT_2,
        json!({"Name": "web", "ID": "web.gone", "Tags": [OUR_TAG, "consular-app-id=/web"]}),
    );
    peers.cluster.kv_put("consular/web/stale", "\"x\"");
    let consul_before = peers.cluster.snapshot();
    let subscriptions_before = peers.marathon.with(|m| m.subscriptions().to_vec());

    let (marathon, consul) = (peers.marathon.url(), peers.cluster.server_url());
    let port = support::bridge::free_port().to_string();
    let args = [
        "--host",
        "127.0.0.1",
        "--marathon",
        marathon.as_str(),
        "--consul",
        consul.as_str(),
        "--purge",
        "--dry-run",
        "--port",
        port.as_str(),
    ];
    let no_env: [(&str, &str); 0] = [];
    let exited = run_to_exit(&args, &no_env, Duration::from_secs(30));
    let log = format!("{}{}", exited.stdout, exited.stderr);
    assert!(exited.status.success(), "{:?}\n{log}", exited.status);
    for line in [
        format!("dry run: would register {running} (web) on 127.0.0.2"),
        String::from("dry run: would deregister web.gone from 127.0.0.2"),
        String::from("dry run: would set KV key consular/web/team"),
        String::from("dry run: would delete KV key consular/web/stale"),
        String::from("dry run: 4 writes planned, none made"),
    ] {
        assert!(log.contains(&line), "no {line:?} in\n{log}");
    }
    assert_eq!(peers.cluster.snapshot(), consul_before, "Consul changed");
    assert_eq!(
        peers.marathon.with(|m| m.subscriptions().to_vec()),
        subscriptions_before,
        "Marathon's subscriptions changed"
    );
}
