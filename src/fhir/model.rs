//! The strict gate to fhirbolt: every resource read is parsed strictly; writes serialise from
//! the `Resource` enum. Kept to a few non-generic functions, since fhirbolt's serde is costly to
//! compile.
//!
//! fhirbolt panics on some invalid input (an empty array met through the `Resource` enum): an
//! empty array is refused here first, with its place, and any other panic inside the parser
//! is caught and turned into a parse error, so one bad line never ends a run.

pub use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("not strict FHIR R4 JSON: {0}")]
    Parse(String),
    #[error("could not serialise: {0}")]
    Write(String),
}

fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

thread_local! {
    /// Set while fhirbolt runs, so the binary's panic hook keeps quiet about a caught panic.
    pub static IN_PARSER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a fhirbolt call; a panic in it is a parse error of this input.
fn guarded<T>(f: impl FnOnce() -> Result<T, FhirError>) -> Result<T, FhirError> {
    IN_PARSER.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_PARSER.with(|c| c.set(false));
    r.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(FhirError::Parse(format!(
            "the FHIR parser failed on this input ({})",
            crate::fhir::client::truncate_chars(&msg, 200)
        )))
    })
}

/// FHIR JSON forbids empty arrays; fhirbolt panics on some. The path of the first one, if any.
/// Cheap: only a line holding `[` then `]` with nothing but space between is looked at twice.
pub(crate) fn empty_array(bytes: &[u8]) -> Option<String> {
    let candidate = memchr::memchr_iter(b']', bytes)
        .any(|i| bytes[..i].iter().rev().find(|c| !c.is_ascii_whitespace()) == Some(&b'['));
    if !candidate {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    empty_array_in(&v)
}

/// The path of the first empty array in a JSON value, if any.
pub(crate) fn empty_array_in(v: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, path: &mut Vec<String>) -> Option<String> {
        match v {
            serde_json::Value::Array(a) if a.is_empty() => Some(path.join(".")),
            serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| {
                if let Some(last) = path.last_mut() {
                    let saved = last.clone();
                    *last = format!("{saved}[{i}]");
                    let r = walk(x, path);
                    if let Some(l) = path.last_mut() {
                        *l = saved;
                    }
                    r
                } else {
                    walk(x, path)
                }
            }),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
                path.push(k.clone());
                let r = walk(x, path);
                path.pop();
                r
            }),
            _ => None,
        }
    }
    let root = v["resourceType"]
        .as_str()
        .unwrap_or("(resource)")
        .to_owned();
    walk(v, &mut vec![root])
}

/// How far the first JSON value of some bytes goes, read outside strings only.
#[derive(Debug, PartialEq, Eq)]
enum Extent {
    /// The first value's closing bracket is at this index.
    Closed(usize),
    /// The bytes end inside it, this deep, inside a string or not.
    Open { depth: i32, in_string: bool },
}

