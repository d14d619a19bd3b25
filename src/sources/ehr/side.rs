//! Source: the EHR's side, read and grouped by patient: from files (streamed in passes, a slice
//! of the patients at a time), from a server, or from resources at hand. The directory
//! (Practitioner, PractitionerRole, Organization, Consent, CarePlan) and Patient stubs first.

use crate::domain::{PatientId, SharedValues};
use crate::fhir::context::{ContextReader, EhrFacts};
use crate::fhir::inbound::{HeldResource, Inbound, Index, Slot};
use crate::mapping::Mappings;
use crate::sources::ehr::account::{InputAccount, Verdict};
use crate::sources::ehr::contacts::{EhrContacts, ReadContact, SharedContacts};
use crate::sources::ehr::files::{FhirFileError, FhirFiles};
use crate::sources::ehr::stream::Origin;
use crate::sync::takeover::HandIndex;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

/// A patient's place in the partitions (and in the register reader's sets of seen patients).
pub(crate) fn patient_key(p: &PatientId) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// The EHR side, loaded and grouped by patient.
#[derive(Default)]
pub struct EhrSide {
    /// Each patient's contacts, with the resource each was read from (`CareTeam/id`); shared
    /// with the takeover index built over them.
    pub(crate) contacts: SharedContacts,
    pub(crate) facts: EhrFacts,
    /// Data that could not be read at all (a bad line, a resource that is not R4).
    pub(crate) problems: Vec<String>,
    /// Fixed contacts that could not be understood, at the element.
    pub(crate) shape_problems: Vec<crate::fhir::inbound::InboundProblem>,
    /// (patient text, message) of identifiers that failed their check.
    pub(crate) invalid_identifiers: Vec<(String, String)>,
    pub(crate) contact_count: usize,
    /// The product's own relations (CareTeam/Task with its tag), kept compact, when asked for.
    pub(crate) product: Vec<KeptRelation>,
    /// Every resource read: used, or why not (kept by the first partition).
    pub(crate) account: InputAccount,
}

/// A slice of the region's patients. A region too large for memory is checked one slice at a
/// time: each pass keeps only its slice's EHR data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

impl Partition {
    /// Every patient in one pass.
    pub const ALL: Partition = Partition { index: 0, count: 1 };

    pub(crate) fn holds(&self, p: &PatientId) -> bool {
        self.count <= 1 || patient_key(p) % u64::from(self.count) == u64::from(self.index)
    }

    /// Partition 0 also carries what belongs to no patient (bad lines, directory problems).
    pub(crate) fn is_first(&self) -> bool {
        self.index == 0
    }
}

/// The directory (Practitioner, PractitionerRole, Organization, Consent) and the Patients as
/// stubs: read once, shared by every partition's pass. The Patients are in memory (`P` a
/// `PatientTable`, which the partitions' lookups by identity need), or spilled past a count
/// (`Patients`, for a command that only follows references to them). The other resources are
/// kept parsed (`R` a `Resource`, for the commands that judge every one of them), or as their
/// JSON (`HeldResource`, for a command that only follows references: a fifth of the memory).
pub struct EhrDirectory<P = crate::fhir::inbound::PatientTable, R = crate::fhir::Resource> {
    resources: Vec<(Option<String>, R)>,
    /// Where each of `resources` was read.
    origins: Vec<Origin>,
    patients: P,
    /// Lines of directory types that could not be read.
    problems: Vec<String>,
    /// Patients, Practitioners, Organizations and Consents, judged as they were read.
    account: InputAccount,
}

impl EhrDirectory {
    /// The directory, with the Patients in memory.
    pub(crate) fn read(
        stream: &crate::sources::ehr::stream::EhrStream,
        on_bytes: &dyn Fn(u64),
    ) -> Result<Self, FhirFileError> {
        Self::read_into(stream, on_bytes, Default::default())
    }

    /// Each valid patient identity of the partition, finding the id of its Patient resource.
    pub(crate) fn patient_ids(
        &self,
        part: Partition,
    ) -> crate::fhir::patients::PatientsByIdentity<'_> {
        crate::fhir::patients::PatientsByIdentity::new(&self.patients, |p| part.holds(p))
    }
}

/// How the directory keeps a resource other than a Patient for the whole run.
pub trait KeptForm: Sized + Send {
    /// `r`, as kept.
    fn keep(r: crate::fhir::Resource) -> Result<Self, crate::fhir::model::FhirError>;
    /// Where the index finds it.
    fn slot(&self) -> Slot<'_>;
}

impl KeptForm for crate::fhir::Resource {
    fn keep(r: crate::fhir::Resource) -> Result<Self, crate::fhir::model::FhirError> {
        // Copied: a clone allocates each list at its length, where the parser's growth left
        // room for four (a Practitioner 7.4 KB as parsed, 2.8 KB cloned).
        Ok(r.clone())
    }
    fn slot(&self) -> Slot<'_> {
        Slot::Parsed(self)
    }
}

