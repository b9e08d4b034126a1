//! Consul services as the bridge registers them: the registration body, the ownership tags, the
//! service name derived from the app id, and parsing of agent service and catalog node listings.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::check::ServiceCheck;
use crate::encoding::encode_segment;
use crate::error::ParseError;

/// `PUT` registers a service on the agent that receives it.
pub const REGISTER_PATH: &str = "/v1/agent/service/register";
/// `GET` lists the services of the agent that receives it.
pub const AGENT_SERVICES_PATH: &str = "/v1/agent/services";
/// `GET` lists the nodes (agents) of the datacenter.
pub const CATALOG_NODES_PATH: &str = "/v1/catalog/nodes";
/// `GET` lists every check in state critical, node checks included: a failed agent's
/// `serfHealth` is among them.
pub const CRITICAL_CHECKS_PATH: &str = "/v1/health/state/critical";
/// The node check Consul's gossip keeps: critical when the agent is failed.
const SERF_HEALTH_CHECK: &str = "serfHealth";
/// Tag prefix marking a service as registered by one consular registration id.
pub const REG_ID_TAG_PREFIX: &str = "consular-reg-id=";
/// Tag prefix carrying the Marathon app id.
pub const APP_ID_TAG_PREFIX: &str = "consular-app-id=";

/// `PUT` deregisters service `id` from the agent that receives it.
pub fn deregister_path(id: &str) -> String {
    alloc::format!("/v1/agent/service/deregister/{}", encode_segment(id))
}

/// The Consul service name of a Marathon app: the id without its leading `/`, with `/` → `-`
/// (`/group/app` → `group-app`), as consular 1.3.0 names it.
pub fn service_name(app_id: &str) -> String {
    app_id.trim_start_matches('/').replace('/', "-")
}

/// The id of the service for port `index` of task `task_id`, when an app's ports each become a
/// service: `<task id>:<index>` (`:` never appears in a task id, so the task stays recoverable).
pub fn port_service_id(task_id: &str, index: usize) -> String {
    alloc::format!("{task_id}:{index}")
}

/// The task a service id belongs to: the id itself, or what comes before `:<index>`.
pub fn task_of_service(service_id: &str) -> &str {
    match service_id.rsplit_once(':') {
        Some((task, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            task
        }
        _ => service_id,
    }
}

/// The agent host for a task host: lower-cased, as consular 1.3.0's URL builder did.
pub fn agent_host(host: &str) -> String {
    host.to_ascii_lowercase()
}

/// A service as the bridge registers it, and as an agent lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Registration {
    /// The service name (from the app id).
    #[serde(rename = "Name")]
    pub name: String,
    /// The service id (the Marathon task id).
    #[serde(rename = "ID")]
    pub id: String,
    /// The task's host.
    #[serde(rename = "Address")]
    pub address: String,
    /// Tags; ours start with the registration-id and app-id tags.
    #[serde(rename = "Tags")]
    pub tags: Vec<String>,
    /// The service port, if the task has one.
    #[serde(rename = "Port", skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Service meta: the task's Marathon identity and `consul-meta-` labels. After `Port`, so a
    /// body without meta is consular 1.3.0's byte for byte.
    #[serde(rename = "Meta", skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Checks (`--health-checks`); an agent's service listing has none, its check listing has
    /// them ([`super::ListedCheck`]).
    #[serde(rename = "Checks", skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ServiceCheck>,
}

impl Registration {
    /// The registration of a running task, as consular 1.3.0 builds it: several ports register
    /// the lowest one.
    pub fn for_task(
        registration_id: &str,
        app_id: &str,
        task_id: &str,
        host: &str,
        ports: &[u16],
    ) -> Self {
        Registration {
            name: service_name(app_id),
            id: String::from(task_id),
            address: String::from(host),
            tags: alloc::vec![
                alloc::format!("{REG_ID_TAG_PREFIX}{registration_id}"),
                alloc::format!("{APP_ID_TAG_PREFIX}{app_id}"),
            ],
            port: ports.iter().copied().min(),
            meta: BTreeMap::new(),
            checks: Vec::new(),
        }
    }

