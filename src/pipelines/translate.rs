//! Pipeline `translate`: register CSV → FHIR (transaction Bundle or NDJSON), and FHIR →
//! register CSV. A straight pipe: source → domain → sink, bad input reported, the rest carried on.

use crate::domain::{ContactKind, ContactStatus, FixedContact, HsaId, PatientId, Staff};
use crate::fhir::inbound::Inbound;
use crate::fhir::model::FhirError;
use crate::fhir::outbound::Outbound;
use crate::mapping::Mappings;
use crate::sinks::quarantine::Quarantine;
use crate::sinks::register_csv::{RegisterCsvWriter, RegisterWriteError};
use crate::sources::ehr::files::FhirFileError;
use crate::sources::register::{RegisterError, RegisterItem, RegisterReader, RejectedRow};
// A fast hasher seeded per process: these maps hold a key per patient, staff member and unit.
use foldhash::{HashMap, HashMapExt, HashSet};
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

/// Contacts built and serialised at a time (while the next chunk is read).
const CHUNK: usize = 4096;

/// Which of a contact's referenced resources are written with it: each the first time a row
/// names it (as one Organization whether it is a row's unit or its listing unit).
#[derive(Clone, Copy, Default)]
struct Fresh {
    organization: bool,
    listing: bool,
    practitioner: bool,
    role: bool,
}

/// The staff members, units and roles rows have named so far, each with the line that first
/// named it (whose values the FHIR resource keeps); listing units named by no row as its unit.
#[derive(Default)]
struct References {
    staff: HashMap<HsaId, (u64, Staff)>,
    units: HashMap<HsaId, (u64, crate::domain::CareUnit)>,
    listing_only: HashSet<HsaId>,
    roles: HashSet<(HsaId, HsaId)>,
}

impl References {
    /// Takes a row's references: notes a staff member or unit that differs from the row that
    /// first named it, and says which resources go out with this row (in the order they are
    /// written: unit, listing unit, practitioner, role). A listing unit and a row's unit with
    /// the same HSA-id are one Organization, written the first time either is named.
    fn take(
        &mut self,
        input: &Path,
        line: u64,
        c: &FixedContact,
        notes: &mut Vec<String>,
    ) -> Fresh {
        let mut practitioner = false;
        if let Some(s) = c.staff() {
            match self.staff.get(&s.hsa) {
                Some((first, known)) if known != s => notes.push(format!(
                    "{}:{line}: staff {} differs from line {first} (name, profession, licence or specialties); the FHIR Practitioner keeps line {first}'s",
                    input.display(),
                    s.hsa
                )),
                Some(_) => {}
                None => {
                    self.staff.insert(s.hsa.clone(), (line, s.clone()));
                    practitioner = true;
                }
            }
        }
        let mut organization = false;
        match self.units.get(&c.unit.hsa) {
            Some((first, known)) if *known != *c.unit => notes.push(format!(
                "{}:{line}: unit {} differs from line {first} (name or kind); the FHIR Organization keeps line {first}'s",
                input.display(),
                c.unit.hsa
            )),
            Some(_) => {}
            None => {
                organization = !self.listing_only.contains(&c.unit.hsa);
                self.units.insert(c.unit.hsa.clone(), (line, (*c.unit).clone()));
            }
        }
        let listing = c
            .listing_unit
            .as_deref()
            .is_some_and(|l| !self.units.contains_key(l) && self.listing_only.insert(l.clone()));
        let role = c
            .staff()
            .is_some_and(|s| self.roles.insert((s.hsa.clone(), c.unit.hsa.clone())));
        Fresh {
            organization,
            listing,
            practitioner,
            role,
        }
    }
}

/// Resources serialised off the writing thread, and how many.
#[derive(Default)]
struct Encoded {
    bytes: Vec<u8>,
    count: usize,
}

/// Buffers written and handed back for the next chunk: fresh ones would cost a page fault
/// and a zeroed page for every 4 KiB of output.
type Pool = std::sync::Mutex<Vec<Vec<u8>>>;