impl KeptForm for HeldResource {
    fn keep(r: crate::fhir::Resource) -> Result<Self, crate::fhir::model::FhirError> {
        HeldResource::of(&r)
    }
    fn slot(&self) -> Slot<'_> {
        Slot::Held(self)
    }
}

impl<P: crate::fhir::patients::PatientStore, R: KeptForm> EhrDirectory<P, R> {
    /// The directory, with the Patients put into `patients`.
    pub(crate) fn read_into(
        stream: &crate::sources::ehr::stream::EhrStream,
        on_bytes: &dyn Fn(u64),
        patients: P,
    ) -> Result<Self, FhirFileError> {
        use crate::fhir::inbound::PatientStub;
        let mut dir = EhrDirectory {
            resources: Vec::new(),
            origins: Vec::new(),
            patients,
            problems: Vec::new(),
            account: InputAccount::default(),
        };
        let mut spill_failed = None;
        let mut lists = crate::domain::Interner::default();
        /// A directory resource as kept: a Patient as its stub, the rest in the form `R`.
        enum Kept<R> {
            Patient(Option<String>, PatientStub),
            Other(R),
            /// The product could not keep it (it could not write what it had read).
            Unkept(String),
        }
        // Stubs made and copies taken on the core that parsed the chunk.
        let per_chunk = |chunk: Vec<crate::sources::ehr::stream::Parsed>| {
            chunk
                .into_iter()
                .map(|item| {
                    item.map(|(origin, url, r)| match r {
                        crate::fhir::Resource::Patient(p) => {
                            let id = p.id.as_ref().and_then(|i| i.value.clone());
                            (origin, url, Kept::Patient(id, PatientStub::of(&p)))
                        }
                        other => match R::keep(other) {
                            Ok(kept) => (origin, url, Kept::Other(kept)),
                            Err(e) => (origin, url, Kept::Unkept(e.to_string())),
                        },
                    })
                })
                .collect::<Vec<_>>()
        };
        stream.read_chunks(
            crate::sources::ehr::stream::Pass::Directory,
            on_bytes,
            &per_chunk,
            &mut |chunks| {
                for item in chunks.into_iter().flatten() {
                    let (origin, url, kept) = match item {
                        Ok(x) => x,
                        // A bad directory line is reported once, with the first partition.
                        Err(bad) => {
                            dir.problems.push(bad.to_string());
                            continue;
                        }
                    };
                    match kept {
                        Kept::Patient(id, mut stub) => {
                            stub.share(&mut lists);
                            dir.account.record(
                                "Patient",
                                || format!("Patient/{}", id.as_deref().unwrap_or("")),
                                || origin.to_string(),
                                patient_verdict(&stub),
                            );
                            if spill_failed.is_none() {
                                if let Err(e) = dir.patients.add(url, id.as_deref(), stub) {
                                    spill_failed = Some(e);
                                }
                            }
                        }
                        Kept::Other(r) => {
                            dir.resources.push((url, r));
                            dir.origins.push(origin);
                        }
                        Kept::Unkept(why) => dir.problems.push(format!("{origin}: {why}")),
                    }
                }
            },
        )?;
        // Kept for the whole run: the Patients' hash table without the growth's spare room.
        match spill_failed {
            Some(source) => Err(FhirFileError::Spill { source }),
            None => dir
                .patients
                .seal()
                .map_err(|source| FhirFileError::Spill { source })
                .map(|()| dir),
        }
    }

    /// How many Patients the directory pass read.
    pub(crate) fn patient_count(&self) -> usize {
        self.patients.count()
    }

    /// The Patients as read.
    pub(crate) fn patients(&self) -> &P {
        &self.patients
    }

    pub(crate) fn index(&self) -> Index<'_> {
        Index::of_slots(
            self.resources
                .iter()
                .map(|(u, r)| (u.as_deref().map(Cow::Borrowed), r.slot())),
        )
        .with_patients(&self.patients)
    }

    /// Lines of directory types that could not be read, each with its file and line.
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }
}

/// What the commands that judge every directory resource need: the resources parsed.
impl<P: crate::fhir::patients::PatientStore> EhrDirectory<P, crate::fhir::Resource> {
    /// The account of the directory pass: Patients, and Practitioners, Organizations and
    /// Consents judged against the rest of the directory. PractitionerRoles and CarePlans are
    /// judged by the facts reader, in the first partition.
    fn account(&self, m: &Mappings, idx: &Index) -> (InputAccount, Vec<Verdict>) {
        let in_plans = referenced_by_plans(m, idx, self.all());
        let verdicts = self
            .all()
            .map(|r| directory_verdict(r, &in_plans))
            .collect();
        (self.account.clone(), verdicts)
    }

