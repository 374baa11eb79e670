//! Shared set-up of the suite's self-tests: our gateway in process on port 0 (SQLite in a
//! temp dir), our reference archive on plain HTTP or mutual TLS, with rcgen certificates.
#![allow(dead_code, reason = "each test binary uses a part")]

use std::path::{Path, PathBuf};

use conformance::archive::{Archive, Faults, server_tls};
use gateway::config::Config;
use gateway::server::App;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A running gateway; the temp dir lives as long as it.
pub struct Gateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Data dir.
    pub dir: tempfile::TempDir,
}

/// Starts our gateway with a configuration tweak.
pub async fn gateway(tweak: impl FnOnce(&mut Config)) -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("gateway.db").display()
        )),
        ..Config::default()
    };
    tweak(&mut config);
    let app = App::build(config).await.expect("gateway builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run(std::future::pending()));
    Gateway { url, dir }
}

/// A running archive.
pub struct ArchiveServer {
    /// Base URL.
    pub url: String,
    /// Temp dir with the database (and certificates).
    pub dir: tempfile::TempDir,
}

/// Starts the reference archive on plain HTTP with `faults`.
pub async fn archive(faults: Faults) -> ArchiveServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = Archive::open_with(&dir.path().join("archive.db"), faults)
        .await
        .expect("archive");
    let (bound, address) = tokio::sync::oneshot::channel();
    tokio::spawn(archive.serve(
        "127.0.0.1:0".parse().expect("address"),
        bound,
        std::future::pending(),
    ));
    let address = address.await.expect("bound");
    ArchiveServer {
        url: format!("http://{address}"),
        dir,
    }
}

/// A test CA.
pub struct Ca {
    /// Its parameters (to sign leaves with).
    pub params: CertificateParams,
    /// Its key.
    pub key: KeyPair,
    /// Its certificate.
    pub pem: String,
}

/// Makes a CA.
pub fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("key");
    let pem = params.self_signed(&key).expect("self-signed").pem();
    Ca { params, key, pem }
}

/// (certificate PEM, key PEM) of a leaf signed by `ca`.
pub fn leaf(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    (
        params.signed_by(&key, &issuer).expect("signed").pem(),
        key.serialize_pem(),
    )
}

/// Writes a file into `dir`.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// The reference archive over mutual TLS: its URL (`https://localhost:<port>`), and the CA,
/// client certificate and key files a vendor would hand to the runner.
pub struct MtlsArchive {
    /// Base URL.
    pub url: String,
    /// CA file.
    pub ca_cert: PathBuf,
    /// Client certificate file.
    pub client_cert: PathBuf,
    /// Client key file.
    pub client_key: PathBuf,
    /// Keeps the files and the database.
    pub dir: tempfile::TempDir,
}

/// Starts the reference archive (database in `dir`) on a loopback port with this server
/// certificate, requiring client certificates of `organisation`; returns the port.
pub async fn serve_archive_tls(
    dir: &Path,
    organisation: &Ca,
    server_cert: &str,
    server_key: &str,
) -> u16 {
    let tls = server_tls(
        server_cert.as_bytes(),
        server_key.as_bytes(),
        Some(organisation.pem.as_bytes()),
    )
    .expect("tls");
    let archive = Archive::open(&dir.join("archive.db"))
        .await
        .expect("archive");
    let (bound, address) = tokio::sync::oneshot::channel();
    tokio::spawn(archive.serve_tls("127.0.0.1:0".parse().expect("address"), tls, bound));
    address.await.expect("bound").port()
}

/// Starts the reference archive requiring client certificates of a fresh CA.
pub async fn mtls_archive() -> MtlsArchive {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let organisation = ca("Testiorganisaation CA");
    let (server_cert, server_key) = leaf(
        &organisation,
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        &organisation,
        "toimittaja.test",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let port = serve_archive_tls(dir.path(), &organisation, &server_cert, &server_key).await;
    MtlsArchive {
        url: format!("https://localhost:{port}"),
        ca_cert: write(dir.path(), "ca.pem", &organisation.pem),
        client_cert: write(dir.path(), "client.pem", &client_cert),
        client_key: write(dir.path(), "client.key", &client_key),
        dir,
    }
}
