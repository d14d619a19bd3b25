//! The plans: SIP (FK-R13), medical care plan (FK-R14) and documented agreement (FK-R15)
//! hold their parts.

use super::{Engine, Extra, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::domain::plan::PlanBody;
use crate::domain::{PatientContext, PatientId, Profession};
use crate::mapping::messages::msg_args;

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
        let say = |id: &str| e.say(id, msg_args![]);
        let (rule, name) = match &plan.body {
            PlanBody::Sip(_) => (RuleId::R13, "plan-sip"),
            PlanBody::MedicalCarePlan(_) => (RuleId::R14, "plan-medical"),
            PlanBody::DocumentedAgreement(_) => (RuleId::R15, "plan-agreement"),
        };
        match &plan.body {
            PlanBody::Sip(s) => {
                match &s.consent {
                    None => missing.push(say("lacks-consent")),
                    Some(c) if !c.active => missing.push(e.say(
                        "lacks-active-consent",
                        msg_args![consent = format!("Consent/{}", c.id)],
                    )),
                    Some(_) => {}
                }
                if s.interventions.is_empty() {
                    missing.push(say("lacks-interventions"));
                }
                let unassigned = s
                    .interventions
                    .iter()
                    .filter(|i| i.responsible.is_none())
                    .count();
                if unassigned > 0 {
                    missing.push(e.say("lacks-responsible", msg_args![count = unassigned]));
                }
                match s.overall_responsibility {
                    None => missing.push(say("lacks-overall")),
                    // HSL 16 kap. 4 § and Örebro §1.1.3: one of the principals, the region or
                    // the municipality, has the overall responsibility; another actor cannot.
                    Some(crate::domain::Principal::Other) => {
                        missing.push(say("lacks-overall-principal"))
                    }
                    Some(_) => {}
                }
            }
            PlanBody::MedicalCarePlan(m) => {
                let parts = [
                    (m.prognosis.is_none(), "lacks-prognosis"),
                    (m.care_level_on_deterioration.is_none(), "lacks-care-level"),
                    (m.direct_contact.is_none(), "lacks-direct-contact"),
                    (
                        m.action_plan_on_deterioration.is_none(),
                        "lacks-action-plan",
                    ),
                    (
                        m.follow_up
                            .as_ref()
                            .is_none_or(|f| f.when.is_none() || f.by.is_none()),
                        "lacks-follow-up",
                    ),
                ];
                missing.extend(parts.iter().filter(|(m, _)| *m).map(|(_, w)| say(w)));
                match &m.author {
                    None => missing.push(say("lacks-author")),
                    Some(a) => {
                        let is_flk = flks
                            .iter()
                            .any(|(c, _)| c.staff().is_some_and(|s| &s.hsa == a));
                        let is_physician = view.iter().any(|(c, _)| {
                            c.staff().is_some_and(|s| {
                                &s.hsa == a && s.profession.is_some_and(Profession::is_physician)
                            })
                        });
                        // Örebro §9.2: the FLK, or "den behandlande läkaren inom
                        // specialistvården": a physician with a role in specialist care.
                        let in_specialist_care =
                            e.specialist_physicians.is_some_and(|set| set.contains(a));
                        if !is_flk && !is_physician && !in_specialist_care {
                            missing.push(
                                e.say("lacks-author-role", msg_args![author = a.to_string()]),
                            );
                        }
                    }
                }
            }
            PlanBody::DocumentedAgreement(ag) => {
                if ag.patient_commitments.is_empty() {
                    missing.push(say("lacks-patient-commitments"));
                }
                if ag.care_commitments.is_empty() {
                    missing.push(say("lacks-care-commitments"));
                }
                for (v, what) in [(fvks, "FVK"), (flks, "FLK")] {
                    let named = v.iter().any(|(c, _)| {
                        c.staff()
                            .is_some_and(|s| ag.named_contacts.contains(&s.hsa))
                    });
                    if !v.is_empty() && !named {
                        missing.push(e.say("lacks-named", msg_args![kind = what]));
                    }
                }
                if ag.next_contact.is_none() {
                    missing.push(say("lacks-next-contact"));
                }
            }
        }
        if !missing.is_empty() {
            e.emit(
                out,
                rule,
                None,
                p,
                e.say(
                    "plan-lacks",
                    msg_args![
                        plan = e.say(name, msg_args![]),
                        missing = missing.join(", ")
                    ],
                ),
                x(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings, gp_flk, has, nurse_fvk, rows};
    use crate::domain::plan::{
        CarePlanRecord, Consent, DocumentedAgreement, FollowUp, Intervention, MedicalCarePlan,
        PlanBody, PlanStatus, Principal, Sip,
    };
    use crate::domain::{FixedContact, HsaId, PatientContext};

    const GP: &str = "SE2321000016-L001";

    fn team() -> Vec<FixedContact> {
        rows(&[&gp_flk("a"), &nurse_fvk("b")])
    }

    fn with(body: PlanBody, c: &[FixedContact]) -> PatientContext {
        PatientContext {
            plans: thin_vec::thin_vec![CarePlanRecord {
                source_id: "CarePlan/p".into(),
                patient: c[0].patient.clone(),
                status: PlanStatus::Active,
                created: None,
                body,
            }],
            ..Default::default()
        }
    }

    fn hsa(s: &str) -> HsaId {
        HsaId::parse(s).expect("hsa")
    }

    #[test]
    fn fk_r13_a_sip_has_consent_interventions_and_who_answers_for_what() {
        let c = team();
        let whole = Sip {
            consent: Some(Consent {
                id: "c".into(),
                active: true,
                date: None,
            }),
            interventions: vec![Intervention {
                description: "hemtjänst".into(),
                responsible: Some(Principal::Municipality),
            }],
            measures_by_others: Vec::new(),
            overall_responsibility: Some(Principal::Region),
        };
        let ok = with(PlanBody::Sip(whole.clone()), &c);
        assert!(!has(&findings("orebro", &c, &ok), "FK-R13"));
        let no_consent = with(
            PlanBody::Sip(Sip {
                consent: None,
                ..whole.clone()
            }),
            &c,
        );
        assert!(has(&findings("orebro", &c, &no_consent), "FK-R13"));
        // The overall responsibility lies with the region or the municipality, never another.
        let other = with(
            PlanBody::Sip(Sip {
                overall_responsibility: Some(Principal::Other),
                ..whole.clone()
            }),
            &c,
        );
        assert!(has(&findings("orebro", &c, &other), "FK-R13"));
        let municipality = with(
            PlanBody::Sip(Sip {
                overall_responsibility: Some(Principal::Municipality),
                ..whole
            }),
            &c,
        );
        assert!(!has(&findings("orebro", &c, &municipality), "FK-R13"));
    }

    #[test]
    fn fk_r14_a_medical_care_plan_has_its_parts_and_the_flk_as_author() {
        let c = team();
        let whole = MedicalCarePlan {
            prognosis: Some("god".into()),
            care_level_on_deterioration: Some("vårdcentral".into()),
            direct_contact: Some("telefon".into()),
            action_plan_on_deterioration: Some("ring".into()),
            follow_up: Some(FollowUp {
                when: "2026-09-01".parse().ok(),
                by: Some(hsa(GP)),
            }),
            treatment_limitations: None,
            author: Some(hsa(GP)),
        };
        let ok = with(PlanBody::MedicalCarePlan(whole.clone()), &c);
        assert!(!has(&findings("orebro", &c, &ok), "FK-R14"));
        let no_prognosis = with(
            PlanBody::MedicalCarePlan(MedicalCarePlan {
                prognosis: None,
                ..whole
            }),
            &c,
        );
        assert!(has(&findings("orebro", &c, &no_prognosis), "FK-R14"));
    }

    #[test]
    fn fk_r15_a_documented_agreement_names_the_contacts_and_the_next_contact() {
        let c = team();
        let whole = DocumentedAgreement {
            patient_commitments: vec!["promenader".into()],
            care_commitments: vec!["kontroll".into()],
            named_contacts: vec![hsa(GP), hsa("SE2321000016-N001")],
            next_contact: "2026-07-01".parse().ok(),
        };
        let ok = with(PlanBody::DocumentedAgreement(whole.clone()), &c);
        assert!(!has(&findings("orebro", &c, &ok), "FK-R15"));
        let no_next = with(
            PlanBody::DocumentedAgreement(DocumentedAgreement {
                next_contact: None,
                ..whole
            }),
            &c,
        );
        assert!(has(&findings("orebro", &c, &no_next), "FK-R15"));
    }
}
