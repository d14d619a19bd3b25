//! Patient groups: who needs an FVK, by the profile's table (FK-R18).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::profile::{NeededContact, Requirement, Tier};
use crate::checks::Finding;
use crate::mapping::messages::msg_args;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View {
        p,
        ctx,
        a,
        active,
        fvks,
        flks,
        ..
    } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R18
    if e.needs(
        RuleId::R18,
        a.patient_groups || a.large_care_needs,
        "patient group or large-care-needs data",
    ) {
        let mut needs: Vec<(String, &Requirement)> = ctx
            .groups
            .iter()
            .filter_map(|g| {
                e.profile
                    .patient_groups
                    .get(g)
                    .map(|n| (e.say("why-group", msg_args![group = g.code()]), n))
            })
            .collect();
        if ctx.large_care_needs {
            needs.push((
                e.say("why-large-care-needs", msg_args![]),
                &e.profile.large_care_needs,
            ));
        }
        for (why, (contacts, plans, tier)) in needs {
            let mut missing = Vec::new();
            for n in contacts {
                let has = match n {
                    NeededContact::Fvk => !fvks.is_empty(),
                    NeededContact::Flk => !flks.is_empty(),
                };
                // A documented decline is the patient's choice: said, not counted as lacking.
                if let (false, NeededContact::Fvk, Some(d)) = (has, n, v.declined_fvk()) {
                    e.emit(
                        out,
                        RuleId::R18,
                        Some(crate::checks::Severity::Info),
                        p,
                        e.say(
                            "fk-r18-declined",
                            msg_args![why = why.clone(), date = d.0.period.start().to_string()],
                        ),
                        side(&[d]),
                    );
                    continue;
                }
                if !has {
                    missing.push(match n {
                        NeededContact::Fvk => "FVK".to_owned(),
                        NeededContact::Flk => "FLK".to_owned(),
                    });
                }
            }
            for k in plans {
                if !ctx
                    .plans
                    .iter()
                    .any(|pl| pl.kind() == *k && pl.is_in_force())
                {
                    missing.push(k.code().to_owned());
                }
            }
            if !missing.is_empty() {
                // The model gives an indication; the assessment is the unit's (Örebro §6.2):
                // said as what it indicates, red as the rule's severity, yellow as information.
                let (severity, colour) = match tier {
                    Tier::Red => (None, e.say("tier-red", msg_args![])),
                    Tier::Yellow => (
                        Some(crate::checks::Severity::Info),
                        e.say("tier-yellow", msg_args![]),
                    ),
                };
                e.emit(
                    out,
                    RuleId::R18,
                    severity,
                    p,
                    e.say(
                        "fk-r18",
                        msg_args![why = why, needs = missing.join(", "), tier = colour],
                    ),
                    side(active),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{
        declined_fvk, findings, findings_of, gp_flk, has, nurse_fvk, rows,
    };
    use crate::domain::context::PatientGroup;
    use crate::domain::PatientContext;

    #[test]
    fn fk_r18_a_complex_patient_needs_an_fvk_by_orebro_s_table() {
        let complex = PatientContext {
            groups: thin_vec::thin_vec![PatientGroup::Komplicerat],
            ..Default::default()
        };
        let flk_only = rows(&[&gp_flk("a")]);
        assert!(has(&findings("orebro", &flk_only, &complex), "FK-R18"));
        let with_fvk = rows(&[&nurse_fvk("b")]);
        assert!(!has(&findings("orebro", &with_fvk, &complex), "FK-R18"));
        // A simple patient needs nothing of the kind.
        let simple = PatientContext {
            groups: thin_vec::thin_vec![PatientGroup::Enkelt],
            ..Default::default()
        };
        assert!(!has(&findings("orebro", &flk_only, &simple), "FK-R18"));
    }

    #[test]
    fn fk_r18_is_an_indication_and_a_yellow_group_is_information() {
        let complex = PatientContext {
            groups: thin_vec::thin_vec![PatientGroup::Komplicerat],
            ..Default::default()
        };
        let flk_only = rows(&[&gp_flk("a")]);
        let f = findings_of("orebro", &flk_only, &complex);
        let r18: Vec<_> = f.iter().filter(|f| f.rule == "FK-R18").collect();
        assert_eq!(r18[0].severity, crate::checks::Severity::Warning);
        assert!(
            r18[0].message.contains("anger FVK (prioritera)"),
            "{}",
            r18[0].message
        );
        // A region that marks the group yellow ("prioriteras vid behov") is told, not warned.
        let dir = tempfile::tempdir().unwrap();
        let base =
            std::fs::read_to_string(crate::mapping::default_dir().join("profiles/orebro.toml"))
                .unwrap();
        let yellow = base.replace(
            r#"komplicerat = { contacts = ["fvk"] }"#,
            r#"komplicerat = { contacts = ["fvk"], tier = "yellow" }"#,
        );
        assert_ne!(yellow, base);
        let path = dir.path().join("yellow.toml");
        std::fs::write(&path, yellow).unwrap();
        let f = findings_of(path.to_str().unwrap(), &flk_only, &complex);
        let r18: Vec<_> = f.iter().filter(|f| f.rule == "FK-R18").collect();
        assert_eq!(r18[0].severity, crate::checks::Severity::Info);
        assert!(
            r18[0].message.contains("prioriteras vid behov"),
            "{}",
            r18[0].message
        );
    }

    #[test]
    fn fk_r18_a_declined_fvk_is_said_as_information_not_as_lacking() {
        let complex = PatientContext {
            groups: thin_vec::thin_vec![PatientGroup::Komplicerat],
            ..Default::default()
        };
        let declined = rows(&[&gp_flk("a"), &declined_fvk("b")]);
        let f = findings_of("orebro", &declined, &complex);
        let r18: Vec<_> = f.iter().filter(|f| f.rule == "FK-R18").collect();
        assert_eq!(r18.len(), 1, "{r18:?}");
        assert_eq!(r18[0].severity, crate::checks::Severity::Info);
        assert!(
            r18[0].message.contains("avböjde fast vårdkontakt"),
            "{}",
            r18[0].message
        );
        assert!(!r18[0].message.contains("saknar"), "{}", r18[0].message);
    }
}
