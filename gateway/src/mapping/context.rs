//! A mapping context held in memory: for `gateway map`, the fixture runner and the tests.
//!
//! The service builds its context from the database crosswalk; this one keeps the crosswalk in
//! maps and allocates OIDs under the custodian's root (`<root>.13.<year>.<n>` for documents,
//! `<root>.14.<year>.<n>` for cases, as `codes.md` says). It remembers what it allocated and
//! what it restored, so that a record mapped forward and then back gets its own ids again.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, LazyLock};

use rustc_hash::FxHashMap;
use serde_json::{Value, json};

use super::engine::{Direction, MappingContext};
use super::plan::{Convert, MappingPlan, Source};
use crate::config::Producer;

/// Crosswalk kind of cases; all other kinds are documents.
pub const CASE_KIND: &str = "case";

/// One direction of the in-memory crosswalk: kind → key → value. Fx-hashed, as the named
/// values: a run looks several up, and SipHash cost more than the rest of each look-up.
type Crosswalk = FxHashMap<String, FxHashMap<String, String>>;

fn look_up(crosswalk: &RefCell<Crosswalk>, kind: &str, key: &str) -> Option<String> {
    crosswalk.borrow().get(kind)?.get(key).cloned()
}

/// Named values a mapping reads (`from: context.<name>`), by name.
pub type ContextValues = FxHashMap<String, Value>;

/// The named values of `producer`'s gateway: its producer block, custodian type and language,
/// and the source system of documents mapped back (`KANTA`).
#[must_use]
pub fn context_values(producer: &Producer) -> ContextValues {
    let mut values = ContextValues::default();
    values.insert(
        "producer".to_owned(),
        json!({"vendor": producer.vendor, "product": producer.product, "version": env!("CARGO_PKG_VERSION")}),
    );
    values.insert("language".to_owned(), json!(producer.language));
    values.insert("custodian_type".to_owned(), json!(producer.custodian_type));
    values.insert("source_system".to_owned(), json!("KANTA"));
    values
}

/// The values of the default producer, for contexts made without one.
static DEFAULT_VALUES: LazyLock<Arc<ContextValues>> =
    LazyLock::new(|| Arc::new(context_values(&Producer::default())));

/// An in-memory context.
#[derive(Debug)]
pub struct LocalContext {
    root: String,
    year: i16,
    next: Cell<u64>,
    /// Values every record of a run shares, made once (the service maps each record with a
    /// context of its own, and building these per record showed in a stream's profile).
    shared: Arc<ContextValues>,
    /// This record's own values; a name here hides the same name in `shared`.
    values: ContextValues,
    /// kind → source id → OID. Nested so that a look-up borrows its keys (no allocation).
    oids: RefCell<Crosswalk>,
    /// kind → OID → source id.
    ids: RefCell<Crosswalk>,
    allocate: bool,
}

impl LocalContext {
    /// A context allocating under `root` (the custodian's OID) in `year`, with the gateway's
    /// defaults for producer, language and custodian type.
    #[must_use]
    pub fn new(root: &str, year: i16) -> Self {
        Self::with_shared(root, year, Arc::clone(&DEFAULT_VALUES))
    }

    /// A context allocating under `root` in `year` whose named values start as `shared`.
    #[must_use]
    pub fn with_shared(root: &str, year: i16, shared: Arc<ContextValues>) -> Self {
        Self {
            root: root.to_owned(),
            year,
            next: Cell::new(1),
            shared,
            values: ContextValues::default(),
            oids: RefCell::new(FxHashMap::default()),
            ids: RefCell::new(FxHashMap::default()),
            allocate: true,
        }
    }

    /// A context that only knows what it is told: an unknown id is a mapping issue instead of
    /// a new OID (the service resolves every id against its database first).
    #[must_use]
    pub fn without_allocation(mut self) -> Self {
        self.allocate = false;
        self
    }

