//! The inbound HTTP server: every request, whatever its method and target, becomes an
//! [`InboundRequest`] on a channel, and the [`Reply`] that comes back is sent as JSON (or, for
//! `/metrics`, as Prometheus text).
//!
//! The port is reachable by every task in the cluster, so this file owns the connections instead
//! of tide's listener: it caps how many are open ([`ServerLimits::max_connections`], evicting the
//! longest-idle one when full), times out idle connections, slow heads and slow bodies, reads each
//! head through [`crate::http_guard`] and each body up to `max_body_bytes` (de-chunking it), and
//! answers what fails with a JSON error (400, 408, 413, 431, 501, 503) before tide sees anything.
//! tide gets only a checked request with a body of known length; its reply goes out in one write
//! on a `TCP_NODELAY` socket. A panic in tide or a handler is logged and answered with 500 (the
//! connection goes on); one anywhere else in a connection's task is logged and closes only it.
//!
//! Routing (`/`, `/events`, 404s) is the core's decision, not made here. Who consumes the channel
//! is [`crate::driver`]'s business; tests may answer it themselves.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use consular_core::encoding::json_ascii_string;
use consular_core::{Reply, ReplyKind};
use smol::channel::{self, Receiver, Sender};
use smol::future::{self, FutureExt};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::{Executor, Timer};
use tide::http::{self, Body, Method, StatusCode, Url};
use tide::{Middleware, Next, Request, Response};

use crate::endpoints::with_brackets;
use crate::http_guard::{
    is_field_name, is_field_value, panic_message, parse_request_head, BodyFraming, ChunkedDecoder,
    ChunkedProgress, ChunkedViolation, Expectation, HeadProgress, HeadScanner, HeadViolation,
    HttpVersion, Persistence, RequestHead,
};

/// Bodies larger than this are refused unless configured otherwise.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Connections open at once unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time from a head's first byte to its end unless configured otherwise.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time from the end of a head to the end of its body unless configured otherwise.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may wait for its next request unless configured otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client that does not read its reply for this long is dropped.
const REPLY_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes asked of the socket in one read.
const READ_CHUNK_BYTES: usize = 8 * 1024;
/// After a refusal, the client's unread input is drained for at most this long (and
/// [`LINGER_MAX_BYTES`]) before closing: closing a socket with unread input sends a reset, which
/// can destroy the refusal before the client reads it.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// See [`LINGER_TIME`].
const LINGER_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Connections refused with 503 that may still be lingering; beyond this, new ones are just
/// closed, so a flood cannot turn refusals into open sockets.
const MAX_LINGERING_REFUSALS: usize = 64;
/// Pause after evicting a connection for its descriptor, so its task can close it first.
const EVICTION_PAUSE: Duration = Duration::from_millis(5);
/// Pause after `accept` failed for lack of resources (e.g. file descriptors), so that the loop
/// does not spin while connections close.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Host part of the URL tide sees; the request's own `Host` field is passed on as a header.
const CANONICAL_ORIGIN: &str = "http://consular.invalid";
/// Fields about this hop's framing and connection, consumed here and not passed on to tide.
const HOP_BY_HOP_FIELDS: [&str; 8] = [
    "connection",
    "content-length",
    "expect",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One inbound HTTP request, waiting for its [`Reply`].
#[derive(Debug)]
pub struct InboundRequest {
    /// The request target as sent: path and query (e.g. `/events?registration=x&secret=y`).
    pub path_and_query: String,
    /// The whole request body.
    pub body: Vec<u8>,
    /// Send the answer here, exactly once. If the client is gone, sending fails; that is fine.
    pub reply: Sender<Reply>,
}

/// What the server tolerates from clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest request body; a larger one is answered with 413.
    pub max_body_bytes: usize,
    /// Connections open at once. When full, the connection that has waited longest for its next
    /// request is closed to make room; if every one is mid-request, the new one gets 503.
    pub max_connections: usize,
    /// From a head's first byte to its end; a slower head gets 408.
    pub head_timeout: Duration,
    /// From the end of a head to the end of its body; a slower body gets 408.
    pub body_timeout: Duration,
    /// How long a connection may wait for its next request before it is closed.
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why the server could not start listening.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}{}", likely_cause(.source))]
pub struct BindError {
    /// `host:port` as configured.
    pub address: String,
    /// The operating system's error.
    pub source: io::Error,
}

