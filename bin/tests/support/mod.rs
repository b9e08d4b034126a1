//! Helpers shared by the `consular` binary's integration tests; a test file pulls them in with `mod support;`.
//!
//! * [`consul`]: a real Consul 1.8.7 cluster on loopback (a dev server and client agents on 127.0.0.2, 127.0.0.3 …)
//!   plus small blocking HTTP helpers for talking to it.
//! * [`bridge`]: the real `consular` binary as a subprocess (free port, log captured to a temp file and its tail
//!   printed when a test fails, killed on drop), its memory as the kernel reports it, and runs that must exit.
//! * [`world`]: one test's Consul cluster, Marathon simulator and bridge together, with the waits tests share.
//! * [`pki`]: certificates made at test time (the adapters' test helper, one file for both).
//! * [`raw`]: raw TCP on both sides: hand-written requests to the bridge, and [`raw::FakePeer`], a scripted server
//!   posing as a hostile Marathon, a recorder, or an agent that never answers.

// Each test file is its own crate and uses only part of these helpers; without this, every unused one warns.
#![allow(dead_code)]

pub mod bridge;
pub mod consul;
#[path = "../../../adapters/tests/common/pki.rs"]
pub mod pki;
pub mod raw;
pub mod world;
