//! Bad input never panics: each kind gets a clear issue, and the records after it in a stream
//! are still checked. Runs the library the way `gateway validate` does, and the binary itself
//! for exit statuses.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use gateway::input::{self, InputMode, Item, Position};
use gateway::profiles::{ProfileRegistry, ProfileSource};
use gateway::validate::check_item;

fn examples(profile: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples")
        .join(profile)
        .join("valid")
}

/// A valid decision message, compact on one line.
fn valid_decision() -> String {
    let mut files: Vec<_> = fs::read_dir(examples("apotti/SOSKU_DECISION"))
        .expect("examples exist")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files[0]).expect("readable")).expect("json");
    serde_json::to_string(&value).expect("serializes")
}

/// (position, valid?, rules) for every item of the input.
fn check(
    reader: impl Read,
    mode: InputMode,
    name: Option<&str>,
) -> Vec<(Position, bool, Vec<String>)> {
    let registry = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
    let mut seen = Vec::new();
    input::read_records(
        reader,
        mode,
        name,
        1024 * 1024,
        &mut |position, item: Item| {
            let verdict = check_item(&registry, None, &item);
            let rules = verdict.issues.iter().map(|i| i.rule.clone()).collect();
            seen.push((position, verdict.is_valid(), rules));
        },
    )
    .expect("reading from memory does not fail");
    seen
}

fn lines(parts: &[&str]) -> Vec<u8> {
    parts.join("\n").into_bytes()
}

#[test]
fn malformed_json_line_is_reported_with_its_line_and_the_stream_goes_on() {
    let good = valid_decision();
    let input = lines(&[&good, "{\"MSG_TYPE\": \"SOSKU_DECISION\",, }", "", &good]);
    let seen = check(&input[..], InputMode::Auto, None);
    assert_eq!(seen.len(), 3);
    assert!(seen[0].1);
    assert_eq!(seen[1].0.line, Some(2));
    assert_eq!(seen[1].2, ["input.json-syntax"]);
    assert_eq!(seen[2].0.line, Some(4), "blank lines still count");
    assert!(seen[2].1);
}

#[test]
fn malformed_first_line_still_reads_as_a_stream() {
    let good = valid_decision();
    let input = lines(&["not json at all", &good]);
    let seen = check(&input[..], InputMode::Auto, None);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].2, ["input.json-syntax"]);
    assert!(seen[1].1);
}

#[test]
fn wrong_top_level_types() {
    for (text, mode) in [
        ("[1, 2]", InputMode::Json),
        ("\"a string\"", InputMode::Json),
        ("42", InputMode::Ndjson),
        ("[{\"MSG_TYPE\": \"SOSKU_DECISION\"}]", InputMode::Ndjson),
    ] {
        let seen = check(text.as_bytes(), mode, None);
        assert_eq!(seen.len(), 1, "{text}");
        assert_eq!(seen[0].2, ["input.not-an-object"], "{text}");
    }
}

#[test]
fn unknown_msg_type_names_the_field_and_the_known_types() {
    let registry = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
    let record = serde_json::json!({"MSG_TYPE": "SOSKU_INVOICE", "MSG_ID": "X1"});
    let issue = registry.select(&record).expect_err("unknown type");
    assert_eq!(issue.rule, "profile.unknown-type");
    assert_eq!(issue.pointer, "/MSG_TYPE");
    assert!(
        issue.message.contains("SOSKU_DECISION"),
        "{}",
        issue.message
    );
    let issue = registry
        .select(&serde_json::json!({"hello": 1}))
        .expect_err("no type");
    assert_eq!(issue.rule, "profile.no-type");
}

#[test]
fn empty_input() {
    for text in ["", "   \n\n  \n"] {
        for mode in [InputMode::Auto, InputMode::Json, InputMode::Ndjson] {
            let seen = check(text.as_bytes(), mode, None);
            assert_eq!(seen.len(), 1, "{text:?} {mode:?}");
            assert_eq!(seen[0].2, ["input.empty"], "{text:?} {mode:?}");
        }
    }
}

#[test]
fn nesting_ten_thousand_levels_deep() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let record = format!("{{\"MSG_TYPE\": \"SOSKU_DECISION\", \"X\": {deep}}}");
    let good = valid_decision();
    let input = lines(&[&record, &good]);
    let seen = check(&input[..], InputMode::Ndjson, None);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].2, ["input.too-deep"]);
    assert!(seen[1].1);
    // As one document too.
    let seen = check(record.as_bytes(), InputMode::Json, None);
    assert_eq!(seen[0].2, ["input.too-deep"]);
}

#[test]
fn invalid_utf8() {
    let good = valid_decision();
    let mut input = b"{\"MSG_TYPE\": \"SOSKU_DECISION\", \"MSG_ID\": \"\xff\xfe\"}\n".to_vec();
    input.extend_from_slice(good.as_bytes());
    let seen = check(&input[..], InputMode::Auto, None);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].2, ["input.utf8"]);
    assert!(seen[1].1);
    let seen = check(&b"{\"MSG_ID\": \"\xc3\x28\"}"[..], InputMode::Json, None);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].2, ["input.json-syntax"]);
}