    fn care_plans(&self) -> Vec<&crate::fhir::Resource> {
        self.all()
            .filter(|r| matches!(r, crate::fhir::Resource::CarePlan(_)))
            .collect()
    }

    /// The facts of the CarePlans, read with the CareTeams they name (kept from the
    /// patient-scoped pass) and their patients' stubs; a verdict per CarePlan.
    fn read_plans(
        &self,
        idx: &Index,
        kept_teams: &[crate::fhir::Resource],
        m: &Mappings,
    ) -> (EhrFacts, Vec<Verdict>) {
        let plans = self.care_plans();
        let mut f = EhrFacts::default();
        if plans.is_empty() {
            return (f, Vec::new());
        }
        let mut pidx = Index::new(
            self.resources
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
                    pidx.add_patient_ref(text, stub.into_owned());
                }
            }
        }
        let verdicts = ContextReader::new(m).judge_into(&pidx, &plans, &mut f);
        (f, verdicts)
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
    pub(crate) fn all(&self) -> impl Iterator<Item = &crate::fhir::Resource> {
        self.resources.iter().map(|(_, r)| r)
    }
}

/// The length of the bytes two texts begin with alike (at a character boundary of both).
fn common_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=n).rev().find(|&k| a.is_char_boundary(k)).unwrap_or(0)
}

/// A text's 16 bytes from `from`, zero-padded, as one number: ordered as the texts are where
/// they differ (a text ending sooner is a prefix, and sorts first); equal where they may not.
fn head(text: &str, from: usize) -> u128 {
    let rest = text.as_bytes().get(from..).unwrap_or_default();
    let mut b = [0u8; 16];
    let n = rest.len().min(16);
    b[..n].copy_from_slice(&rest[..n]);
    u128::from_be_bytes(b)
}

