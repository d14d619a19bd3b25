//! Codes: professions and treating roles are open lists, the region's CodeSystems (FK-R21).
//! A word not in them was read, not rejected; here it is reported so the region can add it.

use super::{Engine, PatientData, View};
use crate::checks::catalogue::RuleId;
use crate::checks::{Finding, Severity};
use crate::domain::ContactKind;
use crate::mapping::messages::msg_args;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, view, .. } = v;
    // FK-R21
    for (c, s) in view.iter() {
        let one = || v.side(&[(*c, *s)]);
        let profession = c.staff().and_then(|st| st.profession);
        if let Some(prof) = profession.filter(|x| !x.is_listed()) {
            let message = e.say("fk-r21-profession", msg_args![word = prof.code()]);
            e.emit(out, RuleId::R21, None, p, message, one());
        }
        let ContactKind::TreatingRole(role) = c.kind else {
            continue;
        };
        if !role.is_listed() {
            let message = e.say("fk-r21-role", msg_args![word = role.code()]);
            e.emit(out, RuleId::R21, None, p, message, one());
            continue;
        }
        // A role the CodeSystem gives to one profession, held by another listed one.
        if let (Some(expected), Some(held)) = (role.profession(), profession) {
            if held.is_listed() && held.code() != expected {
                let message = e.say(
                    "fk-r21-mismatch",
                    msg_args![role = role.code(), held = held.code(), expected = expected],
                );
                e.emit(out, RuleId::R21, Some(Severity::Info), p, message, one());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings, findings_of, has, row, rows};
    use crate::checks::Severity;
    use crate::domain::PatientContext;

    const VC: &str = "SE2321000016-V0001";

    #[test]
    fn fk_r21_a_word_not_in_the_lists_is_read_and_warned_of() {
        let ctx = PatientContext::default();
        for profile in ["gavleborg", "orebro"] {
            // A dietist FVK: in the shipped CodeSystem (display "Dietist"), read and quiet.
            let dietist = rows(&[&row(
                "a",
                "FVK",
                "",
                "",
                "SE2321000016-D001",
                "Dietist",
                "J",
                "",
                VC,
                "Vårdcentral",
            )]);
            let prof = dietist[0].staff().and_then(|s| s.profession);
            assert_eq!(
                prof.map(|p| (p.code(), p.is_listed())),
                Some(("dietist", true))
            );
            assert!(
                !has(&findings(profile, &dietist, &ctx), "FK-R21"),
                "{profile}"
            );
            // An audionom is in no list: read (not quarantined), and a warning.
            let audionom = rows(&[&row(
                "a",
                "FVK",
                "",
                "",
                "SE2321000016-D001",
                "Audionom",
                "J",
                "",
                VC,
                "Vårdcentral",
            )]);
            let f = findings_of(profile, &audionom, &ctx);
            let r21: Vec<_> = f.iter().filter(|f| f.rule == "FK-R21").collect();
            assert_eq!(r21.len(), 1, "{profile}: {f:?}");
            assert_eq!(r21[0].severity, Severity::Warning);
            assert!(r21[0].message.contains("'Audionom'"), "{}", r21[0].message);
            // An unknown treating role: read, a warning.
            let role = rows(&[&row(
                "a",
                "BR",
                "STROKE_SSK",
                "",
                "SE2321000016-N001",
                "Sjuksköterska",
                "J",
                "",
                VC,
                "Vårdcentral",
            )]);
            let f = findings_of(profile, &role, &ctx);
            assert!(
                f.iter().any(|f| f.rule == "FK-R21"
                    && f.severity == Severity::Warning
                    && f.message.contains("'STROKE_SSK'")),
                "{profile}: {f:?}"
            );
        }
    }

    #[test]
    fn fk_r21_a_role_held_by_another_profession_is_information() {
        let ctx = PatientContext::default();
        for profile in ["gavleborg", "orebro"] {
            // A kurator as patient-responsible psychologist: information.
            let other = rows(&[&row(
                "a",
                "BR",
                "PA_PSYK",
                "",
                "SE2321000016-K001",
                "Kurator",
                "J",
                "",
                VC,
                "Vårdcentral",
            )]);
            let f = findings_of(profile, &other, &ctx);
            let r21: Vec<_> = f.iter().filter(|f| f.rule == "FK-R21").collect();
            assert_eq!(r21.len(), 1, "{profile}: {f:?}");
            assert_eq!(r21[0].severity, Severity::Info);
            // Near miss: a psychologist in that role, or a holder whose profession is unknown.
            for prof in ["Psykolog", ""] {
                let fits = rows(&[&row(
                    "a",
                    "BR",
                    "PA_PSYK",
                    "",
                    "SE2321000016-K001",
                    prof,
                    "J",
                    "",
                    VC,
                    "Vårdcentral",
                )]);
                assert!(
                    !has(&findings(profile, &fits, &ctx), "FK-R21"),
                    "{profile} {prof}"
                );
            }
        }
    }
}
