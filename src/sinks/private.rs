//! Sink helper: files and folders that hold identity numbers (findings, plans, quarantine,
//! fetched EHR data, the state file) are created readable by their owner only from the start,
//! never created open and tightened afterwards.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates (or truncates) a file with mode 0600 on Unix.
pub fn create_file(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Opens a file for reading and writing, created with mode 0600 if absent, not truncated.
pub fn open_rw(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Writes a whole file with mode 0600.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = create_file(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates a folder and any missing parents with mode 0700; an existing folder is left as it
/// is (its owner chose its mode).
pub fn create_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_and_folders_are_private_from_the_start() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        super::create_dir(&d).unwrap();
        let f = d.join("x");
        let _h = super::create_file(&f).unwrap();
        // Checked while the file is still open: never readable by others, not even briefly.
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
    }
}
