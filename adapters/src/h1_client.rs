//! [`H1Client`], surf's HTTP backend: HTTP/1.1 (async-h1) over TCP (async-net) or TLS
//! (futures-rustls with rustls 0.23), with a keep-alive pool of idle connections per peer.
//!
//! Peers are untrusted: every response head is read here, within [`crate::http_guard::MAX_HEAD_BYTES`],
//! and checked by [`crate::http_guard`] before async-h1 parses it (http-types panics on a header
//! value that is not ASCII); a head that fails is an error. A response body is read up to the
//! request's [`ResponseLimit`]: a longer `Content-Length` fails at once, a longer chunked body
//! after one byte more, both as [`ResponseTooLarge`]. A panic inside an exchange is logged and
//! becomes an error.
//!
//! A connection goes back to the pool only after its response body was read to the end, the
//! response was delimited (`Content-Length` or chunked) and did not say `Connection: close`, and
//! no byte beyond it was received. Anything else (errors, timeouts that drop the future, oversized
//! bodies) closes it. A request marked with [`StreamBody`] gets its response as soon as the head
//! is in, with a body that streams from a connection of its own, closed when the body is dropped;
//! that body may also be one that ends only when the connection closes, as Marathon's event
//! stream is (no length, not chunked).
//!
//! Not here: URLs and credentials ([`crate::endpoints`]), the per-request timeout and the mapping
//! to the core's types ([`crate::outbound`]), the TLS roots, client certificate and server name
//! ([`crate::tls`]).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use http_client::{Error, HttpClient, Request, Response};
use rustls_pki_types::ServerName;
use smol::future::{self, FutureExt};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use smol::net::TcpStream;
use surf::http::headers::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use surf::http::url::{Host, Url};
use surf::http::{Body, StatusCode};

use crate::http_guard::{panic_message, parse_response_head, HeadProgress, HeadScanner};
use crate::tls::PeerTls;

/// Idle connections kept per peer; more are closed. Matches the core's default per-target limit.
const MAX_IDLE_PER_PEER: usize = 8;
/// Idle connections older than this are closed rather than reused, well below the idle timeouts
/// of common servers, so a reused connection is rarely one the peer is closing at that moment.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read for a request that carries no [`ResponseLimit`].
const UNMARKED_RESPONSE_LIMIT: usize = 64 * 1024 * 1024;
/// Most bytes asked of the socket at once while reading a response head.
const HEAD_READ_BYTES: usize = 4 * 1024;

/// The connection to the peer could not be made: DNS, TCP connect or TLS handshake failed.
/// [`crate::outbound`] finds it in surf's error to report `TransportError::Connect`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// Request extension (`surf::Request::set_ext`): return the response once its head is in and let
/// the body stream, for responses that never end (Marathon's event stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamBody;

/// Request extension (`surf::Request::set_ext`): the largest response body to read. Without it,
/// 64 MiB. Streams ([`StreamBody`]) are not limited by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimit(pub usize);

/// The response body was longer than the request's [`ResponseLimit`].
/// [`crate::outbound`] finds it in surf's error to report `TransportError::TooLarge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("response body larger than {limit} bytes")]
pub struct ResponseTooLarge {
    /// The limit that was exceeded.
    pub limit: usize,
}

/// An HTTP/1.1 client with connection reuse, for [`surf::Client::with_http_client`].
///
/// One client speaks to one kind of peer ([`crate::tls::PeerKind`]): its TLS settings, client
/// certificate included, go to every https peer it connects to.
pub struct H1Client {
    tls: TlsConnector,
    /// Its server name and client certificate.
    peer_tls: PeerTls,
    pool: Mutex<Pool>,
}

