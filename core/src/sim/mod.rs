//! In-memory models of Marathon and Consul that answer the same HTTP API the bridge uses, for
//! deterministic simulation tests, fuzzing, the HTTP simulators and `consular demo`.

pub mod consul;
pub mod marathon;
