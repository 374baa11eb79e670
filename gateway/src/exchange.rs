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

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::audit::{self, Actor, AuditEntry, ClientHasher};
use crate::config::Producer;
use crate::mapping::MappingSet;
use crate::mapping::context::ContextValues;
use crate::mapping::engine::Direction;
use crate::outcome::{Issue, IssueCode};
use crate::profiles::{ProfileRegistry, ProfileStamp};
use crate::store::Store;

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
    /// The mapped document or import message, as the compact JSON text that was digested and
    /// stored: answers embed it as it is, so it is serialized once.
    #[serde(skip)]
    pub document: Option<std::sync::Arc<str>>,
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
        /// What decides "the same content again" ([`audit::record_digests`]).
        content_digest: String,
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

/// One unit of work for the writer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) exchange_id: String,
    pub(crate) direction: Direction,
    pub(crate) actor: Actor,
    pub(crate) input_digest: String,
    pub(crate) subject: Subject,
    pub(crate) prepared: Prepared,
    pub(crate) reply: oneshot::Sender<Result<ExchangeResult, Unavailable>>,
}

/// Who and what a record is about, as its audit entry names them. Read from the record when it
/// is made ready, side by side with other records, and not by the writer, which decides one
/// exchange after the other.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    pub(crate) source_system: Option<String>,
    /// The keyed hash of the client's hetu.
    pub(crate) client_hash: Option<String>,
    pub(crate) record_id: Option<String>,
}

impl Subject {
    /// The subject of `record` (an Apotti-like message or a Kanta-style document).
    pub(crate) fn of(record: &Value, hasher: &ClientHasher) -> Self {
        let hetu = ["/PATIENT/SSN", "/header/client/hetu"]
            .iter()
            .find_map(|p| record.pointer(p).and_then(Value::as_str));
        Self {
            source_system: record
                .pointer("/SOURCE_SYSTEM")
                .and_then(Value::as_str)
                .map(str::to_owned),
            client_hash: hetu.map(|h| hasher.hash(h)),
            record_id: crate::validate::record_id(record),
        }
    }
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
    /// The named values every mapping run reads from its context (producer, custodian type,
    /// language, source system), made once from `producer`.
    pub context_values: Arc<ContextValues>,
}

/// Submits exchanges; clone freely.
#[derive(Debug, Clone)]
pub struct Gateway {
    engine: Arc<Engine>,
    jobs: mpsc::Sender<Job>,
    max_batch: usize,
}

impl Gateway {
    /// Starts the writer task on `store`.
    #[must_use]
    pub fn start(engine: Arc<Engine>, store: Store, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (jobs, receiver) = mpsc::channel(max_batch * 4);
        tokio::spawn(crate::writer::run(
            Arc::clone(&engine),
            store,
            receiver,
            max_batch,
        ));
        Self {
            engine,
            jobs,
            max_batch,
        }
    }

    /// Records one NDJSON request keeps in flight: four of the writer's batches, so that one
    /// batch can be written, the next decided beside it, and two more parsed and checked.
    #[must_use]
    pub fn stream_window(&self) -> usize {
        self.max_batch * 4
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks a record against its source profile and finds its mapping.
    fn prepare(&self, direction: Direction, record: Value, content_digest: String) -> Prepared {
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
                content_digest,
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
        let ready = self.ready(direction, record)?;
        self.enqueue(actor, ready).await?.await
    }

    /// The part of an exchange that needs no order and no database: the input digest, the
    /// profile and the source validation. Streams run it for many records at once.
    ///
    /// # Errors
    /// [`Unavailable`] when the record cannot even be serialized for its digest.
    pub fn ready(
        &self,
        direction: Direction,
        record: Result<Value, Issue>,
    ) -> Result<Ready, Unavailable> {
        let (input_digest, subject, prepared) = match record {
            Ok(value) => {
                let digests = audit::record_digests(&value);
                let subject = Subject::of(&value, &self.engine.hasher);
                let prepared = self.prepare(direction, value, digests.content);
                (digests.input, subject, prepared)
            }
            Err(issue) => (
                audit::digest(issue.message.as_bytes()),
                Subject::default(),
                Prepared::Refused {
                    issues: vec![issue],
                    profile: None,
                    record: None,
                },
            ),
        };
        Ok(Ready {
            direction,
            input_digest,
            subject,
            prepared,
        })
    }

    /// Hands a ready exchange to the writer, in the order of the calls; the returned future
    /// gives its committed answer.
    ///
    /// # Errors
    /// [`Unavailable`] when the writer has stopped.
    pub async fn enqueue(
        &self,
        actor: Actor,
        ready: Ready,
    ) -> Result<impl Future<Output = Result<ExchangeResult, Unavailable>> + use<>, Unavailable>
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            // Time-ordered (UUIDv7): each new id sorts after the last, so the audit log's
            // index by exchange grows at its end. Random ids (v4) put each entry on a random
            // page of that index, and a batch of 1 000 rewrote hundreds of pages of it.
            exchange_id: uuid::Uuid::now_v7().to_string(),
            direction: ready.direction,
            actor,
            input_digest: ready.input_digest,
            subject: ready.subject,
            prepared: ready.prepared,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| Unavailable)?;
        Ok(async move { answer.await.map_err(|_| Unavailable)? })
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
        let ready = Ready {
            direction,
            input_digest,
            subject: Subject::default(),
            prepared,
        };
        self.enqueue(actor, ready).await?.await
    }
}

/// An exchange checked and digested, waiting for its turn at the writer.
#[derive(Debug)]
pub struct Ready {
    direction: Direction,
    input_digest: String,
    subject: Subject,
    prepared: Prepared,
}

/// Now, RFC 3339 UTC with microseconds (fixed width, so text order is time order).
#[must_use]
pub fn now_utc() -> String {
    utc_rfc3339(jiff::Timestamp::now())
}

/// An instant as RFC 3339 UTC with microseconds, the fixed-width form the store compares.
#[must_use]
pub fn utc_rfc3339(instant: jiff::Timestamp) -> String {
    let now = instant.to_zoned(jiff::tz::TimeZone::UTC);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_subject_names_the_client_by_keyed_hash_and_the_record_by_its_ids() {
        let hasher = ClientHasher::new(b"test key");
        let message = json!({
            "MSG_ID": "MSG-900",
            "SOURCE_SYSTEM": "APOTTI",
            "PATIENT": {"SSN": "150488-902P"},
        });
        let subject = Subject::of(&message, &hasher);
        assert_eq!(subject.source_system.as_deref(), Some("APOTTI"));
        assert_eq!(subject.record_id.as_deref(), Some("MSG-900"));
        assert_eq!(subject.client_hash, Some(hasher.hash("150488-902P")));
        assert_ne!(subject.client_hash.as_deref(), Some("150488-902P"));

        let document = json!({"header": {
            "documentOid": "1.2.246.10.2012566.13.2026.1",
            "client": {"hetu": "010199+925U"},
        }});
        let subject = Subject::of(&document, &hasher);
        assert_eq!(subject.source_system, None);
        assert_eq!(
            subject.record_id.as_deref(),
            Some("1.2.246.10.2012566.13.2026.1")
        );
        assert_eq!(subject.client_hash, Some(hasher.hash("010199+925U")));

        let nobody = Subject::of(&json!({"MSG_ID": 5}), &hasher);
        assert!(nobody.client_hash.is_none() && nobody.record_id.is_none());
    }
}
