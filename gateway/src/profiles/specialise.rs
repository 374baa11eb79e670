//! A target profile's validator specialised to one mapping: the subschemas that can only ever
//! see values settled when the mappings load are replaced by `true`.
//!
//! Why: a mapped document carries many values the mapping fixes (a document type's codings,
//! its title, retention rules), takes from a short list (concept-map codings) or copies
//! unchanged from a field the source profile has already checked against the same definition
//! (the hetu, names). Validating them again for every record was about two fifths of the
//! target profile's work.
//!
//! The replacement is exact, not an approximation, for every document the mapping can build
//! from a record valid against its source profile. A subschema `S` (a member of some
//! `properties`) is replaced only when
//! - the walk below proves that `S` is applied to one instance location `L` and no other
//!   (it follows `$ref`, `allOf`/`anyOf`/`oneOf`, `not`, `if`/`then`/`else`, `properties` and
//!   `items`; a subschema reached any other way counts as applied anywhere);
//! - the mapping writes `L` in one rule only, and nothing else writes at, above or below `L`
//!   ([`KnownField`]);
//! - either every value the rule can write (a finite list) is valid against `S`, checked here
//!   with the same validator options as the profile; or the rule copies, unchanged, a source
//!   field that the source profile holds to `S` itself in every valid record (`S` compared
//!   without its annotations and with its `$ref`s resolved, see [`Known::CopiedFrom`]);
//! - nothing reachable from `S` carries the profile's own keyword (`x-sosku-rules` may read
//!   other fields).
//!
//! Then `S` gives `true` for every value that can reach it, wherever it sits (even inside `if`
//! or `not`), so the specialised validator's verdict equals the full one's. Anything the walk
//! cannot follow (a nested `$id`, anchors, a fragment that is not a JSON Pointer) leaves the
//! profile unspecialised. Issues are always reported by the full validator; in debug builds
//! every verdict is checked against it.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Profile, ProfileRegistry, compile, rules};
use crate::json_tree::OutputJson;
use crate::outcome::pointer_join;

/// One step of an instance location: an object member, or any item of an array.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// The member of this name.
    Name(String),
    /// Every item of an array.
    AnyItem,
}

/// An instance location whose values a mapping knows something of at load.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownField {
    /// Where, from the document's root.
    pub path: Vec<Step>,
    /// What is known.
    pub known: Known,
}

/// What a mapping knows at load of the values it writes at one place.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// They are among these.
    Values(Vec<Value>),
    /// They are copied unchanged from this place of the source record, which was validated
    /// against its own profile before it was mapped.
    CopiedFrom(Vec<Step>),
}

/// A profile's validator with the subschemas proven by [`KnownField`]s replaced by `true`.
#[derive(Debug)]
pub struct Specialised {
    pub(super) validator: jsonschema::Validator<OutputJson>,
    replaced: Vec<String>,
    decided: Vec<Vec<Step>>,
}

impl Specialised {
    /// The replaced subschemas, as `<document $id>#<pointer>`, in order.
    #[must_use]
    pub fn replaced(&self) -> &[String] {
        &self.replaced
    }

    /// The instance locations whose values are decided at load (those of the replaced
    /// subschemas).
    #[must_use]
    pub fn decided(&self) -> &[Vec<Step>] {
        &self.decided
    }

    /// The specialised verdict on `document` (the full profile's for every document its
    /// mapping can build from a valid record).
    #[must_use]
    pub fn is_valid(&self, document: &crate::json_tree::Output<'_>) -> bool {
        self.validator.is_valid(document.node())
    }
}

/// Instance paths deeper than this are treated as anywhere, so that recursive schemas end.
const MAX_DEPTH: usize = 48;

/// A schema object: its document's `$id` and its JSON Pointer in that document.
type Place = (String, String);

/// Where a schema object is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Applied {
    At(Vec<Step>),
    Anywhere,
}

