//! Reading FHIR nobody here wrote: a vendor's Bundle (a whole team in one CareTeam, members as
//! Practitioners, no category, HL7 Sweden's identifier URIs with a hyphen, urn:uuid
//! references), Synthea-style Patients and CareTeams, a personnummer under the wrong system, a
//! malformed line. Every resource is accounted for, and unreadable input fails the run.

mod common;

use serde_json::{json, Value};
use std::path::Path;

const KV: &str =
    "https://terminologitjansten.inera.se/inera-kodverksforvaltning/kodverk/kv_typ_av_fast_kontakt";
const TYP: &str = "https://fhir.inera.se/ig/careteam/CodeSystem/typ-av-careteam-cs";
const HSA: &str = "urn:oid:1.2.752.129.2.1.4.1";
const PNR_URI: &str = "http://electronichealth.se/identifier/personnummer";
const SAMORDNING_OID: &str = "urn:oid:1.2.752.129.2.1.3.3";

fn entry(url: &str, resource: Value) -> Value {
    json!({"fullUrl": url, "resource": resource})
}

fn role(system: &str, code: &str) -> Value {
    json!([{"coding": [{"system": system, "code": code}]}])
}

/// A vendor's export as a Bundle, plus Synthea-style resources and one malformed NDJSON line.
fn write_vendor_data(dir: &Path) {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000001", json!({
                "resourceType": "Patient", "id": "p1",
                "identifier": [{"system": PNR_URI, "value": "19121212-1212"}]
            })),
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000002", json!({
                "resourceType": "Patient", "id": "synthea-1",
                "identifier": [
                    {"system": "https://github.com/synthetichealth/synthea", "value": "7f1c"},
                    {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"}
                ]
            })),
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000003", json!({
                "resourceType": "Patient", "id": "wrong-system",
                "identifier": [{"system": SAMORDNING_OID, "value": "191212121212"}]
            })),
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000004", json!({
                "resourceType": "Organization", "id": "vc",
                "identifier": [{"system": HSA, "value": "SE2321000016-V0001"}],
                "name": "Vårdcentralen Norr"
            })),
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000005", json!({
                "resourceType": "Practitioner", "id": "anna",
                "identifier": [{"system": HSA, "value": "SE2321000016-S0001"}],
                "name": [{"family": "Andersson", "given": ["Anna"]}]
            })),
            // A patient's whole team in one CareTeam, no category, members as Practitioners,
            // the unit from managingOrganization; the third participant is not a fixed contact.
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000006", json!({
                "resourceType": "CareTeam", "id": "team-p1", "status": "active",
                "subject": {"reference": "urn:uuid:0a6b3c1e-0000-4000-8000-000000000001"},
                "period": {"start": "2025-01-10"},
                "managingOrganization": [{"reference": "urn:uuid:0a6b3c1e-0000-4000-8000-000000000004"}],
                "participant": [
                    {"role": role(KV, "2"), "member": {"reference": "https://ehr.example/fhir/Practitioner/anna"}},
                    {"role": role(KV, "1"), "member": {"reference": "urn:uuid:0a6b3c1e-0000-4000-8000-000000000005"}},
                    {"role": role("http://snomed.info/sct", "158965000"), "member": {"reference": "Practitioner/anna"}}
                ]
            })),
            // A fixed contact of a Synthea patient: no Swedish identity.
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000007", json!({
                "resourceType": "CareTeam", "id": "flk-synthea", "status": "active",
                "category": role(TYP, "fast-kontakt"),
                "subject": {"reference": "urn:uuid:0a6b3c1e-0000-4000-8000-000000000002"},
                "period": {"start": "2025-02-01"},
                "participant": [{"role": role("http://snomed.info/sct", "446050000"),
                                 "member": {"reference": "Practitioner/anna"},
                                 "onBehalfOf": {"reference": "Organization/vc"}}]
            })),
            // Synthea's own CareTeam: a home-care team, not a fixed contact.
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000008", json!({
                "resourceType": "CareTeam", "id": "synthea-team", "status": "active",
                "category": role("http://loinc.org", "LA27976-2"),
                "subject": {"reference": "urn:uuid:0a6b3c1e-0000-4000-8000-000000000002"},
                "participant": [{"role": role("http://snomed.info/sct", "116153009"),
                                 "member": {"reference": "Practitioner/anna"}}]
            })),
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-000000000009", json!({
                "resourceType": "Observation", "id": "bp", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                "subject": {"reference": "urn:uuid:0a6b3c1e-0000-4000-8000-000000000001"}
            })),
            entry("urn:uuid:0a6b3c1e-0000-4000-8000-00000000000a", json!({
                "resourceType": "Immunization", "id": "flu", "status": "completed",
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
                "patient": {"reference": "urn:uuid:0a6b3c1e-0000-4000-8000-000000000002"},
                "occurrenceDateTime": "2025-10-01"
            }))
        ]
    });
    std::fs::write(dir.join("vendor.json"), bundle.to_string()).unwrap();
}

