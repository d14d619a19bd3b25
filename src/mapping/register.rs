//! The register export's column mapping (`mappings/register/*.toml`), checked against the
//! loaded ConceptMaps so a wrong URL fails at start, not on row 1,000,000.

use super::terminology::Terminology;
use super::{read_toml, MappingError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Format {
    pub(crate) delimiter: String,
    pub(crate) date_format: String,
    pub(crate) timestamp_format: String,
    pub(crate) timezone: String,
    pub(crate) list_separator: String,
    pub(crate) yes: String,
    pub(crate) no: String,
    /// `utf-8` (default), `windows-1252` or `iso-8859-1`; a byte-order mark overrides it.
    #[serde(default = "default_encoding")]
    pub(crate) encoding: String,
    /// A record (one row, quoted newlines included) longer than this is rejected unread.
    #[serde(default = "default_max_record_bytes")]
    pub(crate) max_record_bytes: usize,
    /// A field longer than this is a problem of its row.
    #[serde(default = "default_max_field_bytes")]
    pub(crate) max_field_bytes: usize,
    /// `date_format` and `timestamp_format` read once at load: chrono otherwise reads the
    /// format string again for every field it parses.
    #[serde(skip)]
    pub(crate) date_items: Option<Vec<chrono::format::Item<'static>>>,
    #[serde(skip)]
    pub(crate) timestamp_items: Option<Vec<chrono::format::Item<'static>>>,
}

impl Format {
    /// A date in `date_format`, as `NaiveDate::parse_from_str` reads it.
    pub(crate) fn parse_date(&self, text: &str) -> chrono::ParseResult<chrono::NaiveDate> {
        match &self.date_items {
            Some(items) => {
                let mut p = chrono::format::Parsed::new();
                chrono::format::parse(&mut p, text, items.iter())?;
                p.to_naive_date()
            }
            None => chrono::NaiveDate::parse_from_str(text, &self.date_format),
        }
    }

    /// A timestamp in `timestamp_format`, as `NaiveDateTime::parse_from_str` reads it.
    pub(crate) fn parse_timestamp(&self, text: &str) -> chrono::ParseResult<chrono::NaiveDateTime> {
        match &self.timestamp_items {
            Some(items) => {
                let mut p = chrono::format::Parsed::new();
                chrono::format::parse(&mut p, text, items.iter())?;
                p.to_naive_datetime_with_offset(0)
            }
            None => chrono::NaiveDateTime::parse_from_str(text, &self.timestamp_format),
        }
    }
}

fn default_encoding() -> String {
    "utf-8".into()
}
fn default_max_record_bytes() -> usize {
    64 * 1024
}
fn default_max_field_bytes() -> usize {
    4096
}

/// The character encodings a register export may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEncoding {
    Utf8,
    /// Windows-1252 (a superset of Latin-1's printable range; what older Swedish exports use).
    Windows1252,
    /// ISO-8859-1 proper: every byte is the code point of the same number.
    Latin1,
}

impl TextEncoding {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Some(TextEncoding::Utf8),
            "windows-1252" | "cp1252" => Some(TextEncoding::Windows1252),
            "iso-8859-1" | "latin1" | "latin-1" => Some(TextEncoding::Latin1),
            _ => None,
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Windows1252 => "windows-1252",
            TextEncoding::Latin1 => "iso-8859-1",
        }
    }
    /// Bytes of this encoding as text; None if they are not valid (only UTF-8 can fail).
    pub(crate) fn decode(self, bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            TextEncoding::Utf8 => std::str::from_utf8(bytes).ok().map(Into::into),
            TextEncoding::Windows1252 => Some(
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0,
            ),
            TextEncoding::Latin1 => {
                Some(bytes.iter().map(|&b| b as char).collect::<String>().into())
            }
        }
    }
    /// Text in this encoding (for a quarantine file written in the export's own encoding); a
    /// character it cannot hold becomes `?`.
    pub(crate) fn encode(self, text: &str) -> Vec<u8> {
        match self {
            TextEncoding::Utf8 => text.as_bytes().to_vec(),
            TextEncoding::Windows1252 => {
                let (b, _, _) = encoding_rs::WINDOWS_1252.encode(text);
                b.into_owned()
            }
            TextEncoding::Latin1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
        }
    }
}

/// Header names of each column the product reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Columns {
    pub(crate) row_id: String,
    pub(crate) patient: String,
    pub(crate) kind: String,
    pub(crate) role: String,
    pub(crate) coordinating: String,
    pub(crate) status: String,
    pub(crate) start: String,
    pub(crate) end: String,
    pub(crate) staff_hsa: String,
    pub(crate) staff_name: String,
    pub(crate) profession: String,
    pub(crate) licensed: String,
    pub(crate) specialties: String,
    pub(crate) unit_hsa: String,
    pub(crate) unit_name: String,
    pub(crate) unit_kind: String,
    pub(crate) listing_unit: String,
    pub(crate) registered_at: String,
    pub(crate) registered_by: String,
}

impl Columns {
    /// (field, header, required) in export order.
    pub(crate) fn all(&self) -> [(&'static str, &str, bool); 19] {
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
pub(crate) struct CodeMaps {
    pub(crate) kind: String,
    pub(crate) role: String,
    pub(crate) status: String,
    pub(crate) profession: String,
    pub(crate) specialties: String,
    pub(crate) unit_kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterMapping {
    pub(crate) format: Format,
    pub(crate) columns: Columns,
    pub(crate) code_maps: CodeMaps,
    #[serde(skip)]
    pub(crate) path: PathBuf,
    #[serde(skip)]
    pub(crate) delimiter: u8,
    #[serde(skip)]
    pub(crate) timezone: Option<chrono_tz::Tz>,
    #[serde(skip, default = "utf8")]
    pub(crate) encoding: TextEncoding,
}

fn utf8() -> TextEncoding {
    TextEncoding::Utf8
}

impl RegisterMapping {
    pub(crate) fn load(path: &Path, terminology: &Terminology) -> Result<Self, MappingError> {
        let mut m: RegisterMapping = read_toml(path)?;
        // A format chrono cannot read stays a string: each field then fails with its message.
        let items = |f: &str| chrono::format::StrftimeItems::new(f).parse_to_owned().ok();
        m.format.date_items = items(&m.format.date_format);
        m.format.timestamp_items = items(&m.format.timestamp_format);
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
        m.encoding = TextEncoding::parse(&m.format.encoding).ok_or_else(|| {
            invalid(format!(
                "format.encoding {:?} is not one of utf-8, windows-1252, iso-8859-1",
                m.format.encoding
            ))
        })?;
        if m.format.max_record_bytes < 1024 || m.format.max_field_bytes < 64 {
            return Err(invalid(
                "format.max_record_bytes must be at least 1024 and format.max_field_bytes at least 64".into(),
            ));
        }
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

    pub(crate) fn tz(&self) -> chrono_tz::Tz {
        self.timezone.unwrap_or(chrono_tz::Europe::Stockholm)
    }
}
