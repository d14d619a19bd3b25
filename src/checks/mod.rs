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
/// Its texts are boxed, without spare room: a region's 200 k findings are held until the report
/// is written (192 bytes each inline, 240 as `String`s, and the messages' growth room besides).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The rule's id (`FK-R01`, `FK-IN01` …).
    pub rule: &'static str,
    /// The severity under the run's profile.
    pub severity: Severity,
    /// 12 digits, no hyphen (the report is data; logs never carry this). For a number that
    /// failed its check (FK-R16) it is the text as found.
    pub patient: Box<str>,
    /// What is wrong, for a person.
    pub message: Box<str>,
    /// The rule's basis in the profile's region (its own document, or the law).
    pub(crate) basis: std::sync::Arc<str>,
    /// What the register says, when it bears on the finding.
    pub(crate) register: Option<Box<str>>,
    /// What the EHR says.
    pub ehr: Option<Box<str>>,
    pub(crate) unit: Option<HsaId>,
    /// The unit's name, where the patient's contacts name it (shown beside the HSA-id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unit_name: Option<Box<str>>,
    /// Register rows (`FILE:LINE Rad-id`) and FHIR resources (`Type/id`) concerned.
    pub sources: Vec<String>,
    /// FHIRPath to the element, for OperationOutcome.
    pub(crate) expression: Option<Box<str>>,
}

impl Finding {
    /// The rule's basis in the run's region.
    pub fn basis(&self) -> &str {
        &self.basis
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
