//! Sink: domain contacts written back as the register's CSV export, through the same mapping
//! file and ConceptMaps (reversed) the reader uses, so CSV → FHIR → CSV gives the same rows.

use crate::domain::contact::{ContactKind, FixedContact};
use crate::domain::staff::Licence;
use crate::mapping::register::RegisterMapping;
use crate::mapping::Terminology;
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum RegisterWriteError {
    #[error(transparent)]
    Csv(#[from] csv::Error),
    #[error("row {row}: no register code word maps to '{code}' in {map}")]
    NoWord {
        row: String,
        code: String,
        map: String,
    },
}

pub(crate) struct RegisterCsvWriter<'m, W: Write> {
    out: csv::Writer<W>,
    mapping: &'m RegisterMapping,
    terminology: &'m Terminology,
}

impl<'m, W: Write> RegisterCsvWriter<'m, W> {
    pub fn new(
        out: W,
        mapping: &'m RegisterMapping,
        terminology: &'m Terminology,
    ) -> Result<Self, RegisterWriteError> {
        let mut out = csv::WriterBuilder::new()
            .delimiter(mapping.delimiter)
            .from_writer(out);
        out.write_record(mapping.columns.all().iter().map(|(_, name, _)| *name))?;
        Ok(RegisterCsvWriter {
            out,
            mapping,
            terminology,
        })
    }

    fn word(
        &self,
        map_url: &str,
        code: &str,
        row: &FixedContact,
    ) -> Result<String, RegisterWriteError> {
        let map = self.terminology.map_by_url(map_url);
        map.and_then(|m| m.reverse(code))
            // A code a region added to the CodeSystem alone: its display, which the reader
            // accepts as the word.
            .or_else(|| {
                map.and_then(|m| self.terminology.cs_by_url(&m.target))
                    .and_then(|cs| cs.display(code))
            })
            .map(str::to_owned)
            .ok_or_else(|| RegisterWriteError::NoWord {
                row: row.row_id.to_string(),
                code: code.into(),
                map: map_url.into(),
            })
    }

    pub(crate) fn write(&mut self, c: &FixedContact) -> Result<(), RegisterWriteError> {
        let record = self.fields(c)?;
        self.write_fields(&record)
    }

    /// Writes fields as they are (the sample generator uses this to write deliberately bad rows).
    pub(crate) fn write_fields(&mut self, fields: &[String]) -> Result<(), RegisterWriteError> {
        self.out.write_record(fields)?;
        Ok(())
    }

    /// A contact's fields in the mapping's column order.
    pub(crate) fn fields(&self, c: &FixedContact) -> Result<Vec<String>, RegisterWriteError> {
        let m = self.mapping;
        let f = &m.format;
        let maps = &m.code_maps;
        let kind_code = match c.kind {
            ContactKind::Flk => "flk",
            ContactKind::Fvk { .. } => "fvk",
            ContactKind::TreatingRole(_) => "behandlande-roll",
        };
        let role = match c.kind {
            ContactKind::TreatingRole(r) if !r.is_listed() => r.code().to_owned(),
            ContactKind::TreatingRole(r) => self.word(&maps.role, r.code(), c)?,
            _ => String::new(),
        };
        let coordinating = match c.kind {
            ContactKind::Fvk {
                coordinating: true, ..
            } => f.yes.clone(),
            _ => String::new(),
        };
        let staff = c.staff();
        let profession = match staff.and_then(|s| s.profession) {
            Some(p) if !p.is_listed() => p.code().to_owned(),
            Some(p) => self.word(&maps.profession, p.code(), c)?,
            None => String::new(),
        };
        let licensed = match staff.map(|s| s.licence) {
            Some(Licence::Licensed) => f.yes.clone(),
            Some(Licence::NotLicensed) => f.no.clone(),
            _ => String::new(),
        };
        let mut specialties = Vec::new();
        for s in staff.map(|s| s.specialties.as_slice()).unwrap_or_default() {
            specialties.push(self.word(&maps.specialties, s.as_str(), c)?);
        }
        let unit_kind = match c.unit.kind {
            Some(k) => self.word(&maps.unit_kind, k.code(), c)?,
            None => String::new(),
        };
        let reg = c.registration.as_ref();
        Ok(vec![
            c.row_id.to_string(),
            c.patient.expose_hyphenated(),
            self.word(&maps.kind, kind_code, c)?,
            role,
            coordinating,
            self.word(&maps.status, c.status().code(), c)?,
            c.period.start().format(&f.date_format).to_string(),
            c.period
                .end()
                .map(|d| d.format(&f.date_format).to_string())
                .unwrap_or_default(),
            staff.map(|s| s.hsa.to_string()).unwrap_or_default(),
            staff.and_then(|s| s.name.clone()).unwrap_or_default(),
            profession,
            licensed,
            specialties.join(&f.list_separator),
            c.unit.hsa.to_string(),
            c.unit.name.clone().unwrap_or_default(),
            unit_kind,
            c.listing_unit
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            reg.and_then(|r| r.at)
                .map(|t| {
                    t.with_timezone(&m.tz())
                        .format(&f.timestamp_format)
                        .to_string()
                })
                .unwrap_or_default(),
            reg.and_then(|r| r.by.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
        ])
    }

    pub(crate) fn finish(mut self) -> Result<W, RegisterWriteError> {
        self.out.flush().map_err(csv::Error::from)?;
        self.out
            .into_inner()
            .map_err(|e| RegisterWriteError::Csv(csv::Error::from(e.into_error())))
    }
}
