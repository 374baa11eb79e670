//! The audit log's entries, their hash chain and its verification, and the shapes auditors
//! read them in (NDJSON, CSV, FHIR AuditEvent).
//!
//! Every exchange, accepted or refused, and every read of audit data leaves one entry. An
//! entry is serialised once into canonical JSON (struct field order, sorted maps); its hash is
//! `SHA-256(previous hash ‖ "\n" ‖ entry)`, so changing, deleting, inserting or reordering any
//! entry breaks the chain at that point, and the head row (last sequence number and hash)
//! catches a cut tail. The client appears only as an HMAC of the hetu under a configured key:
//! an auditor can find a client's entries by asking with the hetu, but the log itself holds no
//! personal identity code.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::json_text;
use crate::outcome::Issue;
use crate::profiles::ProfileStamp;

/// The hash a chain starts from.
pub const GENESIS: &str = "genesis";

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Subject (a user or a system client).
    pub subject: String,
    /// OAuth client id or certificate name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The role the request was allowed under.
    pub role: String,
}

impl Actor {
    /// The actor when authentication is off (loopback only).
    #[must_use]
    pub fn local() -> Self {
        Self {
            subject: "local".to_owned(),
            client_id: None,
            role: "integrator".to_owned(),
        }
    }

    /// The actor of a refused request whose caller is not known.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            subject: "anonymous".to_owned(),
            client_id: None,
            role: "none".to_owned(),
        }
    }
}

/// An issue as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedIssue {
    /// Rule id.
    pub rule: String,
    /// JSON Pointer.
    pub pointer: String,
    /// Message (never quotes a hetu).
    pub message: String,
}

impl From<&Issue> for LoggedIssue {
    fn from(issue: &Issue) -> Self {
        Self {
            rule: issue.rule.clone(),
            pointer: issue.pointer.clone(),
            message: issue.message.clone(),
        }
    }
}

/// Mapping id and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingStamp {
    /// Mapping id.
    pub id: String,
    /// `sha256:…` of the mapping file.
    pub hash: String,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The exchange (or request) this entry records.
    pub exchange_id: String,
    /// When, RFC 3339 UTC.
    pub recorded_at: String,
    /// `exchange`, `validate`, `audit-read`, …
    pub event: String,
    /// `apotti-to-kanta`, `kanta-to-apotti`, or the operation.
    pub direction: String,
    /// Who.
    pub actor: Actor,
    /// The sending system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_system: Option<String>,
    /// The record type (`decision`, `plan`, `visit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    /// HMAC of the client's hetu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_hash: Option<String>,
    /// The record's id in the source system (`MSG_ID`, or the document OID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Document OID of the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_oid: Option<String>,
    /// The document set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_oid: Option<String>,
    /// The version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// SHA-256 of the input record.
    pub input_digest: String,
    /// SHA-256 of the output document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_digest: Option<String>,
    /// Profiles that judged it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileStamp>,
    /// Mapping that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingStamp>,
    /// `accepted`, `duplicate` or `refused` (or `read` for audit reads).
    pub outcome: String,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<LoggedIssue>,
    /// Delivery status of an accepted document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Anything else (an audit query and its result count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl AuditEntry {
    /// An entry that is not an exchange of a record (a read of the log, a refused request, an
    /// operator's check): who, what, how it ended, and the digest of what was asked. The
    /// record fields are empty; set `details` and the rest as needed.
    #[must_use]
    pub fn event(
        event: &str,
        direction: impl Into<String>,
        actor: Actor,
        outcome: &str,
        input_digest: String,
    ) -> Self {
        Self {
            exchange_id: String::new(),
            recorded_at: crate::exchange::now_utc(),
            event: event.to_owned(),
            direction: direction.into(),
            actor,
            source_system: None,
            record_type: None,
            client_hash: None,
            record_id: None,
            document_oid: None,
            set_oid: None,
            version: None,
            input_digest,
            output_digest: None,
            profiles: Vec::new(),
            mapping: None,
            outcome: outcome.to_owned(),
            issues: Vec::new(),
            delivery: None,
            details: None,
        }
    }

    /// A read of audit data: who, which operation, the query and how many entries it gave.
    #[must_use]
    pub fn read(actor: Actor, operation: &str, query: &serde_json::Value, count: usize) -> Self {
        let mut entry = Self::event(
            "audit-read",
            operation,
            actor,
            "read",
            digest(query.to_string().as_bytes()),
        );
        entry.details = Some(serde_json::json!({"query": query, "resultCount": count}));
        entry
    }
}

