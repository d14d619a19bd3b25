//! The guideline's concepts as plain Rust types: no FHIR, no CSV.
//! Sources build these; checks, diff and sinks read them.

pub(crate) mod code;
pub mod contact;
pub mod context;
pub mod identity;
pub mod plan;
pub mod staff;
pub mod unit;

pub use contact::{
    ContactKind, ContactStatus, FixedContact, Interner, Period, Registration, RowId, SharedValues,
    TreatingRole,
};
pub use context::{Availability, MunicipalCareForm, OpenInformTask, PatientContext, PatientGroup};
pub use identity::{HsaId, PatientId, PatientIdKind};
pub use plan::{
    CarePlanRecord, Consent, DocumentedAgreement, FollowUp, Intervention, MedicalCarePlan,
    PlanBody, PlanKind, PlanStatus, Principal, Sip,
};
pub use staff::{Licence, Profession, SpecialtyCode, Staff};
pub use unit::{CareUnit, UnitKind};
