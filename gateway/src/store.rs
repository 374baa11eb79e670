//! The database: SQLite (embedded default) or PostgreSQL (production), one code path.
//!
//! Both backends go through sqlx's `Any` driver with runtime queries written once: the SQL
//! used here (`$1` parameters, `ON CONFLICT … DO NOTHING`, `RETURNING`) means the same on
//! both. What differs lives in `migrations/sqlite` and `migrations/postgres`, in the
//! connection set-up (SQLite: WAL with `synchronous = FULL`, so a commit is durable), and in
//! how the writer appends a batch's rows: on PostgreSQL with `COPY` on a native connection
//! ([`WriteTx`], `store/copy_in.rs`), since the `Any` driver has none.
//!
//! Writers serialise on the one row of `audit_head`: every write transaction updates it first,
//! which takes SQLite's write lock or PostgreSQL's row lock, so that the audit chain, the OID
//! sequences and the crosswalk move together even with several gateway processes on one
//! PostgreSQL database.

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Any, AnyPool, Executor, PgPool, Postgres, Row, Transaction};

use crate::audit::StoredEntry;

mod copy_in;

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
    /// A SQLite checkpoint could not finish (another checkpoint, or a writer or reader that
    /// stayed past the busy timeout); the next one tries again.
    #[error("checkpoint busy")]
    Busy,
    /// A stored document could not be read back.
    #[error(transparent)]
    Document(#[from] crate::document_codec::CodecError),
    /// A value longer than PostgreSQL's `COPY` can carry (2 GiB).
    #[error("a value of {0} bytes is too long to store")]
    FieldTooLong(usize),
}

/// A pool and its backend.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// PostgreSQL: the writer's native connection, for `COPY` ([`WriteTx::Postgres`]).
    postgres_writer: Option<PgPool>,
}

/// A transaction through the `Any` driver.
pub type Tx = Transaction<'static, Any>;

/// A write transaction, holding the writers' lock (the chain head) until it ends.
pub enum WriteTx {
    /// SQLite, through the `Any` driver: the batch's reads and writes in one transaction.
    Sqlite(Tx),
    /// PostgreSQL on a native connection, so that appended rows go in with `COPY`
    /// (`store/copy_in.rs`). The batch's reads under the lock are made in a read transaction
    /// of their own (the writer's `read_locked`).
    Postgres(Transaction<'static, Postgres>),
}

/// Executes `$query` in the write transaction `$tx`. The query is written once and built in
/// each arm: the two drivers' queries are different types.
macro_rules! execute_in {
    ($tx:expr, $query:expr) => {
        match $tx {
            WriteTx::Sqlite(tx) => {
                $query.execute(&mut **tx).await?;
            }
            WriteTx::Postgres(tx) => {
                $query.execute(&mut **tx).await?;
            }
        }
    };
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "WriteTx::Sqlite",
            Self::Postgres(_) => "WriteTx::Postgres",
        })
    }
}

impl WriteTx {
    /// The database it writes to.
    #[must_use]
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The transaction, when reads can be made in it.
    pub fn reads(&mut self) -> Option<&mut Tx> {
        match self {
            Self::Sqlite(tx) => Some(tx),
            Self::Postgres(_) => None,
        }
    }

