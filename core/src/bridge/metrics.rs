//! The bridge's metrics: counters, gauges and fixed-bucket histograms, owned by [`Metrics`] and
//! changed only through its methods, by the workflow that knows each outcome. A driver reads them
//! through [`crate::Bridge::metrics`]; rendering them (Prometheus text in the adapters) is not
//! done here.
//!
//! Every label is an enum with a fixed set of values (this file's, [`TaskState`], [`Method`]), so
//! the number of series is fixed when the crate compiles: nothing read from Marathon, Consul or a
//! client (a task id, an app id, a host) ever becomes a label. Durations are whole microseconds on
//! the core's clock and histogram bucket edges are constants: the core needs no floats.

use core::time::Duration;

use super::Role;
use crate::io::{Method, Target, TransportError};
use crate::marathon::TaskState;

/// Which kind of peer a request went to; an agent's host is deliberately not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
    /// Marathon (`--marathon`).
    Marathon,
    /// The main Consul endpoint (`--consul`).
    Consul,
    /// Any task host's Consul agent.
    Agent,
}

impl TargetKind {
    /// Every kind, in label order.
    pub const ALL: [TargetKind; 3] = [TargetKind::Marathon, TargetKind::Consul, TargetKind::Agent];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Marathon => "marathon",
            TargetKind::Consul => "consul",
            TargetKind::Agent => "agent",
        }
    }

    fn of(target: &Target) -> TargetKind {
        match target {
            Target::Marathon => TargetKind::Marathon,
            Target::Consul => TargetKind::Consul,
            Target::Agent(_) => TargetKind::Agent,
        }
    }
}

/// Every request method, in label order.
pub const METHODS: [Method; 4] = [Method::Get, Method::Put, Method::Post, Method::Delete];

/// How a request ended: the class of its status, or no HTTP answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// `2xx`
    Success,
    /// `3xx` (requests follow no redirect)
    Redirection,
    /// `4xx`
    ClientError,
    /// `5xx`
    ServerError,
    /// No usable answer: a transport error or timeout, or a status outside 200–599.
    Error,
}

impl StatusClass {
    /// Every class, in label order.
    pub const ALL: [StatusClass; 5] = [
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Error,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Error => "error",
        }
    }

    fn of(result: Result<u16, &TransportError>) -> StatusClass {
        match result {
            Ok(200..=299) => StatusClass::Success,
            Ok(300..=399) => StatusClass::Redirection,
            Ok(400..=499) => StatusClass::ClientError,
            Ok(500..=599) => StatusClass::ServerError,
            Ok(_) | Err(_) => StatusClass::Error,
        }
    }
}

/// What an event body turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `status_update_event` (counted by task state too).
    StatusUpdate,
    /// `health_status_changed_event` or `instance_health_changed_event`.
    HealthChanged,
    /// `app_terminated_event`.
    AppTerminated,
    /// Any other well-formed event type (acknowledged, not used).
    Other,
    /// A body that does not parse as an event the bridge accepts.
    Invalid,
}

impl EventKind {
    /// Every kind, in label order.
    pub const ALL: [EventKind; 5] = [
        EventKind::StatusUpdate,
        EventKind::HealthChanged,
        EventKind::AppTerminated,
        EventKind::Other,
        EventKind::Invalid,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::StatusUpdate => "status_update",
            EventKind::HealthChanged => "health_changed",
            EventKind::AppTerminated => "app_terminated",
            EventKind::Other => "other",
            EventKind::Invalid => "invalid",
        }
    }
}

/// Whether a write was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    /// Applied (a deregistration or check removal of something already gone included).
    Ok,
    /// Not applied; logged, and the next sync retries.
    Failed,
}

impl WriteResult {
    /// Every result, in label order.
    pub const ALL: [WriteResult; 2] = [WriteResult::Ok, WriteResult::Failed];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            WriteResult::Ok => "ok",
            WriteResult::Failed => "failed",
        }
    }
}

/// A sync's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncResult {
    /// Every read and write succeeded.
    Complete,
    /// It ran through, but a listing or a write failed.
    Incomplete,
    /// It stopped before writing (Marathon could not be read).
    Failed,
}

