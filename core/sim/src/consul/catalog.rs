//! The simulated Consul's read views over its agents' services: `/v1/catalog/nodes`,
//! `/v1/catalog/service/{name}`, `/v1/health/service/{name}`, `/v1/health/state/{state}`, with
//! nodes, service instances, their checks and each node's `serfHealth`.
//!
//! Not here: registering services (`super::registration`), routing and `X-Consul-*` headers
//! (`super::routes`).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::registration::{
    meta_json, new_entry, node_tagged_addresses, proxy_json, tagged_addresses_json, weights_json,
};
use super::{Agent, ServiceEntry, SimConsul, SimService};
use crate::wire::J;

impl SimConsul {
    pub(super) fn node_json(&self, agent: &Agent) -> J {
        J::obj([
            ("ID", J::s(agent.node_id.as_str())),
            ("Node", J::s(agent.node.as_str())),
            ("Address", J::s(agent.address.as_str())),
            ("Datacenter", J::s(self.datacenter.as_str())),
            ("TaggedAddresses", node_tagged_addresses(agent)),
            ("Meta", J::obj([("consul-network-segment", J::s(""))])),
            ("CreateIndex", J::u(agent.create_index)),
            ("ModifyIndex", J::u(agent.modify_index)),
        ])
    }

    /// Instances of service `name` (the server's `consul` service included), by node then ID.
    pub(super) fn instances(&self, name: &str, tag: Option<&str>) -> Vec<(&Agent, ServiceEntry)> {
        let mut out: Vec<(&Agent, ServiceEntry)> = Vec::new();
        if name == "consul" {
            if let Some(server) = self.agents.first() {
                let mut e = new_entry(
                    SimService {
                        id: "consul".into(),
                        name: "consul".into(),
                        address: String::new(),
                        port: Some(8300),
                        tags: Vec::new(),
                    },
                    8300,
                );
                e.create_index = server.create_index;
                e.modify_index = server.create_index;
                out.push((server, e));
            }
        }
        for agent in &self.agents {
            for e in agent.services.values() {
                if e.service.name == name
                    && tag.is_none_or(|t| e.service.tags.iter().any(|x| x == t))
                {
                    out.push((agent, e.clone()));
                }
            }
        }
        out.sort_by(|(a, x), (b, y)| (&a.node, &x.service.id).cmp(&(&b.node, &y.service.id)));
        out
    }

    pub(super) fn catalog_service_json(&self, agent: &Agent, e: &ServiceEntry) -> J {
        let mut o = J::obj([
            ("ID", J::s(agent.node_id.as_str())),
            ("Node", J::s(agent.node.as_str())),
            ("Address", J::s(agent.address.as_str())),
            ("Datacenter", J::s(self.datacenter.as_str())),
            ("TaggedAddresses", node_tagged_addresses(agent)),
            ("NodeMeta", J::obj([("consul-network-segment", J::s(""))])),
            ("ServiceKind", J::s(e.kind.as_str())),
            ("ServiceID", J::s(e.service.id.as_str())),
            ("ServiceName", J::s(e.service.name.as_str())),
            (
                "ServiceTags",
                J::strs(e.service.tags.iter().map(String::as_str)),
            ),
            ("ServiceAddress", J::s(e.service.address.as_str())),
        ]);
        if !e.tagged_addresses.is_empty() {
            o.put("ServiceTaggedAddresses", tagged_addresses_json(e));
        }
        o.put("ServiceWeights", weights_json(e));
        o.put("ServiceMeta", meta_json(e));
        o.put("ServicePort", J::Int(e.port));
        o.put("ServiceEnableTagOverride", J::Bool(e.enable_tag_override));
        o.put("ServiceProxy", proxy_json());
        o.put("ServiceConnect", J::Obj(Vec::new()));
        o.put("CreateIndex", J::u(e.create_index));
        o.put("ModifyIndex", J::u(e.modify_index));
        o
    }

