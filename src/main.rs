//! The `fastkontakt` command line: parses arguments, loads mappings, runs one pipeline and turns
//! its outcome into an exit code (0 done, 1 done with rejected rows or findings, 2 failed).

use anyhow::Context;
use clap::{Parser, Subcommand};
use fastkontakt::mapping::{self, Mappings};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fastkontakt",
    version,
    about = "Fixed care contacts (fast vårdkontakt, fast läkarkontakt, behandlande roller) between a Swedish population register and an EHR's FHIR R4 API",
    long_about = "fastkontakt reads the population register's contact export, translates it to and from FHIR R4 \
(one CareTeam per patient–contact relation, Inera's \"fast kontakt\" model), checks it against the guideline \
rules FK-R01..FK-R20 and syncs it into an EHR.\n\n\
Exit codes: 0 done; 1 done, but rows were rejected or findings reached --fail-on; 2 the run failed.",
    after_help = "Examples:\n  fastkontakt translate samples/region/register.csv -o out/bundle.json\n  \
fastkontakt translate out/bundle.json -o out/register.csv\n  \
fastkontakt samples generate --patients 10000 --seed 7 -o out/region"
)]
struct Cli {
    /// Folder of mapping files (fhir/, register/, target/, profiles/).
    #[arg(long, global = true, env = "FASTKONTAKT_MAPPINGS", value_name = "DIR")]
    mappings: Option<PathBuf>,
    /// Register column mapping, for an export that differs from format v1.
    #[arg(long, global = true, value_name = "FILE")]
    register_mapping: Option<PathBuf>,
    /// Target settings (identifier style, id namespace).
    #[arg(long, global = true, value_name = "FILE")]
    target: Option<PathBuf>,
    /// More log output (-v info, -vv debug). Logs go to stderr and never hold a full personnummer.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as JSON, for a log collector.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Translate register CSV → FHIR (transaction Bundle, or NDJSON), or FHIR → register CSV.
    ///
    /// The direction follows INPUT: a .csv file is a register export; a .json Bundle, an
    /// .ndjson file or a folder of them is FHIR. Bad rows are reported line by line on stderr
    /// and written to a quarantine file beside the input; the good rows still come out.
    Translate {
        /// Register export (.csv), or FHIR (Bundle .json, .ndjson, or a folder).
        input: PathBuf,
        /// Where to write (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Write FHIR as NDJSON (one resource a line) instead of a transaction Bundle.
        #[arg(long)]
        ndjson: bool,
        /// Quarantine file for rejected rows (default: INPUT with .quarantine.csv).
        #[arg(long, value_name = "FILE")]
        quarantine: Option<PathBuf>,
    },
    /// Check register and/or EHR data against the guideline rules FK-R01..FK-R20.
    ///
    /// Rules that need EHR-only facts (life-threatening condition, municipal care, discharge,
    /// plans, …) read them from the EHR data; a rule whose data is absent from the input is
    /// listed as "not evaluated", never passed. See `fastkontakt rules` for the list.
    Check {
        /// Register export (.csv).
        #[arg(long, value_name = "FILE")]
        register: Option<PathBuf>,
        /// EHR data: a FHIR Bundle (.json), NDJSON, or a folder of them.
        #[arg(long, value_name = "PATH")]
        ehr: Option<PathBuf>,
        /// Region profile: a name in mappings/profiles/ (gavleborg, orebro) or a TOML file.
        #[arg(long, default_value = "gavleborg", value_name = "NAME|PATH")]
        profile: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Exit 1 when a finding is at or above this severity.
        #[arg(long, value_enum, default_value_t = FailOn::Error)]
        fail_on: FailOn,
        /// Judge "active" as of this day (default: today in Europe/Stockholm).
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<chrono::NaiveDate>,
        /// Quarantine file for rejected register rows (default: none written).
        #[arg(long, value_name = "FILE")]
        quarantine: Option<PathBuf>,
    },
    /// List the rules with their basis, or explain one (`fastkontakt rules FK-R03`).
    Rules {
        /// A rule id, e.g. FK-R03.
        id: Option<String>,
    },
    /// Sample data: a synthetic region for tests and benchmarks.
    Samples {
        #[command(subcommand)]
        command: SamplesCommand,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Csv,
    OperationOutcome,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Never,
}

#[derive(Subcommand)]
enum SamplesCommand {
    /// Generate a synthetic region: register.csv, the EHR side as NDJSON, and manifest.json
    /// listing every injected inconsistency. Deterministic by seed; identity numbers are made up.
    Generate {
        #[arg(long, default_value_t = 1000)]
        patients: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of patients given an injected inconsistency (0..1).
        #[arg(long, default_value_t = 0.05)]
        inconsistency_share: f64,
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_json);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8, json: bool) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FASTKONTAKT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("fastkontakt={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_mappings(cli: &Cli) -> anyhow::Result<Mappings> {
    let dir = cli.mappings.clone().unwrap_or_else(mapping::default_dir);
    Mappings::load(&dir, cli.register_mapping.as_deref(), cli.target.as_deref())
        .with_context(|| format!("loading mappings from {}", dir.display()))
}

fn output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

fn is_register_csv(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv"))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Translate {
            input,
            output: out_path,
            ndjson,
            quarantine,
        } => {
            let mappings = load_mappings(&cli)?;
            let mut out = output(out_path.as_deref())?;
            let summary = if is_register_csv(input) {
                let mut report =
                    |path: &Path, row: &fastkontakt::sources::register::RejectedRow| {
                        eprintln!("{}", row.describe(path));
                    };
                fastkontakt::translate::register_to_fhir(
                    input,
                    &mappings,
                    &mut out,
                    *ndjson,
                    quarantine.clone(),
                    &mut report,
                )?
            } else {
                fastkontakt::translate::fhir_to_register(input, &mappings, &mut out)?
            };
            out.flush()?;
            for c in &summary.unknown_columns {
                eprintln!(
                    "{}:1: note: column '{c}' is not in the mapping and was ignored",
                    input.display()
                );
            }
            for n in &summary.notes {
                eprintln!("note: {n}");
            }
            let what = if summary.resources_written > 0 {
                format!("{} resources", summary.resources_written)
            } else {
                "register rows".to_owned()
            };
            eprintln!(
                "translated {} contacts into {what}; {} rejected{}",
                summary.contacts,
                summary.rejected,
                summary
                    .quarantine
                    .as_ref()
                    .map(|q| format!(" (quarantined in {})", q.display()))
                    .unwrap_or_default()
            );
            Ok(if summary.has_rejections() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Check {
            register,
            ehr,
            profile,
            format,
            output: out_path,
            fail_on,
            as_of,
            quarantine,
        } => {
            use fastkontakt::checks::{run, Profile, Severity};
            let mappings = load_mappings(&cli)?;
            let dir = cli.mappings.clone().unwrap_or_else(mapping::default_dir);
            let profile = Profile::load(profile, &dir, &mappings.terminology)
                .context("loading the profile")?;
            let as_of = as_of.unwrap_or_else(|| {
                chrono::Utc::now()
                    .with_timezone(&chrono_tz::Europe::Stockholm)
                    .date_naive()
            });
            let ehr = match ehr {
                Some(p) => Some(
                    run::EhrSide::from_files(p, &mappings)
                        .with_context(|| format!("reading EHR data {}", p.display()))?,
                ),
                None => None,
            };
            let input = run::CheckInput {
                register: register.as_deref(),
                ehr,
                profile: &profile,
                mappings: &mappings,
                as_of,
                quarantine: quarantine.clone(),
            };
            let mut report_row =
                |path: &Path, row: &fastkontakt::sources::register::RejectedRow| {
                    eprintln!("{}", row.describe(path))
                };
            let report = run::run(input, &mut report_row)?;
            let mut out = output(out_path.as_deref())?;
            match format {
                Format::Text => fastkontakt::sinks::findings::write_text(&report, &mut out)?,
                Format::Json => fastkontakt::sinks::findings::write_json(&report, &mut out)?,
                Format::Csv => fastkontakt::sinks::findings::write_csv(&report, &mut out)?,
                Format::OperationOutcome => {
                    serde_json::to_writer_pretty(
                        &mut out,
                        &fastkontakt::sinks::findings::operation_outcome(&report),
                    )?;
                    writeln!(out)?;
                }
            }
            out.flush()?;
            if out_path.is_some() {
                let mut summary = Vec::new();
                fastkontakt::sinks::findings::write_text(&report, &mut summary)?;
                if *format != Format::Text {
                    eprint!("{}", String::from_utf8_lossy(&summary));
                }
            }
            let threshold = match fail_on {
                FailOn::Error => Some(Severity::Error),
                FailOn::Warning => Some(Severity::Warning),
                FailOn::Never => None,
            };
            let failed = matches!((threshold, report.worst()), (Some(t), Some(w)) if w >= t);
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Rules { id } => {
            use fastkontakt::checks::catalogue;
            match id {
                Some(id) => {
                    let r = catalogue::find(id)
                        .with_context(|| format!("no rule {id}; rules are FK-R01..FK-R20"))?;
                    println!(
                        "{}  {} ({})\n\n{}\n\nBasis: {}\nNeeds: {}",
                        r.id, r.title, r.severity, r.explanation, r.basis, r.needs
                    );
                }
                None => {
                    for r in catalogue::RULES {
                        println!(
                            "{}  {:<7}  {}\n          basis: {}",
                            r.id,
                            r.severity.to_string(),
                            r.title,
                            r.basis
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Samples {
            command:
                SamplesCommand::Generate {
                    patients,
                    seed,
                    inconsistency_share,
                    output,
                },
        } => {
            let mappings = load_mappings(&cli)?;
            let m = fastkontakt::samples::generate(
                &fastkontakt::samples::Spec {
                    patients: *patients,
                    seed: *seed,
                    inconsistency_share: *inconsistency_share,
                },
                &mappings,
                output,
            )?;
            eprintln!(
                "wrote {} register rows and {} EHR resources for {} patients ({} injected inconsistencies) to {}",
                m.register_rows,
                m.ehr_resources,
                m.patients,
                m.injected.len(),
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
