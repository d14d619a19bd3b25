//! Care units: primary-care centre, specialist clinic, inpatient ward, municipal care.

use super::identity::HsaId;
use super::staff::code_enum;

code_enum!(
    /// Kind of care unit (enhetstyp).
    UnitKind {
        /// Vårdcentral: where an FLK works and patients are listed.
        PrimaryCareCentre = "vardcentral",
        SpecialistClinic = "specialistmottagning",
        /// Sluten vård.
        InpatientWard = "slutenvard",
        MunicipalCare = "kommunal-halso-och-sjukvard",
    }
);

impl UnitKind {
    /// The region's outpatient care (öppen vård), where a discharge FVK must be (lag 2017:612).
    pub fn is_region_outpatient(self) -> bool {
        matches!(
            self,
            UnitKind::PrimaryCareCentre | UnitKind::SpecialistClinic
        )
    }
}

/// A care unit (vårdenhet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CareUnit {
    /// Its HSA-id.
    pub hsa: HsaId,
    /// Its name, if known.
    pub name: Option<String>,
    /// Its kind (vårdcentral, specialist clinic …), if known.
    pub kind: Option<UnitKind>,
}
