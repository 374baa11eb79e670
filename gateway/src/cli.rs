//! The command line: one binary, a subcommand per task. Parsing is clap's; the work is done by
//! the library modules, so this file stays glue.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::http::verify_log;
use crate::input::{DEFAULT_MAX_RECORD_BYTES, InputMode};
use crate::map_cli::{self, MapOptions, Side};
use crate::mapping::engine::Direction;
use crate::mapping::{MappingSet, MappingSource};
use crate::profiles::{ProfileRegistry, ProfileSource};
use crate::server::{App, open_store, shutdown_signal};
use crate::validate::{self, OutputFormat, ValidateOptions};

/// Appends an operator's read from the command line to the log, under `cli:<user>`.
async fn log_cli_read(
    settings: &Config,
    store: &crate::store::Store,
    entry: impl FnOnce(crate::audit::Actor) -> crate::audit::AuditEntry,
) -> bool {
    let Ok(key) = crate::server::audit_key(settings) else {
        return false;
    };
    let hasher = crate::audit::ClientHasher::new(&key);
    let Ok(engine) = crate::server::load_engine(settings, hasher) else {
        return false;
    };
    let gateway = crate::exchange::Gateway::start(
        std::sync::Arc::new(engine),
        store.clone(),
        settings.audit.batch_size(store.backend()),
    );
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let actor = crate::audit::Actor {
        subject: format!("cli:{user}"),
        client_id: None,
        role: "admin".to_owned(),
    };
    gateway.record(entry(actor)).await.is_ok()
}

