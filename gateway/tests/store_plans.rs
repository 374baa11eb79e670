//! Query plans the writer's speed depends on (PostgreSQL only; SQLite plans by its indexes).
//!
//! The writer reads each batch's crosswalk rows with `source_id IN (…)` lists of up to 1 024
//! values. On a table PostgreSQL has no statistics for yet (every new database, for its first
//! minute or more), such a list is planned as a scan of the whole table, for every batch: the
//! stream then slows as the crosswalk grows. The writer's transactions set
//! `enable_seqscan = off` ([`store::look_up_by_index`]), and this test keeps that true.

mod common;

use common::Db;
use gateway::store::{self, Store};
use sqlx::Row;

/// The plan of the writer's crosswalk read for 1 024 source ids, in `tx`.
async fn plan_of_crosswalk_read(tx: &mut store::Tx) -> String {
    let placeholders: Vec<String> = (1..=1024).map(|n| format!("${n}")).collect();
    let sql = format!(
        "EXPLAIN SELECT source_system, record_type, source_id, set_oid FROM crosswalk \
         WHERE source_id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for n in 0..1024 {
        query = query.bind(format!("SD-PLAN-{}", n * 7));
    }
    let rows = query.fetch_all(&mut **tx).await.expect("explain");
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).expect("plan line"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_writers_crosswalk_read_goes_through_the_index_before_any_statistics() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = common::fresh_database(Db::Postgres, dir.path()).await else {
        eprintln!("SKIPPED: this plan is PostgreSQL's; SQLite has no such setting to check");
        return;
    };
    let store = Store::connect(&url).await.expect("store");
    sqlx::query(
        "INSERT INTO crosswalk (source_system, record_type, source_id, set_oid, latest_version, \
         latest_document, latest_revision, content_digest, exchange_id) \
         SELECT 'APOTTI', 'decision', 'SD-PLAN-' || n, '1.2.246.10.99.13.2026.' || n, 1, \
         '1.2.246.10.99.13.2026.' || n, 1, 'sha256:00', 'ex-' || n \
         FROM generate_series(1, 20000) AS n",
    )
    .execute(store.pool())
    .await
    .expect("rows");

    let mut plain = store.begin_read().await.expect("read");
    let unguided = plan_of_crosswalk_read(&mut plain).await;
    plain.rollback().await.expect("end");
    assert!(
        unguided.contains("Seq Scan on crosswalk"),
        "the case this guards against: without statistics PostgreSQL scans the table \
         (if this changes, the setting may no longer be needed):\n{unguided}"
    );

    let mut read = store.begin_read().await.expect("read");
    store::look_up_by_index(store.backend(), &mut read)
        .await
        .expect("set");
    let guided = plan_of_crosswalk_read(&mut read).await;
    read.rollback().await.expect("end");
    assert!(
        guided.contains("crosswalk_pkey") && !guided.contains("Seq Scan"),
        "the writer's read goes through the primary key:\n{guided}"
    );

    let mut after = store.begin_read().await.expect("read");
    let later = plan_of_crosswalk_read(&mut after).await;
    after.rollback().await.expect("end");
    assert_eq!(
        later, unguided,
        "the setting ended with its transaction (auditors' queries plan as before)"
    );
}
