//! The HTTP surface: exchanges, `$validate` and `$transform`, the service's self-description,
//! health, OpenAPI, and the auditors' routes.
//!
//! Handlers are thin: they read the request into records and hand them to
//! [`crate::exchange::Gateway`]. Errors and verdicts are OperationOutcomes; a refused record is
//! never a 500. NDJSON requests are processed as they arrive, a bounded number of records in
//! flight, and answered one result line per record in input order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::{self, Actor, AuditEntry};
use crate::auth::{self, Authenticator, Guard};
use crate::config::{Config, Role};
use crate::exchange::{ExchangeResult, Gateway, Outcome, now_utc};
use crate::input::{self, Item};
use crate::mapping::context::LocalContext;
use crate::mapping::engine::Direction;
use crate::outcome::{Issue, IssueCode, OperationOutcome};
use crate::store::{AuditFilter, Store};

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Exchanges.
    pub gateway: Gateway,
    /// The database.
    pub store: Store,
    /// The configuration.
    pub config: Arc<Config>,
    /// Who may call.
    pub auth: Arc<Authenticator>,
    /// How many refusals are logged one by one.
    pub refusals: Arc<auth::refusal_limit::RefusalLimiter>,
}

/// Records per NDJSON request being parsed and checked at once, ahead of the writer.
const NDJSON_PREPARING: usize = 64;

/// Answer lines that are ready together go out as one chunk of up to this many bytes: one
/// channel message and one socket write for many lines, not one each.
const NDJSON_CHUNK_BYTES: usize = 64 * 1024;

/// Exchanges: integration teams.
pub const EXCHANGE_ROLES: &[Role] = &[Role::Integrator];
/// `$validate` and `$transform`: vendors checking their exports, and integrators.
pub const OPERATION_ROLES: &[Role] = &[Role::Vendor, Role::Integrator];
/// Audit queries, verification and exports.
pub const AUDIT_ROLES: &[Role] = &[Role::Auditor];
/// Operations (deliveries).
pub const ADMIN_ROLES: &[Role] = &[Role::Admin];

/// The roles a route allows (none: open): the one table the router's guards and the
/// OpenAPI document both read.
#[must_use]
pub fn roles_of(path: &str) -> &'static [Role] {
    if path.starts_with("/exchanges") {
        EXCHANGE_ROLES
    } else if path == "/$validate" || path == "/$transform" {
        OPERATION_ROLES
    } else if path.starts_with("/audit") {
        AUDIT_ROLES
    } else if path == "/deliveries" {
        ADMIN_ROLES
    } else {
        &[]
    }
}

/// The router. Each group of routes sits behind a guard that allows only its roles;
/// `/metadata`, `/healthz`, `/readyz` and `/openapi.json` are open.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.body_bytes;
    let guarded = |allowed: &'static [Role], routes: Router<AppState>| {
        let guard = Guard {
            auth: Arc::clone(&state.auth),
            gateway: state.gateway.clone(),
            refusals: Arc::clone(&state.refusals),
            allowed,
        };
        routes.route_layer(middleware::from_fn_with_state(guard, auth::guard))
    };
    let exchanges = Router::new()
        .route("/exchanges/apotti-to-kanta", post(apotti_to_kanta))
        .route("/exchanges/kanta-to-apotti", post(kanta_to_apotti))
        .route("/exchanges/from-archive", post(from_archive))
        .route("/exchanges/{id}", get(exchange_status));
    let operations = Router::new()
        .route("/$validate", post(validate))
        .route("/$transform", post(transform));
    let audit = Router::new()
        .route("/audit/entries", get(audit_entries))
        .route("/audit/verify", get(audit_verify));
    let admin = Router::new().route("/deliveries", get(deliveries));
    Router::new()
        .merge(guarded(roles_of("/exchanges"), exchanges))
        .merge(guarded(roles_of("/$validate"), operations))
        .merge(guarded(roles_of("/audit"), audit))
        .merge(guarded(roles_of("/deliveries"), admin))
        .route("/metadata", get(metadata))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// An error answer: an OperationOutcome with a status.
fn outcome_response(status: StatusCode, issues: &[Issue]) -> Response {
    (status, Json(OperationOutcome::from_issues(issues, "ok"))).into_response()
}

/// 503: the audit log cannot be written, so nothing is done.
pub(crate) fn unavailable() -> Response {
    outcome_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &[Issue::error(
            IssueCode::Processing,
            "audit.unavailable",
            "",
            "the audit log cannot be written right now; nothing was accepted, send again later",
        )],
    )
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-ndjson") || v.starts_with("application/ndjson")
        })
}

