//! Source: a region's EHR data as FHIR files (NDJSON, Bundles, or a folder of them), streamed
//! in batches that are parsed in parallel while the next batch is read; two batches at most.
//! Two passes: the directory and Patients first (kept, small), then the patient-scoped rest.

use crate::fhir::model::{self, Resource};
use crate::sources::ehr::files::{
    short_reason, BadResource, FhirFileError, MAX_JSON_FILE_BYTES, MAX_LINE_BYTES,
};
use crate::sources::lines::read_line_capped;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Types read in the first pass: what the patient-scoped resources point at, and CarePlans
/// (few; they point at CareTeams, which the second pass then keeps for them).
pub(crate) const DIRECTORY_TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Consent",
    "CarePlan",
];

/// Which resources a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The directory and Patients.
    Directory,
    /// Everything else (CareTeam, Task, Flag, Condition, …).
    PatientScoped,
}

impl Pass {
    fn wants(self, resource_type: &str) -> bool {
        DIRECTORY_TYPES.contains(&resource_type) == (self == Pass::Directory)
    }

    /// Whether a line of this (peeked) type is parsed in this pass: a Bundle's entries may
    /// belong to either pass, so both parse it.
    fn wants_line(self, resource_type: &str) -> bool {
        resource_type == "Bundle" || self.wants(resource_type)
    }

    /// The resources of a line or file this pass keeps: a Bundle's entries (each in its pass,
    /// with its fullUrl), or the resource itself.
    fn kept(self, r: Resource, file: &std::sync::Arc<Path>, line: u64) -> Vec<Parsed> {
        let at = |entry| Origin {
            file: file.clone(),
            line,
            entry,
        };
        match r {
            Resource::Bundle(b) => b
                .entry
                .into_iter()
                .enumerate()
                .filter_map(|(n, e)| {
                    let r = e.resource?;
                    self.wants(model::type_name(&r))
                        .then(|| Ok((at(Some(n as u32)), e.full_url.and_then(|u| u.value), r)))
                })
                .collect(),
            r => self
                .wants(model::type_name(&r))
                .then(|| Ok((at(None), None, r)))
                .into_iter()
                .collect(),
        }
    }

    /// Whether this pass reports a bad line whose type was peeked: the pass that wants the
    /// type, and for a Bundle the patient-scoped pass alone.
    fn wants_reported(self, line: &[u8]) -> bool {
        match model::peek_type(line) {
            Some("Bundle") => self == Pass::PatientScoped,
            Some(t) => self.wants(t),
            None => self == Pass::PatientScoped,
        }
    }
}

/// One parsed resource with where it came from and the Bundle fullUrl it came with, or why it
/// could not be read.
pub(crate) type Parsed = Result<(Origin, Option<String>, Resource), BadResource>;

/// Where a resource was read: a line of an NDJSON file, or an entry of a Bundle file.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    file: std::sync::Arc<Path>,
    line: u64,
    entry: Option<u32>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ndjson = self.file.extension().is_some_and(|x| x == "ndjson");
        match (self.line, self.entry) {
            (0, _) => write!(f, "{}", self.file.display()),
            (line, Some(n)) if ndjson => write!(f, "{}:{line} entry[{n}]", self.file.display()),
            (_, Some(n)) => write!(f, "{} entry[{n}]", self.file.display()),
            (line, None) => write!(f, "{}:{line}", self.file.display()),
        }
    }
}

/// The files of an EHR export.
pub(crate) struct EhrStream {
    files: Vec<PathBuf>,
    /// Total size of the files, for progress.
    pub(crate) bytes: u64,
    /// Lines per batch: enough to keep both cores busy, few enough to bound memory.
    pub(crate) batch_lines: usize,
}

impl EhrStream {
    /// A file, or every `.json`/`.ndjson` file of a folder (sorted by name).
    pub(crate) fn open(path: &Path) -> Result<Self, FhirFileError> {
        let files = crate::sources::ehr::files::list(path)?;
        let bytes = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        Ok(EhrStream {
            files,
            bytes,
            batch_lines: 8192,
        })
    }

