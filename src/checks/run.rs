//! Runs the rules over the inputs: the register is streamed one patient at a time (an export
//! grouped by patient never sits in memory; an ungrouped one is grouped in memory on a second
//! pass), the EHR side is read whole and joined by patient. A reconcile's plan gets each
//! register row from the rules once they are done with it, so the register is read once.

use super::rules::{Engine, PatientData, Sourced};
use super::{Finding, NotEvaluated, Profile, Severity};
use crate::domain::{Availability, FixedContact, HsaId, PatientId};
use crate::fhir::inbound::Index;
use crate::mapping::Mappings;
use crate::sources::ehr::files::FhirFileError;
use crate::sources::ehr::side::patient_key as key;
pub use crate::sources::ehr::side::{EhrDirectory, EhrSide, Partition};
use crate::sources::register::{mask, RegisterError, RegisterItem, RegisterReader, RejectedRow};
use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Fhir(#[from] FhirFileError),
    #[error("nothing to check: give a register export, EHR data, or both")]
    NoInput,
}

/// What a check found, and what it read.
#[derive(Debug, serde::Serialize)]
pub struct CheckReport {
    pub(crate) profile: String,
    pub(crate) as_of: NaiveDate,
    /// Patients checked.
    pub patients: u64,
    /// Register rows read as contacts.
    pub register_rows: u64,
    /// Contacts read from the EHR.
    pub ehr_contacts: usize,
    /// The findings, most severe first.
    pub findings: Vec<Finding>,
    /// Rules that could not run for lack of data.
    pub not_evaluated: Vec<NotEvaluated>,
    /// Register rows that could not be read (their identifier problems are FK-R16 findings).
    pub rejected_rows: u64,
    /// Where rejected register rows were written, if anywhere.
    pub quarantine: Option<PathBuf>,
    pub(crate) ehr_problems: Vec<String>,
    /// What the EHR input held: per type read, used and not used, and why.
    #[serde(flatten)]
    pub ehr: crate::sources::ehr::account::InputAccount,
}

impl CheckReport {
    /// Adds another partition's report to this one.
    pub(crate) fn absorb(&mut self, o: CheckReport) {
        self.patients += o.patients;
        self.register_rows += o.register_rows;
        self.ehr_contacts += o.ehr_contacts;
        self.findings.extend(o.findings);
        for n in o.not_evaluated {
            if !self.not_evaluated.contains(&n) {
                self.not_evaluated.push(n);
            }
        }
        self.rejected_rows += o.rejected_rows;
        self.quarantine = self.quarantine.take().or(o.quarantine);
        self.ehr_problems.extend(o.ehr_problems);
        self.ehr.absorb(o.ehr);
    }

    /// Most severe first, then by rule and patient: the order every output uses.
    pub(crate) fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.rule.cmp(b.rule))
                .then(a.patient.cmp(&b.patient))
        });
    }

    /// The most severe finding's severity, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// What one check reads: a register, an EHR side, or both, under a profile.
pub struct CheckInput<'a> {
    /// The register export.
    pub register: Option<&'a Path>,
    /// The EHR side, read before.
    pub ehr: Option<EhrSide>,
    /// The region's profile.
    pub profile: &'a Profile,
    /// The mappings (terminology, register columns, carriers).
    pub mappings: &'a Mappings,
    /// The day "active" is judged on.
    pub as_of: NaiveDate,
    /// Where rejected register rows go.
    pub quarantine: Option<PathBuf>,
    /// The slice of patients this run checks (rejected rows are handled in the first).
    pub partition: Partition,
}

/// The register column names that carry identifiers (FK-R16).
fn identity_columns(m: &Mappings) -> [String; 5] {
    let c = &m.register.columns;
    [
        c.patient.clone(),
        c.staff_hsa.clone(),
        c.unit_hsa.clone(),
        c.listing_unit.clone(),
        c.registered_by.clone(),
    ]
}

struct Run<'a> {
    partition: Partition,
    engine: Engine<'a>,
    findings: Vec<Finding>,
    patients: u64,
    /// The patients the EHR holds something of that the register named, in the order met;
    /// sorted once when the register is read (a hash set of a region's million took 36 MB and
    /// its last doubling near the end of the rules was part of the run's peak).
    ehr_seen: Vec<PatientId>,
    forward: Forward,
}

