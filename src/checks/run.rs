//! Runs the rules over the inputs: the register is streamed one patient at a time (an export
//! grouped by patient never sits in memory; an ungrouped one is grouped in memory on a second
//! pass), the EHR side is read whole and joined by patient.

use super::rules::{Engine, PatientData, Sourced};
use super::{Finding, NotEvaluated, Profile, Severity};
use crate::domain::{Availability, FixedContact, HsaId, PatientContext, PatientId};
use crate::fhir::context::{ContextReader, EhrFacts};
use crate::fhir::inbound::{Inbound, Index};
use crate::mapping::Mappings;
use crate::sources::fhir_files::{FhirFileError, FhirFiles};
use crate::sources::register::{mask, RegisterError, RegisterItem, RegisterReader, RejectedRow};
use chrono::NaiveDate;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Fhir(#[from] FhirFileError),
    #[error("nothing to check: give a register export, EHR data, or both")]
    NoInput,
}

/// The EHR side, loaded and grouped by patient.
#[derive(Default)]
pub struct EhrSide {
    pub contacts: HashMap<PatientId, Vec<(FixedContact, String)>>,
    pub facts: EhrFacts,
    /// Resources that could not be read at all, or contacts that could not be understood.
    pub problems: Vec<String>,
    /// (patient text, message) of identifiers that failed their check.
    pub invalid_identifiers: Vec<(String, String)>,
    pub contact_count: usize,
    /// The product's own relations (CareTeam/Task with its tag), as JSON, when asked for.
    pub product: Vec<serde_json::Value>,
}

/// A slice of the region's patients. A region too large for memory is checked one slice at a
/// time: each pass keeps only its slice's EHR data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

impl Partition {
    pub const ALL: Partition = Partition { index: 0, count: 1 };

    pub fn holds(&self, p: &PatientId) -> bool {
        self.count <= 1 || key(p) % u64::from(self.count) == u64::from(self.index)
    }

    /// Partition 0 also carries what belongs to no patient (bad lines, directory problems).
    pub fn is_first(&self) -> bool {
        self.index == 0
    }
}

/// The directory (Practitioner, PractitionerRole, Organization, Consent) and the Patients as
/// stubs: read once, shared by every partition's pass.
#[derive(Default)]
pub struct EhrDirectory {
    resources: Vec<(Option<String>, crate::fhir::Resource)>,
    patients: Vec<(
        Option<String>,
        Option<String>,
        std::sync::Arc<crate::fhir::inbound::PatientStub>,
    )>,
    /// Lines of directory types that could not be read.
    problems: Vec<String>,
}

impl EhrDirectory {
    pub fn read(
        stream: &crate::sources::ehr_stream::EhrStream,
        on_bytes: &dyn Fn(u64),
    ) -> Result<Self, FhirFileError> {
        use crate::fhir::inbound::PatientStub;
        let mut dir = EhrDirectory::default();
        stream.read(
            crate::sources::ehr_stream::Pass::Directory,
            on_bytes,
            &mut |batch| {
                for item in batch {
                    let (url, r) = match item {
                        Ok(x) => x,
                        // A bad directory line is reported once, with the first partition.
                        Err(bad) => {
                            dir.problems.push(bad.to_string());
                            continue;
                        }
                    };
                    match r {
                        crate::fhir::Resource::Patient(p) => {
                            let id = p.id.as_ref().and_then(|i| i.value.clone());
                            dir.patients.push((url, id, PatientStub::of(&p).into()));
                        }
                        other => dir.resources.push((url, other)),
                    }
                }
            },
        )?;
        Ok(dir)
    }

