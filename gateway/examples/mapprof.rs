//! Profiling aid. Wall-clock figures on a shared machine are noisy, instruction counts are not:
//! `mapprof <decision|plan|visit> <step> <iterations>` runs one step of `benches/mapping.rs` a
//! fixed number of times (fwd, bwd: the engine; wfwd, wbwd: the whole path from bytes to bytes;
//! serde: bare parse and serialize; vsrc, vtgt: validating the source or target example), for
//! `valgrind --tool=callgrind` or `perf stat -e instructions` (run it with 0 iterations too
//! and subtract the set-up). `mapprof dump` prints every fixture and profile example mapped
//! both ways, with issues and explanations, for comparing the output of two builds.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::hint::black_box;
use std::path::Path;

use gateway::mapping::context::LocalContext;
use gateway::mapping::engine::{self, Direction};
use gateway::mapping::{MappingSet, MappingSource};
use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::Value;

#[path = "../benches/support/mapping_fixtures.rs"]
mod fixtures;
use fixtures::{bare_step, context_for, fixture_of, plan_of, read, whole_path};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "dump" {
        dump();
        return;
    }
    let kind = args[1].as_str();
    let step = args[2].as_str();
    let n: usize = args[3].parse().unwrap();
    let fixture = fixture_of(kind);
    let profiles = ProfileRegistry::load(&ProfileSource::Embedded).unwrap();
    let mappings = MappingSet::load(&MappingSource::Embedded, &profiles).unwrap();
    let apotti_bytes = read(&format!("{fixture}.apotti.json"));
    let kanta_bytes = read(&format!("{fixture}.kanta.json"));
    let apotti: Value = serde_json::from_slice(&apotti_bytes).unwrap();
    let kanta: Value = serde_json::from_slice(&kanta_bytes).unwrap();
    let plan = plan_of(&mappings, kind);
    let fctx = context_for(plan, &apotti, Direction::Forward);
    let bctx = context_for(plan, &kanta, Direction::Backward);
    let src = profiles.select(&apotti).unwrap();
    let tgt = profiles.select(&kanta).unwrap();
    for _ in 0..n {
        match step {
            "fwd" => {
                black_box(engine::run(
                    &mappings,
                    plan,
                    black_box(&apotti),
                    &fctx,
                    Direction::Forward,
                    false,
                ));
            }
            "bwd" => {
                black_box(engine::run(
                    &mappings,
                    plan,
                    black_box(&kanta),
                    &bctx,
                    Direction::Backward,
                    false,
                ));
            }
            "wfwd" | "wbwd" => {
                let (bytes, dir, ctx) = if step == "wfwd" {
                    (&apotti_bytes, Direction::Forward, &fctx)
                } else {
                    (&kanta_bytes, Direction::Backward, &bctx)
                };
                black_box(whole_path(&profiles, &mappings, black_box(bytes), dir, ctx));
            }
            "serde" => {
                black_box(bare_step(black_box(&apotti_bytes)));
            }
            "vsrc" => {
                black_box(profiles.validate_with(src, black_box(&apotti)));
            }
            "vtgt" => {
                black_box(profiles.validate_with(tgt, black_box(&kanta)));
            }
            _ => panic!("step"),
        }
    }
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json")
            && !path.to_string_lossy().ends_with(".context.json")
        {
            out.push(path);
        }
    }
}

fn dump() {
    let profiles = ProfileRegistry::load(&ProfileSource::Embedded).unwrap();
    let mappings = MappingSet::load(&MappingSource::Embedded, &profiles).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all = Vec::new();
    files(&root.join("mappings/fixtures"), &mut all);
    files(&root.join("profiles/examples"), &mut all);
    for path in all {
        let Ok(record) = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()) else {
            continue;
        };
        for direction in [Direction::Forward, Direction::Backward] {
            for explain in [false, true] {
                let mut context = LocalContext::new("1.2.246.10.0", 2026);
                context.set("msg_dttm", Value::String("2026-01-01 00:00:00".into()));
                if let Ok(profile) = profiles.select(&record)
                    && let Some(plan) = mappings.plan_for(direction, profile.id())
                {
                    context.prepare(plan, &record, direction);
                }
                let mapped = mappings.map_record(&profiles, &record, direction, &context, explain);
                println!(
                    "== {} {direction:?} {explain}",
                    path.strip_prefix(&root).unwrap().display()
                );
                println!("{}", serde_json::to_string(&mapped.document).unwrap());
                println!("{:?}", mapped.issues);
                println!("{:?}", mapped.trace);
            }
        }
    }
}