    /// Commits.
    ///
    /// # Errors
    /// Database errors.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Rolls back.
    ///
    /// # Errors
    /// Database errors.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.rollback().await?,
            Self::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

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
        let store = Self::connect_without_checkpoints(url).await?;
        if store.backend == Backend::Sqlite {
            tokio::spawn(checkpoint_regularly(store.pool.clone()));
        }
        Ok(store)
    }

    /// [`Store::connect`] without SQLite's background checkpoints (tests drive them).
    async fn connect_without_checkpoints(url: &str) -> Result<Self, StoreError> {
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
                        // Checkpoints run in the background (below), not inside a commit,
                        // so that no exchange waits for one. A batch of 1 024 exchanges
                        // dirties several MB of pages: with SQLite's default 2 MB cache they
                        // spill to the WAL in the middle of the transaction and are written
                        // again at commit, so the cache is 64 MB per connection. Statement
                        // journals (multi-row inserts) stay in memory.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
                             PRAGMA wal_autocheckpoint = 0; \
                             PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}; \
                             PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;"
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // One connection, opened at the first write (commands that only read never open it):
        // the writer holds one write transaction at a time.
        let postgres_writer = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy_with(PgConnectOptions::from_str(url)?),
            ),
        };
        let store = Self {
            pool,
            backend,
            postgres_writer,
        };
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

    /// A transaction that only reads and takes no lock: the writer reads the next batch with
    /// it while the batch before is being committed (SQLite: one snapshot for all its reads).
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Starts a write transaction and takes the writers' lock; returns the chain head.
    ///
    /// The lock (the head row, updated to itself) and the head it guards come back from one
    /// statement: every batch takes the lock right after the batch before commits, with the
    /// next batch already decided, so each round trip here is time the writer waits. Once the
    /// lock is granted the statement returns the head as last committed, as a separate read
    /// after it would (PostgreSQL re-reads a row it waited for; SQLite has one writer).
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin_write(&self) -> Result<(WriteTx, i64, String), StoreError> {
        const LOCK: &str = "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash";
        if let Some(pool) = &self.postgres_writer {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(LOCK).fetch_one(&mut *tx).await?;
            let (seq, hash) = (row.try_get("seq")?, row.try_get("hash")?);
            return Ok((WriteTx::Postgres(tx), seq, hash));
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(LOCK).fetch_one(&mut *tx).await?;
        let (seq, hash) = (row.try_get("seq")?, row.try_get("hash")?);
        Ok((WriteTx::Sqlite(tx), seq, hash))
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
        let sql = format!(
            "SELECT {} FROM documents WHERE document_oid = $1",
            body_column(self.backend)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(document_oid)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(read_body(self.backend, &row)?)),
            None => Ok(None),
        }
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

/// How long a SQLite connection waits for a lock (the `busy_timeout` every connection sets).
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// Frames (4 KB pages) the write-ahead log may hold before a checkpoint waits for a gap
/// between write transactions to start the log again from its beginning.
const WAL_RESTART_FRAMES: i64 = 32 * 1024;

/// The size a write-ahead log file is trimmed to when it starts over: the frames above.
const WAL_LIMIT_BYTES: i64 = WAL_RESTART_FRAMES * 4096;

/// Up to this many times [`WAL_RESTART_FRAMES`], a restarting checkpoint only takes a gap that
/// is there when it looks (no writer, no reader); above it, it waits for one.
const WAL_WAIT_FACTOR: i64 = 4;

/// Moves the SQLite write-ahead log into the database file every tenth of a second, off the
/// writers' path (a passive checkpoint never takes their lock).
///
/// Often, so that each checkpoint has little to copy: a checkpoint ends with an fsync of the
/// database file, and a commit's fsync of the log on the same disk waits behind it. Every
/// half second, those fsyncs carried about 9 MB and stalled commits by 40 – 120 ms at
/// 1 000 single exchanges/s, the p99; every tenth of a second the p99 after a burst fell from
/// 38 – 211 ms to 22 – 29 ms (`cargo bench --bench load`, alternately).
///
/// A passive checkpoint copies frames but never starts the log over: SQLite does that only
/// when a write begins after everything has been copied, which a steady stream of batches
/// never allows. Under a long stream the log grew by about 130 MB/s, without bound. So when it
/// holds more than [`WAL_RESTART_FRAMES`], a `RESTART` checkpoint copies what is left and
/// starts the log over when no transaction is being written or read, and the log stays near
/// 128 MB (`journal_size_limit` trims a longer file when it restarts). See
/// [`checkpoint_once`] for when it waits for such a gap.
async fn checkpoint_regularly(pool: AnyPool) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        checkpoint_once(&pool, WAL_RESTART_FRAMES).await;
    }
}

/// One passive checkpoint, and a restarting one when the log holds more than
/// `restart_above` frames. Failures are only logged: the next tick tries again.
///
/// The restart first only takes a gap that is there: one that waits for a gap holds every
/// writer back meanwhile, and at 1 000 single exchanges/s, whose small batches grow the log
/// past 128 MB in seconds, such waits (up to a quarter of a second) mostly ended busy anyway.
/// Only a log [`WAL_WAIT_FACTOR`] times longer waits for one, so the log stays bounded.
async fn checkpoint_once(pool: &AnyPool, restart_above: i64) {
    match checkpoint(pool, Checkpoint::Passive).await {
        Ok(frames) if frames > restart_above => {
            let wait = frames > restart_above.saturating_mul(WAL_WAIT_FACTOR);
            if let Err(error) = checkpoint(pool, Checkpoint::Restart { wait }).await {
                tracing::debug!(%error, wait, "restarting checkpoint skipped");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "checkpoint skipped"),
    }
}

/// The two SQLite checkpoint modes the gateway uses.
#[derive(Debug, Clone, Copy)]
enum Checkpoint {
    /// Copies what it can and never waits.
    Passive,
    /// Copies everything and starts the log over, when there is no writer and no reader;
    /// `wait`: waits a while for that, holding new writers back.
    Restart { wait: bool },
}

/// Runs a checkpoint; returns the frames the log held.
///
/// A restarting checkpoint holds new writers back while it waits for the readers to move on,
/// for as long as the connection's busy timeout: 10 s would let one long reader (an audit
/// export) stall every exchange. One that waits does so a quarter of a second at most, one
/// that does not gives up at once; either tries again on a later tick.
async fn checkpoint(pool: &AnyPool, mode: Checkpoint) -> Result<i64, StoreError> {
    let mut conn = pool.acquire().await?;
    let row = match mode {
        Checkpoint::Passive => {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut *conn)
                .await
        }
        Checkpoint::Restart { wait } => {
            conn.execute(if wait {
                "PRAGMA busy_timeout = 250"
            } else {
                "PRAGMA busy_timeout = 0"
            })
            .await?;
            let row = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                .fetch_one(&mut *conn)
                .await;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"
            )))
            .await?;
            row
        }
    }?;
    let (busy, frames): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if busy != 0 || frames < 0 {
        return Err(StoreError::Busy);
    }
    Ok(frames)
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

