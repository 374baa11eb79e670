//! Mapping speed per record type and direction, and the whole in-process path from bytes to
//! bytes (parse → validate source → map → validate target → serialize), next to a bare
//! `serde_json` parse-and-serialize of the same bytes. The whole path parses and writes as the
//! gateway does ([`gateway::input::parse_line`], [`gateway::json_tree::Output::write`]).
//!
//! `cargo bench --bench mapping`; the README lists the figures.

use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gateway::mapping::engine::{self, Direction};
use gateway::mapping::{MappingSet, MappingSource};
use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::Value;

#[path = "support/mapping_fixtures.rs"]
mod fixtures;
use fixtures::{FIXTURES, bare_step, context_for, plan_of, read, whole_path};

fn bench(c: &mut Criterion) {
    let profiles = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
    let mappings = MappingSet::load(&MappingSource::Embedded, &profiles).expect("mappings");
    for (kind, fixture) in FIXTURES {
        let apotti_bytes = read(&format!("{fixture}.apotti.json"));
        let kanta_bytes = read(&format!("{fixture}.kanta.json"));
        let apotti: Value = serde_json::from_slice(&apotti_bytes).expect("json");
        let kanta: Value = serde_json::from_slice(&kanta_bytes).expect("json");
        let forward_plan = plan_of(&mappings, kind);
        let forward_context = context_for(forward_plan, &apotti, Direction::Forward);
        let backward_context = context_for(forward_plan, &kanta, Direction::Backward);

        let mut group = c.benchmark_group(kind);
        group.throughput(Throughput::Elements(1));
        group.bench_function("map_forward", |b| {
            b.iter(|| {
                black_box(engine::run(
                    &mappings,
                    forward_plan,
                    black_box(&apotti),
                    &forward_context,
                    Direction::Forward,
                    false,
                ))
            });
        });
        group.bench_function("map_backward", |b| {
            b.iter(|| {
                black_box(engine::run(
                    &mappings,
                    forward_plan,
                    black_box(&kanta),
                    &backward_context,
                    Direction::Backward,
                    false,
                ))
            });
        });
        group.bench_function(
            format!("whole_path_forward ({} B)", apotti_bytes.len()),
            |b| {
                b.iter(|| {
                    whole_path(
                        &profiles,
                        &mappings,
                        black_box(&apotti_bytes),
                        Direction::Forward,
                        &forward_context,
                    )
                });
            },
        );
        group.bench_function("whole_path_backward", |b| {
            b.iter(|| {
                whole_path(
                    &profiles,
                    &mappings,
                    black_box(&kanta_bytes),
                    Direction::Backward,
                    &backward_context,
                )
            });
        });
        group.bench_function("serde_parse_and_serialize", |b| {
            b.iter(|| bare_step(black_box(&apotti_bytes)));
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
