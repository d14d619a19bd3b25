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
        /// EHR data: a FHIR server's base URL, a Bundle (.json), NDJSON, or a folder of them.
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
    /// Sync the register's contacts into an EHR over FHIR R4: plan (three-way diff), then apply.
    ///
    /// Creates, updates and ends relations (never deletes); a person's change in the EHR to a
    /// register-owned element is a conflict, reported and kept unless --on-conflict
    /// register-wins. A re-run on an unchanged export writes nothing. Settings may come from
    /// --config FILE (TOML, same names with underscores); flags win.
    /// Exit: 0 done, 1 done with conflicts or rejected rows, 2 failed.
    Sync(Box<SyncArgs>),
    /// Reconcile a whole region: register against EHR, every rule, and what a sync would do.
    ///
    /// Read-only unless --apply. The EHR is a FHIR server (read by Bulk Data $export when it
    /// offers it, else by paged searches a few types at a time) or export files: NDJSON, a
    /// Bundle, or a folder of them, streamed so memory stays bounded. Writes a report folder:
    /// report.html (open it in a browser: summary, chart per unit, filterable table),
    /// findings.csv, findings.json (as `check --format json`) and plan.json. The folder holds
    /// patient identities and is made readable by its owner only.
    /// Exit: 0 no finding at or above --fail-on, 1 findings (or an apply with conflicts),
    /// 2 failed.
    ///
    /// Example: fastkontakt reconcile --register export.csv --ehr ehr-export/ --report out/
    Reconcile(Box<ReconcileArgs>),
    /// Who was this patient's FLK, FVK or treating role, and which sync run set it.
    History {
        /// The patient's personnummer or samordningsnummer.
        patient: String,
        /// Only relations valid on this day.
        #[arg(long, value_name = "YYYY-MM-DD")]
        at: Option<chrono::NaiveDate>,
        /// The sync state file.
        #[arg(long, default_value = "fastkontakt-state.sqlite", value_name = "PATH")]
        state: PathBuf,
        /// The state file's key: file:PATH or env:NAME (see sync --help).
        #[arg(long, env = "FASTKONTAKT_STATE_KEY", value_name = "SECRET")]
        state_key: Option<String>,
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

#[derive(clap::Args, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SyncArgs {
    /// Settings file (TOML) for scheduled jobs; command-line flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Register export (.csv).
    #[arg(long, global = true, value_name = "FILE")]
    register: Option<PathBuf>,
    /// The EHR's FHIR base URL.
    #[arg(long, global = true, value_name = "URL")]
    ehr: Option<String>,
    /// State file (SQLite): last-applied state, runs, ledger.
    #[arg(long, global = true, value_name = "PATH")]
    state: Option<PathBuf>,
    /// The secret that keys every patient hash in the state file: file:PATH or env:NAME, at
    /// least 16 bytes (make one: head -c 32 /dev/urandom | base64 > state.key). Required; a
    /// state file opened with another key is refused.
    #[arg(
        long,
        global = true,
        env = "FASTKONTAKT_STATE_KEY",
        value_name = "SECRET"
    )]
    state_key: Option<String>,
    /// Other origins (scheme://host:port) that may receive the credentials, e.g. a Bulk Data
    /// file server; by default only the --ehr URL's own origin does. Repeatable.
    #[arg(long, global = true, value_name = "ORIGIN")]
    auth_allow_origin: Vec<String>,
    /// Most seconds one request may wait between retries, Retry-After included (default 120);
    /// past it the run fails rather than hang.
    #[arg(long, global = true, value_name = "SECONDS")]
    max_retry_wait: Option<u64>,
    /// Plan and print, write nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    /// Write the run summary as JSON here.
    #[arg(long, global = true, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// What to do when a person changed a register-owned element in the EHR.
    #[arg(long, global = true, value_enum)]
    on_conflict: Option<fastkontakt::sync::OnConflict>,
    /// Entries per transaction Bundle.
    #[arg(long, global = true)]
    chunk_size: Option<usize>,
    /// Refuse to end more than this share of the active relations in one run (0..1).
    #[arg(long, global = true)]
    max_end_share: Option<f64>,
    /// Bearer token: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    bearer: Option<String>,
    /// OAuth2 token endpoint (client credentials).
    #[arg(long, global = true, value_name = "URL")]
    token_url: Option<String>,
    #[arg(long, global = true)]
    client_id: Option<String>,
    /// OAuth2 client secret: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    client_secret: Option<String>,
    #[arg(long, global = true)]
    scope: Option<String>,
    /// SMART Backend Services: the client's private key (PEM) for private_key_jwt: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    client_key: Option<String>,
    /// Signing algorithm for --client-key: ES384 (default) or RS384.
    #[arg(long, global = true)]
    client_key_alg: Option<String>,
    /// Key id (kid) the token endpoint knows --client-key by.
    #[arg(long, global = true)]
    client_key_id: Option<String>,
    /// Client certificate as PKCS#12 (e.g. a SITHS export) instead of --client-cert.
    #[arg(long, global = true, value_name = "FILE")]
    client_p12: Option<PathBuf>,
    /// Password of --client-p12: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    client_p12_password: Option<String>,
    /// Client certificate and key (PEM, one file) for mutual TLS, e.g. SITHS.
    #[arg(long, global = true, value_name = "FILE")]
    client_cert: Option<PathBuf>,
    /// A private CA (PEM) to trust for the EHR's certificate.
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Sent as X-Tenant-ID.
    #[arg(long, global = true)]
    tenant: Option<String>,
    /// Day used for end dates (default today, Europe/Stockholm).
    #[arg(long, global = true, value_name = "YYYY-MM-DD")]
    as_of: Option<chrono::NaiveDate>,
    #[command(subcommand)]
    #[serde(skip)]
    action: Option<SyncAction>,
}

