//! Source side, under the Patients' table: a region's Patients written to a temporary file as
//! they are read, only a hash table of where each one is kept in memory (an 8-byte entry).
//!
//! For `translate` FHIR → CSV of a region of any size: held in memory, a Patient costs ~100
//! bytes (its `Patient/<id>` text, its stub, a slot of the hash table), a million of them most
//! of the command's memory. Here the file's pages are the operating system's to cache or drop,
//! and a lookup is a positioned read of one record (`read_at`, safe from every core at once).

use super::{Identity, PatientLookup, PatientStub};
use crate::domain::identity::PatientId;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// Records start at multiples of this, so a 32-bit offset in these units reaches 32 GiB.
const ALIGN: u64 = 8;
/// Bytes read at once for a record; a longer one (a long fullUrl) is read again whole.
const WINDOW: usize = 128;
/// Bytes gathered before they are written to the file.
const FLUSH_AT: usize = 1 << 20;

/// A list of `generalPractitioner` reference texts, shared by the stubs that name it.
type List = Arc<Box<[Arc<str>]>>;

/// The Patients written to a spill file, found by `Patient/<id>` or fullUrl.
pub(crate) struct SpilledPatients {
    file: File,
    /// Bytes written to the file; what follows is still in `tail`.
    flushed: u64,
    tail: Vec<u8>,
    /// Each entry: the record's offset (in `ALIGN` units) high, 32 bits of its key's hash low.
    by_ref: hashbrown::HashTable<u64>,
    by_url: hashbrown::HashTable<u64>,
    hasher: foldhash::fast::RandomState,
    /// The distinct `generalPractitioner` lists (a region's Patients name a few hundred units).
    lists: Vec<List>,
    list_index: HashMap<Box<[Arc<str>]>, u32>,
    len: usize,
    /// Bytes gathered before a write (`FLUSH_AT`; a test writes each record at once).
    flush_at: usize,
    /// The bits of a key's hash kept (all; a test keeps none, so every key collides and
    /// only the keys read back tell the Patients apart).
    fragment_mask: u32,
    /// The first read that failed after the Patients were written: a lookup answers "not
    /// found" then, and the run must not end as if it had read everything (`failure`).
    failed: Mutex<Option<std::io::Error>>,
}

