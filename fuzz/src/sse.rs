//! The `sse_frames` harness: arbitrary bytes through [`SseParser`] whole, split at arbitrary
//! points, and one byte at a time must give the same events and the same count of skipped
//! oversize events; no event may exceed the size limit; and with a limit too large to matter, the
//! parser must agree with a plain whole-buffer reading of the W3C event-stream rules.

use consular_core::marathon::{SseEvent, SseParser};

use crate::choices::Choices;

/// Decodes `bytes` (a size limit, up to eight split points, then the stream) and checks.
pub fn run(bytes: &[u8]) {
    let mut c = Choices::new(bytes);
    let Some(limit) = c.u16().map(|n| 1 + usize::from(n % 1024)) else {
        return;
    };
    let Some(splits) = c.below(9).and_then(|n| {
        (0..n)
            .map(|_| c.u16().map(usize::from))
            .collect::<Option<Vec<_>>>()
    }) else {
        return;
    };
    let input = c.rest();

    let (whole, whole_skipped) = parse(&[input], limit);
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&input[start..cut]);
        start = cut;
    }
    chunks.push(&input[start..]);
    assert_eq!(
        parse(&chunks, limit),
        (whole.clone(), whole_skipped),
        "split at {chunks:?}"
    );
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        parse(&bytes, limit),
        (whole.clone(), whole_skipped),
        "one byte at a time"
    );

    for event in &whole {
        // Invalid UTF-8 is replaced by U+FFFD (3 bytes) per bad byte or more; count source bytes.
        assert!(
            source_len(&event.data) <= limit,
            "event data of {} bytes over the limit {limit}",
            source_len(&event.data)
        );
        let event_type = event.event_type.as_deref().unwrap_or_default();
        assert!(source_len(event_type) <= limit, "event type over the limit");
    }

    let (unbounded, skipped) = parse(&[input], input.len() + 1);
    assert_eq!(
        skipped, 0,
        "an event skipped under a limit larger than the input"
    );
    assert_eq!(unbounded, model(input), "disagrees with the W3C rules");
}

fn parse(chunks: &[&[u8]], limit: usize) -> (Vec<SseEvent>, u64) {
    let mut parser = SseParser::new(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(chunk, &mut events);
    }
    (events, parser.oversize_skipped())
}

/// The bytes a string came from, at least: every U+FFFD stands for one byte or more.
fn source_len(s: &str) -> usize {
    s.len() - 2 * s.matches('\u{FFFD}').count()
}

/// The event-stream rules read over a whole buffer, the obvious way: lines end at CRLF, LF or
/// CR; a blank line dispatches if a `data` field was seen; `:` starts a comment; one space after
/// the colon is dropped; only `data` and `event` matter; an unterminated last line is ignored.
/// (No byte-order mark handling: Marathon sends none, and the parser strips none.)
fn model(input: &[u8]) -> Vec<SseEvent> {
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < input.len() {
        match input[i] {
            b'\n' => {
                lines.push(&input[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&input[start..i]);
                i += if input.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    let mut events = Vec::new();
    let mut data: Option<Vec<u8>> = None;
    let mut event_type: Option<String> = None;
    for line in lines {
        if line.is_empty() {
            if let Some(mut data) = data.take() {
                data.pop();
                events.push(SseEvent {
                    event_type: event_type.take(),
                    data: String::from_utf8_lossy(&data).into_owned(),
                });
            }
            event_type = None;
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => continue,
            Some(i) => (
                &line[..i],
                line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..]),
            ),
            None => (line, &[][..]),
        };
        match field {
            // The spec appends value and LF to the buffer and drops the last LF at dispatch.
            b"data" => {
                let buffer = data.get_or_insert_with(Vec::new);
                buffer.extend_from_slice(value);
                buffer.push(b'\n');
            }
            b"event" => event_type = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }
    events
}
