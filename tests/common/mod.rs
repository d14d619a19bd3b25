//! Test harness: one real FHIR server (hfs, see shared/fhir-test-server.md) per test binary on
//! 127.0.0.1, a tenant per test for isolation, and a fault-injecting, write-counting proxy.
//!
//! The server lives in a static, whose destructor never runs; so it is started from a thread
//! that lives as long as the test process, with PR_SET_PDEATHSIG: when the process ends (all
//! tests done, a panic, a kill -9), the kernel sends hfs SIGTERM. Nothing is left running.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The key the tests give the state file (through the environment, as an operator would).
pub const STATE_KEY: &str = "test-state-key-not-for-production-0123456789";

/// The product's binary, with a state key in its environment.
pub fn fastkontakt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fastkontakt"));
    c.env("FK_TEST_STATE_KEY", STATE_KEY)
        .env("FASTKONTAKT_STATE_KEY", "env:FK_TEST_STATE_KEY");
    c
}

/// Spawns a command that the kernel stops (SIGTERM) when this test process ends, however it
/// ends. The spawning thread is parked for the life of the process, since the signal follows
/// the death of the thread that forked, not of the process.
pub fn spawn_tied_to_process(mut cmd: Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then stop now.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.spawn());
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("spawner thread died")))
}

pub struct Server {
    pub base: String,
    child: std::sync::Mutex<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn data_dir() -> PathBuf {
    std::env::var_os("FASTKONTAKT_HFS_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/fastkontakt/hfs-data")
        })
}

/// Starts hfs once for this test binary; a missing server is a failure, not a skip.
pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let sp = data_dir().join("search-parameters-r4.json");
        assert!(
            sp.is_file(),
            "{} missing: run ./scripts/install-test-deps.sh",
            sp.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new("hfs");
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--database-url",
        ])
        .arg(dir.path().join("fhir.db"))
        .arg("--data-dir")
        .arg(data_dir())
        .current_dir(dir.path())
        .env("HFS_BASE_URL", &base)
        .env("HFS_VALIDATION_MODE", "enforce")
        .env("HFS_UI_ENABLED", "false")
        .env("HFS_NL_SEARCH_ENABLED", "false")
        .env("HFS_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = spawn_tied_to_process(cmd)
            .expect("hfs 0.2.7 on PATH: run ./scripts/install-test-deps.sh");
        let start = Instant::now();
        loop {
            if let Ok(out) = Command::new("curl")
                .args(["-sf", &format!("{base}/metadata")])
                .output()
            {
                if out.status.success() {
                    let body = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        body.contains("\"participant\""),
                        "hfs started without the R4 search parameters"
                    );
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "hfs did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Server {
            base,
            child: std::sync::Mutex::new(child),
            _dir: dir,
        }
    })
}