/// A register row the rules have read, handed on to the plan: the register is read once.
// The large variant is the common one (as in `RegisterItem`).
#[allow(clippy::large_enum_variant)]
pub enum ReadRow {
    /// A contact of the partition, with where it was read (`file:line row-id`).
    Contact(FixedContact, String),
    /// A row the reader rejected.
    Rejected(RejectedRow),
    /// The register was read to its end: only after this may a plan end what it no longer
    /// lists (rows that stop without it mean the read failed).
    End,
}

/// The register's rows as the rules read them, for the plan.
pub type RegisterRows = std::sync::mpsc::Receiver<Vec<ReadRow>>;

/// Rows handed on per message (a message per row cost more than the row).
const FORWARD_BATCH: usize = 1024;

/// Where the rules hand on the rows they have read (nowhere when no plan is made).
#[derive(Default)]
struct Forward {
    to: Option<std::sync::mpsc::SyncSender<Vec<ReadRow>>>,
    batch: Vec<ReadRow>,
}

impl Forward {
    fn push(&mut self, row: ReadRow) {
        if self.to.is_some() {
            self.batch.push(row);
            if self.batch.len() >= FORWARD_BATCH {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if let Some(to) = &self.to {
            let rows = std::mem::take(&mut self.batch);
            // The plan stopped reading (it failed, and says so itself): the rules go on.
            if !rows.is_empty() && to.send(rows).is_err() {
                self.to = None;
            }
        }
    }

    fn end(&mut self) {
        self.push(ReadRow::End);
        self.flush();
        self.to = None;
    }
}

impl Run<'_> {
    fn patient(
        &mut self,
        patient: &PatientId,
        register: &[(FixedContact, String)],
        ehr: &EhrSide,
        held: bool,
    ) {
        let stored = ehr.contacts.of(patient);
        let ehr_contacts: Vec<Sourced> = stored
            .map(|v| v.iter().map(|(c, s)| (c, &**s)).collect())
            .unwrap_or_default();
        let context = ehr.facts.context_of(patient);
        // Only what the EHR holds is looked for afterwards (its patients the register lacks).
        if stored.is_some() || context.is_some() {
            self.ehr_seen.push(patient.clone());
        }
        let data = PatientData {
            patient,
            register: register.iter().map(|(c, s)| (c, s.as_str())).collect(),
            ehr: ehr_contacts,
            context: context.as_deref(),
            held,
        };
        self.engine.check(&data, &mut self.findings);
        self.patients += 1;
    }
}

/// EHR files per partition pass when no memory budget can be met (see `MemoryBudget`).
pub(crate) const PARTITION_BYTES: u64 = 2_000_000_000;

/// The peak memory a run may take, in MiB, and how many passes over the EHR that asks for.
///
/// The peak is estimated from the region's size after the directory pass: a fixed part, a part
/// per Patient (the directory's stubs, each patient's listing, the findings — held whatever the
/// partitions) and a part per byte of EHR files that one partition's pass holds. The figures
/// are measured peaks of `reconcile` on generated regions of 100 k, 300 k and 1 M patients
/// (release build, 1 and 2 partitions, freed memory handed back after a second: 147 and 139,
/// 268 and 227, 650–670 and 546 MiB). The estimate leans high: 15–30 MiB over each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// MiB.
    pub mib: u64,
}

impl Default for MemoryBudget {
    /// 768 MiB: what issue 18 asks a million-patient region to fit in.
    fn default() -> Self {
        MemoryBudget { mib: 768 }
    }
}

/// The most passes a budget asks for; beyond this the fixed part dominates anyway.
const MAX_PARTITIONS: u32 = 16;

impl MemoryBudget {
    const FIXED_MIB: f64 = 120.0;
    const MIB_PER_MILLION_PATIENTS: f64 = 340.0;
    const PER_EHR_BYTE: f64 = 0.16;