    /// Hands every resource of the pass, a chunk of up to `CHUNK` at a time, to `per_chunk`
    /// on the core that parsed it, and what it made to `on_batch`, a batch at a time, in
    /// file order. A parsed resource is many times its line (a CareTeam's 1.2 KB line is
    /// 11 KB parsed): read where it was parsed, a batch's resources never all exist at once.
    /// A bad line is reported once: by the pass that wants its (peeked) type, or by the
    /// patient-scoped pass when its type cannot be peeked. A line over the cap is bad.
    /// `on_bytes` is told how many bytes were consumed (for a progress bar).
    pub fn read_chunks<T: Send>(
        &self,
        pass: Pass,
        on_bytes: &dyn Fn(u64),
        per_chunk: &(dyn Fn(Vec<Parsed>) -> T + Sync),
        on_batch: &mut dyn FnMut(Vec<T>),
    ) -> Result<(), FhirFileError> {
        // The two batches' buffers, grown once and kept from file to file.
        let mut spare = vec![LineBatch::default(), LineBatch::default()];
        for path in &self.files {
            let origin_file: std::sync::Arc<Path> = path.as_path().into();
            let io = |source| FhirFileError::Io {
                path: path.clone(),
                source,
            };
            if path.extension().is_some_and(|x| x == "ndjson") {
                let file = std::fs::File::open(path).map_err(io)?;
                let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
                let batch_lines = self.batch_lines;
                // One thread reads the next batch while the cores parse this one; two batches'
                // buffers go round between them, so reading allocates nothing once they grew.
                std::thread::scope(|scope| -> Result<(), FhirFileError> {
                    let (full_tx, full_rx) =
                        std::sync::mpsc::sync_channel::<std::io::Result<LineBatch>>(1);
                    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<LineBatch>();
                    spare.resize_with(2, LineBatch::default);
                    for b in spare.drain(..) {
                        let _ = empty_tx.send(b);
                    }
                    let reading = scope.spawn(move || {
                        let mut line_no = 0u64;
                        // Ends when the consumer stops taking batches (it dropped its ends).
                        while let Ok(mut b) = empty_rx.recv() {
                            let read = b.fill(&mut reader, &mut line_no, batch_lines, pass, path);
                            let stop = read.is_err() || b.last;
                            if full_tx.send(read.map(|()| b)).is_err() || stop {
                                break;
                            }
                        }
                        empty_rx
                    });
                    for read in full_rx {
                        let mut b = read.map_err(io)?;
                        if !b.lines.is_empty() || !b.too_long.is_empty() {
                            let bytes = &b.bytes;
                            let parse =
                                |(line, at): &(u64, std::ops::Range<usize>)| -> Vec<Parsed> {
                                    let bytes = &bytes[at.clone()];
                                    match model::parse_line(bytes) {
                                        Ok(r) => pass.kept(r, &origin_file, *line),
                                        // Reported once: by this pass if it wants the line's type
                                        // (a Bundle's by the patient-scoped pass), else (type
                                        // unknown) by the patient-scoped pass.
                                        Err(e) => pass
                                            .wants_reported(bytes)
                                            .then(|| {
                                                Err(BadResource {
                                                    path: path.clone(),
                                                    line: *line,
                                                    reason: short_reason(&e.to_string()),
                                                })
                                            })
                                            .into_iter()
                                            .collect(),
                                    }
                                };
                            let mut made: Vec<T> = b
                                .lines
                                .par_chunks(CHUNK)
                                .map(|lines| per_chunk(lines.iter().flat_map(parse).collect()))
                                .collect();
                            if !b.too_long.is_empty() {
                                made.push(per_chunk(std::mem::take(&mut b.too_long)));
                            }
                            on_batch(made);
                        }
                        on_bytes(b.consumed);
                        if b.last {
                            spare.push(b);
                            break;
                        }
                        if let Err(back) = empty_tx.send(b) {
                            spare.push(back.0);
                            break;
                        }
                    }
                    drop(empty_tx);
                    // A reading thread that panicked ended its file early: never taken for its end.
                    let unused = reading
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    spare.extend(unused.try_iter());
                    Ok(())
                })?;
            } else {
                let size = std::fs::metadata(path).map_err(io)?.len();
                if size > MAX_JSON_FILE_BYTES {
                    if pass == Pass::PatientScoped {
                        on_batch(vec![per_chunk(vec![Err(BadResource {
                            path: path.clone(),
                            line: 1,
                            reason: format!("the file is {size} bytes, over the cap of {MAX_JSON_FILE_BYTES} for one JSON document; write large exports as NDJSON"),
                        })])]);
                    }
                    on_bytes(size);
                    continue;
                }
                let bytes = std::fs::read(path).map_err(io)?;
                on_bytes(bytes.len() as u64);
                match model::parse(&bytes) {
                    Ok(r) => {
                        let mut kept = pass.kept(r, &origin_file, 1).into_iter().peekable();
                        let mut chunks: Vec<Vec<Parsed>> = Vec::new();
                        while kept.peek().is_some() {
                            chunks.push(kept.by_ref().take(CHUNK).collect());
                        }
                        if !chunks.is_empty() {
                            on_batch(chunks.into_par_iter().map(per_chunk).collect());
                        }
                    }
                    Err(e) if pass == Pass::PatientScoped => {
                        on_batch(vec![per_chunk(vec![Err(BadResource {
                            path: path.clone(),
                            line: 1,
                            reason: short_reason(&e.to_string()),
                        })])])
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// Lines of one NDJSON file read for a pass: their bytes one after another, the buffer reused
/// from batch to batch (a line in a buffer of its own cost the reading thread most of its
/// time: growth, copies, and the kernel zeroing fresh pages).
#[derive(Default)]
struct LineBatch {
    bytes: Vec<u8>,
    /// Each line's number and where its bytes are in `bytes`.
    lines: Vec<(u64, std::ops::Range<usize>)>,
    /// Lines over the cap that this pass reports.
    too_long: Vec<Parsed>,
    /// Bytes of the file this batch went through (lines passed over included).
    consumed: u64,
    /// Whether the file ended before this batch (it then holds nothing).
    last: bool,
}

impl LineBatch {
    /// Reads the next `max_lines` lines this pass parses, passing over the others.
    fn fill<R: std::io::BufRead>(
        &mut self,
        reader: &mut R,
        line_no: &mut u64,
        max_lines: usize,
        pass: Pass,
        path: &Path,
    ) -> std::io::Result<()> {
        self.bytes.clear();
        self.lines.clear();
        self.too_long.clear();
        self.consumed = 0;
        // Room for the batch reserved at once: grown line by line, the buffer's doublings
        // left as much again behind in freed copies (+55 MiB on a 60 MB check).
        self.bytes.reserve(BATCH_BYTES);
        // Full before a common line (up to 64 KiB) would outgrow the room.
        while self.lines.len() < max_lines && self.bytes.len() + (64 << 10) <= BATCH_BYTES {
            // A whole line in the reader's buffer of a type this pass does not read is
            // passed over uncopied (the directory pass passes over a region's CareTeams, a
            // gigabyte, and the second pass its Patients).
            if let Some(n) = passed_over(reader, pass)? {
                reader.consume(n);
                self.consumed += n as u64;
                *line_no += 1;
                continue;
            }
            let start = self.bytes.len();
            let (n, cut) = read_line_capped(reader, &mut self.bytes, MAX_LINE_BYTES)?;
            if n == 0 {
                break;
            }
            self.consumed += n as u64;
            *line_no += 1;
            let line = &self.bytes[start..];
            // A line whose type cannot be peeked is parsed in both passes and kept by the
            // pass that wants its type.
            let keep = !line.iter().all(u8::is_ascii_whitespace)
                && model::peek_type(line).is_none_or(|t| pass.wants_line(t));
            if cut {
                if !line.iter().all(u8::is_ascii_whitespace) && pass.wants_reported(line) {
                    self.too_long.push(Err(BadResource {
                        path: path.to_path_buf(),
                        line: *line_no,
                        reason: format!(
                            "the line is {n} bytes, over the cap of {MAX_LINE_BYTES}; not read"
                        ),
                    }));
                }
                self.bytes.truncate(start);
            } else if keep {
                self.lines.push((*line_no, start..self.bytes.len()));
            } else {
                self.bytes.truncate(start);
            }
        }
        self.last = self.consumed == 0;
        Ok(())
    }
}

/// The length of the next line when the reader's buffer holds all of it, within the cap, and
/// it is of a type `pass` does not read (so it is neither kept nor reported by this pass).
fn passed_over<R: std::io::BufRead>(reader: &mut R, pass: Pass) -> std::io::Result<Option<usize>> {
    let avail = reader.fill_buf()?;
    Ok(match memchr::memchr(b'\n', avail) {
        Some(i) if i < MAX_LINE_BYTES => model::peek_type(&avail[..=i])
            .is_some_and(|t| !pass.wants_line(t))
            .then_some(i + 1),
        _ => None,
    })
}

/// Bytes of lines a batch holds at most (a line is never cut for it): a few thousand
/// CareTeams, enough to keep both cores busy.
const BATCH_BYTES: usize = 4 << 20;

/// Lines parsed and handed on together by one core: small enough that a chunk's parsed
/// resources stay in cache, large enough that handing out work costs nothing.
const CHUNK: usize = 256;

#[cfg(test)]
mod tests {
    use crate::fhir::model::peek_type;

    #[test]
    fn every_line_comes_once_in_file_order_across_chunks_and_batches() {
        use super::{EhrStream, Pass};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CareTeam.ndjson");
        // 1,000 lines over batches of 300 and chunks of 256: good CareTeams, a bad one every
        // 97th line, a blank line every 101st, a Patient (the other pass's) every 89th.
        let mut text = String::new();
        for n in 1..=1000u64 {
            let line = if n % 97 == 0 {
                r#"{"resourceType":"CareTeam","status":1}"#.to_string()
            } else if n % 101 == 0 {
                "   ".to_string()
            } else if n % 89 == 0 {
                format!(r#"{{"resourceType":"Patient","id":"p{n}"}}"#)
            } else {
                format!(r#"{{"resourceType":"CareTeam","id":"c{n}"}}"#)
            };
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        let mut stream = EhrStream::open(&path).unwrap();
        stream.batch_lines = 300;
        let mut seen: Vec<(u64, bool)> = Vec::new();
        let mut batches = 0;
        let per_chunk = |chunk: Vec<super::Parsed>| -> Vec<(u64, bool)> {
            chunk
                .into_iter()
                .map(|p| match p {
                    Ok((origin, _, r)) => {
                        let (_, id) = crate::fhir::outbound::type_and_id(&r);
                        assert_eq!(id, format!("c{}", origin.line));
                        (origin.line, true)
                    }
                    Err(bad) => (bad.line, false),
                })
                .collect()
        };
        stream
            .read_chunks(Pass::PatientScoped, &|_| {}, &per_chunk, &mut |made| {
                batches += 1;
                seen.extend(made.into_iter().flatten());
            })
            .unwrap();
        let want: Vec<(u64, bool)> = (1..=1000u64)
            .filter(|n| n % 101 != 0 && (n % 89 != 0 || n % 97 == 0))
            .map(|n| (n, n % 97 != 0))
            .collect();
        assert_eq!(seen, want);
        assert!(batches >= 4, "{batches} batches");
    }

    #[test]
    fn peeks_the_resource_type_where_writers_put_it() {
        assert_eq!(
            peek_type(br#"{"resourceType":"CareTeam","id":"x"}"#),
            Some("CareTeam")
        );
        assert_eq!(
            peek_type(br#"{ "id": "x", "resourceType" : "Patient" }"#),
            Some("Patient")
        );
        assert_eq!(peek_type(br#"{"id":"x"}"#), None);
        assert_eq!(peek_type(br#"{"resourceType":1}"#), None);
        // A contained resource's type is not the line's.
        assert_eq!(
            peek_type(br#"{"contained":[{"resourceType":"CareTeam"}],"resourceType":"Patient"}"#),
            None
        );
        assert_eq!(
            peek_type(br#"{"text":{"div":"a \"}{ b"},"resourceType":"Patient"}"#),
            Some("Patient")
        );
        // Found by the fuzzer: an object that closes before the key is not the line's.
        assert_eq!(
            peek_type(br#"{},{"use": n"resourceType":"CareTeam","id":"x"}"#),
            None
        );
        assert_eq!(peek_type(br#"[{"resourceType":"CareTeam"}]"#), None);
    }

    #[test]
    fn typed_parse_is_as_strict_as_the_enum() {
        use crate::fhir::model::{parse, parse_line};
        for line in [
            &br#"{"resourceType":"Patient","bogus":1}"#[..],
            br#"{"resourceType":"CareTeam","status":1}"#,
            br#"{"resourceType":"Patient","birthDate":19901345}"#,
        ] {
            assert!(
                parse_line(line).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(
                parse_line(line).unwrap_err().to_string(),
                parse(line).unwrap_err().to_string()
            );
        }
        // Trailing content after the resource is refused by both.
        for line in [
            &br#"{"resourceType":"Patient","id":"p"} {"x":1}"#[..],
            br#"{"resourceType":"Patient","id":"p"}xyz"#,
            br#"{},{"use": n"resourceType":"CareTeam","id":"x"}"#,
        ] {
            assert!(
                parse_line(line).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert!(parse(line).is_err(), "{}", String::from_utf8_lossy(line));
        }
        let ok = br#"{"resourceType":"CareTeam","id":"a","status":"active","extension":[{"url":"x","valueDecimal":1.50}]}"#;
        assert_eq!(
            crate::fhir::model::to_vec(&parse_line(ok).unwrap()).unwrap(),
            crate::fhir::model::to_vec(&parse(ok).unwrap()).unwrap()
        );
    }
}
