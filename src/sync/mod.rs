//! Sync: register → plan of changes → the EHR's FHIR API, safely. The plan is a three-way diff
//! (register, EHR, last applied); apply is If-Match-guarded, provenanced, read back and ledgered.

pub(crate) mod engine;
pub(crate) mod key;
pub mod ownership;
pub mod spill;
pub mod state;
pub mod takeover;

pub use engine::{
    Action, Duties, OnConflict, Options, Summary, SyncPlan, Writing, DEFAULT_CHUNK_SIZE,
};

use crate::fhir::client::FhirClient;
use crate::fhir::probe::{CreateBy, Grouping, WriteStrategy};
use crate::mapping::Mappings;
use crate::sources::register::{mask_identity_numbers, RejectedRow};
use engine::{Applier, SyncError};
use ownership::Ownership;
use state::State;
use std::path::Path;
use std::time::Instant;

/// What one sync run is asked to do.
pub(crate) struct Job<'a> {
    pub(crate) register: &'a Path,
    pub(crate) state: &'a Path,
    pub(crate) state_key: state::StateKey,
    pub(crate) dry_run: bool,
    pub(crate) options: Options,
    pub(crate) chunk_size: usize,
}

/// Which elements the register owns (mappings/ownership.toml).
pub fn ownership(dir: &Path) -> Result<Ownership, crate::mapping::MappingError> {
    Ownership::load(&dir.join("ownership.toml"))
}

/// How to write to this server: its facts from the state file, else probed now (writing probe
/// resources, unless this run writes nothing) and kept; the choices in `w` override them. A
/// server against which a safe sync is impossible is refused before anything is written.
async fn write_strategy(
    client: &FhirClient,
    m: &Mappings,
    state: &State,
    w: &Writing,
    dry_run: bool,
) -> Result<(WriteStrategy, Vec<String>), SyncError> {
    let mut notes = Vec::new();
    let cached = if w.reprobe {
        None
    } else {
        state.server_facts(client.base())?
    };
    let facts = match cached {
        Some(f) => Some(f),
        None if dry_run => None,
        None => {
            let f = crate::fhir::probe::probe(client, &m.target.tag_system, true).await?;
            state.save_server_facts(&f)?;
            notes.push(format!(
                "probed {} (kept in the state file; --reprobe to probe again)",
                client.base()
            ));
            Some(f)
        }
    };
    let mut s = match &facts {
        Some(f) => {
            let blockers = f.blockers();
            if !blockers.is_empty() && !dry_run {
                return Err(SyncError::Refused(format!(
                    "a safe sync into {} is not possible: {}",
                    client.base(),
                    blockers.join("; ")
                )));
            }
            f.strategy()
        }
        None => {
            let caps = client.capabilities().await?;
            WriteStrategy {
                grouping: if caps.transaction {
                    Grouping::Transaction
                } else {
                    Grouping::Single
                },
                ..WriteStrategy::default()
            }
        }
    };
    if let Some(c) = w.create_by {
        s.create = c;
    }
    if let Some(g) = w.grouping {
        s.grouping = g;
    }
    if s.create == CreateBy::ConditionalPost {
        notes.push("the server refuses client-chosen ids: creates are POSTs with If-None-Exist, and the server's ids are kept in the state file".into());
    }
    if s.read_by_identifier {
        notes.push("the server's paging moves under writes: the product's relations are read by Rad-id in chunks".into());
    }
    if s.grouping == Grouping::Batch {
        notes.push("the server has no usable transactions: writes go in batches, each change with its own Provenance".into());
    }
    if s.grouping == Grouping::Single {
        notes.push("writes go one request at a time (no usable transactions), each with its own Provenance".into());
    }
    Ok((s, notes))
}

