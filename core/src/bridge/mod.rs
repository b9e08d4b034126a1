//! The bridge state machine: the one owner type, [`Bridge`], fed by `handle_*` and drained by
//! [`Bridge::poll_output`]. This file holds the public API (every input, each a thin delegator),
//! inbound routing, response dispatch and timers; each workflow has its own file:
//!
//! - `events.rs`: the one door for Marathon's events, from callbacks and from the stream alike;
//! - `task.rs`: a task's status update → register (and sync its app's labels) or deregister;
//! - `leadership.rs`: leader election among instances (`--ha`), and what taking and losing the
//!   lead starts and stops;
//! - `sessions.rs`: the Consul sessions `--ha` keeps alive;
//! - `instance.rs`: an instance's status key and its own `consular` service (`--ha`);
//! - `health.rs`: a health event → a read of its app's tasks → an update of each task it names;
//! - `sync.rs`: the full sync: read Marathon and Consul, plan the difference, write it;
//! - `subscription.rs`: the HTTP callback subscription at Marathon;
//! - `stream.rs`: Marathon's event stream, reconnected forever;
//! - `freshness.rs`: the rule between events and syncs (what a sync's older snapshot leaves alone,
//!   which label versions are in place);
//! - `sweep.rs`: `--migrate-marathon-consul`, marathon-consul's services added to a sync's
//!   deregistrations until one sync has listed every agent;
//! - `writes.rs`: registrations, deregistrations and KV transactions, shared by both workflows;
//! - `names.rs`: which app owns each Consul service name, and which apps the bridge knows;
//! - `members.rs`: which task hosts are Consul members, so only they are sent the token;
//! - `requests.rs`: queueing, in-flight limits and deadlines of outbound requests;
//! - `metrics.rs`: the counters, gauges and histograms each workflow's outcomes move.

mod events;
mod freshness;
mod health;
mod instance;
mod leadership;
mod members;
pub mod metrics;
mod names;
mod requests;
mod sessions;
mod stream;
mod subscription;
mod sweep;
mod sync;
mod task;
mod writes;

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::config::{Config, EventSource, EventsEndpoint};
use crate::consul::AclDenial;
use crate::encoding::json_ascii_string;
use crate::encoding::{percent_decode, same_secret};
use crate::error::Error;
use crate::io::{
    InboundId, Level, LogRecord, Method, Output, Reply, ReplyKind, RequestId, Response, Target,
    TransportError,
};
use crate::marathon::ids::Shown;
use events::EventOrigin;
pub use leadership::Role;
use metrics::{Gauges, Metrics};
use requests::{NewRequest, Requests, Sent};

/// What a response is for: the workflow step waiting on it.
#[derive(Debug)]
enum Awaiting {
    Subscription(subscription::SubscriptionStep),
    Members,
    Task(task::ChainId),
    TaskKv(task::ChainId, usize),
    Sync(sync::RoundId, sync::SyncWait),
    Health(health::HealthReadId),
    Session(sessions::SessionPurpose, sessions::SessionWait),
    Lock(leadership::LockWait),
    Instance(instance::InstanceWait),
}

/// A response together with the request it answers, reduced to what workflows branch on.
struct Answer {
    sent: Sent,
    result: Result<Response, TransportError>,
}

impl Answer {
    /// The body of a 2xx response.
    fn body(&self) -> Option<&[u8]> {
        match &self.result {
            Ok(r) if (200..300).contains(&r.status) => Some(&r.body),
            _ => None,
        }
    }

