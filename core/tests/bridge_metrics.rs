//! Transcript tests of the metrics: each scripted input moves exactly the counters it implies
//! (events by type and task state, registrations and deregistrations by result, requests by
//! target kind, method and status class with their latency, syncs by result with their duration
//! and writes, dropped and oversize events, stream connects), `/metrics` is answered with a
//! metrics reply, and a sync longer than 2 s logs its progress every 2 s on the simulated clock.

mod support;

use std::time::Duration;

use consular_core::bridge::metrics::{
    EventKind, StatusClass, StreamStatus, SyncResult, TargetKind, WriteKind, WriteResult,
};
use consular_core::marathon::TaskState;
use consular_core::{Config, EventSource, Level, Method, ReplyKind, Target, TransportError};
use support::transcript::{agent, status_event, Transcript};

fn config() -> Config {
    Config {
        registration_id: "test".into(),
        ..Config::default()
    }
}

/// Every request count, as (kind, method, class, n), leaving out the zeros.
fn request_counts(t: &Transcript) -> Vec<(TargetKind, Method, StatusClass, u64)> {
    let m = t.bridge.metrics();
    let mut counts = Vec::new();
    for kind in TargetKind::ALL {
        for method in [Method::Get, Method::Put, Method::Post, Method::Delete] {
            for class in StatusClass::ALL {
                let n = m.requests(kind, method, class);
                if n > 0 {
                    counts.push((kind, method, class, n));
                }
            }
        }
    }
    counts
}

