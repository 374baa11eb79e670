//! The static checker: a mapping is compared with the two profiles it connects before it runs.
//!
//! Run at load (a failing mapping stops start-up) and by `gateway mappings check`. It checks
//! that every pointer exists in its profile, that the types on both sides fit the rule's
//! conversion, that every required field of each target profile is produced, that every
//! enumerated source label has a translation, and that every code a rule can meet on the way
//! back has exactly one label (unless the rule declares its loss). Each finding names the
//! file, the line and the rule.

use std::collections::BTreeSet;

use serde_json::Value;

use super::MappingSet;
use super::plan::{Convert, MappingError, MappingPlan, Ptr, Rule, Shape, Source, SourceLocation};
use super::transforms::JsonType;
use crate::profiles::issues::{percent_decode, resolve_reference};
use crate::profiles::{ID_BASE, ProfileRegistry};

/// A schema node and the URI of the document it stands in (for resolving `$ref`s).
#[derive(Clone)]
struct Node<'a> {
    base: String,
    value: &'a Value,
}

/// Every finding for every plan in the set.
#[must_use]
pub fn check_all(set: &MappingSet, profiles: &ProfileRegistry) -> Vec<MappingError> {
    let mut errors = Vec::new();
    for plan in &set.plans {
        check_plan(set, profiles, plan, &mut errors);
    }
    errors
}

struct Checker<'a> {
    set: &'a MappingSet,
    schemas: Schemas<'a>,
    errors: &'a mut Vec<MappingError>,
}

fn check_plan(
    set: &MappingSet,
    profiles: &ProfileRegistry,
    plan: &MappingPlan,
    errors: &mut Vec<MappingError>,
) {
    let header_error = |message: String| MappingError {
        location: SourceLocation {
            file: plan.file.clone(),
            line: 1,
        },
        rule: "-".into(),
        message,
    };
    let mut roots = Vec::new();
    for id in [
        &plan.header.apotti,
        &plan.header.apotti_import,
        &plan.header.kanta,
    ] {
        let uri = format!("{ID_BASE}{id}.schema.json");
        match profiles.document(&uri) {
            Some(value) => roots.push(Node { base: uri, value }),
            None => errors.push(header_error(format!("profile '{id}' does not exist"))),
        }
    }
    let [apotti, apotti_import, kanta] = roots.as_slice() else {
        return;
    };
    let mut checker = Checker {
        set,
        schemas: Schemas { profiles },
        errors,
    };
    checker.rules(
        &plan.rules,
        std::slice::from_ref(apotti),
        std::slice::from_ref(kanta),
    );
    // Every required field of each target is produced.
    let forward_written = written(&plan.rules, true);
    for path in checker.schemas.required_paths(std::slice::from_ref(kanta)) {
        if !covers(&forward_written, &path) {
            checker.errors.push(header_error(format!(
                "required field {path} of {} is produced by no rule",
                plan.header.kanta
            )));
        }
    }
    let backward_written = written(&plan.rules, false);
    for path in checker
        .schemas
        .required_paths(std::slice::from_ref(apotti_import))
    {
        if !covers(&backward_written, &path) {
            checker.errors.push(header_error(format!(
                "required field {path} of {} is produced by no rule on the way back",
                plan.header.apotti_import
            )));
        }
    }
}

/// Pointers written by the top-level rules in one direction.
fn written(rules: &[Rule], forward: bool) -> Vec<String> {
    rules
        .iter()
        .filter_map(|rule| {
            let (target, source) = if forward {
                (&rule.kanta, &rule.forward)
            } else {
                (&rule.apotti, &rule.reverse)
            };
            let runs = !matches!(source, Source::Nothing) || !matches!(rule.shape, Shape::Field);
            target.as_ref().filter(|_| runs).map(|p| p.text.clone())
        })
        .collect()
}

/// A required path is covered when a rule writes it, a parent of it (a constant object), or
/// a child of it (which creates it).
fn covers(written: &[String], path: &str) -> bool {
    written.iter().any(|w| {
        w == path || path.starts_with(&format!("{w}/")) || w.starts_with(&format!("{path}/"))
    })
}

impl<'a> Checker<'a> {
    fn error(&mut self, rule: &Rule, message: String) {
        self.errors.push(MappingError {
            location: rule.location.clone(),
            rule: rule.id.clone(),
            message,
        });
    }

    fn rules(&mut self, rules: &[Rule], apotti: &[Node<'a>], kanta: &[Node<'a>]) {
        for rule in rules {
            self.rule(rule, apotti, kanta);
            self.reachable(rule, apotti, kanta);
        }
        self.shadowing(rules);
    }

