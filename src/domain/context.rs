//! What only the EHR knows about a patient, as far as the rules need it: life-threatening
//! condition, municipal care, a discharge under way, death, moving out, patient group, plans.
//! `None` means the data says nothing about this patient; whether the data could have said
//! something at all is `Availability`.

use super::identity::HsaId;
use super::plan::CarePlanRecord;
use super::staff::code_enum;

code_enum!(
    /// Municipal care that makes an FLK mandatory (Örebro §8.3).
    MunicipalCareForm {
        SpecialHousing = "sarskilt-boende",
        ShortTermCare = "korttidsvard",
        HomeHealthCare = "hemsjukvard",
    }
);

code_enum!(
    /// Leading Health Care's patient groups (Örebro §6).
    PatientGroup {
        Enkelt = "enkelt",
        Komplicerat = "komplicerat",
        Kroniskt = "kroniskt",
        Komplext = "komplext",
    }
);

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PatientContext {
    pub life_threatening: bool,
    pub municipal_care: Vec<MunicipalCareForm>,
    /// An inpatient stay is about to end in discharge.
    pub discharge_pending: bool,
    pub deceased: bool,
    pub moved_out: bool,
    pub groups: Vec<PatientGroup>,
    /// Large care and nursing needs (Örebro §8.3).
    pub large_care_needs: bool,
    /// The listing unit the EHR holds.
    pub listing: Option<HsaId>,
    pub plans: Vec<CarePlanRecord>,
}

/// Which kinds of EHR fact the input could carry at all: a rule whose fact-kind is absent from
/// the whole input is "not evaluated", never passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Availability {
    pub ehr_contacts: bool,
    pub register: bool,
    pub life_threatening: bool,
    pub municipal_care: bool,
    pub discharge: bool,
    pub deceased_or_moved: bool,
    pub patient_groups: bool,
    pub large_care_needs: bool,
    pub plans: bool,
    pub staff_directory: bool,
}
