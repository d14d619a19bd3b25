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
    /// The Consent's id.
    pub id: String,
    /// The consent is in force.
    pub active: bool,
    /// When it was given.
    pub date: Option<NaiveDate>,
}

/// One intervention in a SIP and the principal who answers for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Intervention {
    /// What the intervention is.
    pub description: String,
    /// Who carries it out.
    pub responsible: Option<Principal>,
}

/// Samordnad individuell plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Sip {
    /// The patient's consent to the SIP.
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
    /// When the follow-up is planned.
    pub when: Option<NaiveDate>,
    /// Who follows up (HSA-id).
    pub by: Option<HsaId>,
}

/// Medicinsk vårdplan: the four central parts of Örebro §9.2 and its author.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct MedicalCarePlan {
    /// The prognosis.
    pub prognosis: Option<String>,
    /// The level of care if the patient worsens.
    pub care_level_on_deterioration: Option<String>,
    /// How the patient reaches the care directly.
    pub direct_contact: Option<String>,
    /// What to do if the patient worsens.
    pub action_plan_on_deterioration: Option<String>,
    /// The planned follow-up.
    pub follow_up: Option<FollowUp>,
    /// Limits to treatment, if any.
    pub treatment_limitations: Option<String>,
    /// The author's HSA-id: the FLK or a treating physician.
    pub author: Option<HsaId>,
}

/// Dokumenterad överenskommelse: coordinated planning with both sides' commitments, the
/// patient's FVK and FLK, and the agreed time of the next contact (Örebro §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DocumentedAgreement {
    /// What the patient undertakes.
    pub patient_commitments: Vec<String>,
    /// What the care undertakes.
    pub care_commitments: Vec<String>,
    /// HSA-ids of the contacts the agreement names.
    pub named_contacts: Vec<HsaId>,
    /// The next contact's day.
    pub next_contact: Option<NaiveDate>,
}

/// A plan as the EHR holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum PlanBody {
    /// A coordinated individual plan (SIP).
    Sip(Sip),
    /// A medical care plan.
    MedicalCarePlan(MedicalCarePlan),
    /// A documented agreement with the patient.
    DocumentedAgreement(DocumentedAgreement),
}

/// One care plan of a patient, as the EHR records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CarePlanRecord {
    /// The FHIR id the plan came from, for the report's pointer.
    pub source_id: String,
    /// Whose plan it is.
    #[serde(skip)]
    pub patient: PatientId,
    /// Its status.
    pub status: PlanStatus,
    /// When it was made.
    pub created: Option<NaiveDate>,
    /// What it holds, by kind.
    pub body: PlanBody,
}

impl CarePlanRecord {
    /// The plan's kind.
    pub fn kind(&self) -> PlanKind {
        match self.body {
            PlanBody::Sip(_) => PlanKind::Sip,
            PlanBody::MedicalCarePlan(_) => PlanKind::MedicalCarePlan,
            PlanBody::DocumentedAgreement(_) => PlanKind::DocumentedAgreement,
        }
    }
    /// Whether the plan is in force (active, or a draft being made).
    pub fn is_in_force(&self) -> bool {
        matches!(self.status, PlanStatus::Active | PlanStatus::OnHold)
    }
}
