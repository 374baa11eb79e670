//! A batch's rows are stored the same whether written in one statement (PostgreSQL's way) or
//! table by table (SQLite's, and PostgreSQL's for a batch too large for one statement): new
//! rows, and rows updated by key (a crosswalk row's next version, an OID sequence).

mod common;

use common::Db;
use gateway::store::{self, BatchRows, CrosswalkRow, DocumentRow, EntryRow, KeyedCrosswalk, Store};

const SET: &str = "1.2.246.10.99.13.2026.1";

/// What one batch writes; batch 2 makes version 2 of batch 1's record.
struct Batch {
    documents: Vec<DocumentRow>,
    crosswalk: Vec<KeyedCrosswalk>,
    cases: Vec<(String, String, String)>,
    sequences: Vec<(String, i64, i64, i64)>,
    entries: Vec<EntryRow>,
    head: (i64, String),
}

fn batch(version: i64) -> Batch {
    let document_oid = format!("1.2.246.10.99.13.2026.{version}");
    let exchange_id = format!("ex-{version}");
    let entry = |seq: i64, outcome: &str, client: Option<&str>| EntryRow {
        seq,
        exchange_id: exchange_id.clone(),
        recorded_at: format!("2026-12-01T20:00:0{seq}Z"),
        entry: format!(r#"{{"seq":{seq},"note":"Åke Testinen"}}"#),
        prev_hash: format!("sha256:{:02}", seq - 1),
        entry_hash: format!("sha256:{seq:02}"),
        client_hash: client.map(str::to_owned),
        actor: "local".to_owned(),
        outcome: outcome.to_owned(),
        record_type: (outcome == "accepted").then(|| "decision".to_owned()),
        direction: "apotti-to-kanta".to_owned(),
    };
    let first_seq = 2 * version - 1;
    Batch {
        documents: vec![DocumentRow {
            document_oid: document_oid.clone(),
            set_oid: SET.to_owned(),
            version,
            exchange_id: exchange_id.clone(),
            body: format!(r#"{{"header":{{"version":{version}}},"note":"Åke Testinen"}}"#).into(),
            packed: None,
        }],
        crosswalk: vec![KeyedCrosswalk {
            source_system: "APOTTI".to_owned(),
            record_type: "decision".to_owned(),
            source_id: "SD-BATCH-1".to_owned(),
            row: CrosswalkRow {
                set_oid: SET.to_owned(),
                latest_version: version,
                latest_document: document_oid,
                latest_revision: version,
                content_digest: format!("sha256:{version:02}"),
                exchange_id: exchange_id.clone(),
            },
        }],
        cases: vec![(
            "APOTTI".to_owned(),
            format!("CASE-{version}"),
            format!("1.2.246.10.99.14.2026.{version}"),
        )],
        sequences: vec![("1.2.246.10.99".to_owned(), 13, 2026, version + 1)],
        entries: vec![
            entry(first_seq, "accepted", Some("hmac-sha256:aa")),
            entry(first_seq + 1, "refused", None),
        ],
        head: (first_seq + 1, format!("sha256:{:02}", first_seq + 1)),
    }
}

/// Every stored row, one text per row, in key order.
const TABLES: &[&str] = &[
    "SELECT document_oid || '|' || set_oid || '|' || CAST(version AS TEXT) || '|' || exchange_id \
     FROM documents ORDER BY 1",
    "SELECT document_oid || '|' || exchange_id || '|' || set_oid || '|' || CAST(version AS TEXT) \
     || '|' || status || '|' || CAST(attempts AS TEXT) || '|' || next_attempt_at \
     FROM outbox ORDER BY 1",
    "SELECT source_system || '|' || record_type || '|' || source_id || '|' || set_oid || '|' \
     || CAST(latest_version AS TEXT) || '|' || latest_document || '|' \
     || CAST(latest_revision AS TEXT) || '|' || content_digest || '|' || exchange_id \
     FROM crosswalk ORDER BY 1",
    "SELECT source_system || '|' || case_id || '|' || case_oid FROM case_crosswalk ORDER BY 1",
    "SELECT root || '|' || CAST(arc AS TEXT) || '|' || CAST(year AS TEXT) || '|' \
     || CAST(next AS TEXT) FROM oid_sequence ORDER BY 1",
    "SELECT CAST(seq AS TEXT) || '|' || exchange_id || '|' || recorded_at || '|' || entry || '|' \
     || prev_hash || '|' || entry_hash || '|' || COALESCE(client_hash, '-') || '|' || actor \
     || '|' || outcome || '|' || COALESCE(record_type, '-') || '|' || direction \
     FROM audit_log ORDER BY seq",
    "SELECT CAST(seq AS TEXT) || '|' || hash FROM audit_head",
];

async fn write(store: &Store, batch: &Batch, in_one_statement: bool) {
    let backend = store.backend();
    let rows = BatchRows {
        documents: &batch.documents,
        now: "2026-12-01T20:00:00Z",
        crosswalk: &batch.crosswalk,
        cases: &batch.cases,
        sequences: &batch.sequences,
        entries: &batch.entries,
        head: (batch.head.0, &batch.head.1),
    };
    let (mut tx, _, _) = store.begin_write().await.expect("write");
    if in_one_statement {
        store::write_batch(backend, &mut tx, rows).await
    } else {
        store::write_batch_table_by_table(backend, &mut tx, rows).await
    }
    .expect("batch written");
    tx.commit().await.expect("commit");
}

/// Batch 1 table by table, then batch 2 the way under test; every table's rows and the
/// documents' bodies.
async fn stored(db: Db, in_one_statement: bool) -> Option<Vec<Vec<String>>> {
    let dir = tempfile::tempdir().expect("dir");
    let url = common::fresh_database(db, dir.path()).await?;
    let store = Store::connect(&url).await.expect("store");
    write(&store, &batch(1), false).await;
    write(&store, &batch(2), in_one_statement).await;
    let mut tables = Vec::new();
    for sql in TABLES {
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(*sql))
            .fetch_all(store.pool())
            .await
            .expect(sql);
        tables.push(rows.into_iter().map(|(row,)| row).collect());
    }
    let mut bodies = Vec::new();
    for version in 1..=2 {
        let oid = format!("1.2.246.10.99.13.2026.{version}");
        bodies.push(
            store
                .document(&oid)
                .await
                .expect("read")
                .unwrap_or_default(),
        );
    }
    tables.push(bodies);
    Some(tables)
}

async fn the_same_either_way(db: Db) {
    let (Some(one), Some(by_table)) = (stored(db, true).await, stored(db, false).await) else {
        return;
    };
    assert_eq!(one, by_table);
    let counts: Vec<usize> = one.iter().map(Vec::len).collect();
    assert_eq!(counts, [2, 2, 1, 2, 1, 4, 1, 2], "{one:#?}");
    assert!(
        one[2][0].contains("|2|1.2.246.10.99.13.2026.2|2|"),
        "the crosswalk row is at version 2: {}",
        one[2][0]
    );
    assert_eq!(
        one[4][0], "1.2.246.10.99|13|2026|3",
        "the sequence moved on"
    );
    assert_eq!(one[6][0], "4|sha256:04", "the chain head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_a_batch_the_same_in_one_statement_or_table_by_table() {
    the_same_either_way(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_a_batch_the_same_in_one_statement_or_table_by_table() {
    the_same_either_way(Db::Postgres).await;
}
