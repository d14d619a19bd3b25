//! The command line: arguments and settings in, one pipeline run, its outcome printed and
//! turned into an exit code a cron job can act on (0 done; 1 done, with rejected rows, findings
//! or conflicts; 2 the run failed). The work itself is in the library's `pipelines`.

pub(crate) mod args;
mod commands;
mod config;
mod serve;

use anyhow::Context;
use args::{Cli, Command};
use fastkontakt::mapping::{self, Mappings};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Translate {
            input,
            output,
            ndjson,
            quarantine,
            held_patients,
        } => commands::translate(
            &cli,
            input,
            output.as_deref(),
            *ndjson,
            quarantine,
            *held_patients,
        ),
        Command::Check { .. } => commands::check(&cli),
        Command::Validate {
            input,
            format,
            output,
            fail_on,
        } => commands::validate(&cli, input, *format, output.as_deref(), *fail_on),
        Command::Sync(args) => commands::sync(&cli, args),
        Command::Reconcile(args) => commands::reconcile(&cli, args),
        Command::Probe(args) => commands::probe(&cli, args),
        Command::History {
            patient,
            at,
            state,
            state_key,
        } => commands::history(patient, *at, state, state_key.as_deref()),
        Command::Serve { config } => serve::serve(&cli, config),
        Command::Rules { id, profile } => commands::rules(&cli, id.as_deref(), profile.as_deref()),
        Command::Mapping {
            command:
                args::MappingCommand::Test {
                    cases,
                    got,
                    bless,
                    profile,
                    as_of,
                    json,
                },
        } => commands::mapping_test(&cli, cases, got.as_deref(), *bless, profile, *as_of, *json),
        Command::Samples {
            command:
                args::SamplesCommand::Generate {
                    patients,
                    seed,
                    inconsistency_share,
                    output,
                },
        } => commands::generate(&cli, *patients, *seed, *inconsistency_share, output),
    }
}

pub(crate) fn init_logging(verbose: u8, json: bool) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FASTKONTAKT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("fastkontakt={level}")));
    // Colours only for a terminal: a cron job's log file would hold the escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn mappings_dir(cli: &Cli) -> PathBuf {
    cli.mappings.clone().unwrap_or_else(mapping::default_dir)
}

fn load_mappings(cli: &Cli) -> anyhow::Result<Mappings> {
    let dir = mappings_dir(cli);
    let mut m = Mappings::load(&dir, cli.register_mapping.as_deref(), cli.target.as_deref())
        .with_context(|| format!("loading mappings from {}", dir.display()))?;
    m.lang = cli.lang;
    Ok(m)
}

/// Standard output, or a file readable by its owner only (findings name patients).
fn output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                fastkontakt::sinks::private::create_dir(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            Box::new(std::io::BufWriter::new(
                fastkontakt::sinks::private::create_file(p)
                    .with_context(|| format!("creating {}", p.display()))?,
            ))
        }
        // Unlocked: translate writes on another thread than it reads; the BufWriter batches.
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )),
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
