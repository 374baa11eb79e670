//! HTTPS serving and system clients by certificate, with certificates made by rcgen: a client
//! registered by fingerprint and one registered by subject alternative name get their roles;
//! a certificate whose common name matches a registered name but whose SAN and fingerprint do
//! not is refused (never by CN alone); one from another CA does not get through the
//! handshake; plain HTTP to the HTTPS port gets nothing.

mod common;

use std::path::{Path, PathBuf};

use gateway::config::{CertificateClient, Config, Role};
use gateway::server::App;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn new_ca(name: &str) -> Ca {
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

/// A leaf certificate: (certificate PEM, key PEM, SHA-256 fingerprint).
struct Leaf {
    cert: String,
    key: String,
    fingerprint: String,
}

fn leaf(ca: &Ca, common_name: &str, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) -> Leaf {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).expect("signed");
    Leaf {
        fingerprint: hex::encode(Sha256::digest(cert.der())),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().expect("DNS name"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn client(ca: &Ca, leaf: Option<&Leaf>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("CA")]);
    if let Some(leaf) = leaf {
        let identity = reqwest::Identity::from_pem(format!("{}{}", leaf.cert, leaf.key).as_bytes())
            .expect("identity");
        builder = builder.identity(identity);
    }
    builder.build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_clients_are_known_by_fingerprint_or_san_over_https() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = new_ca("SOSKU test CA");
    let other_ca = new_ca("Someone else's CA");
    let server = leaf(
        &ca,
        "localhost",
        vec![dns("localhost")],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let by_fingerprint = leaf(
        &ca,
        "apotti-integration",
        vec![dns("apotti-integration.example")],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let by_san = leaf(
        &ca,
        "audit-robot",
        vec![SanType::URI(
            "urn:sosku:client:audit-robot".try_into().expect("URI"),
        )],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    // Its CN is a registered SAN, but it carries neither that SAN nor a registered fingerprint.
    let common_name_only = leaf(
        &ca,
        "vendor-bot.example",
        vec![dns("somebody.example")],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let foreign = leaf(
        &other_ca,
        "apotti-integration",
        vec![dns("apotti-integration.example")],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        tls: gateway::config::TlsConfig {
            cert: Some(write(dir.path(), "server.pem", &server.cert)),
            key: Some(write(dir.path(), "server.key", &server.key)),
            client_ca: Some(write(dir.path(), "client-ca.pem", &ca.pem)),
        },
        auth: gateway::config::AuthConfig {
            clients: vec![
                CertificateClient {
                    name: "apotti-integration".to_owned(),
                    sha256: Some(by_fingerprint.fingerprint.to_uppercase()),
                    san: None,
                    roles: vec![Role::Integrator],
                },
                CertificateClient {
                    name: "audit-robot".to_owned(),
                    sha256: None,
                    san: Some("urn:sosku:client:audit-robot".to_owned()),
                    roles: vec![Role::Auditor],
                },
                CertificateClient {
                    name: "vendor-bot".to_owned(),
                    sha256: None,
                    san: Some("vendor-bot.example".to_owned()),
                    roles: vec![Role::Vendor],
                },
            ],
            ..gateway::config::AuthConfig::default()
        },
        ..Config::default()
    };
    let app = App::build(config).await.expect("builds");
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let base = format!("https://localhost:{port}");
    let decision = common::example("apotti/SOSKU_DECISION/valid/positive-approved.json");

    // Registered by fingerprint: an integrator.
    let integration = client(&ca, Some(&by_fingerprint));
    let response = integration
        .post(format!("{base}/exchanges/apotti-to-kanta"))
        .json(&decision)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let response = integration
        .get(format!("{base}/audit/entries"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        403,
        "an integrator does not read the log"
    );

    // Registered by SAN: an auditor, and the log names it.
    let robot = client(&ca, Some(&by_san));
    let response = robot
        .get(format!("{base}/audit/entries?limit=1000"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let log: Value = response.json().await.expect("entries");
    let entries = log["entries"].as_array().expect("entries");
    assert!(
        entries.iter().any(|e| e["entry"]["event"] == "exchange"
            && e["entry"]["actor"]["subject"] == "apotti-integration"
            && e["entry"]["actor"]["role"] == "integrator"),
        "{log}"
    );

    // A common name is not an identity.
    let response = client(&ca, Some(&common_name_only))
        .post(format!("{base}/$validate"))
        .json(&decision)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("outcome");
    assert_eq!(
        body["issue"][0]["details"]["coding"][0]["code"],
        "auth.certificate-unknown"
    );

    // No certificate and no token: 401, and the handshake still works (certificates are
    // asked for, not required, so token clients can connect).
    let response = client(&ca, None)
        .get(format!("{base}/deliveries"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    let response = client(&ca, None)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    // Another CA's certificate does not get through the handshake.
    let refused = client(&ca, Some(&foreign))
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a foreign client certificate was accepted"
    );

    // Plain HTTP to the HTTPS port gets no answer from the gateway.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.map_or(true, |r| r.status() != 200));

    let _ = stop.send(());
    server_task
        .await
        .expect("joins")
        .expect("server stops cleanly");
}

#[tokio::test]
async fn certificate_clients_need_a_fingerprint_or_san_and_a_client_ca() {
    let mut config = Config::default();
    config.auth.clients = vec![CertificateClient {
        name: "cn-only".to_owned(),
        sha256: None,
        san: None,
        roles: vec![Role::Integrator],
    }];
    let error = config.check().expect_err("no identity").to_string();
    assert!(error.contains("auth.clients[0]"), "{error}");
    config.auth.clients[0].san = Some("apotti.example".to_owned());
    let error = config.check().expect_err("no client CA").to_string();
    assert!(error.contains("tls.client_ca"), "{error}");
    config.auth.clients[0].sha256 = Some("12:34".to_owned());
    let error = config.check().expect_err("short fingerprint").to_string();
    assert!(error.contains("sha256"), "{error}");
}
