//! The reference Kanta-style archive: `shared/spec/archive-api.md` as a real HTTP peer for the
//! gateway's tests and for vendors to compare their archives with.
//!
//! It validates every document against the Kanta-style profiles (`422` with the issues),
//! enforces the version rules (the next version of a set only, replacing the latest: else
//! `409`), answers a resend of an archived version with `200` and the same receipt (the same
//! version with other content is a `409`), and keeps what it archives in SQLite. One writer at
//! a time (a mutex around the version check and insert) keeps "exactly once" simple.
//! It serves plain HTTP, or TLS with rustls (aws-lc-rs); given a client CA it requires a
//! client certificate that chains to it (mutual TLS), as a real archive does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gateway::audit::digest;
use gateway::exchange::now_utc;
use gateway::identifiers::is_hetu;
use gateway::profiles::{ProfileRegistry, ProfileSource};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// The archive's state.
#[derive(Debug, Clone)]
pub struct Archive {
    profiles: Arc<ProfileRegistry>,
    pool: SqlitePool,
    write: Arc<Mutex<()>>,
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

impl Archive {
    /// Opens (creating) the archive's SQLite database at `path`.
    ///
    /// # Errors
    /// When the profiles do not load or the database cannot be opened.
    pub async fn open(path: &std::path::Path) -> anyhow::Result<Self> {
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
        sqlx::query(SCHEMA).execute(&pool).await?;
        Ok(Self {
            profiles: Arc::new(profiles),
            pool,
            write: Arc::new(Mutex::new(())),
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
    let profile = match archive.profiles.select(&document) {
        Ok(profile) if profile.id().starts_with("kanta/") => profile,
        Ok(profile) => {
            return issues_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![issue(
                    "",
                    "profile.not-a-document",
                    &format!("a {} record is not an archive document", profile.id()),
                )],
            );
        }
        Err(problem) => {
            return issues_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![issue(&problem.pointer, &problem.rule, &problem.message)],
            );
        }
    };
    let problems = archive.profiles.validate_with(profile, &document);
    if !problems.is_empty() {
        let issues = problems
            .iter()
            .map(|p| issue(&p.pointer, &p.rule, &p.message))
            .collect();
        return issues_response(StatusCode::UNPROCESSABLE_ENTITY, issues);
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

    let _guard = archive.write.lock().await;
    match stored(&archive.pool, &document_oid).await {
        Ok(Some(row)) if row.digest == content_digest => {
            return (StatusCode::OK, Json(row.receipt())).into_response();
        }
        Ok(Some(_)) => {
            return issues_response(
                StatusCode::CONFLICT,
                vec![issue(
                    "/header/documentOid",
                    "archive.same-version-other-content",
                    "this version is already archived with other content",
                )],
            );
        }
        Ok(None) => {}
        Err(_) => return unavailable(),
    }
    let latest = match sqlx::query("SELECT document_oid, version FROM archived WHERE set_oid = ? ORDER BY version DESC LIMIT 1")
        .bind(&set_oid)
        .fetch_optional(&archive.pool)
        .await
    {
        Ok(row) => row.map(|r| (r.get::<String, _>("document_oid"), r.get::<i64, _>("version"))),
        Err(_) => return unavailable(),
    };
    let in_order = match &latest {
        None => version == 1,
        Some((latest_oid, latest_version)) => {
            version == latest_version + 1 && replaces == *latest_oid
        }
    };
    if !in_order {
        let expected = latest.as_ref().map_or(1, |(_, v)| v + 1);
        return issues_response(
            StatusCode::CONFLICT,
            vec![issue(
                "/header/version",
                "archive.version-conflict",
                &format!(
                    "not the next version of the set: expected version {expected} replacing the latest archived version"
                ),
            )],
        );
    }
    let row = StoredRow {
        document_oid,
        set_oid,
        version,
        archived_at: now_utc(),
        receipt_id: uuid::Uuid::new_v4().to_string(),
        digest: content_digest,
    };
    let inserted = sqlx::query(
        "INSERT INTO archived (document_oid, set_oid, version, client, doc_type, archived_at, receipt_id, digest, body) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.document_oid)
    .bind(&row.set_oid)
    .bind(row.version)
    .bind(text("/header/client/hetu"))
    .bind(text("/header/documentType/code"))
    .bind(&row.archived_at)
    .bind(&row.receipt_id)
    .bind(&row.digest)
    .bind(&body_text)
    .execute(&archive.pool)
    .await;
    match inserted {
        Ok(_) => (StatusCode::CREATED, Json(row.receipt())).into_response(),
        Err(_) => unavailable(),
    }
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

async fn stored(pool: &SqlitePool, document_oid: &str) -> Result<Option<StoredRow>, sqlx::Error> {
    let row = sqlx::query("SELECT document_oid, set_oid, version, archived_at, receipt_id, digest FROM archived WHERE document_oid = ?")
        .bind(document_oid)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| StoredRow {
        document_oid: r.get("document_oid"),
        set_oid: r.get("set_oid"),
        version: r.get("version"),
        archived_at: r.get("archived_at"),
        receipt_id: r.get("receipt_id"),
        digest: r.get("digest"),
    }))
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
        .map(|t| t.to_string())
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
