//! `x-sosku-rules`: cross-field rules declared in the profile files.
//!
//! JSON Schema cannot compare two fields (`VALID_TO_DATE >= VALID_FROM_DATE`), so the profiles
//! declare such rules as data under this keyword and this module evaluates them. It knows a few
//! operand forms and operators (see `profiles/README.md`) and nothing about record types: adding
//! a rule is an edit to a profile, not to Rust.
//!
//! A failing rule becomes a custom-keyword error whose message carries the rule id and the
//! pointer of the left operand, separated by [`FIELD_SEPARATOR`]; `profiles::issues` unpacks it
//! into an [`crate::outcome::Issue`] that points at the offending field.

use std::borrow::Cow;

use jsonschema::json::{Array as _, Json, JsonNumber as _, Node as _, Object as _};
use jsonschema::{Keyword, ValidationError, paths::Location};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::identifiers::is_oid_under;

/// The keyword's name in the profiles.
pub const KEYWORD: &str = "x-sosku-rules";

/// Separates rule id, pointer and message in an error raised by this keyword.
pub const FIELD_SEPARATOR: char = '\u{1f}';

/// A JSON Pointer split once at load, so that evaluating it allocates nothing; it finds what
/// `Value::pointer` finds. Profile selectors use it; the rules use [`Prepared`], which reads
/// any representation.
#[derive(Debug, Clone)]
pub(crate) struct Segments(Vec<String>);

impl Segments {
    pub(crate) fn parse(pointer: &str) -> Self {
        Self(
            pointer
                .split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
        )
    }

    pub(crate) fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.0
            .iter()
            .try_fold(value, |current, segment| match current {
                Value::Object(map) => map.get(segment.as_str()),
                Value::Array(items) => items.get(array_index(segment)?),
                _ => None,
            })
    }
}

/// An array index as `Value::pointer` reads it: decimal digits, no sign, no leading zero.
fn array_index(segment: &str) -> Option<usize> {
    if segment.starts_with('+') || (segment.starts_with('0') && segment.len() != 1) {
        return None;
    }
    segment.parse().ok()
}

/// One rule as written in a profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    rule: String,
    left: OperandSpec,
    op: Op,
    right: OperandSpec,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum OperandSpec {
    Pointer(String),
    Part {
        pointer: String,
        part: Part,
    },
    Add {
        pointer: String,
        add: f64,
    },
    Mean {
        mean: String,
        of: String,
        decimals: u8,
    },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Part {
    /// The first ten characters of a date-time: its date.
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Op {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "under-oid")]
    UnderOid,
}

/// An operand resolved against a record.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(f64),
}

/// A JSON Pointer with its segments prepared for look-ups in the representation `F` (each
/// segment as a member name, and as an array index where it reads as one).
struct Prepared<F: Json> {
    segments: Vec<(F::PreparedKey, Option<usize>)>,
}

impl<F: Json> std::fmt::Debug for Prepared<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl<F: Json> Prepared<F> {
    fn parse(pointer: &str) -> Self {
        let Segments(segments) = Segments::parse(pointer);
        Self {
            segments: segments
                .iter()
                .map(|segment| (F::prepare_key(segment), array_index(segment)))
                .collect(),
        }
    }

    /// What [`Segments::get`] finds, in any representation.
    fn get<'i>(&self, node: &F::Node<'i>) -> Option<F::Node<'i>> {
        let mut current = node.clone();
        for (key, index) in &self.segments {
            current = if let Some(object) = current.as_object() {
                object.get(key)?
            } else if let Some(items) = current.as_array() {
                items.elements().nth((*index)?)?
            } else {
                return None;
            };
        }
        Some(current)
    }
}

fn number<'i, F: Json>(node: &F::Node<'i>) -> Option<f64> {
    node.as_number().and_then(|number| number.as_f64())
}

/// Rounds half away from zero to `decimals` places (3.125 → 3.13), as the EUROHIS-QOL-8 score.
#[must_use]
pub fn round_half_away(value: f64, decimals: u8) -> f64 {
    let scale = 10f64.powi(i32::from(decimals));
    (value * scale).round() / scale
}

/// An operand compiled: pointers split and prepared.
#[derive(Debug)]
enum Operand<F: Json> {
    Pointer(Prepared<F>),
    Date(Prepared<F>),
    Add(Prepared<F>, f64),
    Mean(Prepared<F>, Prepared<F>, u8),
}

