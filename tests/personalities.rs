//! Servers unlike the test server, played by a proxy in front of it: one that refuses
//! client-chosen ids, one without transactions, one that ignores If-Match, one that answers
//! writes without a body, one that caps `_count` at 50, and all of these at once. `probe`
//! must name each; a sync, a changed export and a kill -9 with a re-run must end where the
//! plain server ends, with no duplicate and a Provenance for every change.

mod common;

use common::{client, proxy, root, server, tenant, Faults, Personality};
use fastkontakt::fhir::client::FhirClient;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const ROW_SYSTEM: &str =
    "https://fhir.fastkontakt.example/NamingSystem/befolkningsregistret-rad-id";
const TAG: &str = "https://fhir.fastkontakt.example/CodeSystem/kalla|befolkningsregistret";

fn personalities() -> Vec<(&'static str, Personality)> {
    let all = Personality {
        refuse_client_ids: true,
        no_transactions: true,
        ignore_if_match: true,
        return_minimal: true,
        count_cap: Some(50),
        no_tag_search: false,
        unstable_paging: true,
        max_transaction_entries: None,
    };
    vec![
        (
            "refuses client ids",
            Personality {
                refuse_client_ids: true,
                ..Default::default()
            },
        ),
        (
            "no transactions",
            Personality {
                no_transactions: true,
                ..Default::default()
            },
        ),
        (
            "ignores If-Match",
            Personality {
                ignore_if_match: true,
                ..Default::default()
            },
        ),
        (
            "return=minimal",
            Personality {
                return_minimal: true,
                ..Default::default()
            },
        ),
        (
            "_count capped at 50",
            Personality {
                count_cap: Some(50),
                ..Default::default()
            },
        ),
        (
            "paging moves under writes",
            Personality {
                unstable_paging: true,
                ..Default::default()
            },
        ),
        ("all at once", all),
    ]
}

fn probe(base: &str, tenant: &str, dir: &Path) -> (Option<i32>, Value, String) {
    let report = dir.join(format!("probe-{tenant}.json"));
    let o = common::fastkontakt()
        .current_dir(root())
        .args([
            "probe",
            "--ehr",
            base,
            "--tenant",
            tenant,
            "--yes-write",
            "--report",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    let json = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no probe report:\n{text}"));
    (o.status.code(), json, text)
}

#[test]
fn probe_names_what_each_server_does() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    // The plain server first: everything works.
    let t = tenant("probe-plain");
    let (code, plain, text) = probe(&s.base, &t, dir.path());
    assert_eq!(code, Some(0), "{text}");
    let f = &plain["facts"];
    for k in [
        "update_create",
        "create",
        "transaction",
        "transaction_atomic",
        "transaction_100",
        "batch",
        "if_match",
        "if_match_in_transaction",
        "conditional_create",
        "search_identifier",
        "search_tag",
        "paging_stable",
        "history",
        "return_representation",
    ] {
        assert_eq!(f[k], true, "{k}: {text}");
    }
    assert!(f["count_cap"].is_null(), "{text}");
    assert_eq!(f["left_behind"].as_array().unwrap().len(), 0, "cleaned up");
    assert_eq!(plain["strategy"]["create"], "put");
    assert_eq!(plain["strategy"]["grouping"], "transaction");
    let c = client(&s.base, &t);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let left = rt.block_on(c.search_all("CareTeam?_count=10")).unwrap();
    assert!(left.is_empty(), "the probe removes what it wrote: {left:?}");

    for (name, p) in personalities() {
        let proxy = proxy(
            &s.base,
            Faults {
                personality: p,
                ..Default::default()
            },
            7,
        );
        let t = tenant("probe");
        let (code, o, text) = probe(&proxy.base, &t, dir.path());
        let f = &o["facts"];
        assert_eq!(
            code,
            Some(0),
            "{name}: a safe sync is still possible\n{text}"
        );
        if p.refuse_client_ids {
            assert_eq!(f["update_create"], false, "{name}: {text}");
            assert_eq!(f["create"], true, "{name}");
            assert_eq!(o["strategy"]["create"], "conditional-post", "{name}");
        } else {
            assert_eq!(f["update_create"], true, "{name}: {text}");
        }
        if p.no_transactions {
            assert_eq!(f["transaction"], false, "{name}: {text}");
            assert_eq!(f["declares_transaction"], false, "{name}");
            assert_eq!(f["batch"], true, "{name}");
            // Batches where If-Match holds, else one request at a time.
            let want = if p.ignore_if_match { "single" } else { "batch" };
            assert_eq!(o["strategy"]["grouping"], want, "{name}");
        }
        if p.ignore_if_match {
            assert_eq!(f["if_match"], false, "{name}: {text}");
            assert_eq!(o["strategy"]["if_match"], false, "{name}");
            assert_eq!(o["strategy"]["grouping"], "single", "{name}");
            assert!(text.contains("IGNORED"), "{text}");
        } else {
            assert_eq!(f["if_match"], true, "{name}: {text}");
        }
        if p.return_minimal {
            assert_eq!(f["return_minimal"], true, "{name}: {text}");
            assert_eq!(f["return_representation"], false, "{name}");
        } else {
            assert_eq!(f["return_representation"], true, "{name}");
        }
        match p.count_cap {
            Some(n) => assert_eq!(f["count_cap"], n, "{name}: {text}"),
            None => assert!(f["count_cap"].is_null(), "{name}: {text}"),
        }
        assert_eq!(f["paging_stable"], !p.unstable_paging, "{name}: {text}");
        assert_eq!(
            o["strategy"]["read_by_identifier"], p.unstable_paging,
            "{name}"
        );
    }
}

#[test]
fn a_server_the_product_cannot_find_its_own_on_is_refused_before_anything_is_written() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy(
        &s.base,
        Faults {
            personality: Personality {
                no_tag_search: true,
                ..Default::default()
            },
            ..Default::default()
        },
        5,
    );
    let t = tenant("no-tag");
    let (code, o, text) = probe(&proxy.base, &t, dir.path());
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(o["facts"]["search_tag"], false);
    assert!(
        text.contains("NOT possible") && text.contains("_tag"),
        "{text}"
    );
    let summary = dir.path().join("s.json");
    let out = common::fastkontakt()
        .current_dir(root())
        .args(["sync", "--ehr", &proxy.base, "--tenant", &t, "--register"])
        .arg(root().join("samples/handwritten/register.csv"))
        .arg("--state")
        .arg(dir.path().join("state.sqlite"))
        .arg("--summary")
        .arg(&summary)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("safe sync") && err.contains("_tag"), "{err}");
    let c = client(&s.base, &t);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let written = rt.block_on(c.search_all("CareTeam?_count=10")).unwrap();
    assert!(
        written.is_empty(),
        "nothing written but the probe's, removed: {written:?}"
    );
}

