//! Reconcile: a whole region's register against its EHR (export files, or a server fetched to
//! files first), partition by partition: every rule, and the plan a sync would make.
//! Flow: sources (register, EHR stream) → checks and plan per partition → `report` (sinks).

use crate::checks::run::{
    run_streamed, CheckError, CheckReport, EhrDirectory, Partition, ReadRow, RegisterRows, Streamed,
};
use crate::checks::Profile;
use crate::domain::{HsaId, PatientId};
use crate::fhir::ids::IdMaker;
use crate::fhir::inbound::Index;
use crate::fhir::outbound::relation_type;
use crate::fhir::Resource;
use crate::mapping::Mappings;
use crate::progress::Progress;
use crate::sources::ehr::files::FhirFileError;
use crate::sources::ehr::side::KeptRelation;
use crate::sources::register::{RegisterError, RejectedRow};
use crate::sync::engine::{
    product_relations, Bodies, Held, PlanBasis, Planner, RelationKey, SyncError, Want,
};
use crate::sync::ownership::Ownership;
use crate::sync::spill::SpilledItems;
use crate::sync::state::State;
use crate::sync::{Options, SyncPlan};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Fhir(#[from] FhirFileError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("the plan's temporary file: {0}")]
    Spill(std::io::Error),
    #[error("{0}, kept from the EHR files for the plan, could not be read back: {1}")]
    KeptRelation(String, serde_json::Error),
    #[error("the register's rows stopped before its end: nothing is planned from part of it")]
    RegisterCut,
}

pub(crate) struct Job<'a> {
    pub(crate) register: &'a Path,
    /// EHR files: NDJSON, Bundles, or a folder of them.
    pub(crate) ehr: &'a Path,
    pub(crate) profile: &'a Profile,
    pub(crate) mappings: &'a Mappings,
    pub(crate) own: &'a Ownership,
    pub(crate) state: &'a State,
    pub(crate) options: &'a Options,
    pub(crate) quarantine: Option<PathBuf>,
    /// Passes over the data (default: what `memory` asks for).
    pub(crate) partitions: Option<u32>,
    /// The memory the run should fit in.
    pub(crate) memory: crate::checks::run::MemoryBudget,
    /// Plan from the files (review only: creates carry no body). Off when the plan is made
    /// against the live server instead.
    pub(crate) plan: bool,
    /// What the plan names as its base (the server, or the files).
    pub(crate) base: String,
}

/// What a reconcile from files found and planned.
pub struct Outcome {
    pub(crate) report: CheckReport,
    /// The plan's head; its items are in `items`, on disk.
    pub(crate) plan: Option<SyncPlan>,
    pub(crate) items: Option<SpilledItems>,
    pub(crate) partitions: u32,
}

/// What the EHR files already hold that a relation refers to, by business identifier.
struct Existing<'d> {
    /// The partition's patients, by the id the directory read (borrowed: a million ids).
    patients: crate::fhir::patients::PatientsByIdentity<'d>,
    organizations: foldhash::HashMap<HsaId, String>,
    practitioners: foldhash::HashMap<HsaId, String>,
    roles: foldhash::HashMap<(HsaId, HsaId), String>,
}

/// The references the plan has settled (rewritten to the EHR's id, or planned as a create):
/// a unit or person named by a thousand rows is settled by the first.
#[derive(Default)]
struct Settled {
    /// `Type/id` of each reference planned as a create.
    created: HashSet<String>,
    units: foldhash::HashSet<HsaId>,
    staff: foldhash::HashSet<HsaId>,
    roles: foldhash::HashSet<(HsaId, HsaId)>,
    /// The patient of the row before (an export grouped by patient names each once in a run).
    patient: Option<PatientId>,
}

