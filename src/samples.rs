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
use std::sync::Arc;

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
        |rng: &mut ChaCha8Rng, p: &str, specialties: Vec<crate::domain::SpecialtyCode>| {
            next += 1;
            let licence = if matches!(p, "underskoterska" | "administrator") {
                Licence::NotLicensed
            } else {
                Licence::Licensed
            };
            Staff {
                hsa: hsa('P', next),
                name: Some(name(rng)),
                profession: Some(profession(m, p)),
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
            v.push(person(rng, "lakare", s));
        }
        for _ in 0..(per_centre / 1200).max(2) {
            v.push(person(rng, "sjukskoterska", Vec::new()));
        }
        v.push(person(rng, "arbetsterapeut", Vec::new()));
        v.push(person(rng, "fysioterapeut", Vec::new()));
        v.push(person(rng, "administrator", Vec::new()));
        staff.insert(c.hsa.clone(), v);
    }
    for c in clinics.iter().chain(&wards).chain(&municipal) {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(person(rng, "sjukskoterska", Vec::new()));
        }
        v.push(person(rng, "lakare", spec_of("internmedicin")));
        for p in [
            "psykolog",
            "kurator",
            "underskoterska",
            "arbetsterapeut",
            "fysioterapeut",
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

fn staff_with<'a>(r: &'a Region, unit: &HsaId, p: &str, rng: &mut ChaCha8Rng) -> &'a Staff {
    let v = &r.staff[unit];
    let of: Vec<&Staff> = v
        .iter()
        .filter(|s| s.profession.map(Profession::code) == Some(p))
        .collect();
    if of.is_empty() {
        pick(rng, v)
    } else {
        of[rng.gen_range(0..of.len())]
    }
}

/// A profession of the shipped CodeSystem (the generator writes the shipped codes; one a
/// region removed is written as an unlisted word, which the rules then report).
fn profession(m: &Mappings, code: &str) -> Profession {
    m.terminology
        .profession(code)
        .unwrap_or_else(|| Profession::unlisted(code))
}

/// A treating role of the shipped CodeSystem (as `profession`).
fn role(m: &Mappings, code: &str) -> TreatingRole {
    m.terminology
        .treating_role(code)
        .unwrap_or_else(|| TreatingRole::unlisted(code))
}

/// The profession code that holds a treating role (the CodeSystem's property `yrke`).
fn role_profession(role: TreatingRole) -> &'static str {
    role.profession().unwrap_or("sjukskoterska")
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
/// The fixed-contact FVK profession of the generated region.
const FVK_PROFESSION: &str = "sjukskoterska";

/// A patient being generated: identity and listing unit.
struct Draft {
    patient: PatientId,
    listing: Option<CareUnit>,
}

/// The generator's state across patients: the seeded random source (every draw in a fixed
/// order, so a seed always gives the same region), the region, the row counter.
struct Gen<'a> {
    rng: ChaCha8Rng,
    region: &'a Region,
    m: &'a Mappings,
    today: NaiveDate,
    tz: chrono_tz::Tz,
    registered_by: HsaId,
    row: u64,
    used_numbers: HashSet<String>,
}

/// What one injected inconsistency changed.
#[derive(Default)]
struct Injected {
    applied: bool,
    row_id: Option<String>,
    /// A register row whose personnummer fails its check digit.
    bad_checksum: Option<FixedContact>,
}

impl Injected {
    fn at(row_id: &RowId) -> Injected {
        Injected {
            applied: true,
            row_id: Some(row_id.to_string()),
            bad_checksum: None,
        }
    }
}

