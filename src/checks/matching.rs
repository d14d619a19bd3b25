//! Register against EHR for one patient: pairs each register contact with the EHR's copy (same
//! kind, person and unit; then same kind and unit with another person) and names what differs.

use crate::domain::{ContactKind, ContactStatus, FixedContact};

#[derive(Debug)]
pub(crate) enum Discrepancy<'a> {
    /// An active register contact the EHR lacks.
    MissingInEhr(&'a FixedContact),
    /// The EHR names another person for the register's contact.
    OtherPerson {
        register: &'a FixedContact,
        ehr: &'a FixedContact,
    },
    /// An active register-kind contact in the EHR that the register lacks (discharge FVKs excepted).
    ExtraInEhr(&'a FixedContact),
    /// Same relation, but the coordinating flag or the dates differ.
    Differs {
        register: &'a FixedContact,
        ehr: &'a FixedContact,
        what: Vec<Difference>,
    },
    /// Ended in the register, active in the EHR.
    EndedOnlyInRegister {
        register: &'a FixedContact,
        ehr: &'a FixedContact,
    },
    /// Ended in the EHR, active in the register.
    EndedOnlyInEhr {
        register: &'a FixedContact,
        ehr: &'a FixedContact,
    },
    /// The register records a declined offer that the EHR does not.
    DeclinedNotInEhr(&'a FixedContact),
}

/// One element that differs: its message id (the field's name), and each side's value.
#[derive(Debug)]
pub(crate) struct Difference {
    pub(crate) field: &'static str,
    pub(crate) register: String,
    pub(crate) ehr: String,
}

fn relation(k: ContactKind) -> (u8, Option<crate::domain::TreatingRole>) {
    match k {
        ContactKind::Flk => (0, None),
        ContactKind::Fvk { .. } => (1, None),
        ContactKind::TreatingRole(r) => (2, Some(r)),
    }
}

fn same_person_and_place(a: &FixedContact, b: &FixedContact) -> bool {
    relation(a.kind) == relation(b.kind)
        && a.unit.hsa == b.unit.hsa
        && a.staff().map(|s| &s.hsa) == b.staff().map(|s| &s.hsa)
}

pub(crate) fn compare<'a>(
    register: &[&'a FixedContact],
    ehr: &[&'a FixedContact],
) -> Vec<Discrepancy<'a>> {
    let mut out = Vec::new();
    // Steps of the offer name no person: they are not paired (a decline is checked below).
    let offer = |c: &&&FixedContact| c.status().is_offer();
    let reg: Vec<&FixedContact> = register.iter().filter(|c| !offer(c)).copied().collect();
    let mut ehr_left: Vec<Option<&FixedContact>> =
        ehr.iter().filter(|c| !offer(c)).map(|c| Some(*c)).collect();
    let mut pairs = Vec::new();
    let mut reg_left = Vec::new();
    // Pass 1: same kind, person and unit; prefer the EHR copy with the same status and start.
    for r in reg {
        let score = |e: &FixedContact| {
            (e.status() == r.status()) as u8 * 2 + (e.period.start() == r.period.start()) as u8
        };
        let best = ehr_left
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.filter(|e| same_person_and_place(r, e))
                    .map(|e| (i, score(e)))
            })
            .max_by_key(|(_, s)| *s)
            .map(|(i, _)| i);
        match best.and_then(|i| ehr_left[i].take()) {
            Some(e) => pairs.push((r, e)),
            None => reg_left.push(r),
        }
    }
    // Pass 2: same kind and unit, another person.
    for r in reg_left {
        let other = ehr_left.iter().position(|e| {
            e.is_some_and(|e| {
                relation(e.kind) == relation(r.kind)
                    && e.unit.hsa == r.unit.hsa
                    && e.status() == r.status()
            })
        });
        match other.and_then(|i| ehr_left[i].take()) {
            Some(e) => out.push(Discrepancy::OtherPerson {
                register: r,
                ehr: e,
            }),
            None if r.status() == ContactStatus::Active => out.push(Discrepancy::MissingInEhr(r)),
            None => {} // an ended contact the EHR never had is history, not drift
        }
    }
    for e in ehr_left.into_iter().flatten() {
        let discharge = matches!(
            e.kind,
            ContactKind::Fvk {
                at_discharge: true,
                ..
            }
        );
        if e.status() == ContactStatus::Active && !discharge {
            out.push(Discrepancy::ExtraInEhr(e));
        }
    }
    for (r, e) in pairs {
        match (r.status(), e.status()) {
            (ContactStatus::Ended, ContactStatus::Active) => {
                out.push(Discrepancy::EndedOnlyInRegister {
                    register: r,
                    ehr: e,
                })
            }
            (ContactStatus::Active, ContactStatus::Ended) => {
                out.push(Discrepancy::EndedOnlyInEhr {
                    register: r,
                    ehr: e,
                })
            }
            _ => {
                let mut what = Vec::new();
                if let (
                    ContactKind::Fvk {
                        coordinating: a, ..
                    },
                    ContactKind::Fvk {
                        coordinating: b, ..
                    },
                ) = (r.kind, e.kind)
                {
                    if a != b {
                        what.push(Difference {
                            field: "field-coordinating",
                            register: yes(a).into(),
                            ehr: yes(b).into(),
                        });
                    }
                }
                if r.period.start() != e.period.start() {
                    what.push(Difference {
                        field: "field-start",
                        register: r.period.start().to_string(),
                        ehr: e.period.start().to_string(),
                    });
                }
                if r.period.end() != e.period.end() {
                    let d = |d: Option<chrono::NaiveDate>| {
                        d.map(|d| d.to_string()).unwrap_or_else(|| "–".into())
                    };
                    what.push(Difference {
                        field: "field-end",
                        register: d(r.period.end()),
                        ehr: d(e.period.end()),
                    });
                }
                if !what.is_empty() {
                    out.push(Discrepancy::Differs {
                        register: r,
                        ehr: e,
                        what,
                    });
                }
            }
        }
    }
    for r in register
        .iter()
        .filter(|c| c.status() == ContactStatus::Declined)
    {
        let recorded = ehr
            .iter()
            .any(|e| e.status() == ContactStatus::Declined && relation(e.kind) == relation(r.kind));
        if !recorded {
            out.push(Discrepancy::DeclinedNotInEhr(r));
        }
    }
    out
}

/// The register's own words for yes and no, whatever the language of the message.
fn yes(b: bool) -> &'static str {
    if b {
        "J"
    } else {
        "N"
    }
}
