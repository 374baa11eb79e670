//! The writer: one task per process that commits whole batches of exchanges in one
//! transaction, with a handful of set-based statements per batch whatever its size.
//!
//! A batch is read in (crosswalk rows, cases, OID sequences, earlier documents: one query
//! each), decided in memory in arrival order (so two sends of one record in the same batch
//! still make one version), and written out (documents, crosswalk, cases, sequences, audit
//! entries, chain head: one multi-row statement or, on PostgreSQL, one `COPY` each, the
//! crosswalk's new keys and its stored ones apart). On PostgreSQL the reads go through the
//! tables' indexes ([`store::look_up_by_index`]). The write happens under the chain-head
//! lock, so several processes on one PostgreSQL database see each other's batches whole. The
//! transaction commits before any exchange of the batch is answered.
//!
//! Batches are pipelined: while one batch is written and committed, the next is read and
//! decided on top of what the first writes (its [`Writes`]), and its audit entries are chained
//! onto the head the first leaves. When the next batch then takes the lock, the chain head
//! must be the one the first batch left. If it is not (the first batch failed, or another
//! process committed in between), the next batch is read, decided and chained again under the
//! lock, so the answers and the chain are always those of one batch after the other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::audit::{self, AuditEntry, LoggedIssue, MappingStamp};
use crate::exchange::{
    Engine, ExchangeResult, Job, Outcome, Prepared, Subject, Unavailable, now_utc,
};
use crate::identifiers;
use crate::mapping::Mapped;
use crate::mapping::context::{CASE_KIND, LocalContext, crosswalk_refs, identity};
use crate::mapping::engine::Direction;
use crate::mapping::plan::{MappingPlan, Source};
use crate::outcome::{Issue, IssueCode};
use crate::parallel;
use crate::store::{
    self, Backend, CrosswalkRow, DocumentRow, EntryRow, KeyedCrosswalk, Store, StoreError, Tx,
    WriteTx,
};

type Key = (String, String, String);

/// Receives jobs and commits them batch by batch until every sender is gone.
pub(crate) async fn run(
    engine: Arc<Engine>,
    store: Store,
    mut jobs: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    let mut pipeline = Pipeline::new(engine, store);
    loop {
        let mut batch = Vec::new();
        if !pipeline.is_writing() {
            let Some(first) = jobs.recv().await else {
                break;
            };
            batch.push(first);
        }
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            // Nothing is waiting: answer the batch being written before waiting for more.
            pipeline.drain().await;
        } else {
            pipeline.submit(batch).await;
        }
    }
    pipeline.drain().await;
}

/// The writer's two stages: the batch being written and committed, and the next.
struct Pipeline {
    engine: Arc<Engine>,
    store: Store,
    in_flight: Option<InFlight>,
    /// Batches decided while the batch before was being written.
    decided_ahead: u64,
    /// Of those, batches decided again under the lock because the chain head had moved.
    decided_again: u64,
}

/// A batch whose rows are being written and committed; its jobs are answered once it commits.
struct InFlight {
    jobs: Vec<Job>,
    results: Vec<ExchangeResult>,
    writes: Arc<Writes>,
    task: tokio::task::JoinHandle<Result<(Duration, Duration), StoreError>>,
    timings: Timings,
    started: Instant,
}

/// Where a batch's time went, for the writer's debug log.
#[derive(Debug, Default)]
struct Timings {
    /// Decided while the batch before was being written.
    ahead: bool,
    /// Taking the chain-head lock (beginning the write transaction).
    lock: Duration,
    read: Duration,
    decide: Duration,
    /// Writing the entries' texts and chaining them.
    chain: Duration,
    write: Duration,
    commit: Duration,
}

impl Pipeline {
    fn new(engine: Arc<Engine>, store: Store) -> Self {
        Self {
            engine,
            store,
            in_flight: None,
            decided_ahead: 0,
            decided_again: 0,
        }
    }

    fn is_writing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Decides `batch` (ahead, when a batch is being written), answers the batch before, and
    /// starts writing this one.
    async fn submit(&mut self, batch: Vec<Job>) {
        let started = Instant::now();
        let mut timings = Timings::default();
        let engine = Arc::clone(&self.engine);
        let facts: Vec<Option<Facts<'_>>> = parallel::map_slice(&batch, |job| facts(&engine, job));
        let ahead = match &self.in_flight {
            Some(flight) => {
                decide_ahead(
                    &engine,
                    &self.store,
                    &batch,
                    &facts,
                    &flight.writes,
                    &mut timings,
                )
                .await
            }
            None => None,
        };
        let before_committed = self.drain().await;
        let ahead = ahead.filter(|_| before_committed);
        let had_ahead = ahead.is_some();
        if had_ahead {
            self.decided_ahead += 1;
        }
        match lock_and_decide(&engine, &self.store, &batch, &facts, ahead, &mut timings).await {
            Ok(Locked {
                results,
                writes,
                entries,
                tx,
            }) => {
                drop(facts);
                let task = tokio::spawn(write(tx, Arc::clone(&writes), entries));
                if had_ahead && !timings.ahead {
                    self.decided_again += 1;
                }
                self.in_flight = Some(InFlight {
                    jobs: batch,
                    results,
                    writes,
                    task,
                    timings,
                    started,
                });
            }
            Err(error) => refuse_all(batch, &error.to_string()),
        }
    }

