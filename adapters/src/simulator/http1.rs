//! The one HTTP/1.1 helper for the simulators and the workspace's tests: reading a request or a
//! response off a byte stream, and writing the plain messages they send. The simulators' servers
//! ([`super::MarathonServer`], [`super::ConsulServer`]) read requests with it; the adapters' tests
//! (a scripted peer and a raw client) and the binary's tests (a blocking client for Consul and for
//! the bridge) read and write with it too, so there is one parser to trust instead of four.
//!
//! **What lives here:** [`HttpRequest`] and [`HttpResponse`] as read, [`read_request`] and
//! [`read_response`] (async, from any [`AsyncBufRead`]: they take exactly the bytes of one
//! message, so the next one, or an event stream's body, stays in the reader), [`parse_response`]
//! (a whole response already read to EOF, for blocking clients), and the writers
//! [`request_bytes`], [`response_bytes`] and [`sim_response_bytes`].
//!
//! Heads are found, parsed and checked by the production [`crate::http_guard`], the same rules the
//! bridge's own server and client apply: at most [`MAX_HEAD_BYTES`] and
//! [`http_guard::MAX_HEADER_FIELDS`](crate::http_guard::MAX_HEADER_FIELDS) fields, tokens for
//! names, visible ASCII for values, one `Content-Length` or `chunked`; chunked bodies are decoded
//! by its [`ChunkedDecoder`]. Bodies are capped at [`MAX_BODY_BYTES`].
//!
//! **What does not:** timeouts, connection limits, TLS and anything a production server needs;
//! this is loopback plumbing for stand-ins and tests. A test that must put malformed bytes on
//! the wire writes them itself: these writers only write well-formed messages. The core's
//! `blocking_loop` example keeps its own few lines of std-only HTTP, as an example of the driver
//! contract with no dependency beyond the core.

use std::io;

use consular_core::Method;
use consular_sim::SimResponse;
use smol::io::{AsyncBufRead, AsyncBufReadExt};
use surf::http::StatusCode;

use crate::http_guard::{
    parse_request_head, parse_response_head, BodyFraming, ChunkedDecoder, ChunkedProgress,
    ChunkedViolation, HeadProgress, HeadScanner, HeadViolation, HeaderField, Persistence,
};

pub use crate::http_guard::MAX_HEAD_BYTES;

/// Largest body read, of a request or a response (Marathon's app lists and Consul's catalogs in
/// the benchmarks stay far below).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most bytes reserved up front for a body from its `Content-Length`; a longer one grows.
const MAX_RESERVED_BYTES: usize = 1024 * 1024;

/// One request as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method name as sent, e.g. `GET`.
    pub method: String,
    /// Request target as sent: path and query, still percent-encoded.
    pub target: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The client wants the connection closed after this exchange.
    pub close: bool,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The method, if it is one the core (and so the models) know.
    pub fn model_method(&self) -> Option<Method> {
        [Method::Get, Method::Put, Method::Post, Method::Delete]
            .into_iter()
            .find(|m| m.as_str() == self.method)
    }
}

/// One response as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    /// The head broke [`crate::http_guard`]'s rules.
    #[error("{0}")]
    Head(#[from] HeadViolation),
    /// The body is longer than [`MAX_BODY_BYTES`].
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    /// The chunked body is malformed.
    #[error("{0}")]
    Chunked(#[from] ChunkedViolation),
    /// The stream ended inside the message.
    #[error("the message ended early, in its {0}")]
    Truncated(&'static str),
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl Http1Error {
    /// The status a server answers a request with that failed so: `431` for a head too large
    /// or with too many fields, `413` for a body too large, `400` otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Http1Error::Head(HeadViolation::TooLarge | HeadViolation::TooManyFields) => 431,
            Http1Error::BodyTooLarge | Http1Error::Chunked(ChunkedViolation::TooLarge(_)) => 413,
            _ => 400,
        }
    }
}

/// Reads the next request from `reader`, taking exactly its bytes. `Ok(None)`: the stream ended
/// before a request began (empty lines before a request line are skipped, as RFC 9112 asks).
pub async fn read_request<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Option<HttpRequest>, Http1Error> {
    let message = read_message(reader, Side::Request).await?;
    Ok(message.map(Message::into_request))
}

/// Reads the next response from `reader`, taking exactly its bytes (one without framing, read
/// to the end of the stream). `Ok(None)`: the stream ended before a status line began.
pub async fn read_response<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Option<HttpResponse>, Http1Error> {
    let message = read_message(reader, Side::Response).await?;
    Ok(message.map(Message::into_response))
}

/// Parses a whole response read to the end of its connection (`Connection: close`), for
/// blocking clients: bytes after a framed body are ignored; a response cut short is an error.
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse, Http1Error> {
    let mut decoder = Decoder::new(Side::Response);
    let mut rest = raw;
    loop {
        let at_end = rest.is_empty();
        let (used, message) = decoder.feed(rest, at_end)?;
        rest = &rest[used..];
        match message {
            Some(Some(message)) => return Ok(message.into_response()),
            Some(None) => return Err(Http1Error::Truncated("status line")),
            None if at_end => unreachable!("the decoder finishes at the end of its input"),
            None => {}
        }
    }
}

async fn read_message<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    side: Side,
) -> Result<Option<Message>, Http1Error> {
    let mut decoder = Decoder::new(side);
    loop {
        let available = reader.fill_buf().await?;
        let at_end = available.is_empty();
        let (used, message) = decoder.feed(available, at_end)?;
        reader.consume(used);
        if let Some(message) = message {
            return Ok(message);
        }
    }
}

