//! One exchange, end to end: validate the source, keep the identifiers straight, map, validate
//! the target, and write the audit entry (and the crosswalk and document) in one transaction.
//!
//! Request tasks do the parallel part (parse, select profile, validate source). Everything that
//! touches the crosswalk or the audit chain goes through one writer task per process, which
//! commits whole batches of exchanges in one transaction (group commit): each commit is durable
//! and the chain is appended in order, yet a busy gateway pays one fsync per batch, not per
//! record. Several processes on one PostgreSQL database serialise on the chain head row. No
//! exchange is answered before its transaction commits; when the store cannot be written,
//! every exchange of the batch is refused as unavailable (fail closed).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::audit::{self, Actor, AuditEntry, ClientHasher, LoggedIssue, MappingStamp};
use crate::config::Producer;
use crate::identifiers;
use crate::mapping::MappingSet;
use crate::mapping::context::{LocalContext, crosswalk_refs, identity};
use crate::mapping::engine::Direction;
use crate::mapping::plan::{MappingPlan, Source};
use crate::outcome::{Issue, IssueCode};
use crate::profiles::{ProfileRegistry, ProfileStamp};
use crate::store::{self, CrosswalkRow, Store, StoreError, Tx};

/// What became of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A new document version (or import message) was made.
    Accepted,
    /// The same content was sent before: the same answer, no new version.
    Duplicate,
    /// Invalid, unmappable or in conflict with what the gateway holds.
    Refused,
}

impl Outcome {
    /// The word in the log.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Refused => "refused",
        }
    }
}

/// The answer to one exchange.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeResult {
    /// The exchange id (also in the audit log).
    pub exchange_id: String,
    /// Accepted, duplicate or refused.
    pub outcome: Outcome,
    /// HTTP status that fits the outcome.
    #[serde(skip)]
    pub status: u16,
    /// The mapped document or import message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
    /// Document OID of the version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_oid: Option<String>,
    /// Version number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Why it was refused.
    #[serde(skip)]
    pub issues: Vec<Issue>,
}

/// The store could not be written: the exchange was not accepted.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit log cannot be written; the exchange was not accepted")]
pub struct Unavailable;

/// What the request task hands to the writer.
#[derive(Debug)]
pub enum Prepared {
    /// Valid against its profile; the writer maps it.
    Valid {
        /// The record.
        record: Value,
        /// Index of the plan in the mapping set.
        plan: usize,
        /// The source profile.
        profile: ProfileStamp,
    },
    /// Refused before mapping.
    Refused {
        /// Issues.
        issues: Vec<Issue>,
        /// The profile, if one was chosen.
        profile: Option<ProfileStamp>,
        /// The record, if it could be read (for the client hash and type).
        record: Option<Value>,
    },
    /// Not an exchange: an entry of its own (an audit read).
    Entry(Box<AuditEntry>),
}

struct Job {
    exchange_id: String,
    direction: Direction,
    actor: Actor,
    input_digest: String,
    prepared: Prepared,
    reply: oneshot::Sender<Result<ExchangeResult, Unavailable>>,
}

/// Everything an exchange needs that does not change while the gateway runs.
#[derive(Debug)]
pub struct Engine {
    /// Profiles.
    pub profiles: ProfileRegistry,
    /// Mappings.
    pub mappings: MappingSet,
    /// Keyed hash of hetus.
    pub hasher: ClientHasher,
    /// Producer block and defaults.
    pub producer: Producer,
}

/// Submits exchanges; clone freely.
#[derive(Debug, Clone)]
pub struct Gateway {
    engine: Arc<Engine>,
    jobs: mpsc::Sender<Job>,
}

