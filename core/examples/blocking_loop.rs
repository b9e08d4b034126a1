//! # Embedding `consular-core` in a plain blocking loop, with no async runtime
//!
//! One thread owns the [`Bridge`] and runs the loop the crate docs describe: drain
//! [`Bridge::poll_output`] to its [`Output::Timeout`], then wait for one input or that time.
//! Helper threads do blocking `std::net` IO and report back over a channel; `now` is the
//! `Instant` elapsed since start.
//!
//! It keeps the driver contract of the crate docs ("The driver contract") as the real driver in
//! `consular-adapters` does:
//!
//! - **Concurrency:** one thread per [`Output::Request`] and per [`Output::OpenStream`], started
//!   at once; the core's in-flight limits are the only ones.
//! - **Response limits:** a `Content-Length` over [`Request::response_limit`], or a body that
//!   grows past it, is [`TransportError::TooLarge`]; the rest is never read.
//! - **Timeouts:** one deadline per request, [`Request::timeout`] from the start, bounds connect,
//!   send and every read (each read's timeout is what is left of it); past it the answer is
//!   [`TransportError::Timeout`]. For a stream the deadline bounds the head and redirects only.
//! - **Stream redirects:** followed (at most 5 hops) only to the configured Marathon's host:port
//!   or to the leader it names at `GET /v2/leader`. This example speaks plain `http://` only, so a
//!   redirect to `https://` is refused like any other, as a [`TransportError::Connect`] saying
//!   why, and the refused host gets no request. Ordinary requests follow no redirect.
//! - **Inbound:** a `TcpListener` accepts Marathon's callback POSTs; ids are a counter, each
//!   connection waits in a table for the core's one [`Output::Reply`], and
//!   [`Bridge::handle_inbound`] gets the request target with its query; a [`ReplyKind::Metrics`]
//!   reply gets [`Bridge::metrics`] as text. A head over 16 KiB, a
//!   body over 1 MiB or a client slower than 10 s is answered (or dropped) here, never reaching
//!   the core.
//! - **[`Output::CloseStream`]:** the stream's socket is shut down; anything its thread still
//!   reports is dropped.
//!
//! Why its own few lines of HTTP/1.1 rather than the workspace's shared helper
//! (`consular_adapters::simulator::http1`): that helper is async (smol) and lives in the adapters,
//! and this example exists to show the core driven with `std::net` threads and no dependency
//! beyond the core; depending on the adapters would defeat that. So requests say `HTTP/1.0` with
//! `Connection: close` (no peer answers with chunked encoding), one connection per request, and
//! the tiny parser reads a status or request line, the headers it needs and a body. Plain
//! `http://` only: this shows the shape of a driver; the `consular` binary is the real one (TLS,
//! credentials, keep-alive).
//!
//! Settings come from the environment: `MARATHON` (default `http://127.0.0.1:8080`), `CONSUL`
//! (default `http://127.0.0.1:8500`; agents are reached on its port), `LISTEN` (default
//! `127.0.0.1:7000`) and, to fall back to HTTP callbacks when Marathon has no event stream,
//! `CALLBACK_URL`. It follows the event stream and syncs with purge every 30 s:
//!
//! ```text
//! MARATHON=http://marathon:8080 CONSUL=http://127.0.0.1:8500 cargo run -p consular-core --example blocking_loop
//! ```
//!
//! `--self-test` serves the in-memory SimMarathon and SimConsul (from `consular-sim`, a
//! dev-dependency) on loopback, runs the loop against them, checks that a sync registers a running
//! task and that a `TASK_KILLED` callback POSTed to the listener (with the events secret in its
//! query) deregisters it, then checks the client's response limit, its timeout and its redirect
//! rule against small loopback servers, and exits 0 (CI runs this):
//!
//! ```text
//! cargo run -p consular-core --example blocking_loop -- --self-test
//! ```

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use consular_core::{
    Bridge, Config, EventSource, InboundId, Method, Output, ReplyKind, Request, RequestId,
    Response, Target, TransportError,
};