    pub fn index(&self) -> Index<'_> {
        let mut idx = Index::new(self.resources.iter().map(|(u, r)| (u.clone(), r)));
        for (url, id, stub) in &self.patients {
            idx.add_patient(url.clone(), id.as_deref(), stub.clone());
        }
        idx
    }

    /// The directory's resources other than CarePlans (those wait for their CareTeams).
    fn resources(&self) -> Vec<&crate::fhir::Resource> {
        self.all()
            .filter(|r| !matches!(r, crate::fhir::Resource::CarePlan(_)))
            .collect()
    }

    fn care_plans(&self) -> Vec<&crate::fhir::Resource> {
        self.all()
            .filter(|r| matches!(r, crate::fhir::Resource::CarePlan(_)))
            .collect()
    }

    /// `CareTeam/id` of every CareTeam a CarePlan names.
    fn care_plan_teams(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        for r in self.care_plans() {
            if let crate::fhir::Resource::CarePlan(cp) = r {
                for t in &cp.care_team {
                    if let Some(x) = t.reference.as_ref().and_then(|x| x.value.as_deref()) {
                        let mut parts = x.rsplit('/');
                        if let (Some(id), Some(_)) = (parts.next(), parts.next()) {
                            out.insert(format!("CareTeam/{id}"));
                        }
                    }
                }
            }
        }
        out
    }

    /// The directory resources (Practitioner, PractitionerRole, Organization, Consent).
    pub fn all(&self) -> impl Iterator<Item = &crate::fhir::Resource> {
        self.resources.iter().map(|(_, r)| r)
    }

    /// Each valid patient identity with the id of its Patient resource.
    pub fn patient_ids(&self) -> HashMap<PatientId, String> {
        self.patients
            .iter()
            .filter_map(|(_, id, stub)| match (&stub.id, id) {
                (Some(Ok(p)), Some(id)) => Some((p.clone(), id.clone())),
                _ => None,
            })
            .collect()
    }
}

impl EhrSide {
    /// Reads a Bundle, NDJSON file or folder.
    pub fn from_files(path: &Path, m: &Mappings) -> Result<Self, FhirFileError> {
        let files = FhirFiles::read(path)?;
        let mut side = Self::from_resources(files.resources.iter().map(|(u, r)| (u.clone(), r)), m);
        side.problems
            .extend(files.bad.iter().map(ToString::to_string));
        Ok(side)
    }

    /// Reads everything the rules use from a FHIR server: the product's and the EHR's contacts
    /// and directory, and the EHR-only facts, each resource type paged through `next` links.
    pub async fn from_server(
        client: &crate::fhir::client::FhirClient,
        m: &Mappings,
    ) -> Result<Self, crate::fhir::client::ClientError> {
        const TYPES: &[&str] = &[
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "CareTeam",
            "Task",
            "Flag",
            "Condition",
            "Observation",
            "EpisodeOfCare",
            "Encounter",
            "CarePlan",
            "Consent",
        ];
        let mut values = Vec::new();
        for t in TYPES {
            values.extend(client.search_all(&format!("{t}?_count=500")).await?);
        }
        let mut resources = Vec::new();
        let mut problems = Vec::new();
        for v in values {
            let where_ = format!(
                "{}/{}",
                v["resourceType"].as_str().unwrap_or("?"),
                v["id"].as_str().unwrap_or("?")
            );
            match crate::fhir::model::parse_value(v) {
                Ok(r) => resources.push(r),
                Err(e) => problems.push(format!("{where_}: {e}")),
            }
        }
        let mut side = Self::from_resources(resources.iter().map(|r| (None, r)), m);
        side.problems.extend(problems);
        Ok(side)
    }

