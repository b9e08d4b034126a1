//! The `parsers` harness: every parser of Marathon and Consul payloads on arbitrary bytes, and the
//! encoders on arbitrary text. Parsers must never panic and must uphold what they promise on
//! success; encoders must round-trip: `base64_decode(base64_encode(x)) == x`, a decoded value
//! re-encodes to text that decodes to it again, `json_ascii_string` is ASCII JSON that reads back
//! as the same string, and `encode_path` is URL-safe and percent-decodes back to its input. Ids
//! and hosts that pass Marathon's grammar ([`consular_core::marathon::ids`]) build paths with no
//! dot segment or control character, and txn batches are what Consul accepts.

use consular_core::consul::{
    check_deregister_path, check_update_path, deregister_path, external_deregister_body,
    kv_tree_path, node_checks_path, node_services_path, parse_agent_checks, parse_agent_services,
    parse_catalog_nodes, parse_failed_nodes, parse_kv_entries, parse_node_checks,
    parse_node_services, txn_batches, txn_body, CatalogEntry, TxnOp, TXN_MAX_BYTES, TXN_MAX_OPS,
};
use consular_core::encoding::{
    base64_decode, base64_encode, encode_path, encode_query_value, json_ascii_string,
};
use consular_core::marathon::ids::{check_app_id, check_host, check_task_id};
use consular_core::marathon::{app_path, app_tasks_path};
use consular_core::marathon::{
    parse_app_definition, parse_apps, parse_event, parse_tasks, MarathonEvent, TaskState,
};

/// Runs every parser and encoder on `bytes`.
pub fn run(bytes: &[u8]) {
    parsers(bytes);
    encoders(bytes);
}

fn parsers(bytes: &[u8]) {
    if let Ok(apps) = parse_apps(bytes) {
        for app in &apps {
            for task in app.tasks.iter().flatten() {
                let _ = task.is_running();
            }
        }
    }
    let _ = parse_app_definition(bytes);
    let _ = parse_tasks(bytes);
    match parse_event(bytes) {
        Ok(MarathonEvent::StatusUpdate(update)) => {
            assert!(
                !update.task_id.is_empty(),
                "a status update without a task id"
            );
            // Whatever an event carries, the paths built from it are single, clean segments.
            assert_clean_path(&deregister_path(&update.task_id));
            if let Some(app_id) = &update.app_id {
                assert_clean_path(&app_path(app_id));
            }
            assert!(!update.host.is_empty(), "a status update without a host");
            if update.state == TaskState::Running {
                assert!(update.app_id.is_some(), "RUNNING without an app id");
            }
        }
        Ok(MarathonEvent::AppTerminated { app_id }) => {
            assert!(!app_id.is_empty(), "app_terminated_event without an app id")
        }
        Ok(MarathonEvent::HealthChanged {
            app_id,
            instance_id,
        }) => {
            assert_clean_path(&app_tasks_path(&app_id));
            assert_clean_path(&check_update_path(&instance_id));
        }
        Ok(MarathonEvent::Other(_)) => {}
        // Error messages become 400 replies and log lines: formatting them must not panic.
        Err(e) => drop(e.to_string()),
    }
    if let Ok(services) = parse_agent_services(bytes) {
        for service in &services {
            assert_ne!(service.port, Some(0), "port 0 means no port");
        }
    }
    if let Ok(checks) = parse_agent_checks(bytes) {
        for check in &checks {
            assert_clean_path(&check_deregister_path(&check.id));
        }
    }
    if let Ok(nodes) = parse_catalog_nodes(bytes) {
        // An external node's listings are read by its name, once it passes the host grammar (as
        // the sync checks): then it is one clean segment.
        for node in nodes.iter().filter(|n| check_host(&n.name).is_ok()) {
            assert_clean_path(&node_services_path(&node.name));
            assert_clean_path(&node_checks_path(&node.name));
        }
    }
    let _ = parse_failed_nodes(bytes);
    // What an external node lists is removed with catalog deregistrations: always a JSON body.
    if let Ok(listing) = parse_node_services(bytes) {
        for service in &listing.services {
            assert_ne!(service.port, Some(0), "port 0 means no port");
            assert_json(&external_deregister_body(
                "node",
                CatalogEntry::Service(&service.id),
            ));
        }
    }
    if let Ok(checks) = parse_node_checks(bytes) {
        for check in &checks {
            assert_json(&external_deregister_body(
                "node",
                CatalogEntry::Check(&check.id),
            ));
        }
    }
    if let Ok(entries) = parse_kv_entries(bytes) {
        // A txn built from what was read must be well-formed JSON.
        let ops: Vec<TxnOp> = entries
            .into_iter()
            .map(|e| TxnOp::Set {
                key: e.key,
                value: e.value,
                index: e.modify_index,
                flags: e.flags,
            })
            .collect();
        let first: Vec<TxnOp> = ops.iter().take(TXN_MAX_OPS).cloned().collect();
        let body = txn_body(&first);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("txn bodies are JSON");
        assert_eq!(parsed.as_array().map(Vec::len), Some(first.len()));
        // Batches are what Consul accepts, and lose no operation but those too large for any.
        let (batches, too_large) = txn_batches(&ops);
        let batched: usize = batches.iter().map(|b| b.ops).sum();
        assert_eq!(batched + too_large.len(), ops.len());
        for batch in &batches {
            assert!(batch.ops <= TXN_MAX_OPS && batch.body.len() <= TXN_MAX_BYTES);
        }
    }
}

