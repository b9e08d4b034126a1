//! The run loop: the one owner of the [`Bridge`]. It drains the core's outputs, sends requests
//! and follows event streams concurrently, routes replies to the waiting server handlers, writes
//! log records, and feeds exactly one input back per wake-up. The tasks report to the loop over a
//! bounded queue, so a stream that arrives faster than the core consumes it is read no faster.
//!
//! [`run`] binds the inbound server and drives the bridge; [`drive`] is the loop alone, for
//! callers that bring their own inbound channel (tests, embedders). Decisions stay in the core;
//! sending lives in [`crate::outbound`], the server in [`crate::server`].
//!
//! # How it keeps the core's driver contract
//!
//! (See `consular_core`'s crate docs, "The driver contract".)
//!
//! - **Concurrency:** every [`Output::Request`] and [`Output::OpenStream`] becomes its own task
//!   at once; nothing is queued here, the core's in-flight limits are the only ones.
//! - **Response limits and timeouts:** [`Outbound::execute`] hands [`Request::response_limit`]
//!   to the HTTP client, which refuses a longer body as `TooLarge` before reading it, and bounds
//!   the whole exchange by [`Request::timeout`] (`Timeout`); for a stream the timeout bounds the
//!   head and the limit nothing.
//! - **Stream redirects:** [`Outbound::open_stream`] follows one only to the configured Marathon
//!   or the leader it names at `/v2/leader`, never from https to http, at most 5 hops, and reports
//!   a refusal as `Connect`. Ordinary requests follow no redirect: a `3xx` is a response.
//! - **[`Output::CloseStream`]:** drops the stream's task, which closes its connection; what the
//!   task had already queued may still be fed, and the core ignores it, as the contract allows.
//! - **Inbound:** ids are a counter of this loop, so never reused; the server's reply channel
//!   waits under the id until the core's one [`Output::Reply`] (dropped if the client left);
//!   [`Bridge::handle_inbound`] gets the target as received, path and query. Body size,
//!   connection count and slow clients are bounded by the server ([`ServerLimits`]).
//! - **`/metrics`:** a [`ReplyKind::Metrics`] reply gets [`Bridge::metrics`] rendered by
//!   [`crate::metrics::render`] as they stand when it is drained, with the wall time the loop
//!   started as the origin of the core's clock.
//! - **[`Output::Timeout`]:** the loop sleeps until that time (forever for `None`) or the next
//!   input, whichever comes first, and feeds exactly one input per wake-up.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::{Duration, Instant, SystemTime};

use consular_core::{
    Bridge, InboundId, Level, Output, Reply, ReplyKind, Request, RequestId, Response,
    TransportError,
};
use smol::channel::{self, Receiver, Sender};
use smol::{future, Executor, Task, Timer};

use crate::endpoints::Endpoints;
use crate::metrics;
use crate::outbound::Outbound;
use crate::server::{self, BindError, InboundRequest, ServerLimits};
use crate::tls::{self, PeerKind, TlsError, TlsOptions};

/// `log` target of the core's records.
const CORE_LOG_TARGET: &str = "consular";
/// Task events queued at most between the request and stream tasks and the loop. A stream task
/// that reads faster than the core consumes waits for room here, so its socket is not read and TCP
/// pushes back on Marathon, instead of the queue growing (a 512 MiB event line once took 535 MB).
/// At [`crate::outbound`]'s 16 KiB pieces this holds about 1 MiB of stream data.
const TASK_EVENT_QUEUE: usize = 64;

/// How the driver reaches the world.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// Marathon, Consul and the agents.
    pub endpoints: Endpoints,
    /// TLS towards Consul and its agents.
    pub consul_tls: TlsOptions,
    /// TLS towards Marathon.
    pub marathon_tls: TlsOptions,
    /// Interface to listen on (`--host`).
    pub listen_host: String,
    /// Port to listen on (`--port`); 0 picks a free one.
    pub listen_port: u16,
    /// Limits of the inbound server: open connections, read timeouts. Its `max_body_bytes` is
    /// replaced by the bridge's `Config::max_event_bytes`: one limit for an event, whether it
    /// comes as a callback body or as a stream frame.
    pub server: ServerLimits,
}

/// Why the driver stopped without being asked to.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The inbound server could not listen.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The TLS configuration of one kind of peer (a CA file, a client certificate …) is unusable.
    #[error("TLS towards {peer}: {error}")]
    Tls {
        /// Whose settings they are.
        peer: PeerKind,
        /// What is wrong with them.
        error: TlsError,
    },
    /// The inbound server stopped accepting connections.
    #[error("the HTTP server stopped: {0}")]
    Server(io::Error),
    /// The driver broke the core's API contract (a bug in this crate).
    #[error("core API misuse: {0}")]
    Core(#[from] consular_core::Error),
}