impl H1Client {
    /// A client that uses `tls` for `https` URLs.
    pub fn new(tls: PeerTls) -> Self {
        H1Client {
            tls: TlsConnector::from(tls.config.clone()),
            peer_tls: tls,
            pool: Mutex::new(Pool::default()),
        }
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        // The pool is only touched between awaits and never left half-updated.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pooled connection that is still open, or a new one.
    async fn checkout(&self, peer: &Peer) -> Result<Conn, ConnectError> {
        loop {
            let idle = self.pool().take(peer, Instant::now());
            match idle {
                Some(conn) if conn.is_open_and_quiet().await => return Ok(conn),
                Some(_closed) => continue,
                None => return self.connect(peer).await,
            }
        }
    }

    async fn connect(&self, peer: &Peer) -> Result<Conn, ConnectError> {
        let fail = |what: &str, e: &dyn fmt::Display| {
            ConnectError(format!("{what} {}:{}: {e}", peer.host, peer.port))
        };
        let tcp = match &peer.host {
            Host::Domain(name) => TcpStream::connect((name.as_str(), peer.port)).await,
            Host::Ipv4(ip) => TcpStream::connect(SocketAddr::new(IpAddr::V4(*ip), peer.port)).await,
            Host::Ipv6(ip) => TcpStream::connect(SocketAddr::new(IpAddr::V6(*ip), peer.port)).await,
        }
        .map_err(|e| fail("connect to", &e))?;
        // async-h1 writes the head and the body separately; without this, Nagle's algorithm and
        // delayed ACKs can hold the body back for tens of milliseconds.
        tcp.set_nodelay(true)
            .map_err(|e| fail("set TCP_NODELAY on", &e))?;
        if !peer.tls {
            return Ok(Conn::Plain(tcp));
        }
        let name = match (&self.peer_tls.server_name, &peer.host) {
            (Some(name), _) => name.clone(),
            (None, Host::Domain(name)) => {
                ServerName::try_from(name.clone()).map_err(|e| fail("TLS name of", &e))?
            }
            (None, Host::Ipv4(ip)) => ServerName::IpAddress(IpAddr::V4(*ip).into()),
            (None, Host::Ipv6(ip)) => ServerName::IpAddress(IpAddr::V6(*ip).into()),
        };
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| fail("TLS handshake with", &e))?;
        Ok(Conn::Tls(Box::new(tls)))
    }
}

impl fmt::Debug for H1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H1Client")
            .field("idle_connections", &self.pool().len())
            .finish_non_exhaustive()
    }
}

#[http_client::async_trait]
impl HttpClient for H1Client {
    async fn send(&self, req: Request) -> Result<Response, Error> {
        let origin = req.url().origin().ascii_serialization();
        match AssertUnwindSafe(self.exchange(req)).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                log::error!(
                    "an HTTP exchange with {origin} panicked: {}",
                    panic_message(&*panic)
                );
                Err(Error::from_str(
                    StatusCode::InternalServerError,
                    "the HTTP client panicked",
                ))
            }
        }
    }
}

impl H1Client {
    async fn exchange(&self, req: Request) -> Result<Response, Error> {
        let peer = Peer::of(req.url()).map_err(|e| Error::new(StatusCode::BadGateway, e))?;
        let conn = self
            .checkout(&peer)
            .await
            .map_err(|e| Error::new(StatusCode::BadGateway, e))?;
        let streaming = req.ext().get::<StreamBody>().is_some();
        let limit = req
            .ext()
            .get::<ResponseLimit>()
            .map_or(UNMARKED_RESPONSE_LIMIT, |limit| limit.0);
        let shared = SharedConn::new(conn);
        let mut res = async_h1::connect(GuardedHead::new(shared.clone()), req)
            .await
            .map_err(|e| self.explain_refusal(e))?;
        if streaming {
            // async-h1 gives a response framed by neither `Content-Length` nor chunked encoding an
            // empty body. Marathon's event stream is such a response: its body is everything until
            // the connection closes. `GuardedHead` handed async-h1 the head and nothing more; the
            // rest is still on the connection, or buffered in `shared`.
            if !is_delimited(&res) {
                res.set_body(Body::from_reader(BufReader::new(shared), None));
            }
            // The body owns the connection from here on; it is closed, not pooled, when dropped.
            return Ok(res);
        }
        if res.len().is_some_and(|length| length > limit) {
            return Err(too_large(limit));
        }
        // Reading the body here (rather than handing a streaming body to surf) is what makes it
        // safe to pool the connection: we know the response ended where its framing said.
        let body = read_body(&mut res, limit).await?;
        let reusable = keeps_connection_open(&res);
        res.set_body(body);
        if reusable {
            // `into_inner` fails if async-h1 still holds its handle, i.e. the body is unfinished,
            // or if the peer sent more than the response.
            if let Some(conn) = shared.into_inner() {
                self.pool().put(peer, conn, Instant::now());
            }
        }
        Ok(res)
    }
}

