//! The database: SQLite (embedded default) or PostgreSQL (production), one code path.
//!
//! Both backends go through sqlx's `Any` driver with runtime queries written once: the SQL
//! used here (`$1` parameters, `ON CONFLICT … DO NOTHING`, `RETURNING`) means the same on
//! both. What differs lives in `migrations/sqlite` and `migrations/postgres`, and in the
//! connection set-up (SQLite: WAL with `synchronous = FULL`, so a commit is durable).
//!
//! Writers serialise on the one row of `audit_head`: every write transaction updates it first,
//! which takes SQLite's write lock or PostgreSQL's row lock, so that the audit chain, the OID
//! sequences and the crosswalk move together even with several gateway processes on one
//! PostgreSQL database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::audit::StoredEntry;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Storage errors (the caller fails closed: no exchange is accepted unaudited).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A URL names no supported database.
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    Unsupported,
}

/// A pool and its backend.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// A write transaction.
pub type Tx = Transaction<'static, Any>;

/// The crosswalk row of one source record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrosswalkRow {
    /// Set OID.
    pub set_oid: String,
    /// Latest version archived.
    pub latest_version: i64,
    /// Its document OID.
    pub latest_document: String,
    /// The EHR revision behind it.
    pub latest_revision: i64,
    /// Digest of the content behind it (empty for a reservation made by a reference).
    pub content_digest: String,
    /// The exchange that made it.
    pub exchange_id: String,
}

/// Filter of an audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Client (HMAC of the hetu).
    pub client_hash: Option<String>,
    /// Actor subject.
    pub actor: Option<String>,
    /// From (inclusive), RFC 3339.
    pub from: String,
    /// To (exclusive), RFC 3339.
    pub to: String,
    /// Outcome.
    pub outcome: Option<String>,
    /// Record type.
    pub record_type: Option<String>,
    /// Entries after this sequence number (cursor).
    pub after: i64,
    /// Page size.
    pub limit: i64,
}

impl Store {
    /// Connects and applies the migrations of the backend.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unsupported);
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations of this backend (idempotent).
    ///
    /// # Errors
    /// When a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tests that tamper with rows.
    #[must_use]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// `true` when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await.is_ok()
    }

    /// Starts a write transaction and takes the writers' lock; returns the chain head.
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin_write(&self) -> Result<(Tx, i64, String), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        Ok((tx, row.try_get("seq")?, row.try_get("hash")?))
    }

    /// The chain head.
    ///
    /// # Errors
    /// Database errors.
    pub async fn head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }

    /// Rows of the log in sequence order, from `after` (exclusive), a page at a time.
    ///
    /// # Errors
    /// Database errors.
    pub async fn log_page(&self, after: i64, limit: i64) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, entry, prev_hash, entry_hash, client_hash, actor, outcome \
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_entry).collect()
    }

    /// Entries matching a filter, in sequence order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn query_log(&self, filter: &AuditFilter) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, entry, prev_hash, entry_hash, client_hash, actor, outcome FROM audit_log \
             WHERE seq > $1 AND recorded_at >= $2 AND recorded_at < $3 \
             AND ($4 = '' OR client_hash = $4) AND ($5 = '' OR actor = $5) \
             AND ($6 = '' OR outcome = $6) AND ($7 = '' OR record_type = $7) \
             ORDER BY seq LIMIT $8",
        )
        .bind(filter.after)
        .bind(&filter.from)
        .bind(&filter.to)
        .bind(filter.client_hash.clone().unwrap_or_default())
        .bind(filter.actor.clone().unwrap_or_default())
        .bind(filter.outcome.clone().unwrap_or_default())
        .bind(filter.record_type.clone().unwrap_or_default())
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_entry).collect()
    }

    /// Entries of one exchange.
    ///
    /// # Errors
    /// Database errors.
    pub async fn entries_of_exchange(
        &self,
        exchange_id: &str,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, entry, prev_hash, entry_hash, client_hash, actor, outcome FROM audit_log \
             WHERE exchange_id = $1 ORDER BY seq",
        )
        .bind(exchange_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_entry).collect()
    }

    /// A stored document by OID.
    ///
    /// # Errors
    /// Database errors.
    pub async fn document(&self, document_oid: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT body FROM documents WHERE document_oid = $1")
            .bind(document_oid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("body")?),
            None => None,
        })
    }

    /// Counts rows of a table (for tests and health).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count(&self, table: Table) -> Result<i64, StoreError> {
        let sql = match table {
            Table::AuditLog => "SELECT COUNT(*) AS n FROM audit_log",
            Table::Crosswalk => "SELECT COUNT(*) AS n FROM crosswalk",
            Table::Documents => "SELECT COUNT(*) AS n FROM documents",
        };
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }
}

/// Tables [`Store::count`] can count.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// The audit log.
    AuditLog,
    /// The crosswalk.
    Crosswalk,
    /// Stored documents.
    Documents,
}

fn stored_entry(row: &sqlx::any::AnyRow) -> Result<StoredEntry, StoreError> {
    Ok(StoredEntry {
        seq: row.try_get("seq")?,
        entry: row.try_get("entry")?,
        prev_hash: row.try_get("prev_hash")?,
        entry_hash: row.try_get("entry_hash")?,
        client_hash: row.try_get("client_hash")?,
        actor: row.try_get("actor")?,
        outcome: row.try_get("outcome")?,
    })
}

// ---- operations inside a write transaction ----------------------------------------------