fn check_json(ehr: &Path, out: &Path) -> (i32, Value) {
    let status = common::fastkontakt()
        .args(["check", "--ehr"])
        .arg(ehr)
        .args(["--as-of", "2026-06-01", "--format", "json", "-o"])
        .arg(out)
        .output()
        .unwrap()
        .status;
    let report: Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    (status.code().unwrap_or(-1), report)
}

fn reason_of<'a>(report: &'a Value, resource: &str) -> &'a str {
    report["not_used"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["resource"] == resource)
        .and_then(|n| n["reason"].as_str())
        .unwrap_or_else(|| {
            panic!(
                "{resource} is not listed as not used: {}",
                report["not_used"]
            )
        })
}

#[test]
fn every_resource_of_a_vendor_export_is_used_or_named_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_vendor_data(dir.path());
    let out = tempfile::tempdir().unwrap();
    let (code, r) = check_json(dir.path(), &out.path().join("out.json"));

    // Every type adds up.
    for (t, c) in r["ehr_input"].as_object().unwrap() {
        assert_eq!(
            c["read"].as_u64().unwrap(),
            c["used"].as_u64().unwrap() + c["not_used"].as_u64().unwrap(),
            "{t}: {c}"
        );
    }
    assert_eq!(r["ehr_input"]["CareTeam"]["read"], 3);
    assert_eq!(r["ehr_input"]["CareTeam"]["used"], 1);
    assert_eq!(r["ehr_input"]["Patient"]["read"], 3);
    assert_eq!(r["ehr_ignored"]["Immunization"], 1);

    // The whole team became one contact per fixed-contact participant (FLK and FVK).
    assert_eq!(r["ehr_contacts"], 2, "{}", r["ehr_input"]);
    let shapes = r["shapes"].as_object().unwrap();
    for s in [
        "CareTeam with several participants: one contact each",
        "CareTeam without a fixed-contact category: the role code says what it is",
        "member: a Practitioner (the unit from onBehalfOf or managingOrganization)",
        "role: KV typ av fast kontakt",
    ] {
        assert!(
            shapes.contains_key(s),
            "shape {s:?} not counted: {shapes:?}"
        );
    }

    // Reasons name the cause.
    let synthea = reason_of(&r, "CareTeam/flk-synthea");
    assert!(
        synthea.contains("no Swedish identity number")
            && synthea.contains("http://hl7.org/fhir/sid/us-ssn"),
        "{synthea}"
    );
    assert!(reason_of(&r, "CareTeam/synthea-team").contains("category is not a fixed contact"));
    assert!(reason_of(&r, "CareTeam/synthea-team").contains("http://loinc.org#LA27976-2"));
    assert!(reason_of(&r, "Patient/synthea-1").contains("identifier systems seen"));
    assert!(
        reason_of(&r, "Patient/wrong-system")
            .contains("a personnummer under the samordningsnummer system"),
        "{}",
        reason_of(&r, "Patient/wrong-system")
    );
    assert!(reason_of(&r, "Observation/bp").contains("Observation of other codes"));
    // Sources name the file and the entry.
    let listed = r["not_used"].as_array().unwrap();
    assert!(listed
        .iter()
        .all(|n| n["source"].as_str().unwrap().contains("vendor.json entry[")));
    // A fixed contact that could not be read is an error at its element: the run fails.
    assert!(r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "FK-IN02" && f["sources"][0] == "CareTeam/flk-synthea"));
    assert_eq!(code, 1);
}

#[test]
fn unreadable_input_fails_the_run_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // Only resources that are not fixed contacts: without the bad line, nothing is wrong.
    std::fs::write(
        dir.path().join("obs.ndjson"),
        concat!(
            r#"{"resourceType":"Observation","id":"a","status":"final","code":{"text":"x"}}"#,
            "\n",
            r#"{"resourceType":"Observation","id":"b","status":"final","code":{"text":"x"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, r) = check_json(dir.path(), &out.path().join("out.json"));
    assert_eq!(code, 1, "{r}");
    let f = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "FK-IN01")
        .expect("an FK-IN01 finding");
    assert!(
        f["sources"][0].as_str().unwrap().ends_with("obs.ndjson:2"),
        "{f}"
    );
    assert_eq!(r["ehr_input"]["Observation"]["read"], 1);

    // The same file without its bad line: read whole, nothing wrong, exit 0.
    std::fs::write(
        dir.path().join("obs.ndjson"),
        r#"{"resourceType":"Observation","id":"a","status":"final","code":{"text":"x"}}"#,
    )
    .unwrap();
    let (code, r) = check_json(dir.path(), &out.path().join("out.json"));
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["ehr_input"]["Observation"]["not_used"], 1);
    assert_eq!(reason_of(&r, "Observation/a"), "no subject");
}

