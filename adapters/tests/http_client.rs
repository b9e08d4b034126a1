//! The outbound HTTP path ([`consular_adapters::Outbound`] over the async-h1 client) against a
//! scripted server on 127.0.0.1: status and body round-trip, headers, keep-alive reuse and when a
//! connection must not be reused, timeouts and connect failures; and against a hostile peer:
//! heads that are not plain HTTP/1.x, endless heads and bodies, and bodies beyond the request's
//! response limit are errors, promptly, without a panic and without reading what is not wanted.
//! HTTPS is in `https.rs`.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, outbound, outbound_with, request, resident_bytes, Canned, TestServer};
use consular_adapters::{BaseUrl, Endpoints};
use consular_core::{Method, Response, Target, TransportError};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::Timer;

#[test]
fn status_body_and_headers_round_trip() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned::with_length(201, r#"{"ok": true}"#)).await;
        let out = outbound(&server.base("http"), &server.base("http"));
        let req = request(
            Target::Consul,
            Method::Put,
            "/v1/kv/consular/my-app/foo?x",
            Some(br#""bar""#),
        );
        let res = out.execute(&req).await;
        assert_eq!(
            res,
            Ok(Response {
                status: 201,
                body: br#"{"ok": true}"#.to_vec()
            })
        );
        let seen = &server.requests()[0];
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.target, "/v1/kv/consular/my-app/foo?x");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.header("accept"), Some("application/json"));
        assert_eq!(
            seen.header("host"),
            Some(format!("127.0.0.1:{}", server.addr.port()).as_str())
        );
        assert_eq!(seen.body, br#""bar""#);
    });
}

#[test]
fn requests_without_body_send_none_and_error_statuses_are_responses() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned::with_length(503, "down")).await;
        let out = outbound(&server.base("http"), &server.base("http"));
        let res = out
            .execute(&request(Target::Marathon, Method::Get, "/v2/apps", None))
            .await;
        assert_eq!(
            res,
            Ok(Response {
                status: 503,
                body: b"down".to_vec()
            })
        );
        let seen = &server.requests()[0];
        assert_eq!(seen.method, "GET");
        assert!(seen.body.is_empty());
        assert_eq!(seen.header("content-type"), Some("application/json"));
    });
}

#[test]
fn sequential_requests_reuse_one_connection() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned::with_length(200, "{}")).await;
        let out = outbound(&server.base("http"), &server.base("http"));
        for path in ["/v1/catalog/nodes", "/v1/kv/a", "/v1/kv/b"] {
            let res = out
                .execute(&request(Target::Consul, Method::Get, path, None))
                .await;
            assert_eq!(res.unwrap().status, 200);
        }
        assert_eq!(server.requests().len(), 3);
        assert_eq!(server.connections(), 1);
    });
}

#[test]
fn chunked_responses_are_read_whole_and_keep_the_connection() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned::chunked(200, &["[\"a\",", "\"b\"]"])).await;
        let out = outbound(&server.base("http"), &server.base("http"));
        for _ in 0..2 {
            let res = out
                .execute(&request(Target::Consul, Method::Get, "/v1/kv/x?keys", None))
                .await;
            assert_eq!(res.unwrap().body, br#"["a","b"]"#);
        }
        assert_eq!(server.connections(), 1);
    });
}

