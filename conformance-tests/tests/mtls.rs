//! Mutual TLS between the gateway and the archive, with certificates made by rcgen: the
//! organisation's valid client certificate works; no certificate, one from another CA, an
//! expired one and a server-only one are refused by the archive, and the gateway says why in
//! the delivery's last error (the document stays pending, nothing is lost).

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{Ca, ca, serve_archive_tls, write};
use gateway::config::Config;
use gateway::server::App;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use serde_json::{Value, json};

/// (certificate PEM, key PEM) of a leaf signed by `ca`.
fn leaf(
    ca: &Ca,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    expired: bool,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("client"),
    );
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    (
        params.signed_by(&key, &issuer).expect("signed").pem(),
        key.serialize_pem(),
    )
}

fn decision(id: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples/apotti/SOSKU_DECISION/valid/positive-approved.json");
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("example")).expect("json");
    record["DECISION"]["DECISION_ID"] = json!(id);
    record
}

/// Runs one delivery over mutual TLS with `client` (or no client certificate); returns the
/// delivery row once it is delivered or after a while.
async fn deliver_with(organisation_ca: &Ca, client: Option<(String, String)>) -> Value {
    let dir = tempfile::tempdir().expect("dir");
    let (server_cert, server_key) = leaf(
        organisation_ca,
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let port = serve_archive_tls(dir.path(), organisation_ca, &server_cert, &server_key).await;

    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.archive.url = Some(format!("https://localhost:{port}"));
    config.archive.ca_cert = Some(write(dir.path(), "ca.pem", &organisation_ca.pem));
    if let Some((cert, key)) = client {
        config.archive.client_cert = Some(write(dir.path(), "client.pem", &cert));
        config.archive.client_key = Some(write(dir.path(), "client.key", &key));
    }
    config.archive.retry_base_ms = 100;
    config.archive.retry_max_secs = 1;
    let app = App::build(config).await.expect("gateway");
    let gateway = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run(std::future::pending()));

    let response = reqwest::Client::new()
        .post(format!("{gateway}/exchanges/apotti-to-kanta"))
        .json(&decision("SD-MTLS-1"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 201);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body: Value = reqwest::get(format!("{gateway}/deliveries"))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let row = body["deliveries"][0].clone();
        if row["status"] == "delivered"
            || (row["attempts"].as_i64().unwrap_or(0) >= 2
                && Instant::now() > deadline - Duration::from_secs(3))
            || Instant::now() > deadline
        {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_client_certificate_is_accepted() {
    let organisation = ca("Testiorganisaation CA");
    let client = leaf(
        &organisation,
        &["sosku-gateway.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    let row = deliver_with(&organisation, Some(client)).await;
    assert_eq!(row["status"], "delivered", "{row}");
}

async fn refused(client: Option<(String, String)>, organisation: &Ca) {
    let row = deliver_with(organisation, client).await;
    assert_eq!(row["status"], "pending", "{row}");
    let error = row["lastError"].as_str().unwrap_or_default();
    assert!(error.starts_with("archive not reached"), "{error}");
    assert!(
        error.len() > "archive not reached: ".len() + 10,
        "the error says why: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_certificate_is_refused() {
    let organisation = ca("Testiorganisaation CA");
    refused(None, &organisation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let organisation = ca("Testiorganisaation CA");
    let stranger = ca("Vieras CA");
    refused(
        Some(leaf(
            &stranger,
            &["sosku-gateway.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        )),
        &organisation,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let organisation = ca("Testiorganisaation CA");
    refused(
        Some(leaf(
            &organisation,
            &["sosku-gateway.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            true,
        )),
        &organisation,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_only_certificate_is_refused_as_a_client_certificate() {
    let organisation = ca("Testiorganisaation CA");
    refused(
        Some(leaf(
            &organisation,
            &["sosku-gateway.test"],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )),
        &organisation,
    )
    .await;
}
