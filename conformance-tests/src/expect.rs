//! Comparing what came back with what a case expects.
//!
//! Each check yields [`Mismatch`]es (expected against actual, by JSON Pointer), so a report
//! says exactly what differs rather than "the response was wrong". Issues are compared as sets
//! of `(pointer, rule)`: order carries no meaning in an OperationOutcome. For an archive only
//! the pointers are compared, since the archive contract fixes `path` but leaves its issue
//! codes to the archive.

use serde_json::{Value, json};

use crate::cases::{Expect, ExpectedIssue};
use crate::fresh::Fresh;
use crate::report::Mismatch;
use crate::sources::{self, Vars};

/// How a target reports issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueStyle {
    /// OperationOutcome: pointer in `expression[0]`, rule in `details.coding[0].code`;
    /// exactly the expected issues.
    Outcome,
    /// Archive: `{issues: [{path, code, message}]}`; each expected pointer among the paths.
    Archive,
}

/// What came back from one step.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status (200 for an in-process validation).
    pub status: u16,
    /// The body (NDJSON as an array of lines; text that is not JSON as a string).
    pub body: Value,
}

/// Checks `answer` against `expect`.
///
/// # Errors
/// A problem of the case itself (an unknown captured value, an expected document that does not
/// resolve): the case is errored, not failed.
pub fn check(
    expect: &Expect,
    answer: &Answer,
    vars: &Vars,
    fresh: Option<&Fresh>,
    style: IssueStyle,
    step: usize,
) -> Result<Vec<Mismatch>, String> {
    let mut out = Vec::new();
    let mut miss = |what: String, expected: Value, actual: Value| {
        out.push(Mismatch {
            step,
            what,
            expected,
            actual,
        });
    };
    if let Some(status) = &expect.status
        && !status.allows(answer.status)
    {
        let mut actual = json!(answer.status);
        if answer.status >= 400 {
            actual = json!({"status": answer.status, "body": answer.body});
        }
        miss("status".to_owned(), status.to_value(), actual);
    }
    for (pointer, expected) in &expect.fields {
        let expected = sources::substitute(expected, vars)?;
        let actual = answer.body.pointer(pointer).cloned();
        if actual.as_ref() != Some(&expected) {
            miss(
                pointer.clone(),
                expected,
                actual.unwrap_or_else(|| json!("(absent)")),
            );
        }
    }
    for pointer in &expect.absent {
        if let Some(actual) = answer.body.pointer(pointer) {
            miss(pointer.clone(), json!("(absent)"), actual.clone());
        }
    }
    if let Some(expected) = &expect.issues {
        let at = expect.issues_at.as_deref();
        match style {
            IssueStyle::Outcome => outcome_issues(&answer.body, at, expected, &mut miss),
            IssueStyle::Archive => archive_issues(&answer.body, at, expected, &mut miss),
        }
    }
    if let Some(document) = &expect.document {
        let mut expected = sources::resolve_value(&document.expected, vars, fresh)?;
        let mut actual = answer
            .body
            .pointer(&document.at)
            .cloned()
            .unwrap_or(Value::Null);
        for pointer in &document.ignore {
            remove_all(&mut expected, pointer);
            remove_all(&mut actual, pointer);
        }
        let mut differences = Vec::new();
        diff(&document.at, &expected, &actual, &mut differences);
        for (pointer, expected, actual) in differences.into_iter().take(20) {
            miss(pointer, expected, actual);
        }
    }
    for contains in &expect.contains {
        let matching = sources::substitute(&json!(contains.matching), vars)?;
        if !array_has(&answer.body, &contains.at, &matching) {
            miss(
                format!("{} contains", contains.at),
                matching,
                summary_of(answer.body.pointer(&contains.at), &contains.matching),
            );
        }
    }
    for contains in &expect.not_contains {
        let matching = sources::substitute(&json!(contains.matching), vars)?;
        if array_has(&answer.body, &contains.at, &matching) {
            miss(
                format!("{} does not contain", contains.at),
                matching,
                summary_of(answer.body.pointer(&contains.at), &contains.matching),
            );
        }
    }
    Ok(out)
}

