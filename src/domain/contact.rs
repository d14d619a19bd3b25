//! A fixed contact: one patient–contact relation (FLK, FVK or a treating role) with its status
//! and period. This is the unit the register lists, the EHR mirrors and the rules judge.

use super::identity::{HsaId, PatientId};
use super::staff::{code_enum, Staff};
use super::unit::CareUnit;
use chrono::{DateTime, FixedOffset, NaiveDate};
use std::fmt;
use std::sync::Arc;

/// A treating role (behandlande roll), Gävleborg §2.4: a code of the project CodeSystem
/// `behandlande-roll` (no national code system exists), which a region extends by editing the
/// file; the roles the routine names are examples. A word the CodeSystem lacks is kept as the
/// source wrote it (`is_listed` false) and reported. Only the terminology makes these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreatingRole(&'static RoleDef);

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RoleDef {
    code: &'static str,
    listed: bool,
    /// The profession the role belongs to (the CodeSystem's property `yrke`), if it says.
    profession: Option<&'static str>,
}

static ROLES: super::code::Pool<RoleDef> = std::sync::OnceLock::new();

impl TreatingRole {
    /// A code of the CodeSystem, with the profession its property names.
    pub(crate) fn listed(code: &str, profession: Option<&str>) -> Self {
        Self::of(code, true, profession)
    }
    /// A word the CodeSystem does not have, as the source wrote it.
    pub(crate) fn unlisted(word: &str) -> Self {
        Self::of(word, false, None)
    }
    fn of(code: &str, listed: bool, profession: Option<&str>) -> Self {
        let def = RoleDef {
            code: super::code::intern(code),
            listed,
            profession: profession.map(super::code::intern),
        };
        TreatingRole(super::code::intern_in(&ROLES, def))
    }
    /// The code (or, unlisted, the word as written).
    pub fn code(self) -> &'static str {
        self.0.code
    }
    /// Whether the CodeSystem has the code.
    pub fn is_listed(self) -> bool {
        self.0.listed
    }
    /// The profession code the role belongs to, when the CodeSystem says.
    pub fn profession(self) -> Option<&'static str> {
        self.0.profession
    }
}

impl serde::Serialize for TreatingRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.code)
    }
}

/// What kind of fixed contact a relation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContactKind {
    /// Fast läkarkontakt: a named physician in primary care (HSL 7 kap. 3 §).
    Flk,
    /// Fast vårdkontakt. `coordinating`: has the overall coordinating responsibility (Örebro §7.5);
    /// `at_discharge`: appointed before discharge from inpatient care (lag 2017:612), which the
    /// register need not hold (Gävleborg §2.6).
    Fvk {
        /// The FVK coordinates the patient's care across units (Örebro §7.5).
        coordinating: bool,
        /// Appointed for a discharge from inpatient care (Gävleborg §2.6).
        at_discharge: bool,
    },
    /// A treating role (behandlande roll).
    TreatingRole(TreatingRole),
}

impl ContactKind {
    /// An FVK, coordinating or not.
    pub fn is_fvk(self) -> bool {
        matches!(self, ContactKind::Fvk { .. })
    }
    /// The project's `kontakttyp` code, the key the ConceptMaps translate.
    pub fn kind_code(self) -> &'static str {
        match self {
            ContactKind::Flk => "flk",
            ContactKind::Fvk {
                coordinating: false,
                ..
            } => "fvk",
            ContactKind::Fvk {
                coordinating: true, ..
            } => "fvk-samordningsansvar",
            ContactKind::TreatingRole(_) => "behandlande-roll",
        }
    }
    /// Same relation kind for matching register and EHR: an FVK is an FVK whether or not it
    /// coordinates (that flag is compared as an attribute).
    pub fn same_relation(self, other: ContactKind) -> bool {
        match (self, other) {
            (ContactKind::Fvk { .. }, ContactKind::Fvk { .. }) => true,
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for ContactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactKind::Flk => f.write_str("FLK"),
            ContactKind::Fvk {
                coordinating: true, ..
            } => f.write_str("FVK (samordningsansvar)"),
            ContactKind::Fvk { .. } => f.write_str("FVK"),
            ContactKind::TreatingRole(r) => write!(f, "behandlande roll {}", r.code()),
        }
    }
}

code_enum!(
    /// Life of a relation, the offer's steps included. `Informed`: told of the right to an FVK
    /// (Patientlagen 3 kap. 2 §, Örebro §1.1.1); `Requested`: the patient asked for one, none is
    /// appointed yet (Örebro §7.3); `Declined`: the patient declined the offer (Gävleborg §2.1);
    /// `Active`: appointed; `Ended`: ended.
    ContactStatus {
        Active = "aktiv",
        Ended = "avslutad",
        Declined = "avbojd",
        Requested = "begard",
        Informed = "informerad",
    }
);

