//! Source: a FHIR server's data for reconcile, written to NDJSON files first so one streamed
//! read serves servers and files alike: Bulk Data `$export` when the server offers it, else
//! paged searches, a few resource types at a time (bounded concurrency, one page in memory).
//! The folder is the product's alone (created 0700, refused if it holds anything); file names
//! are made here, never taken from the server; credentials follow the client's origin rules.

use crate::fhir::client::{display_url, truncate_chars, ClientError, FhirClient};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What reconcile reads from an EHR.
pub(crate) const TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "CareTeam",
    "Task",
    "Flag",
    "Condition",
    "Observation",
    "EpisodeOfCare",
    "Encounter",
    "Communication",
    "CarePlan",
    "Consent",
];

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Bulk Data export: {0}")]
    Export(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum How {
    BulkExport,
    PagedSearch,
}

/// How the data was fetched, and how much.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Fetched {
    pub(crate) how: How,
    pub(crate) files: usize,
    pub(crate) bytes: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.into(),
        source,
    }
}

/// Fetches everything reconcile reads into `dir`, which must be empty or absent (every file
/// in it is then read as the EHR). `export`: use `$export` when offered.
pub(crate) async fn fetch(
    client: Arc<FhirClient>,
    dir: &Path,
    export: bool,
    concurrency: usize,
) -> Result<Fetched, FetchError> {
    if dir.is_dir() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(FetchError::Io {
            path: dir.into(),
            source: std::io::Error::other(
                "the folder for fetched EHR files must be empty or absent: every file in it is read as the EHR, and nothing of yours is overwritten",
            ),
        });
    }
    crate::sinks::private::create_dir(dir).map_err(io(dir))?;
    if export && client.operations().await?.iter().any(|o| o == "export") {
        let mut written = Vec::new();
        match bulk_export(&client, dir, &mut written).await {
            Ok(f) => return Ok(f),
            Err(e) => {
                tracing::warn!(error = %e, "Bulk Data export failed; reading by paged search instead");
                // Only what the export wrote is removed.
                for f in written {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
    }
    paged_search(client, dir, concurrency).await
}

async fn paged_search(
    client: Arc<FhirClient>,
    dir: &Path,
    concurrency: usize,
) -> Result<Fetched, FetchError> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for t in TYPES {
        let (client, gate) = (client.clone(), gate.clone());
        let path = dir.join(format!("{t}.ndjson"));
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let file = crate::sinks::private::create_file(&path).map_err(io(&path))?;
            let mut out = std::io::BufWriter::new(file);
            let mut failed: Option<std::io::Error> = None;
            let mut bytes = 0u64;
            client
                .search_pages(&format!("{t}?_count=1000"), &mut |page| {
                    for r in page {
                        if failed.is_some() {
                            return;
                        }
                        let line = serde_json::to_vec(&r).unwrap_or_default();
                        bytes += line.len() as u64 + 1;
                        if let Err(e) = out.write_all(&line).and_then(|_| out.write_all(b"\n")) {
                            failed = Some(e);
                        }
                    }
                })
                .await?;
            if let Some(e) = failed {
                return Err(io(&path)(e));
            }
            out.flush().map_err(io(&path))?;
            Ok::<u64, FetchError>(bytes)
        });
    }
    let mut bytes = 0;
    while let Some(done) = tasks.join_next().await {
        bytes += done.map_err(|e| FetchError::Export(e.to_string()))??;
    }
    Ok(Fetched {
        how: How::PagedSearch,
        files: TYPES.len(),
        bytes,
    })
}

/// A resource type name as a file name part: letters only, as FHIR's type names are.
fn safe_type(t: &str) -> Option<&str> {
    (!t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphabetic())).then_some(t)
}

