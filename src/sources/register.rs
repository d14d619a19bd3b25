//! Source: the population register's contact export (CSV), read as a stream of domain
//! `FixedContact`s. Bad rows come out as `RejectedRow`s naming line, column and reason.
//!
//! Records are assembled from physical lines so that a quote left open costs one row, not the
//! rest of the file: while a record's quotes are unbalanced, a following line that is a complete
//! row on its own ends the broken record (reported) and starts a new one.

use crate::domain::contact::{
    ContactKind, ContactStatus, FixedContact, Period, Registration, RowId,
};
use crate::domain::identity::{HsaId, PatientId};
use crate::domain::staff::{Licence, Staff};
use crate::domain::unit::{CareUnit, UnitKind};
use crate::mapping::register::{RegisterMapping, TextEncoding};
use crate::mapping::Terminology;
use crate::sources::lines::read_line_capped;
use chrono::{NaiveDate, TimeZone};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// A failure that stops reading the file at all (as opposed to a bad row).
#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the file is empty (no header row)")]
    Empty { path: PathBuf },
    #[error("{path}: {message}")]
    Encoding { path: PathBuf, message: String },
    #[error("{path}:1: required columns missing from the header: {missing} (mapping {mapping}); the header has: {found}")]
    MissingColumns {
        path: PathBuf,
        missing: String,
        mapping: PathBuf,
        found: String,
    },
}

/// One thing wrong with a row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct RowProblem {
    /// The column's header name as the file spells it.
    pub(crate) column: String,
    /// The offending value; a patient number is masked.
    pub(crate) value: String,
    pub(crate) reason: String,
    /// The patient number as the register wrote it, for files meant for machines (findings
    /// JSON and CSV), which must join on it; never printed, logged or serialised from here.
    #[serde(skip)]
    pub(crate) as_written: Option<String>,
}

/// Where a register row was read, as findings and plans name it: `file:line row-id` (the
/// file's name made once, not for every row).
pub(crate) struct RowSource(String);

impl RowSource {
    pub(crate) fn new(path: &Path) -> Self {
        RowSource(path.display().to_string())
    }

    /// The row at `line` with `row`.
    pub(crate) fn of(&self, line: u64, row: &crate::domain::RowId) -> String {
        format!("{}:{line} {row}", self.0)
    }
}

/// A row that could not become a contact; it goes to the quarantine file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RejectedRow {
    /// Physical line where the record starts (the header is line 1).
    pub(crate) line: u64,
    /// The record's bytes exactly as the file had them (for the quarantine file).
    #[serde(skip)]
    pub(crate) raw: Vec<u8>,
    pub(crate) row_id: Option<RowId>,
    #[serde(skip)]
    pub(crate) patient: Option<PatientId>,
    /// The record could not be read far enough to know which patients it speaks of (its
    /// patient is unreadable, or an open quote swallowed following lines): a sync then ends
    /// nothing at all this run.
    pub(crate) identity_unknown: bool,
    pub(crate) problems: Vec<RowProblem>,
}

impl RejectedRow {
    /// What is wrong with the row, naming its line and columns.
    pub fn describe(&self, path: &Path) -> String {
        let mut s = String::new();
        for p in &self.problems {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(&format!(
                "{}:{}: column '{}'",
                path.display(),
                self.line,
                p.column
            ));
            if !p.value.is_empty() {
                s.push_str(&format!(" value '{}'", p.value));
            }
            s.push_str(&format!(": {}", p.reason));
        }
        s
    }
}

/// What the reader yields for each record.
// The large variant is the common one: boxing it would allocate once more per row.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RegisterItem {
    /// A row read as a contact, with its line.
    Contact {
        /// The row's first line in the file.
        line: u64,
        /// The contact it names.
        contact: FixedContact,
    },
    /// A row that could not be read.
    Rejected(RejectedRow),
}

/// Column positions for the mapped fields.
struct ColumnIndex {
    idx: [Option<usize>; 19],
    names: [String; 19],
    /// Every header name by position (for problems in columns the mapping does not read).
    header: Vec<String>,
}

impl ColumnIndex {
    fn header_name(&self, i: usize) -> String {
        self.header
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("(field {})", i + 1))
    }
    fn get<'r>(&self, field: Field, rec: &'r Record) -> &'r str {
        self.idx[field as usize]
            .and_then(|i| rec.field(i))
            .map(str::trim)
            .unwrap_or("")
    }
    fn name(&self, field: Field) -> &str {
        &self.names[field as usize]
    }
}

