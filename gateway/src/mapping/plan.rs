//! The mapping language (TOML) and its compilation into a plan.
//!
//! A mapping file relates one Apotti-like message type to one Kanta-style document type with a
//! list of `[[rule]]`s; `mappings/README.md` is the language reference and
//! `mappings/mapping.schema.json` its JSON Schema. Compiling resolves every pointer into
//! segments, every transform and concept map into a direct reference, and decides for every
//! rule what runs forward and what runs backward, so running a plan parses nothing. Errors name
//! the file, the line and the rule.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::engine::Direction;
use super::reads::ReadTree;
use super::transforms::Transform;
use super::writes::WriteTree;
use crate::json_tree::Fixed;
use crate::profiles::specialise::Specialised;

/// A mapping file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// What the mapping relates.
    pub mapping: MappingHeader,
    /// The rules, in the order they run.
    #[serde(default)]
    pub rule: Vec<Spanned<RuleFile>>,
}

/// The `[mapping]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingHeader {
    /// Mapping id (`decision`, `plan`, `visit`).
    pub id: String,
    /// What it maps.
    #[serde(default)]
    pub title: String,
    /// Profile of the Apotti-like export message (the forward source).
    pub apotti: String,
    /// Profile the backward output is checked against (the import message).
    pub apotti_import: String,
    /// Profile of the Kanta-style document.
    pub kanta: String,
}

/// One `[[rule]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// A name for explanations and errors; `<mapping>:<line>` when absent.
    pub id: Option<String>,
    /// JSON Pointer on the Apotti side (relative to the enclosing array item in nested rules).
    pub apotti: Option<String>,
    /// JSON Pointer on the Kanta side.
    pub kanta: Option<String>,
    /// A transform from the library.
    pub transform: Option<String>,
    /// A concept map id: label ⇄ code.
    pub concept: Option<String>,
    /// A crosswalk kind (`decision`, `plan`, `case`, …): source id ⇄ OID.
    pub crosswalk: Option<String>,
    /// Forward value when the rule has no Apotti side (or is lossy).
    pub forward: Option<SourceFile>,
    /// Backward value when the rule has no Kanta side, or is lossy.
    pub reverse: Option<SourceFile>,
    /// Apotti-side value assumed forward when the field is absent; backward, a value equal to
    /// it is left out again (an empty list is not allowed on the Apotti side).
    pub default: Option<Value>,
    /// Why the rule cannot be reversed; required for every rule that loses information.
    pub lossy: Option<String>,
    /// Run only when a field has (or has not) a value.
    pub when: Option<ConditionFile>,
    /// The Apotti array holds at most one item, mapped onto the Kanta object itself.
    #[serde(default)]
    pub single: bool,
    /// Rules for each item of an array (pointers relative to the items).
    #[serde(default)]
    pub each: Vec<Spanned<RuleFile>>,
    /// Group Apotti rows into Kanta elements with items.
    pub group: Option<GroupFile>,
    /// Rules for each group element (Apotti side: the group's first row).
    #[serde(default)]
    pub group_rules: Vec<Spanned<RuleFile>>,
}

/// Where a value comes from when not from the rule's other side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// A fixed value.
    pub constant: Option<Value>,
    /// A value the pipeline supplies (allocated OIDs, version, producer, …).
    pub context: Option<String>,
    /// A named computation on the element being built (`eurohis-score`).
    pub compute: Option<String>,
    /// Another field of the Apotti record (forward only).
    pub apotti: Option<String>,
    /// Another field of the Kanta document (backward only).
    pub kanta: Option<String>,
    /// The display text of the concept entry whose code is at this Kanta pointer.
    pub display_of: Option<String>,
    /// Transform for `apotti`/`kanta` sources.
    pub transform: Option<String>,
    /// Concept map for `apotti`/`kanta`/`display_of` sources.
    pub concept: Option<String>,
    /// Crosswalk kind for `apotti`/`kanta` sources.
    pub crosswalk: Option<String>,
}