#[test]
fn connection_close_responses_are_not_reused() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned::closing(200, "{}")).await;
        let out = outbound(&server.base("http"), &server.base("http"));
        for _ in 0..2 {
            let res = out
                .execute(&request(Target::Marathon, Method::Get, "/v2/apps", None))
                .await;
            assert_eq!(res.unwrap().status, 200);
        }
        assert_eq!(server.connections(), 2);
    });
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced() {
    smol::block_on(async {
        // Keep-alive framing, but the server hangs up right after answering.
        let server = TestServer::plain(|_| Canned::with_length(200, "{}").then_close()).await;
        let out = outbound(&server.base("http"), &server.base("http"));
        for _ in 0..2 {
            let res = out
                .execute(&request(Target::Marathon, Method::Get, "/v2/apps", None))
                .await;
            assert_eq!(res.unwrap().status, 200);
            // Let the server's FIN arrive before the next request checks the idle connection.
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        assert_eq!(server.connections(), 2);
    });
}

#[test]
fn slow_responses_time_out_and_their_connection_is_dropped() {
    smol::block_on(async {
        let server = TestServer::plain(|seen| {
            if seen.target == "/slow" {
                Canned::with_length(200, "{}").delayed(Duration::from_secs(3))
            } else {
                Canned::with_length(200, "{}")
            }
        })
        .await;
        let out = outbound(&server.base("http"), &server.base("http"));
        let mut slow = request(Target::Marathon, Method::Get, "/slow", None);
        slow.timeout = Duration::from_millis(200);
        let started = Instant::now();
        assert_eq!(out.execute(&slow).await, Err(TransportError::Timeout));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        let res = out
            .execute(&request(Target::Marathon, Method::Get, "/fast", None))
            .await;
        assert_eq!(res.unwrap().status, 200);
        // The timed-out exchange's connection still has a response coming; it must not be reused.
        assert_eq!(server.connections(), 2);
    });
}

#[test]
fn a_refused_port_is_a_connect_error() {
    smol::block_on(async {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let out = outbound(&base, &base);
        let res = out
            .execute(&request(Target::Marathon, Method::Get, "/v2/apps", None))
            .await;
        match res {
            Err(TransportError::Connect(message)) => {
                assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}")
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    });
}

#[test]
fn agents_get_the_consul_port_and_credentials_go_where_they_belong() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned::with_length(200, "{}")).await;
        let port = server.addr.port();
        let endpoints = Endpoints::new(
            BaseUrl::parse(&format!(
                "http://marathon-user:pw@127.0.0.1:{port}/marathon"
            ))
            .unwrap(),
            // The agent is reached at the task host with this URL's scheme and port.
            BaseUrl::parse(&format!("http://consul.invalid:{port}")).unwrap(),
        )
        .with_consul_token(Some("acl-token".into()));
        let out = outbound_with(endpoints, None);

        let agent = request(
            Target::Agent("127.0.0.1".into()),
            Method::Put,
            "/v1/agent/service/register",
            Some(b"{}"),
        );
        assert_eq!(out.execute(&agent).await.unwrap().status, 200);
        let marathon = request(Target::Marathon, Method::Get, "/v2/apps", None);
        assert_eq!(out.execute(&marathon).await.unwrap().status, 200);

        let seen = server.requests();
        assert_eq!(seen[0].target, "/v1/agent/service/register");
        assert_eq!(seen[0].header("x-consul-token"), Some("acl-token"));
        assert_eq!(seen[0].header("authorization"), None);
        assert_eq!(
            seen[1].target, "/marathon/v2/apps",
            "--marathon's path is a prefix"
        );
        assert_eq!(seen[1].header("x-consul-token"), None);
        // base64("marathon-user:pw")
        assert_eq!(
            seen[1].header("authorization"),
            Some("Basic bWFyYXRob24tdXNlcjpwdw==")
        );
    });
}

#[test]
fn an_invalid_agent_host_is_a_connect_error_without_traffic() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned::with_length(200, "{}")).await;
        let out = outbound(&server.base("http"), &server.base("http"));
        let res = out
            .execute(&request(
                Target::Agent("evil@127.0.0.1".into()),
                Method::Get,
                "/v1/agent/services",
                None,
            ))
            .await;
        assert!(matches!(res, Err(TransportError::Connect(_))), "{res:?}");
        assert_eq!(server.connections(), 0);
    });
}

