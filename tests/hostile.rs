//! Hostile but ordinary input, each case once reproduced against the release binary: register
//! exports in other encodings, broken quotes and huge fields; FHIR the parser chokes on; servers
//! that send the credentials elsewhere, page forever, ask to wait for ever or name files outside
//! the fetch folder (mock servers on 127.0.0.1 with a second origin on 127.0.0.2); and no
//! identity number in a URL, a log, an error or the state file (the real FHIR server).

mod common;

use common::{proxy, root, server, tenant, Faults};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------------
// Helpers

fn run(args: &[&str]) -> Output {
    common::fastkontakt()
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn handwritten() -> PathBuf {
    root().join("samples/handwritten/register.csv")
}

fn register_lines() -> Vec<String> {
    std::fs::read_to_string(handwritten())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every identity number of the hand-written samples, in both written forms.
fn sample_numbers() -> Vec<String> {
    let mut out = Vec::new();
    for l in register_lines().iter().skip(1) {
        let p = l.split(';').nth(1).unwrap_or("");
        if p.len() == 13 {
            out.push(p.to_owned());
            out.push(p.replace('-', ""));
        }
    }
    assert!(out.len() > 40);
    out
}

fn assert_no_identity_number(what: &str, haystack: &[u8]) {
    let s = String::from_utf8_lossy(haystack);
    for n in sample_numbers() {
        assert!(
            !s.contains(&n),
            "{what} holds the identity number {}…",
            &n[..4]
        );
    }
}

/// What a mock server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    auth: Option<String>,
}

type Handler = dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

struct Mock {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A listener on `host` (127.0.0.1 or the second origin 127.0.0.2), bound now so its URL can
/// go into another mock's answers before it serves.
fn listener(host: &str) -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind(format!("{host}:0")).unwrap();
    l.set_nonblocking(true).unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    (l, base)
}

fn serve(
    (l, base): (std::net::TcpListener, String),
    handler: impl Fn(&Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
) -> Mock {
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Request, Response};
    let seen = Arc::new(Mutex::new(Vec::new()));
    #[derive(Clone)]
    struct St {
        seen: Arc<Mutex<Vec<Seen>>>,
        handler: Arc<Handler>,
    }
    async fn handle(State(st): State<St>, req: Request<Body>) -> Response<Body> {
        let s = Seen {
            method: req.method().to_string(),
            uri: req.uri().to_string(),
            auth: req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        st.seen.lock().unwrap().push(s.clone());
        let (status, headers, body) = (st.handler)(&s);
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(Body::from(body)).unwrap()
    }
    let st = St {
        seen: seen.clone(),
        handler: Arc::new(handler),
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let app = axum::Router::new().fallback(handle).with_state(st);
            axum::serve(l, app).await.unwrap();
        });
    });
    Mock { base, seen }
}

fn fhir() -> (&'static str, String) {
    ("content-type", "application/fhir+json".into())
}

fn metadata(export: bool) -> String {
    let ops = if export {
        json!([{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}])
    } else {
        json!([])
    };
    json!({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["json"],
        "rest": [{"mode": "server", "interaction": [{"code": "transaction"}], "operation": ops}]})
    .to_string()
}

fn bundle(next: Option<&str>) -> String {
    let mut b = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Organization", "id": "o1", "name": "x"}}
    ]});
    if let Some(n) = next {
        b["link"] = json!([{"relation": "next", "url": n}]);
    }
    b.to_string()
}

