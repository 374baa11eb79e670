//! Running a compiled plan, forward (Apotti → Kanta) or backward (Kanta → Apotti).
//!
//! The engine is pure: it takes a record and a [`MappingContext`] (the values the pipeline
//! supplies: allocated OIDs, version, producer, crosswalk look-ups) and returns a document or
//! issues. Both directions share one walk over the rules; the direction only decides which side
//! is read and which is written. Paths for messages and explanations are built only when an
//! issue or a trace needs them.

use serde_json::Value;

use super::MappingSet;
use super::concepts::ConceptError;
use super::plan::{
    Compute, Condition, Convert, GroupPlan, MappingPlan, Ptr, Rule, Rules, Shape, Source,
};
use super::writes::Pending;
use crate::json_tree::Output;
use crate::outcome::{Issue, IssueCode};
use crate::profiles::rules::round_half_away;

/// Names of the context values a mapping may use; the compiler rejects others.
pub const CONTEXT_NAMES: &[&str] = &[
    "document_oid",
    "version",
    "replaces",
    "producer",
    "custodian_type",
    "language",
    "revision",
    "msg_id",
    "msg_dttm",
    "source_system",
    "patient_id",
    "note_id",
    "flowsheet_id",
];

/// What the pipeline supplies to a mapping run.
pub trait MappingContext {
    /// A named value (see [`CONTEXT_NAMES`]); `None` leaves the field out. Documents borrow
    /// it.
    fn value(&self, name: &str) -> Option<&Value>;
    /// The OID the crosswalk holds (or allocates) for a source id of this kind.
    fn oid_for(&self, kind: &str, source_id: &str) -> Option<String>;
    /// The source id the crosswalk knows for an OID, if any.
    fn source_id_for(&self, kind: &str, oid: &str) -> Option<String>;
}

/// Which way a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Apotti-like → Kanta-style.
    Forward,
    /// Kanta-style → Apotti-like.
    Backward,
}

/// Which rule and source produced an output field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trace {
    /// JSON Pointer of the output value.
    pub target: String,
    /// The rule id.
    pub rule: String,
    /// `file:line` of the rule.
    pub location: String,
    /// JSON Pointer of the input value, when the value came from the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct MapOutcome<'a> {
    /// The mapped document (incomplete when there are issues); its leaves borrow from the
    /// input and the plan.
    pub document: Output<'a>,
    /// What could not be mapped.
    pub issues: Vec<Issue>,
    /// Explanations, when asked for.
    pub trace: Vec<Trace>,
}

/// A path for messages: a chain of pointer pieces, rendered only when needed.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    piece: Piece<'a>,
}

#[derive(Clone, Copy)]
enum Piece<'a> {
    Root,
    Pointer(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        parent: None,
        piece: Piece::Root,
    };

    fn child(&'a self, piece: Piece<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            piece,
        }
    }

    fn render(&self) -> String {
        let mut pieces = Vec::new();
        let mut current = Some(self);
        while let Some(path) = current {
            pieces.push(path.piece);
            current = path.parent;
        }
        let mut out = String::new();
        for piece in pieces.into_iter().rev() {
            match piece {
                Piece::Root => {}
                Piece::Pointer(text) => out.push_str(text),
                Piece::Index(index) => {
                    out.push('/');
                    out.push_str(&index.to_string());
                }
            }
        }
        out
    }

    fn with(&self, ptr: &Ptr) -> String {
        let mut out = self.render();
        out.push_str(&ptr.text);
        out
    }
}

struct Run<'a> {
    set: &'a MappingSet,
    context: &'a dyn MappingContext,
    direction: Direction,
    issues: Vec<Issue>,
    trace: Option<Vec<Trace>>,
    row_number: usize,
}

/// Where a scope's rules write: its target, or the slots of its write tree, which are built
/// into the target when the scope ends ([`super::writes`]).
struct Out<'t, 'a> {
    target: &'t mut Output<'a>,
    pending: Option<Pending<'a>>,
    /// The slot of the rule running now.
    slot: Option<usize>,
}

impl<'a> Out<'_, 'a> {
    fn put(&mut self, write: &'a Ptr, value: Output<'a>) {
        let place = match (&mut self.pending, self.slot) {
            (Some(pending), Some(slot)) => pending.get_mut(slot),
            _ => None,
        };
        match place {
            Some(place) => *place = Some(value),
            None => self.target.set(&write.segments, value),
        }
    }
}

