//! An in-memory Consul 1.8.7 cluster (one server, any number of client agents) that answers the
//! HTTP API the bridge uses, as a pure request handler.
//!
//! **What lives here:** [`SimConsul`] with per-agent service tables, the catalog view over them,
//! the KV store with Raft-like indexes, and `/v1/txn`; [`SimService`], [`KvEntry`] and
//! [`RequestCounts`].
//!
//! **What doesn't:** sockets, clocks, randomness, sessions, ACLs, health-check execution,
//! blocking queries and anti-entropy timing. Requests are answered at once and deterministically;
//! every map is a `BTreeMap`.
//!
//! # Modelling choices (sources: `docs/consul-api.md` §4, observed on 1.8.7, and Consul's code)
//!
//! * **Agents.** [`SimConsul::handle`] takes the address of the agent that received the request.
//!   An unknown or down agent answers `503` with a plain-text note: in reality the connection
//!   would be refused, which a pure handler cannot express, so callers check
//!   [`SimConsul::is_up`] first. The first agent added is the server; when it is down, client
//!   agents answer the cluster-wide endpoints (catalog, health, KV, txn, status) with
//!   `500 No known Consul servers` while their local agent endpoints keep working.
//! * **A down agent keeps its services and its node stays in `/v1/catalog/nodes`.** A crashed or
//!   partitioned client stays in the catalog as a failed member (its `serfHealth` check turns
//!   critical, which `/v1/health/service` shows) until it is reaped after `reconnect_timeout`
//!   (72 h by default); client agents also persist their service definitions and re-sync them on
//!   restart. A *graceful leave* would deregister the node; the simulator does not model it.
//! * **The catalog reflects agent services immediately.** Real anti-entropy syncs within about a
//!   second in dev mode; tests that need the lag must add it themselves. The server's own `consul`
//!   service shows in the catalog endpoints, never in `/v1/agent/services`.
//! * **Indexes.** One Raft index increments on each write that changes state (node, service or KV,
//!   and one per transaction). `CreateIndex`/`ModifyIndex` are kept per entry; `X-Consul-Index`
//!   is the KV table's or the catalog's last index.
//! * **Registration bodies** are decoded like Go's `encoding/json` with unknown fields rejected:
//!   keys match case-insensitively, `enable_tag_override`/`tagged_addresses` are accepted, the
//!   first error in document order is reported (`Request decode failed: json: unknown field "X"`,
//!   `json: cannot unmarshal string into Go struct field .Port of type int`, `EOF`, …). Checks are
//!   validated (`Invalid check: …`) and shown by `/v1/health/service` with their initial status,
//!   but never run. `TaggedAddresses` `lan_ipv4`/`wan_ipv4` (or `_ipv6`) are filled from an IP
//!   `Address` as 1.8.7 does. A `Port` outside `0..=65535` is stored and shown as sent but
//!   reads back as `None` in [`SimService::port`]. JSON syntax error texts only approximate Go's.
//! * **Responses** are compact JSON with Go's escaping (`<`, `>`, `&` as `\u003c`…) unless
//!   `?pretty` or [`SimConsul::pretty`] (dev agents pretty-print everything). Errors are
//!   `text/plain; charset=utf-8` one-liners; register/deregister answer `200` with no body and no
//!   `Content-Type` (the empty [`SimResponse::content_type`]). `?raw` sniffs the content type as
//!   1.8.7 did (before the 1.8.10 fix), simplified to HTML / text / octet-stream.
//! * **HTTP plumbing** follows Go's `net/http`: an undecodable path is `400 Bad Request`; a path
//!   with `//`, `.` or `..` segments is a `301` to the cleaned path; `/v1/kv` redirects to
//!   `/v1/kv/`; queries split on `&` and `;` (Go before 1.17) and a flag counts when present
//!   (`?recurse=false` recurses). Unknown routes: `404` with an empty body; wrong method:
//!   `405 method GET not allowed` with `Allow`.
//! * **KV** `?recurse` and `?keys` use the key as a plain string prefix (`pfx/a` matches `pfx/ab`);
//!   `?keys&separator=/` lists one level with `dir/` entries. Sessions (`?acquire`, `?release`,
//!   txn `lock`/`unlock`) are not modelled: no session ever exists, so they fail as an unknown
//!   session would. `?index`/`?wait` are validated but never block.
//! * **Counting.** [`SimConsul::counts`] counts every request handed to [`SimConsul::handle`]:
//!   `GET` as a read, anything else as a write (whatever the outcome).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use serde_json::Value;

use super::marathon::{
    parse_query, percent_decode, query_get, query_has, split_path_query, SimResponse, J,
};
use crate::encoding::{base64_decode, base64_encode, encode_path};
use crate::io::Method;

/// A service as the bridge registers it (the fields consular sends).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimService {
    /// Service ID, unique per agent.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Service address (may be empty).
    pub address: String,
    /// Port; `None` when absent or 0 (Consul does not tell them apart) or out of range.
    pub port: Option<u16>,
    /// Tags, in order.
    pub tags: Vec<String>,
}

/// One KV entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// Raw value bytes.
    pub value: Vec<u8>,
    /// Opaque client flags.
    pub flags: u64,
    /// Index of the write that created the key.
    pub create_index: u64,
    /// Index of the last write to the key.
    pub modify_index: u64,
    /// Times the key was locked (always 0: sessions are not modelled).
    pub lock_index: u64,
}

/// Requests handled, for tests that assert e.g. "no writes on a warm sync".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `GET` requests.
    pub reads: u64,
    /// `PUT`, `POST` and `DELETE` requests.
    pub writes: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Check {
    id: String,
    name: String,
    status: String,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
struct ServiceEntry {
    service: SimService,
    kind: String,
    port: i64,
    meta: BTreeMap<String, String>,
    tagged_addresses: BTreeMap<String, (String, i64)>,
    weights: (i64, i64),
    enable_tag_override: bool,
    checks: Vec<Check>,
    create_index: u64,
    modify_index: u64,
}

impl ServiceEntry {
    fn same_definition(&self, other: &ServiceEntry) -> bool {
        self.service == other.service
            && self.kind == other.kind
            && self.port == other.port
            && self.meta == other.meta
            && self.tagged_addresses == other.tagged_addresses
            && self.weights == other.weights
            && self.enable_tag_override == other.enable_tag_override
            && self.checks == other.checks
    }
}

#[derive(Debug, Clone)]
struct Agent {
    node: String,
    address: String,
    node_id: String,
    up: bool,
    services: BTreeMap<String, ServiceEntry>,
    create_index: u64,
    modify_index: u64,
}

/// Largest KV value and txn body (`kv_max_value_size`).
const MAX_VALUE: usize = 524_288;
/// Most operations in one transaction on 1.8.
const MAX_TXN_OPS: usize = 64;
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// An in-memory Consul 1.8.7 cluster. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct SimConsul {
    agents: Vec<Agent>,
    kv: KvStore,
    index: u64,
    kv_index: u64,
    catalog_index: u64,
    counts: RequestCounts,
    /// The datacenter name (`dc1`); `?dc=` naming another answers `500 No path to datacenter`.
    pub datacenter: String,
    /// Pretty-print every JSON body, as agents started with `-dev` do.
    pub pretty: bool,
}