    /// Waits for the batch being written and answers its jobs; `false` when it failed.
    async fn drain(&mut self) -> bool {
        let Some(flight) = self.in_flight.take() else {
            return true;
        };
        let InFlight {
            jobs,
            results,
            writes,
            task,
            mut timings,
            started,
        } = flight;
        let committed = match task.await {
            Ok(Ok((write, commit))) => {
                timings.write = write;
                timings.commit = commit;
                Ok(())
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        tracing::debug!(jobs = jobs.len(), elapsed = ?started.elapsed(), ?timings, "batch committed");
        match committed {
            Ok(()) => {
                let mut records = Vec::with_capacity(jobs.len());
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                    records.push(job.prepared);
                }
                // Freeing a batch's records and rows took about a tenth of the writer task's
                // CPU (`perf`, a 100 000-record stream), with the next batch waiting; another
                // thread frees them beside it.
                tokio::task::spawn_blocking(move || drop((records, writes)));
                true
            }
            Err(error) => {
                refuse_all(jobs, &error);
                false
            }
        }
    }
}

/// Answers every job of a batch that could not be written with 503: nothing unaudited.
fn refuse_all(jobs: Vec<Job>, error: &str) {
    tracing::error!(%error, jobs = jobs.len(), "audit write failed; refusing the batch");
    for job in jobs {
        let _ = job.reply.send(Err(Unavailable));
    }
}

/// What one batch writes; also what the next batch, decided while this one commits, builds on.
/// Its audit entries are not here: the next batch needs only the chain head they leave, so
/// they go to [`write`] by value and their texts are bound without a copy.
struct Writes {
    documents: Vec<DocumentRow>,
    crosswalk: Vec<KeyedCrosswalk>,
    cases: Vec<(String, String, String)>,
    sequences: Vec<(String, i64, i64, i64)>,
    /// The chain head once this batch is committed.
    head: (i64, String),
}

/// A batch decided under the chain-head lock, ready for [`write`].
struct Locked {
    results: Vec<ExchangeResult>,
    writes: Arc<Writes>,
    entries: Vec<EntryRow>,
    /// Holds the lock until [`write`] commits.
    tx: WriteTx,
}

/// A batch decided: its answers and audit entries, and the state they leave.
struct Decided {
    state: State,
    decided: Vec<(ExchangeResult, AuditEntry)>,
}

/// A batch decided while the batch before is written, its entries already chained onto the
/// head that batch leaves: if that is still the head under the lock, the batch is written as
/// it is, and nothing but taking the lock stands between the two batches' writes.
struct Ahead {
    state: State,
    chained: Chained,
    /// The chain head the entries were chained onto.
    assumes: (i64, String),
}

/// A batch's answers, and its audit entries as rows: their texts and their links in the chain.
struct Chained {
    results: Vec<ExchangeResult>,
    entries: Vec<EntryRow>,
    /// The chain head after the batch's entries.
    head: (i64, String),
}

/// Writes the texts of `decided`'s entries (side by side) and chains them, one after the
/// other, onto `head`.
fn chain(
    decided: Vec<(ExchangeResult, AuditEntry)>,
    head: (i64, String),
) -> Result<Chained, StoreError> {
    let (mut seq, mut hash) = head;
    let texts = parallel::map_slice(&decided, |(_, entry)| audit::canonical(entry));
    let mut results = Vec::with_capacity(decided.len());
    let mut entries = Vec::with_capacity(decided.len());
    for ((result, entry), json) in decided.into_iter().zip(texts) {
        seq += 1;
        let json = json.map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
        let entry_hash = audit::chain_hash(&hash, &json);
        entries.push(EntryRow {
            seq,
            exchange_id: entry.exchange_id,
            recorded_at: entry.recorded_at,
            entry: json,
            prev_hash: std::mem::replace(&mut hash, entry_hash.clone()),
            entry_hash,
            client_hash: entry.client_hash,
            actor: entry.actor.subject,
            outcome: entry.outcome,
            record_type: entry.record_type,
            direction: entry.direction,
        });
        results.push(result);
    }
    Ok(Chained {
        results,
        entries,
        head: (seq, hash),
    })
}

/// Reads and decides `batch` while the batch before is being written, on top of its `writes`,
/// and chains its entries onto the head those leave. `None` when the database cannot be read
/// now; the batch is then decided under the lock.
async fn decide_ahead(
    engine: &Engine,
    store: &Store,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
    writes: &Writes,
    timings: &mut Timings,
) -> Option<Ahead> {
    let clock = Instant::now();
    let state = read_ahead(store, batch, facts, writes).await?;
    timings.read = clock.elapsed();
    let clock = Instant::now();
    let decided = match decide_batch(engine, state, batch, facts) {
        Some(decided) => decided,
        None => {
            let state = read_ahead(store, batch, facts, writes).await?;
            decide_one_by_one(engine, state, batch, facts)
        }
    };
    timings.decide = clock.elapsed();
    let clock = Instant::now();
    let chained = chain(decided.decided, writes.head.clone()).ok()?;
    timings.chain = clock.elapsed();
    timings.ahead = true;
    Some(Ahead {
        state: decided.state,
        chained,
        assumes: writes.head.clone(),
    })
}

/// The batch's view of the database as it will be once the batch before (`writes`) commits,
/// read in a transaction of its own; `None` when the database cannot be read now.
async fn read_ahead(
    store: &Store,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
    writes: &Writes,
) -> Option<State> {
    let mut tx = store.begin_read().await.ok()?;
    let state = read_state(store.backend(), &mut tx, batch, facts, Some(writes)).await;
    // Ended now, not when the pool next hands the connection out: an open read transaction
    // keeps SQLite from starting its log over, and PostgreSQL from vacuuming behind it.
    let ended = tx.rollback().await;
    let state = state.ok()?;
    ended.ok()?;
    Some(state)
}

/// Reads everything `batch` can touch under the writers' lock: in the write transaction
/// itself on SQLite; on PostgreSQL, whose write transaction is on the writer's native
/// connection, in a read transaction of its own. That one sees what the write transaction
/// would: the lock is taken, so no other writer commits until this batch does, and each of
/// its statements sees every batch committed before (read committed).
async fn read_locked(
    store: &Store,
    tx: &mut WriteTx,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
) -> Result<State, StoreError> {
    if let Some(tx) = tx.reads() {
        return read_state(store.backend(), tx, batch, facts, None).await;
    }
    let mut read = store.begin_read().await?;
    let state = read_state(store.backend(), &mut read, batch, facts, None).await;
    let ended = read.rollback().await;
    let state = state?;
    ended?;
    Ok(state)
}

/// Takes the chain-head lock, decides `batch` under it unless `ahead` still holds, and chains
/// the audit entries; [`write`] then writes the rows in the returned transaction and commits.
async fn lock_and_decide(
    engine: &Engine,
    store: &Store,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
    ahead: Option<Ahead>,
    timings: &mut Timings,
) -> Result<Locked, StoreError> {
    let clock = Instant::now();
    let (mut tx, seq, hash) = store.begin_write().await?;
    timings.lock = clock.elapsed();
    let head = (seq, hash);
    let (state, chained) = match ahead {
        Some(ahead) if ahead.assumes == head => (ahead.state, ahead.chained),
        _ => {
            timings.ahead = false;
            let clock = Instant::now();
            let state = read_locked(store, &mut tx, batch, facts).await?;
            timings.read = clock.elapsed();
            let clock = Instant::now();
            let decided = match decide_batch(engine, state, batch, facts) {
                Some(decided) => decided,
                None => {
                    let state = read_locked(store, &mut tx, batch, facts).await?;
                    decide_one_by_one(engine, state, batch, facts)
                }
            };
            timings.decide = clock.elapsed();
            let clock = Instant::now();
            let chained = chain(decided.decided, head)?;
            timings.chain = clock.elapsed();
            (decided.state, chained)
        }
    };
    let Chained {
        results,
        entries,
        head,
    } = chained;
    let sequences = state
        .touched_sequences
        .iter()
        .map(|key| {
            (
                key.0.clone(),
                key.1,
                key.2,
                state.sequences.get(key).copied().unwrap_or(1),
            )
        })
        .collect();
    let writes = Arc::new(Writes {
        documents: state.documents,
        crosswalk: state.crosswalk_writes,
        cases: state.new_cases,
        sequences,
        head,
    });
    Ok(Locked {
        results,
        writes,
        entries,
        tx,
    })
}

/// Writes a batch's rows and commits; returns how long each took.
async fn write(
    mut tx: WriteTx,
    writes: Arc<Writes>,
    entries: Vec<EntryRow>,
) -> Result<(Duration, Duration), StoreError> {
    let clock = Instant::now();
    store::write_documents(&mut tx, &writes.documents).await?;
    store::write_outbox(&mut tx, &writes.documents, &now_utc()).await?;
    store::write_crosswalk(&mut tx, &writes.crosswalk).await?;
    store::write_cases(&mut tx, &writes.cases).await?;
    store::write_sequences(&mut tx, &writes.sequences).await?;
    store::write_entries(&mut tx, entries).await?;
    store::set_head(&mut tx, writes.head.0, &writes.head.1).await?;
    let written = clock.elapsed();
    let clock = Instant::now();
    tx.commit().await?;
    Ok((written, clock.elapsed()))
}

/// What a forward job needs to know about itself before the database is read.
struct Facts<'a> {
    plan: &'a MappingPlan,
    source_system: String,
    root: Option<String>,
    identity: Option<(String, String)>,
    revision: i64,
    digest: String,
    refs: Vec<(String, String)>,
}

