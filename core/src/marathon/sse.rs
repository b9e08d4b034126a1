//! Server-sent-events framing for Marathon's `/v2/events` stream: bytes in any chunking, events
//! out. Follows the W3C rules (CRLF, LF or lone CR line ends; `:` comments; multi-line `data:`
//! joined with `\n`; a blank line dispatches). An event larger than the limit is skipped and
//! counted, never buffered without bound. What an event means is parsed elsewhere ([`super::parse_event`]).

use alloc::string::String;
use alloc::vec::Vec;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (Marathon 0.11+ sends the event type here).
    pub event_type: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental SSE parser with a bound on the size of one event.
#[derive(Debug, Clone)]
pub struct SseParser {
    max_event_bytes: usize,
    line: Vec<u8>,
    /// The current line has bytes, kept or skipped: only a truly blank line dispatches.
    line_nonempty: bool,
    /// The previous chunk ended in CR: a leading LF in the next one belongs to it.
    after_cr: bool,
    event_type: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    /// The event being read is over the limit: drop everything up to its blank line.
    skipping: bool,
    oversize: u64,
}

impl SseParser {
    /// A parser that skips events (and lines) larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            line_nonempty: false,
            after_cr: false,
            event_type: None,
            data: Vec::new(),
            has_data: false,
            skipping: false,
            oversize: 0,
        }
    }

    /// Events skipped because they were larger than the limit.
    pub fn oversize_skipped(&self) -> u64 {
        self.oversize
    }

    /// Feeds the next chunk; complete events are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) {
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = bytes.split_at(end);
            self.extend_line(head);
            let crlf = tail.starts_with(b"\r\n");
            if tail[0] == b'\r' && tail.len() == 1 {
                self.after_cr = true;
            }
            bytes = &tail[if crlf { 2 } else { 1 }..];
            self.end_line(out);
        }
        self.extend_line(bytes);
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        self.line_nonempty |= !bytes.is_empty();
        if self.skipping {
            return;
        }
        if self.line.len() + self.data.len() + bytes.len() > self.max_event_bytes {
            self.start_skipping();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn start_skipping(&mut self) {
        self.skipping = true;
        self.oversize += 1;
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.event_type = None;
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if !core::mem::take(&mut self.line_nonempty) {
            if self.skipping {
                self.skipping = false;
            } else if self.has_data {
                let data = String::from_utf8_lossy(&self.data).into_owned();
                out.push(SseEvent {
                    event_type: self.event_type.take(),
                    data,
                });
            }
            self.data.clear();
            self.has_data = false;
            self.event_type = None;
            return;
        }
        if self.skipping {
            return;
        }
        let line = core::mem::take(&mut self.line);
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // a comment
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event_type = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry and unknown fields: Marathon sends none that matter
        }
        self.line = line;
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]], max: usize) -> (Vec<SseEvent>, u64) {
        let mut parser = SseParser::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
        }
        (out, parser.oversize_skipped())
    }

    fn event(event_type: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event_type: event_type.map(String::from),
            data: data.into(),
        }
    }

    #[test]
    fn marathon_framing_with_crlf_and_heartbeats() {
        let (events, _) = parse(
            &[
                b"event: status_update_event\r\ndata: {\"a\":1}\r\n\r\n",
                b"\r",
                b"\n",
                b"\r\n:comment\r\ndata:x\r\n\r\n",
            ],
            1024,
        );
        assert_eq!(
            events,
            [
                event(Some("status_update_event"), "{\"a\":1}"),
                event(None, "x")
            ]
        );
    }

    #[test]
    fn multi_line_data_and_lone_cr() {
        let (events, _) = parse(&[b"data: a\rdata: b\r\rdata:c\n\n"], 1024);
        assert_eq!(events, [event(None, "a\nb"), event(None, "c")]);
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end() {
        let (events, _) = parse(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"], 1024);
        assert_eq!(events, [event(None, "a\nb")]);
    }

    #[test]
    fn an_empty_chunk_keeps_a_pending_cr() {
        let (events, _) = parse(&[b"data: a\r", b"", b"\ndata: b\n\n"], 1024);
        assert_eq!(events, [event(None, "a\nb")]);
    }

    #[test]
    fn an_oversize_event_is_skipped_to_its_blank_line_only() {
        let big = alloc::format!(
            "data: {}\ndata: tail\nevent: x\n\ndata: small\n\n",
            "x".repeat(100)
        );
        let (events, skipped) = parse(&[big.as_bytes()], 50);
        assert_eq!(events, [event(None, "small")]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn oversize_events_are_skipped_and_the_stream_goes_on() {
        let big = alloc::format!(
            "event: deployment_info\ndata: {}\n\ndata: small\n\n",
            "x".repeat(100)
        );
        let (events, skipped) = parse(&[big.as_bytes()], 50);
        assert_eq!(events, [event(None, "small")]);
        assert_eq!(skipped, 1);
    }
}
