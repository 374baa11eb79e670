//! The whole path's cost against a bare `serde_json` parse-and-serialize of the same bytes,
//! timed in pairs so that both see the same machine.
//!
//! Why: issue 3's second target is a ratio (the whole path at most 2.5× the bare step). On a
//! shared machine whose speed changes by a third or more from one minute to the next, two
//! criterion benchmarks run a minute apart give a ratio that says as much about the machine as
//! about the code. Here each round times a batch of whole paths and a batch of bare steps back
//! to back (in turn first and second), a few milliseconds apart, and the ratio is taken per
//! round: the report gives its median and quartiles, with the times of both steps.
//!
//! `cargo bench --bench mapping_ratio [-- decision plan visit]`; `RATIO_ROUNDS` (default 200)
//! and `RATIO_BATCH` (records per batch, default 500) change the run's length.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use gateway::mapping::engine::Direction;
use gateway::mapping::{MappingSet, MappingSource};
use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::Value;

#[path = "support/mapping_fixtures.rs"]
mod fixtures;
use fixtures::{FIXTURES, context_for, parse, plan_of, read, text};

/// Per-record times of one round's two batches.
#[derive(Debug, Clone, Copy)]
struct Round {
    whole: Duration,
    bare: Duration,
}

impl Round {
    fn ratio(self) -> f64 {
        self.whole.as_secs_f64() / self.bare.as_secs_f64()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; other words choose record types.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let rounds = env_number("RATIO_ROUNDS", 200);
    let batch = env_number("RATIO_BATCH", 500);

    let profiles = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
    let mappings = MappingSet::load(&MappingSource::Embedded, &profiles).expect("mappings");
    for (kind, fixture) in FIXTURES {
        if !chosen.is_empty() && !chosen.iter().any(|word| word == kind) {
            continue;
        }
        let bytes = read(&format!("{fixture}.apotti.json"));
        let record: Value = serde_json::from_slice(&bytes).expect("json");
        let context = context_for(plan_of(&mappings, kind), &record, Direction::Forward);

        let whole_path = || {
            let record = parse(black_box(&bytes));
            let mapped = mappings.map_record_as(
                &profiles,
                &record,
                Direction::Forward,
                &context,
                false,
                text,
            );
            black_box(mapped.document.expect("maps"));
        };
        let bare = || {
            let record: Value = serde_json::from_slice(black_box(&bytes)).expect("json");
            black_box(serde_json::to_vec(&record).expect("serialize"));
        };

        // Warm caches, the allocator and the CPU's clock before the first round counts.
        let warm_until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < warm_until {
            whole_path();
            bare();
        }
        let measured: Vec<Round> = (0..rounds)
            .map(|round| {
                if round % 2 == 0 {
                    let whole = per_record(batch, whole_path);
                    let bare = per_record(batch, bare);
                    Round { whole, bare }
                } else {
                    let bare = per_record(batch, bare);
                    let whole = per_record(batch, whole_path);
                    Round { whole, bare }
                }
            })
            .collect();
        report(kind, bytes.len(), batch, &measured);
    }
}

/// The time per call of `step`, run `batch` times.
fn per_record(batch: u32, mut step: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..batch {
        step();
    }
    started.elapsed() / batch
}

fn report(kind: &str, bytes: usize, batch: u32, rounds: &[Round]) {
    let mut ratios: Vec<f64> = rounds.iter().map(|round| round.ratio()).collect();
    let mut whole: Vec<f64> = rounds.iter().map(|r| micros(r.whole)).collect();
    let mut bare: Vec<f64> = rounds.iter().map(|r| micros(r.bare)).collect();
    for values in [&mut ratios, &mut whole, &mut bare] {
        values.sort_by(f64::total_cmp);
    }
    let whole_median = quantile(&whole, 0.5);
    println!(
        "{kind} ({bytes} B), whole path forward against bare serde_json parse and serialize, \
         {} paired rounds of {batch} records each:",
        rounds.len()
    );
    println!(
        "  ratio        median {:.2}x  (quartiles {:.2} - {:.2}; least {:.2}, most {:.2})",
        quantile(&ratios, 0.5),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
        quantile(&ratios, 0.0),
        quantile(&ratios, 1.0),
    );
    println!(
        "  whole path   median {whole_median:.2} us = {:.0} records/s  (quartiles {:.2} - {:.2} us; fastest {:.2} us)",
        1e6 / whole_median,
        quantile(&whole, 0.25),
        quantile(&whole, 0.75),
        quantile(&whole, 0.0),
    );
    println!(
        "  bare step    median {:.2} us  (quartiles {:.2} - {:.2} us; fastest {:.2} us)",
        quantile(&bare, 0.5),
        quantile(&bare, 0.25),
        quantile(&bare, 0.75),
        quantile(&bare, 0.0),
    );
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// The `q` quantile of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    // `q` is in 0..=1, so the rank is in 0..=last.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((last as f64) * q).round() as usize;
    sorted.get(rank.min(last)).copied().unwrap_or(f64::NAN)
}

fn env_number(name: &str, default: u32) -> u32 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {text:?}")),
        Err(_) => default,
    }
}
