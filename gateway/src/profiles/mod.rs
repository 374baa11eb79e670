//! The profile registry: load, compile and apply the JSON Schema profiles of `profiles/`.
//!
//! Profiles are data. The registry reads every `*.schema.json` once at start (from the copy
//! compiled into the binary, or from a directory an operator names), registers them all with
//! the validator so that `$ref`s between files resolve locally and never over the network,
//! compiles each profile once, and stamps it with its id and the SHA-256 of its bytes. A verdict
//! always names the stamp of the profile that gave it.

pub(crate) mod issues;
pub mod rules;
pub mod specialise;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use jsonschema::json::{Json, SerdeJson};

use crate::identifiers;
use crate::json_tree::{Output, OutputJson, OutputNode};
use crate::outcome::{Issue, IssueCode};

/// The profiles of this source tree, compiled into the binary.
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../profiles");

/// Every profile's `$id` starts with this, followed by `<profile id>.schema.json`.
pub const ID_BASE: &str = "https://sosku.invalid/profiles/";

/// Where the profile files come from.
#[derive(Debug, Clone, Default)]
pub enum ProfileSource {
    /// The copy compiled into the binary (the default).
    #[default]
    Embedded,
    /// A directory of profile files, for an operator who maintains their own.
    Directory(PathBuf),
}

/// Why the profiles could not be loaded: each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A file could not be read.
    #[error("cannot read profile file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not JSON.
    #[error("profile file {path} is not valid JSON: {source}")]
    Json {
        /// The file.
        path: String,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// A file's `$id` does not follow the naming convention.
    #[error("profile file {path} must have \"$id\": \"{expected}\"")]
    Id {
        /// The file.
        path: String,
        /// The `$id` it must have.
        expected: String,
    },
    /// The files could not be put together (a `$ref` to nothing, a duplicate id).
    #[error("profiles do not resolve: {0}")]
    Registry(String),
    /// A profile is not a valid schema, or names an unknown format.
    #[error("profile {id} does not compile: {message}")]
    Compile {
        /// The profile id.
        id: String,
        /// The compiler's message.
        message: String,
    },
    /// An `x-sosku-select` is malformed.
    #[error("profile {id}: x-sosku-select must be {{\"pointer\": \"/...\", \"equals\": \"...\"}}")]
    Selector {
        /// The profile id.
        id: String,
    },
    /// There are no profiles at all.
    #[error("no *.schema.json files found in {0}")]
    Empty(String),
}

/// Which records a profile is for.
#[derive(Debug, Clone)]
struct Selector {
    pointer: String,
    /// `pointer` split and unescaped once: every record is selected, and `Value::pointer`
    /// splits and unescapes (two allocations per segment) on every call.
    segments: rules::Segments,
    equals: String,
}

impl Selector {
    /// Does the record declare itself of this profile's type?
    fn matches(&self, record: &Value) -> bool {
        self.segments.get(record).and_then(Value::as_str) == Some(self.equals.as_str())
    }
}

/// The identity of one profile version: what a verdict names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProfileStamp {
    /// Profile id, e.g. `apotti/SOSKU_DECISION`.
    pub id: String,
    /// `sha256:<hex>` of the profile file's bytes.
    pub hash: String,
}

/// One compiled profile.
#[derive(Debug)]
pub struct Profile {
    stamp: ProfileStamp,
    uri: String,
    title: String,
    selector: Option<Selector>,
    validator: jsonschema::Validator,
    /// The same schema, for documents the mapping engine builds ([`crate::json_tree`]).
    output_validator: jsonschema::Validator<OutputJson>,
}

impl Profile {
    /// Id and content hash.
    #[must_use]
    pub fn stamp(&self) -> &ProfileStamp {
        &self.stamp
    }

    /// The profile id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.stamp.id
    }

    /// The `$id` URI.
    #[must_use]
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The profile's title.
    #[must_use]
    pub fn title(&self) -> &str {
        &self.title
    }

    /// `true` when the record is valid; the fast path, which collects no details.
    #[must_use]
    pub fn is_valid(&self, record: &Value) -> bool {
        self.validator.is_valid(record)
    }
}

