//! The adapter's FHIR R4 endpoint under `/fhir`: its CapabilityStatement, read and search of
//! the CodeSystems, ValueSets and ConceptMaps in `mappings/fhir/`, `ConceptMap/$translate`,
//! `$translate` (register CSV → transaction Bundle, FHIR → CSV) and `$check` (FHIR →
//! OperationOutcome with the findings). Errors are OperationOutcomes.

use super::Service;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const FHIR_JSON: &str = "application/fhir+json";

pub(super) fn router() -> Router<Arc<Service>> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route(
            "/fhir/ConceptMap/$translate",
            get(translate_code).post(translate_code),
        )
        .route("/fhir/$translate", post(translate))
        .route("/fhir/$check", post(check))
        .route("/fhir/{kind}", get(search))
        .route("/fhir/{kind}/{id}", get(read))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
}

/// The conformance resources of `mappings/fhir/` (CodeSystem, ValueSet, ConceptMap,
/// StructureDefinition), read once at start.
pub(super) fn load_conformance(dir: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("fhir"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json")
            && p.file_name().is_some_and(|n| n != "package.json")
        {
            out.push(serde_json::from_slice(&std::fs::read(&p)?)?);
        }
    }
    Ok(out)
}

fn fhir(status: StatusCode, v: Value) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], v.to_string()).into_response()
}

/// The input could not be worked on: what the pipeline said, as an OperationOutcome.
fn refused(e: &anyhow::Error) -> Response {
    outcome(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        &format!("{e:#}"),
    )
}

/// An OperationOutcome for a refused request.
fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    fhir(
        status,
        json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": code, "diagnostics": text}
        ]}),
    )
}

const KINDS: &[&str] = &[
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "StructureDefinition",
];

async fn metadata() -> Response {
    let resources: Vec<Value> = KINDS
        .iter()
        .map(|k| {
            json!({"type": k, "interaction": [{"code": "read"}, {"code": "search-type"}],
                   "searchParam": [{"name": "url", "type": "uri"}, {"name": "name", "type": "string"}]})
        })
        .collect();
    fhir(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": env!("CARGO_PKG_VERSION"),
            "kind": "instance",
            "software": {"name": "fastkontakt", "version": env!("CARGO_PKG_VERSION")},
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [{
                "mode": "server",
                "resource": resources,
                "operation": [
                    {"name": "translate", "definition": "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate"},
                    {"name": "translate-register", "definition": "https://fhir.fastkontakt.example/OperationDefinition/translate"},
                    {"name": "check", "definition": "https://fhir.fastkontakt.example/OperationDefinition/check"}
                ]
            }]
        }),
    )
}

async fn search(
    State(s): State<Arc<Service>>,
    Path(kind): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !KINDS.contains(&kind.as_str()) {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            "this endpoint holds CodeSystem, ValueSet, ConceptMap and StructureDefinition",
        );
    }
    let hits: Vec<Value> = s
        .conformance
        .iter()
        .filter(|r| r["resourceType"] == kind.as_str())
        .filter(|r| q.get("url").is_none_or(|u| r["url"] == u.as_str()))
        .filter(|r| q.get("_id").is_none_or(|u| r["id"] == u.as_str()))
        .filter(|r| {
            q.get("name").is_none_or(|n| {
                r["name"]
                    .as_str()
                    .is_some_and(|x| x.to_lowercase().starts_with(&n.to_lowercase()))
            })
        })
        .map(|r| json!({"fullUrl": format!("{kind}/{}", r["id"].as_str().unwrap_or("")), "resource": r}))
        .collect();
    fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "searchset", "total": hits.len(), "entry": hits}),
    )
}

async fn read(State(s): State<Arc<Service>>, Path((kind, id)): Path<(String, String)>) -> Response {
    match s
        .conformance
        .iter()
        .find(|r| r["resourceType"] == kind.as_str() && r["id"] == id.as_str())
    {
        Some(r) => fhir(StatusCode::OK, r.clone()),
        None => outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("no {kind}/{id}"),
        ),
    }
}

/// `ConceptMap/$translate`: `url` (the map) or `system` (its source), and `code`.
async fn translate_code(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(code) = q.get("code") else {
        return outcome(StatusCode::BAD_REQUEST, "required", "code is required");
    };
    let map = s.conformance.iter().find(|r| {
        r["resourceType"] == "ConceptMap"
            && (q.get("url").is_some_and(|u| r["url"] == u.as_str())
                || q.get("system")
                    .is_some_and(|sy| r["group"][0]["source"] == sy.as_str()))
    });
    let Some(map) = map else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "no ConceptMap with that url or source system",
        );
    };
    let target = map["group"][0]["target"].clone();
    let found = map["group"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["element"].as_array().into_iter().flatten())
        .find(|e| e["code"] == code.as_str())
        .and_then(|e| e["target"].get(0).cloned());
    let mut params = vec![json!({"name": "result", "valueBoolean": found.is_some()})];
    if let Some(t) = found {
        params.push(json!({"name": "match", "part": [
            {"name": "equivalence", "valueCode": t["equivalence"].as_str().unwrap_or("equivalent")},
            {"name": "concept", "valueCoding": {"system": target, "code": t["code"], "display": t["display"]}}
        ]}));
    } else {
        params
            .push(json!({"name": "message", "valueString": format!("'{code}' is not in the map")}));
    }
    fhir(
        StatusCode::OK,
        json!({"resourceType": "Parameters", "parameter": params}),
    )
}

