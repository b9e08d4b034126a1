//! External nodes: tasks on hosts without a Consul agent (`--fallback-mode catalog`, and every task
//! with `--agentless`) are registered in the catalog under a node named after their host, with
//! the node meta consul-esm looks for (`external-node`, `external-probe`) and checks carrying a
//! `Definition` it can run. Here: the bodies, paths and listings of that; when to use them is
//! decided in `crate::bridge`.
//!
//! Nodes the bridge makes also carry [`OWNER_NODE_META`] with its registration id: only such a
//! node is ever removed, and only once no service is left on it.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use super::check::{CheckEntry, CheckProbe, ListedCheck};
use super::service::{Registration, ServiceEntry};
use crate::encoding::encode_segment;
use crate::error::ParseError;

/// `PUT` registers a node, a service and checks in the catalog.
pub const CATALOG_REGISTER_PATH: &str = "/v1/catalog/register";
/// `PUT` removes a service, or a whole node, from the catalog.
pub const CATALOG_DEREGISTER_PATH: &str = "/v1/catalog/deregister";
/// Node meta consul-esm watches: a node with no agent of its own.
pub const EXTERNAL_NODE_META: &str = "external-node";
/// Node meta asking consul-esm to probe the node.
pub const EXTERNAL_PROBE_META: &str = "external-probe";
/// Node meta naming the registration id of the bridge that made the node.
pub const OWNER_NODE_META: &str = "consular-registration-id";

/// `GET` the services of catalog node `node`.
pub fn node_services_path(node: &str) -> String {
    alloc::format!("/v1/catalog/node-services/{}", encode_segment(node))
}

/// `GET` the checks of catalog node `node`.
pub fn node_checks_path(node: &str) -> String {
    alloc::format!("/v1/health/node/{}", encode_segment(node))
}