    /// The 2xx body parsed with `parse`; `Ok(None)` for a 404; otherwise what went wrong: the
    /// status, the transport error, or why the body does not parse.
    fn parsed<T, E: core::fmt::Display>(
        &self,
        parse: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Option<T>, String> {
        match (self.body(), self.status()) {
            (Some(body), _) => parse(body)
                .map(Some)
                .map_err(|e| alloc::format!("{}: {e}", self.sent.describe())),
            (None, Some(404)) => Ok(None),
            (None, _) => Err(self.failure()),
        }
    }

    /// As [`Answer::parsed`], where a 404 is a failure too.
    fn required<T, E: core::fmt::Display>(
        &self,
        parse: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, String> {
        self.parsed(parse)?.ok_or_else(|| self.failure())
    }

    fn status(&self) -> Option<u16> {
        self.result.as_ref().ok().map(|r| r.status)
    }

    /// Whether Consul refused the request for lack of a permission, and which one.
    fn acl_denial(&self) -> Option<AclDenial<'_>> {
        let response = self.result.as_ref().ok()?;
        self.sent
            .acl_rule
            .as_ref()?
            .denial(response.status, &response.body)
    }

    /// What went wrong, for logs: the request, then the status and the start of the body
    /// (escaped and cut short: a peer's body is untrusted), or the transport error; for a
    /// refusal of the token, the permission it lacks.
    fn failure(&self) -> String {
        match &self.result {
            Ok(r) => {
                let body = String::from_utf8_lossy(&r.body);
                let mut failure = alloc::format!(
                    "{}: HTTP {}: {}",
                    self.sent.describe(),
                    r.status,
                    Shown(body.trim())
                );
                if let Some(denial) = self.acl_denial() {
                    failure.push_str(&alloc::format!(" ({denial})"));
                }
                failure
            }
            Err(e) => alloc::format!(
                "{}: {}",
                self.sent.describe(),
                Shown(&alloc::format!("{e}"))
            ),
        }
    }

    /// What went wrong, for an error reply: the request and the status or transport error, never
    /// the peer's body (the reply goes to whoever posted the event).
    fn summary(&self) -> String {
        match &self.result {
            Ok(r) if (200..300).contains(&r.status) => {
                alloc::format!("{}: unreadable answer", self.sent.describe())
            }
            Ok(r) => alloc::format!("{}: HTTP {}", self.sent.describe(), r.status),
            Err(e) => alloc::format!(
                "{}: {}",
                self.sent.describe(),
                Shown(&alloc::format!("{e}"))
            ),
        }
    }
}

/// A Marathon→Consul bridge with no IO. Feed it with `handle_*`, drain it with
/// [`Bridge::poll_output`].
#[derive(Debug)]
pub struct Bridge {
    config: Config,
    /// How tasks become services: derived from `config` once, used by every update and sync.
    service_rules: crate::plan::ServiceRules,
    now: Duration,
    out: VecDeque<Output>,
    metrics: Metrics,
    requests: Requests,
    open_inbound: BTreeSet<InboundId>,
    tasks: task::Tasks,
    freshness: freshness::Freshness,
    health: health::HealthReads,
    leadership: leadership::Leadership,
    instance: instance::Instance,
    members: members::Members,
    names: names::AppNames,
    sync: sync::Syncs,
    /// marathon-consul's leftovers, swept by syncs until one lists every agent.
    sweep: sweep::Sweep,
    subscription: subscription::Subscription,
    stream: stream::EventStream,
}

impl Bridge {
    /// A bridge that starts at `now`: it opens the event stream or subscribes the callback (as
    /// [`Config::events`] says) and, with a sync interval, starts the first sync.
    pub fn new(config: Config, now: Duration) -> Self {
        let requests = Requests::new(config.max_in_flight, config.max_in_flight_per_target);
        let mut bridge = Bridge {
            service_rules: config.service_rules(),
            now,
            out: VecDeque::new(),
            metrics: Metrics::new(Gauges {
                in_flight: 0,
                queued: 0,
                stream: metrics::StreamStatus::Off,
                role: Role::Leader,
                syncing: false,
            }),
            requests,
            open_inbound: BTreeSet::new(),
            tasks: task::Tasks::default(),
            freshness: freshness::Freshness::default(),
            health: health::HealthReads::default(),
            leadership: leadership::Leadership::new(config.ha.clone(), now),
            instance: instance::Instance::new(
                now,
                config.ha.as_ref().is_some_and(|ha| ha.advertise.is_some()),
            ),
            members: members::Members::default(),
            names: names::AppNames::default(),
            sync: sync::Syncs::new(
                now,
                config.sync_interval,
                config.events != EventSource::Callback,
            ),
            sweep: sweep::Sweep::new(config.marathon_consul),
            subscription: subscription::Subscription::new(
                (config.events == EventSource::Callback).then_some(now),
            ),
            stream: stream::EventStream::new(
                config.events,
                now,
                config.max_event_bytes,
                config.seed,
            ),
            config,
        };
        bridge.fire_timers();
        bridge.release_requests();
        bridge
    }