/// A hint for the usual reasons a bind fails.
fn likely_cause(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::AddrInUse => " (another process is already listening on this port)",
        io::ErrorKind::AddrNotAvailable => " (--host is not an address of this machine)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need extra privileges)",
        _ => "",
    }
}

/// Binds `host:port` (like `--host`/`--port`), so that a failure is reported before anything runs.
/// A host name binds its first IPv4 address if it has one, as consular 1.3.0 (Twisted) did:
/// `localhost` is 127.0.0.1 there, and that is where Marathon posts its callbacks.
pub fn bind(host: &str, port: u16) -> Result<TcpListener, BindError> {
    let address = format!("{}:{port}", with_brackets(host));
    let fail = |source| BindError {
        address: address.clone(),
        source,
    };
    let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<SocketAddr> = (unbracketed, port)
        .to_socket_addrs()
        .map_err(fail)?
        .collect();
    let chosen = candidates
        .iter()
        .find(|a| a.is_ipv4())
        .or(candidates.first())
        .ok_or_else(|| {
            fail(io::Error::new(
                io::ErrorKind::NotFound,
                "the host has no address",
            ))
        })?;
    TcpListener::bind(chosen).map_err(fail)
}

/// Serves HTTP on `listener` within `limits` until the future is dropped, handing each request to
/// `inbound`. Returns only if the listener fails.
pub async fn serve(
    listener: TcpListener,
    inbound: Sender<InboundRequest>,
    limits: ServerLimits,
) -> io::Result<()> {
    let mut app = tide::new();
    app.with(ForwardToCore { inbound });
    serve_app(listener, app, limits).await
}

/// Serves any tide `app` on `listener` the way [`serve`] serves the core: same limits, same
/// refusals, panics in `app` answered with 500. Dropping the future closes every connection.
pub async fn serve_app<State>(
    listener: TcpListener,
    app: tide::Server<State>,
    limits: ServerLimits,
) -> io::Result<()>
where
    State: Clone + Send + Sync + 'static,
{
    let listener = smol::net::TcpListener::try_from(listener)?;
    let registry = Registry::new(limits.max_connections);
    // Connections run on an executor owned by this future, so they end when it is dropped.
    let connections = Executor::new();
    let accepting = accept_connections(&connections, &listener, &app, &registry, limits);
    connections.run(accepting).await
}

async fn accept_connections<'a, State>(
    connections: &Executor<'a>,
    listener: &smol::net::TcpListener,
    app: &'a tide::Server<State>,
    registry: &'a Registry,
    limits: ServerLimits,
) -> io::Result<()>
where
    State: Clone + Send + Sync + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => match AcceptFailure::of(&error) {
                AcceptFailure::ThisConnection => continue,
                AcceptFailure::OutOfResources => {
                    // Out of descriptors before the cap (a low open-files limit): an idle
                    // connection gives its descriptor to the waiting one, so `GET /` still gets in
                    // under an idle flood. With none idle, wait for connections to close.
                    match registry.evict_one() {
                        Eviction::Evicted => {
                            Timer::after(EVICTION_PAUSE).await;
                        }
                        Eviction::NoneIdle => {
                            log::warn!("cannot accept a connection: {error}");
                            Timer::after(ACCEPT_RETRY_PAUSE).await;
                        }
                    }
                    continue;
                }
                AcceptFailure::Listener => return Err(error),
            },
        };
        match registry.admit(Instant::now()) {
            Admission::Admitted(slot) => connections
                .spawn(serve_connection(app, stream, peer, slot, limits))
                .detach(),
            Admission::Full => match registry.begin_refusal() {
                Some(refusal) => connections
                    .spawn(refuse_connection(stream, refusal))
                    .detach(),
                None => drop(stream),
            },
        }
    }
}