    /// `(passing, check JSON)` for the node's `serfHealth` and the service's own checks.
    pub(super) fn checks_json(&self, agent: &Agent, e: &ServiceEntry) -> Vec<(bool, J)> {
        let mut out = vec![(agent.up, serf_health_json(agent))];
        for c in &e.checks {
            out.push((
                c.status == "passing",
                check_json(agent, &c.id, &c.name, &c.status, c.kind, "", Some(e)),
            ));
        }
        out
    }

    /// `GET /v1/health/state/<state>`: every check in `state` (`any` for all), node checks first.
    pub(super) fn health_state_json(&self, state: &str) -> J {
        let wanted = |status: &str| state == "any" || state == status;
        let mut checks = Vec::new();
        for agent in &self.agents {
            let serf = if agent.up { "passing" } else { "critical" };
            if wanted(serf) {
                checks.push(serf_health_json(agent));
            }
            for e in agent.services.values() {
                for c in e.checks.iter().filter(|c| wanted(&c.status)) {
                    checks.push(check_json(
                        agent,
                        &c.id,
                        &c.name,
                        &c.status,
                        c.kind,
                        "",
                        Some(e),
                    ));
                }
            }
        }
        J::Arr(checks)
    }

    pub(super) fn health_json(&self, agent: &Agent, e: &ServiceEntry, checks: Vec<(bool, J)>) -> J {
        let node = self.node_json(agent);
        let mut service = J::obj([
            ("ID", J::s(e.service.id.as_str())),
            ("Service", J::s(e.service.name.as_str())),
            ("Tags", J::strs(e.service.tags.iter().map(String::as_str))),
            ("Address", J::s(e.service.address.as_str())),
        ]);
        if !e.tagged_addresses.is_empty() {
            service.put("TaggedAddresses", tagged_addresses_json(e));
        }
        service.put("Meta", meta_json(e));
        service.put("Port", J::Int(e.port));
        service.put("Weights", weights_json(e));
        service.put("EnableTagOverride", J::Bool(e.enable_tag_override));
        service.put("Proxy", proxy_json());
        service.put("Connect", J::Obj(Vec::new()));
        service.put("CreateIndex", J::u(e.create_index));
        service.put("ModifyIndex", J::u(e.modify_index));
        J::obj([
            ("Node", node),
            ("Service", service),
            (
                "Checks",
                J::Arr(checks.into_iter().map(|(_, c)| c).collect()),
            ),
        ])
    }
}

/// A node's `serfHealth` check: passing while its agent is up, critical once it failed.
fn serf_health_json(agent: &Agent) -> J {
    let (status, output) = if agent.up {
        ("passing", "Agent alive and reachable")
    } else {
        ("critical", "Agent not live or unreachable")
    };
    check_json(
        agent,
        "serfHealth",
        "Serf Health Status",
        status,
        "",
        output,
        None,
    )
}

/// One check as the health endpoints show it.
fn check_json(
    agent: &Agent,
    id: &str,
    name: &str,
    status: &str,
    kind: &str,
    output: &str,
    service: Option<&ServiceEntry>,
) -> J {
    J::obj([
        ("Node", J::s(agent.node.as_str())),
        ("CheckID", J::s(id)),
        ("Name", J::s(name)),
        ("Status", J::s(status)),
        ("Notes", J::s("")),
        ("Output", J::s(output)),
        (
            "ServiceID",
            J::s(service.map_or("", |s| s.service.id.as_str())),
        ),
        (
            "ServiceName",
            J::s(service.map_or("", |s| s.service.name.as_str())),
        ),
        (
            "ServiceTags",
            J::strs(
                service
                    .into_iter()
                    .flat_map(|s| s.service.tags.iter().map(String::as_str)),
            ),
        ),
        ("Type", J::s(kind)),
        ("Definition", J::Obj(Vec::new())),
        ("CreateIndex", J::u(agent.create_index)),
        ("ModifyIndex", J::u(agent.modify_index)),
    ])
}
