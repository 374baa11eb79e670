//! What the mapping benchmarks and `examples/mapprof.rs` share: the fixtures of the three record
//! types, read as compact bytes, and the two steps they time, so that every tool times the
//! same work: the whole path as the gateway runs it, and the bare `serde_json` step it is
//! compared with.

// Each tool that includes this file uses a part of it.
#![allow(dead_code)]

use std::path::Path;

use gateway::mapping::MappingSet;
use gateway::mapping::context::LocalContext;
use gateway::mapping::engine::Direction;
use gateway::mapping::plan::MappingPlan;
use gateway::profiles::ProfileRegistry;
use serde_json::Value;

/// Record type and the fixture pair (`mappings/fixtures/<name>.{apotti,kanta}.json`) each
/// benchmark maps: a typical record of each type.
pub const FIXTURES: [(&str, &str); 3] = [
    ("decision", "decision-positive-approved"),
    ("plan", "plan-active-goals-methods-participants"),
    ("visit", "visit-remote-1950-char-line-six-answers"),
];

/// A fixture file's record as compact JSON text (as an NDJSON line carries it).
pub fn read(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mappings/fixtures")
        .join(name);
    let value: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("json");
    serde_json::to_vec(&value).expect("serialize")
}

/// The fixture name of a record type (`decision`, `plan`, `visit`).
pub fn fixture_of(kind: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(known, _)| *known == kind)
        .map(|(_, fixture)| *fixture)
        .unwrap_or_else(|| panic!("no fixture for record type {kind:?}"))
}

/// The whole path from bytes to bytes, as the gateway runs it: parse the line, validate the
/// source, map, validate the target, write the document's text.
pub fn whole_path(
    profiles: &ProfileRegistry,
    mappings: &MappingSet,
    bytes: &[u8],
    direction: Direction,
    context: &LocalContext,
) -> Vec<u8> {
    let record = parse(bytes);
    let mapped = mappings.map_record_as(profiles, &record, direction, context, false, text);
    mapped.document.expect("maps")
}

/// The bare step the whole path is compared with: `serde_json` parses the same bytes into a
/// `Value` and serializes it again.
pub fn bare_step(bytes: &[u8]) -> Vec<u8> {
    let record: Value = serde_json::from_slice(bytes).expect("json");
    serde_json::to_vec(&record).expect("serialize")
}

/// The text of a mapped document, written as the gateway writes it.
fn text(document: &gateway::json_tree::Output<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    document.write(&mut out);
    out
}

/// A record parsed as the gateway parses an NDJSON line.
fn parse(bytes: &[u8]) -> Value {
    match gateway::input::parse_line(bytes, false, usize::MAX) {
        Some(gateway::input::Item::Record(record)) => record,
        _ => panic!("the fixture is a record"),
    }
}

/// The mapping of a record type (named by its Apotti side: `decision`, `plan`, `visit`).
pub fn plan_of<'m>(mappings: &'m MappingSet, kind: &str) -> &'m MappingPlan {
    mappings
        .plan_for(
            Direction::Forward,
            &format!("apotti/SOSKU_{}", kind.to_uppercase()),
        )
        .expect("plan")
}

/// The context the pipeline would give `record` (allocated OIDs, version) mapped in
/// `direction`.
pub fn context_for(plan: &MappingPlan, record: &Value, direction: Direction) -> LocalContext {
    let mut context = LocalContext::new("1.2.246.10.0", 2026);
    context.prepare(plan, record, direction);
    context
}