#[utoipa::path(post, path = "/exchanges/apotti-to-kanta", tag = "exchanges",
    description = "Apotti-like message(s) → Kanta-style documents: one record (JSON), a Bundle-like batch or an Apotti-like envelope, or NDJSON (Content-Type application/x-ndjson: one result line per record, streamed).",
    request_body(content = Object, description = "A message, a batch, or NDJSON lines"),
    responses((status = 201, description = "Accepted: a new document version", body = Object),
        (status = 200, description = "The same content again (duplicate), a batch response, or an NDJSON stream", body = Object),
        (status = 409, description = "Revision conflict or stale revision (OperationOutcome)", body = Object),
        (status = 422, description = "Refused: invalid or unmappable (OperationOutcome naming pointer and rule)", body = Object),
        (status = 503, description = "The audit log cannot be written: nothing accepted", body = Object)))]
pub(crate) async fn apotti_to_kanta(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    exchange(state, Direction::Forward, actor, headers, body).await
}

#[utoipa::path(post, path = "/exchanges/kanta-to-apotti", tag = "exchanges",
    description = "Kanta-style document(s) → Apotti-like import messages, known ids restored from the crosswalk.",
    request_body(content = Object, description = "A document, a Bundle-like batch, or NDJSON lines"),
    responses((status = 200, description = "The import message(s)", body = Object),
        (status = 422, description = "Refused (OperationOutcome)", body = Object),
        (status = 503, description = "The audit log cannot be written", body = Object)))]
pub(crate) async fn kanta_to_apotti(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    exchange(state, Direction::Backward, actor, headers, body).await
}

/// An exchange's answer but for its document: serialized straight from this struct, one per
/// record of a stream, rather than built as a `serde_json::Value` tree first. Members in
/// alphabetical order, as the tree wrote them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(skip_serializing_if = "Option::is_none")]
    document_oid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange_id: Option<String>,
    /// NDJSON answers only: the request line (`null` for one that could not be counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<Option<u64>>,
    operation_outcome: OperationOutcome,
    outcome: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
}

/// One exchange's answer: the envelope (outcome, ids, OperationOutcome), and the document's
/// text, which goes in as it is (see [`with_document`]).
fn result_json(result: ExchangeResult) -> (Envelope, Option<std::sync::Arc<str>>) {
    let envelope = Envelope {
        document_oid: result.document_oid,
        exchange_id: Some(result.exchange_id),
        line: None,
        operation_outcome: OperationOutcome::from_issues(
            &result.issues,
            match result.outcome {
                Outcome::Duplicate => "already archived: the same answer as before",
                _ => "accepted",
            },
        ),
        outcome: result.outcome.as_str(),
        status: result.status,
        version: result.version,
    };
    (envelope, result.document)
}

/// `envelope` serialized with `"document": <text>` added as its last member. The writer
/// serialized the document once, for its digest and the store; the answer embeds those bytes
/// rather than a tree parsed back only to be serialized again.
fn with_document(envelope: &Envelope, document: Option<&str>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1024 + document.map_or(0, str::len));
    if serde_json::to_writer(&mut bytes, envelope).is_err() {
        bytes.clear();
    }
    if let Some(text) = document
        && bytes.last() == Some(&b'}')
    {
        bytes.pop();
        if bytes.len() > 1 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(b"\"document\":");
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'}');
    }
    bytes
}

/// A single exchange's answer as an HTTP response.
fn result_response(status: StatusCode, result: ExchangeResult) -> Response {
    let (envelope, document) = result_json(result);
    json_bytes(status, with_document(&envelope, document.as_deref()))
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

async fn exchange(
    state: AppState,
    direction: Direction,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if is_ndjson(&headers) {
        return ndjson_exchange(state, direction, actor, body);
    }
    let limit = state.config.limits.body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return outcome_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &[Issue::error(
                    IssueCode::TooLong,
                    "input.body-too-large",
                    "",
                    format!(
                        "the request body is larger than {limit} bytes; send NDJSON for large batches"
                    ),
                )],
            );
        }
    };
    let timeout = Duration::from_secs(state.config.limits.request_timeout_secs);
    match tokio::time::timeout(timeout, exchange_document(&state, direction, actor, &bytes)).await {
        Ok(response) => response,
        Err(_) => outcome_response(
            StatusCode::GATEWAY_TIMEOUT,
            &[Issue::error(
                IssueCode::Processing,
                "exchange.timeout",
                "",
                "the request took longer than the configured timeout",
            )],
        ),
    }
}