/// Mapped fields in `Columns::all()` order.
#[derive(Clone, Copy)]
enum Field {
    RowId = 0,
    Patient,
    Kind,
    Role,
    Coordinating,
    Status,
    Start,
    End,
    StaffHsa,
    StaffName,
    Profession,
    Licensed,
    Specialties,
    UnitHsa,
    UnitName,
    UnitKind,
    ListingUnit,
    RegisteredAt,
    RegisteredBy,
}

/// A split record: its fields as slices of one buffer, checked as UTF-8 once as a whole
/// (splitting valid text at ASCII delimiters and unquoting it keeps it valid, so a field is then
/// a slice of that text, not checked again at every read).
struct Record {
    /// The fields one after another: text when the whole is valid UTF-8, else the bytes.
    buf: Result<String, Vec<u8>>,
    ends: Vec<usize>,
}

impl Record {
    /// Where field `i` lies in the buffer.
    fn span(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(start..end)
    }
    fn bytes(&self, i: usize) -> Option<&[u8]> {
        let span = self.span(i)?;
        match &self.buf {
            Ok(text) => text.as_bytes().get(span),
            Err(bytes) => bytes.get(span),
        }
    }
    /// The field as text; None if absent or not valid UTF-8.
    fn field(&self, i: usize) -> Option<&str> {
        let span = self.span(i)?;
        match &self.buf {
            Ok(text) => text.get(span),
            Err(bytes) => std::str::from_utf8(bytes.get(span)?).ok(),
        }
    }
    /// Whether every field is valid UTF-8.
    fn is_text(&self) -> bool {
        self.buf.is_ok()
    }
    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// How a record came out of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Whole,
    /// A quote was opened and never closed; `lines` physical lines were taken into it.
    OpenQuote {
        lines: u64,
    },
    /// Longer than `format.max_record_bytes`; only the start was kept.
    TooLong,
}

/// Splits one assembled record by RFC 4180 (csv-core does the quoting rules).
struct Splitter {
    rdr: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// The buffers of a record given back (`recycle`), filled again by the next split: a row
    /// then costs no allocation of its own.
    spare: Option<Record>,
}

impl Splitter {
    fn new(delimiter: u8) -> Self {
        Splitter {
            rdr: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            out: vec![0; 1024],
            ends: vec![0; 64],
            spare: None,
        }
    }

    fn split(&mut self, rec: &[u8]) -> Record {
        self.rdr.reset();
        let (mut input, mut out_pos, mut end_pos, mut eof) = (rec, 0usize, 0usize, false);
        loop {
            let (res, nin, nout, nend) =
                self.rdr
                    .read_record(input, &mut self.out[out_pos..], &mut self.ends[end_pos..]);
            input = &input[nin..];
            out_pos += nout;
            end_pos += nend;
            match res {
                csv_core::ReadRecordResult::InputEmpty => {
                    if eof {
                        break;
                    }
                    eof = input.is_empty();
                }
                csv_core::ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull => {
                    self.ends.resize(self.ends.len() * 2, 0)
                }
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
            }
        }
        let (text, mut ends) = match self.spare.take() {
            Some(Record { buf, mut ends }) => {
                let mut text = buf.unwrap_or_default();
                text.clear();
                ends.clear();
                (text, ends)
            }
            None => Default::default(),
        };
        let fields = &self.out[..out_pos];
        let buf = match std::str::from_utf8(fields) {
            Ok(valid) => {
                let mut text = text;
                text.push_str(valid);
                Ok(text)
            }
            Err(_) => Err(fields.to_vec()),
        };
        ends.extend_from_slice(&self.ends[..end_pos]);
        Record { buf, ends }
    }

    /// Takes a record's buffers back for the next split.
    fn recycle(&mut self, rec: Record) {
        self.spare = Some(rec);
    }
}

/// Quote count parity and the number of fields of a line read on its own.
fn scan(line: &[u8], delimiter: u8) -> (bool, usize) {
    let (mut in_quotes, mut fields) = (false, 1usize);
    for &b in line {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == delimiter && !in_quotes {
            fields += 1;
        }
    }
    (in_quotes, fields)
}

