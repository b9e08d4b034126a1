//! [`MarathonServer`]: a [`SimMarathon`] served over HTTP on loopback, with what only a server can
//! add to the pure model: the `/v2/events` stream and the delivery of HTTP callbacks.
//!
//! * **`GET /v2/events`** with exactly `Accept: text/event-stream` (Jetty's check) is answered
//!   here: `200`, `Content-Type: text/event-stream;charset=UTF-8`, `Connection: close`, no length
//!   and no chunking (the stream ends when the connection does); then every event on the bus as an
//!   [`sse_frame`], filtered by `?event_type=` where the version filters
//!   ([`SimMarathon::event_type_filter`]), and a heartbeat every [`SSE_HEARTBEAT_PERIOD`], written
//!   as Jetty does: `\r`, flush, `\n`, flush. A new stream publishes `event_stream_attached` on the
//!   bus (so the new client sees it unless filtered out), a closed one `event_stream_detached`.
//!   Any other `/v2/events` request goes to the model, which answers Jetty's `405`.
//! * **Callbacks:** every event on the bus is POSTed to every subscribed URL
//!   (`Accept`/`Content-Type: application/json`), one subscriber after the other. A failed POST
//!   (connection error, no answer within 5 s, non-2xx) is logged and that URL is skipped for
//!   2^n seconds after n failures in a row, like Marathon's `HttpEventActor` (capped at a minute,
//!   a simulator choice); a success resets it. Only loopback URLs are called.
//! * **Everything else** goes to [`SimMarathon::handle`]; status, content type and headers are
//!   copied, plus the `CacheDisablingFilter` headers every Marathon response has.
//!
//! Events reach streams and subscribers as soon as the model emits them: after each request, and
//! after each [`MarathonServer::with`]. Event order is kept per stream and per subscriber.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use consular_core::Method;
use consular_sim::{sse_frame, SimEvent, SimMarathon};
use smol::channel::{self, Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{Shutdown, TcpStream};
use smol::stream::StreamExt;
use smol::{future, Timer};
use surf::http::url::{Host, Url};
use surf::http::{Body, Method as HttpMethod};

use super::connection::{self, HandlerAction, TakenOver};
use super::http1::{self, HttpRequest};
use super::{bind_loopback, url_host, ServerThread};
use crate::h1_client::H1Client;
use crate::tls;

/// How often an idle-or-not event stream gets its heartbeat (Jetty's default `heartBeatPeriod`).
pub const SSE_HEARTBEAT_PERIOD: Duration = Duration::from_secs(10);
/// How long one callback POST may take.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a failing callback URL is skipped.
const MAX_CALLBACK_BACKOFF: Duration = Duration::from_secs(60);

const EVENT_STREAM_PATH: &str = "/v2/events";
const EVENT_STREAM_ACCEPT: &str = "text/event-stream";
const JSON: &str = "application/json";
/// Marathon's `CacheDisablingFilter` adds these to every response.
const CACHE_HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
    ("Expires", "0"),
];