    /// True if `listed` (from an agent's service listing) is this service, checks aside.
    pub fn is_listed_as(&self, listed: &Registration) -> bool {
        self.name == listed.name
            && self.id == listed.id
            && self.address == listed.address
            && self.tags == listed.tags
            && self.port == listed.port
            && self.meta == listed.meta
    }

    /// The `PUT /v1/agent/service/register` body: `{"Name","ID","Address","Tags","Port"}`.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The Marathon app id its `consular-app-id=` tag names.
    pub fn app_id(&self) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(APP_ID_TAG_PREFIX))
    }

    /// True if the service carries exactly our registration-id tag and an app-id tag, as every
    /// service we register does. Only such services are ever deregistered; one with our tag but
    /// no app id was not made by a consular and is left alone, as consular 1.3.0 does.
    pub fn is_owned_by(&self, registration_id: &str) -> bool {
        let ours = self
            .tags
            .iter()
            .any(|t| t.strip_prefix(REG_ID_TAG_PREFIX) == Some(registration_id));
        ours && self.tags.iter().any(|t| t.starts_with(APP_ID_TAG_PREFIX))
    }
}

/// A service as an agent's map (keyed by id) or a catalog node's list (with `ID`) gives it.
#[derive(Deserialize)]
pub(super) struct ServiceEntry {
    #[serde(rename = "ID", default, deserialize_with = "string_or_empty")]
    id: String,
    #[serde(rename = "Service", default)]
    service: String,
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "Tags", default)]
    tags: Option<Vec<String>>,
    #[serde(rename = "Port", default)]
    port: u32,
    #[serde(rename = "Meta", default)]
    meta: Option<BTreeMap<String, String>>,
}

/// A string field that only one of two listings relies on: anything else reads as empty, so the
/// listing whose key names the entry never fails on it.
pub(super) fn string_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(value.as_str().map(String::from).unwrap_or_default())
}

impl ServiceEntry {
    /// The service, as id `id` (the agent's map key) or, for `None`, its own `ID`. Port 0 means
    /// "no port".
    pub(super) fn into_registration(self, id: Option<String>) -> Registration {
        Registration {
            name: self.service,
            id: id.unwrap_or(self.id),
            address: self.address,
            tags: self.tags.unwrap_or_default(),
            port: u16::try_from(self.port).ok().filter(|&p| p != 0),
            meta: self.meta.unwrap_or_default(),
            checks: Vec::new(),
        }
    }
}

/// Parses `GET /v1/agent/services`, a map keyed by service id.
pub fn parse_agent_services(body: &[u8]) -> Result<Vec<Registration>, ParseError> {
    let services: BTreeMap<String, ServiceEntry> = serde_json::from_slice(body)?;
    Ok(services
        .into_iter()
        .map(|(id, s)| s.into_registration(Some(id)))
        .collect())
}

/// One node of the catalog: a member of the Consul cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogNode {
    /// The node name.
    #[serde(rename = "Node", default)]
    pub name: String,
    /// The node's address.
    #[serde(rename = "Address")]
    pub address: String,
    /// Node meta; `external-node` marks a node without an agent ([`super::EXTERNAL_NODE_META`]).
    #[serde(rename = "Meta", default, deserialize_with = "null_as_empty")]
    pub meta: BTreeMap<String, String>,
}