impl<'d> Existing<'d> {
    fn new(dir: &'d EhrDirectory, idx: &Index, part: Partition) -> Self {
        let hsa = |ids: &[fhirbolt::model::r4::types::Identifier]| {
            ids.iter().find_map(|i| {
                let sys = i.system.as_ref()?.value.as_deref()?;
                (crate::fhir::systems::classify(sys) == crate::fhir::systems::IdentifierKind::Hsa)
                    .then(|| HsaId::parse(i.value.as_ref()?.value.as_deref()?).ok())?
            })
        };
        let id_of = |id: &Option<fhirbolt::model::r4::types::Id>| {
            id.as_ref()
                .and_then(|i| i.value.clone())
                .unwrap_or_default()
        };
        let mut e = Existing {
            patients: dir.patient_ids(part),
            organizations: Default::default(),
            practitioners: Default::default(),
            roles: Default::default(),
        };
        for r in dir.all() {
            match r {
                Resource::Organization(o) => {
                    if let Some(h) = hsa(&o.identifier) {
                        e.organizations.entry(h).or_insert_with(|| id_of(&o.id));
                    }
                }
                Resource::Practitioner(p) => {
                    if let Some(h) = hsa(&p.identifier) {
                        e.practitioners.entry(h).or_insert_with(|| id_of(&p.id));
                    }
                }
                Resource::PractitionerRole(pr) => {
                    let staff =
                        pr.practitioner
                            .as_deref()
                            .and_then(|r| match idx.get(r).as_deref() {
                                Some(Resource::Practitioner(p)) => hsa(&p.identifier),
                                _ => None,
                            });
                    let unit =
                        pr.organization
                            .as_deref()
                            .and_then(|r| match idx.get(r).as_deref() {
                                Some(Resource::Organization(o)) => hsa(&o.identifier),
                                _ => None,
                            });
                    if let (Some(s), Some(u)) = (staff, unit) {
                        e.roles.entry((s, u)).or_insert_with(|| id_of(&pr.id));
                    }
                }
                _ => {}
            }
        }
        e
    }
}

/// Runs the rules and (unless `job.plan` is off) plans, one partition at a time.
pub(crate) fn run(
    job: Job,
    progress: &Progress,
    on_reject: &mut (dyn FnMut(&Path, &RejectedRow) + Send),
) -> Result<Outcome, ReconcileError> {
    let m = job.mappings;
    let sha = if job.plan {
        crate::sources::register::sha256_file(job.register)?
    } else {
        String::new()
    };
    let name = job.register.display().to_string();
    let mut planner = Planner::new(
        m,
        job.own,
        job.state,
        job.options,
        PlanBasis {
            base: &job.base,
            register: &name,
            sha256: &sha,
        },
        Bodies::ReviewOnly,
    );
    let mut settled = Settled::default();
    let mut failed: Option<ReconcileError> = None;
    let mut spill = if job.plan {
        Some(SpilledItems::new().map_err(ReconcileError::Spill)?)
    } else {
        None
    };
    let tag = (m.target.tag_system.as_str(), m.target.tag_code.as_str());
    let streamed = Streamed {
        register: Some(job.register),
        ehr: job.ehr,
        profile: job.profile,
        mappings: m,
        as_of: job.options.as_of,
        quarantine: job.quarantine.clone(),
        partitions: job.partitions,
        memory: job.memory,
        product: job.plan.then_some(tag),
    };
    let mut on_partition = |part: Partition,
                            dir: &EhrDirectory,
                            idx: &Index,
                            product: Vec<KeptRelation>,
                            hand: crate::sync::takeover::HandIndex,
                            rows: RegisterRows| {
        let Some(spill) = spill.as_mut() else {
            return true;
        };
        planner.hand_typed(hand, HashMap::new());
        let existing = Existing::new(dir, idx, part);
        let mut errors = Vec::new();
        let actual = product_relations(m, product, &mut errors);
        planner.found(actual.values().filter(|k| k.is_active()).count(), errors);
        match plan_partition(
            &mut planner,
            rows,
            m,
            part,
            actual,
            &existing,
            &mut settled,
            spill,
        ) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    };
    // The rules' own error first: a plan cut short by it only echoes it.
    let (report, partitions) = run_streamed(streamed, progress, on_reject, &mut on_partition)?;
    if let Some(e) = failed {
        return Err(e);
    }
    let plan = if job.plan {
        let mut p = planner.finish()?;
        p.rejected_rows = report.rejected_rows;
        Some(p)
    } else {
        None
    };
    Ok(Outcome {
        report,
        plan,
        items: spill,
        partitions,
    })
}

/// A kept relation's JSON, parsed when the plan reaches it.
fn read_back(k: &KeptRelation) -> Result<Value, ReconcileError> {
    k.value()
        .map_err(|e| ReconcileError::KeptRelation(k.reference(), e))
}