impl H1Client {
    /// `error`, or for a TLS alert refusing our client certificate (or its absence), a
    /// [`ConnectError`] saying so: the connection never carried a request.
    fn explain_refusal(&self, error: Error) -> Error {
        let alert = error
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(|tls| match tls {
                rustls::Error::AlertReceived(alert) => self.peer_tls.explain_alert(alert),
                _ => None,
            });
        match alert {
            Some(why) => Error::new(StatusCode::BadGateway, ConnectError(why)),
            None => error,
        }
    }
}

/// The body, at most `limit` bytes; one byte more is [`ResponseTooLarge`].
async fn read_body(res: &mut Response, limit: usize) -> Result<Vec<u8>, Error> {
    // One byte more than the length: `read_to_end` doubles a full buffer before it sees the end.
    let reserve = res.len().unwrap_or(0).min(limit).saturating_add(1);
    let mut body = Vec::with_capacity(reserve);
    let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    res.take_body().take(most).read_to_end(&mut body).await?;
    if body.len() > limit {
        return Err(too_large(limit));
    }
    Ok(body)
}

fn too_large(limit: usize) -> Error {
    Error::new(StatusCode::BadGateway, ResponseTooLarge { limit })
}

/// Whether the peer left the connection ready for another request. async-h1 only speaks
/// HTTP/1.1 (keep-alive by default) and reads no body when there is neither `Content-Length`
/// nor chunked encoding, so such a close-delimited response leaves unread bytes behind.
fn keeps_connection_open(res: &Response) -> bool {
    let says_close = res.header(CONNECTION).is_some_and(|values| {
        values.iter().any(|v| {
            v.as_str()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    });
    !says_close && is_delimited(res)
}

/// Whether the response's body ends where its head says (or it has none), rather than when the
/// connection closes.
fn is_delimited(res: &Response) -> bool {
    let status = u16::from(res.status());
    let bodyless = (100..200).contains(&status) || status == 204 || status == 304;
    bodyless
        || res.header(CONTENT_LENGTH).is_some()
        || res
            .header(TRANSFER_ENCODING)
            .is_some_and(|values| values.last().as_str().eq_ignore_ascii_case("chunked"))
}

/// Which pool a connection belongs to: scheme, host and port of the URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Peer {
    tls: bool,
    host: Host<String>,
    port: u16,
}

impl Peer {
    fn of(url: &Url) -> Result<Self, ConnectError> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(ConnectError(format!("unsupported scheme {other:?}"))),
        };
        let host = url
            .host()
            .ok_or_else(|| ConnectError(format!("no host in {url}")))?
            .to_owned();
        // http and https always have a known default port.
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        Ok(Peer { tls, host, port })
    }
}

/// Idle connections by peer, newest last.
#[derive(Default)]
struct Pool {
    idle: HashMap<Peer, Vec<IdleConn>>,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// The most recently used idle connection to `peer` that has not expired.
    fn take(&mut self, peer: &Peer, now: Instant) -> Option<Conn> {
        let list = self.idle.get_mut(peer)?;
        let conn = std::iter::from_fn(|| list.pop())
            .find(|idle| now.saturating_duration_since(idle.since) < IDLE_TIMEOUT)
            .map(|idle| idle.conn);
        if list.is_empty() {
            self.idle.remove(peer);
        }
        conn
    }

    fn put(&mut self, peer: Peer, conn: Conn, now: Instant) {
        // Sweep every peer, so agents that are never contacted again do not keep sockets open.
        self.idle.retain(|_, list| {
            list.retain(|idle| now.saturating_duration_since(idle.since) < IDLE_TIMEOUT);
            !list.is_empty()
        });
        let list = self.idle.entry(peer).or_default();
        if list.len() < MAX_IDLE_PER_PEER {
            list.push(IdleConn { conn, since: now });
        }
    }

    fn len(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }
}

/// One open connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => tls.get_ref().0,
        }
    }

    /// An idle HTTP/1.1 connection has nothing to read. End of stream means the peer closed it;
    /// stray bytes (e.g. a TLS alert) mean it is not in a clean state. Either way, do not reuse.
    async fn is_open_and_quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        future::poll_once(self.tcp().peek(&mut byte))
            .await
            .is_none()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Conn::Tls(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_close(cx),
            Conn::Tls(tls) => Pin::new(tls).poll_close(cx),
        }
    }
}

/// A connection shared between async-h1 (which takes its stream by value and keeps it inside the
/// response body) and the client, which takes it back once the body is done. It holds the bytes
/// read from the connection that nobody has used yet: [`GuardedHead`] reads ahead.
#[derive(Clone)]
struct SharedConn(Arc<Mutex<BufferedConn>>);

