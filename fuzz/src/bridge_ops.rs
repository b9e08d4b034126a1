//! The `bridge_ops` harness: one [`Bridge`] driven through an arbitrary sequence of inputs decoded
//! from fuzz bytes, with the driver played by this harness and every answer chosen by the fuzzer.
//!
//! The input is decoded into a [`Config`] (events by callback, stream or auto; sync interval; purge;
//! fallback; in-flight limits; timeouts; event size limit) and a list of [`Op`]s: inbound events
//! (well-formed status updates from small pools of task, app and host names, or raw bytes),
//! responses with any status and a raw or plausible body to any outstanding request (picked by
//! index), transport errors, late responses to requests already answered, stream open, data and
//! close (current or stale stream), and clock moves (forward, to the bridge's wake-up, backwards).
//!
//! After every input the harness drains the bridge and checks, panicking on a breach:
//!
//! - draining reaches [`Output::Timeout`] within [`DRAIN_BOUND`] outputs;
//! - requests in flight never exceed `max_in_flight`, and never exceed what the driver holds;
//! - request ids are never reused; a new stream opens only after the last one was closed;
//! - every reply answers an inbound request still waiting, with a JSON body and a known status;
//! - no `PUT /v1/agent/service/deregister/<id>` unless `<id>` was listed by an agent with our
//!   `consular-reg-id=<id>` tag or named by an event (the only two reasons to deregister);
//! - no KV write or delete outside `consular/`, and transactions use only index-checked verbs;
//! - agent targets are lower-cased, as [`Target::Agent`] documents, and are hosts some catalog
//!   answer named (a member of the Consul cluster): no other host is ever sent the token;
//! - no request path has a `.` or `..` segment, a control character, a space or a fragment;
//! - registrations carry our tag first; label values written are JSON strings; Marathon is only
//!   read, except for the callback subscription;
//! - `handle_timeout(now)` makes progress: the next wake-up is later than `now` after a few calls;
//! - in-flight plus queued requests stay under [`PENDING_BOUND`] (a leak would grow past it).
//!
//! At the end every outstanding request is failed and timers are fired until the bridge is idle:
//! every inbound request must then have had exactly one reply and nothing may stay queued. The
//! ops then run again, [`PASSES`] times in all, and the bridge's size after the last pass must
//! not have grown past a small slack over the pass before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use consular_core::consul::{
    parse_agent_services, parse_catalog_nodes, REGISTER_PATH, REG_ID_TAG_PREFIX,
};
use consular_core::encoding::{base64_decode, base64_encode, encode_segment};
use consular_core::marathon::{parse_event, MarathonEvent, SseParser};
use consular_core::{
    AddressMode, Bridge, Config, EventSource, EventsEndpoint, FallbackMode, HealthChecks,
    InboundId, MarathonConsulLeftovers, Method, Output, Placement, RegisterWhen, Request,
    RequestId, Response, Target, TransportError,
};
use serde_json::{json, Value};

use crate::choices::{Choices, Seeded};

/// Outputs one drain may produce before the harness calls it a livelock.
pub const DRAIN_BOUND: usize = 10_000;
/// In-flight plus queued requests the bridge may hold. Inputs are a few kilobytes, so only a leak
/// or an amplification loop gets near it.
pub const PENDING_BOUND: usize = 4_096;
/// How many times the ops of one input run (see [`run`]).
pub const PASSES: usize = 3;
/// Ops decoded from one input at most, so one input runs in milliseconds.
const MAX_OPS: usize = 512;
/// Late-response candidates kept (the most recently answered request ids).
const ANSWERED_KEPT: usize = 64;

/// Task ids shared by events, Marathon listings and agent listings, so they meet. Two differ only
/// in case; the last three break Marathon's grammar (and would form other URLs if they got into
/// one), so the bridge must refuse them wherever they come from.
pub const TASK_IDS: &[&str] = &["t0", "t1", "T0", "web.1-a", "a/b c", "é%?#", ".."];
/// App ids; `/grp/svc1` and `/grp-svc1` share the service name `grp-svc1` (a clash).
pub const APP_IDS: &[&str] = &["/app0", "/grp/svc1", "/grp-svc1", "/app0/x", "app2"];
/// Task hosts and agent addresses, one upper-case.
pub const HOSTS: &[&str] = &["node-1", "node-2", "Node-1", "10.0.0.3"];
/// Every Mesos state name, and one Marathon never sends.
pub const STATES: &[&str] = &[
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
    "TASK_BOGUS",
];
const REGISTRATION_IDS: &[&str] = &["consular", "blue"];
/// The callback URL the bridge subscribes (registration id `consular`).
pub const CALLBACK_URL: &str = "http://consular:7000/events?registration=consular";
const INBOUND_PATHS: &[&str] = &["/events", "/", "/nope"];
const ODD_STATUSES: &[u16] = &[0, 100, 204, 301, 400, 401, 404, 409, 500, 503, 999];
const OTHER_EVENT_TYPES: &[&str] = &["deployment_info", "api_post_event", "event_stream_attached"];

