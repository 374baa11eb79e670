//! Declarative, bidirectional mapping between Apotti-like messages and Kanta-style documents.
//!
//! The mappings are data (`mappings/*.toml`, concept maps in `mappings/concepts/`). This module
//! loads them, compiles each into a plan ([`plan`]), checks every plan against the profiles it
//! connects ([`check`]) and runs plans both ways ([`engine`]). It knows nothing of HTTP or
//! databases: the pipeline hands it a record and a context and gets a document or issues.

pub mod check;
pub mod concepts;
pub mod context;
pub mod engine;
pub mod known;

pub mod plan;
pub mod reads;
pub mod transforms;
pub mod writes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use serde_json::Value;
use sha2::{Digest, Sha256};

use self::concepts::{ConceptMap, ConceptMapFile};
use self::engine::{Direction, MapOutcome, MappingContext};
use self::plan::{Compiler, MappingError, MappingFile, MappingPlan, SourceLocation};
use crate::json_tree::Output;
use crate::outcome::{Issue, IssueCode};
use crate::profiles::ProfileRegistry;

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../mappings");

/// Where the mapping files come from.
#[derive(Debug, Clone, Default)]
pub enum MappingSource {
    /// The copy compiled into the binary.
    #[default]
    Embedded,
    /// A directory laid out as `mappings/`.
    Directory(PathBuf),
}

/// Every mapping and concept map, compiled and checked.
#[derive(Debug)]
pub struct MappingSet {
    /// Concept maps.
    pub concepts: Vec<ConceptMap>,
    /// Mapping plans.
    pub plans: Vec<MappingPlan>,
    concept_index: HashMap<String, usize>,
}

/// The result of mapping one record; the document as a `serde_json::Value`, or as what
/// [`MappingSet::map_record_as`] made of it (its text, say).
#[derive(Debug, Clone)]
pub struct Mapped<D = Value> {
    /// The mapping that ran.
    pub mapping: String,
    /// Which way.
    pub direction: Direction,
    /// The mapped document, when there were no issues.
    pub document: Option<D>,
    /// Issues: mapping errors, or violations of the target profile (each naming the rule
    /// that produced the failing value).
    pub issues: Vec<Issue>,
    /// Explanations, when asked for.
    pub trace: Vec<engine::Trace>,
}

impl MappingSet {
    /// Loads, compiles and checks every mapping against `profiles`.
    ///
    /// # Errors
    /// Every problem found, each naming file, line and rule; the gateway does not start.
    pub fn load(
        source: &MappingSource,
        profiles: &ProfileRegistry,
    ) -> Result<Self, Vec<MappingError>> {
        let files = match source {
            MappingSource::Embedded => embedded_files(),
            MappingSource::Directory(dir) => directory_files(dir)
                .map_err(|message| vec![file_error(&dir.display().to_string(), message)])?,
        };
        Self::from_files(&files, profiles)
    }

