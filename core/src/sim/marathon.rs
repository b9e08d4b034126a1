//! An in-memory Marathon that answers the HTTP API the bridge uses, as a pure request handler.
//!
//! **What lives here:** [`SimMarathon`] (apps, tasks, health, event subscriptions and the event bus,
//! with the JSON shapes of four Marathon versions, [`MarathonVersion`]), the SSE framing helper
//! [`sse_frame`], and [`SimResponse`], the response type shared with the Consul model.
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
//! * **Health results** are keyed `taskId` up to 1.3 and `instanceId` from 1.4; 1.4 writes
//!   `lastFailureCause` and nulls, 1.10 leaves unset optional fields out.
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
//!   `instances`, `cmd`, `ports`, `portDefinitions`); other fields are accepted and ignored.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

use serde_json::Value;

use crate::io::Method;

// ---------------------------------------------------------------------------------------------
// Shared plumbing (also used by `sim::consul`)
// ---------------------------------------------------------------------------------------------

/// One HTTP response from a simulator: status, `Content-Type`, body and any other headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header; empty when the real server sends none (Consul's empty 200s).
    pub content_type: &'static str,
    /// The body, byte for byte.
    pub body: Vec<u8>,
    /// Other headers the real server sends that matter to clients (`Allow`, `Location`,
    /// `X-Consul-Index`, …), in order.
    pub headers: Vec<(&'static str, String)>,
}

impl SimResponse {
    pub(super) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        SimResponse {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub(super) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body as text (invalid UTF-8 replaced), for assertions and logs.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, or `None` if it is not JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A JSON value whose objects keep insertion order, so responses can follow the real servers'
/// field order (serde_json's map is sorted without `preserve_order`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub(super) fn s(text: impl Into<String>) -> J {
        J::Str(text.into())
    }

    pub(super) fn u(n: u64) -> J {
        J::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    pub(super) fn obj<const N: usize>(fields: [(&str, J); N]) -> J {
        J::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub(super) fn opt_s(text: Option<&str>) -> J {
        text.map_or(J::Null, J::s)
    }

    pub(super) fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> J {
        J::Arr(items.into_iter().map(J::s).collect())
    }

    /// Appends a field (no-op on non-objects).
    pub(super) fn put(&mut self, key: &str, value: J) {
        if let J::Obj(fields) = self {
            fields.push((key.to_string(), value));
        }
    }

    /// Compact JSON. `go` selects Go's `encoding/json` escaping (`<`, `>`, `&`, U+2028/9 as
    /// `\u` escapes; only `\n`, `\r`, `\t` as short escapes) instead of serde_json's.
    pub(super) fn compact(&self, go: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, go, None, 0);
        out
    }

    /// Go's `json.MarshalIndent(v, "", "    ")` followed by a newline, as Consul's `?pretty`.
    pub(super) fn pretty_go(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, true, Some("    "), 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, go: bool, indent: Option<&str>, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(unit) = indent {
                out.push('\n');
                for _ in 0..depth {
                    out.push_str(unit);
                }
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => {
                let _ = write!(out, "{n}");
            }
            J::Float(f) => {
                if f.is_finite() {
                    out.push_str(&serde_json::to_string(f).unwrap_or_else(|_| "null".into()));
                } else {
                    out.push_str("null");
                }
            }
            J::Str(s) => write_json_str(out, s, go),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, go, indent, depth + 1);
                }
                if !items.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    write_json_str(out, k, go);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    v.write(out, go, indent, depth + 1);
                }
                if !fields.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_str(out: &mut String, s: &str, go: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' if !go => out.push_str("\\b"),
            '\u{c}' if !go => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if go => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Percent-decodes `s` (`+` as space when `plus_as_space`). `None` on a malformed `%` escape.
pub(super) fn percent_decode(s: &str, plus_as_space: bool) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let pair = bytes.get(i + 1..i + 3)?;
                out.push(hex(pair[0])? << 4 | hex(pair[1])?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Splits `path?query` (a `#fragment` is dropped, as servers never see one).
pub(super) fn split_path_query(path_and_query: &str) -> (&str, &str) {
    let without_fragment = path_and_query
        .split_once('#')
        .map_or(path_and_query, |(p, _)| p);
    without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""))
}

/// Parses a query string into decoded `(key, value)` pairs, in order. Pairs with a malformed
/// escape are dropped (Go's `url.ParseQuery` does this; Jersey would reject the request, a case
/// the simulator does not distinguish). `semicolons` also splits on `;` (Go before 1.17).
pub(super) fn parse_query(query: &str, semicolons: bool) -> Vec<(String, String)> {
    query
        .split(|c| c == '&' || (semicolons && c == ';'))
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k, true)?;
            let v = percent_decode(v, true)?;
            let k = String::from_utf8_lossy(&k).into_owned();
            (!k.is_empty()).then(|| (k, String::from_utf8_lossy(&v).into_owned()))
        })
        .collect()
}

pub(super) fn query_get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(super) fn query_has(params: &[(String, String)], key: &str) -> bool {
    params.iter().any(|(k, _)| k == key)
}