/// What a failed `accept` means for the loop.
enum AcceptFailure {
    /// One connection went wrong before it was accepted; the next one may be fine.
    ThisConnection,
    /// Out of file descriptors, buffers or memory: wait for connections to close.
    OutOfResources,
    /// The listening socket itself is unusable.
    Listener,
}

impl AcceptFailure {
    fn of(error: &io::Error) -> Self {
        use io::ErrorKind::*;
        match error.kind() {
            ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
            | TimedOut | PermissionDenied => AcceptFailure::ThisConnection,
            InvalidInput | NotConnected | Unsupported => AcceptFailure::Listener,
            _ => AcceptFailure::OutOfResources,
        }
    }
}

/// The open connections and what each is doing, for the connection cap.
struct Registry {
    capacity: usize,
    state: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    next_id: u64,
    open: HashMap<u64, OpenConnection>,
    lingering_refusals: usize,
}

struct OpenConnection {
    phase: ConnectionPhase,
    /// Dropped to evict: the connection's [`ConnectionSlot::evicted`] then returns.
    _eviction: Sender<()>,
}

#[derive(Clone, Copy)]
enum ConnectionPhase {
    /// Waiting for the first byte of a request head; may be evicted.
    AwaitingRequest { since: Instant },
    /// Reading a request, waiting for the core or writing the reply.
    Exchanging,
    /// Answered for the last time, draining before the close; evicted before any other.
    Closing,
}

/// The outcome of a new connection asking for a place.
enum Admission<'a> {
    Admitted(ConnectionSlot<'a>),
    /// Every place is taken by a connection in the middle of an exchange.
    Full,
}

/// Whether a connection could be closed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eviction {
    Evicted,
    /// Every connection is in the middle of an exchange.
    NoneIdle,
}

impl RegistryState {
    /// Closes a closing connection, or else the one idle longest.
    fn evict_one(&mut self) -> Eviction {
        let evictable = self
            .open
            .iter()
            .filter_map(|(&id, open)| match open.phase {
                // `None` sorts first: a closing connection goes before any idle one.
                ConnectionPhase::Closing => Some((None, id)),
                ConnectionPhase::AwaitingRequest { since } => Some((Some(since), id)),
                ConnectionPhase::Exchanging => None,
            })
            .min();
        match evictable {
            Some((_, id)) => {
                self.open.remove(&id);
                Eviction::Evicted
            }
            None => Eviction::NoneIdle,
        }
    }
}

impl Registry {
    /// Closes an idle connection to free its descriptor.
    fn evict_one(&self) -> Eviction {
        self.lock().evict_one()
    }

    fn new(capacity: usize) -> Self {
        Registry {
            capacity,
            state: Mutex::new(RegistryState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RegistryState> {
        // Every update is a single insert, remove or assignment; none is left half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection, made by evicting a closing one or else the longest-idle one
    /// if the cap is reached.
    fn admit(&self, now: Instant) -> Admission<'_> {
        let mut state = self.lock();
        if state.open.len() >= self.capacity {
            match state.evict_one() {
                Eviction::Evicted => {
                    log::debug!("{} connections open: closing an idle one", self.capacity);
                }
                Eviction::NoneIdle => return Admission::Full,
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let (eviction_tx, eviction_rx) = channel::bounded(1);
        state.open.insert(
            id,
            OpenConnection {
                phase: ConnectionPhase::AwaitingRequest { since: now },
                _eviction: eviction_tx,
            },
        );
        Admission::Admitted(ConnectionSlot {
            registry: self,
            id,
            eviction: eviction_rx,
        })
    }

    fn begin_refusal(&self) -> Option<RefusalSlot<'_>> {
        let mut state = self.lock();
        if state.lingering_refusals >= MAX_LINGERING_REFUSALS {
            return None;
        }
        state.lingering_refusals += 1;
        Some(RefusalSlot { registry: self })
    }

    fn set_phase(&self, id: u64, phase: ConnectionPhase) {
        if let Some(open) = self.lock().open.get_mut(&id) {
            open.phase = phase;
        }
    }
}

/// One connection's place under the cap; given back when dropped.
struct ConnectionSlot<'a> {
    registry: &'a Registry,
    id: u64,
    eviction: Receiver<()>,
}

impl ConnectionSlot<'_> {
    fn awaiting_request(&self, now: Instant) {
        self.registry
            .set_phase(self.id, ConnectionPhase::AwaitingRequest { since: now });
    }

    fn exchanging(&self) {
        self.registry
            .set_phase(self.id, ConnectionPhase::Exchanging);
    }

    fn closing(&self) {
        self.registry.set_phase(self.id, ConnectionPhase::Closing);
    }

    /// Returns once the registry evicted this connection (never sooner).
    async fn evicted(&self) {
        // Nothing is ever sent: `recv` fails when the registry drops the sender.
        let _ = self.eviction.recv().await;
    }
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        self.registry.lock().open.remove(&self.id);
    }
}

/// One of the [`MAX_LINGERING_REFUSALS`]; given back when dropped.
struct RefusalSlot<'a> {
    registry: &'a Registry,
}

