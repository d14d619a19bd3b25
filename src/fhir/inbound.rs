//! FHIR R4 → domain: CareTeams (and declined-offer Tasks) in the fast-kontakt shape become
//! `FixedContact`s, resolving Patient, PractitionerRole, Practitioner and Organization within
//! the same set of resources. Both Swedish identifier styles are read. What cannot be read is
//! reported with the resource and element, never guessed.

use super::outbound::{
    EXT_NOT_LICENSED, EXT_REGISTER_CHANGE, PROFILE_DECLINED_OFFER, PROFILE_FIXED_CONTACT,
    PROFILE_OFFER, PROFILE_TREATING_ROLE,
};
pub(crate) use super::patients::{PatientLookup, PatientStub, PatientTable};
use super::systems::{self, IdentifierKind};
use crate::domain::contact::{
    ContactKind, ContactStatus, FixedContact, Period, Registration, RowId, TreatingRole,
};
use crate::domain::identity::{HsaId, PatientId, PatientIdKind};
use crate::domain::staff::{Licence, Profession, Staff};
use crate::domain::unit::{CareUnit, UnitKind};
use crate::mapping::terminology::ids;
use crate::mapping::Mappings;
use crate::sources::ehr::account::Verdict;
use chrono::NaiveDate;
use fhirbolt::model::r4::resources::{
    CareTeam, Organization, Practitioner, PractitionerRole, Task, TaskInputValue,
};
use fhirbolt::model::r4::types::{CodeableConcept, ExtensionValue, Identifier, Reference};
use fhirbolt::model::r4::Resource;
use std::borrow::Cow;
// Hashed fast (foldhash): a region's index is looked up several times per contact, by
// reference texts of 40-odd bytes.
use foldhash::HashMap;
use std::sync::Arc;

/// The shape of a role coded only in SNOMED CT.
const SNOMED_ONLY: &str = "role: SNOMED CT only (read through the product's ConceptMaps)";

/// The OID form of KV typ av fast kontakt, read as an alias of its canonical URL.
const KV_TYP_AV_FAST_KONTAKT_OID: &str = "urn:oid:1.2.752.129.5.1.69";

/// Something in the FHIR data that the product could not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InboundProblem {
    /// `Type/id` of the resource.
    pub(crate) resource: String,
    /// FHIRPath-like element, e.g. `CareTeam.participant[0].role`.
    pub(crate) element: String,
    pub(crate) reason: String,
    /// The problem is an invalid identifier (FK-R16).
    pub(crate) identifier: bool,
}

impl std::fmt::Display for InboundProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.resource, self.element, self.reason)
    }
}

/// Contacts read from FHIR, plus what could not be read.
#[derive(Debug, Default)]
pub struct FhirContacts {
    /// The contacts read.
    pub contacts: Vec<FixedContact>,
    /// `Type/id` of each contact's resource, parallel to `contacts`.
    pub(crate) sources: Vec<Arc<str>>,
    /// What could not be read, at the element.
    pub problems: Vec<InboundProblem>,
    /// The judgement of each resource given, in order (used, or why not).
    pub(crate) verdicts: Vec<Verdict>,
    /// Shapes recognised and mapped (a vendor sees which of its shapes were met).
    pub(crate) shapes: Vec<&'static str>,
}

fn text(s: &Option<fhirbolt::model::r4::types::String>) -> Option<&str> {
    s.as_ref().and_then(|v| v.value.as_deref())
}

fn codings(cc: &CodeableConcept) -> impl Iterator<Item = (&str, &str)> {
    cc.coding.iter().filter_map(|c| {
        Some((
            c.system.as_ref()?.value.as_deref()?,
            c.code.as_ref()?.value.as_deref()?,
        ))
    })
}

/// The first and last day of a FHIR Period, where they are dates.
fn dates_of(
    p: Option<&fhirbolt::model::r4::types::Period>,
) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let day =
        |d: Option<&fhirbolt::model::r4::types::DateTime>| date(d.and_then(|d| d.value.as_deref()));
    (
        day(p.and_then(|p| p.start.as_ref())),
        day(p.and_then(|p| p.end.as_ref())),
    )
}

fn date(s: Option<&str>) -> Option<NaiveDate> {
    let s = s?;
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

/// A directory resource kept as its JSON: a parsed Practitioner or PractitionerRole is ~3.5 KB
/// held, its JSON ~0.6 KB. The index knows it by the keys taken while it was parsed; a reader
/// that needs more than the index's memos parses it again (`Slot::resource`).
pub struct HeldResource {
    type_name: &'static str,
    /// `Type/id` and its identifiers' conditional keys (`Type?identifier=system|value`).
    keys: Box<[Box<str>]>,
    /// A PractitionerRole's reference to its Practitioner (the Practitioner's own role).
    practitioner: Option<Box<str>>,
    json: Box<[u8]>,
}

impl HeldResource {
    /// `r` written as JSON with what the index needs of it (fhirbolt's writer; what it wrote
    /// is read back by the same strict reader).
    pub(crate) fn of(r: &Resource) -> Result<Self, super::model::FhirError> {
        let mut json = Vec::new();
        super::model::write_to(r, &mut json)?;
        let practitioner = match r {
            Resource::PractitionerRole(role) => role
                .practitioner
                .as_deref()
                .and_then(|p| text(&p.reference))
                .map(Into::into),
            _ => None,
        };
        Ok(HeldResource {
            type_name: super::model::type_name(r),
            keys: keys_of(r).into_iter().map(String::into_boxed_str).collect(),
            practitioner,
            json: json.into_boxed_slice(),
        })
    }

    /// The resource, parsed again. It was read by the same strict reader before it was
    /// written, so a failure here is the product's own fault: logged, and the reference is
    /// then told as unresolved where it is named.
    fn resource(&self) -> Option<Resource> {
        match super::model::parse_as(self.type_name, &self.json) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(
                    resource_type = self.type_name,
                    error = %e,
                    "a directory resource kept as JSON could not be read back"
                );
                None
            }
        }
    }
}

