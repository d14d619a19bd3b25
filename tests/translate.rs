//! `translate` end to end: round trips, strict FHIR output, malformed input reported line by line,
//! deterministic ids and identifier styles.

use fastkontakt::fhir::inbound::{Inbound, Index};
use fastkontakt::fhir::model;
use fastkontakt::mapping::{IdentifierStyle, Mappings};
use fastkontakt::pipelines::translate;
use fastkontakt::sources::register::{RegisterItem, RegisterReader};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mappings() -> Mappings {
    Mappings::load(&root().join("mappings"), None, None).expect("shipped mappings load")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fastkontakt"));
    c.current_dir(root());
    c
}

/// CSV → FHIR (Bundle or NDJSON) → CSV, returning (fhir bytes, csv text).
fn round_trip(input: &Path, ndjson: bool, dir: &Path) -> (Vec<u8>, String) {
    let m = mappings();
    let mut fhir = Vec::new();
    let q = dir.join("q.csv");
    translate::register_to_fhir(input, &m, &mut fhir, ndjson, Some(q), &mut |_, _| {}).unwrap();
    let fhir_path = dir.join(if ndjson { "out.ndjson" } else { "out.json" });
    std::fs::write(&fhir_path, &fhir).unwrap();
    let mut csv = Vec::new();
    let s = translate::fhir_to_register(&fhir_path, &m, &mut csv).unwrap();
    assert_eq!(
        s.rejected, 0,
        "FHIR written by the product reads back: {:?}",
        s.notes
    );
    (fhir, String::from_utf8(csv).unwrap())
}

/// The input's lines minus those whose Rad-id is in the quarantine.
fn good_lines(input: &Path, quarantine: &Path) -> String {
    let q = std::fs::read_to_string(quarantine).unwrap_or_default();
    let bad: Vec<&str> = q
        .lines()
        .skip(1)
        .filter_map(|l| l.split(';').next())
        .collect();
    std::fs::read_to_string(input)
        .unwrap()
        .lines()
        .filter(|l| !bad.contains(&l.split(';').next().unwrap_or("")))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn handwritten_region_round_trips_through_bundle_and_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("samples/handwritten/register.csv");
    let (_, csv) = round_trip(&input, false, dir.path());
    let expected = good_lines(&input, &dir.path().join("q.csv"));
    assert!(expected.lines().count() > 40);
    assert_eq!(csv, expected);
    let (_, csv2) = round_trip(&input, true, dir.path());
    assert_eq!(csv2, expected);
}

#[test]
fn a_bundle_on_one_ndjson_line_reads_as_the_bundle_file_does() {
    // Some exporters write a searchset or transaction Bundle per NDJSON line: its entries are
    // read, the directory ones in the first pass and the contacts in the second.
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("samples/handwritten/register.csv");
    let (bundle, from_file) = round_trip(&input, false, dir.path());
    let line: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let path = dir.path().join("bundles.ndjson");
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let mut csv = Vec::new();
    let s = translate::fhir_to_register(&path, &mappings(), &mut csv).unwrap();
    assert_eq!(s.rejected, 0, "{:?}", s.notes);
    assert_eq!(String::from_utf8(csv).unwrap(), from_file);
    // A bad Bundle line is reported once, with its line.
    std::fs::write(
        &path,
        format!("{line}\n{{\"resourceType\":\"Bundle\",\"bogus\":1}}\n"),
    )
    .unwrap();
    let mut csv = Vec::new();
    let s = translate::fhir_to_register(&path, &mappings(), &mut csv).unwrap();
    assert_eq!(s.rejected, 1, "{:?}", s.notes);
    assert!(s.notes[0].contains("bundles.ndjson:2"), "{:?}", s.notes);
}

