//! Where the EHR's FHIR carries the facts only it knows (`mappings/ehr/*.toml`), resolved to
//! system URLs against the loaded CodeSystems.

use super::terminology::Terminology;
use super::{read_toml, MappingError};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    life_threatening: RawLife,
    municipal_care: RawValued,
    discharge: RawDischarge,
    moved_out: RawFlag,
    patient_group: RawValued,
    large_care_needs: RawCode,
    plans: RawPlans,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLife {
    flag_code: String,
    condition_category: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValued {
    observation_code: String,
    value_system: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDischarge {
    encounter_class_system: String,
    encounter_class_code: String,
    admission_notice_category: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlag {
    flag_code: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCode {
    code: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlans {
    category_system: String,
    activity_system: String,
    principal_system: String,
}

/// A coding to look for: (system URL, code).
pub(crate) type Code = (String, String);

#[derive(Debug, Clone)]
pub(crate) struct EhrMapping {
    pub(crate) life_threatening_flag: Code,
    pub(crate) life_threatening_condition: Code,
    pub(crate) municipal_care_observation: Code,
    pub(crate) municipal_care_system: String,
    pub(crate) discharge_class: Code,
    /// Communication.category of an admission notice (inskrivningsmeddelande).
    pub(crate) admission_notice: Code,
    pub(crate) moved_out_flag: Code,
    pub(crate) patient_group_observation: Code,
    pub(crate) patient_group_system: String,
    pub(crate) large_care_needs: Code,
    pub(crate) plan_category_system: String,
    pub(crate) plan_activity_system: String,
    pub(crate) principal_system: String,
}

impl EhrMapping {
    pub(crate) fn load(path: &Path, t: &Terminology) -> Result<Self, MappingError> {
        let raw: Raw = read_toml(path)?;
        let invalid = |message: String| MappingError::Invalid {
            path: path.into(),
            message,
        };
        let system = |id: &str| -> Result<String, MappingError> {
            t.cs_by_id(id)
                .map(|c| c.url.clone())
                .ok_or_else(|| invalid(format!("no CodeSystem with id '{id}' in mappings/fhir/")))
        };
        let code = |s: &str| -> Result<Code, MappingError> {
            let (id, code) = s
                .split_once('#')
                .ok_or_else(|| invalid(format!("'{s}' is not 'codesystem-id#code'")))?;
            let cs = t.cs_by_id(id).ok_or_else(|| {
                invalid(format!("no CodeSystem with id '{id}' in mappings/fhir/"))
            })?;
            if !cs.contains(code) {
                return Err(invalid(format!("CodeSystem '{id}' has no code '{code}'")));
            }
            Ok((cs.url.clone(), code.to_owned()))
        };
        Ok(EhrMapping {
            life_threatening_flag: code(&raw.life_threatening.flag_code)?,
            life_threatening_condition: code(&raw.life_threatening.condition_category)?,
            municipal_care_observation: code(&raw.municipal_care.observation_code)?,
            municipal_care_system: system(&raw.municipal_care.value_system)?,
            discharge_class: (
                raw.discharge.encounter_class_system,
                raw.discharge.encounter_class_code,
            ),
            admission_notice: code(&raw.discharge.admission_notice_category)?,
            moved_out_flag: code(&raw.moved_out.flag_code)?,
            patient_group_observation: code(&raw.patient_group.observation_code)?,
            patient_group_system: system(&raw.patient_group.value_system)?,
            large_care_needs: code(&raw.large_care_needs.code)?,
            plan_category_system: system(&raw.plans.category_system)?,
            plan_activity_system: system(&raw.plans.activity_system)?,
            principal_system: system(&raw.plans.principal_system)?,
        })
    }
}