/// Runs `plan` on `input`.
#[must_use]
pub fn run<'a>(
    set: &'a MappingSet,
    plan: &'a MappingPlan,
    input: &'a Value,
    context: &'a dyn MappingContext,
    direction: Direction,
    explain: bool,
) -> MapOutcome<'a> {
    let mut run = Run {
        set,
        context,
        direction,
        issues: Vec::new(),
        trace: explain.then(Vec::new),
        row_number: 0,
    };
    let mut document = Output::empty_object();
    run.rules(&plan.rules, input, &mut document, &Path::ROOT, &Path::ROOT);
    MapOutcome {
        document,
        issues: run.issues,
        trace: run.trace.unwrap_or_default(),
    }
}

impl<'a> Run<'a> {
    fn forward(&self) -> bool {
        self.direction == Direction::Forward
    }

    /// (read pointer, write pointer, value source) of a rule in this direction.
    fn sides<'r>(&self, rule: &'r Rule) -> (Option<&'r Ptr>, Option<&'r Ptr>, &'r Source) {
        if self.forward() {
            (rule.apotti.as_ref(), rule.kanta.as_ref(), &rule.forward)
        } else {
            (rule.kanta.as_ref(), rule.apotti.as_ref(), &rule.reverse)
        }
    }

    fn issue(&mut self, rule: &Rule, code: IssueCode, pointer: String, message: String) {
        self.issues.push(Issue::error(
            code,
            format!("mapping:{}", rule.id),
            pointer,
            format!("{message} (rule {} at {})", rule.id, rule.location),
        ));
    }

    /// Runs rules in scope; returns how many values came from the input (not constants).
    fn rules(
        &mut self,
        rules: &'a Rules,
        source: &'a Value,
        target: &mut Output<'a>,
        source_path: &Path<'_>,
        target_path: &Path<'_>,
    ) -> usize {
        let tree = rules.writes(self.forward());
        let mut out = Out {
            target,
            pending: tree.map(super::writes::WriteTree::pending),
            slot: None,
        };
        // The field rules' inputs, found in one pass over the scope's input.
        let reads = rules.reads(self.forward());
        let found = reads.map(|reads| reads.find(source));
        let mut from_input = 0;
        for (index, rule) in rules.iter().enumerate() {
            if let Some(condition) = &rule.when
                && !self.holds(condition, source, out.target)
            {
                continue;
            }
            out.slot = tree.and_then(|tree| tree.slot(index));
            let input = match (reads, &found) {
                (Some(reads), Some(found)) => reads.slot(index).map(|node| found[node]),
                _ => None,
            };
            from_input += match &rule.shape {
                Shape::Field => self.field(rule, source, input, &mut out, source_path, target_path),
                Shape::Each(nested) => {
                    self.each(rule, nested, source, &mut out, source_path, target_path)
                }
                Shape::Single(nested) => {
                    self.single(rule, nested, source, &mut out, source_path, target_path)
                }
                Shape::Group(group) => {
                    self.group(rule, group, source, &mut out, source_path, target_path)
                }
            };
        }
        if let (Some(tree), Some(pending)) = (tree, &mut out.pending) {
            tree.flush(pending, out.target);
        }
        from_input
    }

    fn holds(&self, condition: &Condition, source: &Value, target: &Output<'_>) -> bool {
        let equal = if condition.apotti_side == self.forward() {
            condition.ptr.get(source) == Some(&condition.value)
        } else {
            target
                .get(&condition.ptr.segments)
                .is_some_and(|found| found.equals(&condition.value))
        };
        equal != condition.negate
    }

    /// Backward, a value equal to the rule's default is left out: the Apotti side does not
    /// carry defaults (an empty list is not allowed there).
    fn leaves_out(&self, rule: &Rule, value: &Output<'_>) -> bool {
        !self.forward()
            && rule
                .default
                .as_ref()
                .is_some_and(|default| value.equals(default))
    }

    fn record(&mut self, rule: &Rule, target: String, source: Option<String>) {
        if let Some(trace) = &mut self.trace {
            trace.push(Trace {
                target,
                rule: rule.id.clone(),
                location: rule.location.to_string(),
                source,
            });
        }
    }

    /// `input`: the value the rule reads, when the scope's read tree found it already
    /// (`Some(None)`: the field is absent); `None`: look it up here.
    fn field(
        &mut self,
        rule: &'a Rule,
        source: &'a Value,
        input: Option<Option<&'a Value>>,
        out: &mut Out<'_, 'a>,
        source_path: &Path<'_>,
        target_path: &Path<'_>,
    ) -> usize {
        let (read, write, how) = self.sides(rule);
        if self.forward()
            && matches!(how, Source::Nothing)
            && self.trace.is_some()
            && let Some(read) = read.filter(|ptr| ptr.get(source).is_some())
        {
            // A field the mapping declares it does not keep: say so in the explanation.
            self.record(rule, "(not kept)".to_owned(), Some(source_path.with(read)));
            return 0;
        }
        let Some(write) = write else { return 0 };
        let (value, from) = match how {
            Source::Nothing => return 0,
            Source::Constant(value) => (Output::Fixed(value), None),
            Source::Context(name) => match self.context.value(name) {
                Some(value) => (Output::Borrowed(value), None),
                None => return 0,
            },
            Source::Compute(compute) => match self.compute(*compute, out.target) {
                Some(value) => (Output::Owned(value), None),
                None => return 0,
            },
            Source::Peer(convert) => {
                let Some(read) = read else { return 0 };
                let found = input.unwrap_or_else(|| read.get(source));
                let value = match (found, &rule.default) {
                    (Some(value), _) => value,
                    (None, Some(default)) if self.forward() => default,
                    (None, _) => return 0,
                };
                match self.convert(rule, convert, value, || source_path.with(read)) {
                    Some(value) => (value, Some(read)),
                    None => return 0,
                }
            }
            Source::Other(ptr, convert) => {
                let Some(value) = input.unwrap_or_else(|| ptr.get(source)) else {
                    return 0;
                };
                match self.convert(rule, convert, value, || source_path.with(ptr)) {
                    Some(value) => (value, Some(ptr)),
                    None => return 0,
                }
            }
            Source::DisplayOf(ptr, concept) => {
                let Some(value) = input.unwrap_or_else(|| ptr.get(source)) else {
                    return 0;
                };
                let map = &self.set.concepts[*concept];
                match map.entry_for_kanta(value) {
                    Ok(entry) => (
                        Output::Owned(Value::String(
                            entry.display.clone().unwrap_or_else(|| entry.label.clone()),
                        )),
                        Some(ptr),
                    ),
                    Err(_) => {
                        let at = source_path.with(ptr);
                        let id = map.id.clone();
                        self.issue(
                            rule,
                            IssueCode::CodeInvalid,
                            at,
                            format!("the code has no entry in concept map {id}"),
                        );
                        return 0;
                    }
                }
            }
        };
        if self.leaves_out(rule, &value) {
            return 0;
        }
        if self.trace.is_some() {
            let source = from.map(|ptr| source_path.with(ptr));
            self.record(rule, target_path.with(write), source);
        }
        out.put(write, value);
        usize::from(matches!(how, Source::Peer(_)))
    }

    fn convert(
        &mut self,
        rule: &Rule,
        convert: &Convert,
        value: &'a Value,
        at: impl FnOnce() -> String,
    ) -> Option<Output<'a>> {
        let forward = self.forward();
        match convert {
            Convert::Copy => Some(Output::Borrowed(value)),
            Convert::Transform(transform) => {
                let result = if forward {
                    transform.forward(value)
                } else {
                    transform.backward(value)
                };
                match result {
                    Ok(value) => Some(Output::Owned(value)),
                    Err(error) => {
                        let name = transform.name();
                        self.issue(
                            rule,
                            IssueCode::Value,
                            at(),
                            format!("transform {name} cannot convert the value: {error}"),
                        );
                        None
                    }
                }
            }
            Convert::Concept(index) => {
                let map = &self.set.concepts[*index];
                let result = if forward {
                    map.forward(value).map(Output::Fixed)
                } else {
                    map.backward(value).map(Output::Owned)
                };
                match result {
                    Ok(value) => Some(value),
                    Err(error) => {
                        let id = map.id.clone();
                        let message = match (error, value.as_str()) {
                            (ConceptError::NoTranslation, Some(label)) => format!(
                                "'{label}' has no translation in concept map {id}; it is never passed through"
                            ),
                            (ConceptError::UnknownCode, _) => {
                                format!("the code is not in concept map {id}")
                            }
                            (ConceptError::Ambiguous, _) => {
                                format!("the code maps back to several labels in concept map {id}")
                            }
                            (ConceptError::WrongSystem, _) => {
                                format!("the coding's system is not that of concept map {id}")
                            }
                            _ => format!("the value is not of the shape concept map {id} takes"),
                        };
                        self.issue(rule, IssueCode::CodeInvalid, at(), message);
                        None
                    }
                }
            }
            Convert::Crosswalk(kind) => {
                let number;
                let text = match value {
                    Value::String(text) => text.as_str(),
                    Value::Number(n) => {
                        number = n.to_string();
                        number.as_str()
                    }
                    _ => {
                        self.issue(rule, IssueCode::Value, at(), "expected an id".into());
                        return None;
                    }
                };
                if forward {
                    match self.context.oid_for(kind, text) {
                        Some(oid) => Some(Output::Owned(Value::String(oid))),
                        None => {
                            self.issue(
                                rule,
                                IssueCode::Processing,
                                at(),
                                format!("the crosswalk has no {kind} OID for this id"),
                            );
                            None
                        }
                    }
                } else {
                    let id = self
                        .context
                        .source_id_for(kind, text)
                        .unwrap_or_else(|| text.to_owned());
                    Some(Output::Owned(Value::String(id)))
                }
            }
        }
    }

    fn compute(&self, compute: Compute, element: &Output<'_>) -> Option<Value> {
        match compute {
            Compute::EurohisScore => {
                let items = element.node().child("items")?.items()?;
                if items.len() < 6 {
                    return None;
                }
                let mut sum = 0.0;
                for item in &items {
                    sum += item.child("value")?.as_f64()?;
                }
                #[expect(clippy::cast_precision_loss, reason = "at most 8 items")]
                let mean = sum / items.len() as f64;
                serde_json::Number::from_f64(round_half_away(mean, 2)).map(Value::Number)
            }
            Compute::RowNumber => Some(Value::from(self.row_number)),
        }
    }

    fn source_array(
        &mut self,
        rule: &'a Rule,
        read: &Ptr,
        source: &'a Value,
        source_path: &Path<'_>,
    ) -> Option<&'a [Value]> {
        let value = match (read.get(source), &rule.default) {
            (Some(value), _) => value,
            (None, Some(default)) if self.forward() => default,
            (None, _) => return None,
        };
        match value.as_array() {
            Some(items) => Some(items),
            None => {
                self.issue(
                    rule,
                    IssueCode::Structure,
                    source_path.with(read),
                    "expected an array".into(),
                );
                None
            }
        }
    }

    fn each(
        &mut self,
        rule: &'a Rule,
        nested: &'a Rules,
        source: &'a Value,
        dest: &mut Out<'_, 'a>,
        source_path: &Path<'_>,
        target_path: &Path<'_>,
    ) -> usize {
        let (Some(read), Some(write), _) = self.sides(rule) else {
            return 0;
        };
        let Some(items) = self.source_array(rule, read, source, source_path) else {
            return 0;
        };
        let source_base = source_path.child(Piece::Pointer(&read.text));
        let target_base = target_path.child(Piece::Pointer(&write.text));
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let mut element = Output::empty_object();
            self.rules(
                nested,
                item,
                &mut element,
                &source_base.child(Piece::Index(index)),
                &target_base.child(Piece::Index(index)),
            );
            out.push(element);
        }
        let value = Output::Array(out);
        if self.leaves_out(rule, &value) {
            return 0;
        }
        if self.trace.is_some() {
            self.record(rule, target_path.with(write), Some(source_path.with(read)));
        }
        dest.put(write, value);
        1
    }

    fn single(
        &mut self,
        rule: &'a Rule,
        nested: &'a Rules,
        source: &'a Value,
        out: &mut Out<'_, 'a>,
        source_path: &Path<'_>,
        target_path: &Path<'_>,
    ) -> usize {
        let (Some(apotti), Some(kanta)) = (&rule.apotti, &rule.kanta) else {
            return 0;
        };
        if self.forward() {
            let Some(items) = self.source_array(rule, apotti, source, source_path) else {
                return 0;
            };
            match items {
                [] => 0,
                [item] => {
                    let mut element = out
                        .target
                        .get_owned(&kanta.segments)
                        .unwrap_or_else(Output::empty_object);
                    let source_base = source_path.child(Piece::Pointer(&apotti.text));
                    let written = self.rules(
                        nested,
                        item,
                        &mut element,
                        &source_base.child(Piece::Index(0)),
                        &target_path.child(Piece::Pointer(&kanta.text)),
                    );
                    out.put(kanta, element);
                    if self.trace.is_some() {
                        self.record(
                            rule,
                            target_path.with(kanta),
                            Some(source_path.with(apotti)),
                        );
                    }
                    written
                }
                _ => {
                    self.issue(
                        rule,
                        IssueCode::NotSupported,
                        source_path.with(apotti),
                        format!(
                            "{} items where the Kanta-style document has room for one; the record \
                             cannot be mapped without losing data",
                            items.len()
                        ),
                    );
                    0
                }
            }
        } else {
            let Some(object) = kanta.get(source) else {
                return 0;
            };
            let mut element = Output::empty_object();
            let target_base = target_path.child(Piece::Pointer(&apotti.text));
            let written = self.rules(
                nested,
                object,
                &mut element,
                &source_path.child(Piece::Pointer(&kanta.text)),
                &target_base.child(Piece::Index(0)),
            );
            if written > 0 {
                if self.trace.is_some() {
                    self.record(
                        rule,
                        target_path.with(apotti),
                        Some(source_path.with(kanta)),
                    );
                }
                out.put(apotti, Output::Array(vec![element]));
            }
            written
        }
    }

    fn group(
        &mut self,
        rule: &'a Rule,
        group: &'a GroupPlan,
        source: &'a Value,
        dest: &mut Out<'_, 'a>,
        source_path: &Path<'_>,
        target_path: &Path<'_>,
    ) -> usize {
        let (Some(read), Some(write), _) = self.sides(rule) else {
            return 0;
        };
        let Some(items) = self.source_array(rule, read, source, source_path) else {
            return 0;
        };
        let source_base = source_path.child(Piece::Pointer(&read.text));
        let target_base = target_path.child(Piece::Pointer(&write.text));
        let out = if self.forward() {
            self.group_forward(rule, group, items, &source_base, &target_base)
        } else {
            self.group_backward(rule, group, items, &source_base, &target_base)
        };
        let Some(out) = out else { return 0 };
        let value = Output::Array(out);
        if self.leaves_out(rule, &value) {
            return 0;
        }
        if self.trace.is_some() {
            self.record(rule, target_path.with(write), Some(source_path.with(read)));
        }
        dest.put(write, value);
        1
    }

    fn group_forward(
        &mut self,
        rule: &Rule,
        group: &'a GroupPlan,
        rows: &'a [Value],
        source_base: &Path<'_>,
        target_base: &Path<'_>,
    ) -> Option<Vec<Output<'a>>> {
        let map = &self.set.concepts[group.concept];
        // In order of first appearance.
        let mut groups: Vec<Group> = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            let at = || source_base.child(Piece::Index(index)).with(&group.key);
            let Some(key) = group.key.get(row).and_then(Value::as_str) else {
                let at = at();
                self.issue(rule, IssueCode::Required, at, "the row has no key".into());
                return None;
            };
            let Some((prefix, number)) = split_prefix_number(key) else {
                let at = at();
                self.issue(
                    rule,
                    IssueCode::Value,
                    at,
                    "the key does not end in an item number".into(),
                );
                return None;
            };
            let Some(entry) = map.entries.iter().position(|e| e.label == prefix) else {
                let (at, id) = (at(), map.id.clone());
                self.issue(
                    rule,
                    IssueCode::CodeInvalid,
                    at,
                    format!("prefix '{prefix}' has no translation in concept map {id}"),
                );
                return None;
            };
            let same_group = |(first, entry_of_group, _): &&mut Group| {
                same_identity(
                    &group.group_rules,
                    (&map.entries[*entry_of_group].label, &rows[*first]),
                    (prefix, row),
                )
            };
            match groups.iter_mut().find(same_group) {
                Some((_, _, members)) => members.push((index, number)),
                None => groups.push((index, entry, vec![(index, number)])),
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (position, (_, entry, members)) in groups.iter().enumerate() {
            let element_path = target_base.child(Piece::Index(position));
            let mut element = Output::empty_object();
            let coding = map.kanta_value_at(*entry);
            element.set(&group.kanta_key.segments, Output::Fixed(coding));
            let mut items = Vec::with_capacity(members.len());
            for (item_index, (row_index, number)) in members.iter().enumerate() {
                let mut item = Output::empty_object();
                item.set(
                    &group.kanta_number.segments,
                    Output::Owned(Value::from(*number)),
                );
                let items_path = element_path.child(Piece::Pointer(&group.items.text));
                self.rules(
                    &group.item_rules,
                    &rows[*row_index],
                    &mut item,
                    &source_base.child(Piece::Index(*row_index)),
                    &items_path.child(Piece::Index(item_index)),
                );
                items.push(item);
            }
            element.set(&group.items.segments, Output::Array(items));
            let first = members[0].0;
            self.rules(
                &group.group_rules,
                &rows[first],
                &mut element,
                &source_base.child(Piece::Index(first)),
                &element_path,
            );
            out.push(element);
        }
        Some(out)
    }

    fn group_backward(
        &mut self,
        rule: &Rule,
        group: &'a GroupPlan,
        elements: &'a [Value],
        source_base: &Path<'_>,
        target_base: &Path<'_>,
    ) -> Option<Vec<Output<'a>>> {
        let map = &self.set.concepts[group.concept];
        let mut rows = Vec::new();
        for (position, element) in elements.iter().enumerate() {
            let element_path = source_base.child(Piece::Index(position));
            let coding = group.kanta_key.get(element).unwrap_or(&Value::Null);
            let entry = match map.entry_for_kanta(coding) {
                Ok(entry) => entry,
                Err(_) => {
                    let (at, id) = (element_path.with(&group.kanta_key), map.id.clone());
                    self.issue(
                        rule,
                        IssueCode::CodeInvalid,
                        at,
                        format!("the code is not in concept map {id}"),
                    );
                    return None;
                }
            };
            let width = entry.number_width.unwrap_or(1);
            let prefix = entry.label.clone();
            let items = group
                .items
                .get(element)
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for (item_index, item) in items.iter().enumerate() {
                let row_path = target_base.child(Piece::Index(rows.len()));
                self.row_number = rows.len() + 1;
                let mut row = Output::empty_object();
                self.rules(
                    &group.group_rules,
                    element,
                    &mut row,
                    &element_path,
                    &row_path,
                );
                let Some(number) = group.kanta_number.get(item).and_then(Value::as_u64) else {
                    let items_path = element_path.child(Piece::Pointer(&group.items.text));
                    let at = items_path
                        .child(Piece::Index(item_index))
                        .with(&group.kanta_number);
                    self.issue(rule, IssueCode::Value, at, "the item has no number".into());
                    return None;
                };
                row.set(
                    &group.key.segments,
                    Output::Owned(Value::String(format!("{prefix}{number:0width$}"))),
                );
                let items_path = element_path.child(Piece::Pointer(&group.items.text));
                self.rules(
                    &group.item_rules,
                    item,
                    &mut row,
                    &items_path.child(Piece::Index(item_index)),
                    &row_path,
                );
                rows.push(row);
            }
        }
        Some(rows)
    }
}

