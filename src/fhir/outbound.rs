//! Domain → FHIR R4 in Inera's "fast kontakt" shape carried back to R4: one CareTeam per
//! patient–contact relation with exactly one participant, its role from KV typ av fast kontakt
//! (or the project's treating roles), member → PractitionerRole. A declined offer, which has no
//! participant, is a Task. The FLK is mirrored in Patient.generalPractitioner.

use super::ids::IdMaker;
use super::systems;
use crate::domain::contact::{ContactKind, ContactStatus, FixedContact};
use crate::domain::identity::{HsaId, PatientId};
use crate::domain::staff::{Licence, Staff};
use crate::domain::unit::CareUnit;
use crate::mapping::terminology::ids;
use crate::mapping::{Coding as TermCoding, Mappings, TargetConfig, Terminology};
use fhirbolt::model::r4::resources::{
    CarePlan, CarePlanActivity, CarePlanActivityDetail, CarePlanActivityDetailScheduled, CareTeam,
    CareTeamParticipant, Consent, Organization, Patient, Practitioner, PractitionerQualification,
    PractitionerRole, Task, TaskInput, TaskInputValue,
};
use fhirbolt::model::r4::types::{
    CodeableConcept, Coding, Extension, ExtensionValue, HumanName, Identifier, Meta, Period,
    Reference,
};
use fhirbolt::model::r4::Resource;
use std::collections::HashSet;

/// LOINC "Longitudinal care-coordination focused care team", a second category coding.
pub(crate) const LOINC: &str = "http://loinc.org";
pub(crate) const LOINC_LONGITUDINAL_CARE_TEAM: &str = "LA28865-6";
/// Extension names under the target's `extension_base`.
pub(crate) const EXT_REGISTER_CHANGE: &str = "befolkningsregister-andring";
pub(crate) const EXT_NOT_LICENSED: &str = "ej-legitimerad";
/// The profiles of `mappings/fhir/` (StructureDefinitions under the extension base): a resource
/// that names one in `meta.profile` presents itself as a fixed contact.
pub(crate) const PROFILE_FIXED_CONTACT: &str = "fast-kontakt-careteam";
pub(crate) const PROFILE_TREATING_ROLE: &str = "behandlande-roll-careteam";
pub(crate) const PROFILE_DECLINED_OFFER: &str = "avbojt-erbjudande-task";
/// The offer Task at any step (informed, requested, declined).
pub(crate) const PROFILE_OFFER: &str = "erbjudande-task";

pub(crate) fn coding(c: &TermCoding) -> Coding {
    Coding {
        system: Some(c.system.as_str().into()),
        code: Some(c.code.as_str().into()),
        display: c.display.as_deref().map(Into::into),
        ..Default::default()
    }
}

pub(crate) fn concept(codings: Vec<TermCoding>) -> CodeableConcept {
    CodeableConcept {
        coding: codings.iter().map(coding).collect(),
        ..Default::default()
    }
}

pub(crate) fn reference(resource_type: &str, id: &str, display: Option<&str>) -> Reference {
    Reference {
        reference: Some(format!("{resource_type}/{id}").into()),
        display: display.map(Into::into),
        ..Default::default()
    }
}

