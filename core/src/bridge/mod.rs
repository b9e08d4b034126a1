//! The bridge state machine: the one owner type, [`Bridge`], fed by `handle_*` and drained by
//! [`Bridge::poll_output`]. (Skeleton: the workflows land next.)

use alloc::collections::VecDeque;
use core::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::io::{InboundId, Output, RequestId, Response, TransportError};

/// Counters a driver can expose or a test can assert on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Service registrations that succeeded.
    pub registered: u64,
    /// Service deregistrations that succeeded (including "already gone").
    pub deregistered: u64,
    /// KV keys written or deleted.
    pub kv_writes: u64,
    /// Syncs that completed every step.
    pub syncs_completed: u64,
    /// Syncs that stopped or skipped a step because a read or write failed.
    pub syncs_failed: u64,
    /// Responses for requests the core had already given up on.
    pub late_responses: u64,
}

/// A Marathon→Consul bridge with no IO. Feed it with `handle_*`, drain it with
/// [`Bridge::poll_output`].
#[derive(Debug)]
pub struct Bridge {
    config: Config,
    now: Duration,
    out: VecDeque<Output>,
    stats: Stats,
}

impl Bridge {
    /// A bridge that starts at `now`: it queues the callback subscription and, with a sync
    /// interval, the first sync.
    pub fn new(config: Config, now: Duration) -> Self {
        Bridge {
            config,
            now,
            out: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// An inbound HTTP request (any method) for `path` (no query) with `body` arrived.
    pub fn handle_inbound(
        &mut self,
        now: Duration,
        id: InboundId,
        path: &str,
        body: &[u8],
    ) -> Result<(), Error> {
        let _ = (now, id, path, body);
        Ok(())
    }

    /// The outcome of a request from [`Output::Request`].
    pub fn handle_response(
        &mut self,
        now: Duration,
        id: RequestId,
        result: Result<Response, TransportError>,
    ) {
        let _ = (now, id, result);
    }

    /// Time has reached `now` (early or repeated calls are harmless).
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
    }

    /// The next thing to do. Call until it returns [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        self.out.pop_front().unwrap_or(Output::Timeout(None))
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        0
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration this bridge runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