impl EhrSide {
    /// The contacts not read from the product's own resources (`ours`, as `Type/id`): those
    /// typed by hand, indexed for the takeover.
    pub(crate) fn hand_typed(&self, ours: &HashSet<String>) -> HandIndex {
        use rayon::slice::ParallelSliceMut;
        let all = self.contacts.all();
        let picked: Vec<u32> = (0..all.len() as u32)
            .filter(|&i| !ours.contains(&*all[i as usize].1))
            .collect();
        // In the resources' order, so a plan made twice lists them alike (on both cores: a
        // region's million took two seconds on one, the other idle). Each is sorted by the
        // first 16 bytes of its text past the prefix all share, held beside it: comparing
        // through the positions was two cache misses and a `memcmp` a step (three seconds of
        // both cores for a region's million). Equal heads fall back to the whole texts (a
        // resource's texts are one shared text, compared by address before their bytes), then
        // the kind, then the position, so the unstable sort orders as a stable one would.
        let texts = |i: u32| -> &str { &all[i as usize].1 };
        let shared = picked
            .iter()
            .map(|&i| texts(i))
            .reduce(|a, b| &a[..common_prefix(a, b)])
            .map_or(0, str::len);
        let mut keyed: Vec<(u128, u32)> = picked
            .into_iter()
            .map(|i| (head(texts(i), shared), i))
            .collect();
        keyed.par_sort_unstable_by(|&(ha, a), &(hb, b)| {
            ha.cmp(&hb).then_with(|| {
                let (x, y) = (&all[a as usize], &all[b as usize]);
                let text = if Arc::ptr_eq(&x.1, &y.1) {
                    std::cmp::Ordering::Equal
                } else {
                    x.1.cmp(&y.1)
                };
                text.then(x.0.kind.cmp(&y.0.kind)).then(a.cmp(&b))
            })
        });
        let picked: Vec<u32> = keyed.into_iter().map(|(_, i)| i).collect();
        // A resource's contacts now sit side by side: one of several is marked so.
        let mut hand: Vec<(u32, bool)> = Vec::with_capacity(picked.len());
        for run in picked.chunk_by(|&a, &b| all[a as usize].1 == all[b as usize].1) {
            hand.extend(run.iter().map(|&i| (i, run.len() > 1)));
        }
        HandIndex::new(Arc::clone(&self.contacts), hand)
    }

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
        Self::from_server_types(client, m, crate::sources::ehr::fetch::TYPES, None).await
    }

    /// The contacts alone from a server: what they name (Patient, staff, units) and the
    /// CareTeams and Tasks, none of the facts the rules read beside them. Also the CareTeams'
    /// and Tasks' JSON by `Type/id` (what a takeover edits).
    pub(crate) async fn contacts_from_server(
        client: &crate::fhir::client::FhirClient,
        m: &Mappings,
    ) -> Result<(Self, HashMap<String, serde_json::Value>), crate::fhir::client::ClientError> {
        const CONTACT_TYPES: &[&str] = &[
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "CareTeam",
            "Task",
        ];
        let mut raw = HashMap::new();
        let side = Self::from_server_types(client, m, CONTACT_TYPES, Some(&mut raw)).await?;
        Ok((side, raw))
    }

    async fn from_server_types(
        client: &crate::fhir::client::FhirClient,
        m: &Mappings,
        types: &[&str],
        mut carriers: Option<&mut HashMap<String, serde_json::Value>>,
    ) -> Result<Self, crate::fhir::client::ClientError> {
        let mut values = Vec::new();
        for t in types {
            values.extend(client.search_all(&format!("{t}?_count=500")).await?);
        }
        if let Some(keep) = carriers.as_mut() {
            for v in &values {
                if let ("CareTeam" | "Task", Some(id)) =
                    (v["resourceType"].as_str().unwrap_or(""), v["id"].as_str())
                {
                    keep.insert(
                        format!("{}/{id}", v["resourceType"].as_str().unwrap_or("")),
                        v.clone(),
                    );
                }
            }
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
    pub(crate) fn from_stream(
        stream: &crate::sources::ehr::stream::EhrStream,
        dir: &EhrDirectory,
        idx: &Index,
        m: &Mappings,
        part: Partition,
        product: Option<(&str, &str)>,
        on_bytes: &dyn Fn(u64),
    ) -> Result<Self, FhirFileError> {
        let mut side = EhrSide::default();
        let mut read_contacts: Vec<ReadContact> = Vec::new();
        let mut facts = EhrFacts::default();
        let ctx = ContextReader::new(m);
        ctx.patient_facts(idx, &|p| part.holds(p), &mut facts);
        let (mut account, mut dir_verdicts) = dir.account(m, idx);
        let (rest, plan_at): (Vec<usize>, Vec<usize>) = (0..dir.resources.len())
            .partition(|&k| !matches!(dir.resources[k].1, crate::fhir::Resource::CarePlan(_)));
        let rest_refs: Vec<&crate::fhir::Resource> =
            rest.iter().map(|&k| &dir.resources[k].1).collect();
        for (k, v) in rest.iter().zip(ctx.judge_into(idx, &rest_refs, &mut facts)) {
            let d = std::mem::replace(&mut dir_verdicts[*k], Verdict::NotJudged);
            dir_verdicts[*k] = d.or(v);
        }
        facts.availability.ehr_contacts = true;
        // The directory pass's facts hold for all patients; keep only this partition's.
        facts.retain_patients(|p| part.holds(p));
        let mut problems = if part.is_first() {
            dir.problems.clone()
        } else {
            Vec::new()
        };
        let mut invalid = Vec::new();
        let plan_teams = dir.care_plan_teams();
        let mut kept_teams: Vec<crate::fhir::Resource> = Vec::new();
        let first = part.is_first();
        let shared = std::sync::Mutex::new(SharedValues::default());
        // Each chunk is read on the core that parsed it; its parsed resources are dropped there.
        let per_chunk = |chunk: Vec<crate::sources::ehr::stream::Parsed>| {
            let mut bad = Vec::new();
            let mut teams = Vec::new();
            let mut ok = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok((origin, _, r)) => {
                        // Most regions' EHRs have no CarePlans: no key made per CareTeam then.
                        let named = !plan_teams.is_empty();
                        if let (true, crate::fhir::Resource::CareTeam(ct)) = (named, &r) {
                            let id = ct.id.as_ref().and_then(|i| i.value.as_deref());
                            if id.is_some_and(|i| plan_teams.contains(&format!("CareTeam/{i}"))) {
                                teams.push(r.clone());
                            }
                        }
                        ok.push((origin, r))
                    }
                    Err(b) if first => bad.push(b.to_string()),
                    Err(_) => {}
                }
            }
            let refs: Vec<&crate::fhir::Resource> = ok.iter().map(|(_, r)| r).collect();
            let mut read = Inbound::new(m).contacts(idx, &refs);
            {
                // Only memory is at stake: a poisoned lock's values are still sound.
                let mut values = shared.lock().unwrap_or_else(|e| e.into_inner());
                for c in read.contacts.iter_mut().filter(|c| part.holds(&c.patient)) {
                    c.share(&mut values);
                }
            }
            let mut f = EhrFacts::default();
            let facts_verdicts = ContextReader::new(m).judge_into(idx, &refs, &mut f);
            let mut acc = InputAccount::default();
            if first {
                let verdicts = read.verdicts.iter().cloned().zip(facts_verdicts);
                for ((origin, r), (a, b)) in ok.iter().zip(verdicts) {
                    record(&mut acc, r, || origin.to_string(), a.or(b));
                }
                for s in &read.shapes {
                    acc.shape(s);
                }
            }
            let kept: Vec<KeptRelation> = match product {
                Some(tag) => refs
                    .iter()
                    .filter(|r| is_product(r, tag))
                    .filter_map(|r| KeptRelation::of(r, &m.target.row_id_system))
                    .collect(),
                None => Vec::new(),
            };
            (bad, teams, read, f, kept, acc)
        };
        stream.read_chunks(
            crate::sources::ehr::stream::Pass::PatientScoped,
            on_bytes,
            &per_chunk,
            &mut |parts| {
                for (bad, teams, read, mut f, kept, acc) in parts {
                    problems.extend(bad);
                    kept_teams.extend(teams);
                    account.absorb(acc);
                    for (c, s) in read.contacts.into_iter().zip(read.sources) {
                        if part.holds(&c.patient) {
                            read_contacts.push((c, s));
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
                                side.shape_problems.push(p);
                            }
                        }
                    }
                    facts.absorb_patients(&mut f, |p| part.holds(p));
                    facts.availability.absorb(f.availability);
                    facts.directory.extend(f.directory);
                    facts.specialist_physicians.extend(f.specialist_physicians);
                    side.product.extend(
                        kept.into_iter()
                            .filter(|k| k.patient.as_ref().is_none_or(|p| part.holds(p))),
                    );
                }
            },
        )?;
        // CarePlans last, with the CareTeams they name and their patients' stubs.
        let mut f = dir.read_plans(idx, &kept_teams, m);
        for (k, v) in plan_at.iter().zip(f.1) {
            dir_verdicts[*k] = v;
        }
        facts.availability.absorb(f.0.availability);
        facts.absorb_patients(&mut f.0, |p| part.holds(p));
        if first {
            for (((_, r), origin), v) in dir.resources.iter().zip(&dir.origins).zip(dir_verdicts) {
                record(&mut account, r, || origin.to_string(), v);
            }
            side.account = account;
        }
        side.contact_count = read_contacts.len();
        side.contacts = Arc::new(EhrContacts::grouped(read_contacts));
        facts.freeze();
        side.facts = facts;
        side.problems = problems;
        side.invalid_identifiers = invalid;
        Ok(side)
    }

    pub(crate) fn from_resources<'r>(
        resources: impl IntoIterator<Item = (Option<String>, &'r crate::fhir::Resource)> + Clone,
        m: &Mappings,
    ) -> Self {
        let idx = Index::new(resources.clone());
        let refs: Vec<&crate::fhir::Resource> = resources.into_iter().map(|(_, r)| r).collect();
        let read = Inbound::new(m).contacts(&idx, &refs);
        let reader = ContextReader::new(m);
        let mut facts = crate::fhir::context::EhrFacts::default();
        reader.patient_facts(&idx, &|_| true, &mut facts);
        let facts_verdicts = reader.judge_into(&idx, &refs, &mut facts);
        facts.availability.ehr_contacts = true;
        let mut account = InputAccount::default();
        let in_plans = referenced_by_plans(m, &idx, refs.iter().copied());
        for ((r, a), b) in refs.iter().zip(&read.verdicts).zip(facts_verdicts) {
            let own = match r {
                crate::fhir::Resource::Patient(p) => patient_verdict(&PatientStub::of(p)),
                other => directory_verdict(other, &in_plans),
            };
            let (t, id) = crate::fhir::outbound::type_and_id(r);
            record(
                &mut account,
                r,
                || format!("{t}/{id}"),
                own.or(a.clone()).or(b),
            );
        }
        for s in &read.shapes {
            account.shape(s);
        }
        let mut side = EhrSide {
            contact_count: read.contacts.len(),
            account,
            ..Default::default()
        };
        let mut values = SharedValues::default();
        let read_contacts = read
            .contacts
            .into_iter()
            .zip(read.sources)
            .map(|(mut c, s)| {
                c.share(&mut values);
                (c, s)
            });
        side.contacts = Arc::new(EhrContacts::grouped(read_contacts.collect()));
        for p in read.problems {
            if p.identifier {
                side.invalid_identifiers.push((
                    String::new(),
                    format!("{}: {}: {}", p.resource, p.element, p.reason),
                ));
            } else {
                side.shape_problems.push(p);
            }
        }
        side.facts = facts;
        side
    }
}

