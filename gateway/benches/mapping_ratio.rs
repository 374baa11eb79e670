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
use fixtures::{FIXTURES, bare_step, context_for, plan_of, read, whole_path};

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

        let run_whole = || {
            black_box(whole_path(
                &profiles,
                &mappings,
                black_box(&bytes),
                Direction::Forward,
                &context,
            ));
        };
        let run_bare = || {
            black_box(bare_step(black_box(&bytes)));
        };

        // Warm caches, the allocator and the CPU's clock before the first round counts.
        let warm_until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < warm_until {
            run_whole();
            run_bare();
        }
        let measured: Vec<Round> = (0..rounds)
            .map(|round| {
                if round % 2 == 0 {
                    let whole = per_record(batch, run_whole);
                    let bare = per_record(batch, run_bare);
                    Round { whole, bare }
                } else {
                    let bare = per_record(batch, run_bare);
                    let whole = per_record(batch, run_whole);
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
    let ratio = Spread::of(rounds.iter().map(|round| round.ratio()));
    let whole = Spread::of(rounds.iter().map(|round| micros(round.whole)));
    let bare = Spread::of(rounds.iter().map(|round| micros(round.bare)));
    println!(
        "{kind} ({bytes} B), whole path forward against bare serde_json parse and serialize, \
         {} paired rounds of {batch} records each:",
        rounds.len()
    );
    println!(
        "  ratio        median {:.2}x  (quartiles {:.2} - {:.2}; least {:.2}, most {:.2})",
        ratio.median, ratio.lower_quartile, ratio.upper_quartile, ratio.least, ratio.most,
    );
    println!(
        "  whole path   median {:.2} us = {:.0} records/s  (quartiles {:.2} - {:.2} us; fastest {:.2} us)",
        whole.median,
        1e6 / whole.median,
        whole.lower_quartile,
        whole.upper_quartile,
        whole.least,
    );
    println!(
        "  bare step    median {:.2} us  (quartiles {:.2} - {:.2} us; fastest {:.2} us)",
        bare.median, bare.lower_quartile, bare.upper_quartile, bare.least,
    );
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// How a series of measurements spreads: least, quartiles (nearest rank), median, most.
#[derive(Debug, Clone, Copy)]
struct Spread {
    least: f64,
    lower_quartile: f64,
    median: f64,
    upper_quartile: f64,
    most: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = values.collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let last = sorted.len().saturating_sub(1);
            // `q` is in 0..=1, so the rank is in 0..=last.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let rank = ((last as f64) * q).round() as usize;
            sorted.get(rank.min(last)).copied().unwrap_or(f64::NAN)
        };
        Self {
            least: at(0.0),
            lower_quartile: at(0.25),
            median: at(0.5),
            upper_quartile: at(0.75),
            most: at(1.0),
        }
    }
}

fn env_number(name: &str, default: u32) -> u32 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {text:?}")),
        Err(_) => default,
    }
}