/// A standby Marathon (1.7+) answers `/v2/events` with a redirect to the leader it names at
/// `/v2/leader`; the stream is opened there, credentials included. (What is refused: redirects.rs.)
#[test]
fn an_event_stream_follows_a_standbys_redirect_to_the_leader() {
    use consular_adapters::simulator::MarathonServer;
    use consular_sim::marathon::{MarathonVersion, SimMarathon};

    smol::block_on(async {
        let leader = MarathonServer::start(SimMarathon::new(MarathonVersion::V1_10)).unwrap();
        let location = format!("{}/v2/events", leader.url());
        let named = format!(r#"{{"leader":"{}"}}"#, leader.addr());
        let standby = TestServer::plain(move |seen| match seen.target.as_str() {
            "/v2/leader" => Canned::with_length(200, &named),
            _ => Canned {
                delay: Duration::ZERO,
                bytes: format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                )
                .into_bytes(),
                close_after: false,
            },
        })
        .await;
        let endpoints = Endpoints::new(
            BaseUrl::parse(&format!("http://u:p@{}", standby.addr)).unwrap(),
            BaseUrl::parse("http://127.0.0.1:1").unwrap(),
        );
        let out = outbound_with(endpoints, None);
        let events = request(Target::Marathon, Method::Get, "/v2/events", None);
        let mut stream = out.open_stream(&events).await.unwrap();
        assert_eq!(stream.status(), 200);
        let first = stream
            .next_chunk()
            .await
            .unwrap()
            .expect("the leader's stream");
        assert!(String::from_utf8_lossy(&first).contains("event_stream_attached"));
        assert_eq!(
            standby.requests()[0].header("authorization"),
            Some("Basic dTpw")
        );
    });
}

/// A peer on 127.0.0.1 that reads each request head, then runs its script on the connection.
struct HostilePeer {
    base: String,
    /// Bytes the scripts got onto the wire, over all connections.
    written: Arc<AtomicUsize>,
    _accepting: smol::Task<()>,
}

impl HostilePeer {
    async fn start<F, Fut>(script: F) -> Self
    where
        F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let written = Arc::new(AtomicUsize::new(0));
        let counter = written.clone();
        let accepting = smol::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if !matches!(stream.read(&mut byte).await, Ok(1)) {
                        break;
                    }
                    head.push(byte[0]);
                }
                smol::spawn(script(stream, counter.clone())).detach();
            }
        });
        HostilePeer {
            base,
            written,
            _accepting: accepting,
        }
    }

    /// Answers `bytes`, then keeps the connection open without a word more.
    async fn answering_then_silent(bytes: &'static [u8]) -> Self {
        Self::start(move |mut stream, written| async move {
            if stream.write_all(bytes).await.is_ok() {
                written.fetch_add(bytes.len(), Ordering::SeqCst);
            }
            Timer::after(Duration::from_secs(30)).await;
        })
        .await
    }

    /// Answers `head`, then `piece` again and again until the client stops reading.
    async fn answering_without_end(head: &'static [u8], piece: Vec<u8>) -> Self {
        let piece = Arc::new(piece);
        Self::start(move |mut stream, written| {
            let piece = piece.clone();
            async move {
                if stream.write_all(head).await.is_err() {
                    return;
                }
                // 1 GiB at most, so that a client that reads everything ends too.
                while written.load(Ordering::SeqCst) < 1 << 30 {
                    if stream.write_all(&piece).await.is_err() {
                        return;
                    }
                    written.fetch_add(piece.len(), Ordering::SeqCst);
                }
            }
        })
        .await
    }

    fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }
}

/// A GET to `base` with `response_limit` and a 5 s timeout, and how long it took.
async fn get_from(
    base: &str,
    response_limit: usize,
) -> (Result<Response, TransportError>, Duration) {
    let out = outbound(base, base);
    let mut req = request(Target::Marathon, Method::Get, "/v2/apps", None);
    req.response_limit = response_limit;
    req.timeout = Duration::from_secs(5);
    let started = Instant::now();
    let result = out.execute(&req).await;
    (result, started.elapsed())
}

/// Well within the 5 s timeout: the client decided, not the clock.
const PROMPTLY: Duration = Duration::from_secs(2);

fn assert_io_error(result: &Result<Response, TransportError>, mentioning: &str) {
    match result {
        Err(TransportError::Io(message)) => {
            assert!(message.contains(mentioning), "{message}")
        }
        other => panic!("expected an I/O error about {mentioning:?}, got {other:?}"),
    }
}

#[test]
fn a_non_ascii_header_value_from_a_peer_is_an_error_not_a_panic() {
    smol::block_on(async {
        let server = TestServer::plain(|_| Canned {
            delay: Duration::ZERO,
            bytes: "HTTP/1.1 200 OK\r\nX-Name: caf\u{e9}\r\nContent-Length: 2\r\n\r\n{}"
                .as_bytes()
                .to_vec(),
            close_after: false,
        })
        .await;
        let (result, elapsed) = get_from(&server.base("http"), 1024).await;
        assert_io_error(&result, "X-Name");
        assert!(elapsed < PROMPTLY, "{elapsed:?}");
        // Nothing was taken down with it.
        let good = TestServer::plain(|_| Canned::with_length(200, "{}")).await;
        let (result, _) = get_from(&good.base("http"), 1024).await;
        assert_eq!(result.map(|r| r.status), Ok(200));
    });
}