/// `when = { apotti = "/X", is = "Y" }`, or with `is_not`; or the same with `kanta`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionFile {
    /// Pointer into the Apotti-side document in scope.
    pub apotti: Option<String>,
    /// Pointer into the Kanta-side document in scope.
    pub kanta: Option<String>,
    /// Holds when the value equals this.
    pub is: Option<Value>,
    /// Holds when the value differs from this (or is absent).
    pub is_not: Option<Value>,
}

/// `group = { ... }`: flowsheet rows ⇄ measurements with items.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    /// Row field whose value is `<prefix><number>` (`EUROHIS_Q3`).
    pub key: String,
    /// Concept map: prefix ⇄ the group's coding.
    pub concept: String,
    /// Where the group's coding goes in the Kanta element.
    pub kanta_key: String,
    /// Where the items array goes in the Kanta element.
    pub items: String,
    /// Where the number goes in each Kanta item.
    pub kanta_number: String,
}

/// `file:line` of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The mapping file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A parsed JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ptr {
    /// As written.
    pub text: String,
    /// Unescaped segments.
    pub segments: Vec<String>,
}

impl Ptr {
    /// Parses an RFC 6901 pointer (`""` is the whole value).
    ///
    /// # Errors
    /// When the text is neither empty nor starts with `/`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                segments: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "'{text}' is not a JSON Pointer (it must start with '/')"
            ));
        };
        Ok(Self {
            text: text.to_owned(),
            segments: rest
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
        })
    }

    /// The value at this pointer.
    #[must_use]
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut current = value;
        for segment in &self.segments {
            current = match current {
                Value::Object(map) => map.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// Writes `new` at this pointer, creating objects on the way: the reference the engine's
    /// documents ([`crate::json_tree::Output::set`]) are tested against.
    ///
    /// Each object on the way is searched once (`entry`: a short key allocation costs less than
    /// a second search of a `BTreeMap`), and the last key is inserted with one search.
    #[cfg(test)]
    pub fn set(&self, target: &mut Value, new: Value) {
        let Some((last, parents)) = self.segments.split_last() else {
            *target = new;
            return;
        };
        let mut current = target;
        for segment in parents {
            let Some(map) = object_of(current) else {
                return;
            };
            current = map.entry(segment.as_str()).or_insert(Value::Null);
        }
        if let Some(map) = object_of(current) {
            map.insert(last.clone(), new);
        }
    }
}

/// `value` as an object, replacing anything else with an empty one (never `None`).
#[cfg(test)]
fn object_of(value: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    if !value.is_object() {
        *value = Value::Object(serde_json::Map::new());
    }
    value.as_object_mut()
}

/// The rules of one scope (a mapping, or the nested rules of an array or a group), with what
/// they write and read in each direction compiled into trees ([`WriteTree`], [`ReadTree`]).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    list: Vec<Rule>,
    forward: Option<WriteTree>,
    backward: Option<WriteTree>,
    reads_forward: Option<ReadTree>,
    reads_backward: Option<ReadTree>,
}

impl Rules {
    /// Compiles the write and read trees of `list`.
    #[must_use]
    pub fn new(list: Vec<Rule>) -> Self {
        Self {
            forward: WriteTree::compile(&list, true),
            backward: WriteTree::compile(&list, false),
            reads_forward: ReadTree::compile(&list, true),
            reads_backward: ReadTree::compile(&list, false),
            list,
        }
    }

    /// What the scope's field rules read in a direction, when there are enough of them.
    #[must_use]
    pub fn reads(&self, forward: bool) -> Option<&ReadTree> {
        if forward {
            self.reads_forward.as_ref()
        } else {
            self.reads_backward.as_ref()
        }
    }

    /// What the scope writes in a direction, when it can be built at the end of the scope.
    #[must_use]
    pub fn writes(&self, forward: bool) -> Option<&WriteTree> {
        if forward {
            self.forward.as_ref()
        } else {
            self.backward.as_ref()
        }
    }
}

