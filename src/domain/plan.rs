//! The three plans the Örebro guideline names, with the parts it requires of each:
//! SIP (§9.3, HSL 16 kap. 4 §), medical care plan (§9.2) and documented agreement (§9.1).
//! The EHR is master of plans; they come from FHIR and are judged by FK-R13..R15.

use super::identity::{HsaId, PatientId};
use super::staff::code_enum;
use chrono::NaiveDate;

code_enum!(
    /// The plan kinds, codes of the project CodeSystem `plantyp`.
    PlanKind {
        Sip = "sip",
        MedicalCarePlan = "medicinsk-vardplan",
        DocumentedAgreement = "dokumenterad-overenskommelse",
    }
);

code_enum!(
    /// Principal (huvudman), codes of the project CodeSystem `huvudman-typ`.
    Principal {
        Region = "region",
        Municipality = "kommun",
        /// Someone other than the region or municipality (HSL 16 kap. 4 § point 3).
        Other = "annan",
    }
);

code_enum!(
    /// Plan status, a subset of FHIR's request-status that the rules distinguish.
    PlanStatus {
        Draft = "draft",
        Active = "active",
        Completed = "completed",
        Revoked = "revoked",
        OnHold = "on-hold",
        EnteredInError = "entered-in-error",
        Unknown = "unknown",
    }
);

/// The patient's consent to a SIP.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Consent {
    pub id: String,
    pub active: bool,
    pub date: Option<NaiveDate>,
}

/// One intervention in a SIP and the principal who answers for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Intervention {
    pub description: String,
    pub responsible: Option<Principal>,
}

/// Samordnad individuell plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Sip {
    pub consent: Option<Consent>,
    /// Point 1 and 2: the interventions and who answers for each.
    pub interventions: Vec<Intervention>,
    /// Point 3: measures taken by others than region and municipality.
    pub measures_by_others: Vec<String>,
    /// Point 4: the principal with overall responsibility.
    pub overall_responsibility: Option<Principal>,
}

/// When and by whom a plan is followed up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FollowUp {
    pub when: Option<NaiveDate>,
    pub by: Option<HsaId>,
}

/// Medicinsk vårdplan: the four central parts of Örebro §9.2 and its author.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct MedicalCarePlan {
    pub prognosis: Option<String>,
    pub care_level_on_deterioration: Option<String>,
    pub direct_contact: Option<String>,
    pub action_plan_on_deterioration: Option<String>,
    pub follow_up: Option<FollowUp>,
    pub treatment_limitations: Option<String>,
    /// The author's HSA-id: the FLK or a treating physician.
    pub author: Option<HsaId>,
}

/// Dokumenterad överenskommelse: coordinated planning with both sides' commitments, the
/// patient's FVK and FLK, and the agreed time of the next contact (Örebro §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DocumentedAgreement {
    pub patient_commitments: Vec<String>,
    pub care_commitments: Vec<String>,
    /// HSA-ids of the contacts the agreement names.
    pub named_contacts: Vec<HsaId>,
    pub next_contact: Option<NaiveDate>,
}

/// A plan as the EHR holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum PlanBody {
    Sip(Sip),
    MedicalCarePlan(MedicalCarePlan),
    DocumentedAgreement(DocumentedAgreement),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CarePlanRecord {
    /// The FHIR id the plan came from, for the report's pointer.
    pub source_id: String,
    #[serde(skip)]
    pub patient: PatientId,
    pub status: PlanStatus,
    pub created: Option<NaiveDate>,
    pub body: PlanBody,
}

impl CarePlanRecord {
    pub fn kind(&self) -> PlanKind {
        match self.body {
            PlanBody::Sip(_) => PlanKind::Sip,
            PlanBody::MedicalCarePlan(_) => PlanKind::MedicalCarePlan,
            PlanBody::DocumentedAgreement(_) => PlanKind::DocumentedAgreement,
        }
    }
    pub fn is_in_force(&self) -> bool {
        matches!(self.status, PlanStatus::Active | PlanStatus::OnHold)
    }
}
