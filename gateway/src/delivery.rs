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

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::audit::{Actor, AuditEntry, LoggedIssue};
use crate::config::ArchiveConfig;
use crate::exchange::{Gateway, now_utc, utc_rfc3339};
use crate::store::{AttemptResult, Delivery, Store};

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
    let actor = Actor {
        subject: "delivery-worker".to_owned(),
        client_id: None,
        role: "system".to_owned(),
    };
    let mut entry = AuditEntry::event(
        "delivery",
        "gateway-to-archive",
        actor,
        outcome,
        String::new(),
    );
    entry.exchange_id = row.exchange_id.clone();
    entry.document_oid = Some(row.document_oid.clone());
    entry.set_oid = Some(row.set_oid.clone());
    entry.version = Some(row.version);
    entry.issues = issues;
    entry.delivery = Some(outcome.to_owned());
    entry.details = Some(details);
    entry
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
    // Rows fetched, in flight or being recorded: never fetched twice at once.
    let busy: Busy = Arc::default();
    let (finished, results) = tokio::sync::mpsc::channel(IN_FLIGHT * 2);
    tokio::spawn(record_results(
        store.clone(),
        gateway,
        results,
        Arc::clone(&busy),
        base,
    ));
    let mut queued: VecDeque<(Delivery, String)> = VecDeque::new();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut last_fetch = Instant::now()
        .checked_sub(FETCH_EVERY)
        .unwrap_or_else(Instant::now);
    loop {
        // Fetch when the queue is empty and there is room, but not on every completion
        // while deliveries are still mostly in flight.
        if queued.is_empty()
            && in_flight.len() < IN_FLIGHT
            && (in_flight.len() <= IN_FLIGHT / 2 || last_fetch.elapsed() >= FETCH_EVERY)
        {
            last_fetch = Instant::now();
            queued = fetch_due(&store, &busy).await;
        }
        while in_flight.len() < IN_FLIGHT
            && let Some((row, body)) = queued.pop_front()
        {
            in_flight.push(deliver_one(&client, &url, row, body, base, max));
        }
        if in_flight.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if let Some(result) = in_flight.next().await
            && finished.send(result).await.is_err()
        {
            return;
        }
    }
}

/// Document OIDs fetched, in flight or being recorded.
type Busy = Arc<Mutex<HashSet<String>>>;

/// Due rows not already busy, marked busy.
async fn fetch_due(store: &Store, busy: &Busy) -> VecDeque<(Delivery, String)> {
    match store
        .due_deliveries_with_documents(&now_utc(), DUE_PER_ROUND)
        .await
    {
        Ok(rows) => {
            let Ok(mut busy) = busy.lock() else {
                return VecDeque::new();
            };
            rows.into_iter()
                .filter(|(row, _)| busy.insert(row.document_oid.clone()))
                .collect()
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the outbox");
            VecDeque::new()
        }
    }
}

/// Records finished attempts a chunk at a time (the audit events of a chunk share the
/// writer's transactions, the outbox rows move on in one statement after them), then frees
/// their rows for the next fetch.
async fn record_results(
    store: Store,
    gateway: Gateway,
    mut results: tokio::sync::mpsc::Receiver<(AuditEntry, AttemptResult)>,
    busy: Busy,
    base: Duration,
) {
    let mut chunk = Vec::with_capacity(IN_FLIGHT);
    while results.recv_many(&mut chunk, IN_FLIGHT).await > 0 {
        let documents: Vec<String> = chunk
            .iter()
            .map(|(_, result)| result.document_oid.clone())
            .collect();
        record(&store, &gateway, std::mem::take(&mut chunk), base).await;
        if let Ok(mut busy) = busy.lock() {
            for document in &documents {
                busy.remove(document);
            }
        }
    }
}

/// Due rows read per fetch.
const DUE_PER_ROUND: i64 = 4096;
/// While most deliveries are in flight, the outbox is read at most this often.
const FETCH_EVERY: Duration = Duration::from_millis(50);
/// Deliveries in flight.
const IN_FLIGHT: usize = 256;

/// Audits the attempts, then moves their outbox rows on. An attempt whose audit entry could
/// not be written leaves its row as it was: it is tried again, and the archive answers a
/// resend of an archived version with the same receipt, so nothing is archived twice.
async fn record(
    store: &Store,
    gateway: &Gateway,
    chunk: Vec<(AuditEntry, AttemptResult)>,
    base: Duration,
) {
    let (entries, results): (Vec<_>, Vec<_>) = chunk.into_iter().unzip();
    let audited = futures::future::join_all(entries.into_iter().map(|e| gateway.record(e))).await;
    let audited: Vec<AttemptResult> = results
        .into_iter()
        .zip(audited)
        .filter_map(|(result, audited)| audited.is_ok().then_some(result))
        .collect();
    if audited.is_empty() {
        tracing::warn!("audit log unavailable; delivery results not recorded yet");
        tokio::time::sleep(base).await;
        return;
    }
    if let Err(error) = store.record_attempts(&audited).await {
        tracing::warn!(%error, "cannot update the outbox");
    }
}

/// One attempt: its audit event and its outbox result.
async fn deliver_one(
    client: &reqwest::Client,
    url: &str,
    row: Delivery,
    body: String,
    base: Duration,
    max: Duration,
) -> (AuditEntry, AttemptResult) {
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
    let result = AttemptResult {
        document_oid: row.document_oid,
        status,
        next_attempt_at: next,
        error,
    };
    (entry, result)
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
