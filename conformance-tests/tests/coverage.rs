//! The cases cover the contract, and they are made of test data only.
//!
//! Coverage check chosen: every rule id the profiles know (each `x-rule`, each cross-field
//! rule of `x-sosku-rules`, and each custom or standard `format` as `format:<name>`) has at
//! least one passing and one failing case in process (profiles target) and at least one
//! passing and one failing case against a running target (gateway or archive). A case counts
//! for a rule when it lists the rule in `rules`; a failing case must also expect an issue with
//! that rule (or, against an archive, which reports its own codes, be refused with 422), and a
//! passing case must expect success in every step. The in-process run of the profile cases
//! (tests/suite_passes.rs) then shows that the passing inputs are valid and the failing ones
//! fail with exactly those issues.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use conformance::cases::{Case, StatusSpec, Suite, Target};
use conformance::sources::{self, Vars};
use serde_json::Value;

fn profile_rules() -> BTreeSet<String> {
    fn walk(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, member) in map {
                    match (key.as_str(), member) {
                        ("x-rule", Value::String(rule)) => {
                            out.insert(rule.clone());
                        }
                        ("format", Value::String(format)) => {
                            out.insert(format!("format:{format}"));
                        }
                        ("x-sosku-rules", Value::Array(rules)) => {
                            for rule in rules {
                                if let Some(id) = rule.get("rule").and_then(Value::as_str) {
                                    out.insert(id.to_owned());
                                }
                            }
                        }
                        _ => walk(member, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("profiles") {
            let path = entry.expect("entry").path();
            if path.is_dir() && !path.ends_with("examples") {
                files(&path, out);
            } else if path.to_string_lossy().ends_with(".schema.json") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles"),
        &mut paths,
    );
    let mut rules = BTreeSet::new();
    for path in paths {
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        walk(&schema, &mut rules);
    }
    rules
}

fn expects_success(case: &Case) -> bool {
    case.steps.iter().all(|step| {
        let status_ok = match &step.expect.status {
            Some(StatusSpec::One(s)) => *s < 400,
            Some(StatusSpec::Any(any)) => any.iter().all(|s| *s < 400),
            None => true,
        };
        status_ok
            && step.expect.fields.get("/valid") != Some(&Value::Bool(false))
            && step.expect.issues.as_ref().is_none_or(Vec::is_empty)
    })
}

fn expects_failure_for(case: &Case, rule: &str) -> bool {
    case.steps.iter().any(|step| {
        let issues = step.expect.issues.as_deref().unwrap_or_default();
        match case.target {
            Target::Archive => {
                matches!(step.expect.status, Some(StatusSpec::One(422))) && !issues.is_empty()
            }
            _ => issues.iter().any(|i| i.rule.as_deref() == Some(rule)),
        }
    })
}

#[test]
fn every_profile_rule_has_a_passing_and_a_failing_case_in_process_and_over_http() {
    let suite = Suite::load().expect("cases");
    let rules = profile_rules();
    assert!(rules.len() > 25, "{rules:?}");
    let mut gaps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rule in &rules {
        let listing: Vec<&Case> = suite
            .cases
            .iter()
            .filter(|c| c.rules.iter().any(|r| r == rule))
            .collect();
        let has = |in_process: bool, passing: bool| {
            listing.iter().any(|case| {
                (case.target == Target::Profiles) == in_process
                    && if passing {
                        expects_success(case)
                    } else {
                        expects_failure_for(case, rule)
                    }
            })
        };
        for (in_process, passing, what) in [
            (true, true, "passing in process"),
            (true, false, "failing in process"),
            (false, true, "passing against a target"),
            (false, false, "failing against a target"),
        ] {
            if !has(in_process, passing) {
                gaps.entry(rule).or_default().push(what);
            }
        }
    }
    assert!(gaps.is_empty(), "rules without cases: {gaps:#?}");
}

#[test]
fn a_failing_case_expects_an_issue_for_every_rule_it_lists() {
    let suite = Suite::load().expect("cases");
    for case in suite.cases.iter().filter(|c| !expects_success(c)) {
        if case.target == Target::Archive {
            continue;
        }
        let expected: BTreeSet<&str> = case
            .steps
            .iter()
            .flat_map(|s| s.expect.issues.iter().flatten())
            .filter_map(|i| i.rule.as_deref())
            .collect();
        for rule in &case.rules {
            assert!(
                expected.contains(rule.as_str()),
                "{} lists {rule} but expects no issue with it",
                case.id
            );
        }
    }
}

#[test]
fn every_case_names_a_heading_of_its_spec_file() {
    // The suite carries the contract it was written against (`conformance-tests/spec/`); on a
    // machine that also has the live contract beside the repository, the copy must match it.
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("spec");
    let live = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec");
    if live.is_dir() {
        for entry in std::fs::read_dir(&spec).expect("spec copy") {
            let name = entry.expect("entry").file_name();
            assert_eq!(
                std::fs::read_to_string(spec.join(&name)).expect("copy"),
                std::fs::read_to_string(live.join(&name)).unwrap_or_default(),
                "conformance-tests/spec/{} differs from the contract: copy it again and review the cases",
                name.to_string_lossy()
            );
        }
    }
    let suite = Suite::load().expect("cases");
    let mut headings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for section in suite.sections() {
        let set = headings.entry(section.file.clone()).or_insert_with(|| {
            std::fs::read_to_string(spec.join(&section.file))
                .expect("spec file")
                .lines()
                .filter(|l| l.starts_with('#'))
                .map(|l| l.trim_start_matches('#').trim().to_owned())
                .collect()
        });
        assert!(
            set.contains(&section.section),
            "{} has no heading {:?} (headings: {set:?})",
            section.file,
            section.section
        );
    }
    // Every heading of every spec file is checked by some case.
    for (file, set) in &headings {
        for heading in set {
            if heading.ends_with("— stand-in contract v1") && file != "archive-api.md" {
                continue;
            }
            assert!(
                suite
                    .sections()
                    .iter()
                    .any(|s| &s.file == file && &s.section == heading),
                "no case checks {file} § {heading}"
            );
        }
    }
}

#[test]
fn every_target_and_record_type_is_covered_both_ways() {
    let suite = Suite::load().expect("cases");
    let ids: Vec<&str> = suite.cases.iter().map(|c| c.id.as_str()).collect();
    for word in ["decision", "plan", "visit"] {
        for prefix in [
            "gateway.forward.",
            "gateway.backward.",
            "gateway.round-trip.",
            "gateway.versions.",
            "archive.document.",
        ] {
            assert!(
                ids.iter()
                    .any(|id| id.starts_with(&format!("{prefix}{word}"))),
                "no {prefix}{word}* case"
            );
        }
    }
}

/// Every JSON value a case sends or expects, resolved (without fresh identifiers).
fn inputs(case: &Case) -> Vec<Value> {
    let mut out = Vec::new();
    let vars = Vars::new();
    for step in &case.steps {
        let bodies = step
            .request
            .iter()
            .filter_map(|r| r.body.as_ref())
            .chain(step.validate.iter().map(|v| &v.input))
            .chain(step.expect.document.iter().map(|d| &d.expected));
        for body in bodies {
            if body.var.is_some() || body.text.is_some() {
                continue;
            }
            if let Ok(payload) = sources::resolve(body, &vars, None) {
                out.push(payload.as_value());
            }
        }
    }
    out
}

#[test]
fn cases_use_test_identities_and_invented_names_only() {
    fn walk(value: &Value, case: &str) {
        match value {
            Value::Object(map) => {
                for (key, member) in map {
                    if let (Some(text), true) =
                        (member.as_str(), matches!(key.as_str(), "SSN" | "hetu"))
                        && gateway::identifiers::is_hetu(text)
                    {
                        let individual: u32 = text[7..10].parse().expect("digits");
                        assert!(
                            (900..=999).contains(&individual),
                            "{case}: {text} is not a test identity"
                        );
                    }
                    if let (Some(text), true) = (
                        member.as_str(),
                        matches!(key.as_str(), "PAT_FIRST_NAME" | "given"),
                    ) {
                        assert!(
                            text.is_empty() || text.starts_with("Testi-"),
                            "{case}: given name {text}"
                        );
                    }
                    walk(member, case);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, case)),
            _ => {}
        }
    }
    let suite = Suite::load().expect("cases");
    let mut seen = 0;
    for case in &suite.cases {
        for value in inputs(case) {
            walk(&value, &case.id);
            seen += 1;
        }
    }
    assert!(seen > 400, "{seen}");
}

#[test]
fn every_case_input_resolves() {
    let suite = Suite::load().expect("cases");
    let vars: Vars = Vars::new();
    for case in &suite.cases {
        for step in &case.steps {
            let body = step
                .request
                .as_ref()
                .and_then(|r| r.body.as_ref())
                .or(step.validate.as_ref().map(|v| &v.input));
            if let Some(body) = body.filter(|b| b.var.is_none())
                && let Err(problem) = sources::resolve(body, &vars, None)
            {
                assert!(problem.contains("captured"), "{}: {problem}", case.id);
            }
        }
    }
}