impl Default for SimConsul {
    fn default() -> Self {
        Self::new()
    }
}

impl SimConsul {
    /// A cluster with no agents yet; add the server first with [`SimConsul::add_agent`].
    pub fn new() -> Self {
        SimConsul {
            agents: Vec::new(),
            kv: KvStore::default(),
            index: 0,
            kv_index: 0,
            catalog_index: 0,
            counts: RequestCounts::default(),
            datacenter: "dc1".into(),
            pretty: false,
        }
    }

    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Adds an agent on node `node` reachable at `address` (up). The first agent added is the
    /// server (the "main" endpoint, also an agent). A second agent with the same address is
    /// ignored.
    pub fn add_agent(&mut self, node: &str, address: &str) {
        if self.agent_index(address).is_some() {
            return;
        }
        let index = self.bump();
        self.catalog_index = index;
        let n = self.agents.len() as u64 + 1;
        self.agents.push(Agent {
            node: node.to_string(),
            address: address.to_string(),
            node_id: format!("{n:08x}-0000-4000-8000-{n:012x}"),
            up: true,
            services: BTreeMap::new(),
            create_index: index,
            modify_index: index,
        });
    }

    /// Starts or stops the agent at `address`. A stopped agent keeps its services and its node.
    pub fn set_agent_up(&mut self, address: &str, up: bool) {
        if let Some(i) = self.agent_index(address) {
            self.agents[i].up = up;
        }
    }

    /// Whether an agent at `address` exists and is up.
    pub fn is_up(&self, address: &str) -> bool {
        self.agent_index(address).is_some_and(|i| self.agents[i].up)
    }

    /// `(node, address)` of every agent, server first.
    pub fn agents(&self) -> Vec<(&str, &str)> {
        self.agents
            .iter()
            .map(|a| (a.node.as_str(), a.address.as_str()))
            .collect()
    }

    /// Services registered with the agent at `address`, by ID (empty for an unknown agent).
    pub fn services(&self, agent: &str) -> impl Iterator<Item = &SimService> {
        self.agent_index(agent)
            .map(|i| &self.agents[i].services)
            .into_iter()
            .flat_map(|s| s.values().map(|e| &e.service))
    }

    /// Every service with its agent's address, by agent then ID.
    pub fn all_services(&self) -> Vec<(String, SimService)> {
        self.agents
            .iter()
            .flat_map(|a| {
                a.services
                    .values()
                    .map(move |e| (a.address.clone(), e.service.clone()))
            })
            .collect()
    }

    /// Registers `service` with the agent at `address` directly (to seed foreign services), as a
    /// registration without checks would. No-op for an unknown agent.
    pub fn register(&mut self, agent: &str, service: SimService) {
        let Some(i) = self.agent_index(agent) else {
            return;
        };
        let port = service.port.map_or(0, i64::from);
        let entry = new_entry(service, port);
        self.store_service(i, entry);
    }

    /// All KV keys with their raw values.
    pub fn kv(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.kv.values
    }

    /// One KV entry with its flags and indexes.
    pub fn kv_entry(&self, key: &str) -> Option<KvEntry> {
        self.kv.get(key)
    }

    /// Writes `key` = `value` (flags 0) as a plain `PUT /v1/kv/<key>` would.
    pub fn put_kv(&mut self, key: &str, value: &[u8]) {
        let index = self.bump();
        self.kv_index = index;
        self.kv.set(key, value.to_vec(), 0, index);
    }

    /// Requests handled so far.
    pub fn counts(&self) -> RequestCounts {
        self.counts
    }

    /// The current Raft index.
    pub fn index(&self) -> u64 {
        self.index
    }

    fn agent_index(&self, address: &str) -> Option<usize> {
        self.agents.iter().position(|a| a.address == address)
    }

    fn store_service(&mut self, agent: usize, mut entry: ServiceEntry) {
        let id = entry.service.id.clone();
        let existing = self.agents[agent].services.get(&id);
        if existing.is_some_and(|e| e.same_definition(&entry)) {
            return;
        }
        let created = existing.map(|e| e.create_index);
        let index = self.bump();
        self.catalog_index = index;
        entry.create_index = created.unwrap_or(index);
        entry.modify_index = index;
        self.agents[agent].services.insert(id, entry);
    }

    // -- HTTP ---------------------------------------------------------------------------------

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

    fn with_meta(&self, response: SimResponse, index: u64) -> SimResponse {
        response
            .with_header("X-Consul-Index", format!("{}", index.max(1)))
            .with_header("X-Consul-KnownLeader", "true")
            .with_header("X-Consul-LastContact", "0")
    }

    // -- agent endpoints ----------------------------------------------------------------------

    fn http_register(&mut self, ai: usize, body: &[u8]) -> SimResponse {
        let decode_failed =
            |e: String| SimResponse::new(400, TEXT, format!("Request decode failed: {e}"));
        let fields = match decode_object(body, "structs.ServiceDefinition") {
            Ok(fields) => fields,
            Err(e) => return decode_failed(e),
        };
        let mut def = Definition::default();
        for (key, value) in &fields {
            if let Err(e) = def.set(key, value) {
                return decode_failed(e);
            }
        }
        if def.name.is_empty() {
            return SimResponse::new(400, TEXT, "Missing service name");
        }
        let checks = match def.checks() {
            Ok(checks) => checks,
            Err(e) => return e,
        };
        let id = if def.id.is_empty() {
            def.name.clone()
        } else {
            def.id.clone()
        };
        let service = SimService {
            id: id.clone(),
            name: def.name.clone(),
            address: def.address.clone(),
            port: u16::try_from(def.port).ok().filter(|p| *p != 0),
            tags: def.tags.clone(),
        };
        let mut entry = new_entry(service, def.port);
        entry.kind = def.kind.clone();
        entry.meta = def.meta.clone();
        entry.enable_tag_override = def.enable_tag_override;
        if let Some(w) = def.weights {
            entry.weights = w;
        }
        for (k, v) in &def.tagged_addresses {
            entry.tagged_addresses.insert(k.clone(), v.clone());
        }
        let total = checks.len();
        entry.checks = checks
            .into_iter()
            .enumerate()
            .map(|(n, c)| Check {
                id: c.id.unwrap_or_else(|| {
                    if total > 1 {
                        format!("service:{id}:{}", n + 1)
                    } else {
                        format!("service:{id}")
                    }
                }),
                name: c
                    .name
                    .unwrap_or_else(|| format!("Service '{}' check", def.name)),
                status: c.status.unwrap_or_else(|| "critical".into()),
                kind: c.kind,
            })
            .collect();
        self.store_service(ai, entry);
        SimResponse::new(200, "", Vec::new())
    }