/// Streams a register export. Memory is bounded by one record plus an 8-byte hash per row id
/// (to catch a Rad-id used twice).
pub struct RegisterReader<'m, R: BufRead> {
    input: R,
    path: PathBuf,
    mapping: &'m RegisterMapping,
    terminology: &'m Terminology,
    columns: ColumnIndex,
    n_header: usize,
    /// Header names the mapping does not use (reported once by the caller).
    pub(crate) unknown_columns: Vec<String>,
    /// The header row's bytes as they were (BOM and line end removed), for a quarantine file.
    pub(crate) header_line: Vec<u8>,
    /// The encoding the file is read in (the mapping's, or what its byte-order mark says).
    pub(crate) encoding: TextEncoding,
    /// Rows that were not valid in the file's encoding (for one summary message).
    pub(crate) undecodable_rows: u64,
    line: u64,
    /// A record whose quote is open: (first line, bytes, physical lines taken).
    pending: Option<(u64, Vec<u8>, u64)>,
    queue: std::collections::VecDeque<(u64, Vec<u8>, Shape)>,
    splitter: Splitter,
    /// The last record's line buffer, read into again.
    spare_line: Vec<u8>,
    /// Row ids' hashes: a fast hasher, seeded per process (sip costs 3 % of a translate).
    seen_row_ids: foldhash::HashSet<u64>,
    done: bool,
}

impl<'m> RegisterReader<'m, std::io::BufReader<std::fs::File>> {
    /// Opens an export under the register mapping.
    pub fn open(
        path: &Path,
        mapping: &'m RegisterMapping,
        terminology: &'m Terminology,
    ) -> Result<Self, RegisterError> {
        let file = std::fs::File::open(path).map_err(|source| RegisterError::Io {
            path: path.into(),
            source,
        })?;
        Self::new(
            std::io::BufReader::with_capacity(1 << 16, file),
            path,
            mapping,
            terminology,
        )
    }
}

impl<'m, R: BufRead> RegisterReader<'m, R> {
    /// A reader over any byte source.
    pub fn new(
        mut input: R,
        path: &Path,
        mapping: &'m RegisterMapping,
        terminology: &'m Terminology,
    ) -> Result<Self, RegisterError> {
        let io = |source| RegisterError::Io {
            path: path.into(),
            source,
        };
        let encoding_error = |message: String| RegisterError::Encoding {
            path: path.into(),
            message,
        };
        // UTF-16 is refused before a line is read: its newlines are two bytes.
        let start = input.fill_buf().map_err(io)?;
        if start.starts_with(b"\xFF\xFE") || start.starts_with(b"\xFE\xFF") {
            return Err(encoding_error(format!(
                "the file is UTF-16 ({} byte-order mark); the product reads utf-8, windows-1252 or iso-8859-1: save the export as UTF-8 (mapping {} says {})",
                if start[0] == 0xFF { "little-endian" } else { "big-endian" },
                mapping.path.display(),
                mapping.encoding.name()
            )));
        }
        let mut header = Vec::new();
        let (n, cut) = read_line_capped(&mut input, &mut header, mapping.format.max_record_bytes)
            .map_err(io)?;
        if n == 0 {
            return Err(RegisterError::Empty { path: path.into() });
        }
        if cut {
            return Err(encoding_error(format!(
                "the header row is over {} bytes (format.max_record_bytes); is this a register export?",
                mapping.format.max_record_bytes
            )));
        }
        trim_eol(&mut header);
        let mut encoding = mapping.encoding;
        if header.starts_with(b"\xEF\xBB\xBF") {
            header.drain(..3);
            encoding = TextEncoding::Utf8; // the mark says so, whatever the mapping says
        }
        if header.contains(&0) {
            return Err(encoding_error(
                "the header row holds NUL bytes: the file looks like UTF-16 without a byte-order mark; save the export as UTF-8".into(),
            ));
        }
        let header_text = encoding.decode(&header).ok_or_else(|| {
            encoding_error(format!(
                "line 1 (the header) is not valid {}{}",
                encoding.name(),
                encoding_hint(&header, mapping)
            ))
        })?;
        let mut splitter = Splitter::new(mapping.delimiter);
        let rec = splitter.split(header_text.as_bytes());
        let names: Vec<String> = (0..rec.len())
            .map(|i| rec.field(i).unwrap_or("").trim().to_owned())
            .collect();
        let mut idx = [None; 19];
        let mut col_names: [String; 19] = Default::default();
        let mut missing = Vec::new();
        let mut used = HashSet::new();
        for (i, (_, header_name, required)) in mapping.columns.all().iter().enumerate() {
            col_names[i] = header_name.to_string();
            match names.iter().position(|n| n == header_name) {
                Some(p) => {
                    idx[i] = Some(p);
                    used.insert(p);
                }
                None if *required => missing.push(header_name.to_string()),
                None => {}
            }
        }
        if !missing.is_empty() {
            return Err(RegisterError::MissingColumns {
                path: path.into(),
                missing: missing.join(", "),
                mapping: mapping.path.clone(),
                found: names.join(", "),
            });
        }
        let unknown_columns = names
            .iter()
            .enumerate()
            .filter(|(i, n)| !used.contains(i) && !n.is_empty())
            .map(|(_, n)| n.clone())
            .collect();
        Ok(RegisterReader {
            input,
            path: path.into(),
            mapping,
            terminology,
            n_header: names.len(),
            columns: ColumnIndex {
                idx,
                names: col_names,
                header: names,
            },
            unknown_columns,
            header_line: header,
            encoding,
            undecodable_rows: 0,
            line: 1,
            pending: None,
            queue: Default::default(),
            splitter,
            spare_line: Vec::new(),
            seen_row_ids: foldhash::HashSet::default(),
            done: false,
        })
    }