/// Where the index finds a resource: parsed, or kept as JSON.
#[derive(Clone, Copy)]
pub enum Slot<'r> {
    /// A resource parsed.
    Parsed(&'r Resource),
    /// A resource kept as its JSON.
    Held(&'r HeldResource),
}

impl<'r> Slot<'r> {
    /// The resource (a held one parsed for the caller).
    pub(crate) fn resource(self) -> Option<Cow<'r, Resource>> {
        match self {
            Slot::Parsed(r) => Some(Cow::Borrowed(r)),
            Slot::Held(h) => h.resource().map(Cow::Owned),
        }
    }

    /// What the index's memos know the resource by.
    fn address(self) -> usize {
        match self {
            Slot::Parsed(r) => r as *const Resource as usize,
            Slot::Held(h) => h as *const HeldResource as usize,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Slot::Parsed(r) => super::model::type_name(r),
            Slot::Held(h) => h.type_name,
        }
    }
}

/// Resources by every key a reference may use: `Type/id`, and the entry's fullUrl.
pub struct Index<'r> {
    by_key: HashMap<Cow<'r, str>, Slot<'r>>,
    /// The first PractitionerRole of each Practitioner (by the Practitioner's address).
    roles_of: HashMap<usize, Slot<'r>>,
    /// Patients are kept as stubs: a region's Patients are many, and the contacts need only
    /// their identity, listing and death.
    patients: PatientTable,
    /// A streamed read's Patients, in memory or spilled (looked up after `patients`).
    table: Option<&'r dyn PatientLookup>,
    /// A resource's own contained resources layer over the shared index (`#id` references).
    parent: Option<&'r Index<'r>>,
    /// The staff and unit behind each PractitionerRole, Practitioner and Organization of this
    /// index that read without a problem, by its address (`Inbound::remember_members`): a
    /// region's million CareTeams name a few thousand of them, each read once instead of once
    /// per contact.
    members: HashMap<usize, (Option<Staff>, Option<CareUnit>)>,
}

impl<'r> Index<'r> {
    /// An index of `resources` (with the fullUrl each came with).
    pub fn new(resources: impl IntoIterator<Item = (Option<String>, &'r Resource)>) -> Self {
        Self::of_slots(
            resources
                .into_iter()
                .map(|(u, r)| (u.map(Cow::Owned), Slot::Parsed(r))),
        )
    }

    /// An index of resources parsed or kept as JSON (with the fullUrl each came with).
    pub(crate) fn of_slots(
        resources: impl IntoIterator<Item = (Option<Cow<'r, str>>, Slot<'r>)>,
    ) -> Self {
        let mut idx = Index {
            parent: None,
            by_key: HashMap::default(),
            roles_of: HashMap::default(),
            patients: PatientTable::default(),
            table: None,
            members: HashMap::default(),
        };
        let mut roles = Vec::new();
        for (full_url, slot) in resources {
            match slot {
                Slot::Parsed(Resource::Patient(p)) => {
                    idx.add_patient(
                        full_url.map(Cow::into_owned),
                        p.id.as_ref().and_then(|i| i.value.as_deref()),
                        PatientStub::of(p),
                    );
                    continue;
                }
                Slot::Parsed(r) => {
                    for key in keys_of(r) {
                        idx.by_key.insert(Cow::Owned(key), slot);
                    }
                    if let Resource::PractitionerRole(role) = r {
                        let named = role
                            .practitioner
                            .as_deref()
                            .and_then(|p| text(&p.reference));
                        roles.push((named, slot));
                    }
                }
                Slot::Held(h) => {
                    for key in h.keys.iter() {
                        idx.by_key.insert(Cow::Borrowed(&**key), slot);
                    }
                    if h.type_name == "PractitionerRole" {
                        roles.push((h.practitioner.as_deref(), slot));
                    }
                }
            }
            if let Some(u) = full_url {
                idx.by_key.insert(u, slot);
            }
        }
        // A Practitioner's own role: its unit, when a CareTeam names the Practitioner alone.
        idx.add_roles(roles);
        idx
    }

    /// The index with a streamed read's Patients (a read keeps no Patient resources).
    pub(crate) fn with_patients(mut self, table: &'r dyn PatientLookup) -> Self {
        self.table = Some(table);
        self
    }

    /// Adds a Patient known only by its stub.
    pub(crate) fn add_patient(
        &mut self,
        full_url: Option<String>,
        id: Option<&str>,
        stub: PatientStub,
    ) {
        self.patients.push(full_url, id, stub);
    }

    /// Adds a Patient stub under the reference text that names it (e.g. `Patient/x`).
    pub(crate) fn add_patient_ref(&mut self, reference: &str, stub: PatientStub) {
        self.add_patient(Some(reference.to_owned()), None, stub);
    }

    /// Every Patient stub, once each (full URLs and ids can name the same one).
    pub(crate) fn patients(&self) -> impl Iterator<Item = Cow<'_, PatientStub>> {
        self.patients
            .stubs()
            .chain(self.table.into_iter().flat_map(|t| t.stubs()))
    }

    fn lookup_text<'s, T>(map: &'s HashMap<Cow<'r, str>, T>, r: &str) -> Option<&'s T> {
        if let Some(found) = map.get(r) {
            return Some(found);
        }
        // A conditional reference inside a transaction Bundle: `Type?identifier=system|value`.
        if r.contains("?identifier=") {
            return map.get(r.replace("%7C", "|").replace("%7c", "|").as_str());
        }
        let mut parts = r.rsplit('/');
        let (id, t) = (parts.next()?, parts.next()?);
        map.get(format!("{t}/{id}").as_str())
    }