/// Follows a schema from one object through every subschema that applies at a known place.
struct Walk<'d> {
    documents: &'d HashMap<String, Value>,
    applied: HashMap<Place, Applied>,
    /// The schema objects every valid instance satisfies at a place (reached only through
    /// `$ref`, `allOf`, `properties` and `items`).
    firm: HashMap<Vec<Step>, Vec<Place>>,
    visited: HashSet<(Place, Option<Vec<Step>>, bool)>,
    /// Members of `properties`: the candidates for replacement.
    members: Vec<Place>,
    /// Objects carrying the profile's own keyword.
    custom: bool,
}

impl<'d> Walk<'d> {
    fn new(documents: &'d HashMap<String, Value>) -> Self {
        Self {
            documents,
            applied: HashMap::new(),
            firm: HashMap::new(),
            visited: HashSet::new(),
            members: Vec::new(),
            custom: false,
        }
    }

    /// Walks `schema` (at `pointer` in document `uri`) applied at `path` (`None`: anywhere).
    fn schema(
        &mut self,
        uri: &str,
        pointer: String,
        schema: &'d Value,
        path: Option<Vec<Step>>,
        firm: bool,
    ) -> Result<(), String> {
        let Some(object) = schema.as_object() else {
            return Ok(());
        };
        let path = path.filter(|p| p.len() <= MAX_DEPTH);
        let place = (uri.to_owned(), pointer);
        if !self.visited.insert((place.clone(), path.clone(), firm)) {
            return Ok(());
        }
        if let (true, Some(path)) = (firm, &path) {
            let here = self.firm.entry(path.clone()).or_default();
            if !here.contains(&place) {
                here.push(place.clone());
            }
        }
        let now = match (self.applied.get(&place), &path) {
            (None, Some(p)) => Applied::At(p.clone()),
            (Some(Applied::At(q)), Some(p)) if q == p => Applied::At(p.clone()),
            _ => Applied::Anywhere,
        };
        self.applied.insert(place.clone(), now);
        let (_, pointer) = place;
        if !pointer.is_empty() && object.contains_key("$id") {
            return Err(format!("{uri}#{pointer} has its own $id"));
        }
        for (keyword, value) in object {
            let at = pointer_join(&pointer, keyword);
            match keyword.as_str() {
                "$ref" => {
                    let reference = value.as_str().ok_or("a $ref that is not a string")?;
                    let (target_uri, target_pointer) = resolve(uri, reference)?;
                    let documents = self.documents;
                    let target = documents
                        .get(&target_uri)
                        .and_then(|document| document.pointer(&target_pointer))
                        .ok_or_else(|| format!("{reference} (from {uri}) does not resolve"))?;
                    self.schema(&target_uri, target_pointer, target, path.clone(), firm)?;
                }
                "properties" => {
                    for (name, member) in value.as_object().into_iter().flatten() {
                        let member_at = pointer_join(&at, name);
                        let member_place = (uri.to_owned(), member_at.clone());
                        if !self.members.contains(&member_place) {
                            self.members.push(member_place);
                        }
                        let below = path.as_ref().map(|p| child(p, Step::Name(name.clone())));
                        self.schema(uri, member_at, member, below, firm)?;
                    }
                }
                "items" => {
                    let below = path.as_ref().map(|p| child(p, Step::AnyItem));
                    self.schema(uri, at, value, below, firm)?;
                }
                "allOf" | "anyOf" | "oneOf" => {
                    // Only `allOf` holds for every valid instance.
                    let all = keyword == "allOf" && firm;
                    for (index, each) in value.as_array().into_iter().flatten().enumerate() {
                        self.schema(uri, format!("{at}/{index}"), each, path.clone(), all)?;
                    }
                }
                "not" | "if" | "then" | "else" => {
                    self.schema(uri, at, value, path.clone(), false)?;
                }
                "$defs" | "definitions" => {}
                "$anchor" | "$dynamicAnchor" | "$dynamicRef" | "$recursiveRef"
                | "$recursiveAnchor" => {
                    return Err(format!("{uri}#{pointer} uses {keyword}"));
                }
                "additionalProperties"
                | "propertyNames"
                | "contains"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "additionalItems" => self.schema(uri, at, value, None, false)?,
                "patternProperties" | "dependentSchemas" | "dependencies" => {
                    for (name, each) in value.as_object().into_iter().flatten() {
                        self.schema(uri, pointer_join(&at, name), each, None, false)?;
                    }
                }
                "prefixItems" => {
                    for (index, each) in value.as_array().into_iter().flatten().enumerate() {
                        self.schema(uri, format!("{at}/{index}"), each, None, false)?;
                    }
                }
                keyword if keyword == rules::KEYWORD => self.custom = true,
                _ => {}
            }
        }
        Ok(())
    }
}

