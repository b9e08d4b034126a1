//! A deterministic world: one [`Bridge`] wired to a [`SimMarathon`] and a [`SimConsul`] through a
//! virtual network with seeded latency and agent outages. [`SimWorld::step`] is a tiny
//! discrete-event simulator (take the earliest of the next delivery and the bridge's wake-up,
//! feed that one input, drain). Every request the bridge sends is checked against the ownership
//! rules on the way, so tests and fuzzers can assert that nothing foreign was ever touched.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use consular_core::consul::KV_ROOT;
use consular_core::io::{
    InboundId, LogRecord, Method, Output, Reply, Request, RequestId, Response, Target,
    TransportError,
};
use consular_core::{Bridge, Config, EventSource};

use crate::consul::SimConsul;
use crate::marathon::{sse_frame, SimMarathon};

/// Steps after which [`SimWorld::settle`] declares a livelock.
const STEP_BOUND: usize = 1_000_000;

#[derive(Debug)]
enum Delivery {
    Response(RequestId, Result<Response, TransportError>),
    Inbound(InboundId, Vec<u8>),
    StreamOpen(RequestId, u16),
    StreamData(RequestId, Vec<u8>),
}

/// The bridge, Marathon, Consul and the network between them.
#[derive(Debug)]
pub struct SimWorld {
    /// The bridge under test.
    pub bridge: Bridge,
    /// Marathon.
    pub marathon: SimMarathon,
    /// Consul (server and agents). Its clock ([`SimConsul::set_time`]) follows the world's on
    /// every step, so session TTLs and lock delays run on virtual time.
    pub consul: SimConsul,
    now: Duration,
    rng: u64,
    /// Deliveries by (time, sequence), so equal times keep their order.
    deliveries: BTreeMap<(Duration, u64), Delivery>,
    sequence: u64,
    next_inbound: u64,
    unanswered: BTreeSet<InboundId>,
    stream: Option<RequestId>,
    marathon_up: bool,
    /// Replies the bridge gave, by inbound id.
    pub replies: BTreeMap<InboundId, Reply>,
    /// Everything the bridge logged.
    pub logs: Vec<LogRecord>,
    /// Requests that broke an ownership rule (must stay empty).
    pub violations: Vec<String>,
    /// The most requests ever in flight at once.
    pub max_in_flight: usize,
}