impl SyncResult {
    /// Every result, in label order.
    pub const ALL: [SyncResult; 3] = [
        SyncResult::Complete,
        SyncResult::Incomplete,
        SyncResult::Failed,
    ];

    /// The label value (and the word in the instance status).
    pub fn name(self) -> &'static str {
        match self {
            SyncResult::Complete => "complete",
            SyncResult::Incomplete => "incomplete",
            SyncResult::Failed => "failed",
        }
    }
}

/// What a sync's write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A service registration (a fallback retry counts again).
    Register,
    /// A service deregistration.
    Deregister,
    /// A check status written or a check removed.
    Check,
    /// One KV operation (a set or a delete; up to 64 go in one transaction).
    Kv,
    /// An external node removed.
    Node,
}

impl WriteKind {
    /// Every kind, in label order.
    pub const ALL: [WriteKind; 5] = [
        WriteKind::Register,
        WriteKind::Deregister,
        WriteKind::Check,
        WriteKind::Kv,
        WriteKind::Node,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            WriteKind::Register => "register",
            WriteKind::Deregister => "deregister",
            WriteKind::Check => "check",
            WriteKind::Kv => "kv",
            WriteKind::Node => "node",
        }
    }
}

/// The event stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Events come through callbacks only.
    Off,
    /// Waiting to (re)connect.
    Waiting,
    /// Asked Marathon, no response head yet.
    Connecting,
    /// Connected: events flow.
    Open,
}

impl StreamStatus {
    /// Every state, in label order.
    pub const ALL: [StreamStatus; 4] = [
        StreamStatus::Off,
        StreamStatus::Waiting,
        StreamStatus::Connecting,
        StreamStatus::Open,
    ];

    /// The label value (and the word in the instance status).
    pub fn name(self) -> &'static str {
        match self {
            StreamStatus::Off => "off",
            StreamStatus::Waiting => "waiting",
            StreamStatus::Connecting => "connecting",
            StreamStatus::Open => "open",
        }
    }
}

/// Upper edges of the request latency buckets, in microseconds: 1 ms to 10 s.
pub const REQUEST_LATENCY_EDGES_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Upper edges of the sync duration buckets, in microseconds: 10 ms to 10 min.
pub const SYNC_DURATION_EDGES_US: [u64; 14] = [
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    600_000_000,
];

/// Request latencies of one target kind.
pub type RequestLatency = Histogram<{ REQUEST_LATENCY_EDGES_US.len() }>;
/// Sync durations.
pub type SyncDuration = Histogram<{ SYNC_DURATION_EDGES_US.len() }>;

/// Observations of a duration in fixed buckets, with their count and sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram<const N: usize> {
    edges: &'static [u64; N],
    /// Observations in each bucket alone (not cumulative); above the last edge only in `count`.
    in_bucket: [u64; N],
    count: u64,
    sum_us: u64,
}

impl<const N: usize> Histogram<N> {
    fn new(edges: &'static [u64; N]) -> Self {
        Histogram {
            edges,
            in_bucket: [0; N],
            count: 0,
            sum_us: 0,
        }
    }

    fn observe(&mut self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = self.edges.iter().position(|&edge| us <= edge) {
            self.in_bucket[i] = self.in_bucket[i].saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Each bucket's upper edge in microseconds with the observations at or below it
    /// (cumulative, as Prometheus wants them); the `+Inf` bucket is [`Histogram::count`].
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.edges
            .iter()
            .zip(self.in_bucket.iter())
            .scan(0u64, |total, (&edge, &n)| {
                *total = total.saturating_add(n);
                Some((edge, *total))
            })
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of all observations, in microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_us
    }
}

/// Values that say how things stand rather than what happened: brought up to date at the end
/// of every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// Requests handed out and not yet answered.
    pub in_flight: usize,
    /// Requests waiting for an in-flight slot.
    pub queued: usize,
    /// The event stream's state.
    pub stream: StreamStatus,
    /// Whether this instance acts (always [`Role::Leader`] without `--ha`).
    pub role: Role,
    /// True while a sync runs.
    pub syncing: bool,
}

