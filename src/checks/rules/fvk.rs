//! The FVK rules: how many (FK-R01), coordination (FK-R02), a physician at a life-threatening
//! condition (FK-R03), discharge (FK-R07), and who may be FVK (FK-R11).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::{Finding, Severity};
use crate::domain::{ContactKind, HsaId, UnitKind};
use crate::mapping::messages::msg_args;
use std::collections::BTreeSet;

pub(super) fn check(e: &mut Engine, v: &View, d: &PatientData, out: &mut Vec<Finding>) {
    count(e, v, d, out);
    coordination(e, v, d, out);
    life_threatening(e, v, d, out);
    discharge(e, v, d, out);
    health_care_staff(e, v, d, out);
}

fn count(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, fvks, .. } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R01
    let max = e.profile.fvk.max_active_per_patient;
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
            e.emit(
                out,
                RuleId::R01,
                None,
                p,
                e.say(
                    "fk-r01-per-patient",
                    msg_args![count = counted.len(), max = max],
                ),
                side(&counted),
            );
        }
    }
    if let Some(max) = e.profile.fvk.max_active_per_unit {
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
                e.emit(
                    out,
                    RuleId::R01,
                    None,
                    p,
                    e.say(
                        "fk-r01-per-unit",
                        msg_args![count = here.len(), unit = v.unit_label(u), max = max],
                    ),
                    x,
                );
            }
        }
    }
}

fn coordination(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, fvks, .. } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R02
    if e.profile.fvk.coordinator_across_units {
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
                e.emit(
                    out,
                    RuleId::R02,
                    Some(Severity::Warning),
                    p,
                    e.say("fk-r02-none", msg_args![units = units.len()]),
                    side(fvks),
                );
            } else if coordinating > 1 {
                e.emit(
                    out,
                    RuleId::R02,
                    Some(Severity::Error),
                    p,
                    e.say("fk-r02-several", msg_args![count = coordinating]),
                    side(fvks),
                );
            }
        }
    }
}

fn life_threatening(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View {
        p, ctx, a, fvks, ..
    } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R03
    if e.needs(
        RuleId::R03,
        a.life_threatening,
        "life-threatening condition (Flag/Condition)",
    ) && ctx.life_threatening
    {
        let licensed =
            |c: &crate::domain::FixedContact| c.staff().and_then(|s| s.is_licensed_physician());
        let physician = fvks.iter().any(|(c, _)| licensed(c) == Some(true));
        // An FVK whose profession or licence is not known may be the physician: the rule
        // cannot be judged for this patient, which is not the same as a breach.
        let unknown: Vec<Sourced> = fvks
            .iter()
            .filter(|(c, _)| licensed(c).is_none())
            .copied()
            .collect();
        if let (true, Some(d)) = (fvks.is_empty(), v.declined_fvk()) {
            // The patient declined: documented, said, not a breach of the unit's.
            e.emit(
                out,
                RuleId::R03,
                Some(Severity::Info),
                p,
                e.say(
                    "fk-r03-declined",
                    msg_args![date = d.0.period.start().to_string()],
                ),
                side(&[d]),
            );
        } else if !physician && !unknown.is_empty() {
            e.emit(
                out,
                RuleId::R03,
                Some(Severity::Info),
                p,
                e.say("fk-r03-unknown", msg_args![]),
                side(&unknown),
            );
        } else if !physician {
            let msg = if fvks.is_empty() {
                e.say("fk-r03-no-fvk", msg_args![])
            } else {
                e.say("fk-r03-no-physician", msg_args![])
            };
            e.emit(out, RuleId::R03, None, p, msg, side(fvks));
        }
    }
}

