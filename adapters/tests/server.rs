//! The inbound server on its own, answered from the test through its channel: every method and
//! target reaches the other side with its query, the reply comes back as JSON, and what a hostile
//! client sends is refused with a JSON error before it reaches the core: bodies over the limit
//! (413), heads that are not plain HTTP/1.x (400, 431), slow heads and bodies (408), more
//! connections than the cap (idle ones evicted, else 503). Also: chunked bodies arrive de-chunked,
//! replies on a kept-alive connection arrive whole, and a panicking handler costs one 500.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{raw_exchange, raw_http, read_response, resident_bytes, within, RawResponse};
use consular_adapters::server::{
    self, InboundRequest, ServerLimits, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
};
use consular_core::Reply;
use smol::channel::{self, Receiver};
use smol::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use smol::net::TcpStream;
use smol::Timer;

/// Starts the server on 127.0.0.1 within `limits`; requests arrive on the receiver.
fn start_with(limits: ServerLimits) -> (SocketAddr, Receiver<InboundRequest>, smol::Task<()>) {
    let listener = server::bind("127.0.0.1", 0).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel::unbounded();
    let task = smol::spawn(async move {
        server::serve(listener, tx, limits).await.unwrap();
    });
    (addr, rx, task)
}

/// Starts the server with `max_body_bytes` and the default limits otherwise.
fn start(max_body_bytes: usize) -> (SocketAddr, Receiver<InboundRequest>, smol::Task<()>) {
    start_with(ServerLimits {
        max_body_bytes,
        ..ServerLimits::default()
    })
}

/// What the stand-in core saw: target and body.
type Seen = (String, Vec<u8>);

/// A server within `limits` whose requests are all answered 200, echoing the body (or `{}`).
struct Answered {
    addr: SocketAddr,
    seen: Receiver<Seen>,
    _server: smol::Task<()>,
    _core: smol::Task<()>,
}

fn start_answered(limits: ServerLimits) -> Answered {
    let (addr, inbound, server) = start_with(limits);
    let (seen_tx, seen) = channel::unbounded();
    let core = smol::spawn(async move {
        while let Ok(request) = inbound.recv().await {
            let body = match request.body.is_empty() {
                true => b"{}".to_vec(),
                false => request.body.clone(),
            };
            let _ = seen_tx
                .send((request.path_and_query.clone(), request.body))
                .await;
            let _ = request.reply.send(Reply::json(200, body)).await;
        }
    });
    Answered {
        addr,
        seen,
        _server: server,
        _core: core,
    }
}

const PATIENCE: Duration = Duration::from_secs(10);

/// Writes `request` on a new connection and reads one response, within [`PATIENCE`].
async fn exchange(addr: SocketAddr, request: impl AsRef<[u8]>) -> RawResponse {
    within(
        PATIENCE,
        "a response",
        raw_exchange(addr, request.as_ref().to_vec()),
    )
    .await
}

