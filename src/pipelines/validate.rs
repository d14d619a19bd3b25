//! Pipeline `validate`: FHIR written by an EHR (a file, a folder, a server) → the product's shape
//! → a `CheckReport` holding only what is wrong with the data itself: not FHIR R4 (FK-IN01), a
//! fixed contact that breaks the shape (FK-IN02, at its element), an invalid identifier (FK-R16);
//! with the input's accounting. The guideline rules are `check`'s.

use super::check::{self, EhrInput};
use super::PipelineError;
use crate::checks::run::CheckReport;
use crate::checks::Profile;
use crate::mapping::Mappings;
use crate::progress::Progress;

/// The rules that judge the data itself rather than the care it records.
pub const SHAPE_RULES: &[&str] = &["FK-IN01", "FK-IN02", "FK-R16"];

/// Validates EHR data against the product's fixed-contact shape.
pub fn run(
    ehr: EhrInput,
    profile: &Profile,
    mappings: &Mappings,
    rt: &tokio::runtime::Handle,
    progress: &Progress,
) -> Result<CheckReport, PipelineError> {
    let mut report = check::run(
        check::Options {
            register: None,
            ehr,
            profile,
            mappings,
            as_of: super::today(),
            quarantine: None,
        },
        rt,
        progress,
        &mut |_, _| {},
    )?;
    report.findings.retain(|f| SHAPE_RULES.contains(&f.rule));
    report.not_evaluated.clear();
    Ok(report)
}