fn discharge(e: &mut Engine, v: &View, d: &PatientData, out: &mut Vec<Finding>) {
    let View {
        p, ctx, a, fvks, ..
    } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R07: the duty starts with the admission notice to a unit of the region's outpatient
    // care (Gävleborg §2.6, lag 2017:612 2 kap. 5 §), and lies with that unit.
    if !e.needs(
        RuleId::R07,
        a.discharge,
        "inpatient encounters with discharge decided",
    ) || !ctx.discharge_pending
        || !e.needs(
            RuleId::R07,
            a.admission_notices,
            "admission notices (Communication inskrivningsmeddelande)",
        )
    {
        return;
    }
    // The EHR's FVKs count too, since a discharge FVK need not be in the register.
    let mut candidates = fvks.to_vec();
    candidates.extend(
        e.active(&d.ehr)
            .into_iter()
            .filter(|(c, _)| c.kind.is_fvk()),
    );
    let people: BTreeSet<(Option<&HsaId>, &HsaId)> = candidates
        .iter()
        .map(|(c, _)| (c.staff().map(|s| &s.hsa), &c.unit.hsa))
        .collect();
    // Örebro §7.5: a patient's only FVK carries the coordination whether or not it is marked.
    let single = people.len() == 1;
    let coordinates = |c: &crate::domain::FixedContact| {
        single
            || matches!(
                c.kind,
                ContactKind::Fvk {
                    coordinating: true,
                    ..
                }
            )
    };
    let units: BTreeSet<&HsaId> = ctx.admission_notices.iter().collect();
    for unit in units {
        if !candidates.iter().any(|(c, _)| &c.unit.hsa == unit) {
            let mut x = side(&candidates);
            x.unit = Some(unit.clone());
            let message = e.say("fk-r07-unit", msg_args![unit = v.unit_label(unit)]);
            e.emit(out, RuleId::R07, None, p, message, x);
        }
    }
    if e.profile.fvk.discharge_fvk_must_coordinate && !ctx.admission_notices.is_empty() {
        let ok = candidates.iter().any(|(c, _)| {
            c.unit.kind.is_some_and(UnitKind::is_region_outpatient) && coordinates(c)
        });
        if !ok {
            let message = e.say("fk-r07-coordinating", msg_args![]);
            e.emit(out, RuleId::R07, None, p, message, side(&candidates));
        }
    }
}

