//! The service's configuration: one typed struct, read from a TOML file and then from
//! environment variables (`GATEWAY_...`, `__` between levels: `GATEWAY_LIMITS__BODY_BYTES`).
//!
//! figment does the layering and names the bad field when a value does not fit; every struct
//! denies unknown fields, so a typo in the file stops start-up instead of being ignored. With
//! no file at all the gateway runs on the embedded default: SQLite in `./data`, loopback only.
//! Secrets (the audit key) are never logged: [`Secret`] prints as `***`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Without authentication configured only loopback is allowed.
    pub listen: SocketAddr,
    /// Directory for the embedded SQLite database and the generated audit key.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://…` or `postgres://…`; default `sqlite://<data_dir>/gateway.db`.
    pub database_url: Option<String>,
    /// Load profiles from this directory instead of the built-in copy.
    pub profiles_dir: Option<PathBuf>,
    /// Load mappings from this directory instead of the built-in copy.
    pub mappings_dir: Option<PathBuf>,
    /// The audit log.
    pub audit: AuditConfig,
    /// Request limits.
    pub limits: Limits,
    /// What the gateway writes as `producer` in documents, and `custodian.type`.
    pub producer: Producer,
    /// Where accepted documents are delivered.
    pub archive: ArchiveConfig,
    /// Who may call: OpenID Connect bearer tokens and certificate clients. Off when neither
    /// an issuer nor a client is configured (then loopback only).
    pub auth: AuthConfig,
    /// Serving HTTPS (and asking for client certificates).
    pub tls: TlsConfig,
}

/// A role a caller can hold; each route allows only its roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends and fetches records (exchanges).
    Integrator,
    /// Reads and verifies the audit log.
    Auditor,
    /// Validates records and runs conformance checks.
    Vendor,
    /// Operates the service (deliveries).
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Integrator, Role::Auditor, Role::Vendor, Role::Admin];

    /// The role's name as tokens and the log spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Role::Integrator => "integrator",
            Role::Auditor => "auditor",
            Role::Vendor => "vendor",
            Role::Admin => "admin",
        }
    }

    /// The role a name stands for.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }
}

/// Authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The OpenID Provider's issuer URL; its discovery document names the JWKS.
    pub issuer: Option<String>,
    /// The audience (`aud`) tokens must carry: this gateway's resource identifier.
    pub audience: Option<String>,
    /// The claim holding roles: an array or a space-separated string; a dotted path reaches
    /// into objects (`realm_access.roles`). Scopes (`scope`, `scp`) are read as well.
    pub roles_claim: String,
    /// Prefix of scope values that name roles (`""`: the scope `auditor` grants auditor).
    pub scope_prefix: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// On a token naming an unknown key, the JWKS is fetched again at most this often.
    pub jwks_refetch_secs: u64,
    /// The JWKS is fetched again when older than this, so retired keys stop working.
    pub jwks_max_age_secs: u64,
    /// System clients identified by their TLS client certificate.
    pub clients: Vec<CertificateClient>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            roles_claim: "roles".to_owned(),
            scope_prefix: String::new(),
            leeway_secs: 30,
            jwks_refetch_secs: 60,
            jwks_max_age_secs: 3600,
            clients: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Whether any authentication is configured.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.issuer.is_some() || !self.clients.is_empty()
    }
}

/// A system client known by its certificate: by SHA-256 fingerprint of the certificate, or
/// by a subject alternative name (DNS name or URI) on a certificate that chains to the
/// configured client CA. Never by common name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateClient {
    /// The name the audit log records.
    pub name: String,
    /// SHA-256 of the DER certificate, hex (colons allowed).
    #[serde(default)]
    pub sha256: Option<String>,
    /// An allow-listed subject alternative name (DNS name or URI).
    #[serde(default)]
    pub san: Option<String>,
    /// Its roles.
    pub roles: Vec<Role>,
}

/// HTTPS settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server certificate chain (PEM). HTTPS when set.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificate(s) (PEM) client certificates must chain to; asks clients for a
    /// certificate (optional: token clients need none).
    pub client_ca: Option<PathBuf>,
}

/// The archive accepted documents are delivered to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Base URL of the archive API (`POST {url}/documents`); no deliveries when absent
    /// (accepted documents wait in the outbox).
    pub url: Option<String>,
    /// Timeout of one delivery attempt, in seconds.
    pub timeout_secs: u64,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    pub retry_base_ms: u64,
    /// Longest retry delay in seconds.
    pub retry_max_secs: u64,
    /// CA certificate(s) (PEM) the archive's server certificate must chain to; without it
    /// the system's roots are used.
    pub ca_cert: Option<PathBuf>,
    /// The organisation's client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub client_key: Option<PathBuf>,
    /// A bearer token, where the archive asks for one.
    pub bearer_token: Option<Secret>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout_secs: 10,
            retry_base_ms: 200,
            retry_max_secs: 60,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            bearer_token: None,
        }
    }
}

