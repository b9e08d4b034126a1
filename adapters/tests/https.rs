//! HTTPS through rustls 0.23 against local rustls servers whose certificates are signed by CAs
//! made at test time (rcgen): trusted only with that CA (a file or a directory), connections kept
//! alive, a client certificate presented to a server that asks for it and only by requests of its
//! kind (a Marathon request never shows Consul's), the server name checked and sent as SNI instead
//! of the URL's host, and every bad file (missing, empty, endless, a key of another certificate)
//! reported by name.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::pki::{Ca, Leaf};
use common::{outbound_tls, outbound_with, request, Canned, Handshake, TestServer};
use consular_adapters::tls::{client_config, TlsError, TlsOptions, MAX_PEM_FILE_BYTES};
use consular_adapters::{BaseUrl, Endpoints};
use consular_core::{Method, Target, TransportError};
use futures_rustls::TlsAcceptor;
use rcgen::ExtendedKeyUsagePurpose;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Whether a test server asks its clients for a certificate signed by a [`Ca`].
enum ClientAuth<'a> {
    None,
    Optional(&'a Ca),
    Required(&'a Ca),
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn new_ca(name: &str) -> Ca {
    Ca::new(Path::new(env!("CARGO_TARGET_TMPDIR")), name)
}

/// A client certificate for `name`.
fn client_pair(ca: &Ca, name: &str) -> Leaf {
    ca.leaf(name, &[name], &[ExtendedKeyUsagePurpose::ClientAuth])
}

/// A TLS acceptor whose certificate (signed by `ca`) names `names`.
fn server(ca: &Ca, names: &[&str], clients: ClientAuth<'_>) -> TlsAcceptor {
    let leaf = ca.leaf(&format!("server-{}", names.join("-")), names, &[]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = |ca: &Ca| {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().into()).unwrap();
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(ca) => {
            builder.with_client_cert_verifier(verifier(ca).allow_unauthenticated().build().unwrap())
        }
        ClientAuth::Required(ca) => {
            builder.with_client_cert_verifier(verifier(ca).build().unwrap())
        }
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der));
    let config = builder
        .with_single_cert(vec![leaf.der.into()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A CA (written as PEM to a file) and a TLS acceptor for `localhost`/127.0.0.1 signed by it.
struct Pki {
    ca_file: PathBuf,
    acceptor: TlsAcceptor,
}

fn pki(name: &str) -> Pki {
    let ca = new_ca(name);
    Pki {
        acceptor: server(&ca, &["localhost", "127.0.0.1"], ClientAuth::None),
        ca_file: ca.file,
    }
}

fn endpoints(base: &str) -> Endpoints {
    Endpoints::new(BaseUrl::parse(base).unwrap(), BaseUrl::parse(base).unwrap())
}

#[test]
fn https_with_the_ca_file_round_trips_and_keeps_the_connection() {
    smol::block_on(async {
        let pki = pki("round-trip");
        let server = TestServer::tls(pki.acceptor, |_| {
            Canned::with_length(200, r#"{"apps": []}"#)
        })
        .await;
        let out = outbound_with(endpoints(&server.base("https")), Some(&pki.ca_file));
        for _ in 0..2 {
            let res = out
                .execute(&request(Target::Marathon, Method::Get, "/v2/apps", None))
                .await
                .unwrap();
            assert_eq!((res.status, res.body), (200, br#"{"apps": []}"#.to_vec()));
        }
        let seen = server.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].header("accept"), Some("application/json"));
        assert_eq!(server.connections(), 1);
    });
}

#[test]
fn https_by_host_name_is_verified_against_the_certificate() {
    smol::block_on(async {
        let pki = pki("by-name");
        let server = TestServer::tls(pki.acceptor, |_| Canned::with_length(200, "{}")).await;
        // `localhost` may resolve to ::1 first, where nothing listens; the client then tries
        // 127.0.0.1. The certificate is checked against the DNS name `localhost`.
        let base = format!("https://localhost:{}", server.addr.port());
        let out = outbound_with(endpoints(&base), Some(&pki.ca_file));
        let res = out
            .execute(&request(
                Target::Consul,
                Method::Get,
                "/v1/catalog/nodes",
                None,
            ))
            .await;
        assert_eq!(res.unwrap().status, 200);
    });
}

#[test]
fn https_without_the_ca_is_a_connect_error() {
    smol::block_on(async {
        let pki = pki("untrusted");
        let server = TestServer::tls(pki.acceptor, |_| Canned::with_length(200, "{}")).await;
        let out = outbound_with(endpoints(&server.base("https")), None);
        let res = out
            .execute(&request(Target::Marathon, Method::Get, "/v2/apps", None))
            .await;
        match res {
            Err(TransportError::Connect(message)) => {
                assert!(message.contains("TLS handshake"), "{message}");
                assert!(message.to_lowercase().contains("certificate"), "{message}");
            }
            other => panic!("expected a TLS connect error, got {other:?}"),
        }
        assert!(server.requests().is_empty());
    });
}

#[test]
fn a_missing_or_empty_ca_file_is_reported_by_name() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-ca.pem");
    let err = client_config(&only_ca(&missing)).unwrap_err();
    assert!(matches!(err, TlsError::CaFile { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-ca.pem"), "{err}");

    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("empty-ca.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = client_config(&only_ca(&empty)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("CA file {empty:?}: no CERTIFICATE blocks found")
    );
}

fn only_ca(path: &Path) -> TlsOptions {
    TlsOptions {
        ca_files: vec![path.to_owned()],
        ..TlsOptions::default()
    }
}

/// Options trusting `ca` and presenting `client`.
fn with_client(ca: &Ca, client: &Leaf) -> TlsOptions {
    TlsOptions {
        client_cert: Some(client.cert.clone()),
        client_key: Some(client.key.clone()),
        ..only_ca(&ca.file)
    }
}

/// One GET to `target`'s `/v1/agent/self`; the status, or the transport error.
async fn get(out: &consular_adapters::Outbound, target: Target) -> Result<u16, TransportError> {
    out.execute(&request(target, Method::Get, "/v1/agent/self", None))
        .await
        .map(|res| res.status)
}

#[test]
fn a_server_requiring_client_certificates_gets_ours_and_refuses_us_without() {
    smol::block_on(async {
        let ca = new_ca("mtls");
        let client = client_pair(&ca, "mtls-client");
        let acceptor = server(&ca, &["127.0.0.1"], ClientAuth::Required(&ca));
        let server = TestServer::tls(acceptor, |_| Canned::with_length(200, "{}")).await;
        let base = server.base("https");

        let consul = with_client(&ca, &client);
        let out = outbound_tls(endpoints(&base), &consul, &only_ca(&ca.file));
        assert_eq!(get(&out, Target::Consul).await, Ok(200));
        assert_eq!(get(&out, Target::Agent("127.0.0.1".into())).await, Ok(200));
        let shown: Vec<_> = server
            .handshakes()
            .into_iter()
            .map(|h| h.client_cert)
            .collect();
        assert!(!shown.is_empty());
        assert!(
            shown.iter().all(|c| c.as_deref() == Some(&client.der[..])),
            "{shown:?}"
        );

        // Without a certificate, or with one of another CA, the server ends the handshake, and
        // the error says it was about the client certificate. The server sees no request.
        let seen = server.requests().len();
        let bare = outbound_with(endpoints(&base), Some(&ca.file));
        match get(&bare, Target::Consul).await {
            Err(TransportError::Connect(message)) => {
                assert!(message.contains("none is configured"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let stranger = client_pair(&new_ca("mtls-stranger"), "mtls-stranger-client");
        let forged = outbound_tls(
            endpoints(&base),
            &with_client(&ca, &stranger),
            &only_ca(&ca.file),
        );
        match get(&forged, Target::Consul).await {
            Err(TransportError::Connect(message)) => assert!(
                message.contains("refused the client certificate")
                    && message.contains("mtls-stranger-client-cert.pem"),
                "{message}"
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(server.requests().len(), seen);
    });
}

#[test]
fn a_marathon_request_never_presents_the_consul_certificate() {
    smol::block_on(async {
        let ca = new_ca("kinds");
        let consul_pair = client_pair(&ca, "kinds-consul");
        let marathon_pair = client_pair(&ca, "kinds-marathon");
        // Marathon and Consul on the same host and port: only the kind of request differs.
        let acceptor = server(&ca, &["127.0.0.1"], ClientAuth::Optional(&ca));
        let server = TestServer::tls(acceptor, |_| Canned::with_length(200, "{}")).await;
        let base = server.base("https");

        let out = outbound_tls(
            endpoints(&base),
            &with_client(&ca, &consul_pair),
            &only_ca(&ca.file),
        );
        assert_eq!(get(&out, Target::Marathon).await, Ok(200));
        assert_eq!(get(&out, Target::Consul).await, Ok(200));
        // The Consul connection was not reused for Marathon, nor the other way round.
        assert_eq!(get(&out, Target::Marathon).await, Ok(200));
        let shown: Vec<_> = server
            .handshakes()
            .into_iter()
            .map(|h| h.client_cert)
            .collect();
        assert_eq!(shown, [None, Some(consul_pair.der.clone())]);

        let out = outbound_tls(
            endpoints(&base),
            &with_client(&ca, &consul_pair),
            &with_client(&ca, &marathon_pair),
        );
        assert_eq!(get(&out, Target::Marathon).await, Ok(200));
        assert_eq!(get(&out, Target::Agent("127.0.0.1".into())).await, Ok(200));
        let shown: Vec<_> = server.handshakes()[2..]
            .iter()
            .map(|h| h.client_cert.clone())
            .collect();
        assert_eq!(shown, [Some(marathon_pair.der), Some(consul_pair.der)]);
    });
}

#[test]
fn the_server_name_is_verified_and_sent_instead_of_the_url_host() {
    smol::block_on(async {
        let ca = new_ca("sni");
        // The certificate names neither 127.0.0.1 nor localhost.
        let acceptor = server(&ca, &["consul.internal"], ClientAuth::None);
        let server = TestServer::tls(acceptor, |_| Canned::with_length(200, "{}")).await;
        let base = server.base("https");
        let named = |name: &str| TlsOptions {
            server_name: Some(name.to_owned()),
            ..only_ca(&ca.file)
        };

        let by_host = outbound_with(endpoints(&base), Some(&ca.file));
        match get(&by_host, Target::Consul).await {
            Err(TransportError::Connect(message)) => {
                assert!(message.contains("TLS handshake"), "{message}")
            }
            other => panic!("expected a refused certificate, got {other:?}"),
        }
        let wrong = outbound_tls(endpoints(&base), &named("other.internal"), &named("x.y"));
        assert!(matches!(
            get(&wrong, Target::Consul).await,
            Err(TransportError::Connect(_))
        ));
        assert!(server.requests().is_empty());

        let right = outbound_tls(
            endpoints(&base),
            &named("consul.internal"),
            &only_ca(&ca.file),
        );
        assert_eq!(get(&right, Target::Consul).await, Ok(200));
        assert_eq!(
            get(&right, Target::Agent("127.0.0.1".into())).await,
            Ok(200)
        );
        let last = server.handshakes().pop().unwrap();
        assert_eq!(last.sni.as_deref(), Some("consul.internal"));
        // Marathon's options carry no name: its request is checked against 127.0.0.1, and fails.
        assert!(get(&right, Target::Marathon).await.is_err());

        let err = client_config(&named("not a name")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TLS server name \"not a name\": not a DNS name or IP address"
        );
    });
}

#[test]
fn a_ca_directory_trusts_its_pem_and_crt_files_and_names_a_bad_one() {
    smol::block_on(async {
        let ca = new_ca("dir");
        let dir = tmp("ca-dir");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.pem")).unwrap();
        std::fs::copy(&ca.file, dir.join("ours.CRT")).unwrap();
        std::fs::copy(&new_ca("dir-other").file, dir.join("other.pem")).unwrap();
        // Neither read nor an error: not a certificate file by its name.
        std::fs::write(dir.join("README"), "not a certificate").unwrap();
        let acceptor = server(&ca, &["127.0.0.1"], ClientAuth::None);
        let server = TestServer::tls(acceptor, |_| Canned::with_length(200, "{}")).await;
        let in_dir = |dir: &Path| TlsOptions {
            ca_dirs: vec![dir.to_owned()],
            ..TlsOptions::default()
        };
        let out = outbound_tls(
            endpoints(&server.base("https")),
            &in_dir(&dir),
            &in_dir(&dir),
        );
        assert_eq!(get(&out, Target::Consul).await, Ok(200));
        assert_eq!(get(&out, Target::Marathon).await, Ok(200));

        std::fs::write(
            dir.join("broken.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        )
        .unwrap();
        let err = client_config(&in_dir(&dir)).unwrap_err();
        assert!(matches!(err, TlsError::CaFile { .. }), "{err:?}");
        assert!(err.to_string().contains("broken.pem"), "{err}");

        let empty = tmp("ca-dir-empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = client_config(&in_dir(&empty)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("CA directory {empty:?}: no *.pem or *.crt file in it")
        );
        let err = client_config(&in_dir(&tmp("no-such-dir"))).unwrap_err();
        assert!(err.to_string().starts_with("CA directory "), "{err}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    });
}

#[test]
fn a_client_key_that_is_not_the_certificates_is_refused_naming_both_files() {
    let ca = new_ca("mismatch");
    let one = client_pair(&ca, "mismatch-one");
    let two = client_pair(&ca, "mismatch-two");
    let crossed = TlsOptions {
        client_cert: Some(one.cert.clone()),
        client_key: Some(two.key.clone()),
        ..TlsOptions::default()
    };
    let err = client_config(&crossed).unwrap_err();
    assert!(matches!(err, TlsError::ClientPair { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("mismatch-one-cert.pem"), "{message}");
    assert!(message.contains("mismatch-two-key.pem"), "{message}");

    let half = TlsOptions {
        client_cert: Some(one.cert.clone()),
        ..TlsOptions::default()
    };
    assert!(matches!(
        client_config(&half).unwrap_err(),
        TlsError::ClientPairIncomplete {
            given: "certificate"
        }
    ));
    // The files swapped: the key file holds no certificate, the certificate file no key.
    let swapped = TlsOptions {
        client_cert: Some(one.key.clone()),
        client_key: Some(one.cert.clone()),
        ..TlsOptions::default()
    };
    let err = client_config(&swapped).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "client certificate {:?}: no CERTIFICATE blocks found",
            one.key
        )
    );
    let swapped_key = TlsOptions {
        client_key: Some(one.cert.clone()),
        ..with_client(&ca, &one)
    };
    let err = client_config(&swapped_key).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("client key {:?}: no PRIVATE KEY block found", one.cert)
    );
}

#[test]
fn an_endless_or_huge_pem_file_is_read_no_further_than_the_limit() {
    // /dev/zero never ends; it is read to one byte past the limit and refused.
    let endless = Path::new("/dev/zero");
    let err = client_config(&only_ca(endless)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("CA file {endless:?}: larger than {MAX_PEM_FILE_BYTES} bytes")
    );
    let key = TlsOptions {
        client_cert: Some(client_pair(&new_ca("huge"), "huge-client").cert),
        client_key: Some(endless.to_owned()),
        ..TlsOptions::default()
    };
    let err = client_config(&key).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("client key \"/dev/zero\": larger than"),
        "{err}"
    );
}

/// The handshake record is what the other tests read; it must tell a certificate from none.
#[test]
fn the_test_server_records_sni_and_no_certificate_for_a_plain_client() {
    smol::block_on(async {
        let pki = pki("record");
        let server = TestServer::tls(pki.acceptor, |_| Canned::with_length(200, "{}")).await;
        let base = format!("https://localhost:{}", server.addr.port());
        let out = outbound_with(endpoints(&base), Some(&pki.ca_file));
        assert_eq!(get(&out, Target::Consul).await, Ok(200));
        assert_eq!(
            server.handshakes(),
            [Handshake {
                sni: Some("localhost".to_owned()),
                client_cert: None
            }]
        );
    });
}

#[test]
fn a_ca_directory_with_more_files_than_the_limit_is_refused_before_reading_them() {
    let dir = tmp("ca-dir-crowded");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Not certificates: the count alone refuses the directory, none of them is read.
    for i in 0..=consular_adapters::tls::MAX_CA_DIR_FILES {
        std::fs::write(dir.join(format!("{i}.pem")), "x").unwrap();
    }
    let options = TlsOptions {
        ca_dirs: vec![dir.clone()],
        ..TlsOptions::default()
    };
    let err = client_config(&options).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "CA directory {dir:?}: more than {} certificate files",
            consular_adapters::tls::MAX_CA_DIR_FILES
        )
    );
}