/// Records of a JSON body: one record, a Bundle-like batch, or an Apotti-like envelope. The
/// records are taken out of the body, not copied.
fn records_of(mut value: Value) -> (bool, Vec<Result<Value, Issue>>) {
    if value.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        let entries = match value.get_mut("entry").map(Value::take) {
            Some(Value::Array(entries)) => entries
                .into_iter()
                .enumerate()
                .map(|(i, mut entry)| {
                    entry.get_mut("resource").map(Value::take).ok_or_else(|| {
                        Issue::error(
                            IssueCode::Required,
                            "bundle.resource",
                            format!("/entry/{i}/resource"),
                            "a Bundle entry needs a resource",
                        )
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        return (true, entries);
    }
    if value.get(input::RECORDS_KEY).is_some_and(Value::is_array)
        && let Some(Value::Array(records)) = value.get_mut(input::RECORDS_KEY).map(Value::take)
    {
        return (true, records.into_iter().map(Ok).collect());
    }
    (false, vec![Ok(value)])
}

async fn exchange_document(
    state: &AppState,
    direction: Direction,
    actor: Actor,
    bytes: &Bytes,
) -> Response {
    let parsed = input::parse_line(bytes, false, usize::MAX);
    let record = match parsed {
        Some(Item::Record(value)) => value,
        Some(Item::Broken(issue)) => {
            return match state
                .gateway
                .exchange(direction, Err(issue), actor.clone())
                .await
            {
                Ok(result) => result_response(StatusCode::BAD_REQUEST, result),
                Err(_) => unavailable(),
            };
        }
        _ => {
            let issue = Issue::error(
                IssueCode::Structure,
                "input.empty",
                "",
                "the request body is empty",
            );
            return match state
                .gateway
                .exchange(direction, Err(issue), actor.clone())
                .await
            {
                Ok(result) => result_response(StatusCode::BAD_REQUEST, result),
                Err(_) => unavailable(),
            };
        }
    };
    let (batch, records) = records_of(record);
    if !batch {
        let Some(record) = records.into_iter().next() else {
            return unavailable();
        };
        return match state.gateway.exchange(direction, record, actor).await {
            Ok(result) => {
                let status = StatusCode::from_u16(result.status).unwrap_or(StatusCode::OK);
                result_response(status, result)
            }
            Err(_) => unavailable(),
        };
    }
    batch_response(state, direction, &actor, records).await
}

/// Runs every record as an exchange (concurrently; the writer batches them) and answers with a
/// Bundle-like batch response in input order, or 503 when the log could not be written.
async fn batch_response(
    state: &AppState,
    direction: Direction,
    actor: &Actor,
    records: Vec<Result<Value, Issue>>,
) -> Response {
    let futures = records
        .into_iter()
        .map(|record| state.gateway.exchange(direction, record, actor.clone()));
    // Written out piece by piece, so that each document's text goes in as it is.
    let mut bundle = br#"{"entry":["#.to_vec();
    for (n, result) in futures::future::join_all(futures)
        .await
        .into_iter()
        .enumerate()
    {
        let Ok(result) = result else {
            return unavailable();
        };
        let response = json!({"status": result.status.to_string(), "outcome": OperationOutcome::from_issues(&result.issues, "accepted")});
        let (envelope, document) = result_json(result);
        if n > 0 {
            bundle.push(b',');
        }
        bundle.extend_from_slice(br#"{"resource":"#);
        bundle.extend_from_slice(&with_document(&envelope, document.as_deref()));
        bundle.extend_from_slice(br#","response":"#);
        bundle.extend_from_slice(&serde_json::to_vec(&response).unwrap_or_default());
        bundle.push(b'}');
    }
    bundle.extend_from_slice(br#"],"resourceType":"Bundle","type":"batch-response"}"#);
    json_bytes(StatusCode::OK, bundle)
}

fn ndjson_exchange(state: AppState, direction: Direction, actor: Actor, body: Body) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let max_line = state.config.limits.ndjson_line_bytes;
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let mut overflowed = false;
        let mut line_no = 0u64;
        let mut records = StreamedRecords::new(state.gateway.clone(), actor, sender);
        let mut finished = false;
        while !finished {
            let chunk = match stream.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(_)) | None => {
                    finished = true;
                    Bytes::new()
                }
            };
            let mut start = 0;
            let mut lines: Vec<(Vec<u8>, bool)> = Vec::new();
            for index in memchr::memchr_iter(b'\n', &chunk) {
                let piece = &chunk[start..index];
                if !overflowed && buffer.len() + piece.len() <= max_line {
                    buffer.extend_from_slice(piece);
                } else {
                    overflowed = true;
                }
                lines.push((std::mem::take(&mut buffer), overflowed));
                overflowed = false;
                start = index + 1;
            }
            let rest = &chunk[start..];
            if !overflowed && buffer.len() + rest.len() <= max_line {
                buffer.extend_from_slice(rest);
            } else {
                overflowed = true;
                buffer.clear();
            }
            if finished && (!buffer.is_empty() || overflowed) {
                lines.push((std::mem::take(&mut buffer), overflowed));
            }
            for (line, over) in lines {
                line_no += 1;
                if !over && line.trim_ascii().is_empty() {
                    continue;
                }
                if !records.push(line_no, line, over, max_line, direction).await {
                    return;
                }
            }
        }
        records.finish().await;
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// The records of one NDJSON request on their way: parsed and checked many at a time on the
/// runtime's workers, handed to the writer strictly in line order (so a revision that follows
/// its first version in the stream stays after it), and answered in line order.
struct StreamedRecords {
    gateway: Gateway,
    actor: Actor,
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    preparing: futures::stream::FuturesOrdered<
        tokio::task::JoinHandle<Result<crate::exchange::Ready, crate::exchange::Unavailable>>,
    >,
    preparing_lines: VecDeque<u64>,
    answering: futures::stream::FuturesOrdered<tokio::task::JoinHandle<Bytes>>,
    answering_lines: VecDeque<u64>,
}

impl StreamedRecords {
    fn new(
        gateway: Gateway,
        actor: Actor,
        sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) -> Self {
        Self {
            gateway,
            actor,
            sender,
            preparing: futures::stream::FuturesOrdered::new(),
            preparing_lines: VecDeque::new(),
            answering: futures::stream::FuturesOrdered::new(),
            answering_lines: VecDeque::new(),
        }
    }

    /// Takes one line; `false` when the client has gone away.
    async fn push(
        &mut self,
        line_no: u64,
        line: Vec<u8>,
        overflowed: bool,
        max_line: usize,
        direction: Direction,
    ) -> bool {
        let gateway = self.gateway.clone();
        self.preparing.push_back(tokio::spawn(async move {
            let record = match input::parse_line(&line, overflowed, max_line) {
                Some(Item::Record(value) | Item::Envelope(value)) => Ok(value),
                Some(Item::Broken(issue)) => Err(issue),
                None => Err(Issue::error(
                    IssueCode::Structure,
                    "input.empty",
                    "",
                    "the line is empty",
                )),
            };
            gateway.ready(direction, record)
        }));
        self.preparing_lines.push_back(line_no);
        while self.preparing.len() >= NDJSON_PREPARING {
            if !self.hand_over_next().await {
                return false;
            }
        }
        true
    }

    /// Hands the next checked record to the writer; `false` when the client has gone away.
    async fn hand_over_next(&mut self) -> bool {
        let Some(prepared) = self.preparing.next().await else {
            return true;
        };
        let line = self.preparing_lines.pop_front();
        let answer = match prepared {
            Ok(Ok(ready)) => self.gateway.enqueue(self.actor.clone(), ready).await,
            Ok(Err(unavailable)) => Err(unavailable),
            Err(_) => Err(crate::exchange::Unavailable),
        };
        self.answering.push_back(tokio::spawn(async move {
            let result = match answer {
                Ok(answer) => answer.await,
                Err(unavailable) => Err(unavailable),
            };
            result_line(line, result)
        }));
        self.answering_lines.push_back(line.unwrap_or_default());
        while self.answering.len() >= self.gateway.stream_window() {
            if !self.send_next().await {
                return false;
            }
        }
        true
    }

    /// Sends the next answer line, with those after it that are ready too; `false` when the
    /// client has gone away.
    async fn send_next(&mut self) -> bool {
        let Some(answered) = self.answering.next().await else {
            return true;
        };
        let first = self.answered_line(answered);
        if first.len() >= NDJSON_CHUNK_BYTES {
            return self.sender.send(Ok(first)).await.is_ok();
        }
        let mut chunk = Vec::with_capacity(NDJSON_CHUNK_BYTES.min(first.len() * 32));
        chunk.extend_from_slice(&first);
        while chunk.len() < NDJSON_CHUNK_BYTES {
            let Some(Some(answered)) = self.answering.next().now_or_never() else {
                break;
            };
            let line = self.answered_line(answered);
            chunk.extend_from_slice(&line);
        }
        self.sender.send(Ok(Bytes::from(chunk))).await.is_ok()
    }

    /// The answer line of the oldest record answered.
    fn answered_line(&mut self, answered: Result<Bytes, tokio::task::JoinError>) -> Bytes {
        let line = self.answering_lines.pop_front();
        answered.unwrap_or_else(|_| result_line(line, Err(crate::exchange::Unavailable)))
    }

    /// Answers every record still on its way.
    async fn finish(mut self) {
        while !self.preparing.is_empty() {
            if !self.hand_over_next().await {
                return;
            }
        }
        while !self.answering.is_empty() {
            if !self.send_next().await {
                return;
            }
        }
    }
}

/// One NDJSON answer line.
fn result_line(
    line: Option<u64>,
    result: Result<ExchangeResult, crate::exchange::Unavailable>,
) -> Bytes {
    let (mut envelope, text) = match result {
        Ok(result) => result_json(result),
        Err(_) => {
            let envelope = Envelope {
                document_oid: None,
                exchange_id: None,
                line: None,
                operation_outcome: OperationOutcome::from_issues(
                    &[Issue::error(
                        IssueCode::Processing,
                        "audit.unavailable",
                        "",
                        "the audit log cannot be written; this record was not accepted",
                    )],
                    "",
                ),
                outcome: "unavailable",
                status: 503,
                version: None,
            };
            (envelope, None)
        }
    };
    envelope.line = Some(line);
    let mut bytes = with_document(&envelope, text.as_deref());
    bytes.push(b'\n');
    Bytes::from(bytes)
}

#[utoipa::path(get, path = "/exchanges/{id}", tag = "exchanges",
    params(("id" = String, Path, description = "Exchange id")),
    responses((status = 200, description = "The exchange's audit entries", body = Object), (status = 404, description = "Unknown exchange", body = Object)))]
pub(crate) async fn exchange_status(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    let rows = state.store.entries_of_exchange(&id).await;
    if let Ok(rows) = &rows {
        let read = AuditRead {
            actor,
            operation: "GET /exchanges/{id}",
            record_type: None,
            client_hash: None,
            query: json!({"exchangeId": id}),
            result_count: rows.len(),
        };
        if log_read(&state, read).await.is_err() {
            return unavailable();
        }
    }
    match rows {
        Ok(rows) if rows.is_empty() => outcome_response(
            StatusCode::NOT_FOUND,
            &[Issue::error(
                IssueCode::NotSupported,
                "exchange.unknown",
                "",
                "no exchange with this id",
            )],
        ),
        Ok(rows) => {
            let entries: Vec<Value> = rows
                .iter()
                .filter_map(|row| {
                    serde_json::from_str::<Value>(&row.entry)
                        .ok()
                        .map(|e| json!({"seq": row.seq, "entry": e}))
                })
                .collect();
            Json(json!({"exchangeId": id, "entries": entries})).into_response()
        }
        Err(_) => unavailable(),
    }
}

#[utoipa::path(post, path = "/$validate", tag = "operations",
    description = "Validate one record against its profile (chosen by MSG_TYPE or header.documentType); stores nothing.",
    request_body(content = Object), responses((status = 200, description = "OperationOutcome", body = Object)))]
pub(crate) async fn validate(State(state): State<AppState>, bytes: Bytes) -> Response {
    let engine = state.gateway.engine();
    let record = match record_of(&bytes) {
        Ok(record) => record,
        Err(response) => return response,
    };
    let verdict = engine.profiles.validate(&record, None);
    let message = verdict.profile.as_ref().map_or_else(
        || "valid".to_owned(),
        |p| format!("valid against {} ({})", p.id, p.hash),
    );
    let mut outcome =
        serde_json::to_value(OperationOutcome::from_issues(&verdict.issues, &message))
            .unwrap_or_default();
    if let Some(profile) = &verdict.profile {
        outcome["meta"] = json!({"profile": [profile.id], "tag": [{"system": "urn:x-sosku:profile-hash", "code": profile.hash}]});
    }
    Json(outcome).into_response()
}

/// The one record of a `$validate` or `$transform` body, or the answer saying why not.
#[expect(clippy::result_large_err, reason = "the error is the response itself")]
fn record_of(bytes: &Bytes) -> Result<Value, Response> {
    match input::parse_line(bytes, false, usize::MAX) {
        Some(Item::Record(value)) => Ok(value),
        Some(Item::Broken(issue)) => Err(outcome_response(StatusCode::BAD_REQUEST, &[issue])),
        _ => Err(outcome_response(
            StatusCode::BAD_REQUEST,
            &[Issue::error(
                IssueCode::Structure,
                "input.empty",
                "",
                "the request body is empty",
            )],
        )),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TransformQuery {
    direction: Option<String>,
}

#[utoipa::path(post, path = "/$transform", tag = "operations",
    description = "Validate and map one record without storing anything (identifiers are provisional).",
    params(("direction" = Option<String>, Query, description = "apotti-to-kanta (default) or kanta-to-apotti")),
    request_body(content = Object), responses((status = 200, description = "The mapped document", body = Object), (status = 422, description = "OperationOutcome", body = Object)))]
pub(crate) async fn transform(
    State(state): State<AppState>,
    Query(query): Query<TransformQuery>,
    bytes: Bytes,
) -> Response {
    let direction = match query.direction.as_deref() {
        Some("kanta-to-apotti") => Direction::Backward,
        Some("apotti-to-kanta") | None => Direction::Forward,
        Some(_) => {
            return outcome_response(
                StatusCode::BAD_REQUEST,
                &[Issue::error(
                    IssueCode::Value,
                    "transform.direction",
                    "",
                    "direction is apotti-to-kanta or kanta-to-apotti",
                )],
            );
        }
    };
    let engine = state.gateway.engine();
    let record = match record_of(&bytes) {
        Ok(record) => record,
        Err(response) => return response,
    };
    // Provisional identifiers: nothing is stored, so OIDs are allocated in memory only.
    let mut context = LocalContext::new("1.2.246.10.0", 2026);
    if let Ok(profile) = engine.profiles.select(&record)
        && let Some(plan) = engine.mappings.plan_for(direction, profile.id())
    {
        context.prepare(plan, &record, direction);
    }
    let mapped = engine
        .mappings
        .map_record(&engine.profiles, &record, direction, &context, false);
    match mapped.document {
        Some(document) => Json(json!({"mapping": mapped.mapping, "provisionalIdentifiers": direction == Direction::Forward, "document": document})).into_response(),
        None => outcome_response(StatusCode::UNPROCESSABLE_ENTITY, &mapped.issues),
    }
}

/// The `security` block of `/metadata`: whether authentication is on, how, and which roles
/// each group of routes allows.
fn security(state: &AppState) -> Value {
    let names = |roles: &[Role]| roles.iter().map(|r| r.name()).collect::<Vec<_>>();
    let roles = json!({
        "/exchanges/*": names(EXCHANGE_ROLES),
        "/$validate, /$transform": names(OPERATION_ROLES),
        "/audit/*": names(AUDIT_ROLES),
        "/deliveries": names(ADMIN_ROLES),
    });
    let tls = state.config.tls.cert.is_some();
    if !state.auth.enabled() {
        return json!({
            "authentication": "off",
            "description": "authentication is not configured: the gateway listens on loopback only and every caller is `local` with every role",
            "tls": tls,
        });
    }
    let mut service = Vec::new();
    if state.auth.issuer().is_some() {
        service.push(json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}], "text": "OpenID Connect bearer tokens"}));
    }
    if !state.config.auth.clients.is_empty() {
        service.push(
            json!({"text": "TLS client certificates (by fingerprint or subject alternative name)"}),
        );
    }
    json!({
        "authentication": "on",
        "service": service,
        "issuer": state.auth.issuer(),
        "audience": state.config.auth.audience,
        "tls": tls,
        "roles": roles,
    })
}

