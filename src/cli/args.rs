//! The command line's shape: clap types for every command, and the settings a scheduled sync
//! job's TOML file holds (the same names as the flags).

use clap::{Parser, Subcommand};
use fastkontakt::checks::run::MemoryBudget;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "fastkontakt",
    version,
    about = "Fixed care contacts (fast vårdkontakt, fast läkarkontakt, behandlande roller) between a Swedish population register and an EHR's FHIR R4 API",
    long_about = "fastkontakt reads the population register's contact export, translates it to and from FHIR R4 \
(one CareTeam per patient–contact relation, Inera's \"fast kontakt\" model), checks it against the guideline \
rules FK-R01..FK-R24 and syncs it into an EHR.\n\n\
Exit codes: 0 done; 1 done, but rows were rejected or findings reached --fail-on; 2 the run failed.",
    after_help = "Examples:\n  fastkontakt translate samples/region/register.csv -o out/bundle.json\n  \
fastkontakt translate out/bundle.json -o out/register.csv\n  \
fastkontakt samples generate --patients 10000 --seed 7 -o out/region"
)]
pub(crate) struct Cli {
    /// Folder of mapping files (fhir/, register/, target/, profiles/).
    #[arg(long, global = true, env = "FASTKONTAKT_MAPPINGS", value_name = "DIR")]
    pub(crate) mappings: Option<PathBuf>,
    /// Register column mapping, for an export that differs from format v1.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) register_mapping: Option<PathBuf>,
    /// Target settings (identifier style, id namespace).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) target: Option<PathBuf>,
    /// More log output (-v info, -vv debug). Logs go to stderr and never hold a full personnummer.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Log lines as JSON, for a log collector.
    #[arg(long, global = true)]
    pub(crate) log_json: bool,
    /// Language of the findings' messages: sv (Swedish, the default) or en. The catalogues
    /// are data: mappings/messages/sv.ftl and en.ftl.
    #[arg(long, global = true, value_enum, env = "FASTKONTAKT_LANG", default_value_t = fastkontakt::mapping::Lang::Sv)]
    pub(crate) lang: fastkontakt::mapping::Lang,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run as a service: the jobs of a TOML file on their schedules, on exports dropped in a
    /// folder, and when asked over HTTP (GET /healthz /readyz /metrics /runs /runs/ID,
    /// POST /jobs/NAME/run[?dry_run=true]).
    ///
    /// The file: [server] bind (127.0.0.1:8080; elsewhere needs tokens = "file:PATH"),
    /// history (the run history, SQLite), history_days; then [[job]] name, kind (sync,
    /// reconcile or check; the last two with profile and report, a folder per run),
    /// schedule (cron in Europe/Stockholm; six fields for seconds), drop_folder, and
    /// [job.sync] with what `sync --config` takes (register, ehr, state, state_key, …).
    /// SIGTERM lets the run in flight finish; a run the service did not finish runs again at
    /// the next start. See samples/serve.toml.
    Serve {
        /// The service's settings (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Translate register CSV → FHIR (transaction Bundle, or NDJSON), or FHIR → register CSV.
    ///
    /// The direction follows INPUT: a .csv file is a register export; a .json Bundle, an
    /// .ndjson file or a folder of them is FHIR. Bad rows are reported line by line on stderr
    /// and written to a quarantine file beside the input; the good rows still come out.
    ///
    /// Both directions stream, in bounded memory. FHIR → CSV holds up to --held-patients
    /// Patients in memory; past that it keeps them in a temporary file under TMPDIR (~80 bytes
    /// a Patient) and only where each one is in memory (9–19 bytes a Patient).
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
        /// FHIR → CSV: Patients held in memory (~100 bytes each) before all of them go to a
        /// temporary file under TMPDIR; 0 sends them there from the first. The output is the
        /// same either way.
        #[arg(long, value_name = "N", default_value_t = fastkontakt::pipelines::translate::HELD_PATIENTS)]
        held_patients: usize,
    },
    /// Check register and/or EHR data against the guideline rules FK-R01..FK-R24.
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
    /// Validate an EHR's FHIR against the product's fixed-contact shape (for EHR vendors).
    ///
    /// Reads a Bundle, NDJSON, a folder of them, or a FHIR server's base URL. A CareTeam or Task
    /// that presents itself as a fixed contact (its category, a role code from KV typ av fast
    /// kontakt or the treating-role CodeSystem, or the profile in meta.profile) but cannot be
    /// read as one is an error at its element (FK-IN02), e.g.
    /// "CareTeam.participant[0].role: no code from KV typ av fast kontakt"; data that is not
    /// FHIR R4 is FK-IN01; an identity number or HSA-id that fails its check is FK-R16. Every
    /// resource is accounted for: used, or not used and why. The StructureDefinitions in
    /// mappings/fhir/ describe the same shape for the HL7 validator.
    /// Exit: 0 valid, 1 errors found (or warnings, with --fail-on warning), 2 failed.
    Validate {
        /// A Bundle (.json), NDJSON, a folder of them, or a FHIR server's base URL.
        #[arg(value_name = "FILE|DIR|URL")]
        input: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Exit 1 when a finding is at or above this severity.
        #[arg(long, value_enum, default_value_t = FailOn::Error)]
        fail_on: FailOn,
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
    /// Learn what a FHIR server really does before syncing into it.
    ///
    /// Reads the CapabilityStatement and tries the searches the product depends on. With
    /// --yes-write it also writes probe CareTeams (status entered-in-error, tagged probe, no
    /// patient) and deletes them at the end: update-as-create, transactions (atomic? 100
    /// entries?), batch, If-Match on PUT, conditional PUT and in transactions, conditional
    /// create (and 10 at once), _count caps, paging under writes, Prefer: return=, _history,
    /// and how strictly it validates. Prints a table of each fact and what it means for sync.
    /// With --state the facts are kept for sync, which writes the way they allow.
    /// Exit: 0 a safe sync is possible, 1 it is not (the reasons are printed), 2 the probe failed.
    ///
    /// Example: fastkontakt probe --ehr https://ehr.example/fhir --yes-write --report probe.json
    Probe(Box<ProbeArgs>),
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
    ///
    /// With --profile, each rule as that region has it: on or off (and why), its severity, and
    /// its basis in the region's own document or the law.
    Rules {
        /// A rule id, e.g. FK-R03.
        id: Option<String>,
        /// A region profile: a name in mappings/profiles/ (gavleborg, orebro) or a TOML file.
        #[arg(long, value_name = "NAME|PATH")]
        profile: Option<String>,
    },
    /// Sample data: a synthetic region for tests and benchmarks.
    Samples {
        #[command(subcommand)]
        command: SamplesCommand,
    },
    /// Test a mapping against golden cases (for EHR vendors; see README "For EHR vendors").
    Mapping {
        #[command(subcommand)]
        command: MappingCommand,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum MappingCommand {
    /// Run golden cases: each a folder with register.csv, expected.ndjson (the FHIR a correct
    /// mapping gives), findings.json (the findings expected of the register against it) and,
    /// optionally, context.ndjson (what only the EHR knows: Flags, Observations, CarePlans …).
    ///
    /// Without --got, the product's own translation is tested. With --got DIR, DIR holds a
    /// folder per case (same names) with the FHIR your system produced for that register
    /// (Bundle or NDJSON): resources are compared ignoring order, ids, meta and text
    /// (references are compared by what they point at), printed as -want/+got per resource.
    /// Exit: 0 every case passed, 1 some failed, 2 the run failed.
    Test {
        /// The folder of cases, e.g. samples/golden.
        #[arg(value_name = "CASES_DIR")]
        cases: PathBuf,
        /// Your system's FHIR, a folder per case.
        #[arg(long, value_name = "DIR")]
        got: Option<PathBuf>,
        /// Write expected.ndjson and findings.json from the product (to make new cases).
        #[arg(long)]
        bless: bool,
        /// Region profile for the expected findings.
        #[arg(long, default_value = "gavleborg", value_name = "NAME|PATH")]
        profile: String,
        /// Judge "active" as of this day.
        #[arg(long, default_value = "2026-06-01", value_name = "YYYY-MM-DD")]
        as_of: chrono::NaiveDate,
        /// Print results as JSON (one object per case).
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SyncArgs {
    /// Settings file (TOML) for scheduled jobs; command-line flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Register export (.csv).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) register: Option<PathBuf>,
    /// The EHR's FHIR base URL.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) ehr: Option<String>,
    /// State file (SQLite): last-applied state, runs, ledger.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) state: Option<PathBuf>,
    /// The secret that keys every patient hash in the state file: file:PATH or env:NAME, at
    /// least 16 bytes (make one: head -c 32 /dev/urandom | base64 > state.key). Required; a
    /// state file opened with another key is refused.
    #[arg(
        long,
        global = true,
        env = "FASTKONTAKT_STATE_KEY",
        value_name = "SECRET"
    )]
    pub(crate) state_key: Option<String>,
    /// Other origins (scheme://host:port) that may receive the credentials, e.g. a Bulk Data
    /// file server; by default only the --ehr URL's own origin does. Repeatable.
    #[arg(long, global = true, value_name = "ORIGIN")]
    pub(crate) auth_allow_origin: Vec<String>,
    /// Most seconds one request may wait between retries, Retry-After included (default 120);
    /// past it the run fails rather than hang.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub(crate) max_retry_wait: Option<u64>,
    /// Plan and print, write nothing.
    #[arg(long, global = true)]
    pub(crate) dry_run: bool,
    /// Write the run summary as JSON here.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) summary: Option<PathBuf>,
    /// What to do when a person changed a register-owned element in the EHR.
    #[arg(long, global = true, value_enum)]
    pub(crate) on_conflict: Option<fastkontakt::sync::OnConflict>,
    /// What to do with register rows that a fixed contact typed by hand in the EHR (without the
    /// product's tag) already stands for: adopt it in place, replace it (end it, create the
    /// product's), or report it. Until one is chosen, nothing is written for such rows.
    #[arg(long, global = true, value_enum)]
    pub(crate) takeover: Option<fastkontakt::sync::takeover::TakeoverPolicy>,
    /// End the active contacts typed by hand that no register row stands for, where the
    /// register lists the patient (under the --max-end-share guard). Default: list them.
    #[arg(long, global = true)]
    pub(crate) end_unmatched: bool,
    /// Write no Task "inform the patient" when the run ends or changes an FVK (Örebro §7.4:
    /// the patient is told; by default the Task lands in the unit's work list).
    #[arg(long, global = true)]
    pub(crate) no_inform_tasks: bool,
    /// Write each patient's written information (Örebro §7.4: all fixed contacts, the
    /// coordinating FVK marked, how to reach them) as a Composition, for each patient whose
    /// contacts the run changes. Off unless the region turns it on.
    #[arg(long, global = true)]
    pub(crate) written_information: bool,
    /// Also write each such patient's written information here as a printable Swedish page
    /// (HTML) and its Composition (JSON), one pair of files per patient, named by the
    /// patient's resource id (no personnummer in file names).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) written_information_dir: Option<PathBuf>,
    /// Probe the server again (what it allows is kept in the state file after the first run;
    /// see `fastkontakt probe`).
    #[arg(long, global = true)]
    pub(crate) reprobe: bool,
    /// Create resources so, whatever the probe found: put (to the product's ids) or
    /// conditional-post (POST with If-None-Exist; the server names them).
    #[arg(long, global = true, value_enum)]
    pub(crate) create_by: Option<fastkontakt::fhir::probe::CreateBy>,
    /// Group writes so, whatever the probe found: transaction or single.
    #[arg(long, global = true, value_enum)]
    pub(crate) grouping: Option<fastkontakt::fhir::probe::Grouping>,
    /// Entries per transaction Bundle (default 500; a refused one is applied entry by entry).
    #[arg(long, global = true)]
    pub(crate) chunk_size: Option<usize>,
    /// Refuse to end more than this share of the active relations in one run (0..1).
    #[arg(long, global = true)]
    pub(crate) max_end_share: Option<f64>,
    /// Bearer token: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    pub(crate) bearer: Option<String>,
    /// OAuth2 token endpoint (client credentials).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) token_url: Option<String>,
    #[arg(long, global = true)]
    pub(crate) client_id: Option<String>,
    /// OAuth2 client secret: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    pub(crate) client_secret: Option<String>,
    #[arg(long, global = true)]
    pub(crate) scope: Option<String>,
    /// SMART Backend Services: the client's private key (PEM) for private_key_jwt: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    pub(crate) client_key: Option<String>,
    /// Signing algorithm for --client-key: ES384 (default) or RS384.
    #[arg(long, global = true)]
    pub(crate) client_key_alg: Option<String>,
    /// Key id (kid) the token endpoint knows --client-key by.
    #[arg(long, global = true)]
    pub(crate) client_key_id: Option<String>,
    /// Client certificate as PKCS#12 (e.g. a SITHS export) instead of --client-cert.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) client_p12: Option<PathBuf>,
    /// Password of --client-p12: file:PATH or env:NAME.
    #[arg(long, global = true, value_name = "SECRET")]
    pub(crate) client_p12_password: Option<String>,
    /// Client certificate and key (PEM, one file) for mutual TLS, e.g. SITHS.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) client_cert: Option<PathBuf>,
    /// A private CA (PEM) to trust for the EHR's certificate.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// Sent as X-Tenant-ID.
    #[arg(long, global = true)]
    pub(crate) tenant: Option<String>,
    /// Day used for end dates (default today, Europe/Stockholm).
    #[arg(long, global = true, value_name = "YYYY-MM-DD")]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    #[command(subcommand)]
    #[serde(skip)]
    pub(crate) action: Option<SyncAction>,
}

#[derive(clap::Args)]
pub(crate) struct ReconcileArgs {
    /// Register export (.csv).
    #[arg(long, value_name = "FILE")]
    pub(crate) register: PathBuf,
    /// The EHR: a FHIR base URL, or export files (NDJSON, a Bundle, or a folder of them).
    #[arg(long, value_name = "URL|FILE|DIR")]
    pub(crate) ehr: String,
    /// Region profile: a name in mappings/profiles/ (gavleborg, orebro) or a TOML file.
    #[arg(long, default_value = "gavleborg", value_name = "NAME|PATH")]
    pub(crate) profile: String,
    /// The report folder (created; files in it are replaced).
    #[arg(long, default_value = "reconcile-report", value_name = "DIR")]
    pub(crate) report: PathBuf,
    /// Judge "active" as of this day (default: today in Europe/Stockholm).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub(crate) fail_on: FailOn,
    /// Carry out the plan through sync's apply path (If-Match, Provenance, ledger). Needs --ehr URL.
    #[arg(long)]
    pub(crate) apply: bool,
    /// Sync state file (SQLite): what was applied before decides updates and conflicts.
    #[arg(long, default_value = "fastkontakt-state.sqlite", value_name = "PATH")]
    pub(crate) state: PathBuf,
    /// The state file's key: file:PATH or env:NAME (see sync --help); needed with a state file.
    #[arg(long, env = "FASTKONTAKT_STATE_KEY", value_name = "SECRET")]
    pub(crate) state_key: Option<String>,
    /// Passes over the EHR data, each holding one slice of the patients in memory
    /// (default: the fewest that fit --memory).
    #[arg(long, value_name = "N")]
    pub(crate) partitions: Option<u32>,
    /// The peak memory the run should fit in, in MiB. After reading the Patients it estimates
    /// the peak from the region's size and reads the EHR in as many passes as that takes
    /// (each pass holds a slice of the patients; more passes, more time). A 1,000,000-patient
    /// region takes ~670 MiB in one pass, ~550 in two. Too low for the patients alone: a
    /// warning, and one pass per 2 GB of files.
    #[arg(long, value_name = "MIB", default_value_t = MemoryBudget::default().mib, value_parser = clap::value_parser!(u64).range(64..))]
    pub(crate) memory: u64,
    /// Read the server by paged search even when it offers Bulk Data $export.
    #[arg(long)]
    pub(crate) no_export: bool,
    /// Resource types searched at once when reading a server by paged search.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) concurrency: usize,
    /// Keep the files fetched from the server in this folder (default: removed after the run).
    #[arg(long, value_name = "DIR")]
    pub(crate) keep_fetched: Option<PathBuf>,
    /// Quarantine file for rejected register rows (default: in the report folder).
    #[arg(long, value_name = "FILE")]
    pub(crate) quarantine: Option<PathBuf>,
    /// What --apply does when a person changed a register-owned element in the EHR.
    #[arg(long, value_enum, default_value_t = fastkontakt::sync::OnConflict::Report)]
    pub(crate) on_conflict: fastkontakt::sync::OnConflict,
    /// What the plan does with register rows a contact typed by hand in the EHR already
    /// stands for (adopt, replace, report); until one is chosen, nothing is planned for them.
    #[arg(long, value_enum)]
    pub(crate) takeover: Option<fastkontakt::sync::takeover::TakeoverPolicy>,
    /// Plan to end the active contacts typed by hand that no register row stands for.
    #[arg(long)]
    pub(crate) end_unmatched: bool,
    /// Write every patient's written information (Örebro §7.4: all fixed contacts, the
    /// coordinating FVK marked, the unit to reach each through) here: a printable Swedish page
    /// (HTML) and its Composition (JSON) per patient with a contact in force, named by the
    /// patient's resource id.
    #[arg(long, value_name = "DIR")]
    pub(crate) written_information_dir: Option<PathBuf>,
    /// Refuse a plan that ends more than this share of the active relations (0..1).
    #[arg(long, default_value_t = 0.2)]
    pub(crate) max_end_share: f64,
    /// Server connection settings as for sync (TOML: bearer, token_url, client_cert, …).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Sent as X-Tenant-ID.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Bearer token: file:PATH or env:NAME.
    #[arg(long, value_name = "SECRET")]
    pub(crate) bearer: Option<String>,
}

#[derive(clap::Args, Clone)]
pub(crate) struct ProbeArgs {
    /// The FHIR server's base URL.
    #[arg(long, value_name = "URL")]
    pub(crate) ehr: String,
    /// Write, change and delete probe resources (without it, only reads).
    #[arg(long)]
    pub(crate) yes_write: bool,
    /// Write the facts, the table and the write strategy as JSON here.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Keep the facts in this state file, for sync (needs the state key).
    #[arg(long, value_name = "PATH")]
    pub(crate) state: Option<PathBuf>,
    /// The state file's key: file:PATH or env:NAME (or FASTKONTAKT_STATE_KEY).
    #[arg(long, env = "FASTKONTAKT_STATE_KEY", value_name = "SECRET")]
    pub(crate) state_key: Option<String>,
    /// Server connection settings as for sync (TOML: bearer, token_url, client_cert, …).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Sent as X-Tenant-ID.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Bearer token: file:PATH or env:NAME.
    #[arg(long, value_name = "SECRET")]
    pub(crate) bearer: Option<String>,
}

#[derive(Subcommand, Clone)]
pub(crate) enum SyncAction {
    /// Write the plan to a file for review; writes nothing to the EHR.
    Plan {
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Apply a reviewed plan, only if the EHR has not changed since it was planned.
    Apply { plan: PathBuf },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Csv,
    OperationOutcome,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FailOn {
    Error,
    Warning,
    Never,
}

#[derive(Subcommand)]
pub(crate) enum SamplesCommand {
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
