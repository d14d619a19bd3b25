//! Plan items moved to disk as they are made, so a region's plan is not held in memory.
//! Written while planning (`reconcile`); read back once by the report sink into `plan.json`.

use super::engine::{Action, PlanItem};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

/// Items per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActionCounts {
    /// Relations to create.
    pub create: u64,
    /// Relations to update.
    pub update: u64,
    /// Relations to end.
    pub end: u64,
    /// Referenced resources to create.
    pub create_reference: u64,
    /// Contacts typed by hand to adopt.
    pub adopt: u64,
    /// Contacts typed by hand to end.
    pub end_hand_typed: u64,
    /// Duties toward the patient to write (inform-the-patient Tasks, written information).
    pub duty: u64,
}

impl ActionCounts {
    pub(crate) fn add(&mut self, a: Action) {
        match a {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::End => self.end += 1,
            Action::CreateReference => self.create_reference += 1,
            Action::Adopt => self.adopt += 1,
            Action::EndHandTyped => self.end_hand_typed += 1,
            Action::Duty => self.duty += 1,
        }
    }
    pub(crate) fn of<'i>(items: impl IntoIterator<Item = &'i PlanItem>) -> Self {
        let mut c = ActionCounts::default();
        for i in items {
            c.add(i.action);
        }
        c
    }
    pub(crate) fn plus(self, o: ActionCounts) -> Self {
        ActionCounts {
            create: self.create + o.create,
            update: self.update + o.update,
            end: self.end + o.end,
            create_reference: self.create_reference + o.create_reference,
            adopt: self.adopt + o.adopt,
            end_hand_typed: self.end_hand_typed + o.end_hand_typed,
            duty: self.duty + o.duty,
        }
    }
}

/// Plan items as JSON lines, in their order, in an unnamed temporary file: it names register
/// rows, so it has no path another process could open, and the system removes it on drop.
pub(crate) struct SpilledItems {
    w: BufWriter<File>,
    pub(crate) counts: ActionCounts,
    pub(crate) len: u64,
}

impl SpilledItems {
    pub fn new() -> std::io::Result<Self> {
        Ok(SpilledItems {
            w: BufWriter::with_capacity(1 << 20, tempfile::tempfile()?),
            counts: ActionCounts::default(),
            len: 0,
        })
    }

    /// Moves the items out of memory, in order. The Vec keeps its capacity for the next batch.
    pub(crate) fn take(&mut self, items: &mut Vec<PlanItem>) -> std::io::Result<()> {
        for i in items.drain(..) {
            serde_json::to_writer(&mut self.w, &i)?;
            self.w.write_all(b"\n")?;
            self.counts.add(i.action);
            self.len += 1;
        }
        Ok(())
    }

    /// The items' JSON, one per line, from the first.
    pub(crate) fn lines(self) -> std::io::Result<impl Iterator<Item = std::io::Result<String>>> {
        let mut f = self.w.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start(0))?;
        Ok(BufReader::with_capacity(1 << 20, f).lines())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: i64, action: Action) -> PlanItem {
        PlanItem {
            seq,
            key: crate::sync::key::RelationKey::new(
                crate::sync::key::Carrier::CareTeam,
                &format!("r{seq}"),
            )
            .into(),
            action,
            resource_type: "CareTeam".into(),
            id: format!("id{seq}"),
            expected_version: None,
            body: serde_json::Value::Null,
            owned_hash: String::new(),
            register_row: None,
            reason: "test".into(),
            facts: None,
            before: None,
        }
    }

    #[test]
    fn items_come_back_in_order_and_are_counted() {
        let mut s = SpilledItems::new().expect("tempfile");
        let mut batch = vec![item(1, Action::Create), item(2, Action::CreateReference)];
        s.take(&mut batch).expect("write");
        assert!(batch.is_empty());
        let mut batch = vec![item(3, Action::End)];
        s.take(&mut batch).expect("write");
        assert_eq!(s.len, 3);
        assert_eq!(
            s.counts,
            ActionCounts {
                create: 1,
                update: 0,
                end: 1,
                create_reference: 1,
                ..Default::default()
            }
        );
        let seqs: Vec<i64> = s
            .lines()
            .expect("read")
            .map(|l| {
                let v: PlanItem = serde_json::from_str(&l.expect("line")).expect("json");
                v.seq
            })
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }
}
