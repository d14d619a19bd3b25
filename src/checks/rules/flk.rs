//! The FLK rules: a physician at a primary-care unit (FK-R04) with general-practice competence
//! (FK-R05), an FLK in municipal care (FK-R06), and the FLK at the listing unit (FK-R19).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::domain::UnitKind;
use crate::mapping::messages::msg_args;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View {
        p, ctx, a, flks, ..
    } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R04, FK-R05
    for (c, s) in flks.iter() {
        let staff = c.staff();
        let one = [(*c, *s)];
        match staff.and_then(|s| s.profession) {
            Some(prof) if prof.is_physician() => {
                let spec = staff.map(|s| &s.specialties[..]).unwrap_or_default();
                let qualifies = spec.iter().any(|x| {
                    e.profile
                        .flk
                        .qualifying_specialties
                        .iter()
                        .any(|q| q == x.as_str())
                });
                if !qualifies {
                    let has = if spec.is_empty() {
                        e.say("none-recorded", msg_args![])
                    } else {
                        spec.iter()
                            .map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    e.emit(
                        out,
                        RuleId::R05,
                        None,
                        p,
                        e.say("fk-r05", msg_args![specialties = has]),
                        side(&one),
                    );
                }
            }
            Some(other) => e.emit(
                out,
                RuleId::R04,
                None,
                p,
                e.say("fk-r04-profession", msg_args![profession = other.code()]),
                side(&one),
            ),
            None => {
                e.needs(RuleId::R04, false, "profession of some FLKs");
            }
        }
        match c.unit.kind {
            Some(UnitKind::PrimaryCareCentre) => {}
            Some(k) => {
                let mut x = side(&one);
                x.unit = Some(c.unit.hsa.clone());
                e.emit(
                    out,
                    RuleId::R04,
                    None,
                    p,
                    e.say(
                        "fk-r04-unit",
                        msg_args![unit = v.unit_label(&c.unit.hsa), kind = k.code()],
                    ),
                    x,
                );
            }
            None => {
                e.needs(RuleId::R04, false, "unit kind of some FLKs");
            }
        }
    }
    // FK-R06
    if e.needs(
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
            e.emit(
                out,
                RuleId::R06,
                None,
                p,
                e.say("fk-r06", msg_args![forms = forms.join(", ")]),
                side(flks),
            );
        }
    }
    // FK-R19
    if flks.len() > 1 {
        e.emit(
            out,
            RuleId::R19,
            None,
            p,
            e.say("fk-r19-several", msg_args![count = flks.len()]),
            side(flks),
        );
    }
    for (c, s) in flks.iter() {
        let listing = ctx.listing.as_ref().or(c.listing_unit.as_deref());
        match listing {
            Some(l) if *l != c.unit.hsa => {
                let mut x = side(&[(*c, *s)]);
                x.unit = Some(c.unit.hsa.clone());
                e.emit(
                    out,
                    RuleId::R19,
                    None,
                    p,
                    e.say(
                        "fk-r19-listing",
                        msg_args![unit = v.unit_label(&c.unit.hsa), listing = v.unit_label(l)],
                    ),
                    x,
                );
            }
            Some(_) => {}
            None => {
                e.needs(
                    RuleId::R19,
                    false,
                    "listing unit of some patients with an FLK",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings, has, row, rows};
    use crate::domain::PatientContext;

    fn flk(prof: &str, spec: &str, unit_kind: &str) -> String {
        row(
            "a",
            "FLK",
            "",
            "",
            "SE2321000016-L001",
            prof,
            "J",
            spec,
            "SE2321000016-V0001",
            unit_kind,
        )
    }

    #[test]
    fn fk_r04_an_flk_is_a_physician_at_a_primary_care_unit() {
        let ctx = PatientContext::default();
        for profile in ["gavleborg", "orebro"] {
            let nurse = rows(&[&flk("Sjuksköterska", "", "Vårdcentral")]);
            assert!(has(&findings(profile, &nurse, &ctx), "FK-R04"), "{profile}");
            let clinic = rows(&[&flk("Läkare", "Allmänmedicin", "Specialistmottagning")]);
            assert!(
                has(&findings(profile, &clinic, &ctx), "FK-R04"),
                "{profile}"
            );
            let gp = rows(&[&flk("Läkare", "Allmänmedicin", "Vårdcentral")]);
            assert!(!has(&findings(profile, &gp, &ctx), "FK-R04"), "{profile}");
        }
    }

    #[test]
    fn fk_r06_municipal_care_needs_an_flk_at_a_primary_care_centre_under_orebro() {
        use crate::domain::context::MunicipalCareForm;
        let home = PatientContext {
            municipal_care: thin_vec::thin_vec![MunicipalCareForm::HomeHealthCare],
            ..Default::default()
        };
        let at_clinic = rows(&[&flk("Läkare", "Allmänmedicin", "Specialistmottagning")]);
        assert!(has(&findings("orebro", &at_clinic, &home), "FK-R06"));
        let gp = rows(&[&flk("Läkare", "Allmänmedicin", "Vårdcentral")]);
        assert!(!has(&findings("orebro", &gp, &home), "FK-R06"));
    }

    #[test]
    fn fk_r19_one_flk_at_the_listing_unit() {
        use crate::domain::HsaId;
        for profile in ["gavleborg", "orebro"] {
            let listed_elsewhere = PatientContext {
                listing: HsaId::parse("SE2321000016-V0009").ok(),
                ..Default::default()
            };
            let gp = rows(&[&flk("Läkare", "Allmänmedicin", "Vårdcentral")]);
            assert!(has(&findings(profile, &gp, &listed_elsewhere), "FK-R19"));
            let listed_here = PatientContext {
                listing: HsaId::parse("SE2321000016-V0001").ok(),
                ..Default::default()
            };
            assert!(!has(&findings(profile, &gp, &listed_here), "FK-R19"));
            let two = rows(&[
                &flk("Läkare", "Allmänmedicin", "Vårdcentral"),
                &flk("Läkare", "Allmänmedicin", "Vårdcentral").replacen("a;", "b;", 1),
            ]);
            assert!(has(&findings(profile, &two, &listed_here), "FK-R19"));
        }
    }

    #[test]
    fn fk_r05_an_flk_has_general_practice_competence_an_st_counts() {
        let ctx = PatientContext::default();
        let internist = rows(&[&flk("Läkare", "Internmedicin", "Vårdcentral")]);
        assert!(has(&findings("orebro", &internist, &ctx), "FK-R05"));
        let st = rows(&[&flk("Läkare", "ST Allmänmedicin", "Vårdcentral")]);
        assert!(!has(&findings("orebro", &st, &ctx), "FK-R05"));
        let gp = rows(&[&flk("Läkare", "Allmänmedicin", "Vårdcentral")]);
        assert!(!has(&findings("orebro", &gp, &ctx), "FK-R05"));
    }
}
