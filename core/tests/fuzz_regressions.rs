//! Regressions found by the fuzz targets in `fuzz/`, replayed as plain calls so they run with
//! `cargo test` on stable. A test marked `#[ignore = "bug: …"]` reproduces a bug that is not fixed
//! yet: the fix removes the `ignore`.

use std::time::Duration;

use consular_core::{Bridge, Config, Method, Output, Request, Response, Target};

/// Drains the bridge and returns the requests it asked for.
fn requests(bridge: &mut Bridge) -> Vec<Request> {
    let mut out = Vec::new();
    loop {
        match bridge.poll_output() {
            Output::Request(r) => out.push(r),
            Output::Timeout(_) => return out,
            _ => {}
        }
    }
}

fn respond(bridge: &mut Bridge, request: &Request, body: &str) -> Vec<Request> {
    let response = Response {
        status: 200,
        body: body.as_bytes().to_vec(),
    };
    bridge.handle_response(Duration::ZERO, request.id, Ok(response));
    requests(bridge)
}

fn find<'r>(requests: &'r [Request], target: &Target, path: &str) -> &'r Request {
    requests
        .iter()
        .find(|r| &r.target == target && r.path_and_query == path)
        .unwrap_or_else(|| panic!("no request for {target} {path} in {requests:#?}"))
}

/// Found by fuzz/bridge_ops, fixed in 1d50534: the catalog lists a node whose address has
/// upper-case letters. The sync listed its services on `Target::Agent("node-1")` (lower-cased, as
/// `Target::Agent` documents) but purged on `Target::Agent("Node-1")`, the address as listed, so
/// drivers that key connections or limits by target saw two agents, and the per-target in-flight
/// limit was split between them.
#[test]
fn a_purge_deregisters_on_the_same_lower_cased_agent_it_listed() {
    let config = Config {
        sync_interval: Duration::from_secs(10),
        purge: true,
        ..Config::default()
    };
    let mut bridge = Bridge::new(config, Duration::ZERO);
    let reads = requests(&mut bridge);
    let apps = find(&reads, &Target::Marathon, "/v2/apps?embed=apps.tasks").clone();
    let kv = find(&reads, &Target::Consul, "/v1/kv/consular/?recurse").clone();
    let nodes = find(&reads, &Target::Consul, "/v1/catalog/nodes").clone();
    let critical = find(&reads, &Target::Consul, "/v1/health/state/critical").clone();
    respond(&mut bridge, &nodes, r#"[{"Node":"n1","Address":"Node-1"}]"#);
    let listings = respond(&mut bridge, &critical, "[]");
    let agent = Target::Agent("node-1".into());
    let listing = find(&listings, &agent, "/v1/agent/services").clone();
    respond(&mut bridge, &kv, "[]");
    respond(
        &mut bridge,
        &listing,
        r#"{"t1":{"ID":"t1","Service":"app","Tags":["consular-reg-id=consular","consular-app-id=/app"],"Port":0,"Address":"Node-1"}}"#,
    );
    let writes = respond(&mut bridge, &apps, r#"{"apps":[]}"#);
    let deregistration = writes
        .iter()
        .find(|r| r.path_and_query == "/v1/agent/service/deregister/t1")
        .unwrap_or_else(|| panic!("t1 is ours and dead: it is purged; got {writes:#?}"));
    assert_eq!(deregistration.method, Method::Put);
    assert_eq!(
        deregistration.target, agent,
        "deregistered on another spelling of the agent it was listed on"
    );
}
