//! How https peers are spoken to: [`client_config`] turns one kind of peer's [`TlsOptions`] into a
//! [`PeerTls`] (a rustls client config with the ring provider, the Mozilla roots from
//! `webpki-roots` plus the options' CA files and directories, the client certificate if any, and
//! the name the peer's certificate must carry).
//!
//! Every file read here is bounded ([`MAX_PEM_FILE_BYTES`], [`MAX_CA_DIR_FILES`]) and every error
//! names the file (and, for a directory, the file in it) and what is wrong with it.
//!
//! Connecting and handshaking live in [`crate::h1_client`]; which peer gets which [`PeerTls`] is
//! [`crate::outbound`]'s choice ([`PeerKind`]); this file only builds them.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use consular_core::Target;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Largest PEM file read (a CA bundle, a certificate chain or a key). The Mozilla bundle is about
/// 220 KiB; anything past this is not a certificate file.
pub const MAX_PEM_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most certificate files read from one CA directory.
pub const MAX_CA_DIR_FILES: usize = 1024;
/// The file names read from a CA directory end in one of these (compared ignoring case).
const CA_DIR_EXTENSIONS: [&str; 2] = ["pem", "crt"];

/// The kinds of peer that each have their own [`TlsOptions`]: a client certificate is only ever
/// presented to the peers of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// The main Consul and every agent.
    Consul,
    /// Marathon (and the leader a standby redirects the event stream to).
    Marathon,
}

impl PeerKind {
    /// The kind of peer `target` is.
    pub fn of(target: &Target) -> PeerKind {
        match target {
            Target::Marathon => PeerKind::Marathon,
            Target::Consul | Target::Agent(_) => PeerKind::Consul,
        }
    }
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerKind::Consul => "Consul",
            PeerKind::Marathon => "Marathon",
        })
    }
}

/// Why the TLS configuration cannot be built. Each names the file or value it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA file could not be read, is too large, or holds no usable certificate.
    #[error("CA file {path:?}: {reason}")]
    CaFile {
        /// The file given (for a CA directory, the file in it).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A CA directory could not be listed, holds too many files, or no certificate file at all.
    #[error("CA directory {path:?}: {reason}")]
    CaDir {
        /// The directory given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The client certificate could not be read or holds no certificate.
    #[error("client certificate {path:?}: {reason}")]
    ClientCert {
        /// The file given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The client key could not be read or holds no private key.
    #[error("client key {path:?}: {reason}")]
    ClientKey {
        /// The file given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Only one of the client certificate and key was given.
    #[error(
        "a client certificate needs its key and a key its certificate; only the {given} was given"
    )]
    ClientPairIncomplete {
        /// `"certificate"` or `"key"`: the half that was given.
        given: &'static str,
    },
    /// The client key does not belong to the client certificate (or rustls cannot use it).
    #[error("client certificate {cert:?} and key {key:?}: {reason}")]
    ClientPair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's verdict.
        reason: String,
    },
    /// The server name is neither a DNS name nor an IP address.
    #[error("TLS server name {name:?}: not a DNS name or IP address")]
    ServerName {
        /// The name given.
        name: String,
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
    /// Directories of PEM CA certificates trusted besides the webpki roots: every `*.pem` and
    /// `*.crt` file directly in them (not in subdirectories), as Consul's `CONSUL_CAPATH`.
    pub ca_dirs: Vec<PathBuf>,
    /// PEM client certificate (chain) presented to the peer.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Name the peer's certificate is verified against (and sent as SNI) instead of the URL's host.
    pub server_name: Option<String>,
}

/// What [`crate::h1_client::H1Client`] needs to open TLS connections to one kind of peer.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// Roots, client certificate, protocol versions.
    pub config: Arc<ClientConfig>,
    /// Verified and sent as SNI instead of the URL's host, when set.
    pub server_name: Option<ServerName<'static>>,
    /// The client certificate presented, for explaining a peer's refusal of it (or of none).
    pub client_cert: Option<PathBuf>,
}

