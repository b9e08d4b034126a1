//! # Embedding `consular-core` in a plain blocking loop, with no async runtime
//!
//! One thread owns the [`Bridge`] and runs the loop the crate docs describe: drain
//! [`Bridge::poll_output`] to its [`Output::Timeout`], then wait for one input or that time.
//! Helper threads do blocking `std::net` IO and report back over a channel; `now` is the
//! `Instant` elapsed since start.
//!
//! - **Inbound:** a `TcpListener` accepts Marathon's callback POSTs; a tiny HTTP/1.1 parser reads
//!   the request line, headers and `Content-Length` body, and the connection waits in a table
//!   for the bridge's [`Output::Reply`].
//! - **Outbound:** one thread per request writes it with `Connection: close` and reads the
//!   response to EOF. Requests say `HTTP/1.0`, so no peer answers with chunked encoding.
//! - **Event stream:** one thread reads the response head, then forwards each chunk; the socket
//!   is shut down on [`Output::CloseStream`].
//!
//! Plain `http://` only, one connection per request: this shows the shape of a driver; the
//! `consular` binary is the real one (TLS, credentials, keep-alive). Settings come from the
//! environment: `MARATHON` (default `http://127.0.0.1:8080`), `CONSUL` (default
//! `http://127.0.0.1:8500`; agents are reached on its port), `LISTEN` (default `127.0.0.1:7000`)
//! and, to fall back to HTTP callbacks when Marathon has no event stream, `CALLBACK_URL`. It
//! follows the event stream and syncs with purge every 30 s:
//!
//! ```text
//! MARATHON=http://marathon:8080 CONSUL=http://127.0.0.1:8500 cargo run -p consular-core --example blocking_loop
//! ```
//!
//! `--self-test` serves the in-memory SimMarathon and SimConsul on loopback, runs the loop
//! against them, checks that a sync registers a running task and that a `TASK_KILLED` callback
//! POSTed to the listener deregisters it, and exits 0 (CI runs this):
//!
//! ```text
//! cargo run -p consular-core --example blocking_loop -- --self-test
//! ```

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use consular_core::{
    Bridge, Config, EventSource, InboundId, Method, Output, Request, RequestId, Response, Target,
    TransportError,
};

/// What the IO threads report to the loop.
enum Input {
    Inbound(TcpStream, String, Vec<u8>),
    Response(RequestId, Result<Response, TransportError>),
    /// The stream's socket, so the loop can shut it down on `Output::CloseStream`.
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
                        let address = peers.address(&request.target);
                        let result = exchange(&address, &request, "application/json")
                            .and_then(|conn| read_response(BufReader::new(conn)));
                        let _ = tx.send(Input::Response(request.id, result));
                    });
                }
                Output::OpenStream(request) => {
                    streams.insert(request.id, None);
                    let (tx, peers) = (tx.clone(), peers.clone());
                    thread::spawn(move || {
                        let address = peers.address(&request.target);
                        match exchange(&address, &request, "text/event-stream") {
                            Ok(conn) => {
                                let socket = conn.try_clone().expect("a socket handle");
                                let _ = tx.send(Input::StreamSocket(request.id, socket));
                                follow(conn, request.id, tx);
                            }
                            Err(e) => drop(tx.send(Input::StreamClosed(request.id, Some(e)))),
                        }
                    });
                }
                Output::CloseStream(id) => {
                    if let Some(Some(conn)) = streams.remove(&id) {
                        let _ = conn.shutdown(Shutdown::Both);
                    }
                }
                Output::Reply(id, reply) => {
                    if let Some(conn) = waiting.remove(&id) {
                        write_response(conn, reply.status, "application/json", &reply.body);
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
            Ok(Input::Inbound(conn, path, body)) => {
                next_inbound += 1;
                waiting.insert(InboundId(next_inbound), conn);
                let path = path.split('?').next().unwrap_or_default();
                let result = bridge.handle_inbound(now, InboundId(next_inbound), path, &body);
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

/// Accepts connections; one thread reads each request.
fn accept(listener: TcpListener, tx: Sender<Input>) {
    for conn in listener.incoming().flatten() {
        let tx = tx.clone();
        thread::spawn(move || {
            if let Ok((_, target, body)) = read_request(&conn) {
                let _ = tx.send(Input::Inbound(conn, target, body));
            }
        });
    }
}

/// Writes a whole response and closes the connection.
fn write_response(mut conn: TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!("HTTP/1.1 {status} -\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = conn
        .write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body));
}

/// Reads one HTTP/1.1 request: method, request target and `Content-Length` body.
fn read_request(conn: &TcpStream) -> io::Result<(String, String, Vec<u8>)> {
    let mut reader = BufReader::new(conn);
    let (start_line, length) = read_head(&mut reader)?;
    let mut parts = start_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("/"),
    );
    let mut body = vec![0; length.unwrap_or(0)];
    reader.read_exact(&mut body)?;
    Ok((method.to_string(), target.to_string(), body))
}

/// Reads a request or response head: its first line and the `Content-Length`, if any.
fn read_head(reader: &mut impl BufRead) -> io::Result<(String, Option<usize>)> {
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok((first.trim().to_string(), length));
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            }
        }
    }
}

