//! `gateway map` and `gateway mappings check|test`: the mapping engine from the command line.
//!
//! `map` streams like `validate`: each record is read, validated, mapped, checked against the
//! target profile and written before the next is read; a failing record gets its report and
//! the stream goes on. `mappings test` runs the fixture pairs beside the mappings and reports
//! which rules and target fields no fixture exercised.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::input::{self, InputMode, Item};
use crate::mapping::context::LocalContext;
use crate::mapping::engine::Direction;
use crate::mapping::plan::{MappingPlan, Rule, Shape};
use crate::mapping::{Mapped, MappingSet};
use crate::outcome::OperationOutcome;
use crate::profiles::ProfileRegistry;
use crate::validate::{OutputFormat, record_id};

/// Which side the input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// Apotti-like messages (mapped forward to Kanta-style documents).
    Apotti,
    /// Kanta-style documents (mapped back to Apotti-like import messages).
    Kanta,
}

impl Side {
    /// The direction a record of this side is mapped in.
    #[must_use]
    pub fn direction(self) -> Direction {
        match self {
            Self::Apotti => Direction::Forward,
            Self::Kanta => Direction::Backward,
        }
    }
}

/// Options of `gateway map`.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// The input side.
    pub from: Side,
    /// Output format: `text` writes the documents as NDJSON and problems to stderr; `json`
    /// writes one result object per record.
    pub format: OutputFormat,
    /// Show for every output field the rule and source behind it.
    pub explain: bool,
    /// How to read the input.
    pub input: InputMode,
    /// Largest record.
    pub max_record_bytes: usize,
}

/// Counts of a `map` run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapSummary {
    /// Records mapped.
    pub mapped: u64,
    /// Records refused.
    pub failed: u64,
    /// Inputs that could not be read.
    pub unreadable_inputs: u64,
}

impl MapSummary {
    /// 0 all mapped, 1 some refused, 2 an input could not be read.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.unreadable_inputs > 0 {
            2
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }
}

/// The current year in Helsinki, for OID allocation.
fn this_year() -> i16 {
    jiff::Zoned::now().year()
}

/// Maps every record of `inputs`.
///
/// # Errors
/// When writing fails.
pub fn run_map(
    profiles: &ProfileRegistry,
    mappings: &MappingSet,
    inputs: &[String],
    options: &MapOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<MapSummary> {
    let mut summary = MapSummary::default();
    let mut context = LocalContext::new("1.2.246.10.0", this_year());
    let direction = options.from.direction();
    let unreadable = input::for_each_input(
        inputs,
        options.input,
        options.max_record_bytes,
        &mut |name, position, item| {
            let mapped = match &item {
                Item::Record(record) => {
                    if let Ok(profile) = profiles.select(record)
                        && let Some(plan) = mappings.plan_for(direction, profile.id())
                    {
                        context.prepare(plan, record, direction);
                    }
                    mappings.map_record(profiles, record, direction, &context, options.explain)
                }
                Item::Envelope(_) => return Ok(()),
                Item::Broken(issue) => Mapped {
                    mapping: String::new(),
                    direction,
                    document: None,
                    issues: vec![issue.clone()],
                    trace: Vec::new(),
                },
            };
            let id = match &item {
                Item::Record(record) => record_id(record),
                _ => None,
            };
            if mapped.document.is_some() {
                summary.mapped += 1;
            } else {
                summary.failed += 1;
            }
            let place = format!(
                "{name}: {position}{}",
                id.map(|i| format!(" {i}")).unwrap_or_default()
            );
            write_result(&place, &position, &mapped, options, out, err)
        },
    )?;
    for message in &unreadable {
        writeln!(err, "{message}")?;
    }
    summary.unreadable_inputs = unreadable.len() as u64;
    Ok(summary)
}

fn write_result(
    place: &str,
    position: &input::Position,
    mapped: &Mapped,
    options: &MapOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    match options.format {
        OutputFormat::Json => {
            let mut result = json!({
                "line": position.line,
                "index": position.index,
                "mapping": mapped.mapping,
                "ok": mapped.document.is_some(),
                "outcome": OperationOutcome::from_issues(&mapped.issues, "mapped"),
            });
            if let Some(document) = &mapped.document {
                result["document"] = document.clone();
            }
            if options.explain {
                result["explain"] = serde_json::to_value(&mapped.trace)?;
            }
            serde_json::to_writer(&mut *out, &result)?;
            writeln!(out)
        }
        OutputFormat::Text => {
            if options.explain {
                writeln!(out, "# {place}: mapping {}", mapped.mapping)?;
                for trace in &mapped.trace {
                    writeln!(
                        out,
                        "{:<48} <- {:<28} {}{}",
                        trace.target,
                        trace.rule,
                        trace.location,
                        trace
                            .source
                            .as_deref()
                            .map(|s| format!("  from {s}"))
                            .unwrap_or_default()
                    )?;
                }
            }
            match &mapped.document {
                Some(document) if !options.explain => {
                    out.write_all(&crate::json_text::to_vec(document))?;
                    writeln!(out)
                }
                Some(_) => Ok(()),
                None => {
                    writeln!(err, "{place}: NOT MAPPED")?;
                    for issue in &mapped.issues {
                        writeln!(
                            err,
                            "  {}  [{}]  {}",
                            issue.pointer, issue.rule, issue.message
                        )?;
                    }
                    Ok(())
                }
            }
        }
    }
}

/// Every rule id and every target field the plan can write, per direction.
fn coverage_targets(plan: &MappingPlan) -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(rules: &[Rule], ids: &mut BTreeSet<String>) {
        for rule in rules {
            ids.insert(rule.id.clone());
            match &rule.shape {
                Shape::Field => {}
                Shape::Each(nested) | Shape::Single(nested) => walk(nested, ids),
                Shape::Group(group) => {
                    walk(&group.group_rules, ids);
                    walk(&group.item_rules, ids);
                }
            }
        }
    }
    let mut ids = BTreeSet::new();
    walk(&plan.rules, &mut ids);
    let fields = plan
        .rules
        .iter()
        .filter_map(|r| r.kanta.as_ref().map(|k| k.text.clone()))
        .collect();
    (ids, fields)
}

