//! A private certificate authority and a server certificate for `127.0.0.1`/`localhost`, as an
//! in-cluster CA (cert-manager) would issue them, for the TLS tests of NATS and Redis.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tempfile::TempDir;

/// PEM files: `ca.pem` (what clients trust), `server.pem` and `server.key`.
#[derive(Debug)]
pub struct TestCertificates {
    dir: TempDir,
}

impl TestCertificates {
    /// Makes a new CA and a server certificate signed by it. Also selects the process's TLS
    /// crypto provider as the services' `main` does, so clients in the test can use TLS.
    pub fn new() -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("sidechain-tls-")
            .tempdir()
            .expect("temp dir");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Sidechain test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server parameters")
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("server.pem"), server.pem()).expect("write server.pem");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem())
            .expect("write server.key");
        Self { dir }
    }

    /// The CA certificate clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's certificate.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}