    fn http_deregister(&mut self, ai: usize, id: &str) -> SimResponse {
        if id.is_empty() {
            return SimResponse::new(500, TEXT, "ServiceID missing");
        }
        if self.agents[ai].services.remove(id).is_some() {
            let index = self.bump();
            self.catalog_index = index;
        }
        SimResponse::new(200, "", Vec::new())
    }

    fn http_agent_service(&self, ai: usize, id: &str, ctx: &Ctx) -> SimResponse {
        match self.agents[ai].services.get(id) {
            Some(entry) => {
                let body = agent_service_json(entry, true);
                let hash = content_hash(&agent_service_json(entry, false).compact(true));
                ctx.json(200, &body)
                    .with_header("X-Consul-ContentHash", hash)
            }
            None => SimResponse::new(404, TEXT, format!("unknown service ID: {id}")),
        }
    }

    fn agent_self(&self, ai: usize) -> J {
        let agent = &self.agents[ai];
        let server = ai == 0;
        let mut tags = J::obj([
            ("build", J::s("1.8.7:")),
            ("dc", J::s(self.datacenter.as_str())),
            ("id", J::s(agent.node_id.as_str())),
            ("role", J::s(if server { "consul" } else { "node" })),
            ("segment", J::s("")),
            ("vsn", J::s("2")),
            ("vsn_max", J::s("3")),
            ("vsn_min", J::s("2")),
        ]);
        if server {
            tags.put("port", J::s("8300"));
            tags.put("raft_vsn", J::s("3"));
        }
        J::obj([
            (
                "Config",
                J::obj([
                    ("Datacenter", J::s(self.datacenter.as_str())),
                    ("NodeName", J::s(agent.node.as_str())),
                    ("NodeID", J::s(agent.node_id.as_str())),
                    ("Revision", J::s("simulated")),
                    ("Server", J::Bool(server)),
                    ("Version", J::s("1.8.7")),
                ]),
            ),
            ("DebugConfig", J::Obj(Vec::new())),
            (
                "Coord",
                J::obj([
                    ("Vec", J::Arr(vec![J::Int(0); 8])),
                    ("Error", J::Float(1.5)),
                    ("Adjustment", J::Int(0)),
                    ("Height", J::Float(1e-5)),
                ]),
            ),
            (
                "Member",
                J::obj([
                    ("Name", J::s(agent.node.as_str())),
                    ("Addr", J::s(agent.address.as_str())),
                    ("Port", J::Int(8301)),
                    ("Tags", tags),
                    ("Status", J::Int(1)),
                    ("ProtocolMin", J::Int(1)),
                    ("ProtocolMax", J::Int(5)),
                    ("ProtocolCur", J::Int(2)),
                    ("DelegateMin", J::Int(2)),
                    ("DelegateMax", J::Int(5)),
                    ("DelegateCur", J::Int(4)),
                ]),
            ),
            ("Stats", J::Obj(Vec::new())),
            ("Meta", J::obj([("consul-network-segment", J::s(""))])),
        ])
    }

    // -- catalog and health -------------------------------------------------------------------

