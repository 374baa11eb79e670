//! Issues and OperationOutcomes: the one shape in which the gateway says what is wrong.
//!
//! Every problem the gateway reports, whether a profile violation, an unreadable line of NDJSON
//! or a code with no translation, is an [`Issue`]: the JSON Pointer of the offending value, the
//! rule it broke, and a plain message. Issues render as a FHIR-style `OperationOutcome`, with
//! the pointer in `expression` (a JSON Pointer, RFC 6901, not FHIRPath) and the rule as a coding
//! in `details`. Messages never quote the offending value itself: issues end up in the audit
//! log, and a value may be a personal identity code.

use serde::{Deserialize, Serialize};

/// Code system of the gateway's rule ids in `details.coding`.
pub const RULE_SYSTEM: &str = "urn:x-sosku:cs:rule";

/// How bad an issue is (FHIR `IssueSeverity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input could not be processed at all.
    Fatal,
    /// The record is invalid.
    Error,
    /// Worth knowing, does not make the record invalid.
    Warning,
    /// For information only.
    Information,
}

/// The kind of problem (a subset of FHIR `IssueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueCode {
    /// Content invalid against the specification or a profile.
    Invalid,
    /// A structural issue: unreadable JSON, wrong top-level type.
    Structure,
    /// A required element is missing.
    Required,
    /// An element value is invalid.
    Value,
    /// A rule relating several elements failed.
    Invariant,
    /// Too long, too deep or too large.
    TooLong,
    /// The content is not supported (no profile, no mapping).
    NotSupported,
    /// A code has no translation.
    CodeInvalid,
    /// Processing failed for another reason.
    Processing,
    /// The caller is not authenticated (FHIR `login`).
    Login,
    /// The caller lacks the role (FHIR `forbidden`).
    Forbidden,
    /// Too many requests of a kind (FHIR `throttled`).
    Throttled,
    /// Informational: no problem.
    Informational,
}

/// One problem with one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// The FHIR issue type.
    pub code: IssueCode,
    /// Stable rule id: an `x-rule` of a profile, a JSON Schema keyword, or a gateway rule
    /// such as `input.json-syntax`.
    pub rule: String,
    /// JSON Pointer of the offending value within the record (`""` is the whole record).
    pub pointer: String,
    /// A plain sentence saying what is wrong.
    pub message: String,
}

impl Issue {
    /// An error issue.
    #[must_use]
    pub fn error(
        code: IssueCode,
        rule: impl Into<String>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            code,
            rule: rule.into(),
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    /// The same issue with `prefix` put in front of its pointer (for a record inside a batch).
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        self.pointer.insert_str(0, prefix);
        self
    }
}

/// Appends `segment` to a JSON Pointer, escaping `~` and `/` (RFC 6901).
#[must_use]
pub fn pointer_join(base: &str, segment: &str) -> String {
    let mut out = String::with_capacity(base.len() + segment.len() + 1);
    out.push_str(base);
    out.push('/');
    for ch in segment.chars() {
        match ch {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            other => out.push(other),
        }
    }
    out
}

/// A FHIR-style OperationOutcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    /// Always `OperationOutcome`.
    pub resource_type: String,
    /// At least one issue; a clean verdict carries one informational issue.
    pub issue: Vec<OutcomeIssue>,
}

/// One issue of an OperationOutcome, in FHIR's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeIssue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: Severity,
    /// FHIR issue type.
    pub code: IssueCode,
    /// The rule, as a coding in [`RULE_SYSTEM`], and the message as text.
    pub details: Details,
    /// The message again, as FHIR's diagnostics.
    pub diagnostics: String,
    /// The JSON Pointer of the offending value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

/// `CodeableConcept`-shaped details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Details {
    /// The rule id.
    pub coding: Vec<RuleCoding>,
    /// The message.
    pub text: String,
}

/// The rule id as a coding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleCoding {
    /// Always [`RULE_SYSTEM`].
    pub system: String,
    /// The rule id.
    pub code: String,
}

impl From<&Issue> for OutcomeIssue {
    fn from(issue: &Issue) -> Self {
        Self {
            severity: issue.severity,
            code: issue.code,
            details: Details {
                coding: vec![RuleCoding {
                    system: RULE_SYSTEM.to_owned(),
                    code: issue.rule.clone(),
                }],
                text: issue.message.clone(),
            },
            diagnostics: issue.message.clone(),
            expression: vec![issue.pointer.clone()],
        }
    }
}

impl OperationOutcome {
    /// The outcome for a list of issues; `ok_message` is used when there are none.
    #[must_use]
    pub fn from_issues(issues: &[Issue], ok_message: &str) -> Self {
        let issue = if issues.is_empty() {
            vec![OutcomeIssue {
                severity: Severity::Information,
                code: IssueCode::Informational,
                details: Details {
                    coding: vec![RuleCoding {
                        system: RULE_SYSTEM.to_owned(),
                        code: "ok".to_owned(),
                    }],
                    text: ok_message.to_owned(),
                },
                diagnostics: ok_message.to_owned(),
                expression: Vec::new(),
            }]
        } else {
            issues.iter().map(OutcomeIssue::from).collect()
        };
        Self {
            resource_type: "OperationOutcome".to_owned(),
            issue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(pointer_join("/a", "b/c~d"), "/a/b~1c~0d");
        assert_eq!(pointer_join("", "SSN"), "/SSN");
    }

    #[test]
    fn outcome_carries_rule_pointer_and_message() {
        let issue = Issue::error(
            IssueCode::Required,
            "required",
            "/DECISION/CASE_ID",
            "missing",
        );
        let outcome = OperationOutcome::from_issues(&[issue], "ok");
        let json = serde_json::to_value(&outcome).expect("serializes");
        assert_eq!(json["resourceType"], "OperationOutcome");
        assert_eq!(json["issue"][0]["severity"], "error");
        assert_eq!(json["issue"][0]["code"], "required");
        assert_eq!(json["issue"][0]["details"]["coding"][0]["code"], "required");
        assert_eq!(json["issue"][0]["expression"][0], "/DECISION/CASE_ID");
    }

    #[test]
    fn clean_outcome_has_one_informational_issue() {
        let outcome = OperationOutcome::from_issues(&[], "valid");
        assert_eq!(outcome.issue.len(), 1);
        assert_eq!(outcome.issue[0].severity, Severity::Information);
    }
}