#[test]
fn a_hundred_megabyte_line_is_skipped_and_the_next_record_checked() {
    let good = valid_decision();
    let huge = b"{\"MSG_TYPE\": \"SOSKU_DECISION\", \"JUSTIFICATION\": \""
        .chain(io::repeat(b'x').take(100 * 1024 * 1024))
        .chain(&b"\"}\n"[..])
        .chain(good.as_bytes());
    let seen = check(huge, InputMode::Auto, None);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0.line, Some(1));
    assert_eq!(seen[0].2, ["input.record-too-large"]);
    assert_eq!(seen[1].0.line, Some(2));
    assert!(seen[1].1);
}

#[test]
fn a_huge_record_in_a_document_stops_that_document_cleanly() {
    let huge = b"{\"MSG_TYPE\": \"SOSKU_DECISION\", \"X\": \""
        .chain(io::repeat(b'x').take(8 * 1024 * 1024))
        .chain(&b"\"}"[..]);
    let seen = check(huge, InputMode::Json, None);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].2, ["input.record-too-large"]);
}

#[test]
fn batch_envelope_records_are_checked_one_by_one() {
    let good = valid_decision();
    let envelope = format!(
        "{{\n  \"EXPORT_ID\": \"EXP-1\",\n  \"EXPORT_DTTM\": \"2026-03-02 02:00:00\",\n  \"RECORDS\": [{good}, {{\"MSG_TYPE\": \"NOPE\"}}, {good}]\n}}"
    );
    let seen = check(envelope.as_bytes(), InputMode::Auto, None);
    assert_eq!(seen.len(), 4, "three records and the envelope");
    assert_eq!(seen[0].0.within, "/RECORDS/0");
    assert!(seen[0].1);
    assert_eq!(seen[1].0.within, "/RECORDS/1");
    assert_eq!(seen[1].2, ["profile.unknown-type"]);
    assert!(seen[2].1);
    assert!(seen[3].1, "the envelope itself is valid: {:?}", seen[3].2);

    let bad =
        "{\"EXPORT_ID\": \"EXP-2\", \"EXPORT_DTTM\": \"2026-03-02T02:00:00\", \"RECORDS\": []}";
    let seen = check(bad.as_bytes(), InputMode::Json, None);
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].1);
    assert!(
        seen[0].2.contains(&"minItems".to_owned()),
        "{:?}",
        seen[0].2
    );
}

#[test]
fn a_truncated_batch_keeps_the_records_before_the_break() {
    let good = valid_decision();
    let envelope =
        format!("{{\"EXPORT_ID\": \"E\", \"RECORDS\": [{good}, {good}, {{\"MSG_TYPE\": ");
    let seen = check(envelope.as_bytes(), InputMode::Json, None);
    assert_eq!(seen.len(), 3);
    assert!(seen[0].1 && seen[1].1);
    assert_eq!(seen[2].0.within, "/RECORDS/2");
    assert_eq!(seen[2].2, ["input.json-syntax"]);
}

fn gateway(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gateway runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("writes");
    let output = child.wait_with_output().expect("exits");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn exit_statuses_of_gateway_validate() {
    let good = valid_decision();
    let (code, _, stderr) = gateway(&["validate", "-"], good.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("1 record checked: 1 valid, 0 invalid"),
        "{stderr}"
    );

    let broken = good.replacen("SOSKU_DECISION", "SOSKU_NOTHING", 1);
    let (code, stdout, _) = gateway(&["validate"], broken.as_bytes());
    assert_eq!(code, 1);
    assert!(
        stdout.contains("/MSG_TYPE") && stdout.contains("profile.unknown-type"),
        "{stdout}"
    );

    let (code, _, stderr) = gateway(&["validate", "/nonexistent/file.json"], b"");
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot open"), "{stderr}");

    let (code, _, stderr) = gateway(&["validate", "--profile", "no/such", "-"], good.as_bytes());
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown profile"), "{stderr}");

    let (code, _, _) = gateway(&["validate", "--no-such-flag"], b"");
    assert_eq!(code, 2);
}

#[test]
fn json_output_is_one_operation_outcome_per_record() {
    let good = valid_decision();
    let input = format!("{good}\n{{\"MSG_TYPE\": 7}}\n");
    let (code, stdout, _) = gateway(&["validate", "--format", "json"], input.as_bytes());
    assert_eq!(code, 1);
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(reports[0]["profile"]["id"], "apotti/SOSKU_DECISION");
    assert!(
        reports[0]["profile"]["hash"]
            .as_str()
            .expect("hash")
            .starts_with("sha256:")
    );
    assert_eq!(reports[0]["outcome"]["resourceType"], "OperationOutcome");
    assert_eq!(reports[1]["valid"], false);
    assert_eq!(reports[1]["line"], 2);
    assert_eq!(
        reports[1]["outcome"]["issue"][0]["expression"][0],
        "/MSG_TYPE"
    );
}