/// Interoperability gateway for Finnish social rehabilitation records.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
pub struct Cli {
    /// Load the profiles from this directory instead of the copy built into the binary.
    #[arg(long, global = true, env = "GATEWAY_PROFILES_DIR", value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Load the mappings from this directory instead of the copy built into the binary.
    #[arg(long, global = true, env = "GATEWAY_MAPPINGS_DIR", value_name = "DIR")]
    pub mappings_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check records against the profiles. Exit status: 0 all valid, 1 some invalid,
    /// 2 an input could not be read or a usage error.
    Validate {
        /// Apply this profile (e.g. `apotti/SOSKU_DECISION`) instead of choosing one per record
        /// by `MSG_TYPE` or `header.documentType`.
        #[arg(long)]
        profile: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
        /// How to read the input.
        #[arg(long, value_enum, default_value_t)]
        input: InputMode,
        /// Largest record (NDJSON line or record of a document) in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_RECORD_BYTES)]
        max_record_bytes: usize,
        /// Also list valid records.
        #[arg(long, short)]
        verbose: bool,
        /// Files to check; `-` or none reads standard input.
        files: Vec<String>,
    },
    /// List the profiles with their ids and content hashes.
    Profiles,
    /// Map records Apotti → Kanta or Kanta → Apotti. Each record is validated against its
    /// profile, mapped, and the output validated against the target profile. Exit status:
    /// 0 all mapped, 1 some refused, 2 unreadable input or usage error.
    Map {
        /// The side the input is from.
        #[arg(long, value_enum)]
        from: Side,
        /// The side to map to (the other one; accepted for clarity).
        #[arg(long, value_enum)]
        to: Option<Side>,
        /// Output format: `text` writes mapped documents as NDJSON (problems to stderr),
        /// `json` one result object per record.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
        /// For every output field, show the rule (file:line) and the source pointer behind it.
        #[arg(long)]
        explain: bool,
        /// How to read the input.
        #[arg(long, value_enum, default_value_t)]
        input: InputMode,
        /// Largest record in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_RECORD_BYTES)]
        max_record_bytes: usize,
        /// Files; `-` or none reads standard input.
        files: Vec<String>,
    },
    /// Work with the mapping files.
    Mappings {
        #[command(subcommand)]
        action: MappingsAction,
    },
    /// Run the gateway service (HTTP). With no configuration: SQLite in ./data, loopback.
    Serve {
        /// Configuration file (TOML); `GATEWAY_*` environment variables override it.
        #[arg(long, env = "GATEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Apply the database migrations and exit.
    Migrate {
        /// Configuration file (TOML).
        #[arg(long, env = "GATEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Fetch a client's documents from the archive through a running gateway and print them
    /// as Apotti-like import messages (NDJSON); each is audited by the gateway.
    FromArchive {
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// The client's personal identity code.
        #[arg(long)]
        client: String,
        /// Document type code (`PAATOS_SOSKU`, `ASIAKASSUUNNITELMA`, `ASIAKASKERTOMUS`).
        #[arg(long = "type")]
        document_type: Option<String>,
        /// Only documents archived since (ISO 8601 with offset).
        #[arg(long)]
        since: Option<String>,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Read the stored documents (on SQLite they are packed, so `sqlite3` shows bytes).
    Documents {
        #[command(subcommand)]
        action: DocumentsAction,
    },
}

/// `gateway documents ...`
#[derive(Debug, Subcommand)]
pub enum DocumentsAction {
    /// Print a stored document version as its JSON text; the read is audited under
    /// `cli:<user>`. Exit status 0 printed, 1 no such document, 2 could not read.
    Show {
        /// The document OID (of the version).
        oid: String,
        /// Configuration file (TOML).
        #[arg(long, env = "GATEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `gateway audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Re-check the whole hash chain; names the first modified, deleted, inserted or
    /// reordered entry. Exit status 0 intact, 1 broken, 2 could not read.
    Verify {
        /// Configuration file (TOML).
        #[arg(long, env = "GATEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `gateway mappings ...`
#[derive(Debug, Subcommand)]
pub enum MappingsAction {
    /// Compile and check every mapping against its profiles; list the mappings, and how many
    /// target subschemas each decides at load rather than per record.
    Check {
        /// List those subschemas (`<profile $id>#<JSON Pointer>`), per mapping and direction.
        #[arg(long)]
        decided: bool,
    },
    /// Run the fixture pairs and report rules and target fields no fixture exercised.
    Test {
        /// The fixtures folder.
        #[arg(long, default_value = "mappings/fixtures")]
        fixtures: PathBuf,
        /// Write differing backward outputs as `<name>.import.json` (review the diff).
        #[arg(long)]
        bless: bool,
    },
}

/// Runs the command line; returns the process exit status.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(io::stderr)
        .init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("gateway: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Serve { config } | Command::Migrate { config } => {
            let mut settings = Config::load(config.as_deref())?;
            if let Some(dir) = &cli.profiles_dir {
                settings.profiles_dir = Some(dir.clone());
            }
            if let Some(dir) = &cli.mappings_dir {
                settings.mappings_dir = Some(dir.clone());
            }
            let serve = matches!(cli.command, Command::Serve { .. });
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(async move {
                if serve {
                    let app = App::build(settings).await?;
                    eprintln!(
                        "gateway listening on {} (storage: {})",
                        app.url(),
                        app.store().backend_name()
                    );
                    app.run(shutdown_signal()).await?;
                } else {
                    open_store(&settings).await?;
                    eprintln!("migrations applied");
                }
                Ok(0)
            });
        }
        Command::FromArchive {
            gateway,
            client,
            document_type,
            since,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(async move {
                let body =
                    serde_json::json!({"client": client, "type": document_type, "since": since});
                let response = reqwest::Client::new()
                    .post(format!(
                        "{}/exchanges/from-archive",
                        gateway.trim_end_matches('/')
                    ))
                    .json(&body)
                    .send()
                    .await?;
                let status = response.status();
                let answer: serde_json::Value = response.json().await?;
                if !status.is_success() {
                    eprintln!("gateway answered {status}: {answer}");
                    return Ok(2);
                }
                let mut refused = 0;
                for entry in answer["entry"].as_array().into_iter().flatten() {
                    match entry["resource"].get("document") {
                        Some(document) => println!("{document}"),
                        None => {
                            refused += 1;
                            eprintln!("not mapped: {}", entry["resource"]["operationOutcome"]);
                        }
                    }
                }
                Ok(u8::from(refused > 0))
            });
        }
        Command::Audit {
            action: AuditAction::Verify { config },
        } => {
            let settings = Config::load(config.as_deref())?;
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(async move {
                let store = open_store(&settings).await?;
                let report = verify_log(&store).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                // Reading the log is a use of it: the operator's check is logged as well.
                let entries = usize::try_from(report.entries).unwrap_or(usize::MAX);
                let logged = log_cli_read(&settings, &store, |actor| {
                    crate::audit::AuditEntry::read(
                        actor,
                        "cli audit verify",
                        &serde_json::json!({}),
                        entries,
                    )
                })
                .await;
                if !logged {
                    eprintln!("note: this verification could not be written to the audit log");
                }
                Ok(u8::from(!report.intact))
            });
        }
        Command::Documents {
            action: DocumentsAction::Show { oid, config },
        } => {
            let settings = Config::load(config.as_deref())?;
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(async move {
                let store = open_store(&settings).await?;
                let document = store.document(oid).await?;
                // A document is a client's record: reading it is logged before it is shown,
                // and not shown when that cannot be logged.
                let found = usize::from(document.is_some());
                let logged = log_cli_read(&settings, &store, |actor| {
                    let mut entry = crate::audit::AuditEntry::read(
                        actor,
                        "cli documents show",
                        &serde_json::json!({ "documentOid": oid }),
                        found,
                    );
                    entry.event = "document-read".to_owned();
                    entry.document_oid = Some(oid.clone());
                    entry
                })
                .await;
                if !logged {
                    anyhow::bail!("the read could not be written to the audit log");
                }
                match document {
                    Some(text) => {
                        println!("{text}");
                        Ok(0)
                    }
                    None => {
                        eprintln!("gateway: no stored document {oid}");
                        Ok(1)
                    }
                }
            });
        }
        _ => {}
    }
    let source = match cli.profiles_dir {
        Some(dir) => ProfileSource::Directory(dir),
        None => ProfileSource::Embedded,
    };
    let registry = ProfileRegistry::load(&source)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match cli.command {
        Command::Validate {
            profile,
            format,
            input,
            max_record_bytes,
            verbose,
            files,
        } => {
            let options = ValidateOptions {
                profile,
                format,
                input,
                max_record_bytes,
                verbose,
            };
            let summary = validate::run(&registry, &files, &options, &mut out, &mut io::stderr())?;
            out.flush()?;
            eprintln!(
                "{} checked: {} valid, {} invalid{}",
                plural(summary.records, "record"),
                summary.valid,
                summary.invalid,
                if summary.unreadable_inputs > 0 {
                    format!(
                        ", {} unreadable",
                        plural(summary.unreadable_inputs, "input")
                    )
                } else {
                    String::new()
                }
            );
            Ok(summary.exit_code())
        }
        Command::Map {
            from,
            to,
            format,
            explain,
            input,
            max_record_bytes,
            files,
        } => {
            if to == Some(from) {
                anyhow::bail!("--from and --to name the same side");
            }
            let mappings = load_mappings(cli.mappings_dir, &registry)?;
            let options = MapOptions {
                from,
                format,
                explain,
                input,
                max_record_bytes,
            };
            let summary = map_cli::run_map(
                &registry,
                &mappings,
                &files,
                &options,
                &mut out,
                &mut io::stderr(),
            )?;
            out.flush()?;
            eprintln!(
                "{} mapped, {} not mapped",
                plural(summary.mapped, "record"),
                summary.failed
            );
            Ok(summary.exit_code())
        }
        Command::Mappings { action } => {
            let mappings = load_mappings(cli.mappings_dir, &registry)?;
            match action {
                MappingsAction::Check { decided } => {
                    for plan in &mappings.plans {
                        writeln!(
                            out,
                            "{}\t{}\t{} ⇄ {}\t{} rules\t{}",
                            plan.header.id,
                            plan.file,
                            plan.header.apotti,
                            plan.header.kanta,
                            plan.rules.len(),
                            plan.hash
                        )?;
                        for (direction, target) in [
                            (Direction::Forward, &plan.header.kanta),
                            (Direction::Backward, &plan.header.apotti_import),
                        ] {
                            let fixed = plan
                                .specialised(direction)
                                .map_or(0, |s| s.replaced().len());
                            writeln!(
                                out,
                                "\t{direction:?}: {fixed} subschemas of {target} decided at load, not per record (mappings/README.md: fields checked at load)"
                            )?;
                            if decided {
                                for place in plan
                                    .specialised(direction)
                                    .map_or(&[][..], |s| s.replaced())
                                {
                                    writeln!(out, "\t\t{place}")?;
                                }
                            }
                        }
                    }
                    writeln!(
                        out,
                        "{} concept maps; all mappings check",
                        mappings.concepts.len()
                    )?;
                    out.flush()?;
                    Ok(0)
                }
                MappingsAction::Test { fixtures, bless } => {
                    let report = map_cli::run_fixtures(&registry, &mappings, &fixtures, bless)?;
                    let mut failed = 0;
                    for result in &report.results {
                        if result.problems.is_empty() {
                            writeln!(out, "ok    {}", result.name)?;
                        } else {
                            failed += 1;
                            writeln!(out, "FAIL  {}", result.name)?;
                            for problem in &result.problems {
                                writeln!(out, "      {problem}")?;
                            }
                        }
                    }
                    for (mapping, rules) in &report.unexercised_rules {
                        if !rules.is_empty() {
                            writeln!(
                                out,
                                "{mapping}: rules no fixture exercised: {}",
                                rules.join(", ")
                            )?;
                        }
                    }
                    for (mapping, fields) in &report.unexercised_fields {
                        if !fields.is_empty() {
                            writeln!(
                                out,
                                "{mapping}: target fields no fixture produced: {}",
                                fields.join(", ")
                            )?;
                        }
                    }
                    writeln!(
                        out,
                        "{} passed, {failed} failed",
                        report.results.len() - failed
                    )?;
                    out.flush()?;
                    Ok(u8::from(failed > 0))
                }
            }
        }
        Command::Serve { .. }
        | Command::Migrate { .. }
        | Command::Audit { .. }
        | Command::Documents { .. }
        | Command::FromArchive { .. } => Ok(0),
        Command::Profiles => {
            for profile in registry.profiles() {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    profile.id(),
                    profile.stamp().hash,
                    profile.title()
                )?;
            }
            out.flush()?;
            Ok(0)
        }
    }
}

fn load_mappings(dir: Option<PathBuf>, registry: &ProfileRegistry) -> anyhow::Result<MappingSet> {
    let source = match dir {
        Some(dir) => MappingSource::Directory(dir),
        None => MappingSource::Embedded,
    };
    MappingSet::load(&source, registry).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the mappings do not check:\n{}", lines.join("\n"))
    })
}

fn plural(count: u64, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}
