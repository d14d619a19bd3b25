//! One function per command: options from the arguments, the library's pipeline, the outcome
//! printed for a person (stderr) or written as asked, and the exit code.

use super::args::{Cli, Command, FailOn, Format, ReconcileArgs, SyncAction, SyncArgs};
use super::config::{
    client_from, connection, merge_sync_args, state_key, state_path, sync_options,
};
use super::{load_mappings, mappings_dir, output, runtime};
use anyhow::Context;
use fastkontakt::checks::{Profile, Severity};
use fastkontakt::pipelines;
use fastkontakt::sources::register::RejectedRow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn print_rejected(path: &Path, row: &RejectedRow) {
    eprintln!("{}", row.describe(path));
}

fn threshold(f: FailOn) -> Option<Severity> {
    match f {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Never => None,
    }
}

fn fails(f: FailOn, report: &fastkontakt::checks::run::CheckReport) -> bool {
    matches!((threshold(f), report.worst()), (Some(t), Some(w)) if w >= t)
}

pub(super) fn translate(
    cli: &Cli,
    input: &Path,
    out_path: Option<&Path>,
    ndjson: bool,
    quarantine: &Option<PathBuf>,
    held_patients: usize,
) -> anyhow::Result<ExitCode> {
    let mappings = load_mappings(cli)?;
    let mut out = output(out_path)?;
    let o = pipelines::translate::Options {
        input: input.to_path_buf(),
        ndjson,
        quarantine: quarantine.clone(),
        held_patients,
    };
    let summary = pipelines::translate::run(&o, &mappings, &mut out, &mut print_rejected)?;
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
    // The direction is the input's, not the output's size: an export whose every row was
    // rejected still went CSV → FHIR.
    let what = if pipelines::translate::is_register_csv(input) {
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
    Ok(ExitCode::from(u8::from(summary.has_rejections())))
}

pub(super) fn check(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Command::Check {
        register,
        ehr,
        profile,
        format,
        output: out_path,
        fail_on,
        as_of,
        quarantine,
    } = &cli.command
    else {
        unreachable!("dispatched on Command::Check")
    };
    let mappings = load_mappings(cli)?;
    let profile = Profile::load(profile, &mappings_dir(cli), &mappings.terminology)
        .context("loading the profile")?;
    let ehr_text = ehr.as_ref().map(|p| p.to_string_lossy().into_owned());
    let client = match &ehr_text {
        Some(url) if pipelines::is_url(url) => Some(fastkontakt::fhir::client::FhirClient::new(
            fastkontakt::fhir::client::ClientConfig::new(url),
        )?),
        _ => None,
    };
    let input = match (&client, ehr) {
        (Some(c), _) => pipelines::check::EhrInput::Server(c),
        (None, Some(p)) => pipelines::check::EhrInput::Files(p),
        (None, None) => pipelines::check::EhrInput::None,
    };
    let rt = runtime()?;
    // Files are streamed with a progress bar (shown on a terminal only).
    let progress = fastkontakt::progress::Progress::bytes(0);
    let report = pipelines::check::run(
        pipelines::check::Options {
            register: register.as_deref(),
            ehr: input,
            profile: &profile,
            mappings: &mappings,
            as_of: as_of.unwrap_or_else(pipelines::today),
            quarantine: quarantine.clone(),
        },
        rt.handle(),
        &progress,
        &mut print_rejected,
    )
    .with_context(|| match &ehr_text {
        Some(e) => format!("checking with EHR data {e}"),
        None => "checking the register".into(),
    })?;
    progress.finish();
    write_report(&report, *format, out_path.as_deref())?;
    Ok(ExitCode::from(u8::from(fails(*fail_on, &report))))
}

pub(super) fn validate(
    cli: &Cli,
    input: &Path,
    format: Format,
    out_path: Option<&Path>,
    fail_on: FailOn,
) -> anyhow::Result<ExitCode> {
    let mappings = load_mappings(cli)?;
    let profile = Profile::load("gavleborg", &mappings_dir(cli), &mappings.terminology)
        .context("loading the profile")?;
    let text = input.to_string_lossy().into_owned();
    let client = if pipelines::is_url(&text) {
        Some(fastkontakt::fhir::client::FhirClient::new(
            fastkontakt::fhir::client::ClientConfig::new(&text),
        )?)
    } else {
        None
    };
    let ehr = match &client {
        Some(c) => pipelines::check::EhrInput::Server(c),
        None => pipelines::check::EhrInput::Files(input),
    };
    let rt = runtime()?;
    let progress = fastkontakt::progress::Progress::bytes(0);
    let report = pipelines::validate::run(ehr, &profile, &mappings, rt.handle(), &progress)
        .with_context(|| format!("validating {text}"))?;
    progress.finish();
    write_report(&report, format, out_path)?;
    Ok(ExitCode::from(u8::from(fails(fail_on, &report))))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn mapping_test(
    cli: &Cli,
    cases: &Path,
    got: Option<&Path>,
    bless: bool,
    profile: &str,
    as_of: chrono::NaiveDate,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mappings = load_mappings(cli)?;
    let profile = Profile::load(profile, &mappings_dir(cli), &mappings.terminology)
        .context("loading the profile")?;
    let started = std::time::Instant::now();
    let results = pipelines::golden::run(&pipelines::golden::Options {
        cases,
        got,
        bless,
        profile: &profile,
        mappings_dir: &mappings_dir(cli),
        mappings: &mappings,
        as_of,
    })?;
    let failed = results.iter().filter(|r| !r.passed()).count();
    if json {
        serde_json::to_writer_pretty(std::io::stdout().lock(), &results)?;
        println!();
    } else {
        for r in &results {
            if r.passed() {
                continue;
            }
            println!("FAIL {}", r.name);
            if let Some(e) = &r.error {
                println!("  {e}");
            }
            for d in &r.diffs {
                for line in d.lines() {
                    println!("  {line}");
                }
            }
            for f in &r.findings_missing {
                println!("  -finding {}", masked_finding(f));
            }
            for f in &r.findings_extra {
                println!("  +finding {}", masked_finding(f));
            }
        }
    }
    let verb = if bless { "blessed" } else { "passed" };
    eprintln!(
        "{} cases: {} {verb}, {failed} failed ({:.1} s)",
        results.len(),
        results.len() - failed,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::from(u8::from(failed > 0)))
}

/// `RULE patient` with the patient masked (a terminal ends up in logs).
fn masked_finding(f: &str) -> String {
    match f.split_once(' ') {
        Some((rule, p)) => format!("{rule} {}", fastkontakt::checks::run::masked(p)),
        None => f.to_owned(),
    }
}

/// Writes a check's report in the format asked; a file written for machines also gets the
/// terminal summary on stderr.
fn write_report(
    report: &fastkontakt::checks::run::CheckReport,
    format: Format,
    out_path: Option<&Path>,
) -> anyhow::Result<()> {
    let mut out = output(out_path)?;
    use fastkontakt::sinks::findings;
    match format {
        Format::Text => findings::write_text(report, &mut out)?,
        Format::Json => findings::write_json(report, &mut out)?,
        Format::Csv => findings::write_csv(report, &mut out)?,
        Format::OperationOutcome => {
            serde_json::to_writer_pretty(&mut out, &findings::operation_outcome(report))?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    if out_path.is_some() && format != Format::Text {
        let mut summary = Vec::new();
        findings::write_text(report, &mut summary)?;
        eprint!("{}", String::from_utf8_lossy(&summary));
    }
    Ok(())
}

pub(super) fn sync(cli: &Cli, raw: &SyncArgs) -> anyhow::Result<ExitCode> {
    let args = merge_sync_args(raw)?;
    let mappings = load_mappings(cli)?;
    let own = fastkontakt::sync::ownership(&mappings_dir(cli))
        .context("loading mappings/ownership.toml")?;
    let client = client_from(&args)?;
    let state = state_path(&args);
    let mode = match &args.action {
        Some(SyncAction::Apply { plan }) => pipelines::sync::Mode::Apply { plan: plan.clone() },
        Some(SyncAction::Plan { output }) => pipelines::sync::Mode::Plan {
            output: output.clone(),
        },
        None => pipelines::sync::Mode::Run {
            dry_run: args.dry_run,
        },
    };
    let printing_plan = !matches!(mode, pipelines::sync::Mode::Run { dry_run: false });
    let o = sync_options(&args, &state, mode)?;
    let outcome = runtime()?.block_on(pipelines::sync::run(
        &client,
        &mappings,
        &own,
        o,
        &mut print_rejected,
    ))?;
    if let (Some(plan), true) = (&outcome.plan, printing_plan) {
        if let Some(SyncAction::Plan { output }) = &args.action {
            eprintln!(
                "plan written to {} ({} changes); it holds patient data: keep it as such",
                output.display(),
                plan.items.len()
            );
        }
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
    finish_sync(&args, &outcome.summary)
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

pub(super) fn reconcile(cli: &Cli, a: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    use pipelines::reconcile::{EhrInput, Options};
    let mappings = load_mappings(cli)?;
    let dir = mappings_dir(cli);
    let profile =
        Profile::load(&a.profile, &dir, &mappings.terminology).context("loading the profile")?;
    let own = fastkontakt::sync::ownership(&dir).context("loading mappings/ownership.toml")?;
    let ehr = if pipelines::is_url(&a.ehr) {
        // Connection settings as for sync: a TOML file, with flags over it.
        let args = connection(
            a.config.as_deref(),
            &a.ehr,
            a.tenant.as_ref(),
            a.bearer.as_ref(),
        )?;
        eprintln!("reading the EHR from {} …", a.ehr);
        EhrInput::Server {
            client: std::sync::Arc::new(client_from(&args)?),
            fetch_dir: a
                .keep_fetched
                .clone()
                .unwrap_or_else(|| a.report.join(".fetched")),
            keep: a.keep_fetched.is_some(),
            export: !a.no_export,
            concurrency: a.concurrency,
        }
    } else {
        EhrInput::Files(PathBuf::from(&a.ehr))
    };
    let state = if a.state.exists() || a.apply {
        Some((a.state.as_path(), state_key(a.state_key.as_deref())?))
    } else {
        None
    };
    let progress = fastkontakt::progress::Progress::bytes(0);
    let mut rejected = 0u64;
    let mut on_reject = |path: &Path, row: &RejectedRow| {
        rejected += 1;
        if rejected <= 20 {
            progress.suspend(|| print_rejected(path, row));
        }
    };
    let rt = runtime()?;
    let outcome = pipelines::reconcile::run(
        Options {
            register: &a.register,
            ehr,
            profile: &profile,
            mappings: &mappings,
            own: &own,
            state,
            options: fastkontakt::sync::Options {
                on_conflict: a.on_conflict,
                chunk_size: fastkontakt::sync::DEFAULT_CHUNK_SIZE,
                as_of: a.as_of.unwrap_or_else(pipelines::today),
                max_end_share: a.max_end_share,
                takeover: a.takeover,
                end_unmatched: a.end_unmatched,
                writing: Default::default(),
                duties: Default::default(),
            },
            report_dir: &a.report,
            quarantine: a
                .quarantine
                .clone()
                .unwrap_or_else(|| a.report.join("register.quarantine.csv")),
            partitions: a.partitions,
            memory: fastkontakt::checks::run::MemoryBudget { mib: a.memory },
            apply: a.apply,
            written_information_dir: a.written_information_dir.clone(),
        },
        rt.handle(),
        &progress,
        &mut on_reject,
    );
    progress.finish();
    let outcome = outcome?;
    if rejected > 20 {
        eprintln!(
            "… and {} more rejected rows (see the quarantine file)",
            rejected - 20
        );
    }
    if let Some(note) = &outcome.fetched {
        eprintln!("{note}");
    }
    let r = &outcome.report;
    let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    eprintln!(
        "reconciled {} patients ({} register rows, {} EHR contacts) in {:.1} s: {} errors, {} warnings, {} info; {} rejected rows",
        r.patients,
        r.register_rows,
        r.ehr_contacts,
        outcome.seconds,
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
        r.rejected_rows
    );
    // What the EHR input held and what became of it (never a silent "nothing wrong").
    let mut input = Vec::new();
    fastkontakt::sinks::findings::write_input(&r.ehr, &mut input)?;
    eprint!("{}", String::from_utf8_lossy(&input));
    if let Some((c, review_only)) = &outcome.plan {
        eprintln!(
            "a sync would: create {}, update {}, end {}, create {} references; {} unchanged, {} conflicts{}",
            c.actions.create,
            c.actions.update,
            c.actions.end,
            c.actions.create_reference,
            c.unchanged,
            c.conflicts,
            if *review_only { " (plan from files: for review)" } else { "" }
        );
        if c.actions.adopt + c.actions.end_hand_typed > 0 {
            eprintln!(
                "taking over contacts typed by hand in the EHR: adopt {}, end {}",
                c.actions.adopt, c.actions.end_hand_typed
            );
        }
        for m in &c.takeover_messages {
            eprintln!("{m}");
        }
    }
    for w in &outcome.written {
        eprintln!("wrote {}", w.display());
    }
    let mut code = u8::from(fails(a.fail_on, r));
    if let Some(s) = &outcome.applied {
        eprintln!(
            "applied: created {}, updated {}, ended {}, references created {}; {} writes",
            s.created, s.updated, s.ended, s.references_created, s.writes
        );
        code = code.max(s.exit_code());
    }
    Ok(ExitCode::from(code))
}

pub(super) fn history(
    patient: &str,
    at: Option<chrono::NaiveDate>,
    state: &Path,
    key: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let p = fastkontakt::domain::PatientId::parse(patient)
        .map_err(|e| anyhow::anyhow!("the patient number: {e}"))?;
    let rows = pipelines::history::run(state, state_key(key)?, &p, at)?;
    if rows.is_empty() {
        println!("no sync has written a relation for {p}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{p}: {} relations written by fastkontakt", rows.len());
    for r in &rows {
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

pub(super) fn rules(
    cli: &Cli,
    id: Option<&str>,
    profile: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use fastkontakt::checks::catalogue;
    if let Some(name) = profile {
        let mappings = load_mappings(cli)?;
        let p = Profile::load(name, &mappings_dir(cli), &mappings.terminology)
            .context("loading the profile")?;
        println!("profile {}: {}", p.name(), p.description);
        for r in p.rule_table() {
            if id.is_some_and(|i| !i.eq_ignore_ascii_case(r.id)) {
                continue;
            }
            match &r.off_because {
                None => println!(
                    "{}  on   {:<7}  {}\n          basis: {}",
                    r.id,
                    r.severity.to_string(),
                    r.title,
                    r.basis
                ),
                Some(why) => println!(
                    "{}  off           {}\n          why: {}",
                    r.id, r.title, why
                ),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match id {
        Some(id) => {
            let r = catalogue::find(id)
                .with_context(|| format!("no rule {id}; rules are FK-R01..FK-R24"))?;
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

pub(super) fn generate(
    cli: &Cli,
    patients: u64,
    seed: u64,
    inconsistency_share: f64,
    output: &Path,
) -> anyhow::Result<ExitCode> {
    let mappings = load_mappings(cli)?;
    let m = fastkontakt::samples::generate(
        &fastkontakt::samples::Spec {
            patients,
            seed,
            inconsistency_share,
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

/// `probe`: what the server really does, as a table; the facts kept in a state file for sync.
pub(super) fn probe(cli: &Cli, a: &super::args::ProbeArgs) -> anyhow::Result<ExitCode> {
    let mappings = load_mappings(cli)?;
    let args = connection(
        a.config.as_deref(),
        &a.ehr,
        a.tenant.as_ref(),
        a.bearer.as_ref(),
    )?;
    let client = client_from(&args)?;
    let state = match &a.state {
        Some(p) => Some((p.as_path(), state_key(a.state_key.as_deref())?)),
        None => None,
    };
    if !a.yes_write {
        eprintln!("reading only (the CapabilityStatement and searches); --yes-write also writes and deletes probe resources");
    }
    let o = runtime()?.block_on(pipelines::probe::run(
        &client,
        &mappings,
        a.yes_write,
        state,
    ))?;
    let width = o
        .table
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0);
    let rwidth = o
        .table
        .iter()
        .map(|r| r.1.chars().count().min(40))
        .max()
        .unwrap_or(0);
    println!("{} ({})", o.facts.base, o.facts.probed_at);
    for (name, result, meaning) in &o.table {
        println!("  {name:<width$}  {result:<rwidth$}  {meaning}");
    }
    for n in &o.facts.notes {
        println!("  note: {n}");
    }
    println!(
        "sync will: create by {}, write {}, {}",
        match o.strategy.create {
            fastkontakt::fhir::probe::CreateBy::Put => "PUT to its own ids",
            fastkontakt::fhir::probe::CreateBy::ConditionalPost =>
                "POST with If-None-Exist (the server's ids kept in the state file)",
        },
        match o.strategy.grouping {
            fastkontakt::fhir::probe::Grouping::Transaction =>
                "in transactions with a Provenance each",
            fastkontakt::fhir::probe::Grouping::Batch => "in batches, a Provenance for each change",
            fastkontakt::fhir::probe::Grouping::Single =>
                "one request at a time with a Provenance each",
        },
        if o.strategy.if_match {
            "If-Match on every update"
        } else {
            "re-checking each write's version before and after (the server ignores If-Match)"
        }
    );
    if o.blockers.is_empty() {
        println!("a safe sync is possible");
    } else {
        println!("a safe sync is NOT possible:");
        for b in &o.blockers {
            println!("  - {b}");
        }
    }
    if let Some(path) = &a.report {
        let bytes = serde_json::to_vec_pretty(&o)?;
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(p) = &a.state {
        eprintln!("facts kept in {} for sync", p.display());
    }
    Ok(ExitCode::from(o.exit_code()))
}
