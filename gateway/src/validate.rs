//! `gateway validate`: check files or a stream against the profiles and report per record.
//!
//! Streams: each record is read, validated and reported before the next is read, so a 1 GB
//! NDJSON file takes no more memory than its largest line. Text output is for people (one line
//! per record with a problem, one indented line per issue); `--format json` writes one JSON line
//! per record with its OperationOutcome, for machines.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use crate::input::{self, InputMode, Item, Position};
use crate::outcome::{Issue, IssueCode, OperationOutcome};
use crate::profiles::{Profile, ProfileRegistry, ProfileStamp, Verdict};

/// Profile id of the batch envelope.
pub const BATCH_PROFILE: &str = "apotti/batch";

/// How to print verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per record: position, profile stamp, validity and OperationOutcome.
    Json,
}

/// What `validate` was asked to do.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Apply this profile to every record instead of choosing one per record.
    pub profile: Option<String>,
    /// Output format.
    pub format: OutputFormat,
    /// How to read the input.
    pub input: InputMode,
    /// Largest record accepted.
    pub max_record_bytes: usize,
    /// Also report valid records (text format).
    pub verbose: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            profile: None,
            format: OutputFormat::Text,
            input: InputMode::Auto,
            max_record_bytes: input::DEFAULT_MAX_RECORD_BYTES,
            verbose: false,
        }
    }
}

/// Counts over a whole run, and whether any input could not be read at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records (and envelopes) checked.
    pub records: u64,
    /// Of which valid.
    pub valid: u64,
    /// Of which invalid or unreadable.
    pub invalid: u64,
    /// Inputs that could not be opened or read.
    pub unreadable_inputs: u64,
}

impl Summary {
    /// Exit status: 0 all valid, 1 some invalid, 2 an input could not be read.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.unreadable_inputs > 0 {
            2
        } else if self.invalid > 0 {
            1
        } else {
            0
        }
    }
}

/// The report of one record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordReport<'a> {
    /// File name, or `-` for standard input.
    pub source: &'a str,
    /// NDJSON line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Index of the record in its input.
    pub index: u64,
    /// Pointer of the record inside its document (`/RECORDS/3`), if inside one.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub within: &'a str,
    /// `MSG_ID` or `header.documentOid`, to find the record in the source system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// `true` when the record is valid.
    pub valid: bool,
    /// The profile that gave the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileStamp>,
    /// The verdict as an OperationOutcome.
    pub outcome: OperationOutcome,
}

/// Validates every input (`-` is standard input) and writes the reports to `out`.
///
/// # Errors
/// When `--profile` names no profile (a usage error), or writing the output fails.
pub fn run(
    registry: &ProfileRegistry,
    inputs: &[String],
    options: &ValidateOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Summary> {
    let forced = match &options.profile {
        Some(id) => Some(registry.get(id).ok_or_else(|| {
            let known: Vec<&str> = registry.profiles().map(Profile::id).collect();
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unknown profile '{id}'; known profiles: {}",
                    known.join(", ")
                ),
            )
        })?),
        None => None,
    };
    let mut summary = Summary::default();
    let unreadable = input::for_each_input(
        inputs,
        options.input,
        options.max_record_bytes,
        &mut |name, position, item| {
            let verdict = check_item(registry, forced, &item);
            let record = match &item {
                Item::Record(value) | Item::Envelope(value) => Some(value),
                Item::Broken(_) => None,
            };
            report(
                name,
                &position,
                record,
                &verdict,
                options,
                &mut summary,
                out,
            )
        },
    )?;
    for message in &unreadable {
        writeln!(err, "{message}")?;
    }
    summary.unreadable_inputs = unreadable.len() as u64;
    Ok(summary)
}

/// The verdict for one item of input.
#[must_use]
pub fn check_item(registry: &ProfileRegistry, forced: Option<&Profile>, item: &Item) -> Verdict {
    match item {
        Item::Record(record) => registry.validate(record, forced),
        Item::Envelope(envelope) => match registry.get(BATCH_PROFILE) {
            Some(profile) => Verdict {
                profile: Some(profile.stamp().clone()),
                issues: registry.validate_with(profile, envelope),
            },
            None => Verdict {
                profile: None,
                issues: vec![Issue::error(
                    IssueCode::NotSupported,
                    "profile.missing",
                    "",
                    format!("no profile {BATCH_PROFILE} to check the batch envelope with"),
                )],
            },
        },
        Item::Broken(issue) => Verdict {
            profile: None,
            issues: vec![issue.clone()],
        },
    }
}

/// `MSG_ID` of a message, `header.documentOid` of a document, `EXPORT_ID` of an envelope.
#[must_use]
pub fn record_id(record: &Value) -> Option<String> {
    ["/MSG_ID", "/header/documentOid", "/EXPORT_ID"]
        .iter()
        .find_map(|pointer| record.pointer(pointer).and_then(Value::as_str))
        .map(|id| id.chars().take(64).collect())
}

fn report(
    source: &str,
    position: &Position,
    record: Option<&Value>,
    verdict: &Verdict,
    options: &ValidateOptions,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> io::Result<()> {
    summary.records += 1;
    let valid = verdict.is_valid();
    if valid {
        summary.valid += 1;
    } else {
        summary.invalid += 1;
    }
    let record_id = record.and_then(record_id);
    match options.format {
        OutputFormat::Json => {
            let ok = match &verdict.profile {
                Some(stamp) => format!("valid against {}", stamp.id),
                None => "valid".to_owned(),
            };
            let report = RecordReport {
                source,
                line: position.line,
                index: position.index,
                within: &position.within,
                record_id,
                valid,
                profile: verdict.profile.clone(),
                outcome: OperationOutcome::from_issues(&verdict.issues, &ok),
            };
            serde_json::to_writer(&mut *out, &report)?;
            writeln!(out)
        }
        OutputFormat::Text => {
            if valid && !options.verbose {
                return Ok(());
            }
            let id = record_id.map(|id| format!(" {id}")).unwrap_or_default();
            let against = match &verdict.profile {
                Some(stamp) => format!(
                    " against {} ({})",
                    stamp.id,
                    stamp.hash.get(..15).unwrap_or(&stamp.hash)
                ),
                None => String::new(),
            };
            let word = if valid { "valid" } else { "INVALID" };
            writeln!(out, "{source}: {position}{id}: {word}{against}")?;
            for issue in &verdict.issues {
                let pointer = if issue.pointer.is_empty() {
                    "(record)"
                } else {
                    &issue.pointer
                };
                writeln!(out, "  {pointer}  [{}]  {}", issue.rule, issue.message)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_id_is_kept_to_its_first_64_characters() {
        let long: String = "ä".repeat(70);
        let id = record_id(&json!({"MSG_ID": long})).expect("id");
        assert_eq!(id, "ä".repeat(64));
        assert_eq!(
            record_id(&json!({"header": {"documentOid": "1.2.3"}})).as_deref(),
            Some("1.2.3")
        );
        let exactly: String = "x".repeat(64);
        assert_eq!(
            record_id(&json!({"EXPORT_ID": exactly.clone()})),
            Some(exactly)
        );
        assert_eq!(record_id(&json!({"OTHER": "x"})), None);
    }
}
