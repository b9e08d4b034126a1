//! In-memory models of Marathon and Consul that answer the same HTTP API the bridge uses, for
//! deterministic simulation tests, fuzzing, the HTTP simulators and `consular demo`.

pub mod consul;
pub mod marathon;
pub mod scenario;

pub use consul::{KvEntry, RequestCounts, SimConsul, SimService};
pub use marathon::{
    sse_frame, MarathonVersion, SimApp, SimEvent, SimHealth, SimMarathon, SimResponse, SimTask,
    SimTaskFailure,
};

pub mod world;