/// The canonical bytes of an entry, the input of its hash.
///
/// # Errors
/// Never in practice (the entry is plain data); kept a `Result` to avoid a panic path.
pub fn canonical(entry: &AuditEntry) -> Result<String, serde_json::Error> {
    serde_json::to_string(entry)
}

/// `SHA-256(prev ‖ "\n" ‖ entry)` in hex.
#[must_use]
pub fn chain_hash(prev: &str, entry_json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(entry_json.as_bytes());
    tagged_hex("", hasher.finalize().into())
}

/// `sha256:<hex>` of some bytes.
#[must_use]
pub fn digest(bytes: &[u8]) -> String {
    tagged_hex("sha256:", Sha256::digest(bytes).into())
}

/// `tag` followed by the lower-case hex of a 32-byte hash, made as one string: `format!` over
/// `hex::encode` (an iterator per character, and a second string) showed in a stream's
/// instruction count, where every record gets five of these.
fn tagged_hex(tag: &str, hash: [u8; 32]) -> String {
    let mut hex = [0u8; 64];
    // Cannot fail: the buffer holds two characters per byte.
    let _ = hex::encode_to_slice(hash, &mut hex);
    let mut text = String::with_capacity(tag.len() + hex.len());
    text.push_str(tag);
    text.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    text
}

/// Members of an Apotti-like message that say how it travelled, not what it says: a resend
/// differs from the first send only in these.
pub const TRANSFER_MEMBERS: [&str; 2] = ["MSG_ID", "MSG_DTTM"];

/// A record's two digests from one serialization: `input` over its compact JSON (the audit
/// entry's input digest) and `content` over the same without the [`TRANSFER_MEMBERS`] (what
/// decides "the same content again"). Each equals [`digest`] of `serde_json::to_vec` of the
/// record, or of the record without those members; the text is written by
/// [`json_text`], which writes the same bytes faster.
#[must_use]
pub fn record_digests(record: &Value) -> RecordDigests {
    let Some(members) = record.as_object() else {
        let whole = digest(&json_text::to_vec(record));
        return RecordDigests {
            content: whole.clone(),
            input: whole,
        };
    };
    let mut input = Sha256::new();
    let mut content = Sha256::new();
    input.update(b"{");
    content.update(b"{");
    let mut member = Vec::with_capacity(512);
    let mut content_is_empty = true;
    for (index, (key, value)) in members.iter().enumerate() {
        member.clear();
        json_text::write_str(key, &mut member);
        member.push(b':');
        json_text::write(value, &mut member);
        if index > 0 {
            input.update(b",");
        }
        input.update(&member);
        if !TRANSFER_MEMBERS.contains(&key.as_str()) {
            if !content_is_empty {
                content.update(b",");
            }
            content_is_empty = false;
            content.update(&member);
        }
    }
    input.update(b"}");
    content.update(b"}");
    RecordDigests {
        input: tagged_hex("sha256:", input.finalize().into()),
        content: tagged_hex("sha256:", content.finalize().into()),
    }
}

/// See [`record_digests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDigests {
    /// Over the whole record.
    pub input: String,
    /// Over the record without its transfer members.
    pub content: String,
}

/// The keyed hash that stands in for a hetu.
#[derive(Clone)]
pub struct ClientHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for ClientHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientHasher(***)")
    }
}

impl ClientHasher {
    /// A hasher with this key.
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// `hmac-sha256:<hex>` of the hetu (upper-cased, trimmed: the way it is written does not
    /// change whose it is).
    #[must_use]
    pub fn hash(&self, hetu: &str) -> String {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(hetu.trim().to_ascii_uppercase().as_bytes());
        tagged_hex("hmac-sha256:", mac.finalize().into_bytes().into())
    }
}