    /// The PractitionerRole of the Practitioner at `practitioner` (a slot's address).
    fn role_of(&self, practitioner: usize) -> Option<Slot<'r>> {
        match self.roles_of.get(&practitioner) {
            Some(&role) => Some(role),
            None => self.parent.and_then(|p| p.role_of(practitioner)),
        }
    }

    /// Each PractitionerRole among `roles` (with the reference to its Practitioner) as its
    /// Practitioner's role (the first one wins).
    fn add_roles(&mut self, roles: Vec<(Option<&str>, Slot<'r>)>) {
        for (practitioner, role) in roles {
            if let Some(p) = practitioner.and_then(|p| Self::lookup_text(&self.by_key, p)) {
                self.roles_of.entry(p.address()).or_insert(role);
            }
        }
    }

    /// The shared index with a resource's contained resources over it, named `#id`.
    pub(crate) fn with_contained(parent: &'r Index<'r>, contained: &'r [Resource]) -> Index<'r> {
        let mut idx = Index::new(std::iter::empty());
        let mut roles = Vec::new();
        for r in contained {
            let (_, id) = super::outbound::type_and_id(r);
            idx.by_key
                .insert(Cow::Owned(format!("#{id}")), Slot::Parsed(r));
            match r {
                Resource::Patient(p) => {
                    idx.add_patient(Some(format!("#{id}")), None, PatientStub::of(p))
                }
                // Roles among the contained resources name contained Practitioners.
                Resource::PractitionerRole(role) => roles.push((
                    role.practitioner
                        .as_deref()
                        .and_then(|p| text(&p.reference)),
                    Slot::Parsed(r),
                )),
                _ => {}
            }
        }
        idx.add_roles(roles);
        idx.parent = Some(parent);
        idx
    }

    /// Where a literal reference leads: relative, absolute (its last two segments) or urn:uuid.
    pub(crate) fn slot(&self, reference: &Reference) -> Option<Slot<'r>> {
        self.slot_text(text(&reference.reference)?)
    }

    fn slot_text(&self, reference: &str) -> Option<Slot<'r>> {
        Self::lookup_text(&self.by_key, reference)
            .copied()
            .or_else(|| self.parent?.slot_text(reference))
    }

    /// Resolves a literal reference: relative, absolute (its last two segments) or urn:uuid.
    pub(crate) fn get(&self, reference: &Reference) -> Option<Cow<'r, Resource>> {
        self.slot(reference)?.resource()
    }

    /// Resolves a reference to a Patient.
    pub(crate) fn patient(&self, reference: &Reference) -> Option<Cow<'_, PatientStub>> {
        let r = text(&reference.reference)?;
        self.patients
            .find(r)
            .or_else(|| self.table?.find(r))
            .or_else(|| self.parent?.patient(reference))
    }
}

/// Reads fixed contacts from FHIR under the mappings.
pub struct Inbound<'m> {
    m: &'m Mappings,
}

struct Ctx<'a> {
    resource: String,
    problems: &'a mut Vec<InboundProblem>,
}

impl Ctx<'_> {
    fn problem(&mut self, element: &str, reason: impl Into<String>) {
        self.push(element, reason.into(), false);
    }
    fn identifier_problem(&mut self, element: &str, reason: impl Into<String>) {
        self.push(element, reason.into(), true);
    }
    fn push(&mut self, element: &str, reason: String, identifier: bool) {
        self.problems.push(InboundProblem {
            resource: self.resource.clone(),
            element: element.into(),
            reason,
            identifier,
        });
    }
}

impl<'m> Inbound<'m> {
    /// A reader under the mappings.
    pub fn new(m: &'m Mappings) -> Self {
        Inbound { m }
    }

    pub(crate) fn hsa(identifiers: &[Identifier]) -> Option<Result<HsaId, String>> {
        identifiers.iter().find_map(|i| {
            let sys = i.system.as_ref()?.value.as_deref()?;
            (systems::classify(sys) == IdentifierKind::Hsa).then(|| {
                let v = text(&i.value).unwrap_or("");
                HsaId::parse(v).map_err(|e| format!("HSA-id '{v}': {e}"))
            })
        })
    }

    /// A patient identity from identifiers in either style.
    pub(crate) fn patient_id(identifiers: &[Identifier]) -> Option<Result<PatientId, String>> {
        identifiers.iter().find_map(|i| {
            let sys = i.system.as_ref()?.value.as_deref()?;
            let v = text(&i.value).unwrap_or("");
            match systems::classify(sys) {
                kind @ (IdentifierKind::Personnummer | IdentifierKind::Samordningsnummer) => {
                    let masked = || crate::sources::register::mask(v);
                    Some(
                        PatientId::parse(v)
                            .map_err(|e| format!("{}: {e}", masked()))
                            .and_then(|id| match (kind, id.kind()) {
                                (
                                    IdentifierKind::Personnummer,
                                    PatientIdKind::Samordningsnummer,
                                ) => Err(format!(
                                    "{}: a samordningsnummer under the personnummer system {sys}",
                                    masked()
                                )),
                                (
                                    IdentifierKind::Samordningsnummer,
                                    PatientIdKind::Personnummer,
                                ) => Err(format!(
                                    "{}: a personnummer under the samordningsnummer system {sys}",
                                    masked()
                                )),
                                _ => Ok(id),
                            }),
                    )
                }
                IdentifierKind::NationalReservnummer => {
                    Some(PatientId::reserv(sys, v).map_err(|e| e.to_string()))
                }
                _ => None,
            }
        })
    }

