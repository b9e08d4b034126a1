//! The simulated Consul's HTTP front: [`SimConsul::handle`] (agent up or not, Go's `net/http`
//! path cleaning and redirects, the mux's routes and methods, server-only endpoints, `?dc`,
//! `?index`/`?wait` validation, `?pretty`) and the dispatch to each endpoint.
//!
//! Not here: what the endpoints do (`super::registration`, `super::catalog`, `super::kv`,
//! `super::txn`, `super::session`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use consular_core::encoding::encode_path;
use consular_core::Method;

use super::registration::agent_service_json;
use super::{Agent, SimConsul, JSON, TEXT};
use crate::wire::{
    parse_query, percent_decode, query_get, query_has, split_path_query, SimResponse, J,
};

impl SimConsul {
    /// Answers one HTTP request received by the agent at `agent` (`path_and_query` as sent,
    /// percent-encoded). Never panics. See the module docs for what is modelled.
    pub fn handle(
        &mut self,
        agent: &str,
        method: Method,
        path_and_query: &str,
        body: &[u8],
    ) -> SimResponse {
        if method == Method::Get {
            self.counts.reads += 1;
        } else {
            self.counts.writes += 1;
        }
        let Some(ai) = self.agent_index(agent).filter(|&i| self.agents[i].up) else {
            return SimResponse::new(
                503,
                TEXT,
                format!("simulated Consul agent {agent} is unreachable (connection refused)"),
            );
        };
        let (raw_path, query) = split_path_query(path_and_query);
        let Some(path) = percent_decode(raw_path, false) else {
            return SimResponse::new(400, TEXT, "400 Bad Request");
        };
        let path = String::from_utf8_lossy(&path).into_owned();
        if !path.starts_with('/') {
            return SimResponse::new(400, TEXT, "400 Bad Request");
        }
        let cleaned = clean_path(&path);
        let redirect_to = if cleaned != path {
            Some(cleaned)
        } else if matches!(
            path.as_str(),
            "/v1/kv"
                | "/v1/agent/service/deregister"
                | "/v1/agent/service"
                | "/v1/catalog/service"
                | "/v1/health/service"
                | "/v1/session/destroy"
                | "/v1/session/renew"
                | "/v1/session/info"
                | "/v1/session/node"
        ) {
            Some(format!("{path}/"))
        } else {
            None
        };
        if let Some(to) = redirect_to {
            let mut location = encode_path(&to);
            if !query.is_empty() {
                location.push('?');
                location.push_str(query);
            }
            let response = if method == Method::Get {
                SimResponse::new(
                    301,
                    "text/html; charset=utf-8",
                    format!("<a href=\"{location}\">Moved Permanently</a>.\n\n"),
                )
            } else {
                SimResponse::new(301, "", Vec::new())
            };
            return response.with_header("Location", location);
        }
        let params = parse_query(query, true);
        let route = Route::of(&path);
        let Some(route) = route else {
            if path == "/" {
                return SimResponse::new(200, TEXT, "Consul Agent");
            }
            return SimResponse::new(404, "", Vec::new());
        };
        let allowed = route.methods();
        if !allowed.contains(&method) {
            let allow: Vec<&str> = core::iter::once("OPTIONS")
                .chain(allowed.iter().map(|m| m.as_str()))
                .collect();
            return SimResponse::new(405, TEXT, format!("method {method} not allowed"))
                .with_header("Allow", allow.join(","));
        }
        if route.is_global() {
            if !self.agents[0].up {
                return SimResponse::new(500, TEXT, "No known Consul servers");
            }
            if let Some(dc) = query_get(&params, "dc") {
                if !dc.is_empty() && dc != self.datacenter {
                    return SimResponse::new(500, TEXT, "No path to datacenter");
                }
            }
        }
        if route.blocks() {
            if let Some(index) = query_get(&params, "index") {
                if index.parse::<u64>().is_err() {
                    return SimResponse::new(400, TEXT, "Invalid index");
                }
            }
            if let Some(wait) = query_get(&params, "wait") {
                if parse_go_duration(wait).is_none() {
                    return SimResponse::new(400, TEXT, "Invalid wait time");
                }
            }
        }
        let pretty = self.pretty || query_has(&params, "pretty");
        let ctx = Ctx { params, pretty };
        match route {
            Route::Register => self.http_register(ai, body),
            Route::Deregister(id) => self.http_deregister(ai, id),
            Route::AgentService(id) => self.http_agent_service(ai, id, &ctx),
            Route::AgentServices => {
                let services = J::Obj(
                    self.agents[ai]
                        .services
                        .iter()
                        .map(|(id, e)| (id.clone(), agent_service_json(e, false)))
                        .collect(),
                );
                ctx.json(200, &services)
            }
            Route::AgentSelf => {
                let body = self.agent_self(ai);
                ctx.json(200, &body)
            }
            Route::CatalogNodes => {
                let mut agents: Vec<&Agent> = self.agents.iter().collect();
                agents.sort_by(|a, b| a.node.cmp(&b.node));
                let nodes = J::Arr(agents.iter().map(|a| self.node_json(a)).collect());
                self.with_meta(ctx.json(200, &nodes), self.catalog_index)
            }
            Route::CatalogServices => {
                let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                names.insert("consul", Vec::new());
                for e in self.agents.iter().flat_map(|a| a.services.values()) {
                    let tags = names.entry(e.service.name.as_str()).or_default();
                    tags.extend(e.service.tags.iter().map(String::as_str));
                    tags.sort_unstable();
                    tags.dedup();
                }
                let body = J::Obj(
                    names
                        .into_iter()
                        .map(|(n, t)| (n.to_string(), J::strs(t)))
                        .collect(),
                );
                self.with_meta(ctx.json(200, &body), self.catalog_index)
            }
            Route::CatalogService(name) => {
                let tag = query_get(&ctx.params, "tag");
                let body = J::Arr(
                    self.instances(name, tag)
                        .into_iter()
                        .map(|(a, e)| self.catalog_service_json(a, &e))
                        .collect(),
                );
                self.with_meta(ctx.json(200, &body), self.catalog_index)
            }
            Route::HealthService(name) => {
                let tag = query_get(&ctx.params, "tag");
                let passing = query_has(&ctx.params, "passing");
                let body = J::Arr(
                    self.instances(name, tag)
                        .into_iter()
                        .filter_map(|(a, e)| {
                            let checks = self.checks_json(a, &e);
                            (!passing || checks.iter().all(|(s, _)| *s))
                                .then(|| self.health_json(a, &e, checks))
                        })
                        .collect(),
                );
                self.with_meta(ctx.json(200, &body), self.catalog_index)
            }
            Route::HealthState(state) => {
                const STATES: [&str; 4] = ["any", "passing", "warning", "critical"];
                if !STATES.contains(&state) {
                    return SimResponse::new(400, TEXT, format!("Invalid check state: {state}"));
                }
                let body = self.health_state_json(state);
                self.with_meta(ctx.json(200, &body), self.catalog_index)
            }
            Route::Kv(key) => {
                let key = key.to_string();
                match method {
                    Method::Get => self.kv_get(&key, &ctx),
                    Method::Put => self.kv_put(&key, &ctx, body),
                    _ => self.kv_delete(&key, &ctx),
                }
            }
            Route::Txn => self.txn(&ctx, body),
            Route::SessionCreate => self.http_session_create(ai, &ctx, body),
            Route::SessionRenew(id) => self.http_session_renew(id, &ctx),
            Route::SessionDestroy(id) => self.http_session_destroy(id, &ctx),
            Route::SessionInfo(id) => self.http_session_info(id, &ctx),
            Route::SessionNode(node) => self.http_session_list(Some(node), &ctx),
            Route::SessionList => self.http_session_list(None, &ctx),
            Route::StatusLeader => {
                let leader = format!("{}:8300", self.agents[0].address);
                ctx.json(200, &J::s(leader))
            }
            Route::StatusPeers => {
                let peers = format!("{}:8300", self.agents[0].address);
                ctx.json(200, &J::Arr(vec![J::s(peers)]))
            }
        }
    }

