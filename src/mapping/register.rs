//! The register export's column mapping (`mappings/register/*.toml`), checked against the
//! loaded ConceptMaps so a wrong URL fails at start, not on row 1,000,000.

use super::terminology::Terminology;
use super::{read_toml, MappingError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    pub delimiter: String,
    pub date_format: String,
    pub timestamp_format: String,
    pub timezone: String,
    pub list_separator: String,
    pub yes: String,
    pub no: String,
}

/// Header names of each column the product reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub row_id: String,
    pub patient: String,
    pub kind: String,
    pub role: String,
    pub coordinating: String,
    pub status: String,
    pub start: String,
    pub end: String,
    pub staff_hsa: String,
    pub staff_name: String,
    pub profession: String,
    pub licensed: String,
    pub specialties: String,
    pub unit_hsa: String,
    pub unit_name: String,
    pub unit_kind: String,
    pub listing_unit: String,
    pub registered_at: String,
    pub registered_by: String,
}

impl Columns {
    /// (field, header, required) in export order.
    pub fn all(&self) -> [(&'static str, &str, bool); 19] {
        [
            ("row_id", &self.row_id, true),
            ("patient", &self.patient, true),
            ("kind", &self.kind, true),
            ("role", &self.role, false),
            ("coordinating", &self.coordinating, false),
            ("status", &self.status, true),
            ("start", &self.start, true),
            ("end", &self.end, false),
            ("staff_hsa", &self.staff_hsa, true),
            ("staff_name", &self.staff_name, false),
            ("profession", &self.profession, false),
            ("licensed", &self.licensed, false),
            ("specialties", &self.specialties, false),
            ("unit_hsa", &self.unit_hsa, true),
            ("unit_name", &self.unit_name, false),
            ("unit_kind", &self.unit_kind, false),
            ("listing_unit", &self.listing_unit, false),
            ("registered_at", &self.registered_at, false),
            ("registered_by", &self.registered_by, false),
        ]
    }
}

/// Canonical URLs of the ConceptMaps for each coded column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeMaps {
    pub kind: String,
    pub role: String,
    pub status: String,
    pub profession: String,
    pub specialties: String,
    pub unit_kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterMapping {
    pub format: Format,
    pub columns: Columns,
    pub code_maps: CodeMaps,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    pub delimiter: u8,
    #[serde(skip)]
    pub timezone: Option<chrono_tz::Tz>,
}

impl RegisterMapping {
    pub fn load(path: &Path, terminology: &Terminology) -> Result<Self, MappingError> {
        let mut m: RegisterMapping = read_toml(path)?;
        let invalid = |message: String| MappingError::Invalid {
            path: path.into(),
            message,
        };
        m.path = path.into();
        m.delimiter = match m.format.delimiter.as_bytes() {
            [b] => *b,
            _ => {
                return Err(invalid(format!(
                    "format.delimiter must be one byte, got {:?}",
                    m.format.delimiter
                )))
            }
        };
        m.timezone = Some(m.format.timezone.parse().map_err(|_| {
            invalid(format!(
                "format.timezone {:?} is not an IANA time zone",
                m.format.timezone
            ))
        })?);
        let cm = &m.code_maps;
        for (field, url) in [
            ("kind", &cm.kind),
            ("role", &cm.role),
            ("status", &cm.status),
            ("profession", &cm.profession),
            ("specialties", &cm.specialties),
            ("unit_kind", &cm.unit_kind),
        ] {
            if terminology.map_by_url(url).is_none() {
                return Err(invalid(format!(
                    "code_maps.{field}: no ConceptMap with url {url} in mappings/fhir/"
                )));
            }
        }
        Ok(m)
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.unwrap_or(chrono_tz::Europe::Stockholm)
    }
}
