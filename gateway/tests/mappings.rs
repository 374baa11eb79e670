//! The mapping engine as its users meet it: broken mapping files stop loading with the exact
//! diagnostic, fixtures map both ways, explanations trace every field to a rule, and mapped
//! output that breaks the target profile names the rule behind the value.

use std::fs;
use std::path::{Path, PathBuf};

use gateway::json_tree::Output;
use gateway::map_cli::run_fixtures;
use gateway::mapping::context::LocalContext;
use gateway::mapping::engine::Direction;
use gateway::mapping::{MappingSet, MappingSource};
use gateway::outcome::pointer_join;
use gateway::profiles::specialise::Step;
use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn profiles() -> ProfileRegistry {
    ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles load")
}

/// The mapping files as `(relative path, text)`, as the loader reads them.
fn mapping_files() -> Vec<(String, String)> {
    let base = root().join("mappings");
    let mut files = Vec::new();
    let mut pending = vec![base.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("readable").filter_map(Result::ok) {
            let path = entry.path();
            let relative = path
                .strip_prefix(&base)
                .expect("below")
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                if relative != "fixtures" && relative != "broken" {
                    pending.push(path);
                }
            } else if relative.ends_with(".toml") {
                files.push((relative, fs::read_to_string(&path).expect("text")));
            }
        }
    }
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).expect("readable")).expect("json")
}

#[test]
fn the_shipped_mappings_load_and_check() {
    let set = MappingSet::load(&MappingSource::Embedded, &profiles())
        .unwrap_or_else(|errors| panic!("{errors:#?}"));
    assert_eq!(set.plans.len(), 3);
    let from_dir = MappingSet::load(
        &MappingSource::Directory(root().join("mappings")),
        &profiles(),
    )
    .expect("directory loads");
    let hashes = |s: &MappingSet| s.plans.iter().map(|p| p.hash.clone()).collect::<Vec<_>>();
    assert_eq!(hashes(&set), hashes(&from_dir), "embedded copy is current");
}

/// Each file in `mappings/broken/` patches one shipped file and lists the exact diagnostics
/// loading must then give.
#[test]
fn broken_mapping_files_give_their_exact_diagnostics() {
    let profiles = profiles();
    let mut dir: Vec<PathBuf> = fs::read_dir(root().join("mappings/broken"))
        .expect("broken cases")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dir.sort();
    assert!(dir.len() >= 10, "too few broken cases");
    let mut failures = Vec::new();
    for path in dir {
        let case: toml::Table =
            toml::from_str(&fs::read_to_string(&path).expect("text")).expect("toml");
        let file = case["file"].as_str().expect("file");
        let replace = case["replace"].as_str().expect("replace");
        let with = case["with"].as_str().expect("with");
        let expect: Vec<String> = case["expect"]
            .as_array()
            .expect("expect")
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect();
        let mut files = mapping_files();
        let target = files
            .iter_mut()
            .find(|(p, _)| p == file)
            .expect("patched file exists");
        assert_eq!(
            target.1.matches(replace).count(),
            1,
            "{}: patch must apply once",
            path.display()
        );
        target.1 = target.1.replacen(replace, with, 1);
        let actual: Vec<String> = match MappingSet::from_files(&files, &profiles) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        if actual != expect || expect.is_empty() {
            failures.push(format!(
                "{}:\n  expected {expect:#?}\n  actual   {actual:#?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixtures_map_both_ways() {
    let profiles = profiles();
    let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("loads");
    let report =
        run_fixtures(&profiles, &set, &root().join("mappings/fixtures"), false).expect("runs");
    assert!(
        report.results.len() >= 9,
        "fixtures: {}",
        report.results.len()
    );
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| !r.problems.is_empty())
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // Every mapping has fixtures for most of its rules; what is left is reported, not hidden.
    for (mapping, rules) in &report.unexercised_rules {
        assert!(
            rules.len() <= 2,
            "{mapping}: rules no fixture exercised: {rules:?}"
        );
    }
}

fn example(path: &str) -> Value {
    read_json(&root().join("profiles/examples").join(path))
}

#[test]
fn explain_traces_every_output_field_to_a_rule_and_source() {
    let profiles = profiles();
    let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("loads");
    let record = example("apotti/SOSKU_DECISION/valid/positive-approved.json");
    let mut context = LocalContext::new("1.2.246.10.0", 2026);
    let plan = set
        .plan_for(Direction::Forward, "apotti/SOSKU_DECISION")
        .expect("plan");
    context.prepare(plan, &record, Direction::Forward);
    let mapped = set.map_record(&profiles, &record, Direction::Forward, &context, true);
    let document = mapped.document.expect("maps");
    let hetu = mapped
        .trace
        .iter()
        .find(|t| t.target == "/header/client/hetu")
        .expect("hetu traced");
    assert_eq!(hetu.rule, "hetu");
    assert!(
        hetu.location.starts_with("decision.toml:"),
        "{}",
        hetu.location
    );
    assert_eq!(hetu.source.as_deref(), Some("/PATIENT/SSN"));
    let form = mapped
        .trace
        .iter()
        .find(|t| t.target == "/body/decision/serviceForms/1")
        .expect("array items traced with their index");
    assert_eq!(
        form.source.as_deref(),
        Some("/DECISION/SERVICE_FORMS/1/FORM_C_NAME")
    );
    let dropped = mapped
        .trace
        .iter()
        .find(|t| t.rule == "patient-mrn")
        .expect("dropped field explained");
    assert_eq!(dropped.target, "(not kept)");
    // Every leaf of the output has a trace entry at it or above it.
    fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    leaves(v, format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    leaves(v, format!("{at}/{i}"), out);
                }
            }
            _ => out.push(at),
        }
    }
    let mut all = Vec::new();
    leaves(&document, String::new(), &mut all);
    for leaf in all {
        assert!(
            mapped
                .trace
                .iter()
                .any(|t| leaf == t.target || leaf.starts_with(&format!("{}/", t.target))),
            "{leaf} has no explanation"
        );
    }
}