    /// An inbound HTTP request (any method) for `path_and_query` with `body` arrived. `/`
    /// answers `[]`; `/health` `200` while the loop runs; `/metrics` the bridge's metrics (a
    /// [`ReplyKind::Metrics`] reply); `/ready` `200` once a complete sync is
    /// done and the event source is up, else `503` with the reason; `/events` takes a Marathon event while it is served (see
    /// [`Config::events_endpoint`]) and carries [`Config::events_secret`]; anything else is a 404.
    /// The answer comes as one [`Output::Reply`] for `id`, possibly after requests it needs.
    pub fn handle_inbound(
        &mut self,
        now: Duration,
        id: InboundId,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), Error> {
        self.advance_clock(now);
        if !self.open_inbound.insert(id) {
            return Err(Error::DuplicateInbound(id.0));
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        match path {
            "/" => self.reply(id, 200, String::from("[]")),
            // The loop is alive: it answers.
            "/health" => self.reply(id, 200, String::from("{\"status\": \"ok\"}")),
            "/ready" => match self.not_ready() {
                None => self.reply(id, 200, String::from("{\"ready\": true}")),
                Some(reason) => {
                    let body = alloc::format!(
                        "{{\"ready\": false, \"reason\": {}}}",
                        json_ascii_string(reason)
                    );
                    self.reply(id, 503, body)
                }
            },
            // Counted by the core, written out by the driver (see `ReplyKind::Metrics`).
            "/metrics" => {
                if self.open_inbound.remove(&id) {
                    let reply = Reply {
                        status: 200,
                        body: Vec::new(),
                        kind: ReplyKind::Metrics,
                    };
                    self.out.push_back(Output::Reply(id, reply));
                }
            }
            "/events" => self.handle_events_request(id, query, body),
            _ => self.reply_error(id, 404, "Not found"),
        }
        self.release_requests();
        Ok(())
    }

    /// The outcome of a request from [`Output::Request`]. Answers for unknown or abandoned ids
    /// are counted in [`Metrics::late_responses`] and otherwise ignored.
    pub fn handle_response(
        &mut self,
        now: Duration,
        id: RequestId,
        result: Result<Response, TransportError>,
    ) {
        self.advance_clock(now);
        self.dispatch(id, result);
        self.release_requests();
    }

    /// The response head of the stream request `id` (from [`Output::OpenStream`]) arrived.
    pub fn handle_stream_open(&mut self, now: Duration, id: RequestId, status: u16) {
        self.advance_clock(now);
        self.on_stream_open(id, status);
        self.release_requests();
    }

    /// A chunk of the stream `id`'s body arrived.
    pub fn handle_stream_data(&mut self, now: Duration, id: RequestId, data: &[u8]) {
        self.advance_clock(now);
        self.on_stream_data(id, data);
        self.release_requests();
    }

    /// The stream `id` ended, cleanly (`None`) or not.
    pub fn handle_stream_closed(
        &mut self,
        now: Duration,
        id: RequestId,
        error: Option<TransportError>,
    ) {
        self.advance_clock(now);
        self.on_stream_closed(id, error);
        self.release_requests();
    }

    /// Time has reached `now`: start due syncs and retries, give up on overdue requests. Early or
    /// repeated calls are harmless.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.advance_clock(now);
        for id in self.requests.expired(self.now) {
            self.dispatch(id, Err(TransportError::Timeout));
        }
        self.fire_timers();
        self.release_requests();
    }

    /// The Consul side alone: sync Consul to `desired` instead of Marathon's snapshot, now or right
    /// after the sync running. For [`crate::ConsulEngine`].
    pub(crate) fn handle_desired(&mut self, now: Duration, desired: crate::plan::DesiredState) {
        self.advance_clock(now);
        self.sync_to(desired);
        self.release_requests();
    }

