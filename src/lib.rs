//! fastkontakt: translates, syncs and checks Swedish fixed care contacts (fast vårdkontakt,
//! fast läkarkontakt, behandlande roller) between a population register and an EHR's FHIR R4 API.
//!
//! Data flows one way: `sources` (register CSV, FHIR) → `domain` → checks and diff → plan →
//! `sinks` (FHIR server, reports). `mapping` holds what is data rather than code.

#![warn(missing_docs)]

pub mod checks;
pub mod domain;
pub mod duties;
pub mod fhir;
pub mod mapping;
pub mod pipelines;
pub mod progress;
pub mod reconcile;
/// The synthetic-region generator behind `fastkontakt samples generate` (tests, benchmarks):
/// a command, not part of the library's face.
#[doc(hidden)]
pub mod samples;
pub mod sinks;
pub mod sources;
pub mod sync;
