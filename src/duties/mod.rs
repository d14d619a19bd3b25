//! Duties toward the patient, derived from the contacts (domain in, domain out): the written
//! information of Örebro §7.4 and the tasks to tell the patient of a change; sinks write them.

use crate::domain::{ContactKind, FixedContact, HsaId, PatientId, RowId};
use crate::mapping::terminology::{ids, Terminology};
use chrono::NaiveDate;

const FLK: &str = "Fast läkarkontakt";

/// One fixed contact as the patient reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContactLine {
    /// What the contact is, in the patient's words ("Fast vårdkontakt", "Kontaktsjuksköterska").
    pub role: String,
    /// The FVK who coordinates the patient's care (Örebro §7.5).
    pub coordinating: bool,
    /// The person, when named.
    pub name: Option<String>,
    /// The person's profession, as the region's CodeSystem names it.
    pub profession: Option<String>,
    /// The unit to reach them through.
    pub unit_name: Option<String>,
    /// The unit's HSA-id.
    pub unit: HsaId,
    /// Since when.
    pub since: NaiveDate,
    /// The register row (for the CareTeam it stands for).
    pub row: RowId,
}

/// The written information of Örebro §7.4 for one patient: every fixed contact in force, the
/// coordinating FVK marked, with the unit to reach each one through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WrittenInformation {
    /// Whose.
    #[serde(skip)]
    pub patient: PatientId,
    /// The day it states.
    pub as_of: NaiveDate,
    /// FLK first, then the coordinating FVK, other FVKs, treating roles.
    pub lines: Vec<ContactLine>,
}

impl WrittenInformation {
    /// The patient's contacts in force on `as_of`; None when there is none to tell of.
    pub fn of(
        patient: &PatientId,
        contacts: &[&FixedContact],
        as_of: NaiveDate,
        t: &Terminology,
    ) -> Option<Self> {
        let mut lines: Vec<(u8, ContactLine)> = contacts
            .iter()
            .filter(|c| c.is_active_on(as_of))
            .map(|c| {
                let (order, role, coordinating) = match c.kind {
                    ContactKind::Flk => (0, FLK.to_owned(), false),
                    ContactKind::Fvk { coordinating, .. } => (
                        if coordinating { 1 } else { 2 },
                        "Fast vårdkontakt".to_owned(),
                        coordinating,
                    ),
                    ContactKind::TreatingRole(r) => {
                        let display = if r.is_listed() {
                            t.cs(ids::BEHANDLANDE_ROLL).display(r.code())
                        } else {
                            None
                        };
                        (3, display.unwrap_or(r.code()).to_owned(), false)
                    }
                };
                let staff = c.staff();
                let profession = staff.and_then(|s| s.profession).map(|p| {
                    let d = if p.is_listed() {
                        t.cs(ids::YRKE).display(p.code())
                    } else {
                        None
                    };
                    d.unwrap_or(p.code()).to_owned()
                });
                let line = ContactLine {
                    role,
                    coordinating,
                    name: staff.and_then(|s| s.name.clone()),
                    profession,
                    unit_name: c.unit.name.clone(),
                    unit: c.unit.hsa.clone(),
                    since: c.period.start(),
                    row: c.row_id.clone(),
                };
                (order, line)
            })
            .collect();
        if lines.is_empty() {
            return None;
        }
        lines.sort_by(|a, b| (a.0, &a.1.role, a.1.since).cmp(&(b.0, &b.1.role, b.1.since)));
        Some(WrittenInformation {
            patient: patient.clone(),
            as_of,
            lines: lines.into_iter().map(|(_, l)| l).collect(),
        })
    }