/// A product CareTeam or Task kept for the plan: its JSON as bytes, with what the plan looks up
/// before it reads the body. (Parsed, a CareTeam's `serde_json::Value` takes about 12 KB, its
/// text about 1.2 KB; after go-live every CareTeam of a region is the product's.)
pub struct KeptRelation {
    type_name: &'static str,
    id: String,
    /// (system, value) of the identifier the mappings name as the register's row id.
    row_id: Option<(String, String)>,
    active: bool,
    /// The patient of `subject`/`for`, when the reference carries an identity.
    patient: Option<PatientId>,
    json: Box<[u8]>,
}

impl KeptRelation {
    pub(crate) fn of(r: &crate::fhir::Resource, row_id_system: &str) -> Option<Self> {
        use crate::fhir::Resource as R;
        let (identifiers, status, who) = match r {
            R::CareTeam(c) => (
                &c.identifier,
                c.status.as_ref().and_then(|s| s.value.as_deref()),
                c.subject.as_deref(),
            ),
            R::Task(t) => (&t.identifier, t.status.value.as_deref(), t.r#for.as_deref()),
            _ => return None,
        };
        let row_id = identifiers.iter().find_map(|i| {
            let system = i.system.as_ref()?.value.as_deref()?;
            (system == row_id_system)
                .then(|| Some((system.to_owned(), i.value.as_ref()?.value.clone()?)))?
        });
        let patient = who
            .and_then(|w| w.identifier.as_deref())
            .and_then(|i| i.value.as_ref()?.value.as_deref())
            .and_then(|v| PatientId::parse(v).ok());
        let (type_name, id) = crate::fhir::outbound::type_and_id(r);
        Some(KeptRelation {
            type_name,
            id,
            row_id,
            active: status == Some("active"),
            patient,
            json: crate::fhir::model::to_vec(r).ok()?.into_boxed_slice(),
        })
    }

    /// `Type/id`.
    pub(crate) fn reference(&self) -> String {
        format!("{}/{}", self.type_name, self.id)
    }

    /// Whether its status is active.
    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// The resource's JSON, parsed.
    pub(crate) fn value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }
}

