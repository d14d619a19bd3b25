//! Source, accounting: every EHR resource read is either used or named as not used, with its
//! reason and where it came from. The readers judge; this adds up, so `read == used + not_used`.

use serde::Serialize;
use std::collections::BTreeMap;

/// The resource types the product reads. Others are counted per type as ignored.
pub const READ_TYPES: &[&str] = &[
    "Patient",
    "CareTeam",
    "Task",
    "CarePlan",
    "Consent",
    "PractitionerRole",
    "Practitioner",
    "Organization",
    "Flag",
    "Condition",
    "Observation",
    "EpisodeOfCare",
    "Encounter",
    "Communication",
];

/// How many not-used resources are listed one by one (the rest are counted by reason).
pub const MAX_LISTED: usize = 10_000;
/// Examples kept per reason.
const EXAMPLES: usize = 3;

/// A reader's judgement of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It became a contact, a fact, a directory entry or a patient's identity.
    Used,
    /// It did not; `reason` is the class ("no subject"), `detail` the specifics.
    NotUsed {
        /// What kind of reason: the key the counts group by.
        reason: String,
        /// The specifics of this resource (systems seen, codes found), if any.
        detail: Option<String>,
    },
    /// Not this reader's type: another reader judges it.
    NotJudged,
}

impl Verdict {
    /// Not used, for a reason with no specifics.
    pub fn not_used(reason: impl Into<String>) -> Verdict {
        Verdict::NotUsed {
            reason: reason.into(),
            detail: None,
        }
    }

    /// Not used, for a reason with specifics.
    pub fn not_used_because(reason: impl Into<String>, detail: impl Into<String>) -> Verdict {
        Verdict::NotUsed {
            reason: reason.into(),
            detail: Some(detail.into()),
        }
    }

    /// Of two readers' judgements of one resource, the one that counts: used by either wins.
    pub fn or(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Used, _) | (_, Verdict::Used) => Verdict::Used,
            (v @ Verdict::NotUsed { .. }, _) => v,
            (Verdict::NotJudged, v) => v,
        }
    }
}

/// Read, used and not used, for one resource type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TypeCount {
    /// Resources of the type that were parsed.
    pub read: u64,
    /// Of those, used.
    pub used: u64,
    /// Of those, not used (each with a reason).
    pub not_used: u64,
}

/// One resource the product read and did not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotUsed {
    /// `Type/id`.
    pub resource: String,
    /// `FILE:LINE` (NDJSON), `FILE entry[N]` (a Bundle), or the server's URL.
    pub source: String,
    /// Why, in full.
    pub reason: String,
}

/// How many resources were not used for one reason, with a few examples.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReasonCount {
    /// Resources not used for this reason.
    pub count: u64,
    /// The first few, as `Type/id (source)`.
    pub examples: Vec<String>,
}

/// What the EHR input held and what became of it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputAccount {
    /// Per type the product reads: read, used, not used.
    pub ehr_input: BTreeMap<String, TypeCount>,
    /// Per type the product does not read: how many were met.
    pub ehr_ignored: BTreeMap<String, u64>,
    /// Counts by "Type: reason", with examples.
    pub not_used_by_reason: BTreeMap<String, ReasonCount>,
    /// Each resource not used (the first `MAX_LISTED`).
    pub not_used: Vec<NotUsed>,
    /// Not used and not listed above (over `MAX_LISTED`).
    pub not_used_unlisted: u64,
    /// Shapes the reader recognised and mapped, by name: a vendor sees which of its shapes
    /// were met.
    pub shapes: BTreeMap<String, u64>,
}