#[test]
fn a_unit_or_staff_member_named_twice_is_written_once_and_a_difference_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let head = "Rad-id;Personnummer;Kontakttyp;Rollkod;Samordningsansvar;Status;Fr.o.m.;T.o.m.;Medarbetare HSA-id;Medarbetare namn;Yrke;Legitimerad;Specialitet;Enhet HSA-id;Enhet namn;Enhetstyp;Listningsenhet HSA-id;Registrerad;Registrerad av";
    // Row 1 names V0002 only as its listing unit; row 2 has it as its unit; row 3 renames
    // Anna Lind's unit and Anna Lind herself, and lists its patient at V0001 (a unit already).
    let rows = [
        "r1;19310304-1004;FLK;;;Aktiv;2022-02-01;;SE2321000016-L001;Anna Lind;Läkare;J;Allmänmedicin;SE2321000016-V0001;Vårdcentralen Norr;Vårdcentral;SE2321000016-V0002;2022-02-01 09:00:00;SE2321000016-7X7X",
        "r2;19121212-1212;FLK;;;Aktiv;2022-03-01;;SE2321000016-L002;Bo Ek;Läkare;J;Allmänmedicin;SE2321000016-V0002;Vårdcentralen Syd;Vårdcentral;SE2321000016-V0002;2022-03-01 09:00:00;SE2321000016-7X7X",
        "r3;19121212-1212;FVK;;;Aktiv;2022-04-01;;SE2321000016-L001;Anna Lindh;Läkare;J;Allmänmedicin;SE2321000016-V0001;VC Norr;Vårdcentral;SE2321000016-V0001;2022-04-01 09:00:00;SE2321000016-7X7X",
    ];
    let input = dir.path().join("register.csv");
    std::fs::write(&input, format!("{head}\n{}\n", rows.join("\n"))).unwrap();
    let mut out = Vec::new();
    let s = translate::register_to_fhir(&input, &mappings(), &mut out, true, None, &mut |_, _| {})
        .unwrap();
    assert_eq!((s.contacts, s.rejected), (3, 0), "{:?}", s.notes);
    let resources: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |t: &str| resources.iter().filter(|r| r["resourceType"] == t).count();
    // Two units (the listing unit once, as identifier only: it came first), two staff members,
    // two roles, three relations, two Patients.
    assert_eq!(
        [
            count("Organization"),
            count("Practitioner"),
            count("PractitionerRole"),
            count("CareTeam"),
            count("Patient")
        ],
        [2, 2, 2, 3, 2]
    );
    let v2 = resources
        .iter()
        .find(|r| r["resourceType"] == "Organization" && r.to_string().contains("V0002"))
        .unwrap();
    assert!(v2.get("name").is_none(), "{v2}");
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains(":4: staff SE2321000016-L001 differs from line 2")),
        "{:?}",
        s.notes
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains(":4: unit SE2321000016-V0001 differs from line 2")),
        "{:?}",
        s.notes
    );
}

#[test]
fn generated_region_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let m = mappings();
    let spec = fastkontakt::samples::Spec {
        patients: 600,
        seed: 11,
        inconsistency_share: 0.1,
    };
    let manifest = fastkontakt::samples::generate(&spec, &m, dir.path()).unwrap();
    assert!(manifest.register_rows > 500);
    let input = dir.path().join("register.csv");
    let (_, csv) = round_trip(&input, false, dir.path());
    assert_eq!(csv, good_lines(&input, &dir.path().join("q.csv")));
}

#[test]
fn every_output_parses_strictly_as_fhir_r4() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("samples/handwritten/register.csv");
    let (bundle, _) = round_trip(&input, false, dir.path());
    match model::parse(&bundle).expect("bundle parses strictly") {
        model::Resource::Bundle(b) => {
            assert_eq!(b.r#type.value.as_deref(), Some("transaction"));
            assert!(b.entry.len() > 100);
            for e in &b.entry {
                let r = e.request.as_ref().expect("every entry has a request");
                assert_eq!(
                    r.method.value.as_deref(),
                    Some("PUT"),
                    "idempotent writes to deterministic ids"
                );
            }
        }
        other => panic!("expected a Bundle, got {other:?}"),
    }
    let (ndjson, _) = round_trip(&input, true, dir.path());
    let mut n = 0;
    for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        model::parse(line).expect("each NDJSON line parses strictly");
        n += 1;
    }
    assert!(n > 100);
    // Strict means strict: an unknown element is refused, not dropped.
    let err = model::parse(br#"{"resourceType":"CareTeam","status":"active","colour":"blue"}"#);
    assert!(err.is_err());
}

