//! Raw TCP on both sides of the bridge, for tests of what a hostile peer can do.
//!
//! * Client side: [`exchange`] writes bytes exactly as given (a malformed head, a header that is not ASCII …) and
//!   reads one response; [`read_response`] reads one response off a connection without waiting for its end, so a
//!   test can go on writing after a refusal.
//! * Server side: [`FakePeer`], a scripted HTTP/1.1 server on a loopback address of the test's choosing. It counts
//!   connections, records every request head it reads, and answers each with whatever bytes its handler returns
//!   ([`Answer`]), well-formed or not: a hostile Marathon, a recorder that must never be contacted, or an agent that
//!   holds a request unanswered until the test [releases](FakePeer::release) it.
//!
//! Everything is blocking `std::net` with timeouts, one thread per connection; nothing here is fast, and nothing
//! needs to be.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Longest request head a [`FakePeer`] reads; a longer one closes the connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How often blocked [`FakePeer`] threads look whether the peer was dropped.
const STOP_POLL: Duration = Duration::from_millis(100);
/// A [`FakePeer`] gives up on a client that does not take its answer for this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------------------------

/// Connects to `addr`, writes `request` exactly as given, and reads one response within `timeout` → (status, body
/// as text). `Err` if the connection fails or closes before a whole response.
pub fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    read_response(&mut stream)
}

/// Reads one HTTP/1.1 response from `stream`: its head, then a `Content-Length` body (or, without one, everything
/// to the end of the stream) → (status, body as text). Leaves the connection open. Uses the stream's own timeouts.
pub fn read_response(stream: &mut TcpStream) -> io::Result<(u16, String)> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "closed after {} bytes, before the end of a response head",
                    raw.len()
                ),
            ));
        }
        raw.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| head.starts_with("HTTP/1."))
        .ok_or_else(|| bad(format!("bad status line in {head:?}")))?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let mut body = raw[head_end + 4..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut buffer)?;
                if n == 0 {
                    return Err(bad(format!(
                        "closed after {} of {length} body bytes",
                        body.len()
                    )));
                }
                body.extend_from_slice(&buffer[..n]);
            }
            body.truncate(length);
        }
        None => {
            stream.read_to_end(&mut body)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

// ---------------------------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------------------------

/// One request a [`FakePeer`] read.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `GET`, `PUT` …
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The whole head as text (request line and fields, without the blank line).
    pub head: String,
    /// The body, if it had a `Content-Length`.
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What a [`FakePeer`] does with one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Writes these bytes, then closes the connection.
    Close(Vec<u8>),
    /// Writes these bytes, then reads the next request on the same connection.
    KeepAlive(Vec<u8>),
    /// Answers nothing until [`FakePeer::release`] is called (or the peer is dropped), then acts as the inner answer.
    Hold(Box<Answer>),
}

/// A well-formed response: status line, `Content-Length`, the given fields, and `body`.
pub fn response(status: u16, fields: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} Fake\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

type Handler = dyn Fn(&SeenRequest) -> Answer + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    connections: AtomicUsize,
    requests: Mutex<Vec<SeenRequest>>,
    released: Mutex<bool>,
    release_signal: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Vec<SeenRequest>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A scripted HTTP/1.1 server on one address; see the module doc. Dropping it stops accepting, releases held
/// requests, and lets every connection thread end within [`STOP_POLL`].
pub struct FakePeer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: Option<thread::JoinHandle<()>>,
}

impl FakePeer {
    /// Listens on `addr` (port 0 picks one) and answers every request with `handler`'s [`Answer`]. Panics if the
    /// address cannot be bound.
    pub fn start(
        addr: SocketAddr,
        handler: impl Fn(&SeenRequest) -> Answer + Send + Sync + 'static,
    ) -> FakePeer {
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("fake peer: binding {addr}: {e}"));
        let addr = listener.local_addr().expect("the bound address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            released: Mutex::new(false),
            release_signal: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let accepting = {
            let shared = shared.clone();
            thread::spawn(move || accept_loop(listener, shared))
        };
        FakePeer {
            addr,
            shared,
            accepting: Some(accepting),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far (whether or not a request came on them).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request read so far, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.requests().clone()
    }

    /// Requests read so far whose target starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> usize {
        self.shared
            .requests()
            .iter()
            .filter(|r| r.target.starts_with(prefix))
            .count()
    }

    /// Lets every [`Answer::Hold`], held now or later, go on to its answer.
    pub fn release(&self) {
        *self
            .shared
            .released
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.release_signal.notify_all();
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.release();
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                thread::spawn(move || serve(stream, &shared));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Serves requests on one connection until the client closes it, an answer closes it, or the peer stops.
fn serve(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(STOP_POLL)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut pending = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut pending, shared) {
        shared.requests().push(request.clone());
        let mut answer = (shared.handler)(&request);
        while let Answer::Hold(inner) = answer {
            let mut released = shared
                .released
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while !*released && !shared.stopped() {
                released = shared
                    .release_signal
                    .wait_timeout(released, STOP_POLL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            answer = *inner;
        }
        match answer {
            Answer::KeepAlive(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            Answer::Close(bytes) => {
                // The client may stop reading half way (that is often the point); its error is expected.
                let _ = stream.write_all(&bytes);
                let _ = stream.shutdown(Shutdown::Write);
                // Drain briefly, so closing with unread input does not reset the answer away.
                let until = Instant::now() + Duration::from_millis(500);
                let mut sink = [0u8; 4096];
                while Instant::now() < until && !matches!(stream.read(&mut sink), Ok(0) | Err(_)) {}
                return;
            }
            Answer::Hold(_) => unreachable!("holds are waited out above"),
        }
    }
}

/// Reads one request (head, and a `Content-Length` body) from `stream`, starting with the bytes in `pending` and
/// leaving any read past it there. `None` at the end of the stream, on an error, on an oversize head, or once the
/// peer stops.
fn read_request(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    shared: &Shared,
) -> Option<SeenRequest> {
    let mut buffer = [0u8; 8192];
    let mut fill = |pending: &mut Vec<u8>| -> Option<()> {
        loop {
            if shared.stopped() {
                return None;
            }
            match stream.read(&mut buffer) {
                Ok(0) => return None,
                Ok(n) => {
                    pending.extend_from_slice(&buffer[..n]);
                    return Some(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    };
    let head_end = loop {
        if let Some(end) = find(pending, b"\r\n\r\n") {
            break end;
        }
        if pending.len() > MAX_HEAD_BYTES {
            return None;
        }
        fill(pending)?;
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    pending.drain(..head_end + 4);
    let mut words = head.split(' ');
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default().to_string();
    let length = head
        .lines()
        .skip(1)
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    while pending.len() < length {
        fill(pending)?;
    }
    let body = pending.drain(..length).collect();
    Some(SeenRequest {
        method,
        target,
        head,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
