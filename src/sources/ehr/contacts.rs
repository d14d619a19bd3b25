//! Source, the EHR side's fixed contacts: read in any order, then held grouped by patient in
//! one list. The rules read a patient's run of it; the takeover index refers into it by position.

use crate::domain::identity::PatientPositions;
use crate::domain::{FixedContact, PatientId};
use std::sync::Arc;

/// A contact as read: the contact, and the resource it was read from (`CareTeam/id`).
pub(crate) type ReadContact = (FixedContact, Arc<str>);

/// The contacts of a partition, a patient's side by side in the order they were read. One list
/// and where each patient's run of it starts: a region's million patients each held a list of
/// their own before (its header in the table, its block on the heap, and the growth's
/// reallocations between), then a hash map of runs (26 MB at a million; 4 MB this way).
#[derive(Debug, Default)]
pub(crate) struct EhrContacts {
    /// Sorted by patient.
    all: Vec<ReadContact>,
    /// Where each patient's run in `all` starts, in the patients' order.
    starts: Vec<u32>,
    /// Each patient's place in `starts`.
    by_patient: PatientPositions,
}

/// The patient of the run starting at `starts[k]`.
fn run_patient<'a>(all: &'a [ReadContact], starts: &[u32], k: u32) -> &'a PatientId {
    &all[starts[k as usize] as usize].0.patient
}

impl EhrContacts {
    /// Groups contacts read in any order by patient, each patient's in the order read.
    pub(crate) fn grouped(mut all: Vec<ReadContact>) -> Self {
        use rayon::slice::ParallelSliceMut;
        // The order is found over (patient, position read) keys, a fifth of a contact's size,
        // on both cores, and the contacts are then moved there in place: sorting the contacts
        // themselves took a buffer of half of them (54 MB at a million) on one core. The
        // position keeps a patient's contacts in the order they were read.
        let mut keys: Vec<(PatientId, u32)> = all
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.patient.clone(), i as u32))
            .collect();
        keys.par_sort_unstable();
        let order: Vec<u32> = keys.into_iter().map(|(_, i)| i).collect();
        permute(&mut all, order);
        all.shrink_to_fit();
        let mut starts = Vec::new();
        let mut from = 0;
        for run in all.chunk_by(|a, b| a.0.patient == b.0.patient) {
            starts.push(from as u32);
            from += run.len();
        }
        starts.shrink_to_fit();
        let by_patient = PatientPositions::new(starts.len(), |k| run_patient(&all, &starts, k));
        EhrContacts {
            all,
            starts,
            by_patient,
        }
    }

    /// The run starting at `starts[k]`.
    fn run(&self, k: usize) -> &[ReadContact] {
        let from = self.starts[k] as usize;
        let to = self
            .starts
            .get(k + 1)
            .map_or(self.all.len(), |&e| e as usize);
        &self.all[from..to]
    }

    /// A patient's contacts (none if the EHR holds none for it).
    pub(crate) fn of(&self, patient: &PatientId) -> Option<&[ReadContact]> {
        let k = self
            .by_patient
            .find(patient, |k| Some(run_patient(&self.all, &self.starts, k)))?;
        Some(self.run(k as usize))
    }

    /// The patients with a contact, in order.
    pub(crate) fn patients(&self) -> impl Iterator<Item = &PatientId> {
        (0..self.starts.len() as u32).map(|k| run_patient(&self.all, &self.starts, k))
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

/// Moves `v[order[i]]` to `v[i]` for every `i`, in place, cycle by cycle.
fn permute<T>(v: &mut [T], mut order: Vec<u32>) {
    for start in 0..v.len() {
        let mut at = start;
        // Each cycle is walked once: a place done is marked by pointing at itself.
        while order[at] as usize != at {
            let from = order[at] as usize;
            order[at] = at as u32;
            if from == start {
                break;
            }
            v.swap(at, from);
            at = from;
        }
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
    fn a_permutation_moves_every_item_once_into_its_place() {
        // Cycles of every length, fixed points, and the identity.
        for order in [
            vec![0u32, 1, 2, 3, 4, 5],
            vec![1, 2, 0, 4, 3, 5],
            vec![5, 4, 3, 2, 1, 0],
            vec![3, 0, 5, 1, 2, 4],
        ] {
            let mut v: Vec<u32> = (0..6).map(|i| i * 10).collect();
            super::permute(&mut v, order.clone());
            let want: Vec<u32> = order.iter().map(|&i| i * 10).collect();
            assert_eq!(v, want, "{order:?}");
        }
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
        assert!(c.of(&PatientId::parse("201001012382").unwrap()).is_none());
        let patients: Vec<String> = c.patients().map(|p| p.expose()).collect();
        assert_eq!(patients, [a, b], "in order");
        assert!(EhrContacts::grouped(Vec::new())
            .of(&PatientId::parse(a).unwrap())
            .is_none());
    }
}