#[test]
fn care_team_has_the_inera_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _) = round_trip(
        &root().join("samples/handwritten/register.csv"),
        false,
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let teams: Vec<&serde_json::Value> = v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "CareTeam")
        .collect();
    assert!(!teams.is_empty());
    for t in &teams {
        assert_eq!(
            t["participant"].as_array().unwrap().len(),
            1,
            "exactly one participant"
        );
        assert!(t["participant"][0]["member"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("PractitionerRole/"));
    }
    let flk = teams
        .iter()
        .find(|t| t["identifier"][0]["value"] == "ok-all-1")
        .expect("ok-all-1 is an FLK");
    assert_eq!(flk["category"][0]["coding"][0]["code"], "fast-kontakt");
    assert_eq!(
        flk["participant"][0]["role"][0]["coding"][0]["system"],
        "https://terminologitjansten.inera.se/inera-kodverksforvaltning/kodverk/kv_typ_av_fast_kontakt"
    );
    assert_eq!(flk["participant"][0]["role"][0]["coding"][0]["code"], "2");
    let coordinating = teams
        .iter()
        .find(|t| t["identifier"][0]["value"] == "r02-coordinating-ok-1")
        .unwrap();
    assert_eq!(
        coordinating["participant"][0]["role"][0]["coding"][0]["code"],
        "4"
    );
    let role = teams
        .iter()
        .find(|t| t["identifier"][0]["value"] == "ok-all-3")
        .unwrap();
    assert_eq!(role["category"][0]["coding"][0]["code"], "behandlande-roll");
    assert_eq!(
        role["participant"][0]["role"][0]["coding"][0]["code"],
        "kontaktsjukskoterska"
    );
    assert_eq!(
        role["participant"][0]["role"][0]["coding"][1]["system"],
        "http://snomed.info/sct"
    );
    let ended = teams
        .iter()
        .find(|t| t["identifier"][0]["value"] == "r09-ended-only-register-1")
        .unwrap();
    assert_eq!(ended["status"], "inactive");
    assert_eq!(ended["period"]["end"], "2025-12-31");
    // The FLK is mirrored in Patient.generalPractitioner, with the listing unit.
    let patient_ref = flk["subject"]["reference"].as_str().unwrap();
    let patient = v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| format!("Patient/{}", r["id"].as_str().unwrap_or("")) == patient_ref)
        .unwrap();
    let gp: Vec<&str> = patient["generalPractitioner"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reference"].as_str().unwrap())
        .collect();
    assert_eq!(gp.len(), 2);
    assert_eq!(
        gp[0],
        flk["participant"][0]["member"]["reference"]
            .as_str()
            .unwrap()
    );
    assert!(gp[1].starts_with("Organization/"));
    // A declined offer has no participant, so it is a Task.
    let task = v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Task")
        .unwrap();
    assert_eq!(task["businessStatus"]["coding"][0]["code"], "avbojt");
}

#[test]
fn same_row_gives_same_resource_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("samples/handwritten/register.csv");
    let (a, _) = round_trip(&input, false, dir.path());
    let (b, _) = round_trip(&input, false, dir.path());
    assert_eq!(a, b, "translation is deterministic");
    let ids = fastkontakt::fhir::ids::IdMaker::new(mappings().target.id_namespace);
    let row = fastkontakt::domain::RowId::new("ok-all-1").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert!(v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["resource"]["id"] == ids.relation("CareTeam", &row)));
}