    /// The estimated peak, in MiB, of a run over `patients` Patients and `ehr_bytes` of EHR
    /// files read in `parts` passes.
    pub fn estimate(patients: usize, ehr_bytes: u64, parts: u32) -> f64 {
        let mib = |b: f64| b / (1024.0 * 1024.0);
        Self::FIXED_MIB
            + patients as f64 / 1e6 * Self::MIB_PER_MILLION_PATIENTS
            + mib(ehr_bytes as f64) * Self::PER_EHR_BYTE / f64::from(parts.max(1))
    }

    /// The fewest passes whose estimate fits the budget; `None` when no count up to
    /// `MAX_PARTITIONS` does (the patients alone need more).
    pub fn partitions(self, patients: usize, ehr_bytes: u64) -> Option<u32> {
        (1..=MAX_PARTITIONS).find(|&p| Self::estimate(patients, ehr_bytes, p) <= self.mib as f64)
    }
}

/// A check whose EHR side is read from files, streamed and partitioned.
pub struct Streamed<'a> {
    /// The register export.
    pub register: Option<&'a Path>,
    /// The EHR's files (NDJSON, Bundles or a folder of them).
    pub ehr: &'a Path,
    /// The region's profile.
    pub profile: &'a Profile,
    /// The mappings.
    pub mappings: &'a Mappings,
    /// The day "active" is judged on.
    pub as_of: NaiveDate,
    /// Where rejected register rows go.
    pub quarantine: Option<PathBuf>,
    /// Passes over the data (default: what `memory` asks for).
    pub partitions: Option<u32>,
    /// The memory the run should fit in; it decides the passes unless `partitions` is given.
    pub memory: MemoryBudget,
    /// Keep the CareTeams and Tasks with this tag (system, code) as JSON, for a plan.
    pub product: Option<(&'a str, &'a str)>,
}

/// What each partition's pass hands a caller (reconcile plans here), with the product's own
/// CareTeams and Tasks taken out of the EHR side, and the register's rows as the rules read
/// them (when `product` is asked for). It runs while the rules run on another thread;
/// returning false stops the run after this partition.
pub(crate) type OnPartition<'h> = dyn FnMut(
        Partition,
        &EhrDirectory,
        &Index,
        Vec<crate::sources::ehr::side::KeptRelation>,
        crate::sync::takeover::HandIndex,
        RegisterRows,
    ) -> bool
    + 'h;

/// Runs every rule over a register and EHR files, one partition at a time: the directory and
/// Patients are read once, then each pass streams the files and keeps its slice.
pub fn run_streamed(
    s: Streamed,
    progress: &crate::progress::Progress,
    on_reject: &mut (dyn FnMut(&Path, &RejectedRow) + Send),
    on_partition: &mut OnPartition,
) -> Result<(CheckReport, u32), CheckError> {
    let stream = crate::sources::ehr::stream::EhrStream::open(s.ehr)?;
    progress.grow(stream.bytes);
    progress.stage("EHR: directory and patients");
    let on_bytes = |n| progress.add(n);
    let dir = EhrDirectory::read(&stream, &on_bytes)?;
    let parts = partitions(&s, dir.patient_count(), stream.bytes);
    progress.grow(stream.bytes * u64::from(parts));
    let mut idx = dir.index();
    crate::fhir::inbound::Inbound::new(s.mappings).remember_members(&mut idx);
    let mut report: Option<CheckReport> = None;
    let mut freeing: Option<std::thread::JoinHandle<()>> = None;
    for k in 0..parts {
        let part = Partition {
            index: k,
            count: parts,
        };
        progress.stage(format!("EHR: partition {}/{parts}", k + 1));
        let mut side =
            EhrSide::from_stream(&stream, &dir, &idx, s.mappings, part, s.product, &on_bytes)?;
        let product = std::mem::take(&mut side.product);
        // The EHR's contacts typed by hand: a plan creates nothing a hand-typed one stands for.
        let ours: std::collections::HashSet<String> =
            product.iter().map(|k| k.reference()).collect();
        let hand = if s.product.is_some() {
            side.hand_typed(&ours)
        } else {
            Default::default()
        };
        progress.stage(format!("rules and plan: partition {}/{parts}", k + 1));
        let input = CheckInput {
            register: s.register,
            ehr: Some(side),
            profile: s.profile,
            mappings: s.mappings,
            as_of: s.as_of,
            quarantine: s.quarantine.clone().filter(|_| part.is_first()),
            partition: part,
        };
        // The rules read the register and hand each row on to the caller's work (a plan),
        // which runs on the other core.
        let (to, rows) = std::sync::mpsc::sync_channel(4);
        let forward = Forward {
            to: s.product.is_some().then_some(to),
            batch: Vec::new(),
        };
        let (r, go_on) = std::thread::scope(|sc| {
            let rules = sc.spawn(|| run_forwarding(input, on_reject, forward));
            let go_on = on_partition(part, &dir, &idx, product, hand, rows);
            (rules.join(), go_on)
        });
        let (r, spent) = r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        // A million patients' contacts take a second and more to free: that happens on another
        // core while the work goes on, and is over before the next partition is read, so two
        // partitions never sit in memory at once.
        if let Some(earlier) = freeing.take() {
            let _ = earlier.join();
        }
        freeing = Some(std::thread::spawn(move || drop(spent)));
        match report.as_mut() {
            Some(all) => all.absorb(r),
            None => report = Some(r),
        }
        if !go_on {
            break;
        }
    }
    // The last partition's side is freed while the caller writes its reports.
    drop(freeing);
    let mut report = report.ok_or(CheckError::NoInput)?;
    report.sort();
    Ok((report, parts))
}