/// Bulk Data system export: kick-off, poll the status URL, stream each output file to disk.
/// `written` collects the files made, so a failure removes those and nothing else.
async fn bulk_export(
    client: &FhirClient,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Fetched, FetchError> {
    let kick = client
        .get_raw(
            &format!("$export?_type={}", TYPES.join(",")),
            "application/fhir+json",
            true,
            true,
        )
        .await?;
    if kick.status().as_u16() != 202 {
        return Err(FetchError::Export(format!(
            "kick-off answered {}, not 202",
            kick.status()
        )));
    }
    let status_url = kick
        .headers()
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| FetchError::Export("kick-off gave no Content-Location".into()))?;
    // The status URL is the server's own: polling it elsewhere would carry the credentials.
    if !client.same_origin(&client.url(&status_url)) {
        return Err(FetchError::Export(format!(
            "the status URL {} is not on the EHR's origin; not polled",
            display_url(&status_url)
        )));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(3600);
    let mut polls = 0u32;
    let manifest: serde_json::Value = loop {
        let r = client
            .get_raw(&status_url, "application/json", false, true)
            .await?;
        match r.status().as_u16() {
            200 => {
                break r
                    .json()
                    .await
                    .map_err(|e| FetchError::Export(format!("status manifest: {e}")))?
            }
            202 => {
                // Poll soon at first (small exports finish in moments), then back off to
                // every 5 s; a Retry-After asking for less is followed (one asking for a
                // minute made a one-second export in the tests take a minute).
                polls += 1;
                let backoff =
                    Duration::from_millis(100u64 << polls.min(6)).min(Duration::from_secs(5));
                let asked = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let wait = asked.map_or(backoff, |a| a.min(backoff));
                if std::time::Instant::now() > deadline {
                    return Err(FetchError::Export("not complete after an hour".into()));
                }
                tokio::time::sleep(wait).await;
            }
            s => {
                let body = r.text().await.unwrap_or_default();
                return Err(FetchError::Export(format!(
                    "status answered {s}: {}",
                    truncate_chars(&body, 300)
                )));
            }
        }
    };
    // The export's own errors (OperationOutcomes per type) make the read incomplete.
    let errors = manifest["error"].as_array().map_or(0, Vec::len);
    if errors > 0 {
        return Err(FetchError::Export(format!(
            "the server reported {errors} error file(s) in the export manifest; the export is incomplete"
        )));
    }
    // Per the Bulk Data spec the files need the token only when the manifest says so.
    let token = manifest["requiresAccessToken"].as_bool().unwrap_or(true);
    let outputs = manifest["output"].as_array().cloned().unwrap_or_default();
    let mut bytes = 0u64;
    for (n, o) in outputs.iter().enumerate() {
        let (Some(t), Some(url)) = (o["type"].as_str(), o["url"].as_str()) else {
            return Err(FetchError::Export(format!(
                "manifest output {n} has no type or url"
            )));
        };
        let Some(t) = safe_type(t) else {
            return Err(FetchError::Export(format!(
                "manifest output {n} has the type {:?}, which is not a FHIR resource type name",
                truncate_chars(t, 80)
            )));
        };
        if token && !client.may_authenticate(&client.url(url)) {
            return Err(FetchError::Export(format!(
                "output {} is on another origin and needs the access token; allow that origin (auth_allow_origin) to send it there",
                display_url(url)
            )));
        }
        let path = dir.join(format!("{n:04}-{t}.ndjson"));
        let mut resp = client
            .get_raw(url, "application/fhir+ndjson", false, token)
            .await?;
        if !resp.status().is_success() {
            return Err(FetchError::Export(format!(
                "downloading {t} answered {}",
                resp.status()
            )));
        }
        let file = crate::sinks::private::create_file(&path).map_err(io(&path))?;
        written.push(path.clone());
        let mut out = std::io::BufWriter::new(file);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Export(format!("downloading {t}: {}", e.without_url())))?
        {
            bytes += chunk.len() as u64;
            out.write_all(&chunk).map_err(io(&path))?;
        }
        out.flush().map_err(io(&path))?;
    }
    if outputs.is_empty() {
        // An empty EHR exports no file; an empty one says the read was complete.
        let path = dir.join("empty.ndjson");
        crate::sinks::private::write_file(&path, b"").map_err(io(&path))?;
        written.push(path);
    }
    Ok(Fetched {
        how: How::BulkExport,
        files: outputs.len(),
        bytes,
    })
}
