//! Life events: no active contacts after death or moving out (FK-R20).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::mapping::messages::msg_args;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View {
        p, ctx, a, active, ..
    } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R20
    if e.needs(
        RuleId::R20,
        a.deceased_or_moved,
        "death or moving out (Patient.deceased, Flag)",
    ) && (ctx.deceased || ctx.moved_out)
        && !active.is_empty()
    {
        let why = if ctx.deceased {
            e.say("why-deceased", msg_args![])
        } else {
            e.say("why-moved-out", msg_args![])
        };
        e.emit(
            out,
            RuleId::R20,
            None,
            p,
            e.say("fk-r20", msg_args![why = why, count = active.len()]),
            side(active),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings, gp_flk, has, rows};
    use crate::domain::PatientContext;

    #[test]
    fn fk_r20_no_active_contact_after_death_or_moving_out() {
        let contact = rows(&[&gp_flk("a")]);
        for profile in ["gavleborg", "orebro"] {
            let dead = PatientContext {
                deceased: true,
                ..Default::default()
            };
            assert!(has(&findings(profile, &contact, &dead), "FK-R20"));
            let moved = PatientContext {
                moved_out: true,
                ..Default::default()
            };
            assert!(has(&findings(profile, &contact, &moved), "FK-R20"));
            let alive = PatientContext::default();
            assert!(!has(&findings(profile, &contact, &alive), "FK-R20"));
        }
    }
}
