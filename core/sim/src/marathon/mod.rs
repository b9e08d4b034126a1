//! An in-memory Marathon that answers the HTTP API the bridge uses, as a pure request handler.
//!
//! **What lives here:** [`SimMarathon`] (apps with their ports, networks and health checks, tasks,
//! health results, event subscriptions and the event bus, with the JSON shapes of four Marathon
//! versions, [`MarathonVersion`]) and the SSE framing helper [`sse_frame`]. This file holds the
//! model's state, its mutations (what a test makes happen) and its observers; the rest is split
//! by responsibility: `model` (the public data types), `events` (the bus and each change's
//! events), `json` (JSON shapes per version), `routes` (the HTTP API and its error bodies) and
//! `validation` (request bodies, ids, selectors, URLs, paths). The response type,
//! [`SimResponse`](crate::SimResponse), is shared with the Consul model.
//!
//! **What doesn't:** sockets, clocks, threads and randomness. Time only moves through
//! [`SimMarathon::set_time`] / [`SimMarathon::advance`]; ids come from counters; every map is a
//! `BTreeMap`. So two runs fed the same calls produce byte-identical responses and events.
//! `/v2/events` streaming is left to a wrapper: it drains [`SimMarathon::take_events`] and writes
//! [`sse_frame`]s (see [`SimMarathon::event_type_filter`]). Marathon never gets scheduling logic:
//! tasks start, change state and die only when the test says so ([`SimMarathon::start_task`],
//! [`SimMarathon::set_task_state`]); `instances` is bookkeeping, nothing launches to meet it.
//!
//! # Sources and modelling choices
//!
//! Shapes follow `docs/marathon-api.md` and the fixtures in `fixtures/marathon/` of the shared
//! folder, and where those are silent, Marathon's own writers (`Formats.scala`,
//! `MarathonExceptionMapper.scala`, `LeaderProxyFilter.scala`, `EventSubscriptionsResource.scala`,
//! `InstanceChangedEventsGenerator.scala` at the respective release lines):
//!
//! * **Task objects.** 0.15/1.1: `id, host, ipAddresses, ports, startedAt (null while staging),
//!   stagedAt, version, slaveId, appId`, then `servicePorts` and `healthCheckResults` only when
//!   non-empty; **no `state`**. 1.4: `state` added, `ipAddresses` only when known. 1.10: the RAML
//!   shape of `task_with_ip_addresses_v1.10_test.json` (`ports`, `servicePorts`, `ipAddresses`,
//!   `healthCheckResults`, `localVolumes` always present, `role: "*"`, `startedAt` absent while
//!   staging; `region`/`zone` only exist when the agent has a fault domain, which simulated agents
//!   have not).
//! * **Health results**, one per health check with a result, in check order, are keyed `taskId`
//!   up to 1.3 and `instanceId` from 1.4; 1.4 writes `lastFailureCause` and nulls, 1.10 leaves
//!   unset optional fields out. `health_status_changed_event` follows each check's result,
//!   `instance_health_changed_event` (1.4+) the instance's: healthy when every check is alive.
//! * **Health checks** ([`SimHealthCheck`]) follow each line's writer: 0.15/1.1's single
//!   `HealthCheck` format (`path, protocol, portIndex, command, …, ignoreHttp1xx, port`, absent
//!   options left out; the 1.1 doc sample's `command: null` is older than that writer), 1.4+'s
//!   per-kind formats (Marathon HTTP/TCP, Mesos command/HTTP/TCP with `delaySeconds`). Marathon
//!   adds `portIndex: 0` to a check that names no port. 1.10 leaves an empty list out.
//! * **Ports and networking** follow marathon-api.md §3's table ([`SimPort`], [`SimNetwork`]):
//!   ≤1.4 writes `ports` (service ports) and `portDefinitions` in host mode, Docker's
//!   `container.docker.network` `BRIDGE`/`USER` with `container.docker.portMappings`, and
//!   `ipAddress` for IP-per-task (discovery ports, which have no labels) and for `USER` (naming
//!   the network); next to `ipAddress` the top-level port fields are left out (1.1+). 1.10 writes
//!   `networks` (`host`, `container/bridge`, `container` with its name; IP-per-task is a
//!   container network without one), `portDefinitions` only in host mode and
//!   `container.portMappings` otherwise; never `ports` or `ipAddress`. Port mappings have
//!   `hostPort: 0` on the bridge and none on a container network. Tasks on a container network
//!   (or IP-per-task) have no host ports; tasks of any non-host network get an address once
//!   running (`172.17.x.y` on the bridge, `9.0.x.y` otherwise) unless the test set one. The
//!   Docker image is always `busybox`; 0.15 is given the ≤1.4 shapes, though some of them
//!   (`USER` networking, names and labels on ports) came after it.
//! * **`GET /v2/apps` on [`MarathonVersion::V0_15`] ignores `embed` and never lists tasks**
//!   ([`SimMarathon::ignore_embed`]). This is a deliberate simulator choice, not a claim about
//!   0.15.x: it forces a bridge to fall back to per-app task requests, which is the path that meets
//!   the 0.15 `404` for apps with no tasks (marathon issue #3881, [`SimMarathon::empty_tasks_404`]).
//! * **No leader** ([`SimMarathon::no_leader`]): `GET /v2/leader` answers
//!   `404 {"message":"There is no leader"}` (leader.raml); everything else gets the
//!   `LeaderProxyFilter` error page "Could not determine the current leader", `503` up to 1.4 and
//!   `502` on 1.10 (the filter's status changed between those lines). In the real code that filter
//!   also covers `/v2/leader`; the 404 is what `LeaderResource` answers when it is reached.
//! * **Unknown routes:** `404 {"message":"URI not found: <path>"}` (the Jersey `NotFoundException`
//!   mapping); wrong method: `405 {"message":"Method Not Allowed"}` with `Allow`.
//! * **Event subscriptions** exist up to 1.4 (`404` on 1.10). POST answers the `subscribe_event`
//!   itself (with `timestamp`, which the docs omit but `Json.writes[Subscribe]` writes) and
//!   publishes it; 1.4 validates the URL like `java.net.URL` (`422`). With
//!   [`SimMarathon::callbacks_enabled`] off, every call is `400` with Marathon's message.
//! * **`/v2/events`** through [`SimMarathon::handle`] answers like a request without the exact
//!   `Accept: text/event-stream` header: Jetty's `405` HTML page.
//! * **Events** keep Marathon's field order: case-class order for `Json.writes` events
//!   (`eventType`, `timestamp` last). From 1.4 a task change emits `status_update_event` and then,
//!   when the condition changed, `instance_changed_event` (`taskEvent +: instanceEvent`); the first
//!   `status_update_event` of a task has `slaveId: ""` because no Mesos status exists yet.
//!   0.15 and 1.1 leave `ipAddresses` out of `status_update_event` when unknown.
//! * **Ids:** task ids `<safePath>.<uuid>` up to 1.7 (1.4 instance ids `<safePath>.marathon-<uuid>`,
//!   derived from the legacy task id), and `<safePath>.instance-<uuid>._app.1` on 1.10, with
//!   counter-based version-1-looking UUIDs.
//! * App `POST`/`PUT`/`DELETE` are supported with a small body subset (`id`, `labels`,
//!   `instances`, `cmd`, `ports`, `portDefinitions` with their names and labels); other fields
//!   (`networks`, `container`, `healthChecks`, …) are accepted and ignored.
//! * **Definition changes** (labels, ports, port specs, network, health checks) each give the app
//!   a new version and emit `api_post_event` then `group_change_success`, as a `PUT` would;
//!   running tasks keep the version they started with. The `add_health_check_event` /
//!   `remove_health_check_event` Marathon's health-check manager publishes are not modelled.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

