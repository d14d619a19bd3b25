//! The rules' logic, one patient at a time: given the register's and the EHR's contacts and the
//! EHR-only facts, emit findings. A rule without its data records "not evaluated" once per run.
//! One file per family of rules; each reads the patient's `View` and emits through the `Engine`.

mod agreement;
mod directory;
mod flk;
mod fvk;
mod groups;
mod life_events;
mod overlap;
mod plans;

use super::catalogue::RuleId;
use super::profile::Profile;
use super::{Finding, NotEvaluated, Severity};
use crate::domain::{
    Availability, ContactKind, ContactStatus, FixedContact, HsaId, PatientContext, PatientId,
};
use chrono::NaiveDate;
use std::collections::{BTreeSet, HashSet};

/// A contact and where it came from (`FILE:LINE Rad-id`, or `CareTeam/id`).
pub type Sourced<'a> = (&'a FixedContact, &'a str);

pub struct PatientData<'a> {
    pub patient: &'a PatientId,
    pub register: Vec<Sourced<'a>>,
    pub ehr: Vec<Sourced<'a>>,
    pub context: Option<&'a PatientContext>,
    /// Some of the patient's register rows were rejected: the EHR's extra contacts may be those.
    pub held: bool,
}

#[derive(Default)]
struct Extra {
    register: Option<String>,
    ehr: Option<String>,
    unit: Option<HsaId>,
    sources: Vec<String>,
    expression: Option<String>,
}

pub struct Engine<'p> {
    pub profile: &'p Profile,
    pub availability: Availability,
    pub directory: &'p HashSet<(HsaId, HsaId)>,
    pub as_of: NaiveDate,
    pub not_evaluated: BTreeSet<NotEvaluated>,
}

fn describe(c: &FixedContact) -> String {
    let who = c
        .staff()
        .map(|s| format!("{} ({})", s.name.as_deref().unwrap_or("?"), s.hsa))
        .unwrap_or_else(|| "no one".into());
    let unit = c
        .unit
        .name
        .clone()
        .unwrap_or_else(|| c.unit.hsa.to_string());
    let status = match c.status() {
        ContactStatus::Active => "active".to_owned(),
        ContactStatus::Ended => format!(
            "ended {}",
            c.period
                .end()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "(no end date)".into())
        ),
        ContactStatus::Declined => "declined".to_owned(),
    };
    format!(
        "{} {who} at {unit}, from {}, {status}",
        c.kind,
        c.period.start()
    )
}

fn expression_for(source: &str) -> Option<String> {
    let t = source.split('/').next()?;
    matches!(t, "CareTeam" | "Task" | "CarePlan").then(|| t.to_string())
}

impl<'p> Engine<'p> {
    pub fn new(
        profile: &'p Profile,
        availability: Availability,
        directory: &'p HashSet<(HsaId, HsaId)>,
        as_of: NaiveDate,
    ) -> Self {
        Engine {
            profile,
            availability,
            directory,
            as_of,
            not_evaluated: BTreeSet::new(),
        }
    }

    /// Records that a rule could not run; true when it can.
    fn needs(&mut self, rule: RuleId, available: bool, what: &str) -> bool {
        if !available && self.profile.enabled(rule.as_str()) {
            self.not_evaluated.insert(NotEvaluated {
                rule: rule.as_str(),
                reason: format!("no data: {what}"),
            });
        }
        available
    }

    fn emit(
        &self,
        out: &mut Vec<Finding>,
        rule: RuleId,
        severity: Option<Severity>,
        patient: &PatientId,
        message: String,
        x: Extra,
    ) {
        if !self.profile.enabled(rule.as_str()) {
            return;
        }
        let r = rule.rule();
        let severity = self
            .profile
            .severity
            .get(r.id)
            .copied()
            .or(severity)
            .unwrap_or(r.severity);
        out.push(Finding {
            rule: r.id,
            severity,
            patient: patient.expose(),
            message,
            basis: r.basis,
            register: x.register,
            ehr: x.ehr,
            unit: x.unit,
            sources: x.sources,
            expression: x.expression,
        });
    }

    fn active<'a>(&self, v: &[Sourced<'a>]) -> Vec<Sourced<'a>> {
        v.iter()
            .filter(|(c, _)| c.is_active_on(self.as_of))
            .copied()
            .collect()
    }

    pub fn check(&mut self, d: &PatientData, out: &mut Vec<Finding>) {
        let a = self.availability;
        let p = d.patient;
        let empty = PatientContext::default();
        let ctx = d.context.unwrap_or(&empty);
        // The contacts the rules judge: the register's when there is one (the EHR's discharge
        // FVKs added, since the register need not hold them), else the EHR's.
        let mut view: Vec<Sourced> = if a.register {
            d.register.clone()
        } else {
            d.ehr.clone()
        };
        if a.register {
            view.extend(d.ehr.iter().filter(|(c, _)| {
                matches!(
                    c.kind,
                    ContactKind::Fvk {
                        at_discharge: true,
                        ..
                    }
                )
            }));
        }
        let active = self.active(&view);
        let fvks: Vec<Sourced> = active
            .iter()
            .filter(|(c, _)| c.kind.is_fvk())
            .copied()
            .collect();
        let flks: Vec<Sourced> = active
            .iter()
            .filter(|(c, _)| c.kind == ContactKind::Flk)
            .copied()
            .collect();

        let v = View {
            p,
            ctx,
            a,
            view: &view,
            active: &active,
            fvks: &fvks,
            flks: &flks,
        };
        fvk::check(self, &v, d, out);
        flk::check(self, &v, d, out);
        agreement::check(self, &v, d, out);
        directory::check(self, &v, d, out);
        plans::check(self, &v, d, out);
        overlap::check(self, &v, d, out);
        groups::check(self, &v, d, out);
        life_events::check(self, &v, d, out);
    }
}

/// What the rules see of one patient: the contacts they judge (the register's, or the EHR's
/// without a register), the active ones, the FVKs and FLKs among them, and the EHR's facts.
pub struct View<'v> {
    pub p: &'v PatientId,
    pub ctx: &'v PatientContext,
    pub a: Availability,
    pub view: &'v [Sourced<'v>],
    pub active: &'v [Sourced<'v>],
    pub fvks: &'v [Sourced<'v>],
    pub flks: &'v [Sourced<'v>],
}

impl View<'_> {
    /// What a finding says of the contacts concerned, on the side the rules judged.
    fn side(&self, v: &[Sourced]) -> Extra {
        let src = v.iter().map(|(_, s)| s.to_string()).collect::<Vec<_>>();
        let list = v
            .iter()
            .map(|(c, _)| describe(c))
            .collect::<Vec<_>>()
            .join("; ");
        if self.a.register {
            Extra {
                register: Some(list),
                sources: src,
                ..Default::default()
            }
        } else {
            Extra {
                ehr: Some(list),
                sources: src,
                expression: v.first().and_then(|(_, s)| expression_for(s)),
                ..Default::default()
            }
        }
    }
}
