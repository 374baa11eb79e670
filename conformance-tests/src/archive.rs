//! The reference Kanta-style archive: `shared/spec/archive-api.md` as a real HTTP peer for the
//! gateway's tests and for vendors to compare their archives with.
//!
//! It validates every document against the Kanta-style profiles (`422` with the issues),
//! enforces the version rules (the next version of a set only, replacing the latest: else
//! `409`), answers a resend of an archived version with `200` and the same receipt (the same
//! version with other content is a `409`), and keeps what it archives in SQLite. One writer
//! task decides and inserts ([`writer`]), so "exactly once" needs no lock, and commits the
//! documents that arrive together in one transaction (group commit), answering each only
//! after the commit.
//! It serves plain HTTP, or TLS with rustls (aws-lc-rs); given a client CA it requires a
//! client certificate that chains to it (mutual TLS), as a real archive does.
//!
//! [`Faults`] switch off promises on purpose, for tests only: the conformance suite's
//! self-tests run against a broken archive to show that the cases catch what they should.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gateway::audit::digest;
use gateway::identifiers::is_hetu;
use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::net::TcpListener;

mod writer;

use writer::{Decision, Submission};

/// Promises the archive breaks on purpose (tests only; all off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Archive documents without validating them (never answers `422` for content).
    pub accept_invalid: bool,
    /// Archive every document it is sent, even a version already archived or out of order
    /// (never answers `200` for a resend, nor `409`).
    pub archive_versions_again: bool,
}

/// The archive's state.
#[derive(Debug, Clone)]
pub struct Archive {
    profiles: Arc<ProfileRegistry>,
    pool: SqlitePool,
    writer: tokio::sync::mpsc::Sender<Submission>,
    faults: Faults,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS archived (
    document_oid TEXT PRIMARY KEY,
    set_oid      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    client       TEXT NOT NULL,
    doc_type     TEXT NOT NULL,
    archived_at  TEXT NOT NULL,
    receipt_id   TEXT NOT NULL,
    digest       TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (set_oid, version)
)";

/// The same table without the constraints that keep one copy per version ([`Faults`]).
const FAULTY_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS archived (
    document_oid TEXT NOT NULL,
    set_oid      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    client       TEXT NOT NULL,
    doc_type     TEXT NOT NULL,
    archived_at  TEXT NOT NULL,
    receipt_id   TEXT NOT NULL,
    digest       TEXT NOT NULL,
    body         TEXT NOT NULL
)";

impl Archive {
    /// Opens (creating) the archive's SQLite database at `path`.
    ///
    /// # Errors
    /// When the profiles do not load or the database cannot be opened.
    pub async fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        Self::open_with(path, Faults::default()).await
    }

    /// Opens the archive with `faults` switched on (tests only).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub async fn open_with(path: &std::path::Path, faults: Faults) -> anyhow::Result<Self> {
        let profiles = ProfileRegistry::load(&ProfileSource::Embedded)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let schema = if faults == Faults::default() {
            SCHEMA
        } else {
            FAULTY_SCHEMA
        };
        sqlx::query(schema).execute(&pool).await?;
        Ok(Self {
            profiles: Arc::new(profiles),
            writer: writer::start(pool.clone(), !faults.archive_versions_again),
            pool,
            faults,
        })
    }

    /// The routes of the archive API.
    pub fn router(self) -> Router {
        Router::new()
            .route("/documents", post(archive_document).get(search))
            .route("/documents/{oid}", get(fetch))
            .with_state(self)
    }

    /// Serves on `listen` until `shutdown` resolves; returns the bound address first through
    /// `bound`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve(
        self,
        listen: SocketAddr,
        bound: tokio::sync::oneshot::Sender<SocketAddr>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = TcpListener::bind(listen).await?;
        let _ = bound.send(listener.local_addr()?);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// A rustls server configuration from PEM: the archive's certificate chain and key, and, when
/// given, the CA that client certificates must chain to (a client without one is refused).
///
/// # Errors
/// When a PEM does not parse or the certificates do not fit together.
pub fn server_tls(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let config = match client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots.add(cert?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(certs, key)?,
    };
    Ok(Arc::new(config))
}

impl Archive {
    /// Serves over TLS (mutual TLS when `tls` requires client certificates); the bound
    /// address goes to `bound` first. Runs until the process stops.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve_tls(
        self,
        listen: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        bound: tokio::sync::oneshot::Sender<SocketAddr>,
    ) -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind(listen)?;
        // tokio panics on a blocking socket.
        listener.set_nonblocking(true)?;
        let _ = bound.send(listener.local_addr()?);
        axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(tls),
        )?
        .serve(self.router().into_make_service())
        .await?;
        Ok(())
    }
}

fn issues_response(status: StatusCode, issues: Vec<Value>) -> Response {
    (status, Json(json!({ "issues": issues }))).into_response()
}

fn issue(path: &str, code: &str, message: &str) -> Value {
    json!({"path": path, "code": code, "message": message})
}

