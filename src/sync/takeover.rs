//! Plan, takeover: the EHR's fixed contacts typed by hand (no product tag), matched to register
//! rows the way the rules match them; the Planner (engine.rs) asks here what each row may do.
//!
//! A row first takes an unclaimed hand-typed contact of the same patient, kind, staff, unit and
//! status. Any other candidate (another status, or another person at the same unit and kind)
//! waits until the whole register has been read, so a row that fits exactly always wins over
//! one that fits loosely. Two candidates for one row are a conflict: neither is touched.

use crate::domain::{ContactKind, ContactStatus, FixedContact, HsaId, PatientId, Period};
use crate::sources::ehr::contacts::SharedContacts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;

/// What a sync does with a register row that a contact typed by hand in the EHR already stands
/// for. Until one is chosen, nothing is written for such rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TakeoverPolicy {
    /// Update the hand-typed resource in place (If-Match): the product's tag and the Rad-id
    /// added, register-owned elements set to the register's values, all else kept.
    Adopt,
    /// End the hand-typed one (status, period.end, a note naming the row) and create the
    /// product's; never delete.
    Replace,
    /// Write nothing for them; list them.
    Report,
}

/// One fixed contact typed by hand in the EHR, as the planner sees it (made on demand from the
/// index's compact form).
#[derive(Debug, Clone)]
pub(crate) struct HandContact {
    /// `CareTeam/id` or `Task/id` on the server (or in the files).
    pub(crate) resource: Arc<str>,
    pub(crate) patient: PatientId,
    pub(crate) kind: ContactKind,
    pub(crate) staff: Option<HsaId>,
    pub(crate) unit: HsaId,
    pub(crate) status: ContactStatus,
    pub(crate) period: Period,
    /// Its resource carries more than one contact (a whole team in one CareTeam): it is neither
    /// adopted nor ended as a whole, since that would change the other members too.
    pub(crate) team: bool,
}

impl HandContact {
    /// The resource type (`CareTeam` or `Task`).
    pub(crate) fn resource_type(&self) -> &str {
        self.resource.split('/').next().unwrap_or("")
    }

    /// The resource's id on the server.
    pub(crate) fn id(&self) -> &str {
        self.resource.split_once('/').map_or("", |(_, id)| id)
    }
}

/// FVKs are one relation whether or not they coordinate (as the rules match them).
fn relation(k: ContactKind) -> (u8, Option<crate::domain::TreatingRole>) {
    match k {
        ContactKind::Flk => (0, None),
        ContactKind::Fvk { .. } => (1, None),
        ContactKind::TreatingRole(r) => (2, Some(r)),
    }
}

fn key_of(parts: impl Hash) -> u64 {
    use std::hash::BuildHasher;
    // A fixed seed: the keys never leave the process, and SipHash was a tenth of the plan.
    foldhash::fast::FixedState::with_seed(0x6b6f_6e74_616b_7400).hash_one(parts)
}

/// Patient, kind, staff and unit, hashed (a region's keys as strings took 300 MiB). A
/// collision only makes two contacts candidates of one row; the status and the full check in
/// `fits` decide.
fn exact(patient: &PatientId, kind: ContactKind, staff: Option<&HsaId>, unit: &HsaId) -> u64 {
    key_of((patient, relation(kind), staff, unit))
}

/// Patient, kind and unit: another person in the same place.
fn loose(patient: &PatientId, kind: ContactKind, unit: &HsaId) -> u64 {
    key_of((patient, relation(kind), unit))
}

/// What the register row may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Match {
    /// No contact typed by hand stands for it.
    None,
    /// One does (index into the takeover's contacts).
    One(u32),
    /// Several do: a conflict.
    Several(Vec<u32>),
    /// Only a loose candidate: decide when the whole register has been read.
    Later,
}

/// The EHR's contacts typed by hand, of a partition of the patients, indexed for matching. It
/// refers to the EHR side's contacts by position (a copy of each took 72 bytes a contact).
#[derive(Debug, Default)]
pub struct HandIndex {
    contacts: SharedContacts,
    /// Positions in `contacts` of the hand-typed ones, in the resources' order, each with
    /// whether its resource holds several contacts (`team`).
    hand: Vec<(u32, bool)>,
    exact: Buckets,
    loose: Buckets,
    claimed: Vec<bool>,
}

