//! `conformance archive serve`: runs the reference archive.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conformance::archive::Archive;

/// The SOSKU conformance tools.
#[derive(Debug, Parser)]
#[command(name = "conformance", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The reference Kanta-style archive.
    Archive {
        #[command(subcommand)]
        action: ArchiveAction,
    },
}

#[derive(Debug, Subcommand)]
enum ArchiveAction {
    /// Serve the archive API: plain HTTP, TLS, or mutual TLS with `--client-ca`.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// The archive's SQLite database.
        #[arg(long, default_value = "data/archive.db")]
        db: PathBuf,
        /// Serve TLS with this certificate chain (PEM)…
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// …and this key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates that chain to this CA (PEM): mutual TLS.
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Cli {
        command:
            Command::Archive {
                action:
                    ArchiveAction::Serve {
                        listen,
                        db,
                        tls_cert,
                        tls_key,
                        client_ca,
                    },
            },
    } = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("conformance: {error}");
            return ExitCode::from(2);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        if let Some(parent) = db.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let archive = Archive::open(&db).await?;
        let (bound, address) = tokio::sync::oneshot::channel();
        let server = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => {
                let client_ca = client_ca.map(std::fs::read).transpose()?;
                let tls = conformance::archive::server_tls(
                    &std::fs::read(cert)?,
                    &std::fs::read(key)?,
                    client_ca.as_deref(),
                )?;
                tokio::spawn(archive.serve_tls(listen, tls, bound))
            }
            _ => tokio::spawn(archive.serve(listen, bound, async {
                let _ = tokio::signal::ctrl_c().await;
            })),
        };
        if let Ok(address) = address.await {
            eprintln!("reference archive listening on http://{address}");
        }
        server.await??;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conformance: {error:#}");
            ExitCode::from(2)
        }
    }
}
