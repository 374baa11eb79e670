//! The service as integration teams and auditors use it, on SQLite and on PostgreSQL: every
//! storage test runs on both.

mod common;

use common::{Db, TestApp, example};
use serde_json::{Value, json};

/// Runs an async test body once per database.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(Db::Postgres).await;
            }
        }
    };
}

fn decision() -> Value {
    example("apotti/SOSKU_DECISION/valid/positive-approved.json")
}

async fn verify_intact(app: &TestApp) -> Value {
    let (status, body) = app.get("/audit/verify").await;
    let report: Value = serde_json::from_str(&body).expect("report");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["intact"], true, "{report}");
    report
}

async fn versions_and_resends(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    let first = decision();
    let (status, v1) = app.post("/exchanges/apotti-to-kanta", &first).await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(v1["outcome"], "accepted");
    assert_eq!(v1["version"], 1);
    let oid1 = v1["documentOid"].as_str().expect("oid").to_owned();
    assert_eq!(v1["document"]["header"]["setOid"], oid1.as_str());

    // The same content again, even with a new message id: the same answer, no new version.
    let mut resend = first.clone();
    resend["MSG_ID"] = json!("APOTTI.DEC.RESEND.1");
    let (status, again) = app.post("/exchanges/apotti-to-kanta", &resend).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["documentOid"], oid1.as_str());
    assert_eq!(again["document"], v1["document"]);

    // A new revision becomes the next version of the set, replacing the first.
    let mut revised = first.clone();
    revised["DECISION"]["REVISION"] = json!(2);
    revised["DECISION"]["JUSTIFICATION_TEXT"] =
        json!("Päätöstä on täydennetty asiakkaan toiveesta.");
    let (status, v2) = app.post("/exchanges/apotti-to-kanta", &revised).await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["document"]["header"]["setOid"], oid1.as_str());
    assert_eq!(
        v2["document"]["header"]["replaces"],
        json!({"documentOid": oid1, "version": 1})
    );
    assert_ne!(v2["documentOid"], oid1.as_str());

    // The same revision with other content is a conflict; an older revision is stale.
    let mut conflicting = revised.clone();
    conflicting["DECISION"]["JUSTIFICATION_TEXT"] = json!("Toinen sisältö.");
    let (status, conflict) = app.post("/exchanges/apotti-to-kanta", &conflicting).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(
        conflict["operationOutcome"]["issue"][0]["details"]["coding"][0]["code"],
        "exchange.revision-conflict"
    );
    let mut stale = first.clone();
    stale["DECISION"]["JUSTIFICATION_TEXT"] = json!("Vanha.");
    let (status, _) = app.post("/exchanges/apotti-to-kanta", &stale).await;
    assert_eq!(status, 409);

    // Back from Kanta: the import message gets the EHR's own ids back.
    let (status, back) = app
        .post("/exchanges/kanta-to-apotti", &v2["document"])
        .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(
        back["document"]["DECISION"]["DECISION_ID"],
        first["DECISION"]["DECISION_ID"]
    );
    assert_eq!(
        back["document"]["DECISION"]["CASE_ID"],
        first["DECISION"]["CASE_ID"]
    );

    // One entry per exchange, and the chain holds.
    let report = verify_intact(&app).await;
    assert_eq!(report["entries"], 6);
    app.stop().await;
}
on_both!(versions_and_resends_are_kept_straight, versions_and_resends);

async fn concurrent_sends(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    let record = example("apotti/SOSKU_PLAN/valid/thirty-goals.json");
    let sends = (0..24).map(|_| app.post("/exchanges/apotti-to-kanta", &record));
    let results = futures::future::join_all(sends).await;
    let accepted = results.iter().filter(|(s, _)| *s == 201).count();
    let duplicates = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((accepted, duplicates), (1, 23), "{results:?}");
    let oids: std::collections::BTreeSet<_> = results
        .iter()
        .map(|(_, b)| b["documentOid"].to_string())
        .collect();
    assert_eq!(oids.len(), 1);
    assert_eq!(
        app.store
            .count(gateway::store::Table::Documents)
            .await
            .expect("count"),
        1
    );
    verify_intact(&app).await;
    app.stop().await;
}
on_both!(
    concurrent_sends_of_one_record_make_one_version,
    concurrent_sends
);

