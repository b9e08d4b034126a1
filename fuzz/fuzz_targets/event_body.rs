//! Arbitrary bytes as a Marathon event POSTed to `/events`: the core must answer exactly once,
//! with a 2xx or 4xx JSON reply or by starting requests, and never panic.
#![no_main]

use consular_core::{Bridge, Config, InboundId, Output};
use core::time::Duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let mut bridge = Bridge::new(Config::default(), Duration::ZERO);
    bridge
        .handle_inbound(Duration::ZERO, InboundId(1), "/events", body)
        .expect("a fresh id is accepted");
    let mut replies = 0;
    let mut requests = 0;
    for _ in 0..1000 {
        match bridge.poll_output() {
            Output::Reply(_, reply) => {
                replies += 1;
                assert!(
                    reply.status == 200 || reply.status == 400,
                    "status {}",
                    reply.status
                );
                serde_json::from_slice::<serde_json::Value>(&reply.body).expect("replies are JSON");
            }
            Output::Request(_) => requests += 1,
            // The default configuration uses callbacks: no stream is ever opened or closed.
            Output::OpenStream(r) => panic!("stream opened with callbacks configured: {r:?}"),
            Output::CloseStream(id) => panic!("stream {id} closed with callbacks configured"),
            Output::Log(_) => {}
            Output::Timeout(_) => break,
        }
    }
    assert!(
        replies + requests >= 1,
        "the event was neither answered nor acted on"
    );
    assert!(replies <= 1, "one reply per inbound request");
});
