//! Serving HTTPS with rustls (aws-lc-rs, the one crypto provider of the whole build), and
//! handing each request the client certificate its connection presented.
//!
//! Client certificates are asked for, not required, when a client CA is configured: token
//! clients need none. A certificate that is sent must chain to that CA, or the handshake
//! fails; which client it belongs to is decided per request by [`crate::auth`].

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tower_http::add_extension::AddExtension;

use crate::auth::certificate::PeerCertificate;
use crate::config::TlsConfig;

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// The server's rustls configuration from the configured PEM files.
///
/// # Errors
/// Names the file that is missing or does not parse.
pub fn server_config(tls: &TlsConfig) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (Some(cert_path), Some(key_path)) = (&tls.cert, &tls.key) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = CertificateDer::pem_slice_iter(&read(cert_path, "tls.cert")?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("tls.cert {} is not PEM", cert_path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "tls.cert {} holds no certificate",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_slice(&read(key_path, "tls.key")?)
        .with_context(|| format!("tls.key {} is not a PEM private key", key_path.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(ca_path, "tls.client_ca")?) {
                roots
                    .add(cert.with_context(|| {
                        format!("tls.client_ca {} is not PEM", ca_path.display())
                    })?)
                    .with_context(|| {
                        format!(
                            "tls.client_ca {} is not a CA certificate",
                            ca_path.display()
                        )
                    })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .context("tls.client_ca cannot verify client certificates")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("tls.cert and tls.key do not belong together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// A rustls acceptor that adds the connection's client certificate to every request.
#[derive(Clone, Debug)]
pub struct ClientCertificateAcceptor {
    inner: RustlsAcceptor<DefaultAcceptor>,
}

impl ClientCertificateAcceptor {
    /// Over a rustls configuration.
    #[must_use]
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            inner: RustlsAcceptor::new(RustlsConfig::from_config(config)),
        }
    }
}

impl<I, S> Accept<I, S> for ClientCertificateAcceptor
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = TlsStream<I>;
    type Service = AddExtension<S, PeerCertificate>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.clone().into_owned());
            Ok((
                stream,
                AddExtension::new(service, PeerCertificate(certificate)),
            ))
        })
    }
}