impl PeerTls {
    /// Why a peer that answered our handshake with `alert` refused it, when the alert is about the
    /// client certificate: TLS 1.3 lets the peer check it only after the client thinks the
    /// handshake is done, so this arrives as the answer to the first request, and rustls's own
    /// words ("received fatal alert: BadCertificate") do not say whose certificate was bad.
    pub fn explain_alert(&self, alert: &rustls::AlertDescription) -> Option<String> {
        use rustls::AlertDescription::{
            AccessDenied, BadCertificate, CertificateExpired, CertificateRequired,
            CertificateRevoked, CertificateUnknown, UnknownCA, UnsupportedCertificate,
        };
        let about_certificates = matches!(
            alert,
            BadCertificate
                | CertificateRequired
                | UnknownCA
                | AccessDenied
                | CertificateExpired
                | CertificateRevoked
                | CertificateUnknown
                | UnsupportedCertificate
        );
        if !about_certificates {
            return None;
        }
        Some(match &self.client_cert {
            None => format!(
                "the peer refused the TLS connection ({alert:?}): it wants a client certificate, and none is configured for it"
            ),
            Some(path) => format!(
                "the peer refused the client certificate {path:?} ({alert:?}): is it signed by a CA the peer trusts?"
            ),
        })
    }
}

/// The [`PeerTls`] for `options`: the `webpki-roots` CAs plus every certificate of its CA files and
/// directories, its client certificate, its server name.
pub fn client_config(options: &TlsOptions) -> Result<PeerTls, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in &options.ca_files {
        add_ca_file(&mut roots, path)?;
    }
    for dir in &options.ca_dirs {
        for path in ca_dir_files(dir)? {
            add_ca_file(&mut roots, &path)?;
        }
    }
    let server_name = match &options.server_name {
        None => None,
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|_| TlsError::ServerName { name: name.clone() })?,
        ),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&options.client_cert, &options.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(TlsError::ClientPairIncomplete {
                given: "certificate",
            })
        }
        (None, Some(_)) => return Err(TlsError::ClientPairIncomplete { given: "key" }),
        (Some(cert), Some(key)) => {
            let chain = client_chain(cert)?;
            let private = client_key(key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| TlsError::ClientPair {
                    cert: cert.clone(),
                    key: key.clone(),
                    reason: e.to_string(),
                })?
        }
    };
    Ok(PeerTls {
        config: Arc::new(config),
        server_name,
        client_cert: options.client_cert.clone(),
    })
}

/// Adds every certificate of the PEM file at `path` to `roots`; a file with none is an error.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    let ca_error = |reason: String| TlsError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let certs = certificates(&read_pem_file(path).map_err(ca_error)?).map_err(ca_error)?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| ca_error(format!("unusable certificate: {e}")))?;
    }
    Ok(())
}

/// The `*.pem` and `*.crt` files directly in `dir`, sorted by name; none at all is an error.
fn ca_dir_files(dir: &Path) -> Result<Vec<PathBuf>, TlsError> {
    let dir_error = |reason: String| TlsError::CaDir {
        path: dir.to_owned(),
        reason,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| dir_error(e.to_string()))? {
        let path = entry.map_err(|e| dir_error(e.to_string()))?.path();
        let wanted = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            CA_DIR_EXTENSIONS
                .iter()
                .any(|wanted| e.eq_ignore_ascii_case(wanted))
        });
        // Follows symlinks, as the hashed links of a system CA directory are.
        if !wanted || !path.is_file() {
            continue;
        }
        if files.len() == MAX_CA_DIR_FILES {
            return Err(dir_error(format!(
                "more than {MAX_CA_DIR_FILES} certificate files"
            )));
        }
        files.push(path);
    }
    if files.is_empty() {
        return Err(dir_error("no *.pem or *.crt file in it".to_owned()));
    }
    files.sort();
    Ok(files)
}

fn client_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let cert_error = |reason: String| TlsError::ClientCert {
        path: path.to_owned(),
        reason,
    };
    certificates(&read_pem_file(path).map_err(cert_error)?).map_err(cert_error)
}

fn client_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let key_error = |reason: String| TlsError::ClientKey {
        path: path.to_owned(),
        reason,
    };
    let pem = read_pem_file(path).map_err(key_error)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            key_error("no PRIVATE KEY block found".to_owned())
        }
        other => key_error(other.to_string()),
    })
}

/// The CERTIFICATE blocks of `pem`; none is an error.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE blocks found".to_owned());
    }
    Ok(certs)
}

/// The contents of `path`, at most [`MAX_PEM_FILE_BYTES`]: a longer file is an error, read no
/// further than one byte past the limit (a FIFO or `/dev/zero` cannot make it read forever).
fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut contents = Vec::new();
    file.take(MAX_PEM_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(|e| e.to_string())?;
    if contents.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(format!("larger than {MAX_PEM_FILE_BYTES} bytes"));
    }
    Ok(contents)
}