/// One input to the bridge, decoded from fuzz bytes. Picks are resolved modulo what exists when
/// the op runs, so a shrunk input stays meaningful.
#[derive(Debug, Clone)]
pub enum Op {
    /// An inbound HTTP request on `path` with an event body.
    Inbound {
        /// `/events`, `/` or an unknown path.
        path: &'static str,
        /// The body.
        body: EventBody,
    },
    /// `handle_inbound` with an id still waiting for its reply: it must be refused.
    InboundReusingOpenId {
        /// Which waiting id.
        pick: usize,
    },
    /// Answers an outstanding request.
    Respond {
        /// Which outstanding request.
        pick: usize,
        /// The HTTP status.
        status: u16,
        /// The body.
        body: ResponseBody,
    },
    /// Fails an outstanding request.
    Fail {
        /// Which outstanding request.
        pick: usize,
        /// How it fails.
        error: FailKind,
    },
    /// Answers a request that was already answered.
    Late {
        /// Which answered request.
        pick: usize,
        /// The HTTP status.
        status: u16,
    },
    /// The response head of the current (or a stale) stream.
    StreamOpen {
        /// The HTTP status.
        status: u16,
        /// Report it for an old stream id instead.
        stale: bool,
    },
    /// A chunk of the current (or a stale) stream.
    StreamData {
        /// The bytes.
        chunk: StreamChunk,
        /// Report it for an old stream id instead.
        stale: bool,
    },
    /// The end of the current (or a stale) stream.
    StreamClosed {
        /// Closed cleanly rather than broken.
        clean: bool,
        /// Report it for an old stream id instead.
        stale: bool,
    },
    /// The clock moves forward by `ms`; then a timer tick.
    Advance {
        /// Milliseconds.
        ms: u32,
    },
    /// The clock moves to the wake-up time the bridge asked for; then a timer tick.
    Wake,
    /// A timer tick with a `now` earlier than the last one (the bridge must clamp it).
    Backwards {
        /// Milliseconds before the current time.
        ms: u16,
    },
}

/// A Marathon event body.
#[derive(Debug, Clone)]
pub enum EventBody {
    /// Arbitrary bytes.
    Raw(Vec<u8>),
    /// A well-formed `status_update_event`.
    Status(StatusEvent),
    /// An `app_terminated_event`.
    Terminated {
        /// The app id.
        app: &'static str,
    },
    /// A well-formed event of a type the bridge ignores.
    Other(&'static str),
}

/// The fields of a status update, from the pools.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    /// `taskId`.
    pub task: &'static str,
    /// `appId` (absent when `None`).
    pub app: Option<&'static str>,
    /// `host`.
    pub host: &'static str,
    /// `taskStatus`.
    pub state: &'static str,
    /// `ports`.
    pub ports: Vec<u16>,
}

/// A response body.
#[derive(Debug, Clone)]
pub enum ResponseBody {
    /// Arbitrary bytes.
    Raw(Vec<u8>),
    /// A body shaped like what Marathon or Consul answers to the picked request, its details
    /// drawn from this seed.
    Plausible(Vec<u8>),
}

/// A chunk of the event stream.
#[derive(Debug, Clone)]
pub enum StreamChunk {
    /// Arbitrary bytes.
    Raw(Vec<u8>),
    /// One SSE frame holding an event, delivered in two chunks split at `split` (modulo length).
    Event {
        /// The event.
        body: EventBody,
        /// Where to split the frame.
        split: usize,
    },
    /// Marathon's heartbeat (a blank line).
    Heartbeat,
}

/// A transport failure.
#[derive(Debug, Clone, Copy)]
pub enum FailKind {
    /// [`TransportError::Timeout`].
    Timeout,
    /// [`TransportError::Connect`].
    Connect,
    /// [`TransportError::Io`].
    Io,
}

/// A decoded input: the bridge's configuration and the ops to apply.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The configuration.
    pub config: Config,
    /// The ops, in order.
    pub ops: Vec<Op>,
}

impl Scenario {
    /// Decodes fuzz bytes; `None` if they do not even hold a configuration.
    pub fn decode(bytes: &[u8]) -> Option<Scenario> {
        let mut c = Choices::new(bytes);
        let config = decode_config(&mut c)?;
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS {
            match decode_op(&mut c) {
                Some(op) => ops.push(op),
                None => break,
            }
        }
        Some(Scenario { config, ops })
    }
}

fn decode_config(c: &mut Choices) -> Option<Config> {
    let events = *c.pick(&[
        EventSource::Callback,
        EventSource::Stream,
        EventSource::Auto,
    ])?;
    let flags = c.u8()?;
    Some(Config {
        registration_id: (*c.pick(REGISTRATION_IDS)?).into(),
        callback_url: (flags & 1 == 0).then(|| CALLBACK_URL.into()),
        sync_interval: Duration::from_secs(1 + c.below(60)? as u64),
        // Purge three times in four: it is the path the ownership check guards.
        purge: flags & 6 != 6,
        request_timeout: Duration::from_secs(c.below(10)? as u64),
        require_label: None,
        address: AddressMode::Auto,
        health_checks: *c.pick(&[
            HealthChecks::None,
            HealthChecks::Mirror,
            HealthChecks::Agent,
        ])?,
        register_when: *c.pick(&[RegisterWhen::Running, RegisterWhen::Healthy])?,
        fallback: flags & 8 != 0,
        fallback_timeout: Duration::from_secs(c.below(4)? as u64),
        fallback_mode: *c.pick(&[FallbackMode::Agent, FallbackMode::Catalog])?,
        placement: *c.pick(&[
            Placement::OnAgents,
            Placement::OnAgents,
            Placement::Agentless,
        ])?,
        max_in_flight: 1 + c.below(8)?,
        max_in_flight_per_target: 1 + c.below(4)?,
        debug: flags & 16 != 0,
        events,
        // Mostly always served, so callbacks reach the bridge whatever the event source.
        events_endpoint: if flags & 32 != 0 && flags & 64 != 0 {
            EventsEndpoint::WhileCallbacks
        } else {
            EventsEndpoint::Always
        },
        events_secret: None,
        max_listing_bytes: 1 << 20,
        stream_idle_timeout: Duration::from_secs(c.below(40)? as u64),
        max_event_bytes: 16 + c.below(2048)?,
        seed: u64::from(c.u16()?),
        ha: None,
        writes: consular_core::WriteMode::Apply,
        // The migration deregisters services that are not ours, which the deregistration
        // invariant above forbids; its rule has its own tests (plan/migration.rs).
        marathon_consul: MarathonConsulLeftovers::Keep,
    })
}

