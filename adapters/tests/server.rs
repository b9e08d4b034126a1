//! The inbound server on its own, answered from the test through its channel: every method and
//! path reaches the other side with the query stripped, the reply comes back as JSON, and bodies
//! over the limit get 413 without reaching it.

mod common;

use std::net::SocketAddr;

use common::{raw_exchange, raw_http};
use consular_adapters::server::{self, InboundRequest, DEFAULT_MAX_BODY_BYTES};
use consular_core::Reply;
use smol::channel::{self, Receiver};

/// Starts the server on 127.0.0.1 with `max_body_bytes`; requests arrive on the receiver.
fn start(max_body_bytes: usize) -> (SocketAddr, Receiver<InboundRequest>, smol::Task<()>) {
    let listener = server::bind("127.0.0.1", 0).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel::unbounded();
    let task = smol::spawn(async move {
        server::serve(listener, tx, max_body_bytes).await.unwrap();
    });
    (addr, rx, task)
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
        assert_eq!(request.path, "/events");
        assert_eq!(request.body, body);
        let reply = br#"{"error": "Event type deployment_info not supported."}"#;
        request
            .reply
            .send(Reply {
                status: 400,
                body: reply.to_vec(),
            })
            .await
            .unwrap();

        let response = client.await;
        assert_eq!(response.status, 400);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.body, reply);
    });
}

#[test]
fn every_method_and_path_is_forwarded_without_the_query() {
    smol::block_on(async {
        let (addr, inbound, _server) = start(DEFAULT_MAX_BODY_BYTES);
        let cases = [
            ("GET", "/", "/"),
            ("PATCH", "/events/", "/events/"),
            ("OPTIONS", "/no/such?x=1&y", "/no/such"),
            ("DELETE", "/events?registration=other", "/events"),
            ("PUT", "/a%20b", "/a%20b"),
        ];
        for (method, sent, forwarded) in cases {
            let client = smol::spawn(raw_http(addr, method, sent, b""));
            let request = inbound.recv().await.unwrap();
            assert_eq!(request.path, forwarded, "{method} {sent}");
            assert!(request.body.is_empty());
            request
                .reply
                .send(Reply {
                    status: 404,
                    body: br#"{"error": "not here"}"#.to_vec(),
                })
                .await
                .unwrap();
            let response = client.await;
            assert_eq!(response.status, 404, "{method} {sent}");
            assert_eq!(response.body_text(), r#"{"error": "not here"}"#);
        }
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
            .send(Reply {
                status: 200,
                body: b"{}".to_vec(),
            })
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