#[test]
fn malformed_file_is_reported_line_by_line_and_good_rows_come_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let q = dir.path().join("q.csv");
    let o = bin()
        .args(["translate", "samples/malformed/register.csv", "-o"])
        .arg(&out)
        .arg("--quarantine")
        .arg(&q)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "rejected rows give exit 1");
    let err = String::from_utf8_lossy(&o.stderr);
    let f = "samples/malformed/register.csv";
    for expected in [
        format!("{f}:5: column 'Kontakttyp' value 'XYZ': unknown code"),
        format!("{f}:6: column 'Fr.o.m.' value '2024-02-30': not a date"),
        format!("{f}:7: column 'Personnummer' value '1912*******13': the check digit is 3, the Luhn check gives 2"),
        format!("{f}:8: column '(row)': a quote (\") is opened and never closed"),
        format!("{f}:10: column 'Medarbetare HSA-id' value 'N001'"),
        format!("{f}:11: column 'T.o.m.' value '2024-01-01': the period ends"),
        format!("{f}:13: column 'Rollkod': required when Kontakttyp is BR"),
        format!("{f}:14: column 'Medarbetare HSA-id': required unless Status is an offer"),
        format!("{f}:15: column 'Samordningsansvar' value 'J': only an FVK coordinates"),
        format!("{f}:16: column '(row)': has 6 fields, the header has 20"),
        format!("{f}:17: column 'Rad-id' value 'ok-plain': this row id appeared earlier"),
        format!("{f}:18: column 'Registrerad' value '2025-03-30 02:30:00': does not exist"),
        format!("{f}:1: note: column 'Extra kolumn' is not in the mapping"),
    ] {
        assert!(err.contains(&expected), "stderr lacks {expected:?}:\n{err}");
    }
    assert!(
        !err.contains("191212121213") && !err.contains("19121212-1213"),
        "no full personnummer in messages"
    );
    // A treating role the region's CodeSystem lacks is an open code: read, not rejected.
    assert!(
        !err.contains(&format!("{f}:12: column")),
        "line 12 is read:\n{err}"
    );
    // The five good rows (BOM, CRLF, a quoted field with ; "" and a line break) come out.
    let m = mappings();
    let mut csv = Vec::new();
    translate::fhir_to_register(&out, &m, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(csv.as_bytes());
    let ids: Vec<String> = rdr.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(
        ids,
        [
            "ok-plain",
            "ok-quoted",
            "ok-after-open-quote",
            "unlisted-role",
            "ok-declined"
        ]
    );
    assert!(
        csv.contains("\"Berg; Erik \"\"Ecke\"\" (vik.)\""),
        "quoted name kept: {csv}"
    );
    assert!(
        csv.contains("\"Vårdcentralen Norr;\nhus B\""),
        "line break inside quotes kept"
    );
    // The quarantine holds every rejected row as it was, with its reasons.
    let quarantine = std::fs::read_to_string(&q).unwrap();
    assert_eq!(
        quarantine.lines().next().unwrap().split(';').next_back(),
        Some("Fel")
    );
    for id in [
        "bad-unknown-kind",
        "bad-date",
        "bad-checksum",
        "bad-hsa",
        "bad-field-count",
        "bad-timestamp",
    ] {
        assert!(
            quarantine.contains(&format!("\n{id};")),
            "quarantine lacks {id}"
        );
    }
}

#[test]
fn missing_columns_fail_the_run_with_exit_2() {
    let o = bin()
        .args(["translate", "samples/malformed/missing-columns.csv"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing-columns.csv:1: required columns missing from the header: Fr.o.m., Medarbetare HSA-id, Enhet HSA-id"), "{err}");
}

#[test]
fn both_identifier_styles_are_read_and_the_configured_one_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = mappings();
    m.target.identifier_style = IdentifierStyle::Hl7se;
    let mut out = Vec::new();
    translate::register_to_fhir(
        &root().join("samples/handwritten/register.csv"),
        &m,
        &mut out,
        true,
        Some(dir.path().join("q")),
        &mut |_, _| {},
    )
    .unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("http://electronichealth.se/identifier/personnummer"));
    assert!(
        text.contains("http://electronichealth.se/identifier/samordningsnummer"),
        "samordningsnummer gets its own system"
    );
    assert!(text.contains("urn:oid:1.2.752.29.4.19"));
    assert!(!text.contains("urn:oid:1.2.752.129.2.1.3.1"));
    // Read back with the default (OID-style) mappings: the URI style is accepted too.
    let default = mappings();
    let resources: Vec<model::Resource> = text
        .lines()
        .map(|l| model::parse(l.as_bytes()).unwrap())
        .collect();
    let idx = Index::new(resources.iter().map(|r| (None, r)));
    let refs: Vec<&model::Resource> = resources.iter().collect();
    let read = Inbound::new(&default).contacts(&idx, &refs);
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    // Every valid row of the register comes back as a contact.
    let valid = RegisterReader::open(
        &root().join("samples/handwritten/register.csv"),
        &default.register,
        &default.terminology,
    )
    .unwrap()
    .filter(|i| matches!(i, Ok(RegisterItem::Contact { .. })))
    .count();
    assert_eq!(read.contacts.len(), valid);
}

#[test]
fn good_records_report_their_physical_start_lines() {
    // A record spanning lines and a BOM/CRLF file, read through the public reader API.
    let m = mappings();
    let path = root().join("samples/malformed/register.csv");
    let mut reader = RegisterReader::open(&path, &m.register, &m.terminology).unwrap();
    let mut lines = Vec::new();
    for item in &mut reader {
        if let RegisterItem::Contact { line, .. } = item.unwrap() {
            lines.push(line);
        }
    }
    assert_eq!(
        lines,
        [2, 3, 9, 12, 19],
        "physical start lines of the good records"
    );
}

