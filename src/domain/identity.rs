//! Identity numbers: a patient's personnummer, samordningsnummer or reservnummer, and the HSA-id
//! of a person or unit. A value of these types is always valid; `Debug`/`Display` mask patients.

use chrono::NaiveDate;
use std::fmt;

/// Why an identity number was refused.
#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("expected 12 digits (YYYYMMDDNNNC, hyphen allowed before the last four), got {0} characters")]
    Length(usize),
    #[error("contains a character that is not a digit")]
    NotDigits,
    #[error("the date part {0} is not a real date")]
    BadDate(String),
    #[error("the check digit is {found}, the Luhn check gives {expected}")]
    Checksum { found: u8, expected: u8 },
    #[error("an HSA-id is SE, a 10-digit organisation number, '-' and a suffix of letters and digits, at most 31 characters")]
    HsaForm,
    #[error("a reservnummer needs an issuing system and a value")]
    Reserv,
}

/// Which kind of patient identity number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatientIdKind {
    /// A personnummer (Skatteverket).
    Personnummer,
    /// Day of birth + 60.
    Samordningsnummer,
    /// A regional or national reserve number; only its issuer knows its form.
    Reservnummer,
}

/// A patient's identity. Personnummer and samordningsnummer carry a valid date and Luhn check digit;
/// a reservnummer carries the system (OID or URI) that issued it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PatientId {
    /// 12 ASCII digits, YYYYMMDDNNNC, checked.
    Swedish {
        /// Personnummer or samordningsnummer.
        kind: PatientIdKind,
        /// The 12 digits.
        digits: [u8; 12],
    },
    /// A reserve number, under its issuer's system. Boxed: reserve numbers are rare, and a
    /// region holds millions of identities (16 bytes each this way, 48 with the strings inline).
    Reserv(Box<ReservNumber>),
}

// Ordered as a derived `Ord` would (Swedish before reserve numbers; kind, then the digits as
// text), with the digits compared as two integers: the derived order called `memcmp` for 12
// bytes, and a region's sorts and searches by patient made that 8 % of a reconcile.
impl Ord for PatientId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn key(d: &[u8; 12]) -> (u64, u32) {
            let (hi, lo) = d.split_at(8);
            let hi: [u8; 8] = hi.try_into().unwrap_or_default();
            let lo: [u8; 4] = lo.try_into().unwrap_or_default();
            (u64::from_be_bytes(hi), u32::from_be_bytes(lo))
        }
        match (self, other) {
            (
                PatientId::Swedish { kind: a, digits: x },
                PatientId::Swedish { kind: b, digits: y },
            ) => a.cmp(b).then_with(|| key(x).cmp(&key(y))),
            (PatientId::Swedish { .. }, PatientId::Reserv(_)) => Ordering::Less,
            (PatientId::Reserv(_), PatientId::Swedish { .. }) => Ordering::Greater,
            (PatientId::Reserv(a), PatientId::Reserv(b)) => a.cmp(b),
        }
    }
}
impl PartialOrd for PatientId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A reserve number and the system that issued it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservNumber {
    /// The issuer's system (OID or URI).
    pub system: String,
    /// The number as the issuer wrote it.
    pub value: String,
}

