//! The suite can fail: deliberately broken targets each fail exactly the cases that should
//! catch them, and nothing else.
//!
//! - an archive that accepts invalid documents fails every case that expects a `422` for a
//!   document's content;
//! - an archive that archives a version again (no resend recognition, no version order) fails
//!   the resend and version-order cases;
//! - a gateway whose decision mapping drops `VALID_TO_DATE → validity.end` fails the cases that
//!   compare whole mapped documents carrying a validity end.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use conformance::archive::Faults;
use conformance::cases::{StatusSpec, Suite, Target};
use conformance::report::{Report, Status};
use conformance::targets::archive::ArchiveOptions;
use conformance::targets::gateway::GatewayOptions;
use conformance::targets::{self, RunOptions};

fn failed(report: &Report) -> BTreeSet<String> {
    assert_eq!(
        report.totals.errored,
        0,
        "{:?}",
        report.ids(Status::Errored)
    );
    report
        .ids(Status::Failed)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

async fn run_archive(faults: Faults) -> Report {
    let suite = Suite::load().expect("cases");
    let archive = common::archive(faults).await;
    let options = ArchiveOptions {
        url: archive.url.clone(),
        ..ArchiveOptions::default()
    };
    let report = targets::archive::run(&suite, &options, &RunOptions::default())
        .await
        .expect("run");
    assert_eq!(report.exit_code(), 1, "failures, not errors");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_accepts_invalid_documents_fails_the_422_cases() {
    let report = run_archive(Faults {
        accept_invalid: true,
        ..Faults::default()
    })
    .await;
    let suite = Suite::load().expect("cases");
    // Every archive case with a step that expects exactly 422 for a JSON document.
    let expected: BTreeSet<String> = suite
        .for_target(Target::Archive)
        .filter(|case| {
            case.steps.iter().any(|step| {
                matches!(step.expect.status, Some(StatusSpec::One(422)))
                    && step
                        .request
                        .as_ref()
                        .and_then(|r| r.body.as_ref())
                        .is_some_and(|b| b.text.is_none())
            })
        })
        .map(|case| case.id.clone())
        .collect();
    assert!(expected.len() > 60, "{}", expected.len());
    for id in [
        "archive.document.decision.validity-order",
        "archive.document.decision.first-version-is-set",
        "archive.document.plan.goals-over-30",
        "archive.document.visit.eurohis-score",
        "archive.api.not-a-document",
    ] {
        assert!(expected.contains(id), "{id}");
    }
    assert_eq!(failed(&report), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_stores_a_version_twice_fails_the_resend_and_order_cases() {
    let report = run_archive(Faults {
        archive_versions_again: true,
        ..Faults::default()
    })
    .await;
    let expected: BTreeSet<String> = [
        "archive.api.first-version-missing",
        "archive.api.replaces-not-the-latest",
        "archive.api.resend-earlier-version",
        "archive.api.resend-same-receipt",
        "archive.api.same-version-other-content",
        "archive.api.version-gap",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(failed(&report), expected);
}

/// Copies `mappings/` (without fixtures and broken examples) into `to`.
fn copy_mappings(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("concepts")).expect("dir");
    for entry in std::fs::read_dir(from).expect("mappings") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    for entry in std::fs::read_dir(from.join("concepts")).expect("concepts") {
        let path = entry.expect("entry").path();
        std::fs::copy(
            &path,
            to.join("concepts").join(path.file_name().expect("name")),
        )
        .expect("copy");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_mapping_drops_a_field_fails_the_mapped_output_cases() {
    let mappings = tempfile::tempdir().expect("dir");
    copy_mappings(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings"),
        mappings.path(),
    );
    let decision = mappings.path().join("decision.toml");
    let text = std::fs::read_to_string(&decision).expect("decision.toml");
    let rule =
        "[[rule]]\napotti = \"/DECISION/VALID_TO_DATE\"\nkanta = \"/body/decision/validity/end\"\n";
    assert!(text.contains(rule), "the rule to drop is in decision.toml");
    std::fs::write(&decision, text.replace(rule, "")).expect("write");

    let dir = mappings.path().to_path_buf();
    let gateway = common::gateway(move |config| config.mappings_dir = Some(dir)).await;
    let suite = Suite::load().expect("cases");
    let options = GatewayOptions {
        url: gateway.url.clone(),
        bearer_token: None,
    };
    let report = targets::gateway::run(&suite, &options, &RunOptions::default())
        .await
        .expect("run");
    assert_eq!(report.exit_code(), 1);
    let expected: BTreeSet<String> = [
        "gateway.forward.decision.positive-approved",
        "gateway.round-trip.decision-positive-approved",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(failed(&report), expected);
    // The failures name the dropped field.
    for result in report.results.iter().filter(|r| r.status == Status::Failed) {
        assert!(
            result
                .mismatches
                .iter()
                .any(|m| m.what.ends_with("/body/decision/validity/end")
                    || m.what.ends_with("/DECISION/VALID_TO_DATE")),
            "{result:?}"
        );
    }
    // The hashes in the report are those of the broken mapping, not of the shipped one.
    let shipped = targets::gateway::run(
        &suite,
        &GatewayOptions {
            url: common::gateway(|_| {}).await.url,
            bearer_token: None,
        },
        &RunOptions {
            filter: Some("gateway.translation.service".to_owned()),
            ..RunOptions::default()
        },
    )
    .await
    .expect("run");
    let hash = |r: &Report| {
        r.mappings
            .iter()
            .find(|m| m.id == "decision")
            .map(|m| m.hash.clone())
    };
    assert!(hash(&report).is_some());
    assert_ne!(hash(&report), hash(&shipped));
}
