//! Test fixtures shared by the adapter tests: a tiny scripted HTTP/1.1 server on 127.0.0.1 that
//! records each request (and, over TLS, each handshake's SNI and client certificate) and counts
//! accepted connections, canned responses, a raw HTTP client, and
//! helpers to build the adapter's types, the process's resident memory, and a deadline for
//! futures. Only loopback traffic; no assertions live here (a missed deadline panics, naming what
//! was awaited). Requests and responses are read and plain ones written with the shared helper,
//! [`consular_adapters::simulator::http1`]; canned responses that must be malformed or oddly
//! framed are spelled out byte for byte.
#![allow(dead_code)] // Each test file uses a different subset.

pub mod pki;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consular_adapters::simulator::http1::{self, Http1Error};
use consular_adapters::tls::{client_config, TlsOptions};
use consular_adapters::{BaseUrl, Endpoints, Outbound};
use consular_core::{Bridge, Config, Method, Output, Request, Target};
use futures_rustls::TlsAcceptor;
use smol::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use smol::net::TcpListener;
use smol::Timer;

/// One request as the test server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does for one request.
#[derive(Debug, Clone)]
pub struct Canned {
    pub delay: Duration,
    pub bytes: Vec<u8>,
    /// Close the connection after writing, without saying so in the headers.
    pub close_after: bool,
}

impl Canned {
    /// A `Content-Length` framed JSON response.
    pub fn with_length(status: u16, body: &str) -> Self {
        let headers = [("Content-Type", "application/json")];
        Canned {
            delay: Duration::ZERO,
            bytes: http1::response_bytes(status, &headers, body.as_bytes(), false),
            close_after: false,
        }
    }

    /// A chunked response, one chunk per part.
    pub fn chunked(status: u16, parts: &[&str]) -> Self {
        let mut bytes = format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n");
        for part in parts {
            bytes.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
        }
        bytes.push_str("0\r\n\r\n");
        Canned {
            delay: Duration::ZERO,
            bytes: bytes.into_bytes(),
            close_after: false,
        }
    }

    /// Says `Connection: close` and closes.
    pub fn closing(status: u16, body: &str) -> Self {
        Canned {
            delay: Duration::ZERO,
            bytes: http1::response_bytes(status, &[], body.as_bytes(), true),
            close_after: true,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn then_close(mut self) -> Self {
        self.close_after = true;
        self
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Canned + Send + Sync>;

/// What a TLS client showed in one handshake the test server completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The SNI name it sent.
    pub sni: Option<String>,
    /// The DER of the first certificate it presented.
    pub client_cert: Option<Vec<u8>>,
}

/// A scripted server on 127.0.0.1; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    _accepting: smol::Task<()>,
}

impl TestServer {
    pub async fn plain(respond: impl Fn(&Recorded) -> Canned + Send + Sync + 'static) -> Self {
        Self::start(None, Arc::new(respond)).await
    }

    pub async fn tls(
        acceptor: TlsAcceptor,
        respond: impl Fn(&Recorded) -> Canned + Send + Sync + 'static,
    ) -> Self {
        Self::start(Some(acceptor), Arc::new(respond)).await
    }

    async fn start(tls: Option<TlsAcceptor>, respond: Responder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let accepting = {
            let (connections, requests) = (connections.clone(), requests.clone());
            let handshakes = handshakes.clone();
            smol::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (requests, respond, tls) = (requests.clone(), respond.clone(), tls.clone());
                    let handshakes = handshakes.clone();
                    smol::spawn(async move {
                        match tls {
                            None => serve_connection(tcp, requests, respond).await,
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(tcp).await {
                                    let session = stream.get_ref().1;
                                    handshakes.lock().unwrap().push(Handshake {
                                        sni: session.server_name().map(str::to_owned),
                                        client_cert: session
                                            .peer_certificates()
                                            .and_then(|chain| chain.first())
                                            .map(|cert| cert.to_vec()),
                                    });
                                    serve_connection(stream, requests, respond).await;
                                }
                            }
                        }
                    })
                    .detach();
                }
            })
        };
        TestServer {
            addr,
            connections,
            requests,
            handshakes,
            _accepting: accepting,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The TLS handshakes completed so far, in order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    requests: Arc<Mutex<Vec<Recorded>>>,
    respond: Responder,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        requests.lock().unwrap().push(request.clone());
        let canned = respond(&request);
        Timer::after(canned.delay).await;
        if stream.get_mut().write_all(&canned.bytes).await.is_err() {
            return;
        }
        let _ = stream.get_mut().flush().await;
        if canned.close_after {
            let _ = stream.get_mut().close().await;
            return;
        }
    }
}