impl Drop for RefusalSlot<'_> {
    fn drop(&mut self) {
        self.registry.lock().lingering_refusals -= 1;
    }
}

async fn serve_connection<State>(
    app: &tide::Server<State>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot<'_>,
    limits: ServerLimits,
) where
    State: Clone + Send + Sync + 'static,
{
    // Replies are written whole, so this only stops the kernel from holding back the last
    // segment of a large one while it waits for an ACK.
    if let Err(error) = stream.set_nodelay(true) {
        log::debug!("cannot set TCP_NODELAY for {peer}: {error}");
    }
    let connection = InboundConnection {
        stream,
        unread: Vec::new(),
    };
    let exchanges = AssertUnwindSafe(exchange_requests(app, connection, &slot, limits));
    if let Err(panic) = exchanges.catch_unwind().await {
        log::error!(
            "connection from {peer} closed by a panic: {}",
            panic_message(&*panic)
        );
    }
}

/// Serves requests on one connection until it closes, fails or times out, or is evicted.
async fn exchange_requests<State>(
    app: &tide::Server<State>,
    mut connection: InboundConnection,
    slot: &ConnectionSlot<'_>,
    limits: ServerLimits,
) where
    State: Clone + Send + Sync + 'static,
{
    loop {
        let head = match connection.read_head(slot, limits).await {
            HeadOutcome::Received(head) => head,
            HeadOutcome::Gone => return,
            HeadOutcome::Refused(refusal) => return connection.refuse(refusal, slot).await,
        };
        let body = match connection.read_body(&head, limits).await {
            BodyOutcome::Received(body) => body,
            BodyOutcome::Gone => return,
            BodyOutcome::Refused(refusal) => return connection.refuse(refusal, slot).await,
        };
        let reply = respond(app, &head, body).await;
        let delivery = match head.method.eq_ignore_ascii_case("HEAD") {
            true => BodyDelivery::HeadOnly,
            false => BodyDelivery::Full,
        };
        let bytes = reply.encode(head.version, head.persistence, delivery);
        if connection.send(&bytes).await == SendOutcome::Failed {
            return;
        }
        if head.persistence == Persistence::Close {
            return connection.linger_close(slot).await;
        }
    }
}

/// Hands a checked request to tide, containing its panics.
async fn respond<State>(
    app: &tide::Server<State>,
    head: &RequestHead,
    body: Vec<u8>,
) -> OutgoingReply
where
    State: Clone + Send + Sync + 'static,
{
    let request = match tide_request(head, body) {
        Ok(request) => request,
        Err(refusal) => return OutgoingReply::error(refusal.status, &refusal.message),
    };
    let answering = AssertUnwindSafe(async {
        let mut response: http::Response = app.respond(request).await?;
        let body = response.take_body().into_bytes().await?;
        Ok::<_, http::Error>((response, body))
    });
    let internal_error = || OutgoingReply::error(StatusCode::InternalServerError, "internal error");
    match answering.catch_unwind().await {
        Ok(Ok((response, body))) => OutgoingReply::from_tide(&response, body),
        Ok(Err(error)) => {
            log::error!("{} {}: {error}", head.method, path_of(&head.target));
            internal_error()
        }
        Err(panic) => {
            log::error!(
                "{} {}: the handler panicked: {}",
                head.method,
                path_of(&head.target),
                panic_message(&*panic)
            );
            internal_error()
        }
    }
}