async fn refused_are_audited(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    let mut bad = decision();
    bad["DECISION"]["VALID_TO_DATE"] = json!("2020-01-01");
    let hetu = bad["PATIENT"]["SSN"].as_str().expect("hetu").to_owned();
    let (status, body) = app.post("/exchanges/apotti-to-kanta", &bad).await;
    assert_eq!(status, 422, "{body}");
    let issue = &body["operationOutcome"]["issue"][0];
    assert_eq!(issue["expression"][0], "/DECISION/VALID_TO_DATE");
    assert_eq!(
        issue["details"]["coding"][0]["code"],
        "decision.validity-order"
    );

    // Malformed JSON is refused and audited too.
    let response = app
        .client
        .post(format!("{}/exchanges/apotti-to-kanta", app.base))
        .body("{\"MSG_TYPE\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);

    let (status, csv) = app
        .get(&format!("/audit/entries?format=csv&client={hetu}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        csv.contains("refused") && csv.contains("decision.validity-order /DECISION/VALID_TO_DATE"),
        "{csv}"
    );
    // The hetu itself is nowhere in the log.
    let mut after = 0;
    loop {
        let page = app.store.log_page(after, 1000).await.expect("log");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            assert!(!row.entry.contains(&hetu), "hetu in the log: {}", row.entry);
        }
    }
    let (_, all) = app.get("/audit/entries?outcome=refused").await;
    let all: Value = serde_json::from_str(&all).expect("json");
    assert_eq!(all["entries"].as_array().map(Vec::len), Some(2), "{all}");
    app.stop().await;
}
on_both!(
    refused_exchanges_are_audited_without_the_hetu,
    refused_are_audited
);

async fn auditor_queries(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    for path in [
        "apotti/SOSKU_DECISION/valid/positive-approved.json",
        "apotti/SOSKU_PLAN/valid/draft-one-goal.json",
        "apotti/SOSKU_VISIT/valid/individual-completed.json",
    ] {
        let (status, body) = app.post("/exchanges/apotti-to-kanta", &example(path)).await;
        assert_eq!(status, 201, "{path}: {body}");
    }
    let hetu = example("apotti/SOSKU_PLAN/valid/draft-one-goal.json")["PATIENT"]["SSN"]
        .as_str()
        .expect("hetu")
        .to_owned();
    let (_, by_client) = app.get(&format!("/audit/entries?client={hetu}")).await;
    let by_client: Value = serde_json::from_str(&by_client).expect("json");
    let entries = by_client["entries"].as_array().expect("entries");
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|e| e["entry"]["record_type"] == "plan" || e["entry"]["client_hash"].is_string())
    );

    let (_, by_type) = app.get("/audit/entries?type=visit").await;
    let by_type: Value = serde_json::from_str(&by_type).expect("json");
    assert_eq!(by_type["entries"].as_array().map(Vec::len), Some(1));

    // Paging with a cursor.
    let (_, page1) = app.get("/audit/entries?limit=2&outcome=accepted").await;
    let page1: Value = serde_json::from_str(&page1).expect("json");
    let cursor = page1["nextCursor"].as_i64().expect("cursor");
    let (_, page2) = app
        .get(&format!(
            "/audit/entries?limit=2&outcome=accepted&cursor={cursor}"
        ))
        .await;
    let page2: Value = serde_json::from_str(&page2).expect("json");
    assert_eq!(page2["entries"].as_array().map(Vec::len), Some(1));

    // An empty time window.
    let (_, old) = app
        .get("/audit/entries?from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z")
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&old).expect("json")["entries"],
        json!([])
    );

    // FHIR AuditEvent searchset and NDJSON.
    let (_, bundle) = app
        .get("/audit/entries?format=bundle&outcome=accepted")
        .await;
    let bundle: Value = serde_json::from_str(&bundle).expect("json");
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "AuditEvent");
    let (_, ndjson) = app
        .get("/audit/entries?format=ndjson&outcome=accepted")
        .await;
    assert_eq!(ndjson.lines().count(), 3);

    // Every read of the log is itself logged.
    let (_, reads) = app.get("/audit/entries?outcome=read&limit=1000").await;
    let reads: Value = serde_json::from_str(&reads).expect("json");
    assert!(
        reads["entries"].as_array().map(Vec::len).unwrap_or(0) >= 6,
        "{reads}"
    );
    verify_intact(&app).await;
    app.stop().await;
}
on_both!(auditors_query_filter_page_and_export, auditor_queries);