/// The outcome of validating one record.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The profile that was applied, if one could be chosen.
    pub profile: Option<ProfileStamp>,
    /// What is wrong; empty when the record is valid.
    pub issues: Vec<Issue>,
}

impl Verdict {
    /// `true` when no issue is an error.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.issues.is_empty()
    }
}

/// All profiles, compiled.
#[derive(Debug)]
pub struct ProfileRegistry {
    profiles: Vec<Profile>,
    /// Fx-hashed: the mapping path looks its target profile up once per record.
    by_id: rustc_hash::FxHashMap<String, usize>,
    /// Raw schema documents by `$id`, for naming the rule (`x-rule`) behind an error.
    documents: HashMap<String, Value>,
}

impl ProfileRegistry {
    /// Loads and compiles every profile of `source`.
    ///
    /// # Errors
    /// Names the file or profile that is wrong; the gateway refuses to start with it.
    pub fn load(source: &ProfileSource) -> Result<Self, ProfileError> {
        let files = match source {
            ProfileSource::Embedded => embedded_files(),
            ProfileSource::Directory(dir) => directory_files(dir)?,
        };
        if files.is_empty() {
            let place = match source {
                ProfileSource::Embedded => "the embedded profiles".to_owned(),
                ProfileSource::Directory(dir) => dir.display().to_string(),
            };
            return Err(ProfileError::Empty(place));
        }
        Self::from_files(files)
    }

    /// Compiles profiles from `(relative path, bytes)` pairs.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn from_files(mut files: Vec<(String, Vec<u8>)>) -> Result<Self, ProfileError> {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut parsed = Vec::with_capacity(files.len());
        for (path, bytes) in files {
            let schema: Value =
                serde_json::from_slice(&bytes).map_err(|source| ProfileError::Json {
                    path: path.clone(),
                    source,
                })?;
            let id = path.trim_end_matches(".schema.json").to_owned();
            let expected = format!("{ID_BASE}{path}");
            if schema.get("$id").and_then(Value::as_str) != Some(expected.as_str()) {
                return Err(ProfileError::Id { path, expected });
            }
            let hash = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            parsed.push((id, expected, hash, schema));
        }

        let registry = jsonschema::Registry::new()
            .extend(
                parsed
                    .iter()
                    .map(|(_, uri, _, schema)| (uri.as_str(), schema)),
            )
            .and_then(jsonschema::RegistryBuilder::prepare)
            .map_err(|error| ProfileError::Registry(error.to_string()))?;