mod events;
mod json;
mod model;
mod routes;
mod validation;

use crate::wire::J;
pub use json::iso8601;
pub use model::{
    sse_frame, MarathonVersion, SimApp, SimEvent, SimHealth, SimHealthCheck, SimNetwork, SimPort,
    SimTask, SimTaskFailure, SSE_CONTENT_TYPE, SSE_HEARTBEAT,
};
use validation::normalize_app_id;

/// 2026-01-01T00:00:00.000Z, the default simulated time.
pub const DEFAULT_TIME_MS: u64 = 1_767_225_600_000;

const TERMINAL: &[&str] = &[
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
    "TASK_LOST",
];

/// States that appear as-is in a 1.4+ task's `state` (others fold into `TASK_STAGING`).
const LISTED_STATES: &[&str] = &[
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_UNREACHABLE",
];

/// A task's health over `checks` health checks (and any other with a result): `Some(false)` if a
/// result is not alive, `Some(true)` if every check has an alive result, else `None` (undecided).
fn aggregate_health(task: &SimTask, checks: usize) -> Option<bool> {
    if task.health.values().any(|h| !h.alive) {
        return Some(false);
    }
    let checks = checks.max(task.health.keys().next_back().map_or(0, |i| i + 1));
    (checks > 0 && (0..checks).all(|i| task.health.contains_key(&i))).then_some(true)
}