/// Moves the chain head.
///
/// # Errors
/// Database errors.
pub async fn set_head(tx: &mut WriteTx, seq: i64, hash: &str) -> Result<(), StoreError> {
    const SET: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
    execute_in!(tx, sqlx::query(SET).bind(seq).bind(hash));
    Ok(())
}

// ---- set-based operations: a few statements per batch, whatever its size ------------------

/// Rows per multi-row statement (or values per `IN` list): every statement stays under its
/// database's parameter limit (SQLite 32 766, PostgreSQL 65 535; the widest row binds 11).
///
/// On PostgreSQL a whole batch of the writer (2 048 exchanges by default) is read with one
/// statement per table, and its updates (crosswalk keys already stored, OID sequences) are
/// one statement each: each statement is a round trip and a plan. (Its new rows go in with
/// `COPY`, `store/copy_in.rs`.) When the writes were multi-row `INSERT`s too, 200 rows each
/// made a batch's write take 92 – 99 ms (median per batch of 1 024,
/// `RUST_LOG=gateway::writer=debug`), and 1 024 rows 73 – 87 ms, run alternately. On SQLite,
/// which runs in the process, the size made no difference the stream could show, so it stays
/// at 200.
fn chunk_rows(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 200,
        Backend::Postgres => 1024,
    }
}

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` columns (PostgreSQL), or the same
/// with `?` (SQLite, which would otherwise look every `$n` up by name: quadratic in a batch).
fn value_rows(backend: Backend, rows: usize, columns: usize) -> String {
    value_rows_then(backend, rows, columns, "")
}

/// [`value_rows`] with `literals` (SQL constants, e.g. `'pending', 0`) after each row's
/// parameters: a value that every row shares is written once into the statement instead of
/// being bound (and, through `sqlx`'s `Any` driver, copied) once per row.
fn value_rows_then(backend: Backend, rows: usize, columns: usize, literals: &str) -> String {
    let mut sql = String::with_capacity(rows * (columns * 7 + literals.len() + 4));
    let mut number = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            number += 1;
            push_placeholder(&mut sql, backend, number);
        }
        if !literals.is_empty() {
            sql.push_str(", ");
            sql.push_str(literals);
        }
        sql.push(')');
    }
    sql
}

/// `$1, $2, …` (or `?, ?, …` on SQLite) for an IN list.
fn list(backend: Backend, count: usize) -> String {
    let mut sql = String::with_capacity(count * 7);
    for number in 1..=count {
        if number > 1 {
            sql.push_str(", ");
        }
        push_placeholder(&mut sql, backend, number);
    }
    sql
}

/// Appends the `number`th parameter's placeholder, without a string of its own per
/// placeholder (a batch's statements have some 30 000 of them).
fn push_placeholder(sql: &mut String, backend: Backend, number: usize) {
    match backend {
        Backend::Sqlite => sql.push('?'),
        Backend::Postgres => {
            // Writing into a `String` cannot fail.
            let _ = write!(sql, "${number}");
        }
    }
}

/// A crosswalk row with its key.
#[derive(Debug, Clone)]
pub struct KeyedCrosswalk {
    /// Source system.
    pub source_system: String,
    /// Record type (crosswalk kind).
    pub record_type: String,
    /// Source id.
    pub source_id: String,
    /// The row.
    pub row: CrosswalkRow,
    /// Whether the key has a row in the database by the time this one is written (it was read
    /// from there, or a batch committed before wrote it). Such rows are updated; the others
    /// are inserted, and an insert that finds its key taken fails the batch instead of
    /// overwriting a row its writer did not see.
    pub stored: bool,
}

/// Makes the rest of `tx` find rows through their indexes, on PostgreSQL.
///
/// The writer reads a batch's rows by key with `IN` lists of up to 1 024 values. On a column
/// that is not unique by itself (`crosswalk.source_id` leads a three-column key) and before
/// `ANALYZE` has run, PostgreSQL guesses that each value matches 1 in 200 rows, so a long list
/// matches the whole table and it scans the table, for every batch: 12 – 20 ms per batch with
/// 80 000 rows stored, growing with the table, against 2 ms through the index. Even with
/// statistics the default `random_page_cost` (priced for spinning disks) chose the scan. The
/// setting lasts until the transaction ends, and no statement the writer runs needs a scan.
///
/// # Errors
/// Database errors.
pub async fn look_up_by_index(backend: Backend, tx: &mut Tx) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Rows of `select … WHERE {column} IN (values)`, a chunk of values at a time.
async fn rows_where_in(
    backend: Backend,
    tx: &mut Tx,
    select: &str,
    column: &str,
    values: &[String],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in values.chunks(chunk_rows(backend)) {
        let sql = format!(
            "{select} WHERE {column} IN ({})",
            list(backend, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in chunk {
            query = query.bind(value);
        }
        rows.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// Crosswalk rows whose source id is in `ids` or whose set OID is in `set_oids`.
///
/// # Errors
/// Database errors.
pub async fn load_crosswalk(
    backend: Backend,
    tx: &mut Tx,
    ids: &[String],
    set_oids: &[String],
) -> Result<Vec<KeyedCrosswalk>, StoreError> {
    const SELECT: &str = "SELECT source_system, record_type, source_id, set_oid, latest_version, \
        latest_document, latest_revision, content_digest, exchange_id FROM crosswalk";
    let mut rows = rows_where_in(backend, tx, SELECT, "source_id", ids).await?;
    rows.extend(rows_where_in(backend, tx, SELECT, "set_oid", set_oids).await?);
    rows.iter()
        .map(|row| {
            Ok(KeyedCrosswalk {
                source_system: row.try_get("source_system")?,
                record_type: row.try_get("record_type")?,
                source_id: row.try_get("source_id")?,
                row: CrosswalkRow {
                    set_oid: row.try_get("set_oid")?,
                    latest_version: row.try_get("latest_version")?,
                    latest_document: row.try_get("latest_document")?,
                    latest_revision: row.try_get("latest_revision")?,
                    content_digest: row.try_get("content_digest")?,
                    exchange_id: row.try_get("exchange_id")?,
                },
                stored: true,
            })
        })
        .collect()
}

/// Case rows `(source system, case id, case OID)` whose id is in `ids` or OID in `oids`.
///
/// # Errors
/// Database errors.
pub async fn load_cases(
    backend: Backend,
    tx: &mut Tx,
    ids: &[String],
    oids: &[String],
) -> Result<Vec<(String, String, String)>, StoreError> {
    const SELECT: &str = "SELECT source_system, case_id, case_oid FROM case_crosswalk";
    let mut rows = rows_where_in(backend, tx, SELECT, "case_id", ids).await?;
    rows.extend(rows_where_in(backend, tx, SELECT, "case_oid", oids).await?);
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("source_system")?,
                row.try_get("case_id")?,
                row.try_get("case_oid")?,
            ))
        })
        .collect()
}

/// OID sequences `(root, arc, year, next)` of the given roots.
///
/// # Errors
/// Database errors.
pub async fn load_sequences(
    backend: Backend,
    tx: &mut Tx,
    roots: &[String],
) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
    let rows = rows_where_in(
        backend,
        tx,
        "SELECT root, arc, year, next FROM oid_sequence",
        "root",
        roots,
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("root")?,
                row.try_get("arc")?,
                row.try_get("year")?,
                row.try_get("next")?,
            ))
        })
        .collect()
}

/// Writes OID sequences back.
///
/// # Errors
/// Database errors.
pub async fn write_sequences(
    tx: &mut WriteTx,
    rows: &[(String, i64, i64, i64)],
) -> Result<(), StoreError> {
    let backend = tx.backend();
    for chunk in rows.chunks(chunk_rows(backend)) {
        let sql = format!(
            "INSERT INTO oid_sequence (root, arc, year, next) VALUES {} \
             ON CONFLICT (root, arc, year) DO UPDATE SET next = excluded.next",
            value_rows(backend, chunk.len(), 4)
        );
        let sql = sqlx::AssertSqlSafe(sql);
        execute_in!(tx, bind_sequences(sqlx::query(sql), chunk));
    }
    Ok(())
}

/// Binds `(root, arc, year, next)` rows, through either driver.
fn bind_sequences<'q, DB: sqlx::Database>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    rows: &[(String, i64, i64, i64)],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    for<'t> &'t String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    for (root, arc, year, next) in rows {
        query = query.bind(root).bind(*arc).bind(*year).bind(*next);
    }
    query
}

/// Inserts or updates crosswalk rows (one row per key): new keys with a plain `INSERT`, keys
/// already [stored](KeyedCrosswalk::stored) with `INSERT … ON CONFLICT DO UPDATE`. Most of a
/// stream's records are new, and on PostgreSQL the upsert's speculative insertion made that
/// statement take 10 – 12 ms per 1 024 new rows against 7 ms for the plain insert.
///
/// # Errors
/// Database errors, among them a new row whose key or set OID is taken.
pub async fn write_crosswalk(tx: &mut WriteTx, rows: &[KeyedCrosswalk]) -> Result<(), StoreError> {
    let (stored, new): (Vec<&KeyedCrosswalk>, Vec<&KeyedCrosswalk>) =
        rows.iter().partition(|row| row.stored);
    match tx {
        WriteTx::Sqlite(_) => insert_crosswalk(tx, &new, "").await?,
        WriteTx::Postgres(tx) => copy_in::new_crosswalk(tx, &new).await?,
    }
    insert_crosswalk(
        tx,
        &stored,
        " ON CONFLICT (source_system, record_type, source_id) DO UPDATE SET \
         latest_version = excluded.latest_version, latest_document = excluded.latest_document, \
         latest_revision = excluded.latest_revision, content_digest = excluded.content_digest, \
         exchange_id = excluded.exchange_id",
    )
    .await
}

/// `INSERT INTO crosswalk …` of `rows`, a chunk per statement, then `on_conflict`.
async fn insert_crosswalk(
    tx: &mut WriteTx,
    rows: &[&KeyedCrosswalk],
    on_conflict: &str,
) -> Result<(), StoreError> {
    let backend = tx.backend();
    for chunk in rows.chunks(chunk_rows(backend)) {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO crosswalk (source_system, record_type, source_id, set_oid, latest_version, \
             latest_document, latest_revision, content_digest, exchange_id) VALUES {}{on_conflict}",
            value_rows(backend, chunk.len(), 9)
        ));
        execute_in!(tx, bind_crosswalk(sqlx::query(sql), chunk));
    }
    Ok(())
}

/// Binds the values of [`insert_crosswalk`]'s rows, through either driver.
fn bind_crosswalk<'q, DB: sqlx::Database>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    rows: &[&KeyedCrosswalk],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    for<'t> &'t String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    for keyed in rows {
        let row = &keyed.row;
        query = query
            .bind(&keyed.source_system)
            .bind(&keyed.record_type)
            .bind(&keyed.source_id)
            .bind(&row.set_oid)
            .bind(row.latest_version)
            .bind(&row.latest_document)
            .bind(row.latest_revision)
            .bind(&row.content_digest)
            .bind(&row.exchange_id);
    }
    query
}

/// Inserts case rows `(source system, case id, case OID)`.
///
/// # Errors
/// Database errors.
pub async fn write_cases(
    tx: &mut WriteTx,
    rows: &[(String, String, String)],
) -> Result<(), StoreError> {
    let tx = match tx {
        WriteTx::Sqlite(tx) => tx,
        WriteTx::Postgres(tx) => return copy_in::cases(tx, rows).await,
    };
    for chunk in rows.chunks(chunk_rows(Backend::Sqlite)) {
        let sql = format!(
            "INSERT INTO case_crosswalk (source_system, case_id, case_oid) VALUES {}",
            value_rows(Backend::Sqlite, chunk.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (system, id, oid) in chunk {
            query = query.bind(system).bind(id).bind(oid);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A stored document to insert.
#[derive(Debug, Clone)]
pub struct DocumentRow {
    /// Document OID.
    pub document_oid: String,
    /// Set OID.
    pub set_oid: String,
    /// Version.
    pub version: i64,
    /// Exchange.
    pub exchange_id: String,
    /// The document, compact JSON text (shared with the answers that embed it).
    pub body: Arc<str>,
    /// The body packed ([`crate::document_codec`]), made beside the mapping; `None` when it
    /// could not be packed, and the text is stored as it is.
    pub packed: Option<Vec<u8>>,
}

/// The select-list items that read a document's body: on SQLite as bytes, since a body is a
/// zstd frame (BLOB) or, written before packing, text; on PostgreSQL the text column (rows
/// written before packing) and the packed one.
fn body_column(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST(body AS BLOB) AS body",
        Backend::Postgres => "body, packed",
    }
}

/// A document's JSON text from a row selected with [`body_column`].
fn read_body(backend: Backend, row: &sqlx::any::AnyRow) -> Result<String, StoreError> {
    match backend {
        Backend::Sqlite => Ok(crate::document_codec::unpack(row.try_get("body")?)?),
        Backend::Postgres => match row.try_get::<Option<Vec<u8>>, _>("packed")? {
            Some(packed) => Ok(crate::document_codec::unpack(packed)?),
            None => Ok(row.try_get("body")?),
        },
    }
}

/// Inserts documents.
///
/// # Errors
/// Database errors.
pub async fn write_documents(tx: &mut WriteTx, rows: &[DocumentRow]) -> Result<(), StoreError> {
    let tx = match tx {
        WriteTx::Sqlite(tx) => tx,
        WriteTx::Postgres(tx) => return copy_in::documents(tx, rows).await,
    };
    for chunk in rows.chunks(chunk_rows(Backend::Sqlite)) {
        // One column holds either form: SQLite keeps any value in any column.
        let sql = format!(
            "INSERT INTO documents (document_oid, set_oid, version, exchange_id, body) VALUES {}",
            value_rows(Backend::Sqlite, chunk.len(), 5)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query
                .bind(&row.document_oid)
                .bind(&row.set_oid)
                .bind(row.version)
                .bind(&row.exchange_id);
            query = match &row.packed {
                Some(packed) => query.bind(packed.as_slice()),
                None => query.bind(&*row.body),
            };
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Documents by OID (for duplicates: the same answer as before).
///
/// # Errors
/// Database errors.
pub async fn load_documents(
    backend: Backend,
    tx: &mut Tx,
    oids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    let select = format!(
        "SELECT document_oid, {} FROM documents",
        body_column(backend)
    );
    let rows = rows_where_in(backend, tx, &select, "document_oid", oids).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("document_oid")?, read_body(backend, row)?)))
        .collect()
}

/// An audit row to append.
#[derive(Debug, Clone)]
pub struct EntryRow {
    /// Sequence number.
    pub seq: i64,
    /// Exchange.
    pub exchange_id: String,
    /// Time.
    pub recorded_at: String,
    /// Canonical JSON.
    pub entry: String,
    /// Previous hash.
    pub prev_hash: String,
    /// This hash.
    pub entry_hash: String,
    /// Query column.
    pub client_hash: Option<String>,
    /// Query column.
    pub actor: String,
    /// Query column.
    pub outcome: String,
    /// Query column.
    pub record_type: Option<String>,
    /// Query column.
    pub direction: String,
}

/// Appends entries. On SQLite they are taken by value and their texts bound as they are:
/// `sqlx`'s `Any` driver copies every borrowed string it binds, and an entry's text is a
/// kilobyte.
///
/// # Errors
/// Database errors.
pub async fn write_entries(tx: &mut WriteTx, rows: Vec<EntryRow>) -> Result<(), StoreError> {
    let tx = match tx {
        WriteTx::Sqlite(tx) => tx,
        WriteTx::Postgres(tx) => return copy_in::entries(tx, &rows).await,
    };
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<EntryRow> = rows.by_ref().take(chunk_rows(Backend::Sqlite)).collect();
        let sql = format!(
            "INSERT INTO audit_log (seq, exchange_id, recorded_at, entry, prev_hash, entry_hash, \
             client_hash, actor, outcome, record_type, direction) VALUES {}",
            value_rows(Backend::Sqlite, chunk.len(), 11)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query
                .bind(row.seq)
                .bind(row.exchange_id)
                .bind(row.recorded_at)
                .bind(row.entry)
                .bind(row.prev_hash)
                .bind(row.entry_hash)
                .bind(row.client_hash)
                .bind(row.actor)
                .bind(row.outcome)
                .bind(row.record_type)
                .bind(row.direction);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

// ---- the outbox ---------------------------------------------------------------------------

/// One delivery of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The document.
    pub document_oid: String,
    /// The exchange that accepted it.
    pub exchange_id: String,
    /// Its set.
    pub set_oid: String,
    /// Its version.
    pub version: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (RFC 3339).
    pub next_attempt_at: String,
    /// The last error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The result of one delivery attempt, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The document.
    pub document_oid: String,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    /// When to try again (RFC 3339), or now when settled.
    pub next_attempt_at: String,
    /// Why it did not go through.
    pub error: Option<String>,
}

fn delivery(row: &sqlx::any::AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        document_oid: row.try_get("document_oid")?,
        exchange_id: row.try_get("exchange_id")?,
        set_oid: row.try_get("set_oid")?,
        version: row.try_get("version")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
    })
}

/// Puts accepted documents in the outbox (inside the exchange's transaction).
///
/// # Errors
/// Database errors.
pub async fn write_outbox(
    tx: &mut WriteTx,
    rows: &[DocumentRow],
    now: &str,
) -> Result<(), StoreError> {
    let tx = match tx {
        WriteTx::Sqlite(tx) => tx,
        WriteTx::Postgres(tx) => return copy_in::outbox(tx, rows, now).await,
    };
    for chunk in rows.chunks(chunk_rows(Backend::Sqlite)) {
        let sql = format!(
            "INSERT INTO outbox (document_oid, exchange_id, set_oid, version, next_attempt_at, \
             status, attempts) VALUES {}",
            value_rows_then(Backend::Sqlite, chunk.len(), 5, "'pending', 0")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query
                .bind(&row.document_oid)
                .bind(&row.exchange_id)
                .bind(&row.set_oid)
                .bind(row.version)
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Deliveries by status (`pending`, `delivered`, `failed`), for the status API.
    ///
    /// # Errors
    /// Database errors.
    pub async fn deliveries(&self, status: &str, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT document_oid, exchange_id, set_oid, version, status, attempts, next_attempt_at, last_error \
             FROM outbox WHERE ($1 = '' OR status = $1) ORDER BY set_oid, version LIMIT $2",
        )
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// Pending rows whose next attempt is due, never a version whose predecessor is not
    /// delivered yet (so every row returned is of a different set), each with its stored
    /// document, in one query.
    ///
    /// # Errors
    /// Database errors.
    pub async fn due_deliveries_with_documents(
        &self,
        now: &str,
        limit: i64,
    ) -> Result<Vec<(Delivery, String)>, StoreError> {
        let sql = format!(
            "SELECT o.document_oid, o.exchange_id, o.set_oid, o.version, o.status, o.attempts, \
             o.next_attempt_at, o.last_error, {} \
             FROM outbox o JOIN documents d ON d.document_oid = o.document_oid \
             WHERE o.status = 'pending' AND o.next_attempt_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.set_oid = o.set_oid AND p.version < o.version \
                             AND p.status <> 'delivered') \
             ORDER BY o.set_oid, o.version LIMIT $2",
            body_column(self.backend)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((delivery(row)?, read_body(self.backend, row)?)))
            .collect()
    }

    /// Records the results of many attempts in one transaction (one commit for a whole round
    /// of deliveries).
    ///
    /// # Errors
    /// Database errors; then none of them is recorded and the rows stay due.
    pub async fn record_attempts(&self, results: &[AttemptResult]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // This commit need not wait for the disk: the attempts' audit events are already
            // durable, and an outbox row that a crash puts back to `pending` is only sent
            // again, which the archive answers with the same receipt (exactly once holds).
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        for chunk in results.chunks(chunk_rows(self.backend)) {
            // One statement per chunk: UPDATE … FROM (VALUES …), which both backends have
            // (VALUES columns are named column1… on both).
            let sql = format!(
                "UPDATE outbox SET status = v.status, attempts = outbox.attempts + 1, \
                 next_attempt_at = v.next_attempt_at, last_error = v.last_error \
                 FROM (SELECT column1 AS document_oid, column2 AS status, \
                 column3 AS next_attempt_at, column4 AS last_error FROM (VALUES {}) AS t) AS v \
                 WHERE outbox.document_oid = v.document_oid",
                value_rows(self.backend, chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for result in chunk {
                query = query
                    .bind(result.document_oid.as_str())
                    .bind(result.status)
                    .bind(result.next_attempt_at.as_str())
                    .bind(result.error.clone());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn write_document(pool: &AnyPool, n: usize) {
        sqlx::query(
            "INSERT INTO documents (document_oid, set_oid, version, exchange_id, body) \
             VALUES ($1, $2, 1, 'e', $3)",
        )
        .bind(format!("1.2.246.99.13.{n}"))
        .bind(format!("1.2.246.99.14.{n}"))
        .bind("x".repeat(3000))
        .execute(pool)
        .await
        .expect("insert");
    }

    /// A second and a half of a busy gateway: a writer and a reader that never pause, and a
    /// checkpoint every 50 ms. Returns the size the write-ahead log file grew to.
    async fn wal_file_after_busy_writes(restart_above: Option<i64>) -> u64 {
        let dir = tempfile::tempdir().expect("dir");
        let store = sqlite_store(&dir).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let running = |stop: &std::sync::Arc<std::sync::atomic::AtomicBool>| {
            !stop.load(std::sync::atomic::Ordering::Relaxed)
        };
        let writer = tokio::spawn({
            let (pool, stop) = (store.pool.clone(), stop.clone());
            async move {
                let mut n = 0;
                while running(&stop) {
                    n += 1;
                    write_document(&pool, n).await;
                }
            }
        });
        let reader = tokio::spawn({
            let (store, stop) = (store.clone(), stop.clone());
            async move {
                while running(&stop) {
                    let mut read = store.begin_read().await.expect("reader");
                    sqlx::query("SELECT COUNT(*) FROM documents")
                        .fetch_one(&mut *read)
                        .await
                        .expect("read");
                    read.rollback().await.expect("end of read");
                }
            }
        });
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            match restart_above {
                Some(frames) => checkpoint_once(&store.pool, frames).await,
                None => {
                    let _ = checkpoint(&store.pool, Checkpoint::Passive).await;
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.await.expect("writer");
        reader.await.expect("reader");
        std::fs::metadata(dir.path().join("g.db-wal"))
            .expect("log file")
            .len()
    }

    async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
        Store::connect_without_checkpoints(&url)
            .await
            .expect("store")
    }

    /// A restarting checkpoint while a reader holds a snapshot (which makes it busy); then the
    /// reader ends and one more document is written. Gives its result and how long it took.
    async fn restart_beside_a_reader(
        store: &Store,
        wait: bool,
    ) -> (Result<i64, StoreError>, Duration) {
        write_document(&store.pool, 1).await;
        let mut reader = store.begin_read().await.expect("reader");
        sqlx::query("SELECT COUNT(*) FROM documents")
            .fetch_one(&mut *reader)
            .await
            .expect("read");
        write_document(&store.pool, 2).await;
        let started = std::time::Instant::now();
        let restarted = checkpoint(&store.pool, Checkpoint::Restart { wait }).await;
        let waited = started.elapsed();
        reader.rollback().await.expect("end of read");
        write_document(&store.pool, 3).await;
        (restarted, waited)
    }

    #[tokio::test]
    async fn a_reader_that_stays_holds_a_restarting_checkpoint_back_briefly_not_for_the_busy_timeout()
     {
        let dir = tempfile::tempdir().expect("dir");
        let store = sqlite_store(&dir).await;
        let (restarted, waited) = restart_beside_a_reader(&store, true).await;
        assert!(matches!(restarted, Err(StoreError::Busy)), "{restarted:?}");
        assert!(
            waited < Duration::from_millis(BUSY_TIMEOUT_MS / 4),
            "writers were held back {waited:?}"
        );
        assert!(
            checkpoint(&store.pool, Checkpoint::Restart { wait: true })
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_restart_that_does_not_wait_gives_up_at_once_and_starts_the_log_over_in_a_gap() {
        let dir = tempfile::tempdir().expect("dir");
        let store = sqlite_store(&dir).await;
        let (restarted, waited) = restart_beside_a_reader(&store, false).await;
        assert!(matches!(restarted, Err(StoreError::Busy)), "{restarted:?}");
        assert!(
            waited < Duration::from_millis(100),
            "writers were held back {waited:?}"
        );
        let before = checkpoint(&store.pool, Checkpoint::Passive)
            .await
            .expect("passive");
        assert!(
            checkpoint(&store.pool, Checkpoint::Restart { wait: false })
                .await
                .is_ok()
        );
        write_document(&store.pool, 4).await;
        let after = checkpoint(&store.pool, Checkpoint::Passive)
            .await
            .expect("passive");
        assert!(
            after < before,
            "the log was not started over: {before} frames, then {after}"
        );
    }

    /// Passive checkpoints copy the log but, with writes that never pause, SQLite never
    /// starts it over and the file grows with every write; restarting checkpoints keep it to
    /// what is written between two of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_stays_short_under_writes_that_never_pause() {
        let passive_only = wal_file_after_busy_writes(None).await;
        let restarting = wal_file_after_busy_writes(Some(0)).await;
        assert!(
            // Twice is a margin for a busy machine, where some restarts give up: measured
            // 3 – 8 times smaller, and alike (43 MB and 42 MB) with the restart taken out.
            restarting * 2 < passive_only,
            "log file: {restarting} bytes with restarts, {passive_only} without"
        );
    }
}