/// `millis` since the Unix epoch as ISO-8601 UTC with milliseconds (`2026-01-01T00:00:00.000Z`).
pub fn iso8601(millis: u64) -> String {
    let secs = millis / 1000;
    let ms = millis % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

const JSON: &str = "application/json";

// ---------------------------------------------------------------------------------------------
// Public model types
// ---------------------------------------------------------------------------------------------

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
    fn instances(self) -> bool {
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
    mesos_status_seen: bool,
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

// ---------------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------------

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
    /// the app (as [`SimMarathon::put_app`] with no labels) if it does not exist. Emits
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
        let task = SimTask {
            id: id.clone(),
            instance_id,
            app_id: app_id.clone(),
            host: host.to_string(),
            ports: ports.to_vec(),
            state: "TASK_STAGING".into(),
            slave_id: format!("5e1d0000-0000-4000-8000-000000000001-S{agent}"),
            staged_at: now,
            started_at: None,
            version: app.version,
            ip_addresses: Vec::new(),
            health: None,
            mesos_status_seen: false,
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

    /// Records a health-check result for task `task_id`. When the result differs from the
    /// previous one (or is the first), emits `health_status_changed_event` (`taskId` ≤1.3,
    /// `instanceId` 1.4+) and, from 1.4, `instance_health_changed_event`.
    pub fn set_task_health(&mut self, task_id: &str, alive: bool) {
        let now = self.now;
        let Some(task) = self.task_mut(task_id) else {
            return;
        };
        let changed = task.health.as_ref().map(|h| h.alive) != Some(alive);
        let health = task.health.get_or_insert(SimHealth {
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
        if !changed {
            return;
        }
        let task = task.clone();
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
        if self.version.instances() {
            self.emit_last(
                "instance_health_changed_event",
                J::obj([
                    ("instanceId", J::s(task.instance_id.as_str())),
                    ("runSpecId", J::s(task.app_id.as_str())),
                    ("healthy", J::Bool(alive)),
                    ("runSpecVersion", J::s(iso8601(task.version))),
                ]),
            );
        }
    }

    /// Adds an event to the bus as if Marathon had published it.
    pub fn publish(&mut self, event: SimEvent) {
        self.events.push(event);
    }

    /// The `event_stream_attached` event a new `/v2/events` client from `remote_address` causes.
    /// A streaming wrapper sends it to the new client (and may [`SimMarathon::publish`] it).
    pub fn event_stream_attached(&self, remote_address: &str) -> SimEvent {
        self.stream_event("event_stream_attached", remote_address)
    }

    /// The `event_stream_detached` event for a client that went away.
    pub fn event_stream_detached(&self, remote_address: &str) -> SimEvent {
        self.stream_event("event_stream_detached", remote_address)
    }

    fn stream_event(&self, event_type: &str, remote_address: &str) -> SimEvent {
        self.make_event(
            event_type,
            J::obj([("remoteAddress", J::s(remote_address))]),
            false,
        )
    }

    /// The event types a `/v2/events` request asks for (`?event_type=a&event_type=b`). Empty means
    /// all; always empty before 1.3.7 ([`MarathonVersion::V0_15`], [`MarathonVersion::V1_1`]),
    /// which ignored the parameter.
    pub fn event_type_filter(&self, path_and_query: &str) -> Vec<String> {
        if !self.version.filters_event_types() {
            return Vec::new();
        }
        let (_, query) = split_path_query(path_and_query);
        parse_query(query, false)
            .into_iter()
            .filter(|(k, _)| k == "event_type")
            .map(|(_, v)| v)
            .collect()
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

    // -- events -------------------------------------------------------------------------------

    /// `fields` + `eventType` + `timestamp` (Json.writes order), queued.
    fn emit(&mut self, event_type: &str, fields: J) {
        let event = self.make_event(event_type, fields, false);
        self.events.push(event);
    }

    /// `fields` + `timestamp` + `eventType` (the 1.4+ instance events' `Json.obj` order), queued.
    fn emit_last(&mut self, event_type: &str, fields: J) {
        let event = self.make_event(event_type, fields, true);
        self.events.push(event);
    }

    fn make_event(&self, event_type: &str, mut fields: J, timestamp_first: bool) -> SimEvent {
        if timestamp_first {
            fields.put("timestamp", J::s(iso8601(self.now)));
            fields.put("eventType", J::s(event_type));
        } else {
            fields.put("eventType", J::s(event_type));
            fields.put("timestamp", J::s(iso8601(self.now)));
        }
        SimEvent {
            event_type: event_type.to_string(),
            json: fields.compact(false).into_bytes(),
        }
    }

    fn emit_api_post(&mut self, app: &SimApp) {
        let definition = self.app_definition(app);
        self.emit(
            "api_post_event",
            J::obj([
                ("clientIp", J::s(self.client_ip.as_str())),
                ("uri", J::s(format!("/v2/apps{}", app.id))),
                ("appDefinition", definition),
            ]),
        );
    }

    fn emit_group_change(&mut self, version: u64) {
        self.emit(
            "group_change_success",
            J::obj([("groupId", J::s("/")), ("version", J::s(iso8601(version)))]),
        );
    }

    fn emit_task_change(&mut self, task: &SimTask, previous_condition: Option<&str>) {
        let instances = self.version.instances();
        let slave_id = if instances && !task.mesos_status_seen {
            ""
        } else {
            task.slave_id.as_str()
        };
        let mut fields = J::obj([
            ("slaveId", J::s(slave_id)),
            ("taskId", J::s(task.id.as_str())),
            ("taskStatus", J::s(task.state.as_str())),
            ("message", J::s("")),
            ("appId", J::s(task.app_id.as_str())),
            ("host", J::s(task.host.as_str())),
        ]);
        if instances || !task.ip_addresses.is_empty() {
            fields.put("ipAddresses", ip_addresses_json(&task.ip_addresses));
        }
        fields.put("ports", ports_json(&task.ports));
        fields.put("version", J::s(iso8601(task.version)));
        self.emit("status_update_event", fields);
        let condition_now = condition(&task.state);
        if instances && previous_condition != Some(condition_now) {
            self.emit_last(
                "instance_changed_event",
                J::obj([
                    ("instanceId", J::s(task.instance_id.as_str())),
                    ("condition", J::s(condition_now)),
                    ("runSpecId", J::s(task.app_id.as_str())),
                    ("agentId", J::s(task.slave_id.as_str())),
                    ("host", J::s(task.host.as_str())),
                    ("runSpecVersion", J::s(iso8601(task.version))),
                ]),
            );
        }
    }

    // -- JSON shapes --------------------------------------------------------------------------

    fn app_definition(&self, app: &SimApp) -> J {
        let v = self.version;
        let version = J::s(iso8601(app.version));
        let version_info = J::obj([
            ("lastScalingAt", version.clone()),
            ("lastConfigChangeAt", version.clone()),
        ]);
        let labels = J::Obj(
            app.labels
                .iter()
                .map(|(k, v)| (k.clone(), J::s(v.as_str())))
                .collect(),
        );
        let ports = ports_json(&app.service_ports);
        let port_definitions = |with_labels: bool| {
            J::Arr(
                app.service_ports
                    .iter()
                    .map(|p| {
                        let mut d =
                            J::obj([("port", J::Int(i64::from(*p))), ("protocol", J::s("tcp"))]);
                        if with_labels {
                            d.put("labels", J::Obj(Vec::new()));
                        }
                        d
                    })
                    .collect(),
            )
        };
        let upgrade = J::obj([
            ("minimumHealthCapacity", J::Float(1.0)),
            ("maximumOverCapacity", J::Float(1.0)),
        ]);
        let cmd = J::s(app.cmd.as_str());
        let instances = J::Int(i64::from(app.instances));
        if v == MarathonVersion::V1_10 {
            return J::obj([
                ("id", J::s(app.id.as_str())),
                ("backoffFactor", J::Float(1.15)),
                ("backoffSeconds", J::Int(1)),
                ("cmd", cmd),
                ("cpus", J::Float(0.1)),
                ("disk", J::Int(0)),
                ("executor", J::s("")),
                ("instances", instances),
                ("labels", labels),
                ("maxLaunchDelaySeconds", J::Int(300)),
                ("mem", J::Int(32)),
                ("gpus", J::Int(0)),
                ("networks", J::Arr(vec![J::obj([("mode", J::s("host"))])])),
                ("portDefinitions", port_definitions(false)),
                ("requirePorts", J::Bool(false)),
                ("upgradeStrategy", upgrade),
                ("version", version),
                ("versionInfo", version_info),
                ("killSelection", J::s("YOUNGEST_FIRST")),
                (
                    "unreachableStrategy",
                    J::obj([
                        ("inactiveAfterSeconds", J::Int(0)),
                        ("expungeAfterSeconds", J::Int(0)),
                    ]),
                ),
                ("role", J::s("*")),
            ]);
        }
        let mut o = J::obj([
            ("id", J::s(app.id.as_str())),
            ("cmd", cmd),
            ("args", J::Null),
            ("user", J::Null),
            ("env", J::Obj(Vec::new())),
            ("instances", instances),
            ("cpus", J::Float(0.1)),
            ("mem", J::Float(32.0)),
            ("disk", J::Float(0.0)),
        ]);
        if v >= MarathonVersion::V1_4 {
            o.put("gpus", J::Int(0));
        }
        o.put("executor", J::s(""));
        o.put("constraints", J::Arr(Vec::new()));
        o.put("uris", J::Arr(Vec::new()));
        if v >= MarathonVersion::V1_1 {
            o.put("fetch", J::Arr(Vec::new()));
        }
        o.put("storeUrls", J::Arr(Vec::new()));
        if v == MarathonVersion::V0_15 {
            o.put("ports", ports.clone());
            o.put("requirePorts", J::Bool(false));
        }
        o.put("backoffSeconds", J::Int(1));
        o.put("backoffFactor", J::Float(1.15));
        o.put("maxLaunchDelaySeconds", J::Int(3600));
        o.put("container", J::Null);
        o.put("healthChecks", J::Arr(Vec::new()));
        if v >= MarathonVersion::V1_1 {
            o.put("readinessChecks", J::Arr(Vec::new()));
        }
        o.put("dependencies", J::Arr(Vec::new()));
        o.put("upgradeStrategy", upgrade);
        o.put("labels", labels);
        o.put("acceptedResourceRoles", J::Null);
        o.put("ipAddress", J::Null);
        o.put("version", version);
        if v >= MarathonVersion::V1_1 {
            o.put("residency", J::Null);
        }
        if v >= MarathonVersion::V1_4 {
            o.put("secrets", J::Obj(Vec::new()));
            o.put("taskKillGracePeriodSeconds", J::Null);
            o.put(
                "unreachableStrategy",
                J::obj([
                    ("inactiveAfterSeconds", J::Int(300)),
                    ("expungeAfterSeconds", J::Int(600)),
                ]),
            );
            o.put("killSelection", J::s("YOUNGEST_FIRST"));
        }
        if v >= MarathonVersion::V1_1 {
            o.put("ports", ports);
            o.put("portDefinitions", port_definitions(true));
            o.put("requirePorts", J::Bool(false));
        }
        o.put("versionInfo", version_info);
        o
    }

    fn counts(app: &SimApp) -> [(&'static str, J); 4] {
        let count =
            |f: &dyn Fn(&SimTask) -> bool| J::u(app.tasks.iter().filter(|t| f(t)).count() as u64);
        [
            ("tasksStaged", count(&|t| t.started_at.is_none())),
            ("tasksRunning", count(&|t| t.state == "TASK_RUNNING")),
            (
                "tasksHealthy",
                count(&|t| t.health.as_ref().is_some_and(|h| h.alive)),
            ),
            (
                "tasksUnhealthy",
                count(&|t| t.health.as_ref().is_some_and(|h| !h.alive)),
            ),
        ]
    }

    /// App with counts and deployments, plus tasks / lastTaskFailure when asked.
    fn app_info(&self, app: &SimApp, tasks: bool, failure: bool) -> J {
        let mut o = self.app_definition(app);
        for (k, v) in Self::counts(app) {
            o.put(k, v);
        }
        o.put("deployments", J::Arr(Vec::new()));
        if tasks {
            o.put(
                "tasks",
                J::Arr(app.tasks.iter().map(|t| self.task_json(app, t)).collect()),
            );
        }
        if failure {
            if let Some(f) = &app.last_task_failure {
                o.put(
                    "lastTaskFailure",
                    J::obj([
                        ("appId", J::s(app.id.as_str())),
                        ("host", J::s(f.host.as_str())),
                        ("message", J::s(f.message.as_str())),
                        ("state", J::s(f.state.as_str())),
                        ("taskId", J::s(f.task_id.as_str())),
                        ("timestamp", J::s(iso8601(f.timestamp))),
                        ("version", J::s(iso8601(f.version))),
                        ("slaveId", J::s(f.slave_id.as_str())),
                    ]),
                );
            }
        }
        o
    }

    fn health_json(&self, task: &SimTask, h: &SimHealth) -> J {
        let ts = |t: Option<u64>| t.map_or(J::Null, |t| J::s(iso8601(t)));
        let mut o = J::obj([
            ("alive", J::Bool(h.alive)),
            (
                "consecutiveFailures",
                J::u(u64::from(h.consecutive_failures)),
            ),
        ]);
        match self.version {
            MarathonVersion::V0_15 | MarathonVersion::V1_1 => {
                o.put("firstSuccess", ts(h.first_success));
                o.put("lastFailure", ts(h.last_failure));
                o.put("lastSuccess", ts(h.last_success));
                o.put("taskId", J::s(task.id.as_str()));
            }
            MarathonVersion::V1_4 => {
                o.put("firstSuccess", ts(h.first_success));
                o.put("lastFailure", ts(h.last_failure));
                o.put("lastSuccess", ts(h.last_success));
                o.put(
                    "lastFailureCause",
                    J::opt_s(h.last_failure_cause.as_deref()),
                );
                o.put("instanceId", J::s(task.instance_id.as_str()));
            }
            MarathonVersion::V1_10 => {
                for (k, t) in [
                    ("firstSuccess", h.first_success),
                    ("lastFailure", h.last_failure),
                ] {
                    if t.is_some() {
                        o.put(k, ts(t));
                    }
                }
                if let Some(cause) = &h.last_failure_cause {
                    o.put("lastFailureCause", J::s(cause.as_str()));
                }
                if h.last_success.is_some() {
                    o.put("lastSuccess", ts(h.last_success));
                }
                o.put("instanceId", J::s(task.instance_id.as_str()));
            }
        }
        o
    }

    fn task_json(&self, app: &SimApp, t: &SimTask) -> J {
        let health = || J::Arr(t.health.iter().map(|h| self.health_json(t, h)).collect());
        let started = t.started_at.map_or(J::Null, |s| J::s(iso8601(s)));
        let listed_state = if LISTED_STATES.contains(&t.state.as_str()) {
            t.state.as_str()
        } else {
            "TASK_STAGING"
        };
        let mut o;
        match self.version {
            MarathonVersion::V0_15 | MarathonVersion::V1_1 => {
                o = J::obj([
                    ("id", J::s(t.id.as_str())),
                    ("host", J::s(t.host.as_str())),
                    ("ipAddresses", ip_addresses_json(&t.ip_addresses)),
                    ("ports", ports_json(&t.ports)),
                    ("startedAt", started),
                    ("stagedAt", J::s(iso8601(t.staged_at))),
                    ("version", J::s(iso8601(t.version))),
                    ("slaveId", J::s(t.slave_id.as_str())),
                    ("appId", J::s(app.id.as_str())),
                ]);
            }
            MarathonVersion::V1_4 => {
                o = J::obj([
                    ("id", J::s(t.id.as_str())),
                    ("slaveId", J::s(t.slave_id.as_str())),
                    ("host", J::s(t.host.as_str())),
                    ("state", J::s(listed_state)),
                    ("startedAt", started),
                    ("stagedAt", J::s(iso8601(t.staged_at))),
                    ("ports", ports_json(&t.ports)),
                    ("version", J::s(iso8601(t.version))),
                ]);
                if !t.ip_addresses.is_empty() {
                    o.put("ipAddresses", ip_addresses_json(&t.ip_addresses));
                }
                o.put("appId", J::s(app.id.as_str()));
            }
            MarathonVersion::V1_10 => {
                o = J::obj([
                    ("appId", J::s(app.id.as_str())),
                    ("healthCheckResults", health()),
                    ("id", J::s(t.id.as_str())),
                    ("host", J::s(t.host.as_str())),
                    ("state", J::s(listed_state)),
                    ("ipAddresses", ip_addresses_json(&t.ip_addresses)),
                    ("ports", ports_json(&t.ports)),
                    ("servicePorts", ports_json(&app.service_ports)),
                    ("stagedAt", J::s(iso8601(t.staged_at))),
                ]);
                if t.started_at.is_some() {
                    o.put("startedAt", started);
                }
                o.put("version", J::s(iso8601(t.version)));
                o.put("slaveId", J::s(t.slave_id.as_str()));
                o.put("localVolumes", J::Arr(Vec::new()));
                o.put("role", J::s("*"));
                return o;
            }
        }
        if !app.service_ports.is_empty() {
            o.put("servicePorts", ports_json(&app.service_ports));
        }
        if t.health.is_some() {
            o.put("healthCheckResults", health());
        }
        o
    }

    // -- HTTP ---------------------------------------------------------------------------------

    /// Answers one HTTP request (`path_and_query` as sent on the wire, percent-encoded). Never
    /// panics; malformed input gets Marathon's (or Jetty's) error response. See the module docs
    /// for the routes.
    pub fn handle(&mut self, method: Method, path_and_query: &str, body: &[u8]) -> SimResponse {
        let (raw_path, query) = split_path_query(path_and_query);
        let Some(path) = percent_decode(raw_path, false)
            .and_then(|p| String::from_utf8(p).ok())
            .and_then(|p| canonical_path(&p))
        else {
            return jetty_bad_uri();
        };
        let path = if path.len() > 1 {
            path.trim_end_matches('/').to_string()
        } else {
            path
        };
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        if self.no_leader && path != "/v2/leader" {
            let status = if self.version >= MarathonVersion::V1_10 {
                502
            } else {
                503
            };
            return jetty_error(status, "Could not determine the current leader", raw_path);
        }
        let params = parse_query(query, false);
        match path.as_str() {
            "/ping" => match method {
                Method::Get if self.version >= MarathonVersion::V1_10 => {
                    SimResponse::new(200, "text/plain", "pong")
                }
                Method::Get => SimResponse::new(200, "text/plain;charset=ISO-8859-1", "pong\n"),
                _ => method_not_allowed("GET"),
            },
            "/v2/leader" => match method {
                Method::Get | Method::Delete if self.no_leader => {
                    json_message(404, "There is no leader")
                }
                Method::Get => json(200, &J::obj([("leader", J::s(self.leader.as_str()))])),
                Method::Delete => json_message(200, "Leadership abdicated"),
                _ => method_not_allowed("DELETE,GET"),
            },
            "/v2/info" => match method {
                Method::Get => json(200, &self.info()),
                _ => method_not_allowed("GET"),
            },
            "/v2/events" => {
                let message = format!("HTTP method {} is not supported by this URL", method);
                jetty_error(405, &message, raw_path)
            }
            "/v2/eventSubscriptions" if self.version.has_event_subscriptions() => {
                self.event_subscriptions(method, &params)
            }
            "/v2/tasks" => match method {
                Method::Get => self.all_tasks(&params),
                _ => method_not_allowed("GET"),
            },
            "/v2/apps" => match method {
                Method::Get => self.list_apps(&params),
                Method::Post => self.create_app(body),
                _ => method_not_allowed("GET,POST"),
            },
            p => match p.strip_prefix("/v2/apps/") {
                Some(rest) => self.app_route(method, rest, body),
                None => not_found_uri(raw_path),
            },
        }
    }

    fn info(&self) -> J {
        let v = self.version;
        let mut o = J::obj([("name", J::s("marathon")), ("version", J::s(v.release()))]);
        if v >= MarathonVersion::V1_1 {
            o.put("buildref", J::s("unknown"));
        }
        o.put("elected", J::Bool(true));
        o.put("leader", J::s(self.leader.as_str()));
        o.put(
            "frameworkId",
            J::s("5e1d0000-0000-4000-8000-000000000001-0000"),
        );
        if v.has_event_subscriptions() && self.callbacks_enabled {
            o.put(
                "event_subscriber",
                J::obj([("type", J::s("http_callback")), ("http_endpoints", J::Null)]),
            );
        }
        let host = self.leader.split(':').next().unwrap_or("localhost");
        o.put(
            "marathon_config",
            J::obj([
                ("checkpoint", J::Bool(true)),
                ("executor", J::s("//cmd")),
                ("failover_timeout", J::Int(604_800)),
                ("framework_name", J::s("marathon")),
                ("ha", J::Bool(true)),
                ("hostname", J::s(host)),
                ("local_port_max", J::Int(20_000)),
                ("local_port_min", J::Int(10_000)),
                ("master", J::s("zk://localhost:2181/mesos")),
                ("mesos_leader_ui_url", J::s("http://localhost:5050/")),
                ("mesos_role", J::Null),
                ("mesos_user", J::s("root")),
                ("reconciliation_initial_delay", J::Int(15_000)),
                ("reconciliation_interval", J::Int(600_000)),
                ("task_launch_timeout", J::Int(300_000)),
                ("webui_url", J::Null),
            ]),
        );
        o.put(
            "zookeeper_config",
            J::obj([
                ("zk", J::s("zk://localhost:2181/marathon")),
                ("zk_timeout", J::Int(10_000)),
                ("zk_session_timeout", J::Int(10_000)),
                ("zk_max_versions", J::Int(50)),
            ]),
        );
        o.put(
            "http_config",
            J::obj([("http_port", J::Int(8080)), ("https_port", J::Int(8443))]),
        );
        o
    }

    fn event_subscriptions(&mut self, method: Method, params: &[(String, String)]) -> SimResponse {
        if !matches!(method, Method::Get | Method::Post | Method::Delete) {
            return method_not_allowed("DELETE,GET,POST");
        }
        if !self.callbacks_enabled {
            let message = if self.version >= MarathonVersion::V1_4 {
                "http event callback system is not running on this Marathon instance. Please re-start this instance with\n\"--event_subscriber http_callback\"."
            } else {
                "http event callback system is not running on this Marathon instance. Please re-start this instance with \"--event_subscriber http_callback\"."
            };
            return json_message(400, message);
        }
        let url = query_get(params, "callbackUrl");
        match method {
            Method::Get => json(
                200,
                &J::obj([(
                    "callbackUrls",
                    J::strs(self.subscriptions.iter().map(String::as_str)),
                )]),
            ),
            Method::Post => {
                if self.version >= MarathonVersion::V1_4 {
                    if let Some(error) = java_url_error(url) {
                        return json(
                            422,
                            &J::obj([
                                ("message", J::s("Object is not valid")),
                                (
                                    "details",
                                    J::Arr(vec![J::obj([
                                        ("path", J::s("/")),
                                        ("errors", J::Arr(vec![error])),
                                    ])]),
                                ),
                            ]),
                        );
                    }
                }
                if let Some(url) = url {
                    if !self.subscriptions.iter().any(|s| s == url) {
                        self.subscriptions.push(url.to_string());
                    }
                }
                self.subscription_event("subscribe_event", url)
            }
            _ => {
                if let Some(url) = url {
                    self.subscriptions.retain(|s| s != url);
                }
                self.subscription_event("unsubscribe_event", url)
            }
        }
    }

    fn subscription_event(&mut self, event_type: &str, url: Option<&str>) -> SimResponse {
        let event = self.make_event(
            event_type,
            J::obj([
                ("clientIp", J::s(self.client_ip.as_str())),
                ("callbackUrl", J::opt_s(url)),
            ]),
            false,
        );
        let response = SimResponse::new(200, JSON, event.json.clone());
        self.events.push(event);
        response
    }

    fn list_apps(&self, params: &[(String, String)]) -> SimResponse {
        let embed: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "embed")
            .map(|(_, v)| embed_name(v))
            .collect();
        let ignore = self.ignore_embed;
        let tasks = !ignore && embed.iter().any(|e| matches!(*e, "tasks" | "failures"));
        let failure = !ignore
            && embed
                .iter()
                .any(|e| matches!(*e, "lastTaskFailure" | "failures"));
        let id_filter = query_get(params, "id").map(str::to_lowercase);
        let cmd_filter = query_get(params, "cmd").map(str::to_lowercase);
        let selector = query_get(params, "label").map(parse_label_selector);
        let apps = self
            .apps
            .values()
            .filter(|a| {
                id_filter
                    .as_ref()
                    .is_none_or(|f| a.id.to_lowercase().contains(f.as_str()))
            })
            .filter(|a| {
                cmd_filter
                    .as_ref()
                    .is_none_or(|f| a.cmd.to_lowercase().contains(f.as_str()))
            })
            .filter(|a| match &selector {
                None => true,
                Some(None) => false,
                Some(Some(terms)) => terms.iter().all(|t| t.matches(&a.labels)),
            })
            .map(|a| self.app_info(a, tasks, failure))
            .collect();
        json(200, &J::obj([("apps", J::Arr(apps))]))
    }

    fn all_tasks(&self, params: &[(String, String)]) -> SimResponse {
        let status = query_get(params, "status").map(|s| format!("TASK_{}", s.to_uppercase()));
        let tasks = self
            .apps
            .values()
            .flat_map(|a| a.tasks.iter().map(move |t| (a, t)))
            .filter(|(_, t)| status.as_ref().is_none_or(|s| &t.state == s))
            .map(|(a, t)| self.task_json(a, t))
            .collect();
        json(200, &J::obj([("tasks", J::Arr(tasks))]))
    }

    fn group_apps(&self, group: &str) -> Option<Vec<&SimApp>> {
        let group = normalize_app_id(group);
        let prefix = if group == "/" {
            "/".to_string()
        } else {
            format!("{group}/")
        };
        let apps: Vec<&SimApp> = self
            .apps
            .values()
            .filter(|a| a.id.starts_with(&prefix))
            .collect();
        (group == "/" || !apps.is_empty()).then_some(apps)
    }

    fn app_route(&mut self, method: Method, rest: &str, body: &[u8]) -> SimResponse {
        if let Some(id) = rest.strip_suffix("/tasks").filter(|id| !id.is_empty()) {
            return self.app_tasks(method, id);
        }
        if rest == "*" || rest.ends_with("/*") {
            if method != Method::Get {
                return method_not_allowed("GET");
            }
            let group = rest.trim_end_matches('*');
            return match self.group_apps(group) {
                Some(apps) => {
                    let apps = apps
                        .into_iter()
                        .map(|a| self.app_info(a, true, true))
                        .collect();
                    json(200, &J::obj([("*", J::Arr(apps))]))
                }
                None => unknown_group(group),
            };
        }
        let id = normalize_app_id(rest);
        match method {
            Method::Get => match self.apps.get(&id) {
                Some(app) => json(200, &J::obj([("app", self.app_info(app, true, true))])),
                None => unknown_app(&id),
            },
            Method::Put => self.put_app_http(&id, body),
            Method::Delete => {
                if !self.apps.contains_key(&id) {
                    return unknown_app(&id);
                }
                self.remove_app(&id);
                self.deployment_result(200)
            }
            Method::Post => method_not_allowed("DELETE,GET,PUT"),
        }
    }

    fn app_tasks(&mut self, method: Method, id: &str) -> SimResponse {
        let apps: Vec<SimApp> = if id == "*" || id.ends_with("/*") {
            let group = id.trim_end_matches('*');
            match self.group_apps(group) {
                Some(apps) => apps.into_iter().cloned().collect(),
                None => return unknown_group(group),
            }
        } else {
            let id = normalize_app_id(id);
            match self.apps.get(&id) {
                Some(app) if app.tasks.is_empty() && self.empty_tasks_404 => {
                    return unknown_app(&id)
                }
                Some(app) => vec![app.clone()],
                None => return unknown_app(&id),
            }
        };
        let tasks = J::Arr(
            apps.iter()
                .flat_map(|a| a.tasks.iter().map(move |t| (a, t)))
                .map(|(a, t)| self.task_json(a, t))
                .collect(),
        );
        match method {
            Method::Get => json(200, &J::obj([("tasks", tasks)])),
            Method::Delete => {
                for app in &apps {
                    for task in &app.tasks {
                        self.set_task_state(&task.id, "TASK_KILLED");
                    }
                }
                json(200, &J::obj([("tasks", tasks)]))
            }
            _ => method_not_allowed("DELETE,GET"),
        }
    }

    fn deployment_result(&mut self, status: u16) -> SimResponse {
        self.next_id += 1;
        json(
            status,
            &J::obj([
                (
                    "deploymentId",
                    J::s(format!("00000000-0000-4000-8000-{:012x}", self.next_id)),
                ),
                ("version", J::s(iso8601(self.now))),
            ]),
        )
    }

    fn create_app(&mut self, body: &[u8]) -> SimResponse {
        let update = match self.parse_app_body(body, true) {
            Ok(update) => update,
            Err(response) => return response,
        };
        let id = update.id.clone().unwrap_or_default();
        if self.apps.contains_key(&id) {
            return json_message(409, &format!("An app with id [{id}] already exists."));
        }
        self.upsert_app(&id, |app| update.apply(app));
        match self.apps.get(&id) {
            Some(app) => json(201, &self.app_info(app, true, false))
                .with_header("Location", format!("/v2/apps{id}")),
            None => json_message(500, "app vanished"),
        }
    }

    fn put_app_http(&mut self, id: &str, body: &[u8]) -> SimResponse {
        if let Err(e) = validate_app_id(id) {
            return e;
        }
        let update = match self.parse_app_body(body, false) {
            Ok(update) => update,
            Err(response) => return response,
        };
        let created = !self.apps.contains_key(id);
        self.upsert_app(id, |app| update.apply(app));
        self.deployment_result(if created { 201 } else { 200 })
    }

    fn parse_app_body(&self, body: &[u8], id_required: bool) -> Result<AppUpdate, SimResponse> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            let message = format!("{e}");
            if self.version >= MarathonVersion::V1_4 {
                json(
                    400,
                    &J::obj([
                        ("message", J::s("Invalid JSON")),
                        ("details", J::s(message)),
                    ]),
                )
            } else {
                json_message(400, &message)
            }
        })?;
        let Value::Object(map) = value else {
            return Err(invalid_json("/", "error.expected.jsobject"));
        };
        let mut update = AppUpdate::default();
        match map.get("id") {
            Some(Value::String(id)) => {
                let id = normalize_app_id(id);
                validate_app_id(&id)?;
                update.id = Some(id);
            }
            Some(_) => return Err(invalid_json("/id", "error.expected.jsstring")),
            None if id_required => return Err(invalid_json("/id", "error.path.missing")),
            None => {}
        }
        if let Some(labels) = map.get("labels") {
            let Value::Object(labels) = labels else {
                return Err(invalid_json("/labels", "error.expected.jsobject"));
            };
            let mut out = BTreeMap::new();
            for (k, v) in labels {
                let Value::String(v) = v else {
                    return Err(invalid_json(
                        &format!("/labels/{k}"),
                        "error.expected.jsstring",
                    ));
                };
                out.insert(k.clone(), v.clone());
            }
            update.labels = Some(out);
        }
        if let Some(n) = map.get("instances") {
            match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => update.instances = Some(n),
                None => return Err(invalid_json("/instances", "error.expected.jsnumber")),
            }
        }
        if let Some(cmd) = map.get("cmd") {
            match cmd {
                Value::String(c) => update.cmd = Some(c.clone()),
                Value::Null => {}
                _ => return Err(invalid_json("/cmd", "error.expected.jsstring")),
            }
        }
        let port_of = |v: &Value| v.as_u64().and_then(|p| u16::try_from(p).ok());
        if let Some(ports) = map.get("ports") {
            let parsed: Option<Vec<u16>> = ports
                .as_array()
                .and_then(|a| a.iter().map(port_of).collect());
            match parsed {
                Some(p) => update.ports = Some(p),
                None => return Err(invalid_json("/ports", "error.expected.jsarray")),
            }
        }
        if let Some(defs) = map.get("portDefinitions") {
            let parsed: Option<Vec<u16>> = defs
                .as_array()
                .and_then(|a| a.iter().map(|d| d.get("port").and_then(port_of)).collect());
            match parsed {
                Some(p) => update.ports = Some(p),
                None => return Err(invalid_json("/portDefinitions", "error.expected.jsarray")),
            }
        }
        Ok(update)
    }
}

/// The subset of an app body the simulator applies.
#[derive(Debug, Default)]
struct AppUpdate {
    id: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    instances: Option<u32>,
    cmd: Option<String>,
    ports: Option<Vec<u16>>,
}

impl AppUpdate {
    fn apply(&self, app: &mut SimApp) {
        if let Some(l) = &self.labels {
            app.labels = l.clone();
        }
        if let Some(n) = self.instances {
            app.instances = n;
        }
        if let Some(c) = &self.cmd {
            app.cmd = c.clone();
        }
        if let Some(p) = &self.ports {
            app.service_ports = p.clone();
        }
    }
}

/// One term of a Marathon label selector.
enum LabelTerm {
    Exists(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelTerm {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            LabelTerm::Exists(k) => labels.contains_key(k),
            LabelTerm::Eq(k, v) => labels.get(k) == Some(v),
            LabelTerm::Ne(k, v) => labels.get(k) != Some(v),
            LabelTerm::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelTerm::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        }
    }
}

/// Parses `k`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, comma-separated (AND). `None`
/// when unparseable; the simulator then lists no apps (Marathon's exact error is not modelled).
fn parse_label_selector(selector: &str) -> Option<Vec<LabelTerm>> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            return None;
        }
        let set = |rest: &str| -> Option<Vec<String>> {
            let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            Some(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let term = if let Some((k, v)) = part.split_once("==") {
            LabelTerm::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("!=") {
            LabelTerm::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            LabelTerm::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = part.split_once(" in ") {
            LabelTerm::In(k.trim().into(), set(rest)?)
        } else if part.contains(|c: char| c.is_whitespace() || "()=!".contains(c)) {
            return None;
        } else {
            LabelTerm::Exists(part.into())
        };
        terms.push(term);
    }
    Some(terms)
}

/// `apps.tasks` / `app.tasks` / `group.apps.tasks` → `tasks`.
fn embed_name(value: &str) -> &str {
    ["group.apps.", "apps.", "app."]
        .iter()
        .find_map(|p| value.strip_prefix(p))
        .unwrap_or(value)
}

/// Absolute app id with empty segments dropped (Marathon's `PathId` parsing).
fn normalize_app_id(id: &str) -> String {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

const ID_PATTERN: &str = "^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$";

/// Checks every segment against `PathId`'s pattern; 422 "Object is not valid" otherwise.
fn validate_app_id(id: &str) -> Result<(), SimResponse> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let segment_ok = |s: &str| s == "." || s == ".." || s.split('.').all(label_ok);
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    if !segments.is_empty() && segments.iter().all(|s| segment_ok(s)) {
        return Ok(());
    }
    Err(json(
        422,
        &J::obj([
            ("message", J::s("Object is not valid")),
            (
                "details",
                J::Arr(vec![J::obj([
                    ("path", J::s("/id")),
                    (
                        "errors",
                        J::Arr(vec![J::s(format!(
                            "must fully match regular expression '{ID_PATTERN}'"
                        ))]),
                    ),
                ])]),
            ),
        ]),
    ))
}

/// What `new java.net.URL(url)` would complain about (`None` if it accepts it).
fn java_url_error(url: Option<&str>) -> Option<J> {
    let Some(url) = url else {
        // `new URL(null)` fails with a MalformedURLException without a message.
        return Some(J::Null);
    };
    let scheme = url.split_once(':').map(|(s, _)| s).filter(|s| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    match scheme {
        None => Some(J::s(format!("no protocol: {url}"))),
        Some(s) => {
            let s = s.to_ascii_lowercase();
            let known = ["http", "https", "ftp", "file", "jar", "mailto", "netdoc"];
            (!known.contains(&s.as_str())).then(|| J::s(format!("unknown protocol: {s}")))
        }
    }
}

/// Resolves `.` and `..` segments like Jetty; `None` if `..` climbs above the root.
fn canonical_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut out: Vec<&str> = Vec::new();
    for segment in path[1..].split('/') {
        match segment {
            "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    let mut p = format!("/{}", out.join("/"));
    if trailing && !p.ends_with('/') {
        p.push('/');
    }
    Some(p)
}

fn ports_json(ports: &[u16]) -> J {
    J::Arr(ports.iter().map(|p| J::Int(i64::from(*p))).collect())
}

fn ip_addresses_json(addresses: &[String]) -> J {
    J::Arr(
        addresses
            .iter()
            .map(|a| {
                let protocol = if a.contains(':') { "IPv6" } else { "IPv4" };
                J::obj([
                    ("ipAddress", J::s(a.as_str())),
                    ("protocol", J::s(protocol)),
                ])
            })
            .collect(),
    )
}

fn json(status: u16, body: &J) -> SimResponse {
    SimResponse::new(status, JSON, body.compact(false))
}

fn json_message(status: u16, message: &str) -> SimResponse {
    json(status, &J::obj([("message", J::s(message))]))
}

fn invalid_json(path: &str, error: &str) -> SimResponse {
    json(
        400,
        &J::obj([
            ("message", J::s("Invalid JSON")),
            (
                "details",
                J::Arr(vec![J::obj([
                    ("path", J::s(path)),
                    ("errors", J::Arr(vec![J::s(error)])),
                ])]),
            ),
        ]),
    )
}

fn unknown_app(id: &str) -> SimResponse {
    json_message(404, &format!("App '{id}' does not exist"))
}

fn unknown_group(group: &str) -> SimResponse {
    let group = normalize_app_id(group);
    json_message(404, &format!("Group '{group}' does not exist"))
}

fn not_found_uri(raw_path: &str) -> SimResponse {
    json_message(404, &format!("URI not found: {raw_path}"))
}

fn method_not_allowed(allow: &str) -> SimResponse {
    json_message(405, "Method Not Allowed").with_header("Allow", allow)
}

/// Jetty's HTML error page (the shape of `ErrorHandler` in Jetty 9; the footer is shortened).
fn jetty_error(status: u16, message: &str, uri: &str) -> SimResponse {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let message = escape(message);
    let body = format!(
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n\
         <title>Error {status} {message}</title>\n</head>\n<body><h2>HTTP ERROR {status}</h2>\n\
         <p>Problem accessing {}. Reason:\n<pre>    {message}</pre></p><hr>\
         <a href=\"http://eclipse.org/jetty\">Powered by Jetty://</a><hr/>\n\n</body>\n</html>\n",
        escape(uri)
    );
    SimResponse::new(status, "text/html;charset=ISO-8859-1", body)
}

/// Jetty's answer to an undecodable request URI.
fn jetty_bad_uri() -> SimResponse {
    SimResponse::new(
        400,
        "text/html;charset=iso-8859-1",
        "<h1>Bad Message 400</h1><pre>reason: Bad URI</pre>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_with_millis() {
        assert_eq!(iso8601(DEFAULT_TIME_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_024), "1970-01-01T00:00:01.024Z");
        assert_eq!(
            iso8601(951_782_400_000 + 86_399_999),
            "2000-02-29T23:59:59.999Z"
        );
        assert!(iso8601(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn go_escaping_differs_from_serde() {
        let v = J::s("<a&b>\u{8}");
        assert_eq!(v.compact(true), "\"\\u003ca\\u0026b\\u003e\\u0008\"");
        assert_eq!(v.compact(false), "\"<a&b>\\b\"");
    }

    #[test]
    fn pretty_matches_go_marshal_indent() {
        let v = J::obj([
            ("a", J::Arr(vec![J::Int(1)])),
            ("b", J::Obj(Vec::new())),
            ("c", J::Arr(Vec::new())),
        ]);
        assert_eq!(
            v.pretty_go(),
            "{\n    \"a\": [\n        1\n    ],\n    \"b\": {},\n    \"c\": []\n}\n"
        );
    }

    #[test]
    fn canonical_paths() {
        assert_eq!(
            canonical_path("/v2/apps/../info").as_deref(),
            Some("/v2/info")
        );
        assert_eq!(canonical_path("/.."), None);
        assert_eq!(canonical_path("x"), None);
    }

    #[test]
    fn label_selectors() {
        let labels: BTreeMap<String, String> =
            [("a".to_string(), "1".to_string())].into_iter().collect();
        let check = |s: &str| parse_label_selector(s).map(|t| t.iter().all(|t| t.matches(&labels)));
        assert_eq!(check("a"), Some(true));
        assert_eq!(check("a==1,b"), Some(false));
        assert_eq!(check("a in (1, 2)"), Some(true));
        assert_eq!(check("a notin (1)"), Some(false));
        assert_eq!(check("b!=x"), Some(true));
        assert_eq!(check("a (("), None);
    }
}