/// Contacts grouped by key: the keys sorted, and a table of where each value of a key's top
/// bits starts, so a lookup reads one short run (a hash map of the keys took 36 MB for a
/// region's million contacts, these 16 MB; a binary search of the whole list was the plan's
/// largest single cost).
#[derive(Debug, Default)]
struct Buckets {
    /// The keys, sorted; a key's contacts (indices into `hand`) beside it in `members`, in
    /// the order they were read.
    keys: Vec<u64>,
    members: Vec<u32>,
    /// Where the keys whose top `bits` bits are `b` start in `keys` (and `b + 1` where they end).
    starts: Vec<u32>,
    bits: u32,
}

impl Buckets {
    fn new(mut pairs: Vec<(u64, u32)>) -> Self {
        use rayon::slice::ParallelSliceMut;
        // Each pair is unique (its index), so the unstable sort's order is the only one.
        pairs.par_sort_unstable();
        // About one key per slot: the keys are hashes, spread evenly over their top bits.
        let bits = pairs.len().max(1).next_power_of_two().trailing_zeros();
        let slot = |k: u64| k.checked_shr(64 - bits).unwrap_or(0) as usize;
        let mut starts = vec![0u32; (1usize << bits) + 1];
        for (k, _) in &pairs {
            starts[slot(*k) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let (keys, members) = pairs.into_iter().unzip();
        Buckets {
            keys,
            members,
            starts,
            bits,
        }
    }

    /// The contacts of `key`.
    fn get(&self, key: u64) -> &[u32] {
        // With one slot (`bits` 0) every key is in it.
        let b = key.checked_shr(64 - self.bits).unwrap_or(0) as usize;
        let (Some(&from), Some(&to)) = (self.starts.get(b), self.starts.get(b + 1)) else {
            return &[];
        };
        let run = &self.keys[from as usize..to as usize];
        let lo = run.partition_point(|k| *k < key);
        let hi = lo + run[lo..].partition_point(|k| *k == key);
        &self.members[from as usize + lo..from as usize + hi]
    }
}

impl HandIndex {
    /// Indexes the contacts at `hand`'s positions of `contacts`, each with whether its
    /// resource holds several contacts.
    pub(crate) fn new(contacts: SharedContacts, hand: Vec<(u32, bool)>) -> Self {
        use rayon::prelude::*;
        // On both cores: a region's million keys read their contacts in the texts' order (a
        // cache miss each), on one core while the other waited for the rules to start.
        let (exact_keys, loose_keys): (Vec<_>, Vec<_>) = hand
            .par_iter()
            .enumerate()
            .map(|(i, &(at, _))| {
                let c = &contacts.at(at).0;
                let staff = c.staff().map(|s| &s.hsa);
                (
                    (exact(&c.patient, c.kind, staff, &c.unit.hsa), i as u32),
                    (loose(&c.patient, c.kind, &c.unit.hsa), i as u32),
                )
            })
            .unzip();
        let (exact, loose) = rayon::join(|| Buckets::new(exact_keys), || Buckets::new(loose_keys));
        HandIndex {
            claimed: vec![false; hand.len()],
            exact,
            loose,
            hand,
            contacts,
        }
    }

    /// The contact at `i` of the hand-typed ones, and its resource.
    fn slot(&self, i: u32) -> &(FixedContact, Arc<str>) {
        self.contacts.at(self.hand[i as usize].0)
    }

    /// No contact typed by hand at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.hand.is_empty()
    }

    /// The contact at `i`.
    pub(crate) fn get(&self, i: u32) -> HandContact {
        let (c, resource) = self.slot(i);
        HandContact {
            resource: resource.clone(),
            patient: c.patient.clone(),
            kind: c.kind,
            staff: c.staff().map(|s| s.hsa.clone()),
            unit: c.unit.hsa.clone(),
            status: c.status(),
            period: c.period,
            team: self.hand[i as usize].1,
        }
    }

    fn unclaimed(
        &self,
        list: &Buckets,
        key: u64,
        fits: impl Fn(&FixedContact) -> bool,
    ) -> Vec<u32> {
        list.get(key)
            .iter()
            .copied()
            .filter(|&i| !self.claimed[i as usize] && fits(&self.slot(i).0))
            .collect()
    }

    fn same_person(&self, c: &FixedContact, h: &FixedContact) -> bool {
        h.patient == c.patient
            && relation(h.kind) == relation(c.kind)
            && h.unit.hsa == c.unit.hsa
            && h.staff().map(|s| &s.hsa) == c.staff().map(|s| &s.hsa)
    }

    /// Several candidates: the one that starts on the row's day is the row's (two copies of
    /// the same person, one per period); otherwise they conflict.
    fn claim_for(&mut self, c: &FixedContact, found: Vec<u32>) -> Match {
        if found.len() > 1 {
            let same_start: Vec<u32> = found
                .iter()
                .copied()
                .filter(|&i| self.slot(i).0.period.start() == c.period.start())
                .collect();
            if same_start.len() == 1 {
                return self.claim(same_start);
            }
        }
        self.claim(found)
    }

    fn claim(&mut self, found: Vec<u32>) -> Match {
        for &i in &found {
            self.claimed[i as usize] = true;
        }
        match found.as_slice() {
            [] => Match::None,
            [one] => Match::One(*one),
            _ => Match::Several(found),
        }
    }

    /// A register row read for the first time: an exact candidate of the same status is
    /// taken now; any other candidate waits for the whole register (`Later`).
    pub(crate) fn first_look(&mut self, c: &FixedContact) -> Match {
        let ek = exact(&c.patient, c.kind, c.staff().map(|s| &s.hsa), &c.unit.hsa);
        let now = self.unclaimed(&self.exact, ek, |h| {
            self.same_person(c, h) && h.status() == c.status()
        });
        if !now.is_empty() {
            return self.claim_for(c, now);
        }
        let any_exact = !self
            .unclaimed(&self.exact, ek, |h| self.same_person(c, h))
            .is_empty();
        let lk = loose(&c.patient, c.kind, &c.unit.hsa);
        let any_loose = !self
            .unclaimed(&self.loose, lk, |h| self.loosely(c, h))
            .is_empty();
        if any_exact || any_loose {
            Match::Later
        } else {
            Match::None
        }
    }

    fn loosely(&self, c: &FixedContact, h: &FixedContact) -> bool {
        h.patient == c.patient
            && relation(h.kind) == relation(c.kind)
            && h.unit.hsa == c.unit.hsa
            && h.status() == c.status()
    }

    /// A row that waited: the same person in any status, else another person at the same unit
    /// and kind in the same status.
    pub(crate) fn second_look(&mut self, c: &FixedContact) -> Match {
        let ek = exact(&c.patient, c.kind, c.staff().map(|s| &s.hsa), &c.unit.hsa);
        let same = self.unclaimed(&self.exact, ek, |h| self.same_person(c, h));
        if !same.is_empty() {
            return self.claim_for(c, same);
        }
        let lk = loose(&c.patient, c.kind, &c.unit.hsa);
        let other = self.unclaimed(&self.loose, lk, |h| self.loosely(c, h));
        self.claim_for(c, other)
    }

    /// Active contacts typed by hand of the same patient, kind, staff and unit as a row the
    /// product already carries: duplicates of it.
    pub(crate) fn duplicates(&mut self, c: &FixedContact) -> Vec<u32> {
        let ek = exact(&c.patient, c.kind, c.staff().map(|s| &s.hsa), &c.unit.hsa);
        let found = self.unclaimed(&self.exact, ek, |h| {
            self.same_person(c, h) && h.status() == ContactStatus::Active
        });
        for &i in &found {
            self.claimed[i as usize] = true;
        }
        found
    }

    /// Active contacts no register row took, in their order.
    pub(crate) fn unmatched_active(&self) -> Vec<u32> {
        (0..self.hand.len() as u32)
            .filter(|&i| {
                !self.claimed[i as usize] && self.slot(i).0.status() == ContactStatus::Active
            })
            .collect()
    }

    /// How many contacts no register row took.
    #[cfg(test)]
    fn unmatched(&self) -> Vec<u32> {
        (0..self.hand.len() as u32)
            .filter(|i| !self.claimed[*i as usize])
            .collect()
    }

    /// Active contacts that are not part of a team (what `--end-unmatched` could end).
    pub(crate) fn active_single(&self) -> usize {
        (0..self.hand.len() as u32)
            .filter(|&i| {
                self.slot(i).0.status() == ContactStatus::Active && !self.hand[i as usize].1
            })
            .count()
    }
}

/// What the takeover decided for one contact typed by hand (or one register row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// No policy chosen: the row is held, nothing written.
    Pending,
    /// Adopted in place.
    Adopt,
    /// Ended, and the product's created.
    Replace,
    /// `report`: listed, nothing written.
    Report,
    /// Two or more stand for one row: neither touched, nothing created.
    Conflict,
    /// A whole team in one CareTeam: not adopted or ended as a whole; the row is held.
    Team,
    /// Carried by another resource type than the product's (a CareTeam for a declined offer):
    /// the row is held.
    OtherCarrier,
    /// An active copy of a relation the product already carries.
    Duplicate,
    /// Such a copy, ended under `replace`.
    DuplicateEnded,
    /// No register row stands for it: listed (ended only with `--end-unmatched`).
    Unmatched,
    /// No register row stands for it: ended under `--end-unmatched`.
    UnmatchedEnded,
    /// Its patient is not in the register at all: listed, never ended.
    NotInRegister,
    /// Its patient had a rejected row this run (or a row could not be read): left as it is.
    Held,
}