impl<'a> Gen<'a> {
    fn patient(&mut self) -> Draft {
        let patient = loop {
            let birth = NaiveDate::from_ymd_opt(1925, 1, 1).expect("valid")
                + Duration::days(self.rng.gen_range(0..36000));
            let eleven = format!(
                "{}{:03}",
                birth.format("%Y%m%d"),
                self.rng.gen_range(0..1000)
            );
            let Some(n) = with_check_digit(&eleven) else {
                continue;
            };
            if self.used_numbers.insert(n.clone()) {
                break PatientId::parse(&n).expect("generated numbers are valid");
            }
        };
        let listing = (self.rng.gen_range(0..100) < 95)
            .then(|| pick(&mut self.rng, &self.region.centres).clone());
        Draft { patient, listing }
    }

    #[allow(clippy::too_many_arguments)]
    fn contact(
        &mut self,
        p: &Draft,
        kind: ContactKind,
        status: ContactStatus,
        staff: Option<&Staff>,
        unit: &CareUnit,
        start: NaiveDate,
        end: Option<NaiveDate>,
    ) -> FixedContact {
        self.row += 1;
        let at = start
            .and_hms_opt(self.rng.gen_range(8..17), self.rng.gen_range(0..60), 0)
            .expect("valid time");
        let at = self
            .tz
            .from_local_datetime(&at)
            .earliest()
            .map(|t| t.fixed_offset());
        FixedContact::new(
            RowId::new(&format!("R-{:08}", self.row)).expect("non-empty"),
            p.patient.clone(),
            kind,
            status,
            Period::new(start, end).expect("generated periods are ordered"),
            staff.cloned().map(Arc::new),
            Arc::new(unit.clone()),
            p.listing.as_ref().map(|l| l.hsa.clone()),
            Some(Registration {
                at,
                by: Some(self.registered_by.clone()),
            }),
        )
        .expect("generated contacts are consistent")
    }

    fn past(&mut self, max_days: i64) -> NaiveDate {
        self.today - Duration::days(self.rng.gen_range(30..max_days))
    }