/// A generated region, and the same region changed: every 11th row gone (ended), every 7th
/// active row ended by the register on 2026-05-31.
fn regions(dir: &Path) -> (PathBuf, PathBuf) {
    let m = fastkontakt::mapping::Mappings::load(&root().join("mappings"), None, None).unwrap();
    let spec = fastkontakt::samples::Spec {
        patients: 250,
        seed: 23,
        inconsistency_share: 0.0,
    };
    fastkontakt::samples::generate(&spec, &m, dir).unwrap();
    let r1 = dir.join("register.csv");
    let text = std::fs::read_to_string(&r1).unwrap();
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        if n > 0 && n % 11 == 0 {
            continue;
        }
        let mut cols: Vec<String> = line.split(';').map(str::to_owned).collect();
        if n > 0 && n % 7 == 0 && cols[5] == "Aktiv" && cols[6].as_str() < "2026-05-31" {
            cols[5] = "Avslutad".into();
            cols[7] = "2026-05-31".into();
        }
        out.push_str(&cols.join(";"));
        out.push('\n');
    }
    let r2 = dir.join("register2.csv");
    std::fs::write(&r2, out).unwrap();
    (r1, r2)
}

fn sync(base: &str, tenant: &str, register: &Path, state: &Path) -> Value {
    common::sync_with_summary(base, tenant, register, state, &["--chunk-size", "50"]).1
}

