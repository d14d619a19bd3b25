//! `sync` against a real FHIR server (hfs on 127.0.0.1): full sync, idempotent re-run, exact
//! writes for a register change, a person's edit kept as a conflict, kill -9 and re-run, two
//! syncs at once, faults in front of the server, dry run and plan/apply.

mod common;

use common::{client, handwritten_rows, proxy, root, server, tenant, Faults};
use fastkontakt::fhir::client::FhirClient;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROW_SYSTEM: &str =
    "https://fhir.fastkontakt.example/NamingSystem/befolkningsregistret-rad-id";

fn sync(base: &str, tenant: &str, register: &Path, state: &Path, extra: &[&str]) -> Output {
    common::fastkontakt()
        .current_dir(root())
        .args([
            "sync",
            "--ehr",
            base,
            "--tenant",
            tenant,
            "--as-of",
            "2026-06-01",
            "--register",
        ])
        .arg(register)
        .arg("--state")
        .arg(state)
        .args(extra)
        .output()
        .unwrap()
}

fn apply(base: &str, tenant: &str, state: &Path, plan: &Path) -> Output {
    common::fastkontakt()
        .current_dir(root())
        .args(["sync", "--ehr", base, "--tenant", tenant, "--state"])
        .arg(state)
        .arg("apply")
        .arg(plan)
        .output()
        .unwrap()
}