impl SimWorld {
    /// A world at time zero: Consul with a server on `10.0.0.1` and client agents on `10.0.0.2` …
    /// (`agents` in all), Marathon of the given model, and a bridge with `config`.
    pub fn new(config: Config, marathon: SimMarathon, agents: usize, seed: u64) -> Self {
        let mut consul = SimConsul::new();
        for i in 1..=agents.max(1) {
            consul.add_agent(&alloc::format!("node-{i}"), &agent_address(i));
        }
        let bridge = Bridge::new(config, Duration::ZERO);
        let mut world = SimWorld {
            bridge,
            marathon,
            consul,
            now: Duration::ZERO,
            rng: seed,
            deliveries: BTreeMap::new(),
            sequence: 0,
            next_inbound: 0,
            unanswered: BTreeSet::new(),
            stream: None,
            marathon_up: true,
            replies: BTreeMap::new(),
            logs: Vec::new(),
            violations: Vec::new(),
            max_in_flight: 0,
        };
        world.drain();
        world
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Takes an agent (by its address) off the network, or brings it back.
    pub fn set_agent_up(&mut self, address: &str, up: bool) {
        self.consul.set_agent_up(address, up);
    }

    /// Makes Marathon unreachable (the stream drops too), or reachable again.
    pub fn set_marathon_up(&mut self, up: bool) {
        self.marathon_up = up;
        if !up {
            if let Some(id) = self.stream.take() {
                self.bridge.handle_stream_closed(
                    self.now,
                    id,
                    Some(TransportError::Io("connection reset".into())),
                );
                self.drain();
            }
        }
    }

    /// Inbound requests still waiting for their reply.
    pub fn unanswered(&self) -> usize {
        self.unanswered.len()
    }

    /// Delivers the events Marathon emitted since the last call, by callback or stream as the
    /// bridge is configured, after a network delay.
    pub fn deliver_marathon_events(&mut self) {
        let events = self.marathon.take_events();
        let by_stream = self.bridge.config().events != EventSource::Callback;
        for event in events {
            if !self.marathon_up {
                continue;
            }
            if by_stream {
                if let Some(id) = self.stream {
                    let at = self.latency();
                    self.schedule(at, Delivery::StreamData(id, sse_frame(&event)));
                }
            } else if self.bridge.config().callback_url.is_some() {
                self.next_inbound += 1;
                let id = InboundId(self.next_inbound);
                let at = self.latency();
                self.schedule(at, Delivery::Inbound(id, event.json));
            }
        }
    }

    /// Advances to the next delivery or bridge wake-up, whichever is first, but not past `limit`.
    /// Returns false if nothing is due by then (time then stands at `limit`).
    pub fn step(&mut self, limit: Duration) -> bool {
        let next_delivery = self.deliveries.keys().next().map(|&(at, _)| at);
        let wake = self.bridge_wake();
        let Some(at) = [next_delivery, wake]
            .into_iter()
            .flatten()
            .min()
            .filter(|&at| at <= limit)
        else {
            self.now = self.now.max(limit);
            self.consul.set_time(self.now);
            return false;
        };
        self.now = self.now.max(at);
        self.consul.set_time(self.now);
        if next_delivery == Some(at) {
            let (_, delivery) = self.deliveries.pop_first().expect("a delivery is due");
            self.deliver(delivery);
        } else {
            self.bridge.handle_timeout(self.now);
        }
        self.drain();
        true
    }

    /// Runs for `duration` of virtual time, delivering Marathon's events as they happen.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..STEP_BOUND {
            self.deliver_marathon_events();
            if !self.step(end) {
                return;
            }
        }
        panic!("no progress after {STEP_BOUND} steps: livelock");
    }

    /// Runs until nothing is in flight and no delivery is pending (timers may remain).
    pub fn settle(&mut self) {
        for _ in 0..STEP_BOUND {
            self.deliver_marathon_events();
            if self.deliveries.is_empty()
                && self.bridge.in_flight() == 0
                && self.bridge.queued() == 0
            {
                return;
            }
            self.step(Duration::MAX);
        }
        panic!("no quiescence after {STEP_BOUND} steps: livelock");
    }

    fn bridge_wake(&mut self) -> Option<Duration> {
        match self.bridge.poll_output() {
            Output::Timeout(at) => at,
            other => unreachable!("outputs are drained after every input, found {other:?}"),
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Response(id, result) => self.bridge.handle_response(self.now, id, result),
            Delivery::Inbound(id, body) => {
                self.unanswered.insert(id);
                if let Err(e) = self.bridge.handle_inbound(self.now, id, "/events", &body) {
                    self.violations
                        .push(alloc::format!("inbound {id:?} refused: {e}"));
                }
            }
            Delivery::StreamOpen(id, status) => {
                self.bridge.handle_stream_open(self.now, id, status)
            }
            Delivery::StreamData(id, data) => {
                if self.stream == Some(id) {
                    self.bridge.handle_stream_data(self.now, id, &data);
                }
            }
        }
    }

    /// Drains the bridge: routes requests, records replies and logs.
    fn drain(&mut self) {
        for _ in 0..STEP_BOUND {
            let output = self.bridge.poll_output();
            self.max_in_flight = self.max_in_flight.max(self.bridge.in_flight());
            match output {
                Output::Timeout(_) => return,
                Output::Request(request) => {
                    let result = self.serve(&request);
                    let at = self.latency();
                    self.schedule(at, Delivery::Response(request.id, result));
                }
                Output::Reply(id, reply) => {
                    if !self.unanswered.remove(&id) {
                        self.violations
                            .push(alloc::format!("second reply to {id:?}"));
                    }
                    self.replies.insert(id, reply);
                }
                Output::OpenStream(request) => {
                    let status = if self.marathon_up { 200 } else { 503 };
                    if self.marathon_up {
                        self.stream = Some(request.id);
                    }
                    let at = self.latency();
                    self.schedule(at, Delivery::StreamOpen(request.id, status));
                }
                Output::CloseStream(id) => {
                    if self.stream == Some(id) {
                        self.stream = None;
                    }
                }
                Output::Log(record) => self.logs.push(record),
            }
        }
        panic!("the bridge produced outputs without end");
    }

    /// The response the peer gives, checking the request against the ownership rules first.
    fn serve(&mut self, request: &Request) -> Result<Response, TransportError> {
        let agent = match consul_agent_of(&request.target) {
            None if !self.marathon_up => {
                return Err(TransportError::Connect("marathon is down".into()))
            }
            None => return Ok(serve_marathon(&mut self.marathon, request)),
            Some(agent) => agent,
        };
        if !self.consul.is_up(&agent) {
            return Err(TransportError::Connect(alloc::format!(
                "no agent answers on {agent}"
            )));
        }
        self.check_ownership(&agent, request);
        Ok(serve_consul(&mut self.consul, &agent, request))
    }

    /// Records a violation for a deregistration of a service without our tag, or a KV delete
    /// outside `consular/`.
    fn check_ownership(&mut self, agent: &str, request: &Request) {
        let registration_id = self.bridge.config().registration_id.clone();
        let our_tag = alloc::format!("consular-reg-id={registration_id}");
        if let Some(id) = request
            .path_and_query
            .strip_prefix("/v1/agent/service/deregister/")
        {
            let foreign = self.consul.services(agent).any(|s| {
                consular_core::encoding::encode_segment(&s.id) == id && !s.tags.contains(&our_tag)
            });
            if foreign {
                self.violations.push(alloc::format!(
                    "deregistered foreign service {id} on {agent}"
                ));
            }
        }
        if request.method == Method::Delete
            && !request.path_and_query.starts_with("/v1/kv/consular/")
        {
            self.violations.push(alloc::format!(
                "KV delete outside consular/: {}",
                request.path_and_query
            ));
        }
        if request.path_and_query == "/v1/txn" {
            let ops: Vec<serde_json::Value> = request
                .body
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            for op in ops {
                let key = op["KV"]["Key"].as_str().unwrap_or_default();
                if !key.starts_with(KV_ROOT) {
                    self.violations.push(alloc::format!(
                        "KV transaction touches {key} outside consular/"
                    ));
                }
            }
        }
    }

    fn schedule(&mut self, at: Duration, delivery: Delivery) {
        self.sequence += 1;
        self.deliveries.insert((at, self.sequence), delivery);
    }

    /// Now plus 1–5 ms of seeded network delay.
    fn latency(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.now + Duration::from_micros(1_000 + self.rng % 4_000)
    }
}