impl Gateway {
    /// Starts the writer task on `store`.
    #[must_use]
    pub fn start(engine: Arc<Engine>, store: Store, max_batch: usize) -> Self {
        let (jobs, receiver) = mpsc::channel(max_batch.max(1) * 4);
        tokio::spawn(writer(
            Arc::clone(&engine),
            store,
            receiver,
            max_batch.max(1),
        ));
        Self { engine, jobs }
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks a record against its source profile and finds its mapping.
    #[must_use]
    pub fn prepare(&self, direction: Direction, record: Result<Value, Issue>) -> Prepared {
        let record = match record {
            Ok(record) => record,
            Err(issue) => {
                return Prepared::Refused {
                    issues: vec![issue],
                    profile: None,
                    record: None,
                };
            }
        };
        let engine = &self.engine;
        let profile = match engine.profiles.select(&record) {
            Ok(profile) => profile,
            Err(issue) => {
                return Prepared::Refused {
                    issues: vec![issue],
                    profile: None,
                    record: Some(record),
                };
            }
        };
        let plan = engine
            .mappings
            .plans
            .iter()
            .position(|plan| match direction {
                Direction::Forward => plan.header.apotti == profile.id(),
                Direction::Backward => plan.header.kanta == profile.id(),
            });
        let Some(plan) = plan else {
            let way = match direction {
                Direction::Forward => "Apotti-like messages",
                Direction::Backward => "Kanta-style documents",
            };
            return Prepared::Refused {
                issues: vec![Issue::error(
                    IssueCode::NotSupported,
                    "exchange.wrong-direction",
                    "",
                    format!(
                        "this route takes {way}; a {} record does not belong here",
                        profile.id()
                    ),
                )],
                profile: Some(profile.stamp().clone()),
                record: Some(record),
            };
        };
        let issues = engine.profiles.validate_with(profile, &record);
        if issues.is_empty() {
            Prepared::Valid {
                record,
                plan,
                profile: profile.stamp().clone(),
            }
        } else {
            Prepared::Refused {
                issues,
                profile: Some(profile.stamp().clone()),
                record: Some(record),
            }
        }
    }

    /// Runs one exchange to its committed end.
    ///
    /// # Errors
    /// [`Unavailable`] when the audit entry could not be written.
    pub async fn exchange(
        &self,
        direction: Direction,
        record: Result<Value, Issue>,
        actor: Actor,
    ) -> Result<ExchangeResult, Unavailable> {
        let input_digest = match &record {
            Ok(value) => audit::digest(&serde_json::to_vec(value).map_err(|_| Unavailable)?),
            Err(issue) => audit::digest(issue.message.as_bytes()),
        };
        let prepared = self.prepare(direction, record);
        self.submit(direction, actor, input_digest, prepared).await
    }

    /// Appends an entry of its own (an audit read) to the log.
    ///
    /// # Errors
    /// [`Unavailable`] when it could not be written.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), Unavailable> {
        let actor = entry.actor.clone();
        let digest = entry.input_digest.clone();
        self.submit(
            Direction::Forward,
            actor,
            digest,
            Prepared::Entry(Box::new(entry)),
        )
        .await
        .map(|_| ())
    }

    async fn submit(
        &self,
        direction: Direction,
        actor: Actor,
        input_digest: String,
        prepared: Prepared,
    ) -> Result<ExchangeResult, Unavailable> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            exchange_id: uuid::Uuid::new_v4().to_string(),
            direction,
            actor,
            input_digest,
            prepared,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| Unavailable)?;
        answer.await.map_err(|_| Unavailable)?
    }
}

/// Now, RFC 3339 UTC with microseconds (fixed width, so text order is time order).
#[must_use]
pub fn now_utc() -> String {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.subsec_nanosecond() / 1000
    )
}

async fn writer(
    engine: Arc<Engine>,
    store: Store,
    mut jobs: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit_batch(&engine, &store, &batch).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(error) => {
                tracing::error!(%error, jobs = batch.len(), "audit write failed; refusing the batch");
                for job in batch {
                    let _ = job.reply.send(Err(Unavailable));
                }
            }
        }
    }
}