#[utoipa::path(get, path = "/metadata", tag = "service",
    responses((status = 200, description = "CapabilityStatement-like description with profile and mapping hashes", body = Object)))]
pub(crate) async fn metadata(State(state): State<AppState>) -> Response {
    let engine = state.gateway.engine();
    let profiles: Vec<Value> = engine
        .profiles
        .profiles()
        .map(|p| json!({"id": p.id(), "url": p.uri(), "title": p.title(), "hash": p.stamp().hash}))
        .collect();
    let mappings: Vec<Value> = engine
        .mappings
        .plans
        .iter()
        .map(|p| json!({"id": p.header.id, "file": p.file, "apotti": p.header.apotti, "kanta": p.header.kanta, "hash": p.hash}))
        .collect();
    Json(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now_utc(),
        "kind": "instance",
        "software": {"name": "sosku-gateway", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Interoperability gateway for Finnish social rehabilitation records (Apotti-like EHR ⇄ Kanta-style archive)"},
        "format": ["application/json", "application/x-ndjson"],
        "security": security(&state),
        "storage": format!("{:?}", state.store.backend()),
        "rest": [{
            "mode": "server",
            "operation": [
                {"name": "apotti-to-kanta", "definition": "POST /exchanges/apotti-to-kanta"},
                {"name": "kanta-to-apotti", "definition": "POST /exchanges/kanta-to-apotti"},
                {"name": "validate", "definition": "POST /$validate"},
                {"name": "transform", "definition": "POST /$transform?direction=apotti-to-kanta|kanta-to-apotti"}
            ]
        }],
        "profiles": profiles,
        "mappings": mappings,
    }))
    .into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "service", responses((status = 200, description = "Ready"), (status = 503, description = "Database unreachable")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database not reachable").into_response()
    }
}

