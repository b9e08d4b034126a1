//! Shared test support for the core's integration tests.

pub mod fixtures;
pub mod transcript;