    /// A rule whose condition can never hold never runs: a mistake, not a rule.
    fn reachable(&mut self, rule: &Rule, apotti: &[Node<'a>], kanta: &[Node<'a>]) {
        let Some(condition) = &rule.when else { return };
        let scope = if condition.apotti_side { apotti } else { kanta };
        let nodes = self.schemas.at(scope, &condition.ptr);
        if nodes.is_empty() {
            let side = if condition.apotti_side {
                "Apotti"
            } else {
                "Kanta"
            };
            self.error(
                rule,
                format!(
                    "the condition's path {} does not exist on the {side} side",
                    condition.ptr.text
                ),
            );
            return;
        }
        if let Some(values) = self.schemas.enumeration(&nodes)
            && !values.contains(&condition.value)
        {
            let verdict = if condition.negate {
                "always holds"
            } else {
                "can never hold"
            };
            self.error(
                rule,
                format!(
                    "the condition {verdict}: {} is not a value {} can take, so the rule is unreachable or its condition is dead",
                    condition.value, condition.ptr.text
                ),
            );
        }
    }

    /// Two unconditional rules writing the same field in the same direction: the later one
    /// silently overwrites the earlier, which is then unreachable.
    fn shadowing(&mut self, rules: &[Rule]) {
        for forward in [true, false] {
            let mut seen: Vec<(&str, &Rule)> = Vec::new();
            for rule in rules.iter().filter(|r| r.when.is_none()) {
                let (target, source) = if forward {
                    (&rule.kanta, &rule.forward)
                } else {
                    (&rule.apotti, &rule.reverse)
                };
                let Some(target) = target else { continue };
                if matches!(source, Source::Nothing) && matches!(rule.shape, Shape::Field) {
                    continue;
                }
                if let Some((_, earlier)) = seen.iter().find(|(t, _)| *t == target.text) {
                    let message = format!(
                        "writes {} {}, which rule {} at {} already writes: that rule is unreachable",
                        target.text,
                        if forward { "forward" } else { "backward" },
                        earlier.id,
                        earlier.location
                    );
                    self.error(rule, message);
                } else {
                    seen.push((&target.text, rule));
                }
            }
        }
    }

    fn rule(&mut self, rule: &Rule, apotti: &[Node<'a>], kanta: &[Node<'a>]) {
        let apotti_nodes = rule.apotti.as_ref().map(|p| self.schemas.at(apotti, p));
        let kanta_nodes = rule.kanta.as_ref().map(|p| self.schemas.at(kanta, p));
        if let (Some(ptr), Some(nodes)) = (&rule.apotti, &apotti_nodes)
            && nodes.is_empty()
        {
            self.error(
                rule,
                format!("path {} does not exist on the Apotti side", ptr.text),
            );
            return;
        }
        if let (Some(ptr), Some(nodes)) = (&rule.kanta, &kanta_nodes)
            && nodes.is_empty()
        {
            self.error(
                rule,
                format!("path {} does not exist on the Kanta side", ptr.text),
            );
            return;
        }
        for source in [&rule.forward, &rule.reverse] {
            if let Source::Other(ptr, _) | Source::DisplayOf(ptr, _) = source {
                let forward = std::ptr::eq(source, &rule.forward);
                let scope = if forward { apotti } else { kanta };
                if self.schemas.at(scope, ptr).is_empty() {
                    let side = if forward { "Apotti" } else { "Kanta" };
                    self.error(
                        rule,
                        format!("path {} does not exist on the {side} side", ptr.text),
                    );
                }
            }
        }
        match &rule.shape {
            Shape::Field => {
                if let (Some(a), Some(k), Source::Peer(convert)) =
                    (&apotti_nodes, &kanta_nodes, &rule.forward)
                {
                    self.fits(rule, convert, a, k);
                }
                if let (Some(a), Source::Other(_, convert)) = (&kanta_nodes, &rule.forward)
                    && let Source::Other(ptr, _) = &rule.forward
                {
                    let source = self.schemas.at(apotti, ptr);
                    self.fits(rule, convert, &source, a);
                }
            }
            Shape::Each(nested) | Shape::Single(nested) => {
                let (Some(a), Some(k)) = (&apotti_nodes, &kanta_nodes) else {
                    return;
                };
                let a_items = self.schemas.items(a);
                if a_items.is_empty() {
                    self.error(rule, "the Apotti side is not an array".into());
                    return;
                }
                let k_scope = if matches!(rule.shape, Shape::Single(_)) {
                    k.clone()
                } else {
                    let items = self.schemas.items(k);
                    if items.is_empty() {
                        self.error(rule, "the Kanta side is not an array".into());
                        return;
                    }
                    items
                };
                self.rules(nested, &a_items, &k_scope);
            }
            Shape::Group(group) => {
                let (Some(a), Some(k)) = (&apotti_nodes, &kanta_nodes) else {
                    return;
                };
                let rows = self.schemas.items(a);
                let elements = self.schemas.items(k);
                if rows.is_empty() || elements.is_empty() {
                    self.error(rule, "a group needs arrays on both sides".into());
                    return;
                }
                let items = self.schemas.at(&elements, &group.items);
                let item_nodes = self.schemas.items(&items);
                if item_nodes.is_empty() {
                    self.error(
                        rule,
                        format!("group items {} is not an array", group.items.text),
                    );
                    return;
                }
                self.rules(&group.group_rules, &rows, &elements);
                self.rules(&group.item_rules, &rows, &item_nodes);
            }
        }
    }