fn decode_status_code(c: &mut Choices) -> Option<u16> {
    Some(match c.below(16)? {
        0 => *c.pick(ODD_STATUSES)?,
        1 => c.u16()?,
        _ => 200,
    })
}

fn decode_event(c: &mut Choices) -> Option<EventBody> {
    Some(match c.below(10)? {
        0 => EventBody::Raw(c.slice(512)?.to_vec()),
        1 => EventBody::Terminated {
            app: c.pick(APP_IDS)?,
        },
        2 => EventBody::Other(c.pick(OTHER_EVENT_TYPES)?),
        _ => {
            let flags = c.u8()?;
            let ports = (0..flags % 3)
                .map(|_| c.u16())
                .collect::<Option<Vec<u16>>>()?;
            // RUNNING half the time, so there is something to deregister later.
            let state = if flags & 8 != 0 {
                "TASK_RUNNING"
            } else {
                c.pick(STATES)?
            };
            EventBody::Status(StatusEvent {
                task: c.pick(TASK_IDS)?,
                app: if flags & 16 == 0 || flags & 32 == 0 {
                    Some(c.pick(APP_IDS)?)
                } else {
                    None
                },
                host: c.pick(HOSTS)?,
                state,
                ports,
            })
        }
    })
}

fn decode_op(c: &mut Choices) -> Option<Op> {
    Some(match c.below(34)? {
        0..=4 => Op::Inbound {
            path: "/events",
            body: decode_event(c)?,
        },
        5 => Op::Inbound {
            path: c.pick(INBOUND_PATHS)?,
            body: EventBody::Raw(c.slice(256)?.to_vec()),
        },
        6 => Op::InboundReusingOpenId {
            pick: usize::from(c.u8()?),
        },
        7..=15 => Op::Respond {
            pick: usize::from(c.u8()?),
            status: decode_status_code(c)?,
            body: ResponseBody::Plausible(c.slice(64)?.to_vec()),
        },
        16..=17 => Op::Respond {
            pick: usize::from(c.u8()?),
            status: decode_status_code(c)?,
            body: ResponseBody::Raw(c.slice(512)?.to_vec()),
        },
        18..=19 => Op::Fail {
            pick: usize::from(c.u8()?),
            error: *c.pick(&[FailKind::Timeout, FailKind::Connect, FailKind::Io])?,
        },
        20 => Op::Late {
            pick: usize::from(c.u8()?),
            status: decode_status_code(c)?,
        },
        21 => Op::StreamOpen {
            status: decode_status_code(c)?,
            stale: c.below(8)? == 0,
        },
        22..=24 => Op::StreamData {
            chunk: StreamChunk::Event {
                body: decode_event(c)?,
                split: usize::from(c.u16()?),
            },
            stale: c.below(8)? == 0,
        },
        25 => Op::StreamData {
            chunk: if c.bool()? {
                StreamChunk::Heartbeat
            } else {
                StreamChunk::Raw(c.slice(512)?.to_vec())
            },
            stale: c.below(8)? == 0,
        },
        26 => Op::StreamClosed {
            clean: c.bool()?,
            stale: c.below(8)? == 0,
        },
        27..=28 => Op::Advance {
            // Mostly under a minute; sometimes up to about 18 hours.
            ms: if c.below(8)? == 0 {
                c.u32()? >> 6
            } else {
                u32::from(c.u16()?)
            },
        },
        29..=32 => Op::Wake,
        _ => Op::Backwards { ms: c.u16()? },
    })
}

impl EventBody {
    /// The JSON (or raw) bytes of the event.
    pub fn to_bytes(&self) -> Vec<u8> {
        let value = match self {
            EventBody::Raw(bytes) => return bytes.clone(),
            EventBody::Status(s) => {
                let mut event = json!({
                    "eventType": "status_update_event",
                    "timestamp": "2016-01-01T00:00:00.000Z",
                    "slaveId": "s1",
                    "taskId": s.task,
                    "taskStatus": s.state,
                    "message": "",
                    "host": s.host,
                    "ports": s.ports,
                    "version": "2016-01-01T00:00:00.000Z",
                });
                if let Some(app) = s.app {
                    event["appId"] = json!(app);
                }
                event
            }
            EventBody::Terminated { app } => json!({
                "eventType": "app_terminated_event",
                "appId": app,
                "timestamp": "2016-01-01T00:00:00.000Z",
            }),
            EventBody::Other(event_type) => json!({
                "eventType": event_type,
                "timestamp": "2016-01-01T00:00:00.000Z",
            }),
        };
        serde_json::to_vec(&value).expect("JSON values serialise")
    }

