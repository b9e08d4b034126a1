//! Just enough HTTP/1.1 server for the simulators: [`serve`] reads requests (heads parsed by
//! `httparse`, bodies framed by `Content-Length`) and writes `Content-Length` framed responses on
//! one connection, kept alive unless the client asks to close, until the handler hangs up or
//! takes the connection over.
//!
//! Not here: what to answer (the models), streaming (`super::marathon`), or anything a real server
//! needs beyond loopback tests: chunked request bodies are refused with `411`, heads are capped at
//! [`MAX_HEAD_BYTES`], and there are no timeouts.

use std::io;

use consular_core::Method;
use consular_sim::SimResponse;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::net::TcpStream;
use surf::http::StatusCode;

/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body accepted (Marathon app definitions and Consul txns are far smaller).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;

/// One request as it came off the wire.
#[derive(Debug, Clone)]
pub(super) struct HttpRequest {
    /// Method name as sent, e.g. `GET`.
    pub method: String,
    /// Request target as sent: path and query, still percent-encoded.
    pub target: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client wants the connection closed after this exchange.
    pub close: bool,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The method, if it is one the models know.
    pub fn model_method(&self) -> Option<Method> {
        [Method::Get, Method::Put, Method::Post, Method::Delete]
            .into_iter()
            .find(|m| m.as_str() == self.method)
    }
}

/// What a handler does with one request.
#[derive(Debug)]
pub(super) enum HandlerAction {
    /// Send this response; more requests may follow on the connection.
    Respond(SimResponse),
    /// Close the connection without answering.
    HangUp,
    /// Hand the connection to the caller of [`serve`] (e.g. for an event stream).
    TakeOver,
}

/// A connection a handler took over, with the request that asked for it.
#[derive(Debug)]
pub(super) struct TakenOver {
    pub request: HttpRequest,
    /// For writing.
    pub connection: TcpStream,
    /// For reading: may hold bytes the client sent after the request.
    pub reader: BufReader<TcpStream>,
}

/// Serves requests on `connection` with `answer` (also given the extra headers every response
/// carries) until the client leaves, the handler hangs up, or it takes the connection over.
pub(super) async fn serve(
    connection: TcpStream,
    extra_headers: &[(&str, &str)],
    mut answer: impl FnMut(&HttpRequest) -> HandlerAction,
) -> Option<TakenOver> {
    let mut reader = BufReader::new(connection.clone());
    let mut connection = connection;
    loop {
        let request = match read_request(&mut reader).await {
            Ok(Some(request)) => request,
            Ok(None) => return None,
            Err(bad) => {
                let response = plain(bad.status, &bad.message);
                let _ = write_response(&mut connection, &response, extra_headers, true).await;
                return None;
            }
        };
        let response = match answer(&request) {
            HandlerAction::Respond(response) => response,
            HandlerAction::HangUp => return None,
            HandlerAction::TakeOver => {
                return Some(TakenOver {
                    request,
                    connection,
                    reader,
                })
            }
        };
        let written = write_response(&mut connection, &response, extra_headers, request.close);
        if written.await.is_err() || request.close {
            return None;
        }
    }
}

/// Why no request could be read; the client is told `status` and the connection closed.
#[derive(Debug)]
struct BadRequest {
    status: u16,
    message: String,
}

/// Reads the next request. `Ok(None)`: the client closed the connection between requests, or
/// the connection broke.
async fn read_request(
    reader: &mut BufReader<TcpStream>,
) -> Result<Option<HttpRequest>, BadRequest> {
    let bad = |status, message: &str| BadRequest {
        status,
        message: message.to_owned(),
    };
    let mut head = Vec::new();
    loop {
        let before = head.len();
        match reader.read_until(b'\n', &mut head).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(bad(431, "request head too large"));
        }
        // A blank line ends the head; blank lines before the request line are skipped (RFC 9112).
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                head.clear();
            } else {
                break;
            }
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(bad(400, "malformed request head")),
    }
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut request = HttpRequest {
        method: parsed.method.unwrap_or_default().to_owned(),
        target: parsed.path.unwrap_or_default().to_owned(),
        headers,
        body: Vec::new(),
        close: false,
    };
    let connection = request.header("Connection").unwrap_or_default();
    request.close = if parsed.version == Some(0) {
        !connection.eq_ignore_ascii_case("keep-alive")
    } else {
        connection.eq_ignore_ascii_case("close")
    };
    if request.header("Transfer-Encoding").is_some() {
        return Err(bad(411, "chunked request bodies are not supported"));
    }
    let length = match request.header("Content-Length") {
        None => 0,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| bad(400, "invalid Content-Length"))?,
    };
    if length > MAX_BODY_BYTES {
        return Err(bad(413, "request body too large"));
    }
    request.body = vec![0; length];
    if reader.read_exact(&mut request.body).await.is_err() {
        return Ok(None);
    }
    Ok(Some(request))
}

/// Writes `response` with a `Content-Length`, plus `extra_headers` and, if `close`,
/// `Connection: close`.
async fn write_response(
    connection: &mut TcpStream,
    response: &SimResponse,
    extra_headers: &[(&str, &str)],
    close: bool,
) -> io::Result<()> {
    let mut head = status_line(response.status);
    if !response.content_type.is_empty() {
        head.push_str(&format!("Content-Type: {}\r\n", response.content_type));
    }
    let headers = response.headers.iter().map(|(n, v)| (*n, v.as_str()));
    for (name, value) in headers.chain(extra_headers.iter().copied()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&response.body);
    connection.write_all(&bytes).await?;
    connection.flush().await
}

/// A plain-text response from the simulator itself (not from a model).
pub(super) fn plain(status: u16, message: &str) -> SimResponse {
    SimResponse {
        status,
        content_type: "text/plain; charset=utf-8",
        body: format!("{message}\n").into_bytes(),
        headers: Vec::new(),
    }
}

/// `HTTP/1.1 <status> <reason>\r\n`.
pub(super) fn status_line(status: u16) -> String {
    let reason = StatusCode::try_from(status).map_or("", |s| s.canonical_reason());
    format!("HTTP/1.1 {status} {reason}\r\n")
}
