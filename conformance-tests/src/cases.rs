//! The suite's cases: data files under `conformance-tests/cases/`, compiled into the binary.
//!
//! Cases are data so that a reviewer can read what is checked without reading Rust, and so
//! that adding a case never needs a rebuild of the logic. Each file is checked against
//! `cases/case.schema.json` before it is read (a typo in a case file names the file and the
//! place), then deserialised into the types below with unknown fields refused. Case inputs
//! are mostly references to the profile examples (`profiles/examples/`) and the mapping
//! fixtures (`mappings/fixtures/`), with small patches: the same records that pin the
//! profiles and the mappings pin the suite, and they can never drift apart unnoticed (the
//! suite's own tests run every case input through the profiles).

use std::collections::{BTreeMap, BTreeSet};

use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The case files.
static CASES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/cases");
/// The profile examples that cases refer to with `"example"`.
static EXAMPLES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../profiles/examples");
/// The mapping fixtures that cases refer to with `"fixture"`.
static FIXTURES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../mappings/fixtures");

/// File name of the case format's JSON Schema inside `cases/`.
pub const SCHEMA_FILE: &str = "case.schema.json";

/// The spec files a case may name (`shared/spec/`).
pub const SPEC_FILES: [&str; 4] = [
    "apotti-export.md",
    "kanta-document.md",
    "archive-api.md",
    "codes.md",
];

/// Why the cases could not be loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// A file is not JSON.
    #[error("case file {file} is not valid JSON: {source}")]
    Json {
        /// The file.
        file: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A file breaks the case format.
    #[error("case file {file} does not follow {SCHEMA_FILE}: {problems}")]
    Schema {
        /// The file.
        file: String,
        /// What is wrong, with JSON Pointers.
        problems: String,
    },
    /// The schema itself is broken.
    #[error("{SCHEMA_FILE} does not compile: {0}")]
    BadSchema(String),
    /// The same case id twice.
    #[error("case id {id} appears twice ({first} and {second})")]
    DuplicateId {
        /// The id.
        id: String,
        /// Where first.
        first: String,
        /// Where again.
        second: String,
    },
    /// A case names a spec file that is not part of the contract.
    #[error("case {id} names spec file {file}, which is not one of {SPEC_FILES:?}")]
    SpecFile {
        /// The case.
        id: String,
        /// The file it names.
        file: String,
    },
}

/// One file of cases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(rename = "$schema")]
    _schema: Option<String>,
    cases: Vec<Case>,
}

/// Which kind of target runs a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// In process, against the suite's profiles (no server): `conformance run profiles`.
    Profiles,
    /// A gateway at a URL: `conformance run gateway`.
    Gateway,
    /// An archive at a URL: `conformance run archive`.
    Archive,
}

impl Target {
    /// The word for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Profiles => "profiles",
            Self::Gateway => "gateway",
            Self::Archive => "archive",
        }
    }
}

/// The section of the contract a case checks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecRef {
    /// A file of `shared/spec/`.
    pub file: String,
    /// A heading of that file, without the `#`s.
    pub section: String,
}

/// What a case needs from the run to be meaningful; without it the case is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requirement {
    /// The run authenticates with a client certificate (mutual TLS).
    ClientCertificate,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Stable id, unique in the suite.
    pub id: String,
    /// One line for people.
    pub title: String,
    /// The section of the contract it checks.
    pub spec: SpecRef,
    /// Who runs it.
    pub target: Target,
    /// The rule ids of the profiles this case exercises (passing or failing).
    #[serde(default)]
    pub rules: Vec<String>,
    /// What the run must offer for the case to apply.
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// The steps, run in order; the case stops at the first step that does not hold.
    pub steps: Vec<Step>,
    /// The file the case came from (set by the loader).
    #[serde(skip)]
    pub file: String,
}

/// One step: a request (or an in-process validation) and what must come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What the step does, for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// An HTTP request (gateway and archive targets).
    #[serde(default)]
    pub request: Option<Request>,
    /// An in-process validation (profiles target).
    #[serde(default)]
    pub validate: Option<Validate>,
    /// What must come back.
    pub expect: Expect,
    /// Values to keep for later steps: name → `response:<pointer>` or `request:<pointer>`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Method {
    /// GET.
    #[serde(rename = "GET")]
    Get,
    /// POST.
    #[default]
    #[serde(rename = "POST")]
    Post,
}

/// Which credentials a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// Those of the run (client certificate, bearer token), if any.
    #[default]
    Run,
    /// None at all: a fresh client without certificate or token.
    None,
}

