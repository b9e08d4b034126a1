//! The simulated Marathon's public data: which release line it imitates ([`MarathonVersion`]),
//! apps (with their ports, networks and health checks), tasks, health results and task failures
//! as the model stores them, and events on its bus with their SSE framing ([`sse_frame`]).
//!
//! Not here: how they change (`super`, the mutations), how they look on the wire
//! (`super::json`), or who asks for them (`super::routes`).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;

/// Which Marathon release line the simulator imitates. Each stands for the shapes of its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MarathonVersion {
    /// 0.15.x (0.15.0–0.15.3): no task `state`, legacy ids, `404` for an app with no tasks.
    V0_15,
    /// 1.1.x: no task `state`, `portDefinitions` next to `ports`, HTTP callbacks.
    V1_1,
    /// 1.4.x: task `state`, instance events, `instanceId` in health, callbacks deprecated.
    V1_4,
    /// 1.10.x: RAML shapes, `instance-…._app.1` task ids, no callbacks.
    V1_10,
}

impl MarathonVersion {
    /// The release `GET /v2/info` reports. Only the release line is meaningful.
    pub fn release(self) -> &'static str {
        match self {
            MarathonVersion::V0_15 => "0.15.3",
            MarathonVersion::V1_1 => "1.1.1",
            MarathonVersion::V1_4 => "1.4.13",
            MarathonVersion::V1_10 => "1.10.17",
        }
    }

    /// Whether `/v2/eventSubscriptions` exists (removed in 1.5).
    pub fn has_event_subscriptions(self) -> bool {
        self <= MarathonVersion::V1_4
    }

    /// Whether `/v2/events?event_type=` filters (since 1.3.7).
    pub fn filters_event_types(self) -> bool {
        self >= MarathonVersion::V1_4
    }

    /// Whether instances exist (1.4+): `state` on tasks, `instanceId` in health, instance events.
    pub(super) fn instances(self) -> bool {
        self >= MarathonVersion::V1_4
    }
}

/// One event on Marathon's bus, as the event stream and HTTP callbacks carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// The `eventType` (and SSE `event:` name).
    pub event_type: String,
    /// The event as compact one-line JSON, as Marathon sends it.
    pub json: Vec<u8>,
}

impl SimEvent {
    /// The event parsed as JSON.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// `event: <type>\r\ndata: <json>\r\n\r\n`, the frame Jetty's `EventSource` writes per event.
pub fn sse_frame(event: &SimEvent) -> Vec<u8> {
    let mut frame = Vec::with_capacity(event.json.len() + event.event_type.len() + 19);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(event.event_type.as_bytes());
    frame.extend_from_slice(b"\r\ndata: ");
    frame.extend_from_slice(&event.json);
    frame.extend_from_slice(b"\r\n\r\n");
    frame
}

/// The keep-alive Jetty writes on an idle event stream every 10 s: one bare CRLF.
pub const SSE_HEARTBEAT: &[u8] = b"\r\n";

/// The `Content-Type` of a Marathon event stream.
pub const SSE_CONTENT_TYPE: &str = "text/event-stream;charset=UTF-8";

/// A task's last result of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimHealth {
    /// Whether the last check passed.
    pub alive: bool,
    /// Failures in a row (0 after a success).
    pub consecutive_failures: u32,
    /// First success (ms since the epoch).
    pub first_success: Option<u64>,
    /// Last success.
    pub last_success: Option<u64>,
    /// Last failure.
    pub last_failure: Option<u64>,
    /// Why the last failure happened.
    pub last_failure_cause: Option<String>,
}

/// One task of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTask {
    /// Task id in the version's format.
    pub id: String,
    /// Instance id (1.4+ concept; also filled for older versions, never shown there).
    pub instance_id: String,
    /// The app's id, e.g. `/grp/app`.
    pub app_id: String,
    /// Agent host name.
    pub host: String,
    /// Host ports, in order.
    pub ports: Vec<u16>,
    /// Last Mesos state name set (`TASK_STAGING` at start).
    pub state: String,
    /// Mesos agent id of `host`.
    pub slave_id: String,
    /// When it was staged (ms since the epoch).
    pub staged_at: u64,
    /// When it first reached `TASK_RUNNING`.
    pub started_at: Option<u64>,
    /// The app version it runs (ms since the epoch).
    pub version: u64,
    /// Container IP addresses, if known.
    pub ip_addresses: Vec<String>,
    /// The last result of each health check that has one, by the check's index in the app's
    /// `healthChecks` (see [`SimMarathon::set_task_check_health`]).
    ///
    /// [`SimMarathon::set_task_check_health`]: super::SimMarathon::set_task_check_health
    pub health: BTreeMap<usize, SimHealth>,
    /// The instance's health as last published by `instance_health_changed_event` (1.4+): every
    /// check alive. `None` until a result decided it.
    pub healthy: Option<bool>,
    pub(super) mesos_status_seen: bool,
    /// The address Mesos reports once a task of a non-host network runs, unless a test set one.
    pub(super) network_address: String,
}

