//! What the mapping benchmarks share: the fixtures of the three record types, read as compact
//! bytes, and the whole path's parse and write done as the gateway does them.

use std::path::Path;

use gateway::mapping::MappingSet;
use gateway::mapping::context::LocalContext;
use gateway::mapping::engine::Direction;
use gateway::mapping::plan::MappingPlan;
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

/// The text of a mapped document, written as the gateway writes it.
pub fn text(document: &gateway::json_tree::Output<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    document.write(&mut out);
    out
}

/// A record parsed as the gateway parses an NDJSON line.
pub fn parse(bytes: &[u8]) -> Value {
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