async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

/// Query of `/audit/entries`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// The client's hetu (hashed here, never stored or logged in plain).
    pub client: Option<String>,
    /// Actor subject.
    pub actor: Option<String>,
    /// From (RFC 3339); default two years back.
    pub from: Option<String>,
    /// To (RFC 3339); default now.
    pub to: Option<String>,
    /// `accepted`, `duplicate` or `refused`.
    pub outcome: Option<String>,
    /// `decision`, `plan`, `visit`.
    #[serde(rename = "type")]
    pub record_type: Option<String>,
    /// Cursor: the last sequence number seen.
    pub cursor: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
    /// `json` (default), `ndjson`, `csv` or `bundle` (FHIR AuditEvent searchset).
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/audit/entries", tag = "audit",
    description = "Audit entries by client (hetu, hashed server-side), actor, time window (two years back by default), outcome and record type; cursor paging; JSON, NDJSON, CSV or a FHIR AuditEvent searchset Bundle. Each query is itself logged.",
    params(("client" = Option<String>, Query), ("actor" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("outcome" = Option<String>, Query), ("type" = Option<String>, Query), ("cursor" = Option<i64>, Query), ("limit" = Option<i64>, Query),
        ("format" = Option<String>, Query, description = "json, ndjson, csv or bundle")),
    responses((status = 200, description = "Entries", body = Object)))]