/// The request as tide takes it: the target's path and query, every end-to-end field, and the
/// body with its length.
fn tide_request(head: &RequestHead, body: Vec<u8>) -> Result<http::Request, Refusal> {
    let method = Method::from_str(&head.method).map_err(|_| Refusal {
        status: StatusCode::NotImplemented,
        message: format!("method {} is not supported", head.method),
    })?;
    // The target starts with `/`, so it cannot replace the origin's host.
    let url = Url::parse(&format!("{CANONICAL_ORIGIN}{}", head.target)).map_err(|e| Refusal {
        status: StatusCode::BadRequest,
        message: format!("invalid request target: {e}"),
    })?;
    let mut request = http::Request::new(method, url);
    request.set_version(Some(match head.version {
        HttpVersion::Http10 => http::Version::Http1_0,
        HttpVersion::Http11 => http::Version::Http1_1,
    }));
    let end_to_end = head.fields.iter().filter(|field| {
        !HOP_BY_HOP_FIELDS
            .iter()
            .any(|hop| field.name.eq_ignore_ascii_case(hop))
    });
    for field in end_to_end {
        request.append_header(field.name.as_str(), field.value.as_str());
    }
    request.insert_header("content-length", body.len().to_string());
    request.set_body(Body::from_bytes(body));
    request.ext_mut().insert(RequestTarget(head.target.clone()));
    Ok(request)
}

/// The request target exactly as the client sent it (tide's URL is normalised).
#[derive(Debug, Clone)]
struct RequestTarget(String);

/// The path of a target, for logs: the query may carry the events secret.
fn path_of(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

/// A request answered by this file rather than by tide, and why.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    fn of_head(violation: &HeadViolation) -> Self {
        let status = match violation {
            HeadViolation::TooLarge | HeadViolation::TooManyFields => {
                StatusCode::RequestHeaderFieldsTooLarge
            }
            HeadViolation::Malformed(_) => StatusCode::BadRequest,
        };
        Refusal::new(status, format!("invalid request head: {violation}"))
    }

    fn too_large(max_body_bytes: usize) -> Self {
        Refusal::new(
            StatusCode::PayloadTooLarge,
            format!("request body larger than {max_body_bytes} bytes"),
        )
    }

    fn timed_out(what: &str, timeout: Duration) -> Self {
        Refusal::new(
            StatusCode::RequestTimeout,
            format!("{what} not received within {timeout:?}"),
        )
    }
}

enum HeadOutcome {
    Received(RequestHead),
    /// Closed, broken, idle too long or evicted: nothing to answer.
    Gone,
    Refused(Refusal),
}

enum BodyOutcome {
    Received(Vec<u8>),
    Gone,
    Refused(Refusal),
}

/// What became of an attempt to read more.
enum ReadOutcome {
    Received,
    /// End of stream or a broken connection.
    Ended,
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendOutcome {
    Sent,
    Failed,
}

/// Whether a reply carries its body (not for `HEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyDelivery {
    Full,
    HeadOnly,
}

/// An accepted connection and the bytes read from it that no request has used yet.
struct InboundConnection {
    stream: TcpStream,
    unread: Vec<u8>,
}