fn assert_json_error(response: &RawResponse, status: u16) {
    assert_eq!(response.status, status, "{}", response.body_text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let text = response.body_text();
    assert!(
        text.starts_with(r#"{"error": ""#) && text.ends_with("\"}"),
        "{text}"
    );
}

/// `GET /` on a new connection gets the stand-in core's 200.
async fn assert_still_serving(addr: SocketAddr) {
    let response = within(PATIENCE, "GET /", raw_http(addr, "GET", "/", b"")).await;
    assert_eq!(response.status, 200, "{}", response.body_text());
}

#[test]
fn a_posted_event_reaches_the_other_side_and_its_reply_comes_back() {
    smol::block_on(async {
        let (addr, inbound, _server) = start(DEFAULT_MAX_BODY_BYTES);
        let body = br#"{"eventType": "deployment_info"}"#;
        let client = smol::spawn(raw_http(
            addr,
            "POST",
            "/events?registration=consular",
            body,
        ));

        let request = inbound.recv().await.unwrap();
        assert_eq!(request.path_and_query, "/events?registration=consular");
        assert_eq!(request.body, body);
        let reply = br#"{"error": "Event type deployment_info not supported."}"#;
        request
            .reply
            .send(Reply::json(400, reply.to_vec()))
            .await
            .unwrap();

        let response = client.await;
        assert_eq!(response.status, 400);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.body, reply);
    });
}

#[test]
fn every_method_and_target_is_forwarded_with_its_query() {
    smol::block_on(async {
        let (addr, inbound, _server) = start(DEFAULT_MAX_BODY_BYTES);
        let cases = [
            ("GET", "/"),
            ("PATCH", "/events/"),
            ("OPTIONS", "/no/such?x=1&y"),
            ("DELETE", "/events?registration=other&secret=s%20t"),
            ("PUT", "/a%20b"),
            ("GET", "//double/../slash?q=/x"),
        ];
        for (method, target) in cases {
            let client = smol::spawn(raw_http(addr, method, target, b""));
            let request = inbound.recv().await.unwrap();
            assert_eq!(request.path_and_query, target, "{method} {target}");
            assert!(request.body.is_empty());
            request
                .reply
                .send(Reply::json(404, br#"{"error": "not here"}"#.to_vec()))
                .await
                .unwrap();
            let response = client.await;
            assert_eq!(response.status, 404, "{method} {target}");
            assert_eq!(response.body_text(), r#"{"error": "not here"}"#);
        }
    });
}

#[test]
fn a_target_that_is_not_a_path_gets_400() {
    smol::block_on(async {
        let core = start_answered(ServerLimits::default());
        for target in ["http://evil.example/events", "*", "events"] {
            let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assert_json_error(&exchange(core.addr, request).await, 400);
        }
        assert!(core.seen.is_empty(), "a request reached the core");
    });
}

#[test]
fn a_body_at_the_limit_is_forwarded_and_one_byte_more_gets_413() {
    smol::block_on(async {
        let (addr, inbound, _server) = start(16);

        let client = smol::spawn(raw_http(addr, "POST", "/events", &[b'x'; 16]));
        let request = inbound.recv().await.unwrap();
        assert_eq!(request.body.len(), 16);
        request
            .reply
            .send(Reply::json(200, b"{}".to_vec()))
            .await
            .unwrap();
        assert_eq!(client.await.status, 200);

        let response = raw_http(addr, "POST", "/events", &[b'x'; 17]).await;
        assert_eq!(response.status, 413);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(
            response.body_text(),
            r#"{"error": "request body larger than 16 bytes"}"#
        );
        assert!(inbound.is_empty(), "an oversize request reached the core");
    });
}

#[test]
fn an_oversize_chunked_body_without_length_gets_413() {
    smol::block_on(async {
        let (addr, inbound, _server) = start(16);
        let request = format!(
            "POST /events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
             a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"
        );
        let response = raw_exchange(addr, request.into_bytes()).await;
        assert_eq!(response.status, 413);
        assert_eq!(
            response.body_text(),
            r#"{"error": "request body larger than 16 bytes"}"#
        );
        assert!(inbound.is_empty(), "an oversize request reached the core");
    });
}

#[test]
fn the_default_limit_is_one_mebibyte() {
    smol::block_on(async {
        assert_eq!(DEFAULT_MAX_BODY_BYTES, 1024 * 1024);
        let (addr, inbound, _server) = start(DEFAULT_MAX_BODY_BYTES);
        let response = raw_http(
            addr,
            "POST",
            "/events",
            &vec![b' '; DEFAULT_MAX_BODY_BYTES + 1],
        )
        .await;
        assert_eq!(response.status, 413);
        assert!(inbound.is_empty());
    });
}

#[test]
fn a_chunked_body_reaches_the_core_de_chunked_with_the_query() {
    smol::block_on(async {
        let core = start_answered(ServerLimits::default());
        let mut stream = TcpStream::connect(core.addr).await.unwrap();
        let head = "POST /events?registration=x&secret=y HTTP/1.1\r\nHost: x\r\n\
                    Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        // Split across writes, mid-size-line and mid-CRLF, with an extension and a trailer.
        let pieces = [
            head,
            "4;name=\"v\"\r\n{\"a\"",
            "\r",
            "\n3\r\n: 1\r\n1",
            "\r\n}\r\n0\r\nX-Checksum: none\r\n",
            "\r\n",
        ];
        for piece in pieces {
            stream.write_all(piece.as_bytes()).await.unwrap();
            Timer::after(Duration::from_millis(20)).await;
        }
        let response = within(
            PATIENCE,
            "the reply",
            read_response(&mut BufReader::new(stream)),
        )
        .await
        .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), r#"{"a": 1}"#);
        let (target, body) = core.seen.recv().await.unwrap();
        assert_eq!(target, "/events?registration=x&secret=y");
        assert_eq!(body, br#"{"a": 1}"#);
    });
}

#[test]
fn a_non_ascii_header_value_gets_400_and_the_server_keeps_serving() {
    smol::block_on(async {
        let core = start_answered(ServerLimits::default());
        let request = "GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\u{e9}\r\nConnection: close\r\n\r\n";
        let response = exchange(core.addr, request).await;
        assert_json_error(&response, 400);
        assert!(
            response.body_text().contains("X-Name"),
            "{}",
            response.body_text()
        );
        assert!(core.seen.is_empty(), "the request reached the core");
        assert_still_serving(core.addr).await;
    });
}

#[test]
fn framing_a_proxy_could_read_differently_gets_400() {
    smol::block_on(async {
        let core = start_answered(ServerLimits::default());
        let heads = [
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "Content-Length: 5\r\nContent-Length: 6",
            "Content-Length: 5\r\nContent-Length: 5",
            "Content-Length: five",
            "Content-Length: -5",
            "Content-Length: 5, 5",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: identity",
            "X-Folded: a\r\n b",
        ];
        for fields in heads {
            let request = format!("POST /events HTTP/1.1\r\nHost: x\r\n{fields}\r\n\r\nhello");
            let response = exchange(core.addr, request).await;
            assert_json_error(&response, 400);
            assert_eq!(response.header("connection"), Some("close"), "{fields}");
        }
        assert!(core.seen.is_empty(), "a request reached the core");
        assert_still_serving(core.addr).await;
    });
}

#[test]
fn more_than_100_header_fields_get_431() {
    smol::block_on(async {
        let core = start_answered(ServerLimits::default());
        let fields = |count: usize| -> String {
            (0..count)
                .map(|i| format!("X-Field-{i}: {i}\r\n"))
                .collect()
        };
        // 100 fields in all (Host, Connection and 98 more) pass.
        let request = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n",
            fields(98)
        );
        assert_eq!(exchange(core.addr, request).await.status, 200);
        let request = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n",
            fields(99)
        );
        assert_json_error(&exchange(core.addr, request).await, 431);
    });
}

#[test]
fn an_endless_header_line_gets_431_and_the_connection_closes_without_growing_memory() {
    smol::block_on(async {
        let core = start_answered(ServerLimits::default());
        let before = resident_bytes();
        let mut stream = TcpStream::connect(core.addr).await.unwrap();
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
        head.resize(20 * 1024, b'a');
        stream.write_all(&head).await.unwrap();
        let mut reader = BufReader::new(stream.clone());
        let response = within(PATIENCE, "the refusal", read_response(&mut reader))
            .await
            .expect("a reply before the close");
        assert_json_error(&response, 431);

        // The line goes on; the server must stop taking it.
        let piece = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        let refused = within(PATIENCE, "the server to close", async {
            while sent < 64 << 20 {
                if stream.write_all(&piece).await.is_err() {
                    return true;
                }
                sent += piece.len();
            }
            false
        })
        .await;
        assert!(
            refused,
            "the server accepted {sent} bytes of one header line"
        );
        if let (Some(before), Some(after)) = (before, resident_bytes()) {
            let grown = after.saturating_sub(before);
            assert!(grown < 16 << 20, "resident memory grew by {grown} bytes");
        }
        assert_still_serving(core.addr).await;
    });
}

#[test]
fn a_slowloris_head_is_cut_off_by_the_head_timeout() {
    smol::block_on(async {
        let head_timeout = Duration::from_millis(800);
        let core = start_answered(ServerLimits {
            head_timeout,
            ..ServerLimits::default()
        });
        let stream = TcpStream::connect(core.addr).await.unwrap();
        let started = Instant::now();
        let mut slow_head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec();
        slow_head.extend([b'a'; 1000]);
        let _dribble = dribble(stream.clone(), slow_head);
        expect_408_in_time(stream, started, head_timeout).await;
        assert!(core.seen.is_empty());
    });
}

#[test]
fn a_slow_body_is_cut_off_by_the_body_timeout() {
    smol::block_on(async {
        let body_timeout = Duration::from_millis(800);
        let core = start_answered(ServerLimits {
            body_timeout,
            ..ServerLimits::default()
        });
        let mut stream = TcpStream::connect(core.addr).await.unwrap();
        stream
            .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let _dribble = dribble(stream.clone(), vec![b'x'; 100]);
        expect_408_in_time(stream, started, body_timeout).await;
        assert!(core.seen.is_empty());
    });
}

/// Sends `bytes` one every 100 ms, as a slowloris client does, until the server closes.
fn dribble(mut writer: TcpStream, bytes: Vec<u8>) -> smol::Task<()> {
    smol::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            Timer::after(Duration::from_millis(100)).await;
        }
    })
}