/// Which kind of message a [`Decoder`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// A message's start line and fields, checked.
#[derive(Debug)]
enum Start {
    Request {
        method: String,
        target: String,
        close: bool,
    },
    Response {
        status: u16,
    },
}

#[derive(Debug)]
struct Message {
    start: Start,
    fields: Vec<HeaderField>,
    body: Vec<u8>,
}

impl Message {
    fn headers(fields: Vec<HeaderField>) -> Vec<(String, String)> {
        fields.into_iter().map(|f| (f.name, f.value)).collect()
    }

    fn into_request(self) -> HttpRequest {
        let Start::Request {
            method,
            target,
            close,
        } = self.start
        else {
            unreachable!("a request decoder yields requests")
        };
        HttpRequest {
            method,
            target,
            headers: Message::headers(self.fields),
            body: self.body,
            close,
        }
    }

    fn into_response(self) -> HttpResponse {
        let Start::Response { status } = self.start else {
            unreachable!("a response decoder yields responses")
        };
        HttpResponse {
            status,
            headers: Message::headers(self.fields),
            body: self.body,
        }
    }
}

/// Sans-IO: decodes one message from the bytes it is fed, remembering partial input itself, and
/// says how many of each feed's bytes belong to the message.
#[derive(Debug)]
struct Decoder {
    side: Side,
    state: State,
}

#[derive(Debug)]
enum State {
    Head {
        buffered: Vec<u8>,
        scanner: HeadScanner,
    },
    Body {
        start: Option<Start>,
        fields: Vec<HeaderField>,
        framing: BodyFraming,
        body: Vec<u8>,
        /// For a chunked body: its decoder and the bytes it has not used yet.
        chunked: Option<(ChunkedDecoder, Vec<u8>)>,
    },
}

impl Decoder {
    fn new(side: Side) -> Self {
        Decoder {
            side,
            state: State::Head {
                buffered: Vec::new(),
                scanner: HeadScanner::new(),
            },
        }
    }