fn reconcile_against(base: &str, report: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "reconcile",
        "--register",
        "samples/handwritten/register.csv",
        "--ehr",
        base,
        "--as-of",
        "2026-06-01",
        "--fail-on",
        "never",
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::fastkontakt()
        .current_dir(root())
        .env("FK_TOKEN", "secret-token-123")
        .args(&args)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The register export

/// The hand-written register with some rows replaced.
fn register_with(dir: &Path, edit: impl Fn(&str) -> Option<Vec<u8>>) -> PathBuf {
    let mut out = Vec::new();
    for l in register_lines() {
        match edit(&l) {
            Some(b) => out.extend_from_slice(&b),
            None => out.extend_from_slice(l.as_bytes()),
        }
        out.push(b'\n');
    }
    let p = dir.join("register.csv");
    std::fs::write(&p, out).unwrap();
    p
}

/// `translate REG -o DIR/NAME.json --quarantine DIR/NAME.quarantine.csv`, with extra leading
/// options (a register mapping); returns the output and the bundle and quarantine paths.
fn translate(dir: &Path, name: &str, reg: &Path, before: &[&str]) -> (Output, PathBuf, PathBuf) {
    let (b, q) = (
        dir.join(format!("{name}.json")),
        dir.join(format!("{name}.quarantine.csv")),
    );
    let mut args: Vec<&str> = before.to_vec();
    args.extend([
        "translate",
        reg.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
        "--quarantine",
        q.to_str().unwrap(),
    ]);
    (run(&args), b, q)
}

fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

fn plan_ends(plan: &Path) -> Vec<String> {
    let p: Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    p["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "end")
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn unreadable_rows_hold_their_relations_and_an_unreadable_patient_holds_every_end() {
    let s = server();
    let t = tenant("held");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let sync = |register: &Path, extra: &[&str]| {
        let mut args = vec![
            "sync",
            "--ehr",
            &s.base,
            "--tenant",
            &t,
            "--as-of",
            "2026-06-01",
            "--register",
            register.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = sync(&handwritten(), &[]);
    assert!(code(&o) <= 1, "{}", text(&o));

    // ok-all-1 in Latin-1 (its Yrke "Läkare" is not UTF-8), ok-all-2 with a quote left open,
    // and r01-two-fvk-2 gone from the export: only the last may be ended.
    let edited = dir.path().join("edited");
    std::fs::create_dir(&edited).unwrap();
    let broken = |l: &str| {
        if l.starts_with("ok-all-1;") {
            Some(latin1(l))
        } else if l.starts_with("ok-all-2;") {
            Some(l.replace("Erik Berg", "\"Erik Berg").into_bytes())
        } else if l.starts_with("r01-two-fvk-2;") {
            Some(Vec::new())
        } else {
            None
        }
    };
    let reg = register_with(&edited, broken);
    let plan = dir.path().join("plan.json");
    let o = sync(&reg, &["plan", "-o", plan.to_str().unwrap()]);
    assert!(code(&o) <= 1, "{}", text(&o));
    assert_eq!(
        plan_ends(&plan),
        vec!["CareTeam|r01-two-fvk-2".to_owned()],
        "{}",
        text(&o)
    );
    let err = text(&o);
    assert!(err.contains("column 'Yrke'"), "{err}");
    assert!(err.contains("windows-1252"), "{err}");
    assert!(err.contains("never closed"), "{err}");

    // A row whose patient cannot be read could be anyone's: then nothing is ended at all.
    let worse = dir.path().join("worse");
    std::fs::create_dir(&worse).unwrap();
    let reg = register_with(&worse, |l| {
        if l.starts_with("ok-all-3;") {
            let mut b = l.as_bytes().to_vec();
            b[12] = 0xE4; // inside the personnummer
            Some(b)
        } else {
            broken(l)
        }
    });
    let o = sync(&reg, &["plan", "-o", plan.to_str().unwrap()]);
    assert!(code(&o) <= 1, "{}", text(&o));
    assert!(plan_ends(&plan).is_empty(), "{}", text(&o));
    let p: Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(p["unreadable_rows"], 1);
    assert!(
        text(&o).contains("no relation is ended this run"),
        "{}",
        text(&o)
    );
}

fn mapping_with(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let mut m = std::fs::read_to_string(root().join("mappings/register/default.toml")).unwrap();
    for (a, b) in replace {
        assert!(m.contains(a));
        m = m.replace(a, b);
    }
    let p = dir.join("mapping.toml");
    std::fs::write(&p, m).unwrap();
    p
}

#[test]
fn a_windows_1252_export_reads_with_its_encoding_and_the_quarantine_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let text_utf8 = std::fs::read_to_string(handwritten()).unwrap();
    let (cp1252, _, bad) = encoding_rs::WINDOWS_1252.encode(&text_utf8);
    assert!(!bad);
    let reg = dir.path().join("export.csv");
    std::fs::write(&reg, &cp1252).unwrap();
    let mapping = mapping_with(
        dir.path(),
        &[("encoding = \"utf-8\"", "encoding = \"windows-1252\"")],
    );
    let (o, b, q) = translate(
        dir.path(),
        "b",
        &reg,
        &["--register-mapping", mapping.to_str().unwrap()],
    );
    assert_eq!(code(&o), 1, "{}", text(&o)); // the sample's one bad row, by design
    let bundle = std::fs::read_to_string(b).unwrap();
    assert!(
        bundle.contains("Maria Sjöberg"),
        "names decoded from Windows-1252"
    );
    assert!(bundle.contains("Vårdcentralen Norr"));
    // The quarantine keeps the row as the file had it: the same Windows-1252 bytes.
    let qbytes = std::fs::read(&q).unwrap();
    let bad_row = cp1252
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"r16-bad-checksum-1;"))
        .unwrap();
    assert!(
        qbytes.windows(bad_row.len()).any(|w| w == bad_row),
        "quarantine lost the row's bytes"
    );
    assert!(
        std::str::from_utf8(&qbytes).is_err(),
        "written in the export's encoding"
    );

    // The same file read as UTF-8: the rows with Swedish letters are rejected, each naming its
    // column and the encoding to set; none is lost.
    let (o, _, q2) = translate(dir.path(), "c", &reg, &[]);
    assert_eq!(code(&o), 1);
    let t = text(&o);
    assert!(t.contains("not valid utf-8"), "{t}");
    assert!(t.contains("set format.encoding = \"windows-1252\""), "{t}");
    assert!(t.contains("column 'Enhet namn'"), "{t}");
    let q2 = std::fs::read(q2).unwrap();
    assert!(q2.windows(bad_row.len()).any(|w| w == bad_row));
}

#[test]
fn a_utf16_export_is_refused_with_a_message_naming_the_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let text_utf8 = std::fs::read_to_string(handwritten()).unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    for u in text_utf8.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    let reg = dir.path().join("export.csv");
    std::fs::write(&reg, bytes).unwrap();
    let o = run(&["translate", reg.to_str().unwrap(), "-o", "/dev/null"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("UTF-16"), "{}", text(&o));
    assert!(!text(&o).contains("required columns missing"));
}

#[test]
fn an_open_quote_takes_at_most_the_record_cap_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let lines = register_lines();
    let mut s = format!("{}\n", lines[0]);
    s.push_str(&lines[1].replace("Anna Lind", "\"Anna Lind"));
    s.push('\n');
    // 80,000 short lines, none a row of its own: before, each was appended and the whole
    // record scanned again (quadratic), and all of it became one row.
    for _ in 0..80_000 {
        s.push_str("x\n");
    }
    s.push_str(&lines[2]);
    s.push('\n');
    let reg = dir.path().join("export.csv");
    std::fs::write(&reg, s).unwrap();
    let (o, b, _) = translate(dir.path(), "b", &reg, &[]);
    assert_eq!(code(&o), 1);
    let t = text(&o);
    assert!(t.contains("never closed"), "{}", &t[..t.len().min(2000)]);
    // The broken record stopped at the cap (64 KiB), not at the end of the file.
    let first = t.lines().find(|l| l.contains("never closed")).unwrap();
    let taken: u64 = first
        .split('(')
        .next_back()
        .and_then(|x| x.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(taken < 40_000, "{first}");
    // The last row, after all of it, is read as a good row.
    let bundle = std::fs::read_to_string(b).unwrap();
    assert!(
        bundle.contains("ok-all-2"),
        "the row after the broken part is lost"
    );
}

#[test]
fn a_huge_field_is_refused_at_the_cap_and_not_copied_into_reports() {
    let dir = tempfile::tempdir().unwrap();
    let lines = register_lines();
    let huge = "A".repeat(5 << 20);
    let s = format!(
        "{}\n{}\n{}\n{}\n",
        lines[0],
        lines[1].replace("Anna Lind", &huge),
        lines[2].replace("Erik Berg", &"B".repeat(5000)),
        lines[3]
    );
    let reg = dir.path().join("export.csv");
    std::fs::write(&reg, s).unwrap();
    let (o, b, q) = translate(dir.path(), "b", &reg, &[]);
    assert_eq!(code(&o), 1);
    let t = text(&o);
    assert!(t.contains("over 65536 bytes"), "{}", &t[..t.len().min(500)]);
    assert!(t.contains("the cap is 4096"), "{t}");
    assert!(
        o.stderr.len() < 20_000,
        "{} bytes of messages",
        o.stderr.len()
    );
    assert!(std::fs::metadata(&q).unwrap().len() < 200_000);
    assert!(std::fs::read_to_string(b).unwrap().contains("ok-all-3"));
}

#[test]
fn a_personnummer_in_the_wrong_column_is_masked_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let reg = register_with(dir.path(), |l| {
        l.starts_with("ok-all-1;")
            .then(|| l.replace("SE2321000016-L001", "19310304-1004").into_bytes())
    });
    let (o, _, _) = translate(dir.path(), "b", &reg, &[]);
    assert_eq!(code(&o), 1);
    let t = text(&o);
    assert!(t.contains("column 'Medarbetare HSA-id'"), "{t}");
    assert!(t.contains("1931*******04"), "{t}");
    assert_no_identity_number("stderr", &o.stderr);
}

// ---------------------------------------------------------------------------------------------
// FHIR files

#[test]
fn fhir_that_crashed_the_parser_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a-bundle.json"),
        r#"{"resourceType":"Bundle","type":"collection","entry":[]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b-obs.ndjson"),
        concat!(
            r#"{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"category":[]}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.752.129.2.1.3.1","value":"193103041004"}"#,
            "\n",
            r#"{"resourceType":"Practitioner","id":"x","bogus":true}"#,
            "\n"
        ),
    )
    .unwrap();
    let o = run(&[
        "check",
        "--ehr",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_ne!(code(&o), 101, "panicked: {}", text(&o));
    let t = text(&o);
    assert!(!t.contains("panicked"), "{t}");
    assert!(t.contains("a-bundle.json:1"), "{t}");
    assert!(t.contains("Bundle.entry: an empty array"), "{t}");
    assert!(t.contains("b-obs.ndjson:1"), "{t}");
    assert!(t.contains("Observation.category"), "{t}");
    // Bad lines of directory types are reported too, not dropped.
    assert!(t.contains("b-obs.ndjson:2"), "truncated Patient line: {t}");
    assert!(t.contains("b-obs.ndjson:3"), "bad Practitioner line: {t}");
}

#[test]
fn an_ndjson_line_over_the_cap_is_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!(
        "{{\"resourceType\":\"CareTeam\",\"id\":\"x\",\"name\":\"{}\"}}\n",
        "x".repeat(17 << 20)
    );
    std::fs::write(dir.path().join("big.ndjson"), big).unwrap();
    let o = run(&["check", "--ehr", dir.path().to_str().unwrap()]);
    assert_ne!(code(&o), 101);
    let t = text(&o);
    assert!(t.contains("big.ndjson:1"), "{}", &t[..t.len().min(2000)]);
    assert!(t.contains("over the cap"), "{}", &t[..t.len().min(2000)]);
    assert!(t.len() < 20_000, "the line was copied into the output");
}