fn facts<'a>(engine: &'a Engine, job: &Job) -> Option<Facts<'a>> {
    let Prepared::Valid {
        record,
        plan,
        content_digest,
        ..
    } = &job.prepared
    else {
        return None;
    };
    let plan = &engine.mappings.plans[*plan];
    Some(Facts {
        plan,
        source_system: match job.direction {
            Direction::Forward => job.subject.source_system.clone().unwrap_or_default(),
            Direction::Backward => String::new(),
        },
        root: record
            .pointer("/SOURCE_ORG_ID")
            .and_then(Value::as_str)
            .and_then(identifiers::custodian_oid_root),
        identity: identity(plan, record),
        revision: revision_of(plan, record).unwrap_or(1),
        digest: content_digest.clone(),
        refs: crosswalk_refs(plan, record, job.direction),
    })
}

/// The batch's view of the database, updated as its jobs are decided. Its maps are Fx-hashed:
/// SipHash showed in a stream's profile, and a batch holds at most `audit.max_batch` jobs'
/// keys, so keys chosen to collide cannot cost more than that batch squared.
#[derive(Default, Clone)]
struct State {
    year: i64,
    crosswalk: FxHashMap<Key, CrosswalkRow>,
    by_set: FxHashMap<String, Key>,
    cases: FxHashMap<(String, String), String>,
    case_ids: FxHashMap<String, String>,
    sequences: FxHashMap<(String, i64, i64), i64>,
    touched_sequences: BTreeSet<(String, i64, i64)>,
    crosswalk_writes: Vec<KeyedCrosswalk>,
    /// Where each key's row is in `crosswalk_writes`: a key is written once per batch.
    crosswalk_write_at: FxHashMap<Key, usize>,
    new_cases: Vec<(String, String, String)>,
    documents: Vec<DocumentRow>,
    bodies: FxHashMap<String, Arc<str>>,
}

impl State {
    fn allocate(&mut self, root: &str, arc: i64) -> String {
        let key = (root.to_owned(), arc, self.year);
        let next = self.sequences.entry(key.clone()).or_insert(1);
        let number = *next;
        *next += 1;
        self.touched_sequences.insert(key);
        format!("{root}.{arc}.{}.{number}", self.year)
    }

    fn put_crosswalk(&mut self, key: Key, row: CrosswalkRow) {
        self.by_set.insert(row.set_oid.clone(), key.clone());
        // Read from the database or written by the batch before (committed by the time this
        // batch writes): either way the key has a row when this one is written.
        let stored = self.crosswalk.insert(key.clone(), row.clone()).is_some();
        if let Some(&at) = self.crosswalk_write_at.get(&key)
            && let Some(write) = self.crosswalk_writes.get_mut(at)
        {
            write.row = row;
            return;
        }
        self.crosswalk_write_at
            .insert(key.clone(), self.crosswalk_writes.len());
        self.crosswalk_writes.push(KeyedCrosswalk {
            source_system: key.0,
            record_type: key.1,
            source_id: key.2,
            row,
            stored,
        });
    }

    fn case_oid(&mut self, system: &str, case_id: &str, root: &str) -> String {
        if let Some(oid) = self.cases.get(&(system.to_owned(), case_id.to_owned())) {
            return oid.clone();
        }
        let oid = self.allocate(root, 14);
        self.cases
            .insert((system.to_owned(), case_id.to_owned()), oid.clone());
        self.case_ids.insert(oid.clone(), case_id.to_owned());
        self.new_cases
            .push((system.to_owned(), case_id.to_owned(), oid.clone()));
        oid
    }
}

/// Reads everything `batch` can touch: crosswalk rows, cases, OID sequences, and the documents
/// that resends will get again; `before` is what the batch before writes, when it is still
/// being committed (its rows win over what the database shows).
async fn read_state(
    backend: Backend,
    tx: &mut Tx,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
    before: Option<&Writes>,
) -> Result<State, StoreError> {
    store::look_up_by_index(backend, tx).await?;
    let mut ids = BTreeSet::new();
    let mut set_oids = BTreeSet::new();
    let mut case_ids = BTreeSet::new();
    let mut case_oids = BTreeSet::new();
    let mut roots = BTreeSet::new();
    for (job, facts) in batch.iter().zip(facts) {
        let Some(facts) = facts else { continue };
        if let Some((_, id)) = &facts.identity {
            ids.insert(id.clone());
        }
        if let Some(root) = &facts.root {
            roots.insert(root.clone());
        }
        for (kind, value) in &facts.refs {
            match (job.direction, kind.as_str()) {
                (Direction::Forward, CASE_KIND) => case_ids.insert(value.clone()),
                (Direction::Forward, _) => ids.insert(value.clone()),
                (Direction::Backward, CASE_KIND) => case_oids.insert(value.clone()),
                (Direction::Backward, _) => set_oids.insert(value.clone()),
            };
        }
    }
    let mut state = State {
        year: current_year(),
        ..State::default()
    };
    let ids: Vec<String> = ids.into_iter().collect();
    let set_oids: Vec<String> = set_oids.into_iter().collect();
    let mut crosswalk = store::load_crosswalk(backend, tx, &ids, &set_oids).await?;
    // The batch before's rows that the same query would find once it commits; the others are
    // never looked up (a stream's batches rarely share a record), and copying them all cost
    // about nine strings per record.
    if let Some(before) = before {
        crosswalk.extend(
            before
                .crosswalk
                .iter()
                .filter(|keyed| {
                    contains(&ids, &keyed.source_id) || contains(&set_oids, &keyed.row.set_oid)
                })
                .cloned(),
        );
    }
    for keyed in crosswalk {
        let key = (keyed.source_system, keyed.record_type, keyed.source_id);
        state.by_set.insert(keyed.row.set_oid.clone(), key.clone());
        state.crosswalk.insert(key, keyed.row);
    }
    let case_ids: Vec<String> = case_ids.into_iter().collect();
    let case_oids: Vec<String> = case_oids.into_iter().collect();
    let mut cases = store::load_cases(backend, tx, &case_ids, &case_oids).await?;
    if let Some(before) = before {
        cases.extend(
            before
                .cases
                .iter()
                .filter(|(_, id, oid)| contains(&case_ids, id) || contains(&case_oids, oid))
                .cloned(),
        );
    }
    for (system, id, oid) in cases {
        state.case_ids.insert(oid.clone(), id.clone());
        state.cases.insert((system, id), oid);
    }
    let roots: Vec<String> = roots.into_iter().collect();
    let mut sequences = store::load_sequences(backend, tx, &roots).await?;
    if let Some(before) = before {
        sequences.extend(
            before
                .sequences
                .iter()
                .filter(|(root, ..)| contains(&roots, root))
                .cloned(),
        );
    }
    for (root, arc, year, next) in sequences {
        state.sequences.insert((root, arc, year), next);
    }
    // Earlier answers that resends will get again.
    let made_before: FxHashMap<&str, &Arc<str>> = before
        .map(|before| {
            before
                .documents
                .iter()
                .map(|row| (row.document_oid.as_str(), &row.body))
                .collect()
        })
        .unwrap_or_default();
    let mut stored_documents = Vec::new();
    for facts in facts.iter().flatten() {
        if let Some((kind, id)) = &facts.identity
            && let Some(row) =
                state
                    .crosswalk
                    .get(&(facts.source_system.clone(), kind.clone(), id.clone()))
            && row.content_digest == facts.digest
        {
            match made_before.get(row.latest_document.as_str()) {
                Some(body) => {
                    state
                        .bodies
                        .insert(row.latest_document.clone(), Arc::clone(body));
                }
                None => stored_documents.push(row.latest_document.clone()),
            }
        }
    }
    for (oid, body) in store::load_documents(backend, tx, &stored_documents).await? {
        state.bodies.insert(oid, Arc::from(body));
    }
    Ok(state)
}

