//! Source side, beside the inbound reader: a region's Patients as the contacts and rules need
//! them (identity, listing, death), held compactly and found by the reference texts naming them.

use super::inbound::Inbound;
use crate::domain::identity::{PatientId, PatientPositions};
use crate::domain::Interner;
use fhirbolt::model::r4::resources::Patient;
use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

mod spill;
pub(crate) use spill::SpilledPatients;

/// Patients found by the reference texts that name them, wherever they are kept.
pub trait PatientLookup: Sync {
    /// The Patient whose `Patient/<id>` or fullUrl is exactly `text`.
    fn exact(&self, text: &str) -> Option<Cow<'_, PatientStub>>;

    /// Every Patient's stub, in the order read.
    fn stubs(&self) -> Box<dyn Iterator<Item = Cow<'_, PatientStub>> + '_>;

    /// The Patient a reference text names: `Patient/<id>`, a fullUrl, or an absolute URL whose
    /// last two segments are `Patient/<id>`.
    fn find(&self, reference: &str) -> Option<Cow<'_, PatientStub>> {
        if let Some(found) = self.exact(reference) {
            return Some(found);
        }
        if reference.contains("?identifier=") {
            return None;
        }
        let mut parts = reference.rsplit('/');
        let (id, t) = (parts.next()?, parts.next()?);
        if t != "Patient" {
            return None;
        }
        self.exact(&format!("Patient/{id}"))
    }
}

/// What the rest of the data needs of a Patient resource: 32 bytes, since a region holds a
/// million (the identity's rare failures and the shared list each one pointer away).
#[derive(Debug, Clone)]
pub struct PatientStub {
    identity: Identity,
    /// `Patient.generalPractitioner` reference texts (the listing unit is the Organization
    /// among them): the text alone, as a fhirbolt `Reference` each was 272 bytes before it;
    /// the list shared (`share`), since a region's million Patients name a few hundred units.
    general_practitioner: Arc<Box<[Arc<str>]>>,
    pub(crate) deceased: bool,
}

/// What a Patient's identifiers gave. The rare texts boxed twice on purpose: a thin pointer
/// fits beside `PatientId` in 16 bytes, a `String` or `Box<str>` would not.
#[derive(Debug, Clone)]
#[allow(clippy::box_collection)]
enum Identity {
    Valid(PatientId),
    /// An identifier failed its check: why.
    Invalid(Box<String>),
    /// None was Swedish: the identifier systems the Patient carries ("none" when it has none).
    Missing(Box<String>),
}

impl PatientStub {
    /// A stub of what the Patient's identifiers gave (an error when one fails its check) and
    /// its `generalPractitioner` reference texts.
    pub(crate) fn new(
        id: Option<Result<PatientId, String>>,
        systems_seen: &[&str],
        general_practitioner: Vec<Arc<str>>,
        deceased: bool,
    ) -> Self {
        let identity = match id {
            Some(Ok(p)) => Identity::Valid(p),
            Some(Err(e)) => Identity::Invalid(Box::new(e)),
            None if systems_seen.is_empty() => Identity::Missing(Box::new("none".into())),
            None => {
                let mut seen = systems_seen.to_vec();
                seen.dedup();
                Identity::Missing(Box::new(seen.join(", ")))
            }
        };
        PatientStub {
            identity,
            general_practitioner: Arc::new(general_practitioner.into_boxed_slice()),
            deceased,
        }
    }

    /// The identity its identifiers give (an error when an identifier fails its check).
    pub(crate) fn id(&self) -> Option<Result<&PatientId, &str>> {
        match &self.identity {
            Identity::Valid(p) => Some(Ok(p)),
            Identity::Invalid(e) => Some(Err(e)),
            Identity::Missing(_) => None,
        }
    }

    /// The identifier systems the Patient carries, when none gave an identity.
    pub(crate) fn systems_seen(&self) -> Option<&str> {
        match &self.identity {
            Identity::Missing(seen) => Some(seen),
            _ => None,
        }
    }

