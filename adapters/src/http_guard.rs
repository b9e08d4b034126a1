//! What an HTTP/1.x message head and a chunked body must look like before tide or async-h1 may
//! see them, for requests ([`crate::server`]) and responses ([`crate::h1_client`]) alike.
//!
//! Both peers are untrusted: any task in the cluster can reach the server, and a Consul agent or
//! Marathon can answer anything. http-types panics on a header value that is not ASCII, and
//! async-h1 reads a head line without bound, so a head is located here within [`MAX_HEAD_BYTES`],
//! parsed with httparse, and refused unless its fields are plain: names are tokens, values visible
//! ASCII, at most one `Content-Length`, never with `Transfer-Encoding`, and `chunked` as the only
//! transfer coding. Chunked request bodies are decoded here too, so that only a body of known
//! length reaches tide.
//!
//! Sans-IO: everything works on byte slices; reading, timeouts and answering belong to the
//! callers. Also here: [`panic_message`], for the callers that contain panics.

use std::any::Any;

/// Largest head (start line, fields and the blank line) accepted from a peer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields accepted in one head.
pub const MAX_HEADER_FIELDS: usize = 100;
/// Longest chunk-size line (size and extensions) of a chunked body.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadViolation {
    /// No end of the head within [`MAX_HEAD_BYTES`].
    #[error("head larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    /// More than [`MAX_HEADER_FIELDS`] fields.
    #[error("more than {MAX_HEADER_FIELDS} header fields")]
    TooManyFields,
    /// Anything else that is not plain HTTP/1.x.
    #[error("{0}")]
    Malformed(String),
}

impl HeadViolation {
    fn malformed(reason: impl Into<String>) -> Self {
        HeadViolation::Malformed(reason.into())
    }
}

/// How far [`HeadScanner::scan`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadProgress {
    /// The head has not ended yet; read more.
    Incomplete,
    /// The head is the first `len` bytes.
    Complete {
        /// Length of the head, blank line included.
        len: usize,
    },
}

/// Finds the end of a head in a buffer that grows as bytes arrive, looking at each byte about once.
#[derive(Debug, Clone, Default)]
pub struct HeadScanner {
    /// Bytes already searched for the blank line.
    searched: usize,
}

impl HeadScanner {
    /// A scanner for a head that starts at the beginning of the buffer.
    pub fn new() -> Self {
        HeadScanner::default()
    }

    /// Looks for the blank line that ends the head at the start of `buffered` (every byte received
    /// since the head began; call again with the same bytes plus more). Empty lines before the
    /// start line are skipped, as RFC 9112 asks of servers; httparse skips them as well.
    pub fn scan(&mut self, buffered: &[u8]) -> Result<HeadProgress, HeadViolation> {
        let Some(content) = buffered.iter().position(|b| !matches!(b, b'\r' | b'\n')) else {
            return self.incomplete(buffered);
        };
        // A blank line is "\n\r\n" or "\n\n"; step back so one split across reads is found.
        let from = self.searched.saturating_sub(2).max(content);
        let end = buffered[from..]
            .windows(2)
            .enumerate()
            .find_map(|(at, pair)| match pair {
                [b'\n', b'\n'] => Some(from + at + 2),
                [b'\n', b'\r'] if buffered.get(from + at + 2) == Some(&b'\n') => {
                    Some(from + at + 3)
                }
                _ => None,
            });
        match end {
            Some(len) if len <= MAX_HEAD_BYTES => Ok(HeadProgress::Complete { len }),
            Some(_) => Err(HeadViolation::TooLarge),
            None => self.incomplete(buffered),
        }
    }

    fn incomplete(&mut self, buffered: &[u8]) -> Result<HeadProgress, HeadViolation> {
        self.searched = buffered.len();
        if buffered.len() >= MAX_HEAD_BYTES {
            return Err(HeadViolation::TooLarge);
        }
        Ok(HeadProgress::Incomplete)
    }
}

/// The HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