impl Decision {
    /// As the report prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pending => "pending (no --takeover chosen)",
            Decision::Adopt => "adopted",
            Decision::Replace => "replaced",
            Decision::Report => "reported",
            Decision::Conflict => "conflict",
            Decision::Team => "held: a whole team in one resource",
            Decision::OtherCarrier => "held: another resource type",
            Decision::Duplicate => "duplicate of the product's",
            Decision::DuplicateEnded => "duplicate, ended",
            Decision::Unmatched => "no register row",
            Decision::UnmatchedEnded => "no register row, ended",
            Decision::NotInRegister => "patient not in the register",
            Decision::Held => "held: rejected rows this run",
        }
    }

    /// Whether the register row it stands for was left unwritten because of it.
    pub fn holds_row(self) -> bool {
        matches!(
            self,
            Decision::Pending
                | Decision::Report
                | Decision::Conflict
                | Decision::Team
                | Decision::OtherCarrier
        )
    }
}

/// One line of the takeover's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeoverEntry {
    /// What was decided.
    pub decision: Decision,
    /// The hand-typed resource(s), `CareTeam/id`.
    pub resource: String,
    /// The register row (`FILE:LINE Rad-id`), if one stands for it.
    pub register_row: Option<String>,
    /// The patient, as the register and the EHR carry it (this file is private).
    pub patient: String,
    /// FLK, FVK or the treating role.
    pub kind: String,
    /// The unit's HSA-id.
    pub unit: String,
}

