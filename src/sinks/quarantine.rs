//! The quarantine file: rejected register rows as they were, plus a column with the reasons,
//! so they can be fixed and fed again (the extra column is ignored on input). The rows' bytes
//! are copied exactly, in the export's own encoding; the file is readable by its owner only.

use crate::mapping::register::TextEncoding;
use crate::sources::register::RejectedRow;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(crate) struct Quarantine {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    header: Vec<u8>,
    delimiter: u8,
    encoding: TextEncoding,
    pub(crate) count: u64,
}

impl Quarantine {
    /// Nothing is created until the first rejected row. `header` is the export's header row as
    /// its bytes were; the reasons are written in `encoding`, the export's.
    pub fn new(path: PathBuf, header: Vec<u8>, delimiter: u8, encoding: TextEncoding) -> Self {
        Quarantine {
            path,
            out: None,
            header,
            delimiter,
            encoding,
            count: 0,
        }
    }

    /// `export.csv` → `export.quarantine.csv` beside it.
    pub(crate) fn path_for(input: &Path) -> PathBuf {
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "register".into());
        input.with_file_name(format!("{stem}.quarantine.csv"))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn write(&mut self, row: &RejectedRow) -> std::io::Result<()> {
        if self.out.is_none() {
            let mut f = std::io::BufWriter::new(super::private::create_file(&self.path)?);
            f.write_all(&self.header)?;
            f.write_all(&[self.delimiter])?;
            f.write_all(b"Fel\n")?;
            self.out = Some(f);
        }
        let reasons: Vec<String> = row
            .problems
            .iter()
            .map(|p| format!("rad {}: {}: {}", row.line, p.column, p.reason))
            .collect();
        let reason = reasons.join(" | ").replace('"', "\"\"");
        if let Some(f) = self.out.as_mut() {
            f.write_all(&row.raw)?;
            f.write_all(&[self.delimiter, b'"'])?;
            f.write_all(&self.encoding.encode(&reason))?;
            f.write_all(b"\"\n")?;
        }
        self.count += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> std::io::Result<Option<PathBuf>> {
        match self.out.take() {
            Some(mut f) => {
                f.flush()?;
                Ok(Some(self.path))
            }
            None => Ok(None),
        }
    }
}
