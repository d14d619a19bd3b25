//! Deterministic resource ids: the same register row, person or unit always gives the same id
//! (UUID v5 under the target's namespace), so a PUT is idempotent and two racing runs agree.

use crate::domain::{HsaId, PatientId, RowId};
use uuid::Uuid;

/// Makes the product's deterministic resource ids (UUID v5 in the target's namespace).
#[derive(Debug, Clone, Copy)]
pub struct IdMaker {
    namespace: Uuid,
}

impl IdMaker {
    /// A maker in `namespace`.
    pub fn new(namespace: Uuid) -> Self {
        IdMaker { namespace }
    }
    fn make(&self, kind: &str, key: &str) -> String {
        Uuid::new_v5(&self.namespace, format!("{kind}|{key}").as_bytes()).to_string()
    }
    pub(crate) fn patient(&self, p: &PatientId) -> String {
        self.make("Patient", &p.expose())
    }
    pub(crate) fn practitioner(&self, hsa: &HsaId) -> String {
        self.make("Practitioner", hsa.as_str())
    }
    pub(crate) fn organization(&self, hsa: &HsaId) -> String {
        self.make("Organization", hsa.as_str())
    }
    pub(crate) fn practitioner_role(&self, staff: &HsaId, unit: &HsaId) -> String {
        self.make("PractitionerRole", &format!("{staff}|{unit}"))
    }
    /// The Organization standing for a principal type in plans.
    pub(crate) fn principal(&self, code: &str) -> String {
        self.make("Organization", &format!("huvudman|{code}"))
    }
    /// A plan, by the id it has where it came from.
    pub(crate) fn plan(&self, source: &str) -> String {
        self.make("CarePlan", source)
    }
    /// CareTeam for a register row (or Task, for a declined offer).
    pub fn relation(&self, resource_type: &str, row: &RowId) -> String {
        self.make(resource_type, row.as_str())
    }
}