impl<F: Json> Operand<F> {
    fn compile(spec: &OperandSpec) -> Self {
        match spec {
            OperandSpec::Pointer(pointer) => Self::Pointer(Prepared::parse(pointer)),
            OperandSpec::Part {
                pointer,
                part: Part::Date,
            } => Self::Date(Prepared::parse(pointer)),
            OperandSpec::Add { pointer, add } => Self::Add(Prepared::parse(pointer), *add),
            OperandSpec::Mean { mean, of, decimals } => {
                Self::Mean(Prepared::parse(mean), Prepared::parse(of), *decimals)
            }
        }
    }

    fn resolve<'i>(&self, object: &F::Node<'i>) -> Option<Scalar<'i>> {
        match self {
            Self::Pointer(pointer) => scalar::<F>(&pointer.get(object)?),
            Self::Date(pointer) => match pointer.get(object)?.as_string()? {
                Cow::Borrowed(text) => text.get(..10).map(|date| Scalar::Str(Cow::Borrowed(date))),
                Cow::Owned(text) => text
                    .get(..10)
                    .map(|date| Scalar::Str(Cow::Owned(date.to_owned()))),
            },
            Self::Add(pointer, add) => {
                let number = number::<F>(&pointer.get(object)?)?;
                Some(Scalar::Num(number + add))
            }
            Self::Mean(mean, of, decimals) => {
                let items = mean.get(object)?.as_array()?;
                if items.len() == 0 {
                    return None;
                }
                let mut sum = 0.0;
                for item in items.elements() {
                    sum += number::<F>(&of.get(&item)?)?;
                }
                #[expect(clippy::cast_precision_loss, reason = "arrays are a few items long")]
                let mean = sum / items.len() as f64;
                Some(Scalar::Num(round_half_away(mean, *decimals)))
            }
        }
    }
}

impl OperandSpec {
    fn pointer(&self) -> &str {
        match self {
            Self::Pointer(pointer) | Self::Part { pointer, .. } | Self::Add { pointer, .. } => {
                pointer
            }
            Self::Mean { mean, .. } => mean,
        }
    }
}

fn scalar<'i, F: Json>(node: &F::Node<'i>) -> Option<Scalar<'i>> {
    match (node.as_string(), node.as_number()) {
        (Some(text), _) => Some(Scalar::Str(text)),
        (None, Some(number)) => number.as_f64().map(Scalar::Num),
        _ => None,
    }
}

/// A rule ready to evaluate.
#[derive(Debug)]
struct CompiledRule<F: Json> {
    spec: RuleSpec,
    left: Operand<F>,
    right: Operand<F>,
}

impl<F: Json> CompiledRule<F> {
    fn compile(spec: RuleSpec) -> Self {
        Self {
            left: Operand::compile(&spec.left),
            right: Operand::compile(&spec.right),
            spec,
        }
    }

    fn error(&self) -> ValidationError<'static> {
        self.spec.error()
    }

    /// `None` when the rule does not apply (an operand is absent or of another type).
    fn holds(&self, object: &F::Node<'_>) -> Option<bool> {
        let left = self.left.resolve(object)?;
        let right = self.right.resolve(object)?;
        let ordering = match (left, right) {
            (Scalar::Str(a), Scalar::Str(b)) => {
                if self.spec.op == Op::UnderOid {
                    return Some(is_oid_under(&a, &b));
                }
                a.cmp(&b)
            }
            (Scalar::Num(a), Scalar::Num(b)) if self.spec.op != Op::UnderOid => {
                a.partial_cmp(&b)?
            }
            _ => return None,
        };
        Some(match self.spec.op {
            Op::Eq => ordering.is_eq(),
            Op::Ne => ordering.is_ne(),
            Op::Lt => ordering.is_lt(),
            Op::Le => ordering.is_le(),
            Op::Gt => ordering.is_gt(),
            Op::Ge => ordering.is_ge(),
            Op::UnderOid => false,
        })
    }
}

impl RuleSpec {
    fn error(&self) -> ValidationError<'static> {
        ValidationError::custom(format!(
            "{}{FIELD_SEPARATOR}{}{FIELD_SEPARATOR}{}",
            self.rule,
            self.left.pointer(),
            self.message
        ))
    }
}

/// The compiled keyword: the rules of one `x-sosku-rules` array, for the representation `F`
/// (the profiles validate `serde_json` values and the documents the engine builds).
struct CrossFieldRules<F: Json> {
    rules: Vec<CompiledRule<F>>,
}