impl InboundConnection {
    /// The next request head: the wait for its first byte is bounded by the idle timeout (and
    /// eviction), the rest by the head timeout.
    async fn read_head(&mut self, slot: &ConnectionSlot<'_>, limits: ServerLimits) -> HeadOutcome {
        if self.unread.is_empty() {
            // Idle connections are the many; they keep no buffer.
            self.unread = Vec::new();
            slot.awaiting_request(Instant::now());
            let idle_deadline = deadline_after(limits.idle_timeout);
            let first_bytes =
                future::or(async { Some(self.read_more(idle_deadline).await) }, async {
                    slot.evicted().await;
                    None
                });
            match first_bytes.await {
                Some(ReadOutcome::Received) => {}
                Some(ReadOutcome::Ended | ReadOutcome::TimedOut) | None => {
                    return HeadOutcome::Gone
                }
            }
        }
        slot.exchanging();
        let deadline = deadline_after(limits.head_timeout);
        let mut scanner = HeadScanner::new();
        loop {
            match scanner.scan(&self.unread) {
                Ok(HeadProgress::Complete { len }) => {
                    let parsed = parse_request_head(&self.unread[..len]);
                    self.unread.drain(..len);
                    return match parsed {
                        Ok(head) => HeadOutcome::Received(head),
                        Err(violation) => HeadOutcome::Refused(Refusal::of_head(&violation)),
                    };
                }
                Ok(HeadProgress::Incomplete) => {}
                Err(violation) => return HeadOutcome::Refused(Refusal::of_head(&violation)),
            }
            match self.read_more(deadline).await {
                ReadOutcome::Received => {}
                ReadOutcome::Ended => return HeadOutcome::Gone,
                ReadOutcome::TimedOut => {
                    return HeadOutcome::Refused(Refusal::timed_out(
                        "request head",
                        limits.head_timeout,
                    ))
                }
            }
        }
    }

    /// The body of the request `head` announced, within the body timeout and `max_body_bytes`.
    async fn read_body(&mut self, head: &RequestHead, limits: ServerLimits) -> BodyOutcome {
        let deadline = deadline_after(limits.body_timeout);
        let timed_out =
            || BodyOutcome::Refused(Refusal::timed_out("request body", limits.body_timeout));
        let too_large = || BodyOutcome::Refused(Refusal::too_large(limits.max_body_bytes));
        let length = match head.framing {
            BodyFraming::Length(length) => match usize::try_from(length) {
                Ok(length) if length <= limits.max_body_bytes => Some(length),
                _ => return too_large(),
            },
            BodyFraming::Chunked => None,
            BodyFraming::UntilClose | BodyFraming::Bodiless => Some(0),
        };
        let announced_body = length != Some(0);
        if announced_body
            && head.expectation == Expectation::Continue
            && head.version == HttpVersion::Http11
            && self.unread.is_empty()
            && self.send(b"HTTP/1.1 100 Continue\r\n\r\n").await == SendOutcome::Failed
        {
            return BodyOutcome::Gone;
        }
        match length {
            Some(length) => {
                let mut body = Vec::with_capacity(length);
                let buffered = length.min(self.unread.len());
                body.extend(self.unread.drain(..buffered));
                while body.len() < length {
                    let missing = length - body.len();
                    match read_appending(&mut self.stream, &mut body, missing, deadline).await {
                        ReadOutcome::Received => {}
                        ReadOutcome::Ended => return BodyOutcome::Gone,
                        ReadOutcome::TimedOut => return timed_out(),
                    }
                }
                BodyOutcome::Received(body)
            }
            None => {
                let mut decoder = ChunkedDecoder::new(limits.max_body_bytes);
                let mut body = Vec::new();
                loop {
                    match decoder.decode(&self.unread, &mut body) {
                        Ok((used, progress)) => {
                            self.unread.drain(..used);
                            if progress == ChunkedProgress::Finished {
                                return BodyOutcome::Received(body);
                            }
                        }
                        Err(ChunkedViolation::TooLarge(_)) => return too_large(),
                        Err(violation @ ChunkedViolation::Malformed(_)) => {
                            return BodyOutcome::Refused(Refusal::new(
                                StatusCode::BadRequest,
                                violation.to_string(),
                            ))
                        }
                    }
                    match self.read_more(deadline).await {
                        ReadOutcome::Received => {}
                        ReadOutcome::Ended => return BodyOutcome::Gone,
                        ReadOutcome::TimedOut => return timed_out(),
                    }
                }
            }
        }
    }

    async fn read_more(&mut self, deadline: Instant) -> ReadOutcome {
        read_appending(
            &mut self.stream,
            &mut self.unread,
            READ_CHUNK_BYTES,
            deadline,
        )
        .await
    }