/// A sync's writes by [`WriteKind`], in label order; each round keeps one.
pub(super) type WritesByKind = [u64; WriteKind::ALL.len()];

/// Everything the bridge counted since it started, and the gauges after the last input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    events: [u64; EventKind::ALL.len()],
    status_updates: [u64; TaskState::ALL.len()],
    dropped_events: u64,
    oversize_events: u64,
    health_reads: u64,
    stream_connects: u64,
    late_responses: u64,
    leaderships: u64,
    registrations: [u64; WriteResult::ALL.len()],
    deregistrations: [u64; WriteResult::ALL.len()],
    check_writes: [u64; WriteResult::ALL.len()],
    kv_ops: [u64; WriteResult::ALL.len()],
    requests: [[[u64; StatusClass::ALL.len()]; METHODS.len()]; TargetKind::ALL.len()],
    request_latency: [RequestLatency; TargetKind::ALL.len()],
    syncs: [u64; SyncResult::ALL.len()],
    sync_duration: SyncDuration,
    sync_writes: WritesByKind,
    last_sync_writes: WritesByKind,
    last_complete_sync_at: Option<Duration>,
    gauges: Gauges,
}

fn bump(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}

/// Where `value` is in `all`. Every `ALL` lists each variant, so this always finds it; 0 keeps
/// it free of panics anyway.
fn index_of<T: PartialEq + Copy>(all: &[T], value: T) -> usize {
    all.iter().position(|&v| v == value).unwrap_or(0)
}

impl Metrics {
    pub(super) fn new(gauges: Gauges) -> Self {
        let latency = Histogram::new(&REQUEST_LATENCY_EDGES_US);
        Metrics {
            events: [0; EventKind::ALL.len()],
            status_updates: [0; TaskState::ALL.len()],
            dropped_events: 0,
            oversize_events: 0,
            health_reads: 0,
            stream_connects: 0,
            late_responses: 0,
            leaderships: 0,
            registrations: [0; WriteResult::ALL.len()],
            deregistrations: [0; WriteResult::ALL.len()],
            check_writes: [0; WriteResult::ALL.len()],
            kv_ops: [0; WriteResult::ALL.len()],
            requests: [[[0; StatusClass::ALL.len()]; METHODS.len()]; TargetKind::ALL.len()],
            request_latency: [latency.clone(), latency.clone(), latency],
            syncs: [0; SyncResult::ALL.len()],
            sync_duration: Histogram::new(&SYNC_DURATION_EDGES_US),
            sync_writes: [0; WriteKind::ALL.len()],
            last_sync_writes: [0; WriteKind::ALL.len()],
            last_complete_sync_at: None,
            gauges,
        }
    }

    // Changes, each made by the workflow that knows the outcome.

    pub(super) fn event_received(&mut self, kind: EventKind) {
        bump(&mut self.events[index_of(&EventKind::ALL, kind)], 1);
    }

    pub(super) fn status_update_received(&mut self, state: TaskState) {
        bump(
            &mut self.status_updates[index_of(&TaskState::ALL, state)],
            1,
        );
    }

    pub(super) fn event_dropped(&mut self) {
        bump(&mut self.dropped_events, 1);
    }

    pub(super) fn oversize_events_skipped(&mut self, n: u64) {
        bump(&mut self.oversize_events, n);
    }

    pub(super) fn health_read_started(&mut self) {
        bump(&mut self.health_reads, 1);
    }

    pub(super) fn stream_connected(&mut self) {
        bump(&mut self.stream_connects, 1);
    }

    pub(super) fn late_response(&mut self) {
        bump(&mut self.late_responses, 1);
    }

    pub(super) fn leadership_taken(&mut self) {
        bump(&mut self.leaderships, 1);
    }

    pub(super) fn registration(&mut self, result: WriteResult) {
        bump(
            &mut self.registrations[index_of(&WriteResult::ALL, result)],
            1,
        );
    }

    pub(super) fn deregistration(&mut self, result: WriteResult) {
        bump(
            &mut self.deregistrations[index_of(&WriteResult::ALL, result)],
            1,
        );
    }