    /// Sets a named value.
    pub fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_owned(), value);
    }

    /// Records that `source_id` of `kind` is `oid`, both ways.
    pub fn remember(&self, kind: &str, source_id: &str, oid: &str) {
        self.oids
            .borrow_mut()
            .entry(kind.to_owned())
            .or_default()
            .insert(source_id.to_owned(), oid.to_owned());
        self.ids
            .borrow_mut()
            .entry(kind.to_owned())
            .or_default()
            .insert(oid.to_owned(), source_id.to_owned());
    }

    fn allocate(&self, kind: &str) -> String {
        let sequence = self.next.get();
        self.next.set(sequence + 1);
        let arc = if kind == CASE_KIND { 14 } else { 13 };
        format!("{}.{arc}.{}.{sequence}", self.root, self.year)
    }

    /// After mapping `document` back to `message`, remembers that the message's own id stands
    /// for the document's set, as the crosswalk does on import.
    pub fn learn(&self, plan: &MappingPlan, message: &Value, document: &Value) {
        if let (Some((kind, id)), Some(oid)) = (
            identity(plan, message),
            document.pointer("/header/setOid").and_then(Value::as_str),
        ) {
            self.remember(&kind, &id, oid);
        }
    }

    /// Prepares the per-record values for one run of `plan`: forward, the document's own OID
    /// (version 1 of its set, unless the crosswalk says otherwise); backward, the values an
    /// import message needs.
    pub fn prepare(&mut self, plan: &MappingPlan, record: &Value, direction: Direction) {
        match direction {
            Direction::Forward => {
                if let Some(root) = record
                    .pointer("/SOURCE_ORG_ID")
                    .and_then(Value::as_str)
                    .and_then(crate::identifiers::custodian_oid_root)
                {
                    self.root = root;
                }
                if let Some(set_oid) = identity_oid(plan, record, self) {
                    self.values
                        .insert("document_oid".to_owned(), Value::String(set_oid));
                }
                self.values.insert("version".to_owned(), json!(1));
                self.values.remove("replaces");
            }
            Direction::Backward => {
                let version = record.pointer("/header/version").cloned();
                let document = record
                    .pointer("/header/documentOid")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                self.values
                    .insert("revision".to_owned(), version.unwrap_or(json!(1)));
                self.values.insert(
                    "msg_id".to_owned(),
                    Value::String(format!("KANTA.{document}")),
                );
                let now = jiff::Zoned::now().with_time_zone(
                    jiff::tz::db()
                        .get("Europe/Helsinki")
                        .unwrap_or(jiff::tz::TimeZone::UTC),
                );
                self.values
                    .entry("msg_dttm".to_owned())
                    .or_insert(Value::String(now.strftime("%Y-%m-%d %H:%M:%S").to_string()));
                let encounter = record
                    .pointer("/body/visit/encounterId")
                    .and_then(Value::as_str)
                    .unwrap_or(document);
                self.values.insert(
                    "note_id".to_owned(),
                    Value::String(format!("KANTA-{encounter}")),
                );
                self.values.insert(
                    "flowsheet_id".to_owned(),
                    Value::String(format!("KANTA-{encounter}")),
                );
            }
        }
    }
}

/// The record's own id and crosswalk kind: from the rule that writes `/header/setOid`.
pub fn identity(plan: &MappingPlan, record: &Value) -> Option<(String, String)> {
    let rule = plan.rules.iter().find(|rule| {
        rule.kanta
            .as_ref()
            .is_some_and(|k| k.text == "/header/setOid")
    })?;
    let (pointer, kind) = match (&rule.forward, &rule.apotti) {
        (Source::Peer(Convert::Crosswalk(kind)), Some(apotti)) => (apotti, kind),
        (Source::Other(pointer, Convert::Crosswalk(kind)), _) => (pointer, kind),
        _ => return None,
    };
    let id = match pointer.get(record)? {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    Some((kind.clone(), id))
}

/// Every `(crosswalk kind, value)` a run of `plan` in `direction` will look up: source ids
/// forward, OIDs backward. The service resolves them against its database before mapping.
#[must_use]
pub fn crosswalk_refs(
    plan: &MappingPlan,
    record: &Value,
    direction: Direction,
) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for rule in &plan.rules {
        let (pointer, kind) = match (direction, &rule.forward, &rule.reverse) {
            (Direction::Forward, Source::Peer(Convert::Crosswalk(kind)), _) => {
                (rule.apotti.as_ref(), kind)
            }
            (Direction::Forward, Source::Other(ptr, Convert::Crosswalk(kind)), _) => {
                (Some(ptr), kind)
            }
            (Direction::Backward, _, Source::Peer(Convert::Crosswalk(kind))) => {
                (rule.kanta.as_ref(), kind)
            }
            _ => continue,
        };
        let value = match pointer.and_then(|p| p.get(record)) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => continue,
        };
        refs.push((kind.clone(), value));
    }
    refs
}

/// The OID of the record's own document set.
fn identity_oid(plan: &MappingPlan, record: &Value, context: &LocalContext) -> Option<String> {
    let (kind, id) = identity(plan, record)?;
    context.oid_for(&kind, &id)
}

impl MappingContext for LocalContext {
    fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name).or_else(|| self.shared.get(name))
    }

    fn oid_for(&self, kind: &str, source_id: &str) -> Option<String> {
        if let Some(oid) = look_up(&self.oids, kind, source_id) {
            return Some(oid);
        }
        if !self.allocate {
            return None;
        }
        let oid = self.allocate(kind);
        self.remember(kind, source_id, &oid);
        Some(oid)
    }

    fn source_id_for(&self, kind: &str, oid: &str) -> Option<String> {
        if let Some(id) = look_up(&self.ids, kind, oid) {
            return Some(id);
        }
        // An OID the crosswalk has not seen (archived by another system): its id on the EHR
        // side is the OID itself, remembered so that it maps back to the same OID.
        self.remember(kind, oid, oid);
        Some(oid.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crosswalk_look_ups_are_per_kind_and_both_ways() {
        let context = LocalContext::new("1.2.246.10.0", 2026).without_allocation();
        context.remember("decision", "D1", "1.2.3");
        context.remember("case", "D1", "1.2.4");
        assert_eq!(context.oid_for("decision", "D1").as_deref(), Some("1.2.3"));
        assert_eq!(context.oid_for("case", "D1").as_deref(), Some("1.2.4"));
        assert_eq!(context.oid_for("plan", "D1"), None);
        assert_eq!(context.oid_for("decision", "D2"), None);
        assert_eq!(
            context.source_id_for("case", "1.2.4").as_deref(),
            Some("D1")
        );
        // An OID never seen maps to itself, and is remembered both ways.
        assert_eq!(context.source_id_for("plan", "9.9").as_deref(), Some("9.9"));
        assert_eq!(context.oid_for("plan", "9.9").as_deref(), Some("9.9"));
    }
}