/// The server answers `stream` 408 once `timeout` (counted from `started`) has passed, and not
/// much later.
async fn expect_408_in_time(stream: TcpStream, started: Instant, timeout: Duration) {
    let response = within(
        PATIENCE,
        "the 408",
        read_response(&mut BufReader::new(stream)),
    )
    .await
    .expect("a reply before the close");
    assert_json_error(&response, 408);
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout && elapsed < timeout * 4, "{elapsed:?}");
}

/// Whether the server closed `stream` (end of stream) within `wait`.
async fn closed_by_server(mut stream: TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    let read = async { Some(stream.read(&mut byte).await) };
    let waited = async {
        Timer::after(wait).await;
        None
    };
    matches!(smol::future::or(read, waited).await, Some(Ok(0) | Err(_)))
}

#[test]
fn a_flood_of_idle_connections_is_evicted_and_a_new_client_is_served() {
    smol::block_on(async {
        assert_eq!(DEFAULT_MAX_CONNECTIONS, 1024);
        let core = start_answered(ServerLimits {
            max_connections: 50,
            ..ServerLimits::default()
        });
        let mut idle = Vec::new();
        for _ in 0..200 {
            idle.push(TcpStream::connect(core.addr).await.unwrap());
        }
        Timer::after(Duration::from_millis(300)).await;
        assert_still_serving(core.addr).await;

        let checks: Vec<_> = idle
            .into_iter()
            .map(|stream| smol::spawn(closed_by_server(stream, Duration::from_secs(1))))
            .collect();
        let mut closed = 0;
        for check in checks {
            closed += usize::from(check.await);
        }
        // 201 connections came, 50 places: all but 50 of the idle ones were closed.
        assert!(
            closed >= 150,
            "only {closed} of 200 idle connections closed"
        );
    });
}

