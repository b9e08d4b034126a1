//! Fuzz harnesses for `consular-core`, shared by the cargo-fuzz targets in `fuzz_targets/` (each
//! a few lines that call in here) so the harness code is ordinary, testable Rust.
//!
//! - [`choices`]: the byte-driven decision reader every harness decodes its input with;
//! - [`bridge_ops`]: arbitrary input sequences against one bridge, with ownership, reply,
//!   in-flight and liveness checks after every step;
//! - [`world_ops`]: the simulated world driven by fuzz-chosen ops, checking ownership and
//!   convergence as the quickcheck properties do;
//! - [`sse`]: chunking invariance and the size bound of the event-stream parser;
//! - [`parsers`]: every Marathon and Consul response parser on arbitrary bytes.
#![forbid(unsafe_code)]

pub mod bridge_ops;
pub mod choices;
pub mod parsers;
pub mod sse;
pub mod world_ops;