fn health_care_staff(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, fvks, .. } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R11
    if e.profile.fvk.health_care_staff_only {
        for (c, s) in fvks.iter() {
            if c.staff()
                .and_then(|s| s.profession)
                .is_some_and(|p| p.is_health_care_staff() == Some(false))
            {
                e.emit(
                    out,
                    RuleId::R11,
                    None,
                    p,
                    e.say("fk-r11", msg_args![]),
                    side(&[(*c, *s)]),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings, findings_of, has, row, rows};
    use crate::domain::PatientContext;

    const VC: &str = "SE2321000016-V0001";
    const SPEC: &str = "SE2321000016-S0001";

    fn fvk(id: &str, coordinating: &str, staff: &str, prof: &str, lic: &str, unit: &str) -> String {
        let kind = if unit == VC {
            "Vårdcentral"
        } else {
            "Specialistmottagning"
        };
        row(
            id,
            "FVK",
            "",
            coordinating,
            staff,
            prof,
            lic,
            "",
            unit,
            kind,
        )
    }

    #[test]
    fn fk_r01_two_fvks_under_gavleborg_one_is_fine_and_orebro_sets_no_cap() {
        let ctx = PatientContext::default();
        let two = rows(&[
            &fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "", "SE2321000016-N002", "Sjuksköterska", "J", VC),
        ]);
        assert!(has(&findings("gavleborg", &two, &ctx), "FK-R01"));
        assert!(!has(&findings("orebro", &two, &ctx), "FK-R01"));
        let one = rows(&[&fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC)]);
        assert!(!has(&findings("gavleborg", &one, &ctx), "FK-R01"));
    }

    #[test]
    fn fk_r02_fvks_in_two_units_need_exactly_one_coordinator_under_orebro() {
        let ctx = PatientContext::default();
        let none = rows(&[
            &fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "", "SE2321000016-N002", "Sjuksköterska", "J", SPEC),
        ]);
        assert!(has(&findings("orebro", &none, &ctx), "FK-R02"));
        let both = rows(&[
            &fvk("a", "J", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "J", "SE2321000016-N002", "Sjuksköterska", "J", SPEC),
        ]);
        assert!(has(&findings("orebro", &both, &ctx), "FK-R02"));
        let one = rows(&[
            &fvk("a", "J", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "", "SE2321000016-N002", "Sjuksköterska", "J", SPEC),
        ]);
        assert!(!has(&findings("orebro", &one, &ctx), "FK-R02"));
        // A single unit needs no coordinator.
        let same = rows(&[
            &fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "", "SE2321000016-N002", "Sjuksköterska", "J", VC),
        ]);
        assert!(!has(&findings("orebro", &same, &ctx), "FK-R02"));
    }

    #[test]
    fn fk_r03_a_life_threatening_condition_needs_a_licensed_physician_as_fvk() {
        let ctx = PatientContext {
            life_threatening: true,
            ..Default::default()
        };
        let nurse = rows(&[&fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC)]);
        let physician = rows(&[&fvk("a", "", "SE2321000016-L001", "Läkare", "J", VC)]);
        for profile in ["gavleborg", "orebro"] {
            assert!(has(&findings(profile, &nurse, &ctx), "FK-R03"), "{profile}");
            assert!(
                !has(&findings(profile, &physician, &ctx), "FK-R03"),
                "{profile}"
            );
        }
        // Without the condition a nurse is fine.
        let calm = PatientContext::default();
        assert!(!has(&findings("orebro", &nurse, &calm), "FK-R03"));
    }

    #[test]
    fn fk_r03_a_documented_decline_is_information_not_lacking() {
        let ctx = PatientContext {
            life_threatening: true,
            ..Default::default()
        };
        let declined = rows(&[&super::super::testkit::declined_fvk("a")]);
        for profile in ["gavleborg", "orebro"] {
            let f = findings_of(profile, &declined, &ctx);
            let r03: Vec<_> = f.iter().filter(|f| f.rule == "FK-R03").collect();
            assert_eq!(r03.len(), 1, "{profile}");
            assert_eq!(r03[0].severity, crate::checks::Severity::Info);
            assert!(
                r03[0]
                    .message
                    .contains("avböjde fast vårdkontakt 2025-09-01"),
                "{}",
                r03[0].message
            );
        }
        // Without a decline, no FVK at all is the breach.
        let none = rows(&[&super::super::testkit::gp_flk("f")]);
        let f = findings_of("orebro", &none, &ctx);
        assert!(f
            .iter()
            .any(|f| f.rule == "FK-R03" && f.severity == crate::checks::Severity::Error));
    }

    #[test]
    fn fk_r03_an_unknown_licence_is_not_evaluated_not_a_breach() {
        let ctx = PatientContext {
            life_threatening: true,
            ..Default::default()
        };
        // A physician whose licence is not known, and an FVK whose profession is not known.
        let unknown_licence = rows(&[&fvk("a", "", "SE2321000016-L001", "Läkare", "", VC)]);
        let unknown_profession = rows(&[&fvk("a", "", "SE2321000016-L001", "", "J", VC)]);
        for (what, r) in [
            ("licence", &unknown_licence),
            ("profession", &unknown_profession),
        ] {
            for profile in ["gavleborg", "orebro"] {
                let f = findings_of(profile, r, &ctx);
                let r03: Vec<_> = f.iter().filter(|f| f.rule == "FK-R03").collect();
                assert_eq!(r03.len(), 1, "{what} {profile}");
                assert_eq!(
                    r03[0].severity,
                    crate::checks::Severity::Info,
                    "{what} {profile}"
                );
                assert!(
                    r03[0].message.starts_with("inte bedömt"),
                    "{}",
                    r03[0].message
                );
            }
        }
        // A known nurse beside an unknown one: still not evaluated (the unknown may be the
        // physician); a known nurse alone is the breach.
        let mixed = rows(&[
            &fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "", "SE2321000016-L001", "Läkare", "", SPEC),
        ]);
        let f = findings_of("orebro", &mixed, &ctx);
        assert!(f
            .iter()
            .any(|f| f.rule == "FK-R03" && f.severity == crate::checks::Severity::Info));
        assert!(!f
            .iter()
            .any(|f| f.rule == "FK-R03" && f.severity == crate::checks::Severity::Error));
    }

    #[test]
    fn fk_r07_the_unit_an_admission_notice_went_to_appoints_an_fvk_before_discharge() {
        let notice_to = |unit: &str| PatientContext {
            discharge_pending: true,
            admission_notices: thin_vec::thin_vec![crate::domain::HsaId::parse(unit).expect("hsa")],
            ..Default::default()
        };
        let ward = rows(&[&row(
            "a",
            "FVK",
            "",
            "J",
            "SE2321000016-N001",
            "Sjuksköterska",
            "J",
            "",
            "SE2321000016-W0001",
            "Slutenvård",
        )]);
        let at_vc = rows(&[&fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC)]);
        let at_clinic = rows(&[&fvk(
            "a",
            "",
            "SE2321000016-N001",
            "Sjuksköterska",
            "J",
            SPEC,
        )]);
        let two_uncoordinated = rows(&[
            &fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "", "SE2321000016-N002", "Sjuksköterska", "J", SPEC),
        ]);
        let two_coordinated = rows(&[
            &fvk("a", "J", "SE2321000016-N001", "Sjuksköterska", "J", VC),
            &fvk("b", "", "SE2321000016-N002", "Sjuksköterska", "J", SPEC),
        ]);
        for profile in ["gavleborg", "orebro"] {
            // Bad: only an FVK on the ward, or at another unit than the notice's.
            assert!(
                has(&findings(profile, &ward, &notice_to(VC)), "FK-R07"),
                "{profile}"
            );
            assert!(
                has(&findings(profile, &at_clinic, &notice_to(VC)), "FK-R07"),
                "{profile}"
            );
            // Near miss: the receiving unit's FVK, the patient's only one, not marked
            // coordinating (under Örebro the single FVK carries the coordination).
            assert!(
                !has(&findings(profile, &at_vc, &notice_to(VC)), "FK-R07"),
                "{profile}"
            );
            assert!(
                !has(
                    &findings(profile, &two_coordinated, &notice_to(VC)),
                    "FK-R07"
                ),
                "{profile}"
            );
            // No admission notice, no duty (Gävleborg §2.6): discharge alone is not enough.
            let no_notice = PatientContext {
                discharge_pending: true,
                ..Default::default()
            };
            assert!(
                !has(&findings(profile, &ward, &no_notice), "FK-R07"),
                "{profile}"
            );
            // No discharge under way, no duty.
            assert!(
                !has(
                    &findings(profile, &ward, &PatientContext::default()),
                    "FK-R07"
                ),
                "{profile}"
            );
        }
        // Two FVKs and none coordinating: Örebro §7.5 wants the coordinating one in the
        // region's outpatient care; Gävleborg's §2.6 asks only for the receiving unit's FVK.
        assert!(has(
            &findings("orebro", &two_uncoordinated, &notice_to(VC)),
            "FK-R07"
        ));
        assert!(!has(
            &findings("gavleborg", &two_uncoordinated, &notice_to(VC)),
            "FK-R07"
        ));
    }

    #[test]
    fn fk_r11_administrative_staff_as_fvk_only_where_the_region_forbids_it() {
        let ctx = PatientContext::default();
        let admin = rows(&[&fvk("a", "", "SE2321000016-A001", "Administratör", "N", VC)]);
        assert!(has(&findings("orebro", &admin, &ctx), "FK-R11"));
        assert!(!has(&findings("gavleborg", &admin, &ctx), "FK-R11"));
        let nurse = rows(&[&fvk("a", "", "SE2321000016-N001", "Sjuksköterska", "J", VC)]);
        assert!(!has(&findings("orebro", &nurse, &ctx), "FK-R11"));
    }
}