impl crate::sync::engine::HeldRelation for KeptRelation {
    fn type_name(&self) -> &str {
        self.type_name
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn row_id(&self, system: &str) -> Option<&str> {
        self.row_id
            .as_ref()
            .filter(|(s, _)| s == system)
            .map(|(_, v)| v.as_str())
    }
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

use crate::fhir::inbound::PatientStub;

/// Records one resource in an account, named `Type/id`.
fn record(
    acc: &mut InputAccount,
    r: &crate::fhir::Resource,
    source: impl FnOnce() -> String,
    v: Verdict,
) {
    let t = crate::fhir::model::type_name(r);
    acc.record(
        t,
        || {
            let (_, id) = crate::fhir::outbound::type_and_id(r);
            format!("{t}/{id}")
        },
        source,
        v,
    );
}

/// A Patient is used when it gives a Swedish identity.
fn patient_verdict(stub: &PatientStub) -> Verdict {
    match (stub.id(), stub.systems_seen()) {
        (Some(Ok(_)), _) => Verdict::Used,
        (Some(Err(e)), _) => {
            Verdict::not_used_because("its identity number is not valid", e.to_owned())
        }
        (None, seen) => Verdict::not_used_because(
            "no Swedish identity number",
            format!("identifier systems seen: {}", seen.unwrap_or("none")),
        ),
    }
}

/// `Type/id` of every resource a CarePlan the rules read refers to (supportingInfo, author, contributor,
/// activity performers): the Consents and principals the plan rules read.
fn referenced_by_plans<'r>(
    m: &Mappings,
    idx: &Index,
    resources: impl Iterator<Item = &'r crate::fhir::Resource>,
) -> HashSet<String> {
    let reader = ContextReader::new(m);
    let mut out = HashSet::new();
    for r in resources {
        if let crate::fhir::Resource::CarePlan(cp) = r {
            // Only a plan the rules read makes what it names used.
            if !reader.is_read_plan(cp) {
                continue;
            }
            let performers = cp
                .activity
                .iter()
                .filter_map(|a| a.detail.as_ref())
                .flat_map(|d| d.performer.iter());
            let refs = cp
                .supporting_info
                .iter()
                .chain(cp.author.as_deref())
                .chain(cp.contributor.iter())
                .chain(performers);
            for x in refs {
                if let Some(found) = idx.get(x) {
                    let (t, id) = crate::fhir::outbound::type_and_id(&found);
                    out.insert(format!("{t}/{id}"));
                }
            }
        }
    }
    out
}

/// Practitioners and Organizations are used when they carry a valid HSA-id (the directory
/// contacts and rules resolve against) or a care plan names them (a principal); a Consent when
/// a care plan refers to it.
fn directory_verdict(r: &crate::fhir::Resource, in_plans: &HashSet<String>) -> Verdict {
    use crate::fhir::Resource as R;
    let (t, id) = crate::fhir::outbound::type_and_id(r);
    if matches!(r, R::Consent(_) | R::Organization(_) | R::Practitioner(_))
        && in_plans.contains(&format!("{t}/{id}"))
    {
        return Verdict::Used;
    }
    let by_hsa = |ids: &[fhirbolt::model::r4::types::Identifier]| match Inbound::hsa(ids) {
        Some(Ok(_)) => Verdict::Used,
        Some(Err(e)) => Verdict::not_used_because("its HSA-id is not valid", e),
        None => {
            let seen: Vec<&str> = ids
                .iter()
                .filter_map(|i| i.system.as_ref()?.value.as_deref())
                .collect();
            Verdict::not_used_because(
                "no HSA-id",
                format!(
                    "identifier systems seen: {}",
                    if seen.is_empty() {
                        "none".into()
                    } else {
                        seen.join(", ")
                    }
                ),
            )
        }
    };
    match r {
        R::Practitioner(p) => by_hsa(&p.identifier),
        R::Organization(o) => by_hsa(&o.identifier),
        R::Consent(_) => Verdict::not_used(
            "no CarePlan refers to it (a documented agreement is read through its care plan)",
        ),
        _ => Verdict::NotJudged,
    }
}

#[cfg(test)]
mod tests {
    use super::{common_prefix, head};