/// Audit settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Key of the HMAC that stands in for the hetu in the log. When absent, a random key is
    /// generated once and kept in `<data_dir>/audit-hmac.key`.
    pub hmac_key: Option<Secret>,
    /// Default window of audit queries, in days (two years: the law's default for a client's
    /// request about the use of their data).
    pub default_window_days: u32,
    /// Largest number of exchanges committed in one transaction (group commit). Unset: the
    /// backend's own ([`AuditConfig::batch_size`]).
    pub max_batch: Option<usize>,
}

impl AuditConfig {
    /// The largest batch the writer commits in one transaction: `max_batch`, or 1 024 on
    /// SQLite and 2 048 on PostgreSQL. PostgreSQL takes a batch's rows with `COPY`, and a
    /// batch's fixed costs (its reads, the lock, the commit's round trips) spread over twice
    /// the rows made its stream 6 % faster (20 900 – 21 600 records/s against 19 100 –
    /// 20 200, alternating runs); SQLite's stream was no faster with them.
    #[must_use]
    pub fn batch_size(&self, backend: crate::store::Backend) -> usize {
        self.max_batch.unwrap_or(match backend {
            crate::store::Backend::Sqlite => 1024,
            crate::store::Backend::Postgres => 2048,
        })
    }
}

/// Request limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (single record or batch); NDJSON streams are limited per line.
    pub body_bytes: usize,
    /// Largest NDJSON line.
    pub ndjson_line_bytes: usize,
    /// Per-request timeout in seconds (NDJSON streams: per record).
    pub request_timeout_secs: u64,
    /// Seconds to let in-flight exchanges finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Refused requests per minute from one client address (an IPv6 /64 counts as one
    /// address) that are logged one by one; past it a refusal is answered 429 and counted
    /// ([`crate::auth::refusal_limit`]). `0`: no limit per address.
    pub refusals_per_minute: u32,
    /// The same for all addresses together. `0`: no overall limit.
    pub refusals_per_minute_all: u32,
    /// Proxies in front of the gateway (addresses or CIDR ranges) whose `X-Forwarded-For`
    /// (or `Forwarded`, see `forwarded_header`) names the client: the refusal limit counts, and
    /// refusals log, the address the nearest untrusted hop gives. Without any, the peer's own
    /// address counts.
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies name clients in: `x-forwarded-for` (the default) or
    /// `forwarded` (RFC 7239). Only one is read: a proxy passes on whatever a client sent in
    /// the header it does not set itself, so believing both would let clients choose their
    /// address.
    pub forwarded_header: ForwardedHeader,
}

/// The header trusted proxies name clients in (`limits.forwarded_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1, …`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, as HTTP/2 and `http` spell it (lower case).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The producer block of documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Producer {
    /// Vendor name.
    pub vendor: String,
    /// Product name.
    pub product: String,
    /// `1` public, `2` private controller.
    pub custodian_type: String,
    /// Document language.
    pub language: String,
}

/// A secret value: deserialises from a string, never prints.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            profiles_dir: None,
            mappings_dir: None,
            audit: AuditConfig::default(),
            limits: Limits::default(),
            producer: Producer::default(),
            archive: ArchiveConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            hmac_key: None,
            default_window_days: 730,
            max_batch: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 32 * 1024 * 1024,
            ndjson_line_bytes: 16 * 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
            refusals_per_minute: 60,
            refusals_per_minute_all: 600,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
        }
    }
}