/// Redirects of the event stream followed at most.
const MAX_REDIRECTS: usize = 5;
/// Largest head (request or response) read.
const MAX_HEAD_BYTES: u64 = 16 * 1024;
/// Largest inbound body taken (Marathon's events are far smaller).
const MAX_INBOUND_BODY: usize = 1 << 20;
/// How long an inbound client may take to send its request.
const INBOUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `/v2/leader` answer read.
const MAX_LEADER_ANSWER: usize = 4 * 1024;

/// What the IO threads report to the loop.
enum Input {
    Inbound(TcpStream, String, Vec<u8>),
    Response(RequestId, Result<Response, TransportError>),
    /// The stream's socket (one per redirect hop), so the loop can shut it down on
    /// `Output::CloseStream`.
    StreamSocket(RequestId, TcpStream),
    StreamOpen(RequestId, u16),
    StreamData(RequestId, Vec<u8>),
    StreamClosed(RequestId, Option<TransportError>),
}

/// `host:port` of each peer; agents listen on Consul's port.
#[derive(Clone)]
struct Peers {
    marathon: String,
    consul: String,
    consul_port: u16,
}

impl Peers {
    fn address(&self, target: &Target) -> String {
        match target {
            Target::Marathon => self.marathon.clone(),
            Target::Consul => self.consul.clone(),
            Target::Agent(host) => format!("{host}:{}", self.consul_port),
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--self-test") {
        self_test::run();
    }
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let host_port = |url: String| {
        let rest = url
            .strip_prefix("http://")
            .expect("only http:// URLs are supported");
        let rest = rest.trim_end_matches('/');
        if rest.contains(':') {
            rest.to_string()
        } else {
            format!("{rest}:80")
        }
    };
    let consul = host_port(env("CONSUL", "http://127.0.0.1:8500"));
    let consul_port = consul
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let peers = Peers {
        marathon: host_port(env("MARATHON", "http://127.0.0.1:8080")),
        consul,
        consul_port,
    };
    let config = Config {
        callback_url: std::env::var("CALLBACK_URL").ok(),
        sync_interval: Duration::from_secs(30),
        purge: true,
        events: EventSource::Auto,
        ..Config::default()
    };
    let listener = TcpListener::bind(env("LISTEN", "127.0.0.1:7000")).expect("LISTEN is free");
    run(config, peers, listener);
}

/// The loop: owns the bridge, never returns.
fn run(config: Config, peers: Peers, listener: TcpListener) -> ! {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let accept_tx = tx.clone();
    thread::spawn(move || accept(listener, accept_tx));
    let mut bridge = Bridge::new(config, Duration::ZERO);
    let mut waiting: HashMap<InboundId, TcpStream> = HashMap::new();
    // Streams the bridge wants, with their socket once connected.
    let mut streams: HashMap<RequestId, Option<TcpStream>> = HashMap::new();
    let mut next_inbound = 0;
    loop {
        // The core's one rule: after every input, drain to the Timeout.
        let wake = loop {
            match bridge.poll_output() {
                Output::Request(request) => {
                    let (tx, peers) = (tx.clone(), peers.clone());
                    thread::spawn(move || {
                        let result = execute(&peers, &request);
                        let _ = tx.send(Input::Response(request.id, result));
                    });
                }
                Output::OpenStream(request) => {
                    streams.insert(request.id, None);
                    let (tx, peers) = (tx.clone(), peers.clone());
                    thread::spawn(move || follow(&peers, &request, &tx));
                }
                Output::CloseStream(id) => {
                    if let Some(Some(conn)) = streams.remove(&id) {
                        let _ = conn.shutdown(Shutdown::Both);
                    }
                }
                Output::Reply(id, reply) => {
                    if let Some(conn) = waiting.remove(&id) {
                        match reply.kind {
                            ReplyKind::Json => {
                                let headers = [("Content-Type", "application/json")];
                                write_response(conn, reply.status, &headers, &reply.body);
                            }
                            // `/metrics`: the body is the driver's to write. Prometheus text is the
                            // adapters' (`consular_adapters::metrics`); this example, which depends
                            // on the core alone, shows the counters as Rust prints them.
                            ReplyKind::Metrics => {
                                let text = format!("{:#?}\n", bridge.metrics());
                                let headers = [("Content-Type", "text/plain; charset=utf-8")];
                                write_response(conn, reply.status, &headers, text.as_bytes());
                            }
                        }
                    }
                }
                Output::Log(record) => eprintln!("{:?}: {}", record.level, record.message),
                Output::Timeout(at) => break at,
            }
        };
        let input = match wake {
            Some(at) => rx.recv_timeout(at.saturating_sub(start.elapsed())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = start.elapsed();
        match input {
            Err(RecvTimeoutError::Timeout) => bridge.handle_timeout(now),
            Err(RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
            Ok(Input::Inbound(conn, path_and_query, body)) => {
                next_inbound += 1;
                let id = InboundId(next_inbound);
                waiting.insert(id, conn);
                // The whole target: the core checks `?registration=` and `?secret=`.
                let result = bridge.handle_inbound(now, id, &path_and_query, &body);
                result.expect("inbound ids are never reused");
            }
            Ok(Input::Response(id, result)) => bridge.handle_response(now, id, result),
            Ok(Input::StreamSocket(id, conn)) => match streams.get_mut(&id) {
                Some(slot) => *slot = Some(conn),
                None => drop(conn.shutdown(Shutdown::Both)),
            },
            // A stream the bridge dropped reports nothing more.
            Ok(Input::StreamOpen(id, status)) if streams.contains_key(&id) => {
                bridge.handle_stream_open(now, id, status)
            }
            Ok(Input::StreamData(id, data)) if streams.contains_key(&id) => {
                bridge.handle_stream_data(now, id, &data)
            }
            Ok(Input::StreamClosed(id, error)) if streams.remove(&id).is_some() => {
                bridge.handle_stream_closed(now, id, error)
            }
            Ok(_) => {}
        }
    }
}

// ---- inbound ------------------------------------------------------------------------------

/// Accepts connections; one thread reads each request. What cannot be read within the limits is
/// answered here and never reaches the core.
fn accept(listener: TcpListener, tx: Sender<Input>) {
    for conn in listener.incoming().flatten() {
        let tx = tx.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + INBOUND_TIMEOUT;
            match read_request(&conn, deadline) {
                Ok((_, target, body)) => drop(tx.send(Input::Inbound(conn, target, body))),
                Err(Refusal::Answer(status, why)) => {
                    let body = format!("{{\"error\": \"{why}\"}}");
                    let headers = [("Content-Type", "application/json")];
                    write_response(conn, status, &headers, body.as_bytes());
                }
                Err(Refusal::Drop) => {}
            }
        });
    }
}

/// Why an inbound request was not taken.
enum Refusal {
    /// Answer with this status and reason.
    Answer(u16, &'static str),
    /// The client left or was too slow: nothing to answer.
    Drop,
}

/// Reads one request: method, request target (path and query) and `Content-Length` body.
fn read_request(conn: &TcpStream, deadline: Instant) -> Result<(String, String, Vec<u8>), Refusal> {
    let mut reader = BufReader::new(conn);
    let head = read_head(&mut reader, deadline).map_err(|e| match e {
        HeadError::TooLarge => Refusal::Answer(431, "request head too large"),
        HeadError::Malformed(why) => Refusal::Answer(400, why),
        HeadError::Transport(_) => Refusal::Drop,
    })?;
    let mut parts = head.first_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("/"),
    );
    if head.chunked {
        return Err(Refusal::Answer(411, "chunked bodies are not taken"));
    }
    let length = head.length.unwrap_or(0);
    if length > MAX_INBOUND_BODY {
        return Err(Refusal::Answer(413, "body too large"));
    }
    let body = read_body(&mut reader, Some(length), MAX_INBOUND_BODY, deadline)
        .map_err(|_| Refusal::Drop)?;
    Ok((method.to_string(), target.to_string(), body))
}

/// Writes a whole response and closes the connection.
fn write_response(mut conn: TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status} -\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let _ = conn
        .write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body));
}