    fn staff(&mut self, unit: &HsaId, p: &str) -> &'a Staff {
        staff_with(self.region, unit, p, &mut self.rng)
    }

    /// The patient's contacts as the register has them, before any inconsistency.
    fn contacts(&mut self, p: &Draft) -> Vec<FixedContact> {
        let region = self.region;
        let mut contacts = Vec::new();
        let fvk = ContactKind::Fvk {
            coordinating: false,
            at_discharge: false,
        };
        if let Some(l) = &p.listing {
            if self.rng.gen_range(0..100) < 55 {
                let s = self.staff(&l.hsa, "lakare");
                let start = self.past(3000);
                let c = self.contact(
                    p,
                    ContactKind::Flk,
                    ContactStatus::Active,
                    Some(s),
                    l,
                    start,
                    None,
                );
                contacts.push(c);
            }
        }
        let r = self.rng.gen_range(0..100);
        if r < 20 {
            let unit = if self.rng.gen_range(0..10) < 6 {
                p.listing
                    .clone()
                    .unwrap_or_else(|| pick(&mut self.rng, &region.centres).clone())
            } else {
                pick(&mut self.rng, &region.clinics).clone()
            };
            let s = self.staff(&unit.hsa, FVK_PROFESSION);
            let start = self.past(1500);
            let c = self.contact(p, fvk, ContactStatus::Active, Some(s), &unit, start, None);
            contacts.push(c);
        } else if r < 22 {
            let unit = p
                .listing
                .clone()
                .unwrap_or_else(|| pick(&mut self.rng, &region.centres).clone());
            let start = self.past(800);
            let c = self.contact(p, fvk, ContactStatus::Declined, None, &unit, start, None);
            contacts.push(c);
        }
        if self.rng.gen_range(0..100) < 12 {
            let role = *pick(&mut self.rng, &self.m.terminology.treating_roles());
            let unit = pick(&mut self.rng, &region.clinics).clone();
            let s = self.staff(&unit.hsa, role_profession(role));
            let start = self.past(1200);
            let kind = ContactKind::TreatingRole(role);
            let c = self.contact(p, kind, ContactStatus::Active, Some(s), &unit, start, None);
            contacts.push(c);
        }
        if self.rng.gen_range(0..100) < 8 {
            let unit = pick(&mut self.rng, &region.clinics).clone();
            let s = self.staff(&unit.hsa, FVK_PROFESSION);
            // Ended long before any active contact starts, so never overlapping one (FK-R17).
            let start = self.today - Duration::days(self.rng.gen_range(1700..4000));
            let end = start + Duration::days(self.rng.gen_range(30..400));
            let kind = ContactKind::TreatingRole(role(self.m, "kontaktsjukskoterska"));
            let c = self.contact(
                p,
                kind,
                ContactStatus::Ended,
                Some(s),
                &unit,
                start,
                Some(end),
            );
            contacts.push(c);
        }
        contacts
    }

    /// One inconsistency, where the patient has what it needs: the register's contacts and the
    /// EHR's copy are changed so that exactly the anomaly's findings follow.
    fn inject(
        &mut self,
        p: &Draft,
        contacts: &mut Vec<FixedContact>,
        ehr: &mut Vec<FixedContact>,
    ) -> (Anomaly, Injected) {
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
        let anomaly = *pick(&mut self.rng, &options);
        let active = contacts
            .iter()
            .position(|c| c.status() == ContactStatus::Active);
        let done = match anomaly {
            Anomaly::SecondFvk | Anomaly::AdministrativeFvk => {
                self.another_fvk(p, anomaly, has_fvk, contacts, ehr)
            }
            Anomaly::FlkNotPhysician
            | Anomaly::FlkWithoutGpSpecialty
            | Anomaly::FlkAtOtherCentre => {
                let i = contacts
                    .iter()
                    .position(|c| c.kind == ContactKind::Flk)
                    .expect("only offered with an FLK");
                self.wrong_flk(p, anomaly, i, contacts, ehr)
            }
            Anomaly::DuplicateRole => self.duplicate_role(p, contacts, ehr),
            Anomaly::BadChecksum => self.bad_checksum(p),
            Anomaly::EhrMissing => match active {
                Some(i) => {
                    ehr.remove(i);
                    Injected::at(&contacts[i].row_id)
                }
                None => Injected::default(),
            },
            Anomaly::EhrOtherStaff => match active {
                Some(i) => self.ehr_other_staff(p, i, contacts, ehr),
                None => Injected::default(),
            },
            Anomaly::EhrExtra => {
                if has_fvk {
                    Injected::default()
                } else {
                    self.ehr_extra(p, ehr)
                }
            }
            Anomaly::EndedOnlyInRegister => match active {
                Some(i) => self.ended_only_in_register(p, i, contacts),
                None => Injected::default(),
            },
        };
        (anomaly, done)
    }

    /// A second FVK in another unit (FK-R01), or an administrator as the only FVK (FK-R11).
    fn another_fvk(
        &mut self,
        p: &Draft,
        anomaly: Anomaly,
        has_fvk: bool,
        contacts: &mut Vec<FixedContact>,
        ehr: &mut Vec<FixedContact>,
    ) -> Injected {
        // An administrator only where the patient has no FVK, so one anomaly is one finding.
        if anomaly == Anomaly::AdministrativeFvk && has_fvk {
            return Injected::default();
        }
        let region = self.region;
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
        let unit = (*pick(&mut self.rng, &units)).clone();
        let prof = if anomaly == Anomaly::SecondFvk {
            FVK_PROFESSION
        } else {
            "administrator"
        };
        let unit = if prof == "administrator" {
            p.listing
                .clone()
                .unwrap_or_else(|| region.centres[0].clone())
        } else {
            unit
        };
        let s = self.staff(&unit.hsa, prof).clone();
        let start = self.past(600);
        let kind = ContactKind::Fvk {
            coordinating: false,
            at_discharge: false,
        };
        if anomaly == Anomaly::SecondFvk && !has_fvk {
            let u2 = pick(&mut self.rng, &region.centres).clone();
            let s2 = self.staff(&u2.hsa, FVK_PROFESSION).clone();
            let c = self.contact(p, kind, ContactStatus::Active, Some(&s2), &u2, start, None);
            contacts.push(c.clone());
            ehr.push(c);
        }
        let c = self.contact(p, kind, ContactStatus::Active, Some(&s), &unit, start, None);
        let done = Injected::at(&c.row_id);
        contacts.push(c.clone());
        ehr.push(c);
        done
    }

    /// The FLK is a nurse (FK-R04), lacks general-practice competence (FK-R05), or works at
    /// another centre than the listing (FK-R19): in both systems.
    fn wrong_flk(
        &mut self,
        p: &Draft,
        anomaly: Anomaly,
        i: usize,
        contacts: &mut [FixedContact],
        ehr: &mut [FixedContact],
    ) -> Injected {
        let region = self.region;
        let c = contacts[i].clone();
        let (unit, s) = match anomaly {
            Anomaly::FlkNotPhysician => (
                (*c.unit).clone(),
                self.staff(&c.unit.hsa, "sjukskoterska").clone(),
            ),
            Anomaly::FlkWithoutGpSpecialty => {
                let mut s = c.staff().expect("FLK has staff").clone();
                s.hsa = HsaId::parse(&format!("{}X", s.hsa)).expect("still well-formed");
                s.specialties = self
                    .m
                    .terminology
                    .specialty("internmedicin")
                    .into_iter()
                    .collect();
                ((*c.unit).clone(), s)
            }
            _ => {
                let others: Vec<&CareUnit> = region
                    .centres
                    .iter()
                    .filter(|u| Some(&u.hsa) != p.listing.as_ref().map(|l| &l.hsa))
                    .collect();
                let u = (*pick(&mut self.rng, &others)).clone();
                let s = self.staff(&u.hsa, "lakare").clone();
                (u, s)
            }
        };
        let c2 = FixedContact::new(
            c.row_id.clone(),
            p.patient.clone(),
            c.kind,
            c.status(),
            c.period,
            Some(Arc::new(s)),
            Arc::new(unit),
            c.listing_unit.as_deref().cloned(),
            c.registration.as_deref().cloned(),
        )
        .expect("consistent");
        let done = Injected::at(&c2.row_id);
        contacts[i] = c2.clone();
        ehr[i] = c2;
        done
    }

    /// The same treating role twice, overlapping (FK-R17).
    fn duplicate_role(
        &mut self,
        p: &Draft,
        contacts: &mut Vec<FixedContact>,
        ehr: &mut Vec<FixedContact>,
    ) -> Injected {
        let Some(i) = contacts.iter().position(|c| {
            c.status() == ContactStatus::Active && matches!(c.kind, ContactKind::TreatingRole(_))
        }) else {
            return Injected::default();
        };
        let c = contacts[i].clone();
        let start = c.period.start() + Duration::days(10);
        let d = self.contact(
            p,
            c.kind,
            ContactStatus::Active,
            c.staff(),
            &c.unit,
            start,
            None,
        );
        let done = Injected::at(&d.row_id);
        contacts.push(d.clone());
        ehr.push(d);
        done
    }

    /// A register row whose personnummer fails its check digit (FK-R16).
    fn bad_checksum(&mut self, p: &Draft) -> Injected {
        let unit = p
            .listing
            .clone()
            .unwrap_or_else(|| self.region.centres[0].clone());
        let s = self.staff(&unit.hsa, "sjukskoterska").clone();
        let start = self.past(300);
        let kind = ContactKind::TreatingRole(role(self.m, "patientansvarig-sjukskoterska"));
        let c = self.contact(p, kind, ContactStatus::Active, Some(&s), &unit, start, None);
        Injected {
            applied: true,
            row_id: Some(c.row_id.to_string()),
            bad_checksum: Some(c),
        }
    }

    /// The EHR names another staff member of the same profession (FK-R08).
    fn ehr_other_staff(
        &mut self,
        p: &Draft,
        i: usize,
        contacts: &[FixedContact],
        ehr: &mut [FixedContact],
    ) -> Injected {
        let c = &contacts[i];
        let cur = c.staff().map(|s| s.hsa.clone());
        let prof = c
            .staff()
            .and_then(|s| s.profession)
            .map(Profession::code)
            .unwrap_or(FVK_PROFESSION);
        let alts: Vec<&Staff> = self.region.staff[&c.unit.hsa]
            .iter()
            .filter(|s| {
                Some(&s.hsa) != cur.as_ref() && s.profession.map(Profession::code) == Some(prof)
            })
            .collect();
        if alts.is_empty() {
            return Injected::default();
        }
        let s = (*pick(&mut self.rng, &alts)).clone();
        ehr[i] = FixedContact::new(
            c.row_id.clone(),
            p.patient.clone(),
            c.kind,
            c.status(),
            c.period,
            Some(Arc::new(s)),
            c.unit.clone(),
            c.listing_unit.as_deref().cloned(),
            None,
        )
        .expect("consistent");
        Injected::at(&c.row_id)
    }

    /// An FVK only the EHR has (FK-R08).
    fn ehr_extra(&mut self, p: &Draft, ehr: &mut Vec<FixedContact>) -> Injected {
        let unit = pick(&mut self.rng, &self.region.clinics).clone();
        let s = self.staff(&unit.hsa, FVK_PROFESSION).clone();
        let start = self.past(300);
        let kind = ContactKind::Fvk {
            coordinating: false,
            at_discharge: false,
        };
        let mut c = self.contact(p, kind, ContactStatus::Active, Some(&s), &unit, start, None);
        c.registration = None;
        ehr.push(c);
        Injected {
            applied: true,
            ..Default::default()
        }
    }

    /// Ended in the register, still active in the EHR (FK-R09).
    fn ended_only_in_register(
        &mut self,
        p: &Draft,
        i: usize,
        contacts: &mut [FixedContact],
    ) -> Injected {
        let c = &contacts[i];
        let end = self.today - Duration::days(5);
        if c.period.start() >= end {
            return Injected::default();
        }
        let ended = FixedContact::new(
            c.row_id.clone(),
            p.patient.clone(),
            c.kind,
            ContactStatus::Ended,
            Period::new(c.period.start(), Some(end)).expect("ordered"),
            c.staff().cloned().map(Arc::new),
            c.unit.clone(),
            c.listing_unit.as_deref().cloned(),
            c.registration.as_deref().cloned(),
        )
        .expect("consistent");
        let done = Injected::at(&c.row_id);
        contacts[i] = ended;
        done
    }
}

