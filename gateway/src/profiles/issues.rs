//! Turning a JSON Schema error into an [`Issue`] a person can act on.
//!
//! The validator says which keyword failed where; a user wants to know which field, which rule
//! of the contract, and what is wrong with the value. This module points `required` and
//! `additionalProperties` errors at the field itself, finds the rule id (the innermost `x-rule`
//! on the schema path, following `$ref`s across files), writes a plain message that does not
//! quote the value, and unpacks the cross-field rules of [`super::rules`].

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::rules::FIELD_SEPARATOR;
use super::{Profile, ProfileRegistry};
use crate::identifiers::check_hetu;
use crate::outcome::{Issue, IssueCode, pointer_join};

/// Appends the issues `error` stands for (usually one; one per field for unexpected fields).
pub(super) fn push_issues(
    registry: &ProfileRegistry,
    profile: &Profile,
    error: &ValidationError<'_>,
    out: &mut Vec<Issue>,
) {
    let at = error.instance_path().as_str();
    let context = rule_context(registry, profile, error.evaluation_path().as_str());
    let keyword = error.kind().keyword();
    let rule_for = |fallback: String| context.rule.clone().unwrap_or(fallback);
    let explain = |message: String| match &context.description {
        Some(description) => format!("{message} ({description})"),
        None => message,
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(Issue::error(
                IssueCode::Required,
                rule_for("required".into()),
                pointer_join(at, name),
                explain(format!("required field {name} is missing")),
            ));
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                out.push(Issue::error(
                    IssueCode::Structure,
                    rule_for(keyword.into()),
                    pointer_join(at, name),
                    explain(format!(
                        "field {name} is not part of the contract (a typo, or data that would be lost)"
                    )),
                ));
            }
        }
        ValidationErrorKind::Custom { message, .. } => {
            let mut parts = message.splitn(3, FIELD_SEPARATOR);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(rule), Some(left), Some(text)) => out.push(Issue::error(
                    IssueCode::Invariant,
                    rule,
                    format!("{at}{left}"),
                    text,
                )),
                _ => out.push(Issue::error(
                    IssueCode::Invariant,
                    rule_for(keyword.into()),
                    at,
                    message.clone(),
                )),
            }
        }
        ValidationErrorKind::Format { format } => out.push(Issue::error(
            IssueCode::Value,
            rule_for(format!("format:{format}")),
            at,
            explain(format_message(format, error.instance())),
        )),
        kind => out.push(Issue::error(
            issue_code(kind),
            rule_for(keyword.into()),
            at,
            explain(plain_message(kind, error)),
        )),
    }
}

fn issue_code(kind: &ValidationErrorKind) -> IssueCode {
    match kind {
        ValidationErrorKind::Type { .. } => IssueCode::Structure,
        ValidationErrorKind::MaxLength { .. } | ValidationErrorKind::MaxItems { .. } => {
            IssueCode::TooLong
        }
        ValidationErrorKind::Enum { .. }
        | ValidationErrorKind::Constant { .. }
        | ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::MinLength { .. }
        | ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. } => IssueCode::Value,
        _ => IssueCode::Invalid,
    }
}