// ---- the few lines of HTTP/1.x ------------------------------------------------------------

/// The parts of a head this driver looks at.
struct Head {
    /// The request or status line, without CRLF.
    first_line: String,
    length: Option<usize>,
    chunked: bool,
    location: Option<String>,
}

enum HeadError {
    TooLarge,
    Malformed(&'static str),
    Transport(TransportError),
}

impl From<HeadError> for TransportError {
    fn from(e: HeadError) -> TransportError {
        match e {
            HeadError::TooLarge => TransportError::Io("response head too large".into()),
            HeadError::Malformed(why) => TransportError::Io(why.into()),
            HeadError::Transport(e) => e,
        }
    }
}

/// Reads a head of at most [`MAX_HEAD_BYTES`] before `deadline`.
fn read_head<R: Read + Timed>(
    reader: &mut BufReader<R>,
    deadline: Instant,
) -> Result<Head, HeadError> {
    let mut head = Head {
        first_line: String::new(),
        length: None,
        chunked: false,
        location: None,
    };
    let mut budget = MAX_HEAD_BYTES;
    let mut first = true;
    loop {
        reader
            .get_ref()
            .time_out_at(deadline)
            .map_err(HeadError::Transport)?;
        let mut line = Vec::new();
        let read = reader
            .by_ref()
            .take(budget)
            .read_until(b'\n', &mut line)
            .map_err(|e| HeadError::Transport(io_error(e)))?;
        budget -= read as u64;
        if !line.ends_with(b"\n") {
            return Err(if budget == 0 {
                HeadError::TooLarge
            } else {
                HeadError::Transport(TransportError::Io("the head ended early".into()))
            });
        }
        let line = String::from_utf8(line).map_err(|_| HeadError::Malformed("head not UTF-8"))?;
        let line = line.trim_end();
        if first {
            head.first_line = line.to_string();
            first = false;
            continue;
        }
        if line.is_empty() {
            return Ok(head);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HeadError::Malformed("a header line without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse()
                .map_err(|_| HeadError::Malformed("bad length"))?;
            head.length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("location") {
            head.location = Some(value.to_string());
        }
    }
}

/// Reads a body of `length` bytes (or to the end of the stream), refusing more than `limit`.
fn read_body<R: Read + Timed>(
    reader: &mut BufReader<R>,
    length: Option<usize>,
    limit: usize,
    deadline: Instant,
) -> Result<Vec<u8>, TransportError> {
    if length.is_some_and(|n| n > limit) {
        return Err(TransportError::TooLarge(limit));
    }
    let mut body = Vec::with_capacity(length.unwrap_or(0).min(1 << 20));
    let mut chunk = [0; 8192];
    while length.is_none_or(|n| body.len() < n) {
        reader.get_ref().time_out_at(deadline)?;
        let want = length.map_or(chunk.len(), |n| (n - body.len()).min(chunk.len()));
        match reader.read(&mut chunk[..want]).map_err(io_error)? {
            0 if length.is_none() => break,
            0 => return Err(TransportError::Io("the body ended early".into())),
            n if body.len() + n > limit => return Err(TransportError::TooLarge(limit)),
            n => body.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(body)
}

/// A socket whose reads can be bounded by a deadline.
trait Timed {
    /// Sets the read timeout to what is left until `deadline`; `Timeout` if nothing is.
    fn time_out_at(&self, deadline: Instant) -> Result<(), TransportError>;
}

impl Timed for &TcpStream {
    fn time_out_at(&self, deadline: Instant) -> Result<(), TransportError> {
        let left = remaining(deadline)?;
        self.set_read_timeout(Some(left)).map_err(io_error)
    }
}

impl Timed for TcpStream {
    fn time_out_at(&self, deadline: Instant) -> Result<(), TransportError> {
        (&self).time_out_at(deadline)
    }
}

fn remaining(deadline: Instant) -> Result<Duration, TransportError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(TransportError::Timeout),
    }
}

fn status(line: &str) -> Result<u16, TransportError> {
    let code = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    code.ok_or_else(|| TransportError::Io(format!("not an HTTP status line: {line:?}")))
}

fn io_error(e: io::Error) -> TransportError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransportError::Timeout,
        _ => TransportError::Io(e.to_string()),
    }
}

// ---- outbound -----------------------------------------------------------------------------

/// Connects to `address` and writes one request, all before `deadline`.
fn send(
    address: &str,
    method: Method,
    path: &str,
    body: &[u8],
    accept: &str,
    deadline: Instant,
) -> Result<TcpStream, TransportError> {
    let connect_error = |e: String| TransportError::Connect(format!("{address}: {e}"));
    let socket = address
        .to_socket_addrs()
        .map_err(|e| connect_error(e.to_string()))?
        .next()
        .ok_or_else(|| connect_error("no address".into()))?;
    let mut conn = TcpStream::connect_timeout(&socket, remaining(deadline)?).map_err(|e| {
        match io_error(e) {
            TransportError::Timeout => TransportError::Timeout,
            other => connect_error(other.to_string()),
        }
    })?;
    conn.set_write_timeout(Some(remaining(deadline)?))
        .map_err(io_error)?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nAccept: {accept}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body))
        .map_err(io_error)?;
    Ok(conn)
}

