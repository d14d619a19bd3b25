//! The service's HTTP API (axum): health, readiness, Prometheus metrics, the run history, and
//! a trigger per job. Every route but the health check asks for a bearer token when tokens are
//! configured (they must be, to listen beyond the loopback).

use super::{Service, Trigger};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

pub(super) fn router(service: Arc<Service>) -> Router {
    let api = Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/report/", get(report_index))
        .route("/runs/{id}/report/{*file}", get(report_file))
        .route("/jobs/{name}/run", post(trigger))
        .merge(super::fhir::router())
        .layer(middleware::from_fn_with_state(service.clone(), auth));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api)
        .with_state(service)
}

/// A bearer token from the configured list, compared in constant time.
async fn auth(State(s): State<Arc<Service>>, req: Request, next: Next) -> Response {
    if s.tokens.is_empty() {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = s.tokens.iter().any(|t| {
        t.len() == given.len()
            && t.bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required\n",
        )
            .into_response()
    }
}

/// Ready when the run history takes a write and each job's EHR answers (any HTTP answer to
/// `metadata` within 3 s: the server is there; what it allows is the run's business).
async fn readyz(State(s): State<Arc<Service>>) -> Response {
    let history = s.history.writable();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build();
    let mut ehrs = serde_json::Map::new();
    let mut all = true;
    for j in &s.jobs {
        let Some(ehr) = j
            .args
            .ehr
            .as_deref()
            .filter(|e| fastkontakt::pipelines::is_url(e))
        else {
            continue;
        };
        let up = match &http {
            Ok(c) => c
                .get(format!("{}/metadata", ehr.trim_end_matches('/')))
                .send()
                .await
                .is_ok(),
            Err(_) => false,
        };
        all &= up;
        ehrs.insert(j.name.clone(), serde_json::Value::Bool(up));
    }
    let body = serde_json::json!({ "history_writable": history, "ehr_reachable": ehrs });
    let status = if history && all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<Service>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.text(),
    )
        .into_response()
}

async fn runs(State(s): State<Arc<Service>>) -> Response {
    match s.history.runs(100) {
        Ok(r) => Json(r).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
    }
}

async fn run(State(s): State<Arc<Service>>, Path(id): Path<i64>) -> Response {
    match s.history.run(id) {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such run\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct RunQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn trigger(
    State(s): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let Some(job) = s.job(&name) else {
        return (StatusCode::NOT_FOUND, "no such job\n").into_response();
    };
    job.trigger(Trigger {
        why: "asked over HTTP".into(),
        dry_run: q.dry_run,
        register: None,
    });
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"job": name, "queued": true, "dry_run": q.dry_run})),
    )
        .into_response()
}

async fn report_index(State(s): State<Arc<Service>>, Path(id): Path<i64>) -> Response {
    report(&s, id, "report.html")
}

async fn report_file(
    State(s): State<Arc<Service>>,
    Path((id, file)): Path<(i64, String)>,
) -> Response {
    report(&s, id, &file)
}

/// A file of a run's report folder. Only plain names below the folder: no `..`, no absolute
/// path, nothing but what the run wrote there.
fn report(s: &Service, id: i64, file: &str) -> Response {
    let dir = match s.history.run(id) {
        Ok(Some(r)) => r.report,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such run\n").into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
    };
    let Some(dir) = dir else {
        return (StatusCode::NOT_FOUND, "the run wrote no report\n").into_response();
    };
    let rel = std::path::Path::new(file);
    let plain = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain || file.is_empty() {
        return (StatusCode::BAD_REQUEST, "not a file of the report\n").into_response();
    }
    let path = std::path::Path::new(&dir).join(rel);
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        _ => "application/octet-stream",
    };
    match std::fs::read(&path) {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such file in the report\n").into_response(),
    }
}
