//! Building and running the service: `App::build(config)` returns a bound server whose
//! `port()` tests can read, so the whole stack runs on port 0 in tests exactly as in
//! production.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::audit::ClientHasher;
use crate::auth::Authenticator;
use crate::auth::refusal_limit::RefusalLimiter;
use crate::config::Config;
use crate::exchange::{Engine, Gateway};
use crate::http::{self, AppState};
use crate::mapping::{MappingSet, MappingSource};
use crate::profiles::{ProfileRegistry, ProfileSource};
use crate::store::Store;

/// A bound, ready-to-run service.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
}

/// Loads profiles and mappings as configured (the built-in copies by default).
///
/// # Errors
/// When a profile or mapping does not load or check.
pub fn load_engine(config: &Config, hasher: ClientHasher) -> anyhow::Result<Engine> {
    let profiles = ProfileRegistry::load(&match &config.profiles_dir {
        Some(dir) => ProfileSource::Directory(dir.clone()),
        None => ProfileSource::Embedded,
    })?;
    let mappings = MappingSet::load(
        &match &config.mappings_dir {
            Some(dir) => MappingSource::Directory(dir.clone()),
            None => MappingSource::Embedded,
        },
        &profiles,
    )
    .map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the mappings do not check:\n{}", lines.join("\n"))
    })?;
    Ok(Engine {
        profiles,
        mappings,
        hasher,
        producer: config.producer.clone(),
        context_values: Arc::new(crate::mapping::context::context_values(&config.producer)),
    })
}

/// The audit HMAC key: configured, or generated once into the data directory.
///
/// # Errors
/// When the key file cannot be read or written.
pub fn audit_key(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = &config.audit.hmac_key {
        anyhow::ensure!(
            key.0.len() >= 16,
            "audit.hmac_key must be at least 16 characters"
        );
        return Ok(key.0.as_bytes().to_vec());
    }
    let path = config.data_dir.join("audit-hmac.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return hex::decode(existing.trim())
            .with_context(|| format!("{} is not a hex key", path.display()));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    std::fs::write(&path, hex::encode(&key))
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    tracing::warn!(path = %path.display(), "generated a new audit HMAC key; keep it: client searches depend on it");
    Ok(key)
}

/// Connects the store, creating the data directory for SQLite.
///
/// # Errors
/// When the database cannot be reached or migrated.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
    }
    Store::connect(&url).await.with_context(|| {
        let shown = url.split('@').next_back().unwrap_or(&url).to_owned();
        format!("cannot open the database {shown}")
    })
}

impl App {
    /// Loads everything, connects the store and binds the listener.
    ///
    /// # Errors
    /// A message naming what is wrong (configuration, profiles, mappings, database, port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.check()?;
        anyhow::ensure!(
            config.listen.ip().is_loopback() || config.auth.enabled(),
            "refusing to listen on {} without authentication; authentication is not configured (no [auth] issuer or clients), so the gateway serves loopback only",
            config.listen
        );
        let tls = crate::tls::server_config(&config.tls)?;
        let auth = Arc::new(Authenticator::from_config(&config).await?);
        let hasher = ClientHasher::new(&audit_key(&config)?);
        let engine = Arc::new(load_engine(&config, hasher)?);
        let store = open_store(&config).await?;
        let gateway = Gateway::start(
            engine,
            store.clone(),
            config.audit.batch_size(store.backend()),
        );
        if config.archive.url.is_some() {
            crate::delivery::archive_client(&config.archive)?;
            tokio::spawn(crate::delivery::run(
                store.clone(),
                gateway.clone(),
                config.archive.clone(),
            ));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        if auth.enabled() {
            tracing::info!(
                issuer = auth.issuer().unwrap_or("none"),
                certificate_clients = config.auth.clients.len(),
                "authentication is on"
            );
            if tls.is_none() && !config.listen.ip().is_loopback() {
                tracing::warn!(
                    "serving plain HTTP beyond loopback: bearer tokens cross the network in clear unless a TLS proxy stands in front"
                );
            }
        } else {
            tracing::warn!("authentication is off: serving loopback only");
        }
        Ok(Self {
            listener,
            tls,
            state: AppState {
                refusals: Arc::new(RefusalLimiter::new(&config.limits)),
                gateway,
                store,
                config: Arc::new(config),
                auth,
            },
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Where it serves: scheme, address and port (loopback shown as `127.0.0.1`).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match self.listener.local_addr() {
            Ok(address) if address.ip().is_unspecified() => {
                format!("{scheme}://0.0.0.0:{}", address.port())
            }
            Ok(address) => format!("{scheme}://{address}"),
            Err(_) => format!("{scheme}://{}", self.state.config.listen),
        }
    }

    /// The store (tests inspect it).
    #[must_use]
    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight exchanges finish.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router =
            http::router(self.state.clone()).layer(tower_http::trace::TraceLayer::new_for_http());
        let address = self.listener.local_addr()?;
        let (stop_counting, stopped) = tokio::sync::oneshot::channel::<()>();
        let counting = tokio::spawn(Arc::clone(&self.state.refusals).write_counts_until(
            self.state.gateway.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let served = self.serve(router, address, shutdown).await;
        // Refusals counted since the last period are logged before the gateway stops.
        let _ = stop_counting.send(());
        let _ = counting.await;
        served
    }

    async fn serve(
        self,
        router: axum::Router,
        address: std::net::SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Each request knows its peer's address (the refusal limit counts by it).
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let Some(tls) = self.tls else {
            tracing::info!(%address, "gateway listening (HTTP)");
            axum::serve(self.listener, service)
                .with_graceful_shutdown(shutdown)
                .await?;
            return Ok(());
        };
        tracing::info!(%address, "gateway listening (HTTPS)");
        let listener = self.listener.into_std()?;
        // tokio panics on a blocking socket.
        listener.set_nonblocking(true)?;
        let handle = axum_server::Handle::new();
        let grace = std::time::Duration::from_secs(self.state.config.limits.shutdown_grace_secs);
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(grace));
        });
        axum_server::from_tcp(listener)?
            .acceptor(crate::tls::ClientCertificateAcceptor::new(tls))
            .handle(handle)
            .serve(service)
            .await?;
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight exchanges");
}
