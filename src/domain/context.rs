//! What only the EHR knows about a patient, as far as the rules need it: life-threatening
//! condition, municipal care, a discharge under way, death, moving out, patient group, plans.
//! `None` means the data says nothing about this patient; whether the data could have said
//! something at all is `Availability`.

use super::identity::HsaId;
use super::plan::CarePlanRecord;
use super::staff::code_enum;
pub use thin_vec::ThinVec;

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

/// What the EHR knows of a patient beside the contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
// The lists are `ThinVec`s (8 bytes each when empty, against 24): a region's EHR gives every
// Patient a context, and most hold none of them (1 M contexts: 185 MB of table with `Vec`s).
pub struct PatientContext {
    /// A life-threatening condition is recorded (FK-R03).
    pub life_threatening: bool,
    /// Municipal care forms in force (FK-R06).
    pub municipal_care: ThinVec<MunicipalCareForm>,
    /// An inpatient stay is about to end in discharge.
    pub discharge_pending: bool,
    /// Units of the region's outpatient care an admission notice (inskrivningsmeddelande) went
    /// to: each is to appoint an FVK before discharge (Gävleborg §2.6, lag 2017:612).
    pub admission_notices: ThinVec<HsaId>,
    /// Tasks to tell the patient that an FVK ended or changed, not yet done (FK-R24).
    pub open_inform_tasks: ThinVec<OpenInformTask>,
    /// The patient has died (FK-R20).
    pub deceased: bool,
    /// The patient has moved out of the region (FK-R20).
    pub moved_out: bool,
    /// Patient groups (FK-R18).
    pub groups: ThinVec<PatientGroup>,
    /// Large care and nursing needs (Örebro §8.3).
    pub large_care_needs: bool,
    /// The listing unit the EHR holds.
    pub listing: Option<HsaId>,
    /// Care plans (FK-R13..R15).
    pub plans: ThinVec<CarePlanRecord>,
}

/// Which kinds of EHR fact the input could carry at all: a rule whose fact-kind is absent from
/// the whole input is "not evaluated", never passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Availability {
    /// The EHR's contacts were read.
    pub ehr_contacts: bool,
    /// A register export was read.
    pub register: bool,
    /// Life-threatening conditions are recorded somewhere in the data.
    pub life_threatening: bool,
    /// Municipal care is recorded.
    pub municipal_care: bool,
    /// Inpatient encounters are recorded.
    pub discharge: bool,
    /// Admission notices (Communication) are recorded.
    pub admission_notices: bool,
    /// Inform-the-patient Tasks are recorded.
    pub inform_tasks: bool,
    /// Deaths or moves are recorded.
    pub deceased_or_moved: bool,
    /// Patient groups are recorded.
    pub patient_groups: bool,
    /// Large care needs are recorded.
    pub large_care_needs: bool,
    /// Care plans are recorded.
    pub plans: bool,
    /// A staff directory (PractitionerRoles) is present.
    pub staff_directory: bool,
}

impl PatientContext {
    /// Adds what another part of the same patient's data says.
    pub fn absorb(&mut self, o: PatientContext) {
        self.life_threatening |= o.life_threatening;
        self.municipal_care.extend(o.municipal_care);
        self.discharge_pending |= o.discharge_pending;
        self.admission_notices.extend(o.admission_notices);
        self.open_inform_tasks.extend(o.open_inform_tasks);
        self.deceased |= o.deceased;
        self.moved_out |= o.moved_out;
        self.groups.extend(o.groups);
        self.large_care_needs |= o.large_care_needs;
        if self.listing.is_none() {
            self.listing = o.listing;
        }
        self.plans.extend(o.plans);
    }
}

impl Availability {
    /// A fact-kind is available when any part of the input carries it.
    pub fn absorb(&mut self, o: Availability) {
        self.ehr_contacts |= o.ehr_contacts;
        self.register |= o.register;
        self.life_threatening |= o.life_threatening;
        self.municipal_care |= o.municipal_care;
        self.discharge |= o.discharge;
        self.admission_notices |= o.admission_notices;
        self.inform_tasks |= o.inform_tasks;
        self.deceased_or_moved |= o.deceased_or_moved;
        self.patient_groups |= o.patient_groups;
        self.large_care_needs |= o.large_care_needs;
        self.plans |= o.plans;
        self.staff_directory |= o.staff_directory;
    }
}

/// A task to tell the patient that an FVK ended or changed (Örebro §7.4), still open.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenInformTask {
    /// `Task/id`.
    pub source: String,
    /// When it was made.
    pub since: Option<chrono::NaiveDate>,
    /// The unit that owns it.
    pub unit: Option<HsaId>,
}