pub(crate) async fn audit_entries(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let engine = state.gateway.engine();
    let days = i64::from(state.config.audit.default_window_days);
    let from = query.from.clone().unwrap_or_else(|| {
        let past = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days);
        past.to_string()
    });
    let to = query
        .to
        .clone()
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_owned());
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let filter = AuditFilter {
        client_hash: query.client.as_deref().map(|h| engine.hasher.hash(h)),
        actor: query.actor.clone(),
        from: from.clone(),
        to: to.clone(),
        outcome: query.outcome.clone(),
        record_type: query.record_type.clone(),
        after: query.cursor.unwrap_or(0),
        limit,
    };
    let rows = match state.store.query_log(&filter).await {
        Ok(rows) => rows,
        Err(_) => return unavailable(),
    };
    // Reading audit data is itself a use of client data: log who looked.
    let read = AuditRead {
        actor,
        operation: "GET /audit/entries",
        record_type: query.record_type.clone(),
        client_hash: filter.client_hash.clone(),
        query: json!({"client": query.client.is_some(), "actor": query.actor, "from": from, "to": to, "outcome": query.outcome, "type": query.record_type, "cursor": query.cursor, "limit": limit}),
        result_count: rows.len(),
    };
    if log_read(&state, read).await.is_err() {
        return unavailable();
    }
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let entries: Vec<(i64, AuditEntry)> = rows
        .iter()
        .filter_map(|row| serde_json::from_str(&row.entry).ok().map(|e| (row.seq, e)))
        .collect();
    let mut response = match query.format.as_deref() {
        Some("ndjson") => {
            let mut out = String::new();
            for (seq, entry) in &entries {
                out.push_str(&json!({"seq": seq, "entry": entry}).to_string());
                out.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
        }
        Some("csv") => {
            let mut out = String::from(audit::CSV_HEADER);
            out.push('\n');
            for (seq, entry) in &entries {
                out.push_str(&audit::csv_line(*seq, entry));
                out.push('\n');
            }
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
        }
        Some("bundle") => Json(json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": entries.len(),
            "link": next.map(|n| vec![json!({"relation": "next", "url": format!("/audit/entries?format=bundle&cursor={n}")})]).unwrap_or_default(),
            "entry": entries.iter().map(|(seq, e)| json!({"resource": audit::audit_event(*seq, e)})).collect::<Vec<_>>(),
        }))
        .into_response(),
        _ => Json(json!({
            "entries": entries.iter().map(|(seq, e)| json!({"seq": seq, "entry": e})).collect::<Vec<_>>(),
            "nextCursor": next,
        }))
        .into_response(),
    };
    if let Some(next) = next
        && let Ok(value) = HeaderValue::from_str(&next.to_string())
    {
        response.headers_mut().insert("x-next-cursor", value);
    }
    response
}

