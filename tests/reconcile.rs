//! `reconcile` end to end: from files and from a real FHIR server (hfs on 127.0.0.1, read by
//! Bulk Data $export and by paged search) the findings are the same; a plan made from files is
//! for review only; `--apply` goes through sync's apply path and a second reconcile finds
//! nothing left to do.

mod common;

use common::{handwritten_rows, load, root, server, tenant};
use fastkontakt::fhir::client::{ClientConfig, FhirClient};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn client(base: &str, tenant: &str) -> FhirClient {
    let mut c = ClientConfig::new(base);
    c.tenant = Some(tenant.to_owned());
    FhirClient::new(c).unwrap()
}

fn reconcile(register: &Path, ehr: &str, report: &Path, extra: &[&str]) -> Output {
    let t0 = std::time::Instant::now();
    let out = common::fastkontakt()
        .current_dir(root())
        .args(["reconcile", "--register"])
        .arg(register)
        .args(["--ehr", ehr, "--profile", "orebro", "--as-of", "2026-06-01"])
        .args(["--fail-on", "never", "--report"])
        .arg(report)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reconcile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("TIMING reconcile {ehr} {extra:?}: {:?}", t0.elapsed());
    out
}

fn json(path: PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The findings as comparable text, sorted.
fn findings(report: &Path) -> Vec<String> {
    let v = json(report.join("findings.json"));
    let mut out: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}|{}|{}|{}|{}",
                f["rule"], f["patient"], f["message"], f["register"], f["ehr"]
            )
        })
        .collect();
    out.sort();
    out
}

/// (action, key) of each relation item of plan.json, sorted.
fn relation_actions(report: &Path) -> Vec<String> {
    let v = json(report.join("plan.json"));
    let mut out: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] != "create-reference")
        // Only a live plan brings Patient.generalPractitioner to the register's (files are not
        // the EHR to write to); the relations are decided alike.
        .filter(|i| {
            !i["key"]
                .as_str()
                .unwrap_or("")
                .starts_with("Patient.generalPractitioner/")
        })
        .map(|i| format!("{} {}", i["action"], i["key"]))
        .collect();
    out.sort();
    out
}