#[test]
fn validate_holds_a_resource_claiming_the_profile_to_it_at_the_element() {
    let dir = tempfile::tempdir().unwrap();
    let profile = "https://fhir.fastkontakt.example/StructureDefinition/fast-kontakt-careteam";
    let lines = [
        json!({"resourceType": "Patient", "id": "p1",
               "identifier": [{"system": PNR_URI, "value": "191212121212"}]}),
        // Claims the profile, has no category and a role from no fixed-contact code system.
        json!({"resourceType": "CareTeam", "id": "claims", "status": "active",
               "meta": {"profile": [profile]},
               "subject": {"reference": "Patient/p1"},
               "period": {"start": "2025-01-01"},
               "participant": [{"role": role("http://snomed.info/sct", "158965000"),
                                "member": {"reference": "Practitioner/nobody"}}]}),
        // Claims nothing and is nothing of ours: not used, not an error.
        json!({"resourceType": "CareTeam", "id": "other", "status": "active",
               "subject": {"reference": "Patient/p1"},
               "participant": [{"role": role("http://snomed.info/sct", "158965000")}]}),
    ];
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(dir.path().join("careteams.ndjson"), text.join("\n")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let oo = out.path().join("oo.json");
    let o = common::fastkontakt()
        .arg("validate")
        .arg(dir.path())
        .args(["--format", "operation-outcome", "-o"])
        .arg(&oo)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let oo = json_file(&oo);
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let issues = oo["issue"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{oo}");
    assert_eq!(issues[0]["severity"], "error");
    assert_eq!(issues[0]["expression"][0], "CareTeam.participant[0].role");
    assert_eq!(issues[0]["code"], "invariant");
    assert_eq!(issues[0]["diagnostics"], "CareTeam/claims");
    let text = issues[0]["details"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("CareTeam.participant[0].role: no code from KV typ av fast kontakt"),
        "{text}"
    );

    // Without the claim, the same CareTeam is only not used: valid, exit 0.
    let unclaimed: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            if let Some(m) = l.as_object_mut() {
                m.remove("meta");
            }
            l.to_string()
        })
        .collect();
    std::fs::write(dir.path().join("careteams.ndjson"), unclaimed.join("\n")).unwrap();
    let o = common::fastkontakt()
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn a_transaction_bundle_with_conditional_references_and_a_practitioners_own_role_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let pnr_ref = format!("Patient?identifier={PNR_URI}|191212121212");
    let pract_ref = format!("Practitioner?identifier={HSA}%7CSE2321000016-S0001");
    let org_ref = format!("Organization?identifier={HSA}|SE2321000016-V0001");
    let put = |url: &str, resource: Value| {
        json!({"fullUrl": format!("urn:uuid:{url}"), "resource": resource,
               "request": {"method": "POST", "url": resource["resourceType"]}})
    };
    let bundle = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            put("5f0c1a52-0000-4000-8000-000000000001", json!({"resourceType": "Patient",
                "identifier": [{"system": PNR_URI, "value": "191212121212"}]})),
            put("5f0c1a52-0000-4000-8000-000000000002", json!({"resourceType": "Organization",
                "identifier": [{"system": HSA, "value": "SE2321000016-V0001"}]})),
            put("5f0c1a52-0000-4000-8000-000000000003", json!({"resourceType": "Practitioner",
                "identifier": [{"system": HSA, "value": "SE2321000016-S0001"}]})),
            put("5f0c1a52-0000-4000-8000-000000000004", json!({"resourceType": "PractitionerRole",
                "practitioner": {"reference": pract_ref},
                "organization": {"reference": org_ref}})),
            // The member is the Practitioner, named conditionally; no unit stated: the unit is
            // the Practitioner's own PractitionerRole's.
            put("5f0c1a52-0000-4000-8000-000000000005", json!({"resourceType": "CareTeam",
                "status": "active",
                "category": role(TYP, "fast-kontakt"),
                "subject": {"reference": pnr_ref},
                "period": {"start": "2025-03-01"},
                "participant": [{"role": role(KV, "2"), "member": {"reference": pract_ref}}]})),
        ]
    });
    let input = dir.path().join("transaction.json");
    std::fs::write(&input, bundle.to_string()).unwrap();
    let row = translated_row(&input);
    assert!(row.contains(";FLK;"), "{row}");
    assert!(
        row.contains("19121212-1212") || row.contains("191212121212"),
        "{row}"
    );
    assert!(row.contains("SE2321000016-S0001"), "{row}");
    assert!(
        row.contains("SE2321000016-V0001"),
        "the unit of the Practitioner's role: {row}"
    );
}

