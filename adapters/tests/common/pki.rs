//! Certificates made at test time with rcgen: a [`Ca`] and the [`Leaf`] certificates it signs,
//! written as PEM files for whatever reads files (the bridge's flags, Consul's config). Shared by
//! the adapters' loopback tests and, through `#[path]`, the binary's end-to-end tests, so there is
//! one way to make a test certificate. What uses the certificates (servers, clients) is the tests'.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

/// A CA made for one test, its certificate written as PEM to `<dir>/<name>-ca.pem`.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    /// The CA certificate's PEM file.
    pub file: PathBuf,
}

/// A certificate signed by a [`Ca`] and its key, as PEM files.
pub struct Leaf {
    /// `<dir>/<name>-cert.pem`.
    pub cert: PathBuf,
    /// `<dir>/<name>-key.pem` (PKCS#8).
    pub key: PathBuf,
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// The key's PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl Ca {
    /// A new CA; its files and its leaves' go to `dir`, which must exist.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: CAs with one name would pass for each other's issuer (and then fail
        // on the signature, a different error from an unknown issuer).
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&file, issuer.pem()).unwrap();
        Ca {
            issuer,
            dir: dir.to_owned(),
            file,
        }
    }

    /// The CA certificate's DER.
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A certificate for `names` (DNS names or IP addresses) with `usages` (none: any use).
    pub fn leaf(&self, name: &str, names: &[&str], usages: &[ExtendedKeyUsagePurpose]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = usages.to_vec();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{name}-cert.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}