    /// `Patient.generalPractitioner` reference texts.
    pub(crate) fn general_practitioner(&self) -> &[Arc<str>] {
        &self.general_practitioner
    }

    /// Lets the stub share its list of reference texts with the stubs read before it.
    pub(crate) fn share(&mut self, lists: &mut Interner<Box<[Arc<str>]>>) {
        lists.share(&mut self.general_practitioner);
    }

    pub(crate) fn of(p: &Patient) -> Self {
        use fhirbolt::model::r4::resources::PatientDeceased;
        let id = Inbound::patient_id(&p.identifier);
        let seen: Vec<&str> = match id {
            Some(_) => Vec::new(),
            None => p
                .identifier
                .iter()
                .filter_map(|i| i.system.as_ref()?.value.as_deref())
                .collect(),
        };
        PatientStub::new(
            id,
            &seen,
            p.general_practitioner
                .iter()
                .filter_map(|r| r.reference.as_ref()?.value.as_deref().map(Into::into))
                .collect(),
            match &p.deceased {
                Some(PatientDeceased::Boolean(b)) => b.value == Some(true),
                Some(PatientDeceased::DateTime(_)) => true,
                _ => false,
            },
        )
    }
}

/// A region's Patients, in the order read, each found by `Patient/<id>` or its fullUrl.
///
/// Kept for a whole run, so compact: the `Patient/<id>` texts one after another in one
/// `String`, the stubs inline in one `Vec`, and a hash table of positions that compares
/// against those texts instead of holding a second copy as keys (a map of `String` keys to
/// shared stubs took ~460 bytes a Patient, this ~130).
#[derive(Default)]
pub struct PatientTable {
    /// `Patient/<id>` of each Patient ("" for one without an id), one after another.
    refs: String,
    /// Where each Patient's text ends in `refs`.
    ends: Vec<usize>,
    stubs: Vec<PatientStub>,
    /// Positions, found by the hash of their `Patient/<id>`.
    by_ref: hashbrown::HashTable<usize>,
    /// Positions by fullUrl (a Bundle's entries; NDJSON has none).
    by_url: foldhash::HashMap<Box<str>, usize>,
    hasher: foldhash::fast::RandomState,
}

/// The text of the Patient at `pos`.
fn text_at<'t>(refs: &'t str, ends: &[usize], pos: usize) -> &'t str {
    let start = pos.checked_sub(1).map_or(0, |p| ends[p]);
    &refs[start..ends[pos]]
}

impl PatientTable {
    /// Adds a Patient; a later one with the same id takes the id over, as a map's insert did.
    pub(crate) fn push(&mut self, full_url: Option<String>, id: Option<&str>, stub: PatientStub) {
        let pos = self.stubs.len();
        let id = id.filter(|i| !i.is_empty());
        if let Some(id) = id {
            self.refs.push_str("Patient/");
            self.refs.push_str(id);
        }
        self.ends.push(self.refs.len());
        self.stubs.push(stub);
        if id.is_some() {
            let text = text_at(&self.refs, &self.ends, pos);
            let hash = self.hasher.hash_one(text);
            match self
                .by_ref
                .find_mut(hash, |&i| text_at(&self.refs, &self.ends, i) == text)
            {
                Some(earlier) => *earlier = pos,
                None => {
                    self.by_ref.insert_unique(hash, pos, |&i| {
                        self.hasher.hash_one(text_at(&self.refs, &self.ends, i))
                    });
                }
            }
        }
        if let Some(u) = full_url {
            self.by_url.insert(u.into_boxed_str(), pos);
        }
    }