#[test]
fn generator_is_deterministic_by_seed() {
    let m = mappings();
    let spec = |seed| fastkontakt::samples::Spec {
        patients: 300,
        seed,
        inconsistency_share: 0.2,
    };
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    fastkontakt::samples::generate(&spec(5), &m, a.path()).unwrap();
    fastkontakt::samples::generate(&spec(5), &m, b.path()).unwrap();
    fastkontakt::samples::generate(&spec(6), &m, c.path()).unwrap();
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    for f in [
        "register.csv",
        "ehr/CareTeam.ndjson",
        "ehr/Patient.ndjson",
        "manifest.json",
    ] {
        assert_eq!(
            read(a.path(), f),
            read(b.path(), f),
            "{f} differs between runs with one seed"
        );
    }
    assert_ne!(
        read(a.path(), "register.csv"),
        read(c.path(), "register.csv")
    );
}

#[test]
fn plans_round_trip_through_care_plan_and_consent() {
    use fastkontakt::domain::*;
    use fastkontakt::fhir::context::ContextReader;
    use fastkontakt::fhir::outbound::Outbound;
    let m = mappings();
    let out = Outbound::new(&m);
    let patient = PatientId::parse("19121212-1212").unwrap();
    let hsa = |s: &str| HsaId::parse(s).unwrap();
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let plans = vec![
        CarePlanRecord {
            source_id: "sip-1".into(),
            patient: patient.clone(),
            status: PlanStatus::Active,
            created: Some(d("2025-11-01")),
            body: PlanBody::Sip(Sip {
                consent: Some(Consent {
                    id: "samtycke-1".into(),
                    active: true,
                    date: Some(d("2025-10-30")),
                }),
                interventions: vec![
                    Intervention {
                        description: "Hemsjukvård".into(),
                        responsible: Some(Principal::Municipality),
                    },
                    Intervention {
                        description: "Uppföljning".into(),
                        responsible: Some(Principal::Region),
                    },
                ],
                measures_by_others: vec!["Dottern handlar".into()],
                overall_responsibility: Some(Principal::Region),
            }),
        },
        CarePlanRecord {
            source_id: "mvp-1".into(),
            patient: patient.clone(),
            status: PlanStatus::Active,
            created: None,
            body: PlanBody::MedicalCarePlan(MedicalCarePlan {
                prognosis: Some("Stabil".into()),
                care_level_on_deterioration: Some("Hemma".into()),
                direct_contact: Some("019-00 00 00".into()),
                action_plan_on_deterioration: Some("Öka diuretika".into()),
                follow_up: Some(FollowUp {
                    when: Some(d("2026-09-01")),
                    by: Some(hsa("SE2321000016-L001")),
                }),
                treatment_limitations: None,
                author: Some(hsa("SE2321000016-L001")),
            }),
        },
        CarePlanRecord {
            source_id: "do-1".into(),
            patient: patient.clone(),
            status: PlanStatus::Active,
            created: None,
            body: PlanBody::DocumentedAgreement(DocumentedAgreement {
                patient_commitments: vec!["Väger sig".into()],
                care_commitments: vec!["Ringer varannan vecka".into()],
                named_contacts: vec![hsa("SE2321000016-L001"), hsa("SE2321000016-N001")],
                next_contact: Some(d("2026-07-01")),
            }),
        },
    ];
    let mut resources = Vec::new();
    for p in &plans {
        resources.extend(out.care_plan(p));
    }
    for h in ["SE2321000016-L001", "SE2321000016-N001"] {
        let staff = Staff {
            hsa: hsa(h),
            name: None,
            profession: None,
            licence: Licence::Unknown,
            specialties: vec![],
        };
        resources.push(out.practitioner(&staff));
    }
    // Through JSON and the strict parser, as any reader would see them.
    let parsed: Vec<model::Resource> = resources
        .iter()
        .map(|r| model::parse(&model::to_vec(r).unwrap()).unwrap())
        .collect();
    let idx = Index::new(parsed.iter().map(|r| (None, r)));
    let refs: Vec<&model::Resource> = parsed.iter().collect();
    let facts = ContextReader::new(&m).read(&idx, &refs);
    assert!(facts.availability.plans);
    let mut back = facts.contexts[&patient].plans.clone();
    back.sort_by_key(|p| p.kind());
    let mut want = plans.clone();
    want.sort_by_key(|p| p.kind());
    for (b, w) in back.iter_mut().zip(&want) {
        assert!(b.source_id.starts_with("CarePlan/"));
        b.source_id = w.source_id.clone();
    }
    assert_eq!(back, want);
}