    fn patient_of(
        &self,
        idx: &Index,
        subject: Option<&Reference>,
        ctx: &mut Ctx,
        element: &str,
    ) -> Option<(PatientId, Option<HsaId>)> {
        let Some(subject) = subject else {
            ctx.problem(element, "missing: a fixed contact names its patient");
            return None;
        };
        let stub = idx.patient(subject);
        let stub = stub.as_deref();
        let listing = stub.and_then(|p| self.listing_of(idx, p));
        let from_reference = || {
            subject
                .identifier
                .as_deref()
                .and_then(|i| Self::patient_id(std::slice::from_ref(i)))
                .or_else(|| conditional_identity(text(&subject.reference)?))
        };
        let from_stub = stub.and_then(|s| Some(s.id()?.cloned().map_err(str::to_owned)));
        match from_stub.or_else(from_reference) {
            Some(Ok(id)) => Some((id, listing)),
            Some(Err(e)) => {
                ctx.identifier_problem(element, e);
                None
            }
            None => {
                let name = text(&subject.reference).unwrap_or("the reference");
                match stub.and_then(PatientStub::systems_seen) {
                    Some(seen) => ctx.problem(
                        element,
                        format!("subject {name} has no Swedish identity number (identifier systems seen: {seen})"),
                    ),
                    None if stub.is_none() && subject.reference.is_some() => ctx.problem(
                        element,
                        format!("reference {name} cannot be resolved, and it carries no Swedish identity number"),
                    ),
                    None => ctx.problem(element, "no personnummer, samordningsnummer or reservnummer on the patient or the reference"),
                }
                None
            }
        }
    }

    /// The listing unit: the Organization among Patient.generalPractitioner.
    pub(crate) fn listing_of(&self, idx: &Index, p: &PatientStub) -> Option<HsaId> {
        p.general_practitioner().iter().find_map(|r| {
            let slot = idx
                .slot_text(r)
                .filter(|s| s.type_name() == "Organization")?;
            // The unit remembered is the Organization's HSA-id read without a problem.
            if let Some((_, Some(unit))) = idx.members.get(&slot.address()) {
                return Some(unit.hsa.clone());
            }
            match slot.resource()?.as_ref() {
                Resource::Organization(o) => Self::hsa(&o.identifier).and_then(Result::ok),
                _ => None,
            }
        })
    }

    /// The register's own code system for a column (its ConceptMap's source), where a code the
    /// product's CodeSystem lacks is written as the register had it.
    fn unlisted_system(&self, map_url: &str) -> Option<&str> {
        self.m
            .terminology
            .map_by_url(map_url)
            .map(|m| m.source.as_str())
            .filter(|s| !s.is_empty())
    }

    fn kind_from_role(&self, cc: &CodeableConcept) -> Option<ContactKind> {
        self.kind_and_shape(cc).map(|(k, _)| k)
    }

    /// The contact kind a role codes, and the shape it was coded in: KV typ av fast kontakt
    /// (URL or OID), the treating-role CodeSystem, or SNOMED CT only (read through the
    /// product's ConceptMaps backwards).
    fn kind_and_shape(&self, cc: &CodeableConcept) -> Option<(ContactKind, &'static str)> {
        let t = &self.m.terminology;
        let kv = t.url(ids::KV_TYP_AV_FAST_KONTAKT);
        let roles = t.url(ids::BEHANDLANDE_ROLL);
        let unlisted_roles = self.unlisted_system(&self.m.register.code_maps.role);
        let kontakttyp = |k: &str| match k {
            "flk" => Some(ContactKind::Flk),
            "fvk" => Some(ContactKind::Fvk {
                coordinating: false,
                at_discharge: false,
            }),
            "fvk-samordningsansvar" => Some(ContactKind::Fvk {
                coordinating: true,
                at_discharge: false,
            }),
            _ => None,
        };
        let coded = codings(cc).find_map(|(sys, code)| {
            if sys == kv {
                kontakttyp(t.map(ids::MAP_KV).reverse(code)?)
                    .map(|k| (k, "role: KV typ av fast kontakt"))
            } else if sys == KV_TYP_AV_FAST_KONTAKT_OID {
                kontakttyp(t.map(ids::MAP_KV).reverse(code)?)
                    .map(|k| (k, "role: KV typ av fast kontakt as an OID"))
            } else if sys == roles {
                t.treating_role(code).map(|r| {
                    (
                        ContactKind::TreatingRole(r),
                        "role: treating-role CodeSystem",
                    )
                })
            } else if Some(sys) == unlisted_roles {
                // A role the region's CodeSystem lacks, written as the register had it.
                Some((
                    ContactKind::TreatingRole(TreatingRole::unlisted(code)),
                    "role: the register's own role code",
                ))
            } else {
                None
            }
        });
        coded.or_else(|| {
            let kontakt = t.map(ids::MAP_KONTAKTTYP_SNOMED);
            let roll = t.map(ids::MAP_ROLL_SNOMED);
            codings(cc).find_map(|(sys, code)| {
                if sys == kontakt.target {
                    if let Some(k) = kontakt.reverse(code).and_then(&kontakttyp) {
                        return Some((k, SNOMED_ONLY));
                    }
                }
                if sys == roll.target {
                    return roll
                        .reverse_exact(code)
                        .and_then(|c| t.treating_role(c))
                        .map(|r| (ContactKind::TreatingRole(r), SNOMED_ONLY));
                }
                None
            })
        })
    }