/// How a message says its body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length` (a request without framing fields has a body of length 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// A response without framing fields: the body ends when the connection closes.
    UntilClose,
    /// A response that has no body by its status (1xx, 204, 304).
    Bodiless,
}

/// Whether the connection stays open after this exchange, by the message's version and
/// `Connection` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Another message may follow on the connection.
    KeepAlive,
    /// The connection closes after this exchange.
    Close,
}

/// Whether a request asked for `100 Continue` before sending its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// `Expect: 100-continue`.
    Continue,
    /// No `Expect` field, or one without `100-continue`.
    Nothing,
}

/// One header field, checked: the name is a token, the value visible ASCII with inner spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// As sent (field names are case-insensitive).
    pub name: String,
    /// Without surrounding whitespace.
    pub value: String,
}

/// A request head that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// A token, e.g. `POST`.
    pub method: String,
    /// Origin-form: starts with `/`, path and query as sent.
    pub target: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: HttpVersion,
    /// Every field, in order, framing fields included.
    pub fields: Vec<HeaderField>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the client wants the connection kept open.
    pub persistence: Persistence,
    /// Whether the client waits for `100 Continue` before sending its body.
    pub expectation: Expectation,
}

/// A response head that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: HttpVersion,
    /// Every field, in order, framing fields included.
    pub fields: Vec<HeaderField>,
    /// How the body is delimited.
    pub framing: BodyFraming,
}

/// Parses and checks a complete request head (as found by [`HeadScanner`]).
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead, HeadViolation> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut slots);
    complete(request.parse(head))?;
    let method = request.method.unwrap_or_default().to_owned();
    let target = request.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(HeadViolation::malformed(
            "the request target must be a path starting with /",
        ));
    }
    if !target.bytes().all(is_visible_ascii) {
        return Err(HeadViolation::malformed(
            "the request target must be visible ASCII",
        ));
    }
    let version = version_of(request.version)?;
    let (fields, summary) = check_fields(request.headers)?;
    let framing = match summary.framing {
        DeclaredFraming::Length(length) => BodyFraming::Length(length),
        DeclaredFraming::Chunked => BodyFraming::Chunked,
        DeclaredFraming::Undeclared => BodyFraming::Length(0),
    };
    let persistence = match (version, summary.connection) {
        (_, ConnectionOption::Close) => Persistence::Close,
        (HttpVersion::Http10, ConnectionOption::KeepAlive) => Persistence::KeepAlive,
        (HttpVersion::Http10, ConnectionOption::Unstated) => Persistence::Close,
        (HttpVersion::Http11, _) => Persistence::KeepAlive,
    };
    let expectation = match fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("expect"))
        .flat_map(|f| f.value.split(','))
        .any(|e| e.trim().eq_ignore_ascii_case("100-continue"))
    {
        true => Expectation::Continue,
        false => Expectation::Nothing,
    };
    Ok(RequestHead {
        method,
        target: target.to_owned(),
        version,
        fields,
        framing,
        persistence,
        expectation,
    })
}

/// Parses and checks a complete response head (as found by [`HeadScanner`]).
pub fn parse_response_head(head: &[u8]) -> Result<ResponseHead, HeadViolation> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut response = httparse::Response::new(&mut slots);
    complete(response.parse(head))?;
    let status = response.code.unwrap_or_default();
    let version = version_of(response.version)?;
    let (fields, summary) = check_fields(response.headers)?;
    let framing = match summary.framing {
        _ if (100..200).contains(&status) || status == 204 || status == 304 => {
            BodyFraming::Bodiless
        }
        DeclaredFraming::Length(length) => BodyFraming::Length(length),
        DeclaredFraming::Chunked => BodyFraming::Chunked,
        DeclaredFraming::Undeclared => BodyFraming::UntilClose,
    };
    Ok(ResponseHead {
        status,
        version,
        fields,
        framing,
    })
}

