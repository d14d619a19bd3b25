//! The rules' logic, one patient at a time: given the register's and the EHR's contacts and the
//! EHR-only facts, emit findings. A rule without its data records "not evaluated" once per run.

use super::catalogue::RuleId;
use super::matching::{compare, Discrepancy};
use super::profile::{NeededContact, Profile, Requirement};
use super::{Finding, NotEvaluated, Severity};
use crate::domain::plan::PlanBody;
use crate::domain::{
    Availability, ContactKind, ContactStatus, FixedContact, HsaId, PatientContext, PatientId,
    Profession, UnitKind,
};
use chrono::NaiveDate;
use std::collections::{BTreeSet, HashSet};

/// A contact and where it came from (`FILE:LINE Rad-id`, or `CareTeam/id`).
pub type Sourced<'a> = (&'a FixedContact, &'a str);

pub struct PatientData<'a> {
    pub patient: &'a PatientId,
    pub register: Vec<Sourced<'a>>,
    pub ehr: Vec<Sourced<'a>>,
    pub context: Option<&'a PatientContext>,
    /// Some of the patient's register rows were rejected: the EHR's extra contacts may be those.
    pub held: bool,
}

#[derive(Default)]
struct Extra {
    register: Option<String>,
    ehr: Option<String>,
    unit: Option<HsaId>,
    sources: Vec<String>,
    expression: Option<String>,
}

pub struct Engine<'p> {
    pub profile: &'p Profile,
    pub availability: Availability,
    pub directory: &'p HashSet<(HsaId, HsaId)>,
    pub as_of: NaiveDate,
    pub not_evaluated: BTreeSet<NotEvaluated>,
}

fn describe(c: &FixedContact) -> String {
    let who = c
        .staff()
        .map(|s| format!("{} ({})", s.name.as_deref().unwrap_or("?"), s.hsa))
        .unwrap_or_else(|| "no one".into());
    let unit = c
        .unit
        .name
        .clone()
        .unwrap_or_else(|| c.unit.hsa.to_string());
    let status = match c.status() {
        ContactStatus::Active => "active".to_owned(),
        ContactStatus::Ended => format!(
            "ended {}",
            c.period
                .end()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "(no end date)".into())
        ),
        ContactStatus::Declined => "declined".to_owned(),
    };
    format!(
        "{} {who} at {unit}, from {}, {status}",
        c.kind,
        c.period.start()
    )
}

fn expression_for(source: &str) -> Option<String> {
    let t = source.split('/').next()?;
    matches!(t, "CareTeam" | "Task" | "CarePlan").then(|| t.to_string())
}

impl<'p> Engine<'p> {
    pub fn new(
        profile: &'p Profile,
        availability: Availability,
        directory: &'p HashSet<(HsaId, HsaId)>,
        as_of: NaiveDate,
    ) -> Self {
        Engine {
            profile,
            availability,
            directory,
            as_of,
            not_evaluated: BTreeSet::new(),
        }
    }

    /// Records that a rule could not run; true when it can.
    fn needs(&mut self, rule: RuleId, available: bool, what: &str) -> bool {
        if !available && self.profile.enabled(rule.as_str()) {
            self.not_evaluated.insert(NotEvaluated {
                rule: rule.as_str(),
                reason: format!("no data: {what}"),
            });
        }
        available
    }

    fn emit(
        &self,
        out: &mut Vec<Finding>,
        rule: RuleId,
        severity: Option<Severity>,
        patient: &PatientId,
        message: String,
        x: Extra,
    ) {
        if !self.profile.enabled(rule.as_str()) {
            return;
        }
        let r = rule.rule();
        let severity = self
            .profile
            .severity
            .get(r.id)
            .copied()
            .or(severity)
            .unwrap_or(r.severity);
        out.push(Finding {
            rule: r.id,
            severity,
            patient: patient.expose(),
            message,
            basis: r.basis,
            register: x.register,
            ehr: x.ehr,
            unit: x.unit,
            sources: x.sources,
            expression: x.expression,
        });
    }

