//! Tests of the Consul test helper itself (tests/support/consul.rs) against a real Consul 1.8.7: the cluster
//! layout consular relies on, the agent behaviours the bridge's end-to-end tests will build on (registration,
//! catalog sync, deregistering an unknown ID, an agent dying and coming back), and the HTTP and KV helpers.
//!
//! Needs the Consul binary: `.ci/fetch-consul` (which `.ci/test` runs) or `CONSUL_BIN`.

mod support;

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::time::Duration;

use support::consul::{self, ConsulCluster};

/// Anti-entropy pushes an agent's change to the catalog within a second or so here; this leaves room for a busy CI.
const SYNC: Duration = Duration::from_secs(15);

/// Whether the catalog lists service `id` of `name` under `node`.
fn in_catalog(cluster: &ConsulCluster, name: &str, id: &str, node: &str) -> bool {
    cluster
        .catalog_service(name)
        .iter()
        .any(|s| s["ServiceID"] == id && s["Node"] == node)
}

#[test]
fn two_clients_register_sync_and_survive_an_agent_restart() {
    let mut cluster = ConsulCluster::start(2);

    // Layout: the server on 127.0.0.1 and agent-N on 127.0.0.N, one HTTP port for all.
    let port = cluster.http_port();
    assert_eq!(cluster.server_url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(cluster.agent_count(), 3);
    assert_eq!(cluster.agent_addr(1), ([127, 0, 0, 2], port).into());
    assert_eq!(cluster.agent_ip(2), Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(cluster.node_name(1), "agent-2");
    assert_eq!(
        cluster.catalog_nodes(),
        [
            ("agent-2".to_string(), "127.0.0.2".to_string()),
            ("agent-3".to_string(), "127.0.0.3".to_string()),
            ("consul-server".to_string(), "127.0.0.1".to_string()),
        ]
    );
    // The agent's own view agrees, and the version is the one the tests are written for.
    let self_info = consul::get_json(cluster.agent_addr(1), "/v1/agent/self");
    assert_eq!(self_info["Config"]["NodeName"], "agent-2");
    assert_eq!(self_info["Config"]["Version"], consul::CONSUL_VERSION);

    // Register on 127.0.0.2's agent, as consular does for a task on that host.
    let agent = cluster.agent_addr(1);
    let registration =
        r#"{"ID":"web-1","Name":"web","Address":"127.0.0.2","Port":31001,"Tags":["a"]}"#;
    let (status, body) = consul::put(agent, "/v1/agent/service/register", registration).unwrap();
    assert_eq!(status, 200, "register: {body}");
    let services = consul::agent_services(agent);
    assert_eq!(services["web-1"]["Service"], "web");
    assert_eq!(services["web-1"]["Port"], 31001);
    assert_eq!(services["web-1"]["Tags"], serde_json::json!(["a"]));
    // Agent-local state: the other client does not have it.
    assert!(consul::agent_services(cluster.agent_addr(2))
        .get("web-1")
        .is_none());
    consul::wait_until("web-1 in the catalog under agent-2", SYNC, || {
        in_catalog(&cluster, "web", "web-1", "agent-2")
    });

    // 1.8.7 without ACLs answers 200 to deregistering an ID it does not know (consul-api.md §4.2).
    let (status, body) = consul::put(agent, "/v1/agent/service/deregister/no-such-id", "").unwrap();
    assert_eq!((status, body.as_str()), (200, ""));

    // The agent dies: its address refuses connections.
    cluster.stop_agent(1);
    let err = consul::get(agent, "/v1/agent/services").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    // The server notices within seconds (serf failure detection), but a crash is not a leave: the node and its
    // service stay in the catalog, only marked critical.
    assert_eq!(cluster.serf_health(1).as_deref(), Some("passing"));
    consul::wait_until("the server to mark agent-2 critical", SYNC, || {
        cluster.serf_health(1).as_deref() == Some("critical")
    });
    assert!(in_catalog(&cluster, "web", "web-1", "agent-2"));

    // Back on the same address and data dir: it serves again and still has the service, because a client agent
    // persists services registered through its HTTP API in its data dir and reloads them at start.
    cluster.start_agent(1);
    assert_eq!(cluster.serf_health(1).as_deref(), Some("passing"));
    let services = consul::agent_services(agent);
    assert_eq!(services["web-1"]["Service"], "web");
    assert_eq!(services["web-1"]["Port"], 31001);
    consul::wait_until("web-1 still in the catalog after the restart", SYNC, || {
        in_catalog(&cluster, "web", "web-1", "agent-2")
    });

    // And it takes new work: deregistering removes the service from the agent and then from the catalog.
    let (status, body) = consul::put(agent, "/v1/agent/service/deregister/web-1", "").unwrap();
    assert_eq!(status, 200, "deregister: {body}");
    assert!(consul::agent_services(agent).get("web-1").is_none());
    consul::wait_until("web-1 gone from the catalog", SYNC, || {
        !in_catalog(&cluster, "web", "web-1", "agent-2")
    });
}

/// Runs beside the test above (cargo runs tests in parallel threads), which also checks that two clusters in one
/// process pick different ports.
#[test]
fn kv_helpers_round_trip_raw_bytes() {
    let cluster = ConsulCluster::start(0);
    assert_eq!(cluster.catalog_nodes().len(), 1);

    assert_eq!(cluster.kv_get_raw("consular/missing"), None);
    assert!(cluster.kv_keys("consular/").is_empty());

    // Not UTF-8, and a key that needs percent-encoding: both must survive the round trip unchanged.
    let bytes = [0u8, 0xff, b'{', b'"', 0x80, b'\n'];
    cluster.kv_put("consular/apps/odd key?x", bytes);
    cluster.kv_put("consular/apps/b", r#"{"json":"quoted"}"#);
    cluster.kv_put("consular/apps-other", "x");
    assert_eq!(
        cluster.kv_get_raw("consular/apps/odd key?x").as_deref(),
        Some(&bytes[..])
    );
    assert_eq!(
        cluster.kv_get_raw("consular/apps/b").as_deref(),
        Some(&br#"{"json":"quoted"}"#[..])
    );
    // A plain string prefix: `consular/apps` also matches `consular/apps-other`.
    assert_eq!(
        cluster.kv_keys("consular/apps/"),
        ["consular/apps/b", "consular/apps/odd key?x"]
    );
    assert_eq!(cluster.kv_keys("consular/apps").len(), 3);

    let (status, body) = consul::delete(cluster.agent_addr(0), "/v1/kv/consular/apps/b").unwrap();
    assert_eq!((status, body.trim()), (200, "true"));
    assert_eq!(cluster.kv_get_raw("consular/apps/b"), None);
}

#[test]
fn responses_are_parsed_with_chunked_and_sized_bodies() {
    let chunked =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4\r\n{\"a\"\r\n6;ext=1\r\n:[1,2]\r\n1\r\n}\r\n0\r\n\r\n";
    assert_eq!(
        consul::parse_response(chunked).unwrap(),
        (200, br#"{"a":[1,2]}"#.to_vec())
    );

    let sized = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc";
    assert_eq!(
        consul::parse_response(sized).unwrap(),
        (404, b"abc".to_vec())
    );

    // Read to EOF without a length, as `Connection: close` allows.
    let unframed = b"HTTP/1.1 500 Internal Server Error\r\n\r\nUnknown service";
    assert_eq!(
        consul::parse_response(unframed).unwrap(),
        (500, b"Unknown service".to_vec())
    );

    for broken in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
    ] {
        let err = consul::parse_response(broken).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    }

    assert_eq!(consul::encode_path("a/b c?d%é"), "a/b%20c%3Fd%25%C3%A9");
}
