//! The rules' logic, one patient at a time: given the register's and the EHR's contacts and the
//! EHR-only facts, emit findings. A rule without its data records "not evaluated" once per run.
//! One file per family of rules; each reads the patient's `View` and emits through the `Engine`.

mod agreement;
mod codes;
mod directory;
mod flk;
mod fvk;
mod groups;
mod life_events;
mod offer;
mod overlap;
mod plans;

use super::catalogue::RuleId;
use super::profile::Profile;
use super::{Finding, NotEvaluated, Severity};
use crate::domain::{
    Availability, ContactKind, ContactStatus, FixedContact, HsaId, PatientContext, PatientId,
};
use crate::mapping::messages::{msg_args, Speaker};
use chrono::NaiveDate;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// A contact and where it came from (`FILE:LINE Rad-id`, or `CareTeam/id`).
pub(crate) type Sourced<'a> = (&'a FixedContact, &'a str);

pub(crate) struct PatientData<'a> {
    pub(crate) patient: &'a PatientId,
    pub(crate) register: Vec<Sourced<'a>>,
    pub(crate) ehr: Vec<Sourced<'a>>,
    pub(crate) context: Option<&'a PatientContext>,
    /// Some of the patient's register rows were rejected: the EHR's extra contacts may be those.
    pub(crate) held: bool,
}

#[derive(Default)]
struct Extra {
    register: Option<String>,
    ehr: Option<String>,
    unit: Option<HsaId>,
    sources: Vec<String>,
    expression: Option<String>,
}

pub(crate) struct Engine<'p> {
    pub(crate) profile: &'p Profile,
    pub(crate) availability: Availability,
    pub(crate) directory: &'p HashSet<(HsaId, HsaId)>,
    /// Physicians with a role in specialist care (FK-R14's treating physician), when the EHR's
    /// directory is read.
    pub(crate) specialist_physicians: Option<&'p HashSet<HsaId>>,
    pub(crate) as_of: NaiveDate,
    pub(crate) not_evaluated: BTreeSet<NotEvaluated>,
    /// The run's messages in its language.
    pub(crate) speaker: Speaker<'p>,
    /// The messages said so far, each held once (see `Finding`).
    said: std::cell::RefCell<HashSet<Arc<str>>>,
}

/// Messages held for sharing before the set starts again: a million patients' findings say
/// ~9 k different things; a set that grows past this holds texts that are not repeated.
const SAID_MAX: usize = 65_536;

/// A contact as a person reads it: kind, who (name with HSA-id), unit (name with HSA-id), since
/// when, and its state.
fn describe(sp: &Speaker, c: &FixedContact) -> String {
    let who = c
        .staff()
        .map(|s| labelled(s.name.as_deref(), s.hsa.as_str()))
        .unwrap_or_else(|| sp.say("no-one", msg_args![]));
    let unit = labelled(c.unit.name.as_deref(), c.unit.hsa.as_str());
    let status = match c.status() {
        ContactStatus::Active => sp.say("status-active", msg_args![]),
        ContactStatus::Ended => match c.period.end() {
            Some(d) => sp.say("status-ended", msg_args![date = d.to_string()]),
            None => sp.say("status-ended-undated", msg_args![]),
        },
        ContactStatus::Declined => sp.say("status-declined", msg_args![]),
        ContactStatus::Requested => sp.say("status-requested", msg_args![]),
        ContactStatus::Informed => sp.say("status-informed", msg_args![]),
    };
    sp.say(
        "contact",
        msg_args![
            kind = c.kind.to_string(),
            who = who,
            unit = unit,
            start = c.period.start().to_string(),
            status = status
        ],
    )
}