    fn event_type(&self) -> &'static str {
        match self {
            EventBody::Raw(_) => "x",
            EventBody::Status(_) => "status_update_event",
            EventBody::Terminated { .. } => "app_terminated_event",
            EventBody::Other(t) => t,
        }
    }
}

/// A body shaped like Marathon's or Consul's answer to `request`, details drawn from `seed`.
pub fn plausible_body(request: &Request, seed: &[u8], registration_id: &str) -> Vec<u8> {
    let mut s = Seeded::new(seed);
    let path = request.path_and_query.as_str();
    let value = if path.starts_with("/v2/apps?") {
        let apps: Vec<Value> = (0..s.below(4)).map(|_| app_json(&mut s)).collect();
        json!({ "apps": apps })
    } else if path.starts_with("/v2/apps/") && path.ends_with("/tasks") {
        json!({ "tasks": tasks_json(&mut s) })
    } else if path.starts_with("/v2/apps/") {
        json!({ "app": app_json(&mut s) })
    } else if path.starts_with("/v2/eventSubscriptions") {
        let urls: &[&str] = match s.below(3) {
            0 => &[CALLBACK_URL],
            1 => &["http://elsewhere/events", CALLBACK_URL],
            _ => &[],
        };
        json!({ "callbackUrls": urls })
    } else if path == "/v1/catalog/nodes" {
        let nodes: Vec<Value> = (0..s.below(4))
            .map(|i| json!({ "Node": format!("n{i}"), "Address": s.pick(HOSTS) }))
            .collect();
        json!(nodes)
    } else if path == "/v1/agent/services" {
        agent_services_json(&mut s, registration_id)
    } else if let Some(id) = path.strip_prefix("/v1/agent/service/") {
        let tags = if s.bool() {
            json!([
                format!("consular-reg-id={registration_id}"),
                "consular-app-id=/app0"
            ])
        } else {
            json!(["someone-else"])
        };
        json!({ "ID": id, "Service": "app0", "Tags": tags, "Port": 0, "Address": "" })
    } else if path.starts_with("/v1/health/state/") {
        let failed: Vec<Value> = (0..s.below(2))
            .map(|i| json!({ "Node": format!("n{i}"), "CheckID": "serfHealth", "Status": "critical" }))
            .collect();
        json!(failed)
    } else if path.starts_with("/v1/kv/") {
        kv_entries_json(&mut s)
    } else if path == "/v1/txn" {
        json!({ "Results": [], "Errors": null })
    } else {
        // Registrations and deregistrations answer with an empty body.
        return if s.bool() { b"{}".to_vec() } else { Vec::new() };
    };
    serde_json::to_vec(&value).expect("JSON values serialise")
}

fn app_json(s: &mut Seeded) -> Value {
    let mut app = json!({ "id": s.pick(APP_IDS) });
    app["labels"] = match s.below(3) {
        0 => Value::Null,
        1 => json!({}),
        _ => {
            let labels: serde_json::Map<String, Value> = (0..1 + s.below(3))
                .map(|_| {
                    (
                        format!("k{}", s.below(3)),
                        json!(format!("v{}", s.below(3))),
                    )
                })
                .collect();
            Value::Object(labels)
        }
    };
    match s.below(4) {
        // Marathon ignored `embed=apps.tasks`: one tasks request per app follows.
        0 => {}
        _ => app["tasks"] = tasks_json(s),
    }
    app
}

fn tasks_json(s: &mut Seeded) -> Value {
    let tasks: Vec<Value> = (0..s.below(4))
        .map(|_| {
            let mut task = json!({
                "id": s.pick(TASK_IDS),
                "host": s.pick(HOSTS),
                "ports": if s.below(4) == 0 { Value::Null } else { json!([31000 + s.below(3)]) },
                "startedAt": if s.below(4) == 0 { Value::Null } else { json!("2016-01-01T00:00:00.000Z") },
            });
            match s.below(4) {
                0 => {} // Marathon before 1.1.2: no state
                1 => task["state"] = json!(s.pick(STATES)),
                _ => task["state"] = json!("TASK_RUNNING"),
            }
            task
        })
        .collect();
    json!(tasks)
}

fn agent_services_json(s: &mut Seeded, registration_id: &str) -> Value {
    let ours = format!("{REG_ID_TAG_PREFIX}{registration_id}");
    let mut services = serde_json::Map::new();
    for _ in 0..s.below(5) {
        let id = *s.pick(TASK_IDS);
        let app = *s.pick(APP_IDS);
        let tags = match s.below(6) {
            0 => json!([]),
            1 => Value::Null,
            2 => json!(["consular-reg-id=someone-else"]),
            3 => json!([format!("{ours}x"), format!("consular-app-id={app}")]),
            _ => json!([ours, format!("consular-app-id={app}")]),
        };
        services.insert(
            id.into(),
            json!({
                "ID": id,
                "Service": app.trim_start_matches('/').replace('/', "-"),
                "Tags": tags,
                "Port": if s.bool() { 0 } else { 31000 + s.below(3) },
                "Address": s.pick(HOSTS),
            }),
        );
    }
    Value::Object(services)
}