impl PatientId {
    /// Parses `YYYYMMDDNNNC` or `YYYYMMDD-NNNC`. A day above 60 makes it a samordningsnummer.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let t = text.trim();
        let bytes: Vec<u8> = match t.len() {
            12 => t.bytes().collect(),
            13 if t.as_bytes()[8] == b'-' || t.as_bytes()[8] == b'+' => t
                .bytes()
                .enumerate()
                .filter(|(i, _)| *i != 8)
                .map(|(_, b)| b)
                .collect(),
            n => return Err(IdentityError::Length(n)),
        };
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(IdentityError::NotDigits);
        }
        let mut digits = [0u8; 12];
        digits.copy_from_slice(&bytes);
        let num = |r: std::ops::Range<usize>| -> u32 {
            digits[r]
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let (year, month, mut day) = (num(0..4), num(4..6), num(6..8));
        let kind = if day > 60 {
            day -= 60;
            PatientIdKind::Samordningsnummer
        } else {
            PatientIdKind::Personnummer
        };
        if NaiveDate::from_ymd_opt(year as i32, month, day).is_none() {
            return Err(IdentityError::BadDate(
                String::from_utf8_lossy(&digits[0..8]).into_owned(),
            ));
        }
        let expected = luhn_check_digit(&digits[2..11]);
        let found = digits[11] - b'0';
        if expected != found {
            return Err(IdentityError::Checksum { found, expected });
        }
        Ok(PatientId::Swedish { kind, digits })
    }

    /// A reserve number under its issuer's system.
    pub fn reserv(system: &str, value: &str) -> Result<Self, IdentityError> {
        if system.trim().is_empty() || value.trim().is_empty() {
            return Err(IdentityError::Reserv);
        }
        Ok(PatientId::Reserv(Box::new(ReservNumber {
            system: system.trim().to_owned(),
            value: value.trim().to_owned(),
        })))
    }

    /// Which kind of identity number it is.
    pub fn kind(&self) -> PatientIdKind {
        match self {
            PatientId::Swedish { kind, .. } => *kind,
            PatientId::Reserv(_) => PatientIdKind::Reservnummer,
        }
    }

    /// The full number, 12 digits without hyphen (or the reservnummer's value). Only for data
    /// outputs (FHIR, reports, CSV), never for logs: use `Display`, which masks.
    pub fn expose(&self) -> String {
        match self {
            PatientId::Swedish { digits, .. } => String::from_utf8_lossy(digits).into_owned(),
            PatientId::Reserv(r) => r.value.clone(),
        }
    }

    /// The register's written form, `YYYYMMDD-NNNC`.
    pub fn expose_hyphenated(&self) -> String {
        match self {
            PatientId::Swedish { digits, .. } => {
                let s = String::from_utf8_lossy(digits);
                format!("{}-{}", &s[..8], &s[8..])
            }
            PatientId::Reserv(r) => r.value.clone(),
        }
    }

    /// Birth date (day − 60 for a samordningsnummer); none for a reservnummer.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        match self {
            PatientId::Swedish { kind, digits } => {
                let s = String::from_utf8_lossy(&digits[0..8]).into_owned();
                let (y, m, d) = (
                    s[0..4].parse().ok()?,
                    s[4..6].parse().ok()?,
                    s[6..8].parse::<u32>().ok()?,
                );
                let d = if *kind == PatientIdKind::Samordningsnummer {
                    d - 60
                } else {
                    d
                };
                NaiveDate::from_ymd_opt(y, m, d)
            }
            PatientId::Reserv(_) => None,
        }
    }
}

/// Luhn over the 9 digits YYMMDDNNN gives the check digit.
fn luhn_check_digit(nine: &[u8]) -> u8 {
    let sum: u32 = nine
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            d / 10 + d % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Appends a valid check digit to 11 digits (YYYYMMDDNNN): used by the sample generator.
pub fn with_check_digit(eleven: &str) -> Option<String> {
    if eleven.len() != 11 || !eleven.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{eleven}{}",
        luhn_check_digit(&eleven.as_bytes()[2..11])
    ))
}

/// Masked: year and the last two digits only, so a log line never holds a full number.
impl fmt::Display for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatientId::Swedish { digits, .. } => {
                let s = String::from_utf8_lossy(digits);
                write!(f, "{}****-**{}", &s[..4], &s[10..])
            }
            PatientId::Reserv(r) => {
                let tail: String = r
                    .value
                    .chars()
                    .rev()
                    .take(2)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                write!(f, "reserv:***{tail}")
            }
        }
    }
}

impl fmt::Debug for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PatientId({self})")
    }
}

/// The longest HSA-id: `SE`, 10 digits, `-` and at most 18 characters.
const HSA_MAX: usize = 31;

/// HSA-id of a person or unit: `SE` + 10-digit organisation number + `-` + suffix. Held inline
/// (32 bytes, no allocation): a region's contacts carry millions of them.
#[derive(Clone)]
pub struct HsaId {
    /// At least 14 (the shortest HSA-id), so never zero: `Option<HsaId>` is 32 bytes too.
    len: std::num::NonZeroU8,
    bytes: [u8; HSA_MAX],
}

impl HsaId {
    /// An HSA-id, if well-formed.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let t = text.trim();
        let b = t.as_bytes();
        let ok = b.len() <= HSA_MAX
            && b.len() >= 14
            && b.starts_with(b"SE")
            && b[2..12].iter().all(u8::is_ascii_digit)
            && b[12] == b'-'
            && b[13..].iter().all(u8::is_ascii_alphanumeric);
        let len = u8::try_from(b.len())
            .ok()
            .and_then(std::num::NonZeroU8::new);
        match len {
            Some(len) if ok => {
                let mut bytes = [0; HSA_MAX];
                bytes[..b.len()].copy_from_slice(b);
                Ok(HsaId { len, bytes })
            }
            _ => Err(IdentityError::HsaForm),
        }
    }
    /// The HSA-id as text.
    pub fn as_str(&self) -> &str {
        // ASCII by `parse`: the check cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len.get())]).unwrap_or_default()
    }
}

impl HsaId {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len.get())]
    }
}