    fn node_json(&self, agent: &Agent) -> J {
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
    fn instances(&self, name: &str, tag: Option<&str>) -> Vec<(&Agent, ServiceEntry)> {
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

    fn catalog_service_json(&self, agent: &Agent, e: &ServiceEntry) -> J {
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
    fn checks_json(&self, agent: &Agent, e: &ServiceEntry) -> Vec<(bool, J)> {
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
    fn health_state_json(&self, state: &str) -> J {
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

    fn health_json(&self, agent: &Agent, e: &ServiceEntry, checks: Vec<(bool, J)>) -> J {
        let node = J::obj([
            ("ID", J::s(agent.node_id.as_str())),
            ("Node", J::s(agent.node.as_str())),
            ("Address", J::s(agent.address.as_str())),
            ("Datacenter", J::s(self.datacenter.as_str())),
            ("TaggedAddresses", node_tagged_addresses(agent)),
            ("Meta", J::obj([("consul-network-segment", J::s(""))])),
            ("CreateIndex", J::u(agent.create_index)),
            ("ModifyIndex", J::u(agent.modify_index)),
        ]);
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

    // -- KV -----------------------------------------------------------------------------------

    fn kv_get(&self, key: &str, ctx: &Ctx) -> SimResponse {
        let recurse = query_has(&ctx.params, "recurse");
        let not_found = || self.with_meta(SimResponse::new(404, "", Vec::new()), self.kv_index);
        if query_has(&ctx.params, "keys") {
            let separator = query_get(&ctx.params, "separator").unwrap_or("");
            let mut keys: Vec<String> = Vec::new();
            for k in self.kv.values.keys().filter(|k| k.starts_with(key)) {
                let after = &k[key.len()..];
                let listed = match after.find(separator).filter(|_| !separator.is_empty()) {
                    Some(i) => k[..key.len() + i + separator.len()].to_string(),
                    None => k.clone(),
                };
                if keys.last() != Some(&listed) {
                    keys.push(listed);
                }
            }
            if keys.is_empty() {
                return not_found();
            }
            let body = J::strs(keys.iter().map(String::as_str));
            return self.with_meta(ctx.json(200, &body), self.kv_index);
        }
        if !recurse && key.is_empty() {
            return SimResponse::new(400, TEXT, "Missing key name");
        }
        let entries: Vec<(String, KvEntry)> = if recurse {
            self.kv.prefixed(key)
        } else {
            self.kv
                .get(key)
                .map(|e| (key.to_string(), e))
                .into_iter()
                .collect()
        };
        if entries.is_empty() {
            return not_found();
        }
        if !recurse && query_has(&ctx.params, "raw") {
            let value = entries[0].1.value.clone();
            let content_type = sniff(&value);
            return self.with_meta(SimResponse::new(200, content_type, value), self.kv_index);
        }
        let body = J::Arr(entries.iter().map(|(k, e)| kv_json(k, e, true)).collect());
        self.with_meta(ctx.json(200, &body), self.kv_index)
    }

    fn kv_put(&mut self, key: &str, ctx: &Ctx, body: &[u8]) -> SimResponse {
        if key.is_empty() {
            return SimResponse::new(400, TEXT, "Missing key name");
        }
        if let Some(r) = conflicting_flags(&ctx.params, &["cas", "acquire", "release"]) {
            return r;
        }
        if body.len() > MAX_VALUE {
            return SimResponse::new(
                413,
                TEXT,
                format!(
                    "Request body({} bytes) too large, max size: {MAX_VALUE} bytes. See https://www.consul.io/docs/agent/options.html#kv_max_value_size.",
                    body.len()
                ),
            );
        }
        let flags = match query_get(&ctx.params, "flags").map(parse_uint) {
            Some(Err(e)) => return SimResponse::new(500, TEXT, e),
            Some(Ok(f)) => f,
            None => 0,
        };
        let cas = match query_get(&ctx.params, "cas").map(parse_uint) {
            Some(Err(e)) => return SimResponse::new(500, TEXT, e),
            Some(Ok(c)) => Some(c),
            None => None,
        };
        for flag in ["acquire", "release"] {
            if let Some(session) = query_get(&ctx.params, flag) {
                return SimResponse::new(500, TEXT, session_error(session));
            }
        }
        let ok = match (cas, self.kv.get(key)) {
            (None, _) => true,
            (Some(0), existing) => existing.is_none(),
            (Some(c), Some(e)) => e.modify_index == c,
            (Some(_), None) => false,
        };
        if ok {
            let index = self.bump();
            self.kv_index = index;
            self.kv.set(key, body.to_vec(), flags, index);
        }
        ctx.json(200, &J::Bool(ok))
    }

    fn kv_delete(&mut self, key: &str, ctx: &Ctx) -> SimResponse {
        if let Some(r) = conflicting_flags(&ctx.params, &["recurse", "cas"]) {
            return r;
        }
        let recurse = query_has(&ctx.params, "recurse");
        if !recurse && key.is_empty() {
            return SimResponse::new(400, TEXT, "Missing key name");
        }
        let cas = match query_get(&ctx.params, "cas").map(parse_uint) {
            Some(Err(e)) => return SimResponse::new(500, TEXT, e),
            Some(Ok(c)) => Some(c),
            None => None,
        };
        let doomed: Vec<String> = if recurse {
            self.kv
                .values
                .keys()
                .filter(|k| k.starts_with(key))
                .cloned()
                .collect()
        } else {
            match (cas, self.kv.get(key)) {
                (Some(c), Some(e)) if e.modify_index != c => return ctx.json(200, &J::Bool(false)),
                (_, Some(_)) => vec![key.to_string()],
                (_, None) => Vec::new(),
            }
        };
        if !doomed.is_empty() {
            let index = self.bump();
            self.kv_index = index;
            for k in &doomed {
                self.kv.remove(k);
            }
        }
        ctx.json(200, &J::Bool(true))
    }

    fn txn(&mut self, ctx: &Ctx, body: &[u8]) -> SimResponse {
        if body.len() > MAX_VALUE {
            return SimResponse::new(
                413,
                TEXT,
                format!("Request body too large, max size: {MAX_VALUE} bytes"),
            );
        }
        let parse_failed =
            |e: String| SimResponse::new(400, TEXT, format!("Failed to parse body: {e}"));
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return parse_failed(go_syntax_error(body, &e)),
        };
        let ops = match value {
            Value::Array(ops) => ops,
            Value::Null => Vec::new(),
            other => {
                return parse_failed(format!(
                    "json: cannot unmarshal {} into Go value of type api.TxnOps",
                    json_kind(&other)
                ))
            }
        };
        if ops.len() > MAX_TXN_OPS {
            return SimResponse::new(
                413,
                TEXT,
                format!(
                    "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                    ops.len()
                ),
            );
        }
        let mut parsed = Vec::with_capacity(ops.len());
        for op in &ops {
            match TxnOp::parse(op) {
                Ok(op) => parsed.push(op),
                Err(TxnParseError::Body(e)) => return parse_failed(e),
                Err(TxnParseError::TooLarge(key, len)) => {
                    return SimResponse::new(
                        413,
                        TEXT,
                        format!("Value for key {key:?} is too large ({len} > {MAX_VALUE} bytes)"),
                    )
                }
            }
        }
        let writes = parsed.iter().any(TxnOp::is_write);
        let index = self.index + 1;
        let mut kv = self.kv.clone();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, op) in parsed.iter().enumerate() {
            match op.apply(&mut kv, index) {
                Ok(r) => results.extend(r),
                Err(what) => {
                    errors.push(J::obj([("OpIndex", J::u(i as u64)), ("What", J::s(what))]))
                }
            }
        }
        let read_meta = |o: &mut J, kv_index: u64| {
            o.put("Index", J::u(kv_index));
            o.put("LastContact", J::Int(0));
            o.put("KnownLeader", J::Bool(true));
            o.put("ConsistencyLevel", J::s("leader"));
        };
        if !errors.is_empty() {
            let mut o = J::obj([("Results", J::Null), ("Errors", J::Arr(errors))]);
            if !writes {
                read_meta(&mut o, self.kv_index);
            }
            let body = if ctx.pretty {
                o.pretty_go()
            } else {
                o.compact(true)
            };
            return SimResponse::new(409, JSON, body);
        }
        let mut o = J::obj([("Results", J::Arr(results)), ("Errors", J::Null)]);
        if writes {
            if kv != self.kv {
                self.index = index;
                self.kv_index = index;
                self.kv = kv;
            }
        } else {
            read_meta(&mut o, self.kv_index);
        }
        ctx.json(200, &o)
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

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

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
                } else {
                    return None;
                }
            }
        })
    }

    fn methods(&self) -> &'static [Method] {
        match self {
            Route::Register | Route::Deregister(_) | Route::Txn => &[Method::Put],
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
        )
    }
}

struct Ctx {
    params: Vec<(String, String)>,
    pretty: bool,
}

impl Ctx {
    fn json(&self, status: u16, body: &J) -> SimResponse {
        let text = if self.pretty {
            body.pretty_go()
        } else {
            body.compact(true)
        };
        SimResponse::new(status, JSON, text)
    }
}

// ---------------------------------------------------------------------------------------------
// Service registration decoding
// ---------------------------------------------------------------------------------------------

/// Top-level keys of a 1.8.7 service definition, with their Go field names and types.
const SERVICE_FIELDS: &[(&str, &str, &str)] = &[
    ("Kind", "Kind", "structs.ServiceKind"),
    ("ID", "ID", "string"),
    ("Name", "Name", "string"),
    ("Tags", "Tags", "[]string"),
    ("Address", "Address", "string"),
    (
        "TaggedAddresses",
        "TaggedAddresses",
        "map[string]structs.ServiceAddress",
    ),
    (
        "tagged_addresses",
        "TaggedAddresses",
        "map[string]structs.ServiceAddress",
    ),
    ("Meta", "Meta", "map[string]string"),
    ("Port", "Port", "int"),
    ("Check", "Check", "structs.CheckType"),
    ("Checks", "Checks", "structs.CheckTypes"),
    ("Weights", "Weights", "structs.Weights"),
    ("Token", "Token", "string"),
    ("EnableTagOverride", "EnableTagOverride", "bool"),
    ("enable_tag_override", "EnableTagOverride", "bool"),
    ("Proxy", "Proxy", "structs.ConnectProxyConfig"),
    ("Connect", "Connect", "structs.ServiceConnect"),
];