/// Rows that form one group: (first row index, concept entry index, (row index, item
/// number)s).
type Group = (usize, usize, Vec<(usize, u64)>);

/// Do two rows, given with their key prefixes, have the same identity: the prefix, then
/// `U+001F` and the JSON text of each shared field the row has? Compared without building
/// the texts (an allocation and a serialization per row); only a prefix holding `U+001F`
/// could make two different pieces join into the same text, and then the texts are built.
fn same_identity(
    shared: &Rules,
    (prefix_a, a): (&str, &Value),
    (prefix_b, b): (&str, &Value),
) -> bool {
    if prefix_a.contains('\u{1f}') || prefix_b.contains('\u{1f}') {
        return identity_text(shared, prefix_a, a) == identity_text(shared, prefix_b, b);
    }
    if prefix_a != prefix_b {
        return false;
    }
    let (mut values_a, mut values_b) = (present(shared, a), present(shared, b));
    loop {
        match (values_a.next(), values_b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if same_json_text(x, y) => {}
            _ => return false,
        }
    }
}

/// The values of the shared fields a row has, in rule order.
fn present<'v>(shared: &'v Rules, row: &'v Value) -> impl Iterator<Item = &'v Value> + 'v {
    shared
        .iter()
        .filter_map(move |rule| rule.apotti.as_ref().and_then(|p| p.get(row)))
}