#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    responses((status = 200, description = "The chain is intact", body = Object), (status = 409, description = "The chain is broken: the first modified, deleted, inserted or reordered entry", body = Object)))]
pub(crate) async fn audit_verify(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Response {
    match verify_log(&state.store).await {
        Ok(report) => {
            let read = AuditRead {
                actor,
                operation: "GET /audit/verify",
                record_type: None,
                client_hash: None,
                query: json!({}),
                result_count: usize::try_from(report.entries).unwrap_or(usize::MAX),
            };
            // The report holds no client data, and a tampered chain may refuse every new
            // entry: the auditor still gets the report, told whether the read was logged.
            let logged = log_read(&state, read).await.is_ok();
            let status = if report.intact {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            };
            let mut report = serde_json::to_value(&report).unwrap_or(Value::Null);
            report["readLogged"] = json!(logged);
            (status, Json(report)).into_response()
        }
        Err(_) => unavailable(),
    }
}

/// Body of `/exchanges/from-archive`.
#[derive(Debug, Deserialize)]
pub(crate) struct FromArchive {
    /// The client's hetu.
    client: String,
    /// Document type code (`PAATOS_SOSKU`, `ASIAKASSUUNNITELMA`, `ASIAKASKERTOMUS`).
    #[serde(rename = "type")]
    document_type: Option<String>,
    /// Only documents archived since (ISO 8601 with offset).
    since: Option<String>,
}

#[utoipa::path(post, path = "/exchanges/from-archive", tag = "exchanges",
    description = "Fetch a client's documents from the archive (latest version of each set; by type and since) and map each back to an Apotti-like import message, known ids restored from the crosswalk. Every document is an exchange of its own in the audit log.",
    request_body(content = Object, description = "{\"client\": hetu, \"type\"?: code, \"since\"?: date-time}"),
    responses((status = 200, description = "A batch-response Bundle of import messages", body = Object),
        (status = 502, description = "The archive could not be reached or refused the query", body = Object)))]