#[derive(Debug, Default)]
struct Definition {
    kind: String,
    id: String,
    name: String,
    tags: Vec<String>,
    address: String,
    tagged_addresses: BTreeMap<String, (String, i64)>,
    meta: BTreeMap<String, String>,
    port: i64,
    check: Option<Value>,
    checks: Vec<Value>,
    weights: Option<(i64, i64)>,
    enable_tag_override: bool,
}

struct NewCheck {
    id: Option<String>,
    name: Option<String>,
    status: Option<String>,
    kind: &'static str,
}

fn type_error(value: &Value, field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field .{field} of type {go_type}",
        json_kind(value)
    )
}

fn json_kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

fn go_string(value: &Value, field: &str) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(type_error(other, field, "string")),
    }
}

fn go_int(value: &Value, field: &str) -> Result<Option<i64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => Err(format!(
                "json: cannot unmarshal number {n} into Go struct field .{field} of type int"
            )),
        },
        other => Err(type_error(other, field, "int")),
    }
}

fn go_string_map(value: &Value, field: &str) -> Result<BTreeMap<String, String>, String> {
    match value {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(type_error(other, field, "string")),
            })
            .collect(),
        other => Err(type_error(other, field, "map[string]string")),
    }
}

impl Definition {
    /// Applies one top-level `key: value` (Go: case-insensitive match, unknown keys rejected).
    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let field = SERVICE_FIELDS
            .iter()
            .find(|(k, _, _)| *k == key)
            .or_else(|| {
                SERVICE_FIELDS
                    .iter()
                    .find(|(k, _, _)| k.eq_ignore_ascii_case(key))
            });
        let Some(&(_, field, go_type)) = field else {
            return Err(format!("json: unknown field {key:?}"));
        };
        match field {
            "Kind" => self.kind = go_string(value, field)?.unwrap_or_default(),
            "ID" => self.id = go_string(value, field)?.unwrap_or_default(),
            "Name" => self.name = go_string(value, field)?.unwrap_or_default(),
            "Address" => self.address = go_string(value, field)?.unwrap_or_default(),
            "Token" => {
                go_string(value, field)?;
            }
            "Port" => self.port = go_int(value, field)?.unwrap_or(0),
            "Tags" => {
                self.tags = match value {
                    Value::Null => Vec::new(),
                    Value::Array(items) => items
                        .iter()
                        .map(|t| go_string(t, field).map(Option::unwrap_or_default))
                        .collect::<Result<_, _>>()?,
                    other => return Err(type_error(other, field, go_type)),
                }
            }
            "Meta" => self.meta = go_string_map(value, field)?,
            "EnableTagOverride" => {
                self.enable_tag_override = match value {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    other => return Err(type_error(other, field, go_type)),
                }
            }
            "TaggedAddresses" => {
                self.tagged_addresses = match value {
                    Value::Null => BTreeMap::new(),
                    Value::Object(m) => {
                        let mut out = BTreeMap::new();
                        for (k, v) in m {
                            let Value::Object(addr) = v else {
                                return Err(type_error(v, field, "structs.ServiceAddress"));
                            };
                            let mut a = (String::new(), 0);
                            for (ak, av) in addr {
                                if ak.eq_ignore_ascii_case("Address") {
                                    a.0 = go_string(av, "TaggedAddresses.Address")?
                                        .unwrap_or_default();
                                } else if ak.eq_ignore_ascii_case("Port") {
                                    a.1 = go_int(av, "TaggedAddresses.Port")?.unwrap_or(0);
                                } else {
                                    return Err(format!("json: unknown field {ak:?}"));
                                }
                            }
                            out.insert(k.clone(), a);
                        }
                        out
                    }
                    other => return Err(type_error(other, field, go_type)),
                }
            }
            "Weights" => match value {
                Value::Null => self.weights = None,
                Value::Object(m) => {
                    let mut w = (0, 0);
                    for (k, v) in m {
                        if k.eq_ignore_ascii_case("Passing") {
                            w.0 = go_int(v, "Weights.Passing")?.unwrap_or(0);
                        } else if k.eq_ignore_ascii_case("Warning") {
                            w.1 = go_int(v, "Weights.Warning")?.unwrap_or(0);
                        } else {
                            return Err(format!("json: unknown field {k:?}"));
                        }
                    }
                    self.weights = Some(w);
                }
                other => return Err(type_error(other, field, go_type)),
            },
            "Check" => match value {
                Value::Null => self.check = None,
                Value::Object(_) => self.check = Some(value.clone()),
                other => return Err(type_error(other, field, go_type)),
            },
            "Checks" => match value {
                Value::Null => self.checks = Vec::new(),
                Value::Array(items) => {
                    for item in items {
                        if !matches!(item, Value::Object(_) | Value::Null) {
                            return Err(type_error(item, field, "structs.CheckType"));
                        }
                    }
                    self.checks = items.iter().filter(|i| !i.is_null()).cloned().collect();
                }
                other => return Err(type_error(other, field, go_type)),
            },
            // Proxy / Connect: accepted when an object, not modelled.
            _ => {
                if !matches!(value, Value::Null | Value::Object(_)) {
                    return Err(type_error(value, field, go_type));
                }
            }
        }
        Ok(())
    }

    /// Validates the check definitions like `CheckType.Validate`.
    fn checks(&self) -> Result<Vec<NewCheck>, SimResponse> {
        let decode_failed =
            |e: String| SimResponse::new(400, TEXT, format!("Request decode failed: {e}"));
        let invalid = |e: &str| SimResponse::new(400, TEXT, format!("Invalid check: {e}"));
        let mut out = Vec::new();
        for check in self.check.iter().chain(self.checks.iter()) {
            let Value::Object(fields) = check else {
                continue;
            };
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            };
            let string = |name: &str| -> Result<Option<String>, SimResponse> {
                match get(name) {
                    None => Ok(None),
                    Some(v) => go_string(v, name).map_err(decode_failed),
                }
            };
            let duration = |name: &str| -> Result<u64, SimResponse> {
                match get(name) {
                    None | Some(Value::Null) => Ok(0),
                    Some(Value::String(s)) => parse_go_duration(s)
                        .ok_or_else(|| decode_failed(format!("time: invalid duration {s:?}"))),
                    Some(Value::Number(n)) => Ok(n.as_u64().unwrap_or(0)),
                    Some(other) => Err(decode_failed(type_error(other, name, "time.Duration"))),
                }
            };
            let interval = duration("Interval")?;
            let ttl = duration("TTL")?;
            let script = get("Args")
                .or_else(|| get("ScriptArgs"))
                .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()));
            let non_empty = |name: &str| -> Result<bool, SimResponse> {
                Ok(string(name)?.is_some_and(|s| !s.is_empty()))
            };
            let kind = if script {
                "script"
            } else if non_empty("HTTP")? {
                "http"
            } else if non_empty("TCP")? {
                "tcp"
            } else if non_empty("GRPC")? {
                "grpc"
            } else if non_empty("AliasNode")? || non_empty("AliasService")? {
                "alias"
            } else {
                "ttl"
            };
            let interval_check = matches!(kind, "script" | "http" | "tcp" | "grpc");
            let alias = kind == "alias";
            if interval > 0 && ttl > 0 {
                return Err(invalid("Interval and TTL cannot both be specified"));
            }
            if interval_check && interval == 0 {
                return Err(invalid(
                    "Interval must be > 0 for Script, HTTP, or TCP checks",
                ));
            }
            if !interval_check && !alias && ttl == 0 {
                return Err(invalid("TTL must be > 0 for TTL checks"));
            }
            let status = string("Status")?.filter(|s| !s.is_empty());
            if let Some(s) = &status {
                if !matches!(s.as_str(), "passing" | "warning" | "critical") {
                    return Err(invalid(&format!(
                        "Status must be one of passing, warning, or critical, not {s:?}"
                    )));
                }
            }
            out.push(NewCheck {
                id: string("CheckID")?
                    .or(string("ID")?)
                    .filter(|s| !s.is_empty()),
                name: string("Name")?.filter(|s| !s.is_empty()),
                status,
                kind,
            });
        }
        Ok(out)
    }
}

