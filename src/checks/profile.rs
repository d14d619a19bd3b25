//! A region's profile (`mappings/profiles/*.toml`): every way the two guidelines differ, as
//! settings, with severity overrides and the patient-group table. A region writes its own file.

use super::Severity;
use crate::domain::{PatientGroup, PlanKind};
use crate::mapping::{read_toml, MappingError, Terminology};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FvkSettings {
    /// FK-R01: most active FVKs per patient (Gävleborg §2.2: 1); absent = no limit.
    pub(crate) max_active_per_patient: Option<usize>,
    /// FK-R01: most active FVKs per unit; absent = no limit.
    pub(crate) max_active_per_unit: Option<usize>,
    /// FK-R02: FVKs in several units need exactly one coordinating FVK (Örebro §7.5).
    pub(crate) coordinator_across_units: bool,
    /// FK-R11: an FVK must be health-care staff (Örebro §7.2), not administrative.
    pub(crate) health_care_staff_only: bool,
    /// FK-R07: the discharge FVK must be the coordinating one (Örebro §7.5).
    pub(crate) discharge_fvk_must_coordinate: bool,
    /// FK-R22: days within which a requested contact is appointed; absent = the rule does not
    /// run (neither guideline names a number, so the region states its own).
    #[serde(default)]
    pub(crate) request_appointed_within_days: Option<u32>,
    /// FK-R23: months after which an unchanged active FVK is a reminder to evaluate the need
    /// again (Örebro §7.3 "fortlöpande"); absent = no reminders.
    #[serde(default)]
    pub(crate) review_after_months: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlkSettings {
    /// FK-R05: specialities (codes of CodeSystem `specialitet`) that count as general-practice
    /// competence, "or equivalent" (Örebro §8.2).
    pub(crate) qualifying_specialties: Vec<String>,
}

/// What a group of patients should have (FK-R18).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Needs {
    #[serde(default)]
    pub(crate) contacts: Vec<NeededContact>,
    #[serde(default)]
    pub(crate) plans: Vec<String>,
    /// Örebro §6.2's colours: red "prioritera" (the default), yellow "prioriteras vid behov".
    #[serde(default)]
    pub(crate) tier: Tier,
}

/// How strongly the prioritisation model (Örebro §6.2) points at a group's contacts and plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Tier {
    /// Red: prioritise.
    #[default]
    Red,
    /// Yellow: prioritise when needed.
    Yellow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NeededContact {
    Fvk,
    Flk,
}

/// The contacts and plans a group of patients should have.
pub(crate) type Requirement = (Vec<NeededContact>, Vec<PlanKind>, Tier);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    description: String,
    fvk: FvkSettings,
    flk: FlkSettings,
    #[serde(default)]
    severity: BTreeMap<String, Severity>,
    #[serde(default)]
    disabled: Vec<String>,
    #[serde(default)]
    patient_groups: BTreeMap<String, Needs>,
    #[serde(default)]
    large_care_needs: Needs,
    #[serde(default)]
    rules: BTreeMap<String, RuleInRegion>,
}

/// Where a rule stands in one region: its basis in the region's own document (or the law), or
/// why it does not apply there.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInRegion {
    /// The section of the region's document (or the law) the rule rests on here.
    pub basis: Option<String>,
    /// Why the rule does not apply in this region; the rule is then off.
    pub off: Option<String>,
}

/// One rule as a profile has it (`fastkontakt rules --profile NAME`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleInProfile {
    /// `FK-R01` …
    pub id: &'static str,
    /// What the rule asks.
    pub title: &'static str,
    /// Whether it runs in this region.
    pub on: bool,
    /// Why not, when it does not.
    pub off_because: Option<String>,
    /// Its severity here.
    pub severity: Severity,
    /// Its basis here.
    pub basis: String,
}

/// A region's profile: how its guideline differs (mappings/profiles/NAME.toml).
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) name: String,
    /// What the profile is, in the words of its file.
    pub description: String,
    pub(crate) fvk: FvkSettings,
    pub(crate) flk: FlkSettings,
    pub(crate) severity: BTreeMap<String, Severity>,
    pub(crate) disabled: Vec<String>,
    pub(crate) patient_groups: BTreeMap<PatientGroup, Requirement>,
    pub(crate) large_care_needs: Requirement,
    /// Each rule's basis in this region, or why it is off (by rule id).
    pub(crate) rules: BTreeMap<String, RuleInRegion>,
    /// Each catalogue rule's basis here, made once: every finding shares its rule's text
    /// (made per finding, they were a tenth of a region's findings' memory).
    bases: BTreeMap<&'static str, std::sync::Arc<str>>,
}