/// Posts an NDJSON body to the forward route; the answer lines, parsed.
async fn post_ndjson(app: &TestApp, body: String) -> Vec<Value> {
    let response = app
        .client
        .post(format!("{}/exchanges/apotti-to-kanta", app.base))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("body");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// An NDJSON body of `count` decisions with ids `{prefix}-0`, `{prefix}-1`, …
fn decisions_ndjson(prefix: &str, count: usize) -> String {
    let base = decision();
    let mut body = String::new();
    for n in 0..count {
        let mut record = base.clone();
        record["DECISION"]["DECISION_ID"] = json!(format!("{prefix}-{n}"));
        body.push_str(&serde_json::to_string(&record).expect("json"));
        body.push('\n');
    }
    body
}

async fn ndjson_stream(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    let base = decision();
    let mut body = String::new();
    for n in 0..200 {
        let mut record = base.clone();
        record["DECISION"]["DECISION_ID"] = json!(format!("SD-STREAM-{n}"));
        body.push_str(&serde_json::to_string(&record).expect("json"));
        body.push('\n');
        if n == 100 {
            body.push_str("{not json}\n");
        }
    }
    let lines = post_ndjson(&app, body).await;
    assert_eq!(lines.len(), 201);
    assert_eq!(lines[101]["line"], 102);
    assert_eq!(lines[101]["outcome"], "refused");
    assert_eq!(
        lines.iter().filter(|l| l["outcome"] == "accepted").count(),
        200
    );
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["line"].as_u64() < w[1]["line"].as_u64()),
        "in input order"
    );
    let report = verify_intact(&app).await;
    assert_eq!(report["entries"], 201);
    app.stop().await;
}
on_both!(ndjson_streams_are_answered_line_by_line, ndjson_stream);

/// With batches larger than one statement's rows (`audit.max_batch` raised above the 1 024
/// rows PostgreSQL writes per statement, and SQLite's 200), a batch's rows are written, and its
/// crosswalk read back for resends, in several statements: every record is stored once, a
/// resend of the whole stream makes no new version, and the chain verifies.
async fn batches_larger_than_one_statement(db: Db) {
    let Some(app) = TestApp::start_with(db, |config| config.audit.max_batch = Some(4096)).await
    else {
        return;
    };
    let body = decisions_ndjson("SD-WIDE", 2500);
    let first = post_ndjson(&app, body.clone()).await;
    let again = post_ndjson(&app, body).await;
    assert_eq!(first.len(), 2500);
    assert!(
        first.iter().all(|l| l["outcome"] == "accepted"),
        "{}",
        first[0]
    );
    let documents = |lines: &[Value]| -> Vec<Value> {
        lines.iter().map(|l| l["documentOid"].clone()).collect()
    };
    let distinct: std::collections::HashSet<String> = documents(&first)
        .iter()
        .filter_map(|oid| oid.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        distinct.len(),
        2500,
        "a document of its own for each record"
    );
    assert_eq!(
        documents(&again),
        documents(&first),
        "resends get the same documents"
    );
    let count = |table| {
        let store = app.store.clone();
        async move { store.count(table).await.expect("count") }
    };
    assert_eq!(count(gateway::store::Table::Crosswalk).await, 2500);
    assert_eq!(count(gateway::store::Table::Documents).await, 2500);
    assert_eq!(count(gateway::store::Table::AuditLog).await, 5000);
    let report = verify_intact(&app).await;
    assert_eq!(report["entries"], 5000);
    app.stop().await;
}
on_both!(
    batches_larger_than_one_statement_are_written_whole,
    batches_larger_than_one_statement
);