impl<'i, F: Json> Keyword<'i, F> for CrossFieldRules<F> {
    fn validate(&self, instance: F::Node<'i>) -> Result<(), ValidationError<'i>> {
        match self
            .rules
            .iter()
            .find(|rule| rule.holds(&instance) == Some(false))
        {
            Some(rule) => Err(rule.error()),
            None => Ok(()),
        }
    }

    fn is_valid(&self, instance: F::Node<'i>) -> bool {
        self.rules
            .iter()
            .all(|rule| rule.holds(&instance) != Some(false))
    }

    fn iter_errors(
        &self,
        instance: F::Node<'i>,
    ) -> Box<dyn Iterator<Item = ValidationError<'i>> + 'i> {
        let errors: Vec<_> = self
            .rules
            .iter()
            .filter(|rule| rule.holds(&instance) == Some(false))
            .map(CompiledRule::error)
            .collect();
        Box::new(errors.into_iter())
    }
}

/// The factory registered with the validator for [`KEYWORD`]; a malformed rule list is a
/// schema error that stops the profile from loading.
///
/// # Errors
/// When the keyword's value is not a list of well-formed rules.
pub fn factory<'a, F: Json>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _path: Location,
) -> Result<Box<dyn for<'i> Keyword<'i, F>>, ValidationError<'a>> {
    let rules: Vec<RuleSpec> = serde_json::from_value(value.clone())
        .map_err(|error| ValidationError::schema(format!("{KEYWORD}: {error}")))?;
    Ok(Box::new(CrossFieldRules::<F> {
        rules: rules.into_iter().map(CompiledRule::compile).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonschema::json::SerdeJson;
    use serde_json::json;

    fn rules(value: Value) -> CrossFieldRules<SerdeJson> {
        let specs: Vec<RuleSpec> = serde_json::from_value(value).expect("well-formed rules");
        CrossFieldRules {
            rules: specs.into_iter().map(CompiledRule::compile).collect(),
        }
    }

    #[test]
    fn compares_dates_and_skips_absent_operands() {
        let keyword = rules(json!([{
            "rule": "validity-order", "left": "/to", "op": ">=", "right": "/from",
            "message": "to before from"
        }]));
        assert!(keyword.is_valid(&json!({"from": "2026-01-01", "to": "2026-01-01"})));
        assert!(!keyword.is_valid(&json!({"from": "2026-01-02", "to": "2026-01-01"})));
        assert!(keyword.is_valid(&json!({"from": "2026-01-02"})));
    }

    #[test]
    fn date_part_and_offsets() {
        let keyword = rules(json!([
            {"rule": "same-day", "left": "/date", "op": "==",
             "right": {"pointer": "/time", "part": "date"}, "message": "m"},
            {"rule": "predecessor", "left": "/replaces/version", "op": "==",
             "right": {"pointer": "/version", "add": -1}, "message": "m"}
        ]));
        let good = json!({"date": "2026-03-29", "time": "2026-03-29 03:30:00",
                          "version": 3, "replaces": {"version": 2}});
        assert!(keyword.is_valid(&good));
        let bad = json!({"date": "2026-03-28", "time": "2026-03-29 03:30:00",
                         "version": 3, "replaces": {"version": 1}});
        let messages: Vec<String> = keyword.iter_errors(&bad).map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
    }

    #[test]
    fn mean_rounds_half_away_from_zero() {
        assert!((round_half_away(3.125, 2) - 3.13).abs() < f64::EPSILON);
        assert!((round_half_away(2.0 / 3.0, 2) - 0.67).abs() < f64::EPSILON);
        let keyword = rules(json!([{"rule": "score", "left": "/score", "op": "==",
            "right": {"mean": "/items", "of": "/value", "decimals": 2}, "message": "m"}]));
        let items: Vec<Value> = [4, 3, 3, 3, 3, 3, 3, 3]
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"item": i + 1, "value": v}))
            .collect();
        assert!(keyword.is_valid(&json!({"items": items, "score": 3.13})));
        assert!(!keyword.is_valid(&json!({"items": items, "score": 3.12})));
    }

    #[test]
    fn oid_arcs() {
        let keyword = rules(json!([{"rule": "arc", "left": "/doc", "op": "under-oid",
            "right": "/root", "message": "m"}]));
        assert!(keyword.is_valid(&json!({"doc": "1.2.3.4", "root": "1.2.3"})));
        assert!(!keyword.is_valid(&json!({"doc": "1.2.34", "root": "1.2.3"})));
    }

    #[test]
    fn malformed_rules_are_schema_errors() {
        let parent = Map::new();
        let bad = json!([{"rule": "x", "left": "/a", "op": "~", "right": "/b", "message": "m"}]);
        assert!(factory::<SerdeJson>(&parent, &bad, Location::new()).is_err());
    }
}