    /// Next logical record: (first line, bytes, how it came out). Each physical line is
    /// scanned once, so an open quote costs linear time, and no record outgrows the cap.
    fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>, Shape)>, RegisterError> {
        let cap = self.mapping.format.max_record_bytes;
        let d = self.mapping.delimiter;
        loop {
            if let Some(r) = self.queue.pop_front() {
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
            let mut line = std::mem::take(&mut self.spare_line);
            line.clear();
            // Two bytes more than the cap for the line end, which is trimmed.
            let (n, cut) =
                read_line_capped(&mut self.input, &mut line, cap + 2).map_err(|source| {
                    RegisterError::Io {
                        path: self.path.clone(),
                        source,
                    }
                })?;
            if n == 0 {
                self.done = true;
                if let Some((start, buf, lines)) = self.pending.take() {
                    self.queue
                        .push_back((start, buf, Shape::OpenQuote { lines }));
                }
                continue;
            }
            self.line += 1;
            trim_eol(&mut line);
            if cut {
                if let Some((start, buf, lines)) = self.pending.take() {
                    self.queue
                        .push_back((start, buf, Shape::OpenQuote { lines }));
                }
                self.queue.push_back((self.line, line, Shape::TooLong));
                continue;
            }
            if let Some((start, mut buf, lines)) = self.pending.take() {
                let (open_alone, fields_alone) = scan(&line, d);
                let complete_alone = !open_alone && fields_alone == self.n_header;
                if complete_alone || buf.len() + 1 + line.len() > cap {
                    // The pending record's quote was left open: it ends here, and this line
                    // starts afresh.
                    self.queue
                        .push_back((start, buf, Shape::OpenQuote { lines }));
                } else {
                    // The joined record's quotes balance when this line has an odd number.
                    let odd = line.iter().filter(|&&b| b == b'"').count() % 2 == 1;
                    buf.push(b'\n');
                    buf.extend_from_slice(&line);
                    if odd {
                        self.queue.push_back((start, buf, Shape::Whole));
                    } else {
                        self.pending = Some((start, buf, lines + 1));
                    }
                    continue;
                }
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // blank lines carry nothing
            }
            if scan(&line, d).0 {
                self.pending = Some((self.line, line, 1));
            } else {
                self.queue.push_back((self.line, line, Shape::Whole));
            }
        }
    }

    /// The row id and patient of a record that cannot be read as a whole, from its raw bytes
    /// (decoded leniently), so that a sync can hold that patient's relations.
    fn recover_identity(&mut self, raw: &[u8]) -> (Option<RowId>, Option<PatientId>) {
        let text = match self.encoding.decode(raw) {
            Some(t) => t.into_owned(),
            None => String::from_utf8_lossy(raw).into_owned(),
        };
        let rec = self.splitter.split(text.as_bytes());
        let row_id = RowId::new(self.columns.get(Field::RowId, &rec));
        let patient = PatientId::parse(self.columns.get(Field::Patient, &rec)).ok();
        (row_id, patient)
    }

    fn reject(
        &self,
        line: u64,
        raw: &[u8],
        problems: Vec<RowProblem>,
        row_id: Option<RowId>,
        patient: Option<PatientId>,
    ) -> RegisterItem {
        RegisterItem::Rejected(RejectedRow {
            line,
            raw: raw.to_vec(),
            identity_unknown: false,
            row_id,
            patient,
            problems,
        })
    }

    /// A record that could not be split as a row: rejected, its identity recovered if it can
    /// be.
    fn reject_unreadable(&mut self, line: u64, raw: &[u8], shape: Shape) -> RegisterItem {
        let (row_id, patient) = self.recover_identity(raw);
        let (reason, swallowed) = match shape {
            Shape::OpenQuote { lines } => (
                format!(
                    "a quote (\") is opened and never closed; the record was read up to the next complete row ({lines} line{})",
                    if lines == 1 { "" } else { "s" }
                ),
                lines > 1,
            ),
            _ => (
                format!(
                    "the row is over {} bytes (format.max_record_bytes in {}); the rest of it was not read",
                    self.mapping.format.max_record_bytes,
                    self.mapping.path.display()
                ),
                false,
            ),
        };
        let p = RowProblem {
            column: "(row)".into(),
            value: String::new(),
            reason,
            as_written: None,
        };
        let unknown = swallowed || patient.is_none();
        let mut item = self.reject(line, raw, vec![p], row_id, patient);
        if let RegisterItem::Rejected(r) = &mut item {
            r.identity_unknown = unknown;
        }
        item
    }

    /// Fields not valid in the file's encoding, and fields over the cap: problems of their own
    /// columns.
    fn unreadable_fields(&self, rec: &Record) -> Vec<RowProblem> {
        let mut problems = Vec::new();
        for i in 0..rec.len() {
            let bytes = rec.bytes(i).unwrap_or_default();
            if !rec.is_text() && std::str::from_utf8(bytes).is_err() {
                problems.push(RowProblem {
                    column: self.columns.header_name(i),
                    value: String::from_utf8_lossy(bytes).chars().take(40).collect(),
                    reason: format!(
                        "not valid {}{}",
                        self.encoding.name(),
                        encoding_hint(bytes, self.mapping)
                    ),
                    as_written: None,
                });
            } else if bytes.len() > self.mapping.format.max_field_bytes {
                problems.push(RowProblem {
                    column: self.columns.header_name(i),
                    value: String::new(),
                    reason: format!(
                        "the value is {} bytes; the cap is {} (format.max_field_bytes)",
                        bytes.len(),
                        self.mapping.format.max_field_bytes
                    ),
                    as_written: None,
                });
            }
        }
        problems
    }

    /// A row id seen before in this file is a problem of the row.
    fn repeated_row_id(&mut self, id: &RowId) -> Option<RowProblem> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.as_str().hash(&mut h);
        (!self.seen_row_ids.insert(h.finish())).then(|| RowProblem {
            column: self.columns.name(Field::RowId).to_owned(),
            value: id.to_string(),
            reason: "this row id appeared earlier in the file".into(),
            as_written: None,
        })
    }

    fn convert(&mut self, line: u64, raw: &[u8]) -> RegisterItem {
        let decoded = self.encoding.decode(raw);
        let rec = self
            .splitter
            .split(decoded.as_deref().map_or(raw, str::as_bytes));
        let item = self.convert_record(line, raw, &rec, decoded.is_some());
        self.splitter.recycle(rec);
        item
    }

    fn convert_record(
        &mut self,
        line: u64,
        raw: &[u8],
        rec: &Record,
        decoded: bool,
    ) -> RegisterItem {
        let unreadable = self.unreadable_fields(rec);
        if !unreadable.is_empty() {
            // The row is rejected, its identity taken from the fields that read.
            if !decoded {
                self.undecodable_rows += 1;
            }
            let row_id = RowId::new(self.columns.get(Field::RowId, rec));
            let patient = PatientId::parse(self.columns.get(Field::Patient, rec)).ok();
            // An undecodable row whose patient does not read could be anyone's.
            let unknown = !decoded && patient.is_none();
            let mut item = self.reject(line, raw, unreadable, row_id, patient);
            if let RegisterItem::Rejected(r) = &mut item {
                r.identity_unknown = unknown;
            }
            return item;
        }
        let mut row = RowParser {
            c: &self.columns,
            m: self.mapping,
            t: self.terminology,
            rec,
            problems: Vec::new(),
        };
        if rec.len() != self.n_header {
            row.problems.push(RowProblem {
                column: "(row)".into(),
                value: String::new(),
                reason: format!("has {} fields, the header has {}", rec.len(), self.n_header),
                as_written: None,
            });
        }
        let parsed = row.parse();
        let mut problems = row.problems;
        if let Some(p) = parsed
            .row_id
            .as_ref()
            .and_then(|id| self.repeated_row_id(id))
        {
            problems.push(p);
        }
        if !problems.is_empty() {
            return self.reject(line, raw, problems, parsed.row_id, parsed.patient);
        }
        let Parsed {
            row_id: Some(row_id),
            patient: Some(patient),
            kind: Some(kind),
            status: Some(status),
            period: Some(period),
            staff,
            unit: Some(unit),
            listing_unit,
            registration,
        } = parsed
        else {
            // Every None above recorded a problem, so this is unreachable with an empty list.
            let p = RowProblem {
                column: "(row)".into(),
                value: String::new(),
                reason: "incomplete row".into(),
                as_written: None,
            };
            return self.reject(line, raw, vec![p], None, None);
        };
        match FixedContact::new(
            row_id.clone(),
            patient.clone(),
            kind,
            status,
            period,
            staff.map(std::sync::Arc::new),
            std::sync::Arc::new(unit),
            listing_unit,
            registration,
        ) {
            Ok(contact) => RegisterItem::Contact { line, contact },
            Err(e) => {
                let p = RowProblem {
                    column: "(row)".into(),
                    value: String::new(),
                    reason: e.to_string(),
                    as_written: None,
                };
                self.reject(line, raw, vec![p], Some(row_id), Some(patient))
            }
        }
    }
}