fn first_value(bytes: &[u8]) -> Extent {
    let (mut depth, mut started, mut i) = (0i32, false, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Most of a resource's bytes are inside strings: jump to the next quote or
                // backslash rather than look at each byte.
                i += 1;
                loop {
                    // An escape takes the byte after it, which may be past the end.
                    match memchr::memchr2(b'"', b'\\', bytes.get(i..).unwrap_or_default()) {
                        Some(k) if bytes[i + k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k;
                            break;
                        }
                        None => {
                            return Extent::Open {
                                depth,
                                in_string: true,
                            }
                        }
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                started = true;
            }
            b'}' | b']' => {
                depth -= 1;
                if started && depth == 0 {
                    return Extent::Closed(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Extent::Open {
        depth,
        in_string: false,
    }
}

/// Whether anything but white space follows the first JSON value (fhirbolt reads one value
/// and stops; `{...} {...}` on one NDJSON line would otherwise read as one resource).
pub(crate) fn trailing_content(bytes: &[u8]) -> bool {
    match first_value(bytes) {
        Extent::Closed(i) => bytes[i + 1..].iter().any(|c| !c.is_ascii_whitespace()),
        Extent::Open { .. } => false,
    }
}

fn refuse_trailing(bytes: &[u8]) -> Result<(), FhirError> {
    if trailing_content(bytes) {
        return Err(FhirError::Parse(
            "content after the resource: one line or file holds one JSON value".into(),
        ));
    }
    Ok(())
}

fn refuse_empty_arrays(at: Option<String>) -> Result<(), FhirError> {
    match at {
        Some(at) => Err(FhirError::Parse(format!(
            "{at}: an empty array (FHIR JSON leaves an element out rather than empty)"
        ))),
        None => Ok(()),
    }
}

/// Parses one resource strictly: unknown elements are an error, never silently dropped.
pub fn parse(bytes: &[u8]) -> Result<Resource, FhirError> {
    refuse_empty_arrays(empty_array(bytes))?;
    refuse_trailing(bytes)?;
    guarded(|| {
        fhirbolt::json::from_slice::<Resource>(bytes, strict())
            .map_err(|e| FhirError::Parse(e.to_string()))
    })
}

/// The `resourceType` of one NDJSON line without parsing it: the first `"resourceType"` key,
/// if it belongs to the outer object (not a contained resource's). None otherwise; the line is
/// then fully parsed to find out.
pub(crate) fn peek_type(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"resourceType\"";
    let at = line.windows(KEY.len()).position(|w| w == KEY)?;
    if !at_top_level(&line[..at]) {
        return None;
    }
    let rest = &line[at + KEY.len()..];
    let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    if rest[colon] != b':' {
        return None;
    }
    let rest = &rest[colon + 1..];
    let q = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    if rest[q] != b'"' {
        return None;
    }
    let rest = &rest[q + 1..];
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Whether the end of `prefix` is inside the first, outer JSON object and outside any string.
/// A prefix that does not open with `{`, or whose outer object closes before the end, is not:
/// the line is then parsed through the enum, which refuses what is not one resource.
fn at_top_level(prefix: &[u8]) -> bool {
    prefix.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && first_value(prefix)
            == Extent::Open {
                depth: 1,
                in_string: false,
            }
}

/// Parses one NDJSON line strictly, by its peeked type when it has one.
pub fn parse_line(bytes: &[u8]) -> Result<Resource, FhirError> {
    match peek_type(bytes) {
        Some(t) => parse_as(t, bytes),
        None => parse(bytes),
    }
}

/// Parses one resource whose `resourceType` is already known (peeked from an NDJSON line).
/// fhirbolt reads the `Resource` enum through a generic element tree and then a second pass;
/// the concrete type is read in one pass, four times faster. Equally strict: unknown elements
/// fail, and a `resourceType` other than `type_name` fails. Types the product does not read
/// go through the enum.
pub(crate) fn parse_as(type_name: &str, bytes: &[u8]) -> Result<Resource, FhirError> {
    use fhirbolt::model::r4::resources as r;
    refuse_empty_arrays(empty_array(bytes))?;
    refuse_trailing(bytes)?;
    fn one<'a, T: fhirbolt::serde::DeserializeResource<'a>>(
        bytes: &'a [u8],
        wrap: fn(Box<T>) -> Resource,
    ) -> Result<Resource, FhirError> {
        guarded(|| {
            fhirbolt::json::from_slice::<T>(bytes, strict())
                .map(|r| wrap(Box::new(r)))
                .map_err(|e| FhirError::Parse(e.to_string()))
        })
    }
    match type_name {
        "CareTeam" => one::<r::CareTeam>(bytes, Resource::CareTeam),
        "Task" => one::<r::Task>(bytes, Resource::Task),
        "Patient" => one::<r::Patient>(bytes, Resource::Patient),
        "Practitioner" => one::<r::Practitioner>(bytes, Resource::Practitioner),
        "PractitionerRole" => one::<r::PractitionerRole>(bytes, Resource::PractitionerRole),
        "Organization" => one::<r::Organization>(bytes, Resource::Organization),
        "CarePlan" => one::<r::CarePlan>(bytes, Resource::CarePlan),
        "Consent" => one::<r::Consent>(bytes, Resource::Consent),
        _ => parse(bytes),
    }
    // A line that fails is read again through the enum, so its reason is the one every
    // other reader reports.
    .or_else(|_| parse(bytes))
}

pub(crate) fn parse_value(value: serde_json::Value) -> Result<Resource, FhirError> {
    refuse_empty_arrays(empty_array_in(&value))?;
    guarded(|| {
        fhirbolt::json::from_json_value::<Resource>(value, strict())
            .map_err(|e| FhirError::Parse(e.to_string()))
    })
}

/// The resource as JSON bytes.
pub fn to_vec(resource: &Resource) -> Result<Vec<u8>, FhirError> {
    fhirbolt::json::to_vec(resource, None).map_err(|e| FhirError::Write(e.to_string()))
}

/// Serialises a resource onto the end of `buf` (no intermediate buffer).
pub(crate) fn write_to(resource: &Resource, buf: &mut Vec<u8>) -> Result<(), FhirError> {
    fhirbolt::json::to_writer(buf, resource, None).map_err(|e| FhirError::Write(e.to_string()))
}

pub(crate) fn to_value(resource: Resource) -> Result<serde_json::Value, FhirError> {
    fhirbolt::json::to_json_value(resource, None).map_err(|e| FhirError::Write(e.to_string()))
}

/// The resource type's name, for the types the product reads or writes ("Resource" otherwise).
pub(crate) fn type_name(r: &Resource) -> &'static str {
    // Every R4 resource type (a data table, generated from fhirbolt's enum): a type the product
    // does not read is still counted under its own name.
    match r {
        Resource::Account(_) => "Account",
        Resource::ActivityDefinition(_) => "ActivityDefinition",
        Resource::AdverseEvent(_) => "AdverseEvent",
        Resource::AllergyIntolerance(_) => "AllergyIntolerance",
        Resource::Appointment(_) => "Appointment",
        Resource::AppointmentResponse(_) => "AppointmentResponse",
        Resource::AuditEvent(_) => "AuditEvent",
        Resource::Basic(_) => "Basic",
        Resource::Binary(_) => "Binary",
        Resource::BiologicallyDerivedProduct(_) => "BiologicallyDerivedProduct",
        Resource::BodyStructure(_) => "BodyStructure",
        Resource::Bundle(_) => "Bundle",
        Resource::CapabilityStatement(_) => "CapabilityStatement",
        Resource::CarePlan(_) => "CarePlan",
        Resource::CareTeam(_) => "CareTeam",
        Resource::CatalogEntry(_) => "CatalogEntry",
        Resource::ChargeItem(_) => "ChargeItem",
        Resource::ChargeItemDefinition(_) => "ChargeItemDefinition",
        Resource::Claim(_) => "Claim",
        Resource::ClaimResponse(_) => "ClaimResponse",
        Resource::ClinicalImpression(_) => "ClinicalImpression",
        Resource::CodeSystem(_) => "CodeSystem",
        Resource::Communication(_) => "Communication",
        Resource::CommunicationRequest(_) => "CommunicationRequest",
        Resource::CompartmentDefinition(_) => "CompartmentDefinition",
        Resource::Composition(_) => "Composition",
        Resource::ConceptMap(_) => "ConceptMap",
        Resource::Condition(_) => "Condition",
        Resource::Consent(_) => "Consent",
        Resource::Contract(_) => "Contract",
        Resource::Coverage(_) => "Coverage",
        Resource::CoverageEligibilityRequest(_) => "CoverageEligibilityRequest",
        Resource::CoverageEligibilityResponse(_) => "CoverageEligibilityResponse",
        Resource::DetectedIssue(_) => "DetectedIssue",
        Resource::Device(_) => "Device",
        Resource::DeviceDefinition(_) => "DeviceDefinition",
        Resource::DeviceMetric(_) => "DeviceMetric",
        Resource::DeviceRequest(_) => "DeviceRequest",
        Resource::DeviceUseStatement(_) => "DeviceUseStatement",
        Resource::DiagnosticReport(_) => "DiagnosticReport",
        Resource::DocumentManifest(_) => "DocumentManifest",
        Resource::DocumentReference(_) => "DocumentReference",
        Resource::EffectEvidenceSynthesis(_) => "EffectEvidenceSynthesis",
        Resource::Encounter(_) => "Encounter",
        Resource::Endpoint(_) => "Endpoint",
        Resource::EnrollmentRequest(_) => "EnrollmentRequest",
        Resource::EnrollmentResponse(_) => "EnrollmentResponse",
        Resource::EpisodeOfCare(_) => "EpisodeOfCare",
        Resource::EventDefinition(_) => "EventDefinition",
        Resource::Evidence(_) => "Evidence",
        Resource::EvidenceVariable(_) => "EvidenceVariable",
        Resource::ExampleScenario(_) => "ExampleScenario",
        Resource::ExplanationOfBenefit(_) => "ExplanationOfBenefit",
        Resource::FamilyMemberHistory(_) => "FamilyMemberHistory",
        Resource::Flag(_) => "Flag",
        Resource::Goal(_) => "Goal",
        Resource::GraphDefinition(_) => "GraphDefinition",
        Resource::Group(_) => "Group",
        Resource::GuidanceResponse(_) => "GuidanceResponse",
        Resource::HealthcareService(_) => "HealthcareService",
        Resource::ImagingStudy(_) => "ImagingStudy",
        Resource::Immunization(_) => "Immunization",
        Resource::ImmunizationEvaluation(_) => "ImmunizationEvaluation",
        Resource::ImmunizationRecommendation(_) => "ImmunizationRecommendation",
        Resource::ImplementationGuide(_) => "ImplementationGuide",
        Resource::InsurancePlan(_) => "InsurancePlan",
        Resource::Invoice(_) => "Invoice",
        Resource::Library(_) => "Library",
        Resource::Linkage(_) => "Linkage",
        Resource::List(_) => "List",
        Resource::Location(_) => "Location",
        Resource::Measure(_) => "Measure",
        Resource::MeasureReport(_) => "MeasureReport",
        Resource::Media(_) => "Media",
        Resource::Medication(_) => "Medication",
        Resource::MedicationAdministration(_) => "MedicationAdministration",
        Resource::MedicationDispense(_) => "MedicationDispense",
        Resource::MedicationKnowledge(_) => "MedicationKnowledge",
        Resource::MedicationRequest(_) => "MedicationRequest",
        Resource::MedicationStatement(_) => "MedicationStatement",
        Resource::MedicinalProduct(_) => "MedicinalProduct",
        Resource::MedicinalProductAuthorization(_) => "MedicinalProductAuthorization",
        Resource::MedicinalProductContraindication(_) => "MedicinalProductContraindication",
        Resource::MedicinalProductIndication(_) => "MedicinalProductIndication",
        Resource::MedicinalProductIngredient(_) => "MedicinalProductIngredient",
        Resource::MedicinalProductInteraction(_) => "MedicinalProductInteraction",
        Resource::MedicinalProductManufactured(_) => "MedicinalProductManufactured",
        Resource::MedicinalProductPackaged(_) => "MedicinalProductPackaged",
        Resource::MedicinalProductPharmaceutical(_) => "MedicinalProductPharmaceutical",
        Resource::MedicinalProductUndesirableEffect(_) => "MedicinalProductUndesirableEffect",
        Resource::MessageDefinition(_) => "MessageDefinition",
        Resource::MessageHeader(_) => "MessageHeader",
        Resource::MolecularSequence(_) => "MolecularSequence",
        Resource::NamingSystem(_) => "NamingSystem",
        Resource::NutritionOrder(_) => "NutritionOrder",
        Resource::Observation(_) => "Observation",
        Resource::ObservationDefinition(_) => "ObservationDefinition",
        Resource::OperationDefinition(_) => "OperationDefinition",
        Resource::OperationOutcome(_) => "OperationOutcome",
        Resource::Organization(_) => "Organization",
        Resource::OrganizationAffiliation(_) => "OrganizationAffiliation",
        Resource::Parameters(_) => "Parameters",
        Resource::Patient(_) => "Patient",
        Resource::PaymentNotice(_) => "PaymentNotice",
        Resource::PaymentReconciliation(_) => "PaymentReconciliation",
        Resource::Person(_) => "Person",
        Resource::PlanDefinition(_) => "PlanDefinition",
        Resource::Practitioner(_) => "Practitioner",
        Resource::PractitionerRole(_) => "PractitionerRole",
        Resource::Procedure(_) => "Procedure",
        Resource::Provenance(_) => "Provenance",
        Resource::Questionnaire(_) => "Questionnaire",
        Resource::QuestionnaireResponse(_) => "QuestionnaireResponse",
        Resource::RelatedPerson(_) => "RelatedPerson",
        Resource::RequestGroup(_) => "RequestGroup",
        Resource::ResearchDefinition(_) => "ResearchDefinition",
        Resource::ResearchElementDefinition(_) => "ResearchElementDefinition",
        Resource::ResearchStudy(_) => "ResearchStudy",
        Resource::ResearchSubject(_) => "ResearchSubject",
        Resource::RiskAssessment(_) => "RiskAssessment",
        Resource::RiskEvidenceSynthesis(_) => "RiskEvidenceSynthesis",
        Resource::Schedule(_) => "Schedule",
        Resource::SearchParameter(_) => "SearchParameter",
        Resource::ServiceRequest(_) => "ServiceRequest",
        Resource::Slot(_) => "Slot",
        Resource::Specimen(_) => "Specimen",
        Resource::SpecimenDefinition(_) => "SpecimenDefinition",
        Resource::StructureDefinition(_) => "StructureDefinition",
        Resource::StructureMap(_) => "StructureMap",
        Resource::Subscription(_) => "Subscription",
        Resource::Substance(_) => "Substance",
        Resource::SubstanceNucleicAcid(_) => "SubstanceNucleicAcid",
        Resource::SubstancePolymer(_) => "SubstancePolymer",
        Resource::SubstanceProtein(_) => "SubstanceProtein",
        Resource::SubstanceReferenceInformation(_) => "SubstanceReferenceInformation",
        Resource::SubstanceSourceMaterial(_) => "SubstanceSourceMaterial",
        Resource::SubstanceSpecification(_) => "SubstanceSpecification",
        Resource::SupplyDelivery(_) => "SupplyDelivery",
        Resource::SupplyRequest(_) => "SupplyRequest",
        Resource::Task(_) => "Task",
        Resource::TerminologyCapabilities(_) => "TerminologyCapabilities",
        Resource::TestReport(_) => "TestReport",
        Resource::TestScript(_) => "TestScript",
        Resource::ValueSet(_) => "ValueSet",
        Resource::VerificationResult(_) => "VerificationResult",
        Resource::VisionPrescription(_) => "VisionPrescription",
        Resource::Invalid => "Resource",
    }
}

#[cfg(test)]
mod tests {
    use super::{first_value, Extent};

    /// The scanner as first written, a byte at a time: the oracle for the one that jumps
    /// through strings.
    fn first_value_bytewise(bytes: &[u8]) -> Extent {
        let (mut depth, mut in_string, mut escaped, mut started) = (0i32, false, false, false);
        for (i, &b) in bytes.iter().enumerate() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    started = true;
                }
                b'}' | b']' => {
                    depth -= 1;
                    if started && depth == 0 {
                        return Extent::Closed(i);
                    }
                }
                _ => {}
            }
        }
        Extent::Open { depth, in_string }
    }

    #[test]
    fn the_string_skipping_scanner_agrees_with_the_bytewise_one() {
        // Every string of up to 7 of the bytes that matter, and longer random ones.
        let alphabet = b"{}[]\"\\a ";
        let mut seen = 0;
        for len in 0..=7u32 {
            for n in 0..alphabet.len().pow(len) {
                let mut k = n;
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[k % alphabet.len()];
                        k /= alphabet.len();
                        b
                    })
                    .collect();
                assert_eq!(first_value(&s), first_value_bytewise(&s), "{s:?}");
                seen += 1;
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let s: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            assert_eq!(first_value(&s), first_value_bytewise(&s), "{s:?}");
        }
        assert!(seen > 2_000_000);
    }
}
