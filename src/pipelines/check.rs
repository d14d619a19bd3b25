//! Pipeline `check`: register and/or EHR data → the guideline rules → a `CheckReport`. Files
//! are streamed (memory bounded by the partition); a server is read into memory first.

use super::PipelineError;
use crate::checks::run::{self, CheckReport};
use crate::checks::Profile;
use crate::fhir::client::FhirClient;
use crate::mapping::Mappings;
use crate::progress::Progress;
use crate::sources::register::RejectedRow;
use std::path::{Path, PathBuf};

/// Where the EHR side comes from.
pub enum EhrInput<'a> {
    /// No EHR data: the register alone.
    None,
    /// Export files.
    Files(&'a Path),
    /// A FHIR server.
    Server(&'a FhirClient),
}

/// What one check is asked.
pub struct Options<'a> {
    /// The register export.
    pub register: Option<&'a Path>,
    /// Where the EHR side comes from.
    pub ehr: EhrInput<'a>,
    /// The region's profile.
    pub profile: &'a Profile,
    /// The mappings.
    pub mappings: &'a Mappings,
    /// The day "active" is judged on.
    pub as_of: chrono::NaiveDate,
    /// Where rejected register rows go.
    pub quarantine: Option<PathBuf>,
}

/// Runs every rule of the profile. `rt` runs the server reads (a service passes its own
/// runtime's handle from a blocking task).
pub fn run(
    o: Options,
    rt: &tokio::runtime::Handle,
    progress: &Progress,
    on_reject: &mut (dyn FnMut(&Path, &RejectedRow) + Send),
) -> Result<CheckReport, PipelineError> {
    let whole = |ehr| run::CheckInput {
        register: o.register,
        ehr,
        profile: o.profile,
        mappings: o.mappings,
        as_of: o.as_of,
        quarantine: o.quarantine.clone(),
        partition: run::Partition::ALL,
    };
    Ok(match o.ehr {
        EhrInput::Server(client) => {
            let side = rt
                .block_on(run::EhrSide::from_server(client, o.mappings))
                .map_err(|source| PipelineError::EhrServer {
                    ehr: client.base().to_owned(),
                    source,
                })?;
            run::run(whole(Some(side)), on_reject)?
        }
        EhrInput::Files(ehr) => {
            let streamed = run::Streamed {
                register: o.register,
                ehr,
                profile: o.profile,
                mappings: o.mappings,
                as_of: o.as_of,
                quarantine: o.quarantine.clone(),
                partitions: None,
                memory: Default::default(),
                product: None,
            };
            run::run_streamed(streamed, progress, on_reject, &mut |_, _, _, _, _, _| true)?.0
        }
        EhrInput::None => run::run(whole(None), on_reject)?,
    })
}