fn is_terminal(state: &str) -> bool {
    TERMINAL.contains(&state)
}

/// Marathon's `Condition` for a Mesos state (1.4+ `instance_changed_event.condition`).
fn condition(state: &str) -> &'static str {
    match state {
        "TASK_STAGING" => "Staging",
        "TASK_STARTING" => "Starting",
        "TASK_RUNNING" => "Running",
        "TASK_KILLING" => "Killing",
        "TASK_FINISHED" => "Finished",
        "TASK_FAILED" => "Failed",
        "TASK_KILLED" => "Killed",
        "TASK_ERROR" => "Error",
        "TASK_DROPPED" => "Dropped",
        "TASK_UNREACHABLE" => "Unreachable",
        "TASK_GONE" | "TASK_GONE_BY_OPERATOR" => "Gone",
        "TASK_LOST" | "TASK_UNKNOWN" => "Unknown",
        _ => "Staging",
    }
}

/// An in-memory Marathon. See the [module documentation](self) for what it models.
#[derive(Debug, Clone)]
pub struct SimMarathon {
    version: MarathonVersion,
    now: u64,
    /// The newest app version handed out: versions never repeat, even within one millisecond,
    /// as the bridge relies on (Marathon's are timestamps of changes far apart).
    last_version: u64,
    apps: BTreeMap<String, SimApp>,
    events: Vec<SimEvent>,
    subscriptions: Vec<String>,
    next_id: u64,
    agents: BTreeMap<String, usize>,
    /// No leader is known: `/v2/leader` → 404, every other path → the proxy filter's 503 (≤1.4) or
    /// 502 (1.10) error page.
    pub no_leader: bool,
    /// Marathon runs with `--event_subscriber http_callback`. Default: true where callbacks exist
    /// (≤1.4). Off: `/v2/eventSubscriptions` answers 400. Ignored on 1.10 (404 regardless).
    pub callbacks_enabled: bool,
    /// `GET /v2/apps/{id}/tasks` answers 404 for an existing app with no tasks (0.15.x bug,
    /// mesosphere/marathon#3881). Default: true on [`MarathonVersion::V0_15`] only.
    pub empty_tasks_404: bool,
    /// `GET /v2/apps` ignores `embed` and never lists tasks. Default: true on
    /// [`MarathonVersion::V0_15`] only (a simulator choice, see the module docs).
    pub ignore_embed: bool,
    /// `host:port` that `/v2/leader` and `/v2/info` report.
    pub leader: String,
    /// Client address written into `api_post_event` and `subscribe_event` (`clientIp`).
    pub client_ip: String,
}