/// Whether `sorted` (ascending, as collected from a `BTreeSet`) holds `value`.
fn contains(sorted: &[String], value: &str) -> bool {
    sorted
        .binary_search_by(|item| item.as_str().cmp(value))
        .is_ok()
}

/// Decides every job in order: ids first, then the mappings in parallel. `None` when a
/// mapping fails or a resend needs a document made in this batch: the caller then reads the
/// state again and calls [`decide_one_by_one`]. (Reading again, which is rare, costs less than
/// keeping a copy of every batch's state in case: that copy showed in a stream's profile.)
fn decide_batch(
    engine: &Engine,
    mut state: State,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
) -> Option<Decided> {
    let decided = decide_in_parallel(engine, &mut state, batch, facts)?;
    Some(Decided { state, decided })
}

/// Decides every job in order, each with its mapping, one after the other.
fn decide_one_by_one(
    engine: &Engine,
    mut state: State,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
) -> Decided {
    let decided = batch
        .iter()
        .zip(facts)
        .map(|(job, facts)| decide(engine, &mut state, job, facts.as_ref()))
        .collect();
    Decided { state, decided }
}

/// One job decided, or decided but for its mapping.
enum Step<'b> {
    Done(ExchangeResult, AuditEntry),
    Map(Planned<'b>),
}

/// An exchange whose ids are decided and whose mapping has yet to run.
struct Planned<'b> {
    plan: &'b MappingPlan,
    record: &'b Value,
    direction: Direction,
    context: Box<LocalContext>,
    entry: AuditEntry,
    /// Forward only: the version this exchange makes, if its mapping succeeds (its document
    /// is then stored, packed: see [`crate::document_codec`]).
    version: Option<NewVersion>,
}

/// The crosswalk row and document a forward exchange makes.
struct NewVersion {
    key: Key,
    row: CrosswalkRow,
}

/// Decides one job, mapping included.
fn decide(
    engine: &Engine,
    state: &mut State,
    job: &Job,
    facts: Option<&Facts<'_>>,
) -> (ExchangeResult, AuditEntry) {
    match step(engine, state, job, facts) {
        Step::Done(result, entry) => (result, entry),
        Step::Map(planned) => {
            let mapped = map_to_text(engine, &planned);
            if let (Some(version), Some(_)) = (&planned.version, &mapped.text) {
                state.put_crosswalk(version.key.clone(), version.row.clone());
            }
            finish(engine, state, job, planned, mapped)
        }
    }
}

/// Decides the batch's ids one job after the other, then runs all mappings in parallel.
///
/// Every later decision assumes that earlier mappings succeed, so the result equals
/// [`decide`] job by job unless a mapping fails or a resend needs the document of an earlier
/// job of the batch; then it returns `None` and the caller decides job by job.
fn decide_in_parallel(
    engine: &Engine,
    state: &mut State,
    batch: &[Job],
    facts: &[Option<Facts<'_>>],
) -> Option<Vec<(ExchangeResult, AuditEntry)>> {
    let mut steps = Vec::with_capacity(batch.len());
    let mut made_here = rustc_hash::FxHashSet::default();
    for (job, facts) in batch.iter().zip(facts) {
        let step = step(engine, state, job, facts.as_ref());
        match &step {
            Step::Map(planned) => {
                if let Some(version) = &planned.version {
                    made_here.insert(version.row.latest_document.clone());
                    state.put_crosswalk(version.key.clone(), version.row.clone());
                }
            }
            Step::Done(result, _) => {
                if result.outcome == Outcome::Duplicate
                    && result
                        .document_oid
                        .as_ref()
                        .is_some_and(|oid| made_here.contains(oid))
                {
                    return None;
                }
            }
        }
        steps.push(step);
    }
    // Mappings run apart from the batch's order; each result goes back to its place.
    let mut places = Vec::with_capacity(steps.len());
    let mut planned = Vec::new();
    for step in steps {
        match step {
            Step::Map(one) => {
                places.push(None);
                planned.push(one);
            }
            Step::Done(result, entry) => places.push(Some((result, entry))),
        }
    }
    let mapped = parallel::map_owned(planned, |planned| {
        let mapped = map_to_text(engine, &planned);
        (planned, mapped)
    });
    if mapped.iter().any(|(_, mapped)| mapped.text.is_none()) {
        return None;
    }
    let mut mapped = mapped.into_iter();
    let mut decided = Vec::with_capacity(batch.len());
    for (job, place) in batch.iter().zip(places) {
        decided.push(match place {
            Some(done) => done,
            None => {
                let (planned, mapped) = mapped.next()?;
                finish(engine, state, job, planned, mapped)
            }
        });
    }
    Some(decided)
}

/// What a mapping gives the rest of the writer: the document as the compact JSON text that is
/// digested, stored and answered, or the issues that refuse it.
struct MappedText {
    text: Option<Arc<str>>,
    /// The digest of `text` (the audit entry's output digest), made beside the mapping.
    digest: Option<String>,
    /// `text` packed for storing, when it is stored (forward); also made beside the mapping.
    packed: Option<Vec<u8>>,
    issues: Vec<Issue>,
}

/// Maps, validates the target and writes the document's text once, straight from the tree the
/// engine built ([`crate::json_tree`]). The tree is freed here, on the thread that built it:
/// freed later on the thread that answers, it cost the stream about a tenth of its throughput
/// (measured with mimalloc, whose cross-thread frees are dearer than jemalloc's).
fn map_to_text(engine: &Engine, planned: &Planned<'_>) -> MappedText {
    let Mapped {
        document: text,
        issues,
        ..
    } = engine.mappings.run_checked_as(
        &engine.profiles,
        planned.plan,
        planned.record,
        planned.direction,
        &*planned.context,
        false,
        |document| document.to_text(),
    );
    let digest = text.as_deref().map(|text| audit::digest(text.as_bytes()));
    let packed = match &text {
        Some(text) if planned.version.is_some() => crate::document_codec::pack(text),
        _ => None,
    };
    MappedText {
        text: text.map(Arc::from),
        digest,
        packed,
        issues,
    }
}

/// A job's outcome once its mapping has run (the crosswalk row is already put).
fn finish(
    engine: &Engine,
    state: &mut State,
    job: &Job,
    planned: Planned<'_>,
    mapped: MappedText,
) -> (ExchangeResult, AuditEntry) {
    match planned.direction {
        Direction::Forward => finish_forward(engine, state, job, planned, mapped),
        Direction::Backward => finish_backward(engine, job, planned, mapped),
    }
}

fn step<'b>(
    engine: &Engine,
    state: &mut State,
    job: &'b Job,
    facts: Option<&Facts<'b>>,
) -> Step<'b> {
    match (&job.prepared, facts) {
        (Prepared::Entry(entry), _) => Step::Done(
            ExchangeResult {
                exchange_id: job.exchange_id.clone(),
                outcome: Outcome::Accepted,
                status: 200,
                document: None,
                document_oid: None,
                version: None,
                issues: Vec::new(),
            },
            AuditEntry {
                // An event of an earlier exchange (a delivery) keeps that exchange's id.
                exchange_id: if entry.exchange_id.is_empty() {
                    job.exchange_id.clone()
                } else {
                    entry.exchange_id.clone()
                },
                ..(**entry).clone()
            },
        ),
        (
            Prepared::Refused {
                issues,
                profile,
                record,
            },
            _,
        ) => {
            let mut entry = base_entry(job, record.is_some());
            entry.profiles = profile.iter().cloned().collect();
            done(refused(job, entry, issues.clone(), 422))
        }
        (
            Prepared::Valid {
                record, profile, ..
            },
            Some(facts),
        ) => {
            let plan = facts.plan;
            let mut entry = base_entry(job, true);
            entry.record_type = Some(plan.header.id.clone());
            entry.profiles.push(profile.clone());
            entry.mapping = Some(MappingStamp {
                id: plan.header.id.clone(),
                hash: plan.hash.clone(),
            });
            match job.direction {
                Direction::Forward => forward(engine, state, job, facts, record, entry),
                Direction::Backward => backward(engine, state, facts, record, entry),
            }
        }
        (Prepared::Valid { .. }, None) => {
            let entry = base_entry(job, false);
            let issue = Issue::error(
                IssueCode::Processing,
                "exchange.internal",
                "",
                "the record could not be prepared",
            );
            done(refused(job, entry, vec![issue], 422))
        }
    }
}