    /// Gives back the room the growth left in the hash table, kept for the whole run (its
    /// control bytes are all written when it is made). The texts and stubs are not shrunk:
    /// room a list grew into and never wrote is never resident, and shrinking copied them
    /// whole (84 MB for a million Patients), old and new copies resident together for a moment.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.by_ref
            .shrink_to_fit(|&i| self.hasher.hash_one(text_at(&self.refs, &self.ends, i)));
    }

    fn exact_held(&self, text: &str) -> Option<&PatientStub> {
        let hash = self.hasher.hash_one(text);
        let pos = self
            .by_ref
            .find(hash, |&i| text_at(&self.refs, &self.ends, i) == text)
            .or_else(|| self.by_url.get(text))?;
        self.stubs.get(*pos)
    }

    /// Every Patient with its `Patient.id` (none when it had none), in the order read.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Option<&str>, &PatientStub)> {
        self.stubs.iter().enumerate().map(|(pos, stub)| {
            let id = text_at(&self.refs, &self.ends, pos).strip_prefix("Patient/");
            (id, stub)
        })
    }

    /// How many Patients the table holds.
    pub(crate) fn len(&self) -> usize {
        self.stubs.len()
    }

    /// Moves every Patient, in the order read, into `spill` (a fullUrl only with the last
    /// Patient it was given to, as the table finds it), without a copy of their ids.
    fn spill_into(self, spill: &mut SpilledPatients) -> std::io::Result<()> {
        let mut urls: Vec<Option<Box<str>>> = vec![None; self.stubs.len()];
        for (u, pos) in self.by_url {
            urls[pos] = Some(u);
        }
        for (pos, (stub, url)) in self.stubs.iter().zip(urls).enumerate() {
            let id = text_at(&self.refs, &self.ends, pos).strip_prefix("Patient/");
            spill.push(url.as_deref(), id, stub)?;
        }
        Ok(())
    }
}

impl PatientLookup for PatientTable {
    fn exact(&self, text: &str) -> Option<Cow<'_, PatientStub>> {
        self.exact_held(text).map(Cow::Borrowed)
    }

    fn stubs(&self) -> Box<dyn Iterator<Item = Cow<'_, PatientStub>> + '_> {
        Box::new(self.stubs.iter().map(Cow::Borrowed))
    }
}

/// Where a directory pass puts the Patients it reads.
pub trait PatientStore: PatientLookup {
    /// Adds a Patient; a later one with the same id or fullUrl takes it over.
    fn add(
        &mut self,
        full_url: Option<String>,
        id: Option<&str>,
        stub: PatientStub,
    ) -> std::io::Result<()>;

    /// The Patients are all read: from now on only looked up.
    fn seal(&mut self) -> std::io::Result<()>;

    /// How many Patients were added.
    fn count(&self) -> usize;
}

impl PatientStore for PatientTable {
    fn add(
        &mut self,
        full_url: Option<String>,
        id: Option<&str>,
        stub: PatientStub,
    ) -> std::io::Result<()> {
        self.push(full_url, id, stub);
        Ok(())
    }

    fn seal(&mut self) -> std::io::Result<()> {
        self.shrink_to_fit();
        Ok(())
    }

    fn count(&self) -> usize {
        self.len()
    }
}

/// A region's Patients in memory while they are few, in a spill file past `held_max`: memory
/// bounded whatever the region's size, and a small input as fast as before.
pub(crate) enum Patients {
    Held {
        table: PatientTable,
        held_max: usize,
    },
    Spilled(SpilledPatients),
}

impl Patients {
    /// Patients held in memory up to `held_max`, then all moved to a spill file.
    pub(crate) fn held_up_to(held_max: usize) -> Self {
        Patients::Held {
            table: PatientTable::default(),
            held_max,
        }
    }

    /// Whether the Patients went to a spill file.
    pub(crate) fn is_spilled(&self) -> bool {
        matches!(self, Patients::Spilled(_))
    }

    /// The first read of the spill file that failed, if one did.
    pub(crate) fn failure(&self) -> Option<std::io::Error> {
        match self {
            Patients::Held { .. } => None,
            Patients::Spilled(s) => s.failure(),
        }
    }
}

impl PatientLookup for Patients {
    fn exact(&self, text: &str) -> Option<Cow<'_, PatientStub>> {
        match self {
            Patients::Held { table, .. } => table.exact(text),
            Patients::Spilled(s) => s.exact(text),
        }
    }

    fn stubs(&self) -> Box<dyn Iterator<Item = Cow<'_, PatientStub>> + '_> {
        match self {
            Patients::Held { table, .. } => PatientLookup::stubs(table),
            Patients::Spilled(s) => s.stubs(),
        }
    }
}

