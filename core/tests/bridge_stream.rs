//! Transcript tests of the event stream: connect, a full sync after every (re)connect, events in
//! any chunking, a silent stream dropped, reconnects with jittered backoff forever, oversize
//! events skipped, and `auto` falling back to callbacks.

mod support;

use std::time::Duration;

use consular_core::{Config, EventSource, Method, Target, TransportError};
use support::transcript::{agent, status_event, Transcript};

fn config(events: EventSource) -> Config {
    Config {
        registration_id: "test".into(),
        events,
        callback_url: Some("http://c:7000/events?registration=test".into()),
        seed: 7,
        ..Config::default()
    }
}

fn frame(json: &str) -> String {
    format!("event: status_update_event\r\ndata: {json}\r\n\r\n")
}

/// Answers the reads of a sync over a world of no apps and one Consul node, `h`.
fn answer_empty_sync(t: &mut Transcript) {
    answer_sync_of(t, r#"{"apps":[]}"#);
}

/// Answers the reads of a sync over Marathon's `apps` and one Consul node, `h`, empty.
fn answer_sync_of(t: &mut Transcript, apps_body: &str) {
    let apps = t.take(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    let nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    let critical = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&apps, 200, apps_body);
    t.respond(&kv, 404, "");
    t.respond(&nodes, 200, r#"[{"Node":"h","Address":"h"}]"#);
    t.respond(&critical, 200, "[]");
    let listing = t.take(Method::Get, agent("h"), "/v1/agent/services");
    t.respond(&listing, 200, "{}");
}

#[test]
fn the_stream_connects_syncs_and_relays_events_in_any_chunking() {
    let mut t = Transcript::new(config(EventSource::Stream));
    let stream = t.expect_stream_open();
    assert_eq!(
        stream.path_and_query,
        "/v2/events?event_type=status_update_event&event_type=app_terminated_event"
    );
    assert_eq!(stream.target, Target::Marathon);
    t.expect_no_request(); // no callback subscription in stream mode
    t.stream_open(&stream, 200);
    assert!(t.logged("connected to Marathon's event stream"));
    answer_empty_sync(&mut t); // even with no sync interval: events from the gap are lost

    let bytes = frame(&status_event("TASK_KILLED", "t1", "/a", "h", "[]"));
    let (first, second) = bytes.split_at(17);
    t.stream_data(&stream, first);
    t.expect_no_request();
    t.stream_data(&stream, second);
    t.ours("h", "t1");
    let dereg = t.expect(Method::Put, agent("h"), "/v1/agent/service/deregister/t1");
    t.respond(&dereg, 200, "");
    assert_eq!(t.bridge.metrics().deregistered(), 1);

    t.stream_data(
        &stream,
        &frame(&status_event("TASK_RUNNING", "t1", "/a", "h", "[1]")),
    );
    t.expect_no_request(); // a late RUNNING for an ended task
    assert!(t.logged("the task already ended"));
}

#[test]
fn a_silent_stream_is_dropped_and_reconnected_with_growing_jittered_backoff() {
    let mut t = Transcript::new(config(EventSource::Stream));
    let stream = t.expect_stream_open();
    t.stream_open(&stream, 200);
    answer_empty_sync(&mut t);
    t.advance_to(Duration::from_secs(20));
    t.stream_data(&stream, "\r\n"); // Marathon's heartbeat keeps it alive
    assert_eq!(t.wake_at, Some(Duration::from_secs(50)));
    t.advance_to(Duration::from_secs(50));
    t.expect_stream_close(&stream);
    assert!(t.logged("silent for 30 s"));

    let mut waits = Vec::new();
    let mut last = stream;
    for _ in 0..8 {
        let down_at = t.now;
        let retry_at = t.wake_at.expect("a reconnect is scheduled");
        waits.push(retry_at - down_at);
        t.advance_to(retry_at);
        last = t.expect_stream_open();
        t.stream_closed(&last, Some(TransportError::Connect("refused".into())));
    }
    // Each wait lies in the upper half of 1, 2, 4 … 60 s.
    let caps = [1, 2, 4, 8, 16, 32, 60, 60];
    for (wait, cap) in waits.iter().zip(caps) {
        let cap = Duration::from_secs(cap);
        assert!(
            *wait >= cap / 2 && *wait <= cap,
            "{wait:?} outside [{:?}, {cap:?}]",
            cap / 2
        );
    }
    // Replies for a stream given up on change nothing.
    t.stream_open(&last, 200);
    assert_eq!(t.bridge.metrics().stream_connects(), 1);
}

#[test]
fn the_jitter_is_replayable_from_the_seed() {
    let waits = |seed| {
        let mut t = Transcript::new(Config {
            seed,
            ..config(EventSource::Stream)
        });
        let mut waits = Vec::new();
        for _ in 0..5 {
            let stream = t.expect_stream_open();
            t.stream_closed(&stream, None);
            let at = t.wake_at.unwrap();
            waits.push(at - t.now);
            t.advance_to(at);
        }
        waits
    };
    assert_eq!(waits(1), waits(1));
    assert_ne!(waits(1), waits(2));
}

#[test]
fn an_oversize_event_is_skipped_and_the_stream_goes_on() {
    let mut t = Transcript::new(Config {
        max_event_bytes: 1024,
        ..config(EventSource::Stream)
    });
    let stream = t.expect_stream_open();
    t.stream_open(&stream, 200);
    answer_empty_sync(&mut t);
    let huge = format!(
        "event: deployment_info\r\ndata: {{\"plan\":\"{}\"}}\r\n\r\n",
        "x".repeat(5000)
    );
    t.stream_data(&stream, &huge);
    assert_eq!(t.bridge.metrics().oversize_events(), 1);
    t.stream_data(
        &stream,
        &frame(&status_event("TASK_FAILED", "t2", "/a", "h", "[]")),
    );
    t.ours("h", "t2");
    t.expect(Method::Put, agent("h"), "/v1/agent/service/deregister/t2");
}

#[test]
fn auto_uses_callbacks_when_marathon_has_no_stream() {
    let mut t = Transcript::new(config(EventSource::Auto));
    let stream = t.expect_stream_open();
    t.expect_no_request();
    t.stream_open(&stream, 404);
    t.expect_stream_close(&stream);
    assert!(t.logged("using HTTP callbacks"));
    let list = t.expect(Method::Get, Target::Marathon, "/v2/eventSubscriptions");
    t.respond(
        &list,
        200,
        r#"{"callbackUrls":["http://c:7000/events?registration=test"]}"#,
    );
    assert_eq!(t.wake_at, None, "no reconnects once on callbacks");
}

#[test]
fn a_terminated_app_is_purged_even_without_purge() {
    let mut t = Transcript::new(config(EventSource::Stream));
    let stream = t.expect_stream_open();
    t.stream_open(&stream, 200);
    answer_sync_of(&mut t, r#"{"apps":[{"id":"/done","tasks":[]}]}"#);
    // An app the bridge never saw changes nothing: forged ends cost no sync.
    t.stream_data(&stream, "event: app_terminated_event\r\ndata: {\"appId\":\"/never\",\"eventType\":\"app_terminated_event\"}\r\n\r\n");
    t.expect_no_request();
    t.stream_data(&stream, "event: app_terminated_event\r\ndata: {\"appId\":\"/done\",\"eventType\":\"app_terminated_event\"}\r\n\r\n");
    assert!(t.logged("app /done terminated"));
    let apps = t.take(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    let nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    let critical = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&critical, 200, "[]");
    t.respond(&apps, 200, r#"{"apps":[]}"#);
    t.respond(
        &kv,
        200,
        r#"[{"Key":"consular/done/k","Value":null,"ModifyIndex":4},{"Key":"consular/other/k","Value":null,"ModifyIndex":5}]"#,
    );
    t.respond(&nodes, 200, r#"[{"Address":"h"}]"#);
    let list = t.take(Method::Get, agent("h"), "/v1/agent/services");
    t.respond(
        &list,
        200,
        r#"{"d1":{"Service":"done","Tags":["consular-reg-id=test","consular-app-id=/done"],"Port":0,"Address":"h"},
            "o1":{"Service":"other","Tags":["consular-reg-id=test","consular-app-id=/other"],"Port":0,"Address":"h"}}"#,
    );
    t.take(Method::Put, agent("h"), "/v1/agent/service/deregister/d1");
    let txn = t.take(Method::Put, Target::Consul, "/v1/txn");
    assert_eq!(
        support::transcript::body_json(&txn),
        serde_json::json!([{"KV": {"Verb": "delete-cas", "Key": "consular/done/k", "Index": 4}}])
    );
    t.expect_no_request();
}

#[test]
fn a_start_syncs_once_after_the_stream_connects_or_fails() {
    let scheduled = |events| Config {
        sync_interval: Duration::from_secs(60),
        ..config(events)
    };
    // Connected: the one sync reads Marathon after the stream is open, so no event falls between.
    let mut t = Transcript::new(scheduled(EventSource::Stream));
    let stream = t.expect_stream_open();
    t.expect_no_request();
    t.stream_open(&stream, 200);
    answer_empty_sync(&mut t);
    t.expect_no_request();
    assert_eq!(
        t.wake_at,
        Some(Duration::from_secs(30)),
        "the stream's idle deadline"
    );
    assert_eq!(t.bridge.metrics().syncs_completed(), 1);

    // Failed: the sync does not wait for the reconnect.
    let mut t = Transcript::new(scheduled(EventSource::Stream));
    let stream = t.expect_stream_open();
    t.stream_closed(&stream, Some(TransportError::Connect("refused".into())));
    answer_empty_sync(&mut t);
    t.expect_no_request();
    assert_eq!(t.bridge.metrics().syncs_completed(), 1);

    // No stream at all (`auto` falls back to callbacks): the sync runs beside the subscription.
    let mut t = Transcript::new(scheduled(EventSource::Auto));
    let stream = t.expect_stream_open();
    t.stream_open(&stream, 404);
    t.expect_stream_close(&stream);
    answer_empty_sync(&mut t);
    let subscriptions = t.take(Method::Get, Target::Marathon, "/v2/eventSubscriptions");
    t.respond(
        &subscriptions,
        200,
        r#"{"callbackUrls":["http://c:7000/events?registration=test"]}"#,
    );
    t.expect_no_request();
    assert_eq!(t.bridge.metrics().syncs_completed(), 1);
}