/// Listens on `settings.listen_host:listen_port`, then drives `bridge` until `shutdown` completes
/// (`Ok`) or the server fails. Create the bridge with `now = Duration::ZERO` just before calling
/// this: the driver's clock starts here.
pub async fn run(
    bridge: Bridge,
    settings: DriverSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let tls_for = |peer: PeerKind, options: &TlsOptions| {
        tls::client_config(options).map_err(|error| DriverError::Tls { peer, error })
    };
    let outbound = Outbound::new(
        settings.endpoints,
        tls_for(PeerKind::Consul, &settings.consul_tls)?,
        tls_for(PeerKind::Marathon, &settings.marathon_tls)?,
    );
    // After the TLS files: a bad one is reported as such, whatever the port.
    let listener = server::bind(&settings.listen_host, settings.listen_port)?;
    // Bounded by the server's connection cap: each connection waits for its reply.
    let (inbound_tx, inbound_rx) = channel::unbounded();
    let limits = ServerLimits {
        max_body_bytes: bridge.config().max_event_bytes,
        ..settings.server
    };
    let serving = async {
        let stopped = server::serve(listener, inbound_tx, limits).await;
        Err(DriverError::Server(stopped.err().unwrap_or_else(|| {
            io::Error::other("the listener stopped accepting")
        })))
    };
    future::or(drive(bridge, outbound, inbound_rx, shutdown), serving).await
}

/// What a spawned request or stream task reports back to the loop.
#[derive(Debug)]
enum TaskEvent {
    Response(RequestId, Result<Response, TransportError>),
    StreamOpen(RequestId, u16),
    StreamData(RequestId, Vec<u8>),
    StreamClosed(RequestId, Option<TransportError>),
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Task(TaskEvent),
    Inbound(InboundRequest),
    InboundClosed,
    Deadline,
}

/// Everything the loop owns besides the bridge.
struct Io<'a> {
    /// Runs request and stream tasks; owned by the loop, so they all end with it.
    tasks: &'a Executor<'static>,
    outbound: Outbound,
    events: Sender<TaskEvent>,
    /// Reply channels of inbound requests the core has not answered yet.
    waiting: HashMap<InboundId, Sender<Reply>>,
    /// Open event streams; dropping a task cancels it and closes its connection.
    streams: HashMap<RequestId, Task<()>>,
    /// The wall time at which the bridge's clock was zero, for the timestamps of `/metrics`.
    started: SystemTime,
}

/// How long the bridge's last requests may take after the shutdown signal.
const RESIGN_TIME: Duration = Duration::from_secs(2);

/// Drives `bridge` with requests from `inbound` until `shutdown` completes (and the bridge's last
/// requests, [`Bridge::handle_shutdown`]'s, are answered, for at most two seconds). Requests go out
/// through `outbound`, concurrently; they are cancelled when this returns.
pub async fn drive(
    mut bridge: Bridge,
    outbound: Outbound,
    inbound: Receiver<InboundRequest>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let epoch = Instant::now();
    let started = SystemTime::now();
    let tasks = Executor::new();
    // Bounded, and nothing can deadlock on it: only tasks send, and the loop below receives
    // whenever it waits, so a waiting sender always gets its turn.
    let (events_tx, events_rx) = channel::bounded(TASK_EVENT_QUEUE);
    let mut io = Io {
        tasks: &tasks,
        outbound,
        events: events_tx,
        waiting: HashMap::new(),
        streams: HashMap::new(),
        started,
    };
    let mut next_inbound = 0u64;
    let mut inbound_open = true;
    let mut shutdown = pin!(shutdown);
    // After the shutdown signal: until when the bridge's last requests (an `--ha` leader
    // releasing its key) may take.
    let mut resigning_until: Option<Duration> = None;

    let run_loop = async {
        loop {
            let deadline = io.drain(&mut bridge);
            if bridge.is_done() {
                return Ok(());
            }
            if let Some(until) = resigning_until {
                if bridge.in_flight() == 0 || epoch.elapsed() >= until {
                    return Ok(());
                }
            }
            let deadline = match resigning_until {
                Some(until) => Some(deadline.map_or(until, |d| d.min(until))),
                None => deadline,
            };
            let resigning = resigning_until.is_some();
            // Shutdown first; the rest in random order, so a stream that keeps the queue full
            // can starve neither inbound requests nor the core's deadlines.
            let wake = future::or(
                async {
                    if resigning {
                        // The signal came; its future is done and must not be polled again.
                        return future::pending().await;
                    }
                    shutdown.as_mut().await;
                    Wake::Shutdown
                },
                future::race(
                    async {
                        // `io.events` lives as long as this loop, so `recv` cannot fail.
                        match events_rx.recv().await {
                            Ok(event) => Wake::Task(event),
                            Err(_) => future::pending().await,
                        }
                    },
                    future::race(
                        async {
                            if !inbound_open {
                                return future::pending().await;
                            }
                            match inbound.recv().await {
                                Ok(request) => Wake::Inbound(request),
                                Err(_) => Wake::InboundClosed,
                            }
                        },
                        async {
                            sleep_until(epoch, deadline).await;
                            Wake::Deadline
                        },
                    ),
                ),
            )
            .await;
            let now = epoch.elapsed();
            match wake {
                Wake::Shutdown if bridge.config().ha.is_none() => return Ok(()),
                Wake::Shutdown => {
                    bridge.handle_shutdown(now);
                    resigning_until = Some(now + RESIGN_TIME);
                }
                Wake::Task(TaskEvent::Response(id, result)) => {
                    bridge.handle_response(now, id, result)
                }
                Wake::Task(TaskEvent::StreamOpen(id, status)) => {
                    bridge.handle_stream_open(now, id, status)
                }
                Wake::Task(TaskEvent::StreamData(id, data)) => {
                    bridge.handle_stream_data(now, id, &data)
                }
                Wake::Task(TaskEvent::StreamClosed(id, error)) => {
                    io.streams.remove(&id);
                    bridge.handle_stream_closed(now, id, error)
                }
                Wake::Inbound(request) => {
                    let id = InboundId(next_inbound);
                    next_inbound += 1;
                    io.waiting.insert(id, request.reply);
                    bridge.handle_inbound(now, id, &request.path_and_query, &request.body)?;
                }
                Wake::InboundClosed => inbound_open = false,
                Wake::Deadline => bridge.handle_timeout(now),
            }
        }
    };
    tasks.run(run_loop).await
}