    async fn send(&mut self, bytes: &[u8]) -> SendOutcome {
        send_all(&mut self.stream, bytes).await
    }

    /// Answers `refusal` and closes the connection: whatever else the client sent is not read.
    async fn refuse(mut self, refusal: Refusal, slot: &ConnectionSlot<'_>) {
        log::debug!("refused a request: {} {}", refusal.status, refusal.message);
        let reply = OutgoingReply::error(refusal.status, &refusal.message);
        let bytes = reply.encode(HttpVersion::Http11, Persistence::Close, BodyDelivery::Full);
        if self.send(&bytes).await == SendOutcome::Sent {
            self.linger_close(slot).await;
        }
    }

    /// [`linger_close`], giving up the place under the cap to any new connection that needs it.
    async fn linger_close(mut self, slot: &ConnectionSlot<'_>) {
        slot.closing();
        future::or(linger_close(&mut self.stream), slot.evicted()).await;
    }
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse_connection(mut stream: TcpStream, _slot: RefusalSlot<'_>) {
    let reply = OutgoingReply::error(
        StatusCode::ServiceUnavailable,
        "too many open connections, try again later",
    );
    let bytes = reply.encode(HttpVersion::Http11, Persistence::Close, BodyDelivery::Full);
    if send_all(&mut stream, &bytes).await == SendOutcome::Sent {
        linger_close(&mut stream).await;
    }
}

/// Reads at most `most` bytes more onto the end of `buffer`, until `deadline`.
async fn read_appending(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    most: usize,
    deadline: Instant,
) -> ReadOutcome {
    let filled = buffer.len();
    buffer.resize(filled + most, 0);
    let read = future::or(
        async { Some(stream.read(&mut buffer[filled..]).await) },
        async {
            Timer::at(deadline).await;
            None
        },
    )
    .await;
    let (outcome, received) = match read {
        Some(Ok(0) | Err(_)) => (ReadOutcome::Ended, 0),
        Some(Ok(received)) => (ReadOutcome::Received, received),
        None => (ReadOutcome::TimedOut, 0),
    };
    buffer.truncate(filled + received);
    outcome
}

/// Writes `bytes` in one go and flushes, within [`REPLY_WRITE_TIMEOUT`].
async fn send_all(stream: &mut TcpStream, bytes: &[u8]) -> SendOutcome {
    let writing = async {
        match stream.write_all(bytes).await.and(stream.flush().await) {
            Ok(()) => SendOutcome::Sent,
            Err(_) => SendOutcome::Failed,
        }
    };
    let deadline = async {
        Timer::after(REPLY_WRITE_TIMEOUT).await;
        SendOutcome::Failed
    };
    future::or(writing, deadline).await
}

/// Closes the sending side, then drains what the client still sends (bounded) before closing,
/// so that the last reply is not destroyed by a reset.
async fn linger_close(stream: &mut TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = deadline_after(LINGER_TIME);
    let mut sink = Vec::new();
    let mut drained = 0;
    while drained < LINGER_MAX_BYTES {
        sink.clear();
        match read_appending(stream, &mut sink, READ_CHUNK_BYTES, deadline).await {
            ReadOutcome::Received => drained += sink.len(),
            ReadOutcome::Ended | ReadOutcome::TimedOut => return,
        }
    }
}

/// `duration` from now; a duration too long for the clock means "never" in practice.
fn deadline_after(duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(duration.min(CENTURY)).unwrap_or(now)
}

/// A reply as it goes on the wire.
struct OutgoingReply {
    status: StatusCode,
    /// Except `Content-Length` and `Connection`, which [`OutgoingReply::encode`] writes.
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl OutgoingReply {
    /// `{"error": "<message>"}` with `status`.
    fn error(status: StatusCode, message: &str) -> Self {
        OutgoingReply {
            status,
            fields: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: error_body(message),
        }
    }

    fn from_tide(response: &http::Response, body: Vec<u8>) -> Self {
        let mut fields = Vec::new();
        for (name, values) in response.iter() {
            let name = name.as_str();
            let framing = ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|own| name.eq_ignore_ascii_case(own));
            for value in values.iter() {
                // http-types checks only that names and values are ASCII; a line break in
                // either would let a handler split the reply.
                if !framing && is_field_name(name) && is_field_value(value.as_str()) {
                    fields.push((name.to_owned(), value.as_str().to_owned()));
                }
            }
        }
        OutgoingReply {
            status: response.status(),
            fields,
            body,
        }
    }