/// A stored row of the log, as verification reads it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Sequence number.
    pub seq: i64,
    /// Canonical JSON.
    pub entry: String,
    /// The previous entry's hash, as stored.
    pub prev_hash: String,
    /// This entry's hash, as stored.
    pub entry_hash: String,
    /// Query columns, which must agree with the entry.
    pub client_hash: Option<String>,
    /// Query column.
    pub actor: String,
    /// Query column.
    pub outcome: String,
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: i64,
    /// `true` when the whole chain holds.
    pub intact: bool,
    /// The first problem: which entry and what happened to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_problem: Option<Problem>,
    /// The hash of the last entry (the head), to compare with an earlier copy.
    pub head_hash: String,
}

/// The first entry where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Sequence number of the entry (or where one is missing).
    pub seq: i64,
    /// `modified`, `deleted`, `inserted` or `reordered`.
    pub kind: String,
    /// A sentence.
    pub message: String,
}

/// A break in the chain that needs the rest of the log to classify.
#[derive(Debug)]
struct Break {
    seq: i64,
    expected_seq: i64,
    prev_hash: String,
    expected_prev: String,
    last_good: i64,
}

/// Walks the chain in sequence order, then [`Verifier::finish`] with the stored head row.
///
/// At the first row that does not follow its predecessor it keeps reading, noting the hashes
/// of the rows after it, so that it can tell a deleted entry (nothing later follows the last
/// good one), a reordered one (it or the missing successor stands elsewhere in the log) and
/// an inserted one (it follows nothing in the log).
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    seen_hashes: std::collections::HashMap<String, i64>,
    count: i64,
    problem: Option<Problem>,
    pending: Option<Break>,
    later_hashes: std::collections::HashSet<String>,
    later_prevs: std::collections::HashSet<String>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS.to_owned(),
            seen_hashes: std::collections::HashMap::new(),
            count: 0,
            problem: None,
            pending: None,
            later_hashes: std::collections::HashSet::new(),
            later_prevs: std::collections::HashSet::new(),
        }
    }
}

impl Verifier {
    /// Checks the next row.
    pub fn push(&mut self, row: &StoredEntry) {
        self.count += 1;
        if self.problem.is_some() {
            return;
        }
        if self.pending.is_some() {
            self.later_hashes.insert(row.entry_hash.clone());
            self.later_prevs.insert(row.prev_hash.clone());
            return;
        }
        let modified = |message: String| Problem {
            seq: row.seq,
            kind: "modified".to_owned(),
            message,
        };
        if chain_hash(&row.prev_hash, &row.entry) != row.entry_hash {
            self.problem = Some(modified(format!(
                "entry {} was modified: its content does not match its hash",
                row.seq
            )));
            return;
        }
        match serde_json::from_str::<AuditEntry>(&row.entry) {
            Ok(entry)
                if entry.client_hash != row.client_hash
                    || entry.actor.subject != row.actor
                    || entry.outcome != row.outcome =>
            {
                self.problem = Some(modified(format!(
                    "entry {} was modified: its search columns disagree with its content",
                    row.seq
                )));
                return;
            }
            Ok(_) => {}
            Err(_) => {
                self.problem = Some(modified(format!(
                    "entry {} is not a readable entry",
                    row.seq
                )));
                return;
            }
        }
        if row.prev_hash != self.prev_hash {
            self.pending = Some(Break {
                seq: row.seq,
                expected_seq: self.expected_seq,
                prev_hash: row.prev_hash.clone(),
                expected_prev: self.prev_hash.clone(),
                last_good: self.expected_seq - 1,
            });
            self.later_hashes.insert(row.entry_hash.clone());
            return;
        }
        if row.seq != self.expected_seq {
            self.problem = Some(modified(format!(
                "entry {} carries sequence number {}: the sequence was renumbered",
                self.expected_seq, row.seq
            )));
            return;
        }
        self.seen_hashes.insert(row.entry_hash.clone(), row.seq);
        self.prev_hash = row.entry_hash.clone();
        self.expected_seq += 1;
    }