    pub(super) fn with_meta(&self, response: SimResponse, index: u64) -> SimResponse {
        response
            .with_header("X-Consul-Index", format!("{}", index.max(1)))
            .with_header("X-Consul-KnownLeader", "true")
            .with_header("X-Consul-LastContact", "0")
    }
}

enum Route<'a> {
    Register,
    Deregister(&'a str),
    AgentService(&'a str),
    AgentServices,
    AgentSelf,
    CatalogNodes,
    CatalogServices,
    CatalogService(&'a str),
    HealthService(&'a str),
    HealthState(&'a str),
    Kv(&'a str),
    Txn,
    SessionCreate,
    SessionRenew(&'a str),
    SessionDestroy(&'a str),
    SessionInfo(&'a str),
    SessionNode(&'a str),
    SessionList,
    StatusLeader,
    StatusPeers,
}

impl<'a> Route<'a> {
    /// The handler Consul's mux picks (longest registered prefix wins).
    fn of(path: &'a str) -> Option<Route<'a>> {
        Some(match path {
            "/v1/agent/service/register" => Route::Register,
            "/v1/agent/services" => Route::AgentServices,
            "/v1/agent/self" => Route::AgentSelf,
            "/v1/catalog/nodes" => Route::CatalogNodes,
            "/v1/catalog/services" => Route::CatalogServices,
            "/v1/txn" => Route::Txn,
            "/v1/session/create" => Route::SessionCreate,
            "/v1/session/list" => Route::SessionList,
            "/v1/status/leader" => Route::StatusLeader,
            "/v1/status/peers" => Route::StatusPeers,
            p => {
                if let Some(id) = p.strip_prefix("/v1/agent/service/deregister/") {
                    Route::Deregister(id)
                } else if let Some(id) = p.strip_prefix("/v1/agent/service/") {
                    Route::AgentService(id)
                } else if let Some(name) = p.strip_prefix("/v1/catalog/service/") {
                    Route::CatalogService(name)
                } else if let Some(name) = p.strip_prefix("/v1/health/service/") {
                    Route::HealthService(name)
                } else if let Some(state) = p.strip_prefix("/v1/health/state/") {
                    Route::HealthState(state)
                } else if let Some(key) = p.strip_prefix("/v1/kv/") {
                    Route::Kv(key)
                } else if let Some(id) = p.strip_prefix("/v1/session/renew/") {
                    Route::SessionRenew(id)
                } else if let Some(id) = p.strip_prefix("/v1/session/destroy/") {
                    Route::SessionDestroy(id)
                } else if let Some(id) = p.strip_prefix("/v1/session/info/") {
                    Route::SessionInfo(id)
                } else if let Some(node) = p.strip_prefix("/v1/session/node/") {
                    Route::SessionNode(node)
                } else {
                    return None;
                }
            }
        })
    }

    fn methods(&self) -> &'static [Method] {
        match self {
            Route::Register
            | Route::Deregister(_)
            | Route::Txn
            | Route::SessionCreate
            | Route::SessionRenew(_)
            | Route::SessionDestroy(_) => &[Method::Put],
            Route::Kv(_) => &[Method::Get, Method::Put, Method::Delete],
            _ => &[Method::Get],
        }
    }

    /// Served through the servers (RPC) rather than by the agent alone.
    fn is_global(&self) -> bool {
        matches!(
            self,
            Route::CatalogNodes
                | Route::CatalogServices
                | Route::CatalogService(_)
                | Route::HealthService(_)
                | Route::HealthState(_)
                | Route::Kv(_)
                | Route::Txn
                | Route::SessionCreate
                | Route::SessionRenew(_)
                | Route::SessionDestroy(_)
                | Route::SessionInfo(_)
                | Route::SessionNode(_)
                | Route::SessionList
                | Route::StatusLeader
                | Route::StatusPeers
        )
    }

    /// Supports `?index=&wait=` blocking.
    fn blocks(&self) -> bool {
        matches!(
            self,
            Route::CatalogNodes
                | Route::CatalogServices
                | Route::CatalogService(_)
                | Route::HealthService(_)
                | Route::Kv(_)
                | Route::SessionInfo(_)
                | Route::SessionNode(_)
                | Route::SessionList
        )
    }
}

pub(super) struct Ctx {
    pub(super) params: Vec<(String, String)>,
    pub(super) pretty: bool,
}

impl Ctx {
    pub(super) fn json(&self, status: u16, body: &J) -> SimResponse {
        let text = if self.pretty {
            body.pretty_go()
        } else {
            body.compact(true)
        };
        SimResponse::new(status, JSON, text)
    }
}

/// Go's `time.ParseDuration` (nanoseconds), enough to validate `?wait=` and check durations.
pub(super) fn parse_go_duration(s: &str) -> Option<u64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    (total <= 9.2e18).then_some(total as u64)
}

/// Go's `path.Clean`, keeping a trailing slash (what `http.ServeMux` redirects to).
pub(super) fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in p.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut cleaned = format!("/{}", out.join("/"));
    if p.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("10s"), Some(10_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("abc"), None);
    }

    #[test]
    fn go_paths() {
        assert_eq!(clean_path("/v1/kv/a//b"), "/v1/kv/a/b");
        assert_eq!(clean_path("/v1/kv/dir/"), "/v1/kv/dir/");
        assert_eq!(clean_path("/../x/./y"), "/x/y");
    }
}