fn kv_entries_json(s: &mut Seeded) -> Value {
    const KEYS: &[&str] = &[
        "consular/app0/k0",
        "consular/app0/k1",
        "consular/grp-svc1/k0",
        "consular/gone/k0",
        "consular/app0",
        "consular/app0-x/k2",
    ];
    let entries: Vec<Value> = (0..s.below(5))
        .map(|_| {
            let value = match s.below(5) {
                0 => Value::Null,
                1 => json!("not base64!"),
                _ => json!(base64_encode(format!("\"v{}\"", s.below(3)).as_bytes())),
            };
            json!({ "Key": s.pick(KEYS), "Value": value, "ModifyIndex": s.below(20) })
        })
        .collect();
    json!(entries)
}

fn trace_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CONSULAR_FUZZ_TRACE").is_some())
}

/// The event stream as the driver sees it.
#[derive(Debug, Default)]
struct Streams {
    /// Asked for by the bridge and not closed by either side.
    current: Option<RequestId>,
    /// Closed ones, for stale reports.
    stale: Vec<RequestId>,
    /// A mirror of the bridge's SSE parser per stream that was answered 200, to learn which task
    /// ids the bridge could have seen in stream events.
    mirrors: BTreeMap<RequestId, SseParser>,
}

/// The driver: holds what the bridge asked for and checks every output.
pub struct Harness {
    bridge: Bridge,
    config: Config,
    now: Duration,
    wake: Option<Duration>,
    outstanding: Vec<Request>,
    answered: Vec<RequestId>,
    request_ids: BTreeSet<RequestId>,
    streams: Streams,
    next_inbound: u64,
    open_inbound: BTreeSet<InboundId>,
    our_tag: String,
    /// Percent-encoded ids of services some agent listing showed with our tag.
    listed_ours: BTreeSet<String>,
    /// Percent-encoded task ids of events the bridge could have parsed.
    event_tasks: BTreeSet<String>,
    /// Lower-cased addresses and names of every node a catalog answer listed.
    members: BTreeSet<String>,
    trace: bool,
}

/// Decodes `bytes` and runs the scenario with every check; panics on a breach.
///
/// The ops run [`PASSES`] times in a row, each pass ending idle, so a short input stands for a
/// long run: the bridge's state after the last pass may not be much larger than after the one
/// before (its `Debug` text is the size proxy), or something leaks per pass.
pub fn run(bytes: &[u8]) {
    let Some(scenario) = Scenario::decode(bytes) else {
        return;
    };
    let mut harness = Harness::new(scenario.config);
    let mut sizes = Vec::new();
    for pass in 0..PASSES {
        if harness.trace {
            eprintln!("pass {pass}");
        }
        for op in &scenario.ops {
            harness.apply(op);
        }
        harness.finish();
        sizes.push(format!("{:?}", harness.bridge).len());
    }
    // Not a leak: counters gain digits, and ids from the input may land in tables one pass
    // and not the one before (timing differs), a few copies each, Debug-escaped at most about
    // one output byte per input byte. A leak keeps a request or a task record (hundreds of
    // bytes) per op or event (a few input bytes), so it grows far faster than this slack.
    let slack = 1024 + 16 * bytes.len();
    let (before, after) = (sizes[PASSES - 2], sizes[PASSES - 1]);
    assert!(
        after <= before + slack,
        "the bridge grew from {before} to {after} bytes of Debug text in one more pass: {sizes:?}"
    );
}

impl Harness {
    /// A bridge started at time zero with `config`, drained and checked.
    pub fn new(config: Config) -> Self {
        let our_tag = format!("{REG_ID_TAG_PREFIX}{}", config.registration_id);
        let trace = trace_enabled();
        if trace {
            eprintln!("config: {config:?}");
        }
        let mut harness = Harness {
            bridge: Bridge::new(config.clone(), Duration::ZERO),
            config,
            now: Duration::ZERO,
            wake: None,
            outstanding: Vec::new(),
            answered: Vec::new(),
            request_ids: BTreeSet::new(),
            streams: Streams::default(),
            next_inbound: 0,
            open_inbound: BTreeSet::new(),
            our_tag,
            listed_ours: BTreeSet::new(),
            members: BTreeSet::new(),
            event_tasks: BTreeSet::new(),
            trace,
        };
        harness.drain();
        harness
    }

