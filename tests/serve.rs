//! `fastkontakt serve` as a process against the real FHIR test server: triggered by schedule,
//! by a dropped export and over HTTP; one queued run per trigger during a run; metrics equal to
//! the run summaries; bearer tokens; SIGTERM mid-run and a restart that finishes the run.

mod common;

use common::{client, root, server, tenant};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "serve-test-token-0123456789";

struct Serve {
    child: std::process::Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A service file: the `[server]` section on `port` with its history in `dir`, `extra` server
/// keys, then the jobs.
fn serve_toml(dir: &Path, port: u16, extra: &str, jobs: &str) -> PathBuf {
    let path = dir.join(format!("serve-{port}.toml"));
    let history = dir.join(format!("history-{port}.sqlite"));
    std::fs::write(
        &path,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\nhistory = \"{}\"\n{extra}\n{jobs}",
            history.display()
        ),
    )
    .unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(config: &Path, port: u16) -> Serve {
    let mut cmd = common::fastkontakt();
    cmd.current_dir(root())
        .args(["serve", "--config"])
        .arg(config)
        .stderr(std::process::Stdio::null());
    let child = common::spawn_tied_to_process(cmd).unwrap();
    // Dropped (and so stopped) on every path out of here, a panic included.
    let srv = Serve {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    srv
}

async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let c = ::reqwest::Client::new();
    let mut r = c.get(format!("{base}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn post(base: &str, path: &str) -> u16 {
    ::reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn runs(base: &str) -> Vec<Value> {
    let (status, body) = get(base, "/runs", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<Value>>(&body).unwrap()
}

/// Waits until `job` has `n` finished runs; returns its runs.
async fn finished(base: &str, job: &str, n: usize, limit: Duration) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        let r: Vec<Value> = runs(base)
            .await
            .into_iter()
            .filter(|r| r["job"] == job)
            .collect();
        if r.iter().filter(|r| r["outcome"] != "running").count() >= n {
            return r;
        }
        assert!(t0.elapsed() < limit, "{job}: {n} runs not finished: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn generated(dir: &Path, patients: u64) -> PathBuf {
    let m = fastkontakt::mapping::Mappings::load(&root().join("mappings"), None, None).unwrap();
    let spec = fastkontakt::samples::Spec {
        patients,
        seed: 31,
        inconsistency_share: 0.0,
    };
    let out = dir.join("region");
    fastkontakt::samples::generate(&spec, &m, &out).unwrap();
    out.join("register.csv")
}

/// The value of a metric line `name{labels} value`.
fn metric(text: &str, name: &str, job: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l.contains(&format!("job=\"{job}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_on_schedule_on_a_dropped_export_and_when_asked_with_metrics_and_tokens() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (t_ask, t_cron, t_drop) = (
        tenant("serve-ask"),
        tenant("serve-cron"),
        tenant("serve-drop"),
    );
    let big = generated(dir.path(), 1500);
    let drop = dir.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let port = free_port();
    let hand = root().join("samples/handwritten/register.csv");
    let config = dir.path().join("serve.toml");
    let state = |n: &str| dir.path().join(format!("{n}.sqlite"));
    std::fs::write(
        &config,
        format!(
            r#"
[server]
bind = "127.0.0.1:{port}"
tokens = "file:{tokens}"
history = "{history}"
drop_poll_seconds = 1

[[job]]
name = "asked"
kind = "sync"
[job.sync]
register = "{big}"
ehr = "{ehr}"
tenant = "{t_ask}"
state = "{s1}"
chunk_size = 50

[[job]]
name = "nightly"
kind = "sync"
schedule = "*/2 * * * * *"
[job.sync]
register = "{hand}"
ehr = "{ehr}"
tenant = "{t_cron}"
state = "{s2}"
as_of = "2026-06-01"

[[job]]
name = "region-check"
kind = "reconcile"
profile = "orebro"
report = "{reports}"
[job.sync]
register = "{hand}"
ehr = "{hand_ehr}"
as_of = "2026-06-01"

[[job]]
name = "rules"
kind = "check"
profile = "gavleborg"
report = "{reports}"
[job.sync]
register = "{hand}"
ehr = "{hand_ehr}"
as_of = "2026-06-01"

[[job]]
name = "dropped"
kind = "sync"
drop_folder = "{drop}"
[job.sync]
ehr = "{ehr}"
tenant = "{t_drop}"
state = "{s3}"
as_of = "2026-06-01"
"#,
            tokens = tokens.display(),
            history = dir.path().join("history.sqlite").display(),
            big = big.display(),
            hand = hand.display(),
            hand_ehr = root().join("samples/handwritten/ehr").display(),
            reports = dir.path().join("reports").display(),
            drop = drop.display(),
            ehr = s.base,
            s1 = state("asked").display(),
            s2 = state("nightly").display(),
            s3 = state("dropped").display(),
        ),
    )
    .unwrap();
    let srv = start(&config, port);

    // Tokens: none → 401, the file's → 200; the health check needs none.
    assert_eq!(get(&srv.base, "/runs", None).await.0, 401);
    assert_eq!(get(&srv.base, "/runs", Some("wrong")).await.0, 401);
    assert_eq!(get(&srv.base, "/healthz", None).await.0, 200);
    let (status, ready) = get(&srv.base, "/readyz", Some(TOKEN)).await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("\"asked\":true"), "{ready}");

    // Asked over HTTP, three times while the first run runs: two runs, not three.
    assert_eq!(post(&srv.base, "/jobs/asked/run").await, 202);
    let t0 = Instant::now();
    while !runs(&srv.base)
        .await
        .iter()
        .any(|r| r["job"] == "asked" && r["outcome"] == "running")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the asked run never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(post(&srv.base, "/jobs/asked/run").await, 202);
    assert_eq!(post(&srv.base, "/jobs/asked/run").await, 202);
    assert_eq!(post(&srv.base, "/jobs/nope/run").await, 404);
    let asked = finished(&srv.base, "asked", 2, Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked_now: Vec<Value> = runs(&srv.base)
        .await
        .into_iter()
        .filter(|r| r["job"] == "asked")
        .collect();
    assert_eq!(asked_now.len(), 2, "one queued run, not two: {asked_now:?}");
    let first = asked.iter().min_by_key(|r| r["id"].as_i64()).unwrap();
    assert_eq!(first["trigger"], "asked over HTTP");
    let created = first["summary"]["created"].as_u64().unwrap();
    assert!(created > 1000, "{first}");
    let second = asked.iter().max_by_key(|r| r["id"].as_i64()).unwrap();
    assert_eq!(
        second["summary"]["created"], 0,
        "the second run finds it done: {second}"
    );

    // On schedule: the per-second cron ran the hand-written register.
    let nightly = finished(&srv.base, "nightly", 1, Duration::from_secs(60)).await;
    assert!(nightly
        .iter()
        .any(|r| r["trigger"].as_str().unwrap().starts_with("schedule")));

    // A dropped export, complete by its .done marker.
    std::fs::copy(&hand, drop.join("export-2026-06-01.csv")).unwrap();
    std::fs::write(drop.join("export-2026-06-01.csv.done"), "").unwrap();
    let dropped = finished(&srv.base, "dropped", 1, Duration::from_secs(60)).await;
    assert!(dropped[0]["trigger"]
        .as_str()
        .unwrap()
        .contains("export-2026-06-01.csv"));
    let c = client(&s.base, &t_drop);
    assert_eq!(
        common::product_careteams(&c).await,
        dropped[0]["summary"]["created"].as_u64().unwrap() as usize
            - dropped[0]["summary"]["duties_written"]
                .as_u64()
                .unwrap_or(0) as usize
            - count_tasks(&dropped[0]),
    );

    // The metrics are the summaries', in the Prometheus text format.
    let (status, text) = get(&srv.base, "/metrics", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let sum_created: u64 = asked
        .iter()
        .map(|r| r["summary"]["created"].as_u64().unwrap())
        .sum();
    assert_eq!(
        metric(&text, "fastkontakt_relations_created_total", "asked"),
        Some(sum_created as f64),
        "{text}"
    );
    assert_eq!(
        metric(&text, "fastkontakt_runs_total", "asked"),
        Some(2.0),
        "{text}"
    );
    assert!(metric(
        &text,
        "fastkontakt_last_success_timestamp_seconds",
        "dropped"
    )
    .is_some());
    // Every FHIR request of the runs is in the latency histogram.
    let sum_requests: u64 = asked
        .iter()
        .map(|r| r["summary"]["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(
        metric(
            &text,
            "fastkontakt_fhir_request_duration_seconds_count",
            "asked"
        ),
        Some(sum_requests as f64),
        "{text}"
    );
    // Every line is a comment, a sample or the end marker.
    for l in text.lines() {
        assert!(
            l.starts_with('#') || l.split(' ').count() == 2,
            "not Prometheus text: {l}"
        );
    }
    // A reconcile job: its summary, its report folder served per run, its findings counted.
    assert_eq!(post(&srv.base, "/jobs/region-check/run").await, 202);
    let rc = finished(&srv.base, "region-check", 1, Duration::from_secs(120)).await;
    let rc = &rc[0];
    assert_eq!(rc["outcome"], "findings", "{rc}");
    let errors = rc["summary"]["findings"]["error"].as_u64().unwrap();
    assert!(errors > 10, "{rc}");
    let id = rc["id"].as_i64().unwrap();
    let (status, html) = get(&srv.base, &format!("/runs/{id}/report/"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Sammanfattning"), "the report page");
    let (status, fj) = get(
        &srv.base,
        &format!("/runs/{id}/report/findings.json"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let fj: Value = serde_json::from_str(&fj).unwrap();
    let in_file = fj["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .count() as u64;
    assert_eq!(in_file, errors);
    let escape = get(
        &srv.base,
        &format!("/runs/{id}/report/..%2F..%2Fserve.toml"),
        Some(TOKEN),
    )
    .await;
    assert!(escape.0 == 400 || escape.0 == 404, "{escape:?}");
    let (_, text) = get(&srv.base, "/metrics", Some(TOKEN)).await;
    let r01: f64 = text
        .lines()
        .filter(|l| l.starts_with("fastkontakt_findings{") && l.contains("job=\"region-check\""))
        .filter(|l| l.contains("severity=\"error\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(r01 as u64, errors, "{text}");

    // A check job: the same findings as the reconcile's rules, as files in its report folder.
    assert_eq!(post(&srv.base, "/jobs/rules/run").await, 202);
    let ck = finished(&srv.base, "rules", 1, Duration::from_secs(120)).await;
    let ck = &ck[0];
    assert_eq!(ck["outcome"], "findings", "{ck}");
    let id = ck["id"].as_i64().unwrap();
    let (status, fj) = get(
        &srv.base,
        &format!("/runs/{id}/report/findings.json"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let fj: Value = serde_json::from_str(&fj).unwrap();
    assert_eq!(
        fj["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .count() as u64,
        ck["summary"]["findings"]["error"].as_u64().unwrap()
    );

    let (status, one) = get(&srv.base, &format!("/runs/{}", first["id"]), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&one).unwrap()["id"],
        first["id"]
    );
}

/// Offer Tasks a run created (the hand-written register's requests, informations, declines).
fn count_tasks(_run: &Value) -> usize {
    let text = std::fs::read_to_string(root().join("samples/handwritten/register.csv")).unwrap();
    text.lines()
        .filter(|l| l.contains(";Avböjd;") || l.contains(";Begärd;") || l.contains(";Informerad;"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_or_sigkill_mid_run_and_a_restart_finish_the_run_with_no_duplicate() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let big = generated(dir.path(), 1500);
    let expected = std::fs::read_to_string(&big).unwrap().lines().count() - 1;
    for (sig, name) in [(libc::SIGTERM, "term"), (libc::SIGKILL, "kill")] {
        let t = tenant(&format!("serve-{name}"));
        let port = free_port();
        let config = serve_toml(
            dir.path(),
            port,
            "",
            &format!(
                r#"
[[job]]
name = "region"
kind = "sync"
[job.sync]
register = "{big}"
ehr = "{ehr}"
tenant = "{t}"
state = "{state}"
chunk_size = 25
"#,
                big = big.display(),
                ehr = s.base,
                state = dir.path().join(format!("{name}-state.sqlite")).display(),
            ),
        );
        let c = client(&s.base, &t);
        let mut srv = start(&config, port);
        let status = ::reqwest::Client::new()
            .post(format!("{}/jobs/region/run", srv.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 202);
        let t0 = Instant::now();
        while common::product_careteams(&c).await < 50 {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the run wrote nothing"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // SAFETY: a signal to the child this test started.
        unsafe {
            libc::kill(srv.child.id() as i32, sig);
        }
        let t0 = Instant::now();
        while srv.child.try_wait().unwrap().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "serve did not stop ({name})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let partial = common::product_careteams(&c).await;
        assert!(
            partial < expected,
            "stopped mid-run ({name}): {partial} of {expected}"
        );
        // The restart runs the interrupted run again: every row once, none twice.
        let srv2 = start(&config, port);
        let done = finished(&srv2.base, "region", 2, Duration::from_secs(240)).await;
        let first = done.iter().min_by_key(|r| r["id"].as_i64()).unwrap();
        let resume = done.iter().max_by_key(|r| r["id"].as_i64()).unwrap();
        assert_eq!(first["outcome"], "interrupted", "{name}: {done:?}");
        assert!(
            resume["trigger"]
                .as_str()
                .unwrap()
                .starts_with("resume of run"),
            "{name}: {done:?}"
        );
        assert_eq!(resume["outcome"], "ok", "{name}: {resume}");
        let after = common::product_careteams(&c).await;
        let offers = c
            .search_all("Task?_count=500")
            .await
            .unwrap()
            .into_iter()
            .filter(|t| {
                t["identifier"][0]["system"]
                    == "https://fhir.fastkontakt.example/NamingSystem/befolkningsregistret-rad-id"
            })
            .count();
        assert_eq!(
            after + offers,
            expected,
            "{name}: no lost row, no duplicate (partial {partial})"
        );
        drop(srv2);
        drop(srv);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fhir_endpoint_serves_terminology_translate_and_check_as_the_cli_does() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = serve_toml(
        dir.path(),
        port,
        "",
        r#"
[[job]]
name = "idle"
kind = "sync"
[job.sync]
register = "samples/handwritten/register.csv"
ehr = "http://127.0.0.1:9"
"#,
    );
    let srv = start(&config, port);
    // A second service on the same run history is refused, naming the first.
    let o = common::fastkontakt()
        .current_dir(root())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("another fastkontakt serve runs these jobs") && err.contains("pid "),
        "{err}"
    );
    // Its job's EHR (port 9) does not answer: not ready, and says why.
    let (status, ready) = get(&srv.base, "/readyz", None).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("\"idle\":false"), "{ready}");
    let http = ::reqwest::Client::new();
    let get_json = |path: &str| {
        let url = format!("{}{path}", srv.base);
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    // The CapabilityStatement, strict R4.
    let cs = get_json("/fhir/metadata").await;
    fastkontakt::fhir::model::parse(cs.to_string().as_bytes()).expect("strict R4");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    // Read and search the project's conformance resources.
    let yrke = get_json("/fhir/CodeSystem/yrke").await;
    assert!(yrke["concept"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["code"] == "dietist"));
    let found = get_json(
        "/fhir/ConceptMap?url=https://fhir.fastkontakt.example/ConceptMap/kontakttyp-till-kv-typ-av-fast-kontakt",
    )
    .await;
    assert_eq!(found["total"], 1);
    // ConceptMap/$translate: the register's FVK → the product's code → KV typ av fast kontakt.
    let t1 = get_json("/fhir/ConceptMap/$translate?system=https://fhir.fastkontakt.example/register/v1/Kontakttyp&code=FVK").await;
    assert_eq!(t1["parameter"][0]["valueBoolean"], true, "{t1}");
    let code = t1["parameter"][1]["part"][1]["valueCoding"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code, "fvk");
    let t2 = get_json(&format!(
        "/fhir/ConceptMap/$translate?url=https://fhir.fastkontakt.example/ConceptMap/kontakttyp-till-kv-typ-av-fast-kontakt&code={code}"
    ))
    .await;
    assert_eq!(
        t2["parameter"][1]["part"][1]["valueCoding"]["code"], "1",
        "{t2}"
    );
    let miss = get_json("/fhir/ConceptMap/$translate?system=https://fhir.fastkontakt.example/register/v1/Kontakttyp&code=XYZ").await;
    assert_eq!(miss["parameter"][0]["valueBoolean"], false);

    // $translate: the register CSV → the Bundle the CLI writes, and back to the CLI's CSV.
    let csv = std::fs::read(root().join("samples/handwritten/register.csv")).unwrap();
    let r = http
        .post(format!("{}/fhir/$translate", srv.base))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-rejected-rows"], "1");
    let bundle: Value = r.json().await.unwrap();
    let cli_bundle = dir.path().join("cli.json");
    let o = common::fastkontakt()
        .current_dir(root())
        .args(["translate", "samples/handwritten/register.csv", "-o"])
        .arg(&cli_bundle)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "one rejected row");
    let cli: Value = serde_json::from_slice(&std::fs::read(&cli_bundle).unwrap()).unwrap();
    assert_eq!(bundle, cli, "the endpoint writes what the CLI writes");
    let back = http
        .post(format!("{}/fhir/$translate", srv.base))
        .header("content-type", FHIR)
        .body(bundle.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cli_csv = dir.path().join("cli.csv");
    common::fastkontakt()
        .current_dir(root())
        .arg("translate")
        .arg(&cli_bundle)
        .arg("-o")
        .arg(&cli_csv)
        .output()
        .unwrap();
    assert_eq!(back, std::fs::read_to_string(&cli_csv).unwrap());

    // $check: FHIR → an OperationOutcome, an issue per finding, as `check` gives it.
    let ndjson = std::fs::read(root().join("samples/handwritten/ehr/contacts.ndjson")).unwrap();
    let oo: Value = http
        .post(format!(
            "{}/fhir/$check?profile=orebro&as_of=2026-06-01",
            srv.base
        ))
        .header("content-type", FHIR)
        .body(ndjson)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fastkontakt::fhir::model::parse(oo.to_string().as_bytes()).expect("strict R4");
    let o = common::fastkontakt()
        .current_dir(root())
        .args([
            "check",
            "--ehr",
            "samples/handwritten/ehr/contacts.ndjson",
            "--profile",
            "orebro",
            "--as-of",
            "2026-06-01",
            "--format",
            "operation-outcome",
        ])
        .output()
        .unwrap();
    let cli_oo: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!cli_oo["issue"].as_array().unwrap().is_empty());
    assert_eq!(oo, cli_oo);
    // A refused request is an OperationOutcome too.
    let bad = http
        .post(format!("{}/fhir/$check?profile=../../etc", srv.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    // A body that is not FHIR: an FK-IN01 issue naming the request, not a file of the service.
    let junk: Value = http
        .post(format!("{}/fhir/$check?profile=orebro", srv.base))
        .body("this is not json {")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = junk.to_string();
    assert!(
        text.contains("FK-IN01") && text.contains("request:1"),
        "{text}"
    );
    assert!(!text.contains("/tmp"), "{text}");
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["resourceType"], "OperationOutcome");
}

const FHIR: &str = "application/fhir+json";

/// The shipped systemd unit verifies (where `systemd-analyze` exists: on a machine without
/// systemd there is nothing to check it against, and the test says so).
#[test]
fn the_systemd_unit_verifies() {
    let Ok(which) = std::process::Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
    else {
        return;
    };
    if !which.status.success() {
        eprintln!("systemd-analyze is not installed: the unit is not verified here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root().join("samples/deploy/fastkontakt.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/fastkontakt",
            env!("CARGO_BIN_EXE_fastkontakt"),
        );
    let path = dir.path().join("fastkontakt.service");
    std::fs::write(&path, unit).unwrap();
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("fastkontakt.service:"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_speaks_tls_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let port = free_port();
    let config = serve_toml(
        dir.path(),
        port,
        &format!(
            "tokens = \"file:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            tokens.display(),
            cert.display(),
            key.display()
        ),
        r#"
[[job]]
name = "idle"
kind = "sync"
[job.sync]
register = "samples/handwritten/register.csv"
"#,
    );
    let srv = start(&config, port);
    let https = ::reqwest::Client::builder()
        .add_root_certificate(::reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let ok = https
        .get(format!("https://localhost:{port}/runs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // Plain HTTP gets no answer from a TLS listener.
    let plain = ::reqwest::Client::new()
        .get(format!("{}/healthz", srv.base))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}