    pub(super) fn check_write(&mut self, result: WriteResult) {
        bump(
            &mut self.check_writes[index_of(&WriteResult::ALL, result)],
            1,
        );
    }

    pub(super) fn kv_ops(&mut self, result: WriteResult, ops: u64) {
        bump(&mut self.kv_ops[index_of(&WriteResult::ALL, result)], ops);
    }

    /// A request to `target` was answered (or given up on) `latency` after it was handed out.
    pub(super) fn request_done(
        &mut self,
        target: &Target,
        method: Method,
        result: Result<u16, &TransportError>,
        latency: Duration,
    ) {
        let kind = index_of(&TargetKind::ALL, TargetKind::of(target));
        let class = index_of(&StatusClass::ALL, StatusClass::of(result));
        bump(
            &mut self.requests[kind][index_of(&METHODS, method)][class],
            1,
        );
        self.request_latency[kind].observe(latency);
    }

    /// A sync ended at `now` after `duration`, having sent `writes`.
    pub(super) fn sync_finished(
        &mut self,
        result: SyncResult,
        duration: Duration,
        now: Duration,
        writes: &WritesByKind,
    ) {
        bump(&mut self.syncs[index_of(&SyncResult::ALL, result)], 1);
        self.sync_duration.observe(duration);
        for (total, n) in self.sync_writes.iter_mut().zip(writes) {
            bump(total, *n);
        }
        self.last_sync_writes = *writes;
        if result == SyncResult::Complete {
            self.last_complete_sync_at = Some(now);
        }
    }

    pub(super) fn set_gauges(&mut self, gauges: Gauges) {
        self.gauges = gauges;
    }

    // Reads.

    /// Event bodies received (callbacks and stream frames alike), by what they were.
    pub fn events_received(&self, kind: EventKind) -> u64 {
        self.events[index_of(&EventKind::ALL, kind)]
    }

    /// Status updates received in `state`.
    pub fn status_updates(&self, state: TaskState) -> u64 {
        self.status_updates[index_of(&TaskState::ALL, state)]
    }

    /// Status events received, in any state.
    pub fn events(&self) -> u64 {
        self.events_received(EventKind::StatusUpdate)
    }

    /// Events dropped because too many updates of the same task (or host, or health events)
    /// were waiting.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Stream events skipped for being larger than [`crate::Config::max_event_bytes`].
    pub fn oversize_events(&self) -> u64 {
        self.oversize_events
    }

    /// Health events that led to a read of their app's tasks.
    pub fn health_events(&self) -> u64 {
        self.health_reads
    }

    /// Times the event stream connected (the first time and every reconnect).
    pub fn stream_connects(&self) -> u64 {
        self.stream_connects
    }

    /// Responses for requests the core had already given up on.
    pub fn late_responses(&self) -> u64 {
        self.late_responses
    }

    /// Times this instance became the leader (`--ha`).
    pub fn leaderships(&self) -> u64 {
        self.leaderships
    }

    /// Service registrations (by events and syncs alike) with `result`.
    pub fn registrations(&self, result: WriteResult) -> u64 {
        self.registrations[index_of(&WriteResult::ALL, result)]
    }

    /// Service deregistrations with `result`.
    pub fn deregistrations(&self, result: WriteResult) -> u64 {
        self.deregistrations[index_of(&WriteResult::ALL, result)]
    }

    /// Check statuses set and checks removed, with `result`.
    pub fn check_writes_with(&self, result: WriteResult) -> u64 {
        self.check_writes[index_of(&WriteResult::ALL, result)]
    }

    /// KV operations (sets and deletes) in transactions with `result`.
    pub fn kv_ops_with(&self, result: WriteResult) -> u64 {
        self.kv_ops[index_of(&WriteResult::ALL, result)]
    }

    /// Service registrations that succeeded.
    pub fn registered(&self) -> u64 {
        self.registrations(WriteResult::Ok)
    }

    /// Service deregistrations that succeeded (including "already gone").
    pub fn deregistered(&self) -> u64 {
        self.deregistrations(WriteResult::Ok)
    }

