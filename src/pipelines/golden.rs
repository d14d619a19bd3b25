//! Pipeline `mapping test`: golden cases → a mapping's FHIR (the product's own, or an EHR
//! vendor's) compared with the FHIR a correct mapping gives, and the findings with those expected.
//! Each case is a folder: `register.csv`, `expected.ndjson`, `findings.json`, and optionally
//! `context.ndjson` (what only the EHR knows: Flags, Observations, Encounters, CarePlans …),
//! read beside the mapping's FHIR when the findings are computed.

use super::PipelineError;
use crate::checks::run::{self, CheckInput, EhrSide, Partition};
use crate::checks::Profile;
use crate::fhir::model;
use crate::mapping::Mappings;
use crate::sources::ehr::files::FhirFiles;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// What a run of the cases is asked to do.
pub struct Options<'a> {
    /// The folder of cases (one sub-folder each).
    pub cases: &'a Path,
    /// The FHIR a vendor's system produced, in a folder per case (same names); absent, the
    /// product's own translation is tested.
    pub got: Option<&'a Path>,
    /// Write `expected.ndjson` and `findings.json` from the product instead of comparing.
    pub bless: bool,
    /// The profile the expected findings are computed under, unless a case names its own (a
    /// file `profile` in its folder holding a profile's name: a rule that is one region's).
    pub profile: &'a Profile,
    /// Where the named profiles are (`mappings/`).
    pub mappings_dir: &'a Path,
    /// The mappings.
    pub mappings: &'a Mappings,
    /// The day "active" is judged on.
    pub as_of: chrono::NaiveDate,
}

/// One case's outcome.
#[derive(Debug, Default, serde::Serialize)]
pub struct CaseResult {
    /// The case's folder name.
    pub name: String,
    /// Per resource that differs: `-want`/`+got` lines, headed by the resource's key.
    pub diffs: Vec<String>,
    /// Expected findings (`RULE patient`) the mapping's FHIR did not give.
    pub findings_missing: Vec<String>,
    /// Findings it gave that were not expected.
    pub findings_extra: Vec<String>,
    /// The case could not be run (a missing file, FHIR that is not R4).
    pub error: Option<String>,
}

impl CaseResult {
    /// Nothing differs, nothing failed.
    pub fn passed(&self) -> bool {
        self.diffs.is_empty()
            && self.findings_missing.is_empty()
            && self.findings_extra.is_empty()
            && self.error.is_none()
    }
}

/// Runs (or blesses) every case, in name order.
pub fn run(o: &Options) -> Result<Vec<CaseResult>, PipelineError> {
    let io = |source| PipelineError::Golden {
        path: o.cases.to_path_buf(),
        message: format!("{source}"),
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(o.cases)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("register.csv").is_file())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(PipelineError::Golden {
            path: o.cases.to_path_buf(),
            message: "no cases (a case is a folder holding register.csv)".into(),
        });
    }
    Ok(names.iter().map(|dir| one(o, dir)).collect())
}

fn one(o: &Options, dir: &Path) -> CaseResult {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut result = CaseResult {
        name: name.clone(),
        ..Default::default()
    };
    if let Err(e) = compare(o, dir, &name, &mut result) {
        result.error = Some(e);
    }
    result
}