/// The address of agent `i` (1 is the server, the main Consul endpoint).
pub fn agent_address(i: usize) -> String {
    alloc::format!("10.0.0.{i}")
}

/// A short transcript of what the world saw, for replay comparisons.
pub fn transcript(world: &SimWorld) -> String {
    let mut out = String::new();
    for record in &world.logs {
        out.push_str(&record.message);
        out.push('\n');
    }
    out.push_str(&world.now.as_micros().to_string());
    out
}

/// The Consul agent a request goes to (the main endpoint is the first agent); `None` for
/// Marathon.
pub(crate) fn consul_agent_of(target: &Target) -> Option<String> {
    match target {
        Target::Marathon => None,
        Target::Consul => Some(agent_address(1)),
        Target::Agent(host) => Some(host.clone()),
    }
}

/// Marathon's answer to `request`.
pub(crate) fn serve_marathon(marathon: &mut SimMarathon, request: &Request) -> Response {
    let body = request.body.as_deref().unwrap_or_default();
    let r = marathon.handle(request.method, &request.path_and_query, body);
    Response {
        status: r.status,
        body: r.body,
    }
}

/// The answer of Consul's agent at `agent` to `request`.
pub(crate) fn serve_consul(consul: &mut SimConsul, agent: &str, request: &Request) -> Response {
    let body = request.body.as_deref().unwrap_or_default();
    let r = consul.handle(agent, request.method, &request.path_and_query, body);
    Response {
        status: r.status,
        body: r.body,
    }
}