fn done<'b>((result, entry): (ExchangeResult, AuditEntry)) -> Step<'b> {
    Step::Done(result, entry)
}

fn forward<'b>(
    engine: &Engine,
    state: &mut State,
    job: &Job,
    facts: &Facts<'b>,
    record: &'b Value,
    mut entry: AuditEntry,
) -> Step<'b> {
    let plan = facts.plan;
    let Some(root) = facts.root.clone() else {
        let issue = Issue::error(
            IssueCode::Value,
            "exchange.custodian",
            "/SOURCE_ORG_ID",
            "no custodian OID root for this Y-tunnus",
        );
        return done(refused(job, entry, vec![issue], 422));
    };
    let Some((kind, source_id)) = facts.identity.clone() else {
        let issue = Issue::error(
            IssueCode::Required,
            "exchange.identity",
            "",
            "the record has no id the crosswalk can keep",
        );
        return done(refused(job, entry, vec![issue], 422));
    };
    let system = facts.source_system.clone();
    let key = (system.clone(), kind.clone(), source_id.clone());
    let existing = state.crosswalk.get(&key).cloned();
    let (set_oid, version, document_oid, replaces) = match &existing {
        Some(row) if row.content_digest == facts.digest => {
            // The same content again: the same answer.
            entry.outcome = Outcome::Duplicate.as_str().to_owned();
            entry.document_oid = Some(row.latest_document.clone());
            entry.set_oid = Some(row.set_oid.clone());
            entry.version = Some(row.latest_version);
            entry.output_digest = state
                .bodies
                .get(&row.latest_document)
                .map(|b| audit::digest(b.as_bytes()));
            return Step::Done(
                ExchangeResult {
                    exchange_id: job.exchange_id.clone(),
                    outcome: Outcome::Duplicate,
                    status: 200,
                    document: state.bodies.get(&row.latest_document).cloned(),
                    document_oid: Some(row.latest_document.clone()),
                    version: Some(row.latest_version),
                    issues: Vec::new(),
                },
                entry,
            );
        }
        Some(row) if row.latest_version > 0 && facts.revision == row.latest_revision => {
            let issue = Issue::error(
                IssueCode::Invariant,
                "exchange.revision-conflict",
                "",
                format!(
                    "revision {} of this record is already archived as version {} with other content; send the next revision",
                    facts.revision, row.latest_version
                ),
            );
            return done(refused(job, entry, vec![issue], 409));
        }
        Some(row) if row.latest_version > 0 && facts.revision < row.latest_revision => {
            let issue = Issue::error(
                IssueCode::Invariant,
                "exchange.stale-revision",
                "",
                format!(
                    "revision {} is older than revision {} already archived",
                    facts.revision, row.latest_revision
                ),
            );
            return done(refused(job, entry, vec![issue], 409));
        }
        Some(row) if row.latest_version > 0 => {
            let document_oid = state.allocate(&root, 13);
            let replaces =
                json!({"documentOid": row.latest_document, "version": row.latest_version});
            (
                row.set_oid.clone(),
                row.latest_version + 1,
                document_oid,
                Some(replaces),
            )
        }
        // A reservation made when another record referred to this one: its set OID is kept.
        Some(row) => (row.set_oid.clone(), 1, row.set_oid.clone(), None),
        None => {
            let oid = state.allocate(&root, 13);
            (oid.clone(), 1, oid, None)
        }
    };

    // Resolve every id the mapping will look up.
    let mut context = context_for(engine);
    context.remember(&kind, &source_id, &set_oid);
    for (ref_kind, ref_id) in &facts.refs {
        if *ref_kind == kind && *ref_id == source_id {
            continue;
        }
        if ref_kind == CASE_KIND {
            let oid = state.case_oid(&system, ref_id, &root);
            context.remember(ref_kind, ref_id, &oid);
            continue;
        }
        let ref_key = (system.clone(), ref_kind.clone(), ref_id.clone());
        let oid = match state.crosswalk.get(&ref_key) {
            Some(row) => row.set_oid.clone(),
            None => {
                // Referred to before it was sent: reserve its set OID now.
                let oid = state.allocate(&root, 13);
                let reservation = CrosswalkRow {
                    set_oid: oid.clone(),
                    latest_version: 0,
                    latest_document: oid.clone(),
                    latest_revision: 0,
                    content_digest: String::new(),
                    exchange_id: job.exchange_id.clone(),
                };
                state.put_crosswalk(ref_key, reservation);
                oid
            }
        };
        context.remember(ref_kind, ref_id, &oid);
    }
    context.set("document_oid", json!(document_oid));
    context.set("version", json!(version));
    if let Some(replaces) = replaces {
        context.set("replaces", replaces);
    }

    let version = NewVersion {
        key,
        row: CrosswalkRow {
            set_oid,
            latest_version: version,
            latest_document: document_oid,
            latest_revision: facts.revision,
            content_digest: facts.digest.clone(),
            exchange_id: job.exchange_id.clone(),
        },
    };
    Step::Map(Planned {
        plan,
        record,
        direction: Direction::Forward,
        context: Box::new(context),
        entry,
        version: Some(version),
    })
}