/// Entries kept in a plan; the counts are always complete.
const ENTRIES_KEPT: usize = 10_000;

/// The takeover's part of a plan: counts per decision, and the first entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TakeoverReport {
    /// The policy the plan was made under (none: nothing is written for hand-typed contacts).
    pub policy: Option<TakeoverPolicy>,
    /// Contacts typed by hand met, per decision.
    pub counts: BTreeMap<Decision, u64>,
    /// The first 10,000 entries.
    pub entries: Vec<TakeoverEntry>,
}

impl TakeoverReport {
    /// Records one decision.
    pub(crate) fn record(&mut self, e: TakeoverEntry) {
        *self.counts.entry(e.decision).or_default() += 1;
        if self.entries.len() < ENTRIES_KEPT {
            self.entries.push(e);
        }
    }

    /// How many were decided so.
    pub fn count(&self, d: Decision) -> u64 {
        self.counts.get(&d).copied().unwrap_or(0)
    }

    /// Register rows left unwritten because of a contact typed by hand.
    pub fn rows_held(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(d, _)| d.holds_row())
            .map(|(_, n)| n)
            .sum()
    }

    /// What a person running the sync should read: one line per decision that needs them.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let n = |d| self.count(d);
        if n(Decision::Pending) > 0 {
            out.push(format!(
                "{} register row(s) match contacts typed by hand in the EHR (without the product's tag): nothing is written for them, so no patient gets a second FLK or FVK. Choose what to do with them: --takeover adopt (update each in place), replace (end it, create the product's) or report (list them)",
                n(Decision::Pending)
            ));
        }
        let held = self.rows_held() - n(Decision::Pending);
        if held > 0 {
            out.push(format!(
                "{held} register row(s) not written because of contacts typed by hand: {} reported, {} with two or more candidates (conflicts), {} in a whole team in one resource, {} on another resource type",
                n(Decision::Report),
                n(Decision::Conflict),
                n(Decision::Team),
                n(Decision::OtherCarrier)
            ));
        }
        if n(Decision::Duplicate) > 0 {
            out.push(format!(
                "{} active contact(s) typed by hand duplicate a relation the product already carries: listed (--takeover replace ends them)",
                n(Decision::Duplicate)
            ));
        }
        if n(Decision::Unmatched) > 0 {
            out.push(format!(
                "{} active contact(s) typed by hand stand for no register row: listed (--end-unmatched ends them)",
                n(Decision::Unmatched)
            ));
        }
        if n(Decision::NotInRegister) > 0 {
            out.push(format!(
                "{} active contact(s) typed by hand belong to patients the register does not list: listed, never ended",
                n(Decision::NotInRegister)
            ));
        }
        if n(Decision::Held) > 0 {
            out.push(format!(
                "{} active contact(s) typed by hand with no register row were left as they are: their patient had a rejected row this run",
                n(Decision::Held)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CareUnit, RowId, Staff};
    use crate::sources::ehr::contacts::EhrContacts;
    use chrono::NaiveDate;

    fn hsa(s: &str) -> HsaId {
        HsaId::parse(s).unwrap()
    }

    fn contact(
        row: &str,
        kind: ContactKind,
        staff: &str,
        unit: &str,
        status: ContactStatus,
    ) -> FixedContact {
        let period = Period::new(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), None).unwrap();
        FixedContact::new(
            RowId::new(row).unwrap(),
            PatientId::parse("191212121212").unwrap(),
            kind,
            status,
            period,
            Some(Arc::new(Staff {
                hsa: hsa(staff),
                name: None,
                profession: None,
                licence: crate::domain::Licence::Unknown,
                specialties: Vec::new(),
            })),
            Arc::new(CareUnit {
                hsa: hsa(unit),
                name: None,
                kind: None,
            }),
            None,
            None,
        )
        .unwrap()
    }

    fn fvk() -> ContactKind {
        ContactKind::Fvk {
            coordinating: false,
            at_discharge: false,
        }
    }

    const A: &str = "SE2321000016-1A2B";
    const B: &str = "SE2321000016-1B2C";
    const U: &str = "SE2321000016-9U9U";

    /// An index over contacts of one patient (grouping keeps their order).
    fn index(hand: &[FixedContact]) -> HandIndex {
        let read = hand.iter().enumerate();
        let read = read.map(|(i, c)| (c.clone(), format!("CareTeam/h{i}").into()));
        let contacts = EhrContacts::grouped(read.collect());
        HandIndex::new(
            Arc::new(contacts),
            (0..hand.len() as u32).map(|i| (i, false)).collect(),
        )
    }

    #[test]
    fn the_same_person_in_the_same_status_is_taken_at_once() {
        let h = contact("x", fvk(), A, U, ContactStatus::Active);
        let mut ix = index(&[h]);
        let r = contact("R-1", fvk(), A, U, ContactStatus::Active);
        assert_eq!(ix.first_look(&r), Match::One(0));
        // Taken: a second row of the same key finds nothing.
        assert_eq!(ix.first_look(&r), Match::None);
        assert_eq!(ix.unmatched().len(), 0);
    }

    #[test]
    fn an_exact_fit_wins_over_a_loose_one_whatever_the_order() {
        // The EHR: an active FVK by A. The register: an ended row by B (read first) and an
        // active row by A. B must not take A's contact loosely.
        let mut ix = index(&[contact("x", fvk(), A, U, ContactStatus::Active)]);
        let ended_b = contact("R-1", fvk(), B, U, ContactStatus::Ended);
        let active_a = contact("R-2", fvk(), A, U, ContactStatus::Active);
        assert_eq!(ix.first_look(&ended_b), Match::None); // another status: no loose fit
        assert_eq!(ix.first_look(&active_a), Match::One(0));
        // Another person, same status, waits for the whole register, then fits loosely.
        let mut ix = index(&[contact("x", fvk(), A, U, ContactStatus::Active)]);
        let active_b = contact("R-3", fvk(), B, U, ContactStatus::Active);
        assert_eq!(ix.first_look(&active_b), Match::Later);
        assert_eq!(ix.second_look(&active_b), Match::One(0));
    }

    #[test]
    fn two_candidates_for_one_row_are_a_conflict_and_neither_is_unmatched() {
        let a = contact("x", fvk(), A, U, ContactStatus::Active);
        let mut ix = index(&[a.clone(), a]);
        let r = contact("R-1", fvk(), A, U, ContactStatus::Active);
        assert_eq!(ix.first_look(&r), Match::Several(vec![0, 1]));
        assert_eq!(ix.unmatched().len(), 0);
    }

    #[test]
    fn two_copies_of_one_person_go_to_the_rows_with_their_start_days() {
        let mut later = contact("x", fvk(), A, U, ContactStatus::Active);
        later.period = Period::new(NaiveDate::from_ymd_opt(2025, 2, 1).unwrap(), None).unwrap();
        let earlier = contact("y", fvk(), A, U, ContactStatus::Active);
        let mut ix = index(&[later.clone(), earlier.clone()]);
        let mut r2 = later;
        r2.row_id = RowId::new("R-2").unwrap();
        assert_eq!(ix.first_look(&r2), Match::One(0));
        assert_eq!(ix.first_look(&earlier), Match::One(1));
    }

    #[test]
    fn another_kind_or_unit_is_no_candidate() {
        let mut ix = index(&[contact("x", ContactKind::Flk, A, U, ContactStatus::Active)]);
        let r = contact("R-1", fvk(), A, U, ContactStatus::Active);
        assert_eq!(ix.first_look(&r), Match::None);
        let other_unit = contact("R-2", ContactKind::Flk, A, B, ContactStatus::Active);
        assert_eq!(ix.first_look(&other_unit), Match::None);
        assert_eq!(ix.unmatched().len(), 1);
        // A coordinating FVK is the same relation as a plain one (the flag is an attribute).
        let mut ix = index(&[contact("x", fvk(), A, U, ContactStatus::Active)]);
        let coord = ContactKind::Fvk {
            coordinating: true,
            at_discharge: false,
        };
        let r = contact("R-3", coord, A, U, ContactStatus::Active);
        assert_eq!(ix.first_look(&r), Match::One(0));
    }

    /// The keys' table finds each key's contacts, in the order read, however the keys fall:
    /// repeated keys, keys sharing their top bits, the smallest and largest keys, none at all.
    #[test]
    fn buckets_find_every_keys_contacts_and_nothing_else() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [0usize, 1, 2, 3, 1000] {
            let mut pairs: Vec<(u64, u32)> = (0..n as u32).map(|i| (next(), i)).collect();
            if n > 2 {
                pairs[2].0 = pairs[0].0; // a key twice
                pairs[1].0 = u64::MAX;
                pairs.push((0, n as u32));
                pairs.push((pairs[0].0 ^ 1, n as u32 + 1)); // same top bits, another key
            }
            let b = Buckets::new(pairs.clone());
            for &(k, _) in &pairs {
                let want: Vec<u32> = pairs.iter().filter(|p| p.0 == k).map(|p| p.1).collect();
                assert_eq!(b.get(k), want.as_slice(), "key {k:#x} of {n}");
            }
            assert!(b.get(0x1234_5678).is_empty() || pairs.iter().any(|p| p.0 == 0x1234_5678));
        }
    }

    #[test]
    fn only_active_exact_copies_are_duplicates() {
        let active = contact("x", fvk(), A, U, ContactStatus::Active);
        let ended = contact("y", fvk(), A, U, ContactStatus::Ended);
        let mut ix = index(&[active, ended]);
        let r = contact("R-1", fvk(), A, U, ContactStatus::Active);
        assert_eq!(ix.duplicates(&r), vec![0]);
        assert_eq!(ix.unmatched(), vec![1]);
    }
}