    /// Applies one op, drains and checks.
    pub fn apply(&mut self, op: &Op) {
        if self.trace {
            eprintln!("@{:?} {op:?}", self.now);
        }
        match op {
            Op::Inbound { path, body } => {
                let bytes = body.to_bytes();
                if *path == "/events" {
                    self.note_event(&bytes);
                }
                self.next_inbound += 1;
                let id = InboundId(self.next_inbound);
                self.open_inbound.insert(id);
                self.bridge
                    .handle_inbound(self.now, id, path, &bytes)
                    .expect("a fresh inbound id is accepted");
            }
            Op::InboundReusingOpenId { pick } => {
                let Some(&id) = nth(&self.open_inbound, *pick) else {
                    return;
                };
                let result = self.bridge.handle_inbound(self.now, id, "/events", b"{}");
                assert!(
                    result.is_err(),
                    "an id still waiting for its reply was accepted again"
                );
            }
            Op::Respond { pick, status, body } => {
                let Some(request) = self.take_outstanding(*pick) else {
                    return;
                };
                let body = match body {
                    ResponseBody::Raw(bytes) => bytes.clone(),
                    ResponseBody::Plausible(seed) => {
                        plausible_body(&request, seed, &self.config.registration_id)
                    }
                };
                if self.trace {
                    eprintln!(
                        "  {} → {status} {}",
                        describe(&request),
                        String::from_utf8_lossy(&body)
                    );
                }
                if request.method == Method::Get && request.path_and_query == "/v1/agent/services" {
                    self.note_listing(&body);
                }
                let catalog = request.target == Target::Consul
                    && request.path_and_query == "/v1/catalog/nodes";
                if catalog && (200..300).contains(status) {
                    self.note_catalog(&body);
                }
                let response = Response {
                    status: *status,
                    body,
                };
                self.answered_now(request.id);
                self.bridge
                    .handle_response(self.now, request.id, Ok(response));
            }
            Op::Fail { pick, error } => {
                let Some(request) = self.take_outstanding(*pick) else {
                    return;
                };
                let error = match error {
                    FailKind::Timeout => TransportError::Timeout,
                    FailKind::Connect => TransportError::Connect("connection refused".into()),
                    FailKind::Io => TransportError::Io("connection reset".into()),
                };
                if self.trace {
                    eprintln!("  {} → {error}", describe(&request));
                }
                self.answered_now(request.id);
                self.bridge
                    .handle_response(self.now, request.id, Err(error));
            }
            Op::Late { pick, status } => {
                let Some(&id) = self.answered.get(pick % self.answered.len().max(1)) else {
                    return;
                };
                let late_before = self.bridge.metrics().late_responses();
                let response = Response {
                    status: *status,
                    body: b"{}".to_vec(),
                };
                self.bridge.handle_response(self.now, id, Ok(response));
                assert_eq!(
                    self.bridge.metrics().late_responses(),
                    late_before + 1,
                    "a second answer to {id} was not counted as late"
                );
            }
            Op::StreamOpen { status, stale } => {
                let Some(id) = self.stream_id(*stale) else {
                    return;
                };
                if *status == 200 {
                    // The bridge resets its parser only on the first 200 for an id.
                    let limit = self.config.max_event_bytes;
                    self.streams
                        .mirrors
                        .entry(id)
                        .or_insert_with(|| SseParser::new(limit));
                }
                self.bridge.handle_stream_open(self.now, id, *status);
            }
            Op::StreamData { chunk, stale } => {
                let Some(id) = self.stream_id(*stale) else {
                    return;
                };
                let chunks: Vec<Vec<u8>> = match chunk {
                    StreamChunk::Raw(bytes) => vec![bytes.clone()],
                    StreamChunk::Heartbeat => vec![b"\r\n".to_vec()],
                    StreamChunk::Event { body, split } => {
                        let mut frame =
                            format!("event: {}\r\ndata: ", body.event_type()).into_bytes();
                        frame.extend_from_slice(&body.to_bytes());
                        frame.extend_from_slice(b"\r\n\r\n");
                        let at = split % (frame.len() + 1);
                        vec![frame[..at].to_vec(), frame[at..].to_vec()]
                    }
                };
                for chunk in chunks {
                    self.note_stream_data(id, &chunk);
                    self.bridge.handle_stream_data(self.now, id, &chunk);
                    self.drain();
                }
            }
            Op::StreamClosed { clean, stale } => {
                let Some(id) = self.stream_id(*stale) else {
                    return;
                };
                if self.streams.current == Some(id) {
                    self.streams.current = None;
                    self.streams.stale.push(id);
                }
                let error = (!clean).then(|| TransportError::Io("stream broke".into()));
                self.bridge.handle_stream_closed(self.now, id, error);
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.tick();
                return;
            }
            Op::Wake => {
                if let Some(at) = self.wake {
                    self.now = self.now.max(at);
                }
                self.tick();
                return;
            }
            Op::Backwards { ms } => {
                let earlier = self
                    .now
                    .saturating_sub(Duration::from_millis(u64::from(*ms)));
                self.bridge.handle_timeout(earlier);
            }
        }
        self.drain();
    }

    /// A timer tick at `now`: repeated ticks at the same time must soon ask for a later wake-up,
    /// or a driver that sleeps until the wake-up would spin.
    fn tick(&mut self) {
        for _ in 0..4 {
            self.bridge.handle_timeout(self.now);
            self.drain();
            if self.wake.is_none_or(|at| at > self.now) {
                return;
            }
        }
        panic!(
            "handle_timeout({:?}) keeps asking to be woken at {:?}: no progress",
            self.now, self.wake
        );
    }

    /// Fails everything outstanding and fires timers until the bridge is idle, then checks that
    /// every inbound request got its reply and nothing is left queued.
    pub fn finish(&mut self) {
        if self.trace {
            eprintln!("finish: failing everything outstanding");
        }
        let rounds = 1_000 + 16 * self.next_inbound as usize;
        for _ in 0..rounds {
            if let Some(request) = self.take_outstanding(0) {
                self.answered_now(request.id);
                let error = TransportError::Connect("connection refused".into());
                self.bridge
                    .handle_response(self.now, request.id, Err(error));
                self.drain();
                continue;
            }
            let idle = self.bridge.in_flight() == 0 && self.bridge.queued() == 0;
            if idle && self.open_inbound.is_empty() {
                return;
            }
            assert!(
                self.bridge.in_flight() == 0,
                "{} requests in flight that the driver never received",
                self.bridge.in_flight()
            );
            assert!(
                self.bridge.queued() == 0,
                "{} requests queued with nothing in flight",
                self.bridge.queued()
            );
            let Some(at) = self.wake else {
                panic!(
                    "inbound requests {:?} wait for a reply, but nothing is in flight and no timer is armed",
                    self.open_inbound
                );
            };
            self.now = self.now.max(at);
            self.tick();
        }
        panic!(
            "not idle after {rounds} rounds: {} in flight, {} queued, {} inbound waiting",
            self.bridge.in_flight(),
            self.bridge.queued(),
            self.open_inbound.len()
        );
    }