/// The passes over the EHR: as asked, else the fewest the memory budget fits in, else (the
/// budget is below what the patients alone take) one per `PARTITION_BYTES` of files, said.
fn partitions(s: &Streamed, patients: usize, ehr_bytes: u64) -> u32 {
    if let Some(p) = s.partitions {
        return p.max(1);
    }
    let parts = s.memory.partitions(patients, ehr_bytes);
    let chosen = parts.unwrap_or_else(|| ehr_bytes.div_ceil(PARTITION_BYTES).max(1) as u32);
    let estimate = MemoryBudget::estimate(patients, ehr_bytes, chosen).round() as u64;
    match parts {
        Some(_) => tracing::info!(
            partitions = chosen,
            patients,
            ehr_bytes,
            estimated_mib = estimate,
            budget_mib = s.memory.mib,
            "passes over the EHR chosen to fit the memory budget"
        ),
        None => tracing::warn!(
            partitions = chosen,
            patients,
            ehr_bytes,
            estimated_mib = estimate,
            budget_mib = s.memory.mib,
            "the memory budget is below what this region's patients alone take; more passes would not bring it there (raise --memory)"
        ),
    }
    chosen
}

/// Runs every rule of the profile. `on_reject` sees each rejected register row.
pub fn run(
    input: CheckInput,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
) -> Result<CheckReport, CheckError> {
    run_forwarding(input, on_reject, Forward::default()).map(|(report, _)| report)
}

/// `run`, handing each register row on once the rules are done with it; the EHR side comes
/// back with the report, for the caller to let go of where it costs nothing.
fn run_forwarding(
    mut input: CheckInput,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
    forward: Forward,
) -> Result<(CheckReport, EhrSide), CheckError> {
    if input.register.is_none() && input.ehr.is_none() {
        return Err(CheckError::NoInput);
    }
    let mut ehr = input.ehr.take().unwrap_or_default();
    let mut report = rules_over(input, &ehr, on_reject, forward)?;
    report.ehr_problems = std::mem::take(&mut ehr.problems);
    report.ehr = std::mem::take(&mut ehr.account);
    Ok((report, ehr))
}

