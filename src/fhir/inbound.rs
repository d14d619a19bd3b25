//! FHIR R4 → domain: CareTeams (and declined-offer Tasks) in the fast-kontakt shape become
//! `FixedContact`s, resolving Patient, PractitionerRole, Practitioner and Organization within
//! the same set of resources. Both Swedish identifier styles are read. What cannot be read is
//! reported with the resource and element, never guessed.

use super::outbound::{EXT_NOT_LICENSED, EXT_REGISTER_CHANGE};
use super::systems::{self, IdentifierKind};
use crate::domain::contact::{
    ContactKind, ContactStatus, FixedContact, Period, Registration, RowId, TreatingRole,
};
use crate::domain::identity::{HsaId, PatientId};
use crate::domain::staff::{Licence, Profession, Staff};
use crate::domain::unit::{CareUnit, UnitKind};
use crate::mapping::terminology::ids;
use crate::mapping::Mappings;
use chrono::NaiveDate;
use fhirbolt::model::r4::resources::{
    CareTeam, Organization, Patient, Practitioner, PractitionerRole, Task, TaskInputValue,
};
use fhirbolt::model::r4::types::{CodeableConcept, ExtensionValue, Identifier, Reference};
use fhirbolt::model::r4::Resource;
use std::collections::HashMap;

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
    pub contacts: Vec<FixedContact>,
    /// `Type/id` of each contact's resource, parallel to `contacts`.
    pub(crate) sources: Vec<String>,
    pub problems: Vec<InboundProblem>,
    /// CareTeams of other kinds (not fast kontakt or treating role), or entered in error.
    pub(crate) ignored: usize,
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

fn date(s: Option<&str>) -> Option<NaiveDate> {
    let s = s?;
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

/// Resources by every key a reference may use: `Type/id`, and the entry's fullUrl.
pub struct Index<'r> {
    by_key: HashMap<String, &'r Resource>,
    /// Patients are kept as stubs: a region's Patients are many, and the contacts need only
    /// their identity, listing and death.
    patients: HashMap<String, std::sync::Arc<PatientStub>>,
    all_patients: Vec<std::sync::Arc<PatientStub>>,
}

/// What the rest of the data needs of a Patient resource.
#[derive(Debug, Clone)]
pub(crate) struct PatientStub {
    /// The identity its identifiers give (an error when an identifier fails its check).
    pub(crate) id: Option<Result<PatientId, String>>,
    /// `Patient.generalPractitioner` references (the listing unit is the Organization among them).
    pub(crate) general_practitioner: Vec<Reference>,
    pub(crate) deceased: bool,
}

impl PatientStub {
    pub(crate) fn of(p: &Patient) -> Self {
        use fhirbolt::model::r4::resources::PatientDeceased;
        PatientStub {
            id: Inbound::patient_id(&p.identifier),
            // Only the reference text is read (a million Patients' displays add up).
            general_practitioner: p
                .general_practitioner
                .iter()
                .map(|r| Reference {
                    reference: r.reference.clone(),
                    ..Default::default()
                })
                .collect(),
            deceased: match &p.deceased {
                Some(PatientDeceased::Boolean(b)) => b.value == Some(true),
                Some(PatientDeceased::DateTime(_)) => true,
                _ => false,
            },
        }
    }
}