impl SimMarathon {
    /// An empty Marathon of `version` at [`DEFAULT_TIME_MS`].
    pub fn new(version: MarathonVersion) -> Self {
        SimMarathon {
            version,
            now: DEFAULT_TIME_MS,
            last_version: 0,
            apps: BTreeMap::new(),
            events: Vec::new(),
            subscriptions: Vec::new(),
            next_id: 0,
            agents: BTreeMap::new(),
            no_leader: false,
            callbacks_enabled: version.has_event_subscriptions(),
            empty_tasks_404: version == MarathonVersion::V0_15,
            ignore_embed: version == MarathonVersion::V0_15,
            leader: "127.0.0.1:8080".into(),
            client_ip: "127.0.0.1".into(),
        }
    }

    /// The version imitated.
    pub fn version(&self) -> MarathonVersion {
        self.version
    }

    /// Sets the clock used for event timestamps and versions (ms since the Unix epoch).
    pub fn set_time(&mut self, millis_since_epoch: u64) {
        self.now = millis_since_epoch;
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&mut self, millis: u64) {
        self.now = self.now.saturating_add(millis);
    }

    /// The current simulated time (ms since the epoch).
    pub fn now(&self) -> u64 {
        self.now
    }

    // -- mutations ----------------------------------------------------------------------------

    /// Creates app `id` (made absolute) or replaces its labels. Bumps the app version and emits
    /// `api_post_event` then `group_change_success`, as a `PUT /v2/apps/<id>` would.
    pub fn put_app(&mut self, id: &str, labels: &[(&str, &str)]) {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let id = normalize_app_id(id);
        self.upsert_app(&id, |app| app.labels = labels);
    }

    /// Sets the service ports of app `id` (a config change: new version and events as
    /// [`SimMarathon::put_app`]). No-op for an unknown app.
    pub fn set_app_ports(&mut self, id: &str, ports: &[u16]) {
        let id = normalize_app_id(id);
        if self.apps.contains_key(&id) {
            self.upsert_app(&id, |app| app.service_ports = ports.to_vec());
        }
    }

    /// Sets the names, labels and container ports of app `id`'s ports (a config change: new
    /// version and events as [`SimMarathon::put_app`]). In host networking they are served as
    /// `portDefinitions` (`{port, protocol, name, labels}`); in bridge and container networking as
    /// port mappings (`container.portMappings` from 1.5, `container.docker.portMappings` before);
    /// for IP-per-task before 1.5 as `ipAddress.discovery.ports`. The service port of port `i` is
    /// [`SimApp::service_ports`]`[i]` (`0` when there is none). No-op for an unknown app.
    pub fn set_app_port_specs(&mut self, app_id: &str, ports: Vec<SimPort>) {
        let id = normalize_app_id(app_id);
        if self.apps.contains_key(&id) {
            self.upsert_app(&id, |app| app.port_specs = ports);
        }
    }

    /// Sets how app `id`'s tasks are networked (a config change: new version and events as
    /// [`SimMarathon::put_app`]). 1.5+: `networks` (`host`, `container/bridge`, `container` with
    /// the name; IP-per-task is a container network without a name). Before 1.5:
    /// `container.docker.network` `BRIDGE`, or `USER` with an `ipAddress` naming the network;
    /// IP-per-task is `ipAddress` alone. Tasks started later on a container network (or IP-per-
    /// task) get no host ports, whatever [`SimMarathon::start_task`] is given, and once running an
    /// address of their own unless [`SimMarathon::set_task_ip_addresses`] set one. No-op for an
    /// unknown app.
    pub fn set_app_network(&mut self, app_id: &str, network: SimNetwork) {
        let id = normalize_app_id(app_id);
        if self.apps.contains_key(&id) {
            self.upsert_app(&id, |app| app.network = network);
        }
    }

