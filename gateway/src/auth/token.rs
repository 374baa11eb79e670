//! Bearer tokens from an OpenID Provider, checked as a resource server checks access tokens.
//!
//! openidconnect does the discovery (typed provider metadata, the issuer in the document must
//! be the one configured); jsonwebtoken checks each token against the provider's JWKS. The
//! rules: the token's `kid` must name a published key, its `alg` must be that key's own
//! algorithm (so `none`, and HS256 keyed with a public key, never pass), and `iss`, `aud`,
//! `exp` and `nbf` must hold. An unknown `kid` makes the JWKS be fetched again, at most once
//! per `jwks_refetch_secs`; a JWKS older than `jwks_max_age_secs` is fetched again, so a
//! retired key stops working.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, Role};

/// Why a token was refused. The messages say what was wrong, never what the token held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT.
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    /// `alg` is not one the key allows (`none`, or HMAC for a public key).
    #[error("the token's signing algorithm is not the algorithm of the key it names")]
    Algorithm,
    /// No key with that id, even after fetching the JWKS again.
    #[error("the token is signed with a key the issuer does not publish")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `aud` is not this gateway.
    #[error("the token is not meant for this gateway (aud)")]
    Audience,
    /// `iss` is not the configured issuer.
    #[error("the token is not from the trusted issuer (iss)")]
    Issuer,
    /// A claim the gateway needs is missing or has the wrong form.
    #[error("the token lacks a required claim or has one in the wrong form ({0})")]
    Claim(String),
    /// The JWKS could not be fetched.
    #[error("the issuer's keys cannot be fetched right now")]
    KeysUnavailable,
}

impl TokenError {
    /// The rule id the log and the OperationOutcome carry.
    #[must_use]
    pub fn rule(&self) -> &'static str {
        match self {
            TokenError::Malformed => "auth.token-malformed",
            TokenError::Algorithm => "auth.token-algorithm",
            TokenError::UnknownKey => "auth.token-unknown-key",
            TokenError::Signature => "auth.token-signature",
            TokenError::Expired => "auth.token-expired",
            TokenError::NotYetValid => "auth.token-not-yet-valid",
            TokenError::Audience => "auth.token-audience",
            TokenError::Issuer => "auth.token-issuer",
            TokenError::Claim(_) => "auth.token-claim",
            TokenError::KeysUnavailable => "auth.keys-unavailable",
        }
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCaller {
    /// `sub`.
    pub subject: String,
    /// `client_id` or `azp`.
    pub client_id: Option<String>,
    /// Roles from the roles claim and the scopes.
    pub roles: Vec<Role>,
}

/// A published key with the one algorithm it may be used with.
struct PublishedKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

struct KeyCache {
    keys: HashMap<String, PublishedKey>,
    fetched_at: Instant,
}

/// Verifies bearer tokens of one issuer.
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    jwks_uri: String,
    http: reqwest::Client,
    roles_claim: Vec<String>,
    scope_prefix: String,
    leeway: u64,
    refetch_every: Duration,
    max_age: Duration,
    cache: RwLock<KeyCache>,
    /// One fetch at a time; holds when the last refetch was tried.
    refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_uri", &self.jwks_uri)
            .finish_non_exhaustive()
    }
}

/// Why the provider could not be used at start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The configured issuer is not a URL.
    #[error("auth.issuer is not a URL: {0}")]
    Issuer(String),
    /// Discovery failed.
    #[error("OpenID discovery at {issuer} failed: {message}")]
    Discovery {
        /// The issuer.
        issuer: String,
        /// What went wrong.
        message: String,
    },
    /// The JWKS could not be fetched or read.
    #[error("the JWKS at {0} cannot be fetched or read")]
    Jwks(String),
}

/// The reqwest error behind openidconnect's HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