    /// Status line, fields, `Content-Length`, the `Connection` option when it is not the default
    /// of the client's version, and the body: one buffer, written at once.
    fn encode(
        &self,
        version: HttpVersion,
        persistence: Persistence,
        delivery: BodyDelivery,
    ) -> Vec<u8> {
        let code = u16::from(self.status);
        let bodiless = (100..200).contains(&code) || code == 204 || code == 304;
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(
            format!("HTTP/1.1 {code} {}\r\n", self.status.canonical_reason()).as_bytes(),
        );
        for (name, value) in &self.fields {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !bodiless {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        match (persistence, version) {
            (Persistence::Close, _) => out.extend_from_slice(b"connection: close\r\n"),
            (Persistence::KeepAlive, HttpVersion::Http10) => {
                out.extend_from_slice(b"connection: keep-alive\r\n")
            }
            (Persistence::KeepAlive, HttpVersion::Http11) => {}
        }
        out.extend_from_slice(b"\r\n");
        if !bodiless && delivery == BodyDelivery::Full {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Answers every request itself: as the only middleware that never calls `next`, it sees all
/// methods and paths, including those tide's router knows nothing about.
struct ForwardToCore {
    inbound: Sender<InboundRequest>,
}

#[tide::utils::async_trait]
impl Middleware<()> for ForwardToCore {
    async fn handle(&self, mut request: Request<()>, _next: Next<'_, ()>) -> tide::Result {
        let method = request.method();
        let path_and_query = match request.ext::<RequestTarget>() {
            Some(target) => target.0.clone(),
            None => {
                let url = request.url();
                match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                }
            }
        };
        let response = match request.body_bytes().await {
            Ok(body) => self.ask_core(path_and_query.clone(), body).await,
            Err(error) => error_response(
                StatusCode::BadRequest,
                &format!("cannot read request body: {error}"),
            ),
        };
        log::debug!(
            "{method} {} {}",
            path_of(&path_and_query),
            response.status()
        );
        Ok(response)
    }
}

impl ForwardToCore {
    async fn ask_core(&self, path_and_query: String, body: Vec<u8>) -> Response {
        let (reply_tx, reply_rx) = channel::bounded(1);
        let request = InboundRequest {
            path_and_query,
            body,
            reply: reply_tx,
        };
        if self.inbound.send(request).await.is_err() {
            return error_response(StatusCode::ServiceUnavailable, "consular is shutting down");
        }
        match reply_rx.recv().await {
            Ok(reply) => reply_response(reply),
            Err(_) => error_response(StatusCode::ServiceUnavailable, "consular is shutting down"),
        }
    }
}

fn reply_response(reply: Reply) -> Response {
    match StatusCode::try_from(reply.status) {
        Ok(status) => match reply.kind {
            ReplyKind::Json => json_response(status, reply.body),
            ReplyKind::Metrics => metrics_response(status, reply.body),
        },
        Err(_) => error_response(
            StatusCode::InternalServerError,
            &format!("invalid status {} from the core", reply.status),
        ),
    }
}

/// `{"error": "<message>"}`, in the same JSON style as the core's own error replies.
fn error_body(message: &str) -> Vec<u8> {
    format!("{{\"error\": {}}}", json_ascii_string(message)).into_bytes()
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, error_body(message))
}

fn metrics_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(status);
    response.set_body(Body::from_bytes(body));
    response.insert_header("content-type", crate::metrics::CONTENT_TYPE);
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut body = Body::from_bytes(body);
    body.set_mime(tide::http::mime::JSON);
    let mut response = Response::new(status);
    response.set_body(body);
    response
}