#[derive(clap::Args)]
struct ReconcileArgs {
    /// Register export (.csv).
    #[arg(long, value_name = "FILE")]
    register: PathBuf,
    /// The EHR: a FHIR base URL, or export files (NDJSON, a Bundle, or a folder of them).
    #[arg(long, value_name = "URL|FILE|DIR")]
    ehr: String,
    /// Region profile: a name in mappings/profiles/ (gavleborg, orebro) or a TOML file.
    #[arg(long, default_value = "gavleborg", value_name = "NAME|PATH")]
    profile: String,
    /// The report folder (created; files in it are replaced).
    #[arg(long, default_value = "reconcile-report", value_name = "DIR")]
    report: PathBuf,
    /// Judge "active" as of this day (default: today in Europe/Stockholm).
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<chrono::NaiveDate>,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
    /// Carry out the plan through sync's apply path (If-Match, Provenance, ledger). Needs --ehr URL.
    #[arg(long)]
    apply: bool,
    /// Sync state file (SQLite): what was applied before decides updates and conflicts.
    #[arg(long, default_value = "fastkontakt-state.sqlite", value_name = "PATH")]
    state: PathBuf,
    /// The state file's key: file:PATH or env:NAME (see sync --help); needed with a state file.
    #[arg(long, env = "FASTKONTAKT_STATE_KEY", value_name = "SECRET")]
    state_key: Option<String>,
    /// Passes over the EHR data, each holding one slice of the patients in memory
    /// (default: one per 2 GB of EHR files).
    #[arg(long, value_name = "N")]
    partitions: Option<u32>,
    /// Read the server by paged search even when it offers Bulk Data $export.
    #[arg(long)]
    no_export: bool,
    /// Resource types searched at once when reading a server by paged search.
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// Keep the files fetched from the server in this folder (default: removed after the run).
    #[arg(long, value_name = "DIR")]
    keep_fetched: Option<PathBuf>,
    /// Quarantine file for rejected register rows (default: in the report folder).
    #[arg(long, value_name = "FILE")]
    quarantine: Option<PathBuf>,
    /// What --apply does when a person changed a register-owned element in the EHR.
    #[arg(long, value_enum, default_value_t = fastkontakt::sync::OnConflict::Report)]
    on_conflict: fastkontakt::sync::OnConflict,
    /// Refuse a plan that ends more than this share of the active relations (0..1).
    #[arg(long, default_value_t = 0.2)]
    max_end_share: f64,
    /// Server connection settings as for sync (TOML: bearer, token_url, client_cert, …).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Sent as X-Tenant-ID.
    #[arg(long)]
    tenant: Option<String>,
    /// Bearer token: file:PATH or env:NAME.
    #[arg(long, value_name = "SECRET")]
    bearer: Option<String>,
}