/// Removes what `pointer` names; a `*` segment stands for every member or element.
fn remove_all(value: &mut Value, pointer: &str) {
    match pointer.split_once("/*") {
        Some((head, tail)) => {
            let children: Vec<&mut Value> = match value.pointer_mut(head) {
                Some(Value::Array(items)) => items.iter_mut().collect(),
                Some(Value::Object(map)) => map.values_mut().collect(),
                _ => Vec::new(),
            };
            for child in children {
                remove_all(child, tail);
            }
        }
        None => {
            let _ = sources::remove(value, pointer);
        }
    }
}

fn array_has(body: &Value, at: &str, matching: &Value) -> bool {
    let Some(items) = body.pointer(at).and_then(Value::as_array) else {
        return false;
    };
    let Some(conditions) = matching.as_object() else {
        return false;
    };
    items.iter().any(|item| {
        conditions
            .iter()
            .all(|(pointer, value)| item.pointer(pointer) == Some(value))
    })
}

/// The array's elements reduced to the compared pointers, to show what was there.
fn summary_of(
    array: Option<&Value>,
    matching: &std::collections::BTreeMap<String, Value>,
) -> Value {
    match array.and_then(Value::as_array) {
        Some(items) => Value::Array(
            items
                .iter()
                .map(|item| {
                    let fields: serde_json::Map<String, Value> = matching
                        .keys()
                        .map(|p| (p.clone(), item.pointer(p).cloned().unwrap_or(Value::Null)))
                        .collect();
                    Value::Object(fields)
                })
                .collect(),
        ),
        None => json!("(no array)"),
    }
}

/// `(pointer, rule)` of the error issues of the OperationOutcome at `at` (or at
/// `/operationOutcome`, or the body itself, or `/outcome`).
fn outcome_of<'a>(body: &'a Value, at: Option<&str>) -> Option<&'a Value> {
    match at {
        Some(at) => body.pointer(at),
        None => body
            .get("operationOutcome")
            .or_else(|| body.get("outcome"))
            .or_else(|| {
                (body.get("resourceType") == Some(&json!("OperationOutcome"))).then_some(body)
            }),
    }
}

