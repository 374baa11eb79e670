//! An archive at a URL: the archive API cases (`shared/spec/archive-api.md`), sent with the
//! vendor's client certificate over mutual TLS, as a real archive requires. An archive
//! publishes no profile hashes, so the report names those of the suite's own profiles: the
//! documents the cases send were checked against exactly those.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::cases::{Suite, Target};
use crate::report::Report;
use crate::runner::{Executor, HttpTarget, new_run_number};
use crate::targets::{
    RunOptions, embedded_profile_stamps, embedded_profiles, new_report, run_cases,
};

/// How to reach the archive.
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// Base URL, e.g. `https://archive.example:8443`.
    pub url: String,
    /// The client certificate chain (PEM).
    pub client_cert: Option<PathBuf>,
    /// Its key (PEM).
    pub client_key: Option<PathBuf>,
    /// CA certificate(s) the archive's server certificate must chain to (PEM); without it the
    /// system's roots.
    pub ca_cert: Option<PathBuf>,
    /// A bearer token, where the archive asks for one.
    pub bearer_token: Option<String>,
}

/// The two clients: with the run's credentials, and without any (same CA).
///
/// # Errors
/// Names the certificate or key file that cannot be read or used.
pub fn clients(options: &ArchiveOptions) -> anyhow::Result<(reqwest::Client, reqwest::Client)> {
    let mut with = reqwest::Client::builder().timeout(Duration::from_secs(60));
    let mut without = reqwest::Client::builder().timeout(Duration::from_secs(60));
    if let Some(path) = &options.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("--ca-cert {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("--ca-cert {} is not PEM certificates", path.display()))?;
        with = with.tls_certs_only(certs.clone());
        without = without.tls_certs_only(certs);
    }
    match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem =
                std::fs::read(cert).with_context(|| format!("--client-cert {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key).with_context(|| format!("--client-key {}", key.display()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .context("--client-cert and --client-key do not make an identity")?;
            with = with.identity(identity);
        }
        (None, None) => {}
        _ => anyhow::bail!("--client-cert and --client-key go together"),
    }
    if let Some(token) = &options.bearer_token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("--bearer-token has characters a header cannot carry")?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        with = with.default_headers(headers);
    }
    Ok((
        with.build().context("cannot build the HTTP client")?,
        without.build().context("cannot build the HTTP client")?,
    ))
}

/// Runs the archive cases.
///
/// # Errors
/// When a certificate or key cannot be used, or the suite's profiles do not compile.
pub async fn run(
    suite: &Suite,
    archive: &ArchiveOptions,
    options: &RunOptions,
) -> anyhow::Result<Report> {
    let (client, bare) = clients(archive)?;
    let base = archive.url.trim_end_matches('/').to_owned();
    let run = new_run_number();
    let mut report = new_report(
        suite,
        "archive",
        Some(base.clone()),
        run,
        "the suite's embedded profiles (an archive publishes none)",
    );
    report.profiles = embedded_profile_stamps(&embedded_profiles()?);
    let target = HttpTarget {
        base,
        client,
        bare,
        client_certificate: archive.client_cert.is_some(),
    };
    run_cases(
        suite,
        Target::Archive,
        Executor::Archive(target),
        run,
        options,
        &mut report,
    )
    .await;
    Ok(report)
}
