//! Synthetic regions for tests and benchmarks: a register export, the EHR's side as NDJSON
//! (hand-typed: the EHR's own ids, no register row ids) and a manifest of every injected
//! inconsistency. Deterministic by seed; identity numbers are made up, never real.

use crate::domain::identity::with_check_digit;
use crate::domain::{
    CareUnit, ContactKind, ContactStatus, FixedContact, HsaId, Licence, PatientId, Period,
    Profession, Registration, RowId, Staff, TreatingRole, UnitKind,
};
use crate::fhir::model;
use crate::fhir::outbound::Outbound;
use crate::mapping::{Mappings, TargetConfig};
use crate::sinks::register_csv::RegisterCsvWriter;
use chrono::{Duration, NaiveDate, TimeZone};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

/// All generated dates lie before this day, so findings do not change with the clock.
pub(crate) const REFERENCE_DAY: (i32, u32, u32) = (2026, 6, 1);
const ORG: &str = "2321000016";

pub struct Spec {
    pub patients: u64,
    pub seed: u64,
    /// Share of patients given one injected inconsistency.
    pub inconsistency_share: f64,
}

/// One inconsistency put in on purpose, and the rule that should find it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Injection {
    /// 12 digits.
    pub(crate) patient: String,
    pub(crate) anomaly: Anomaly,
    /// Rules expected to report it, per profile (`*` = every profile).
    pub(crate) expect: Vec<(String, String)>,
    pub(crate) row_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Anomaly {
    /// A second active FVK in another unit, neither coordinating.
    SecondFvk,
    /// The FLK is a nurse.
    FlkNotPhysician,
    /// The FLK is an internist, no general-practice competence.
    FlkWithoutGpSpecialty,
    /// The FLK works at another centre than the patient's listing.
    FlkAtOtherCentre,
    /// The same person twice in the same role, overlapping.
    DuplicateRole,
    /// An administrator as FVK.
    AdministrativeFvk,
    /// A row whose personnummer fails its check digit (quarantined on read).
    BadChecksum,
    /// The EHR lacks a contact the register has.
    EhrMissing,
    /// The EHR names another person for the contact.
    EhrOtherStaff,
    /// The EHR holds an FVK the register lacks.
    EhrExtra,
    /// Ended in the register, still active in the EHR.
    EndedOnlyInRegister,
}