/// One whole exchange within `timeout`, the body limited to `limit`.
fn exchange(
    address: &str,
    method: Method,
    path: &str,
    body: &[u8],
    limit: usize,
    timeout: Duration,
) -> Result<Response, TransportError> {
    let deadline = Instant::now() + timeout;
    let conn = send(address, method, path, body, "application/json", deadline)?;
    let mut reader = BufReader::new(conn);
    let head = read_head(&mut reader, deadline)?;
    let status = status(&head.first_line)?;
    let body = read_body(&mut reader, head.length, limit, deadline)?;
    Ok(Response { status, body })
}

/// Sends `request` to its target and reads the whole response (no redirects followed).
fn execute(peers: &Peers, request: &Request) -> Result<Response, TransportError> {
    let address = peers.address(&request.target);
    let body = request.body.as_deref().unwrap_or_default();
    let (method, path) = (request.method, &request.path_and_query);
    exchange(
        &address,
        method,
        path,
        body,
        request.response_limit,
        request.timeout,
    )
}

/// Opens the stream `request` (following redirects the contract allows), then forwards each
/// chunk until EOF or an error.
fn follow(peers: &Peers, request: &Request, tx: &Sender<Input>) {
    let id = request.id;
    let on_socket = |conn: &TcpStream| {
        if let Ok(socket) = conn.try_clone() {
            let _ = tx.send(Input::StreamSocket(id, socket));
        }
    };
    let deadline = Instant::now() + request.timeout;
    let (status, mut reader) =
        match open_stream(peers, &request.path_and_query, deadline, on_socket) {
            Ok(opened) => opened,
            Err(e) => return drop(tx.send(Input::StreamClosed(id, Some(e)))),
        };
    // The request timeout bounded the head only; the core watches the stream's heartbeats.
    let _ = reader.get_ref().set_read_timeout(None);
    let _ = tx.send(Input::StreamOpen(id, status));
    let mut chunk = [0; 8192];
    let end = loop {
        match reader.read(&mut chunk) {
            Ok(0) => break None,
            Ok(n) => drop(tx.send(Input::StreamData(id, chunk[..n].to_vec()))),
            Err(e) => break Some(io_error(e)),
        }
    };
    let _ = tx.send(Input::StreamClosed(id, end));
}