fn spare(pool: &Pool) -> Vec<u8> {
    pool.lock()
        .ok()
        .and_then(|mut p| p.pop())
        .unwrap_or_default()
}

fn give_back(pool: &Pool, mut buf: Vec<u8>) {
    buf.clear();
    if let Ok(mut p) = pool.lock() {
        p.push(buf);
    }
}

/// A chunk's resources, each contact's references (when fresh) before its relation, built and
/// serialised on every core, in pieces to be written in order.
fn encode_chunk(
    outbound: &Outbound,
    chunk: &[(FixedContact, Fresh)],
    ndjson: bool,
    pool: &Pool,
) -> Result<Vec<Encoded>, FhirError> {
    use crate::fhir::transaction::encode;
    use rayon::prelude::*;
    chunk
        .par_chunks(256)
        .map(|cs| {
            let mut e = Encoded {
                bytes: spare(pool),
                count: 0,
            };
            let mut put = |r: &crate::fhir::Resource| -> Result<(), FhirError> {
                encode(r, ndjson, &mut e.bytes)?;
                e.count += 1;
                Ok(())
            };
            for (c, fresh) in cs {
                if fresh.organization {
                    put(&outbound.organization(&c.unit))?;
                }
                if let (true, Some(l)) = (fresh.listing, &c.listing_unit) {
                    put(&outbound.listing_organization(l))?;
                }
                if let Some(s) = c.staff() {
                    if fresh.practitioner {
                        put(&outbound.practitioner(s))?;
                    }
                    if fresh.role {
                        put(&outbound.practitioner_role(s, &c.unit))?;
                    }
                }
                put(&outbound.relation(c))?;
            }
            Ok(e)
        })
        .collect()
}

impl PatientFacts {
    /// Takes a row's listing unit and active FLK into the patient's facts.
    fn note(&mut self, input: &Path, line: u64, contact: &FixedContact, notes: &mut Vec<String>) {
        if let Some(l) = contact.listing_unit.as_deref() {
            match &self.listing {
                Some(known) if known != l => notes.push(format!(
                    "{}:{line}: patient {} listed at {l} here but at {known} on an earlier row; FHIR keeps {known}",
                    input.display(),
                    contact.patient
                )),
                Some(_) => {}
                None => self.listing = Some(l.clone()),
            }
        }
        if contact.kind == ContactKind::Flk && contact.status() == ContactStatus::Active {
            if let Some(s) = contact.staff() {
                let start = contact.period.start();
                // Several active FLKs break FK-R19; the mirror takes the latest start.
                if self.flk.as_ref().is_none_or(|(_, _, d)| start >= *d) {
                    self.flk = Some((s.hsa.clone(), contact.unit.hsa.clone(), start));
                }
            }
        }
    }
}

/// What `translate` is asked to do; the direction follows the input (a `.csv` file is a
/// register export, anything else is FHIR).
pub struct Options {
    /// The register CSV or the FHIR to translate.
    pub input: PathBuf,
    /// FHIR out as NDJSON rather than a transaction Bundle.
    pub ndjson: bool,
    /// Where rejected register rows go (default: beside the input).
    pub quarantine: Option<PathBuf>,
    /// FHIR → CSV: Patients held in memory before all go to a temporary file.
    pub held_patients: usize,
}

/// Whether a path is a register export rather than FHIR.
pub fn is_register_csv(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv"))
}

/// Translates in the direction the input says, writing to `out`.
pub fn run(
    o: &Options,
    mappings: &Mappings,
    out: &mut (dyn Write + Send),
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
        fhir_to_register_holding(&o.input, mappings, out, o.held_patients)
    }
}