    fn take_outstanding(&mut self, pick: usize) -> Option<Request> {
        if self.outstanding.is_empty() {
            return None;
        }
        let index = pick % self.outstanding.len();
        Some(self.outstanding.remove(index))
    }

    fn answered_now(&mut self, id: RequestId) {
        if self.answered.len() == ANSWERED_KEPT {
            self.answered.remove(0);
        }
        self.answered.push(id);
    }

    fn stream_id(&self, stale: bool) -> Option<RequestId> {
        if stale {
            self.streams.stale.last().copied()
        } else {
            self.streams.current
        }
    }

    /// Remembers the task id of an event body the bridge may act on.
    fn note_event(&mut self, body: &[u8]) {
        if let Ok(MarathonEvent::StatusUpdate(update)) = parse_event(body) {
            self.event_tasks.insert(encode_segment(&update.task_id));
        }
    }

    fn note_stream_data(&mut self, id: RequestId, data: &[u8]) {
        let Some(mirror) = self.streams.mirrors.get_mut(&id) else {
            return;
        };
        let mut events = Vec::new();
        mirror.push(data, &mut events);
        for event in events {
            self.note_event(event.data.as_bytes());
        }
    }

    /// Remembers the hosts a catalog answer named: the only ones that may become agent targets.
    fn note_catalog(&mut self, body: &[u8]) {
        if let Ok(nodes) = parse_catalog_nodes(body) {
            for node in nodes {
                self.members.insert(node.address.to_ascii_lowercase());
                self.members.insert(node.name.to_ascii_lowercase());
            }
        }
    }

    /// Remembers which services an agent listing showed with our tag, as the bridge parses it.
    fn note_listing(&mut self, body: &[u8]) {
        if let Ok(services) = parse_agent_services(body) {
            for service in services {
                if service.tags.contains(&self.our_tag) {
                    self.listed_ours.insert(encode_segment(&service.id));
                }
            }
        }
    }

    /// Drains the bridge to its `Timeout`, checking every output.
    fn drain(&mut self) {
        for _ in 0..DRAIN_BOUND {
            let output = self.bridge.poll_output();
            if self.trace && !matches!(output, Output::Timeout(_)) {
                eprintln!("  ← {output:?}");
            }
            match output {
                Output::Timeout(at) => {
                    self.wake = at;
                    self.check_bounds();
                    return;
                }
                Output::Request(request) => {
                    let limit = self.config.max_in_flight.max(1);
                    assert!(
                        self.bridge.in_flight() <= limit,
                        "{} requests in flight, limit {limit}",
                        self.bridge.in_flight()
                    );
                    assert!(
                        self.request_ids.insert(request.id),
                        "request id {} reused",
                        request.id
                    );
                    self.check_request(&request);
                    self.outstanding.push(request);
                }
                Output::Reply(id, reply) => {
                    assert!(
                        self.open_inbound.remove(&id),
                        "reply to {id:?}, which is not waiting for one"
                    );
                    assert!(
                        matches!(reply.status, 200 | 400 | 403 | 404 | 409 | 502 | 503),
                        "unexpected reply status {}",
                        reply.status
                    );
                    if let Err(e) = serde_json::from_slice::<Value>(&reply.body) {
                        panic!(
                            "reply body is not JSON ({e}): {:?}",
                            String::from_utf8_lossy(&reply.body)
                        );
                    }
                }
                Output::OpenStream(request) => {
                    assert_eq!(
                        self.streams.current, None,
                        "a new stream was opened while the last one was neither closed nor reported closed"
                    );
                    assert!(
                        self.request_ids.insert(request.id),
                        "stream id {} reused",
                        request.id
                    );
                    assert_eq!(request.target, Target::Marathon);
                    assert_eq!(request.method, Method::Get);
                    self.streams.current = Some(request.id);
                }
                Output::CloseStream(id) => {
                    assert_eq!(
                        self.streams.current,
                        Some(id),
                        "closing a stream that is not the current one"
                    );
                    self.streams.current = None;
                    self.streams.stale.push(id);
                }
                Output::Log(record) => {
                    assert!(!record.message.is_empty(), "an empty log line");
                }
            }
        }
        panic!("no Output::Timeout after {DRAIN_BOUND} outputs");
    }

    fn check_bounds(&self) {
        assert!(
            self.bridge.in_flight() <= self.outstanding.len(),
            "{} requests in flight but the driver holds only {}",
            self.bridge.in_flight(),
            self.outstanding.len()
        );
        let pending = self.bridge.in_flight() + self.bridge.queued();
        assert!(
            pending <= PENDING_BOUND,
            "{pending} requests pending: a leak or an amplification loop"
        );
    }