impl ContactStatus {
    /// A step of the offer, not (yet) a relation with a named person: informed, requested or
    /// declined. It names no staff member and is carried by the offer's Task, not a CareTeam.
    pub fn is_offer(self) -> bool {
        matches!(
            self,
            ContactStatus::Declined | ContactStatus::Requested | ContactStatus::Informed
        )
    }
}

/// A period of dates, end inclusive; `start <= end` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Period {
    start: NaiveDate,
    end: Option<NaiveDate>,
}

/// A period that ends before it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the period ends ({end}) before it starts ({start})")]
pub struct PeriodError {
    /// The start given.
    pub start: NaiveDate,
    /// The end given, before the start.
    pub end: NaiveDate,
}

impl Period {
    /// A period from `start`, open or ending on `end` (not before `start`).
    pub fn new(start: NaiveDate, end: Option<NaiveDate>) -> Result<Self, PeriodError> {
        match end {
            Some(e) if e < start => Err(PeriodError { start, end: e }),
            _ => Ok(Period { start, end }),
        }
    }
    /// The first day.
    pub fn start(&self) -> NaiveDate {
        self.start
    }
    /// The last day, if the period has ended or will.
    pub fn end(&self) -> Option<NaiveDate> {
        self.end
    }
    /// Whether `day` lies within the period.
    pub fn contains(&self, day: NaiveDate) -> bool {
        day >= self.start && self.end.is_none_or(|e| day <= e)
    }
    /// Whether the two periods share a day.
    pub fn overlaps(&self, other: &Period) -> bool {
        let a_end = self.end.unwrap_or(NaiveDate::MAX);
        let b_end = other.end.unwrap_or(NaiveDate::MAX);
        self.start <= b_end && other.start <= a_end
    }
}

/// The register's own stable id of a row (Rad-id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RowId(Arc<str>);

impl RowId {
    /// A row id, unless the text is empty.
    pub fn new(text: &str) -> Option<Self> {
        let t = text.trim();
        (!t.is_empty()).then(|| RowId(t.into()))
    }
    /// A row id sharing `text` (an EHR contact without a register row id is known by its
    /// resource's `Type/id`, a text the contact holds already), unless it is empty.
    pub fn shared(text: &Arc<str>) -> Option<Self> {
        if text.trim().len() == text.len() {
            (!text.is_empty()).then(|| RowId(Arc::clone(text)))
        } else {
            Self::new(text)
        }
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When and by whom the register last changed a row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registration {
    /// When the register changed the relation.
    pub at: Option<DateTime<FixedOffset>>,
    /// Who changed it (HSA-id).
    pub by: Option<HsaId>,
}

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error(
        "an {0} contact names no staff member (only an offer may: declined, requested, informed)"
    )]
    MissingStaff(&'static str),
}

/// One patient–contact relation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FixedContact {
    /// The register's row id (Rad-id).
    pub row_id: RowId,
    /// Whose contact it is.
    #[serde(serialize_with = "serialize_patient")]
    pub patient: PatientId,
    /// FLK, FVK or a treating role.
    #[serde(serialize_with = "serialize_kind")]
    pub kind: ContactKind,
    status: ContactStatus,
    /// From when, and until when if ended.
    pub period: Period,
    /// Shared: a region's EHR names a few thousand staff members in millions of contacts.
    staff: Option<Arc<Staff>>,
    /// The care unit the contact belongs to (shared, like the staff member).
    pub unit: Arc<CareUnit>,
    /// The primary-care centre the patient is listed at, as this row states it (shared like
    /// the unit: a region lists its million patients at a few hundred centres).
    pub listing_unit: Option<Arc<HsaId>>,
    /// The register's last change, if known (boxed: the EHR's hand-typed contacts have none).
    pub registration: Option<Box<Registration>>,
}

fn serialize_patient<S: serde::Serializer>(p: &PatientId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.expose())
}
fn serialize_kind<S: serde::Serializer>(k: &ContactKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&k.to_string())
}

impl FixedContact {
    /// An active or ended contact must name its staff member; a declined offer need not.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        row_id: RowId,
        patient: PatientId,
        kind: ContactKind,
        status: ContactStatus,
        period: Period,
        staff: Option<Arc<Staff>>,
        unit: Arc<CareUnit>,
        listing_unit: Option<HsaId>,
        registration: Option<Registration>,
    ) -> Result<Self, ContactError> {
        if staff.is_none() && !status.is_offer() {
            let s = if status == ContactStatus::Active {
                "active"
            } else {
                "ended"
            };
            return Err(ContactError::MissingStaff(s));
        }
        Ok(FixedContact {
            row_id,
            patient,
            kind,
            status,
            period,
            staff,
            unit,
            listing_unit: listing_unit.map(Arc::new),
            registration: registration.map(Box::new),
        })
    }
    /// Active, ended, or a step of the offer.
    pub fn status(&self) -> ContactStatus {
        self.status
    }
    /// The named staff member (absent for an offer).
    pub fn staff(&self) -> Option<&Staff> {
        self.staff.as_deref()
    }
    /// Lets this contact share its staff member and unit with the earlier contacts that name
    /// the same ones.
    pub fn share(&mut self, values: &mut SharedValues) {
        if let Some(s) = &mut self.staff {
            values.staff.share(s);
        }
        values.units.share(&mut self.unit);
        if let Some(l) = &mut self.listing_unit {
            values.listings.share(l);
        }
    }
    /// Active on the given day: status active and the day within the period.
    pub fn is_active_on(&self, day: NaiveDate) -> bool {
        self.status == ContactStatus::Active && self.period.contains(day)
    }
}