fn child(path: &[Step], step: Step) -> Vec<Step> {
    let mut below = Vec::with_capacity(path.len() + 1);
    below.extend_from_slice(path);
    below.push(step);
    below
}

/// Keywords that assert nothing, left out when two schemas are compared.
const ANNOTATIONS: [&str; 5] = ["description", "title", "$comment", "examples", "default"];

/// `schema` (in document `uri`) with every `$ref` made absolute and, at its top, without
/// annotations; `None` when a `$ref` does not resolve, or a value compared as data (`const`,
/// `enum`) carries one, so that two schemas that read alike but mean different things never
/// compare equal.
fn normal(uri: &str, schema: &Value, top: bool) -> Option<Value> {
    match schema {
        Value::Object(object) => {
            let mut out = serde_json::Map::new();
            for (keyword, value) in object {
                if top && ANNOTATIONS.contains(&keyword.as_str()) {
                    continue;
                }
                let value = match (keyword.as_str(), value) {
                    ("$ref", Value::String(reference)) => {
                        let (document, pointer) = resolve(uri, reference).ok()?;
                        Value::String(format!("{document}#{pointer}"))
                    }
                    ("const" | "enum" | "default" | "examples", data) => {
                        if data.to_string().contains("\"$ref\"") {
                            return None;
                        }
                        data.clone()
                    }
                    (_, value) => normal(uri, value, false)?,
                };
                out.insert(keyword.clone(), value);
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| normal(uri, item, false))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        other => Some(other.clone()),
    }
}

/// The document and canonical JSON Pointer a `$ref` in document `base` names.
fn resolve(base: &str, reference: &str) -> Result<(String, String), String> {
    let base = url::Url::parse(base).map_err(|error| format!("{base}: {error}"))?;
    let mut target = base
        .join(reference)
        .map_err(|error| format!("{reference}: {error}"))?;
    let fragment = target.fragment().unwrap_or("").to_owned();
    target.set_fragment(None);
    if fragment.contains('%') || !(fragment.is_empty() || fragment.starts_with('/')) {
        return Err(format!(
            "{reference}: only plain JSON Pointer fragments are followed"
        ));
    }
    // One spelling per pointer: unescape each token and escape it again.
    let pointer = fragment
        .split('/')
        .skip(1)
        .fold(String::new(), |pointer, token| {
            pointer_join(&pointer, &token.replace("~1", "/").replace("~0", "~"))
        });
    Ok((target.to_string(), pointer))
}

impl ProfileRegistry {
    /// `profile`'s validator specialised to a mapping that writes `known`, reading records
    /// valid against `source`; `Ok(None)` when no subschema can be replaced.
    ///
    /// # Errors
    /// When the profiles' schemas cannot be followed (see the module documentation) or the
    /// specialised copy does not compile; the caller then keeps the full validator.
    pub fn specialise(
        &self,
        profile: &Profile,
        source: &Profile,
        known: &[KnownField],
    ) -> Result<Option<Specialised>, String> {
        let walk = self.walk(profile)?;
        let source_walk = self.walk(source)?;

        let registry = registry_of(&self.documents)?;
        let mut replaced: Vec<Place> = Vec::new();
        let mut decided: Vec<Vec<Step>> = Vec::new();
        for member in &walk.members {
            let Some(Applied::At(path)) = walk.applied.get(member) else {
                continue;
            };
            let Some(field) = known.iter().find(|field| &field.path == path) else {
                continue;
            };
            if replaced.contains(member) {
                continue;
            }
            let (uri, pointer) = member;
            let schema = self
                .documents
                .get(uri)
                .and_then(|document| document.pointer(pointer))
                .ok_or_else(|| format!("{uri}#{pointer} vanished"))?;
            if schema == &Value::Bool(true) {
                continue;
            }
            let mut inner = Walk::new(&self.documents);
            inner.schema(uri, pointer.clone(), schema, Some(Vec::new()), true)?;
            if inner.custom {
                continue;
            }
            let holds = match &field.known {
                Known::Values(values) => {
                    let probe = serde_json::json!({ "$ref": format!("{uri}#{pointer}") });
                    let validator = compile::<jsonschema::json::SerdeJson>(&registry, &probe)
                        .map_err(|error| format!("{uri}#{pointer}: {error}"))?;
                    values.iter().all(|value| validator.is_valid(value))
                }
                Known::CopiedFrom(from) => {
                    let firm = source_walk.firm.get(from).map_or(&[][..], Vec::as_slice);
                    self.implied_by(uri, schema, firm)
                }
            };
            if holds {
                replaced.push(member.clone());
                if !decided.contains(path) {
                    decided.push(path.clone());
                }
            }
        }
        if replaced.is_empty() {
            return Ok(None);
        }

        let mut documents = self.documents.clone();
        for (uri, pointer) in &replaced {
            if let Some(slot) = documents
                .get_mut(uri)
                .and_then(|document| document.pointer_mut(pointer))
            {
                *slot = Value::Bool(true);
            }
        }
        let registry = registry_of(&documents)?;
        let root = documents
            .get(&profile.uri)
            .ok_or_else(|| format!("no document {}", profile.uri))?;
        let validator = compile::<OutputJson>(&registry, root)
            .map_err(|error| format!("{}: {error}", profile.uri))?;
        replaced.sort();
        decided.sort();
        Ok(Some(Specialised {
            validator,
            decided,
            replaced: replaced
                .into_iter()
                .map(|(uri, pointer)| format!("{uri}#{pointer}"))
                .collect(),
        }))
    }

    /// The walk of `profile` from its root.
    fn walk(&self, profile: &Profile) -> Result<Walk<'_>, String> {
        let root = self
            .documents
            .get(&profile.uri)
            .ok_or_else(|| format!("no document {}", profile.uri))?;
        let mut walk = Walk::new(&self.documents);
        walk.schema(&profile.uri, String::new(), root, Some(Vec::new()), true)?;
        Ok(walk)
    }

    /// Does every value that satisfies all of `firm` (schema objects of the source profile)
    /// satisfy `schema` (in document `uri`)? Yes when `schema`, without its own annotations,
    /// is one of them, or is only a `$ref` to one of them; each compared with its `$ref`s
    /// resolved.
    fn implied_by(&self, uri: &str, schema: &Value, firm: &[Place]) -> bool {
        let Some(wanted) = normal(uri, schema, true) else {
            return false;
        };
        let referenced = wanted
            .as_object()
            .filter(|object| object.len() == 1)
            .and_then(|object| object.get("$ref"))
            .and_then(Value::as_str);
        firm.iter().any(|(firm_uri, firm_pointer)| {
            if referenced == Some(format!("{firm_uri}#{firm_pointer}").as_str()) {
                return true;
            }
            self.documents
                .get(firm_uri)
                .and_then(|document| document.pointer(firm_pointer))
                .and_then(|found| normal(firm_uri, found, true))
                .is_some_and(|found| found == wanted)
        })
    }
}

