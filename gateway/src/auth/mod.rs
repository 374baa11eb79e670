//! Who may call, and under which role: bearer tokens from an OpenID Provider
//! ([`token`]), system clients by TLS client certificate ([`certificate`]), and the guard
//! each group of routes sits behind.
//!
//! The guard authenticates the request, checks that the caller holds one of the roles the
//! route allows, and hands the handler an [`Actor`] for the audit log. A refusal is a 401 or
//! 403 OperationOutcome that says what was wrong without repeating what the token held, and
//! is itself written to the audit log; if that entry cannot be written the answer is 503,
//! as for any exchange. With authentication off (no issuer, no certificate clients) every
//! caller is `local` with every role, and the server only listens on loopback.

pub mod certificate;
pub mod refusal_limit;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::audit::{self, Actor, AuditEntry, LoggedIssue};
use crate::config::{Config, Role};
use crate::exchange::Gateway;
use crate::outcome::{Issue, IssueCode, OperationOutcome};

use certificate::{CertificateClients, PeerCertificate};
use refusal_limit::{Admission, RefusalLimiter, Source};
use token::{TokenError, TokenVerifier};

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A bearer token.
    Token,
    /// A TLS client certificate.
    Certificate,
    /// Authentication is off (loopback only).
    Local,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`, or the certificate client's name.
    pub subject: String,
    /// The OAuth client id, or the certificate client's name.
    pub client_id: Option<String>,
    /// The roles held.
    pub roles: Vec<Role>,
    /// How the caller authenticated.
    pub method: Method,
}

impl Caller {
    fn local() -> Self {
        Self {
            subject: "local".to_owned(),
            client_id: None,
            roles: Role::ALL.to_vec(),
            method: Method::Local,
        }
    }

    /// The first of `allowed` the caller holds.
    #[must_use]
    pub fn role_for(&self, allowed: &[Role]) -> Option<Role> {
        allowed.iter().copied().find(|r| self.roles.contains(r))
    }

    fn actor(&self, role: Option<Role>) -> Actor {
        Actor {
            subject: self.subject.clone(),
            client_id: self.client_id.clone(),
            role: role.map_or_else(|| "none".to_owned(), |r| r.name().to_owned()),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 403.
    pub status: StatusCode,
    /// Rule id (`auth.…`).
    pub rule: &'static str,
    /// What was wrong, without token contents.
    pub message: String,
    /// Who, when known (a 403).
    pub caller: Option<Caller>,
}

impl Refusal {
    fn unauthenticated(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            rule,
            message: message.into(),
            caller: None,
        }
    }
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        Self::unauthenticated(error.rule(), error.to_string())
    }
}

/// What a request offers as proof of who sent it.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The `Authorization` header.
    pub authorization: Option<HeaderValue>,
    /// The TLS client certificate of the connection.
    pub certificate: Option<rustls::pki_types::CertificateDer<'static>>,
}

impl Credentials {
    /// The credentials of a request.
    #[must_use]
    pub fn of(request: &Request) -> Self {
        Self {
            authorization: request.headers().get(header::AUTHORIZATION).cloned(),
            certificate: request
                .extensions()
                .get::<PeerCertificate>()
                .and_then(|peer| peer.0.clone()),
        }
    }
}

/// Authenticates requests as configured.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: Option<TokenVerifier>,
    certificates: CertificateClients,
}

impl Authenticator {
    /// Discovers the OpenID Provider (if configured) and indexes the certificate clients.
    ///
    /// # Errors
    /// When the provider cannot be discovered: the gateway does not start half-secured.
    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        let tokens = match &config.auth.issuer {
            Some(issuer) => Some(TokenVerifier::discover(&config.auth, issuer).await?),
            None => None,
        };
        Ok(Self {
            tokens,
            certificates: CertificateClients::new(&config.auth.clients),
        })
    }

    /// Whether any authentication is configured.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.tokens.is_some() || !self.certificates.is_empty()
    }

    /// The issuer tokens are checked against, if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.tokens.as_ref().map(TokenVerifier::issuer)
    }

    /// Who made the request.
    ///
    /// # Errors
    /// A 401 refusal naming what was wrong.
    pub async fn authenticate(&self, credentials: Credentials) -> Result<Caller, Refusal> {
        if !self.enabled() {
            return Ok(Caller::local());
        }
        if let Some(authorization) = credentials.authorization {
            let token = authorization
                .to_str()
                .ok()
                .and_then(|value| {
                    let (scheme, token) = value.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .ok_or_else(|| {
                    Refusal::unauthenticated(
                        "auth.scheme",
                        "the Authorization header must be `Bearer <token>`",
                    )
                })?;
            let verifier = self.tokens.as_ref().ok_or_else(|| {
                Refusal::unauthenticated(
                    "auth.tokens-not-accepted",
                    "this gateway accepts client certificates, not bearer tokens",
                )
            })?;
            let caller = verifier.verify(token).await?;
            return Ok(Caller {
                subject: caller.subject,
                client_id: caller.client_id,
                roles: caller.roles,
                method: Method::Token,
            });
        }
        if let Some(der) = credentials.certificate {
            let client = self.certificates.identify(&der).ok_or_else(|| {
                Refusal::unauthenticated(
                    "auth.certificate-unknown",
                    "the client certificate is not registered to any client (by fingerprint or subject alternative name)",
                )
            })?;
            return Ok(Caller {
                subject: client.name.clone(),
                client_id: Some(client.name.clone()),
                roles: client.roles.clone(),
                method: Method::Certificate,
            });
        }
        Err(Refusal::unauthenticated(
            "auth.credentials-missing",
            "authentication is required: send a bearer token or a registered client certificate",
        ))
    }
}

/// The state of one group of routes' guard.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The authenticator.
    pub auth: Arc<Authenticator>,
    /// Where refusals are logged.
    pub gateway: Gateway,
    /// How many refusals are logged one by one.
    pub refusals: Arc<RefusalLimiter>,
    /// The roles the routes allow.
    pub allowed: &'static [Role],
}

/// The answer to a refusal past a limit ([`refusal_limit`]): 429 with `Retry-After`.
fn too_many_refusals(retry_after: std::time::Duration) -> Response {
    let issue = Issue::error(
        IssueCode::Throttled,
        "auth.refusals-limited",
        "",
        "too many refused requests from this address; the credentials were not accepted, and further refusals are counted rather than logged one by one until the address stays under the limit",
    );
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(OperationOutcome::from_issues(&[issue], "ok")),
    )
        .into_response();
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// Middleware: authenticate, check the role, hand the handler its [`Actor`]; or refuse
/// (audited).
pub async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let refusal = match guard.auth.authenticate(Credentials::of(&request)).await {
        Ok(caller) => match caller.role_for(guard.allowed) {
            Some(role) => {
                request.extensions_mut().insert(caller.actor(Some(role)));
                return next.run(request).await;
            }
            None => Refusal {
                status: StatusCode::FORBIDDEN,
                rule: "auth.role",
                message: format!(
                    "this route needs one of the roles: {}",
                    guard
                        .allowed
                        .iter()
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                caller: Some(caller),
            },
        },
        Err(refusal) => refusal,
    };
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let operation = format!("{} {route}", request.method());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let source = guard.refusals.source(peer, request.headers());
    drop(request);
    refuse(&guard, operation, refusal, source).await
}

async fn refuse(guard: &Guard, operation: String, refusal: Refusal, source: Source) -> Response {
    let actor = refusal
        .caller
        .as_ref()
        .map_or_else(Actor::anonymous, |caller| caller.actor(None));
    match guard.refusals.admit(source, refusal.rule) {
        Admission::Log => {}
        Admission::Open { limit, retry_after } => {
            let entry = guard.refusals.opening_entry(
                source,
                limit,
                operation,
                actor,
                (refusal.rule, &refusal.message, refusal.status.as_u16()),
            );
            if guard.gateway.record(entry).await.is_err() {
                return crate::http::unavailable();
            }
            return too_many_refusals(retry_after);
        }
        Admission::Count { retry_after } => return too_many_refusals(retry_after),
    }
    let digest = audit::digest(operation.as_bytes());
    let mut entry = AuditEntry::event("access-refused", operation, actor, "refused", digest);
    entry.issues = vec![LoggedIssue {
        rule: refusal.rule.to_owned(),
        pointer: String::new(),
        message: refusal.message.clone(),
    }];
    entry.details = Some(json!({
        "status": refusal.status.as_u16(),
        "peer": source.to_string(),
    }));
    if guard.gateway.record(entry).await.is_err() {
        return crate::http::unavailable();
    }
    let code = if refusal.status == StatusCode::FORBIDDEN {
        IssueCode::Forbidden
    } else {
        IssueCode::Login
    };
    let issue = Issue::error(code, refusal.rule, "", refusal.message.clone());
    let mut response = (
        refusal.status,
        axum::Json(OperationOutcome::from_issues(&[issue], "ok")),
    )
        .into_response();
    if refusal.status == StatusCode::UNAUTHORIZED {
        let challenge = if refusal.rule == "auth.credentials-missing" {
            "Bearer realm=\"sosku-gateway\"".to_owned()
        } else {
            format!(
                "Bearer realm=\"sosku-gateway\", error=\"invalid_token\", error_description=\"{}\"",
                refusal.message.replace('"', "'")
            )
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}