#[test]
fn a_label_without_translation_names_field_value_and_concept_map() {
    let profiles = profiles();
    let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("loads");
    let record =
        example("apotti/SOSKU_DECISION/valid/voided-restricted-untranslated-municipality.json");
    let context = LocalContext::new("1.2.246.10.0", 2026);
    let mapped = set.map_record(&profiles, &record, Direction::Forward, &context, false);
    assert!(mapped.document.is_none());
    assert_eq!(mapped.issues.len(), 1);
    let issue = &mapped.issues[0];
    assert_eq!(issue.pointer, "/PATIENT/HOME_MUNICIPALITY_C_NAME");
    assert_eq!(issue.rule, "mapping:municipality");
    assert!(
        issue.message.contains("'Sipoo'") && issue.message.contains("concept map kunta"),
        "{}",
        issue.message
    );
}

#[test]
fn more_notes_than_the_document_holds_is_an_issue_not_a_loss() {
    let profiles = profiles();
    let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("loads");
    let record = example("apotti/SOSKU_VISIT/valid/group-session-with-measurements.json");
    let context = LocalContext::new("1.2.246.10.0", 2026);
    let mapped = set.map_record(&profiles, &record, Direction::Forward, &context, false);
    assert!(mapped.document.is_none());
    assert_eq!(mapped.issues[0].pointer, "/VISIT/NOTES");
    assert_eq!(mapped.issues[0].rule, "mapping:note");
}

#[test]
fn output_that_breaks_the_target_profile_names_the_rule() {
    let profiles = profiles();
    let mut files = mapping_files();
    let decision = files
        .iter_mut()
        .find(|(p, _)| p == "decision.toml")
        .expect("decision");
    decision.1 = decision.1.replacen(
        "kanta = \"/header/language\"\nforward = { context = \"language\" }",
        "kanta = \"/header/language\"\nforward = { constant = \"de\" }",
        1,
    );
    // The rule's `[[rule]]` line is two lines above its `forward` (1-based: index - 1).
    let line = decision
        .1
        .lines()
        .position(|l| l.contains("constant = \"de\""))
        .expect("patched")
        - 1;
    let set = MappingSet::from_files(&files, &profiles)
        .expect("the checker does not know enums of constants");
    let record = example("apotti/SOSKU_DECISION/valid/positive-approved.json");
    let mut context = LocalContext::new("1.2.246.10.0", 2026);
    let plan = set
        .plan_for(Direction::Forward, "apotti/SOSKU_DECISION")
        .expect("plan");
    context.prepare(plan, &record, Direction::Forward);
    let mapped = set.map_record(&profiles, &record, Direction::Forward, &context, false);
    assert!(mapped.document.is_none());
    let issue = &mapped.issues[0];
    assert_eq!(issue.pointer, "/header/language");
    assert_eq!(issue.rule, "enum");
    assert!(
        issue.message.contains(&format!("decision.toml:{line}")),
        "{}",
        issue.message
    );
}