/// An object whose keys keep document order (for Go's first-error-wins decoding).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedObject, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    fields.push((k, v));
                }
                Ok(OrderedObject(fields))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Decodes a request body that must be a JSON object into its fields in document order, with
/// Go-like error texts (`EOF`, `unexpected EOF`, `cannot unmarshal array into Go value of type …`).
fn decode_object(body: &[u8], go_type: &str) -> Result<Vec<(String, Value)>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("EOF".into());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| go_syntax_error(body, &e))?;
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Object(_) => serde_json::from_slice::<OrderedObject>(body)
            .map(|o| o.0)
            .map_err(|e| go_syntax_error(body, &e)),
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            json_kind(&other)
        )),
    }
}

/// An approximation of Go's JSON syntax error text for `body`.
fn go_syntax_error(body: &[u8], error: &serde_json::Error) -> String {
    if error.is_eof() {
        return "unexpected EOF".into();
    }
    // serde_json reports 1-based line and column; find that byte.
    let mut line = 1;
    let mut offset = 0;
    for (i, b) in body.iter().enumerate() {
        if line == error.line() {
            offset = i;
            break;
        }
        if *b == b'\n' {
            line += 1;
        }
    }
    let at = offset + error.column().saturating_sub(1);
    match body.get(at) {
        Some(&b) if b.is_ascii_graphic() => {
            format!(
                "invalid character '{}' looking for beginning of value",
                b as char
            )
        }
        Some(&b) => format!(
            "invalid character {:?} looking for beginning of value",
            b as char
        ),
        None => "unexpected EOF".into(),
    }
}

fn new_entry(service: SimService, port: i64) -> ServiceEntry {
    let mut tagged = BTreeMap::new();
    match ip_kind(&service.address) {
        Some(4) => {
            tagged.insert("lan_ipv4".into(), (service.address.clone(), port));
            tagged.insert("wan_ipv4".into(), (service.address.clone(), port));
        }
        Some(_) => {
            tagged.insert("lan_ipv6".into(), (service.address.clone(), port));
            tagged.insert("wan_ipv6".into(), (service.address.clone(), port));
        }
        None => {}
    }
    ServiceEntry {
        service,
        kind: String::new(),
        port,
        meta: BTreeMap::new(),
        tagged_addresses: tagged,
        weights: (1, 1),
        enable_tag_override: false,
        checks: Vec::new(),
        create_index: 0,
        modify_index: 0,
    }
}

/// `Some(4)` for an IPv4 (or v4-mapped IPv6) literal, `Some(6)` for IPv6, `None` otherwise
/// (Go's `net.ParseIP` + `To4`).
fn ip_kind(address: &str) -> Option<u8> {
    fn v4(s: &str) -> Option<[u8; 4]> {
        let mut out = [0u8; 4];
        let mut parts = s.split('.');
        for slot in &mut out {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = p.parse().ok()?;
        }
        parts.next().is_none().then_some(out)
    }
    if v4(address).is_some() {
        return Some(4);
    }
    // IPv6: up to 8 groups, one `::`, optional trailing dotted quad.
    let (head, tail) = match address.split_once("::") {
        Some((h, t)) => {
            if t.contains("::") {
                return None;
            }
            (h, Some(t))
        }
        None => (address, None),
    };
    let groups = |s: &str| -> Option<Vec<u16>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        let parts: Vec<&str> = s.split(':').collect();
        for (i, p) in parts.iter().enumerate() {
            if i == parts.len() - 1 && p.contains('.') {
                let q = v4(p)?;
                out.push(u16::from_be_bytes([q[0], q[1]]));
                out.push(u16::from_be_bytes([q[2], q[3]]));
            } else {
                if p.is_empty() || p.len() > 4 {
                    return None;
                }
                out.push(u16::from_str_radix(p, 16).ok()?);
            }
        }
        Some(out)
    };
    let head_groups = groups(head)?;
    let mut all = head_groups.clone();
    match tail {
        Some(t) => {
            let tail_groups = groups(t)?;
            if head_groups.len() + tail_groups.len() > 7 {
                return None;
            }
            all.resize(8 - tail_groups.len(), 0);
            all.extend(tail_groups);
        }
        None => {
            if all.len() != 8 {
                return None;
            }
        }
    }
    let v4_mapped = all[..5].iter().all(|g| *g == 0) && all[5] == 0xffff;
    Some(if v4_mapped { 4 } else { 6 })
}

fn agent_service_json(e: &ServiceEntry, with_hash: bool) -> J {
    let mut o = J::Obj(Vec::new());
    if !e.kind.is_empty() {
        o.put("Kind", J::s(e.kind.as_str()));
    }
    o.put("ID", J::s(e.service.id.as_str()));
    o.put("Service", J::s(e.service.name.as_str()));
    o.put("Tags", J::strs(e.service.tags.iter().map(String::as_str)));
    o.put("Meta", meta_json(e));
    o.put("Port", J::Int(e.port));
    o.put("Address", J::s(e.service.address.as_str()));
    if !e.tagged_addresses.is_empty() {
        o.put("TaggedAddresses", tagged_addresses_json(e));
    }
    o.put("Weights", weights_json(e));
    o.put("EnableTagOverride", J::Bool(e.enable_tag_override));
    if with_hash {
        let hash = content_hash(&o.compact(true));
        o.put("ContentHash", J::s(hash));
    }
    o
}

