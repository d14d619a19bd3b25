//! FHIR R4 → the EHR-only facts per patient (`PatientContext`): flags, conditions, observations,
//! encounters, deceased, listing, plans with their consent, and the staff directory (which
//! person holds an active role at which unit). Carriers are named in `mappings/ehr/`.

use super::inbound::{Inbound, Index, PatientStub};
use crate::domain::context::{Availability, MunicipalCareForm, PatientContext, PatientGroup};
use crate::domain::identity::{HsaId, PatientId};
use crate::domain::plan::{
    CarePlanRecord, Consent as DomainConsent, DocumentedAgreement, FollowUp, Intervention,
    MedicalCarePlan, PlanBody, PlanKind, PlanStatus, Principal, Sip,
};
use crate::mapping::ehr::Code;
use crate::mapping::Mappings;
use crate::sources::ehr::account::Verdict;
use chrono::NaiveDate;
use fhirbolt::model::r4::resources::{CarePlan, CarePlanActivityDetailScheduled, ObservationValue};
use fhirbolt::model::r4::types::{CodeableConcept, Reference};
use fhirbolt::model::r4::Resource;
use std::collections::HashSet;

fn has(cc: &CodeableConcept, code: &Code) -> bool {
    cc.coding.iter().any(|c| {
        c.system.as_ref().and_then(|s| s.value.as_deref()) == Some(code.0.as_str())
            && c.code.as_ref().and_then(|s| s.value.as_deref()) == Some(code.1.as_str())
    })
}

fn code_in<'a>(cc: &'a CodeableConcept, system: &str) -> Option<&'a str> {
    cc.coding.iter().find_map(|c| {
        (c.system.as_ref().and_then(|s| s.value.as_deref()) == Some(system))
            .then(|| c.code.as_ref()?.value.as_deref())?
    })
}

fn date_of(s: Option<&str>) -> Option<NaiveDate> {
    let s = s?;
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

fn string(s: &Option<fhirbolt::model::r4::types::String>) -> Option<String> {
    s.as_ref().and_then(|v| v.value.clone())
}

/// Everything the EHR side says beyond its contacts.
#[derive(Debug, Default)]
pub struct EhrFacts {
    /// What the EHR knows of each patient with a fact beyond its Patient resource.
    pub contexts: foldhash::HashMap<PatientId, PatientContext>,
    /// Listing and death of the patients whose Patient resource is all the EHR says of them:
    /// a region's every patient has one, so not a whole context each (32 bytes a patient
    /// here, 112 as a context). A patient in `contexts` has its listing and death there.
    pub(crate) listed: ListedPatients,
    /// Which kinds of fact the data holds at all.
    pub availability: Availability,
    /// (staff, unit) pairs with an active PractitionerRole: the person is selectable there.
    pub(crate) directory: HashSet<(HsaId, HsaId)>,
    /// Physicians with an active role at a specialist or inpatient unit: who may write a
    /// medical care plan as "den behandlande läkaren inom specialistvården" (Örebro §9.2).
    pub(crate) specialist_physicians: HashSet<HsaId>,
}

/// What a Patient resource alone says: its listing unit (shared: a region names a few
/// hundred) and whether the patient has died.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listed {
    listing: Option<std::sync::Arc<HsaId>>,
    deceased: bool,
}

/// Each listed patient's `Listed`: found and changed by patient while the facts are read, then
/// (`freeze`) a list sorted by patient, read by halving: 32 bytes a patient, where the map's
/// table took 69 MB at a million patients, at the run's peak.
#[derive(Debug, Default)]
pub(crate) struct ListedPatients {
    open: foldhash::HashMap<PatientId, Listed>,
    frozen: Vec<(PatientId, Listed)>,
    /// Each patient's place in `frozen`.
    frozen_at: crate::domain::identity::PatientPositions,
}

impl ListedPatients {
    /// The map, taking the frozen list back into it first (nothing does after `freeze` today).
    fn open(&mut self) -> &mut foldhash::HashMap<PatientId, Listed> {
        if !self.frozen.is_empty() {
            self.open.extend(std::mem::take(&mut self.frozen));
            self.frozen_at = Default::default();
        }
        &mut self.open
    }