/// Records that depend on each other inside one stream (a revision after its first version, a
/// resend, a conflict, a record that cannot be mapped) get the answers they would get one
/// request at a time: the writer decides a batch's ids in order even when it maps in parallel.
async fn dependent_records_in_one_stream(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    let base = decision();
    let record = |n: usize, revision: i64, text: &str, msg: &str| {
        let mut record = base.clone();
        record["DECISION"]["DECISION_ID"] = json!(format!("SD-DEP-{n}"));
        record["DECISION"]["REVISION"] = json!(revision);
        record["DECISION"]["JUSTIFICATION_TEXT"] = json!(text);
        record["MSG_ID"] = json!(msg);
        record
    };
    let mut unmappable =
        example("apotti/SOSKU_DECISION/valid/voided-restricted-untranslated-municipality.json");
    unmappable["DECISION"]["DECISION_ID"] = json!("SD-DEP-UNMAPPABLE");
    let mut lines = Vec::new();
    for n in 0..40 {
        lines.push(record(n, 1, "Ensimmäinen.", &format!("M-{n}-1")));
    }
    lines.push(unmappable);
    for n in 0..20 {
        lines.push(record(n, 2, "Täydennetty.", &format!("M-{n}-2")));
    }
    for n in 0..10 {
        lines.push(record(n, 2, "Täydennetty.", &format!("M-{n}-2-again")));
    }
    for n in 10..20 {
        lines.push(record(n, 2, "Toinen sisältö.", &format!("M-{n}-2-other")));
    }
    lines.push(record(39, 1, "Ensimmäinen.", "M-39-1-again"));
    let body: String = lines
        .iter()
        .map(|record| serde_json::to_string(record).expect("json") + "\n")
        .collect();
    let answers = post_ndjson(&app, body).await;
    assert_eq!(answers.len(), 82);
    for (n, answer) in answers[..40].iter().enumerate() {
        assert_eq!(answer["outcome"], "accepted", "line {n}: {answer}");
        assert_eq!(answer["version"], 1, "line {n}");
    }
    let refused = &answers[40];
    assert_eq!(refused["status"], 422, "{refused}");
    assert_eq!(
        refused["operationOutcome"]["issue"][0]["details"]["coding"][0]["code"],
        "mapping:municipality",
        "{refused}"
    );
    for n in 0..20 {
        let revision = &answers[41 + n];
        assert_eq!(revision["outcome"], "accepted", "{revision}");
        assert_eq!(revision["version"], 2);
        assert_eq!(
            revision["document"]["header"]["replaces"],
            json!({"documentOid": answers[n]["documentOid"], "version": 1})
        );
    }
    for n in 0..10 {
        let resend = &answers[61 + n];
        assert_eq!(resend["outcome"], "duplicate", "{resend}");
        assert_eq!(resend["documentOid"], answers[41 + n]["documentOid"]);
        assert_eq!(resend["document"], answers[41 + n]["document"]);
    }
    for n in 10..20 {
        let conflict = &answers[61 + n];
        assert_eq!(conflict["status"], 409, "{conflict}");
    }
    assert_eq!(answers[81]["outcome"], "duplicate");
    assert_eq!(answers[81]["documentOid"], answers[39]["documentOid"]);
    let oids: std::collections::BTreeSet<&str> = answers
        .iter()
        .filter(|a| a["outcome"] == "accepted")
        .filter_map(|a| a["documentOid"].as_str())
        .collect();
    assert_eq!(oids.len(), 60, "every version has its own OID");
    assert_eq!(
        app.store
            .count(gateway::store::Table::Documents)
            .await
            .expect("count"),
        60
    );
    let report = verify_intact(&app).await;
    assert_eq!(report["entries"], 82);
    app.stop().await;
}
on_both!(
    dependent_records_in_one_stream_get_the_answers_of_one_by_one,
    dependent_records_in_one_stream
);

async fn batches(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": decision()},
        {"resource": {"MSG_TYPE": "SOSKU_NOPE"}},
        {"resource": example("apotti/SOSKU_VISIT/valid/canceled-home-visit.json")},
        {"fullUrl": "urn:uuid:entry-without-a-resource"},
    ]});
    let (status, body) = app.post("/exchanges/apotti-to-kanta", &bundle).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "batch-response");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["201", "422", "201", "422"]);
    let missing = &body["entry"][3]["response"]["outcome"]["issue"][0];
    assert_eq!(
        missing["details"]["coding"][0]["code"], "bundle.resource",
        "{missing}"
    );
    assert_eq!(missing["expression"][0], "/entry/3/resource", "{missing}");
    // Each accepted entry carries its mapped document as JSON, the refused one none.
    let entries = &body["entry"];
    for accepted in [0, 2] {
        let resource = &entries[accepted]["resource"];
        assert_eq!(
            resource["document"]["header"]["documentOid"], resource["documentOid"],
            "{resource}"
        );
    }
    assert!(entries[1]["resource"].get("document").is_none());
    assert_eq!(entries[1]["resource"]["outcome"], "refused");

    let envelope = json!({"EXPORT_ID": "E1", "EXPORT_DTTM": "2026-03-02 02:00:00", "RECORDS": [example("apotti/SOSKU_PLAN/valid/draft-one-goal.json")]});
    let (status, body) = app.post("/exchanges/apotti-to-kanta", &envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"][0]["response"]["status"], "201");
    app.stop().await;
}
on_both!(bundles_and_envelopes_are_batches, batches);