/// The EHR's NDJSON files, one per resource type, opened as first needed.
struct EhrFiles<'d> {
    dir: &'d Path,
    files: BTreeMap<&'static str, Writer>,
}

impl EhrFiles<'_> {
    fn emit(
        &mut self,
        r: &crate::fhir::Resource,
        manifest: &mut Manifest,
    ) -> Result<(), SampleError> {
        let (t, _) = crate::fhir::outbound::type_and_id(r);
        if !self.files.contains_key(t) {
            let w = Writer::create(self.dir.join("ehr").join(format!("{t}.ndjson")))?;
            self.files.insert(t, w);
        }
        let w = self.files.get_mut(t).expect("inserted above");
        w.line(&model::to_vec(r)?)?;
        manifest.ehr_resources += 1;
        Ok(())
    }

    fn finish(self) -> Result<(), SampleError> {
        for (_, mut w) in self.files {
            w.out.flush().map_err(|source| SampleError::Io {
                path: w.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// The EHR's copy of a patient's contacts, typed by hand: its own ids, no register row ids;
/// staff made up for an anomaly are added to the directory; then the Patient.
fn write_ehr_copy(
    ehr: &Outbound,
    files: &mut EhrFiles,
    region: &Region,
    p: &Draft,
    contacts: &mut [FixedContact],
    manifest: &mut Manifest,
) -> Result<(), SampleError> {
    let mut flk = None;
    for (n, c) in contacts.iter_mut().enumerate() {
        c.row_id = RowId::new(&format!("COS-{}-{n}", c.row_id)).expect("non-empty");
        c.registration = None;
        let c = &*c;
        let r = ehr.contact(c);
        files.emit(&r.relation, manifest)?;
        if c.kind == ContactKind::Flk && c.status() == ContactStatus::Active {
            flk = c.staff().map(|s| (s.hsa.clone(), c.unit.hsa.clone()));
        }
        if !region
            .staff
            .get(&c.unit.hsa)
            .is_some_and(|v| c.staff().is_none_or(|s| v.contains(s)))
        {
            if let (Some(pr), Some(role)) = (r.practitioner, r.practitioner_role) {
                files.emit(&pr, manifest)?;
                files.emit(&role, manifest)?;
            }
        }
    }
    let listing = p.listing.as_ref().map(|l| l.hsa.clone());
    let patient = ehr.patient(
        &p.patient,
        flk.as_ref().map(|(s, u)| (s, u)),
        listing.as_ref(),
    );
    files.emit(&patient, manifest)
}

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
    let reg_path = dir.join("register.csv");
    let reg_file = std::fs::File::create(&reg_path).map_err(io(&reg_path))?;
    let mut reg = RegisterCsvWriter::new(
        std::io::BufWriter::new(reg_file),
        &m.register,
        &m.terminology,
    )?;
    let mut files = EhrFiles {
        dir,
        files: BTreeMap::new(),
    };
    let mut manifest = Manifest {
        seed: spec.seed,
        patients: spec.patients,
        reference_day: today.to_string(),
        ..Default::default()
    };
    // The EHR knows every unit, person and role.
    for u in region
        .centres
        .iter()
        .chain(&region.clinics)
        .chain(&region.wards)
        .chain(&region.municipal)
    {
        files.emit(&ehr.organization(u), &mut manifest)?;
        for s in &region.staff[&u.hsa] {
            files.emit(&ehr.practitioner(s), &mut manifest)?;
            files.emit(&ehr.practitioner_role(s, u), &mut manifest)?;
        }
    }
    let mut g = Gen {
        rng,
        region: &region,
        m,
        today,
        tz: m.register.tz(),
        registered_by: hsa('A', 1),
        row: 0,
        used_numbers: HashSet::new(),
    };
    for _ in 0..spec.patients {
        let p = g.patient();
        let mut contacts = g.contacts(&p);
        let mut ehr_contacts = contacts.clone();
        let mut bad_checksum = None;
        if g.rng.gen::<f64>() < spec.inconsistency_share {
            let (anomaly, done) = g.inject(&p, &mut contacts, &mut ehr_contacts);
            bad_checksum = done.bad_checksum;
            if done.applied {
                manifest.injected.push(Injection {
                    patient: p.patient.expose(),
                    anomaly,
                    expect: anomaly.expect(),
                    row_id: done.row_id,
                });
            }
        }
        for c in &contacts {
            reg.write(c)?;
            manifest.register_rows += 1;
        }
        if let Some(c) = bad_checksum {
            let mut fields = reg.fields(&c)?;
            let pnr = &mut fields[1];
            let last = pnr.pop().and_then(|d| d.to_digit(10)).unwrap_or(0);
            pnr.push(char::from_digit((last + 1) % 10, 10).unwrap_or('0'));
            reg.write_fields(&fields)?;
            manifest.register_rows += 1;
        }
        write_ehr_copy(
            &ehr,
            &mut files,
            &region,
            &p,
            &mut ehr_contacts,
            &mut manifest,
        )?;
    }
    reg.finish()?.flush().map_err(io(&reg_path))?;
    files.finish()?;
    let mpath = dir.join("manifest.json");
    std::fs::write(&mpath, serde_json::to_vec_pretty(&manifest)?).map_err(io(&mpath))?;
    Ok(manifest)
}