fn meta_json(e: &ServiceEntry) -> J {
    J::Obj(
        e.meta
            .iter()
            .map(|(k, v)| (k.clone(), J::s(v.as_str())))
            .collect(),
    )
}

fn weights_json(e: &ServiceEntry) -> J {
    J::obj([
        ("Passing", J::Int(e.weights.0)),
        ("Warning", J::Int(e.weights.1)),
    ])
}

fn tagged_addresses_json(e: &ServiceEntry) -> J {
    J::Obj(
        e.tagged_addresses
            .iter()
            .map(|(k, (a, p))| {
                (
                    k.clone(),
                    J::obj([("Address", J::s(a.as_str())), ("Port", J::Int(*p))]),
                )
            })
            .collect(),
    )
}

fn proxy_json() -> J {
    J::obj([
        ("MeshGateway", J::Obj(Vec::new())),
        ("Expose", J::Obj(Vec::new())),
    ])
}

fn node_tagged_addresses(agent: &Agent) -> J {
    let a = || J::s(agent.address.as_str());
    J::obj([
        ("lan", a()),
        ("lan_ipv4", a()),
        ("wan", a()),
        ("wan_ipv4", a()),
    ])
}

/// A deterministic 16-hex-digit hash (FNV-1a) standing in for Consul's content hash.
fn content_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

// ---------------------------------------------------------------------------------------------
// KV helpers
// ---------------------------------------------------------------------------------------------

/// The KV table: raw values (what [`SimConsul::kv`] lends out) and, under the same keys, flags
/// and indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KvStore {
    values: BTreeMap<String, Vec<u8>>,
    meta: BTreeMap<String, KvMeta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KvMeta {
    flags: u64,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
}

impl KvStore {
    fn get(&self, key: &str) -> Option<KvEntry> {
        let value = self.values.get(key)?;
        let meta = self.meta.get(key)?;
        Some(KvEntry {
            value: value.clone(),
            flags: meta.flags,
            create_index: meta.create_index,
            modify_index: meta.modify_index,
            lock_index: meta.lock_index,
        })
    }

    fn contains_key(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    fn set(&mut self, key: &str, value: Vec<u8>, flags: u64, index: u64) {
        let meta = self.meta.entry(key.to_string()).or_insert(KvMeta {
            flags,
            create_index: index,
            modify_index: index,
            lock_index: 0,
        });
        meta.flags = flags;
        meta.modify_index = index;
        self.values.insert(key.to_string(), value);
    }

    fn remove(&mut self, key: &str) {
        self.values.remove(key);
        self.meta.remove(key);
    }

    fn remove_prefix(&mut self, prefix: &str) {
        self.values.retain(|k, _| !k.starts_with(prefix));
        self.meta.retain(|k, _| !k.starts_with(prefix));
    }

    /// Entries whose key starts with `prefix` (a plain string prefix), by key.
    fn prefixed(&self, prefix: &str) -> Vec<(String, KvEntry)> {
        self.values
            .keys()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| self.get(k).map(|e| (k.clone(), e)))
            .collect()
    }
}

fn kv_json(key: &str, e: &KvEntry, with_value: bool) -> J {
    let value = if with_value && !e.value.is_empty() {
        J::s(base64_encode(&e.value))
    } else {
        J::Null
    };
    J::obj([
        ("LockIndex", J::u(e.lock_index)),
        ("Key", J::s(key)),
        ("Flags", J::u(e.flags)),
        ("Value", value),
        ("CreateIndex", J::u(e.create_index)),
        ("ModifyIndex", J::u(e.modify_index)),
    ])
}

/// Go's `strconv.ParseUint(s, 10, 64)` with its error text.
fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

fn session_error(session: &str) -> String {
    if session.len() == 36 {
        format!("invalid session {session:?}")
    } else {
        "failed session lookup: index error: UUID must be 36 characters".into()
    }
}

