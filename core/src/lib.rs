//! # consular-core
//!
//! A sans-IO state machine that keeps Consul's service catalog and KV in step with Marathon.
//!
//! It consumes inputs — inbound HTTP requests (Marathon's event callbacks), responses to the HTTP
//! requests it asked for, the bytes of Marathon's event stream, and timer ticks carrying `now` —
//! and emits [`Output`]s: requests to send, streams to open or drop, replies, log records and the
//! time of its next wake-up.
//!
//! **In scope:** deciding what to register, deregister, write and delete, in which order, with which
//! bodies; parsing Marathon and Consul payloads; timeouts, retries and purge safety.
//!
//! **Out of scope:** sockets, HTTP, TLS, URLs, credentials, clocks, threads, async and randomness.
//! The `consular-adapters` crate drives this core with real IO.
//!
//! ## Run loop
//!
//! ```
//! use consular_core::{Bridge, Config, Output};
//! use core::time::Duration;
//!
//! let mut bridge = Bridge::new(Config::default(), Duration::ZERO);
//! loop {
//!     match bridge.poll_output() {
//!         Output::Request(req) => { /* send it; later: bridge.handle_response(now, req.id, result) */ }
//!         Output::Reply(id, reply) => { /* answer inbound request `id` */ }
//!         Output::OpenStream(req) => { /* open Marathon's event stream; feed handle_stream_* */ }
//!         Output::CloseStream(id) => { /* drop that stream */ }
//!         Output::Log(record) => { /* write it */ }
//!         Output::Timeout(at) => {
//!             // Wait for input or until `at`, then call one `handle_*` and drain again.
//!             break;
//!         }
//!     }
//! }
//! ```
//!
//! ## Invariants
//!
//! > After every `handle_*` call, drain [`Bridge::poll_output`] until [`Output::Timeout`].
//! > `now` never goes backwards (earlier values are clamped). Every inbound request gets exactly one
//! > [`Output::Reply`]. The core never panics on any input.
//!
//! ## The driver contract
//!
//! What an embedder (a *driver*: the code that owns the [`Bridge`] and does its IO) must do with
//! each [`Output`]. `consular-adapters`' `driver` module and the `blocking_loop` example both
//! follow it, and each says how in its module note.
//!
//! - **[`Output::Request`]: send it now, concurrently with everything else in flight.** Every
//!   request the core hands out may run at the same time as all the others; the core enforces its
//!   own in-flight limits ([`Config::max_in_flight`], [`Config::max_in_flight_per_target`]) and
//!   only hands out what fits, so a driver neither queues nor serializes them. Send the body (if
//!   any) as `Content-Type: application/json`, to the peer named by [`Request::target`], with the
//!   driver's own scheme, port and credentials. Report exactly one [`Bridge::handle_response`] per
//!   request id: any HTTP status is a [`Response`] (a `3xx` included: ordinary requests never follow
//!   redirects, the core decides what a status means); no response at all is a [`TransportError`].
//! - **Enforce [`Request::response_limit`].** A body longer than the limit, by its
//!   `Content-Length` or as it arrives, is reported as [`TransportError::TooLarge`] without reading
//!   the rest; the core never sees more than it asked for.
//! - **Enforce [`Request::timeout`].** It bounds the whole exchange (connect, send, the whole
//!   response); past it the driver reports [`TransportError::Timeout`]. The core does not rely on
//!   that alone: it gives up on a request itself after its timeout plus a 1 s grace, as if the
//!   driver had reported `Timeout`, and counts an answer that comes later in
//!   [`Metrics::late_responses`].
//! - **[`Output::OpenStream`]: open Marathon's event stream and report it piece by piece.** Send
//!   the `GET` with `Accept: text/event-stream`; [`Request::timeout`] bounds the wait for the
//!   response head only (the core closes the stream itself at exactly that time), and
//!   [`Request::response_limit`] bounds nothing (events are bounded by the core). Report the head
//!   with [`Bridge::handle_stream_open`], every body chunk as it arrives with
//!   [`Bridge::handle_stream_data`], and the end with [`Bridge::handle_stream_closed`].
//! - **A redirect of the stream is the driver's to follow**, because only the driver knows URLs and
//!   credentials (a standby Marathon sends the stream to its leader): follow it only to the
//!   configured Marathon's host and port, or to the leader the configured Marathon names at
//!   `GET /v2/leader`; never from https to http; a handful of hops at most. A redirect it will not
//!   follow is reported as a [`TransportError::Connect`] saying why (the refused host gets no
//!   request and no credentials); the core then retries later as for any failed connect.
//! - **[`Output::CloseStream`]: drop that stream's connection** and report nothing more for it
//!   (anything still reported for its id is ignored).
//! - **Inbound requests: the ids are the driver's.** Pick an [`InboundId`] that is not open yet
//!   (reusing an open one is [`Error::DuplicateInbound`]) and keep the client's reply channel under
//!   it. Pass [`Bridge::handle_inbound`] the request target as received, **path and query**,
//!   still percent-encoded (`/events?registration=…&secret=…`: the core checks the query), with the
//!   body of any method. Each id gets exactly one [`Output::Reply`], possibly after other outputs
//!   and inputs; write it with its status and `Content-Type: application/json` — or, for a
//!   [`ReplyKind::Metrics`] reply, with [`Bridge::metrics`] as they stand then in the driver's
//!   exposition format — or drop it if the client went away. Bounding inbound bodies, connections and slow clients is the driver's job:
//!   the core sees no sockets.
//! - **[`Output::Log`]: write the line**, adding the timestamp (the core has no clock).
//! - **[`Output::Timeout`]: the drain is done.** `Some(at)`: wait for the next input or until
//!   `at` (on the clock of `now`), whichever comes first, and on `at` call
//!   [`Bridge::handle_timeout`]; `None`: no timer is armed, wait for input only. Calling
//!   `handle_timeout` early or twice is harmless; waking late only delays the core's timers.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod bridge;
pub mod config;
pub mod consul;
pub mod encoding;
pub mod engine;
pub mod error;
pub mod io;
pub mod marathon;
pub mod plan;

pub use bridge::metrics::Metrics;
pub use bridge::{Bridge, Role};
pub use config::{
    AddressMode, Advertised, Config, EventSource, EventsEndpoint, FallbackMode, HaConfig,
    HealthChecks, MarathonConsulLeftovers, Placement, RegisterWhen, WriteMode,
};
pub use engine::ConsulEngine;
pub use error::Error;
pub use io::{
    InboundId, Level, LogRecord, Method, Output, Reply, ReplyKind, Request, RequestId, Response,
    Target, TransportError,
};