fn compare(o: &Options, dir: &Path, name: &str, result: &mut CaseResult) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    // The FHIR under test: the vendor's, or the product's own translation of the register.
    let got_path = match o.got {
        Some(g) => g.join(name),
        None => {
            let mut out = Vec::new();
            let t = super::translate::Options {
                input: dir.join("register.csv"),
                ndjson: true,
                quarantine: Some(work.path().join("quarantine.csv")),
                held_patients: super::translate::HELD_PATIENTS,
            };
            super::translate::run(&t, o.mappings, &mut out, &mut |_, _| {})
                .map_err(|e| e.to_string())?;
            let p = work.path().join("got.ndjson");
            std::fs::write(&p, out).map_err(|e| e.to_string())?;
            p
        }
    };
    let got = read_values(&got_path)?;
    // The EHR the findings are computed on: the mapping's FHIR, and the case's EHR-only facts.
    let ehr = work.path().join("ehr");
    std::fs::create_dir_all(&ehr).map_err(|e| e.to_string())?;
    let files = crate::sources::ehr::files::list(&got_path).map_err(|e| e.to_string())?;
    for (n, f) in files.iter().enumerate() {
        let name = f
            .file_name()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::copy(f, ehr.join(format!("got-{n}-{name}"))).map_err(|e| e.to_string())?;
    }
    let context = dir.join("context.ndjson");
    if context.is_file() {
        std::fs::copy(&context, ehr.join("context.ndjson")).map_err(|e| e.to_string())?;
    }
    let own = match std::fs::read_to_string(dir.join("profile")) {
        Ok(name) => Some(
            Profile::load(name.trim(), o.mappings_dir, &o.mappings.terminology)
                .map_err(|e| e.to_string())?,
        ),
        Err(_) => None,
    };
    let profile = own.as_ref().unwrap_or(o.profile);
    let findings = findings_of(o, profile, &dir.join("register.csv"), &ehr)?;
    if o.bless {
        let lines: Vec<String> = got.iter().map(Value::to_string).collect();
        std::fs::write(dir.join("expected.ndjson"), lines.join("\n") + "\n")
            .map_err(|e| e.to_string())?;
        let json = serde_json::to_string_pretty(&findings).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("findings.json"), json + "\n").map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = read_values(&dir.join("expected.ndjson"))?;
    result.diffs = diff(&normalize(want), &normalize(got));
    let expected: BTreeSet<String> = serde_json::from_slice(
        &std::fs::read(dir.join("findings.json")).map_err(|e| format!("findings.json: {e}"))?,
    )
    .map_err(|e| format!("findings.json: {e}"))?;
    result.findings_missing = expected.difference(&findings).cloned().collect();
    result.findings_extra = findings.difference(&expected).cloned().collect();
    Ok(())
}

/// Every resource of a file or folder, strictly R4, as JSON.
fn read_values(path: &Path) -> Result<Vec<Value>, String> {
    let files = FhirFiles::read(path).map_err(|e| e.to_string())?;
    if let Some(bad) = files.bad.first() {
        return Err(format!("not FHIR R4: {bad}"));
    }
    files
        .resources
        .into_iter()
        .map(|(url, r)| {
            let mut v = model::to_value(r).map_err(|e| e.to_string())?;
            if let Some(u) = url {
                // Kept for reference resolution; removed by `normalize`.
                v["fullUrl"] = Value::String(u);
            }
            Ok(v)
        })
        .collect()
}

/// The findings, as `RULE patient`, of the register against the FHIR as the EHR.
fn findings_of(
    o: &Options,
    profile: &Profile,
    register: &Path,
    ehr: &Path,
) -> Result<BTreeSet<String>, String> {
    let side = EhrSide::from_files(ehr, o.mappings).map_err(|e| e.to_string())?;
    let report = run::run(
        CheckInput {
            register: Some(register),
            ehr: Some(side),
            profile,
            mappings: o.mappings,
            as_of: o.as_of,
            quarantine: None,
            partition: Partition::ALL,
        },
        &mut |_, _| {},
    )
    .map_err(|e| e.to_string())?;
    Ok(report
        .findings
        .iter()
        .map(|f| format!("{} {}", f.rule, f.patient))
        .collect())
}

