//! Settings for writing FHIR to one target: identifier style, id namespace, owned-data tag.

use super::{read_toml, MappingError};
use serde::Deserialize;
use std::path::Path;

/// Which Swedish identifier systems to write (both are always read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierStyle {
    /// Inera/RIVTA OIDs.
    Oid,
    /// HL7 Sweden base profiles' URIs.
    Hl7se,
}

/// What the product writes into FHIR (mappings/target/*.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// OIDs (Inera) or HL7 Sweden's URIs for identifiers.
    pub identifier_style: IdentifierStyle,
    /// The namespace of the product's UUID v5 ids.
    pub id_namespace: uuid::Uuid,
    pub(crate) row_id_system: String,
    pub(crate) practitioner_role_system: String,
    pub(crate) tag_system: String,
    pub(crate) tag_code: String,
    pub(crate) extension_base: String,
    /// System of the identifiers of what the product writes for the patient's sake: the
    /// written information (Composition) and the inform-the-patient Task.
    #[serde(default = "default_duty_system")]
    pub(crate) duty_system: String,
}

fn default_duty_system() -> String {
    "https://fhir.fastkontakt.example/NamingSystem/fastkontakt-patientuppgift".into()
}

impl TargetConfig {
    pub(crate) fn load(path: &Path) -> Result<Self, MappingError> {
        read_toml(path)
    }
}