fn finish_forward(
    engine: &Engine,
    state: &mut State,
    job: &Job,
    planned: Planned<'_>,
    mapped: MappedText,
) -> (ExchangeResult, AuditEntry) {
    let Planned {
        plan,
        mut entry,
        version,
        ..
    } = planned;
    let Some(body) = mapped.text else {
        return refused(job, entry, mapped.issues, 422);
    };
    let Some(NewVersion { row, .. }) = version else {
        let issue = Issue::error(
            IssueCode::Processing,
            "exchange.internal",
            "",
            "the record could not be prepared",
        );
        return refused(job, entry, vec![issue], 422);
    };
    entry.output_digest = mapped.digest;
    state
        .bodies
        .insert(row.latest_document.clone(), Arc::clone(&body));
    let text = Arc::clone(&body);
    state.documents.push(DocumentRow {
        document_oid: row.latest_document.clone(),
        set_oid: row.set_oid.clone(),
        version: row.latest_version,
        exchange_id: job.exchange_id.clone(),
        body,
        packed: mapped.packed,
    });
    if let Some(kanta) = engine.profiles.get(&plan.header.kanta) {
        entry.profiles.push(kanta.stamp().clone());
    }
    entry.outcome = Outcome::Accepted.as_str().to_owned();
    entry.document_oid = Some(row.latest_document.clone());
    entry.set_oid = Some(row.set_oid);
    entry.version = Some(row.latest_version);
    entry.delivery = Some("pending".to_owned());
    (
        ExchangeResult {
            exchange_id: job.exchange_id.clone(),
            outcome: Outcome::Accepted,
            status: 201,
            document: Some(text),
            document_oid: Some(row.latest_document),
            version: Some(row.latest_version),
            issues: Vec::new(),
        },
        entry,
    )
}

fn backward<'b>(
    engine: &Engine,
    state: &State,
    facts: &Facts<'b>,
    document: &'b Value,
    mut entry: AuditEntry,
) -> Step<'b> {
    let plan = facts.plan;
    let mut context = context_for(engine);
    for (kind, oid) in &facts.refs {
        let known = if kind == CASE_KIND {
            state.case_ids.get(oid).cloned()
        } else {
            state
                .by_set
                .get(oid)
                .filter(|key| key.1 == *kind)
                .map(|key| key.2.clone())
        };
        if let Some(id) = known {
            context.remember(kind, &id, oid);
        }
    }
    context.prepare(plan, document, Direction::Backward);
    entry.source_system = Some("KANTA".to_owned());
    entry.document_oid = document
        .pointer("/header/documentOid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    entry.set_oid = document
        .pointer("/header/setOid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    entry.version = document.pointer("/header/version").and_then(Value::as_i64);
    Step::Map(Planned {
        plan,
        record: document,
        direction: Direction::Backward,
        context: Box::new(context),
        entry,
        version: None,
    })
}

fn finish_backward(
    engine: &Engine,
    job: &Job,
    planned: Planned<'_>,
    mapped: MappedText,
) -> (ExchangeResult, AuditEntry) {
    let Planned {
        plan, mut entry, ..
    } = planned;
    let Some(body) = mapped.text else {
        return refused(job, entry, mapped.issues, 422);
    };
    if let Some(import) = engine.profiles.get(&plan.header.apotti_import) {
        entry.profiles.push(import.stamp().clone());
    }
    entry.outcome = Outcome::Accepted.as_str().to_owned();
    entry.output_digest = mapped.digest;
    (
        ExchangeResult {
            exchange_id: job.exchange_id.clone(),
            outcome: Outcome::Accepted,
            status: 200,
            document: Some(body),
            document_oid: entry.document_oid.clone(),
            version: entry.version,
            issues: Vec::new(),
        },
        entry,
    )
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Forward => "apotti-to-kanta",
        Direction::Backward => "kanta-to-apotti",
    }
}

/// The entry every exchange's audit entry starts from. `with_subject`: whether it names the
/// record's client, source system and id (read when the record was made ready).
fn base_entry(job: &Job, with_subject: bool) -> AuditEntry {
    let subject = if with_subject {
        job.subject.clone()
    } else {
        Subject::default()
    };
    AuditEntry {
        exchange_id: job.exchange_id.clone(),
        recorded_at: now_utc(),
        event: "exchange".to_owned(),
        direction: direction_name(job.direction).to_owned(),
        actor: job.actor.clone(),
        source_system: subject.source_system,
        record_type: None,
        client_hash: subject.client_hash,
        record_id: subject.record_id,
        document_oid: None,
        set_oid: None,
        version: None,
        input_digest: job.input_digest.clone(),
        output_digest: None,
        profiles: Vec::new(),
        mapping: None,
        outcome: Outcome::Refused.as_str().to_owned(),
        issues: Vec::new(),
        delivery: None,
        details: None,
    }
}

fn refused(
    job: &Job,
    mut entry: AuditEntry,
    issues: Vec<Issue>,
    status: u16,
) -> (ExchangeResult, AuditEntry) {
    entry.outcome = Outcome::Refused.as_str().to_owned();
    entry.issues = issues.iter().map(LoggedIssue::from).collect();
    (
        ExchangeResult {
            exchange_id: job.exchange_id.clone(),
            outcome: Outcome::Refused,
            status,
            document: None,
            document_oid: None,
            version: None,
            issues,
        },
        entry,
    )
}

/// The EHR revision: the field of the rule whose way back takes the `revision` context.
fn revision_of(plan: &MappingPlan, record: &Value) -> Option<i64> {
    plan.rules
        .iter()
        .find(|rule| matches!(&rule.reverse, Source::Context(name) if name == "revision"))
        .and_then(|rule| rule.apotti.as_ref())
        .and_then(|ptr| ptr.get(record))
        .and_then(Value::as_i64)
}

fn current_year() -> i64 {
    let zone = jiff::tz::db()
        .get("Europe/Helsinki")
        .unwrap_or(jiff::tz::TimeZone::UTC);
    i64::from(jiff::Zoned::now().with_time_zone(zone).year())
}

