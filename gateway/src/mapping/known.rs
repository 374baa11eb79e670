//! The fields a mapping writes, in one direction, from values known when it loads: constants,
//! and concept-map translations (a short list of codings forward, of labels backward); and the
//! fields it copies unchanged from one field of the (already validated) source record.
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
use super::plan::{Convert, MappingPlan, Ptr, Rule, Shape, Source};
use crate::profiles::specialise::{Known, KnownField, Step};

/// What `plan` writes from values known at load when run in `direction`.
#[must_use]
pub fn known_fields(
    plan: &MappingPlan,
    concepts: &[ConceptMap],
    direction: Direction,
) -> Vec<KnownField> {
    let forward = matches!(direction, Direction::Forward);
    let mut writes = Vec::new();
    collect(&plan.rules, concepts, forward, &[], &[], &mut writes);
    writes
        .iter()
        .enumerate()
        .filter_map(|(index, write)| {
            let known = write.known.as_ref()?;
            let alone = writes.iter().enumerate().all(|(other, them)| {
                other == index
                    || !(is_within(&them.path, &write.path) || is_within(&write.path, &them.path))
            });
            alone.then(|| KnownField {
                path: write.path.clone(),
                known: known.clone(),
            })
        })
        .collect()
}

/// One place a rule writes, with what is known of its values at load.
#[derive(Debug)]
struct Write {
    path: Vec<Step>,
    known: Option<Known>,
}

/// Collects what `rules` write; `base` is where their target pointers start (an array's
/// items, in nested rules), `source_base` the same on the side they read.
fn collect(
    rules: &[Rule],
    concepts: &[ConceptMap],
    forward: bool,
    base: &[Step],
    source_base: &[Step],
    out: &mut Vec<Write>,
) {
    for rule in rules {
        let (target, read) = if forward {
            (&rule.kanta, &rule.apotti)
        } else {
            (&rule.apotti, &rule.kanta)
        };
        let Some(target) = target else { continue };
        let source = if forward {
            &rule.forward
        } else {
            &rule.reverse
        };
        let path = below(base, &target.segments);
        match &rule.shape {
            Shape::Field => {
                if !matches!(source, Source::Nothing) {
                    let known = values_of(source, concepts, forward)
                        .map(Known::Values)
                        .or_else(|| {
                            copied_from(rule, source, read.as_ref(), base, source_base)
                                .map(Known::CopiedFrom)
                        });
                    out.push(Write { path, known });
                }
            }
            Shape::Each(nested) => match read {
                Some(read) => {
                    let mut items = path;
                    items.push(Step::AnyItem);
                    let mut source_items = below(source_base, &read.segments);
                    source_items.push(Step::AnyItem);
                    collect(nested, concepts, forward, &items, &source_items, out);
                }
                None => out.push(Write { path, known: None }),
            },
            Shape::Single(_) | Shape::Group(_) => out.push(Write { path, known: None }),
        }
    }
}

fn below(base: &[Step], segments: &[String]) -> Vec<Step> {
    let mut path = base.to_vec();
    path.extend(segments.iter().cloned().map(Step::Name));
    path
}

/// The source field a rule copies unchanged, with no default standing in for it. A copy from
/// another field (`forward = { apotti = ... }`) counts only outside nested rules, where its
/// pointer is the record's own.
fn copied_from(
    rule: &Rule,
    source: &Source,
    read: Option<&Ptr>,
    base: &[Step],
    source_base: &[Step],
) -> Option<Vec<Step>> {
    if rule.default.is_some() {
        return None;
    }
    match source {
        Source::Peer(Convert::Copy) => Some(below(source_base, &read?.segments)),
        Source::Other(other, Convert::Copy) if base.is_empty() && source_base.is_empty() => {
            Some(below(&[], &other.segments))
        }
        _ => None,
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
        // Written from the context, or merged with another rule's fields.
        for path in [
            &["header", "documentOid"][..],
            &["header", "language"],
            &["body", "decision", "validity"],
        ] {
            assert!(
                !paths.contains(&&name(path)),
                "{path:?} should not be known"
            );
        }
        let known_at = |path: &[&str]| {
            known
                .iter()
                .find(|field| field.path == name(path))
                .map(|field| field.known.clone())
        };
        let Some(Known::Values(register)) = known_at(&["header", "registerType"]) else {
            panic!("registerType is a constant");
        };
        assert_eq!(register.len(), 1);
        assert_eq!(register[0]["system"], "urn:oid:1.2.246.537.6.1264.201701");
        assert_eq!(
            known_at(&["header", "client", "hetu"]),
            Some(Known::CopiedFrom(name(&["PATIENT", "SSN"])))
        );
        assert_eq!(
            known_at(&["header", "author", "id"]),
            Some(Known::CopiedFrom(name(&["DECISION", "DECIDER_ID"])))
        );
        // Transformed on the way (a time made ISO 8601), or with a default standing in.
        assert_eq!(known_at(&["header", "createdAt"]), None);
        assert_eq!(known_at(&["header", "client", "nonDisclosure"]), None);
    }

    #[test]
    fn an_item_index_meets_any_item() {
        assert!(is_within(&name(&["a", "0", "b"]), &name(&["a", "*"])));
        assert!(is_within(&name(&["a", "*", "b"]), &name(&["a", "0"])));
        assert!(!is_within(&name(&["a", "b"]), &name(&["a", "c"])));
        assert!(!is_within(&name(&["a"]), &name(&["a", "b"])));
    }
}
