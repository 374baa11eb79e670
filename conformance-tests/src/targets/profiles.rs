//! The `profiles` cases, in process: the parts of the contract no HTTP target can be asked
//! about (the batch envelope, the import messages), checked against the suite's profiles.
//! It is also how a reader sees that the suite and the profiles it ships agree.

use std::sync::Arc;

use crate::cases::{Suite, Target};
use crate::report::Report;
use crate::runner::{Executor, new_run_number};
use crate::targets::{
    RunOptions, embedded_profile_stamps, embedded_profiles, new_report, run_cases,
};

/// Runs the `profiles` cases.
///
/// # Errors
/// When the embedded profiles do not compile.
pub async fn run(suite: &Suite, options: &RunOptions) -> anyhow::Result<Report> {
    let registry = embedded_profiles()?;
    let run = new_run_number();
    let mut report = new_report(
        suite,
        "profiles",
        None,
        run,
        "the suite's embedded profiles",
    );
    report.profiles = embedded_profile_stamps(&registry);
    let executor = Executor::Profiles(Arc::new(registry));
    run_cases(suite, Target::Profiles, executor, run, options, &mut report).await;
    Ok(report)
}
