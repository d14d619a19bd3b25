//! The staff directory: the staff member can be chosen at the unit (FK-R10).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::mapping::messages::msg_args;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, a, active, .. } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R10
    if e.needs(
        RuleId::R10,
        a.staff_directory,
        "the EHR's staff directory (PractitionerRole)",
    ) {
        for (c, s) in active.iter() {
            if let Some(staff) = c.staff() {
                if !e
                    .directory
                    .contains(&(staff.hsa.clone(), c.unit.hsa.clone()))
                {
                    let mut x = side(&[(*c, *s)]);
                    x.unit = Some(c.unit.hsa.clone());
                    e.emit(
                        out,
                        RuleId::R10,
                        None,
                        p,
                        e.say(
                            "fk-r10",
                            msg_args![
                                who = super::labelled(staff.name.as_deref(), staff.hsa.as_str()),
                                unit = v.unit_label(&c.unit.hsa),
                                kind = c.kind.to_string()
                            ],
                        ),
                        x,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings_with, has, nurse_fvk, rows};
    use crate::domain::PatientContext;

    #[test]
    fn fk_r10_the_staff_member_can_be_chosen_at_the_unit() {
        let ctx = PatientContext::default();
        let c = rows(&[&nurse_fvk("a")]);
        for profile in ["gavleborg", "orebro"] {
            let elsewhere = [("SE2321000016-N001", "SE2321000016-V0002")];
            let ids = findings_with(profile, &c, None, &ctx, Some(&elsewhere));
            assert!(has(&ids, "FK-R10"), "{profile}");
            let here = [("SE2321000016-N001", "SE2321000016-V0001")];
            let ids = findings_with(profile, &c, None, &ctx, Some(&here));
            assert!(!has(&ids, "FK-R10"), "{profile}");
        }
    }
}
