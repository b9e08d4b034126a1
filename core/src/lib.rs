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
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod bridge;
pub mod config;
pub mod consul;
pub mod encoding;
pub mod error;
pub mod io;
pub mod marathon;
pub mod plan;

pub use bridge::{Bridge, Stats};
pub use config::{Config, EventSource, EventsEndpoint};
pub use error::Error;
pub use io::{
    InboundId, Level, LogRecord, Method, Output, Reply, Request, RequestId, Response, Target,
    TransportError,
};
