//! Runs every example beside the profiles: valid records must pass against their profile (and
//! be recognised as that profile's records), invalid cases must fail with exactly the issues
//! they list. Also checks that every rule declared in the profiles has a failing case.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::Value;

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Example folders: `examples/<profile id>/{valid,invalid}`.
fn example_dirs() -> Vec<(String, PathBuf)> {
    let root = profiles_dir().join("examples");
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.join("valid").is_dir() || path.join("invalid").is_dir() {
                let id = path
                    .strip_prefix(&root)
                    .expect("below root")
                    .to_string_lossy()
                    .replace('\\', "/");
                found.push((id, path));
            } else {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

fn registry() -> ProfileRegistry {
    ProfileRegistry::load(&ProfileSource::Directory(profiles_dir())).expect("profiles load")
}

#[test]
fn embedded_profiles_are_the_same_as_the_files() {
    let embedded = ProfileRegistry::load(&ProfileSource::Embedded).expect("embedded load");
    let files = registry();
    let a: Vec<_> = embedded.profiles().map(|p| p.stamp().clone()).collect();
    let b: Vec<_> = files.profiles().map(|p| p.stamp().clone()).collect();
    assert_eq!(a, b);
}

#[test]
fn valid_examples_pass_and_select_their_profile() {
    let registry = registry();
    let mut failures = Vec::new();
    let mut counts = BTreeMap::new();
    for (id, dir) in example_dirs() {
        let profile = registry
            .get(&id)
            .unwrap_or_else(|| panic!("examples for unknown profile {id}"));
        for path in json_files(&dir.join("valid")) {
            *counts.entry(id.clone()).or_insert(0) += 1;
            let record = read_json(&path);
            let issues = registry.validate_with(profile, &record);
            if !issues.is_empty() {
                failures.push(format!("{}: {issues:#?}", path.display()));
            }
            if id.starts_with("apotti/SOSKU") || id.starts_with("kanta/") && id != "kanta/header" {
                match registry.select(&record) {
                    Ok(selected) if selected.id() == id => {}
                    Ok(selected) => failures.push(format!(
                        "{}: selected {} instead of {id}",
                        path.display(),
                        selected.id()
                    )),
                    Err(issue) => failures.push(format!("{}: {issue:?}", path.display())),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for id in [
        "apotti/SOSKU_DECISION",
        "apotti/SOSKU_PLAN",
        "apotti/SOSKU_VISIT",
        "apotti/batch",
        "kanta/PAATOS_SOSKU",
        "kanta/ASIAKASSUUNNITELMA",
        "kanta/ASIAKASKERTOMUS",
    ] {
        let count = counts.get(id).copied().unwrap_or(0);
        assert!(count >= 3, "{id} has {count} valid examples, fewer than 3");
    }
}

#[test]
fn invalid_examples_fail_with_exactly_their_issues() {
    let registry = registry();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (id, dir) in example_dirs() {
        let profile = registry.get(&id).expect("known profile");
        for path in json_files(&dir.join("invalid")) {
            cases += 1;
            let case = read_json(&path);
            let record = case.get("record").expect("case has a record");
            let expected: BTreeSet<(String, String)> = case["expect"]
                .as_array()
                .expect("case has expect")
                .iter()
                .map(|e| {
                    (
                        e["pointer"].as_str().expect("pointer").to_owned(),
                        e["rule"].as_str().expect("rule").to_owned(),
                    )
                })
                .collect();
            assert!(!expected.is_empty(), "{}: expect is empty", path.display());
            let actual: BTreeSet<(String, String)> = registry
                .validate_with(profile, record)
                .into_iter()
                .map(|issue| (issue.pointer, issue.rule))
                .collect();
            if actual != expected {
                failures.push(format!(
                    "{}\n  expected {expected:?}\n  actual   {actual:?}",
                    path.display()
                ));
            }
        }
    }
    assert!(cases > 0, "no invalid cases found");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every `x-rule` and every cross-field rule id declared in a profile is expected by at least
/// one invalid case, so no rule of the contract goes untested.
#[test]
fn every_declared_rule_has_a_failing_case() {
    let mut declared = BTreeSet::new();
    for (_, document) in profile_documents() {
        each_object(&document, &mut |map| {
            if let Some(rule) = map.get("x-rule").and_then(Value::as_str) {
                declared.insert(rule.to_owned());
            }
            for rule in map
                .get("x-sosku-rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = rule.get("rule").and_then(Value::as_str) {
                    declared.insert(id.to_owned());
                }
            }
        });
    }
    let mut expected = BTreeSet::new();
    for (_, dir) in example_dirs() {
        for path in json_files(&dir.join("invalid")) {
            for e in read_json(&path)["expect"].as_array().into_iter().flatten() {
                if let Some(rule) = e["rule"].as_str() {
                    expected.insert(rule.to_owned());
                }
            }
        }
    }
    let untested: Vec<_> = declared.difference(&expected).collect();
    assert!(
        untested.is_empty(),
        "rules without an invalid case: {untested:?}"
    );
}

/// Calls `visit` with every object in `value`, outermost first.
fn each_object<'v>(value: &'v Value, visit: &mut impl FnMut(&'v serde_json::Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            visit(map);
            map.values().for_each(|v| each_object(v, visit));
        }
        Value::Array(items) => items.iter().for_each(|v| each_object(v, visit)),
        _ => {}
    }
}

/// The profile files below `profiles/` (examples excluded), parsed.
fn profile_documents() -> Vec<(PathBuf, Value)> {
    let mut documents = Vec::new();
    let mut pending = vec![profiles_dir()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("readable").filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("examples") {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(".schema.json") {
                let document = read_json(&path);
                documents.push((path, document));
            }
        }
    }
    documents.sort_by(|a, b| a.0.cmp(&b.0));
    documents
}

/// A value checked by `if: {enum}` before `else: {pattern}` (the list spares the regex) must
/// mean what the pattern alone means: so every listed value must be a string the pattern
/// accepts, or the list would admit what the pattern refuses.
#[test]
fn values_listed_before_a_pattern_match_the_pattern() {
    let documents = profile_documents();
    let mut found = Vec::new();
    for (_, document) in &documents {
        each_object(document, &mut |map| {
            let listed = map
                .get("if")
                .and_then(|check| check.get("enum"))
                .and_then(Value::as_array);
            let pattern = map
                .get("else")
                .and_then(|fallback| fallback.get("pattern"))
                .and_then(Value::as_str);
            if let (Some(listed), Some(pattern)) = (listed, pattern) {
                found.push((listed, pattern));
            }
        });
    }
    // The coding system, FLO_MEAS_ID and the two MEAS_VALUE ranges.
    assert!(found.len() >= 4, "only {} lists found", found.len());
    for (listed, pattern) in found {
        let schema = serde_json::json!({ "pattern": pattern });
        for value in listed {
            assert!(
                value.is_string() && jsonschema::is_valid(&schema, value),
                "{value} is listed before the pattern {pattern} but does not match it"
            );
        }
    }
}

/// Every code system a profile fixes (`system: {const}`) is in the coding's list of known
/// systems, so that no valid document needs the pattern regex for its systems.
#[test]
fn every_fixed_code_system_is_listed_in_the_coding() {
    let mut fixed = BTreeSet::new();
    for (_, document) in profile_documents() {
        each_object(&document, &mut |map| {
            if let Some(system) = map
                .get("system")
                .and_then(|s| s.get("const"))
                .and_then(Value::as_str)
            {
                fixed.insert(system.to_owned());
            }
        });
    }
    let common = read_json(&profiles_dir().join("common/defs.schema.json"));
    let listed: BTreeSet<String> = common
        .pointer("/$defs/coding/properties/system/if/enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = fixed.difference(&listed).collect();
    assert!(!fixed.is_empty(), "no fixed code systems found");
    assert!(
        missing.is_empty(),
        "fixed code systems not in the coding's list: {missing:?}"
    );
}
