//! Overlap: one person holds one role for a patient once at a time (FK-R17).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::mapping::messages::msg_args;
use std::collections::HashSet;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, view, .. } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R17
    let live: Vec<Sourced> = view
        .iter()
        .filter(|(c, _)| !c.status().is_offer())
        .copied()
        .collect();
    let mut reported = HashSet::new();
    for (i, (a1, s1)) in live.iter().enumerate() {
        for (a2, s2) in &live[i + 1..] {
            let same_person =
                a1.staff().map(|s| &s.hsa) == a2.staff().map(|s| &s.hsa) && a1.staff().is_some();
            if same_person
                && a1.kind.same_relation(a2.kind)
                && a1.period.overlaps(&a2.period)
                && reported.insert((s1.to_string(), s2.to_string()))
            {
                e.emit(
                    out,
                    RuleId::R17,
                    None,
                    p,
                    e.say("fk-r17", msg_args![kind = a1.kind.to_string()]),
                    side(&[(*a1, *s1), (*a2, *s2)]),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings, has, rows};
    use crate::domain::PatientContext;

    fn br(id: &str, start: &str, end: &str, status: &str) -> String {
        format!("{id};19310304-1004;BR;KSSK;;{status};{start};{end};SE2321000016-N003;Lena Nordin;Sjuksköterska;J;;SE2321000016-S0001;Onkologen;Specialistmottagning;;;")
    }

    #[test]
    fn fk_r17_one_person_in_one_role_once_at_a_time() {
        let ctx = PatientContext::default();
        for profile in ["gavleborg", "orebro"] {
            let overlapping = rows(&[
                &br("a", "2023-01-10", "", "Aktiv"),
                &br("b", "2024-01-01", "", "Aktiv"),
            ]);
            assert!(has(&findings(profile, &overlapping, &ctx), "FK-R17"));
            let consecutive = rows(&[
                &br("a", "2022-01-10", "2023-12-31", "Avslutad"),
                &br("b", "2024-01-01", "", "Aktiv"),
            ]);
            assert!(!has(&findings(profile, &consecutive, &ctx), "FK-R17"));
        }
    }
}
