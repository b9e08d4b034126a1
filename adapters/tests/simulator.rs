//! The HTTP simulators over real loopback sockets: the `/v2/events` stream (headers, framing,
//! Jetty's 405, `event_stream_attached`, `event_type` filters by version, heartbeats, cuts and
//! outages), callback delivery, Consul's per-address agents and a down agent, and the real bridge
//! keeping the stand-in Consul in step with the stand-in Marathon.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{outbound, raw_exchange, raw_http, request, Canned, TestServer};
use consular_adapters::server::ServerLimits;
use consular_adapters::simulator::{ConsulServer, MarathonServer};
use consular_adapters::{run, BaseUrl, DriverSettings, Endpoints};
use consular_core::{Bridge, Config, EventSource, Method, Target};
use consular_sim::{MarathonVersion, SimConsul, SimMarathon};
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::net::TcpStream;
use smol::{future, Timer};

/// Longest any expected thing may take.
const PATIENCE: Duration = Duration::from_secs(5);

/// `work`, or a panic naming `what` after [`PATIENCE`].
async fn within<T>(what: &str, work: impl Future<Output = T>) -> T {
    future::or(work, async {
        Timer::after(PATIENCE).await;
        panic!("{what}: nothing after {PATIENCE:?}")
    })
    .await
}

/// Polls `done` every 10 ms until it holds; panics naming `what` after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < give_up,
            "{what}: not reached in {PATIENCE:?}"
        );
        Timer::after(Duration::from_millis(10)).await;
    }
}

/// One client of `/v2/events` reading the raw stream.
struct SseClient {
    reader: BufReader<TcpStream>,
    /// The response head, lines without CRLF.
    head: Vec<String>,
    /// Bare empty lines seen between frames (heartbeats).
    heartbeats: usize,
}

impl SseClient {
    async fn open(addr: SocketAddr, path_and_query: &str) -> SseClient {
        let mut connection = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        );
        connection.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(connection);
        let mut head = Vec::new();
        loop {
            let line = within("response head", read_line(&mut reader)).await;
            let line = line.expect("the stream closed in its head");
            if line.is_empty() {
                break;
            }
            head.push(line);
        }
        SseClient {
            reader,
            head,
            heartbeats: 0,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The next frame as `(event type, data)`, counting heartbeats before it; `None` at the end.
    async fn next_frame(&mut self) -> Option<(String, String)> {
        let mut lines = Vec::new();
        loop {
            let line = within("next frame", read_line(&mut self.reader)).await?;
            match (line.is_empty(), lines.is_empty()) {
                (true, true) => self.heartbeats += 1,
                (true, false) => break,
                (false, _) => lines.push(line),
            }
        }
        assert_eq!(
            lines.len(),
            2,
            "a frame is one event and one data line: {lines:?}"
        );
        let event = lines[0].strip_prefix("event: ").expect("event line");
        let data = lines[1].strip_prefix("data: ").expect("data line");
        Some((event.to_owned(), data.to_owned()))
    }

    /// Waits for a bare CRLF between frames.
    async fn next_heartbeat(&mut self) {
        let before = self.heartbeats;
        let line = within("heartbeat", read_line(&mut self.reader)).await;
        assert_eq!(line.as_deref(), Some(""), "expected a heartbeat");
        assert_eq!(self.heartbeats, before);
    }

    /// Whether the server closed the stream.
    async fn at_end(&mut self) -> bool {
        let mut rest = Vec::new();
        within("end of stream", self.reader.read_to_end(&mut rest))
            .await
            .is_ok()
            && rest.is_empty()
    }
}

/// One line without its CRLF; insists on CRLF, as Jetty writes. `None` at the end of the stream.
async fn read_line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let line = line
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("not CRLF: {line:?}"));
    Some(line.to_owned())
}

fn marathon(version: MarathonVersion) -> MarathonServer {
    MarathonServer::start(SimMarathon::new(version)).unwrap()
}

