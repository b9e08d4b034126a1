//! # consular-adapters
//!
//! Real IO for the sans-IO `consular-core`: the run loop that owns the [`consular_core::Bridge`]
//! ([`driver`]), outbound HTTP with surf over an async-h1 + rustls 0.23 backend ([`outbound`],
//! [`h1_client`], [`tls`], [`endpoints`]), the inbound tide server ([`server`]), and `/metrics` as Prometheus text ([`metrics`]). Both HTTP
//! sides read message heads through [`http_guard`] first: peers in either direction are untrusted.
//!
//! The adapters translate and never decide: which requests to send, how to answer an inbound
//! request (including `/` and 404s) and when to retry is the core's business. CLI parsing and
//! logging setup live in the `consular` binary.
//!
//! Two ways in: [`run`] (server + loop, as the binary uses it) and [`drive`] (the loop alone,
//! fed by any channel of [`server::InboundRequest`]s).
//!
//! Feature `simulator` (off by default, never in a production build) adds `simulator`: the
//! simulated Marathon and Consul of `consular-sim` served over HTTP on loopback, and the HTTP/1.1
//! helper the simulators and the workspace's tests share.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod driver;
pub mod endpoints;
pub mod h1_client;
pub mod http_guard;
pub mod metrics;
pub mod outbound;
pub mod server;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod tls;

pub use driver::{drive, run, DriverError, DriverSettings};
pub use endpoints::{BaseUrl, EndpointError, Endpoints};
pub use outbound::Outbound;