/// A body that must be JSON.
fn assert_json(body: &[u8]) {
    serde_json::from_slice::<serde_json::Value>(body).expect("a JSON body");
}

/// No `.` or `..` segment (a URL parser would fold it into another endpoint), no control
/// character, space, `#` or `?` beyond the query's own.
fn assert_clean_path(path: &str) {
    let (path_only, _) = path.split_once('?').unwrap_or((path, ""));
    assert!(
        path_only.split('/').all(|s| s != "." && s != ".."),
        "dot segment in {path:?}"
    );
    assert!(
        path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains('#'),
        "unclean {path:?}"
    );
}

/// Ids and hosts that pass the grammar make clean paths and URL hosts.
fn identifiers(text: &str) {
    if check_task_id(text).is_ok() {
        assert_clean_path(&deregister_path(text));
        assert!(!deregister_path(text)["/v1/agent/service/deregister/".len()..].contains('/'));
    }
    if check_app_id(text).is_ok() {
        assert_clean_path(&app_path(text));
        assert_clean_path(&app_tasks_path(text));
        let name = consular_core::consul::service_name(text);
        assert_clean_path(&kv_tree_path(&format!("consular/{name}/")));
    }
    if check_host(text).is_ok() {
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)),
            "host {text:?} passed with a character a URL authority would read differently"
        );
    }
}

fn encoders(bytes: &[u8]) {
    if let Ok(text) = core::str::from_utf8(bytes) {
        identifiers(text);
    }
    let encoded = base64_encode(bytes);
    assert_eq!(
        base64_decode(&encoded).as_deref(),
        Some(bytes),
        "base64 does not round-trip"
    );
    let text = String::from_utf8_lossy(bytes);
    if let Some(decoded) = base64_decode(&text) {
        let again = base64_encode(&decoded);
        assert_eq!(
            base64_decode(&again),
            Some(decoded),
            "re-encoding changed the value"
        );
    }

    let json = json_ascii_string(&text);
    assert!(
        json.is_ascii(),
        "json_ascii_string left non-ASCII: {json:?}"
    );
    let back: String = serde_json::from_str(&json).expect("json_ascii_string is a JSON string");
    assert_eq!(back, text, "json_ascii_string does not read back");

    let path = encode_path(&text);
    assert!(
        path.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#')),
        "not a safe path: {path:?}"
    );
    assert_eq!(percent_decode(&path), text.as_bytes(), "{path:?}");
    let query = encode_query_value(&text);
    assert!(
        query
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'#' | b'&')),
        "not a safe query value: {query:?}"
    );
    assert_eq!(percent_decode(&query), text.as_bytes(), "{query:?}");
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.unwrap_or_else(|| panic!("a % without two hex digits in {s:?}")));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
