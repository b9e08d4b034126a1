//! The JSON-file example of the Consul engine (`core/examples/file_sync.rs`, included here as a
//! module so its own code is what runs) against a real Consul 1.8.7 cluster: services in the file
//! appear on their agents, a change in the file changes them, a service removed from the file is
//! deregistered, labels follow to KV, and a service the file never had is left alone.
//!
//! ```sh
//! CONSUL_BIN=$(.ci/fetch-consul) cargo test -p consular --test file_example
//! ```

mod support;

#[allow(dead_code)]
#[path = "../../core/examples/file_sync.rs"]
mod file_sync;

use serde_json::Value;
use support::consul::{self, ConsulCluster};

const AGENT: usize = 1;

fn services(cluster: &ConsulCluster) -> Value {
    consul::agent_services(cluster.agent_addr(AGENT))
}

#[test]
fn a_file_of_services_converges_and_follows_its_changes() {
    let cluster = ConsulCluster::start(1);
    let agent_ip = cluster.agent_ip(AGENT).to_string();
    let consul = format!("127.0.0.1:{}", cluster.http_port());
    let foreign = r#"{"ID": "redis", "Name": "redis", "Port": 6379}"#;
    let (status, _) = consul::put(
        cluster.agent_addr(AGENT),
        "/v1/agent/service/register",
        foreign,
    )
    .unwrap();
    assert_eq!(status, 200);
    let mut bridge = file_sync::FileBridge::new(&consul);
    let file = |services: &str, owner: &str| {
        format!(r#"{{"services": [{services}], "labels": {{"web": {{"owner": "{owner}"}}}}}}"#)
    };
    let web = |id: &str, port: u16| {
        format!(
            r#"{{"id": "{id}", "name": "web", "host": "{agent_ip}", "port": {port}, "tags": ["v1"]}}"#
        )
    };

    // Added.
    let two = file(
        &format!("{}, {}", web("web-1", 8080), web("web-2", 8081)),
        "team-a",
    );
    bridge.sync(&two).unwrap();
    let listed = services(&cluster);
    assert_eq!(listed["web-1"]["Port"], 8080);
    assert_eq!(listed["web-2"]["Port"], 8081);
    let tags: Vec<&str> = listed["web-1"]["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["consular-reg-id=file-sync", "consular-app-id=/web", "v1"]
    );
    assert_eq!(
        cluster.kv_get_raw("consular/web/owner").as_deref(),
        Some(&b"\"team-a\""[..])
    );

    // Changed: one port and the label.
    let changed = file(
        &format!("{}, {}", web("web-1", 9090), web("web-2", 8081)),
        "team-b",
    );
    bridge.sync(&changed).unwrap();
    let listed = services(&cluster);
    assert_eq!(listed["web-1"]["Port"], 9090);
    assert_eq!(listed["web-2"]["Port"], 8081);
    assert_eq!(
        cluster.kv_get_raw("consular/web/owner").as_deref(),
        Some(&b"\"team-b\""[..])
    );

    // Removed.
    bridge.sync(&file(&web("web-1", 9090), "team-b")).unwrap();
    let listed = services(&cluster);
    assert!(listed.get("web-2").is_none(), "{listed}");
    assert_eq!(listed["web-1"]["Port"], 9090);
    assert_eq!(listed["redis"]["Port"], 6379, "a service not ours stays");

    // A bad file changes nothing.
    assert!(bridge.sync("{not json").is_err());
    assert!(services(&cluster).get("web-1").is_some());
}