    fn active<'a>(&self, v: &[Sourced<'a>]) -> Vec<Sourced<'a>> {
        v.iter()
            .filter(|(c, _)| c.is_active_on(self.as_of))
            .copied()
            .collect()
    }

    pub fn check(&mut self, d: &PatientData, out: &mut Vec<Finding>) {
        let a = self.availability;
        let p = d.patient;
        let empty = PatientContext::default();
        let ctx = d.context.unwrap_or(&empty);
        // The contacts the rules judge: the register's when there is one (the EHR's discharge
        // FVKs added, since the register need not hold them), else the EHR's.
        let mut view: Vec<Sourced> = if a.register {
            d.register.clone()
        } else {
            d.ehr.clone()
        };
        if a.register {
            view.extend(d.ehr.iter().filter(|(c, _)| {
                matches!(
                    c.kind,
                    ContactKind::Fvk {
                        at_discharge: true,
                        ..
                    }
                )
            }));
        }
        let active = self.active(&view);
        let fvks: Vec<Sourced> = active
            .iter()
            .filter(|(c, _)| c.kind.is_fvk())
            .copied()
            .collect();
        let flks: Vec<Sourced> = active
            .iter()
            .filter(|(c, _)| c.kind == ContactKind::Flk)
            .copied()
            .collect();
        let src = |v: &[Sourced]| v.iter().map(|(_, s)| s.to_string()).collect::<Vec<_>>();
        let list = |v: &[Sourced]| {
            v.iter()
                .map(|(c, _)| describe(c))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let side = |v: &[Sourced]| -> Extra {
            if a.register {
                Extra {
                    register: Some(list(v)),
                    sources: src(v),
                    ..Default::default()
                }
            } else {
                Extra {
                    ehr: Some(list(v)),
                    sources: src(v),
                    expression: v.first().and_then(|(_, s)| expression_for(s)),
                    ..Default::default()
                }
            }
        };

        // FK-R01
        let max = self.profile.fvk.max_active_per_patient;
        if let Some(max) = max {
            let counted: Vec<Sourced> = fvks
                .iter()
                .filter(|(c, _)| {
                    !matches!(
                        c.kind,
                        ContactKind::Fvk {
                            at_discharge: true,
                            ..
                        }
                    )
                })
                .copied()
                .collect();
            if counted.len() > max {
                self.emit(
                    out,
                    RuleId::R01,
                    None,
                    p,
                    format!(
                        "{} active FVKs; the profile allows {max} per patient",
                        counted.len()
                    ),
                    side(&counted),
                );
            }
        }
        if let Some(max) = self.profile.fvk.max_active_per_unit {
            let units: BTreeSet<&HsaId> = fvks.iter().map(|(c, _)| &c.unit.hsa).collect();
            for u in units {
                let here: Vec<Sourced> = fvks
                    .iter()
                    .filter(|(c, _)| &c.unit.hsa == u)
                    .copied()
                    .collect();
                if here.len() > max {
                    let mut x = side(&here);
                    x.unit = Some(u.clone());
                    self.emit(
                        out,
                        RuleId::R01,
                        None,
                        p,
                        format!(
                            "{} active FVKs at unit {u}; the profile allows {max} per unit",
                            here.len()
                        ),
                        x,
                    );
                }
            }
        }
        // FK-R02
        if self.profile.fvk.coordinator_across_units {
            let units: BTreeSet<&HsaId> = fvks.iter().map(|(c, _)| &c.unit.hsa).collect();
            if units.len() > 1 {
                let coordinating = fvks
                    .iter()
                    .filter(|(c, _)| {
                        matches!(
                            c.kind,
                            ContactKind::Fvk {
                                coordinating: true,
                                ..
                            }
                        )
                    })
                    .count();
                if coordinating == 0 {
                    self.emit(
                        out,
                        RuleId::R02,
                        Some(Severity::Warning),
                        p,
                        format!("active FVKs in {} units and none coordinates", units.len()),
                        side(&fvks),
                    );
                } else if coordinating > 1 {
                    self.emit(
                        out,
                        RuleId::R02,
                        Some(Severity::Error),
                        p,
                        format!(
                            "{coordinating} FVKs are marked coordinating; exactly one should be"
                        ),
                        side(&fvks),
                    );
                }
            }
        }
        // FK-R03
        if self.needs(
            RuleId::R03,
            a.life_threatening,
            "life-threatening condition (Flag/Condition)",
        ) && ctx.life_threatening
        {
            let physician = fvks
                .iter()
                .any(|(c, _)| c.staff().and_then(|s| s.is_licensed_physician()) == Some(true));
            if !physician {
                let msg = if fvks.is_empty() {
                    "life-threatening condition and no active FVK; a licensed physician must be FVK"
                        .to_owned()
                } else {
                    "life-threatening condition, but no FVK is a licensed physician".to_owned()
                };
                self.emit(out, RuleId::R03, None, p, msg, side(&fvks));
            }
        }
        // FK-R04, FK-R05
        for (c, s) in &flks {
            let staff = c.staff();
            let one = [(*c, *s)];
            match staff.and_then(|s| s.profession) {
                Some(Profession::Lakare) => {
                    let spec = staff.map(|s| &s.specialties[..]).unwrap_or_default();
                    let qualifies = spec.iter().any(|x| {
                        self.profile
                            .flk
                            .qualifying_specialties
                            .iter()
                            .any(|q| q == x.as_str())
                    });
                    if !qualifies {
                        let has = if spec.is_empty() {
                            "none recorded".to_owned()
                        } else {
                            spec.iter()
                                .map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        self.emit(
                            out,
                            RuleId::R05,
                            None,
                            p,
                            format!(
                                "the FLK's specialties ({has}) are not general-practice competence"
                            ),
                            side(&one),
                        );
                    }
                }
                Some(other) => self.emit(
                    out,
                    RuleId::R04,
                    None,
                    p,
                    format!("the FLK is {}, not a physician", other.code()),
                    side(&one),
                ),
                None => {
                    self.needs(RuleId::R04, false, "profession of some FLKs");
                }
            }
            match c.unit.kind {
                Some(UnitKind::PrimaryCareCentre) => {}
                Some(k) => {
                    let mut x = side(&one);
                    x.unit = Some(c.unit.hsa.clone());
                    self.emit(
                        out,
                        RuleId::R04,
                        None,
                        p,
                        format!(
                            "the FLK works at a {} unit, not a primary-care centre",
                            k.code()
                        ),
                        x,
                    );
                }
                None => {
                    self.needs(RuleId::R04, false, "unit kind of some FLKs");
                }
            }
        }
        // FK-R06
        if self.needs(
            RuleId::R06,
            a.municipal_care,
            "municipal care (Observation/EpisodeOfCare)",
        ) && !ctx.municipal_care.is_empty()
        {
            let ok = flks
                .iter()
                .any(|(c, _)| c.unit.kind == Some(UnitKind::PrimaryCareCentre));
            if !ok {
                let forms: Vec<&str> = ctx.municipal_care.iter().map(|f| f.code()).collect();
                self.emit(
                    out,
                    RuleId::R06,
                    None,
                    p,
                    format!(
                        "municipal care ({}) but no FLK at a primary-care centre",
                        forms.join(", ")
                    ),
                    side(&flks),
                );
            }
        }
        // FK-R07: the EHR's FVKs count too, since a discharge FVK need not be in the register.
        if self.needs(
            RuleId::R07,
            a.discharge,
            "inpatient encounters with discharge decided",
        ) && ctx.discharge_pending
        {
            let mut candidates = fvks.clone();
            candidates.extend(
                self.active(&d.ehr)
                    .into_iter()
                    .filter(|(c, _)| c.kind.is_fvk()),
            );
            let must_coordinate = self.profile.fvk.discharge_fvk_must_coordinate;
            let ok = candidates.iter().any(|(c, _)| {
                c.unit.kind.is_some_and(UnitKind::is_region_outpatient)
                    && (!must_coordinate
                        || matches!(
                            c.kind,
                            ContactKind::Fvk {
                                coordinating: true,
                                ..
                            }
                        ))
            });
            if !ok {
                let need = if must_coordinate {
                    "a coordinating FVK"
                } else {
                    "an FVK"
                };
                self.emit(out, RuleId::R07, None, p, format!("discharge from inpatient care is decided, but there is no {need} in the region's outpatient care"), side(&candidates));
            }
        }
        // FK-R08, FK-R09, FK-R12
        if self.needs(
            RuleId::R08,
            a.register && a.ehr_contacts,
            "both register and EHR contacts",
        ) {
            self.needs(RuleId::R09, true, "");
            let reg: Vec<&FixedContact> = d.register.iter().map(|(c, _)| *c).collect();
            let ehr: Vec<&FixedContact> = d.ehr.iter().map(|(c, _)| *c).collect();
            let source_of = |c: &FixedContact, v: &[Sourced]| {
                v.iter()
                    .find(|(x, _)| std::ptr::eq(*x, c))
                    .map(|(_, s)| s.to_string())
            };
            for disc in compare(&reg, &ehr) {
                let pair = |r: &FixedContact, e: &FixedContact| Extra {
                    register: Some(describe(r)),
                    ehr: Some(describe(e)),
                    unit: Some(r.unit.hsa.clone()),
                    sources: [source_of(r, &d.register), source_of(e, &d.ehr)]
                        .into_iter()
                        .flatten()
                        .collect(),
                    expression: Some("CareTeam.participant[0].member".into()),
                };
                match disc {
                    Discrepancy::MissingInEhr(r) => self.emit(
                        out,
                        RuleId::R08,
                        None,
                        p,
                        format!("the EHR lacks the register's {}", r.kind),
                        Extra {
                            register: Some(describe(r)),
                            unit: Some(r.unit.hsa.clone()),
                            sources: source_of(r, &d.register).into_iter().collect(),
                            ..Default::default()
                        },
                    ),
                    Discrepancy::OtherPerson { register, ehr } => {
                        let x = pair(register, ehr);
                        self.emit(
                            out,
                            RuleId::R08,
                            None,
                            p,
                            format!("the EHR names another person as {}", register.kind),
                            x,
                        )
                    }
                    Discrepancy::ExtraInEhr(_) if d.held => {}
                    Discrepancy::ExtraInEhr(e) => self.emit(
                        out,
                        RuleId::R08,
                        None,
                        p,
                        format!("the EHR has a {} the register lacks", e.kind),
                        Extra {
                            ehr: Some(describe(e)),
                            unit: Some(e.unit.hsa.clone()),
                            sources: source_of(e, &d.ehr).into_iter().collect(),
                            expression: Some("CareTeam".into()),
                            ..Default::default()
                        },
                    ),
                    Discrepancy::Differs {
                        register,
                        ehr,
                        what,
                    } => {
                        let x = pair(register, ehr);
                        self.emit(
                            out,
                            RuleId::R08,
                            None,
                            p,
                            format!("{} differs: {what}", register.kind),
                            x,
                        )
                    }
                    Discrepancy::EndedOnlyInRegister { register, ehr } => {
                        let mut x = pair(register, ehr);
                        x.expression = Some("CareTeam.status".into());
                        self.emit(
                            out,
                            RuleId::R09,
                            None,
                            p,
                            format!(
                                "the register ended the {}, the EHR still has it active",
                                register.kind
                            ),
                            x,
                        )
                    }
                    Discrepancy::EndedOnlyInEhr { register, ehr } => {
                        let mut x = pair(register, ehr);
                        x.expression = Some("CareTeam.status".into());
                        self.emit(
                            out,
                            RuleId::R09,
                            None,
                            p,
                            format!(
                                "the EHR ended the {}, the register still has it active",
                                register.kind
                            ),
                            x,
                        )
                    }
                    Discrepancy::DeclinedNotInEhr(r) => self.emit(
                        out,
                        RuleId::R12,
                        None,
                        p,
                        format!(
                            "the patient declined an {} offer; the EHR does not record it",
                            r.kind
                        ),
                        Extra {
                            register: Some(describe(r)),
                            unit: Some(r.unit.hsa.clone()),
                            sources: source_of(r, &d.register).into_iter().collect(),
                            ..Default::default()
                        },
                    ),
                }
            }
        } else {
            self.needs(RuleId::R09, false, "both register and EHR contacts");
            self.needs(RuleId::R12, false, "both register and EHR contacts");
        }
        // FK-R10
        if self.needs(
            RuleId::R10,
            a.staff_directory,
            "the EHR's staff directory (PractitionerRole)",
        ) {
            for (c, s) in &active {
                if let Some(staff) = c.staff() {
                    if !self
                        .directory
                        .contains(&(staff.hsa.clone(), c.unit.hsa.clone()))
                    {
                        let mut x = side(&[(*c, *s)]);
                        x.unit = Some(c.unit.hsa.clone());
                        self.emit(
                            out,
                            RuleId::R10,
                            None,
                            p,
                            format!(
                                "{} ({}) holds no active role at {} for {}",
                                staff.name.as_deref().unwrap_or("?"),
                                staff.hsa,
                                c.unit.hsa,
                                c.kind
                            ),
                            x,
                        );
                    }
                }
            }
        }
        // FK-R11
        if self.profile.fvk.health_care_staff_only {
            for (c, s) in &fvks {
                if c.staff()
                    .and_then(|s| s.profession)
                    .is_some_and(|p| !p.is_health_care_staff())
                {
                    self.emit(
                        out,
                        RuleId::R11,
                        None,
                        p,
                        "the FVK is administrative staff; the profile requires health-care staff"
                            .into(),
                        side(&[(*c, *s)]),
                    );
                }
            }
        }
        // FK-R13..R15
        if self.needs(RuleId::R13, a.plans, "plans (CarePlan)") {
            self.plans(ctx, p, &fvks, &flks, &view, out);
        } else {
            self.needs(RuleId::R14, false, "plans (CarePlan)");
            self.needs(RuleId::R15, false, "plans (CarePlan)");
        }
        // FK-R17
        let live: Vec<Sourced> = view
            .iter()
            .filter(|(c, _)| c.status() != ContactStatus::Declined)
            .copied()
            .collect();
        let mut reported = HashSet::new();
        for (i, (a1, s1)) in live.iter().enumerate() {
            for (a2, s2) in &live[i + 1..] {
                let same_person = a1.staff().map(|s| &s.hsa) == a2.staff().map(|s| &s.hsa)
                    && a1.staff().is_some();
                if same_person
                    && a1.kind.same_relation(a2.kind)
                    && a1.period.overlaps(&a2.period)
                    && reported.insert((s1.to_string(), s2.to_string()))
                {
                    self.emit(
                        out,
                        RuleId::R17,
                        None,
                        p,
                        format!(
                            "the same person is {} twice over overlapping periods",
                            a1.kind
                        ),
                        side(&[(*a1, *s1), (*a2, *s2)]),
                    );
                }
            }
        }
        // FK-R18
        if self.needs(
            RuleId::R18,
            a.patient_groups || a.large_care_needs,
            "patient group or large-care-needs data",
        ) {
            let mut needs: Vec<(String, &Requirement)> = ctx
                .groups
                .iter()
                .filter_map(|g| {
                    self.profile
                        .patient_groups
                        .get(g)
                        .map(|n| (format!("patient group {}", g.code()), n))
                })
                .collect();
            if ctx.large_care_needs {
                needs.push(("large care needs".into(), &self.profile.large_care_needs));
            }
            for (why, (contacts, plans)) in needs {
                let mut missing = Vec::new();
                for n in contacts {
                    let has = match n {
                        NeededContact::Fvk => !fvks.is_empty(),
                        NeededContact::Flk => !flks.is_empty(),
                    };
                    if !has {
                        missing.push(match n {
                            NeededContact::Fvk => "an FVK".to_owned(),
                            NeededContact::Flk => "an FLK".to_owned(),
                        });
                    }
                }
                for k in plans {
                    if !ctx
                        .plans
                        .iter()
                        .any(|pl| pl.kind() == *k && pl.is_in_force())
                    {
                        missing.push(format!("a {}", k.code()));
                    }
                }
                if !missing.is_empty() {
                    self.emit(
                        out,
                        RuleId::R18,
                        None,
                        p,
                        format!("{why}: lacks {}", missing.join(", ")),
                        side(&active),
                    );
                }
            }
        }
        // FK-R19
        if flks.len() > 1 {
            self.emit(
                out,
                RuleId::R19,
                None,
                p,
                format!("{} active FLKs; a patient has one", flks.len()),
                side(&flks),
            );
        }
        for (c, s) in &flks {
            let listing = ctx.listing.as_ref().or(c.listing_unit.as_ref());
            match listing {
                Some(l) if *l != c.unit.hsa => {
                    let mut x = side(&[(*c, *s)]);
                    x.unit = Some(c.unit.hsa.clone());
                    self.emit(
                        out,
                        RuleId::R19,
                        None,
                        p,
                        format!(
                            "the FLK works at {} but the patient is listed at {l}",
                            c.unit.hsa
                        ),
                        x,
                    );
                }
                Some(_) => {}
                None => {
                    self.needs(
                        RuleId::R19,
                        false,
                        "listing unit of some patients with an FLK",
                    );
                }
            }
        }
        // FK-R20
        if self.needs(
            RuleId::R20,
            a.deceased_or_moved,
            "death or moving out (Patient.deceased, Flag)",
        ) && (ctx.deceased || ctx.moved_out)
            && !active.is_empty()
        {
            let why = if ctx.deceased {
                "deceased"
            } else {
                "moved out of the region"
            };
            self.emit(
                out,
                RuleId::R20,
                None,
                p,
                format!(
                    "the patient is {why} but has {} active contacts",
                    active.len()
                ),
                side(&active),
            );
        }
    }

    fn plans(
        &mut self,
        ctx: &PatientContext,
        p: &PatientId,
        fvks: &[Sourced],
        flks: &[Sourced],
        view: &[Sourced],
        out: &mut Vec<Finding>,
    ) {
        for plan in ctx.plans.iter().filter(|pl| pl.is_in_force()) {
            let x = || Extra {
                ehr: Some(format!("{} {}", plan.kind().code(), plan.source_id)),
                sources: vec![plan.source_id.clone()],
                expression: Some("CarePlan".into()),
                ..Default::default()
            };
            let mut missing: Vec<String> = Vec::new();
            let (rule, name) = match &plan.body {
                PlanBody::Sip(_) => (RuleId::R13, "the SIP"),
                PlanBody::MedicalCarePlan(_) => (RuleId::R14, "the medical care plan"),
                PlanBody::DocumentedAgreement(_) => (RuleId::R15, "the documented agreement"),
            };
            match &plan.body {
                PlanBody::Sip(s) => {
                    match &s.consent {
                        None => missing.push("the patient's consent".into()),
                        Some(c) if !c.active => missing.push(format!(
                            "an active consent (Consent/{} is not active)",
                            c.id
                        )),
                        Some(_) => {}
                    }
                    if s.interventions.is_empty() {
                        missing.push("the interventions needed".into());
                    }
                    let unassigned = s
                        .interventions
                        .iter()
                        .filter(|i| i.responsible.is_none())
                        .count();
                    if unassigned > 0 {
                        missing.push(format!(
                            "which principal answers for {unassigned} intervention(s)"
                        ));
                    }
                    if s.overall_responsibility.is_none() {
                        missing.push("the principal with overall responsibility".into());
                    }
                }
                PlanBody::MedicalCarePlan(m) => {
                    let parts = [
                        (m.prognosis.is_none(), "a prognosis"),
                        (
                            m.care_level_on_deterioration.is_none(),
                            "care level and direction on serious deterioration",
                        ),
                        (
                            m.direct_contact.is_none(),
                            "direct contact on deterioration",
                        ),
                        (
                            m.action_plan_on_deterioration.is_none(),
                            "an action plan on deterioration",
                        ),
                        (
                            m.follow_up
                                .as_ref()
                                .is_none_or(|f| f.when.is_none() || f.by.is_none()),
                            "when and by whom it is followed up",
                        ),
                    ];
                    missing.extend(parts.iter().filter(|(m, _)| *m).map(|(_, w)| w.to_string()));
                    match &m.author {
                        None => missing.push("its author".into()),
                        Some(a) => {
                            let is_flk = flks
                                .iter()
                                .any(|(c, _)| c.staff().is_some_and(|s| &s.hsa == a));
                            let is_physician = view.iter().any(|(c, _)| {
                                c.staff().is_some_and(|s| {
                                    &s.hsa == a && s.profession == Some(Profession::Lakare)
                                })
                            });
                            if !is_flk && !is_physician {
                                missing.push(format!("an author who is the FLK or a treating physician ({a} is neither among the patient's contacts)"));
                            }
                        }
                    }
                }
                PlanBody::DocumentedAgreement(ag) => {
                    if ag.patient_commitments.is_empty() {
                        missing.push("the patient's commitments".into());
                    }
                    if ag.care_commitments.is_empty() {
                        missing.push("the care's commitments".into());
                    }
                    for (v, what) in [(fvks, "the FVK"), (flks, "the FLK")] {
                        let named = v.iter().any(|(c, _)| {
                            c.staff()
                                .is_some_and(|s| ag.named_contacts.contains(&s.hsa))
                        });
                        if !v.is_empty() && !named {
                            missing.push(format!("{what} among its contacts"));
                        }
                    }
                    if ag.next_contact.is_none() {
                        missing.push("the agreed time of the next contact".into());
                    }
                }
            }
            if !missing.is_empty() {
                self.emit(
                    out,
                    rule,
                    None,
                    p,
                    format!("{name} lacks {}", missing.join(", ")),
                    x(),
                );
            }
        }
    }
}