/// A [`SimMarathon`] served over HTTP on a loopback address, on a background thread with its own
/// executor. Dropping it stops the thread and closes the listener and every connection.
#[derive(Debug)]
pub struct MarathonServer {
    // Dropped first: stopping the thread drops every connection task.
    _thread: ServerThread,
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl MarathonServer {
    /// Serves `marathon` over HTTP on `127.0.0.1:<free port>`, on a background thread with its own
    /// executor.
    pub fn start(marathon: SimMarathon) -> io::Result<MarathonServer> {
        Self::start_on(marathon, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves `marathon` on `addr`, which must be a loopback address (port 0 picks a free one).
    pub fn start_on(marathon: SimMarathon, addr: SocketAddr) -> io::Result<MarathonServer> {
        let listener = bind_loopback(addr)?;
        let addr = listener.local_addr()?;
        let tls = tls::client_config(&Default::default()).map_err(io::Error::other)?;
        let callback_client = surf::Client::with_http_client(H1Client::new(tls));
        let (callbacks_tx, callbacks) = channel::unbounded();
        let shared = Arc::new(Mutex::new(Shared {
            model: marathon,
            streams: Vec::new(),
            next_stream_id: 0,
            streams_enabled: true,
            heartbeat_period: SSE_HEARTBEAT_PERIOD,
            requests: Vec::new(),
            callbacks: callbacks_tx,
        }));
        let serving = shared.clone();
        let thread = ServerThread::spawn(
            "simulated-marathon",
            vec![(listener, ())],
            deliver_callbacks(callbacks, callback_client),
            move |connection, ()| serve_connection(serving.clone(), connection),
        )?;
        Ok(MarathonServer {
            _thread: thread,
            addr,
            shared,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", url_host(self.addr.ip()), self.addr.port())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `f` on the model; events it emits are then delivered at once: written to every open
    /// `/v2/events` stream whose `event_type` filter matches, and queued for POSTing to every
    /// subscribed callback URL. `f` must not call back into this server (the model is locked).
    pub fn with<R>(&self, f: impl FnOnce(&mut SimMarathon) -> R) -> R {
        let mut shared = self.lock();
        let result = f(&mut shared.model);
        shared.publish_pending();
        result
    }

    /// Cuts every open `/v2/events` connection (each publishes `event_stream_detached`).
    pub fn drop_streams(&self) {
        let mut shared = self.lock();
        let ids: Vec<u64> = shared.streams.iter().map(|s| s.id).collect();
        for id in ids {
            shared.close_stream(id);
        }
    }

    /// While false, new `/v2/events` requests get `503` (a stream outage); true again restores.
    /// Open streams are left alone: cut them with [`MarathonServer::drop_streams`].
    pub fn set_streams_enabled(&self, enabled: bool) {
        self.lock().streams_enabled = enabled;
    }

    /// Writes raw bytes to every open stream (e.g. an oversize event), whatever its filter.
    pub fn write_raw_to_streams(&self, bytes: &[u8]) {
        for stream in &self.lock().streams {
            let _ = stream.frames.try_send(bytes.to_vec());
        }
    }

    /// Number of `/v2/events` connections open now.
    pub fn open_streams(&self) -> usize {
        self.lock().streams.len()
    }

    /// Every request served so far as `(method, path_and_query)`, in arrival order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.lock().requests.clone()
    }

    /// The heartbeat period of streams opened from now on ([`SSE_HEARTBEAT_PERIOD`] by default);
    /// zero sends none.
    pub fn set_heartbeat_period(&self, period: Duration) {
        self.lock().heartbeat_period = period;
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

/// The model and everything the connections share, behind one lock so that an event reaches
/// every stream and subscriber in the order the model emitted it.
#[derive(Debug)]
struct Shared {
    model: SimMarathon,
    streams: Vec<SseConnection>,
    next_stream_id: u64,
    streams_enabled: bool,
    heartbeat_period: Duration,
    requests: Vec<(String, String)>,
    /// To the callback delivery task.
    callbacks: Sender<Callback>,
}

/// One open `/v2/events` connection.
#[derive(Debug)]
struct SseConnection {
    id: u64,
    /// The client's IP, for `event_stream_detached`.
    remote: String,
    /// Event types asked for; empty means all.
    filter: Vec<String>,
    /// Bytes for the connection's writer task; dropping the sender ends the stream.
    frames: Sender<Vec<u8>>,
    /// A handle on the socket, to cut it even while the writer is blocked.
    connection: TcpStream,
}

/// One event for the subscribers of the moment it was emitted.
#[derive(Debug)]
struct Callback {
    urls: Vec<String>,
    event: SimEvent,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic inside `with` leaves the model as the closure left it, which is still a model.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Hands every event the model emitted since the last call to the streams and subscribers.
    fn publish_pending(&mut self) {
        let events = self.model.take_events();
        if events.is_empty() {
            return;
        }
        let subscribers =
            if self.model.version().has_event_subscriptions() && self.model.callbacks_enabled {
                self.model.subscriptions().to_vec()
            } else {
                Vec::new()
            };
        for event in events {
            for stream in &self.streams {
                if stream.filter.is_empty() || stream.filter.contains(&event.event_type) {
                    // Fails only once the writer is gone, and then the stream is being closed.
                    let _ = stream.frames.try_send(sse_frame(&event));
                }
            }
            if !subscribers.is_empty() {
                let urls = subscribers.clone();
                // Fails only while the server stops.
                let _ = self.callbacks.try_send(Callback { urls, event });
            }
        }
    }

    /// Registers a stream and publishes its `event_stream_attached`; returns its id.
    fn open_stream(&mut self, stream: SseConnection) -> u64 {
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        let attached = self.model.event_stream_attached(&stream.remote);
        self.streams.push(SseConnection { id, ..stream });
        self.model.publish(attached);
        self.publish_pending();
        id
    }

    /// Cuts stream `id` if it is still open and publishes its `event_stream_detached`.
    fn close_stream(&mut self, id: u64) {
        let Some(index) = self.streams.iter().position(|s| s.id == id) else {
            return;
        };
        let stream = self.streams.remove(index);
        // Unblocks a writer stuck on a full socket, and makes the client see the end at once.
        let _ = stream.connection.shutdown(Shutdown::Both);
        let detached = self.model.event_stream_detached(&stream.remote);
        self.model.publish(detached);
        self.publish_pending();
    }

    /// The answer to one request that is not an event stream being opened.
    fn answer(&mut self, request: &HttpRequest) -> HandlerAction {
        self.requests
            .push((request.method.clone(), request.target.clone()));
        let Some(method) = request.model_method() else {
            return HandlerAction::Respond(connection::plain(
                405,
                "method not supported by the simulator",
            ));
        };
        let path = request.target.split('?').next().unwrap_or_default();
        // Without a leader, the proxy filter answers before Jetty's event servlet is reached.
        if path == EVENT_STREAM_PATH && method == Method::Get && !self.model.no_leader {
            if !self.streams_enabled {
                return HandlerAction::Respond(connection::plain(
                    503,
                    "event stream unavailable (simulated outage)",
                ));
            }
            if request.header("Accept") == Some(EVENT_STREAM_ACCEPT) {
                return HandlerAction::TakeOver;
            }
        }
        let response = self.model.handle(method, &request.target, &request.body);
        self.publish_pending();
        HandlerAction::Respond(response)
    }
}

/// Serves one connection: requests until it closes, or an event stream until that ends.
async fn serve_connection(shared: Arc<Mutex<Shared>>, connection: TcpStream) {
    let remote = connection
        .peer_addr()
        .map_or_else(|_| "127.0.0.1".to_owned(), |a| a.ip().to_string());
    let taken = connection::serve(connection, CACHE_HEADERS, |request| {
        lock(&shared).answer(request)
    })
    .await;
    if let Some(taken) = taken {
        stream_events(&shared, taken, remote).await;
    }
}

/// What the writer of an event stream writes next.
enum Write {
    Bytes(Vec<u8>),
    Heartbeat,
    End,
}

/// Runs one `/v2/events` stream until the client leaves or the server cuts it.
async fn stream_events(shared: &Mutex<Shared>, taken: TakenOver, remote: String) {
    let TakenOver {
        request,
        mut connection,
        mut reader,
    } = taken;
    let (frames_tx, frames) = channel::unbounded();
    let (id, period) = {
        let mut shared = lock(shared);
        let filter = shared.model.event_type_filter(&request.target);
        let stream = SseConnection {
            id: 0,
            remote,
            filter,
            frames: frames_tx,
            connection: connection.clone(),
        };
        (shared.open_stream(stream), shared.heartbeat_period)
    };
    let writing = async {
        let mut head = http1::status_line(200);
        head.push_str("Content-Type: text/event-stream;charset=UTF-8\r\n");
        for (name, value) in CACHE_HEADERS {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        connection.write_all(head.as_bytes()).await?;
        connection.flush().await?;
        let mut heartbeats = (!period.is_zero()).then(|| Timer::interval(period));
        loop {
            let next = future::or(
                async { frames.recv().await.map_or(Write::End, Write::Bytes) },
                async {
                    match heartbeats.as_mut() {
                        Some(timer) => {
                            timer.next().await;
                            Write::Heartbeat
                        }
                        None => future::pending().await,
                    }
                },
            )
            .await;
            match next {
                Write::Bytes(bytes) => connection.write_all(&bytes).await?,
                // Jetty writes the CRLF in two flushes; clients must cope with the split.
                Write::Heartbeat => {
                    connection.write_all(b"\r").await?;
                    connection.flush().await?;
                    connection.write_all(b"\n").await?;
                }
                Write::End => return Ok::<(), io::Error>(()),
            }
            connection.flush().await?;
        }
    };
    // The client sends nothing more; end of input means it left.
    let client_gone = async {
        let mut discard = [0u8; 512];
        while matches!(reader.read(&mut discard).await, Ok(n) if n > 0) {}
    };
    future::or(
        async {
            let _ = writing.await;
        },
        client_gone,
    )
    .await;
    lock(shared).close_stream(id);
}

/// How long a failing callback URL is skipped, and why.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

/// POSTs each event to its subscribers, one after the other, until the server stops.
async fn deliver_callbacks(callbacks: Receiver<Callback>, client: surf::Client) {
    let mut backoffs: HashMap<String, Backoff> = HashMap::new();
    while let Ok(Callback { urls, event }) = callbacks.recv().await {
        for url in urls {
            let backoff = backoffs.entry(url.clone()).or_default();
            if backoff.until.is_some_and(|until| Instant::now() < until) {
                log::debug!("simulated Marathon: skipping callback {url} (backing off)");
                continue;
            }
            match post_event(&client, &url, &event.json).await {
                Ok(()) => *backoff = Backoff::default(),
                Err(why) => {
                    backoff.failures = backoff.failures.saturating_add(1);
                    let wait = Duration::from_secs(1u64 << backoff.failures.min(16))
                        .min(MAX_CALLBACK_BACKOFF);
                    backoff.until = Some(Instant::now() + wait);
                    log::warn!(
                        "simulated Marathon: {} to callback {url} failed ({why}); skipping it for {}s",
                        event.event_type,
                        wait.as_secs()
                    );
                }
            }
        }
    }
}

/// One callback POST; `Err` says why it failed.
async fn post_event(client: &surf::Client, url: &str, json: &[u8]) -> Result<(), String> {
    let parsed = Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback {
        return Err("not a loopback URL; the simulator only calls loopback".to_owned());
    }
    let mut request = surf::Request::new(HttpMethod::Post, parsed);
    request.set_body(Body::from_bytes(json.to_vec()));
    // After the body, which would otherwise pick its own content type.
    request.insert_header("Content-Type", JSON);
    request.insert_header("Accept", JSON);
    let exchange = async {
        let mut response = client.send(request).await.map_err(|e| e.to_string())?;
        // Read to the end so the connection can be reused.
        let _ = response.body_bytes().await;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", u16::from(response.status())))
        }
    };
    let timeout = async {
        Timer::after(CALLBACK_TIMEOUT).await;
        Err(format!("no answer in {}s", CALLBACK_TIMEOUT.as_secs()))
    };
    future::or(exchange, timeout).await
}