    /// The ownership and well-formedness rules every request must follow.
    fn check_request(&self, request: &Request) {
        let path = request.path_and_query.as_str();
        assert!(path.starts_with('/'), "path without a leading /: {path}");
        assert!(
            request.timeout == self.config.request_timeout
                || request.timeout == self.config.fallback_timeout,
            "request timeout {:?} is neither configured timeout",
            request.timeout
        );
        if let Target::Agent(host) = &request.target {
            assert_eq!(
                host,
                &host.to_ascii_lowercase(),
                "agent targets are lower-cased ({})",
                describe(request)
            );
            assert!(
                self.members.contains(host),
                "{} goes to a host no catalog answer named (members: {:?})",
                describe(request),
                self.members
            );
        }
        let (path_only, _) = path.split_once('?').unwrap_or((path, ""));
        assert!(
            path_only
                .split('/')
                .all(|segment| segment != "." && segment != ".."),
            "a dot segment in {}",
            describe(request)
        );
        assert!(
            path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains('#'),
            "a control character, space or fragment in {}",
            describe(request)
        );
        if let Some(id) = path.strip_prefix("/v1/agent/service/deregister/") {
            assert_eq!(request.method, Method::Put, "{}", describe(request));
            assert!(
                self.listed_ours.contains(id) || self.event_tasks.contains(id),
                "deregistered {id}, which no agent listed with {} and no event named \
                 (listed with our tag: {:?}; events: {:?})",
                self.our_tag,
                self.listed_ours,
                self.event_tasks
            );
        }
        if request.method == Method::Delete {
            assert!(
                path.starts_with("/v1/kv/consular/"),
                "DELETE outside consular/: {path}"
            );
        }
        if path.starts_with("/v1/kv/") && request.method != Method::Get {
            assert!(
                path.starts_with("/v1/kv/consular/"),
                "KV write outside consular/: {}",
                describe(request)
            );
        }
        if path == "/v1/txn" {
            let body = request.body.as_deref().unwrap_or_default();
            let ops: Vec<Value> = serde_json::from_slice(body).expect("a txn body is a JSON array");
            assert!(
                !ops.is_empty() && ops.len() <= 64,
                "{} ops in one txn",
                ops.len()
            );
            for op in ops {
                let key = op["KV"]["Key"].as_str().unwrap_or_default();
                assert!(
                    key.starts_with("consular/"),
                    "txn touches {key:?} outside consular/"
                );
                let verb = op["KV"]["Verb"].as_str().unwrap_or_default();
                assert!(
                    verb == "cas" || verb == "delete-cas",
                    "txn verb {verb:?} is not index-checked"
                );
                if verb == "cas" {
                    // Label values are JSON strings, so templates can read them with parseJSON.
                    let value = op["KV"]["Value"].as_str().and_then(base64_decode);
                    let value = value.expect("a cas op carries a base64 value");
                    let label = serde_json::from_slice::<Value>(&value);
                    assert!(
                        label.is_ok_and(|v| v.is_string()),
                        "label value {:?} of {key} is not a JSON string",
                        String::from_utf8_lossy(&value)
                    );
                }
            }
        }
        if path == REGISTER_PATH {
            assert_eq!(request.method, Method::Put, "{}", describe(request));
            let body = request.body.as_deref().unwrap_or_default();
            let registration: Value =
                serde_json::from_slice(body).expect("a registration body is JSON");
            let tags = registration["Tags"].as_array().cloned().unwrap_or_default();
            assert!(
                tags.first().and_then(Value::as_str) == Some(self.our_tag.as_str()),
                "a registration without our tag first: {registration}"
            );
            let id = registration["ID"].as_str().unwrap_or_default();
            assert!(
                !id.is_empty(),
                "a registration without an id: {registration}"
            );
        }
        if request.target == Target::Marathon && request.method != Method::Get {
            assert!(
                request.method == Method::Post
                    && path.starts_with("/v2/eventSubscriptions?callbackUrl="),
                "Marathon is only read, except to subscribe our callback: {}",
                describe(request)
            );
        }
    }
}

fn nth<T>(set: &BTreeSet<T>, pick: usize) -> Option<&T> {
    if set.is_empty() {
        return None;
    }
    set.iter().nth(pick % set.len())
}

fn describe(request: &Request) -> String {
    format!(
        "{} {} {} {}",
        request.id, request.method, request.target, request.path_and_query
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use consular_core::marathon::TaskState;

    #[test]
    fn the_state_pool_holds_every_mesos_state() {
        assert!(TaskState::ALL.iter().all(|s| STATES.contains(&s.name())));
    }

    #[test]
    fn plausible_agent_listings_parse() {
        let request = Request {
            id: first_request_id(),
            target: Target::Agent("node-1".into()),
            method: Method::Get,
            path_and_query: "/v1/agent/services".into(),
            body: None,
            response_limit: 1 << 20,
            timeout: Duration::from_secs(1),
        };
        for seed in 0..=255u8 {
            let body = plausible_body(
                &request,
                &[seed, seed.wrapping_mul(7), 3, 4, 5, 6, 7, 8],
                "consular",
            );
            parse_agent_services(&body).expect("plausible listings parse");
        }
    }

    /// A real request id (ids are minted by the bridge only).
    fn first_request_id() -> RequestId {
        let mut bridge = Bridge::new(
            Config {
                sync_interval: Duration::from_secs(1),
                ..Config::default()
            },
            Duration::ZERO,
        );
        match bridge.poll_output() {
            Output::Log(_) => {}
            other => panic!("{other:?}"),
        }
        loop {
            if let Output::Request(r) = bridge.poll_output() {
                return r.id;
            }
        }
    }
}