// Compared, hashed and ordered as the bytes of its text (which order as the text does),
// without reading them as UTF-8 each time.
impl PartialEq for HsaId {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}
impl Eq for HsaId {}
impl std::hash::Hash for HsaId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.bytes().hash(h)
    }
}
impl PartialOrd for HsaId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HsaId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}
impl serde::Serialize for HsaId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for HsaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for HsaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HsaId({})", self.as_str())
    }
}

/// Positions in a list of patients' entries, found by the patient at each: a hash table of
/// 4-byte positions that compares against the list itself. The rules look a million patients
/// up in the register's order, which is not the list's: halving the list was a cache miss a
/// step (a twentieth of a region's run in `PatientId::cmp`); this is one or two.
#[derive(Default)]
pub(crate) struct PatientPositions {
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::FixedState,
}

impl PatientPositions {
    /// The positions `0..len` of a list whose entry at each is `at(i)`, every patient once.
    pub(crate) fn new<'a>(len: usize, at: impl Fn(u32) -> &'a PatientId) -> Self {
        Self::sized(len, len, |i| Some(at(i)))
    }

    /// The positions among `0..len` whose entry names a patient (`at(i)`); of two naming the
    /// same patient, the later. They are counted first, so the table is made at its size:
    /// growing it rehashed every entry through `at` (a cache miss each), a tenth of a plan's
    /// start at a million Patients.
    pub(crate) fn of_some<'a>(len: usize, at: impl Fn(u32) -> Option<&'a PatientId>) -> Self {
        let named = (0..len as u32).filter(|&i| at(i).is_some()).count();
        Self::sized(len, named, at)
    }

    /// As `of_some`, with room made for `capacity` entries.
    fn sized<'a>(len: usize, capacity: usize, at: impl Fn(u32) -> Option<&'a PatientId>) -> Self {
        use std::hash::BuildHasher;
        let mut out = PatientPositions {
            table: hashbrown::HashTable::with_capacity(capacity),
            hasher: foldhash::fast::FixedState::default(),
        };
        let hasher = out.hasher.clone();
        let rehash = |j: &u32| at(*j).map_or(0, |q| hasher.hash_one(q));
        for i in 0..len as u32 {
            let Some(p) = at(i) else { continue };
            let hash = hasher.hash_one(p);
            match out.table.find_mut(hash, |&j| at(j) == Some(p)) {
                Some(earlier) => *earlier = i,
                None => {
                    out.table.insert_unique(hash, i, rehash);
                }
            }
        }
        out
    }

    /// The position of the patient's entry, if the list holds one.
    pub(crate) fn find<'a>(
        &self,
        p: &PatientId,
        at: impl Fn(u32) -> Option<&'a PatientId>,
    ) -> Option<u32> {
        use std::hash::BuildHasher;
        self.table
            .find(self.hasher.hash_one(p), |&i| at(i) == Some(p))
            .copied()
    }
}

