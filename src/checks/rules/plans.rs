//! The plans: SIP (FK-R13), medical care plan (FK-R14) and documented agreement (FK-R15)
//! hold their parts.

use super::{Engine, Extra, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::domain::plan::PlanBody;
use crate::domain::{PatientContext, PatientId, Profession};

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View {
        p,
        ctx,
        a,
        view,
        fvks,
        flks,
        ..
    } = v;
    // FK-R13..R15
    if e.needs(RuleId::R13, a.plans, "plans (CarePlan)") {
        plans(e, ctx, p, fvks, flks, view, out);
    } else {
        e.needs(RuleId::R14, false, "plans (CarePlan)");
        e.needs(RuleId::R15, false, "plans (CarePlan)");
    }
}

pub(super) fn plans(
    e: &mut Engine,
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
            e.emit(
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