/// A row's fields as read; None where a problem was recorded.
struct Parsed {
    row_id: Option<RowId>,
    patient: Option<PatientId>,
    kind: Option<ContactKind>,
    status: Option<ContactStatus>,
    period: Option<Period>,
    staff: Option<Staff>,
    unit: Option<CareUnit>,
    listing_unit: Option<HsaId>,
    registration: Option<Registration>,
}

/// Reads one split row field by field, recording every problem (a row reports all of them at
/// once, each naming its column).
struct RowParser<'r> {
    c: &'r ColumnIndex,
    m: &'r RegisterMapping,
    t: &'r Terminology,
    rec: &'r Record,
    problems: Vec<RowProblem>,
}

impl<'r> RowParser<'r> {
    /// The field's text, borrowed from the record (not from the parser, whose problems are
    /// recorded while it is held).
    fn get(&self, field: Field) -> &'r str {
        self.c.get(field, self.rec)
    }

    fn problem(&mut self, field: Field, value: &str, reason: String) {
        // A patient number is masked wherever it stands (a shifted row puts it anywhere).
        let patient = matches!(field, Field::Patient);
        let as_written = patient.then(|| value.trim().to_owned());
        let value = if patient {
            mask(value)
        } else {
            mask_identity_numbers(&shorten(value))
        };
        self.problems.push(RowProblem {
            column: self.c.name(field).to_owned(),
            value,
            reason,
            as_written,
        });
    }

    fn code(&self, url: &str, word: &str) -> Option<String> {
        self.t
            .map_by_url(url)
            .and_then(|cm| cm.translate(word))
            .map(str::to_owned)
    }

    fn unknown_code(&mut self, field: Field, word: &str, url: &str) {
        let accepted = self
            .t
            .map_by_url(url)
            .map(|cm| cm.source_codes().join(", "))
            .unwrap_or_default();
        self.problem(
            field,
            word,
            format!("unknown code; expected one of {accepted}"),
        );
    }

    /// An optional coded field through its ConceptMap and the domain's parser.
    fn optional_code<T>(
        &mut self,
        field: Field,
        url: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let word = self.get(field);
        if word.is_empty() {
            return None;
        }
        let v = self.code(url, word).and_then(|c| parse(&c));
        if v.is_none() {
            self.unknown_code(field, word, url);
        }
        v
    }

    fn yes_no(&mut self, field: Field) -> Option<bool> {
        let text = self.get(field);
        let f = &self.m.format;
        if text.is_empty() {
            None
        } else if text == f.yes {
            Some(true)
        } else if text == f.no {
            Some(false)
        } else {
            let reason = format!("expected {} or {}", f.yes, f.no);
            self.problem(field, text, reason);
            None
        }
    }

    fn date(&mut self, field: Field) -> Option<NaiveDate> {
        let text = self.get(field);
        let format = &self.m.format.date_format;
        match self.m.format.parse_date(text) {
            Ok(d) => Some(d),
            Err(e) => {
                let reason = format!("not a date in the form {format} ({e})");
                self.problem(field, text, reason);
                None
            }
        }
    }

    fn hsa(&mut self, field: Field) -> Option<HsaId> {
        let text = self.get(field);
        if text.is_empty() {
            return None;
        }
        HsaId::parse(text)
            .map_err(|e| self.problem(field, text, e.to_string()))
            .ok()
    }

    fn parse(&mut self) -> Parsed {
        let row_id = RowId::new(self.get(Field::RowId));
        if row_id.is_none() {
            self.problem(Field::RowId, "", "required, empty".into());
        }
        let patient = self.patient();
        let kind = self.kind();
        let status = self.status();
        let period = self.period();
        let staff = self.staff(status);
        let unit = self.unit();
        let listing_unit = self.hsa(Field::ListingUnit);
        let registration = self.registration();
        Parsed {
            row_id,
            patient,
            kind,
            status,
            period,
            staff,
            unit,
            listing_unit,
            registration,
        }
    }

    fn patient(&mut self) -> Option<PatientId> {
        let text = self.get(Field::Patient);
        if text.is_empty() {
            self.problem(Field::Patient, "", "required, empty".into());
            return None;
        }
        PatientId::parse(text)
            .map_err(|e| self.problem(Field::Patient, text, e.to_string()))
            .ok()
    }

    fn kind(&mut self) -> Option<ContactKind> {
        let m = self.m;
        let kind_word = self.get(Field::Kind);
        let kind_code = self.code(&m.code_maps.kind, kind_word);
        if kind_code.is_none() {
            self.unknown_code(Field::Kind, kind_word, &m.code_maps.kind);
        }
        let coordinating_text = self.get(Field::Coordinating);
        let coordinating = self.yes_no(Field::Coordinating).unwrap_or(false);
        let role_word = self.get(Field::Role);
        let kind = match kind_code.as_deref() {
            Some("flk") => Some(ContactKind::Flk),
            Some("fvk") => Some(ContactKind::Fvk {
                coordinating,
                at_discharge: false,
            }),
            Some("behandlande-roll") if role_word.is_empty() => {
                let reason = format!("required when {} is {kind_word}", self.c.name(Field::Kind));
                self.problem(Field::Role, "", reason);
                None
            }
            // An open code: a role the region's CodeSystem lacks is read as written and
            // reported by the rules (FK-R21), never quarantined (Gävleborg §2.4's roles are
            // examples).
            Some("behandlande-roll") => Some(ContactKind::TreatingRole(
                self.t.treating_role_of_word(&m.code_maps.role, role_word),
            )),
            Some(other) => {
                let reason = format!("maps to '{other}', which the product does not know");
                self.problem(Field::Kind, kind_word, reason);
                None
            }
            None => None,
        };
        if let Some(k) = kind {
            if !matches!(k, ContactKind::TreatingRole(_)) && !role_word.is_empty() {
                let reason = format!("only a treating role has a role code, this row is {k}");
                self.problem(Field::Role, role_word, reason);
            }
            if coordinating && !k.is_fvk() {
                let reason = format!("only an FVK coordinates, this row is {k}");
                self.problem(Field::Coordinating, coordinating_text, reason);
            }
        }
        kind
    }

    fn status(&mut self) -> Option<ContactStatus> {
        let url = &self.m.code_maps.status;
        let word = self.get(Field::Status);
        let status = self
            .code(url, word)
            .and_then(|s| ContactStatus::from_code(&s));
        if status.is_none() {
            self.unknown_code(Field::Status, word, url);
        }
        status
    }

    fn period(&mut self) -> Option<Period> {
        let start = if self.get(Field::Start).is_empty() {
            self.problem(Field::Start, "", "required, empty".into());
            None
        } else {
            self.date(Field::Start)
        };
        let end_text = self.get(Field::End);
        let end = if end_text.is_empty() {
            None
        } else {
            self.date(Field::End)
        };
        match start {
            Some(s) if end.is_some() || end_text.is_empty() => Period::new(s, end)
                .map_err(|e| self.problem(Field::End, end_text, e.to_string()))
                .ok(),
            _ => None,
        }
    }

    fn staff(&mut self, status: Option<ContactStatus>) -> Option<Staff> {
        let m = self.m;
        let staff_hsa = self.hsa(Field::StaffHsa);
        if self.get(Field::StaffHsa).is_empty() && status.is_some_and(|s| !s.is_offer()) {
            let reason = format!(
                "required unless {} is an offer (declined, requested, informed)",
                self.c.name(Field::Status)
            );
            self.problem(Field::StaffHsa, "", reason);
        }
        // An open code (Örebro §7.2: the FVK is not tied to a profession): a word the
        // CodeSystem lacks is kept as written and reported by the rules (FK-R21).
        let profession_word = self.get(Field::Profession);
        let profession = (!profession_word.is_empty()).then(|| {
            self.t
                .profession_of_word(&m.code_maps.profession, profession_word)
        });
        let licence = match self.yes_no(Field::Licensed) {
            Some(true) => Licence::Licensed,
            Some(false) => Licence::NotLicensed,
            None => Licence::Unknown,
        };
        let mut specialties = Vec::new();
        let spec_text = self.get(Field::Specialties);
        for word in spec_text
            .split(m.format.list_separator.as_str())
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            match self
                .code(&m.code_maps.specialties, word)
                .and_then(|s| self.t.specialty(&s))
            {
                Some(s) => specialties.push(s),
                None => self.unknown_code(Field::Specialties, word, &m.code_maps.specialties),
            }
        }
        staff_hsa.map(|hsa| Staff {
            hsa,
            name: non_empty(self.get(Field::StaffName)),
            profession,
            licence,
            specialties,
        })
    }

    fn unit(&mut self) -> Option<CareUnit> {
        if self.get(Field::UnitHsa).is_empty() {
            self.problem(Field::UnitHsa, "", "required, empty".into());
        }
        let hsa = self.hsa(Field::UnitHsa);
        let kind = self.optional_code(
            Field::UnitKind,
            &self.m.code_maps.unit_kind,
            UnitKind::from_code,
        );
        hsa.map(|hsa| CareUnit {
            hsa,
            name: non_empty(self.get(Field::UnitName)),
            kind,
        })
    }

    fn registration(&mut self) -> Option<Registration> {
        let m = self.m;
        let text = self.get(Field::RegisteredAt);
        let at = if text.is_empty() {
            None
        } else {
            match m.format.parse_timestamp(text) {
                Err(e) => {
                    let reason = format!(
                        "not a timestamp in the form {} ({e})",
                        m.format.timestamp_format
                    );
                    self.problem(Field::RegisteredAt, text, reason);
                    None
                }
                // The earlier of an ambiguous autumn hour; a spring-gap time does not exist.
                Ok(local) => match m.tz().from_local_datetime(&local).earliest() {
                    Some(t) => Some(t.fixed_offset()),
                    None => {
                        let reason = format!("does not exist in {} (daylight-saving gap)", m.tz());
                        self.problem(Field::RegisteredAt, text, reason);
                        None
                    }
                },
            }
        };
        let by = self.hsa(Field::RegisteredBy);
        (at.is_some() || by.is_some()).then_some(Registration { at, by })
    }
}