impl Anomaly {
    fn expect(self) -> Vec<(String, String)> {
        let e = |p: &str, r: &str| (p.to_owned(), r.to_owned());
        match self {
            Anomaly::SecondFvk => vec![e("gavleborg", "FK-R01"), e("orebro", "FK-R02")],
            Anomaly::FlkNotPhysician => vec![e("*", "FK-R04")],
            Anomaly::FlkWithoutGpSpecialty => vec![e("*", "FK-R05")],
            Anomaly::FlkAtOtherCentre => vec![e("*", "FK-R19")],
            Anomaly::DuplicateRole => vec![e("*", "FK-R17")],
            Anomaly::AdministrativeFvk => vec![e("orebro", "FK-R11")],
            Anomaly::BadChecksum => vec![e("*", "FK-R16")],
            Anomaly::EhrMissing | Anomaly::EhrOtherStaff | Anomaly::EhrExtra => {
                vec![e("*", "FK-R08")]
            }
            Anomaly::EndedOnlyInRegister => vec![e("*", "FK-R09")],
        }
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Manifest {
    pub(crate) seed: u64,
    pub patients: u64,
    pub register_rows: u64,
    pub ehr_resources: u64,
    pub(crate) reference_day: String,
    pub injected: Vec<Injection>,
}

impl Manifest {
    /// Expected finding count per rule under a profile.
    pub fn expected(&self, profile: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for i in &self.injected {
            for (p, r) in &i.expect {
                if p == "*" || p == profile {
                    *m.entry(r.clone()).or_insert(0) += 1;
                }
            }
        }
        m
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::sinks::register_csv::RegisterWriteError),
    #[error(transparent)]
    Fhir(#[from] crate::fhir::FhirError),
    #[error("manifest: {0}")]
    Json(#[from] serde_json::Error),
}

const FIRST: &[&str] = &[
    "Anna", "Erik", "Karin", "Lars", "Maria", "Johan", "Eva", "Anders", "Sara", "Per", "Lena",
    "Nils", "Emma", "Olof", "Ingrid", "Gustav", "Sofia", "Mats", "Elin", "Hans", "Frida", "Jonas",
    "Linnea", "Oskar",
];
const LAST: &[&str] = &[
    "Lind",
    "Berg",
    "Holm",
    "Ek",
    "Sjöberg",
    "Nyström",
    "Lundqvist",
    "Forsberg",
    "Åkesson",
    "Dahl",
    "Wikström",
    "Sandberg",
    "Hedlund",
    "Björk",
    "Strand",
    "Falk",
    "Nordin",
    "Engström",
];

struct Region {
    centres: Vec<CareUnit>,
    clinics: Vec<CareUnit>,
    wards: Vec<CareUnit>,
    municipal: Vec<CareUnit>,
    /// Staff by unit HSA-id, in generation order.
    staff: BTreeMap<HsaId, Vec<Staff>>,
}

fn hsa(prefix: char, n: usize) -> HsaId {
    HsaId::parse(&format!("SE{ORG}-{prefix}{n:05}")).expect("generated HSA-ids are well-formed")
}

fn name(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{} {}",
        FIRST[rng.gen_range(0..FIRST.len())],
        LAST[rng.gen_range(0..LAST.len())]
    )
}

fn region(spec: &Spec, rng: &mut ChaCha8Rng, m: &Mappings) -> Region {
    let n = spec.patients as usize;
    let unit = |prefix: char, i: usize, name: String, kind: UnitKind| CareUnit {
        hsa: hsa(prefix, i),
        name: Some(name),
        kind: Some(kind),
    };
    let towns = [
        "Norr", "Söder", "Väster", "Öster", "Centrum", "Bruket", "Hamnen", "Skogen", "Dalen",
        "Ängen",
    ];
    let centres: Vec<CareUnit> = (0..(n / 4000).clamp(3, 400))
        .map(|i| {
            unit(
                'V',
                i,
                format!(
                    "Vårdcentralen {} {}",
                    towns[i % towns.len()],
                    i / towns.len() + 1
                ),
                UnitKind::PrimaryCareCentre,
            )
        })
        .collect();
    let clinic_names = [
        "Onkologmottagningen",
        "Lungmottagningen",
        "Diabetesmottagningen",
        "Hjärtmottagningen",
        "Rehabmottagningen",
        "Psykiatrimottagningen",
    ];
    let clinics: Vec<CareUnit> = (0..(n / 15000).clamp(6, 120))
        .map(|i| {
            unit(
                'S',
                i,
                format!(
                    "{} {}",
                    clinic_names[i % clinic_names.len()],
                    i / clinic_names.len() + 1
                ),
                UnitKind::SpecialistClinic,
            )
        })
        .collect();
    let wards: Vec<CareUnit> = (0..(n / 40000).clamp(1, 40))
        .map(|i| {
            unit(
                'W',
                i,
                format!("Avdelning {}", i + 1),
                UnitKind::InpatientWard,
            )
        })
        .collect();
    let municipal: Vec<CareUnit> = (0..(n / 30000).clamp(1, 30))
        .map(|i| {
            unit(
                'K',
                i,
                format!("Kommunal hälso- och sjukvård {}", i + 1),
                UnitKind::MunicipalCare,
            )
        })
        .collect();
    let spec_of = |code: &str| {
        m.terminology
            .specialty(code)
            .into_iter()
            .collect::<Vec<_>>()
    };
    let mut staff = BTreeMap::new();
    let mut next = 0usize;
    let mut person =
        |rng: &mut ChaCha8Rng, p: Profession, specialties: Vec<crate::domain::SpecialtyCode>| {
            next += 1;
            let licence = if matches!(p, Profession::Underskoterska | Profession::Administrator) {
                Licence::NotLicensed
            } else {
                Licence::Licensed
            };
            Staff {
                hsa: hsa('P', next),
                name: Some(name(rng)),
                profession: Some(p),
                licence,
                specialties,
            }
        };
    let per_centre = (n / centres.len()).max(1);
    for c in &centres {
        let mut v = Vec::new();
        for _ in 0..(per_centre / 1500).max(2) {
            let s = match rng.gen_range(0..20) {
                0..=14 => spec_of("allmanmedicin"),
                15..=16 => spec_of("st-allmanmedicin"),
                17 => spec_of("geriatrik"),
                _ => [spec_of("allmanmedicin"), spec_of("geriatrik")].concat(),
            };
            v.push(person(rng, Profession::Lakare, s));
        }
        for _ in 0..(per_centre / 1200).max(2) {
            v.push(person(rng, Profession::Sjukskoterska, Vec::new()));
        }
        v.push(person(rng, Profession::Arbetsterapeut, Vec::new()));
        v.push(person(rng, Profession::Fysioterapeut, Vec::new()));
        v.push(person(rng, Profession::Administrator, Vec::new()));
        staff.insert(c.hsa.clone(), v);
    }
    for c in clinics.iter().chain(&wards).chain(&municipal) {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(person(rng, Profession::Sjukskoterska, Vec::new()));
        }
        v.push(person(rng, Profession::Lakare, spec_of("internmedicin")));
        for p in [
            Profession::Psykolog,
            Profession::Kurator,
            Profession::Underskoterska,
            Profession::Arbetsterapeut,
            Profession::Fysioterapeut,
        ] {
            v.push(person(rng, p, Vec::new()));
        }
        staff.insert(c.hsa.clone(), v);
    }
    Region {
        centres,
        clinics,
        wards,
        municipal,
        staff,
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, v: &'a [T]) -> &'a T {
    &v[rng.gen_range(0..v.len())]
}

fn staff_with<'a>(r: &'a Region, unit: &HsaId, p: Profession, rng: &mut ChaCha8Rng) -> &'a Staff {
    let v = &r.staff[unit];
    let of: Vec<&Staff> = v.iter().filter(|s| s.profession == Some(p)).collect();
    if of.is_empty() {
        pick(rng, v)
    } else {
        of[rng.gen_range(0..of.len())]
    }
}

fn role_profession(role: TreatingRole) -> Profession {
    use TreatingRole as T;
    match role {
        T::PatientansvarigArbetsterapeut => Profession::Arbetsterapeut,
        T::PatientansvarigFysioterapeut => Profession::Fysioterapeut,
        T::PatientansvarigPsykolog => Profession::Psykolog,
        T::PatientansvarigKurator => Profession::Kurator,
        T::PatientansvarigUnderskoterska => Profession::Underskoterska,
        _ => Profession::Sjukskoterska,
    }
}

struct Writer {
    path: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl Writer {
    fn create(path: std::path::PathBuf) -> Result<Self, SampleError> {
        let f = std::fs::File::create(&path).map_err(|source| SampleError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Writer {
            path,
            out: std::io::BufWriter::new(f),
        })
    }
    fn line(&mut self, bytes: &[u8]) -> Result<(), SampleError> {
        let io = |source| SampleError::Io {
            path: self.path.clone(),
            source,
        };
        self.out.write_all(bytes).map_err(io)?;
        self.out.write_all(b"\n").map_err(|source| SampleError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The EHR's own identifiers: another id namespace, its own identifier system, no product tag.
fn ehr_target(m: &Mappings) -> Mappings {
    let mut e = m.clone();
    e.target = TargetConfig {
        id_namespace: uuid::Uuid::from_u128(0x6f1d_2c7a_0b3e_4d59_8a61_5e2f_9c0d_4b17),
        row_id_system: "urn:oid:1.2.752.129.2.1.2.1".into(),
        tag_system: "urn:example:ehr".into(),
        tag_code: "manuell".into(),
        ..m.target.clone()
    };
    e
}

/// Writes `register.csv`, `ehr/*.ndjson` and `manifest.json` into `dir`.
pub fn generate(spec: &Spec, m: &Mappings, dir: &Path) -> Result<Manifest, SampleError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SampleError::Io {
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(dir.join("ehr")).map_err(io(dir))?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let region = region(spec, &mut rng, m);
    let ehr_m = ehr_target(m);
    let ehr = Outbound::new(&ehr_m);
    let today = NaiveDate::from_ymd_opt(REFERENCE_DAY.0, REFERENCE_DAY.1, REFERENCE_DAY.2)
        .expect("valid reference day");
    let tz = m.register.tz();
    let reg_path = dir.join("register.csv");
    let reg_file = std::fs::File::create(&reg_path).map_err(io(&reg_path))?;
    let mut reg = RegisterCsvWriter::new(
        std::io::BufWriter::new(reg_file),
        &m.register,
        &m.terminology,
    )?;
    let mut files: BTreeMap<&'static str, Writer> = BTreeMap::new();
    let mut manifest = Manifest {
        seed: spec.seed,
        patients: spec.patients,
        reference_day: today.to_string(),
        ..Default::default()
    };
    let emit = |files: &mut BTreeMap<&'static str, Writer>,
                r: &crate::fhir::Resource,
                manifest: &mut Manifest|
     -> Result<(), SampleError> {
        let (t, _) = crate::fhir::outbound::type_and_id(r);
        if !files.contains_key(t) {
            files.insert(
                t,
                Writer::create(dir.join("ehr").join(format!("{t}.ndjson")))?,
            );
        }
        let w = files.get_mut(t).expect("inserted above");
        w.line(&model::to_vec(r)?)?;
        manifest.ehr_resources += 1;
        Ok(())
    };
    // The EHR knows every unit, person and role.
    for u in region
        .centres
        .iter()
        .chain(&region.clinics)
        .chain(&region.wards)
        .chain(&region.municipal)
    {
        emit(&mut files, &ehr.organization(u), &mut manifest)?;
        for s in &region.staff[&u.hsa] {
            emit(&mut files, &ehr.practitioner(s), &mut manifest)?;
            emit(&mut files, &ehr.practitioner_role(s, u), &mut manifest)?;
        }
    }
    let mut used_numbers = HashSet::new();
    let mut row = 0u64;
    let registered_by = hsa('A', 1);
    for _ in 0..spec.patients {
        let patient = loop {
            let birth = NaiveDate::from_ymd_opt(1925, 1, 1).expect("valid")
                + Duration::days(rng.gen_range(0..36000));
            let eleven = format!("{}{:03}", birth.format("%Y%m%d"), rng.gen_range(0..1000));
            let Some(n) = with_check_digit(&eleven) else {
                continue;
            };
            if used_numbers.insert(n.clone()) {
                break PatientId::parse(&n).expect("generated numbers are valid");
            }
        };
        let listing = (rng.gen_range(0..100) < 95).then(|| pick(&mut rng, &region.centres).clone());
        let mut contacts: Vec<FixedContact> = Vec::new();
        let mut new_contact = |rng: &mut ChaCha8Rng,
                               kind,
                               status,
                               staff: Option<&Staff>,
                               unit: &CareUnit,
                               start: NaiveDate,
                               end| {
            row += 1;
            let at = start
                .and_hms_opt(rng.gen_range(8..17), rng.gen_range(0..60), 0)
                .expect("valid time");
            let at = tz
                .from_local_datetime(&at)
                .earliest()
                .map(|t| t.fixed_offset());
            FixedContact::new(
                RowId::new(&format!("R-{row:08}")).expect("non-empty"),
                patient.clone(),
                kind,
                status,
                Period::new(start, end).expect("generated periods are ordered"),
                staff.cloned(),
                unit.clone(),
                listing.as_ref().map(|l| l.hsa.clone()),
                Some(Registration {
                    at,
                    by: Some(registered_by.clone()),
                }),
            )
            .expect("generated contacts are consistent")
        };
        let past = |rng: &mut ChaCha8Rng, max_days: i64| {
            today - Duration::days(rng.gen_range(30..max_days))
        };
        let fvk = Profession::Sjukskoterska;
        if let Some(l) = &listing {
            if rng.gen_range(0..100) < 55 {
                let s = staff_with(&region, &l.hsa, Profession::Lakare, &mut rng);
                let start = past(&mut rng, 3000);
                contacts.push(new_contact(
                    &mut rng,
                    ContactKind::Flk,
                    ContactStatus::Active,
                    Some(s),
                    l,
                    start,
                    None,
                ));
            }
        }
        let r = rng.gen_range(0..100);
        if r < 20 {
            let unit = if rng.gen_range(0..10) < 6 {
                listing
                    .clone()
                    .unwrap_or_else(|| pick(&mut rng, &region.centres).clone())
            } else {
                pick(&mut rng, &region.clinics).clone()
            };
            let s = staff_with(&region, &unit.hsa, fvk, &mut rng);
            let start = past(&mut rng, 1500);
            contacts.push(new_contact(
                &mut rng,
                ContactKind::Fvk {
                    coordinating: false,
                    at_discharge: false,
                },
                ContactStatus::Active,
                Some(s),
                &unit,
                start,
                None,
            ));
        } else if r < 22 {
            let unit = listing
                .clone()
                .unwrap_or_else(|| pick(&mut rng, &region.centres).clone());
            let start = past(&mut rng, 800);
            contacts.push(new_contact(
                &mut rng,
                ContactKind::Fvk {
                    coordinating: false,
                    at_discharge: false,
                },
                ContactStatus::Declined,
                None,
                &unit,
                start,
                None,
            ));
        }
        if rng.gen_range(0..100) < 12 {
            let role = *pick(&mut rng, TreatingRole::ALL);
            let unit = pick(&mut rng, &region.clinics).clone();
            let s = staff_with(&region, &unit.hsa, role_profession(role), &mut rng);
            let start = past(&mut rng, 1200);
            contacts.push(new_contact(
                &mut rng,
                ContactKind::TreatingRole(role),
                ContactStatus::Active,
                Some(s),
                &unit,
                start,
                None,
            ));
        }
        if rng.gen_range(0..100) < 8 {
            let unit = pick(&mut rng, &region.clinics).clone();
            let s = staff_with(&region, &unit.hsa, fvk, &mut rng);
            // Ended long before any active contact starts, so never overlapping one (FK-R17).
            let start = today - Duration::days(rng.gen_range(1700..4000));
            let end = start + Duration::days(rng.gen_range(30..400));
            contacts.push(new_contact(
                &mut rng,
                ContactKind::TreatingRole(TreatingRole::Kontaktsjukskoterska),
                ContactStatus::Ended,
                Some(s),
                &unit,
                start,
                Some(end),
            ));
        }

        // One injected inconsistency, where the patient has what it needs.
        let mut ehr_contacts: Vec<FixedContact> = contacts.clone();
        let mut bad_checksum_row: Option<Vec<String>> = None;
        if rng.gen::<f64>() < spec.inconsistency_share {
            let has_flk = contacts.iter().any(|c| c.kind == ContactKind::Flk);
            let has_fvk = contacts
                .iter()
                .any(|c| c.kind.is_fvk() && c.status() == ContactStatus::Active);
            let mut options = vec![
                Anomaly::SecondFvk,
                Anomaly::AdministrativeFvk,
                Anomaly::BadChecksum,
                Anomaly::EhrExtra,
            ];
            if has_flk {
                options.extend([
                    Anomaly::FlkNotPhysician,
                    Anomaly::FlkWithoutGpSpecialty,
                    Anomaly::FlkAtOtherCentre,
                ]);
            }
            if !contacts.is_empty() {
                options.extend([
                    Anomaly::DuplicateRole,
                    Anomaly::EhrMissing,
                    Anomaly::EhrOtherStaff,
                    Anomaly::EndedOnlyInRegister,
                ]);
            }
            let anomaly = *pick(&mut rng, &options);
            let mut row_id = None;
            let active_idx = contacts
                .iter()
                .position(|c| c.status() == ContactStatus::Active);
            let flk_idx = contacts.iter().position(|c| c.kind == ContactKind::Flk);
            let mut applied = true;
            match anomaly {
                Anomaly::SecondFvk | Anomaly::AdministrativeFvk => {
                    if anomaly == Anomaly::SecondFvk || has_fvk {
                        // A second FVK only where none exists for the admin case, so one anomaly is one finding.
                        applied = anomaly == Anomaly::SecondFvk;
                    }
                    if applied {
                        // Another unit than any FVK the patient has, so the two are no duplicate (FK-R17).
                        let taken: Vec<HsaId> = contacts
                            .iter()
                            .filter(|c| c.kind.is_fvk())
                            .map(|c| c.unit.hsa.clone())
                            .collect();
                        let units: Vec<&CareUnit> = region
                            .clinics
                            .iter()
                            .filter(|u| !taken.contains(&u.hsa))
                            .collect();
                        let unit = (*pick(&mut rng, &units)).clone();
                        let prof = if anomaly == Anomaly::SecondFvk {
                            fvk
                        } else {
                            Profession::Administrator
                        };
                        let unit = if prof == Profession::Administrator {
                            listing.clone().unwrap_or_else(|| region.centres[0].clone())
                        } else {
                            unit
                        };
                        let s = staff_with(&region, &unit.hsa, prof, &mut rng).clone();
                        let start = past(&mut rng, 600);
                        let kind = ContactKind::Fvk {
                            coordinating: false,
                            at_discharge: false,
                        };
                        if anomaly == Anomaly::SecondFvk && !has_fvk {
                            let u2 = pick(&mut rng, &region.centres).clone();
                            let s2 = staff_with(&region, &u2.hsa, fvk, &mut rng).clone();
                            let c = new_contact(
                                &mut rng,
                                kind,
                                ContactStatus::Active,
                                Some(&s2),
                                &u2,
                                start,
                                None,
                            );
                            contacts.push(c.clone());
                            ehr_contacts.push(c);
                        }
                        let c = new_contact(
                            &mut rng,
                            kind,
                            ContactStatus::Active,
                            Some(&s),
                            &unit,
                            start,
                            None,
                        );
                        row_id = Some(c.row_id.to_string());
                        contacts.push(c.clone());
                        ehr_contacts.push(c);
                    }
                }
                Anomaly::FlkNotPhysician
                | Anomaly::FlkWithoutGpSpecialty
                | Anomaly::FlkAtOtherCentre => {
                    let i = flk_idx.expect("only offered with an FLK");
                    let c = &contacts[i];
                    let (unit, s) = match anomaly {
                        Anomaly::FlkNotPhysician => (
                            c.unit.clone(),
                            staff_with(&region, &c.unit.hsa, Profession::Sjukskoterska, &mut rng)
                                .clone(),
                        ),
                        Anomaly::FlkWithoutGpSpecialty => {
                            let mut s = c.staff().expect("FLK has staff").clone();
                            s.hsa =
                                HsaId::parse(&format!("{}X", s.hsa)).expect("still well-formed");
                            s.specialties = m
                                .terminology
                                .specialty("internmedicin")
                                .into_iter()
                                .collect();
                            (c.unit.clone(), s)
                        }
                        _ => {
                            let others: Vec<&CareUnit> = region
                                .centres
                                .iter()
                                .filter(|u| Some(&u.hsa) != listing.as_ref().map(|l| &l.hsa))
                                .collect();
                            let u = (*pick(&mut rng, &others)).clone();
                            let s =
                                staff_with(&region, &u.hsa, Profession::Lakare, &mut rng).clone();
                            (u, s)
                        }
                    };
                    let c2 = FixedContact::new(
                        c.row_id.clone(),
                        patient.clone(),
                        c.kind,
                        c.status(),
                        c.period,
                        Some(s),
                        unit,
                        c.listing_unit.clone(),
                        c.registration.clone(),
                    )
                    .expect("consistent");
                    row_id = Some(c2.row_id.to_string());
                    contacts[i] = c2.clone();
                    ehr_contacts[i] = c2;
                }
                Anomaly::DuplicateRole => {
                    let role_idx = contacts.iter().position(|c| {
                        c.status() == ContactStatus::Active
                            && matches!(c.kind, ContactKind::TreatingRole(_))
                    });
                    let c = contacts[role_idx.unwrap_or(0)].clone();
                    if role_idx.is_none() {
                        applied = false;
                    } else {
                        let start = c.period.start() + Duration::days(10);
                        let d = new_contact(
                            &mut rng,
                            c.kind,
                            ContactStatus::Active,
                            c.staff(),
                            &c.unit,
                            start,
                            None,
                        );
                        row_id = Some(d.row_id.to_string());
                        contacts.push(d.clone());
                        ehr_contacts.push(d);
                    }
                }
                Anomaly::BadChecksum => {
                    let unit = listing.clone().unwrap_or_else(|| region.centres[0].clone());
                    let s =
                        staff_with(&region, &unit.hsa, Profession::Sjukskoterska, &mut rng).clone();
                    let start = past(&mut rng, 300);
                    let c = new_contact(
                        &mut rng,
                        ContactKind::TreatingRole(TreatingRole::PatientansvarigSjukskoterska),
                        ContactStatus::Active,
                        Some(&s),
                        &unit,
                        start,
                        None,
                    );
                    let mut fields = reg.fields(&c)?;
                    let pnr = &mut fields[1];
                    let last = pnr.pop().and_then(|d| d.to_digit(10)).unwrap_or(0);
                    pnr.push(char::from_digit((last + 1) % 10, 10).unwrap_or('0'));
                    row_id = Some(c.row_id.to_string());
                    bad_checksum_row = Some(fields);
                }
                Anomaly::EhrMissing => match active_idx {
                    Some(i) => {
                        row_id = Some(contacts[i].row_id.to_string());
                        ehr_contacts.remove(i);
                    }
                    None => applied = false,
                },
                Anomaly::EhrOtherStaff => match active_idx {
                    Some(i) => {
                        let c = &contacts[i];
                        let cur = c.staff().map(|s| s.hsa.clone());
                        let prof = c.staff().and_then(|s| s.profession).unwrap_or(fvk);
                        let alts: Vec<&Staff> = region.staff[&c.unit.hsa]
                            .iter()
                            .filter(|s| Some(&s.hsa) != cur.as_ref() && s.profession == Some(prof))
                            .collect();
                        if alts.is_empty() {
                            applied = false;
                        } else {
                            let s = (*pick(&mut rng, &alts)).clone();
                            row_id = Some(c.row_id.to_string());
                            ehr_contacts[i] = FixedContact::new(
                                c.row_id.clone(),
                                patient.clone(),
                                c.kind,
                                c.status(),
                                c.period,
                                Some(s),
                                c.unit.clone(),
                                c.listing_unit.clone(),
                                None,
                            )
                            .expect("consistent");
                        }
                    }
                    None => applied = false,
                },
                Anomaly::EhrExtra => {
                    if has_fvk {
                        applied = false;
                    } else {
                        let unit = pick(&mut rng, &region.clinics).clone();
                        let s = staff_with(&region, &unit.hsa, fvk, &mut rng).clone();
                        let start = past(&mut rng, 300);
                        let mut c = new_contact(
                            &mut rng,
                            ContactKind::Fvk {
                                coordinating: false,
                                at_discharge: false,
                            },
                            ContactStatus::Active,
                            Some(&s),
                            &unit,
                            start,
                            None,
                        );
                        c.registration = None;
                        ehr_contacts.push(c);
                    }
                }
                Anomaly::EndedOnlyInRegister => match active_idx {
                    Some(i) => {
                        let c = &contacts[i];
                        let end = today - Duration::days(5);
                        if c.period.start() >= end {
                            applied = false;
                        } else {
                            let ended = FixedContact::new(
                                c.row_id.clone(),
                                patient.clone(),
                                c.kind,
                                ContactStatus::Ended,
                                Period::new(c.period.start(), Some(end)).expect("ordered"),
                                c.staff().cloned(),
                                c.unit.clone(),
                                c.listing_unit.clone(),
                                c.registration.clone(),
                            )
                            .expect("consistent");
                            row_id = Some(c.row_id.to_string());
                            contacts[i] = ended;
                        }
                    }
                    None => applied = false,
                },
            }
            if applied {
                manifest.injected.push(Injection {
                    patient: patient.expose(),
                    anomaly,
                    expect: anomaly.expect(),
                    row_id,
                });
            }
        }

        for c in &contacts {
            reg.write(c)?;
            manifest.register_rows += 1;
        }
        if let Some(fields) = bad_checksum_row {
            reg.write_fields(&fields)?;
            manifest.register_rows += 1;
        }
        // The EHR's copy: typed by hand, so its own ids and no register row ids.
        let mut flk = None;
        for (n, c) in ehr_contacts.iter_mut().enumerate() {
            c.row_id = RowId::new(&format!("COS-{}-{n}", c.row_id)).expect("non-empty");
            c.registration = None;
            let c = &*c;
            let r = ehr.contact(c);
            emit(&mut files, &r.relation, &mut manifest)?;
            if c.kind == ContactKind::Flk && c.status() == ContactStatus::Active {
                flk = c.staff().map(|s| (s.hsa.clone(), c.unit.hsa.clone()));
            }
            // Staff made up for an anomaly are not in the EHR's directory yet.
            if !region
                .staff
                .get(&c.unit.hsa)
                .is_some_and(|v| c.staff().is_none_or(|s| v.contains(s)))
            {
                if let (Some(p), Some(pr)) = (r.practitioner, r.practitioner_role) {
                    emit(&mut files, &p, &mut manifest)?;
                    emit(&mut files, &pr, &mut manifest)?;
                }
            }
        }
        let listing_hsa = listing.as_ref().map(|l| l.hsa.clone());
        emit(
            &mut files,
            &ehr.patient(
                &patient,
                flk.as_ref().map(|(s, u)| (s, u)),
                listing_hsa.as_ref(),
            ),
            &mut manifest,
        )?;
    }
    reg.finish()?.flush().map_err(io(&reg_path))?;
    for (_, mut w) in files {
        w.out.flush().map_err(|source| SampleError::Io {
            path: w.path.clone(),
            source,
        })?;
    }
    let mpath = dir.join("manifest.json");
    std::fs::write(&mpath, serde_json::to_vec_pretty(&manifest)?).map_err(io(&mpath))?;
    Ok(manifest)
}