/// httparse's verdict on a head that [`HeadScanner`] found complete.
fn complete(parsed: httparse::Result<usize>) -> Result<(), HeadViolation> {
    match parsed {
        Ok(httparse::Status::Complete(_)) => Ok(()),
        Ok(httparse::Status::Partial) => Err(HeadViolation::malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => Err(HeadViolation::TooManyFields),
        Err(error) => Err(HeadViolation::malformed(format!("malformed head: {error}"))),
    }
}

fn version_of(minor: Option<u8>) -> Result<HttpVersion, HeadViolation> {
    match minor {
        Some(0) => Ok(HttpVersion::Http10),
        Some(1) => Ok(HttpVersion::Http11),
        _ => Err(HeadViolation::malformed(
            "only HTTP/1.0 and HTTP/1.1 are spoken",
        )),
    }
}

/// What the fields say about framing and the connection.
struct FieldSummary {
    framing: DeclaredFraming,
    connection: ConnectionOption,
}

enum DeclaredFraming {
    Undeclared,
    Length(u64),
    Chunked,
}

enum ConnectionOption {
    Unstated,
    KeepAlive,
    Close,
}

fn check_fields(
    parsed: &[httparse::Header<'_>],
) -> Result<(Vec<HeaderField>, FieldSummary), HeadViolation> {
    let mut fields = Vec::with_capacity(parsed.len());
    for field in parsed {
        // httparse checked that the name is a token, but lets any byte above 0x7f into a value.
        let value = trim_whitespace(field.value);
        if !value.iter().copied().all(is_field_value_byte) {
            return Err(HeadViolation::malformed(format!(
                "the value of {} is not visible ASCII",
                field.name
            )));
        }
        fields.push(HeaderField {
            name: field.name.to_owned(),
            // Only ASCII bytes are left.
            value: String::from_utf8_lossy(value).into_owned(),
        });
    }
    let named = |name: &'static str| {
        fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
    };
    let mut lengths = named("content-length");
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => None,
        (Some(field), None) => Some(content_length(&field.value)?),
        (Some(_), Some(_)) => {
            return Err(HeadViolation::malformed("more than one Content-Length"));
        }
    };
    let codings: Vec<&str> = named("transfer-encoding")
        .flat_map(|f| f.value.split(','))
        .map(str::trim)
        .collect();
    let framing = match (length, codings.as_slice()) {
        (Some(length), []) => DeclaredFraming::Length(length),
        (None, []) => DeclaredFraming::Undeclared,
        (Some(_), _) => {
            return Err(HeadViolation::malformed(
                "Content-Length together with Transfer-Encoding",
            ));
        }
        (None, [coding]) if coding.eq_ignore_ascii_case("chunked") => DeclaredFraming::Chunked,
        (None, _) => {
            return Err(HeadViolation::malformed(
                "chunked is the only transfer coding accepted",
            ));
        }
    };
    let options: Vec<&str> = named("connection")
        .flat_map(|f| f.value.split(','))
        .map(str::trim)
        .collect();
    let connection = if options.iter().any(|o| o.eq_ignore_ascii_case("close")) {
        ConnectionOption::Close
    } else if options.iter().any(|o| o.eq_ignore_ascii_case("keep-alive")) {
        ConnectionOption::KeepAlive
    } else {
        ConnectionOption::Unstated
    };
    Ok((
        fields,
        FieldSummary {
            framing,
            connection,
        },
    ))
}

/// Digits only: no sign, no list (`5, 5`), no overflow.
fn content_length(value: &str) -> Result<u64, HeadViolation> {
    let invalid = || HeadViolation::malformed(format!("invalid Content-Length {value:?}"));
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    value.parse().map_err(|_| invalid())
}