    /// Sets app `id`'s health checks, served as `healthChecks` with Marathon's field names (a
    /// config change: new version and events as [`SimMarathon::put_app`]). Results already
    /// recorded stay. No-op for an unknown app.
    pub fn set_app_health_checks(&mut self, app_id: &str, checks: Vec<SimHealthCheck>) {
        let id = normalize_app_id(app_id);
        if self.apps.contains_key(&id) {
            self.upsert_app(&id, |app| app.health_checks = checks);
        }
    }

    /// Sets the requested instance count of app `id` (bookkeeping only; nothing is launched).
    pub fn set_app_instances(&mut self, id: &str, instances: u32) {
        let id = normalize_app_id(id);
        if self.apps.contains_key(&id) {
            self.upsert_app(&id, |app| app.instances = instances);
        }
    }

    fn upsert_app(&mut self, id: &str, change: impl FnOnce(&mut SimApp)) {
        self.last_version = self.now.max(self.last_version + 1);
        let now = self.last_version;
        let app = self.apps.entry(id.to_string()).or_insert_with(|| SimApp {
            id: id.to_string(),
            labels: BTreeMap::new(),
            tasks: Vec::new(),
            service_ports: Vec::new(),
            port_specs: Vec::new(),
            network: SimNetwork::Host,
            health_checks: Vec::new(),
            instances: 1,
            cmd: "sleep 3600".into(),
            version: now,
            last_task_failure: None,
        });
        change(app);
        app.version = now;
        let app = app.clone();
        self.emit_api_post(&app);
        self.emit_group_change(app.version);
    }

    /// Deletes app `id`: emits `api_post_event` and `group_change_success`, kills every task
    /// (`status_update_event` `TASK_KILLED`, plus `instance_changed_event` from 1.4), then
    /// `app_terminated_event`. No-op for an unknown app.
    pub fn remove_app(&mut self, id: &str) {
        let id = normalize_app_id(id);
        let Some(app) = self.apps.get(&id).cloned() else {
            return;
        };
        self.emit_api_post(&app);
        self.emit_group_change(self.now);
        for task in &app.tasks {
            self.set_task_state(&task.id, "TASK_KILLED");
        }
        self.apps.remove(&id);
        self.emit(
            "app_terminated_event",
            J::obj([("appId", J::s(id.as_str()))]),
        );
    }

    /// Stages a new task of app `app_id` on `host` with host `ports` and returns its id. Creates
    /// the app (as [`SimMarathon::put_app`] with no labels) if it does not exist. A task of an app
    /// on a container network (or IP-per-task) has no host ports: `ports` is ignored. Emits
    /// `status_update_event` `TASK_STAGING` (and `instance_changed_event` from 1.4).
    pub fn start_task(&mut self, app_id: &str, host: &str, ports: &[u16]) -> String {
        let app_id = normalize_app_id(app_id);
        if !self.apps.contains_key(&app_id) {
            self.put_app(&app_id, &[]);
        }
        self.next_id += 1;
        let uuid = format!(
            "{:08x}-{:04x}-11f0-8000-0242ac110002",
            self.next_id & 0xffff_ffff,
            (self.next_id >> 32) & 0xffff
        );
        let safe = app_id.trim_start_matches('/').replace('/', "_");
        let (id, instance_id) = match self.version {
            MarathonVersion::V1_10 => {
                let instance = format!("{safe}.instance-{uuid}");
                (format!("{instance}._app.1"), instance)
            }
            _ => (format!("{safe}.{uuid}"), format!("{safe}.marathon-{uuid}")),
        };
        let next_agent = self.agents.len();
        let agent = *self.agents.entry(host.to_string()).or_insert(next_agent);
        let now = self.now;
        let Some(app) = self.apps.get_mut(&app_id) else {
            return String::new();
        };
        let ports = if app.network.is_container_network() {
            Vec::new()
        } else {
            ports.to_vec()
        };
        let n = self.next_id;
        let network_address = match app.network {
            SimNetwork::Host => String::new(),
            SimNetwork::Bridge => format!("172.17.{}.{}", (n >> 8) & 0xff, n & 0xff),
            _ => format!("9.0.{}.{}", (n >> 8) & 0xff, n & 0xff),
        };
        let task = SimTask {
            id: id.clone(),
            instance_id,
            app_id: app_id.clone(),
            host: host.to_string(),
            ports,
            state: "TASK_STAGING".into(),
            slave_id: format!("5e1d0000-0000-4000-8000-000000000001-S{agent}"),
            staged_at: now,
            started_at: None,
            version: app.version,
            ip_addresses: Vec::new(),
            health: BTreeMap::new(),
            healthy: None,
            mesos_status_seen: false,
            network_address,
        };
        app.tasks.push(task.clone());
        self.emit_task_change(&task, None);
        id
    }