fn is_csv(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/csv"))
}

/// The body in a private temporary folder, named so the readers know it: NDJSON when its first
/// line is a whole resource and another follows, else a JSON Bundle (or CSV when so declared).
fn stage(body: &[u8], csv: bool) -> std::io::Result<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir()?;
    let mut lines = body
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()));
    let first_whole = lines
        .next()
        .is_some_and(|l| serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok());
    let ndjson = first_whole && lines.next().is_some();
    let name = match (csv, ndjson) {
        (true, _) => "in.csv",
        (false, true) => "in.ndjson",
        (false, false) => "in.json",
    };
    let path = dir.path().join(name);
    std::fs::write(&path, body)?;
    Ok((dir, path))
}

/// `$translate`: a register CSV (Content-Type text/csv) → a transaction Bundle; FHIR (a
/// Bundle, or NDJSON) → the register CSV.
async fn translate(State(s): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    let csv = is_csv(&headers);
    let Ok(_slot) = s.work_slots.acquire().await else {
        return outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "shutting down",
        );
    };
    let m = s.mappings.clone();
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<u8>, u64)> {
        let (_dir, path) = stage(&body, csv)?;
        let mut out = Vec::new();
        let summary = if csv {
            fastkontakt::pipelines::translate::register_to_fhir(
                &path,
                &m,
                &mut out,
                false,
                None,
                &mut |_, _| {},
            )?
        } else {
            fastkontakt::pipelines::translate::fhir_to_register(&path, &m, &mut out)?
        };
        Ok((out, summary.rejected))
    })
    .await;
    match res {
        Ok(Ok((out, rejected))) => {
            let kind = if csv {
                FHIR_JSON
            } else {
                "text/csv; charset=utf-8"
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, kind.to_owned()),
                    (
                        header::HeaderName::from_static("x-rejected-rows"),
                        rejected.to_string(),
                    ),
                ],
                out,
            )
                .into_response()
        }
        Ok(Err(e)) => refused(&e),
        Err(e) => outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &e.to_string(),
        ),
    }
}

/// `$check`: FHIR (a Bundle, or NDJSON) → an OperationOutcome, an issue per finding.
/// `?profile=NAME` (default gavleborg), `?as_of=YYYY-MM-DD`.
async fn check(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let profile_name = q
        .get("profile")
        .cloned()
        .unwrap_or_else(|| "gavleborg".into());
    if profile_name.contains('/') || profile_name.contains('.') {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "profile is a name in mappings/profiles/",
        );
    }
    let as_of = match q.get("as_of").map(|d| d.parse::<chrono::NaiveDate>()) {
        Some(Ok(d)) => d,
        Some(Err(_)) => return outcome(StatusCode::BAD_REQUEST, "invalid", "as_of is YYYY-MM-DD"),
        None => fastkontakt::pipelines::today(),
    };
    let Ok(_slot) = s.work_slots.acquire().await else {
        return outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "shutting down",
        );
    };
    let svc = s.clone();
    let rt = tokio::runtime::Handle::current();
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let (_dir, path) = stage(&body, false)?;
        let profile = fastkontakt::checks::Profile::load(
            &profile_name,
            &svc.mappings_dir,
            &svc.mappings.terminology,
        )?;
        let report = fastkontakt::pipelines::check::run(
            fastkontakt::pipelines::check::Options {
                register: None,
                ehr: fastkontakt::pipelines::check::EhrInput::Files(&path),
                profile: &profile,
                mappings: &svc.mappings,
                as_of,
                quarantine: None,
            },
            &rt,
            &fastkontakt::progress::Progress::hidden(),
            &mut |_, _| {},
        )?;
        // The issues name where the input was read: the request, not the service's own
        // temporary file.
        let oo = fastkontakt::sinks::findings::operation_outcome(&report).to_string();
        let shown = oo.replace(&path.display().to_string(), "request");
        Ok(serde_json::from_str(&shown)?)
    })
    .await;
    match res {
        Ok(Ok(oo)) => fhir(StatusCode::OK, oo),
        Ok(Err(e)) => refused(&e),
        Err(e) => outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &e.to_string(),
        ),
    }
}