/// The rules over the register and an EHR side.
fn rules_over(
    input: CheckInput,
    ehr: &EhrSide,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
    forward: Forward,
) -> Result<CheckReport, CheckError> {
    let m = input.mappings;
    let mut availability: Availability = ehr.facts.availability;
    availability.register = input.register.is_some();
    let empty_dir = HashSet::new();
    let directory: &HashSet<(HsaId, HsaId)> = if availability.staff_directory {
        &ehr.facts.directory
    } else {
        &empty_dir
    };
    let mut run = Run {
        partition: input.partition,
        engine: Engine::new(
            input.profile,
            availability,
            directory,
            input.as_of,
            input.mappings.speaker(),
        )
        .with_specialist_physicians(&ehr.facts.specialist_physicians),
        findings: Vec::new(),
        patients: 0,
        ehr_seen: Default::default(),
        forward,
    };
    let mut report_rows = 0u64;
    let mut rejected = 0u64;
    let mut quarantine_path = None;
    if let Some(path) = input.register {
        // First pass streams contiguous patient groups; a patient seen again after its group
        // ended means the export is not grouped, so a second pass groups in memory.
        let (rows, rejects, header) = match stream_register(path, m, ehr, &mut run)? {
            Some(done) => done,
            None => {
                tracing::info!("register export is not grouped by patient; grouping in memory");
                run.findings.clear();
                run.patients = 0;
                run.ehr_seen.clear();
                group_in_memory(path, m, ehr, &mut run)?
            }
        };
        report_rows = rows;
        run.forward.end();
        // Every pass sees every rejected row (a patient with one is held), the first reports them.
        let rejects = if input.partition.is_first() {
            rejects
        } else {
            Vec::new()
        };
        rejected = rejects.len() as u64;
        let idcols = identity_columns(m);
        let mut quarantine = input.quarantine.as_ref().map(|q| {
            crate::sinks::quarantine::Quarantine::new(
                q.clone(),
                header.0,
                m.register.delimiter,
                header.1,
            )
        });
        for row in &rejects {
            on_reject(path, row);
            if let Some((p, msg, src)) = rejected_identity(path, row, &idcols, m.speaker()) {
                run.findings.extend(r16_finding(input.profile, p, msg, src));
            }
            if let Some(q) = quarantine.as_mut() {
                q.write(row).map_err(|source| RegisterError::Io {
                    path: q.path().into(),
                    source,
                })?;
            }
        }
        if let Some(q) = quarantine {
            let qp = q.path().to_path_buf();
            quarantine_path = q
                .finish()
                .map_err(|source| RegisterError::Io { path: qp, source })?;
        }
    }
    // Patients only the EHR knows.
    // The EHR's patients come in order (its contacts', its listed ones'), as the seen ones do
    // once sorted: walked side by side, not looked up (a region's two million lookups took the
    // rules thread two seconds alone, at the end of the run).
    use rayon::slice::ParallelSliceMut;
    run.ehr_seen.par_sort_unstable();
    run.ehr_seen.dedup();
    let seen = std::mem::take(&mut run.ehr_seen);
    let (unordered, listed) = ehr.facts.patients_in_parts();
    let mut rest: Vec<&PatientId> = unordered
        .filter(|p| seen.binary_search(p).is_err())
        .collect();
    rest.extend(not_in(ehr.contacts.patients(), &seen));
    rest.extend(not_in(listed, &seen));
    drop(seen);
    rest.sort();
    rest.dedup();
    for p in rest {
        run.patient(p, &[], ehr, false);
    }
    for (patient, message) in &ehr.invalid_identifiers {
        let sources = message
            .split(':')
            .next()
            .map(|s| vec![s.to_owned()])
            .unwrap_or_default();
        run.findings.extend(r16_finding(
            input.profile,
            patient.clone(),
            message.clone(),
            sources,
        ));
    }
    run.findings
        .extend(input_findings(input.profile, ehr, input.mappings.speaker()));
    let findings = run.findings;
    let mut report = CheckReport {
        profile: input.profile.name.clone(),
        as_of: input.as_of,
        patients: run.patients,
        register_rows: report_rows,
        ehr_contacts: ehr.contact_count,
        findings,
        not_evaluated: run.engine.not_evaluated.into_iter().collect(),
        rejected_rows: rejected,
        quarantine: quarantine_path,
        // The caller moves these out of the side it owns.
        ehr_problems: Vec::new(),
        ehr: Default::default(),
    };
    report.sort();
    Ok(report)
}

/// The patients of `ordered` (ascending) that `seen` (ascending) lacks, by walking both.
fn not_in<'e>(
    ordered: impl Iterator<Item = &'e PatientId>,
    seen: &[PatientId],
) -> Vec<&'e PatientId> {
    let mut at = 0;
    ordered
        .filter(|p| {
            while seen.get(at).is_some_and(|s| s < *p) {
                at += 1;
            }
            seen.get(at) != Some(*p)
        })
        .collect()
}