/// Sends the stream's `GET` to the configured Marathon and follows its redirects: only to that
/// host:port or to the leader it names, at most [`MAX_REDIRECTS`] hops, all before `deadline`.
/// Returns the final status with the reader positioned at the body.
fn open_stream(
    peers: &Peers,
    path: &str,
    deadline: Instant,
    mut on_socket: impl FnMut(&TcpStream),
) -> Result<(u16, BufReader<TcpStream>), TransportError> {
    let (mut address, mut path) = (peers.marathon.clone(), path.to_string());
    let mut leader: Option<Result<String, String>> = None;
    for _ in 0..=MAX_REDIRECTS {
        let conn = send(
            &address,
            Method::Get,
            &path,
            b"",
            "text/event-stream",
            deadline,
        )?;
        on_socket(&conn);
        let mut reader = BufReader::new(conn);
        let head = read_head(&mut reader, deadline)?;
        let status = status(&head.first_line)?;
        let location = head
            .location
            .filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308));
        let Some(location) = location else {
            return Ok((status, reader));
        };
        let (to, to_path) = redirect_target(&address, &location)?;
        if !to.eq_ignore_ascii_case(&peers.marathon) {
            let named = leader.get_or_insert_with(|| ask_leader(peers, deadline));
            match named {
                Ok(named) if named.eq_ignore_ascii_case(&to) => {}
                Ok(named) => {
                    return Err(TransportError::Connect(format!(
                        "refused the event stream's redirect to {to}: Marathon names {named} as its leader"
                    )))
                }
                Err(why) => {
                    return Err(TransportError::Connect(format!(
                        "refused the event stream's redirect to {to}: the leader is unknown ({why})"
                    )))
                }
            }
        }
        (address, path) = (to, to_path);
    }
    Err(TransportError::Io(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

/// `host:port` and path of a `Location` (absolute `http://` or a path on `from`).
fn redirect_target(from: &str, location: &str) -> Result<(String, String), TransportError> {
    let refuse =
        |why: &str| TransportError::Connect(format!("refused the event stream's redirect: {why}"));
    if location.starts_with('/') && !location.starts_with("//") {
        return Ok((from.to_string(), location.to_string()));
    }
    let Some(rest) = location.strip_prefix("http://") else {
        return Err(refuse(
            "not to http:// (this example speaks plain http only)",
        ));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(refuse("no host, or credentials in the URL"));
    }
    let host_port = match authority.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_string(),
        _ => format!("{authority}:80"),
    };
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    Ok((host_port, path))
}

/// `GET /v2/leader` at the configured Marathon: `host:port` of the leader, or why not.
fn ask_leader(peers: &Peers, deadline: Instant) -> Result<String, String> {
    let timeout = remaining(deadline).map_err(|e| e.to_string())?;
    let response = exchange(
        &peers.marathon,
        Method::Get,
        "/v2/leader",
        b"",
        MAX_LEADER_ANSWER,
        timeout,
    )
    .map_err(|e| format!("GET /v2/leader: {e}"))?;
    if response.status != 200 {
        return Err(format!("GET /v2/leader answered {}", response.status));
    }
    let answer: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|_| "GET /v2/leader: not JSON".to_string())?;
    let leader = answer["leader"]
        .as_str()
        .ok_or("GET /v2/leader named no leader")?;
    Ok(match leader.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => leader.to_string(),
        _ => format!("{leader}:80"),
    })
}

