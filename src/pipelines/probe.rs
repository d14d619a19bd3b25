//! Pipeline `probe`: a FHIR server → what it really does (fhir::probe) → a table, JSON, and
//! (with a state file) the facts kept for sync to write the way the server allows.

use super::PipelineError;
use crate::fhir::client::FhirClient;
use crate::fhir::probe::{ServerFacts, WriteStrategy};
use crate::mapping::Mappings;
use crate::sync::state::{State, StateKey};
use serde::Serialize;
use std::path::Path;

/// What a probe found, and what it means.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The facts.
    pub facts: ServerFacts,
    /// How sync will write to this server.
    pub strategy: WriteStrategy,
    /// Why a safe sync is impossible (empty: it is possible).
    pub blockers: Vec<String>,
    /// Each fact: name, result, what it means for sync.
    pub table: Vec<(String, String, String)>,
}

impl Outcome {
    /// 0 a safe sync is possible, 1 it is not.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.blockers.is_empty())
    }
}

/// Probes `client`'s server (writing probe resources only with `write`) and, given a state
/// file, keeps the facts there.
pub async fn run(
    client: &FhirClient,
    m: &Mappings,
    write: bool,
    state: Option<(&Path, StateKey)>,
) -> Result<Outcome, PipelineError> {
    let facts = crate::fhir::probe::probe(client, &m.target.tag_system, write)
        .await
        .map_err(|source| PipelineError::EhrServer {
            ehr: client.base().to_owned(),
            source,
        })?;
    if let Some((path, key)) = state {
        State::open(path, key)?.save_server_facts(&facts)?;
    }
    Ok(Outcome {
        strategy: facts.strategy(),
        blockers: facts.blockers(),
        table: facts.table(),
        facts,
    })
}
