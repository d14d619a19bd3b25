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
    assert_eq!(get(&srv.base, "/readyz", Some(TOKEN)).await.0, 200);

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
    // Every line is a comment, a sample or the end marker.
    for l in text.lines() {
        assert!(
            l.starts_with('#') || l.split(' ').count() == 2,
            "not Prometheus text: {l}"
        );
    }
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
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"
[server]
bind = "127.0.0.1:{port}"
history = "{history}"

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
                history = dir.path().join(format!("{name}-history.sqlite")).display(),
                big = big.display(),
                ehr = s.base,
                state = dir.path().join(format!("{name}-state.sqlite")).display(),
            ),
        )
        .unwrap();
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