/// Every JSON file under `dir`, context files left out.
fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json")
            && !path.to_string_lossy().ends_with(".context.json")
        {
            out.push(path);
        }
    }
}

/// The engine builds documents as a tree that borrows from the input and the plan
/// (`json_tree::Output`), validates that tree in place and writes its text without making a
/// `serde_json::Value` of it. For every fixture and profile example mapped both ways, the text
/// is byte for byte that of the value it stands for, and validating the tree against every
/// profile (its own, and all the others, which it breaks in many ways) gives exactly the
/// issues validating the value gives.
/// `validate_with` decides validity through the built documents' representation and takes the
/// issues from `serde_json`'s; the verdict must be `serde_json`'s own, for valid and invalid
/// records alike (every file against every profile: mostly the wrong one).
#[test]
fn a_records_verdict_is_the_same_through_either_representation() {
    let profiles = profiles();
    let mut inputs = Vec::new();
    json_files(&root().join("mappings/fixtures"), &mut inputs);
    json_files(&root().join("profiles/examples"), &mut inputs);
    json_files(&root().join("conformance-tests"), &mut inputs);
    let (mut valid, mut invalid) = (0, 0);
    for path in &inputs {
        let Ok(record) = serde_json::from_slice::<Value>(&fs::read(path).expect("readable")) else {
            continue;
        };
        for profile in profiles.profiles() {
            let issues = profiles.validate_with(profile, &record);
            assert_eq!(
                issues.is_empty(),
                profile.is_valid(&record),
                "{} against {}: {issues:?}",
                path.display(),
                profile.id()
            );
            if issues.is_empty() {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
    }
    assert!(
        valid >= 50 && invalid >= 500,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn built_documents_write_and_validate_as_their_values_do() {
    let profiles = profiles();
    let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("mappings load");
    let mut inputs = Vec::new();
    json_files(&root().join("mappings/fixtures"), &mut inputs);
    json_files(&root().join("profiles/examples"), &mut inputs);
    let (mut documents, mut violations) = (0, 0);
    for path in &inputs {
        let Ok(record) = serde_json::from_slice::<Value>(&fs::read(path).expect("readable")) else {
            continue;
        };
        for direction in [Direction::Forward, Direction::Backward] {
            let mut context = LocalContext::new("1.2.246.10.0", 2026);
            context.set("msg_dttm", Value::String("2026-01-01 00:00:00".into()));
            if let Ok(profile) = profiles.select(&record)
                && let Some(plan) = set.plan_for(direction, profile.id())
            {
                context.prepare(plan, &record, direction);
            }
            let mapped = set.map_record_as(&profiles, &record, direction, &context, false, |d| {
                let value = d.to_value();
                assert_eq!(
                    d.to_text(),
                    gateway::json_text::to_string(&value),
                    "{} {direction:?}",
                    path.display()
                );
                for profile in profiles.profiles() {
                    let from_tree = profiles.validate_output(profile, d);
                    let from_value = profiles.validate_with(profile, &value);
                    assert_eq!(
                        format!("{from_tree:?}"),
                        format!("{from_value:?}"),
                        "{} {direction:?} against {}",
                        path.display(),
                        profile.id()
                    );
                    violations += from_value.len();
                }
            });
            documents += usize::from(mapped.document.is_some());
        }
    }
    assert!(documents >= 40, "only {documents} documents mapped");
    assert!(violations >= 1000, "only {violations} issues compared");
}

/// A profile specialised to a mapping must give the full profile's verdict on anything but
/// the values decided at load. Every fixture's document, mapped both ways, is broken at each
/// place outside those (a value of the wrong type, a member left out), and both validators
/// must agree on each broken copy; a subschema replaced where it is shared with another place
/// would let the other place's breakage through.
#[test]
fn a_specialised_profile_agrees_with_the_full_one_outside_what_it_decided() {
    let profiles = profiles();
    let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("loads");
    let mut checked = 0;
    for entry in fs::read_dir(root().join("mappings/fixtures")).expect("fixtures") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (direction, target_side) = if name.ends_with(".apotti.json") {
            (Direction::Forward, "kanta")
        } else if name.ends_with(".kanta.json") {
            (Direction::Backward, "apotti")
        } else {
            continue;
        };
        let record = read_json(&path);
        let source = profiles.select(&record).expect("a known record type");
        let plan = set.plan_for(direction, source.id()).expect("plan");
        let mut context = LocalContext::new("1.2.246.10.0", 2026);
        context.prepare(plan, &record, direction);
        let mapped = set.map_record(&profiles, &record, direction, &context, false);
        let Some(document) = mapped.document else {
            continue; // fixtures of refusals
        };
        let target = if target_side == "kanta" {
            &plan.header.kanta
        } else {
            &plan.header.apotti_import
        };
        let target = profiles.get(target).expect("target profile");
        let specialised = plan.specialised(direction).expect("specialised");
        let mut leaves = Vec::new();
        places(&document, &mut Vec::new(), "", &mut leaves);
        for (pointer, steps) in leaves {
            let decided = specialised
                .decided()
                .iter()
                .any(|path| within(&steps, path));
            if decided || pointer.is_empty() {
                continue;
            }
            for broken in breakages(&document, &pointer) {
                let full = target.is_valid(&broken);
                let fast = specialised.is_valid(&Output::Owned(broken.clone()));
                assert_eq!(fast, full, "{name}: {pointer} broken as {broken}");
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} broken copies checked");
}

/// Every place in `value`, as a JSON Pointer and as steps (array items as any item).
fn places(value: &Value, steps: &mut Vec<Step>, pointer: &str, out: &mut Vec<(String, Vec<Step>)>) {
    out.push((pointer.to_owned(), steps.clone()));
    let children: Vec<(String, Step, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, child)| (key.clone(), Step::Name(key.clone()), child))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, child)| (index.to_string(), Step::AnyItem, child))
            .collect(),
        _ => Vec::new(),
    };
    for (segment, step, child) in children {
        steps.push(step);
        places(child, steps, &pointer_join(pointer, &segment), out);
        steps.pop();
    }
}

/// Is `steps` at or below `path`?
fn within(steps: &[Step], path: &[Step]) -> bool {
    path.len() <= steps.len() && path.iter().zip(steps).all(|(a, b)| a == b)
}

/// Copies of `document` broken at `pointer`: its value replaced by one of another type, and
/// the member left out.
fn breakages(document: &Value, pointer: &str) -> Vec<Value> {
    let Some(current) = document.pointer(pointer) else {
        return Vec::new();
    };
    let wrong = match current {
        Value::String(_) => json!(12345),
        _ => json!("not-what-the-profile-wants"),
    };
    let mut retyped = document.clone();
    if let Some(slot) = retyped.pointer_mut(pointer) {
        *slot = wrong;
    }
    let mut broken = vec![retyped];
    let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let mut without = document.clone();
    if let Some(Value::Object(map)) = without.pointer_mut(parent) {
        map.remove(&last.replace("~1", "/").replace("~0", "~"));
        broken.push(without);
    }
    broken
}

/// `gateway mappings check --decided` tells an analyst or an auditor what each mapping's
/// documents are not checked for per record, and why not (the count per direction always).
#[test]
fn mappings_check_lists_what_is_decided_at_load() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["mappings", "check", "--decided"])
        .current_dir(root())
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        text.contains("Forward: 24 subschemas of kanta/PAATOS_SOSKU decided at load"),
        "{text}"
    );
    assert!(
        text.contains(
            "\t\thttps://sosku.invalid/profiles/kanta/header.schema.json#/properties/registerType\n"
        ),
        "{text}"
    );
    // Each direction's count is the number of places listed under it, and none is empty.
    let mut counted = Vec::new();
    let mut listed = Vec::new();
    for line in text.lines() {
        if let Some(place) = line.strip_prefix("\t\t") {
            assert!(place.contains("#/"), "{line}");
            *listed.last_mut().expect("a direction line first") += 1;
        } else if let Some(direction) = line.strip_prefix('\t') {
            let count: usize = direction
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .expect("a count");
            counted.push(count);
            listed.push(0);
        }
    }
    assert_eq!(counted.len(), 6, "three mappings, two directions: {text}");
    assert_eq!(counted, listed, "{text}");
    assert!(counted.iter().all(|&n| n > 0), "{text}");
    assert!(text.ends_with("all mappings check\n"), "{text}");
}