impl PatientStore for Patients {
    fn add(
        &mut self,
        full_url: Option<String>,
        id: Option<&str>,
        stub: PatientStub,
    ) -> std::io::Result<()> {
        match self {
            Patients::Held { table, held_max } if table.len() < *held_max => {
                table.push(full_url, id, stub);
                Ok(())
            }
            Patients::Held { table, .. } => {
                let mut spill = SpilledPatients::new()?;
                std::mem::take(table).spill_into(&mut spill)?;
                spill.push(full_url.as_deref(), id, &stub)?;
                *self = Patients::Spilled(spill);
                Ok(())
            }
            Patients::Spilled(s) => s.push(full_url.as_deref(), id, &stub),
        }
    }

    fn seal(&mut self) -> std::io::Result<()> {
        match self {
            Patients::Held { table, .. } => PatientStore::seal(table),
            Patients::Spilled(s) => s.seal(),
        }
    }

    fn count(&self) -> usize {
        match self {
            Patients::Held { table, .. } => table.len(),
            Patients::Spilled(s) => s.len(),
        }
    }
}

/// The Patients of a table found by their identity (personnummer, …): positions in a hash
/// table, compared against the stubs, instead of a map holding a copy of each identity and
/// id.
#[derive(Default)]
pub(crate) struct PatientsByIdentity<'t> {
    table: Option<&'t PatientTable>,
    positions: PatientPositions,
}

/// The valid identity of the table's Patient at `pos` that has an id.
fn identity_at(table: &PatientTable, pos: u32) -> Option<&PatientId> {
    let pos = pos as usize;
    let stub = table.stubs.get(pos)?;
    text_at(&table.refs, &table.ends, pos).strip_prefix("Patient/")?;
    stub.id()?.ok()
}

impl<'t> PatientsByIdentity<'t> {
    /// The table's Patients with a valid identity and an id that `keep` selects; of two with
    /// the same identity, the later.
    pub(crate) fn new(table: &'t PatientTable, keep: impl Fn(&PatientId) -> bool) -> Self {
        let positions = PatientPositions::of_some(table.len(), |pos| {
            identity_at(table, pos).filter(|p| keep(p))
        });
        PatientsByIdentity {
            table: Some(table),
            positions,
        }
    }

    /// The id of the patient's Patient resource.
    pub(crate) fn get(&self, p: &PatientId) -> Option<&'t str> {
        let table = self.table?;
        let pos = self.positions.find(p, |pos| identity_at(table, pos))?;
        text_at(&table.refs, &table.ends, pos as usize).strip_prefix("Patient/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(deceased: bool) -> PatientStub {
        PatientStub::new(None, &[], Vec::new(), deceased)
    }

