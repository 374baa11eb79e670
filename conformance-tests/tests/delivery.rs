//! Delivery from the gateway to the reference archive: each version arrives exactly once and
//! in order, whatever the archive does meanwhile; final refusals are recorded. Runs on SQLite
//! and on PostgreSQL (skipped with a message when PostgreSQL is not there, outside CI).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::post;
use conformance::archive::Archive;
use gateway::config::Config;
use gateway::server::App;
use serde_json::{Value, json};

const PG: &str = "postgres://root@127.0.0.1:5432/test";

async fn database(postgres: bool, dir: &std::path::Path) -> Option<String> {
    if !postgres {
        return Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join("gateway.db").display()
        ));
    }
    gateway::scratch_db::create_for_test(PG, "d")
        .await
        .map(|schema| schema.url)
}

async fn start_archive(listen: SocketAddr, dir: &std::path::Path) -> String {
    let archive = Archive::open(&dir.join("archive.db"))
        .await
        .expect("archive");
    let (bound, address) = tokio::sync::oneshot::channel();
    tokio::spawn(archive.serve(listen, bound, std::future::pending()));
    format!("http://{}", address.await.expect("bound"))
}

async fn start_gateway(postgres: bool, dir: &std::path::Path, archive: &str) -> Option<String> {
    let url = database(postgres, dir).await?;
    let (base, stop, _handle) = start_gateway_on(&url, dir, archive).await;
    // Runs for the rest of the test: dropping the sender would stop it.
    tokio::spawn(async move {
        let _keep = stop;
        std::future::pending::<()>().await;
    });
    Some(base)
}

/// A gateway on an existing database; the sender stops it.
async fn start_gateway_on(
    url: &str,
    dir: &std::path::Path,
    archive: &str,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let url = url.to_owned();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.to_path_buf(),
        database_url: Some(url),
        ..Config::default()
    };
    config.archive.url = Some(archive.to_owned());
    config.archive.retry_base_ms = 50;
    config.archive.retry_max_secs = 1;
    config.archive.timeout_secs = 2;
    let app = App::build(config).await.expect("gateway");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = app
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    (base, stop, handle)
}

fn decision(id: &str, revision: i64) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples/apotti/SOSKU_DECISION/valid/positive-approved.json");
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("example")).expect("json");
    record["DECISION"]["DECISION_ID"] = json!(id);
    record["DECISION"]["REVISION"] = json!(revision);
    record["DECISION"]["JUSTIFICATION_TEXT"] = json!(format!("Perustelu {revision}."));
    record
}

async fn send(gateway: &str, record: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{gateway}/exchanges/apotti-to-kanta"))
        .json(record)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 201);
    response.json().await.expect("json")
}

async fn deliveries(gateway: &str, status: &str) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{gateway}/deliveries?status={status}"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