impl CatalogNode {
    /// True for a node without an agent of its own: nothing is sent to its address.
    pub fn is_external(&self) -> bool {
        self.meta.get(super::EXTERNAL_NODE_META).map(String::as_str) == Some("true")
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// Parses `GET /v1/catalog/nodes`, in Consul's order.
pub fn parse_catalog_nodes(body: &[u8]) -> Result<Vec<CatalogNode>, ParseError> {
    Ok(serde_json::from_slice(body)?)
}

#[derive(Deserialize)]
struct HealthCheck {
    #[serde(rename = "Node", default)]
    node: String,
    #[serde(rename = "CheckID", default)]
    check_id: String,
}

/// Parses `GET /v1/health/state/critical` into the names of the nodes whose agent Consul's
/// gossip reports as failed (a critical `serfHealth`).
pub fn parse_failed_nodes(body: &[u8]) -> Result<Vec<String>, ParseError> {
    let checks: Vec<HealthCheck> = serde_json::from_slice(body)?;
    Ok(checks
        .into_iter()
        .filter(|c| c.check_id == SERF_HEALTH_CHECK)
        .map(|c| c.node)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_body_matches_consular_1_3() {
        let reg = Registration::for_task(
            "consular",
            "/my-group/my-app",
            "t1",
            "slave-1",
            &[4567, 1234],
        );
        assert_eq!(
            core::str::from_utf8(&reg.to_json()).unwrap(),
            r#"{"Name":"my-group-my-app","ID":"t1","Address":"slave-1","Tags":["consular-reg-id=consular","consular-app-id=/my-group/my-app"],"Port":1234}"#
        );
        let no_port = Registration::for_task("c", "/a", "t", "h", &[]);
        assert!(!core::str::from_utf8(&no_port.to_json())
            .unwrap()
            .contains("Port"));
    }

    #[test]
    fn ownership_needs_the_exact_tag_and_an_app_id() {
        let mut ours = Registration::for_task("blue", "/a", "t", "h", &[]);
        assert!(ours.is_owned_by("blue"));
        assert!(!ours.is_owned_by("blu"));
        assert!(!ours.is_owned_by("blue2"));
        ours.tags.retain(|t| !t.starts_with(APP_ID_TAG_PREFIX));
        assert!(!ours.is_owned_by("blue"), "no app id: not made by consular");
    }

    #[test]
    fn failed_nodes_are_those_with_a_critical_serf_health() {
        let failed = parse_failed_nodes(
            br#"[{"Node":"n1","CheckID":"serfHealth","Status":"critical"},
                 {"Node":"n2","CheckID":"service:web","Status":"critical"}]"#,
        )
        .unwrap();
        assert_eq!(failed, ["n1"]);
        let nodes = parse_catalog_nodes(br#"[{"Node":"n1","Address":"10.0.0.1","ID":"x"}]"#);
        assert_eq!(nodes.unwrap()[0].name, "n1");
    }

    #[test]
    fn port_services_name_their_task() {
        assert_eq!(port_service_id("web.1", 2), "web.1:2");
        assert_eq!(task_of_service("web.1:2"), "web.1");
        assert_eq!(task_of_service("web.1"), "web.1");
        assert_eq!(task_of_service("web.1:x"), "web.1:x");
    }

    #[test]
    fn agent_services_use_the_map_key_and_treat_port_0_as_none() {
        let services = parse_agent_services(
            br#"{"t1":{"ID":"x","Service":"app","Tags":null,"Port":0,"Address":"h"},"t2":{"ID":5,"Service":"b","Tags":["x"],"Port":80,"Address":""}}"#,
        )
        .unwrap();
        assert_eq!(services[0].id, "t1");
        assert_eq!(services[0].port, None);
        assert!(services[0].tags.is_empty());
        assert_eq!(services[1].port, Some(80));
    }
}
#[cfg(test)]
mod external_node_tests {
    #[test]
    fn external_nodes_are_known_by_their_meta() {
        let nodes = super::parse_catalog_nodes(
            br#"[{"ID":"","Node":"127.0.0.9","Address":"127.0.0.9","Datacenter":"dc1","TaggedAddresses":null,"Meta":{"consular-registration-id":"consular","external-node":"true","external-probe":"true"},"CreateIndex":1,"ModifyIndex":1},
                 {"Node":"vm","Address":"127.0.0.1","Meta":{"consul-network-segment":""}}]"#,
        )
        .unwrap();
        assert!(nodes[0].is_external());
        assert!(!nodes[1].is_external());
    }
}