    /// The next thing to do. Call until it returns [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.out.pop_front() {
            return output;
        }
        // A standby's stream, subscription and syncs wait for it to lead.
        let acting = self.acts().then(|| {
            [
                self.sync.next_at(),
                self.subscription.next_at(),
                self.stream.next_at(),
            ]
        });
        let instance = self.config.ha.as_ref().and(self.instance.next_at());
        let timers = [
            self.requests.next_deadline(),
            self.leadership.next_at(self.config.request_timeout),
            instance,
        ];
        Output::Timeout(
            timers
                .into_iter()
                .chain(acting.into_iter().flatten())
                .flatten()
                .min(),
        )
    }

    /// Shutting down (SIGTERM): under `--ha` a leader releases the lock key, so a standby leads
    /// at once, and the session is destroyed; afterwards nothing is acted on. Keep driving until
    /// [`Bridge::in_flight`] is 0 (or a deadline), so those requests go out.
    pub fn handle_shutdown(&mut self, now: Duration) {
        self.advance_clock(now);
        self.resign();
        self.retire_instance();
        self.release_requests();
    }

    /// True once there is nothing more to do: under [`crate::WriteMode::DryRun`], after the first
    /// sync (its planned writes logged). A driver stops then.
    pub fn is_done(&self) -> bool {
        self.config.writes == crate::config::WriteMode::DryRun && self.sync.last().is_some()
    }

    /// Whether this instance acts now: the leader under `--ha`, always without it.
    pub fn role(&self) -> Role {
        self.leadership.role()
    }

    /// Requests handed out and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.requests.in_flight()
    }

    /// Requests waiting for an in-flight slot.
    pub fn queued(&self) -> usize {
        self.requests.queued()
    }

    /// True while a sync is running.
    pub fn is_syncing(&self) -> bool {
        self.sync.is_running()
    }

    /// Counters and histograms since start, and the gauges as they stood after the last input.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configuration this bridge runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn advance_clock(&mut self, now: Duration) {
        // Time that goes backwards is clamped, not an error: drivers may read clocks carelessly.
        self.now = self.now.max(now);
    }

    fn fire_timers(&mut self) {
        self.on_leadership_timer();
        self.on_instance_timer();
        if !self.acts() {
            return;
        }
        if self.subscription.is_due(self.now) {
            self.start_subscription();
        }
        self.on_stream_timer();
        if self.sync.is_due(self.now) {
            self.start_sync();
        }
        self.on_sync_progress_timer();
    }

    /// Why this instance is not ready for `/ready`, if it is not: a standby, no complete sync yet,
    /// or its event source not up (the stream not connected, or down longer than its heartbeat
    /// timeout; the callback not registered at Marathon).
    fn not_ready(&self) -> Option<&'static str> {
        if !self.acts() {
            return Some("standby: another instance leads");
        }
        if self.metrics.syncs_completed() == 0 {
            return Some("no complete sync yet");
        }
        if !self.stream.is_off() {
            return self
                .stream
                .not_up(self.now, self.config.stream_idle_timeout);
        }
        let callbacks_pending = self.config.callback_url.is_some()
            && self.subscription.state() == subscription::CallbackState::Pending;
        callbacks_pending.then_some("the event callback is not registered at Marathon yet")
    }

    /// `/events`: refused unless served now and the secret matches, else the event is handled.
    fn handle_events_request(&mut self, id: InboundId, query: &str, body: &[u8]) {
        let served = self.config.events_endpoint == EventsEndpoint::Always || self.stream.is_off();
        if !served {
            let message = "/events is not served: events come from Marathon's event stream \
                           (start consular with --accept-callbacks to take callbacks too)";
            return self.reply_error(id, 404, message);
        }
        if let Some(secret) = &self.config.events_secret {
            let given = query_param(query, "secret").unwrap_or_default();
            if !same_secret(&given, secret.as_bytes()) {
                self.log(
                    Level::Warn,
                    String::from("refused an /events request without the events secret"),
                );
                return self.reply_error(id, 403, "missing or wrong events secret");
            }
        }
        if self.config.writes == crate::config::WriteMode::DryRun {
            return self.reply_error(id, 503, "a dry run takes no events");
        }
        if !self.acts() {
            // Another instance leads and takes Marathon's events; this one writes nothing.
            return self.reply(id, 200, String::from("{\"status\": \"standby\"}"));
        }
        self.take_event(EventOrigin::Callback(id), body);
    }

    fn dispatch(&mut self, id: RequestId, result: Result<Response, TransportError>) {
        let Some((sent, awaiting)) = self.requests.finish(id) else {
            self.metrics.late_response();
            return;
        };
        let status = result.as_ref().map(|r| r.status);
        let latency = self.now.saturating_sub(sent.released_at);
        self.metrics
            .request_done(&sent.target, sent.method, status, latency);
        let answer = Answer { sent, result };
        if self.config.debug {
            let outcome = match &answer.result {
                Ok(r) => alloc::format!("HTTP {}", r.status),
                Err(e) => alloc::format!("{e}"),
            };
            self.debug(alloc::format!(
                "{id} {} → {outcome}",
                answer.sent.describe()
            ));
        }
        match awaiting {
            Awaiting::Subscription(step) => self.on_subscription_answer(step, answer),
            Awaiting::Members => self.on_members_answer(answer),
            Awaiting::Task(chain) => self.on_task_answer(chain, 0, answer),
            Awaiting::TaskKv(chain, ops) => self.on_task_answer(chain, ops, answer),
            Awaiting::Sync(round, wait) => self.on_sync_answer(round, wait, answer),
            Awaiting::Health(read) => self.on_health_answer(read, answer),
            Awaiting::Session(purpose, wait) => {
                let change = self.on_session_answer(purpose, wait, answer);
                match purpose {
                    sessions::SessionPurpose::Lock => self.on_lock_session_change(change),
                    sessions::SessionPurpose::Status => self.on_status_session_change(change),
                }
            }
            Awaiting::Lock(wait) => self.on_lock_answer(wait, answer),
            Awaiting::Instance(wait) => self.on_instance_answer(wait, answer),
        }
    }

    /// Queues a request on behalf of a workflow step.
    fn send(
        &mut self,
        awaiting: Awaiting,
        target: Target,
        method: Method,
        path_and_query: String,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) {
        // Reads can be large (Marathon's app list); the answer to a write is a few hundred bytes.
        let response_limit = match method {
            Method::Get => self.config.max_listing_bytes,
            Method::Put | Method::Post | Method::Delete => Config::WRITE_RESPONSE_LIMIT,
        };
        let new = NewRequest {
            target,
            method,
            path_and_query,
            body,
            response_limit,
            timeout,
        };
        self.requests.submit(awaiting, new);
    }

    /// Hands out what the in-flight limits allow. Every input ends here, so this is also where
    /// the gauges are brought up to date.
    fn release_requests(&mut self) {
        self.requests.release(self.now, &mut self.out);
        self.metrics.set_gauges(Gauges {
            in_flight: self.requests.in_flight(),
            queued: self.requests.queued(),
            stream: self.stream.status(),
            role: self.role(),
            syncing: self.sync.is_running(),
        });
    }

    fn reply(&mut self, id: InboundId, status: u16, body: String) {
        if self.open_inbound.remove(&id) {
            self.out
                .push_back(Output::Reply(id, Reply::json(status, body.into_bytes())));
        }
    }

    /// `{"error": "..."}`, spaced like consular 1.3.0's Python `json.dumps`.
    fn reply_error(&mut self, id: InboundId, status: u16, message: &str) {
        self.reply(
            id,
            status,
            alloc::format!("{{\"error\": {}}}", json_ascii_string(message)),
        );
    }

    fn log(&mut self, level: Level, message: String) {
        self.out
            .push_back(Output::Log(LogRecord { level, message }));
    }

    fn debug(&mut self, message: String) {
        if self.config.debug {
            self.log(Level::Debug, message);
        }
    }
}

/// The percent-decoded value of the first `name=` parameter of `query`.
fn query_param(query: &str, name: &str) -> Option<alloc::vec::Vec<u8>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}