async fn wait_for(gateway: &str, status: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = deliveries(gateway, status).await;
        if rows.len() >= count || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn archived_versions(archive: &str, hetu: &str) -> usize {
    let body: Value = reqwest::get(format!("{archive}/documents?client={hetu}"))
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    body["documents"].as_array().map_or(0, Vec::len)
}

async fn delivered_in_order(postgres: bool) {
    let dir = tempfile::tempdir().expect("dir");
    let archive = start_archive("127.0.0.1:0".parse().expect("address"), dir.path()).await;
    let Some(gateway) = start_gateway(postgres, dir.path(), &archive).await else {
        return;
    };
    let v1 = send(&gateway, &decision("SD-DELIVER-1", 1)).await;
    let v2 = send(&gateway, &decision("SD-DELIVER-1", 2)).await;
    let delivered = wait_for(&gateway, "delivered", 2).await;
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    for version in [&v1, &v2] {
        let oid = version["documentOid"].as_str().expect("oid");
        let stored = reqwest::get(format!("{archive}/documents/{oid}"))
            .await
            .expect("get");
        assert_eq!(stored.status().as_u16(), 200);
    }
    // The delivery is an event of its exchange in the audit log.
    let exchange: Value = reqwest::get(format!(
        "{gateway}/exchanges/{}",
        v1["exchangeId"].as_str().expect("id")
    ))
    .await
    .expect("get")
    .json()
    .await
    .expect("json");
    let events: Vec<&str> = exchange["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["entry"]["event"].as_str())
        .collect();
    assert_eq!(events, ["exchange", "delivery"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_is_delivered_once_in_order_sqlite() {
    delivered_in_order(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_is_delivered_once_in_order_postgres() {
    delivered_in_order(true).await;
}

async fn archive_down_then_up(postgres: bool) {
    let dir = tempfile::tempdir().expect("dir");
    // A port with nothing behind it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let archive = format!("http://{port}");
    let Some(gateway) = start_gateway(postgres, dir.path(), &archive).await else {
        return;
    };
    let record = decision("SD-DOWN-1", 1);
    let hetu = record["PATIENT"]["SSN"].as_str().expect("hetu").to_owned();
    send(&gateway, &record).await;
    send(&gateway, &decision("SD-DOWN-2", 1)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let pending = deliveries(&gateway, "pending").await;
    assert_eq!(pending.len(), 2);
    assert!(
        pending
            .iter()
            .all(|p| p["attempts"].as_i64().unwrap_or(0) >= 1 && p["lastError"].is_string()),
        "{pending:?}"
    );
    start_archive(port, dir.path()).await;
    let delivered = wait_for(&gateway, "delivered", 2).await;
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_eq!(
        archived_versions(&archive, &hetu).await,
        2,
        "each document arrived once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_is_down_gets_the_documents_when_it_is_back_sqlite() {
    archive_down_then_up(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_is_down_gets_the_documents_when_it_is_back_postgres() {
    archive_down_then_up(true).await;
}

/// An archive in front of the reference archive that answers the first POST with 500 after
/// the document was stored, as an archive whose answer gets lost would.
async fn flaky_archive(real: String) -> String {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/documents",
        post(move |body: axum::body::Bytes| {
            let (real, calls) = (real.clone(), calls.clone());
            async move {
                let response = reqwest::Client::new()
                    .post(format!("{real}/documents"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("forward");
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new());
                }
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    text,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_and_the_archive_keeps_one_copy() {
    let dir = tempfile::tempdir().expect("dir");
    let real = start_archive("127.0.0.1:0".parse().expect("address"), dir.path()).await;
    let flaky = flaky_archive(real.clone()).await;
    let Some(gateway) = start_gateway(false, dir.path(), &flaky).await else {
        return;
    };
    let record = decision("SD-FLAKY-1", 1);
    let hetu = record["PATIENT"]["SSN"].as_str().expect("hetu").to_owned();
    send(&gateway, &record).await;
    let delivered = wait_for(&gateway, "delivered", 1).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0]["attempts"], 2,
        "one 500, then the resend answered 200 with the same receipt"
    );
    assert_eq!(archived_versions(&real, &hetu).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_final_and_recorded_with_the_archives_issues() {
    let dir = tempfile::tempdir().expect("dir");
    let refusing = axum::Router::new().route(
        "/documents",
        post(|| async {
            (
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"issues": [{"path": "/header/title", "code": "title-unknown", "message": "the archive does not know this title"}]})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, refusing).await });
    let Some(gateway) = start_gateway(false, dir.path(), &format!("http://{address}")).await else {
        return;
    };
    let accepted = send(&gateway, &decision("SD-REFUSED-1", 1)).await;
    let failed = wait_for(&gateway, "failed", 1).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempts"], 1, "a 422 is not retried");
    let exchange: Value = reqwest::get(format!(
        "{gateway}/exchanges/{}",
        accepted["exchangeId"].as_str().expect("id")
    ))
    .await
    .expect("get")
    .json()
    .await
    .expect("json");
    let delivery = &exchange["entries"][1]["entry"];
    assert_eq!(delivery["outcome"], "failed");
    assert_eq!(delivery["issues"][0]["rule"], "archive:title-unknown");
    assert_eq!(delivery["issues"][0]["pointer"], "/header/title");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_resume_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let archive = format!("http://{port}");
    let url = database(false, dir.path()).await.expect("sqlite");
    let (gateway, stop, handle) = start_gateway_on(&url, dir.path(), &archive).await;
    let record = decision("SD-RESTART-1", 1);
    let hetu = record["PATIENT"]["SSN"].as_str().expect("hetu").to_owned();
    send(&gateway, &record).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deliveries(&gateway, "pending").await.len(), 1);
    let _ = stop.send(());
    let _ = handle.await;

    start_archive(port, dir.path()).await;
    let (gateway, _stop, _handle) = start_gateway_on(&url, dir.path(), &archive).await;
    assert_eq!(wait_for(&gateway, "delivered", 1).await.len(), 1);
    assert_eq!(archived_versions(&archive, &hetu).await, 1);
}

/// Apotti-like export → gateway → archive → back from the archive → the original, except
/// the fields the decision mapping declares lossy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_there_and_back() {
    let dir = tempfile::tempdir().expect("dir");
    let archive = start_archive("127.0.0.1:0".parse().expect("address"), dir.path()).await;
    let Some(gateway) = start_gateway(false, dir.path(), &archive).await else {
        return;
    };
    let original = decision("SD-E2E-1", 1);
    send(&gateway, &original).await;
    assert_eq!(wait_for(&gateway, "delivered", 1).await.len(), 1);

    let hetu = original["PATIENT"]["SSN"].as_str().expect("hetu");
    let response = reqwest::Client::new()
        .post(format!("{gateway}/exchanges/from-archive"))
        .json(&json!({"client": hetu, "type": "PAATOS_SOSKU"}))
        .send()
        .await
        .expect("from archive");
    assert_eq!(response.status().as_u16(), 200);
    let bundle: Value = response.json().await.expect("json");
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    let mut back = entries[0]["resource"]["document"].clone();
    let mut expected = original.clone();
    // Declared lossy in mappings/decision.toml: transfer fields, the EHR's internal ids, the
    // client's language, the revision (Kanta numbers versions), and RESTRICTED_YN = N (default).
    for value in [&mut back, &mut expected] {
        for pointer in ["", "/PATIENT", "/DECISION"] {
            if let Some(object) = value.pointer_mut(pointer).and_then(Value::as_object_mut) {
                for key in [
                    "MSG_ID",
                    "MSG_DTTM",
                    "SOURCE_SYSTEM",
                    "PAT_ID",
                    "PAT_MRN_ID",
                    "LANGUAGE_C_NAME",
                    "RESTRICTED_YN",
                    "REVISION",
                ] {
                    object.remove(key);
                }
            }
        }
    }
    assert_eq!(back, expected);
}

/// An archive that takes longer than the gateway waits on its first call (and stores the
/// document all the same), then answers at once.
async fn slow_archive(real: String, delay: Duration) -> String {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/documents",
        post(move |body: axum::body::Bytes| {
            let (real, calls) = (real.clone(), calls.clone());
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    tokio::time::sleep(delay).await;
                }
                let response = reqwest::Client::new()
                    .post(format!("{real}/documents"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("forward");
                let status = response.status().as_u16();
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    response.text().await.unwrap_or_default(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_archive_times_out_then_the_retry_succeeds() {
    let dir = tempfile::tempdir().expect("dir");
    let real = start_archive("127.0.0.1:0".parse().expect("address"), dir.path()).await;
    // The gateway waits 2 s per attempt (see start_gateway); the first answer takes 3 s.
    let slow = slow_archive(real.clone(), Duration::from_secs(3)).await;
    let Some(gateway) = start_gateway(false, dir.path(), &slow).await else {
        return;
    };
    let record = decision("SD-SLOW-1", 1);
    let hetu = record["PATIENT"]["SSN"].as_str().expect("hetu").to_owned();
    send(&gateway, &record).await;
    let delivered = wait_for(&gateway, "delivered", 1).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(
        delivered[0]["attempts"].as_i64().unwrap_or(0) >= 2,
        "the first attempt timed out: {delivered:?}"
    );
    assert_eq!(archived_versions(&real, &hetu).await, 1, "one stored copy");
}
