//! What users rely on when things go wrong or grow: a gateway killed under load keeps every
//! exchange it answered as accepted; two gateway processes on one PostgreSQL database keep one
//! consistent crosswalk and one verifiable audit chain; an operator reads the log and the
//! stored documents from the command line beside a running gateway, and those reads are logged.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Db, GatewayProcess, example, fresh_database};
use gateway::store::Store;
use serde_json::{Value, json};

fn decision(id: &str, revision: i64) -> Value {
    let mut record = example("apotti/SOSKU_DECISION/valid/positive-approved.json");
    record["DECISION"]["DECISION_ID"] = json!(id);
    record["DECISION"]["REVISION"] = json!(revision);
    record["DECISION"]["JUSTIFICATION_TEXT"] = json!(format!("Perustelu, versio {revision}."));
    record
}

/// Sends until `deadline` or until the gateway stops answering; returns (exchange id,
/// document OID) of every exchange answered as accepted.
async fn load(
    base: String,
    client: reqwest::Client,
    worker: usize,
    deadline: Instant,
) -> Vec<(String, String)> {
    let mut accepted = Vec::new();
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let record = decision(&format!("SD-CRASH-{worker}-{n}"), 1);
        let response = client
            .post(format!("{base}/exchanges/apotti-to-kanta"))
            .json(&record)
            .send()
            .await;
        let Ok(response) = response else { break };
        if response.status().as_u16() == 201
            && let Ok(body) = response.json::<Value>().await
            && let (Some(id), Some(oid)) =
                (body["exchangeId"].as_str(), body["documentOid"].as_str())
        {
            accepted.push((id.to_owned(), oid.to_owned()));
        }
    }
    accepted
}

/// The running gateway's `GET /audit/verify` report.
async fn verify_chain(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/audit/verify"))
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json")
}