/// An HTTP request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// GET or POST (default).
    #[serde(default)]
    pub method: Method,
    /// Path and query, `${name}` substituted (values URL-encoded).
    pub path: String,
    /// The body of a POST.
    #[serde(default)]
    pub body: Option<Body>,
    /// Credentials.
    #[serde(default)]
    pub auth: Auth,
}

/// An in-process validation against the suite's profiles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    /// The record.
    pub input: Body,
    /// Apply this profile instead of choosing one by `MSG_TYPE` / `header.documentType`.
    #[serde(default)]
    pub profile: Option<String>,
}

/// Where a body (or an expected document) comes from; exactly one source, then patches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// A profile example, `profiles/examples/<path>` (an invalid example's `record`).
    #[serde(default)]
    pub example: Option<String>,
    /// A mapping fixture, `mappings/fixtures/<name>`.
    #[serde(default)]
    pub fixture: Option<String>,
    /// Inline JSON (`${name}` substituted).
    #[serde(default)]
    pub json: Option<Value>,
    /// A value captured by an earlier step.
    #[serde(default)]
    pub var: Option<String>,
    /// NDJSON: one record a line.
    #[serde(default)]
    pub ndjson: Option<Vec<Body>>,
    /// A batch envelope's records (`{EXPORT_ID, EXPORT_DTTM, RECORDS}` with `envelope`).
    #[serde(default)]
    pub records: Option<Vec<Body>>,
    /// The envelope fields around `records`.
    #[serde(default)]
    pub envelope: Option<serde_json::Map<String, Value>>,
    /// A Bundle-like batch of these resources.
    #[serde(default)]
    pub bundle: Option<Vec<Body>>,
    /// Raw text, sent as it is (for malformed input).
    #[serde(default)]
    pub text: Option<String>,
    /// Values to set, by JSON Pointer (parents must exist; `-` appends to an array).
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// Members to remove, by JSON Pointer.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// An expected issue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedIssue {
    /// JSON Pointer of the offending value.
    pub pointer: String,
    /// The rule id (gateway and profiles targets; an archive's issue codes are its own).
    #[serde(default)]
    pub rule: Option<String>,
}

/// An array that must (or must not) hold an element matching all of `where`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contains {
    /// JSON Pointer of the array in the response.
    pub at: String,
    /// Pointer (within the element) → value.
    #[serde(rename = "where")]
    pub matching: BTreeMap<String, Value>,
}

/// A whole document expected in the response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedDocument {
    /// JSON Pointer of the document in the response.
    #[serde(default)]
    pub at: String,
    /// The expected document.
    pub expected: Body,
    /// Pointers (within the document) not compared: values the target allocates.
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// HTTP status: one, or any of several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// Exactly this.
    One(u16),
    /// One of these.
    Any(Vec<u16>),
}

impl StatusSpec {
    /// `true` when `status` fits.
    #[must_use]
    pub fn allows(&self, status: u16) -> bool {
        match self {
            Self::One(one) => *one == status,
            Self::Any(any) => any.contains(&status),
        }
    }

    /// For reports.
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Self::One(one) => Value::from(*one),
            Self::Any(any) => Value::from(any.clone()),
        }
    }
}

/// What must come back.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// HTTP status.
    #[serde(default)]
    pub status: Option<StatusSpec>,
    /// Response values by JSON Pointer (`${name}` substituted).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// Pointers that must not be in the response.
    #[serde(default)]
    pub absent: Vec<String>,
    /// The issues: for the gateway and profiles targets exactly these (pointer and rule);
    /// for the archive target each pointer must be among the issues' paths.
    #[serde(default)]
    pub issues: Option<Vec<ExpectedIssue>>,
    /// Where the OperationOutcome (or `issues` array) is in the response, when not at the
    /// usual place.
    #[serde(default, rename = "issuesAt")]
    pub issues_at: Option<String>,
    /// A whole document.
    #[serde(default)]
    pub document: Option<ExpectedDocument>,
    /// Arrays that must hold a matching element.
    #[serde(default)]
    pub contains: Vec<Contains>,
    /// Arrays that must not.
    #[serde(default, rename = "notContains")]
    pub not_contains: Vec<Contains>,
    /// The target must refuse the request: a failed TLS handshake, or 401/403.
    #[serde(default)]
    pub refused: bool,
}

/// All cases of the suite, and what identifies this version of it.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The cases, in file order then file position.
    pub cases: Vec<Case>,
    /// `sha256:<hex>` over the case files, the examples and the fixtures.
    pub digest: String,
}

/// The suite's version: the crate's version.
pub const SUITE_VERSION: &str = env!("CARGO_PKG_VERSION");

