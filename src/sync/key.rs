//! Sync, plan model: what a plan item is about. The planner makes these keys, the applier and
//! the state file use them; on disk (plan.json, the state's tables) a key is one string.

pub(crate) use crate::fhir::outbound::Carrier;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The key of a register row's relation (`CareTeam|R-1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RelationKey {
    /// The resource that carries it.
    pub(crate) carrier: Carrier,
    /// The register's row id (Rad-id).
    pub(crate) row: String,
}

impl RelationKey {
    /// The key of one row's relation.
    pub fn new(carrier: Carrier, row: &str) -> RelationKey {
        RelationKey {
            carrier,
            row: row.to_owned(),
        }
    }
}

/// The key of a plan item, a conflict and a state row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub(crate) enum PlanKey {
    /// The relation one register row names.
    Relation(RelationKey),
    /// A Patient, Practitioner, PractitionerRole or Organization the relations reference
    /// (`Practitioner/abc`).
    Reference {
        /// The resource type.
        resource_type: String,
        /// The resource's id.
        id: String,
    },
    /// A contact typed by hand in the EHR that a takeover ends (`hand:CareTeam/abc`): its own
    /// key, since the register row it stands for is the product's relation's key.
    HandTyped {
        /// The resource type.
        resource_type: String,
        /// The resource's id.
        id: String,
    },
}

impl From<RelationKey> for PlanKey {
    fn from(k: RelationKey) -> PlanKey {
        PlanKey::Relation(k)
    }
}

impl fmt::Display for RelationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.carrier.as_str(), self.row)
    }
}

impl fmt::Display for PlanKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanKey::Relation(k) => k.fmt(f),
            PlanKey::Reference { resource_type, id } => write!(f, "{resource_type}/{id}"),
            PlanKey::HandTyped { resource_type, id } => {
                write!(f, "{HAND}{resource_type}/{id}")
            }
        }
    }
}

impl From<PlanKey> for String {
    fn from(k: PlanKey) -> String {
        k.to_string()
    }
}

const HAND: &str = "hand:";

/// A key string that is neither `CareTeam|row`, `Task|row` nor `Type/id`.
#[derive(Debug, thiserror::Error)]
#[error("not a plan key: {0:?} (expected CareTeam|ROW, Task|ROW, Type/id or hand:Type/id)")]
pub(crate) struct BadPlanKey(String);

impl TryFrom<String> for PlanKey {
    type Error = BadPlanKey;

    fn try_from(s: String) -> Result<PlanKey, BadPlanKey> {
        if let Some(rest) = s.strip_prefix(HAND) {
            return match rest.split_once('/') {
                Some((t, id)) if Carrier::from_type_name(t).is_some() && !id.is_empty() => {
                    Ok(PlanKey::HandTyped {
                        resource_type: t.to_owned(),
                        id: id.to_owned(),
                    })
                }
                _ => Err(BadPlanKey(s)),
            };
        }
        if let Some((t, row)) = s.split_once('|') {
            return match Carrier::from_type_name(t) {
                Some(carrier) if !row.is_empty() => Ok(RelationKey::new(carrier, row).into()),
                _ => Err(BadPlanKey(s)),
            };
        }
        match s.split_once('/') {
            Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok(PlanKey::Reference {
                resource_type: t.to_owned(),
                id: id.to_owned(),
            }),
            _ => Err(BadPlanKey(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_written() {
        for k in [
            RelationKey::new(Carrier::CareTeam, "R-1|x").into(),
            RelationKey::new(Carrier::Task, "R-2").into(),
            PlanKey::Reference {
                resource_type: "Practitioner".into(),
                id: "abc".into(),
            },
            PlanKey::HandTyped {
                resource_type: "CareTeam".into(),
                id: "hand-1".into(),
            },
        ] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<PlanKey>(&json).unwrap(), k);
        }
        assert_eq!(
            PlanKey::from(RelationKey::new(Carrier::Task, "R-2")).to_string(),
            "Task|R-2"
        );
    }

    #[test]
    fn other_strings_are_refused() {
        for s in [
            "Observation|R-1",
            "CareTeam|",
            "nothing",
            "/x",
            "Patient/",
            "hand:Patient/x",
            "hand:CareTeam/",
        ] {
            assert!(PlanKey::try_from(s.to_owned()).is_err(), "{s}");
        }
    }
}
