//! An in-memory Consul 1.8.7 cluster (one server, any number of client agents) that answers the
//! HTTP API the bridge uses, as a pure request handler.
//!
//! **What lives here:** [`SimConsul`] with per-agent service tables, the catalog view over them,
//! the KV store with Raft-like indexes, `/v1/txn`, and sessions with locks on a simulated clock;
//! [`SimService`], [`SimKvEntry`], [`SimSession`] and [`RequestCounts`]. This file holds the
//! cluster's state and its direct API (agents up and down, seeding services and keys, observing);
//! the HTTP side is split by responsibility: `routes` (the front: path cleaning, redirects, the
//! mux, dispatch), `registration` (agent endpoints and Go-style decoding of service definitions),
//! `catalog` (catalog and health views), `kv` (the KV table, `/v1/kv` with `?acquire`/`?release`,
//! and [`SimConsul::kv_blocks`]), `txn` (`/v1/txn`) and `session` (`/v1/session/*`, the clock,
//! TTL expiry and invalidation).
//!
//! **What doesn't:** sockets, wall clocks, randomness, ACLs, health-check execution and
//! anti-entropy timing. Requests are answered at once and deterministically (a blocking read is
//! answered as it would be once it stops blocking; [`SimConsul::kv_blocks`] tells the caller
//! whether to park it first); every map is a `BTreeMap`.
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
//!   `Content-Type` (the empty [`SimResponse::content_type`](crate::SimResponse::content_type)). `?raw` sniffs the content type as
//!   1.8.7 did (before the 1.8.10 fix), simplified to HTML / text / octet-stream.
//! * **HTTP plumbing** follows Go's `net/http`: an undecodable path is `400 Bad Request`; a path
//!   with `//`, `.` or `..` segments is a `301` to the cleaned path; `/v1/kv` redirects to
//!   `/v1/kv/`; queries split on `&` and `;` (Go before 1.17) and a flag counts when present
//!   (`?recurse=false` recurses). Unknown routes: `404` with an empty body; wrong method:
//!   `405 method GET not allowed` with `Allow`.
//! * **KV** `?recurse` and `?keys` use the key as a plain string prefix (`pfx/a` matches `pfx/ab`);
//!   `?keys&separator=/` lists one level with `dir/` entries. A single existing key answers with
//!   `X-Consul-Index` = its `ModifyIndex` (a missing key, listings and trees with the KV table's
//!   index). A plain `PUT` (or txn `set`/`cas`) keeps a held key's `Session` but resets its
//!   `LockIndex` to 0, as 1.8.7 does.
//! * **Clock.** [`SimConsul::set_time`]/[`SimConsul::advance`] move a simulated clock (a
//!   `Duration` since the start); only sessions read it. [`SimWorld`](crate::SimWorld) keeps it
//!   at its own time.
//! * **Sessions** (observed on 1.8.7 and from its code): create takes `Name`, `Node` (the
//!   receiving agent's by default), `LockDelay` (a duration string, or nanoseconds, below 1000
//!   read as seconds; default 15 s), `Behavior` (`release`|`delete`), `TTL` (`0` or 10 s–24 h)
//!   and `Checks`/`NodeChecks`/`ServiceChecks` (default `serfHealth`, each must exist on the
//!   node and not be critical), with 1.8.7's texts and order (decode errors 400, the rest 500).
//!   IDs come from a counter (`00000001-5e55-4000-8000-000000000001`, …). Renew answers
//!   `[session]` or `404 Session id '<id>' not found`; destroy `true` (also for an unknown ID);
//!   info `[session]` or `[]`; a malformed ID `500 failed session lookup: index error: …`
//!   (go-memdb's UUID texts). **TTL:** Consul promises only that a session outlives its TTL; the
//!   leader's timer fires `2 × TTL` after the create or the last renewal (`SessionTTLMultiplier`;
//!   observed: a 10 s session renewed once vanished 20.0 s after the renewal), and the simulator
//!   takes exactly that worst case. While the server is down no timer runs; when it comes back
//!   every TTL restarts from then, as a newly elected leader does. **Invalidation** (TTL,
//!   destroy, [`SimConsul::invalidate_session`], or a check of the session going critical or
//!   away: a down agent's `serfHealth` at once, a deregistered service's checks) is one write
//!   that releases (`Session` cleared, value, flags and `LockIndex` kept) or deletes every key
//!   the session holds, and starts the lock delay (at most 60 s) on each: until it ends,
//!   `?acquire` answers `false` and a txn `lock` fails, whoever asks. An explicit `?release` or
//!   `unlock` starts no lock delay.
//! * **Locks.** `?acquire=<s>` (body = value, `?flags`) → `true`: a free key is taken
//!   (`LockIndex` + 1, `Session` set), the holder's own acquire just updates value and flags;
//!   `false` when another session holds it or during a lock delay. `?release=<s>` → `true` when
//!   `s` holds it (the value and flags become the request's, `LockIndex` stays), else `false`
//!   (even for an unknown session). Errors: `missing session`, `invalid session "<s>"`, the UUID
//!   errors (all 500). Txn `lock`, `unlock` and `check-session` follow the same rules with 1.8.7's
//!   `What` texts; a `lock` in a lock delay fails the whole transaction before anything applies.
//! * **Counting.** [`SimConsul::counts`] counts every request handed to [`SimConsul::handle`]:
//!   `GET` as a read, anything else as a write (whatever the outcome).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

mod catalog;
mod kv;
mod registration;
mod routes;
mod session;
mod txn;

use kv::KvStore;
use registration::new_entry;
use session::Session;
pub use session::{SessionBehavior, SimSession};

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
pub struct SimKvEntry {
    /// Raw value bytes.
    pub value: Vec<u8>,
    /// Opaque client flags.
    pub flags: u64,
    /// Index of the write that created the key.
    pub create_index: u64,
    /// Index of the last write to the key.
    pub modify_index: u64,
    /// Times the key was acquired by a session (`LockIndex`; a plain write resets it to 0).
    pub lock_index: u64,
    /// The session holding the key, if any.
    pub session: Option<String>,
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
    now: Duration,
    sessions: BTreeMap<String, Session>,
    session_counter: u64,
    session_index: u64,
    /// Keys in a lock delay, with when it ends.
    lock_delays: BTreeMap<String, Duration>,
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
            now: Duration::ZERO,
            sessions: BTreeMap::new(),
            session_counter: 0,
            session_index: 0,
            lock_delays: BTreeMap::new(),
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

    /// Starts or stops the agent at `address`. A stopped agent keeps its services and its node;
    /// its `serfHealth` turns critical, which invalidates the sessions that name it (at once
    /// while the server runs, else when it returns). A server coming back restarts every
    /// session's TTL timer.
    pub fn set_agent_up(&mut self, address: &str, up: bool) {
        if let Some(i) = self.agent_index(address) {
            let was = self.agents[i].up;
            self.agents[i].up = up;
            if i == 0 && up && !was {
                self.server_restarted();
            } else {
                self.sweep_session_checks();
            }
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
    pub fn kv_entry(&self, key: &str) -> Option<SimKvEntry> {
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
        self.sweep_session_checks();
    }
}