        let mut profiles = Vec::with_capacity(parsed.len());
        for (id, uri, hash, schema) in &parsed {
            let compile_error = |error: jsonschema::ValidationError<'_>| ProfileError::Compile {
                id: id.clone(),
                message: error.to_string(),
            };
            let validator = compile::<SerdeJson>(&registry, schema).map_err(compile_error)?;
            let output_validator =
                compile::<OutputJson>(&registry, schema).map_err(compile_error)?;
            let selector = match schema.get("x-sosku-select") {
                None => None,
                Some(select) => Some(
                    parse_selector(select)
                        .ok_or_else(|| ProfileError::Selector { id: id.clone() })?,
                ),
            };
            let title = schema
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_owned();
            profiles.push(Profile {
                stamp: ProfileStamp {
                    id: id.clone(),
                    hash: hash.clone(),
                },
                uri: uri.clone(),
                title,
                selector,
                validator,
                output_validator,
            });
        }
        drop(registry);
        let by_id = profiles
            .iter()
            .enumerate()
            .map(|(index, profile)| (profile.stamp.id.clone(), index))
            .collect();
        let documents = parsed
            .into_iter()
            .map(|(_, uri, _, schema)| (uri, schema))
            .collect();
        Ok(Self {
            profiles,
            by_id,
            documents,
        })
    }

    /// Every profile, in id order.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.iter()
    }

    /// The profile with this id (`apotti/SOSKU_DECISION`, `kanta/PAATOS_SOSKU`, ...).
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.by_id.get(id).map(|&index| &self.profiles[index])
    }

    /// The profile a record declares itself to be, by `MSG_TYPE` or `header.documentType`.
    ///
    /// # Errors
    /// An issue saying why no profile applies (unknown type, no type, not an object).
    pub fn select(&self, record: &Value) -> Result<&Profile, Issue> {
        if !record.is_object() {
            return Err(Issue::error(
                IssueCode::Structure,
                "input.not-an-object",
                "",
                format!(
                    "expected a JSON object (a message or a document), found {}",
                    json_kind(record)
                ),
            ));
        }
        let selected = self.profiles.iter().find(|profile| {
            profile
                .selector
                .as_ref()
                .is_some_and(|selector| selector.matches(record))
        });
        if let Some(profile) = selected {
            return Ok(profile);
        }
        // Name the discriminator the record has, and what it could have been.
        for pointer in self.selector_pointers() {
            if let Some(value) = record.pointer(pointer) {
                let known: Vec<&str> = self
                    .profiles
                    .iter()
                    .filter_map(|p| p.selector.as_ref())
                    .filter(|s| s.pointer == pointer)
                    .map(|s| s.equals.as_str())
                    .collect();
                let shown = match value.as_str() {
                    Some(text) => format!("'{}'", text.chars().take(64).collect::<String>()),
                    None => json_kind(value).to_owned(),
                };
                return Err(Issue::error(
                    IssueCode::NotSupported,
                    "profile.unknown-type",
                    pointer,
                    format!(
                        "{shown} is not a known record type; expected one of: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        let pointers: Vec<&str> = self.selector_pointers();
        Err(Issue::error(
            IssueCode::Required,
            "profile.no-type",
            "",
            format!(
                "cannot tell the record's type: it has none of {}",
                pointers.join(", ")
            ),
        ))
    }

    fn selector_pointers(&self) -> Vec<&str> {
        let mut pointers: Vec<&str> = Vec::new();
        for selector in self.profiles.iter().filter_map(|p| p.selector.as_ref()) {
            if !pointers.contains(&selector.pointer.as_str()) {
                pointers.push(&selector.pointer);
            }
        }
        pointers
    }

    /// Validates a document the mapping engine built against `profile`, collecting every
    /// issue; the same issues [`Self::validate_with`] finds in the value it stands for.
    #[must_use]
    pub fn validate_output(&self, profile: &Profile, document: &Output<'_>) -> Vec<Issue> {
        self.validate_output_with(profile, None, document)
    }

    /// [`Self::validate_output`], deciding validity with `specialised` (the profile's validator
    /// specialised to the mapping that built `document`, see [`specialise`]) when given; the
    /// issues, when there are any, come from the full validator.
    #[must_use]
    pub fn validate_output_with(
        &self,
        profile: &Profile,
        specialised: Option<&specialise::Specialised>,
        document: &Output<'_>,
    ) -> Vec<Issue> {
        let valid = specialised.map_or(&profile.output_validator, |s| &s.validator);
        let verdict = valid.is_valid(document.node());
        debug_assert_eq!(
            verdict,
            profile.output_validator.is_valid(document.node()),
            "the specialised validator of {} disagrees with the full one",
            profile.id()
        );
        if verdict {
            return Vec::new();
        }
        let mut found = Vec::new();
        for error in profile.output_validator.iter_errors(document.node()) {
            issues::push_issues(self, profile, &error, &mut found);
        }
        found
    }

    /// Validates `record` against `profile`, collecting every issue.
    #[must_use]
    pub fn validate_with(&self, profile: &Profile, record: &Value) -> Vec<Issue> {
        // The verdict through the built documents' representation, which looks names up in
        // small objects faster than `serde_json`'s (the same verdict: a `Value` is one of the
        // nodes it reads); the issues, when there are any, as `serde_json`'s gives them.
        if profile.output_validator.is_valid(OutputNode::Json(record)) {
            return Vec::new();
        }
        let mut found = Vec::new();
        for error in profile.validator.iter_errors(record) {
            issues::push_issues(self, profile, &error, &mut found);
        }
        found
    }

    /// Picks the profile (or uses `forced`) and validates.
    #[must_use]
    pub fn validate(&self, record: &Value, forced: Option<&Profile>) -> Verdict {
        let profile = match forced {
            Some(profile) => profile,
            None => match self.select(record) {
                Ok(profile) => profile,
                Err(issue) => {
                    return Verdict {
                        profile: None,
                        issues: vec![issue],
                    };
                }
            },
        };
        Verdict {
            profile: Some(profile.stamp.clone()),
            issues: self.validate_with(profile, record),
        }
    }

    pub(crate) fn document(&self, uri: &str) -> Option<&Value> {
        self.documents.get(uri)
    }
}

fn parse_selector(select: &Value) -> Option<Selector> {
    let pointer = select.get("pointer")?.as_str()?;
    let equals = select.get("equals")?.as_str()?;
    (pointer.starts_with('/')).then(|| Selector {
        pointer: pointer.to_owned(),
        segments: rules::Segments::parse(pointer),
        equals: equals.to_owned(),
    })
}

/// A word for a JSON value's type, for messages.
#[must_use]
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn embedded_files() -> Vec<(String, Vec<u8>)> {
    crate::files::embedded_tree(&EMBEDDED, is_profile_file)
}

fn directory_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>, ProfileError> {
    crate::files::read_tree(root, is_profile_file).map_err(|source| ProfileError::Io {
        path: root.display().to_string(),
        source,
    })
}

fn is_profile_file(path: &str) -> bool {
    path.ends_with(".schema.json") && !path.starts_with("examples/")
}

/// A profile's validator for one representation of JSON (`serde_json`'s, or the engine's).
fn compile<F: Json>(
    registry: &jsonschema::Registry,
    schema: &Value,
) -> Result<jsonschema::Validator<F>, jsonschema::ValidationError<'static>> {
    jsonschema::options_for::<F>()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_registry(registry)
        .offline()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format("fi-hetu", identifiers::is_hetu)
        .with_format("fi-ytunnus", identifiers::is_ytunnus)
        .with_format("oid", identifiers::is_oid)
        .with_format("fi-local-date-time", identifiers::is_local_date_time)
        .with_keyword(rules::KEYWORD, rules::factory::<F>)
        .build(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A selector finds what `Value::pointer` finds, which it replaced.
    #[test]
    fn selectors_find_what_value_pointer_finds() {
        let records = [
            json!({"MSG_TYPE": "SOSKU_DECISION", "a/b": {"c~d": "x"}, "e": [0, {"f": "y"}]}),
            json!({"header": {"documentType": {"code": "PAATOS_SOSKU"}}, "": {"": "z"}}),
            json!({"header": {"documentType": "PAATOS_SOSKU"}, "MSG_TYPE": 1}),
            json!({"e": {"1": "w", "01": "v", "+1": "u"}}),
            json!([{"f": "y"}, "x"]),
            json!("text"),
            json!({}),
        ];
        let pointers = [
            "/MSG_TYPE",
            "/header/documentType/code",
            "/a~1b/c~0d",
            "/e/1/f",
            "/e/01",
            "/e/+1",
            "/e/1",
            "/0/f",
            "/00/f",
            "/",
            "//",
            "/e/9",
            "/e/-1",
        ];
        for pointer in pointers {
            let select = json!({"pointer": pointer, "equals": "x"});
            let selector = parse_selector(&select).expect("selector");
            for record in &records {
                assert_eq!(
                    selector.segments.get(record),
                    record.pointer(pointer),
                    "{pointer} {record}"
                );
            }
        }
    }
}