fn outcome_issues(
    body: &Value,
    at: Option<&str>,
    expected: &[ExpectedIssue],
    miss: &mut impl FnMut(String, Value, Value),
) {
    let Some(issues) = outcome_of(body, at)
        .and_then(|o| o.get("issue"))
        .and_then(Value::as_array)
    else {
        miss(
            "issues".to_owned(),
            json!(expected),
            json!({"(no OperationOutcome in the response)": body}),
        );
        return;
    };
    let mut actual: Vec<ExpectedIssue> = issues
        .iter()
        .filter(|i| {
            !matches!(
                i.get("severity").and_then(Value::as_str),
                Some("information" | "warning")
            )
        })
        .map(|i| ExpectedIssue {
            pointer: i
                .pointer("/expression/0")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            rule: i
                .pointer("/details/coding/0/code")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect();
    actual.sort();
    let mut unmatched: Vec<&ExpectedIssue> = Vec::new();
    let mut remaining = actual.clone();
    for want in expected {
        let found = remaining.iter().position(|have| {
            have.pointer == want.pointer && (want.rule.is_none() || have.rule == want.rule)
        });
        match found {
            Some(index) => {
                remaining.remove(index);
            }
            None => unmatched.push(want),
        }
    }
    if !unmatched.is_empty() || !remaining.is_empty() {
        let mut wanted = expected.to_vec();
        wanted.sort();
        miss("issues".to_owned(), json!(wanted), json!(actual));
    }
}

fn archive_issues(
    body: &Value,
    at: Option<&str>,
    expected: &[ExpectedIssue],
    miss: &mut impl FnMut(String, Value, Value),
) {
    let issues = body
        .pointer(at.unwrap_or("/issues"))
        .and_then(Value::as_array);
    let Some(issues) = issues.filter(|i| !i.is_empty()) else {
        miss(
            "issues".to_owned(),
            json!({"issues": "a non-empty array of {path, code, message}"}),
            body.clone(),
        );
        return;
    };
    let well_formed = issues.iter().all(|issue| {
        ["path", "code", "message"]
            .iter()
            .all(|key| issue.get(*key).is_some_and(Value::is_string))
    });
    if !well_formed {
        miss(
            "issues shape".to_owned(),
            json!("every issue {path, code, message} with string values"),
            json!(issues),
        );
    }
    let paths: Vec<&str> = issues
        .iter()
        .filter_map(|i| i.get("path").and_then(Value::as_str))
        .collect();
    let missing: Vec<&str> = expected
        .iter()
        .map(|e| e.pointer.as_str())
        .filter(|p| !paths.contains(p))
        .collect();
    if !missing.is_empty() {
        miss(
            "issue paths".to_owned(),
            json!(expected.iter().map(|e| &e.pointer).collect::<Vec<_>>()),
            json!(paths),
        );
    }
}

/// Every place where `expected` and `actual` differ, by pointer.
fn diff(pointer: &str, expected: &Value, actual: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let child = gateway::outcome::pointer_join(pointer, key);
                match have.get(key) {
                    Some(other) => diff(&child, value, other, out),
                    None => out.push((child, value.clone(), json!("(absent)"))),
                }
            }
            for (key, value) in have {
                if !want.contains_key(key) {
                    out.push((
                        gateway::outcome::pointer_join(pointer, key),
                        json!("(absent)"),
                        value.clone(),
                    ));
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (index, (a, b)) in want.iter().zip(have).enumerate() {
                diff(&format!("{pointer}/{index}"), a, b, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((pointer.to_owned(), a.clone(), b.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::StatusSpec;

    fn outcome(issues: &[(&str, &str)]) -> Value {
        json!({"operationOutcome": {"resourceType": "OperationOutcome", "issue": issues.iter().map(|(p, r)| json!({
            "severity": "error", "expression": [p], "details": {"coding": [{"code": r}]}})).collect::<Vec<_>>()}})
    }

    fn issue(pointer: &str, rule: &str) -> ExpectedIssue {
        ExpectedIssue {
            pointer: pointer.to_owned(),
            rule: Some(rule.to_owned()),
        }
    }

    #[test]
    fn issues_must_match_exactly_as_a_set() {
        let expect = Expect {
            status: Some(StatusSpec::One(422)),
            issues: Some(vec![issue("/A", "enum"), issue("/B", "required")]),
            ..Expect::default()
        };
        let vars = Vars::new();
        let answer = |body| Answer { status: 422, body };
        let same = outcome(&[("/B", "required"), ("/A", "enum")]);
        assert_eq!(
            check(&expect, &answer(same), &vars, None, IssueStyle::Outcome, 1),
            Ok(vec![])
        );
        let more = outcome(&[("/B", "required"), ("/A", "enum"), ("/C", "enum")]);
        let result = check(&expect, &answer(more), &vars, None, IssueStyle::Outcome, 1);
        assert_eq!(result.map(|m| m.len()), Ok(1));
        let other_rule = outcome(&[("/B", "required"), ("/A", "const")]);
        let result = check(
            &expect,
            &answer(other_rule),
            &vars,
            None,
            IssueStyle::Outcome,
            1,
        );
        assert_eq!(result.map(|m| m[0].what.clone()), Ok("issues".to_owned()));
    }

    #[test]
    fn documents_differ_by_pointer_and_ignored_members_do_not_count() {
        let expect = Expect {
            document: Some(crate::cases::ExpectedDocument {
                at: "/document".to_owned(),
                expected: crate::cases::Body {
                    json: Some(json!({"a": 1, "b": {"c": 2}, "oid": "x"})),
                    ..crate::cases::Body::default()
                },
                ignore: vec!["/oid".to_owned()],
            }),
            ..Expect::default()
        };
        let answer = Answer {
            status: 201,
            body: json!({"document": {"a": 1, "b": {}, "oid": "y", "d": 4}}),
        };
        let result = check(&expect, &answer, &Vars::new(), None, IssueStyle::Outcome, 2);
        let whats: Vec<String> = result
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.what)
            .collect();
        assert_eq!(whats, vec!["/document/b/c", "/document/d"]);
    }

    #[test]
    fn archive_issues_need_the_paths_and_the_shape() {
        let expect = Expect {
            issues: Some(vec![ExpectedIssue {
                pointer: "/header/client/hetu".to_owned(),
                rule: None,
            }]),
            ..Expect::default()
        };
        let good = Answer {
            status: 422,
            body: json!({"issues": [{"path": "/header/client/hetu", "code": "x", "message": "m"}]}),
        };
        assert_eq!(
            check(&expect, &good, &Vars::new(), None, IssueStyle::Archive, 1),
            Ok(vec![])
        );
        let none = Answer {
            status: 201,
            body: json!({"documentOid": "1.2"}),
        };
        let result = check(&expect, &none, &Vars::new(), None, IssueStyle::Archive, 1);
        assert_eq!(result.map(|m| m.len()), Ok(1));
    }
}
