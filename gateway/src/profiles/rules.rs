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

use jsonschema::{Keyword, ValidationError, paths::Location};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::identifiers::is_oid_under;

/// The keyword's name in the profiles.
pub const KEYWORD: &str = "x-sosku-rules";

/// Separates rule id, pointer and message in an error raised by this keyword.
pub const FIELD_SEPARATOR: char = '\u{1f}';

/// A JSON Pointer split once at load, so that evaluating it allocates nothing; it finds what
/// `Value::pointer` finds. Profile rules and profile selectors use it.
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
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar<'a> {
    Str(&'a str),
    Num(f64),
}

/// Rounds half away from zero to `decimals` places (3.125 → 3.13), as the EUROHIS-QOL-8 score.
#[must_use]
pub fn round_half_away(value: f64, decimals: u8) -> f64 {
    let scale = 10f64.powi(i32::from(decimals));
    (value * scale).round() / scale
}

/// An operand compiled: pointers split.
#[derive(Debug)]
enum Operand {
    Pointer(Segments),
    Date(Segments),
    Add(Segments, f64),
    Mean(Segments, Segments, u8),
}

impl Operand {
    fn compile(spec: &OperandSpec) -> Self {
        match spec {
            OperandSpec::Pointer(pointer) => Self::Pointer(Segments::parse(pointer)),
            OperandSpec::Part {
                pointer,
                part: Part::Date,
            } => Self::Date(Segments::parse(pointer)),
            OperandSpec::Add { pointer, add } => Self::Add(Segments::parse(pointer), *add),
            OperandSpec::Mean { mean, of, decimals } => {
                Self::Mean(Segments::parse(mean), Segments::parse(of), *decimals)
            }
        }
    }

    fn resolve<'a>(&self, object: &'a Value) -> Option<Scalar<'a>> {
        match self {
            Self::Pointer(pointer) => scalar(pointer.get(object)?),
            Self::Date(pointer) => {
                let text = pointer.get(object)?.as_str()?;
                text.get(..10).map(Scalar::Str)
            }
            Self::Add(pointer, add) => {
                let number = pointer.get(object)?.as_f64()?;
                Some(Scalar::Num(number + add))
            }
            Self::Mean(mean, of, decimals) => {
                let items = mean.get(object)?.as_array()?;
                if items.is_empty() {
                    return None;
                }
                let mut sum = 0.0;
                for item in items {
                    sum += of.get(item)?.as_f64()?;
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

fn scalar(value: &Value) -> Option<Scalar<'_>> {
    match value {
        Value::String(text) => Some(Scalar::Str(text)),
        Value::Number(number) => number.as_f64().map(Scalar::Num),
        _ => None,
    }
}

/// A rule ready to evaluate.
#[derive(Debug)]
struct CompiledRule {
    spec: RuleSpec,
    left: Operand,
    right: Operand,
}

impl CompiledRule {
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
    fn holds(&self, object: &Value) -> Option<bool> {
        let left = self.left.resolve(object)?;
        let right = self.right.resolve(object)?;
        let ordering = match (left, right) {
            (Scalar::Str(a), Scalar::Str(b)) => {
                if self.spec.op == Op::UnderOid {
                    return Some(is_oid_under(a, b));
                }
                a.cmp(b)
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

/// The compiled keyword: the rules of one `x-sosku-rules` array.
struct CrossFieldRules {
    rules: Vec<CompiledRule>,
}

impl<'i> Keyword<'i> for CrossFieldRules {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        match self
            .rules
            .iter()
            .find(|rule| rule.holds(instance) == Some(false))
        {
            Some(rule) => Err(rule.error()),
            None => Ok(()),
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.rules
            .iter()
            .all(|rule| rule.holds(instance) != Some(false))
    }

    fn iter_errors(
        &self,
        instance: &'i Value,
    ) -> Box<dyn Iterator<Item = ValidationError<'i>> + 'i> {
        let errors: Vec<_> = self
            .rules
            .iter()
            .filter(|rule| rule.holds(instance) == Some(false))
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
pub fn factory<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _path: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    let rules: Vec<RuleSpec> = serde_json::from_value(value.clone())
        .map_err(|error| ValidationError::schema(format!("{KEYWORD}: {error}")))?;
    Ok(Box::new(CrossFieldRules {
        rules: rules.into_iter().map(CompiledRule::compile).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> CrossFieldRules {
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
        assert!(factory(&parent, &bad, Location::new()).is_err());
    }
}
