//! The command line: one binary, a subcommand per task. Parsing is clap's; the work is done by
//! the library modules, so this file stays glue.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::input::{DEFAULT_MAX_RECORD_BYTES, InputMode};
use crate::profiles::{ProfileRegistry, ProfileSource};
use crate::validate::{self, OutputFormat, ValidateOptions};

/// Interoperability gateway for Finnish social rehabilitation records.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
pub struct Cli {
    /// Load the profiles from this directory instead of the copy built into the binary.
    #[arg(long, global = true, env = "GATEWAY_PROFILES_DIR", value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
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

fn plural(count: u64, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}