#[test]
fn with_every_place_mid_request_a_new_connection_gets_503() {
    smol::block_on(async {
        let core = start_answered(ServerLimits {
            max_connections: 50,
            ..ServerLimits::default()
        });
        let mut busy = Vec::new();
        for _ in 0..50 {
            let mut stream = TcpStream::connect(core.addr).await.unwrap();
            stream
                .write_all(
                    b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
                )
                .await
                .unwrap();
            busy.push(stream);
        }
        Timer::after(Duration::from_millis(300)).await;
        let response = within(PATIENCE, "the 503", raw_http(core.addr, "GET", "/", b"")).await;
        assert_json_error(&response, 503);

        drop(busy);
        Timer::after(Duration::from_millis(300)).await;
        assert_still_serving(core.addr).await;
        assert!(core.seen.recv().await.is_ok());
        assert!(
            core.seen.is_empty(),
            "an unfinished request reached the core"
        );
    });
}

#[test]
fn fifty_posts_on_one_kept_alive_connection_each_get_their_whole_reply_in_one_read() {
    smol::block_on(async {
        let core = start_answered(ServerLimits::default());
        let mut stream = TcpStream::connect(core.addr).await.unwrap();
        let mut buffer = vec![0u8; 64 * 1024];
        for n in 0..50 {
            let body = format!(r#"{{"n": {n}}}"#);
            let request = format!(
                "POST /events?registration=r HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let read = within(PATIENCE, "a reply", stream.read(&mut buffer))
                .await
                .unwrap();
            let reply = std::str::from_utf8(&buffer[..read]).unwrap();
            let (head, reply_body) = reply.split_once("\r\n\r\n").expect("a whole head");
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            let length = format!("content-length: {}", body.len());
            assert!(head.to_ascii_lowercase().contains(&length), "{head}");
            assert_eq!(reply_body, body, "reply {n} arrived in pieces");
            let (target, seen) = core.seen.recv().await.unwrap();
            assert_eq!(
                (target.as_str(), seen),
                ("/events?registration=r", body.into_bytes())
            );
        }
    });
}

#[test]
fn a_panicking_handler_gets_500_and_the_next_request_is_served() {
    smol::block_on(async {
        let listener = server::bind("127.0.0.1", 0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut app = tide::new();
        app.at("/")
            .post(|mut request: tide::Request<()>| async move {
                let body = request.body_string().await?;
                if body == "panic" {
                    panic!("the test handler panics on purpose");
                }
                Ok::<_, tide::Error>(format!("fine: {body}"))
            });
        let _server = smol::spawn(server::serve_app(listener, app, ServerLimits::default()));

        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut reader = BufReader::new(stream.clone());
        for body in ["panic", "calm", "panic", "calm again"] {
            let request = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let response = within(PATIENCE, "a reply", read_response(&mut reader))
                .await
                .expect("the connection survives the panic");
            if body == "panic" {
                assert_json_error(&response, 500);
            } else {
                assert_eq!(response.status, 200);
                assert_eq!(response.body_text(), format!("fine: {body}"));
            }
        }
    });
}

#[test]
fn a_taken_port_is_a_bind_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = server::bind("127.0.0.1", port).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot listen on 127.0.0.1:{port}: ")),
        "{message}"
    );
    assert!(
        message.ends_with("(another process is already listening on this port)"),
        "{message}"
    );
}

#[test]
fn host_names_bind_their_ipv4_address() {
    let listener = server::bind("localhost", 0).unwrap();
    assert!(listener.local_addr().unwrap().is_ipv4(), "{listener:?}");
}