impl<R: BufRead> Iterator for RegisterReader<'_, R> {
    type Item = Result<RegisterItem, RegisterError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, raw, shape) = match self.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let item = match shape {
            Shape::Whole => self.convert(line, &raw),
            broken => self.reject_unreadable(line, &raw, broken),
        };
        // The line's buffer is read into again: a row then costs no allocation for its bytes.
        self.spare_line = raw;
        Some(Ok(item))
    }
}

fn trim_eol(line: &mut Vec<u8>) {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
}

/// Why bytes may not be valid UTF-8: bytes of a Swedish letter in Windows-1252 say so.
fn encoding_hint(bytes: &[u8], m: &RegisterMapping) -> String {
    if m.encoding != TextEncoding::Utf8 {
        return String::new();
    }
    let latin = bytes
        .iter()
        .any(|b| matches!(b, 0xC4 | 0xC5 | 0xD6 | 0xE4 | 0xE5 | 0xF6 | 0xC9 | 0xE9));
    format!(
        "; the file looks like {}: set format.encoding = \"windows-1252\" in {} (or a copy of it, --register-mapping)",
        if latin { "Windows-1252 or ISO-8859-1" } else { "another encoding" },
        m.path.display()
    )
}

/// A long value cut for a message.
fn shorten(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_owned();
    }
    let head: String = s.chars().take(60).collect();
    format!("{head}… ({} bytes)", s.len())
}

