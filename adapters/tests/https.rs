//! HTTPS through rustls 0.23: a local rustls server whose certificate is signed by a CA made at
//! test time (rcgen) is trusted only with that CA in `--ca-file`, keeps connections alive, and the
//! CA file's own failures are reported by name.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{outbound_with, request, Canned, TestServer};
use consular_adapters::tls::{client_config, TlsError, TlsOptions};
use consular_adapters::{BaseUrl, Endpoints};
use consular_core::{Method, Target, TransportError};
use futures_rustls::TlsAcceptor;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA (written as PEM to a file) and a TLS acceptor for `localhost`/127.0.0.1 signed by it.
struct Pki {
    ca_file: PathBuf,
    acceptor: TlsAcceptor,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();

    let ca_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-ca.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![server_cert.der().clone()], key)
            .unwrap();
    Pki {
        ca_file,
        acceptor: TlsAcceptor::from(Arc::new(config)),
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
        format!("--ca-file {empty:?}: no CERTIFICATE blocks found")
    );
}

fn only_ca(path: &std::path::Path) -> TlsOptions {
    TlsOptions {
        ca_files: vec![path.to_owned()],
        ..TlsOptions::default()
    }
}