mod self_test {
    //! SimMarathon and SimConsul served over blocking loopback HTTP, the loop run against them,
    //! then the client's limit, timeout and redirect rule checked against tiny servers.

    use std::sync::{Arc, Mutex};

    use consular_sim::{MarathonVersion, SimConsul, SimMarathon, SimResponse};

    use super::*;

    pub fn run() -> ! {
        bridge_against_the_simulators();
        response_limits_and_timeouts_hold();
        redirects_follow_the_rule();
        println!("self-test passed");
        std::process::exit(0);
    }

    fn bridge_against_the_simulators() {
        let marathon = Arc::new(Mutex::new(SimMarathon::new(MarathonVersion::V1_10)));
        let consul = Arc::new(Mutex::new(SimConsul::new()));
        consul.lock().unwrap().add_agent("node-1", "127.0.0.1");
        let task = {
            let mut m = marathon.lock().unwrap();
            m.put_app("/web", &[("domain", "web.example")]);
            let task = m.start_task("/web", "127.0.0.1", &[31000]);
            m.set_task_state(&task, "TASK_RUNNING");
            task
        };
        let m = marathon.clone();
        let marathon_address =
            serve(move |verb, path, body| m.lock().unwrap().handle(verb, path, body));
        let c = consul.clone();
        let consul_address =
            serve(move |verb, path, body| c.lock().unwrap().handle("127.0.0.1", verb, path, body));
        let consul_port = consul_address.rsplit(':').next().unwrap().parse().unwrap();
        let peers = Peers {
            marathon: marathon_address,
            consul: consul_address,
            consul_port,
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let own_address = listener.local_addr().unwrap().to_string();
        let config = Config {
            sync_interval: Duration::from_secs(60),
            purge: true,
            request_timeout: Duration::from_secs(2),
            // Reaches the core only if the driver passes the query on.
            events_secret: Some("s3cret".to_owned()),
            ..Config::default()
        };
        thread::spawn(move || super::run(config, peers, listener));

        let registered = || {
            consul
                .lock()
                .unwrap()
                .all_services()
                .iter()
                .any(|(_, s)| s.id == task)
        };
        wait_until("the first sync registers the running task", registered);
        let event = format!(
            r#"{{"eventType":"status_update_event","taskId":"{task}","taskStatus":"TASK_KILLED","appId":"/web","host":"127.0.0.1","ports":[31000]}}"#
        );
        let reply = exchange(
            &own_address,
            Method::Post,
            "/events?secret=s3cret",
            event.as_bytes(),
            1 << 20,
            Duration::from_secs(5),
        );
        let reply = reply.expect("the listener answers");
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        wait_until("the TASK_KILLED callback deregisters it", || !registered());
        println!("self-test: {task} registered by a sync, deregistered by a callback");
    }

    fn response_limits_and_timeouts_hold() {
        let big = serve(|_, _, _| answer(200, &[], vec![b'x'; 2048]));
        let get = |limit| exchange(&big, Method::Get, "/", b"", limit, Duration::from_secs(5));
        assert_eq!(get(2048).map(|r| r.body.len()), Ok(2048));
        assert_eq!(get(2047), Err(TransportError::TooLarge(2047)));

        // Accepts, then never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let _held: Vec<TcpStream> = silent.incoming().flatten().collect();
        });
        let started = Instant::now();
        let timeout = Duration::from_millis(300);
        let result = exchange(&address, Method::Get, "/", b"", 1024, timeout);
        assert_eq!(result, Err(TransportError::Timeout));
        assert!(started.elapsed() < timeout + Duration::from_secs(1));
        println!("self-test: response limit and request timeout enforced");
    }

    fn redirects_follow_the_rule() {
        let stream = serve(|_, _, _| answer(200, &[("Content-Type", "text/event-stream")], vec![]));
        let elsewhere = serve(|_, _, _| answer(200, &[], vec![]));
        let leader = stream.clone();
        let (to_leader, to_elsewhere) = (stream.clone(), elsewhere.clone());
        let standby = serve(move |_, path, _| match path {
            "/v2/leader" => answer(200, &[], format!(r#"{{"leader":"{leader}"}}"#).into_bytes()),
            "/to-leader" => moved(&format!("http://{to_leader}/v2/events")),
            "/to-elsewhere" => moved(&format!("http://{to_elsewhere}/v2/events")),
            "/to-https" => moved(&format!("https://{to_leader}/v2/events")),
            "/to-self" => moved("/to-leader"),
            _ => answer(404, &[], vec![]),
        });
        let peers = Peers {
            marathon: standby,
            consul: String::new(),
            consul_port: 0,
        };
        let open = |path: &str| {
            let deadline = Instant::now() + Duration::from_secs(5);
            open_stream(&peers, path, deadline, |_| {}).map(|(status, _)| status)
        };
        assert_eq!(open("/to-leader"), Ok(200));
        assert_eq!(open("/to-self"), Ok(200));
        for refused in ["/to-elsewhere", "/to-https"] {
            let result = open(refused);
            assert!(
                matches!(result, Err(TransportError::Connect(_))),
                "{refused}: {result:?}"
            );
        }
        println!(
            "self-test: stream redirects followed only to the configured Marathon or its leader"
        );
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: Vec<u8>) -> SimResponse {
        let headers = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
        SimResponse {
            status,
            content_type: "application/json",
            body,
            headers,
        }
    }

    fn moved(location: &str) -> SimResponse {
        answer(307, &[("Location", location)], vec![])
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "self-test failed: {what} did not happen within 20 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn method(name: &str) -> Method {
        match name {
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            _ => Method::Get,
        }
    }

    /// Serves `handle` on a loopback port, one request per connection; returns `host:port`.
    fn serve(
        handle: impl Fn(Method, &str, &[u8]) -> SimResponse + Send + Sync + 'static,
    ) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = Arc::new(handle);
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let handle = handle.clone();
                // Its own thread: a redirect's target may be this very server.
                thread::spawn(move || {
                    let deadline = Instant::now() + INBOUND_TIMEOUT;
                    if let Ok((verb, target, body)) = read_request(&conn, deadline) {
                        let r = handle(method(&verb), &target, &body);
                        let content_type = ("Content-Type", r.content_type);
                        let mut headers: Vec<(&str, &str)> = [content_type]
                            .into_iter()
                            .filter(|(_, v)| !v.is_empty())
                            .collect();
                        headers.extend(r.headers.iter().map(|(n, v)| (*n, v.as_str())));
                        write_response(conn, r.status, &headers, &r.body);
                    }
                });
            }
        });
        address
    }
}
