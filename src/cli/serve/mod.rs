//! `fastkontakt serve`: the adapter as a service. Jobs from a TOML file run on their cron
//! schedule, when an export lands in their drop folder, or when asked over HTTP; each run calls
//! the same pipeline as the command line and is recorded in the run history; `/metrics` shows
//! what they did. The work is the library's; this is the edge that schedules and reports it.

mod fhir;
mod history;
mod http;
mod schedule;

use super::args::{Cli, SyncArgs};
use anyhow::Context;
use history::History;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;
use schedule::Schedule;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tracing::Instrument;

/// The service's file (`serve --config FILE`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(rename = "job", default)]
    jobs: Vec<JobConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServerConfig {
    /// Where the HTTP API listens (127.0.0.1:8080). Anywhere but the loopback needs `tokens`.
    bind: SocketAddr,
    /// Bearer tokens, one per line: file:PATH or env:NAME.
    tokens: Option<String>,
    /// The run history (SQLite).
    history: PathBuf,
    /// Days of run history kept.
    history_days: u32,
    /// Seconds between looks into the drop folders.
    drop_poll_seconds: u64,
    /// TLS for the API (rustls): the certificate chain and its private key, PEM files.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tokens: None,
            history: PathBuf::from("fastkontakt-serve.sqlite"),
            history_days: 90,
            drop_poll_seconds: 5,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// What a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum JobKind {
    /// `sync`: the register into the EHR.
    Sync,
    /// `reconcile`: the whole region checked and a plan made, a report folder per run.
    Reconcile,
    /// `check`: the rules over the register and/or the EHR, the findings in the report folder
    /// (`findings.json`, `findings.csv`) and in the metrics.
    Check,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobConfig {
    name: String,
    kind: JobKind,
    /// Cron (five fields, or six with seconds first), Europe/Stockholm.
    schedule: Option<String>,
    /// A folder the register's exports land in: the newest complete `.csv` is run (complete:
    /// a `NAME.done` beside it, or a size that stopped changing between two looks).
    drop_folder: Option<PathBuf>,
    /// A reconcile's region profile (gavleborg, orebro, or a TOML file).
    profile: Option<String>,
    /// A reconcile's report folder: each run writes `REPORT/run-ID/`.
    report: Option<PathBuf>,
    /// Everything `sync --config` takes: register, ehr (a URL, or a reconcile's files),
    /// state, state_key, tenant, auth, …
    #[serde(default)]
    sync: SyncArgs,
}

/// Why a run starts.
#[derive(Debug, Clone)]
struct Trigger {
    why: String,
    dry_run: bool,
    register: Option<PathBuf>,
}

/// One job: its settings, and a queue of one pending trigger (a trigger during a run queues
/// one more run, never two).
struct Job {
    name: String,
    kind: JobKind,
    schedule: Option<Schedule>,
    drop_folder: Option<PathBuf>,
    profile: String,
    report: PathBuf,
    args: SyncArgs,
    pending: Mutex<Option<Trigger>>,
    wake: Notify,
    running: Mutex<bool>,
}

impl Job {
    fn trigger(&self, t: Trigger) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // One pending run at most: a later trigger replaces an earlier one's reason, but a
        // newer export is kept.
        let register = t
            .register
            .clone()
            .or_else(|| p.as_ref().and_then(|x| x.register.clone()));
        *p = Some(Trigger { register, ..t });
        drop(p);
        self.wake.notify_one();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabel {
    job: String,
    rule: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabel {
    job: String,
    outcome: String,
}

/// What `/metrics` shows, in the Prometheus text format.
struct Metrics {
    registry: Registry,
    runs: Family<RunLabel, Counter>,
    last_success: Family<JobLabel, Gauge>,
    created: Family<JobLabel, Counter>,
    updated: Family<JobLabel, Counter>,
    ended: Family<JobLabel, Counter>,
    conflicts: Family<JobLabel, Counter>,
    rejected_rows: Family<JobLabel, Counter>,
    requests: Family<JobLabel, Counter>,
    retries: Family<JobLabel, Counter>,
    throttled: Family<JobLabel, Counter>,
    latency: Family<JobLabel, Histogram>,
    duration: Family<JobLabel, Histogram>,
    findings: Family<FindingLabel, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("fastkontakt");
        let runs = Family::<RunLabel, Counter>::default();
        registry.register("runs", "Runs by job and outcome", runs.clone());
        let last_success = Family::<JobLabel, Gauge>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "When each job last ran to the end without error (Unix time)",
            last_success.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let f = Family::<JobLabel, Counter>::default();
            registry.register(name, help, f.clone());
            f
        };
        let created = counter(&mut registry, "relations_created", "Relations created");
        let updated = counter(&mut registry, "relations_updated", "Relations updated");
        let ended = counter(&mut registry, "relations_ended", "Relations ended");
        let conflicts = counter(&mut registry, "conflicts", "Conflicts met");
        let rejected_rows = counter(&mut registry, "rejected_rows", "Register rows rejected");
        let requests = counter(&mut registry, "fhir_requests", "FHIR requests made");
        let retries = counter(
            &mut registry,
            "fhir_retries",
            "FHIR requests retried (429, 503, lost answers)",
        );
        let throttled = counter(
            &mut registry,
            "fhir_throttled",
            "429 answers from the EHR (each waited out)",
        );
        let latency = Family::<JobLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "fhir_request_duration_seconds",
            "Wall time of each FHIR request to the EHR",
            latency.clone(),
        );
        let duration = Family::<JobLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0])
        });
        registry.register("run_duration_seconds", "Run wall time", duration.clone());
        let findings = Family::<FindingLabel, Gauge>::default();
        registry.register(
            "findings",
            "Findings of each job's last reconcile, by rule and severity",
            findings.clone(),
        );
        Metrics {
            findings,
            registry,
            runs,
            last_success,
            created,
            updated,
            ended,
            conflicts,
            rejected_rows,
            requests,
            retries,
            throttled,
            latency,
            duration,
        }
    }

    fn record(&self, job: &str, outcome: &str, summary: Option<&fastkontakt::sync::Summary>) {
        let j = JobLabel {
            job: job.to_owned(),
        };
        self.runs
            .get_or_create(&RunLabel {
                job: job.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(s) = summary {
            self.created.get_or_create(&j).inc_by(s.created);
            self.updated.get_or_create(&j).inc_by(s.updated);
            self.ended.get_or_create(&j).inc_by(s.ended);
            self.conflicts.get_or_create(&j).inc_by(s.conflicts);
            self.rejected_rows.get_or_create(&j).inc_by(s.rejected_rows);
            self.requests.get_or_create(&j).inc_by(s.requests());
            self.retries.get_or_create(&j).inc_by(s.retries);
            self.throttled.get_or_create(&j).inc_by(s.throttled);
            let h = self.latency.get_or_create(&j);
            for l in &s.latencies {
                h.observe(f64::from(*l));
            }
            self.duration.get_or_create(&j).observe(s.duration_seconds);
        }
        if outcome != "failed" {
            self.last_success
                .get_or_create(&j)
                .set(chrono::Utc::now().timestamp());
        }
    }

    /// The findings of a job's last run, by rule and severity (a rule silent now reads 0).
    fn findings(&self, job: &str, findings: &[fastkontakt::checks::Finding]) {
        let mut counts: HashMap<(&str, String), i64> = HashMap::new();
        for f in findings {
            *counts.entry((f.rule, f.severity.to_string())).or_default() += 1;
        }
        for rule in fastkontakt::checks::catalogue::RULES {
            for sev in ["error", "warning", "info"] {
                let l = FindingLabel {
                    job: job.to_owned(),
                    rule: rule.id.to_owned(),
                    severity: sev.to_owned(),
                };
                let n = counts.get(&(rule.id, sev.to_owned())).copied().unwrap_or(0);
                self.findings.get_or_create(&l).set(n);
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What one run did: its exit code as the command line would give it, what the history keeps,
/// the sync's summary for the metrics, and the report folder.
struct JobOutcome {
    exit_code: u8,
    stopped: bool,
    json: serde_json::Value,
    sync: Option<fastkontakt::sync::Summary>,
    report: Option<PathBuf>,
}

/// What the HTTP handlers and the runners share.
pub(super) struct Service {
    jobs: Vec<Arc<Job>>,
    history: History,
    metrics: Metrics,
    mappings: Arc<fastkontakt::mapping::Mappings>,
    mappings_dir: PathBuf,
    /// The conformance resources the FHIR endpoint serves.
    conformance: Vec<serde_json::Value>,
    /// `$check` and `$translate` calls at work at once (the rest wait their turn): memory is
    /// then bounded by this many bodies however many clients call.
    work_slots: tokio::sync::Semaphore,
    own: Arc<fastkontakt::sync::ownership::Ownership>,
    tokens: Vec<String>,
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Service {
    fn job(&self, name: &str) -> Option<&Arc<Job>> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

pub(super) fn serve(cli: &Cli, config: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let cfg: ServeConfig =
        toml::from_str(&text).with_context(|| format!("{}", config.display()))?;
    if cfg.jobs.is_empty() {
        anyhow::bail!("{}: no [[job]]", config.display());
    }
    let tokens = match &cfg.server.tokens {
        Some(spec) => fastkontakt::fhir::client::Secret::load(spec)?
            .expose()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    if !cfg.server.bind.ip().is_loopback() && tokens.is_empty() {
        anyhow::bail!(
            "{}: server.bind {} is not the loopback: set server.tokens (file:PATH or env:NAME) so the API asks for a bearer token",
            config.display(),
            cfg.server.bind
        );
    }
    let mut jobs = Vec::new();
    for j in cfg.jobs {
        if jobs.iter().any(|x: &Arc<Job>| x.name == j.name) {
            anyhow::bail!("{}: two jobs are named '{}'", config.display(), j.name);
        }
        let schedule = j.schedule.as_deref().map(Schedule::parse).transpose()?;
        if schedule.is_none() && j.drop_folder.is_none() {
            tracing::warn!(job = %j.name, "no schedule and no drop folder: the job runs only when asked (POST /jobs/NAME/run)");
        }
        if j.drop_folder.is_none() && j.sync.register.is_none() {
            anyhow::bail!(
                "{}: job '{}' names neither a register nor a drop_folder",
                config.display(),
                j.name
            );
        }
        let report = j
            .report
            .clone()
            .unwrap_or_else(|| PathBuf::from("out").join(&j.name));
        jobs.push(Arc::new(Job {
            name: j.name,
            kind: j.kind,
            schedule,
            drop_folder: j.drop_folder,
            profile: j.profile.unwrap_or_else(|| "gavleborg".into()),
            report,
            args: j.sync,
            pending: Mutex::new(None),
            wake: Notify::new(),
            running: Mutex::new(false),
        }));
    }
    let history = History::open(&cfg.server.history)?;
    let pruned = history.prune(cfg.server.history_days)?;
    if pruned > 0 {
        tracing::info!(pruned, "run history pruned");
    }
    let service = Arc::new(Service {
        jobs,
        history,
        metrics: Metrics::new(),
        mappings: Arc::new(super::load_mappings(cli)?),
        mappings_dir: super::mappings_dir(cli),
        conformance: fhir::load_conformance(&super::mappings_dir(cli))
            .context("reading mappings/fhir/")?,
        work_slots: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
        own: Arc::new(
            fastkontakt::sync::ownership(&super::mappings_dir(cli))
                .context("loading mappings/ownership.toml")?,
        ),
        tokens,
        shutting_down: std::sync::atomic::AtomicBool::new(false),
    });
    // A run the service did not finish last time runs again now (a sync resumes: what it
    // wrote is in the state file): one killed (started, never finished) or stopped.
    for (run, job) in service.history.unfinished()? {
        service.history.interrupted(run, &job)?;
    }
    for j in &service.jobs {
        if let Some(run) = service.history.interrupted_last(&j.name)? {
            tracing::warn!(run, job = %j.name, "the last run did not finish: running it again");
            j.trigger(Trigger {
                why: format!("resume of run {run}"),
                dry_run: false,
                register: None,
            });
        }
    }
    let rt = super::runtime()?;
    rt.block_on(run_service(service, cfg.server))
}

async fn run_service(service: Arc<Service>, server: ServerConfig) -> anyhow::Result<ExitCode> {
    let mut tasks = Vec::new();
    for job in &service.jobs {
        tasks.push(tokio::spawn(runner(service.clone(), job.clone())));
        if let Some(s) = job.schedule.clone() {
            tasks.push(tokio::spawn(scheduler(job.clone(), s)));
        }
        if let Some(dir) = job.drop_folder.clone() {
            tasks.push(tokio::spawn(watcher(
                job.clone(),
                dir,
                std::time::Duration::from_secs(server.drop_poll_seconds.max(1)),
            )));
        }
    }
    let app = http::router(service.clone());
    tracing::info!(bind = %server.bind, jobs = service.jobs.len(), "serving");
    match (&server.tls_cert, &server.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| format!("reading {} and {}", cert.display(), key.display()))?;
            let handle = axum_server::Handle::new();
            let stop = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
            });
            eprintln!("fastkontakt serve: listening on https://{}", server.bind);
            axum_server::bind_rustls(server.bind, tls)
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .context("the HTTPS server failed")?;
        }
        (None, None) => {
            let listener = tokio::net::TcpListener::bind(server.bind)
                .await
                .with_context(|| format!("binding {}", server.bind))?;
            eprintln!(
                "fastkontakt serve: listening on http://{}",
                listener.local_addr()?
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .context("the HTTP server failed")?;
        }
        _ => anyhow::bail!("server.tls_cert and server.tls_key go together"),
    }
    // SIGTERM: no new runs; a run in flight finishes its chunk and records its state.
    service
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    fastkontakt::sync::request_stop();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(25);
    while service
        .jobs
        .iter()
        .any(|j| *j.running.lock().unwrap_or_else(|e| e.into_inner()))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for t in tasks {
        t.abort();
    }
    eprintln!("fastkontakt serve: stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping: no new runs, waiting for the run in flight");
}

/// Fires the job at each time its schedule names.
async fn scheduler(job: Arc<Job>, s: Schedule) {
    loop {
        let now = chrono::Utc::now();
        let Some(next) = s.next_after(now) else {
            tracing::warn!(job = %job.name, schedule = s.text(), "the schedule names no future time");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        job.trigger(Trigger {
            why: format!("schedule {}", s.text()),
            dry_run: false,
            register: None,
        });
    }
}

/// Looks into the drop folder; a new, complete export fires the job with it.
async fn watcher(job: Arc<Job>, dir: PathBuf, every: std::time::Duration) {
    let mut seen: Option<(PathBuf, u64, std::time::SystemTime)> = None;
    let mut last_size: HashMap<PathBuf, u64> = HashMap::new();
    loop {
        if let Some((path, size, modified)) = newest_export(&dir) {
            let done_marker =
                path.with_extension("csv.done").exists() || path.with_extension("done").exists();
            let settled = last_size.get(&path) == Some(&size);
            last_size.insert(path.clone(), size);
            let new = seen.as_ref() != Some(&(path.clone(), size, modified));
            if new && (done_marker || settled) {
                seen = Some((path.clone(), size, modified));
                job.trigger(Trigger {
                    why: format!("export {}", path.display()),
                    dry_run: false,
                    register: Some(path),
                });
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// The newest `.csv` in a folder: (path, size, modified).
fn newest_export(dir: &Path) -> Option<(PathBuf, u64, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.path(), m.len(), m.modified().ok()?))
        })
        .max_by_key(|(_, _, t)| *t)
}

/// Runs the job each time it is triggered, one run at a time.
async fn runner(service: Arc<Service>, job: Arc<Job>) {
    loop {
        job.wake.notified().await;
        loop {
            let t = job.pending.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some(t) = t else { break };
            if service
                .shutting_down
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            *job.running.lock().unwrap_or_else(|e| e.into_inner()) = true;
            run_once(&service, &job, t).await;
            *job.running.lock().unwrap_or_else(|e| e.into_inner()) = false;
        }
    }
}

async fn run_once(service: &Arc<Service>, job: &Arc<Job>, t: Trigger) {
    let run = match service.history.start(&job.name, &t.why) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(job = %job.name, error = %e, "the run history refused the run");
            return;
        }
    };
    let span = tracing::info_span!("run", run, job = %job.name);
    async {
        tracing::info!(trigger = %t.why, dry_run = t.dry_run, "run started");
        let s = service.clone();
        let j = job.clone();
        // Each run on its own thread and runtime: the pipelines are the command line's.
        let result = tokio::task::spawn_blocking(move || run_job(&s, &j, &t, run))
            .await
            .map_err(|e| anyhow::anyhow!("the run panicked: {e}"))
            .and_then(|r| r);
        let outcome = match &result {
            Ok(o) if o.stopped => "interrupted",
            Ok(o) if o.exit_code == 0 => "ok",
            Ok(o) if o.exit_code == 1 => "findings",
            Ok(_) => "failed",
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "run failed");
                "failed"
            }
        };
        let ok = result.as_ref().ok();
        service
            .metrics
            .record(&job.name, outcome, ok.and_then(|o| o.sync.as_ref()));
        let json = match &result {
            Ok(o) => o.json.clone(),
            Err(e) => serde_json::json!({"error": format!("{e:#}")}),
        };
        let report = ok
            .and_then(|o| o.report.as_ref())
            .map(|p| p.display().to_string());
        if let Err(e) =
            service
                .history
                .finish(run, &job.name, outcome, Some(&json), report.as_deref())
        {
            tracing::error!(error = %e, "the run history refused the outcome");
        }
        tracing::info!(outcome, "run finished");
    }
    .instrument(span)
    .await;
}

/// One run of a job, blocking (its own runtime): the same pipeline as the command line's.
fn run_job(service: &Service, job: &Job, t: &Trigger, run: i64) -> anyhow::Result<JobOutcome> {
    let mut args = job.args.clone();
    if let Some(r) = &t.register {
        args.register = Some(r.clone());
    } else if let Some(dir) = &job.drop_folder {
        if args.register.is_none() {
            args.register = newest_export(dir).map(|(p, _, _)| p);
        }
    }
    args.dry_run |= t.dry_run;
    // As on the command line, the state key may come from the environment.
    if args.state_key.is_none() {
        args.state_key = std::env::var("FASTKONTAKT_STATE_KEY").ok();
    }
    match job.kind {
        JobKind::Sync => sync_job(service, &args),
        JobKind::Reconcile => reconcile_job(service, job, &args, run),
        JobKind::Check => check_job(service, job, &args, run),
    }
}

fn sync_job(service: &Service, args: &SyncArgs) -> anyhow::Result<JobOutcome> {
    let client = super::config::client_from(args)?;
    let state = super::config::state_path(args);
    let mode = fastkontakt::pipelines::sync::Mode::Run {
        dry_run: args.dry_run,
    };
    let o = super::config::sync_options(args, &state, mode)?;
    // On worker threads, as on the command line: a transaction in flight is sent and its
    // answer read while this thread builds the next (one thread would do one or the other).
    let outcome = super::runtime()?.block_on(fastkontakt::pipelines::sync::run(
        &client,
        &service.mappings,
        &service.own,
        o,
        // Rejected rows are counted in the summary and quarantined by the pipeline.
        &mut |_, _| {},
    ))?;
    let s = outcome.summary;
    Ok(JobOutcome {
        exit_code: s.exit_code(),
        stopped: s.stopped,
        json: serde_json::to_value(&s)?,
        sync: Some(s),
        report: None,
    })
}

/// A reconcile run: the same pipeline as `fastkontakt reconcile`, its report in
/// `REPORT/run-ID/` (a plan for review; the service does not apply it).
fn reconcile_job(
    service: &Service,
    job: &Job,
    args: &SyncArgs,
    run: i64,
) -> anyhow::Result<JobOutcome> {
    use fastkontakt::checks::Severity;
    use fastkontakt::pipelines::reconcile::{EhrInput, Options};
    let register = args
        .register
        .clone()
        .context("a reconcile job needs register (or a drop_folder with an export)")?;
    let ehr_text = args.ehr.clone().context("a reconcile job needs ehr")?;
    let dir = job.report.join(format!("run-{run}"));
    let ehr = if fastkontakt::pipelines::is_url(&ehr_text) {
        EhrInput::Server {
            client: Arc::new(super::config::client_from(args)?),
            fetch_dir: dir.join(".fetched"),
            keep: false,
            export: true,
            concurrency: 4,
        }
    } else {
        EhrInput::Files(PathBuf::from(&ehr_text))
    };
    let profile = fastkontakt::checks::Profile::load(
        &job.profile,
        &service.mappings_dir,
        &service.mappings.terminology,
    )
    .context("loading the profile")?;
    let state_path = super::config::state_path(args);
    let state = if state_path.exists() {
        Some((
            state_path.as_path(),
            super::config::state_key(args.state_key.as_deref())?,
        ))
    } else {
        None
    };
    let rt = tokio::runtime::Runtime::new()?;
    let progress = fastkontakt::progress::Progress::hidden();
    let outcome = fastkontakt::pipelines::reconcile::run(
        Options {
            register: &register,
            ehr,
            profile: &profile,
            mappings: &service.mappings,
            own: &service.own,
            state,
            options: fastkontakt::sync::Options {
                on_conflict: args
                    .on_conflict
                    .unwrap_or(fastkontakt::sync::OnConflict::Report),
                chunk_size: fastkontakt::sync::DEFAULT_CHUNK_SIZE,
                as_of: args.as_of.unwrap_or_else(fastkontakt::pipelines::today),
                max_end_share: args.max_end_share.unwrap_or(0.2),
                takeover: args.takeover,
                end_unmatched: args.end_unmatched,
                writing: Default::default(),
                duties: Default::default(),
            },
            report_dir: &dir,
            quarantine: dir.join("register.quarantine.csv"),
            partitions: None,
            memory: Default::default(),
            apply: false,
            written_information_dir: None,
        },
        rt.handle(),
        &progress,
        &mut |_, _| {},
    )?;
    let r = &outcome.report;
    let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    let errors = count(Severity::Error);
    let json = serde_json::json!({
        "patients": r.patients,
        "register_rows": r.register_rows,
        "ehr_contacts": r.ehr_contacts,
        "rejected_rows": r.rejected_rows,
        "findings": {
            "error": errors,
            "warning": count(Severity::Warning),
            "info": count(Severity::Info),
        },
        "plan": outcome.plan.as_ref().map(|(c, review_only)| serde_json::json!({
            "create": c.actions.create,
            "update": c.actions.update,
            "end": c.actions.end,
            "review_only": review_only,
        })),
        "duration_seconds": outcome.seconds,
    });
    service.metrics.findings(&job.name, &r.findings);
    Ok(JobOutcome {
        exit_code: u8::from(errors > 0 || r.rejected_rows > 0),
        stopped: false,
        json,
        sync: None,
        report: Some(dir),
    })
}

/// A check run: the same pipeline as `fastkontakt check`, its findings as JSON and CSV in
/// `REPORT/run-ID/`.
fn check_job(
    service: &Service,
    job: &Job,
    args: &SyncArgs,
    run: i64,
) -> anyhow::Result<JobOutcome> {
    use fastkontakt::checks::Severity;
    use fastkontakt::pipelines::check::{EhrInput, Options};
    let profile = fastkontakt::checks::Profile::load(
        &job.profile,
        &service.mappings_dir,
        &service.mappings.terminology,
    )
    .context("loading the profile")?;
    let client = match args.ehr.as_deref() {
        Some(e) if fastkontakt::pipelines::is_url(e) => Some(super::config::client_from(args)?),
        _ => None,
    };
    let files = args
        .ehr
        .as_deref()
        .filter(|e| !fastkontakt::pipelines::is_url(e))
        .map(PathBuf::from);
    let ehr = match (&client, &files) {
        (Some(c), _) => EhrInput::Server(c),
        (None, Some(p)) => EhrInput::Files(p),
        (None, None) => EhrInput::None,
    };
    if args.register.is_none() && matches!(ehr, EhrInput::None) {
        anyhow::bail!("a check job needs register, ehr or both");
    }
    let dir = job.report.join(format!("run-{run}"));
    fastkontakt::sinks::private::create_dir(&dir)?;
    let rt = tokio::runtime::Runtime::new()?;
    let report = fastkontakt::pipelines::check::run(
        Options {
            register: args.register.as_deref(),
            ehr,
            profile: &profile,
            mappings: &service.mappings,
            as_of: args.as_of.unwrap_or_else(fastkontakt::pipelines::today),
            quarantine: Some(dir.join("register.quarantine.csv")),
        },
        rt.handle(),
        &fastkontakt::progress::Progress::hidden(),
        &mut |_, _| {},
    )?;
    let mut json_out = fastkontakt::sinks::private::create_file(&dir.join("findings.json"))?;
    fastkontakt::sinks::findings::write_json(&report, &mut json_out)?;
    let mut csv_out = fastkontakt::sinks::private::create_file(&dir.join("findings.csv"))?;
    fastkontakt::sinks::findings::write_csv(&report, &mut csv_out)?;
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let errors = count(Severity::Error);
    service.metrics.findings(&job.name, &report.findings);
    Ok(JobOutcome {
        exit_code: u8::from(errors > 0 || report.rejected_rows > 0),
        stopped: false,
        json: serde_json::json!({
            "patients": report.patients,
            "register_rows": report.register_rows,
            "ehr_contacts": report.ehr_contacts,
            "rejected_rows": report.rejected_rows,
            "findings": {
                "error": errors,
                "warning": count(Severity::Warning),
                "info": count(Severity::Info),
            },
        }),
        sync: None,
        report: Some(dir),
    })
}
