//! The fields a mapping writes, in one direction, from values known when it loads: constants,
//! and concept-map translations (a short list of codings forward, of labels backward).
//!
//! Why: the target profile's validator is specialised to these fields
//! ([`crate::profiles::specialise`]), so a document's fixed parts are validated once, at load,
//! instead of for every record. A field counts only when one rule alone writes it: a field that
//! another rule writes too, or writes above or below it (`validity = {}` and then
//! `validity/start`), or that lies in a part built as a whole (a group, a single-item array) is
//! left to the full check.

use serde_json::Value;

use super::concepts::ConceptMap;
use super::engine::Direction;
use super::plan::{Convert, MappingPlan, Rule, Shape, Source};
use crate::profiles::specialise::{KnownField, Step};

/// What `plan` writes from values known at load when run in `direction`.
#[must_use]
pub fn known_fields(
    plan: &MappingPlan,
    concepts: &[ConceptMap],
    direction: Direction,
) -> Vec<KnownField> {
    let forward = matches!(direction, Direction::Forward);
    let mut writes = Vec::new();
    collect(&plan.rules, concepts, forward, &[], &mut writes);
    writes
        .iter()
        .enumerate()
        .filter_map(|(index, write)| {
            let values = write.values.as_ref()?;
            let alone = writes.iter().enumerate().all(|(other, them)| {
                other == index
                    || !(is_within(&them.path, &write.path) || is_within(&write.path, &them.path))
            });
            alone.then(|| KnownField {
                path: write.path.clone(),
                values: values.clone(),
            })
        })
        .collect()
}

/// One place a rule writes, with its values when they are known at load.
#[derive(Debug)]
struct Write {
    path: Vec<Step>,
    values: Option<Vec<Value>>,
}

fn collect(
    rules: &[Rule],
    concepts: &[ConceptMap],
    forward: bool,
    base: &[Step],
    out: &mut Vec<Write>,
) {
    for rule in rules {
        let target = if forward { &rule.kanta } else { &rule.apotti };
        let Some(target) = target else { continue };
        let source = if forward {
            &rule.forward
        } else {
            &rule.reverse
        };
        let mut path = base.to_vec();
        path.extend(target.segments.iter().cloned().map(Step::Name));
        match &rule.shape {
            Shape::Field => {
                if !matches!(source, Source::Nothing) {
                    let values = values_of(source, concepts, forward);
                    out.push(Write { path, values });
                }
            }
            Shape::Each(nested) => {
                path.push(Step::AnyItem);
                collect(nested, concepts, forward, &path, out);
            }
            Shape::Single(_) | Shape::Group(_) => out.push(Write { path, values: None }),
        }
    }
}

/// Every value `source` can produce, when that is a list known at load.
fn values_of(source: &Source, concepts: &[ConceptMap], forward: bool) -> Option<Vec<Value>> {
    match source {
        Source::Constant(fixed) => Some(vec![fixed.value().clone()]),
        Source::Peer(Convert::Concept(index)) | Source::Other(_, Convert::Concept(index)) => {
            let map = concepts.get(*index)?;
            Some(if forward {
                (0..map.entries.len())
                    .map(|entry| map.kanta_value_at(entry).value().clone())
                    .collect()
            } else {
                map.entries
                    .iter()
                    .map(|entry| Value::String(entry.label.clone()))
                    .collect()
            })
        }
        Source::DisplayOf(_, index) => Some(
            concepts
                .get(*index)?
                .entries
                .iter()
                .map(|entry| {
                    Value::String(entry.display.clone().unwrap_or_else(|| entry.label.clone()))
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Is `inner` at or below `outer`? An array item may be named by its index, so "any item"
/// meets every name.
fn is_within(inner: &[Step], outer: &[Step]) -> bool {
    outer.len() <= inner.len()
        && outer
            .iter()
            .zip(inner)
            .all(|(a, b)| a == b || matches!(a, Step::AnyItem) || matches!(b, Step::AnyItem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{MappingSet, MappingSource};
    use crate::profiles::{ProfileRegistry, ProfileSource};

    fn name(path: &[&str]) -> Vec<Step> {
        path.iter()
            .map(|step| match *step {
                "*" => Step::AnyItem,
                name => Step::Name(name.to_owned()),
            })
            .collect()
    }

    fn decision_forward() -> Vec<KnownField> {
        let profiles = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
        let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("mappings");
        let plan = set
            .plans
            .iter()
            .find(|plan| plan.header.id == "decision")
            .expect("decision");
        known_fields(plan, &set.concepts, Direction::Forward)
    }

    #[test]
    fn constants_and_translations_are_known_where_one_rule_writes_alone() {
        let known = decision_forward();
        let paths: Vec<&Vec<Step>> = known.iter().map(|field| &field.path).collect();
        for path in [
            &["header", "registerType"][..],
            &["header", "title"],
            &["header", "status"],
            &["header", "client", "municipality"],
            &["body", "decision", "result"],
            &["body", "decision", "serviceForms", "*"],
        ] {
            assert!(paths.contains(&&name(path)), "{path:?} should be known");
        }
        // Written from the record, from the context, or merged with another rule's fields.
        for path in [
            &["header", "client", "hetu"][..],
            &["header", "language"],
            &["body", "decision", "validity"],
        ] {
            assert!(
                !paths.contains(&&name(path)),
                "{path:?} should not be known"
            );
        }
        let register = known
            .iter()
            .find(|field| field.path == name(&["header", "registerType"]))
            .expect("registerType");
        assert_eq!(register.values.len(), 1);
        assert_eq!(
            register.values[0]["system"],
            "urn:oid:1.2.246.537.6.1264.201701"
        );
    }

    #[test]
    fn an_item_index_meets_any_item() {
        assert!(is_within(&name(&["a", "0", "b"]), &name(&["a", "*"])));
        assert!(is_within(&name(&["a", "*", "b"]), &name(&["a", "0"])));
        assert!(!is_within(&name(&["a", "b"]), &name(&["a", "c"])));
        assert!(!is_within(&name(&["a"]), &name(&["a", "b"])));
    }
}