/// Every status-update count by state, leaving out the zeros.
fn state_counts(t: &Transcript) -> Vec<(TaskState, u64)> {
    TaskState::ALL
        .into_iter()
        .map(|s| (s, t.bridge.metrics().status_updates(s)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn events_writes_and_requests_count_as_the_transcript_goes() {
    use Method::{Get, Put};
    use StatusClass::{ClientError, Error, Success};
    use TargetKind::{Agent, Consul, Marathon};
    let mut t = Transcript::new(config());

    // TASK_RUNNING: register (3 ms on the clock), then read the app and its KV (none yet: 404).
    let running = t.event(&status_event("TASK_RUNNING", "t1", "/a", "h", "[31000]"));
    t.members(&["h"]);
    let register = t.expect(Put, agent("h"), "/v1/agent/service/register");
    assert_eq!(t.bridge.metrics().gauges().in_flight, 1);
    t.now += Duration::from_millis(3);
    t.respond(&register, 200, "");
    let app = t.expect(Get, Target::Marathon, "/v2/apps/a");
    t.respond(&app, 200, r#"{"app":{"id":"/a","labels":{}}}"#);
    let kv = t.expect(Get, Target::Consul, "/v1/kv/consular/a/?recurse");
    t.respond(&kv, 404, "");
    assert_eq!(t.reply(running).0, 200);
    t.expect_no_request();
    assert_eq!(t.bridge.metrics().gauges().in_flight, 0);

    // TASK_KILLED twice: one agent says already gone (404: ok), one cannot be reached.
    let killed = t.event(&status_event("TASK_KILLED", "t1", "/a", "h", "[]"));
    t.ours("h", "t1");
    let dereg = t.expect(Put, agent("h"), "/v1/agent/service/deregister/t1");
    t.respond(&dereg, 404, "");
    assert_eq!(t.reply(killed).0, 200);
    let killed = t.event(&status_event("TASK_KILLED", "t2", "/a", "h", "[]"));
    t.ours("h", "t2");
    let dereg = t.expect(Put, agent("h"), "/v1/agent/service/deregister/t2");
    t.fail(&dereg, TransportError::Connect("connection refused".into()));
    assert_eq!(t.reply(killed).0, 502);

    // Not serving yet: counted by state, nothing sent.
    let staging = t.event(&status_event("TASK_STAGING", "t3", "/a", "h", "[]"));
    assert_eq!(t.reply(staging).0, 200);
    // What the bridge does not use, and what it refuses.
    let other = t.event(r#"{"eventType":"deployment_info"}"#);
    assert_eq!(t.reply(other).0, 200);
    for bad in [
        "not json".to_owned(),
        status_event("TASK_EVIL", "t4", "/a", "h", "[]"),
        status_event("TASK_RUNNING", "t\\\"}\\n{le=\\\"x", "/a", "h", "[1]"),
    ] {
        let id = t.event(&bad);
        assert_eq!(t.reply(id).0, 400, "{bad}");
    }
    t.expect_no_request();

    let m = t.bridge.metrics();
    let kinds: Vec<u64> = EventKind::ALL
        .into_iter()
        .map(|k| m.events_received(k))
        .collect();
    // status_update, health_changed, app_terminated, other, invalid
    assert_eq!(kinds, [4, 0, 0, 1, 3]);
    assert_eq!(m.events(), 4);
    assert_eq!(
        state_counts(&t),
        [
            (TaskState::Running, 1),
            (TaskState::Killed, 2),
            (TaskState::Staging, 1)
        ]
    );
    let m = t.bridge.metrics();
    assert_eq!(
        (
            m.registrations(WriteResult::Ok),
            m.registrations(WriteResult::Failed)
        ),
        (1, 0)
    );
    assert_eq!(
        (
            m.deregistrations(WriteResult::Ok),
            m.deregistrations(WriteResult::Failed)
        ),
        (1, 1)
    );
    assert_eq!(
        request_counts(&t),
        [
            (Marathon, Get, Success, 1),
            (Consul, Get, Success, 1),
            (Consul, Get, ClientError, 1),
            (Agent, Get, Success, 2),
            (Agent, Put, Success, 1),
            (Agent, Put, ClientError, 1),
            (Agent, Put, Error, 1),
        ]
    );
    // The registration's 3 ms went into the 5 ms bucket; every other answer came at once.
    let agents = t.bridge.metrics().request_latency(Agent);
    let buckets: Vec<(u64, u64)> = agents.buckets().take(3).collect();
    assert_eq!(buckets, [(1_000, 4), (2_500, 4), (5_000, 5)]);
    assert_eq!((agents.count(), agents.sum_micros()), (5, 3_000));
    assert_eq!(t.bridge.metrics().request_latency(Marathon).count(), 1);
    assert_eq!(t.bridge.metrics().syncs(SyncResult::Complete), 0);
}

#[test]
fn metrics_are_a_reply_of_their_own_for_any_method_and_send_nothing() {
    let mut t = Transcript::new(config());
    let before = t.bridge.metrics().clone();
    for body in ["", "{\"x\": 1}"] {
        let id = t.inbound("/metrics?format=anything", body);
        let reply = t.full_reply(id);
        assert_eq!(
            (reply.status, reply.kind, reply.body.len()),
            (200, ReplyKind::Metrics, 0)
        );
    }
    t.expect_no_request();
    assert_eq!(
        t.bridge.metrics(),
        &before,
        "a scrape is not an event and counts nothing"
    );
    let health = t.inbound("/health", "");
    assert_eq!(t.full_reply(health).kind, ReplyKind::Json);
}

#[test]
fn each_update_dropped_from_a_flood_counts_once() {
    let mut t = Transcript::new(config());
    let first = t.event(&status_event("TASK_KILLED", "t", "/a", "h", "[]"));
    t.members(&["h"]);
    let read = t.expect(Method::Get, agent("h"), "/v1/agent/services");
    for _ in 0..1030 {
        let _ = t.event(&status_event("TASK_STAGING", "t", "/a", "h", "[]"));
    }
    let m = t.bridge.metrics();
    assert_eq!(m.dropped_events(), 1030 - 1024);
    assert_eq!(m.events_received(EventKind::StatusUpdate), 1031);
    assert_eq!(m.status_updates(TaskState::Staging), 1030);
    t.fail(&read, TransportError::Timeout);
    assert_eq!(t.reply(first).0, 502);
    assert_eq!(
        t.bridge
            .metrics()
            .requests(TargetKind::Agent, Method::Get, StatusClass::Error),
        1
    );
}

const APPS: &str = r#"{"apps":[{"id":"/web","labels":{"domain":"web.example"},"tasks":[
  {"id":"web.1","host":"10.0.0.1","ports":[31000],"state":"TASK_RUNNING"},
  {"id":"web.2","host":"10.0.0.1","ports":[31001],"state":"TASK_RUNNING"}]}]}"#;

/// A dead service of ours on 10.0.0.1, which a purging sync removes.
const LISTING: &str = r#"{"gone.1":{"ID":"gone.1","Service":"gone","Tags":["consular-reg-id=test","consular-app-id=/gone"],"Port":81}}"#;

fn syncing() -> Config {
    Config {
        sync_interval: Duration::from_secs(30),
        purge: true,
        ..config()
    }
}

fn progress_lines(t: &Transcript) -> Vec<String> {
    t.logs
        .iter()
        .filter(|l| l.message.starts_with("sync running for"))
        .inspect(|l| assert_eq!(l.level, Level::Info))
        .map(|l| l.message.clone())
        .collect()
}

#[test]
fn a_long_sync_reports_progress_every_two_seconds_and_counts_its_writes() {
    let mut t = Transcript::new(syncing());
    let apps = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    let kv = t.expect(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    let nodes = t.expect(Method::Get, Target::Consul, "/v1/catalog/nodes");
    let critical = t.expect(Method::Get, Target::Consul, "/v1/health/state/critical");
    assert_eq!(t.wake_at, Some(Duration::from_secs(2)), "the first report");
    t.advance_to(Duration::from_millis(1_999));
    assert!(progress_lines(&t).is_empty());
    t.advance_to(Duration::from_secs(2));
    assert_eq!(
        progress_lines(&t),
        ["sync running for 2 s: reading, 4 reads pending"]
    );

    t.now = Duration::from_millis(2_500);
    t.respond(&critical, 200, "[]");
    t.respond(&nodes, 200, r#"[{"Node":"n1","Address":"10.0.0.1"}]"#);
    let listing = t.take(Method::Get, agent("10.0.0.1"), "/v1/agent/services");
    t.respond(&listing, 200, LISTING);
    t.respond(&kv, 404, "");
    t.respond(&apps, 200, APPS);
    // Two registrations, one deregistration, one transaction of one KV operation.
    let first = t.take(Method::Put, agent("10.0.0.1"), "/v1/agent/service/register");
    let second = t.take(Method::Put, agent("10.0.0.1"), "/v1/agent/service/register");
    let dereg = t.take(
        Method::Put,
        agent("10.0.0.1"),
        "/v1/agent/service/deregister/gone.1",
    );
    let txn = t.take(Method::Put, Target::Consul, "/v1/txn");
    t.expect_no_request();
    t.respond(&first, 200, "");
    assert_eq!(t.wake_at, Some(Duration::from_secs(4)));
    t.advance_to(Duration::from_secs(4));
    // A driver that wakes late gets one line, not one per period missed.
    t.advance_to(Duration::from_millis(7_100));
    assert_eq!(
        progress_lines(&t)[1..],
        [
            "sync running for 4 s: 1 of 4 writes made",
            "sync running for 7 s: 1 of 4 writes made"
        ]
    );
    assert_eq!(t.wake_at, Some(Duration::from_secs(8)));
    assert!(t.bridge.metrics().gauges().syncing);

    t.now = Duration::from_millis(7_500);
    t.respond(&second, 200, "");
    t.respond(&dereg, 200, "");
    t.respond(&txn, 200, r#"{"Results":[],"Errors":null}"#);
    assert!(!t.bridge.is_syncing());
    assert_eq!(
        t.wake_at,
        Some(Duration::from_secs(30)),
        "no report after the end"
    );
    t.advance_to(Duration::from_secs(10));
    assert_eq!(progress_lines(&t).len(), 3);

    let m = t.bridge.metrics();
    assert_eq!(m.syncs(SyncResult::Complete), 1);
    assert_eq!(m.syncs_failed(), 0);
    assert_eq!(
        m.last_complete_sync_at(),
        Some(Duration::from_millis(7_500))
    );
    assert_eq!(m.sync_duration().count(), 1);
    assert_eq!(m.sync_duration().sum_micros(), 7_500_000);
    let sent: Vec<u64> = WriteKind::ALL.iter().map(|&k| m.sync_writes(k)).collect();
    // register, deregister, check, kv, node
    assert_eq!(sent, [2, 1, 0, 1, 0]);
    let last: Vec<u64> = WriteKind::ALL
        .iter()
        .map(|&k| m.last_sync_writes(k))
        .collect();
    assert_eq!(last, sent);
    assert_eq!((m.registered(), m.deregistered(), m.kv_writes()), (2, 1, 1));
    assert!(!m.gauges().syncing);
}

#[test]
fn a_sync_that_cannot_read_marathon_counts_failed_and_keeps_the_last_complete_time() {
    let mut t = Transcript::new(syncing());
    let apps = t.expect(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    t.now = Duration::from_millis(40);
    t.respond(&apps, 503, "no leader");
    let m = t.bridge.metrics();
    assert_eq!(
        (
            m.syncs(SyncResult::Complete),
            m.syncs(SyncResult::Incomplete),
            m.syncs(SyncResult::Failed)
        ),
        (0, 0, 1)
    );
    assert_eq!(m.last_complete_sync_at(), None);
    assert_eq!(m.sync_duration().sum_micros(), 40_000);
    assert_eq!(
        m.requests(TargetKind::Marathon, Method::Get, StatusClass::ServerError),
        1
    );
    let nothing: Vec<u64> = WriteKind::ALL.iter().map(|&k| m.sync_writes(k)).collect();
    assert_eq!(nothing, [0; 5]);
}

#[test]
fn the_stream_gauge_follows_its_state_and_connects_and_oversize_events_count() {
    let mut t = Transcript::new(Config {
        events: EventSource::Stream,
        max_event_bytes: 1024,
        ..config()
    });
    let status = |t: &Transcript| t.bridge.metrics().gauges().stream;
    let stream = t.expect_stream_open();
    assert_eq!(status(&t), StreamStatus::Connecting);
    t.stream_open(&stream, 200);
    assert_eq!(status(&t), StreamStatus::Open);
    let huge = format!(
        "event: status_update_event\r\ndata: {{\"x\":\"{}\"}}\r\n\r\n",
        "x".repeat(5000)
    );
    t.stream_data(&stream, &huge);
    t.stream_data(&stream, &huge);
    t.stream_closed(&stream, None);
    assert_eq!(status(&t), StreamStatus::Waiting);
    let at = t.wake_at.unwrap();
    t.advance_to(at);
    let again = t.expect_stream_open();
    t.stream_open(&again, 200);
    let m = t.bridge.metrics();
    assert_eq!((m.stream_connects(), m.oversize_events()), (2, 2));
    assert_eq!(
        m.events_received(EventKind::StatusUpdate),
        0,
        "a skipped event is not received"
    );
    assert_eq!(
        m.requests(TargetKind::Marathon, Method::Get, StatusClass::Success),
        0,
        "the stream is not a request"
    );
    let callbacks = Transcript::new(config());
    assert_eq!(
        callbacks.bridge.metrics().gauges().stream,
        StreamStatus::Off
    );
}