fn plain_message(kind: &ValidationErrorKind, error: &ValidationError<'_>) -> String {
    match kind {
        ValidationErrorKind::Enum { options } => format!("value must be one of {}", list(options)),
        ValidationErrorKind::Constant { expected_value } => {
            format!("value must be {expected_value}")
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(single) => single.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!(
                "expected {expected}, found {}",
                super::json_kind(error.instance())
            )
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!("value does not match the pattern {pattern}")
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("text must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("text must be at most {limit} characters long")
        }
        ValidationErrorKind::MinItems { limit } => format!("at least {limit} items are required"),
        ValidationErrorKind::MaxItems { limit } => format!("at most {limit} items are allowed"),
        ValidationErrorKind::Minimum { limit } => format!("value must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("value must be at most {limit}"),
        ValidationErrorKind::Contains => {
            "the list does not contain an item the contract requires".to_owned()
        }
        ValidationErrorKind::Not { .. } => "value is present where the contract forbids it".into(),
        ValidationErrorKind::FalseSchema => "no value is allowed here".to_owned(),
        _ => error.masked().to_string(),
    }
}

fn list(options: &Value) -> String {
    match options.as_array() {
        Some(items) => items
            .iter()
            .map(|item| match item.as_str() {
                Some(text) => format!("'{text}'"),
                None => item.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => options.to_string(),
    }
}

fn format_message(format: &str, instance: &Value) -> String {
    match format {
        "fi-hetu" => {
            let detail = instance
                .as_str()
                .and_then(|text| check_hetu(text).err())
                .map_or("", |error| error.describe());
            format!("not a valid Finnish personal identity code: {detail}")
        }
        "fi-ytunnus" => {
            "not a valid Y-tunnus (business id NNNNNNN-C with a correct check digit)".to_owned()
        }
        "oid" => "not an OID (dotted decimal, at least two arcs, no leading zeros)".to_owned(),
        "fi-local-date-time" => {
            "not a local date-time 'YYYY-MM-DD HH:MM:SS' (a real date and time, no offset)"
                .to_owned()
        }
        "date" => "not a calendar date 'YYYY-MM-DD'".to_owned(),
        "date-time" => "not an ISO 8601 date-time with an offset".to_owned(),
        other => format!("not a valid {other}"),
    }
}

/// The innermost `x-rule` (and its `description`) on the schema path of an error.
#[derive(Debug, Default)]
struct RuleContext {
    rule: Option<String>,
    description: Option<String>,
}

/// Walks `evaluation_path` from the profile's root schema, following `$ref`s into the other
/// documents, and keeps the innermost node that declares an `x-rule`.
fn rule_context(
    registry: &ProfileRegistry,
    profile: &Profile,
    evaluation_path: &str,
) -> RuleContext {
    let mut context = RuleContext::default();
    let Some(mut node) = registry.document(profile.uri()) else {
        return context;
    };
    let mut base = profile.uri().to_owned();
    note_rule(node, &mut context);
    for raw in evaluation_path.split('/').skip(1) {
        let segment = unescape(raw);
        if segment == "$ref" {
            let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
                return context;
            };
            let (document_uri, fragment) = resolve_reference(&base, reference);
            let Some(document) = registry.document(&document_uri) else {
                return context;
            };
            let Some(target) = document.pointer(&percent_decode(&fragment)) else {
                return context;
            };
            base = document_uri;
            node = target;
        } else {
            let next = match node {
                Value::Object(map) => map.get(segment.as_str()),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            let Some(next) = next else {
                return context;
            };
            node = next;
        }
        note_rule(node, &mut context);
    }
    context
}

fn note_rule(node: &Value, context: &mut RuleContext) {
    if let Some(rule) = node.get("x-rule").and_then(Value::as_str) {
        context.rule = Some(rule.to_owned());
        context.description = node
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
}

/// Resolves a `$ref` against the URI of the document it stands in: `(document URI, fragment)`.
pub(crate) fn resolve_reference(base: &str, reference: &str) -> (String, String) {
    let (path, fragment) = reference.split_once('#').unwrap_or((reference, ""));
    if path.is_empty() {
        return (base.to_owned(), fragment.to_owned());
    }
    if path.contains("://") {
        return (path.to_owned(), fragment.to_owned());
    }
    let mut segments: Vec<&str> = base.split('/').collect();
    segments.pop();
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    (segments.join("/"), fragment.to_owned())
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_relative_to_their_document() {
        let base = "https://sosku.invalid/profiles/apotti/SOSKU_DECISION.schema.json";
        assert_eq!(
            resolve_reference(base, "../common/defs.schema.json#/$defs/hetu"),
            (
                "https://sosku.invalid/profiles/common/defs.schema.json".to_owned(),
                "/$defs/hetu".to_owned()
            )
        );
        assert_eq!(
            resolve_reference(base, "#/$defs/message"),
            (base.to_owned(), "/$defs/message".to_owned())
        );
    }

    #[test]
    fn fragments_are_percent_decoded() {
        assert_eq!(percent_decode("/$defs/p%C3%A4iv%C3%A4"), "/$defs/päivä");
        assert_eq!(percent_decode("/a%2"), "/a%2");
    }
}