    fn get(&self, p: &PatientId) -> Option<&Listed> {
        self.open.get(p).or_else(|| {
            let at = self
                .frozen_at
                .find(p, |i| Some(&self.frozen[i as usize].0))?;
            Some(&self.frozen[at as usize].1)
        })
    }

    fn remove(&mut self, p: &PatientId) -> Option<Listed> {
        self.open().remove(p)
    }

    /// Sorts the patients into the list, once the facts are read.
    fn freeze(&mut self) {
        use rayon::slice::ParallelSliceMut;
        let open = std::mem::take(self.open());
        let mut frozen: Vec<(PatientId, Listed)> = Vec::with_capacity(open.len());
        frozen.extend(open);
        frozen.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.frozen_at =
            crate::domain::identity::PatientPositions::new(frozen.len(), |i| &frozen[i as usize].0);
        self.frozen = frozen;
    }

    #[cfg(test)]
    fn contains_key(&self, p: &PatientId) -> bool {
        self.get(p).is_some()
    }
}

impl Listed {
    fn into_context(self) -> PatientContext {
        PatientContext {
            listing: self.listing.map(|l| (*l).clone()),
            deceased: self.deceased,
            ..PatientContext::default()
        }
    }
}

impl EhrFacts {
    /// The patient's context, made when it has none (taking over its listing and death).
    pub(crate) fn context(&mut self, p: PatientId) -> &mut PatientContext {
        let EhrFacts {
            contexts, listed, ..
        } = self;
        contexts.entry(p).or_insert_with_key(|p| {
            listed
                .remove(p)
                .map(Listed::into_context)
                .unwrap_or_default()
        })
    }

    /// What the EHR knows of the patient, if anything: its context, or one made of its
    /// listing and death.
    pub(crate) fn context_of(&self, p: &PatientId) -> Option<std::borrow::Cow<'_, PatientContext>> {
        match self.contexts.get(p) {
            Some(c) => Some(std::borrow::Cow::Borrowed(c)),
            None => self
                .listed
                .get(p)
                .map(|l| std::borrow::Cow::Owned(l.clone().into_context())),
        }
    }

    /// Every patient the facts name.
    #[cfg(test)]
    fn patients(&self) -> impl Iterator<Item = &PatientId> {
        let (unordered, listed) = self.patients_in_parts();
        unordered.chain(listed)
    }

    /// Every patient the facts name, in two parts: those in no order (the contexts, a few),
    /// and the listed ones in order once frozen (a region's every patient).
    pub(crate) fn patients_in_parts(
        &self,
    ) -> (
        impl Iterator<Item = &PatientId>,
        impl Iterator<Item = &PatientId>,
    ) {
        let l = &self.listed;
        (
            self.contexts.keys().chain(l.open.keys()),
            l.frozen.iter().map(|(p, _)| p),
        )
    }

    /// Takes in the patients of `other` that `keep` selects (`other` is left without any).
    pub(crate) fn absorb_patients(
        &mut self,
        other: &mut EhrFacts,
        keep: impl Fn(&PatientId) -> bool,
    ) {
        for (p, c) in std::mem::take(&mut other.contexts) {
            if keep(&p) {
                self.context(p).absorb(c);
            }
        }
        for (p, l) in std::mem::take(other.listed.open()) {
            if keep(&p) {
                self.add_listed(p, l);
            }
        }
    }

    /// Keeps only the patients `keep` selects.
    pub(crate) fn retain_patients(&mut self, keep: impl Fn(&PatientId) -> bool) {
        self.contexts.retain(|p, _| keep(p));
        self.listed.open().retain(|p, _| keep(p));
    }

    /// The facts are read: the listed patients are kept in their compact, sorted form.
    pub(crate) fn freeze(&mut self) {
        self.listed.freeze();
    }

    fn add_listed(&mut self, p: PatientId, l: Listed) {
        if let Some(ctx) = self.contexts.get_mut(&p) {
            ctx.deceased |= l.deceased;
            if ctx.listing.is_none() {
                ctx.listing = l.listing.map(|h| (*h).clone());
            }
            return;
        }
        let kept = self.listed.open().entry(p).or_default();
        kept.deceased |= l.deceased;
        if kept.listing.is_none() {
            kept.listing = l.listing;
        }
    }
}

/// Reads the EHR-only facts (Flags, Conditions, Observations, Encounters, plans).
pub struct ContextReader<'m> {
    m: &'m Mappings,
}