/// Register CSV → FHIR (a transaction Bundle, or NDJSON), streamed: memory holds a few chunks
/// of rows, the references written so far (bounded by the number of staff and units) and two
/// HSA-ids per patient for the Patient resources, written last. `on_reject` sees each bad row
/// as it is found (for line-by-line output).
pub fn register_to_fhir(
    input: &Path,
    mappings: &Mappings,
    out: &mut (dyn Write + Send),
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
    let mut references = References::default();
    let mut patient_order: Vec<PatientId> = Vec::new();
    // This thread reads and checks rows; a second builds and serialises each chunk's resources
    // on every core and writes them, while the next chunk is read. Output is in the rows' order.
    let (to_build, build_rx) = std::sync::mpsc::sync_channel::<Vec<(FixedContact, Fresh)>>(2);
    let outbound = &outbound;
    let stream = std::thread::scope(|sc| -> Result<_, TranslateError> {
        let builder = sc.spawn(move || -> Result<_, TranslateError> {
            let pool = Pool::default();
            for chunk in build_rx {
                for e in encode_chunk(outbound, &chunk, ndjson, &pool)? {
                    stream.write_encoded(&e.bytes, e.count)?;
                    give_back(&pool, e.bytes);
                }
            }
            Ok(stream)
        });
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut rows = reader.by_ref().peekable();
        while let Some(item) = rows.next() {
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
                    let fresh = references.take(input, line, &contact, &mut summary.notes);
                    let facts = patients.entry(contact.patient.clone()).or_insert_with(|| {
                        patient_order.push(contact.patient.clone());
                        PatientFacts::default()
                    });
                    facts.note(input, line, &contact, &mut summary.notes);
                    chunk.push((contact, fresh));
                }
            }
            if chunk.len() >= CHUNK || (rows.peek().is_none() && !chunk.is_empty()) {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if to_build.send(full).is_err() {
                    break; // the builder stopped on an error, which its join reports
                }
            }
        }
        drop(to_build);
        builder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    let mut stream = stream;
    // The Patients last, each with what its rows said, built on every core a block at a time.
    use rayon::prelude::*;
    for block in patient_order.chunks(CHUNK) {
        let encoded: Vec<Result<Encoded, FhirError>> = block
            .par_chunks(256)
            .map(|ps| {
                let mut e = Encoded::default();
                for p in ps {
                    let f = &patients[p];
                    let r = outbound.patient(
                        p,
                        f.flk.as_ref().map(|(s, u, _)| (s, u)),
                        f.listing.as_ref(),
                    );
                    crate::fhir::transaction::encode(&r, ndjson, &mut e.bytes)?;
                    e.count += 1;
                }
                Ok(e)
            })
            .collect();
        for e in encoded {
            let e = e?;
            stream.write_encoded(&e.bytes, e.count)?;
        }
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

/// FHIR (Bundle, NDJSON or a folder) → register CSV, streamed: the directory and Patients
/// (as stubs) are read first and kept; the CareTeams and Tasks then pass a batch at a time,
/// parsed and read on every core, and each batch's rows are written before the next is read.
/// Memory holds the directory, the Patients (past `HELD_PATIENTS`, only where each one is in a
/// temporary file) and one batch.
pub fn fhir_to_register(
    input: &Path,
    mappings: &Mappings,
    out: &mut (dyn Write + Send),
) -> Result<TranslateSummary, TranslateError> {
    fhir_to_register_holding(input, mappings, out, HELD_PATIENTS)
}

/// How many Patients FHIR → CSV holds in memory (~100 bytes each, ~20 MB) before it moves
/// them to a temporary file and keeps only where each one is (a hash table slot, 9–19 bytes a
/// Patient): a large region's Patients no longer set the peak, and a small input is read as
/// fast as in memory.
pub const HELD_PATIENTS: usize = 200_000;

/// FHIR → register CSV with at most `held_max` Patients in memory, the rest spilled.
pub fn fhir_to_register_holding(
    input: &Path,
    mappings: &Mappings,
    out: &mut (dyn Write + Send),
    held_max: usize,
) -> Result<TranslateSummary, TranslateError> {
    use crate::fhir::patients::Patients;
    use crate::sources::ehr::account::Verdict;
    use crate::sources::ehr::files::FhirFileError;
    use crate::sources::ehr::side::EhrDirectory;
    use crate::sources::ehr::stream::{EhrStream, Pass};
    let stream = EhrStream::open(input)?;
    // The directory as JSON: only references are followed here, each member read once.
    let dir: EhrDirectory<_, crate::fhir::inbound::HeldResource> =
        EhrDirectory::read_into(&stream, &|_| {}, Patients::held_up_to(held_max))?;
    if dir.patients().is_spilled() {
        tracing::info!(
            patients = dir.patient_count(),
            held_max,
            "more Patients than are held in memory: they are kept in a temporary file (TMPDIR)"
        );
    }
    let inbound = Inbound::new(mappings);
    let mut idx = dir.index();
    inbound.remember_members(&mut idx);
    let mut summary = TranslateSummary::default();
    for bad in dir.problems() {
        summary.notes.push(bad.clone());
        summary.rejected += 1;
    }
    let mut w = RegisterCsvWriter::new(out, &mappings.register, &mappings.terminology)?;
    let mut not_used = 0usize;
    let mut failed: Option<TranslateError> = None;
    // What a chunk of resources gave, read on the core that parsed it.
    #[derive(Default)]
    struct Read {
        contacts: Vec<FixedContact>,
        notes: Vec<String>,
        rejected: u64,
        /// `Type/id: not used: reason (detail)` of the chunk's first 20 resources that are
        /// no fixed contact (the first 20 of the input are among them), and how many in all.
        not_used: Vec<String>,
        not_used_count: usize,
    }
    let per_chunk = |chunk: Vec<crate::sources::ehr::stream::Parsed>| -> Read {
        let mut out = Read::default();
        let mut ok = Vec::with_capacity(chunk.len());
        for item in chunk {
            match item {
                Ok((_, _, r)) => ok.push(r),
                Err(bad) => {
                    out.notes.push(bad.to_string());
                    out.rejected += 1;
                }
            }
        }
        let refs: Vec<&crate::fhir::Resource> = ok.iter().collect();
        let read = inbound.contacts(&idx, &refs);
        out.notes
            .extend(read.problems.iter().map(ToString::to_string));
        out.rejected += read
            .problems
            .iter()
            .map(|p| &p.resource)
            .collect::<HashSet<_>>()
            .len() as u64;
        // CareTeams and Tasks that are not fixed contacts are not rejected, but not
        // silent either.
        for (r, v) in refs.iter().zip(&read.verdicts) {
            if let Verdict::NotUsed { reason, detail } = v {
                out.not_used_count += 1;
                if out.not_used.len() == 20 {
                    continue;
                }
                let (t, id) = crate::fhir::outbound::type_and_id(r);
                let detail = detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                out.not_used
                    .push(format!("{t}/{id}: not used: {reason}{detail}"));
            }
        }
        out.contacts = read.contacts;
        out
    };
    stream.read_chunks(Pass::PatientScoped, &|_| {}, &per_chunk, &mut |reads| {
        if failed.is_some() {
            return;
        }
        // Written in the input's order.
        for read in reads {
            summary.notes.extend(read.notes);
            summary.rejected += read.rejected;
            let room = 20usize.saturating_sub(not_used);
            summary.notes.extend(read.not_used.into_iter().take(room));
            not_used += read.not_used_count;
            for c in &read.contacts {
                if let Err(e) = w.write(c) {
                    failed = Some(e.into());
                    return;
                }
                summary.contacts += 1;
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    // A spilled Patient that could not be read back was answered "not found": the rows
    // written are not the whole translation.
    if let Some(source) = dir.patients().failure() {
        return Err(FhirFileError::Spill { source }.into());
    }
    if not_used > 20 {
        summary.notes.push(format!(
            "… and {} more CareTeams and Tasks not used",
            not_used - 20
        ));
    }
    w.finish()?;
    Ok(summary)
}