/// A name with its HSA-id beside it, or the HSA-id alone.
pub(crate) fn labelled(name: Option<&str>, hsa: &str) -> String {
    match name {
        Some(n) => format!("{n} ({hsa})"),
        None => hsa.to_owned(),
    }
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
        speaker: Speaker<'p>,
    ) -> Self {
        Engine {
            profile,
            availability,
            directory,
            specialist_physicians: None,
            as_of,
            not_evaluated: BTreeSet::new(),
            speaker,
            said: Default::default(),
        }
    }

    /// Message `id` in the run's language.
    pub(crate) fn say(&self, id: &str, args: &[(&str, fluent_bundle::FluentValue<'_>)]) -> String {
        self.speaker.say(id, args)
    }

    /// The physicians with a role in specialist care, from the EHR's directory.
    pub fn with_specialist_physicians(mut self, s: &'p HashSet<HsaId>) -> Self {
        self.specialist_physicians = Some(s);
        self
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
        out.push(
            Finding::new(
                r.id,
                severity,
                patient.expose().into_boxed_str(),
                self.shared(message),
                self.profile.basis(r),
                x.sources,
            )
            .with_register(x.register)
            .with_ehr(x.ehr)
            .with_unit(x.unit)
            .with_expression(x.expression),
        );
    }

    /// The message as held already when another finding said the same.
    fn shared(&self, message: String) -> Arc<str> {
        let mut said = self.said.borrow_mut();
        if let Some(m) = said.get(message.as_str()) {
            return Arc::clone(m);
        }
        if said.len() >= SAID_MAX {
            said.clear();
        }
        let m: Arc<str> = message.into();
        said.insert(Arc::clone(&m));
        m
    }

    fn active<'a>(&self, v: &[Sourced<'a>]) -> Vec<Sourced<'a>> {
        v.iter()
            .filter(|(c, _)| c.is_active_on(self.as_of))
            .copied()
            .collect()
    }

    pub(crate) fn check(&mut self, d: &PatientData, out: &mut Vec<Finding>) {
        let first = out.len();
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
            speaker: self.speaker,
        };
        fvk::check(self, &v, d, out);
        flk::check(self, &v, d, out);
        agreement::check(self, &v, d, out);
        directory::check(self, &v, d, out);
        plans::check(self, &v, d, out);
        overlap::check(self, &v, d, out);
        groups::check(self, &v, d, out);
        life_events::check(self, &v, d, out);
        codes::check(self, &v, d, out);
        offer::check(self, &v, d, out);
        // Each finding's unit by name, from the patient's contacts at it: looked up for the
        // findings only, not for every patient checked.
        for f in &mut out[first..] {
            let name = f.unit().and_then(|u| {
                d.register
                    .iter()
                    .chain(&d.ehr)
                    .find(|(c, _)| &c.unit.hsa == u && c.unit.name.is_some())
                    .and_then(|(c, _)| c.unit.name.as_deref().map(Box::from))
            });
            f.set_unit_name(name);
        }
    }
}

/// What the rules see of one patient: the contacts they judge (the register's, or the EHR's
/// without a register), the active ones, the FVKs and FLKs among them, and the EHR's facts.
pub(crate) struct View<'v> {
    pub(crate) p: &'v PatientId,
    pub(crate) ctx: &'v PatientContext,
    pub(crate) a: Availability,
    pub(crate) view: &'v [Sourced<'v>],
    pub(crate) active: &'v [Sourced<'v>],
    pub(crate) fvks: &'v [Sourced<'v>],
    pub(crate) flks: &'v [Sourced<'v>],
    /// The run's messages in its language.
    pub(crate) speaker: Speaker<'v>,
}