/// The staff members and units of the contacts read so far, each kept once: a region's EHR
/// names a few thousand of them in a million contacts (kept once, the 1 M reconcile's peak
/// went from 2,413 to 2,032 MiB).
#[derive(Default)]
pub struct SharedValues {
    staff: Interner<Staff>,
    units: Interner<CareUnit>,
    listings: Interner<HsaId>,
}

/// Equal values kept once: a value handed to `share` is replaced by the first equal one.
pub struct Interner<T: ?Sized>(foldhash::HashSet<Arc<T>>);

impl<T: ?Sized> Default for Interner<T> {
    fn default() -> Self {
        Interner(Default::default())
    }
}

impl<T: Eq + std::hash::Hash + ?Sized> Interner<T> {
    /// Replaces `v` with the value kept for it (keeping `v` if it is the first of its kind).
    pub fn share(&mut self, v: &mut Arc<T>) {
        match self.0.get(v) {
            Some(kept) => {
                if !Arc::ptr_eq(kept, v) {
                    *v = Arc::clone(kept);
                }
            }
            None => {
                self.0.insert(Arc::clone(v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn period_refuses_end_before_start_and_overlaps_inclusively() {
        assert!(Period::new(d("2024-02-01"), Some(d("2024-01-31"))).is_err());
        let a = Period::new(d("2024-01-01"), Some(d("2024-03-31"))).unwrap();
        let b = Period::new(d("2024-03-31"), None).unwrap();
        let c = Period::new(d("2024-04-01"), None).unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert!(b.contains(d("2099-01-01")));
    }

    fn contact(row: &str, staff: &str, name: &str, unit: &str) -> FixedContact {
        let staff = Staff {
            hsa: HsaId::parse(staff).unwrap(),
            name: Some(name.into()),
            profession: None,
            licence: crate::domain::Licence::Unknown,
            specialties: Vec::new(),
        };
        let unit = CareUnit {
            hsa: HsaId::parse(unit).unwrap(),
            name: Some("Vårdcentralen Norr".into()),
            kind: None,
        };
        FixedContact::new(
            RowId::new(row).unwrap(),
            PatientId::parse("191212121212").unwrap(),
            ContactKind::Flk,
            ContactStatus::Active,
            Period::new(d("2024-01-01"), None).unwrap(),
            Some(Arc::new(staff)),
            Arc::new(unit),
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_row_id_made_from_a_shared_text_shares_it_and_is_trimmed_like_any_other() {
        let text: Arc<str> = "CareTeam/x".into();
        let id = RowId::shared(&text).unwrap();
        assert!(Arc::ptr_eq(&id.0, &text));
        assert_eq!(id, RowId::new("CareTeam/x").unwrap());
        let padded: Arc<str> = " CareTeam/y ".into();
        assert_eq!(RowId::shared(&padded).unwrap().as_str(), "CareTeam/y");
        assert!(RowId::shared(&Arc::from("")).is_none());
        assert!(RowId::shared(&Arc::from("  ")).is_none());
    }

    #[test]
    fn shared_values_keep_one_copy_of_each_staff_member_and_unit() {
        let u = "SE2321000032-VC01";
        let mut a = contact("R-1", "SE2321000032-L001", "Linnea Berg", u);
        let mut b = contact("R-2", "SE2321000032-L001", "Linnea Berg", u);
        // Same HSA-id, another name: another value, kept apart.
        let mut c = contact("R-3", "SE2321000032-L001", "Linnea Berg-Ek", u);
        let before = [a.clone(), b.clone(), c.clone()];
        let mut values = SharedValues::default();
        for x in [&mut a, &mut b, &mut c] {
            x.share(&mut values);
        }
        assert_eq!(
            [a.clone(), b.clone(), c.clone()],
            before,
            "values unchanged"
        );
        let (sa, sb, sc) = (a.staff.unwrap(), b.staff.unwrap(), c.staff.unwrap());
        assert!(Arc::ptr_eq(&sa, &sb));
        assert!(!Arc::ptr_eq(&sa, &sc));
        assert!(Arc::ptr_eq(&a.unit, &b.unit) && Arc::ptr_eq(&a.unit, &c.unit));
    }
}
