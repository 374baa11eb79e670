//! Validation speed per record type: on an already-parsed record, from bytes, and the bare
//! `serde_json` parse-and-serialize of the same bytes for scale.
//!
//! `cargo bench --bench validation`; the README lists the figures.

use std::fs;
use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::Value;

const TYPES: [&str; 6] = [
    "apotti/SOSKU_DECISION",
    "apotti/SOSKU_PLAN",
    "apotti/SOSKU_VISIT",
    "kanta/PAATOS_SOSKU",
    "kanta/ASIAKASSUUNNITELMA",
    "kanta/ASIAKASKERTOMUS",
];

/// The first valid example of a profile, compact.
fn example(profile: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples")
        .join(profile)
        .join("valid");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("examples")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let value: Value = serde_json::from_slice(&fs::read(&files[0]).expect("read")).expect("json");
    serde_json::to_vec(&value).expect("serialize")
}

fn bench(c: &mut Criterion) {
    let registry = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
    for id in TYPES {
        let bytes = example(id);
        let record: Value = serde_json::from_slice(&bytes).expect("json");
        assert!(
            registry.validate(&record, None).is_valid(),
            "{id} example must be valid"
        );
        let mut group = c.benchmark_group(id);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("validate_parsed ({} B)", bytes.len()), |b| {
            b.iter(|| black_box(registry.validate(black_box(&record), None)));
        });
        group.bench_function("validate_from_bytes", |b| {
            b.iter(|| {
                let record: Value = serde_json::from_slice(black_box(&bytes)).expect("json");
                black_box(registry.validate(&record, None))
            });
        });
        group.bench_function("serde_parse_and_serialize", |b| {
            b.iter(|| {
                let record: Value = serde_json::from_slice(black_box(&bytes)).expect("json");
                black_box(serde_json::to_vec(&record).expect("serialize"))
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