impl<'r> Index<'r> {
    pub fn new(resources: impl IntoIterator<Item = (Option<String>, &'r Resource)>) -> Self {
        let mut idx = Index {
            by_key: HashMap::new(),
            patients: HashMap::new(),
            all_patients: Vec::new(),
        };
        for (full_url, r) in resources {
            if let Resource::Patient(p) = r {
                idx.add_patient(
                    full_url,
                    p.id.as_ref().and_then(|i| i.value.as_deref()),
                    PatientStub::of(p),
                );
                continue;
            }
            let (t, id) = super::outbound::type_and_id(r);
            if !id.is_empty() {
                idx.by_key.insert(format!("{t}/{id}"), r);
            }
            if let Some(u) = full_url {
                idx.by_key.insert(u, r);
            }
        }
        idx
    }

    /// Adds a Patient known only by its stub (a streamed read keeps no Patient resources).
    pub(crate) fn add_patient(
        &mut self,
        full_url: Option<String>,
        id: Option<&str>,
        stub: impl Into<std::sync::Arc<PatientStub>>,
    ) {
        let stub = stub.into();
        self.all_patients.push(stub.clone());
        if let Some(id) = id.filter(|i| !i.is_empty()) {
            self.patients.insert(format!("Patient/{id}"), stub.clone());
        }
        if let Some(u) = full_url {
            self.patients.insert(u, stub);
        }
    }

    /// Adds a Patient stub under the reference text that names it (e.g. `Patient/x`).
    pub(crate) fn add_patient_ref(&mut self, reference: &str, stub: PatientStub) {
        self.add_patient(Some(reference.to_owned()), None, stub);
    }

    /// Every Patient stub, once each (full URLs and ids can name the same one).
    pub(crate) fn patients(&self) -> impl Iterator<Item = &PatientStub> {
        self.all_patients.iter().map(|p| &**p)
    }

    fn lookup<'s, T>(map: &'s HashMap<String, T>, reference: &Reference) -> Option<&'s T> {
        let r = text(&reference.reference)?;
        if let Some(found) = map.get(r) {
            return Some(found);
        }
        let mut parts = r.rsplit('/');
        let (id, t) = (parts.next()?, parts.next()?);
        map.get(&format!("{t}/{id}"))
    }

    /// Resolves a literal reference: relative, absolute (its last two segments) or urn:uuid.
    pub(crate) fn get(&self, reference: &Reference) -> Option<&'r Resource> {
        Self::lookup(&self.by_key, reference).copied()
    }

    /// Resolves a reference to a Patient.
    pub(crate) fn patient(&self, reference: &Reference) -> Option<&PatientStub> {
        Self::lookup(&self.patients, reference).map(|a| &**a)
    }
}

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
    pub fn new(m: &'m Mappings) -> Self {
        Inbound { m }
    }

    fn hsa(identifiers: &[Identifier]) -> Option<Result<HsaId, String>> {
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
                IdentifierKind::Personnummer | IdentifierKind::Samordningsnummer => Some(
                    PatientId::parse(v)
                        .map_err(|e| format!("{}: {e}", crate::sources::register::mask(v))),
                ),
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
        let listing = stub.and_then(|p| self.listing_of(idx, p));
        let from_reference = || {
            subject
                .identifier
                .as_deref()
                .and_then(|i| Self::patient_id(std::slice::from_ref(i)))
        };
        match stub.and_then(|s| s.id.clone()).or_else(from_reference) {
            Some(Ok(id)) => Some((id, listing)),
            Some(Err(e)) => {
                ctx.identifier_problem(element, e);
                None
            }
            None => {
                ctx.problem(element, "no personnummer, samordningsnummer or reservnummer on the patient or the reference");
                None
            }
        }
    }

    /// The listing unit: the Organization among Patient.generalPractitioner.
    pub(crate) fn listing_of(&self, idx: &Index, p: &PatientStub) -> Option<HsaId> {
        p.general_practitioner
            .iter()
            .find_map(|r| match idx.get(r) {
                Some(Resource::Organization(o)) => Self::hsa(&o.identifier).and_then(Result::ok),
                _ => None,
            })
    }

    fn kind_from_role(&self, cc: &CodeableConcept) -> Option<ContactKind> {
        let t = &self.m.terminology;
        let kv = t.url(ids::KV_TYP_AV_FAST_KONTAKT);
        let roles = t.url(ids::BEHANDLANDE_ROLL);
        codings(cc).find_map(|(sys, code)| {
            if sys == kv || sys == KV_TYP_AV_FAST_KONTAKT_OID {
                match t.map(ids::MAP_KV).reverse(code)? {
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
                }
            } else if sys == roles {
                TreatingRole::from_code(code).map(ContactKind::TreatingRole)
            } else {
                None
            }
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
        let hosp = &t.map(ids::MAP_YRKE_HOSP);
        let qualification_profession = p
            .qualification
            .iter()
            .flat_map(|q| codings(&q.code))
            .find_map(|(s, c)| {
                (s == hosp.target)
                    .then(|| hosp.reverse(c).and_then(Profession::from_code))
                    .flatten()
            });
        let profession = role
            .code
            .iter()
            .flat_map(codings)
            .find_map(|(s, c)| (s == yrke).then(|| Profession::from_code(c)).flatten())
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
        identifiers
            .iter()
            .find(|i| {
                i.system.as_ref().and_then(|s| s.value.as_deref())
                    == Some(self.m.target.row_id_system.as_str())
            })
            .and_then(|i| text(&i.value))
            .and_then(RowId::new)
            .unwrap_or_else(|| {
                RowId::new(fallback).unwrap_or_else(|| RowId::new("?").expect("non-empty"))
            })
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
        match r.and_then(|r| idx.get(r)) {
            Some(Resource::PractitionerRole(role)) => {
                let p = role
                    .practitioner
                    .as_deref()
                    .and_then(|r| idx.get(r))
                    .and_then(|r| match r {
                        Resource::Practitioner(p) => Some(&**p),
                        _ => None,
                    });
                let staff = self.staff_of(role, p, ctx, element);
                let unit = match role.organization.as_deref().and_then(|r| idx.get(r)) {
                    Some(Resource::Organization(o)) => {
                        self.unit_of(o, ctx, &format!("{element}.organization"))
                    }
                    _ => None,
                };
                (staff, unit)
            }
            Some(Resource::Organization(o)) => (None, self.unit_of(o, ctx, element)),
            Some(_) => {
                ctx.problem(
                    element,
                    "refers to a resource that is neither PractitionerRole nor Organization",
                );
                (None, None)
            }
            None if r.is_some() => {
                ctx.problem(element, "does not resolve to a resource in the data");
                (None, None)
            }
            None => (None, None),
        }
    }

    fn care_team(&self, idx: &Index, ct: &CareTeam, out: &mut FhirContacts) {
        let t = &self.m.terminology;
        let fast = t.url(ids::TYP_AV_CARETEAM);
        let br = t.url(ids::CARETEAM_KATEGORI);
        let is_ours = ct.category.iter().flat_map(codings).any(|(s, c)| {
            (s == fast && c == "fast-kontakt") || (s == br && c == "behandlande-roll")
        });
        let status = ct.status.as_ref().and_then(|s| s.value.as_deref());
        if !is_ours || status == Some("entered-in-error") {
            out.ignored += 1;
            return;
        }
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
        if ct.participant.len() != 1 {
            ctx.problem(
                "CareTeam.participant",
                format!(
                    "has {} participants; a fixed contact has exactly one",
                    ct.participant.len()
                ),
            );
            return;
        }
        let part = &ct.participant[0];
        let mut kind = part.role.iter().find_map(|cc| self.kind_from_role(cc));
        if kind.is_none() {
            ctx.problem(
                "CareTeam.participant[0].role",
                "no code from KV typ av fast kontakt (1, 2, 4) or the treating-role CodeSystem",
            );
        }
        let grund = t.url(ids::GRUND);
        if ct
            .reason_code
            .iter()
            .flat_map(codings)
            .any(|(s, c)| s == grund && c == "utskrivning-slutenvard")
        {
            if let Some(ContactKind::Fvk { coordinating, .. }) = kind {
                kind = Some(ContactKind::Fvk {
                    coordinating,
                    at_discharge: true,
                });
            }
        }
        let patient = self.patient_of(idx, ct.subject.as_deref(), &mut ctx, "CareTeam.subject");
        let (staff, unit) = self.member(
            idx,
            part.member.as_deref(),
            &mut ctx,
            "CareTeam.participant[0].member",
        );
        let unit = unit.or_else(|| {
            let r = part
                .on_behalf_of
                .as_deref()
                .or(ct.managing_organization.first());
            self.member(idx, r, &mut ctx, "CareTeam.participant[0].onBehalfOf")
                .1
        });
        if part.member.is_none() {
            ctx.problem(
                "CareTeam.participant[0].member",
                "missing: a fixed contact names its staff member",
            );
        }
        let period = ct.period.as_deref();
        let start = date(
            period
                .and_then(|p| p.start.as_ref())
                .and_then(|d| d.value.as_deref()),
        );
        let end = date(
            period
                .and_then(|p| p.end.as_ref())
                .and_then(|d| d.value.as_deref()),
        );
        let Some(start) = start else {
            ctx.problem(
                "CareTeam.period.start",
                "missing or not a date; the relation's start is required",
            );
            return;
        };
        let period = match Period::new(start, end) {
            Ok(p) => p,
            Err(e) => {
                ctx.problem("CareTeam.period", e.to_string());
                return;
            }
        };
        if unit.is_none() {
            ctx.problem(
                "CareTeam.participant[0]",
                "no unit (PractitionerRole.organization or onBehalfOf) with an HSA-id",
            );
        }
        let (Some(kind), Some(status), Some((patient, listing)), Some(unit)) =
            (kind, status, patient, unit)
        else {
            return;
        };
        let row_id = self.row_id(&ct.identifier, &format!("CareTeam/{id}"));
        match FixedContact::new(
            row_id,
            patient,
            kind,
            status,
            period,
            staff,
            unit,
            listing,
            self.registration_of(&ct.extension),
        ) {
            Ok(c) => {
                out.contacts.push(c);
                out.sources.push(format!("CareTeam/{id}"));
            }
            Err(e) => ctx.problem("CareTeam", e.to_string()),
        }
    }

    fn declined_offer(&self, idx: &Index, task: &Task, out: &mut FhirContacts) {
        let t = &self.m.terminology;
        let erbj = t.url(ids::ERBJUDANDE);
        let is_offer = task
            .code
            .iter()
            .flat_map(|c| codings(c))
            .any(|(s, c)| s == erbj && c == "erbjudande-fast-kontakt");
        let declined = task
            .business_status
            .iter()
            .flat_map(|c| codings(c))
            .any(|(s, c)| s == erbj && c == "avbojt");
        if !is_offer || !declined {
            out.ignored += 1;
            return;
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
        let period = task.execution_period.as_deref();
        let start = date(
            period
                .and_then(|p| p.start.as_ref())
                .and_then(|d| d.value.as_deref()),
        );
        let end = date(
            period
                .and_then(|p| p.end.as_ref())
                .and_then(|d| d.value.as_deref()),
        );
        let Some(period) = start.and_then(|s| Period::new(s, end).ok()) else {
            ctx.problem(
                "Task.executionPeriod",
                "missing start, or ends before it starts",
            );
            return;
        };
        if unit.is_none() {
            ctx.problem("Task.requester", "no unit with an HSA-id");
        }
        let (Some(kind), Some((patient, listing)), Some(unit)) = (kind, patient, unit) else {
            return;
        };
        let row_id = self.row_id(&task.identifier, &format!("Task/{id}"));
        match FixedContact::new(
            row_id,
            patient,
            kind,
            ContactStatus::Declined,
            period,
            staff,
            unit,
            listing,
            self.registration_of(&task.extension),
        ) {
            Ok(c) => {
                out.contacts.push(c);
                out.sources.push(format!("Task/{id}"));
            }
            Err(e) => ctx.problem("Task", e.to_string()),
        }
    }

    /// Every fixed contact among `resources`.
    pub fn contacts(&self, idx: &Index, resources: &[&Resource]) -> FhirContacts {
        let mut out = FhirContacts::default();
        for r in resources {
            match r {
                Resource::CareTeam(ct) => self.care_team(idx, ct, &mut out),
                Resource::Task(task) => self.declined_offer(idx, task, &mut out),
                _ => {}
            }
        }
        out
    }
}
