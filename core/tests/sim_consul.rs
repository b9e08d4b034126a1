//! The Consul 1.8.7 simulator against the behaviour documented in `docs/consul-api.md` §4:
//! exact statuses and bodies for registration, deregistration, agent services, catalog, KV and
//! transactions, sessions and locks (TTL expiry, lock delay, check-session), blocking reads,
//! agents going down, and determinism.

use std::collections::BTreeSet;
use std::time::Duration;

use consular_core::Method;
use consular_sim::{SessionBehavior, SimConsul, SimResponse, SimService};
use serde_json::{json, Value};

const SERVER: &str = "127.0.0.1";
const AGENT_B: &str = "127.0.0.2";

fn cluster() -> SimConsul {
    let mut c = SimConsul::new();
    c.add_agent("testnode", SERVER);
    c.add_agent("agent-b", AGENT_B);
    c
}

fn put(c: &mut SimConsul, agent: &str, path: &str, body: &[u8]) -> SimResponse {
    c.handle(agent, Method::Put, path, body)
}

fn get(c: &mut SimConsul, agent: &str, path: &str) -> SimResponse {
    c.handle(agent, Method::Get, path, b"")
}

fn del(c: &mut SimConsul, path: &str) -> SimResponse {
    c.handle(SERVER, Method::Delete, path, b"")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn assert_text(r: &SimResponse, status: u16, text: &str) {
    assert_eq!((r.status, r.text().as_str()), (status, text));
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
}

/// What consular 1.3 sends (Python json.dumps spacing).
const BRIDGE_BODY: &[u8] = br#"{"Name": "my-app", "ID": "my-app.1", "Address": "slave-1", "Tags": ["consular-reg-id=r", "consular-app-id=/my-app"], "Port": 31000}"#;

#[test]
fn register_answers_an_empty_200_and_agent_services_has_the_1_8_7_shape() {
    let mut c = cluster();
    let r = put(&mut c, AGENT_B, "/v1/agent/service/register", BRIDGE_BODY);
    assert_eq!((r.status, r.content_type, r.body.len()), (200, "", 0));
    let r = get(&mut c, AGENT_B, "/v1/agent/services");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    // Byte for byte, in Go's field order.
    assert_eq!(
        r.text(),
        r#"{"my-app.1":{"ID":"my-app.1","Service":"my-app","Tags":["consular-reg-id=r","consular-app-id=/my-app"],"Meta":{},"Port":31000,"Address":"slave-1","Weights":{"Passing":1,"Warning":1},"EnableTagOverride":false}}"#
    );
    assert!(
        r.header("X-Consul-Index").is_none(),
        "agent endpoints are not indexed"
    );
    assert_eq!(
        c.services(AGENT_B).collect::<Vec<_>>(),
        [&SimService {
            id: "my-app.1".into(),
            name: "my-app".into(),
            address: "slave-1".into(),
            port: Some(31000),
            tags: vec!["consular-reg-id=r".into(), "consular-app-id=/my-app".into()],
        }]
    );
    assert_eq!(c.services(SERVER).count(), 0, "registered on agent-b only");
    assert_eq!(get(&mut c, SERVER, "/v1/agent/services").text(), "{}");
}

#[test]
fn ip_addresses_fill_tagged_addresses_like_1_8_7() {
    let mut c = cluster();
    let body = br#"{"Name":"s","Address":"127.0.0.2","Port":8080}"#;
    put(&mut c, AGENT_B, "/v1/agent/service/register", body);
    let services = get(&mut c, AGENT_B, "/v1/agent/services").json().unwrap();
    assert_eq!(
        services["s"]["TaggedAddresses"],
        json!({"lan_ipv4": {"Address": "127.0.0.2", "Port": 8080}, "wan_ipv4": {"Address": "127.0.0.2", "Port": 8080}})
    );
    assert_eq!(
        keys(&services["s"]),
        set(&[
            "ID",
            "Service",
            "Tags",
            "Meta",
            "Port",
            "Address",
            "TaggedAddresses",
            "Weights",
            "EnableTagOverride"
        ])
    );
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/register",
        br#"{"Name":"v6","Address":"::1"}"#,
    );
    let services = get(&mut c, AGENT_B, "/v1/agent/services").json().unwrap();
    assert_eq!(
        keys(&services["v6"]["TaggedAddresses"]),
        set(&["lan_ipv6", "wan_ipv6"])
    );
}

