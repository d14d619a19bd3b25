//! Mappings kept as data: the files under `mappings/` that say how the register's export reads,
//! which codes mean what, and how FHIR is written for a target. Loaded once, passed down.

pub(crate) mod ehr;
pub mod messages;
pub(crate) mod register;
pub(crate) mod target;
pub(crate) mod terminology;

pub(crate) use ehr::EhrMapping;
pub use messages::{Lang, Messages, Speaker};
pub(crate) use register::RegisterMapping;
pub use target::{IdentifierStyle, TargetConfig};
pub(crate) use terminology::{Coding, Terminology};

use std::path::{Path, PathBuf};

/// `./mappings` when run from a checkout or an install folder that has one, else the folder
/// the crate was built from.
pub fn default_dir() -> PathBuf {
    let here = PathBuf::from("mappings");
    if here.join("fhir").is_dir() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
    }
}

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Terminology(#[from] terminology::TerminologyError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Messages(#[from] messages::MessagesError),
}

pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, MappingError> {
    let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
        path: path.into(),
        source,
    })?;
    // toml's message already names line and column of the offending field.
    toml::from_str(&text).map_err(|e| MappingError::Toml {
        path: path.into(),
        message: e.to_string(),
    })
}

/// Everything a command needs from `mappings/`.
#[derive(Debug, Clone)]
pub struct Mappings {
    /// CodeSystems, ValueSets and ConceptMaps of mappings/fhir/.
    pub terminology: Terminology,
    /// The register export's columns and codes.
    pub register: RegisterMapping,
    /// What the product writes: identifier style, ids, tag, systems.
    pub target: TargetConfig,
    pub(crate) ehr: EhrMapping,
    /// The findings' messages (`DIR/messages/*.ftl`), shared by every copy of the mappings.
    pub messages: std::sync::Arc<Messages>,
    /// The language messages are worded in (`--lang`; Swedish by default).
    pub lang: Lang,
}

impl Mappings {
    /// What messages are worded through in this run's language.
    pub fn speaker(&self) -> Speaker<'_> {
        Speaker::new(&self.messages, self.lang)
    }

    /// Loads `DIR/fhir/`, the register mapping (default `DIR/register/default.toml`) and the
    /// target settings (default `DIR/target/default.toml`).
    pub fn load(
        dir: &Path,
        register: Option<&Path>,
        target: Option<&Path>,
    ) -> Result<Self, MappingError> {
        let terminology = Terminology::load(&dir.join("fhir"))?;
        let reg_path = register
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("register/default.toml"));
        let register = RegisterMapping::load(&reg_path, &terminology)?;
        let tgt_path = target
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("target/default.toml"));
        let target = TargetConfig::load(&tgt_path)?;
        let ehr = EhrMapping::load(&dir.join("ehr/default.toml"), &terminology)?;
        let messages = std::sync::Arc::new(Messages::load(&dir.join("messages"))?);
        Ok(Mappings {
            terminology,
            register,
            target,
            ehr,
            messages,
            lang: Lang::default(),
        })
    }
}
