//! Marathon's event stream (`/v2/events`): open it, feed its bytes through the framing parser
//! into the one event door callbacks use too (`events.rs`), and keep it alive — a silent stream (no heartbeat)
//! is dropped, and every disconnect is followed by a reconnect after a jittered exponential
//! backoff, forever. Events sent while disconnected are lost, so every (re)connect asks for a
//! full sync; the first scheduled sync waits for the first attempt, so a start syncs once. In
//! `auto` mode a Marathon without a stream makes the bridge use HTTP callbacks.

use alloc::string::String;
use core::time::Duration;

use super::events::EventOrigin;
use super::metrics::StreamStatus;
use super::Bridge;
use crate::config::EventSource;
use crate::io::{Level, Method, Output, Request, RequestId, Target, TransportError};
use crate::marathon::SseParser;

/// The event types the bridge acts on; Marathon ≥ 1.3.7 sends only these, older ones send all and
/// the rest are dropped here.
const STREAM_PATH: &str =
    "/v2/events?event_type=status_update_event&event_type=app_terminated_event";
/// The same with the health events, for flags under which health changes what Consul holds.
const STREAM_WITH_HEALTH_PATH: &str = "/v2/events?event_type=status_update_event&event_type=app_terminated_event&event_type=health_status_changed_event&event_type=instance_health_changed_event";
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum StreamState {
    /// Events come through callbacks only.
    Off,
    Waiting {
        retry_at: Duration,
    },
    Connecting {
        id: RequestId,
        deadline: Duration,
    },
    Open {
        id: RequestId,
        idle_deadline: Duration,
    },
}

#[derive(Debug)]
pub(super) struct EventStream {
    state: StreamState,
    /// Since when the stream is not open; `None` while it is, or before it ever was.
    down_since: Option<Duration>,
    /// Whether it ever connected.
    connected: bool,
    parser: SseParser,
    failures: u32,
    rng: u64,
}

impl EventStream {
    pub(super) fn new(
        source: EventSource,
        now: Duration,
        max_event_bytes: usize,
        seed: u64,
    ) -> Self {
        let state = match source {
            EventSource::Callback => StreamState::Off,
            EventSource::Stream | EventSource::Auto => StreamState::Waiting { retry_at: now },
        };
        EventStream {
            state,
            down_since: None,
            connected: false,
            parser: SseParser::new(max_event_bytes),
            failures: 0,
            rng: seed,
        }
    }

    pub(super) fn next_at(&self) -> Option<Duration> {
        match self.state {
            StreamState::Off => None,
            StreamState::Waiting { retry_at } => Some(retry_at),
            StreamState::Connecting { deadline, .. } => Some(deadline),
            StreamState::Open { idle_deadline, .. } => Some(idle_deadline),
        }
    }