async fn archive_document(State(archive): State<Archive>, body: axum::body::Bytes) -> Response {
    let document: Value = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(error) => {
            return issues_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![issue(
                    "",
                    "input.json-syntax",
                    &format!("not valid JSON: {error}"),
                )],
            );
        }
    };
    if !archive.faults.accept_invalid
        && let Err(response) = check_document(&archive, &document)
    {
        return response;
    }
    let text = |pointer: &str| {
        document
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let document_oid = text("/header/documentOid");
    let set_oid = text("/header/setOid");
    let version = document
        .pointer("/header/version")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let replaces = text("/header/replaces/documentOid");
    let body_text = document.to_string();
    let content_digest = digest(body_text.as_bytes());

    let (reply, decision) = tokio::sync::oneshot::channel();
    let submission = Submission {
        document_oid,
        set_oid,
        version,
        replaces,
        client: text("/header/client/hetu"),
        doc_type: text("/header/documentType/code"),
        digest: content_digest,
        body: body_text,
        reply,
    };
    if archive.writer.send(submission).await.is_err() {
        return unavailable();
    }
    match decision.await {
        Ok(Decision::Created(row)) => (StatusCode::CREATED, Json(row.receipt())).into_response(),
        Ok(Decision::Resent(row)) => (StatusCode::OK, Json(row.receipt())).into_response(),
        Ok(Decision::OtherContent) => issues_response(
            StatusCode::CONFLICT,
            vec![issue(
                "/header/documentOid",
                "archive.same-version-other-content",
                "this version is already archived with other content",
            )],
        ),
        Ok(Decision::OutOfOrder { expected }) => issues_response(
            StatusCode::CONFLICT,
            vec![issue(
                "/header/version",
                "archive.version-conflict",
                &format!(
                    "not the next version of the set: expected version {expected} replacing the latest archived version"
                ),
            )],
        ),
        Ok(Decision::Unavailable) | Err(_) => unavailable(),
    }
}

/// `Err` with the `422` answer when `document` is not a valid archive document.
#[expect(clippy::result_large_err, reason = "the error is the response itself")]
fn check_document(archive: &Archive, document: &Value) -> Result<(), Response> {
    let profile = match archive.profiles.select(document) {
        Ok(profile) if profile.id().starts_with("kanta/") => profile,
        Ok(profile) => {
            return Err(issues_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![issue(
                    "",
                    "profile.not-a-document",
                    &format!("a {} record is not an archive document", profile.id()),
                )],
            ));
        }
        Err(problem) => {
            return Err(issues_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![issue(&problem.pointer, &problem.rule, &problem.message)],
            ));
        }
    };
    let problems = archive.profiles.validate_with(profile, document);
    if !problems.is_empty() {
        let issues = problems
            .iter()
            .map(|p| issue(&p.pointer, &p.rule, &p.message))
            .collect();
        return Err(issues_response(StatusCode::UNPROCESSABLE_ENTITY, issues));
    }
    Ok(())
}

fn unavailable() -> Response {
    issues_response(
        StatusCode::SERVICE_UNAVAILABLE,
        vec![issue(
            "",
            "archive.unavailable",
            "the archive cannot store documents right now",
        )],
    )
}

#[derive(Debug)]
struct StoredRow {
    document_oid: String,
    set_oid: String,
    version: i64,
    archived_at: String,
    receipt_id: String,
    digest: String,
}

impl StoredRow {
    fn receipt(&self) -> Value {
        json!({
            "documentOid": self.document_oid,
            "setOid": self.set_oid,
            "version": self.version,
            "archivedAt": self.archived_at,
            "receiptId": self.receipt_id,
        })
    }
}

async fn fetch(State(archive): State<Archive>, Path(oid): Path<String>) -> Response {
    match sqlx::query("SELECT body FROM archived WHERE document_oid = ?")
        .bind(&oid)
        .fetch_optional(&archive.pool)
        .await
    {
        Ok(Some(row)) => {
            let body: String = row.get("body");
            match serde_json::from_str::<Value>(&body) {
                Ok(document) => Json(document).into_response(),
                Err(_) => unavailable(),
            }
        }
        Ok(None) => issues_response(
            StatusCode::NOT_FOUND,
            vec![issue("", "archive.not-found", "no document with this OID")],
        ),
        Err(_) => unavailable(),
    }
}

/// Query of `GET /documents`.
#[derive(Debug, serde::Deserialize)]
pub struct SearchQuery {
    client: Option<String>,
    #[serde(rename = "type")]
    doc_type: Option<String>,
    since: Option<String>,
}

async fn search(State(archive): State<Archive>, Query(query): Query<SearchQuery>) -> Response {
    let Some(client) = query.client.filter(|c| is_hetu(c)) else {
        return issues_response(
            StatusCode::BAD_REQUEST,
            vec![issue(
                "client",
                "archive.bad-query",
                "client must be a valid personal identity code",
            )],
        );
    };
    if let Some(since) = &query.since
        && since.parse::<jiff::Timestamp>().is_err()
    {
        return issues_response(
            StatusCode::BAD_REQUEST,
            vec![issue(
                "since",
                "archive.bad-query",
                "since must be an ISO 8601 date-time with offset",
            )],
        );
    }
    let since = query
        .since
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        // The fixed-width form `archived_at` is stored in: text order is time order.
        .map(gateway::exchange::utc_rfc3339)
        .unwrap_or_default();
    let rows = sqlx::query(
        "SELECT a.body FROM archived a WHERE a.client = ? AND (? = '' OR a.doc_type = ?) AND a.archived_at >= ? \
         AND a.version = (SELECT MAX(b.version) FROM archived b WHERE b.set_oid = a.set_oid) ORDER BY a.archived_at",
    )
    .bind(&client)
    .bind(query.doc_type.clone().unwrap_or_default())
    .bind(query.doc_type.unwrap_or_default())
    .bind(since)
    .fetch_all(&archive.pool)
    .await;
    match rows {
        Ok(rows) => {
            let documents: Vec<Value> = rows
                .iter()
                .filter_map(|row| serde_json::from_str(&row.get::<String, _>("body")).ok())
                .collect();
            Json(json!({ "documents": documents })).into_response()
        }
        Err(_) => unavailable(),
    }
}