/// The next request on `stream`, names lower-cased; `None` when the client is gone or sent
/// something unreadable (the connection is then dropped).
async fn read_request<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> Option<Recorded> {
    let request = http1::read_request(stream).await.ok()??;
    Some(Recorded {
        method: request.method,
        target: request.target,
        headers: lower_cased(request.headers),
        body: request.body,
    })
}

fn lower_cased(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}

/// An [`Outbound`] with Marathon and Consul both at `base`, default TLS roots.
pub fn outbound(marathon: &str, consul: &str) -> Outbound {
    outbound_with(
        Endpoints::new(
            BaseUrl::parse(marathon).unwrap(),
            BaseUrl::parse(consul).unwrap(),
        ),
        None,
    )
}

/// An [`Outbound`] for `endpoints` trusting the CA in `ca_file` (if any) for both kinds of peer.
pub fn outbound_with(endpoints: Endpoints, ca_file: Option<&std::path::Path>) -> Outbound {
    let options = TlsOptions {
        ca_files: ca_file.into_iter().map(ToOwned::to_owned).collect(),
        ..Default::default()
    };
    outbound_tls(endpoints, &options, &options)
}

/// An [`Outbound`] for `endpoints` with Consul's and Marathon's own TLS options.
pub fn outbound_tls(endpoints: Endpoints, consul: &TlsOptions, marathon: &TlsOptions) -> Outbound {
    Outbound::new(
        endpoints,
        client_config(consul).unwrap(),
        client_config(marathon).unwrap(),
    )
}

/// A core request with the given fields. The core allocates request ids and offers no way to make
/// one, so the id is borrowed from the first request of a real bridge (its callback
/// subscription); the outbound path never looks at it.
pub fn request(target: Target, method: Method, path: &str, body: Option<&[u8]>) -> Request {
    let config = Config {
        callback_url: Some("http://127.0.0.1:7000/events?registration=consular".to_owned()),
        ..Config::default()
    };
    let mut bridge = Bridge::new(config, Duration::ZERO);
    let mut request = loop {
        match bridge.poll_output() {
            Output::Request(request) => break request,
            Output::Timeout(_) => panic!("the bridge emitted no request to borrow an id from"),
            _ => {}
        }
    };
    request.target = target;
    request.method = method;
    request.path_and_query = path.to_owned();
    request.body = body.map(<[u8]>::to_vec);
    request.response_limit = 1024 * 1024;
    request.timeout = Duration::from_secs(5);
    request
}

/// A response as a raw HTTP client saw it.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends `method path` with `body` (and `Connection: close`) to `addr` over a fresh connection and
/// reads the response to the end. Any method works, unlike with the core's [`Method`].
pub async fn raw_http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> RawResponse {
    let host = addr.to_string();
    let request = http1::request_bytes(method, path, &host, &[("Connection", "close")], body);
    raw_exchange(addr, request).await
}

/// Writes `request` as is and reads the response (any framing; without one, to the end).
pub async fn raw_exchange(addr: SocketAddr, request: Vec<u8>) -> RawResponse {
    let mut stream = smol::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut reader = BufReader::new(stream);
    read_response(&mut reader)
        .await
        .expect("the connection closed without a response")
}

/// Reads one response from `reader` (any framing; without one, to the end); `None` if the
/// connection ended or broke before a status line. A response that is not HTTP panics.
pub async fn read_response<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<RawResponse> {
    match http1::read_response(reader).await {
        Ok(response) => response.map(|r| RawResponse {
            status: r.status,
            headers: lower_cased(r.headers),
            body: r.body,
        }),
        Err(Http1Error::Io(_)) => None,
        Err(e) => panic!("unreadable response: {e}"),
    }
}

/// This process's resident memory in bytes, where the platform tells (Linux).
pub fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `future`'s output, or a panic naming `what` once `limit` has passed (so that a test of a
/// timeout fails instead of hanging when the timeout is missing).
pub async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> T {
    let expired = async {
        Timer::after(limit).await;
        panic!("{what}: nothing after {limit:?}");
    };
    smol::future::or(future, expired).await
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