impl Suite {
    /// Loads the cases compiled into the binary.
    ///
    /// # Errors
    /// Names the file that is not a valid case file, or the duplicated id.
    pub fn load() -> Result<Self, CaseError> {
        let mut files: Vec<(String, &[u8])> = Vec::new();
        collect(&CASES, &mut files);
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let schema_bytes = files
            .iter()
            .find(|(path, _)| path == SCHEMA_FILE)
            .map(|(_, bytes)| *bytes)
            .ok_or_else(|| CaseError::BadSchema("missing".to_owned()))?;
        let schema: Value = serde_json::from_slice(schema_bytes).map_err(|e| CaseError::Json {
            file: SCHEMA_FILE.to_owned(),
            source: e,
        })?;
        let validator =
            jsonschema::validator_for(&schema).map_err(|e| CaseError::BadSchema(e.to_string()))?;
        let mut hasher = Sha256::new();
        let mut cases = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (path, bytes) in &files {
            hasher.update(path.as_bytes());
            hasher.update(bytes);
            if path == SCHEMA_FILE || !path.ends_with(".json") {
                continue;
            }
            let value: Value = serde_json::from_slice(bytes).map_err(|e| CaseError::Json {
                file: path.clone(),
                source: e,
            })?;
            let problems: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            if !problems.is_empty() {
                return Err(CaseError::Schema {
                    file: path.clone(),
                    problems: problems.join("; "),
                });
            }
            let file: CaseFile = serde_json::from_value(value).map_err(|e| CaseError::Schema {
                file: path.clone(),
                problems: e.to_string(),
            })?;
            for mut case in file.cases {
                if let Some(first) = seen.insert(case.id.clone(), path.clone()) {
                    return Err(CaseError::DuplicateId {
                        id: case.id,
                        first,
                        second: path.clone(),
                    });
                }
                if !SPEC_FILES.contains(&case.spec.file.as_str()) {
                    return Err(CaseError::SpecFile {
                        id: case.id,
                        file: case.spec.file,
                    });
                }
                case.file.clone_from(path);
                cases.push(case);
            }
        }
        for dir in [&EXAMPLES, &FIXTURES] {
            let mut more = Vec::new();
            collect(dir, &mut more);
            more.sort_by(|a, b| a.0.cmp(&b.0));
            for (path, bytes) in more {
                hasher.update(path.as_bytes());
                hasher.update(bytes);
            }
        }
        Ok(Self {
            cases,
            digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        })
    }

    /// The cases for one target.
    pub fn for_target(&self, target: Target) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(move |case| case.target == target)
    }

    /// Case count per spec file, per target.
    #[must_use]
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<Target, usize>> {
        let mut counts: BTreeMap<String, BTreeMap<Target, usize>> = BTreeMap::new();
        for case in &self.cases {
            *counts
                .entry(case.spec.file.clone())
                .or_default()
                .entry(case.target)
                .or_default() += 1;
        }
        counts
    }

    /// Every spec section the cases name.
    #[must_use]
    pub fn sections(&self) -> BTreeSet<&SpecRef> {
        self.cases.iter().map(|case| &case.spec).collect()
    }
}

fn collect<'a>(dir: &'a Dir<'static>, out: &mut Vec<(String, &'a [u8])>) {
    for file in dir.files() {
        out.push((
            file.path().to_string_lossy().replace('\\', "/"),
            file.contents(),
        ));
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

/// A profile example's record: the file itself for a valid one, its `record` for an invalid
/// one (`{"description", "expect", "record"}`).
#[must_use]
pub fn example(path: &str) -> Option<Value> {
    let value: Value = serde_json::from_slice(EXAMPLES.get_file(path)?.contents()).ok()?;
    if path.contains("/invalid/") {
        value.get("record").cloned()
    } else {
        Some(value)
    }
}

/// The expected issues an invalid example declares.
#[must_use]
pub fn example_expectation(path: &str) -> Option<Vec<ExpectedIssue>> {
    let value: Value = serde_json::from_slice(EXAMPLES.get_file(path)?.contents()).ok()?;
    serde_json::from_value(value.get("expect")?.clone()).ok()
}

/// A mapping fixture.
#[must_use]
pub fn fixture(name: &str) -> Option<Value> {
    serde_json::from_slice(FIXTURES.get_file(name)?.contents()).ok()
}

/// Every profile example path (`apotti/SOSKU_DECISION/valid/positive-approved.json`, ...).
#[must_use]
pub fn example_paths() -> Vec<String> {
    let mut files = Vec::new();
    collect(&EXAMPLES, &mut files);
    let mut paths: Vec<String> = files
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.ends_with(".json"))
        .collect();
    paths.sort();
    paths
}
