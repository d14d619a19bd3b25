//! Overlap: one person holds one role for a patient once at a time (FK-R17).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::domain::ContactStatus;
use std::collections::HashSet;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    let View { p, view, .. } = v;
    let side = |x: &[Sourced]| v.side(x);
    // FK-R17
    let live: Vec<Sourced> = view
        .iter()
        .filter(|(c, _)| c.status() != ContactStatus::Declined)
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
                    format!(
                        "the same person is {} twice over overlapping periods",
                        a1.kind
                    ),
                    side(&[(*a1, *s1), (*a2, *s2)]),
                );
            }
        }
    }
}