/// Plans (and unless dry-run, applies) one sync. Returns the plan and the summary.
pub(crate) async fn run(
    client: &FhirClient,
    m: &Mappings,
    own: &Ownership,
    job: Job<'_>,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
) -> Result<(SyncPlan, Summary), SyncError> {
    let t0 = Instant::now();
    let mut state = State::open(job.state, job.state_key)?;
    // One writing run per state file: a second waits, told who holds it, and then plans
    // against what the first wrote.
    let _lock = if job.dry_run {
        None
    } else {
        state.lock_for_writing()?
    };
    let desired = engine::desired(job.register, m, on_reject)?;
    let name = job.register.display().to_string();
    let run = state.start_run(&name, &desired.sha256, client.base(), job.dry_run)?;
    let (strategy, notes) =
        match write_strategy(client, m, &state, &job.options.writing, job.dry_run).await {
            Ok(x) => x,
            Err(e) => {
                state.finish_run(run, "failed", &mask_identity_numbers(&e.to_string()))?;
                return Err(e);
            }
        };
    let read = if strategy.read_by_identifier {
        engine::ReadBy::Identifier
    } else {
        engine::ReadBy::Tag
    };
    let plan = match engine::plan(client, m, own, &state, &desired, &job.options, &name, read).await
    {
        Ok(p) => p,
        Err(e) => {
            state.finish_run(run, "failed", &mask_identity_numbers(&e.to_string()))?;
            return Err(e);
        }
    };
    let mut summary = if job.dry_run {
        let mut s = Summary {
            run,
            dry_run: true,
            ..Default::default()
        };
        for i in &plan.items {
            match i.action {
                Action::Create => s.created += 1,
                Action::Update => s.updated += 1,
                Action::End => s.ended += 1,
                Action::CreateReference => s.references_created += 1,
                Action::Adopt => s.adopted += 1,
                Action::EndHandTyped => s.hand_typed_ended += 1,
                Action::Duty => s.duties_written += 1,
            }
        }
        s
    } else {
        let mut a = Applier::new(
            client,
            m,
            own,
            &mut state,
            run,
            &name,
            &desired.sha256,
            strategy,
        );
        a.apply(&plan, job.chunk_size).await?;
        a.summary
    };
    summary.strategy = Some(strategy);
    summary.messages.extend(notes);
    summary.unchanged = plan.unchanged;
    summary.conflicts += plan.conflicts.len() as u64;
    summary.errors += plan.errors.len() as u64;
    summary.rejected_rows = plan.rejected_rows;
    summary.ends_held = plan.ends_held;
    summary.takeover_pending = plan.takeover_pending;
    summary.takeover_held = plan.takeover.rows_held() - plan.takeover_pending;
    summary.messages.extend(plan.takeover.messages());
    if plan.unreadable_rows > 0 {
        summary.messages.push(format!(
            "{} register row(s) could not be read far enough to know whose they are: no relation is ended this run ({} left as they are); fix the rows in the quarantine file and run again",
            plan.unreadable_rows, plan.ends_held
        ));
    } else if plan.ends_held > 0 {
        summary.messages.push(format!(
            "{} relation(s) the register no longer lists were left as they are: their row or patient had a rejected row this run",
            plan.ends_held
        ));
    }
    summary.messages.extend(
        plan.conflicts
            .iter()
            .map(|c| format!("conflict: {}: {}", c.resource, c.reason)),
    );
    summary.messages.extend(plan.errors.iter().cloned());
    summary.writes = client.writes.load(std::sync::atomic::Ordering::Relaxed);
    summary.requests = client.requests.load(std::sync::atomic::Ordering::Relaxed);
    summary.retries = client.retries.load(std::sync::atomic::Ordering::Relaxed);
    summary.throttled = client.throttled();
    summary.latencies = client.take_latencies();
    summary.duration_seconds = t0.elapsed().as_secs_f64();
    let status = match summary.exit_code() {
        0 => "done",
        1 => "done-with-conflicts",
        _ => "failed",
    };
    state.finish_run(
        run,
        status,
        &serde_json::to_string(&summary).unwrap_or_default(),
    )?;
    Ok((plan, summary))
}

/// Applies a reviewed plan, only if every resource it touches is still at the version it was
/// planned against (and every create still absent).
pub(crate) async fn apply_plan(
    client: &FhirClient,
    m: &Mappings,
    own: &Ownership,
    plan: &SyncPlan,
    state_path: &Path,
    state_key: state::StateKey,
    chunk_size: usize,
) -> Result<Summary, SyncError> {
    let t0 = Instant::now();
    if plan.review_only {
        return Err(SyncError::Refused(
            "this plan was made from EHR files for review and holds no bodies for its creates; plan against the server (sync, or reconcile --ehr URL) to apply".into(),
        ));
    }
    if plan.base.trim_end_matches('/') != client.base().trim_end_matches('/') {
        return Err(SyncError::Refused(format!(
            "this plan was made against {}, not {}; nothing applied (plan again against this EHR)",
            plan.base,
            client.base()
        )));
    }
    let mut changed = Vec::new();
    for i in &plan.items {
        let cur = client.read(&i.resource_type, &i.id).await?;
        let now = cur
            .as_ref()
            .and_then(|c| c["meta"]["versionId"].as_str().map(str::to_owned));
        let same = match (&i.expected_version, &cur) {
            (None, None) => true,
            (Some(v), Some(_)) => now.as_deref() == Some(v.as_str()),
            _ => false,
        };
        if !same {
            changed.push(format!(
                "{}/{} (planned at version {:?}, now {:?})",
                i.resource_type, i.id, i.expected_version, now
            ));
        }
    }
    if !changed.is_empty() {
        return Err(SyncError::Refused(format!(
            "the EHR changed since the plan was made; nothing applied. Changed: {}",
            changed.join(", ")
        )));
    }
    let mut state = State::open(state_path, state_key)?;
    let _lock = state.lock_for_writing()?;
    let run = state.start_run(&plan.register, &plan.register_sha256, client.base(), false)?;
    let (strategy, notes) = write_strategy(client, m, &state, &Writing::default(), false).await?;
    let mut a = Applier::new(
        client,
        m,
        own,
        &mut state,
        run,
        &plan.register,
        &plan.register_sha256,
        strategy,
    );
    a.apply(plan, chunk_size).await?;
    let mut summary = a.summary;
    summary.strategy = Some(strategy);
    summary.messages.extend(notes);
    summary.unchanged = plan.unchanged;
    summary.writes = client.writes.load(std::sync::atomic::Ordering::Relaxed);
    summary.requests = client.requests.load(std::sync::atomic::Ordering::Relaxed);
    summary.retries = client.retries.load(std::sync::atomic::Ordering::Relaxed);
    summary.throttled = client.throttled();
    summary.latencies = client.take_latencies();
    summary.duration_seconds = t0.elapsed().as_secs_f64();
    state.finish_run(
        run,
        if summary.exit_code() == 0 {
            "done"
        } else {
            "done-with-conflicts"
        },
        &serde_json::to_string(&summary).unwrap_or_default(),
    )?;
    Ok(summary)
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks every sync in this process to stop at its next chunk boundary: what is written is
/// recorded, the rest is left for the next run (a service shutting down).
pub fn request_stop() {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub(crate) fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}
