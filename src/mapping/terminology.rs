//! The code systems, value sets and concept maps under `mappings/fhir/`, loaded as data.
//! Every coded value the product reads or writes goes through here; the source holds no codes
//! but the project CodeSystems' own (checked against these files when they load).

use crate::domain::contact::{ContactStatus, TreatingRole};
use crate::domain::plan::{PlanKind, Principal};
use crate::domain::staff::{Profession, SpecialtyCode};
use crate::domain::unit::UnitKind;
use serde::Deserialize;
// Looked up for every contact read (professions, specialties, roles): a fast hasher.
use foldhash::{HashMap, HashMapExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TerminologyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a CodeSystem, ValueSet or ConceptMap this product reads: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{dir}: no {kind} with id '{id}' (the product needs it)")]
    Missing {
        dir: PathBuf,
        kind: &'static str,
        id: &'static str,
    },
    #[error("CodeSystem '{system}' lacks code '{code}', which the product uses")]
    MissingCode { system: String, code: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResource {
    resource_type: String,
    id: String,
    url: String,
    #[serde(default)]
    concept: Vec<RawConcept>,
    #[serde(default)]
    group: Vec<RawGroup>,
}
#[derive(Deserialize)]
struct RawConcept {
    code: String,
    display: Option<String>,
    #[serde(default)]
    property: Vec<RawProperty>,
}
/// A concept's property: only the value types the project CodeSystems use.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProperty {
    code: String,
    value_boolean: Option<bool>,
    value_code: Option<String>,
}
#[derive(Deserialize)]
struct RawGroup {
    #[serde(default)]
    source: String,
    target: String,
    element: Vec<RawElement>,
}
#[derive(Deserialize)]
struct RawElement {
    code: String,
    #[serde(default)]
    target: Vec<RawTarget>,
}
#[derive(Deserialize)]
struct RawTarget {
    code: String,
    display: Option<String>,
    #[serde(default)]
    equivalence: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CodeSystem {
    pub(crate) url: String,
    displays: HashMap<String, Option<String>>,
    /// The codes in file order (a generator and a listing want a stable order).
    order: Vec<String>,
    /// (code, property) → value: a boolean as `true`/`false`, a code as itself.
    /// A code's properties (name, value): a few per code, looked up without allocating.
    properties: HashMap<String, Vec<(String, String)>>,
}

impl CodeSystem {
    pub(crate) fn contains(&self, code: &str) -> bool {
        self.displays.contains_key(code)
    }
    pub(crate) fn display(&self, code: &str) -> Option<&str> {
        self.displays.get(code).and_then(|d| d.as_deref())
    }
    /// The codes in the file's order.
    pub(crate) fn codes(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }
    /// A concept's property value.
    pub(crate) fn property(&self, code: &str, property: &str) -> Option<&str> {
        self.properties
            .get(code)?
            .iter()
            .rev() // a property given twice: the last, as the file's reader always took
            .find(|(name, _)| name == property)
            .map(|(_, v)| v.as_str())
    }
    /// The code a word names: the code itself, or the code whose display it is, compared
    /// without regard to case (a register that writes "Dietist" names the code `dietist`).
    pub(crate) fn code_for_word(&self, word: &str) -> Option<&str> {
        let w = word.trim();
        self.order
            .iter()
            .find(|c| {
                c.eq_ignore_ascii_case(w)
                    || self
                        .display(c)
                        .is_some_and(|d| d.to_lowercase() == w.to_lowercase())
            })
            .map(String::as_str)
    }
}

/// A coding as the product writes it: system, code, display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coding {
    pub(crate) system: String,
    pub(crate) code: String,
    pub(crate) display: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ConceptMap {
    /// The source system: for a register map, the register's own code system for the column,
    /// where a code the product's CodeSystem lacks is written as the register had it.
    pub(crate) source: String,
    pub(crate) target: String,
    forward: HashMap<String, (String, Option<String>)>,
    reverse: HashMap<String, String>,
    /// Target codes whose mapping is `equivalent` or `equal`: read backwards without doubt.
    exact: std::collections::HashSet<String>,
}

impl ConceptMap {
    pub(crate) fn translate(&self, code: &str) -> Option<&str> {
        self.forward.get(code).map(|(c, _)| c.as_str())
    }
    pub(crate) fn target_coding(&self, code: &str) -> Option<Coding> {
        self.forward.get(code).map(|(c, d)| Coding {
            system: self.target.clone(),
            code: c.clone(),
            display: d.clone(),
        })
    }
    /// Target code back to the source code (first source that maps to it).
    pub(crate) fn reverse(&self, target_code: &str) -> Option<&str> {
        self.reverse.get(target_code).map(String::as_str)
    }
    /// The source code of a target code the map declares `equivalent` or `equal`; a wider
    /// target (a SNOMED "Registered nurse" for a named treating role) is not read backwards.
    pub(crate) fn reverse_exact(&self, target_code: &str) -> Option<&str> {
        self.exact
            .contains(target_code)
            .then(|| self.reverse(target_code))
            .flatten()
    }
    /// Source codes in a stable order, for messages that list what is accepted.
    pub(crate) fn source_codes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.forward.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// The `yrke` property that marks health-care staff (Örebro §7.2), a boolean.
pub(crate) const HEALTH_CARE_STAFF: &str = "halso-och-sjukvardspersonal";
/// The `behandlande-roll` property naming the role's profession, a `yrke` code.
pub(crate) const ROLE_PROFESSION: &str = "yrke";

/// Ids of the conformance resources the product cannot work without.
pub(crate) mod ids {
    pub(crate) const KV_TYP_AV_FAST_KONTAKT: &str = "typ-av-fast-kontakt-cs";
    pub(crate) const TYP_AV_CARETEAM: &str = "typ-av-careteam-cs";
    pub(crate) const KONTAKTTYP: &str = "kontakttyp";
    pub(crate) const CARETEAM_KATEGORI: &str = "careteam-kategori";
    pub(crate) const BEHANDLANDE_ROLL: &str = "behandlande-roll";
    pub(crate) const KONTAKTSTATUS: &str = "kontaktstatus";
    pub(crate) const YRKE: &str = "yrke";
    pub(crate) const SPECIALITET: &str = "specialitet";
    pub(crate) const ENHETSTYP: &str = "enhetstyp";
    pub(crate) const GRUND: &str = "fast-kontakt-grund";
    pub(crate) const AVSLUTSORSAK: &str = "fast-kontakt-avslutsorsak";
    pub(crate) const ERBJUDANDE: &str = "erbjudande";
    pub(crate) const PLANTYP: &str = "plantyp";
    pub(crate) const PLANAKTIVITET: &str = "planaktivitet";
    pub(crate) const HUVUDMAN: &str = "huvudman-typ";
    pub(crate) const KOMMUNAL_VARDFORM: &str = "kommunal-vardform";
    pub(crate) const PATIENTGRUPP: &str = "patientgrupp";
    pub(crate) const PATIENTKONTEXT: &str = "patientkontext";
    pub(crate) const PATIENTUPPGIFT: &str = "patientuppgift";
    pub(crate) const CODE_SYSTEMS: &[&str] = &[
        KV_TYP_AV_FAST_KONTAKT,
        TYP_AV_CARETEAM,
        KONTAKTTYP,
        CARETEAM_KATEGORI,
        BEHANDLANDE_ROLL,
        KONTAKTSTATUS,
        YRKE,
        SPECIALITET,
        ENHETSTYP,
        GRUND,
        AVSLUTSORSAK,
        ERBJUDANDE,
        PLANTYP,
        PLANAKTIVITET,
        HUVUDMAN,
        KOMMUNAL_VARDFORM,
        PATIENTGRUPP,
        PATIENTKONTEXT,
        PATIENTUPPGIFT,
    ];
    pub(crate) const MAP_KV: &str = "kontakttyp-till-kv-typ-av-fast-kontakt";
    pub(crate) const MAP_KONTAKTTYP_SNOMED: &str = "kontakttyp-till-snomed";
    pub(crate) const MAP_ROLL_SNOMED: &str = "behandlande-roll-till-snomed";
    pub(crate) const MAP_YRKE_SNOMED: &str = "yrke-till-snomed";
    pub(crate) const MAP_YRKE_HOSP: &str = "yrke-till-hosp-legitimation";
    pub(crate) const MAP_SPECIALITET_SNOMED: &str = "specialitet-till-snomed";
    pub(crate) const CONCEPT_MAPS: &[&str] = &[
        MAP_KV,
        MAP_KONTAKTTYP_SNOMED,
        MAP_ROLL_SNOMED,
        MAP_YRKE_SNOMED,
        MAP_YRKE_HOSP,
        MAP_SPECIALITET_SNOMED,
    ];
}

/// All loaded conformance resources.
#[derive(Debug, Clone)]
pub struct Terminology {
    code_systems: HashMap<String, CodeSystem>,
    concept_maps: HashMap<String, ConceptMap>,
    cs_url_by_id: HashMap<String, String>,
    cm_url_by_id: HashMap<String, String>,
}

impl Terminology {
    /// Reads every `*.json` in `dir` and checks that what the product needs is there.
    pub(crate) fn load(dir: &Path) -> Result<Self, TerminologyError> {
        let mut t = Terminology {
            code_systems: HashMap::new(),
            concept_maps: HashMap::new(),
            cs_url_by_id: HashMap::new(),
            cm_url_by_id: HashMap::new(),
        };
        let entries = std::fs::read_dir(dir).map_err(|source| TerminologyError::Io {
            path: dir.into(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            // The folder is also a FHIR package: its manifest is not a resource.
            .filter(|p| p.file_name().is_some_and(|n| n != "package.json"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).map_err(|source| TerminologyError::Io {
                path: path.clone(),
                source,
            })?;
            let raw: RawResource =
                serde_json::from_slice(&bytes).map_err(|source| TerminologyError::Parse {
                    path: path.clone(),
                    source,
                })?;
            match raw.resource_type.as_str() {
                "CodeSystem" => {
                    let mut displays = HashMap::new();
                    let mut order = Vec::new();
                    let mut properties = HashMap::new();
                    for c in raw.concept {
                        for p in c.property {
                            let v = p.value_boolean.map(|b| b.to_string()).or(p.value_code);
                            if let Some(v) = v {
                                properties
                                    .entry(c.code.clone())
                                    .or_insert_with(Vec::new)
                                    .push((p.code, v));
                            }
                        }
                        order.push(c.code.clone());
                        displays.insert(c.code, c.display);
                    }
                    t.cs_url_by_id.insert(raw.id.clone(), raw.url.clone());
                    t.code_systems.insert(
                        raw.url.clone(),
                        CodeSystem {
                            url: raw.url,
                            displays,
                            order,
                            properties,
                        },
                    );
                }
                "ConceptMap" => {
                    let mut forward = HashMap::new();
                    let mut reverse = HashMap::new();
                    let mut target = String::new();
                    let mut source = String::new();
                    let mut exact = std::collections::HashSet::new();
                    for g in raw.group {
                        target = g.target;
                        source = g.source;
                        for e in g.element {
                            if let Some(tgt) = e.target.into_iter().next() {
                                if matches!(
                                    tgt.equivalence.as_deref(),
                                    Some("equivalent" | "equal")
                                ) {
                                    exact.insert(tgt.code.clone());
                                }
                                reverse
                                    .entry(tgt.code.clone())
                                    .or_insert_with(|| e.code.clone());
                                forward.insert(e.code, (tgt.code, tgt.display));
                            }
                        }
                    }
                    t.cm_url_by_id.insert(raw.id.clone(), raw.url.clone());
                    t.concept_maps.insert(
                        raw.url.clone(),
                        ConceptMap {
                            source,
                            target,
                            exact,
                            forward,
                            reverse,
                        },
                    );
                }
                _ => {} // ValueSets are shipped for other tools; the product enforces them in code paths.
            }
        }
        for id in ids::CODE_SYSTEMS {
            if !t.cs_url_by_id.contains_key(*id) {
                return Err(TerminologyError::Missing {
                    dir: dir.into(),
                    kind: "CodeSystem",
                    id,
                });
            }
        }
        for id in ids::CONCEPT_MAPS {
            if !t.cm_url_by_id.contains_key(*id) {
                return Err(TerminologyError::Missing {
                    dir: dir.into(),
                    kind: "ConceptMap",
                    id,
                });
            }
        }
        t.check_enum_codes()?;
        Ok(t)
    }

    /// The domain enums name project codes; each must exist in its CodeSystem file.
    fn check_enum_codes(&self) -> Result<(), TerminologyError> {
        let mut need: Vec<(&str, &str)> = Vec::new();
        need.extend(
            ContactStatus::ALL
                .iter()
                .map(|r| (ids::KONTAKTSTATUS, r.code())),
        );
        need.push((ids::YRKE, Profession::PHYSICIAN));
        need.extend(UnitKind::ALL.iter().map(|r| (ids::ENHETSTYP, r.code())));
        need.extend(PlanKind::ALL.iter().map(|r| (ids::PLANTYP, r.code())));
        need.extend(Principal::ALL.iter().map(|r| (ids::HUVUDMAN, r.code())));
        for k in ["flk", "fvk", "fvk-samordningsansvar", "behandlande-roll"] {
            need.push((ids::KONTAKTTYP, k));
        }
        for (cs, code) in need {
            let system = self.cs(cs);
            if !system.contains(code) {
                return Err(TerminologyError::MissingCode {
                    system: system.url.clone(),
                    code: code.into(),
                });
            }
        }
        Ok(())
    }

    /// A CodeSystem by id. Only ids in `ids::CODE_SYSTEMS` are passed here, and `load` checked
    /// they exist, so a miss is a programming error.
    pub(crate) fn cs(&self, id: &str) -> &CodeSystem {
        let url = self
            .cs_url_by_id
            .get(id)
            .unwrap_or_else(|| panic!("CodeSystem {id} not loaded"));
        &self.code_systems[url]
    }
    pub(crate) fn cs_by_id(&self, id: &str) -> Option<&CodeSystem> {
        self.cs_url_by_id
            .get(id)
            .and_then(|u| self.code_systems.get(u))
    }
    /// A ConceptMap by id (see `cs`).
    pub(crate) fn map(&self, id: &str) -> &ConceptMap {
        let url = self
            .cm_url_by_id
            .get(id)
            .unwrap_or_else(|| panic!("ConceptMap {id} not loaded"));
        &self.concept_maps[url]
    }
    pub(crate) fn cs_by_url(&self, url: &str) -> Option<&CodeSystem> {
        self.code_systems.get(url)
    }
    pub(crate) fn map_by_url(&self, url: &str) -> Option<&ConceptMap> {
        self.concept_maps.get(url)
    }
    pub(crate) fn url(&self, cs_id: &str) -> &str {
        &self.cs(cs_id).url
    }

    /// Coding of `code` in the CodeSystem with id `cs_id`, display from the file.
    pub(crate) fn coding(&self, cs_id: &str, code: &str) -> Coding {
        let cs = self.cs(cs_id);
        Coding {
            system: cs.url.clone(),
            code: code.to_owned(),
            display: cs.display(code).map(str::to_owned),
        }
    }

    /// A profession the CodeSystem `yrke` has.
    pub(crate) fn profession(&self, code: &str) -> Option<Profession> {
        let cs = self.cs(ids::YRKE);
        cs.contains(code).then(|| {
            let hc = cs.property(code, HEALTH_CARE_STAFF).map(|v| v == "true");
            Profession::listed(code, hc)
        })
    }
    /// A treating role the CodeSystem `behandlande-roll` has.
    pub(crate) fn treating_role(&self, code: &str) -> Option<TreatingRole> {
        let cs = self.cs(ids::BEHANDLANDE_ROLL);
        cs.contains(code)
            .then(|| TreatingRole::listed(code, cs.property(code, ROLE_PROFESSION)))
    }
    /// Every listed treating role, in the file's order.
    pub(crate) fn treating_roles(&self) -> Vec<TreatingRole> {
        self.cs(ids::BEHANDLANDE_ROLL)
            .codes()
            .filter_map(|c| self.treating_role(c))
            .collect()
    }
    /// A source's word for a profession: through the source's ConceptMap (`map_url`), else a
    /// code or display of the CodeSystem itself (a region adds a profession by editing that one
    /// file), else the word kept as written, unlisted.
    pub(crate) fn profession_of_word(&self, map_url: &str, word: &str) -> Profession {
        self.map_by_url(map_url)
            .and_then(|m| m.translate(word))
            .or_else(|| self.cs(ids::YRKE).code_for_word(word))
            .and_then(|c| self.profession(c))
            .unwrap_or_else(|| Profession::unlisted(word.trim()))
    }
    /// As `profession_of_word`, for a treating role.
    pub(crate) fn treating_role_of_word(&self, map_url: &str, word: &str) -> TreatingRole {
        self.map_by_url(map_url)
            .and_then(|m| m.translate(word))
            .or_else(|| self.cs(ids::BEHANDLANDE_ROLL).code_for_word(word))
            .and_then(|c| self.treating_role(c))
            .unwrap_or_else(|| TreatingRole::unlisted(word.trim()))
    }

    /// A specialty code, if the `specialitet` CodeSystem has it.
    pub(crate) fn specialty(&self, code: &str) -> Option<SpecialtyCode> {
        self.cs(ids::SPECIALITET)
            .contains(code)
            .then(|| SpecialtyCode::new_unchecked(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_mappings_load_and_translate() {
        let t = Terminology::load(&crate::mapping::default_dir().join("fhir")).unwrap();
        assert_eq!(
            t.map(ids::MAP_KV).translate("fvk-samordningsansvar"),
            Some("4")
        );
        assert_eq!(t.map(ids::MAP_KV).reverse("2"), Some("flk"));
        assert_eq!(
            t.cs(ids::KV_TYP_AV_FAST_KONTAKT).display("1"),
            Some("fast vårdkontakt")
        );
        assert!(t.specialty("allmanmedicin").is_some());
        assert!(t.specialty("tandvard").is_none());
    }
}
