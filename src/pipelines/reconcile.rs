//! Pipeline `reconcile`: a whole region. EHR files (or a server fetched to files) and the
//! register → every rule and the plan a sync would make → the report folder; with `apply`, the
//! live plan carried out through sync's apply path.

use super::PipelineError;
use crate::checks::run::CheckReport;
use crate::checks::Profile;
use crate::fhir::client::FhirClient;
use crate::mapping::Mappings;
use crate::progress::Progress;
use crate::sinks::report::{PlanCounts, RunFacts};
use crate::sources::ehr::fetch::{self, How};
use crate::sources::register::RejectedRow;
use crate::sync::ownership::Ownership;
use crate::sync::state::{State, StateKey};
use crate::sync::Summary;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the EHR comes from.
pub enum EhrInput {
    /// Export files: NDJSON, Bundles, or a folder of them.
    Files(PathBuf),
    /// A FHIR server, fetched to `fetch_dir` first (removed afterwards unless `keep`).
    Server {
        /// The server's client.
        client: Arc<FhirClient>,
        /// Where the fetched files go.
        fetch_dir: PathBuf,
        /// Keep the fetched files afterwards.
        keep: bool,
        /// Use Bulk Data `$export` when the server offers it.
        export: bool,
        /// Types fetched at once by paged search.
        concurrency: usize,
    },
}

/// What one reconcile is asked.
pub struct Options<'a> {
    /// The register export.
    pub register: &'a Path,
    /// Where the EHR comes from.
    pub ehr: EhrInput,
    /// The region's profile.
    pub profile: &'a Profile,
    /// The mappings.
    pub mappings: &'a Mappings,
    /// Which elements the register owns.
    pub own: &'a Ownership,
    /// The state file and its key: what was applied before. Absent, nothing was.
    pub state: Option<(&'a Path, StateKey)>,
    /// The sync's options (conflicts, end-share guard, as-of day).
    pub options: crate::sync::Options,
    /// The report folder.
    pub report_dir: &'a Path,
    /// Where rejected register rows go.
    pub quarantine: PathBuf,
    /// Passes over the EHR files (default: the fewest that fit `memory`).
    pub partitions: Option<u32>,
    /// The peak memory the run should fit in; it decides the passes unless `partitions` is
    /// given.
    pub memory: crate::checks::run::MemoryBudget,
    /// Carry out the live plan (a server only).
    pub apply: bool,
    /// Write each patient's written information here (Örebro §7.4): a printable page and its
    /// Composition per patient with a contact in force.
    pub written_information_dir: Option<PathBuf>,
}

/// What a reconcile found, planned and wrote.
pub struct Outcome {
    /// The findings and the input's accounting.
    pub report: CheckReport,
    /// What a sync would do, counted; `review_only` for a plan made from files.
    pub plan: Option<(PlanCounts, bool)>,
    /// How the server was read, when it was.
    pub fetched: Option<String>,
    /// The files written in the report folder.
    pub written: Vec<PathBuf>,
    /// What `--apply` wrote, if asked.
    pub applied: Option<Summary>,
    /// Wall time.
    pub seconds: f64,
}