    /// KV keys written or deleted.
    pub fn kv_writes(&self) -> u64 {
        self.kv_ops_with(WriteResult::Ok)
    }

    /// Check statuses set and checks removed.
    pub fn check_writes(&self) -> u64 {
        self.check_writes_with(WriteResult::Ok)
    }

    /// Requests to `kind` with `method` answered or given up on, ending in `class`. The event
    /// stream is not among them (see [`Metrics::stream_connects`]).
    pub fn requests(&self, kind: TargetKind, method: Method, class: StatusClass) -> u64 {
        let kind = index_of(&TargetKind::ALL, kind);
        self.requests[kind][index_of(&METHODS, method)][index_of(&StatusClass::ALL, class)]
    }

    /// How long requests to `kind` took, from being handed out to their answer.
    pub fn request_latency(&self, kind: TargetKind) -> &RequestLatency {
        &self.request_latency[index_of(&TargetKind::ALL, kind)]
    }

    /// Syncs that ended with `result`.
    pub fn syncs(&self, result: SyncResult) -> u64 {
        self.syncs[index_of(&SyncResult::ALL, result)]
    }

    /// Syncs that completed every step.
    pub fn syncs_completed(&self) -> u64 {
        self.syncs(SyncResult::Complete)
    }

    /// Syncs that stopped or skipped a step because a read or write failed.
    pub fn syncs_failed(&self) -> u64 {
        self.syncs(SyncResult::Incomplete) + self.syncs(SyncResult::Failed)
    }

    /// How long syncs took, whatever their result.
    pub fn sync_duration(&self) -> &SyncDuration {
        &self.sync_duration
    }

    /// Writes of `kind` that syncs sent, in all.
    pub fn sync_writes(&self, kind: WriteKind) -> u64 {
        self.sync_writes[index_of(&WriteKind::ALL, kind)]
    }

    /// Writes of `kind` the last sync sent.
    pub fn last_sync_writes(&self, kind: WriteKind) -> u64 {
        self.last_sync_writes[index_of(&WriteKind::ALL, kind)]
    }

    /// When the last complete sync ended, on the clock of `now`.
    pub fn last_complete_sync_at(&self) -> Option<Duration> {
        self.last_complete_sync_at
    }

    /// How things stood after the last input.
    pub fn gauges(&self) -> Gauges {
        self.gauges
    }
}

/// Adds `n` writes of `kind` to what a sync round sent.
pub(super) fn count_write(writes: &mut WritesByKind, kind: WriteKind, n: usize) {
    bump(&mut writes[index_of(&WriteKind::ALL, kind)], n as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_the_overflow_only_counts() {
        static EDGES: [u64; 2] = [10, 100];
        let mut h = Histogram::new(&EDGES);
        for us in [5, 10, 11, 100, 1_000] {
            h.observe(Duration::from_micros(us));
        }
        let buckets: alloc::vec::Vec<_> = h.buckets().collect();
        assert_eq!(buckets, [(10, 2), (100, 4)]);
        assert_eq!((h.count(), h.sum_micros()), (5, 1_126));
    }

    #[test]
    fn a_duration_beyond_u64_micros_saturates() {
        static EDGES: [u64; 1] = [10];
        let mut h = Histogram::new(&EDGES);
        h.observe(Duration::MAX);
        h.observe(Duration::MAX);
        assert_eq!((h.count(), h.sum_micros()), (2, u64::MAX));
        assert_eq!(h.buckets().next(), Some((10, 0)));
    }

    #[test]
    fn statuses_outside_200_to_599_are_errors() {
        for (status, class) in [
            (100, StatusClass::Error),
            (199, StatusClass::Error),
            (204, StatusClass::Success),
            (307, StatusClass::Redirection),
            (404, StatusClass::ClientError),
            (599, StatusClass::ServerError),
            (600, StatusClass::Error),
            (u16::MAX, StatusClass::Error),
        ] {
            assert_eq!(StatusClass::of(Ok(status)), class, "{status}");
        }
        assert_eq!(
            StatusClass::of(Err(&TransportError::Timeout)),
            StatusClass::Error
        );
    }
}
