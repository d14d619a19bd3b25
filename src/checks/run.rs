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
        rejected = rejects.len() as u64;
        let idcols = identity_columns(m);
        let mut quarantine = input.quarantine.as_ref().map(|q| {
            crate::sinks::quarantine::Quarantine::new(q.clone(), header, m.register.delimiter)
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
    let mut findings = run.findings;
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.rule.cmp(b.rule))
            .then(a.patient.cmp(&b.patient))
    });
    Ok(CheckReport {
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
    })
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
type Pass = (u64, Vec<RejectedRow>, String);

/// Streams contiguous patient groups. None when the export turns out not to be grouped.
fn stream_register(
    path: &Path,
    m: &Mappings,
    ehr: &EhrSide,
    run: &mut Run,
) -> Result<Option<Pass>, CheckError> {
    let mut reader = RegisterReader::open(path, &m.register, &m.terminology)?;
    let header = reader.header_line.clone();
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
    let header = reader.header_line.clone();
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

/// Masks a finding's patient for terminal output.
pub fn masked(patient: &str) -> String {
    match PatientId::parse(patient) {
        Ok(p) => p.to_string(),
        Err(_) => mask(patient),
    }
}