impl Profile {
    /// `NAME` (a file in `DIR/profiles/`) or a path to a TOML file.
    pub fn load(
        name_or_path: &str,
        mappings_dir: &Path,
        t: &Terminology,
    ) -> Result<Self, MappingError> {
        let as_path = PathBuf::from(name_or_path);
        let path = if as_path.extension().is_some_and(|x| x == "toml")
            || as_path.components().count() > 1
        {
            as_path
        } else {
            mappings_dir
                .join("profiles")
                .join(format!("{name_or_path}.toml"))
        };
        let raw: RawProfile = read_toml(&path)?;
        let invalid = |message: String| MappingError::Invalid {
            path: path.clone(),
            message,
        };
        for id in raw
            .severity
            .keys()
            .chain(&raw.disabled)
            .chain(raw.rules.keys())
        {
            if super::catalogue::find(id).is_none() {
                return Err(invalid(format!("no rule {id} (rules are FK-R01..FK-R24)")));
            }
        }
        for s in &raw.flk.qualifying_specialties {
            if t.specialty(s).is_none() {
                return Err(invalid(format!(
                    "flk.qualifying_specialties: '{s}' is not in CodeSystem specialitet"
                )));
            }
        }
        let plans = |v: &[String]| -> Result<Vec<PlanKind>, MappingError> {
            v.iter()
                .map(|p| {
                    PlanKind::from_code(p)
                        .ok_or_else(|| invalid(format!("'{p}' is not a plantyp code")))
                })
                .collect()
        };
        let mut groups = BTreeMap::new();
        for (g, needs) in &raw.patient_groups {
            let group = PatientGroup::from_code(g)
                .ok_or_else(|| invalid(format!("patient_groups.{g}: not a patientgrupp code")))?;
            groups.insert(
                group,
                (needs.contacts.clone(), plans(&needs.plans)?, needs.tier),
            );
        }
        let large = (
            raw.large_care_needs.contacts.clone(),
            plans(&raw.large_care_needs.plans)?,
            raw.large_care_needs.tier,
        );
        let rules: BTreeMap<String, RuleInRegion> = raw
            .rules
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        let bases = super::catalogue::RULES
            .iter()
            .map(|r| {
                let basis = rules.get(r.id).and_then(|x| x.basis.as_deref());
                (r.id, basis.unwrap_or(r.basis).into())
            })
            .collect();
        Ok(Profile {
            name: raw.name,
            description: raw.description,
            fvk: raw.fvk,
            flk: raw.flk,
            severity: raw
                .severity
                .into_iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v))
                .collect(),
            disabled: raw
                .disabled
                .iter()
                .map(|d| d.to_ascii_uppercase())
                .collect(),
            patient_groups: groups,
            large_care_needs: large,
            rules,
            bases,
        })
    }

    pub(crate) fn enabled(&self, rule: &str) -> bool {
        !self.disabled.iter().any(|d| d == rule)
            && self.rules.get(rule).is_none_or(|r| r.off.is_none())
    }

    /// The rule's basis in this region: the profile's, else the catalogue's.
    pub(crate) fn basis(&self, rule: &super::catalogue::Rule) -> std::sync::Arc<str> {
        match self.bases.get(rule.id) {
            Some(b) => std::sync::Arc::clone(b),
            None => match self.rules.get(rule.id).and_then(|r| r.basis.as_deref()) {
                Some(b) => b.into(),
                None => rule.basis.into(),
            },
        }
    }

    /// Each rule as it stands in this region: on or off (and why), severity, basis.
    pub fn rule_table(&self) -> Vec<RuleInProfile> {
        super::catalogue::RULES
            .iter()
            .map(|r| RuleInProfile {
                id: r.id,
                title: r.title,
                on: self.enabled(r.id),
                off_because: self
                    .rules
                    .get(r.id)
                    .and_then(|x| x.off.clone())
                    .or_else(|| {
                        (!self.enabled(r.id)).then(|| "disabled in the profile".to_owned())
                    }),
                severity: self.severity.get(r.id).copied().unwrap_or(r.severity),
                basis: self.basis(r).to_string(),
            })
            .collect()
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