pub(crate) async fn from_archive(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Json(query): Json<FromArchive>,
) -> Response {
    let Some(archive) = state.config.archive.url.clone() else {
        return outcome_response(
            StatusCode::NOT_FOUND,
            &[Issue::error(
                IssueCode::NotSupported,
                "archive.not-configured",
                "",
                "no archive is configured ([archive] url)",
            )],
        );
    };
    let mut params = vec![("client", query.client.clone())];
    if let Some(kind) = &query.document_type {
        params.push(("type", kind.clone()));
    }
    if let Some(since) = &query.since {
        params.push(("since", since.clone()));
    }
    let client = match crate::delivery::archive_client(&state.config.archive) {
        Ok(client) => client,
        Err(_) => return unavailable(),
    };
    let request = client
        .get(format!("{}/documents", archive.trim_end_matches('/')))
        .query(&params);
    let fetched = match request.send().await {
        Ok(response) if response.status().is_success() => response.json::<Value>().await.ok(),
        Ok(response) => {
            let status = response.status().as_u16();
            return outcome_response(
                StatusCode::BAD_GATEWAY,
                &[Issue::error(
                    IssueCode::Processing,
                    "archive.refused",
                    "",
                    format!("the archive answered {status}"),
                )],
            );
        }
        Err(_) => None,
    };
    let Some(documents) =
        fetched.and_then(|body| body.get("documents").and_then(Value::as_array).cloned())
    else {
        return outcome_response(
            StatusCode::BAD_GATEWAY,
            &[Issue::error(
                IssueCode::Processing,
                "archive.unreachable",
                "",
                "the archive could not be reached",
            )],
        );
    };
    batch_response(
        &state,
        Direction::Backward,
        &actor,
        documents.into_iter().map(Ok).collect(),
    )
    .await
}

/// Query of `/deliveries`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`; all when absent.
    status: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/deliveries", tag = "exchanges",
    description = "Deliveries to the archive by status: what is still pending (with its next attempt and last error) or failed.",
    params(("status" = Option<String>, Query, description = "pending, delivered or failed"), ("limit" = Option<i64>, Query)),
    responses((status = 200, description = "Deliveries", body = Object)))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    Query(query): Query<DeliveryQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    match state
        .store
        .deliveries(query.status.as_deref().unwrap_or_default(), limit)
        .await
    {
        Ok(rows) => Json(json!({ "deliveries": rows })).into_response(),
        Err(_) => unavailable(),
    }
}

/// A read of audit data, as the log records it.
struct AuditRead {
    actor: Actor,
    operation: &'static str,
    record_type: Option<String>,
    client_hash: Option<String>,
    query: Value,
    result_count: usize,
}

/// Writes who looked at audit data, what they asked and how many entries they got: reading
/// client data is a use the client may ask about (Act 703/2023).
async fn log_read(state: &AppState, read: AuditRead) -> Result<(), crate::exchange::Unavailable> {
    let mut entry = AuditEntry::read(read.actor, read.operation, &read.query, read.result_count);
    entry.record_type = read.record_type;
    entry.client_hash = read.client_hash;
    state.gateway.record(entry).await
}

/// Re-checks the whole chain.
///
/// # Errors
/// When the store cannot be read.
pub async fn verify_log(store: &Store) -> Result<audit::VerifyReport, crate::store::StoreError> {
    let head = store.head().await?;
    let mut verifier = audit::Verifier::default();
    let mut after = 0;
    loop {
        let page = store.log_page(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            verifier.push(row);
        }
    }
    Ok(verifier.finish(head))
}