impl Default for Producer {
    fn default() -> Self {
        Self {
            vendor: "SOSKU-yhteistyö".to_owned(),
            product: "sosku-gateway".to_owned(),
            custodian_type: "1".to_owned(),
            language: "fi".to_owned(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value does not fit its field; figment's message names the field and the source.
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// Fields that do not fit together.
    #[error("configuration: {0}")]
    Rule(String),
    /// The file named does not exist.
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
}

impl Config {
    /// Defaults, then the file (if given), then `GATEWAY_*` environment variables.
    ///
    /// # Errors
    /// Names the field whose value does not fit, or the missing file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Missing(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("GATEWAY_").split("__").ignore(&[
            "PROFILES_DIR",
            "MAPPINGS_DIR",
            "CONFIG",
        ]));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        config.check()?;
        Ok(config)
    }

    /// Rules between fields that the types alone cannot say.
    ///
    /// # Errors
    /// Names the field.
    pub fn check(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        if auth.issuer.is_some() && auth.audience.is_none() {
            return Err(ConfigError::Rule(
                "auth.audience: required when auth.issuer is set (the `aud` tokens must carry)"
                    .to_owned(),
            ));
        }
        for (i, client) in auth.clients.iter().enumerate() {
            if client.sha256.is_none() && client.san.is_none() {
                return Err(ConfigError::Rule(format!(
                    "auth.clients[{i}] ({}): give `sha256` or `san`; a common name alone never identifies a client",
                    client.name
                )));
            }
            if let Some(fingerprint) = &client.sha256
                && crate::auth::certificate::normalise_fingerprint(fingerprint).is_none()
            {
                return Err(ConfigError::Rule(format!(
                    "auth.clients[{i}].sha256: not a SHA-256 fingerprint (64 hex digits)"
                )));
            }
            if client.roles.is_empty() {
                return Err(ConfigError::Rule(format!(
                    "auth.clients[{i}].roles: a client needs at least one role"
                )));
            }
        }
        if !auth.clients.is_empty() && self.tls.client_ca.is_none() {
            return Err(ConfigError::Rule(
                "tls.client_ca: required when auth.clients are configured (client certificates must chain to it)"
                    .to_owned(),
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Rule(
                "tls.cert and tls.key: give both or neither".to_owned(),
            ));
        }
        let limits = &self.limits;
        if limits.refusals_per_minute_all != 0
            && limits.refusals_per_minute_all < limits.refusals_per_minute
        {
            return Err(ConfigError::Rule(
                "limits.refusals_per_minute_all: below limits.refusals_per_minute (the limit for all addresses together cannot be lower than for one)"
                    .to_owned(),
            ));
        }
        for (i, proxy) in limits.trusted_proxies.iter().enumerate() {
            if crate::auth::refusal_limit::parse_network(proxy).is_none() {
                return Err(ConfigError::Rule(format!(
                    "limits.trusted_proxies[{i}]: '{proxy}' is neither an IP address nor a CIDR range"
                )));
            }
        }
        if self.tls.client_ca.is_some() && self.tls.cert.is_none() {
            return Err(ConfigError::Rule(
                "tls.client_ca: needs tls.cert and tls.key (client certificates need HTTPS)"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The database URL in effect.
    #[must_use]
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("gateway.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_default_to_the_backends_size_unless_set() {
        use crate::store::Backend;
        let audit = AuditConfig::default();
        assert_eq!(audit.batch_size(Backend::Sqlite), 1024);
        assert_eq!(audit.batch_size(Backend::Postgres), 2048);
        let set: AuditConfig = toml::from_str("max_batch = 300").expect("parses");
        assert_eq!(set.batch_size(Backend::Postgres), 300);
        assert_eq!(set.batch_size(Backend::Sqlite), 300);
    }

    #[test]
    fn defaults_listen_on_loopback_with_sqlite() {
        let config = Config::default();
        assert!(config.listen.ip().is_loopback());
        assert!(config.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn a_bad_field_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, "[limits]\nbody_bytes = \"lots\"\n").expect("write");
        let error = Config::load(Some(&file))
            .expect_err("bad value")
            .to_string();
        assert!(error.contains("body_bytes"), "{error}");
        std::fs::write(&file, "listen_on = \"0.0.0.0:1\"\n").expect("write");
        let error = Config::load(Some(&file))
            .expect_err("unknown field")
            .to_string();
        assert!(error.contains("listen_on"), "{error}");
    }

    #[test]
    fn an_overall_refusal_limit_below_the_per_address_one_is_refused() {
        let mut config = Config::default();
        config.limits.refusals_per_minute = 100;
        config.limits.refusals_per_minute_all = 50;
        let error = config.check().expect_err("inconsistent").to_string();
        assert!(error.contains("limits.refusals_per_minute_all"), "{error}");
        config.limits.refusals_per_minute_all = 0;
        assert!(config.check().is_ok(), "0 turns the overall limit off");
        config.limits.trusted_proxies = vec!["10.0.0.0/8".into(), "10.1.2.300".into()];
        let error = config.check().expect_err("not an address").to_string();
        assert!(error.contains("limits.trusted_proxies[1]"), "{error}");
    }

    #[test]
    fn the_example_configuration_loads_and_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway.example.toml");
        let example = Config::load(Some(&path)).expect("the example loads");
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&example.limits).expect("limits"),
            serde_json::to_value(&defaults.limits).expect("limits")
        );
        assert_eq!(example.listen, defaults.listen);
        assert!(example.check().is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret("very secret".to_owned());
        assert_eq!(format!("{secret:?}"), "***");
    }
}