#[test]
fn registration_bodies_decode_like_go() {
    let mut c = cluster();
    let reg = |c: &mut SimConsul, body: &str| {
        put(c, SERVER, "/v1/agent/service/register", body.as_bytes())
    };
    // lowercase, odd case and snake_case keys are accepted.
    let r = reg(
        &mut c,
        r#"{"id":"a1","name":"a","port":80,"tags":["x"],"ADDRESS":"h","enable_tag_override":true,"check":{"ttl":"10s"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let s = &get(&mut c, SERVER, "/v1/agent/services").json().unwrap()["a1"];
    assert_eq!(
        (
            s["Service"].as_str(),
            s["Port"].as_i64(),
            s["Address"].as_str()
        ),
        (Some("a"), Some(80), Some("h"))
    );
    assert_eq!(s["EnableTagOverride"], true);
    // ID defaults to Name.
    reg(&mut c, r#"{"Name":"noid"}"#);
    assert!(c
        .services(SERVER)
        .any(|s| s.id == "noid" && s.port.is_none()));

    let cases = [
        (r#"{"Name":"s","Bogus":1}"#, "Request decode failed: json: unknown field \"Bogus\""),
        (r#"{"Name":"s","Port":"80"}"#, "Request decode failed: json: cannot unmarshal string into Go struct field .Port of type int"),
        (r#"{"Name":"s","Port":1.5}"#, "Request decode failed: json: cannot unmarshal number 1.5 into Go struct field .Port of type int"),
        (r#"{"Name":"s","Tags":"x"}"#, "Request decode failed: json: cannot unmarshal string into Go struct field .Tags of type []string"),
        (r#"{"Name":"s","Tags":[1]}"#, "Request decode failed: json: cannot unmarshal number into Go struct field .Tags of type string"),
        (r#"{"Name":"s","Meta":{"k":1}}"#, "Request decode failed: json: cannot unmarshal number into Go struct field .Meta of type string"),
        (r#"{"Name":"s","EnableTagOverride":"yes"}"#, "Request decode failed: json: cannot unmarshal string into Go struct field .EnableTagOverride of type bool"),
        // The first error in document order wins.
        (r#"{"Bogus":1,"Port":"x"}"#, "Request decode failed: json: unknown field \"Bogus\""),
        (r#"{"Port":"x","Bogus":1}"#, "Request decode failed: json: cannot unmarshal string into Go struct field .Port of type int"),
        ("", "Request decode failed: EOF"),
        ("[]", "Request decode failed: json: cannot unmarshal array into Go value of type structs.ServiceDefinition"),
        ("{", "Request decode failed: unexpected EOF"),
        ("{}", "Missing service name"),
        ("null", "Missing service name"),
        (r#"{"Name":""}"#, "Missing service name"),
        (r#"{"ID":"x","Port":80}"#, "Missing service name"),
        (r#"{"Name":"s","Check":{"HTTP":"http://h/"}}"#, "Invalid check: Interval must be > 0 for Script, HTTP, or TCP checks"),
        (r#"{"Name":"s","Check":{"HTTP":"http://h/","Interval":"10s","TTL":"10s"}}"#, "Invalid check: Interval and TTL cannot both be specified"),
        (r#"{"Name":"s","Check":{"TTL":""}}"#, "Request decode failed: time: invalid duration \"\""),
        (r#"{"Name":"s","Checks":[{}]}"#, "Invalid check: TTL must be > 0 for TTL checks"),
    ];
    let before = c.all_services();
    for (body, expected) in cases {
        let r = reg(&mut c, body);
        assert_text(&r, 400, expected);
    }
    assert_eq!(
        c.all_services(),
        before,
        "failed registrations change nothing"
    );
}

#[test]
fn re_registering_replaces_and_keeps_the_create_index() {
    let mut c = cluster();
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/register",
        br#"{"Name":"s","ID":"s1","Port":1,"Tags":["a"]}"#,
    );
    let first = get(&mut c, SERVER, "/v1/catalog/service/s").json().unwrap()[0].clone();
    let index = c.index();
    // Identical re-registration: no catalog write.
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/register",
        br#"{"Name":"s","ID":"s1","Port":1,"Tags":["a"]}"#,
    );
    assert_eq!(c.index(), index);
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/register",
        br#"{"Name":"s","ID":"s1","Port":2,"Tags":["b"]}"#,
    );
    let second = get(&mut c, SERVER, "/v1/catalog/service/s").json().unwrap()[0].clone();
    assert_eq!(
        (
            second["ServicePort"].as_i64(),
            second["ServiceTags"].clone()
        ),
        (Some(2), json!(["b"]))
    );
    assert_eq!(second["CreateIndex"], first["CreateIndex"]);
    assert!(second["ModifyIndex"].as_u64() > first["ModifyIndex"].as_u64());
    assert_eq!(c.services(AGENT_B).count(), 1);
}

#[test]
fn deregistration() {
    let mut c = cluster();
    put(&mut c, AGENT_B, "/v1/agent/service/register", BRIDGE_BODY);
    // Unknown ID, or the wrong agent: 200 and nothing done (1.8.7 without ACLs).
    for (agent, id) in [(AGENT_B, "nope"), (SERVER, "my-app.1")] {
        let r = put(
            &mut c,
            agent,
            &format!("/v1/agent/service/deregister/{id}"),
            b"",
        );
        assert_eq!((r.status, r.body.len(), r.content_type), (200, 0, ""));
    }
    assert_eq!(c.services(AGENT_B).count(), 1);
    let r = put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/deregister/my-app.1",
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(c.services(AGENT_B).count(), 0);
    assert_eq!(
        get(&mut c, SERVER, "/v1/catalog/service/my-app").text(),
        "[]"
    );
    assert_text(
        &put(&mut c, AGENT_B, "/v1/agent/service/deregister/", b""),
        500,
        "ServiceID missing",
    );
    // IDs are percent-decoded; a:b:c and slashes work.
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/register",
        br#"{"Name":"n","ID":"a:b/c d"}"#,
    );
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/deregister/a:b/c%20d",
        b"",
    );
    assert_eq!(c.services(AGENT_B).count(), 0);
}

#[test]
fn methods_and_routes() {
    let mut c = cluster();
    let r = get(&mut c, SERVER, "/v1/agent/service/register");
    assert_text(&r, 405, "method GET not allowed");
    assert_eq!(r.header("Allow"), Some("OPTIONS,PUT"));
    let r = c.handle(SERVER, Method::Post, "/v1/txn", b"[]");
    assert_text(&r, 405, "method POST not allowed");
    assert_eq!(r.header("Allow"), Some("OPTIONS,PUT"));
    let r = get(&mut c, SERVER, "/v1/txn");
    assert_eq!(r.status, 405);
    let r = c.handle(SERVER, Method::Post, "/v1/kv/x", b"");
    assert_eq!(r.header("Allow"), Some("OPTIONS,GET,PUT,DELETE"));
    assert_eq!(put(&mut c, SERVER, "/v1/agent/services", b"").status, 405);
    for path in ["/v1/nope", "/v2/apps", "/v1/agent/servicesx"] {
        let r = get(&mut c, SERVER, path);
        assert_eq!((r.status, r.body.len()), (404, 0), "{path}");
    }
    // Go's ServeMux: unclean paths and a missing subtree slash redirect.
    let r = get(&mut c, SERVER, "/v1/kv/a//b?raw");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/v1/kv/a/b?raw"));
    assert_eq!(
        get(&mut c, SERVER, "/v1/kv").header("Location"),
        Some("/v1/kv/")
    );
    assert_text(&get(&mut c, SERVER, "/v1/kv/%zz"), 400, "400 Bad Request");
    assert_text(
        &get(&mut c, SERVER, "/v1/kv/x?dc=dc2"),
        500,
        "No path to datacenter",
    );
    assert_text(
        &get(&mut c, SERVER, "/v1/kv/x?index=abc"),
        400,
        "Invalid index",
    );
    assert_text(
        &get(&mut c, SERVER, "/v1/kv/x?wait=forever"),
        400,
        "Invalid wait time",
    );
}

#[test]
fn catalog_nodes_keep_down_agents() {
    let mut c = cluster();
    c.add_agent("agent-c", "127.0.0.3");
    let r = get(&mut c, SERVER, "/v1/catalog/nodes");
    let nodes = r.json().unwrap();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Node"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["agent-b", "agent-c", "testnode"],
        "sorted by node name"
    );
    assert_eq!(
        keys(&nodes[0]),
        set(&[
            "ID",
            "Node",
            "Address",
            "Datacenter",
            "TaggedAddresses",
            "Meta",
            "CreateIndex",
            "ModifyIndex"
        ])
    );
    assert_eq!(nodes[0]["Datacenter"], "dc1");
    assert_eq!(nodes[0]["Address"], AGENT_B);
    assert_eq!(
        keys(&nodes[0]["TaggedAddresses"]),
        set(&["lan", "lan_ipv4", "wan", "wan_ipv4"])
    );
    assert!(r.header("X-Consul-Index").is_some());

    put(&mut c, AGENT_B, "/v1/agent/service/register", BRIDGE_BODY);
    c.set_agent_up(AGENT_B, false);
    assert!(!c.is_up(AGENT_B) && c.is_up(SERVER) && !c.is_up("10.9.9.9"));
    let r = get(&mut c, AGENT_B, "/v1/agent/services");
    assert_eq!(r.status, 503, "a down agent answers nothing useful");
    assert_eq!(get(&mut c, "10.9.9.9", "/v1/agent/services").status, 503);
    // Its node and services stay in the catalog; health shows serfHealth critical.
    let nodes = get(&mut c, SERVER, "/v1/catalog/nodes").json().unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 3);
    assert_eq!(c.all_services().len(), 1);
    let health = get(&mut c, SERVER, "/v1/health/service/my-app")
        .json()
        .unwrap();
    assert_eq!(health[0]["Checks"][0]["CheckID"], "serfHealth");
    assert_eq!(health[0]["Checks"][0]["Status"], "critical");
    assert_eq!(
        get(&mut c, SERVER, "/v1/health/service/my-app?passing").text(),
        "[]"
    );
    c.set_agent_up(AGENT_B, true);
    assert_eq!(
        get(&mut c, AGENT_B, "/v1/agent/services").json().unwrap()["my-app.1"]["Port"],
        31000
    );
    assert_eq!(
        get(&mut c, SERVER, "/v1/health/service/my-app?passing")
            .json()
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Without the server, client agents still serve local state but not the catalog or KV.
    c.set_agent_up(SERVER, false);
    assert_eq!(get(&mut c, AGENT_B, "/v1/agent/services").status, 200);
    for path in ["/v1/catalog/nodes", "/v1/kv/x", "/v1/status/leader"] {
        assert_text(&get(&mut c, AGENT_B, path), 500, "No known Consul servers");
    }
}

#[test]
fn catalog_services_and_service_instances() {
    let mut c = cluster();
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/register",
        br#"{"Name":"app","ID":"a1","Tags":["x","b"]}"#,
    );
    put(
        &mut c,
        SERVER,
        "/v1/agent/service/register",
        br#"{"Name":"app","ID":"a2","Tags":["a"]}"#,
    );
    let services = get(&mut c, SERVER, "/v1/catalog/services").json().unwrap();
    assert_eq!(services, json!({"app": ["a", "b", "x"], "consul": []}));
    let instances = get(&mut c, SERVER, "/v1/catalog/service/app")
        .json()
        .unwrap();
    let ids: Vec<&str> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ServiceID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1", "a2"], "agent-b sorts before testnode");
    assert_eq!(instances[0]["Node"], "agent-b");
    assert_eq!(instances[0]["Address"], AGENT_B);
    assert_eq!(instances[0]["ServiceAddress"], "");
    let tagged = get(&mut c, SERVER, "/v1/catalog/service/app?tag=a")
        .json()
        .unwrap();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(get(&mut c, SERVER, "/v1/catalog/service/nope").text(), "[]");
    // The server's own consul service is in the catalog, never in agent/services.
    assert_eq!(
        get(&mut c, SERVER, "/v1/catalog/service/consul")
            .json()
            .unwrap()[0]["ServicePort"],
        8300
    );
    assert!(c.services(SERVER).all(|s| s.name != "consul"));
    // Checks registered with a service start critical.
    put(
        &mut c,
        AGENT_B,
        "/v1/agent/service/register",
        br#"{"Name":"chk","Check":{"TTL":"10s"}}"#,
    );
    let health = get(&mut c, SERVER, "/v1/health/service/chk")
        .json()
        .unwrap();
    assert_eq!(health[0]["Checks"][1]["CheckID"], "service:chk");
    assert_eq!(health[0]["Checks"][1]["Status"], "critical");
    assert_eq!(
        get(&mut c, SERVER, "/v1/health/service/chk?passing").text(),
        "[]"
    );
}

#[test]
fn kv_get_put_and_raw() {
    let mut c = cluster();
    let r = get(&mut c, SERVER, "/v1/kv/consular/my-app/domain");
    assert_eq!((r.status, r.body.len(), r.content_type), (404, 0, ""));
    assert!(
        r.header("X-Consul-Index").is_some(),
        "404s carry the index too"
    );
    // The bridge writes JSON-encoded label values; the body is stored raw.
    let r = put(
        &mut c,
        SERVER,
        "/v1/kv/consular/my-app/domain",
        br#""example.com""#,
    );
    assert_eq!(
        (r.status, r.text().as_str(), r.content_type),
        (200, "true", "application/json")
    );
    let entry = get(&mut c, SERVER, "/v1/kv/consular/my-app/domain")
        .json()
        .unwrap();
    let kv = &entry[0];
    assert_eq!(
        keys(kv),
        set(&[
            "LockIndex",
            "Key",
            "Flags",
            "Value",
            "CreateIndex",
            "ModifyIndex"
        ])
    );
    assert_eq!(kv["Key"], "consular/my-app/domain");
    assert_eq!(kv["Value"], "ImV4YW1wbGUuY29tIg==");
    assert_eq!(kv["CreateIndex"], kv["ModifyIndex"]);
    assert_eq!(
        get(&mut c, SERVER, "/v1/kv/consular/my-app/domain?raw").body,
        br#""example.com""#
    );
    assert_eq!(c.kv()["consular/my-app/domain"], br#""example.com""#);
    // An empty body stores an empty value, shown as null.
    put(&mut c, SERVER, "/v1/kv/consular/my-app/empty", b"");
    assert_eq!(
        get(&mut c, SERVER, "/v1/kv/consular/my-app/empty")
            .json()
            .unwrap()[0]["Value"],
        Value::Null
    );
    // Overwrite: ModifyIndex moves, CreateIndex stays.
    let created = c.kv_entry("consular/my-app/domain").unwrap();
    put(
        &mut c,
        SERVER,
        "/v1/kv/consular/my-app/domain?flags=42",
        b"x",
    );
    let modified = c.kv_entry("consular/my-app/domain").unwrap();
    assert_eq!(modified.create_index, created.create_index);
    assert!(modified.modify_index > created.modify_index);
    assert_eq!(modified.flags, 42);
    // Percent-decoded keys.
    put(&mut c, SERVER, "/v1/kv/sp%20ace/x%2Fy", b"1");
    assert!(c.kv().contains_key("sp ace/x/y"));
    // KV is cluster-wide: any agent serves it.
    assert_eq!(get(&mut c, AGENT_B, "/v1/kv/sp%20ace/x/y?raw").text(), "1");
    assert_text(&get(&mut c, SERVER, "/v1/kv/"), 400, "Missing key name");
    assert_text(
        &put(&mut c, SERVER, "/v1/kv/", b"x"),
        400,
        "Missing key name",
    );
    let r = put(&mut c, SERVER, "/v1/kv/big", &vec![b'x'; 524_289]);
    assert_eq!(r.status, 413);
    assert!(r
        .text()
        .starts_with("Request body(524289 bytes) too large, max size: 524288 bytes."));
    assert_text(
        &put(&mut c, SERVER, "/v1/kv/f?flags=x", b""),
        500,
        "strconv.ParseUint: parsing \"x\": invalid syntax",
    );
}

#[test]
fn kv_check_and_set() {
    let mut c = cluster();
    let cas = |c: &mut SimConsul, q: &str, body: &[u8]| {
        put(c, SERVER, &format!("/v1/kv/k?{q}"), body).text()
    };
    assert_eq!(
        cas(&mut c, "cas=0", b"1"),
        "true",
        "create-only succeeds when absent"
    );
    assert_eq!(
        cas(&mut c, "cas=0", b"2"),
        "false",
        "…and fails when present"
    );
    let index = c.kv_entry("k").unwrap().modify_index;
    assert_eq!(cas(&mut c, &format!("cas={}", index + 7), b"3"), "false");
    assert_eq!(c.kv()["k"], b"1");
    assert_eq!(cas(&mut c, &format!("cas={index}"), b"4"), "true");
    assert_eq!(c.kv()["k"], b"4");
    assert_eq!(
        put(&mut c, SERVER, "/v1/kv/absent?cas=5", b"x").text(),
        "false"
    );
    assert_text(
        &put(&mut c, SERVER, "/v1/kv/k?cas=abc", b""),
        500,
        "strconv.ParseUint: parsing \"abc\": invalid syntax",
    );
    assert_text(
        &put(&mut c, SERVER, "/v1/kv/k?cas", b""),
        500,
        "strconv.ParseUint: parsing \"\": invalid syntax",
    );
    let r = put(&mut c, SERVER, "/v1/kv/k?cas=0&acquire=x", b"");
    assert_text(&r, 400, "Conflicting flags: acquire=x&cas=0");
    assert_text(
        &put(&mut c, SERVER, "/v1/kv/k?acquire=short", b""),
        500,
        "failed session lookup: index error: UUID must be 36 characters",
    );
}

#[test]
fn kv_delete() {
    let mut c = cluster();
    for k in ["pfx/a", "pfx/ab", "pfx/a/x", "pfx/b", "other"] {
        c.put_kv(k, b"v");
    }
    assert_eq!(
        del(&mut c, "/v1/kv/missing").text(),
        "true",
        "a missing key still gives true"
    );
    let index = c.kv_entry("pfx/b").unwrap().modify_index;
    assert_eq!(
        del(&mut c, "/v1/kv/pfx/b?cas=0").text(),
        "false",
        "cas=0 never deletes"
    );
    assert_eq!(
        del(&mut c, &format!("/v1/kv/pfx/b?cas={}", index + 1)).text(),
        "false"
    );
    assert!(c.kv().contains_key("pfx/b"));
    assert_eq!(
        del(&mut c, &format!("/v1/kv/pfx/b?cas={index}")).text(),
        "true"
    );
    assert!(!c.kv().contains_key("pfx/b"));
    // recurse is a plain string prefix: pfx/a takes pfx/ab with it.
    assert_eq!(del(&mut c, "/v1/kv/pfx/a?recurse").text(), "true");
    assert_eq!(c.kv().keys().collect::<Vec<_>>(), ["other"]);
    assert_text(
        &del(&mut c, "/v1/kv/x?recurse&cas=1"),
        400,
        "Conflicting flags: cas=1&recurse=",
    );
    assert_text(&del(&mut c, "/v1/kv/"), 400, "Missing key name");
    assert_eq!(del(&mut c, "/v1/kv/?recurse").text(), "true");
    assert!(c.kv().is_empty());
}

#[test]
fn kv_recurse_and_key_listings() {
    let mut c = cluster();
    for k in [
        "consular/apps/a",
        "consular/apps/b/x",
        "consular/apps/b/y",
        "consular/apps/d",
        "pfx/a",
        "pfx/ab",
    ] {
        c.put_kv(k, b"v");
    }
    let list = |c: &mut SimConsul, q: &str| get(c, SERVER, &format!("/v1/kv/{q}")).json().unwrap();
    // The recurse pitfall: pfx/a matches pfx/ab.
    let entries = list(&mut c, "pfx/a?recurse");
    let found: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["pfx/a", "pfx/ab"]);
    let r = get(&mut c, SERVER, "/v1/kv/pfx/a/?recurse");
    assert_eq!(
        (r.status, r.body.len()),
        (404, 0),
        "a trailing / means a directory"
    );
    // ?recurse counts when present, whatever its value.
    assert_eq!(
        list(&mut c, "pfx/a?recurse=false")
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // ?keys implies recurse; separator lists one level (observed on 1.8.7).
    assert_eq!(list(&mut c, "pfx?keys"), json!(["pfx/a", "pfx/ab"]));
    assert_eq!(
        list(&mut c, "consular/?keys&separator=/"),
        json!(["consular/apps/"])
    );
    assert_eq!(
        list(&mut c, "consular/apps/?keys&separator=/"),
        json!(["consular/apps/a", "consular/apps/b/", "consular/apps/d"])
    );
    assert_eq!(
        list(&mut c, "consular?keys&separator=/"),
        json!(["consular/"])
    );
    assert_eq!(get(&mut c, SERVER, "/v1/kv/none/?keys").status, 404);
    // Go splits queries on ';' too (before Go 1.17).
    assert_eq!(
        list(&mut c, "consular/?keys;separator=/"),
        json!(["consular/apps/"])
    );
}

#[test]
fn transactions_commit_atomically() {
    let mut c = cluster();
    c.put_kv("t/old", b"old");
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "t/a", "Value": "YQ=="}},
        {"KV": {"Verb": "get", "Key": "t/old"}},
        {"KV": {"Verb": "delete", "Key": "t/old"}},
        {"KV": {"Verb": "check-not-exists", "Key": "t/none"}},
        {"KV": {"Verb": "cas", "Key": "t/b", "Value": "Yg==", "Index": 0}}
    ]);
    let before = c.index();
    let r = put(&mut c, SERVER, "/v1/txn", ops.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json().unwrap();
    assert_eq!(keys(&body), set(&["Results", "Errors"]));
    assert_eq!(body["Errors"], Value::Null);
    let results = body["Results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        3,
        "delete and check-not-exists add no result"
    );
    assert_eq!(results[0]["KV"]["Key"], "t/a");
    assert_eq!(
        results[0]["KV"]["Value"],
        Value::Null,
        "only get returns values"
    );
    assert_eq!(results[1]["KV"]["Value"], "b2xk");
    assert_eq!(c.index(), before + 1, "one transaction, one index");
    assert_eq!(results[0]["KV"]["ModifyIndex"], before + 1);
    assert_eq!(results[2]["KV"]["ModifyIndex"], before + 1);
    assert_eq!(c.kv().keys().collect::<Vec<_>>(), ["t/a", "t/b"]);
}

#[test]
fn a_failing_transaction_rolls_everything_back() {
    let mut c = cluster();
    c.put_kv("t/a", b"1");
    let index = c.kv_entry("t/a").unwrap().modify_index;
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "t/new", "Value": "eA=="}},
        {"KV": {"Verb": "delete-tree", "Key": "t/"}},
        {"KV": {"Verb": "cas", "Key": "t/a", "Value": "eA==", "Index": 1}},
        {"KV": {"Verb": "check-index", "Key": "t/x", "Index": 1}},
        {"KV": {"Verb": "get", "Key": "nonexistent"}},
        {"KV": {"Verb": "bogus", "Key": "k"}},
        {"KV": {"Verb": "set", "Key": "x", "Value": "eA=="}},
        {"KV": {"Verb": "check-not-exists", "Key": "x"}}
    ]);
    let before = (c.kv().clone(), c.index());
    let r = put(&mut c, SERVER, "/v1/txn", ops.to_string().as_bytes());
    assert_eq!(r.status, 409);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.json().unwrap(),
        json!({"Results": null, "Errors": [
            {"OpIndex": 2, "What": "failed to set key \"t/a\", index is stale"},
            {"OpIndex": 3, "What": "key \"t/x\" doesn't exist"},
            {"OpIndex": 4, "What": "key \"nonexistent\" doesn't exist"},
            {"OpIndex": 5, "What": "unknown KV verb \"bogus\""},
            {"OpIndex": 7, "What": "key \"x\" exists"}
        ]})
    );
    assert_eq!((c.kv().clone(), c.index()), before, "nothing applied");
    // More messages.
    let cases = [
        (
            json!({"Verb": "check-index", "Key": "t/a", "Index": 1}),
            format!("failed index check for key \"t/a\", current modify index {index} != 1"),
        ),
        (
            json!({"Verb": "delete-cas", "Key": "t/a", "Index": index + 1}),
            "failed to delete key \"t/a\", index is stale".to_string(),
        ),
        (
            json!({"Verb": "lock", "Key": "t/a", "Session": "0cfe6b35-0000-4000-8000-000000000000"}),
            "invalid session \"0cfe6b35-0000-4000-8000-000000000000\"".to_string(),
        ),
    ];
    for (op, what) in cases {
        let r = put(
            &mut c,
            SERVER,
            "/v1/txn",
            json!([{"KV": op}]).to_string().as_bytes(),
        );
        assert_eq!(r.status, 409);
        assert_eq!(r.json().unwrap()["Errors"][0]["What"], what);
    }
    // delete-cas on a missing key succeeds.
    let r = put(
        &mut c,
        SERVER,
        "/v1/txn",
        br#"[{"KV":{"Verb":"delete-cas","Key":"gone","Index":3}}]"#,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn transaction_limits_and_parse_errors() {
    let mut c = cluster();
    let op = json!({"KV": {"Verb": "set", "Key": "k", "Value": "eA=="}});
    let r = put(
        &mut c,
        SERVER,
        "/v1/txn",
        json!(vec![op.clone(); 65]).to_string().as_bytes(),
    );
    assert_text(
        &r,
        413,
        "Transaction contains too many operations (65 > 64)",
    );
    assert!(c.kv().is_empty());
    let r = put(
        &mut c,
        SERVER,
        "/v1/txn",
        json!(vec![op; 64]).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    let r = put(&mut c, SERVER, "/v1/txn", b"{not json");
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("Failed to parse body: "),
        "{}",
        r.text()
    );
    let r = put(
        &mut c,
        SERVER,
        "/v1/txn",
        br#"[{"KV":{"Verb":"set","Key":"k","Value":"!!!!"}}]"#,
    );
    assert_text(
        &r,
        400,
        "Failed to parse body: illegal base64 data at input byte 0",
    );
    let r = put(&mut c, SERVER, "/v1/txn", br#"{"KV":{}}"#);
    assert_eq!(r.status, 400);
    // A read-only transaction takes the read path and carries query metadata.
    let r = put(
        &mut c,
        SERVER,
        "/v1/txn",
        br#"[{"KV":{"Verb":"get","Key":"k"}}]"#,
    );
    let body = r.json().unwrap();
    assert_eq!(
        keys(&body),
        set(&[
            "Results",
            "Errors",
            "Index",
            "LastContact",
            "KnownLeader",
            "ConsistencyLevel"
        ])
    );
    assert_eq!(body["Results"][0]["KV"]["Value"], "eA==");
    let r = put(&mut c, SERVER, "/v1/txn", b"[]");
    assert_eq!(r.json().unwrap()["Results"], json!([]));
}

#[test]
fn status_and_agent_self() {
    let mut c = cluster();
    let r = get(&mut c, AGENT_B, "/v1/status/leader");
    assert_eq!((r.status, r.text().as_str()), (200, "\"127.0.0.1:8300\""));
    assert_eq!(
        get(&mut c, SERVER, "/v1/status/peers").json().unwrap(),
        json!(["127.0.0.1:8300"])
    );
    let me = get(&mut c, AGENT_B, "/v1/agent/self").json().unwrap();
    assert_eq!(
        keys(&me),
        set(&["Config", "DebugConfig", "Coord", "Member", "Stats", "Meta"])
    );
    assert_eq!(
        keys(&me["Config"]),
        set(&[
            "Datacenter",
            "NodeName",
            "NodeID",
            "Revision",
            "Server",
            "Version"
        ])
    );
    assert_eq!(me["Config"]["NodeName"], "agent-b");
    assert_eq!(me["Config"]["Version"], "1.8.7");
    assert_eq!(me["Config"]["Server"], false);
    assert_eq!(me["Member"]["Addr"], AGENT_B);
    assert_eq!(
        get(&mut c, SERVER, "/v1/agent/self").json().unwrap()["Config"]["Server"],
        true
    );
    let single = get(&mut c, SERVER, "/v1/agent/service/nope");
    assert_text(&single, 404, "unknown service ID: nope");
    put(
        &mut c,
        SERVER,
        "/v1/agent/service/register",
        br#"{"Name":"s"}"#,
    );
    let single = get(&mut c, SERVER, "/v1/agent/service/s");
    assert!(single.json().unwrap()["ContentHash"].is_string());
    assert_eq!(
        single.header("X-Consul-ContentHash"),
        single.json().unwrap()["ContentHash"].as_str()
    );
}

#[test]
fn output_uses_go_escaping_and_optional_pretty_printing() {
    let mut c = cluster();
    put(
        &mut c,
        SERVER,
        "/v1/agent/service/register",
        br#"{"Name":"s","Tags":["<a&b>"]}"#,
    );
    let text = get(&mut c, SERVER, "/v1/agent/services").text();
    assert!(
        text.contains(r#""Tags":["\u003ca\u0026b\u003e"]"#),
        "{text}"
    );
    let pretty = get(&mut c, SERVER, "/v1/status/peers?pretty").text();
    assert_eq!(pretty, "[\n    \"127.0.0.1:8300\"\n]\n");
    c.pretty = true;
    assert!(get(&mut c, SERVER, "/v1/agent/services")
        .text()
        .starts_with("{\n    \"s\": {\n"));
}

#[test]
fn request_counts_split_reads_and_writes() {
    let mut c = cluster();
    put(&mut c, AGENT_B, "/v1/agent/service/register", BRIDGE_BODY);
    put(&mut c, SERVER, "/v1/kv/a", b"1");
    del(&mut c, "/v1/kv/a");
    get(&mut c, SERVER, "/v1/catalog/nodes");
    get(&mut c, AGENT_B, "/v1/agent/services");
    assert_eq!((c.counts().reads, c.counts().writes), (2, 3));
    // Seeding through the API is not a request.
    c.register(
        SERVER,
        SimService {
            id: "foreign".into(),
            name: "f".into(),
            ..SimService::default()
        },
    );
    c.put_kv("k", b"v");
    assert_eq!((c.counts().reads, c.counts().writes), (2, 3));
    assert!(c.services(SERVER).any(|s| s.id == "foreign"));
}

fn script(c: &mut SimConsul) -> Vec<u8> {
    let mut out = Vec::new();
    let requests: [(Method, &str, &str, &[u8]); 9] = [
        (
            Method::Put,
            AGENT_B,
            "/v1/session/create",
            br#"{"TTL":"10s"}"#,
        ),
        (
            Method::Put,
            SERVER,
            "/v1/kv/consular/leader?acquire=00000001-5e55-4000-8000-000000000001",
            b"me",
        ),
        (
            Method::Get,
            SERVER,
            "/v1/session/info/00000001-5e55-4000-8000-000000000001",
            b"",
        ),
        (
            Method::Put,
            AGENT_B,
            "/v1/agent/service/register",
            BRIDGE_BODY,
        ),
        (Method::Put, SERVER, "/v1/kv/consular/a/k", b"\"v\""),
        (
            Method::Put,
            SERVER,
            "/v1/txn",
            br#"[{"KV":{"Verb":"set","Key":"x","Value":"eA=="}}]"#,
        ),
        (Method::Get, SERVER, "/v1/kv/?recurse", b""),
        (Method::Get, SERVER, "/v1/catalog/nodes", b""),
        (Method::Get, SERVER, "/v1/health/service/my-app", b""),
    ];
    for (method, agent, path, body) in requests {
        let r = c.handle(agent, method, path, body);
        out.extend_from_slice(format!("{} {:?}\n", r.status, r.headers).as_bytes());
        out.extend_from_slice(&r.body);
    }
    out
}

#[test]
fn the_simulator_is_deterministic() {
    assert_eq!(script(&mut cluster()), script(&mut cluster()));
}

#[test]
fn no_input_makes_it_panic() {
    let paths = [
        "/",
        "",
        "x",
        "/v1/",
        "/v1/kv",
        "/v1/kv/",
        "/v1/kv/%",
        "/v1/kv/a?recurse&keys&separator=",
        "/v1/kv/a?cas=18446744073709551616",
        "/v1/kv/a?flags=-1",
        "/v1/kv/\u{e9}?raw",
        "/v1/txn",
        "/v1/agent/service/register",
        "/v1/agent/service/deregister/%2F%2F",
        "/v1/agent/service/",
        "/v1/catalog/service/",
        "/v1/health/service/?passing&tag",
        "/v1/kv/a/../../..",
        "/v1/kv/a;b?;;",
        "/v1/kv/a?dc=&index=1&wait=1.5h",
        "/v1/kv/a?acquire=00000001-5e55-4000-8000-000000000001",
        "/v1/kv/a?release=00000001-5e55-4000-8000-000000000001",
        "/v1/kv/a?acquire=%ff%fe",
        "/v1/session/create",
        "/v1/session/renew/00000001-5e55-4000-8000-000000000001",
        "/v1/session/destroy/00000001-5e55-4000-8000-000000000001",
        "/v1/session/info/%00",
        "/v1/session/node/",
        "/v1/session/list?index=1",
    ];
    let bodies: [&[u8]; 12] = [
        b"{\"TTL\":\"10s\",\"LockDelay\":-1e300,\"Checks\":[1],\"ServiceChecks\":[{\"ID\":2}]}",
        b"{\"LockDelay\":\"9999999999999h\",\"Node\":null,\"NodeChecks\":{}}",
        b"[{\"KV\":{\"Verb\":\"lock\",\"Key\":\"a\",\"Session\":\"00000001-5e55-4000-8000-000000000001\"}}]",
        b"",
        b"null",
        b"[null, 1, {\"KV\":null}, {\"KV\":{\"Verb\":1}}]",
        b"{\"Name\":\"n\",\"Port\":99999999999999999999}",
        b"{\"Name\":\"n\",\"Port\":-5,\"Checks\":[1]}",
        b"{\"Name\":\"n\",\"TaggedAddresses\":{\"lan\":{\"Address\":1}},\"Weights\":[]}",
        b"[{\"KV\":{\"Verb\":\"get-tree\",\"Key\":\"\",\"Index\":-1}}]",
        &[0xff, 0x00, b'['],
        b"{\"Name\":\"n\",\"Check\":{\"Interval\":\"1x\",\"HTTP\":5}}",
    ];
    let mut c = cluster();
    c.put_kv("a", b"\x00\x01binary");
    session(&mut c, SERVER, r#"{"TTL":"10s","LockDelay":"1s"}"#);
    for path in paths {
        for method in [Method::Get, Method::Put, Method::Post, Method::Delete] {
            for body in bodies {
                for agent in [SERVER, AGENT_B, "nowhere"] {
                    let r = c.handle(agent, method, path, body);
                    c.advance(Duration::from_secs(1));
                    assert!((200..600).contains(&r.status));
                    if r.content_type == "application/json" {
                        assert!(r.json().is_some(), "{method} {path}: {}", r.text());
                    }
                }
            }
        }
    }
    // A port outside u16 is kept as sent but reads back as None.
    let r = put(
        &mut c,
        SERVER,
        "/v1/agent/service/register",
        br#"{"Name":"big","Port":70000}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        get(&mut c, SERVER, "/v1/agent/services").json().unwrap()["big"]["Port"],
        70000
    );
    assert!(c
        .services(SERVER)
        .any(|s| s.id == "big" && s.port.is_none()));
}

// Sessions and locks (Consul 1.8.7, checked against the real binary).

fn session(c: &mut SimConsul, agent: &str, body: &str) -> String {
    let r = put(c, agent, "/v1/session/create", body.as_bytes());
    assert_eq!(r.status, 200, "{body}: {}", r.text());
    r.json().unwrap()["ID"].as_str().unwrap().to_string()
}

fn acquire(c: &mut SimConsul, key: &str, session: &str, value: &str) -> SimResponse {
    put(
        c,
        SERVER,
        &format!("/v1/kv/{key}?acquire={session}"),
        value.as_bytes(),
    )
}

fn release(c: &mut SimConsul, key: &str, session: &str, value: &str) -> SimResponse {
    put(
        c,
        SERVER,
        &format!("/v1/kv/{key}?release={session}"),
        value.as_bytes(),
    )
}

fn kv_json(c: &mut SimConsul, key: &str) -> Value {
    let r = get(c, SERVER, &format!("/v1/kv/{key}"));
    assert_eq!(r.status, 200, "{key}");
    r.json().unwrap()[0].clone()
}

fn txn(c: &mut SimConsul, ops: Value) -> SimResponse {
    put(c, SERVER, "/v1/txn", ops.to_string().as_bytes())
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn session_create_defaults_and_info_shape() {
    let mut c = cluster();
    let r = put(
        &mut c,
        SERVER,
        "/v1/session/create",
        br#"{"Name":"consular-leader","TTL":"15s","LockDelay":"1s","Behavior":"release","Bogus":1}"#,
    );
    assert_eq!((r.status, r.content_type), (200, "application/json"));
    assert!(r.header("X-Consul-Index").is_none());
    assert_eq!(
        r.text(),
        r#"{"ID":"00000001-5e55-4000-8000-000000000001"}"#,
        "IDs come from a counter"
    );
    let id = "00000001-5e55-4000-8000-000000000001";
    let r = get(&mut c, SERVER, &format!("/v1/session/info/{id}"));
    assert_eq!(r.status, 200);
    let index = c.index();
    assert_eq!(r.header("X-Consul-Index"), Some(index.to_string().as_str()));
    assert_eq!(
        r.text(),
        format!(
            r#"[{{"ID":"{id}","Name":"consular-leader","Node":"testnode","LockDelay":1000000000,"Behavior":"release","TTL":"15s","NodeChecks":["serfHealth"],"ServiceChecks":null,"CreateIndex":{index},"ModifyIndex":{index}}}]"#
        )
    );
    // An empty body takes every default; the node is the receiving agent's.
    let b = session(&mut c, AGENT_B, "");
    assert_eq!(b, "00000002-5e55-4000-8000-000000000002");
    let info = get(&mut c, SERVER, &format!("/v1/session/info/{b}"))
        .json()
        .unwrap();
    assert_eq!(info[0]["Node"], "agent-b");
    assert_eq!(info[0]["LockDelay"], 15_000_000_000i64);
    assert_eq!(info[0]["TTL"], "");
    assert_eq!(info[0]["Behavior"], "release");
    let s = c.session(&b).unwrap();
    assert_eq!(
        (s.ttl, s.lock_delay, s.expires_at, s.behavior),
        (None, 15 * SECOND, None, SessionBehavior::Release)
    );
    // LockDelay: a number of nanoseconds, below 1000 read as seconds (observed).
    let cases = [
        (r#"{"LockDelay":15}"#, 15_000_000_000i64),
        (r#"{"LockDelay":"0s"}"#, 0),
        (r#"{"LockDelay":"61s"}"#, 61_000_000_000),
        (r#"{"LockDelay":"-1s"}"#, -1_000_000_000_000_000_000),
    ];
    for (body, ns) in cases {
        let id = session(&mut c, SERVER, body);
        let info = get(&mut c, SERVER, &format!("/v1/session/info/{id}"))
            .json()
            .unwrap();
        assert_eq!(info[0]["LockDelay"], ns, "{body}");
    }
    // Checks: the legacy field shows only when it is not the default.
    let cases = [
        (r#"{"Checks":[]}"#, json!([]), None),
        (r#"{"Checks":null}"#, json!([]), None),
        (r#"{"NodeChecks":[]}"#, json!([]), None),
        (
            r#"{"Checks":["serfHealth"],"NodeChecks":[]}"#,
            json!([]),
            None,
        ),
    ];
    for (body, node_checks, checks) in cases {
        let id = session(&mut c, SERVER, body);
        let info = get(&mut c, SERVER, &format!("/v1/session/info/{id}"))
            .json()
            .unwrap();
        assert_eq!(info[0]["NodeChecks"], node_checks, "{body}");
        assert_eq!(info[0].get("Checks").cloned(), checks, "{body}");
    }
    put(
        &mut c,
        SERVER,
        "/v1/agent/service/register",
        br#"{"Name":"api","ID":"api1","Check":{"TTL":"30s","Status":"passing"}}"#,
    );
    let id = session(
        &mut c,
        SERVER,
        r#"{"Checks":["serfHealth","service:api1"]}"#,
    );
    let info = get(&mut c, SERVER, &format!("/v1/session/info/{id}"))
        .json()
        .unwrap();
    assert_eq!(
        keys(&info[0]),
        set(&[
            "ID",
            "Name",
            "Node",
            "LockDelay",
            "Behavior",
            "TTL",
            "NodeChecks",
            "ServiceChecks",
            "Checks",
            "CreateIndex",
            "ModifyIndex"
        ])
    );
    assert_eq!(info[0]["Checks"], json!(["serfHealth", "service:api1"]));
    let id = session(
        &mut c,
        SERVER,
        r#"{"ServiceChecks":[{"ID":"service:api1"}]}"#,
    );
    let info = get(&mut c, SERVER, &format!("/v1/session/info/{id}"))
        .json()
        .unwrap();
    assert_eq!(
        info[0]["ServiceChecks"],
        json!([{"ID": "service:api1", "Namespace": ""}])
    );
    // list and node.
    let all = get(&mut c, SERVER, "/v1/session/list").json().unwrap();
    assert_eq!(all.as_array().unwrap().len(), c.sessions().len());
    let on_b = get(&mut c, SERVER, "/v1/session/node/agent-b")
        .json()
        .unwrap();
    assert_eq!(on_b.as_array().unwrap().len(), 1);
    assert_eq!(on_b[0]["ID"], b.as_str());
}

#[test]
fn session_create_errors_like_1_8_7() {
    let mut c = cluster();
    put(
        &mut c,
        SERVER,
        "/v1/agent/service/register",
        br#"{"Name":"web","ID":"web1","Check":{"TTL":"30s"}}"#,
    );
    let cases: [(&str, u16, &str); 13] = [
        (
            r#"{"TTL":"5s"}"#,
            500,
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]",
        ),
        (
            r#"{"TTL":"9.9s"}"#,
            500,
            "Invalid Session TTL '9900000000', must be between [10s=24h0m0s]",
        ),
        (
            r#"{"TTL":"86401s"}"#,
            500,
            "Invalid Session TTL '86401000000000', must be between [10s=24h0m0s]",
        ),
        (
            r#"{"TTL":"abc"}"#,
            500,
            "Session TTL 'abc' invalid: time: invalid duration \"abc\"",
        ),
        (
            r#"{"TTL":"5s","Behavior":"bogus"}"#,
            500,
            "Invalid Behavior setting 'bogus'",
        ),
        (
            r#"{"LockDelay":"abc"}"#,
            400,
            "Request decode failed: time: invalid duration \"abc\"",
        ),
        (
            r#"{"Name":5}"#,
            400,
            "Request decode failed: json: cannot unmarshal number into Go struct field .Name of type string",
        ),
        (
            r#"{"TTL":15}"#,
            400,
            "Request decode failed: json: cannot unmarshal number into Go struct field .TTL of type string",
        ),
        (
            "not json",
            400,
            "Request decode failed: invalid character 'o' in literal null (expecting 'u')",
        ),
        (
            r#"{"Checks":["nope"]}"#,
            500,
            "Missing check 'nope' registration",
        ),
        (
            r#"{"Checks":["service:web1"]}"#,
            500,
            "Check 'service:web1' is in critical state",
        ),
        (r#"{"Node":"nope"}"#, 500, "Missing node registration"),
        (r#"{"Node":""}"#, 500, "Must provide Node"),
    ];
    for (body, status, text) in cases {
        let r = put(&mut c, SERVER, "/v1/session/create", body.as_bytes());
        if body == "not json" {
            // Syntax error texts only approximate Go's.
            assert_eq!(r.status, status);
            assert!(r
                .text()
                .starts_with("Request decode failed: invalid character"));
            continue;
        }
        assert_text(&r, status, text);
    }
    assert!(c.sessions().is_empty());
    // The bounds themselves, and 0 (no TTL), are accepted.
    for ttl in ["10s", "86400s", "24h", "0s", "1m", ""] {
        session(&mut c, SERVER, &format!(r#"{{"TTL":"{ttl}"}}"#));
    }
    assert_eq!(c.sessions()[0].id, "00000001-5e55-4000-8000-000000000001");
    // A node whose agent is down has a critical serfHealth.
    c.set_agent_up(AGENT_B, false);
    assert_text(
        &put(
            &mut c,
            SERVER,
            "/v1/session/create",
            br#"{"Node":"agent-b"}"#,
        ),
        500,
        "Check 'serfHealth' is in critical state",
    );
}

#[test]
fn session_renew_destroy_and_info() {
    let mut c = cluster();
    let id = session(&mut c, SERVER, r#"{"Name":"a","TTL":"15s"}"#);
    let r = put(&mut c, AGENT_B, &format!("/v1/session/renew/{id}"), b"");
    assert_eq!(r.status, 200);
    assert!(r.header("X-Consul-Index").is_none());
    let renewed = r.json().unwrap();
    assert_eq!(renewed.as_array().unwrap().len(), 1);
    assert_eq!(renewed[0]["ID"], id.as_str());
    assert_eq!(renewed[0]["TTL"], "15s");
    // Destroy: true, also for an unknown (well-formed) ID.
    let r = put(&mut c, SERVER, &format!("/v1/session/destroy/{id}"), b"");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    let r = put(&mut c, SERVER, &format!("/v1/session/destroy/{id}"), b"");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    assert_text(
        &put(&mut c, SERVER, &format!("/v1/session/renew/{id}"), b""),
        404,
        &format!("Session id '{id}' not found"),
    );
    let r = get(&mut c, SERVER, &format!("/v1/session/info/{id}"));
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert!(r.header("X-Consul-Index").is_some());
    let lookup = "failed session lookup: index error: UUID must be 36 characters";
    assert_text(
        &put(&mut c, SERVER, "/v1/session/renew/abc", b""),
        500,
        lookup,
    );
    assert_text(
        &put(&mut c, SERVER, "/v1/session/destroy/abc", b""),
        500,
        lookup,
    );
    assert_text(&get(&mut c, SERVER, "/v1/session/info/abc"), 500, lookup);
    assert_text(
        &put(&mut c, SERVER, "/v1/session/destroy/", b""),
        400,
        "Missing session",
    );
    assert_text(
        &get(&mut c, SERVER, "/v1/session/info/"),
        400,
        "Missing session",
    );
    // Methods and the mux's redirects.
    let r = get(&mut c, SERVER, "/v1/session/create");
    assert_eq!((r.status, r.header("Allow")), (405, Some("OPTIONS,PUT")));
    let r = put(&mut c, SERVER, &format!("/v1/session/info/{id}"), b"");
    assert_eq!((r.status, r.header("Allow")), (405, Some("OPTIONS,GET")));
    let r = c.handle(SERVER, Method::Post, "/v1/session/renew/x", b"");
    assert_eq!(r.text(), "method POST not allowed");
    let r = get(&mut c, SERVER, "/v1/session/info");
    assert_eq!(
        (r.status, r.header("Location")),
        (301, Some("/v1/session/info/"))
    );
    assert_text(
        &get(&mut c, SERVER, "/v1/session/info/x?index=x"),
        400,
        "Invalid index",
    );
    // Cluster-wide: a client agent cannot serve it without the server.
    c.set_agent_up(SERVER, false);
    assert_text(
        &put(&mut c, AGENT_B, "/v1/session/create", b""),
        500,
        "No known Consul servers",
    );
}

#[test]
fn acquire_release_and_the_lock_index() {
    let mut c = cluster();
    let a = session(&mut c, SERVER, r#"{"Name":"a"}"#);
    let b = session(&mut c, SERVER, r#"{"Name":"b"}"#);
    let r = acquire(&mut c, "lead", &a, "v1");
    assert_eq!(
        (r.status, r.text().as_str(), r.content_type),
        (200, "true", "application/json")
    );
    let kv = kv_json(&mut c, "lead");
    assert_eq!(
        keys(&kv),
        set(&[
            "LockIndex",
            "Key",
            "Flags",
            "Value",
            "Session",
            "CreateIndex",
            "ModifyIndex"
        ])
    );
    assert_eq!(
        get(&mut c, SERVER, "/v1/kv/lead").text(),
        format!(
            r#"[{{"LockIndex":1,"Key":"lead","Flags":0,"Value":"djE=","Session":"{a}","CreateIndex":{i},"ModifyIndex":{i}}}]"#,
            i = c.index()
        )
    );
    // The holder's acquire again updates the value, not the LockIndex.
    let before = c.kv_entry("lead").unwrap();
    assert_eq!(acquire(&mut c, "lead", &a, "v2").text(), "true");
    let after = c.kv_entry("lead").unwrap();
    assert_eq!(
        (
            after.lock_index,
            after.value.as_slice(),
            after.session.as_deref()
        ),
        (1, &b"v2"[..], Some(a.as_str()))
    );
    assert!(after.modify_index > before.modify_index);
    assert_eq!(after.create_index, before.create_index);
    // Another session: refused; its release too. Nothing changes.
    let index = c.index();
    assert_eq!(acquire(&mut c, "lead", &b, "vb").text(), "false");
    assert_eq!(release(&mut c, "lead", &b, "xb").text(), "false");
    assert_eq!(c.kv_entry("lead").unwrap(), after);
    assert_eq!(c.index(), index);
    // Release by the holder: Session goes, the value becomes the body, LockIndex stays.
    assert_eq!(release(&mut c, "lead", &a, "").text(), "true");
    let released = kv_json(&mut c, "lead");
    assert!(released.get("Session").is_none());
    assert_eq!(
        (&released["Value"], &released["LockIndex"]),
        (&Value::Null, &json!(1))
    );
    assert!(released["ModifyIndex"].as_u64().unwrap() > after.modify_index);
    assert_eq!(release(&mut c, "lead", &a, "").text(), "false");
    // An explicit release starts no lock delay: b takes it at once, LockIndex 2.
    assert_eq!(acquire(&mut c, "lead", &b, "vb").text(), "true");
    assert_eq!(kv_json(&mut c, "lead")["LockIndex"], 2);
    // A plain PUT overwrites a held key, keeps its Session and resets LockIndex (observed).
    put(&mut c, SERVER, "/v1/kv/lead?flags=7", b"plain");
    let plain = c.kv_entry("lead").unwrap();
    assert_eq!(
        (plain.lock_index, plain.flags, plain.session.as_deref()),
        (0, 7, Some(b.as_str()))
    );
    // ?flags applies to acquire and release.
    assert_eq!(
        put(
            &mut c,
            SERVER,
            &format!("/v1/kv/f?acquire={a}&flags=9"),
            b"x"
        )
        .text(),
        "true"
    );
    assert_eq!(c.kv_entry("f").unwrap().flags, 9);
    assert_eq!(release(&mut c, "f", &a, "y").text(), "true");
    assert_eq!(c.kv_entry("f").unwrap().flags, 0);
    // Errors.
    let unknown = "00000000-0000-0000-0000-000000000000";
    assert_text(&acquire(&mut c, "x", "", "v"), 500, "missing session");
    assert_text(&release(&mut c, "x", "", "v"), 500, "missing session");
    assert_text(
        &acquire(&mut c, "x", unknown, "v"),
        500,
        &format!("invalid session \"{unknown}\""),
    );
    assert_text(
        &acquire(&mut c, "x", "abc", "v"),
        500,
        "failed session lookup: index error: UUID must be 36 characters",
    );
    assert_text(
        &acquire(&mut c, "x", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "v"),
        500,
        "failed session lookup: index error: Invalid UUID: encoding/hex: invalid byte: U+007A 'z'",
    );
    // release never looks the session up.
    assert_eq!(release(&mut c, "lead", unknown, "").text(), "false");
    assert_eq!(release(&mut c, "lead", "abc", "").text(), "false");
    assert_eq!(release(&mut c, "missing", &a, "").text(), "false");
    assert_eq!(get(&mut c, SERVER, "/v1/kv/missing").status, 404);
    assert_text(
        &put(&mut c, SERVER, &format!("/v1/kv/x?acquire={a}&cas=0"), b""),
        400,
        &format!("Conflicting flags: acquire={a}&cas=0"),
    );
}

#[test]
fn destroy_releases_and_starts_the_lock_delay() {
    let mut c = cluster();
    let a = session(&mut c, SERVER, r#"{"Name":"a","LockDelay":"3s"}"#);
    let b = session(&mut c, SERVER, r#"{"Name":"b"}"#);
    let d = session(
        &mut c,
        SERVER,
        r#"{"Name":"d","Behavior":"delete","LockDelay":"3s"}"#,
    );
    acquire(&mut c, "ld", &a, "va");
    acquire(&mut c, "ld2", &a, "va2");
    acquire(&mut c, "dd", &d, "vd");
    let before = c.index();
    put(&mut c, SERVER, &format!("/v1/session/destroy/{a}"), b"");
    assert_eq!(
        c.index(),
        before + 1,
        "one write for the session and its keys"
    );
    for key in ["ld", "ld2"] {
        let e = c.kv_entry(key).unwrap();
        assert_eq!(
            (e.session, e.lock_index, e.modify_index),
            (None, 1, before + 1),
            "{key} released, value and LockIndex kept"
        );
        assert!(c.in_lock_delay(key));
    }
    assert_eq!(c.kv()["ld"], b"va");
    // Within the lock delay nobody acquires, by HTTP or by txn.
    assert_eq!(acquire(&mut c, "ld", &b, "vb").text(), "false");
    let r = txn(
        &mut c,
        json!([
            {"KV": {"Verb": "set", "Key": "other", "Value": "eA=="}},
            {"KV": {"Verb": "lock", "Key": "ld2", "Value": "eA==", "Session": b}}
        ]),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json().unwrap(),
        json!({"Results": null, "Errors": [
            {"OpIndex": 1, "What": "failed to lock key \"ld2\" due to lock delay"}
        ]})
    );
    assert!(!c.kv().contains_key("other"));
    // Even with a bad session: the lock delay is checked first.
    assert_eq!(acquire(&mut c, "ld", "abc", "x").text(), "false");
    // A plain write is not a lock.
    assert_eq!(put(&mut c, SERVER, "/v1/kv/ld", b"plain").text(), "true");
    // Behavior delete: the key goes, and its lock delay stays.
    put(&mut c, SERVER, &format!("/v1/session/destroy/{d}"), b"");
    assert_eq!(get(&mut c, SERVER, "/v1/kv/dd").status, 404);
    assert_eq!(acquire(&mut c, "dd", &b, "vb").text(), "false");
    c.advance(Duration::from_millis(2_999));
    assert_eq!(acquire(&mut c, "ld", &b, "vb").text(), "false");
    c.advance(Duration::from_millis(1));
    assert!(!c.in_lock_delay("ld"));
    assert_eq!(acquire(&mut c, "ld", &b, "vb").text(), "true");
    assert_eq!(acquire(&mut c, "dd", &b, "vb").text(), "true");
    assert_eq!(kv_json(&mut c, "dd")["LockIndex"], 1);
    // A lock delay above 60 s is cut to 60 s; 0 s means none.
    let long = session(&mut c, SERVER, r#"{"LockDelay":"120s"}"#);
    let none = session(&mut c, SERVER, r#"{"LockDelay":"0s"}"#);
    acquire(&mut c, "long", &long, "");
    acquire(&mut c, "none", &none, "");
    c.invalidate_session(&long);
    c.invalidate_session(&none);
    assert_eq!(acquire(&mut c, "none", &b, "").text(), "true");
    c.advance(Duration::from_secs(60));
    assert_eq!(acquire(&mut c, "long", &b, "").text(), "true");
}

#[test]
fn ttl_expiry_after_twice_the_ttl_releases_the_key() {
    let mut c = cluster();
    let a = session(
        &mut c,
        SERVER,
        r#"{"Name":"a","TTL":"10s","LockDelay":"2s"}"#,
    );
    let b = session(&mut c, SERVER, r#"{"Name":"b"}"#);
    acquire(&mut c, "leader", &a, "host-a");
    assert_eq!(c.session(&a).unwrap().expires_at, Some(20 * SECOND));
    assert_eq!(c.next_session_expiry(), Some(20 * SECOND));
    // Renewed at 5 s: invalidated exactly 2 × TTL later, at 25 s (observed: 20.02 s after).
    c.set_time(5 * SECOND);
    assert_eq!(
        put(&mut c, SERVER, &format!("/v1/session/renew/{a}"), b"").status,
        200
    );
    assert_eq!(c.next_session_expiry(), Some(25 * SECOND));
    c.set_time(Duration::from_millis(24_999));
    assert!(c.session(&a).is_some(), "alive until 2 × TTL has passed");
    assert_eq!(kv_json(&mut c, "leader")["Session"], a.as_str());
    c.set_time(26 * SECOND);
    assert!(c.session(&a).is_none());
    assert_eq!(c.next_session_expiry(), None);
    let kv = kv_json(&mut c, "leader");
    assert!(kv.get("Session").is_none(), "released");
    assert_eq!(
        (&kv["Value"], &kv["LockIndex"]),
        (&json!("aG9zdC1h"), &json!(1))
    );
    // Renew after invalidation: 404. Info: [].
    assert_text(
        &put(&mut c, SERVER, &format!("/v1/session/renew/{a}"), b""),
        404,
        &format!("Session id '{a}' not found"),
    );
    assert_eq!(
        get(&mut c, SERVER, &format!("/v1/session/info/{a}")).text(),
        "[]"
    );
    // The lock delay started at the deadline (25 s), not when the clock was read (26 s).
    assert_eq!(acquire(&mut c, "leader", &b, "host-b").text(), "false");
    c.set_time(27 * SECOND);
    assert_eq!(acquire(&mut c, "leader", &b, "host-b").text(), "true");
    // Behavior delete: expiry deletes the key.
    let d = session(&mut c, SERVER, r#"{"TTL":"10s","Behavior":"delete"}"#);
    acquire(&mut c, "gone", &d, "x");
    c.advance(20 * SECOND);
    assert_eq!(get(&mut c, SERVER, "/v1/kv/gone").status, 404);
    // The clock never goes back.
    c.set_time(SECOND);
    assert_eq!(c.now(), 47 * SECOND);
}

#[test]
fn a_deposed_holders_txn_with_check_session_fails() {
    let mut c = cluster();
    let a = session(&mut c, SERVER, r#"{"TTL":"10s","LockDelay":"1s"}"#);
    let b = session(&mut c, SERVER, r#"{"TTL":"10s"}"#);
    acquire(&mut c, "consular/leader", &a, "a");
    // While a holds the lock, its guarded write commits.
    let write = |holder: &str, value: &str| {
        json!([
            {"KV": {"Verb": "check-session", "Key": "consular/leader", "Session": holder}},
            {"KV": {"Verb": "set", "Key": "consular/data", "Value": value}}
        ])
    };
    let r = txn(&mut c, write(&a, "YQ=="));
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json().unwrap()["Results"].clone();
    assert_eq!(results[0]["KV"]["Session"], a.as_str());
    // a stops renewing; b keeps renewing and takes over after the lock delay.
    for t in [8, 16] {
        c.set_time(t * SECOND);
        put(&mut c, SERVER, &format!("/v1/session/renew/{b}"), b"");
    }
    c.set_time(21 * SECOND);
    assert!(c.session(&a).is_none());
    assert_eq!(acquire(&mut c, "consular/leader", &b, "b").text(), "true");
    // a's write, still guarded by its old session, fails and changes nothing.
    let before = (c.kv().clone(), c.index());
    let r = txn(&mut c, write(&a, "eA=="));
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json().unwrap(),
        json!({"Results": null, "Errors": [{"OpIndex": 0, "What": format!(
            "failed session check for key \"consular/leader\", current session \"{b}\" != \"{a}\""
        )}]})
    );
    assert_eq!((c.kv().clone(), c.index()), before);
    assert_eq!(c.kv()["consular/data"], b"a");
    // b's does.
    assert_eq!(txn(&mut c, write(&b, "Yg==")).status, 200);
    assert_eq!(c.kv()["consular/data"], b"b");
    // A free key has session "", a missing key fails on its own.
    release(&mut c, "consular/leader", &b, "");
    let r = txn(
        &mut c,
        json!([{"KV": {"Verb": "check-session", "Key": "consular/leader", "Session": b}}]),
    );
    assert_eq!(
        r.json().unwrap()["Errors"][0]["What"],
        format!(
            "failed session check for key \"consular/leader\", current session \"\" != \"{b}\""
        )
    );
    let r = txn(
        &mut c,
        json!([{"KV": {"Verb": "check-session", "Key": "consular/leader"}}]),
    );
    assert_eq!(r.status, 200, "an empty session matches a free key");
    let r = txn(
        &mut c,
        json!([{"KV": {"Verb": "check-session", "Key": "nope", "Session": b}}]),
    );
    assert_eq!(
        r.json().unwrap()["Errors"][0]["What"],
        "failed to check session, key \"nope\" doesn't exist"
    );
}

#[test]
fn txn_lock_and_unlock() {
    let mut c = cluster();
    let a = session(&mut c, SERVER, r#"{"LockDelay":"0s"}"#);
    let b = session(&mut c, SERVER, "");
    let op = |verb: &str, key: &str, session: &str| json!([{"KV": {"Verb": verb, "Key": key, "Value": "eA==", "Flags": 3, "Session": session}}]);
    let what = |r: SimResponse| {
        assert_eq!(r.status, 409);
        r.json().unwrap()["Errors"][0]["What"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let r = txn(&mut c, op("lock", "t", &a));
    assert_eq!(r.status, 200);
    let kv = &r.json().unwrap()["Results"][0]["KV"];
    assert_eq!(
        (&kv["Session"], &kv["LockIndex"], &kv["Flags"], &kv["Value"]),
        (&json!(a), &json!(1), &json!(3), &Value::Null)
    );
    assert_eq!(
        what(txn(&mut c, op("lock", "t", &b))),
        "failed to lock key \"t\", lock is already held"
    );
    assert_eq!(txn(&mut c, op("lock", "t", &a)).status, 200);
    assert_eq!(c.kv_entry("t").unwrap().lock_index, 1);
    let unknown = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        what(txn(&mut c, op("lock", "u", unknown))),
        format!("invalid session \"{unknown}\"")
    );
    assert_eq!(
        what(txn(&mut c, op("lock", "u", "abc"))),
        "failed session lookup: index error: UUID must be 36 characters"
    );
    assert_eq!(what(txn(&mut c, op("lock", "u", ""))), "missing session");
    assert_eq!(what(txn(&mut c, op("unlock", "t", ""))), "missing session");
    for (key, session) in [("t", b.as_str()), ("zzz", a.as_str())] {
        assert_eq!(
            what(txn(&mut c, op("unlock", key, session))),
            format!(
                "failed to unlock key \"{key}\", lock isn't held, or is held by another session"
            )
        );
    }
    let r = txn(&mut c, op("unlock", "t", &a));
    assert_eq!(r.status, 200);
    let e = c.kv_entry("t").unwrap();
    assert_eq!((e.session, e.lock_index, e.flags), (None, 1, 3));
    // A txn set keeps the holder and resets LockIndex, like a plain PUT.
    txn(&mut c, op("lock", "t", &b));
    txn(
        &mut c,
        json!([{"KV": {"Verb": "set", "Key": "t", "Value": "eQ=="}}]),
    );
    let e = c.kv_entry("t").unwrap();
    assert_eq!((e.session.as_deref(), e.lock_index), (Some(b.as_str()), 0));
}

#[test]
fn failing_checks_invalidate_sessions() {
    let mut c = cluster();
    // Default checks: serfHealth of the node that created it.
    let on_b = session(&mut c, AGENT_B, r#"{"LockDelay":"0s"}"#);
    let unchecked = session(&mut c, AGENT_B, r#"{"NodeChecks":[]}"#);
    acquire(&mut c, "k", &on_b, "b");
    c.set_agent_up(AGENT_B, false);
    assert!(c.session(&on_b).is_none(), "serfHealth critical");
    assert!(c.kv_entry("k").unwrap().session.is_none());
    assert!(c.session(&unchecked).is_some());
    c.set_agent_up(AGENT_B, true);
    // A service check named by the session: deregistering the service invalidates it.
    put(
        &mut c,
        SERVER,
        "/v1/agent/service/register",
        br#"{"Name":"api","ID":"api1","Check":{"TTL":"30s","Status":"passing"}}"#,
    );
    let s = session(&mut c, SERVER, r#"{"Checks":["service:api1"]}"#);
    put(&mut c, SERVER, "/v1/agent/service/deregister/api1", b"");
    assert!(c.session(&s).is_none());
}

#[test]
fn a_server_outage_pauses_the_ttl_timers() {
    let mut c = cluster();
    let a = session(&mut c, SERVER, r#"{"TTL":"10s"}"#);
    c.set_time(5 * SECOND);
    c.set_agent_up(SERVER, false);
    assert_eq!(c.next_session_expiry(), None);
    c.set_time(100 * SECOND);
    assert!(c.session(&a).is_some(), "no leader, no timer");
    // A new leader restarts every timer from its election.
    c.set_agent_up(SERVER, true);
    assert_eq!(c.session(&a).unwrap().expires_at, Some(120 * SECOND));
    c.set_time(120 * SECOND);
    assert!(c.session(&a).is_none());
}

#[test]
fn blocking_kv_reads() {
    let mut c = cluster();
    c.put_kv("bk", b"1");
    c.put_kv("other", b"1");
    let mi = c.kv_entry("bk").unwrap().modify_index;
    // A single key answers its own ModifyIndex, lower than the table's.
    let r = get(&mut c, SERVER, "/v1/kv/bk");
    assert_eq!(r.header("X-Consul-Index"), Some(mi.to_string().as_str()));
    assert!(mi < c.index());
    let at = |index: u64, wait: &str| format!("/v1/kv/bk?index={index}{wait}");
    assert_eq!(c.kv_blocks(&at(mi, "&wait=2s")), Some(2 * SECOND));
    assert_eq!(c.kv_blocks(&at(mi, "")), Some(300 * SECOND), "default wait");
    assert_eq!(c.kv_blocks(&at(mi, "&wait=0s")), Some(300 * SECOND));
    assert_eq!(
        c.kv_blocks(&at(mi, "&wait=1h")),
        Some(600 * SECOND),
        "at most 10 min"
    );
    assert_eq!(
        c.kv_blocks(&at(mi - 1, "&wait=2s")),
        None,
        "older index: at once"
    );
    assert_eq!(
        c.kv_blocks(&at(0, "&wait=2s")),
        None,
        "index 0 never blocks"
    );
    assert_eq!(c.kv_blocks("/v1/kv/bk?wait=2s"), None, "no index, no block");
    assert_eq!(c.kv_blocks("/v1/kv/bk?index=x"), None, "400 at once");
    assert_eq!(c.kv_blocks("/v1/kv//bk?index=99"), None, "a redirect");
    assert_eq!(c.kv_blocks("/v1/catalog/nodes?index=99"), None);
    // Another key's write does not wake it; acquiring this one does.
    c.put_kv("other", b"2");
    assert!(c.kv_blocks(&at(mi, "")).is_some());
    let s = session(&mut c, SERVER, r#"{"TTL":"10s","LockDelay":"0s"}"#);
    acquire(&mut c, "bk", &s, "held");
    assert_eq!(c.kv_blocks(&at(mi, "")), None);
    // Parked on the held key: the TTL expiry's release wakes it.
    let held = c.kv_entry("bk").unwrap().modify_index;
    assert!(c.kv_blocks(&at(held, "")).is_some());
    c.set_time(c.next_session_expiry().unwrap());
    assert_eq!(c.kv_blocks(&at(held, "")), None);
    let r = get(&mut c, SERVER, &at(held, ""));
    assert!(r.json().unwrap()[0].get("Session").is_none());
    // A missing key answers the table's index and wakes on any KV write.
    let r = get(&mut c, SERVER, "/v1/kv/missing");
    let table: u64 = r.header("X-Consul-Index").unwrap().parse().unwrap();
    let missing = format!("/v1/kv/missing?index={table}");
    assert!(c.kv_blocks(&missing).is_some());
    c.put_kv("unrelated", b"x");
    assert_eq!(c.kv_blocks(&missing), None);
    // Deleting a watched key wakes its reader too.
    let mi = c.kv_entry("other").unwrap().modify_index;
    let other = format!("/v1/kv/other?index={mi}");
    assert!(c.kv_blocks(&other).is_some());
    del(&mut c, "/v1/kv/other");
    assert_eq!(c.kv_blocks(&other), None);
    // A server outage answers at once (with an error).
    let table = c.index();
    c.set_agent_up(SERVER, false);
    assert_eq!(c.kv_blocks(&format!("/v1/kv/?recurse&index={table}")), None);
}
