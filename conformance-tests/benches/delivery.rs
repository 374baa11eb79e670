//! Delivery throughput: documents per second from the gateway's outbox to the reference
//! archive over mutual TLS on loopback, with the outbox on SQLite and on PostgreSQL (when it
//! answers at 127.0.0.1:5432). The documents are put in the outbox by one NDJSON exchange
//! before the archive starts, then the clock runs until every one is delivered.
//!
//! `cargo bench -p sosku-conformance --bench delivery` (`DELIVERY_DOCUMENTS`, default 5000).

use std::path::Path;

/// mimalloc: the archive builds and drops many small JSON values per
/// document, where the system allocator costs a fifth of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use conformance::archive::{Archive, server_tls};
use gateway::config::Config;
use gateway::server::App;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};

fn certificates() -> (String, (String, String), (String, String)) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Bench CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("key");
    let ca_pem = ca.self_signed(&ca_key).expect("ca").pem();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf = |name: &str, usage| {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        (
            params.signed_by(&key, &issuer).expect("leaf").pem(),
            key.serialize_pem(),
        )
    };
    let server = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let client = leaf("bench-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    (ca_pem, server, client)
}

const PG: &str = "postgres://root@127.0.0.1:5432/test";

/// A schema of this run's own on the local PostgreSQL, dropped at the end of the run.
async fn pg_schema() -> Option<gateway::scratch_db::ScratchSchema> {
    gateway::scratch_db::create(PG, "bench").await.ok()
}

async fn run(name: &str, database_url: Option<String>, documents: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let (ca, (server_cert, server_key), (client_cert, client_key)) = certificates();
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, text).expect("write");
        path
    };
    // Reserve the archive's port, start the gateway pointing at it, fill the outbox.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        database_url,
        ..Config::default()
    };
    config.archive.url = Some(format!("https://localhost:{port}"));
    config.archive.ca_cert = Some(write("ca.pem", &ca));
    config.archive.client_cert = Some(write("client.pem", &client_cert));
    config.archive.client_key = Some(write("client.key", &client_key));
    config.archive.retry_base_ms = 20;
    config.archive.retry_max_secs = 1;
    let app = App::build(config).await.expect("gateway");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    tokio::spawn(app.run(std::future::pending()));
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples/apotti/SOSKU_DECISION/valid/positive-approved.json");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(example).expect("example")).expect("json");
    let mut body = String::new();
    for n in 0..documents {
        let mut record = record.clone();
        record["DECISION"]["DECISION_ID"] = json!(format!("SD-BENCH-{n}"));
        body.push_str(&record.to_string());
        body.push('\n');
    }
    reqwest::Client::new()
        .post(format!("{base}/exchanges/apotti-to-kanta"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("fill")
        .text()
        .await
        .expect("answers");

    let archive = Archive::open(&dir.path().join("archive.db"))
        .await
        .expect("archive");
    let tls = server_tls(
        server_cert.as_bytes(),
        server_key.as_bytes(),
        Some(ca.as_bytes()),
    )
    .expect("tls");
    let (bound, _address) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    tokio::spawn(archive.serve_tls(
        format!("127.0.0.1:{port}").parse().expect("address"),
        tls,
        bound,
    ));
    loop {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'delivered'")
            .fetch_one(store.pool())
            .await
            .expect("count");
        let delivered: i64 = sqlx::Row::try_get(&row, "n").expect("n");
        if delivered >= i64::try_from(documents).expect("count") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "counts")]
    let rate = documents as f64 / elapsed;
    println!(
        "{name}: {documents} documents delivered over mutual TLS in {elapsed:.2} s: {rate:.0} documents/s"
    );
}

fn main() {
    let documents: usize = std::env::var("DELIVERY_DOCUMENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run("sqlite outbox", None, documents).await;
        match pg_schema().await {
            Some(schema) => {
                run("postgres outbox", Some(schema.url.clone()), documents).await;
                if let Err(error) = gateway::scratch_db::drop(PG, &schema).await {
                    println!("postgres: schema {} not dropped: {error}", schema.name);
                }
            }
            None => println!("postgres: not reachable at 127.0.0.1:5432, skipped"),
        }
    });
}
