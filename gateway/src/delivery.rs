//! Delivery from the outbox to the archive: each accepted version exactly once, in version
//! order per set, whatever the archive does meanwhile.
//!
//! The worker picks due rows (never a version whose predecessor is not delivered yet), POSTs
//! the stored document, and records the result: `201`/`200` delivered (a resend of an archived
//! version answers `200` with the same receipt, which is how "exactly once" survives a lost
//! answer); `409`/`422` final, with the archive's issues; anything else, a timeout or a refused
//! connection is tried again after an exponential back-off with jitter. The schedule is in the
//! outbox row, so pending deliveries resume after a restart. Every attempt is appended to the
//! audit log as an event of its exchange.
//!
//! Towards the archive the gateway authenticates with the organisation's client certificate
//! (mutual TLS, rustls with aws-lc-rs) against a configured CA, and a bearer token where one
//! is configured.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::audit::{Actor, AuditEntry, LoggedIssue};
use crate::config::ArchiveConfig;
use crate::exchange::{Gateway, now_utc, utc_rfc3339};
use crate::store::{Delivery, Store};

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Delivered(Value),
    Final(u16, Vec<LoggedIssue>),
    Retry(String),
}

/// Delay before attempt `attempts + 1`: `base · 2^attempts`, at most `max`, times a jitter
/// factor in 0.5–1.5 so that retries from many rows do not arrive together.
#[must_use]
pub fn backoff(attempts: i64, base: Duration, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let delay = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    delay.mul_f64(0.5 + fastrand::f64())
}

fn rfc3339_after(delay: Duration) -> String {
    utc_rfc3339(jiff::Timestamp::now() + jiff::SignedDuration::try_from(delay).unwrap_or_default())
}

async fn attempt(client: &reqwest::Client, url: &str, body: String) -> Attempt {
    let response = client
        .post(format!("{}/documents", url.trim_end_matches('/')))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            // The chain of causes says why: refused connection, timeout, or the TLS handshake
            // (an unknown CA, a certificate the archive does not accept).
            let mut reason = format!("archive not reached: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                reason.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            return Attempt::Retry(reason);
        }
    };
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    match status {
        200 | 201 => Attempt::Delivered(answer),
        409 | 422 => {
            let issues = answer["issues"]
                .as_array()
                .map(|issues| {
                    issues
                        .iter()
                        .map(|i| LoggedIssue {
                            rule: format!("archive:{}", i["code"].as_str().unwrap_or("unknown")),
                            pointer: i["path"].as_str().unwrap_or_default().to_owned(),
                            message: i["message"].as_str().unwrap_or_default().to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Attempt::Final(status, issues)
        }
        other => Attempt::Retry(format!("archive answered {other}")),
    }
}

fn event(row: &Delivery, outcome: &str, details: Value, issues: Vec<LoggedIssue>) -> AuditEntry {
    AuditEntry {
        exchange_id: row.exchange_id.clone(),
        recorded_at: now_utc(),
        event: "delivery".to_owned(),
        direction: "gateway-to-archive".to_owned(),
        actor: Actor {
            subject: "delivery-worker".to_owned(),
            client_id: None,
            role: "system".to_owned(),
        },
        source_system: None,
        record_type: None,
        client_hash: None,
        record_id: None,
        document_oid: Some(row.document_oid.clone()),
        set_oid: Some(row.set_oid.clone()),
        version: Some(row.version),
        input_digest: String::new(),
        output_digest: None,
        profiles: Vec::new(),
        mapping: None,
        outcome: outcome.to_owned(),
        issues,
        delivery: Some(outcome.to_owned()),
        details: Some(details),
    }
}

/// The HTTP client for the archive: timeout, CA, client certificate, bearer token.
///
/// # Errors
/// Names the certificate or key file that cannot be read or used.
pub fn archive_client(config: &ArchiveConfig) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context as _;
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(config.timeout_secs));
    if let Some(path) = &config.ca_cert {
        let pem =
            std::fs::read(path).with_context(|| format!("archive.ca_cert {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!("archive.ca_cert {} is not PEM certificates", path.display())
        })?;
        builder = builder.tls_certs_only(certs);
    }
    match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = std::fs::read(cert)
                .with_context(|| format!("archive.client_cert {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key)
                    .with_context(|| format!("archive.client_key {}", key.display()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .context("archive.client_cert and client_key do not make an identity")?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => anyhow::bail!("archive.client_cert and archive.client_key go together"),
    }
    if let Some(token) = &config.bearer_token {
        let mut headers = reqwest::header::HeaderMap::new();
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.0))
            .context("archive.bearer_token has characters a header cannot carry")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    builder.build().context("cannot build the archive client")
}

/// Delivers due rows until the process stops.
pub async fn run(store: Store, gateway: Gateway, config: ArchiveConfig) {
    let Some(url) = config.url.clone() else {
        return;
    };
    let client = match archive_client(&config) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "cannot build the archive client; no deliveries");
            return;
        }
    };
    let base = Duration::from_millis(config.retry_base_ms);
    let max = Duration::from_secs(config.retry_max_secs);
    loop {
        let due = match store.due_deliveries(&now_utc(), 64).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        // Every due row is of a different set (a later version waits for its predecessor),
        // so they can go out side by side (64 at a time).
        futures::stream::iter(due)
            .for_each_concurrent(64, |row| {
                deliver_one(&store, &gateway, &client, &url, row, base, max)
            })
            .await;
    }
}

async fn deliver_one(
    store: &Store,
    gateway: &Gateway,
    client: &reqwest::Client,
    url: &str,
    row: Delivery,
    base: Duration,
    max: Duration,
) {
    let Ok(Some(body)) = store.document(&row.document_oid).await else {
        return;
    };
    let result = attempt(client, url, body).await;
    let (status, next, error, entry) = match result {
        Attempt::Delivered(receipt) => (
            "delivered",
            now_utc(),
            None,
            event(
                &row,
                "delivered",
                json!({"attempt": row.attempts + 1, "receipt": receipt}),
                Vec::new(),
            ),
        ),
        Attempt::Final(code, issues) => (
            "failed",
            now_utc(),
            Some(format!("archive refused with {code}")),
            event(
                &row,
                "failed",
                json!({"attempt": row.attempts + 1, "status": code}),
                issues,
            ),
        ),
        Attempt::Retry(reason) => {
            let delay = backoff(row.attempts, base, max);
            (
                "pending",
                rfc3339_after(delay),
                Some(reason.clone()),
                event(
                    &row,
                    "retry",
                    json!({"attempt": row.attempts + 1, "reason": reason, "retryInMs": delay.as_millis()}),
                    Vec::new(),
                ),
            )
        }
    };
    // The attempt is audited before the outbox moves on: if the log cannot be
    // written, the row stays due and is tried again.
    if gateway.record(entry).await.is_err() {
        tracing::warn!("audit log unavailable; delivery result not recorded yet");
        tokio::time::sleep(base).await;
        return;
    }
    if let Err(error) = store
        .record_attempt(&row.document_oid, status, &next, error.as_deref())
        .await
    {
        tracing::warn!(%error, "cannot update the outbox");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempts in 0..30 {
            let delay = backoff(attempts, base, max);
            let nominal = base
                .saturating_mul(2u32.saturating_pow(u32::try_from(attempts.min(20)).unwrap_or(20)))
                .min(max);
            assert!(
                delay >= nominal.mul_f64(0.5) && delay <= nominal.mul_f64(1.5),
                "{attempts}: {delay:?}"
            );
        }
    }
}