    /// Types fit, labels have translations and codes a way back.
    fn fits(&mut self, rule: &Rule, convert: &Convert, apotti: &[Node<'a>], kanta: &[Node<'a>]) {
        let a_types = self.schemas.types(apotti);
        let k_types = self.schemas.types(kanta);
        let check = |have: &BTreeSet<&'static str>, want: JsonType| {
            have.is_empty()
                || have
                    .iter()
                    .any(|t| JsonType::from_name(t).is_some_and(|t| want.fits(t) || t.fits(want)))
        };
        match convert {
            Convert::Copy => {
                if !a_types.is_empty() && !k_types.is_empty() && a_types.is_disjoint(&k_types) {
                    self.error(
                        rule,
                        format!(
                            "types do not fit: the Apotti side is {} and the Kanta side {}",
                            join(&a_types),
                            join(&k_types)
                        ),
                    );
                }
            }
            Convert::Transform(transform) => {
                let (takes, gives) = transform.types();
                if !check(&a_types, takes) || !check(&k_types, gives) {
                    self.error(
                        rule,
                        format!(
                            "transform {} takes {} and gives {}, but the Apotti side is {} and the Kanta side {}",
                            transform.name(),
                            takes.name(),
                            gives.name(),
                            join(&a_types),
                            join(&k_types)
                        ),
                    );
                }
            }
            Convert::Crosswalk(_) => {
                if !check(&k_types, JsonType::String) {
                    self.error(
                        rule,
                        "a crosswalk gives an OID string, but the Kanta side is not a string"
                            .into(),
                    );
                }
            }
            Convert::Concept(index) => {
                let map = &self.set.concepts[*index];
                let want = if map.system.is_some() {
                    JsonType::Object
                } else {
                    JsonType::String
                };
                if !check(&k_types, want) {
                    self.error(
                        rule,
                        format!(
                            "concept map {} gives a{} {}, but the Kanta side is {}",
                            map.id,
                            if want == JsonType::Object { "n" } else { "" },
                            want.name(),
                            join(&k_types)
                        ),
                    );
                }
                if let Some(labels) = self.schemas.enumeration(apotti) {
                    for label in labels.iter().filter_map(Value::as_str) {
                        if !map.has_label(label) {
                            self.error(
                                rule,
                                format!(
                                    "label '{label}' has no translation in concept map {}",
                                    map.id
                                ),
                            );
                        }
                    }
                }
                let code_nodes = if map.system.is_some() {
                    if let Some(system) = self
                        .schemas
                        .constant(&self.schemas.at(kanta, &ptr("/system")))
                        && Some(system.as_str()) != map.system.as_deref()
                    {
                        self.error(
                            rule,
                            format!(
                                "concept map {} codes in {}, but the Kanta side takes {system}",
                                map.id,
                                map.system.as_deref().unwrap_or_default()
                            ),
                        );
                    }
                    self.schemas.at(kanta, &ptr("/code"))
                } else {
                    kanta.to_vec()
                };
                if let Some(codes) = self.schemas.enumeration(&code_nodes) {
                    for code in codes.iter().filter_map(Value::as_str) {
                        if !map.has_code(code) && rule.lossy.is_none() {
                            self.error(
                                rule,
                                format!("code '{code}' of the Kanta side has no way back in concept map {}", map.id),
                            );
                        }
                    }
                }
                if rule.lossy.is_none() && matches!(rule.reverse, Source::Peer(_)) {
                    let ambiguous = map.ambiguous_codes();
                    if !ambiguous.is_empty() {
                        self.error(
                            rule,
                            format!(
                                "concept map {} maps codes {} back to several labels: declare the rule lossy and say where the way back takes the value from",
                                map.id,
                                ambiguous.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Walks the raw profile documents, following `$ref`s and `allOf`s.
#[derive(Clone, Copy)]
struct Schemas<'p> {
    profiles: &'p ProfileRegistry,
}

impl<'p> Schemas<'p> {
    /// The node itself, the targets of its `$ref`s and its `allOf` members, recursively.
    fn expand(&self, node: &Node<'p>, out: &mut Vec<Node<'p>>, depth: usize) {
        if depth > 32 {
            return;
        }
        out.push(node.clone());
        if let Some(reference) = node.value.get("$ref").and_then(Value::as_str) {
            let (uri, fragment) = resolve_reference(&node.base, reference);
            if let Some(document) = self.profiles.document(&uri)
                && let Some(target) = document.pointer(&percent_decode(&fragment))
            {
                self.expand(
                    &Node {
                        base: uri,
                        value: target,
                    },
                    out,
                    depth + 1,
                );
            }
        }
        if let Some(members) = node.value.get("allOf").and_then(Value::as_array) {
            for member in members {
                self.expand(
                    &Node {
                        base: node.base.clone(),
                        value: member,
                    },
                    out,
                    depth + 1,
                );
            }
        }
    }

    fn expanded(&self, nodes: &[Node<'p>]) -> Vec<Node<'p>> {
        let mut out = Vec::new();
        for node in nodes {
            self.expand(node, &mut out, 0);
        }
        out
    }

    /// The subschemas at a pointer below `nodes` (empty: the path does not exist).
    fn at(&self, nodes: &[Node<'p>], pointer: &Ptr) -> Vec<Node<'p>> {
        let mut current: Vec<Node<'p>> = nodes.to_vec();
        for segment in &pointer.segments {
            let mut next = Vec::new();
            for node in self.expanded(&current) {
                if let Some(child) = node.value.get("properties").and_then(|p| p.get(segment)) {
                    next.push(Node {
                        base: node.base.clone(),
                        value: child,
                    });
                }
            }
            if next.is_empty() {
                return next;
            }
            current = next;
        }
        current
    }

    fn items(&self, nodes: &[Node<'p>]) -> Vec<Node<'p>> {
        self.expanded(nodes)
            .into_iter()
            .filter_map(|node| {
                node.value.get("items").map(|items| Node {
                    base: node.base.clone(),
                    value: items,
                })
            })
            .collect()
    }

    fn types(&self, nodes: &[Node<'p>]) -> BTreeSet<&'static str> {
        let mut types = BTreeSet::new();
        for node in self.expanded(nodes) {
            match node.value.get("type") {
                Some(Value::String(name)) => {
                    if let Some(t) = JsonType::from_name(name) {
                        types.insert(t.name());
                    }
                }
                Some(Value::Array(names)) => {
                    for t in names
                        .iter()
                        .filter_map(Value::as_str)
                        .filter_map(JsonType::from_name)
                    {
                        types.insert(t.name());
                    }
                }
                _ => {}
            }
            for value in node
                .value
                .get("enum")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .chain(node.value.get("const"))
            {
                types.insert(match value {
                    Value::String(_) => "string",
                    Value::Bool(_) => "boolean",
                    Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                    Value::Number(_) => "number",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                    Value::Null => continue,
                });
            }
            if node.value.get("properties").is_some() {
                types.insert("object");
            }
        }
        if types.contains("integer") {
            types.insert("number");
        }
        types
    }

    fn enumeration(&self, nodes: &[Node<'p>]) -> Option<Vec<Value>> {
        self.expanded(nodes).into_iter().find_map(|node| {
            node.value
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .or_else(|| node.value.get("const").map(|c| vec![c.clone()]))
        })
    }

    fn constant(&self, nodes: &[Node<'p>]) -> Option<String> {
        self.expanded(nodes).into_iter().find_map(|node| {
            node.value
                .get("const")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }

    /// Required paths below `nodes`, recursing into required objects (not into arrays, and
    /// not into conditional `then` branches).
    fn required_paths(&self, nodes: &[Node<'p>]) -> Vec<String> {
        let mut out = Vec::new();
        self.required_below(nodes, "", &mut out, 0);
        out
    }

    fn required_below(
        &self,
        nodes: &[Node<'p>],
        prefix: &str,
        out: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 8 {
            return;
        }
        let mut names = BTreeSet::new();
        for node in self.expanded(nodes) {
            for name in node
                .value
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = name.as_str() {
                    names.insert(name.to_owned());
                }
            }
        }
        for name in names {
            let path = format!("{prefix}/{name}");
            let child = self.at(nodes, &ptr(&format!("/{name}")));
            let before = out.len();
            if self.types(&child).contains("object") {
                self.required_below(&child, &path, out, depth + 1);
            }
            if out.len() == before {
                out.push(path);
            }
        }
    }
}

fn ptr(text: &str) -> Ptr {
    Ptr {
        text: text.to_owned(),
        segments: text.split('/').skip(1).map(str::to_owned).collect(),
    }
}

fn join(types: &BTreeSet<&'static str>) -> String {
    if types.is_empty() {
        "untyped".to_owned()
    } else {
        types.iter().copied().collect::<Vec<_>>().join(" or ")
    }
}
