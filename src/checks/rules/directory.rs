//! The staff directory: the staff member can be chosen at the unit (FK-R10).

use super::{Engine, PatientData, Sourced, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;

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
                        format!(
                            "{} ({}) holds no active role at {} for {}",
                            staff.name.as_deref().unwrap_or("?"),
                            staff.hsa,
                            c.unit.hsa,
                            c.kind
                        ),
                        x,
                    );
                }
            }
        }
    }
}