#[derive(Subcommand, Clone)]
enum SyncAction {
    /// Write the plan to a file for review; writes nothing to the EHR.
    Plan {
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Apply a reviewed plan, only if the EHR has not changed since it was planned.
    Apply { plan: PathBuf },
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

// mimalloc: the streamed FHIR read allocates and frees millions of small objects; glibc's
// allocator spent a third of the time there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A panic caught inside the FHIR parser is reported as that input's parse error; the
    // default hook would print it as if the program had crashed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !fastkontakt::fhir::model::IN_PARSER.with(|c| c.get()) {
            default_hook(info);
        }
    }));
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_json);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A server's or a file's text may quote an identity number: never in full here.
            let text = format!("{e:#}");
            eprintln!(
                "error: {}",
                fastkontakt::sources::register::mask_identity_numbers(&text)
            );
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
                fastkontakt::sinks::private::create_dir(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            // Findings name patients: the file is its owner's only.
            Box::new(std::io::BufWriter::new(
                fastkontakt::sinks::private::create_file(p)
                    .with_context(|| format!("creating {}", p.display()))?,
            ))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

fn is_url(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.starts_with("http://") || s.starts_with("https://")
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
            let mut report_row =
                |path: &Path, row: &fastkontakt::sources::register::RejectedRow| {
                    eprintln!("{}", row.describe(path))
                };
            let report = match ehr {
                Some(p) if is_url(p) => {
                    let client = fastkontakt::fhir::client::FhirClient::new(
                        fastkontakt::fhir::client::ClientConfig::new(&p.to_string_lossy()),
                    )?;
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()?;
                    let side = rt
                        .block_on(run::EhrSide::from_server(&client, &mappings))
                        .with_context(|| format!("reading EHR data from {}", p.display()))?;
                    let input = run::CheckInput {
                        register: register.as_deref(),
                        ehr: Some(side),
                        profile: &profile,
                        mappings: &mappings,
                        as_of,
                        quarantine: quarantine.clone(),
                        partition: run::Partition::ALL,
                    };
                    run::run(input, &mut report_row)?
                }
                Some(p) => {
                    // Files are streamed: memory stays bounded however large the export.
                    let progress = fastkontakt::progress::Progress::bytes(0);
                    let streamed = run::Streamed {
                        register: register.as_deref(),
                        ehr: p,
                        profile: &profile,
                        mappings: &mappings,
                        as_of,
                        quarantine: quarantine.clone(),
                        partitions: None,
                        product: None,
                    };
                    let (report, _) = run::run_streamed(
                        streamed,
                        &progress,
                        &mut report_row,
                        &mut |_, _, _, _| true,
                    )
                    .with_context(|| format!("checking with EHR data {}", p.display()))?;
                    progress.finish();
                    report
                }
                None => {
                    let input = run::CheckInput {
                        register: register.as_deref(),
                        ehr: None,
                        profile: &profile,
                        mappings: &mappings,
                        as_of,
                        quarantine: quarantine.clone(),
                        partition: run::Partition::ALL,
                    };
                    run::run(input, &mut report_row)?
                }
            };
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
        Command::Sync(args) => sync_command(&cli, args),
        Command::Reconcile(args) => reconcile_command(&cli, args),
        Command::History {
            patient,
            at,
            state,
            state_key: key,
        } => {
            let p = fastkontakt::domain::PatientId::parse(patient)
                .map_err(|e| anyhow::anyhow!("the patient number: {e}"))?;
            if !state.exists() {
                anyhow::bail!("{}: no such state file", state.display());
            }
            let st = fastkontakt::sync::state::State::open(state, state_key(key.as_deref())?)?;
            let rows = st.history(&fastkontakt::sync::engine::patient_hash(st.key(), &p))?;
            if rows.is_empty() {
                println!("no sync has written a relation for {p}");
                return Ok(ExitCode::SUCCESS);
            }
            // The newest line per relation tells what it was; --at keeps those valid that day.
            let mut latest: std::collections::BTreeMap<
                &str,
                &fastkontakt::sync::state::LedgerEntry,
            > = Default::default();
            for r in &rows {
                latest.insert(&r.key, r);
            }
            println!("{p}: {} relations written by fastkontakt", latest.len());
            for r in latest.values() {
                let valid = at.is_none_or(|d| {
                    let d = d.to_string();
                    r.valid_from <= d && r.valid_to.as_ref().is_none_or(|t| *t >= d)
                });
                if !valid || (at.is_some() && r.status == "avbojd") {
                    continue;
                }
                println!(
                    "  {:<28} {:<22} at {:<20} {} .. {}  {}  (run {}, {} {} {}{})",
                    r.kind,
                    r.staff.as_deref().unwrap_or("-"),
                    r.unit,
                    r.valid_from,
                    r.valid_to.as_deref().unwrap_or(""),
                    r.status,
                    r.run,
                    r.action,
                    r.resource,
                    r.version
                        .as_deref()
                        .map(|v| format!(" v{v}"))
                        .unwrap_or_default(),
                    r.register_row
                        .as_deref()
                        .map(|x| format!(", from {x}"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
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

fn merge_sync_args(args: &SyncArgs) -> anyhow::Result<SyncArgs> {
    let mut base: SyncArgs = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", p.display()))?
        }
        None => SyncArgs::default(),
    };
    macro_rules! over { ($($f:ident),*) => { $( if args.$f.is_some() { base.$f = args.$f.clone(); } )* } }
    over!(
        register,
        ehr,
        state,
        state_key,
        summary,
        on_conflict,
        chunk_size,
        max_end_share,
        bearer,
        token_url,
        client_id,
        client_secret,
        scope,
        client_key,
        client_key_alg,
        client_key_id,
        client_p12,
        client_p12_password,
        client_cert,
        ca_cert,
        tenant,
        max_retry_wait,
        as_of
    );
    if !args.auth_allow_origin.is_empty() {
        base.auth_allow_origin = args.auth_allow_origin.clone();
    }
    base.dry_run |= args.dry_run;
    base.action = args.action.clone();
    Ok(base)
}

/// The state file's key from `file:PATH` or `env:NAME`; there is no default.
fn state_key(spec: Option<&str>) -> anyhow::Result<fastkontakt::sync::state::StateKey> {
    let spec = spec.context(
        "a state key is required: --state-key file:PATH|env:NAME (or FASTKONTAKT_STATE_KEY, or state_key in --config); make one with: head -c 32 /dev/urandom | base64 > state.key && chmod 600 state.key",
    )?;
    let secret = fastkontakt::fhir::client::Secret::load(spec)?;
    Ok(fastkontakt::sync::state::StateKey::new(
        secret.expose().as_bytes(),
    )?)
}

/// The EHR client the settings describe: base URL, auth, TLS, tenant.
fn client_from(args: &SyncArgs) -> anyhow::Result<fastkontakt::fhir::client::FhirClient> {
    use fastkontakt::fhir::client::{Auth, ClientConfig, Credential, FhirClient, Secret, Tls};
    let ehr = args
        .ehr
        .clone()
        .context("--ehr URL is required (or ehr = \"...\" in --config)")?;
    let mut cfg = ClientConfig::new(&ehr);
    cfg.auth = match (&args.bearer, &args.token_url) {
        (Some(b), _) => Auth::Bearer(Secret::load(b)?),
        (None, Some(url)) => Auth::ClientCredentials {
            token_url: url.clone(),
            client_id: args
                .client_id
                .clone()
                .context("--client-id is required with --token-url")?,
            credential: match (&args.client_secret, &args.client_key) {
                (Some(secret), _) => Credential::Secret(Secret::load(secret)?),
                (None, Some(key)) => Credential::PrivateKeyJwt {
                    key_pem: Secret::load(key)?,
                    algorithm: if args.client_key_alg.as_deref() == Some("RS384") {
                        jsonwebtoken::Algorithm::RS384
                    } else {
                        jsonwebtoken::Algorithm::ES384
                    },
                    kid: args.client_key_id.clone(),
                },
                (None, None) => anyhow::bail!("--token-url needs --client-secret or --client-key"),
            },
            scope: args.scope.clone(),
        },
        _ => Auth::None,
    };
    let p12 = match &args.client_p12 {
        Some(p) => Some((
            p.clone(),
            Secret::load(
                args.client_p12_password
                    .as_deref()
                    .context("--client-p12 needs --client-p12-password")?,
            )?,
        )),
        None => None,
    };
    cfg.tls = Tls {
        identity_pem: args.client_cert.clone(),
        identity_p12: p12,
        ca_pem: args.ca_cert.clone(),
    };
    cfg.tenant = args.tenant.clone();
    cfg.auth_origins = args.auth_allow_origin.clone();
    if let Some(s) = args.max_retry_wait {
        cfg.max_retry_wait = std::time::Duration::from_secs(s);
    }
    Ok(FhirClient::new(cfg)?)
}

fn sync_command(cli: &Cli, raw: &SyncArgs) -> anyhow::Result<ExitCode> {
    let args = merge_sync_args(raw)?;
    let mappings = load_mappings(cli)?;
    let dir = cli.mappings.clone().unwrap_or_else(mapping::default_dir);
    let own = fastkontakt::sync::ownership(&dir).context("loading mappings/ownership.toml")?;
    let client = client_from(&args)?;
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from("fastkontakt-state.sqlite"));
    let chunk = args.chunk_size.unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(SyncAction::Apply { plan }) = &args.action {
        let text = std::fs::read(plan).with_context(|| format!("reading {}", plan.display()))?;
        let plan: fastkontakt::sync::SyncPlan = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a plan", plan.display()))?;
        let key = state_key(args.state_key.as_deref())?;
        let summary = rt.block_on(fastkontakt::sync::apply_plan(
            &client, &mappings, &own, &plan, &state, key, chunk,
        ))?;
        return finish_sync(&args, &summary);
    }
    let register = args
        .register
        .clone()
        .context("--register FILE is required (or register = \"...\" in --config)")?;
    let plan_only = matches!(args.action, Some(SyncAction::Plan { .. }));
    let job = fastkontakt::sync::Job {
        register: &register,
        state: &state,
        state_key: state_key(args.state_key.as_deref())?,
        dry_run: args.dry_run || plan_only,
        options: fastkontakt::sync::Options {
            on_conflict: args
                .on_conflict
                .unwrap_or(fastkontakt::sync::OnConflict::Report),
            chunk_size: chunk,
            as_of: args.as_of.unwrap_or_else(|| {
                chrono::Utc::now()
                    .with_timezone(&chrono_tz::Europe::Stockholm)
                    .date_naive()
            }),
            max_end_share: args.max_end_share.unwrap_or(0.2),
        },
        chunk_size: chunk,
    };
    let mut report_row = |path: &Path, row: &fastkontakt::sources::register::RejectedRow| {
        eprintln!("{}", row.describe(path))
    };
    let (plan, summary) = rt.block_on(fastkontakt::sync::run(
        &client,
        &mappings,
        &own,
        job,
        &mut report_row,
    ))?;
    if let Some(SyncAction::Plan { output: out }) = &args.action {
        fastkontakt::sinks::private::write_file(out, &serde_json::to_vec_pretty(&plan)?)
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "plan written to {} ({} changes); it holds patient data: keep it as such",
            out.display(),
            plan.items.len()
        );
    }
    if args.dry_run || plan_only {
        for i in &plan.items {
            println!(
                "{:<17} {}/{}  {}  {}",
                format!("{:?}", i.action).to_lowercase(),
                i.resource_type,
                i.id,
                i.register_row.as_deref().unwrap_or(""),
                i.reason
            );
        }
        for c in &plan.conflicts {
            println!("conflict          {}  {}", c.resource, c.reason);
        }
    }
    finish_sync(&args, &summary)
}

fn reconcile_command(cli: &Cli, a: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    use fastkontakt::checks::{Profile, Severity};
    use fastkontakt::reconcile;
    use fastkontakt::sync::state::State;
    let t0 = std::time::Instant::now();
    let mappings = load_mappings(cli)?;
    let dir = cli.mappings.clone().unwrap_or_else(mapping::default_dir);
    let profile =
        Profile::load(&a.profile, &dir, &mappings.terminology).context("loading the profile")?;
    let own = fastkontakt::sync::ownership(&dir).context("loading mappings/ownership.toml")?;
    let as_of = a.as_of.unwrap_or_else(|| {
        chrono::Utc::now()
            .with_timezone(&chrono_tz::Europe::Stockholm)
            .date_naive()
    });
    let options = fastkontakt::sync::Options {
        on_conflict: a.on_conflict,
        chunk_size: 100,
        as_of,
        max_end_share: a.max_end_share,
    };
    let server = is_url(Path::new(&a.ehr));
    if a.apply && !server {
        anyhow::bail!("--apply needs --ehr URL: a plan made from files is for review only");
    }
    fastkontakt::sinks::private::create_dir(&a.report)
        .with_context(|| format!("creating {}", a.report.display()))?;
    // Without a state file nothing was applied before: an empty in-memory state says so.
    let state = if a.state.exists() || a.apply {
        State::open(&a.state, state_key(a.state_key.as_deref())?)?
    } else {
        State::open(
            Path::new(":memory:"),
            fastkontakt::sync::state::StateKey::ephemeral(),
        )?
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut fetched_note = None;
    let mut client = None;
    let fetch_dir = a
        .keep_fetched
        .clone()
        .unwrap_or_else(|| a.report.join(".fetched"));
    let ehr_path = if server {
        let mut args = match &a.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str::<SyncArgs>(&text).with_context(|| format!("{}", p.display()))?
            }
            None => SyncArgs::default(),
        };
        args.ehr = Some(a.ehr.clone());
        if a.tenant.is_some() {
            args.tenant = a.tenant.clone();
        }
        if a.bearer.is_some() {
            args.bearer = a.bearer.clone();
        }
        let c = std::sync::Arc::new(client_from(&args)?);
        eprintln!("reading the EHR from {} …", a.ehr);
        let f = rt
            .block_on(reconcile::fetch::fetch(
                c.clone(),
                &fetch_dir,
                !a.no_export,
                a.concurrency,
            ))
            .with_context(|| format!("reading the EHR from {}", a.ehr))?;
        let note = format!(
            "read by {}: {} files, {} bytes",
            match f.how {
                reconcile::fetch::How::BulkExport => "Bulk Data $export",
                reconcile::fetch::How::PagedSearch => "paged search",
            },
            f.files,
            f.bytes
        );
        eprintln!("{note}");
        fetched_note = Some(note);
        client = Some(c);
        fetch_dir.clone()
    } else {
        PathBuf::from(&a.ehr)
    };
    let quarantine = a
        .quarantine
        .clone()
        .unwrap_or_else(|| a.report.join("register.quarantine.csv"));
    let progress = fastkontakt::progress::Progress::bytes(0);
    let mut rejected = 0u64;
    let mut on_reject = |path: &Path, row: &fastkontakt::sources::register::RejectedRow| {
        rejected += 1;
        if rejected <= 20 {
            progress.suspend(|| eprintln!("{}", row.describe(path)));
        }
    };
    let job = reconcile::Job {
        register: &a.register,
        ehr: &ehr_path,
        profile: &profile,
        mappings: &mappings,
        own: &own,
        state: &state,
        options: &options,
        quarantine: Some(quarantine),
        partitions: a.partitions,
        plan: !server,
        base: a.ehr.clone(),
    };
    let outcome = reconcile::run(job, &progress, &mut on_reject);
    progress.finish();
    if server && a.keep_fetched.is_none() {
        let _ = std::fs::remove_dir_all(&fetch_dir);
    }
    let outcome = outcome?;
    if rejected > 20 {
        eprintln!(
            "… and {} more rejected rows (see the quarantine file)",
            rejected - 20
        );
    }
    // Against a server the plan is made live, as sync makes it, so it can be applied.
    let spilled = outcome.items;
    let plan = match &client {
        Some(c) => {
            let mut noop = |_: &Path, _: &fastkontakt::sources::register::RejectedRow| {};
            let desired = fastkontakt::sync::engine::desired(&a.register, &mappings, &mut noop)?;
            Some(rt.block_on(fastkontakt::sync::engine::plan(
                c,
                &mappings,
                &own,
                &state,
                &desired,
                &options,
                &a.register.display().to_string(),
            ))?)
        }
        None => outcome.plan,
    };
    let facts = fastkontakt::sinks::report::RunFacts {
        register: a.register.display().to_string(),
        ehr: a.ehr.clone(),
        fetched: fetched_note,
        partitions: outcome.partitions,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let counts = plan
        .as_ref()
        .map(|p| fastkontakt::sinks::report::PlanCounts::of(p, spilled.as_ref()));
    let written = fastkontakt::sinks::report::write(
        &a.report,
        &outcome.report,
        plan.as_ref(),
        spilled,
        &facts,
    )?;
    let r = &outcome.report;
    let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    eprintln!(
        "reconciled {} patients ({} register rows, {} EHR contacts) in {:.1} s: {} errors, {} warnings, {} info; {} rejected rows",
        r.patients,
        r.register_rows,
        r.ehr_contacts,
        t0.elapsed().as_secs_f64(),
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
        r.rejected_rows
    );
    if let (Some(p), Some(c)) = (&plan, &counts) {
        eprintln!(
            "a sync would: create {}, update {}, end {}, create {} references; {} unchanged, {} conflicts{}",
            c.actions.create,
            c.actions.update,
            c.actions.end,
            c.actions.create_reference,
            c.unchanged,
            c.conflicts,
            if p.review_only { " (plan from files: for review)" } else { "" }
        );
    }
    for w in &written {
        eprintln!("wrote {}", w.display());
    }
    let threshold = match a.fail_on {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Never => None,
    };
    let mut code = u8::from(matches!((threshold, r.worst()), (Some(t), Some(w)) if w >= t));
    if a.apply {
        if let (Some(c), Some(p)) = (&client, &plan) {
            let summary = rt.block_on(fastkontakt::sync::apply_plan(
                c,
                &mappings,
                &own,
                p,
                &a.state,
                state_key(a.state_key.as_deref())?,
                100,
            ))?;
            eprintln!(
                "applied: created {}, updated {}, ended {}, references created {}; {} writes",
                summary.created,
                summary.updated,
                summary.ended,
                summary.references_created,
                summary.writes
            );
            code = code.max(summary.exit_code());
        }
    }
    Ok(ExitCode::from(code))
}

fn finish_sync(args: &SyncArgs, s: &fastkontakt::sync::Summary) -> anyhow::Result<ExitCode> {
    for m in &s.messages {
        eprintln!("{m}");
    }
    eprintln!(
        "{}run {}: created {}, updated {}, ended {}, unchanged {}, conflicts {}, errors {}, rejected rows {}, references created {} — {} writes, {} retries, {:.1} s",
        if s.dry_run { "DRY RUN (nothing written) " } else { "" },
        s.run, s.created, s.updated, s.ended, s.unchanged, s.conflicts, s.errors, s.rejected_rows, s.references_created, s.writes, s.retries, s.duration_seconds
    );
    if let Some(p) = &args.summary {
        fastkontakt::sinks::private::write_file(p, &serde_json::to_vec_pretty(s)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExitCode::from(s.exit_code()))
}