/// FK-IN01 for each piece of EHR data not read, FK-IN02 for each fixed contact that breaks the
/// shape (at its element), unless the profile disables them.
fn input_findings(profile: &Profile, ehr: &EhrSide, sp: crate::mapping::Speaker) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add =
        |id: &'static str, message: String, source: String, expression: Option<String>| {
            if let Some(rule) = super::catalogue::find(id) {
                let f = finding(profile, rule, String::new(), message, vec![source]);
                out.extend(f.map(|f| f.with_expression(expression)));
            }
        };
    for p in &ehr.problems {
        let source = p.split(": ").next().unwrap_or(p).to_owned();
        let message = sp.say(
            "fk-in01",
            crate::mapping::messages::msg_args![what = p.clone()],
        );
        add("FK-IN01", message, source, None);
    }
    for p in &ehr.shape_problems {
        add(
            "FK-IN02",
            format!("{}: {}", p.element, p.reason),
            p.resource.clone(),
            Some(p.element.clone()),
        );
    }
    out
}

/// An FK-R16 finding (an identifier that failed its check), unless the profile disables it.
fn r16_finding(
    profile: &Profile,
    patient: String,
    message: String,
    sources: Vec<String>,
) -> Option<Finding> {
    finding(
        profile,
        super::catalogue::RuleId::R16.rule(),
        patient,
        message,
        sources,
    )
}

/// A finding of `rule` under the profile's severity, unless the profile disables the rule.
fn finding(
    profile: &Profile,
    rule: &'static super::catalogue::Rule,
    patient: String,
    message: String,
    sources: Vec<String>,
) -> Option<Finding> {
    profile.enabled(rule.id).then(|| {
        Finding::new(
            rule.id,
            profile
                .severity
                .get(rule.id)
                .copied()
                .unwrap_or(rule.severity),
            patient.into_boxed_str(),
            message.into(),
            profile.basis(rule),
            sources,
        )
    })
}

fn rejected_identity(
    path: &Path,
    row: &RejectedRow,
    idcols: &[String; 5],
    sp: crate::mapping::Speaker,
) -> Option<(String, String, Vec<String>)> {
    let bad: Vec<&crate::sources::register::RowProblem> = row
        .problems
        .iter()
        .filter(|p| idcols.contains(&p.column))
        .collect();
    if bad.is_empty() {
        return None;
    }
    // The number as the register had it (a machine joins on it); masked only where shown.
    let patient = row.patient.as_ref().map(|p| p.expose()).unwrap_or_else(|| {
        bad.iter()
            .find(|p| p.column == idcols[0])
            .map(|p| {
                p.as_written
                    .clone()
                    .unwrap_or_else(|| p.value.clone())
                    .replace('-', "")
            })
            .unwrap_or_default()
    });
    let message = bad
        .iter()
        .map(|p| format!("{} '{}': {}", p.column, p.value, p.reason))
        .collect::<Vec<_>>()
        .join("; ");
    let source = format!(
        "{}:{} {}",
        path.display(),
        row.line,
        row.row_id.as_ref().map(|r| r.as_str()).unwrap_or("")
    );
    Some((
        patient,
        sp.say(
            "fk-r16-rejected",
            crate::mapping::messages::msg_args![problems = message],
        ),
        vec![source],
    ))
}

/// What a pass over the register gives: contacts read, the rejected rows, the header line.
type Pass = (
    u64,
    Vec<RejectedRow>,
    (Vec<u8>, crate::mapping::register::TextEncoding),
);

/// A register row as the reading thread hands it on: a contact of the partition with where it
/// was read (`file:line row-id`), or a rejected row.
enum Read {
    Contact(FixedContact, String),
    Rejected(RejectedRow),
}

/// Rows handed from the reading thread to the rules per message.
const READ_AHEAD_BATCH: usize = 512;

/// Reads the register on a thread of its own, keeping the partition's contacts and every
/// rejected row, and hands them on in batches: parsing the export was two fifths of the rules
/// thread's time, and the rules are the longer half of a reconcile's last stage.
fn read_ahead<R: std::io::BufRead + Send>(
    reader: RegisterReader<'_, R>,
    path: &Path,
    part: Partition,
    to: std::sync::mpsc::SyncSender<Vec<Result<Read, RegisterError>>>,
) {
    let shown = crate::sources::register::RowSource::new(path);
    let mut batch = Vec::with_capacity(READ_AHEAD_BATCH);
    for read in reader.filter_map(|item| kept(item, part, &shown)) {
        batch.push(read);
        if batch.len() >= READ_AHEAD_BATCH {
            // The rules stopped reading (the export is not grouped, or they failed).
            if to.send(std::mem::take(&mut batch)).is_err() {
                return;
            }
        }
    }
    let _ = to.send(batch);
}

