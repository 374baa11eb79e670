//! The suite against a gateway that requires bearer tokens from a real OpenID Provider (the
//! npm `oidc-provider` the gateway's own tests start): with an integrator's token every
//! gateway case passes; without a token the run does not pass.

mod common;

#[path = "../../gateway/tests/common/oidc.rs"]
mod oidc;

use conformance::cases::{Suite, Target};
use conformance::targets::gateway::GatewayOptions;
use conformance::targets::{self, RunOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_against_a_gateway_that_requires_tokens() {
    let keys = tempfile::tempdir().expect("temp dir");
    let Some(provider) = oidc::OidcProvider::start(keys.path(), &["key-1"], &[]) else {
        return;
    };
    let issuer = provider.issuer.clone();
    let gateway = common::gateway(move |config| {
        config.auth.issuer = Some(issuer);
        config.auth.audience = Some(oidc::AUDIENCE.to_owned());
    })
    .await;
    let suite = Suite::load().expect("cases");

    let token = provider
        .token("integrator", Some("integrator"), oidc::AUDIENCE)
        .await;
    let with_token = targets::gateway::run(
        &suite,
        &GatewayOptions {
            url: gateway.url.clone(),
            bearer_token: Some(token),
        },
        &RunOptions::default(),
    )
    .await
    .expect("run");
    let mut summary = Vec::new();
    with_token.write_summary(&mut summary).expect("summary");
    assert_eq!(
        (with_token.exit_code(), with_token.totals.passed),
        (0, suite.for_target(Target::Gateway).count()),
        "{}",
        String::from_utf8_lossy(&summary)
    );

    let without = targets::gateway::run(
        &suite,
        &GatewayOptions {
            url: gateway.url.clone(),
            bearer_token: None,
        },
        &RunOptions::default(),
    )
    .await
    .expect("run");
    assert_ne!(without.exit_code(), 0);
    assert!(without.totals.failed + without.totals.errored > 0);
}