impl View<'_> {
    /// A unit by name with its HSA-id beside it, the name from any of the patient's contacts
    /// at that unit (the HSA-id alone when none names it).
    pub(crate) fn unit_label(&self, hsa: &HsaId) -> String {
        let name = self
            .view
            .iter()
            .map(|(c, _)| &c.unit)
            .find(|u| &u.hsa == hsa && u.name.is_some())
            .and_then(|u| u.name.as_deref());
        labelled(name, hsa.as_str())
    }

    /// A contact as a person reads it.
    pub(crate) fn describe(&self, c: &FixedContact) -> String {
        describe(&self.speaker, c)
    }

    /// A documented decline of an FVK (Gävleborg §2.1: an offer declined is documented), the
    /// latest: "lacks an FVK" is then the patient's choice, not a gap.
    fn declined_fvk(&self) -> Option<Sourced<'_>> {
        self.view
            .iter()
            .filter(|(c, _)| {
                c.status() == crate::domain::ContactStatus::Declined && c.kind.is_fvk()
            })
            .max_by_key(|(c, _)| c.period.start())
            .copied()
    }

    /// What a finding says of the contacts concerned, on the side the rules judged.
    fn side(&self, v: &[Sourced]) -> Extra {
        let src = v.iter().map(|(_, s)| s.to_string()).collect::<Vec<_>>();
        let list = v
            .iter()
            .map(|(c, _)| describe(&self.speaker, c))
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

/// For the rules' unit tests: contacts written as register rows (read by the real reader), a
/// patient's context, and the findings one profile gives for them.
#[cfg(test)]
pub(crate) mod testkit {
    use super::Engine;
    use super::PatientData;
    use crate::checks::Profile;
    use crate::domain::{Availability, FixedContact, HsaId, PatientContext};
    use crate::mapping::Mappings;
    use crate::sources::register::{RegisterItem, RegisterReader};
    use std::collections::HashSet;
    use std::sync::OnceLock;

    pub(crate) const AS_OF: &str = "2026-06-01";

    fn mappings() -> &'static Mappings {
        static M: OnceLock<Mappings> = OnceLock::new();
        M.get_or_init(|| {
            Mappings::load(&crate::mapping::default_dir(), None, None)
                .expect("the shipped mappings load")
        })
    }

    /// Register rows after the export's header; each must read as a contact.
    pub(crate) fn rows(lines: &[&str]) -> Vec<FixedContact> {
        let m = mappings();
        let header: Vec<&str> = m
            .register
            .columns
            .all()
            .iter()
            .map(|(_, h, _)| *h)
            .collect();
        let text = format!("{}\n{}\n", header.join(";"), lines.join("\n"));
        let path = std::path::Path::new("test.csv");
        RegisterReader::new(text.as_bytes(), path, &m.register, &m.terminology)
            .expect("header")
            .map(|i| match i.expect("read") {
                RegisterItem::Contact { contact, .. } => contact,
                RegisterItem::Rejected(r) => panic!("test row rejected: {:?}", r.problems),
            })
            .collect()
    }

    /// A row: id, patient, kind (FLK/FVK/BR), role code, coordinating (J/N/empty), start, staff
    /// HSA-id, profession word, licensed, specialty, unit HSA-id, unit kind word.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn row(
        id: &str,
        kind: &str,
        role: &str,
        coordinating: &str,
        staff: &str,
        profession: &str,
        licensed: &str,
        specialty: &str,
        unit: &str,
        unit_kind: &str,
    ) -> String {
        format!(
            "{id};19310304-1004;{kind};{role};{coordinating};Aktiv;2024-01-01;;{staff};Namn;{profession};{licensed};{specialty};{unit};Enhet;{unit_kind};;;"
        )
    }

    /// A general practitioner as FLK at the primary-care centre SE2321000016-V0001.
    pub(crate) fn gp_flk(id: &str) -> String {
        row(
            id,
            "FLK",
            "",
            "",
            "SE2321000016-L001",
            "Läkare",
            "J",
            "Allmänmedicin",
            "SE2321000016-V0001",
            "Vårdcentral",
        )
    }

    /// A licensed nurse as FVK (not coordinating) at the same primary-care centre.
    /// An FVK offered and declined (Avböjd) on 2025-09-01.
    pub(crate) fn declined_fvk(id: &str) -> String {
        format!("{id};19310304-1004;FVK;;;Avböjd;2025-09-01;;;;;;;SE2321000016-V0001;Enhet;Vårdcentral;;;")
    }

    pub(crate) fn nurse_fvk(id: &str) -> String {
        row(
            id,
            "FVK",
            "",
            "",
            "SE2321000016-N001",
            "Sjuksköterska",
            "J",
            "",
            "SE2321000016-V0001",
            "Vårdcentral",
        )
    }

    /// Rule ids of the findings the profile gives (sorted), every fact-kind available but the
    /// EHR's contacts and its staff directory.
    pub(crate) fn findings(
        profile: &str,
        contacts: &[FixedContact],
        ctx: &PatientContext,
    ) -> Vec<String> {
        findings_with(profile, contacts, None, ctx, None)
    }

    /// As `findings`, with the EHR's contacts and its staff directory ((staff, unit) pairs)
    /// when given.
    pub(crate) fn findings_with(
        profile: &str,
        register: &[FixedContact],
        ehr: Option<&[FixedContact]>,
        ctx: &PatientContext,
        directory: Option<&[(&str, &str)]>,
    ) -> Vec<String> {
        let mut ids: Vec<String> = full(profile, register, ehr, ctx, directory)
            .iter()
            .map(|f| f.rule.to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The findings themselves (severity, message), of the register's contacts.
    pub(crate) fn findings_of(
        profile: &str,
        contacts: &[FixedContact],
        ctx: &PatientContext,
    ) -> Vec<crate::checks::Finding> {
        full(profile, contacts, None, ctx, None)
    }

    fn full(
        profile: &str,
        register: &[FixedContact],
        ehr: Option<&[FixedContact]>,
        ctx: &PatientContext,
        directory: Option<&[(&str, &str)]>,
    ) -> Vec<crate::checks::Finding> {
        let m = mappings();
        let dir = crate::mapping::default_dir();
        let profile = Profile::load(profile, &dir, &m.terminology).expect("profile");
        let all = Availability {
            ehr_contacts: ehr.is_some(),
            register: true,
            life_threatening: true,
            municipal_care: true,
            discharge: true,
            admission_notices: true,
            inform_tasks: true,
            deceased_or_moved: true,
            patient_groups: true,
            large_care_needs: true,
            plans: true,
            staff_directory: directory.is_some(),
        };
        let directory: HashSet<(HsaId, HsaId)> = directory
            .unwrap_or_default()
            .iter()
            .filter_map(|(s, u)| Some((HsaId::parse(s).ok()?, HsaId::parse(u).ok()?)))
            .collect();
        let as_of = AS_OF.parse().expect("date");
        let mut e = Engine::new(&profile, all, &directory, as_of, m.speaker());
        let patient = register
            .first()
            .or(ehr.and_then(|x| x.first()))
            .expect("a contact")
            .patient
            .clone();
        let d = PatientData {
            patient: &patient,
            register: register.iter().map(|c| (c, "test.csv:2")).collect(),
            ehr: ehr
                .unwrap_or_default()
                .iter()
                .map(|c| (c, "CareTeam/x"))
                .collect(),
            context: Some(ctx),
            held: false,
        };
        let mut out = Vec::new();
        e.check(&d, &mut out);
        out
    }

    pub(crate) fn has(ids: &[String], rule: &str) -> bool {
        ids.iter().any(|i| i == rule)
    }
}

#[cfg(test)]
mod tests {
    use super::Engine;
    use crate::checks::Profile;
    use crate::domain::Availability;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn findings_that_say_the_same_hold_their_message_once() {
        let m = crate::mapping::Mappings::load(&crate::mapping::default_dir(), None, None)
            .expect("the shipped mappings load");
        let profile = Profile::load("orebro", &crate::mapping::default_dir(), &m.terminology)
            .expect("profile");
        let directory = HashSet::new();
        let e = Engine::new(
            &profile,
            Availability::default(),
            &directory,
            "2026-06-01".parse().expect("date"),
            m.speaker(),
        );
        let a = e.shared("oförändrad sedan 2024-01-01".to_owned());
        let b = e.shared("oförändrad sedan 2024-01-01".to_owned());
        let c = e.shared("oförändrad sedan 2024-01-02".to_owned());
        assert!(Arc::ptr_eq(&a, &b), "the same text is held once");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(&*c, "oförändrad sedan 2024-01-02");
        // A full set starts again rather than growing: the texts stay right.
        for n in 0..super::SAID_MAX + 10 {
            assert_eq!(&*e.shared(format!("m{n}")), format!("m{n}"));
        }
        assert!(e.said.borrow().len() <= super::SAID_MAX);
    }
}