/// The table's hash of an entry: the key hash's 32 bits spread over 64 (an odd multiplier is
/// a bijection), so the table can grow without reading its keys back.
fn spread(fragment: u32) -> u64 {
    u64::from(fragment).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn fragment_of(entry: u64) -> u32 {
    entry as u32
}

fn offset_of(entry: u64) -> u64 {
    (entry >> 32) * ALIGN
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads what `put_str` wrote at `*at`, moving past it.
fn get_str<'b>(b: &'b [u8], at: &mut usize) -> Option<&'b str> {
    let len = u32::from_le_bytes(b.get(*at..*at + 4)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(b.get(*at + 4..*at + 4 + len)?).ok()?;
    *at += 4 + len;
    Some(s)
}

impl SpilledPatients {
    /// An empty table over a new temporary file (removed when the table is dropped, or the
    /// process ends however it ends).
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(SpilledPatients {
            file: tempfile::tempfile()?,
            flushed: 0,
            tail: Vec::new(),
            by_ref: hashbrown::HashTable::new(),
            by_url: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            lists: Vec::new(),
            list_index: HashMap::new(),
            len: 0,
            flush_at: FLUSH_AT,
            fragment_mask: u32::MAX,
            failed: Mutex::new(None),
        })
    }

    /// Adds a Patient; a later one with the same id or fullUrl takes it over, as in memory.
    pub(crate) fn push(
        &mut self,
        full_url: Option<&str>,
        id: Option<&str>,
        stub: &PatientStub,
    ) -> std::io::Result<()> {
        let reference = match id.filter(|i| !i.is_empty()) {
            Some(id) => format!("Patient/{id}"),
            None => String::new(),
        };
        let url = full_url.unwrap_or("");
        let at = self.flushed + self.tail.len() as u64;
        let units = u32::try_from(at / ALIGN)
            .map_err(|_| std::io::Error::other("more than 32 GiB of Patients in the spill file"))?;
        self.write_record(&reference, url, stub);
        for (key, by_url) in [(reference.as_str(), false), (url, true)] {
            if key.is_empty() {
                continue;
            }
            let fragment = self.fragment(key);
            let entry = (u64::from(units) << 32) | u64::from(fragment);
            let mut buf = Vec::new();
            let written = Written {
                file: &self.file,
                flushed: self.flushed,
                tail: &self.tail,
            };
            let table = if by_url {
                &mut self.by_url
            } else {
                &mut self.by_ref
            };
            let mut failed = None;
            let same = |e: &u64| written.holds(*e, key, fragment, by_url, &mut buf, &mut failed);
            match table.find_mut(spread(fragment), same) {
                Some(earlier) => *earlier = entry,
                None => {
                    table.insert_unique(spread(fragment), entry, |e| spread(fragment_of(*e)));
                }
            }
            if let Some(err) = failed {
                return Err(err);
            }
        }
        self.len += 1;
        if self.tail.len() >= self.flush_at {
            self.flush()?;
        }
        Ok(())
    }

    fn write_record(&mut self, reference: &str, url: &str, stub: &PatientStub) {
        let list = stub.general_practitioner();
        let list_no = match self.list_index.get(list) {
            Some(&n) => n,
            None => {
                let n = self.lists.len() as u32;
                self.lists.push(stub.general_practitioner.clone());
                self.list_index.insert(list.to_vec().into_boxed_slice(), n);
                n
            }
        };
        let start = self.tail.len();
        let out = &mut self.tail;
        out.extend_from_slice(&[0; 4]);
        put_str(out, reference);
        put_str(out, url);
        out.push(u8::from(stub.deceased));
        out.extend_from_slice(&list_no.to_le_bytes());
        match &stub.identity {
            Identity::Valid(PatientId::Swedish { digits, .. }) => {
                out.push(0);
                out.extend_from_slice(digits);
            }
            Identity::Valid(PatientId::Reserv(r)) => {
                out.push(1);
                put_str(out, &r.system);
                put_str(out, &r.value);
            }
            Identity::Invalid(why) => {
                out.push(2);
                put_str(out, why);
            }
            Identity::Missing(seen) => {
                out.push(3);
                put_str(out, seen);
            }
        }
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        while !out.len().is_multiple_of(ALIGN as usize) {
            out.push(0);
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.tail)?;
        self.flushed += self.tail.len() as u64;
        self.tail.clear();
        Ok(())
    }

    /// Writes what is still gathered, and gives back the hash tables' spare room: the table
    /// is only read from now on.
    pub(crate) fn seal(&mut self) -> std::io::Result<()> {
        self.flush()?;
        self.tail = Vec::new();
        self.by_ref.shrink_to_fit(|e| spread(fragment_of(*e)));
        self.by_url.shrink_to_fit(|e| spread(fragment_of(*e)));
        Ok(())
    }

    /// How many Patients were added.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first read of the spill file that failed, if one did: lookups after it may have
    /// answered "not found" for a Patient that is there.
    pub(crate) fn failure(&self) -> Option<std::io::Error> {
        let failed = self.failed.lock().ok()?;
        failed
            .as_ref()
            .map(|e| std::io::Error::new(e.kind(), e.to_string()))
    }

    fn note_failure(&self, err: std::io::Error) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(err);
        }
    }

    fn decode(&self, b: &[u8]) -> Option<PatientStub> {
        let mut at = 4;
        get_str(b, &mut at)?;
        get_str(b, &mut at)?;
        let deceased = *b.get(at)? != 0;
        let list_no = u32::from_le_bytes(b.get(at + 1..at + 5)?.try_into().ok()?);
        at += 5;
        let tag = *b.get(at)?;
        at += 1;
        let identity = match tag {
            0 => {
                let digits = std::str::from_utf8(b.get(at..at + 12)?).ok()?;
                Identity::Valid(PatientId::parse(digits).ok()?)
            }
            1 => {
                let system = get_str(b, &mut at)?;
                let value = get_str(b, &mut at)?;
                Identity::Valid(PatientId::reserv(system, value).ok()?)
            }
            2 => Identity::Invalid(Box::new(get_str(b, &mut at)?.to_owned())),
            3 => Identity::Missing(Box::new(get_str(b, &mut at)?.to_owned())),
            _ => return None,
        };
        Some(PatientStub {
            identity,
            general_practitioner: self.lists.get(list_no as usize)?.clone(),
            deceased,
        })
    }

    fn written(&self) -> Written<'_> {
        Written {
            file: &self.file,
            flushed: self.flushed,
            tail: &self.tail,
        }
    }

    fn fragment(&self, key: &str) -> u32 {
        self.hasher.hash_one(key) as u32 & self.fragment_mask
    }

    fn lookup(
        &self,
        table: &hashbrown::HashTable<u64>,
        key: &str,
        by_url: bool,
    ) -> Option<PatientStub> {
        let fragment = self.fragment(key);
        let mut buf = Vec::with_capacity(WINDOW);
        let mut failed = None;
        let written = self.written();
        let found = table.find(spread(fragment), |e| {
            written.holds(*e, key, fragment, by_url, &mut buf, &mut failed)
        });
        if let Some(err) = failed {
            self.note_failure(err);
        }
        found?;
        let stub = self.decode(&buf);
        if stub.is_none() {
            self.note_failure(std::io::Error::other(
                "a Patient's record in the spill file could not be read back",
            ));
        }
        stub
    }
}