/// Resources by a key made of what they mean, not their ids: ids, `meta`, `text` and the
/// Bundle's fullUrls are dropped, and references point at those keys.
fn normalize(resources: Vec<Value>) -> BTreeMap<String, Value> {
    let mut names: HashMap<String, String> = HashMap::new();
    let local = |r: &Value| -> Vec<String> {
        let mut v = Vec::new();
        if let (Some(t), Some(id)) = (r["resourceType"].as_str(), r["id"].as_str()) {
            v.push(format!("{t}/{id}"));
        }
        if let Some(u) = r["fullUrl"].as_str() {
            v.push(u.to_owned());
        }
        v
    };
    // The directory first: the contacts' keys name it.
    let directory = ["Patient", "Practitioner", "Organization"];
    let (first, rest): (Vec<&Value>, Vec<&Value>) = resources
        .iter()
        .partition(|r| directory.contains(&r["resourceType"].as_str().unwrap_or("")));
    // The rest twice: contacts name PractitionerRoles, keyed in the first of the two.
    for pass in [&first, &rest, &rest] {
        for r in pass.iter() {
            let key = natural_key(r, &names);
            for n in local(r) {
                names.insert(n, key.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    for mut r in resources {
        let key = natural_key(&r, &names);
        if let Some(m) = r.as_object_mut() {
            for k in ["id", "meta", "text", "fullUrl"] {
                m.remove(k);
            }
        }
        rewrite(&mut r, &names);
        let mut key = key;
        while out.contains_key(&key) {
            key.push('\'');
        }
        out.insert(key, r);
    }
    out
}

fn rewrite(v: &mut Value, names: &HashMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("reference") {
                if let Some(k) = names.get(r.as_str()) {
                    *r = format!("<{k}>");
                }
            }
            m.values_mut().for_each(|x| rewrite(x, names));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, names)),
        _ => {}
    }
}

fn natural_key(r: &Value, names: &HashMap<String, String>) -> String {
    let t = r["resourceType"].as_str().unwrap_or("?");
    let reference = |v: &Value| {
        v["reference"]
            .as_str()
            .map(|x| names.get(x).cloned().unwrap_or_else(|| x.to_owned()))
            .or_else(|| v["identifier"]["value"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let first_identifier = || {
        r["identifier"][0]["value"]
            .as_str()
            .map(|v| v.replace('-', ""))
            .unwrap_or_default()
    };
    let codes = |cc: &Value| {
        cc["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["code"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
            .join("+")
    };
    match t {
        "Patient" | "Practitioner" | "Organization" => format!("{t} {}", first_identifier()),
        "PractitionerRole" => format!(
            "{t} {} @ {}",
            reference(&r["practitioner"]),
            reference(&r["organization"])
        ),
        "CareTeam" => format!(
            "{t} {} {} {} from {}",
            reference(&r["subject"]),
            codes(&r["participant"][0]["role"][0]),
            reference(&r["participant"][0]["member"]),
            r["period"]["start"].as_str().unwrap_or("")
        ),
        "Task" => format!(
            "{t} {} {} from {}",
            reference(&r["for"]),
            codes(&r["input"][0]["valueCodeableConcept"]),
            r["executionPeriod"]["start"].as_str().unwrap_or("")
        ),
        _ => format!("{t} {}", r["id"].as_str().unwrap_or("")),
    }
}

/// `-want`/`+got` per resource that differs, missing or extra.
fn diff(want: &BTreeMap<String, Value>, got: &BTreeMap<String, Value>) -> Vec<String> {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for k in keys {
        let (w, g) = (want.get(k), got.get(k));
        if w == g {
            continue;
        }
        let (w, g) = (
            w.map(pretty).unwrap_or_default(),
            g.map(pretty).unwrap_or_default(),
        );
        let mut text = format!("{k}:\n");
        for change in similar::TextDiff::from_lines(&w, &g).iter_all_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            text.push(sign);
            text.push_str(change.value());
        }
        out.push(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_order_do_not_matter_content_does() {
        let want = vec![
            json!({"resourceType": "Patient", "id": "a", "identifier": [{"value": "191212121212"}]}),
            json!({"resourceType": "CareTeam", "id": "x", "status": "active",
                   "subject": {"reference": "Patient/a"}, "period": {"start": "2025-01-01"}}),
        ];
        let got = vec![
            json!({"resourceType": "CareTeam", "id": "y", "status": "active",
                   "subject": {"reference": "urn:uuid:1"}, "period": {"start": "2025-01-01"}}),
            json!({"resourceType": "Patient", "id": "b", "fullUrl": "urn:uuid:1",
                   "meta": {"versionId": "3"}, "identifier": [{"value": "191212121212"}]}),
        ];
        assert!(diff(&normalize(want.clone()), &normalize(got.clone())).is_empty());
        let mut changed = got;
        changed[0]["status"] = json!("inactive");
        let d = diff(&normalize(want), &normalize(changed));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("-  \"status\": \"active\""), "{}", d[0]);
        assert!(d[0].contains("+  \"status\": \"inactive\""), "{}", d[0]);
    }
}
