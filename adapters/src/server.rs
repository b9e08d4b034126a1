//! The inbound HTTP server (tide, HTTP/1.1): every request, whatever its method and path, becomes
//! an [`InboundRequest`] on a channel, and the [`Reply`] that comes back is sent as JSON.
//!
//! The server reads at most `max_body_bytes` of a body; a larger one is answered with 413 without
//! involving the core. Routing (`/`, `/events`, 404s) is the core's decision, not made here. Who
//! consumes the channel is [`crate::driver`]'s business; tests may answer it themselves.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use consular_core::encoding::json_ascii_string;
use consular_core::Reply;
use smol::channel::{self, Sender};
use smol::io::AsyncReadExt;
use tide::http::headers::CONNECTION;
use tide::http::StatusCode;
use tide::{Body, Middleware, Next, Request, Response};

use crate::endpoints::with_brackets;

/// Bodies larger than this are refused unless configured otherwise.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// One inbound HTTP request, waiting for its [`Reply`].
#[derive(Debug)]
pub struct InboundRequest {
    /// The URL path, without the query.
    pub path: String,
    /// The whole request body.
    pub body: Vec<u8>,
    /// Send the answer here, exactly once. If the client is gone, sending fails; that is fine.
    pub reply: Sender<Reply>,
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

/// Serves HTTP on `listener` until the future is dropped, handing each request to `inbound`.
/// Returns only if the listener fails.
pub async fn serve(
    listener: TcpListener,
    inbound: Sender<InboundRequest>,
    max_body_bytes: usize,
) -> io::Result<()> {
    let mut app = tide::new();
    app.with(ForwardToCore {
        inbound,
        max_body_bytes,
    });
    app.listen(listener).await
}

/// Answers every request itself: as the only middleware that never calls `next`, it sees all
/// methods and paths, including those tide's router knows nothing about.
struct ForwardToCore {
    inbound: Sender<InboundRequest>,
    max_body_bytes: usize,
}

#[tide::utils::async_trait]
impl Middleware<()> for ForwardToCore {
    async fn handle(&self, mut request: Request<()>, _next: Next<'_, ()>) -> tide::Result {
        let method = request.method();
        let path = request.url().path().to_owned();
        let response = match read_body(&mut request, self.max_body_bytes).await {
            Ok(body) => self.ask_core(path.clone(), body).await,
            Err(refusal) => refusal,
        };
        log::debug!("{method} {path} {}", response.status());
        Ok(response)
    }
}

impl ForwardToCore {
    async fn ask_core(&self, path: String, body: Vec<u8>) -> Response {
        let (reply_tx, reply_rx) = channel::bounded(1);
        let request = InboundRequest {
            path,
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

/// The body, or the response refusing it.
async fn read_body(request: &mut Request<()>, max_bytes: usize) -> Result<Vec<u8>, Response> {
    let too_large = || {
        let mut response = error_response(
            StatusCode::PayloadTooLarge,
            &format!("request body larger than {max_bytes} bytes"),
        );
        // The rest of the body is not wanted; do not keep the connection for more of it.
        response.insert_header(CONNECTION, "close");
        response
    };
    if request.len().is_some_and(|len| len > max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    request
        .take_body()
        .take(limit)
        .read_to_end(&mut body)
        .await
        .map_err(|e| {
            error_response(
                StatusCode::BadRequest,
                &format!("cannot read request body: {e}"),
            )
        })?;
    if body.len() > max_bytes {
        return Err(too_large());
    }
    Ok(body)
}

fn reply_response(reply: Reply) -> Response {
    match StatusCode::try_from(reply.status) {
        Ok(status) => json_response(status, reply.body),
        Err(_) => error_response(
            StatusCode::InternalServerError,
            &format!("invalid status {} from the core", reply.status),
        ),
    }
}

/// `{"error": "<message>"}`, in the same JSON style as the core's own error replies.
fn error_response(status: StatusCode, message: &str) -> Response {
    let body = format!("{{\"error\": {}}}", json_ascii_string(message));
    json_response(status, body.into_bytes())
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut body = Body::from_bytes(body);
    body.set_mime(tide::http::mime::JSON);
    let mut response = Response::new(status);
    response.set_body(body);
    response
}