/// Plan items kept in memory before they are moved to disk.
const SPILL_EVERY: usize = 16_384;

/// One partition's relations, streamed: each register row, as the rules hand it on, is planned
/// against the product's relation in the EHR, which is then taken out of `actual`; what is
/// left in `actual` once the register has been read to its end is no longer in the register.
/// (The reader rejects a row id used twice, so each key comes once.)
#[allow(clippy::too_many_arguments)]
fn plan_partition(
    planner: &mut Planner,
    rows: RegisterRows,
    m: &Mappings,
    part: Partition,
    mut actual: HashMap<RelationKey, KeptRelation>,
    existing: &Existing<'_>,
    settled: &mut Settled,
    spill: &mut SpilledItems,
) -> Result<(), ReconcileError> {
    let ids = IdMaker::new(m.target.id_namespace);
    let out = crate::fhir::outbound::Outbound::new(m);
    let (mut held_rows, mut held_patients) = (HashSet::new(), HashSet::new());
    let no_held = (HashSet::new(), HashSet::new());
    let not_ending = Held {
        rows: &no_held.0,
        patients: &no_held.1,
        unreadable_rows: 0,
    };
    let mut unreadable_rows = 0;
    let mut ended = false;
    for row in rows.iter().flatten() {
        let (c, source) = match row {
            ReadRow::End => {
                ended = true;
                break;
            }
            ReadRow::Rejected(row) => {
                if let Some(r) = &row.row_id {
                    held_rows.insert(r.to_string());
                }
                if let Some(p) = row.patient {
                    held_patients.insert(p);
                }
                unreadable_rows += u64::from(row.identity_unknown);
                continue;
            }
            ReadRow::Contact(c, source) => (c, source),
        };
        debug_assert!(
            part.holds(&c.patient),
            "the rules hand on their partition's rows"
        );
        let key = RelationKey::new(relation_type(&c), c.row_id.as_str());
        // References: what exists is rewritten to the EHR's id, what is missing is created
        // before the first relation that needs it.
        let mut creates = Vec::new();
        let mut need = |t: &str, det: String, found: Option<&str>| {
            let key = format!("{t}/{det}");
            match found {
                Some(id) if *id != det => {
                    planner.resolved(key, format!("{t}/{id}"));
                }
                Some(_) => {}
                None => {
                    if settled.created.insert(key) {
                        creates.push(crate::fhir::transaction::reference_stub(t, &det));
                    }
                }
            }
        };
        // Each reference's outcome depends only on its business key, so the first row that
        // names it settles it for all.
        // A Patient the EHR has is rewritten in the row's own body (below), not through the
        // planner's map: a region's million pairs there took ~150 B each, and a body is made
        // only for the rows a plan item touches.
        let in_ehr = existing.patients.get(&c.patient);
        if settled.patient.as_ref() != Some(&c.patient) {
            if in_ehr.is_none() {
                need("Patient", ids.patient(&c.patient), None);
            }
            settled.patient = Some(c.patient.clone());
        }
        if !settled.units.contains(&c.unit.hsa) {
            need(
                "Organization",
                ids.organization(&c.unit.hsa),
                existing.organizations.get(&c.unit.hsa).map(String::as_str),
            );
            settled.units.insert(c.unit.hsa.clone());
        }
        if let Some(s) = c.staff() {
            if !settled.staff.contains(&s.hsa) {
                need(
                    "Practitioner",
                    ids.practitioner(&s.hsa),
                    existing.practitioners.get(&s.hsa).map(String::as_str),
                );
                settled.staff.insert(s.hsa.clone());
            }
            let role = (s.hsa.clone(), c.unit.hsa.clone());
            if !settled.roles.contains(&role) {
                need(
                    "PractitionerRole",
                    ids.practitioner_role(&s.hsa, &c.unit.hsa),
                    existing.roles.get(&role).map(String::as_str),
                );
                settled.roles.insert(role);
            }
        }
        planner.reference_creates(creates);
        let body = || {
            let mut v =
                crate::fhir::model::to_value(out.contact(&c).relation).unwrap_or(Value::Null);
            if let Some(id) = in_ehr {
                let det = ids.patient(&c.patient);
                if id != det {
                    let to = HashMap::from([(format!("Patient/{det}"), format!("Patient/{id}"))]);
                    crate::sync::engine::rewrite_refs(&mut v, &to);
                }
            }
            v
        };
        let want = Want {
            contact: &c,
            source: &source,
            body: &body,
        };
        let a = actual.remove(&key).map(|k| read_back(&k)).transpose()?;
        // Held rows matter only for ends, which come after the whole register is read.
        planner.relation(&key, Some(want), a.as_ref(), &not_ending)?;
        if planner.items().len() >= SPILL_EVERY {
            spill.take(planner.items()).map_err(ReconcileError::Spill)?;
        }
    }
    // Ends only from a register read to its end.
    if !ended {
        return Err(ReconcileError::RegisterCut);
    }
    let held = Held {
        rows: &held_rows,
        patients: &held_patients,
        unreadable_rows,
    };
    planner.rejected(0, unreadable_rows);
    let mut gone: Vec<(RelationKey, KeptRelation)> = actual.into_iter().collect();
    gone.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (key, a) in gone {
        planner.relation(&key, None, Some(&read_back(&a)?), &held)?;
    }
    planner.finish_hand_typed(&held)?;
    spill.take(planner.items()).map_err(ReconcileError::Spill)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::run::ReadRow;
    use crate::sources::register::{RegisterItem, RegisterReader};

    /// A relation the product wrote is ended only when the register's rows came to their end:
    /// rows that stop short (the rules' read failed) plan no end.
    #[test]
    fn rows_that_stop_short_end_nothing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let m = Mappings::load(&root.join("mappings"), None, None).unwrap();
        let own = crate::sync::ownership(&root.join("mappings")).unwrap();
        let register = root.join("samples/golden/01-ok-all/register.csv");
        let contact = RegisterReader::open(&register, &m.register, &m.terminology)
            .unwrap()
            .find_map(|i| match i.unwrap() {
                RegisterItem::Contact { contact, .. } => Some(contact),
                RegisterItem::Rejected(_) => None,
            })
            .unwrap();
        let written = crate::fhir::outbound::Outbound::new(&m)
            .contact(&contact)
            .relation;
        let state = State::open(
            Path::new(":memory:"),
            crate::sync::state::StateKey::ephemeral(),
        )
        .unwrap();
        let opts = Options {
            on_conflict: crate::sync::OnConflict::Report,
            chunk_size: 100,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            max_end_share: 1.0,
            takeover: None,
            end_unmatched: false,
            writing: Default::default(),
            duties: Default::default(),
        };
        let plan = |end: bool| {
            let kept = KeptRelation::of(&written, &m.target.row_id_system).unwrap();
            let actual = product_relations(&m, vec![kept], &mut Vec::new());
            assert_eq!(actual.len(), 1, "the product's relation is read back");
            let mut planner = Planner::new(
                &m,
                &own,
                &state,
                &opts,
                PlanBasis {
                    base: "files",
                    register: "register.csv",
                    sha256: "",
                },
                Bodies::ReviewOnly,
            );
            let (to, rows) = std::sync::mpsc::sync_channel(4);
            if end {
                to.send(vec![ReadRow::End]).unwrap();
            }
            drop(to);
            let existing = Existing {
                patients: Default::default(),
                organizations: Default::default(),
                practitioners: Default::default(),
                roles: Default::default(),
            };
            let mut spill = SpilledItems::new().unwrap();
            let part = Partition { index: 0, count: 1 };
            let r = plan_partition(
                &mut planner,
                rows,
                &m,
                part,
                actual,
                &existing,
                &mut Settled::default(),
                &mut spill,
            );
            let ends = planner
                .items()
                .iter()
                .filter(|i| i.action == crate::sync::Action::End)
                .count();
            (r, ends as u64 + spill.counts.end)
        };
        let (r, ends) = plan(false);
        assert!(matches!(r, Err(ReconcileError::RegisterCut)), "{r:?}");
        assert_eq!(ends, 0, "nothing ended from part of a register");
        // The same relation is ended by a register read to its end that does not list it.
        let (r, ends) = plan(true);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(ends, 1, "the register positively no longer lists it");
    }
}
