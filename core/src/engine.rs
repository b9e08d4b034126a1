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

use core::time::Duration;

use crate::bridge::metrics::Metrics;
use crate::bridge::Bridge;
use crate::config::{Config, EventSource};
use crate::io::{Output, RequestId, Response, TransportError};
use crate::plan::DesiredState;

/// Keeps Consul in step with a [`DesiredState`] given by its owner. No IO: see the module note.
#[derive(Debug)]
pub struct ConsulEngine {
    bridge: Bridge,
}

impl ConsulEngine {
    /// An idle engine at `now`; it sends nothing until [`ConsulEngine::sync`]. Of `config`, the
    /// Consul half counts (`registration_id`, `purge`, timeouts, `fallback`, in-flight limits,
    /// `debug`, `max_listing_bytes`, `marathon_consul`); everything about Marathon is switched
    /// off.
    pub fn new(config: Config, now: Duration) -> Self {
        let consul_only = Config {
            callback_url: None,
            sync_interval: Duration::ZERO,
            events: EventSource::Callback,
            ..config
        };
        ConsulEngine {
            bridge: Bridge::new(consul_only, now),
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

    /// Counters since start (see [`Bridge::metrics`]).
    pub fn metrics(&self) -> &Metrics {
        self.bridge.metrics()
    }
}