    /// Reads one partition's EHR data from a file stream, batch by batch in parallel. `product`
    /// names the tag (system, code) whose CareTeams and Tasks are kept as JSON for a plan.
    pub fn from_stream(
        stream: &crate::sources::ehr_stream::EhrStream,
        dir: &EhrDirectory,
        idx: &Index,
        m: &Mappings,
        part: Partition,
        product: Option<(&str, &str)>,
        on_bytes: &dyn Fn(u64),
    ) -> Result<Self, FhirFileError> {
        use rayon::prelude::*;
        let mut side = EhrSide::default();
        let mut facts = EhrFacts::default();
        let ctx = ContextReader::new(m);
        ctx.patient_facts(idx, &|p| part.holds(p), &mut facts);
        ctx.read_into(idx, &dir.resources(), &mut facts);
        facts.availability.ehr_contacts = true;
        // The directory pass's facts hold for all patients; keep only this partition's.
        facts.contexts.retain(|p, _| part.holds(p));
        let mut problems = if part.is_first() {
            dir.problems.clone()
        } else {
            Vec::new()
        };
        let mut invalid = Vec::new();
        let plan_teams = dir.care_plan_teams();
        let mut kept_teams: Vec<crate::fhir::Resource> = Vec::new();
        stream.read(
            crate::sources::ehr_stream::Pass::PatientScoped,
            on_bytes,
            &mut |batch| {
                let mut ok = Vec::with_capacity(batch.len());
                for item in batch {
                    match item {
                        Ok((_, r)) => {
                            if let crate::fhir::Resource::CareTeam(ct) = &r {
                                let id = ct.id.as_ref().and_then(|i| i.value.as_deref());
                                if id.is_some_and(|i| plan_teams.contains(&format!("CareTeam/{i}")))
                                {
                                    kept_teams.push(r.clone());
                                }
                            }
                            ok.push(r)
                        }
                        Err(bad) if part.is_first() => problems.push(bad.to_string()),
                        Err(_) => {}
                    }
                }
                let parts: Vec<_> = ok
                    .par_chunks(256)
                    .map(|chunk| {
                        let refs: Vec<&crate::fhir::Resource> = chunk.iter().collect();
                        let read = Inbound::new(m).contacts(idx, &refs);
                        let mut f = EhrFacts::default();
                        ContextReader::new(m).read_into(idx, &refs, &mut f);
                        let kept: Vec<serde_json::Value> = match product {
                            Some(tag) => chunk
                                .iter()
                                .filter(|r| is_product(r, tag))
                                .filter_map(|r| crate::fhir::model::to_value(r.clone()).ok())
                                .collect(),
                            None => Vec::new(),
                        };
                        (read, f, kept)
                    })
                    .collect();
                for (read, f, kept) in parts {
                    for (c, s) in read.contacts.into_iter().zip(read.sources) {
                        if part.holds(&c.patient) {
                            side.contact_count += 1;
                            // Most patients have one contact: no room for four.
                            side.contacts
                                .entry(c.patient.clone())
                                .or_insert_with(|| Vec::with_capacity(1))
                                .push((c, s));
                        }
                    }
                    if part.is_first() {
                        for p in read.problems {
                            if p.identifier {
                                invalid.push((
                                    String::new(),
                                    format!("{}: {}: {}", p.resource, p.element, p.reason),
                                ));
                            } else {
                                problems.push(p.to_string());
                            }
                        }
                    }
                    facts.availability.absorb(f.availability);
                    facts.directory.extend(f.directory);
                    for (p, c) in f.contexts {
                        if part.holds(&p) {
                            facts.contexts.entry(p).or_default().absorb(c);
                        }
                    }
                    side.product.extend(kept.into_iter().filter(|v| {
                        v["subject"]["identifier"]["value"]
                            .as_str()
                            .or(v["for"]["identifier"]["value"].as_str())
                            .and_then(|x| PatientId::parse(x).ok())
                            .is_none_or(|p| part.holds(&p))
                    }));
                }
            },
        )?;
        // CarePlans last, with the CareTeams they name and their patients' stubs.
        let plans = dir.care_plans();
        if !plans.is_empty() {
            let mut pidx = Index::new(
                dir.resources
                    .iter()
                    .map(|(u, r)| (u.clone(), r))
                    .chain(kept_teams.iter().map(|r| (None, r))),
            );
            for r in &plans {
                if let crate::fhir::Resource::CarePlan(cp) = r {
                    if let (Some(stub), Some(text)) = (
                        idx.patient(&cp.subject),
                        cp.subject
                            .reference
                            .as_ref()
                            .and_then(|x| x.value.as_deref()),
                    ) {
                        pidx.add_patient_ref(text, stub.clone());
                    }
                }
            }
            let mut f = EhrFacts::default();
            ContextReader::new(m).read_into(&pidx, &plans, &mut f);
            facts.availability.absorb(f.availability);
            for (p, c) in f.contexts {
                if part.holds(&p) {
                    facts.contexts.entry(p).or_default().absorb(c);
                }
            }
        }
        side.facts = facts;
        side.problems = problems;
        side.invalid_identifiers = invalid;
        Ok(side)
    }