/// Connects and writes `request`; the caller reads the answer.
fn exchange(address: &str, request: &Request, accept: &str) -> Result<TcpStream, TransportError> {
    let body = request.body.as_deref().unwrap_or_default();
    let (method, path) = (request.method, &request.path_and_query);
    send(address, method, path, body, request.timeout, accept)
}

/// Connects to `address` and writes one request; reads time out after `timeout`.
fn send(
    address: &str,
    method: Method,
    path: &str,
    body: &[u8],
    timeout: Duration,
    accept: &str,
) -> Result<TcpStream, TransportError> {
    let mut conn = TcpStream::connect(address)
        .map_err(|e| TransportError::Connect(format!("{address}: {e}")))?;
    conn.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
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

/// Reads a whole response: status from the first line, body up to `Content-Length` or EOF.
fn read_response(mut reader: BufReader<TcpStream>) -> Result<Response, TransportError> {
    let (status_line, length) = read_head(&mut reader).map_err(io_error)?;
    let mut body = Vec::new();
    reader.read_to_end(&mut body).map_err(io_error)?;
    body.truncate(length.unwrap_or(body.len()));
    Ok(Response {
        status: status(&status_line)?,
        body,
    })
}

/// Follows the event stream: the head, then every chunk until EOF or an error.
fn follow(conn: TcpStream, id: RequestId, tx: Sender<Input>) {
    let mut reader = BufReader::new(conn);
    let opened = read_head(&mut reader)
        .map_err(io_error)
        .and_then(|(line, _)| status(&line));
    let status = match opened {
        Ok(status) => status,
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

fn status(line: &str) -> Result<u16, TransportError> {
    let code = line.split(' ').nth(1).and_then(|s| s.parse().ok());
    code.ok_or_else(|| TransportError::Io(format!("not an HTTP status line: {line:?}")))
}

fn io_error(e: io::Error) -> TransportError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransportError::Timeout,
        _ => TransportError::Io(e.to_string()),
    }
}

mod self_test {
    //! SimMarathon and SimConsul served over blocking loopback HTTP, and the loop run against them.

    use std::sync::{Arc, Mutex};

    use consular_sim::{MarathonVersion, SimConsul, SimMarathon, SimResponse};

    use super::*;

    pub fn run() -> ! {
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
        let timeout = Duration::from_secs(5);
        let post = send(
            &own_address,
            Method::Post,
            "/events",
            event.as_bytes(),
            timeout,
            "application/json",
        );
        let reply = post.and_then(|conn| read_response(BufReader::new(conn)));
        let reply = reply.expect("the listener answers");
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        wait_until("the TASK_KILLED callback deregisters it", || !registered());
        println!("self-test passed: {task} registered by a sync, deregistered by a callback");
        std::process::exit(0);
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
    fn serve(handle: impl Fn(Method, &str, &[u8]) -> SimResponse + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Ok((verb, target, body)) = read_request(&conn) {
                    let r = handle(method(&verb), &target, &body);
                    write_response(conn, r.status, r.content_type, &r.body);
                }
            }
        });
        address
    }
}