impl<'m> ContextReader<'m> {
    /// A reader under the mappings' carriers.
    pub fn new(m: &'m Mappings) -> Self {
        ContextReader { m }
    }

    fn patient(&self, idx: &Index, r: Option<&Reference>) -> Option<PatientId> {
        let r = r?;
        match idx.patient(r).as_deref().and_then(PatientStub::id) {
            Some(id) => id.ok().cloned(),
            None => r
                .identifier
                .as_deref()
                .and_then(|i| Inbound::patient_id(std::slice::from_ref(i)))
                .and_then(Result::ok),
        }
    }

    /// A PractitionerRole of a physician (its `code` from the yrke CodeSystem) at a specialist
    /// clinic or an inpatient unit (the Organization's enhetstyp).
    fn specialist_physician_role(
        &self,
        idx: &Index,
        pr: &fhirbolt::model::r4::resources::PractitionerRole,
    ) -> bool {
        use crate::domain::{Profession, UnitKind};
        use crate::mapping::terminology::ids;
        let t = &self.m.terminology;
        let physician = pr
            .code
            .iter()
            .filter_map(|c| code_in(c, t.url(ids::YRKE)))
            .any(|c| c == Profession::PHYSICIAN);
        let unit = match pr
            .organization
            .as_deref()
            .and_then(|r| idx.get(r))
            .as_deref()
        {
            Some(Resource::Organization(o)) => o
                .r#type
                .iter()
                .find_map(|c| code_in(c, t.url(ids::ENHETSTYP)))
                .and_then(UnitKind::from_code),
            _ => None,
        };
        physician
            && matches!(
                unit,
                Some(UnitKind::SpecialistClinic | UnitKind::InpatientWard)
            )
    }

    fn hsa_of(&self, idx: &Index, r: Option<&Reference>) -> Option<HsaId> {
        let hsa = |ids: &[fhirbolt::model::r4::types::Identifier]| {
            ids.iter().find_map(|i| {
                let sys = i.system.as_ref()?.value.as_deref()?;
                (super::systems::classify(sys) == super::systems::IdentifierKind::Hsa)
                    .then(|| HsaId::parse(i.value.as_ref()?.value.as_deref()?).ok())?
            })
        };
        match idx.get(r?)?.as_ref() {
            Resource::PractitionerRole(pr) => {
                match pr
                    .practitioner
                    .as_deref()
                    .and_then(|p| idx.get(p))
                    .as_deref()
                {
                    Some(Resource::Practitioner(p)) => hsa(&p.identifier),
                    _ => None,
                }
            }
            Resource::Practitioner(p) => hsa(&p.identifier),
            Resource::Organization(o) => hsa(&o.identifier),
            _ => None,
        }
    }

    /// A unit's HSA-id: the Organization's in the data, or a logical reference's identifier.
    fn unit_hsa(&self, idx: &Index, r: &Reference) -> Option<HsaId> {
        self.hsa_of(idx, Some(r)).or_else(|| {
            let i = r.identifier.as_deref()?;
            let sys = i.system.as_ref()?.value.as_deref()?;
            (super::systems::classify(sys) == super::systems::IdentifierKind::Hsa)
                .then(|| HsaId::parse(i.value.as_ref()?.value.as_deref()?).ok())?
        })
    }