    /// The contacts, problems and verdicts of every patient-scoped resource of `dir`'s files,
    /// read over its directory kept in the form `R`.
    fn read_over<R: super::KeptForm>(dir: &std::path::Path) -> (usize, usize, String) {
        use crate::fhir::inbound::{Inbound, PatientTable};
        use crate::sources::ehr::stream::{EhrStream, Pass};
        let m = crate::mapping::Mappings::load(&crate::mapping::default_dir(), None, None)
            .expect("the shipped mappings load");
        let stream = EhrStream::open(dir).expect("the test's files open");
        let directory: super::EhrDirectory<PatientTable, R> =
            super::EhrDirectory::read_into(&stream, &|_| {}, PatientTable::default())
                .expect("the directory reads");
        let inbound = Inbound::new(&m);
        let mut idx = directory.index();
        inbound.remember_members(&mut idx);
        let per_chunk = |chunk: Vec<crate::sources::ehr::stream::Parsed>| {
            let resources: Vec<crate::fhir::Resource> = chunk
                .into_iter()
                .filter_map(|p| p.ok())
                .map(|(_, _, r)| r)
                .collect();
            let refs: Vec<&crate::fhir::Resource> = resources.iter().collect();
            let read = inbound.contacts(&idx, &refs);
            (
                read.contacts.len(),
                read.problems.len(),
                format!(
                    "{:?}\n{:?}\n{:?}\n",
                    read.contacts, read.problems, read.verdicts
                ),
            )
        };
        let mut out = (0, 0, String::new());
        stream
            .read_chunks(Pass::PatientScoped, &|_| {}, &per_chunk, &mut |reads| {
                for (contacts, problems, text) in reads {
                    out.0 += contacts;
                    out.1 += problems;
                    out.2.push_str(&text);
                }
            })
            .expect("the patient-scoped pass reads");
        (out.0, out.1, out.2)
    }