async fn discovery_http(
    http: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    builder
        .body(bytes.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

impl TokenVerifier {
    /// Discovers the provider and fetches its keys.
    ///
    /// # Errors
    /// When the issuer cannot be discovered or its JWKS read.
    pub async fn discover(config: &AuthConfig, issuer: &str) -> Result<Self, DiscoveryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DiscoveryError::Discovery {
                issuer: issuer.to_owned(),
                message: e.to_string(),
            })?;
        let issuer_url = openidconnect::IssuerUrl::new(issuer.to_owned())
            .map_err(|e| DiscoveryError::Issuer(e.to_string()))?;
        let client = http.clone();
        let fetch = move |request| discovery_http(client.clone(), request);
        let metadata =
            openidconnect::core::CoreProviderMetadata::discover_async(issuer_url, &fetch)
                .await
                .map_err(|e| DiscoveryError::Discovery {
                    issuer: issuer.to_owned(),
                    message: error_chain(&e),
                })?;
        let jwks_uri = metadata.jwks_uri().url().to_string();
        let verifier = Self {
            issuer: metadata.issuer().as_str().to_owned(),
            audience: config.audience.clone().unwrap_or_default(),
            jwks_uri: jwks_uri.clone(),
            http,
            roles_claim: config
                .roles_claim
                .split('.')
                .map(ToOwned::to_owned)
                .collect(),
            scope_prefix: config.scope_prefix.clone(),
            leeway: config.leeway_secs,
            refetch_every: Duration::from_secs(config.jwks_refetch_secs),
            max_age: Duration::from_secs(config.jwks_max_age_secs),
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: Instant::now(),
            }),
            refetch: tokio::sync::Mutex::new(None),
        };
        let keys = verifier
            .fetch_keys()
            .await
            .map_err(|_| DiscoveryError::Jwks(jwks_uri))?;
        verifier.store_keys(keys);
        Ok(verifier)
    }

    /// The issuer as discovered.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JWKS as published now: keys by id, each with its one algorithm. Keys the gateway
    /// cannot use (encryption keys, symmetric keys, unknown types) are left out.
    async fn fetch_keys(&self) -> Result<HashMap<String, PublishedKey>, TokenError> {
        let response = self
            .http
            .get(&self.jwks_uri)
            .send()
            .await
            .map_err(|_| TokenError::KeysUnavailable)?;
        if !response.status().is_success() {
            return Err(TokenError::KeysUnavailable);
        }
        let document: Value = response
            .json()
            .await
            .map_err(|_| TokenError::KeysUnavailable)?;
        let mut keys = HashMap::new();
        for raw in document
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            if let Some((kid, key)) = published_key(&jwk) {
                keys.insert(kid, key);
            }
        }
        Ok(keys)
    }

    fn store_keys(&self, keys: HashMap<String, PublishedKey>) {
        if let Ok(mut cache) = self.cache.write() {
            cache.keys = keys;
            cache.fetched_at = Instant::now();
        }
    }

    /// Checks a token and reads its bearer.
    ///
    /// # Errors
    /// The first check that failed.
    pub async fn verify(&self, token: &str) -> Result<TokenCaller, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            // A header that decodes but names an algorithm jsonwebtoken does not know
            // (`none` above all) is an algorithm refusal, not a malformed token.
            if header_names_algorithm(token) {
                TokenError::Algorithm
            } else {
                TokenError::Malformed
            }
        })?;
        let kid = header.kid.clone().ok_or(TokenError::UnknownKey)?;
        if self.stale() {
            self.refetch(true).await;
        }
        if !self.knows(&kid) {
            self.refetch(false).await;
        }
        let claims = {
            let cache = self.cache.read().map_err(|_| TokenError::KeysUnavailable)?;
            let published = cache.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
            if header.alg != published.algorithm {
                return Err(TokenError::Algorithm);
            }
            let mut validation = Validation::new(published.algorithm);
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.validate_nbf = true;
            validation.leeway = self.leeway;
            jsonwebtoken::decode::<Map<String, Value>>(token, &published.key, &validation)
                .map_err(|e| classify(&e))?
                .claims
        };
        self.caller(&claims)
    }

    fn knows(&self, kid: &str) -> bool {
        self.cache
            .read()
            .map(|cache| cache.keys.contains_key(kid))
            .unwrap_or(false)
    }

    fn stale(&self) -> bool {
        self.cache
            .read()
            .map(|cache| cache.fetched_at.elapsed() >= self.max_age)
            .unwrap_or(true)
    }

    /// Fetches the JWKS again unless another fetch happened within `jwks_refetch_secs`
    /// (a stale cache is refreshed regardless of that limit). A failed fetch keeps the keys
    /// already known.
    async fn refetch(&self, stale: bool) {
        let mut last = self.refetch.lock().await;
        if !stale && last.is_some_and(|at| at.elapsed() < self.refetch_every) {
            return;
        }
        if stale && !self.stale() {
            return; // another request refreshed it while this one waited
        }
        *last = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(keys) => self.store_keys(keys),
            Err(_) => tracing::warn!(jwks = %self.jwks_uri, "cannot fetch the issuer's JWKS"),
        }
    }

    fn caller(&self, claims: &Map<String, Value>) -> Result<TokenCaller, TokenError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::Claim("sub".to_owned()))?
            .to_owned();
        let client_id = ["client_id", "azp"]
            .iter()
            .find_map(|name| claims.get(*name).and_then(Value::as_str))
            .map(ToOwned::to_owned);
        let mut names: Vec<String> = Vec::new();
        let mut roles_value = claims.get(self.roles_claim.first().map_or("", String::as_str));
        for step in self.roles_claim.iter().skip(1) {
            roles_value = roles_value.and_then(|v| v.get(step));
        }
        names.extend(words(roles_value));
        for scope_claim in ["scope", "scp"] {
            names.extend(
                words(claims.get(scope_claim))
                    .into_iter()
                    .filter_map(|s| s.strip_prefix(&self.scope_prefix).map(ToOwned::to_owned)),
            );
        }
        let mut roles: Vec<Role> = names.iter().filter_map(|n| Role::from_name(n)).collect();
        roles.sort_by_key(|r| r.name());
        roles.dedup();
        Ok(TokenCaller {
            subject,
            client_id,
            roles,
        })
    }
}

/// Whether the token's header is JSON with an `alg` member.
fn header_names_algorithm(token: &str) -> bool {
    use base64::Engine as _;
    let Some(encoded) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|header| header.get("alg").is_some())
}

/// The strings of a claim that is an array of strings or a space-separated string.
fn words(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(ToOwned::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(ToOwned::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A usable signing key and its one algorithm: the JWK's own `alg`, or the only sensible one
/// for its type and curve. Symmetric (`oct`) keys are never taken from a JWKS.
fn published_key(jwk: &Jwk) -> Option<(String, PublishedKey)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    ) {
        return None;
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        _ => return None,
    };
    let algorithm = match jwk.common.key_algorithm {
        None => by_type,
        Some(declared) => {
            let algorithm = signing_algorithm(declared)?;
            let fits = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => matches!(
                    algorithm,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ),
                _ => algorithm == by_type,
            };
            if !fits {
                return None;
            }
            algorithm
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, PublishedKey { key, algorithm }))
}

fn signing_algorithm(declared: KeyAlgorithm) -> Option<Algorithm> {
    Some(match declared {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn classify(error: &jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::Claim(claim.clone())
        }
        _ => TokenError::Malformed,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