    /// Feeds `input` (`at_end`: nothing follows it). Returns how many bytes of `input` the
    /// message took and, once it is complete, `Some(Some(message))`, or `Some(None)` if the
    /// stream ended before the message began. Bytes not taken belong to whatever follows.
    fn feed(
        &mut self,
        input: &[u8],
        at_end: bool,
    ) -> Result<(usize, Option<Option<Message>>), Http1Error> {
        let mut used = 0;
        if let State::Head { buffered, scanner } = &mut self.state {
            buffered.extend_from_slice(input);
            let len = match scanner.scan(buffered)? {
                HeadProgress::Incomplete if !at_end => return Ok((input.len(), None)),
                HeadProgress::Incomplete if buffered.iter().all(|b| matches!(b, b'\r' | b'\n')) => {
                    return Ok((input.len(), Some(None)));
                }
                HeadProgress::Incomplete => return Err(Http1Error::Truncated("head")),
                HeadProgress::Complete { len } => len,
            };
            // The head ended in this input: what follows it is not taken yet.
            used = input.len() - (buffered.len() - len);
            let head = &buffered[..len];
            self.state = match self.side {
                Side::Request => {
                    let head = parse_request_head(head)?;
                    let close = head.persistence == Persistence::Close;
                    let start = Start::Request {
                        method: head.method,
                        target: head.target,
                        close,
                    };
                    body_state(start, head.fields, head.framing)?
                }
                Side::Response => {
                    let head = parse_response_head(head)?;
                    let start = Start::Response {
                        status: head.status,
                    };
                    body_state(start, head.fields, head.framing)?
                }
            };
        }
        let rest = &input[used..];
        let State::Body {
            start,
            fields,
            framing,
            body,
            chunked,
        } = &mut self.state
        else {
            unreachable!("the head is complete")
        };
        let finished = match (*framing, chunked) {
            (BodyFraming::Bodiless, _) => true,
            (BodyFraming::Length(length), _) => {
                let missing = usize::try_from(length).unwrap_or(usize::MAX) - body.len();
                let take = missing.min(rest.len());
                body.extend_from_slice(&rest[..take]);
                used += take;
                if take < missing && at_end {
                    return Err(Http1Error::Truncated("body"));
                }
                take == missing
            }
            (BodyFraming::UntilClose, _) => {
                if body.len() + rest.len() > MAX_BODY_BYTES {
                    return Err(Http1Error::BodyTooLarge);
                }
                body.extend_from_slice(rest);
                used += rest.len();
                at_end
            }
            (BodyFraming::Chunked, Some((decoder, pending))) => {
                pending.extend_from_slice(rest);
                let (taken, progress) = decoder.decode(pending, body)?;
                pending.drain(..taken);
                match progress {
                    // Whatever is left came after the body, in this input.
                    ChunkedProgress::Finished => {
                        used += rest.len() - pending.len();
                        true
                    }
                    ChunkedProgress::NeedMore if at_end => {
                        return Err(Http1Error::Truncated("chunked body"));
                    }
                    ChunkedProgress::NeedMore => {
                        used += rest.len();
                        false
                    }
                }
            }
            (BodyFraming::Chunked, None) => unreachable!("a chunked body has a decoder"),
        };
        if !finished {
            return Ok((used, None));
        }
        let message = Message {
            start: start.take().expect("a message is finished once"),
            fields: std::mem::take(fields),
            body: std::mem::take(body),
        };
        Ok((used, Some(Some(message))))
    }
}

fn body_state(
    start: Start,
    fields: Vec<HeaderField>,
    framing: BodyFraming,
) -> Result<State, Http1Error> {
    let reserve = match framing {
        BodyFraming::Length(length) => {
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if length > MAX_BODY_BYTES {
                return Err(Http1Error::BodyTooLarge);
            }
            length.min(MAX_RESERVED_BYTES)
        }
        _ => 0,
    };
    let chunked = (framing == BodyFraming::Chunked)
        .then(|| (ChunkedDecoder::new(MAX_BODY_BYTES), Vec::new()));
    Ok(State::Body {
        start: Some(start),
        fields,
        framing,
        body: Vec::with_capacity(reserve),
        chunked,
    })
}

/// `HTTP/1.1 <status> <reason>\r\n`, with the status's canonical reason phrase.
pub fn status_line(status: u16) -> String {
    let reason = StatusCode::try_from(status).map_or("", |s| s.canonical_reason());
    format!("HTTP/1.1 {status} {reason}\r\n")
}

/// A request with `Host: host`, then `headers`, then `Content-Length` and `body`.
pub fn request_bytes(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    [head.as_bytes(), body].concat()
}

/// A response with `headers`, a `Content-Length` and, if `close`, `Connection: close`.
pub fn response_bytes(status: u16, headers: &[(&str, &str)], body: &[u8], close: bool) -> Vec<u8> {
    let mut head = status_line(status);
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    [head.as_bytes(), body].concat()
}

