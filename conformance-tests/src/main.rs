//! The `conformance` command: `run` the suite against vendor files, the profiles, a gateway or
//! an archive; list the `cases`; `archive serve` the reference archive. Thin: the logic is in
//! the library.
//!
//! Exit statuses of `run`: 0 every case passed (skipped cases do not count), 1 some case
//! failed, 2 some case errored (the harness could not run it) or the run could not start.

use std::io::Write as _;

/// mimalloc: the archive builds and drops many small JSON values per
/// document, where the system allocator costs a fifth of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use conformance::archive::Archive;
use conformance::cases::Suite;
use conformance::report::Report;
use conformance::targets::{self, RunOptions};

/// The SOSKU conformance tools.
#[derive(Debug, Parser)]
#[command(name = "conformance", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the suite against a target.
    Run {
        #[command(subcommand)]
        target: RunTarget,
    },
    /// List the suite's cases: the count per spec file and target, or every case.
    Cases {
        /// Every case with its id, target, spec section and title.
        #[arg(long)]
        list: bool,
    },
    /// The reference Kanta-style archive.
    Archive {
        #[command(subcommand)]
        action: ArchiveAction,
    },
}

#[derive(Debug, Subcommand)]
enum RunTarget {
    /// A vendor's export files or documents (single JSON, batch envelope or NDJSON; `-` is
    /// standard input), checked against the suite's profiles; one result per record.
    Files {
        /// The files.
        #[arg(required = true)]
        files: Vec<String>,
        /// Apply this profile to every record instead of choosing by MSG_TYPE or
        /// header.documentType.
        #[arg(long)]
        profile: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// The profile cases in process (batch envelope, import messages and the examples): no
    /// server needed.
    Profiles {
        #[command(flatten)]
        output: Output,
    },
    /// The exchange cases against a running gateway.
    Gateway {
        /// The gateway's base URL.
        #[arg(long)]
        url: String,
        /// A bearer token sent with every request.
        #[arg(long, env = "CONFORMANCE_BEARER_TOKEN", hide_env_values = true)]
        bearer_token: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// The archive API cases against a running archive, with the vendor's client certificate.
    Archive {
        /// The archive's base URL.
        #[arg(long)]
        url: String,
        /// Client certificate chain (PEM) for mutual TLS.
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// CA certificate(s) (PEM) the archive's certificate must chain to; default: the
        /// system's roots.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// A bearer token, where the archive asks for one.
        #[arg(long, env = "CONFORMANCE_BEARER_TOKEN", hide_env_values = true)]
        bearer_token: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

/// Reports and how the run goes.
#[derive(Debug, Args)]
struct Output {
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a FHIR TestReport-shaped JSON to this file.
    #[arg(long, value_name = "FILE")]
    test_report: Option<PathBuf>,
    /// Cases run at a time.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Only the cases whose id contains this.
    #[arg(long)]
    filter: Option<String>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
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
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("conformance: {error}");
            return ExitCode::from(2);
        }
    };
    match Cli::parse().command {
        Command::Archive {
            action:
                ArchiveAction::Serve {
                    listen,
                    db,
                    tls_cert,
                    tls_key,
                    client_ca,
                },
        } => match runtime.block_on(serve(listen, db, tls_cert, tls_key, client_ca)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("conformance: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Cases { list } => match cases(list) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("conformance: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Run { target } => match runtime.block_on(run(target)) {
            Ok(code) => ExitCode::from(code),
            Err(error) => {
                eprintln!("conformance: {error:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn cases(list: bool) -> anyhow::Result<()> {
    let suite = Suite::load()?;
    let mut out = std::io::stdout().lock();
    if list {
        for case in &suite.cases {
            writeln!(
                out,
                "{}\t{}\t{} § {}\t{}",
                case.id,
                case.target.as_str(),
                case.spec.file,
                case.spec.section,
                case.title
            )?;
        }
        return Ok(());
    }
    writeln!(out, "spec file\tprofiles\tgateway\tarchive\ttotal")?;
    for (file, counts) in suite.counts() {
        let get = |t| counts.get(&t).copied().unwrap_or(0);
        use conformance::cases::Target;
        let (p, g, a) = (
            get(Target::Profiles),
            get(Target::Gateway),
            get(Target::Archive),
        );
        writeln!(out, "{file}\t{p}\t{g}\t{a}\t{}", p + g + a)?;
    }
    writeln!(out, "all\t\t\t\t{} ({})", suite.cases.len(), suite.digest)?;
    Ok(())
}

async fn run(target: RunTarget) -> anyhow::Result<u8> {
    use std::io::IsTerminal as _;
    let suite = Suite::load()?;
    let options = |output: &Output| RunOptions {
        jobs: output.jobs,
        progress: !output.no_progress && std::io::stderr().is_terminal(),
        filter: output.filter.clone(),
    };
    let (report, output): (Report, Output) = match target {
        RunTarget::Files {
            files,
            profile,
            output,
        } => (
            targets::files::run(&suite, &files, profile.as_deref())?,
            output,
        ),
        RunTarget::Profiles { output } => (
            targets::profiles::run(&suite, &options(&output)).await?,
            output,
        ),
        RunTarget::Gateway {
            url,
            bearer_token,
            output,
        } => {
            let gateway = targets::gateway::GatewayOptions { url, bearer_token };
            (
                targets::gateway::run(&suite, &gateway, &options(&output)).await?,
                output,
            )
        }
        RunTarget::Archive {
            url,
            client_cert,
            client_key,
            ca_cert,
            bearer_token,
            output,
        } => {
            let archive = targets::archive::ArchiveOptions {
                url,
                client_cert,
                client_key,
                ca_cert,
                bearer_token,
            };
            (
                targets::archive::run(&suite, &archive, &options(&output)).await?,
                output,
            )
        }
    };
    report.write_summary(&mut std::io::stdout().lock())?;
    report.write_files(
        output.json.as_deref(),
        output.junit.as_deref(),
        output.test_report.as_deref(),
    )?;
    Ok(report.exit_code())
}

async fn serve(
    listen: SocketAddr,
    db: PathBuf,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> anyhow::Result<()> {
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
}
