//! Source, the EHR side's fixed contacts: read in any order, then held grouped by patient in
//! one list. The rules read a patient's run of it; the takeover index refers into it by position.

use crate::domain::{FixedContact, PatientId};
use std::sync::Arc;

/// A contact as read: the contact, and the resource it was read from (`CareTeam/id`).
pub(crate) type ReadContact = (FixedContact, Arc<str>);

/// The contacts of a partition, a patient's side by side in the order they were read. One list
/// and one table of runs: a region's million patients each held a list of their own before
/// (its header in the table, its block on the heap, and the growth's reallocations between).
#[derive(Debug, Default)]
pub(crate) struct EhrContacts {
    all: Vec<ReadContact>,
    /// Each patient's run in `all`: where it starts, and how long it is.
    runs: foldhash::HashMap<PatientId, (u32, u32)>,
}

impl EhrContacts {
    /// Groups contacts read in any order by patient, each patient's in the order read.
    pub(crate) fn grouped(mut all: Vec<ReadContact>) -> Self {
        // Stable: a patient's contacts keep the order they were read in.
        all.sort_by(|a, b| a.0.patient.cmp(&b.0.patient));
        all.shrink_to_fit();
        let mut runs = foldhash::HashMap::default();
        let mut from = 0;
        while from < all.len() {
            let patient = &all[from].0.patient;
            let n = all[from..]
                .iter()
                .take_while(|(c, _)| c.patient == *patient)
                .count();
            runs.insert(patient.clone(), (from as u32, n as u32));
            from += n;
        }
        runs.shrink_to_fit();
        EhrContacts { all, runs }
    }

    /// A patient's contacts (none if the EHR holds none for it).
    pub(crate) fn of(&self, patient: &PatientId) -> Option<&[ReadContact]> {
        self.runs
            .get(patient)
            .map(|&(from, n)| &self.all[from as usize..(from + n) as usize])
    }

    /// The patients with a contact.
    pub(crate) fn patients(&self) -> impl Iterator<Item = &PatientId> {
        self.runs.keys()
    }

    /// Every contact, grouped by patient.
    pub(crate) fn all(&self) -> &[ReadContact] {
        &self.all
    }

    /// The contact at a position of `all`.
    pub(crate) fn at(&self, i: u32) -> &ReadContact {
        &self.all[i as usize]
    }
}

/// The contacts, shared by the rules and the takeover index built over them.
pub(crate) type SharedContacts = Arc<EhrContacts>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CareUnit, ContactKind, ContactStatus, HsaId, Period, RowId, Staff};

    fn contact(patient: &str, row: &str) -> ReadContact {
        let c = FixedContact::new(
            RowId::new(row).unwrap(),
            PatientId::parse(patient).unwrap(),
            ContactKind::Flk,
            ContactStatus::Active,
            Period::new(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), None).unwrap(),
            Some(Arc::new(Staff {
                hsa: HsaId::parse("SE2321000016-1A2B").unwrap(),
                name: None,
                profession: None,
                licence: crate::domain::Licence::Unknown,
                specialties: Vec::new(),
            })),
            Arc::new(CareUnit {
                hsa: HsaId::parse("SE2321000016-9U9U").unwrap(),
                name: None,
                kind: None,
            }),
            None,
            None,
        )
        .unwrap();
        (c, format!("CareTeam/{row}").into())
    }

    #[test]
    fn a_patients_contacts_come_together_in_the_order_read() {
        let (a, b) = ("191212121212", "199001012385");
        let read = vec![
            contact(b, "b1"),
            contact(a, "a1"),
            contact(b, "b2"),
            contact(a, "a2"),
            contact(b, "b3"),
        ];
        let c = EhrContacts::grouped(read);
        let rows = |p: &str| -> Vec<String> {
            c.of(&PatientId::parse(p).unwrap())
                .unwrap()
                .iter()
                .map(|(c, _)| c.row_id.as_str().to_owned())
                .collect()
        };
        assert_eq!(rows(a), ["a1", "a2"]);
        assert_eq!(rows(b), ["b1", "b2", "b3"]);
        assert_eq!(c.all().len(), 5);
        assert_eq!(c.patients().count(), 2);
        assert!(c.of(&PatientId::parse("190101010106").unwrap()).is_none());
    }
}