    /// The report, given the stored head row `(seq, hash)`.
    #[must_use]
    pub fn finish(mut self, head: (i64, String)) -> VerifyReport {
        if let Some(gap) = self.pending.take() {
            let successor_later = self.later_prevs.contains(&gap.expected_prev);
            let belongs_elsewhere = self.seen_hashes.contains_key(&gap.prev_hash)
                || self.later_hashes.contains(&gap.prev_hash);
            let (kind, seq, message) = if belongs_elsewhere
                && (successor_later || self.seen_hashes.contains_key(&gap.prev_hash))
            {
                (
                    "reordered",
                    gap.seq,
                    format!(
                        "entry {} is out of order: it does not follow entry {}, and the entry that does stands elsewhere",
                        gap.seq, gap.last_good
                    ),
                )
            } else if successor_later {
                (
                    "inserted",
                    gap.seq,
                    format!(
                        "entry {} was inserted: it follows no entry of the log, and the true successor of entry {} comes later",
                        gap.seq, gap.last_good
                    ),
                )
            } else if belongs_elsewhere
                || gap.seq > gap.expected_seq
                || !self.seen_hashes.contains_key(&gap.prev_hash)
            {
                (
                    "deleted",
                    gap.expected_seq,
                    format!(
                        "the entry after entry {} was deleted: nothing in the log follows it",
                        gap.last_good
                    ),
                )
            } else {
                (
                    "inserted",
                    gap.seq,
                    format!("entry {} does not follow entry {}", gap.seq, gap.last_good),
                )
            };
            self.problem = Some(Problem {
                seq,
                kind: kind.to_owned(),
                message,
            });
        }
        if self.problem.is_none() && (head.0 != self.expected_seq - 1 || head.1 != self.prev_hash) {
            self.problem = Some(Problem {
                seq: self.expected_seq,
                kind: "deleted".to_owned(),
                message: format!(
                    "the log ends at entry {} but its head says {}: entries at the end were deleted",
                    self.expected_seq - 1,
                    head.0
                ),
            });
        }
        VerifyReport {
            entries: self.count,
            intact: self.problem.is_none(),
            first_problem: self.problem,
            head_hash: self.prev_hash,
        }
    }
}

/// The CSV header of an export.
pub const CSV_HEADER: &str = "seq,recorded_at,exchange_id,event,direction,actor,role,record_type,client_hash,document_oid,version,outcome,issues";

/// One CSV line (RFC 4180 quoting).
#[must_use]
pub fn csv_line(seq: i64, entry: &AuditEntry) -> String {
    fn quote(text: &str) -> String {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    }
    let issues: Vec<String> = entry
        .issues
        .iter()
        .map(|i| format!("{} {}", i.rule, i.pointer))
        .collect();
    [
        seq.to_string(),
        entry.recorded_at.clone(),
        entry.exchange_id.clone(),
        entry.event.clone(),
        entry.direction.clone(),
        entry.actor.subject.clone(),
        entry.actor.role.clone(),
        entry.record_type.clone().unwrap_or_default(),
        entry.client_hash.clone().unwrap_or_default(),
        entry.document_oid.clone().unwrap_or_default(),
        entry.version.map(|v| v.to_string()).unwrap_or_default(),
        entry.outcome.clone(),
        issues.join("; "),
    ]
    .iter()
    .map(|field| quote(field))
    .collect::<Vec<_>>()
    .join(",")
}