#[test]
fn members_read_once_per_role_give_the_contacts_and_problems_read_per_contact() {
    let m = mappings();
    let dir = tempfile::tempdir().unwrap();
    let spec = fastkontakt::samples::Spec {
        patients: 400,
        seed: 3,
        inconsistency_share: 0.3,
    };
    fastkontakt::samples::generate(&spec, &m, dir.path()).unwrap();
    let mut resources: Vec<model::Resource> = Vec::new();
    for f in [
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Patient",
        "CareTeam",
        "Task",
    ] {
        let text = std::fs::read_to_string(dir.path().join(format!("ehr/{f}.ndjson"))).unwrap();
        resources.extend(text.lines().map(|l| model::parse(l.as_bytes()).unwrap()));
    }
    // A Practitioner without its HSA-id: each contact naming its role tells that problem.
    let bad = resources
        .iter_mut()
        .find_map(|r| match r {
            model::Resource::Practitioner(p) => Some(p),
            _ => None,
        })
        .unwrap();
    bad.identifier.clear();
    let refs: Vec<&model::Resource> = resources.iter().collect();
    let show = |read: &fastkontakt::fhir::inbound::FhirContacts| {
        (
            format!("{:?}", read.contacts),
            format!("{:?}", read.problems),
        )
    };
    let plain = Index::new(resources.iter().map(|r| (None, r)));
    let per_contact = Inbound::new(&m).contacts(&plain, &refs);
    let mut remembered = Index::new(resources.iter().map(|r| (None, r)));
    Inbound::new(&m).remember_members(&mut remembered);
    let once = Inbound::new(&m).contacts(&remembered, &refs);
    assert!(
        per_contact.contacts.len() > 300,
        "{}",
        per_contact.contacts.len()
    );
    assert!(
        per_contact
            .problems
            .iter()
            .any(|p| format!("{p:?}").contains("the Practitioner has no HSA-id")),
        "{:?}",
        per_contact.problems
    );
    assert_eq!(show(&once), show(&per_contact));
}

#[test]
fn patients_spilled_to_a_file_translate_as_patients_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let m = mappings();
    let spec = fastkontakt::samples::Spec {
        patients: 400,
        seed: 5,
        inconsistency_share: 0.1,
    };
    fastkontakt::samples::generate(&spec, &m, dir.path()).unwrap();
    let input = dir.path().join("register.csv");
    // The product's Bundle (Patients by fullUrl) and NDJSON (by id), and a region written
    // by hand, with its own problems.
    let mut inputs = vec![root().join("samples/handwritten/ehr")];
    for ndjson in [false, true] {
        let mut fhir = Vec::new();
        translate::register_to_fhir(&input, &m, &mut fhir, ndjson, None, &mut |_, _| {}).unwrap();
        let p = dir
            .path()
            .join(if ndjson { "out.ndjson" } else { "out.json" });
        std::fs::write(&p, &fhir).unwrap();
        inputs.push(p);
    }
    for p in inputs {
        let run = |held_max| {
            let mut csv = Vec::new();
            let s = translate::fhir_to_register_holding(&p, &m, &mut csv, held_max).unwrap();
            (String::from_utf8(csv).unwrap(), format!("{s:?}"))
        };
        let held = run(usize::MAX);
        assert!(held.0.lines().count() > 10, "{}: rows written", p.display());
        // All spilled from the first Patient, and moved to the file part way.
        assert_eq!(run(0), held, "{}", p.display());
        assert_eq!(run(50), held, "{}", p.display());
    }
}

#[test]
fn held_patients_zero_on_the_command_line_gives_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("samples/handwritten/ehr");
    let run = |extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let o = bin()
            .arg("translate")
            .arg(&input)
            .args(extra)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        (
            std::fs::read_to_string(out).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    let held = run(&[], "held.csv");
    assert!(held.0.lines().count() > 5);
    assert_eq!(run(&["--held-patients", "0"], "spilled.csv"), held);
}