struct BufferedConn {
    conn: Conn,
    /// Received from `conn`, not yet read by anyone.
    unread: Vec<u8>,
}

impl BufferedConn {
    /// Reads more from the connection onto the end of `unread`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let filled = self.unread.len();
        self.unread.resize(filled + HEAD_READ_BYTES, 0);
        let read = Pin::new(&mut self.conn).poll_read(cx, &mut self.unread[filled..]);
        let received = match read {
            Poll::Ready(Ok(received)) => received,
            _ => 0,
        };
        self.unread.truncate(filled + received);
        read
    }

    /// Moves up to `buf.len()` unread bytes into `buf`.
    fn take_unread(&mut self, buf: &mut [u8]) -> usize {
        let taken = buf.len().min(self.unread.len());
        buf[..taken].copy_from_slice(&self.unread[..taken]);
        self.unread.drain(..taken);
        taken
    }
}

impl SharedConn {
    fn new(conn: Conn) -> Self {
        SharedConn(Arc::new(Mutex::new(BufferedConn {
            conn,
            unread: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, BufferedConn> {
        // Locked only inside one poll call; nothing can observe a half-done update.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection, if no other handle to it is left and nothing unread remains.
    fn into_inner(self) -> Option<Conn> {
        let buffered = Arc::try_unwrap(self.0)
            .ok()?
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        buffered.unread.is_empty().then_some(buffered.conn)
    }
}

impl AsyncRead for SharedConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buffered = self.lock();
        if !buffered.unread.is_empty() {
            return Poll::Ready(Ok(buffered.take_unread(buf)));
        }
        Pin::new(&mut buffered.conn).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.lock().conn).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.lock().conn).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.lock().conn).poll_close(cx)
    }
}

/// What async-h1 reads a response through. The head is first read into the connection's buffer,
/// up to [`crate::http_guard::MAX_HEAD_BYTES`], and checked; only a head that passes is handed on, and
/// only up to its blank line: async-h1 reads the head through a buffer of its own, which it drops
/// when the body has no framing it knows, so nothing of the body may be in it. After the head,
/// reads go to the [`SharedConn`], buffered bytes first.
struct GuardedHead {
    conn: SharedConn,
    phase: HeadPhase,
}

enum HeadPhase {
    /// Receiving and checking the head.
    Receiving(HeadScanner),
    /// Handing on the checked head; this many bytes of it are left.
    Replaying(usize),
    /// The head is out; the body follows.
    Passing,
}

impl GuardedHead {
    fn new(conn: SharedConn) -> Self {
        GuardedHead {
            conn,
            phase: HeadPhase::Receiving(HeadScanner::new()),
        }
    }
}

fn invalid_head(reason: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid response head: {reason}"),
    )
}

impl AsyncRead for GuardedHead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                HeadPhase::Receiving(scanner) => {
                    let mut buffered = this.conn.lock();
                    match scanner.scan(&buffered.unread) {
                        Ok(HeadProgress::Complete { len }) => {
                            if let Err(violation) = parse_response_head(&buffered.unread[..len]) {
                                return Poll::Ready(Err(invalid_head(violation)));
                            }
                            drop(buffered);
                            this.phase = HeadPhase::Replaying(len);
                            continue;
                        }
                        Ok(HeadProgress::Incomplete) => {}
                        Err(violation) => return Poll::Ready(Err(invalid_head(violation))),
                    }
                    match buffered.poll_fill(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Ready(Ok(0)) if buffered.unread.is_empty() => {
                            // Nothing at all: async-h1 reports the closed connection.
                            return Poll::Ready(Ok(0));
                        }
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(invalid_head("the connection closed in it")))
                        }
                        Poll::Ready(Ok(_)) => {}
                    }
                }
                HeadPhase::Replaying(0) => this.phase = HeadPhase::Passing,
                HeadPhase::Replaying(left) => {
                    let wanted = (*left).min(buf.len());
                    let handed = this.conn.lock().take_unread(&mut buf[..wanted]);
                    *left -= handed;
                    return Poll::Ready(Ok(handed));
                }
                HeadPhase::Passing => return Pin::new(&mut this.conn).poll_read(cx, buf),
            }
        }
    }
}

impl AsyncWrite for GuardedHead {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().conn).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().conn).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().conn).poll_close(cx)
    }
}