impl InputAccount {
    /// Records one resource of `resource_type` read and judged.
    pub fn record(
        &mut self,
        resource_type: &str,
        resource: impl FnOnce() -> String,
        source: impl FnOnce() -> String,
        verdict: Verdict,
    ) {
        if !READ_TYPES.contains(&resource_type) {
            *self
                .ehr_ignored
                .entry(resource_type.to_owned())
                .or_default() += 1;
            return;
        }
        let count = self.ehr_input.entry(resource_type.to_owned()).or_default();
        count.read += 1;
        let (reason, detail) = match verdict {
            Verdict::Used => {
                count.used += 1;
                return;
            }
            Verdict::NotUsed { reason, detail } => (reason, detail),
            Verdict::NotJudged => (
                format!("no reader of the product uses a {resource_type} in this place"),
                None,
            ),
        };
        count.not_used += 1;
        let (resource, source) = (resource(), source());
        let by = self
            .not_used_by_reason
            .entry(format!("{resource_type}: {reason}"))
            .or_default();
        by.count += 1;
        if by.examples.len() < EXAMPLES {
            by.examples.push(format!("{resource} ({source})"));
        }
        if self.not_used.len() < MAX_LISTED {
            let reason = match detail {
                Some(d) => format!("{reason} ({d})"),
                None => reason,
            };
            self.not_used.push(NotUsed {
                resource,
                source,
                reason,
            });
        } else {
            self.not_used_unlisted += 1;
        }
    }

    /// Counts a recognised shape.
    pub fn shape(&mut self, name: &str) {
        *self.shapes.entry(name.to_owned()).or_default() += 1;
    }

    /// Adds another part's account to this one.
    pub fn absorb(&mut self, o: InputAccount) {
        for (t, c) in o.ehr_input {
            let e = self.ehr_input.entry(t).or_default();
            e.read += c.read;
            e.used += c.used;
            e.not_used += c.not_used;
        }
        for (t, n) in o.ehr_ignored {
            *self.ehr_ignored.entry(t).or_default() += n;
        }
        for (k, r) in o.not_used_by_reason {
            let e = self.not_used_by_reason.entry(k).or_default();
            e.count += r.count;
            let room = EXAMPLES.saturating_sub(e.examples.len());
            e.examples.extend(r.examples.into_iter().take(room));
        }
        for n in o.not_used {
            if self.not_used.len() < MAX_LISTED {
                self.not_used.push(n);
            } else {
                self.not_used_unlisted += 1;
            }
        }
        self.not_used_unlisted += o.not_used_unlisted;
        for (s, n) in o.shapes {
            *self.shapes.entry(s).or_default() += n;
        }
    }

    /// Resources of the types the product reads that were read, and of those used.
    pub fn totals(&self) -> (u64, u64) {
        self.ehr_input
            .values()
            .fold((0, 0), |(r, u), c| (r + c.read, u + c.used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_adds_up_and_reasons_group() {
        let mut a = InputAccount::default();
        let mut b = InputAccount::default();
        a.record(
            "CareTeam",
            || "CareTeam/1".into(),
            || "f:1".into(),
            Verdict::Used,
        );
        a.record(
            "CareTeam",
            || "CareTeam/2".into(),
            || "f:2".into(),
            Verdict::not_used_because("category is not a fixed contact", "x#primary"),
        );
        b.record(
            "CareTeam",
            || "CareTeam/3".into(),
            || "g:1".into(),
            Verdict::not_used_because("category is not a fixed contact", "x#other"),
        );
        b.record(
            "Immunization",
            || "Immunization/1".into(),
            || "g:2".into(),
            Verdict::NotJudged,
        );
        a.absorb(b);
        let ct = a.ehr_input["CareTeam"];
        assert_eq!((ct.read, ct.used, ct.not_used), (3, 1, 2));
        assert_eq!(a.ehr_ignored["Immunization"], 1);
        let r = &a.not_used_by_reason["CareTeam: category is not a fixed contact"];
        assert_eq!(r.count, 2);
        assert_eq!(
            a.not_used[0].reason,
            "category is not a fixed contact (x#primary)"
        );
        assert_eq!(a.totals(), (3, 1));
    }

    #[test]
    fn used_by_either_reader_is_used() {
        let no = Verdict::not_used("no subject");
        assert_eq!(no.clone().or(Verdict::Used), Verdict::Used);
        assert_eq!(Verdict::NotJudged.or(no.clone()), no);
        assert_eq!(no.clone().or(Verdict::NotJudged), no);
    }
}
