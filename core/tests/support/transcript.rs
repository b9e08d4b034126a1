//! A transcript harness: drive one `Bridge` by hand, one input at a time, and assert on exactly
//! which requests, replies and logs come out. For whole-world simulation see `consular_sim::SimWorld`.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use consular_core::{
    Bridge, Config, InboundId, LogRecord, Method, Output, Reply, Request, Response, Target,
    TransportError,
};

pub struct Transcript {
    pub bridge: Bridge,
    pub now: Duration,
    requests: VecDeque<Request>,
    replies: VecDeque<(InboundId, Reply)>,
    pub logs: Vec<LogRecord>,
    /// `OpenStream` and `CloseStream` outputs, in order.
    pub streams: VecDeque<Output>,
    pub wake_at: Option<Duration>,
    next_inbound: u64,
}

impl Transcript {
    pub fn new(config: Config) -> Self {
        let bridge = Bridge::new(config, Duration::ZERO);
        let mut t = Transcript {
            bridge,
            now: Duration::ZERO,
            requests: VecDeque::new(),
            replies: VecDeque::new(),
            logs: Vec::new(),
            streams: VecDeque::new(),
            wake_at: None,
            next_inbound: 0,
        };
        t.drain();
        t
    }

    fn drain(&mut self) {
        for _ in 0..100_000 {
            match self.bridge.poll_output() {
                Output::Request(r) => self.requests.push_back(r),
                Output::Reply(id, r) => self.replies.push_back((id, r)),
                Output::Log(l) => self.logs.push(l),
                o @ (Output::OpenStream(_) | Output::CloseStream(_)) => self.streams.push_back(o),
                Output::Timeout(at) => {
                    self.wake_at = at;
                    return;
                }
            }
        }
        panic!("poll_output never returned Timeout");
    }

    /// POSTs `body` to `path`; returns its inbound id.
    pub fn inbound(&mut self, path: &str, body: &str) -> InboundId {
        self.next_inbound += 1;
        let id = InboundId(self.next_inbound);
        self.bridge
            .handle_inbound(self.now, id, path, body.as_bytes())
            .unwrap();
        self.drain();
        id
    }

    pub fn event(&mut self, body: &str) -> InboundId {
        self.inbound("/events", body)
    }

    /// The next request, which must match.
    pub fn expect(&mut self, method: Method, target: Target, path: &str) -> Request {
        let r = self
            .requests
            .pop_front()
            .unwrap_or_else(|| panic!("expected {method} {target} {path}, got nothing"));
        assert_eq!(
            (r.method, &r.target, r.path_and_query.as_str()),
            (method, &target, path),
            "unexpected request"
        );
        r
    }

    /// Takes the queued request matching, whatever its position.
    pub fn take(&mut self, method: Method, target: Target, path: &str) -> Request {
        let pos = self
            .requests
            .iter()
            .position(|r| r.method == method && r.target == target && r.path_and_query == path)
            .unwrap_or_else(|| panic!("no {method} {target} {path} among {:#?}", self.requests));
        self.requests.remove(pos).unwrap()
    }

    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    pub fn expect_no_request(&mut self) {
        assert!(
            self.requests.is_empty(),
            "unexpected requests: {:#?}",
            self.requests
        );
    }

    pub fn respond(&mut self, request: &Request, status: u16, body: &str) {
        let response = Response {
            status,
            body: body.as_bytes().to_vec(),
        };
        self.bridge
            .handle_response(self.now, request.id, Ok(response));
        self.drain();
    }

    pub fn fail(&mut self, request: &Request, error: TransportError) {
        self.bridge
            .handle_response(self.now, request.id, Err(error));
        self.drain();
    }

    pub fn advance_to(&mut self, now: Duration) {
        self.now = now;
        self.bridge.handle_timeout(now);
        self.drain();
    }

    /// The next stream output must open the event stream; returns its request.
    pub fn expect_stream_open(&mut self) -> Request {
        match self.streams.pop_front() {
            Some(Output::OpenStream(r)) => r,
            other => panic!("expected OpenStream, got {other:?}"),
        }
    }

    pub fn expect_stream_close(&mut self, request: &Request) {
        assert_eq!(
            self.streams.pop_front(),
            Some(Output::CloseStream(request.id))
        );
    }

    pub fn stream_open(&mut self, request: &Request, status: u16) {
        self.bridge.handle_stream_open(self.now, request.id, status);
        self.drain();
    }

    pub fn stream_data(&mut self, request: &Request, data: &str) {
        self.bridge
            .handle_stream_data(self.now, request.id, data.as_bytes());
        self.drain();
    }

    pub fn stream_closed(&mut self, request: &Request, error: Option<TransportError>) {
        self.bridge
            .handle_stream_closed(self.now, request.id, error);
        self.drain();
    }

    pub fn reply(&mut self, id: InboundId) -> (u16, String) {
        let reply = self.full_reply(id);
        (reply.status, String::from_utf8(reply.body).unwrap())
    }

    /// The whole reply for `id`, its kind included.
    pub fn full_reply(&mut self, id: InboundId) -> Reply {
        let pos = self
            .replies
            .iter()
            .position(|(i, _)| *i == id)
            .unwrap_or_else(|| panic!("no reply for {id:?}"));
        self.replies.remove(pos).unwrap().1
    }

    pub fn has_reply(&self, id: InboundId) -> bool {
        self.replies.iter().any(|(i, _)| *i == id)
    }

    /// Answers the catalog read that a task host not known yet triggers: `hosts` are the nodes of
    /// the Consul cluster (each its own name and address).
    pub fn members(&mut self, hosts: &[&str]) {
        let read = self.expect(Method::Get, Target::Consul, "/v1/catalog/nodes");
        let nodes: Vec<serde_json::Value> = hosts
            .iter()
            .map(|h| serde_json::json!({"Node": h, "Address": h}))
            .collect();
        self.respond(&read, 200, &serde_json::Value::from(nodes).to_string());
    }

    /// [`Transcript::members`] if the next request is that catalog read (the first event of a
    /// test asks, later ones find the hosts cached).
    pub fn members_if_asked(&mut self, hosts: &[&str]) {
        let asked = self.requests.front().is_some_and(|r| {
            r.method == Method::Get
                && r.target == Target::Consul
                && r.path_and_query == "/v1/catalog/nodes"
        });
        if asked {
            self.members(hosts);
        }
    }

    /// Answers the listing of `host`'s services that comes before deregistering a task's:
    /// service `id` is there and ours (our registration tag and an app tag), beside a foreign one.
    pub fn ours(&mut self, host: &str, id: &str) {
        let read = self.take(Method::Get, agent(host), "/v1/agent/services");
        let tag = format!("consular-reg-id={}", self.bridge.config().registration_id);
        let body = serde_json::json!({
            id: {"ID": id, "Service": "a", "Tags": [tag, "consular-app-id=/a"]},
            "redis": {"ID": "redis", "Service": "redis", "Tags": []}
        });
        self.respond(&read, 200, &body.to_string());
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.message.contains(needle))
    }
}

pub fn agent(host: &str) -> Target {
    Target::Agent(host.to_string())
}

pub fn body_json(request: &Request) -> serde_json::Value {
    serde_json::from_slice(request.body.as_deref().expect("request has a body")).unwrap()
}

pub fn status_event(state: &str, task: &str, app: &str, host: &str, ports: &str) -> String {
    format!(
        r#"{{"eventType":"status_update_event","taskStatus":"{state}","taskId":"{task}","appId":"{app}","host":"{host}","ports":{ports},"slaveId":"s1","timestamp":"2026-01-01T00:00:00.000Z"}}"#
    )
}
