//! Source: the EHR's side, read and grouped by patient: from files (streamed in passes, a slice
//! of the patients at a time), from a server, or from resources at hand. The directory
//! (Practitioner, PractitionerRole, Organization, Consent, CarePlan) and Patient stubs first.

use crate::domain::{FixedContact, PatientId};
use crate::fhir::context::{ContextReader, EhrFacts};
use crate::fhir::inbound::{Inbound, Index};
use crate::mapping::Mappings;
use crate::sources::ehr::files::{FhirFileError, FhirFiles};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

/// A patient's place in the partitions (and in the register reader's sets of seen patients).
pub(crate) fn patient_key(p: &PatientId) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// The EHR side, loaded and grouped by patient.
#[derive(Default)]
pub struct EhrSide {
    pub(crate) contacts: HashMap<PatientId, Vec<(FixedContact, String)>>,
    pub(crate) facts: EhrFacts,
    /// Resources that could not be read at all, or contacts that could not be understood.
    pub(crate) problems: Vec<String>,
    /// (patient text, message) of identifiers that failed their check.
    pub(crate) invalid_identifiers: Vec<(String, String)>,
    pub(crate) contact_count: usize,
    /// The product's own relations (CareTeam/Task with its tag), as JSON, when asked for.
    pub(crate) product: Vec<serde_json::Value>,
}

/// A slice of the region's patients. A region too large for memory is checked one slice at a
/// time: each pass keeps only its slice's EHR data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

impl Partition {
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
    pub(crate) fn read(
        stream: &crate::sources::ehr::stream::EhrStream,
        on_bytes: &dyn Fn(u64),
    ) -> Result<Self, FhirFileError> {
        use crate::fhir::inbound::PatientStub;
        let mut dir = EhrDirectory::default();
        stream.read(
            crate::sources::ehr::stream::Pass::Directory,
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

    pub(crate) fn index(&self) -> Index<'_> {
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
    pub(crate) fn all(&self) -> impl Iterator<Item = &crate::fhir::Resource> {
        self.resources.iter().map(|(_, r)| r)
    }

    /// Each valid patient identity with the id of its Patient resource.
    pub(crate) fn patient_ids(&self) -> HashMap<PatientId, String> {
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
        let mut values = Vec::new();
        for t in crate::sources::ehr::fetch::TYPES {
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
    pub(crate) fn from_stream(
        stream: &crate::sources::ehr::stream::EhrStream,
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
            crate::sources::ehr::stream::Pass::PatientScoped,
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

    pub(crate) fn from_resources<'r>(
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