fn trim_whitespace(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

fn is_visible_ascii(byte: u8) -> bool {
    (0x21..=0x7e).contains(&byte)
}

fn is_field_value_byte(byte: u8) -> bool {
    byte == b' ' || byte == b'\t' || is_visible_ascii(byte)
}

/// Whether `name` may be sent as a field name: a token (RFC 9110).
pub fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` may be sent as a field value: visible ASCII, spaces and tabs.
pub fn is_field_value(value: &str) -> bool {
    value.bytes().all(is_field_value_byte)
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedViolation {
    /// The decoded body would exceed the decoder's limit.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// Not chunked encoding as RFC 9112 spells it.
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
}

/// How far [`ChunkedDecoder::decode`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedProgress {
    /// The body goes on; call again with more bytes.
    NeedMore,
    /// The last chunk and the trailer section were read.
    Finished,
}

/// Decodes a chunked body into its bytes, refusing one longer than a limit before reading it.
/// Trailer fields are checked for length and discarded.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    limit: usize,
    state: ChunkedState,
}

#[derive(Debug, Clone, Copy)]
enum ChunkedState {
    SizeLine,
    Data { remaining: u64 },
    DataEnd,
    Trailers { seen: usize },
    Finished,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ChunkedDecoder {
            limit,
            state: ChunkedState::SizeLine,
        }
    }

    /// Decodes what it can of `input` (the unread bytes of the body), appending data to `body`.
    /// Returns how many bytes of `input` were used; the rest must be offered again, with more.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(usize, ChunkedProgress), ChunkedViolation> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                ChunkedState::Finished => return Ok((used, ChunkedProgress::Finished)),
                ChunkedState::SizeLine => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((line, 0))) => {
                        used += line;
                        self.state = ChunkedState::Trailers { seen: 0 };
                    }
                    Ok(httparse::Status::Complete((line, size))) => {
                        let room = self.limit.saturating_sub(body.len());
                        if size > u64::try_from(room).unwrap_or(u64::MAX) {
                            return Err(ChunkedViolation::TooLarge(self.limit));
                        }
                        used += line;
                        self.state = ChunkedState::Data { remaining: size };
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_CHUNK_LINE_BYTES => {
                        return Err(ChunkedViolation::Malformed("chunk size line too long"));
                    }
                    Ok(httparse::Status::Partial) => break,
                    Err(httparse::InvalidChunkSize) => {
                        return Err(ChunkedViolation::Malformed("invalid chunk size"));
                    }
                },
                ChunkedState::Data { remaining } => {
                    if rest.is_empty() {
                        break;
                    }
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    body.extend_from_slice(&rest[..take]);
                    used += take;
                    let remaining = remaining - take as u64;
                    self.state = match remaining {
                        0 => ChunkedState::DataEnd,
                        _ => ChunkedState::Data { remaining },
                    };
                }
                ChunkedState::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = ChunkedState::SizeLine;
                    }
                    [] | [b'\r'] => break,
                    _ => return Err(ChunkedViolation::Malformed("chunk data without CRLF")),
                },
                ChunkedState::Trailers { seen } => {
                    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                        if seen + rest.len() > MAX_HEAD_BYTES {
                            return Err(ChunkedViolation::Malformed("trailer section too large"));
                        }
                        break;
                    };
                    let line = &rest[..=newline];
                    let seen = seen + line.len();
                    if seen > MAX_HEAD_BYTES {
                        return Err(ChunkedViolation::Malformed("trailer section too large"));
                    }
                    if !line.ends_with(b"\r\n") {
                        return Err(ChunkedViolation::Malformed("trailer line without CRLF"));
                    }
                    used += line.len();
                    self.state = match line {
                        b"\r\n" => ChunkedState::Finished,
                        _ => ChunkedState::Trailers { seen },
                    };
                }
            }
        }
        Ok((used, ChunkedProgress::NeedMore))
    }
}

/// The message a panic was raised with, for the log line of whoever caught it.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(bytes: &[u8]) -> Result<HeadProgress, HeadViolation> {
        HeadScanner::new().scan(bytes)
    }

    #[test]
    fn the_scanner_finds_the_blank_line_across_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
        let len = head.len() - 4;
        let mut scanner = HeadScanner::new();
        for end in 0..len {
            assert_eq!(scanner.scan(&head[..end]), Ok(HeadProgress::Incomplete));
        }
        assert_eq!(
            scanner.scan(&head[..len]),
            Ok(HeadProgress::Complete { len })
        );
        assert_eq!(scan_all(head), Ok(HeadProgress::Complete { len }));
        assert_eq!(
            scan_all(b"\r\n\r\nGET / HTTP/1.1\n\n"),
            Ok(HeadProgress::Complete { len: 20 })
        );
    }

    #[test]
    fn the_scanner_refuses_a_head_at_the_limit_without_an_end() {
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        head.resize(MAX_HEAD_BYTES, b'a');
        assert_eq!(scan_all(&head), Err(HeadViolation::TooLarge));
        head.truncate(MAX_HEAD_BYTES - 1);
        assert_eq!(scan_all(&head), Ok(HeadProgress::Incomplete));
    }

    #[test]
    fn framing_and_persistence_of_requests() {
        let head =
            parse_request_head(b"POST /e?x=1 HTTP/1.0\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!(head.target, "/e?x=1");
        assert_eq!(head.framing, BodyFraming::Length(3));
        assert_eq!(head.persistence, Persistence::Close);
        let head = parse_request_head(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert_eq!(head.persistence, Persistence::KeepAlive);
        assert_eq!(head.expectation, Expectation::Continue);
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"POST / HTTP/1.1\r\nX : a\r\n\r\n",
            b"GET http://evil/ HTTP/1.1\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1\r\nX: caf\u{e9}\r\n\r\n".as_bytes(),
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request_head(head), Err(HeadViolation::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn too_many_fields_is_its_own_violation() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADER_FIELDS {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(parse_request_head(&head), Err(HeadViolation::TooManyFields));
    }

    #[test]
    fn response_framing() {
        let framing = |head: &[u8]| parse_response_head(head).map(|h| h.framing);
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
            Ok(BodyFraming::Length(2))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n"),
            Ok(BodyFraming::UntilClose)
        );
        assert_eq!(
            framing(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Ok(BodyFraming::Bodiless)
        );
        assert!(framing("HTTP/1.1 200 OK\r\nX: \u{e9}\r\n\r\n".as_bytes()).is_err());
    }

    fn dechunk(limit: usize, input: &[u8]) -> Result<(Vec<u8>, ChunkedProgress), ChunkedViolation> {
        let mut decoder = ChunkedDecoder::new(limit);
        let mut body = Vec::new();
        let mut pending = Vec::new();
        let mut progress = ChunkedProgress::NeedMore;
        // One byte at a time: every state must cope with input that stops anywhere.
        for &byte in input {
            pending.push(byte);
            let (used, now) = decoder.decode(&pending, &mut body)?;
            pending.drain(..used);
            progress = now;
        }
        Ok((body, progress))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let input = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(
            dechunk(100, input),
            Ok((b"hello world".to_vec(), ChunkedProgress::Finished))
        );
        let mut whole = Vec::new();
        let (used, progress) = ChunkedDecoder::new(100).decode(input, &mut whole).unwrap();
        assert_eq!(
            (used, progress, whole.as_slice()),
            (input.len(), ChunkedProgress::Finished, &b"hello world"[..])
        );
    }

    #[test]
    fn chunked_bodies_over_the_limit_or_malformed_are_refused() {
        assert_eq!(
            dechunk(4, b"5\r\nhello\r\n0\r\n\r\n"),
            Err(ChunkedViolation::TooLarge(4))
        );
        assert_eq!(
            dechunk(8, b"5\r\nhello\r\n5\r\nworld\r\n"),
            Err(ChunkedViolation::TooLarge(8))
        );
        assert!(matches!(
            dechunk(100, b"5\r\nhelloXX"),
            Err(ChunkedViolation::Malformed(_))
        ));
        assert!(matches!(
            dechunk(100, b"-5\r\n"),
            Err(ChunkedViolation::Malformed(_))
        ));
        assert!(matches!(
            dechunk(100, &[&b"1;"[..], &[b'x'; MAX_CHUNK_LINE_BYTES]].concat()),
            Err(ChunkedViolation::Malformed(_))
        ));
    }
}