/// The identity of a row as text (see [`same_identity`]).
fn identity_text(shared: &Rules, prefix: &str, row: &Value) -> String {
    let mut identity = prefix.to_owned();
    for value in present(shared, row) {
        identity.push('\u{1f}');
        identity.push_str(&value.to_string());
    }
    identity
}

/// Do two values serialize to the same JSON text? (Not `==`: `0.0` and `-0.0` are equal
/// numbers with different texts.) Strings, the usual case, without serializing.
fn same_json_text(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        _ => {
            // As texts on purpose: comparing the values would take 0.0 for -0.0.
            let (text_a, text_b) = (a.to_string(), b.to_string());
            text_a == text_b
        }
    }
}

/// `EUROHIS_Q3` → (`EUROHIS_Q`, 3); `3X10D_07` → (`3X10D_`, 7): the trailing digits are the
/// number, the rest the prefix.
#[must_use]
pub fn split_prefix_number(key: &str) -> Option<(&str, u64)> {
    let digits = key.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits == key.len() {
        return None;
    }
    let (prefix, number) = key.split_at(key.len() - digits);
    number.parse().ok().map(|n| (prefix, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_rules(pointers: &[&str]) -> Rules {
        use super::super::plan::SourceLocation;
        let rule = |pointer: &str| Rule {
            id: pointer.to_owned(),
            location: SourceLocation {
                file: "test.toml".into(),
                line: 1,
            },
            apotti: Some(Ptr::parse(pointer).expect("pointer")),
            kanta: None,
            forward: Source::Nothing,
            reverse: Source::Nothing,
            default: None,
            lossy: None,
            when: None,
            shape: Shape::Field,
        };
        Rules::new(pointers.iter().map(|p| rule(p)).collect())
    }

    #[test]
    fn rows_group_as_their_identity_texts_do() {
        let shared = shared_rules(&["/T", "/U"]);
        let rows = [
            serde_json::json!({"T": "2026-01-01 10:00:00"}),
            serde_json::json!({"T": "2026-01-01 10:00:00", "X": 1}),
            serde_json::json!({"T": "2026-01-01 11:00:00"}),
            serde_json::json!({"U": "2026-01-01 10:00:00"}),
            serde_json::json!({"T": "a", "U": "b"}),
            serde_json::json!({"T": "b", "U": "a"}),
            serde_json::json!({}),
            serde_json::json!({"T": 0.0}),
            serde_json::json!({"T": -0.0}),
            serde_json::json!({"T": 1}),
            serde_json::json!({"T": "1"}),
            serde_json::json!({"T": null}),
            serde_json::json!({"T": "\u{1f}\"x\""}),
        ];
        let prefixes = ["P", "Q", "P\u{1f}\"a\"", "P\u{1f}"];
        for (prefix_a, a) in prefixes
            .iter()
            .flat_map(|p| rows.iter().map(move |r| (*p, r)))
        {
            for (prefix_b, b) in prefixes
                .iter()
                .flat_map(|p| rows.iter().map(move |r| (*p, r)))
            {
                assert_eq!(
                    same_identity(&shared, (prefix_a, a), (prefix_b, b)),
                    identity_text(&shared, prefix_a, a) == identity_text(&shared, prefix_b, b),
                    "{prefix_a:?} {a} / {prefix_b:?} {b}"
                );
            }
        }
    }

    #[test]
    fn keys_split_into_prefix_and_number() {
        assert_eq!(split_prefix_number("EUROHIS_Q3"), Some(("EUROHIS_Q", 3)));
        assert_eq!(split_prefix_number("3X10D_07"), Some(("3X10D_", 7)));
        assert_eq!(split_prefix_number("3X10D_10"), Some(("3X10D_", 10)));
        assert_eq!(split_prefix_number("EUROHIS_Q"), None);
        assert_eq!(split_prefix_number("123"), None);
    }
}