/// One fixture pair: `fixtures/<name>.apotti.json` ⇄ `fixtures/<name>.kanta.json`.
#[derive(Debug)]
pub struct FixtureResult {
    /// Fixture name.
    pub name: String,
    /// Differences or errors; empty when it passed.
    pub problems: Vec<String>,
}

/// The whole fixture run.
#[derive(Debug, Default)]
pub struct FixtureReport {
    /// Per fixture.
    pub results: Vec<FixtureResult>,
    /// Per mapping: rules no fixture exercised.
    pub unexercised_rules: BTreeMap<String, Vec<String>>,
    /// Per mapping: target fields no fixture produced.
    pub unexercised_fields: BTreeMap<String, Vec<String>>,
}

/// Runs the fixture pairs under `dir` (`mappings/fixtures`): each `.apotti.json` must map
/// forward to its `.kanta.json`, and each `.kanta.json` back to `.apotti.json` (when an
/// `.import.json` exists, back to that instead, for pairs whose forward direction loses data).
/// The context of a fixture is `.context.json` beside it (year, crosswalk, values) or the
/// defaults. With `bless`, a backward output that differs is written as the `.import.json`
/// (review it: it must differ from `.apotti.json` only in fields the mapping declares lossy).
///
/// # Errors
/// When the folder cannot be read.
pub fn run_fixtures(
    profiles: &ProfileRegistry,
    mappings: &MappingSet,
    dir: &Path,
    bless: bool,
) -> io::Result<FixtureReport> {
    let mut report = FixtureReport::default();
    let mut exercised_rules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut exercised_fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".apotti.json"))
        .collect();
    names.sort();
    for apotti_path in names {
        let stem = apotti_path
            .to_string_lossy()
            .trim_end_matches(".apotti.json")
            .to_owned();
        let name = Path::new(&stem)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut problems = Vec::new();
        let read = |path: &str| -> Result<Value, String> {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
        };
        let pair = (
            read(&format!("{stem}.apotti.json")),
            read(&format!("{stem}.kanta.json")),
        );
        let (apotti, kanta) = match pair {
            (Ok(a), Ok(k)) => (a, k),
            (a, k) => {
                problems.extend(a.err());
                problems.extend(k.err());
                report.results.push(FixtureResult { name, problems });
                continue;
            }
        };
        let settings = read(&format!("{stem}.context.json")).unwrap_or(Value::Null);
        let expected_import =
            read(&format!("{stem}.import.json")).unwrap_or_else(|_| apotti.clone());
        let year = settings
            .get("year")
            .and_then(Value::as_i64)
            .and_then(|y| i16::try_from(y).ok())
            .unwrap_or(2026);
        let make_context = || {
            let mut context = LocalContext::new("1.2.246.10.0", year);
            if let Some(values) = settings.get("values").and_then(Value::as_object) {
                for (key, value) in values {
                    context.set(key, value.clone());
                }
            }
            if let Some(known) = settings.get("crosswalk").and_then(Value::as_array) {
                for entry in known {
                    if let (Some(kind), Some(id), Some(oid)) = (
                        entry.get("kind").and_then(Value::as_str),
                        entry.get("id").and_then(Value::as_str),
                        entry.get("oid").and_then(Value::as_str),
                    ) {
                        context.remember(kind, id, oid);
                    }
                }
            }
            context
        };
        for (direction, input, expected) in [
            (Direction::Forward, &apotti, &kanta),
            (Direction::Backward, &kanta, &expected_import),
        ] {
            let mut context = make_context();
            let plan = profiles
                .select(input)
                .ok()
                .and_then(|p| mappings.plan_for(direction, p.id()));
            let Some(plan) = plan else {
                problems.push(format!("{direction:?}: no mapping for this record"));
                continue;
            };
            context.prepare(plan, input, direction);
            if let Some(values) = settings.get("values").and_then(Value::as_object) {
                for (key, value) in values {
                    context.set(key, value.clone());
                }
            }
            let mapped = mappings.map_record(profiles, input, direction, &context, true);
            let rules = exercised_rules.entry(plan.header.id.clone()).or_default();
            let fields = exercised_fields.entry(plan.header.id.clone()).or_default();
            for trace in &mapped.trace {
                rules.insert(trace.rule.clone());
                if direction == Direction::Forward {
                    fields.insert(strip_indices(&trace.target));
                }
            }
            match &mapped.document {
                Some(document) if document == expected => {}
                Some(document) if bless && direction == Direction::Backward => {
                    let text = serde_json::to_string_pretty(document)?;
                    std::fs::write(format!("{stem}.import.json"), text + "\n")?;
                }
                Some(document) => problems.push(format!(
                    "{direction:?}: output differs from the fixture: {}",
                    first_difference(expected, document, "")
                )),
                None => problems.push(format!(
                    "{direction:?}: not mapped: {}",
                    mapped
                        .issues
                        .iter()
                        .map(|i| format!("{} [{}] {}", i.pointer, i.rule, i.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
            }
        }
        report.results.push(FixtureResult { name, problems });
    }
    for plan in &mappings.plans {
        let (ids, fields) = coverage_targets(plan);
        let done_rules = exercised_rules
            .get(&plan.header.id)
            .cloned()
            .unwrap_or_default();
        let done_fields = exercised_fields
            .get(&plan.header.id)
            .cloned()
            .unwrap_or_default();
        report.unexercised_rules.insert(
            plan.header.id.clone(),
            ids.difference(&done_rules).cloned().collect(),
        );
        report.unexercised_fields.insert(
            plan.header.id.clone(),
            fields
                .into_iter()
                .filter(|f| {
                    !done_fields
                        .iter()
                        .any(|d| d == f || d.starts_with(&format!("{f}/")))
                })
                .collect(),
        );
    }
    Ok(report)
}

/// `/body/visit/measurements/0/items/3/value` → `/body/visit/measurements/items/value`.
fn strip_indices(pointer: &str) -> String {
    pointer
        .split('/')
        .filter(|s| s.parse::<usize>().is_err())
        .collect::<Vec<_>>()
        .join("/")
}

/// The first place two JSON values differ, for a readable failure.
#[must_use]
pub fn first_difference(expected: &Value, actual: &Value, at: &str) -> String {
    match (expected, actual) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{at}/{key}");
                match b.get(key) {
                    Some(other) if other == value => {}
                    Some(other) => return first_difference(value, other, &here),
                    None => return format!("{here} is missing"),
                }
            }
            for key in b.keys() {
                if !a.contains_key(key) {
                    return format!("{at}/{key} is not expected");
                }
            }
            format!("{at} differs")
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    return first_difference(x, y, &format!("{at}/{index}"));
                }
            }
            format!("{at} differs")
        }
        _ => format!("{at}: expected {expected}, got {actual}"),
    }
}