pub fn tenant(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client of the test server for one tenant.
pub fn client(base: &str, tenant: &str) -> fastkontakt::fhir::client::FhirClient {
    let mut c = fastkontakt::fhir::client::ClientConfig::new(base);
    c.tenant = Some(tenant.to_owned());
    fastkontakt::fhir::client::FhirClient::new(c).unwrap()
}

/// Runs `sync` of `register` into the tenant with a summary file beside the state file; the
/// summary as JSON (a run that wrote none panics with its stderr).
pub fn sync_with_summary(
    base: &str,
    tenant: &str,
    register: &std::path::Path,
    state: &std::path::Path,
    extra: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let summary = state.with_extension("summary.json");
    let _ = std::fs::remove_file(&summary);
    let o = fastkontakt()
        .current_dir(root())
        .args([
            "sync",
            "--ehr",
            base,
            "--tenant",
            tenant,
            "--as-of",
            "2026-06-01",
        ])
        .arg("--register")
        .arg(register)
        .arg("--state")
        .arg(state)
        .arg("--summary")
        .arg(&summary)
        .args(extra)
        .output()
        .unwrap();
    let s = std::fs::read(&summary)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            panic!(
                "no summary; stderr:\n{}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
    (o, s)
}

/// How many CareTeams carry the product's tag (not counting the probe's resources): a
/// killing test waits for some of them.
pub async fn product_careteams(c: &fastkontakt::fhir::client::FhirClient) -> usize {
    c.search_all(
        "CareTeam?_tag=https://fhir.fastkontakt.example/CodeSystem/kalla|befolkningsregistret&_count=500&_elements=id",
    )
    .await
    .map(|v| v.len())
    .unwrap_or(0)
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The hand-written register's valid rows (one row fails its check digit), read by the
/// product's own reader: a count the sync tests expect of a first sync.
#[allow(dead_code)] // not every test binary uses every helper
pub fn handwritten_rows() -> usize {
    use fastkontakt::sources::register::{RegisterItem, RegisterReader};
    let m = fastkontakt::mapping::Mappings::load(&root().join("mappings"), None, None).unwrap();
    let path = root().join("samples/handwritten/register.csv");
    RegisterReader::open(&path, &m.register, &m.terminology)
        .unwrap()
        .filter(|i| matches!(i, Ok(RegisterItem::Contact { .. })))
        .count()
}

/// Faults the proxy injects, each a share of requests (0..1).
#[derive(Clone, Copy, Default)]
pub struct Faults {
    pub too_many: f64,
    pub unavailable: f64,
    /// Forward, let the server act, then drop the connection without an answer.
    pub drop_after: f64,
    pub slow: f64,
    /// Every transaction Bundle waits 100 ms before it is forwarded (a busy server), so that
    /// what a client sends while one is in flight shows.
    pub slow_transactions: bool,
    /// The first transaction Bundle with a Provenance (a sync's, not the probe's) is answered
    /// 429 (Retry-After: 0), as a server pressed too hard does.
    pub throttle_first_transaction: bool,
    /// The first transaction Bundle with a Provenance is refused for its content (400 with an
    /// OperationOutcome), as a server does that will not take one of its entries.
    pub refuse_first_transaction: bool,
    /// How the server behaves unlike the test server (each a production EHR's habit).
    pub personality: Personality,
}

/// What production FHIR APIs do that the test server does not; the proxy plays each.
#[derive(Clone, Copy, Default, Debug)]
pub struct Personality {
    /// PUT to an id that does not exist yet is refused (ids are the server's to choose), also
    /// inside a Bundle; the CapabilityStatement says `updateCreate: false`.
    pub refuse_client_ids: bool,
    /// Transaction Bundles are refused, and `transaction` is gone from the CapabilityStatement.
    pub no_transactions: bool,
    /// `If-Match` is dropped (as a server without versioned updates does), also inside Bundles.
    pub ignore_if_match: bool,
    /// Writes answer without a body, whatever `Prefer` asks (transaction entries without their
    /// resource).
    pub return_minimal: bool,
    /// `_count` is capped (at 50, as many EHRs do).
    pub count_cap: Option<u32>,
    /// Searching by `_tag` is refused (400, unknown parameter): a server the product cannot
    /// find its own resources on.
    pub no_tag_search: bool,
    /// Every page after the first loses its first entry, as when writes move entries between
    /// pages already read: paging a type misses resources.
    pub unstable_paging: bool,
    /// Transaction Bundles of more entries than this are refused (413), as gateways in front
    /// of EHRs limit a request's size.
    pub max_transaction_entries: Option<usize>,
}

/// The proxy's answer to a request a personality refuses.
fn refusal(status: u16, text: &str) -> axum::http::Response<axum::body::Body> {
    let body = serde_json::json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported", "diagnostics": text}]});
    axum::http::Response::builder()
        .status(status)
        .header("Content-Type", "application/fhir+json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap()
}

/// `_count=N` in a query or form body, capped.
fn cap_count(q: &str, cap: u32) -> String {
    q.split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("_count", v)) => {
                let n: u32 = v.parse().unwrap_or(cap);
                format!("_count={}", n.min(cap))
            }
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub struct Proxy {
    pub base: String,
    pub writes: Arc<AtomicU64>,
    pub faults_injected: Arc<AtomicU64>,
    /// Every request's method, path and query, as a server's access log would keep them.
    pub access_log: Arc<std::sync::Mutex<Vec<String>>>,
    /// Transaction Bundles the server was working on at the same time.
    pub together: Arc<std::sync::Mutex<Together>>,
}

/// Transaction Bundles in flight at the same time: how many at most, and the resource types
/// (Provenances aside) of the two Bundles of each pair that were.
#[derive(Default)]
pub struct Together {
    in_flight: Vec<(u64, std::collections::BTreeSet<String>)>,
    next: u64,
    pub most: usize,
    pub pairs: Vec<(
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
    )>,
}

impl Together {
    fn enter(&mut self, types: std::collections::BTreeSet<String>) -> u64 {
        self.next += 1;
        for (_, other) in &self.in_flight {
            self.pairs.push((other.clone(), types.clone()));
        }
        self.in_flight.push((self.next, types));
        self.most = self.most.max(self.in_flight.len());
        self.next
    }
    fn leave(&mut self, id: u64) {
        self.in_flight.retain(|(i, _)| *i != id);
    }
}

/// A proxy in front of the server that counts writes (non-GET) and injects faults.
pub fn proxy(upstream: &str, faults: Faults, seed: u64) -> Proxy {
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Request, Response, StatusCode};
    let writes = Arc::new(AtomicU64::new(0));
    let injected = Arc::new(AtomicU64::new(0));
    let access_log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let together = Arc::new(std::sync::Mutex::new(Together::default()));
    let counter = Arc::new(AtomicU64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    #[derive(Clone)]
    struct St {
        up: String,
        /// The proxy's own base: links the server writes are rewritten to it.
        own: String,
        client: reqwest::Client,
        faults: Faults,
        writes: Arc<AtomicU64>,
        injected: Arc<AtomicU64>,
        counter: Arc<AtomicU64>,
        access_log: Arc<std::sync::Mutex<Vec<String>>>,
        together: Arc<std::sync::Mutex<Together>>,
        /// The first transaction's fault (429 or 400) was played.
        first_faulted: Arc<std::sync::atomic::AtomicBool>,
    }
    let st = St {
        up: upstream.to_owned(),
        own: base.clone(),
        client: reqwest::Client::new(),
        faults,
        writes: writes.clone(),
        injected: injected.clone(),
        counter,
        access_log: access_log.clone(),
        together: together.clone(),
        first_faulted: Default::default(),
    };
    async fn handle(State(st): State<St>, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        if let Ok(mut log) = st.access_log.lock() {
            log.push(format!("{} {}", parts.method, parts.uri));
        }
        // A POST to [type]/_search is a search (FHIR's form for long or private parameters).
        if parts.method != axum::http::Method::GET && !parts.uri.path().ends_with("/_search") {
            st.writes.fetch_add(1, Ordering::Relaxed);
        }
        // A deterministic pseudo-random draw per request (splitmix64).
        let mut z = st
            .counter
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let draw = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        let f = st.faults;
        let fault = |status: StatusCode, retry_after: Option<&str>| {
            st.injected.fetch_add(1, Ordering::Relaxed);
            let mut b = Response::builder().status(status);
            if let Some(r) = retry_after {
                b = b.header("Retry-After", r);
            }
            // A refusal names what broke; the rest are passing troubles.
            let code = if status == StatusCode::BAD_REQUEST {
                "processing"
            } else {
                "transient"
            };
            b.body(Body::from(format!("{{\"resourceType\":\"OperationOutcome\",\"issue\":[{{\"severity\":\"error\",\"code\":\"{code}\"}}]}}"))).unwrap()
        };
        if draw < f.too_many {
            return fault(StatusCode::TOO_MANY_REQUESTS, Some("0"));
        }
        if draw < f.too_many + f.unavailable {
            return fault(StatusCode::SERVICE_UNAVAILABLE, None);
        }
        let drop_it = draw < f.too_many + f.unavailable + f.drop_after;
        if !drop_it && draw < f.too_many + f.unavailable + f.drop_after + f.slow {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let pers = f.personality;
        let path = parts.uri.path().to_owned();
        let mut query = parts.uri.query().map(str::to_owned);
        if let (Some(cap), Some(q)) = (pers.count_cap, &query) {
            query = Some(cap_count(q, cap));
        }
        let url = match &query {
            Some(q) => format!("{}{path}?{q}", st.up),
            None => format!("{}{path}", st.up),
        };
        let mut bytes = axum::body::to_bytes(body, 64 << 20)
            .await
            .unwrap_or_default();
        if let (Some(cap), true) = (pers.count_cap, path.ends_with("/_search")) {
            bytes = cap_count(&String::from_utf8_lossy(&bytes), cap)
                .into_bytes()
                .into();
        }
        let write = parts.method != axum::http::Method::GET && !path.ends_with("/_search");
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let is_bundle_post =
            parts.method == axum::http::Method::POST && path.trim_matches('/').is_empty();
        let mut bundle: Option<serde_json::Value> = if is_bundle_post {
            serde_json::from_slice(&bytes).ok()
        } else {
            None
        };
        let tenant = parts.headers.get("x-tenant-id").cloned();
        let exists = |t: String, id: String| {
            let st = st.clone();
            let tenant = tenant.clone();
            async move {
                let mut r = st.client.get(format!("{}/{t}/{id}", st.up));
                if let Some(h) = tenant {
                    r = r.header("X-Tenant-ID", h);
                }
                r.send()
                    .await
                    .map(|x| x.status().is_success())
                    .unwrap_or(false)
            }
        };
        let form = String::from_utf8_lossy(&bytes).to_string();
        if pers.no_tag_search
            && (query.as_deref().is_some_and(|q| q.contains("_tag="))
                || (path.ends_with("/_search") && form.contains("_tag=")))
        {
            return refusal(400, "unknown search parameter: _tag");
        }
        if pers.no_transactions {
            if let Some(b) = &bundle {
                if b["type"] == "transaction" {
                    return refusal(400, "transactions are not supported by this server");
                }
            }
        }
        if let (Some(max), Some(b)) = (pers.max_transaction_entries, &bundle) {
            let n = b["entry"].as_array().map_or(0, |e| e.len());
            if b["type"] == "transaction" && n > max {
                return refusal(413, &format!("a transaction holds at most {max} entries"));
            }
        }
        if pers.refuse_client_ids {
            if parts.method == axum::http::Method::PUT
                && segments.len() == 2
                && query.is_none()
                && !exists(segments[0].to_owned(), segments[1].to_owned()).await
            {
                return refusal(405, "client-assigned ids are not allowed: create with POST");
            }
            if let Some(b) = &bundle {
                for e in b["entry"].as_array().into_iter().flatten() {
                    let url = e["request"]["url"].as_str().unwrap_or("");
                    if e["request"]["method"] == "PUT" && !url.contains('?') {
                        if let Some((t, id)) = url.split_once('/') {
                            if !exists(t.to_owned(), id.to_owned()).await {
                                return refusal(
                                    400,
                                    "client-assigned ids are not allowed: create with POST",
                                );
                            }
                        }
                    }
                }
            }
        }
        if pers.ignore_if_match {
            if let Some(b) = bundle.as_mut() {
                for e in b["entry"].as_array_mut().into_iter().flatten() {
                    if let Some(r) = e["request"].as_object_mut() {
                        r.remove("ifMatch");
                    }
                }
                bytes = serde_json::to_vec(b).unwrap().into();
            }
        }
        let mut r = st.client.request(parts.method.clone(), &url).body(bytes);
        for (k, v) in parts.headers.iter() {
            if k == "host" || k == "content-length" {
                continue;
            }
            if pers.ignore_if_match && k == "if-match" {
                continue;
            }
            r = r.header(k, v);
        }
        // A transaction Bundle's resource types; whether it carries a Provenance (a sync's,
        // not the probe's), and the rest, which is what travels beside what.
        let types: Option<std::collections::BTreeSet<String>> = bundle
            .as_ref()
            .filter(|b| b["type"] == "transaction")
            .map(|b| {
                b["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["request"]["url"].as_str())
                    .map(|u| u.split(['/', '?']).next().unwrap_or("").to_owned())
                    .collect()
            });
        let provenanced = types.as_ref().is_some_and(|t| t.contains("Provenance"));
        let transaction = types.map(|mut t| {
            t.remove("Provenance");
            t
        });
        if provenanced
            && (f.throttle_first_transaction || f.refuse_first_transaction)
            && !st.first_faulted.swap(true, Ordering::Relaxed)
        {
            return if f.throttle_first_transaction {
                fault(StatusCode::TOO_MANY_REQUESTS, Some("0"))
            } else {
                fault(StatusCode::BAD_REQUEST, None)
            };
        }
        if transaction.is_some() && f.slow_transactions {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let in_flight = transaction.map(|types| st.together.lock().unwrap().enter(types));
        let answered = r.send().await;
        let (status, headers, body) = match answered {
            Ok(resp) => (
                resp.status(),
                resp.headers().clone(),
                Some(resp.bytes().await.unwrap_or_default()),
            ),
            Err(_) => (StatusCode::BAD_GATEWAY, Default::default(), None),
        };
        if let Some(id) = in_flight {
            st.together.lock().unwrap().leave(id);
        }
        let Some(mut body) = body else {
            return fault(StatusCode::BAD_GATEWAY, None);
        };
        if path.trim_matches('/') == "metadata" && (pers.no_transactions || pers.refuse_client_ids)
        {
            if let Ok(mut cs) = serde_json::from_slice::<serde_json::Value>(&body) {
                if pers.no_transactions {
                    if let Some(i) = cs["rest"][0]["interaction"].as_array_mut() {
                        i.retain(|x| x["code"] != "transaction");
                    }
                }
                if pers.refuse_client_ids {
                    for r in cs["rest"][0]["resource"]
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                    {
                        r["updateCreate"] = serde_json::json!(false);
                    }
                }
                body = serde_json::to_vec(&cs).unwrap().into();
            }
        }
        if pers.unstable_paging && query.as_deref().is_some_and(|q| q.contains("_cursor=")) {
            if let Ok(mut b) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(e) = b["entry"].as_array_mut() {
                    if !e.is_empty() {
                        e.remove(0);
                    }
                }
                body = serde_json::to_vec(&b).unwrap().into();
            }
        }
        // Paging links name the server's own base; a real proxy (or gateway) rewrites them.
        if !write || path.ends_with("/_search") {
            let text = String::from_utf8_lossy(&body);
            if text.contains(&st.up) {
                body = text.replace(&st.up, &st.own).into_bytes().into();
            }
        }
        if pers.return_minimal && write && status.is_success() {
            if is_bundle_post {
                if let Ok(mut b) = serde_json::from_slice::<serde_json::Value>(&body) {
                    for e in b["entry"].as_array_mut().into_iter().flatten() {
                        if let Some(o) = e.as_object_mut() {
                            o.remove("resource");
                        }
                    }
                    body = serde_json::to_vec(&b).unwrap().into();
                }
            } else {
                body = Default::default();
            }
        }
        if drop_it {
            st.injected.fetch_add(1, Ordering::Relaxed);
            // The server acted; the client never hears of it.
            panic!("proxy drops the connection on purpose");
        }
        let mut b = Response::builder().status(status.as_u16());
        for (k, v) in headers.iter() {
            if k == "transfer-encoding" || k == "content-length" {
                continue;
            }
            // Locations (a create's, a Bulk export's status URL) name the server's base too.
            if k == "location" || k == "content-location" {
                let v = String::from_utf8_lossy(v.as_bytes()).replace(&st.up, &st.own);
                b = b.header(k.as_str(), v);
                continue;
            }
            b = b.header(k.as_str(), v.as_bytes());
        }
        b.body(Body::from(body)).unwrap()
    }
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(handle).with_state(st);
            axum::serve(listener, app).await.unwrap();
        });
    });
    Proxy {
        base,
        writes,
        faults_injected: injected,
        access_log,
        together,
    }
}

/// PUTs every resource of the NDJSON files in `dir` (a folder or one file) to its own id, in
/// transactions, as an EHR holds them: no product tag.
pub async fn load(c: &fastkontakt::fhir::client::FhirClient, dir: &std::path::Path) -> usize {
    let mut entries = Vec::new();
    let files: Vec<std::path::PathBuf> = if dir.is_dir() {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect()
    } else {
        vec![dir.to_path_buf()]
    };
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            entries
                .push(serde_json::json!({"resource": r, "request": {"method": "PUT", "url": url}}));
        }
    }
    let n = entries.len();
    for chunk in entries.chunks(400) {
        let bundle =
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": chunk});
        c.send(reqwest::Method::POST, "", Some(&bundle), None)
            .await
            .unwrap();
    }
    n
}