#[test]
fn the_event_stream_has_jettys_headers_and_crlf_frames_starting_with_attached() {
    let server = marathon(MarathonVersion::V1_10);
    smol::block_on(async {
        let mut client = SseClient::open(server.addr(), "/v2/events").await;
        assert_eq!(client.head[0], "HTTP/1.1 200 OK");
        assert_eq!(
            client.header("Content-Type"),
            Some("text/event-stream;charset=UTF-8")
        );
        assert_eq!(client.header("Connection"), Some("close"));
        assert_eq!(client.header("Content-Length"), None);
        assert_eq!(client.header("Transfer-Encoding"), None);

        let (event, data) = client.next_frame().await.unwrap();
        assert_eq!(event, "event_stream_attached");
        let attached: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(attached["remoteAddress"], "127.0.0.1");
        assert_eq!(server.open_streams(), 1);

        server.with(|m| m.put_app("/web", &[("domain", "web.local")]));
        let (event, data) = client.next_frame().await.unwrap();
        assert_eq!(event, "api_post_event");
        assert!(data.contains(r#""uri":"/v2/apps/web""#), "{data}");
        let (event, _) = client.next_frame().await.unwrap();
        assert_eq!(event, "group_change_success");
        assert_eq!(client.heartbeats, 0);
    });
    assert!(server
        .requests()
        .contains(&("GET".to_owned(), "/v2/events".to_owned())));
}

#[test]
fn events_without_the_exact_accept_header_get_jettys_405_and_other_paths_the_model() {
    let server = marathon(MarathonVersion::V1_4);
    smol::block_on(async {
        let addr = server.addr();
        let listy = format!(
            "GET /v2/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream, */*\r\nConnection: close\r\n\r\n"
        );
        let response = raw_exchange(addr, listy.into_bytes()).await;
        assert_eq!(response.status, 405);
        assert!(response
            .body_text()
            .contains("HTTP method GET is not supported by this URL"));
        assert_eq!(server.open_streams(), 0);

        let response = raw_http(addr, "GET", "/v2/info", b"").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(
            response.header("cache-control"),
            Some("no-cache, no-store, must-revalidate")
        );
        let info: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(info["version"], "1.4.13");
    });
}

#[test]
fn event_type_filters_apply_from_1_4_and_are_ignored_before() {
    let filtered = marathon(MarathonVersion::V1_4);
    let unfiltered = marathon(MarathonVersion::V1_1);
    smol::block_on(async {
        let query = "/v2/events?event_type=status_update_event&event_type=app_terminated_event";
        let mut client = SseClient::open(filtered.addr(), query).await;
        let mut old_client = SseClient::open(unfiltered.addr(), query).await;
        for server in [&filtered, &unfiltered] {
            server.with(|m| {
                let task = m.start_task("/web", "127.0.0.2", &[31000]);
                m.set_task_state(&task, "TASK_RUNNING");
            });
        }
        // 1.4: no attached, no app events, no instance events; just the two status updates.
        for state in ["TASK_STAGING", "TASK_RUNNING"] {
            let (event, data) = client.next_frame().await.unwrap();
            assert_eq!(event, "status_update_event");
            assert!(data.contains(state), "{data}");
        }
        filtered.with(|m| m.remove_app("/web"));
        let (event, _) = client.next_frame().await.unwrap();
        assert_eq!(event, "status_update_event");
        let (event, _) = client.next_frame().await.unwrap();
        assert_eq!(event, "app_terminated_event");

        // 1.1 ignores the parameter: everything, starting with attached.
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(old_client.next_frame().await.unwrap().0);
        }
        assert_eq!(
            seen,
            [
                "event_stream_attached",
                "api_post_event",
                "group_change_success",
                "status_update_event",
                "status_update_event"
            ]
        );
    });
}

#[test]
fn heartbeats_are_bare_crlfs_at_the_configured_period() {
    let server = marathon(MarathonVersion::V1_10);
    server.set_heartbeat_period(Duration::from_millis(50));
    smol::block_on(async {
        let mut client = SseClient::open(server.addr(), "/v2/events").await;
        client.next_frame().await.unwrap();
        client.next_heartbeat().await;
        client.next_heartbeat().await;
        server.with(|m| m.put_app("/web", &[]));
        let (event, _) = client.next_frame().await.unwrap();
        assert_eq!(event, "api_post_event");
    });
}

#[test]
fn the_projects_client_follows_the_close_delimited_stream() {
    let server = marathon(MarathonVersion::V1_10);
    let client = outbound(&server.url(), "http://127.0.0.1:1");
    smol::block_on(async {
        let open = request(Target::Marathon, Method::Get, "/v2/events", None);
        let mut stream = client.open_stream(&open).await.unwrap();
        assert_eq!(stream.status(), 200);
        let mut received = Vec::new();
        while !received.ends_with(b"\r\n\r\n") {
            let chunk = within("attached", stream.next_chunk()).await.unwrap();
            received.extend(chunk.expect("the stream ended"));
        }
        assert!(received.starts_with(b"event: event_stream_attached\r\ndata: {"));
    });
}

#[test]
fn raw_bytes_reach_every_open_stream() {
    let server = marathon(MarathonVersion::V1_10);
    smol::block_on(async {
        let mut client = SseClient::open(server.addr(), "/v2/events").await;
        client.next_frame().await.unwrap();
        server.write_raw_to_streams(b"event: custom\r\ndata: {\"big\":true}\r\n\r\n");
        let (event, data) = client.next_frame().await.unwrap();
        assert_eq!(
            (event.as_str(), data.as_str()),
            ("custom", r#"{"big":true}"#)
        );
    });
}

#[test]
fn drop_streams_cuts_connections_and_disabled_streams_answer_503() {
    let server = marathon(MarathonVersion::V1_10);
    smol::block_on(async {
        let mut client = SseClient::open(server.addr(), "/v2/events").await;
        client.next_frame().await.unwrap();
        assert_eq!(server.open_streams(), 1);
        server.drop_streams();
        assert_eq!(server.open_streams(), 0);
        assert!(client.at_end().await);

        server.set_streams_enabled(false);
        let addr = server.addr();
        let request = format!(
            "GET /v2/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        );
        let response = raw_exchange(addr, request.clone().into_bytes()).await;
        assert_eq!(response.status, 503);
        assert_eq!(server.open_streams(), 0);

        server.set_streams_enabled(true);
        let mut client = SseClient::open(addr, "/v2/events").await;
        assert_eq!(client.head[0], "HTTP/1.1 200 OK");
        client.next_frame().await.unwrap();
    });
}

#[test]
fn a_client_that_leaves_is_no_longer_counted() {
    let server = marathon(MarathonVersion::V1_10);
    smol::block_on(async {
        let mut client = SseClient::open(server.addr(), "/v2/events").await;
        client.next_frame().await.unwrap();
        assert_eq!(server.open_streams(), 1);
        drop(client);
        eventually("stream closed", || server.open_streams() == 0).await;
    });
}

#[test]
fn subscribed_callbacks_receive_each_event_as_a_json_post() {
    smol::block_on(async {
        let receiver = TestServer::plain(|_| Canned::with_length(200, "{}")).await;
        let server = marathon(MarathonVersion::V1_4);
        let callback = format!("{}/events?registration=test", receiver.base("http"));
        let subscribe = format!("/v2/eventSubscriptions?callbackUrl={callback}");
        let response = raw_http(server.addr(), "POST", &subscribe, b"").await;
        assert_eq!(response.status, 200, "{}", response.body_text());
        assert_eq!(server.with(|m| m.subscriptions().to_vec()), [callback]);

        server.with(|m| m.put_app("/web", &[]));
        let wanted = ["subscribe_event", "api_post_event", "group_change_success"];
        eventually("three callbacks", || receiver.requests().len() >= 3).await;
        let received = receiver.requests();
        for (request, event_type) in received.iter().zip(wanted) {
            assert_eq!(request.method, "POST");
            assert_eq!(request.target, "/events?registration=test");
            assert_eq!(request.header("accept"), Some("application/json"));
            assert_eq!(request.header("content-type"), Some("application/json"));
            let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            assert_eq!(event["eventType"], event_type);
        }
    });
}

#[test]
fn a_failing_callback_is_skipped_and_the_others_still_get_events() {
    smol::block_on(async {
        let receiver = TestServer::plain(|_| Canned::with_length(200, "{}")).await;
        let server = marathon(MarathonVersion::V1_1);
        let gone = format!("http://127.0.0.1:{}/events", common::free_port());
        let live = format!("{}/events", receiver.base("http"));
        for url in [&gone, &live] {
            let subscribe = format!("/v2/eventSubscriptions?callbackUrl={url}");
            assert_eq!(
                raw_http(server.addr(), "POST", &subscribe, b"")
                    .await
                    .status,
                200
            );
        }
        server.with(|m| m.put_app("/web", &[]));
        // The live subscriber gets its own subscribe_event (the first one went to `gone` alone)
        // and the app's two events, in order, although `gone` fails before each.
        eventually("three callbacks", || receiver.requests().len() >= 3).await;
        let received: Vec<String> = receiver
            .requests()
            .iter()
            .map(|r| {
                let event: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                event["eventType"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            received,
            ["subscribe_event", "api_post_event", "group_change_success"]
        );
    });
}

fn two_agent_consul() -> ConsulServer {
    let mut consul = SimConsul::new();
    consul.add_agent("server", "127.0.0.1");
    consul.add_agent("client-2", "127.0.0.2");
    ConsulServer::start(consul, 0).unwrap()
}

#[test]
fn each_agent_address_on_the_shared_port_is_its_own_agent() {
    let consul = two_agent_consul();
    assert_eq!(consul.url(), format!("http://127.0.0.1:{}", consul.port()));
    let client = outbound("http://127.0.0.1:1", &consul.url());
    smol::block_on(async {
        let body = br#"{"ID":"web-1","Name":"web","Address":"127.0.0.2","Port":31000}"#;
        let register = request(
            Target::Agent("127.0.0.2".to_owned()),
            Method::Put,
            "/v1/agent/service/register",
            Some(body),
        );
        assert_eq!(client.execute(&register).await.unwrap().status, 200);

        let services = |target: Target| {
            let client = client.clone();
            async move {
                let list = request(target, Method::Get, "/v1/agent/services", None);
                let response = client.execute(&list).await.unwrap();
                serde_json::from_slice::<serde_json::Value>(&response.body).unwrap()
            }
        };
        let on_client = services(Target::Agent("127.0.0.2".to_owned())).await;
        assert_eq!(on_client["web-1"]["Port"], 31000);
        let on_server = services(Target::Consul).await;
        assert_eq!(on_server, serde_json::json!({}));

        let catalog = request(Target::Consul, Method::Get, "/v1/catalog/service/web", None);
        let response = client.execute(&catalog).await.unwrap();
        let nodes: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(nodes[0]["Node"], "client-2");
        assert_eq!(nodes[0]["ServiceID"], "web-1");
    });
    let ids = consul.with(|c| {
        c.services("127.0.0.2")
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(ids, ["web-1"]);
}

#[test]
fn a_down_agent_hangs_up_and_comes_back() {
    let consul = two_agent_consul();
    let client = outbound("http://127.0.0.1:1", &consul.url());
    let agent = Target::Agent("127.0.0.2".to_owned());
    smol::block_on(async {
        consul.with(|c| c.set_agent_up("127.0.0.2", false));
        let addr: SocketAddr = format!("127.0.0.2:{}", consul.port()).parse().unwrap();
        let mut connection = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET /v1/agent/services HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        // The write may or may not beat the close; either way not a byte comes back.
        let _ = connection.write_all(head.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = within("hang-up", connection.read_to_end(&mut answer)).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

        let list = request(agent.clone(), Method::Get, "/v1/agent/services", None);
        assert!(client.execute(&list).await.is_err());
        // The server agent is unaffected.
        let on_server = request(Target::Consul, Method::Get, "/v1/agent/services", None);
        assert_eq!(client.execute(&on_server).await.unwrap().status, 200);

        consul.with(|c| c.set_agent_up("127.0.0.2", true));
        assert_eq!(client.execute(&list).await.unwrap().status, 200);
    });
}

#[test]
fn the_bridge_follows_the_simulated_marathon_stream_into_the_simulated_consul() {
    let marathon = marathon(MarathonVersion::V1_10);
    let consul = two_agent_consul();
    let config = Config {
        registration_id: "simulated".to_owned(),
        events: EventSource::Stream,
        ..Config::default()
    };
    let settings = DriverSettings {
        endpoints: Endpoints::new(
            BaseUrl::parse(&marathon.url()).unwrap(),
            BaseUrl::parse(&consul.url()).unwrap(),
        ),
        consul_tls: Default::default(),
        marathon_tls: Default::default(),
        listen_host: "127.0.0.1".to_owned(),
        listen_port: 0,
        server: ServerLimits::default(),
    };
    let on_agent = |address: &str| {
        consul.with(|c| {
            c.services(address)
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        })
    };
    let scenario = async {
        eventually("bridge attached", || marathon.open_streams() == 1).await;
        let task = marathon.with(|m| {
            let task = m.start_task("/web", "127.0.0.2", &[31000]);
            m.set_task_state(&task, "TASK_RUNNING");
            task
        });
        eventually("registered", || on_agent("127.0.0.2") == ["web"]).await;
        assert!(on_agent("127.0.0.1").is_empty());

        marathon.with(|m| m.set_task_state(&task, "TASK_KILLED"));
        eventually("deregistered", || on_agent("127.0.0.2").is_empty()).await;
    };
    let bridge = Bridge::new(config, Duration::ZERO);
    smol::block_on(future::or(
        async {
            let stopped = run(bridge, settings, future::pending()).await;
            panic!("the bridge stopped: {stopped:?}");
        },
        scenario,
    ));
    assert!(marathon
        .requests()
        .iter()
        .any(|(method, path)| method == "GET" && path.starts_with("/v2/events")));
}

#[test]
fn dropping_the_servers_closes_their_listeners_and_connections() {
    let marathon = marathon(MarathonVersion::V1_10);
    let consul = two_agent_consul();
    let marathon_addr = marathon.addr();
    let agent_addrs: Vec<SocketAddr> = ["127.0.0.1", "127.0.0.2"]
        .iter()
        .map(|ip| format!("{ip}:{}", consul.port()).parse().unwrap())
        .collect();
    smol::block_on(async {
        let mut client = SseClient::open(marathon_addr, "/v2/events").await;
        client.next_frame().await.unwrap();
        drop(marathon);
        assert!(client.at_end().await);
        assert!(TcpStream::connect(marathon_addr).await.is_err());
        drop(consul);
        for addr in agent_addrs {
            assert!(
                TcpStream::connect(addr).await.is_err(),
                "{addr} still listens"
            );
        }
    });
}