/// The spill as written so far: the file, and the bytes gathered after it.
#[derive(Clone, Copy)]
struct Written<'s> {
    file: &'s File,
    flushed: u64,
    tail: &'s [u8],
}

impl Written<'_> {
    /// Whether `entry` is where `key`'s record is: the hash's bits first, then the key read
    /// back (the record left in `buf`). A read that fails is kept in `failed` and answers no.
    fn holds(
        &self,
        entry: u64,
        key: &str,
        fragment: u32,
        by_url: bool,
        buf: &mut Vec<u8>,
        failed: &mut Option<std::io::Error>,
    ) -> bool {
        if fragment_of(entry) != fragment {
            return false;
        }
        match self.read(offset_of(entry), buf) {
            Ok(()) => record_key(buf, by_url) == Some(key),
            Err(err) => {
                *failed = Some(err);
                false
            }
        }
    }

    /// The record at `offset` into `buf`: from the file, or from the bytes not yet written.
    fn read(&self, offset: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let (file, flushed, tail) = (self.file, self.flushed, self.tail);
        buf.clear();
        if offset >= flushed {
            let start = (offset - flushed) as usize;
            let len = tail
                .get(start..start + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| std::io::Error::other("a record beyond the spill's end"))?;
            let rec = tail
                .get(start..start + len as usize)
                .ok_or_else(|| std::io::Error::other("a record beyond the spill's end"))?;
            buf.extend_from_slice(rec);
            return Ok(());
        }
        buf.resize(WINDOW, 0);
        let got = read_some(file, offset, buf)?;
        let len = buf
            .get(..4)
            .filter(|_| got >= 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| std::io::Error::other("a record cut short in the spill file"))?
            as usize;
        if len > got {
            buf.resize(len, 0);
            file.read_exact_at(buf, offset)?;
        }
        buf.truncate(len);
        Ok(())
    }
}