impl Io<'_> {
    /// Carries out everything the bridge has to say; returns its next deadline.
    fn drain(&mut self, bridge: &mut Bridge) -> Option<Duration> {
        loop {
            match bridge.poll_output() {
                Output::Request(request) => {
                    let (outbound, events) = (self.outbound.clone(), self.events.clone());
                    self.tasks
                        .spawn(async move {
                            let result = outbound.execute(&request).await;
                            // Fails only when the loop has stopped; nobody is waiting then.
                            let _ = events.send(TaskEvent::Response(request.id, result)).await;
                        })
                        .detach();
                }
                Output::OpenStream(request) => {
                    let id = request.id;
                    let task = self.tasks.spawn(follow_stream(
                        self.outbound.clone(),
                        request,
                        self.events.clone(),
                    ));
                    self.streams.insert(id, task);
                }
                Output::CloseStream(id) => {
                    self.streams.remove(&id);
                }
                Output::Reply(id, mut reply) => {
                    if reply.kind == ReplyKind::Metrics {
                        reply.body = metrics::render(bridge.metrics(), self.started).into_bytes();
                    }
                    if let Some(reply_to) = self.waiting.remove(&id) {
                        // Fails only if the HTTP client went away; the reply has nowhere to go.
                        let _ = reply_to.try_send(reply);
                    }
                }
                Output::Log(record) => log::log!(
                    target: CORE_LOG_TARGET,
                    log_level(record.level),
                    "{}",
                    record.message
                ),
                Output::Timeout(deadline) => return deadline,
            }
        }
    }
}

/// Opens the stream `request` and reports its head, each piece of its body, and its end.
async fn follow_stream(outbound: Outbound, request: Request, events: Sender<TaskEvent>) {
    let id = request.id;
    let mut stream = match outbound.open_stream(&request).await {
        Ok(stream) => stream,
        Err(error) => {
            let _ = events.send(TaskEvent::StreamClosed(id, Some(error))).await;
            return;
        }
    };
    if events
        .send(TaskEvent::StreamOpen(id, stream.status()))
        .await
        .is_err()
    {
        return;
    }
    let end = loop {
        match stream.next_chunk().await {
            Ok(Some(data)) => {
                if events.send(TaskEvent::StreamData(id, data)).await.is_err() {
                    return;
                }
            }
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    let _ = events.send(TaskEvent::StreamClosed(id, end)).await;
}

fn log_level(level: Level) -> log::Level {
    match level {
        Level::Error => log::Level::Error,
        Level::Warn => log::Level::Warn,
        Level::Info => log::Level::Info,
        Level::Debug => log::Level::Debug,
    }
}

/// Sleeps until `deadline` (measured from `epoch`), or forever if there is none.
async fn sleep_until(epoch: Instant, deadline: Option<Duration>) {
    match deadline.and_then(|d| epoch.checked_add(d)) {
        Some(at) => {
            Timer::at(at).await;
        }
        None => future::pending().await,
    }
}
