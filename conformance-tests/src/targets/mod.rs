//! The four things the suite runs against, each setting up its run and its report header:
//! vendor files ([`files`]), the suite's profiles in process ([`profiles`]), a gateway at a URL
//! ([`gateway`]) and an archive at a URL ([`archive`]).

pub mod archive;
pub mod files;
pub mod gateway;
pub mod profiles;

use ::gateway::profiles::{ProfileRegistry, ProfileSource};

use crate::cases::{SUITE_VERSION, Suite, Target};
use crate::report::{Report, Stamp, Totals};
use crate::runner::{Executor, Runner};

/// Options every run shares.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Cases at a time.
    pub jobs: usize,
    /// Progress bar on standard error.
    pub progress: bool,
    /// Only cases whose id contains this.
    pub filter: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            progress: false,
            filter: None,
        }
    }
}

/// An empty report for a run.
#[must_use]
pub fn new_report(
    suite: &Suite,
    target: &str,
    url: Option<String>,
    run: u32,
    stamps_from: &str,
) -> Report {
    Report {
        suite: "sosku-conformance".to_owned(),
        suite_version: SUITE_VERSION.to_owned(),
        cases_digest: suite.digest.clone(),
        target: target.to_owned(),
        url,
        run_id: format!("run-{run}"),
        started_at: ::gateway::exchange::now_utc(),
        stamps_from: stamps_from.to_owned(),
        profiles: Vec::new(),
        mappings: Vec::new(),
        problems: Vec::new(),
        totals: Totals::default(),
        results: Vec::new(),
    }
}

/// The hashes of the suite's own profiles (compiled into this binary).
#[must_use]
pub fn embedded_profile_stamps(registry: &ProfileRegistry) -> Vec<Stamp> {
    registry
        .profiles()
        .map(|p| Stamp {
            id: p.id().to_owned(),
            hash: p.stamp().hash.clone(),
        })
        .collect()
}

/// The suite's profiles.
///
/// # Errors
/// When they do not compile (a broken build).
pub fn embedded_profiles() -> anyhow::Result<ProfileRegistry> {
    Ok(ProfileRegistry::load(&ProfileSource::Embedded)?)
}

/// Runs the cases of `target` with `executor` into `report`.
pub async fn run_cases(
    suite: &Suite,
    target: Target,
    executor: Executor,
    run: u32,
    options: &RunOptions,
    report: &mut Report,
) {
    let cases: Vec<_> = suite
        .cases
        .iter()
        .enumerate()
        .filter(|(_, case)| case.target == target)
        .filter(|(_, case)| {
            options
                .filter
                .as_deref()
                .is_none_or(|filter| case.id.contains(filter))
        })
        .collect();
    let runner = Runner {
        executor,
        run,
        jobs: options.jobs,
        progress: options.progress,
    };
    report.results = runner.run(cases).await;
    report.tally();
}