/// `400 Conflicting flags: <query re-encoded>` when more than one of `flags` is present.
fn conflicting_flags(params: &[(String, String)], flags: &[&str]) -> Option<SimResponse> {
    if flags.iter().filter(|f| query_has(params, f)).count() < 2 {
        return None;
    }
    // Go's url.Values.Encode: keys sorted, values in order, QueryEscape'd.
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let encoded: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    Some(SimResponse::new(
        400,
        TEXT,
        format!("Conflicting flags: {}", encoded.join("&")),
    ))
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// 1.8.7's sniffed `?raw` content type (before the 1.8.10 `text/plain` fix), simplified.
fn sniff(value: &[u8]) -> &'static str {
    let start = value
        .iter()
        .position(|b| !b" \t\n\x0c\r".contains(b))
        .unwrap_or(value.len());
    let head = &value[start..];
    let lower: Vec<u8> = head.iter().take(14).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return "text/html; charset=utf-8";
    }
    let binary = value.iter().any(|&b| {
        b <= 0x08 || b == 0x0b || (0x0e..=0x1a).contains(&b) || (0x1c..=0x1f).contains(&b)
    });
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Go's `time.ParseDuration` (nanoseconds), enough to validate `?wait=` and check durations.
fn parse_go_duration(s: &str) -> Option<u64> {
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
fn clean_path(p: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

struct TxnOp {
    kv: Option<KvOp>,
}

struct KvOp {
    verb: String,
    key: String,
    value: Vec<u8>,
    flags: u64,
    index: u64,
    session: String,
}

enum TxnParseError {
    Body(String),
    TooLarge(String, usize),
}

impl TxnOp {
    fn parse(op: &Value) -> Result<TxnOp, TxnParseError> {
        let field = |v: &Value, name: &str| -> Option<Value> {
            v.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body_err = |e: String| TxnParseError::Body(e);
        match op {
            Value::Object(_) => {}
            Value::Null => return Ok(TxnOp { kv: None }),
            other => {
                return Err(body_err(format!(
                    "json: cannot unmarshal {} into Go value of type api.TxnOp",
                    json_kind(other)
                )))
            }
        }
        let Some(kv) = field(op, "KV").filter(|v| !v.is_null()) else {
            return Ok(TxnOp { kv: None });
        };
        if !kv.is_object() {
            return Err(body_err(type_error(&kv, "KV", "api.KVTxnOp")));
        }
        let string = |name: &str| -> Result<String, TxnParseError> {
            match field(&kv, name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(body_err(type_error(
                    &other,
                    &format!("KV.{name}"),
                    "string",
                ))),
            }
        };
        let uint = |name: &str| -> Result<u64, TxnParseError> {
            match field(&kv, name) {
                None | Some(Value::Null) => Ok(0),
                Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                    body_err(format!(
                        "json: cannot unmarshal number {n} into Go struct field .KV.{name} of type uint64"
                    ))
                }),
                Some(other) => Err(body_err(type_error(&other, &format!("KV.{name}"), "uint64"))),
            }
        };
        let verb = string("Verb")?;
        let key = string("Key")?;
        let encoded = string("Value")?;
        let value = if encoded.is_empty() {
            Vec::new()
        } else {
            decode_go_base64(&encoded).map_err(body_err)?
        };
        if value.len() > MAX_VALUE {
            return Err(TxnParseError::TooLarge(key, value.len()));
        }
        Ok(TxnOp {
            kv: Some(KvOp {
                verb,
                key,
                value,
                flags: uint("Flags")?,
                index: uint("Index")?,
                session: string("Session")?,
            }),
        })
    }

    fn is_write(&self) -> bool {
        self.kv.as_ref().is_some_and(|kv| {
            matches!(
                kv.verb.as_str(),
                "set" | "cas" | "lock" | "unlock" | "delete" | "delete-tree" | "delete-cas"
            )
        })
    }

    /// Applies the op to the working copy; results to append, or the error's `What`.
    fn apply(&self, kv: &mut KvStore, index: u64) -> Result<Vec<J>, String> {
        let Some(op) = &self.kv else {
            return Err("simulator: only KV operations are modelled".into());
        };
        let key = op.key.as_str();
        let result = |kv: &KvStore, with_value: bool| -> Vec<J> {
            kv.get(key)
                .map(|e| vec![J::obj([("KV", kv_json(key, &e, with_value))])])
                .unwrap_or_default()
        };
        match op.verb.as_str() {
            "set" => {
                kv.set(key, op.value.clone(), op.flags, index);
                Ok(result(kv, false))
            }
            "cas" => {
                let ok = match kv.get(key) {
                    None => op.index == 0,
                    Some(e) => op.index != 0 && e.modify_index == op.index,
                };
                if !ok {
                    return Err(format!("failed to set key {key:?}, index is stale"));
                }
                kv.set(key, op.value.clone(), op.flags, index);
                Ok(result(kv, false))
            }
            "lock" => {
                if op.session.is_empty() {
                    return Err("missing session".into());
                }
                Err(format!("invalid session {:?}", op.session))
            }
            "unlock" => {
                if op.session.is_empty() {
                    return Err("missing session".into());
                }
                Err(format!(
                    "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                ))
            }
            "get" => {
                if !kv.contains_key(key) {
                    return Err(format!("key {key:?} doesn't exist"));
                }
                Ok(result(kv, true))
            }
            "get-or-empty" => Ok(match kv.get(key) {
                Some(e) => vec![J::obj([("KV", kv_json(key, &e, true))])],
                None => vec![J::obj([(
                    "KV",
                    kv_json(
                        key,
                        &KvEntry {
                            value: Vec::new(),
                            flags: 0,
                            create_index: 0,
                            modify_index: 0,
                            lock_index: 0,
                        },
                        true,
                    ),
                )])],
            }),
            "get-tree" => Ok(kv
                .prefixed(key)
                .iter()
                .map(|(k, e)| J::obj([("KV", kv_json(k, e, true))]))
                .collect()),
            "check-index" => match kv.get(key) {
                None => Err(format!("key {key:?} doesn't exist")),
                Some(e) if e.modify_index != op.index => Err(format!(
                    "failed index check for key {key:?}, current modify index {} != {}",
                    e.modify_index, op.index
                )),
                Some(_) => Ok(result(kv, false)),
            },
            "check-session" => match kv.get(key) {
                None => Err(format!(
                    "failed to check session, key {key:?} doesn't exist"
                )),
                Some(_) if !op.session.is_empty() => Err(format!(
                    "failed session check for key {key:?}, current session \"\" != {:?}",
                    op.session
                )),
                Some(_) => Ok(result(kv, false)),
            },
            "check-not-exists" => {
                if kv.contains_key(key) {
                    return Err(format!("key {key:?} exists"));
                }
                Ok(Vec::new())
            }
            "delete" => {
                kv.remove(key);
                Ok(Vec::new())
            }
            "delete-tree" => {
                kv.remove_prefix(key);
                Ok(Vec::new())
            }
            "delete-cas" => match kv.get(key) {
                Some(e) if e.modify_index != op.index => {
                    Err(format!("failed to delete key {key:?}, index is stale"))
                }
                _ => {
                    kv.remove(key);
                    Ok(Vec::new())
                }
            },
            verb => Err(format!("unknown KV verb {verb:?}")),
        }
    }
}

/// Go's `base64.StdEncoding` decoding (padding required) with its error text.
fn decode_go_base64(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let data_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
    if let Some(bad) = bytes[..data_len].iter().position(|&b| !alphabet(b)) {
        return Err(format!("illegal base64 data at input byte {bad}"));
    }
    if bytes.len() % 4 != 0 || bytes.len() - data_len > 2 {
        let at = bytes.len() - bytes.len() % 4;
        return Err(format!(
            "illegal base64 data at input byte {}",
            at.min(data_len)
        ));
    }
    base64_decode(text).ok_or_else(|| format!("illegal base64 data at input byte {data_len}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_kinds() {
        assert_eq!(ip_kind("10.0.0.1"), Some(4));
        assert_eq!(ip_kind("::1"), Some(6));
        assert_eq!(ip_kind("::ffff:10.0.0.1"), Some(4));
        assert_eq!(ip_kind("fe80::1:2:3"), Some(6));
        assert_eq!(ip_kind("1:2:3:4:5:6:7:8"), Some(6));
        assert_eq!(ip_kind("1:2:3:4:5:6:7:8:9"), None);
        assert_eq!(ip_kind("slave-1"), None);
        assert_eq!(ip_kind("1.2.3"), None);
        assert_eq!(ip_kind(":::"), None);
    }

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
    fn go_paths_and_numbers() {
        assert_eq!(clean_path("/v1/kv/a//b"), "/v1/kv/a/b");
        assert_eq!(clean_path("/v1/kv/dir/"), "/v1/kv/dir/");
        assert_eq!(clean_path("/../x/./y"), "/x/y");
        assert_eq!(parse_uint("12"), Ok(12));
        assert_eq!(
            parse_uint("abc"),
            Err("strconv.ParseUint: parsing \"abc\": invalid syntax".into())
        );
        assert!(parse_uint("99999999999999999999").is_err());
        assert_eq!(decode_go_base64("Zm9v"), Ok(b"foo".to_vec()));
        assert!(decode_go_base64("Zm9").is_err());
        assert!(decode_go_base64("Zm!v").is_err());
    }
}
