//! The guideline rules FK-R01..FK-R24 (R21..R24 the product's own reading of the guidelines): id, default severity, basis as `domain.md` cites it
//! (checked against the guidelines in shared/seeds), a one-line explanation, and the data each
//! needs. The logic is in `rules.rs`; a profile may change a severity.

use super::Severity;

/// A guideline rule as the catalogue states it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Rule {
    /// `FK-R01` …
    pub id: &'static str,
    /// The default severity (a profile may change it).
    pub severity: Severity,
    /// One line naming what the rule asks.
    pub title: &'static str,
    /// The legal and guideline basis, as `domain.md` cites it.
    pub basis: &'static str,
    /// What the rule means, for `fastkontakt rules FK-R..`.
    pub explanation: &'static str,
    /// The data the rule needs (without it, the rule is "not evaluated").
    pub needs: &'static str,
}

const fn rule(
    id: &'static str,
    severity: Severity,
    title: &'static str,
    basis: &'static str,
    explanation: &'static str,
    needs: &'static str,
) -> Rule {
    Rule {
        id,
        severity,
        title,
        basis,
        explanation,
        needs,
    }
}

use Severity::{Error as E, Warning as W};

/// The guideline's rules FK-R01..FK-R24, in id order.
pub const RULES: &[Rule] = &[
    rule("FK-R01", E, "At most one active FVK per patient", "Gävleborg §2.2 (also §2.1)",
        "Gävleborg registers one FVK per patient in the register, and so one in Cosmic; a profile may instead cap FVKs per unit.",
        "contacts (register, or EHR when no register is given)"),
    rule("FK-R02", E, "FVKs in several units have exactly one coordinating FVK", "Örebro §7.5",
        "With active FVKs in more than one unit, one of them should coordinate: none is a warning, two or more an error.",
        "contacts with the coordinating flag"),
    rule("FK-R03", E, "Life-threatening condition: a licensed physician is FVK", "SOSFS 2011:7 2 kap. 3 §; Örebro §7.2; Gävleborg §2.1.2",
        "A patient with a life-threatening condition has a licensed physician (legitimerad läkare) as FVK.",
        "EHR: life-threatening flag or condition; staff profession and licence"),
    rule("FK-R04", E, "An FLK is a physician at a primary-care unit", "HSL 7 kap. 3 §; Örebro §8.1; Gävleborg §2.5",
        "The fast läkarkontakt is a named physician at a vårdcentral.",
        "staff profession, unit kind"),
    rule("FK-R05", W, "An FLK has general-practice competence", "Örebro §8.2",
        "An FLK should be a specialist in general medicine, paediatrics or geriatrics, equivalent, or in ST in general medicine.",
        "physicians' specialties"),
    rule("FK-R06", E, "Municipal care: the patient has an FLK at a primary-care unit", "Örebro §8.3",
        "Patients in special housing, short-term care or home health care have an FLK at a vårdcentral.",
        "EHR: municipal care form"),
    rule("FK-R07", E, "Discharge: the unit an admission notice went to appoints an FVK", "Lag (2017:612) 2 kap. 5 §; Örebro §1.1.1, §7.5; Gävleborg §2.6",
        "Once an admission notice (inskrivningsmeddelande) has gone to a unit of the region's outpatient care, that unit appoints an FVK before the patient is discharged; under Örebro the coordinating FVK (a patient's only FVK is it) is in the region's outpatient care. It need not be in the register.",
        "EHR: inpatient encounter with discharge decided; admission notices (Communication)"),
    rule("FK-R08", E, "Register and EHR agree", "Gävleborg §2.2",
        "Every active register contact is in the EHR with the same person, unit, role and period, and the EHR has no register-kind contact the register lacks.",
        "both the register and the EHR's contacts"),
    rule("FK-R09", E, "Ended in one, ended in both", "Gävleborg §2.1, §2.4; Örebro §7.4",
        "When the need ends the register is updated and the end documented: a contact ended in one system is ended in the other.",
        "both the register and the EHR's contacts"),
    rule("FK-R10", E, "The assigned person is selectable at the unit", "Gävleborg §2.1",
        "The person holds an active role (PractitionerRole) at the named unit.",
        "EHR: staff directory (PractitionerRole)"),
    rule("FK-R11", E, "An FVK is health-care staff", "Örebro §7.2; Gävleborg §2.1.1",
        "Under Örebro an FVK is health-care staff; Gävleborg also allows administrative staff.",
        "staff profession"),
    rule("FK-R12", W, "A declined offer is recorded as declined", "Gävleborg §2.1",
        "When the patient declines an FVK, that is documented in the journal: the EHR holds the declined offer, not nothing.",
        "register (Avböjd rows) and the EHR's records"),
    rule("FK-R13", E, "A SIP has consent and its required content", "HSL 16 kap. 4 §; Örebro §1.1.3, §9.3",
        "A SIP has the patient's consent and states the interventions, which principal answers for which, and which principal has overall responsibility.",
        "EHR: CarePlan (SIP) and Consent"),
    rule("FK-R14", W, "A medical care plan has its four parts", "Örebro §9.2",
        "Prognosis; care level and direction on serious deterioration with direct contact; an action plan on deterioration; when and by whom it is followed up; written by the FLK or a treating physician.",
        "EHR: CarePlan (medicinsk vårdplan)"),
    rule("FK-R15", W, "A documented agreement has its parts", "Örebro §9.1",
        "Coordinated planning with the patient's and the care's commitments, the patient's FVK and FLK, and the agreed time of the next contact.",
        "EHR: CarePlan (dokumenterad överenskommelse)"),
    rule("FK-R16", E, "Identifiers are valid", "data quality",
        "Personnummer and samordningsnummer pass their check digit and date; HSA-ids have their form.",
        "register rows, FHIR identifiers"),
    rule("FK-R17", W, "No duplicate assignment", "data quality",
        "The same person is not assigned the same role for the same patient twice over overlapping periods.",
        "contacts"),
    rule("FK-R18", W, "Prioritised patients have their contacts and plans", "Örebro §6, §8.3, §9.1, §9.2",
        "Patients in the prioritised groups, and patients with large care needs, have the contacts and plans the profile asks for.",
        "EHR: patient group or large-care-needs flag; plans"),
    rule("FK-R19", E, "One FLK, at the listing centre", "HSL 7 kap. 3 §, 3 a §; Inera's definition of fast läkarkontakt i primärvård",
        "At most one active FLK per patient, working at the primary-care centre where the patient is listed.",
        "contacts, listing unit"),
    rule("FK-R20", E, "No active contacts after death or moving out", "register hygiene (Navet feeds the register)",
        "A deceased patient, or one who moved out of the region, has no active contacts left.",
        "EHR: Patient.deceased, moved-out flag"),
    // FK-R21..R24 are the product's own, from issue 16's reading of both guidelines: not in
    // domain.md's list, which the guidelines outrank.
    rule("FK-R21", W, "Professions and treating roles are in the region's lists", "Örebro §7.2; Gävleborg §2.1.1, §2.4",
        "Any profession may hold the FVK role and the treating roles are examples, so the lists are the region's CodeSystems (mappings/fhir/CodeSystem-yrke.json, CodeSystem-behandlande-roll.json): a word not in them is read and reported here, to be added or corrected; a treating role held by another profession than the one the CodeSystem names for it is information.",
        "staff profession, treating-role codes"),
    rule("FK-R22", E, "A requested FVK is appointed in time", "Hälso- och sjukvårdsförordningen (2017:80) 4 kap. 1 §; Örebro §1.1.1, §7.3; Gävleborg §2.1",
        "An FVK is appointed when the patient asks: a request (Begärd) with no FVK appointed after the profile's number of days is an error.",
        "register (Begärd rows) or the EHR's offer Tasks"),
    rule("FK-R23", Severity::Info, "The need for an FVK is evaluated again", "Örebro §7.3; Gävleborg §2.1",
        "The need for an FVK is evaluated continuously, together with the patient: an active FVK unchanged for the profile's number of months is a reminder to evaluate it again.",
        "contacts with their start or last register change"),
    rule("FK-R24", Severity::Info, "The patient is told when an FVK ends or changes", "Örebro §7.4",
        "When an FVK ends or changes, the patient is told: the sync writes a Task \"inform the patient\" owned by the unit; one still open is listed here until the unit marks it done.",
        "EHR: inform-the-patient Tasks"),
];

