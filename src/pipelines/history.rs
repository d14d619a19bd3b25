//! Pipeline `history`: the state file's ledger → who was a patient's FLK, FVK or treating role,
//! and which run set it (the newest line per relation, optionally those valid on a day).

use super::PipelineError;
use crate::domain::PatientId;
use crate::sync::state::{LedgerEntry, State, StateKey};
use std::path::Path;

/// The newest ledger line of each relation the product wrote for the patient, in key order;
/// with `at`, only relations valid that day (a declined offer is no relation on a day).
pub fn run(
    state: &Path,
    key: StateKey,
    patient: &PatientId,
    at: Option<chrono::NaiveDate>,
) -> Result<Vec<LedgerEntry>, PipelineError> {
    if !state.exists() {
        return Err(PipelineError::Refused(format!(
            "{}: no such state file",
            state.display()
        )));
    }
    let st = State::open(state, key)?;
    let rows = st.history(&crate::sync::engine::patient_hash(st.key(), patient))?;
    let mut latest: std::collections::BTreeMap<String, LedgerEntry> = Default::default();
    for r in rows {
        latest.insert(r.key.clone(), r);
    }
    Ok(latest
        .into_values()
        .filter(|r| {
            let Some(d) = at else { return true };
            let d = d.to_string();
            !matches!(r.status.as_str(), "avbojd" | "begard" | "informerad")
                && r.valid_from <= d
                && r.valid_to.as_ref().is_none_or(|t| *t >= d)
        })
        .collect())
}