fn registry_of(documents: &HashMap<String, Value>) -> Result<jsonschema::Registry<'_>, String> {
    jsonschema::Registry::new()
        .extend(documents.iter().map(|(uri, schema)| (uri.as_str(), schema)))
        .and_then(jsonschema::RegistryBuilder::prepare)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_tree::Output;
    use crate::profiles::ID_BASE;
    use serde_json::json;

    fn path(steps: &[&str]) -> Vec<Step> {
        steps
            .iter()
            .map(|step| match *step {
                "*" => Step::AnyItem,
                name => Step::Name(name.to_owned()),
            })
            .collect()
    }

    fn known(steps: &[&str], values: Vec<Value>) -> KnownField {
        KnownField {
            path: path(steps),
            known: Known::Values(values),
        }
    }

    fn copied(steps: &[&str], from: &[&str]) -> KnownField {
        KnownField {
            path: path(steps),
            known: Known::CopiedFrom(path(from)),
        }
    }

    /// A registry of one profile `t/doc` and a shared `t/defs`.
    fn registry(doc: &Value, defs: &Value) -> ProfileRegistry {
        registry_of_files(&[("t/doc", doc.clone()), ("t/defs", defs.clone())])
    }

    /// A registry of `(id, schema)` pairs, each stored as `<id>.schema.json`.
    fn registry_of_files(files: &[(&str, Value)]) -> ProfileRegistry {
        ProfileRegistry::from_files(
            files
                .iter()
                .map(|(id, schema)| {
                    let mut schema = schema.clone();
                    schema["$id"] = json!(format!("{ID_BASE}{id}.schema.json"));
                    let bytes = serde_json::to_vec(&schema).expect("json");
                    (format!("{id}.schema.json"), bytes)
                })
                .collect(),
        )
        .expect("registry")
    }

    fn replaced(registry: &ProfileRegistry, fields: &[KnownField]) -> Vec<String> {
        let profile = registry.get("t/doc").expect("profile");
        registry
            .specialise(profile, profile, fields)
            .expect("specialise")
            .map(|s| s.replaced().to_vec())
            .unwrap_or_default()
    }

    fn doc_at(pointer: &str) -> String {
        format!("{ID_BASE}t/doc.schema.json#{pointer}")
    }

    const CODING: &str = "defs.schema.json#/$defs/coding";

    fn defs() -> Value {
        json!({
            "$defs": {
                "coding": {
                    "type": "object",
                    "required": ["code"],
                    "properties": { "code": { "type": "string", "pattern": "^[A-Z]+$" } }
                }
            }
        })
    }

    #[test]
    fn a_member_seen_at_one_place_is_replaced_when_every_value_fits() {
        let doc = json!({
            "type": "object",
            "properties": {
                "kind": { "$ref": CODING, "properties": { "code": { "enum": ["A", "B"] } } },
                "other": { "$ref": CODING }
            }
        });
        let registry = registry(&doc, &defs());
        let fields = [known(
            &["kind"],
            vec![json!({"code": "A"}), json!({"code": "B"})],
        )];
        assert_eq!(
            replaced(&registry, &fields),
            vec![doc_at("/properties/kind")]
        );
        // The shared definition's members are applied at /kind and /other: never replaced,
        // even when the one field under it is known.
        let fields = [known(&["kind", "code"], vec![json!("A")])];
        assert_eq!(
            replaced(&registry, &fields),
            vec![doc_at("/properties/kind/properties/code")]
        );
    }

    #[test]
    fn a_value_the_subschema_refuses_keeps_it() {
        let doc = json!({
            "type": "object",
            "properties": { "kind": { "$ref": CODING } }
        });
        let registry = registry(&doc, &defs());
        let fields = [known(
            &["kind"],
            vec![json!({"code": "A"}), json!({"code": "lower"})],
        )];
        assert!(replaced(&registry, &fields).is_empty());
    }

    #[test]
    fn members_under_conditions_are_replaced_and_the_verdict_stays() {
        let doc = json!({
            "type": "object",
            "properties": { "status": { "enum": ["draft", "final"] }, "signed": {} },
            "if": { "properties": { "status": { "const": "final" } } },
            "then": { "required": ["signed"] }
        });
        let registry = registry(&doc, &defs());
        let fields = [known(&["status"], vec![json!("final")])];
        let profile = registry.get("t/doc").expect("profile");
        let specialised = registry
            .specialise(profile, profile, &fields)
            .expect("specialise")
            .expect("replaced");
        // `status` under `properties` is replaced; under `if`, `const: final` is not (the
        // known value "final" fits it too, so it is replaced as well).
        assert_eq!(
            specialised.replaced(),
            [
                doc_at("/if/properties/status"),
                doc_at("/properties/status")
            ]
        );
        for (document, valid) in [
            (json!({"status": "final", "signed": true}), true),
            (json!({"status": "final"}), false),
        ] {
            let output = Output::Owned(document.clone());
            assert_eq!(
                specialised.validator.is_valid(output.node()),
                valid,
                "{document}"
            );
            assert_eq!(profile.is_valid(&document), valid, "{document}");
        }
    }

    #[test]
    fn members_reached_through_other_keywords_or_carrying_rules_are_kept() {
        let doc = json!({
            "type": "object",
            "properties": {
                "free": { "type": "object", "additionalProperties": { "$ref": "#/$defs/x" } },
                "ruled": {
                    "type": "object",
                    "x-sosku-rules": [],
                    "properties": { "a": { "type": "string" } }
                },
                "pinned": { "$ref": "#/$defs/x" }
            },
            "$defs": { "x": { "type": "string" } }
        });
        let registry = registry(&doc, &defs());
        let fields = [
            known(&["ruled"], vec![json!({"a": "x"})]),
            known(&["pinned"], vec![json!("x")]),
        ];
        // `pinned` is replaced (its own subschema is seen only there); `ruled` carries the
        // profile's own keyword, which may read other fields.
        assert_eq!(
            replaced(&registry, &fields),
            vec![doc_at("/properties/pinned")]
        );
    }

    #[test]
    fn items_are_one_place_and_an_unfollowable_schema_is_refused() {
        let doc = json!({
            "type": "object",
            "properties": { "forms": { "type": "array", "items": { "$ref": CODING } } }
        });
        let registry = registry(&doc, &defs());
        // `items` is not a member of `properties`: the array's item schema stays, but what
        // is below it can be replaced.
        let fields = [known(&["forms", "*"], vec![json!({"code": "A"})])];
        assert!(replaced(&registry, &fields).is_empty());

        let doc = json!({
            "type": "object",
            "properties": { "a": { "$id": "https://elsewhere.invalid/a", "type": "string" } }
        });
        let registry = super::tests::registry(&doc, &defs());
        let profile = registry.get("t/doc").expect("profile");
        let refused = registry
            .specialise(profile, profile, &[known(&["a"], vec![json!("x")])])
            .expect_err("a nested $id is not followed");
        assert!(refused.contains("has its own $id"), "{refused}");
    }

    #[test]
    fn a_copy_is_checked_once_where_the_source_profile_already_holds_it_to_the_same_schema() {
        let defs = json!({
            "$defs": {
                "hetu": { "type": "string", "format": "fi-hetu" },
                "name": { "type": "string", "minLength": 1 }
            }
        });
        let source = json!({
            "type": "object",
            "properties": {
                "SSN": { "$ref": "defs.schema.json#/$defs/hetu" },
                "NAME": { "description": "as written", "type": "string", "minLength": 1 },
                "MAYBE": { "anyOf": [{ "$ref": "defs.schema.json#/$defs/name" }, { "type": "null" }] },
                "ROWS": { "type": "array", "items": { "$ref": "defs.schema.json#/$defs/name" } }
            }
        });
        let doc = json!({
            "type": "object",
            "properties": {
                "hetu": { "description": "the client's", "$ref": "defs.schema.json#/$defs/hetu" },
                "name": { "type": "string", "minLength": 1 },
                "strict": { "type": "string", "minLength": 2 },
                "maybe": { "$ref": "defs.schema.json#/$defs/name" },
                "rows": { "type": "array", "items": { "$ref": "defs.schema.json#/$defs/name" } }
            }
        });
        let registry = registry_of_files(&[("t/doc", doc), ("t/src", source), ("t/defs", defs)]);
        let profile = registry.get("t/doc").expect("profile");
        let source = registry.get("t/src").expect("profile");
        let fields = [
            copied(&["hetu"], &["SSN"]),
            copied(&["name"], &["NAME"]),
            copied(&["strict"], &["NAME"]),
            copied(&["maybe"], &["MAYBE"]),
            copied(&["rows", "*"], &["ROWS", "*"]),
        ];
        let specialised = registry
            .specialise(profile, source, &fields)
            .expect("specialise")
            .expect("replaced");
        // The same definition (hetu), or the same schema written out (name), is implied; a
        // stricter one, or one the source holds only in an `anyOf`, is not; an array's item
        // schema is not a member of `properties`.
        assert_eq!(
            specialised.replaced(),
            [doc_at("/properties/hetu"), doc_at("/properties/name")]
        );
    }

    #[test]
    fn references_resolve_to_one_spelling() {
        assert_eq!(
            resolve(
                &format!("{ID_BASE}kanta/header.schema.json"),
                "../common/defs.schema.json#/$defs/a~1b"
            )
            .expect("resolves"),
            (
                format!("{ID_BASE}common/defs.schema.json"),
                "/$defs/a~1b".to_owned()
            )
        );
        assert!(resolve(&format!("{ID_BASE}x.json"), "#anchor").is_err());
        assert!(resolve(&format!("{ID_BASE}x.json"), "#/a%20b").is_err());
    }

    #[test]
    fn the_decision_document_is_checked_once_where_the_mapping_fixes_it() {
        use crate::mapping::engine::Direction;
        use crate::mapping::{MappingSet, MappingSource};
        use crate::profiles::ProfileSource;
        let profiles = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
        let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("mappings");
        for plan in &set.plans {
            for direction in [Direction::Forward, Direction::Backward] {
                assert!(
                    plan.specialised(direction).is_some(),
                    "{} {direction:?} is not specialised",
                    plan.header.id
                );
            }
        }
        let decision = set
            .plans
            .iter()
            .find(|plan| plan.header.id == "decision")
            .expect("decision");
        let replaced = decision
            .specialised(Direction::Forward)
            .expect("specialised")
            .replaced();
        for fixed in [
            "kanta/header.schema.json#/properties/registerType",
            "kanta/header.schema.json#/properties/client/properties/hetu",
            "kanta/header.schema.json#/properties/client/properties/municipality",
            "kanta/PAATOS_SOSKU.schema.json#/$defs/decision/properties/result",
        ] {
            assert!(
                replaced.contains(&format!("{ID_BASE}{fixed}")),
                "{fixed}: {replaced:?}"
            );
        }
        // Taken from the context (the language), transformed on the way (an EHR time made
        // ISO 8601), or shared by several places (the common definitions): checked for every
        // record.
        for checked in [
            "/properties/language",
            "/properties/createdAt",
            "common/defs",
        ] {
            assert!(
                !replaced.iter().any(|place| place.contains(checked)),
                "{checked}: {replaced:?}"
            );
        }
    }
}