/// A model's answer as [`response_bytes`]: its `Content-Type` (unless empty) and headers, then
/// `extra_headers`.
pub fn sim_response_bytes(
    response: &SimResponse,
    extra_headers: &[(&str, &str)],
    close: bool,
) -> Vec<u8> {
    let content_type = [("Content-Type", response.content_type)];
    let content_type = &content_type[..usize::from(!response.content_type.is_empty())];
    let headers: Vec<(&str, &str)> = content_type
        .iter()
        .copied()
        .chain(response.headers.iter().map(|(n, v)| (*n, v.as_str())))
        .chain(extra_headers.iter().copied())
        .collect();
    response_bytes(response.status, &headers, &response.body, close)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::{AsyncReadExt, BufReader, Cursor};

    fn requests_from(bytes: &[u8], capacity: usize) -> (Vec<HttpRequest>, Vec<u8>) {
        smol::block_on(async {
            let mut reader = BufReader::with_capacity(capacity, Cursor::new(bytes.to_vec()));
            let mut requests = Vec::new();
            while let Some(request) = read_request(&mut reader).await.unwrap() {
                requests.push(request);
                if requests.len() == 2 {
                    break;
                }
            }
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).await.unwrap();
            (requests, rest)
        })
    }

    #[test]
    fn requests_take_exactly_their_bytes_whatever_the_read_sizes() {
        let wire = b"\r\nPOST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                     PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                     2;x=y\r\nde\r\n1\r\nf\r\n0\r\n\r\nleft";
        for capacity in [1, 2, 3, 7, 64, 4096] {
            let (requests, rest) = requests_from(wire, capacity);
            assert_eq!(requests.len(), 2, "capacity {capacity}");
            assert_eq!(
                (requests[0].method.as_str(), requests[0].target.as_str()),
                ("POST", "/a?b")
            );
            assert_eq!(requests[0].body, b"abc");
            assert!(!requests[0].close);
            assert_eq!(requests[0].header("host"), Some("x"));
            assert_eq!(requests[1].body, b"def");
            assert!(requests[1].close);
            assert_eq!(rest, b"left", "capacity {capacity}");
        }
    }

    #[test]
    fn an_empty_stream_has_no_request_and_a_cut_one_is_an_error() {
        assert_eq!(requests_from(b"", 16).0, []);
        assert_eq!(requests_from(b"\r\n\r\n", 16).0, []);
        smol::block_on(async {
            for cut in [
                &b"GET / HTTP/1.1\r\nHost"[..],
                b"PUT / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab",
            ] {
                let mut reader = BufReader::new(Cursor::new(cut.to_vec()));
                let error = read_request(&mut reader).await.unwrap_err();
                assert!(matches!(error, Http1Error::Truncated(_)), "{error}");
            }
        });
    }

    #[test]
    fn refusals_carry_the_status_a_server_answers() {
        let refused = |bytes: &[u8]| {
            smol::block_on(async {
                let mut reader = BufReader::new(Cursor::new(bytes.to_vec()));
                read_request(&mut reader).await.unwrap_err().status()
            })
        };
        let long = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(refused(long.as_bytes()), 431);
        let huge = format!(
            "PUT / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert_eq!(refused(huge.as_bytes()), 413);
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n"),
            400
        );
        assert_eq!(refused(b"garbage\r\n\r\n"), 400);
    }

    #[test]
    fn responses_parse_whole_with_any_framing() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, b"abc");
        let sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nabextra";
        let sized = parse_response(sized).unwrap();
        assert_eq!((sized.status, sized.body.as_slice()), (404, &b"ab"[..]));
        let unframed = parse_response(b"HTTP/1.0 500 X\r\nA: b\r\n\r\nto the end").unwrap();
        assert_eq!(unframed.body, b"to the end");
        assert_eq!(unframed.header("a"), Some("b"));
        let bodiless = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert!(bodiless.body.is_empty());
        for broken in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na",
        ] {
            assert!(parse_response(broken).is_err());
        }
    }

    #[test]
    fn written_messages_read_back() {
        let request = request_bytes("PUT", "/k?x=1", "h:1", &[("Connection", "close")], b"v");
        let (requests, _) = requests_from(&request, 5);
        assert_eq!(requests[0].target, "/k?x=1");
        assert_eq!(requests[0].body, b"v");
        assert!(requests[0].close);
        let sim = SimResponse {
            status: 301,
            content_type: "",
            body: Vec::new(),
            headers: vec![("Location", "/v1/kv/".to_owned())],
        };
        let bytes = sim_response_bytes(&sim, &[("Pragma", "no-cache")], true);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "HTTP/1.1 301 Moved Permanently\r\nLocation: /v1/kv/\r\nPragma: no-cache\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let response = parse_response(&bytes).unwrap();
        assert_eq!(response.header("location"), Some("/v1/kv/"));
    }
}
