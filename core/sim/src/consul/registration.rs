//! Service registration on the simulated Consul's agents: the agent endpoints
//! (`/v1/agent/service/register`, `…/deregister/{id}`, `/v1/agent/service/{id}`,
//! `/v1/agent/self`), decoding a registration body as Go's `encoding/json` would (unknown
//! fields, types and syntax errors with Go's texts), checks, IP kinds, and the JSON of an agent's
//! service.
//!
//! Not here: the catalog and health views over those services (`super::catalog`), routing
//! (`super::routes`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde_json::Value;

use super::routes::{parse_go_duration, Ctx};
use super::{Agent, Check, ServiceEntry, SimConsul, SimService, TEXT};
use crate::wire::{SimResponse, J};

impl SimConsul {
    pub(super) fn http_register(&mut self, ai: usize, body: &[u8]) -> SimResponse {
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

    pub(super) fn http_deregister(&mut self, ai: usize, id: &str) -> SimResponse {
        if id.is_empty() {
            return SimResponse::new(500, TEXT, "ServiceID missing");
        }
        if self.agents[ai].services.remove(id).is_some() {
            let index = self.bump();
            self.catalog_index = index;
            self.sweep_session_checks();
        }
        SimResponse::new(200, "", Vec::new())
    }

    pub(super) fn http_agent_service(&self, ai: usize, id: &str, ctx: &Ctx) -> SimResponse {
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

    pub(super) fn agent_self(&self, ai: usize) -> J {
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
}

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

pub(super) fn type_error(value: &Value, field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field .{field} of type {go_type}",
        json_kind(value)
    )
}

pub(super) fn json_kind(value: &Value) -> String {
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
pub(super) fn decode_object(body: &[u8], go_type: &str) -> Result<Vec<(String, Value)>, String> {
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
pub(super) fn go_syntax_error(body: &[u8], error: &serde_json::Error) -> String {
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

pub(super) fn new_entry(service: SimService, port: i64) -> ServiceEntry {
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

pub(super) fn agent_service_json(e: &ServiceEntry, with_hash: bool) -> J {
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

pub(super) fn meta_json(e: &ServiceEntry) -> J {
    J::Obj(
        e.meta
            .iter()
            .map(|(k, v)| (k.clone(), J::s(v.as_str())))
            .collect(),
    )
}

pub(super) fn weights_json(e: &ServiceEntry) -> J {
    J::obj([
        ("Passing", J::Int(e.weights.0)),
        ("Warning", J::Int(e.weights.1)),
    ])
}

pub(super) fn tagged_addresses_json(e: &ServiceEntry) -> J {
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

pub(super) fn proxy_json() -> J {
    J::obj([
        ("MeshGateway", J::Obj(Vec::new())),
        ("Expose", J::Obj(Vec::new())),
    ])
}

pub(super) fn node_tagged_addresses(agent: &Agent) -> J {
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
}
