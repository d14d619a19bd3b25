//! Pipeline `translate`: register CSV → FHIR (transaction Bundle or NDJSON), and FHIR →
//! register CSV. A straight pipe: source → domain → sink, bad input reported, the rest carried on.

use crate::domain::{ContactKind, ContactStatus, HsaId, PatientId, Staff};
use crate::fhir::inbound::{Inbound, Index};
use crate::fhir::model::FhirError;
use crate::fhir::outbound::Outbound;
use crate::mapping::Mappings;
use crate::sinks::quarantine::Quarantine;
use crate::sinks::register_csv::{RegisterCsvWriter, RegisterWriteError};
use crate::sources::ehr::files::{FhirFileError, FhirFiles};
use crate::sources::register::{RegisterError, RegisterItem, RegisterReader, RejectedRow};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    FhirFiles(#[from] FhirFileError),
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error(transparent)]
    RegisterWrite(#[from] RegisterWriteError),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("writing the quarantine file {path}: {source}")]
    Quarantine {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a translation did, for the operator.
#[derive(Debug, Default, serde::Serialize)]
pub struct TranslateSummary {
    /// Contacts translated.
    pub contacts: u64,
    /// Rows or resources that could not be read (each reported).
    pub rejected: u64,
    /// Where rejected rows went.
    pub quarantine: Option<PathBuf>,
    /// Register columns the mapping does not know (ignored).
    pub unknown_columns: Vec<String>,
    /// FHIR resources written.
    pub resources_written: usize,
    /// Things worth a look that did not stop a row: rows that disagree about the same person,
    /// unit or patient listing; FHIR resources not read.
    pub notes: Vec<String>,
}

impl TranslateSummary {
    /// Whether anything was rejected (the exit code says so).
    pub fn has_rejections(&self) -> bool {
        self.rejected > 0
    }
}

/// Patient-level facts gathered across rows: the FLK mirrored into generalPractitioner, and the
/// listing unit.
#[derive(Default)]
struct PatientFacts {
    flk: Option<(HsaId, HsaId, chrono::NaiveDate)>,
    listing: Option<HsaId>,
}

/// Register CSV → FHIR, streamed: memory holds one row, the references written so far (bounded
/// by the number of staff and units) and two HSA-ids per patient for the Patient resources.
/// `on_reject` sees each bad row as it is found (for line-by-line output).
/// What `translate` is asked to do; the direction follows the input (a `.csv` file is a
/// register export, anything else is FHIR).
pub struct Options {
    /// The register CSV or the FHIR to translate.
    pub input: PathBuf,
    /// FHIR out as NDJSON rather than a transaction Bundle.
    pub ndjson: bool,
    /// Where rejected register rows go (default: beside the input).
    pub quarantine: Option<PathBuf>,
}

/// Whether a path is a register export rather than FHIR.
pub(crate) fn is_register_csv(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv"))
}

/// Translates in the direction the input says, writing to `out`.
pub fn run(
    o: &Options,
    mappings: &Mappings,
    out: &mut dyn Write,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
) -> Result<TranslateSummary, TranslateError> {
    if is_register_csv(&o.input) {
        register_to_fhir(
            &o.input,
            mappings,
            out,
            o.ndjson,
            o.quarantine.clone(),
            on_reject,
        )
    } else {
        fhir_to_register(&o.input, mappings, out)
    }
}

/// Register CSV → FHIR (a transaction Bundle, or NDJSON), streamed.
pub fn register_to_fhir(
    input: &Path,
    mappings: &Mappings,
    out: &mut dyn Write,
    ndjson: bool,
    quarantine_path: Option<PathBuf>,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
) -> Result<TranslateSummary, TranslateError> {
    let mut reader = RegisterReader::open(input, &mappings.register, &mappings.terminology)?;
    let mut summary = TranslateSummary {
        unknown_columns: reader.unknown_columns.clone(),
        ..Default::default()
    };
    let header = reader.header_line.clone();
    let qpath = quarantine_path.unwrap_or_else(|| Quarantine::path_for(input));
    let mut quarantine = Quarantine::new(
        qpath.clone(),
        header,
        mappings.register.delimiter,
        reader.encoding,
    );
    let outbound = Outbound::new(mappings);
    let mut stream = crate::fhir::transaction::ResourceStream::new(out, ndjson);
    stream.start()?;
    let mut patients: HashMap<PatientId, PatientFacts> = HashMap::new();
    let mut staff_seen: HashMap<HsaId, (u64, Staff)> = HashMap::new();
    let mut units_seen: HashMap<HsaId, (u64, crate::domain::CareUnit)> = HashMap::new();
    let mut patient_order: Vec<PatientId> = Vec::new();
    for item in &mut reader {
        match item? {
            RegisterItem::Rejected(row) => {
                on_reject(input, &row);
                quarantine
                    .write(&row)
                    .map_err(|source| TranslateError::Quarantine {
                        path: qpath.clone(),
                        source,
                    })?;
                summary.rejected += 1;
            }
            RegisterItem::Contact { line, contact } => {
                summary.contacts += 1;
                if let Some(s) = contact.staff() {
                    match staff_seen.get(&s.hsa) {
                        Some((first, known)) if known != s => summary.notes.push(format!(
                            "{}:{line}: staff {} differs from line {first} (name, profession, licence or specialties); the FHIR Practitioner keeps line {first}'s",
                            input.display(),
                            s.hsa
                        )),
                        Some(_) => {}
                        None => {
                            staff_seen.insert(s.hsa.clone(), (line, s.clone()));
                        }
                    }
                }
                match units_seen.get(&contact.unit.hsa) {
                    Some((first, known)) if *known != contact.unit => summary.notes.push(format!(
                        "{}:{line}: unit {} differs from line {first} (name or kind); the FHIR Organization keeps line {first}'s",
                        input.display(),
                        contact.unit.hsa
                    )),
                    Some(_) => {}
                    None => {
                        units_seen.insert(contact.unit.hsa.clone(), (line, contact.unit.clone()));
                    }
                }
                let facts = patients.entry(contact.patient.clone()).or_insert_with(|| {
                    patient_order.push(contact.patient.clone());
                    PatientFacts::default()
                });
                if let Some(l) = &contact.listing_unit {
                    match &facts.listing {
                        Some(known) if known != l => summary.notes.push(format!(
                            "{}:{line}: patient {} listed at {l} here but at {known} on an earlier row; FHIR keeps {known}",
                            input.display(),
                            contact.patient
                        )),
                        Some(_) => {}
                        None => facts.listing = Some(l.clone()),
                    }
                }
                if contact.kind == ContactKind::Flk && contact.status() == ContactStatus::Active {
                    if let Some(s) = contact.staff() {
                        let start = contact.period.start();
                        // Several active FLKs break FK-R19; the mirror takes the latest start.
                        if facts.flk.as_ref().is_none_or(|(_, _, d)| start >= *d) {
                            facts.flk = Some((s.hsa.clone(), contact.unit.hsa.clone(), start));
                        }
                    }
                }
                let r = outbound.contact(&contact);
                stream.emit(&r.organization, true)?;
                if let Some(o) = r.listing_organization {
                    stream.emit(&o, true)?;
                }
                if let Some(p) = r.practitioner {
                    stream.emit(&p, true)?;
                }
                if let Some(p) = r.practitioner_role {
                    stream.emit(&p, true)?;
                }
                // Row ids are unique (the reader rejects a repeat), so relations need no check.
                stream.emit(&r.relation, false)?;
            }
        }
    }
    for p in &patient_order {
        let f = &patients[p];
        stream.emit(
            &outbound.patient(
                p,
                f.flk.as_ref().map(|(s, u, _)| (s, u)),
                f.listing.as_ref(),
            ),
            false,
        )?;
    }
    stream.finish()?;
    summary.resources_written = stream.written();
    summary.quarantine = quarantine
        .finish()
        .map_err(|source| TranslateError::Quarantine {
            path: qpath,
            source,
        })?;
    Ok(summary)
}

/// FHIR (Bundle, NDJSON or a folder) → register CSV.
pub fn fhir_to_register(
    input: &Path,
    mappings: &Mappings,
    out: &mut dyn Write,
) -> Result<TranslateSummary, TranslateError> {
    let files = FhirFiles::read(input)?;
    let mut summary = TranslateSummary::default();
    for bad in &files.bad {
        summary.notes.push(bad.to_string());
        summary.rejected += 1;
    }
    let idx = Index::new(files.resources.iter().map(|(u, r)| (u.clone(), r)));
    let refs: Vec<&crate::fhir::Resource> = files.resources.iter().map(|(_, r)| r).collect();
    let read = Inbound::new(mappings).contacts(&idx, &refs);
    for p in &read.problems {
        summary.notes.push(p.to_string());
    }
    // CareTeams and Tasks that are not fixed contacts are not rejected, but not silent either.
    let mut not_used = 0usize;
    for (r, v) in refs.iter().zip(&read.verdicts) {
        if let crate::sources::ehr::account::Verdict::NotUsed { reason, detail } = v {
            not_used += 1;
            if not_used <= 20 {
                let (t, id) = crate::fhir::outbound::type_and_id(r);
                let detail = detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                summary
                    .notes
                    .push(format!("{t}/{id}: not used: {reason}{detail}"));
            }
        }
    }
    if not_used > 20 {
        summary.notes.push(format!(
            "… and {} more CareTeams and Tasks not used",
            not_used - 20
        ));
    }
    summary.rejected += read
        .problems
        .iter()
        .map(|p| &p.resource)
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    let mut w = RegisterCsvWriter::new(out, &mappings.register, &mappings.terminology)?;
    for c in &read.contacts {
        w.write(c)?;
        summary.contacts += 1;
    }
    w.finish()?;
    Ok(summary)
}