/// The last failed task of an app (`lastTaskFailure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTaskFailure {
    /// Failed task id.
    pub task_id: String,
    /// Its host.
    pub host: String,
    /// Mesos message (empty in the model).
    pub message: String,
    /// The Mesos state it failed with.
    pub state: String,
    /// When (ms since the epoch).
    pub timestamp: u64,
    /// The app version it ran.
    pub version: u64,
    /// Its agent id.
    pub slave_id: String,
}

/// One app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimApp {
    /// Absolute id, e.g. `/grp/app`.
    pub id: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Tasks in any non-terminal state, oldest first.
    pub tasks: Vec<SimTask>,
    /// Service ports of the app definition (`ports`, and `port` / `servicePort` of each port).
    pub service_ports: Vec<u16>,
    /// Names, labels and container ports of the app's ports
    /// ([`SimMarathon::set_app_port_specs`](super::SimMarathon::set_app_port_specs)); the app has
    /// as many ports as this list or [`SimApp::service_ports`] is long, whichever is longer.
    pub port_specs: Vec<SimPort>,
    /// How its tasks are networked.
    pub network: SimNetwork,
    /// Its health checks, in order (a task's results refer to them by index).
    pub health_checks: Vec<SimHealthCheck>,
    /// Requested instances (bookkeeping only).
    pub instances: u32,
    /// Command line.
    pub cmd: String,
    /// Version of the definition (ms since the epoch), bumped on every change.
    pub version: u64,
    /// The last failed task, if any.
    pub last_task_failure: Option<SimTaskFailure>,
}

/// One port of an app: a port definition in host networking, a port mapping in container
/// networking (a discovery port of `ipAddress` for IP-per-task before 1.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimPort {
    /// The port's name.
    pub name: Option<String>,
    /// Its labels, served as a JSON object (a repeated key keeps its last value).
    pub labels: Vec<(String, String)>,
    /// The port inside the container (port mappings; `0` when unset).
    pub container_port: Option<u16>,
}

/// How an app's tasks are networked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SimNetwork {
    /// The agent's network: host ports, `portDefinitions`.
    #[default]
    Host,
    /// Docker's bridge: host ports mapped to container ports.
    Bridge,
    /// A named container network (Docker `USER` networking before 1.5): no host ports, each task
    /// has an address of its own.
    Container(String),
    /// IP-per-task (`ipAddress`, 0.14 to 1.4; a container network without a name from 1.5): no
    /// host ports, each task has an address of its own.
    IpPerTask,
}

impl SimNetwork {
    /// True if tasks get no host ports and an address of their own.
    pub fn is_container_network(&self) -> bool {
        matches!(self, SimNetwork::Container(_) | SimNetwork::IpPerTask)
    }
}

/// One health check of an app, with Marathon's fields. [`Default`] is Marathon's default check:
/// HTTP on `/` of port index 0, every 60 s, 20 s timeout, 300 s grace, 3 failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimHealthCheck {
    /// `HTTP`, `HTTPS`, `TCP`, `COMMAND`, `MESOS_HTTP`, `MESOS_HTTPS` or `MESOS_TCP`.
    pub protocol: String,
    /// The HTTP path.
    pub path: Option<String>,
    /// The index of the port checked (Marathon adds `0` when neither this nor `port` is set,
    /// except for `COMMAND`).
    pub port_index: Option<usize>,
    /// A fixed port to check instead.
    pub port: Option<u16>,
    /// Seconds between checks.
    pub interval_seconds: u32,
    /// Seconds a check may take.
    pub timeout_seconds: u32,
    /// Seconds after the start during which failures do not count.
    pub grace_period_seconds: u32,
    /// Failures in a row after which the task is killed.
    pub max_consecutive_failures: u32,
    /// The command of a `COMMAND` check (`{"value": …}`).
    pub command: Option<String>,
}

impl Default for SimHealthCheck {
    fn default() -> Self {
        SimHealthCheck {
            protocol: "HTTP".into(),
            path: Some("/".into()),
            port_index: None,
            port: None,
            interval_seconds: 60,
            timeout_seconds: 20,
            grace_period_seconds: 300,
            max_consecutive_failures: 3,
            command: None,
        }
    }
}