/// What a pass keeps of a register item: every rejected row, a contact of the partition with
/// where it was read (`file:line row-id`), nothing of another partition's contact.
fn kept(
    item: Result<RegisterItem, RegisterError>,
    part: Partition,
    shown: &crate::sources::register::RowSource,
) -> Option<Result<Read, RegisterError>> {
    Some(match item {
        Ok(RegisterItem::Rejected(row)) => Ok(Read::Rejected(row)),
        Ok(RegisterItem::Contact { line, contact }) => {
            if !part.holds(&contact.patient) {
                return None;
            }
            let source = shown.of(line, &contact.row_id);
            Ok(Read::Contact(contact, source))
        }
        Err(e) => Err(e),
    })
}

/// Streams contiguous patient groups. None when the export turns out not to be grouped (the
/// rest is still read through, to hand every row on once).
fn stream_register(
    path: &Path,
    m: &Mappings,
    ehr: &EhrSide,
    run: &mut Run,
) -> Result<Option<Pass>, CheckError> {
    let reader = RegisterReader::open(path, &m.register, &m.terminology)?;
    let header = (reader.header_line.clone(), reader.encoding);
    let part = run.partition;
    std::thread::scope(|sc| {
        let (to, from) = std::sync::mpsc::sync_channel(8);
        sc.spawn(move || read_ahead(reader, path, part, to));
        // `from` is dropped when the groups return, which stops the reading thread.
        let done = groups(from, ehr, run)?;
        Ok(done.map(|(rows, rejects)| (rows, rejects, header)))
    })
}

/// The rules over each contiguous patient group of the rows read ahead: (contacts, rejected
/// rows), or None when a patient comes back after its group ended (the export is not grouped).
fn groups(
    from: std::sync::mpsc::Receiver<Vec<Result<Read, RegisterError>>>,
    ehr: &EhrSide,
    run: &mut Run,
) -> Result<Option<(u64, Vec<RejectedRow>)>, CheckError> {
    let mut done: foldhash::HashSet<u64> = Default::default();
    let mut held: foldhash::HashSet<u64> = Default::default();
    let mut current: Option<PatientId> = None;
    let mut group: Vec<(FixedContact, String)> = Vec::new();
    let mut rows = 0u64;
    let mut grouped = true;
    // Rejected rows are handed back, not reported here, so a restart reports nothing twice.
    let mut rejects: Vec<RejectedRow> = Vec::new();
    for item in from.into_iter().flatten() {
        match item? {
            Read::Rejected(row) => {
                if let Some(p) = &row.patient {
                    held.insert(key(p));
                }
                run.forward.push(ReadRow::Rejected(row.clone()));
                rejects.push(row);
            }
            Read::Contact(contact, source) => {
                rows += 1;
                if !grouped {
                    run.forward.push(ReadRow::Contact(contact, source));
                    continue;
                }
                if current.as_ref() != Some(&contact.patient) {
                    if let Some(p) = current.take() {
                        let h = key(&p);
                        run.patient(&p, &group, ehr, held.contains(&h));
                        done.insert(h);
                        for (c, s) in group.drain(..) {
                            run.forward.push(ReadRow::Contact(c, s));
                        }
                    }
                    if done.contains(&key(&contact.patient)) {
                        if run.forward.to.is_none() {
                            return Ok(None);
                        }
                        grouped = false;
                        run.forward.push(ReadRow::Contact(contact, source));
                        continue;
                    }
                    current = Some(contact.patient.clone());
                }
                group.push((contact, source));
            }
        }
    }
    if !grouped {
        return Ok(None);
    }
    if let Some(p) = current.take() {
        let h = key(&p);
        run.patient(&p, &group, ehr, held.contains(&h));
        for (c, s) in group.drain(..) {
            run.forward.push(ReadRow::Contact(c, s));
        }
    }
    Ok(Some((rows, rejects)))
}