    fn principal(&self, idx: &Index, r: Option<&Reference>) -> Option<Principal> {
        match idx.get(r?)?.as_ref() {
            Resource::Organization(o) => o.r#type.iter().find_map(|t| {
                code_in(t, &self.m.ehr.principal_system).and_then(Principal::from_code)
            }),
            _ => None,
        }
    }

    fn plan(
        &self,
        idx: &Index,
        cp: &CarePlan,
        kind: PlanKind,
        patient: PatientId,
    ) -> CarePlanRecord {
        let act = &self.m.ehr.plan_activity_system;
        let details: Vec<(
            &str,
            &fhirbolt::model::r4::resources::CarePlanActivityDetail,
        )> = cp
            .activity
            .iter()
            .filter_map(|a| {
                let d = a.detail.as_ref()?;
                Some((code_in(d.code.as_deref()?, act)?, d))
            })
            .collect();
        let text_of = |code: &str| {
            details
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, d)| string(&d.description).unwrap_or_default())
        };
        let texts_of = |code: &str| -> Vec<String> {
            details
                .iter()
                .filter(|(c, _)| *c == code)
                .map(|(_, d)| string(&d.description).unwrap_or_default())
                .collect()
        };
        let scheduled =
            |d: &fhirbolt::model::r4::resources::CarePlanActivityDetail| match &d.scheduled {
                Some(CarePlanActivityDetailScheduled::Period(p)) => {
                    date_of(p.start.as_ref().and_then(|s| s.value.as_deref()))
                }
                Some(CarePlanActivityDetailScheduled::String(s)) => date_of(s.value.as_deref()),
                _ => None,
            };
        let body = match kind {
            PlanKind::Sip => {
                let consent = cp
                    .supporting_info
                    .iter()
                    .find_map(|r| match idx.get(r).as_deref() {
                        Some(Resource::Consent(c)) => Some(DomainConsent {
                            id: c
                                .id
                                .as_ref()
                                .and_then(|i| i.value.clone())
                                .unwrap_or_default(),
                            active: c.status.value.as_deref() == Some("active"),
                            date: date_of(c.date_time.as_ref().and_then(|d| d.value.as_deref())),
                        }),
                        _ => None,
                    });
                let interventions = details
                    .iter()
                    .filter(|(c, _)| *c == "insats")
                    .map(|(_, d)| Intervention {
                        description: string(&d.description).unwrap_or_default(),
                        responsible: d
                            .performer
                            .iter()
                            .find_map(|p| self.principal(idx, Some(p))),
                    })
                    .collect();
                PlanBody::Sip(Sip {
                    consent,
                    interventions,
                    measures_by_others: texts_of("atgard-annan"),
                    overall_responsibility: self.principal(idx, cp.author.as_deref()),
                })
            }
            PlanKind::MedicalCarePlan => {
                let follow = details
                    .iter()
                    .find(|(c, _)| *c == "uppfoljning")
                    .map(|(_, d)| FollowUp {
                        when: scheduled(d),
                        by: d.performer.iter().find_map(|p| self.hsa_of(idx, Some(p))),
                    });
                PlanBody::MedicalCarePlan(MedicalCarePlan {
                    prognosis: text_of("prognos"),
                    care_level_on_deterioration: text_of("vardniva-vid-forsamring"),
                    direct_contact: text_of("direktkontakt"),
                    action_plan_on_deterioration: text_of("atgardsplan-vid-forsamring"),
                    follow_up: follow,
                    treatment_limitations: text_of("behandlingsbegransning"),
                    author: self.hsa_of(idx, cp.author.as_deref()),
                })
            }
            PlanKind::DocumentedAgreement => {
                let named_contacts = cp
                    .care_team
                    .iter()
                    .filter_map(|r| match idx.get(r).as_deref() {
                        Some(Resource::CareTeam(ct)) => ct
                            .participant
                            .first()
                            .and_then(|p| self.hsa_of(idx, p.member.as_deref())),
                        _ => None,
                    })
                    .chain(
                        cp.contributor
                            .iter()
                            .filter_map(|r| self.hsa_of(idx, Some(r))),
                    )
                    .collect();
                PlanBody::DocumentedAgreement(DocumentedAgreement {
                    patient_commitments: texts_of("patientens-atagande"),
                    care_commitments: texts_of("vardens-atagande"),
                    named_contacts,
                    next_contact: details
                        .iter()
                        .find(|(c, _)| *c == "nasta-kontakt")
                        .and_then(|(_, d)| scheduled(d)),
                })
            }
        };
        CarePlanRecord {
            source_id: format!(
                "CarePlan/{}",
                cp.id
                    .as_ref()
                    .and_then(|i| i.value.clone())
                    .unwrap_or_default()
            ),
            patient,
            status: cp
                .status
                .value
                .as_deref()
                .and_then(PlanStatus::from_code)
                .unwrap_or(PlanStatus::Unknown),
            created: date_of(cp.created.as_ref().and_then(|d| d.value.as_deref())),
            body,
        }
    }

    /// Reads every fact the EHR mapping names out of `resources` and the index's Patients.
    pub fn read(&self, idx: &Index, resources: &[&Resource]) -> EhrFacts {
        let mut out = EhrFacts::default();
        self.patient_facts(idx, &|_| true, &mut out);
        self.read_into(idx, resources, &mut out);
        out
    }

    /// Death and listing from the index's Patients, for those `keep` selects.
    pub(crate) fn patient_facts(
        &self,
        idx: &Index,
        keep: &dyn Fn(&PatientId) -> bool,
        out: &mut EhrFacts,
    ) {
        let inbound = Inbound::new(self.m);
        let mut units = crate::domain::Interner::default();
        for p in idx.patients() {
            let Some(Ok(id)) = p.id() else { continue };
            // A Patient resource can say it is deceased: that makes death data available.
            out.availability.deceased_or_moved = true;
            if !keep(id) {
                continue;
            }
            let listing = inbound.listing_of(idx, &p).map(|h| {
                let mut h = std::sync::Arc::new(h);
                units.share(&mut h);
                h
            });
            out.add_listed(
                id.clone(),
                Listed {
                    listing,
                    deceased: p.deceased,
                },
            );
        }
    }

    /// An Observation: municipal care form, patient group or large care needs.
    fn observation(
        &self,
        idx: &Index,
        o: &fhirbolt::model::r4::resources::Observation,
        out: &mut EhrFacts,
    ) -> Verdict {
        let e = &self.m.ehr;
        let a = &mut out.availability;
        let current = !matches!(
            o.status.value.as_deref(),
            Some("entered-in-error" | "cancelled")
        );
        if o.subject.is_none() {
            return Verdict::not_used("no subject");
        }
        let Some(id) = self.patient(idx, o.subject.as_deref()) else {
            return Verdict::not_used("its patient has no Swedish identity number in the data");
        };
        let value = match &o.value {
            Some(ObservationValue::CodeableConcept(cc)) => Some(&**cc),
            _ => None,
        };
        if has(&o.code, &e.municipal_care_observation) {
            a.municipal_care = true;
            if let Some(form) = value
                .and_then(|v| code_in(v, &e.municipal_care_system))
                .and_then(MunicipalCareForm::from_code)
            {
                if current {
                    out.context(id).municipal_care.push(form);
                }
            }
        } else if has(&o.code, &e.patient_group_observation) {
            a.patient_groups = true;
            if let Some(g) = value
                .and_then(|v| code_in(v, &e.patient_group_system))
                .and_then(PatientGroup::from_code)
            {
                if current {
                    out.context(id).groups.push(g);
                }
            }
        } else if has(&o.code, &e.large_care_needs) {
            a.large_care_needs = true;
            out.context(id).large_care_needs |= current;
        } else {
            return Verdict::not_used("an Observation of other codes");
        }
        Verdict::Used
    }

    /// A CarePlan of a kind the mapping names (one the plan rules read).
    pub(crate) fn is_read_plan(&self, cp: &CarePlan) -> bool {
        cp.category
            .iter()
            .find_map(|c| code_in(c, &self.m.ehr.plan_category_system))
            .and_then(PlanKind::from_code)
            .is_some()
    }

    /// Reads the facts of `resources` into `out` (Patients come from the index instead).
    pub(crate) fn read_into(&self, idx: &Index, resources: &[&Resource], out: &mut EhrFacts) {
        for r in resources {
            self.fact(idx, r, out);
        }
    }

    /// As `read_into`, with a verdict for each resource given: used, or why not.
    pub(crate) fn judge_into(
        &self,
        idx: &Index,
        resources: &[&Resource],
        out: &mut EhrFacts,
    ) -> Vec<Verdict> {
        resources.iter().map(|r| self.fact(idx, r, out)).collect()
    }

    /// The facts of one resource, into `out`.
    fn fact(&self, idx: &Index, r: &Resource, out: &mut EhrFacts) -> Verdict {
        let e = &self.m.ehr;
        let no_patient =
            || Verdict::not_used("its patient has no Swedish identity number in the data");
        {
            let a = &mut out.availability;
            match r {
                Resource::Flag(f) => {
                    let active = f.status.value.as_deref() == Some("active");
                    let Some(id) = self.patient(idx, Some(&f.subject)) else {
                        return no_patient();
                    };
                    if has(&f.code, &e.life_threatening_flag) {
                        a.life_threatening = true;
                        out.context(id).life_threatening |= active;
                    } else if has(&f.code, &e.moved_out_flag) {
                        a.deceased_or_moved = true;
                        out.context(id).moved_out |= active;
                    } else if has(&f.code, &e.large_care_needs) {
                        a.large_care_needs = true;
                        out.context(id).large_care_needs |= active;
                    } else {
                        return Verdict::not_used("a Flag of none of the codes the mapping names");
                    }
                }
                Resource::Condition(c) => {
                    if !c
                        .category
                        .iter()
                        .any(|cc| has(cc, &e.life_threatening_condition))
                    {
                        return Verdict::not_used(
                            "a Condition not of the life-threatening category the mapping names",
                        );
                    }
                    a.life_threatening = true;
                    let active = c.clinical_status.as_deref().is_none_or(|s| {
                        s.coding.iter().any(|c| {
                            c.code.as_ref().and_then(|v| v.value.as_deref()) == Some("active")
                        })
                    });
                    if let Some(id) = self.patient(idx, Some(&c.subject)) {
                        out.context(id).life_threatening |= active;
                    }
                }
                Resource::Observation(o) => return self.observation(idx, o, out),
                Resource::EpisodeOfCare(ep) => {
                    let forms: Vec<MunicipalCareForm> = ep
                        .r#type
                        .iter()
                        .filter_map(|t| {
                            code_in(t, &e.municipal_care_system)
                                .and_then(MunicipalCareForm::from_code)
                        })
                        .collect();
                    if forms.is_empty() {
                        return Verdict::not_used("an EpisodeOfCare of no municipal care form");
                    }
                    a.municipal_care = true;
                    if ep.status.value.as_deref() == Some("active") {
                        if let Some(id) = self.patient(idx, Some(&ep.patient)) {
                            out.context(id).municipal_care.extend(forms);
                        }
                    }
                }
                Resource::Encounter(enc) => {
                    let class = &enc.class;
                    let is_class = class.system.as_ref().and_then(|s| s.value.as_deref())
                        == Some(e.discharge_class.0.as_str())
                        && class.code.as_ref().and_then(|s| s.value.as_deref())
                            == Some(e.discharge_class.1.as_str());
                    if !is_class {
                        return Verdict::not_used(
                            "an Encounter not of the inpatient class the mapping names",
                        );
                    }
                    a.discharge = true;
                    let pending = enc.status.value.as_deref() == Some("in-progress")
                        && enc
                            .hospitalization
                            .as_ref()
                            .is_some_and(|h| h.discharge_disposition.is_some());
                    if let Some(id) = self.patient(idx, enc.subject.as_deref()) {
                        out.context(id).discharge_pending |= pending;
                    }
                }
                Resource::Task(task) => {
                    let uppgift = self
                        .m
                        .terminology
                        .url(crate::mapping::terminology::ids::PATIENTUPPGIFT);
                    let inform = task.code.as_deref().is_some_and(|cc| {
                        has(
                            cc,
                            &(
                                uppgift.to_owned(),
                                "informera-om-fast-vardkontakt".to_owned(),
                            ),
                        )
                    });
                    if !inform {
                        return Verdict::NotJudged; // an offer, judged by the contact reader
                    }
                    a.inform_tasks = true;
                    let open = matches!(
                        task.status.value.as_deref(),
                        Some(
                            "requested"
                                | "received"
                                | "accepted"
                                | "ready"
                                | "in-progress"
                                | "on-hold"
                        )
                    );
                    let Some(id) = self.patient(idx, task.r#for.as_deref()) else {
                        return no_patient();
                    };
                    if open {
                        let since = task
                            .authored_on
                            .as_ref()
                            .and_then(|d| d.value.as_deref())
                            .and_then(|d| d.get(..10))
                            .and_then(|d| d.parse().ok());
                        let unit = task.owner.as_deref().and_then(|r| self.unit_hsa(idx, r));
                        let tid = task
                            .id
                            .as_ref()
                            .and_then(|i| i.value.as_deref())
                            .unwrap_or("");
                        out.context(id)
                            .open_inform_tasks
                            .push(crate::domain::OpenInformTask {
                                source: format!("Task/{tid}"),
                                since,
                                unit,
                            });
                    }
                }
                Resource::Communication(c) => {
                    if !c.category.iter().any(|cc| has(cc, &e.admission_notice)) {
                        return Verdict::not_used(
                            "a Communication of no category the mapping names",
                        );
                    }
                    a.admission_notices = true;
                    let sent =
                        matches!(c.status.value.as_deref(), Some("in-progress" | "completed"));
                    if !sent {
                        return Verdict::not_used("an admission notice not sent (status)");
                    }
                    let Some(id) = self.patient(idx, c.subject.as_deref()) else {
                        return no_patient();
                    };
                    let units: Vec<HsaId> = c
                        .recipient
                        .iter()
                        .filter_map(|r| self.unit_hsa(idx, r))
                        .collect();
                    if units.is_empty() {
                        return Verdict::not_used(
                            "an admission notice whose recipient has no HSA-id in the data",
                        );
                    }
                    out.context(id).admission_notices.extend(units);
                }
                Resource::CarePlan(cp) => {
                    let Some(kind) = cp
                        .category
                        .iter()
                        .find_map(|c| code_in(c, &e.plan_category_system))
                        .and_then(PlanKind::from_code)
                    else {
                        return Verdict::not_used("a CarePlan of no category the mapping names");
                    };
                    a.plans = true;
                    let Some(id) = self.patient(idx, Some(&cp.subject)) else {
                        return no_patient();
                    };
                    let plan = self.plan(idx, cp, kind, id.clone());
                    out.context(id).plans.push(plan);
                }
                Resource::PractitionerRole(pr) => {
                    a.staff_directory = true;
                    let active = pr.active.as_ref().and_then(|b| b.value) != Some(false);
                    let staff = self.hsa_of(idx, pr.practitioner.as_deref());
                    let unit = self.hsa_of(idx, pr.organization.as_deref());
                    match (active, staff, unit) {
                        (true, Some(s), Some(u)) => {
                            if self.specialist_physician_role(idx, pr) {
                                out.specialist_physicians.insert(s.clone());
                            }
                            out.directory.insert((s, u));
                        }
                        (false, ..) => return Verdict::not_used("inactive (active = false)"),
                        (_, None, _) => {
                            return Verdict::not_used("its practitioner has no HSA-id in the data")
                        }
                        (_, _, None) => {
                            return Verdict::not_used("its organization has no HSA-id in the data")
                        }
                    }
                }
                _ => return Verdict::NotJudged,
            }
        }
        Verdict::Used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(unit: &str, deceased: bool) -> Listed {
        Listed {
            listing: Some(std::sync::Arc::new(HsaId::parse(unit).unwrap())),
            deceased,
        }
    }

    #[test]
    fn a_patient_with_only_a_listing_reads_as_a_context_and_keeps_it_when_a_fact_arrives() {
        let p = PatientId::parse("19121212-1212").unwrap();
        let q = PatientId::parse("19870101-0004").unwrap();
        let unit = "SE2321000164-1001";
        let mut f = EhrFacts::default();
        f.add_listed(p.clone(), listed(unit, true));
        f.add_listed(q.clone(), listed(unit, false));
        let ctx = f.context_of(&p).unwrap();
        assert_eq!(ctx.listing.as_ref().map(HsaId::as_str), Some(unit));
        assert!(ctx.deceased);
        assert!(f
            .context_of(&PatientId::parse("19900101-0017").unwrap())
            .is_none());
        // A fact for the patient makes its context, with the listing and death it had.
        f.context(p.clone()).life_threatening = true;
        assert!(!f.listed.contains_key(&p));
        let ctx = f.context_of(&p).unwrap();
        assert!(ctx.life_threatening && ctx.deceased);
        assert_eq!(ctx.listing.as_ref().map(HsaId::as_str), Some(unit));
        // Facts read elsewhere join: a context into a listed patient, a listing into a context.
        let mut other = EhrFacts::default();
        other.context(q.clone()).moved_out = true;
        other.add_listed(p.clone(), listed("SE2321000164-2002", false));
        f.absorb_patients(&mut other, |_| true);
        let ctx = f.context_of(&q).unwrap();
        assert!(ctx.moved_out);
        assert_eq!(ctx.listing.as_ref().map(HsaId::as_str), Some(unit));
        assert_eq!(
            f.context_of(&p)
                .unwrap()
                .listing
                .as_ref()
                .map(HsaId::as_str),
            Some(unit),
            "the first listing read stays"
        );
        let mut seen: Vec<_> = f.patients().collect();
        seen.sort();
        assert_eq!(seen.len(), 2);
    }
}