#[test]
fn a_careteam_with_contained_staff_and_a_logical_subject_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let ct = json!({
        "resourceType": "CareTeam", "id": "contained-1", "status": "active",
        "contained": [
            {"resourceType": "Practitioner", "id": "pr",
             "identifier": [{"system": HSA, "value": "SE2321000016-S0001"}]},
            {"resourceType": "Organization", "id": "org",
             "identifier": [{"system": HSA, "value": "SE2321000016-V0001"}]},
            {"resourceType": "PractitionerRole", "id": "role",
             "practitioner": {"reference": "#pr"}, "organization": {"reference": "#org"}}
        ],
        "category": role(TYP, "fast-kontakt"),
        // A logical reference: the identity only, no resource.
        "subject": {"identifier": {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "191212121212"}},
        "period": {"start": "2025-04-01"},
        "participant": [{"role": role(KV, "1"), "member": {"reference": "#role"}}]
    });
    let input = dir.path().join("ct.ndjson");
    std::fs::write(&input, ct.to_string()).unwrap();
    let row = translated_row(&input);
    assert!(row.contains(";FVK;"), "{row}");
    assert!(
        row.contains("SE2321000016-S0001") && row.contains("SE2321000016-V0001"),
        "{row}"
    );
}

/// FHIR → register CSV by `translate`, which must succeed; the one row it gives.
fn translated_row(input: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("out.csv");
    let o = common::fastkontakt()
        .arg("translate")
        .arg(input)
        .arg("-o")
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    text.lines().nth(1).expect("one contact").to_owned()
}

#[test]
fn a_role_coded_only_in_snomed_ct_is_read_backwards_where_the_category_says_fixed_contact() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        json!({"resourceType": "Patient", "id": "p1",
               "identifier": [{"system": PNR_URI, "value": "191212121212"}]}),
        json!({"resourceType": "Organization", "id": "vc",
               "identifier": [{"system": HSA, "value": "SE2321000016-V0001"}]}),
        json!({"resourceType": "Practitioner", "id": "anna",
               "identifier": [{"system": HSA, "value": "SE2321000016-S0001"}]}),
        // SNOMED CT 446050000 "Primary care physician": the product's map of FLK, read back.
        json!({"resourceType": "CareTeam", "id": "flk", "status": "active",
               "category": role(TYP, "fast-kontakt"),
               "subject": {"reference": "Patient/p1"},
               "period": {"start": "2025-01-01"},
               "participant": [{"role": role("http://snomed.info/sct", "446050000"),
                                "member": {"reference": "Practitioner/anna"},
                                "onBehalfOf": {"reference": "Organization/vc"}}]}),
    ];
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    let input = dir.path().join("snomed.ndjson");
    std::fs::write(&input, text.join("\n")).unwrap();
    let row = translated_row(&input);
    assert!(row.contains(";FLK;"), "{row}");

    // Without the category the same code is any GP's role: not a fixed contact.
    let mut bare = lines[3].clone();
    bare.as_object_mut().unwrap().remove("category");
    let mut text = text;
    text[3] = bare.to_string();
    std::fs::write(&input, text.join("\n")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, r) = check_json(dir.path(), &out.path().join("out.json"));
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["ehr_contacts"], 0);
    assert!(reason_of(&r, "CareTeam/flk").contains("no category"), "{r}");
}

#[test]
fn a_vendors_bundle_translates_alike_with_its_patients_spilled_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    write_vendor_data(dir.path());
    let input = dir.path().join("vendor.json");
    let m = fastkontakt::mapping::Mappings::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        None,
        None,
    )
    .unwrap();
    // Patients named by urn:uuid fullUrls, one without a Swedish identity.
    let run = |held_max| {
        let mut csv = Vec::new();
        let s = fastkontakt::pipelines::translate::fhir_to_register_holding(
            &input, &m, &mut csv, held_max,
        )
        .unwrap();
        (String::from_utf8(csv).unwrap(), format!("{s:?}"))
    };
    let held = run(usize::MAX);
    assert!(held.0.contains("19121212-1212"), "{}", held.0);
    assert!(held.1.contains("no Swedish identity"), "{}", held.1);
    assert_eq!(run(0), held);
    assert_eq!(run(1), held);
}
