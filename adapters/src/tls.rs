//! The rustls client configuration for https peers: the ring crypto provider, the Mozilla roots
//! from `webpki-roots`, plus the certificates of the CA files in a [`TlsOptions`] (PEM).
//!
//! Connecting and handshaking live in [`crate::h1_client`]; this file only builds the config.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Why the TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or is not PEM.
    #[error("--ca-file {path:?}: {reason}")]
    CaFile {
        /// The file given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration (no usable protocol version).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How to speak TLS to one kind of peer: Consul and its agents, or Marathon. Each kind has its own,
/// so that a client certificate only ever goes to the peers it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM files of CA certificates trusted besides the webpki roots.
    pub ca_files: Vec<PathBuf>,
    /// Directories of PEM CA certificates trusted besides the webpki roots.
    pub ca_dirs: Vec<PathBuf>,
    /// PEM client certificate (chain) presented to the peer.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Name the peer's certificate is verified against (and sent as SNI) instead of the URL's host.
    pub server_name: Option<String>,
}

/// A client config trusting the `webpki-roots` CAs and every certificate in `options.ca_files`.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in &options.ca_files {
        let ca_error = |reason: String| TlsError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no CERTIFICATE blocks found".to_owned()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("unusable certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
