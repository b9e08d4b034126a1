//! [`ConsulEngine`]: the Consul side of the bridge on its own, for bridges from other sources
//! (another scheduler, a file, a service registry) to Consul. Give it the services and KV entries
//! Consul should hold ([`DesiredState`]); it reads the catalog, each agent and the KV tree, and
//! writes only the difference, with the same rules as the Marathon bridge: registrations on each
//! service's agent (cluster members only, `fallback` to the main Consul), ownership by
//! registration id (only our services and our keys are ever removed), purge per node, failed
//! nodes left alone, KV in index-checked batches, bounded in-flight requests per agent.
//!
//! It is a [`Bridge`] with Marathon switched off: no event stream, no callback, no Marathon read.
//! Driving it is the same contract (see the crate docs): `handle_*` in, [`ConsulEngine::poll_output`]
//! out until [`Output::Timeout`].

use alloc::string::String;
use core::time::Duration;

use crate::bridge::{Bridge, Stats};
use crate::config::{Config, EventSource};
use crate::io::{Output, RequestId, Response, TransportError};
use crate::plan::DesiredState;

/// How a [`ConsulEngine`] writes: the Consul half of [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Written into the `consular-reg-id=<id>` tag and the KV mark; only what carries it is ever
    /// removed.
    pub registration_id: String,
    /// Deregister our services and delete our KV entries that the desired state no longer has.
    pub purge: bool,
    /// Timeout of every request.
    pub request_timeout: Duration,
    /// Register on the main Consul when a service's agent fails or is not a cluster member.
    pub fallback: bool,
    /// Timeout of the fallback registration.
    pub fallback_timeout: Duration,
    /// Requests in flight at most, over all targets.
    pub max_in_flight: usize,
    /// Requests in flight at most to any one agent.
    pub max_in_flight_per_target: usize,
    /// Emit one debug record per request.
    pub debug: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let bridge = Config::default();
        EngineConfig {
            registration_id: bridge.registration_id,
            purge: true,
            request_timeout: bridge.request_timeout,
            fallback: bridge.fallback,
            fallback_timeout: bridge.fallback_timeout,
            max_in_flight: bridge.max_in_flight,
            max_in_flight_per_target: bridge.max_in_flight_per_target,
            debug: bridge.debug,
        }
    }
}

/// Keeps Consul in step with a [`DesiredState`] given by its owner. No IO: see the module note.
#[derive(Debug)]
pub struct ConsulEngine {
    bridge: Bridge,
}

impl ConsulEngine {
    /// An idle engine at `now`; it sends nothing until [`ConsulEngine::sync`].
    pub fn new(config: EngineConfig, now: Duration) -> Self {
        let config = Config {
            registration_id: config.registration_id,
            callback_url: None,
            sync_interval: Duration::ZERO,
            purge: config.purge,
            request_timeout: config.request_timeout,
            fallback: config.fallback,
            fallback_timeout: config.fallback_timeout,
            max_in_flight: config.max_in_flight,
            max_in_flight_per_target: config.max_in_flight_per_target,
            debug: config.debug,
            events: EventSource::Callback,
            ..Config::default()
        };
        ConsulEngine {
            bridge: Bridge::new(config, now),
        }
    }

    /// Makes Consul hold `desired`: a sync starts now, or right after the one running (with the
    /// latest state given by then).
    pub fn sync(&mut self, now: Duration, desired: DesiredState) {
        self.bridge.handle_desired(now, desired);
    }

    /// The outcome of a request from [`Output::Request`].
    pub fn handle_response(
        &mut self,
        now: Duration,
        id: RequestId,
        result: Result<Response, TransportError>,
    ) {
        self.bridge.handle_response(now, id, result);
    }

    /// Time has reached `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.bridge.handle_timeout(now);
    }

    /// The next thing to do; call until it returns [`Output::Timeout`]. Only `Request`, `Log`
    /// and `Timeout` ever come out.
    pub fn poll_output(&mut self) -> Output {
        self.bridge.poll_output()
    }

    /// True while a sync runs.
    pub fn is_syncing(&self) -> bool {
        self.bridge.is_syncing()
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        self.bridge.stats()
    }
}
