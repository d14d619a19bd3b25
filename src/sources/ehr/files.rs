//! Source: FHIR resources from files: a Bundle (JSON), NDJSON (one resource a line), or a folder
//! of them. Every resource is parsed strictly; a bad one is reported with file and line and the
//! rest go on.

use crate::fhir::model::{self, Resource};
use crate::sources::lines::read_line_capped;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FhirFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no .json or .ndjson files in this folder")]
    EmptyDir { path: PathBuf },
    /// The Patients' temporary file (under `TMPDIR`) could not be written or read.
    #[error("the Patients' spill file in {}: {source} (set TMPDIR to a folder with room)", std::env::temp_dir().display())]
    Spill { source: std::io::Error },
}

/// The longest NDJSON line read: one resource of this domain is kilobytes; a longer line is
/// reported as bad, not held in memory.
pub(crate) const MAX_LINE_BYTES: usize = 16 << 20;
/// The largest single JSON document (a Bundle) read whole.
pub(crate) const MAX_JSON_FILE_BYTES: u64 = 512 << 20;

/// A parser's message cut to a length fit for a report (it may quote the input).
pub(crate) fn short_reason(reason: &str) -> String {
    let cut = crate::fhir::client::truncate_chars(reason, 500);
    if cut.len() < reason.len() {
        format!("{cut}…")
    } else {
        cut.to_owned()
    }
}

/// A resource that could not be read, with where it was.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BadResource {
    pub(crate) path: PathBuf,
    pub(crate) line: u64,
    pub(crate) reason: String,
}

impl std::fmt::Display for BadResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

/// A file, or every `.json`/`.ndjson` file of a folder, sorted by name; an empty folder is an
/// error (an export that wrote nothing must not read as an empty EHR).
pub(crate) fn list(path: &Path) -> Result<Vec<PathBuf>, FhirFileError> {
    let io = |source| FhirFileError::Io {
        path: path.into(),
        source,
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "ndjson"))
        .collect();
    if files.is_empty() {
        return Err(FhirFileError::EmptyDir { path: path.into() });
    }
    files.sort();
    Ok(files)
}

/// Resources read, each with the fullUrl its Bundle entry gave (for urn:uuid references).
#[derive(Default)]
pub(crate) struct FhirFiles {
    pub(crate) resources: Vec<(Option<String>, Resource)>,
    pub(crate) bad: Vec<BadResource>,
}

impl FhirFiles {
    /// Reads a file or every `.json`/`.ndjson` file in a folder (sorted by name).
    pub fn read(path: &Path) -> Result<Self, FhirFileError> {
        let mut out = FhirFiles::default();
        for f in list(path)? {
            out.read_file(&f)?;
        }
        Ok(out)
    }

    fn read_file(&mut self, path: &Path) -> Result<(), FhirFileError> {
        let io = |source| FhirFileError::Io {
            path: path.into(),
            source,
        };
        let is_ndjson = path.extension().is_some_and(|x| x == "ndjson");
        if !is_ndjson {
            let size = std::fs::metadata(path).map_err(io)?.len();
            if size > MAX_JSON_FILE_BYTES {
                self.bad.push(BadResource {
                    path: path.into(),
                    line: 1,
                    reason: format!("the file is {size} bytes, over the cap of {MAX_JSON_FILE_BYTES} for one JSON document; write large exports as NDJSON"),
                });
                return Ok(());
            }
            let bytes = std::fs::read(path).map_err(io)?;
            match model::parse(&bytes) {
                Ok(r) => self.push(r),
                Err(e) => self.bad.push(BadResource {
                    path: path.into(),
                    line: 1,
                    reason: short_reason(&e.to_string()),
                }),
            }
            return Ok(());
        }
        let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let mut line_no = 0u64;
        loop {
            let mut line = Vec::new();
            let (n, cut) = read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES).map_err(io)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if cut {
                self.bad.push(BadResource {
                    path: path.into(),
                    line: line_no,
                    reason: format!(
                        "the line is {n} bytes, over the cap of {MAX_LINE_BYTES}; not read"
                    ),
                });
                continue;
            }
            match model::parse_line(&line) {
                Ok(r) => self.push(r),
                Err(e) => self.bad.push(BadResource {
                    path: path.into(),
                    line: line_no,
                    reason: short_reason(&e.to_string()),
                }),
            }
        }
        Ok(())
    }

    /// A Bundle's entries are taken out; other resources go in as they are.
    fn push(&mut self, r: Resource) {
        match r {
            Resource::Bundle(b) => {
                for e in b.entry {
                    if let Some(res) = e.resource {
                        self.resources.push((e.full_url.and_then(|u| u.value), res));
                    }
                }
            }
            other => self.resources.push((None, other)),
        }
    }
}