fn context_for(engine: &Engine) -> LocalContext {
    LocalContext::with_shared("1.2.246.10.0", 2026, Arc::clone(&engine.context_values))
        .without_allocation()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, ClientHasher};
    use crate::config::Config;

    fn example(path: &str) -> Value {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../profiles/examples")
            .join(path);
        let text = std::fs::read_to_string(file).expect("example");
        serde_json::from_str(&text).expect("json")
    }

    fn decision(n: usize, revision: i64, text: &str, msg: &str) -> Value {
        let mut record = example("apotti/SOSKU_DECISION/valid/positive-approved.json");
        record["DECISION"]["DECISION_ID"] = json!(format!("SD-BATCH-{n}"));
        record["DECISION"]["REVISION"] = json!(revision);
        record["DECISION"]["JUSTIFICATION_TEXT"] = json!(text);
        record["MSG_ID"] = json!(msg);
        record
    }

    /// A batch in which records depend on each other, in the order a stream would bring them.
    fn dependent_records() -> Vec<Value> {
        let mut records = Vec::new();
        for n in 0..100 {
            records.push(decision(n, 1, "Ensimmäinen.", &format!("M-{n}-1")));
        }
        for n in 0..30 {
            records.push(decision(n, 2, "Täydennetty.", &format!("M-{n}-2")));
        }
        for n in 0..15 {
            records.push(decision(n, 2, "Täydennetty.", &format!("M-{n}-2-again")));
        }
        for n in 15..30 {
            records.push(decision(n, 2, "Toinen.", &format!("M-{n}-2-other")));
        }
        records
    }

    type Answer = tokio::sync::oneshot::Receiver<Result<ExchangeResult, Unavailable>>;

    fn jobs(engine: &Engine, records: Vec<Value>) -> Vec<Job> {
        jobs_with_answers(engine, records, 0).0
    }

    /// Jobs for `records` (numbered from `first`), and where each one's answer arrives.
    fn jobs_with_answers(
        engine: &Engine,
        records: Vec<Value>,
        first: usize,
    ) -> (Vec<Job>, Vec<Answer>) {
        let mut answers = Vec::new();
        let jobs = records
            .into_iter()
            .enumerate()
            .map(|(n, record)| {
                let n = first + n;
                let (reply, answer) = tokio::sync::oneshot::channel();
                answers.push(answer);
                let prepared = match engine.profiles.select(&record) {
                    Ok(profile) if engine.profiles.validate_with(profile, &record).is_empty() => {
                        Prepared::Valid {
                            plan: engine
                                .mappings
                                .plans
                                .iter()
                                .position(|plan| plan.header.apotti == profile.id())
                                .expect("plan"),
                            profile: profile.stamp().clone(),
                            content_digest: audit::record_digests(&record).content,
                            record,
                        }
                    }
                    _ => panic!("record {n} is not valid"),
                };
                Job {
                    exchange_id: format!("exchange-{n}"),
                    direction: Direction::Forward,
                    actor: Actor::local(),
                    input_digest: String::new(),
                    subject: match &prepared {
                        Prepared::Valid { record, .. } => Subject::of(record, &engine.hasher),
                        _ => Subject::default(),
                    },
                    prepared,
                    reply,
                }
            })
            .collect();
        (jobs, answers)
    }

    /// One batch, decided under the lock and committed, without the pipeline.
    async fn commit(
        engine: &Engine,
        store: &Store,
        batch: &[Job],
    ) -> Result<Vec<ExchangeResult>, StoreError> {
        let facts: Vec<Option<Facts<'_>>> = batch.iter().map(|job| facts(engine, job)).collect();
        let locked =
            lock_and_decide(engine, store, batch, &facts, None, &mut Timings::default()).await?;
        write(locked.tx, locked.writes, locked.entries).await?;
        Ok(locked.results)
    }

    /// The answers of `batch` committed one job at a time, on a store of their own.
    async fn one_by_one(engine: &Engine, batch: &[Job]) -> Vec<ExchangeResult> {
        let dir = tempfile::tempdir().expect("dir");
        let single_store = store(&dir).await;
        let mut results = Vec::new();
        for job in batch {
            let mut result = commit(engine, &single_store, std::slice::from_ref(job))
                .await
                .expect("commit");
            results.append(&mut result);
        }
        results
    }

    async fn answered(answers: Vec<Answer>) -> Vec<ExchangeResult> {
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.expect("answered").expect("committed"));
        }
        results
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}/gateway.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        store
    }

    /// What a caller sees of an answer, and what the log keeps of it (the time left out).
    fn seen(results: &[ExchangeResult]) -> Vec<Value> {
        results
            .iter()
            .map(|result| {
                json!({
                    "result": result,
                    "document": result.document,
                    "status": result.status,
                    "issues": result.issues.iter().map(|i| (&i.rule, &i.pointer)).collect::<Vec<_>>(),
                })
            })
            .collect()
    }

    /// Commits `records` as one batch and one job at a time, on two stores; the answers agree.
    /// Then sends the last revision of the first records again, as a batch of its own on the
    /// first store: what the batch wrote to the crosswalk makes them duplicates.
    async fn together_and_one_by_one(engine: &Engine, records: Vec<Value>) -> Vec<u16> {
        let batch = jobs(engine, records);
        assert!(
            batch.len() >= 2 * parallel::MIN_PER_THREAD,
            "large enough to be mapped in parallel"
        );
        let whole = tempfile::tempdir().expect("dir");
        let whole_store = store(&whole).await;
        let together = commit(engine, &whole_store, &batch).await.expect("commit");
        let again: Vec<Value> = (0..15)
            .map(|n| decision(n, 2, "Täydennetty.", &format!("M-{n}-2-later")))
            .collect();
        let later = commit(engine, &whole_store, &jobs(engine, again))
            .await
            .expect("commit");
        assert!(
            later.iter().all(|r| r.outcome == Outcome::Duplicate),
            "the stored crosswalk holds each record's latest version"
        );
        // SQLite keeps documents packed (the resends above were answered from them).
        let url = format!("sqlite://{}/gateway.db", whole.path().display());
        let raw = sqlx::AnyPool::connect(&url).await.expect("connect");
        let kinds: Vec<(String, i64)> =
            sqlx::query_as("SELECT typeof(body), count(*) FROM documents GROUP BY 1")
                .fetch_all(&raw)
                .await
                .expect("body kinds");
        raw.close().await;
        assert_eq!(kinds.len(), 1, "{kinds:?}");
        assert_eq!(kinds[0].0, "blob");
        assert_eq!(seen(&together), seen(&one_by_one(engine, &batch).await));
        together.iter().map(|r| r.status).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_batch_answers_as_one_job_after_the_other() {
        let engine = crate::server::load_engine(&Config::default(), ClientHasher::new(b"k"))
            .expect("engine");
        let statuses = together_and_one_by_one(&engine, dependent_records()).await;
        assert_eq!(&statuses[..100], &[201; 100]);
        assert_eq!(&statuses[100..130], &[201; 30], "revisions");
        assert_eq!(
            &statuses[130..145],
            &[200; 15],
            "resends of this batch's versions"
        );
        assert_eq!(&statuses[145..], &[409; 15], "conflicts");

        // A record that cannot be mapped, amid others.
        let mut records = dependent_records();
        let mut unmappable =
            example("apotti/SOSKU_DECISION/valid/voided-restricted-untranslated-municipality.json");
        unmappable["DECISION"]["DECISION_ID"] = json!("SD-BATCH-UNMAPPABLE");
        records.insert(100, unmappable.clone());
        records.insert(101, unmappable);
        let statuses = together_and_one_by_one(&engine, records).await;
        assert_eq!(statuses[100], 422, "the record that cannot be mapped");
        assert_eq!(
            statuses[101], 422,
            "sent again: never accepted, so no duplicate"
        );
        assert_eq!(&statuses[102..132], &[201; 30], "revisions");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_without_dependencies_is_mapped_in_parallel_with_the_same_answers() {
        let engine = crate::server::load_engine(&Config::default(), ClientHasher::new(b"k"))
            .expect("engine");
        let records: Vec<Value> = (0..200)
            .map(|n| decision(n, 1, "Ensimmäinen.", &format!("M-{n}")))
            .collect();
        let batch = jobs(&engine, records);
        let facts: Vec<Option<Facts<'_>>> = batch.iter().map(|job| facts(&engine, job)).collect();
        let mut parallel_state = State {
            year: 2026,
            ..State::default()
        };
        let mut serial_state = parallel_state.clone();
        let in_parallel = decide_in_parallel(&engine, &mut parallel_state, &batch, &facts)
            .expect("no dependencies: decided in parallel");
        let serial: Vec<(ExchangeResult, AuditEntry)> = batch
            .iter()
            .zip(&facts)
            .map(|(job, facts)| decide(&engine, &mut serial_state, job, facts.as_ref()))
            .collect();
        let results = |decided: &[(ExchangeResult, AuditEntry)]| {
            decided.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>()
        };
        assert_eq!(seen(&results(&in_parallel)), seen(&results(&serial)));
        assert_eq!(parallel_state.documents.len(), 200);
        assert_eq!(parallel_state.crosswalk_writes.len(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_decided_ahead_builds_on_what_the_batch_before_writes() {
        let engine = crate::server::load_engine(&Config::default(), ClientHasher::new(b"k"))
            .expect("engine");
        let mut records = dependent_records();
        let mut later = records.split_off(100);
        // Resends of versions the first batch makes: answered with its documents.
        later.extend((50..60).map(|n| decision(n, 1, "Ensimmäinen.", &format!("M-{n}-1-again"))));
        let dir = tempfile::tempdir().expect("dir");
        let shared = store(&dir).await;
        let first = jobs(&engine, records.clone());
        let first_facts: Vec<_> = first.iter().map(|job| facts(&engine, job)).collect();
        let Locked {
            mut results,
            writes: first_writes,
            entries,
            tx,
        } = lock_and_decide(
            &engine,
            &shared,
            &first,
            &first_facts,
            None,
            &mut Timings::default(),
        )
        .await
        .expect("first batch");
        // Decided while the first batch holds the lock and has written nothing yet.
        let (second, _) = jobs_with_answers(&engine, later.clone(), 100);
        let second_facts: Vec<_> = second.iter().map(|job| facts(&engine, job)).collect();
        let mut timings = Timings::default();
        let ahead = decide_ahead(
            &engine,
            &shared,
            &second,
            &second_facts,
            &first_writes,
            &mut timings,
        )
        .await
        .expect("read while the first batch is written");
        write(tx, first_writes, entries)
            .await
            .expect("first commit");
        let Locked {
            results: mut second_results,
            writes: second_writes,
            entries,
            tx,
        } = lock_and_decide(
            &engine,
            &shared,
            &second,
            &second_facts,
            Some(ahead),
            &mut timings,
        )
        .await
        .expect("second batch");
        assert!(timings.ahead, "the decision made ahead held");
        write(tx, second_writes, entries)
            .await
            .expect("second commit");
        results.append(&mut second_results);
        // The second batch's entries were chained ahead, onto the head the first left.
        let verified = crate::http::verify_log(&shared).await.expect("verify");
        assert!(verified.intact, "{verified:?}");
        assert_eq!(usize::try_from(verified.entries).ok(), Some(results.len()));

        let all = jobs(&engine, records.into_iter().chain(later).collect());
        assert_eq!(seen(&results), seen(&one_by_one(&engine, &all).await));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_decided_ahead_answer_as_one_job_after_the_other() {
        let engine = Arc::new(
            crate::server::load_engine(&Config::default(), ClientHasher::new(b"k"))
                .expect("engine"),
        );
        let mut records = dependent_records();
        // A record that cannot be mapped, in a batch decided ahead: that batch is read again
        // and decided one job after the other.
        let mut unmappable =
            example("apotti/SOSKU_DECISION/valid/voided-restricted-untranslated-municipality.json");
        unmappable["DECISION"]["DECISION_ID"] = json!("SD-BATCH-UNMAPPABLE");
        records.insert(110, unmappable);
        let dir = tempfile::tempdir().expect("dir");
        let mut pipeline = Pipeline::new(Arc::clone(&engine), store(&dir).await);
        let mut answers = Vec::new();
        // Batches of 25: first versions, revisions and resends fall in later batches than the
        // versions they build on, which are still being committed when those are decided.
        for (n, chunk) in records.chunks(25).enumerate() {
            let (batch, mut batch_answers) = jobs_with_answers(&engine, chunk.to_vec(), n * 25);
            pipeline.submit(batch).await;
            answers.append(&mut batch_answers);
        }
        pipeline.drain().await;
        assert_eq!(pipeline.decided_ahead, 6, "every batch after the first");
        assert_eq!(pipeline.decided_again, 0);
        let pipelined = answered(answers).await;
        assert_eq!(
            pipelined[110].status, 422,
            "the record that cannot be mapped"
        );

        let single = one_by_one(&engine, &jobs(&engine, records)).await;
        assert_eq!(seen(&pipelined), seen(&single));
        let verified = crate::http::verify_log(&pipeline.store)
            .await
            .expect("verify");
        assert!(verified.intact, "{verified:?}");
        assert_eq!(verified.entries, 161);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_decided_ahead_is_decided_again_when_another_writer_came_between() {
        let engine = Arc::new(
            crate::server::load_engine(&Config::default(), ClientHasher::new(b"k"))
                .expect("engine"),
        );
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}/gateway.db?mode=rwc", dir.path().display());
        let mut first = Pipeline::new(Arc::clone(&engine), store(&dir).await);
        let mut second = Pipeline::new(
            Arc::clone(&engine),
            Store::connect(&url).await.expect("store"),
        );
        let revision = |revision: i64, first_job: usize| {
            let records = (0..10)
                .map(|n| {
                    decision(
                        n,
                        revision,
                        &format!("Versio {revision}."),
                        &format!("M-{n}-{revision}"),
                    )
                })
                .collect();
            jobs_with_answers(&engine, records, first_job)
        };
        let (batch, first_versions) = revision(1, 0);
        first.submit(batch).await;
        // Another process writes revision 2 while the first batch is still in flight.
        let (batch, second_versions) = revision(2, 10);
        second.submit(batch).await;
        second.drain().await;
        // Decided on top of the first batch alone, revision 3 would become version 2 again.
        let (batch, third_versions) = revision(3, 20);
        first.submit(batch).await;
        first.drain().await;
        assert_eq!(first.decided_ahead, 1);
        assert_eq!(first.decided_again, 1, "the chain head had moved");
        for (answers, version) in [
            (first_versions, 1),
            (second_versions, 2),
            (third_versions, 3),
        ] {
            for result in answered(answers).await {
                assert_eq!(result.status, 201);
                assert_eq!(result.version, Some(version));
            }
        }
        let verified = crate::http::verify_log(&first.store).await.expect("verify");
        assert!(verified.intact, "{verified:?}");
        assert_eq!(verified.entries, 30);
    }
}
