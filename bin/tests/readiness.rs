//! End-to-end `/health` and `/ready` of the real binary, against a real Consul 1.8.7 and the
//! Marathon simulator: not ready while Marathon refuses the event stream (the first sync done or
//! not), ready once the stream connects and a sync has completed; `/health` answers throughout.

mod support;

use consular_sim::MarathonVersion;
use support::consul::{get, wait_until};
use support::world::{Peers, DEADLINE};

#[test]
fn ready_waits_for_the_stream_and_a_complete_sync_and_health_answers_throughout() {
    let peers = Peers::start(1, MarathonVersion::V1_10, |m| m.put_app("/web", &[]));
    peers.marathon.set_streams_enabled(false);
    let world = peers.launch_unconnected(&["--events", "sse", "--sync-interval", "2"]);
    let at = world.consular.addr();
    let (status, body) = get(at, "/ready").expect("GET /ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"ready\": false"), "{body}");
    assert_eq!(get(at, "/health").expect("GET /health").0, 200);
    // Syncs complete (Marathon's API answers) while the stream is refused: still not ready.
    wait_until("a complete sync", DEADLINE, || {
        world.consular.log_lines_with("sync done") > 0
    });
    let (status, body) = get(at, "/ready").expect("GET /ready");
    assert_eq!(status, 503);
    assert!(body.contains("event stream has not connected"), "{body}");
    world.marathon.set_streams_enabled(true);
    wait_until("ready", DEADLINE, || {
        get(at, "/ready").is_ok_and(|(status, _)| status == 200)
    });
    assert_eq!(get(at, "/health").expect("GET /health").0, 200);
}
