//! Checks: the guideline rules run over the domain (register contacts, EHR contacts, EHR-only
//! facts) → findings. Reads domain types only; sinks turn findings into reports.

pub mod catalogue;
pub(crate) mod matching;
pub(crate) mod profile;
pub mod rules;
pub mod run;

pub use profile::Profile;

use crate::domain::HsaId;
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
/// How serious a finding is; `--fail-on` compares against it.
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Probably wrong; look at it.
    Warning,
    /// Wrong against the guideline or the data: to fix.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One breach of one rule for one patient, with what each side says and where it came from.
/// A region's 200 k findings are held until the report is written, so a finding is kept small
/// (120 bytes inline, was 192): its message shared with the others that read the same (a
/// million patients' findings say ~9 k different things), and what only the EHR's findings
/// carry (the EHR's side, the unit, the element) boxed apart, absent from the rest.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The rule's id (`FK-R01`, `FK-IN01` …).
    pub rule: &'static str,
    /// The severity under the run's profile.
    pub severity: Severity,
    /// 12 digits, no hyphen (the report is data; logs never carry this). For a number that
    /// failed its check (FK-R16) it is the text as found.
    pub patient: Box<str>,
    /// What is wrong, for a person.
    pub message: std::sync::Arc<str>,
    /// The rule's basis in the profile's region (its own document, or the law).
    pub(crate) basis: std::sync::Arc<str>,
    /// What the register says, when it bears on the finding.
    pub(crate) register: Option<Box<str>>,
    /// Register rows (`FILE:LINE Rad-id`) and FHIR resources (`Type/id`) concerned.
    pub sources: Vec<String>,
    /// The EHR's side, the unit and the element, when the finding has any of them.
    about: Option<Box<About>>,
}

/// What some findings say beyond the rule, the patient and the register (see `Finding`).
#[derive(Debug, Clone, Default)]
struct About {
    ehr: Option<Box<str>>,
    unit: Option<HsaId>,
    unit_name: Option<Box<str>>,
    expression: Option<Box<str>>,
}

impl Finding {
    /// A finding of `rule` for `patient`; its message is shared when `message` is already.
    pub(crate) fn new(
        rule: &'static str,
        severity: Severity,
        patient: Box<str>,
        message: std::sync::Arc<str>,
        basis: std::sync::Arc<str>,
        sources: Vec<String>,
    ) -> Self {
        Finding {
            rule,
            severity,
            patient,
            message,
            basis,
            register: None,
            sources,
            about: None,
        }
    }

    /// The rule's basis in the run's region.
    pub fn basis(&self) -> &str {
        &self.basis
    }

    /// What the EHR says.
    pub fn ehr(&self) -> Option<&str> {
        self.about.as_ref()?.ehr.as_deref()
    }

    /// The unit the finding is about.
    pub(crate) fn unit(&self) -> Option<&HsaId> {
        self.about.as_ref()?.unit.as_ref()
    }

    /// The unit's name, where the patient's contacts name it (shown beside the HSA-id).
    pub(crate) fn unit_name(&self) -> Option<&str> {
        self.about.as_ref()?.unit_name.as_deref()
    }

    /// FHIRPath to the element, for OperationOutcome.
    pub(crate) fn expression(&self) -> Option<&str> {
        self.about.as_ref()?.expression.as_deref()
    }

    fn about(&mut self) -> &mut About {
        self.about.get_or_insert_with(Box::default)
    }

    pub(crate) fn with_register(mut self, register: Option<String>) -> Self {
        self.register = register.map(String::into_boxed_str);
        self
    }

    pub(crate) fn with_ehr(mut self, ehr: Option<String>) -> Self {
        if let Some(e) = ehr {
            self.about().ehr = Some(e.into_boxed_str());
        }
        self
    }

    pub(crate) fn with_unit(mut self, unit: Option<HsaId>) -> Self {
        if unit.is_some() {
            self.about().unit = unit;
        }
        self
    }

    pub(crate) fn with_expression(mut self, expression: Option<String>) -> Self {
        if let Some(e) = expression {
            self.about().expression = Some(e.into_boxed_str());
        }
        self
    }

    pub(crate) fn set_unit_name(&mut self, name: Option<Box<str>>) {
        if let Some(n) = name {
            self.about().unit_name = Some(n);
        }
    }
}

/// The report's shape, field by field as it always was (`unit_name` only when known).
impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let name = self.unit_name();
        let mut m = s.serialize_struct("Finding", 10 + usize::from(name.is_some()))?;
        m.serialize_field("rule", self.rule)?;
        m.serialize_field("severity", &self.severity)?;
        m.serialize_field("patient", &self.patient)?;
        m.serialize_field("message", &*self.message)?;
        m.serialize_field("basis", &*self.basis)?;
        m.serialize_field("register", &self.register)?;
        m.serialize_field("ehr", &self.ehr())?;
        m.serialize_field("unit", &self.unit())?;
        match name {
            Some(n) => m.serialize_field("unit_name", n)?,
            None => m.skip_field("unit_name")?,
        }
        m.serialize_field("sources", &self.sources)?;
        m.serialize_field("expression", &self.expression())?;
        m.end()
    }
}

/// A rule that could not run for lack of data, said once per run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NotEvaluated {
    /// The rule's id.
    pub rule: &'static str,
    /// Which data was missing.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::{Finding, Severity};
    use crate::domain::HsaId;

    #[test]
    fn a_finding_is_held_in_120_bytes() {
        // A region's 200 k findings sit in memory until the report: growth here is the peak's.
        assert!(std::mem::size_of::<Finding>() <= 120);
    }

    #[test]
    fn a_finding_reads_field_by_field_as_before() {
        let plain = Finding::new(
            "FK-R23",
            Severity::Info,
            "191212121212".into(),
            "m".into(),
            "b".into(),
            vec!["r.csv:2 R-1".into()],
        )
        .with_register(Some("FVK x".into()));
        assert_eq!(
            serde_json::to_string(&plain).expect("json"),
            r#"{"rule":"FK-R23","severity":"info","patient":"191212121212","message":"m","basis":"b","register":"FVK x","ehr":null,"unit":null,"sources":["r.csv:2 R-1"],"expression":null}"#
        );
        let mut full = plain
            .with_ehr(Some("FVK y".into()))
            .with_unit(HsaId::parse("SE2321000016-V0001").ok())
            .with_expression(Some("CareTeam.status".into()));
        full.set_unit_name(Some("Vårdcentralen".into()));
        assert_eq!(
            serde_json::to_string(&full).expect("json"),
            r#"{"rule":"FK-R23","severity":"info","patient":"191212121212","message":"m","basis":"b","register":"FVK x","ehr":"FVK y","unit":"SE2321000016-V0001","unit_name":"Vårdcentralen","sources":["r.csv:2 R-1"],"expression":"CareTeam.status"}"#
        );
    }
}