    pub fn from_resources<'r>(
        resources: impl IntoIterator<Item = (Option<String>, &'r crate::fhir::Resource)> + Clone,
        m: &Mappings,
    ) -> Self {
        let idx = Index::new(resources.clone());
        let refs: Vec<&crate::fhir::Resource> = resources.into_iter().map(|(_, r)| r).collect();
        let read = Inbound::new(m).contacts(&idx, &refs);
        let mut facts = ContextReader::new(m).read(&idx, &refs);
        facts.availability.ehr_contacts = true;
        let mut side = EhrSide {
            contact_count: read.contacts.len(),
            ..Default::default()
        };
        for (c, s) in read.contacts.into_iter().zip(read.sources) {
            side.contacts
                .entry(c.patient.clone())
                .or_default()
                .push((c, s));
        }
        for p in read.problems {
            if p.identifier {
                side.invalid_identifiers.push((
                    String::new(),
                    format!("{}: {}: {}", p.resource, p.element, p.reason),
                ));
            } else {
                side.problems.push(p.to_string());
            }
        }
        side.facts = facts;
        side
    }
}

#[derive(Debug, serde::Serialize)]
pub struct CheckReport {
    pub profile: String,
    pub as_of: NaiveDate,
    pub patients: u64,
    pub register_rows: u64,
    pub ehr_contacts: usize,
    pub findings: Vec<Finding>,
    pub not_evaluated: Vec<NotEvaluated>,
    /// Register rows that could not be read (their identifier problems are FK-R16 findings).
    pub rejected_rows: u64,
    pub quarantine: Option<PathBuf>,
    pub ehr_problems: Vec<String>,
}

impl CheckReport {
    /// Adds another partition's report to this one.
    pub fn absorb(&mut self, o: CheckReport) {
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
    }

    /// Most severe first, then by rule and patient: the order every output uses.
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.rule.cmp(b.rule))
                .then(a.patient.cmp(&b.patient))
        });
    }

    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

pub struct CheckInput<'a> {
    pub register: Option<&'a Path>,
    pub ehr: Option<EhrSide>,
    pub profile: &'a Profile,
    pub mappings: &'a Mappings,
    pub as_of: NaiveDate,
    pub quarantine: Option<PathBuf>,
    /// The slice of patients this run checks (rejected rows are handled in the first).
    pub partition: Partition,
}

fn key(p: &PatientId) -> u64 {
    let mut h = DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
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
    ehr_seen: HashSet<PatientId>,
}

impl Run<'_> {
    fn patient(
        &mut self,
        patient: &PatientId,
        register: &[(FixedContact, String)],
        ehr: &EhrSide,
        held: bool,
    ) {
        let ehr_contacts: Vec<Sourced> = ehr
            .contacts
            .get(patient)
            .map(|v| v.iter().map(|(c, s)| (c, s.as_str())).collect())
            .unwrap_or_default();
        let context: Option<&PatientContext> = ehr.facts.contexts.get(patient);
        let data = PatientData {
            patient,
            register: register.iter().map(|(c, s)| (c, s.as_str())).collect(),
            ehr: ehr_contacts,
            context,
            held,
        };
        self.engine.check(&data, &mut self.findings);
        self.patients += 1;
        self.ehr_seen.insert(patient.clone());
    }
}

/// EHR files per partition pass: memory holds about one partition's EHR data (≈0.3 × its
/// file size), so a region larger than this is read in several passes.
pub const PARTITION_BYTES: u64 = 2_000_000_000;

/// A check whose EHR side is read from files, streamed and partitioned.
pub struct Streamed<'a> {
    pub register: Option<&'a Path>,
    pub ehr: &'a Path,
    pub profile: &'a Profile,
    pub mappings: &'a Mappings,
    pub as_of: NaiveDate,
    pub quarantine: Option<PathBuf>,
    /// Passes over the data (default: from the EHR files' size).
    pub partitions: Option<u32>,
    /// Keep the CareTeams and Tasks with this tag (system, code) as JSON, for a plan.
    pub product: Option<(&'a str, &'a str)>,
}

/// What each partition's pass hands a caller (reconcile plans here), with the product's own
/// CareTeams and Tasks taken out of the EHR side. It runs while the rules run on another
/// thread; returning false stops the run after this partition.
pub type OnPartition<'h> =
    dyn FnMut(Partition, &EhrDirectory, &Index, Vec<serde_json::Value>) -> bool + 'h;