    /// A digest of what the information says (not when): the same contacts give the same
    /// document, so a rerun writes nothing new.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.patient.expose().as_bytes());
        for l in &self.lines {
            h.update(
                format!(
                    "{}|{}|{:?}|{:?}|{:?}|{}|{}|{};",
                    l.role,
                    l.coordinating,
                    l.name,
                    l.profession,
                    l.unit_name,
                    l.unit,
                    l.since,
                    l.row
                )
                .as_bytes(),
            );
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The unit that speaks for the whole (the document's author): the coordinating FVK's,
    /// else the FLK's, else the first contact's.
    pub fn author_unit(&self) -> Option<&HsaId> {
        self.lines
            .iter()
            .find(|l| l.coordinating)
            .or_else(|| self.lines.iter().find(|l| l.role == FLK))
            .or(self.lines.first())
            .map(|l| &l.unit)
    }

    /// The page as plain-language Swedish XHTML (a `div`, valid as FHIR narrative).
    pub fn xhtml(&self) -> String {
        let e = escape;
        let mut s = String::from("<div xmlns=\"http://www.w3.org/1999/xhtml\">");
        s.push_str("<h1>Dina fasta kontakter i vården</h1>");
        s.push_str(&format!(
            "<p>Personnummer: {}. Uppgifterna gäller {}.</p>",
            e(&self.patient.expose_hyphenated()),
            self.as_of
        ));
        s.push_str("<p>Här är de personer som har ett särskilt ansvar för din vård. Du kan nå dem genom mottagningen som står vid namnet. Spara gärna brevet.</p>");
        s.push_str("<ul>");
        for l in &self.lines {
            let who = match (&l.name, &l.profession) {
                (Some(n), Some(p)) => format!("{}, {}", e(n), e(&p.to_lowercase())),
                (Some(n), None) => e(n),
                (None, Some(p)) => e(&p.to_lowercase()),
                (None, None) => "namn saknas".into(),
            };
            let unit = l
                .unit_name
                .as_deref()
                .map(e)
                .unwrap_or_else(|| e(l.unit.as_str()));
            let coordinating = if l.coordinating {
                " Hen samordnar din vård och är den du i första hand vänder dig till."
            } else {
                ""
            };
            s.push_str(&format!(
                "<li><b>{}:</b> {who}. Nås via {unit} (HSA-id {}). Sedan {}.{coordinating}</li>",
                e(&l.role),
                e(l.unit.as_str()),
                l.since
            ));
        }
        s.push_str("</ul>");
        s.push_str("<p>Du har rätt att få en fast vårdkontakt om du vill, och att välja fast läkarkontakt på din vårdcentral. När en fast vårdkontakt slutar eller byts ut ska du få veta det. Stämmer något inte? Kontakta mottagningen.</p>");
        s.push_str("</div>");
        s
    }
}

/// The written information of every patient with a contact in force in a register export, as
/// Compositions (for files: their references are the product's deterministic ids). Holds the
/// export's contacts in force in memory, grouped by patient; rows the reader rejects are left
/// out (the run that reads the export reports them).
pub fn from_register(
    path: &std::path::Path,
    m: &crate::mapping::Mappings,
    as_of: NaiveDate,
) -> Result<Vec<serde_json::Value>, crate::sources::register::RegisterError> {
    use crate::sources::register::{RegisterItem, RegisterReader};
    use std::collections::{BTreeMap, HashMap};
    let mut by_patient: BTreeMap<PatientId, Vec<FixedContact>> = BTreeMap::new();
    for item in RegisterReader::open(path, &m.register, &m.terminology)? {
        if let RegisterItem::Contact { contact, .. } = item? {
            if contact.is_active_on(as_of) {
                by_patient
                    .entry(contact.patient.clone())
                    .or_default()
                    .push(contact);
            }
        }
    }
    let out = crate::fhir::outbound::Outbound::new(m);
    let mut docs = Vec::new();
    for (p, contacts) in &by_patient {
        let refs: Vec<&FixedContact> = contacts.iter().collect();
        let Some(info) = WrittenInformation::of(p, &refs, as_of, &m.terminology) else {
            continue;
        };
        let bodies: HashMap<RowId, serde_json::Value> = contacts
            .iter()
            .filter_map(|c| {
                let r = crate::fhir::model::to_value(out.contact(c).relation).ok()?;
                Some((c.row_id.clone(), r))
            })
            .collect();
        docs.extend(crate::fhir::duties::composition(m, &info, &bodies));
    }
    Ok(docs)
}

/// XHTML text escaping.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What happened to an FVK that the patient is to be told of (Örebro §7.4: "informera
/// patienten när fast vårdkontakt avslutas eller ändras").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FvkChange {
    /// The FVK ended.
    Ended,
    /// Another person, unit or coordinating responsibility.
    Changed,
}

impl FvkChange {
    /// The task's text, to the unit that owns it.
    pub fn task_text(self) -> &'static str {
        match self {
            FvkChange::Ended => "Informera patienten om att den fasta vårdkontakten har avslutats (Örebro §7.4). Uppgiften skapades av fastkontakt när befolkningsregistret avslutade kontakten.",
            FvkChange::Changed => "Informera patienten om att den fasta vårdkontakten har ändrats (Örebro §7.4). Uppgiften skapades av fastkontakt när befolkningsregistret ändrade kontakten.",
        }
    }
    /// As the task's identifier spells it.
    pub fn code(self) -> &'static str {
        match self {
            FvkChange::Ended => "avslutad",
            FvkChange::Changed => "andrad",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WrittenInformation;
    use crate::checks::rules::testkit::{gp_flk, nurse_fvk, row, rows, AS_OF};
    use crate::mapping::Mappings;

    fn terminology() -> crate::mapping::Terminology {
        Mappings::load(&crate::mapping::default_dir(), None, None)
            .expect("mappings")
            .terminology
    }

    #[test]
    fn the_written_information_lists_the_contacts_in_force_flk_first_coordinator_marked() {
        let t = terminology();
        let coordinating = row(
            "c",
            "FVK",
            "",
            "J",
            "SE2321000016-N002",
            "Sjuksköterska",
            "J",
            "",
            "SE2321000016-S0001",
            "Specialistmottagning",
        );
        let ended =
            nurse_fvk("e").replace(";Aktiv;2024-01-01;;", ";Avslutad;2024-01-01;2025-01-01;");
        let contacts = rows(&[&nurse_fvk("a"), &coordinating, &gp_flk("b"), &ended]);
        let refs: Vec<_> = contacts.iter().collect();
        let as_of = AS_OF.parse().expect("date");
        let info = WrittenInformation::of(&contacts[0].patient, &refs, as_of, &t).expect("some");
        let roles: Vec<(&str, bool)> = info
            .lines
            .iter()
            .map(|l| (l.role.as_str(), l.coordinating))
            .collect();
        // The ended FVK is not told of; the FLK first, then the coordinating FVK.
        assert_eq!(
            roles,
            [
                ("Fast läkarkontakt", false),
                ("Fast vårdkontakt", true),
                ("Fast vårdkontakt", false)
            ]
        );
        assert_eq!(
            info.author_unit().map(|u| u.as_str()),
            Some("SE2321000016-S0001")
        );
        let page = info.xhtml();
        assert!(page.contains("samordnar din vård"), "{page}");
        assert!(page.starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\">"));
        // The same contacts say the same: a rerun writes no new document.
        assert_eq!(
            info.digest(),
            WrittenInformation::of(&contacts[0].patient, &refs, as_of, &t)
                .expect("some")
                .digest()
        );
        // Nothing in force, nothing to write.
        let only_ended = rows(&[&ended]);
        let refs: Vec<_> = only_ended.iter().collect();
        assert!(WrittenInformation::of(&only_ended[0].patient, &refs, as_of, &t).is_none());
    }

    #[test]
    fn names_are_escaped_in_the_page() {
        let t = terminology();
        let odd = nurse_fvk("a").replace(";Namn;", ";<b>Eva</b> & Co;");
        let c = rows(&[&odd]);
        let refs: Vec<_> = c.iter().collect();
        let info = WrittenInformation::of(&c[0].patient, &refs, AS_OF.parse().expect("d"), &t)
            .expect("some");
        let page = info.xhtml();
        assert!(page.contains("&lt;b&gt;Eva&lt;/b&gt; &amp; Co"), "{page}");
        assert!(!page.contains("<b>Eva"));
    }
}