/// Reconciles a region: every rule, the plan, the report folder; applies when asked.
pub fn run(
    o: Options,
    rt: &tokio::runtime::Handle,
    progress: &Progress,
    on_reject: &mut (dyn FnMut(&Path, &RejectedRow) + Send),
) -> Result<Outcome, PipelineError> {
    let t0 = std::time::Instant::now();
    let (client, base) = match &o.ehr {
        EhrInput::Server { client, .. } => (Some(client.clone()), client.base().to_owned()),
        EhrInput::Files(p) => (None, p.display().to_string()),
    };
    if o.apply && client.is_none() {
        return Err(PipelineError::Refused(
            "--apply needs --ehr URL: a plan made from files is for review only".into(),
        ));
    }
    crate::sinks::private::create_dir(o.report_dir).map_err(|source| PipelineError::Io {
        path: o.report_dir.into(),
        source,
    })?;
    // Without a state file nothing was applied before: an empty in-memory state says so.
    let state = match &o.state {
        Some((path, key)) => State::open(path, key.clone())?,
        None => State::open(Path::new(":memory:"), StateKey::ephemeral())?,
    };
    let (ehr_path, fetched) = match &o.ehr {
        EhrInput::Files(p) => (p.clone(), None),
        EhrInput::Server {
            client,
            fetch_dir,
            export,
            concurrency,
            ..
        } => {
            progress.stage(format!("reading the EHR from {base}"));
            let f = rt
                .block_on(fetch::fetch(
                    client.clone(),
                    fetch_dir,
                    *export,
                    *concurrency,
                ))
                .map_err(|source| PipelineError::Fetch {
                    ehr: base.clone(),
                    source,
                })?;
            let how = match f.how {
                How::BulkExport => "Bulk Data $export",
                How::PagedSearch => "paged search",
            };
            let note = format!("read by {how}: {} files, {} bytes", f.files, f.bytes);
            tracing::info!(ehr = %base, %note, "EHR fetched");
            (fetch_dir.clone(), Some(note))
        }
    };
    let job = crate::reconcile::Job {
        register: o.register,
        ehr: &ehr_path,
        profile: o.profile,
        mappings: o.mappings,
        own: o.own,
        state: &state,
        options: &o.options,
        quarantine: Some(o.quarantine.clone()),
        partitions: o.partitions,
        memory: o.memory,
        plan: client.is_none(),
        base: base.clone(),
    };
    let outcome = crate::reconcile::run(job, progress, on_reject);
    if let EhrInput::Server {
        fetch_dir,
        keep: false,
        ..
    } = &o.ehr
    {
        let _ = std::fs::remove_dir_all(fetch_dir);
    }
    let outcome = outcome?;
    // Against a server the plan is the live one, as sync makes it, so it can be applied.
    let spilled = outcome.items;
    let plan = match &client {
        Some(c) => {
            let mut noop = |_: &Path, _: &RejectedRow| {};
            let desired = crate::sync::engine::desired(o.register, o.mappings, &mut noop)?;
            Some(rt.block_on(crate::sync::engine::plan(
                c,
                o.mappings,
                o.own,
                &state,
                &desired,
                &o.options,
                &o.register.display().to_string(),
                crate::sync::engine::ReadBy::Tag,
            ))?)
        }
        None => outcome.plan,
    };
    let facts = RunFacts {
        register: o.register.display().to_string(),
        ehr: base,
        fetched: fetched.clone(),
        partitions: outcome.partitions,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let counts = plan
        .as_ref()
        .map(|p| (PlanCounts::of(p, spilled.as_ref()), p.review_only));
    let written = crate::sinks::report::write(
        o.report_dir,
        &outcome.report,
        plan.as_ref(),
        spilled,
        &facts,
    )?;
    let applied = match (&client, &plan, o.apply, o.state) {
        (Some(c), Some(p), true, Some((path, key))) => Some(rt.block_on(
            crate::sync::apply_plan(c, o.mappings, o.own, p, path, key, 100),
        )?),
        (_, _, true, None) => {
            return Err(PipelineError::Refused(
                "--apply needs a state file and its key".into(),
            ))
        }
        _ => None,
    };
    let mut written = written;
    if let Some(dir) = &o.written_information_dir {
        let io = |source| PipelineError::Io {
            path: dir.clone(),
            source,
        };
        let docs = crate::duties::from_register(o.register, o.mappings, o.options.as_of)?;
        let pages = crate::sinks::letters::write(dir, &docs).map_err(io)?;
        tracing::info!(pages = pages.len(), "wrote the written information");
        written.push(dir.clone());
    }
    Ok(Outcome {
        report: outcome.report,
        plan: counts,
        fetched,
        written,
        applied,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