async fn crash(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(db, dir.path()).await else {
        return;
    };
    let first = GatewayProcess::start(&url, dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers: Vec<_> = (0..6)
        .map(|w| tokio::spawn(load(first.base.clone(), client.clone(), w, deadline)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill();
    let mut accepted = Vec::new();
    for worker in workers {
        accepted.extend(worker.await.expect("worker"));
    }
    assert!(
        accepted.len() > 20,
        "too little load before the kill: {}",
        accepted.len()
    );

    let second = GatewayProcess::start(&url, dir.path());
    let store = Store::connect(&url).await.expect("store");
    for (exchange_id, document_oid) in &accepted {
        let entries = store
            .entries_of_exchange(exchange_id)
            .await
            .expect("entries");
        assert_eq!(
            entries.len(),
            1,
            "exchange {exchange_id} was answered as accepted but has no audit entry"
        );
        assert!(entries[0].entry.contains("\"outcome\":\"accepted\""));
        assert!(
            store
                .document(document_oid)
                .await
                .expect("document")
                .is_some(),
            "no document {document_oid}"
        );
    }
    let report = verify_chain(&client, &second.base).await;
    assert_eq!(report["intact"], true, "{report}");
    eprintln!(
        "crash test on {db:?}: {} accepted exchanges before SIGKILL all survived",
        accepted.len()
    );
    second.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_keeps_every_accepted_exchange_sqlite() {
    crash(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_keeps_every_accepted_exchange_postgres() {
    crash(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_postgres_consistently() {
    let dir_a = tempfile::tempdir().expect("dir");
    let dir_b = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(Db::Postgres, dir_a.path()).await else {
        return;
    };
    let a = GatewayProcess::start(&url, dir_a.path());
    let b = GatewayProcess::start(&url, dir_b.path());
    let client = reqwest::Client::new();
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // 30 records, each in revisions 1–3, every revision sent twice to each process at once.
    for record in 0..30 {
        for revision in 1..=3 {
            for base in [&a.base, &b.base, &a.base, &b.base] {
                let (client, base, statuses) =
                    (client.clone(), base.clone(), Arc::clone(&statuses));
                tasks.push(tokio::spawn(async move {
                    let body = decision(&format!("SD-SCALE-{record}"), revision);
                    let response = client
                        .post(format!("{base}/exchanges/apotti-to-kanta"))
                        .json(&body)
                        .send()
                        .await
                        .expect("send");
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.expect("json");
                    statuses.lock().expect("lock").push((
                        record,
                        revision,
                        status,
                        body["version"].as_i64(),
                    ));
                }));
            }
        }
    }
    for task in tasks {
        task.await.expect("task");
    }
    let statuses = statuses.lock().expect("lock").clone();
    assert!(
        statuses
            .iter()
            .all(|(_, _, s, _)| matches!(s, 200 | 201 | 409)),
        "{statuses:?}"
    );
    let store = Store::connect(&url).await.expect("store");
    // Per set: versions 1..n, each exactly once, and each accepted answer's version among them.
    let rows = sqlx::query("SELECT set_oid, version FROM documents ORDER BY set_oid, version")
        .fetch_all(store.pool())
        .await
        .expect("documents");
    let mut per_set: std::collections::BTreeMap<String, Vec<i64>> =
        std::collections::BTreeMap::new();
    for row in &rows {
        let set: String = sqlx::Row::try_get(row, "set_oid").expect("set");
        let version: i64 = sqlx::Row::try_get(row, "version").expect("version");
        per_set.entry(set).or_default().push(version);
    }
    assert_eq!(per_set.len(), 30, "one document set per record");
    for versions in per_set.values() {
        let expected: Vec<i64> = (1..=i64::try_from(versions.len()).expect("small")).collect();
        assert_eq!(
            versions, &expected,
            "versions of a set are 1..n without gaps or repeats"
        );
    }
    let accepted = statuses.iter().filter(|(_, _, s, _)| *s == 201).count();
    assert_eq!(accepted, rows.len(), "every 201 made exactly one version");
    let report = verify_chain(&client, &a.base).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["entries"], 360, "one entry per exchange");
}

#[test]
fn the_operators_verification_from_the_command_line_is_logged_as_a_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verify = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["audit", "verify"])
            .env("GATEWAY_DATA_DIR", dir.path())
            .env("USER", "testi-operaattori")
            .output()
            .expect("gateway runs");
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<Value>(&output.stdout).expect("a JSON report")
    };
    let first = verify();
    assert_eq!(
        (first["entries"].as_i64(), first["intact"].as_bool()),
        (Some(0), Some(true))
    );
    // The first check is now in the log, under the operator, and the chain still holds.
    let second = verify();
    assert_eq!(
        (second["entries"].as_i64(), second["intact"].as_bool()),
        (Some(1), Some(true))
    );
}

/// `gateway documents show`, run beside `gateway serve` on the same database.
fn show_document(url: &str, dir: &std::path::Path, oid: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["documents", "show", oid])
        .env(
            "GATEWAY_AUDIT__HMAC_KEY",
            "test-key-shared-by-all-processes",
        )
        .env("GATEWAY_DATABASE_URL", url)
        .env("GATEWAY_DATA_DIR", dir)
        .env("USER", "testi-operaattori")
        .output()
        .expect("gateway runs")
}

async fn operator_reads_a_document(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(db, dir.path()).await else {
        return;
    };
    let server = GatewayProcess::start(&url, dir.path());
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{}/exchanges/apotti-to-kanta", server.base))
        .json(&decision("SD-SHOW-1", 1))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let oid = answer["documentOid"].as_str().expect("accepted");

    let shown = show_document(&url, dir.path(), oid);
    assert!(shown.status.success(), "{shown:?}");
    let document: Value = serde_json::from_slice(&shown.stdout).expect("the document as JSON");
    assert_eq!(document, answer["document"], "the stored version, unpacked");
    let missing = show_document(&url, dir.path(), "1.2.246.10.99.13.2026.999999");
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");

    // Both reads are in the log, under the operator, and the chain holds.
    let report = verify_chain(&client, &server.base).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["entries"], 3, "the exchange and two reads: {report}");
    let store = Store::connect(&url).await.expect("store");
    // After them, the verification's own read.
    let reads = store.log_page(1, 2).await.expect("log");
    assert_eq!(reads.len(), 2);
    for (read, (wanted_oid, count)) in reads
        .iter()
        .zip([(oid, 1), ("1.2.246.10.99.13.2026.999999", 0)])
    {
        let entry: Value = serde_json::from_str(&read.entry).expect("entry");
        assert_eq!(entry["event"], "document-read");
        assert_eq!(entry["actor"]["subject"], "cli:testi-operaattori");
        assert_eq!(entry["document_oid"], wanted_oid);
        assert_eq!(entry["details"]["resultCount"], count);
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_a_stored_document_and_the_read_is_logged_sqlite() {
    operator_reads_a_document(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_a_stored_document_and_the_read_is_logged_postgres() {
    operator_reads_a_document(Db::Postgres).await;
}
