//! Upgrades keep what is stored: a database made by an earlier release, with rows in it, is
//! migrated by the current one and every row is still found the way the writer and the
//! delivery worker look it up. On SQLite and on PostgreSQL.

mod common;

use std::borrow::Cow;

use common::Db;
use gateway::store::{self, CrosswalkRow, KeyedCrosswalk, Store, Table};
use sqlx::Executor;

/// Migrations up to and including `last`, as an earlier release applied them.
fn migrator_up_to(db: Db, last: i64) -> sqlx::migrate::Migrator {
    let mut migrator = match db {
        Db::Sqlite => sqlx::migrate!("../migrations/sqlite"),
        Db::Postgres => sqlx::migrate!("../migrations/postgres"),
    };
    migrator.migrations = Cow::Owned(
        migrator
            .migrations
            .iter()
            .filter(|migration| migration.version <= last)
            .cloned()
            .collect(),
    );
    migrator
}

/// Rows as release 4 wrote them: one record with its case and its pending delivery.
const ROWS_OF_RELEASE_4: &str = "\
    INSERT INTO crosswalk (source_system, record_type, source_id, set_oid, latest_version, \
        latest_document, latest_revision, content_digest, exchange_id) \
        VALUES ('APOTTI', 'decision', 'SD-UPGRADE-1', '1.2.246.10.99.13.2026.1', 2, \
        '1.2.246.10.99.13.2026.2', 2, 'sha256:00', 'ex-2'); \
    INSERT INTO case_crosswalk (source_system, case_id, case_oid) \
        VALUES ('APOTTI', 'CASE-UPGRADE-1', '1.2.246.10.99.14.2026.1'); \
    INSERT INTO documents (document_oid, set_oid, version, exchange_id, body) \
        VALUES ('1.2.246.10.99.13.2026.2', '1.2.246.10.99.13.2026.1', 2, 'ex-2', \
        '{\"header\":{\"version\":2},\"body\":{\"note\":\"Åke Testinen\"}}'); \
    INSERT INTO outbox (document_oid, exchange_id, set_oid, version, status, attempts, \
        next_attempt_at) VALUES ('1.2.246.10.99.13.2026.2', 'ex-2', '1.2.246.10.99.13.2026.1', \
        2, 'pending', 0, '2026-12-01T00:00:00Z');";

/// The document body in [`ROWS_OF_RELEASE_4`], stored as text.
const BODY_OF_RELEASE_4: &str = r#"{"header":{"version":2},"body":{"note":"Åke Testinen"}}"#;

/// A crosswalk row of a decision in the set `1.2.246.10.99.13.2026.1`; `stored` says whether
/// its writer saw the key in the database.
fn decision_version(
    source_id: &str,
    version: i64,
    document_oid: &str,
    stored: bool,
) -> KeyedCrosswalk {
    KeyedCrosswalk {
        source_system: "APOTTI".to_owned(),
        record_type: "decision".to_owned(),
        source_id: source_id.to_owned(),
        row: CrosswalkRow {
            set_oid: "1.2.246.10.99.13.2026.1".to_owned(),
            latest_version: version,
            latest_document: document_oid.to_owned(),
            latest_revision: version,
            content_digest: format!("sha256:{version:02}"),
            exchange_id: format!("ex-{version}"),
        },
        stored,
    }
}