/// Runs every rule over a register and EHR files, one partition at a time: the directory and
/// Patients are read once, then each pass streams the files and keeps its slice.
pub fn run_streamed(
    s: Streamed,
    progress: &crate::progress::Progress,
    on_reject: &mut (dyn FnMut(&Path, &RejectedRow) + Send),
    on_partition: &mut OnPartition,
) -> Result<(CheckReport, u32), CheckError> {
    let stream = crate::sources::ehr_stream::EhrStream::open(s.ehr)?;
    let parts = s
        .partitions
        .unwrap_or_else(|| stream.bytes.div_ceil(PARTITION_BYTES).max(1) as u32)
        .max(1);
    progress.grow(stream.bytes * (1 + u64::from(parts)));
    progress.stage("EHR: directory and patients");
    let on_bytes = |n| progress.add(n);
    let dir = EhrDirectory::read(&stream, &on_bytes)?;
    let idx = dir.index();
    let mut report: Option<CheckReport> = None;
    for k in 0..parts {
        let part = Partition {
            index: k,
            count: parts,
        };
        progress.stage(format!("EHR: partition {}/{parts}", k + 1));
        let mut side =
            EhrSide::from_stream(&stream, &dir, &idx, s.mappings, part, s.product, &on_bytes)?;
        let product = std::mem::take(&mut side.product);
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
        // The rules and the caller's work (a plan) each read the register on their own core.
        let (r, go_on) = std::thread::scope(|sc| {
            let rules = sc.spawn(|| run(input, on_reject));
            let go_on = on_partition(part, &dir, &idx, product);
            (rules.join(), go_on)
        });
        let r = r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        match report.as_mut() {
            Some(all) => all.absorb(r),
            None => report = Some(r),
        }
        if !go_on {
            break;
        }
    }
    let mut report = report.ok_or(CheckError::NoInput)?;
    report.sort();
    Ok((report, parts))
}

