//! The run's report, and its four renderings: a console summary, JSON, JUnit XML and a FHIR
//! TestReport-shaped JSON.
//!
//! Every rendering carries the same facts: the suite version and the digest of its cases, the
//! target, the profile and mapping hashes the run was made against, and for each case passed,
//! failed (with expected against actual) or errored (the harness could not run it). Errors are
//! kept apart from failures everywhere, down to the exit status, because "the vendor's system
//! is wrong" and "the test could not be run" call for different people.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cases::SpecRef;

/// What became of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every expectation held.
    Passed,
    /// The target answered, and not as the contract says.
    Failed,
    /// The harness could not run it (target unreachable, a broken case, a bad certificate).
    Errored,
    /// It does not apply to this run (e.g. needs a client certificate and none was given).
    Skipped,
}

impl Status {
    /// The word.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Errored => "errored",
            Self::Skipped => "skipped",
        }
    }
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// Step number, from 1.
    pub step: usize,
    /// What was compared (`status`, `/document/header/version`, `issues`, ...).
    pub what: String,
    /// What the contract expects.
    pub expected: Value,
    /// What came back.
    pub actual: Value,
}

/// The result of one case (or one record of a vendor file).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    /// Case id (or `<file>#<record>`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Where it belongs in the report (case file, or vendor file).
    pub group: String,
    /// The contract section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecRef>,
    /// Passed, failed, errored or skipped.
    pub status: Status,
    /// Why, for failed, errored and skipped cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Expected against actual, for failed cases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<Mismatch>,
    /// Milliseconds.
    pub duration_ms: u64,
}

/// A profile or mapping and its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// Id.
    pub id: String,
    /// `sha256:<hex>`.
    pub hash: String,
}

/// Counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Cases run or skipped.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Errored.
    pub errored: usize,
    /// Skipped.
    pub skipped: usize,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `sosku-conformance`.
    pub suite: String,
    /// The suite's version.
    pub suite_version: String,
    /// Digest of the case files, examples and fixtures.
    pub cases_digest: String,
    /// `files`, `profiles`, `gateway` or `archive`.
    pub target: String,
    /// The URL, for gateway and archive runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What the run's fresh identifiers are made from.
    pub run_id: String,
    /// When the run started (UTC).
    pub started_at: String,
    /// Where the profile and mapping hashes come from.
    pub stamps_from: String,
    /// Profiles and their hashes.
    pub profiles: Vec<Stamp>,
    /// Mappings and their hashes (gateway runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<Stamp>,
    /// Problems of the run as a whole (e.g. `/metadata` not readable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Counts.
    pub totals: Totals,
    /// Every case.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// Recomputes the counts from the results.
    pub fn tally(&mut self) {
        let mut totals = Totals {
            total: self.results.len(),
            ..Totals::default()
        };
        for result in &self.results {
            match result.status {
                Status::Passed => totals.passed += 1,
                Status::Failed => totals.failed += 1,
                Status::Errored => totals.errored += 1,
                Status::Skipped => totals.skipped += 1,
            }
        }
        self.totals = totals;
    }

    /// Exit status: 0 every case passed (or was skipped), 1 some failed, 2 some errored or the
    /// run had a problem of its own (errors win: a run that could not look is not a verdict).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.totals.errored > 0 || !self.problems.is_empty() {
            2
        } else if self.totals.failed > 0 {
            1
        } else {
            0
        }
    }

    /// The ids of the cases with `status`.
    #[must_use]
    pub fn ids(&self, status: Status) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| r.status == status)
            .map(|r| r.id.as_str())
            .collect()
    }

    /// The console summary: failed and errored cases with their reasons, then the counts.
    ///
    /// # Errors
    /// When writing fails.
    pub fn write_summary(&self, out: &mut dyn Write) -> io::Result<()> {
        for result in &self.results {
            if !matches!(result.status, Status::Failed | Status::Errored) {
                continue;
            }
            let word = if result.status == Status::Failed {
                "FAILED "
            } else {
                "ERRORED"
            };
            writeln!(out, "{word} {}  {}", result.id, result.title)?;
            if let Some(message) = &result.message {
                writeln!(out, "        {message}")?;
            }
            for m in &result.mismatches {
                writeln!(
                    out,
                    "        step {} {}: expected {}, got {}",
                    m.step,
                    m.what,
                    short(&m.expected),
                    short(&m.actual)
                )?;
            }
        }
        for problem in &self.problems {
            writeln!(out, "PROBLEM {problem}")?;
        }
        let t = self.totals;
        writeln!(
            out,
            "{} {} ({}) against {}{}: {} cases, {} passed, {} failed, {} errored, {} skipped",
            self.suite,
            self.suite_version,
            self.cases_digest.get(..19).unwrap_or(&self.cases_digest),
            self.target,
            self.url
                .as_deref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default(),
            t.total,
            t.passed,
            t.failed,
            t.errored,
            t.skipped
        )?;
        writeln!(
            out,
            "stamps from {}: {} profiles, {} mappings",
            self.stamps_from,
            self.profiles.len(),
            self.mappings.len()
        )
    }

    /// JUnit XML: one test suite per group (case file or vendor file).
    ///
    /// # Errors
    /// When the XML cannot be written.
    pub fn junit(&self) -> anyhow::Result<String> {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
        let mut report = quick_junit::Report::new(format!(
            "{} {} against {}",
            self.suite, self.suite_version, self.target
        ));
        let mut groups: Vec<&str> = Vec::new();
        for result in &self.results {
            if !groups.contains(&result.group.as_str()) {
                groups.push(&result.group);
            }
        }
        for group in groups {
            let mut suite = TestSuite::new(group);
            suite.add_property(("suiteVersion", self.suite_version.as_str()));
            suite.add_property(("casesDigest", self.cases_digest.as_str()));
            for stamp in self.profiles.iter().chain(&self.mappings) {
                suite.add_property((stamp.id.as_str(), stamp.hash.as_str()));
            }
            for result in self.results.iter().filter(|r| r.group == group) {
                let mut status = match result.status {
                    Status::Passed => TestCaseStatus::success(),
                    Status::Skipped => TestCaseStatus::skipped(),
                    Status::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
                    Status::Errored => TestCaseStatus::non_success(NonSuccessKind::Error),
                };
                if let Some(message) = result.message.as_deref().or(match result.status {
                    Status::Failed => Some("expectations did not hold"),
                    _ => None,
                }) {
                    status.set_message(message);
                }
                if !result.mismatches.is_empty() {
                    status.set_description(describe(&result.mismatches));
                }
                let mut case = TestCase::new(result.id.as_str(), status);
                case.set_classname(group);
                case.set_time(std::time::Duration::from_millis(result.duration_ms));
                if let Some(spec) = &result.spec {
                    case.add_property((
                        "spec",
                        format!("{} § {}", spec.file, spec.section).as_str(),
                    ));
                }
                case.add_property(("title", result.title.as_str()));
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        Ok(report.to_string()?)
    }

    /// A FHIR TestReport-shaped document: one `test` per case, one `assert` per expectation
    /// that did not hold (or one passing assert).
    #[must_use]
    pub fn test_report(&self) -> Value {
        let result = if self.totals.errored > 0 || !self.problems.is_empty() {
            "pending"
        } else if self.totals.failed > 0 {
            "fail"
        } else {
            "pass"
        };
        let ran = self.totals.total - self.totals.skipped;
        #[expect(clippy::cast_precision_loss, reason = "case counts are small")]
        let score = if ran == 0 {
            0.0
        } else {
            (self.totals.passed as f64 * 10000.0 / ran as f64).round() / 100.0
        };
        let tests: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                let code = match r.status {
                    Status::Passed => "pass",
                    Status::Failed => "fail",
                    Status::Errored => "error",
                    Status::Skipped => "skip",
                };
                let actions: Vec<Value> = if r.mismatches.is_empty() {
                    vec![json!({"assert": {"result": code, "message": r.message.clone().unwrap_or_else(|| r.title.clone())}})]
                } else {
                    r.mismatches
                        .iter()
                        .map(|m| json!({"assert": {"result": code,
                            "message": format!("step {} {}", m.step, m.what),
                            "detail": format!("expected {}, got {}", m.expected, m.actual)}}))
                        .collect()
                };
                let mut test = json!({"id": r.id, "name": r.title, "action": actions});
                if let Some(spec) = &r.spec {
                    test["description"] = json!(format!("{} § {}", spec.file, spec.section));
                }
                test
            })
            .collect();
        let extensions: Vec<Value> = self
            .profiles
            .iter()
            .map(|s| json!({"url": "urn:x-sosku:profile-hash", "valueCoding": {"code": s.id, "display": s.hash}}))
            .chain(self.mappings.iter().map(|s| {
                json!({"url": "urn:x-sosku:mapping-hash", "valueCoding": {"code": s.id, "display": s.hash}})
            }))
            .collect();
        json!({
            "resourceType": "TestReport",
            "id": self.run_id,
            "name": format!("{} {} against {}", self.suite, self.suite_version, self.target),
            "status": "completed",
            "testScript": {"identifier": {"system": "urn:x-sosku:conformance", "value": self.cases_digest},
                "display": format!("{} {}", self.suite, self.suite_version)},
            "result": result,
            "score": score,
            "tester": self.suite,
            "issued": self.started_at,
            "participant": [
                {"type": "test-engine", "uri": format!("urn:x-sosku:conformance:{}", self.suite_version)},
                {"type": "server", "uri": self.url.clone().unwrap_or_else(|| format!("urn:x-sosku:{}", self.target))}
            ],
            "extension": extensions,
            "test": tests,
        })
    }

    /// Writes the reports asked for.
    ///
    /// # Errors
    /// Names the file that cannot be written.
    pub fn write_files(
        &self,
        json_file: Option<&Path>,
        junit_file: Option<&Path>,
        test_report_file: Option<&Path>,
    ) -> anyhow::Result<()> {
        use anyhow::Context as _;
        if let Some(path) = json_file {
            std::fs::write(path, serde_json::to_vec_pretty(self)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(path) = junit_file {
            std::fs::write(path, self.junit()?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(path) = test_report_file {
            std::fs::write(path, serde_json::to_vec_pretty(&self.test_report())?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

fn describe(mismatches: &[Mismatch]) -> String {
    mismatches
        .iter()
        .map(|m| {
            format!(
                "step {} {}: expected {}, got {}",
                m.step, m.what, m.expected, m.actual
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}
