//! The reference archive keeps the archive API's promises: validation, version order,
//! exactly-once resends, fetch and search.

use std::net::SocketAddr;

use conformance::archive::Archive;
use serde_json::{Value, json};

async fn start() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let archive = Archive::open(&dir.path().join("archive.db"))
        .await
        .expect("archive");
    let (bound, address) = tokio::sync::oneshot::channel::<SocketAddr>();
    tokio::spawn(archive.serve(
        "127.0.0.1:0".parse().expect("address"),
        bound,
        std::future::pending(),
    ));
    let address = address.await.expect("bound");
    (format!("http://{address}"), dir)
}

fn example(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(file).expect("example")).expect("json")
}

async fn post(base: &str, document: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/documents"))
        .json(document)
        .send()
        .await
        .expect("post");
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn archives_each_version_once_and_in_order() {
    let (base, _dir) = start().await;
    let first = example("kanta/PAATOS_SOSKU/valid/positive-final.json");
    let (status, receipt) = post(&base, &first).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["version"], 1);
    // The same version again: 200 and the same receipt.
    let (status, again) = post(&base, &first).await;
    assert_eq!(status, 200);
    assert_eq!(again, receipt);
    // The same version with other content: 409.
    let mut other = first.clone();
    other["body"]["decision"]["justification"] = json!("Toinen perustelu.");
    let (status, conflict) = post(&base, &other).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(
        conflict["issues"][0]["code"],
        "archive.same-version-other-content"
    );
    // A version 3 before version 2: 409. Version 2 replacing version 1: 201.
    let oid = first["header"]["documentOid"].as_str().expect("oid");
    let next = |version: i64, replaces: &str, document_oid: &str| {
        let mut document = first.clone();
        document["header"]["version"] = json!(version);
        document["header"]["documentOid"] = json!(document_oid);
        document["header"]["replaces"] = json!({"documentOid": replaces, "version": version - 1});
        document
    };
    let (status, _) = post(&base, &next(3, oid, "1.2.246.10.2012566.13.2026.9003")).await;
    assert_eq!(status, 409);
    let (status, receipt2) = post(&base, &next(2, oid, "1.2.246.10.2012566.13.2026.9002")).await;
    assert_eq!(status, 201, "{receipt2}");

    // Fetch and search: the latest version of each set.
    let fetched: Value = reqwest::get(format!("{base}/documents/1.2.246.10.2012566.13.2026.9002"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(fetched["header"]["version"], 2);
    assert_eq!(
        reqwest::get(format!("{base}/documents/1.2.3.4"))
            .await
            .expect("get")
            .status()
            .as_u16(),
        404
    );
    let hetu = first["header"]["client"]["hetu"].as_str().expect("hetu");
    let found: Value = reqwest::get(format!("{base}/documents?client={hetu}&type=PAATOS_SOSKU"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let documents = found["documents"].as_array().expect("documents");
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0]["header"]["version"], 2);
    assert_eq!(
        reqwest::get(format!("{base}/documents?client=nobody"))
            .await
            .expect("get")
            .status()
            .as_u16(),
        400
    );
}

#[tokio::test]
async fn invalid_documents_get_their_issues() {
    let (base, _dir) = start().await;
    let mut document = example("kanta/ASIAKASKERTOMUS/valid/individual-completed.json");
    document["header"]["client"]["hetu"] = json!("010190-999K");
    let (status, body) = post(&base, &document).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["issues"][0]["path"], "/header/client/hetu");
    assert_eq!(body["issues"][0]["code"], "format:fi-hetu");
    let (status, _) = post(
        &base,
        &example("apotti/SOSKU_DECISION/valid/positive-approved.json"),
    )
    .await;
    assert_eq!(status, 422, "an EHR message is not an archive document");
}

#[tokio::test]
async fn since_compares_instants_not_texts() {
    let (base, _dir) = start().await;
    let document = example("kanta/PAATOS_SOSKU/valid/positive-final.json");
    let (status, receipt) = post(&base, &document).await;
    assert_eq!(status, 201, "{receipt}");
    let hetu = document["header"]["client"]["hetu"].as_str().expect("hetu");
    // The receipt's own time, and its whole second written without a fraction, in UTC and
    // in Helsinki time: all are at or before the archiving instant.
    let archived_at = receipt["archivedAt"].as_str().expect("archivedAt");
    let second: jiff::Timestamp = format!("{}Z", &archived_at[..19])
        .parse()
        .expect("timestamp");
    let helsinki = second
        .to_zoned(jiff::tz::TimeZone::get("Europe/Helsinki").expect("zone"))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    for since in [archived_at.to_owned(), second.to_string(), helsinki] {
        let found: Value = reqwest::get(format!(
            "{base}/documents?client={hetu}&since={}",
            since.replace('+', "%2B")
        ))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
        assert_eq!(
            found["documents"].as_array().map(Vec::len),
            Some(1),
            "since={since}: {found}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_of_one_version_archive_it_once() {
    let (base, _dir) = start().await;
    let document = example("kanta/PAATOS_SOSKU/valid/positive-final.json");
    // Twenty sends at once land in the writer's batches together: one is archived, the rest
    // get the same receipt.
    let answers = futures::future::join_all((0..20).map(|_| post(&base, &document))).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, receipt)| receipt)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for (status, receipt) in &answers {
        assert!(*status == 200 || *status == 201, "{status} {receipt}");
        assert_eq!(receipt["receiptId"], created[0]["receiptId"]);
    }
}