/// Runs every rule of the profile. `on_reject` sees each rejected register row.
pub fn run(
    input: CheckInput,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
) -> Result<CheckReport, CheckError> {
    if input.register.is_none() && input.ehr.is_none() {
        return Err(CheckError::NoInput);
    }
    let m = input.mappings;
    let ehr = input.ehr.unwrap_or_default();
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
        engine: Engine::new(input.profile, availability, directory, input.as_of),
        findings: Vec::new(),
        patients: 0,
        ehr_seen: HashSet::new(),
    };
    let mut report_rows = 0u64;
    let mut rejected = 0u64;
    let mut quarantine_path = None;
    if let Some(path) = input.register {
        // First pass streams contiguous patient groups; a patient seen again after its group
        // ended means the export is not grouped, so a second pass groups in memory.
        let (rows, rejects, header) = match stream_register(path, m, &ehr, &mut run)? {
            Some(done) => done,
            None => {
                tracing::info!("register export is not grouped by patient; grouping in memory");
                run.findings.clear();
                run.patients = 0;
                run.ehr_seen.clear();
                group_in_memory(path, m, &ehr, &mut run)?
            }
        };
        report_rows = rows;
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
            if let Some((p, msg, src)) = rejected_identity(path, row, &idcols) {
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
    let mut rest: Vec<&PatientId> = ehr
        .contacts
        .keys()
        .chain(ehr.facts.contexts.keys())
        .filter(|p| !run.ehr_seen.contains(*p))
        .collect();
    rest.sort();
    rest.dedup();
    for p in rest {
        run.patient(p, &[], &ehr, false);
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
        ehr_problems: ehr.problems,
    };
    report.sort();
    Ok(report)
}

/// An FK-R16 finding (an identifier that failed its check), unless the profile disables it.
fn r16_finding(
    profile: &Profile,
    patient: String,
    message: String,
    sources: Vec<String>,
) -> Option<Finding> {
    let rule = super::catalogue::find("FK-R16").expect("FK-R16 is in the catalogue");
    profile.enabled(rule.id).then(|| Finding {
        rule: rule.id,
        severity: profile
            .severity
            .get(rule.id)
            .copied()
            .unwrap_or(rule.severity),
        patient,
        message,
        basis: rule.basis,
        register: None,
        ehr: None,
        unit: None,
        sources,
        expression: None,
    })
}

fn rejected_identity(
    path: &Path,
    row: &RejectedRow,
    idcols: &[String; 5],
) -> Option<(String, String, Vec<String>)> {
    let bad: Vec<&crate::sources::register::RowProblem> = row
        .problems
        .iter()
        .filter(|p| idcols.contains(&p.column))
        .collect();
    if bad.is_empty() {
        return None;
    }
    let patient = row.patient.as_ref().map(|p| p.expose()).unwrap_or_else(|| {
        bad.iter()
            .find(|p| p.column == idcols[0])
            .map(|p| p.value.replace('-', ""))
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
        format!("register row rejected: {message}"),
        vec![source],
    ))
}

/// What a pass over the register gives: contacts read, the rejected rows, the header line.
type Pass = (
    u64,
    Vec<RejectedRow>,
    (Vec<u8>, crate::mapping::register::TextEncoding),
);

/// Streams contiguous patient groups. None when the export turns out not to be grouped.
fn stream_register(
    path: &Path,
    m: &Mappings,
    ehr: &EhrSide,
    run: &mut Run,
) -> Result<Option<Pass>, CheckError> {
    let mut reader = RegisterReader::open(path, &m.register, &m.terminology)?;
    let header = (reader.header_line.clone(), reader.encoding);
    let mut done: HashSet<u64> = HashSet::new();
    let mut held: HashSet<u64> = HashSet::new();
    let mut current: Option<PatientId> = None;
    let mut group: Vec<(FixedContact, String)> = Vec::new();
    let mut rows = 0u64;
    // Rejected rows are handed back, not reported here, so a restart reports nothing twice.
    let mut rejects: Vec<RejectedRow> = Vec::new();
    for item in &mut reader {
        match item? {
            RegisterItem::Rejected(row) => {
                if let Some(p) = &row.patient {
                    held.insert(key(p));
                }
                rejects.push(row);
            }
            RegisterItem::Contact { line, contact } => {
                if !run.partition.holds(&contact.patient) {
                    continue;
                }
                rows += 1;
                if current.as_ref() != Some(&contact.patient) {
                    if let Some(p) = current.take() {
                        let h = key(&p);
                        run.patient(&p, &group, ehr, held.contains(&h));
                        done.insert(h);
                        group.clear();
                    }
                    if done.contains(&key(&contact.patient)) {
                        return Ok(None);
                    }
                    current = Some(contact.patient.clone());
                }
                let source = format!("{}:{line} {}", path.display(), contact.row_id);
                group.push((contact, source));
            }
        }
    }
    if let Some(p) = current.take() {
        let h = key(&p);
        run.patient(&p, &group, ehr, held.contains(&h));
    }
    Ok(Some((rows, rejects, header)))
}

fn group_in_memory(
    path: &Path,
    m: &Mappings,
    ehr: &EhrSide,
    run: &mut Run,
) -> Result<Pass, CheckError> {
    let mut reader = RegisterReader::open(path, &m.register, &m.terminology)?;
    let header = (reader.header_line.clone(), reader.encoding);
    let mut by_patient: HashMap<PatientId, Vec<(FixedContact, String)>> = HashMap::new();
    let mut order: Vec<PatientId> = Vec::new();
    let mut held: HashSet<PatientId> = HashSet::new();
    let mut rows = 0u64;
    let mut rejects = Vec::new();
    for item in &mut reader {
        match item? {
            RegisterItem::Rejected(row) => {
                if let Some(p) = &row.patient {
                    held.insert(p.clone());
                }
                rejects.push(row);
            }
            RegisterItem::Contact { line, contact } => {
                if !run.partition.holds(&contact.patient) {
                    continue;
                }
                rows += 1;
                let source = format!("{}:{line} {}", path.display(), contact.row_id);
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

/// A CareTeam or Task carrying the product's tag.
fn is_product(r: &crate::fhir::Resource, (system, code): (&str, &str)) -> bool {
    let meta = match r {
        crate::fhir::Resource::CareTeam(c) => c.meta.as_deref(),
        crate::fhir::Resource::Task(t) => t.meta.as_deref(),
        _ => None,
    };
    meta.is_some_and(|m| {
        m.tag.iter().any(|t| {
            t.system.as_ref().and_then(|s| s.value.as_deref()) == Some(system)
                && t.code.as_ref().and_then(|c| c.value.as_deref()) == Some(code)
        })
    })
}

/// Masks a finding's patient for terminal output.
pub fn masked(patient: &str) -> String {
    match PatientId::parse(patient) {
        Ok(p) => p.to_string(),
        Err(_) => mask(patient),
    }
}
