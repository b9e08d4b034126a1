//! Where the event stream's redirects may take Marathon's credentials: a fake standby Marathon on
//! 127.0.0.1 redirects `/v2/events`, and the stream follows only to the configured Marathon's
//! host:port or to the leader the standby names at `/v2/leader`, never to another host (a recorder
//! on 127.0.0.2 that must see nothing) and never from https to http. Loopback only.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{outbound_with, request, Canned, Recorded, TestServer};
use consular_adapters::{BaseUrl, Endpoints, Outbound};
use consular_core::{Method, Target, TransportError};
use futures_rustls::TlsAcceptor;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use smol::io::AsyncWriteExt;
use smol::net::TcpListener;

/// base64("alice:hunter2")
const BASIC_ALICE: &str = "Basic YWxpY2U6aHVudGVyMg==";
const EVENT: &str = "event: event_stream_attached\ndata: {\"remoteAddress\":\"127.0.0.1\",\"eventType\":\"event_stream_attached\",\"timestamp\":\"2026-01-01T00:00:00.000Z\"}\n\n";

/// A redirect to `location`.
fn redirect_to(location: &str) -> Canned {
    Canned {
        delay: Duration::ZERO,
        bytes: format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            .into_bytes(),
        close_after: false,
    }
}

/// A Marathon leader: its event stream sends one event and ends.
async fn leader() -> TestServer {
    TestServer::plain(|seen| {
        if seen.target.ends_with("/v2/events") {
            Canned::chunked(200, &[EVENT])
        } else {
            Canned::with_length(404, r#"{"message": "not here"}"#)
        }
    })
    .await
}

/// A standby Marathon under `/prefix` that names `leader` at `/prefix/v2/leader` (404 "There is no
/// leader" for `None`) and redirects `/prefix/v2/events` to `location`.
async fn standby(leader: Option<String>, location: String) -> TestServer {
    TestServer::plain(move |seen| match seen.target.as_str() {
        "/prefix/v2/leader" => match &leader {
            Some(leader) => Canned::with_length(200, &format!(r#"{{"leader":"{leader}"}}"#)),
            None => Canned::with_length(404, r#"{"message":"There is no leader"}"#),
        },
        "/prefix/v2/events" => redirect_to(&location),
        _ => Canned::with_length(404, "{}"),
    })
    .await
}

/// A server on 127.0.0.2 that counts connections and answers any request with an event stream,
/// as a host posing as the leader would.
struct Recorder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _accepting: smol::Task<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let accepting = smol::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
                let _ = tcp.write_all(format!("{head}{EVENT}").as_bytes()).await;
            }
        });
        Recorder {
            addr,
            connections,
            _accepting: accepting,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// An [`Outbound`] whose Marathon is `marathon` (with alice's password) under `/prefix`.
fn marathon_at(base: &str, ca_file: Option<&std::path::Path>) -> Outbound {
    let (scheme, authority) = base.split_once("://").unwrap();
    let endpoints = Endpoints::new(
        BaseUrl::parse(&format!("{scheme}://alice:hunter2@{authority}/prefix/")).unwrap(),
        BaseUrl::parse("http://127.0.0.1:1").unwrap(),
    );
    outbound_with(endpoints, ca_file)
}

fn events() -> consular_core::Request {
    request(Target::Marathon, Method::Get, "/v2/events", None)
}

fn targets(seen: &[Recorded]) -> Vec<&str> {
    seen.iter().map(|r| r.target.as_str()).collect()
}

/// The refusal's message, which must not show the password or the user.
fn refusal(
    result: Result<consular_adapters::outbound::StreamingResponse, TransportError>,
) -> String {
    match result {
        Err(TransportError::Connect(message)) => {
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!message.contains("alice"), "{message}");
            assert!(!message.contains("YWxpY2U"), "{message}");
            message
        }
        Err(other) => panic!("expected a refused redirect, got {other:?}"),
        Ok(stream) => panic!(
            "expected a refused redirect, got a stream ({})",
            stream.status()
        ),
    }
}

#[test]
fn a_redirect_to_the_leader_the_standby_names_is_followed_with_credentials() {
    smol::block_on(async {
        let leader = leader().await;
        let leader_at = format!("127.0.0.1:{}", leader.addr.port());
        let standby = standby(
            Some(leader_at.clone()),
            format!("http://{leader_at}/v2/events"),
        )
        .await;
        let out = marathon_at(&standby.base("http"), None);

        let mut stream = out.open_stream(&events()).await.unwrap();
        assert_eq!(stream.status(), 200);
        let first = stream
            .next_chunk()
            .await
            .unwrap()
            .expect("the leader's stream");
        assert!(String::from_utf8_lossy(&first).contains("event_stream_attached"));

        let asked = standby.requests();
        assert_eq!(
            targets(&asked),
            ["/prefix/v2/events", "/prefix/v2/leader"],
            "--marathon's path prefix reaches the standby"
        );
        assert!(asked
            .iter()
            .all(|r| r.header("authorization") == Some(BASIC_ALICE)));
        assert_eq!(asked[1].header("accept"), Some("application/json"));
        let followed = leader.requests();
        assert_eq!(targets(&followed), ["/v2/events"]);
        assert_eq!(followed[0].header("authorization"), Some(BASIC_ALICE));
        assert_eq!(followed[0].header("accept"), Some("text/event-stream"));
    });
}

#[test]
fn the_leader_is_matched_case_insensitively() {
    smol::block_on(async {
        let leader = leader().await;
        let port = leader.addr.port();
        // `localhost` resolves to 127.0.0.1 (or ::1 first, then 127.0.0.1); named in capitals.
        let standby = standby(
            Some(format!("LocalHost:{port}")),
            format!("http://localhost:{port}/v2/events"),
        )
        .await;
        let out = marathon_at(&standby.base("http"), None);
        assert_eq!(out.open_stream(&events()).await.unwrap().status(), 200);
        assert_eq!(targets(&leader.requests()), ["/v2/events"]);
    });
}

#[test]
fn a_redirect_to_a_host_that_is_not_the_leader_is_refused_without_contacting_it() {
    smol::block_on(async {
        let leader = leader().await;
        let recorder = Recorder::start().await;
        let leader_at = format!("127.0.0.1:{}", leader.addr.port());
        let standby = standby(
            Some(leader_at.clone()),
            format!("http://{}/v2/events", recorder.addr),
        )
        .await;
        let out = marathon_at(&standby.base("http"), None);

        let message = refusal(out.open_stream(&events()).await);
        assert_eq!(
            message,
            format!(
                "refused a redirect to {}: neither the configured Marathon nor its leader ({leader_at})",
                recorder.addr
            )
        );
        assert_eq!(
            recorder.connections(),
            0,
            "the recorder never sees a request"
        );
        assert!(leader.requests().is_empty());
        assert_eq!(
            targets(&standby.requests()),
            ["/prefix/v2/events", "/prefix/v2/leader"]
        );
    });
}

#[test]
fn without_a_leader_no_other_host_is_followed() {
    smol::block_on(async {
        let recorder = Recorder::start().await;
        let standby = standby(None, format!("http://{}/v2/events", recorder.addr)).await;
        let out = marathon_at(&standby.base("http"), None);
        let message = refusal(out.open_stream(&events()).await);
        assert!(message.contains("its leader is unknown"), "{message}");
        assert!(message.contains("answered 404"), "{message}");
        assert_eq!(recorder.connections(), 0);
    });
}

#[test]
fn a_second_hop_to_another_host_is_judged_against_the_same_leader() {
    smol::block_on(async {
        let recorder = Recorder::start().await;
        let to_recorder = format!("http://{}/v2/events", recorder.addr);
        // The leader itself bounces the stream to the recorder; the standby named the leader.
        let leader = TestServer::plain(move |_| redirect_to(&to_recorder)).await;
        let leader_at = format!("127.0.0.1:{}", leader.addr.port());
        let standby = standby(
            Some(leader_at.clone()),
            format!("http://{leader_at}/v2/events"),
        )
        .await;
        let out = marathon_at(&standby.base("http"), None);
        let message = refusal(out.open_stream(&events()).await);
        assert!(
            message.contains("neither the configured Marathon"),
            "{message}"
        );
        assert_eq!(recorder.connections(), 0);
        // Asked once, by the first hop.
        assert_eq!(
            targets(&standby.requests()),
            ["/prefix/v2/events", "/prefix/v2/leader"]
        );
    });
}

#[test]
fn a_redirect_on_the_configured_host_is_followed_without_asking_for_the_leader() {
    smol::block_on(async {
        let server = TestServer::plain(|seen| match seen.target.as_str() {
            "/prefix/v2/events" => redirect_to("/prefix/v2/events?moved=1"),
            "/prefix/v2/events?moved=1" => Canned::chunked(200, &[EVENT]),
            _ => Canned::with_length(404, "{}"),
        })
        .await;
        let out = marathon_at(&server.base("http"), None);
        assert_eq!(out.open_stream(&events()).await.unwrap().status(), 200);
        let seen = server.requests();
        assert_eq!(
            targets(&seen),
            ["/prefix/v2/events", "/prefix/v2/events?moved=1"]
        );
        assert!(seen
            .iter()
            .all(|r| r.header("authorization") == Some(BASIC_ALICE)));
    });
}

#[test]
fn a_redirect_loop_still_ends_after_five_hops() {
    smol::block_on(async {
        let server = TestServer::plain(|_| redirect_to("/prefix/v2/events")).await;
        let out = marathon_at(&server.base("http"), None);
        match out.open_stream(&events()).await {
            Err(TransportError::Io(message)) => assert_eq!(message, "more than 5 redirects"),
            other => panic!("{:?}", other.map(|s| s.status())),
        }
        assert_eq!(server.requests().len(), 6);
    });
}

/// A TLS acceptor for 127.0.0.1 and the file of the CA that signed it, made at test time.
fn tls_for_loopback(name: &str) -> (TlsAcceptor, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-ca.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
    (TlsAcceptor::from(Arc::new(config)), ca_file)
}

#[test]
fn an_https_marathon_never_redirects_the_stream_to_http() {
    smol::block_on(async {
        let recorder = Recorder::start().await;
        let recorder_at = recorder.addr.to_string();
        let (acceptor, ca_file) = tls_for_loopback("redirects");
        // The standby even names the http host as its leader: the downgrade alone refuses it.
        let location = format!("http://{recorder_at}/v2/events");
        let standby = TestServer::tls(acceptor, move |seen| match seen.target.as_str() {
            "/prefix/v2/leader" => {
                Canned::with_length(200, &format!(r#"{{"leader":"{recorder_at}"}}"#))
            }
            _ => redirect_to(&location),
        })
        .await;
        let out = marathon_at(&standby.base("https"), Some(&ca_file));
        let message = refusal(out.open_stream(&events()).await);
        assert_eq!(
            message,
            format!(
                "refused a redirect from https to http://{}: it would send the credentials unencrypted",
                recorder.addr
            )
        );
        assert_eq!(recorder.connections(), 0);
        assert_eq!(targets(&standby.requests()), ["/prefix/v2/events"]);
    });
}
