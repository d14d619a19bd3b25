//! Agreement between the systems: register and EHR hold the same contacts (FK-R08), ended
//! ones end in both (FK-R09), and a declined offer is documented in the EHR (FK-R12).

use super::{Engine, Extra, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::matching::{compare, Discrepancy};
use crate::checks::Finding;
use crate::domain::FixedContact;
use crate::mapping::messages::msg_args;

pub(super) fn check(e: &mut Engine, v: &View, d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, a, .. } = v;
    // FK-R08, FK-R09, FK-R12
    if e.needs(
        RuleId::R08,
        a.register && a.ehr_contacts,
        "both register and EHR contacts",
    ) {
        e.needs(RuleId::R09, true, "");
        let reg: Vec<&FixedContact> = d.register.iter().map(|(c, _)| *c).collect();
        let ehr: Vec<&FixedContact> = d.ehr.iter().map(|(c, _)| *c).collect();
        let source_of = |c: &FixedContact, v: &[Sourced]| {
            v.iter()
                .find(|(x, _)| std::ptr::eq(*x, c))
                .map(|(_, s)| s.to_string())
        };
        for disc in compare(&reg, &ehr) {
            let pair = |r: &FixedContact, e: &FixedContact| Extra {
                register: Some(v.describe(r)),
                ehr: Some(v.describe(e)),
                unit: Some(r.unit.hsa.clone()),
                sources: [source_of(r, &d.register), source_of(e, &d.ehr)]
                    .into_iter()
                    .flatten()
                    .collect(),
                expression: Some("CareTeam.participant[0].member".into()),
            };
            match disc {
                Discrepancy::MissingInEhr(r) => e.emit(
                    out,
                    RuleId::R08,
                    None,
                    p,
                    e.say("fk-r08-missing", msg_args![kind = r.kind.to_string()]),
                    Extra {
                        register: Some(v.describe(r)),
                        unit: Some(r.unit.hsa.clone()),
                        sources: source_of(r, &d.register).into_iter().collect(),
                        ..Default::default()
                    },
                ),
                Discrepancy::OtherPerson { register, ehr } => {
                    let x = pair(register, ehr);
                    e.emit(
                        out,
                        RuleId::R08,
                        None,
                        p,
                        e.say(
                            "fk-r08-other-person",
                            msg_args![kind = register.kind.to_string()],
                        ),
                        x,
                    )
                }
                Discrepancy::ExtraInEhr(_) if d.held => {}
                Discrepancy::ExtraInEhr(x) => e.emit(
                    out,
                    RuleId::R08,
                    None,
                    p,
                    e.say("fk-r08-extra", msg_args![kind = x.kind.to_string()]),
                    Extra {
                        ehr: Some(v.describe(x)),
                        unit: Some(x.unit.hsa.clone()),
                        sources: source_of(x, &d.ehr).into_iter().collect(),
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
                    let what: Vec<String> = what
                        .iter()
                        .map(|d| {
                            e.say(
                                "fk-r08-field",
                                msg_args![
                                    field = e.say(d.field, msg_args![]),
                                    register = d.register.clone(),
                                    ehr = d.ehr.clone()
                                ],
                            )
                        })
                        .collect();
                    let message = e.say(
                        "fk-r08-differs",
                        msg_args![kind = register.kind.to_string(), what = what.join("; ")],
                    );
                    e.emit(out, RuleId::R08, None, p, message, x)
                }
                Discrepancy::EndedOnlyInRegister { register, ehr } => {
                    let mut x = pair(register, ehr);
                    x.expression = Some("CareTeam.status".into());
                    e.emit(
                        out,
                        RuleId::R09,
                        None,
                        p,
                        e.say(
                            "fk-r09-register-ended",
                            msg_args![kind = register.kind.to_string()],
                        ),
                        x,
                    )
                }
                Discrepancy::EndedOnlyInEhr { register, ehr } => {
                    let mut x = pair(register, ehr);
                    x.expression = Some("CareTeam.status".into());
                    e.emit(
                        out,
                        RuleId::R09,
                        None,
                        p,
                        e.say(
                            "fk-r09-ehr-ended",
                            msg_args![kind = register.kind.to_string()],
                        ),
                        x,
                    )
                }
                Discrepancy::DeclinedNotInEhr(r) => e.emit(
                    out,
                    RuleId::R12,
                    None,
                    p,
                    e.say("fk-r12", msg_args![kind = r.kind.to_string()]),
                    Extra {
                        register: Some(v.describe(r)),
                        unit: Some(r.unit.hsa.clone()),
                        sources: source_of(r, &d.register).into_iter().collect(),
                        ..Default::default()
                    },
                ),
            }
        }
    } else {
        e.needs(RuleId::R09, false, "both register and EHR contacts");
        e.needs(RuleId::R12, false, "both register and EHR contacts");
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings_with, has, rows};
    use crate::domain::PatientContext;

    fn flk(id: &str, status: &str, end: &str) -> String {
        format!("{id};19310304-1004;FLK;;;{status};2022-02-01;{end};SE2321000016-L001;Anna Lind;Läkare;J;Allmänmedicin;SE2321000016-V0001;Vårdcentralen Norr;Vårdcentral;;;")
    }

    fn declined(id: &str) -> String {
        format!("{id};19310304-1004;FVK;;;Avböjd;2024-03-01;;;;;;;SE2321000016-V0001;Vårdcentralen Norr;Vårdcentral;;;")
    }

    #[test]
    fn fk_r08_register_and_ehr_hold_the_same_active_contacts() {
        let ctx = PatientContext::default();
        let reg = rows(&[&flk("a", "Aktiv", "")]);
        for profile in ["gavleborg", "orebro"] {
            let none: Vec<_> = Vec::new();
            let ids = findings_with(profile, &reg, Some(&none), &ctx, None);
            assert!(has(&ids, "FK-R08"), "{profile}: missing in the EHR");
            let same = rows(&[&flk("x", "Aktiv", "")]);
            let ids = findings_with(profile, &reg, Some(&same), &ctx, None);
            assert!(!has(&ids, "FK-R08"), "{profile}: {ids:?}");
        }
    }

    #[test]
    fn fk_r09_a_contact_ended_in_the_register_is_ended_in_the_ehr() {
        let ctx = PatientContext::default();
        let reg = rows(&[&flk("a", "Avslutad", "2024-01-31")]);
        let live = rows(&[&flk("x", "Aktiv", "")]);
        let ended = rows(&[&flk("x", "Avslutad", "2024-01-31")]);
        for profile in ["gavleborg", "orebro"] {
            assert!(has(
                &findings_with(profile, &reg, Some(&live), &ctx, None),
                "FK-R09"
            ));
            assert!(!has(
                &findings_with(profile, &reg, Some(&ended), &ctx, None),
                "FK-R09"
            ));
        }
    }

    #[test]
    fn fk_r12_a_declined_offer_is_documented_in_the_ehr() {
        let ctx = PatientContext::default();
        let reg = rows(&[&flk("a", "Aktiv", ""), &declined("d")]);
        let without = rows(&[&flk("x", "Aktiv", "")]);
        let with = rows(&[&flk("x", "Aktiv", ""), &declined("y")]);
        for profile in ["gavleborg", "orebro"] {
            assert!(has(
                &findings_with(profile, &reg, Some(&without), &ctx, None),
                "FK-R12"
            ));
            assert!(!has(
                &findings_with(profile, &reg, Some(&with), &ctx, None),
                "FK-R12"
            ));
        }
    }
}