/// The `PUT /v1/catalog/register` body putting `registration` on external node `node` (at
/// `address`), made by bridge `registration_id`. Its agent-run checks become definitions
/// consul-esm runs; a mirrored check is not carried (no agent holds its TTL).
pub fn external_register_body(
    registration_id: &str,
    node: &str,
    address: &str,
    registration: &Registration,
) -> Vec<u8> {
    let checks: Vec<serde_json::Value> = registration
        .checks
        .iter()
        .filter_map(|check| {
            let mut definition = serde_json::Map::new();
            match &check.probe {
                CheckProbe::Mirror => return None,
                CheckProbe::Http { url, skip_verify } => {
                    definition.insert("HTTP".into(), url.as_str().into());
                    if *skip_verify {
                        definition.insert("TLSSkipVerify".into(), true.into());
                    }
                }
                CheckProbe::Tcp { address } => {
                    definition.insert("TCP".into(), address.as_str().into());
                }
            }
            let interval = alloc::format!("{}s", check.interval_seconds);
            let timeout = alloc::format!("{}s", check.timeout_seconds);
            definition.insert("Interval".into(), interval.into());
            definition.insert("Timeout".into(), timeout.into());
            Some(serde_json::json!({
                "Node": node,
                "CheckID": check.id,
                "Name": check.name,
                "Notes": check.notes,
                "ServiceID": registration.id,
                "Definition": definition,
            }))
        })
        .collect();
    let body = serde_json::json!({
        "Node": node,
        "Address": address,
        "NodeMeta": {
            EXTERNAL_NODE_META: "true",
            EXTERNAL_PROBE_META: "true",
            OWNER_NODE_META: registration_id,
        },
        "Service": {
            "ID": registration.id,
            "Service": registration.name,
            "Tags": registration.tags,
            "Address": registration.address,
            "Port": registration.port,
            "Meta": registration.meta,
        },
        "Checks": checks,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What a `PUT /v1/catalog/deregister` removes from an external node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogEntry<'a> {
    /// One service (with its checks).
    Service(&'a str),
    /// One check.
    Check(&'a str),
    /// The whole node.
    Node,
}

/// The `PUT /v1/catalog/deregister` body removing `entry` from `node`.
pub fn external_deregister_body(node: &str, entry: CatalogEntry<'_>) -> Vec<u8> {
    let body = match entry {
        CatalogEntry::Service(id) => serde_json::json!({"Node": node, "ServiceID": id}),
        CatalogEntry::Check(id) => serde_json::json!({"Node": node, "CheckID": id}),
        CatalogEntry::Node => serde_json::json!({"Node": node}),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Deserialize)]
struct NodeServices {
    #[serde(rename = "Node", default)]
    node: Option<NodeInfo>,
    #[serde(rename = "Services", default)]
    services: Option<Vec<ServiceEntry>>,
}

#[derive(Deserialize)]
struct NodeInfo {
    #[serde(rename = "Meta", default)]
    meta: Option<BTreeMap<String, String>>,
}

/// A catalog node's services, as `GET /v1/catalog/node-services/<node>` lists them, and its meta.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalListing {
    /// The node's meta (empty if the node is gone).
    pub meta: BTreeMap<String, String>,
    /// Its services (port 0: none).
    pub services: Vec<Registration>,
}

/// Parses `GET /v1/catalog/node-services/<node>` (`null` when the node does not exist).
pub fn parse_node_services(body: &[u8]) -> Result<ExternalListing, ParseError> {
    let listing: Option<NodeServices> = serde_json::from_slice(body)?;
    let Some(listing) = listing else {
        return Ok(ExternalListing::default());
    };
    Ok(ExternalListing {
        meta: listing.node.and_then(|n| n.meta).unwrap_or_default(),
        services: listing
            .services
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.into_registration(None))
            .collect(),
    })
}

/// Parses `GET /v1/health/node/<node>` (a list).
pub fn parse_node_checks(body: &[u8]) -> Result<Vec<ListedCheck>, ParseError> {
    let checks: Vec<CheckEntry> = serde_json::from_slice(body)?;
    Ok(checks.into_iter().map(|c| c.into_listed(None)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::{CheckStatus, ServiceCheck};

    #[test]
    fn bodies_carry_the_meta_and_definitions_consul_esm_reads() {
        let mut reg = Registration::for_task("r", "/web", "t9", "10.9.9.9", &[31000]);
        reg.checks.push(ServiceCheck {
            id: "consular:t9:1".into(),
            name: "n".into(),
            notes: "d".into(),
            probe: CheckProbe::Tcp {
                address: "10.9.9.9:31000".into(),
            },
            interval_seconds: 10,
            timeout_seconds: 5,
            state: None,
        });
        let body: serde_json::Value =
            serde_json::from_slice(&external_register_body("r", "h9", "10.9.9.9", &reg)).unwrap();
        assert_eq!(body["NodeMeta"]["external-node"], "true");
        assert_eq!(body["NodeMeta"]["external-probe"], "true");
        assert_eq!(body["NodeMeta"]["consular-registration-id"], "r");
        assert_eq!(body["Service"]["ID"], "t9");
        assert_eq!(body["Checks"][0]["Definition"]["TCP"], "10.9.9.9:31000");
        assert_eq!(body["Checks"][0]["Definition"]["Interval"], "10s");
        assert_eq!(
            node_services_path("a/../b"),
            "/v1/catalog/node-services/a%2F..%2Fb"
        );
    }

    #[test]
    fn listings_as_consul_1_8_7_gives_them() {
        let listing = parse_node_services(
            br#"{"Node":{"Node":"h9","Meta":{"external-node":"true"}},
                 "Services":[{"ID":"t9","Service":"web","Tags":["a"],"Address":"10.9.9.9","Port":31000,"Meta":{"k":"v"}}]}"#,
        )
        .unwrap();
        assert_eq!(listing.meta["external-node"], "true");
        assert_eq!(listing.services[0].id, "t9");
        assert_eq!(
            parse_node_services(b"null").unwrap(),
            ExternalListing::default()
        );
        let checks = parse_node_checks(
            br#"[{"Node":"h9","CheckID":"c","ServiceID":"t9","Name":"n","Notes":"d","Status":"passing"}]"#,
        )
        .unwrap();
        assert_eq!(checks[0].status, Some(CheckStatus::Passing));
    }
}
