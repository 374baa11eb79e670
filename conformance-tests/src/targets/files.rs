//! A vendor's export files or documents, checked against the suite's profiles: single JSON,
//! a batch envelope or NDJSON, read as a stream (the gateway's own reader, so memory stays
//! flat whatever the size). Each record is one result, grouped per file; a file that cannot be
//! opened or read is an errored result of its own.

use gateway::input::{self, InputMode, Item};
use gateway::profiles::Profile;
use gateway::validate::{check_item, record_id};
use serde_json::{Value, json};

use crate::cases::Suite;
use crate::report::{CaseResult, Mismatch, Report, Status};
use crate::runner::new_run_number;
use crate::targets::{embedded_profile_stamps, embedded_profiles, new_report};

/// Checks every record of `files` against the suite's profiles (or `profile` for all).
///
/// # Errors
/// When `profile` names no profile, or the embedded profiles do not compile.
pub fn run(suite: &Suite, files: &[String], profile: Option<&str>) -> anyhow::Result<Report> {
    let registry = embedded_profiles()?;
    let forced: Option<&Profile> = match profile {
        Some(id) => Some(registry.get(id).ok_or_else(|| {
            let known: Vec<&str> = registry.profiles().map(Profile::id).collect();
            anyhow::anyhow!("unknown profile {id}; known: {}", known.join(", "))
        })?),
        None => None,
    };
    let mut report = new_report(
        suite,
        "files",
        None,
        new_run_number(),
        "the suite's embedded profiles",
    );
    report.profiles = embedded_profile_stamps(&registry);
    let mut results = Vec::new();
    let unreadable = input::for_each_input(
        files,
        InputMode::Auto,
        input::DEFAULT_MAX_RECORD_BYTES,
        &mut |name, position, item| {
            let started = std::time::Instant::now();
            let verdict = check_item(&registry, forced, &item);
            let record = match &item {
                Item::Record(value) | Item::Envelope(value) => Some(value),
                Item::Broken(_) => None,
            };
            let what = match &item {
                Item::Envelope(_) => "batch envelope".to_owned(),
                _ => record
                    .and_then(record_id)
                    .unwrap_or_else(|| "record".to_owned()),
            };
            let title = format!(
                "{what} at {position}{}",
                verdict
                    .profile
                    .as_ref()
                    .map(|p| format!(" against {}", p.id))
                    .unwrap_or_default()
            );
            let mismatches = if verdict.is_valid() {
                Vec::new()
            } else {
                vec![Mismatch {
                    step: 1,
                    what: "verdict".to_owned(),
                    expected: json!("valid"),
                    actual: Value::Array(
                        verdict
                            .issues
                            .iter()
                            .map(|i| json!({"pointer": i.pointer, "rule": i.rule, "message": i.message}))
                            .collect(),
                    ),
                }]
            };
            results.push(CaseResult {
                id: format!("{name}#{}", position.index + 1),
                title,
                group: name.to_owned(),
                spec: None,
                status: if mismatches.is_empty() {
                    Status::Passed
                } else {
                    Status::Failed
                },
                message: None,
                mismatches,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
            Ok(())
        },
    )?;
    for message in unreadable {
        let name = message.split(": ").next().unwrap_or_default().to_owned();
        results.push(CaseResult {
            id: name.clone(),
            title: "the file could not be read".to_owned(),
            group: name,
            spec: None,
            status: Status::Errored,
            message: Some(message),
            mismatches: Vec::new(),
            duration_ms: 0,
        });
    }
    report.results = results;
    report.tally();
    Ok(report)
}