fn group_in_memory(
    path: &Path,
    m: &Mappings,
    ehr: &EhrSide,
    run: &mut Run,
) -> Result<Pass, CheckError> {
    let reader = RegisterReader::open(path, &m.register, &m.terminology)?;
    let header = (reader.header_line.clone(), reader.encoding);
    let shown = crate::sources::register::RowSource::new(path);
    let mut by_patient: HashMap<PatientId, Vec<(FixedContact, String)>> = HashMap::new();
    let mut order: Vec<PatientId> = Vec::new();
    let mut held: HashSet<PatientId> = HashSet::new();
    let mut rows = 0u64;
    let mut rejects = Vec::new();
    for item in reader.filter_map(|item| kept(item, run.partition, &shown)) {
        match item? {
            Read::Rejected(row) => {
                if let Some(p) = &row.patient {
                    held.insert(p.clone());
                }
                rejects.push(row);
            }
            Read::Contact(contact, source) => {
                rows += 1;
                let p = contact.patient.clone();
                by_patient
                    .entry(p.clone())
                    .or_insert_with(|| {
                        order.push(p);
                        Vec::new()
                    })
                    .push((contact, source));
            }
        }
    }
    for p in &order {
        run.patient(p, &by_patient[p], ehr, held.contains(p));
    }
    Ok((rows, rejects, header))
}

/// Masks a finding's patient for terminal output.
pub fn masked(patient: &str) -> String {
    match PatientId::parse(patient) {
        Ok(p) => p.to_string(),
        Err(_) => mask(patient),
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryBudget;
    use crate::domain::PatientId;

    const MB: u64 = 1_000_000;

    /// The budget decides the passes from the region's size: the generated regions measured
    /// (100 k patients and 148 MB of EHR files, 300 k and 443 MB, 1 M and 1,475 MB) against
    /// the default 768 MiB, and regions the budget cannot hold.
    #[test]
    fn the_patients_not_seen_are_found_by_walking_both_lists() {
        let p = |n: u32| {
            let eleven = format!("19{:06}{:03}", 500101 + n, n);
            PatientId::parse(&crate::domain::identity::with_check_digit(&eleven).unwrap()).unwrap()
        };
        let ordered: Vec<PatientId> = (0..8).map(p).collect();
        let seen: Vec<PatientId> = [1, 2, 5, 7, 9].into_iter().map(p).collect();
        let unseen: Vec<&PatientId> = super::not_in(ordered.iter(), &seen);
        let want: Vec<PatientId> = [0, 3, 4, 6].into_iter().map(p).collect();
        assert_eq!(unseen, want.iter().collect::<Vec<_>>());
        assert_eq!(super::not_in(ordered.iter(), &[]).len(), 8);
        assert!(super::not_in(ordered.iter(), &ordered).is_empty());
    }

    #[test]
    fn the_budget_asks_for_the_fewest_passes_that_fit() {
        let budget = MemoryBudget::default();
        assert_eq!(budget.partitions(100_000, 148 * MB), Some(1));
        assert_eq!(budget.partitions(300_000, 443 * MB), Some(1));
        // Measured: 650–670 MiB in one pass, 546 in two.
        assert_eq!(budget.partitions(1_000_000, 1_475 * MB), Some(1));
        assert_eq!(
            MemoryBudget { mib: 600 }.partitions(1_000_000, 1_475 * MB),
            Some(2)
        );
        // The patients alone take more than the budget: no count of passes fits.
        assert_eq!(budget.partitions(3_000_000, 4_422 * MB), None);
        // A region with much EHR data per patient takes more passes, never more than the cap.
        assert_eq!(budget.partitions(100_000, 6_000 * MB), Some(2));
        assert_eq!(
            MemoryBudget { mib: 200 }.partitions(100_000, 60_000 * MB),
            None
        );
        // Each pass lowers the estimate, and only the EHR files' share.
        let one = MemoryBudget::estimate(1_000_000, 1_475 * MB, 1);
        let two = MemoryBudget::estimate(1_000_000, 1_475 * MB, 2);
        assert!(one > two && two > MemoryBudget::estimate(1_000_000, 0, 1));
    }
}
