//! The suite passes fully against our own gateway and reference archive, and a second run
//! against the same gateway and archive passes too (fresh identifiers per run).

mod common;

use conformance::archive::Faults;
use conformance::cases::{Suite, Target};
use conformance::report::{Report, Status};
use conformance::targets::archive::ArchiveOptions;
use conformance::targets::gateway::GatewayOptions;
use conformance::targets::{self, RunOptions};

fn assert_all_passed(report: &Report) {
    let mut text = Vec::new();
    report.write_summary(&mut text).expect("summary");
    let text = String::from_utf8_lossy(&text);
    assert!(
        report.exit_code() == 0 && report.totals.failed == 0 && report.totals.errored == 0,
        "{text}"
    );
    assert!(report.totals.passed > 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_our_gateway_twice() {
    let suite = Suite::load().expect("cases");
    let gateway = common::gateway(|_| {}).await;
    let options = GatewayOptions {
        url: gateway.url.clone(),
        bearer_token: None,
    };
    let first = targets::gateway::run(&suite, &options, &RunOptions::default())
        .await
        .expect("run");
    assert_all_passed(&first);
    assert_eq!(
        first.totals.passed,
        suite.for_target(Target::Gateway).count()
    );
    assert!(!first.mappings.is_empty() && !first.profiles.is_empty());
    let second = targets::gateway::run(&suite, &options, &RunOptions::default())
        .await
        .expect("run");
    assert_all_passed(&second);
    assert_ne!(first.run_id, second.run_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_our_archive_over_http_twice() {
    let suite = Suite::load().expect("cases");
    let archive = common::archive(Faults::default()).await;
    let options = ArchiveOptions {
        url: archive.url.clone(),
        ..ArchiveOptions::default()
    };
    for _ in 0..2 {
        let report = targets::archive::run(&suite, &options, &RunOptions::default())
            .await
            .expect("run");
        assert_all_passed(&report);
        // Only the cases that need a client certificate are skipped over plain HTTP.
        let skipped = report.ids(Status::Skipped);
        assert!(
            skipped.iter().all(|id| id.contains("certificate")),
            "{skipped:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_our_archive_over_mutual_tls() {
    let suite = Suite::load().expect("cases");
    let archive = common::mtls_archive().await;
    let options = ArchiveOptions {
        url: archive.url.clone(),
        client_cert: Some(archive.client_cert.clone()),
        client_key: Some(archive.client_key.clone()),
        ca_cert: Some(archive.ca_cert.clone()),
        bearer_token: None,
    };
    let report = targets::archive::run(&suite, &options, &RunOptions::default())
        .await
        .expect("run");
    assert_all_passed(&report);
    assert_eq!(
        report.totals.skipped, 0,
        "nothing skipped with a client certificate"
    );
    assert_eq!(
        report.totals.passed,
        suite.for_target(Target::Archive).count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_cases_pass() {
    let suite = Suite::load().expect("cases");
    let report = targets::profiles::run(&suite, &RunOptions::default())
        .await
        .expect("run");
    assert_all_passed(&report);
}
