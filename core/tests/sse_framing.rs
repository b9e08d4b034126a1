//! Property: the event-stream parser yields the same events, and skips the same oversize ones,
//! however the same bytes are split into chunks.

mod support;

use consular_core::marathon::{SseEvent, SseParser};
use quickcheck::{quickcheck, Arbitrary, Gen};
use support::fixtures::fixture;

/// A stream built from the pieces Marathon and other SSE servers send.
#[derive(Clone, Debug)]
struct Stream(Vec<u8>);

impl Arbitrary for Stream {
    fn arbitrary(g: &mut Gen) -> Self {
        let endings: [&[u8]; 3] = [b"\r\n", b"\n", b"\r"];
        let mut bytes = Vec::new();
        for _ in 0..usize::arbitrary(g) % 24 {
            let line: Vec<u8> = match u8::arbitrary(g) % 6 {
                0 => format!("data: {{\"n\":{}}}", u16::arbitrary(g)).into_bytes(),
                1 => b"event: status_update_event".to_vec(),
                2 => b": heartbeat comment".to_vec(),
                3 => Vec::new(),
                4 => format!("data:{}", "x".repeat(usize::arbitrary(g) % 80)).into_bytes(),
                _ => b"retry: 10".to_vec(),
            };
            bytes.extend_from_slice(&line);
            bytes.extend_from_slice(g.choose(&endings).unwrap());
        }
        Stream(bytes)
    }
}

fn parse(chunks: impl Iterator<Item = Vec<u8>>, max: usize) -> (Vec<SseEvent>, u64) {
    let mut parser = SseParser::new(max);
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(&chunk, &mut events);
    }
    (events, parser.oversize_skipped())
}

quickcheck! {
    fn any_split_yields_the_same_events(stream: Stream, cuts: Vec<usize>, max: u8) -> bool {
        let max = 16 + max as usize;
        let whole = parse(std::iter::once(stream.0.clone()), max);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.0.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(stream.0[start..cut].to_vec());
            start = cut;
        }
        chunks.push(stream.0[start..].to_vec());
        whole == parse(chunks.into_iter(), max)
    }

    fn byte_by_byte_yields_the_same_events(stream: Stream) -> bool {
        let whole = parse(std::iter::once(stream.0.clone()), 64);
        whole == parse(stream.0.iter().map(|&b| vec![b]), 64)
    }
}

#[test]
fn marathons_own_stream_samples_parse() {
    let (events, _) = parse(
        std::iter::once(fixture("events_stream_sample.txt")),
        1 << 20,
    );
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_deref()).collect();
    assert_eq!(
        types,
        [
            Some("event_stream_attached"),
            Some("status_update_event"),
            Some("status_update_event")
        ]
    );
    assert!(events[1].data.contains("TASK_FAILED"));
    // Marathon 0.9–0.10 sent data lines only; the type is in the JSON.
    let (events, _) = parse(
        std::iter::once(fixture("events_stream_sample_v1.1_doc.txt")),
        1 << 20,
    );
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event_type.is_none()));
    assert!(events[1].data.contains("group_change_success"));
}