/// Checks of the input itself, beside the guideline's rules: a check is only as complete as
/// what it could read, and "nothing wrong" must never stand for "nothing read".
pub const INPUT_RULES: &[Rule] = &[
    rule("FK-IN01", E, "EHR data not read", "fastkontakt: every input is read whole, or the run says what it missed",
        "A line or file of the EHR input could not be read as FHIR R4, so the check is incomplete.",
        "EHR input"),
    rule("FK-IN02", E, "A fixed contact in the EHR breaks the product's shape", "fastkontakt: the fixed-contact CareTeam and declined-offer Task of mappings/fhir",
        "A CareTeam or Task that presents itself as a fixed contact (category or role code) could not be read as one; the element says what is wrong.",
        "EHR contacts"),
];

/// A rule (guideline or input) by its id, in any case.
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .chain(INPUT_RULES)
        .find(|r| r.id.eq_ignore_ascii_case(id))
}

/// A rule as the code names it: a typo is a compile error, not a panic at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum RuleId {
    R01,
    R02,
    R03,
    R04,
    R05,
    R06,
    R07,
    R08,
    R09,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    R16,
    R17,
    R18,
    R19,
    R20,
    R21,
    R22,
    R23,
    R24,
}

impl RuleId {
    /// The rule's entry in `RULES` (in id order; a test keeps them in step).
    pub(crate) fn rule(self) -> &'static Rule {
        &RULES[self as usize]
    }
    /// `FK-R01` …
    pub(crate) fn as_str(self) -> &'static str {
        self.rule().id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_id_names_its_own_entry() {
        assert_eq!(RULES.len(), 24);
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.id, format!("FK-R{:02}", i + 1));
        }
        assert_eq!(RuleId::R01.as_str(), "FK-R01");
        assert_eq!(RuleId::R16.as_str(), "FK-R16");
        assert_eq!(RuleId::R20.as_str(), "FK-R20");
    }
}