impl std::ops::Deref for Rules {
    type Target = [Rule];

    fn deref(&self) -> &[Rule] {
        &self.list
    }
}

impl<'a> IntoIterator for &'a Rules {
    type Item = &'a Rule;
    type IntoIter = std::slice::Iter<'a, Rule>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// How a value is converted between the two sides.
#[derive(Debug, Clone, PartialEq)]
pub enum Convert {
    /// Unchanged.
    Copy,
    /// A library transform.
    Transform(Transform),
    /// A concept map (index into the set's maps).
    Concept(usize),
    /// Source id ⇄ OID through the crosswalk, of this kind.
    Crosswalk(String),
}

/// A named computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    /// EUROHIS-QOL-8: mean of the answered items, 2 decimals, halves away from zero, only when
    /// at least 6 items are answered. It does not look at the instrument: the rule's `when`
    /// restricts it to EUROHIS-QOL-8 measurements.
    EurohisScore,
    /// The 1-based number of the row being written (backward groups: Epic's `LINE`).
    RowNumber,
}

/// Where one direction of a rule takes its value from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// This direction does not run.
    Nothing,
    /// From the rule's other side.
    Peer(Convert),
    /// A fixed value.
    Constant(Fixed),
    /// A context value.
    Context(String),
    /// A computation on the element being built.
    Compute(Compute),
    /// Another field of the source document.
    Other(Ptr, Convert),
    /// The display of the concept entry whose code is at a pointer.
    DisplayOf(Ptr, usize),
}

/// A condition on a rule.
#[derive(Debug, Clone)]
pub struct Condition {
    /// `true`: the pointer is on the Apotti side.
    pub apotti_side: bool,
    /// The field.
    pub ptr: Ptr,
    /// Equal to (`Some`) or different from (`negate`).
    pub value: Value,
    /// `is_not`.
    pub negate: bool,
}

/// What kind of rule.
#[derive(Debug, Clone)]
pub enum Shape {
    /// One value.
    Field,
    /// An array, item by item.
    Each(Rules),
    /// An array of at most one item ⇄ the Kanta object.
    Single(Rules),
    /// Rows grouped into elements with items.
    Group(Box<GroupPlan>),
}

/// A compiled group.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// Key field in a row.
    pub key: Ptr,
    /// Concept map index: prefix ⇄ coding.
    pub concept: usize,
    /// Coding's place in the element.
    pub kanta_key: Ptr,
    /// Items' place in the element.
    pub items: Ptr,
    /// Number's place in an item.
    pub kanta_number: Ptr,
    /// Rules per element (Apotti side: the group's first row).
    pub group_rules: Rules,
    /// Rules per row ⇄ item.
    pub item_rules: Rules,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id for explanations and errors.
    pub id: String,
    /// Where it is written.
    pub location: SourceLocation,
    /// Apotti-side pointer.
    pub apotti: Option<Ptr>,
    /// Kanta-side pointer.
    pub kanta: Option<Ptr>,
    /// How the Kanta value is made (forward).
    pub forward: Source,
    /// How the Apotti value is made (backward).
    pub reverse: Source,
    /// Apotti value assumed when absent.
    pub default: Option<Value>,
    /// Declared loss.
    pub lossy: Option<String>,
    /// Condition.
    pub when: Option<Condition>,
    /// Field, array or group.
    pub shape: Shape,
}

/// A compiled mapping.
#[derive(Debug)]
pub struct MappingPlan {
    /// The header.
    pub header: MappingHeader,
    /// The file it came from.
    pub file: String,
    /// The rules.
    pub rules: Rules,
    /// SHA-256 of the file's bytes.
    pub hash: String,
    /// The target profiles' validators specialised to this mapping, forward and backward
    /// ([`crate::profiles::specialise`]); `None` where nothing could be specialised.
    pub specialised: [Option<Specialised>; 2],
}