    #[test]
    fn a_patient_is_found_by_its_reference_its_full_url_and_an_absolute_url() {
        let mut t = PatientTable::default();
        t.push(None, Some("a"), stub(false));
        t.push(Some("urn:uuid:1".into()), Some("b"), stub(true));
        t.push(Some("urn:uuid:2".into()), None, stub(true));
        t.push(None, Some(""), stub(false));
        t.shrink_to_fit();
        assert!(!t.find("Patient/a").unwrap().deceased);
        assert!(t.find("Patient/b").unwrap().deceased);
        assert!(t.find("urn:uuid:1").unwrap().deceased);
        assert!(t.find("urn:uuid:2").unwrap().deceased);
        assert!(
            !t.find("https://ehr.example/fhir/Patient/a")
                .unwrap()
                .deceased
        );
        assert!(t.find("Patient/c").is_none());
        assert!(t.find("Practitioner/a").is_none());
        assert!(t.find("Patient/").is_none());
        let ids: Vec<_> = t.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [Some("a"), Some("b"), None, None]);
    }

    #[test]
    fn a_patient_is_found_by_its_identity_within_the_slice_kept() {
        let with = |pnr: &str| {
            PatientStub::new(
                Some(PatientId::parse(pnr).map_err(|e| e.to_string())),
                &[],
                Vec::new(),
                false,
            )
        };
        let mut t = PatientTable::default();
        t.push(None, Some("a"), with("19121212-1212"));
        t.push(None, Some("b"), with("19870101-0004"));
        t.push(None, None, with("19900101-0017"));
        t.push(None, Some("c"), with("19121212-1212"));
        for i in 0..2000 {
            t.push(None, Some(&format!("x{i}")), stub(false));
        }
        let all = PatientsByIdentity::new(&t, |_| true);
        let p = |s: &str| PatientId::parse(s).unwrap();
        assert_eq!(all.get(&p("19121212-1212")), Some("c"), "the later one");
        assert_eq!(all.get(&p("19870101-0004")), Some("b"));
        assert_eq!(
            all.get(&p("19900101-0017")),
            None,
            "a Patient without an id"
        );
        let some = PatientsByIdentity::new(&t, |q| *q != p("19870101-0004"));
        assert_eq!(some.get(&p("19870101-0004")), None);
        assert_eq!(PatientsByIdentity::default().get(&p("19121212-1212")), None);
        // Enough identities for the table to grow (and rehash) several times.
        let mut t = PatientTable::default();
        let pnr = |n: u32| {
            let eleven = format!("19{:06}{:03}", 500101 + n % 28, n);
            p(&crate::domain::identity::with_check_digit(&eleven).unwrap())
        };
        for n in 0..900 {
            t.push(None, Some(&format!("p{n}")), with(&pnr(n).expose()));
        }
        let many = PatientsByIdentity::new(&t, |_| true);
        for n in 0..900 {
            assert_eq!(many.get(&pnr(n)), Some(format!("p{n}").as_str()));
        }
        let some = PatientsByIdentity::new(&t, |q| *q != pnr(7));
        assert_eq!(some.get(&pnr(7)), None);
        assert_eq!(some.get(&pnr(8)), Some("p8"));
    }

    #[test]
    fn a_patient_stub_is_held_in_32_bytes_and_keeps_what_its_identifiers_gave() {
        assert_eq!(std::mem::size_of::<PatientStub>(), 32);
        let p = PatientId::parse("19121212-1212").unwrap();
        let valid = PatientStub::new(Some(Ok(p.clone())), &[], Vec::new(), false);
        assert_eq!(valid.id(), Some(Ok(&p)));
        assert_eq!(valid.systems_seen(), None);
        let invalid = PatientStub::new(Some(Err("bad check digit".into())), &[], Vec::new(), false);
        assert_eq!(invalid.id(), Some(Err("bad check digit")));
        assert_eq!(invalid.systems_seen(), None);
        let seen = PatientStub::new(
            None,
            &["urn:a", "urn:a", "urn:b"],
            vec!["Organization/o".into()],
            true,
        );
        assert_eq!(seen.id(), None);
        assert_eq!(seen.systems_seen(), Some("urn:a, urn:b"));
        assert_eq!(
            seen.general_practitioner(),
            [Arc::<str>::from("Organization/o")]
        );
        assert_eq!(
            PatientStub::new(None, &[], Vec::new(), false).systems_seen(),
            Some("none")
        );
    }

    #[test]
    fn a_later_patient_with_the_same_id_takes_it_over() {
        let mut t = PatientTable::default();
        t.push(None, Some("a"), stub(false));
        t.push(None, Some("a"), stub(true));
        assert!(t.find("Patient/a").unwrap().deceased);
        assert_eq!(t.stubs().count(), 2);
    }

    #[test]
    fn many_patients_are_each_found_after_the_table_grew_and_shrank() {
        let mut t = PatientTable::default();
        for i in 0..5000 {
            t.push(None, Some(&format!("p{i}")), stub(i % 3 == 0));
        }
        t.shrink_to_fit();
        for i in 0..5000 {
            assert_eq!(
                t.find(&format!("Patient/p{i}")).unwrap().deceased,
                i % 3 == 0
            );
        }
    }
}