#[test]
fn an_endless_header_line_from_a_peer_is_cut_off_without_reading_it() {
    smol::block_on(async {
        let before = resident_bytes();
        let peer = HostilePeer::answering_without_end(
            b"HTTP/1.1 200 OK\r\nX-Long: ",
            vec![b'a'; 64 * 1024],
        )
        .await;
        let (result, elapsed) = get_from(&peer.base, 1024 * 1024).await;
        assert_io_error(&result, "head larger than 16384 bytes");
        assert!(elapsed < PROMPTLY, "{elapsed:?}");
        // What the socket buffers took; the client itself read 16 KiB of it.
        assert_flood_contained(&peer, before).await;
    });
}

#[test]
fn framing_a_peer_could_smuggle_with_is_an_error() {
    smol::block_on(async {
        let answers: [&'static [u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 100\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ];
        for answer in answers {
            let peer = HostilePeer::answering_then_silent(answer).await;
            let (result, elapsed) = get_from(&peer.base, 1024).await;
            assert_io_error(&result, "invalid response head");
            assert!(elapsed < PROMPTLY, "{elapsed:?}");
        }
    });
}

#[test]
fn a_content_length_beyond_the_response_limit_fails_without_reading_the_body() {
    smol::block_on(async {
        let peer = HostilePeer::answering_then_silent(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n",
        )
        .await;
        let (result, elapsed) = get_from(&peer.base, 1024).await;
        assert_eq!(result, Err(TransportError::TooLarge(1024)));
        assert!(elapsed < PROMPTLY, "{elapsed:?}");
    });
}

#[test]
fn a_body_at_the_response_limit_is_read_and_one_byte_more_is_too_large() {
    smol::block_on(async {
        let body = "x".repeat(1000);
        let server = TestServer::plain(move |_| Canned::with_length(200, &body)).await;
        let (result, _) = get_from(&server.base("http"), 1000).await;
        assert_eq!(result.map(|r| r.body.len()), Ok(1000));
        let (result, _) = get_from(&server.base("http"), 999).await;
        assert_eq!(
            result.map(|r| r.body.len()),
            Err(TransportError::TooLarge(999))
        );

        let chunked =
            TestServer::plain(|_| Canned::chunked(200, &["x".repeat(600).as_str(); 2])).await;
        let (result, _) = get_from(&chunked.base("http"), 1200).await;
        assert_eq!(result.map(|r| r.body.len()), Ok(1200));
        let (result, _) = get_from(&chunked.base("http"), 1199).await;
        assert_eq!(
            result.map(|r| r.body.len()),
            Err(TransportError::TooLarge(1199))
        );
    });
}

#[test]
fn an_endless_chunked_body_stops_at_the_response_limit() {
    smol::block_on(async {
        let before = resident_bytes();
        let mut chunk = b"1000\r\n".to_vec();
        chunk.extend_from_slice(&[b'a'; 0x1000]);
        chunk.extend_from_slice(b"\r\n");
        let peer = HostilePeer::answering_without_end(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunk,
        )
        .await;
        let (result, elapsed) = get_from(&peer.base, 64 * 1024).await;
        assert_eq!(result, Err(TransportError::TooLarge(64 * 1024)));
        assert!(elapsed < PROMPTLY, "{elapsed:?}");
        assert_flood_contained(&peer, before).await;
    });
}

/// After a peer's endless answer was refused: the peer got little out (what the socket buffers
/// take) and this process's memory (resident before: `before`) grew by little.
async fn assert_flood_contained(peer: &HostilePeer, before: Option<usize>) {
    Timer::after(Duration::from_millis(200)).await;
    assert!(
        peer.written() < 16 << 20,
        "the peer got {} bytes out",
        peer.written()
    );
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        let grown = after.saturating_sub(before);
        assert!(grown < 16 << 20, "resident memory grew by {grown} bytes");
    }
}