/// Appends one entry to the log.
///
/// # Errors
/// Database errors.
#[expect(clippy::too_many_arguments, reason = "one row's columns")]
pub async fn append_entry(
    tx: &mut Tx,
    seq: i64,
    exchange_id: &str,
    recorded_at: &str,
    entry: &str,
    prev_hash: &str,
    entry_hash: &str,
    columns: (&Option<String>, &str, &str, &Option<String>, &str),
) -> Result<(), StoreError> {
    let (client_hash, actor, outcome, record_type, direction) = columns;
    sqlx::query(
        "INSERT INTO audit_log (seq, exchange_id, recorded_at, entry, prev_hash, entry_hash, \
         client_hash, actor, outcome, record_type, direction) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(seq)
    .bind(exchange_id)
    .bind(recorded_at)
    .bind(entry)
    .bind(prev_hash)
    .bind(entry_hash)
    .bind(client_hash.clone())
    .bind(actor)
    .bind(outcome)
    .bind(record_type.clone())
    .bind(direction)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the chain head.
///
/// # Errors
/// Database errors.
pub async fn set_head(tx: &mut Tx, seq: i64, hash: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The crosswalk row of a source record.
///
/// # Errors
/// Database errors.
pub async fn crosswalk_get(
    tx: &mut Tx,
    source_system: &str,
    record_type: &str,
    source_id: &str,
) -> Result<Option<CrosswalkRow>, StoreError> {
    let row = sqlx::query(
        "SELECT set_oid, latest_version, latest_document, latest_revision, content_digest, exchange_id \
         FROM crosswalk WHERE source_system = $1 AND record_type = $2 AND source_id = $3",
    )
    .bind(source_system)
    .bind(record_type)
    .bind(source_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(CrosswalkRow {
            set_oid: row.try_get("set_oid")?,
            latest_version: row.try_get("latest_version")?,
            latest_document: row.try_get("latest_document")?,
            latest_revision: row.try_get("latest_revision")?,
            content_digest: row.try_get("content_digest")?,
            exchange_id: row.try_get("exchange_id")?,
        })
    })
    .transpose()
}

/// Inserts or replaces the crosswalk row of a source record.
///
/// # Errors
/// Database errors.
pub async fn crosswalk_put(
    tx: &mut Tx,
    source_system: &str,
    record_type: &str,
    source_id: &str,
    row: &CrosswalkRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crosswalk (source_system, record_type, source_id, set_oid, latest_version, \
         latest_document, latest_revision, content_digest, exchange_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (source_system, record_type, source_id) DO UPDATE SET \
         latest_version = excluded.latest_version, latest_document = excluded.latest_document, \
         latest_revision = excluded.latest_revision, content_digest = excluded.content_digest, \
         exchange_id = excluded.exchange_id",
    )
    .bind(source_system)
    .bind(record_type)
    .bind(source_id)
    .bind(&row.set_oid)
    .bind(row.latest_version)
    .bind(&row.latest_document)
    .bind(row.latest_revision)
    .bind(&row.content_digest)
    .bind(&row.exchange_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The source id of a set OID of a record type, if the crosswalk knows it.
///
/// # Errors
/// Database errors.
pub async fn crosswalk_source_id(
    tx: &mut Tx,
    record_type: &str,
    set_oid: &str,
) -> Result<Option<String>, StoreError> {
    let sql = if record_type == "case" {
        "SELECT case_id AS id FROM case_crosswalk WHERE case_oid = $1"
    } else {
        "SELECT source_id AS id FROM crosswalk WHERE set_oid = $1"
    };
    let row = sqlx::query(sql)
        .bind(set_oid)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("id")?),
        None => None,
    })
}

/// The case OID of a case id, if known.
///
/// # Errors
/// Database errors.
pub async fn case_get(
    tx: &mut Tx,
    source_system: &str,
    case_id: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT case_oid FROM case_crosswalk WHERE source_system = $1 AND case_id = $2",
    )
    .bind(source_system)
    .bind(case_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("case_oid")?),
        None => None,
    })
}

/// Records a case OID.
///
/// # Errors
/// Database errors.
pub async fn case_put(
    tx: &mut Tx,
    source_system: &str,
    case_id: &str,
    case_oid: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO case_crosswalk (source_system, case_id, case_oid) VALUES ($1, $2, $3)",
    )
    .bind(source_system)
    .bind(case_id)
    .bind(case_oid)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The next number of an OID arc (`<root>.<arc>.<year>.<n>`), starting at 1.
///
/// # Errors
/// Database errors.
pub async fn next_oid_number(
    tx: &mut Tx,
    root: &str,
    arc: i64,
    year: i64,
) -> Result<i64, StoreError> {
    sqlx::query("INSERT INTO oid_sequence (root, arc, year, next) VALUES ($1, $2, $3, 1) ON CONFLICT (root, arc, year) DO NOTHING")
        .bind(root)
        .bind(arc)
        .bind(year)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query(
        "UPDATE oid_sequence SET next = next + 1 WHERE root = $1 AND arc = $2 AND year = $3 RETURNING next",
    )
    .bind(root)
    .bind(arc)
    .bind(year)
    .fetch_one(&mut **tx)
    .await?;
    let next: i64 = row.try_get("next")?;
    Ok(next - 1)
}

/// Stores a mapped document.
///
/// # Errors
/// Database errors.
pub async fn document_put(
    tx: &mut Tx,
    document_oid: &str,
    set_oid: &str,
    version: i64,
    exchange_id: &str,
    body: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO documents (document_oid, set_oid, version, exchange_id, body) VALUES ($1, $2, $3, $4, $5)")
        .bind(document_oid)
        .bind(set_oid)
        .bind(version)
        .bind(exchange_id)
        .bind(body)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A stored document, inside a transaction.
///
/// # Errors
/// Database errors.
pub async fn document_get(tx: &mut Tx, document_oid: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT body FROM documents WHERE document_oid = $1")
        .bind(document_oid)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("body")?),
        None => None,
    })
}
