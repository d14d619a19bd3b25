//! Swedish identifier systems. Both styles are read (Inera/RIVTA OIDs and HL7 Sweden base URIs,
//! plus a known misspelling); the target's style is written.

use crate::mapping::IdentifierStyle;

pub(crate) const PERSONNUMMER_OID: &str = "urn:oid:1.2.752.129.2.1.3.1";
pub(crate) const PERSONNUMMER_URI: &str = "http://electronichealth.se/identifier/personnummer";
pub(crate) const SAMORDNINGSNUMMER_OID: &str = "urn:oid:1.2.752.129.2.1.3.3";
pub(crate) const SAMORDNINGSNUMMER_URI: &str =
    "http://electronichealth.se/identifier/samordningsnummer";
pub(crate) const RESERVNUMMER_OID: &str = "urn:oid:1.2.752.74.9.1";
pub(crate) const RESERVNUMMER_URI: &str =
    "http://electronichealth.se/identifier/nationelltReservnummer";
/// Misspelt in commonprofiles PatientSECommonsLite (research §3.3); read, never written.
pub(crate) const RESERVNUMMER_URI_MISSPELT: &str =
    "http://electronichealth.se/identifier/nationelltReservnumer";
pub(crate) const HSA_OID_INERA: &str = "urn:oid:1.2.752.129.2.1.4.1";
pub(crate) const HSA_OID_HL7SE: &str = "urn:oid:1.2.752.29.4.19";

/// What an identifier's system says it is, whichever style it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentifierKind {
    Personnummer,
    Samordningsnummer,
    NationalReservnummer,
    Hsa,
    Other,
}

pub(crate) fn classify(system: &str) -> IdentifierKind {
    match system {
        PERSONNUMMER_OID | PERSONNUMMER_URI => IdentifierKind::Personnummer,
        SAMORDNINGSNUMMER_OID | SAMORDNINGSNUMMER_URI => IdentifierKind::Samordningsnummer,
        RESERVNUMMER_OID | RESERVNUMMER_URI | RESERVNUMMER_URI_MISSPELT => {
            IdentifierKind::NationalReservnummer
        }
        HSA_OID_INERA | HSA_OID_HL7SE => IdentifierKind::Hsa,
        _ => IdentifierKind::Other,
    }
}

pub(crate) fn hsa_system(style: IdentifierStyle) -> &'static str {
    match style {
        IdentifierStyle::Oid => HSA_OID_INERA,
        IdentifierStyle::Hl7se => HSA_OID_HL7SE,
    }
}

pub(crate) fn patient_system(
    style: IdentifierStyle,
    kind: crate::domain::PatientIdKind,
) -> &'static str {
    use crate::domain::PatientIdKind as K;
    match (style, kind) {
        (IdentifierStyle::Oid, K::Personnummer) => PERSONNUMMER_OID,
        (IdentifierStyle::Oid, K::Samordningsnummer) => SAMORDNINGSNUMMER_OID,
        (IdentifierStyle::Oid, K::Reservnummer) => RESERVNUMMER_OID,
        (IdentifierStyle::Hl7se, K::Personnummer) => PERSONNUMMER_URI,
        (IdentifierStyle::Hl7se, K::Samordningsnummer) => SAMORDNINGSNUMMER_URI,
        (IdentifierStyle::Hl7se, K::Reservnummer) => RESERVNUMMER_URI,
    }
}