/// The entry as a FHIR AuditEvent resource.
#[must_use]
pub fn audit_event(seq: i64, entry: &AuditEntry) -> Value {
    let outcome = match entry.outcome.as_str() {
        "accepted" | "duplicate" | "read" => "0",
        _ => "4",
    };
    let action = match entry.event.as_str() {
        "audit-read" => "R",
        "validate" => "E",
        _ => "C",
    };
    let mut entity = Vec::new();
    if let Some(oid) = &entry.document_oid {
        entity.push(json!({
            "what": {"identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:oid:{oid}")}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "detail": [{"type": "version", "valueString": entry.version.map(|v| v.to_string()).unwrap_or_default()}]
        }));
    }
    if let Some(client) = &entry.client_hash {
        entity.push(json!({
            "what": {"identifier": {"system": "urn:x-sosku:client-hmac", "value": client}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"}
        }));
    }
    json!({
        "resourceType": "AuditEvent",
        "id": format!("{seq}"),
        "type": {"system": "urn:x-sosku:cs:audit-event", "code": entry.event, "display": entry.direction},
        "action": action,
        "recorded": entry.recorded_at,
        "outcome": outcome,
        "outcomeDesc": entry.issues.iter().map(|i| format!("{} {}: {}", i.rule, i.pointer, i.message)).collect::<Vec<_>>().join("; "),
        "agent": [{
            "who": {"identifier": {"value": entry.actor.subject}},
            "altId": entry.actor.client_id,
            "role": [{"text": entry.actor.role}],
            "requestor": true
        }],
        "source": {"observer": {"display": "sosku-gateway"}, "type": [{"code": entry.source_system.clone().unwrap_or_default()}]},
        "entity": entity,
        "extension": [{"url": "urn:x-sosku:exchange-id", "valueString": entry.exchange_id}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes' text is what auditors compare with their own tools: FIPS 180-2's "abc"
    /// vector, and the chain and client hashes as `hex::encode` writes them.
    #[test]
    fn hashes_are_written_as_tagged_lower_case_hex() {
        assert_eq!(
            digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut hasher = Sha256::new();
        hasher.update(b"genesis\n{\"a\":1}");
        assert_eq!(
            chain_hash("genesis", "{\"a\":1}"),
            hex::encode(hasher.finalize())
        );
        let hasher = ClientHasher::new(b"0123456789abcdef");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").expect("key");
        mac.update(b"010190-999W");
        assert_eq!(
            hasher.hash(" 010190-999w "),
            format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
        );
    }

    /// The digests as they were made before [`record_digests`]: two serializations.
    fn digests_serialized_twice(record: &Value) -> RecordDigests {
        let content = match record.as_object() {
            Some(map) => {
                let kept: std::collections::BTreeMap<&String, &Value> = map
                    .iter()
                    .filter(|(key, _)| !TRANSFER_MEMBERS.contains(&key.as_str()))
                    .collect();
                serde_json::to_vec(&kept)
            }
            None => serde_json::to_vec(record),
        };
        RecordDigests {
            input: digest(&serde_json::to_vec(record).expect("json")),
            content: digest(&content.expect("json")),
        }
    }

    #[test]
    fn record_digests_equal_two_serializations() {
        let records = [
            json!({"MSG_ID": "M-1", "MSG_DTTM": "2026-03-05 10:00", "DECISION": {"TEXT": "Päätös \"lainausmerkein\"\n"}, "A": [1, 2.5, null, true]}),
            json!({"MSG_ID": "only transfer"}),
            json!({"ÄÖ": "ei siirtoa", "emoji \u{1F600}": {"\u{7}": "ohjausmerkki"}}),
            json!({}),
            json!(["not", "an", "object"]),
            json!("text"),
        ];
        for record in records {
            assert_eq!(
                record_digests(&record),
                digests_serialized_twice(&record),
                "{record}"
            );
        }
        let resend = json!({"MSG_ID": "M-2", "MSG_DTTM": "2026-03-06 11:00", "DECISION": {"TEXT": "Päätös \"lainausmerkein\"\n"}, "A": [1, 2.5, null, true]});
        let first = json!({"MSG_ID": "M-1", "MSG_DTTM": "2026-03-05 10:00", "DECISION": {"TEXT": "Päätös \"lainausmerkein\"\n"}, "A": [1, 2.5, null, true]});
        let (resend, first) = (record_digests(&resend), record_digests(&first));
        assert_eq!(
            resend.content, first.content,
            "a resend has the same content"
        );
        assert_ne!(resend.input, first.input, "but not the same input");
    }

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            exchange_id: format!("x{n}"),
            recorded_at: "2026-11-23T10:00:00.000000Z".into(),
            event: "exchange".into(),
            direction: "apotti-to-kanta".into(),
            actor: Actor::local(),
            source_system: Some("APOTTI".into()),
            record_type: Some("decision".into()),
            client_hash: Some("hmac-sha256:ab".into()),
            record_id: None,
            document_oid: None,
            set_oid: None,
            version: None,
            input_digest: "sha256:00".into(),
            output_digest: None,
            profiles: Vec::new(),
            mapping: None,
            outcome: "accepted".into(),
            issues: Vec::new(),
            delivery: None,
            details: None,
        }
    }

    fn chain(n: i64) -> Vec<StoredEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = entry(seq);
                let json = canonical(&e).expect("json");
                let hash = chain_hash(&prev, &json);
                let row = StoredEntry {
                    seq,
                    entry: json,
                    prev_hash: prev.clone(),
                    entry_hash: hash.clone(),
                    client_hash: e.client_hash.clone(),
                    actor: e.actor.subject.clone(),
                    outcome: e.outcome.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[StoredEntry], head: (i64, String)) -> VerifyReport {
        let mut verifier = Verifier::default();
        rows.iter().for_each(|r| verifier.push(r));
        verifier.finish(head)
    }

    #[test]
    fn intact_chain_verifies_and_tampering_is_named() {
        let rows = chain(5);
        let head = (5, rows[4].entry_hash.clone());
        assert!(verify(&rows, head.clone()).intact);

        let mut modified = rows.clone();
        modified[2].entry = modified[2].entry.replace("accepted", "refused");
        let report = verify(&modified, head.clone());
        assert_eq!(
            report.first_problem.map(|p| (p.seq, p.kind)),
            Some((3, "modified".into()))
        );

        let mut deleted = rows.clone();
        deleted.remove(1);
        let report = verify(&deleted, head.clone());
        assert_eq!(
            report.first_problem.map(|p| (p.seq, p.kind)),
            Some((2, "deleted".into()))
        );

        // Rows 2 and 3 swap places (their content moves, their numbers with it).
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        let report = verify(&swapped, head.clone());
        assert_eq!(
            report.first_problem.map(|p| (p.seq, p.kind)),
            Some((3, "reordered".into()))
        );

        // Contents of rows 2 and 3 swapped, sequence numbers kept.
        let mut exchanged = rows.clone();
        let (a, b) = (exchanged[1].clone(), exchanged[2].clone());
        exchanged[1] = StoredEntry { seq: 2, ..b };
        exchanged[2] = StoredEntry { seq: 3, ..a };
        let report = verify(&exchanged, head.clone());
        assert_eq!(
            report.first_problem.map(|p| (p.seq, p.kind)),
            Some((2, "reordered".into()))
        );

        // A forged entry between 2 and 3.
        let mut inserted = rows.clone();
        let forged_json = canonical(&entry(99)).expect("json");
        let forged = StoredEntry {
            seq: 3,
            prev_hash: "forged".into(),
            entry_hash: chain_hash("forged", &forged_json),
            entry: forged_json,
            client_hash: Some("hmac-sha256:ab".into()),
            actor: "local".into(),
            outcome: "accepted".into(),
        };
        inserted.insert(2, forged);
        for (i, row) in inserted.iter_mut().enumerate() {
            row.seq = i64::try_from(i).expect("small") + 1;
        }
        let report = verify(&inserted, head.clone());
        assert_eq!(
            report.first_problem.map(|p| (p.seq, p.kind)),
            Some((3, "inserted".into()))
        );

        let truncated = &rows[..4];
        let report = verify(truncated, head);
        assert_eq!(
            report.first_problem.map(|p| (p.seq, p.kind)),
            Some((5, "deleted".into()))
        );
    }

    #[test]
    fn client_hash_is_keyed_and_normalised() {
        let a = ClientHasher::new(b"key one");
        let b = ClientHasher::new(b"key two");
        assert_eq!(a.hash("010190-902S"), a.hash(" 010190-902s "));
        assert_ne!(a.hash("010190-902S"), b.hash("010190-902S"));
        assert!(!a.hash("010190-902S").contains("010190"));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut e = entry(1);
        e.issues.push(LoggedIssue {
            rule: "r".into(),
            pointer: "/a".into(),
            message: "m, \"q\"".into(),
        });
        let line = csv_line(1, &e);
        assert!(
            line.starts_with("1,2026-11-23T10:00:00.000000Z,x1,"),
            "{line}"
        );
    }
}