async fn fail_closed(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    sqlx::query("DROP TABLE audit_log")
        .execute(app.store.pool())
        .await
        .expect("drop");
    let (status, body) = app.post("/exchanges/apotti-to-kanta", &decision()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["issue"][0]["details"]["coding"][0]["code"],
        "audit.unavailable"
    );
    // Nothing was accepted: no crosswalk row, no document.
    assert_eq!(
        app.store
            .count(gateway::store::Table::Documents)
            .await
            .expect("count"),
        0
    );
    app.stop().await;
}
on_both!(an_unwritable_audit_log_refuses_the_exchange, fail_closed);

async fn tampering(db: Db) {
    for (attack, expected_kind, expected_seq) in [
        (
            "UPDATE audit_log SET entry = REPLACE(entry, 'accepted', 'refused') WHERE seq = 3",
            "modified",
            3,
        ),
        ("DELETE FROM audit_log WHERE seq = 2", "deleted", 2),
        (
            "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN 1002 WHEN 3 THEN 1003 ELSE seq END WHERE seq IN (2, 3)",
            "reordered",
            4,
        ),
        (
            "UPDATE audit_log SET client_hash = 'hmac-sha256:forged' WHERE seq = 4",
            "modified",
            4,
        ),
        ("DELETE FROM audit_log WHERE seq = 5", "deleted", 5),
    ] {
        let Some(app) = TestApp::start(db).await else {
            return;
        };
        for n in 0..5 {
            let mut record = decision();
            record["DECISION"]["DECISION_ID"] = json!(format!("SD-T-{n}"));
            let (status, _) = app.post("/exchanges/apotti-to-kanta", &record).await;
            assert_eq!(status, 201);
        }
        verify_intact(&app).await;
        sqlx::query(sqlx::AssertSqlSafe(attack))
            .execute(app.store.pool())
            .await
            .expect(attack);
        let (status, body) = app.get("/audit/verify").await;
        assert_eq!(status, 409, "{attack}: {body}");
        let report: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            report["firstProblem"]["kind"], expected_kind,
            "{attack}: {report}"
        );
        assert_eq!(
            report["firstProblem"]["seq"], expected_seq,
            "{attack}: {report}"
        );
        app.stop().await;
    }
}
on_both!(tampering_is_found_and_named, tampering);

async fn swapped_and_inserted(db: Db) {
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    for n in 0..4 {
        let mut record = decision();
        record["DECISION"]["DECISION_ID"] = json!(format!("SD-S-{n}"));
        app.post("/exchanges/apotti-to-kanta", &record).await;
    }
    // Swap the contents of entries 2 and 3, keeping their numbers.
    let pool = app.store.pool();
    for statement in [
        "UPDATE audit_log SET seq = 1002 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 1002",
    ] {
        sqlx::query(statement).execute(pool).await.expect(statement);
    }
    let (_, body) = app.get("/audit/verify").await;
    let report: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["firstProblem"]["kind"], "reordered", "{report}");
    assert_eq!(report["firstProblem"]["seq"], 2, "{report}");
    app.stop().await;

    // An entry forged into the middle.
    let Some(app) = TestApp::start(db).await else {
        return;
    };
    for n in 0..4 {
        let mut record = decision();
        record["DECISION"]["DECISION_ID"] = json!(format!("SD-I-{n}"));
        app.post("/exchanges/apotti-to-kanta", &record).await;
    }
    let pool = app.store.pool();
    let row = sqlx::query("SELECT entry FROM audit_log WHERE seq = 2")
        .fetch_one(pool)
        .await
        .expect("row");
    let entry: String = sqlx::Row::try_get(&row, "entry").expect("entry");
    let forged_hash = gateway::audit::chain_hash("forged", &entry);
    sqlx::query("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3")
        .execute(pool)
        .await
        .expect("shift");
    sqlx::query("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1003")
        .execute(pool)
        .await
        .expect("shift back");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_log (seq, exchange_id, recorded_at, entry, prev_hash, entry_hash, client_hash, actor, outcome, record_type, direction) \
         SELECT 3, exchange_id, recorded_at, entry, 'forged', '{forged_hash}', client_hash, actor, outcome, record_type, direction FROM audit_log WHERE seq = 2"
    )))
    .execute(pool)
    .await
    .expect("insert");
    let (_, body) = app.get("/audit/verify").await;
    let report: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["firstProblem"]["kind"], "inserted", "{report}");
    assert_eq!(report["firstProblem"]["seq"], 3, "{report}");
    app.stop().await;
}
on_both!(
    reordered_and_inserted_entries_are_named,
    swapped_and_inserted
);