    /// Records a Mesos status update for task `task_id`: any Mesos state name. Emits
    /// `status_update_event` (1.4+: also `instance_changed_event` when the condition changes).
    /// Terminal states (FINISHED FAILED KILLED ERROR DROPPED GONE GONE_BY_OPERATOR UNKNOWN LOST)
    /// remove the task; FAILED, ERROR and LOST also become the app's `lastTaskFailure`. Unknown
    /// task: no-op.
    pub fn set_task_state(&mut self, task_id: &str, state: &str) {
        let now = self.now;
        let Some((app_id, index)) = self.find_task(task_id) else {
            return;
        };
        let Some(app) = self.apps.get_mut(&app_id) else {
            return;
        };
        let task = &mut app.tasks[index];
        let previous = condition(&task.state);
        task.state = state.to_string();
        task.mesos_status_seen = true;
        if state == "TASK_RUNNING" && task.started_at.is_none() {
            task.started_at = Some(now);
            // Mesos reports the container's address with the first TASK_RUNNING.
            if task.ip_addresses.is_empty() && !task.network_address.is_empty() {
                task.ip_addresses = alloc::vec![task.network_address.clone()];
            }
        }
        let task = task.clone();
        if is_terminal(state) {
            app.tasks.remove(index);
            if matches!(state, "TASK_FAILED" | "TASK_ERROR" | "TASK_LOST") {
                app.last_task_failure = Some(SimTaskFailure {
                    task_id: task.id.clone(),
                    host: task.host.clone(),
                    message: String::new(),
                    state: state.to_string(),
                    timestamp: now,
                    version: task.version,
                    slave_id: task.slave_id.clone(),
                });
            }
        }
        self.emit_task_change(&task, Some(previous));
    }

    /// Sets the container IP addresses Mesos reports for task `task_id` (no event).
    pub fn set_task_ip_addresses(&mut self, task_id: &str, addresses: &[&str]) {
        if let Some(task) = self.task_mut(task_id) {
            task.ip_addresses = addresses.iter().map(|a| (*a).to_string()).collect();
        }
    }

    /// Records a result of health check 0 for task `task_id`:
    /// [`SimMarathon::set_task_check_health`] with index 0.
    pub fn set_task_health(&mut self, task_id: &str, alive: bool) {
        self.set_task_check_health(task_id, 0, alive);
    }