    fn unit_of(&self, o: &Organization, ctx: &mut Ctx, element: &str) -> Option<CareUnit> {
        let hsa = match Self::hsa(&o.identifier) {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                ctx.identifier_problem(element, e);
                return None;
            }
            None => {
                ctx.problem(element, "the Organization has no HSA-id");
                return None;
            }
        };
        let enhetstyp = self.m.terminology.url(ids::ENHETSTYP);
        let kind = o
            .r#type
            .iter()
            .flat_map(codings)
            .find_map(|(s, c)| (s == enhetstyp).then(|| UnitKind::from_code(c)).flatten());
        Some(CareUnit {
            hsa,
            name: text(&o.name).map(str::to_owned),
            kind,
        })
    }

    fn staff_of(
        &self,
        role: &PractitionerRole,
        p: Option<&Practitioner>,
        ctx: &mut Ctx,
        element: &str,
    ) -> Option<Staff> {
        let t = &self.m.terminology;
        let Some(p) = p else {
            ctx.problem(
                element,
                "PractitionerRole.practitioner does not resolve to a Practitioner in the data",
            );
            return None;
        };
        let hsa = match Self::hsa(&p.identifier) {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                ctx.identifier_problem(element, e);
                return None;
            }
            None => {
                ctx.problem(element, "the Practitioner has no HSA-id");
                return None;
            }
        };
        let name = p.name.first().and_then(|n| {
            text(&n.text).map(str::to_owned).or_else(|| {
                let given: Vec<&str> = n.given.iter().filter_map(|g| g.value.as_deref()).collect();
                let family = text(&n.family);
                let full = given
                    .into_iter()
                    .chain(family)
                    .collect::<Vec<_>>()
                    .join(" ");
                (!full.is_empty()).then_some(full)
            })
        });
        let yrke = t.url(ids::YRKE);
        let unlisted_yrke = self.unlisted_system(&self.m.register.code_maps.profession);
        let hosp = &t.map(ids::MAP_YRKE_HOSP);
        let qualification_profession = p
            .qualification
            .iter()
            .flat_map(|q| codings(&q.code))
            .find_map(|(s, c)| {
                if s == hosp.target {
                    hosp.reverse(c).and_then(|c| t.profession(c))
                } else if s == yrke {
                    t.profession(c)
                } else if Some(s) == unlisted_yrke {
                    Some(Profession::unlisted(c))
                } else {
                    None
                }
            });
        let profession = role
            .code
            .iter()
            .flat_map(codings)
            .find_map(|(s, c)| {
                if s == yrke {
                    t.profession(c)
                } else if Some(s) == unlisted_yrke {
                    Some(Profession::unlisted(c))
                } else {
                    None
                }
            })
            .or(qualification_profession);
        let not_licensed_url = format!("{}/{EXT_NOT_LICENSED}", self.m.target.extension_base);
        let licence = if qualification_profession.is_some() {
            Licence::Licensed
        } else if p.extension.iter().any(|e| e.url == not_licensed_url) {
            Licence::NotLicensed
        } else {
            Licence::Unknown
        };
        let spec_sys = t.url(ids::SPECIALITET);
        let spec_snomed = t.map(ids::MAP_SPECIALITET_SNOMED);
        let specialties = role
            .specialty
            .iter()
            .filter_map(|cc| {
                codings(cc).find_map(|(s, c)| {
                    if s == spec_sys {
                        t.specialty(c)
                    } else if s == spec_snomed.target {
                        spec_snomed.reverse(c).and_then(|c| t.specialty(c))
                    } else {
                        None
                    }
                })
            })
            .collect();
        Some(Staff {
            hsa,
            name,
            profession,
            licence,
            specialties,
        })
    }

    fn registration_of(
        &self,
        exts: &[fhirbolt::model::r4::types::Extension],
    ) -> Option<Registration> {
        let url = format!("{}/{EXT_REGISTER_CHANGE}", self.m.target.extension_base);
        let e = exts.iter().find(|e| e.url == url)?;
        let mut reg = Registration { at: None, by: None };
        for part in &e.extension {
            match (part.url.as_str(), &part.value) {
                ("tidpunkt", Some(ExtensionValue::DateTime(d))) => {
                    reg.at = d
                        .value
                        .as_deref()
                        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok());
                }
                ("av", Some(ExtensionValue::Identifier(i))) => {
                    reg.by = text(&i.value).and_then(|v| HsaId::parse(v).ok());
                }
                _ => {}
            }
        }
        Some(reg)
    }

    fn row_id(&self, identifiers: &[Identifier], fallback: &str) -> RowId {
        self.register_row_id(identifiers).unwrap_or_else(|| {
            RowId::new(fallback).unwrap_or_else(|| RowId::new("?").expect("non-empty"))
        })
    }

    /// The register's row id among the identifiers, if one is there.
    fn register_row_id(&self, identifiers: &[Identifier]) -> Option<RowId> {
        identifiers
            .iter()
            .find(|i| {
                i.system.as_ref().and_then(|s| s.value.as_deref())
                    == Some(self.m.target.row_id_system.as_str())
            })
            .and_then(|i| text(&i.value))
            .and_then(RowId::new)
    }

    /// Staff and unit behind a reference to a PractitionerRole (or the unit alone, for an
    /// Organization reference).
    fn member(
        &self,
        idx: &Index,
        r: Option<&Reference>,
        ctx: &mut Ctx,
        element: &str,
    ) -> (Option<Staff>, Option<CareUnit>) {
        let found = r.and_then(|r| idx.slot(r));
        if let Some(known) = found.and_then(|f| idx.members.get(&f.address())) {
            return known.clone();
        }
        self.member_of(idx, found, r, ctx, element)
    }

    /// Reads every PractitionerRole, Practitioner and Organization of the index as a member
    /// once, and keeps those that read without a problem for `member` (one with a problem is
    /// read again where it is named, so the problem is told there). One held as JSON is parsed
    /// here for the moment of its reading, and not kept.
    pub fn remember_members(&self, idx: &mut Index) {
        const MEMBERS: [&str; 3] = ["PractitionerRole", "Practitioner", "Organization"];
        let mut members = HashMap::default();
        // A resource is under several keys; one that reads with a problem is not remembered,
        // and is still read once here (a held one parsed once).
        let mut read_once = foldhash::HashSet::default();
        for &slot in idx.by_key.values() {
            if !MEMBERS.contains(&slot.type_name()) || !read_once.insert(slot.address()) {
                continue;
            }
            let mut problems = Vec::new();
            let mut ctx = Ctx {
                resource: String::new(),
                problems: &mut problems,
            };
            let read = self.member_of(idx, Some(slot), None, &mut ctx, "");
            if problems.is_empty() {
                members.insert(slot.address(), read);
            }
        }
        idx.members = members;
    }

    /// Staff and unit behind a resolved member (`found`, what `r` names).
    fn member_of(
        &self,
        idx: &Index,
        found: Option<Slot<'_>>,
        r: Option<&Reference>,
        ctx: &mut Ctx,
        element: &str,
    ) -> (Option<Staff>, Option<CareUnit>) {
        let resource = found.and_then(Slot::resource);
        let organization =
            |r: Option<&Reference>, ctx: &mut Ctx| match r.and_then(|r| idx.get(r)).as_deref() {
                Some(Resource::Organization(o)) => {
                    self.unit_of(o, ctx, &format!("{element}.organization"))
                }
                _ => None,
            };
        match resource.as_deref() {
            Some(Resource::PractitionerRole(role)) => {
                let p = role.practitioner.as_deref().and_then(|r| idx.get(r));
                let p = match p.as_deref() {
                    Some(Resource::Practitioner(p)) => Some(&**p),
                    _ => None,
                };
                let staff = self.staff_of(role, p, ctx, element);
                (staff, organization(role.organization.as_deref(), ctx))
            }
            Some(Resource::Organization(o)) => (None, self.unit_of(o, ctx, element)),
            // A Practitioner directly: the unit comes from onBehalfOf or managingOrganization,
            // else from the Practitioner's own PractitionerRole.
            Some(Resource::Practitioner(p)) => {
                let role = found
                    .and_then(|f| idx.role_of(f.address()))
                    .and_then(Slot::resource);
                let role = match role.as_deref() {
                    Some(Resource::PractitionerRole(r)) => Some(&**r),
                    _ => None,
                };
                let staff = self.staff_of(
                    role.unwrap_or(&PractitionerRole::default()),
                    Some(p),
                    ctx,
                    element,
                );
                (
                    staff,
                    organization(role.and_then(|r| r.organization.as_deref()), ctx),
                )
            }
            Some(_) => {
                ctx.problem(
                    element,
                    "refers to a resource that is neither PractitionerRole, Practitioner nor Organization",
                );
                (None, None)
            }
            None if r.is_some() => {
                let name = r
                    .and_then(|r| text(&r.reference))
                    .unwrap_or("(identifier only)");
                ctx.problem(element, format!("reference {name} cannot be resolved"));
                (None, None)
            }
            None => (None, None),
        }
    }

    /// A CareTeam: one contact per participant whose role codes a fixed contact. Returns why
    /// it is not used when it is no fixed-contact CareTeam at all.
    fn care_team(&self, idx: &Index, ct: &CareTeam, out: &mut FhirContacts) -> Option<Verdict> {
        let layered = Self::contained_scope(idx, &ct.contained, out);
        let idx = layered.as_ref().unwrap_or(idx);
        let t = &self.m.terminology;
        let status = ct.status.as_ref().and_then(|s| s.value.as_deref());
        if status == Some("entered-in-error") {
            return Some(Verdict::not_used("entered in error"));
        }
        let roles = match self.participant_roles(ct, out) {
            Ok(roles) => roles,
            Err(not_used) => return Some(not_used),
        };
        let id = ct
            .id
            .as_ref()
            .and_then(|i| i.value.clone())
            .unwrap_or_default();
        let mut ctx = Ctx {
            resource: format!("CareTeam/{id}"),
            problems: &mut out.problems,
        };
        let status = match status {
            Some("active") => Some(ContactStatus::Active),
            Some("inactive") => Some(ContactStatus::Ended),
            other => {
                ctx.problem(
                    "CareTeam.status",
                    format!("{other:?}: a fixed contact is active or inactive"),
                );
                None
            }
        };
        if ct.participant.is_empty() {
            ctx.problem(
                "CareTeam.participant",
                "missing: a fixed contact names its staff member",
            );
            return None;
        }
        let patient = self.patient_of(idx, ct.subject.as_deref(), &mut ctx, "CareTeam.subject");
        let (start, end) = dates_of(ct.period.as_deref());
        let Some(start) = start else {
            ctx.problem(
                "CareTeam.period.start",
                "missing or not a date; the relation's start is required",
            );
            return None;
        };
        let period = match Period::new(start, end) {
            Ok(p) => p,
            Err(e) => {
                ctx.problem("CareTeam.period", e.to_string());
                return None;
            }
        };
        let several = ct.participant.len() > 1;
        // One text for the participants' contacts (the takeover index shares it too).
        let source: Arc<str> = format!("CareTeam/{id}").into();
        let mut shapes = Vec::new();
        if several {
            shapes.push("CareTeam with several participants: one contact each");
        }
        let grund = t.url(ids::GRUND);
        let at_discharge = ct
            .reason_code
            .iter()
            .flat_map(codings)
            .any(|(s, c)| s == grund && c == "utskrivning-slutenvard");
        for (n, (part, role)) in ct.participant.iter().zip(roles).enumerate() {
            let el = format!("CareTeam.participant[{n}]");
            let Some((mut kind, shape)) = role else {
                // In a whole team, members without a fixed-contact role are not contacts.
                if !several {
                    ctx.problem(
                        &format!("{el}.role"),
                        "no code from KV typ av fast kontakt (1, 2, 4), the treating-role CodeSystem, or SNOMED CT codes they map to",
                    );
                }
                continue;
            };
            shapes.push(shape);
            if let ContactKind::Fvk { coordinating, .. } = kind {
                kind = ContactKind::Fvk {
                    coordinating,
                    at_discharge,
                };
            }
            let (staff, unit) = self.participant(idx, ct, part, &el, &mut ctx, &mut shapes);
            if unit.is_none() {
                ctx.problem(
                    &el,
                    "no unit (PractitionerRole.organization, onBehalfOf or managingOrganization) with an HSA-id",
                );
            }
            let (Some(status), Some((patient, listing)), Some(unit)) =
                (status, patient.clone(), unit)
            else {
                continue;
            };
            let fallback = if several {
                format!("CareTeam/{id}#participant[{n}]")
            } else {
                format!("CareTeam/{id}")
            };
            let row_id = if several {
                RowId::new(&fallback).unwrap_or_else(|| self.row_id(&[], &fallback))
            } else {
                // A hand-typed CareTeam has no register row id: its row id is its own
                // `CareTeam/id`, shared with the contact's source (a text per contact less).
                self.register_row_id(&ct.identifier)
                    .or_else(|| RowId::shared(&source))
                    .unwrap_or_else(|| self.row_id(&[], &fallback))
            };
            match FixedContact::new(
                row_id,
                patient,
                kind,
                status,
                period,
                staff.map(Arc::new),
                Arc::new(unit),
                listing,
                self.registration_of(&ct.extension),
            ) {
                Ok(c) => {
                    out.contacts.push(c);
                    out.sources.push(Arc::clone(&source));
                }
                Err(e) => ctx.problem(&el, e.to_string()),
            }
        }
        out.shapes.extend(shapes);
        None
    }

    /// The staff member and unit of one participant. What the CareTeam states (onBehalfOf,
    /// managingOrganization) wins over a Practitioner's own role; a PractitionerRole's
    /// organization wins over what the CareTeam states.
    fn participant(
        &self,
        idx: &Index,
        ct: &CareTeam,
        part: &fhirbolt::model::r4::resources::CareTeamParticipant,
        el: &str,
        ctx: &mut Ctx,
        shapes: &mut Vec<&'static str>,
    ) -> (Option<Staff>, Option<CareUnit>) {
        let member = part.member.as_deref();
        if member.is_none() {
            ctx.problem(
                &format!("{el}.member"),
                "missing: a fixed contact names its staff member",
            );
        }
        let by_practitioner = member
            .and_then(|r| idx.slot(r))
            .is_some_and(|s| s.type_name() == "Practitioner");
        if by_practitioner {
            shapes
                .push("member: a Practitioner (the unit from onBehalfOf or managingOrganization)");
        }
        let (staff, member_unit) = self.member(idx, member, ctx, &format!("{el}.member"));
        let stated = part
            .on_behalf_of
            .as_deref()
            .or(ct.managing_organization.first());
        let stated_unit =
            |ctx: &mut Ctx| self.member(idx, stated, ctx, &format!("{el}.onBehalfOf")).1;
        let unit = if by_practitioner {
            stated_unit(ctx).or(member_unit)
        } else {
            member_unit.or_else(|| stated_unit(ctx))
        };
        (staff, unit)
    }

    /// The contact kind each participant's role codes; none when the CareTeam is no fixed
    /// contact at all (not categorised, claiming no profile, and no national role code).
    fn participant_roles(
        &self,
        ct: &CareTeam,
        out: &mut FhirContacts,
    ) -> Result<Vec<Option<(ContactKind, &'static str)>>, Verdict> {
        let t = &self.m.terminology;
        let fast = t.url(ids::TYP_AV_CARETEAM);
        let br = t.url(ids::CARETEAM_KATEGORI);
        let categorised = ct.category.iter().flat_map(codings).any(|(s, c)| {
            (s == fast && c == "fast-kontakt") || (s == br && c == "behandlande-roll")
        });
        let profiled = self.claims_profile(
            ct.meta.as_deref(),
            &[PROFILE_FIXED_CONTACT, PROFILE_TREATING_ROLE],
        );
        // Without the category only a national code says "fixed contact": a SNOMED CT
        // "Primary care physician" alone is any GP's role, not a named FLK.
        let roles: Vec<Option<(ContactKind, &'static str)>> = ct
            .participant
            .iter()
            .map(|p| p.role.iter().find_map(|cc| self.kind_and_shape(cc)))
            .map(|r| r.filter(|(_, shape)| categorised || *shape != SNOMED_ONLY))
            .collect();
        if !categorised && !profiled {
            if roles.iter().all(Option::is_none) {
                let cats: Vec<String> = ct
                    .category
                    .iter()
                    .flat_map(codings)
                    .map(|(s, c)| format!("{s}#{c}"))
                    .collect();
                return Err(if cats.is_empty() {
                    Verdict::not_used(
                        "no category, and no participant's role codes a fixed contact",
                    )
                } else {
                    Verdict::not_used_because(
                        "category is not a fixed contact, and no participant's role codes one",
                        cats.join(", "),
                    )
                });
            }
            out.shapes
                .push("CareTeam without a fixed-contact category: the role code says what it is");
        }
        Ok(roles)
    }

    /// A resource's contained resources over the shared index, when it has any.
    fn contained_scope<'x>(
        idx: &'x Index<'x>,
        contained: &'x [Resource],
        out: &mut FhirContacts,
    ) -> Option<Index<'x>> {
        (!contained.is_empty()).then(|| {
            out.shapes.push("contained resources (#id references)");
            Index::with_contained(idx, contained)
        })
    }

    /// The resource names one of the product's profiles in `meta.profile`.
    fn claims_profile(
        &self,
        meta: Option<&fhirbolt::model::r4::types::Meta>,
        names: &[&str],
    ) -> bool {
        let base = &self.m.target.extension_base;
        meta.is_some_and(|m| {
            m.profile
                .iter()
                .filter_map(|p| p.value.as_deref())
                .any(|p| {
                    let p = p.split('|').next().unwrap_or(p);
                    names
                        .iter()
                        .any(|n| p.strip_prefix(base.as_str()) == Some(&format!("/{n}")))
                })
        })
    }

    fn offer(&self, idx: &Index, task: &Task, out: &mut FhirContacts) -> Option<Verdict> {
        let layered = Self::contained_scope(idx, &task.contained, out);
        let idx = layered.as_ref().unwrap_or(idx);
        let t = &self.m.terminology;
        let erbj = t.url(ids::ERBJUDANDE);
        let is_offer = task
            .code
            .iter()
            .flat_map(|c| codings(c))
            .any(|(s, c)| s == erbj && c == "erbjudande-fast-kontakt");
        let step = task
            .business_status
            .iter()
            .flat_map(|c| codings(c))
            .find_map(|(s, c)| match (s == erbj, c) {
                (true, "avbojt") => Some(ContactStatus::Declined),
                (true, "begart") => Some(ContactStatus::Requested),
                (true, "informerad") => Some(ContactStatus::Informed),
                _ => None,
            });
        // An answered request (besvarat) is history, not a step of the offer.
        let is_step = step.is_some();
        let profiled = self.claims_profile(
            task.meta.as_deref(),
            &[PROFILE_DECLINED_OFFER, PROFILE_OFFER],
        );
        if !is_offer && !profiled {
            return Some(Verdict::not_used(
                "not an offer of a fixed contact (Task.code)",
            ));
        }
        if !is_step && !profiled {
            return Some(Verdict::not_used(
                "an offer that is no longer open or declined (its business status is not informerad, begart or avbojt)",
            ));
        }
        let id = task
            .id
            .as_ref()
            .and_then(|i| i.value.clone())
            .unwrap_or_default();
        let mut ctx = Ctx {
            resource: format!("Task/{id}"),
            problems: &mut out.problems,
        };
        // A Task that claims the declined-offer profile is held to it.
        if !is_offer {
            ctx.problem("Task.code", "not erbjudande#erbjudande-fast-kontakt");
        }
        if !is_step {
            ctx.problem(
                "Task.businessStatus",
                "not erbjudande#avbojt, #begart or #informerad: no step of the offer",
            );
            return None;
        }
        let kind = task.input.iter().find_map(|i| match &i.value {
            TaskInputValue::CodeableConcept(cc) => self.kind_from_role(cc),
            _ => None,
        });
        if kind.is_none() {
            ctx.problem("Task.input", "no offered contact kind");
        }
        let patient = self.patient_of(idx, task.r#for.as_deref(), &mut ctx, "Task.for");
        let (staff, role_unit) = self.member(idx, task.owner.as_deref(), &mut ctx, "Task.owner");
        let unit = role_unit.or_else(|| {
            self.member(idx, task.requester.as_deref(), &mut ctx, "Task.requester")
                .1
        });
        let (start, end) = dates_of(task.execution_period.as_deref());
        let Some(period) = start.and_then(|s| Period::new(s, end).ok()) else {
            ctx.problem(
                "Task.executionPeriod",
                "missing start, or ends before it starts",
            );
            return None;
        };
        if unit.is_none() {
            ctx.problem("Task.requester", "no unit with an HSA-id");
        }
        let (Some(kind), Some((patient, listing)), Some(unit)) = (kind, patient, unit) else {
            return None;
        };
        let row_id = self.row_id(&task.identifier, &format!("Task/{id}"));
        match FixedContact::new(
            row_id,
            patient,
            kind,
            step.unwrap_or(ContactStatus::Declined),
            period,
            staff.map(Arc::new),
            Arc::new(unit),
            listing,
            self.registration_of(&task.extension),
        ) {
            Ok(c) => {
                out.contacts.push(c);
                out.sources.push(format!("Task/{id}").into());
            }
            Err(e) => ctx.problem("Task", e.to_string()),
        }
        None
    }

    /// Every fixed contact among `resources`, with a verdict for each resource given.
    pub fn contacts(&self, idx: &Index, resources: &[&Resource]) -> FhirContacts {
        let mut out = FhirContacts::default();
        for r in resources {
            let before = (out.contacts.len(), out.problems.len());
            let judged = match r {
                Resource::CareTeam(ct) => self.care_team(idx, ct, &mut out),
                Resource::Task(task) => self.offer(idx, task, &mut out),
                _ => {
                    out.verdicts.push(Verdict::NotJudged);
                    continue;
                }
            };
            let verdict = judged.unwrap_or_else(|| {
                if out.contacts.len() > before.0 {
                    Verdict::Used
                } else {
                    match out.problems.get(before.1) {
                        Some(p) => Verdict::not_used_because(
                            format!("not read as a fixed contact: {}", p.element),
                            p.reason.clone(),
                        ),
                        None => Verdict::not_used("not read as a fixed contact"),
                    }
                }
            });
            out.verdicts.push(verdict);
        }
        out
    }
}

