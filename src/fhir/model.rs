//! The strict gate to fhirbolt: every resource read is parsed strictly through the `Resource`
//! enum (fhirbolt's typed entry points fail on bundles and decimals); writes serialise from it.
//! Kept to a few non-generic functions, since fhirbolt's serde is costly to compile.

pub use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("not strict FHIR R4 JSON: {0}")]
    Parse(String),
    #[error("could not serialise: {0}")]
    Write(String),
}

fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

/// Parses one resource strictly: unknown elements are an error, never silently dropped.
pub fn parse(bytes: &[u8]) -> Result<Resource, FhirError> {
    fhirbolt::json::from_slice::<Resource>(bytes, strict())
        .map_err(|e| FhirError::Parse(e.to_string()))
}

pub fn parse_value(value: serde_json::Value) -> Result<Resource, FhirError> {
    fhirbolt::json::from_json_value::<Resource>(value, strict())
        .map_err(|e| FhirError::Parse(e.to_string()))
}

pub fn to_vec(resource: &Resource) -> Result<Vec<u8>, FhirError> {
    fhirbolt::json::to_vec(resource, None).map_err(|e| FhirError::Write(e.to_string()))
}

pub fn to_vec_pretty(resource: &Resource) -> Result<Vec<u8>, FhirError> {
    fhirbolt::json::to_vec_pretty(resource, None).map_err(|e| FhirError::Write(e.to_string()))
}

pub fn to_value(resource: Resource) -> Result<serde_json::Value, FhirError> {
    fhirbolt::json::to_json_value(resource, None).map_err(|e| FhirError::Write(e.to_string()))
}

/// The resource type's name, for the types the product reads or writes ("Resource" otherwise).
pub fn type_name(r: &Resource) -> &'static str {
    match r {
        Resource::CareTeam(_) => "CareTeam",
        Resource::Task(_) => "Task",
        Resource::Patient(_) => "Patient",
        Resource::Practitioner(_) => "Practitioner",
        Resource::PractitionerRole(_) => "PractitionerRole",
        Resource::Organization(_) => "Organization",
        Resource::CarePlan(_) => "CarePlan",
        Resource::Consent(_) => "Consent",
        Resource::Provenance(_) => "Provenance",
        Resource::Observation(_) => "Observation",
        Resource::Condition(_) => "Condition",
        Resource::Flag(_) => "Flag",
        Resource::EpisodeOfCare(_) => "EpisodeOfCare",
        Resource::Encounter(_) => "Encounter",
        Resource::Bundle(_) => "Bundle",
        Resource::OperationOutcome(_) => "OperationOutcome",
        _ => "Resource",
    }
}