    /// Records a result of the app's health check `check_index` for task `task_id` (any index: an
    /// app without that check still shows the result). The task's `healthCheckResults` hold one
    /// entry per check with a result, in check order. When the result differs from that check's
    /// previous one (or is its first), emits `health_status_changed_event` (`taskId` ≤1.3,
    /// `instanceId` 1.4+). From 1.4, when the instance's health changes, also emits
    /// `instance_health_changed_event`: healthy once every check (those of the app, and any with
    /// a result) is alive, unhealthy as soon as one is not. Unknown task: no-op.
    pub fn set_task_check_health(&mut self, task_id: &str, check_index: usize, alive: bool) {
        let now = self.now;
        let Some((app_id, index)) = self.find_task(task_id) else {
            return;
        };
        let Some(app) = self.apps.get_mut(&app_id) else {
            return;
        };
        let checks = app.health_checks.len();
        let task = &mut app.tasks[index];
        let changed = task.health.get(&check_index).map(|h| h.alive) != Some(alive);
        let health = task.health.entry(check_index).or_insert(SimHealth {
            alive,
            consecutive_failures: 0,
            first_success: None,
            last_success: None,
            last_failure: None,
            last_failure_cause: None,
        });
        health.alive = alive;
        if alive {
            health.consecutive_failures = 0;
            health.first_success.get_or_insert(now);
            health.last_success = Some(now);
        } else {
            health.consecutive_failures = health.consecutive_failures.saturating_add(1);
            health.last_failure = Some(now);
            health.last_failure_cause = Some("ConnectException: Connection refused".into());
        }
        let healthy = aggregate_health(task, checks);
        let health_changed = healthy.is_some() && healthy != task.healthy;
        if health_changed {
            task.healthy = healthy;
        }
        let task = task.clone();
        if changed {
            let id_key = if self.version.instances() {
                ("instanceId", J::s(task.instance_id.as_str()))
            } else {
                ("taskId", J::s(task.id.as_str()))
            };
            self.emit(
                "health_status_changed_event",
                J::obj([
                    ("appId", J::s(task.app_id.as_str())),
                    id_key,
                    ("version", J::s(iso8601(task.version))),
                    ("alive", J::Bool(alive)),
                ]),
            );
        }
        if health_changed && self.version.instances() {
            self.emit_last(
                "instance_health_changed_event",
                J::obj([
                    ("instanceId", J::s(task.instance_id.as_str())),
                    ("runSpecId", J::s(task.app_id.as_str())),
                    ("healthy", J::Bool(healthy == Some(true))),
                    ("runSpecVersion", J::s(iso8601(task.version))),
                ]),
            );
        }
    }

    // -- observation --------------------------------------------------------------------------

    /// All apps, by id.
    pub fn apps(&self) -> impl Iterator<Item = &SimApp> {
        self.apps.values()
    }

    /// App `id` (leading `/` optional).
    pub fn app(&self, id: &str) -> Option<&SimApp> {
        self.apps.get(&normalize_app_id(id))
    }

    /// Every task in `TASK_RUNNING`, with its app id, by app then age.
    pub fn running_tasks(&self) -> Vec<(&str, &SimTask)> {
        self.apps
            .values()
            .flat_map(|app| app.tasks.iter().map(move |t| (app.id.as_str(), t)))
            .filter(|(_, t)| t.state == "TASK_RUNNING")
            .collect()
    }

    /// Task `task_id`, if it is still listed.
    pub fn task(&self, task_id: &str) -> Option<&SimTask> {
        self.apps
            .values()
            .flat_map(|a| a.tasks.iter())
            .find(|t| t.id == task_id)
    }

    /// Events emitted since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<SimEvent> {
        core::mem::take(&mut self.events)
    }

    /// Registered callback URLs, in registration order.
    pub fn subscriptions(&self) -> &[String] {
        &self.subscriptions
    }

    fn find_task(&self, task_id: &str) -> Option<(String, usize)> {
        self.apps.values().find_map(|app| {
            app.tasks
                .iter()
                .position(|t| t.id == task_id)
                .map(|i| (app.id.clone(), i))
        })
    }

    fn task_mut(&mut self, task_id: &str) -> Option<&mut SimTask> {
        self.apps
            .values_mut()
            .flat_map(|a| a.tasks.iter_mut())
            .find(|t| t.id == task_id)
    }
}