/// Masks every run that could be an identity number (ten or more digits, a `-` or `+` among
/// them) in a text meant for a person or a log.
pub fn mask_identity_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().filter(char::is_ascii_digit).count() >= 10 {
            out.push_str(&mask(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || ((c == '-' || c == '+') && !run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Masks a possibly invalid patient number for messages: first four and last two characters.
pub(crate) fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

/// SHA-256 of a register file, streamed (a plan names the export it was made from).
pub(crate) fn sha256_file(path: &Path) -> Result<String, RegisterError> {
    use sha2::Digest;
    let io = |source| RegisterError::Io {
        path: path.into(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(rec: &Record) -> Vec<Option<&str>> {
        (0..rec.len()).map(|i| rec.field(i)).collect()
    }

    #[test]
    fn a_splitters_buffers_read_again_give_each_row_its_own_fields() {
        let mut sp = Splitter::new(b';');
        let a = sp.split(b"r1;\"a;b\";longer text here");
        assert!(a.is_text());
        assert_eq!(
            fields(&a),
            [Some("r1"), Some("a;b"), Some("longer text here")]
        );
        sp.recycle(a);
        // Not valid UTF-8 in the second field: that field alone does not read as text.
        let b = sp.split(b"r2;V\xE4xj\xF6;x");
        assert!(!b.is_text());
        assert_eq!(fields(&b), [Some("r2"), None, Some("x")]);
        assert_eq!(b.bytes(1), Some(&b"V\xE4xj\xF6"[..]));
        sp.recycle(b);
        let c = sp.split("r3;Örebro".as_bytes());
        assert!(c.is_text());
        assert_eq!(fields(&c), [Some("r3"), Some("Örebro")]);
        assert_eq!(c.field(2), None);
        sp.recycle(c);
        let d = sp.split(b"r4");
        assert_eq!(fields(&d), [Some("r4")]);
    }
}