/// A sync that writes its summary to `sum`: its output, and the summary read back.
fn sync_summary(
    base: &str,
    tenant: &str,
    register: &Path,
    state: &Path,
    sum: &Path,
    extra: &[&str],
) -> (Output, Value) {
    let mut args = vec!["--summary", sum.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = sync(base, tenant, register, state, &args);
    let s = summary(&o, sum);
    (o, s)
}

fn summary(o: &Output, path: &Path) -> Value {
    assert!(
        path.exists(),
        "no summary; stderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Relations on the server per register row id: (count, resources). A Task that carries no
/// row (an inform-the-patient Task) is no relation.
async fn by_row(c: &FhirClient) -> BTreeMap<String, Vec<Value>> {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for t in ["CareTeam", "Task"] {
        for r in c.search_all(&format!("{t}?_count=500")).await.unwrap() {
            let row = r["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["system"] == ROW_SYSTEM)
                .and_then(|i| i["value"].as_str())
                .map(str::to_owned);
            match (row, t) {
                (Some(row), _) => m.entry(row).or_default().push(r),
                (None, "CareTeam") => m.entry("?".into()).or_default().push(r),
                (None, _) => {}
            }
        }
    }
    m
}

/// The inform-the-patient Tasks on the server.
async fn inform_tasks(c: &FhirClient) -> Vec<Value> {
    c.search_all("Task?_count=500")
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t["code"]["coding"][0]["code"] == "informera-om-fast-vardkontakt")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_patient_is_told_when_an_fvk_ends_or_changes_and_gets_the_written_information() {
    let s = server();
    let t = tenant("duties");
    let c = client(&s.base, &t);
    let dir = tempfile::tempdir().unwrap();
    let (state, sum) = (
        dir.path().join("state.sqlite"),
        dir.path().join("summary.json"),
    );
    let letters = dir.path().join("brev");
    let (_, first) = sync_summary(
        &s.base,
        &t,
        &handwritten(),
        &state,
        &sum,
        &[
            "--written-information",
            "--written-information-dir",
            letters.to_str().unwrap(),
        ],
    );
    // The first sync creates; it ends and changes nothing, so no one is to be told.
    assert!(inform_tasks(&c).await.is_empty());
    let docs = c.search_all("Composition?_count=500").await.unwrap();
    // Every patient with a contact in force gets the written information, once.
    let in_force = {
        use fastkontakt::sources::register::{RegisterItem, RegisterReader};
        let m = fastkontakt::mapping::Mappings::load(&root().join("mappings"), None, None).unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let mut p = std::collections::HashSet::new();
        for i in RegisterReader::open(&handwritten(), &m.register, &m.terminology).unwrap() {
            if let Ok(RegisterItem::Contact { contact, .. }) = i {
                if contact.is_active_on(day) {
                    p.insert(contact.patient.clone());
                }
            }
        }
        p.len()
    };
    assert_eq!(docs.len(), in_force);
    assert_eq!(first["duties_written"], docs.len(), "{first}");
    for d in &docs {
        fastkontakt::fhir::model::parse(&serde_json::to_vec(d).unwrap())
            .expect("a Composition in strict R4");
        assert_eq!(d["status"], "final");
        assert!(d["section"][0]["entry"]
            .as_array()
            .is_some_and(|e| !e.is_empty()));
    }
    // ok-all: FLK, FVK and a contact nurse, with the units to reach them through.
    let pnr = "193103041004";
    let ok_all: Vec<&Value> = docs
        .iter()
        .filter(|d| d["subject"]["identifier"]["value"] == pnr)
        .collect();
    assert_eq!(ok_all.len(), 1);
    let text = ok_all[0]["section"][0]["text"]["div"].as_str().unwrap();
    for want in [
        "Fast läkarkontakt",
        "Fast vårdkontakt",
        "Kontaktsjuksköterska",
        "Anna Lind",
        "Vårdcentralen Norr",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    // The same as files: a printable page and the Composition, no personnummer in names.
    let files: Vec<String> = std::fs::read_dir(&letters)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2 * docs.len());
    assert!(files
        .iter()
        .all(|f| !f.contains(pnr) && !f.contains("19310304")));
    let page = files.iter().find(|f| f.ends_with(".html")).unwrap();
    let html = std::fs::read_to_string(letters.join(page)).unwrap();
    assert!(html.contains("<html lang=\"sv\">") && html.contains("Dina fasta kontakter"));

    // ok-all-2's FVK ends; r13-sip-ok-1's FVK is another nurse now.
    let text = std::fs::read_to_string(handwritten()).unwrap();
    let changed: String = text
        .lines()
        .map(|l| {
            if l.starts_with("ok-all-2;") {
                l.replace(";Aktiv;2023-05-10;;", ";Avslutad;2023-05-10;2026-05-31;")
            } else if l.starts_with("r13-sip-ok-1;") {
                l.replace("SE2321000016-N002;Sara Holm", "SE2321000016-N001;Erik Berg")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert_ne!(changed, text);
    let reg2 = dir.path().join("register2.csv");
    std::fs::write(&reg2, &changed).unwrap();
    let resync = || sync_summary(&s.base, &t, &reg2, &state, &sum, &["--written-information"]).1;
    let second = resync();
    let tasks = inform_tasks(&c).await;
    assert_eq!(tasks.len(), 2, "{second}");
    let rows = by_row(&c).await;
    for (row, change) in [("ok-all-2", "avslutad"), ("r13-sip-ok-1", "andrad")] {
        let ct = &rows[row][0];
        let task = tasks
            .iter()
            .find(|t| t["focus"]["reference"] == format!("CareTeam/{}", ct["id"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("no task for {row}: {tasks:?}"));
        fastkontakt::fhir::model::parse(&serde_json::to_vec(task).unwrap())
            .expect("a Task in strict R4");
        assert_eq!(task["status"], "requested");
        assert!(task["identifier"][0]["value"]
            .as_str()
            .unwrap()
            .contains(change));
        // Owned by the unit, for the patient, pointing at the relation.
        assert_eq!(task["owner"], ct["managingOrganization"][0]);
        assert_eq!(task["for"]["reference"], ct["subject"]["reference"]);
    }
    // The two patients get their written information again (the other patients' is unchanged).
    let after = c.search_all("Composition?_count=500").await.unwrap();
    assert_eq!(after.len(), docs.len() + 2, "{second}");
    assert_eq!(second["duties_written"], 4, "{second}");
    let newest = after
        .iter()
        .filter(|d| d["subject"]["identifier"]["value"] == pnr)
        .find(|d| d["id"] != ok_all[0]["id"])
        .unwrap();
    let text = newest["section"][0]["text"]["div"].as_str().unwrap();
    assert!(
        !text.contains("Fast vårdkontakt"),
        "the ended FVK is gone: {text}"
    );

    // A rerun tells no one twice and writes no document again.
    let third = resync();
    assert_eq!(third["duties_written"], 0, "{third}");
    assert_eq!(inform_tasks(&c).await.len(), 2);
}

fn handwritten() -> PathBuf {
    root().join("samples/handwritten/register.csv")
}

fn rows_in(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count() - 1
}

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_then_a_second_run_writes_nothing() {
    let s = server();
    let t = tenant("full");
    let dir = tempfile::tempdir().unwrap();
    let (state, sum) = (
        dir.path().join("state.sqlite"),
        dir.path().join("summary.json"),
    );
    // Through the counting proxy from the start: the first run probes the server (its facts
    // are kept per base URL in the state file), the second must write nothing at all.
    let p = proxy(&s.base, Faults::default(), 1);
    let (o, first) = sync_summary(&p.base, &t, &handwritten(), &state, &sum, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "one row is rejected → exit 1:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for key in [
        "created",
        "updated",
        "ended",
        "unchanged",
        "conflicts",
        "errors",
        "duration_seconds",
    ] {
        assert!(!first[key].is_null(), "summary has {key}");
    }
    assert_eq!(first["created"], handwritten_rows());
    assert_eq!(first["errors"], 0);
    assert_eq!(first["rejected_rows"], 1);
    let c = client(&s.base, &t);
    let rows = by_row(&c).await;
    assert_eq!(rows.len(), handwritten_rows());
    assert!(rows.values().all(|v| v.len() == 1), "one resource per row");
    // The product's Provenance is there, pointing at what it wrote.
    let prov = c.search_all("Provenance?_count=100").await.unwrap();
    assert!(!prov.is_empty() && prov[0]["target"].as_array().is_some_and(|t| !t.is_empty()));

    p.writes.store(0, std::sync::atomic::Ordering::Relaxed);
    let (_, second) = sync_summary(&p.base, &t, &handwritten(), &state, &sum, &[]);
    assert_eq!(second["created"], 0);
    assert_eq!(second["updated"], 0);
    assert_eq!(second["unchanged"], handwritten_rows());
    assert_eq!(
        p.writes.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "an unchanged export makes zero writes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_and_plan_write_nothing() {
    let s = server();
    let t = tenant("dry");
    let dir = tempfile::tempdir().unwrap();
    let p = proxy(&s.base, Faults::default(), 2);
    let state = dir.path().join("state.sqlite");
    let o = sync(&p.base, &t, &handwritten(), &state, &["--dry-run"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines().filter(|l| l.starts_with("create ")).count() == handwritten_rows(),
        "the plan is printed:\n{out}"
    );
    let plan = dir.path().join("plan.json");
    let o = sync(
        &p.base,
        &t,
        &handwritten(),
        &state,
        &["plan", "-o", plan.to_str().unwrap()],
    );
    assert!(plan.exists(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        p.writes.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the server received no write"
    );
    assert!(by_row(&client(&s.base, &t)).await.is_empty());
    // The reviewed plan applies while the EHR is unchanged (to the EHR it was made against) …
    let o = apply(&p.base, &t, &state, &plan);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(by_row(&client(&s.base, &t)).await.len(), handwritten_rows());
    // … and is refused once it has changed.
    let o = apply(&p.base, &t, &state, &plan);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the EHR changed since the plan was made"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_register_change_gives_exactly_the_expected_writes_and_ends_never_delete() {
    let s = server();
    let t = tenant("change");
    let dir = tempfile::tempdir().unwrap();
    let (state, sum) = (
        dir.path().join("state.sqlite"),
        dir.path().join("summary.json"),
    );
    let p = proxy(&s.base, Faults::default(), 3);
    sync(&p.base, &t, &handwritten(), &state, &[]);
    p.writes.store(0, std::sync::atomic::Ordering::Relaxed);
    // ok-all-2 gets another FVK (a person already in the EHR); r17-overlap-2 leaves the register.
    let reg2 = edited_register(dir.path(), |l| {
        if l.starts_with("r17-overlap-2;") {
            None
        } else if l.starts_with("ok-all-2;") {
            Some(l.replace("SE2321000016-N001;Erik Berg", "SE2321000016-N002;Sara Holm"))
        } else {
            Some(l.to_owned())
        }
    });
    let (_, s2) = sync_summary(&p.base, &t, &reg2, &state, &sum, &["--chunk-size", "100"]);
    assert_eq!(
        (
            s2["created"].as_u64(),
            s2["updated"].as_u64(),
            s2["ended"].as_u64()
        ),
        (Some(0), Some(1), Some(1)),
        "{s2}"
    );
    assert_eq!(
        s2["references_created"], 1,
        "N002 at V0001 is a new PractitionerRole"
    );
    assert_eq!(
        p.writes.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "one transaction for the reference, one for the relations"
    );
    let rows = by_row(&client(&s.base, &t)).await;
    assert_eq!(rows.len(), handwritten_rows(), "nothing deleted");
    let ended = &rows["r17-overlap-2"][0];
    assert_eq!(ended["status"], "inactive");
    assert_eq!(ended["period"]["end"], "2026-06-01");
    let upd = &rows["ok-all-2"][0];
    assert_eq!(upd["meta"]["versionId"], "2");
    // history knows who was the FVK, and which run set it.
    let h = common::fastkontakt()
        .args(["history", "19310304-1004", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let h = String::from_utf8_lossy(&h.stdout);
    assert!(
        h.contains("SE2321000016-N002") && h.contains("(run 2, update"),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persons_edit_in_the_ehr_is_a_conflict_and_is_kept() {
    let s = server();
    let t = tenant("conflict");
    let dir = tempfile::tempdir().unwrap();
    let (state, sum) = (
        dir.path().join("state.sqlite"),
        dir.path().join("summary.json"),
    );
    sync(&s.base, &t, &handwritten(), &state, &[]);
    let c = client(&s.base, &t);
    let rows = by_row(&c).await;
    // A person changes a register-owned element (the period) and adds an EHR-owned note.
    let mut ct = rows["ok-all-2"][0].clone();
    ct["period"]["start"] = serde_json::json!("2023-06-01");
    ct["note"] = serde_json::json!([{"text": "Ring efter kl 10"}]);
    let id = ct["id"].as_str().unwrap().to_owned();
    c.send(Method::PUT, &format!("CareTeam/{id}"), Some(&ct), None)
        .await
        .unwrap();
    // On another relation a person only adds a note: not a conflict, and it survives updates.
    let mut other = rows["ok-all-1"][0].clone();
    other["note"] = serde_json::json!([{"text": "Tolk behövs"}]);
    let other_id = other["id"].as_str().unwrap().to_owned();
    c.send(
        Method::PUT,
        &format!("CareTeam/{other_id}"),
        Some(&other),
        None,
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(handwritten()).unwrap();
    let reg2 = dir.path().join("register2.csv");
    std::fs::write(
        &reg2,
        text.replace(
            "ok-all-1;19310304-1004;FLK;;;Aktiv;2022-02-01",
            "ok-all-1;19310304-1004;FLK;;;Aktiv;2022-03-01",
        ),
    )
    .unwrap();

    let (o, s2) = sync_summary(&s.base, &t, &reg2, &state, &sum, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(s2["conflicts"], 1, "{s2}");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("conflict: CareTeam/{id}")));
    let now = c.read("CareTeam", &id).await.unwrap().unwrap();
    assert_eq!(
        now["period"]["start"], "2023-06-01",
        "the person's change is kept"
    );
    let flk = c.read("CareTeam", &other_id).await.unwrap().unwrap();
    assert_eq!(
        flk["period"]["start"], "2022-03-01",
        "the register's change applied"
    );
    assert_eq!(
        flk["note"][0]["text"], "Tolk behövs",
        "the EHR-owned note survived the update"
    );

    assert_eq!(
        sync_summary(
            &s.base,
            &t,
            &reg2,
            &state,
            &sum,
            &["--on-conflict", "register-wins"]
        )
        .1["updated"],
        1
    );
    let now = c.read("CareTeam", &id).await.unwrap().unwrap();
    assert_eq!(
        now["period"]["start"], "2023-05-10",
        "register-wins restores the register's value"
    );
    assert_eq!(
        now["note"][0]["text"], "Ring efter kl 10",
        "and keeps the EHR's note"
    );
}

fn generated(dir: &Path, patients: u64, seed: u64) -> PathBuf {
    let m = fastkontakt::mapping::Mappings::load(&root().join("mappings"), None, None).unwrap();
    let spec = fastkontakt::samples::Spec {
        patients,
        seed,
        inconsistency_share: 0.0,
    };
    fastkontakt::samples::generate(&spec, &m, dir).unwrap();
    dir.join("register.csv")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_run_then_a_rerun_converges_with_no_duplicate_and_no_lost_row() {
    let s = server();
    let t = tenant("kill");
    let dir = tempfile::tempdir().unwrap();
    let reg = generated(dir.path(), 1500, 77);
    let expected = rows_in(&reg);
    let state = dir.path().join("state.sqlite");
    let c = client(&s.base, &t);
    let mut child = common::fastkontakt()
        .current_dir(root())
        .args([
            "sync",
            "--ehr",
            &s.base,
            "--tenant",
            &t,
            "--chunk-size",
            "25",
            "--register",
        ])
        .arg(&reg)
        .arg("--state")
        .arg(&state)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has written some relations but not all.
    let start = std::time::Instant::now();
    loop {
        // The product's own relations (not the probe's resources, written first).
        let n = common::product_careteams(&c).await;
        if n >= 50 || start.elapsed().as_secs() > 60 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the sync finished before it could be killed; make the region larger");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = by_row(&c).await.len();
    assert!(
        partial > 0 && partial < expected,
        "killed mid-run: {partial} of {expected}"
    );
    let sum = dir.path().join("summary.json");
    let (_, s2) = sync_summary(&s.base, &t, &reg, &state, &sum, &[]);
    assert_eq!(s2["errors"], 0, "{s2}");
    assert_eq!(s2["conflicts"], 0, "{s2}");
    let rows = by_row(&c).await;
    assert_eq!(rows.len(), expected, "no lost row");
    assert!(rows.values().all(|v| v.len() == 1), "no duplicate");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_syncs_started_at_once_leave_no_duplicates() {
    let s = server();
    let t = tenant("race");
    let dir = tempfile::tempdir().unwrap();
    let reg = generated(dir.path(), 400, 5);
    let spawn = |n: u32| {
        common::fastkontakt()
            .current_dir(root())
            .args([
                "sync",
                "--ehr",
                &s.base,
                "--tenant",
                &t,
                "--chunk-size",
                "20",
                "--register",
            ])
            .arg(&reg)
            .arg("--state")
            .arg(dir.path().join(format!("state{n}.sqlite")))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(1), spawn(2));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert!(
            o.status.code().is_some_and(|c| c <= 1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let rows = by_row(&client(&s.base, &t)).await;
    assert_eq!(rows.len(), rows_in(&reg));
    assert!(rows.values().all(|v| v.len() == 1), "no duplicate");
    let c = client(&s.base, &t);
    let roles = c.search_all("PractitionerRole?_count=500").await.unwrap();
    let mut ids: Vec<&str> = roles
        .iter()
        .filter_map(|r| r["identifier"][0]["value"].as_str())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "references not duplicated either");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_in_front_of_the_server_change_nothing_in_the_end_state() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let reg = generated(dir.path(), 300, 9);
    let clean = tenant("clean");
    sync(&s.base, &clean, &reg, &dir.path().join("clean.sqlite"), &[]);
    let faulty = tenant("faulty");
    let p = proxy(
        &s.base,
        Faults {
            too_many: 0.08,
            unavailable: 0.08,
            drop_after: 0.06,
            slow: 0.08,
            ..Default::default()
        },
        4,
    );
    let sum = dir.path().join("summary.json");
    let (o, s2) = sync_summary(
        &p.base,
        &faulty,
        &reg,
        &dir.path().join("faulty.sqlite"),
        &sum,
        &["--chunk-size", "15"],
    );
    assert_eq!(
        s2["errors"],
        0,
        "{s2}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        p.faults_injected.load(std::sync::atomic::Ordering::Relaxed) > 5,
        "faults were injected"
    );
    assert!(s2["retries"].as_u64().unwrap() > 0);
    let owned =
        |rows: BTreeMap<String, Vec<Value>>| -> BTreeMap<String, (usize, String, String, Value)> {
            rows.into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        (
                            v.len(),
                            v[0]["status"].as_str().unwrap_or("").to_owned(),
                            v[0]["period"].to_string(),
                            v[0]["participant"][0]["role"].clone(),
                        ),
                    )
                })
                .collect()
        };
    let a = owned(by_row(&client(&s.base, &clean)).await);
    let b = owned(by_row(&client(&s.base, &faulty)).await);
    assert_eq!(a, b, "same end state with and without faults");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_against_a_server_finds_what_check_against_the_same_files_finds() {
    use fastkontakt::checks::run::{self, CheckInput, EhrSide};
    let s = server();
    let t = tenant("check");
    let c = client(&s.base, &t);
    let m = fastkontakt::mapping::Mappings::load(&root().join("mappings"), None, None).unwrap();
    // Load the hand-written EHR sample into the server as it is (PUT to its own ids).
    common::load(&c, &root().join("samples/handwritten/ehr")).await;
    let profile =
        fastkontakt::checks::Profile::load("orebro", &root().join("mappings"), &m.terminology)
            .unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let reg = handwritten();
    let run_with = |ehr: EhrSide| {
        let input = CheckInput {
            register: Some(&reg),
            ehr: Some(ehr),
            profile: &profile,
            mappings: &m,
            as_of,
            quarantine: None,
            partition: run::Partition::ALL,
        };
        let r = run::run(input, &mut |_, _| {}).unwrap();
        let mut f: Vec<(String, String, String)> = r
            .findings
            .iter()
            .map(|f| {
                (
                    f.rule.to_owned(),
                    f.patient.to_string(),
                    f.message.to_string(),
                )
            })
            .collect();
        f.sort();
        (f, r.not_evaluated)
    };
    let from_files =
        run_with(EhrSide::from_files(&root().join("samples/handwritten/ehr"), &m).unwrap());
    let from_server = run_with(EhrSide::from_server(&c, &m).await.unwrap());
    assert!(from_files.0.len() > 20);
    assert_eq!(from_server, from_files);
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn private_key_jwt_assertion_is_signed_with_the_smart_claims() {
    use fastkontakt::fhir::client::{client_assertion, Secret};
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "key.pem",
        ],
    );
    openssl(
        dir.path(),
        &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
    );
    let key = Secret::load(&format!("file:{}", dir.path().join("key.pem").display())).unwrap();
    assert_eq!(format!("{key:?}"), "Secret(***)", "a secret never prints");
    let url = "https://idp.example/token";
    let jwt = client_assertion(
        "fastkontakt-prod",
        url,
        &key,
        jsonwebtoken::Algorithm::ES384,
        Some("k1"),
    )
    .unwrap();
    let public = std::fs::read(dir.path().join("pub.pem")).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES384);
    v.set_audience(&[url]);
    v.set_issuer(&["fastkontakt-prod"]);
    let data = jsonwebtoken::decode::<Value>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_ec_pem(&public).unwrap(),
        &v,
    )
    .expect("verifies with the public key");
    assert_eq!(data.header.kid.as_deref(), Some("k1"));
    assert_eq!(data.claims["sub"], "fastkontakt-prod");
    assert!(data.claims["jti"].as_str().is_some_and(|j| j.len() > 30));
    let exp = data.claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((250..=300).contains(&exp), "five minutes");
}

#[test]
fn pkcs12_client_certificates_load_and_a_wrong_password_is_named() {
    use fastkontakt::fhir::client::{ClientConfig, FhirClient, Secret, Tls};
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=SE2321000016-SYS1",
            "-days",
            "2",
        ],
    );
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "key.pem",
            "-in",
            "cert.pem",
            "-out",
            "id.p12",
            "-passout",
            "pass:hemligt",
        ],
    );
    let make = |password: &str| {
        let mut c = ClientConfig::new("https://ehr.example/fhir");
        c.tls = Tls {
            identity_p12: Some((dir.path().join("id.p12"), Secret::new(password))),
            ..Default::default()
        };
        FhirClient::new(c)
    };
    assert!(make("hemligt").is_ok());
    let err = make("fel")
        .err()
        .expect("a wrong password fails")
        .to_string();
    assert!(err.contains("PKCS#12"), "{err}");
    assert!(
        !err.contains("hemligt") && !err.contains("fel\""),
        "the password is not echoed: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_sync_over_hand_typed_contacts_doubles_none_of_them() {
    let s = server();
    let t = tenant("hand-typed");
    let c = client(&s.base, &t);
    // The EHR as a region has it at go-live: the hand-typed contacts, no product tag.
    common::load(&c, &root().join("samples/handwritten/ehr")).await;
    let count = || async {
        c.search_all("CareTeam?_count=500").await.unwrap().len()
            + c.search_all("Task?_count=500").await.unwrap().len()
    };
    let before = count().await;

    let work = tempfile::tempdir().unwrap();
    let summary = work.path().join("summary.json");
    let o = sync(
        &s.base,
        &t,
        &handwritten(),
        &work.path().join("state.sqlite"),
        &["--summary", summary.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let held = summary["takeover_pending"].as_u64().unwrap();
    assert!(
        held as usize + 10 >= handwritten_rows(),
        "the hand-typed contacts stand for most rows: {summary}"
    );
    assert!(err.contains("typed by hand"), "{err}");
    assert_eq!(
        o.status.code(),
        Some(1),
        "held rows leave the run incomplete: {err}"
    );
    // Only rows no hand-typed contact stands for were created.
    let created = summary["created"].as_u64().unwrap() as usize;
    assert_eq!(count().await, before + created, "{summary}");
    assert!(created + held as usize <= handwritten_rows(), "{summary}");
}

/// The handwritten register with each line as `edit` gives it (None leaves the line out),
/// written as `register2.csv` in `dir`.
fn edited_register(dir: &Path, edit: impl Fn(&str) -> Option<String>) -> PathBuf {
    let edited: String = std::fs::read_to_string(handwritten())
        .unwrap()
        .lines()
        .filter_map(edit)
        .map(|l| l + "\n")
        .collect();
    let reg2 = dir.join("register2.csv");
    std::fs::write(&reg2, edited).unwrap();
    reg2
}

/// The handwritten register with ok-all-1's FLK moved from Anna Lind to Jonas Ek (same unit).
fn register_with_moved_flk(dir: &Path) -> PathBuf {
    edited_register(dir, |l| {
        Some(if l.starts_with("ok-all-1;") {
            l.replace("SE2321000016-L001;Anna Lind", "SE2321000016-L004;Jonas Ek")
        } else {
            l.to_owned()
        })
    })
}

/// A person points the Patient at another organisation, as someone at the unit would.
async fn point_elsewhere(c: &FhirClient, mut patient: Value) {
    patient["generalPractitioner"] =
        serde_json::json!([{"reference": "Organization/someone-elses"}]);
    let id = patient["id"].as_str().unwrap().to_owned();
    c.send(Method::PUT, &format!("Patient/{id}"), Some(&patient), None)
        .await
        .unwrap();
}

/// A sync whose summary names a conflict over the Patient's listing.
fn assert_listing_conflict(s: &Value) {
    assert!(s["conflicts"].as_u64().unwrap() >= 1, "{s}");
    assert!(
        s["messages"].to_string().contains("generalPractitioner"),
        "{s}"
    );
}

/// ok-all-1's Patient as the server holds it.
async fn ok_all_1(c: &FhirClient) -> Value {
    c.search_post(
        "Patient",
        &[(
            "identifier",
            "urn:oid:1.2.752.129.2.1.3.1|193103041004".to_owned(),
        )],
    )
    .await
    .unwrap()
    .remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_flk_in_the_register_moves_the_patients_general_practitioner() {
    let s = server();
    let t = tenant("listing");
    let c = client(&s.base, &t);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    sync(&s.base, &t, &handwritten(), &state, &[]);
    let patient = || ok_all_1(&c);
    let role_of = |hsa: &str| {
        let hsa = hsa.to_owned();
        let c = &c;
        async move {
            let p = c
                .search_post(
                    "Practitioner",
                    &[("identifier", format!("urn:oid:1.2.752.129.2.1.4.1|{hsa}"))],
                )
                .await
                .unwrap();
            let pid = p[0]["id"].as_str().unwrap().to_owned();
            let roles = c
                .search_all(&format!("PractitionerRole?practitioner=Practitioner/{pid}"))
                .await
                .unwrap();
            format!("PractitionerRole/{}", roles[0]["id"].as_str().unwrap())
        }
    };
    let gp = |p: &Value| -> Vec<String> {
        p["generalPractitioner"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reference"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = patient().await;
    assert!(
        gp(&before).contains(&role_of("SE2321000016-L001").await),
        "{before}"
    );

    let reg2 = register_with_moved_flk(dir.path());
    let sum = dir.path().join("s.json");
    let (_, s2) = sync_summary(&s.base, &t, &reg2, &state, &sum, &[]);
    assert_eq!(s2["errors"], 0, "{s2}");
    assert_eq!(s2["updated"], 2, "the relation and the Patient: {s2}");
    let after = patient().await;
    let jonas = role_of("SE2321000016-L004").await;
    assert!(gp(&after).contains(&jonas), "{after}");
    assert!(!gp(&after).contains(&role_of("SE2321000016-L001").await));
    // What else the Patient holds is the EHR's, and stays.
    assert_eq!(after["identifier"], before["identifier"]);
    assert_eq!(after["name"], before["name"]);
    assert_eq!(
        sync_summary(&s.base, &t, &reg2, &state, &sum, &[]).1["writes"],
        0
    );

    // A person points the Patient elsewhere; the register then moves the FLK back: a conflict,
    // and the person's value is kept.
    point_elsewhere(&c, after.clone()).await;
    assert_listing_conflict(&sync_summary(&s.base, &t, &handwritten(), &state, &sum, &[]).1);
    assert_eq!(
        gp(&patient().await),
        vec!["Organization/someone-elses".to_owned()]
    );
}

/// The Patient a sync created carries its listing as created: a person who points it
/// elsewhere before the register's next change is not overwritten by that change.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_changing_a_created_patients_general_practitioner_is_a_conflict() {
    let s = server();
    let t = tenant("listing-baseline");
    let c = client(&s.base, &t);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    sync(&s.base, &t, &handwritten(), &state, &[]);
    let created = ok_all_1(&c).await;
    let id = created["id"].as_str().unwrap().to_owned();
    point_elsewhere(&c, created).await;
    let reg2 = register_with_moved_flk(dir.path());
    let sum = dir.path().join("s.json");
    assert_listing_conflict(&sync_summary(&s.base, &t, &reg2, &state, &sum, &[]).1);
    let now = c
        .read("Patient", &id)
        .await
        .unwrap()
        .expect("the Patient is still there");
    assert_eq!(
        now["generalPractitioner"],
        serde_json::json!([{"reference": "Organization/someone-elses"}]),
        "the person's value is kept"
    );
}