#[tokio::test]
async fn self_description_health_and_openapi() {
    let Some(app) = TestApp::start(Db::Sqlite).await else {
        return;
    };
    let (status, metadata) = app.get("/metadata").await;
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).expect("json");
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    assert!(
        metadata["profiles"]
            .as_array()
            .expect("profiles")
            .iter()
            .any(|p| p["id"] == "kanta/PAATOS_SOSKU"
                && p["hash"].as_str().is_some_and(|h| h.starts_with("sha256:")))
    );
    assert_eq!(metadata["mappings"].as_array().map(Vec::len), Some(3));
    assert_eq!(metadata["security"]["authentication"], "off");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 200);
    let (status, openapi) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let openapi: Value = serde_json::from_str(&openapi).expect("json");
    assert!(
        openapi["paths"]["/exchanges/apotti-to-kanta"]["post"].is_object(),
        "{openapi}"
    );
    assert!(openapi["paths"]["/audit/verify"]["get"].is_object());
    // Each guarded operation names the roles it allows; the open ones need nothing.
    assert_eq!(
        openapi["paths"]["/audit/entries"]["get"]["security"],
        json!([{"bearer": ["auditor"]}])
    );
    assert_eq!(
        openapi["paths"]["/$validate"]["post"]["security"],
        json!([{"bearer": ["vendor", "integrator"]}])
    );
    assert!(openapi["paths"]["/metadata"]["get"]["security"].is_null());
    assert_eq!(
        openapi["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let (status, verdict) = app.post("/$validate", &decision()).await;
    assert_eq!(status, 200);
    assert_eq!(verdict["issue"][0]["severity"], "information");
    let (status, mapped) = app.post("/$transform", &decision()).await;
    assert_eq!(status, 200, "{mapped}");
    assert_eq!(
        mapped["document"]["header"]["documentType"]["code"],
        "PAATOS_SOSKU"
    );
    // Neither stored anything.
    assert_eq!(
        app.store
            .count(gateway::store::Table::AuditLog)
            .await
            .expect("count"),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn refuses_to_listen_beyond_loopback_without_authentication() {
    let dir = tempfile::tempdir().expect("dir");
    let config = gateway::config::Config {
        listen: "0.0.0.0:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        ..gateway::config::Config::default()
    };
    let error = gateway::server::App::build(config)
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("without authentication"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_exchanges() {
    let Some(app) = TestApp::start(Db::Sqlite).await else {
        return;
    };
    let body = decisions_ndjson("SD-SHUT", 3000);
    let (client, url) = (
        app.client.clone(),
        format!("{}/exchanges/apotti-to-kanta", app.base),
    );
    let request = tokio::spawn(async move {
        let response = client
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("request");
        response.text().await.expect("body")
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let store = app.store.clone();
    app.stop().await;
    let text = request.await.expect("task");
    let answered = text
        .lines()
        .filter(|l| l.contains("\"outcome\":\"accepted\""))
        .count();
    assert_eq!(
        answered, 3000,
        "every record of the stream in flight was answered"
    );
    assert_eq!(
        store
            .count(gateway::store::Table::AuditLog)
            .await
            .expect("count"),
        3000
    );
}

#[tokio::test]
async fn limits_give_clear_answers() {
    let Some(app) = TestApp::start_with(Db::Sqlite, |config| {
        config.limits.body_bytes = 4096;
        config.limits.ndjson_line_bytes = 4096;
    })
    .await
    else {
        return;
    };
    let big = json!({"resourceType": "Bundle", "entry": vec![json!({"resource": decision()}); 8]});
    let (status, body) = app.post("/exchanges/apotti-to-kanta", &big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["issue"][0]["details"]["coding"][0]["code"],
        "input.body-too-large"
    );

    // On a stream the limit is per line: the long line is refused, the next one goes through.
    let mut stream = format!(
        "{{\"MSG_TYPE\": \"SOSKU_DECISION\", \"X\": \"{}\"}}\n",
        "x".repeat(10_000)
    );
    stream.push_str(&serde_json::to_string(&decision()).expect("json"));
    stream.push('\n');
    let response = app
        .client
        .post(format!("{}/exchanges/apotti-to-kanta", app.base))
        .header("content-type", "application/x-ndjson")
        .body(stream)
        .send()
        .await
        .expect("request");
    let lines: Vec<Value> = response
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["operationOutcome"]["issue"][0]["details"]["coding"][0]["code"],
        "input.record-too-large"
    );
    assert_eq!(lines[1]["outcome"], "accepted");
    app.stop().await;
}
