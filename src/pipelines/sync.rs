//! Pipeline `sync`: register → three-way plan against the EHR → (unless a dry run or a plan for
//! review) If-Match transactions with Provenance, read back and ledgered; or a reviewed plan
//! file applied only if the EHR has not moved.

use super::PipelineError;
use crate::fhir::client::FhirClient;
use crate::mapping::Mappings;
use crate::sources::register::RejectedRow;
use crate::sync::ownership::Ownership;
use crate::sync::state::StateKey;
use crate::sync::{Summary, SyncPlan};
use std::path::{Path, PathBuf};

/// What a sync run does.
pub enum Mode {
    /// Plan and apply (or, dry, only plan).
    Run {
        /// Plan only; write nothing.
        dry_run: bool,
    },
    /// Plan and write the plan to a file for review; nothing is written to the EHR.
    Plan {
        /// The plan file.
        output: PathBuf,
    },
    /// Apply a reviewed plan file.
    Apply {
        /// The plan file.
        plan: PathBuf,
    },
}

/// What one sync is asked.
pub struct Options<'a> {
    /// The export (not needed to apply a plan file).
    pub register: Option<&'a Path>,
    /// The state file.
    pub state: &'a Path,
    /// The state file's key.
    pub state_key: StateKey,
    /// Run, plan or apply.
    pub mode: Mode,
    /// Conflicts, the end-share guard, the as-of day.
    pub options: crate::sync::Options,
    /// Entries per transaction.
    pub chunk_size: usize,
    /// Where the written information of the patients whose contacts changed goes as files.
    pub written_information_dir: Option<PathBuf>,
}

/// What a sync did.
pub struct Outcome {
    /// The plan made (absent when a plan file was applied).
    pub plan: Option<SyncPlan>,
    /// The summary a cron job reads.
    pub summary: Summary,
}

/// Runs one sync: plan, and apply unless asked not to.
pub async fn run(
    client: &FhirClient,
    m: &Mappings,
    own: &Ownership,
    o: Options<'_>,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
) -> Result<Outcome, PipelineError> {
    if let Mode::Apply { plan } = &o.mode {
        let io = |source| PipelineError::Io {
            path: plan.clone(),
            source,
        };
        let text = std::fs::read(plan).map_err(io)?;
        let p: SyncPlan = serde_json::from_slice(&text)
            .map_err(|e| io(std::io::Error::other(format!("not a plan: {e}"))))?;
        let summary =
            crate::sync::apply_plan(client, m, own, &p, o.state, o.state_key, o.chunk_size).await?;
        return Ok(Outcome {
            plan: None,
            summary,
        });
    }
    let register = o.register.ok_or_else(|| {
        PipelineError::Refused(
            "--register FILE is required (or register = \"...\" in --config)".into(),
        )
    })?;
    let dry_run = match &o.mode {
        Mode::Run { dry_run } => *dry_run,
        _ => true,
    };
    let job = crate::sync::Job {
        register,
        state: o.state,
        state_key: o.state_key,
        dry_run,
        options: o.options,
        chunk_size: o.chunk_size,
    };
    let (plan, summary) = crate::sync::run(client, m, own, job, on_reject).await?;
    if let Some(dir) = &o.written_information_dir {
        crate::sinks::letters::write(dir, &plan.letters).map_err(|source| PipelineError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    if let Mode::Plan { output } = &o.mode {
        let bytes = serde_json::to_vec_pretty(&plan).map_err(|e| PipelineError::Io {
            path: output.clone(),
            source: e.into(),
        })?;
        crate::sinks::private::write_file(output, &bytes).map_err(|source| PipelineError::Io {
            path: output.clone(),
            source,
        })?;
    }
    Ok(Outcome {
        plan: Some(plan),
        summary,
    })
}