/// Reads what there is at `offset` into `buf` (the last record may end before the window).
fn read_some(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The record's `Patient/<id>` (or its fullUrl).
fn record_key(b: &[u8], by_url: bool) -> Option<&str> {
    let mut at = 4;
    let reference = get_str(b, &mut at)?;
    if by_url {
        get_str(b, &mut at)
    } else {
        Some(reference)
    }
}

impl PatientLookup for SpilledPatients {
    fn exact(&self, text: &str) -> Option<Cow<'_, PatientStub>> {
        self.lookup(&self.by_ref, text, false)
            .or_else(|| self.lookup(&self.by_url, text, true))
            .map(Cow::Owned)
    }

    fn stubs(&self) -> Box<dyn Iterator<Item = Cow<'_, PatientStub>> + '_> {
        let mut offset = 0u64;
        let mut buf = Vec::with_capacity(WINDOW);
        let end = self.flushed + self.tail.len() as u64;
        Box::new(std::iter::from_fn(move || {
            if offset >= end {
                return None;
            }
            if let Err(err) = self.written().read(offset, &mut buf) {
                self.note_failure(err);
                return None;
            }
            offset += (buf.len() as u64).div_ceil(ALIGN) * ALIGN;
            match self.decode(&buf) {
                Some(stub) => Some(Cow::Owned(stub)),
                None => {
                    self.note_failure(std::io::Error::other(
                        "a Patient's record in the spill file could not be read back",
                    ));
                    None
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PatientStore, PatientTable, Patients};
    use super::*;

    fn stubs() -> Vec<PatientStub> {
        let units = |u: &[&str]| u.iter().map(|&x| Arc::from(x)).collect::<Vec<_>>();
        vec![
            PatientStub::new(
                Some(PatientId::parse("191212121212").map_err(|e| e.to_string())),
                &[],
                units(&["Organization/a"]),
                false,
            ),
            PatientStub::new(
                Some(
                    PatientId::reserv("urn:oid:1.2.752.97.3.1.3", "R1").map_err(|e| e.to_string()),
                ),
                &[],
                units(&["Organization/a", "Practitioner/p"]),
                true,
            ),
            PatientStub::new(Some(Err("bad check digit".into())), &[], units(&[]), false),
            PatientStub::new(
                None,
                &["http://example.org/mrn"],
                units(&["Organization/b"]),
                false,
            ),
            PatientStub::new(None, &[], units(&["Organization/a"]), true),
        ]
    }

    /// Patients as a Bundle and NDJSON give them: ids, fullUrls (one longer than a read's
    /// window), a Patient without an id, and ids and a fullUrl given twice.
    fn pushes() -> Vec<(Option<String>, Option<&'static str>, PatientStub)> {
        let s = stubs();
        let long = format!("https://ehr.example/{}/Patient/long", "x".repeat(200));
        vec![
            (None, Some("a"), s[0].clone()),
            (Some("urn:uuid:1".into()), Some("b"), s[1].clone()),
            (Some("urn:uuid:2".into()), None, s[2].clone()),
            (Some(long), Some("c"), s[3].clone()),
            (None, Some(""), s[4].clone()),
            (None, Some("a"), s[4].clone()),
            (Some("urn:uuid:1".into()), Some("d"), s[0].clone()),
        ]
    }

    const ASKED: [&str; 12] = [
        "Patient/a",
        "Patient/b",
        "Patient/c",
        "Patient/d",
        "urn:uuid:1",
        "urn:uuid:2",
        "https://ehr.example/fhir/Patient/b",
        "Patient/e",
        "Patient/",
        "Practitioner/a",
        "Patient?identifier=x|y",
        "",
    ];

    fn answers(t: &dyn PatientLookup) -> Vec<String> {
        let long = format!("https://ehr.example/{}/Patient/long", "x".repeat(200));
        ASKED
            .iter()
            .copied()
            .chain([long.as_str()])
            .map(|r| format!("{r}: {:?}", t.find(r)))
            .collect()
    }

    #[test]
    fn spilled_patients_are_found_as_the_table_in_memory_finds_them() {
        let mut held = PatientTable::default();
        // Written at once, so a later Patient's id is compared with one read from the file;
        // and gathered, so it is compared with one not yet written.
        // Every key colliding too, so only the keys read back tell the Patients apart.
        for (flush_at, fragment_mask) in
            [(1, u32::MAX), (FLUSH_AT, u32::MAX), (1, 0), (FLUSH_AT, 0)]
        {
            let mut spilled = SpilledPatients::new().unwrap();
            spilled.flush_at = flush_at;
            spilled.fragment_mask = fragment_mask;
            for (url, id, stub) in pushes() {
                spilled.push(url.as_deref(), id, &stub).unwrap();
            }
            spilled.seal().unwrap();
            if held.len() == 0 {
                for (url, id, stub) in pushes() {
                    held.push(url, id, stub);
                }
            }
            let expected = answers(&held);
            assert_eq!(answers(&spilled), expected);
            assert!(expected.iter().filter(|a| !a.ends_with("None")).count() >= 7);
            assert_eq!(spilled.len(), held.len());
            let all = |t: &dyn PatientLookup| -> Vec<String> {
                t.stubs().map(|s| format!("{s:?}")).collect()
            };
            assert_eq!(all(&spilled), all(&held));
            assert!(spilled.failure().is_none());
        }
    }

    #[test]
    fn a_spill_file_that_cannot_be_read_back_is_a_failure_not_an_absent_patient() {
        let mut spilled = SpilledPatients::new().unwrap();
        for (url, id, stub) in pushes() {
            spilled.push(url.as_deref(), id, &stub).unwrap();
        }
        spilled.seal().unwrap();
        assert!(spilled.find("Patient/a").is_some());
        spilled.file.set_len(0).unwrap();
        assert!(spilled.find("Patient/a").is_none());
        let failure = spilled.failure().expect("the failed read is kept");
        assert!(failure.to_string().contains("cut short"), "{failure}");
    }

    #[test]
    fn patients_held_past_their_count_move_to_the_spill_file_and_are_found_as_before() {
        let mut held = PatientTable::default();
        let mut moving = Patients::held_up_to(3);
        for (url, id, stub) in pushes() {
            held.push(url.clone(), id, stub.clone());
            PatientStore::add(&mut moving, url, id, stub).unwrap();
        }
        PatientStore::seal(&mut moving).unwrap();
        assert!(moving.is_spilled());
        assert_eq!(answers(&moving), answers(&held));
        let mut few = Patients::held_up_to(100);
        for (url, id, stub) in pushes() {
            PatientStore::add(&mut few, url, id, stub).unwrap();
        }
        assert!(!few.is_spilled());
    }
}
