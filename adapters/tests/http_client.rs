//! The outbound HTTP path ([`consular_adapters::Outbound`] over the async-h1 client) against a
//! scripted server on 127.0.0.1: status and body round-trip, headers, keep-alive reuse and when a
//! connection must not be reused, timeouts and connect failures. HTTPS is in `https.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, outbound, outbound_with, request, Canned, TestServer};
use consular_adapters::{BaseUrl, Endpoints};
use consular_core::{Method, Response, Target, TransportError};

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
    use consular_core::sim::marathon::{MarathonVersion, SimMarathon};

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
