//! # consular-sim
//!
//! The simulated world beside `consular-core`, as str0m's netem sits beside its core: in-memory
//! models of Marathon and Consul that answer the same HTTP API the bridge uses, a deterministic
//! [`SimWorld`] that wires one [`consular_core::Bridge`] to them through a virtual network, and the
//! scenario model that property tests and the `world_ops` fuzz target play against it.
//!
//! **What lives here:** [`SimMarathon`] ([`marathon`]: four release lines of Marathon's JSON,
//! events and errors), [`SimConsul`] ([`consul`]: agents, catalog, health, KV, txn, sessions and
//! locks of Consul 1.8.7), the plumbing both share ([`SimResponse`], an order-keeping JSON builder, target and
//! query parsing), [`SimWorld`] ([`world`]), [`SimCluster`] ([`cluster`]: several `--ha` instances) and the
//! [`scenario`] model.
//!
//! **What does not:** sockets, threads, clocks and randomness. The models are pure request
//! handlers (`handle(method, path_and_query, body) -> SimResponse`); serving them over HTTP is
//! `consular-adapters`' `simulator` feature. Nothing in production depends on this crate: the
//! adapters use it only behind `simulator`, the `consular` binary only behind `demo`.
//!
//! `no_std` + `alloc`, like the core; every map is a `BTreeMap`, so two runs fed the same calls
//! give byte-identical answers.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod cluster;
pub mod consul;
pub mod marathon;
pub mod scenario;
mod wire;
pub mod world;

pub use cluster::{AppliedWrite, SimCluster};
pub use consul::{RequestCounts, SessionBehavior, SimConsul, SimKvEntry, SimService, SimSession};
pub use marathon::{
    sse_frame, MarathonVersion, SimApp, SimEvent, SimHealth, SimHealthCheck, SimMarathon,
    SimNetwork, SimPort, SimTask, SimTaskFailure,
};
pub use wire::SimResponse;
pub use world::SimWorld;