async fn commit_batch(
    engine: &Engine,
    store: &Store,
    batch: &[Job],
) -> Result<Vec<ExchangeResult>, StoreError> {
    let (mut tx, mut seq, mut hash) = store.begin_write().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let (result, entry) = process(engine, &mut tx, job).await?;
        seq += 1;
        let json = audit::canonical(&entry)
            .map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
        let entry_hash = audit::chain_hash(&hash, &json);
        store::append_entry(
            &mut tx,
            seq,
            &entry.exchange_id,
            &entry.recorded_at,
            &json,
            &hash,
            &entry_hash,
            (
                &entry.client_hash,
                &entry.actor.subject,
                &entry.outcome,
                &entry.record_type,
                &entry.direction,
            ),
        )
        .await?;
        hash = entry_hash;
        results.push(result);
    }
    store::set_head(&mut tx, seq, &hash).await?;
    tx.commit().await?;
    Ok(results)
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Forward => "apotti-to-kanta",
        Direction::Backward => "kanta-to-apotti",
    }
}

fn hetu_of(record: &Value) -> Option<&str> {
    ["/PATIENT/SSN", "/header/client/hetu"]
        .iter()
        .find_map(|p| record.pointer(p).and_then(Value::as_str))
}

fn base_entry(engine: &Engine, job: &Job, record: Option<&Value>) -> AuditEntry {
    AuditEntry {
        exchange_id: job.exchange_id.clone(),
        recorded_at: now_utc(),
        event: "exchange".to_owned(),
        direction: direction_name(job.direction).to_owned(),
        actor: job.actor.clone(),
        source_system: record
            .and_then(|r| r.pointer("/SOURCE_SYSTEM"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        record_type: None,
        client_hash: record.and_then(hetu_of).map(|h| engine.hasher.hash(h)),
        record_id: record.and_then(crate::validate::record_id),
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

/// The pointer of the EHR revision: the rule whose way back takes the `revision` context.
fn revision_of(plan: &MappingPlan, record: &Value) -> Option<i64> {
    plan.rules
        .iter()
        .find(|rule| matches!(&rule.reverse, Source::Context(name) if name == "revision"))
        .and_then(|rule| rule.apotti.as_ref())
        .and_then(|ptr| ptr.get(record))
        .and_then(Value::as_i64)
}

/// Digest of the content that decides "same again": the record without its transfer fields.
fn content_digest(record: &Value) -> String {
    let mut content = record.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("MSG_ID");
        map.remove("MSG_DTTM");
    }
    audit::digest(&serde_json::to_vec(&content).unwrap_or_default())
}

fn current_year() -> i64 {
    i64::from(
        jiff::Zoned::now()
            .with_time_zone(
                jiff::tz::db()
                    .get("Europe/Helsinki")
                    .unwrap_or(jiff::tz::TimeZone::UTC),
            )
            .year(),
    )
}

async fn allocate(tx: &mut Tx, root: &str, arc: i64) -> Result<String, StoreError> {
    let year = current_year();
    let number = store::next_oid_number(tx, root, arc, year).await?;
    Ok(format!("{root}.{arc}.{year}.{number}"))
}

async fn process(
    engine: &Engine,
    tx: &mut Tx,
    job: &Job,
) -> Result<(ExchangeResult, AuditEntry), StoreError> {
    match &job.prepared {
        Prepared::Entry(entry) => Ok((
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
                exchange_id: job.exchange_id.clone(),
                ..(**entry).clone()
            },
        )),
        Prepared::Refused {
            issues,
            profile,
            record,
        } => {
            let mut entry = base_entry(engine, job, record.as_ref());
            entry.profiles = profile.iter().cloned().collect();
            Ok(refused(job, entry, issues.clone(), 422))
        }
        Prepared::Valid {
            record,
            plan,
            profile,
        } => {
            let plan = &engine.mappings.plans[*plan];
            let mut entry = base_entry(engine, job, Some(record));
            entry.record_type = Some(plan.header.id.clone());
            entry.profiles.push(profile.clone());
            entry.mapping = Some(MappingStamp {
                id: plan.header.id.clone(),
                hash: plan.hash.clone(),
            });
            match job.direction {
                Direction::Forward => forward(engine, tx, job, plan, record, entry).await,
                Direction::Backward => backward(engine, tx, job, plan, record, entry).await,
            }
        }
    }
}

fn context_for(engine: &Engine) -> LocalContext {
    let mut context = LocalContext::new("1.2.246.10.0", 2026).without_allocation();
    context.set(
        "producer",
        json!({"vendor": engine.producer.vendor, "product": engine.producer.product, "version": env!("CARGO_PKG_VERSION")}),
    );
    context.set("custodian_type", json!(engine.producer.custodian_type));
    context.set("language", json!(engine.producer.language));
    context
}

async fn forward(
    engine: &Engine,
    tx: &mut Tx,
    job: &Job,
    plan: &MappingPlan,
    record: &Value,
    mut entry: AuditEntry,
) -> Result<(ExchangeResult, AuditEntry), StoreError> {
    let source_system = entry.source_system.clone().unwrap_or_default();
    let Some(root) = record
        .pointer("/SOURCE_ORG_ID")
        .and_then(Value::as_str)
        .and_then(identifiers::custodian_oid_root)
    else {
        let issue = Issue::error(
            IssueCode::Value,
            "exchange.custodian",
            "/SOURCE_ORG_ID",
            "no custodian OID root for this Y-tunnus",
        );
        return Ok(refused(job, entry, vec![issue], 422));
    };
    let Some((kind, source_id)) = identity(plan, record) else {
        let issue = Issue::error(
            IssueCode::Required,
            "exchange.identity",
            "",
            "the record has no id the crosswalk can keep",
        );
        return Ok(refused(job, entry, vec![issue], 422));
    };
    let revision = revision_of(plan, record).unwrap_or(1);
    let digest = content_digest(record);
    let existing = store::crosswalk_get(tx, &source_system, &kind, &source_id).await?;

    // Decide the version.
    let (set_oid, version, document_oid, replaces) = match &existing {
        Some(row) if row.content_digest == digest => {
            // The same content again: the same answer.
            let body = store::document_get(tx, &row.latest_document).await?;
            let document = body.and_then(|b| serde_json::from_str::<Value>(&b).ok());
            entry.outcome = Outcome::Duplicate.as_str().to_owned();
            entry.document_oid = Some(row.latest_document.clone());
            entry.set_oid = Some(row.set_oid.clone());
            entry.version = Some(row.latest_version);
            entry.output_digest = document
                .as_ref()
                .map(|d| audit::digest(&serde_json::to_vec(d).unwrap_or_default()));
            return Ok((
                ExchangeResult {
                    exchange_id: job.exchange_id.clone(),
                    outcome: Outcome::Duplicate,
                    status: 200,
                    document,
                    document_oid: Some(row.latest_document.clone()),
                    version: Some(row.latest_version),
                    issues: Vec::new(),
                },
                entry,
            ));
        }
        Some(row) if row.latest_version > 0 && revision == row.latest_revision => {
            let issue = Issue::error(
                IssueCode::Invariant,
                "exchange.revision-conflict",
                "",
                format!(
                    "revision {revision} of this record is already archived as version {} with other content; send the next revision",
                    row.latest_version
                ),
            );
            return Ok(refused(job, entry, vec![issue], 409));
        }
        Some(row) if row.latest_version > 0 && revision < row.latest_revision => {
            let issue = Issue::error(
                IssueCode::Invariant,
                "exchange.stale-revision",
                "",
                format!(
                    "revision {revision} is older than revision {} already archived",
                    row.latest_revision
                ),
            );
            return Ok(refused(job, entry, vec![issue], 409));
        }
        Some(row) if row.latest_version > 0 => {
            let document_oid = allocate(tx, &root, 13).await?;
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
            let oid = allocate(tx, &root, 13).await?;
            (oid.clone(), 1, oid, None)
        }
    };

    // Resolve every id the mapping will look up.
    let context = context_for(engine);
    context.remember(&kind, &source_id, &set_oid);
    for (ref_kind, ref_id) in crosswalk_refs(plan, record, Direction::Forward) {
        if ref_kind == kind && ref_id == source_id {
            continue;
        }
        if ref_kind == "case" {
            let oid = match store::case_get(tx, &source_system, &ref_id).await? {
                Some(oid) => oid,
                None => {
                    let oid = allocate(tx, &root, 14).await?;
                    store::case_put(tx, &source_system, &ref_id, &oid).await?;
                    oid
                }
            };
            context.remember(&ref_kind, &ref_id, &oid);
            continue;
        }
        let oid = match store::crosswalk_get(tx, &source_system, &ref_kind, &ref_id).await? {
            Some(row) => row.set_oid,
            None => {
                // Referred to before it was sent: reserve its set OID now.
                let oid = allocate(tx, &root, 13).await?;
                let reservation = CrosswalkRow {
                    set_oid: oid.clone(),
                    latest_version: 0,
                    latest_document: oid.clone(),
                    latest_revision: 0,
                    content_digest: String::new(),
                    exchange_id: job.exchange_id.clone(),
                };
                store::crosswalk_put(tx, &source_system, &ref_kind, &ref_id, &reservation).await?;
                oid
            }
        };
        context.remember(&ref_kind, &ref_id, &oid);
    }
    let mut context = context;
    context.set("document_oid", json!(document_oid));
    context.set("version", json!(version));
    if let Some(replaces) = replaces {
        context.set("replaces", replaces);
    }

    let mapped = engine.mappings.run_checked(
        &engine.profiles,
        plan,
        record,
        Direction::Forward,
        &context,
        false,
    );
    let Some(document) = mapped.document else {
        return Ok(refused(job, entry, mapped.issues, 422));
    };
    let body = serde_json::to_string(&document)
        .map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
    store::document_put(
        tx,
        &document_oid,
        &set_oid,
        version,
        &job.exchange_id,
        &body,
    )
    .await?;
    let row = CrosswalkRow {
        set_oid: set_oid.clone(),
        latest_version: version,
        latest_document: document_oid.clone(),
        latest_revision: revision,
        content_digest: digest,
        exchange_id: job.exchange_id.clone(),
    };
    store::crosswalk_put(tx, &source_system, &kind, &source_id, &row).await?;
    if let Some(kanta) = engine.profiles.get(&plan.header.kanta) {
        entry.profiles.push(kanta.stamp().clone());
    }
    entry.outcome = Outcome::Accepted.as_str().to_owned();
    entry.document_oid = Some(document_oid.clone());
    entry.set_oid = Some(set_oid);
    entry.version = Some(version);
    entry.output_digest = Some(audit::digest(body.as_bytes()));
    entry.delivery = Some("pending".to_owned());
    Ok((
        ExchangeResult {
            exchange_id: job.exchange_id.clone(),
            outcome: Outcome::Accepted,
            status: 201,
            document: Some(document),
            document_oid: Some(document_oid),
            version: Some(version),
            issues: Vec::new(),
        },
        entry,
    ))
}

async fn backward(
    engine: &Engine,
    tx: &mut Tx,
    job: &Job,
    plan: &MappingPlan,
    document: &Value,
    mut entry: AuditEntry,
) -> Result<(ExchangeResult, AuditEntry), StoreError> {
    let mut context = context_for(engine);
    for (kind, oid) in crosswalk_refs(plan, document, Direction::Backward) {
        if let Some(id) = store::crosswalk_source_id(tx, &kind, &oid).await? {
            context.remember(&kind, &id, &oid);
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
    let mapped = engine.mappings.run_checked(
        &engine.profiles,
        plan,
        document,
        Direction::Backward,
        &context,
        false,
    );
    let Some(message) = mapped.document else {
        return Ok(refused(job, entry, mapped.issues, 422));
    };
    if let Some(import) = engine.profiles.get(&plan.header.apotti_import) {
        entry.profiles.push(import.stamp().clone());
    }
    entry.outcome = Outcome::Accepted.as_str().to_owned();
    entry.output_digest = Some(audit::digest(
        &serde_json::to_vec(&message).unwrap_or_default(),
    ));
    Ok((
        ExchangeResult {
            exchange_id: job.exchange_id.clone(),
            outcome: Outcome::Accepted,
            status: 200,
            document: Some(message),
            document_oid: entry.document_oid.clone(),
            version: entry.version,
            issues: Vec::new(),
        },
        entry,
    ))
}
