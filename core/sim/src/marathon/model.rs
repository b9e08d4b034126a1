//! The simulated Marathon's public data: which release line it imitates ([`MarathonVersion`]),
//! apps, tasks, health results and task failures as the model stores them, and events on its bus
//! with their SSE framing ([`sse_frame`]).
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

/// A task's last health-check result (one health check per app in the model).
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
    /// Health-check state, once checked.
    pub health: Option<SimHealth>,
    pub(super) mesos_status_seen: bool,
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
    /// Service ports of the app definition (`ports` / `portDefinitions`).
    pub service_ports: Vec<u16>,
    /// Requested instances (bookkeeping only).
    pub instances: u32,
    /// Command line.
    pub cmd: String,
    /// Version of the definition (ms since the epoch), bumped on every change.
    pub version: u64,
    /// The last failed task, if any.
    pub last_task_failure: Option<SimTaskFailure>,
}