impl MappingPlan {
    /// The target profile's validator specialised to this mapping in `direction`, if any.
    #[must_use]
    pub fn specialised(&self, direction: Direction) -> Option<&Specialised> {
        self.specialised[Self::slot(direction)].as_ref()
    }

    /// Sets [`Self::specialised`] for `direction`.
    pub fn set_specialised(&mut self, direction: Direction, specialised: Option<Specialised>) {
        self.specialised[Self::slot(direction)] = specialised;
    }

    fn slot(direction: Direction) -> usize {
        usize::from(matches!(direction, Direction::Backward))
    }
}

/// A compile error: file, line, rule and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// Where.
    pub location: SourceLocation,
    /// Which rule (id, or `-` for the file itself).
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: rule {}: {}", self.location, self.rule, self.message)
    }
}

/// Compilation context: concept maps by id, and the source text for line numbers.
#[derive(Debug)]
pub struct Compiler<'a> {
    /// Concept map index by id.
    pub concepts: &'a HashMap<String, usize>,
    /// The file name.
    pub file: &'a str,
    /// The file text.
    pub text: &'a str,
    /// The mapping id, for default rule ids.
    pub mapping_id: &'a str,
}

impl Compiler<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |head| head.bytes().filter(|&b| b == b'\n').count() + 1)
    }

    /// Compiles a list of rules.
    ///
    /// # Errors
    /// Every problem found, each naming file, line and rule.
    pub fn rules(&self, specs: &[Spanned<RuleFile>]) -> Result<Rules, Vec<MappingError>> {
        let mut rules = Vec::with_capacity(specs.len());
        let mut errors = Vec::new();
        for spec in specs {
            match self.rule(spec) {
                Ok(rule) => rules.push(rule),
                Err(mut more) => errors.append(&mut more),
            }
        }
        if errors.is_empty() {
            Ok(Rules::new(rules))
        } else {
            Err(errors)
        }
    }

    fn rule(&self, spanned: &Spanned<RuleFile>) -> Result<Rule, Vec<MappingError>> {
        let spec = spanned.get_ref();
        let location = SourceLocation {
            file: self.file.to_owned(),
            line: self.line_of(spanned.span().start),
        };
        let id = spec
            .id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.mapping_id, location.line));
        let fail = |message: String| {
            vec![MappingError {
                location: location.clone(),
                rule: id.clone(),
                message,
            }]
        };
        let pointer = |text: &Option<String>| -> Result<Option<Ptr>, Vec<MappingError>> {
            text.as_deref().map(Ptr::parse).transpose().map_err(fail)
        };
        let apotti = pointer(&spec.apotti)?;
        let kanta = pointer(&spec.kanta)?;
        let peer = self
            .convert(
                spec.transform.as_deref(),
                spec.concept.as_deref(),
                spec.crosswalk.as_deref(),
            )
            .map_err(fail)?;
        let forward_spec = spec
            .forward
            .as_ref()
            .map(|s| self.source(s, true))
            .transpose()
            .map_err(fail)?;
        let reverse_spec = spec
            .reverse
            .as_ref()
            .map(|s| self.source(s, false))
            .transpose()
            .map_err(fail)?;
        let invertible = match &peer {
            Convert::Transform(transform) => transform.invertible(),
            _ => true,
        };
        let (forward, reverse) = match (&apotti, &kanta) {
            (Some(_), Some(_)) => {
                if forward_spec.is_some() {
                    return Err(fail("a rule with both sides takes its forward value from the Apotti side; `forward` is for rules without one".into()));
                }
                if spec.lossy.is_none() && reverse_spec.is_some() {
                    return Err(fail("`reverse` on a rule with both sides means it is lossy: say why with `lossy`".into()));
                }
                if spec.lossy.is_none() && !invertible {
                    return Err(fail(format!(
                        "transform {} has no way back: declare the rule `lossy` and say where the reverse takes its value from",
                        spec.transform.as_deref().unwrap_or_default()
                    )));
                }
                let reverse = match (&spec.lossy, reverse_spec) {
                    (None, _) => Source::Peer(peer.clone()),
                    (Some(_), Some(source)) => source,
                    (Some(_), None) => Source::Nothing,
                };
                (Source::Peer(peer), reverse)
            }
            (None, Some(_)) => {
                let Some(forward) = forward_spec else {
                    return Err(fail("a rule with only a Kanta side needs `forward` (constant, context, compute or another Apotti field)".into()));
                };
                if reverse_spec.is_some() {
                    return Err(fail("a rule with only a Kanta side has no backward direction; `reverse` does not apply".into()));
                }
                (forward, Source::Nothing)
            }
            (Some(_), None) => {
                if forward_spec.is_some() {
                    return Err(fail("a rule with only an Apotti side has no forward direction; `forward` does not apply".into()));
                }
                let reverse = reverse_spec.unwrap_or(Source::Nothing);
                let constant = matches!(reverse, Source::Constant(_));
                if spec.lossy.is_none() && !constant {
                    return Err(fail("an Apotti field with no place on the Kanta side loses data: declare it `lossy` with the reason".into()));
                }
                (Source::Nothing, reverse)
            }
            (None, None) => {
                return Err(fail("a rule needs an `apotti` or a `kanta` pointer".into()));
            }
        };
        let when = spec
            .when
            .as_ref()
            .map(|c| self.condition(c))
            .transpose()
            .map_err(fail)?;
        let shape = if let Some(group) = &spec.group {
            if apotti.is_none() || kanta.is_none() {
                return Err(fail(
                    "a group needs both an `apotti` array and a `kanta` array".into(),
                ));
            }
            let concept = self.concept_index(&group.concept).map_err(fail)?;
            let group_rules = self.rules(&spec.group_rules)?;
            let item_rules = self.rules(&spec.each)?;
            Shape::Group(Box::new(GroupPlan {
                key: Ptr::parse(&group.key).map_err(fail)?,
                concept,
                kanta_key: Ptr::parse(&group.kanta_key).map_err(fail)?,
                items: Ptr::parse(&group.items).map_err(fail)?,
                kanta_number: Ptr::parse(&group.kanta_number).map_err(fail)?,
                group_rules,
                item_rules,
            }))
        } else if !spec.each.is_empty() {
            if !spec.group_rules.is_empty() {
                return Err(fail("`group_rules` needs a `group`".into()));
            }
            let nested = self.rules(&spec.each)?;
            if spec.single {
                Shape::Single(nested)
            } else {
                Shape::Each(nested)
            }
        } else {
            if spec.single || !spec.group_rules.is_empty() {
                return Err(fail(
                    "`single` and `group_rules` need nested rules in `each`".into(),
                ));
            }
            Shape::Field
        };
        if !matches!(shape, Shape::Field) && (apotti.is_none() || kanta.is_none()) {
            return Err(fail(
                "a rule with nested rules needs both an `apotti` and a `kanta` pointer".into(),
            ));
        }
        Ok(Rule {
            id,
            location,
            apotti,
            kanta,
            forward,
            reverse,
            default: spec.default.clone(),
            lossy: spec.lossy.clone(),
            when,
            shape,
        })
    }

    fn concept_index(&self, id: &str) -> Result<usize, String> {
        self.concepts.get(id).copied().ok_or_else(|| {
            let mut known: Vec<&str> = self.concepts.keys().map(String::as_str).collect();
            known.sort_unstable();
            format!("unknown concept map '{id}' (known: {})", known.join(", "))
        })
    }

    fn convert(
        &self,
        transform: Option<&str>,
        concept: Option<&str>,
        crosswalk: Option<&str>,
    ) -> Result<Convert, String> {
        match (transform, concept, crosswalk) {
            (None, None, None) => Ok(Convert::Copy),
            (Some(name), None, None) => Transform::by_name(name)
                .map(Convert::Transform)
                .ok_or_else(|| {
                    let known: Vec<&str> = Transform::ALL.iter().map(|t| t.name()).collect();
                    format!("unknown transform '{name}' (known: {})", known.join(", "))
                }),
            (None, Some(id), None) => self.concept_index(id).map(Convert::Concept),
            (None, None, Some(kind)) => Ok(Convert::Crosswalk(kind.to_owned())),
            _ => Err("use one of `transform`, `concept` and `crosswalk`, not several".into()),
        }
    }

    fn source(&self, spec: &SourceFile, forward: bool) -> Result<Source, String> {
        let convert = || {
            self.convert(
                spec.transform.as_deref(),
                spec.concept.as_deref(),
                spec.crosswalk.as_deref(),
            )
        };
        let given = [
            spec.constant.is_some(),
            spec.context.is_some(),
            spec.compute.is_some(),
            spec.apotti.is_some(),
            spec.kanta.is_some(),
            spec.display_of.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if given != 1 {
            return Err("a value source names exactly one of constant, context, compute, apotti, kanta, display_of".into());
        }
        if let Some(value) = &spec.constant {
            return Ok(Source::Constant(Fixed::new(value.clone())));
        }
        if let Some(name) = &spec.context {
            if !super::engine::CONTEXT_NAMES.contains(&name.as_str()) {
                return Err(format!(
                    "unknown context value '{name}' (known: {})",
                    super::engine::CONTEXT_NAMES.join(", ")
                ));
            }
            return Ok(Source::Context(name.clone()));
        }
        if let Some(name) = &spec.compute {
            return match name.as_str() {
                "eurohis-score" => Ok(Source::Compute(Compute::EurohisScore)),
                "row-number" => Ok(Source::Compute(Compute::RowNumber)),
                other => Err(format!(
                    "unknown computation '{other}' (known: eurohis-score, row-number)"
                )),
            };
        }
        if let Some(pointer) = &spec.apotti {
            if !forward {
                return Err("`reverse` reads the Kanta document: use `kanta`, not `apotti`".into());
            }
            return Ok(Source::Other(Ptr::parse(pointer)?, convert()?));
        }
        if let Some(pointer) = &spec.kanta {
            if forward {
                return Err("`forward` reads the Apotti record: use `apotti`, not `kanta`".into());
            }
            return Ok(Source::Other(Ptr::parse(pointer)?, convert()?));
        }
        if let Some(pointer) = &spec.display_of {
            let concept = spec
                .concept
                .as_deref()
                .ok_or("`display_of` needs the `concept` map to look the code up in")?;
            return Ok(Source::DisplayOf(
                Ptr::parse(pointer)?,
                self.concept_index(concept)?,
            ));
        }
        Err("empty value source".into())
    }

    fn condition(&self, spec: &ConditionFile) -> Result<Condition, String> {
        let (apotti_side, pointer) = match (&spec.apotti, &spec.kanta) {
            (Some(p), None) => (true, p),
            (None, Some(p)) => (false, p),
            _ => return Err("`when` names exactly one of `apotti` and `kanta`".into()),
        };
        let (value, negate) = match (&spec.is, &spec.is_not) {
            (Some(v), None) => (v.clone(), false),
            (None, Some(v)) => (v.clone(), true),
            _ => return Err("`when` needs exactly one of `is` and `is_not`".into()),
        };
        Ok(Condition {
            apotti_side,
            ptr: Ptr::parse(pointer)?,
            value,
            negate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_get_and_set() {
        let ptr = Ptr::parse("/a/b~1c/0").expect("pointer");
        assert_eq!(ptr.segments, ["a", "b/c", "0"]);
        let mut value = json!({});
        Ptr::parse("/x/y")
            .expect("pointer")
            .set(&mut value, json!(1));
        assert_eq!(value, json!({"x": {"y": 1}}));
        assert!(Ptr::parse("x").is_err());
        assert_eq!(Ptr::parse("/x/y").expect("p").get(&value), Some(&json!(1)));
    }
}