    /// True once callbacks are the event source: configured so, or Marathon has no stream.
    /// Why the stream does not count as up, for `/ready`: it never connected, or it has been
    /// down longer than `grace` (Marathon's heartbeat timeout); a short reconnect is no outage.
    pub(super) fn not_up(&self, now: Duration, grace: Duration) -> Option<&'static str> {
        if !self.connected {
            return Some("the event stream has not connected yet");
        }
        match self.down_since {
            Some(since) if now.saturating_sub(since) > grace => {
                Some("the event stream has been down longer than its heartbeat timeout")
            }
            _ => None,
        }
    }

    /// The stream's state, for the metrics and the instance status.
    pub(super) fn status(&self) -> StreamStatus {
        match self.state {
            StreamState::Off => StreamStatus::Off,
            StreamState::Waiting { .. } => StreamStatus::Waiting,
            StreamState::Connecting { .. } => StreamStatus::Connecting,
            StreamState::Open { .. } => StreamStatus::Open,
        }
    }

    pub(super) fn is_off(&self) -> bool {
        matches!(self.state, StreamState::Off)
    }

    /// True for the id of the stream being opened or open.
    fn is_current(&self, id: RequestId) -> bool {
        matches!(self.state, StreamState::Connecting { id: c, .. } | StreamState::Open { id: c, .. } if c == id)
    }

    /// The wait before the next attempt: doubling from 1 s to 60 s, then a random point in its
    /// upper half so many bridges do not reconnect in step.
    fn backoff(&mut self) -> Duration {
        let doubled = FIRST_BACKOFF
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_BACKOFF);
        self.failures += 1;
        let half_ms = (doubled.as_millis() / 2) as u64;
        Duration::from_millis(half_ms + self.next_random() % (half_ms + 1))
    }

    /// splitmix64: tiny, seedable, and good enough for jitter.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Bridge {
    /// The response head of the stream request `id` arrived.
    pub(super) fn on_stream_open(&mut self, id: RequestId, status: u16) {
        if !matches!(self.stream.state, StreamState::Connecting { id: c, .. } if c == id) {
            return;
        }
        if status == 200 {
            self.stream.state = StreamState::Open {
                id,
                idle_deadline: self.now + self.config.stream_idle_timeout,
            };
            self.stream.parser = SseParser::new(self.config.max_event_bytes);
            self.stream.failures = 0;
            self.stream.connected = true;
            self.stream.down_since = None;
            self.metrics.stream_connected();
            self.log(
                Level::Info,
                String::from("connected to Marathon's event stream"),
            );
            self.request_sync("events may have been missed while the stream was down");
        } else {
            self.out.push_back(Output::CloseStream(id));
            if status == 404 && self.config.events == EventSource::Auto {
                self.stream.state = StreamState::Off;
                let message =
                    "Marathon has no event stream (404 on /v2/events); using HTTP callbacks";
                self.log(Level::Warn, String::from(message));
                self.start_subscription();
                self.release_held_sync();
            } else {
                let hint = match status {
                    401 | 403 => "check the Marathon credentials",
                    404 if self.config.events == EventSource::Stream => {
                        "this Marathon has no event stream; use --events callback"
                    }
                    405 => "something between us and Marathon changed the Accept header",
                    _ => "is Marathon up and elected?",
                };
                self.stream_down(alloc::format!("Marathon answered HTTP {status} ({hint})"));
            }
        }
    }

    /// A chunk of the stream `id`'s body arrived.
    pub(super) fn on_stream_data(&mut self, id: RequestId, data: &[u8]) {
        let StreamState::Open {
            id: open,
            idle_deadline,
        } = &mut self.stream.state
        else {
            return;
        };
        if *open != id {
            return;
        }
        *idle_deadline = self.now + self.config.stream_idle_timeout;
        let skipped_before = self.stream.parser.oversize_skipped();
        let mut events = alloc::vec::Vec::new();
        self.stream.parser.push(data, &mut events);
        let skipped = self.stream.parser.oversize_skipped() - skipped_before;
        if skipped > 0 {
            self.metrics.oversize_events_skipped(skipped);
            let limit = self.config.max_event_bytes;
            self.log(
                Level::Warn,
                alloc::format!("skipped {skipped} stream events larger than {limit} bytes"),
            );
        }
        for event in events {
            self.take_event(EventOrigin::Stream, event.data.as_bytes());
        }
    }

    /// The stream `id` ended, cleanly (`None`) or not.
    pub(super) fn on_stream_closed(&mut self, id: RequestId, error: Option<TransportError>) {
        if self.stream.is_current(id) {
            let why = match error {
                Some(e) => alloc::format!("{e}"),
                None => String::from("Marathon closed it"),
            };
            self.stream_down(why);
        }
    }

    /// Opens the stream when its retry time has come; drops it when it went silent.
    pub(super) fn on_stream_timer(&mut self) {
        match self.stream.state {
            StreamState::Waiting { retry_at } if retry_at <= self.now => {
                let id = self.requests.allocate_id();
                let timeout = self.config.request_timeout;
                let request = Request {
                    id,
                    target: Target::Marathon,
                    method: Method::Get,
                    path_and_query: String::from(if self.health_matters() {
                        STREAM_WITH_HEALTH_PATH
                    } else {
                        STREAM_PATH
                    }),
                    body: None,
                    response_limit: self.config.max_event_bytes,
                    timeout,
                };
                self.debug(alloc::format!("{id} opening the event stream"));
                self.out.push_back(Output::OpenStream(request));
                self.stream.state = StreamState::Connecting {
                    id,
                    deadline: self.now + timeout,
                };
            }
            StreamState::Connecting { id, deadline } if deadline <= self.now => {
                self.out.push_back(Output::CloseStream(id));
                self.stream_down(alloc::format!(
                    "no answer within {} s",
                    self.config.request_timeout.as_secs()
                ));
            }
            StreamState::Open { id, idle_deadline } if idle_deadline <= self.now => {
                self.out.push_back(Output::CloseStream(id));
                let idle = self.config.stream_idle_timeout.as_secs();
                self.stream_down(alloc::format!(
                    "silent for {idle} s, though Marathon sends a heartbeat every 10 s"
                ));
            }
            _ => {}
        }
    }

    /// Standing down as leader: the stream closes, and opens again at once if this instance
    /// leads again.
    pub(super) fn stop_stream(&mut self) {
        if let StreamState::Connecting { id, .. } | StreamState::Open { id, .. } = self.stream.state
        {
            self.out.push_back(Output::CloseStream(id));
        }
        if !self.stream.is_off() {
            self.stream.state = StreamState::Waiting { retry_at: self.now };
            self.stream.failures = 0;
            self.stream.down_since.get_or_insert(self.now);
        }
    }

    fn stream_down(&mut self, why: String) {
        self.stream.down_since.get_or_insert(self.now);
        let wait = self.stream.backoff();
        self.log(
            Level::Warn,
            alloc::format!(
                "event stream down: {why}; reconnecting in {:.1} s",
                wait.as_secs_f32()
            ),
        );
        self.stream.state = StreamState::Waiting {
            retry_at: self.now + wait,
        };
        self.release_held_sync();
    }
}
