//! A gateway at a URL (ours or another implementation of the same HTTP API): the exchange
//! cases over HTTP. The report names the profile and mapping hashes the gateway itself
//! publishes at `/metadata`, so a result always says which versions it was made against.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::cases::{Suite, Target};
use crate::report::{Report, Stamp};
use crate::runner::{Executor, HttpTarget, error_chain, new_run_number};
use crate::targets::{RunOptions, new_report, run_cases};

/// How to reach the gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// A bearer token to send with every request.
    pub bearer_token: Option<String>,
}

/// Runs the gateway cases.
///
/// # Errors
/// When the HTTP client cannot be built (a token a header cannot carry).
pub async fn run(
    suite: &Suite,
    gateway: &GatewayOptions,
    options: &RunOptions,
) -> anyhow::Result<Report> {
    let base = gateway.url.trim_end_matches('/').to_owned();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
    if let Some(token) = &gateway.bearer_token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("--bearer-token has characters a header cannot carry")?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    let client = builder.build().context("cannot build the HTTP client")?;
    let bare = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")?;
    let run = new_run_number();
    let mut report = new_report(
        suite,
        "gateway",
        Some(base.clone()),
        run,
        "the gateway's /metadata",
    );
    match metadata(&client, &base).await {
        Ok((profiles, mappings)) => {
            report.profiles = profiles;
            report.mappings = mappings;
        }
        Err(problem) => report.problems.push(problem),
    }
    let target = HttpTarget {
        base,
        client,
        bare,
        client_certificate: false,
    };
    run_cases(
        suite,
        Target::Gateway,
        Executor::Gateway(target),
        run,
        options,
        &mut report,
    )
    .await;
    Ok(report)
}

async fn metadata(
    client: &reqwest::Client,
    base: &str,
) -> Result<(Vec<Stamp>, Vec<Stamp>), String> {
    let url = format!("{base}/metadata");
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("cannot read {url}: {}", error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("{url} is not JSON: {e}"))?;
    let stamps = |key: &str| -> Vec<Stamp> {
        body.get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        Some(Stamp {
                            id: item.get("id")?.as_str()?.to_owned(),
                            hash: item.get("hash")?.as_str()?.to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (profiles, mappings) = (stamps("profiles"), stamps("mappings"));
    if profiles.is_empty() {
        return Err(format!("{url} names no profiles with hashes"));
    }
    Ok((profiles, mappings))
}
