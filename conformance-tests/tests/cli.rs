//! The `conformance run` command as vendors use it: exit statuses (0 passed, 1 failed,
//! 2 errored), per-file results for export files, and the three report files.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn conformance(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .output()
        .expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn example(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples")
        .join(path)
        .display()
        .to_string()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("json")
}

#[test]
fn files_valid_exports_pass_with_status_0() {
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("report.json");
    let (code, out) = conformance(&[
        "run",
        "files",
        &example("apotti/SOSKU_DECISION/valid/positive-approved.json"),
        &example("apotti/batch/valid/nightly-export.json"),
        "--json",
        json.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{out}");
    let report = read_json(&json);
    assert_eq!(report["target"], "files");
    // One result per record, grouped per file: the envelope and its records too.
    let results = report["results"].as_array().expect("results");
    assert!(results.len() >= 3, "{report}");
    let groups: std::collections::BTreeSet<&str> =
        results.iter().filter_map(|r| r["group"].as_str()).collect();
    assert_eq!(groups.len(), 2);
    assert!(report["profiles"].as_array().is_some_and(|p| !p.is_empty()));
}

#[test]
fn files_invalid_records_fail_with_status_1_naming_pointer_and_rule() {
    let dir = tempfile::tempdir().expect("dir");
    let case: Value = read_json(Path::new(&example(
        "apotti/SOSKU_DECISION/invalid/validity-order.json",
    )));
    let valid: Value = read_json(Path::new(&example(
        "apotti/SOSKU_PLAN/valid/draft-one-goal.json",
    )));
    let ndjson = dir.path().join("export.ndjson");
    std::fs::write(&ndjson, format!("{valid}\n{}\n{{broken\n", case["record"])).expect("write");
    let json = dir.path().join("report.json");
    let (code, out) = conformance(&[
        "run",
        "files",
        ndjson.to_str().expect("path"),
        "--json",
        json.to_str().expect("path"),
    ]);
    assert_eq!(code, 1, "{out}");
    let report = read_json(&json);
    let statuses: Vec<&str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "failed"]);
    let issues = &report["results"][1]["mismatches"][0]["actual"];
    assert_eq!(issues[0]["pointer"], "/DECISION/VALID_TO_DATE");
    assert_eq!(issues[0]["rule"], "decision.validity-order");
    assert!(out.contains("FAILED"), "{out}");
}

#[test]
fn files_that_cannot_be_read_are_errors_with_status_2() {
    let (code, out) = conformance(&["run", "files", "/nonexistent/export.json"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("ERRORED"), "{out}");
}

#[test]
fn an_unreachable_gateway_is_an_error_not_a_failure() {
    let (code, out) = conformance(&[
        "run",
        "gateway",
        "--url",
        "http://127.0.0.1:9",
        "--filter",
        "gateway.translation.service-form",
        "--no-progress",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("PROBLEM") && out.contains("ERRORED"), "{out}");
    assert!(out.contains("0 failed, 1 errored"), "{out}");
}

#[test]
fn profile_cases_write_json_junit_and_test_report() {
    let dir = tempfile::tempdir().expect("dir");
    let (json, junit, test_report) = (
        dir.path().join("r.json"),
        dir.path().join("r.xml"),
        dir.path().join("t.json"),
    );
    let (code, out) = conformance(&[
        "run",
        "profiles",
        "--json",
        json.to_str().expect("path"),
        "--junit",
        junit.to_str().expect("path"),
        "--test-report",
        test_report.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{out}");
    let report = read_json(&json);
    let total = report["totals"]["total"].as_u64().expect("total");
    assert_eq!(report["totals"]["passed"].as_u64(), Some(total));
    assert!(
        report["casesDigest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert_eq!(report["suiteVersion"], env!("CARGO_PKG_VERSION"));

    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains(&format!("tests=\"{total}\"")), "{xml}");
    assert!(
        xml.contains("profiles/apotti-sosku_decision"),
        "suites per case file"
    );
    assert!(
        xml.contains("name=\"apotti/SOSKU_DECISION\" value=\"sha256:"),
        "profile hashes"
    );

    let fhir = read_json(&test_report);
    assert_eq!(fhir["resourceType"], "TestReport");
    assert_eq!(fhir["result"], "pass");
    assert_eq!(fhir["score"], 100.0);
    assert_eq!(
        fhir["test"].as_array().map(Vec::len),
        usize::try_from(total).ok()
    );
    assert!(
        fhir["test"][0]["description"]
            .as_str()
            .is_some_and(|d| d.contains(".md § "))
    );
}

#[test]
fn cases_lists_the_count_per_spec_file() {
    let (code, out) = conformance(&["cases"]);
    assert_eq!(code, 0, "{out}");
    for file in [
        "apotti-export.md",
        "kanta-document.md",
        "archive-api.md",
        "codes.md",
    ] {
        assert!(out.contains(file), "{out}");
    }
}
