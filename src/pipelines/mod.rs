//! Pipelines: one function per command, from typed options to a typed outcome, wiring
//! sources → domain → checks and plan → sinks. Nothing here prints, so the command line and an
//! HTTP service call the same code; progress goes to a `Progress` and to `tracing`.

pub mod check;
pub mod golden;
pub mod history;
pub mod probe;
pub mod reconcile;
pub mod sync;
pub mod translate;
pub mod validate;

/// Whether an `--ehr` value names a FHIR server rather than files.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Why a pipeline failed (as opposed to finishing with findings, conflicts or rejected rows,
/// which are in its outcome).
#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Check(#[from] crate::checks::run::CheckError),
    #[error(transparent)]
    Reconcile(#[from] crate::reconcile::ReconcileError),
    #[error(transparent)]
    Sync(#[from] crate::sync::engine::SyncError),
    #[error(transparent)]
    State(#[from] crate::sync::state::StateError),
    #[error(transparent)]
    Report(#[from] crate::sinks::report::ReportError),
    #[error(transparent)]
    Register(#[from] crate::sources::register::RegisterError),
    #[error("reading the EHR from {ehr}: {source}")]
    EhrServer {
        ehr: String,
        source: crate::fhir::client::ClientError,
    },
    #[error("reading the EHR from {ehr}: {source}")]
    Fetch {
        ehr: String,
        source: crate::sources::ehr::fetch::FetchError,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("golden cases {path}: {message}")]
    Golden {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Today in Europe/Stockholm: the day "active" is judged on unless a run names one.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .date_naive()
}