fn generated(dir: &Path, patients: u64) -> PathBuf {
    let m = fastkontakt::mapping::Mappings::load(&root().join("mappings"), None, None).unwrap();
    let spec = fastkontakt::samples::Spec {
        patients,
        seed: 11,
        inconsistency_share: 0.15,
    };
    fastkontakt::samples::generate(&spec, &m, dir).unwrap();
    dir.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_against_a_server_finds_what_reconcile_from_the_same_files_finds() {
    let s = server();
    let t = tenant("reconcile");
    let c = client(&s.base, &t);
    let work = tempfile::tempdir().unwrap();
    let region = generated(&work.path().join("region"), 300);
    let loaded = load(&c, &region.join("ehr")).await;
    assert!(loaded > 500, "the region has an EHR side: {loaded}");
    let register = region.join("register.csv");

    let from_files = work.path().join("files");
    reconcile(
        &register,
        region.join("ehr").to_str().unwrap(),
        &from_files,
        &[],
    );
    let by_export = work.path().join("export");
    let o = reconcile(&register, &s.base, &by_export, &["--tenant", &t]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("read by Bulk Data $export"), "{err}");
    let by_search = work.path().join("search");
    let o = reconcile(
        &register,
        &s.base,
        &by_search,
        &["--tenant", &t, "--no-export", "--concurrency", "3"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("read by paged search"), "{err}");

    let expected = findings(&from_files);
    assert!(
        expected.len() > 30,
        "the region has findings: {}",
        expected.len()
    );
    assert_eq!(findings(&by_export), expected, "server by $export vs files");
    assert_eq!(
        findings(&by_search),
        expected,
        "server by paged search vs files"
    );
    // The plan decides the same relations either way; only the server's can be applied.
    assert_eq!(relation_actions(&by_search), relation_actions(&from_files));
    assert_eq!(json(from_files.join("plan.json"))["review_only"], true);
    assert_eq!(json(by_search.join("plan.json"))["review_only"], false);
    // Every resource accounted for, the same way whichever way the EHR was read.
    let input = |r: &std::path::Path| json(r.join("findings.json"))["ehr_input"].clone();
    for t in ["Patient", "CareTeam", "Task"] {
        let want = &input(&from_files)[t];
        assert!(want["read"].as_u64().unwrap() > 0, "{t}: {want}");
        assert_eq!(
            want["read"].as_u64().unwrap(),
            want["used"].as_u64().unwrap() + want["not_used"].as_u64().unwrap()
        );
        assert_eq!(&input(&by_export)[t], want, "{t} by $export");
        assert_eq!(&input(&by_search)[t], want, "{t} by paged search");
    }
    for r in [&from_files, &by_export, &by_search] {
        let html = std::fs::read_to_string(r.join("report.html")).unwrap();
        assert!(html.contains("id=\"findings\""));
        assert!(
            html.contains("id=\"ehr-input\""),
            "the report shows the EHR input"
        );
        assert!(!r.join(".fetched").exists(), "fetched files are removed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_goes_through_the_sync_path_and_a_second_reconcile_finds_nothing_to_do() {
    let s = server();
    let t = tenant("reconcile-apply");
    let work = tempfile::tempdir().unwrap();
    let register = root().join("samples/handwritten/register.csv");
    let state = work.path().join("state.sqlite");
    let first = work.path().join("first");
    let o = reconcile(
        &register,
        &s.base,
        &first,
        &[
            "--tenant",
            &t,
            "--apply",
            "--state",
            state.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("applied: created {}", handwritten_rows())),
        "{err}"
    );
    let plan = json(first.join("plan.json"));
    assert_eq!(
        relation_actions(&first).len(),
        handwritten_rows(),
        "one create per valid register row"
    );
    assert!(
        plan["items"][0]["body"].is_object(),
        "a live plan carries bodies"
    );

    let second = work.path().join("second");
    reconcile(
        &register,
        &s.base,
        &second,
        &["--tenant", &t, "--state", state.to_str().unwrap()],
    );
    let plan = json(second.join("plan.json"));
    assert_eq!(plan["items"].as_array().unwrap().len(), 0, "{plan}");
    assert_eq!(plan["unchanged"], handwritten_rows());
}

#[test]
fn a_plan_from_files_is_refused_by_sync_apply() {
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("r");
    reconcile(
        &root().join("samples/handwritten/register.csv"),
        root().join("samples/handwritten/ehr").to_str().unwrap(),
        &report,
        &[],
    );
    let plan = json(report.join("plan.json"));
    assert_eq!(plan["review_only"], true);
    let creates = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "create")
        .count();
    // The EHR holds no product relation, but its hand-typed contacts stand for all valid rows
    // but 2 (r08-ehr-missing, r12-declined-not-in-ehr): with no --takeover chosen those are
    // held (no second FLK or FVK), the other 2 are creates.
    let held = handwritten_rows() - 2;
    assert_eq!(
        plan["takeover_pending"], held,
        "{}",
        plan["takeover_pending"]
    );
    assert_eq!(plan["takeover"]["counts"]["pending"], held);
    assert_eq!(plan["takeover"]["counts"]["unmatched"], 2);
    assert_eq!(creates, 2);
    let o = common::fastkontakt()
        .args(["sync", "--ehr", "http://127.0.0.1:9", "--state"])
        .arg(work.path().join("s.sqlite"))
        .arg("apply")
        .arg(report.join("plan.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("for review"));
    // --apply needs a server.
    let o = common::fastkontakt()
        .current_dir(root())
        .args([
            "reconcile",
            "--register",
            "samples/handwritten/register.csv",
            "--ehr",
            "samples/handwritten/ehr",
            "--apply",
            "--report",
        ])
        .arg(work.path().join("r2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--apply needs --ehr URL"));
}

#[test]
fn reconcile_writes_every_patients_written_information_on_request() {
    let work = tempfile::tempdir().unwrap();
    let letters = work.path().join("brev");
    reconcile(
        &root().join("samples/handwritten/register.csv"),
        root().join("samples/handwritten/ehr").to_str().unwrap(),
        &work.path().join("r"),
        &["--written-information-dir", letters.to_str().unwrap()],
    );
    let names: Vec<String> = std::fs::read_dir(&letters)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let pages: Vec<&String> = names.iter().filter(|n| n.ends_with(".html")).collect();
    // One page and one Composition per patient with a contact in force on 2026-06-01: every
    // patient of the hand-written register but those whose contacts are all ended or offers
    // (r09, r12 ×2, r22 ×3, r24) and the row that fails its check digit.
    assert_eq!(pages.len(), 38, "{names:?}");
    assert_eq!(names.len(), 2 * pages.len());
    for n in names.iter().filter(|n| n.ends_with(".json")) {
        let c = std::fs::read(letters.join(n)).unwrap();
        fastkontakt::fhir::model::parse(&c).expect("a Composition in strict R4");
    }
    let any = std::fs::read_to_string(letters.join(pages[0])).unwrap();
    assert!(any.contains("Dina fasta kontakter i vården"), "{any}");
}

/// At go-live the EHR holds the product's own CareTeams and Tasks, which a plan from files keeps
/// compact and reads back when it reaches each relation: an unchanged register plans nothing;
/// a row ended in the register is a conflict (no state file says who changed the EHR's copy),
/// with the EHR's version compared field by field; a row gone from the register is ended.
#[test]
fn a_plan_from_files_reads_the_products_own_relations_back() {
    let work = tempfile::tempdir().unwrap();
    let region = generated(&work.path().join("region"), 200);
    let register = region.join("register.csv");
    let ehr = work.path().join("ehr");
    std::fs::create_dir_all(&ehr).unwrap();
    let out = common::fastkontakt()
        .current_dir(root())
        .arg("translate")
        .arg(&register)
        .args(["--ndjson", "-o"])
        .arg(ehr.join("live.ndjson"))
        .arg("--quarantine")
        .arg(work.path().join("q.csv"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(2), "{out:?}");
    // Two active CareTeams the product wrote, by the register rows they carry.
    let live = std::fs::read_to_string(ehr.join("live.ndjson")).unwrap();
    let rows: Vec<String> = live
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["resourceType"] == "CareTeam" && v["status"] == "active")
        .filter_map(|v| {
            let ids = v["identifier"].as_array()?.clone();
            ids.iter()
                .find(|i| i["value"].as_str().is_some_and(|x| x.starts_with("R-")))
                .and_then(|i| i["value"].as_str().map(str::to_owned))
        })
        .take(2)
        .collect();
    assert_eq!(rows.len(), 2, "the region has active CareTeams");

    let same = work.path().join("same");
    reconcile(&register, ehr.to_str().unwrap(), &same, &[]);
    let unchanged = json(same.join("plan.json"))["unchanged"].as_u64().unwrap();
    assert!(
        unchanged > 100,
        "the product's relations are unchanged: {unchanged}"
    );
    assert_eq!(relation_actions(&same), Vec::<String>::new());
    // Another reconcile of the same relations plans exactly that: every one unchanged.
    let plans_the_same = |register: &Path, ehr: &Path, report: &Path| {
        reconcile(register, ehr.to_str().unwrap(), report, &[]);
        assert_eq!(
            json(report.join("plan.json"))["unchanged"].as_u64(),
            Some(unchanged),
            "{}",
            report.display()
        );
        assert_eq!(relation_actions(report), Vec::<String>::new());
    };

    // The same register not grouped by patient (every other row first): the rules group it in
    // memory, and the plan still gets every row once, so it plans the same.
    let text = std::fs::read_to_string(&register).unwrap();
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    let rows_in: Vec<&str> = lines.collect();
    let mut mixed: Vec<&str> = vec![head];
    mixed.extend(rows_in.iter().step_by(2));
    mixed.extend(rows_in.iter().skip(1).step_by(2));
    let mixed_register = work.path().join("mixed.csv");
    std::fs::write(&mixed_register, mixed.join("\n") + "\n").unwrap();
    let ungrouped = work.path().join("ungrouped");
    plans_the_same(&mixed_register, &ehr, &ungrouped);
    // The rules find the same (a message lists a patient's contacts in the register's order).
    let who = |r: &Path| -> Vec<String> {
        findings(r)
            .iter()
            .map(|f| f.split('|').take(2).collect::<Vec<_>>().join("|"))
            .collect()
    };
    assert_eq!(who(&ungrouped), who(&same));

    // A real EHR names its Patients by ids of its own, and the product's CareTeams point there:
    // the plan rewrites its references to those ids and still finds every relation unchanged.
    let renamed_ehr = work.path().join("renamed-ehr");
    std::fs::create_dir_all(&renamed_ehr).unwrap();
    let mut values: Vec<Value> = live
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut renamed = std::collections::HashMap::new();
    for v in values.iter_mut().filter(|v| v["resourceType"] == "Patient") {
        let id = v["id"].as_str().unwrap().to_owned();
        let own = format!("ehr-{}", renamed.len());
        v["id"] = Value::from(own.as_str());
        renamed.insert(format!("Patient/{id}"), format!("Patient/{own}"));
    }
    fn point(v: &mut Value, to: &std::collections::HashMap<String, String>) {
        match v {
            Value::Object(m) => {
                if let Some(n) = m.get("reference").and_then(|r| to.get(r.as_str()?)) {
                    m.insert("reference".into(), Value::from(n.as_str()));
                }
                m.values_mut().for_each(|x| point(x, to));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| point(x, to)),
            _ => {}
        }
    }
    values.iter_mut().for_each(|v| point(v, &renamed));
    let text: Vec<String> = values.iter().map(Value::to_string).collect();
    assert!(!text
        .iter()
        .any(|l| renamed.keys().any(|k| l.contains(&format!("\"{k}\"")))));
    std::fs::write(renamed_ehr.join("live.ndjson"), text.join("\n") + "\n").unwrap();
    plans_the_same(&register, &renamed_ehr, &work.path().join("own-ids"));

    let text = std::fs::read_to_string(&register).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(';').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let edited: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{};", rows[1])))
        .map(|l| {
            if !l.starts_with(&format!("{};", rows[0])) {
                return l.to_owned();
            }
            let mut f: Vec<&str> = l.split(';').collect();
            f[col("Status")] = "Avslutad";
            f[col("T.o.m.")] = "2026-05-01";
            f.join(";")
        })
        .collect();
    let edited_register = work.path().join("edited.csv");
    std::fs::write(&edited_register, edited.join("\n") + "\n").unwrap();
    let changed = work.path().join("changed");
    reconcile(&edited_register, ehr.to_str().unwrap(), &changed, &[]);
    let plan = json(changed.join("plan.json"));
    assert_eq!(plan["unchanged"].as_u64().unwrap(), unchanged - 2);
    assert_eq!(
        relation_actions(&changed),
        vec![format!("\"end\" \"CareTeam|{}\"", rows[1])]
    );
    let conflicts = plan["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["key"], format!("CareTeam|{}", rows[0]));
    assert_eq!(conflicts[0]["register"]["status"], "inactive");
    assert_eq!(
        conflicts[0]["ehr"]["status"], "active",
        "{:?}",
        conflicts[0]
    );
}

/// `--memory` decides the passes, never the findings: a budget below what the patients alone
/// take is warned of on stderr and the run goes on; one too small to mean anything is refused.
#[test]
fn a_memory_budget_below_the_patients_share_is_warned_of_and_the_findings_stay() {
    let work = tempfile::tempdir().unwrap();
    let register = root().join("samples/handwritten/register.csv");
    let ehr = root().join("samples/handwritten/ehr");
    let ehr = ehr.to_str().unwrap();
    let roomy = work.path().join("roomy");
    let out = reconcile(&register, ehr, &roomy, &["--memory", "1024"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("memory budget"));
    let tight = work.path().join("tight");
    let out = reconcile(&register, ehr, &tight, &["--memory", "64"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the memory budget is below what this region's patients alone take")
            && err.contains("budget_mib=64"),
        "{err}"
    );
    assert_eq!(findings(&tight), findings(&roomy));
    assert!(!findings(&roomy).is_empty());
    let refused = common::fastkontakt()
        .args([
            "reconcile",
            "--register",
            "r.csv",
            "--ehr",
            "e",
            "--memory",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}
