//! Group commit for the archive: one task decides and writes, so the version rules need no
//! lock, and it commits whatever documents arrived together in one transaction, so a busy
//! archive pays one fsync per batch instead of one per document. Every answer is sent only
//! after its transaction commits: a `201` still means durably archived.

use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::StoredRow;
use gateway::exchange::now_utc;

/// Most documents committed in one transaction.
const MAX_BATCH: usize = 256;

/// A valid document waiting to be archived.
#[derive(Debug)]
pub(super) struct Submission {
    pub document_oid: String,
    pub set_oid: String,
    pub version: i64,
    pub replaces: String,
    pub client: String,
    pub doc_type: String,
    pub digest: String,
    pub body: String,
    pub reply: oneshot::Sender<Decision>,
}

/// What became of a submission.
#[derive(Debug)]
pub(super) enum Decision {
    /// Archived now.
    Created(StoredRow),
    /// Already archived with the same content: the same receipt again.
    Resent(StoredRow),
    /// Already archived with other content.
    OtherContent,
    /// Not the next version of its set (replacing the latest).
    OutOfOrder {
        /// The version that would be accepted.
        expected: i64,
    },
    /// The database failed; nothing of the batch was archived.
    Unavailable,
}

/// Starts the writer; `checked` false archives everything (a [`super::Faults`] test archive).
pub(super) fn start(pool: SqlitePool, checked: bool) -> mpsc::Sender<Submission> {
    let (sender, receiver) = mpsc::channel(1024);
    tokio::spawn(run(pool, checked, receiver));
    sender
}

async fn run(pool: SqlitePool, checked: bool, mut receiver: mpsc::Receiver<Submission>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let decisions = commit(&pool, checked, &batch).await;
        for (submission, decision) in batch.into_iter().zip(decisions) {
            let _ = submission.reply.send(decision);
        }
    }
}

/// Decides every submission in order inside one transaction, then commits.
async fn commit(pool: &SqlitePool, checked: bool, batch: &[Submission]) -> Vec<Decision> {
    let unavailable = || batch.iter().map(|_| Decision::Unavailable).collect();
    let Ok(mut tx) = pool.begin().await else {
        return unavailable();
    };
    let mut decisions = Vec::with_capacity(batch.len());
    for submission in batch {
        match decide(&mut tx, checked, submission).await {
            Ok(decision) => decisions.push(decision),
            Err(_) => return unavailable(),
        }
    }
    if tx.commit().await.is_err() {
        return unavailable();
    }
    decisions
}

async fn decide(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    checked: bool,
    submission: &Submission,
) -> Result<Decision, sqlx::Error> {
    if checked {
        let stored = sqlx::query(
            "SELECT document_oid, set_oid, version, archived_at, receipt_id, digest FROM archived WHERE document_oid = ?",
        )
        .bind(&submission.document_oid)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = stored {
            let row = StoredRow {
                document_oid: row.get("document_oid"),
                set_oid: row.get("set_oid"),
                version: row.get("version"),
                archived_at: row.get("archived_at"),
                receipt_id: row.get("receipt_id"),
                digest: row.get("digest"),
            };
            return Ok(if row.digest == submission.digest {
                Decision::Resent(row)
            } else {
                Decision::OtherContent
            });
        }
        let latest = sqlx::query(
            "SELECT document_oid, version FROM archived WHERE set_oid = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(&submission.set_oid)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| (r.get::<String, _>("document_oid"), r.get::<i64, _>("version")));
        let in_order = match &latest {
            None => submission.version == 1,
            Some((latest_oid, latest_version)) => {
                submission.version == latest_version + 1 && submission.replaces == *latest_oid
            }
        };
        if !in_order {
            return Ok(Decision::OutOfOrder {
                expected: latest.as_ref().map_or(1, |(_, v)| v + 1),
            });
        }
    }
    let row = StoredRow {
        document_oid: submission.document_oid.clone(),
        set_oid: submission.set_oid.clone(),
        version: submission.version,
        archived_at: now_utc(),
        receipt_id: uuid::Uuid::new_v4().to_string(),
        digest: submission.digest.clone(),
    };
    sqlx::query(
        "INSERT INTO archived (document_oid, set_oid, version, client, doc_type, archived_at, receipt_id, digest, body) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.document_oid)
    .bind(&row.set_oid)
    .bind(row.version)
    .bind(&submission.client)
    .bind(&submission.doc_type)
    .bind(&row.archived_at)
    .bind(&row.receipt_id)
    .bind(&row.digest)
    .bind(&submission.body)
    .execute(&mut **tx)
    .await?;
    Ok(Decision::Created(row))
}