/// The product's relations as the register's facts, whatever ids the server gave: per Rad-id,
/// the status, period, category, role and the identifiers of the patient and the member.
async fn end_state(c: &FhirClient) -> BTreeMap<String, Vec<String>> {
    let mut ident: HashMap<String, String> = HashMap::new();
    for t in [
        "Patient",
        "PractitionerRole",
        "Organization",
        "Practitioner",
    ] {
        for r in c.search_all(&format!("{t}?_count=500")).await.unwrap() {
            let v = r["identifier"][0]["value"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            ident.insert(format!("{t}/{}", r["id"].as_str().unwrap()), v);
        }
    }
    let name = |v: &Value| {
        ident
            .get(v.as_str().unwrap_or(""))
            .cloned()
            .unwrap_or_else(|| format!("unresolved {v}"))
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Each Patient's listing as the identifiers it points at (a dangling reference shows).
    for p in c.search_all("Patient?_count=500").await.unwrap() {
        let mut gp: Vec<String> = p["generalPractitioner"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| name(&r["reference"]))
            .collect();
        gp.sort();
        let who = p["identifier"][0]["value"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        out.entry(format!("Patient {who}"))
            .or_default()
            .push(gp.join(", "));
    }
    for t in ["CareTeam", "Task"] {
        for r in c
            .search_all(&format!("{t}?_tag={TAG}&_count=500"))
            .await
            .unwrap()
        {
            let row = r["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["system"] == ROW_SYSTEM)
                .and_then(|i| i["value"].as_str())
                .map(str::to_owned)
                // An inform-the-patient Task carries its duty's identifier, not a row.
                .or_else(|| {
                    r["identifier"][0]["value"]
                        .as_str()
                        .map(|v| format!("duty {v}"))
                })
                .unwrap_or_else(|| "?".into());
            let facts = format!(
                "{t} {} {} {} subject={} member={} owner={}",
                r["status"],
                r["period"],
                r["participant"][0]["role"],
                name(
                    &r["subject"]["reference"]
                        .clone()
                        .or_else(|| r["for"]["reference"].clone())
                ),
                name(&r["participant"][0]["member"]["reference"]),
                r["owner"]["reference"]
                    .as_str()
                    .map(|x| name(&Value::from(x)))
                    .unwrap_or_default(),
            );
            out.entry(row).or_default().push(facts);
        }
    }
    out
}

trait OrElse {
    fn or_else(self, f: impl FnOnce() -> Value) -> Value;
}
impl OrElse for Value {
    fn or_else(self, f: impl FnOnce() -> Value) -> Value {
        if self.is_null() {
            f()
        } else {
            self
        }
    }
}

/// Every product relation is a target of a Provenance (by id, versioned or not).
async fn unprovenanced(c: &FhirClient) -> Vec<String> {
    let mut targets = BTreeSet::new();
    for p in c.search_all("Provenance?_count=500").await.unwrap() {
        for t in p["target"].as_array().into_iter().flatten() {
            let r = t["reference"].as_str().unwrap_or("");
            targets.insert(r.split("/_history/").next().unwrap_or(r).to_owned());
        }
    }
    let mut missing = Vec::new();
    for t in ["CareTeam", "Task"] {
        for r in c
            .search_all(&format!("{t}?_tag={TAG}&_count=500"))
            .await
            .unwrap()
        {
            let id = format!("{t}/{}", r["id"].as_str().unwrap());
            if !targets.contains(&id) {
                missing.push(id);
            }
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread")]
async fn every_server_ends_where_the_plain_server_ends() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = regions(dir.path());
    // The plain server: the end state to reach.
    let plain = tenant("plain");
    let st = dir.path().join("plain.sqlite");
    let a = sync(&s.base, &plain, &r1, &st);
    assert_eq!(a["errors"], 0, "{a}");
    let b = sync(&s.base, &plain, &r2, &st);
    assert_eq!(b["errors"], 0, "{b}");
    assert!(b["ended"].as_u64().unwrap() > 10, "{b}");
    let want = end_state(&client(&s.base, &plain)).await;
    assert!(want.values().all(|v| v.len() == 1));

    for (name, p) in personalities() {
        let proxy = proxy(
            &s.base,
            Faults {
                personality: p,
                ..Default::default()
            },
            11,
        );
        let t = tenant("personality");
        let c = client(&s.base, &t);
        let state = dir.path().join(format!("{t}.sqlite"));
        // The first sync, killed once it has written some of the product's relations.
        let mut child = common::fastkontakt()
            .current_dir(root())
            .args([
                "sync",
                "--ehr",
                &proxy.base,
                "--tenant",
                &t,
                "--as-of",
                "2026-06-01",
            ])
            .args(["--chunk-size", "20", "--register"])
            .arg(&r1)
            .arg("--state")
            .arg(&state)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let mut killed = false;
        loop {
            let n = common::product_careteams(&c).await;
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if n >= 40 || start.elapsed().as_secs() > 120 {
                child.kill().unwrap();
                child.wait().unwrap();
                killed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            killed,
            "{name}: the first sync finished before it could be killed; make the region larger"
        );
        let first = sync(&proxy.base, &t, &r1, &state);
        assert_eq!(first["errors"], 0, "{name}: {first}");
        assert_eq!(first["conflicts"], 0, "{name}: {first}");
        let changed = sync(&proxy.base, &t, &r2, &state);
        assert_eq!(changed["errors"], 0, "{name}: {changed}");
        assert_eq!(changed["conflicts"], 0, "{name}: {changed}");
        assert_eq!(changed["ended"], b["ended"], "{name}: {changed}");
        let got = end_state(&c).await;
        let dupes: Vec<&String> = got
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, _)| k)
            .collect();
        assert!(dupes.is_empty(), "{name}: duplicates {dupes:?}");
        type Diff<'d> = (&'d String, &'d Vec<String>, Option<&'d Vec<String>>);
        let differs: Vec<Diff> = got
            .iter()
            .filter(|(k, v)| want.get(*k) != Some(*v))
            .map(|(k, v)| (k, v, want.get(k)))
            .take(3)
            .collect();
        assert_eq!(got.len(), want.len(), "{name} (killed: {killed})");
        assert!(differs.is_empty(), "{name}: {differs:?}");
        let missing = unprovenanced(&c).await;
        assert!(missing.is_empty(), "{name}: no Provenance for {missing:?}");
        let again = sync(&proxy.base, &t, &r2, &state);
        let writes = again["writes"].as_u64().unwrap();
        assert_eq!(writes, 0, "{name}: a re-run writes nothing: {again}");
        if p.ignore_if_match {
            let said = again["messages"].to_string() + &changed["messages"].to_string();
            assert!(said.contains("ignores If-Match"), "{name}: {said}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_syncs_through_one_state_file_take_turns_on_a_server_that_names_its_creates() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (r1, _) = regions(dir.path());
    let proxy = proxy(
        &s.base,
        Faults {
            personality: Personality {
                refuse_client_ids: true,
                no_transactions: true,
                ..Default::default()
            },
            ..Default::default()
        },
        13,
    );
    let t = tenant("turns");
    let state = dir.path().join("state.sqlite");
    let spawn = || {
        common::fastkontakt()
            .current_dir(root())
            .args(["sync", "--ehr", &proxy.base, "--tenant", &t, "--register"])
            .arg(&r1)
            .arg("--state")
            .arg(&state)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let errs = format!(
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(a.status.code().is_some_and(|c| c <= 1), "{errs}");
    assert!(b.status.code().is_some_and(|c| c <= 1), "{errs}");
    assert!(errs.contains("waiting: another run holds"), "{errs}");
    let got = end_state(&client(&s.base, &t)).await;
    let dupes: Vec<&String> = got
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(dupes.is_empty(), "duplicates {dupes:?}");
    let c = client(&s.base, &t);
    let patients = c.search_all("Patient?_count=500").await.unwrap();
    let ids: BTreeSet<&str> = patients
        .iter()
        .filter_map(|p| p["identifier"][0]["value"].as_str())
        .collect();
    assert_eq!(ids.len(), patients.len(), "no Patient created twice");
}

/// The end a plain server (no proxy) comes to after one sync of `register` into a tenant of its
/// own: what every personality must end at.
async fn plain_end(
    base: &str,
    dir: &Path,
    register: &Path,
    name: &str,
) -> BTreeMap<String, Vec<String>> {
    let plain = tenant(name);
    let a = sync(base, &plain, register, &dir.join(format!("{name}.sqlite")));
    assert_eq!(a["errors"], 0, "{a}");
    end_state(&client(base, &plain)).await
}

/// The tenant ends where the plain server ended, every change with its Provenance.
async fn ends_as(base: &str, tenant: &str, want: &BTreeMap<String, Vec<String>>) {
    let c = client(base, tenant);
    assert_eq!(&end_state(&c).await, want);
    let missing = unprovenanced(&c).await;
    assert!(missing.is_empty(), "no Provenance for {missing:?}");
}

/// A server (or the gateway before it) that takes the probe's transaction of 100 but refuses
/// the sync's of 500: the sync goes on in transactions of 100, not one request per entry, says
/// so, and ends where the plain server ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_refused_for_its_size_is_sent_in_parts_of_the_probed_size() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (r1, _) = regions(dir.path());
    let want = plain_end(&s.base, dir.path(), &r1, "plain-size").await;

    let proxy = proxy(
        &s.base,
        Faults {
            personality: Personality {
                max_transaction_entries: Some(100),
                ..Default::default()
            },
            ..Default::default()
        },
        12,
    );
    let t = tenant("size-limit");
    let state = dir.path().join("limited.sqlite");
    let got = common::sync_with_summary(&proxy.base, &t, &r1, &state, &[]).1;
    assert_eq!(got["errors"], 0, "{got}");
    assert!(
        got["messages"].to_string().contains("96 at a time"),
        "{got}"
    );
    let writes = got["writes"].as_u64().unwrap();
    let changes = got["created"].as_u64().unwrap() + got["references_created"].as_u64().unwrap();
    eprintln!("size limit: {changes} changes in {writes} writes");
    assert!(
        writes * 2 < changes,
        "{changes} changes in {writes} writes: transactions, not one request each: {got}"
    );
    ends_as(&s.base, &t, &want).await;
}

/// Two transactions travel at once (the server works on one while the next is built), never
/// more, and never one beside a transaction holding what its writes point at (a Patient's
/// beside the PractitionerRoles it names): the end is the plain server's.
#[tokio::test(flavor = "multi_thread")]
async fn two_transactions_travel_together_but_never_beside_what_they_point_at() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (r1, _) = regions(dir.path());
    let want = plain_end(&s.base, dir.path(), &r1, "plain-together").await;

    let proxy = proxy(
        &s.base,
        Faults {
            slow_transactions: true,
            ..Default::default()
        },
        14,
    );
    let t = tenant("together");
    let state = dir.path().join("together.sqlite");
    // Chunks of 20: several of each kind (references, Patients, relations).
    let run = || common::sync_with_summary(&proxy.base, &t, &r1, &state, &["--chunk-size", "20"]).1;
    let got = run();
    assert_eq!(got["errors"], 0, "{got}");
    let (most, pairs) = {
        let t = proxy.together.lock().unwrap();
        (t.most, t.pairs.clone())
    };
    assert_eq!(most, 2, "two transactions in flight at most, and at times");
    // What a write may point at lies in a lower tier: a pair in flight shares one tier.
    let tier = |t: &str| match t {
        "Organization" => 0,
        "Practitioner" => 1,
        "PractitionerRole" => 2,
        "Patient" => 3,
        _ => 4,
    };
    let tiers = |types: &BTreeSet<String>| types.iter().map(|t| tier(t)).collect::<BTreeSet<_>>();
    for (a, b) in &pairs {
        let (ta, tb) = (tiers(a), tiers(b));
        assert!(
            ta.len() == 1 && ta == tb,
            "in flight together: {a:?} and {b:?}"
        );
    }
    let shared = pairs.len();
    eprintln!("{shared} pairs of transactions in flight together");
    ends_as(&s.base, &t, &want).await;
    let again = run();
    assert_eq!(again["created"], 0, "{again}");
    assert_eq!(again["updated"], 0, "{again}");
}

/// Syncs through a proxy that holds each transaction 100 ms and plays `faults` on the sync's
/// first transaction: exactly that one fault, no error, one transaction in flight at most
/// afterwards, and the plain server's end.
async fn one_at_a_time_after(faults: Faults, name: &str, seed: u64, after: &str) {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (r1, _) = regions(dir.path());
    let want = plain_end(&s.base, dir.path(), &r1, &format!("plain-{name}")).await;
    let proxy = proxy(
        &s.base,
        Faults {
            slow_transactions: true,
            ..faults
        },
        seed,
    );
    let t = tenant(name);
    let state = dir.path().join(format!("{name}.sqlite"));
    let got = common::sync_with_summary(&proxy.base, &t, &r1, &state, &["--chunk-size", "20"]).1;
    assert_eq!(got["errors"], 0, "{got}");
    assert_eq!(
        proxy
            .faults_injected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let most = proxy.together.lock().unwrap().most;
    assert_eq!(most, 1, "one transaction at a time after {after}");
    ends_as(&s.base, &t, &want).await;
}

/// A server that answered 429 once is pressed no harder: the rest of the run sends one
/// transaction at a time, and ends where the plain server ends.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_429_transactions_go_one_at_a_time() {
    let faults = Faults {
        throttle_first_transaction: true,
        ..Default::default()
    };
    one_at_a_time_after(faults, "throttled", 15, "the 429").await;
}

/// A transaction the server refuses for what it holds (400, not its size) is written item by
/// item, and the rest of the run sends one transaction at a time: what travels beside a
/// refused transaction could be refused with it.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_refused_transaction_transactions_go_one_at_a_time() {
    let faults = Faults {
        refuse_first_transaction: true,
        ..Default::default()
    };
    one_at_a_time_after(faults, "refused", 16, "the refusal").await;
}
