//! The run loop with a real `consular_core::Bridge`: inbound requests get the core's replies
//! through the server, the core's outbound requests go out and their responses come back in
//! order, Marathon's event stream is followed piece by piece, a stream faster than the core is
//! read no faster (memory stays bounded under a 64 MiB event line), the shutdown future ends the
//! loop with `Ok`, and a taken port fails `run` up front.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, outbound, raw_http, Canned, TestServer};
use consular_adapters::server::{self, ServerLimits, DEFAULT_MAX_BODY_BYTES};
use consular_adapters::{drive, run, BaseUrl, DriverError, DriverSettings, Endpoints};
use consular_core::{Bridge, Config, EventSource, InboundId, Output, Reply};
use smol::channel;
use smol::future;

fn settings(port: u16, marathon: &str) -> DriverSettings {
    DriverSettings {
        endpoints: Endpoints::new(
            BaseUrl::parse(marathon).unwrap(),
            BaseUrl::parse(marathon).unwrap(),
        ),
        consul_tls: Default::default(),
        marathon_tls: Default::default(),
        listen_host: "127.0.0.1".to_owned(),
        listen_port: port,
        server: ServerLimits::default(),
    }
}

/// The catalog of a Consul cluster whose one node is the agent on 127.0.0.1: the only host the
/// bridge sends a task's registration to.
const LOOPBACK_NODE: &str = r#"[{"Node": "local", "Address": "127.0.0.1"}]"#;

/// What a bridge in its initial state replies to one inbound request, computed without IO.
fn reply_of_fresh_bridge(path: &str, body: &[u8]) -> Reply {
    let mut bridge = Bridge::new(Config::default(), Duration::ZERO);
    bridge
        .handle_inbound(Duration::ZERO, InboundId(0), path, body)
        .unwrap();
    loop {
        match bridge.poll_output() {
            Output::Reply(_, reply) => return reply,
            Output::Timeout(_) => panic!("the core did not answer {path} at once"),
            _ => {}
        }
    }
}

/// Waits until `done` holds, for at most five seconds.
async fn eventually(mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < give_up, "condition not reached in 5 s");
        smol::Timer::after(Duration::from_millis(10)).await;
    }
}