    #[test]
    fn a_directory_kept_as_json_reads_every_contact_and_problem_as_the_directory_parsed() {
        use serde_json::json;
        let tmp = tempfile::tempdir().unwrap();
        let hsa = |v: &str| json!([{"system": "urn:oid:1.2.752.129.2.1.4.1", "value": v}]);
        let fvk = json!([{"coding": [{
            "system": "https://terminologitjansten.inera.se/inera-kodverksforvaltning/kodverk/kv_typ_av_fast_kontakt",
            "code": "1"}]}]);
        let category = json!([{"coding": [{
            "system": "https://fhir.inera.se/ig/careteam/CodeSystem/typ-av-careteam-cs",
            "code": "fast-kontakt"}]}]);
        let yrke = json!([{"coding": [{
            "system": "https://fhir.fastkontakt.example/CodeSystem/yrke", "code": "lakare"}]}]);
        let role = |id: &str, p: &str, o: &str| {
            json!({"resourceType": "PractitionerRole", "id": id,
                "identifier": [{"system": "https://fhir.fastkontakt.example/NamingSystem/medarbetaruppdrag",
                    "value": format!("{id}|{o}")}],
                "practitioner": {"reference": p}, "organization": {"reference": o}, "code": yrke})
        };
        let team = |id: &str, subject: &str, member: serde_json::Value| {
            let mut participant = json!({"role": fvk, "member": member});
            if id == "ct4" {
                participant["onBehalfOf"] = json!({"reference": "Organization/a"});
            }
            json!({"resourceType": "CareTeam", "id": id, "status": "active", "category": category,
                "subject": {"reference": subject}, "period": {"start": "2025-01-01"},
                "participant": [participant]})
        };
        let r = |x: &str| json!({"reference": x});
        let mut contained = team("ct10", "Patient/pt1", r("#r"));
        contained["contained"] = json!([
            {"resourceType": "Practitioner", "id": "p", "identifier": hsa("SE2321000016-P0010")},
            {"resourceType": "PractitionerRole", "id": "r", "practitioner": r("#p"),
                "organization": r("Organization/a")}
        ]);
        let lines = [
            json!({"resourceType": "Organization", "id": "a", "identifier": hsa("SE2321000016-E0001"),
                "name": "Vårdcentralen A", "type": [{"coding": [{
                    "system": "https://fhir.fastkontakt.example/CodeSystem/enhetstyp", "code": "vardcentral"}]}]}),
            json!({"resourceType": "Organization", "id": "b", "name": "No HSA-id"}),
            json!({"resourceType": "Practitioner", "id": "p1", "identifier": hsa("SE2321000016-P0001"),
                "name": [{"given": ["Ada"], "family": "Berg"}],
                "qualification": [{"code": {"coding": [{"system": "urn:oid:1.2.752.116.3.1.3", "code": "LK"}]}}]}),
            json!({"resourceType": "Practitioner", "id": "p2", "name": [{"text": "No HSA-id"}]}),
            json!({"resourceType": "Practitioner", "id": "p3", "identifier": hsa("SE2321000016-P0003")}),
            json!({"resourceType": "Practitioner", "id": "p4", "identifier": hsa("SE2321000016-P0004")}),
            role("r1", "Practitioner/p1", "Organization/a"),
            role("r2", "Practitioner/p2", "Organization/a"),
            role("r3", "Practitioner/p3", "Organization/a"),
            role("r4", "Practitioner/p1", "Organization/b"),
            json!({"resourceType": "Patient", "id": "pt1",
                "identifier": [{"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "200810232207"}],
                "generalPractitioner": [r("Organization/a")]}),
            json!({"resourceType": "Patient", "id": "pt2",
                "identifier": [{"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "201210120257"}],
                "generalPractitioner": [r("Organization/b")]}),
            team("ct1", "Patient/pt1", r("PractitionerRole/r1")),
            team("ct2", "Patient/pt1", r("PractitionerRole/r2")),
            team("ct3", "Patient/pt2", r("Practitioner/p3")),
            team("ct4", "Patient/pt2", r("Practitioner/p4")),
            team("ct5", "Patient/pt1", r("http://ehr.example/fhir/PractitionerRole/r4")),
            team("ct6", "Patient/pt1", r("PractitionerRole/missing")),
            team("ct7", "Patient/pt2", r("Organization/a")),
            team("ct8", "Patient/pt2", r("PractitionerRole?identifier=https://fhir.fastkontakt.example/NamingSystem/medarbetaruppdrag%7Cr3|Organization/a")),
            team("ct9", "Patient/pt1", r("Patient/pt2")),
            contained,
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(tmp.path().join("edge.ndjson"), text).unwrap();
        // With the handwritten region beside it: shapes written by hand, as vendors write them.
        let hand = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/handwritten/ehr");
        for f in std::fs::read_dir(&hand).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
        }
        let parsed = read_over::<crate::fhir::Resource>(tmp.path());
        let held = read_over::<crate::fhir::inbound::HeldResource>(tmp.path());
        // Contacts and problems both met, so the comparison covers each kind of reading.
        assert!(
            parsed.0 >= 60 && parsed.1 >= 5,
            "{} contacts, {} problems\n{}",
            parsed.0,
            parsed.1,
            parsed.2
        );
        assert_eq!(parsed.2, held.2);
    }

    #[test]
    fn texts_sorted_by_their_heads_then_whole_sort_as_by_the_whole_texts() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Short and long texts, prefixes of each other, a NUL byte (what the zero padding
        // stands for), letters of two and three bytes, and a long shared prefix.
        let mut texts: Vec<String> = [
            "",
            "a",
            "a\0",
            "a\0b",
            "ab",
            "CareTeam/",
            "CareTeam/1",
            "Task/ä",
            "Task/å",
            "Task/€",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let alphabet = ['a', 'b', '\0', 'ä', '€', '0', '/'];
        for _ in 0..3000 {
            let stem = [
                "CareTeam/",
                "CareTeam/ct-0000",
                "Task/",
                "CareTeam/ct-000012345678",
            ][rng.gen_range(0..4)];
            let tail: String = (0..rng.gen_range(0..24))
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            texts.push(format!("{stem}{tail}"));
        }
        for set in [
            texts.clone(),
            texts
                .iter()
                .filter(|t| t.starts_with("CareTeam/ct-"))
                .cloned()
                .collect(),
        ] {
            let shared = set
                .iter()
                .map(String::as_str)
                .reduce(|a, b| &a[..common_prefix(a, b)])
                .map_or(0, str::len);
            let mut by_head = set.clone();
            by_head.sort_by(|a, b| head(a, shared).cmp(&head(b, shared)).then_with(|| a.cmp(b)));
            let mut whole = set.clone();
            whole.sort();
            assert_eq!(by_head, whole, "shared prefix {shared}");
            // Heads that differ order as the texts do.
            for w in whole.windows(2) {
                assert!(
                    head(&w[0], shared) <= head(&w[1], shared),
                    "{:?} {:?}",
                    w[0],
                    w[1]
                );
            }
        }
        assert_eq!(common_prefix("Task/ä", "Task/å"), 5, "not inside a letter");
        assert_eq!(common_prefix("abc", "abd"), 2);
    }
}