// ---------------------------------------------------------------------------------------------
// Hostile servers

#[test]
fn credentials_never_follow_a_next_link_to_another_origin() {
    let other = serve(listener("127.0.0.2"), |_| (200, vec![fhir()], bundle(None)));
    let other_base = other.base.clone();
    let home = serve(listener("127.0.0.1"), move |s| {
        if s.uri.starts_with("/metadata") {
            (200, vec![fhir()], metadata(false))
        } else {
            (
                200,
                vec![fhir()],
                bundle(Some(&format!("{other_base}/Patient?page=2"))),
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let o = reconcile_against(
        &home.base,
        &dir.path().join("r"),
        &["--no-export", "--bearer", "env:FK_TOKEN"],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("next link leaves"), "{}", text(&o));
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    assert!(home
        .seen()
        .iter()
        .all(|s| s.auth.as_deref() == Some("Bearer secret-token-123")));
    assert!(!text(&o).contains("secret-token-123"));
}

#[test]
fn probe_against_a_hostile_server_sends_nothing_to_another_origin_and_leaks_no_token() {
    let other = serve(listener("127.0.0.2"), |_| (200, vec![fhir()], bundle(None)));
    let other_base = other.base.clone();
    // A server that takes every write and answers every search with a page on another origin.
    let home = serve(listener("127.0.0.1"), move |s| {
        let careteam = json!({"resourceType": "CareTeam", "id": "p1", "meta": {"versionId": "1"}, "status": "entered-in-error"}).to_string();
        match s.method.as_str() {
            _ if s.uri.starts_with("/metadata") => (200, vec![fhir()], metadata(false)),
            "PUT" | "POST" if !s.uri.contains("_search") => (
                201,
                vec![fhir(), ("location", "CareTeam/p1/_history/1".into())],
                careteam,
            ),
            "DELETE" => (204, vec![], String::new()),
            _ if s.uri.contains('?') || s.uri.contains("_search") => (
                200,
                vec![fhir()],
                bundle(Some(&format!("{other_base}/CareTeam?_cursor=stolen"))),
            ),
            _ => (200, vec![fhir()], careteam),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("probe.json");
    let o = common::fastkontakt()
        .current_dir(root())
        .env("FK_TOKEN", "secret-token-123")
        .args([
            "probe",
            "--ehr",
            &home.base,
            "--yes-write",
            "--bearer",
            "env:FK_TOKEN",
            "--report",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let t = text(&o);
    // Its searches cannot be read whole: a safe sync is not possible, and it says so.
    assert_eq!(code(&o), 1, "{t}");
    assert!(t.contains("NOT possible"), "{t}");
    assert!(
        other.seen().is_empty(),
        "another origin was asked: {:?}",
        other.seen()
    );
    assert!(home
        .seen()
        .iter()
        .all(|s| s.auth.as_deref() == Some("Bearer secret-token-123")));
    assert!(!t.contains("secret-token-123"));
    assert!(!std::fs::read_to_string(&report)
        .unwrap()
        .contains("secret-token-123"));
}

#[test]
fn a_repeated_next_link_stops_paging() {
    let home = serve(listener("127.0.0.1"), |s| {
        if s.uri.starts_with("/metadata") {
            (200, vec![fhir()], metadata(false))
        } else {
            (200, vec![fhir()], bundle(Some("Organization?page=again")))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let o = reconcile_against(&home.base, &dir.path().join("r"), &["--no-export"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("gave before"), "{}", text(&o));
    assert!(home.seen().len() < 60, "{} requests", home.seen().len());
}

#[test]
fn bulk_export_urls_elsewhere_get_no_token_and_manifest_types_make_no_paths() {
    let other = serve(listener("127.0.0.2"), |s| {
        if s.uri.contains("status") {
            (200, vec![], json!({"output": []}).to_string())
        } else {
            (200, vec![], String::new())
        }
    });
    let (l, home_base) = listener("127.0.0.1");
    let (ob, hb) = (other.base.clone(), home_base.clone());
    let home = serve((l, home_base), move |s| {
        let u = s.uri.as_str();
        if u.starts_with("/metadata") {
            (200, vec![fhir()], metadata(true))
        } else if u.starts_with("/$export") {
            let loc = if s.auth.is_some() {
                format!("{hb}/status")
            } else {
                format!("{ob}/status")
            };
            (202, vec![("content-location", loc)], String::new())
        } else if u.starts_with("/status") {
            let m = json!({"transactionTime": "2026-01-01T00:00:00Z", "request": "x",
            "requiresAccessToken": true, "error": [],
            "output": [
                {"type": "../../PWNED", "url": format!("{hb}/file1")},
                {"type": "Patient", "url": format!("{ob}/file2")}
            ]});
            (
                200,
                vec![("content-type", "application/json".into())],
                m.to_string(),
            )
        } else if u.starts_with("/file") {
            (200, vec![], String::new())
        } else {
            (200, vec![fhir()], bundle(None))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r");
    let o = reconcile_against(&home.base, &report, &["--bearer", "env:FK_TOKEN"]);
    // The export is refused (a type that is no type name), and paged search reads the EHR.
    assert!(code(&o) <= 1, "{}", text(&o));
    assert!(
        text(&o).contains("not a FHIR resource type name"),
        "{}",
        text(&o)
    );
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    let mut names = Vec::new();
    for e in walk(dir.path()) {
        names.push(e.display().to_string());
    }
    assert!(names.iter().all(|n| !n.contains("PWNED")), "{names:?}");
    assert!(!Path::new("/tmp/PWNED").exists());
}

#[test]
fn an_export_status_url_on_another_origin_is_not_polled() {
    let other = serve(listener("127.0.0.2"), |_| (200, vec![], String::new()));
    let ob = other.base.clone();
    let home = serve(listener("127.0.0.1"), move |s| {
        let u = s.uri.as_str();
        if u.starts_with("/metadata") {
            (200, vec![fhir()], metadata(true))
        } else if u.starts_with("/$export") {
            (
                202,
                vec![("content-location", format!("{ob}/status"))],
                String::new(),
            )
        } else {
            (200, vec![fhir()], bundle(None))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let o = reconcile_against(
        &home.base,
        &dir.path().join("r"),
        &["--bearer", "env:FK_TOKEN"],
    );
    assert!(code(&o) <= 1, "{}", text(&o));
    assert!(text(&o).contains("not on the EHR's origin"), "{}", text(&o));
    assert!(other.seen().is_empty(), "{:?}", other.seen());
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path());
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn a_bulk_output_on_another_origin_is_fetched_without_the_token_only_when_the_manifest_allows() {
    let other = serve(listener("127.0.0.2"), |_| {
        (
            200,
            vec![],
            r#"{"resourceType":"Organization","id":"o9","name":"y"}"#.to_owned() + "\n",
        )
    });
    let (l, hb) = listener("127.0.0.1");
    let (ob, hb2) = (other.base.clone(), hb.clone());
    let home = serve((l, hb), move |s| {
        let u = s.uri.as_str();
        if u.starts_with("/metadata") {
            (200, vec![fhir()], metadata(true))
        } else if u.starts_with("/$export") {
            (
                202,
                vec![("content-location", format!("{hb2}/status"))],
                String::new(),
            )
        } else if u.starts_with("/status") {
            let m = json!({"transactionTime": "2026-01-01T00:00:00Z", "request": "x",
                "requiresAccessToken": false, "error": [],
                "output": [{"type": "Organization", "url": format!("{ob}/file")}]});
            (200, vec![], m.to_string())
        } else {
            (200, vec![fhir()], bundle(None))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let o = reconcile_against(
        &home.base,
        &dir.path().join("r"),
        &["--bearer", "env:FK_TOKEN"],
    );
    assert!(code(&o) <= 1, "{}", text(&o));
    let seen = other.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].auth, None);
    assert!(text(&o).contains("Bulk Data $export"), "{}", text(&o));
}

#[test]
fn keep_fetched_refuses_a_folder_that_holds_files_and_deletes_nothing() {
    let home = serve(listener("127.0.0.1"), |s| {
        if s.uri.starts_with("/metadata") {
            (200, vec![fhir()], metadata(true))
        } else if s.uri.starts_with("/$export") {
            (500, vec![], "no".into())
        } else {
            (200, vec![fhir()], bundle(None))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep");
    std::fs::create_dir(&keep).unwrap();
    std::fs::write(keep.join("mine.txt"), "my notes").unwrap();
    let o = reconcile_against(
        &home.base,
        &dir.path().join("r"),
        &["--keep-fetched", keep.to_str().unwrap()],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("must be empty or absent"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(keep.join("mine.txt")).unwrap(),
        "my notes"
    );
    // An empty folder is used, and a failed export removes only what it wrote.
    let keep2 = dir.path().join("keep2");
    let o = reconcile_against(
        &home.base,
        &dir.path().join("r2"),
        &["--keep-fetched", keep2.to_str().unwrap()],
    );
    assert!(code(&o) <= 1, "{}", text(&o));
    assert!(keep2.join("Organization.ndjson").exists());
}

#[test]
fn an_error_body_cut_mid_character_does_not_panic() {
    let home = serve(listener("127.0.0.1"), |s| {
        let u = s.uri.as_str();
        if u.starts_with("/metadata") {
            (200, vec![fhir()], metadata(true))
        } else if u.starts_with("/$export") {
            (
                202,
                vec![("content-location", "/status".into())],
                String::new(),
            )
        } else if u.starts_with("/status") {
            (500, vec![], format!("{}åäö", "x".repeat(299)))
        } else {
            (200, vec![fhir()], bundle(None))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let o = reconcile_against(&home.base, &dir.path().join("r"), &[]);
    assert!(code(&o) <= 1, "{}", text(&o));
    assert!(!text(&o).contains("panicked"));
}

#[test]
fn a_retry_after_beyond_the_cap_fails_the_run_with_a_message() {
    let home = serve(listener("127.0.0.1"), |_| {
        (429, vec![("retry-after", "300".into())], String::new())
    });
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "sync",
        "--register",
        "samples/handwritten/register.csv",
        "--ehr",
        &home.base,
        "--state",
        dir.path().join("s.sqlite").to_str().unwrap(),
        "--max-retry-wait",
        "2",
        "--dry-run",
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("the cap is 2 s"), "{}", text(&o));
    assert_eq!(home.seen().len(), 1);
}

#[test]
fn a_token_answer_that_never_expires_does_not_crash() {
    let home = serve(listener("127.0.0.1"), |s| {
        let u = s.uri.as_str();
        if u.starts_with("/token") {
            let t = json!({"access_token": "tok", "token_type": "bearer",
                "expires_in": u64::MAX});
            (
                200,
                vec![("content-type", "application/json".into())],
                t.to_string(),
            )
        } else if u.starts_with("/metadata") {
            (200, vec![fhir()], metadata(false))
        } else {
            (
                200,
                vec![fhir()],
                json!({"resourceType": "Bundle", "type": "searchset"}).to_string(),
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let token_url = format!("{}/token", home.base);
    let o = common::fastkontakt()
        .current_dir(root())
        .env("FK_SECRET", "s3cret")
        .args([
            "sync",
            "--register",
            "samples/handwritten/register.csv",
            "--ehr",
            &home.base,
            "--state",
            dir.path().join("s.sqlite").to_str().unwrap(),
            "--token-url",
            &token_url,
            "--client-id",
            "fk",
            "--client-secret",
            "env:FK_SECRET",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(code(&o) <= 1, "{}", text(&o));
    let seen = home.seen();
    assert!(seen
        .iter()
        .filter(|s| !s.uri.starts_with("/token"))
        .all(|s| s.auth.as_deref() == Some("Bearer tok")));
}

#[test]
fn credentials_over_plain_http_off_the_machine_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::fastkontakt()
        .current_dir(root())
        .env("FK_TOKEN", "t")
        .args([
            "sync",
            "--register",
            "samples/handwritten/register.csv",
            "--ehr",
            "http://ehr.example.invalid/fhir",
            "--state",
            dir.path().join("s.sqlite").to_str().unwrap(),
            "--bearer",
            "env:FK_TOKEN",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("use https"), "{}", text(&o));
}

#[test]
fn client_certificate_settings_in_a_config_file_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("job.toml");
    std::fs::write(
        &cfg,
        "ehr = \"http://127.0.0.1:9\"\nregister = \"samples/handwritten/register.csv\"\nclient_p12 = \"/nonexistent.p12\"\nclient_p12_password = \"env:FK_P12\"\n",
    )
    .unwrap();
    let o = common::fastkontakt()
        .current_dir(root())
        .env("FK_P12", "x")
        .args(["sync", "--config", cfg.to_str().unwrap(), "--dry-run"])
        .arg("--state")
        .arg(dir.path().join("s.sqlite"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("/nonexistent.p12"), "{}", text(&o));
}

#[test]
fn a_plan_applies_only_to_the_ehr_it_was_made_against() {
    let home = serve(listener("127.0.0.1"), |_| {
        (200, vec![fhir()], metadata(false))
    });
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        json!({"base": "http://127.0.0.1:1", "register": "x", "register_sha256": "",
            "created": "", "items": [], "conflicts": [], "unchanged": 0, "adopt": [],
            "errors": [], "rejected_rows": 0})
        .to_string(),
    )
    .unwrap();
    let o = run(&[
        "sync",
        "--ehr",
        &home.base,
        "--state",
        dir.path().join("s.sqlite").to_str().unwrap(),
        "apply",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("was made against http://127.0.0.1:1"),
        "{}",
        text(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// Reports and files

#[test]
fn the_report_survives_markup_in_names_and_runs_only_its_own_script() {
    let dir = tempfile::tempdir().unwrap();
    let reg = register_with(dir.path(), |l| {
        // The FVK of a patient with two FVKs (a finding), named with markup.
        l.starts_with("r01-two-fvk-1;").then(|| {
            l.replace(
                "Erik Berg",
                "Erik <!-- </script><script>alert(1)</script> Berg",
            )
            .into_bytes()
        })
    });
    let report = dir.path().join("report");
    let o = run(&[
        "reconcile",
        "--register",
        reg.to_str().unwrap(),
        "--ehr",
        "samples/handwritten/ehr",
        "--report",
        report.to_str().unwrap(),
        "--as-of",
        "2026-06-01",
        "--fail-on",
        "never",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    let start = html
        .find(r#"<script type="application/json" id="data">"#)
        .unwrap();
    let body = &html[start..];
    let body = &body[body.find('>').unwrap() + 1..];
    let data = &body[..body.find("</script>").unwrap()];
    assert!(
        data.contains("\\u003c!--"),
        "the name is in the data, escaped"
    );
    let rows: Value = serde_json::from_str(data).expect("the embedded data is valid JSON");
    let findings: Value =
        serde_json::from_slice(&std::fs::read(report.join("findings.json")).unwrap()).unwrap();
    assert_eq!(
        rows.as_array().unwrap().len(),
        findings["findings"].as_array().unwrap().len()
    );
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "one script element, the report's own"
    );
    let csp = html
        .lines()
        .find(|l| l.contains("Content-Security-Policy"))
        .unwrap();
    assert!(!csp.contains("script-src 'unsafe-inline'"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
}

#[cfg(unix)]
#[test]
fn files_holding_identity_numbers_are_private_and_an_existing_folder_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new/report");
    let o = common::fastkontakt()
        .current_dir(root())
        .env("FASTKONTAKT_LOG", "fastkontakt=trace")
        .args([
            "reconcile",
            "--register",
            "samples/handwritten/register.csv",
            "--ehr",
            "samples/handwritten/ehr",
            "--report",
            fresh.to_str().unwrap(),
            "--fail-on",
            "never",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_no_identity_number(
        "reconcile's terminal output and trace log",
        text(&o).as_bytes(),
    );
    let c = run(&[
        "check",
        "--register",
        "samples/handwritten/register.csv",
        "--ehr",
        "samples/handwritten/ehr",
        "--fail-on",
        "never",
    ]);
    assert_no_identity_number("check's text output", text(&c).as_bytes());
    assert_eq!(mode(&fresh), 0o700);
    for f in std::fs::read_dir(&fresh).unwrap().flatten() {
        assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
    }
    let existing = dir.path().join("shared");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o750)).unwrap();
    let o = run(&[
        "reconcile",
        "--register",
        "samples/handwritten/register.csv",
        "--ehr",
        "samples/handwritten/ehr",
        "--report",
        existing.to_str().unwrap(),
        "--fail-on",
        "never",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        mode(&existing),
        0o750,
        "the owner's folder mode was changed"
    );
    assert_eq!(mode(&existing.join("findings.csv")), 0o600);
}

// ---------------------------------------------------------------------------------------------
// Identity numbers: not in URLs, logs, errors or the state file (against the real server)

#[test]
fn no_identity_number_in_urls_logs_errors_or_the_state_file() {
    let s = server();
    let p = proxy(&s.base, Faults::default(), 7);
    let t = tenant("ids");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let plan = dir.path().join("plan.json");
    let o = common::fastkontakt()
        .current_dir(root())
        .env("FASTKONTAKT_LOG", "fastkontakt=trace")
        .args([
            "sync",
            "--ehr",
            &p.base,
            "--tenant",
            &t,
            "--as-of",
            "2026-06-01",
            "--register",
            "samples/handwritten/register.csv",
            "--state",
            state.to_str().unwrap(),
            "--summary",
            dir.path().join("summary.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(code(&o) <= 1, "{}", text(&o));
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert!(summary["created"].as_u64().unwrap() > 40, "{summary}");
    assert_no_identity_number("stderr and stdout of sync", text(&o).as_bytes());
    let log = p.access_log.lock().unwrap().join("\n");
    assert!(log.contains("POST /Patient/_search"), "{log}");
    assert_no_identity_number("the server's access log", log.as_bytes());
    // The state file: patients as keyed hashes, the ledger's JSON too.
    let db = std::fs::read(&state).unwrap();
    assert_no_identity_number("the state file", &db);
    let db_text = String::from_utf8_lossy(&db);
    assert!(
        db_text.contains("hmac:"),
        "the ledger's identifiers are hashed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600);
    }
    // history finds the patient with the key, and the file is refused with another one, and
    // the shipped namespace is no key at all.
    let history = |key: &str| {
        common::fastkontakt()
            .current_dir(root())
            .env("FK_TEST_STATE_KEY", key)
            .args(["history", "19310304-1004", "--state"])
            .arg(&state)
            .output()
            .unwrap()
    };
    let h = history(common::STATE_KEY);
    assert_eq!(code(&h), 0, "{}", text(&h));
    assert!(text(&h).contains("ok-all-1"), "{}", text(&h));
    for (key, says) in [
        ("another-key-entirely-0123456789", "another state key"),
        ("3b1f6c1e-52a4-4c38-9a7e-6b0d2f1c9a11", "anyone can read"),
    ] {
        let o = history(key);
        assert_eq!(code(&o), 2);
        assert!(text(&o).contains(says), "{}", text(&o));
    }
    // A plan written for review is private too.
    let o = common::fastkontakt()
        .current_dir(root())
        .args(["sync", "--ehr", &p.base, "--tenant", &t, "--register"])
        .arg(handwritten())
        .arg("--state")
        .arg(&state)
        .args(["plan", "-o"])
        .arg(&plan)
        .output()
        .unwrap();
    assert!(code(&o) <= 1, "{}", text(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&plan).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600);
    }
}

#[test]
fn a_failing_lookup_prints_no_identity_number() {
    // A server that refuses the identifier search and echoes what it got.
    let home = serve(listener("127.0.0.1"), |s| {
        if s.uri.starts_with("/metadata") {
            (200, vec![fhir()], metadata(false))
        } else if s.uri.contains("_search") {
            let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error",
                "code": "invalid", "diagnostics": "unknown identifier urn:oid:1.2.752.129.2.1.3.1|193103041004"}]});
            (400, vec![fhir()], oo.to_string())
        } else {
            (
                200,
                vec![fhir()],
                json!({"resourceType": "Bundle", "type": "searchset"}).to_string(),
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.sqlite");
    let o = run(&[
        "sync",
        "--register",
        "samples/handwritten/register.csv",
        "--ehr",
        &home.base,
        "--state",
        state.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("1931******04"), "{}", text(&o));
    assert_no_identity_number("stderr", text(&o).as_bytes());
    assert_no_identity_number("the state file", &std::fs::read(&state).unwrap());
    // The identifiers went in the body, not the URL.
    assert!(home
        .seen()
        .iter()
        .any(|s| s.method == "POST" && s.uri.ends_with("/_search")));
}