#[test]
fn run_serves_the_cores_replies_and_stops_on_shutdown() {
    smol::block_on(async {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let bridge = Bridge::new(Config::default(), Duration::ZERO);
        let (stop, stopped) = channel::bounded::<()>(1);
        let driver = run(bridge, settings(port, "http://127.0.0.1:9"), async move {
            let _ = stopped.recv().await;
        });
        let client = async {
            // Whatever the core answers is what the client gets, byte for byte, as JSON.
            for (method, sent, path, body) in [
                ("GET", "/?ignored=1", "/", &b""[..]),
                ("DELETE", "/events/", "/events/", b""),
                (
                    "POST",
                    "/events?registration=x",
                    "/events",
                    br#"{"eventType": "api_post_event"}"#,
                ),
                ("PUT", "/events", "/events", b"not json"),
            ] {
                let response = raw_http(addr, method, sent, body).await;
                let expected = reply_of_fresh_bridge(path, body);
                assert_eq!(
                    (response.status, response.body.as_slice()),
                    (expected.status, expected.body.as_slice()),
                    "{method} {sent}"
                );
                assert_eq!(response.header("content-type"), Some("application/json"));
            }

            let oversize = raw_http(
                addr,
                "POST",
                "/events",
                &vec![b' '; DEFAULT_MAX_BODY_BYTES + 1],
            )
            .await;
            assert_eq!(oversize.status, 413);

            // `/metrics` is the core's route too, answered like `/health` for any method, but
            // the driver writes the body: the core's metrics as Prometheus text.
            for method in ["GET", "POST"] {
                let scrape = raw_http(addr, method, "/metrics?ignored=1", b"").await;
                assert_eq!(scrape.status, 200, "{method}");
                assert_eq!(
                    scrape.header("content-type"),
                    Some(consular_adapters::metrics::CONTENT_TYPE)
                );
                let text = String::from_utf8(scrape.body).unwrap();
                let version = env!("CARGO_PKG_VERSION");
                assert!(text.starts_with("# HELP consular_build_info "), "{text}");
                assert!(
                    text.contains(&format!(
                        "\nconsular_build_info{{version=\"{version}\"}} 1\n"
                    )),
                    "{text}"
                );
                assert!(text.contains("\nconsular_requests_in_flight "), "{text}");
            }

            stop.send(()).await.unwrap();
        };
        // The server needs a moment to listen; the client retries by waiting for the port.
        let (result, ()) = future::zip(driver, async {
            eventually(|| std::net::TcpStream::connect(addr).is_ok()).await;
            client.await
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
    });
}

#[test]
fn drive_sends_the_cores_requests_and_feeds_back_their_responses() {
    smol::block_on(async {
        let marathon = TestServer::plain(|seen| match seen.method.as_str() {
            "GET" => Canned::with_length(200, r#"{"callbackUrls": []}"#),
            _ => Canned::with_length(200, r#"{"message": "registered"}"#),
        })
        .await;
        let callback = "http://127.0.0.1:7000/events?registration=consular";
        let config = Config {
            callback_url: Some(callback.to_owned()),
            ..Config::default()
        };
        let bridge = Bridge::new(config, Duration::ZERO);
        let out = outbound(&marathon.base("http"), &marathon.base("http"));
        let (_inbound_tx, inbound_rx) = channel::unbounded();
        let (stop, stopped) = channel::bounded::<()>(1);
        let driver = drive(bridge, out, inbound_rx, async move {
            let _ = stopped.recv().await;
        });
        let (result, ()) = future::zip(driver, async {
            // The subscription POST is only sent after the GET's response reached the core.
            eventually(|| marathon.requests().len() >= 2).await;
            stop.send(()).await.unwrap();
        })
        .await;
        assert!(result.is_ok(), "{result:?}");

        let seen = marathon.requests();
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].target, "/v2/eventSubscriptions");
        assert_eq!(seen[1].method, "POST");
        assert_eq!(
            seen[1].target,
            format!("/v2/eventSubscriptions?callbackUrl={callback}")
        );
    });
}

#[test]
fn drive_follows_the_event_stream_and_acts_on_its_events() {
    smol::block_on(async {
        let event = r#"{"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "appId": "/my-app", "taskId": "my-app.1", "host": "127.0.0.1", "ports": [31000]}"#;
        let frame = format!("event: status_update_event\ndata: {event}\n\n");
        // Head and one event, then the connection stays open, as Marathon's stream does.
        let stream_head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{frame}\r\n",
            frame.len()
        );
        // One server plays Marathon and, as the agent on 127.0.0.1, Consul.
        let peers = TestServer::plain(move |seen| {
            if seen.target.starts_with("/v2/events") {
                Canned {
                    delay: Duration::ZERO,
                    bytes: stream_head.clone().into_bytes(),
                    close_after: false,
                }
            } else if seen.target == "/v2/apps" {
                Canned::with_length(200, r#"{"apps": []}"#)
            } else if seen.target.starts_with("/v2/apps/") {
                Canned::with_length(404, r#"{"message": "App not found"}"#)
            } else if seen.target == "/v1/catalog/nodes" {
                Canned::with_length(200, LOOPBACK_NODE)
            } else {
                Canned::with_length(200, "{}")
            }
        })
        .await;
        let config = Config {
            events: EventSource::Stream,
            ..Config::default()
        };
        let bridge = Bridge::new(config, Duration::ZERO);
        let out = outbound(&peers.base("http"), &peers.base("http"));
        let (_inbound_tx, inbound_rx) = channel::unbounded();
        let (stop, stopped) = channel::bounded::<()>(1);
        let driver = drive(bridge, out, inbound_rx, async move {
            let _ = stopped.recv().await;
        });
        let registered = |seen: &[common::Recorded]| {
            seen.iter().any(|r| {
                r.method == "PUT"
                    && r.target == "/v1/agent/service/register"
                    && String::from_utf8_lossy(&r.body).contains("my-app.1")
            })
        };
        let (result, ()) = future::zip(driver, async {
            eventually(|| registered(&peers.requests())).await;
            stop.send(()).await.unwrap();
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        let seen = peers.requests();
        let stream = seen
            .iter()
            .find(|r| r.target.starts_with("/v2/events"))
            .unwrap();
        assert_eq!(stream.method, "GET");
        assert_eq!(stream.header("accept"), Some("text/event-stream"));
    });
}

#[test]
fn drive_keeps_running_after_the_inbound_side_closes() {
    smol::block_on(async {
        let bridge = Bridge::new(Config::default(), Duration::ZERO);
        let out = outbound("http://127.0.0.1:9", "http://127.0.0.1:9");
        let (inbound_tx, inbound_rx) = channel::unbounded::<server::InboundRequest>();
        drop(inbound_tx);
        // With nothing to do and no inbound side, only the shutdown future ends the loop; it must
        // neither spin nor return early.
        let result = future::or(
            async { Some(drive(bridge, out, inbound_rx, future::pending()).await) },
            async {
                smol::Timer::after(Duration::from_millis(200)).await;
                None
            },
        )
        .await;
        assert!(result.is_none(), "drive returned early: {result:?}");
    });
}

#[test]
fn run_fails_up_front_when_the_port_is_taken() {
    smol::block_on(async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let bridge = Bridge::new(Config::default(), Duration::ZERO);
        let result = run(
            bridge,
            settings(port, "http://127.0.0.1:9"),
            future::pending(),
        )
        .await;
        match result {
            Err(error @ DriverError::Bind(_)) => assert!(
                error.to_string().contains(&format!("127.0.0.1:{port}")),
                "{error}"
            ),
            other => panic!("expected a bind error, got {other:?}"),
        }
    });
}

#[test]
fn the_run_future_can_be_spawned_on_multi_threaded_executors() {
    fn assert_send<T: Send>(_: &T) {}
    let bridge = Bridge::new(Config::default(), Duration::ZERO);
    let driver = run(
        bridge,
        settings(free_port(), "http://127.0.0.1:9"),
        future::pending(),
    );
    assert_send(&driver);
}

/// Resident memory of this process, from `/proc/self/status`.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: usize = line
        .trim_start_matches("VmRSS:")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// A Marathon on 127.0.0.1 whose `/v2/events` writes `prefix`, then `filler_bytes` of `x` as fast
/// as the socket takes them (made on the fly, so the server holds only one small buffer), then
/// `suffix`, and keeps the connection open; `/v2/apps` is empty and every app unknown.
async fn flooding_marathon(
    prefix: String,
    filler_bytes: usize,
    suffix: String,
) -> (std::net::SocketAddr, smol::Task<()>) {
    use consular_adapters::simulator::http1;
    use smol::io::{AsyncWriteExt, BufReader};

    let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = smol::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (prefix, suffix) = (prefix.clone(), suffix.clone());
            smol::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let Ok(Some(request)) = http1::read_request(&mut reader).await else {
                    return;
                };
                let target = request.target;
                let mut tcp = reader.into_inner();
                if target.starts_with("/v2/events") {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
                    let _ = tcp.write_all(format!("{head}{prefix}").as_bytes()).await;
                    let block = vec![b'x'; 64 * 1024];
                    let mut left = filler_bytes;
                    while left > 0 {
                        let n = left.min(block.len());
                        if tcp.write_all(&block[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                    let _ = tcp.write_all(suffix.as_bytes()).await;
                    let _ = tcp.flush().await;
                    // Held open, as Marathon's stream is, until the test process ends.
                    smol::future::pending::<()>().await;
                    drop(tcp);
                } else {
                    let (status, body) = match target.as_str() {
                        "/v2/apps" => (200, r#"{"apps": []}"#),
                        t if t.starts_with("/v2/apps/") => (404, r#"{"message": "App not found"}"#),
                        _ => (200, "{}"),
                    };
                    let headers = [("Content-Type", "application/json")];
                    let response = http1::response_bytes(status, &headers, body.as_bytes(), true);
                    let _ = tcp.write_all(&response).await;
                    let _ = tcp.flush().await;
                }
            })
            .detach();
        }
    });
    (addr, serving)
}

/// Marathon sends a 64 MiB event line as fast as loopback allows; the core (a debug build here)
/// is slower. The bounded task queue makes the stream task wait, so the rest stays in the sockets
/// and memory grows by far less than the line; the event after it still registers its task.
#[test]
fn a_stream_faster_than_the_core_is_read_no_faster_and_memory_stays_bounded() {
    const LINE_BYTES: usize = 64 << 20;
    /// Growth allowed: the queue (64 pieces of 16 KiB), the core's and the client's buffers, the
    /// allocator's slack; about 4 MiB when measured. With an unbounded queue it was 11 to 68 MiB,
    /// depending on how far the reader got ahead.
    const GROWTH_BOUND: usize = 16 << 20;

    smol::block_on(async {
        let event = r#"{"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "appId": "/big-app", "taskId": "big-app.1", "host": "127.0.0.1", "ports": [31000]}"#;
        let (marathon, _serving) = flooding_marathon(
            "event: status_update_event\ndata: ".to_owned(),
            LINE_BYTES,
            format!("\n\nevent: status_update_event\ndata: {event}\n\n"),
        )
        .await;
        let consul = TestServer::plain(|seen| match seen.target.as_str() {
            "/v1/catalog/nodes" => Canned::with_length(200, LOOPBACK_NODE),
            _ => Canned::with_length(200, "{}"),
        })
        .await;
        let config = Config {
            events: EventSource::Stream,
            ..Config::default()
        };
        let bridge = Bridge::new(config, Duration::ZERO);
        let out = outbound(&format!("http://{marathon}"), &consul.base("http"));
        let (_inbound_tx, inbound_rx) = channel::unbounded();
        let (stop, stopped) = channel::bounded::<()>(1);

        let baseline = rss_bytes();
        let peak = std::sync::atomic::AtomicUsize::new(baseline);
        let driver = drive(bridge, out, inbound_rx, async move {
            let _ = stopped.recv().await;
        });
        let registered = || {
            consul.requests().iter().any(|r| {
                r.target == "/v1/agent/service/register"
                    && String::from_utf8_lossy(&r.body).contains("big-app.1")
            })
        };
        let (result, ()) = future::zip(driver, async {
            let give_up = Instant::now() + Duration::from_secs(120);
            while !registered() {
                assert!(
                    Instant::now() < give_up,
                    "the event after the long line never registered"
                );
                peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            stop.send(()).await.unwrap();
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        let growth = peak.into_inner().saturating_sub(baseline);
        assert!(
            growth < GROWTH_BOUND,
            "RSS grew by {} MiB while a {} MiB line streamed",
            growth >> 20,
            LINE_BYTES >> 20
        );
    });
}
