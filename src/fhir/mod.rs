//! FHIR R4, both ways: domain → resources (`outbound`), resources → domain (`inbound`), and the
//! strict parse/serialise gate (`model`, the only place that calls fhirbolt's serde).

pub mod client;
pub mod context;
pub(crate) mod duties;
pub mod ids;
pub mod inbound;
pub mod model;
pub mod outbound;
pub mod outcome;
pub(crate) mod patients;
pub mod probe;
pub(crate) mod systems;
pub(crate) mod transaction;

pub use model::{FhirError, Resource};
