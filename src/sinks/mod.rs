//! Sinks: where results leave (register CSV, quarantine files, FHIR bundles, reports).
//! They take domain types and plans; none decides anything.

pub mod findings;
pub mod letters;
pub mod private;
pub(crate) mod quarantine;
pub(crate) mod register_csv;
pub(crate) mod report;
