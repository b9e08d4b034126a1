//! Transcript tests of `/health` and `/ready`: ready once a complete sync is done and the event
//! source is up; not ready before, while the stream has been down longer than its heartbeat
//! timeout (a short reconnect is no outage), while the callback is not registered, or as a
//! standby.

mod support;

use std::time::Duration;

use consular_core::{Config, EventSource, HaConfig, Method, Target};
use support::transcript::Transcript;

fn ready(t: &mut Transcript) -> (u16, String) {
    let id = t.inbound("/ready", "");
    t.reply(id)
}

/// Answers the reads of a sync of an empty world.
fn empty_sync(t: &mut Transcript) {
    let apps = t.take(Method::Get, Target::Marathon, "/v2/apps?embed=apps.tasks");
    t.respond(&apps, 200, r#"{"apps":[]}"#);
    let kv = t.take(Method::Get, Target::Consul, "/v1/kv/consular/?recurse");
    t.respond(&kv, 404, "");
    let nodes = t.take(Method::Get, Target::Consul, "/v1/catalog/nodes");
    t.respond(&nodes, 200, "[]");
    let health = t.take(Method::Get, Target::Consul, "/v1/health/state/critical");
    t.respond(&health, 200, "[]");
}

#[test]
fn ready_follows_the_first_sync_and_the_stream_across_a_cut_and_a_reconnect() {
    let mut t = Transcript::new(Config {
        events: EventSource::Stream,
        sync_interval: Duration::from_secs(3600),
        ..Config::default()
    });
    let health = t.inbound("/health", "");
    assert_eq!(t.reply(health), (200, r#"{"status": "ok"}"#.into()));
    let (status, body) = ready(&mut t);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"ready": false, "reason": "no complete sync yet"}"#
    );

    let stream = t.expect_stream_open();
    t.stream_open(&stream, 200);
    empty_sync(&mut t);
    assert_eq!(ready(&mut t), (200, r#"{"ready": true}"#.into()));

    // Cut at 10 s: still ready within the 30 s heartbeat timeout, not after.
    t.advance_to(Duration::from_secs(10));
    t.stream_closed(&stream, None);
    t.advance_to(Duration::from_secs(39));
    let _retry = t.streams.pop_front();
    assert_eq!(ready(&mut t).0, 200, "a short reconnect is no outage");
    t.advance_to(Duration::from_secs(41));
    let (status, body) = ready(&mut t);
    assert_eq!(status, 503);
    assert!(
        body.contains("down longer than its heartbeat timeout"),
        "{body}"
    );

    // Back: ready again at once.
    let again = loop {
        match t.streams.pop_front() {
            Some(consular_core::Output::OpenStream(r)) => break r,
            Some(_) => continue,
            None => t.advance_to(t.now + Duration::from_secs(1)),
        }
    };
    t.stream_open(&again, 200);
    let _resync = t.pending_requests();
    assert_eq!(ready(&mut t), (200, r#"{"ready": true}"#.into()));
}

#[test]
fn callbacks_are_ready_once_registered_and_a_standby_never_is() {
    let mut t = Transcript::new(Config {
        callback_url: Some("http://me:7000/events?registration=consular".into()),
        sync_interval: Duration::from_secs(3600),
        ..Config::default()
    });
    empty_sync(&mut t);
    let (status, body) = ready(&mut t);
    assert_eq!(status, 503);
    assert!(body.contains("callback is not registered"), "{body}");
    let list = t.take(Method::Get, Target::Marathon, "/v2/eventSubscriptions");
    t.respond(
        &list,
        200,
        r#"{"callbackUrls":["http://me:7000/events?registration=consular"]}"#,
    );
    assert_eq!(ready(&mut t).0, 200);

    let mut standby = Transcript::new(Config {
        ha: Some(HaConfig::new("consular", "i1")),
        ..Config::default()
    });
    let (status, body) = ready(&mut standby);
    assert_eq!(status, 503);
    assert!(body.contains("standby"), "{body}");
}
