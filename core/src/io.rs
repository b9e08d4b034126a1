//! The data that crosses the core's boundary: requests it asks the driver to send, the responses
//! the driver feeds back, replies to inbound HTTP requests, log records and wake-up times.
//!
//! Everything here is plain owned data. Nothing in this file decides anything; the decisions live
//! in [`crate::bridge`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

/// Identifies one outbound request. Allocated by the core, never reused within one [`crate::Bridge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The raw number, for logs and for drivers that key their own tables by it.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Identifies one inbound HTTP request. Chosen by the driver, which owns the reply channel; the core
/// answers it with exactly one [`Output::Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboundId(pub u64);

/// Where a request goes. The core names the logical peer; the driver owns schemes, ports, TLS and
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The Marathon API (`--marathon`).
    Marathon,
    /// The main Consul endpoint (`--consul`): KV, catalog, and the registration fallback.
    Consul,
    /// The Consul agent on host `.0` (lower-cased), reached with the `--consul` scheme and port.
    Agent(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Marathon => f.write_str("marathon"),
            Target::Consul => f.write_str("consul"),
            Target::Agent(host) => write!(f, "agent {host}"),
        }
    }
}

/// HTTP method of an outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `PUT`
    Put,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP request the driver must send, then answer with
/// [`crate::Bridge::handle_response`] carrying the same [`RequestId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Correlates the response.
    pub id: RequestId,
    /// Which peer to send it to.
    pub target: Target,
    /// HTTP method.
    pub method: Method,
    /// Path and query, already percent-encoded, starting with `/`.
    pub path_and_query: String,
    /// JSON body, if any. Sent with `Content-Type: application/json`.
    pub body: Option<Vec<u8>>,
    /// Largest response body the driver may read for this request; the driver must enforce it. A
    /// longer one (by its `Content-Length` or as it arrives) is reported as
    /// [`TransportError::TooLarge`] without reading the rest. For a stream, it bounds nothing:
    /// events are bounded by the core.
    pub response_limit: usize,
    /// Give up after this long (connect, send and the whole response; for a stream, its head) and
    /// report [`TransportError::Timeout`]. The core also enforces it, one second later for a
    /// request and at once for a stream, so a driver that never answers cannot stall the bridge.
    pub timeout: Duration,
}

/// What came back for a [`Request`]: any status, with the body read to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The response body.
    pub body: Vec<u8>,
}

/// Why a [`Request`] got no HTTP response at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No response within the request's timeout.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made (refused, unreachable, DNS failure, TLS handshake).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection broke or the response could not be read.
    #[error("{0}")]
    Io(String),
    /// The response body was longer than [`Request::response_limit`].
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
}

/// The answer to an inbound HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body, as [`Reply::kind`] says.
    pub body: Vec<u8>,
    /// What the body is.
    pub kind: ReplyKind,
}

impl Reply {
    /// A reply with a JSON body.
    pub fn json(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body,
            kind: ReplyKind::Json,
        }
    }
}

/// What a [`Reply`]'s body holds, and so its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// JSON, sent with `Content-Type: application/json`.
    Json,
    /// The bridge's metrics (`/metrics`). The core leaves the body empty: the driver fills it
    /// with [`crate::Bridge::metrics`] as they stand when it drains the reply, in its exposition
    /// format (the adapters write Prometheus text, `text/plain; version=0.0.4`).
    Metrics,
}

/// Severity of a [`LogRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed and needs attention.
    Error,
    /// Something unexpected that the bridge worked around.
    Warn,
    /// One line per registration, deregistration and sync summary.
    Info,
    /// Request-level detail, emitted only with [`crate::Config::debug`].
    Debug,
}

/// A log line the driver should write. The core never formats timestamps; the driver adds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Severity.
    pub level: Level,
    /// One line of text, without a trailing newline.
    pub message: String,
}

/// What [`crate::Bridge::poll_output`] hands out. Drain until [`Output::Timeout`].
///
/// What a driver must do with each is [the driver contract](crate#the-driver-contract); in short:
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Send this request now, concurrently with any others in flight (the core keeps within its
    /// own limits), and report the outcome once with [`crate::Bridge::handle_response`]: any
    /// status, redirects included, as a [`Response`]; a body over [`Request::response_limit`] as
    /// [`TransportError::TooLarge`]; nothing within [`Request::timeout`] as
    /// [`TransportError::Timeout`] (the core gives up itself one second after that).
    Request(Request),
    /// Answer the inbound request `.0` (an id the driver chose) with `.1`, as JSON. Each inbound
    /// request gets exactly one; drop it if the client is gone.
    Reply(InboundId, Reply),
    /// Open Marathon's event stream: send this `GET` with `Accept: text/event-stream`, then report
    /// [`crate::Bridge::handle_stream_open`] with the status, each body chunk with
    /// [`crate::Bridge::handle_stream_data`], and the end with [`crate::Bridge::handle_stream_closed`].
    /// `timeout` bounds the wait for the response head only; `response_limit` bounds nothing. A
    /// redirect is the driver's to follow, only to the configured Marathon or the leader it names
    /// at `/v2/leader` and never from https to http; one it refuses is a
    /// [`TransportError::Connect`].
    OpenStream(Request),
    /// Drop the stream opened by the request with this id; report nothing more for it.
    CloseStream(RequestId),
    /// Write this log line (adding a timestamp).
    Log(LogRecord),
    /// Nothing more to do now. Call [`crate::Bridge::handle_timeout`] at this time (measured like
    /// `now`), or earlier if an input arrives. `None` means no timer is armed: wait for input.
    Timeout(Option<Duration>),
}