/// The keys references name a resource by (its fullUrl aside): `Type/id`, and what a
/// conditional reference in a transaction Bundle names it by.
fn keys_of(r: &Resource) -> Vec<String> {
    let (t, id) = super::outbound::type_and_id(r);
    let own = (!id.is_empty()).then(|| format!("{t}/{id}"));
    own.into_iter()
        .chain(
            identifiers_of(r)
                .into_iter()
                .map(|(system, value)| format!("{t}?identifier={system}|{value}")),
        )
        .collect()
}

/// (system, value) of a directory resource's identifiers.
fn identifiers_of(r: &Resource) -> Vec<(&str, &str)> {
    let ids: &[Identifier] = match r {
        Resource::Practitioner(p) => &p.identifier,
        Resource::PractitionerRole(p) => &p.identifier,
        Resource::Organization(o) => &o.identifier,
        _ => &[],
    };
    ids.iter()
        .filter_map(|i| Some((i.system.as_ref()?.value.as_deref()?, text(&i.value)?)))
        .collect()
}

/// The identity a conditional reference names (`Patient?identifier=system|value`, as a
/// transaction Bundle may write it).
fn conditional_identity(reference: &str) -> Option<Result<PatientId, String>> {
    let query = reference
        .strip_prefix("Patient?identifier=")?
        .replace("%7C", "|")
        .replace("%7c", "|");
    let (system, value) = query.split_once('|')?;
    let identifier = Identifier {
        system: Some(system.to_owned().into()),
        value: Some(value.to_owned().into()),
        ..Default::default()
    };
    Inbound::patient_id(std::slice::from_ref(&identifier))
}