impl std::fmt::Debug for PatientPositions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PatientPositions({})", self.table.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_is_found_at_its_place_in_a_list_in_any_order() {
        let mut list: Vec<PatientId> = (0..3000u32)
            .filter_map(|n| {
                let eleven = format!(
                    "19{:06}{:03}",
                    500101 + n % 28,
                    n % 1000 + 1000 * (n / 1000 % 2)
                );
                PatientId::parse(&with_check_digit(&eleven[..11])?).ok()
            })
            .collect();
        list.sort();
        list.dedup();
        list.reverse();
        list.push(PatientId::reserv("1.2.752.1", "X2").unwrap());
        let absent = PatientId::reserv("1.2.752.1", "X3").unwrap();
        assert!(list.len() > 500, "{}", list.len());
        let at = PatientPositions::new(list.len(), |i| &list[i as usize]);
        for (i, p) in list.iter().enumerate() {
            assert_eq!(at.find(p, |i| list.get(i as usize)), Some(i as u32));
        }
        assert_eq!(at.find(&absent, |i| list.get(i as usize)), None);
        assert_eq!(
            PatientPositions::default().find(&list[0], |i| list.get(i as usize)),
            None
        );
        // Entries that name no patient are left out; of two naming one, the later is found.
        let some: Vec<Option<&PatientId>> = list
            .iter()
            .enumerate()
            .map(|(i, p)| (i % 3 != 0).then_some(p))
            .chain([Some(&list[1])])
            .collect();
        let at = PatientPositions::of_some(some.len(), |i| some[i as usize]);
        let found = |p: &PatientId| at.find(p, |i| some[i as usize]);
        assert_eq!(found(&list[0]), None);
        assert_eq!(found(&list[1]), Some(list.len() as u32), "the later");
        assert_eq!(found(&list[2]), Some(2));
    }

    #[test]
    fn patients_order_as_kind_then_digits_then_reserve_numbers() {
        // Valid numbers across the digits' every position, both kinds, and reserve numbers.
        let mut ids: Vec<PatientId> = [
            "19121212121",
            "19121212120",
            "19121211121",
            "19121112121",
            "18121212121",
            "20121212121",
            "19121272121",
            "19121212131",
            "19121212221",
            "19000101000",
            "19991231999",
            "19121262121",
        ]
        .iter()
        .filter_map(|e| PatientId::parse(&with_check_digit(e)?).ok())
        .collect();
        ids.push(PatientId::reserv("1.2.752.1", "X2").unwrap());
        ids.push(PatientId::reserv("1.2.752.1", "X1").unwrap());
        ids.push(PatientId::reserv("1.2.752.0", "X9").unwrap());
        assert!(ids.len() >= 14);
        // The order a derived Ord gave: variant, kind, the digits as text; (system, value).
        let rank = |p: &PatientId| match p {
            PatientId::Swedish { kind, digits } => (0, Some(*kind), digits.to_vec(), None),
            PatientId::Reserv(r) => (
                1,
                None,
                Vec::new(),
                Some((r.system.clone(), r.value.clone())),
            ),
        };
        for a in &ids {
            for b in &ids {
                assert_eq!(
                    a.cmp(b),
                    rank(a).cmp(&rank(b)),
                    "{} vs {}",
                    a.expose(),
                    b.expose()
                );
                assert_eq!(a.cmp(b) == std::cmp::Ordering::Equal, a == b);
            }
        }
    }

    #[test]
    fn accepts_the_classic_test_number_with_and_without_hyphen() {
        let a = PatientId::parse("19121212-1212").unwrap();
        let b = PatientId::parse("191212121212").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.kind(), PatientIdKind::Personnummer);
        assert_eq!(a.expose(), "191212121212");
        assert_eq!(a.expose_hyphenated(), "19121212-1212");
    }

    #[test]
    fn refuses_wrong_check_digit_bad_date_and_junk() {
        assert_eq!(
            PatientId::parse("19121212-1213"),
            Err(IdentityError::Checksum {
                found: 3,
                expected: 2
            })
        );
        assert!(matches!(
            PatientId::parse("19990230-0000"),
            Err(IdentityError::BadDate(_))
        ));
        assert!(matches!(
            PatientId::parse("1912121212"),
            Err(IdentityError::Length(10))
        ));
        assert!(matches!(
            PatientId::parse("19121212-12a2"),
            Err(IdentityError::NotDigits)
        ));
    }

    #[test]
    fn samordningsnummer_has_day_plus_sixty() {
        let n = with_check_digit("19121272123").unwrap();
        let id = PatientId::parse(&n).unwrap();
        assert_eq!(id.kind(), PatientIdKind::Samordningsnummer);
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1912, 12, 12));
        // day 72 is fine (12 + 60) but day 92 is not (32 + 60)
        assert!(PatientId::parse(&with_check_digit("19121292123").unwrap()).is_err());
    }

    #[test]
    fn display_and_debug_mask_the_number() {
        let id = PatientId::parse("19121212-1212").unwrap();
        assert_eq!(id.to_string(), "1912****-**12");
        assert!(!format!("{id:?}").contains("191212121212"));
    }

    #[test]
    fn hsa_id_form() {
        assert!(HsaId::parse("SE2321000016-1A2B").is_ok());
        assert!(HsaId::parse("SE232100001-1A2B").is_err());
        assert!(HsaId::parse("XX2321000016-1A2B").is_err());
        assert!(HsaId::parse("SE2321000016-").is_err());
        assert!(HsaId::parse("SE2321000016-1A2B-").is_err());
    }

    #[test]
    fn hsa_id_held_inline_reads_back_as_written_and_sorts_as_text() {
        let longest = format!("SE2321000016-{}", "A".repeat(18));
        assert_eq!(
            HsaId::parse(&longest).map(|h| h.to_string()),
            Ok(longest.clone())
        );
        assert!(HsaId::parse(&format!("{longest}B")).is_err());
        let shortest = HsaId::parse(" SE2321000016-1 ").map(|h| h.to_string());
        assert_eq!(shortest, Ok("SE2321000016-1".to_owned()));
        // Text order, not byte-array order: a shorter id that is a prefix sorts first.
        let mut ids: Vec<HsaId> = ["SE2321000016-E10", "SE2321000016-E1", "SE2321000016-A9"]
            .iter()
            .filter_map(|t| HsaId::parse(t).ok())
            .collect();
        ids.sort();
        let texts: Vec<&str> = ids.iter().map(HsaId::as_str).collect();
        assert_eq!(
            texts,
            ["SE2321000016-A9", "SE2321000016-E1", "SE2321000016-E10"]
        );
        assert_eq!(std::mem::size_of::<Option<HsaId>>(), 32);
    }
}