    /// Compiles `(relative path, text)` pairs: `concepts/*.toml` are concept maps, other
    /// `*.toml` files mappings.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn from_files(
        files: &[(String, String)],
        profiles: &ProfileRegistry,
    ) -> Result<Self, Vec<MappingError>> {
        let mut errors = Vec::new();
        let mut concepts = Vec::new();
        let mut concept_index = HashMap::new();
        for (path, text) in files.iter().filter(|(p, _)| p.starts_with("concepts/")) {
            match toml::from_str::<ConceptMapFile>(text) {
                Ok(file) => {
                    let id = file.id.clone();
                    match ConceptMap::compile(file) {
                        Ok(map) => {
                            if concept_index.insert(id.clone(), concepts.len()).is_some() {
                                errors.push(file_error(
                                    path,
                                    format!("concept map id '{id}' is used twice"),
                                ));
                            }
                            concepts.push(map);
                        }
                        Err(message) => errors.push(file_error(path, message)),
                    }
                }
                Err(error) => errors.push(toml_error(path, text, &error)),
            }
        }
        let mut plans = Vec::new();
        for (path, text) in files.iter().filter(|(p, _)| !p.starts_with("concepts/")) {
            let file: MappingFile = match toml::from_str(text) {
                Ok(file) => file,
                Err(error) => {
                    errors.push(toml_error(path, text, &error));
                    continue;
                }
            };
            let compiler = Compiler {
                concepts: &concept_index,
                file: path,
                text,
                mapping_id: &file.mapping.id,
            };
            match compiler.rules(&file.rule) {
                Ok(rules) => plans.push(MappingPlan {
                    header: file.mapping.clone(),
                    file: path.clone(),
                    rules,
                    hash: format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))),
                    specialised: [None, None],
                }),
                Err(mut more) => errors.append(&mut more),
            }
        }
        let mut set = Self {
            concepts,
            plans,
            concept_index,
        };
        errors.extend(check::check_all(&set, profiles));
        if !errors.is_empty() {
            return Err(errors);
        }
        for plan in &mut set.plans {
            for direction in [Direction::Forward, Direction::Backward] {
                let target = match direction {
                    Direction::Forward => &plan.header.kanta,
                    Direction::Backward => &plan.header.apotti_import,
                };
                let source = match direction {
                    Direction::Forward => &plan.header.apotti,
                    Direction::Backward => &plan.header.kanta,
                };
                let (Some(profile), Some(source)) = (profiles.get(target), profiles.get(source))
                else {
                    continue;
                };
                let known = known::known_fields(plan, &set.concepts, direction);
                let specialised = match profiles.specialise(profile, source, &known) {
                    Ok(specialised) => specialised,
                    Err(reason) => {
                        tracing::warn!(
                            mapping = %plan.header.id,
                            profile = %target,
                            %reason,
                            "target profile not specialised; every field is checked per record"
                        );
                        None
                    }
                };
                plan.set_specialised(direction, specialised);
            }
        }
        Ok(set)
    }

    /// A concept map by id.
    #[must_use]
    pub fn concept(&self, id: &str) -> Option<&ConceptMap> {
        self.concept_index.get(id).map(|&i| &self.concepts[i])
    }

    /// The plan whose Apotti profile is `apotti` (for forward) or whose Kanta profile is
    /// `kanta` (for backward).
    #[must_use]
    pub fn plan_for(&self, direction: Direction, profile: &str) -> Option<&MappingPlan> {
        self.plans.iter().find(|plan| match direction {
            Direction::Forward => plan.header.apotti == profile,
            Direction::Backward => plan.header.kanta == profile,
        })
    }

    /// Validates `record` against its source profile, maps it, and validates the output
    /// against the target profile; a target violation names the rule behind the value.
    #[must_use]
    pub fn map_record(
        &self,
        profiles: &ProfileRegistry,
        record: &Value,
        direction: Direction,
        context: &dyn MappingContext,
        explain: bool,
    ) -> Mapped {
        self.map_record_as(profiles, record, direction, context, explain, |d| {
            d.to_value()
        })
    }

    /// [`Self::map_record`], keeping what `keep` makes of a valid document (its text, say:
    /// the document is written out without first being made a `serde_json::Value`).
    #[must_use]
    pub fn map_record_as<D>(
        &self,
        profiles: &ProfileRegistry,
        record: &Value,
        direction: Direction,
        context: &dyn MappingContext,
        explain: bool,
        keep: impl FnOnce(&Output<'_>) -> D,
    ) -> Mapped<D> {
        let refused = |mapping: &str, issues: Vec<Issue>| Mapped {
            mapping: mapping.to_owned(),
            direction,
            document: None,
            issues,
            trace: Vec::new(),
        };
        let source = match profiles.select(record) {
            Ok(profile) => profile,
            Err(issue) => return refused("", vec![issue]),
        };
        let Some(plan) = self.plan_for(direction, source.id()) else {
            let way = match direction {
                Direction::Forward => "Apotti → Kanta",
                Direction::Backward => "Kanta → Apotti",
            };
            return refused(
                "",
                vec![Issue::error(
                    IssueCode::NotSupported,
                    "mapping.none",
                    "",
                    format!("no mapping takes {} records {way}", source.id()),
                )],
            );
        };
        let issues = profiles.validate_with(source, record);
        if !issues.is_empty() {
            return refused(&plan.header.id, issues);
        }
        self.run_checked_as(profiles, plan, record, direction, context, explain, keep)
    }

    /// Maps an already-valid record with `plan` and checks the output.
    ///
    /// The record must be valid against the plan's source profile: the target check relies on
    /// it for the fields the plan copies unchanged ([`crate::profiles::specialise`]).
    #[must_use]
    pub fn run_checked(
        &self,
        profiles: &ProfileRegistry,
        plan: &MappingPlan,
        record: &Value,
        direction: Direction,
        context: &dyn MappingContext,
        explain: bool,
    ) -> Mapped {
        self.run_checked_as(
            profiles,
            plan,
            record,
            direction,
            context,
            explain,
            |document| document.to_value(),
        )
    }

    /// [`Self::run_checked`], keeping what `keep` makes of a valid document.
    #[must_use]
    #[expect(clippy::too_many_arguments, reason = "run_checked's, and what to keep")]
    pub fn run_checked_as<D>(
        &self,
        profiles: &ProfileRegistry,
        plan: &MappingPlan,
        record: &Value,
        direction: Direction,
        context: &dyn MappingContext,
        explain: bool,
        keep: impl FnOnce(&Output<'_>) -> D,
    ) -> Mapped<D> {
        let MapOutcome {
            document,
            issues,
            trace,
        } = engine::run(self, plan, record, context, direction, explain);
        let mapping = plan.header.id.clone();
        if !issues.is_empty() {
            return Mapped {
                mapping,
                direction,
                document: None,
                issues,
                trace,
            };
        }
        let target = match direction {
            Direction::Forward => &plan.header.kanta,
            Direction::Backward => &plan.header.apotti_import,
        };
        let Some(target) = profiles.get(target) else {
            return Mapped {
                mapping,
                direction,
                document: None,
                issues: vec![Issue::error(
                    IssueCode::NotSupported,
                    "profile.missing",
                    "",
                    format!("no profile {target}"),
                )],
                trace,
            };
        };
        let violations =
            profiles.validate_output_with(target, plan.specialised(direction), &document);
        if violations.is_empty() {
            return Mapped {
                mapping,
                direction,
                document: Some(keep(&document)),
                issues: Vec::new(),
                trace,
            };
        }
        // Run again with tracing to name the rule behind each failing value.
        let traced = if explain {
            trace
        } else {
            engine::run(self, plan, record, context, direction, true).trace
        };
        let issues = violations
            .into_iter()
            .map(|mut issue| {
                let producer = traced
                    .iter()
                    .filter(|t| {
                        issue.pointer == t.target
                            || issue.pointer.starts_with(&format!("{}/", t.target))
                            || t.target.starts_with(&format!("{}/", issue.pointer))
                    })
                    .max_by_key(|t| t.target.len());
                if let Some(t) = producer {
                    issue.message = format!(
                        "mapped output breaks {}: {} (value from rule {} at {}{})",
                        target.id(),
                        issue.message,
                        t.rule,
                        t.location,
                        t.source
                            .as_deref()
                            .map(|s| format!(", source {s}"))
                            .unwrap_or_default()
                    );
                } else {
                    issue.message =
                        format!("mapped output breaks {}: {}", target.id(), issue.message);
                }
                issue
            })
            .collect();
        Mapped {
            mapping,
            direction,
            document: None,
            issues,
            trace: traced,
        }
    }
}

fn file_error(path: &str, message: String) -> MappingError {
    MappingError {
        location: SourceLocation {
            file: path.to_owned(),
            line: 1,
        },
        rule: "-".into(),
        message,
    }
}

fn toml_error(path: &str, text: &str, error: &toml::de::Error) -> MappingError {
    let line = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map_or(1, |head| head.bytes().filter(|&b| b == b'\n').count() + 1);
    MappingError {
        location: SourceLocation {
            file: path.to_owned(),
            line,
        },
        rule: "-".into(),
        message: error.message().to_owned(),
    }
}

fn embedded_files() -> Vec<(String, String)> {
    as_text(crate::files::embedded_tree(&EMBEDDED, is_mapping_file))
}

fn directory_files(root: &Path) -> Result<Vec<(String, String)>, String> {
    crate::files::read_tree(root, is_mapping_file)
        .map(as_text)
        .map_err(|e| e.to_string())
}

/// Mapping files are text; a file that is not UTF-8 is kept lossily so that TOML parsing
/// reports it with its position.
fn as_text(files: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    files
        .into_iter()
        .map(|(path, bytes)| (path, String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
}

/// Mapping and concept files are `*.toml` outside `fixtures/` and `broken/`.
fn is_mapping_file(path: &str) -> bool {
    path.ends_with(".toml") && !path.starts_with("fixtures/") && !path.starts_with("broken/")
}