async fn upgrade_from_release_4(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = common::fresh_database(db, dir.path()).await else {
        return;
    };
    sqlx::any::install_default_drivers();
    let old = sqlx::AnyPool::connect(&url).await.expect("connect");
    migrator_up_to(db, 4)
        .run(&old)
        .await
        .expect("release 4's migrations");
    old.execute(ROWS_OF_RELEASE_4)
        .await
        .expect("release 4's rows");
    old.close().await;

    let store = Store::connect(&url).await.expect("upgrade");
    let backend = store.backend();
    let mut tx = store.begin_read().await.expect("read");
    let by_id = store::load_crosswalk(backend, &mut tx, &["SD-UPGRADE-1".to_owned()], &[])
        .await
        .expect("crosswalk by source id");
    assert_eq!(by_id.len(), 1, "the record is found by its source id");
    assert_eq!(by_id[0].row.latest_version, 2);
    assert_eq!(by_id[0].row.latest_document, "1.2.246.10.99.13.2026.2");
    let by_set = store::load_crosswalk(
        backend,
        &mut tx,
        &[],
        &["1.2.246.10.99.13.2026.1".to_owned()],
    )
    .await
    .expect("crosswalk by set");
    assert_eq!(by_set.len(), 1, "the record is found by its set OID");
    let cases = store::load_cases(backend, &mut tx, &["CASE-UPGRADE-1".to_owned()], &[])
        .await
        .expect("cases");
    assert_eq!(
        cases,
        vec![(
            "APOTTI".to_owned(),
            "CASE-UPGRADE-1".to_owned(),
            "1.2.246.10.99.14.2026.1".to_owned()
        )]
    );
    tx.rollback().await.expect("end read");

    let pending = store.deliveries("pending", 10).await.expect("outbox");
    assert_eq!(pending.len(), 1, "the pending delivery survives");
    assert_eq!(pending[0].document_oid, "1.2.246.10.99.13.2026.2");

    // A body stored as text before documents were packed is read as it was written, beside a
    // document written now (packed).
    let due = store
        .due_deliveries_with_documents("2027-01-01T00:00:00Z", 10)
        .await
        .expect("due deliveries");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1, BODY_OF_RELEASE_4, "the delivery worker reads it");
    let new_body = r#"{"header":{"version":3},"body":{"note":"Åke Testinen, täydennetty"}}"#;
    let (mut tx, _, _) = store.begin_write().await.expect("write");
    let packed = gateway::document_codec::pack(new_body);
    assert!(packed.is_some(), "the document packs");
    store::write_documents(
        &mut tx,
        &[store::DocumentRow {
            document_oid: "1.2.246.10.99.13.2026.3".to_owned(),
            set_oid: "1.2.246.10.99.13.2026.1".to_owned(),
            version: 3,
            exchange_id: "ex-3".to_owned(),
            body: new_body.into(),
            packed,
        }],
    )
    .await
    .expect("write a document");
    tx.commit().await.expect("commit");
    let stored_packed = match backend {
        store::Backend::Sqlite => {
            "SELECT CAST(typeof(body) = 'blob' AS BIGINT) FROM documents WHERE document_oid = $1"
        }
        store::Backend::Postgres => {
            "SELECT CAST(CASE WHEN body IS NULL AND packed IS NOT NULL THEN 1 ELSE 0 END \
             AS BIGINT) FROM documents WHERE document_oid = $1"
        }
    };
    for (oid, packed) in [
        ("1.2.246.10.99.13.2026.2", 0),
        ("1.2.246.10.99.13.2026.3", 1),
    ] {
        let (found,): (i64,) = sqlx::query_as(stored_packed)
            .bind(oid)
            .fetch_one(store.pool())
            .await
            .expect("stored form");
        assert_eq!(found, packed, "{oid}: 1 when stored packed");
    }
    let oids = ["1.2.246.10.99.13.2026.2", "1.2.246.10.99.13.2026.3"].map(str::to_owned);
    let mut tx = store.begin_read().await.expect("read");
    let mut loaded = store::load_documents(backend, &mut tx, &oids)
        .await
        .expect("documents for resends");
    tx.rollback().await.expect("end read");
    loaded.sort();
    assert_eq!(
        loaded,
        vec![
            (oids[0].clone(), BODY_OF_RELEASE_4.to_owned()),
            (oids[1].clone(), new_body.to_owned())
        ]
    );
    for (oid, body) in [(&oids[0], BODY_OF_RELEASE_4), (&oids[1], new_body)] {
        assert_eq!(
            store.document(oid).await.expect("document").as_deref(),
            Some(body),
            "the document route reads {oid}"
        );
    }

    // A writer that did not see the stored row cannot overwrite it.
    let unseen = decision_version("SD-UPGRADE-1", 3, "1.2.246.10.99.13.2026.3", false);
    assert!(
        crosswalk_write_fails(&store, unseen).await,
        "a key written as new that is taken fails the batch"
    );
    // The key still identifies one row: writing it again updates it in place.
    let (mut tx, _, _) = store.begin_write().await.expect("write");
    let revised = decision_version("SD-UPGRADE-1", 3, "1.2.246.10.99.13.2026.3", true);
    store::write_crosswalk(&mut tx, &[revised])
        .await
        .expect("upsert");
    tx.commit().await.expect("commit");
    assert_eq!(store.count(Table::Crosswalk).await.expect("count"), 1);
    // And a second record cannot take the same set OID.
    let thief = decision_version("SD-UPGRADE-2", 1, "1.2.246.10.99.13.2026.9", false);
    assert!(
        crosswalk_write_fails(&store, thief).await,
        "set OIDs stay unique"
    );
}

/// Whether writing `row` in a write transaction of its own fails (the transaction is then
/// rolled back).
async fn crosswalk_write_fails(store: &Store, row: KeyedCrosswalk) -> bool {
    let (mut tx, _, _) = store.begin_write().await.expect("write");
    let failed = store::write_crosswalk(&mut tx, &[row]).await.is_err();
    tx.rollback().await.expect("rollback");
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_of_release_4_is_upgraded_with_its_rows() {
    upgrade_from_release_4(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_database_of_release_4_is_upgraded_with_its_rows() {
    upgrade_from_release_4(Db::Postgres).await;
}

/// Every text column of every index on PostgreSQL compares byte by byte (collation "C"), so
/// that no index depends on the server's locale: a collation that changes with the operating
/// system's C library (as glibc 2.28's did) silently misorders such an index, and a
/// language's collation costs a locale call per comparison on every insert. SQLite compares
/// text byte by byte already. A later migration that indexes a text column without
/// `COLLATE "C"` fails here.
#[tokio::test]
async fn postgres_indexes_compare_text_byte_by_byte() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = common::fresh_database(Db::Postgres, dir.path()).await else {
        eprintln!("SKIPPED: index collations are PostgreSQL's; SQLite compares bytes");
        return;
    };
    let store = Store::connect(&url).await.expect("store");
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, x.relname::text, a.attname::text, co.collname::text \
         FROM pg_index i \
         JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_class x ON x.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[]) AS k(attnum, coll) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         JOIN pg_collation co ON co.oid = k.coll \
         WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations' \
         ORDER BY 1, 2, 3",
    )
    .fetch_all(store.pool())
    .await
    .expect("index columns");
    let tables: std::collections::BTreeSet<&str> =
        columns.iter().map(|(table, ..)| table.as_str()).collect();
    for table in [
        "audit_log",
        "case_crosswalk",
        "crosswalk",
        "documents",
        "outbox",
    ] {
        assert!(
            tables.contains(table),
            "{table}'s indexes were found (text columns: {columns:?})"
        );
    }
    let by_locale: Vec<_> = columns
        .iter()
        .filter(|(.., collation)| collation != "C")
        .collect();
    assert!(
        by_locale.is_empty(),
        "indexed text columns under a locale's collation (table, index, column, collation): \
         {by_locale:?}"
    );
}