pub(crate) fn identifier(system: &str, value: &str) -> Identifier {
    Identifier {
        system: Some(system.into()),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn period(start: Option<String>, end: Option<String>) -> Option<Box<Period>> {
    (start.is_some() || end.is_some()).then(|| {
        Box::new(Period {
            start: start.map(Into::into),
            end: end.map(Into::into),
            ..Default::default()
        })
    })
}

/// The resources one register row becomes.
pub(crate) struct ContactResources {
    /// CareTeam, or Task for a declined offer.
    pub(crate) relation: Resource,
    pub(crate) practitioner: Option<Resource>,
    pub(crate) practitioner_role: Option<Resource>,
    pub(crate) organization: Resource,
    /// The listing unit, when the row names one (identifier only unless it is also a row's unit).
    pub(crate) listing_organization: Option<Resource>,
}

/// Builds resources for one target.
pub struct Outbound<'m> {
    term: &'m Terminology,
    /// The register's code systems for treating role and profession (its ConceptMaps' sources),
    /// where a code the product's CodeSystem lacks is written as the register had it.
    unlisted_role_system: &'m str,
    unlisted_profession_system: &'m str,
    target: &'m TargetConfig,
    pub(crate) ids: IdMaker,
}

impl<'m> Outbound<'m> {
    /// A writer under the mappings' target.
    pub fn new(mappings: &'m Mappings) -> Self {
        let source = |url: &str| {
            mappings
                .terminology
                .map_by_url(url)
                .map(|m| m.source.as_str())
                .unwrap_or_default()
        };
        Outbound {
            unlisted_role_system: source(&mappings.register.code_maps.role),
            unlisted_profession_system: source(&mappings.register.code_maps.profession),
            term: &mappings.terminology,
            target: &mappings.target,
            ids: IdMaker::new(mappings.target.id_namespace),
        }
    }

    fn meta(&self) -> Option<Box<Meta>> {
        Some(Box::new(Meta {
            tag: vec![Coding {
                system: Some(self.target.tag_system.as_str().into()),
                code: Some(self.target.tag_code.as_str().into()),
                ..Default::default()
            }],
            ..Default::default()
        }))
    }

    fn hsa_identifier(&self, hsa: &HsaId) -> Identifier {
        identifier(
            systems::hsa_system(self.target.identifier_style),
            hsa.as_str(),
        )
    }

    pub(crate) fn patient_identifier(&self, p: &PatientId) -> Identifier {
        let system = match p {
            PatientId::Reserv(r) => r.system.clone(),
            _ => systems::patient_system(self.target.identifier_style, p.kind()).to_owned(),
        };
        identifier(&system, &p.expose())
    }

    pub(crate) fn patient_reference(&self, p: &PatientId) -> Reference {
        Reference {
            identifier: Some(Box::new(self.patient_identifier(p))),
            ..reference("Patient", &self.ids.patient(p), None)
        }
    }

    /// The role codings of a contact kind: national (or project) code first, SNOMED second.
    pub(crate) fn role_concept(&self, kind: ContactKind) -> CodeableConcept {
        let t = self.term;
        let mut codings = Vec::new();
        match kind {
            ContactKind::TreatingRole(r) if r.is_listed() => {
                codings.push(t.coding(ids::BEHANDLANDE_ROLL, r.code()));
                codings.extend(t.map(ids::MAP_ROLL_SNOMED).target_coding(r.code()));
            }
            // Not in the region's CodeSystem: the register's word in the register's system,
            // never a made-up code in the product's.
            ContactKind::TreatingRole(r) => {
                codings.push(unlisted(self.unlisted_role_system, r.code()))
            }
            k => {
                codings.extend(t.map(ids::MAP_KV).target_coding(k.kind_code()));
                codings.extend(
                    t.map(ids::MAP_KONTAKTTYP_SNOMED)
                        .target_coding(k.kind_code()),
                );
            }
        }
        concept(codings)
    }

    fn category(&self, kind: ContactKind) -> Vec<CodeableConcept> {
        let t = self.term;
        let first = match kind {
            ContactKind::TreatingRole(_) => t.coding(ids::CARETEAM_KATEGORI, "behandlande-roll"),
            _ => t.coding(ids::TYP_AV_CARETEAM, "fast-kontakt"),
        };
        let loinc = TermCoding {
            system: LOINC.into(),
            code: LOINC_LONGITUDINAL_CARE_TEAM.into(),
            display: Some("Longitudinal care-coordination focused care team".into()),
        };
        vec![concept(vec![first, loinc])]
    }

    fn register_change_extension(&self, c: &FixedContact) -> Vec<Extension> {
        let Some(reg) = &c.registration else {
            return Vec::new();
        };
        let mut parts = Vec::new();
        if let Some(at) = reg.at {
            parts.push(Extension {
                url: "tidpunkt".into(),
                value: Some(ExtensionValue::DateTime(
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
                        .into(),
                )),
                ..Default::default()
            });
        }
        if let Some(by) = &reg.by {
            parts.push(Extension {
                url: "av".into(),
                value: Some(ExtensionValue::Identifier(Box::new(
                    self.hsa_identifier(by),
                ))),
                ..Default::default()
            });
        }
        vec![Extension {
            url: format!("{}/{EXT_REGISTER_CHANGE}", self.target.extension_base),
            extension: parts,
            ..Default::default()
        }]
    }

    pub(crate) fn organization(&self, unit: &CareUnit) -> Resource {
        let kind = unit
            .kind
            .map(|k| concept(vec![self.term.coding(ids::ENHETSTYP, k.code())]));
        Resource::Organization(Box::new(Organization {
            id: Some(self.ids.organization(&unit.hsa).into()),
            meta: self.meta(),
            identifier: vec![self.hsa_identifier(&unit.hsa)],
            active: Some(true.into()),
            r#type: kind.into_iter().collect(),
            name: unit.name.as_deref().map(Into::into),
            ..Default::default()
        }))
    }

    pub(crate) fn listing_organization(&self, hsa: &HsaId) -> Resource {
        Resource::Organization(Box::new(Organization {
            id: Some(self.ids.organization(hsa).into()),
            meta: self.meta(),
            identifier: vec![self.hsa_identifier(hsa)],
            active: Some(true.into()),
            ..Default::default()
        }))
    }

    /// The Practitioner of a staff member.
    pub fn practitioner(&self, s: &Staff) -> Resource {
        let t = self.term;
        // A licence as HOSP's code where the mapping has one; else, the profession's own
        // code (a region's addition, or the register's word) stands for "licensed as this".
        let qualification = match (s.licence, s.profession) {
            (Licence::Licensed, Some(p)) => {
                let c = t
                    .map(ids::MAP_YRKE_HOSP)
                    .target_coding(p.code())
                    .or_else(|| {
                        Some(if p.is_listed() {
                            t.coding(ids::YRKE, p.code())
                        } else {
                            unlisted(self.unlisted_profession_system, p.code())
                        })
                    });
                c.map(|c| PractitionerQualification {
                    code: Box::new(concept(vec![c])),
                    ..Default::default()
                })
                .into_iter()
                .collect()
            }
            _ => Vec::new(),
        };
        let extension = if s.licence == Licence::NotLicensed {
            vec![Extension {
                url: format!("{}/{EXT_NOT_LICENSED}", self.target.extension_base),
                value: Some(ExtensionValue::Boolean(true.into())),
                ..Default::default()
            }]
        } else {
            Vec::new()
        };
        Resource::Practitioner(Box::new(Practitioner {
            id: Some(self.ids.practitioner(&s.hsa).into()),
            meta: self.meta(),
            extension,
            identifier: vec![self.hsa_identifier(&s.hsa)],
            name: s
                .name
                .as_deref()
                .map(|n| HumanName {
                    text: Some(n.into()),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            qualification,
            ..Default::default()
        }))
    }

    pub(crate) fn practitioner_role(&self, s: &Staff, unit: &CareUnit) -> Resource {
        let t = self.term;
        let code = s
            .profession
            .map(|p| {
                if !p.is_listed() {
                    return concept(vec![unlisted(self.unlisted_profession_system, p.code())]);
                }
                let mut c = vec![t.coding(ids::YRKE, p.code())];
                c.extend(t.map(ids::MAP_YRKE_SNOMED).target_coding(p.code()));
                concept(c)
            })
            .into_iter()
            .collect();
        let specialty = s
            .specialties
            .iter()
            .map(|sp| {
                let mut c = vec![t.coding(ids::SPECIALITET, sp.as_str())];
                c.extend(
                    t.map(ids::MAP_SPECIALITET_SNOMED)
                        .target_coding(sp.as_str()),
                );
                concept(c)
            })
            .collect();
        Resource::PractitionerRole(Box::new(PractitionerRole {
            id: Some(self.ids.practitioner_role(&s.hsa, &unit.hsa).into()),
            meta: self.meta(),
            identifier: vec![identifier(
                &self.target.practitioner_role_system,
                &format!("{}|{}", s.hsa, unit.hsa),
            )],
            active: Some(true.into()),
            practitioner: Some(Box::new(reference(
                "Practitioner",
                &self.ids.practitioner(&s.hsa),
                s.name.as_deref(),
            ))),
            organization: Some(Box::new(reference(
                "Organization",
                &self.ids.organization(&unit.hsa),
                unit.name.as_deref(),
            ))),
            code,
            specialty,
            ..Default::default()
        }))
    }

    /// The resources for one contact.
    pub(crate) fn contact(&self, c: &FixedContact) -> ContactResources {
        let staff = c.staff();
        ContactResources {
            relation: self.relation(c),
            practitioner: staff.map(|s| self.practitioner(s)),
            practitioner_role: staff.map(|s| self.practitioner_role(s, &c.unit)),
            organization: self.organization(&c.unit),
            listing_organization: c
                .listing_unit
                .as_ref()
                .map(|h| self.listing_organization(h)),
        }
    }

    /// The contact's relation alone: its CareTeam, or its Task for an offer's step.
    pub(crate) fn relation(&self, c: &FixedContact) -> Resource {
        let staff = c.staff();
        let role_ref = staff.map(|s| {
            Box::new(reference(
                "PractitionerRole",
                &self.ids.practitioner_role(&s.hsa, &c.unit.hsa),
                s.name.as_deref(),
            ))
        });
        let org_ref = reference(
            "Organization",
            &self.ids.organization(&c.unit.hsa),
            c.unit.name.as_deref(),
        );
        // What `format("%Y-%m-%d")` writes, without parsing the pattern each time.
        let date = |d: chrono::NaiveDate| {
            use chrono::Datelike;
            format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
        };
        let period = period(Some(date(c.period.start())), c.period.end().map(date));
        let row_identifier = identifier(&self.target.row_id_system, c.row_id.as_str());
        if relation_type(c) == Carrier::Task {
            let t = self.term;
            Resource::Task(Box::new(Task {
                id: Some(self.ids.relation("Task", &c.row_id).into()),
                meta: self.meta(),
                extension: self.register_change_extension(c),
                identifier: vec![row_identifier],
                // A request is work to do (requested); information given and a decline are done.
                status: if c.status() == ContactStatus::Requested {
                    "requested"
                } else {
                    "completed"
                }
                .into(),
                business_status: Some(Box::new(concept(vec![
                    t.coding(ids::ERBJUDANDE, offer_step(c.status()))
                ]))),
                intent: "proposal".into(),
                code: Some(Box::new(concept(vec![
                    t.coding(ids::ERBJUDANDE, "erbjudande-fast-kontakt")
                ]))),
                r#for: Some(Box::new(self.patient_reference(&c.patient))),
                execution_period: period,
                requester: Some(Box::new(org_ref)),
                owner: role_ref,
                input: vec![TaskInput {
                    r#type: Box::new(concept(vec![t.coding(ids::ERBJUDANDE, "kontakttyp")])),
                    value: TaskInputValue::CodeableConcept(Box::new(self.role_concept(c.kind))),
                    ..Default::default()
                }],
                ..Default::default()
            }))
        } else {
            let reason_code = match c.kind {
                ContactKind::Fvk {
                    at_discharge: true, ..
                } => {
                    vec![concept(vec![self
                        .term
                        .coding(ids::GRUND, "utskrivning-slutenvard")])]
                }
                _ => Vec::new(),
            };
            Resource::CareTeam(Box::new(CareTeam {
                id: Some(self.ids.relation("CareTeam", &c.row_id).into()),
                meta: self.meta(),
                extension: self.register_change_extension(c),
                identifier: vec![row_identifier],
                status: Some(
                    if c.status() == ContactStatus::Active {
                        "active"
                    } else {
                        "inactive"
                    }
                    .into(),
                ),
                category: self.category(c.kind),
                subject: Some(Box::new(self.patient_reference(&c.patient))),
                period,
                participant: vec![CareTeamParticipant {
                    role: vec![self.role_concept(c.kind)],
                    // The unit is the PractitionerRole's organization; R4's ctm-1 allows onBehalfOf
                    // only with a Practitioner member.
                    member: role_ref,
                    ..Default::default()
                }],
                reason_code,
                managing_organization: vec![org_ref],
                ..Default::default()
            }))
        }
    }

    /// The Patient: identifier, and generalPractitioner derived from the active FLK (its
    /// PractitionerRole) and the listing unit (its Organization).
    pub(crate) fn patient(
        &self,
        p: &PatientId,
        flk: Option<(&HsaId, &HsaId)>,
        listing: Option<&HsaId>,
    ) -> Resource {
        let mut gp = Vec::new();
        if let Some((staff, unit)) = flk {
            gp.push(reference(
                "PractitionerRole",
                &self.ids.practitioner_role(staff, unit),
                None,
            ));
        }
        if let Some(unit) = listing {
            gp.push(reference(
                "Organization",
                &self.ids.organization(unit),
                None,
            ));
        }
        Resource::Patient(Box::new(Patient {
            id: Some(self.ids.patient(p).into()),
            meta: self.meta(),
            identifier: vec![self.patient_identifier(p)],
            general_practitioner: gp,
            ..Default::default()
        }))
    }
}

impl Outbound<'_> {
    /// The Organization that stands for a principal (huvudman) in plans.
    pub(crate) fn principal(&self, p: crate::domain::Principal) -> Resource {
        let name = match p {
            crate::domain::Principal::Region => "Regionen",
            crate::domain::Principal::Municipality => "Kommunen",
            crate::domain::Principal::Other => "Annan aktör",
        };
        Resource::Organization(Box::new(Organization {
            id: Some(self.ids.principal(p.code()).into()),
            meta: self.meta(),
            r#type: vec![concept(vec![self.term.coding(ids::HUVUDMAN, p.code())])],
            name: Some(name.into()),
            ..Default::default()
        }))
    }

    fn activity(
        &self,
        code: &str,
        text: Option<&str>,
        performer: Vec<Reference>,
        when: Option<chrono::NaiveDate>,
    ) -> CarePlanActivity {
        CarePlanActivity {
            detail: Some(CarePlanActivityDetail {
                code: Some(Box::new(concept(vec![self
                    .term
                    .coding(ids::PLANAKTIVITET, code)]))),
                status: "scheduled".into(),
                description: text.map(Into::into),
                performer,
                scheduled: when.map(|d| {
                    CarePlanActivityDetailScheduled::Period(Box::new(Period {
                        start: Some(d.format("%Y-%m-%d").to_string().into()),
                        ..Default::default()
                    }))
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn practitioner_ref(&self, hsa: &HsaId) -> Reference {
        reference("Practitioner", &self.ids.practitioner(hsa), None)
    }

    /// A plan as CarePlan (plus, for a SIP, its Consent and the principals' Organizations). The
    /// structured parts are `activity.detail.code` from `planaktivitet`.
    pub fn care_plan(&self, plan: &crate::domain::CarePlanRecord) -> Vec<Resource> {
        use crate::domain::PlanBody;
        let mut out = Vec::new();
        let mut cp = CarePlan {
            id: Some(self.ids.plan(&plan.source_id).into()),
            meta: self.meta(),
            status: plan.status.code().into(),
            intent: "plan".into(),
            category: vec![concept(vec![
                self.term.coding(ids::PLANTYP, plan.kind().code()),
                TermCoding {
                    system: "http://snomed.info/sct".into(),
                    code: "734163000".into(),
                    display: Some("Care plan".into()),
                },
            ])],
            subject: Box::new(self.patient_reference(&plan.patient)),
            created: plan
                .created
                .map(|d| d.format("%Y-%m-%d").to_string().into()),
            ..Default::default()
        };
        let principal_ref = |p: crate::domain::Principal| {
            reference("Organization", &self.ids.principal(p.code()), None)
        };
        match &plan.body {
            PlanBody::Sip(sip) => {
                for i in &sip.interventions {
                    cp.activity.push(self.activity(
                        "insats",
                        Some(&i.description),
                        i.responsible.map(principal_ref).into_iter().collect(),
                        None,
                    ));
                }
                for m in &sip.measures_by_others {
                    cp.activity
                        .push(self.activity("atgard-annan", Some(m), Vec::new(), None));
                }
                cp.author = sip
                    .overall_responsibility
                    .map(|p| Box::new(principal_ref(p)));
                let mut principals: Vec<crate::domain::Principal> = sip
                    .interventions
                    .iter()
                    .filter_map(|i| i.responsible)
                    .chain(sip.overall_responsibility)
                    .collect();
                principals.sort();
                principals.dedup();
                out.extend(principals.into_iter().map(|p| self.principal(p)));
                if let Some(c) = &sip.consent {
                    let consent = Consent {
                        id: Some(c.id.as_str().into()),
                        meta: self.meta(),
                        status: if c.active { "active" } else { "inactive" }.into(),
                        scope: Box::new(concept(vec![TermCoding {
                            system: "http://terminology.hl7.org/CodeSystem/consentscope".into(),
                            code: "patient-privacy".into(),
                            display: Some("Privacy Consent".into()),
                        }])),
                        category: vec![concept(vec![TermCoding {
                            system: LOINC.into(),
                            code: "59284-0".into(),
                            display: Some("Patient Consent".into()),
                        }])],
                        patient: Some(Box::new(self.patient_reference(&plan.patient))),
                        date_time: c.date.map(|d| d.format("%Y-%m-%d").to_string().into()),
                        policy_rule: Some(Box::new(CodeableConcept {
                            text: Some("HSL 16 kap. 4 §".into()),
                            ..Default::default()
                        })),
                        ..Default::default()
                    };
                    cp.supporting_info.push(reference("Consent", &c.id, None));
                    out.push(Resource::Consent(Box::new(consent)));
                }
            }
            PlanBody::MedicalCarePlan(m) => {
                for (code, text) in [
                    ("prognos", &m.prognosis),
                    ("vardniva-vid-forsamring", &m.care_level_on_deterioration),
                    ("direktkontakt", &m.direct_contact),
                    (
                        "atgardsplan-vid-forsamring",
                        &m.action_plan_on_deterioration,
                    ),
                    ("behandlingsbegransning", &m.treatment_limitations),
                ] {
                    if let Some(t) = text {
                        cp.activity
                            .push(self.activity(code, Some(t), Vec::new(), None));
                    }
                }
                if let Some(f) = &m.follow_up {
                    cp.activity.push(self.activity(
                        "uppfoljning",
                        None,
                        f.by.iter().map(|h| self.practitioner_ref(h)).collect(),
                        f.when,
                    ));
                }
                cp.author = m
                    .author
                    .as_ref()
                    .map(|h| Box::new(self.practitioner_ref(h)));
            }
            PlanBody::DocumentedAgreement(a) => {
                for t in &a.patient_commitments {
                    cp.activity.push(self.activity(
                        "patientens-atagande",
                        Some(t),
                        Vec::new(),
                        None,
                    ));
                }
                for t in &a.care_commitments {
                    cp.activity
                        .push(self.activity("vardens-atagande", Some(t), Vec::new(), None));
                }
                if let Some(d) = a.next_contact {
                    cp.activity
                        .push(self.activity("nasta-kontakt", None, Vec::new(), Some(d)));
                }
                cp.contributor = a
                    .named_contacts
                    .iter()
                    .map(|h| self.practitioner_ref(h))
                    .collect();
            }
        }
        out.push(Resource::CarePlan(Box::new(cp)));
        out
    }
}

/// The offer Task's business status for a step of the offer.
pub(crate) fn offer_step(s: ContactStatus) -> &'static str {
    match s {
        ContactStatus::Requested => "begart",
        ContactStatus::Informed => "informerad",
        _ => "avbojt",
    }
}

/// The resource a contact becomes: a step of the offer (informed, requested, declined) is a
/// Task (the offer), an appointed or ended contact a CareTeam.
pub(crate) fn relation_type(c: &FixedContact) -> Carrier {
    if c.status().is_offer() {
        Carrier::Task
    } else {
        Carrier::CareTeam
    }
}

/// The FHIR resource that carries a register relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Carrier {
    /// An active or ended fixed contact.
    CareTeam,
    /// A step of the offer of a fixed contact (informed, requested, declined).
    Task,
}

impl Carrier {
    /// The resource type's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Carrier::CareTeam => "CareTeam",
            Carrier::Task => "Task",
        }
    }

    /// The carrier named by a resource type, if it is one.
    pub(crate) fn from_type_name(t: &str) -> Option<Carrier> {
        match t {
            "CareTeam" => Some(Carrier::CareTeam),
            "Task" => Some(Carrier::Task),
            _ => None,
        }
    }
}

/// Type and id of a resource this module built.
pub(crate) fn type_and_id(r: &Resource) -> (&'static str, String) {
    (
        super::model::type_name(r),
        r.id().and_then(|i| i.value.clone()).unwrap_or_default(),
    )
}

/// A code the product's CodeSystem lacks, in the source's own system, display the word.
fn unlisted(system: &str, word: &str) -> TermCoding {
    TermCoding {
        system: system.to_owned(),
        code: word.to_owned(),
        display: Some(word.to_owned()),
    }
}

/// Collects resources once each (by type and id), for a transaction Bundle or NDJSON.
#[derive(Default)]
pub(crate) struct ResourceSet {
    seen: HashSet<(&'static str, String)>,
    resources: Vec<Resource>,
}

impl ResourceSet {
    /// Adds the resource unless one with the same type and id is in already; says whether it was new.
    pub(crate) fn add(&mut self, r: Resource) -> bool {
        let key = type_and_id(&r);
        if self.seen.insert(key) {
            self.resources.push(r);
            true
        } else {
            false
        }
    }
    pub(crate) fn into_resources(self) -> Vec<Resource> {
        self.resources
    }
}
